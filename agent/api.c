/* Mutating REST endpoints: queued by MHD threads, executed and answered by
 * the agent's loop. Status codes and messages follow Patroni 3.0.2's
 * api.py (do_POST_failover, do_DELETE_switchover, do_PATCH_config,
 * do_PUT_config, do_POST_reload, do_POST_restart, do_DELETE_restart,
 * do_POST_reinitialize); error bodies are {"error": ...}. The one scheduled
 * restart (agent/future_restart.h) is kept here and handed to the HA loop
 * at its time as an operator's restart. */
#include "api.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "clock.h"
#include "dcs-store.h"
#include "dcs.h"
#include "dynconfig.h"
#include "future_restart.h"
#include "log.h"
#include "macro.h"

#define API_MESSAGE_MAX 256

typedef enum ApiKind {
    API_SWITCHOVER,
    API_FAILOVER,
    API_DELETE_SWITCHOVER,
    API_PATCH_CONFIG,
    API_PUT_CONFIG,
    API_RELOAD,
    API_RESTART,
    API_DELETE_RESTART,
    API_REINITIALIZE,
} ApiKind;

typedef struct ApiRequest {
    ApiKind kind;
    json_t *body; /* owned copy, NULL when the request had none */
    RestPending *pending;
    /* a switchover or failover waiting for its outcome */
    char *old_leader; /* owned, NULL when there was no leader */
    char *candidate;  /* owned, may be NULL */
    uint64_t deadline_usec;
    struct ApiRequest *next;
} ApiRequest;

struct ApiQueue {
    pthread_mutex_t lock;
    ApiRequest *incoming;  /* guarded by lock; newest first */
    ApiRequest *waiting;   /* loop thread only */
    ApiRequest *restart;   /* loop thread only: a restart or reinit handed to the HA loop */
    ApiRequest *reloads;   /* loop thread only: POST /reload, answered by api_reloaded */
    FutureRestart *future; /* loop thread only, owned: the scheduled restart, NULL: none */
    bool future_fired;     /* loop thread only: it was handed to the HA loop as a request */
    int fd;                /* eventfd: handlers write, the loop reads */
};

static void request_free(ApiRequest *r)
{
    if (!r) {
        return;
    }
    json_decref(r->body);
    free(r->old_leader);
    free(r->candidate);
    free(r);
}

/* Answers r (2xx: text, else {"error": ...}) and frees it. */
static void answer(ApiRequest *r, unsigned status, const char *fmt, ...) _printf_(3, 4);
static void answer(ApiRequest *r, unsigned status, const char *fmt, ...)
{
    char msg[API_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status >= 400) {
        log_info("REST API: %u %s", status, msg);
    }
    rest_pending_reply_message(r->pending, status, msg);
    request_free(r);
}

static void answer_json(ApiRequest *r, unsigned status, json_t *doc)
{
    RestReply reply = { .status = status, .json = doc };
    rest_pending_reply(r->pending, &reply);
    request_free(r);
}

static void api_wake(ApiEnv *env, uint64_t at_usec)
{
    if (env->wake_usec == 0 || at_usec < env->wake_usec) {
        env->wake_usec = at_usec;
    }
}

/* ---- MHD threads ------------------------------------------------------------ */

