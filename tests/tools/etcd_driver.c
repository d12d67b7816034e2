/* etcd_driver: a small CLI over lib/etcd for the integration tests. Every
 * result is one JSON object per line on stdout; exit 0 ok, 1 the operation
 * failed (the line carries the typed error kind), 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "etcd.h"
#include "log.h"

#define ENDPOINTS_MAX 16

static const char *arg_endpoints = NULL;
static EtcdProtocol arg_protocol = ETCD_PROTOCOL_HTTP;
static const char *arg_user = NULL;
static const char *arg_password = NULL;
static const char *arg_cacert = NULL;
static const char *arg_cert = NULL;
static const char *arg_key = NULL;
static uint64_t arg_request_timeout_usec = 0;
static uint64_t arg_deadline_usec = 0;
static uint64_t arg_limit_usec = 0;
static bool arg_stream_keepalives = false;
static bool arg_keep_going = false;
static int64_t arg_lease = 0;
static bool arg_prev_kv = false;
static bool arg_exact_key = false;
static long arg_count = -1;
static double arg_timeout_sec = 10.0;
static long arg_interval_ms = 100;
static int64_t arg_from = 0;
static const char *arg_stop_key = NULL;
static long long arg_start_ms = 0;
static long arg_period_ms = 50;
static long arg_rounds = 1;
static const char *arg_name = "driver";
static bool arg_external_loop = false;

static void usage(void)
{
    fprintf(stderr,
            "usage: etcd_driver --endpoints H:P[,H:P...] [--protocol http|https]\n"
            "         [--user U --password P] [--cacert F --cert F --key F]\n"
            "         [--request-timeout-ms N] [--deadline-ms N] [--limit-ms N]\n"
            "         [--stream-keepalives] [-v]\n"
            "         COMMAND ARGS...\n"
            "commands: put KEY VALUE [--lease ID] [--prev-kv] | get KEY | get-prefix PREFIX\n"
            "          del KEY | del-prefix PREFIX | txn-create KEY VALUE [--lease ID]\n"
            "          txn-cas KEY OLD NEW [--lease ID] | lease-grant TTL | keepalive ID\n"
            "          [--count N --interval-ms N] [--keep-going] | revoke ID | ttl ID\n"
            "          watch PREFIX [--exact] [--from REV] [--prev-kv] [--count N]\n"
            "          [--stop-key K] [--timeout S] [--external-loop] | loop PREFIX N "
            "[--interval-ms N]\n"
            "          race PREFIX --rounds N --start-ms REALTIME_MS --period-ms N --name NAME\n");
}

static void emit(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) {
        printf("%s\n", s);
        fflush(stdout);
    }
    free(s);
    json_decref(o);
}

static json_t *error_json(const EtcdError *e)
{
    return json_pack("{s:b, s:s, s:i, s:I, s:s}", "ok", 0, "error",
                     strna(etcd_error_kind_to_string(e->kind)), "grpc_code", e->grpc_code,
                     "http_status", (json_int_t)e->http_status, "message", e->message);
}

static int fail(const EtcdError *e)
{
    emit(error_json(e));
    return 1;
}

static json_t *kv_json(const EtcdKeyValue *kv)
{
    return json_pack("{s:s%, s:s%, s:I, s:I, s:I, s:I}", "key", kv->key, kv->key_len, "value",
                     kv->value, kv->value_len, "create_revision", (json_int_t)kv->create_revision,
                     "mod_revision", (json_int_t)kv->mod_revision, "version",
                     (json_int_t)kv->version, "lease", (json_int_t)kv->lease);
}

static json_t *kvs_json(const EtcdKeyValue *kvs, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        (void)json_array_append_new(a, kv_json(&kvs[i]));
    }
    return a;
}

static int parse_int64(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

static uint64_t now_realtime_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

static double now_mono_sec(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int cmd_put(EtcdClient *c, char **args)
{
    EtcdPutOptions po = { .lease = arg_lease, .prev_kv = arg_prev_kv };
    EtcdResult res = { 0 };
    EtcdError e = { 0 };
    int r = etcd_put(c, args[0], args[1], strlen(args[1]), &po, &res, &e);
    if (r < 0) {
        return fail(&e);
    }
    json_t *o = json_pack("{s:b, s:I, s:s}", "ok", 1, "revision", (json_int_t)res.revision,
                          "endpoint", etcd_client_get_endpoint(c));
    if (res.n_kvs > 0) {
        (void)json_object_set_new(o, "prev_kv", kv_json(&res.kvs[0]));
    }
    emit(o);
    etcd_result_done(&res);
    return 0;
}

static int cmd_get(EtcdClient *c, char **args)
{
    EtcdKeyValue kv = { 0 };
    EtcdError e = { 0 };
    int r = etcd_get(c, args[0], &kv, &e);
    if (r < 0) {
        return fail(&e);
    }
    emit(json_pack("{s:b, s:o}", "ok", 1, "kv", kv_json(&kv)));
    etcd_key_value_done(&kv);
    return 0;
}

static int cmd_get_prefix(EtcdClient *c, char **args)
{
    EtcdRangeOptions ro = { .prefix = true };
    EtcdResult res = { 0 };
    EtcdError e = { 0 };
    int r = etcd_range(c, args[0], &ro, &res, &e);
    if (r < 0) {
        return fail(&e);
    }
    emit(json_pack("{s:b, s:I, s:I, s:b, s:o}", "ok", 1, "revision", (json_int_t)res.revision,
                   "count", (json_int_t)res.count, "more", res.more, "kvs",
                   kvs_json(res.kvs, res.n_kvs)));
    etcd_result_done(&res);
    return 0;
}

static int do_delete(EtcdClient *c, const char *key, bool prefix)
{
    EtcdResult res = { 0 };
    EtcdError e = { 0 };
    int r = etcd_delete(c, key, prefix, arg_prev_kv, &res, &e);
    if (r < 0) {
        return fail(&e);
    }
    emit(json_pack("{s:b, s:I, s:I, s:o}", "ok", 1, "revision", (json_int_t)res.revision, "deleted",
                   (json_int_t)res.count, "prev_kvs", kvs_json(res.kvs, res.n_kvs)));
    etcd_result_done(&res);
    return 0;
}

static int cmd_del(EtcdClient *c, char **args)
{
    return do_delete(c, args[0], false);
}

static int cmd_del_prefix(EtcdClient *c, char **args)
{
    return do_delete(c, args[0], true);
}

/* Runs txn and prints won/lost with the failure branch's holder. Returns 0
 * for either outcome, 1 on error. */
