/* The cluster model Patroni 3.0.2 keeps in etcd v3 under /<namespace>/<scope>/:
 * key paths, a parsed read-only view built from one prefix range, encoders
 * that produce exactly the values Patroni writes, and Patroni's GET /cluster
 * body. Pure except dcs_cluster_read(), which does one etcd range.
 *
 * Key                  Value (as Patroni 3.0.2 writes it, compact JSON)
 * leader               member name, plain text; attached to the leader's lease
 * members/<name>       {"conn_url","api_url","state","role","version",
 *                       ["proxy_url"],["tags"],["pending_restart"],
 *                       "xlog_location","timeline",["pause"]}; leased.
 *                       role is "master" for a primary in 3.0.x ("primary"
 *                       from 4.0), else "replica", "standby_leader", ...
 *                       dbha adds beside them: a replica "receive_lsn",
 *                       "replay_lsn", ["replay_paused"], ["lag_seconds"];
 *                       the leader "replication": [{"name","state",
 *                       "sync_state","write_lsn","flush_lsn","replay_lsn",
 *                       "write_lag","flush_lag","replay_lag"}] (LSNs and
 *                       seconds, null when PostgreSQL shows NULL); any
 *                       member ["failover_blocked"] (why it will not be
 *                       promoted, while there is no leader)
 * config               dynamic configuration object (bootstrap.dcs as given)
 * initialize           system identifier, decimal text ("" while bootstrapping)
 * history              [[timeline, lsn, reason, timestamp, new_leader], ...]
 * failover             {"leader","member","scheduled_at"} (each optional)
 * sync                 {"leader","sync_standby"}; sync_standby is a
 *                       comma-separated list or null
 * status               {"optime": N[, "slots": {name: N}]} (2.1.0+)
 * optime/leader        leader optime as decimal text; only read (written by
 *                       Patroni only when a member older than 2.1.0 exists)
 * failsafe             {member name: api_url} (3.0.0+, failsafe_mode)
 *
 * Logging: debug only. Malformed values never fail a parse; each problem is
 * counted in DcsCluster.n_problems and noted at debug level. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "etcd.h"
#include "macro.h"

#define DCS_DEFAULT_NAMESPACE "/service/"
#define DCS_DEFAULT_PG_PORT   5432

#define DCS_KEY_LEADER        "leader"
#define DCS_KEY_MEMBERS       "members/"
#define DCS_KEY_CONFIG        "config"
#define DCS_KEY_INITIALIZE    "initialize"
#define DCS_KEY_HISTORY       "history"
#define DCS_KEY_FAILOVER      "failover"
#define DCS_KEY_SYNC          "sync"
#define DCS_KEY_STATUS        "status"
#define DCS_KEY_LEADER_OPTIME "optime/leader"
#define DCS_KEY_FAILSAFE      "failsafe"
#define DCS_KEY_TOPOLOGY      "topology" /* dbha's own: the routers' document */

/* ---- key paths ---- */

/* Absolute keys of one cluster. Built by dcs_paths_init, freed by dcs_paths_done. */
typedef struct DcsPaths {
    char *prefix;        /* owned, "/service/batman/" */
    char *leader;        /* owned, prefix + "leader" */
    char *members;       /* owned, prefix + "members/" */
    char *config;        /* owned */
    char *initialize;    /* owned */
    char *history;       /* owned */
    char *failover;      /* owned */
    char *sync;          /* owned */
    char *status;        /* owned */
    char *leader_optime; /* owned, prefix + "optime/leader" */
    char *failsafe;      /* owned */
    char *topology;      /* owned */
} DcsPaths;

/* Normalises the namespace like Patroni ("service", "/service", "/service/"
 * all give "/service/"; NULL or "" gives DCS_DEFAULT_NAMESPACE; "/" gives
 * "/") and builds every key. scope must be non-empty and hold no '/'.
 * Returns 0, -EINVAL or -ENOMEM (p is then left zeroed). */
