/* The agent: one context that owns the configuration, the sd-event loop and
 * every event source, the etcd client and lease, the PostgreSQL probe, the
 * running job (initdb, clone, start, stop), the HA state and the REST
 * server. Every callback gets the Agent as userdata. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "api.h"
#include "callbacks.h"
#include "cascade.h"
#include "clock.h"
#include "config.h"
#include "dcs-store.h"
#include "dcs.h"
#include "etcd.h"
#include "fence.h"
#include "ha.h"
#include "jobs.h"
#include "lease.h"
#include "local.h"
#include "log.h"
#include "logical.h"
#include "pgctl.h"
#include "pgprobe.h"
#include "policy.h"
#include "publish.h"
#include "rest.h"
#include "settings.h"
#include "standby.h"
#include "sync_exec.h"
#include "ticker.h"
#include "watch.h"
#include "watchdog.h"

/* The oldest REST snapshot a request is answered from (DESIGN.md: "at most
 * one second old"), and how often the probe timer refreshes it while it
 * runs: while REST clients asked within PUBLISH_WARM_USEC, while a
 * synchronous-mode primary must notice standbys coming and going, and while
 * a replicatefrom replica watches its upstream. Otherwise nothing runs
 * between ticks: a request finding the snapshot too old has one made
 * (rest_server_refresh_fd), and the postmaster's death wakes the loop
 * through its pidfd. */
#define AGENT_PROBE_INTERVAL_USEC (1000 * 1000ULL)
/* A watch event wakes the loop at most this often. */
#define AGENT_WAKE_MIN_USEC (5 * 1000ULL)
/* The leader publishes the topology for another member's routing change
 * (agent_publish_topology_watched) at most this often. */
#define AGENT_TOPOLOGY_WAKE_MIN_USEC (1000 * 1000ULL)
/* Job deadlines. */
#define AGENT_INITDB_TIMEOUT_SEC         120
#define AGENT_POST_BOOTSTRAP_TIMEOUT_SEC 86400 /* Patroni waits for ever */
#define AGENT_STOP_TIMEOUT_SEC           60
#define AGENT_BASEBACKUP_TIMEOUT_SEC     3600
#define AGENT_REWIND_TIMEOUT_SEC         600
/* Patroni waits for pre_promote for ever, the leader key held and nobody
 * writable meanwhile; killed at this deadline it counts as failed (the key
 * is released: another member may take it, through its own pre_promote). */
#define AGENT_PRE_PROMOTE_TIMEOUT_SEC 600
/* Patroni waits for before_stop for ever before it stops PostgreSQL; dbha
 * kills it after this long and stops PostgreSQL all the same (a fencing
 * never waits for it: FENCE is no stop). */
#define AGENT_BEFORE_STOP_TIMEOUT_SEC 600
/* pg_promote returns at once; then pg_is_in_recovery() is polled this often,
 * until the lease's next renewal is due but at least AGENT_PROMOTE_WAIT_MIN_USEC
 * and at most AGENT_PROMOTE_WAIT_MAX_USEC. A promotion not done by then is
 * waited for by the following ticks (agent/policy.h: HA_PROMOTE_STALL_USEC):
 * one step never holds the loop past a renewal. */
#define AGENT_PROMOTE_POLL_USEC     (10 * 1000ULL)
#define AGENT_PROMOTE_WAIT_MIN_USEC (100 * 1000ULL)
#define AGENT_PROMOTE_WAIT_MAX_USEC (2 * 1000 * 1000ULL)
/* While promotion is pending, the startup process is woken this often (a
 * multiple of AGENT_PROMOTE_POLL_USEC; see promote() in ha_exec.c). */
#define AGENT_PROMOTE_NUDGE_USEC (20 * 1000ULL)

/* The replication slot statements last run without an error. */
typedef struct SlotsDone {
    char *plan;       /* owned */
    pid_t postmaster; /* under which postmaster */
    unsigned slots;   /* how many physical slots there were right after it */
    uint64_t at_usec; /* and when */
    /* what the plan was last built from: the same again builds the same plan */
    bool leader;
    int64_t revision;   /* of the cluster view */
    uint64_t streamers; /* hash of who streams from us */
    char *problem;      /* owned: the permanent/ignored slots problem last logged */
} SlotsDone;

