/* One logging API for dbagent, dbctl and the tests: levels, stderr with
 * timestamps by default, journald with structured fields under systemd, and
 * "log once per state change" conditions for repeated failures. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "macro.h"

typedef enum LogLevel {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
    _LOG_LEVEL_MAX,
    _LOG_LEVEL_INVALID = -EINVAL,
} LogLevel;

typedef enum LogTarget {
    LOG_TARGET_STDERR,  /* "2026-11-27 03:40:01.123 INFO  message" on stderr */
    LOG_TARGET_JOURNAL, /* sd_journal_send with PRIORITY and DBHA_* fields */
    LOG_TARGET_FILE,    /* like stderr, but to a FILE* given by log_set_file (tests) */
    LOG_TARGET_DIR,     /* like stderr, to DIR/patroni.log, rotated (log_set_dir) */
    _LOG_TARGET_MAX,
    _LOG_TARGET_INVALID = -EINVAL,
} LogTarget;

const char *log_level_to_string(LogLevel l);
/* Accepts our names and Patroni's/Python's (DEBUG, INFO, WARNING, ERROR,
 * CRITICAL, and WARN, NOTICE), case-insensitively. */
LogLevel log_level_from_string(const char *s);

/* The process-wide log settings (the only global mutable state besides
 * dbctl's options). log_setup_default() (lib/log-journal.c) installs the
 * journal backend and picks the journal when stderr is connected to it
 * (JOURNAL_STREAM names stderr's device:inode), else stderr; it also reads
 * DBHA_LOG_LEVEL. */
void log_setup_default(void);
void log_set_max_level(LogLevel l);
LogLevel log_get_max_level(void);
void log_set_target(LogTarget t);
LogTarget log_get_target(void);
/* Borrowed FILE* for LOG_TARGET_FILE; selecting it also sets the target. */
void log_set_file(FILE *f);
/* Patroni's log.dir, log.file_size and log.file_num: lines go to
 * DIR/patroni.log (created 0640, appended to) instead of stderr, and
 * beside the journal when that was the target. As Python's RotatingFileHandler, which Patroni uses:
 * when a line would bring a non-empty file to max_bytes or more, patroni.log.N-1 becomes .N, ...,
 * patroni.log becomes .1 and a new patroni.log is started, keeping `backups` old files; max_bytes
 * or backups 0: never rotated. A file renamed or removed under us (logrotate, another process of
 * ours that rotated) is noticed at the next line and DIR/patroni.log opened again. dir NULL returns
 * to the target before. The settings change only when the file opens: returns 0 or -errno (nothing
 * changed then). */
int log_set_dir(const char *dir, long long max_bytes, long long backups);

/* Writes one structured journal entry; returns >= 0 or -errno. */
typedef int (*LogJournalSend)(LogLevel level, const char *message_id, const char *file, int line,
                              const char *func, const char *msg, const char *member,
                              const char *scope, const char *role);
/* The LOG_TARGET_JOURNAL backend; log_setup_default() installs the libsystemd
 * one. It lives in its own object so that code linking only log.c (libdbha)
 * needs no libsystemd: without a backend the journal target writes to stderr. */
void log_set_journal_backend(LogJournalSend send);

/* Patroni's log.format and log.dateformat (lib/logfmt.h) for the lines
 * written to stderr, a FILE or log.dir; NULL format: dbha's own line
 * ("2024-01-02 03:04:05.678 INFO    [member] message", UTC). The journal
 * keeps the bare message with its fields. Returns 0, -EINVAL (a format
 * logfmt_parse() refuses; the previous one stays), -ENOMEM. */
int log_set_format(const char *format, const char *datefmt);

/* Context fields added to every journal entry and, when set, shown on stderr
 * as "[member]". Strings are copied; NULL clears. */
void log_set_context(const char *member, const char *scope, const char *role);

/* Returns -abs(error) when error != 0 (so `return log_error_errno(r, ...)`
 * works), else 0. "%m" in fmt expands to strerror(abs(error)). */
int log_internal(LogLevel level, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) _printf_(6, 7);
int log_internalv(LogLevel level, int error, const char *file, int line, const char *func,
                  const char *fmt, va_list ap) _printf_(6, 0);

/* Structured entry: MESSAGE_ID (a 32-hex-digit id) plus the message. On
 * stderr only the message is printed. */
int log_struct_id(LogLevel level, const char *message_id, const char *fmt, ...) _printf_(3, 4);

#define log_full_errno(level, error, ...)                                                          \
    log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void)log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_LEVEL_ERROR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_LEVEL_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_LEVEL_INFO, (e), __VA_ARGS__)
#define log_notice_errno(e, ...)  log_full_errno(LOG_LEVEL_NOTICE, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_LEVEL_ERROR, (e), __VA_ARGS__)

/* A repeated condition (etcd unreachable, PostgreSQL down): logged once when
 * it starts, at `level`, and once when it ends, at info, with how long it
 * lasted and how many times it was seen. Embed one per condition. */
typedef struct LogCondition {
    const char *name; /* borrowed: "etcd unreachable" */
    LogLevel level;
    bool active;
    unsigned long count;  /* observations while active */
    unsigned long events; /* times the condition started */
    unsigned long long since_usec;
} LogCondition;

#define LOG_CONDITION_INIT(n, lvl)                                                                 \
    {                                                                                              \
        .name = (n), .level = (lvl)                                                                \
    }

/* Report one observation at monotonic time now_usec. When `failing` flips,
 * one line is logged (detail, when given, is appended after ": "). Returns
 * true when the state changed. */
bool log_condition_update(LogCondition *c, bool failing, unsigned long long now_usec,
                          const char *detail);
