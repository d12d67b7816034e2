/* Test driver for agent/rest: serves a RestServer on a loopback address and
 * publishes snapshots read from JSON files, so integration tests can hit the
 * real HTTP server without an agent, PostgreSQL or etcd.
 *
 * rest_driver --listen HOST:PORT [--user U --password P] [--certfile F]
 *             [--keyfile F] [--cafile F] [--threads N] [--echo] FILE...
 *
 * FILE: {"node": {HealthNode fields, "tags": {...}, "next_run_ago_sec",
 * "ttl_sec", "leader_deadline_in_sec"}, "patroni": {...}, "cluster": {...},
 * "history": [...], "config": {...}, "metrics": "text"}. The first file is
 * published at start; SIGHUP publishes the next one (cyclically, re-reading
 * it, so a test may also rewrite a single file). SIGUSR1 prints the request
 * counters as one JSON line; SIGTERM/SIGINT stop cleanly. --echo registers
 * POST /echo (mutating: replies {"echo": body, "user": user}), DELETE /echo
 * (mutating, body optional) and POST /fail (a handler that fails), and two
 * deferred handlers: POST /later?ms=N (a thread answers {"later": N} after
 * N ms) and POST /never (nobody answers: the server does at shutdown).
 * --verify-client none|optional|required, --allow ENTRY (repeatable) and
 * --allow-members set restapi.verify_client, allowlist and
 * allowlist_include_members; a FILE's "member_urls" list is the members'
 * api_urls of the cluster view, set when the FILE is published.
 * --max-age-ms N [--refresh-wait-ms M]: requests that find the snapshot
 * older than N ms wait for the next publish (SIGHUP) or M ms; the driver
 * prints "refresh asked" when the server asks for one and publishes nothing
 * by itself.
 * stdout lines: "listening on port N", "published FILE", "stats {...}",
 * "refresh asked". */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "health.h"
#include "log.h"
#include "macro.h"
#include "rest.h"

#define DRIVER_TAGS_MAX      16
#define DRIVER_TAG_VALUE_MAX 64
#define DRIVER_ALLOW_MAX     16
#define DRIVER_MEMBERS_MAX   16
#define SEC                  1000000LL

