/* Unit tests for libdbha's pure parts (libdbha/dbha-topology.c): the topology
 * document's decoding (good and malformed input), replica choice, LSN text
 * and the read-your-writes decision, and the pool's slot bookkeeping. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "dbha/dbha.h"

#include "dbha-internal.h"

#define DOC                                                                                        \
    "{\"version\": 12, \"scope\": \"itest\", \"leader\": \"node1\", \"timeline\": 3,"              \
    " \"primary\": {\"name\": \"node1\", \"host\": \"127.0.0.1\", \"port\": 5432,"                 \
    "  \"api_url\": \"http://127.0.0.1:8008/patroni\"},"                                           \
    " \"replicas\": ["                                                                             \
    "  {\"name\": \"node2\", \"host\": \"127.0.0.1\", \"port\": 5433, \"state\": \"streaming\","   \
    "   \"lag_bytes\": 0, \"sync\": true, \"noloadbalance\": false, \"tags\": {\"b\": 1, \"a\": "  \
    "2}},"                                                                                         \
    "  {\"name\": \"node3\", \"host\": \"127.0.0.1\", \"port\": 5434, \"state\": \"running\","     \
    "   \"lag_bytes\": 70000, \"sync\": false, \"noloadbalance\": false, \"tags\": {}},"           \
    "  {\"name\": \"node4\", \"host\": \"127.0.0.1\", \"port\": 5435, \"state\": \"streaming\","   \
    "   \"lag_bytes\": null, \"noloadbalance\": true},"                                            \
    "  {\"name\": \"node5\", \"host\": \"127.0.0.1\", \"port\": 5436, \"state\": \"running\","     \
    "   \"lag_bytes\": null},"                                                                     \
    "  {\"name\": \"node6\", \"host\": \"127.0.0.1\", \"port\": 5437, \"state\": \"stopped\","     \
    "   \"lag_bytes\": 0}"                                                                         \
    " ], \"updated\": \"2026-11-27T13:00:00.123Z\"}"

static DbhaTopology *parse_ok(const char *text)
{
    DbhaTopology *t = NULL;
    DbhaError err = { 0 };
    int r = dbha_topology_parse(text, strlen(text), &t, &err);
    if (r < 0) {
        fail_msg("parse failed: %s", err.message);
    }
    assert_non_null(t);
    return t;
}

static void test_parse_good(void **state)
{
    (void)state;
    DbhaTopology *t = parse_ok(DOC);
    assert_int_equal(t->version, 12);
    assert_string_equal(t->scope, "itest");
    assert_string_equal(t->leader, "node1");
    assert_int_equal(t->timeline, 3);
    assert_string_equal(t->updated, "2026-11-27T13:00:00.123Z");
    assert_non_null(t->primary);
    assert_string_equal(t->primary->name, "node1");
    assert_int_equal(t->primary->port, 5432);
    assert_string_equal(t->primary->api_url, "http://127.0.0.1:8008/patroni");
    assert_null(t->primary->state);
    assert_int_equal(t->n_replicas, 5);
    const DbhaNode *n2 = dbha_topology_find_replica(t, "node2");
    assert_non_null(n2);
    assert_string_equal(n2->state, "streaming");
    assert_true(n2->lag_known);
    assert_int_equal(n2->lag_bytes, 0);
    assert_true(n2->sync);
    assert_string_equal(n2->tags_json, "{\"a\":2,\"b\":1}");
    const DbhaNode *n4 = dbha_topology_find_replica(t, "node4");
    assert_false(n4->lag_known);
    assert_true(n4->noloadbalance);
    assert_string_equal(n4->tags_json, "{}");
    assert_null(n4->api_url);
    assert_null(dbha_topology_find_replica(t, "node1"));
    assert_null(dbha_topology_find_replica(t, "nope"));
    /* a second reference outlives the first */
    DbhaTopology *t2 = dbha_topology_ref(t);
    assert_ptr_equal(t2, t);
    assert_null(dbha_topology_unref(t));
    assert_string_equal(t2->replicas[0].name, "node2");
    dbha_topology_unref(t2);
    assert_null(dbha_topology_unref(NULL));
}

