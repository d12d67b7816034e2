/* Unit tests for agent/future_restart.c: POST /restart's body parsed as
 * Patroni 3.0.2 parses it (codes and messages), its versions and timeouts,
 * the schedule as isoformat() prints it, and the decision at each loop. A
 * row per case; every failure names its row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "future_restart.h"

#define NOW 1900000000.0 /* 2030-03-17T17:46:40+00:00 */

typedef struct ParseRow {
    const char *body;
    unsigned status; /* 0: accepted */
    const char *message;
} ParseRow;

static const ParseRow parse_rows[] = {
    { "{}", 0, NULL },
    { "{\"schedule\": \"2030-03-17T18:00:00+00:00\"}", 0, NULL },
    { "{\"schedule\": \"2030-03-17T20:00:00+02:00\", \"role\": \"replica\"}", 0, NULL },
    { "{\"schedule\": \"2030-03-17T18:00:00Z\", \"postgres_version\": \"15.4\", "
      "\"timeout\": \"30s\", \"restart_pending\": true}",
      0, NULL },
    { "{\"schedule\": \"2030-03-17T18:00:00\"}", 400,
      "Timezone information is mandatory for the scheduled restart" },
    { "{\"schedule\": \"tomorrow\"}", 422,
      "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO "
      "8601" },
    { "{\"schedule\": 5}", 422,
      "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO "
      "8601" },
    { "{\"schedule\": \"2030-03-17T17:00:00+00:00\"}", 422, "Cannot schedule restart in the past" },
    { "{\"role\": \"leader\"}", 400, "PostgreSQL role should be either primary or replica" },
    { "{\"role\": \"master\"}", 0, NULL },
    { "{\"postgres_version\": \"10\"}", 400,
      "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 10" },
    { "{\"postgres_version\": \"9.6\"}", 400,
      "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6" },
    { "{\"postgres_version\": \"a.b.c\"}", 400, "Invalid PostgreSQL version: a.b.c" },
    { "{\"timeout\": 0}", 400, "Timeout should be a positive number of seconds" },
    { "{\"timeout\": \"-5\"}", 400, "Timeout should be a positive number of seconds" },
    { "{\"timeout\": \"5 parsecs\"}", 400, "Timeout should be a positive number of seconds" },
    { "{\"restart_pending\": \"yes\"}", 400, "restart_pending must be true or false" },
    { "{\"nosuch\": 1}", 400, "Unknown filter for the scheduled restart: nosuch" },
    /* the first bad key in the body's order wins, as Patroni's loop breaks */
    { "{\"nosuch\": 1, \"role\": \"x\"}", 400, "Unknown filter for the scheduled restart: nosuch" },
    { "{\"role\": \"x\", \"nosuch\": 1}", 400,
      "PostgreSQL role should be either primary or replica" },
};

static void test_parse(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
        const ParseRow *r = &parse_rows[i];
        json_t *body = json_loads(r->body, 0, NULL);
        assert_non_null(body);
        FutureRestart f;
        unsigned status = 0;
        char msg[FUTURE_RESTART_MESSAGE_MAX] = "";
        int k = future_restart_parse(body, NOW, &f, &status, msg, sizeof(msg));
        bool good =
            r->status == 0 ? k == 0 : k < 0 && status == r->status && strcmp(msg, r->message) == 0;
        if (!good) {
            print_error("%s: got %d %u \"%s\"\n", r->body, k, status, msg);
            failures++;
        }
        json_decref(body);
    }
    assert_int_equal(failures, 0);
}

static void test_versions(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int want; /* -1: refused */
    } rows[] = {
        { "9.5.3", 90503 },   { "9.3.13", 90313 }, { "10.1", 100001 }, { "15.4", 150004 },
        { "16.0.1", 160001 }, { "10", -1 },        { "9.6", -1 },      { "a.b.c", -1 },
        { "1.2.3.4", -1 },    { "", -1 },          { "15.", -1 },
    };
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int v = -1;
        char msg[FUTURE_RESTART_MESSAGE_MAX];
        int k = future_restart_version_to_int(rows[i].s, &v, msg, sizeof(msg));
        if ((rows[i].want < 0) != (k < 0) || (k == 0 && v != rows[i].want)) {
            print_error("\"%s\": got %d (%d)\n", rows[i].s, v, k);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_timeouts(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int64_t want; /* -1: refused */
    } rows[] = {
        { "30", 30 },         { "\"30\"", 30 },    { "\" 30 s \"", 30 }, { "\"1min\"", 60 },
        { "\"1500 ms\"", 2 }, { "\"2500ms\"", 2 }, { "\"2h\"", 7200 },   { "2.5", 2 },
        { "\"1d\"", 86400 },  { "\"5x\"", -1 },    { "\"\"", -1 },       { "true", -1 },
        { "null", -1 },
    };
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        json_t *v = json_loads(rows[i].json, JSON_DECODE_ANY, NULL);
        int64_t sec = -1;
        int k = v ? future_restart_parse_timeout(v, &sec) : -1;
        if ((rows[i].want < 0) != (k < 0) || (k == 0 && sec != rows[i].want)) {
            print_error("%s: got %lld (%d)\n", rows[i].json, (long long)sec, k);
            failures++;
        }
        json_decref(v);
    }
    assert_int_equal(failures, 0);
}