int dcs_paths_init(DcsPaths *p, const char *namespace, const char *scope);
void dcs_paths_done(DcsPaths *p);
/* prefix + "members/" + name into *ret_key (owned by the caller). -EINVAL for
 * an empty name or one holding '/', -ENOMEM. */
int dcs_paths_member(const DcsPaths *p, const char *name, char **ret_key);

/* ---- roles ---- */

typedef enum DcsRole {
    DCS_ROLE_PRIMARY, /* written "master" (Patroni 3.0.2); "primary" is read too */
    DCS_ROLE_REPLICA,
    DCS_ROLE_STANDBY_LEADER,
    DCS_ROLE_DEMOTED,
    DCS_ROLE_UNINITIALIZED,
    _DCS_ROLE_MAX,
    _DCS_ROLE_INVALID = -EINVAL,
} DcsRole;

/* Patroni 3.0.2's wire name: "master", "replica", "standby_leader", "demoted",
 * "uninitialized"; NULL if out of range. */
const char *dcs_role_to_string(DcsRole r);
/* Also accepts "primary" (Patroni 4.x) and "promoted" for a primary. */
DcsRole dcs_role_from_string(const char *s);

/* ---- the parsed view ---- */

/* One standby as the leader's pg_stat_replication shows it (the leader's
 * member key "replication"). Strings borrowed (from the member's data when
 * parsed). */
typedef struct DcsReplicationRow {
    const char *name;       /* application_name, the member name */
    const char *state;      /* "streaming", "catchup", ...; NULL when absent */
    const char *sync_state; /* "async", "sync", "potential", "quorum"; NULL when absent */
    bool has_write_lsn, has_flush_lsn, has_replay_lsn;
    uint64_t write_lsn, flush_lsn, replay_lsn;
    bool has_write_lag, has_flush_lag, has_replay_lag;
    double write_lag, flush_lag, replay_lag; /* seconds */
} DcsReplicationRow;

typedef struct DcsMember {
    char *name;   /* owned, from the key */
    json_t *data; /* owned, the value as a JSON object ({} when it was not one) */
    bool valid;   /* the value was a JSON object (or a legacy "postgres://" URL) */

    /* Fields of data; every string is borrowed from data (NULL when absent or
     * not a string). */
    const char *conn_url;
    const char *api_url;
    const char *state;             /* "running", "starting", "creating replica", ... */
    const char *role_text;         /* as written */
    const char *version;           /* Patroni (or dbha) version */
    const char *replication_state; /* "streaming", "in archive recovery" (Patroni 3.0.4+) */
    const char *proxy_url;
    DcsRole role; /* _DCS_ROLE_INVALID when absent or unknown */
    bool has_xlog_location;
    uint64_t xlog_location;
    int64_t timeline; /* 0 when absent */
    json_t *tags;     /* borrowed from data; NULL when absent or not an object */
    bool pending_restart;
    bool pause;

    /* dbha's own fields (absent in members Patroni wrote) */
    bool has_receive_lsn, has_replay_lsn; /* replica */
    uint64_t receive_lsn, replay_lsn;
    bool replay_paused;
    bool has_lag_seconds;
    double lag_seconds;             /* the replica's own view */
    DcsReplicationRow *replication; /* owned array (strings borrowed from data); leader */
    size_t n_replication;
    const char *failover_blocked; /* borrowed from data, NULL when absent */
    const char *upstream;         /* borrowed: the member a replica streams from, NULL when
                                     absent (not streaming, or written by Patroni) */

    char *host; /* owned; host of conn_url, NULL when conn_url has none */
    int port;   /* port of conn_url (5432 when not given), 0 without a host */

    int64_t lease;
    int64_t create_revision, mod_revision;
} DcsMember;

typedef struct DcsLeader {
    char *name; /* owned */
    int64_t lease;
    int64_t create_revision, mod_revision;
} DcsLeader;

/* The `config` key. The ConfigDcs fields hold the value's settings with
 * Patroni's defaults where absent (master_*_timeout are read as primary_*);
 * parameters keep the order of the JSON object, values as text. */
