/* Unit tests for lib/dcs.c: key paths, parsing a cluster exactly as Patroni
 * 3.0.2 writes it into etcd (an EtcdResult built by hand), malformed values,
 * the encoders' exact bytes and round trips, GET /cluster and lag. */
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

#include "config.h"
#include "dcs.h"
#include "etcd.h"

#define PREFIX "/service/batman/"

/* Values copied from a Patroni 3.0.2 cluster (compact JSON as json.dumps
 * with separators=(',', ':') writes them). */
#define N1_VALUE                                                                                   \
    "{\"conn_url\":\"postgres://127.0.0.1:5432/postgres\",\"api_url\":\"http://127.0.0.1:8008/"    \
    "patroni\",\"state\":\"running\",\"role\":\"master\",\"version\":\"3.0.2\",\"xlog_location\":" \
    "50331968,\"timeline\":2}"
#define N2_VALUE                                                                                   \
    "{\"conn_url\":\"postgres://127.0.0.1:5433/postgres\",\"api_url\":\"http://127.0.0.1:8009/"    \
    "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"tags\":{"        \
    "\"nofailover\":true,\"zone\":\"b\"},\"xlog_location\":50331648,\"timeline\":2}"
#define N3_VALUE                                                                                   \
    "{\"conn_url\":\"postgres://127.0.0.1:5434/postgres\",\"api_url\":\"http://127.0.0.1:8010/"    \
    "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":\"3.0.2\",\"xlog_"           \
    "location\":"                                                                                  \
    "50331968,\"timeline\":2}"
#define CONFIG_VALUE                                                                               \
    "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"maximum_lag_on_failover\":1048576,"       \
    "\"master_start_timeout\":120,\"synchronous_mode\":true,\"postgresql\":{\"use_pg_rewind\":"    \
    "true,\"use_slots\":true,\"parameters\":{\"max_connections\":100,\"hot_standby\":true,"        \
    "\"wal_level\":\"replica\"}}}"
#define HISTORY_VALUE                                                                              \
    "[[1,50331808,\"no recovery target specified\",\"2023-03-24T10:21:12.345678+00:00\","          \
    "\"n1\"]]"

typedef struct Kv {
    const char *key;
    const char *value;
    int64_t lease;
} Kv;

static EtcdResult make_result(const Kv *kvs, size_t n)
{
    EtcdResult r = { .type = ETCD_OP_RANGE, .revision = 42, .count = (int64_t)n };
    r.kvs = calloc(n ? n : 1, sizeof(*r.kvs));
    assert_non_null(r.kvs);
    for (size_t i = 0; i < n; i++) {
        EtcdKeyValue *kv = &r.kvs[i];
        kv->key = strdup(kvs[i].key);
        kv->key_len = strlen(kvs[i].key);
        kv->value = strdup(kvs[i].value);
        kv->value_len = strlen(kvs[i].value);
        kv->create_revision = 10 + (int64_t)i;
        kv->mod_revision = 20 + (int64_t)i;
        kv->version = 1;
        kv->lease = kvs[i].lease;
    }
    r.n_kvs = n;
    return r;
}

static DcsCluster *parse(const Kv *kvs, size_t n)
{
    DcsPaths p;
    assert_int_equal(dcs_paths_init(&p, "/service/", "batman"), 0);
    EtcdResult r = make_result(kvs, n);
    DcsCluster *c = NULL;
    assert_int_equal(dcs_cluster_from_result(&p, &r, &c), 0);
    assert_non_null(c);
    etcd_result_done(&r);
    dcs_paths_done(&p);
    return c;
}

static const Kv patroni_cluster[] = {
    { PREFIX "config", CONFIG_VALUE, 0 },
    { PREFIX "history", HISTORY_VALUE, 0 },
    { PREFIX "initialize", "7214324235435253233", 0 },
    { PREFIX "leader", "n1", 7587869330383545618LL },
    { PREFIX "members/n1", N1_VALUE, 7587869330383545618LL },
    { PREFIX "members/n3", N3_VALUE, 7587869330383545620LL },
    { PREFIX "members/n2", N2_VALUE, 7587869330383545619LL },
    { PREFIX "status", "{\"optime\":50331968,\"slots\":{\"logical1\":50331000}}", 0 },
    { PREFIX "sync", "{\"leader\":\"n1\",\"sync_standby\":\"n3\"}", 0 },
    { PREFIX "optime/leader", "1", 0 }, /* ignored: status wins */
    { "/service/batman2/leader", "other", 0 },
    { PREFIX "dbha/extra", "ours", 0 },
};

/* ---- paths ---- */

static void test_paths(void **state)
{
    static const struct {
        const char *ns, *prefix;
    } v[] = {
        { NULL, "/service/batman/" },
        { "", "/service/batman/" },
        { "service", "/service/batman/" },
        { "/service", "/service/batman/" },
        { "/service/", "/service/batman/" },
        { "//db//", "/db/batman/" },
        { "/", "/batman/" },
        { "a//b", "/a/b/batman/" },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        DcsPaths p;
        assert_int_equal(dcs_paths_init(&p, v[i].ns, "batman"), 0);
        assert_string_equal(p.prefix, v[i].prefix);
        dcs_paths_done(&p);
    }
    DcsPaths p;
    assert_int_equal(dcs_paths_init(&p, NULL, "batman"), 0);
    assert_string_equal(p.leader, PREFIX "leader");
    assert_string_equal(p.members, PREFIX "members/");
    assert_string_equal(p.status, PREFIX "status");
    assert_string_equal(p.leader_optime, PREFIX "optime/leader");
    assert_string_equal(p.initialize, PREFIX "initialize");
    char *k = NULL;
    assert_int_equal(dcs_paths_member(&p, "n1", &k), 0);
    assert_string_equal(k, PREFIX "members/n1");
    free(k);
    assert_int_equal(dcs_paths_member(&p, "a/b", &k), -EINVAL);
    assert_int_equal(dcs_paths_member(&p, "", &k), -EINVAL);
    dcs_paths_done(&p);
    dcs_paths_done(&p); /* idempotent */
    assert_int_equal(dcs_paths_init(&p, NULL, ""), -EINVAL);
    assert_int_equal(dcs_paths_init(&p, NULL, "a/b"), -EINVAL);
    assert_int_equal(dcs_paths_init(&p, NULL, NULL), -EINVAL);
}

static void test_roles(void **state)
{
    assert_string_equal(dcs_role_to_string(DCS_ROLE_PRIMARY), "master");
    assert_string_equal(dcs_role_to_string(DCS_ROLE_STANDBY_LEADER), "standby_leader");
    assert_null(dcs_role_to_string(_DCS_ROLE_MAX));
    assert_null(dcs_role_to_string(_DCS_ROLE_INVALID));
    for (int i = 0; i < _DCS_ROLE_MAX; i++) {
        assert_int_equal(dcs_role_from_string(dcs_role_to_string((DcsRole)i)), i);
    }
    assert_int_equal(dcs_role_from_string("primary"), DCS_ROLE_PRIMARY);
    assert_int_equal(dcs_role_from_string("leader"), _DCS_ROLE_INVALID);
    assert_int_equal(dcs_role_from_string(NULL), _DCS_ROLE_INVALID);
}

/* ---- parsing ---- */

