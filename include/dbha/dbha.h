/* libdbha: the public C API for applications that follow a dbha cluster.
 *
 * A DbhaClient follows the cluster's topology document (the etcd key
 * /<namespace>/<scope>/topology the leader's agent writes, or GET /topology
 * on the agents' REST API) in a background thread and keeps the latest copy
 * in memory; a DbhaPool hands out libpq connections to the primary or to a
 * replica chosen from that copy, and replaces connections to nodes that lost
 * their role.
 *
 * Conventions: functions that can fail return an int >= 0 on success and a
 * negative errno on failure; when the caller passes a DbhaError, a one-line
 * description is written there (never a password). Output parameters ret_*
 * are written only on success. The library never logs above debug level and
 * never calls exit(). Every function is thread-safe unless its comment says
 * otherwise. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DBHA_API __attribute__((visibility("default")))

/* Library version as "MAJOR.MINOR.PATCH"; a static string. */
DBHA_API const char *dbha_version(void);

/* ---- errors ---- */

#define DBHA_ERROR_MESSAGE_MAX 256

typedef struct DbhaError {
    int code; /* the negative errno the function returned */
    char message[DBHA_ERROR_MESSAGE_MAX];
} DbhaError;

/* ---- the topology document ---- */

/* Bytes for a node name or host with its NUL; dbha_topology_parse refuses longer ones. */
#define DBHA_NAME_MAX 256

/* One member of the cluster as the topology document lists it. Every string
 * is owned by the DbhaTopology it belongs to. */
typedef struct DbhaNode {
    const char *name;
    const char *host;
    int port;
    const char *api_url;   /* may be NULL */
    const char *state;     /* replicas: "streaming", "running", "stopped", ...; primary: NULL */
    bool lag_known;        /* lag_bytes was a number (not null) */
    int64_t lag_bytes;     /* 0 when unknown */
    bool sync;             /* named in the /sync key */
    bool noloadbalance;    /* tags.noloadbalance */
    const char *tags_json; /* the tags object as compact JSON text ("{}" when absent) */
} DbhaNode;

/* A decoded topology document: immutable and reference counted. Obtain it
 * from dbha_topology_parse() or dbha_client_get_topology(); give it back
 * with dbha_topology_unref(). Safe to read from any thread while held. */
typedef struct DbhaTopology {
    int64_t version;
    const char *scope;
    const char *leader;      /* NULL when the document says null */
    int64_t timeline;        /* -1 when null */
    const DbhaNode *primary; /* NULL when null */
    const DbhaNode *replicas;
    size_t n_replicas;
    const char *updated; /* as written, may be NULL */
} DbhaTopology;

/* Decodes a topology document (JSON text, len bytes, need not be
 * NUL-terminated). Returns 0 and *ret (refcount 1), -EBADMSG when the text is
 * not JSON or a field has the wrong type or a required field (version,
 * replicas, and name/host/port of each node) is missing or a name or host
 * does not fit DBHA_NAME_MAX, -ENOMEM. */
DBHA_API int dbha_topology_parse(const char *json, size_t len, DbhaTopology **ret,
                                 DbhaError *reterr);
/* Another reference; returns t. NULL-safe. */
DBHA_API DbhaTopology *dbha_topology_ref(DbhaTopology *t);
/* Drops a reference; frees at zero. NULL-safe; returns NULL. */
DBHA_API DbhaTopology *dbha_topology_unref(DbhaTopology *t);

/* The replica with this name, or NULL. Borrowed from t. */
DBHA_API const DbhaNode *dbha_topology_find_replica(const DbhaTopology *t, const char *name);

/* Whether a replica may serve reads: state "streaming", or "running" with a
 * known lag; not tagged noloadbalance; and when max_lag_bytes >= 0, a known
 * lag_bytes <= max_lag_bytes (max_lag_bytes < 0: no bound). */
DBHA_API bool dbha_node_is_healthy_replica(const DbhaNode *n, int64_t max_lag_bytes);

/* Picks a healthy replica (dbha_node_is_healthy_replica), spreading picks
 * round-robin: *cursor is advanced (callers keep one per consumer; the
 * client's own is used by dbha_client_pick_replica). Returns 0 and *ret
 * (borrowed from t), or -ENOENT when no replica qualifies. */
DBHA_API int dbha_topology_pick_replica(const DbhaTopology *t, int64_t max_lag_bytes,
                                        unsigned *cursor, const DbhaNode **ret);

/* ---- LSNs (read-your-writes) ---- */

/* Parses PostgreSQL's text form "X/Y" (hex) into a 64-bit LSN. Returns 0 and
 * *ret, or -EINVAL. */
