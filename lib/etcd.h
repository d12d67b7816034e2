/* etcd v3 client over the v3 JSON gateway (etcd 3.4, /v3/...): KV range/put/
 * delete, transactions, leases, and a resumable prefix watch. Blocking unary
 * calls with a per-request timeout and an overall deadline, failover across
 * several endpoints, token auth and TLS. Built on libcurl and jansson.
 *
 * Threading: an EtcdClient and its watches are used from one thread
 * (etcd_watch_wakeup() is the exception).
 * libcurl: etcd_client_new() calls curl_global_init(CURL_GLOBAL_DEFAULT) once
 * per process (guarded by pthread_once); nothing calls curl_global_cleanup().
 * Logging: only log_debug. Errors are returned as -errno and, when the
 * caller passes an EtcdError, described there (never with a password). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define ETCD_ERROR_MESSAGE_MAX            256
#define ETCD_DEFAULT_REQUEST_TIMEOUT_USEC (1500 * 1000ULL)
#define ETCD_DEFAULT_CONNECT_TIMEOUT_USEC (500 * 1000ULL)
#define ETCD_DEFAULT_DEADLINE_USEC        (5 * 1000 * 1000ULL)

/* Every kind maps to one distinct -errno (etcd_error_kind_to_errno). */
typedef enum EtcdErrorKind {
    ETCD_ERROR_NONE,              /* 0 */
    ETCD_ERROR_NOT_FOUND,         /* -ENOENT: etcd_get() of a missing key */
    ETCD_ERROR_COMPARE_FAILED,    /* -ECANCELED: txn compares were false */
    ETCD_ERROR_LEASE_NOT_FOUND,   /* -ESRCH: lease unknown or expired */
    ETCD_ERROR_UNAVAILABLE,       /* -EHOSTUNREACH: no endpoint answered in time */
    ETCD_ERROR_AUTH,              /* -EACCES: bad credentials, token refused */
    ETCD_ERROR_PERMISSION_DENIED, /* -EPERM: authenticated but not allowed (403) */
    ETCD_ERROR_BAD_RESPONSE,      /* -EBADMSG: malformed or truncated answer */
    ETCD_ERROR_COMPACTED,         /* -ESTALE: revision compacted */
    ETCD_ERROR_INVALID,           /* -EINVAL: request rejected (4xx), bad argument */
    ETCD_ERROR_WATCH_CANCELED,    /* -ECONNABORTED: server canceled a watch */
    ETCD_ERROR_NO_MEMORY,         /* -ENOMEM */
    ETCD_ERROR_INTERNAL,          /* -EIO: libcurl setup failure, callback abort */
    _ETCD_ERROR_KIND_MAX,
    _ETCD_ERROR_KIND_INVALID = -EINVAL,
} EtcdErrorKind;

const char *etcd_error_kind_to_string(EtcdErrorKind k); /* "not-found", ...; NULL if out of range */
EtcdErrorKind etcd_error_kind_from_string(const char *s);
int etcd_error_kind_to_errno(EtcdErrorKind k); /* 0 for NONE, else a negative errno */

typedef struct EtcdError {
    EtcdErrorKind kind;
    int grpc_code;    /* etcd's gRPC code when it sent one, else 0 */
    long http_status; /* HTTP status of the last answer, 0 when none */
    char message[ETCD_ERROR_MESSAGE_MAX];
} EtcdError;

typedef enum EtcdProtocol {
    ETCD_PROTOCOL_HTTP,
    ETCD_PROTOCOL_HTTPS,
    _ETCD_PROTOCOL_MAX,
    _ETCD_PROTOCOL_INVALID = -EINVAL,
} EtcdProtocol;

const char *etcd_protocol_to_string(EtcdProtocol p);
EtcdProtocol etcd_protocol_from_string(const char *s);