static void test_parse_nulls(void **state)
{
    (void)state;
    const char *doc = "{\"version\": 1, \"scope\": \"s\", \"leader\": null, \"timeline\": null,"
                      " \"primary\": null, \"replicas\": []}";
    DbhaTopology *t = parse_ok(doc);
    assert_null(t->leader);
    assert_null(t->primary);
    assert_int_equal(t->timeline, -1);
    assert_int_equal(t->n_replicas, 0);
    assert_null(t->updated);
    /* not NUL-terminated: only len bytes count */
    char buf[128];
    const char *small = "{\"version\": 2, \"replicas\": []}XXXX";
    memcpy(buf, small, strlen(small));
    DbhaTopology *t2 = NULL;
    assert_int_equal(dbha_topology_parse(buf, strlen(small) - 4, &t2, NULL), 0);
    assert_int_equal(t2->version, 2);
    dbha_topology_unref(t2);
    dbha_topology_unref(t);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *message; /* a part of the error text */
    } cases[] = {
        { "", "invalid JSON" },
        { "{\"version\": 1, \"replicas\": [", "invalid JSON" },
        { "[1, 2]", "not a JSON object" },
        { "{\"replicas\": []}", "\"version\"" },
        { "{\"version\": \"12\", \"replicas\": []}", "\"version\"" },
        { "{\"version\": 1}", "\"replicas\"" },
        { "{\"version\": 1, \"replicas\": {}}", "\"replicas\"" },
        { "{\"version\": 1, \"replicas\": [], \"primary\": 5}", "\"primary\"" },
        { "{\"version\": 1, \"replicas\": [], \"timeline\": \"3\"}", "\"timeline\"" },
        { "{\"version\": 1, \"replicas\": [], \"leader\": 7}", "\"leader\"" },
        { "{\"version\": 1, \"replicas\": [], \"primary\": {\"host\": \"h\", \"port\": 1}}",
          "primary.\"name\" missing" },
        { "{\"version\": 1, \"replicas\": [], \"primary\": {\"name\": \"n\", \"port\": 1}}",
          "primary.\"host\" missing" },
        { "{\"version\": 1, \"replicas\": [], \"primary\": {\"name\": \"n\", \"host\": \"h\"}}",
          "\"port\"" },
        { "{\"version\": 1, \"replicas\": [{\"name\": \"n\", \"host\": \"h\", \"port\": 70000}]}",
          "replicas[0].\"port\"" },
        { "{\"version\": 1, \"replicas\": [{\"name\": \"n\", \"host\": \"h\", \"port\": 1}, 3]}",
          "a replica is not an object" },
        { "{\"version\": 1, \"replicas\": [{\"name\": \"n\", \"host\": \"h\", \"port\": 1, "
          "\"lag_bytes\": \"5\"}]}",
          "\"lag_bytes\"" },
        { "{\"version\": 1, \"replicas\": [{\"name\": \"n\", \"host\": \"h\", \"port\": 1, "
          "\"sync\": 1}]}",
          "\"sync\"" },
        { "{\"version\": 1, \"replicas\": [{\"name\": \"n\", \"host\": \"h\", \"port\": 1, "
          "\"tags\": []}]}",
          "\"tags\"" },
        { "{\"version\": 1, \"version\": 2, \"replicas\": []}", "invalid JSON" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DbhaTopology *t = NULL;
        DbhaError err = { 0 };
        int r = dbha_topology_parse(cases[i].text, strlen(cases[i].text), &t, &err);
        if (r != -EBADMSG || t || !strstr(err.message, cases[i].message) || err.code != -EBADMSG) {
            fail_msg("case %zu: r=%d message \"%s\", want \"%s\"", i, r, err.message,
                     cases[i].message);
        }
    }
    DbhaTopology *t = NULL;
    assert_int_equal(dbha_topology_parse(NULL, 0, &t, NULL), -EINVAL);
    /* a name that would not fit the pool's bookkeeping */
    char doc[2 * DBHA_NAME_MAX + 128];
    char name[DBHA_NAME_MAX + 1];
    memset(name, 'n', DBHA_NAME_MAX);
    name[DBHA_NAME_MAX] = '\0';
    (void)snprintf(doc, sizeof(doc),
                   "{\"version\": 1, \"replicas\": [{\"name\": \"%s\", \"host\": \"h\", "
                   "\"port\": 1}]}",
                   name);
    DbhaError err = { 0 };
    assert_int_equal(dbha_topology_parse(doc, strlen(doc), &t, &err), -EBADMSG);
    assert_non_null(strstr(err.message, "replicas[0].\"name\" longer than 255 bytes"));
    name[DBHA_NAME_MAX - 1] = '\0'; /* 255 bytes fit */
    (void)snprintf(doc, sizeof(doc),
                   "{\"version\": 1, \"replicas\": [{\"name\": \"%s\", \"host\": \"h\", "
                   "\"port\": 1}]}",
                   name);
    assert_int_equal(dbha_topology_parse(doc, strlen(doc), &t, &err), 0);
    dbha_topology_unref(t);
}

