/* REST server: routes each request the way Patroni 3.0.2's RestApiHandler
 * does (per-path GET handlers, the generic health check for every other
 * GET/HEAD/OPTIONS, 404 for a method nobody handles (Patroni: 501)) and answers from the
 * published snapshot only. Bodies are served zero-copy from the snapshot's
 * pre-serialized documents; the MHD response holds a snapshot reference. */
#include "rest.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "clock.h"
#include "log.h"
#include "macro.h"
#include "rest_deadline.h"
#include "restnet.h"

/* Python's json.dumps() defaults: ", " and ": " separators, ASCII only. */
#define REST_JSON_FLAGS    (JSON_ENCODE_ANY | JSON_ENSURE_ASCII)
#define REST_ALLOW_MAX     256 /* the Allow header of a 405 */
#define REST_CONTENT_JSON  "application/json"
#define REST_CONTENT_TEXT  "text/plain"
#define REST_CONTENT_PROM  "text/plain; version=0.0.4"
#define REST_MHD_OPTS_MAX  20
#define REST_ERR_NOT_READY "not available yet"
/* At shutdown, the replies to deferred requests get this long to go out. */
#define REST_STOP_WAIT_STEPS     200
#define REST_STOP_WAIT_STEP_USEC (5 * 1000)

static void rest_error_set(RestError *e, const char *fmt, ...) _printf_(2, 3);
static void rest_error_set(RestError *e, const char *fmt, ...)
{
    if (!e) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* ---- verify_client ---------------------------------------------------------- */

static const char *const verify_client_table[_REST_VERIFY_CLIENT_MAX] = {
    [REST_VERIFY_CLIENT_NONE] = "none",
    [REST_VERIFY_CLIENT_OPTIONAL] = "optional",
    [REST_VERIFY_CLIENT_REQUIRED] = "required",
};

const char *rest_verify_client_to_string(RestVerifyClient v)
{
    return v >= 0 && v < _REST_VERIFY_CLIENT_MAX ? verify_client_table[v] : NULL;
}

RestVerifyClient rest_verify_client_from_string(const char *s)
{
    if (!s) {
        return REST_VERIFY_CLIENT_NONE;
    }
    for (size_t i = 0; i < ELEMENTSOF(verify_client_table); i++) {
        if (strcasecmp(verify_client_table[i], s) == 0) {
            return (RestVerifyClient)i;
        }
    }
    return _REST_VERIFY_CLIENT_INVALID;
}

/* ---- documents -------------------------------------------------------------- */

static const char *const doc_table[_REST_DOC_MAX] = {
    [REST_DOC_PATRONI] = "patroni",   [REST_DOC_CLUSTER] = "cluster",
    [REST_DOC_HISTORY] = "history",   [REST_DOC_CONFIG] = "config",
    [REST_DOC_TOPOLOGY] = "topology",
};

const char *rest_doc_to_string(RestDoc d)
{
    return d >= 0 && d < _REST_DOC_MAX ? doc_table[d] : NULL;
}

RestDoc rest_doc_from_string(const char *s)
{
    if (!s) {
        return _REST_DOC_INVALID;
    }
    if (strcmp(s, "status") == 0) {
        return REST_DOC_PATRONI; /* DESIGN.md: /status is an alias of /patroni */
    }
    for (size_t i = 0; i < ELEMENTSOF(doc_table); i++) {
        if (strcmp(doc_table[i], s) == 0) {
            return (RestDoc)i;
        }
    }
    return _REST_DOC_INVALID;
}

/* ---- snapshots -------------------------------------------------------------- */

struct RestSnapshot {
    atomic_uint n_ref;
    bool sealed;
    HealthNode node; /* node.tags points at tags */
    HealthTag *tags; /* owned, and so are every key and value */
    uint64_t time_usec;
    uint64_t leader_deadline_usec;
    json_t *doc[_REST_DOC_MAX]; /* owned references */
    char *text[_REST_DOC_MAX];  /* owned: doc serialized */
    size_t text_len[_REST_DOC_MAX];
    char *metrics; /* owned */
    size_t metrics_len;
    char *fallback; /* owned: health GET body when there is no /patroni document */
    size_t fallback_len;
};

static void snapshot_free(RestSnapshot *s)
{
    for (size_t i = 0; s->tags && i < s->node.n_tags; i++) {
        free((char *)s->tags[i].key);
        free((char *)s->tags[i].value);
    }
    free(s->tags);
    for (size_t i = 0; i < _REST_DOC_MAX; i++) {
        json_decref(s->doc[i]);
        free(s->text[i]);
    }
    free(s->metrics);
    free(s->fallback);
    free(s);
}

/* Patroni 3.0.2 spells the primary role "master" in its documents. */
static const char *patroni_role(HealthRole r)
{
    return r == HEALTH_ROLE_PRIMARY ? "master" : strna(health_role_to_string(r));
}

int rest_snapshot_new(const HealthNode *node, uint64_t time_usec, RestSnapshot **ret)
{
    if (!node || !ret || (node->n_tags > 0 && !node->tags)) {
        return -EINVAL;
    }
    RestSnapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    atomic_init(&s->n_ref, 1);
    s->node = *node;
    s->node.tags = NULL;
    s->node.n_tags = 0;
    s->time_usec = time_usec;
    if (node->n_tags > 0) {
        s->tags = calloc(node->n_tags, sizeof(HealthTag));
        if (!s->tags) {
            snapshot_free(s);
            return -ENOMEM;
        }
        s->node.tags = s->tags;
        for (size_t i = 0; i < node->n_tags; i++) {
            if (!node->tags[i].key || !node->tags[i].value) {
                snapshot_free(s);
                return -EINVAL;
            }
            s->tags[i].key = strdup(node->tags[i].key);
            s->tags[i].value = strdup(node->tags[i].value);
            s->node.n_tags = i + 1;
            if (!s->tags[i].key || !s->tags[i].value) {
                snapshot_free(s);
                return -ENOMEM;
            }
        }
    }

    /* What Patroni's get_postgresql_status() says when its query fails. */
    _cleanup_(json_decrefp) json_t *fb =
        json_pack("{s:s, s:s}", "state", strna(health_pg_state_to_string(node->state)), "role",
                  patroni_role(node->role));
    s->fallback = fb ? json_dumps(fb, REST_JSON_FLAGS) : NULL;
    if (!s->fallback) {
        snapshot_free(s);
        return -ENOMEM;
    }
    s->fallback_len = strlen(s->fallback);
    *ret = s;
    return 0;
}

RestSnapshot *rest_snapshot_ref(RestSnapshot *s)
{
    if (s) {
        atomic_fetch_add_explicit(&s->n_ref, 1, memory_order_relaxed);
    }
    return s;
}

RestSnapshot *rest_snapshot_unref(RestSnapshot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->n_ref, 1, memory_order_acq_rel) == 1) {
        snapshot_free(s);
    }
    return NULL;
}

int rest_snapshot_set_document(RestSnapshot *s, RestDoc d, json_t *doc)
{
    if (!s || d < 0 || d >= _REST_DOC_MAX) {
        return -EINVAL;
    }
    if (s->sealed) {
        return -EBUSY;
    }
    char *text = NULL;
    if (doc) {
        text = json_dumps(doc, REST_JSON_FLAGS);
        if (!text) {
            return -ENOMEM;
        }
    }
    json_decref(s->doc[d]);
    free(s->text[d]);
    s->doc[d] = json_incref(doc);
    s->text[d] = text;
    s->text_len[d] = text ? strlen(text) : 0;
    return 0;
}

int rest_snapshot_set_metrics(RestSnapshot *s, const char *text)
{
    if (!s) {
        return -EINVAL;
    }
    if (s->sealed) {
        return -EBUSY;
    }
    char *copy = NULL;
    if (text) {
        copy = strdup(text);
        if (!copy) {
            return -ENOMEM;
        }
    }
    free(s->metrics);
    s->metrics = copy;
    s->metrics_len = copy ? strlen(copy) : 0;
    return 0;
}