static int run_election_txn(EtcdClient *c, const EtcdTxn *txn, json_t *extra)
{
    EtcdResult res = { 0 };
    EtcdError e = { 0 };
    int r = etcd_txn(c, txn, &res, &e);
    if (r < 0 && e.kind != ETCD_ERROR_COMPARE_FAILED) {
        json_t *o = error_json(&e);
        (void)json_object_update(o, extra);
        json_decref(extra);
        emit(o);
        return 1;
    }
    json_t *o =
        json_pack("{s:b, s:s, s:I, s:s}", "ok", 1, "result", r == 0 ? "won" : "lost", "revision",
                  (json_int_t)res.revision, "endpoint", etcd_client_get_endpoint(c));
    if (r < 0 && res.n_responses > 0 && res.responses[0].n_kvs > 0) {
        const EtcdKeyValue *kv = &res.responses[0].kvs[0];
        (void)json_object_set_new(o, "holder", json_stringn(kv->value, kv->value_len));
        (void)json_object_set_new(o, "holder_lease", json_integer(kv->lease));
        (void)json_object_set_new(o, "holder_create_revision", json_integer(kv->create_revision));
    } else if (r < 0) {
        (void)json_object_set_new(o, "holder", json_null());
    }
    (void)json_object_update(o, extra);
    json_decref(extra);
    emit(o);
    etcd_result_done(&res);
    return 0;
}

