/* Unit tests for lib/kvcache.c: loading from a range, applying watch events
 * in revision order, invalidation (compaction, cancel, out-of-order events,
 * a resume that skips revisions), the freshness rule, and that a snapshot
 * builds the same DcsCluster as the range a fresh read would return. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "dcs.h"
#include "etcd.h"
#include "kvcache.h"

#define PREFIX "/service/batman/"

typedef struct Kv {
    const char *key;
    const char *value;
    int64_t mod_revision;
    int64_t lease;
} Kv;

static EtcdKeyValue make_kv(const Kv *k)
{
    EtcdKeyValue kv = { .key = strdup(k->key),
                        .key_len = strlen(k->key),
                        .value = strdup(k->value ? k->value : ""),
                        .value_len = k->value ? strlen(k->value) : 0,
                        .create_revision = k->mod_revision,
                        .mod_revision = k->mod_revision,
                        .version = 1,
                        .lease = k->lease };
    assert_non_null(kv.key);
    assert_non_null(kv.value);
    return kv;
}

/* A range result as etcd returns it: kvs sorted by key. */
static EtcdResult make_range(const Kv *kvs, size_t n, int64_t revision)
{
    EtcdResult r = { .type = ETCD_OP_RANGE, .revision = revision, .count = (int64_t)n };
    r.kvs = calloc(n ? n : 1, sizeof(*r.kvs));
    assert_non_null(r.kvs);
    for (size_t i = 0; i < n; i++) {
        r.kvs[i] = make_kv(&kvs[i]);
    }
    r.n_kvs = n;
    return r;
}

typedef struct Ev {
    EtcdEventType type;
    Kv kv;
} Ev;

static EtcdWatchResponse make_message(const Ev *evs, size_t n, int64_t header_revision)
{
    EtcdWatchResponse w = { .revision = header_revision };
    w.events = calloc(n ? n : 1, sizeof(*w.events));
    assert_non_null(w.events);
    for (size_t i = 0; i < n; i++) {
        w.events[i].type = evs[i].type;
        w.events[i].kv = make_kv(&evs[i].kv);
        if (evs[i].type == ETCD_EVENT_DELETE) {
            /* a DELETE carries only the key and mod_revision */
            free(w.events[i].kv.value);
            w.events[i].kv.value = NULL;
            w.events[i].kv.value_len = 0;
            w.events[i].kv.create_revision = 0;
            w.events[i].kv.version = 0;
        }
    }
    w.n_events = n;
    return w;
}

static int apply(KvCache *c, const Ev *evs, size_t n)
{
    EtcdWatchResponse w = make_message(evs, n, 0);
    int r = kv_cache_apply(c, &w);
    etcd_watch_response_done(&w);
    return r;
}

static void assert_same_range(const EtcdResult *a, const EtcdResult *b)
{
    assert_int_equal(a->type, ETCD_OP_RANGE);
    assert_int_equal(a->revision, b->revision);
    assert_int_equal(a->n_kvs, b->n_kvs);
    assert_int_equal(a->count, b->count);
    assert_false(a->more);
    for (size_t i = 0; i < a->n_kvs; i++) {
        assert_int_equal(a->kvs[i].key_len, b->kvs[i].key_len);
        assert_memory_equal(a->kvs[i].key, b->kvs[i].key, a->kvs[i].key_len);
        assert_int_equal(a->kvs[i].value_len, b->kvs[i].value_len);
        assert_memory_equal(a->kvs[i].value, b->kvs[i].value, a->kvs[i].value_len);
        assert_int_equal(a->kvs[i].key[a->kvs[i].key_len], '\0');
        assert_int_equal(a->kvs[i].value[a->kvs[i].value_len], '\0');
        assert_int_equal(a->kvs[i].mod_revision, b->kvs[i].mod_revision);
        assert_int_equal(a->kvs[i].lease, b->kvs[i].lease);
    }
}

static const Kv base[] = {
    { PREFIX "config", "{\"ttl\":30,\"loop_wait\":10}", 3, 0 },
    { PREFIX "initialize", "7214324235435253233", 2, 0 },
    { PREFIX "leader", "n1", 5, 77 },
    { PREFIX "members/n1", "{\"role\":\"master\",\"state\":\"running\"}", 4, 77 },
    { PREFIX "members/n2", "{\"role\":\"replica\",\"state\":\"running\"}", 6, 78 },
};

static KvCache *loaded(int64_t revision)
{
    KvCache *c = NULL;
    assert_int_equal(kv_cache_new(&c), 0);
    EtcdResult r = make_range(base, ELEMENTSOF(base), revision);
    assert_int_equal(kv_cache_load(c, &r), 0);
    etcd_result_done(&r);
    return c;
}

