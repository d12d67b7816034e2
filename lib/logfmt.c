/* Python logging's %-style line format (Patroni's log.format) and its
 * asctime (log.dateformat): see logfmt.h. */
#include "logfmt.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

typedef enum FieldKind { KIND_STR, KIND_INT, KIND_FLOAT } FieldKind;

typedef enum Field {
    F_ASCTIME,
    F_CREATED,
    F_FILENAME,
    F_FUNCNAME,
    F_LEVELNAME,
    F_LEVELNO,
    F_LINENO,
    F_MESSAGE,
    F_MODULE,
    F_MSECS,
    F_MSG,
    F_NAME,
    F_PATHNAME,
    F_PROCESS,
    F_PROCESSNAME,
    F_RELATIVECREATED,
    F_THREAD,
    F_THREADNAME,
    _F_MAX,
} Field;

static const struct {
    const char *name;
    FieldKind kind;
} fields[_F_MAX] = {
    [F_ASCTIME] = { "asctime", KIND_STR },
    [F_CREATED] = { "created", KIND_FLOAT },
    [F_FILENAME] = { "filename", KIND_STR },
    [F_FUNCNAME] = { "funcName", KIND_STR },
    [F_LEVELNAME] = { "levelname", KIND_STR },
    [F_LEVELNO] = { "levelno", KIND_INT },
    [F_LINENO] = { "lineno", KIND_INT },
    [F_MESSAGE] = { "message", KIND_STR },
    [F_MODULE] = { "module", KIND_STR },
    [F_MSECS] = { "msecs", KIND_FLOAT },
    [F_MSG] = { "msg", KIND_STR },
    [F_NAME] = { "name", KIND_STR },
    [F_PATHNAME] = { "pathname", KIND_STR },
    [F_PROCESS] = { "process", KIND_INT },
    [F_PROCESSNAME] = { "processName", KIND_STR },
    [F_RELATIVECREATED] = { "relativeCreated", KIND_FLOAT },
    [F_THREAD] = { "thread", KIND_INT },
    [F_THREADNAME] = { "threadName", KIND_STR },
};

#define SPEC_MAX 24

typedef struct Seg {
    int field; /* -1: literal text[off, off + len) */
    size_t off, len;
    char spec[SPEC_MAX]; /* "%", flags, width, ".precision": the conversion is added */
    char conv;
} Seg;

struct LogFmt {
    char *text;
    char *datefmt; /* NULL: Python's default */
    Seg *segs;
    size_t n;
};

static const char why_no_field[] =
    "a Python logging format with at least one %(field)s, e.g. \"%(asctime)s %(levelname)s: "
    "%(message)s\" (a format without one is refused by Python's logging too)";
static const char why_field[] =
    "a Python logging format whose fields are asctime, created, filename, funcName, levelname, "
    "levelno, lineno, message, module, msecs, msg, name, pathname, process, processName, "
    "relativeCreated, thread or threadName, each as %(field) then flags, width, precision and "
    "one of the conversions s r a d i u o x X e E f F g G";
static const char why_type[] =
    "a Python logging format whose conversions fit their fields: text fields (asctime, "
    "levelname, message, ...) take s, r or a only; o, x, X only integer ones (levelno, lineno, "
    "process, thread); c none (Python would fail on every record)";

static int push(LogFmt *f, Seg s)
{
    Seg *segs = realloc(f->segs, (f->n + 1) * sizeof(*segs));
    if (!segs) {
        return -ENOMEM;
    }
    f->segs = segs;
    f->segs[f->n++] = s;
    return 0;
}

static int push_literal(LogFmt *f, size_t off, size_t len)
{
    if (len == 0) {
        return 0;
    }
    return push(f, (Seg){ .field = -1, .off = off, .len = len });
}

static bool conv_fits(FieldKind kind, char conv)
{
    switch (conv) {
    case 's':
    case 'r':
    case 'a':
        return true;
    case 'd':
    case 'i':
    case 'u':
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
        return kind != KIND_STR;
    case 'o':
    case 'x':
    case 'X':
        return kind == KIND_INT;
    default:
        return false;
    }
}