static int enqueue(const RestCall *call, ApiKind kind, ApiQueue *q)
{
    ApiRequest *r = calloc(1, sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    r->kind = kind;
    if (call->body) {
        r->body = json_deep_copy(call->body);
        if (!r->body) {
            free(r);
            return -ENOMEM;
        }
    }
    r->pending = rest_call_defer(call);
    if (!r->pending) {
        request_free(r);
        return -ENOMEM;
    }
    pthread_mutex_lock(&q->lock);
    r->next = q->incoming;
    q->incoming = r;
    pthread_mutex_unlock(&q->lock);
    uint64_t one = 1;
    if (write(q->fd, &one, sizeof(one)) < 0) {
        log_debug("REST API: waking the loop failed: %m"); /* the counter is full: awake */
    }
    return REST_DEFERRED;
}

#define HANDLER(name, kind)                                                                        \
    static int name(const RestCall *call, RestReply *reply, void *userdata)                        \
    {                                                                                              \
        return enqueue(call, kind, userdata);                                                      \
    }
HANDLER(on_switchover, API_SWITCHOVER)
HANDLER(on_failover, API_FAILOVER)
HANDLER(on_delete_switchover, API_DELETE_SWITCHOVER)
HANDLER(on_patch_config, API_PATCH_CONFIG)
HANDLER(on_put_config, API_PUT_CONFIG)
HANDLER(on_reload, API_RELOAD)
HANDLER(on_restart, API_RESTART)
HANDLER(on_delete_restart, API_DELETE_RESTART)
HANDLER(on_reinitialize, API_REINITIALIZE)
#undef HANDLER

size_t api_handlers(ApiQueue *a, RestHandler *table, size_t max)
{
    const RestHandler all[] = {
        { "POST", "/switchover", REST_HANDLER_MUTATING, on_switchover, a },
        { "POST", "/failover", REST_HANDLER_MUTATING, on_failover, a },
        { "DELETE", "/switchover", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL,
          on_delete_switchover, a },
        { "PATCH", "/config", REST_HANDLER_MUTATING, on_patch_config, a },
        { "PUT", "/config", REST_HANDLER_MUTATING, on_put_config, a },
        { "POST", "/reload", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL, on_reload, a },
        { "POST", "/restart", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL, on_restart, a },
        { "DELETE", "/restart", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL,
          on_delete_restart, a },
        { "POST", "/reinitialize", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL,
          on_reinitialize, a },
    };
    size_t n = ELEMENTSOF(all) < max ? ELEMENTSOF(all) : max;
    memcpy(table, all, n * sizeof(all[0]));
    return n;
}

/* ---- the loop --------------------------------------------------------------- */

/* Messages may be cut at whylen; vsnprintf keeps that explicit. */
static void set_why(char *why, size_t whylen, const char *fmt, ...) _printf_(3, 4);
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* A fresh view for a decision an operator asked for. */
static int read_cluster(ApiEnv *env, DcsCluster **ret, char *why, size_t whylen)
{
    EtcdError e = { 0 };
    int r = dcs_cluster_read(env->store->etcd, env->store->paths, ret, &e);
    if (r < 0) {
        set_why(why, whylen, "cannot read the cluster from etcd: %s", e.message);
    }
    return r;
}

/* Optional string field; false when present with another type. */
static bool get_string(const json_t *body, const char *key, const char **ret)
{
    json_t *v = body ? json_object_get(body, key) : NULL;
    *ret = NULL;
    if (!v || json_is_null(v)) {
        return true;
    }
    if (!json_is_string(v)) {
        return false;
    }
    *ret = json_string_value(v);
    if (!**ret) {
        *ret = NULL; /* "" is absent, as in Python's truthiness */
    }
    return true;
}

static int write_failover_key(ApiEnv *env, const char *leader, const char *candidate,
                              const char *scheduled_at, char *why, size_t whylen)
{
    int r = dcs_store_set_failover(env->store, leader, candidate, scheduled_at, NULL);
    if (r < 0) {
        set_why(why, whylen, "%s", r == -ENOMEM ? "out of memory" : env->store->error.message);
    }
    return r;
}

static void do_failover(ApiQueue *q, ApiEnv *env, ApiRequest *r)
{
    bool switchover = r->kind == API_SWITCHOVER;
    const char *action = switchover ? "switchover" : "failover";
    const char *Action = switchover ? "Switchover" : "Failover";
    const char *leader, *candidate, *member, *master, *scheduled;
    if (!get_string(r->body, "leader", &leader) || !get_string(r->body, "master", &master) ||
        !get_string(r->body, "candidate", &candidate) || !get_string(r->body, "member", &member) ||
        !get_string(r->body, "scheduled_at", &scheduled)) {
        answer(r, 400, "leader, candidate and scheduled_at must be strings");
        return;
    }
    json_t *force_v = json_object_get(r->body, "force");
    if (force_v && !json_is_boolean(force_v)) {
        answer(r, 400, "force must be true or false");
        return;
    }
    bool force = json_is_true(force_v);
    leader = leader ? leader : master;
    candidate = candidate ? candidate : member;
    log_info("received %s request with leader=%s candidate=%s scheduled_at=%s", action,
             strna(leader), strna(candidate), strna(scheduled));
    if (!switchover && !candidate) {
        answer(r, 400, "Failover could be performed only to a specific candidate");
        return;
    }
    if (switchover && !leader) {
        answer(r, 400, "Switchover could be performed only from a specific leader");
        return;
    }

    char why[API_MESSAGE_MAX];
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    if (read_cluster(env, &c, why, sizeof(why)) < 0) {
        answer(r, 503, "%s", why);
        return;
    }
    if (dcs_cluster_is_standby(c)) {
        /* Patroni would stop the standby leader and let the candidate
         * follow the remote primary; dbha refuses what has no primary to
         * hand over (a standby leader fails over by itself when it dies) */
        answer(r, 412,
               "%s is not possible in a standby cluster: it has no primary; the standby leader "
               "is replaced when it fails, and the cluster is promoted by removing "
               "standby_cluster from the configuration",
               action);
        return;
    }
    bool paused = dcs_cluster_is_paused(c);
    if (scheduled) {
        double at;
        if (!leader) {
            answer(r, 400, "Scheduled %s is possible only from a specific leader", action);
            return;
        }
        if (paused) {
            answer(r, 400, "Can't schedule %s in the paused state", action);
            return;
        }
        if (dcs_parse_time(scheduled, &at) < 0) {
            answer(r, 422,
                   "Unable to parse scheduled timestamp. It should be in an unambiguous format "
                   "with a timezone, e.g. ISO 8601");
            return;
        }
        struct timespec ts;
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        if (at < (double)ts.tv_sec) {
            answer(r, 422, "Cannot schedule %s in the past", action);
            return;
        }
    }
    if (paused && !candidate) {
        answer(r, 400, "%s is possible only to a specific candidate in a paused state", Action);
        return;
    }
    if (!scheduled) {
        /* Patroni's is_failover_possible(), plus the candidate's health and lag. */
        if (leader && (!c->leader || strcmp(c->leader->name, leader) != 0)) {
            answer(r, 412, "leader name does not match");
            return;
        }
        if (candidate) {
            const DcsMember *m = dcs_cluster_get_member(c, candidate);
            if (!m) {
                answer(r, 412, "candidate does not exists");
                return;
            }
            const char *problem = dcs_candidate_problem(c, m, !switchover && force);
            if (problem) {
                answer(r, 412, "%s is not possible: candidate \"%s\": %s", action, candidate,
                       problem);
                return;
            }
        } else if (!dcs_pick_candidate(c)) {
            answer(r, 412, "%s is not possible: no good candidates have been found", action);
            return;
        }
    }
    if (write_failover_key(env, leader, candidate, scheduled, why, sizeof(why)) < 0) {
        answer(r, 503, "failed to write %s key into DCS: %s", action, why);
        return;
    }
    if (scheduled) {
        log_notice("%s scheduled at %s", action, scheduled);
        answer(r, 202, "%s scheduled", Action);
        return;
    }
    /* Wait for the outcome, as Patroni's poll_failover_result. */
    r->old_leader = c->leader ? strdup(c->leader->name) : NULL;
    r->candidate = candidate ? strdup(candidate) : NULL;
    if ((c->leader && !r->old_leader) || (candidate && !r->candidate)) {
        answer(r, 500, "out of memory");
        return;
    }
    uint64_t poll_sec = (uint64_t)env->dcs->loop_wait;
    if (poll_sec < API_POLL_MIN_SEC) {
        poll_sec = API_POLL_MIN_SEC;
    }
    r->deadline_usec = clock_monotonic_usec() + 2 * poll_sec * 1000000ULL;
    r->next = q->waiting;
    q->waiting = r;
    api_wake(env, clock_monotonic_usec());
}

/* The outcome of a waiting switchover or failover, if known: true after
 * answering. */
static bool poll_outcome(const ApiEnv *env, ApiRequest *r, uint64_t now)
{
    bool switchover = r->kind == API_SWITCHOVER;
    const DcsCluster *c = env->view;
    if (c && c->leader && (!r->old_leader || strcmp(c->leader->name, r->old_leader) != 0)) {
        if (!r->candidate || strcmp(r->candidate, c->leader->name) == 0) {
            answer(r, 200, "Successfully %s over to \"%s\"", switchover ? "switched" : "failed",
                   c->leader->name);
        } else {
            answer(r, 200, "%s over to \"%s\" instead of \"%s\"",
                   switchover ? "Switched" : "Failed", c->leader->name, r->candidate);
        }
        return true;
    }
    if (c && !c->failover) {
        answer(r, 503, "%s failed", switchover ? "Switchover" : "Failover");
        return true;
    }
    if (now >= r->deadline_usec) {
        answer(r, 503, "%s status unknown", switchover ? "Switchover" : "Failover");
        return true;
    }
    return false;
}

static void poll_restart(ApiQueue *q, ApiEnv *env);
static void poll_future_restart(ApiQueue *q, ApiEnv *env, uint64_t now_usec);

void api_after_tick(ApiQueue *q, ApiEnv *env, uint64_t now_usec)
{
    if (!q) {
        return;
    }
    poll_restart(q, env);
    poll_future_restart(q, env, now_usec);
    ApiRequest **p = &q->waiting;
    while (*p) {
        ApiRequest *r = *p;
        ApiRequest *next = r->next;
        if (poll_outcome(env, r, now_usec)) {
            *p = next; /* answered and freed */
        } else {
            p = &r->next;
        }
    }
    /* a waiting request must be answered by its deadline even if no
     * other tick comes before it */
    for (ApiRequest *r = q->waiting; r; r = r->next) {
        api_wake(env, r->deadline_usec);
    }
}

static void do_delete_switchover(ApiEnv *env, ApiRequest *r)
{
    char why[API_MESSAGE_MAX];
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    if (read_cluster(env, &c, why, sizeof(why)) < 0) {
        answer(r, 503, "%s", why);
        return;
    }
    if (!c->failover || !c->failover->scheduled_at) {
        answer(r, 404, "no switchover is scheduled");
        return;
    }
    int k = dcs_store_clear_failover(env->store, c->failover->mod_revision);
    bool ok = k >= 0;
    if (k == -ECANCELED) {
        k = 0;
    }
    if (k < 0) {
        answer(r, 503, "failed to delete the switchover key: %s", env->store->error.message);
    } else if (!ok) {
        answer(r, 409, "the switchover key changed meanwhile");
    } else {
        log_notice("scheduled switchover at %s deleted", c->failover->scheduled_at);
        answer(r, 200, "scheduled switchover deleted");
    }
}

/* Writes doc as the config key if its revision is still `revision` (0: the
 * key must not exist). Returns 0, -EAGAIN (changed meanwhile), or an etcd
 * error described in why. */
static int put_config(ApiEnv *env, const json_t *doc, int64_t revision, char *why, size_t whylen)
{
    _cleanup_free_ char *value = json_dumps(doc, JSON_COMPACT);
    if (!value) {
        set_why(why, whylen, "out of memory");
        return -ENOMEM;
    }
    int k = dcs_store_set_config(env->store, value, revision);
    if (k == -ECANCELED) {
        return -EAGAIN;
    }
    if (k < 0) {
        set_why(why, whylen, "%s", env->store->error.message);
        return k;
    }
    return 0;
}

static void do_config(ApiEnv *env, ApiRequest *r)
{
    bool patch = r->kind == API_PATCH_CONFIG;
    char why[API_MESSAGE_MAX];
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    if (read_cluster(env, &c, why, sizeof(why)) < 0) {
        answer(r, 503, "%s", why);
        return;
    }
    if (patch && (!c->config || !c->config->data)) {
        answer(r, 503, "the cluster has no config key yet");
        return;
    }
    _cleanup_(json_decrefp) json_t *doc = NULL;
    if (patch) {
        int k = dynconfig_merge(c->config->data, r->body, &doc);
        if (k < 0) {
            answer(r, k == -EINVAL ? 400 : 500, "cannot merge the patch: %s", strerror(-k));
            return;
        }
    } else {
        doc = json_incref(r->body);
    }
    if (dynconfig_validate(doc, why, sizeof(why)) < 0) {
        answer(r, 400, "invalid configuration: %s", why);
        return;
    }
    if (c->config && c->config->data && json_equal(doc, c->config->data)) {
        answer_json(r, 200, TAKE_PTR(doc)); /* nothing changes */
        return;
    }
    int k = put_config(env, doc, c->config ? c->config->mod_revision : 0, why, sizeof(why));
    if (k == -EAGAIN) {
        answer(r, 409, "the configuration changed meanwhile; try again");
        return;
    }
    if (k < 0) {
        answer(r, 503, "failed to write the config key: %s", why);
        return;
    }
    log_notice("cluster configuration changed through %s /config", patch ? "PATCH" : "PUT");
    api_wake(env, clock_monotonic_usec());
    answer_json(r, 200, TAKE_PTR(doc));
}

/* The loop reloads the file (it owns the configuration) and answers with
 * api_reloaded. */
static void do_reload(ApiQueue *q, ApiRequest *r)
{
    r->next = q->reloads;
    q->reloads = r;
}

bool api_reload_wanted(const ApiQueue *q)
{
    return q && q->reloads;
}

void api_reloaded(ApiQueue *q, int result)
{
    ApiRequest *list = q ? q->reloads : NULL;
    if (q) {
        q->reloads = NULL;
    }
    while (list) {
        ApiRequest *next = list->next;
        list->next = NULL;
        if (result < 0) {
            answer(list, 500,
                   "reload failed: the configuration file has errors (see the agent's log)");
        } else {
            answer(list, 202, "reload scheduled");
        }
        list = next;
    }
}

static bool is_primary(const ApiEnv *env)
{
    return env->state == HA_STATE_PRIMARY || env->state == HA_STATE_STARTING_PRIMARY;
}

static double wall_now(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Patroni's schedule_future_restart(): one at a time; it keeps the
 * postmaster's start time, so that a restart in between cancels it. */
static void schedule_restart(ApiQueue *q, ApiEnv *env, ApiRequest *r, FutureRestart *f)
{
    if (q->future) {
        answer(r, 409, "Another restart is already scheduled");
        return;
    }
    FutureRestart *copy = malloc(sizeof(*copy));
    if (!copy) {
        answer(r, 500, "out of memory");
        return;
    }
    *copy = *f;
    if (future_restart_build_doc(copy, r->body, env->postmaster_start_time) < 0) {
        future_restart_free(copy);
        answer(r, 500, "out of memory");
        return;
    }
    q->future = copy;
    q->future_fired = false;
    log_notice("restart scheduled at %s",
               json_string_value(json_object_get(copy->doc, "schedule")));
    api_wake(env, clock_monotonic_usec()); /* published at once, then woken at its time */
    answer(r, 202, "Restart scheduled");
}

/* Patroni's do_POST_restart and Ha.restart(): the filters are checked
 * first, then the HA loop restarts PostgreSQL as a job; answered when it
 * ends. With "schedule", kept for its time (poll_future_restart). */
static void do_restart(ApiQueue *q, ApiEnv *env, ApiRequest *r)
{
    if (env->view && dcs_cluster_is_paused(env->view) && json_object_get(r->body, "schedule")) {
        answer(r, 500, "Can't schedule restart in the paused state"); /* Patroni's status */
        return;
    }
    FutureRestart f;
    unsigned status = 400;
    char msg[FUTURE_RESTART_MESSAGE_MAX];
    if (future_restart_parse(r->body, wall_now(), &f, &status, msg, sizeof(msg)) < 0) {
        answer(r, status, "%s", msg);
        return;
    }
    if (f.scheduled) {
        schedule_restart(q, env, r, &f);
        return;
    }
    if (q->restart || env->request != HA_REQUEST_NONE || env->restart_running) {
        answer(r, 503, "restart already in progress");
        return;
    }
    const char *why;
    if (!future_restart_matches(&f, is_primary(env), env->server_version, env->pending_restart,
                                &why)) {
        log_info("not proceeding with the restart: %s", why);
        answer(r, 503, "restart conditions are not satisfied");
        return;
    }
    env->request = HA_REQUEST_RESTART;
    env->restart_result = 0;
    env->restart_timeout_sec = f.timeout_sec;
    q->restart = r;
    api_wake(env, clock_monotonic_usec());
}

/* Patroni's do_DELETE_restart. */
static void do_delete_restart(ApiQueue *q, ApiEnv *env, ApiRequest *r)
{
    if (!q->future || q->future_fired) {
        answer(r, 404, "no restarts are scheduled");
        return;
    }
    log_notice("scheduled restart at %s deleted",
               json_string_value(json_object_get(q->future->doc, "schedule")));
    q->future = future_restart_free(q->future);
    api_wake(env, clock_monotonic_usec());
    answer(r, 200, "scheduled restart deleted");
}

const json_t *api_scheduled_restart(const ApiQueue *q)
{
    return q && q->future ? q->future->doc : NULL;
}

/* After a tick: Patroni's evaluate_scheduled_restart(). At its time the
 * scheduled restart becomes the operator's request an immediate restart
 * makes (HA_REQUEST_RESTART); the tick after says whether the HA loop took
 * it up. It is deleted then, whatever the outcome, as in Patroni. */
static void poll_future_restart(ApiQueue *q, ApiEnv *env, uint64_t now_usec)
{
    FutureRestart *f = q->future;
    if (!f) {
        return;
    }
    if (q->future_fired) {
        if (env->request == HA_REQUEST_RESTART) {
            env->request = HA_REQUEST_NONE; /* not taken up: nothing was done */
            log_warning("scheduled restart: restart is not possible now: %s",
                        env->reason ? env->reason : "unknown");
        }
        q->future = future_restart_free(q->future);
        q->future_fired = false;
        api_wake(env, now_usec); /* the member key without it */
        return;
    }
    double now = wall_now();
    FutureRestartInput in = {
        .now_epoch = now,
        .loop_wait = env->dcs->loop_wait,
        .paused = env->view && dcs_cluster_is_paused(env->view),
        .evaluated = env->view && env->view->leader && env->pg_running,
        .busy = env->job_running || env->request != HA_REQUEST_NONE || q->restart != NULL,
        .postmaster_start_time = env->postmaster_start_time,
        .primary = is_primary(env),
        .server_version = env->server_version,
        .pending_restart = env->pending_restart,
    };
    const char *why = NULL;
    const char *at = json_string_value(json_object_get(f->doc, "schedule"));
    switch (future_restart_verdict(f, &in, &why)) {
    case FUTURE_RESTART_WAIT:
        if (f->at_epoch > now) {
            api_wake(env, now_usec + (uint64_t)((f->at_epoch - now) * 1e6) + 1);
        }
        return;
    case FUTURE_RESTART_RESTARTED:
        log_info("scheduled restart at %s cancelled: postgresql restarted since it was "
                 "scheduled",
                 at);
        break;
    case FUTURE_RESTART_STALE:
        log_warning("scheduled restart at %s cancelled: its time passed more than 1.5 loop_wait "
                    "ago",
                    at);
        break;
    case FUTURE_RESTART_MISMATCH:
        log_warning("scheduled restart at %s cancelled: restart conditions are not satisfied "
                    "(%s)",
                    at, why);
        break;
    case FUTURE_RESTART_RUN:
        log_notice("scheduled restart at %s: restarting postgresql", at);
        env->request = HA_REQUEST_RESTART;
        env->restart_result = 0;
        env->restart_timeout_sec = f->timeout_sec;
        q->future_fired = true;
        api_wake(env, now_usec);
        return;
    default:
        log_error("scheduled restart: no verdict: this is a bug");
        break;
    }
    q->future = future_restart_free(q->future);
    api_wake(env, now_usec);
}

/* Patroni's Ha.reinitialize(): a replica only, and only with a leader. */
static void do_reinitialize(ApiQueue *q, ApiEnv *env, ApiRequest *r)
{
    json_t *force = json_object_get(r->body, "force");
    if (force && !json_is_boolean(force)) {
        answer(r, 400, "force must be true or false");
        return;
    }
    const DcsCluster *c = env->view;
    if (!c) {
        answer(r, 503, "etcd is not reachable, can not reinitialize");
        return;
    }
    if (!c->leader) {
        answer(r, 503, "Cluster has no leader, can not reinitialize");
        return;
    }
    if (strcmp(c->leader->name, env->me) == 0) {
        answer(r, 503, "I am the leader, can not reinitialize");
        return;
    }
    if (q->restart || env->request != HA_REQUEST_NONE) {
        answer(r, 503, "reinitialize already in progress");
        return;
    }
    env->request = HA_REQUEST_REINIT;
    q->restart = r;
    api_wake(env, clock_monotonic_usec());
}

/* After a tick: did the HA loop take up the restart or reinit request? */
static void poll_restart(ApiQueue *q, ApiEnv *env)
{
    ApiRequest *r = q->restart;
    if (!r) {
        return;
    }
    const char *why = env->reason ? env->reason : "unknown";
    if (r->kind == API_REINITIALIZE) {
        q->restart = NULL;
        if (env->request == HA_REQUEST_REINIT && !env->job_running) {
            env->request = HA_REQUEST_NONE; /* not taken up: nothing was done */
            answer(r, 503, "reinitialize is not possible now: %s", why);
        } else {
            answer(r, 200, "reinitialize started");
        }
        return;
    }
    if (env->request == HA_REQUEST_RESTART) {
        env->request = HA_REQUEST_NONE;
        q->restart = NULL;
        answer(r, 503, "restart is not possible now: %s", why);
    } else if (env->restart_result != 0) {
        q->restart = NULL;
        if (env->restart_result > 0) {
            answer(r, 200, "restarted successfully");
        } else {
            answer(r, 503, "restart failed");
        }
        env->restart_result = 0;
    }
}

static void execute(ApiQueue *q, ApiEnv *env, ApiRequest *r)
{
    switch (r->kind) {
    case API_SWITCHOVER:
    case API_FAILOVER:
        do_failover(q, env, r);
        return;
    case API_DELETE_SWITCHOVER:
        do_delete_switchover(env, r);
        return;
    case API_PATCH_CONFIG:
    case API_PUT_CONFIG:
        do_config(env, r);
        return;
    case API_RELOAD:
        do_reload(q, r);
        return;
    case API_RESTART:
        do_restart(q, env, r);
        return;
    case API_DELETE_RESTART:
        do_delete_restart(q, env, r);
        return;
    case API_REINITIALIZE:
        do_reinitialize(q, env, r);
        return;
    }
    answer(r, 500, "unknown request");
}

int api_fd(const ApiQueue *q)
{
    return q->fd;
}

void api_execute(ApiQueue *q, ApiEnv *env)
{
    uint64_t n;
    (void)!read(q->fd, &n, sizeof(n));
    pthread_mutex_lock(&q->lock);
    ApiRequest *list = q->incoming;
    q->incoming = NULL;
    pthread_mutex_unlock(&q->lock);
    /* oldest first */
    ApiRequest *ordered = NULL;
    while (list) {
        ApiRequest *next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered) {
        ApiRequest *next = ordered->next;
        ordered->next = NULL;
        if (env->stopping) {
            answer(ordered, 503, "the agent is stopping");
        } else {
            execute(q, env, ordered);
        }
        ordered = next;
    }
}

int api_new(ApiQueue **ret)
{
    ApiQueue *q = calloc(1, sizeof(*q));
    if (!q) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    q->fd = -1;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        free(q);
        return log_error_errno(-ENOMEM, "out of memory");
    }
    q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->fd < 0) {
        int r = -errno;
        api_free(q);
        return log_error_errno(r, "eventfd: %m");
    }
    *ret = q;
    return 0;
}

static void answer_all(ApiRequest *list)
{
    while (list) {
        ApiRequest *next = list->next;
        answer(list, 503, "the agent is stopping");
        list = next;
    }
}

ApiQueue *api_free(ApiQueue *q)
{
    if (!q) {
        return NULL;
    }
    answer_all(q->incoming);
    answer_all(q->waiting);
    answer_all(q->restart);
    answer_all(q->reloads);
    future_restart_free(q->future);
    if (q->fd >= 0) {
        close(q->fd);
    }
    pthread_mutex_destroy(&q->lock);
    free(q);
    return NULL;
}
