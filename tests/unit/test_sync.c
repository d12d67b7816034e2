/* Unit tests for synchronous_mode's pure part: the choice of synchronous
 * standbys, synchronous_standby_names and the sync key's text, the two
 * conditions under which the key may stop naming a member, and who may be
 * promoted (dcs_sync_problem). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dcs.h"
#include "sync.h"

#define R(n, str, elig, lsn)                                                                       \
    ((SyncReplica){ .name = n, .streaming = str, .eligible = elig, .flush_lsn = lsn })

static void choose_text(const SyncReplica *rows, size_t n, const SyncSet *cur, int64_t count,
                        char *buf, size_t size)
{
    SyncSet out;
    sync_choose(rows, n, cur, count, NULL, &out);
    assert_int_equal(sync_key_text(&out, buf, size), 0);
}

static void test_choose(void **state)
{
    (void)state;
    char t[256];
    SyncSet none = { 0 };
    const SyncReplica rows[] = {
        R("n2", true, true, 100), R("n3", true, true, 300),
        R("n4", false, true, 900), /* catching up: not yet */
        R("n5", true, false, 800), /* nosync or not a member */
    };
    /* the most advanced streaming, eligible replica */
    choose_text(rows, 4, &none, 1, t, sizeof(t));
    assert_string_equal(t, "n3");
    /* the current synchronous standby is kept while it streams */
    SyncSet cur = { .names = { "N2" }, .n = 1 };
    choose_text(rows, 4, &cur, 1, t, sizeof(t));
    assert_string_equal(t, "n2");
    /* two wanted: current first, then the best of the rest */
    choose_text(rows, 4, &cur, 2, t, sizeof(t));
    assert_string_equal(t, "n2,n3");
    /* more wanted than there are: all eligible streaming ones */
    choose_text(rows, 4, &none, 5, t, sizeof(t));
    assert_string_equal(t, "n3,n2");
    /* a current standby that stopped streaming is replaced */
    const SyncReplica gone[] = { R("n2", false, true, 100), R("n3", true, true, 50) };
    choose_text(gone, 2, &cur, 1, t, sizeof(t));
    assert_string_equal(t, "n3");
    /* nobody eligible: empty; count 0: empty */
    choose_text(rows + 2, 2, &none, 1, t, sizeof(t));
    assert_string_equal(t, "");
    choose_text(rows, 4, &none, 0, t, sizeof(t));
    assert_string_equal(t, "");
    /* equal positions: by name */
    const SyncReplica tie[] = { R("n9", true, true, 7), R("n1", true, true, 7) };
    choose_text(tie, 2, &none, 1, t, sizeof(t));
    assert_string_equal(t, "n1");
}

static void test_standby_names(void **state)
{
    (void)state;
    char b[128];
    SyncSet s = { .names = { "n2", "we\"ird" }, .n = 2 };
    assert_int_equal(sync_standby_names(&s, false, b, sizeof(b)), 0);
    assert_string_equal(b, "FIRST 2 (\"n2\",\"we\"\"ird\")");
    s.n = 1;
    assert_int_equal(sync_standby_names(&s, false, b, sizeof(b)), 0);
    assert_string_equal(b, "FIRST 1 (\"n2\")");
    s.n = 0;
    assert_int_equal(sync_standby_names(&s, false, b, sizeof(b)), 0);
    assert_string_equal(b, "");
    assert_int_equal(sync_standby_names(&s, true, b, sizeof(b)), 0);
    assert_string_equal(b, "*");
    /* too small: an error, never a truncated list */
    s.n = 2;
    assert_int_equal(sync_standby_names(&s, false, b, 12), -ENOBUFS);
    assert_int_equal(sync_key_text(&s, b, 4), -ENOBUFS);
    assert_int_equal(sync_key_text(&s, b, sizeof(b)), 0);
    assert_string_equal(b, "n2,we\"ird");
}

