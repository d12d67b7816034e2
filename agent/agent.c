/* The agent's life cycle and its loop. A tick observes (lease keepalive,
 * one read of the cluster prefix, the data directory and a probe of
 * PostgreSQL), decides (ha_decide, pure), acts (ha_exec_action, in order,
 * stopping at the first failure) and publishes (member key, REST snapshot).
 * Ticks run every loop_wait, and at once when the watch thread sees the
 * leader key or `initialize` change, or when a job ends; on the leader,
 * another member's key changing what a router reads publishes the
 * topology between ticks. The watch thread keeps a copy of the cluster
 * prefix (lib/kvcache.h) that the tick reads instead of etcd when it has
 * caught up with the tick's own answers. */
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "clock.h"
#include "config-schema.h"
#include "election.h"
#include "pgconf.h"
#include "topology.h"

#define USEC_PER_SEC 1000000ULL

/* etcd calls from the loop: give up on one endpoint quickly and on the whole
 * call well inside a loop, so the lease can still be renewed in time. */
#define AGENT_ETCD_REQUEST_TIMEOUT_USEC (1000 * 1000ULL)
#define AGENT_ETCD_DEADLINE_USEC        (3 * 1000 * 1000ULL)
/* How soon a tick follows one whose etcd round failed. */
#define AGENT_ETCD_RETRY_USEC (300 * 1000ULL)
/* A loop (and best_effort_begin()) renews a lease due this soon, so that
 * the best-effort calls after it are not cut short by the renewal's limit. */
#define AGENT_TICK_RENEW_AHEAD_USEC (200 * 1000ULL)
/* connect_timeout (s) asking a former paused leader's server whether it is
 * a primary (check_paused_leader): the loop waits for it, rarely */
#define AGENT_PAUSED_LEADER_CONNECT_SEC 2

static double now_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Per-request and per-call etcd deadlines scale with ttl: with ttl 3 a call
 * blocked for 3 s would outlive the lease it tries to renew. */
static void etcd_timeouts(int64_t ttl_sec, uint64_t *ret_request, uint64_t *ret_deadline)
{
    uint64_t ttl = (uint64_t)(ttl_sec > 0 ? ttl_sec : 1) * USEC_PER_SEC;
    uint64_t req = ttl / 6, deadline = ttl / 3;
    *ret_request = req < 300000ULL                         ? 300000ULL
                   : req > AGENT_ETCD_REQUEST_TIMEOUT_USEC ? AGENT_ETCD_REQUEST_TIMEOUT_USEC
                                                           : req;
    *ret_deadline = deadline < 1000000ULL                 ? 1000000ULL
                    : deadline > AGENT_ETCD_DEADLINE_USEC ? AGENT_ETCD_DEADLINE_USEC
                                                          : deadline;
}

static int etcd_client_from_config(const Config *c, uint64_t deadline_usec, EtcdClient **ret)
{
    uint64_t request_usec, scaled_deadline;
    etcd_timeouts(c->bootstrap.dcs.ttl, &request_usec, &scaled_deadline);
    if (scaled_deadline < deadline_usec) {
        deadline_usec = scaled_deadline;
    }
    EtcdClientConfig ec = {
        .endpoints = (const char *const *)c->etcd3.hosts.items,
        .n_endpoints = c->etcd3.hosts.n,
        .protocol = etcd_protocol_from_string(c->etcd3.protocol),
        .username = c->etcd3.username,
        .password = c->etcd3.password,
        .cacert = c->etcd3.cacert,
        .cert = c->etcd3.cert,
        .key = c->etcd3.key,
        .request_timeout_usec = request_usec,
        .deadline_usec = deadline_usec,
        .stream_keepalives = true,
    };
    if (ec.protocol < 0) {
        ec.protocol = ETCD_PROTOCOL_HTTP;
    }
    EtcdError e = { 0 };
    int r = etcd_client_new(&ec, ret, &e);
    if (r < 0) {
        return log_error_errno(r, "etcd client: %s", e.message);
    }
    return 0;
}

/* ---- the watch thread: keeps the cache, wakes the loop when the cluster changes ---- */

/* ---- timers and signals ---- */

static int on_loop_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
    (void)s;
    (void)usec;
    Agent *a = userdata;
    ticker_reset(&a->ticker);
    agent_tick(a);
    if (!a->stopping) {
        /* after a failed etcd round, retry soon: the lease deadline runs */
        uint64_t wait =
            a->dcs_ok ? (uint64_t)agent_dcs(a)->loop_wait * USEC_PER_SEC : AGENT_ETCD_RETRY_USEC;
        uint64_t now = clock_monotonic_usec();
        agent_schedule_tick(a, lease_tick_usec(&a->lease, now, now + wait));
    }
    return 0;
}

static void update_fence(Agent *a, uint64_t now);

/* The lease is renewed on a timer of its own (lease_renew_due_usec()), not
 * on every loop: between changes an idle node makes one etcd request per
 * renewal. Armed after every tick and every renewal.
 *
 * The etcd client is one and blocking: a call that waits on etcd (a member
 * killed, an election: 835 ms a request was measured) would hold the
 * renewal behind it and eat the retry time the renewal is owed, and a
 * leader was fenced that way by a topology write. So no best-effort call
 * runs past the renewal's due time (best_effort_begin()). */
static void arm_lease_timer(Agent *a)
{
    lease_set_retry(&a->lease, (uint64_t)agent_dcs(a)->retry_timeout * USEC_PER_SEC);
    uint64_t due = a->stopping ? 0 : lease_renew_due_usec(&a->lease);
    if (due == 0 || (!a->dcs_ok && due <= clock_monotonic_usec())) {
        /* none, or a renewal that is failing: the loop retries it every
         * AGENT_ETCD_RETRY_USEC (a timer firing at once as well doubled the
         * tries, each up to the client's deadline, and slowed the loop) */
        (void)sd_event_source_set_enabled(a->lease_timer, SD_EVENT_OFF);
        return;
    }
    (void)sd_event_source_set_time(a->lease_timer, due);
    (void)sd_event_source_set_enabled(a->lease_timer, SD_EVENT_ONESHOT);
}

/* Renews the lease when it is due within ahead_usec (no I/O otherwise), and
 * re-arms the fence and the renewal timer; on failure a loop is scheduled at
 * once. */
static int agent_renew_lease(Agent *a, uint64_t ahead_usec)
{
    uint64_t now = clock_monotonic_usec();
    int r = lease_keep(&a->lease, now, ahead_usec, agent_dcs(a)->ttl);
    if (r < 0) {
        /* the loop logs it, retries soon and fences at the deadline */
        agent_schedule_tick(a, now);
        return r;
    }
    /* the deadline moved: the fencing process and the watchdog follow */
    update_fence(a, clock_monotonic_usec());
    arm_lease_timer(a);
    return 0;
}

/* Best-effort etcd calls (between loops: a topology publish, REST
 * requests; after a loop's actions: the member key) run with the client's
 * limit (etcd_client_set_limit()) at the renewal's due time: cut short
 * there, failing as etcd being unavailable, they never hold the renewal;
 * their callers retry. A renewal due within AGENT_TICK_RENEW_AHEAD_USEC is
 * done first, so that a healthy etcd's answer is not cut a moment before
 * it (not while renewals fail: the loop retries those). The HA actions are
 * not limited (releasing the leader key after a before_stop that ran to
 * the lease's deadline must not be cut): a loop renews between them. */
static void best_effort_begin(Agent *a)
{
    if (a->dcs_ok) {
        (void)agent_renew_lease(a, AGENT_TICK_RENEW_AHEAD_USEC);
    }
    etcd_client_set_limit(a->etcd, a->stopping ? 0 : lease_renew_due_usec(&a->lease));
}

static void best_effort_end(Agent *a)
{
    etcd_client_set_limit(a->etcd, 0);
}

static int on_lease_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
    (void)s;
    (void)usec;
    (void)agent_renew_lease(userdata, 0);
    return 0;
}

/* ---- the REST request queue (agent/api.h) ---- */

static ApiEnv api_env(Agent *a)
{
    size_t n;
    const HaRow *rows = ha_table(&n);
    return (ApiEnv){
        .me = a->config->name,
        .dcs = agent_dcs(a),
        .view = a->dcs_ok ? a->cluster : NULL,
        .store = &a->store,
        .state = a->mem.state,
        .job_running = jobs_kind(&a->jobs) != JOB_NONE,
        .restart_running = jobs_kind(&a->jobs) == JOB_RESTART,
        .pending_restart = a->local.probe_ok && a->local.snap.pending_restart,
        .pg_running = a->local.running,
        .server_version = a->local.probe_ok ? a->local.snap.server_version_num : 0,
        .postmaster_start_time = a->local.probe_ok ? a->local.snap.postmaster_start_time : 0,
        .reason = a->have_last_row && a->last_row < n ? rows[a->last_row].reason : NULL,
        .stopping = a->stopping,
        .request = a->mem.request,
        .restart_result = a->restart_result,
        .restart_timeout_sec = a->restart_timeout_sec,
    };
}