/* All pointers borrowed for the duration of etcd_client_new (copied). */
typedef struct EtcdClientConfig {
    const char *const *endpoints; /* "host:port" (an "http://" or "https://" prefix is accepted
                                     and overrides protocol) */
    size_t n_endpoints;
    EtcdProtocol protocol;
    const char *username; /* NULL: no auth */
    const char *password;
    const char *cacert;            /* https: CA bundle to verify the server (NULL: system CAs) */
    const char *cert;              /* https: client certificate (optional) */
    const char *key;               /* https: client key (optional) */
    uint64_t request_timeout_usec; /* one HTTP attempt; 0: ETCD_DEFAULT_REQUEST_TIMEOUT_USEC */
    uint64_t connect_timeout_usec; /* TCP+TLS connect; 0: ETCD_DEFAULT_CONNECT_TIMEOUT_USEC */
    uint64_t deadline_usec; /* a whole call incl. failover/retries; 0: ETCD_DEFAULT_DEADLINE_USEC */
    /* Lease keepalives on one long-lived stream instead of one POST each
     * (etcd_lease_keepalive()); for a long-running client such as the agent. */
    bool stream_keepalives;
} EtcdClientConfig;

typedef struct EtcdClient EtcdClient;

/* Validates and copies the config; does no I/O (auth is lazy). Returns 0 and
 * *ret_client, or -EINVAL (bad endpoint/protocol) / -ENOMEM / -EIO (libcurl). */
int etcd_client_new(const EtcdClientConfig *config, EtcdClient **ret_client, EtcdError *reterr);
/* NULL-safe; returns NULL. Every watch of the client must be freed first. */
EtcdClient *etcd_client_free(EtcdClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdClient *, etcd_client_free);

/* A time (monotonic usec; 0: none) by which every call of the client has
 * ended, on top of its own deadline: a call cut short by it fails with
 * ETCD_ERROR_UNAVAILABLE, and one made after it fails at once, unsent. For
 * a caller whose one call that matters (a lease renewal) must not wait
 * behind others: it sets the limit to when that call is due and lifts it
 * for that call. A watch's stream is not limited (its authentication is). */
void etcd_client_set_limit(EtcdClient *c, uint64_t until_usec);
uint64_t etcd_client_get_limit(const EtcdClient *c);

/* "host:port" of the endpoint that answered last (or will be tried first). Borrowed. */
const char *etcd_client_get_endpoint(const EtcdClient *c);

typedef struct EtcdClientStats {
    uint64_t requests;        /* HTTP attempts, failed ones included */
    uint64_t failovers;       /* times a call moved on to another endpoint */
    uint64_t authentications; /* successful /v3/auth/authenticate calls */
    uint64_t connects;        /* new TCP (or TLS) connections opened; reuse keeps it low */
    uint64_t errors;          /* attempts that failed (transport error or not 200) */
    uint64_t request_usec;    /* time spent in attempts, all together */
    uint64_t streamed;        /* keepalives answered on the keepalive stream (in requests too) */
} EtcdClientStats;
void etcd_client_get_stats(const EtcdClient *c, EtcdClientStats *ret);

/* The highest header.revision in any successful answer this client got
 * (range, put, delete, txn, lease grant/keepalive/revoke); 0 before the
 * first. Every write the client saw acknowledged is at or below it, and
 * so is the store's revision at some moment during the call that set it. */
int64_t etcd_client_get_revision(const EtcdClient *c);

/* One key-value. key and value are owned, binary-safe, and followed by an
 * extra NUL so text can be used as a C string. Absent fields are 0. */
typedef struct EtcdKeyValue {
    char *key; /* owned */
    size_t key_len;
    char *value; /* owned */
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
} EtcdKeyValue;

void etcd_key_value_done(EtcdKeyValue *kv);

typedef enum EtcdOpType {
    ETCD_OP_RANGE,
    ETCD_OP_PUT,
    ETCD_OP_DELETE,
    _ETCD_OP_TYPE_MAX,
    _ETCD_OP_TYPE_INVALID = -EINVAL,
} EtcdOpType;