static void test_sets(void **state)
{
    (void)state;
    SyncSet a = { 0 }, b = { 0 };
    sync_set_add(&a, "n2");
    sync_set_add(&a, "N2"); /* case-insensitive: once */
    assert_int_equal(a.n, 1);
    assert_true(sync_set_subset(&b, &a)); /* the empty set */
    assert_false(sync_set_subset(&a, &b));
    sync_set_add(&b, "n3");
    sync_set_add(&b, "n2");
    assert_true(sync_set_subset(&a, &b));
    assert_true(sync_set_contains(&b, "N3"));
    assert_false(sync_set_contains(&b, "n4"));
    for (int i = 0; i < SYNC_SET_MAX + 4; i++) {
        sync_set_add(&b, i % 2 ? "x" : "y"); /* duplicates never grow it */
    }
    assert_int_equal(b.n, 4);
}

static void test_shrink_conditions(void **state)
{
    (void)state;
    SyncSet keep = { .names = { "n3" }, .n = 1 };
    SyncReplica rows[] = {
        { .name = "n2", .streaming = true, .waited_on = true, .sync = true, .flush_lsn = 500 },
        { .name = "n3", .streaming = true, .waited_on = true, .sync = true, .flush_lsn = 400 },
    };
    /* n2's walsender has not applied the new synchronous_standby_names */
    assert_false(sync_others_released(rows, 2, &keep));
    rows[0].waited_on = false;
    rows[0].sync = false;
    assert_true(sync_others_released(rows, 2, &keep));
    /* the member that stays must have flushed past the release point */
    assert_true(sync_caught_up(rows, 2, &keep, 400));
    assert_false(sync_caught_up(rows, 2, &keep, 401));
    /* ... and be a synchronous standby, not merely connected */
    rows[1].sync = false;
    assert_false(sync_caught_up(rows, 2, &keep, 100));
    /* a member of keep without a row: not caught up */
    SyncSet other = { .names = { "n9" }, .n = 1 };
    assert_false(sync_caught_up(rows, 2, &other, 0));
    /* nobody to keep (asynchronous fallback): trivially caught up */
    SyncSet none = { 0 };
    assert_true(sync_caught_up(rows, 2, &none, 999));
    /* and released once no walsender is waited on any more */
    assert_false(sync_others_released(rows, 2, &none));
    rows[1].waited_on = false;
    assert_true(sync_others_released(rows, 2, &none));
}

static void test_sync_problem(void **state)
{
    (void)state;
    char *members[] = { "n2", "n3" };
    DcsSync key = { .leader = "n1", .sync_standby = "n2,n3", .members = members, .n_members = 2 };
    DcsCluster c = { .sync = &key };
    /* the leader and the listed standbys may lead; others may not */
    assert_null(dcs_sync_problem(&c, true, "n1"));
    assert_null(dcs_sync_problem(&c, true, "N2"));
    assert_null(dcs_sync_problem(&c, true, "n3"));
    assert_non_null(dcs_sync_problem(&c, true, "n4"));
    assert_non_null(dcs_sync_problem(&c, true, NULL));
    /* synchronous_mode off: no restriction */
    assert_null(dcs_sync_problem(&c, false, "n4"));
    /* asynchronous fallback (no standby listed): only the old leader */
    key.n_members = 0;
    key.sync_standby = NULL;
    assert_null(dcs_sync_problem(&c, true, "n1"));
    assert_non_null(dcs_sync_problem(&c, true, "n2"));
    /* no key, or a key without a leader: nothing known, no restriction */
    key.leader = NULL;
    assert_null(dcs_sync_problem(&c, true, "n4"));
    c.sync = NULL;
    assert_null(dcs_sync_problem(&c, true, "n4"));
    assert_null(dcs_sync_problem(NULL, true, "n4"));
}

/* ---- the leader's step (sync_plan) ---- */

static const char *const pool[] = { "n1", "n2", "n3", "n4" };

static bool names_wait_for(const char *names, const char *member)
{
    char quoted[16];
    snprintf(quoted, sizeof(quoted), "\"%s\"", member);
    return names && strstr(names, quoted) != NULL;
}

