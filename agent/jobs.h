/* Child processes the agent runs: initdb, pg_ctl start/stop/restart,
 * pg_basebackup or a custom replica method, pg_rewind, post_bootstrap. One job at a time, each in
 * its own process group with a deadline; its end (exit, signal, or the deadline's SIGKILL) asks the
 * ticker for a tick at once. The HA decision sees the job as running, then succeeded or failed,
 * exactly once (jobs_take). */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "ha.h"
#include "ticker.h"

typedef enum JobKind {
    JOB_NONE,
    JOB_INITDB,
    JOB_START,
    JOB_STOP,
    JOB_BASEBACKUP,
    JOB_REWIND,
    JOB_RESTART,
    JOB_POST_BOOTSTRAP,
    JOB_REPLICA_METHOD, /* a custom create_replica_methods entry */
    JOB_PRE_PROMOTE,
    _JOB_KIND_MAX,
    _JOB_KIND_INVALID = -EINVAL,
} JobKind;

const char *job_kind_to_string(JobKind k);

/* Called when a job ends, before the tick it asks for. */
typedef void (*JobEndFn)(JobKind kind, bool ok, void *userdata);

typedef struct Jobs {
    sd_event *event; /* borrowed */
    Ticker *ticker;  /* borrowed */
    char **env;      /* owned: the children's environment (jobs_set_pgpass) */
    JobEndFn on_end;
    void *userdata;

    JobKind kind; /* the job started last, until jobs_take */
    pid_t pid;
    sd_event_source *child;   /* owned */
    sd_event_source *timeout; /* owned */
    bool finished;
    bool ok;
    bool killed; /* by its deadline */
} Jobs;

void jobs_init(Jobs *j, sd_event *event, Ticker *ticker, JobEndFn on_end, void *userdata);
/* Kills a running job (SIGKILL to its group, reaped) and frees. */
void jobs_done(Jobs *j);
/* Builds the children's environment: ours without the agent's variables
 * (inherit.h), with PGPASSFILE=path when path is not NULL. Call it before
 * the first job. Returns 0 or -ENOMEM. */
int jobs_set_pgpass(Jobs *j, const char *path);

/* Forks argv (the environment jobs_set_pgpass built, no descriptor above
 * stderr) with a deadline. Returns
 * 0, -EBUSY while a job runs, or a negative errno (all logged). */
int jobs_start(Jobs *j, JobKind kind, char *const *argv, int timeout_sec);
/* As jobs_start, after `before` (NULL: nothing) has run in the job's
 * process to its end or for before_timeout_sec (then SIGKILL), whatever its
 * exit status: Patroni's before_stop. The deadline covers both. */
int jobs_start_after(Jobs *j, JobKind kind, char *const *before, int before_timeout_sec,
                     char *const *argv, int timeout_sec);
/* Kills the running job, if any, and forgets it. */
void jobs_kill(Jobs *j);
/* Runs argv to completion synchronously, by the deadline (shutdown path). */
int jobs_run_sync(const Jobs *j, char *const *argv, int timeout_sec);
/* The same after `before`, as jobs_start_after. */
int jobs_run_sync_after(const Jobs *j, char *const *before, int before_timeout_sec,
                        char *const *argv, int timeout_sec);

/* For the decision: no job, running, succeeded or failed. */
HaJobResult jobs_result(const Jobs *j);
/* A finished job's result is consumed by one decision: returns its kind
 * (JOB_NONE when none finished) and forgets it. */
JobKind jobs_take(Jobs *j, bool *ret_ok);
static inline JobKind jobs_kind(const Jobs *j)
{
    return j->kind;
}
