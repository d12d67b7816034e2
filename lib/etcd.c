/* The etcd client: the enum tables, result destructors and the unary calls.
 * One POST per call to /v3/..., tried on the endpoint that answered last and
 * then on the others until the call's deadline. Connect errors, timeouts,
 * 503/14 and 500/2 move on to the next endpoint; every other answer is final.
 * A refused token (401/16) is renewed once per call. Each endpoint keeps one
 * curl easy handle so its connection is reused from call to call. */
#include "etcd.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "clock.h"
#include "etcd-internal.h"
#include "httpbody.h"
#include "inherit.h"
#include "log.h"

#define ENDPOINT_NAME_MAX 256
#define BACKOFF_MIN_USEC  (50 * 1000ULL)
#define BACKOFF_MAX_USEC  (500 * 1000ULL)

typedef struct EtcdEndpoint {
    char *name; /* owned: "host:port" */
    char *base; /* owned: "http://host:port" */
    CURL *easy; /* owned, created on first use, kept for connection reuse */
    /* easy holds the options every v3 call shares (set up, POST, the body
     * writer): a v3 call after a v3 call sets only what differs. A v2 call
     * resets the handle and clears this. */
    bool v3_ready;
} EtcdEndpoint;

struct EtcdClient {
    EtcdEndpoint *endpoints; /* owned */
    size_t n_endpoints;
    size_t current; /* the endpoint that answered last */
    EtcdProtocol protocol;
    char *username; /* owned */
    char *password; /* owned, never copied into a message */
    char *cacert;   /* owned */
    char *cert;     /* owned */
    char *key;      /* owned */
    char *token;    /* owned, NULL until authenticated */
    /* v3 request headers, built once (and again when the token changes):
     * [0] without the token (authenticate), [1] with it when there is one */
    struct curl_slist *v3_headers[2];
    const char *v3_headers_token; /* the token [1] was built with (compared by address, and
                                     cleared with the token) */
    /* the body of a keepalive for keepalive_id (a lease is renewed many
     * times: encoded once) */
    int64_t keepalive_id;
    char *keepalive_body;
    char *keepalive_line; /* the same + "\n": one message on the keepalive stream */
    bool stream_keepalives;
    EtcdKeepaliveStream *keepalive_stream; /* owned, NULL until the first keepalive */
    uint64_t request_timeout_usec;
    uint64_t connect_timeout_usec;
    uint64_t deadline_usec;
    uint64_t limit_usec; /* etcd_client_set_limit(); 0: none */
    EtcdClientStats stats;
    int64_t revision; /* the highest header.revision of any answer */
};

typedef HttpBody Body;

/* ---- enum tables ---- */

static const char *const error_kind_table[_ETCD_ERROR_KIND_MAX] = {
    [ETCD_ERROR_NONE] = "none",
    [ETCD_ERROR_NOT_FOUND] = "not-found",
    [ETCD_ERROR_COMPARE_FAILED] = "compare-failed",
    [ETCD_ERROR_LEASE_NOT_FOUND] = "lease-not-found",
    [ETCD_ERROR_UNAVAILABLE] = "unavailable",
    [ETCD_ERROR_AUTH] = "auth",
    [ETCD_ERROR_PERMISSION_DENIED] = "permission-denied",
    [ETCD_ERROR_BAD_RESPONSE] = "bad-response",
    [ETCD_ERROR_COMPACTED] = "compacted",
    [ETCD_ERROR_INVALID] = "invalid",
    [ETCD_ERROR_WATCH_CANCELED] = "watch-canceled",
    [ETCD_ERROR_NO_MEMORY] = "no-memory",
    [ETCD_ERROR_INTERNAL] = "internal",
};

static const int error_kind_errno_table[_ETCD_ERROR_KIND_MAX] = {
    [ETCD_ERROR_NONE] = 0,
    [ETCD_ERROR_NOT_FOUND] = -ENOENT,
    [ETCD_ERROR_COMPARE_FAILED] = -ECANCELED,
    [ETCD_ERROR_LEASE_NOT_FOUND] = -ESRCH,
    [ETCD_ERROR_UNAVAILABLE] = -EHOSTUNREACH,
    [ETCD_ERROR_AUTH] = -EACCES,
    [ETCD_ERROR_PERMISSION_DENIED] = -EPERM,
    [ETCD_ERROR_BAD_RESPONSE] = -EBADMSG,
    [ETCD_ERROR_COMPACTED] = -ESTALE,
    [ETCD_ERROR_INVALID] = -EINVAL,
    [ETCD_ERROR_WATCH_CANCELED] = -ECONNABORTED,
    [ETCD_ERROR_NO_MEMORY] = -ENOMEM,
    [ETCD_ERROR_INTERNAL] = -EIO,
};

static const char *const protocol_table[_ETCD_PROTOCOL_MAX] = {
    [ETCD_PROTOCOL_HTTP] = "http",
    [ETCD_PROTOCOL_HTTPS] = "https",
};

static const char *const compare_target_table[_ETCD_COMPARE_TARGET_MAX] = {
    [ETCD_COMPARE_VERSION] = "VERSION", [ETCD_COMPARE_CREATE] = "CREATE",
    [ETCD_COMPARE_MOD] = "MOD",         [ETCD_COMPARE_VALUE] = "VALUE",
    [ETCD_COMPARE_LEASE] = "LEASE",
};