static void test_parse_patroni_cluster(void **state)
{
    DcsCluster *c = parse(patroni_cluster, ELEMENTSOF(patroni_cluster));
    assert_int_equal(c->revision, 42);
    assert_int_equal(c->n_problems, 0);
    assert_string_equal(c->initialize, "7214324235435253233");

    assert_non_null(c->leader);
    assert_string_equal(c->leader->name, "n1");
    assert_int_equal(c->leader->lease, 7587869330383545618LL);
    assert_int_equal(c->leader->mod_revision, 23);

    assert_int_equal(c->n_members, 3);
    assert_string_equal(c->members[0].name, "n1");
    assert_string_equal(c->members[1].name, "n2");
    assert_string_equal(c->members[2].name, "n3");
    const DcsMember *n1 = dcs_cluster_leader_member(c);
    assert_ptr_equal(n1, &c->members[0]);
    assert_true(n1->valid);
    assert_int_equal(n1->role, DCS_ROLE_PRIMARY);
    assert_string_equal(n1->role_text, "master");
    assert_string_equal(n1->state, "running");
    assert_string_equal(n1->version, "3.0.2");
    assert_string_equal(n1->api_url, "http://127.0.0.1:8008/patroni");
    assert_string_equal(n1->conn_url, "postgres://127.0.0.1:5432/postgres");
    assert_string_equal(n1->host, "127.0.0.1");
    assert_int_equal(n1->port, 5432);
    assert_true(n1->has_xlog_location);
    assert_int_equal(n1->xlog_location, 50331968);
    assert_int_equal(n1->timeline, 2);
    assert_null(n1->tags);
    assert_int_equal(n1->lease, 7587869330383545618LL);

    const DcsMember *n2 = dcs_cluster_get_member(c, "n2");
    assert_non_null(n2);
    assert_int_equal(n2->role, DCS_ROLE_REPLICA);
    assert_int_equal(n2->port, 5433);
    assert_non_null(n2->tags);
    assert_true(json_is_true(json_object_get(n2->tags, "nofailover")));
    assert_string_equal(json_string_value(json_object_get(n2->tags, "zone")), "b");
    assert_null(dcs_cluster_get_member(c, "n4"));

    assert_non_null(c->config);
    assert_int_equal(c->config->dcs.ttl, 30);
    assert_int_equal(c->config->dcs.primary_start_timeout, 120); /* master_start_timeout */
    assert_int_equal(c->config->dcs.primary_stop_timeout, 0);
    assert_true(c->config->dcs.synchronous_mode);
    assert_true(c->config->dcs.use_pg_rewind);
    assert_true(c->config->dcs.use_slots);
    assert_int_equal(c->config->dcs.parameters.n, 3);
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "max_connections"), "100");
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "hot_standby"), "on");
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "wal_level"), "replica");
    assert_false(dcs_cluster_is_paused(c));
    assert_false(dcs_cluster_is_standby(c));

    assert_non_null(c->history);
    assert_int_equal(c->history->n_entries, 1);
    assert_int_equal(c->history->entries[0].timeline, 1);
    assert_int_equal(c->history->entries[0].lsn, 50331808);
    assert_string_equal(c->history->entries[0].reason, "no recovery target specified");
    assert_string_equal(c->history->entries[0].timestamp, "2023-03-24T10:21:12.345678+00:00");
    assert_string_equal(c->history->entries[0].new_leader, "n1");

    assert_true(c->status.has_optime);
    assert_false(c->status.legacy_optime);
    assert_int_equal(c->status.optime, 50331968);
    assert_int_equal(json_integer_value(json_object_get(c->status.slots, "logical1")), 50331000);

    assert_non_null(c->sync);
    assert_string_equal(c->sync->leader, "n1");
    assert_int_equal(c->sync->n_members, 1);
    assert_true(dcs_cluster_is_sync_standby(c, "n3"));
    assert_true(dcs_cluster_is_sync_standby(c, "N3"));
    assert_false(dcs_cluster_is_sync_standby(c, "n2"));
    assert_null(c->failover);
    assert_null(c->failsafe);
    dcs_cluster_free(c);
}

static void test_parse_empty(void **state)
{
    DcsCluster *c = parse(NULL, 0);
    assert_null(c->leader);
    assert_null(c->initialize);
    assert_null(c->config);
    assert_int_equal(c->n_members, 0);
    assert_false(c->status.has_optime);
    assert_null(dcs_cluster_leader_member(c));
    uint64_t lsn;
    assert_int_equal(dcs_cluster_reference_lsn(c, &lsn), -ENODATA);
    json_t *j = NULL;
    assert_int_equal(dcs_cluster_to_json(c, NULL, &j), 0);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"members\":[]}");
    free(s);
    json_decref(j);
    dcs_cluster_free(c);
    assert_null(dcs_cluster_free(NULL));
}

static void test_parse_malformed(void **state)
{
    static const Kv kvs[] = {
        { PREFIX "members/bad", "{not json", 0 },
        { PREFIX "members/list", "[1,2]", 0 },
        { PREFIX "members/odd",
          "{\"role\":\"captain\",\"xlog_location\":\"x\",\"timeline\":\"two\",\"tags\":[1],"
          "\"conn_url\":\"postgres:///nohost\",\"state\":7}",
          0 },
        { PREFIX "members/", "{}", 0 },
        { PREFIX "members/a/b", "{}", 0 },
        { PREFIX "leader", "", 0 },
        { PREFIX "config", "\"ttl\"", 0 },
        { PREFIX "history", "[[1],[\"x\",1],{\"a\":1},[2,100,\"r\"]]", 0 },
        { PREFIX "sync", "nope", 0 },
        { PREFIX "status", "{\"optime\":-5}", 0 },
        { PREFIX "failover", "n1: n2", 0 },
        { PREFIX "failsafe", "[]", 0 },
    };
    DcsCluster *c = parse(kvs, ELEMENTSOF(kvs));
    assert_int_equal(c->n_members, 3);
    const DcsMember *bad = dcs_cluster_get_member(c, "bad");
    assert_non_null(bad);
    assert_false(bad->valid);
    assert_true(json_is_object(bad->data));
    assert_null(bad->state);
    assert_int_equal(bad->role, _DCS_ROLE_INVALID);
    assert_false(dcs_cluster_get_member(c, "list")->valid);
    const DcsMember *odd = dcs_cluster_get_member(c, "odd");
    assert_true(odd->valid);
    assert_int_equal(odd->role, _DCS_ROLE_INVALID);
    assert_string_equal(odd->role_text, "captain");
    assert_false(odd->has_xlog_location);
    assert_int_equal(odd->timeline, 0);
    assert_null(odd->tags);
    assert_null(odd->host);
    assert_null(odd->state);
    assert_null(c->leader);
    assert_non_null(c->config);
    assert_int_equal(c->config->dcs.ttl, 30); /* defaults */
    assert_int_equal(c->history->n_entries, 1);
    assert_int_equal(c->history->entries[0].timeline, 2);
    assert_null(c->history->entries[0].timestamp);
    assert_non_null(c->sync);
    assert_int_equal(c->sync->n_members, 0);
    assert_false(c->status.has_optime);
    assert_non_null(c->failover);
    assert_string_equal(c->failover->leader, "n1");
    assert_string_equal(c->failover->candidate, "n2");
    assert_null(c->failsafe);
    assert_true(c->n_problems >= 12);

    /* a view with such members still renders */
    json_t *j = NULL;
    assert_int_equal(dcs_cluster_to_json(c, "batman", &j), 0);
    json_t *m0 = json_array_get(json_object_get(j, "members"), 0);
    assert_string_equal(json_string_value(json_object_get(m0, "name")), "bad");
    assert_string_equal(json_string_value(json_object_get(m0, "state")), "");
    assert_true(json_is_null(json_object_get(m0, "api_url")));
    assert_string_equal(json_string_value(json_object_get(m0, "lag")), "unknown");
    json_decref(j);
    dcs_cluster_free(c);
}

/* A config key someone else wrote with a name PostgreSQL would not read
 * (one that would inject lines into postgresql.conf): none of its
 * parameters is kept, the rest of the key is. */
static void test_parse_bad_parameter_name(void **state)
{
    static const Kv kvs[] = {
        { PREFIX "config",
          "{\"ttl\":20,\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\","
          "\"x = 1\\nhba_file\":\"/tmp/evil\"}}}",
          0 },
    };
    DcsCluster *c = parse(kvs, ELEMENTSOF(kvs));
    assert_non_null(c->config);
    assert_int_equal(c->config->dcs.ttl, 20);
    assert_int_equal(c->config->dcs.parameters.n, 0);
    assert_string_equal(c->config->bad_parameter, "x = 1\nhba_file");
    assert_int_equal(c->n_problems, 1);
    dcs_cluster_free(c);

    static const Kv good[] = {
        { PREFIX "config", "{\"postgresql\":{\"parameters\":{\"dbha_test.path\":\"C:\\\\t\"}}}",
          0 },
    };
    c = parse(good, ELEMENTSOF(good));
    assert_null(c->config->bad_parameter);
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "dbha_test.path"), "C:\\t");
    dcs_cluster_free(c);
}