static uint64_t mono_usec(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

static bool get_bool(const json_t *o, const char *key, bool def)
{
    json_t *v = json_object_get(o, key);
    return v ? json_is_true(v) : def;
}

static uint64_t get_u64(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

static double get_num(const json_t *o, const char *key, double def)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

static int load_snapshot(const char *path, RestSnapshot **ret)
{
    json_error_t jerr;
    _cleanup_(json_decrefp) json_t *root = json_load_file(path, 0, &jerr);
    if (!root || !json_is_object(root)) {
        log_error("cannot read \"%s\": %s (line %d)", path, root ? "not an object" : jerr.text,
                  jerr.line);
        return -EINVAL;
    }
    json_t *jn = json_object_get(root, "node");
    if (!json_is_object(jn)) {
        log_error("\"%s\" has no \"node\" object", path);
        return -EINVAL;
    }

    uint64_t now = mono_usec();
    HealthNode node = {
        .state = health_pg_state_from_string(json_string_value(json_object_get(jn, "state"))),
        .role = health_role_from_string(json_string_value(json_object_get(jn, "role"))),
        .probe_ok = get_bool(jn, "probe_ok", true),
        .in_recovery = get_bool(jn, "in_recovery", false),
        .replayed_lsn = get_u64(jn, "replayed_lsn"),
        .postmaster_alive = get_bool(jn, "postmaster_alive", true),
        .dcs_ok = get_bool(jn, "dcs_ok", true),
        .is_leader = get_bool(jn, "is_leader", false),
        .paused = get_bool(jn, "paused", false),
        .standby_cluster = get_bool(jn, "standby_cluster", false),
        .synchronous_mode = get_bool(jn, "synchronous_mode", false),
        .sync_standby = get_bool(jn, "sync_standby", false),
        .leader_optime = get_u64(jn, "leader_optime"),
        .noloadbalance = get_bool(jn, "noloadbalance", false),
        .now_usec = now,
        .next_run_usec =
            (uint64_t)((int64_t)now - (int64_t)(get_num(jn, "next_run_ago_sec", 1) * SEC)),
        .ttl_usec = (uint64_t)(get_num(jn, "ttl_sec", 30) * SEC),
    };
    if ((int)node.state < 0 || (int)node.role < 0) {
        log_error("\"%s\": bad node state or role", path);
        return -EINVAL;
    }

    HealthTag tags[DRIVER_TAGS_MAX];
    char values[DRIVER_TAGS_MAX][DRIVER_TAG_VALUE_MAX];
    const char *key;
    json_t *v;
    size_t nt = 0;
    json_object_foreach(json_object_get(jn, "tags"), key, v)
    {
        if (nt >= DRIVER_TAGS_MAX) {
            break;
        }
        if (json_is_string(v)) {
            (void)snprintf(values[nt], sizeof(values[nt]), "%s", json_string_value(v));
        } else if (json_is_boolean(v)) {
            (void)snprintf(values[nt], sizeof(values[nt]), "%s",
                           json_is_true(v) ? "true" : "false");
        } else if (json_is_integer(v)) {
            (void)snprintf(values[nt], sizeof(values[nt]), "%lld",
                           (long long)json_integer_value(v));
        } else {
            continue;
        }
        tags[nt] = (HealthTag){ key, values[nt] };
        nt++;
    }
    node.tags = tags;
    node.n_tags = nt;

    RestSnapshot *snap = NULL;
    int r = rest_snapshot_new(&node, now, &snap);
    if (r < 0) {
        return log_error_errno(r, "cannot build a snapshot: %m");
    }
    for (int d = 0; d < _REST_DOC_MAX; d++) {
        json_t *doc = json_object_get(root, rest_doc_to_string(d));
        if (doc && (r = rest_snapshot_set_document(snap, d, doc)) < 0) {
            break;
        }
    }
    if (r >= 0 && json_is_string(json_object_get(root, "metrics"))) {
        r = rest_snapshot_set_metrics(snap, json_string_value(json_object_get(root, "metrics")));
    }
    json_t *dl = json_object_get(root, "node");
    if (r >= 0 && json_is_number(json_object_get(dl, "leader_deadline_in_sec"))) {
        double in = json_number_value(json_object_get(dl, "leader_deadline_in_sec"));
        r = rest_snapshot_set_leader_deadline(snap, (uint64_t)((int64_t)now + (int64_t)(in * SEC)));
    }
    if (r < 0) {
        rest_snapshot_unref(snap);
        return log_error_errno(r, "cannot fill the snapshot: %m");
    }
    *ret = snap;
    return 0;
}

/* A FILE's "member_urls": the members' api_urls of the cluster view. */
static int set_member_urls(RestServer *server, const char *path)
{
    _cleanup_(json_decrefp) json_t *root = json_load_file(path, 0, NULL);
    json_t *mu = json_object_get(root, "member_urls");
    const char *urls[DRIVER_MEMBERS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(mu) && n < DRIVER_MEMBERS_MAX; i++) {
        if (json_is_string(json_array_get(mu, i))) {
            urls[n++] = json_string_value(json_array_get(mu, i));
        }
    }
    return rest_server_set_member_urls(server, urls, n);
}

static int publish_file(RestServer *server, const char *path)
{
    RestSnapshot *snap = NULL;
    int r = load_snapshot(path, &snap);
    if (r < 0) {
        return r;
    }
    r = set_member_urls(server, path);
    if (r < 0) {
        rest_snapshot_unref(snap);
        return r;
    }
    rest_server_publish(server, snap);
    rest_snapshot_unref(snap);
    printf("published %s\n", path);
    fflush(stdout);
    return 0;
}

static int echo_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    json_object_set(o, "echo", (json_t *)call->body);
    json_object_set_new(o, "user", call->user ? json_string(call->user) : json_null());
    json_object_set_new(o, "method", json_string(call->method));
    json_object_set_new(o, "query", json_string(call->query));
    reply->status = 200;
    reply->json = o;
    return 0;
}

static int delete_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    reply->status = 200;
    reply->text = strdup(call->body ? "deleted with body" : "deleted");
    return reply->text ? 0 : -ENOMEM;
}

