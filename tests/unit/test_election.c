/* Unit tests for the election ranking: WAL position first, then
 * failover_priority, then name; nofailover and priority 0 never win; a peer
 * that still runs a primary stops any promotion; silent peers do not count;
 * peers past maximum_lag_on_failover by replay (or tagged nofailover) are
 * not contenders; our own lag verdict and its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "election.h"

#define C(n, lsn, prio, nofo)                                                                      \
    ((ElectionCandidate){                                                                          \
        .name = n, .wal_lsn = lsn, .failover_priority = prio, .nofailover = nofo })

typedef struct Row {
    const char *name;
    ElectionCandidate a, b;
    bool a_better;
} Row;

static void test_better(void **state)
{
    (void)state;
    static const Row rows[] = {
        { "higher lsn wins", C("n2", 200, 1, false), C("n1", 100, 1, false), true },
        { "lower lsn loses", C("n1", 100, 1, false), C("n2", 200, 1, false), false },
        { "lsn beats priority", C("n2", 200, 1, false), C("n1", 100, 9, false), true },
        { "equal lsn: higher priority", C("n2", 100, 5, false), C("n1", 100, 1, false), true },
        { "equal lsn and priority: smaller name", C("n1", 100, 1, false), C("n2", 100, 1, false),
          true },
        { "same candidate is not better than itself", C("n1", 100, 1, false),
          C("n1", 100, 1, false), false },
        { "nofailover never wins, even far ahead", C("n1", 900, 1, true), C("n2", 100, 1, false),
          false },
        { "priority 0 never wins", C("n1", 900, 0, false), C("n2", 100, 1, false), false },
        { "a candidate beats nofailover", C("n2", 100, 1, false), C("n1", 900, 1, true), true },
        /* pre_promote failed on one: it wins no tie, but WAL ahead still wins */
        { "equal lsn: not in backoff beats priority and name",
          (ElectionCandidate){ .name = "n3", .wal_lsn = 100, .failover_priority = 1 },
          (ElectionCandidate){
              .name = "n1", .wal_lsn = 100, .failover_priority = 9, .backoff = true },
          true },
        { "equal lsn: in backoff loses",
          (ElectionCandidate){
              .name = "n1", .wal_lsn = 100, .failover_priority = 9, .backoff = true },
          (ElectionCandidate){ .name = "n3", .wal_lsn = 100, .failover_priority = 1 }, false },
        { "in backoff but ahead still wins (no WAL is given up)",
          (ElectionCandidate){
              .name = "n1", .wal_lsn = 200, .failover_priority = 1, .backoff = true },
          (ElectionCandidate){ .name = "n3", .wal_lsn = 100, .failover_priority = 1 }, true },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (election_better(&rows[i].a, &rows[i].b) != rows[i].a_better) {
            fail_msg("row \"%s\"", rows[i].name);
        }
    }
}

static void test_healthiest(void **state)
{
    (void)state;
    ElectionCandidate me = C("n2", 100, 1, false);
    const char *why = "unset";
    ElectionPeer peers[3] = {
        { .name = "n1", .answered = false, .c = C("n1", 999, 1, false) }, /* silent: ignored */
        { .name = "n3", .answered = true, .c = C("n3", 100, 1, false) },  /* ties, loses on name */
        { .name = "n4", .answered = true, .c = C("n4", 500, 1, true) },   /* nofailover */
    };
    const ElectionRules none = { 0 };
    assert_true(election_is_healthiest(&me, peers, 3, &none, &why));
    assert_null(why);
    assert_true(election_is_healthiest(&me, peers, 3, NULL, &why));

    peers[1].c.wal_lsn = 101;
    assert_false(election_is_healthiest(&me, peers, 3, &none, &why));
    assert_string_equal(why, "another member is a better candidate");

    peers[1].c.wal_lsn = 50;
    peers[1].running_primary = true;
    assert_false(election_is_healthiest(&me, peers, 3, &none, &why));
    assert_string_equal(why, "another member still runs a primary");

    assert_true(election_is_healthiest(&me, NULL, 0, &none, &why));
}

/* The case: n1 paused replay, so it has received as much as n2 (and
 * wins the tie on its name) but will not promote itself: it must not stop
 * n2. */
static void test_lagging_peer_is_no_contender(void **state)
{
    (void)state;
    const ElectionRules rules = { .has_optime = true,
                                  .optime = 40000000,
                                  .maximum_lag_on_failover = 1048576 };
    ElectionCandidate me = C("n2", 40000000, 1, false);
    ElectionPeer peers[1] = { { .name = "n1",
                                .answered = true,
                                .has_replayed = true,
                                .replayed_lsn = 6000000,
                                .c = C("n1", 40000000, 1, false) } };
    const char *why = "unset";
    assert_true(election_is_healthiest(&me, peers, 1, &rules, &why));
    assert_null(why);
    /* without the rule (no optime known) the tie goes to n1 */
    const ElectionRules unknown = { .maximum_lag_on_failover = 1048576 };
    assert_false(election_is_healthiest(&me, peers, 1, &unknown, &why));
    assert_string_equal(why, "another member is a better candidate");
    /* a peer that replayed enough is a contender again */
    peers[0].replayed_lsn = 40000000 - 1048576;
    assert_false(election_is_healthiest(&me, peers, 1, &rules, &why));
    /* a running primary blocks even when it "lags" */
    peers[0].replayed_lsn = 0;
    peers[0].running_primary = true;
    assert_false(election_is_healthiest(&me, peers, 1, &rules, &why));
    assert_string_equal(why, "another member still runs a primary");
}