/* ---- tests ---- */

static void test_empty_is_invalid(void **state)
{
    _cleanup_(kv_cache_freep) KvCache *c = NULL;
    assert_int_equal(kv_cache_new(&c), 0);
    assert_false(kv_cache_is_valid(c));
    assert_int_equal(kv_cache_revision(c), 0);
    EtcdResult s = { 0 };
    assert_int_equal(kv_cache_snapshot(c, 0, 0, &s), -ESTALE);
    Ev ev = { ETCD_EVENT_PUT, { PREFIX "leader", "n1", 9, 0 } };
    assert_int_equal(apply(c, &ev, 1), -ESTALE);
    /* a range that hit a limit, or has no revision, is no base */
    EtcdResult r = make_range(base, 1, 10);
    r.more = true;
    assert_int_equal(kv_cache_load(c, &r), -EINVAL);
    r.more = false;
    r.revision = 0;
    assert_int_equal(kv_cache_load(c, &r), -EINVAL);
    etcd_result_done(&r);
    assert_false(kv_cache_is_valid(c));
    /* an empty prefix (a new cluster) is a valid base */
    r = make_range(NULL, 0, 3);
    assert_int_equal(kv_cache_load(c, &r), 0);
    etcd_result_done(&r);
    assert_int_equal(kv_cache_snapshot(c, 3, 0, &s), 0);
    assert_int_equal(s.n_kvs, 0);
    assert_int_equal(s.revision, 3);
    etcd_result_done(&s);
}

static void test_load_snapshot_is_the_range(void **state)
{
    /* the range's kvs out of order: the snapshot is sorted as etcd sorts */
    static const Kv shuffled[] = { base[3], base[0], base[4], base[2], base[1] };
    _cleanup_(kv_cache_freep) KvCache *c = NULL;
    assert_int_equal(kv_cache_new(&c), 0);
    EtcdResult r = make_range(shuffled, ELEMENTSOF(shuffled), 10);
    assert_int_equal(kv_cache_load(c, &r), 0);
    etcd_result_done(&r);
    assert_true(kv_cache_is_valid(c));
    assert_int_equal(kv_cache_revision(c), 10);

    EtcdResult want = make_range(base, ELEMENTSOF(base), 10);
    EtcdResult s = { 0 };
    assert_int_equal(kv_cache_snapshot(c, 10, 0, &s), 0);
    assert_same_range(&s, &want);
    etcd_result_done(&s);
    etcd_result_done(&want);
}

static void test_apply_put_delete(void **state)
{
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    /* a new member (inserted in key order), the leader key changes hands,
     * n2's member key expires with its lease */
    Ev evs[] = {
        { ETCD_EVENT_PUT, { PREFIX "members/n15", "{\"role\":\"replica\"}", 11, 79 } },
        { ETCD_EVENT_DELETE, { PREFIX "leader", NULL, 12, 0 } },
        { ETCD_EVENT_PUT, { PREFIX "leader", "n2", 13, 78 } },
        { ETCD_EVENT_DELETE, { PREFIX "members/n2", NULL, 14, 0 } },
        { ETCD_EVENT_DELETE, { PREFIX "nothing", NULL, 15, 0 } }, /* absent: no-op */
    };
    for (size_t i = 0; i < ELEMENTSOF(evs); i++) {
        assert_int_equal(apply(c, &evs[i], 1), 1);
    }
    assert_int_equal(kv_cache_revision(c), 15);
    static const Kv after[] = {
        base[0],
        base[1],
        { PREFIX "leader", "n2", 13, 78 },
        base[3],
        { PREFIX "members/n15", "{\"role\":\"replica\"}", 11, 79 },
    };
    EtcdResult want = make_range(after, ELEMENTSOF(after), 15);
    EtcdResult s = { 0 };
    assert_int_equal(kv_cache_snapshot(c, 15, 0, &s), 0);
    assert_same_range(&s, &want);
    etcd_result_done(&s);
    etcd_result_done(&want);

    KvCacheStats st;
    kv_cache_get_stats(c, &st);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.events, 5);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.invalidations, 0);
}

static void test_one_txn_several_keys(void **state)
{
    /* a lease expiry deletes both keys at one revision, in one message */
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    Ev evs[] = {
        { ETCD_EVENT_DELETE, { PREFIX "leader", NULL, 11, 0 } },
        { ETCD_EVENT_DELETE, { PREFIX "members/n1", NULL, 11, 0 } },
    };
    assert_int_equal(apply(c, evs, ELEMENTSOF(evs)), 2);
    assert_int_equal(kv_cache_revision(c), 11);
    EtcdResult s = { 0 };
    assert_int_equal(kv_cache_snapshot(c, 11, 0, &s), 0);
    assert_int_equal(s.n_kvs, 3);
    etcd_result_done(&s);
}

