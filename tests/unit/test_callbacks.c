/* agent/callbacks: the shell-style split against what Python's shlex.split
 * (POSIX mode, which Patroni 3.0.2 uses) gives for the same text, the argv
 * Patroni builds, and which callback each sequence of agent events fires,
 * table-driven. A failing row prints its name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "callbacks.h"

/* ---- split: expected words from python3 -c 'import shlex; shlex.split(...)' ---- */

#define WORDS_MAX 4

typedef struct SplitRow {
    const char *in;
    int n; /* words, or -EINVAL */
    const char *words[WORDS_MAX];
} SplitRow;

static const SplitRow split_rows[] = {
    { "/usr/local/bin/cb.sh", 1, { "/usr/local/bin/cb.sh" } },
    { "  /bin/cb  node1  ", 2, { "/bin/cb", "node1" } },
    { "python3 -c 'import sys; print(sys.argv)'",
      3,
      { "python3", "-c", "import sys; print(sys.argv)" } },
    { "a \"b c\" d", 3, { "a", "b c", "d" } },
    { "a\"b\"c", 1, { "abc" } },
    { "a'b'c", 1, { "abc" } },
    { "a\\ b", 1, { "a b" } },
    { "\"a\\\"b\"", 1, { "a\"b" } },
    { "\"a\\nb\"", 1, { "a\\nb" } },
    { "\"a\\\\b\"", 1, { "a\\b" } },
    { "''", 1, { "" } },
    { "x \"\" y", 3, { "x", "", "y" } },
    { "'a\\b'", 1, { "a\\b" } },
    { "a\tb\nc", 3, { "a", "b", "c" } },
    { "", 0, { NULL } },
    { "   ", 0, { NULL } },
    { "a#b #c", 2, { "a#b", "#c" } },
    { "\\\\x", 1, { "\\x" } },
    { "\"\\$HOME\"", 1, { "\\$HOME" } },
    { "$HOME ~ *", 3, { "$HOME", "~", "*" } },
    { "'open", -EINVAL, { NULL } },
    { "\"open", -EINVAL, { NULL } },
    { "trail\\", -EINVAL, { NULL } },
    { "\"trail\\", -EINVAL, { NULL } },
};

static void test_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(split_rows) / sizeof(split_rows[0]); i++) {
        const SplitRow *row = &split_rows[i];
        char **v = NULL;
        int n = callbacks_split(row->in, &v);
        if (n != row->n) {
            fail_msg("split [%s]: %d words, want %d", row->in, n, row->n);
        }
        for (int k = 0; k < n; k++) {
            if (strcmp(v[k], row->words[k]) != 0) {
                fail_msg("split [%s]: word %d is [%s], want [%s]", row->in, k, v[k], row->words[k]);
            }
        }
        if (n >= 0) {
            assert_null(v[n]);
        } else {
            assert_null(v); /* nothing written on failure */
        }
        callbacks_argv_free(v);
    }
}

static void test_argv(void **state)
{
    (void)state;
    char **v = NULL;
    int n = callbacks_argv("/opt/cb.sh 'node 1'", CALLBACKS_ON_ROLE_CHANGE, CALLBACKS_ROLE_MASTER,
                           "itest", &v);
    assert_int_equal(n, 5);
    const char *want[] = { "/opt/cb.sh", "node 1", "on_role_change", "master", "itest" };
    for (int i = 0; i < n; i++) {
        assert_string_equal(v[i], want[i]);
    }
    assert_null(v[5]);
    callbacks_argv_free(v);

    v = NULL;
    assert_int_equal(callbacks_argv("   ", CALLBACKS_ON_START, CALLBACKS_ROLE_REPLICA, "s", &v),
                     -EINVAL);
    assert_int_equal(callbacks_argv("'x", CALLBACKS_ON_START, CALLBACKS_ROLE_REPLICA, "s", &v),
                     -EINVAL);
    assert_int_equal(callbacks_argv("x", _CALLBACKS_ACTION_MAX, CALLBACKS_ROLE_REPLICA, "s", &v),
                     -EINVAL);
    assert_int_equal(callbacks_argv("x", CALLBACKS_ON_STOP, CALLBACKS_ROLE_REPLICA, NULL, &v),
                     -EINVAL);
    assert_null(v);
    assert_null(callbacks_argv_free(NULL));
}

/* ---- decide: sequences of events ---- */