static void api_env_done(Agent *a, const ApiEnv *env)
{
    a->mem.request = env->request;
    a->restart_result = env->restart_result;
    a->restart_timeout_sec = env->restart_timeout_sec;
    if (env->wake_usec) {
        agent_schedule_tick(a, env->wake_usec);
    }
}

static int on_api(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    (void)s;
    (void)fd;
    (void)revents;
    Agent *a = userdata;
    best_effort_begin(a);
    ApiEnv env = api_env(a);
    api_execute(a->api, &env);
    api_env_done(a, &env);
    best_effort_end(a);
    if (api_reload_wanted(a->api)) {
        api_reloaded(a->api, agent_reload(a));
    }
    return 0;
}

/* Another member's routing changed: the topology is published now, or a
 * second after the last such publish (routing changes come in bursts: a
 * replica starting passes through several states). */
static int on_topology_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
    (void)s;
    (void)usec;
    Agent *a = userdata;
    uint64_t now = clock_monotonic_usec();
    a->topology_wake_due_usec = 0;
    if (a->stopping) {
        return 0;
    }
    a->topology_wake_usec = now;
    a->topology_member_wakes++;
    best_effort_begin(a);
    int r = agent_publish_topology_watched(a);
    best_effort_end(a);
    if (r < 0) {
        /* the cache is behind or the write lost a race: a tick reads etcd */
        agent_schedule_tick(a, now);
    }
    return 0;
}

/* A job ended (agent/jobs.h): initdb's password file goes, and a stop or
 * restart is announced to postgresql.callbacks at once. */
static void on_job_end(JobKind kind, bool ok, void *userdata)
{
    Agent *a = userdata;
    if (kind == JOB_INITDB) {
        (void)unlink(a->local.ctl.pwfile);
    }
    if (kind == JOB_INITDB && ok) {
        int r = pgctl_append_bootstrap_hba(&a->local.ctl);
        if (r < 0) {
            log_error_errno(r, "appending bootstrap.pg_hba to pg_hba.conf: %m");
        }
    }
    if (ok && kind == JOB_STOP) {
        agent_callbacks(a, CALLBACKS_EVENT_STOPPED);
    } else if (ok && kind == JOB_RESTART) {
        agent_callbacks(a, CALLBACKS_EVENT_RESTARTING);
    }
}

static void arm_topology_timer(Agent *a, uint64_t now)
{
    uint64_t due = now;
    if (a->topology_wake_usec != 0 && a->topology_wake_usec + AGENT_TOPOLOGY_WAKE_MIN_USEC > due) {
        due = a->topology_wake_usec + AGENT_TOPOLOGY_WAKE_MIN_USEC;
    }
    if (a->topology_wake_due_usec != 0 && a->topology_wake_due_usec <= due) {
        return;
    }
    a->topology_wake_due_usec = due;
    (void)sd_event_source_set_time(a->topology_timer, due);
    (void)sd_event_source_set_enabled(a->topology_timer, SD_EVENT_ONESHOT);
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    (void)s;
    (void)revents;
    Agent *a = userdata;
    bool tick, routing;
    cluster_watch_take(a->watch, &tick, &routing);
    uint64_t now = clock_monotonic_usec();
    if (tick || !routing) {
        agent_schedule_tick(a, now + AGENT_WAKE_MIN_USEC);
    }
    if (routing && !a->stopping) {
        arm_topology_timer(a, now);
    }
    return 0;
}

static void observe_postgres(Agent *a, uint64_t now);
static void arm_probe_timer(Agent *a, uint64_t now);
static void observe_cluster(Agent *a, uint64_t now);

static bool sync_needs_tick(Agent *a)
{
    SyncEnv env = agent_sync_env(a);
    return sync_rep_needs_tick(&a->sync, &env);
}

/* A look at PostgreSQL between ticks, for the REST snapshot (a request
 * asked, or the probe timer runs) or because the postmaster exited. A
 * postmaster that died wakes the loop at once. */
static void probe_between_ticks(Agent *a)
{
    bool was_running = a->local.running;
    pid_t was_pid = a->local.postmaster_pid;
    observe_postgres(a, clock_monotonic_usec());
    if (was_running && !a->local.running && !a->stopping && jobs_kind(&a->jobs) == JOB_NONE) {
        log_warning("postgresql stopped (postmaster %d is gone)", (int)was_pid);
        agent_schedule_tick(a, clock_monotonic_usec());
    } else if (a->mem.state == HA_STATE_PRIMARY && sync_needs_tick(a)) {
        /* commits may wait on a standby that is gone: not loop_wait later */
        agent_schedule_tick(a, clock_monotonic_usec());
    }
    /* a replicatefrom upstream that stopped sending is looked at again
     * (and left) without waiting for the next loop */
    uint64_t look = a->stopping ? 0 : agent_observe_upstream(a, clock_monotonic_usec());
    if (look) {
        agent_schedule_tick(a, look);
    }
    agent_publish_rest(a, clock_monotonic_usec());
}

/* The postmaster we watched exited (agent/local.h): look now. */
static void on_postmaster_exit(void *userdata)
{
    probe_between_ticks(userdata);
}

/* Refreshes the snapshot this long before it turns AGENT_PROBE_INTERVAL_USEC
 * old, so that a client asking steadily never finds it too old. */
#define PROBE_AHEAD_USEC (50 * 1000ULL)

/* Whether the one-second probe has work that nobody else triggers. */
static bool probe_timer_needed(const Agent *a, uint64_t now)
{
    if (a->stopping) {
        return false;
    }
    if (a->local.running && !local_watching(&a->local)) {
        return true; /* no pidfd: the probe is how its death is seen */
    }
    uint64_t asked = rest_server_last_read_usec(a->rest);
    if (asked && asked + PUBLISH_WARM_USEC > now) {
        return true;
    }
    if (agent_dcs(a)->synchronous_mode &&
        (a->mem.state == HA_STATE_PRIMARY || (a->local.probe_ok && !a->local.snap.in_recovery))) {
        return true; /* sync_rep_needs_tick */
    }
    return a->config->tags.replicatefrom || a->cascade.avoid; /* agent_observe_upstream */
}

static void arm_probe_timer(Agent *a, uint64_t now)
{
    int on = SD_EVENT_OFF;
    if (sd_event_source_get_enabled(a->probe_timer, &on) < 0 || on != SD_EVENT_OFF ||
        !probe_timer_needed(a, now)) {
        return;
    }
    uint64_t at = a->publisher.published_usec + AGENT_PROBE_INTERVAL_USEC - PROBE_AHEAD_USEC;
    (void)sd_event_source_set_time(a->probe_timer, at > now ? at : now);
    (void)sd_event_source_set_enabled(a->probe_timer, SD_EVENT_ON);
}

static int on_probe_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
    Agent *a = userdata;
    probe_between_ticks(a);
    uint64_t now = clock_monotonic_usec();
    if (!probe_timer_needed(a, now)) {
        (void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
        return 0;
    }
    uint64_t at = a->publisher.published_usec + AGENT_PROBE_INTERVAL_USEC - PROBE_AHEAD_USEC;
    (void)sd_event_source_set_time(s, at > now ? at : now + AGENT_PROBE_INTERVAL_USEC);
    return 0;
}

/* A REST request found the snapshot older than AGENT_PROBE_INTERVAL_USEC. */
static int on_rest_refresh(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    (void)s;
    (void)fd;
    (void)revents;
    Agent *a = userdata;
    rest_server_refresh_ack(a->rest);
    uint64_t now = clock_monotonic_usec();
    if (rest_server_published_usec(a->rest) + AGENT_PROBE_INTERVAL_USEC <= now) {
        probe_between_ticks(a); /* else a publish since released the request */
    }
    arm_probe_timer(a, clock_monotonic_usec());
    return 0;
}

static void shutdown_agent(Agent *a);

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    (void)s;
    Agent *a = userdata;
    if (a->stopping) {
        return 0;
    }
    log_info("received %s: stopping", si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown_agent(a);
    return sd_event_exit(a->event, a->exit_code);
}

/* Merges `changed` (and `pg` into its "postgresql" object) into the current
 * `config` key and writes it with a compare-and-swap on its revision. */
static int put_config_patch(Agent *a, json_t *changed, json_t *pg)
{
    if (json_object_size(changed) == 0 && json_object_size(pg) == 0) {
        return 0;
    }
    if (!a->cluster || !a->cluster->config || !a->cluster->config->data) {
        log_notice("reload: bootstrap.dcs changed, but the cluster has no config key yet");
        return 0;
    }
    json_t *merged = json_deep_copy(a->cluster->config->data);
    if (!merged) {
        return -ENOMEM;
    }
    json_object_update(merged, changed);
    if (json_object_size(pg) > 0) {
        json_t *mpg = json_object_get(merged, "postgresql");
        if (!json_is_object(mpg)) {
            json_object_set_new(merged, "postgresql", json_object());
            mpg = json_object_get(merged, "postgresql");
        }
        json_object_update(mpg, pg);
    }
    _cleanup_free_ char *value = json_dumps(merged, JSON_COMPACT);
    json_decref(merged);
    if (!value) {
        return -ENOMEM;
    }
    int r = dcs_store_set_config(&a->store, value, a->cluster->config->mod_revision);
    if (r < 0) {
        return log_warning_errno(r, "reload: could not update the cluster config: %s",
                                 a->store.error.message);
    }
    _cleanup_free_ char *what = json_dumps(changed, JSON_COMPACT);
    log_notice("reload: applied bootstrap.dcs changes %s to the cluster config", strna(what));
    return 0;
}

