/* lib/topology.c: the routers' document built from a cluster view, and the
 * rewrite decision (which changes a router acts on). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* cluster_kvs with member key `name` replaced by value (NULL: removed) and,
 * when extra is set, one more key. */
static DcsCluster *with_member(const char *name, const char *value, const Kv *extra)
{
    Kv kvs[16];
    size_t n = 0;
    char key[128];
    snprintf(key, sizeof(key), PREFIX "members/%s", name);
    bool seen = false;
    for (size_t i = 0; i < sizeof(cluster_kvs) / sizeof(cluster_kvs[0]); i++) {
        if (extra && strcmp(cluster_kvs[i].key, extra->key) == 0) {
            continue;
        }
        if (strcmp(cluster_kvs[i].key, key) == 0) {
            seen = true;
            if (value) {
                kvs[n++] = (Kv){ cluster_kvs[i].key, value };
            }
            continue;
        }
        kvs[n++] = cluster_kvs[i];
    }
    if (!seen && value) {
        kvs[n++] = (Kv){ key, value };
    }
    if (extra) {
        kvs[n++] = *extra;
    }
    return parse(kvs, n);
}

#define N2_ENDPOINT                                                                                \
    "\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"api_url\":\"http://127.0.0.1:8009/"     \
    "patroni\""

/* Which member key writes a router would notice (the leader's watch wakes
 * its loop for those only). n2 is 320 bytes behind the leader by
 * xlog_location; n3's lag comes from its replication row in n1's key
 * when it has one. */
