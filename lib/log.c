/* Logging backend: formats once, then writes either a timestamped line to
 * stderr (or a test FILE*) or, through the journal backend that
 * lib/log-journal.c installs, a structured journald entry. The settings are
 * process-wide by design: every module logs through the same sink. No
 * libsystemd here, so libdbha can link this file without it. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "logfmt.h"

#define LOG_LINE_MAX    4096
#define LOG_CONTEXT_MAX 128

static LogLevel log_max_level = LOG_LEVEL_INFO;
static LogTarget log_target = LOG_TARGET_STDERR;
static FILE *log_file;                  /* borrowed */
static LogJournalSend log_journal_send; /* NULL until log_setup_default() installs it */
static char log_member[LOG_CONTEXT_MAX];
static char log_scope[LOG_CONTEXT_MAX];
static char log_role[LOG_CONTEXT_MAX];
/* Patroni's log.format / log.dateformat (log_set_format); NULL: dbha's line */
static LogFmt *log_fmt;
static struct timespec log_start;

/* The sink's settings change at run time (a reload moves the log directory
 * or changes the format; the role changes) while other threads log: one
 * lock around every line and every change. Recursive: a journal backend
 * that logs its own failure comes back in. A fork (the fencing process,
 * jobs before their exec) takes it first, so that the child never starts
 * with it held by a thread that does not exist there. */
static pthread_mutex_t log_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_lock_acquire(void)
{
    (void)pthread_mutex_lock(&log_lock);
}

static void log_lock_release(void)
{
    (void)pthread_mutex_unlock(&log_lock);
}

/* In the child the lock is held by a thread of the parent (the one that
 * forked, whose thread id differs in the child): unlocking it there fails,
 * so the child starts with a new one (and its only thread holds none). */
static void log_lock_child(void)
{
    pthread_mutexattr_t attr;
    (void)pthread_mutexattr_init(&attr);
    (void)pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    (void)pthread_mutex_init(&log_lock, &attr);
    (void)pthread_mutexattr_destroy(&attr);
}

static void log_lock_setup(void)
{
    (void)pthread_atfork(log_lock_acquire, log_lock_release, log_lock_child);
}

static void lock(void)
{
    (void)pthread_once(&log_once, log_lock_setup);
    log_lock_acquire();
}

/* LOG_TARGET_DIR (log_set_dir) */
static struct {
    int fd;         /* -1: none */
    char *path;     /* DIR/patroni.log */
    long long max;  /* rotate at this size; 0: never */
    long long keep; /* old files kept; 0: never rotated */
    LogTarget before;
} log_dir = { .fd = -1 };

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
        lock();
        log_target = t;
        log_lock_release();
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
    lock();
    log_file = f;
    log_target = LOG_TARGET_FILE;
    log_lock_release();
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
    lock();
    set_context_field(log_member, member);
    set_context_field(log_scope, scope);
    set_context_field(log_role, role);
    log_lock_release();
}

static int open_log_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

static int set_dir(const char *dir, long long max_bytes, long long backups);

int log_set_dir(const char *dir, long long max_bytes, long long backups)
{
    lock();
    int r = set_dir(dir, max_bytes, backups);
    log_lock_release();
    return r;
}

static int set_dir(const char *dir, long long max_bytes, long long backups)
{
    if (!dir) {
        if (log_dir.fd >= 0) {
            (void)close(log_dir.fd);
            free(log_dir.path);
            log_dir.fd = -1;
            log_dir.path = NULL;
            log_target = log_dir.before;
        }
        return 0;
    }
    if (max_bytes < 0 || backups < 0) {
        return -EINVAL;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/patroni.log", dir) < 0) {
        return -ENOMEM;
    }
    int fd = open_log_path(path);
    if (fd < 0) {
        int r = -errno;
        free(path);
        return r;
    }
    if (log_dir.fd >= 0) {
        (void)close(log_dir.fd);
        free(log_dir.path);
    } else {
        log_dir.before = log_target;
    }
    log_dir.fd = fd;
    log_dir.path = path;
    log_dir.max = max_bytes;
    log_dir.keep = backups;
    log_target = LOG_TARGET_DIR;
    return 0;
}

/* Is our descriptor still the file at the path? */
static bool log_dir_is_current(const struct stat *ours)
{
    struct stat st;
    return stat(log_dir.path, &st) == 0 && st.st_ino == ours->st_ino && st.st_dev == ours->st_dev;
}

/* The new file takes our descriptor's number (dup2 replaces it in one
 * step): a line another thread writes meanwhile lands in the old file or
 * the new one, never on a closed descriptor (which sent it to stderr: seen
 * in test_log.py when the etcd watch thread logged during a rotation). */
static void log_dir_reopen(void)
{
    int fd = open_log_path(log_dir.path);
    if (fd < 0) {
        return;
    }
    if (dup3(fd, log_dir.fd, O_CLOEXEC) < 0) {
        (void)close(log_dir.fd);
        log_dir.fd = fd;
        return;
    }
    (void)close(fd);
}