/* Result of range/put/delete/txn.
 *   range:  kvs, count (total matching), more
 *   put:    kvs holds the previous kv (n_kvs 0 or 1) when prev_kv was asked
 *   delete: count = number deleted, kvs = previous kvs when prev_kv was asked
 *   txn:    succeeded, responses[] (one per executed op, type set) */
typedef struct EtcdResult {
    EtcdOpType type;
    int64_t revision;  /* header.revision */
    EtcdKeyValue *kvs; /* owned */
    size_t n_kvs;
    int64_t count;
    bool more;
    bool succeeded;
    struct EtcdResult *responses; /* owned */
    size_t n_responses;
} EtcdResult;

void etcd_result_done(EtcdResult *r);

typedef struct EtcdRangeOptions {
    bool prefix;       /* key is a prefix: [key, key+1) */
    int64_t revision;  /* 0: latest */
    int64_t limit;     /* 0: no limit */
    bool keys_only;    /* values left empty */
    bool count_only;   /* only count */
    bool serializable; /* answered by the member itself, possibly stale, works without quorum */
} EtcdRangeOptions;

/* Range read. opts may be NULL (single key, latest, linearizable). A missing
 * key is an empty result (n_kvs 0), not an error. */
int etcd_range(EtcdClient *c, const char *key, const EtcdRangeOptions *opts, EtcdResult *ret,
               EtcdError *reterr);

/* Single key. Returns 0 and *ret_kv, or -ENOENT (NOT_FOUND) when the key does
 * not exist, or another error. */
int etcd_get(EtcdClient *c, const char *key, EtcdKeyValue *ret_kv, EtcdError *reterr);

typedef struct EtcdPutOptions {
    int64_t lease; /* 0: none */
    bool prev_kv;  /* return the previous kv in ret->kvs */
} EtcdPutOptions;

/* opts and ret may be NULL. */
int etcd_put(EtcdClient *c, const char *key, const void *value, size_t value_len,
             const EtcdPutOptions *opts, EtcdResult *ret, EtcdError *reterr);

/* Deletes key (or every key under the prefix). ret (optional) gets count =
 * number deleted and, with prev_kv, the deleted kvs. */
int etcd_delete(EtcdClient *c, const char *key, bool prefix, bool prev_kv, EtcdResult *ret,
                EtcdError *reterr);

typedef enum EtcdCompareTarget {
    ETCD_COMPARE_VERSION,
    ETCD_COMPARE_CREATE, /* create_revision; 0 means "key absent" */
    ETCD_COMPARE_MOD,    /* mod_revision */
    ETCD_COMPARE_VALUE,
    ETCD_COMPARE_LEASE,
    _ETCD_COMPARE_TARGET_MAX,
    _ETCD_COMPARE_TARGET_INVALID = -EINVAL,
} EtcdCompareTarget;

typedef enum EtcdCompareResult {
    ETCD_COMPARE_EQUAL,
    ETCD_COMPARE_GREATER,
    ETCD_COMPARE_LESS,
    ETCD_COMPARE_NOT_EQUAL,
    _ETCD_COMPARE_RESULT_MAX,
    _ETCD_COMPARE_RESULT_INVALID = -EINVAL,
} EtcdCompareResult;

const char *etcd_compare_target_to_string(EtcdCompareTarget t); /* "CREATE", ... (wire names) */
const char *etcd_compare_result_to_string(EtcdCompareResult r); /* "EQUAL", ... */

typedef struct EtcdCompare {
    const char *key; /* borrowed */
    EtcdCompareTarget target;
    EtcdCompareResult result;
    int64_t number;    /* VERSION, CREATE, MOD, LEASE */
    const void *value; /* VALUE, borrowed */
    size_t value_len;
} EtcdCompare;

/* One operation in a txn branch. Fields that do not apply to the type are ignored. */
typedef struct EtcdOp {
    EtcdOpType type;
    const char *key;   /* borrowed */
    const void *value; /* PUT, borrowed */
    size_t value_len;  /* PUT */
    int64_t lease;     /* PUT */
    bool prefix;       /* RANGE, DELETE */
    bool prev_kv;      /* PUT, DELETE */
    bool keys_only;    /* RANGE */
    int64_t limit;     /* RANGE */
} EtcdOp;

