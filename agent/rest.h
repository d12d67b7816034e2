/* The agent's REST API on libmicrohttpd: Patroni's health endpoints (decided
 * by health.c), the status documents (/patroni, /cluster, /history, /config,
 * /metrics) and a handler table for the mutating endpoints. Every request is
 * answered from an immutable, refcounted RestSnapshot that the agent
 * publishes, so no request waits for PostgreSQL or etcd.
 *
 * Threading: MHD runs its own threads; rest_server_publish() and
 * rest_server_get_stats() may be called from any thread. Logging: debug only;
 * rest_server_new() describes failures in a RestError. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

#include "health.h"

#define REST_BODY_MAX (64 * 1024) /* a larger request body gets 413 */
#define REST_BODY_DISCARD_MAX                                                                      \
    (1024 * 1024) /* beyond this a too large body is not                                           \
                     read to the end: reply and close */
#define REST_ERROR_MESSAGE_MAX 256
#define REST_LISTEN_MAX        300           /* "[v6 address]:port" or "hostname:port" */
#define REST_PEM_MAX           (1024 * 1024) /* certfile, keyfile, cafile size */
#define REST_HANDLERS_MAX      32
#define REST_DEFAULT_THREADS   2
#define REST_THREADS_MAX       64
/* Connections held at once: from one client address, and in all. One
 * address (a client that opens connections and sends nothing, or its
 * headers a byte at a time) takes at most the first, so the health checks
 * of load balancers on other addresses still find a free connection. The
 * total stays below the usual 1024 descriptors a service may open. */
#define REST_PER_IP_CONNECTION_LIMIT        32
#define REST_DEFAULT_CONNECTION_LIMIT       512
#define REST_DEFAULT_CONNECTION_TIMEOUT_SEC 10
/* A request's line and headers must have arrived this long after the
 * connection was opened (TLS handshake included); the next request on a
 * kept-alive connection gets the connection timeout from the end of the
 * previous one. MHD's own timeout only counts idle time: a client sending
 * a byte every few seconds would hold its connection for ever. */
#define REST_HEADER_DEADLINE_USEC    (5 * 1000 * 1000ULL)
#define REST_CONNECTION_MEMORY_LIMIT (64 * 1024) /* per connection: request line + headers */
#define REST_AUTH_REALM              "dbha"
#define REST_ALLOWLIST_MAX           256 /* networks, after resolving host names */
/* Trust for client certificates when verify_client is set without a cafile
 * (Python's ssl, which Patroni uses, loads the system's CAs then). */
#define REST_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define REST_STATUS_CLASSES 6 /* index 1..5: 1xx..5xx; 0: anything else */

typedef struct RestError {
    char message[REST_ERROR_MESSAGE_MAX];
} RestError;

/* ---- snapshots ------------------------------------------------------------ */

/* The documents a snapshot carries. */
typedef enum RestDoc {
    REST_DOC_PATRONI,  /* GET /patroni and /status; also the body of a health GET */
    REST_DOC_CLUSTER,  /* GET /cluster */
    REST_DOC_HISTORY,  /* GET /history */
    REST_DOC_CONFIG,   /* GET /config */
    REST_DOC_TOPOLOGY, /* GET /topology: the topology key as watched (lib/topology.h) */
    _REST_DOC_MAX,
    _REST_DOC_INVALID = -EINVAL,
} RestDoc;

/* "patroni", "cluster", "history", "config"; from_string also takes "status". */
const char *rest_doc_to_string(RestDoc d);
RestDoc rest_doc_from_string(const char *s);

/* What the REST API knows about this node at one moment. Built by the agent,
 * then sealed (rest_snapshot_seal or rest_server_publish) and never changed
 * again; freed when the last reference is dropped. References may be taken
 * and dropped from any thread. */
typedef struct RestSnapshot RestSnapshot;

/* Copies *node, including its tags (deep copy: the snapshot owns them).
 * time_usec is the monotonic time the state was observed. The node's times
 * are CLOCK_MONOTONIC microseconds; node->now_usec is ignored: each request
 * is decided with the time it arrives. Returns 0 and a snapshot with one
 * reference, -EINVAL or -ENOMEM. */
