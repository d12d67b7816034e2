/* pgbouncer.ini, read and rewritten line by line. pgbouncer's parser takes a
 * line as a comment when its first non-blank character is ';' or '#', as a
 * section header when it is '[', and otherwise as `key = value` with the
 * value running to the end of the line (no inline comments). A [databases]
 * value is a libpq-style connection string: `key=value` pairs separated by
 * spaces, a value in single quotes with '' for a quote. The rewrite edits
 * only the byte ranges of the values it changes, so an operator's layout,
 * comments and other settings survive every failover. */
#include "pgbini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

#define DATABASES_SECTION "databases"
/* Parameters dbha sets on an entry, in the order they are appended. */
#define OWNED_PARAMS 3

typedef enum LineKind {
    LINE_BLANK,
    LINE_COMMENT,
    LINE_SECTION,
    LINE_KEY_VALUE,
    LINE_OTHER, /* %include, or text pgbouncer would reject: kept as is */
} LineKind;

/* One line of the text; offsets into it. */
typedef struct Line {
    size_t start, end; /* [start, end): the line without its terminator */
    size_t next;       /* start of the next line (end + terminator length) */
    LineKind kind;
    size_t name_start, name_end;   /* section name or key, trimmed */
    size_t value_start, value_end; /* key-value: the value, trimmed */
} Line;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Splits the line that starts at pos. */
static Line line_at(const char *text, size_t len, size_t pos)
{
    Line l = { .start = pos };
    const char *nl = memchr(text + pos, '\n', len - pos);
    l.end = nl ? (size_t)(nl - text) : len;
    l.next = nl ? l.end + 1 : len;
    if (l.end > l.start && text[l.end - 1] == '\r') {
        l.end--;
    }
    size_t p = l.start;
    while (p < l.end && is_blank(text[p])) {
        p++;
    }
    if (p == l.end) {
        l.kind = LINE_BLANK;
        return l;
    }
    if (text[p] == ';' || text[p] == '#') {
        l.kind = LINE_COMMENT;
        return l;
    }
    if (text[p] == '[') {
        const char *close = memchr(text + p, ']', l.end - p);
        if (!close) {
            l.kind = LINE_OTHER;
            return l;
        }
        l.kind = LINE_SECTION;
        l.name_start = p + 1;
        l.name_end = (size_t)(close - text);
        while (l.name_start < l.name_end && is_blank(text[l.name_start])) {
            l.name_start++;
        }
        while (l.name_end > l.name_start && is_blank(text[l.name_end - 1])) {
            l.name_end--;
        }
        return l;
    }
    if (text[p] == '%') {
        l.kind = LINE_OTHER;
        return l;
    }
    const char *eq = memchr(text + p, '=', l.end - p);
    if (!eq) {
        l.kind = LINE_OTHER;
        return l;
    }
    l.kind = LINE_KEY_VALUE;
    l.name_start = p;
    l.name_end = (size_t)(eq - text);
    while (l.name_end > l.name_start && is_blank(text[l.name_end - 1])) {
        l.name_end--;
    }
    l.value_start = (size_t)(eq - text) + 1;
    while (l.value_start < l.end && is_blank(text[l.value_start])) {
        l.value_start++;
    }
    l.value_end = l.end;
    while (l.value_end > l.value_start && is_blank(text[l.value_end - 1])) {
        l.value_end--;
    }
    return l;
}

/* The file's line end, "\r\n" or "\n": that of its first line; a text
 * without '\n' that ends in '\r' is a CRLF file cut short. */
static const char *line_end_style(const char *text, size_t len)
{
    const char *nl = memchr(text, '\n', len);
    if (nl) {
        return nl > text && nl[-1] == '\r' ? "\r\n" : "\n";
    }
    return len > 0 && text[len - 1] == '\r' ? "\r\n" : "\n";
}

/* What a text's last line needs before a line can follow it: nothing after
 * '\n', the '\n' of "\r\n" after a bare '\r' (line_at() reads that '\r' as
 * the line's end, so text added after it must not join the line), else a
 * whole line end. */