/* etcd keys are bytes: a key with a NUL in it ("leader\0x", as another
 * client may write under the prefix) is not the key its C-string prefix
 * names. It used to replace the real leader (and sync, config, ...) key and
 * leak the first one's parse, or add a second member of the same name
 * (found by fuzz/fuzz_dcs.c). */
static void test_parse_key_with_nul(void **state)
{
    static const struct {
        const char *key;
        size_t key_len;
        const char *value;
    } raw[] = {
        { PREFIX "config", sizeof(PREFIX "config") - 1, "{\"ttl\":20}" },
        { PREFIX "config\0x", sizeof(PREFIX "config\0x") - 1, "{\"ttl\":40}" },
        { PREFIX "leader", sizeof(PREFIX "leader") - 1, "n1" },
        { PREFIX "leader\0x", sizeof(PREFIX "leader\0x") - 1, "n2" },
        { PREFIX "members/n1", sizeof(PREFIX "members/n1") - 1, N1_VALUE },
        { PREFIX "members/n1\0", sizeof(PREFIX "members/n1\0") - 1, N2_VALUE },
        { PREFIX "sync", sizeof(PREFIX "sync") - 1, "{\"leader\":\"n1\",\"sync_standby\":\"n3\"}" },
        { PREFIX "sync\0", sizeof(PREFIX "sync\0") - 1, "{\"leader\":\"n2\"}" },
    };
    EtcdResult r = { .type = ETCD_OP_RANGE, .revision = 42, .count = ELEMENTSOF(raw) };
    r.kvs = calloc(ELEMENTSOF(raw), sizeof(*r.kvs));
    assert_non_null(r.kvs);
    for (size_t i = 0; i < ELEMENTSOF(raw); i++) {
        EtcdKeyValue *kv = &r.kvs[i];
        kv->key = malloc(raw[i].key_len + 1);
        assert_non_null(kv->key);
        memcpy(kv->key, raw[i].key, raw[i].key_len + 1);
        kv->key_len = raw[i].key_len;
        kv->value = strdup(raw[i].value);
        assert_non_null(kv->value);
        kv->value_len = strlen(raw[i].value);
        r.n_kvs++;
    }
    DcsPaths p;
    assert_int_equal(dcs_paths_init(&p, "/service/", "batman"), 0);
    DcsCluster *c = NULL;
    assert_int_equal(dcs_cluster_from_result(&p, &r, &c), 0);
    assert_non_null(c->leader);
    assert_string_equal(c->leader->name, "n1");
    assert_int_equal(c->config->dcs.ttl, 20);
    assert_int_equal(c->n_members, 1);
    assert_string_equal(c->members[0].role_text, "master");
    assert_string_equal(c->sync->leader, "n1");
    assert_int_equal(c->n_problems, 4);
    dcs_cluster_free(c);
    dcs_paths_done(&p);
    etcd_result_done(&r);
}

/* max_timelines_history as Patroni applies it when it writes history:
 * history[-max:], 0 keeping everything. */
static void test_history_trimmed(void **state)
{
    static const struct {
        const char *name, *old;
        int64_t max;
        const char *expect;
    } rows[] = {
        { "unlimited", "[[1,5,\"a\"],[2,6,\"b\"]]", 0, "[[1,5,\"a\"],[2,6,\"b\"],[3,7,\"r\"]]" },
        { "one", "[[1,5,\"a\"],[2,6,\"b\"]]", 1, "[[3,7,\"r\"]]" },
        { "two", "[[1,5,\"a\"],[2,6,\"b\"]]", 2, "[[2,6,\"b\"],[3,7,\"r\"]]" },
        { "room_left", "[[1,5,\"a\"]]", 5, "[[1,5,\"a\"],[3,7,\"r\"]]" },
        { "empty", "[]", 1, "[[3,7,\"r\"]]" },
        { "malformed_lines_count", "[\"x\",[2,6,\"b\"]]", 2, "[[2,6,\"b\"],[3,7,\"r\"]]" },
    };
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        char *s = NULL;
        assert_int_equal(dcs_history_append(rows[i].old, 3, 7, "r", NULL, NULL, rows[i].max, &s),
                         0);
        if (strcmp(s, rows[i].expect) != 0) {
            fail_msg("%s: got %s", rows[i].name, s);
        }
        free(s);
    }
    /* each promotion of a run keeps the cap */
    char *h = strdup("[]");
    for (int64_t tl = 1; tl <= 10; tl++) {
        char *next = NULL;
        assert_int_equal(dcs_history_append(h, tl, (uint64_t)tl * 100, "r", NULL, NULL, 3, &next),
                         0);
        free(h);
        h = next;
    }
    assert_string_equal(h, "[[8,800,\"r\"],[9,900,\"r\"],[10,1000,\"r\"]]");
    free(h);
    /* bootstrap.dcs seeds it into the config key, which the agents read */
    ConfigDcs d = { .ttl = 30, .loop_wait = 10, .retry_timeout = 10, .max_timelines_history = 2 };
    char *encoded = NULL;
    assert_int_equal(dcs_config_encode(&d, &encoded), 0);
    assert_non_null(strstr(encoded, "\"max_timelines_history\":2"));
    const Kv kvs[] = { { PREFIX "config", encoded, 0 } };
    DcsCluster *c = parse(kvs, ELEMENTSOF(kvs));
    assert_int_equal(c->config->dcs.max_timelines_history, 2);
    assert_false(c->config->dcs.check_timeline);
    dcs_cluster_free(c);
    free(encoded);
    /* check_timeline the same way (written only when on, as Patroni's default is off) */
    d.check_timeline = true;
    assert_int_equal(dcs_config_encode(&d, &encoded), 0);
    assert_non_null(strstr(encoded, "\"check_timeline\":true"));
    const Kv kvs2[] = { { PREFIX "config", encoded, 0 } };
    c = parse(kvs2, ELEMENTSOF(kvs2));
    assert_true(c->config->dcs.check_timeline);
    assert_false(dcs_cluster_is_paused(c));
    dcs_cluster_free(c);
    free(encoded);
    /* pause the same way: the cluster seeded from it is paused */
    d.pause = true;
    assert_int_equal(dcs_config_encode(&d, &encoded), 0);
    assert_non_null(strstr(encoded, "\"pause\":true"));
    const Kv kvs3[] = { { PREFIX "config", encoded, 0 } };
    c = parse(kvs3, ELEMENTSOF(kvs3));
    assert_true(dcs_cluster_is_paused(c));
    dcs_cluster_free(c);
    free(encoded);
}