static void test_member_changed(void **state)
{
    (void)state;
    const Kv n1_with_row = {
        PREFIX "members/n1",
        "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:8008/"
        "patroni\",\"state\":\"running\",\"role\":\"master\",\"xlog_location\":50331968,"
        "\"timeline\":2,\"replication\":[{\"name\":\"n2\",\"state\":\"streaming\","
        "\"replay_lsn\":50331968}]}"
    };
    const struct {
        const char *what, *name, *value;
        const Kv *extra; /* a key of both views */
        bool changed;
    } cases[] = {
        /* positions moving inside the lag bucket: nothing a router reads */
        { "same value", "n2", N2_VALUE, NULL, false },
        { "xlog_location moved 1 KiB", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50330624,\"timeline\":2}",
          NULL, false },
        { "key order and fields no router reads", "n2",
          "{\"timeline\":2,\"xlog_location\":50331648,\"tags\":{\"zone\":\"b\",\"nofailover\":"
          "true},\"role\":\"replica\",\"state\":\"running\",\"version\":\"9.9\","
          "\"pending_restart\":true," N2_ENDPOINT "}",
          NULL, false },
        { "the leader's row decides the lag: xlog_location far behind is no change", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":1,\"timeline\":2}",
          &n1_with_row, false },
        /* what a router reads */
        { "lag crosses a bucket", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50200000,\"timeline\":2}",
          NULL, true },
        { "lag unknown", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"timeline\":2}",
          NULL, true },
        { "state: streaming", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"replication_state\":\"streaming\","
          "\"role\":\"replica\",\"tags\":{\"nofailover\":true,\"zone\":\"b\"},"
          "\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "state: creating replica", "n2",
          "{" N2_ENDPOINT ",\"state\":\"creating replica\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "tag noloadbalance", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\",\"noloadbalance\":true},"
          "\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "tag nofailover dropped", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "tag replicatefrom", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\",\"replicatefrom\":\"n3\"},"
          "\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "upstream", "n2",
          "{" N2_ENDPOINT ",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2,"
          "\"upstream\":\"n3\"}",
          NULL, true },
        { "port", "n2",
          "{\"conn_url\":\"postgres://127.0.0.1:6433/postgres\",\"api_url\":\"http://127.0.0.1:"
          "8009/patroni\",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "api_url", "n2",
          "{\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"api_url\":\"https://127.0.0.1:"
          "8009/patroni\",\"state\":\"running\",\"role\":\"replica\",\"tags\":{"
          "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2}",
          NULL, true },
        { "left", "n2", NULL, NULL, true },
        { "joined", "n4",
          "{\"conn_url\":\"postgres://127.0.0.1:5435/postgres\",\"state\":\"running\"}", NULL,
          true },
        /* the member the leader key names: its endpoint and timeline */
        { "leader's position", "n1",
          "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:"
          "8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"xlog_location\":"
          "50331999,\"timeline\":2}",
          NULL, false },
        { "leader's position moves n2's lag past a bucket", "n1",
          "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:"
          "8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"xlog_location\":"
          "50397184,\"timeline\":2}",
          NULL, true },
        { "leader's timeline", "n1",
          "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:"
          "8008/patroni\",\"state\":\"running\",\"role\":\"master\",\"xlog_location\":"
          "50331968,\"timeline\":3}",
          NULL, true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DcsCluster *before = with_member("n2", N2_VALUE, cases[i].extra);
        DcsCluster *after = with_member(cases[i].name, cases[i].value, cases[i].extra);
        bool got = topology_member_changed(before, after, cases[i].name);
        if (got != cases[i].changed) {
            fail_msg("\"%s\": changed %d, expected %d", cases[i].what, got, cases[i].changed);
        }
        /* and back */
        got = topology_member_changed(after, before, cases[i].name);
        if (got != cases[i].changed) {
            fail_msg("\"%s\" reversed: changed %d, expected %d", cases[i].what, got,
                     cases[i].changed);
        }
        dcs_cluster_free(before);
        dcs_cluster_free(after);
    }
    /* a member absent from both views did not change */
    DcsCluster *c = parse(cluster_kvs, sizeof(cluster_kvs) / sizeof(cluster_kvs[0]));
    assert_false(topology_member_changed(c, c, "nosuch"));
    assert_true(topology_member_changed(NULL, c, "n2"));
    assert_true(topology_member_changed(c, NULL, "n2"));
    assert_true(topology_member_changed(c, c, NULL));
    dcs_cluster_free(c);
}

/* Which document a reader follows: the key's only while its leader is the
 * leader key's member; otherwise (another leader, a leader key gone while
 * the document names one, no key at all) the one built from the member
 * keys, numbered after the key's. Table-driven: the leader key (NULL:
 * absent) and the key's document (NULL: absent). */
static void test_select(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *leader;
        const char *topology;
        TopologySource source;
        const char *want_leader; /* NULL: null */
        int64_t want_version;
    } rows[] = {
        { "agree", "n1", "{\"version\":4,\"leader\":\"n1\",\"replicas\":[]}", TOPOLOGY_SOURCE_KEY,
          "n1", 4 },
        { "disagree", "n3", "{\"version\":4,\"leader\":\"n1\",\"replicas\":[]}",
          TOPOLOGY_SOURCE_STALE, "n3", 5 },
        { "no leader key", NULL, "{\"version\":4,\"leader\":\"n1\",\"replicas\":[]}",
          TOPOLOGY_SOURCE_STALE, NULL, 5 },
        { "no leader either side", NULL, "{\"version\":4,\"leader\":null,\"replicas\":[]}",
          TOPOLOGY_SOURCE_KEY, NULL, 4 },
        { "document without leader", "n1", "{\"version\":4,\"leader\":null,\"replicas\":[]}",
          TOPOLOGY_SOURCE_STALE, "n1", 5 },
        { "no document", "n1", NULL, TOPOLOGY_SOURCE_NO_KEY, "n1", 0 },
        { "nothing", NULL, NULL, TOPOLOGY_SOURCE_NO_KEY, NULL, 0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        Kv kvs[6];
        size_t n = 0;
        kvs[n++] = (Kv){ PREFIX "members/n1", N1_VALUE };
        kvs[n++] = (Kv){ PREFIX "members/n2", N2_VALUE };
        kvs[n++] = (Kv){ PREFIX "members/n3", N3_VALUE };
        if (rows[i].leader) {
            kvs[n++] = (Kv){ PREFIX "leader", rows[i].leader };
        }
        if (rows[i].topology) {
            kvs[n++] = (Kv){ PREFIX "topology", rows[i].topology };
        }
        DcsCluster *c = parse(kvs, n);
        TopologySource source = _TOPOLOGY_SOURCE_INVALID;
        json_t *doc = NULL;
        print_message("row \"%s\"\n", rows[i].name);
        assert_int_equal(topology_source(c), rows[i].source);
        assert_int_equal(topology_select(c, "batman", &doc, &source), 0);
        assert_int_equal(source, rows[i].source);
        assert_int_equal(json_integer_value(json_object_get(doc, "version")), rows[i].want_version);
        const char *leader = topology_leader(doc);
        if (rows[i].want_leader) {
            assert_non_null(leader);
            assert_string_equal(leader, rows[i].want_leader);
            const json_t *p = json_object_get(doc, "primary");
            if (source != TOPOLOGY_SOURCE_KEY) {
                assert_string_equal(json_string_value(json_object_get(p, "name")),
                                    rows[i].want_leader);
            }
        } else {
            assert_null(leader);
            if (source != TOPOLOGY_SOURCE_KEY) {
                assert_true(json_is_null(json_object_get(doc, "primary")));
            }
        }
        if (source == TOPOLOGY_SOURCE_KEY) {
            assert_ptr_equal(doc, c->topology);
        } else {
            /* the leader key's member is not among the replicas */
            size_t k;
            json_t *r;
            size_t want = rows[i].want_leader ? 2 : 3;
            assert_int_equal(json_array_size(json_object_get(doc, "replicas")), want);
            json_array_foreach(json_object_get(doc, "replicas"), k, r)
            {
                const char *name = json_string_value(json_object_get(r, "name"));
                assert_false(rows[i].want_leader && strcmp(name, rows[i].want_leader) == 0);
            }
        }
        json_decref(doc);
        dcs_cluster_free(c);
    }
    json_t *doc = NULL;
    TopologySource source;
    assert_int_equal(topology_select(NULL, "batman", &doc, &source), -EINVAL);
    assert_int_equal(topology_source(NULL), TOPOLOGY_SOURCE_NO_KEY);
}

/* A leader writing over a document that names another leader skips the
 * version readers gave what they built meanwhile. */
static void test_next_version(void **state)
{
    (void)state;
    json_t *mine = load("{\"version\":4,\"leader\":\"n1\"}");
    json_t *other = load("{\"version\":4,\"leader\":\"n2\"}");
    json_t *none = load("{\"version\":4,\"leader\":null}");
    assert_int_equal(topology_next_version(NULL, "n1"), 1);
    assert_int_equal(topology_next_version(mine, "n1"), 5);
    assert_int_equal(topology_next_version(other, "n1"), 6);
    assert_int_equal(topology_next_version(none, "n1"), 6);
    json_decref(mine);
    json_decref(other);
    json_decref(none);
    for (int i = 0; i < _TOPOLOGY_SOURCE_MAX; i++) {
        assert_int_equal(topology_source_from_string(topology_source_to_string(i)), i);
    }
    assert_null(topology_source_to_string(_TOPOLOGY_SOURCE_MAX));
    assert_int_equal(topology_source_from_string("x"), _TOPOLOGY_SOURCE_INVALID);
    assert_int_equal(topology_source_from_string(NULL), _TOPOLOGY_SOURCE_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_from_view),
        cmocka_unit_test(test_build_with_self),
        cmocka_unit_test(test_build_without_leader),
        cmocka_unit_test(test_lag_bucket),
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_member_changed),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_next_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