DBHA_API int dbha_lsn_parse(const char *text, uint64_t *ret);
#define DBHA_LSN_TEXT_MAX 24
/* Formats an LSN as "X/Y" into buf (at least DBHA_LSN_TEXT_MAX bytes); returns buf. */
DBHA_API char *dbha_lsn_format(uint64_t lsn, char *buf, size_t size);
/* True when a replica that replayed up to replay_lsn shows every write up to
 * want_lsn (want_lsn 0: any replica will do). */
DBHA_API bool dbha_lsn_reached(uint64_t replay_lsn, uint64_t want_lsn);

/* ---- the client: follows the topology ---- */

typedef struct DbhaClient DbhaClient;

/* Called from the client's background thread for every new version of the
 * topology, with a reference borrowed for the call (take your own with
 * dbha_topology_ref to keep it). Must not call dbha_client_free(). */
typedef void (*DbhaTopologyCallback)(DbhaClient *c, DbhaTopology *t, void *userdata);

typedef struct DbhaClientOptions {
    /* Source 1: etcd. "host:port" or "http://host:port" strings. */
    const char *const *etcd_endpoints;
    size_t n_etcd_endpoints;
    const char *etcd_username; /* NULL: no auth */
    const char *etcd_password;
    const char *dcs_namespace; /* NULL: "/service/" */
    const char *scope;         /* required with etcd */
    /* Source 2 (when no etcd endpoint is given): agents' REST base URLs,
     * e.g. "http://127.0.0.1:8008"; GET <url>/topology is polled. */
    const char *const *rest_urls;
    size_t n_rest_urls;
    uint64_t poll_interval_usec;   /* REST polling; 0: 1 s */
    uint64_t request_timeout_usec; /* one etcd/REST request; 0: 1.5 s */
    DbhaTopologyCallback callback; /* may be NULL */
    void *userdata;
    /* etcd over TLS ("https://host:port" endpoints): the CA bundle etcd's
     * certificate is verified against (NULL: the system's), and the client
     * certificate and key when etcd requires one (files in PEM). Added in
     * 0.1 after the fields above: zero-initialize the struct. */
    const char *etcd_cacert;
    const char *etcd_cert;
    const char *etcd_key;
} DbhaClientOptions;

/* Validates and copies the options, then starts the background thread,
 * which fetches the topology, follows it (etcd watch or REST polling) and
 * reconnects by itself with backoff. Does no network I/O itself, so it
 * succeeds while the cluster is unreachable: use dbha_client_wait_topology
 * to wait for a first copy. Returns 0 and *ret, -EINVAL (no source, no
 * scope, bad endpoint), -ENOMEM, or the error of pthread_create. */
DBHA_API int dbha_client_open(const DbhaClientOptions *opts, DbhaClient **ret, DbhaError *reterr);
/* Stops the thread (waits at most twice the request timeout) and frees. Every
 * pool of the client must be freed first. NULL-safe; returns NULL. Not to be
 * called from the callback. */
DBHA_API DbhaClient *dbha_client_free(DbhaClient *c);

/* The cached topology, without I/O: 0 and a new reference in *ret (release
 * with dbha_topology_unref), or -ENODATA when none was fetched yet. */
DBHA_API int dbha_client_get_topology(DbhaClient *c, DbhaTopology **ret);
/* Waits up to timeout_usec for a cached version > after_version (pass 0 for
 * "any"). Returns 0 and a reference in *ret, or -ETIMEDOUT (reterr then says
 * what the last fetch failed with). */
DBHA_API int dbha_client_wait_topology(DbhaClient *c, int64_t after_version, uint64_t timeout_usec,
                                       DbhaTopology **ret, DbhaError *reterr);
/* Reads the document from its source now (one etcd range or one REST round
 * over the URLs), in the calling thread, without touching the cache. Returns
 * 0 and a reference, -ENOENT (key absent / 503), -EHOSTUNREACH, -EBADMSG. */
DBHA_API int dbha_client_fetch_topology(DbhaClient *c, DbhaTopology **ret, DbhaError *reterr);

typedef struct DbhaClientStats {
    uint64_t updates;      /* versions cached */
    uint64_t fetch_errors; /* failed reads, watch breaks and undecodable values */
    uint64_t reconnects;   /* watch streams (re)opened or REST rounds after a failure */
    int64_t version;       /* cached version, 0 when none */
    char last_error[DBHA_ERROR_MESSAGE_MAX]; /* "" when none */
} DbhaClientStats;
DBHA_API void dbha_client_get_stats(DbhaClient *c, DbhaClientStats *ret);

/* dbha_topology_pick_replica on the cached copy with the client's shared
 * round-robin cursor. Writes the node's name, host and port (copied).
 * Returns 0, -ENODATA (no topology yet) or -ENOENT (no healthy replica). */
typedef struct DbhaTarget {
    char name[DBHA_NAME_MAX];
    char host[DBHA_NAME_MAX];
    int port;
} DbhaTarget;
DBHA_API int dbha_client_pick_replica(DbhaClient *c, int64_t max_lag_bytes, DbhaTarget *ret);
/* The primary of the cached copy. Returns 0, -ENODATA or -ENOENT (no primary). */
DBHA_API int dbha_client_pick_primary(DbhaClient *c, DbhaTarget *ret);