static void test_healthy_replica(void **state)
{
    (void)state;
    DbhaTopology *t = parse_ok(DOC);
    /* node2 streaming, node3 running with a lag, node4 noloadbalance, node5
     * running without a lag, node6 stopped */
    assert_true(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node2"), -1));
    assert_true(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node3"), -1));
    assert_false(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node4"), -1));
    assert_false(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node5"), -1));
    assert_false(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node6"), -1));
    /* the lag bound */
    assert_true(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node3"), 70000));
    assert_false(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node3"), 69999));
    assert_true(dbha_node_is_healthy_replica(dbha_topology_find_replica(t, "node2"), 0));
    assert_false(dbha_node_is_healthy_replica(NULL, -1));
    /* a streaming replica with an unknown lag has no known bound */
    DbhaTopology *u = parse_ok("{\"version\": 1, \"replicas\": [{\"name\": \"a\", \"host\": "
                               "\"h\", \"port\": 1, \"state\": \"streaming\"}]}");
    assert_true(dbha_node_is_healthy_replica(&u->replicas[0], -1));
    assert_false(dbha_node_is_healthy_replica(&u->replicas[0], 1 << 20));
    dbha_topology_unref(u);
    dbha_topology_unref(t);
}

static void test_pick_replica(void **state)
{
    (void)state;
    DbhaTopology *t = parse_ok(DOC);
    unsigned cursor = 0;
    const DbhaNode *n = NULL;
    /* round-robin over node2 and node3 only */
    unsigned seen2 = 0, seen3 = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(dbha_topology_pick_replica(t, -1, &cursor, &n), 0);
        if (strcmp(n->name, "node2") == 0) {
            seen2++;
        } else if (strcmp(n->name, "node3") == 0) {
            seen3++;
        } else {
            fail_msg("picked %s", n->name);
        }
    }
    assert_int_equal(seen2, 5);
    assert_int_equal(seen3, 5);
    /* a lag bound leaves node2 */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(dbha_topology_pick_replica(t, 1024, &cursor, &n), 0);
        assert_string_equal(n->name, "node2");
    }
    /* any cursor value works */
    cursor = 1000003;
    assert_int_equal(dbha_topology_pick_replica(t, -1, &cursor, &n), 0);
    dbha_topology_unref(t);
    /* none qualifies */
    t = parse_ok("{\"version\": 1, \"replicas\": [{\"name\": \"a\", \"host\": \"h\", \"port\": "
                 "1, \"state\": \"stopped\"}]}");
    n = NULL;
    assert_int_equal(dbha_topology_pick_replica(t, -1, &cursor, &n), -ENOENT);
    assert_null(n);
    dbha_topology_unref(t);
    t = parse_ok("{\"version\": 1, \"replicas\": []}");
    assert_int_equal(dbha_topology_pick_replica(t, -1, &cursor, &n), -ENOENT);
    dbha_topology_unref(t);
}

static void test_lsn(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_int_equal(dbha_lsn_parse("0/3000060", &v), 0);
    assert_true(v == 0x3000060ULL);
    assert_int_equal(dbha_lsn_parse("16/B374D848", &v), 0);
    assert_true(v == 0x16B374D848ULL);
    assert_int_equal(dbha_lsn_parse("FFFFFFFF/FFFFFFFF", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(dbha_lsn_parse("0/0", &v), 0);
    assert_true(v == 0);
    static const char *const bad[] = { "",     "0",    "/1",  "1/",    "0/3000060 ",  " 0/1",
                                       "-1/2", "0/+1", "g/1", "1/2/3", "100000000/0", "0/100000000",
                                       "0x1/2" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 42;
        if (dbha_lsn_parse(bad[i], &v) != -EINVAL || v != 42) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
    }
    assert_int_equal(dbha_lsn_parse(NULL, &v), -EINVAL);
    char buf[DBHA_LSN_TEXT_MAX];
    assert_string_equal(dbha_lsn_format(0x16B374D848ULL, buf, sizeof(buf)), "16/B374D848");
    assert_string_equal(dbha_lsn_format(0, buf, sizeof(buf)), "0/0");
    assert_string_equal(dbha_lsn_format(UINT64_MAX, buf, sizeof(buf)), "FFFFFFFF/FFFFFFFF");
    /* round trip */
    assert_int_equal(dbha_lsn_parse(dbha_lsn_format(0x123456789AULL, buf, sizeof(buf)), &v), 0);
    assert_true(v == 0x123456789AULL);
}

static void test_ryw_decision(void **state)
{
    (void)state;
    uint64_t want, replay;
    assert_int_equal(dbha_lsn_parse("0/3000060", &want), 0);
    assert_int_equal(dbha_lsn_parse("0/3000060", &replay), 0);
    assert_true(dbha_lsn_reached(replay, want));
    assert_int_equal(dbha_lsn_parse("0/300005F", &replay), 0);
    assert_false(dbha_lsn_reached(replay, want));
    /* comparison is numeric, not textual: "1/0" is past "0/FFFFFFFF" */
    assert_int_equal(dbha_lsn_parse("0/FFFFFFFF", &want), 0);
    assert_int_equal(dbha_lsn_parse("1/0", &replay), 0);
    assert_true(dbha_lsn_reached(replay, want));
    assert_false(dbha_lsn_reached(want, replay));
    /* no write yet: any replica */
    assert_true(dbha_lsn_reached(0, 0));
}

static DbhaSlot slot(DbhaRole role, const char *node, bool in_use, int64_t version,
                     uint64_t idle_since)
{
    DbhaSlot s = {
        .role = role, .in_use = in_use, .checked_version = version, .idle_since_usec = idle_since
    };
    (void)snprintf(s.node, sizeof(s.node), "%s", node);
    return s;
}

static void test_slot_role_valid(void **state)
{
    (void)state;
    DbhaTopology *t = parse_ok(DOC);
    assert_true(dbha_slot_role_valid(t, DBHA_ROLE_PRIMARY, "node1", -1));
    assert_false(dbha_slot_role_valid(t, DBHA_ROLE_PRIMARY, "node2", -1));
    assert_false(dbha_slot_role_valid(t, DBHA_ROLE_REPLICA, "node1", -1));
    assert_true(dbha_slot_role_valid(t, DBHA_ROLE_REPLICA, "node2", -1));
    assert_true(dbha_slot_role_valid(t, DBHA_ROLE_REPLICA, "node3", -1));
    assert_false(dbha_slot_role_valid(t, DBHA_ROLE_REPLICA, "node3", 100));
    assert_false(dbha_slot_role_valid(t, DBHA_ROLE_REPLICA, "node6", -1));
    assert_false(dbha_slot_role_valid(NULL, DBHA_ROLE_PRIMARY, "node1", -1));
    dbha_topology_unref(t);
    /* no primary: no primary slot is valid */
    t = parse_ok("{\"version\": 2, \"primary\": null, \"replicas\": []}");
    assert_false(dbha_slot_role_valid(t, DBHA_ROLE_PRIMARY, "node1", -1));
    dbha_topology_unref(t);
}

static void test_slots_pick_and_doom(void **state)
{
    (void)state;
    DbhaTopology *t = parse_ok(DOC);
    DbhaSlot s[] = {
        slot(DBHA_ROLE_PRIMARY, "node1", true, 12, 0),  /* 0: lent */
        slot(DBHA_ROLE_PRIMARY, "node1", false, 12, 0), /* 1: idle */
        slot(DBHA_ROLE_REPLICA, "node3", false, 12, 0), /* 2 */
        slot(DBHA_ROLE_REPLICA, "node2", false, 12, 0), /* 3 */
        slot(DBHA_ROLE_REPLICA, "node6", false, 12, 0), /* 4: stopped node */
        slot(DBHA_ROLE_REPLICA, "node2", true, 12, 0),  /* 5: lent */
    };
    size_t n = sizeof(s) / sizeof(s[0]);
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_PRIMARY, "node1", t, -1), 1);
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_REPLICA, "node2", t, -1), 3);
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_REPLICA, "node3", t, -1), 2);
    /* no idle to the preferred node: another valid one */
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_REPLICA, "node9", t, -1), 2);
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_REPLICA, NULL, t, -1), 2);
    /* lag bound: node3 is out */
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_REPLICA, "node3", t, 1000), 3);

    DbhaSlotCounts k;
    dbha_slots_count(s, n, DBHA_ROLE_REPLICA, &k);
    assert_int_equal(k.open, 4);
    assert_int_equal(k.in_use, 1);
    assert_int_equal(k.idle, 3);
    dbha_slots_count(s, n, DBHA_ROLE_PRIMARY, &k);
    assert_int_equal(k.open, 2);
    assert_int_equal(k.in_use, 1);

    /* the stopped replica's idle slot is doomed; nothing else */
    assert_int_equal(dbha_slots_doom_invalid(s, n, t, -1), 1);
    assert_true(s[4].doomed);
    dbha_topology_unref(t);

    /* failover: node2 is primary now, node1 gone */
    t = parse_ok("{\"version\": 13, \"leader\": \"node2\", \"primary\": {\"name\": \"node2\", "
                 "\"host\": \"h\", \"port\": 5433}, \"replicas\": [{\"name\": \"node3\", "
                 "\"host\": \"h\", \"port\": 5434, \"state\": \"streaming\", \"lag_bytes\": 0}]}");
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_PRIMARY, "node2", t, -1), -ENOENT);
    /* idle node1 primary and idle node2 replica are doomed; lent ones wait for release;
     * already doomed ones are not counted again */
    assert_int_equal(dbha_slots_doom_invalid(s, n, t, -1), 2);
    assert_false(s[0].doomed);
    assert_true(s[1].doomed);
    assert_false(s[2].doomed);
    assert_true(s[3].doomed);
    assert_false(s[5].doomed);
    /* a doomed slot is never picked */
    assert_int_equal(dbha_slots_pick_idle(s, n, DBHA_ROLE_REPLICA, "node2", t, -1), 2);
    dbha_topology_unref(t);
}