static void test_out_of_order_invalidates(void **state)
{
    static const struct {
        const char *name;
        Ev evs[2];
        size_t n;
    } rows[] = {
        { "event at the load's revision", { { ETCD_EVENT_PUT, { PREFIX "a", "x", 10, 0 } } }, 1 },
        { "event below the load's revision", { { ETCD_EVENT_PUT, { PREFIX "a", "x", 7, 0 } } }, 1 },
        { "revisions go back within a message",
          { { ETCD_EVENT_PUT, { PREFIX "a", "x", 12, 0 } },
            { ETCD_EVENT_PUT, { PREFIX "b", "y", 11, 0 } } },
          2 },
    };
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        print_message("row: %s\n", rows[i].name);
        _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
        assert_int_equal(apply(c, rows[i].evs, rows[i].n), -ESTALE);
        assert_false(kv_cache_is_valid(c));
        EtcdResult s = { 0 };
        assert_int_equal(kv_cache_snapshot(c, 0, 0, &s), -ESTALE);
        KvCacheStats st;
        kv_cache_get_stats(c, &st);
        assert_int_equal(st.invalidations, 1);
        assert_int_equal(st.misses, 1);
    }
    /* a repeated message (same revision again) is out of order too */
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    Ev ev = { ETCD_EVENT_PUT, { PREFIX "a", "x", 11, 0 } };
    assert_int_equal(apply(c, &ev, 1), 1);
    assert_int_equal(apply(c, &ev, 1), -ESTALE);
    assert_false(kv_cache_is_valid(c));
}

static void test_compaction_and_cancel(void **state)
{
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    EtcdWatchResponse w = { .revision = 40, .canceled = true, .compact_revision = 30 };
    assert_int_equal(kv_cache_apply(c, &w), -ESTALE);
    assert_false(kv_cache_is_valid(c));
    assert_int_equal(kv_cache_revision(c), 0);
    /* a later event of the dead watch changes nothing */
    Ev ev = { ETCD_EVENT_PUT, { PREFIX "leader", "n9", 41, 0 } };
    assert_int_equal(apply(c, &ev, 1), -ESTALE);
    /* the watch thread loads it again */
    EtcdResult r = make_range(base, ELEMENTSOF(base), 45);
    assert_int_equal(kv_cache_load(c, &r), 0);
    etcd_result_done(&r);
    assert_int_equal(kv_cache_revision(c), 45);

    /* a server-side cancel without compaction */
    EtcdWatchResponse w2 = { .revision = 46, .canceled = true };
    assert_int_equal(kv_cache_apply(c, &w2), -ESTALE);
    assert_false(kv_cache_is_valid(c));
}

static void test_resume_must_follow(void **state)
{
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    /* the watch resumed right after the load, then after an event */
    assert_int_equal(kv_cache_check_next(c, 11), 0);
    Ev ev = { ETCD_EVENT_PUT, { PREFIX "leader", "n1", 12, 77 } };
    assert_int_equal(apply(c, &ev, 1), 1);
    assert_int_equal(kv_cache_check_next(c, 13), 0);
    assert_true(kv_cache_is_valid(c));
    /* a stream that resumes later than that may have skipped events */
    assert_int_equal(kv_cache_check_next(c, 15), -ESTALE);
    assert_false(kv_cache_is_valid(c));
    /* and nothing to check on an invalid cache */
    assert_int_equal(kv_cache_check_next(c, 99), 0);
}

static void test_freshness(void **state)
{
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    EtcdResult s = { 0 };
    /* the loop saw revision 12 (its keepalive): the cache at 10 is behind */
    assert_int_equal(kv_cache_snapshot(c, 12, 0, &s), -ETIMEDOUT);
    Ev ev = { ETCD_EVENT_PUT, { PREFIX "members/n2", "{}", 12, 78 } };
    assert_int_equal(apply(c, &ev, 1), 1);
    assert_int_equal(kv_cache_snapshot(c, 12, 0, &s), 0);
    assert_int_equal(s.revision, 12);
    etcd_result_done(&s);
    /* ahead of what the loop saw is fine */
    assert_int_equal(kv_cache_snapshot(c, 11, 0, &s), 0);
    etcd_result_done(&s);
    KvCacheStats st;
    kv_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
}

typedef struct Writer {
    KvCache *cache;
} Writer;