static const char *const compare_result_table[_ETCD_COMPARE_RESULT_MAX] = {
    [ETCD_COMPARE_EQUAL] = "EQUAL",
    [ETCD_COMPARE_GREATER] = "GREATER",
    [ETCD_COMPARE_LESS] = "LESS",
    [ETCD_COMPARE_NOT_EQUAL] = "NOT_EQUAL",
};

static const char *const event_type_table[_ETCD_EVENT_TYPE_MAX] = {
    [ETCD_EVENT_PUT] = "PUT",
    [ETCD_EVENT_DELETE] = "DELETE",
};

static int table_lookup(const char *const *table, size_t n, const char *s)
{
    if (!s) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (table[i] && strcasecmp(table[i], s) == 0) {
            return (int)i;
        }
    }
    return -EINVAL;
}

const char *etcd_error_kind_to_string(EtcdErrorKind k)
{
    return k >= 0 && k < _ETCD_ERROR_KIND_MAX ? error_kind_table[k] : NULL;
}

EtcdErrorKind etcd_error_kind_from_string(const char *s)
{
    return (EtcdErrorKind)table_lookup(error_kind_table, _ETCD_ERROR_KIND_MAX, s);
}

int etcd_error_kind_to_errno(EtcdErrorKind k)
{
    return k >= 0 && k < _ETCD_ERROR_KIND_MAX ? error_kind_errno_table[k] : -EINVAL;
}

const char *etcd_protocol_to_string(EtcdProtocol p)
{
    return p >= 0 && p < _ETCD_PROTOCOL_MAX ? protocol_table[p] : NULL;
}

EtcdProtocol etcd_protocol_from_string(const char *s)
{
    return (EtcdProtocol)table_lookup(protocol_table, _ETCD_PROTOCOL_MAX, s);
}

const char *etcd_compare_target_to_string(EtcdCompareTarget t)
{
    return t >= 0 && t < _ETCD_COMPARE_TARGET_MAX ? compare_target_table[t] : NULL;
}

const char *etcd_compare_result_to_string(EtcdCompareResult r)
{
    return r >= 0 && r < _ETCD_COMPARE_RESULT_MAX ? compare_result_table[r] : NULL;
}

const char *etcd_event_type_to_string(EtcdEventType t)
{
    return t >= 0 && t < _ETCD_EVENT_TYPE_MAX ? event_type_table[t] : NULL;
}

int etcd_error_set(EtcdError *e, EtcdErrorKind kind, int grpc_code, long http_status,
                   const char *fmt, ...)
{
    if (e) {
        e->kind = kind;
        e->grpc_code = grpc_code;
        e->http_status = http_status;
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return etcd_error_kind_to_errno(kind);
}

/* ---- results ---- */

void etcd_key_value_done(EtcdKeyValue *kv)
{
    if (!kv) {
        return;
    }
    free(kv->key);
    free(kv->value);
    *kv = (EtcdKeyValue){ 0 };
}

void etcd_result_done(EtcdResult *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++) {
        etcd_key_value_done(&r->kvs[i]);
    }
    free(r->kvs);
    for (size_t i = 0; i < r->n_responses; i++) {
        etcd_result_done(&r->responses[i]);
    }
    free(r->responses);
    *r = (EtcdResult){ 0 };
}