/* One "%(name)..." at f->text + *pos (after the '%'); *pos moves past it. */
static int parse_field(LogFmt *f, size_t *pos, const char **why)
{
    const char *s = f->text + *pos;
    const char *close = strchr(s, ')');
    if (s[0] != '(' || !close) {
        *why = why_field;
        return -EINVAL;
    }
    size_t name_len = (size_t)(close - s - 1);
    int field = -1;
    for (int i = 0; i < _F_MAX; i++) {
        if (strlen(fields[i].name) == name_len && strncmp(fields[i].name, s + 1, name_len) == 0) {
            field = i;
        }
    }
    if (field < 0) {
        *why = why_field;
        return -EINVAL;
    }
    const char *p = close + 1;
    Seg seg = { .field = field };
    size_t o = 0;
    seg.spec[o++] = '%';
    while (*p && strchr("#0- +", *p) && o < 6) {
        seg.spec[o++] = *p++;
    }
    for (int digits = 0; *p >= '0' && *p <= '9'; digits++) {
        if (digits == 3) {
            *why = why_field;
            return -EINVAL;
        }
        seg.spec[o++] = *p++;
    }
    if (*p == '.') {
        seg.spec[o++] = *p++;
        for (int digits = 0; *p >= '0' && *p <= '9'; digits++) {
            if (digits == 3) {
                *why = why_field;
                return -EINVAL;
            }
            seg.spec[o++] = *p++;
        }
    }
    if (*p && strchr("hlL", *p)) {
        p++; /* Python accepts and ignores a length modifier */
    }
    if (!*p || !strchr("sradiuoxXeEfFgGc", *p)) {
        *why = why_field;
        return -EINVAL;
    }
    seg.conv = *p++;
    if (!conv_fits(fields[field].kind, seg.conv)) {
        *why = why_type;
        return -EINVAL;
    }
    *pos = (size_t)(p - f->text);
    return push(f, seg);
}