static void test_peer_skip(void **state)
{
    (void)state;
    const ElectionRules rules = { .has_optime = true,
                                  .optime = 1000,
                                  .maximum_lag_on_failover = 100 };
    static const struct {
        const char *name;
        ElectionPeer p;
        const char *skip;
    } rows[] = {
        { "contender",
          { .has_replayed = true, .replayed_lsn = 950, .c = C("a", 990, 1, false) },
          NULL },
        { "exactly at the limit",
          { .has_replayed = true, .replayed_lsn = 900, .c = C("a", 990, 1, false) },
          NULL },
        { "one byte past the limit",
          { .has_replayed = true, .replayed_lsn = 899, .c = C("a", 1000, 1, false) },
          "its replay is past maximum_lag_on_failover" },
        { "received is not replayed",
          { .has_replayed = true, .replayed_lsn = 10, .c = C("a", 1000, 1, false) },
          "its replay is past maximum_lag_on_failover" },
        { "ahead of the optime",
          { .has_replayed = true, .replayed_lsn = 2000, .c = C("a", 2000, 1, false) },
          NULL },
        { "no replayed_location (a primary's answer)", { .c = C("a", 10, 1, false) }, NULL },
        { "nofailover",
          { .has_replayed = true, .replayed_lsn = 1000, .c = C("a", 1000, 1, true) },
          "it is tagged nofailover" },
        { "priority 0",
          { .has_replayed = true, .replayed_lsn = 1000, .c = C("a", 1000, 0, false) },
          "its failover_priority is 0" },
        { "excluded by a cluster rule (synchronous_mode), even far ahead",
          { .has_replayed = true,
            .replayed_lsn = 5000,
            .excluded = "not a synchronous standby",
            .c = C("a", 5000, 1, false) },
          "not a synchronous standby" },
        { "watchdog_failed (a required watchdog it cannot arm), even far ahead",
          { .has_replayed = true,
            .replayed_lsn = 5000,
            .watchdog_failed = true,
            .c = C("a", 5000, 1, false) },
          "it is not watchdog capable" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *got = election_peer_skip(&rows[i].p, &rules);
        if ((got == NULL) != (rows[i].skip == NULL) || (got && strcmp(got, rows[i].skip) != 0)) {
            fail_msg("row \"%s\": %s", rows[i].name, got ? got : "(null)");
        }
    }
    const ElectionRules no_optime = { .maximum_lag_on_failover = 100 };
    assert_null(election_peer_skip(&rows[3].p, &no_optime));
    /* an excluded peer ahead of us does not stop us */
    ElectionCandidate me = C("b", 1000, 1, false);
    ElectionPeer ahead = rows[8].p;
    ahead.answered = true;
    const char *why = NULL;
    assert_true(election_is_healthiest(&me, &ahead, 1, &rules, &why));
    ahead.excluded = NULL;
    assert_false(election_is_healthiest(&me, &ahead, 1, &rules, &why));
}

static void test_lag_blocked(void **state)
{
    (void)state;
    const ElectionRules rules = { .has_optime = true,
                                  .optime = 40000000,
                                  .maximum_lag_on_failover = 1048576 };
    char buf[256] = "untouched";
    assert_false(election_lag_blocked(&rules, 40000000, false, buf, sizeof(buf)));
    assert_false(election_lag_blocked(&rules, 40000000 - 1048576, true, buf, sizeof(buf)));
    assert_false(election_lag_blocked(&rules, 50000000, false, buf, sizeof(buf)));
    assert_string_equal(buf, "untouched");
    assert_true(election_lag_blocked(&rules, 6445568, true, buf, sizeof(buf)));
    assert_string_equal(buf, "replay is paused, 33554432 bytes behind the last leader position "
                             "(maximum_lag_on_failover 1048576)");
    assert_true(election_lag_blocked(&rules, 40000000 - 1048577, false, buf, sizeof(buf)));
    assert_string_equal(buf, "1048577 bytes behind the last leader position "
                             "(maximum_lag_on_failover 1048576)");
    /* a short buffer is cut, not overrun */
    char small[8];
    assert_true(election_lag_blocked(&rules, 0, false, small, sizeof(small)));
    assert_string_equal(small, "4000000");
    const ElectionRules unknown = { .maximum_lag_on_failover = 0 };
    assert_false(election_lag_blocked(&unknown, 0, true, buf, sizeof(buf)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_better),
        cmocka_unit_test(test_healthiest),
        cmocka_unit_test(test_lagging_peer_is_no_contender),
        cmocka_unit_test(test_peer_skip),
        cmocka_unit_test(test_lag_blocked),
    };
    return cmocka_run_group_tests_name("election", tests, NULL, NULL);
}
