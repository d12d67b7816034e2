/* Fuzz target: the REST server over a socket (agent/rest.c on
 * libmicrohttpd, with the health decision of agent/health.c). The server is
 * started once, on 127.0.0.1 with a port the kernel picks, with basic auth
 * for the mutating handlers and a published snapshot carrying every
 * document. Each input is written as raw bytes (a request, or several) on
 * a fresh TCP connection whose write side is then shut down; the answer is
 * read until the server closes, or is silent for FUZZ_IDLE_USEC after its
 * first bytes, or FUZZ_READ_USEC passes (the header deadline is half of
 * that: a request that never ends is closed by the server), and the
 * connection is closed. Checks: whatever the server sends starts with "HTTP/1.". */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz.h"
#include "health.h"
#include "rest.h"

#define FUZZ_REQUEST_MAX (16 * 1024)
#define FUZZ_READ_USEC   (500 * 1000ULL) /* per input, for the whole answer */
#define FUZZ_IDLE_USEC   (10 * 1000ULL)  /* after the first bytes, silence this long ends it */
#define FUZZ_ANSWER_MAX  (256 * 1024)    /* read (and dropped) at most this much */
#define SEC              1000000ULL

static RestServer *server;
static uint16_t port;

static uint64_t mono_usec(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec / 1000ULL;
}

static int echo_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    json_t *o = json_pack("{s:O?, s:s?, s:s, s:s}", "echo", (json_t *)call->body, "user",
                          call->user, "method", call->method, "query", call->query);
    if (!o) {
        return -ENOMEM;
    }
    reply->status = 200;
    reply->json = o;
    return 0;
}

static int text_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    return rest_reply_message(reply, 202, call->body ? "with a body" : "without a body");
}

static int fail_handler(const RestCall *call, RestReply *reply, void *userdata)
{
    return -EIO;
}

static const RestHandler handlers[] = {
    { "POST", "/switchover", REST_HANDLER_MUTATING, echo_handler, NULL },
    { "POST", "/restart", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL, text_handler, NULL },
    { "PATCH", "/config", REST_HANDLER_MUTATING, echo_handler, NULL },
    { "PUT", "/config", REST_HANDLER_MUTATING, echo_handler, NULL },
    { "DELETE", "/switchover", REST_HANDLER_MUTATING | REST_HANDLER_BODY_OPTIONAL, text_handler,
      NULL },
    { "POST", "/reload", REST_HANDLER_BODY_OPTIONAL, fail_handler, NULL },
    { "GET", "/echo", 0, echo_handler, NULL },
};

static void stop_server(void)
{
    server = rest_server_free(server);
}

static int publish(void)
{
    static const HealthTag tags[] = { { "zone", "eu-1" }, { "rack", "7" } };
    uint64_t now = mono_usec();
    HealthNode node = {
        .state = HEALTH_PG_RUNNING,
        .role = HEALTH_ROLE_REPLICA,
        .probe_ok = true,
        .in_recovery = true,
        .replayed_lsn = 50331000,
        .postmaster_alive = true,
        .dcs_ok = true,
        .synchronous_mode = true,
        .sync_standby = true,
        .leader_optime = 50331968,
        .tags = tags,
        .n_tags = 2,
        .now_usec = now,
        .next_run_usec = now + 10 * SEC,
        .ttl_usec = 30 * SEC,
    };
    RestSnapshot *snap = NULL;
    if (rest_snapshot_new(&node, now, &snap) < 0) {
        return -1;
    }
    json_t *docs[_REST_DOC_MAX] = {
        [REST_DOC_PATRONI] = json_pack("{s:s, s:s, s:i, s:{s:s}}", "state", "running", "role",
                                       "replica", "timeline", 2, "patroni", "scope", "demo"),
        [REST_DOC_CLUSTER] =
            json_pack("{s:[{s:s, s:s}]}", "members", "name", "node1", "role", "leader"),
        [REST_DOC_HISTORY] = json_pack("[[i, i, s]]", 1, 50331808, "no recovery target"),
        [REST_DOC_CONFIG] = json_pack("{s:i, s:i}", "ttl", 30, "loop_wait", 10),
        [REST_DOC_TOPOLOGY] = json_pack("{s:i, s:s, s:n, s:[]}", "version", 1, "scope", "demo",
                                        "primary", "replicas"),
    };
    int r = 0;
    for (int d = 0; d < _REST_DOC_MAX; d++) {
        if (r == 0 && (!docs[d] || rest_snapshot_set_document(snap, d, docs[d]) < 0)) {
            r = -1;
        }
        json_decref(docs[d]);
    }
    if (r == 0 && rest_snapshot_set_metrics(snap, "dbha_up 1\n") < 0) {
        r = -1;
    }
    if (r == 0) {
        rest_server_publish(server, snap);
    }
    rest_snapshot_unref(snap);
    return r;
}

static int start_server(void)
{
    RestServerConfig cfg = {
        .listen = "127.0.0.1:0",
        .username = "admin",
        .password = "secret",
        .threads = 2,
        .connection_timeout_sec = 2,
        .header_deadline_usec = FUZZ_READ_USEC / 2,
        .handlers = handlers,
        .n_handlers = sizeof(handlers) / sizeof(handlers[0]),
    };
    RestError err = { { 0 } };
    if (rest_server_new(&cfg, &server, &err) < 0) {
        fprintf(stderr, "fuzz_rest: cannot start the server: %s\n", err.message);
        return -1;
    }
    port = rest_server_port(server);
    (void)atexit(stop_server);
    return publish();
}

/* Sends the request and reads the answer until EOF or the deadline. */
static void exchange(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break; /* the server closed early: read what it said */
        }
        off += (size_t)n;
    }
    (void)shutdown(fd, SHUT_WR);

    char buf[4096];
    size_t total = 0;
    char head[8] = { 0 };
    uint64_t deadline = mono_usec() + FUZZ_READ_USEC;
    for (;;) {
        uint64_t now = mono_usec();
        if (now >= deadline || total >= FUZZ_ANSWER_MAX) {
            break;
        }
        /* Once the answer has begun, a pause ends it: MHD keeps some
         * connections open after the client's EOF. */
        uint64_t wait = deadline - now;
        if (total > 0 && wait > FUZZ_IDLE_USEC) {
            wait = FUZZ_IDLE_USEC;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = poll(&pfd, 1, (int)((wait + 999) / 1000));
        if (r <= 0) {
            break;
        }
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            break;
        }
        if (total < sizeof(head) - 1) {
            size_t k = sizeof(head) - 1 - total < (size_t)n ? sizeof(head) - 1 - total : (size_t)n;
            memcpy(head + total, buf, k);
        }
        total += (size_t)n;
    }
    close(fd);
    if (total >= 7 && memcmp(head, "HTTP/1.", 7) != 0) {
        fprintf(stderr, "fuzz_rest: the answer starts with \"%s\"\n", head);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!server && start_server() < 0) {
        abort();
    }
    exchange(data, fuzz_cap(size, FUZZ_REQUEST_MAX));
    return 0;
}
