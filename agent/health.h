/* The REST health-check decision: from what the agent knows about this node
 * and one request (method, path, query string), the HTTP status that Patroni
 * 3.0.2 answers. Pure: no I/O, no clock reads, no allocation, no logging, so
 * the REST handler can call it on every request and the table-driven unit
 * test can pin every endpoint's behaviour. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest query-string name or value (after %-decoding) that is matched. A
 * longer ?lag= is treated as unparsable (no limit, like Patroni's None) and a
 * longer ?tag_*= never matches. */
#define HEALTH_QUERY_FIELD_MAX 256
/* At most this many '&'-separated query fields are looked at. */
#define HEALTH_QUERY_FIELDS_MAX 64

typedef enum HealthMethod {
    HEALTH_METHOD_GET,
    HEALTH_METHOD_HEAD,
    HEALTH_METHOD_OPTIONS,
    _HEALTH_METHOD_MAX,
    _HEALTH_METHOD_INVALID = -EINVAL,
} HealthMethod;

/* The agent's view of its PostgreSQL, Patroni's `postgresql.state`. Only
 * RUNNING, STARTING and RESTARTING let the status query run; everything
 * that is neither (creating replica, rewinding, start failed, ...) is OTHER. */
typedef enum HealthPgState {
    HEALTH_PG_RUNNING,
    HEALTH_PG_STARTING,
    HEALTH_PG_RESTARTING,
    HEALTH_PG_STOPPING,
    HEALTH_PG_STOPPED,
    HEALTH_PG_CRASHED,
    HEALTH_PG_OTHER,
    _HEALTH_PG_MAX,
    _HEALTH_PG_INVALID = -EINVAL,
} HealthPgState;

/* The agent's role for its PostgreSQL, Patroni's `postgresql.role`. */
typedef enum HealthRole {
    HEALTH_ROLE_PRIMARY, /* Patroni 3.0.2 still spells it "master" */
    HEALTH_ROLE_REPLICA,
    HEALTH_ROLE_STANDBY_LEADER,
    HEALTH_ROLE_DEMOTED,
    HEALTH_ROLE_UNINITIALIZED,
    _HEALTH_ROLE_MAX,
    _HEALTH_ROLE_INVALID = -EINVAL,
} HealthRole;

/* Which handler a request goes to. Patroni routes GET by the first path
 * segment to a dedicated handler when one exists; HEAD and OPTIONS have no
 * dedicated handlers, so they always take the generic status check (HEAD
 * /liveness is therefore 503 in Patroni, and here). */
typedef enum HealthRoute {
    HEALTH_ROUTE_STATUS,    /* generic check: /, /primary, /replica, ... and any unknown path */
    HEALTH_ROUTE_LIVENESS,  /* GET /liveness */
    HEALTH_ROUTE_READINESS, /* GET /readiness */
    HEALTH_ROUTE_OTHER,     /* GET /patroni, /status, /cluster, /history, /config, /metrics,
                               /failsafe: not a health check, the caller answers */
    _HEALTH_ROUTE_MAX,
    _HEALTH_ROUTE_INVALID = -EINVAL,
} HealthRoute;

/* What the reply carries besides the status line. */
typedef enum HealthReply {
    HEALTH_REPLY_STATUS_JSON, /* GET generic check: the /patroni status document as body */
    HEALTH_REPLY_CODE_ONLY,   /* HEAD, OPTIONS, /liveness, /readiness: "HTTP/1.x 200 OK\r\n\r\n" */
    _HEALTH_REPLY_MAX,
    _HEALTH_REPLY_INVALID = -EINVAL,
} HealthReply;

typedef struct HealthTag {
    const char *key;   /* borrowed */
    const char *value; /* borrowed: as Patroni renders it for ?tag_ matching: strings verbatim,
                          other YAML scalars as Python's str(v).lower() ("true", "1", "1.5") */
} HealthTag;

/* This node as the REST snapshot sees it. All pointers are borrowed. */
typedef struct HealthNode {
    HealthPgState state;   /* the agent's view */
    HealthRole role;       /* the agent's role */
    bool probe_ok;         /* the latest status query of PostgreSQL succeeded */
    bool in_recovery;      /* pg_is_in_recovery() from that query (only used when probe_ok) */
    uint64_t replayed_lsn; /* pg_last_wal_replay_lsn() from that query (replica) */
    bool postmaster_alive; /* the postmaster PID is alive (Patroni's is_running()) */

    bool dcs_ok;            /* a cluster view from etcd is at hand and not older than ttl
                               (Patroni: dcs.cluster is not None) */
    bool is_leader;         /* holds the leader key and its lease has not run out */
    bool paused;            /* maintenance mode, from the last known cluster config */
    bool standby_cluster;   /* the dynamic config describes a standby cluster */
    bool synchronous_mode;  /* synchronous_mode is on */
    bool sync_standby;      /* this member is named in /sync (which has a leader) */
    uint64_t leader_optime; /* the leader's last LSN from /status, 0 when unknown */

    bool noloadbalance;    /* tags.noloadbalance is true */
    const HealthTag *tags; /* the effective tags; falsy nofailover/noloadbalance/clonefrom/
                              nosync are left out, as Patroni does */
    size_t n_tags;

    uint64_t now_usec;      /* monotonic */
    uint64_t next_run_usec; /* when the next HA loop is due (monotonic) */
    uint64_t ttl_usec;      /* the leader key ttl */
} HealthNode;

typedef struct HealthResult {
    int status;         /* 200 or 503 */
    HealthReply reply;  /* body or status line only */
    const char *reason; /* static, short, lowercase: why this status */
} HealthResult;

const char *health_method_to_string(HealthMethod m);
/* "GET", "HEAD", "OPTIONS" (exact case, as in the request line). */
HealthMethod health_method_from_string(const char *s);
const char *health_pg_state_to_string(HealthPgState s);
HealthPgState health_pg_state_from_string(const char *s);
const char *health_role_to_string(HealthRole r);
HealthRole health_role_from_string(const char *s);

/* The handler Patroni 3.0.2 would run for this method and path (the path
 * without the query string, not %-decoded). Returns _HEALTH_ROUTE_INVALID for
 * NULL arguments. */
HealthRoute health_route(HealthMethod method, const char *path);

/* Decides the status of one health request. path is the request path without
 * the query string; query is what follows '?', or NULL/"" for none. On
 * success writes *ret and returns 0. Returns -EOPNOTSUPP when the route is
 * HEALTH_ROUTE_OTHER (the caller serves it) and -EINVAL for bad arguments.
 * Does not log. */
int health_check(const HealthNode *node, HealthMethod method, const char *path, const char *query,
                 HealthResult *ret);

/* Patroni's parse_int(value, 'B') for ?lag=: an integer in C strtol base-0
 * syntax ("1048576", "0x100000", "-1") or a decimal ("1.5"), optionally
 * followed by a case-sensitive unit B, kB, MB, GB or TB (powers of 1024).
 * Values beyond int64 saturate. Returns 0 and writes *ret, or -EINVAL when
 * Patroni would get None (and then applies no lag limit). */
int health_parse_lag(const char *s, int64_t *ret);