typedef struct Agent {
    char *config_path; /* owned; NULL: the document in PATRONI_CONFIGURATION */
    Config *config;    /* owned */
    sd_event *event;   /* owned */
    sd_event_source *sig_term, *sig_int, *sig_hup; /* owned */
    Ticker ticker;                                 /* when the next tick runs */
    sd_event_source *lease_timer;                  /* owned: the next keepalive */
    sd_event_source *probe_timer;                  /* owned */
    sd_event_source *wake_io;                      /* owned: the watch thread's eventfd */
    sd_event_source *topology_timer; /* owned: the leader's topology publish after another
                                        member's routing change, rate-limited */
    sd_event_source *refresh_io;     /* owned: the REST server's refresh_fd */

    EtcdClient *etcd; /* owned; main thread only */
    DcsPaths paths;
    DcsStore store;       /* the typed writes of the cluster's keys (etcd, paths borrowed) */
    char *member_key;     /* owned */
    Lease lease;          /* the leader lease and its deadline (agent/lease.h) */
    LeaseEtcd lease_etcd; /* its etcd side */
    DcsCluster *cluster;  /* owned; last view read */
    bool dcs_ok;
    uint64_t dcs_seen_usec;
    double dcs_seen_epoch;

    LocalPg local; /* the local PostgreSQL as observed, and its settings (agent/local.h) */

    HaMemory mem;    /* what the HA step remembers (agent/policy.h) */
    size_t last_row; /* to log a decision only when it changes */
    bool have_last_row;
    Jobs jobs;       /* the running job (agent/jobs.h) */
    Cascade cascade; /* whom we stream from (agent/cascade.h) */
    /* the remote primary of a standby cluster, as an upstream: name (which
     * changes with host and port, so FOLLOW re-points), host and port */
    DcsMember remote;
    char remote_name[320];
    char remote_host[256];
    int64_t params_revision;         /* the config key revision postgresql.conf was written from */
    int64_t params_refused_revision; /* the last config key revision logged as refused */
    int restart_result;              /* of the last restart job: 1 ok, -1 failed, 0 none since */
    int64_t restart_timeout_sec;     /* the operator's restart's "timeout": how long its start
                                        may take (0: pg_ctl_timeout); used once */
    char *history_pending; /* the history key a promotion left for the loop to write (owned;
                              kept until written while we lead) */
    /* Another member that led while the cluster was paused (owned; NULL:
     * none): its agent may have stopped and left its PostgreSQL a primary
     * with no fence (pause), so after a resume the election asks that
     * server itself (agent/agent.c: observe_peers). */
    char *paused_leader, *paused_leader_url;
    bool paused_leader_said; /* "still runs as a primary" logged */
    SlotsDone slots_done;    /* agent/ha_exec.c: sync_slots_as() */
    LogicalState logical;    /* agent/ha_exec.c: sync_logical() */
    /* create_replica_methods: the next one to try (an index into those
     * usable now, agent/ha_exec.c), and whether the clone job started last
     * runs a custom method, which writes into data_dir itself */
    size_t clone_method;
    bool clone_in_place;

    SyncRep sync; /* synchronous_mode, the leader's side (agent/sync_exec.h) */

    RestServer *rest;          /* owned */
    Publisher publisher;       /* member key, REST snapshot, topology (agent/publish.h) */
    ApiQueue *api;             /* owned: mutating REST requests for the loop */
    sd_event_source *api_io;   /* owned: a request arrived */
    Fence *fence;              /* owned: the fencing process's heartbeat */
    Callbacks *callbacks;      /* owned: postgresql.callbacks running (agent/callbacks.c) */
    Watchdog *watchdog;        /* owned: open (armed) only while leading */
    unsigned watchdog_timeout; /* the timeout it was armed with, seconds */
    bool watchdog_blocked;     /* watchdog.mode required and the device cannot be opened with
                                  a timeout it reads back, or keeps a longer one */
    bool watchdog_unsafe_said; /* "does not ensure a reset" logged (automatic mode) */
    unsigned fenced_seen;
    uint64_t loops;
    uint64_t leader_changes;  /* holder of the leader key changed (seen in observe) */
    uint64_t dcs_cache_reads; /* views built from the watch-fed cache */
    uint64_t dcs_etcd_reads;  /* views read from etcd (cache invalid or behind) */

    /* watch thread */
    ClusterWatch *watch;             /* owned: the watch thread and its cache (agent/watch.h) */
    uint64_t topology_wake_usec;     /* the last routing publish (0: none yet) */
    uint64_t topology_wake_due_usec; /* topology_timer's time while armed, else 0 */
    uint64_t topology_member_wakes;  /* routing publishes run */

    LogCondition etcd_down;
    bool stopping;
    int exit_code;
} Agent;