#define STEPS_MAX 5
#define NOTHING   _CALLBACKS_ACTION_INVALID

typedef struct Step {
    CallbacksEvent ev;
    CallbacksRole role; /* the role given with the event */
    CallbacksAction want;
    CallbacksRole want_role;
} Step;

typedef struct DecideRow {
    const char *name;
    Step steps[STEPS_MAX];
    size_t n;
} DecideRow;

#define E(x)   CALLBACKS_EVENT_##x
#define R(x)   CALLBACKS_ROLE_##x
#define ON(x)  CALLBACKS_ON_##x
#define S(...) { __VA_ARGS__ }, sizeof((Step[]){ __VA_ARGS__ }) / sizeof(Step)
#define NO(ev, r)                                                                                  \
    {                                                                                              \
        E(ev), R(r), NOTHING, R(UNINITIALIZED)                                                     \
    }

static const DecideRow decide_rows[] = {
    { "bootstrap: the new primary is up", S({ E(STARTED), R(MASTER), ON(START), R(MASTER) }) },
    { "a clone started as a replica", S({ E(STARTED), R(REPLICA), ON(START), R(REPLICA) }) },
    { "agent started on a running replica: on_start once",
      S({ E(ATTACHED), R(REPLICA), ON(START), R(REPLICA) }, NO(ATTACHED, REPLICA)) },
    { "operator restart of a replica",
      S({ E(STARTED), R(REPLICA), ON(START), R(REPLICA) }, NO(RESTARTING, REPLICA),
        { E(STARTED), R(REPLICA), ON(RESTART), R(REPLICA) }) },
    { "operator restart of the primary",
      S({ E(ATTACHED), R(MASTER), ON(START), R(MASTER) }, NO(RESTARTING, MASTER),
        { E(STARTED), R(MASTER), ON(RESTART), R(MASTER) }) },
    { "a restart that failed: the next start is on_start",
      S({ E(STARTED), R(MASTER), ON(START), R(MASTER) }, NO(RESTARTING, MASTER),
        NO(START_FAILED, MASTER), { E(STARTED), R(MASTER), ON(START), R(MASTER) }) },
    { "promotion: on_role_change master, once",
      S({ E(STARTED), R(REPLICA), ON(START), R(REPLICA) },
        { E(PROMOTED), R(REPLICA), ON(ROLE_CHANGE), R(MASTER) }, NO(ATTACHED, MASTER)) },
    { "switchover, the old primary: on_stop demoted, then on_role_change replica",
      S({ E(STARTED), R(MASTER), ON(START), R(MASTER) },
        { E(DEMOTED), R(MASTER), ON(STOP), R(DEMOTED) },
        { E(STARTED), R(REPLICA), ON(ROLE_CHANGE), R(REPLICA) }) },
    { "fenced primary: on_stop master, then on_role_change replica",
      S({ E(STARTED), R(MASTER), ON(START), R(MASTER) },
        { E(STOPPED), R(REPLICA), ON(STOP), R(MASTER) },
        { E(STARTED), R(REPLICA), ON(ROLE_CHANGE), R(REPLICA) }) },
    { "a fenced primary that leads again: on_role_change master",
      S({ E(STARTED), R(MASTER), ON(START), R(MASTER) },
        { E(STOPPED), R(MASTER), ON(STOP), R(MASTER) },
        { E(STARTED), R(MASTER), ON(ROLE_CHANGE), R(MASTER) }) },
    { "a crashed primary restarted in place: on_start",
      S({ E(STARTED), R(MASTER), ON(START), R(MASTER) },
        { E(STARTED), R(MASTER), ON(START), R(MASTER) }) },
    { "a crashed primary back as a replica: on_role_change",
      S({ E(STARTED), R(MASTER), ON(START), R(MASTER) },
        { E(STARTED), R(REPLICA), ON(ROLE_CHANGE), R(REPLICA) }) },
    { "a replica stopped and started: on_stop, on_start",
      S({ E(STARTED), R(REPLICA), ON(START), R(REPLICA) },
        { E(STOPPED), R(MASTER), ON(STOP), R(REPLICA) },
        { E(STARTED), R(REPLICA), ON(START), R(REPLICA) }) },
    { "stopped before anything was announced: the given role",
      S({ E(STOPPED), R(MASTER), ON(STOP), R(MASTER) },
        { E(STARTED), R(REPLICA), ON(ROLE_CHANGE), R(REPLICA) }) },
    { "on_reload: the announced role wins over the guess",
      S({ E(RELOADED), R(REPLICA), ON(RELOAD), R(REPLICA) },
        { E(STARTED), R(MASTER), ON(START), R(MASTER) },
        { E(RELOADED), R(REPLICA), ON(RELOAD), R(MASTER) }) },
    { "on_reload does not count as called (Patroni's cb_called)",
      S({ E(RELOADED), R(MASTER), ON(RELOAD), R(MASTER) },
        { E(ATTACHED), R(MASTER), ON(START), R(MASTER) }) },
    { "found running in another role than announced",
      S({ E(STARTED), R(REPLICA), ON(START), R(REPLICA) },
        { E(ATTACHED), R(MASTER), ON(ROLE_CHANGE), R(MASTER) }) },
};