static void test_plan_steps(void **state)
{
    (void)state;
    SyncReplica rows[] = {
        { .name = "n2", .streaming = true, .eligible = true, .flush_lsn = 100 },
    };
    SyncPlanInput in = { .enabled = false, .names = "FIRST 1 (\"n2\")", .key_present = true };
    SyncStep st;
    /* off: synchronous_standby_names first, then the key */
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_UNSET_NAMES);
    in.names = NULL;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_DELETE_KEY);
    in.key_present = false;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_NONE);
    /* on: the key names n2 before PostgreSQL waits for it */
    in = (SyncPlanInput){ .enabled = true, .node_count = 1, .rows = rows, .n = 1 };
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_PUT_KEY);
    assert_int_equal(st.key.n, 1);
    assert_string_equal(st.key.names[0], "n2");
    in.key_mine = in.key_present = true;
    in.key = st.key;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_SET_NAMES);
    assert_string_equal(st.names, "FIRST 1 (\"n2\")");
    in.names = "FIRST 1 (\"n2\")";
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_NONE);
    /* n2 stops streaming, not strict: PostgreSQL stops waiting (said once) */
    rows[0].streaming = false;
    rows[0].waited_on = rows[0].sync = true;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_SET_NAMES);
    assert_string_equal(st.names, "");
    assert_true(st.say_async);
    assert_true(st.async_said);
    in.names = "";
    in.async_said = true;
    /* its walsender still waited on: the key keeps naming it */
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_NONE);
    assert_false(st.say_async);
    /* released: our flush position is noted, then the key drops it */
    rows[0].waited_on = rows[0].sync = false;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_NOTE_RELEASE);
    in.release_lsn = 500;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_PUT_KEY);
    assert_int_equal(st.key.n, 0);
    assert_true(st.clears_release);
    /* strict, nobody streams: "*" and the key names nobody */
    in = (SyncPlanInput){ .enabled = true, .strict = true, .node_count = 1, .rows = rows, .n = 1 };
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_PUT_KEY);
    assert_int_equal(st.key.n, 0);
    in.key_mine = in.key_present = true;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_SET_NAMES);
    assert_string_equal(st.names, "*");
    assert_true(st.say_strict_wait);
    in.names = "*";
    in.async_said = true;
    assert_int_equal(sync_plan(&in, &st), 0);
    assert_int_equal(st.effect, SYNC_EFFECT_NONE);
}

/* Random replicas coming and going, the step's effects applied to a model
 * of the key and of synchronous_standby_names: PostgreSQL never waits for
 * a member the key does not name (the one that could hold an acknowledged
 * commit is always promotable), and with the replicas steady the step
 * settles within a few loops. */