/* Effective cluster-wide settings: the `config` key when present, else the
 * file's bootstrap.dcs. */
static inline const ConfigDcs *agent_dcs(const Agent *a)
{
    return settings_dcs(a->config, a->cluster);
}

/* Loads nothing: takes ownership of config (and a copy of path). Sets up
 * the event loop, signals, the etcd client, the probe and the REST server.
 * Returns 0 and *ret, or a negative errno after logging why. */
int agent_new(const char *config_path, Config *config, Agent **ret);

/* The configuration's source, for messages. */
static inline const char *agent_config_name(const Agent *a)
{
    return a->config_path ? a->config_path : CONFIG_ENV_DOCUMENT;
}
Agent *agent_free(Agent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Agent *, agent_free);

/* Runs the loop until SIGTERM/SIGINT; returns the exit status. */
int agent_run(Agent *a);

/* One HA loop iteration: observe, decide, act, publish. */
void agent_tick(Agent *a);
/* Runs a tick at at_usec (monotonic) unless one is due earlier. */
static inline void agent_schedule_tick(Agent *a, uint64_t at_usec)
{
    ticker_schedule(&a->ticker, at_usec);
}
/* Re-reads the configuration file (SIGHUP, POST /reload). Returns 0, or
 * -EINVAL when the file has errors (logged; the running config stays). */
int agent_reload(Agent *a);

/* Performs one action (agent/ha_exec.c). Returns 0 or a negative errno
 * (logged); the caller stops at the first failure. */
int ha_exec_action(Agent *a, HaAction action);

/* Rewrites postgresql.conf (and the standby settings when replica) from the
 * config file and the cluster's `config` key (agent/ha_exec.c). */
int agent_write_conf(Agent *a, bool replica);
/* postgresql.before_stop, split, as a stop's first step (NULL: none, or it
 * cannot be split, which is logged). Owned: cmdsplit_free() it. */
char **agent_before_stop_argv(const Agent *a);
/* How long a before_stop the loop waits for may run: AGENT_BEFORE_STOP_
 * TIMEOUT_SEC, or while we hold the leader key no longer than our lease's
 * deadline (the fence stops a primary then anyway; past it the loop would
 * only be held up). */
int agent_before_stop_timeout(const Agent *a);
/* Runs before_stop (if set) and waits for it, that long; logs a failure. */
void agent_run_before_stop(Agent *a);
/* Runs one statement on the local server through the probe's connection. */
int agent_exec_sql(Agent *a, const char *sql, PGresult **ret);

/* The local PostgreSQL, as last probed, is a replica whose walreceiver
 * reports "streaming". */
static inline bool agent_streaming(const Agent *a)
{
    return local_streaming(&a->local);
}
/* The standby_cluster section in force (lib/standby.h): 1 and *ret in a
 * standby cluster, 0 when this is none, -EINVAL when its section cannot be
 * read (a standby cluster all the same: nobody takes writes). */
int agent_standby(const Agent *a, StandbyCluster *ret);
/* Whom this member should stream from now: in a standby cluster, the
 * remote primary (a->remote) while we hold the leader key or nobody does
 * (Patroni's _get_node_to_follow()); else the member agent/cascade.h
 * chooses. */
const DcsMember *agent_upstream(Agent *a);

#define AGENT_CLONE_METHODS_MAX 32
/* Patroni's create_replica(): the methods to try in order (basebackup, the
 * default, stands as NULL): create_replica_methods, or in a standby cluster
 * standby_cluster.create_replica_methods; without a member to copy from
 * (have_source false) only the custom methods with no_leader. Returns how
 * many (agent/ha_exec.c). */
size_t agent_clone_methods(const Agent *a, bool have_source,
                           const ConfigReplicaMethod *out[AGENT_CLONE_METHODS_MAX]);
/* One look at a replicatefrom upstream (agent/cascade.h). */
static inline uint64_t agent_observe_upstream(Agent *a, uint64_t now_usec)
{
    /* the remote primary (or archive) of a standby cluster is no member
     * to give up on: a standby leader that does not stream waits for it */
    bool replica = a->mem.state == HA_STATE_REPLICA && a->local.running && a->local.probe_ok &&
                   a->local.snap.in_recovery && agent_upstream(a) != &a->remote;
    return cascade_observe(&a->cascade, a->dcs_ok ? a->cluster : NULL,
                           a->config->tags.replicatefrom, replica, agent_streaming(a),
                           agent_dcs(a)->loop_wait, now_usec);
}