static void test_parse_legacy(void **state)
{
    static const Kv kvs[] = {
        { PREFIX "members/old",
          "postgres://replicator:pw@10.0.0.5:5435/postgres?application_name=http://10.0.0.5:8008/"
          "patroni",
          0 },
        { PREFIX "optime/leader", "12345", 0 },
        { PREFIX "leader", "old", 0 },
        { PREFIX "failover",
          "{\"leader\":\"old\",\"member\":\"new\",\"scheduled_at\":"
          "\"2023-03-24T12:00:00+00:00\"}",
          0 },
        { PREFIX "config", "{\"pause\":true,\"standby_cluster\":{\"host\":\"10.1.1.1\"}}", 0 },
        { PREFIX "sync", "{\"leader\":\"old\",\"sync_standby\":\"a, b\"}", 0 },
    };
    DcsCluster *c = parse(kvs, ELEMENTSOF(kvs));
    const DcsMember *m = dcs_cluster_get_member(c, "old");
    assert_true(m->valid);
    assert_string_equal(m->conn_url, "postgres://replicator:pw@10.0.0.5:5435/postgres");
    assert_string_equal(m->api_url, "http://10.0.0.5:8008/patroni");
    assert_string_equal(m->host, "10.0.0.5");
    assert_int_equal(m->port, 5435);
    assert_true(c->status.has_optime);
    assert_true(c->status.legacy_optime);
    assert_int_equal(c->status.optime, 12345);
    assert_string_equal(c->failover->candidate, "new");
    assert_string_equal(c->failover->scheduled_at, "2023-03-24T12:00:00+00:00");
    assert_true(dcs_cluster_is_paused(c));
    assert_true(dcs_cluster_is_standby(c));
    assert_int_equal(c->sync->n_members, 2);
    assert_true(dcs_cluster_is_sync_standby(c, "b"));

    json_t *j = NULL;
    assert_int_equal(dcs_cluster_to_json(c, NULL, &j), 0);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(
        s, "{\"members\":[{\"name\":\"old\",\"role\":\"standby_leader\",\"state\":\"\","
           "\"api_url\":\"http://10.0.0.5:8008/patroni\",\"host\":\"10.0.0.5\",\"port\":5435}],"
           "\"pause\":true,\"scheduled_switchover\":{\"at\":\"2023-03-24T12:00:00+00:00\","
           "\"from\":\"old\",\"to\":\"new\"}}");
    free(s);
    json_decref(j);
    dcs_cluster_free(c);
}

static void test_conn_url(void **state)
{
    static const struct {
        const char *url, *host;
        int port, r;
    } v[] = {
        { "postgres://127.0.0.1:5432/postgres", "127.0.0.1", 5432, 0 },
        { "postgres://db1/postgres", "db1", 5432, 0 },
        { "postgresql://u:p@db1:6000", "db1", 6000, 0 },
        { "postgres://[::1]:5433/postgres", "::1", 5433, 0 },
        { "postgres://[::1]/postgres", "::1", 5432, 0 },
        { "postgres://db1:/x", "db1", 5432, 0 },
        { "postgres:///postgres", NULL, 0, -EINVAL },
        { "postgres://db1:99999/x", NULL, 0, -EINVAL },
        { "postgres://db1:12a/x", NULL, 0, -EINVAL },
        { "postgres://[::1/x", NULL, 0, -EINVAL },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        char *h = NULL;
        int port = -1;
        int r = dcs_parse_conn_url(v[i].url, &h, &port);
        assert_int_equal(r, v[i].r);
        if (r == 0) {
            assert_string_equal(h, v[i].host);
            assert_int_equal(port, v[i].port);
            free(h);
        }
    }
}

/* ---- switchover candidates and scheduled times ---- */