typedef struct DcsConfig {
    json_t *data; /* owned, the object ({} when the value was not one) */
    ConfigDcs dcs;
    bool pause;
    bool standby_cluster; /* standby_cluster has host, port or restore_command */
    /* owned: the first postgresql.parameters name PostgreSQL would not read
     * (pgconf_name_valid()); then dcs.parameters is left empty, so none of
     * the key's parameters reaches postgresql.conf. NULL when all are good */
    char *bad_parameter;
    int64_t mod_revision;
} DcsConfig;

typedef struct DcsHistoryEntry {
    int64_t timeline;
    uint64_t lsn;
    char *reason;     /* owned, NULL when absent */
    char *timestamp;  /* owned, ISO 8601 as written, NULL when absent */
    char *new_leader; /* owned, NULL when absent */
} DcsHistoryEntry;

typedef struct DcsHistory {
    json_t *data;             /* owned, the list as stored (malformed lines kept) */
    DcsHistoryEntry *entries; /* owned, the well-formed lines in order */
    size_t n_entries;
    int64_t mod_revision;
} DcsHistory;

typedef struct DcsFailover {
    char *leader;       /* owned, may be NULL */
    char *candidate;    /* owned, "member" in the value, may be NULL */
    char *scheduled_at; /* owned, ISO 8601 as written, may be NULL */
    int64_t mod_revision;
} DcsFailover;

typedef struct DcsSync {
    char *leader;       /* owned, may be NULL */
    char *sync_standby; /* owned, the comma-separated text as stored, may be NULL */
    char **members;     /* owned, sync_standby split on ',' and trimmed */
    size_t n_members;
    int64_t mod_revision;
} DcsSync;

typedef struct DcsStatus {
    bool has_optime;
    uint64_t optime;    /* status.optime, or optime/leader when there is no status key */
    bool legacy_optime; /* the value came from optime/leader */
    json_t *slots;      /* owned, status.slots object or NULL */
    int64_t mod_revision;
} DcsStatus;

typedef struct DcsCluster {
    int64_t revision; /* etcd revision of the read */

    char *initialize;   /* owned; NULL when the key is absent, "" while bootstrapping */
    DcsConfig *config;  /* owned, NULL when absent */
    DcsLeader *leader;  /* owned, NULL when no leader key */
    DcsMember *members; /* owned, sorted by name */
    size_t n_members;
    DcsHistory *history;   /* owned, NULL when absent */
    DcsFailover *failover; /* owned, NULL when absent or its value is empty */
    DcsSync *sync;         /* owned, NULL when absent */
    DcsStatus status;      /* has_optime false when neither status nor optime/leader */
    json_t *failsafe;      /* owned, object or NULL */
    json_t *topology;      /* owned, the topology key's object or NULL (lib/topology.h) */
    int64_t topology_mod_revision;

    unsigned n_problems; /* malformed values seen (each noted at debug level) */
} DcsCluster;

/* Builds a view from the kvs of a range on paths->prefix (keys outside the
 * prefix and keys we do not know are ignored). Never fails on a malformed
 * value. Returns 0 and *ret (free with dcs_cluster_free), -EINVAL, -ENOMEM. */
int dcs_cluster_from_result(const DcsPaths *paths, const EtcdResult *r, DcsCluster **ret);

/* One linearizable range on paths->prefix, then dcs_cluster_from_result.
 * Returns 0, or the etcd error (described in reterr), or -ENOMEM. */
int dcs_cluster_read(EtcdClient *c, const DcsPaths *paths, DcsCluster **ret, EtcdError *reterr);