int rest_snapshot_new(const HealthNode *node, uint64_t time_usec, RestSnapshot **ret);
RestSnapshot *rest_snapshot_ref(RestSnapshot *s);
/* Drops one reference (NULL is fine); returns NULL. */
RestSnapshot *rest_snapshot_unref(RestSnapshot *s);
/* Sets a document; doc is borrowed (the snapshot takes its own reference and
 * serializes it now, so later changes to doc are not served; do not change it
 * anyway, handlers read it). NULL removes the document (GET answers 503).
 * Returns 0, -EINVAL, -ENOMEM, or -EBUSY when the snapshot is sealed. */
int rest_snapshot_set_document(RestSnapshot *s, RestDoc d, json_t *doc);
/* Prometheus text for GET /metrics (copied); NULL: 503. Same errors. */
int rest_snapshot_set_metrics(RestSnapshot *s, const char *text);
/* Monotonic time until which the node's leader lease is valid: health checks
 * made at or after it treat the node as not holding the leader key, so a
 * stuck agent loop cannot keep /primary at 200 past the lease (Patroni's
 * Ha.is_leader() expires the same way). 0 (the default): no expiry. */
int rest_snapshot_set_leader_deadline(RestSnapshot *s, uint64_t deadline_usec);
/* Makes the snapshot immutable (idempotent). */
void rest_snapshot_seal(RestSnapshot *s);

/* Accessors for handlers. All returned pointers are borrowed from s. */
const HealthNode *rest_snapshot_node(const RestSnapshot *s);
uint64_t rest_snapshot_time_usec(const RestSnapshot *s);
const json_t *rest_snapshot_document(const RestSnapshot *s, RestDoc d);

/* ---- handlers for other methods (POST, PATCH, PUT, DELETE, ...) ----------- */

typedef enum RestHandlerFlags {
    REST_HANDLER_MUTATING = 1u << 0,      /* needs basic auth when it is configured */
    REST_HANDLER_BODY_OPTIONAL = 1u << 1, /* an empty body is passed as body == NULL
                                             (implied for GET and HEAD handlers) */
} RestHandlerFlags;

typedef struct RestCallContext RestCallContext;

/* One request, as a handler sees it. All pointers borrowed for the call. */
typedef struct RestCall {
    const char *method;           /* "POST" */
    const char *path;             /* raw path, not %-decoded ("/switchover") */
    const char *query;            /* raw query string after '?', "" when none */
    const json_t *body;           /* the request body, a JSON object; NULL only when empty
                                     and REST_HANDLER_BODY_OPTIONAL */
    const RestSnapshot *snapshot; /* the published snapshot, NULL before the first */
    const char *user;             /* the authenticated user, NULL without auth */
    RestCallContext *context;     /* the server's: for rest_call_defer() */
} RestCall;

/* A handler's answer. Set status and at most one of json/text. */
typedef struct RestReply {
    unsigned status;          /* HTTP status, 100..599 */
    json_t *json;             /* owned: sent as application/json */
    char *text;               /* owned (malloc): sent as content_type or text/plain */
    const char *content_type; /* borrowed, static; NULL: the default for json/text */
} RestReply;

/* Runs on an MHD thread and must not block on PostgreSQL or etcd. Return 0
 * after filling *reply, or a negative errno: the client gets 500
 * {"error": ...}. Or hand the work to another thread: take a RestPending
 * with rest_call_defer(), return REST_DEFERRED (*reply is ignored), and
 * answer later with rest_pending_reply(). Meanwhile the connection is
 * suspended: it costs no thread, and other requests are served. */
typedef int (*RestHandlerFn)(const RestCall *call, RestReply *reply, void *userdata);

#define REST_DEFERRED 1

/* A request whose reply comes later, from any thread. */
typedef struct RestPending RestPending;

/* Called at most once per call, from the handler. Returns the pending
 * request (the handler then must return REST_DEFERRED) or NULL (out of
 * memory: answer now). */
RestPending *rest_call_defer(const RestCall *call);
/* Answers a deferred request exactly once, from any thread: takes *reply's
 * json/text (and clears them) and releases p. A request still pending when
 * the server is freed gets 503 {"error": "the agent is stopping"}. */