static void test_slot_needs_check(void **state)
{
    (void)state;
    DbhaSlot s = slot(DBHA_ROLE_PRIMARY, "node1", false, 5, 1000);
    assert_int_equal(dbha_slot_needs_check(&s, 5, 1500, 1000), 0);
    assert_int_equal(dbha_slot_needs_check(&s, 6, 1500, 1000), DBHA_CHECK_TOPOLOGY_CHANGED);
    assert_int_equal(dbha_slot_needs_check(&s, 5, 2000, 1000), DBHA_CHECK_IDLE);
    assert_int_equal(dbha_slot_needs_check(&s, 4, 9000, 1000),
                     DBHA_CHECK_IDLE | DBHA_CHECK_TOPOLOGY_CHANGED);
    /* a clock before idle_since (cannot happen) is not idle */
    assert_int_equal(dbha_slot_needs_check(&s, 5, 10, 1000), 0);
}

static void test_role_strings(void **state)
{
    (void)state;
    assert_string_equal(dbha_role_to_string(DBHA_ROLE_PRIMARY), "primary");
    assert_string_equal(dbha_role_to_string(DBHA_ROLE_REPLICA), "replica");
    assert_null(dbha_role_to_string(_DBHA_ROLE_MAX));
    assert_non_null(dbha_version());
}

