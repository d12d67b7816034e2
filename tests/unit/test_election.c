/* Unit tests for the election ranking: WAL position first, then
 * failover_priority, then name; nofailover and priority 0 never win; a peer
 * that still runs a primary stops any promotion; silent peers do not count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
    assert_true(election_is_healthiest(&me, peers, 3, &why));
    assert_null(why);

    peers[1].c.wal_lsn = 101;
    assert_false(election_is_healthiest(&me, peers, 3, &why));
    assert_string_equal(why, "another member is a better candidate");

    peers[1].c.wal_lsn = 50;
    peers[1].running_primary = true;
    assert_false(election_is_healthiest(&me, peers, 3, &why));
    assert_string_equal(why, "another member still runs a primary");

    assert_true(election_is_healthiest(&me, NULL, 0, &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_better),
        cmocka_unit_test(test_healthiest),
    };
    return cmocka_run_group_tests_name("election", tests, NULL, NULL);
}
