/* Table-driven tests for agent/health: one row per (endpoint, node situation)
 * with the status Patroni 3.0.2 answers, plus ?lag= parsing and routing.
 * A failing row prints its name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "health.h"

#define SEC    1000000ULL
#define TTL    (30 * SEC)
#define NOW    (1000 * SEC)
#define OPTIME 0x5000000ULL
#define MB     1048576ULL

/* Node situations. */
enum {
    LEADER,         /* primary holding the leader key */
    REPLICA,        /* streaming replica, caught up */
    STOPPED,        /* postgresql stopped (replica role) */
    UNKNOWN,        /* running, but the status query failed */
    STARTING,       /* replica still starting */
    LOST_LEADER,    /* primary whose leader lease ran out */
    STANDBY_LEADER, /* leader of a standby cluster */
    STANDBY_REPLICA /* replica in a standby cluster */
};

/* Modifiers. */
#define M_PAUSED     (1u << 0)
#define M_NO_DCS     (1u << 1)
#define M_NOLB       (1u << 2)
#define M_NOFAILOVER (1u << 3)
#define M_SYNC_MODE  (1u << 4)
#define M_SYNC_NAMED (1u << 5)
#define M_LAG_10MB   (1u << 6)
#define M_LOOP_LATE  (1u << 7) /* next_run 1.5 ttl ago */
#define M_LOOP_DEAD  (1u << 8) /* next_run 3 ttl ago */
#define M_SYNC       (M_SYNC_MODE | M_SYNC_NAMED)

typedef struct Row {
    const char *name;
    int situation;
    unsigned mods;
    HealthMethod method;
    const char *path;
    const char *query;
    int status;
} Row;

static HealthTag tags_buf[4];

static HealthNode make_node(int situation, unsigned mods)
{
    HealthNode n = {
        .state = HEALTH_PG_RUNNING,
        .role = HEALTH_ROLE_REPLICA,
        .probe_ok = true,
        .in_recovery = true,
        .replayed_lsn = OPTIME,
        .postmaster_alive = true,
        .dcs_ok = true,
        .leader_optime = OPTIME,
        .now_usec = NOW,
        .next_run_usec = NOW - 5 * SEC,
        .ttl_usec = TTL,
    };
    switch (situation) {
    case LEADER:
        n.role = HEALTH_ROLE_PRIMARY;
        n.in_recovery = false;
        n.replayed_lsn = 0;
        n.is_leader = true;
        break;
    case LOST_LEADER:
        n.role = HEALTH_ROLE_PRIMARY;
        n.in_recovery = false;
        n.replayed_lsn = 0;
        break;
    case REPLICA:
        break;
    case STOPPED:
        n.state = HEALTH_PG_STOPPED;
        n.probe_ok = false;
        n.postmaster_alive = false;
        break;
    case UNKNOWN:
        n.probe_ok = false;
        break;
    case STARTING:
        n.state = HEALTH_PG_STARTING;
        break;
    case STANDBY_LEADER:
        n.role = HEALTH_ROLE_STANDBY_LEADER;
        n.is_leader = true;
        n.standby_cluster = true;
        break;
    case STANDBY_REPLICA:
        n.standby_cluster = true;
        break;
    default:
        fail_msg("unknown situation %d", situation);
    }

    size_t nt = 0;
    tags_buf[nt++] = (HealthTag){ "dc", "east" };
    if (mods & M_PAUSED) {
        n.paused = true;
    }
    if (mods & M_NO_DCS) {
        n.dcs_ok = false;
    }
    if (mods & M_NOLB) {
        n.noloadbalance = true;
        tags_buf[nt++] = (HealthTag){ "noloadbalance", "true" };
    }
    if (mods & M_NOFAILOVER) {
        tags_buf[nt++] = (HealthTag){ "nofailover", "true" };
    }
    n.synchronous_mode = mods & M_SYNC_MODE;
    n.sync_standby = mods & M_SYNC_NAMED;
    if (mods & M_LAG_10MB) {
        n.replayed_lsn = OPTIME - 10 * MB;
    }
    if (mods & M_LOOP_LATE) {
        n.next_run_usec = NOW - TTL - TTL / 2;
    }
    if (mods & M_LOOP_DEAD) {
        n.next_run_usec = NOW - 3 * TTL;
    }
    n.tags = tags_buf;
    n.n_tags = nt;
    return n;
}

#define GET     HEALTH_METHOD_GET
#define HEAD    HEALTH_METHOD_HEAD
#define OPTIONS HEALTH_METHOD_OPTIONS