void rest_pending_reply(RestPending *p, RestReply *reply);
/* Convenience: {"error": message} with status, or the text message with a
 * 2xx status (Patroni answers its POSTs with plain text). */
void rest_pending_reply_message(RestPending *p, unsigned status, const char *message);
/* The same shape for immediate replies. Returns 0 or -ENOMEM. */
int rest_reply_message(RestReply *reply, unsigned status, const char *message);

typedef struct RestHandler {
    const char *method; /* "POST", "PATCH", "PUT", "DELETE", ... (exact case) */
    const char *path;   /* "/switchover": matched against the request's first path segment,
                           as Patroni routes do_POST_switchover */
    unsigned flags;     /* RestHandlerFlags */
    RestHandlerFn fn;
    void *userdata; /* borrowed */
} RestHandler;

/* The handler for method and path (first segment matched, query ignored), or
 * NULL. *ret_path_known (optional) tells whether another method has a handler
 * for that path (the server then answers 405 instead of 404). Pure. */
const RestHandler *rest_handler_lookup(const RestHandler *table, size_t n, const char *method,
                                       const char *path, bool *ret_path_known);

/* ---- the server ----------------------------------------------------------- */

/* restapi.verify_client, as Patroni applies it over HTTPS: none asks for no
 * certificate; optional refuses every request with a certificate that does
 * not verify against cafile and the mutating ones without a valid one;
 * required refuses every request without a valid one. */
typedef enum RestVerifyClient {
    REST_VERIFY_CLIENT_NONE,
    REST_VERIFY_CLIENT_OPTIONAL,
    REST_VERIFY_CLIENT_REQUIRED,
    _REST_VERIFY_CLIENT_MAX,
    _REST_VERIFY_CLIENT_INVALID = -EINVAL,
} RestVerifyClient;

const char *rest_verify_client_to_string(RestVerifyClient v);
/* Any case; NULL is REST_VERIFY_CLIENT_NONE. */
RestVerifyClient rest_verify_client_from_string(const char *s);

typedef struct RestServerConfig {
    const char *listen;             /* "host:port", "[v6]:port", "*:port" (all IPv4); copied */
    const char *username;           /* basic auth for MUTATING handlers; NULL: none */
    const char *password;           /* with username */
    const char *certfile;           /* PEM: HTTPS when set */
    const char *keyfile;            /* PEM; NULL: the key is in certfile */
    const char *keyfile_password;   /* NULL: the key is not encrypted */
    const char *cafile;             /* PEM: CAs for client certificates */
    RestVerifyClient verify_client; /* with certfile; without cafile the system's CAs */
    /* Patroni's restapi.allowlist: addresses, ADDRESS/BITS networks and host
     * names (resolved here, every address; one that does not resolve is
     * skipped with a warning). When it or allowlist_include_members is set,
     * the mutating endpoints answer 403 to any other client. */
    /* Patroni's restapi.http_extra_headers (and, with TLS,
     * https_extra_headers): name, value, name, value, ...; added to every
     * response; copied */
    const char *const *extra_headers;
    size_t n_extra_headers;       /* pairs */
    const char *const *allowlist; /* borrowed */
    size_t n_allowlist;
    bool allowlist_include_members;   /* rest_server_set_member_urls()'s hosts too */
    unsigned threads;                 /* 0: REST_DEFAULT_THREADS */
    unsigned connection_limit;        /* 0: REST_DEFAULT_CONNECTION_LIMIT */
    unsigned per_ip_connection_limit; /* 0: REST_PER_IP_CONNECTION_LIMIT */
    unsigned connection_timeout_sec;  /* idle connections are closed; 0: the default */
    uint64_t header_deadline_usec;    /* 0: REST_HEADER_DEADLINE_USEC */
    const RestHandler *handlers;      /* borrowed array, copied (not the userdata) */
    size_t n_handlers;                /* at most REST_HANDLERS_MAX */
    /* 0: requests are answered from the published snapshot whatever its
     * age. Otherwise a GET, HEAD or OPTIONS answered from the snapshot (a
     * health check, a document, /metrics) that finds it older than this
     * asks for a fresh one (rest_server_refresh_fd) and waits, its
     * connection suspended, until the next rest_server_publish() or
     * refresh_wait_usec has passed; then it is answered from the snapshot
     * published by then. */
    uint64_t max_age_usec;
    uint64_t refresh_wait_usec; /* 0: REST_DEFAULT_REFRESH_WAIT_USEC */
} RestServerConfig;