typedef struct EtcdTxn {
    const EtcdCompare *compares;
    size_t n_compares;
    const EtcdOp *success;
    size_t n_success;
    const EtcdOp *failure;
    size_t n_failure;
} EtcdTxn;

/* Runs the transaction. Returns 0 when the compares held (success ops ran),
 * -ECANCELED with kind COMPARE_FAILED when they did not: in that case *ret
 * IS filled too (succeeded=false, the failure ops' responses), so a caller
 * can see who holds a key. Any other error leaves *ret untouched. */
int etcd_txn(EtcdClient *c, const EtcdTxn *txn, EtcdResult *ret, EtcdError *reterr);

typedef struct EtcdLease {
    int64_t id;
    int64_t ttl;         /* seconds remaining (grant: granted TTL) */
    int64_t granted_ttl; /* time-to-live only */
    int64_t revision;    /* header.revision */
} EtcdLease;

/* id 0 lets etcd choose. etcd rounds TTLs below its minimum (2 s) up. */
int etcd_lease_grant(EtcdClient *c, int64_t ttl_sec, int64_t id, EtcdLease *ret, EtcdError *reterr);
/* One renewal. Returns 0 and *ret_ttl (> 0), or -ESRCH (LEASE_NOT_FOUND)
 * when etcd answered without a TTL: the lease is gone. One POST, or with
 * stream_keepalives one message on the client's keepalive stream, and one
 * POST (with failover between endpoints) when the stream cannot answer
 * within the request timeout. Whatever succeeds was sent after the call
 * began. */
int etcd_lease_keepalive(EtcdClient *c, int64_t id, int64_t *ret_ttl, EtcdError *reterr);
/* -ESRCH when the lease does not exist. */
int etcd_lease_revoke(EtcdClient *c, int64_t id, EtcdError *reterr);
/* -ESRCH when the lease does not exist (TTL -1). */
int etcd_lease_time_to_live(EtcdClient *c, int64_t id, EtcdLease *ret, EtcdError *reterr);

/* ---- watch ---- */

typedef enum EtcdEventType {
    ETCD_EVENT_PUT,
    ETCD_EVENT_DELETE, /* explicit delete, lease revoke or lease expiry; kv has key+mod_revision */
    _ETCD_EVENT_TYPE_MAX,
    _ETCD_EVENT_TYPE_INVALID = -EINVAL,
} EtcdEventType;

const char *etcd_event_type_to_string(EtcdEventType t); /* "PUT", "DELETE" */

typedef struct EtcdEvent {
    EtcdEventType type;
    EtcdKeyValue kv;
    bool has_prev_kv;
    EtcdKeyValue prev_kv;
} EtcdEvent;

/* One message of the watch stream. */
typedef struct EtcdWatchResponse {
    int64_t revision; /* header.revision */
    bool created;
    bool canceled;
    int64_t compact_revision; /* > 0 with canceled: start revision was compacted */
    char *cancel_reason;      /* owned, may be NULL */
    EtcdEvent *events;        /* owned */
    size_t n_events;
} EtcdWatchResponse;

void etcd_watch_response_done(EtcdWatchResponse *r);

typedef struct EtcdWatch EtcdWatch;

/* Called from etcd_watch_poll for every message: the creation (also after each
 * transparent resume), events, progress, and a final cancel/compaction. resp
 * is borrowed for the call. Return < 0 to stop: etcd_watch_poll returns it.
 * Must not free the watch. */
typedef int (*EtcdWatchCallback)(EtcdWatch *w, const EtcdWatchResponse *resp, void *userdata);

typedef struct EtcdWatchOptions {
    const char *key; /* borrowed (copied) */
    bool prefix;
    int64_t start_revision; /* 0: from now */
    bool prev_kv;
} EtcdWatchOptions;

