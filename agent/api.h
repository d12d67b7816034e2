/* The REST API's mutating endpoints (Patroni 3.0.2's semantics): POST
 * /switchover and /failover, DELETE /switchover, PATCH and PUT /config,
 * POST /reload, POST /restart (also scheduled), DELETE /restart, POST
 * /reinitialize.
 *
 * A handler runs on an MHD thread: it checks what it can without I/O, then
 * queues the request for the agent's loop and defers its reply (see
 * rest_call_defer). The loop executes requests between HA ticks, with the
 * cluster view it keeps, and answers them; a switchover or failover is
 * answered once its outcome is seen in etcd (or after API_POLL_TIMEOUT_USEC,
 * "status unknown", as Patroni). Nothing here blocks a health check. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "dcs-store.h"
#include "dcs.h"
#include "ha.h"
#include "rest.h"

/* Patroni polls a switchover's outcome for max(10, loop_wait) * 2 seconds. */
#define API_POLL_MIN_SEC 10

typedef struct ApiQueue ApiQueue;

/* What the loop lends the queue for one call: the agent as the requests
 * see it, and what they hand back (an HA request, a tick wanted). */
typedef struct ApiEnv {
    const char *me;
    const ConfigDcs *dcs;
    const DcsCluster *view; /* NULL: etcd is not reachable */
    DcsStore *store;        /* fresh reads and compare-and-swap writes */
    HaState state;
    bool job_running;             /* any job */
    bool restart_running;         /* a restart job */
    bool pending_restart;         /* the last probe saw pending_restart */
    bool pg_running;              /* PostgreSQL runs */
    int server_version;           /* the last probe's server_version_num; 0: unknown */
    double postmaster_start_time; /* the last probe's (epoch); 0: unknown */
    const char *reason;           /* the last decision's reason (NULL: none yet) */
    bool stopping;
    HaRequest request;           /* in/out: what the HA loop is asked to do */
    int restart_result;          /* in/out: of the last restart job (1 ok, -1 failed, 0 none) */
    int64_t restart_timeout_sec; /* in/out: the requested restart's "timeout" (0: none) */
    uint64_t wake_usec;          /* out: a tick is wanted at this time (0: none) */
} ApiEnv;

/* Creates the queue. Its eventfd (api_fd) becomes readable when a request
 * arrives: the loop then calls api_execute. Returns 0 or a negative errno
 * (logged). */
int api_new(ApiQueue **ret);
/* Answers every request still queued or waiting with 503, frees. */
ApiQueue *api_free(ApiQueue *q);
int api_fd(const ApiQueue *q);

/* The handler table for rest_server_new (userdata: q). */
size_t api_handlers(ApiQueue *q, RestHandler *table, size_t max);

/* Executes the requests that arrived, oldest first. */
void api_execute(ApiQueue *q, ApiEnv *env);
/* After every HA tick: answers a restart or reinitialize the HA loop took
 * up (or did not), the switchovers/failovers whose outcome is now known,
 * and those past their deadline; hands the scheduled restart to the HA loop
 * at its time (env->request) and asks for a tick then (env->wake_usec). */
void api_after_tick(ApiQueue *q, ApiEnv *env, uint64_t now_usec);
/* The scheduled restart as the member key shows it (Patroni's
 * scheduled_restart: schedule, the filters, postmaster_start_time), or
 * NULL. Borrowed from q until the next api_execute or api_after_tick. */
const json_t *api_scheduled_restart(const ApiQueue *q);
/* POST /reload waits for the loop: it reloads, then answers them all. */
bool api_reload_wanted(const ApiQueue *q);
void api_reloaded(ApiQueue *q, int result);
