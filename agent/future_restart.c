/* A scheduled restart: Patroni 3.0.2's parse of POST /restart and its
 * decision at each loop, pure. Messages and status codes are Patroni's
 * (api.py parse_schedule, do_POST_restart; postgresql/misc.py
 * postgres_version_to_int; utils.py parse_int). */
#include "future_restart.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dcs.h"
#include "macro.h"

#define FUTURE_RESTART_TIME_MAX 64
#define FUTURE_RESTART_FRAC_MAX 16 /* ".123456" */

static void set_msg(char *msg, size_t msglen, const char *fmt, ...) _printf_(3, 4);
static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

int future_restart_version_to_int(const char *s, int *ret, char *msg, size_t msglen)
{
    long parts[3];
    size_t n = 0;
    const char *p = s ? s : "";
    /* Python's int() of each dot-separated part: digits, blanks around */
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        char *end;
        if (!isdigit((unsigned char)*p) &&
            !((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]))) {
            goto invalid;
        }
        long v = strtol(p, &end, 10);
        p = end;
        while (*p == ' ') {
            p++;
        }
        if (n < ELEMENTSOF(parts)) {
            parts[n] = v;
        }
        n++;
        if (*p == '\0') {
            break;
        }
        if (*p++ != '.') {
            goto invalid;
        }
    }
    if (n < 2 || (n == 2 && parts[0] < 10) || n > 3) {
        set_msg(msg, msglen, "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: %s", s);
        return -EINVAL;
    }
    if (n == 2) {
        parts[2] = parts[1];
        parts[1] = 0;
    }
    for (size_t i = 0; i < 3; i++) {
        if (parts[i] < 0 || parts[i] > 99) {
            goto invalid; /* Python would print more digits: no real version does */
        }
    }
    *ret = (int)(parts[0] * 10000 + parts[1] * 100 + parts[2]);
    return 0;
invalid:
    set_msg(msg, msglen, "Invalid PostgreSQL version: %s", s ? s : "None");
    return -EINVAL;
}

/* Python's round-half-to-even, without libm. */
static double round_even(double x)
{
    if (x < 0) {
        return -round_even(-x);
    }
    double whole = (double)(int64_t)x, rest = x - whole;
    if (rest > 0.5 || (rest == 0.5 && ((int64_t)whole & 1))) {
        whole += 1;
    }
    return whole;
}

int future_restart_parse_timeout(const json_t *v, int64_t *ret_sec)
{
    double val;
    const char *unit = "";
    char *end;
    if (json_is_integer(v)) {
        *ret_sec = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        val = json_real_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (isspace((unsigned char)*s)) {
            s++;
        }
        if (!isdigit((unsigned char)*s) && *s != '.' && *s != '+' && *s != '-') {
            return -EINVAL;
        }
        errno = 0;
        val = strtod(s, &end);
        if (end == s || errno != 0 || val != val || val > 1e15 || val < -1e15) {
            return -EINVAL;
        }
        unit = end;
    } else {
        return -EINVAL;
    }
    while (isspace((unsigned char)*unit)) {
        unit++;
    }
    size_t len = strlen(unit);
    while (len > 0 && isspace((unsigned char)unit[len - 1])) {
        len--;
    }
    static const struct {
        const char *name;
        double seconds;
    } units[] = { { "", 1 },     { "us", 1e-6 }, { "ms", 1e-3 }, { "s", 1 },
                  { "min", 60 }, { "h", 3600 },  { "d", 86400 } };
    for (size_t i = 0; i < ELEMENTSOF(units); i++) {
        if (strlen(units[i].name) == len && strncmp(units[i].name, unit, len) == 0) {
            double sec = round_even(val * units[i].seconds); /* Patroni's rint() */
            if (sec > (double)INT32_MAX || sec < (double)INT32_MIN) {
                return -EINVAL;
            }
            *ret_sec = (int64_t)sec;
            return 0;
        }
    }
    return -EINVAL;
}

/* The timezone of an ISO 8601 time dcs_parse_time() accepted: "Z",
 * "+01:00", "-0530", "+01" at its end, seconds east of UTC. */