int rest_snapshot_set_leader_deadline(RestSnapshot *s, uint64_t deadline_usec)
{
    if (!s) {
        return -EINVAL;
    }
    if (s->sealed) {
        return -EBUSY;
    }
    s->leader_deadline_usec = deadline_usec;
    return 0;
}

void rest_snapshot_seal(RestSnapshot *s)
{
    if (s) {
        s->sealed = true;
    }
}

const HealthNode *rest_snapshot_node(const RestSnapshot *s)
{
    return s ? &s->node : NULL;
}

uint64_t rest_snapshot_time_usec(const RestSnapshot *s)
{
    return s ? s->time_usec : 0;
}

const json_t *rest_snapshot_document(const RestSnapshot *s, RestDoc d)
{
    return s && d >= 0 && d < _REST_DOC_MAX ? s->doc[d] : NULL;
}

/* ---- routing helpers -------------------------------------------------------- */

/* Patroni's self.path.lstrip('/').split('/')[0]. */
static const char *first_segment(const char *path, size_t *ret_len)
{
    while (*path == '/') {
        path++;
    }
    *ret_len = strcspn(path, "/");
    return path;
}

static bool segment_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncmp(a, b, alen) == 0;
}

const RestHandler *rest_handler_lookup(const RestHandler *table, size_t n, const char *method,
                                       const char *path, bool *ret_path_known)
{
    bool known = false;
    const RestHandler *found = NULL;
    if (table && method && path) {
        size_t len;
        const char *seg = first_segment(path, &len);
        for (size_t i = 0; i < n && !found; i++) {
            size_t hlen;
            const char *hseg = first_segment(table[i].path, &hlen);
            if (!segment_equal(seg, len, hseg, hlen)) {
                continue;
            }
            known = true;
            if (strcmp(table[i].method, method) == 0) {
                found = &table[i];
            }
        }
    }
    if (ret_path_known) {
        *ret_path_known = known;
    }
    return found;
}

/* Compares a given string with the secret one; the time depends on the
 * length of the given string only. */
static bool ct_equal(const char *secret, const char *given)
{
    size_t slen = strlen(secret), glen = strlen(given);
    unsigned char diff = slen != glen;
    for (size_t i = 0; i < glen; i++) {
        unsigned char c = slen > 0 ? (unsigned char)secret[i % slen] : 0;
        diff |= c ^ (unsigned char)given[i];
    }
    return diff == 0;
}

bool rest_auth_check(const char *want_user, const char *want_password, const char *user,
                     const char *password)
{
    if (!want_user) {
        return true;
    }
    if (!user || !password) {
        return false;
    }
    /* Both comparisons always run. */
    bool u = ct_equal(want_user, user);
    bool p = ct_equal(strempty(want_password), password);
    return u & p;
}

int rest_parse_listen(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len,
                      RestError *reterr)
{
    if (!listen || !ret || !ret_len) {
        rest_error_set(reterr, "no listen address");
        return -EINVAL;
    }
    size_t len = strlen(listen);
    if (len >= REST_LISTEN_MAX) {
        rest_error_set(reterr, "listen address is too long");
        return -EINVAL;
    }
    char host[REST_LISTEN_MAX];
    const char *port;
    bool bracketed = listen[0] == '[';
    if (bracketed) {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':') {
            rest_error_set(reterr, "invalid listen address \"%s\": expected [ADDRESS]:PORT",
                           listen);
            return -EINVAL;
        }
        size_t hlen = (size_t)(end - listen - 1);
        memcpy(host, listen + 1, hlen);
        host[hlen] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon) {
            rest_error_set(reterr, "invalid listen address \"%s\": expected HOST:PORT", listen);
            return -EINVAL;
        }
        size_t hlen = (size_t)(colon - listen);
        memcpy(host, listen, hlen);
        host[hlen] = '\0';
        if (strchr(host, ':')) {
            rest_error_set(reterr, "invalid listen address \"%s\": put an IPv6 address in []",
                           listen);
            return -EINVAL;
        }
        port = colon + 1;
    }
    char *endp = NULL;
    errno = 0;
    unsigned long p = strtoul(port, &endp, 10);
    if (port[0] < '0' || port[0] > '9' || errno != 0 || *endp != '\0' || p > 65535) {
        rest_error_set(reterr, "invalid port in listen address \"%s\"", listen);
        return -EINVAL;
    }

    bool any = host[0] == '\0' || strcmp(host, "*") == 0;
    struct addrinfo hints = {
        .ai_family = any ? AF_INET : AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV | (bracketed ? AI_NUMERICHOST : 0),
    };
    struct addrinfo *res = NULL;
    int k = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (k != 0 || !res) {
        rest_error_set(reterr, "cannot resolve listen address \"%s\": %s", listen,
                       k != 0 ? gai_strerror(k) : "no address");
        return -EINVAL;
    }
    if (res->ai_addrlen > sizeof(*ret)) {
        freeaddrinfo(res);
        rest_error_set(reterr, "unsupported listen address \"%s\"", listen);
        return -EINVAL;
    }
    memset(ret, 0, sizeof(*ret));
    memcpy(ret, res->ai_addr, res->ai_addrlen);
    *ret_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* ---- the server ------------------------------------------------------------- */

struct RestServer {
    struct MHD_Daemon *daemon; /* owned */
    pthread_mutex_t lock;      /* guards current and startup_error */
    bool lock_ready;
    RestSnapshot *current;                   /* owned reference; NULL before the first publish */
    RestHandler handlers[REST_HANDLERS_MAX]; /* method and path owned, userdata borrowed */
    size_t n_handlers;
    char *username;       /* owned */
    char *password;       /* owned */
    char *cert_pem;       /* owned */
    char *key_pem;        /* owned */
    char *key_password;   /* owned */
    char *trust_pem;      /* owned */
    char **extra_headers; /* owned: name, value, ... */
    size_t n_extra_headers;
    bool tls;
    RestVerifyClient verify_client;
    bool allowlist_on;  /* allowlist or allowlist_include_members configured */
    bool allow_members; /* allowlist_include_members */
    RestNet *allow;     /* owned: restapi.allowlist, host names resolved */
    size_t n_allow;
    RestNet *members; /* owned: the members' api_url hosts; guarded by lock */
    size_t n_members;
    bool starting; /* MHD's log messages go to startup_error */
    char startup_error[REST_ERROR_MESSAGE_MAX];

    RestPending *pending;              /* deferred requests not answered yet; guarded by lock */
    atomic_uint suspended_connections; /* suspended, not yet resumed and answered */

    /* Requests waiting for a fresh snapshot (max_age_usec). A lock of their
     * own: MHD_resume_connection() may log, and the logger takes lock. */
    uint64_t max_age_usec;
    uint64_t refresh_wait_usec;
    int refresh_fd;                         /* owned eventfd; -1 without max_age_usec */
    atomic_bool refresh_asked;              /* refresh_fd written and not yet acknowledged */
    atomic_uint_fast64_t current_time_usec; /* current->time_usec; 0: none */
    atomic_uint_fast64_t last_read_usec;
    pthread_mutex_t wait_lock; /* guards the list, wait_stop and the requests' waiting */
    pthread_cond_t wait_cond;  /* wakes the deadline thread (CLOCK_MONOTONIC) */
    bool wait_ready;
    struct RestRequest *wait_head, *wait_tail; /* borrowed: earliest deadline first */
    bool wait_stop;
    pthread_t wait_thread;
    bool wait_thread_started;

    /* The header deadline: NOTIFY_CLOSED disarms a connection before MHD
     * closes its socket. */
    uint64_t header_deadline_usec;
    uint64_t keepalive_deadline_usec;
    RestDeadlines deadlines;

    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t status_class[REST_STATUS_CLASSES];
    atomic_uint_fast64_t body_too_large;
    atomic_uint_fast64_t auth_failed;
};