static void test_candidates(void **state)
{
    DcsCluster *c = parse(patroni_cluster, ELEMENTSOF(patroni_cluster));
    assert_string_equal(dcs_candidate_problem(c, NULL, false), "no such member");
    assert_string_equal(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n1"), false),
                        "it is the current leader");
    assert_string_equal(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n2"), false),
                        "it is tagged nofailover");
    assert_null(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n3"), false));
    assert_string_equal(dcs_pick_candidate(c)->name, "n3");
    assert_null(dcs_failover_candidate(c)); /* no failover key */
    dcs_cluster_free(c);

    static const Kv kvs[] = {
        { PREFIX "config", "{\"maximum_lag_on_failover\":100}", 0 },
        { PREFIX "leader", "n1", 0 },
        { PREFIX "members/n1", "{\"state\":\"running\",\"xlog_location\":1000}", 0 },
        { PREFIX "members/n2", "{\"state\":\"running\",\"xlog_location\":800}", 0 },
        { PREFIX "members/n3", "{\"state\":\"running\",\"xlog_location\":950}", 0 },
        { PREFIX "members/n4", "{\"state\":\"stopped\",\"xlog_location\":1000}", 0 },
    };
    c = parse(kvs, ELEMENTSOF(kvs));
    assert_string_equal(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n2"), false),
                        "it lags more than maximum_lag_on_failover");
    assert_null(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n2"), true));
    assert_string_equal(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n4"), true),
                        "it is not running");
    assert_string_equal(dcs_pick_candidate(c)->name, "n3");
    dcs_cluster_free(c);
    c = parse(kvs + 1, 2); /* only the leader */
    assert_null(dcs_pick_candidate(c));
    dcs_cluster_free(c);
}

static void test_history_diverged(void **state)
{
    DcsCluster *c = parse(patroni_cluster, ELEMENTSOF(patroni_cluster));
    const DcsHistory *h = c->history; /* timeline 1 ended at 50331808 */
    assert_non_null(h);
    assert_false(dcs_history_diverged(h, 1, 50331808, 2)); /* exactly at the fork: follows */
    assert_true(dcs_history_diverged(h, 1, 50331809, 2));
    assert_true(dcs_history_diverged(h, 1, 50331809, 5));
    assert_false(dcs_history_diverged(h, 1, 60000000, 1)); /* the leader is on our timeline */
    assert_false(dcs_history_diverged(h, 2, 60000000, 3)); /* the history does not say */
    assert_false(dcs_history_diverged(h, 0, 60000000, 3));
    assert_false(dcs_history_diverged(NULL, 1, 60000000, 2));
    dcs_cluster_free(c);
}

static void test_parse_time(void **state)
{
    static const struct {
        const char *s;
        double epoch;
    } good[] = {
        { "2026-11-27T08:00:00+00:00", 1795766400.0 },
        { "2026-11-27T08:00:00Z", 1795766400.0 },
        { "2026-11-27 09:30:00+01:30", 1795766400.0 },
        { "2026-11-27T03:00:00-0500", 1795766400.0 },
        { "2026-11-27T08:00:00.25+00:00", 1795766400.25 },
        { "2026-11-27T08:00+00", 1795766400.0 },
        { "2024-02-29T00:00:00Z", 1709164800.0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(good); i++) {
        double t = 0;
        assert_int_equal(dcs_parse_time(good[i].s, &t), 0);
        assert_true(t == good[i].epoch);
    }
    static const char *const bad[] = {
        "2026-11-27T08:00:00", /* no timezone */
        "2026-11-27",
        "",
        "now",
        "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T08:00:00+25:00",
        "2026-11-27T08:00:00Z trailing",
        "2026-11-27T08:00:00.+00:00",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        double t = 0;
        assert_int_equal(dcs_parse_time(bad[i], &t), -EINVAL);
    }
    assert_int_equal(dcs_parse_time(NULL, NULL), -EINVAL);
}

/* ---- lag and /cluster ---- */

static void test_lag(void **state)
{
    DcsCluster *c = parse(patroni_cluster, ELEMENTSOF(patroni_cluster));
    uint64_t lag = 99;
    assert_int_equal(dcs_member_lag(c, dcs_cluster_get_member(c, "n1"), &lag), 0);
    assert_int_equal(lag, 0);
    assert_int_equal(dcs_member_lag(c, dcs_cluster_get_member(c, "n2"), &lag), 0);
    assert_int_equal(lag, 320);
    assert_int_equal(dcs_member_lag(c, dcs_cluster_get_member(c, "n3"), &lag), 0);
    assert_int_equal(lag, 0);
    dcs_cluster_free(c);

    /* no status: the leader's xlog_location is the reference; a member ahead is 0 */
    static const Kv kvs[] = {
        { PREFIX "leader", "n1", 0 },
        { PREFIX "members/n1", "{\"xlog_location\":1000}", 0 },
        { PREFIX "members/n2", "{\"xlog_location\":400}", 0 },
        { PREFIX "members/n3", "{\"xlog_location\":2000}", 0 },
        { PREFIX "members/n4", "{\"state\":\"stopped\"}", 0 },
    };
    c = parse(kvs, ELEMENTSOF(kvs));
    assert_int_equal(dcs_member_lag(c, dcs_cluster_get_member(c, "n2"), &lag), 0);
    assert_int_equal(lag, 600);
    assert_int_equal(dcs_member_lag(c, dcs_cluster_get_member(c, "n3"), &lag), 0);
    assert_int_equal(lag, 0);
    assert_int_equal(dcs_member_lag(c, dcs_cluster_get_member(c, "n4"), &lag), -ENODATA);
    dcs_cluster_free(c);

    /* no leader, no status: unknown */
    c = parse(kvs + 2, 1);
    assert_int_equal(dcs_member_lag(c, &c->members[0], &lag), -ENODATA);
    dcs_cluster_free(c);
}

/* dbha's own member fields: the leader's replication rows, a replica's
 * receive/replay positions, pause and own lag. */
static const Kv lag_cluster[] = {
    { PREFIX "config", "{\"maximum_lag_on_failover\":500}", 0 },
    { PREFIX "leader", "n1", 0 },
    { PREFIX "members/n1",
      "{\"state\":\"running\",\"role\":\"master\",\"xlog_location\":10000,\"replication\":["
      "{\"name\":\"n2\",\"state\":\"streaming\",\"sync_state\":\"async\",\"write_lsn\":9800,"
      "\"flush_lsn\":9700,\"replay_lsn\":9000,\"write_lag\":0.1,\"flush_lag\":0.2,"
      "\"replay_lag\":1.5},"
      "{\"name\":\"n3\",\"state\":\"streaming\",\"sync_state\":\"async\",\"write_lsn\":10000,"
      "\"flush_lsn\":10000,\"replay_lsn\":10000,\"write_lag\":null,\"flush_lag\":null,"
      "\"replay_lag\":null},"
      "{\"name\":\"n4\",\"state\":\"streaming\",\"sync_state\":\"async\",\"write_lsn\":null,"
      "\"flush_lsn\":null,\"replay_lsn\":9990,\"write_lag\":null,\"flush_lag\":null,"
      "\"replay_lag\":null},"
      "{\"name\":\"n8\",\"replay_lsn\":9500,\"replay_lag\":3},"
      "{\"state\":\"streaming\"}]}",
      0 },
    { PREFIX "members/n2",
      "{\"state\":\"running\",\"role\":\"replica\",\"xlog_location\":9800,\"receive_lsn\":"
      "9800,\"replay_lsn\":9000,\"replay_paused\":true,\"lag_seconds\":30.5}",
      0 },
    { PREFIX "members/n3",
      "{\"state\":\"running\",\"role\":\"replica\",\"xlog_location\":10000,\"receive_lsn\":"
      "10000,\"replay_lsn\":10000,\"lag_seconds\":0}",
      0 },
    { PREFIX "members/n4",
      "{\"state\":\"running\",\"role\":\"replica\",\"xlog_location\":9990,\"replay_lsn\":"
      "9990,\"lag_seconds\":2.25}",
      0 },
    { PREFIX "members/n5",
      "{\"state\":\"running\",\"role\":\"replica\",\"xlog_location\":9950,\"receive_lsn\":"
      "9950,\"replay_lsn\":9400,\"lag_seconds\":4,\"failover_blocked\":\"replay is paused\","
      "\"upstream\":\"n2\"}",
      0 },
    { PREFIX "members/n6", "{\"state\":\"running\",\"role\":\"replica\",\"xlog_location\":9950}",
      0 },
    { PREFIX "members/n7", "{\"state\":\"stopped\",\"role\":\"replica\"}", 0 },
    { PREFIX "members/n8",
      "{\"state\":\"running\",\"role\":\"replica\",\"replay_lsn\":9500,\"lag_seconds\":1}", 0 },
    { PREFIX "status", "{\"optime\":10100}", 0 },
};

static void test_lag_info(void **state)
{
    DcsCluster *c = parse(lag_cluster, ELEMENTSOF(lag_cluster));
    assert_int_equal(c->n_problems, 1); /* the row without a name */
    const DcsMember *n1 = dcs_cluster_get_member(c, "n1");
    assert_int_equal(n1->n_replication, 4);
    assert_string_equal(n1->replication[0].name, "n2");
    assert_string_equal(n1->replication[0].sync_state, "async");
    assert_true(n1->replication[1].has_replay_lsn && !n1->replication[1].has_replay_lag);
    assert_false(n1->replication[2].has_write_lsn);
    const DcsMember *n2 = dcs_cluster_get_member(c, "n2");
    assert_true(n2->has_receive_lsn && n2->receive_lsn == 9800);
    assert_true(n2->has_replay_lsn && n2->replay_lsn == 9000);
    assert_true(n2->replay_paused);
    assert_true(n2->has_lag_seconds && n2->lag_seconds == 30.5);
    assert_string_equal(dcs_cluster_get_member(c, "n5")->failover_blocked, "replay is paused");
    assert_string_equal(dcs_cluster_get_member(c, "n5")->upstream, "n2");
    assert_null(dcs_cluster_get_member(c, "n4")->upstream);
    assert_non_null(dcs_cluster_replication_row(c, "n3"));
    assert_null(dcs_cluster_replication_row(c, "n5"));

    static const struct {
        const char *name;
        int r;
        uint64_t bytes;
        bool has_seconds;
        double seconds;
        bool has_write, has_flush;
        uint64_t write, flush;
        bool paused;
    } rows[] = {
        /* the leader */
        { "n1", 0, 0, true, 0, false, false, 0, 0, false },
        /* the leader's row: its xlog_location - the row's positions; paused, so
         * the member's own (larger) seconds beat the row's replay_lag */
        { "n2", 0, 1000, true, 30.5, true, true, 200, 300, true },
        /* the leader's row, its replay_lag larger than the member's own */
        { "n8", 0, 500, true, 3, false, false, 0, 0, false },
        /* NULL replay_lag at the leader's position: caught up, 0 s */
        { "n3", 0, 0, true, 0, true, true, 0, 0, false },
        /* NULL replay_lag, behind: the member's own lag_seconds */
        { "n4", 0, 10, true, 2.25, false, false, 0, 0, false },
        /* no row (it streams from another member): status optime - replay_lsn */
        { "n5", 0, 700, true, 4, false, false, 0, 0, false },
        /* written by Patroni: status optime - xlog_location, no seconds */
        { "n6", 0, 150, false, 0, false, false, 0, 0, false },
        /* no position */
        { "n7", -ENODATA, 0, false, 0, false, false, 0, 0, false },
    };
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        DcsLag l = { .bytes = 4242 };
        const DcsMember *m = dcs_cluster_get_member(c, rows[i].name);
        int r = dcs_member_lag_info(c, m, &l);
        if (r != rows[i].r) {
            fail_msg("%s: r=%d", rows[i].name, r);
        }
        if (r < 0) {
            assert_int_equal(l.bytes, 4242); /* untouched */
            continue;
        }
        if (l.bytes != rows[i].bytes || l.has_seconds != rows[i].has_seconds ||
            (l.has_seconds && l.seconds != rows[i].seconds) ||
            l.has_write_bytes != rows[i].has_write || l.has_flush_bytes != rows[i].has_flush ||
            (l.has_write_bytes && l.write_bytes != rows[i].write) ||
            (l.has_flush_bytes && l.flush_bytes != rows[i].flush) ||
            l.replay_paused != rows[i].paused) {
            fail_msg("%s: bytes %llu seconds %d/%g write %d/%llu flush %d/%llu paused %d",
                     rows[i].name, (unsigned long long)l.bytes, l.has_seconds, l.seconds,
                     l.has_write_bytes, (unsigned long long)l.write_bytes, l.has_flush_bytes,
                     (unsigned long long)l.flush_bytes, l.replay_paused);
        }
        uint64_t bytes = 0;
        assert_int_equal(dcs_member_lag(c, m, &bytes), 0);
        assert_int_equal(bytes, rows[i].bytes);
    }
    DcsLag l;
    assert_true(dcs_member_lag_info(c, n2, &l) == 0 && l.has_write_seconds &&
                l.write_seconds == 0.1 && l.has_flush_seconds && l.flush_seconds == 0.2);

    /* a candidate's lag is the WAL it holds (Patroni's wal_position): n2
     * replayed 1000 bytes less than the leader wrote, past
     * maximum_lag_on_failover 500, but has flushed all but 300 */
    static const struct {
        const char *name;
        int r;
        uint64_t bytes;
    } held[] = {
        { "n1", 0, 0 },   /* the leader */
        { "n2", 0, 300 }, /* the row's flush beats its replay */
        { "n8", 0, 500 }, /* no flush in the row: its replay */
        { "n4", 0, 10 },  /* flush NULL, replay 9990 */
        { "n5", 0, 150 }, /* no row: status optime - xlog_location (received) */
        { "n6", 0, 150 }, { "n7", -ENODATA, 0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(held); i++) {
        uint64_t bytes = 4242;
        int r = dcs_member_wal_lag(c, dcs_cluster_get_member(c, held[i].name), &bytes);
        if (r != held[i].r || (r == 0 && bytes != held[i].bytes) || (r < 0 && bytes != 4242)) {
            fail_msg("%s: r=%d bytes %llu", held[i].name, r, (unsigned long long)bytes);
        }
    }
    assert_null(dcs_candidate_problem(c, n2, false));
    assert_null(dcs_candidate_problem(c, dcs_cluster_get_member(c, "n3"), false));
    assert_string_equal(dcs_pick_candidate(c)->name, "n3");

    /* GET /cluster */
    json_t *j = NULL;
    assert_int_equal(dcs_cluster_to_json(c, NULL, &j), 0);
    json_t *ms = json_object_get(j, "members");
    char *s = json_dumps(json_array_get(ms, 1), JSON_COMPACT);
    assert_string_equal(s,
                        "{\"name\":\"n2\",\"role\":\"replica\",\"state\":\"running\","
                        "\"api_url\":null,\"lag\":1000,\"lag_seconds\":30.5,"
                        "\"write_lag_bytes\":200,\"flush_lag_bytes\":300,\"replay_paused\":true}");
    free(s);
    s = json_dumps(json_array_get(ms, 4), JSON_COMPACT);
    assert_string_equal(s, "{\"name\":\"n5\",\"role\":\"replica\",\"state\":\"running\","
                           "\"api_url\":null,\"lag\":700,\"lag_seconds\":4.0,"
                           "\"failover_blocked\":\"replay is paused\"}");
    free(s);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 6), "lag")),
                        "unknown");
    json_decref(j);
    dcs_cluster_free(c);

    /* no leader, no status: only the member's own seconds are known */
    c = parse(lag_cluster + 3, 1);
    assert_int_equal(dcs_member_lag_info(c, &c->members[0], &l), -ENODATA);
    dcs_cluster_free(c);
}

