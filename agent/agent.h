/* The agent: one context that owns the configuration, the sd-event loop and
 * every event source, the etcd client and lease, the PostgreSQL probe, the
 * running job (initdb, clone, start, stop), the HA state and the REST
 * server. Every callback gets the Agent as userdata. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "api.h"
#include "callbacks.h"
#include "config.h"
#include "dcs-store.h"
#include "dcs.h"
#include "etcd.h"
#include "fence.h"
#include "ha.h"
#include "kvcache.h"
#include "lease.h"
#include "log.h"
#include "pgctl.h"
#include "pgprobe.h"
#include "rest.h"
#include "watchdog.h"

/* The oldest REST snapshot a request is answered from (DESIGN.md: "at most
 * one second old"), and how often the probe timer refreshes it while it
 * runs: while REST clients asked within AGENT_PROBE_WARM_USEC, while a
 * synchronous-mode primary must notice standbys coming and going, and while
 * a replicatefrom replica watches its upstream. Otherwise nothing runs
 * between ticks: a request finding the snapshot too old has one made
 * (rest_server_refresh_fd), and the postmaster's death wakes the loop
 * through its pidfd. */
#define AGENT_PROBE_INTERVAL_USEC (1000 * 1000ULL)
#define AGENT_PROBE_WARM_USEC     (10 * 1000 * 1000ULL)
/* The deadline of one probe of the local PostgreSQL. */
#define AGENT_PROBE_DEADLINE_USEC (1000 * 1000ULL)
/* A watch event wakes the loop at most this often. */
#define AGENT_WAKE_MIN_USEC (5 * 1000ULL)
/* How long a tick waits for the watch-fed cache to reach the revision the
 * tick's own etcd answers showed, before it reads etcd instead. */
#define AGENT_CACHE_WAIT_USEC (100 * 1000ULL)
/* Backoff between failed clones: doubled per failure up to the max. */
#define AGENT_CLONE_BACKOFF_MIN_USEC (2 * 1000 * 1000ULL)
#define AGENT_CLONE_BACKOFF_MAX_USEC (60 * 1000 * 1000ULL)
/* Longest "not a candidate: ..." reason kept for the member key. */
#define AGENT_REASON_MAX 256
/* A replicatefrom member we could not stream from is tried again after
 * this backoff (doubled per failure in a row up to the max), and only once
 * its agent has rewritten its member key. */
#define AGENT_UPSTREAM_RETRY_MIN_USEC (2 * 1000 * 1000ULL)
#define AGENT_UPSTREAM_RETRY_MAX_USEC (60 * 1000 * 1000ULL)
/* Job deadlines. */
#define AGENT_INITDB_TIMEOUT_SEC     120
#define AGENT_START_TIMEOUT_SEC      60
#define AGENT_STOP_TIMEOUT_SEC       60
#define AGENT_BASEBACKUP_TIMEOUT_SEC 3600
#define AGENT_REWIND_TIMEOUT_SEC     600
/* pg_promote returns at once; then pg_is_in_recovery() is polled this often,
 * for at most AGENT_PROMOTE_TIMEOUT_USEC. */
#define AGENT_PROMOTE_POLL_USEC    (10 * 1000ULL)
#define AGENT_PROMOTE_TIMEOUT_USEC (15 * 1000 * 1000ULL)
/* While promotion is pending, the startup process is woken this often (a
 * multiple of AGENT_PROMOTE_POLL_USEC; see promote() in ha_exec.c). */
#define AGENT_PROMOTE_NUDGE_USEC (20 * 1000ULL)

typedef enum AgentJobKind {
    AGENT_JOB_NONE,
    AGENT_JOB_INITDB,
    AGENT_JOB_START,
    AGENT_JOB_STOP,
    AGENT_JOB_BASEBACKUP,
    AGENT_JOB_REWIND,
    AGENT_JOB_RESTART,
    _AGENT_JOB_KIND_MAX,
    _AGENT_JOB_KIND_INVALID = -EINVAL,
} AgentJobKind;

const char *agent_job_kind_to_string(AgentJobKind k);

typedef struct AgentJob {
    AgentJobKind kind;
    pid_t pid;
    sd_event_source *child;   /* owned */
    sd_event_source *timeout; /* owned */
    bool finished;
    bool ok;
    bool killed; /* by its deadline */
} AgentJob;