void etcd_watch_response_done(EtcdWatchResponse *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->n_events; i++) {
        etcd_key_value_done(&r->events[i].kv);
        etcd_key_value_done(&r->events[i].prev_kv);
    }
    free(r->events);
    free(r->cancel_reason);
    *r = (EtcdWatchResponse){ 0 };
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void sleep_usec(uint64_t usec)
{
    struct timespec ts = { .tv_sec = (time_t)(usec / 1000000ULL),
                           .tv_nsec = (long)(usec % 1000000ULL) * 1000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int strdup_opt(const char *s, char **ret)
{
    if (!s || !*s) {
        *ret = NULL;
        return 0;
    }
    *ret = strdup(s);
    return *ret ? 0 : -ENOMEM;
}

/* "host:port" or "scheme://host:port[/]" -> name and base URL. */
static int endpoint_init(EtcdEndpoint *ep, const char *spec, EtcdProtocol protocol, EtcdError *e)
{
    const char *scheme = etcd_protocol_to_string(protocol);
    const char *hostport = spec;
    const char *sep = strstr(spec, "://");
    if (sep) {
        size_t n = (size_t)(sep - spec);
        if (n == 4 && strncmp(spec, "http", 4) == 0) {
            scheme = "http";
        } else if (n == 5 && strncmp(spec, "https", 5) == 0) {
            scheme = "https";
        } else {
            return etcd_error_set(e, ETCD_ERROR_INVALID, 0, 0, "endpoint \"%.64s\": unknown scheme",
                                  spec);
        }
        hostport = sep + 3;
    }
    size_t len = strcspn(hostport, "/");
    if (len == 0 || len >= ENDPOINT_NAME_MAX || !memchr(hostport, ':', len) ||
        hostport[len - 1] == ':' || strpbrk(hostport, " \t\r\n@")) {
        return etcd_error_set(e, ETCD_ERROR_INVALID, 0, 0, "endpoint \"%.64s\": expected host:port",
                              spec);
    }
    ep->name = strndup(hostport, len);
    if (!ep->name || asprintf(&ep->base, "%s://%s", scheme, ep->name) < 0) {
        ep->base = NULL;
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    return 0;
}

EtcdClient *etcd_client_free(EtcdClient *c)
{
    if (!c) {
        return NULL;
    }
    for (size_t i = 0; i < c->n_endpoints; i++) {
        free(c->endpoints[i].name);
        free(c->endpoints[i].base);
        if (c->endpoints[i].easy) {
            curl_easy_cleanup(c->endpoints[i].easy);
        }
    }
    free(c->endpoints);
    free(c->username);
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
    }
    free(c->password);
    free(c->cacert);
    free(c->cert);
    free(c->key);
    free(c->token);
    curl_slist_free_all(c->v3_headers[0]);
    curl_slist_free_all(c->v3_headers[1]);
    free(c->keepalive_body);
    free(c->keepalive_line);
    etcd_keepalive_stream_free(c->keepalive_stream);
    free(c);
    return NULL;
}

int etcd_client_new(const EtcdClientConfig *config, EtcdClient **ret_client, EtcdError *reterr)
{
    if (!config || !ret_client || config->n_endpoints == 0 || !config->endpoints) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "no etcd endpoints given");
    }
    if (!etcd_protocol_to_string(config->protocol)) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "invalid protocol");
    }
    (void)pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        return etcd_error_set(reterr, ETCD_ERROR_INTERNAL, 0, 0, "curl_global_init failed: %s",
                              curl_easy_strerror(curl_init_result));
    }
    _cleanup_(etcd_client_freep) EtcdClient *c = calloc(1, sizeof(*c));
    if (!c) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    c->endpoints = calloc(config->n_endpoints, sizeof(*c->endpoints));
    if (!c->endpoints) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    c->protocol = config->protocol;
    for (size_t i = 0; i < config->n_endpoints; i++) {
        if (!config->endpoints[i]) {
            return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "endpoint %zu is NULL", i);
        }
        c->n_endpoints = i + 1;
        int r = endpoint_init(&c->endpoints[i], config->endpoints[i], config->protocol, reterr);
        if (r < 0) {
            return r;
        }
    }
    if (strdup_opt(config->username, &c->username) < 0 ||
        strdup_opt(config->password, &c->password) < 0 ||
        strdup_opt(config->cacert, &c->cacert) < 0 || strdup_opt(config->cert, &c->cert) < 0 ||
        strdup_opt(config->key, &c->key) < 0) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    c->request_timeout_usec = config->request_timeout_usec ?: ETCD_DEFAULT_REQUEST_TIMEOUT_USEC;
    c->connect_timeout_usec = config->connect_timeout_usec ?: ETCD_DEFAULT_CONNECT_TIMEOUT_USEC;
    c->deadline_usec = config->deadline_usec ?: ETCD_DEFAULT_DEADLINE_USEC;
    c->stream_keepalives = config->stream_keepalives;
    *ret_client = TAKE_PTR(c);
    return 0;
}

void etcd_client_set_limit(EtcdClient *c, uint64_t until_usec)
{
    c->limit_usec = until_usec;
}

uint64_t etcd_client_get_limit(const EtcdClient *c)
{
    return c->limit_usec;
}

/* timeout_usec, or less when the client's limit comes first; 0 when the
 * limit has passed. */
static uint64_t limit_timeout(const EtcdClient *c, uint64_t timeout_usec)
{
    if (c->limit_usec == 0) {
        return timeout_usec;
    }
    uint64_t now = clock_monotonic_usec();
    if (now >= c->limit_usec) {
        return 0;
    }
    return c->limit_usec - now < timeout_usec ? c->limit_usec - now : timeout_usec;
}

const char *etcd_client_get_endpoint(const EtcdClient *c)
{
    return c->endpoints[c->current].name;
}

void etcd_client_get_stats(const EtcdClient *c, EtcdClientStats *ret)
{
    *ret = c->stats;
}

int64_t etcd_client_get_revision(const EtcdClient *c)
{
    return c->revision;
}

void etcd_client_count_request(EtcdClient *c, uint64_t usec, bool failed, bool connected)
{
    c->stats.requests++;
    c->stats.request_usec += usec;
    c->stats.errors += failed;
    c->stats.connects += connected;
}

static void saw_revision(EtcdClient *c, int64_t revision)
{
    if (revision > c->revision) {
        c->revision = revision;
    }
}

size_t etcd_client_n_endpoints(const EtcdClient *c)
{
    return c->n_endpoints;
}

size_t etcd_client_current_endpoint(const EtcdClient *c)
{
    return c->current;
}

const char *etcd_client_endpoint_name(const EtcdClient *c, size_t i)
{
    return c->endpoints[i % c->n_endpoints].name;
}

int etcd_client_endpoint_url(const EtcdClient *c, size_t i, const char *path, char **ret)
{
    char *url;
    if (asprintf(&url, "%s%s", c->endpoints[i % c->n_endpoints].base, path) < 0) {
        return -ENOMEM;
    }
    *ret = url;
    return 0;
}

static void drop_token_headers(EtcdClient *c)
{
    curl_slist_free_all(c->v3_headers[1]);
    c->v3_headers[1] = NULL;
    c->v3_headers_token = NULL;
}

void etcd_client_forget_token(EtcdClient *c)
{
    drop_token_headers(c);
    free(c->token);
    c->token = NULL;
}