/* One HTTP request, from its request line to MHD's completion callback. */
typedef struct RestRequest {
    char *target;      /* owned: the raw request target, cut at '?' */
    const char *path;  /* borrowed: into target */
    const char *query; /* borrowed: into target, "" when none */
    bool started;
    const RestHandler *handler; /* borrowed from the server */
    unsigned early_status;      /* an error decided before the body was read */
    bool early_allow;           /* a 405: send an Allow header */
    char early_message[REST_ERROR_MESSAGE_MAX];
    char *user; /* owned: the authenticated user */
    char *body; /* owned: up to REST_BODY_MAX bytes */
    size_t body_len;
    size_t body_seen;     /* bytes received, kept or not */
    RestPending *pending; /* owned reference: the handler deferred its reply */
    bool waited;          /* it waited for a fresh snapshot once: now answer from what is there */
    bool wait_counted;    /* counted in suspended_connections until served */
    bool waiting;         /* in the server's wait list, suspended; guarded by wait_lock */
    uint64_t wait_deadline_usec;
    struct MHD_Connection *conn; /* borrowed, while waiting */
    struct RestRequest *wait_prev, *wait_next;
} RestRequest;

/* One TCP connection, from MHD's NOTIFY_STARTED to its NOTIFY_CLOSED: what
 * a request allocates hangs off it and is freed at the latest when the
 * connection closes. MHD 0.9.75 does not call the completion callback of a
 * request whose target it failed to parse (too many arguments for the
 * connection's memory): per-request state would leak. */
typedef struct RestConn {
    RestDeadlineEntry deadline; /* its fd borrowed from MHD: open until NOTIFY_CLOSED returns */
    RestRequest req;            /* the current request; reset for each */
} RestConn;

/* A deferred reply. Two references: the request's (dropped when MHD is done
 * with the connection) and the handler's (dropped by rest_pending_reply). */
struct RestPending {
    atomic_uint n_ref;
    pthread_mutex_t lock; /* guards suspended, replied, reply */
    RestServer *server;   /* borrowed; only touched before the reply */
    struct MHD_Connection *conn;
    bool suspended; /* the handler returned and the connection waits */
    bool replied;
    RestReply reply;
    bool linked; /* in server->pending; guarded by the server's lock */
    RestPending *prev, *next;
};

struct RestCallContext {
    RestServer *server;
    struct MHD_Connection *conn;
    RestRequest *req;
};

static void reply_done(RestReply *r)
{
    json_decref(r->json);
    free(r->text);
    *r = (RestReply){ 0 };
}

static void pending_unref(RestPending *p)
{
    if (p && atomic_fetch_sub_explicit(&p->n_ref, 1, memory_order_acq_rel) == 1) {
        reply_done(&p->reply);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
}

static void pending_unlink_locked(RestServer *s, RestPending *p)
{
    if (!p->linked) {
        return;
    }
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        s->pending = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    }
    p->prev = p->next = NULL;
    p->linked = false;
}

/* Stores the reply (the first one wins) and wakes the connection. Does not
 * drop a reference. */
static void pending_complete(RestPending *p, RestReply *reply)
{
    pthread_mutex_lock(&p->lock);
    if (p->replied) {
        pthread_mutex_unlock(&p->lock);
        reply_done(reply);
        return;
    }
    RestServer *s = p->server;
    p->reply = *reply;
    *reply = (RestReply){ 0 };
    p->replied = true;
    if (p->suspended) {
        MHD_resume_connection(p->conn);
    }
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_lock(&s->lock);
    pending_unlink_locked(s, p);
    pthread_mutex_unlock(&s->lock);
}

RestPending *rest_call_defer(const RestCall *call)
{
    RestCallContext *ctx = call ? call->context : NULL;
    if (!ctx || ctx->req->pending) {
        return NULL;
    }
    RestPending *p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return NULL;
    }
    atomic_init(&p->n_ref, 2);
    p->server = ctx->server;
    p->conn = ctx->conn;
    pthread_mutex_lock(&ctx->server->lock);
    p->next = ctx->server->pending;
    if (p->next) {
        p->next->prev = p;
    }
    ctx->server->pending = p;
    p->linked = true;
    pthread_mutex_unlock(&ctx->server->lock);
    ctx->req->pending = p;
    return p;
}

void rest_pending_reply(RestPending *p, RestReply *reply)
{
    if (!p) {
        if (reply) {
            reply_done(reply);
        }
        return;
    }
    RestReply empty = { .status = MHD_HTTP_INTERNAL_SERVER_ERROR };
    pending_complete(p, reply ? reply : &empty);
    pending_unref(p);
}

int rest_reply_message(RestReply *reply, unsigned status, const char *message)
{
    *reply = (RestReply){ .status = status };
    if (status >= 200 && status < 300) {
        reply->text = strdup(strempty(message));
        return reply->text ? 0 : -ENOMEM;
    }
    reply->json = json_pack("{s:s}", "error", strempty(message));
    return reply->json ? 0 : -ENOMEM;
}

void rest_pending_reply_message(RestPending *p, unsigned status, const char *message)
{
    RestReply r;
    if (rest_reply_message(&r, status, message) < 0) {
        r = (RestReply){ .status = MHD_HTTP_INTERNAL_SERVER_ERROR };
    }
    rest_pending_reply(p, &r);
}

/* Frees what the request holds; it is then ready for the next one. */
static void request_reset(RestRequest *r)
{
    free(r->target);
    free(r->user);
    free(r->body);
    pending_unref(r->pending);
    *r = (RestRequest){ 0 };
}

static void request_fail_early(RestRequest *r, unsigned status, const char *fmt, ...)
    _printf_(3, 4);
static void request_fail_early(RestRequest *r, unsigned status, const char *fmt, ...)
{
    if (r->early_status) {
        return; /* the first reason wins (401 before 413) */
    }
    r->early_status = status;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(r->early_message, sizeof(r->early_message), fmt, ap);
    va_end(ap);
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

static RestSnapshot *server_current(RestServer *s)
{
    pthread_mutex_lock(&s->lock);
    RestSnapshot *snap = rest_snapshot_ref(s->current);
    pthread_mutex_unlock(&s->lock);
    return snap;
}

static void snapshot_unrefp(RestSnapshot **p)
{
    *p = rest_snapshot_unref(*p);
}

static void count_reply(RestServer *s, unsigned status)
{
    unsigned cls = status / 100;
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->status_class[cls < REST_STATUS_CLASSES ? cls : 0], 1,
                              memory_order_relaxed);
    if (status == MHD_HTTP_CONTENT_TOO_LARGE) {
        atomic_fetch_add_explicit(&s->body_too_large, 1, memory_order_relaxed);
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        atomic_fetch_add_explicit(&s->auth_failed, 1, memory_order_relaxed);
    }
}

/* Queues resp (consumed) and counts it. A NULL resp (out of memory) closes
 * the connection. */
static enum MHD_Result queue(RestServer *s, struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *resp)
{
    if (!resp) {
        return MHD_NO;
    }
    for (size_t i = 0; i < s->n_extra_headers; i++) {
        (void)MHD_add_response_header(resp, s->extra_headers[2 * i], s->extra_headers[2 * i + 1]);
    }
    enum MHD_Result k = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    if (k == MHD_YES) {
        count_reply(s, status);
    }
    return k;
}