static void test_cluster_to_json(void **state)
{
    DcsCluster *c = parse(patroni_cluster, ELEMENTSOF(patroni_cluster));
    json_t *j = NULL;
    assert_int_equal(dcs_cluster_to_json(c, "batman", &j), 0);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(
        s, "{\"members\":["
           "{\"name\":\"n1\",\"role\":\"leader\",\"state\":\"running\","
           "\"api_url\":\"http://127.0.0.1:8008/patroni\",\"host\":\"127.0.0.1\",\"port\":5432,"
           "\"timeline\":2},"
           "{\"name\":\"n2\",\"role\":\"replica\",\"state\":\"running\","
           "\"api_url\":\"http://127.0.0.1:8009/patroni\",\"host\":\"127.0.0.1\",\"port\":5433,"
           "\"timeline\":2,\"tags\":{\"nofailover\":true,\"zone\":\"b\"},\"lag\":320},"
           "{\"name\":\"n3\",\"role\":\"sync_standby\",\"state\":\"running\","
           "\"api_url\":\"http://127.0.0.1:8010/patroni\",\"host\":\"127.0.0.1\",\"port\":5434,"
           "\"timeline\":2,\"lag\":0}],"
           "\"scope\":\"batman\"}");
    free(s);
    json_decref(j);
    dcs_cluster_free(c);
}

/* ---- encoders ---- */

static void test_member_encode(void **state)
{
    json_t *tags = json_pack("{s:b, s:s}", "nofailover", 1, "zone", "b");
    DcsMemberInfo mi = {
        .conn_url = "postgres://127.0.0.1:5433/postgres",
        .api_url = "http://127.0.0.1:8009/patroni",
        .state = "running",
        .role = DCS_ROLE_REPLICA,
        .version = "3.0.2",
        .tags = tags,
        .has_xlog_location = true,
        .xlog_location = 50331648,
        .timeline = 2,
    };
    char *s = NULL;
    assert_int_equal(dcs_member_encode(&mi, &s), 0);
    assert_string_equal(s, N2_VALUE); /* byte for byte what Patroni wrote */
    free(s);

    mi = (DcsMemberInfo){
        .conn_url = "postgres://127.0.0.1:5432/postgres",
        .api_url = "http://127.0.0.1:8008/patroni",
        .state = "running",
        .role = DCS_ROLE_PRIMARY,
        .version = "3.0.2",
        .has_xlog_location = true,
        .xlog_location = 50331968,
        .timeline = 2,
    };
    assert_int_equal(dcs_member_encode(&mi, &s), 0);
    assert_string_equal(s, N1_VALUE);

    /* round trip through the parser */
    Kv kv = { PREFIX "members/n1", s, 0 };
    DcsCluster *c = parse(&kv, 1);
    assert_int_equal(c->n_problems, 0);
    assert_int_equal(c->members[0].role, DCS_ROLE_PRIMARY);
    assert_int_equal(c->members[0].xlog_location, 50331968);
    dcs_cluster_free(c);
    free(s);

    mi = (DcsMemberInfo){ .conn_url = "postgres://h:1/postgres",
                          .api_url = "http://h:2/patroni",
                          .state = "starting",
                          .role = DCS_ROLE_REPLICA,
                          .version = "0.1.0",
                          .proxy_url = "postgres://p:6432/postgres",
                          .tags = tags,
                          .pending_restart = true,
                          .replication_state = "streaming",
                          .pause = true };
    assert_int_equal(dcs_member_encode(&mi, &s), 0);
    assert_string_equal(s, "{\"conn_url\":\"postgres://h:1/postgres\",\"api_url\":\"http://h:2/"
                           "patroni\",\"state\":\"starting\",\"role\":\"replica\",\"version\":"
                           "\"0.1.0\",\"proxy_url\":\"postgres://p:6432/postgres\",\"tags\":{"
                           "\"nofailover\":true,\"zone\":\"b\"},\"pending_restart\":true,"
                           "\"replication_state\":\"streaming\",\"pause\":true}");
    free(s);

    /* ours, beside Patroni's: a replica and a leader */
    mi = (DcsMemberInfo){ .conn_url = "postgres://h:1/postgres",
                          .api_url = "http://h:2/patroni",
                          .state = "running",
                          .role = DCS_ROLE_REPLICA,
                          .version = "0.1.0",
                          .has_xlog_location = true,
                          .xlog_location = 900,
                          .has_receive_lsn = true,
                          .receive_lsn = 900,
                          .has_replay_lsn = true,
                          .replay_lsn = 800,
                          .replay_paused = true,
                          .has_lag_seconds = true,
                          .lag_seconds = 12.5,
                          .failover_blocked = "replay is paused",
                          .upstream = "n1" };
    assert_int_equal(dcs_member_encode(&mi, &s), 0);
    assert_string_equal(s, "{\"conn_url\":\"postgres://h:1/postgres\",\"api_url\":\"http://h:2/"
                           "patroni\",\"state\":\"running\",\"role\":\"replica\",\"version\":"
                           "\"0.1.0\",\"xlog_location\":900,\"receive_lsn\":900,\"replay_lsn\":800,"
                           "\"replay_paused\":true,\"lag_seconds\":12.5,\"failover_blocked\":"
                           "\"replay is paused\",\"upstream\":\"n1\"}");
    free(s);
    const DcsReplicationRow rows[] = {
        { .name = "n2",
          .state = "streaming",
          .sync_state = "async",
          .has_write_lsn = true,
          .write_lsn = 900,
          .has_flush_lsn = true,
          .flush_lsn = 850,
          .has_replay_lsn = true,
          .replay_lsn = 800,
          .has_replay_lag = true,
          .replay_lag = 0.25 },
        { .name = "n3" },
    };
    mi = (DcsMemberInfo){ .conn_url = "postgres://h:1/postgres",
                          .api_url = "http://h:2/patroni",
                          .state = "running",
                          .role = DCS_ROLE_PRIMARY,
                          .version = "0.1.0",
                          .has_xlog_location = true,
                          .xlog_location = 1000,
                          .replication = rows,
                          .n_replication = ELEMENTSOF(rows) };
    assert_int_equal(dcs_member_encode(&mi, &s), 0);
    assert_string_equal(
        s, "{\"conn_url\":\"postgres://h:1/postgres\",\"api_url\":\"http://h:2/patroni\","
           "\"state\":\"running\",\"role\":\"master\",\"version\":\"0.1.0\",\"xlog_location\":"
           "1000,\"replication\":[{\"name\":\"n2\",\"state\":\"streaming\",\"sync_state\":"
           "\"async\",\"write_lsn\":900,\"flush_lsn\":850,\"replay_lsn\":800,\"write_lag\":null,"
           "\"flush_lag\":null,\"replay_lag\":0.25},{\"name\":\"n3\",\"state\":null,"
           "\"sync_state\":null,\"write_lsn\":null,\"flush_lsn\":null,\"replay_lsn\":null,"
           "\"write_lag\":null,\"flush_lag\":null,\"replay_lag\":null}]}");
    /* round trip */
    Kv kv2 = { PREFIX "members/n1", s, 0 };
    c = parse(&kv2, 1);
    assert_int_equal(c->n_problems, 0);
    assert_int_equal(c->members[0].n_replication, 2);
    assert_int_equal(c->members[0].replication[0].flush_lsn, 850);
    assert_true(c->members[0].replication[0].replay_lag == 0.25);
    assert_false(c->members[0].replication[1].has_replay_lsn);
    assert_null(c->members[0].replication[1].state);
    dcs_cluster_free(c);
    free(s);
    mi.n_replication = 0; /* a leader without standbys: [] */
    assert_int_equal(dcs_member_encode(&mi, &s), 0);
    assert_non_null(strstr(s, "\"replication\":[]"));
    free(s);

    mi.role = _DCS_ROLE_MAX;
    assert_int_equal(dcs_member_encode(&mi, &s), -EINVAL);
    mi.role = DCS_ROLE_REPLICA;
    mi.state = NULL;
    assert_int_equal(dcs_member_encode(&mi, &s), -EINVAL);
    json_decref(tags);
}

