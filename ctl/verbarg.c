/* The cluster name and --format of patronictl's command lines, checked the
 * same way for every verb that takes them. */
#include "verbarg.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"

#define VERBARG_USEC_PER_SEC 1000000ULL
/* click.clear() on a terminal: erase the screen, cursor to the top left */
#define VERBARG_CLEAR_SCREEN "\033[2J\033[1;1H"

int verbarg_check_cluster(const char *verb, const char *name)
{
    /* patronictl has no --scope: two different names on one command line
     * can only be a mistake, and a mutating verb must not guess */
    if (name && arg_scope && strcmp(name, arg_scope) != 0) {
        fprintf(stderr, "dbctl %s: cluster name \"%s\" does not match --scope \"%s\"\n", verb, name,
                arg_scope);
        return -EINVAL;
    }
    return 0;
}

int verbarg_format(const char *verb, const char *s, OutputFormat *ret)
{
    OutputFormat f = output_format_from_string(s);
    if (f < 0) {
        fprintf(stderr, "dbctl %s: unknown format \"%s\" (pretty, tsv, json, yaml)\n", verb, s);
        return -EINVAL;
    }
    *ret = f;
    return 0;
}

int verbarg_check_clusters(const char *verb, int n, char *const names[])
{
    for (int i = 0; i < n; i++) {
        if (verbarg_check_cluster(verb, names[i]) < 0) {
            return -EINVAL;
        }
    }
    return 0;
}

int verbarg_watch_seconds(const char *verb, const char *s, double *ret)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    /* patronictl's float(): also "1e-1"; a negative one it takes, prints
     * once and then fails on (time.sleep) */
    if (errno != 0 || !end || end == s || *end || !isfinite(v) || v < 0 ||
        v > VERBARG_WATCH_MAX_SEC) {
        fprintf(stderr, "dbctl %s: --watch needs seconds between 0 and %d (e.g. 0.5)\n", verb,
                VERBARG_WATCH_MAX_SEC);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

int verbarg_watch_count(const char *verb, const char *s, long *ret)
{
    if (!ctl_parse_long(s, 1, VERBARG_COUNT_MAX, ret)) {
        fprintf(stderr, "dbctl %s: --count needs a number between 1 and %d\n", verb,
                VERBARG_COUNT_MAX);
        return -EINVAL;
    }
    return 0;
}

double verbarg_watch_interval(const VerbWatch *w)
{
    if (w->seconds > 0) {
        return w->seconds;
    }
    return w->every_default ? VERBARG_WATCH_DEFAULT_SEC : 0;
}

int verbarg_watch_check(const char *verb, const VerbWatch *w)
{
    if (w->count > 0 && verbarg_watch_interval(w) <= 0) {
        fprintf(stderr, "dbctl %s: --count needs -W or --watch\n", verb);
        return -EINVAL;
    }
    return 0;
}

/* Sleeps seconds unless a signal of mask comes first (it is taken). Returns
 * the signal, or 0 when the time ran out. */
static int watch_sleep(const sigset_t *mask, double seconds)
{
    uint64_t end_usec = clock_monotonic_usec() + (uint64_t)(seconds * VERBARG_USEC_PER_SEC);
    for (;;) {
        uint64_t now_usec = clock_monotonic_usec();
        if (now_usec >= end_usec) {
            return 0;
        }
        uint64_t left_usec = end_usec - now_usec;
        struct timespec ts = {
            .tv_sec = (time_t)(left_usec / VERBARG_USEC_PER_SEC),
            .tv_nsec = (long)(left_usec % VERBARG_USEC_PER_SEC) * 1000,
        };
        int sig = sigtimedwait(mask, NULL, &ts);
        if (sig > 0) {
            return sig;
        }
        if (errno != EINTR) {
            return 0; /* EAGAIN: the time ran out */
        }
    }
}

int verbarg_watch_run(const VerbWatch *w, bool clear, VerbWatchRound round, void *userdata)
{
    double interval = verbarg_watch_interval(w);
    bool stop = false;
    if (interval <= 0) {
        return round(userdata, &stop);
    }
    /* the signals are taken synchronously between rounds, so the verb
     * frees what it holds before the exit */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    (void)sigprocmask(SIG_BLOCK, &mask, NULL);
    /* click.clear() writes nothing when stdout is not a terminal */
    bool clear_screen = clear && isatty(STDOUT_FILENO);
    int r = 0;
    for (long n = 1;; n++) {
        if (clear_screen) {
            fputs(VERBARG_CLEAR_SCREEN, stdout);
        }
        r = round(userdata, &stop);
        fflush(stdout);
        if (stop || (w->count > 0 && n >= w->count)) {
            return r;
        }
        int sig = watch_sleep(&mask, interval);
        if (sig == SIGINT) {
            /* click's KeyboardInterrupt handling: a newline, "Aborted!", 1 */
            fputs("\nAborted!\n", stderr);
            return 1;
        }
        if (sig == SIGTERM) {
            return VERBARG_WATCH_TERMINATED;
        }
    }
}

int verbarg_watch_exit(int r)
{
    if (r != VERBARG_WATCH_TERMINATED) {
        return r;
    }
    fflush(stdout);
    /* pending while blocked; delivered (default action) on the unblock */
    (void)signal(SIGTERM, SIG_DFL);
    (void)raise(SIGTERM);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    (void)sigprocmask(SIG_UNBLOCK, &mask, NULL);
    return 1;
}
