/* libdbha's client: one background thread follows the topology document
 * (an etcd range + watch on the cluster's prefix /<namespace>/<scope>/, or
 * GET /topology polled on the agents' REST API), reconnecting with backoff,
 * and publishes each new version into a refcounted cache that readers take
 * without I/O. From etcd it follows what topology_select picks: the
 * topology key while it names the leader key's member, else the document
 * built from the leader and member keys. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "dbha-internal.h"
#include "dcs.h"
#include "etcd.h"
#include "httpbody.h"
#include "log.h"
#include "peer-http.h"
#include "topology.h"

#define CLIENT_DEFAULT_POLL_USEC    (1000 * 1000ULL)
#define CLIENT_DEFAULT_REQUEST_USEC (1500 * 1000ULL)
#define CLIENT_BACKOFF_MIN_USEC     (100 * 1000ULL)
#define CLIENT_BACKOFF_MAX_USEC     (2 * 1000 * 1000ULL)
#define CLIENT_WATCH_SLICE_USEC     (200 * 1000ULL)
#define CLIENT_REST_BODY_MAX        (1024 * 1024)
#define CLIENT_KEY_MAX              512

struct DbhaClient {
    /* options, immutable after open */
    char **etcd_endpoints; /* owned */
    size_t n_etcd_endpoints;
    char *etcd_username;      /* owned */
    char *etcd_password;      /* owned */
    char *etcd_cacert;        /* owned */
    char *etcd_cert;          /* owned */
    char *etcd_key;           /* owned */
    char key[CLIENT_KEY_MAX]; /* the topology key, for messages */
    char *scope;              /* owned */
    DcsPaths paths;           /* owned, etcd only */
    char **rest_urls;         /* owned */
    size_t n_rest_urls;
    uint64_t poll_usec;
    uint64_t request_usec;
    DbhaTopologyCallback callback;
    void *userdata; /* borrowed */

    pthread_mutex_t mu;
    pthread_cond_t cond;  /* a new version, or stop */
    DbhaTopology *cached; /* owned reference */
    bool stop;
    DbhaClientStats stats;
    unsigned rr; /* dbha_client_pick_replica's cursor */

    pthread_mutex_t fetch_mu; /* dbha_client_fetch_topology's own etcd client */
    EtcdClient *fetch_etcd;   /* owned */

    pthread_t thread;
    bool thread_started;
    size_t rest_next; /* thread only: the URL that answered last */
    /* thread only, etcd: what was last published, as JSON (owned), where it
     * came from, and whether a watched change may alter it */
    json_t *followed;
    TopologySource source;
    bool source_known;
    bool dirty;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char **strv_copy(const char *const *v, size_t n)
{
    char **c = calloc(n ? n : 1, sizeof(char *));
    if (!c) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i] || !(c[i] = strdup(v[i]))) {
            for (size_t j = 0; j < i; j++) {
                free(c[j]);
            }
            free(c);
            return NULL;
        }
    }
    return c;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* Absolute CLOCK_MONOTONIC time for pthread_cond_timedwait. */
static struct timespec abstime_usec(uint64_t at_usec)
{
    return (struct timespec){ .tv_sec = (time_t)(at_usec / 1000000ULL),
                              .tv_nsec = (long)(at_usec % 1000000ULL) * 1000L };
}

int dbha_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int r = pthread_condattr_init(&attr);
    if (r != 0) {
        return -r;
    }
    (void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    r = pthread_cond_init(cond, &attr);
    (void)pthread_condattr_destroy(&attr);
    return -r;
}

void dbha_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t at_usec)
{
    struct timespec ts = abstime_usec(at_usec);
    (void)pthread_cond_timedwait(cond, mu, &ts);
}

static void record_error(DbhaClient *c, const char *msg)
{
    pthread_mutex_lock(&c->mu);
    c->stats.fetch_errors++;
    (void)snprintf(c->stats.last_error, sizeof(c->stats.last_error), "%s", msg);
    pthread_mutex_unlock(&c->mu);
}

/* Takes t (a reference). The etcd thread decides itself what is new
 * (decided); REST answers of several agents replace the cache only when
 * newer, so a lagging agent cannot move the cache backwards. */