/* Status line and automatic headers only: Patroni's _write_status_code_only. */
static enum MHD_Result reply_code_only(RestServer *s, struct MHD_Connection *c, unsigned status)
{
    return queue(s, c, status, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

static enum MHD_Result reply_malloced(RestServer *s, struct MHD_Connection *c, unsigned status,
                                      char *body, const char *content_type)
{
    if (!body) {
        return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (content_type) {
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    return queue(s, c, status, r);
}

static char *json_error_text(const char *message)
{
    _cleanup_(json_decrefp) json_t *o = json_pack("{s:s}", "error", message);
    return o ? json_dumps(o, REST_JSON_FLAGS) : NULL;
}

/* Every error reply: {"error": message}. allow: the Allow header of a 405. */
static enum MHD_Result reply_error(RestServer *s, struct MHD_Connection *c, unsigned status,
                                   const char *message, const char *allow)
{
    char *text = json_error_text(message);
    if (!text) {
        return MHD_NO;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, REST_CONTENT_JSON);
    if (status == MHD_HTTP_UNAUTHORIZED) {
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                      "Basic realm=\"" REST_AUTH_REALM "\"");
    }
    if (allow) {
        (void)MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    }
    return queue(s, c, status, r);
}

static void snapshot_release_cb(void *cls)
{
    (void)rest_snapshot_unref(cls);
}

/* A body that lives in snap: the response holds a reference until MHD is
 * done with it. */
static enum MHD_Result reply_from_snapshot(RestServer *s, struct MHD_Connection *c, unsigned status,
                                           RestSnapshot *snap, const char *text, size_t len,
                                           const char *content_type)
{
    RestSnapshot *ref = rest_snapshot_ref(snap);
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        len, (void *)text, snapshot_release_cb, ref);
    if (!r) {
        rest_snapshot_unref(ref);
        return MHD_NO;
    }
    (void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return queue(s, c, status, r);
}

static void build_allow(const RestServer *s, const char *path, char *buf, size_t size)
{
    size_t len;
    const char *seg = first_segment(path, &len);
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->n_handlers; i++) {
        size_t hlen;
        const char *hseg = first_segment(s->handlers[i].path, &hlen);
        if (!segment_equal(seg, len, hseg, hlen)) {
            continue;
        }
        int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", s->handlers[i].method);
        if (n < 0 || (size_t)n >= size - used) {
            buf[used] = '\0';
            return;
        }
        used += (size_t)n;
    }
}

/* GET of a path Patroni serves with its own handler (not a health check). */
static enum MHD_Result serve_document(RestServer *s, struct MHD_Connection *c, RestRequest *req,
                                      RestSnapshot *snap)
{
    size_t len;
    const char *seg = first_segment(req->path, &len);
    char name[16];
    if (len >= sizeof(name)) {
        return reply_error(s, c, MHD_HTTP_NOT_FOUND, "not found", NULL);
    }
    memcpy(name, seg, len);
    name[len] = '\0';

    RestDoc d = rest_doc_from_string(name);
    if (d >= 0) {
        if (!snap->text[d]) {
            return reply_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, REST_ERR_NOT_READY, NULL);
        }
        return reply_from_snapshot(s, c, MHD_HTTP_OK, snap, snap->text[d], snap->text_len[d],
                                   REST_CONTENT_JSON);
    }
    if (strcmp(name, "metrics") == 0) {
        if (!snap->metrics) {
            return reply_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, REST_ERR_NOT_READY, NULL);
        }
        return reply_from_snapshot(s, c, MHD_HTTP_OK, snap, snap->metrics, snap->metrics_len,
                                   REST_CONTENT_PROM);
    }
    if (strcmp(name, "failsafe") == 0) {
        /* Patroni: 502 when failsafe_mode is off, which is all we support. */
        return reply_error(s, c, MHD_HTTP_BAD_GATEWAY, "failsafe mode is not enabled", NULL);
    }
    return reply_error(s, c, MHD_HTTP_NOT_FOUND, "not found", NULL);
}

/* ---- waiting for a fresh snapshot ------------------------------------------ */

static void wait_unlink_locked(RestServer *s, RestRequest *r)
{
    if (r->wait_prev) {
        r->wait_prev->wait_next = r->wait_next;
    } else {
        s->wait_head = r->wait_next;
    }
    if (r->wait_next) {
        r->wait_next->wait_prev = r->wait_prev;
    } else {
        s->wait_tail = r->wait_prev;
    }
    r->wait_prev = r->wait_next = NULL;
    r->waiting = false;
}

/* MHD calls on_request again for it, which answers from the snapshot of
 * that moment. */
static void wait_resume_locked(RestServer *s, RestRequest *r)
{
    struct MHD_Connection *c = r->conn;
    wait_unlink_locked(s, r);
    MHD_resume_connection(c);
}

/* A snapshot older than max_age_usec (or none yet: that is answered at
 * once): suspend the request until the next publish or its deadline, and
 * ask the publisher once. Returns true when the request now waits. */
static bool wait_for_fresh(RestServer *s, struct MHD_Connection *c, RestRequest *req, uint64_t now)
{
    pthread_mutex_lock(&s->wait_lock);
    uint64_t t = atomic_load(&s->current_time_usec);
    if (t == 0 || t + s->max_age_usec >= now || s->wait_stop) {
        pthread_mutex_unlock(&s->wait_lock);
        return false;
    }
    req->waited = true;
    req->waiting = true;
    req->wait_counted = true;
    req->conn = c;
    req->wait_deadline_usec = now + s->refresh_wait_usec; /* the same wait for all: FIFO order */
    req->wait_prev = s->wait_tail;
    req->wait_next = NULL;
    if (s->wait_tail) {
        s->wait_tail->wait_next = req;
    } else {
        s->wait_head = req;
        pthread_cond_signal(&s->wait_cond); /* the deadline thread sleeps without one */
    }
    s->wait_tail = req;
    atomic_fetch_add(&s->suspended_connections, 1);
    MHD_suspend_connection(c);
    pthread_mutex_unlock(&s->wait_lock);
    if (!atomic_exchange(&s->refresh_asked, true)) {
        uint64_t one = 1;
        (void)!write(s->refresh_fd, &one, sizeof(one));
    }
    return true;
}

/* Answers the requests whose deadline passed (from the older snapshot).
 * Sleeps without a deadline while nothing waits. */
static void *wait_main(void *userdata)
{
    RestServer *s = userdata;
    pthread_mutex_lock(&s->wait_lock);
    while (!s->wait_stop) {
        if (!s->wait_head) {
            pthread_cond_wait(&s->wait_cond, &s->wait_lock);
            continue;
        }
        uint64_t now = clock_monotonic_usec();
        uint64_t due = s->wait_head->wait_deadline_usec;
        if (due > now) {
            struct timespec ts = { .tv_sec = (time_t)(due / 1000000ULL),
                                   .tv_nsec = (long)(due % 1000000ULL) * 1000L };
            (void)pthread_cond_timedwait(&s->wait_cond, &s->wait_lock, &ts);
            continue;
        }
        while (s->wait_head && s->wait_head->wait_deadline_usec <= now) {
            log_debug("REST API: no fresh snapshot within %" PRIu64 " ms, answering from the last",
                      s->refresh_wait_usec / 1000);
            wait_resume_locked(s, s->wait_head);
        }
    }
    pthread_mutex_unlock(&s->wait_lock);
    return NULL;
}

static void wait_resume_all(RestServer *s)
{
    if (!s->wait_ready) {
        return;
    }
    pthread_mutex_lock(&s->wait_lock);
    while (s->wait_head) {
        wait_resume_locked(s, s->wait_head);
    }
    pthread_mutex_unlock(&s->wait_lock);
}

int rest_server_refresh_fd(const RestServer *s)
{
    return s ? s->refresh_fd : -1;
}

void rest_server_refresh_ack(RestServer *s)
{
    if (!s || s->refresh_fd < 0) {
        return;
    }
    uint64_t n;
    (void)!read(s->refresh_fd, &n, sizeof(n));
    atomic_store(&s->refresh_asked, false);
}

void rest_server_expire(RestServer *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->current) {
        atomic_store(&s->current_time_usec, 1);
    }
    pthread_mutex_unlock(&s->lock);
}

uint64_t rest_server_published_usec(const RestServer *s)
{
    return s ? atomic_load(&((RestServer *)s)->current_time_usec) : 0;
}

uint64_t rest_server_last_read_usec(const RestServer *s)
{
    return s ? atomic_load_explicit(&((RestServer *)s)->last_read_usec, memory_order_relaxed) : 0;
}

/* ---- connections and the header deadline ----------------------------------- */

static RestConn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The headers of rc's next request are due at deadline_usec. */
static void conn_arm(RestServer *s, RestConn *rc, uint64_t deadline_usec)
{
    rest_deadlines_arm(&s->deadlines, &rc->deadline, deadline_usec);
}