static const char *last_line_completion(const char *text, size_t len, const char *eol)
{
    if (len == 0 || text[len - 1] == '\n') {
        return "";
    }
    return text[len - 1] == '\r' ? "\n" : eol;
}

static bool span_eq_ci(const char *text, size_t start, size_t end, const char *s)
{
    size_t n = strlen(s);
    return end - start == n && strncasecmp(text + start, s, n) == 0;
}

/* A [databases] key compares exactly; "quoted" keys without their quotes. */
static bool db_key_eq(const char *text, const Line *l, const char *name)
{
    size_t s = l->name_start, e = l->name_end;
    if (e - s >= 2 && text[s] == '"' && text[e - 1] == '"') {
        s++;
        e--;
    }
    size_t n = strlen(name);
    return e - s == n && memcmp(text + s, name, n) == 0;
}

static char *strndup_span(const char *text, size_t start, size_t end)
{
    return strndup(text + start, end - start);
}

int pgbini_get(const char *text, size_t len, const char *section, const char *key, char **ret_value)
{
    bool in_section = false;
    bool found = false;
    Line hit = { 0 };
    for (size_t pos = 0; pos < len;) {
        Line l = line_at(text, len, pos);
        pos = l.next;
        if (l.kind == LINE_SECTION) {
            in_section = span_eq_ci(text, l.name_start, l.name_end, section);
        } else if (in_section && l.kind == LINE_KEY_VALUE &&
                   span_eq_ci(text, l.name_start, l.name_end, key)) {
            hit = l;
            found = true;
        }
    }
    if (!found) {
        return -ENOENT;
    }
    char *v = strndup_span(text, hit.value_start, hit.value_end);
    if (!v) {
        return -ENOMEM;
    }
    *ret_value = v;
    return 0;
}

/* ---- connection strings ---- */

/* One `key=value` of a connection string; offsets into the text. */
typedef struct Param {
    size_t start, end;             /* the whole pair */
    size_t key_start, key_end;     /* the key */
    size_t value_start, value_end; /* the value as written (quotes included) */
} Param;

#define PARAMS_MAX 64

typedef struct Params {
    Param items[PARAMS_MAX];
    size_t n;
} Params;