static void *writer_main(void *userdata)
{
    Writer *w = userdata;
    Ev ev = { ETCD_EVENT_PUT, { PREFIX "leader", "n1", 11, 77 } };
    EtcdWatchResponse m = make_message(&ev, 1, 11);
    (void)kv_cache_apply(w->cache, &m);
    etcd_watch_response_done(&m);
    return NULL;
}

static void test_wait_for_the_watch(void **state)
{
    /* the reader waits (CLOCK_MONOTONIC deadline) while another thread
     * applies the event it needs; a wrong clock would time out at once */
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    Writer w = { c };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    EtcdResult s = { 0 };
    int r = kv_cache_snapshot(c, 11, clock_monotonic_usec() + 10 * 1000000ULL, &s);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r, 0);
    assert_int_equal(s.revision, 11);
    etcd_result_done(&s);
    /* an invalidation ends a wait at once */
    kv_cache_invalidate(c);
    assert_int_equal(kv_cache_snapshot(c, 12, clock_monotonic_usec() + 10 * 1000000ULL, &s),
                     -ESTALE);
}

static void test_cluster_from_snapshot(void **state)
{
    /* The DcsCluster built from the cache after events equals the one built
     * from the range etcd would return at that revision. */
    _cleanup_(kv_cache_freep) KvCache *c = loaded(10);
    Ev evs[] = {
        { ETCD_EVENT_PUT, { PREFIX "failover", "{\"leader\":\"n1\",\"member\":\"n2\"}", 11, 0 } },
        { ETCD_EVENT_PUT,
          { PREFIX "config", "{\"ttl\":20,\"loop_wait\":2,\"pause\":true}", 12, 0 } },
        { ETCD_EVENT_PUT, { "/service/batman2/leader", "other", 13, 0 } },
    };
    for (size_t i = 0; i < ELEMENTSOF(evs); i++) {
        assert_int_equal(apply(c, &evs[i], 1), 1);
    }
    static const Kv range_at_13[] = {
        { PREFIX "config", "{\"ttl\":20,\"loop_wait\":2,\"pause\":true}", 12, 0 },
        { PREFIX "failover", "{\"leader\":\"n1\",\"member\":\"n2\"}", 11, 0 },
        base[1],
        base[2],
        base[3],
        base[4],
        { "/service/batman2/leader", "other", 13, 0 },
    };
    DcsPaths p;
    assert_int_equal(dcs_paths_init(&p, "/service/", "batman"), 0);
    EtcdResult s = { 0 }, want = make_range(range_at_13, ELEMENTSOF(range_at_13), 13);
    assert_int_equal(kv_cache_snapshot(c, 13, 0, &s), 0);
    _cleanup_(dcs_cluster_freep) DcsCluster *a = NULL;
    _cleanup_(dcs_cluster_freep) DcsCluster *b = NULL;
    assert_int_equal(dcs_cluster_from_result(&p, &s, &a), 0);
    assert_int_equal(dcs_cluster_from_result(&p, &want, &b), 0);
    assert_int_equal(a->revision, 13);
    assert_int_equal(a->revision, b->revision);
    assert_string_equal(a->initialize, b->initialize);
    assert_non_null(a->leader);
    assert_string_equal(a->leader->name, b->leader->name);
    assert_int_equal(a->leader->lease, b->leader->lease);
    assert_int_equal(a->leader->mod_revision, b->leader->mod_revision);
    assert_int_equal(a->n_members, b->n_members);
    for (size_t i = 0; i < a->n_members; i++) {
        assert_string_equal(a->members[i].name, b->members[i].name);
        assert_int_equal(a->members[i].mod_revision, b->members[i].mod_revision);
    }
    assert_non_null(a->config);
    assert_true(dcs_cluster_is_paused(a));
    assert_int_equal(a->config->dcs.loop_wait, b->config->dcs.loop_wait);
    assert_int_equal(a->config->mod_revision, b->config->mod_revision);
    assert_non_null(a->failover);
    assert_non_null(b->failover);
    assert_int_equal(a->failover->mod_revision, b->failover->mod_revision);
    assert_int_equal(a->n_problems, b->n_problems);
    etcd_result_done(&s);
    etcd_result_done(&want);
    dcs_paths_done(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_is_invalid),
        cmocka_unit_test(test_load_snapshot_is_the_range),
        cmocka_unit_test(test_apply_put_delete),
        cmocka_unit_test(test_one_txn_several_keys),
        cmocka_unit_test(test_out_of_order_invalidates),
        cmocka_unit_test(test_compaction_and_cancel),
        cmocka_unit_test(test_resume_must_follow),
        cmocka_unit_test(test_freshness),
        cmocka_unit_test(test_wait_for_the_watch),
        cmocka_unit_test(test_cluster_from_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