static int tz_offset(const char *s)
{
    size_t len = strlen(s);
    if (len > 0 && (s[len - 1] == 'Z' || s[len - 1] == 'z')) {
        return 0;
    }
    const char *sign = NULL;
    for (const char *p = s + (len > 10 ? 10 : len); *p; p++) {
        if (*p == '+' || *p == '-') {
            sign = p;
        }
    }
    if (!sign) {
        return 0;
    }
    const char *p = sign + 1;
    if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1])) {
        return 0;
    }
    int hh = (p[0] - '0') * 10 + (p[1] - '0'), mm = 0;
    p += 2;
    if (*p == ':') {
        p++;
    }
    if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])) {
        mm = (p[0] - '0') * 10 + (p[1] - '0');
    }
    int off = hh * 3600 + mm * 60;
    return *sign == '-' ? -off : off;
}

void future_restart_format_time(double t, int offset_sec, char *buf, size_t size)
{
    double whole = (double)(int64_t)t; /* t > 0 */
    long usec = (long)((t - whole) * 1e6 + 0.5);
    if (usec >= 1000000) {
        whole += 1;
        usec -= 1000000;
    }
    time_t shown = (time_t)whole + offset_sec;
    struct tm tm;
    char date[FUTURE_RESTART_TIME_MAX], frac[FUTURE_RESTART_FRAC_MAX] = "";
    if (!gmtime_r(&shown, &tm) || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        (void)snprintf(buf, size, "%.6f", t);
        return;
    }
    if (usec > 0) {
        (void)snprintf(frac, sizeof(frac), ".%06d", (int)usec);
    }
    int off = offset_sec < 0 ? -offset_sec : offset_sec;
    (void)snprintf(buf, size, "%s%s%c%02d:%02d", date, frac, offset_sec < 0 ? '-' : '+', off / 3600,
                   off % 3600 / 60);
}

/* Patroni's parse_schedule(schedule, "restart"). */
static int parse_schedule(const json_t *v, double now_epoch, FutureRestart *f, unsigned *ret_status,
                          char *msg, size_t msglen)
{
    const char *s = json_string_value(v);
    double at;
    if (s && dcs_parse_time_full(s, false, &at) == 0) {
        if (at < now_epoch) {
            *ret_status = 422;
            set_msg(msg, msglen, "Cannot schedule restart in the past");
            return -EINVAL;
        }
        f->scheduled = true;
        f->at_epoch = at;
        f->at_offset_sec = tz_offset(s);
        return 0;
    }
    if (s && dcs_parse_time_full(s, true, &at) == 0) {
        *ret_status = 400;
        set_msg(msg, msglen, "Timezone information is mandatory for the scheduled restart");
        return -EINVAL;
    }
    *ret_status = 422;
    set_msg(msg, msglen,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. "
            "ISO 8601");
    return -EINVAL;
}

int future_restart_parse(const json_t *body, double now_epoch, FutureRestart *ret,
                         unsigned *ret_status, char *msg, size_t msglen)
{
    FutureRestart f = { 0 };
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "schedule") == 0) {
            if (parse_schedule(v, now_epoch, &f, ret_status, msg, msglen) < 0) {
                return -EINVAL;
            }
        } else if (strcmp(key, "role") == 0) {
            const char *role = json_string_value(v);
            if (!role || (strcmp(role, "primary") != 0 && strcmp(role, "master") != 0 &&
                          strcmp(role, "replica") != 0)) {
                *ret_status = 400;
                set_msg(msg, msglen, "PostgreSQL role should be either primary or replica");
                return -EINVAL;
            }
            f.role_replica = strcmp(role, "replica") == 0;
            f.role_primary = !f.role_replica;
        } else if (strcmp(key, "postgres_version") == 0) {
            _cleanup_free_ char *shown = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY);
            const char *s = json_is_string(v) ? json_string_value(v) : shown;
            if (future_restart_version_to_int(s, &f.postgres_version, msg, msglen) < 0) {
                *ret_status = 400;
                return -EINVAL;
            }
        } else if (strcmp(key, "timeout") == 0) {
            if (future_restart_parse_timeout(v, &f.timeout_sec) < 0 || f.timeout_sec <= 0) {
                *ret_status = 400;
                set_msg(msg, msglen, "Timeout should be a positive number of seconds");
                return -EINVAL;
            }
        } else if (strcmp(key, "restart_pending") == 0) {
            if (!json_is_boolean(v)) {
                *ret_status = 400;
                set_msg(msg, msglen, "restart_pending must be true or false");
                return -EINVAL;
            }
            f.restart_pending = json_is_true(v);
        } else {
            *ret_status = 400;
            set_msg(msg, msglen, "Unknown filter for the scheduled restart: %s", key);
            return -EINVAL;
        }
    }
    *ret = f;
    return 0;
}

