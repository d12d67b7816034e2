/* Unit tests for agent/fence's pure decisions: when
 * the fence fires, how long its loop sleeps and when it may exit. The fence
 * process itself runs against a real PostgreSQL in
 * tests/integration/test_fence.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fence.h"

#define MS  1000ULL
#define SEC (1000 * 1000ULL)

static void test_should_fire(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool armed;
        uint64_t deadline_usec, now_usec;
        bool fire;
    } rows[] = {
        { "disarmed, long past", false, 1 * SEC, 100 * SEC, false },
        { "disarmed, before", false, 10 * SEC, 1 * SEC, false },
        { "armed, before", true, 10 * SEC, 9 * SEC, false },
        { "armed, 1 us before", true, 10 * SEC, 10 * SEC - 1, false },
        { "armed, at the deadline", true, 10 * SEC, 10 * SEC, true },
        { "armed, after", true, 10 * SEC, 10 * SEC + 1, true },
        { "armed, long after", true, 1, UINT64_MAX, true },
        { "armed with 1 (fire at once)", true, 1, 1, true },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool fire = fence_should_fire(rows[i].armed, rows[i].deadline_usec, rows[i].now_usec);
        if (fire != rows[i].fire) {
            fail_msg("%s: fire=%d", rows[i].name, fire);
        }
    }
}

static void test_wait(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool armed;
        uint64_t deadline_usec, now_usec, wait_usec;
    } rows[] = {
        { "disarmed", false, 0, 5 * SEC, FENCE_IDLE_USEC },
        { "disarmed, stale deadline", false, 5 * SEC, 5 * SEC, FENCE_IDLE_USEC },
        /* armed: it sleeps until the deadline itself, however far */
        { "armed, far", true, 10 * SEC, 5 * SEC, 5 * SEC },
        { "armed, an hour", true, 3605 * SEC, 5 * SEC, 3600 * SEC },
        { "armed, 7 ms", true, 5 * SEC + 7 * MS, 5 * SEC, 7 * MS },
        { "armed, 1 us", true, 5 * SEC + 1, 5 * SEC, 1 },
        { "armed, reached", true, 5 * SEC, 5 * SEC, 0 },
        { "armed, past", true, 5 * SEC, 6 * SEC, 0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t w = fence_wait_usec(rows[i].armed, rows[i].deadline_usec, rows[i].now_usec);
        if (w != rows[i].wait_usec) {
            fail_msg("%s: wait %llu us", rows[i].name, (unsigned long long)w);
        }
        /* it sleeps 0 only when it is time to fire */
        assert_true(w > 0 ||
                    fence_should_fire(rows[i].armed, rows[i].deadline_usec, rows[i].now_usec));
    }
}

static void test_should_exit(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool exit_requested, armed, agent_alive, term;
        bool exit;
    } rows[] = {
        { "agent alive, disarmed", false, false, true, false, false },
        { "agent alive, armed", false, true, true, false, false },
        { "agent dead, armed: must still fence", false, true, false, false, false },
        { "agent dead, disarmed: nothing to protect", false, false, false, false, true },
        { "SIGTERM while armed: keep guarding", false, true, true, true, false },
        { "SIGTERM, agent dead, armed", false, true, false, true, false },
        { "SIGTERM, disarmed", false, false, true, true, true },
        { "asked by the agent", true, false, true, false, true },
        { "asked by the agent while armed", true, true, true, false, true },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool e = fence_should_exit(rows[i].exit_requested, rows[i].armed, rows[i].agent_alive,
                                   rows[i].term);
        if (e != rows[i].exit) {
            fail_msg("%s: exit=%d", rows[i].name, e);
        }
    }
}