/* The request's headers are in: no deadline until the next request. */
static void conn_disarm(RestServer *s, RestConn *rc)
{
    if (rc) {
        rest_deadlines_disarm(&s->deadlines, &rc->deadline);
    }
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    RestServer *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        RestConn *rc = calloc(1, sizeof(*rc));
        *socket_context = rc;
        if (!rc) {
            return; /* on_uri finds none: MHD closes the connection */
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        rc->deadline.fd = ci ? ci->connect_fd : -1;
        conn_arm(s, rc, clock_monotonic_usec() + s->header_deadline_usec);
        return;
    }
    RestConn *rc = *socket_context;
    *socket_context = NULL;
    if (!rc) {
        return;
    }
    conn_disarm(s, rc);
    if (rc->req.wait_counted) {
        atomic_fetch_sub(&s->suspended_connections, 1);
    }
    request_reset(&rc->req);
    free(rc);
}

/* GET, HEAD or OPTIONS without a registered handler. */
static enum MHD_Result serve_read(RestServer *s, struct MHD_Connection *c, RestRequest *req,
                                  HealthMethod method)
{
    if (req->wait_counted) {
        req->wait_counted = false; /* resumed */
        atomic_fetch_sub(&s->suspended_connections, 1);
    }
    if (s->max_age_usec) {
        uint64_t now = clock_monotonic_usec();
        atomic_store_explicit(&s->last_read_usec, now, memory_order_relaxed);
        if (!req->waited && wait_for_fresh(s, c, req, now)) {
            return MHD_YES;
        }
    }
    _cleanup_(snapshot_unrefp) RestSnapshot *snap = server_current(s);
    if (!snap) {
        if (method != HEALTH_METHOD_GET) {
            return reply_code_only(s, c, MHD_HTTP_SERVICE_UNAVAILABLE);
        }
        return reply_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, REST_ERR_NOT_READY, NULL);
    }

    /* The decision is made now, not when the snapshot was taken: liveness
     * must see a stuck agent loop, and a lease must run out on time. */
    HealthNode node = snap->node;
    node.now_usec = clock_monotonic_usec();
    if (snap->leader_deadline_usec != 0 && node.now_usec >= snap->leader_deadline_usec) {
        node.is_leader = false;
    }
    HealthResult res;
    int r = health_check(&node, method, req->path, req->query, &res);
    if (r == -EOPNOTSUPP) {
        return serve_document(s, c, req, snap);
    }
    if (r < 0) {
        log_debug("health check of \"%s\" failed: %s", req->path, strerror(-r));
        return reply_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "health check failed", NULL);
    }
    if (res.reply == HEALTH_REPLY_CODE_ONLY) {
        return reply_code_only(s, c, (unsigned)res.status);
    }
    if (snap->text[REST_DOC_PATRONI]) {
        return reply_from_snapshot(s, c, (unsigned)res.status, snap, snap->text[REST_DOC_PATRONI],
                                   snap->text_len[REST_DOC_PATRONI], REST_CONTENT_JSON);
    }
    return reply_from_snapshot(s, c, (unsigned)res.status, snap, snap->fallback, snap->fallback_len,
                               REST_CONTENT_JSON);
}

static enum MHD_Result send_reply(RestServer *s, struct MHD_Connection *c, const char *method,
                                  const char *path, int r, RestReply *reply);
static enum MHD_Result send_pending_reply(RestServer *s, struct MHD_Connection *c, RestPending *p);

static enum MHD_Result serve_handler(RestServer *s, struct MHD_Connection *c, RestRequest *req,
                                     const char *method)
{
    const RestHandler *h = req->handler;
    _cleanup_(json_decrefp) json_t *body = NULL;
    /* A GET or HEAD handler never needs a body. */
    bool optional = (h->flags & REST_HANDLER_BODY_OPTIONAL) || strcmp(method, "GET") == 0 ||
                    strcmp(method, "HEAD") == 0;
    if (req->body_len == 0) {
        if (!optional) {
            return reply_error(s, c, MHD_HTTP_BAD_REQUEST, "a JSON request body is required", NULL);
        }
    } else {
        json_error_t jerr;
        body = json_loadb(req->body, req->body_len, 0, &jerr);
        if (!body) {
            char msg[REST_ERROR_MESSAGE_MAX];
            (void)snprintf(msg, sizeof(msg), "malformed JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
            return reply_error(s, c, MHD_HTTP_BAD_REQUEST, msg, NULL);
        }
        if (!json_is_object(body)) {
            return reply_error(s, c, MHD_HTTP_BAD_REQUEST, "the request body must be a JSON object",
                               NULL);
        }
    }

    _cleanup_(snapshot_unrefp) RestSnapshot *snap = server_current(s);
    RestCall call = {
        .method = method,
        .path = req->path,
        .query = req->query,
        .body = body,
        .snapshot = snap,
        .user = req->user,
    };
    RestCallContext ctx = { .server = s, .conn = c, .req = req };
    call.context = &ctx;
    RestReply reply = { 0 };
    int r = h->fn(&call, &reply, h->userdata);
    if (r == REST_DEFERRED) {
        reply_done(&reply);
        RestPending *p = req->pending;
        if (!p) {
            log_debug("handler for %s %s deferred without a pending request", method, req->path);
            return reply_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
        }
        pthread_mutex_lock(&p->lock);
        if (!p->replied) {
            /* rest_pending_reply() resumes it; MHD then calls on_request again */
            p->suspended = true;
            atomic_fetch_add(&s->suspended_connections, 1);
            MHD_suspend_connection(c);
            pthread_mutex_unlock(&p->lock);
            return MHD_YES;
        }
        pthread_mutex_unlock(&p->lock);
        return send_pending_reply(s, c, p);
    }
    return send_reply(s, c, method, req->path, r, &reply);
}

/* Queues a handler's reply, consuming its json/text. */
static enum MHD_Result send_reply(RestServer *s, struct MHD_Connection *c, const char *method,
                                  const char *path, int r, RestReply *reply)
{
    _cleanup_(json_decrefp) json_t *rjson = TAKE_PTR(reply->json);
    _cleanup_free_ char *rtext = TAKE_PTR(reply->text);
    if (r < 0 || reply->status < 100 || reply->status > 599) {
        log_debug("handler for %s %s failed: %s", method, path,
                  r < 0 ? strerror(-r) : "invalid status");
        return reply_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error", NULL);
    }
    if (rjson) {
        unsigned status = reply->status;
        if (status >= 400 && json_is_object(rjson) && json_object_get(rjson, "error")) {
            const char *msg = json_string_value(json_object_get(rjson, "error"));
            return reply_error(s, c, status, strna(msg), NULL);
        }
        return reply_malloced(s, c, status, json_dumps(rjson, REST_JSON_FLAGS),
                              reply->content_type ? reply->content_type : REST_CONTENT_JSON);
    }
    if (rtext) {
        return reply_malloced(s, c, reply->status, TAKE_PTR(rtext),
                              reply->content_type ? reply->content_type : REST_CONTENT_TEXT);
    }
    return reply_code_only(s, c, reply->status);
}

/* The connection of a deferred request, resumed: its reply is there. */
static enum MHD_Result send_pending_reply(RestServer *s, struct MHD_Connection *c, RestPending *p)
{
    pthread_mutex_lock(&p->lock);
    RestReply reply = p->reply;
    p->reply = (RestReply){ 0 };
    if (p->suspended) {
        p->suspended = false;
        atomic_fetch_sub(&s->suspended_connections, 1);
    }
    pthread_mutex_unlock(&p->lock);
    return send_reply(s, c, "deferred", "request", 0, &reply);
}

static enum MHD_Result reply_early(RestServer *s, struct MHD_Connection *c, RestRequest *req)
{
    char allow[REST_ALLOW_MAX] = "";
    if (req->early_allow) {
        build_allow(s, req->path, allow, sizeof(allow));
    }
    return reply_error(s, c, req->early_status, req->early_message,
                       req->early_allow ? allow : NULL);
}

static void check_auth(RestServer *s, struct MHD_Connection *c, RestRequest *req)
{
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &password);
    if (!user) {
        request_fail_early(req, MHD_HTTP_UNAUTHORIZED, "no auth header received");
    } else if (!rest_auth_check(s->username, s->password, user, password)) {
        request_fail_early(req, MHD_HTTP_UNAUTHORIZED, "not authenticated");
    } else {
        req->user = strdup(user);
        if (!req->user) {
            request_fail_early(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        }
    }
    if (password) {
        explicit_bzero(password, strlen(password));
        MHD_free(password);
    }
    if (user) {
        MHD_free(user);
    }
}

/* What Patroni's TLS context (verify_mode CERT_OPTIONAL or CERT_REQUIRED)
 * refuses at the handshake is refused here, for every request: a client
 * certificate that does not verify against the trusted CAs, and with
 * required none at all. Returns whether a valid certificate was presented. */
static bool check_client_cert(RestServer *s, struct MHD_Connection *c, RestRequest *req)
{
    if (!s->tls || s->verify_client == REST_VERIFY_CLIENT_NONE) {
        return false;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned n = 0;
    if (!session || !gnutls_certificate_get_peers(session, &n) || n == 0) {
        if (s->verify_client == REST_VERIFY_CLIENT_REQUIRED) {
            request_fail_early(req, MHD_HTTP_FORBIDDEN, "client certificate required");
        }
        return false;
    }
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) < 0 || status != 0) {
        request_fail_early(req, MHD_HTTP_FORBIDDEN, "client certificate not valid");
        return false;
    }
    return true;
}