static void test_client_open_invalid(void **state)
{
    (void)state;
    DbhaClient *c = NULL;
    DbhaError err = { 0 };
    DbhaClientOptions none = { 0 };
    assert_int_equal(dbha_client_open(&none, &c, &err), -EINVAL);
    assert_non_null(strstr(err.message, "neither etcd endpoints nor REST URLs"));
    const char *eps[] = { "127.0.0.1:1" };
    DbhaClientOptions noscope = { .etcd_endpoints = eps, .n_etcd_endpoints = 1 };
    assert_int_equal(dbha_client_open(&noscope, &c, &err), -EINVAL);
    assert_non_null(strstr(err.message, "scope"));
    assert_null(c);
    /* nothing listens on port 1: open still succeeds (no I/O), the cache stays
     * empty, and a bounded wait says why */
    DbhaClientOptions o = { .etcd_endpoints = eps,
                            .n_etcd_endpoints = 1,
                            .scope = "s",
                            .request_timeout_usec = 100 * 1000 };
    assert_int_equal(dbha_client_open(&o, &c, &err), 0);
    DbhaTopology *t = NULL;
    assert_int_equal(dbha_client_get_topology(c, &t), -ENODATA);
    assert_int_equal(dbha_client_wait_topology(c, 0, 300 * 1000, &t, &err), -ETIMEDOUT);
    assert_null(t);
    DbhaTarget tg;
    assert_int_equal(dbha_client_pick_primary(c, &tg), -ENODATA);
    /* a pool on it: an acquire gives up within its timeout */
    DbhaPool *p = NULL;
    DbhaPoolOptions bad = { .conninfo = "dbname=x", .min_primary = 5, .max_primary = 2 };
    assert_int_equal(dbha_pool_new(c, &bad, &p, &err), -EINVAL);
    DbhaPoolOptions po = { .conninfo = "dbname=x" };
    assert_int_equal(dbha_pool_new(c, &po, &p, &err), 0);
    DbhaConn *conn = NULL;
    assert_int_equal(dbha_pool_acquire(p, DBHA_ROLE_PRIMARY, 100 * 1000, &conn, &err), -ENODATA);
    assert_null(conn);
    assert_non_null(strstr(err.message, "no topology yet"));
    DbhaPoolStats st;
    dbha_pool_get_stats(p, DBHA_ROLE_PRIMARY, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.acquired, 0);
    dbha_pool_free(p);
    dbha_client_free(c);
}