static void test_small_encoders(void **state)
{
    char *s = NULL;
    assert_int_equal(dcs_initialize_encode(7214324235435253233ULL, &s), 0);
    assert_string_equal(s, "7214324235435253233");
    free(s);

    assert_int_equal(dcs_status_encode(50331968, NULL, &s), 0);
    assert_string_equal(s, "{\"optime\":50331968}");
    free(s);
    json_t *empty = json_object();
    assert_int_equal(dcs_status_encode(1, empty, &s), 0);
    assert_string_equal(s, "{\"optime\":1}");
    free(s);
    json_decref(empty);
    json_t *slots = json_pack("{s:I}", "logical1", (json_int_t)50331000);
    assert_int_equal(dcs_status_encode(50331968, slots, &s), 0);
    assert_string_equal(s, "{\"optime\":50331968,\"slots\":{\"logical1\":50331000}}");
    free(s);
    json_decref(slots);

    assert_int_equal(dcs_history_append(NULL, 1, 50331808, "no recovery target specified",
                                        "2023-03-24T10:21:12.345678+00:00", "n1", 0, &s),
                     0);
    assert_string_equal(s, HISTORY_VALUE);
    char *s2 = NULL;
    assert_int_equal(
        dcs_history_append(s, 2, 67108960, "no recovery target specified", NULL, NULL, 0, &s2), 0);
    assert_string_equal(s2, "[[1,50331808,\"no recovery target specified\","
                            "\"2023-03-24T10:21:12.345678+00:00\",\"n1\"],"
                            "[2,67108960,\"no recovery target specified\"]]");
    free(s2);
    free(s);
    assert_int_equal(dcs_history_append("garbage", 1, 5, "r", NULL, NULL, 0, &s), 0);
    assert_string_equal(s, "[[1,5,\"r\"]]");
    free(s);
    assert_int_equal(dcs_history_append(NULL, 1, 5, "r", NULL, "n1", 0, &s), -EINVAL);
    assert_int_equal(dcs_history_append(NULL, 1, 5, NULL, NULL, NULL, 0, &s), -EINVAL);
    assert_int_equal(dcs_history_append(NULL, 1, 5, "r", NULL, NULL, -1, &s), -EINVAL);

    assert_int_equal(dcs_failover_encode("n1", "n2", NULL, &s), 0);
    assert_string_equal(s, "{\"leader\":\"n1\",\"member\":\"n2\"}");
    free(s);
    assert_int_equal(dcs_failover_encode(NULL, "n2", "2023-03-24T12:00:00+00:00", &s), 0);
    assert_string_equal(s, "{\"member\":\"n2\",\"scheduled_at\":\"2023-03-24T12:00:00+00:00\"}");
    free(s);

    assert_int_equal(dcs_sync_encode("n1", "n3", &s), 0);
    assert_string_equal(s, "{\"leader\":\"n1\",\"sync_standby\":\"n3\"}");
    free(s);
    assert_int_equal(dcs_sync_encode("n1", NULL, &s), 0);
    assert_string_equal(s, "{\"leader\":\"n1\",\"sync_standby\":null}");
    free(s);
    assert_int_equal(dcs_sync_encode(NULL, NULL, &s), -EINVAL);
}

static const char config_yaml[] = "scope: batman\n"
                                  "name: n1\n"
                                  "restapi:\n"
                                  "  connect_address: 127.0.0.1:8008\n"
                                  "etcd3:\n"
                                  "  hosts: 127.0.0.1:2379\n"
                                  "bootstrap:\n"
                                  "  dcs:\n"
                                  "    ttl: 30\n"
                                  "    loop_wait: 10\n"
                                  "    maximum_lag_on_failover: 1048576\n"
                                  "    postgresql:\n"
                                  "      use_pg_rewind: true\n"
                                  "      parameters:\n"
                                  "        max_connections: 100\n"
                                  "        hot_standby: on\n"
                                  "        wal_level: replica\n"
                                  "        checkpoint_completion_target: 0.9\n"
                                  "        work_mem: 4MB\n"
                                  "postgresql:\n"
                                  "  connect_address: 127.0.0.1:5432\n"
                                  "  data_dir: /tmp/none\n"
                                  "tags:\n"
                                  "  nofailover: true\n"
                                  "  noloadbalance: false\n"
                                  "  zone: b\n"
                                  "  weight: 3\n";

static void test_config_encode(void **state)
{
    Config *cfg = NULL;
    ConfigDiags diags = { 0 };
    int r = config_load_string("test.yml", config_yaml, NULL, &cfg, &diags);
    if (r < 0) {
        config_diags_print(&diags, stderr);
    }
    assert_int_equal(r, 0);
    config_diags_done(&diags);

    char *s = NULL;
    assert_int_equal(dcs_config_encode(&cfg->bootstrap.dcs, &s), 0);
    assert_string_equal(
        s, "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"maximum_lag_on_failover\":1048576,"
           "\"primary_start_timeout\":300,\"primary_stop_timeout\":0,\"synchronous_mode\":false,"
           "\"synchronous_mode_strict\":false,\"synchronous_node_count\":1,\"failsafe_mode\":"
           "false,\"postgresql\":{\"use_pg_rewind\":true,\"use_slots\":true,\"parameters\":{"
           "\"max_connections\":100,\"hot_standby\":true,\"wal_level\":\"replica\","
           "\"checkpoint_completion_target\":0.9,\"work_mem\":\"4MB\"}}}");

    /* round trip: the parser reads back what the encoder wrote */
    Kv kv = { PREFIX "config", s, 0 };
    DcsCluster *c = parse(&kv, 1);
    assert_int_equal(c->n_problems, 0);
    assert_int_equal(c->config->dcs.ttl, 30);
    assert_int_equal(c->config->dcs.maximum_lag_on_failover, 1048576);
    assert_true(c->config->dcs.use_pg_rewind);
    assert_int_equal(c->config->dcs.parameters.n, 5);
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "hot_standby"), "on");
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "max_connections"), "100");
    assert_string_equal(config_map_get(&c->config->dcs.parameters, "work_mem"), "4MB");
    dcs_cluster_free(c);
    free(s);

    json_t *tags = NULL;
    assert_int_equal(dcs_tags_from_config(cfg, &tags), 0);
    s = json_dumps(tags, JSON_COMPACT);
    assert_string_equal(s, "{\"nofailover\":true,\"zone\":\"b\",\"weight\":3}");
    free(s);
    json_decref(tags);
    config_free(cfg);
}