/* The client's address is in restapi.allowlist or, with
 * allowlist_include_members, is a member's api_url host. */
static bool client_allowed(RestServer *s, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    RestNet a;
    if (!ci || !rest_net_of_sockaddr(ci->client_addr, &a)) {
        return false;
    }
    if (rest_nets_contain(s->allow, s->n_allow, &a)) {
        return true;
    }
    if (!s->allow_members) {
        return false;
    }
    pthread_mutex_lock(&s->lock);
    bool member = rest_nets_contain(s->members, s->n_members, &a);
    pthread_mutex_unlock(&s->lock);
    return member;
}

/* The first call, headers read: decide everything that does not need the
 * body. Errors are answered once the body has been read (so the client is
 * not reset mid-upload), unless the announced body is too large to read. */
static enum MHD_Result request_start(RestServer *s, struct MHD_Connection *c, RestRequest *req,
                                     const char *method)
{
    bool path_known;
    req->handler = rest_handler_lookup(s->handlers, s->n_handlers, method, req->path, &path_known);
    bool cert_valid = check_client_cert(s, c, req);
    if (req->handler) {
        if (req->handler->flags & REST_HANDLER_MUTATING) {
            /* Patroni's check_access, in its order */
            if (s->allowlist_on && !client_allowed(s, c)) {
                request_fail_early(req, MHD_HTTP_FORBIDDEN, "Access is denied");
            }
            if (s->verify_client != REST_VERIFY_CLIENT_NONE && !cert_valid) {
                request_fail_early(req, MHD_HTTP_FORBIDDEN, "client certificate required");
            }
            if (s->username) {
                check_auth(s, c, req);
            }
        }
    } else if (health_method_from_string(method) < 0) {
        if (path_known) {
            req->early_allow = true;
            request_fail_early(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s is not allowed",
                               method);
        } else {
            /* Patroni answers 501 "Unsupported method" here; a bad request
             * gets a 4xx from us (the brief): nothing handles this path. */
            request_fail_early(req, MHD_HTTP_NOT_FOUND, "no handler for %s %s", method, req->path);
        }
    }

    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        bool huge = errno != 0 || n > REST_BODY_DISCARD_MAX;
        if (req->handler && (huge || n > REST_BODY_MAX)) {
            request_fail_early(req, MHD_HTTP_CONTENT_TOO_LARGE,
                               "request body too large (limit %d bytes)", REST_BODY_MAX);
        }
        /* Not worth reading: answer now, MHD closes the connection after it. */
        if (huge && req->early_status) {
            return reply_early(s, c, req);
        }
    }
    return MHD_YES;
}

static enum MHD_Result request_body(RestRequest *req, const char *data, size_t size)
{
    req->body_seen += size;
    if (req->body_seen > REST_BODY_DISCARD_MAX) {
        log_debug("request body over %d bytes, closing the connection", REST_BODY_DISCARD_MAX);
        return MHD_NO;
    }
    if (!req->handler || req->early_status) {
        return MHD_YES; /* discarded */
    }
    if (req->body_len + size > REST_BODY_MAX) {
        request_fail_early(req, MHD_HTTP_CONTENT_TOO_LARGE,
                           "request body too large (limit %d bytes)", REST_BODY_MAX);
        return MHD_YES;
    }
    char *b = realloc(req->body, req->body_len + size);
    if (!b) {
        request_fail_early(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return MHD_YES;
    }
    memcpy(b + req->body_len, data, size);
    req->body = b;
    req->body_len += size;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    RestServer *s = cls;
    RestRequest *req = *con_cls;
    if (!req) {
        return MHD_NO; /* on_uri ran out of memory */
    }
    if (!req->started) {
        req->started = true;
        conn_disarm(s, conn_of(c));
        return request_start(s, c, req, method);
    }
    if (req->pending) {
        return send_pending_reply(s, c, req->pending); /* resumed */
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return request_body(req, upload_data, n);
    }
    if (req->early_status) {
        return reply_early(s, c, req);
    }
    if (req->handler) {
        return serve_handler(s, c, req, method);
    }
    return serve_read(s, c, req, health_method_from_string(method));
}

/* MHD's URI log callback: the only place that sees the raw request target
 * (the url argument of on_request is %-decoded and has lost the query). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    RestConn *rc = conn_of(c);
    if (!rc) {
        return NULL;
    }
    RestRequest *req = &rc->req;
    request_reset(req); /* one MHD dropped without completing it */
    req->target = strdup(uri ? uri : "/");
    if (!req->target) {
        return NULL;
    }
    char *q = strchr(req->target, '?');
    if (q) {
        *q = '\0';
    }
    req->path = req->target;
    /* An absolute-form target ("http://host/x"): the path is "/x", as
     * Python's urlparse() gives Patroni. */
    char *scheme_end = req->target[0] != '/' ? strstr(req->target, "://") : NULL;
    if (scheme_end) {
        char *slash = strchr(scheme_end + 3, '/');
        req->path = slash ? slash : "/";
    }
    req->query = q ? q + 1 : "";
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    RestServer *s = cls;
    RestRequest *req = *con_cls;
    *con_cls = NULL;
    if (req) {
        if (req->wait_counted) {
            /* resumed, but the client left before it was answered */
            atomic_fetch_sub(&s->suspended_connections, 1);
        }
        request_reset(req);
    }
    RestConn *rc = conn_of(c);
    if (rc && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* kept alive: the next request's headers are due within the idle timeout */
        conn_arm(s, rc, clock_monotonic_usec() + s->keepalive_deadline_usec);
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) _printf_(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    RestServer *s = cls;
    char msg[REST_ERROR_MESSAGE_MAX];
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.')) {
        msg[--n] = '\0';
    }
    pthread_mutex_lock(&s->lock);
    if (s->starting) {
        (void)snprintf(s->startup_error, sizeof(s->startup_error), "%s", msg);
    }
    pthread_mutex_unlock(&s->lock);
    log_debug("libmicrohttpd: %s", msg);
}

