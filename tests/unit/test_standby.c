/* lib/standby.c: Patroni's standby_cluster section, read. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "standby.h"

static json_t *doc(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

/* Patroni's is_standby_cluster(): host, port or restore_command set. */
static void test_active(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        bool active;
    } cases[] = {
        { "{}", false },
        { "{\"host\": \"\"}", false },
        { "{\"port\": 0}", false },
        { "{\"primary_slot_name\": \"x\", \"create_replica_methods\": [\"basebackup\"]}", false },
        { "{\"host\": \"db1\"}", true },
        { "{\"port\": 5433}", true },
        { "{\"port\": \"5433\"}", true },
        { "{\"restore_command\": \"cp %f %p\"}", true },
        { "[]", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = doc(cases[i].json);
        if (standby_cluster_active(j) != cases[i].active) {
            fail_msg("%s: expected %d", cases[i].json, cases[i].active);
        }
        json_decref(j);
    }
    assert_false(standby_cluster_active(NULL));
}

static void test_read(void **state)
{
    (void)state;
    StandbyCluster sc;
    json_t *j = doc("{\"host\": \"127.0.0.1\", \"port\": \"6432\", \"primary_slot_name\": \"dr\", "
                    "\"restore_command\": \"cp %f %p\", \"archive_cleanup_command\": \"\", "
                    "\"recovery_min_apply_delay\": 300000, "
                    "\"create_replica_methods\": [\"wal_g\", \"basebackup\"]}");
    assert_int_equal(standby_cluster_read(j, &sc), 1);
    assert_string_equal(sc.host, "127.0.0.1");
    assert_int_equal(sc.port, 6432);
    assert_string_equal(sc.primary_slot_name, "dr");
    assert_string_equal(sc.restore_command, "cp %f %p");
    assert_null(sc.archive_cleanup_command); /* empty: not given */
    assert_string_equal(sc.recovery_min_apply_delay, "300000");
    assert_int_equal(json_array_size(sc.create_replica_methods), 2);
    json_decref(j);

    /* archive only: no host, libpq's default port */
    j = doc("{\"restore_command\": \"cp %f %p\", \"recovery_min_apply_delay\": \"5min\"}");
    assert_int_equal(standby_cluster_read(j, &sc), 1);
    assert_null(sc.host);
    assert_int_equal(sc.port, 5432);
    assert_string_equal(sc.recovery_min_apply_delay, "5min");
    assert_null(sc.create_replica_methods);
    json_decref(j);

    /* not a standby cluster */
    j = doc("{\"primary_slot_name\": \"dr\"}");
    assert_int_equal(standby_cluster_read(j, &sc), 0);
    json_decref(j);

    /* a standby cluster that cannot be read: nobody may follow it (and the
     * HA rules still see a standby cluster) */
    static const char *const bad[] = {
        "{\"host\": \"db1\", \"port\": 70000}",
        "{\"host\": 1}",
        "{\"host\": \"db1\", \"recovery_min_apply_delay\": []}",
        "{\"host\": \"db1\", \"create_replica_methods\": \"basebackup\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = doc(bad[i]);
        if (standby_cluster_read(j, &sc) != -EINVAL) {
            fail_msg("%s: expected -EINVAL", bad[i]);
        }
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_active),
        cmocka_unit_test(test_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