static bool is_sep(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits text[start, end) as pgbouncer does. Returns 0, or -EINVAL with a
 * message. */
static int params_parse(const char *text, size_t start, size_t end, Params *ret,
                        const char **ret_why)
{
    Params ps = { .n = 0 };
    size_t p = start;
    for (;;) {
        while (p < end && is_sep(text[p])) {
            p++;
        }
        if (p == end) {
            break;
        }
        if (ps.n == PARAMS_MAX) {
            *ret_why = "too many parameters";
            return -EINVAL;
        }
        Param *pa = &ps.items[ps.n];
        pa->start = pa->key_start = p;
        while (p < end && text[p] != '=' && !is_sep(text[p])) {
            p++;
        }
        pa->key_end = p;
        while (p < end && is_sep(text[p])) {
            p++;
        }
        if (p == end || text[p] != '=' || pa->key_end == pa->key_start) {
            *ret_why = "a parameter without \"=\"";
            return -EINVAL;
        }
        p++;
        while (p < end && is_sep(text[p])) {
            p++;
        }
        pa->value_start = p;
        if (p < end && text[p] == '\'') {
            p++;
            for (;;) {
                if (p >= end) {
                    *ret_why = "an unterminated quote";
                    return -EINVAL;
                }
                if (text[p] == '\'') {
                    if (p + 1 < end && text[p + 1] == '\'') {
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                p++;
            }
        } else {
            while (p < end && !is_sep(text[p])) {
                p++;
            }
            if (p == pa->value_start) {
                *ret_why = "a parameter without a value";
                return -EINVAL;
            }
        }
        pa->value_end = pa->end = p;
        ps.n++;
    }
    *ret = ps;
    return 0;
}

/* The value of a parameter without its quotes. */
static char *param_value(const char *text, const Param *pa)
{
    size_t s = pa->value_start, e = pa->value_end;
    if (e - s < 2 || text[s] != '\'') {
        return strndup_span(text, s, e);
    }
    char *v = malloc(e - s);
    if (!v) {
        return NULL;
    }
    size_t n = 0;
    for (size_t p = s + 1; p < e - 1; p++) {
        v[n++] = text[p];
        if (text[p] == '\'') {
            p++; /* '' is one quote */
        }
    }
    v[n] = 0;
    return v;
}

static bool param_key_is(const char *text, const Param *pa, const char *key)
{
    size_t n = strlen(key);
    return pa->key_end - pa->key_start == n && memcmp(text + pa->key_start, key, n) == 0;
}

int pgbini_get_database_param(const char *text, size_t len, const char *db, const char *param,
                              char **ret_value)
{
    bool in_section = false;
    bool found = false;
    Line hit = { 0 };
    for (size_t pos = 0; pos < len;) {
        Line l = line_at(text, len, pos);
        pos = l.next;
        if (l.kind == LINE_SECTION) {
            in_section = span_eq_ci(text, l.name_start, l.name_end, DATABASES_SECTION);
        } else if (in_section && l.kind == LINE_KEY_VALUE && db_key_eq(text, &l, db)) {
            hit = l;
            found = true;
        }
    }
    if (!found) {
        return -ENOENT;
    }
    Params ps;
    const char *why = NULL;
    int r = params_parse(text, hit.value_start, hit.value_end, &ps, &why);
    if (r < 0) {
        return r;
    }
    for (size_t i = ps.n; i > 0; i--) {
        if (param_key_is(text, &ps.items[i - 1], param)) {
            char *v = param_value(text, &ps.items[i - 1]);
            if (!v) {
                return -ENOMEM;
            }
            *ret_value = v;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- auth_file ---- */

/* A double-quoted word at *pos within [*pos, end), unquoted into a new
 * string; NULL when there is none (or on ENOMEM: *ret_nomem). */
static char *quoted_word(const char *text, size_t *pos, size_t end, bool *ret_nomem)
{
    size_t p = *pos;
    while (p < end && is_blank(text[p])) {
        p++;
    }
    if (p >= end || text[p] != '"') {
        return NULL;
    }
    char *w = malloc(end - p);
    if (!w) {
        *ret_nomem = true;
        return NULL;
    }
    size_t n = 0;
    for (p++; p < end; p++) {
        if (text[p] == '"') {
            if (p + 1 < end && text[p + 1] == '"') {
                w[n++] = '"';
                p++;
                continue;
            }
            w[n] = 0;
            *pos = p + 1;
            return w;
        }
        w[n++] = text[p];
    }
    free(w); /* unterminated */
    return NULL;
}

int pgbini_userlist_password(const char *text, size_t len, const char *user, char **ret_password)
{
    for (size_t pos = 0; pos < len;) {
        Line l = line_at(text, len, pos);
        pos = l.next;
        size_t p = l.start;
        bool nomem = false;
        _cleanup_free_ char *name = quoted_word(text, &p, l.end, &nomem);
        if (nomem) {
            return -ENOMEM;
        }
        if (!name || strcmp(name, user) != 0) {
            continue;
        }
        char *pw = quoted_word(text, &p, l.end, &nomem);
        if (nomem) {
            return -ENOMEM;
        }
        if (pw) {
            *ret_password = pw;
            return 0;
        }
    }
    return -ENOENT;
}

bool pgbini_password_is_hashed(const char *password)
{
    size_t n = strlen(password);
    return (n == 35 && strncmp(password, "md5", 3) == 0 &&
            strspn(password + 3, "0123456789abcdef") == 32) ||
           strncmp(password, "SCRAM-SHA-256$", strlen("SCRAM-SHA-256$")) == 0;
}

/* ---- the rewrite ---- */

/* A growing output text; `failed` sticks after an allocation failure. */
typedef struct Out {
    char *buf; /* owned */
    size_t len, size;
    bool failed;
} Out;

static void out_add(Out *o, const char *s, size_t n)
{
    if (o->failed) {
        return;
    }
    if (o->len + n + 1 > o->size) {
        size_t size = o->size ? o->size : 256;
        while (o->len + n + 1 > size) {
            size *= 2;
        }
        char *b = realloc(o->buf, size);
        if (!b) {
            o->failed = true;
            return;
        }
        o->buf = b;
        o->size = size;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = 0;
}

static void out_str(Out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

/* A value as pgbouncer reads it back: bare when it holds no blank and no
 * quote, else in single quotes with '' for a quote. */
static void out_value(Out *o, const char *v)
{
    if (*v && !strpbrk(v, " \t'")) {
        out_str(o, v);
        return;
    }
    out_str(o, "'");
    for (const char *p = v; *p; p++) {
        out_add(o, p, 1);
        if (*p == '\'') {
            out_add(o, p, 1);
        }
    }
    out_str(o, "'");
}

static void out_param(Out *o, const char *key, const char *value)
{
    out_str(o, key);
    out_str(o, "=");
    out_value(o, value);
}

static int set_error(PgbIniError *e, unsigned line, const char *fmt, ...) _printf_(3, 4);
static int set_error(PgbIniError *e, unsigned line, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        e->line = line;
        va_start(ap, fmt);
        (void)vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool has_any(const char *s, const char *chars)
{
    return strpbrk(s, chars) != NULL;
}

static int target_check(const PgbIniTarget *t, PgbIniError *e)
{
    if (!t->name || !*t->name || has_any(t->name, " \t\r\n=[]\"")) {
        return set_error(e, 0, "invalid database name \"%s\"", strempty(t->name));
    }
    if (!t->host || !*t->host || has_any(t->host, "\r\n")) {
        return set_error(e, 0, "invalid host for database \"%s\"", t->name);
    }
    if (t->port < 1 || t->port > UINT16_MAX) {
        return set_error(e, 0, "invalid port %d for database \"%s\"", t->port, t->name);
    }
    if (!t->dbname || !*t->dbname || has_any(t->dbname, "\r\n")) {
        return set_error(e, 0, "invalid dbname for database \"%s\"", t->name);
    }
    return 0;
}

/* The entry line l with the target's parameters set, into o. */
static int rewrite_entry(const char *text, const Line *l, unsigned lineno, const PgbIniTarget *t,
                         Out *o, PgbIniError *e)
{
    Params ps;
    const char *why = NULL;
    if (params_parse(text, l->value_start, l->value_end, &ps, &why) < 0) {
        return set_error(e, lineno, "database \"%s\": %s", t->name, why);
    }
    char port[sizeof("65535")];
    (void)snprintf(port, sizeof(port), "%d", t->port);
    const char *keys[OWNED_PARAMS] = { PGBINI_PARAM_HOST, PGBINI_PARAM_PORT, PGBINI_PARAM_DBNAME };
    const char *values[OWNED_PARAMS] = { t->host, port, t->dbname };
    bool seen[OWNED_PARAMS] = { false };

    out_add(o, text + l->start, l->value_start - l->start);
    size_t pos = l->value_start;
    for (size_t i = 0; i < ps.n; i++) {
        const Param *pa = &ps.items[i];
        out_add(o, text + pos, pa->start - pos);
        pos = pa->end;
        size_t k = 0;
        while (k < OWNED_PARAMS && !param_key_is(text, pa, keys[k])) {
            k++;
        }
        if (k == OWNED_PARAMS) {
            out_add(o, text + pa->start, pa->end - pa->start);
            continue;
        }
        seen[k] = true;
        _cleanup_free_ char *old = param_value(text, pa);
        if (!old) {
            return -ENOMEM;
        }
        if (strcmp(old, values[k]) == 0) {
            out_add(o, text + pa->start, pa->end - pa->start);
        } else {
            out_param(o, keys[k], values[k]);
            /* a quoted value may end right where the next parameter
             * begins ("host='a'port=1"): keep the new value apart from it */
            if (pa->end < l->value_end && !is_sep(text[pa->end])) {
                out_str(o, " ");
            }
        }
    }
    out_add(o, text + pos, l->value_end - pos);
    for (size_t k = 0; k < OWNED_PARAMS; k++) {
        if (!seen[k]) {
            /* a blank before it, unless it is the first after "name = " */
            if (ps.n > 0 || k > 0 || text[l->value_start - 1] == '=') {
                out_str(o, " ");
            }
            out_param(o, keys[k], values[k]);
        }
    }
    out_add(o, text + l->value_end, l->next - l->value_end);
    return 0;
}

/* A new entry line for t. */
static void new_entry(Out *o, const PgbIniTarget *t, const char *eol)
{
    char port[sizeof("65535")];
    (void)snprintf(port, sizeof(port), "%d", t->port);
    out_str(o, t->name);
    out_str(o, " = ");
    out_param(o, PGBINI_PARAM_HOST, t->host);
    out_str(o, " ");
    out_param(o, PGBINI_PARAM_PORT, port);
    out_str(o, " ");
    out_param(o, PGBINI_PARAM_DBNAME, t->dbname);
    out_str(o, eol);
}

int pgbini_rewrite_databases(const char *text, size_t len, const PgbIniTarget *targets,
                             size_t n_targets, char **ret_text, size_t *ret_len, bool *ret_changed,
                             PgbIniError *reterr)
{
    for (size_t i = 0; i < n_targets; i++) {
        int r = target_check(&targets[i], reterr);
        if (r < 0) {
            return r;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(targets[i].name, targets[j].name) == 0) {
                return set_error(reterr, 0, "database \"%s\" given twice", targets[i].name);
            }
        }
    }

    /* First pass: which targets have an entry, where entries may be added,
     * the line end style. */
    bool *found = calloc(n_targets ? n_targets : 1, sizeof(bool));
    if (!found) {
        return -ENOMEM;
    }
    const char *eol = line_end_style(text, len);
    bool in_db = false, have_db = false;
    size_t insert_at = SIZE_MAX; /* after the last line of [databases]' entries */
    size_t first_section = len;  /* where a missing [databases] goes */
    bool first_section_seen = false;
    for (size_t pos = 0; pos < len;) {
        Line l = line_at(text, len, pos);
        pos = l.next;
        if (l.kind == LINE_SECTION) {
            if (!first_section_seen) {
                first_section = l.start;
                first_section_seen = true;
            }
            in_db = span_eq_ci(text, l.name_start, l.name_end, DATABASES_SECTION);
            if (in_db) {
                have_db = true;
                insert_at = l.next;
            }
        } else if (in_db && l.kind == LINE_KEY_VALUE) {
            insert_at = l.next;
            for (size_t i = 0; i < n_targets; i++) {
                if (db_key_eq(text, &l, targets[i].name)) {
                    found[i] = true;
                }
            }
        }
    }

    Out o = { 0 };
    int r = 0;
    in_db = false;
    unsigned lineno = 0;
    for (size_t pos = 0; pos < len && r >= 0;) {
        Line l = line_at(text, len, pos);
        lineno++;
        if (!have_db && pos == first_section && first_section_seen) {
            out_str(&o, "[databases]");
            out_str(&o, eol);
            for (size_t i = 0; i < n_targets; i++) {
                new_entry(&o, &targets[i], eol);
            }
            out_str(&o, eol);
        }
        pos = l.next;
        if (l.kind == LINE_SECTION) {
            in_db = span_eq_ci(text, l.name_start, l.name_end, DATABASES_SECTION);
        }
        const PgbIniTarget *t = NULL;
        for (size_t i = 0; in_db && l.kind == LINE_KEY_VALUE && i < n_targets; i++) {
            if (db_key_eq(text, &l, targets[i].name)) {
                t = &targets[i];
            }
        }
        if (t) {
            r = rewrite_entry(text, &l, lineno, t, &o, reterr);
        } else {
            out_add(&o, text + l.start, l.next - l.start);
        }
        if (have_db && l.next == insert_at) {
            bool missing = false;
            for (size_t i = 0; i < n_targets; i++) {
                missing = missing || !found[i];
            }
            if (missing && l.next == len) {
                out_str(&o, last_line_completion(text, len, eol));
            }
            for (size_t i = 0; i < n_targets; i++) {
                if (!found[i]) {
                    new_entry(&o, &targets[i], eol);
                }
            }
        }
    }
    if (r >= 0 && !have_db && !first_section_seen) {
        out_str(&o, last_line_completion(text, len, eol));
        out_str(&o, "[databases]");
        out_str(&o, eol);
        for (size_t i = 0; i < n_targets; i++) {
            new_entry(&o, &targets[i], eol);
        }
    }
    free(found);
    if (r >= 0 && !o.buf) {
        out_add(&o, "", 0);
    }
    if (r >= 0 && o.failed) {
        r = -ENOMEM;
    }
    if (r < 0) {
        free(o.buf);
        return r;
    }
    *ret_changed = o.len != len || memcmp(o.buf, text, len) != 0;
    *ret_len = o.len;
    *ret_text = o.buf;
    return 0;
}

/* ---- the choice from the topology document ---- */

static bool host_from(const json_t *m, PgbIniHost *ret)
{
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *host = json_string_value(json_object_get(m, "host"));
    const json_t *port = json_object_get(m, "port");
    if (!name || !host || !*host || !json_is_integer(port) || json_integer_value(port) < 1 ||
        json_integer_value(port) > UINT16_MAX) {
        return false;
    }
    *ret = (PgbIniHost){ .name = name, .host = host, .port = (int)json_integer_value(port) };
    return true;
}

bool pgbini_replica_healthy(const json_t *replica)
{
    const char *state = json_string_value(json_object_get(replica, "state"));
    const json_t *lag = json_object_get(replica, "lag_bytes");
    if (!state || json_is_true(json_object_get(replica, "noloadbalance"))) {
        return false;
    }
    return strcmp(state, "streaming") == 0 ||
           (strcmp(state, "running") == 0 && json_is_integer(lag));
}

/* Orders healthy replicas: known lag before unknown, less lag first. */
static bool lag_better(const json_t *a, const json_t *b)
{
    const json_t *la = json_object_get(a, "lag_bytes"), *lb = json_object_get(b, "lag_bytes");
    if (!json_is_integer(lb)) {
        return json_is_integer(la);
    }
    return json_is_integer(la) && json_integer_value(la) < json_integer_value(lb);
}

int pgbini_choose(const json_t *doc, const char *current_host, int current_port, PgbIniChoice *ret)
{
    if (!json_is_object(doc)) {
        return -EINVAL;
    }
    const json_t *primary = json_object_get(doc, "primary");
    const json_t *replicas = json_object_get(doc, "replicas");
    if ((primary && !json_is_object(primary) && !json_is_null(primary)) ||
        (replicas && !json_is_array(replicas) && !json_is_null(replicas))) {
        return -EINVAL;
    }
    PgbIniChoice c = { 0 };
    if (json_is_object(primary) && !host_from(primary, &c.primary)) {
        c.primary = (PgbIniHost){ 0 };
    }
    const json_t *best = NULL;
    PgbIniHost best_host = { 0 };
    size_t i;
    const json_t *m;
    json_array_foreach(replicas, i, m)
    {
        PgbIniHost h;
        if (!json_is_object(m) || !pgbini_replica_healthy(m) || !host_from(m, &h)) {
            continue;
        }
        if (current_host && strcmp(h.host, current_host) == 0 && h.port == current_port) {
            best = m;
            best_host = h;
            break;
        }
        if (!best || lag_better(m, best)) {
            best = m;
            best_host = h;
        }
    }
    if (best) {
        c.replica = best_host;
    } else if (c.primary.name) {
        c.replica = c.primary;
        c.replica_is_primary = true;
    }
    *ret = c;
    return 0;
}