static int txn_create(EtcdClient *c, const char *key, const char *value, json_t *extra)
{
    EtcdCompare cmp = {
        .key = key, .target = ETCD_COMPARE_CREATE, .result = ETCD_COMPARE_EQUAL, .number = 0
    };
    EtcdOp put = { .type = ETCD_OP_PUT,
                   .key = key,
                   .value = value,
                   .value_len = strlen(value),
                   .lease = arg_lease };
    EtcdOp get = { .type = ETCD_OP_RANGE, .key = key };
    EtcdTxn txn = { &cmp, 1, &put, 1, &get, 1 };
    return run_election_txn(c, &txn, extra);
}

static int cmd_txn_create(EtcdClient *c, char **args)
{
    return txn_create(c, args[0], args[1], json_object());
}

static int cmd_txn_cas(EtcdClient *c, char **args)
{
    EtcdCompare cmp = { .key = args[0],
                        .target = ETCD_COMPARE_VALUE,
                        .result = ETCD_COMPARE_EQUAL,
                        .value = args[1],
                        .value_len = strlen(args[1]) };
    EtcdOp put = { .type = ETCD_OP_PUT,
                   .key = args[0],
                   .value = args[2],
                   .value_len = strlen(args[2]),
                   .lease = arg_lease };
    EtcdOp get = { .type = ETCD_OP_RANGE, .key = args[0] };
    EtcdTxn txn = { &cmp, 1, &put, 1, &get, 1 };
    return run_election_txn(c, &txn, json_object());
}

static int cmd_lease_grant(EtcdClient *c, char **args)
{
    int64_t ttl;
    if (parse_int64(args[0], &ttl) < 0) {
        usage();
        return 2;
    }
    EtcdLease l;
    EtcdError e = { 0 };
    if (etcd_lease_grant(c, ttl, arg_lease, &l, &e) < 0) {
        return fail(&e);
    }
    emit(json_pack("{s:b, s:I, s:I}", "ok", 1, "id", (json_int_t)l.id, "ttl", (json_int_t)l.ttl));
    return 0;
}

static int lease_id_arg(const char *s, int64_t *ret)
{
    if (parse_int64(s, ret) < 0) {
        usage();
        return 2;
    }
    return 0;
}

/* keepalive ID [--count N --interval-ms N] [--keep-going]: one line per
 * renewal, with the time it took and the client's counters after it; with
 * --keep-going a failed renewal is a line too and the next one follows. */
static int cmd_keepalive(EtcdClient *c, char **args)
{
    int64_t id;
    if (lease_id_arg(args[0], &id) != 0) {
        return 2;
    }
    long n = arg_count > 0 ? arg_count : 1;
    int ret = 0;
    for (long i = 0; i < n; i++) {
        if (i > 0) {
            sleep_ms(arg_interval_ms);
        }
        int64_t ttl = 0;
        EtcdError e = { 0 };
        double t0 = now_mono_sec();
        int r = etcd_lease_keepalive(c, id, &ttl, &e);
        double ms = (now_mono_sec() - t0) * 1000.0;
        if (r < 0 && !arg_keep_going) {
            return fail(&e);
        }
        EtcdClientStats st;
        etcd_client_get_stats(c, &st);
        json_t *o =
            r < 0 ? error_json(&e) : json_pack("{s:b, s:I}", "ok", 1, "ttl", (json_int_t)ttl);
        (void)json_object_set_new(o, "i", json_integer(i));
        (void)json_object_set_new(o, "ms", json_real(ms));
        (void)json_object_set_new(o, "endpoint", json_string(etcd_client_get_endpoint(c)));
        (void)json_object_set_new(o, "requests", json_integer((json_int_t)st.requests));
        (void)json_object_set_new(o, "streamed", json_integer((json_int_t)st.streamed));
        (void)json_object_set_new(o, "errors", json_integer((json_int_t)st.errors));
        (void)json_object_set_new(o, "connects", json_integer((json_int_t)st.connects));
        emit(o);
        if (r < 0) {
            ret = 1;
        }
    }
    return ret;
}