typedef struct Agent {
    char *config_path;                             /* owned */
    Config *config;                                /* owned */
    sd_event *event;                               /* owned */
    sd_event_source *sig_term, *sig_int, *sig_hup; /* owned */
    sd_event_source *loop_timer;                   /* owned */
    sd_event_source *lease_timer;                  /* owned: the next keepalive */
    sd_event_source *probe_timer;                  /* owned */
    sd_event_source *wake_io;                      /* owned: the watch thread's eventfd */
    sd_event_source *refresh_io;                   /* owned: the REST server's refresh_fd */
    sd_event_source *postmaster_io;                /* owned: pidfd of postmaster_pid, or NULL */
    pid_t postmaster_watched;                      /* whose pidfd postmaster_io polls */
    uint64_t rest_published_usec;                  /* the last REST snapshot's time */

    EtcdClient *etcd; /* owned; main thread only */
    DcsPaths paths;
    DcsStore store;       /* the typed writes of the cluster's keys (etcd, paths borrowed) */
    char *member_key;     /* owned */
    Lease lease;          /* the leader lease and its deadline (agent/lease.h) */
    LeaseEtcd lease_etcd; /* its etcd side */
    DcsCluster *cluster;  /* owned; last view read */
    bool dcs_ok;
    int v2_mirror_result; /* last etcd3.mirror_leader_v2 outcome: 1 written, 2 removed,
                             -errno failed, 0 none yet */
    uint64_t dcs_seen_usec;
    double dcs_seen_epoch;

    PgCtl pg;
    PgProbe *probe; /* owned */
    PgSnapshot snap;
    bool probe_ok;
    bool pg_running;
    pid_t postmaster_pid;
    uint64_t sysid;             /* from pg_control, 0 when unknown */
    uint64_t primary_down_usec; /* when our primary was found down (0: it is not) */
    bool healthiest;            /* last election verdict (only while there is no leader) */
    /* Why we are not a candidate for promotion (our own lag), "" when we are;
     * published as failover_blocked while there is no leader. */
    char failover_blocked[AGENT_REASON_MAX];
    bool lag_blocked_paused;  /* the verdict last logged: blocked with replay paused */
    const char *election_why; /* static: the last "not promoting" reason logged, or NULL */

    HaState state;
    size_t last_row; /* to log a decision only when it changes */
    bool have_last_row;
    AgentJob job;
    uint64_t clone_retry_usec;
    unsigned clone_failures;
    char *following;                 /* owned: the member we point primary_conninfo at (the leader,
                                        or the member our replicatefrom tag names) */
    char *upstream_note;             /* owned: the last upstream choice logged (agent/cascade.c) */
    char *upstream_avoid;            /* owned: a replicatefrom member we could not stream from */
    int64_t upstream_avoid_revision; /* its member key's mod_revision when we gave up on it */
    uint64_t upstream_retry_usec;    /* and not before this */
    unsigned upstream_failures;      /* give-ups in a row, for the backoff */
    uint64_t upstream_down_usec;     /* first tick that saw no streaming from a replicatefrom
                                        upstream (0: streaming, or not cascading) */
    int64_t params_revision;         /* the config key revision postgresql.conf was written from */
    HaRequest request;               /* what an operator asked for (POST /restart, /reinitialize) */
    bool diverged; /* seen past the leader's fork point; kept until rewound or moved aside */
    uint32_t streamed_tli; /* the timeline we last streamed on as a replica; 0: unknown
                              (we led, or the data was rewound or replaced since) */
    int restart_result;    /* of the last restart job: 1 ok, -1 failed, 0 none since */

    /* synchronous_mode, the leader's side (agent/syncrep.c) */
    char *sync_names;          /* owned: synchronous_standby_names we wrote; NULL: not managed */
    uint64_t sync_release_lsn; /* shrinking the `sync` key: our flush position once the
                                  members leaving it were released (0: not yet) */
    bool sync_async_logged;    /* "no synchronous standby" was said for this episode */
    bool sync_blocked_logged;  /* "not a candidate: ... synchronous standby" was said */
    /* the sync key's mod_revision after our last write of it (0: deleted),
     * and the revision of the view it was written under: a second write
     * under the same view compares with it */
    int64_t sync_key_revision;
    int64_t sync_key_written_in;

    RestServer *rest;          /* owned */
    ApiQueue *api;             /* owned: mutating REST requests for the loop */
    Fence *fence;              /* owned: the fencing process's heartbeat */
    Callbacks *callbacks;      /* owned: postgresql.callbacks running (agent/callbacks.c) */
    Watchdog *watchdog;        /* owned: open (armed) only while leading */
    unsigned watchdog_timeout; /* the timeout it was armed with, seconds */
    bool watchdog_blocked;     /* watchdog.mode required and the device cannot be opened */
    unsigned fenced_seen;
    uint64_t next_tick_usec;
    uint64_t loops;
    uint64_t leader_changes;  /* holder of the leader key changed (seen in observe) */
    uint64_t dcs_cache_reads; /* views built from the watch-fed cache */
    uint64_t dcs_etcd_reads;  /* views read from etcd (cache invalid or behind) */
    bool dcs_cache_behind;    /* the last tick found the cache behind: do not wait for it */

    /* watch thread */
    pthread_t watch_thread;
    bool watch_started;
    atomic_bool watch_stop;
    int wake_fd;    /* eventfd: the watch thread writes, the loop reads */
    KvCache *cache; /* owned: the cluster prefix; the watch thread writes, the loop reads
                       (lib/kvcache.h) */
    pthread_mutex_t watch_lock;
    EtcdWatch *watch; /* borrowed from the watch thread, under watch_lock: agent_free wakes it */

    LogCondition etcd_down;
    LogCondition pg_down;
    bool stopping;
    int exit_code;
} Agent;