/* Python's doRollover: .N-1 → .N, ..., .1 → .2, the file → .1, a new file. */
static void log_dir_rotate(void)
{
    char from[PATH_MAX + 32], to[PATH_MAX + 32];
    for (long long i = log_dir.keep - 1; i >= 1; i--) {
        snprintf(from, sizeof(from), "%s.%lld", log_dir.path, i);
        snprintf(to, sizeof(to), "%s.%lld", log_dir.path, i + 1);
        (void)rename(from, to); /* ENOENT: not that many yet */
    }
    snprintf(to, sizeof(to), "%s.1", log_dir.path);
    (void)rename(log_dir.path, to);
}

/* Before a line of len bytes: open the path again if the file was moved
 * away, and rotate when the line would bring it to the limit. Another
 * process of ours that shares the file (the fencing process) may rotate
 * too: the rotation holds an flock and first checks that the file is still
 * the one at the path. (A child forked before any rotation shares our open
 * file description, and with it the lock; two rotations at once then shift
 * the old files one place too far, losing the oldest early: the fencing
 * process logs rarely.) */
static void log_dir_prepare(size_t len)
{
    struct stat st;
    if (fstat(log_dir.fd, &st) < 0) {
        return;
    }
    if (!log_dir_is_current(&st)) {
        log_dir_reopen();
        if (fstat(log_dir.fd, &st) < 0) {
            return;
        }
    }
    if (log_dir.max <= 0 || log_dir.keep <= 0 || st.st_size == 0 ||
        (long long)st.st_size + (long long)len < log_dir.max) {
        return;
    }
    if (flock(log_dir.fd, LOCK_EX) < 0) {
        return;
    }
    if (log_dir_is_current(&st)) {
        log_dir_rotate();
    }
    (void)flock(log_dir.fd, LOCK_UN);
    log_dir_reopen();
}

static int set_format(const char *format, const char *datefmt);

int log_set_format(const char *format, const char *datefmt)
{
    lock();
    int r = set_format(format, datefmt);
    log_lock_release();
    return r;
}

static int set_format(const char *format, const char *datefmt)
{
    LogFmt *f = NULL;
    if (format) {
        int r = logfmt_parse(format, datefmt, &f, NULL);
        if (r < 0) {
            return r;
        }
    }
    logfmt_free(log_fmt);
    log_fmt = f;
    if (f && log_start.tv_sec == 0) {
        clock_gettime(CLOCK_REALTIME, &log_start);
    }
    return 0;
}

/* One line to out, or with out NULL to the LOG_TARGET_DIR file. */
static void write_line(FILE *out, LogLevel level, const char *file, int line_no, const char *func,
                       const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    char line[LOG_LINE_MAX + LOG_CONTEXT_MAX + 64];

    clock_gettime(CLOCK_REALTIME, &ts);
    int n;
    if (log_fmt) {
        LogFmtRecord rec = { .sec = ts.tv_sec,
                             .nsec = ts.tv_nsec,
                             .start_sec = log_start.tv_sec,
                             .start_nsec = log_start.tv_nsec,
                             .level = level,
                             .message = msg,
                             .file = file,
                             .line = line_no,
                             .func = func,
                             .pid = (long)getpid(),
                             .tid = (long)gettid() };
        size_t len = logfmt_format(log_fmt, &rec, line, sizeof(line) - 1);
        line[len++] = '\n';
        line[len] = '\0';
        n = (int)len;
    } else if (log_member[0]) {
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ld %-7s [%s] %s\n", stamp, ts.tv_nsec / 1000000L,
                     log_level_to_string(level), log_member, msg);
    } else {
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ld %-7s %s\n", stamp, ts.tv_nsec / 1000000L,
                     log_level_to_string(level), msg);
    }
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (!out && log_dir.fd >= 0) {
        log_dir_prepare(len);
        /* one write: O_APPEND keeps lines of processes sharing it whole */
        if (write(log_dir.fd, line, len) == (ssize_t)len) {
            return;
        }
        out = stderr; /* disk full, ...: stderr rather than lose the line */
    }
    fwrite(line, 1, len, out ? out : stderr);
    fflush(out ? out : stderr);
}

static void emit_locked(LogLevel level, const char *message_id, const char *file, int line,
                        const char *func, const char *msg);

static void emit(LogLevel level, const char *message_id, const char *file, int line,
                 const char *func, const char *msg)
{
    lock();
    emit_locked(level, message_id, file, line, func, msg);
    log_lock_release();
}

static void emit_locked(LogLevel level, const char *message_id, const char *file, int line,
                        const char *func, const char *msg)
{
    if (log_target == LOG_TARGET_JOURNAL && log_journal_send &&
        log_journal_send(level, message_id, file, line, func, msg, log_member, log_scope,
                         log_role) >= 0) {
        return;
    }
    if (log_target == LOG_TARGET_DIR && log_dir.fd >= 0) {
        write_line(NULL, level, file, line, func, msg);
        /* under systemd the journal keeps every line too, beside the file;
         * stderr does not (Patroni's file replaces its stream) */
        if (log_dir.before == LOG_TARGET_JOURNAL && log_journal_send) {
            (void)log_journal_send(level, message_id, file, line, func, msg, log_member, log_scope,
                                   log_role);
        }
        return;
    }
    /* no journal backend, or journald gone: stderr rather than lose the line */
    write_line(log_target == LOG_TARGET_FILE && log_file ? log_file : stderr, level, file, line,
               func, msg);
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