/* ---- the client's REST source against an in-process HTTP server ---- */

#define FAKE_BODY_MAX 512

typedef struct FakeAgent {
    pthread_mutex_t mu;
    int status; /* what GET /topology answers */
    char body[FAKE_BODY_MAX];
    unsigned requests;
} FakeAgent;

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    FakeAgent *f = cls;
    pthread_mutex_lock(&f->mu);
    f->requests++;
    int status = strcmp(url, "/topology") == 0 ? f->status : 404;
    char body[FAKE_BODY_MAX];
    (void)snprintf(body, sizeof(body), "%s", status == 200 ? f->body : "{\"error\": \"none\"}");
    pthread_mutex_unlock(&f->mu);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void fake_set(FakeAgent *f, int status, int64_t version, const char *primary)
{
    pthread_mutex_lock(&f->mu);
    f->status = status;
    (void)snprintf(f->body, sizeof(f->body),
                   "{\"version\": %lld, \"leader\": \"%s\", \"primary\": {\"name\": "
                   "\"%s\", \"host\": \"127.0.0.1\", \"port\": 5432}, \"replicas\": []}",
                   (long long)version, primary, primary);
    pthread_mutex_unlock(&f->mu);
}

typedef struct Seen {
    pthread_mutex_t mu;
    unsigned calls;
    int64_t last_version;
} Seen;

static void on_topology(DbhaClient *c, DbhaTopology *t, void *userdata)
{
    Seen *s = userdata;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->last_version = t->version;
    pthread_mutex_unlock(&s->mu);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    (void)nanosleep(&ts, NULL);
}