/* How long a request waits for a fresh snapshot when the publisher does not
 * answer (its loop is busy): then it is answered from the older one, as it
 * would have been without max_age_usec. */
#define REST_DEFAULT_REFRESH_WAIT_USEC (1000 * 1000ULL)

typedef struct RestServer RestServer;

typedef struct RestStats {
    uint64_t requests;                          /* replies queued */
    uint64_t status_class[REST_STATUS_CLASSES]; /* by status / 100 */
    uint64_t body_too_large;                    /* 413s */
    uint64_t auth_failed;                       /* 401s */
    uint64_t header_deadline_closed;            /* connections closed at the header deadline */
} RestStats;

/* Parses "host:port" into a socket address (numeric addresses without DNS;
 * a host name is resolved with getaddrinfo, first address wins; "*" or "" is
 * 0.0.0.0). Returns 0, or -EINVAL with reterr filled. */
int rest_parse_listen(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len,
                      RestError *reterr);

/* Both strings match the configured ones, compared in constant time with
 * respect to the configured values. With want_user NULL (no auth
 * configured) always true; with user or password NULL false. Pure. */
bool rest_auth_check(const char *want_user, const char *want_password, const char *user,
                     const char *password);

/* Binds cfg->listen and starts serving (MHD threads). Until the first
 * rest_server_publish() health checks answer 503. Returns 0, -EINVAL (bad
 * config), -ENOENT/-EACCES/... (PEM files), -EOPNOTSUPP (HTTPS asked but MHD
 * lacks TLS), -EADDRINUSE or another bind error. Fills reterr on failure. */
int rest_server_new(const RestServerConfig *cfg, RestServer **ret, RestError *reterr);
/* Stops MHD (waits for its threads, closes every connection) and frees the
 * server; in-flight replies keep their snapshot references until MHD drops
 * them. Accepts NULL; returns NULL. */
RestServer *rest_server_free(RestServer *s);
/* Replaces the snapshot every following request sees. Seals snap and takes
 * its own reference (the caller keeps, and later drops, its own); the old
 * snapshot is released when its last in-flight request finishes. NULL
 * withdraws the snapshot (health checks answer 503 again). */
void rest_server_publish(RestServer *s, RestSnapshot *snap);
/* With max_age_usec: an eventfd (owned by the server, nonblocking) that is
 * readable while a request waits for a snapshot younger than max_age_usec;
 * the publisher polls it, calls rest_server_refresh_ack() and publishes.
 * -1 without max_age_usec. */
int rest_server_refresh_fd(const RestServer *s);
/* Drains the refresh eventfd; the next stale request signals it again. */
void rest_server_refresh_ack(RestServer *s);
/* Monotonic time of the latest request answered from the snapshot (or
 * waiting for a fresh one); 0 before the first. Lets the publisher refresh
 * ahead of time while clients ask, and stop when they stop. */
uint64_t rest_server_last_read_usec(const RestServer *s);

/* Marks the published snapshot as too old: with max_age_usec the next
 * request waits for a fresh one. For a publisher that has nothing to publish
 * for lack of readers, while what it would publish has changed. */
void rest_server_expire(RestServer *s);
/* The current snapshot's time_usec; 0 before the first publish, 1 after
 * rest_server_expire(). */
uint64_t rest_server_published_usec(const RestServer *s);

/* The members' api_urls from the cluster view (copied as networks): with
 * allowlist_include_members their hosts may call the mutating endpoints
 * from the next request on. A host that is not an IP address is skipped
 * (no name is resolved while serving). Any thread. Returns 0, -EINVAL or
 * -ENOMEM (the previous list stays). */
int rest_server_set_member_urls(RestServer *s, const char *const *urls, size_t n);

/* The bound port (useful with port 0). */
uint16_t rest_server_port(const RestServer *s);
void rest_server_get_stats(const RestServer *s, RestStats *ret);