/* Loads nothing: takes ownership of config (and a copy of path). Sets up
 * the event loop, signals, the etcd client, the probe and the REST server.
 * Returns 0 and *ret, or a negative errno after logging why. */
int agent_new(const char *config_path, Config *config, Agent **ret);
Agent *agent_free(Agent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Agent *, agent_free);

/* Runs the loop until SIGTERM/SIGINT; returns the exit status. */
int agent_run(Agent *a);

/* One HA loop iteration: observe, decide, act, publish. */
void agent_tick(Agent *a);
/* Runs a tick at at_usec (monotonic) unless one is due earlier. */
void agent_schedule_tick(Agent *a, uint64_t at_usec);
/* Re-reads the configuration file (SIGHUP, POST /reload). Returns 0, or
 * -EINVAL when the file has errors (logged; the running config stays). */
int agent_reload(Agent *a);

/* Job control (agent/jobs.c). agent_job_start forks argv (environment:
 * ours plus PGPASSFILE) with a deadline; the loop is woken when it ends. */
int agent_job_start(Agent *a, AgentJobKind kind, char *const *argv, int timeout_sec);
void agent_job_kill(Agent *a);
/* Runs argv to completion synchronously, by the deadline (shutdown path). */
int agent_run_sync(Agent *a, char *const *argv, int timeout_sec);

/* Performs one action (agent/ha_exec.c). Returns 0 or a negative errno
 * (logged); the caller stops at the first failure. */
int ha_exec_action(Agent *a, HaAction action);

/* Rewrites postgresql.conf (and the standby settings when replica) from the
 * config file and the cluster's `config` key (agent/ha_exec.c). */
int agent_write_conf(Agent *a, bool replica);
/* Runs one statement on the local server through the probe's connection. */
int agent_exec_sql(Agent *a, const char *sql, PGresult **ret);

/* synchronous_mode (agent/syncrep.c). agent_sync_replication: the leader's
 * loop step (choose standbys, `sync` key, synchronous_standby_names, in the
 * safe order). agent_sync_before_promote: the `sync` key names only us and
 * synchronous_standby_names is "*" (strict) or "" before pg_promote; fails
 * when the key no longer names us as a synchronous standby.
 * agent_sync_before_start: the value to start a primary with. */
int agent_sync_replication(Agent *a);
int agent_sync_before_promote(Agent *a);
void agent_sync_before_start(Agent *a);
/* The leader's probe sees a synchronous standby to add or (not strict) to
 * give up on: the loop should run now rather than at loop_wait. */
bool agent_sync_needs_tick(const Agent *a);
/* Cascading replication (agent/cascade.c). agent_upstream: whom this
 * replica should stream from now (upstream_choose() on the current view,
 * our replicatefrom tag and the member we gave up on); logs the choice when
 * it changes. Borrowed from a->cluster; NULL when there is none. */
const DcsMember *agent_upstream(Agent *a);
/* Observes whether a replica that streams from its replicatefrom member
 * still gets WAL from it: when two looks (ticks or one-second probes) at
 * least half a loop_wait apart see its walreceiver not streaming, it gives
 * up on that member (agent_upstream() then answers the leader) until the
 * member's agent has rewritten its key and the backoff has passed. Logs a
 * give-up. Returns when a tick should look (again) or act on it: now after
 * a give-up, the second look's time after a first failed one; 0: no need. */
uint64_t agent_observe_upstream(Agent *a, uint64_t now_usec);

/* postgresql.callbacks (agent/callbacks.c): what the agent did to its
 * PostgreSQL, mapped to Patroni's callbacks and run without waiting.
 * agent_callbacks: an event whose role is the one last announced (else
 * guessed from the state and the probe); agent_callbacks_job: a stop or
 * restart job ended; agent_callbacks_state: the HA state changed (a start
 * ended, or a running server was found). Log what they run; never fail. */
void agent_callbacks(Agent *a, CallbacksEvent ev);
void agent_callbacks_job(Agent *a, AgentJobKind kind, bool ok);
void agent_callbacks_state(Agent *a, HaState from, HaState to);

/* Deletes the leader key if it still names us (agent/ha_exec.c). */
int agent_release_leader(Agent *a);

/* The local PostgreSQL is a replica whose walreceiver reports "streaming"
 * (agent/publish.c; PostgreSQL shows that also while a walreceiver it will
 * reject starts up). */
bool agent_streaming(const Agent *a);

/* Publishes member key and REST snapshot (agent/publish.c). */
int agent_touch_member(Agent *a);
/* Leader: writes the topology key when a router would route differently
 * (agent/topopub.c). Returns 0 (also when nothing was written) or -errno. */
int agent_publish_topology(Agent *a);
/* etcd3.mirror_leader_v2: while leading, the leader key's name in etcd's v2
 * store (refreshed with the ttl); on release, deleted while it names us.
 * Logged once per change of outcome. No-op when the option is off. */
void agent_mirror_leader_v2(Agent *a, bool leading);
void agent_publish_rest(Agent *a, uint64_t now_usec);

/* Effective cluster-wide settings: the `config` key when present, else the
 * file's bootstrap.dcs. */
const ConfigDcs *agent_dcs(const Agent *a);
