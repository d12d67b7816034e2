/* Logging backend: formats once, then writes either a timestamped line to
 * stderr (or a test FILE*) or, through the journal backend that
 * lib/log-journal.c installs, a structured journald entry. The settings are
 * process-wide by design: every module logs through the same sink. No
 * libsystemd here, so libdbha can link this file without it. */
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOG_LINE_MAX    4096
#define LOG_CONTEXT_MAX 128

static LogLevel log_max_level = LOG_LEVEL_INFO;
static LogTarget log_target = LOG_TARGET_STDERR;
static FILE *log_file;                  /* borrowed */
static LogJournalSend log_journal_send; /* NULL until log_setup_default() installs it */
static char log_member[LOG_CONTEXT_MAX];
static char log_scope[LOG_CONTEXT_MAX];
static char log_role[LOG_CONTEXT_MAX];

static const char *const log_level_table[_LOG_LEVEL_MAX] = {
    [LOG_LEVEL_DEBUG] = "DEBUG",     [LOG_LEVEL_INFO] = "INFO",   [LOG_LEVEL_NOTICE] = "NOTICE",
    [LOG_LEVEL_WARNING] = "WARNING", [LOG_LEVEL_ERROR] = "ERROR",
};

const char *log_level_to_string(LogLevel l)
{
    if (l < 0 || l >= _LOG_LEVEL_MAX) {
        return NULL;
    }
    return log_level_table[l];
}

LogLevel log_level_from_string(const char *s)
{
    if (!s) {
        return _LOG_LEVEL_INVALID;
    }
    for (int i = 0; i < _LOG_LEVEL_MAX; i++) {
        if (strcasecmp(s, log_level_table[i]) == 0) {
            return (LogLevel)i;
        }
    }
    if (strcasecmp(s, "WARN") == 0) {
        return LOG_LEVEL_WARNING;
    }
    if (strcasecmp(s, "CRITICAL") == 0 || strcasecmp(s, "FATAL") == 0) {
        return LOG_LEVEL_ERROR;
    }
    return _LOG_LEVEL_INVALID;
}

void log_set_max_level(LogLevel l)
{
    if (l >= 0 && l < _LOG_LEVEL_MAX) {
        log_max_level = l;
    }
}

LogLevel log_get_max_level(void)
{
    return log_max_level;
}

void log_set_target(LogTarget t)
{
    if (t >= 0 && t < _LOG_TARGET_MAX) {
        log_target = t;
    }
}

LogTarget log_get_target(void)
{
    return log_target;
}

void log_set_journal_backend(LogJournalSend send)
{
    log_journal_send = send;
}

void log_set_file(FILE *f)
{
    log_file = f;
    log_target = LOG_TARGET_FILE;
}

static void set_context_field(char *dst, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    snprintf(dst, LOG_CONTEXT_MAX, "%s", src);
}

void log_set_context(const char *member, const char *scope, const char *role)
{
    set_context_field(log_member, member);
    set_context_field(log_scope, scope);
    set_context_field(log_role, role);
}

static void write_line(FILE *out, LogLevel level, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    if (log_member[0]) {
        fprintf(out, "%s.%03ld %-7s [%s] %s\n", stamp, ts.tv_nsec / 1000000L,
                log_level_to_string(level), log_member, msg);
    } else {
        fprintf(out, "%s.%03ld %-7s %s\n", stamp, ts.tv_nsec / 1000000L, log_level_to_string(level),
                msg);
    }
    fflush(out);
}

static void emit(LogLevel level, const char *message_id, const char *file, int line,
                 const char *func, const char *msg)
{
    if (log_target == LOG_TARGET_JOURNAL && log_journal_send &&
        log_journal_send(level, message_id, file, line, func, msg, log_member, log_scope,
                         log_role) >= 0) {
        return;
    }
    /* no journal backend, or journald gone: stderr rather than lose the line */
    write_line(log_target == LOG_TARGET_FILE && log_file ? log_file : stderr, level, msg);
}

/* Expands %m to strerror(error) before vsnprintf sees it, so it works the
 * same on every libc and with an explicit error code rather than errno. */
static void expand_percent_m(char *dst, size_t size, const char *fmt, int error)
{
    const char *errstr = strerror(error);
    size_t o = 0;
    for (const char *p = fmt; *p && o + 1 < size; p++) {
        if (p[0] == '%' && p[1] == '%') {
            if (o + 2 >= size) {
                break;
            }
            dst[o++] = '%';
            dst[o++] = '%';
            p++;
        } else if (p[0] == '%' && p[1] == 'm') {
            for (const char *e = errstr; *e && o + 1 < size; e++) {
                dst[o++] = *e == '%' ? '_' : *e;
            }
            p++;
        } else {
            dst[o++] = *p;
        }
    }
    dst[o] = '\0';
}

int log_internalv(LogLevel level, int error, const char *file, int line, const char *func,
                  const char *fmt, va_list ap)
{
    int ret = error == 0 ? 0 : -abs(error);
    if (level < log_max_level) {
        return ret;
    }
    char f[LOG_LINE_MAX];
    char msg[LOG_LINE_MAX];
    int saved = errno;
    expand_percent_m(f, sizeof(f), fmt, error != 0 ? abs(error) : saved);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(msg, sizeof(msg), f, ap);
#pragma GCC diagnostic pop
    emit(level, NULL, file, line, func, msg);
    errno = saved;
    return ret;
}

int log_internal(LogLevel level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = log_internalv(level, error, file, line, func, fmt, ap);
    va_end(ap);
    return r;
}

int log_struct_id(LogLevel level, const char *message_id, const char *fmt, ...)
{
    if (level < log_max_level) {
        return 0;
    }
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, message_id, NULL, 0, NULL, msg);
    return 0;
}

bool log_condition_update(LogCondition *c, bool failing, unsigned long long now_usec,
                          const char *detail)
{
    if (failing) {
        c->count++;
        if (c->active) {
            return false;
        }
        c->active = true;
        c->events++;
        c->since_usec = now_usec;
        c->count = 1;
        if (detail && *detail) {
            log_full(c->level, "%s: %s", c->name, detail);
        } else {
            log_full(c->level, "%s", c->name);
        }
        return true;
    }
    if (!c->active) {
        return false;
    }
    c->active = false;
    unsigned long long ms = now_usec >= c->since_usec ? (now_usec - c->since_usec) / 1000 : 0;
    log_info("%s: resolved after %llu.%03llu s (%lu checks failed)", c->name, ms / 1000, ms % 1000,
             c->count);
    return true;
}