static void test_doc(void **state)
{
    (void)state;
    json_t *body = json_loads("{\"postgres_version\": \"15.4\", \"schedule\": "
                              "\"2030-03-17T20:00:00.25+02:00\", \"timeout\": \"1min\"}",
                              0, NULL);
    FutureRestart f;
    unsigned status;
    char msg[FUTURE_RESTART_MESSAGE_MAX];
    assert_int_equal(future_restart_parse(body, NOW, &f, &status, msg, sizeof(msg)), 0);
    assert_true(f.scheduled);
    assert_int_equal(f.at_offset_sec, 7200);
    assert_int_equal(future_restart_build_doc(&f, body, 1899990000.5), 0);
    char *got = json_dumps(f.doc, JSON_COMPACT);
    assert_string_equal(got, "{\"postgres_version\":\"15.4\",\"schedule\":"
                             "\"2030-03-17T20:00:00.250000+02:00\",\"timeout\":60,"
                             "\"postmaster_start_time\":\"2030-03-17 15:00:00.500000+00:00\"}");
    free(got);
    json_decref(f.doc);
    json_decref(body);

    char buf[64];
    future_restart_format_time(NOW, 0, buf, sizeof(buf));
    assert_string_equal(buf, "2030-03-17T17:46:40+00:00");
    future_restart_format_time(NOW, -(5 * 3600 + 30 * 60), buf, sizeof(buf));
    assert_string_equal(buf, "2030-03-17T12:16:40-05:30");
}

typedef struct VerdictRow {
    const char *name;
    double at_delta; /* the schedule, seconds from now */
    bool role_replica, pending;
    int version;
    bool no_leader;
    int postmaster; /* 0: the same as when scheduled, 1: another, 2: unknown */
    FutureRestartInput in;
    FutureRestartVerdict want;
} VerdictRow;

#define IN(...)                                                                                    \
    {                                                                                              \
        .now_epoch = NOW, .loop_wait = 10, .server_version = 150004, __VA_ARGS__                   \
    }

static const VerdictRow verdict_rows[] = {
    { "ahead", 5, false, false, 0, false, 0, IN(), FUTURE_RESTART_WAIT },
    { "due", 0, false, false, 0, false, 0, IN(), FUTURE_RESTART_RUN },
    { "late within 1.5 loop_wait", -15, false, false, 0, false, 0, IN(), FUTURE_RESTART_RUN },
    { "stale", -16, false, false, 0, false, 0, IN(), FUTURE_RESTART_STALE },
    { "paused at its time: kept", 0, false, false, 0, false, 0, IN(.paused = true),
      FUTURE_RESTART_WAIT },
    { "paused long past: kept", -100, false, false, 0, false, 0, IN(.paused = true),
      FUTURE_RESTART_WAIT },
    { "busy: kept", 0, false, false, 0, false, 0, IN(.busy = true), FUTURE_RESTART_WAIT },
    { "no leader: kept", 0, false, false, 0, true, 0, IN(), FUTURE_RESTART_WAIT },
    { "restarted meanwhile", 5, false, false, 0, false, 1, IN(), FUTURE_RESTART_RESTARTED },
    { "start time unknown now", 0, false, false, 0, false, 2, IN(), FUTURE_RESTART_RUN },
    { "role mismatch", 0, true, false, 0, false, 0, IN(.primary = true), FUTURE_RESTART_MISMATCH },
    { "role match", 0, true, false, 0, false, 0, IN(.primary = false), FUTURE_RESTART_RUN },
    { "version not older", 0, false, false, 150004, false, 0, IN(), FUTURE_RESTART_MISMATCH },
    { "version older", 0, false, false, 160000, false, 0, IN(), FUTURE_RESTART_RUN },
    { "pending not set", 0, false, true, 0, false, 0, IN(), FUTURE_RESTART_MISMATCH },
    { "pending set", 0, false, true, 0, false, 0, IN(.pending_restart = true), FUTURE_RESTART_RUN },
};

static void test_verdict(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(verdict_rows) / sizeof(verdict_rows[0]); i++) {
        const VerdictRow *r = &verdict_rows[i];
        FutureRestart f = { .scheduled = true,
                            .at_epoch = NOW + r->at_delta,
                            .role_replica = r->role_replica,
                            .restart_pending = r->pending,
                            .postgres_version = r->version,
                            .postmaster_start_time = 1000 };
        FutureRestartInput in = r->in;
        in.evaluated = !r->no_leader;
        in.postmaster_start_time = r->postmaster == 0 ? 1000 : r->postmaster == 1 ? 2000 : 0;
        const char *why = NULL;
        FutureRestartVerdict got = future_restart_verdict(&f, &in, &why);
        if (got != r->want || (got == FUTURE_RESTART_MISMATCH) != (why != NULL)) {
            print_error("%s: got %d (%s), want %d\n", r->name, got, why ? why : "-", r->want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),    cmocka_unit_test(test_versions),
        cmocka_unit_test(test_timeouts), cmocka_unit_test(test_doc),
        cmocka_unit_test(test_verdict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