static int read_pem(const char *what, const char *path, char **ret, RestError *reterr)
{
    _cleanup_free_ char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        rest_error_set(reterr, "cannot open %s \"%s\": %s", what, path, strerror(errno));
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > REST_PEM_MAX) {
        (void)close(fd);
        rest_error_set(reterr, "%s \"%s\" is not a regular file of 1 to %d bytes", what, path,
                       REST_PEM_MAX);
        return -EINVAL;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int r = n < 0 ? -errno : -EIO;
            (void)close(fd);
            rest_error_set(reterr, "cannot read %s \"%s\": %s", what, path, strerror(-r));
            return r;
        }
        got += (size_t)n;
    }
    (void)close(fd);
    buf[size] = '\0';
    *ret = TAKE_PTR(buf);
    return 0;
}

static void free_secret(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

/* Answers every deferred request still waiting (503) and gives MHD's
 * threads a moment to send those replies: MHD must not be stopped with a
 * suspended connection. */
static void answer_pending(RestServer *s)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        RestPending *p = s->pending;
        if (p) {
            pending_unlink_locked(s, p);
            atomic_fetch_add_explicit(&p->n_ref, 1, memory_order_relaxed);
        }
        pthread_mutex_unlock(&s->lock);
        if (!p) {
            break;
        }
        RestReply r;
        if (rest_reply_message(&r, MHD_HTTP_SERVICE_UNAVAILABLE, "the agent is stopping") < 0) {
            r = (RestReply){ .status = MHD_HTTP_SERVICE_UNAVAILABLE };
        }
        pending_complete(p, &r);
        pending_unref(p);
    }
    for (unsigned i = 0; i < REST_STOP_WAIT_STEPS && atomic_load(&s->suspended_connections) > 0;
         i++) {
        (void)usleep(REST_STOP_WAIT_STEP_USEC);
    }
    if (atomic_load(&s->suspended_connections) > 0) {
        log_warning("REST API: %u suspended request(s) still unanswered at shutdown",
                    atomic_load(&s->suspended_connections));
    }
}

RestServer *rest_server_free(RestServer *s)
{
    if (!s) {
        return NULL;
    }
    if (s->wait_thread_started) {
        pthread_mutex_lock(&s->wait_lock);
        s->wait_stop = true;
        pthread_cond_signal(&s->wait_cond);
        pthread_mutex_unlock(&s->wait_lock);
        (void)pthread_join(s->wait_thread, NULL);
    }
    rest_deadlines_stop(&s->deadlines);
    if (s->daemon) {
        wait_resume_all(s); /* answered from the last snapshot */
        answer_pending(s);
        MHD_stop_daemon(s->daemon); /* every connection's NOTIFY_CLOSED disarms it */
    }
    rest_deadlines_done(&s->deadlines);
    if (s->wait_ready) {
        pthread_cond_destroy(&s->wait_cond);
        pthread_mutex_destroy(&s->wait_lock);
    }
    if (s->refresh_fd >= 0) {
        (void)close(s->refresh_fd);
    }
    s->current = rest_snapshot_unref(s->current);
    if (s->lock_ready) {
        pthread_mutex_destroy(&s->lock);
    }
    for (size_t i = 0; i < s->n_handlers; i++) {
        free((char *)s->handlers[i].method);
        free((char *)s->handlers[i].path);
    }
    free(s->username);
    free_secret(s->password);
    free(s->cert_pem);
    free_secret(s->key_pem);
    free_secret(s->key_password);
    free(s->trust_pem);
    for (size_t i = 0; i < 2 * s->n_extra_headers; i++) {
        free(s->extra_headers[i]);
    }
    free(s->extra_headers);
    free(s->allow);
    free(s->members);
    free(s);
    return NULL;
}

static void rest_server_freep(RestServer **p)
{
    *p = rest_server_free(*p);
}

static int copy_handlers(RestServer *s, const RestServerConfig *cfg, RestError *reterr)
{
    if (cfg->n_handlers > REST_HANDLERS_MAX || (cfg->n_handlers > 0 && !cfg->handlers)) {
        rest_error_set(reterr, "too many REST handlers (at most %d)", REST_HANDLERS_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->n_handlers; i++) {
        const RestHandler *h = &cfg->handlers[i];
        if (!h->method || !h->path || h->path[0] != '/' || !h->fn) {
            rest_error_set(reterr, "REST handler %zu lacks a method, a path or a function", i);
            return -EINVAL;
        }
        RestHandler *d = &s->handlers[s->n_handlers];
        *d = *h;
        d->method = strdup(h->method);
        d->path = strdup(h->path);
        s->n_handlers++;
        if (!d->method || !d->path) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* restapi.allowlist as networks; host names resolved now (Patroni resolves
 * them when it loads its config), every address they have. */
static int build_allowlist(RestServer *s, const RestServerConfig *cfg, RestError *reterr)
{
    if (cfg->n_allowlist > 0 && !cfg->allowlist) {
        return -EINVAL;
    }
    s->allow_members = cfg->allowlist_include_members;
    s->allowlist_on = cfg->n_allowlist > 0 || cfg->allowlist_include_members;
    if (cfg->n_allowlist == 0) {
        return 0;
    }
    s->allow = calloc(REST_ALLOWLIST_MAX, sizeof(*s->allow));
    if (!s->allow) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_allowlist; i++) {
        const char *e = cfg->allowlist[i];
        if (!e) {
            continue;
        }
        if (s->n_allow >= REST_ALLOWLIST_MAX) {
            rest_error_set(reterr, "restapi.allowlist has more than %d addresses",
                           REST_ALLOWLIST_MAX);
            return -EINVAL;
        }
        if (rest_net_parse(e, strlen(e), &s->allow[s->n_allow])) {
            s->n_allow++;
            continue;
        }
        if (strchr(e, '/')) {
            rest_error_set(reterr, "invalid network \"%s\" in restapi.allowlist", e);
            return -EINVAL;
        }
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
        struct addrinfo *res = NULL;
        int k = getaddrinfo(e, NULL, &hints, &res);
        if (k != 0) {
            log_warning("REST API: cannot resolve \"%s\" of restapi.allowlist: %s", e,
                        gai_strerror(k));
            continue;
        }
        for (struct addrinfo *ai = res; ai && s->n_allow < REST_ALLOWLIST_MAX; ai = ai->ai_next) {
            if (rest_net_of_sockaddr(ai->ai_addr, &s->allow[s->n_allow])) {
                s->n_allow++;
            }
        }
        freeaddrinfo(res);
    }
    return 0;
}

static int copy_string(const char *in, char **ret)
{
    if (!in) {
        *ret = NULL;
        return 0;
    }
    *ret = strdup(in);
    return *ret ? 0 : -ENOMEM;
}

static int wait_init(RestServer *s, const RestServerConfig *cfg)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        return -ENOMEM;
    }
    int e = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (e == 0) {
        e = pthread_cond_init(&s->wait_cond, &attr);
    }
    (void)pthread_condattr_destroy(&attr);
    if (e != 0) {
        return -e;
    }
    if (pthread_mutex_init(&s->wait_lock, NULL) != 0) {
        pthread_cond_destroy(&s->wait_cond);
        return -ENOMEM;
    }
    s->wait_ready = true;
    if (!cfg->max_age_usec) {
        return 0;
    }
    s->max_age_usec = cfg->max_age_usec;
    s->refresh_wait_usec =
        cfg->refresh_wait_usec ? cfg->refresh_wait_usec : REST_DEFAULT_REFRESH_WAIT_USEC;
    s->refresh_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->refresh_fd < 0) {
        return -errno;
    }
    e = pthread_create(&s->wait_thread, NULL, wait_main, s);
    if (e != 0) {
        return -e;
    }
    s->wait_thread_started = true;
    return 0;
}

static int conn_init(RestServer *s, const RestServerConfig *cfg, unsigned timeout_sec)
{
    s->header_deadline_usec =
        cfg->header_deadline_usec ? cfg->header_deadline_usec : REST_HEADER_DEADLINE_USEC;
    s->keepalive_deadline_usec = (uint64_t)timeout_sec * 1000000ULL;
    return rest_deadlines_init(&s->deadlines);
}