/* Cluster-wide settings live in the `config` key; bootstrap.dcs only seeds
 * it. An operator who edits bootstrap.dcs and reloads expects the change to
 * take effect (with Patroni it silently does not), so a reload applies the
 * keys whose value changed in the file to the `config` key, with a
 * compare-and-swap on its revision. */
static int patch_cluster_config(Agent *a, const ConfigDcs *old, const ConfigDcs *new)
{
    json_t *changed = json_object();
    if (!changed) {
        return -ENOMEM;
    }
#define INT_KEY(f)                                                                                 \
    if (old->f != new->f)                                                                          \
    json_object_set_new(changed, #f, json_integer(new->f))
#define BOOL_KEY(f)                                                                                \
    if (old->f != new->f)                                                                          \
    json_object_set_new(changed, #f, json_boolean(new->f))
    INT_KEY(ttl);
    INT_KEY(loop_wait);
    INT_KEY(retry_timeout);
    INT_KEY(maximum_lag_on_failover);
    INT_KEY(primary_start_timeout);
    INT_KEY(primary_stop_timeout);
    BOOL_KEY(synchronous_mode);
    BOOL_KEY(synchronous_mode_strict);
    INT_KEY(synchronous_node_count);
    INT_KEY(max_timelines_history);
    INT_KEY(maximum_lag_on_syncnode);
    BOOL_KEY(failsafe_mode);
    BOOL_KEY(check_timeline);
    BOOL_KEY(pause);
#undef INT_KEY
#undef BOOL_KEY
    json_t *pg = json_object();
    if (old->use_pg_rewind != new->use_pg_rewind) {
        json_object_set_new(pg, "use_pg_rewind", json_boolean(new->use_pg_rewind));
    }
    if (old->use_slots != new->use_slots) {
        json_object_set_new(pg, "use_slots", json_boolean(new->use_slots));
    }
    int r = put_config_patch(a, changed, pg);
    json_decref(changed);
    json_decref(pg);
    return r;
}

static bool str_differs(const char *x, const char *y)
{
    return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
}

static bool strv_differs(const ConfigStrv *x, const ConfigStrv *y)
{
    if (x->n != y->n) {
        return true;
    }
    for (size_t i = 0; i < x->n; i++) {
        if (strcmp(x->items[i], y->items[i]) != 0) {
            return true;
        }
    }
    return false;
}

/* Settings the running agent cannot change (identity, data directory,
 * etcd connection, listening sockets): a reload reports each one that
 * changed and keeps its running value in the new config, so every other
 * (reloadable) setting still takes effect. */
static void keep_restart_only_settings(Config *old, Config *fresh)
{
#define KEEP_STR(field, name)                                                                      \
    do {                                                                                           \
        if (str_differs(old->field, fresh->field)) {                                               \
            log_warning("reload: \"%s\" changed; it takes effect after a restart", name);          \
            char *_t = old->field;                                                                 \
            old->field = fresh->field;                                                             \
            fresh->field = _t;                                                                     \
        }                                                                                          \
    } while (0)
    KEEP_STR(scope, "scope");
    KEEP_STR(namespace, "namespace");
    KEEP_STR(name, "name");
    KEEP_STR(postgresql.data_dir, "postgresql.data_dir");
    KEEP_STR(postgresql.config_dir, "postgresql.config_dir");
    KEEP_STR(postgresql.database, "postgresql.database");
    /* the environment is set once, before any thread runs (main.c) */
    KEEP_STR(postgresql.krbsrvname, "postgresql.krbsrvname");
    KEEP_STR(postgresql.config_base_name, "postgresql.config_base_name");
    KEEP_STR(postgresql.listen, "postgresql.listen");
    KEEP_STR(restapi.listen, "restapi.listen");
    KEEP_STR(restapi.certfile, "restapi.certfile");
    KEEP_STR(restapi.keyfile, "restapi.keyfile");
    KEEP_STR(restapi.keyfile_password, "restapi.keyfile_password");
    KEEP_STR(restapi.verify_client, "restapi.verify_client");
    KEEP_STR(restapi.authentication.username, "restapi.authentication.username");
    KEEP_STR(restapi.authentication.password, "restapi.authentication.password");
    KEEP_STR(etcd3.protocol, "etcd3.protocol");
    KEEP_STR(etcd3.username, "etcd3.username");
    KEEP_STR(etcd3.password, "etcd3.password");
    KEEP_STR(etcd3.cacert, "etcd3.cacert");
    KEEP_STR(etcd3.cert, "etcd3.cert");
    KEEP_STR(etcd3.key, "etcd3.key");
#undef KEEP_STR
    if (strv_differs(&old->restapi.allowlist, &fresh->restapi.allowlist) ||
        old->restapi.allowlist_include_members != fresh->restapi.allowlist_include_members) {
        log_warning("reload: \"restapi.allowlist\" or \"restapi.allowlist_include_members\" "
                    "changed; it takes effect after a restart");
        ConfigStrv t = old->restapi.allowlist;
        old->restapi.allowlist = fresh->restapi.allowlist;
        fresh->restapi.allowlist = t;
        bool members = old->restapi.allowlist_include_members;
        old->restapi.allowlist_include_members = fresh->restapi.allowlist_include_members;
        fresh->restapi.allowlist_include_members = members;
    }
    if (strv_differs(&old->etcd3.hosts, &fresh->etcd3.hosts)) {
        log_warning("reload: \"etcd3.hosts\" changed; it takes effect after a restart");
        ConfigStrv t = old->etcd3.hosts;
        old->etcd3.hosts = fresh->etcd3.hosts;
        fresh->etcd3.hosts = t;
    }
}

static int on_hup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    (void)s;
    (void)si;
    (void)agent_reload(userdata);
    return 0;
}

int agent_reload(Agent *a)
{
    Config *fresh = NULL;
    ConfigDiags d = { 0 };
    extern char **environ;
    int r = config_load_from(a->config_path, environ, &fresh, &d);
    for (size_t i = 0; i < d.n; i++) {
        if (d.items[i].severity == CONFIG_ERROR) {
            log_error("reload: %s", d.items[i].text);
        } else if (d.items[i].severity == CONFIG_NOTE) {
            log_info("reload: %s", d.items[i].text);
        } else {
            log_warning("reload: %s", d.items[i].text);
        }
    }
    config_diags_done(&d);
    if (r < 0) {
        log_error("reload of \"%s\" failed: keeping the running configuration",
                  agent_config_name(a));
        return -EINVAL;
    }
    keep_restart_only_settings(a->config, fresh);
    /* The new config replaces the old; PgCtl borrows it, so rebuild that. */
    PgCtl pg;
    r = pgctl_init(&pg, fresh);
    if (r < 0) {
        log_error_errno(r, "reload: %m");
        config_free(fresh);
        return r;
    }
    if (jobs_set_pgpass(&a->jobs, pg.pgpass) < 0) {
        pgctl_done(&pg);
        config_free(fresh);
        return log_error_errno(-ENOMEM, "out of memory");
    }
    pgctl_done(&a->local.ctl);
    a->local.ctl = pg;
    (void)patch_cluster_config(a, &a->config->bootstrap.dcs, &fresh->bootstrap.dcs);
    config_free(a->config);
    a->config = fresh;
    publish_config_changed(&a->publisher);
    /* the node's parameters, pg_hba and pg_ident may have changed: written
     * again, and PostgreSQL reloaded, at the next tick (as Patroni's reload) */
    a->params_revision = -1;
    a->lease_etcd.name = a->config->name; /* the same name: a restart-only setting */
    /* re-read the cluster so the new settings count from this tick */
    observe_cluster(a, clock_monotonic_usec());
    LogLevel lvl = log_level_from_string(a->config->log.level);
    if (lvl >= 0) {
        log_set_max_level(lvl);
    }
    (void)log_set_format(a->config->log.format, a->config->log.dateformat); /* checked */
    r = log_set_dir(a->config->log.dir, a->config->log.file_size, a->config->log.file_num);
    if (r < 0) {
        log_error_errno(r,
                        "reload: log.dir: cannot open \"%s/patroni.log\": %m; logging "
                        "where it did before",
                        a->config->log.dir);
    }
    log_info("reloaded \"%s\" (loop_wait %" PRId64 " s)", agent_config_name(a),
             agent_dcs(a)->loop_wait);
    agent_callbacks(a, CALLBACKS_EVENT_RELOADED);
    /* the new loop_wait counts from now */
    ticker_reset(&a->ticker);
    agent_schedule_tick(a, clock_monotonic_usec());
    return 0;
}

/* ---- observation ---- */

static void observe_postgres(Agent *a, uint64_t now)
{
    if (local_observe(&a->local, now, !a->stopping)) {
        agent_schedule_tick(a, clock_monotonic_usec());
    }
    arm_probe_timer(a, now);
}

/* The view of this tick: from the watch-fed cache when it has reached the
 * highest revision in this tick's own answers (the keepalive just sent),
 * else one linearizable range. lib/kvcache.h says why that is safe. The
 * tick waits for the watch only when the last one did not find the cache
 * behind: when something else writes to the same etcd, the revision runs
 * ahead of our prefix's and the cache never catches up, and every tick
 * would pay the wait for nothing. */
static int read_cluster(Agent *a, uint64_t now, DcsCluster **ret, EtcdError *e)
{
    int64_t seen = etcd_client_get_revision(a->etcd);
    /* The prefix at a revision never changes: when the cache is still at
     * the revision the last view was read at, and that is not older than
     * this tick's own answers, a new view would be the same. */
    const DcsCluster *prev = a->cluster;
    int64_t at = cluster_watch_revision(a->watch);
    if (prev && at > 0 && at == prev->revision && at >= seen) {
        a->dcs_cache_reads++;
        *ret = NULL;
        return 1;
    }
    int r = cluster_watch_view(a->watch, seen, now, ret);
    if (r >= 0) {
        a->dcs_cache_reads++;
        return 0;
    }
    log_debug("cluster view from etcd: the cache %s (it is at revision %" PRId64
              ", this tick saw %" PRId64 ")",
              r == -ETIMEDOUT ? "is behind"
              : r == -ESTALE  ? "is not loaded"
                              : "failed",
              cluster_watch_revision(a->watch), seen);
    a->dcs_etcd_reads++;
    return dcs_cluster_read(a->etcd, &a->paths, ret, e);
}

/* restapi.allowlist_include_members: the REST API lets the hosts of the
 * members' api_urls in this view call the mutating endpoints (Patroni asks
 * its last-read cluster on each request). */
static void share_members_with_rest(Agent *a)
{
    if (!a->config->restapi.allowlist_include_members || !a->cluster) {
        return;
    }
    const DcsCluster *c = a->cluster;
    _cleanup_free_ const char **urls = calloc(c->n_members + 1, sizeof(*urls));
    if (!urls) {
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i].api_url) {
            urls[n++] = c->members[i].api_url;
        }
    }
    (void)rest_server_set_member_urls(a->rest, urls, n);
}