/* ---- the connection pool ---- */

typedef enum DbhaRole {
    DBHA_ROLE_PRIMARY,
    DBHA_ROLE_REPLICA,
    _DBHA_ROLE_MAX,
} DbhaRole;

DBHA_API const char *dbha_role_to_string(DbhaRole r); /* "primary", "replica"; NULL if invalid */

typedef struct DbhaPoolOptions {
    /* libpq keywords/values without host/port (e.g. "dbname=app user=app
     * password=..."): the pool adds host and port of the chosen node. */
    const char *conninfo;
    unsigned min_primary; /* connections kept open (created in the background) */
    unsigned max_primary; /* 0: 4 */
    unsigned min_replica;
    unsigned max_replica;          /* 0: 4; counted over all replicas */
    int64_t max_lag_bytes;         /* replicas farther behind are skipped; < 0: no bound */
    uint64_t connect_timeout_usec; /* one connection attempt; 0: 2 s */
    uint64_t idle_check_usec;      /* idle time after which a connection is checked
                                      before it is handed out; 0: 5 s */
    uint64_t query_timeout_usec;   /* health and LSN queries; 0: 1 s */
} DbhaPoolOptions;

typedef struct DbhaPool DbhaPool;
/* A connection lent by the pool. */
typedef struct DbhaConn DbhaConn;

/* Creates a pool on a client (borrowed: it must outlive the pool) and starts
 * its maintenance thread, which keeps min connections open, closes idle
 * connections to nodes that lost their role after a topology change, and
 * health-checks idle ones. Returns 0 and *ret, -EINVAL (min > max, no
 * conninfo), -ENOMEM. */
DBHA_API int dbha_pool_new(DbhaClient *client, const DbhaPoolOptions *opts, DbhaPool **ret,
                           DbhaError *reterr);
/* Closes every idle connection and stops the thread. Every acquired
 * connection must have been released. NULL-safe; returns NULL. */
DBHA_API DbhaPool *dbha_pool_free(DbhaPool *p);

/* Lends a connection to the current primary (DBHA_ROLE_PRIMARY) or to a
 * healthy replica (DBHA_ROLE_REPLICA, spread round-robin), opening one when
 * none is idle and the role is under its max. A connection is verified
 * (pg_is_in_recovery()) when opened, after a topology change, and after
 * idle_check_usec of idleness; one that fails is closed and replaced. Waits
 * at most timeout_usec (0: do not wait): -ETIMEDOUT with the reason in reterr
 * ("no primary in topology version 7", "all 4 primary connections in use",
 * the connection error), -ENODATA when no topology was ever fetched and the
 * wait ran out, -EINVAL. */
DBHA_API int dbha_pool_acquire(DbhaPool *p, DbhaRole role, uint64_t timeout_usec, DbhaConn **ret,
                               DbhaError *reterr);
/* Read-your-writes: lends a replica connection whose node has replayed at
 * least want_lsn (checked on that connection with pg_last_wal_replay_lsn()),
 * trying each healthy replica once, else a primary connection. Errors as
 * dbha_pool_acquire. */
DBHA_API int dbha_pool_acquire_ryw(DbhaPool *p, uint64_t want_lsn, uint64_t timeout_usec,
                                   DbhaConn **ret, DbhaError *reterr);

/* Gives a connection back. Pass broken=true after an error that may have
 * left it unusable (it is then closed); a connection in a failed or open
 * transaction, or to a node that lost the role meanwhile, is closed too.
 * NULL-safe. */
DBHA_API void dbha_pool_release(DbhaPool *p, DbhaConn *conn, bool broken);

/* The libpq connection (libpq-fe.h's PGconn); borrowed while acquired. */
struct pg_conn;
DBHA_API struct pg_conn *dbha_conn_get_pg(DbhaConn *conn);
DBHA_API const char *dbha_conn_get_node(const DbhaConn *conn); /* node name, borrowed */
DBHA_API DbhaRole dbha_conn_get_role(const DbhaConn *conn);

typedef struct DbhaPoolStats {
    uint64_t acquired; /* successful acquires (read-your-writes counts each replica it
                          checks, and the primary when it falls back) */
    uint64_t timeouts; /* acquires that gave up */
    uint64_t created;  /* connections opened */
    uint64_t closed;   /* connections closed (role lost, broken, failed checks) */
    uint64_t in_use;   /* lent now */
    uint64_t idle;     /* open and idle now */
} DbhaPoolStats;
/* Counters of one role. */
DBHA_API void dbha_pool_get_stats(DbhaPool *p, DbhaRole role, DbhaPoolStats *ret);

#ifdef __cplusplus
}
#endif