static void test_plan_property(void **state)
{
    (void)state;
    unsigned long checks = 0;
    for (unsigned seed = 1; seed <= 2000; seed++) {
        srand(seed);
        SyncSet key = { .n = 0 };
        bool key_mine = false, key_present = rand() % 2;
        char names[SYNC_NAMES_TEXT_MAX];
        bool managed = false, async_said = false;
        uint64_t release = 0, lsn = 100;
        bool strict = rand() % 3 == 0;
        int64_t count = 1 + rand() % 2;
        SyncReplica rows[4];
        size_t n = 0;
        for (int step = 0; step < 120; step++) {
            bool steady = step % 20 >= 12; /* the replicas stay as they are */
            if (!steady) {
                n = 0;
                for (size_t i = 0; i < 4; i++) {
                    if (rand() % 4 == 0) {
                        continue;
                    }
                    rows[n++] = (SyncReplica){
                        .name = pool[i],
                        .streaming = rand() % 4 != 0,
                        .eligible = rand() % 6 != 0,
                        .flush_lsn = lsn + (uint64_t)(rand() % 50),
                    };
                }
                lsn += 10;
            }
            for (size_t i = 0; i < n; i++) {
                /* PostgreSQL waits for what synchronous_standby_names names */
                bool waited =
                    managed && (names_wait_for(names, rows[i].name) || strcmp(names, "*") == 0);
                rows[i].waited_on = waited;
                rows[i].sync = waited && rows[i].streaming;
            }
            SyncPlanInput in = {
                .enabled = step % 37 != 36,
                .strict = strict,
                .node_count = count,
                .key_present = key_present,
                .key_mine = key_mine,
                .key = key_mine ? key : (SyncSet){ .n = 0 },
                .rows = rows,
                .n = n,
                .names = managed ? names : NULL,
                .release_lsn = release,
                .async_said = async_said,
            };
            SyncStep st;
            assert_int_equal(sync_plan(&in, &st), 0);
            async_said = st.async_said;
            switch (st.effect) {
            case SYNC_EFFECT_PUT_KEY:
                key = st.key;
                key_mine = key_present = true;
                if (st.clears_release) {
                    release = 0;
                }
                break;
            case SYNC_EFFECT_DELETE_KEY:
                key = (SyncSet){ .n = 0 };
                key_mine = key_present = false;
                break;
            case SYNC_EFFECT_SET_NAMES:
                snprintf(names, sizeof(names), "%s", st.names);
                managed = true;
                release = 0;
                break;
            case SYNC_EFFECT_UNSET_NAMES:
                managed = false;
                release = 0;
                break;
            case SYNC_EFFECT_NOTE_RELEASE:
                release = lsn + 60;
                break;
            default:
                if (steady && step % 20 == 19) {
                    checks++; /* settled */
                }
                break;
            }
            if (steady && step % 20 == 19) {
                assert_int_equal(st.effect, SYNC_EFFECT_NONE);
            }
            /* the invariant */
            for (size_t i = 0; managed && i < 4; i++) {
                if (names_wait_for(names, pool[i])) {
                    assert_true(key_mine);
                    assert_true(sync_set_contains(&key, pool[i]));
                    checks++;
                }
            }
        }
    }
    assert_true(checks > 10000);
}

/* Patroni's maximum_lag_on_syncnode: a standby further than max_lag behind
 * the furthest candidate (the primary when it is the only one) is not
 * chosen, even the current one; 0 or -1: no limit. */
static void test_choose_lag_limit(void **state)
{
    (void)state;
    char t[256];
    SyncSet cur = { .names = { "n2" }, .n = 1 }, out;
    const SyncReplica rows[] = {
        R("n2", true, true, 1000), /* the current standby, 9000 behind n3 */
        R("n3", true, true, 10000),
        R("n4", true, true, 9500),
    };
    SyncLagLimit none = { .max_lag = -1 }, zero = { .max_lag = 0 }, lag = { .max_lag = 1000 };
    sync_choose(rows, 3, &cur, 1, &none, &out);
    assert_int_equal(sync_key_text(&out, t, sizeof(t)), 0);
    assert_string_equal(t, "n2"); /* kept: no limit */
    sync_choose(rows, 3, &cur, 1, &zero, &out);
    assert_int_equal(sync_key_text(&out, t, sizeof(t)), 0);
    assert_string_equal(t, "n2");
    sync_choose(rows, 3, &cur, 1, &lag, &out);
    assert_int_equal(sync_key_text(&out, t, sizeof(t)), 0);
    assert_string_equal(t, "n3"); /* swapped for the best one within the limit */
    sync_choose(rows, 3, &cur, 2, &lag, &out);
    assert_int_equal(sync_key_text(&out, t, sizeof(t)), 0);
    assert_string_equal(t, "n3,n4"); /* n4 is 500 behind n3: within */
    /* alone, measured against the primary's position */
    SyncLagLimit primary = { .max_lag = 1000, .primary_lsn = 5000 };
    sync_choose(rows, 1, &cur, 1, &primary, &out);
    assert_int_equal(out.n, 0);
    primary.primary_lsn = 1500;
    sync_choose(rows, 1, &cur, 1, &primary, &out);
    assert_int_equal(sync_key_text(&out, t, sizeof(t)), 0);
    assert_string_equal(t, "n2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_choose_lag_limit),
        cmocka_unit_test(test_standby_names),
        cmocka_unit_test(test_sets),
        cmocka_unit_test(test_shrink_conditions),
        cmocka_unit_test(test_sync_problem),
        cmocka_unit_test(test_plan_steps),
        cmocka_unit_test(test_plan_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