static const Row rows[] = {
    /* the leader */
    { "leader GET /", LEADER, 0, GET, "/", NULL, 200 },
    { "leader GET /primary", LEADER, 0, GET, "/primary", NULL, 200 },
    { "leader GET /master", LEADER, 0, GET, "/master", NULL, 200 },
    { "leader GET /read-write", LEADER, 0, GET, "/read-write", NULL, 200 },
    { "leader GET /leader", LEADER, 0, GET, "/leader", NULL, 200 },
    { "leader GET /standby-leader", LEADER, 0, GET, "/standby-leader", NULL, 503 },
    { "leader GET /standby_leader", LEADER, 0, GET, "/standby_leader", NULL, 503 },
    { "leader GET /replica", LEADER, 0, GET, "/replica", NULL, 503 },
    { "leader GET /read-only", LEADER, 0, GET, "/read-only", NULL, 200 },
    { "leader GET /health", LEADER, 0, GET, "/health", NULL, 200 },
    { "leader GET /sync", LEADER, M_SYNC_MODE, GET, "/sync", NULL, 503 },
    { "leader GET /async", LEADER, 0, GET, "/async", NULL, 503 },
    { "leader GET /read-only-sync", LEADER, M_SYNC_MODE, GET, "/read-only-sync", NULL, 200 },
    { "leader GET /liveness", LEADER, 0, GET, "/liveness", NULL, 200 },
    { "leader GET /readiness", LEADER, 0, GET, "/readiness", NULL, 200 },
    { "leader HEAD /primary", LEADER, 0, HEAD, "/primary", NULL, 200 },
    { "leader OPTIONS /primary", LEADER, 0, OPTIONS, "/primary", NULL, 200 },
    { "leader OPTIONS /replica", LEADER, 0, OPTIONS, "/replica", NULL, 503 },
    { "leader HEAD /liveness is generic: 503", LEADER, 0, HEAD, "/liveness", NULL, 503 },
    { "leader OPTIONS /readiness is generic: 503", LEADER, 0, OPTIONS, "/readiness", NULL, 503 },
    { "leader GET unknown path", LEADER, 0, GET, "/foo", NULL, 503 },
    { "leader GET /primary ignores tags", LEADER, 0, GET, "/primary", "tag_dc=west", 200 },
    { "leader GET /leader ignores tags", LEADER, 0, GET, "/leader", "tag_zone=a", 200 },
    { "leader GET /read-only checks tags", LEADER, 0, GET, "/read-only", "tag_dc=west", 503 },
    { "leader GET /read-only tag match", LEADER, 0, GET, "/read-only", "tag_dc=east", 200 },
    { "leader GET /primary ignores lag", LEADER, 0, GET, "/primary", "lag=0", 200 },
    { "leader noloadbalance GET /read-only", LEADER, M_NOLB, GET, "/read-only", NULL, 200 },
    { "leader GET /primary/extra substring", LEADER, 0, GET, "/primary/extra", NULL, 200 },
    { "leader loop late 1.5ttl GET /liveness", LEADER, M_LOOP_LATE, GET, "/liveness", NULL, 503 },
    { "leader no etcd GET /readiness", LEADER, M_NO_DCS, GET, "/readiness", NULL, 200 },
    { "leader no etcd GET /primary (lease)", LEADER, M_NO_DCS, GET, "/primary", NULL, 200 },
    { "leader no etcd GET /read-only-sync", LEADER, M_NO_DCS, GET, "/read-only-sync", NULL, 503 },

    /* a streaming replica */
    { "replica GET /replica", REPLICA, 0, GET, "/replica", NULL, 200 },
    { "replica GET /", REPLICA, 0, GET, "/", NULL, 503 },
    { "replica GET /primary", REPLICA, 0, GET, "/primary", NULL, 503 },
    { "replica GET /leader", REPLICA, 0, GET, "/leader", NULL, 503 },
    { "replica GET /standby-leader", REPLICA, 0, GET, "/standby-leader", NULL, 503 },
    { "replica GET /read-only", REPLICA, 0, GET, "/read-only", NULL, 200 },
    { "replica GET /health", REPLICA, 0, GET, "/health", NULL, 200 },
    { "replica GET /async", REPLICA, 0, GET, "/async", NULL, 200 },
    { "replica GET /asynchronous", REPLICA, 0, GET, "/asynchronous", NULL, 200 },
    { "replica GET /sync", REPLICA, 0, GET, "/sync", NULL, 503 },
    { "replica GET /read-only-sync", REPLICA, 0, GET, "/read-only-sync", NULL, 503 },
    { "replica GET /liveness", REPLICA, 0, GET, "/liveness", NULL, 200 },
    { "replica GET /readiness", REPLICA, 0, GET, "/readiness", NULL, 200 },
    { "replica HEAD /replica", REPLICA, 0, HEAD, "/replica", NULL, 200 },
    { "replica OPTIONS /replica", REPLICA, 0, OPTIONS, "/replica", NULL, 200 },
    { "replica OPTIONS /primary", REPLICA, 0, OPTIONS, "/primary", NULL, 503 },
    { "replica loop late 1.5ttl GET /liveness", REPLICA, M_LOOP_LATE, GET, "/liveness", NULL, 200 },
    { "replica loop dead 3ttl GET /liveness", REPLICA, M_LOOP_DEAD, GET, "/liveness", NULL, 503 },
    { "replica no etcd GET /readiness", REPLICA, M_NO_DCS, GET, "/readiness", NULL, 503 },
    { "replica no etcd GET /replica", REPLICA, M_NO_DCS, GET, "/replica", NULL, 200 },
    { "replica no etcd GET /async", REPLICA, M_NO_DCS, GET, "/async", NULL, 503 },

    /* lag */
    { "lagging replica GET /replica no ?lag", REPLICA, M_LAG_10MB, GET, "/replica", NULL, 200 },
    { "lagging replica ?lag=1MB", REPLICA, M_LAG_10MB, GET, "/replica", "lag=1MB", 503 },
    { "lagging replica ?lag=100MB", REPLICA, M_LAG_10MB, GET, "/replica", "lag=100MB", 200 },
    { "lagging replica ?lag=10MB (equal)", REPLICA, M_LAG_10MB, GET, "/replica", "lag=10MB", 200 },
    { "lagging replica ?lag=10485759", REPLICA, M_LAG_10MB, GET, "/replica", "lag=10485759", 503 },
    { "lagging replica ?lag=10240kB", REPLICA, M_LAG_10MB, GET, "/replica", "lag=10240kB", 200 },
    { "lagging replica ?lag=1KB (not a unit)", REPLICA, M_LAG_10MB, GET, "/replica", "lag=1KB",
      200 },
    { "lagging replica ?lag=junk", REPLICA, M_LAG_10MB, GET, "/replica", "lag=junk", 200 },
    { "lagging replica ?lag= (blank dropped)", REPLICA, M_LAG_10MB, GET, "/replica", "lag=&lag=1MB",
      503 },
    { "lagging replica first ?lag wins", REPLICA, M_LAG_10MB, GET, "/replica", "lag=100MB&lag=1MB",
      200 },
    { "lagging replica ?lag=1%4dB", REPLICA, M_LAG_10MB, GET, "/replica", "lag=1%4dB", 503 },
    { "lagging replica ?lag=1MB read-only", REPLICA, M_LAG_10MB, GET, "/read-only", "lag=1MB",
      503 },
    { "lagging replica ?lag=1MB async", REPLICA, M_LAG_10MB, GET, "/async", "lag=1MB", 503 },
    { "lagging replica ?lag=1MB health", REPLICA, M_LAG_10MB, GET, "/health", "lag=1MB", 200 },
    { "lagging replica no etcd ?lag=1MB", REPLICA, M_LAG_10MB | M_NO_DCS, GET, "/replica",
      "lag=1MB", 200 },
    { "caught-up replica ?lag=0", REPLICA, 0, GET, "/replica", "lag=0", 200 },
    { "caught-up replica ?lag=-1", REPLICA, 0, GET, "/replica", "lag=-1", 503 },

    /* tags */
    { "replica ?tag_dc=east", REPLICA, 0, GET, "/replica", "tag_dc=east", 200 },
    { "replica ?tag_dc=west", REPLICA, 0, GET, "/replica", "tag_dc=west", 503 },
    { "replica ?tag_dc=East (case)", REPLICA, 0, GET, "/replica", "tag_dc=East", 503 },
    { "replica ?tag_zone=a (absent)", REPLICA, 0, GET, "/replica", "tag_zone=a", 503 },
    { "replica two tags, one wrong", REPLICA, M_NOFAILOVER, GET, "/replica",
      "tag_dc=east&tag_nofailover=false", 503 },
    { "replica repeated tag: first wins", REPLICA, 0, GET, "/replica", "tag_dc=east&tag_dc=west",
      200 },
    { "replica %-encoded tag", REPLICA, 0, GET, "/replica", "tag_%64c=%65ast", 200 },
    { "replica blank tag value dropped", REPLICA, 0, GET, "/replica", "tag_zone=", 200 },
    { "replica ?tag_dc=east on /health", REPLICA, 0, GET, "/health", "tag_dc=west", 503 },
    { "replica tags on HEAD", REPLICA, 0, HEAD, "/replica", "tag_dc=west", 503 },

    /* nofailover, noloadbalance */
    { "nofailover replica GET /replica", REPLICA, M_NOFAILOVER, GET, "/replica", NULL, 200 },
    { "nofailover replica ?tag_nofailover=true", REPLICA, M_NOFAILOVER, GET, "/replica",
      "tag_nofailover=true", 200 },
    { "noloadbalance replica GET /replica", REPLICA, M_NOLB, GET, "/replica", NULL, 503 },
    { "noloadbalance replica GET /read-only", REPLICA, M_NOLB, GET, "/read-only", NULL, 503 },
    { "noloadbalance replica GET /async", REPLICA, M_NOLB, GET, "/async", NULL, 503 },
    { "noloadbalance replica GET /health", REPLICA, M_NOLB, GET, "/health", NULL, 200 },

    /* synchronous replication */
    { "sync standby GET /sync", REPLICA, M_SYNC, GET, "/sync", NULL, 200 },
    { "sync standby GET /synchronous", REPLICA, M_SYNC, GET, "/synchronous", NULL, 200 },
    { "sync standby GET /async", REPLICA, M_SYNC, GET, "/async", NULL, 503 },
    { "sync standby GET /read-only-sync", REPLICA, M_SYNC, GET, "/read-only-sync", NULL, 200 },
    { "sync standby GET /replica", REPLICA, M_SYNC, GET, "/replica", NULL, 200 },
    { "sync standby ?tag_dc=west /sync", REPLICA, M_SYNC, GET, "/sync", "tag_dc=west", 503 },
    { "sync standby noloadbalance /sync", REPLICA, M_SYNC | M_NOLB, GET, "/sync", NULL, 503 },
    { "sync standby lagging ?lag=1MB /sync", REPLICA, M_SYNC | M_LAG_10MB, GET, "/sync", "lag=1MB",
      503 },
    { "named in /sync, mode off: /sync", REPLICA, M_SYNC_NAMED, GET, "/sync", NULL, 503 },
    { "named in /sync, mode off: /async", REPLICA, M_SYNC_NAMED, GET, "/async", NULL, 200 },
    { "sync standby no etcd /sync", REPLICA, M_SYNC | M_NO_DCS, GET, "/sync", NULL, 503 },
    { "sync standby HEAD /sync", REPLICA, M_SYNC, HEAD, "/sync", NULL, 200 },
    { "async replica mode on /read-only-sync", REPLICA, M_SYNC_MODE, GET, "/read-only-sync", NULL,
      503 },

    /* PostgreSQL stopped, unknown, starting */
    { "stopped GET /health", STOPPED, 0, GET, "/health", NULL, 503 },
    { "stopped GET /replica", STOPPED, 0, GET, "/replica", NULL, 503 },
    { "stopped GET /read-only", STOPPED, 0, GET, "/read-only", NULL, 503 },
    { "stopped GET /async", STOPPED, 0, GET, "/async", NULL, 503 },
    { "stopped GET /readiness", STOPPED, 0, GET, "/readiness", NULL, 503 },
    { "stopped GET /liveness", STOPPED, 0, GET, "/liveness", NULL, 200 },
    { "stopped HEAD /health", STOPPED, 0, HEAD, "/health", NULL, 503 },
    { "query failed GET /health", UNKNOWN, 0, GET, "/health", NULL, 503 },
    { "query failed GET /replica", UNKNOWN, 0, GET, "/replica", NULL, 503 },
    { "query failed GET /readiness", UNKNOWN, 0, GET, "/readiness", NULL, 200 },
    { "starting GET /replica", STARTING, 0, GET, "/replica", NULL, 503 },
    { "starting GET /health", STARTING, 0, GET, "/health", NULL, 503 },

    /* maintenance mode and the lost lease */
    { "paused leader GET /primary", LEADER, M_PAUSED, GET, "/primary", NULL, 200 },
    { "paused leader loop dead GET /liveness", LEADER, M_PAUSED | M_LOOP_DEAD, GET, "/liveness",
      NULL, 200 },
    { "paused no etcd, lease gone: /primary by role", LOST_LEADER, M_PAUSED | M_NO_DCS, GET,
      "/primary", NULL, 200 },
    { "paused no etcd, lease gone: /leader by role", LOST_LEADER, M_PAUSED | M_NO_DCS, GET,
      "/leader", NULL, 200 },
    { "paused no etcd replica: /primary", REPLICA, M_PAUSED | M_NO_DCS, GET, "/primary", NULL,
      503 },
    { "paused no etcd replica: /replica", REPLICA, M_PAUSED | M_NO_DCS, GET, "/replica", NULL,
      200 },
    { "paused with etcd, lease gone: /primary", LOST_LEADER, M_PAUSED, GET, "/primary", NULL, 503 },
    { "not paused no etcd, lease gone: /primary", LOST_LEADER, M_NO_DCS, GET, "/primary", NULL,
      503 },
    { "lost leader GET /read-only", LOST_LEADER, 0, GET, "/read-only", NULL, 503 },
    { "lost leader GET /health", LOST_LEADER, 0, GET, "/health", NULL, 200 },

    /* standby cluster */
    { "standby leader GET /standby-leader", STANDBY_LEADER, 0, GET, "/standby-leader", NULL, 200 },
    { "standby leader GET /leader", STANDBY_LEADER, 0, GET, "/leader", NULL, 200 },
    { "standby leader GET /primary", STANDBY_LEADER, 0, GET, "/primary", NULL, 503 },
    { "standby leader GET /replica", STANDBY_LEADER, 0, GET, "/replica", NULL, 503 },
    { "standby leader GET /read-only", STANDBY_LEADER, 0, GET, "/read-only", NULL, 200 },
    { "standby cluster replica GET /replica", STANDBY_REPLICA, 0, GET, "/replica", NULL, 200 },
    { "standby cluster replica /standby-leader", STANDBY_REPLICA, 0, GET, "/standby-leader", NULL,
      503 },
};