static long usec_to_msec_ceil(uint64_t usec)
{
    uint64_t ms = (usec + 999) / 1000;
    return ms > 0 ? (long)ms : 1;
}

int etcd_append_headers(struct curl_slist **list, const char *const *hdrs, size_t n, EtcdError *e)
{
    for (size_t i = 0; i < n; i++) {
        if (!hdrs[i]) {
            continue;
        }
        struct curl_slist *l = curl_slist_append(*list, hdrs[i]);
        if (!l) {
            return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
        *list = l;
    }
    return 0;
}

int etcd_client_setup_easy(const EtcdClient *c, CURL *easy)
{
    CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK) {                                                                      \
            cc = curl_easy_setopt(easy, opt, val);                                                 \
        }                                                                                          \
    } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, usec_to_msec_ceil(c->connect_timeout_usec));
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, 5L);
    SET(CURLOPT_TCP_KEEPINTVL, 2L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    if (c->cacert) {
        SET(CURLOPT_CAINFO, c->cacert);
    }
    if (c->cert) {
        SET(CURLOPT_SSLCERT, c->cert);
    }
    if (c->key) {
        SET(CURLOPT_SSLKEY, c->key);
    }
#undef SET
    if (cc != CURLE_OK) {
        return -EIO;
    }
    /* a child of ours (pg_ctl, the postmaster) must not hold etcd's connections */
    return inherit_curl_cloexec(easy);
}

/* One POST to one endpoint. Returns 0 with the HTTP status and body (any
 * status), or a transport error (connect, timeout, broken connection) as
 * -EHOSTUNREACH UNAVAILABLE. */
/* How one request is made: method, content type, and whether it carries
 * the v3 token or (v2 API) basic auth from the client's credentials. */
typedef struct HttpCall {
    const char *method; /* "POST", "PUT", "DELETE" */
    const char *content_type;
    bool v2; /* basic auth instead of the v3 token */
} HttpCall;

static const HttpCall HTTP_V3_POST = { "POST", "application/json", false };

/* "Content-Type: ...", "Expect:" and, given a token, "Authorization: ...". */
static int request_headers(const char *content_type, const char *token, struct curl_slist **ret)
{
    _cleanup_free_ char *ctype = NULL, *auth = NULL;
    if (asprintf(&ctype, "Content-Type: %s", content_type) < 0) {
        ctype = NULL;
        return -ENOMEM;
    }
    if (token && asprintf(&auth, "Authorization: %s", token) < 0) {
        auth = NULL;
        return -ENOMEM;
    }
    const char *hdrs[] = { ctype, "Expect:", auth };
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < ELEMENTSOF(hdrs) && hdrs[i]; i++) {
        struct curl_slist *l = curl_slist_append(list, hdrs[i]);
        if (!l) {
            curl_slist_free_all(list);
            return -ENOMEM;
        }
        list = l;
    }
    *ret = list;
    return 0;
}

static char *concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