int logfmt_parse(const char *format, const char *datefmt, LogFmt **ret, const char **why)
{
    static const char *ignored;
    if (!why) {
        why = &ignored;
    }
    if (!format || !ret) {
        *why = why_no_field;
        return -EINVAL;
    }
    LogFmt *f = calloc(1, sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    f->text = strdup(format);
    f->datefmt = datefmt && *datefmt ? strdup(datefmt) : NULL;
    if (!f->text || (datefmt && *datefmt && !f->datefmt)) {
        logfmt_free(f);
        return -ENOMEM;
    }
    int r = 0;
    bool any_field = false;
    size_t lit = 0, pos = 0;
    while (r == 0 && f->text[pos]) {
        if (f->text[pos] != '%') {
            pos++;
            continue;
        }
        r = push_literal(f, lit, pos - lit);
        if (r < 0) {
            break;
        }
        if (f->text[pos + 1] == '%') {
            r = push_literal(f, pos + 1, 1);
            pos += 2;
        } else {
            pos++;
            r = parse_field(f, &pos, why);
            any_field = true;
        }
        lit = pos;
    }
    if (r == 0) {
        r = push_literal(f, lit, pos - lit);
    }
    if (r == 0 && !any_field) {
        *why = why_no_field;
        r = -EINVAL;
    }
    if (r < 0) {
        logfmt_free(f);
        return r;
    }
    *ret = f;
    return 0;
}

void logfmt_free(LogFmt *f)
{
    if (f) {
        free(f->text);
        free(f->datefmt);
        free(f->segs);
        free(f);
    }
}

/* Python's repr() of a float: the shortest text that reads back the same,
 * with ".0" on an integral value. */
static void float_repr(double v, char *buf, size_t size)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    if (!strpbrk(buf, ".en")) {
        strncat(buf, ".0", size - strlen(buf) - 1);
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

typedef struct Value {
    const char *str;
    long long i;
    double d;
} Value;

static Value value_of(const LogFmt *f, const LogFmtRecord *r, Field field, char *scratch,
                      size_t size)
{
    double created = (double)r->sec + (double)r->nsec / 1e9;
    long ms = r->nsec / 1000000L;
    const char *file = r->file ? r->file : "(unknown file)";
    switch (field) {
    case F_ASCTIME: {
        time_t t = (time_t)r->sec;
        struct tm tm;
        localtime_r(&t, &tm);
        if (f->datefmt) {
            /* the operator's format, as Python's time.strftime takes it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            if (strftime(scratch, size, f->datefmt, &tm) == 0) {
                scratch[0] = '\0';
            }
#pragma GCC diagnostic pop
        } else {
            char stamp[32];
            strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
            snprintf(scratch, size, "%s,%03ld", stamp, ms);
        }
        return (Value){ .str = scratch };
    }
    case F_CREATED:
        return (Value){ .d = created };
    case F_FILENAME:
        return (Value){ .str = base_name(file) };
    case F_FUNCNAME:
        return (Value){ .str = r->func ? r->func : "(unknown function)" };
    case F_LEVELNAME:
    case F_LEVELNO: {
        /* Python's levels; NOTICE (dbha's, between the two) is INFO there */
        static const struct {
            const char *name;
            int no;
        } levels[_LOG_LEVEL_MAX] = {
            [LOG_LEVEL_DEBUG] = { "DEBUG", 10 }, [LOG_LEVEL_INFO] = { "INFO", 20 },
            [LOG_LEVEL_NOTICE] = { "INFO", 20 }, [LOG_LEVEL_WARNING] = { "WARNING", 30 },
            [LOG_LEVEL_ERROR] = { "ERROR", 40 },
        };
        bool known = r->level >= 0 && r->level < _LOG_LEVEL_MAX;
        return field == F_LEVELNAME ? (Value){ .str = known ? levels[r->level].name : "NOTSET" }
                                    : (Value){ .i = known ? levels[r->level].no : 0 };
    }
    case F_LINENO:
        return (Value){ .i = r->line };
    case F_MESSAGE:
    case F_MSG:
        return (Value){ .str = r->message ? r->message : "" };
    case F_MODULE:
    case F_NAME: {
        const char *b = base_name(file);
        const char *dot = strrchr(b, '.');
        int len = (int)(dot ? (size_t)(dot - b) : strlen(b));
        snprintf(scratch, size, field == F_NAME ? "dbha.%.*s" : "%.*s", len, b);
        return (Value){ .str = scratch };
    }
    case F_MSECS:
        return (Value){ .d = (double)ms };
    case F_PATHNAME:
        return (Value){ .str = file };
    case F_PROCESS:
        return (Value){ .i = r->pid };
    case F_PROCESSNAME:
        return (Value){ .str = "MainProcess" };
    case F_RELATIVECREATED:
        return (Value){ .d = ((double)(r->sec - r->start_sec) * 1e3 +
                              (double)(r->nsec - r->start_nsec) / 1e6) };
    case F_THREAD:
        return (Value){ .i = r->tid };
    case F_THREADNAME:
        return (Value){ .str = "MainThread" };
    case _F_MAX:
        break;
    }
    return (Value){ .str = "" };
}

/* The conversions were checked against the field's type when parsed, and
 * each spec is "%", flags, width and precision only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int put_field(const LogFmt *f, const Seg *s, const LogFmtRecord *r, char *out, size_t size)
{
    char scratch[256], num[64], spec[SPEC_MAX + 4];
    FieldKind kind = fields[s->field].kind;
    Value v = value_of(f, r, (Field)s->field, scratch, sizeof(scratch));
    const char *text = v.str;
    char quoted[300];
    switch (s->conv) {
    case 's':
    case 'r':
    case 'a':
        if (kind == KIND_INT) {
            snprintf(num, sizeof(num), "%lld", v.i);
            text = num;
        } else if (kind == KIND_FLOAT) {
            float_repr(v.d, num, sizeof(num));
            text = num;
        } else if (s->conv != 's') {
            snprintf(quoted, sizeof(quoted), "'%s'", v.str);
            text = quoted;
        }
        snprintf(spec, sizeof(spec), "%ss", s->spec);
        return snprintf(out, size, spec, text);
    case 'd':
    case 'i':
    case 'u':
        snprintf(spec, sizeof(spec), "%slld", s->spec);
        return snprintf(out, size, spec, kind == KIND_INT ? v.i : (long long)v.d);
    case 'o':
    case 'x':
    case 'X':
        snprintf(spec, sizeof(spec), "%sll%c", s->spec, s->conv);
        return snprintf(out, size, spec, v.i);
    default:
        snprintf(spec, sizeof(spec), "%s%c", s->spec, s->conv);
        return snprintf(out, size, spec, kind == KIND_INT ? (double)v.i : v.d);
    }
}
#pragma GCC diagnostic pop

size_t logfmt_format(const LogFmt *f, const LogFmtRecord *r, char *buf, size_t size)
{
    if (!buf || size == 0) {
        return 0;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; f && r && i < f->n && o + 1 < size; i++) {
        const Seg *s = &f->segs[i];
        if (s->field < 0) {
            size_t n = MIN(s->len, size - 1 - o);
            memcpy(buf + o, f->text + s->off, n);
            o += n;
            buf[o] = '\0';
            continue;
        }
        int n = put_field(f, s, r, buf + o, size - o);
        if (n < 0) {
            break;
        }
        o = MIN(o + (size_t)n, size - 1);
    }
    return o;
}