static void publish(DbhaClient *c, DbhaTopology *t, bool decided)
{
    pthread_mutex_lock(&c->mu);
    bool take = decided || !c->cached || t->version > c->cached->version;
    if (take) {
        dbha_topology_unref(c->cached);
        c->cached = dbha_topology_ref(t);
        c->stats.updates++;
        c->stats.version = t->version;
        (void)pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    if (take && c->callback) {
        c->callback(c, t, c->userdata);
    }
    dbha_topology_unref(t);
}

static bool stopping(DbhaClient *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stop;
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* Sleeps for usec unless stopped first; returns whether stopped. */
static bool sleep_or_stop(DbhaClient *c, uint64_t usec)
{
    uint64_t until = clock_monotonic_usec() + usec;
    pthread_mutex_lock(&c->mu);
    while (!c->stop && clock_monotonic_usec() < until) {
        dbha_cond_wait_until(&c->cond, &c->mu, until);
    }
    bool s = c->stop;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static uint64_t backoff_next(uint64_t b)
{
    b *= 2;
    return b > CLIENT_BACKOFF_MAX_USEC ? CLIENT_BACKOFF_MAX_USEC : b;
}

/* ---- etcd ---- */

static int etcd_open(DbhaClient *c, EtcdClient **ret, DbhaError *reterr)
{
    EtcdClientConfig cfg = {
        .endpoints = (const char *const *)c->etcd_endpoints,
        .n_endpoints = c->n_etcd_endpoints,
        .protocol = ETCD_PROTOCOL_HTTP,
        .username = c->etcd_username,
        .password = c->etcd_password,
        .cacert = c->etcd_cacert,
        .cert = c->etcd_cert,
        .key = c->etcd_key,
        .request_timeout_usec = c->request_usec,
        .connect_timeout_usec = c->request_usec / 2,
        .deadline_usec = 2 * c->request_usec,
    };
    EtcdError err = { 0 };
    int r = etcd_client_new(&cfg, ret, &err);
    if (r < 0) {
        return dbha_error_set(reterr, r, "etcd client: %s", err.message);
    }
    return 0;
}

/* One range read of the cluster's prefix, so that the topology and leader
 * keys are seen at one revision: 0 with the document a reader follows
 * (topology_select) in *ret_doc, NULL when the cluster has none of the
 * topology, leader and member keys; its source and the store revision. */
static int etcd_read(DbhaClient *c, EtcdClient *etcd, json_t **ret_doc, TopologySource *ret_source,
                     int64_t *ret_revision, DbhaError *reterr)
{
    EtcdError err = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *cl = NULL;
    int r = dcs_cluster_read(etcd, &c->paths, &cl, &err);
    if (r < 0) {
        return dbha_error_set(reterr, r, "etcd read of %s: %s", c->paths.prefix,
                              err.message[0] ? err.message : strerror(-r));
    }
    json_t *doc = NULL;
    TopologySource source = TOPOLOGY_SOURCE_NO_KEY;
    if (cl->topology || cl->leader || cl->n_members > 0) {
        r = topology_select(cl, c->scope, &doc, &source);
        if (r < 0) {
            return dbha_error_set(reterr, r, "building the topology of %s: %s", c->paths.prefix,
                                  strerror(-r));
        }
    }
    *ret_doc = doc;
    *ret_source = source;
    *ret_revision = cl->revision;
    return 0;
}

/* A member without an address (no conn_url in its key) cannot be routed
 * to, and dbha_topology_parse refuses a node without host and port: in a
 * document built from the member keys it is left out (the primary then
 * null). */
static bool routable(const json_t *node)
{
    const json_t *port = json_object_get(node, "port");
    return json_is_string(json_object_get(node, "host")) && json_is_integer(port) &&
           json_integer_value(port) > 0;
}

static int drop_unroutable(json_t *doc)
{
    json_t *p = json_object_get(doc, "primary");
    if (json_is_object(p) && !routable(p) && json_object_set_new(doc, "primary", json_null()) < 0) {
        return -ENOMEM;
    }
    json_t *replicas = json_object_get(doc, "replicas");
    for (size_t i = json_array_size(replicas); i > 0; i--) {
        if (!routable(json_array_get(replicas, i - 1)) && json_array_remove(replicas, i - 1) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* doc (borrowed) as a DbhaTopology; a built one without the nodes it
 * cannot route to. */
static int decode(json_t *doc, bool built, DbhaTopology **ret, DbhaError *reterr)
{
    _cleanup_(json_decrefp) json_t *d = json_deep_copy(doc);
    if (!d || (built && drop_unroutable(d) < 0)) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    _cleanup_free_ char *text = json_dumps(d, JSON_COMPACT);
    if (!text) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    return dbha_topology_parse(text, strlen(text), ret, reterr);
}

/* The etcd thread's step after each read: publishes doc (taken) when a
 * reader would see something new. The key's document is new when its
 * version differs (the key orders them) or a built one was followed; a
 * built one when it routes differently from what was published
 * (topology_same), numbered after it: its own version (the stale key's +
 * 1) or one more than the last published, whichever is higher. Logs (at
 * debug) when the source changes. */
static void follow(DbhaClient *c, json_t *doc, TopologySource source)
{
    if (!doc) {
        return; /* nothing in etcd: the last known copy stays */
    }
    bool built = source != TOPOLOGY_SOURCE_KEY;
    if (!c->source_known || source != c->source) {
        log_debug("libdbha: following %s: %s", c->paths.prefix,
                  source == TOPOLOGY_SOURCE_KEY      ? "the topology key"
                  : source == TOPOLOGY_SOURCE_NO_KEY ? "no topology key, the member keys"
                                                     : "the topology key names another leader "
                                                       "than the leader key, the member keys");
    }
    bool was_built = c->source_known && c->source != TOPOLOGY_SOURCE_KEY;
    c->source = source;
    c->source_known = true;
    const json_t *v = json_object_get(doc, "version");
    const json_t *lv = c->followed ? json_object_get(c->followed, "version") : NULL;
    if (c->followed && built == was_built &&
        (built ? topology_same(doc, c->followed) : json_equal(v, lv))) {
        json_decref(doc);
        return;
    }
    if (built) {
        int64_t last = c->followed ? topology_version(c->followed) : 0;
        int64_t version = topology_version(doc);
        version = version > last ? version : last + 1;
        if (json_object_set_new(doc, "version", json_integer(version)) < 0) {
            json_decref(doc);
            return;
        }
    }
    DbhaTopology *t = NULL;
    DbhaError err = { 0 };
    if (decode(doc, built, &t, &err) < 0) {
        record_error(c, err.message);
        json_decref(doc);
        return;
    }
    json_decref(c->followed);
    c->followed = doc;
    publish(c, t, true);
}

static int watch_cb(EtcdWatch *w, const EtcdWatchResponse *resp, void *userdata)
{
    DbhaClient *c = userdata;
    if (resp->created) {
        pthread_mutex_lock(&c->mu);
        c->stats.reconnects++;
        pthread_mutex_unlock(&c->mu);
    }
    for (size_t i = 0; i < resp->n_events; i++) {
        const char *key = resp->events[i].kv.key;
        /* the leader key decides whether the topology key is followed;
         * while it is not, each member key may change the document */
        if (strcmp(key, c->paths.topology) == 0 || strcmp(key, c->paths.leader) == 0 ||
            c->source != TOPOLOGY_SOURCE_KEY) {
            c->dirty = true;
        }
    }
    return 0;
}

static void etcd_loop(DbhaClient *c)
{
    uint64_t backoff = CLIENT_BACKOFF_MIN_USEC;
    EtcdClient *etcd = NULL;
    while (!stopping(c)) {
        DbhaError err = { 0 };
        if (!etcd && etcd_open(c, &etcd, &err) < 0) {
            record_error(c, err.message);
            if (sleep_or_stop(c, backoff)) {
                break;
            }
            backoff = backoff_next(backoff);
            continue;
        }
        json_t *doc = NULL;
        TopologySource source;
        int64_t rev = 0;
        if (etcd_read(c, etcd, &doc, &source, &rev, &err) < 0) {
            record_error(c, err.message);
            if (sleep_or_stop(c, backoff)) {
                break;
            }
            backoff = backoff_next(backoff);
            continue;
        }
        follow(c, doc, source);
        EtcdWatch *w = NULL;
        EtcdWatchOptions wo = { .key = c->paths.prefix, .prefix = true, .start_revision = rev + 1 };
        EtcdError werr = { 0 };
        if (etcd_watch_new(etcd, &wo, watch_cb, c, &w, &werr) < 0) {
            record_error(c, werr.message);
            if (sleep_or_stop(c, backoff)) {
                break;
            }
            backoff = backoff_next(backoff);
            continue;
        }
        backoff = CLIENT_BACKOFF_MIN_USEC;
        /* The watch re-opens a broken stream by itself; only a terminal
         * error (compaction, cancel, auth) or a failed read brings us back
         * to a fresh read. A change that matters is read again whole (one
         * range), after the events of a slice are in. */
        c->dirty = false;
        while (!stopping(c)) {
            int r = etcd_watch_poll(w, CLIENT_WATCH_SLICE_USEC, &werr);
            if (r < 0) {
                record_error(c, werr.message);
                break;
            }
            if (c->dirty) {
                c->dirty = false;
                if (etcd_read(c, etcd, &doc, &source, &rev, &err) < 0) {
                    record_error(c, err.message);
                    break;
                }
                follow(c, doc, source);
            }
        }
        w = etcd_watch_free(w);
        if (sleep_or_stop(c, backoff)) {
            break;
        }
        backoff = backoff_next(backoff);
    }
    etcd_client_free(etcd);
}

/* ---- REST ---- */

/* GET <base>/topology through req (its handle, and so its connection, is
 * kept for the next round). */
static int rest_get(DbhaClient *c, PeerHttpRequest *req, const char *base, DbhaTopology **ret,
                    DbhaError *reterr)
{
    char url[CLIENT_KEY_MAX];
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/') {
        bl--;
    }
    if (snprintf(url, sizeof(url), "%.*s/topology", (int)bl, base) >= (int)sizeof(url)) {
        return dbha_error_set(reterr, -EINVAL, "REST URL too long");
    }
    PeerHttpOptions o = { .timeout_usec = c->request_usec,
                          .connect_timeout_usec = c->request_usec / 2,
                          .body_max = CLIENT_REST_BODY_MAX };
    int r = peer_http_request_init(req, "GET", url, NULL, &o);
    if (r < 0) {
        peer_http_request_done(req, true);
        return dbha_error_set(reterr, r, "GET %s: %s", url,
                              r == -EINVAL ? "not an http(s) URL" : "out of memory");
    }
    long status = 0;
    r = peer_http_perform(req, &status);
    if (r < 0) {
        r = dbha_error_set(reterr, -EHOSTUNREACH, "GET %s: %s", url,
                           r == -EMSGSIZE ? "the answer is too large" : req->error);
    } else if (status == 503 || status == 404) {
        r = dbha_error_set(reterr, -ENOENT, "GET %s: HTTP %ld (no topology)", url, status);
    } else if (status != 200) {
        r = dbha_error_set(reterr, -EBADMSG, "GET %s: HTTP %ld", url, status);
    } else {
        r = dbha_topology_parse(req->body.data ? req->body.data : "", req->body.len, ret, reterr);
    }
    peer_http_request_done(req, true);
    return r;
}

/* One round: the URL that answered last, then the others. */
static int rest_round(DbhaClient *c, PeerHttpRequest *req, size_t *next, DbhaTopology **ret,
                      DbhaError *reterr)
{
    int r = -EHOSTUNREACH;
    for (size_t i = 0; i < c->n_rest_urls; i++) {
        size_t k = (*next + i) % c->n_rest_urls;
        r = rest_get(c, req, c->rest_urls[k], ret, reterr);
        if (r >= 0) {
            *next = k;
            return 0;
        }
    }
    return r;
}

static void rest_loop(DbhaClient *c)
{
    PeerHttpRequest req = { 0 };
    uint64_t backoff = CLIENT_BACKOFF_MIN_USEC;
    bool failing = false;
    while (!stopping(c)) {
        DbhaTopology *t = NULL;
        DbhaError err = { 0 };
        uint64_t wait = c->poll_usec;
        if (rest_round(c, &req, &c->rest_next, &t, &err) < 0) {
            record_error(c, err.message);
            failing = true;
            wait = backoff < c->poll_usec ? backoff : c->poll_usec;
            backoff = backoff_next(backoff);
        } else {
            if (failing) {
                pthread_mutex_lock(&c->mu);
                c->stats.reconnects++;
                pthread_mutex_unlock(&c->mu);
            }
            failing = false;
            backoff = CLIENT_BACKOFF_MIN_USEC;
            publish(c, t, false);
        }
        if (sleep_or_stop(c, wait)) {
            break;
        }
    }
    peer_http_request_done(&req, false);
}

static void *client_thread(void *userdata)
{
    DbhaClient *c = userdata;
    if (c->n_etcd_endpoints > 0) {
        etcd_loop(c);
    } else {
        rest_loop(c);
    }
    return NULL;
}

DbhaClient *dbha_client_free(DbhaClient *c)
{
    if (!c) {
        return NULL;
    }
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        (void)pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->mu);
        (void)pthread_join(c->thread, NULL);
    }
    dbha_topology_unref(c->cached);
    json_decref(c->followed);
    dcs_paths_done(&c->paths);
    free(c->scope);
    etcd_client_free(c->fetch_etcd);
    strv_free(c->etcd_endpoints, c->n_etcd_endpoints);
    strv_free(c->rest_urls, c->n_rest_urls);
    free(c->etcd_username);
    free(c->etcd_cacert);
    free(c->etcd_cert);
    free(c->etcd_key);
    if (c->etcd_password) {
        explicit_bzero(c->etcd_password, strlen(c->etcd_password));
    }
    free(c->etcd_password);
    (void)pthread_mutex_destroy(&c->mu);
    (void)pthread_mutex_destroy(&c->fetch_mu);
    (void)pthread_cond_destroy(&c->cond);
    free(c);
    return NULL;
}

int dbha_client_open(const DbhaClientOptions *o, DbhaClient **ret, DbhaError *reterr)
{
    if (!o || !ret) {
        return dbha_error_set(reterr, -EINVAL, "no options");
    }
    if (o->n_etcd_endpoints == 0 && o->n_rest_urls == 0) {
        return dbha_error_set(reterr, -EINVAL, "neither etcd endpoints nor REST URLs given");
    }
    if (o->n_etcd_endpoints > 0 && (!o->scope || !o->scope[0] || strchr(o->scope, '/'))) {
        return dbha_error_set(reterr, -EINVAL, "a scope (without '/') is required with etcd");
    }
    (void)pthread_once(&curl_once, curl_init_once);
    DbhaClient *c = calloc(1, sizeof(*c));
    if (!c) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    (void)pthread_mutex_init(&c->mu, NULL);
    (void)pthread_mutex_init(&c->fetch_mu, NULL);
    int r = dbha_cond_init_monotonic(&c->cond);
    if (r < 0) {
        free(c);
        return dbha_error_set(reterr, r, "pthread_cond_init failed");
    }
    c->poll_usec = o->poll_interval_usec ? o->poll_interval_usec : CLIENT_DEFAULT_POLL_USEC;
    c->request_usec =
        o->request_timeout_usec ? o->request_timeout_usec : CLIENT_DEFAULT_REQUEST_USEC;
    c->callback = o->callback;
    c->userdata = o->userdata;
    if (o->n_etcd_endpoints > 0) {
        const char *ns = o->dcs_namespace && o->dcs_namespace[0] ? o->dcs_namespace : "/service/";
        size_t nl = strlen(ns);
        bool lead = ns[0] == '/', trail = ns[nl - 1] == '/';
        if (snprintf(c->key, sizeof(c->key), "%s%s%s%s/topology", lead ? "" : "/", ns,
                     trail ? "" : "/", o->scope) >= (int)sizeof(c->key)) {
            dbha_client_free(c);
            return dbha_error_set(reterr, -EINVAL, "namespace and scope too long");
        }
        r = dcs_paths_init(&c->paths, ns, o->scope);
        if (r < 0 || !(c->scope = strdup(o->scope))) {
            dbha_client_free(c);
            return dbha_error_set(reterr, r < 0 ? r : -ENOMEM, "namespace or scope: %s",
                                  strerror(r < 0 ? -r : ENOMEM));
        }
        c->etcd_endpoints = strv_copy(o->etcd_endpoints, o->n_etcd_endpoints);
        c->n_etcd_endpoints = c->etcd_endpoints ? o->n_etcd_endpoints : 0;
        if (!c->etcd_endpoints ||
            (o->etcd_username && !(c->etcd_username = strdup(o->etcd_username))) ||
            (o->etcd_password && !(c->etcd_password = strdup(o->etcd_password))) ||
            (o->etcd_cacert && !(c->etcd_cacert = strdup(o->etcd_cacert))) ||
            (o->etcd_cert && !(c->etcd_cert = strdup(o->etcd_cert))) ||
            (o->etcd_key && !(c->etcd_key = strdup(o->etcd_key)))) {
            dbha_client_free(c);
            return dbha_error_set(reterr, -ENOMEM, "out of memory");
        }
        /* Validates the endpoints now rather than in the thread. */
        r = etcd_open(c, &c->fetch_etcd, reterr);
        if (r < 0) {
            dbha_client_free(c);
            return r;
        }
    } else {
        c->rest_urls = strv_copy(o->rest_urls, o->n_rest_urls);
        c->n_rest_urls = c->rest_urls ? o->n_rest_urls : 0;
        if (!c->rest_urls) {
            dbha_client_free(c);
            return dbha_error_set(reterr, -ENOMEM, "out of memory");
        }
    }
    r = pthread_create(&c->thread, NULL, client_thread, c);
    if (r != 0) {
        dbha_client_free(c);
        return dbha_error_set(reterr, -r, "pthread_create failed");
    }
    c->thread_started = true;
    *ret = c;
    return 0;
}

int dbha_client_get_topology(DbhaClient *c, DbhaTopology **ret)
{
    if (!c || !ret) {
        return -EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    DbhaTopology *t = dbha_topology_ref(c->cached);
    pthread_mutex_unlock(&c->mu);
    if (!t) {
        return -ENODATA;
    }
    *ret = t;
    return 0;
}

int dbha_client_wait_topology(DbhaClient *c, int64_t after_version, uint64_t timeout_usec,
                              DbhaTopology **ret, DbhaError *reterr)
{
    if (!c || !ret) {
        return dbha_error_set(reterr, -EINVAL, "no client");
    }
    uint64_t until = clock_monotonic_usec() + timeout_usec;
    pthread_mutex_lock(&c->mu);
    while (!(c->cached && c->cached->version > after_version) && clock_monotonic_usec() < until) {
        dbha_cond_wait_until(&c->cond, &c->mu, until);
    }
    DbhaTopology *t =
        c->cached && c->cached->version > after_version ? dbha_topology_ref(c->cached) : NULL;
    char last[DBHA_ERROR_MESSAGE_MAX];
    (void)snprintf(last, sizeof(last), "%s", c->stats.last_error);
    pthread_mutex_unlock(&c->mu);
    if (!t) {
        return dbha_error_set(reterr, -ETIMEDOUT, "no topology version > %" PRId64 " in time%s%s",
                              after_version, last[0] ? ": " : "", last);
    }
    *ret = t;
    return 0;
}

int dbha_client_fetch_topology(DbhaClient *c, DbhaTopology **ret, DbhaError *reterr)
{
    if (!c || !ret) {
        return dbha_error_set(reterr, -EINVAL, "no client");
    }
    DbhaTopology *t = NULL;
    int r;
    pthread_mutex_lock(&c->fetch_mu);
    if (c->n_etcd_endpoints > 0) {
        int64_t rev;
        json_t *doc = NULL;
        TopologySource source;
        r = etcd_read(c, c->fetch_etcd, &doc, &source, &rev, reterr);
        if (r >= 0 && !doc) {
            r = dbha_error_set(reterr, -ENOENT, "%s does not exist, nor a leader or member key",
                               c->key);
        } else if (r >= 0) {
            r = decode(doc, source != TOPOLOGY_SOURCE_KEY, &t, reterr);
            json_decref(doc);
        }
    } else {
        PeerHttpRequest req = { 0 };
        size_t next = 0;
        r = rest_round(c, &req, &next, &t, reterr);
        peer_http_request_done(&req, false);
    }
    pthread_mutex_unlock(&c->fetch_mu);
    if (r < 0) {
        return r;
    }
    *ret = t;
    return 0;
}

void dbha_client_get_stats(DbhaClient *c, DbhaClientStats *ret)
{
    pthread_mutex_lock(&c->mu);
    *ret = c->stats;
    pthread_mutex_unlock(&c->mu);
}

static int target_from(const DbhaNode *n, DbhaTarget *ret)
{
    DbhaTarget t = { .port = n->port };
    if (snprintf(t.name, sizeof(t.name), "%s", n->name) >= (int)sizeof(t.name) ||
        snprintf(t.host, sizeof(t.host), "%s", n->host) >= (int)sizeof(t.host)) {
        return -ENAMETOOLONG;
    }
    *ret = t;
    return 0;
}

int dbha_client_pick_replica(DbhaClient *c, int64_t max_lag_bytes, DbhaTarget *ret)
{
    if (!c || !ret) {
        return -EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    int r = -ENODATA;
    const DbhaNode *n = NULL;
    if (c->cached) {
        r = dbha_topology_pick_replica(c->cached, max_lag_bytes, &c->rr, &n);
    }
    if (r >= 0) {
        r = target_from(n, ret);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

int dbha_client_pick_primary(DbhaClient *c, DbhaTarget *ret)
{
    if (!c || !ret) {
        return -EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    int r = !c->cached ? -ENODATA : !c->cached->primary ? -ENOENT : 0;
    if (r >= 0) {
        r = target_from(c->cached->primary, ret);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

unsigned dbha_client_next_rr(DbhaClient *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned v = c->rr++;
    pthread_mutex_unlock(&c->mu);
    return v;
}