/* bootstrap.dcs.slots and ignore_slots reach the config key as written
 * (PyYAML's types: a quoted number stays a string), and the view reads them
 * back from it, from permanent_slots first as Patroni does. */
static void test_config_encode_slots(void **state)
{
    static const char yaml[] = "scope: s\nname: n1\n"
                               "restapi:\n  connect_address: 127.0.0.1:8008\n"
                               "etcd3:\n  hosts: 127.0.0.1:2379\n"
                               "bootstrap:\n  dcs:\n"
                               "    slots:\n"
                               "      archiver:\n        type: physical\n"
                               "      pgrcv:\n"
                               "    ignore_slots:\n"
                               "      - name: barman\n"
                               "      - {type: logical, database: '5'}\n"
                               "postgresql:\n  connect_address: 127.0.0.1:5432\n"
                               "  data_dir: /tmp/none\n";
    Config *cfg = NULL;
    ConfigDiags diags = { 0 };
    int r = config_load_string("test.yml", yaml, NULL, &cfg, &diags);
    if (r < 0 || diags.n) {
        config_diags_print(&diags, stderr);
    }
    assert_int_equal(r, 0);
    assert_int_equal(diags.n, 0);
    config_diags_done(&diags);

    char *s = NULL;
    assert_int_equal(dcs_config_encode(&cfg->bootstrap.dcs, &s), 0);
    assert_non_null(strstr(s, ",\"slots\":{\"archiver\":{\"type\":\"physical\"},\"pgrcv\":null},"
                              "\"ignore_slots\":[{\"name\":\"barman\"},{\"type\":\"logical\","
                              "\"database\":\"5\"}]}"));
    Kv kv = { PREFIX "config", s, 0 };
    DcsCluster *c = parse(&kv, 1);
    assert_int_equal(c->n_problems, 0);
    assert_true(json_is_object(c->config->dcs.slots));
    assert_int_equal(json_object_size(c->config->dcs.slots), 2);
    assert_int_equal(json_array_size(c->config->dcs.ignore_slots), 2);
    dcs_cluster_free(c);
    free(s);
    config_free(cfg);

    Kv older = { PREFIX "config",
                 "{\"permanent_slots\":{\"a\":null},\"slots\":{\"b\":null,\"c\":null}}", 0 };
    c = parse(&older, 1);
    assert_int_equal(json_object_size(c->config->dcs.slots), 1);
    assert_non_null(json_object_get(c->config->dcs.slots, "a"));
    dcs_cluster_free(c);

    /* a logical slot is read; one without a plugin written straight into
     * etcd is a problem of the view */
    Kv logical = { PREFIX "config",
                   "{\"slots\":{\"cdc\":{\"type\":\"logical\",\"database\":\"d\",\"plugin\":"
                   "\"p\"}}}",
                   0 };
    c = parse(&logical, 1);
    assert_int_equal(c->n_problems, 0);
    assert_non_null(c->config->dcs.slots);
    dcs_cluster_free(c);
    Kv no_plugin = { PREFIX "config",
                     "{\"slots\":{\"cdc\":{\"type\":\"logical\",\"database\":\"d\"}}}", 0 };
    c = parse(&no_plugin, 1);
    assert_int_equal(c->n_problems, 1);
    assert_non_null(c->config->dcs.slots);
    dcs_cluster_free(c);
}

/* bootstrap.dcs.postgresql.pg_hba/pg_ident reach the config key and are
 * read back from it; a malformed list is a problem of the view and reads as
 * none. */
static void test_config_pg_hba(void **state)
{
    static const char yaml[] = "scope: s\nname: n1\n"
                               "restapi:\n  connect_address: 127.0.0.1:8008\n"
                               "etcd3:\n  hosts: 127.0.0.1:2379\n"
                               "bootstrap:\n  dcs:\n    postgresql:\n"
                               "      pg_hba: [host all all 0/0 trust, local all all peer]\n"
                               "      pg_ident: [m a b]\n"
                               "      recovery_conf:\n        restore_command: cp /a/%f %p\n"
                               "postgresql:\n  connect_address: 127.0.0.1:5432\n"
                               "  data_dir: /tmp/none\n";
    Config *cfg = NULL;
    ConfigDiags diags = { 0 };
    assert_int_equal(config_load_string("test.yml", yaml, NULL, &cfg, &diags), 0);
    assert_int_equal(diags.n, 0);
    config_diags_done(&diags);
    char *s = NULL;
    assert_int_equal(dcs_config_encode(&cfg->bootstrap.dcs, &s), 0);
    assert_non_null(strstr(s, "\"pg_hba\":[\"host all all 0/0 trust\",\"local all all peer\"],"
                              "\"pg_ident\":[\"m a b\"],"
                              "\"recovery_conf\":{\"restore_command\":\"cp /a/%f %p\"}}"));
    Kv kv = { PREFIX "config", s, 0 };
    DcsCluster *c = parse(&kv, 1);
    assert_int_equal(c->n_problems, 0);
    assert_int_equal(c->config->dcs.pg_hba.n, 2);
    assert_string_equal(c->config->dcs.pg_hba.items[1], "local all all peer");
    assert_int_equal(c->config->dcs.pg_ident.n, 1);
    assert_string_equal(config_map_get(&c->config->dcs.recovery_conf, "restore_command"),
                        "cp /a/%f %p");
    dcs_cluster_free(c);
    free(s);
    config_free(cfg);

    Kv rc = { PREFIX "config",
              "{\"postgresql\":{\"recovery_conf\":{\"restore_command\":\"cp /a/%f %p\","
              "\"recovery_min_apply_delay\":5,\"standby_mode\":\"on\",\"x\":[1]}}}",
              0 };
    c = parse(&rc, 1);
    /* what a replica cannot take is left out, and said */
    assert_int_equal(c->n_problems, 2);
    assert_int_equal(c->config->dcs.recovery_conf.n, 2);
    assert_string_equal(config_map_get(&c->config->dcs.recovery_conf, "restore_command"),
                        "cp /a/%f %p");
    assert_string_equal(config_map_get(&c->config->dcs.recovery_conf, "recovery_min_apply_delay"),
                        "5");
    dcs_cluster_free(c);

    Kv bad = { PREFIX "config", "{\"postgresql\":{\"pg_hba\":[\"ok\",1]}}", 0 };
    c = parse(&bad, 1);
    assert_int_equal(c->n_problems, 1);
    assert_int_equal(c->config->dcs.pg_hba.n, 0);
    dcs_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_parse_patroni_cluster),
        cmocka_unit_test(test_parse_empty),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_bad_parameter_name),
        cmocka_unit_test(test_parse_key_with_nul),
        cmocka_unit_test(test_history_trimmed),
        cmocka_unit_test(test_parse_legacy),
        cmocka_unit_test(test_conn_url),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_lag_info),
        cmocka_unit_test(test_cluster_to_json),
        cmocka_unit_test(test_member_encode),
        cmocka_unit_test(test_small_encoders),
        cmocka_unit_test(test_config_encode),
        cmocka_unit_test(test_config_encode_slots),
        cmocka_unit_test(test_config_pg_hba),
        cmocka_unit_test(test_candidates),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_history_diverged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