static int cmd_revoke(EtcdClient *c, char **args)
{
    int64_t id;
    if (lease_id_arg(args[0], &id) != 0) {
        return 2;
    }
    EtcdError e = { 0 };
    if (etcd_lease_revoke(c, id, &e) < 0) {
        return fail(&e);
    }
    emit(json_pack("{s:b}", "ok", 1));
    return 0;
}

static int cmd_ttl(EtcdClient *c, char **args)
{
    int64_t id;
    if (lease_id_arg(args[0], &id) != 0) {
        return 2;
    }
    EtcdLease l;
    EtcdError e = { 0 };
    if (etcd_lease_time_to_live(c, id, &l, &e) < 0) {
        return fail(&e);
    }
    emit(json_pack("{s:b, s:I, s:I, s:I}", "ok", 1, "id", (json_int_t)l.id, "ttl",
                   (json_int_t)l.ttl, "granted_ttl", (json_int_t)l.granted_ttl));
    return 0;
}

typedef struct WatchState {
    long events;
    bool stop;
} WatchState;

static int on_watch(EtcdWatch *w, const EtcdWatchResponse *resp, void *userdata)
{
    WatchState *st = userdata;
    if (resp->created) {
        emit(json_pack("{s:b, s:I, s:s, s:I}", "created", 1, "revision", (json_int_t)resp->revision,
                       "endpoint", etcd_watch_get_endpoint(w), "connects",
                       (json_int_t)etcd_watch_get_connects(w)));
    }
    if (resp->canceled) {
        emit(json_pack("{s:b, s:I, s:s?}", "canceled", 1, "compact_revision",
                       (json_int_t)resp->compact_revision, "reason", resp->cancel_reason));
    }
    for (size_t i = 0; i < resp->n_events && !st->stop; i++) {
        const EtcdEvent *ev = &resp->events[i];
        json_t *o = kv_json(&ev->kv);
        (void)json_object_set_new(o, "type", json_string(etcd_event_type_to_string(ev->type)));
        (void)json_object_set_new(o, "endpoint", json_string(etcd_watch_get_endpoint(w)));
        if (ev->has_prev_kv) {
            (void)json_object_set_new(o, "prev_kv", kv_json(&ev->prev_kv));
        }
        emit(o);
        st->events++;
        if ((arg_count > 0 && st->events >= arg_count) ||
            (arg_stop_key && strcmp(ev->kv.key, arg_stop_key) == 0)) {
            st->stop = true;
        }
    }
    return 0;
}

static int cmd_watch(EtcdClient *c, char **args)
{
    EtcdWatchOptions wo = {
        .key = args[0], .prefix = !arg_exact_key, .start_revision = arg_from, .prev_kv = arg_prev_kv
    };
    WatchState st = { 0 };
    EtcdError e = { 0 };
    _cleanup_(etcd_watch_freep) EtcdWatch *w = NULL;
    if (etcd_watch_new(c, &wo, on_watch, &st, &w, &e) < 0) {
        return fail(&e);
    }
    double end = now_mono_sec() + arg_timeout_sec;
    while (!st.stop) {
        double left = end - now_mono_sec();
        if (left <= 0) {
            if (arg_count > 0 || arg_stop_key) {
                emit(json_pack("{s:b, s:s, s:I}", "ok", 0, "error", "timeout", "events",
                               (json_int_t)st.events));
                return 1;
            }
            return 0;
        }
        uint64_t budget = (uint64_t)(left * 1e6);
        if (arg_external_loop) {
            /* What an sd-event loop does: wait on the fd and the wakeup, then poll(0). */
            int fd = etcd_watch_get_fd(w);
            uint64_t wake = etcd_watch_get_wakeup_usec(w);
            uint64_t now = (uint64_t)(now_mono_sec() * 1e6);
            uint64_t wait = wake == UINT64_MAX ? budget : wake > now ? wake - now : 0;
            if (wait > budget) {
                wait = budget;
            }
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            (void)poll(&pfd, fd >= 0 ? 1 : 0, (int)((wait + 999) / 1000));
            budget = 0;
        }
        int r = etcd_watch_poll(w, budget, &e);
        if (r < 0) {
            return fail(&e);
        }
    }
    return 0;
}

