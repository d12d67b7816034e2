/* lib/topology.c: the routers' document built from a cluster view, and the
 * rewrite decision (which changes a router acts on). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "dcs.h"
#include "etcd.h"
#include "topology.h"

#define PREFIX "/service/batman/"

/* n1 leads on timeline 2; n2 (nofailover, zone b) is 320 bytes behind and
 * not streaming; n3 streams, is the synchronous standby, noloadbalance. */
#define N1_VALUE                                                                                   \
    "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:8008/"    \
    "patroni\",\"state\":\"running\",\"role\":\"master\",\"xlog_location\":50331968,"              \
    "\"timeline\":2}"
#define N2_VALUE                                                                                   \
    "{\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"api_url\":\"http://127.0.0.1:8009/"    \
    "patroni\",\"state\":\"running\",\"role\":\"replica\",\"tags\":{\"nofailover\":true,"          \
    "\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2}"
#define N3_VALUE                                                                                   \
    "{\"conn_url\":\"postgres://127.0.0.1:5434/postgres\",\"api_url\":\"http://127.0.0.1:8010/"    \
    "patroni\",\"state\":\"running\",\"replication_state\":\"streaming\",\"role\":\"replica\","    \
    "\"tags\":{\"noloadbalance\":true},\"xlog_location\":50331968,\"timeline\":2,"                 \
    "\"upstream\":\"n1\"}"

typedef struct Kv {
    const char *key;
    const char *value;
} Kv;

static DcsCluster *parse(const Kv *kvs, size_t n)
{
    DcsPaths p;
    assert_int_equal(dcs_paths_init(&p, "/service/", "batman"), 0);
    EtcdResult r = { .type = ETCD_OP_RANGE, .revision = 42, .count = (int64_t)n };
    r.kvs = calloc(n, sizeof(*r.kvs));
    assert_non_null(r.kvs);
    for (size_t i = 0; i < n; i++) {
        r.kvs[i].key = strdup(kvs[i].key);
        r.kvs[i].key_len = strlen(kvs[i].key);
        r.kvs[i].value = strdup(kvs[i].value);
        r.kvs[i].value_len = strlen(kvs[i].value);
        r.kvs[i].mod_revision = 20 + (int64_t)i;
    }
    r.n_kvs = n;
    DcsCluster *c = NULL;
    assert_int_equal(dcs_cluster_from_result(&p, &r, &c), 0);
    etcd_result_done(&r);
    dcs_paths_done(&p);
    return c;
}

static const Kv cluster_kvs[] = {
    { PREFIX "config", "{\"synchronous_mode\":true}" },
    { PREFIX "leader", "n1" },
    { PREFIX "members/n1", N1_VALUE },
    { PREFIX "members/n2", N2_VALUE },
    { PREFIX "members/n3", N3_VALUE },
    { PREFIX "sync", "{\"leader\":\"n1\",\"sync_standby\":\"n3\"}" },
    { PREFIX "topology", "{\"version\":4,\"scope\":\"batman\"}" },
};

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    return j;
}

static void test_build_from_view(void **state)
{
    (void)state;
    DcsCluster *c = parse(cluster_kvs, sizeof(cluster_kvs) / sizeof(cluster_kvs[0]));
    assert_int_equal(topology_version(c->topology), 4);
    assert_int_equal(c->topology_mod_revision, 26);
    json_t *doc = NULL;
    assert_int_equal(topology_build(c, "batman", NULL, &doc), 0);
    json_t *want = load(
        "{\"scope\":\"batman\",\"leader\":\"n1\",\"timeline\":2,"
        "\"primary\":{\"name\":\"n1\",\"host\":\"127.0.0.1\",\"port\":5432,"
        "\"api_url\":\"http://127.0.0.1:8008/patroni\"},\"replicas\":["
        "{\"name\":\"n2\",\"host\":\"127.0.0.1\",\"port\":5433,"
        "\"api_url\":\"http://127.0.0.1:8009/patroni\",\"state\":\"running\",\"lag_bytes\":320,"
        "\"sync\":false,\"noloadbalance\":false,\"upstream\":null,"
        "\"tags\":{\"nofailover\":true,\"zone\":\"b\"}},"
        "{\"name\":\"n3\",\"host\":\"127.0.0.1\",\"port\":5434,"
        "\"api_url\":\"http://127.0.0.1:8010/patroni\",\"state\":\"streaming\",\"lag_bytes\":0,"
        "\"sync\":true,\"noloadbalance\":true,\"upstream\":\"n1\","
        "\"tags\":{\"noloadbalance\":true}}]}");
    assert_true(json_equal(doc, want));
    json_decref(want);

    /* stamped: version and time, nothing else changes */
    assert_int_equal(topology_stamp(doc, 5, "2026-11-27T13:00:00.000000+00:00"), 0);
    assert_int_equal(topology_version(doc), 5);
    assert_string_equal(json_string_value(json_object_get(doc, "updated")),
                        "2026-11-27T13:00:00.000000+00:00");
    assert_int_equal(topology_stamp(NULL, 1, "x"), -EINVAL);
    json_decref(doc);
    dcs_cluster_free(c);
}

