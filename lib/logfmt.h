/* Patroni's log.format and log.dateformat: a Python logging %-style format
 * ("%(asctime)s %(levelname)s: %(message)s") of a LogRecord's fields, and
 * the strftime format of %(asctime)s. Parsed once, then applied to each
 * line. Pure: no I/O, nothing logged. */
#pragma once

#include <stddef.h>

#include "log.h"

typedef struct LogFmt LogFmt;

/* What a record holds, as Python's LogRecord would. */
typedef struct LogFmtRecord {
    long long sec; /* CLOCK_REALTIME */
    long nsec;
    long long start_sec; /* when logging started (relativeCreated) */
    long start_nsec;
    LogLevel level;
    const char *message;
    const char *file; /* __FILE__, may be NULL */
    int line;
    const char *func; /* may be NULL */
    long pid, tid;
} LogFmtRecord;

/* format as Python's logging.Formatter(format, datefmt) takes it (style
 * '%'), refusing what it would refuse or fail on for every record: no
 * %(field) at all, an unknown field, a conversion the field's type cannot
 * take, a '*' width. datefmt NULL or "": Python's default asctime. Returns
 * 0 with *ret set, -EINVAL with *why (a static text: what is expected), or
 * -ENOMEM. */
int logfmt_parse(const char *format, const char *datefmt, LogFmt **ret, const char **why);
void logfmt_free(LogFmt *f);

/* The line (no newline) into buf, NUL-terminated, cut to size - 1 bytes.
 * Returns its length. */
size_t logfmt_format(const LogFmt *f, const LogFmtRecord *r, char *buf, size_t size);