static void test_rows(void **state)
{
    (void)state;
    unsigned failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const Row *r = &rows[i];
        HealthNode n = make_node(r->situation, r->mods);
        HealthResult res = { 0 };
        int k = health_check(&n, r->method, r->path, r->query, &res);
        HealthRoute route = health_route(r->method, r->path);
        HealthReply want_reply = r->method == HEALTH_METHOD_GET && route == HEALTH_ROUTE_STATUS
                                     ? HEALTH_REPLY_STATUS_JSON
                                     : HEALTH_REPLY_CODE_ONLY;
        if (k != 0 || res.status != r->status || res.reply != want_reply || !res.reason) {
            print_error("row %zu \"%s\": %s %s%s%s -> r=%d status %d (want %d), reply %d (want "
                        "%d), reason \"%s\"\n",
                        i, r->name, health_method_to_string(r->method), r->path,
                        r->query ? "?" : "", r->query ? r->query : "", k, res.status, r->status,
                        res.reply, want_reply, res.reason ? res.reason : "(null)");
            failures++;
        }
    }
    print_message("%zu rows checked\n", sizeof(rows) / sizeof(rows[0]));
    assert_int_equal(failures, 0);
}

typedef struct LagRow {
    const char *in;
    int r;
    int64_t value;
} LagRow;