/* The lease first (its deadline counts from before the keepalive was
 * sent), then one read of the cluster, then the lease settles on what the
 * view shows: which of our leases holds the leader key, and a ttl change
 * (re-grant, the key moved in one txn before the new ttl counts). */
static void observe_cluster(Agent *a, uint64_t now)
{
    EtcdError e = { 0 };
    int64_t had = lease_id(&a->lease);
    int r = lease_keep(&a->lease, now, AGENT_TICK_RENEW_AHEAD_USEC, agent_dcs(a)->ttl);
    DcsCluster *view = NULL;
    if (r >= 0) {
        if (had != 0 && lease_id(&a->lease) != had) {
            log_warning("our etcd lease %" PRId64 " is gone: granted a new one", had);
        }
        r = read_cluster(a, clock_monotonic_usec(), &view, &e);
        if (r == 1) {
            view = a->cluster; /* unchanged: kept */
        }
    } else {
        /* the etcd error says which call and why */
        snprintf(e.message, sizeof(e.message), "lease keepalive failed: %.200s",
                 a->lease_etcd.error.message[0] ? a->lease_etcd.error.message : strerror(-r));
    }
    if (r >= 0) {
        /* the settings of the view just read: a ttl changed in the config
         * key re-grants now */
        const DcsLeader *l = view->leader;
        bool mine = l && strcmp(l->name, a->config->name) == 0;
        int64_t want = view->config ? view->config->dcs.ttl : a->config->bootstrap.dcs.ttl;
        int64_t was = lease_id(&a->lease);
        int s = lease_settle(&a->lease, clock_monotonic_usec(), want, mine, l ? l->lease : 0);
        if (s < 0) {
            log_warning("settling the leader lease: %s", a->lease_etcd.error.message);
        }
        if (lease_id(&a->lease) != was) {
            log_notice("ttl %" PRId64 " s: granted lease %" PRId64 " (%" PRId64 " s)", want,
                       lease_id(&a->lease), lease_ttl_sec(&a->lease));
        }
        if (lease_take_moved(&a->lease)) {
            log_notice("the leader key moved to lease %" PRId64, lease_id(&a->lease));
        }
    }
    a->dcs_ok = r >= 0;
    arm_lease_timer(a);
    (void)log_condition_update(&a->etcd_down, !a->dcs_ok, now, e.message);
    if (a->dcs_ok) {
        const char *was = a->cluster && a->cluster->leader ? a->cluster->leader->name : NULL;
        const char *is = view->leader ? view->leader->name : NULL;
        if (a->cluster && is && (!was || strcmp(was, is) != 0)) {
            a->leader_changes++;
        }
        if (view != a->cluster) {
            dcs_cluster_free(a->cluster);
            a->cluster = view;
            share_members_with_rest(a);
        }
        a->dcs_seen_usec = now;
        a->dcs_seen_epoch = now_epoch();
    }
}

static HaDataDir observe_data_dir(Agent *a)
{
    uint64_t sysid = 0;
    switch (local_data_state(&a->local, &sysid)) {
    case PGDATA_EMPTY:
        return HA_DATA_EMPTY;
    case PGDATA_VALID:
        break;
    default:
        return HA_DATA_FOREIGN;
    }
    const char *init = a->cluster ? a->cluster->initialize : NULL;
    if (!init || !*init) {
        return HA_DATA_OURS; /* nothing to compare with yet */
    }
    /* the key holds the identifier in decimal (Patroni's "initialize"),
     * compared as text as Patroni does */
    char mine[24];
    char *p = mine + sizeof(mine) - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + sysid % 10);
        sysid /= 10;
    } while (sysid > 0);
    return strcmp(init, p) == 0 ? HA_DATA_OURS : HA_DATA_FOREIGN;
}

/* ---- the step: observe, decide (agent/policy.h), act ---- */

/* Patroni's node-level postgresql.use_pg_rewind: 1 true, -1 false, 0 when
 * absent (the cluster's then). */
static int node_use_pg_rewind(const Config *c)
{
    bool v = false;
    if (!c->postgresql.use_pg_rewind || config_parse_bool(c->postgresql.use_pg_rewind, &v) < 0) {
        return 0;
    }
    return v ? 1 : -1;
}

/* A replica can be made with no member to copy from (Patroni's
 * "bootstrap (without leader)"): a method of create_replica_methods has
 * no_leader. */
static bool clone_no_leader(const Agent *a)
{
    const ConfigReplicaMethod *m[AGENT_CLONE_METHODS_MAX];
    return agent_clone_methods(a, false, m) > 0;
}

/* The tick's observation, from what observe_cluster and observe_postgres
 * read (the data directory is looked at here). */
static void observe_step(Agent *a, uint64_t now, HaObservation *o)
{
    const DcsMember *up = agent_upstream(a); /* logs a new choice */
    *o = (HaObservation){
        .now_usec = now,
        .now_epoch = now_epoch(),
        .me = a->config->name,
        .dcs = agent_dcs(a),
        .tag_nofailover = a->config->tags.nofailover,
        .post_bootstrap = a->config->bootstrap.post_bootstrap != NULL,
        .pre_promote = a->config->postgresql.pre_promote != NULL,
        .node_use_pg_rewind = node_use_pg_rewind(a->config),
        .failover_priority = a->config->tags.failover_priority,
        .watchdog_blocked = a->watchdog_blocked,
        .data = observe_data_dir(a),
        .pg_running = a->local.running,
        .snap = a->local.probe_ok ? &a->local.snap : NULL,
        /* read only where the rules read it: a stopped server (ha.h) */
        .standby_signal = !a->local.running && pgctl_is_standby(&a->local.ctl),
        .promote_signal = a->local.running && a->local.probe_ok && a->local.snap.in_recovery &&
                          local_promote_signal(&a->local),
        .job = jobs_result(&a->jobs),
        .streaming = agent_streaming(a),
        .following = cascade_following(&a->cascade) != NULL,
        .follows_upstream = cascade_follows(&a->cascade, up),
        .dcs_ok = a->dcs_ok,
        .view = a->cluster,
        .lease_expiring = lease_expiring(&a->lease, now),
        .clone_in_place = a->clone_in_place,
        .clone_no_leader = clone_no_leader(a),
        .standby_cluster = agent_standby(a, &(StandbyCluster){ 0 }) != 0,
        .paused_leader_elsewhere = a->paused_leader != NULL,
    };
}