static int cmd_loop(EtcdClient *c, char **args)
{
    int64_t n;
    if (parse_int64(args[1], &n) < 0 || n < 0) {
        usage();
        return 2;
    }
    int ret = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) {
            sleep_ms(arg_interval_ms);
        }
        char key[512], value[32];
        (void)snprintf(key, sizeof(key), "%s%" PRId64, args[0], i);
        (void)snprintf(value, sizeof(value), "%" PRId64, i);
        EtcdResult res = { 0 };
        EtcdError e = { 0 };
        double t0 = now_mono_sec();
        int r = etcd_put(c, key, value, strlen(value), NULL, &res, &e);
        double ms = (now_mono_sec() - t0) * 1000.0;
        EtcdClientStats stats;
        etcd_client_get_stats(c, &stats);
        json_t *o = r < 0 ? error_json(&e)
                          : json_pack("{s:b, s:I}", "ok", 1, "revision", (json_int_t)res.revision);
        (void)json_object_set_new(o, "i", json_integer(i));
        (void)json_object_set_new(o, "key", json_string(key));
        (void)json_object_set_new(o, "endpoint", json_string(etcd_client_get_endpoint(c)));
        (void)json_object_set_new(o, "ms", json_real(ms));
        (void)json_object_set_new(o, "authentications", json_integer(stats.authentications));
        (void)json_object_set_new(o, "failovers", json_integer(stats.failovers));
        (void)json_object_set_new(o, "connects", json_integer(stats.connects));
        (void)json_object_set_new(o, "requests", json_integer(stats.requests));
        emit(o);
        etcd_result_done(&res);
        if (r < 0) {
            ret = 1;
        }
    }
    return ret;
}

static int cmd_race(EtcdClient *c, char **args)
{
    int ret = 0;
    for (long i = 0; i < arg_rounds; i++) {
        long long at = arg_start_ms + (long long)i * arg_period_ms;
        long long wait = at - (long long)now_realtime_ms();
        if (wait > 0) {
            sleep_ms((long)wait);
        }
        char key[512];
        (void)snprintf(key, sizeof(key), "%s%ld", args[0], i);
        if (txn_create(c, key, arg_name, json_pack("{s:I}", "round", (json_int_t)i)) != 0) {
            ret = 1;
        }
    }
    return ret;
}

typedef struct Command {
    const char *name;
    int n_args;
    int (*fn)(EtcdClient *c, char **args);
} Command;

static const Command commands[] = {
    { "put", 2, cmd_put },
    { "get", 1, cmd_get },
    { "get-prefix", 1, cmd_get_prefix },
    { "del", 1, cmd_del },
    { "del-prefix", 1, cmd_del_prefix },
    { "txn-create", 2, cmd_txn_create },
    { "txn-cas", 3, cmd_txn_cas },
    { "lease-grant", 1, cmd_lease_grant },
    { "keepalive", 1, cmd_keepalive },
    { "revoke", 1, cmd_revoke },
    { "ttl", 1, cmd_ttl },
    { "watch", 1, cmd_watch },
    { "loop", 2, cmd_loop },
    { "race", 1, cmd_race },
};