/* The last view's leader key names us. */
static inline bool agent_view_leads(const Agent *a)
{
    return a->cluster && a->cluster->leader &&
           strcmp(a->cluster->leader->name, a->config->name) == 0;
}

/* We lead a standby cluster (the key is ours on the last view) and
 * PostgreSQL is in recovery: the standby leader. */
static inline bool agent_standby_leader(const Agent *a)
{
    StandbyCluster sc;
    return a->mem.state == HA_STATE_REPLICA && a->dcs_ok && agent_view_leads(a) &&
           agent_standby(a, &sc) != 0;
}

/* postgresql.callbacks (agent/callbacks.h) for an event whose role is the
 * one last announced, else guessed from the state and the probe. Patroni
 * calls on_reload only when `pg_ctl reload` succeeded. */
static inline void agent_callbacks(Agent *a, CallbacksEvent ev)
{
    if (ev == CALLBACKS_EVENT_RELOADED && !a->local.running) {
        return;
    }
    CallbacksRole role =
        callbacks_role_guess(a->mem.state, a->local.probe_ok && !a->local.snap.in_recovery);
    if (role == CALLBACKS_ROLE_REPLICA && agent_standby_leader(a)) {
        role = CALLBACKS_ROLE_STANDBY_LEADER;
    }
    callbacks_event(a->callbacks, a->config, ev, role);
}

/* Deletes the leader key if it still names us (agent/ha_exec.c). */
int agent_release_leader(Agent *a);

/* What the synchronous_mode part reads (agent/sync_exec.h). */
static inline SyncEnv agent_sync_env(Agent *a)
{
    return (SyncEnv){
        .me = a->config->name,
        .dcs = agent_dcs(a),
        .view = a->cluster,
        .store = &a->store,
        .snap = a->local.probe_ok ? &a->local.snap : NULL,
    };
}

/* What is published, as the publishing part sees it (agent/publish.h). */
static inline PublishView agent_publish_view(const Agent *a)
{
    return (PublishView){
        .config = a->config,
        .dcs = agent_dcs(a),
        .cluster = a->cluster,
        .dcs_ok = a->dcs_ok,
        .dcs_seen_usec = a->dcs_seen_usec,
        .dcs_seen_epoch = a->dcs_seen_epoch,
        .state = a->mem.state,
        .pg_running = a->local.running,
        .probe_ok = a->local.probe_ok,
        .snap = &a->local.snap,
        .failover_blocked = a->mem.failover_blocked,
        .watchdog_failed = a->watchdog_blocked,
        .pre_promote_backoff =
            ha_memory_pre_promote_backoff(&a->mem, clock_monotonic_usec(), agent_dcs(a)->ttl),
        .lease = &a->lease,
        .following = cascade_following(&a->cascade),
        .scheduled_restart = api_scheduled_restart(a->api),
        .next_tick_usec = ticker_next_usec(&a->ticker),
        .loops = a->loops,
        .leader_changes = a->leader_changes,
        .dcs_cache_reads = a->dcs_cache_reads,
        .dcs_etcd_reads = a->dcs_etcd_reads,
        .topology_member_wakes = a->topology_member_wakes,
        .routing_neutral = a->watch ? cluster_watch_neutral(a->watch) : 0,
        .fencings = a->fenced_seen,
    };
}
static inline int agent_touch_member(Agent *a)
{
    PublishView v = agent_publish_view(a);
    return publish_member(&a->publisher, &v);
}
static inline void agent_publish_rest(Agent *a, uint64_t now_usec)
{
    PublishView v = agent_publish_view(a);
    publish_rest(&a->publisher, &v, now_usec);
}
static inline void agent_publish_rest_now(Agent *a, uint64_t now_usec)
{
    PublishView v = agent_publish_view(a);
    publish_rest_now(&a->publisher, &v, now_usec);
}
static inline int agent_publish_topology(Agent *a)
{
    PublishView v = agent_publish_view(a);
    return publish_topology(&a->publisher, &v);
}
static inline int agent_publish_topology_watched(Agent *a)
{
    PublishView v = agent_publish_view(a);
    return publish_topology_watched(&a->publisher, &v);
}
static inline void agent_mirror_leader_v2(Agent *a, bool leading)
{
    PublishView v = agent_publish_view(a);
    publish_mirror_leader_v2(&a->publisher, &v, leading);
}