static void test_parse_lag(void **state)
{
    (void)state;
    static const LagRow lag_rows[] = {
        { "1048576", 0, 1048576 },
        { "1MB", 0, 1048576 },
        { "1kB", 0, 1024 },
        { "1B", 0, 1 },
        { "1 MB", 0, 1048576 },
        { " 2GB ", 0, 2147483648LL },
        { "1TB", 0, 1099511627776LL },
        { "0x10", 0, 16 },
        { "0x10kB", 0, 16384 },
        { "010", 0, 8 },
        { "0", 0, 0 },
        { "0MB", 0, 0 },
        { "-1", 0, -1 },
        { "+5", 0, 5 },
        { "1.5MB", 0, 1572864 },
        { ".5MB", 0, 524288 },
        { "1.5", 0, 2 },
        { "2.5", 0, 2 },
        { "3.5", 0, 4 },
        { "1e3", 0, 1000 },
        { "4097.5kB", 0, 4195840 },
        { "99999999999999999999", 0, INT64_MAX },
        { "-99999999999999999999", 0, INT64_MIN },
        { "08", -EINVAL, 0 },
        { "0X10", -EINVAL, 0 },
        { "1KB", -EINVAL, 0 },
        { "1mb", -EINVAL, 0 },
        { "1 M B", -EINVAL, 0 },
        { "abc", -EINVAL, 0 },
        { "", -EINVAL, 0 },
        { "  ", -EINVAL, 0 },
        { "+.5MB", -EINVAL, 0 },
        { "5.", -EINVAL, 0 },
        { "1e", -EINVAL, 0 },
        { "1.5.5", -EINVAL, 0 },
    };
    unsigned failures = 0;
    for (size_t i = 0; i < sizeof(lag_rows) / sizeof(lag_rows[0]); i++) {
        int64_t v = 0;
        int r = health_parse_lag(lag_rows[i].in, &v);
        if (r != lag_rows[i].r || (r == 0 && v != lag_rows[i].value)) {
            print_error("lag \"%s\": r=%d value=%lld, want r=%d value=%lld\n", lag_rows[i].in, r,
                        (long long)v, lag_rows[i].r, (long long)lag_rows[i].value);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_int_equal(health_parse_lag(NULL, &(int64_t){ 0 }), -EINVAL);
}

static void test_route(void **state)
{
    (void)state;
    assert_int_equal(health_route(GET, "/"), HEALTH_ROUTE_STATUS);
    assert_int_equal(health_route(GET, "/replica"), HEALTH_ROUTE_STATUS);
    assert_int_equal(health_route(GET, "/liveness"), HEALTH_ROUTE_LIVENESS);
    assert_int_equal(health_route(GET, "/liveness/x"), HEALTH_ROUTE_LIVENESS);
    assert_int_equal(health_route(GET, "/readiness"), HEALTH_ROUTE_READINESS);
    assert_int_equal(health_route(HEAD, "/liveness"), HEALTH_ROUTE_STATUS);
    assert_int_equal(health_route(OPTIONS, "/readiness"), HEALTH_ROUTE_STATUS);
    assert_int_equal(health_route(GET, "/patroni"), HEALTH_ROUTE_OTHER);
    assert_int_equal(health_route(GET, "/cluster"), HEALTH_ROUTE_OTHER);
    assert_int_equal(health_route(GET, "/metrics"), HEALTH_ROUTE_OTHER);
    assert_int_equal(health_route(HEAD, "/patroni"), HEALTH_ROUTE_STATUS);
    assert_int_equal(health_route(GET, "/patronix"), HEALTH_ROUTE_STATUS);
    assert_int_equal(health_route(GET, NULL), _HEALTH_ROUTE_INVALID);
    assert_int_equal(health_route(_HEALTH_METHOD_MAX, "/"), _HEALTH_ROUTE_INVALID);

    HealthNode n = make_node(LEADER, 0);
    HealthResult res;
    assert_int_equal(health_check(&n, GET, "/cluster", NULL, &res), -EOPNOTSUPP);
    assert_int_equal(health_check(NULL, GET, "/", NULL, &res), -EINVAL);
    assert_int_equal(health_check(&n, GET, NULL, NULL, &res), -EINVAL);
    assert_int_equal(health_check(&n, GET, "/", NULL, NULL), -EINVAL);
}

static void test_enum_strings(void **state)
{
    (void)state;
    assert_int_equal(health_method_from_string("HEAD"), HEALTH_METHOD_HEAD);
    assert_int_equal(health_method_from_string("head"), _HEALTH_METHOD_INVALID);
    assert_int_equal(health_method_from_string(NULL), _HEALTH_METHOD_INVALID);
    assert_string_equal(health_method_to_string(HEALTH_METHOD_OPTIONS), "OPTIONS");
    assert_null(health_method_to_string(_HEALTH_METHOD_MAX));
    assert_int_equal(health_role_from_string("master"), HEALTH_ROLE_PRIMARY);
    assert_int_equal(health_role_from_string("standby_leader"), HEALTH_ROLE_STANDBY_LEADER);
    assert_int_equal(health_role_from_string("boss"), _HEALTH_ROLE_INVALID);
    assert_string_equal(health_role_to_string(HEALTH_ROLE_REPLICA), "replica");
    assert_int_equal(health_pg_state_from_string("stopped"), HEALTH_PG_STOPPED);
    assert_string_equal(health_pg_state_to_string(HEALTH_PG_RUNNING), "running");
    assert_null(health_pg_state_to_string(_HEALTH_PG_INVALID));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_parse_lag),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_enum_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