static void test_client_rest(void **state)
{
    (void)state;
    FakeAgent f = { .mu = PTHREAD_MUTEX_INITIALIZER };
    fake_set(&f, 503, 0, "x");
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                            fake_handler, &f, MHD_OPTION_END);
    assert_non_null(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    char url[64], dead[64];
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)info->port);
    /* port 1: nothing listens; the client moves on to the next URL */
    (void)snprintf(dead, sizeof(dead), "http://127.0.0.1:1");
    const char *urls[] = { dead, url };
    Seen seen = { .mu = PTHREAD_MUTEX_INITIALIZER };
    DbhaClientOptions o = { .rest_urls = urls,
                            .n_rest_urls = 2,
                            .poll_interval_usec = 20 * 1000,
                            .request_timeout_usec = 500 * 1000,
                            .callback = on_topology,
                            .userdata = &seen };
    DbhaClient *c = NULL;
    DbhaError err = { 0 };
    assert_int_equal(dbha_client_open(&o, &c, &err), 0);
    DbhaTopology *t = NULL;
    /* 503: no topology, and the wait says why */
    assert_int_equal(dbha_client_wait_topology(c, 0, 200 * 1000, &t, &err), -ETIMEDOUT);
    assert_non_null(strstr(err.message, "HTTP 503"));
    assert_int_equal(dbha_client_fetch_topology(c, &t, &err), -ENOENT);

    fake_set(&f, 200, 5, "node1");
    assert_int_equal(dbha_client_wait_topology(c, 0, 3 * 1000 * 1000, &t, &err), 0);
    assert_int_equal(t->version, 5);
    assert_string_equal(t->primary->name, "node1");
    DbhaTarget tg;
    assert_int_equal(dbha_client_pick_primary(c, &tg), 0);
    assert_string_equal(tg.name, "node1");
    assert_int_equal(tg.port, 5432);
    assert_int_equal(dbha_client_pick_replica(c, -1, &tg), -ENOENT);
    t = dbha_topology_unref(t);

    /* a newer version replaces it; the old reference stays valid */
    DbhaTopology *held = NULL;
    assert_int_equal(dbha_client_get_topology(c, &held), 0);
    fake_set(&f, 200, 6, "node2");
    assert_int_equal(dbha_client_wait_topology(c, 5, 3 * 1000 * 1000, &t, &err), 0);
    assert_string_equal(t->primary->name, "node2");
    assert_string_equal(held->primary->name, "node1");
    held = dbha_topology_unref(held);
    t = dbha_topology_unref(t);

    /* an agent answering an older version (lagging) does not move the cache back,
     * nor does an undecodable answer or a 503 */
    fake_set(&f, 200, 4, "node1");
    sleep_ms(150);
    pthread_mutex_lock(&f.mu);
    (void)snprintf(f.body, sizeof(f.body), "{\"version\": 9, \"replicas\": 3}");
    pthread_mutex_unlock(&f.mu);
    sleep_ms(150);
    fake_set(&f, 503, 0, "x");
    sleep_ms(150);
    assert_int_equal(dbha_client_get_topology(c, &t), 0);
    assert_int_equal(t->version, 6);
    assert_string_equal(t->primary->name, "node2");
    t = dbha_topology_unref(t);
    DbhaClientStats st;
    dbha_client_get_stats(c, &st);
    assert_int_equal(st.updates, 2);
    assert_int_equal(st.version, 6);
    assert_true(st.fetch_errors >= 3);
    pthread_mutex_lock(&seen.mu);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.last_version, 6);
    pthread_mutex_unlock(&seen.mu);

    /* a fresh read goes to the source, not the cache */
    fake_set(&f, 200, 7, "node3");
    assert_int_equal(dbha_client_fetch_topology(c, &t, &err), 0);
    assert_int_equal(t->version, 7);
    t = dbha_topology_unref(t);
    dbha_client_free(c);
    MHD_stop_daemon(d);
    assert_true(f.requests > 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),          cmocka_unit_test(test_parse_nulls),
        cmocka_unit_test(test_parse_malformed),     cmocka_unit_test(test_healthy_replica),
        cmocka_unit_test(test_pick_replica),        cmocka_unit_test(test_lsn),
        cmocka_unit_test(test_ryw_decision),        cmocka_unit_test(test_slot_role_valid),
        cmocka_unit_test(test_slots_pick_and_doom), cmocka_unit_test(test_slot_needs_check),
        cmocka_unit_test(test_role_strings),        cmocka_unit_test(test_client_open_invalid),
        cmocka_unit_test(test_client_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