static int parse_ms(const char *s, uint64_t *ret_usec)
{
    int64_t v;
    if (parse_int64(s, &v) < 0 || v <= 0) {
        return -EINVAL;
    }
    *ret_usec = (uint64_t)v * 1000ULL;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        OPT_ENDPOINTS = 0x100,
        OPT_PROTOCOL,
        OPT_USER,
        OPT_PASSWORD,
        OPT_CACERT,
        OPT_CERT,
        OPT_KEY,
        OPT_REQUEST_TIMEOUT,
        OPT_DEADLINE,
        OPT_LEASE,
        OPT_PREV_KV,
        OPT_EXACT,
        OPT_COUNT,
        OPT_TIMEOUT,
        OPT_INTERVAL,
        OPT_FROM,
        OPT_STOP_KEY,
        OPT_START_MS,
        OPT_PERIOD_MS,
        OPT_ROUNDS,
        OPT_NAME,
        OPT_EXTERNAL_LOOP,
        OPT_STREAM_KEEPALIVES,
        OPT_KEEP_GOING,
        OPT_LIMIT,
    };
    static const struct option options[] = {
        { "endpoints", required_argument, NULL, OPT_ENDPOINTS },
        { "protocol", required_argument, NULL, OPT_PROTOCOL },
        { "user", required_argument, NULL, OPT_USER },
        { "password", required_argument, NULL, OPT_PASSWORD },
        { "cacert", required_argument, NULL, OPT_CACERT },
        { "cert", required_argument, NULL, OPT_CERT },
        { "key", required_argument, NULL, OPT_KEY },
        { "request-timeout-ms", required_argument, NULL, OPT_REQUEST_TIMEOUT },
        { "deadline-ms", required_argument, NULL, OPT_DEADLINE },
        { "lease", required_argument, NULL, OPT_LEASE },
        { "prev-kv", no_argument, NULL, OPT_PREV_KV },
        { "exact", no_argument, NULL, OPT_EXACT },
        { "count", required_argument, NULL, OPT_COUNT },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "interval-ms", required_argument, NULL, OPT_INTERVAL },
        { "from", required_argument, NULL, OPT_FROM },
        { "stop-key", required_argument, NULL, OPT_STOP_KEY },
        { "start-ms", required_argument, NULL, OPT_START_MS },
        { "period-ms", required_argument, NULL, OPT_PERIOD_MS },
        { "rounds", required_argument, NULL, OPT_ROUNDS },
        { "name", required_argument, NULL, OPT_NAME },
        { "external-loop", no_argument, NULL, OPT_EXTERNAL_LOOP },
        { "stream-keepalives", no_argument, NULL, OPT_STREAM_KEEPALIVES },
        { "keep-going", no_argument, NULL, OPT_KEEP_GOING },
        { "limit-ms", required_argument, NULL, OPT_LIMIT },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    int opt;
    int64_t v;
    log_set_max_level(LOG_LEVEL_WARNING);
    while ((opt = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
        switch (opt) {
        case OPT_ENDPOINTS:
            arg_endpoints = optarg;
            break;
        case OPT_PROTOCOL:
            arg_protocol = etcd_protocol_from_string(optarg);
            if (arg_protocol < 0) {
                fprintf(stderr, "etcd_driver: invalid --protocol \"%s\"\n", optarg);
                return 2;
            }
            break;
        case OPT_USER:
            arg_user = optarg;
            break;
        case OPT_PASSWORD:
            arg_password = optarg;
            break;
        case OPT_CACERT:
            arg_cacert = optarg;
            break;
        case OPT_CERT:
            arg_cert = optarg;
            break;
        case OPT_KEY:
            arg_key = optarg;
            break;
        case OPT_REQUEST_TIMEOUT:
        case OPT_DEADLINE:
        case OPT_LIMIT:
            if (parse_ms(optarg, opt == OPT_DEADLINE ? &arg_deadline_usec
                                 : opt == OPT_LIMIT  ? &arg_limit_usec
                                                     : &arg_request_timeout_usec) < 0) {
                fprintf(stderr, "etcd_driver: invalid duration \"%s\"\n", optarg);
                return 2;
            }
            break;
        case OPT_LEASE:
        case OPT_FROM:
        case OPT_COUNT:
        case OPT_INTERVAL:
        case OPT_START_MS:
        case OPT_PERIOD_MS:
        case OPT_ROUNDS:
            if (parse_int64(optarg, &v) < 0 || v < 0) {
                fprintf(stderr, "etcd_driver: invalid number \"%s\"\n", optarg);
                return 2;
            }
            if (opt == OPT_LEASE) {
                arg_lease = v;
            } else if (opt == OPT_FROM) {
                arg_from = v;
            } else if (opt == OPT_COUNT) {
                arg_count = (long)v;
            } else if (opt == OPT_INTERVAL) {
                arg_interval_ms = (long)v;
            } else if (opt == OPT_START_MS) {
                arg_start_ms = v;
            } else if (opt == OPT_PERIOD_MS) {
                arg_period_ms = (long)v;
            } else {
                arg_rounds = (long)v;
            }
            break;
        case OPT_PREV_KV:
            arg_prev_kv = true;
            break;
        case OPT_EXACT:
            arg_exact_key = true;
            break;
        case OPT_TIMEOUT:
            arg_timeout_sec = strtod(optarg, NULL);
            if (arg_timeout_sec <= 0) {
                fprintf(stderr, "etcd_driver: invalid --timeout \"%s\"\n", optarg);
                return 2;
            }
            break;
        case OPT_STOP_KEY:
            arg_stop_key = optarg;
            break;
        case OPT_NAME:
            arg_name = optarg;
            break;
        case OPT_STREAM_KEEPALIVES:
            arg_stream_keepalives = true;
            break;
        case OPT_KEEP_GOING:
            arg_keep_going = true;
            break;
        case OPT_EXTERNAL_LOOP:
            arg_external_loop = true;
            break;
        case 'v':
            log_set_max_level(LOG_LEVEL_DEBUG);
            break;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
    }
    if (!arg_endpoints || optind >= argc) {
        usage();
        return 2;
    }
    const Command *cmd = NULL;
    for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
        if (strcmp(commands[i].name, argv[optind]) == 0) {
            cmd = &commands[i];
        }
    }
    if (!cmd || argc - optind - 1 != cmd->n_args) {
        fprintf(stderr, "etcd_driver: unknown command or wrong number of arguments\n");
        usage();
        return 2;
    }

    _cleanup_free_ char *eps = strdup(arg_endpoints);
    const char *list[ENDPOINTS_MAX];
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(eps, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n >= ENDPOINTS_MAX) {
            fprintf(stderr, "etcd_driver: too many endpoints\n");
            return 2;
        }
        list[n++] = t;
    }
    EtcdClientConfig cfg = {
        .endpoints = list,
        .n_endpoints = n,
        .protocol = arg_protocol,
        .username = arg_user,
        .password = arg_password,
        .cacert = arg_cacert,
        .cert = arg_cert,
        .key = arg_key,
        .request_timeout_usec = arg_request_timeout_usec,
        .deadline_usec = arg_deadline_usec,
        .stream_keepalives = arg_stream_keepalives,
    };
    EtcdError e = { 0 };
    _cleanup_(etcd_client_freep) EtcdClient *c = NULL;
    if (etcd_client_new(&cfg, &c, &e) < 0) {
        fprintf(stderr, "etcd_driver: %s\n", e.message);
        return 2;
    }
    if (arg_limit_usec != 0) {
        /* every call ends by then, counted from here (etcd_client_set_limit()) */
        etcd_client_set_limit(c, clock_monotonic_usec() + arg_limit_usec);
    }
    return cmd->fn(c, argv + optind + 1);
}