static int fail_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    return -EIO;
}

typedef struct Later {
    RestPending *pending;
    long ms;
} Later;

static void *later_main(void *arg)
{
    Later *l = arg;
    (void)usleep((useconds_t)(l->ms * 1000));
    RestReply r = { .status = 200, .json = json_pack("{s:I}", "later", (json_int_t)l->ms) };
    rest_pending_reply(l->pending, &r);
    free(l);
    return NULL;
}

static int later_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    long ms = 0;
    if (sscanf(call->query, "ms=%ld", &ms) != 1 || ms < 0 || ms > 60000) {
        return rest_reply_message(reply, 400, "ms=N wanted");
    }
    Later *l = calloc(1, sizeof(*l));
    if (!l) {
        return -ENOMEM;
    }
    l->ms = ms;
    l->pending = rest_call_defer(call);
    if (!l->pending) {
        free(l);
        return -ENOMEM;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, later_main, l) != 0) {
        rest_pending_reply_message(l->pending, 500, "no thread");
        free(l);
        return REST_DEFERRED;
    }
    (void)pthread_detach(t);
    return REST_DEFERRED;
}

static RestPending *never_pending[64];
static atomic_uint n_never;

static int never_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    unsigned i = atomic_fetch_add(&n_never, 1);
    if (i >= ELEMENTSOF(never_pending)) {
        return rest_reply_message(reply, 429, "too many");
    }
    never_pending[i] = rest_call_defer(call);
    return never_pending[i] ? REST_DEFERRED : -ENOMEM;
}

static const RestHandler echo_handlers[] = {
    { "POST", "/later", REST_HANDLER_BODY_OPTIONAL, later_handler, NULL },
    { "POST", "/never", REST_HANDLER_BODY_OPTIONAL, never_handler, NULL },
    { "POST", "/echo", REST_HANDLER_MUTATING, echo_handler, NULL },
    { "DELETE", "/echo", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL, delete_handler, NULL },
    { "POST", "/fail", REST_HANDLER_BODY_OPTIONAL, fail_handler, NULL },
};

static void print_stats(RestServer *server)
{
    RestStats st;
    rest_server_get_stats(server, &st);
    printf("stats {\"requests\": %llu, \"2xx\": %llu, \"4xx\": %llu, \"5xx\": %llu, "
           "\"body_too_large\": %llu, \"auth_failed\": %llu, \"header_deadline_closed\": %llu}\n",
           (unsigned long long)st.requests, (unsigned long long)st.status_class[2],
           (unsigned long long)st.status_class[4], (unsigned long long)st.status_class[5],
           (unsigned long long)st.body_too_large, (unsigned long long)st.auth_failed,
           (unsigned long long)st.header_deadline_closed);
    fflush(stdout);
}

