/* Unit tests for lib/upstream.c: a replica's upstream under the
 * replicatefrom tag (cascading replication), table-driven over cluster
 * views built as the agents publish them. */
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
#include "upstream.h"

#define PREFIX      "/service/batman/"
#define MEMBERS_MAX 4

/* One member key. */
typedef struct Mem {
    const char *name;
    const char *state;         /* NULL: "running" */
    const char *role;          /* NULL: "replica" */
    bool not_streaming;        /* omit replication_state */
    const char *replicatefrom; /* tag, NULL: none */
    bool no_address;           /* omit conn_url */
} Mem;

typedef struct Case {
    const char *name;
    Mem members[MEMBERS_MAX];
    const char *leader; /* the leader key, NULL: none */
    const char *me;
    const char *tag;   /* our replicatefrom */
    const char *avoid; /* a member we could not stream from */
    const char *want;  /* the upstream's name, NULL: none */
    bool cascading;
    const char *why; /* expected why_not, NULL: none */
} Case;

static char *member_value(const Mem *m, int port)
{
    json_t *o = json_object();
    char url[64];
    snprintf(url, sizeof(url), "postgres://127.0.0.1:%d/postgres", port);
    if (!m->no_address) {
        json_object_set_new(o, "conn_url", json_string(url));
    }
    json_object_set_new(o, "api_url", json_string("http://127.0.0.1:8008/patroni"));
    json_object_set_new(o, "state", json_string(m->state ? m->state : "running"));
    json_object_set_new(o, "role", json_string(m->role ? m->role : "replica"));
    if (m->replicatefrom) {
        json_t *tags = json_object();
        json_object_set_new(tags, "replicatefrom", json_string(m->replicatefrom));
        json_object_set_new(o, "tags", tags);
    }
    if (!m->not_streaming) {
        json_object_set_new(o, "replication_state", json_string("streaming"));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(s);
    return s;
}

static DcsCluster *build(const Case *k)
{
    EtcdResult r = { .type = ETCD_OP_RANGE, .revision = 42 };
    r.kvs = calloc(MEMBERS_MAX + 1, sizeof(*r.kvs));
    assert_non_null(r.kvs);
    size_t n = 0;
    for (size_t i = 0; i < MEMBERS_MAX && k->members[i].name; i++) {
        EtcdKeyValue *kv = &r.kvs[n++];
        char key[128];
        snprintf(key, sizeof(key), PREFIX "members/%s", k->members[i].name);
        kv->key = strdup(key);
        kv->key_len = strlen(key);
        kv->value = member_value(&k->members[i], 5432 + (int)i);
        kv->value_len = strlen(kv->value);
        kv->create_revision = kv->mod_revision = 10 + (int64_t)i;
    }
    if (k->leader) {
        EtcdKeyValue *kv = &r.kvs[n++];
        kv->key = strdup(PREFIX "leader");
        kv->key_len = strlen(kv->key);
        kv->value = strdup(k->leader);
        kv->value_len = strlen(k->leader);
    }
    r.n_kvs = n;
    r.count = (int64_t)n;
    DcsPaths p;
    assert_int_equal(dcs_paths_init(&p, "/service/", "batman"), 0);
    DcsCluster *c = NULL;
    assert_int_equal(dcs_cluster_from_result(&p, &r, &c), 0);
    etcd_result_done(&r);
    dcs_paths_done(&p);
    return c;
}

#define LEADER_N1                                                                                  \
    {                                                                                              \
        .name = "n1", .role = "master", .not_streaming = true                                      \
    }

static const Case cases[] = {
    { "no tag: the leader",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      NULL,
      NULL,
      "n1",
      false,
      NULL },
    { "tag names a streaming replica: it",
      { LEADER_N1, { .name = "n2" }, { .name = "n3", .replicatefrom = "n2" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n2",
      true,
      NULL },
    { "tag names the leader: the leader, no complaint",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      "n1",
      NULL,
      "n1",
      false,
      NULL },
    { "tag names an unknown member: the leader",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      "n9",
      NULL,
      "n1",
      false,
      "it is not a member of the cluster" },
    { "tag names itself: the leader",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      "n3",
      NULL,
      "n1",
      false,
      "it names this member itself" },
    { "named member stopped: the leader",
      { LEADER_N1, { .name = "n2", .state = "stopped", .not_streaming = true }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n1",
      false,
      "it is not running" },
    { "named member starting: the leader",
      { LEADER_N1, { .name = "n2", .state = "starting" }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n1",
      false,
      "it is not running" },
    { "named member running but not streaming: the leader",
      { LEADER_N1, { .name = "n2", .not_streaming = true }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n1",
      false,
      "it is not streaming" },
    { "named member a primary without the key: the leader",
      { LEADER_N1, { .name = "n2", .role = "master" }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n1",
      false,
      "it is not a replica" },
    { "named member without an address: the leader",
      { LEADER_N1, { .name = "n2", .no_address = true }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n1",
      false,
      "its address is unknown" },
    { "named member is avoided: the leader",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      "n2",
      "n1",
      false,
      "this member could not stream from it" },
    { "avoiding another member changes nothing",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      "n4",
      "n2",
      true,
      NULL },
    { "loop n2 <-> n3: n3 follows the leader",
      { LEADER_N1,
        { .name = "n2", .replicatefrom = "n3" },
        { .name = "n3", .replicatefrom = "n2" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n1",
      false,
      "its replicatefrom tags lead back to this member" },
    { "loop n2 <-> n3: n2 follows the leader",
      { LEADER_N1,
        { .name = "n2", .replicatefrom = "n3" },
        { .name = "n3", .replicatefrom = "n2" } },
      "n1",
      "n2",
      "n3",
      NULL,
      "n1",
      false,
      "its replicatefrom tags lead back to this member" },
    { "long loop n2 -> n3 -> n4 -> n2: n2 follows the leader",
      { LEADER_N1,
        { .name = "n2", .replicatefrom = "n3" },
        { .name = "n3", .replicatefrom = "n4" },
        { .name = "n4", .replicatefrom = "n2" } },
      "n1",
      "n2",
      "n3",
      NULL,
      "n1",
      false,
      "its replicatefrom tags lead back to this member" },
    { "a loop elsewhere (n3 <-> n4) does not stop n2 from using n3",
      { LEADER_N1,
        { .name = "n2", .replicatefrom = "n3" },
        { .name = "n3", .replicatefrom = "n4" },
        { .name = "n4", .replicatefrom = "n3" } },
      "n1",
      "n2",
      "n3",
      NULL,
      "n3",
      true,
      NULL },
    { "a chain n4 -> n3 -> n2 -> leader: n4 uses n3",
      { LEADER_N1,
        { .name = "n2" },
        { .name = "n3", .replicatefrom = "n2" },
        { .name = "n4", .replicatefrom = "n3" } },
      "n1",
      "n4",
      "n3",
      NULL,
      "n3",
      true,
      NULL },
    { "a chain to a tag naming the leader is no loop",
      { LEADER_N1, { .name = "n2", .replicatefrom = "n1" }, { .name = "n3" } },
      "n1",
      "n3",
      "n2",
      NULL,
      "n2",
      true,
      NULL },
    { "no leader key: a streaming named member still",
      { { .name = "n2" }, { .name = "n3" } },
      NULL,
      "n3",
      "n2",
      NULL,
      "n2",
      true,
      NULL },
    { "no leader key, no tag: none",
      { { .name = "n2" }, { .name = "n3" } },
      NULL,
      "n3",
      NULL,
      NULL,
      NULL,
      false,
      NULL },
    { "leader without an address, tag unusable: none",
      { { .name = "n1", .role = "master", .no_address = true },
        { .name = "n2", .state = "stopped" } },
      "n1",
      "n3",
      "n2",
      NULL,
      NULL,
      false,
      "it is not running" },
    { "the leader itself: none",
      { LEADER_N1, { .name = "n2" } },
      "n1",
      "n1",
      NULL,
      NULL,
      NULL,
      false,
      NULL },
    { "the leader ignores its own tag",
      { LEADER_N1, { .name = "n2" } },
      "n1",
      "n1",
      "n2",
      NULL,
      NULL,
      false,
      NULL },
    { "empty tag: the leader",
      { LEADER_N1, { .name = "n2" }, { .name = "n3" } },
      "n1",
      "n3",
      "",
      NULL,
      "n1",
      false,
      NULL },
};

static void test_choose(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const Case *k = &cases[i];
        DcsCluster *c = build(k);
        UpstreamChoice u;
        upstream_choose(c, k->me, k->tag, k->avoid, &u);
        const char *got = u.member ? u.member->name : NULL;
        bool ok = ((got == NULL) == (k->want == NULL)) && (!got || strcmp(got, k->want) == 0) &&
                  u.cascading == k->cascading && ((u.why_not == NULL) == (k->why == NULL)) &&
                  (!u.why_not || strcmp(u.why_not, k->why) == 0);
        if (!ok) {
            fail_msg("case \"%s\": got %s cascading=%d why=\"%s\"; want %s cascading=%d why=\"%s\"",
                     k->name, got ? got : "(none)", u.cascading, u.why_not ? u.why_not : "(null)",
                     k->want ? k->want : "(none)", k->cascading, k->why ? k->why : "(null)");
        }
        dcs_cluster_free(c);
    }
}

static void collect(const DcsMember *m, void *userdata)
{
    char *buf = userdata;
    strcat(buf, m->name);
    strcat(buf, " ");
}

static void test_downstream(void **state)
{
    (void)state;
    Case k = { .members = { LEADER_N1,
                            { .name = "n2", .replicatefrom = "n1" },
                            { .name = "n3", .replicatefrom = "n2" },
                            { .name = "n4", .replicatefrom = "n2" } },
               .leader = "n1" };
    DcsCluster *c = build(&k);
    char buf[64] = "";
    assert_int_equal(upstream_foreach_downstream(c, "n2", collect, buf), 2);
    assert_string_equal(buf, "n3 n4 ");
    /* on the leader, a tag naming it asks for nothing more than usual */
    buf[0] = '\0';
    assert_int_equal(upstream_foreach_downstream(c, "n1", collect, buf), 1);
    assert_string_equal(buf, "n2 ");
    assert_int_equal(upstream_foreach_downstream(c, "n3", NULL, NULL), 0);
    dcs_cluster_free(c);

    /* a leader tagged replicatefrom (it was a cascading replica before a
     * failover) is nobody's downstream */
    Case k2 = { .members = { { .name = "n1", .role = "master", .replicatefrom = "n2" },
                             { .name = "n2" } },
                .leader = "n1" };
    c = build(&k2);
    assert_int_equal(upstream_foreach_downstream(c, "n2", NULL, NULL), 0);
    dcs_cluster_free(c);
}

static void test_tag(void **state)
{
    (void)state;
    assert_null(upstream_tag(NULL));
    Case k = { .members = { { .name = "n2", .replicatefrom = "n1" }, { .name = "n3" } } };
    DcsCluster *c = build(&k);
    assert_string_equal(upstream_tag(dcs_cluster_get_member(c, "n2")), "n1");
    assert_null(upstream_tag(dcs_cluster_get_member(c, "n3")));
    dcs_cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_downstream),
        cmocka_unit_test(test_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