static void test_null_and_invalid(void **state)
{
    (void)state;
    Fence *f = NULL;
    assert_int_equal(fence_start(NULL, "/tmp/x", &f), -EINVAL);
    assert_int_equal(fence_start("/tmp/x.fence", NULL, &f), -EINVAL);
    assert_int_equal(fence_start("", "/tmp/x", &f), -EINVAL);
    assert_int_equal(fence_start("/tmp/x.fence", "/tmp/x", NULL), -EINVAL);
    assert_null(f);
    /* the observers and mutators accept NULL */
    fence_arm(NULL, 1);
    fence_disarm(NULL);
    assert_int_equal(fence_ensure(NULL), -EINVAL);
    assert_int_equal(fence_get_pid(NULL), 0);
    assert_false(fence_is_armed(NULL));
    assert_int_equal(fence_get_fenced_count(NULL), 0);
    assert_null(fence_stop(NULL));
    assert_null(fence_free(NULL));
}

static void test_verdict(void **state)
{
    (void)state;
    const uint64_t T = 100 * SEC;
    static const struct {
        const char *name;
        FenceLocal l;
        FenceVerdict want;
    } rows[] = {
        { "leading", { .leading = true, .has_deadline = true, .running = true }, FENCE_ARM },
        { "leading without a lease deadline yet",
          { .leading = true, .running = true },
          FENCE_KEEP },
        { "stopped", { .has_deadline = true }, FENCE_DISARM },
        { "a replica, probed after the last promotion",
          { .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T,
            .maybe_primary_usec = T - 1 },
          FENCE_DISARM },
        { "a replica never promoted",
          { .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T },
          FENCE_DISARM },
        /* the hole the review found: pg_promote ran, a later step failed,
         * and the snapshot from before it still says "in recovery" */
        { "promoted after the snapshot that says replica",
          { .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T,
            .maybe_primary_usec = T + 1 },
          FENCE_ARM },
        { "promoted in the same microsecond as the snapshot",
          { .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T,
            .maybe_primary_usec = T },
          FENCE_ARM },
        { "running, probe failing, after a promotion",
          { .has_deadline = true, .running = true, .snap_usec = T, .maybe_primary_usec = T + 1 },
          FENCE_ARM },
        { "running, probe failing, no lease (agent restarted, etcd down)",
          { .running = true, .snap_usec = T, .maybe_primary_usec = T + 1 },
          FENCE_KEEP },
        { "running as a primary, not leading (yet)",
          { .has_deadline = true, .running = true, .probe_ok = true, .snap_usec = T },
          FENCE_KEEP },
        { "running, probe failing, nothing done to it",
          { .has_deadline = true, .running = true, .snap_usec = T },
          FENCE_KEEP },
        /* a promotion asked for and not finished can finish after any probe:
         * a fresh one in recovery proves nothing (it disarmed, and the
         * promotion finished later with the key elsewhere) */
        { "promotion pending, fresh probe in recovery",
          { .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T + 2,
            .maybe_primary_usec = T + 1,
            .promoting = true },
          FENCE_ARM },
        { "promotion pending, no lease",
          { .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T + 2,
            .maybe_primary_usec = T + 1,
            .promoting = true },
          FENCE_KEEP },
        { "promotion pending, postmaster gone",
          { .has_deadline = true, .promoting = true, .snap_usec = T + 2 },
          FENCE_DISARM },
        /* paused: nothing stops postgresql by itself (Patroni's pause) */
        { "paused, leading",
          { .leading = true,
            .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .snap_usec = T,
            .paused = true },
          FENCE_DISARM },
        { "paused, a primary after a promotion, not leading",
          { .has_deadline = true,
            .running = true,
            .snap_usec = T,
            .maybe_primary_usec = T + 1,
            .paused = true },
          FENCE_DISARM },
        { "paused, an operator's promotion pending",
          { .has_deadline = true,
            .running = true,
            .probe_ok = true,
            .in_recovery = true,
            .snap_usec = T + 2,
            .maybe_primary_usec = T + 1,
            .promoting = true,
            .paused = true },
          FENCE_ARM },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        FenceVerdict v = fence_verdict(&rows[i].l);
        if (v != rows[i].want) {
            fail_msg("%s: verdict %d, want %d", rows[i].name, (int)v, (int)rows[i].want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_should_fire),
        cmocka_unit_test(test_verdict),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_should_exit),
        cmocka_unit_test(test_null_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