static void forget_paused_leader(Agent *a)
{
    free(a->paused_leader);
    free(a->paused_leader_url);
    a->paused_leader = a->paused_leader_url = NULL;
    a->paused_leader_said = false;
}

/* Remembers who led while the cluster was paused (another member with a
 * conn_url), until a view that is not paused has a leader again. */
static void remember_paused_leader(Agent *a)
{
    const DcsCluster *c = a->cluster;
    if (!c || !a->dcs_ok) {
        return;
    }
    if (!dcs_cluster_is_paused(c)) {
        if (c->leader) {
            forget_paused_leader(a);
        }
        return;
    }
    const DcsMember *lm = dcs_cluster_leader_member(c);
    if (!lm || !lm->conn_url) {
        return; /* keep whom we saw last */
    }
    if (strcmp(lm->name, a->config->name) == 0) {
        forget_paused_leader(a);
        return;
    }
    if (a->paused_leader && strcmp(a->paused_leader, lm->name) == 0 &&
        strcmp(a->paused_leader_url, lm->conn_url) == 0) {
        return;
    }
    forget_paused_leader(a);
    a->paused_leader = strdup(lm->name);
    a->paused_leader_url = strdup(lm->conn_url);
    if (!a->paused_leader || !a->paused_leader_url) {
        forget_paused_leader(a); /* out of memory: the REST answers alone decide */
    }
}

/* A member that led while paused: its agent may be gone with its
 * PostgreSQL still a primary, unfenced (pause stands the fence down). Its
 * server is asked directly: > 0 while it accepts writes (said once); else
 * it is forgotten and 0. */
static int probe_paused_leader(Agent *a)
{
    _cleanup_free_ char *host = NULL;
    int port = 0;
    if (dcs_parse_conn_url(a->paused_leader_url, &host, &port) < 0 || !host) {
        forget_paused_leader(a);
        return 0;
    }
    _cleanup_free_ char *info =
        pgctl_remote_conninfo(&a->local.ctl, host, port, AGENT_PAUSED_LEADER_CONNECT_SEC);
    char why[256] = "";
    int r = election_probe_primary(info, why, sizeof(why));
    if (r <= 0) {
        log_info("\"%s\", which led while the cluster was paused, runs no primary now (%s)",
                 a->paused_leader, r < 0 ? "out of memory" : why);
        forget_paused_leader(a);
        return 0;
    }
    if (!a->paused_leader_said) {
        a->paused_leader_said = true;
        log_warning("not taking over: \"%s\"'s postgresql still accepts writes and its agent "
                    "does not answer (it led while the cluster was paused, when nothing fences "
                    "it): start its agent, which takes the leader key back, or stop that "
                    "postgresql",
                    a->paused_leader);
    }
    return 1;
}

/* The election's peers: a member that led while paused and does not answer
 * as a running primary now counts as a peer running a primary while its
 * server accepts writes, which no candidate takes over from. */
static size_t check_paused_leader(Agent *a, ElectionPeer *peers, size_t n)
{
    if (!a->paused_leader || n >= ELECTION_PEERS_MAX) {
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        if (peers[i].answered && strcmp(peers[i].name, a->paused_leader) == 0) {
            return n; /* its agent answers for it */
        }
    }
    if (probe_paused_leader(a) == 0) {
        return n;
    }
    peers[n] = (ElectionPeer){ .name = a->paused_leader,
                               .answered = true,
                               .running_primary = true,
                               .c = { .name = a->paused_leader } };
    return n + 1;
}

/* Paused, an operator's restart of our stopped former primary takes a free
 * leader key and starts it (agent/ha.c): not while a member that led while
 * paused still runs a primary. Asked only then. */
static void check_paused_leader_for_restart(Agent *a)
{
    if (a->paused_leader && a->mem.request == HA_REQUEST_RESTART && !a->local.running &&
        a->dcs_ok && a->cluster && dcs_cluster_is_paused(a->cluster) && !a->cluster->leader) {
        (void)probe_paused_leader(a);
    }
}

/* The election's I/O: the peers' WAL positions, asked only when the rules
 * open the election and our own lag does not block us. */
static void observe_peers(Agent *a, const HaObservation *o, HaStep *st)
{
    if (!st->ask_peers) {
        return;
    }
    /* the peers ask us now too: our snapshot must not wait for this loop,
     * which is busy asking them (each side would time out on the other) */
    agent_publish_rest_now(a, clock_monotonic_usec());
    ElectionPeer *peers = calloc(ELECTION_PEERS_MAX, sizeof(*peers));
    size_t n = 0;
    PeerHttpOptions tls = { 0 };
    peer_http_tls_from_config(a->config, true, &tls); /* Patroni's agent: insecure=True */
    bool asked = peers && election_ask_peers(a->cluster, a->config->name, &tls, peers, &n) >= 0;
    if (asked) {
        n = check_paused_leader(a, peers, n);
    }
    for (size_t i = 0; asked && i < n; i++) {
        /* in synchronous_mode a peer the sync key does not name will not
         * promote: it must not stop us as a better candidate */
        peers[i].excluded = dcs_sync_problem(a->cluster, o->dcs->synchronous_mode, peers[i].name);
        const char *skip = peers[i].answered ? election_peer_skip(&peers[i], &st->rules) : NULL;
        if (skip) {
            log_debug("election: peer \"%s\" is not a contender: %s", peers[i].name, skip);
        }
    }
    ha_policy_elect(o, asked ? peers : NULL, n, st);
    free(peers);
}

/* Says what the rules found changed (each once per change). */
static void say_step(Agent *a, const HaStep *st)
{
    const HaMemory *m = &st->memory;
    if (st->say_diverged) {
        const DcsMember *lm = dcs_cluster_leader_member(a->cluster);
        log_warning("our WAL (timeline %" PRIu32 ") goes past the point where leader \"%s\"'s "
                    "timeline %" PRId64 " forked off: this replica cannot follow it as it is",
                    m->streamed_tli, lm ? lm->name : "?", lm ? lm->timeline : 0);
    }
    if (st->failover_time_unreadable && a->have_last_row) {
        log_debug("ignoring the failover key: unreadable scheduled_at \"%s\"",
                  a->cluster->failover->scheduled_at);
    }
    if (st->say_sync_blocked) {
        log_warning("not a candidate: %s", m->failover_blocked);
    }
    if (st->say_lag_blocked) {
        log_warning("not a candidate for promotion: %s", m->failover_blocked);
    }
    if (st->say_lag_ok) {
        log_info("a candidate for promotion again: neither maximum_lag_on_failover nor "
                 "check_timeline holds it back");
    }
    if (st->say_not_promoting) {
        log_info("not promoting: %s", st->say_not_promoting);
    }
}

static void set_state(Agent *a, HaState next)
{
    if (next == a->mem.state) {
        return;
    }
    log_struct_id(LOG_LEVEL_NOTICE, "3f6d2c8a9b1e4f07a5c2d8e6b4a19c30", "state %s -> %s",
                  ha_state_to_string(a->mem.state), ha_state_to_string(next));
    HaState from = a->mem.state;
    ha_memory_enter(&a->mem, next, clock_monotonic_usec());
    callbacks_state(a->callbacks, a->config, from, next);
    const char *role = next == HA_STATE_PRIMARY   ? "primary"
                       : next == HA_STATE_REPLICA ? "replica"
                                                  : NULL;
    log_set_context(a->config->name, a->config->scope, role);
    (void)sd_notifyf(false, "STATUS=%s", ha_state_to_string(next));
}

/* While we run a writable primary under our lease, the fencing process
 * stops PostgreSQL at renewal + ttl - margin unless a later renewal moves the
 * deadline: a hung or killed agent cannot keep a primary past its lease. */
/* `required`: never lead without a device we can open. Checked while not
 * leading (open + magic close at once, which leaves a real device disarmed). */
static bool watchdog_testing(const Config *c)
{
    return c->watchdog.driver && strcmp(c->watchdog.driver, "testing") == 0;
}

static void check_watchdog_required(Agent *a)
{
    const Config *c = a->config;
    if (c->watchdog.mode != CONFIG_WATCHDOG_REQUIRED || a->watchdog) {
        a->watchdog_blocked = false;
        return;
    }
    Watchdog *w = NULL;
    unsigned want = watchdog_timeout_sec((long)agent_dcs(a)->ttl, (long)c->watchdog.safety_margin);
    int r = watchdog_open(c->watchdog.device, watchdog_testing(c), want, &w);
    if (r >= 0 && watchdog_get_timeout(w) > want) {
        r = -ERANGE; /* it keeps a longer timeout than a safe reset needs */
    }
    bool blocked = r < 0;
    watchdog_close(w);
    if (blocked != a->watchdog_blocked) {
        if (blocked) {
            log_error_errno(r,
                            "watchdog.mode is required but \"%s\" cannot be opened with a "
                            "timeout it reads back (%m): this member will not become leader",
                            c->watchdog.device);
        } else {
            log_info("watchdog \"%s\" is available", c->watchdog.device);
        }
    }
    a->watchdog_blocked = blocked;
}

