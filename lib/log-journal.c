/* The journald part of lib/log: the journal backend (sd_journal_send with
 * PRIORITY, MESSAGE_ID and DBHA_* fields) and log_setup_default(), which
 * installs it and picks the target. Kept apart from log.c so that only the
 * binaries, which call log_setup_default(), link libsystemd; libdbha links
 * log.c without it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#define LOG_CODE_LINE_MAX 16

static int level_to_syslog(LogLevel l)
{
    switch (l) {
    case LOG_LEVEL_DEBUG:
        return LOG_DEBUG;
    case LOG_LEVEL_INFO:
        return LOG_INFO;
    case LOG_LEVEL_NOTICE:
        return LOG_NOTICE;
    case LOG_LEVEL_WARNING:
        return LOG_WARNING;
    default:
        return LOG_ERR;
    }
}

static int journal_send(LogLevel level, const char *message_id, const char *file, int line,
                        const char *func, const char *msg, const char *member, const char *scope,
                        const char *role)
{
    char code_line[LOG_CODE_LINE_MAX];
    snprintf(code_line, sizeof(code_line), "%d", line);
    if (message_id) {
        return sd_journal_send(
            "MESSAGE=%s", msg, "PRIORITY=%d", level_to_syslog(level), "MESSAGE_ID=%s", message_id,
            "DBHA_MEMBER=%s", member, "DBHA_SCOPE=%s", scope, "DBHA_ROLE=%s", role, "CODE_FILE=%s",
            strempty(file), "CODE_LINE=%s", code_line, "CODE_FUNC=%s", strempty(func), NULL);
    }
    return sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level_to_syslog(level),
                           "DBHA_MEMBER=%s", member, "DBHA_SCOPE=%s", scope, "DBHA_ROLE=%s", role,
                           "CODE_FILE=%s", strempty(file), "CODE_LINE=%s", code_line,
                           "CODE_FUNC=%s", strempty(func), NULL);
}

/* systemd sets JOURNAL_STREAM=<dev>:<ino> for the stream it connected to
 * stdout/stderr; only trust it when stderr really is that stream (a child
 * started from a shell under the unit inherits the variable, not the fd). */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    if (!e || !*e) {
        return false;
    }
    unsigned long long dev, ino;
    if (sscanf(e, "%llu:%llu", &dev, &ino) != 2) {
        return false;
    }
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0) {
        return false;
    }
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup_default(void)
{
    log_set_journal_backend(journal_send);
    log_set_target(stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR);
    const char *lvl = getenv("DBHA_LOG_LEVEL");
    if (lvl) {
        LogLevel l = log_level_from_string(lvl);
        if (l >= 0) {
            log_set_max_level(l);
        }
    }
}
