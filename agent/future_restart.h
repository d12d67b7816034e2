/* A restart of PostgreSQL scheduled through POST /restart {"schedule": ...}:
 * Patroni 3.0.2's parse of the request (api.py do_POST_restart,
 * parse_schedule) and its decision at each loop (ha.py
 * evaluate_scheduled_restart, should_run_scheduled_action, restart_matches),
 * pure. The REST queue (agent/api.c) holds the one scheduled restart and
 * hands it to the HA loop as an operator's restart. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define FUTURE_RESTART_MESSAGE_MAX 256

typedef struct FutureRestart {
    bool scheduled;               /* "schedule" was given */
    double at_epoch;              /* its time, seconds since the epoch */
    int at_offset_sec;            /* the timezone it was given in, east of UTC */
    bool role_primary;            /* "role": primary (or master) */
    bool role_replica;            /* "role": replica */
    int postgres_version;         /* "postgres_version" as an integer (90503, 150004); 0: none */
    bool restart_pending;         /* "restart_pending": true */
    int64_t timeout_sec;          /* "timeout" in seconds; 0: none */
    double postmaster_start_time; /* when it was scheduled (epoch); 0: unknown */
    json_t *doc;                  /* owned: as the member key shows it (NULL: not built) */
} FutureRestart;

/* Patroni's postgres_version_to_int(): "9.5.3" -> 90503, "10.1" -> 100001,
 * "15.4" -> 150004; "10", "9.6" and "a.b" are refused. Returns 0, or
 * -EINVAL with Patroni's message in msg. Pure. */
int future_restart_version_to_int(const char *s, int *ret, char *msg, size_t msglen);

/* Patroni's parse_int(value, 's'): a JSON integer, or a string "30",
 * "30s", "1min", "1500 ms" (rounded to the second; us, ms, s, min, h, d).
 * Returns 0, or -EINVAL. Pure. */
int future_restart_parse_timeout(const json_t *v, int64_t *ret_sec);

/* Parses POST /restart's body (NULL: none) in Patroni's order, key by key:
 * "schedule" (400 without a timezone, 422 unparsable or before now_epoch),
 * "role", "postgres_version", "timeout", "restart_pending"; another key is
 * 400. Returns 0 and *ret (its doc not built), or -EINVAL with the status
 * and Patroni's message. Pure. */
int future_restart_parse(const json_t *body, double now_epoch, FutureRestart *ret,
                         unsigned *ret_status, char *msg, size_t msglen);

/* Builds f->doc from the request body as Patroni keeps it: every key given,
 * "schedule" as isoformat() prints it in the timezone it was given in,
 * "timeout" in seconds, and "postmaster_start_time" (as PostgreSQL prints
 * it, null when unknown). Returns 0 or -ENOMEM. */
int future_restart_build_doc(FutureRestart *f, const json_t *body, double postmaster_start_time);

/* Frees what f owns; f may be NULL. Returns NULL. */
FutureRestart *future_restart_free(FutureRestart *f);

/* "2030-01-01T12:00:00+01:00" (microseconds when not whole), t shown at
 * offset_sec east of UTC. Pure. */
void future_restart_format_time(double t, int offset_sec, char *buf, size_t size);

typedef struct FutureRestartInput {
    double now_epoch;
    int64_t loop_wait;
    bool paused;
    bool evaluated;               /* the loop has a leader and a running PostgreSQL (Patroni
                                     looks at it only in the healthy-cluster branch) */
    bool busy;                    /* a job, an operator's request or a restart under way */
    double postmaster_start_time; /* now; 0: unknown */
    bool primary;
    int server_version; /* 0: unknown */
    bool pending_restart;
} FutureRestartInput;

typedef enum FutureRestartVerdict {
    FUTURE_RESTART_WAIT,      /* not yet, or not now (busy, paused, not evaluated): kept */
    FUTURE_RESTART_RESTARTED, /* PostgreSQL restarted since it was scheduled: cancelled */
    FUTURE_RESTART_STALE,     /* its time passed more than 1.5 × loop_wait ago: cancelled */
    FUTURE_RESTART_MISMATCH,  /* its time, but a filter does not match: cancelled */
    FUTURE_RESTART_RUN,       /* restart now */
    _FUTURE_RESTART_VERDICT_MAX,
    _FUTURE_RESTART_VERDICT_INVALID = -22,
} FutureRestartVerdict;

/* What to do with f at this loop; *ret_why (static) names the mismatch.
 * Pure. */
FutureRestartVerdict future_restart_verdict(const FutureRestart *f, const FutureRestartInput *in,
                                            const char **ret_why);

/* Whether role, postgres_version and restart_pending match (Patroni's
 * restart_matches()); *ret_why (static) says which does not. Pure. */
bool future_restart_matches(const FutureRestart *f, bool primary, int server_version,
                            bool pending_restart, const char **ret_why);