/* While leading, the watchdog device (when configured) is armed with the
 * lease's granted ttl - safety_margin (Patroni's rule, on the TTL etcd
 * granted the lease that holds the leader key). It is kept alive only while
 * a reset one timeout from now would still come before the lease can
 * expire, so a stuck loop or an etcd we cannot reach lets it fire in time;
 * it is disarmed when we stop leading. */
static void update_watchdog(Agent *a, bool leading, uint64_t now)
{
    const Config *c = a->config;
    if (!leading || c->watchdog.mode == CONFIG_WATCHDOG_OFF) {
        a->watchdog = watchdog_close(a->watchdog);
        a->watchdog_timeout = 0;
        lease_set_max_interval(&a->lease, 0);
        return;
    }
    unsigned timeout =
        watchdog_timeout_sec((long)lease_ttl_sec(&a->lease), (long)c->watchdog.safety_margin);
    /* kept alive right after each renewal: renew every loop (as Patroni
     * kicks it), and always well inside its timeout */
    uint64_t every = (uint64_t)agent_dcs(a)->loop_wait * USEC_PER_SEC;
    uint64_t half = (uint64_t)timeout * USEC_PER_SEC / 2;
    lease_set_max_interval(&a->lease, every < half ? every : half);
    if (!a->watchdog) {
        int r = watchdog_open(c->watchdog.device, watchdog_testing(c), timeout, &a->watchdog);
        if (r < 0) {
            if (c->watchdog.mode == CONFIG_WATCHDOG_REQUIRED) {
                log_error_errno(r, "watchdog \"%s\" could not be armed: %m", c->watchdog.device);
            }
            return;
        }
        a->watchdog_timeout = timeout;
        log_info("watchdog \"%s\" armed (timeout %u s)", c->watchdog.device,
                 watchdog_get_timeout(a->watchdog));
    } else if (timeout != a->watchdog_timeout) {
        if (watchdog_set_timeout(a->watchdog, timeout) < 0) {
            log_error("watchdog \"%s\" refused timeout %u s: closed", c->watchdog.device, timeout);
            a->watchdog = watchdog_close(a->watchdog);
            a->watchdog_timeout = 0;
            return;
        }
        a->watchdog_timeout = timeout;
        log_info("watchdog \"%s\" timeout now %u s (lease ttl %" PRId64 " s)", c->watchdog.device,
                 watchdog_get_timeout(a->watchdog), lease_ttl_sec(&a->lease));
    }
    unsigned in_force = watchdog_get_timeout(a->watchdog);
    if (in_force > timeout) {
        /* the device keeps a longer timeout than we asked for: a reset
         * could come after the lease expired (Patroni 3.0.2: required
         * refuses such a device, automatic warns and keeps it) */
        if (c->watchdog.mode == CONFIG_WATCHDOG_REQUIRED) {
            log_error("watchdog \"%s\" keeps a %u s timeout, more than the %u s a safe reset "
                      "needs: closed; this member will not become leader",
                      c->watchdog.device, in_force, timeout);
            a->watchdog = watchdog_close(a->watchdog);
            a->watchdog_timeout = 0;
            a->watchdog_blocked = true;
            return;
        }
        if (!a->watchdog_unsafe_said) {
            log_warning("watchdog \"%s\" timeout %u s does not ensure a reset within %u s",
                        c->watchdog.device, in_force, timeout);
            a->watchdog_unsafe_said = true;
        }
    } else if (now + (uint64_t)in_force * USEC_PER_SEC > lease_expiry_usec(&a->lease)) {
        return; /* not renewed recently enough: a keepalive would outlive the lease */
    }
    if (watchdog_keepalive(a->watchdog) < 0) {
        log_warning("watchdog keepalive failed");
    }
}

static void update_fence(Agent *a, uint64_t now)
{
    bool leading_now =
        (a->mem.state == HA_STATE_PRIMARY || a->mem.state == HA_STATE_STARTING_PRIMARY) &&
        lease_deadline_usec(&a->lease) != 0;
    /* paused: as Patroni, the watchdog is disabled and the fence stands
     * down (a promotion pending excepted) */
    bool paused = a->cluster && dcs_cluster_is_paused(a->cluster);
    update_watchdog(a, leading_now && !paused, now);
    if (!leading_now) {
        check_watchdog_required(a);
    }
    if (!a->fence) {
        return;
    }
    unsigned fenced = fence_get_fenced_count(a->fence);
    if (fenced != a->fenced_seen) {
        a->fenced_seen = fenced;
        log_struct_id(LOG_LEVEL_WARNING, "d6f0a1b2c3e44f5a8b9c0d1e2f3a4b5c",
                      "the fencing process shut postgresql down: the leader lease was not "
                      "renewed in time");
    }
    FenceLocal fl = {
        .leading = leading_now,
        .has_deadline = lease_deadline_usec(&a->lease) != 0,
        .running = a->local.running,
        .probe_ok = a->local.probe_ok,
        .in_recovery = a->local.snap.in_recovery,
        .snap_usec = a->local.snap_usec,
        .maybe_primary_usec = a->local.maybe_primary_usec,
        .promoting = a->mem.promote_usec != 0,
        .paused = paused,
    };
    FenceVerdict v = fence_verdict(&fl);
    /* A fence that may have to act must be there (a new one if it died or
     * hangs); a disarmed one has nothing to do, and is looked at again
     * before it is armed. */
    if (v != FENCE_DISARM && fence_ensure(a->fence) > 0) {
        log_warning("the fencing process was gone or stuck: started a new one");
    }
    switch (v) {
    case FENCE_ARM:
        fence_arm(a->fence, lease_deadline_usec(&a->lease));
        break;
    case FENCE_DISARM:
        fence_disarm(a->fence);
        break;
    case FENCE_KEEP:
        break;
    }
}

/* A config key with a parameter name PostgreSQL would not read (written by
 * someone else than dbctl or the REST API, which refuse it): postgresql.conf
 * stays as it is, said once per revision of the key. */
static void refuse_cluster_parameters(Agent *a, const DcsConfig *cc)
{
    if (cc->mod_revision == a->params_refused_revision) {
        return;
    }
    a->params_refused_revision = cc->mod_revision;
    char shown[PGCONF_PRINTABLE_MAX];
    log_error("cluster configuration (revision %" PRId64 ") not applied: " PGCONF_NAME_HINT
              "; correct it with dbctl edit-config",
              cc->mod_revision, pgconf_printable(cc->bad_parameter, shown, sizeof(shown)));
}

/* A change of the `config` key reaches postgresql.conf within one loop:
 * rewrite it and reload. Settings that need a restart then show as
 * pending_restart (from the probe) until `dbctl restart --pending`. */
static void apply_cluster_parameters(Agent *a)
{
    const DcsConfig *cc = a->dcs_ok && a->cluster ? a->cluster->config : NULL;
    if (cc && cc->bad_parameter) {
        refuse_cluster_parameters(a, cc);
        return;
    }
    if (!cc || cc->mod_revision == a->params_revision || !a->local.running || !a->local.probe_ok) {
        return;
    }
    bool replica = a->mem.state == HA_STATE_REPLICA;
    if (a->mem.state != HA_STATE_PRIMARY && !replica) {
        return; /* starting, stopping...: the next start writes it anyway */
    }
    /* A replica keeps its upstream: rewrite only while it follows the
     * member it should (else FOLLOW re-points it, writing the file). */
    const DcsMember *up = replica ? agent_upstream(a) : NULL;
    if (replica && !(up && (up->host || up == &a->remote) && cascade_follows(&a->cascade, up))) {
        return;
    }
    /* after a reload of the agent's own file, which ran on_reload itself */
    bool after_reload = a->params_revision == -1;
    if (agent_write_conf(a, replica) < 0) {
        return;
    }
    if (agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL) >= 0) {
        log_info("%s (revision %" PRId64 ") written to postgresql.conf, postgresql reloaded",
                 after_reload ? "reloaded configuration" : "cluster configuration",
                 cc->mod_revision);
        if (!after_reload) {
            agent_callbacks(a, CALLBACKS_EVENT_RELOADED);
        }
    }
}

/* The history key a promotion appended to: written after the promotion's
 * action (and the renewal it may have waited up to), else at the next loops
 * until it is, unless another member leads by then (a failed write was
 * lost before). */
static void write_history(Agent *a)
{
    if (!a->history_pending) {
        return;
    }
    const DcsLeader *l = a->dcs_ok && a->cluster ? a->cluster->leader : NULL;
    if (l && strcmp(l->name, a->config->name) != 0) {
        log_warning("the history key of our promotion was not written, and %s leads now: "
                    "left as it is",
                    l->name);
        free(a->history_pending);
        a->history_pending = NULL;
        return;
    }
    int r = dcs_store_set_history(&a->store, a->history_pending);
    if (r >= 0) {
        free(a->history_pending);
        a->history_pending = NULL;
        return;
    }
    log_warning("writing the history key failed, trying again: %s", a->store.error.message);
}