/* The promoting agent names itself before the view shows its leader key,
 * with the timeline it just read (its member key still says 2). */
static void test_build_with_self(void **state)
{
    (void)state;
    DcsCluster *c = parse(cluster_kvs, sizeof(cluster_kvs) / sizeof(cluster_kvs[0]));
    TopologySelf self = {
        .name = "n3", .host = "10.0.0.3", .port = 6432, .api_url = "http://x/patroni", .timeline = 3
    };
    json_t *doc = NULL;
    assert_int_equal(topology_build(c, "batman", &self, &doc), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "leader")), "n3");
    assert_int_equal(json_integer_value(json_object_get(doc, "timeline")), 3);
    json_t *want = load("{\"name\":\"n3\",\"host\":\"10.0.0.3\",\"port\":6432,"
                        "\"api_url\":\"http://x/patroni\"}");
    assert_true(json_equal(json_object_get(doc, "primary"), want));
    json_decref(want);
    json_t *reps = json_object_get(doc, "replicas");
    assert_int_equal(json_array_size(reps), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reps, 0), "name")), "n1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(reps, 1), "name")), "n2");
    json_decref(doc);

    TopologySelf bad = { 0 };
    assert_int_equal(topology_build(c, "batman", &bad, &doc), -EINVAL);
    dcs_cluster_free(c);
}

static void test_build_without_leader(void **state)
{
    (void)state;
    const Kv kvs[] = { { PREFIX "members/n2", N2_VALUE } };
    DcsCluster *c = parse(kvs, 1);
    json_t *doc = NULL;
    assert_int_equal(topology_build(c, "batman", NULL, &doc), 0);
    assert_true(json_is_null(json_object_get(doc, "leader")));
    assert_true(json_is_null(json_object_get(doc, "primary")));
    assert_true(json_is_null(json_object_get(doc, "timeline")));
    json_t *r = json_array_get(json_object_get(doc, "replicas"), 0);
    assert_string_equal(json_string_value(json_object_get(r, "name")), "n2");
    assert_int_equal(topology_version(doc), 0);
    json_decref(doc);
    dcs_cluster_free(c);
}

static void test_lag_bucket(void **state)
{
    (void)state;
    const struct {
        json_int_t bytes;
        int bucket;
    } cases[] = {
        { 0, 0 },
        { TOPOLOGY_LAG_QUANTUM - 1, 0 },
        { TOPOLOGY_LAG_QUANTUM, 1 },
        { 2 * TOPOLOGY_LAG_QUANTUM - 1, 1 },
        { 2 * TOPOLOGY_LAG_QUANTUM, 2 },
        { 16 * 1024 * 1024, 9 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = json_integer(cases[i].bytes);
        assert_int_equal(topology_lag_bucket(j), cases[i].bucket);
        json_decref(j);
    }
    json_t *n = json_null();
    assert_int_equal(topology_lag_bucket(n), -1);
    assert_int_equal(topology_lag_bucket(NULL), -1);
    json_decref(n);
}

#define DOC(version, lag, state)                                                                   \
    "{\"version\":" version ",\"updated\":\"t" version "\",\"leader\":\"n1\",\"replicas\":["       \
    "{\"name\":\"n2\",\"state\":\"" state "\",\"lag_bytes\":" lag "}]}"

static void test_same(void **state)
{
    (void)state;
    const struct {
        const char *a, *b;
        bool same;
    } cases[] = {
        /* version and time are not a change */
        { DOC("1", "0", "streaming"), DOC("9", "0", "streaming"), true },
        /* lag inside one bucket is not; crossing a bucket is */
        { DOC("1", "10", "streaming"), DOC("2", "65535", "streaming"), true },
        { DOC("1", "10", "streaming"), DOC("2", "65536", "streaming"), false },
        { DOC("1", "70000", "streaming"), DOC("2", "131071", "streaming"), true },
        { DOC("1", "70000", "streaming"), DOC("2", "null", "streaming"), false },
        /* a state is */
        { DOC("1", "0", "streaming"), DOC("2", "0", "stopped"), false },
        { "{\"leader\":\"n1\"}", "{\"leader\":\"n2\"}", false },
        { "{\"leader\":\"n1\"}", "{\"leader\":\"n1\",\"timeline\":3}", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *a = load(cases[i].a), *b = load(cases[i].b);
        assert_int_equal(topology_same(a, b), cases[i].same);
        assert_int_equal(topology_same(b, a), cases[i].same);
        json_decref(a);
        json_decref(b);
    }
    json_t *a = load(DOC("1", "0", "streaming"));
    assert_false(topology_same(a, NULL));
    assert_true(topology_same(NULL, NULL));
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_from_view),
        cmocka_unit_test(test_build_with_self),
        cmocka_unit_test(test_build_without_leader),
        cmocka_unit_test(test_lag_bucket),
        cmocka_unit_test(test_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