/* Creates a watch. No I/O happens here: the stream is opened by the first
 * etcd_watch_poll. The client is borrowed and must outlive the watch. */
int etcd_watch_new(EtcdClient *c, const EtcdWatchOptions *opts, EtcdWatchCallback cb,
                   void *userdata, EtcdWatch **ret_watch, EtcdError *reterr);
/* Closes the stream (which cancels the watch at etcd). NULL-safe; returns NULL. */
EtcdWatch *etcd_watch_free(EtcdWatch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdWatch *, etcd_watch_free);

/* Waits at most timeout_usec for stream data and dispatches every complete
 * message to the callback. A broken stream (member died, 503, timeout) is
 * re-opened on the next endpoint from the last seen revision + 1, with
 * backoff, transparently. Returns the number of messages dispatched (>= 0),
 * or a terminal error: -ESTALE (COMPACTED: the callback saw compact_revision;
 * re-read and watch again), -ECONNABORTED (WATCH_CANCELED), -EACCES (AUTH),
 * -EBADMSG, or the callback's own negative value. After a terminal error
 * every later call returns it again. Blocks in an authentication request for
 * at most the client's deadline when a token is needed. */
int etcd_watch_poll(EtcdWatch *w, uint64_t timeout_usec, EtcdError *reterr);

/* Makes the etcd_watch_poll() running in another thread (or the next one)
 * return soon, with what it dispatched so far (0 when nothing). The one
 * call that may be made from another thread than the watch's own; the
 * caller makes sure the watch is not freed meanwhile. Returns 0 or -EIO. */
int etcd_watch_wakeup(EtcdWatch *w);

/* For an external main loop (sd-event): wait for input on etcd_watch_get_fd()
 * and for the monotonic time etcd_watch_get_wakeup_usec(), then call
 * etcd_watch_poll(w, 0). Re-read both after every poll: the socket changes
 * when the stream is re-opened. get_fd returns -EAGAIN while there is no
 * established stream (then only the wakeup matters; also for a descriptor
 * >= FD_SETSIZE, which libcurl's fdset cannot report); the wakeup is at most
 * ETCD_WATCH_CONNECT_SLICE_USEC away while the stream is being opened, and
 * UINT64_MAX when only input can make progress. */
#define ETCD_WATCH_CONNECT_SLICE_USEC (10 * 1000ULL)
int etcd_watch_get_fd(const EtcdWatch *w);
uint64_t etcd_watch_get_wakeup_usec(const EtcdWatch *w);

/* The revision the watch resumes from after a break (last seen + 1), 0 when
 * nothing was seen yet and no start revision was given. */
int64_t etcd_watch_get_next_revision(const EtcdWatch *w);
/* "host:port" of the endpoint streaming now (or tried next). Borrowed. */
const char *etcd_watch_get_endpoint(const EtcdWatch *w);
/* Times the stream was (re)opened, the first time included. */
unsigned etcd_watch_get_connects(const EtcdWatch *w);

/* ---- etcd's v2 keys API ----
 * For readers that speak only v2, such as vip-manager 1.x (Debian 12): the
 * v2 store is separate from v3's and needs etcd started with --enable-v2.
 * One request to the current endpoint, with the client's TLS settings and
 * basic auth from its username and password. key: "/a/b", only
 * [A-Za-z0-9/_.-]. */

/* PUT key = value, expiring after ttl_sec (0: never). Returns 0, or -EINVAL
 * (also: the v2 API is off, the message says so), -EHOSTUNREACH, -EACCES. */
int etcd_v2_set(EtcdClient *c, const char *key, const char *value, int64_t ttl_sec,
                EtcdError *reterr);
/* DELETE key while it holds value. Returns 0 (also when the key is absent),
 * -ECANCELED when it holds another value, or the errors of etcd_v2_set. */
int etcd_v2_delete_if(EtcdClient *c, const char *key, const char *value, EtcdError *reterr);