DcsCluster *dcs_cluster_free(DcsCluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(DcsCluster *, dcs_cluster_free);

/* Lookups return borrowed pointers or NULL. */
const DcsMember *dcs_cluster_get_member(const DcsCluster *c, const char *name);
/* The member named by the leader key, NULL without a leader or member key. */
const DcsMember *dcs_cluster_leader_member(const DcsCluster *c);
/* pause in the config key. */
bool dcs_cluster_is_paused(const DcsCluster *c);
/* config.standby_cluster describes a standby cluster. */
bool dcs_cluster_is_standby(const DcsCluster *c);
/* name is listed in the sync key (case-insensitively, as Patroni). */
bool dcs_cluster_is_sync_standby(const DcsCluster *c, const char *name);
/* m's state as dbctl status shows it, from its Patroni state (and
 * replication_state, 3.0.4+): running + replication_state "streaming" (not
 * the leader) -> streaming; running -> running; starting, restarting and the
 * bootstrap states -> starting; stopping; creating replica; rewinding and
 * running pg_rewind -> rewinding; crashed and every "... failed" -> crashed;
 * anything else, or none -> stopped. A static string. */
const char *dcs_member_state_text(const DcsCluster *c, const DcsMember *m);

/* Why synchronous_mode forbids member `name` to become the leader: NULL when
 * it may. With synchronous_mode on and a `sync` key that has a leader, only
 * that leader and the members its sync_standby lists may (Patroni's
 * SyncState.matches): they are the ones that can hold every acknowledged
 * transaction. Without the key (synchronous_mode just turned on) nothing
 * is known, and anyone may. Pure. */
const char *dcs_sync_problem(const DcsCluster *c, bool synchronous_mode, const char *name);

/* The position replicas are measured against: status optime, else the
 * leader member's xlog_location. Returns 0 and *ret_lsn, or -ENODATA. */
int dcs_cluster_reference_lsn(const DcsCluster *c, uint64_t *ret_lsn);
/* How far member m is behind the leader. */
typedef struct DcsLag {
    uint64_t bytes; /* the leader's position - m's replay position (0 when ahead) */
    bool has_write_bytes, has_flush_bytes;
    uint64_t write_bytes, flush_bytes; /* the same for the written / flushed position */
    bool has_seconds;
    double seconds; /* replay lag */
    bool has_write_seconds, has_flush_seconds;
    double write_seconds, flush_seconds;
    bool replay_paused; /* m says its replay is paused */
} DcsLag;

/* The one lag computation every reader uses (REST, metrics, dbctl). The
 * leader's lag is 0. Bytes: from the leader's "replication" row for m when
 * there is one (a consistent snapshot: the leader's xlog_location minus the
 * row's replay, write and flush positions); else the reference position
 * (dcs_cluster_reference_lsn) minus m's replay_lsn; else, for members
 * Patroni wrote, minus m's xlog_location (the larger of received and
 * replayed). Seconds: the row's replay_lag; NULL there with the row's replay
 * position at the leader's means 0; else m's own lag_seconds, which also
 * wins when m is behind and it is larger (PostgreSQL's replay_lag stands
 * still while replay does, e.g. paused). Returns 0 and
 * *ret, or -ENODATA when the bytes are unknown (no position for either).
 * Pure. */
int dcs_member_lag_info(const DcsCluster *c, const DcsMember *m, DcsLag *ret);
/* dcs_member_lag_info's bytes. Returns 0 and *ret_bytes, or -ENODATA. */
int dcs_member_lag(const DcsCluster *c, const DcsMember *m, uint64_t *ret_bytes);
/* How far the WAL m holds is behind the leader, as Patroni's switchover
 * checks a candidate (its wal_position: the larger of received and
 * replayed): from the leader's row for m (its flush or replay position,
 * whichever is further), else the reference position minus m's
 * xlog_location (which a replica publishes as that larger one). A candidate
 * replays what it received before it promotes, so a replay held back a
 * moment by load does not make it lag. Returns 0 and *ret_bytes (0 for the
 * leader), or -ENODATA. Pure. */
int dcs_member_wal_lag(const DcsCluster *c, const DcsMember *m, uint64_t *ret_bytes);
/* The leader's replication row named name (case-sensitive, as PostgreSQL's
 * application_name), or NULL. Borrowed from c. */
const DcsReplicationRow *dcs_cluster_replication_row(const DcsCluster *c, const char *name);

/* Why member m cannot take over as leader in a switchover or a manual
 * failover: NULL when it can, else a static reason ("no such member" for
 * NULL, "it is the current leader", "it is not running", "it is tagged
 * nofailover", "it lags more than maximum_lag_on_failover" (by
 * dcs_member_wal_lag), "it is not a synchronous standby" in
 * synchronous_mode). With forced (a forced
 * failover) neither the lag nor synchronous_mode is checked. Pure. */
const char *dcs_candidate_problem(const DcsCluster *c, const DcsMember *m, bool forced);
/* The most advanced member without a candidate problem, or NULL. Pure. */
const DcsMember *dcs_pick_candidate(const DcsCluster *c);
/* Whom the `failover` key hands the leader to: its "member", else (a
 * switchover without a candidate) dcs_pick_candidate(); every member
 * computes the same one from the same view. NULL without the key or
 * without an eligible member. Borrowed from c. Pure. */
const char *dcs_failover_candidate(const DcsCluster *c);

/* Parses an ISO 8601 time as Patroni writes scheduled_at
 * ("2026-11-27T08:00:00+00:00"; also "Z", "+0100", fractional seconds, a
 * space instead of 'T'). A timezone is required. Returns 0 and seconds since
 * the epoch, or -EINVAL. Pure. */
int dcs_parse_time(const char *s, double *ret_epoch);
/* The same, but with utc_default a time without a timezone is UTC (dbctl
 * --scheduled: the agents compare it with their own clocks, which may be in
 * other zones). */
int dcs_parse_time_full(const char *s, bool utc_default, double *ret_epoch);

/* Has a member on timeline our_tli, with WAL up to our_lsn, gone past the
 * point where the leader's timeline (leader_tli) forked off ours? The fork
 * point is the LSN the history key records for our_tli. False when the
 * leader is on our timeline or the history does not say. Pure. */
/* The cluster's timeline as Patroni's Cluster.timeline gives it: the last
 * history line's timeline + 1, 1 for an empty list, 0 (unknown) without a
 * history key or with no well-formed line. Pure. */
int64_t dcs_history_cluster_timeline(const DcsHistory *h);
bool dcs_history_diverged(const DcsHistory *h, int64_t our_tli, uint64_t our_lsn,
                          int64_t leader_tli);

/* Patroni 3.0.2's GET /cluster body: {"members": [{"name", "role"
 * ("leader"|"standby_leader"|"sync_standby"|"replica"), "state", "api_url",
 * ["host", "port"], ["timeline"], ["pending_restart"], ["scheduled_restart"],
 * ["tags"], "lag" (replicas: bytes behind by replay, dcs_member_lag_info, or
 * "unknown"), and ours: ["lag_seconds"], ["write_lag_bytes"],
 * ["flush_lag_bytes"], ["replay_paused": true], ["failover_blocked"]}] sorted
 * by name,
 * ["pause": true], ["scheduled_switchover": {"at", ["from"], ["to"]}],
 * "scope"}. scope may be NULL (then omitted). Returns 0 and a new reference
 * in *ret, or -ENOMEM. */
int dcs_cluster_to_json(const DcsCluster *c, const char *scope, json_t **ret);

/* ---- encoders: exactly what Patroni writes (compact JSON) ---- */

/* Input of dcs_member_encode. Pointers borrowed. */
typedef struct DcsMemberInfo {
    const char *conn_url; /* "postgres://host:port/postgres" */
    const char *api_url;  /* "http://host:port/patroni" */
    const char *state;
    DcsRole role;
    const char *version;
    const char *proxy_url;  /* NULL: omitted */
    const json_t *tags;     /* NULL or {}: omitted */
    bool pending_restart;   /* false: omitted */
    bool has_xlog_location; /* Patroni writes it only while PostgreSQL runs */
    uint64_t xlog_location;
    int64_t timeline;                /* 0: omitted */
    const char *replication_state;   /* our addition beside Patroni's; NULL: omitted */
    const json_t *scheduled_restart; /* Patroni's object; NULL: omitted */
    bool pause;                      /* false: omitted */
    /* dbha's own fields */
    bool has_receive_lsn, has_replay_lsn; /* replica; false: omitted */
    uint64_t receive_lsn, replay_lsn;
    bool replay_paused; /* false: omitted */
    bool has_lag_seconds;
    double lag_seconds;
    const DcsReplicationRow *replication; /* leader; NULL: omitted ([] when n is 0) */
    size_t n_replication;
    const char *failover_blocked; /* NULL: omitted */
    const char *upstream;         /* NULL: omitted */
} DcsMemberInfo;

/* Patroni 3.0.2 touch_member() order: conn_url, api_url, state, role,
 * version, proxy_url, tags, pending_restart, xlog_location, timeline,
 * replication_state, scheduled_restart, pause; then ours: receive_lsn, replay_lsn,
 * replay_paused, lag_seconds, replication, failover_blocked, upstream. Returns 0 and
 * *ret_json (malloc'ed), -EINVAL (role out of range, a required string
 * missing), -ENOMEM. */
int dcs_member_encode(const DcsMemberInfo *m, char **ret_json);

/* {"name","state","sync_state","write_lsn","flush_lsn","replay_lsn",
 * "write_lag","flush_lag","replay_lag"} with null for what is unknown
 * (state and sync_state are null when NULL). Returns 0 and a new reference,
 * -EINVAL, -ENOMEM. */
int dcs_replication_row_to_json(const DcsReplicationRow *row, json_t **ret);

/* Tags as Patroni publishes them: nofailover, noloadbalance, clonefrom and
 * nosync only when true, replicatefrom when set, failover_priority when not
 * the default 1, custom tags with YAML scalars typed (int, float, bool).
 * Returns 0 and a new object (possibly empty) in *ret, or -ENOMEM. */
int dcs_tags_from_config(const Config *c, json_t **ret);

/* The `config` value from bootstrap.dcs: ttl, loop_wait, retry_timeout,
 * maximum_lag_on_failover, primary_start_timeout, primary_stop_timeout,
 * synchronous_mode, synchronous_mode_strict, synchronous_node_count,
 * failsafe_mode, postgresql: {use_pg_rewind, use_slots, parameters}. Parameter
 * values are typed like PyYAML types YAML scalars. */
int dcs_config_encode(const ConfigDcs *d, char **ret_json);

/* The `initialize` value: the system identifier in decimal. */
int dcs_initialize_encode(uint64_t sysid, char **ret_text);

/* The `status` value: {"optime":N} plus "slots" when slots is a non-empty
 * object (borrowed). */
int dcs_status_encode(uint64_t optime, const json_t *slots, char **ret_json);

/* The `history` value: old_value (the current value or NULL; malformed is
 * treated as []) with [timeline, lsn, reason, timestamp, new_leader]
 * appended (reason required); timestamp and new_leader are omitted from the line when NULL
 * (and new_leader requires timestamp). max_lines > 0 keeps only the last
 * max_lines lines, as Patroni applies max_timelines_history; 0 keeps all. */
int dcs_history_append(const char *old_value, int64_t timeline, uint64_t lsn, const char *reason,
                       const char *timestamp, const char *new_leader, int64_t max_lines,
                       char **ret_json);

/* {"leader":..,"member":..,"scheduled_at":..}, each only when non-NULL. */
int dcs_failover_encode(const char *leader, const char *candidate, const char *scheduled_at,
                        char **ret_json);

/* {"leader":"n1","sync_standby":"n2"} or with "sync_standby":null when
 * sync_standby is NULL or "". */
int dcs_sync_encode(const char *leader, const char *sync_standby, char **ret_json);

/* Splits "postgres://[user[:pw]@]host[:port][/db][?...]" (also [v6] hosts).
 * Returns 0 with *ret_host (owned) and *ret_port (5432 when absent),
 * -EINVAL when there is no host or the port is bad, -ENOMEM. */
int dcs_parse_conn_url(const char *url, char **ret_host, int *ret_port);