void agent_tick(Agent *a)
{
    uint64_t now = clock_monotonic_usec();
    a->loops++;
    observe_cluster(a, now);
    remember_paused_leader(a);
    /* etcd calls may have taken a while: the probe gets its own deadline */
    now = clock_monotonic_usec();
    observe_postgres(a, now);
    check_paused_leader_for_restart(a);

    uint64_t look = agent_observe_upstream(a, now);
    if (look > now) {
        agent_schedule_tick(a, look); /* the second look */
    }
    HaObservation o;
    observe_step(a, now, &o);
    HaStep st;
    ha_policy_input(&o, &a->mem, &st);
    observe_peers(a, &o, &st);
    if (ha_policy_decide(&o, &st) < 0) {
        log_error("no HA decision for state \"%s\": this is a bug",
                  ha_state_to_string(a->mem.state));
        return;
    }
    say_step(a, &st);
    if (st.wake_usec) {
        agent_schedule_tick(a, st.wake_usec);
    }
    a->mem = st.memory;
    const HaDecision *d = &st.decision;
    log_debug("loop %" PRIu64 ": state %s, row %zu: %s", a->loops, ha_state_to_string(a->mem.state),
              d->row, d->reason);
    if (!a->have_last_row || a->last_row != d->row) {
        log_info("%s", d->reason);
        a->last_row = d->row;
        a->have_last_row = true;
    }
    /* A finished job's result is consumed by this decision. */
    bool job_ok;
    if (jobs_take(&a->jobs, &job_ok) == JOB_RESTART) {
        a->restart_result = job_ok ? 1 : -1; /* for the REST API's answer */
    }
    /* Act: each action in order, stopping at the first failure; what it
     * changes in the memory is the policy's to say (ha_memory_*). */
    size_t done = 0;
    int r = 0;
    /* a renewal this loop found failing is not tried again by it (each try
     * can take the client's deadline): the lease timer and the next loop do */
    bool renew = a->dcs_ok;
    for (; done < d->n_actions; done++) {
        HaAction act = d->actions[done];
        if (ha_action_may_make_primary(act)) {
            /* until a probe after it the server may be a primary, from the
             * moment the action starts: the fence is armed at the lease's
             * deadline before it runs, not after the tick (a promotion
             * that outlived the lease was not fenced) */
            local_role_may_change(&a->local);
            update_fence(a, clock_monotonic_usec());
        }
        if (done > 0 && renew && agent_renew_lease(a, 0) < 0) {
            renew = false; /* when an action before took it past its due time; once */
        }
        ha_memory_before(&a->mem, act);
        r = ha_exec_action(a, act);
        uint64_t t = clock_monotonic_usec();
        ha_memory_after(&a->mem, act, r, t, (unsigned)(rand() % 1000));
        if (act == HA_ACTION_REMOVE_CLONE && r == HA_CLONE_NEXT_METHOD) {
            log_warning("trying the next of create_replica_methods");
        } else if (act == HA_ACTION_REMOVE_CLONE) {
            log_warning("next clone attempt in %" PRIu64 " ms",
                        (a->mem.clone_retry_usec - t) / 1000);
        }
        if (r < 0) {
            break;
        }
    }
    if (renew) {
        (void)agent_renew_lease(a, 0);
    }
    write_history(a);
    if (done == d->n_actions) {
        set_state(a, d->next);
    } else if (r == -EINPROGRESS) {
        /* a promotion under way: look again right after the lease's
         * renewal, which the wait gave way to */
        agent_schedule_tick(a, clock_monotonic_usec() + AGENT_PROMOTE_POLL_USEC);
    } else {
        /* decide again soon rather than after a whole loop_wait */
        agent_schedule_tick(a, now + USEC_PER_SEC);
    }
    apply_cluster_parameters(a);
    update_fence(a, clock_monotonic_usec());
    arm_lease_timer(a);
    best_effort_begin(a);
    if (a->dcs_ok) {
        (void)agent_touch_member(a);
    }
    agent_publish_rest(a, clock_monotonic_usec());
    ApiEnv env = api_env(a);
    api_after_tick(a->api, &env, clock_monotonic_usec());
    api_env_done(a, &env);
    best_effort_end(a);
    if (a->loops == 1) {
        (void)sd_notify(false, "READY=1");
    }
}

/* ---- shutdown ---- */

/* Patroni's shutdown while paused: PostgreSQL is not stopped and the keys
 * are not deleted; they expire with their leases unless an agent started
 * again in time adopts them (a running primary takes its key back then).
 * A promotion asked for and pending is stopped, as unpaused. */
static bool keeps_postgres_paused(Agent *a)
{
    return a->cluster && dcs_cluster_is_paused(a->cluster) &&
           !(a->local.running && a->mem.promote_usec != 0);
}

static void stop_postgres_now(Agent *a)
{
    PgArgv argv = { 0 };
    if (pgctl_argv_stop(&a->local.ctl, "fast", AGENT_STOP_TIMEOUT_SEC, &argv) < 0) {
        return;
    }
    int r = jobs_run_sync(&a->jobs, argv.argv, AGENT_STOP_TIMEOUT_SEC + 5);
    if (r < 0) {
        log_error_errno(r, "stopping postgresql failed: %m");
    } else {
        log_info("postgresql stopped");
        agent_callbacks(a, CALLBACKS_EVENT_STOPPED);
    }
    pgctl_argv_done(&argv);
}

static void shutdown_agent(Agent *a)
{
    a->stopping = true;
    observe_postgres(a, clock_monotonic_usec());
    bool paused = keeps_postgres_paused(a);
    /* before_stop while the fence still guards a primary's lease: the
     * loop renews nothing meanwhile, and a script that outlasts the lease
     * must not leave a primary writable after another one was promoted */
    if (!paused && a->local.running) {
        agent_run_before_stop(a);
    }
    fence_disarm(a->fence); /* we stop PostgreSQL ourselves now, or it runs on paused */
    a->watchdog = watchdog_close(a->watchdog);
    jobs_kill(&a->jobs);
    bool was_leader = !paused && agent_view_leads(a);
    set_state(a, HA_STATE_STOPPING);
    if (paused) {
        log_struct_id(LOG_LEVEL_NOTICE, "8e2d4c6a0b1f4e3d9c7a5b3e1f0d2c4a",
                      "paused: leaving postgresql %s and the keys to their leases (maintenance "
                      "mode: nothing stops postgresql)",
                      a->local.running ? "running" : "stopped");
    } else {
        observe_postgres(a, clock_monotonic_usec());
        if (a->local.running) {
            stop_postgres_now(a);
        }
        if (was_leader) {
            (void)agent_release_leader(a);
        }
        /* revoking deletes our member key (and a leader key we still hold) */
        lease_revoke_all(&a->lease);
    }
    a->fence = fence_stop(a->fence);
    callbacks_drain(a->callbacks, CALLBACKS_SHUTDOWN_GRACE_USEC); /* on_stop among them */
    (void)sd_notify(false, "STOPPING=1");
}

/* ---- construction ---- */