static const char *action_name(CallbacksAction a)
{
    const char *s = callbacks_action_to_string(a);
    return s ? s : "nothing";
}

static const char *role_name(CallbacksRole r)
{
    const char *s = callbacks_role_to_string(r);
    return s ? s : "?";
}

static void test_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(decide_rows) / sizeof(decide_rows[0]); i++) {
        const DecideRow *row = &decide_rows[i];
        CallbacksTrack t = { 0 };
        for (size_t k = 0; k < row->n; k++) {
            const Step *s = &row->steps[k];
            CallbacksAction a = NOTHING;
            CallbacksRole r = R(UNINITIALIZED);
            int fired = callbacks_decide(&t, s->ev, s->role, &a, &r);
            if (fired < 0) {
                fail_msg("%s, step %zu: error %d", row->name, k, fired);
            }
            if (s->want == NOTHING) {
                if (fired != 0 || a != NOTHING) {
                    fail_msg("%s, step %zu (%s): fired %s %s, want nothing", row->name, k,
                             callbacks_event_to_string(s->ev), callbacks_action_to_string(a),
                             callbacks_role_to_string(r));
                }
                continue;
            }
            if (fired != 1 || a != s->want || r != s->want_role) {
                fail_msg("%s, step %zu (%s): fired=%d %s %s, want %s %s", row->name, k,
                         callbacks_event_to_string(s->ev), fired, action_name(a), role_name(r),
                         callbacks_action_to_string(s->want),
                         callbacks_role_to_string(s->want_role));
            }
        }
    }
}

static void test_decide_invalid(void **state)
{
    (void)state;
    CallbacksTrack t = { 0 };
    CallbacksAction a = NOTHING;
    CallbacksRole r = R(UNINITIALIZED);
    assert_int_equal(callbacks_decide(&t, _CALLBACKS_EVENT_MAX, R(MASTER), &a, &r), -EINVAL);
    assert_int_equal(callbacks_decide(&t, E(STARTED), _CALLBACKS_ROLE_MAX, &a, &r), -EINVAL);
    assert_int_equal(callbacks_decide(NULL, E(STARTED), R(MASTER), &a, &r), -EINVAL);
    assert_int_equal(a, NOTHING);
    assert_false(t.called);
}

static void test_strings(void **state)
{
    (void)state;
    assert_string_equal(callbacks_action_to_string(CALLBACKS_ON_ROLE_CHANGE), "on_role_change");
    assert_int_equal(callbacks_action_from_string("on_reload"), CALLBACKS_ON_RELOAD);
    assert_int_equal(callbacks_action_from_string("on_promote"), _CALLBACKS_ACTION_INVALID);
    assert_int_equal(callbacks_action_from_string(NULL), _CALLBACKS_ACTION_INVALID);
    /* Patroni 3.0.2 passes "master" (4.0 changed it to "primary") */
    assert_string_equal(callbacks_role_to_string(CALLBACKS_ROLE_MASTER), "master");
    assert_int_equal(callbacks_role_from_string("standby_leader"), CALLBACKS_ROLE_STANDBY_LEADER);
    assert_int_equal(callbacks_role_from_string("primary"), _CALLBACKS_ROLE_INVALID);
    assert_null(callbacks_role_to_string(_CALLBACKS_ROLE_MAX));
    assert_string_equal(callbacks_event_to_string(CALLBACKS_EVENT_DEMOTED), "demoted");
    assert_null(callbacks_event_to_string(_CALLBACKS_EVENT_INVALID));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),   cmocka_unit_test(test_argv),
        cmocka_unit_test(test_decide),  cmocka_unit_test(test_decide_invalid),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