static int http_call(EtcdClient *c, size_t idx, const HttpCall *how, const char *path,
                     const char *body, uint64_t timeout_usec, long *ret_status, Body *ret_body,
                     EtcdError *e)
{
    EtcdEndpoint *ep = &c->endpoints[idx];
    bool v3 = !how->v2;
    if (!ep->easy) {
        ep->easy = curl_easy_init();
        if (!ep->easy) {
            return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_easy_init failed");
        }
        ep->v3_ready = false;
    }
    if (!v3 || !ep->v3_ready) {
        ep->v3_ready = false;
        curl_easy_reset(ep->easy); /* keeps the connection cache */
        if (etcd_client_setup_easy(c, ep->easy) < 0 ||
            curl_easy_setopt(ep->easy, CURLOPT_WRITEFUNCTION, http_body_write) != CURLE_OK ||
            (v3 && curl_easy_setopt(ep->easy, CURLOPT_POST, 1L) != CURLE_OK)) {
            return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_easy_setopt failed");
        }
        ep->v3_ready = v3;
    }
    _cleanup_free_ char *url = concat(ep->base, path);
    _cleanup_(curl_slist_free_allp) struct curl_slist *v2_headers = NULL;
    struct curl_slist *headers;
    if (v3) {
        /* the token goes with every v3 call but the one that gets it */
        size_t k = c->token && strcmp(path, "/v3/auth/authenticate") != 0;
        if (!c->v3_headers[k] &&
            request_headers(how->content_type, k ? c->token : NULL, &c->v3_headers[k]) < 0) {
            return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
        headers = c->v3_headers[k];
    } else {
        if (request_headers(how->content_type, NULL, &v2_headers) < 0) {
            return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
        headers = v2_headers;
    }
    if (!url) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    Body b = { .max = ETCD_BODY_MAX };
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK) {                                                                      \
            cc = curl_easy_setopt(ep->easy, opt, val);                                             \
        }                                                                                          \
    } while (0)
    SET(CURLOPT_URL, url);
    if (v3) {
        /* POST, set up with the handle; every v3 call has a body */
        SET(CURLOPT_POSTFIELDS, body ? body : "");
        SET(CURLOPT_POSTFIELDSIZE, body ? (long)strlen(body) : 0L);
    } else {
        if (strcmp(how->method, "POST") == 0) {
            SET(CURLOPT_POST, 1L);
        } else {
            SET(CURLOPT_CUSTOMREQUEST, how->method);
        }
        if (body) {
            SET(CURLOPT_POSTFIELDS, body);
            SET(CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        if (c->username && c->password) {
            SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            SET(CURLOPT_USERNAME, c->username);
            SET(CURLOPT_PASSWORD, c->password);
        }
    }
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_TIMEOUT_MS, usec_to_msec_ceil(timeout_usec));
    SET(CURLOPT_WRITEDATA, &b);
    SET(CURLOPT_ERRORBUFFER, errbuf);
#undef SET
    if (cc != CURLE_OK) {
        return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_easy_setopt failed: %s",
                              curl_easy_strerror(cc));
    }
    c->stats.requests++;
    uint64_t t0 = clock_monotonic_usec();
    cc = curl_easy_perform(ep->easy);
    c->stats.request_usec += clock_monotonic_usec() - t0;
    /* The handle outlives this frame: drop pointers into it. */
    (void)curl_easy_setopt(ep->easy, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(ep->easy, CURLOPT_ERRORBUFFER, NULL);
    if (b.too_big) {
        http_body_done(&b);
        return etcd_error_set(e, ETCD_ERROR_BAD_RESPONSE, 0, 0, "%s: answer larger than %u bytes",
                              ep->name, ETCD_BODY_MAX);
    }
    if (cc != CURLE_OK) {
        http_body_done(&b);
        c->stats.errors++;
        log_debug("etcd %s%s: %s", ep->name, path, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return etcd_error_set(e, ETCD_ERROR_UNAVAILABLE, 0, 0, "%s: %s", ep->name,
                              errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
    long status = 0, connects = 0;
    (void)curl_easy_getinfo(ep->easy, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_getinfo(ep->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0) {
        c->stats.connects += (uint64_t)connects;
    }
    *ret_status = status;
    *ret_body = b;
    return 0;
}

static int authenticate(EtcdClient *c, uint64_t deadline, EtcdError *e);

/* "endpoint: etcd's words", truncated to the message size. */
static void prefix_message(EtcdError *e, const char *prefix)
{
    char tmp[ENDPOINT_NAME_MAX + ETCD_ERROR_MESSAGE_MAX + 2];
    (void)snprintf(tmp, sizeof(tmp), "%s: %s", prefix, e->message);
    size_t n = strnlen(tmp, sizeof(e->message) - 1);
    memcpy(e->message, tmp, n);
    e->message[n] = '\0';
}

/* Sends body to path, failing over between endpoints until `deadline`
 * (monotonic usec). Returns 0 with the 200 answer's body in *ret_body. */
static int call_until(EtcdClient *c, const char *path, const char *body, uint64_t deadline,
                      Body *ret_body, EtcdError *e)
{
    bool is_auth = strcmp(path, "/v3/auth/authenticate") == 0;
    bool reauthed = false;
    uint64_t backoff = BACKOFF_MIN_USEC;
    size_t idx = c->current;
    size_t tried = 0; /* attempts in this round */
    EtcdError last = { .kind = ETCD_ERROR_UNAVAILABLE };
    (void)snprintf(last.message, sizeof(last.message), "deadline exceeded before any attempt");
    bool limited = c->limit_usec != 0 && c->limit_usec < deadline;
    if (limited) {
        deadline = c->limit_usec;
        (void)snprintf(last.message, sizeof(last.message),
                       "not sent: the client's time limit had passed");
    }

    for (;;) {
        uint64_t now = clock_monotonic_usec();
        if (now >= deadline) {
            break;
        }
        if (!is_auth && c->username && !c->token) {
            int r = authenticate(c, deadline, e);
            if (r < 0) {
                return r;
            }
            idx = c->current;
            continue;
        }
        uint64_t left = deadline - now;
        uint64_t timeout = left < c->request_timeout_usec ? left : c->request_timeout_usec;
        long status = 0;
        Body b = { 0 };
        int r = http_call(c, idx, &HTTP_V3_POST, path, body, timeout, &status, &b, &last);
        if (r >= 0 && status == 200) {
            if (idx != c->current) {
                log_debug("etcd: now using endpoint %s", c->endpoints[idx].name);
            }
            c->current = idx;
            *ret_body = b;
            return 0;
        }
        if (r >= 0) {
            c->stats.errors++;
            r = etcd_parse_error_response(status, b.data, b.len, &last);
            prefix_message(&last, c->endpoints[idx].name);
            http_body_done(&b);
            if (last.kind == ETCD_ERROR_AUTH && last.grpc_code == 16 && c->username && !is_auth &&
                !reauthed) {
                /* Token expired or unknown to this member: renew once. */
                reauthed = true;
                etcd_client_forget_token(c);
                continue;
            }
        }
        if (r < 0 && !etcd_error_is_retryable(&last)) {
            if (e) {
                *e = last;
            }
            return r;
        }
        /* Next endpoint; after a full round, back off. */
        c->stats.failovers += c->n_endpoints > 1;
        idx = (idx + 1) % c->n_endpoints;
        if (++tried >= c->n_endpoints) {
            tried = 0;
            now = clock_monotonic_usec();
            if (now >= deadline) {
                break;
            }
            uint64_t pause = backoff + now % (backoff / 4 + 1); /* jitter */
            sleep_usec(pause < deadline - now ? pause : deadline - now);
            backoff = backoff * 2 < BACKOFF_MAX_USEC ? backoff * 2 : BACKOFF_MAX_USEC;
        }
    }
    return etcd_error_set(e, ETCD_ERROR_UNAVAILABLE, last.grpc_code, last.http_status,
                          "no etcd endpoint answered %s (last: %s)",
                          limited ? "within the client's time limit" : "in time", last.message);
}

static int call(EtcdClient *c, const char *path, const char *body, Body *ret_body, EtcdError *e)
{
    return call_until(c, path, body, clock_monotonic_usec() + c->deadline_usec, ret_body, e);
}

static int authenticate(EtcdClient *c, uint64_t deadline, EtcdError *e)
{
    _cleanup_(json_decrefp) json_t *req =
        json_pack("{s:s, s:s}", "name", c->username, "password", strempty(c->password));
    if (!req) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
    if (!body) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    Body b = { 0 };
    int r = call_until(c, "/v3/auth/authenticate", body, deadline, &b, e);
    explicit_bzero(body, strlen(body));
    if (r < 0) {
        if (e && e->kind == ETCD_ERROR_INVALID) {
            e->kind = ETCD_ERROR_AUTH; /* e.g. "authentication failed" with 400 */
            r = etcd_error_kind_to_errno(ETCD_ERROR_AUTH);
        }
        return r;
    }
    char *tok = NULL;
    r = etcd_parse_auth_response(b.data, b.len, &tok, e);
    http_body_done(&b);
    if (r < 0) {
        return r;
    }
    drop_token_headers(c);
    free(c->token);
    c->token = tok;
    c->stats.authentications++;
    log_debug("etcd: authenticated as \"%s\"", c->username);
    return 0;
}

int etcd_client_auth_header(EtcdClient *c, char **ret_header, EtcdError *reterr)
{
    if (!c->username) {
        *ret_header = NULL;
        return 0;
    }
    if (!c->token) {
        int r = authenticate(c, clock_monotonic_usec() + c->deadline_usec, reterr);
        if (r < 0) {
            return r;
        }
    }
    char *h;
    if (asprintf(&h, "Authorization: %s", c->token) < 0) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    *ret_header = h;
    return 0;
}

static int encode_error(int r, EtcdError *e)
{
    if (r == -ENOMEM) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    return etcd_error_set(e, ETCD_ERROR_INVALID, 0, 0, "invalid request arguments");
}

typedef int (*ResultParser)(const char *body, size_t len, EtcdResult *ret, EtcdError *e);

static int call_result(EtcdClient *c, const char *path, char *req, ResultParser parse,
                       EtcdResult *ret, EtcdError *e)
{
    Body b = { 0 };
    int r = call(c, path, req, &b, e);
    if (r < 0) {
        return r;
    }
    EtcdResult res = { 0 };
    r = parse(b.data, b.len, &res, e);
    http_body_done(&b);
    if (r < 0) {
        return r;
    }
    saw_revision(c, res.revision);
    if (ret) {
        *ret = res;
    } else {
        etcd_result_done(&res);
    }
    return 0;
}

int etcd_range(EtcdClient *c, const char *key, const EtcdRangeOptions *opts, EtcdResult *ret,
               EtcdError *reterr)
{
    _cleanup_free_ char *req = NULL;
    int r = etcd_json_range_request(key, opts, &req);
    if (r < 0) {
        return encode_error(r, reterr);
    }
    return call_result(c, "/v3/kv/range", req, etcd_parse_range_response, ret, reterr);
}

int etcd_get(EtcdClient *c, const char *key, EtcdKeyValue *ret_kv, EtcdError *reterr)
{
    EtcdResult res = { 0 };
    int r = etcd_range(c, key, NULL, &res, reterr);
    if (r < 0) {
        return r;
    }
    if (res.n_kvs == 0) {
        etcd_result_done(&res);
        return etcd_error_set(reterr, ETCD_ERROR_NOT_FOUND, 0, 200, "key not found");
    }
    if (ret_kv) {
        *ret_kv = res.kvs[0];
        res.kvs[0] = (EtcdKeyValue){ 0 };
    }
    etcd_result_done(&res);
    return 0;
}

int etcd_put(EtcdClient *c, const char *key, const void *value, size_t value_len,
             const EtcdPutOptions *opts, EtcdResult *ret, EtcdError *reterr)
{
    _cleanup_free_ char *req = NULL;
    int r = etcd_json_put_request(key, value, value_len, opts, &req);
    if (r < 0) {
        return encode_error(r, reterr);
    }
    return call_result(c, "/v3/kv/put", req, etcd_parse_put_response, ret, reterr);
}

int etcd_delete(EtcdClient *c, const char *key, bool prefix, bool prev_kv, EtcdResult *ret,
                EtcdError *reterr)
{
    _cleanup_free_ char *req = NULL;
    int r = etcd_json_delete_request(key, prefix, prev_kv, &req);
    if (r < 0) {
        return encode_error(r, reterr);
    }
    return call_result(c, "/v3/kv/deleterange", req, etcd_parse_delete_response, ret, reterr);
}

int etcd_txn(EtcdClient *c, const EtcdTxn *txn, EtcdResult *ret, EtcdError *reterr)
{
    _cleanup_free_ char *req = NULL;
    int r = etcd_json_txn_request(txn, &req);
    if (r < 0) {
        return encode_error(r, reterr);
    }
    EtcdResult res = { 0 };
    r = call_result(c, "/v3/kv/txn", req, etcd_parse_txn_response, &res, reterr);
    if (r < 0) {
        return r;
    }
    bool ok = res.succeeded;
    if (ret) {
        *ret = res;
    } else {
        etcd_result_done(&res);
    }
    if (!ok) {
        return etcd_error_set(reterr, ETCD_ERROR_COMPARE_FAILED, 0, 200,
                              "transaction compare failed");
    }
    return 0;
}

static int lease_request(int64_t id, int64_t ttl, bool keys, char **ret)
{
    _cleanup_(json_decrefp) json_t *o = json_object();
    char buf[32];
    if (!o) {
        return -ENOMEM;
    }
    if (id != 0) {
        (void)snprintf(buf, sizeof(buf), "%" PRId64, id);
        if (json_object_set_new(o, "ID", json_string(buf)) < 0) {
            return -ENOMEM;
        }
    }
    if (ttl != 0) {
        (void)snprintf(buf, sizeof(buf), "%" PRId64, ttl);
        if (json_object_set_new(o, "TTL", json_string(buf)) < 0) {
            return -ENOMEM;
        }
    }
    if (keys && json_object_set_new(o, "keys", json_true()) < 0) {
        return -ENOMEM;
    }
    char *s = json_dumps(o, JSON_COMPACT);
    if (!s) {
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

/* The shared part of every lease call: encode {ID[, TTL]}, POST it to path,
 * and hand back the body (the caller parses it and calls body_done). */
static int lease_call(EtcdClient *c, const char *path, int64_t id, int64_t ttl_sec, Body *ret_body,
                      EtcdError *reterr)
{
    _cleanup_free_ char *req = NULL;
    if (lease_request(id, ttl_sec, false, &req) < 0) {
        return encode_error(-ENOMEM, reterr);
    }
    return call(c, path, req, ret_body, reterr);
}

int etcd_lease_grant(EtcdClient *c, int64_t ttl_sec, int64_t id, EtcdLease *ret, EtcdError *reterr)
{
    if (ttl_sec <= 0 || id < 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "invalid lease TTL or ID");
    }
    Body b = { 0 };
    int r = lease_call(c, "/v3/lease/grant", id, ttl_sec, &b, reterr);
    if (r < 0) {
        return r;
    }
    EtcdLease l;
    r = etcd_parse_lease_grant_response(b.data, b.len, &l, reterr);
    http_body_done(&b);
    if (r >= 0) {
        saw_revision(c, l.revision);
    }
    if (r >= 0 && ret) {
        *ret = l;
    }
    return r < 0 ? r : 0;
}

int etcd_lease_keepalive(EtcdClient *c, int64_t id, int64_t *ret_ttl, EtcdError *reterr)
{
    if (id <= 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "invalid lease ID");
    }
    if (c->keepalive_id != id || !c->keepalive_body || !c->keepalive_line) {
        free(c->keepalive_body);
        free(c->keepalive_line);
        c->keepalive_body = c->keepalive_line = NULL;
        if (lease_request(id, 0, false, &c->keepalive_body) < 0 ||
            !(c->keepalive_line = concat(c->keepalive_body, "\n"))) {
            return encode_error(-ENOMEM, reterr);
        }
        c->keepalive_id = id;
    }
    uint64_t deadline = clock_monotonic_usec() + c->deadline_usec;
    int64_t ttl = 0, rev = 0;
    int r;
    if (c->stream_keepalives) {
        EtcdError se = { 0 };
        uint64_t timeout =
            limit_timeout(c, c->request_timeout_usec < c->deadline_usec ? c->request_timeout_usec
                                                                        : c->deadline_usec);
        r = timeout == 0 ? -EHOSTUNREACH
                         : etcd_keepalive_stream_renew(c, &c->keepalive_stream, c->keepalive_line,
                                                       timeout, &ttl, &rev, &se);
        if (r >= 0 || se.kind == ETCD_ERROR_LEASE_NOT_FOUND) {
            if (r < 0) {
                if (reterr) {
                    *reterr = se;
                }
                return r;
            }
            c->stats.streamed++;
            saw_revision(c, rev);
            if (ret_ttl) {
                *ret_ttl = ttl;
            }
            return 0;
        }
        /* the stream could not answer: one POST, failing over as any call */
    }
    Body b = { 0 };
    r = call_until(c, "/v3/lease/keepalive", c->keepalive_body, deadline, &b, reterr);
    if (r < 0) {
        return r;
    }
    etcd_keepalive_stream_posted(c->keepalive_stream, c->current);
    r = etcd_parse_lease_keepalive_response(b.data, b.len, &ttl, &rev, reterr);
    http_body_done(&b);
    if (r >= 0) {
        saw_revision(c, rev);
    }
    if (r >= 0 && ret_ttl) {
        *ret_ttl = ttl;
    }
    return r < 0 ? r : 0;
}

int etcd_lease_revoke(EtcdClient *c, int64_t id, EtcdError *reterr)
{
    if (id <= 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "invalid lease ID");
    }
    Body b = { 0 };
    int r = lease_call(c, "/v3/lease/revoke", id, 0, &b, reterr);
    if (r < 0) {
        return r;
    }
    int64_t rev = 0;
    r = etcd_parse_header_response(b.data, b.len, &rev, reterr);
    http_body_done(&b);
    if (r >= 0) {
        saw_revision(c, rev);
    }
    return r;
}

int etcd_lease_time_to_live(EtcdClient *c, int64_t id, EtcdLease *ret, EtcdError *reterr)
{
    if (id <= 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "invalid lease ID");
    }
    Body b = { 0 };
    int r = lease_call(c, "/v3/lease/timetolive", id, 0, &b, reterr);
    if (r < 0) {
        return r;
    }
    EtcdLease l;
    r = etcd_parse_lease_ttl_response(b.data, b.len, &l, reterr);
    http_body_done(&b);
    if (r >= 0 && ret) {
        *ret = l;
    }
    return r < 0 ? r : 0;
}

/* ---- the v2 keys API (readers that speak only v2) ---- */

/* One v2 request to the current endpoint. *ret_status: the HTTP status;
 * *ret_code: the v2 errorCode of a JSON error answer (0 when none, -1 when
 * the answer is not JSON: the v2 API is off). */
static int v2_request(EtcdClient *c, const char *method, const char *key, const char *query,
                      const char *form, long *ret_status, int *ret_code, EtcdError *e)
{
    if (!key || key[0] != '/') {
        return etcd_error_set(e, ETCD_ERROR_INVALID, 0, 0, "v2 key must start with '/'");
    }
    for (const char *p = key; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("/_.-", *p)) {
            return etcd_error_set(e, ETCD_ERROR_INVALID, 0, 0, "v2 key holds '%c'", *p);
        }
    }
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "/v2/keys%s%s%s", key, query ? "?" : "", query ? query : "") < 0) {
        path = NULL;
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    uint64_t timeout = limit_timeout(c, c->request_timeout_usec);
    if (timeout == 0) {
        return etcd_error_set(e, ETCD_ERROR_UNAVAILABLE, 0, 0,
                              "not sent: the client's time limit had passed");
    }
    HttpCall how = { method, "application/x-www-form-urlencoded", true };
    long status = 0;
    Body b = { 0 };
    int r = http_call(c, c->current % c->n_endpoints, &how, path, form, timeout, &status, &b, e);
    if (r < 0) {
        return r;
    }
    int code = 0;
    if (status >= 300) {
        json_error_t je;
        json_t *j = b.data ? json_loadb(b.data, b.len, 0, &je) : NULL;
        const json_t *ec = json_object_get(j, "errorCode");
        code = json_is_integer(ec) ? (int)json_integer_value(ec) : -1;
        json_decref(j);
    }
    http_body_done(&b);
    *ret_status = status;
    *ret_code = code;
    return 0;
}

static int v2_answer(const char *what, long status, int code, EtcdError *e)
{
    if (status >= 200 && status < 300) {
        return 0;
    }
    if (code < 0) {
        return etcd_error_set(e, ETCD_ERROR_INVALID, 0, status,
                              "%s: etcd's v2 API is not enabled (start etcd with --enable-v2)",
                              what);
    }
    if (status == 412 || code == 101) {
        return etcd_error_set(e, ETCD_ERROR_COMPARE_FAILED, 0, status, "%s: compare failed", what);
    }
    if (status == 401 || status == 403) {
        return etcd_error_set(e, ETCD_ERROR_AUTH, 0, status, "%s: not allowed (errorCode %d)", what,
                              code);
    }
    return etcd_error_set(e, status >= 500 ? ETCD_ERROR_UNAVAILABLE : ETCD_ERROR_INVALID, 0, status,
                          "%s: HTTP %ld (errorCode %d)", what, status, code);
}

/* "<name>=<value, URL-escaped><tail>" (tail may be ""). */
static int v2_param(const char *name, const char *value, const char *tail, char **ret, EtcdError *e)
{
    char *esc = curl_easy_escape(NULL, value, (int)strlen(value));
    int r = esc ? asprintf(ret, "%s=%s%s", name, esc, tail) : -1;
    curl_free(esc);
    if (r < 0) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    return 0;
}

int etcd_v2_set(EtcdClient *c, const char *key, const char *value, int64_t ttl_sec,
                EtcdError *reterr)
{
    if (!c || !value || ttl_sec < 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "bad arguments");
    }
    char ttl[32] = "";
    if (ttl_sec > 0) {
        snprintf(ttl, sizeof(ttl), "&ttl=%" PRId64, ttl_sec);
    }
    _cleanup_free_ char *form = NULL;
    int r = v2_param("value", value, ttl, &form, reterr);
    if (r < 0) {
        return r;
    }
    long status = 0;
    int code = 0;
    r = v2_request(c, "PUT", key, NULL, form, &status, &code, reterr);
    return r < 0 ? r : v2_answer("v2 set", status, code, reterr);
}

int etcd_v2_delete_if(EtcdClient *c, const char *key, const char *value, EtcdError *reterr)
{
    if (!c || !value) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "bad arguments");
    }
    _cleanup_free_ char *query = NULL;
    int r = v2_param("prevValue", value, "", &query, reterr);
    if (r < 0) {
        return r;
    }
    long status = 0;
    int code = 0;
    r = v2_request(c, "DELETE", key, query, NULL, &status, &code, reterr);
    if (r < 0) {
        return r;
    }
    if (status == 404 && code == 100) {
        return 0; /* "Key not found": nothing to delete */
    }
    return v2_answer("v2 delete", status, code, reterr);
}