int agent_new(const char *config_path, Config *config, Agent **ret)
{
    _cleanup_(agent_freep) Agent *a = calloc(1, sizeof(*a));
    if (!a) {
        config_free(config);
        return log_error_errno(-ENOMEM, "out of memory");
    }
    a->config = config;
    a->etcd_down = (LogCondition)LOG_CONDITION_INIT("etcd unreachable", LOG_LEVEL_WARNING);
    a->local.down = (LogCondition)LOG_CONDITION_INIT("postgresql not answering", LOG_LEVEL_WARNING);
    a->config_path = config_path ? strdup(config_path) : NULL;
    if (config_path && !a->config_path) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    int r = dcs_paths_init(&a->paths, config->namespace, config->scope);
    if (r < 0) {
        return log_error_errno(r, "bad scope \"%s\": %m", config->scope);
    }
    r = dcs_paths_member(&a->paths, config->name, &a->member_key);
    if (r < 0) {
        return log_error_errno(r, "bad member name \"%s\": %m", config->name);
    }
    r = pgctl_init(&a->local.ctl, config);
    if (r < 0) {
        return log_error_errno(r, "postgresql settings: %m");
    }
    r = etcd_client_from_config(config, AGENT_ETCD_DEADLINE_USEC, &a->etcd);
    if (r < 0) {
        return r;
    }
    a->store = (DcsStore){ .etcd = a->etcd, .paths = &a->paths };
    a->lease_etcd = (LeaseEtcd){ .etcd = a->etcd, .store = &a->store, .name = config->name };
    lease_init(&a->lease, &lease_etcd_ops, &a->lease_etcd);
    _cleanup_free_ char *heartbeat = NULL;
    if (asprintf(&heartbeat, "%s.dbha-fence", a->local.ctl.data_dir) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    /* the heartbeat lives beside the data directory */
    r = pgctl_make_parents(a->local.ctl.data_dir);
    if (r < 0) {
        return log_error_errno(r, "creating the directories above \"%s\": %m",
                               a->local.ctl.data_dir);
    }
    r = fence_start(heartbeat, a->local.ctl.data_dir, &a->fence);
    if (r < 0) {
        return log_error_errno(r, "fencing process (\"%s\"): %m", heartbeat);
    }
    /* Patroni's local connections carry the superuser's libpq settings */
    PgProbeConfig pc;
    logical_probe_config(&config->postgresql.superuser, a->local.ctl.local_host,
                         (unsigned)a->local.ctl.port, config->postgresql.database, &pc);
    r = pgprobe_new(&pc, &a->local.probe);
    if (r < 0) {
        return log_error_errno(r, "postgresql probe: %m");
    }

    /* SIGCHLD must be blocked before sd_event_add_child, and before the
     * watch thread starts so it inherits the mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0) {
        return log_error_errno(-errno, "blocking signals: %m");
    }
    r = sd_event_default(&a->event);
    if (r < 0) {
        return log_error_errno(r, "sd_event: %m");
    }
    a->local.event = a->event;
    a->local.on_exit = on_postmaster_exit;
    a->local.userdata = a;
    (void)sd_event_set_watchdog(a->event, true);
    if ((r = sd_event_add_signal(a->event, &a->sig_term, SIGTERM, on_term, a)) < 0 ||
        (r = sd_event_add_signal(a->event, &a->sig_int, SIGINT, on_term, a)) < 0 ||
        (r = sd_event_add_signal(a->event, &a->sig_hup, SIGHUP, on_hup, a)) < 0) {
        return log_error_errno(r, "signal handlers: %m");
    }
    jobs_init(&a->jobs, a->event, &a->ticker, on_job_end, a);
    if (jobs_set_pgpass(&a->jobs, a->local.ctl.pgpass) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    r = callbacks_new(a->event, &a->callbacks);
    if (r < 0) {
        return log_error_errno(r, "callbacks: %m");
    }
    r = ticker_init(&a->ticker, a->event, on_loop_timer, a);
    if (r < 0) {
        return log_error_errno(r, "loop timer: %m");
    }
    ticker_schedule(&a->ticker, clock_monotonic_usec());
    r = sd_event_add_time(a->event, &a->lease_timer, CLOCK_MONOTONIC, 0, 1000, on_lease_timer, a);
    if (r >= 0) {
        r = sd_event_source_set_enabled(a->lease_timer, SD_EVENT_OFF);
    }
    if (r < 0) {
        return log_error_errno(r, "lease timer: %m");
    }
    r = sd_event_add_time(a->event, &a->probe_timer, CLOCK_MONOTONIC,
                          clock_monotonic_usec() + AGENT_PROBE_INTERVAL_USEC, 1000, on_probe_timer,
                          a);
    if (r >= 0) {
        r = sd_event_source_set_enabled(a->probe_timer, SD_EVENT_ON);
    }
    if (r < 0) {
        return log_error_errno(r, "probe timer: %m");
    }
    r = cluster_watch_new(&a->paths, config->name, &a->watch);
    if (r < 0) {
        return log_error_errno(r, "cluster watch: %m");
    }
    r = sd_event_add_time(a->event, &a->topology_timer, CLOCK_MONOTONIC, UINT64_MAX, 1000,
                          on_topology_timer, a);
    if (r < 0) {
        return log_error_errno(r, "topology timer: %m");
    }
    (void)sd_event_source_set_enabled(a->topology_timer, SD_EVENT_OFF);
    r = sd_event_add_io(a->event, &a->wake_io, cluster_watch_fd(a->watch), EPOLLIN, on_wake, a);
    if (r < 0) {
        return log_error_errno(r, "wake source: %m");
    }

    r = api_new(&a->api);
    if (r < 0) {
        return r;
    }
    r = sd_event_add_io(a->event, &a->api_io, api_fd(a->api), EPOLLIN, on_api, a);
    if (r < 0) {
        return log_error_errno(r, "REST API queue: %m");
    }
    RestHandler handlers[REST_HANDLERS_MAX];
    /* Patroni's http_extra_headers, updated by https_extra_headers when the
     * API serves TLS (a name in both: the https value) */
    const ConfigMap *hx = &config->restapi.http_extra_headers;
    const ConfigMap *hsx = config->restapi.certfile ? &config->restapi.https_extra_headers : NULL;
    size_t n_headers = 0;
    _cleanup_free_ const char **headers =
        calloc(2 * (hx->n + (hsx ? hsx->n : 0)) + 1, sizeof(char *));
    if (!headers) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < hx->n; i++) {
        if (!hsx || !config_map_get(hsx, hx->items[i].key)) {
            headers[2 * n_headers] = hx->items[i].key;
            headers[2 * n_headers++ + 1] = hx->items[i].value;
        }
    }
    for (size_t i = 0; hsx && i < hsx->n; i++) {
        headers[2 * n_headers] = hsx->items[i].key;
        headers[2 * n_headers++ + 1] = hsx->items[i].value;
    }
    RestServerConfig rc = {
        .extra_headers = headers,
        .n_extra_headers = n_headers,
        .handlers = handlers,
        .n_handlers = api_handlers(a->api, handlers, ELEMENTSOF(handlers)),
        .listen = config->restapi.listen,
        .username = config->restapi.authentication.username,
        .password = config->restapi.authentication.password,
        .certfile = config->restapi.certfile,
        .keyfile = config->restapi.keyfile,
        .keyfile_password = config->restapi.keyfile_password,
        .cafile = config->restapi.cafile,
        .verify_client = rest_verify_client_from_string(config->restapi.verify_client),
        .allowlist = (const char *const *)config->restapi.allowlist.items,
        .n_allowlist = config->restapi.allowlist.n,
        .allowlist_include_members = config->restapi.allowlist_include_members,
        .max_age_usec = AGENT_PROBE_INTERVAL_USEC,
    };
    RestError re = { 0 };
    r = rest_server_new(&rc, &a->rest, &re);
    if (r < 0) {
        return log_error_errno(r, "REST API on %s: %s", strna(config->restapi.listen), re.message);
    }
    a->publisher = (Publisher){
        .store = &a->store,
        .etcd = a->etcd,
        .paths = &a->paths,
        .member_key = a->member_key,
        .rest = a->rest,
        .watch = a->watch,
    };
    r = sd_event_add_io(a->event, &a->refresh_io, rest_server_refresh_fd(a->rest), EPOLLIN,
                        on_rest_refresh, a);
    if (r < 0) {
        return log_error_errno(r, "REST refresh source: %m");
    }
    a->mem.state = HA_STATE_INIT;
    log_set_context(config->name, config->scope, NULL);
    check_watchdog_required(a);

    EtcdClient *wc = NULL;
    r = etcd_client_from_config(a->config, AGENT_ETCD_DEADLINE_USEC, &wc);
    if (r < 0) {
        return r;
    }
    r = cluster_watch_start(a->watch, wc);
    if (r < 0) {
        etcd_client_free(wc);
        return log_error_errno(r, "watch thread: %m");
    }
    *ret = TAKE_PTR(a);
    return 0;
}

Agent *agent_free(Agent *a)
{
    if (!a) {
        return NULL;
    }
    a->watch = cluster_watch_free(a->watch);
    forget_paused_leader(a);
    jobs_done(&a->jobs);
    /* a clean exit stopped it already; on a failed start nothing is armed */
    a->fence = fence_stop(a->fence);
    a->watchdog = watchdog_close(a->watchdog);
    a->refresh_io = sd_event_source_disable_unref(a->refresh_io); /* before its fd closes */
    a->rest = rest_server_free(a->rest); /* first: its threads queue into api */
    a->api_io = sd_event_source_disable_unref(a->api_io);
    a->api = api_free(a->api);
    sd_event_source_unref(a->sig_term);
    sd_event_source_unref(a->sig_int);
    sd_event_source_unref(a->sig_hup);
    ticker_done(&a->ticker);
    sd_event_source_unref(a->lease_timer);
    sd_event_source_unref(a->probe_timer);
    sd_event_source_unref(a->wake_io);
    sd_event_source_unref(a->topology_timer);
    local_unwatch(&a->local);
    a->callbacks = callbacks_free(a->callbacks); /* before the loop it uses */
    sd_event_unref(a->event);
    dcs_cluster_free(a->cluster);
    free(a->slots_done.plan);
    free(a->slots_done.problem);
    logical_state_done(&a->logical);
    publish_done(&a->publisher);
    free(a->history_pending);
    etcd_client_free(a->etcd);
    local_done(&a->local);
    dcs_paths_done(&a->paths);
    free(a->member_key);
    cascade_done(&a->cascade);
    sync_rep_done(&a->sync);
    free(a->config_path);
    config_free(a->config);
    free(a);
    return NULL;
}

int agent_run(Agent *a)
{
    log_info("starting: member \"%s\" of cluster \"%s\", data directory \"%s\"", a->config->name,
             a->config->scope, a->local.ctl.data_dir);
    int r = sd_event_loop(a->event);
    if (r < 0) {
        return log_error_errno(r, "event loop: %m") < 0 ? 1 : 1;
    }
    return a->exit_code;
}