int future_restart_build_doc(FutureRestart *f, const json_t *body, double postmaster_start_time)
{
    _cleanup_(json_decrefp) json_t *doc = json_object();
    if (!doc) {
        return -ENOMEM;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        char at[FUTURE_RESTART_TIME_MAX];
        json_t *value;
        if (strcmp(key, "schedule") == 0) {
            future_restart_format_time(f->at_epoch, f->at_offset_sec, at, sizeof(at));
            value = json_string(at);
        } else if (strcmp(key, "timeout") == 0) {
            value = json_integer(f->timeout_sec);
        } else {
            value = json_deep_copy(v);
        }
        if (json_object_set_new(doc, key, value) < 0) {
            return -ENOMEM;
        }
    }
    json_t *started = json_null();
    if (postmaster_start_time > 0) {
        /* as Patroni has it: pg_postmaster_start_time().isoformat(sep=' ') */
        char at[FUTURE_RESTART_TIME_MAX];
        future_restart_format_time(postmaster_start_time, 0, at, sizeof(at));
        at[10] = ' ';
        started = json_string(at);
    }
    if (json_object_set_new(doc, "postmaster_start_time", started) < 0) {
        return -ENOMEM;
    }
    f->postmaster_start_time = postmaster_start_time;
    json_decref(f->doc);
    f->doc = TAKE_PTR(doc);
    return 0;
}

FutureRestart *future_restart_free(FutureRestart *f)
{
    if (f) {
        json_decref(f->doc);
        free(f);
    }
    return NULL;
}

bool future_restart_matches(const FutureRestart *f, bool primary, int server_version,
                            bool pending_restart, const char **ret_why)
{
    const char *why = NULL;
    /* each later check overrides the reason, as in Patroni */
    if ((f->role_primary && !primary) || (f->role_replica && primary)) {
        why = "host role mismatch";
    }
    if (f->postgres_version && f->postgres_version <= server_version) {
        why = "postgres version mismatch";
    }
    if (f->restart_pending && !pending_restart) {
        why = "pending restart flag is not set";
    }
    if (ret_why) {
        *ret_why = why;
    }
    return !why;
}

FutureRestartVerdict future_restart_verdict(const FutureRestart *f, const FutureRestartInput *in,
                                            const char **ret_why)
{
    if (ret_why) {
        *ret_why = NULL;
    }
    /* evaluate_scheduled_restart(): only in the healthy-cluster branch and
     * while nothing runs */
    if (!in->evaluated || in->busy) {
        return FUTURE_RESTART_WAIT;
    }
    if (f->postmaster_start_time > 0 && in->postmaster_start_time > 0 &&
        (f->postmaster_start_time - in->postmaster_start_time > 1e-3 ||
         in->postmaster_start_time - f->postmaster_start_time > 1e-3)) {
        return FUTURE_RESTART_RESTARTED;
    }
    /* should_run_scheduled_action(): kept while paused */
    if (in->paused) {
        return FUTURE_RESTART_WAIT;
    }
    double delta = f->at_epoch - in->now_epoch;
    if (delta > 0) {
        return FUTURE_RESTART_WAIT; /* Patroni sleeps up to loop_wait into it; we wake then */
    }
    if (delta < -(double)(int64_t)((double)in->loop_wait * 1.5)) {
        return FUTURE_RESTART_STALE;
    }
    if (!future_restart_matches(f, in->primary, in->server_version, in->pending_restart, ret_why)) {
        return FUTURE_RESTART_MISMATCH;
    }
    return FUTURE_RESTART_RUN;
}