static void rest_server_freep(RestServer **p)
{
    *p = rest_server_free(*p);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "user", required_argument, NULL, 'u' },
        { "password", required_argument, NULL, 'p' },
        { "certfile", required_argument, NULL, 'c' },
        { "keyfile", required_argument, NULL, 'k' },
        { "cafile", required_argument, NULL, 'a' },
        { "threads", required_argument, NULL, 't' },
        { "echo", no_argument, NULL, 'e' },
        { "max-age-ms", required_argument, NULL, 'm' },
        { "refresh-wait-ms", required_argument, NULL, 'w' },
        { "verify-client", required_argument, NULL, 'v' },
        { "allow", required_argument, NULL, 'A' },
        { "allow-members", no_argument, NULL, 'M' },
        { NULL, 0, NULL, 0 },
    };
    RestServerConfig cfg = { 0 };
    const char *allow[DRIVER_ALLOW_MAX];
    bool echo = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            cfg.listen = optarg;
            break;
        case 'u':
            cfg.username = optarg;
            break;
        case 'p':
            cfg.password = optarg;
            break;
        case 'c':
            cfg.certfile = optarg;
            break;
        case 'k':
            cfg.keyfile = optarg;
            break;
        case 'a':
            cfg.cafile = optarg;
            break;
        case 't':
            cfg.threads = (unsigned)atoi(optarg);
            break;
        case 'e':
            echo = true;
            break;
        case 'm':
            cfg.max_age_usec = (uint64_t)atoi(optarg) * 1000ULL;
            break;
        case 'w':
            cfg.refresh_wait_usec = (uint64_t)atoi(optarg) * 1000ULL;
            break;
        case 'v':
            cfg.verify_client = rest_verify_client_from_string(optarg);
            if (cfg.verify_client < 0) {
                fprintf(stderr, "bad --verify-client %s\n", optarg);
                return 2;
            }
            break;
        case 'A':
            if (cfg.n_allowlist >= DRIVER_ALLOW_MAX) {
                return 2;
            }
            allow[cfg.n_allowlist++] = optarg;
            cfg.allowlist = allow;
            break;
        case 'M':
            cfg.allowlist_include_members = true;
            break;
        default:
            return 2;
        }
    }
    if (!cfg.listen || optind >= argc) {
        fprintf(stderr, "usage: rest_driver --listen HOST:PORT [options] FILE...\n");
        return 2;
    }
    if (echo) {
        cfg.handlers = echo_handlers;
        cfg.n_handlers = ELEMENTSOF(echo_handlers);
    }
    log_set_max_level(LOG_LEVEL_DEBUG);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    /* Blocked before MHD starts its threads, so they inherit the mask. */
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        return 1;
    }
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        log_error_errno(-errno, "signalfd: %m");
        return 1;
    }

    RestError err = { { 0 } };
    _cleanup_(rest_server_freep) RestServer *server = NULL;
    int r = rest_server_new(&cfg, &server, &err);
    if (r < 0) {
        log_error_errno(r, "%s: %m", err.message);
        close(sfd);
        return 1;
    }
    int files = argc - optind, cur = 0;
    if (publish_file(server, argv[optind]) < 0) {
        close(sfd);
        return 1;
    }
    printf("listening on port %u\n", rest_server_port(server));
    fflush(stdout);

    for (;;) {
        struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN },
                                 { .fd = rest_server_refresh_fd(server), .events = POLLIN } };
        if (poll(pfd, pfd[1].fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
            log_error_errno(-errno, "poll: %m");
            break;
        }
        if (pfd[1].fd >= 0 && (pfd[1].revents & POLLIN)) {
            rest_server_refresh_ack(server);
            printf("refresh asked\n");
            fflush(stdout);
        }
        if (!(pfd[0].revents & POLLIN)) {
            continue;
        }
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n != (ssize_t)sizeof(si)) {
            log_error("signalfd read failed");
            break;
        }
        if (si.ssi_signo == SIGHUP) {
            cur = (cur + 1) % files;
            (void)publish_file(server, argv[optind + cur]);
        } else if (si.ssi_signo == SIGUSR1) {
            print_stats(server);
        } else {
            break;
        }
    }
    print_stats(server);
    close(sfd);
    /* The server answers what nobody did; our references are released
     * afterwards (a reply after the server is gone is a no-op). */
    server = rest_server_free(server);
    for (unsigned i = 0; i < atomic_load(&n_never) && i < ELEMENTSOF(never_pending); i++) {
        rest_pending_reply_message(never_pending[i], 500, "too late");
    }
    return 0;
}