int rest_server_new(const RestServerConfig *cfg, RestServer **ret, RestError *reterr)
{
    if (!cfg || !ret) {
        rest_error_set(reterr, "no REST server configuration");
        return -EINVAL;
    }
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int r = rest_parse_listen(cfg->listen, &addr, &addr_len, reterr);
    if (r < 0) {
        return r;
    }
    if (cfg->username && !cfg->password) {
        rest_error_set(reterr, "REST API username given without a password");
        return -EINVAL;
    }
    if ((cfg->keyfile || cfg->cafile) && !cfg->certfile) {
        rest_error_set(reterr, "REST API keyfile or cafile given without a certfile");
        return -EINVAL;
    }
    if (cfg->threads > REST_THREADS_MAX) {
        rest_error_set(reterr, "too many REST API threads (at most %d)", REST_THREADS_MAX);
        return -EINVAL;
    }
    bool tls = cfg->certfile != NULL;
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        rest_error_set(reterr, "HTTPS requested but libmicrohttpd was built without TLS support");
        return -EOPNOTSUPP;
    }

    _cleanup_(rest_server_freep) RestServer *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->refresh_fd = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        return -ENOMEM;
    }
    s->lock_ready = true;
    r = wait_init(s, cfg);
    if (r < 0) {
        rest_error_set(reterr, "REST API: cannot set up waiting for fresh snapshots: %s",
                       strerror(-r));
        return r;
    }
    r = copy_handlers(s, cfg, reterr);
    if (r < 0) {
        return r;
    }
    if (cfg->verify_client < 0 || cfg->verify_client >= _REST_VERIFY_CLIENT_MAX) {
        rest_error_set(reterr, "invalid REST API verify_client");
        return -EINVAL;
    }
    s->tls = tls;
    s->verify_client = tls ? cfg->verify_client : REST_VERIFY_CLIENT_NONE;
    if (copy_string(cfg->username, &s->username) < 0 ||
        copy_string(cfg->username ? cfg->password : NULL, &s->password) < 0 ||
        copy_string(cfg->keyfile_password, &s->key_password) < 0) {
        return -ENOMEM;
    }
    if (cfg->n_extra_headers > 0) {
        s->extra_headers = calloc(2 * cfg->n_extra_headers, sizeof(char *));
        if (!s->extra_headers) {
            return -ENOMEM;
        }
        s->n_extra_headers = cfg->n_extra_headers;
        for (size_t i = 0; i < 2 * cfg->n_extra_headers; i++) {
            if (copy_string(cfg->extra_headers[i], &s->extra_headers[i]) < 0) {
                return -ENOMEM;
            }
        }
    }
    if (tls) {
        r = read_pem("certfile", cfg->certfile, &s->cert_pem, reterr);
        if (r < 0) {
            return r;
        }
        /* Without a keyfile the key is in the certfile, as Python's ssl allows. */
        r = read_pem("keyfile", cfg->keyfile ? cfg->keyfile : cfg->certfile, &s->key_pem, reterr);
        if (r < 0) {
            return r;
        }
        /* A certificate is asked for only when it is checked (Patroni's
         * CERT_NONE asks for none). */
        if (s->verify_client != REST_VERIFY_CLIENT_NONE) {
            r = read_pem("cafile", cfg->cafile ? cfg->cafile : REST_SYSTEM_CA_FILE, &s->trust_pem,
                         reterr);
            if (r < 0) {
                return r;
            }
        }
    }
    r = build_allowlist(s, cfg, reterr);
    if (r < 0) {
        return r;
    }

    unsigned threads = cfg->threads ? cfg->threads : REST_DEFAULT_THREADS;
    unsigned limit = cfg->connection_limit ? cfg->connection_limit : REST_DEFAULT_CONNECTION_LIMIT;
    unsigned per_ip =
        cfg->per_ip_connection_limit ? cfg->per_ip_connection_limit : REST_PER_IP_CONNECTION_LIMIT;
    unsigned timeout = cfg->connection_timeout_sec ? cfg->connection_timeout_sec
                                                   : REST_DEFAULT_CONNECTION_TIMEOUT_SEC;
    r = conn_init(s, cfg, timeout);
    if (r < 0) {
        rest_error_set(reterr, "REST API: cannot set up the header deadline: %s", strerror(-r));
        return r;
    }
    struct MHD_OptionItem opts[REST_MHD_OPTS_MAX];
    size_t n = 0;
#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){ (o), (intptr_t)(v), (void *)(p) })
    OPT(MHD_OPTION_EXTERNAL_LOGGER, &on_mhd_log, s); /* first, so it sees every message */
    OPT(MHD_OPTION_SOCK_ADDR, 0, &addr);
    OPT(MHD_OPTION_CONNECTION_LIMIT, limit, NULL);
    OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, timeout, NULL);
    OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REST_CONNECTION_MEMORY_LIMIT, NULL);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, &on_uri, s);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, &on_completed, s);
    OPT(MHD_OPTION_NOTIFY_CONNECTION, &on_connection, s);
    if (threads > 1) {
        OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    }
    if (tls) {
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem);
        if (s->key_password) {
            OPT(MHD_OPTION_HTTPS_KEY_PASSWORD, 0, s->key_password);
        }
        if (s->trust_pem) {
            OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, s->trust_pem);
        }
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (tls) {
        flags |= MHD_USE_TLS;
    }
    if (addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    s->starting = true;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, &on_request, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    int saved_errno = errno;
    pthread_mutex_lock(&s->lock);
    s->starting = false;
    pthread_mutex_unlock(&s->lock);
    if (!s->daemon) {
        rest_error_set(reterr, "cannot start the REST API on %s: %s", cfg->listen,
                       s->startup_error[0] ? s->startup_error : "libmicrohttpd failed");
        return saved_errno > 0 ? -saved_errno : -EIO;
    }
    log_debug("REST API listening on %s (%s, %u threads)", cfg->listen, tls ? "https" : "http",
              threads);
    *ret = TAKE_PTR(s);
    return 0;
}

void rest_server_publish(RestServer *s, RestSnapshot *snap)
{
    if (!s) {
        return;
    }
    rest_snapshot_seal(snap);
    RestSnapshot *ref = rest_snapshot_ref(snap);
    pthread_mutex_lock(&s->lock);
    RestSnapshot *old = s->current;
    s->current = ref;
    atomic_store(&s->current_time_usec, ref ? ref->time_usec : 0);
    pthread_mutex_unlock(&s->lock);
    (void)rest_snapshot_unref(old); /* outside the lock: it may free */
    wait_resume_all(s); /* after current_time_usec: wait_for_fresh() reads it under wait_lock */
}

int rest_server_set_member_urls(RestServer *s, const char *const *urls, size_t n)
{
    if (!s || (n > 0 && !urls)) {
        return -EINVAL;
    }
    RestNet *nets = n > 0 ? calloc(n, sizeof(*nets)) : NULL;
    if (n > 0 && !nets) {
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (rest_net_of_url(urls[i], &nets[k])) {
            k++;
        }
    }
    pthread_mutex_lock(&s->lock);
    RestNet *old = s->members;
    s->members = nets;
    s->n_members = k;
    pthread_mutex_unlock(&s->lock);
    free(old);
    return 0;
}

uint16_t rest_server_port(const RestServer *s)
{
    if (!s || !s->daemon) {
        return 0;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void rest_server_get_stats(const RestServer *s, RestStats *ret)
{
    if (!ret) {
        return;
    }
    *ret = (RestStats){ 0 };
    if (!s) {
        return;
    }
    RestServer *m = (RestServer *)s; /* atomics are read-only here */
    ret->requests = atomic_load_explicit(&m->requests, memory_order_relaxed);
    for (size_t i = 0; i < REST_STATUS_CLASSES; i++) {
        ret->status_class[i] = atomic_load_explicit(&m->status_class[i], memory_order_relaxed);
    }
    ret->body_too_large = atomic_load_explicit(&m->body_too_large, memory_order_relaxed);
    ret->auth_failed = atomic_load_explicit(&m->auth_failed, memory_order_relaxed);
    ret->header_deadline_closed = rest_deadlines_closed(&m->deadlines);
}
