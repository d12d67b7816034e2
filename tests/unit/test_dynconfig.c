/* Unit tests for lib/dynconfig.c: Patroni's PATCH /config merge (a table of
 * base + patch = exact result) and the validation of whole `config`
 * documents (a table of documents with the exact message of the first
 * problem, or none). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "dynconfig.h"

#define ERR_MAX 512

#define NAME_HINT                                                                                  \
    "is not a PostgreSQL parameter name: use letters, digits and \"_\" (not a digit first), with " \
    "at most one \".\" (extension.setting)"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) {
        fail_msg("bad test JSON %s: %s", text, e.text);
    }
    return v;
}

/* ---- merge ---- */

typedef struct MergeRow {
    const char *name;
    const char *base; /* NULL: no base */
    const char *patch;
    int rc;
    const char *expected; /* when rc == 0 */
} MergeRow;

static const MergeRow merges[] = {
    { "replace_scalar", "{\"ttl\":30,\"loop_wait\":10}", "{\"ttl\":20}", 0,
      "{\"ttl\":20,\"loop_wait\":10}" },
    { "add_key", "{\"ttl\":30}", "{\"pause\":true}", 0, "{\"ttl\":30,\"pause\":true}" },
    { "null_deletes", "{\"ttl\":30,\"loop_wait\":10}", "{\"ttl\":null}", 0, "{\"loop_wait\":10}" },
    { "null_on_absent_key", "{\"ttl\":30}", "{\"pause\":null}", 0, "{\"ttl\":30}" },
    { "nested_merge",
      "{\"postgresql\":{\"use_slots\":true,\"parameters\":{\"a\":1,\"b\":2}},\"ttl\":30}",
      "{\"postgresql\":{\"parameters\":{\"a\":null,\"c\":\"3\"}}}", 0,
      "{\"postgresql\":{\"use_slots\":true,\"parameters\":{\"b\":2,\"c\":\"3\"}},\"ttl\":30}" },
    { "nested_delete_section", "{\"postgresql\":{\"parameters\":{\"a\":1}},\"ttl\":30}",
      "{\"postgresql\":{\"parameters\":null}}", 0, "{\"postgresql\":{},\"ttl\":30}" },
    { "new_object_drops_nulls", "{}",
      "{\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\",\"x\":null}}}", 0,
      "{\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\"}}}" },
    { "object_replaces_scalar", "{\"standby_cluster\":5}",
      "{\"standby_cluster\":{\"host\":\"h\",\"port\":null}}", 0,
      "{\"standby_cluster\":{\"host\":\"h\"}}" },
    { "scalar_replaces_object", "{\"x\":{\"a\":1}}", "{\"x\":5}", 0, "{\"x\":5}" },
    { "array_replaces_array", "{\"x\":[1,2,3]}", "{\"x\":[4]}", 0, "{\"x\":[4]}" },
    { "array_kept_whole_with_nulls", "{}", "{\"x\":[null,{\"a\":null}]}", 0,
      "{\"x\":[null,{\"a\":null}]}" },
    { "same_value", "{\"ttl\":30}", "{\"ttl\":30}", 0, "{\"ttl\":30}" },
    { "empty_patch", "{\"ttl\":30}", "{}", 0, "{\"ttl\":30}" },
    { "no_base", NULL, "{\"ttl\":30,\"x\":null}", 0, "{\"ttl\":30}" },
    { "patch_not_object", "{}", "[1]", -EINVAL, NULL },
    { "patch_null", "{}", "null", -EINVAL, NULL },
    { "base_not_object", "[1]", "{}", -EINVAL, NULL },
};

static void test_merge_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(merges) / sizeof(merges[0]); i++) {
        const MergeRow *row = &merges[i];
        json_t *base = row->base ? load(row->base) : NULL;
        json_t *patch = load(row->patch);
        char *base_before = base ? json_dumps(base, JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        char *patch_before = json_dumps(patch, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        json_t *out = NULL;
        int r = dynconfig_merge(base, patch, &out);
        if (r != row->rc) {
            fail_msg("%s: returned %d, expected %d", row->name, r, row->rc);
        }
        if (row->rc == 0) {
            json_t *want = load(row->expected);
            if (!json_equal(out, want)) {
                char *got = json_dumps(out, JSON_SORT_KEYS);
                fail_msg("%s: got %s, expected %s", row->name, got, row->expected);
            }
            json_decref(want);
        } else if (out) {
            fail_msg("%s: *ret written on failure", row->name);
        }
        /* neither input is modified */
        if (base) {
            char *after = json_dumps(base, JSON_SORT_KEYS | JSON_ENCODE_ANY);
            if (strcmp(after, base_before) != 0) {
                fail_msg("%s: base modified: %s", row->name, after);
            }
            free(after);
        }
        char *after = json_dumps(patch, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (strcmp(after, patch_before) != 0) {
            fail_msg("%s: patch modified: %s", row->name, after);
        }
        free(after);
        free(base_before);
        free(patch_before);
        json_decref(out);
        json_decref(base);
        json_decref(patch);
    }
}

/* The result shares nothing with the inputs: changing it leaves them. */
static void test_merge_result_is_a_copy(void **state)
{
    (void)state;
    json_t *base = load("{\"postgresql\":{\"parameters\":{\"a\":1}}}");
    json_t *patch = load("{\"x\":{\"y\":1}}");
    json_t *out = NULL;
    assert_int_equal(dynconfig_merge(base, patch, &out), 0);
    json_object_set_new(json_object_get(json_object_get(out, "postgresql"), "parameters"), "b",
                        json_integer(2));
    json_object_set_new(json_object_get(out, "x"), "z", json_integer(3));
    json_t *want_base = load("{\"postgresql\":{\"parameters\":{\"a\":1}}}");
    json_t *want_patch = load("{\"x\":{\"y\":1}}");
    assert_true(json_equal(base, want_base));
    assert_true(json_equal(patch, want_patch));
    json_decref(want_base);
    json_decref(want_patch);
    json_decref(out);
    json_decref(base);
    json_decref(patch);
}

static json_t *nested(unsigned depth)
{
    json_t *v = json_integer(1);
    for (unsigned i = 0; i < depth; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "k", v);
        v = o;
    }
    return v;
}

static void test_merge_depth_limit(void **state)
{
    (void)state;
    json_t *out = NULL;
    json_t *ok = nested(DYNCONFIG_DEPTH_MAX);
    assert_int_equal(dynconfig_merge(NULL, ok, &out), 0);
    assert_true(json_equal(out, ok));
    json_decref(out);
    out = NULL;
    /* the same depth merged into an existing tree */
    json_t *base = nested(DYNCONFIG_DEPTH_MAX);
    assert_int_equal(dynconfig_merge(base, ok, &out), 0);
    json_decref(out);
    out = NULL;
    json_t *deep = nested(DYNCONFIG_DEPTH_MAX + 3);
    assert_int_equal(dynconfig_merge(NULL, deep, &out), -EINVAL);
    assert_null(out);
    json_t *deep_base = nested(DYNCONFIG_DEPTH_MAX + 3);
    assert_int_equal(dynconfig_merge(deep_base, deep, &out), -EINVAL);
    assert_null(out);
    assert_int_equal(dynconfig_merge(NULL, NULL, &out), -EINVAL);
    assert_int_equal(dynconfig_merge(NULL, ok, NULL), -EINVAL);
    json_decref(ok);
    json_decref(base);
    json_decref(deep);
    json_decref(deep_base);
}

/* ---- validate ---- */

typedef struct ValidRow {
    const char *name;
    const char *doc;
    const char *message; /* NULL: valid */
} ValidRow;

#define OK(n, d)                                                                                   \
    {                                                                                              \
        n, d, NULL                                                                                 \
    }
#define BAD(n, d, m)                                                                               \
    {                                                                                              \
        n, d, m                                                                                    \
    }

static const ValidRow validations[] = {
    OK("empty", "{}"),
    OK("patroni_3_0_2_default",
       "{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10,\"maximum_lag_on_failover\":1048576,"
       "\"master_start_timeout\":300,\"synchronous_mode\":false,\"postgresql\":{\"use_pg_"
       "rewind\":true,\"use_slots\":true,\"parameters\":{\"max_connections\":100,\"wal_level\":"
       "\"replica\",\"hot_standby\":\"on\"}}}"),
    OK("every_known_key",
       "{\"ttl\":10,\"loop_wait\":1,\"retry_timeout\":2,\"maximum_lag_on_failover\":0,"
       "\"primary_start_timeout\":0,\"primary_stop_timeout\":5,\"synchronous_mode\":true,"
       "\"synchronous_mode_strict\":false,\"synchronous_node_count\":2,\"failsafe_mode\":false,"
       "\"check_timeline\":true,\"max_timelines_history\":0,\"maximum_lag_on_syncnode\":-1,"
       "\"pause\":false,\"standby_cluster\":{\"primary_slot_"
       "name\":\"s\",\"create_replica_methods\":[\"basebackup\"],"
       "\"recovery_min_apply_delay\":\"5min\"},\"slots\":{\"s1\":{\"type\":\"physical\"}},"
       "\"ignore_slots\":[{\"name\":\"x\"}],\"postgresql\":{\"use_pg_rewind\":false,\"use_slots\":"
       "false,\"pg_hba\":[\"local all all trust\"],\"pg_ident\":[],\"recovery_conf\":{},"
       "\"parameters\":{\"work_mem\":\"8MB\",\"max_connections\":100,\"hot_standby\":true,"
       "\"random_page_cost\":1.1,\"auto_explain.log_min_duration\":\"1s\",\"gone\":null}}}"),
    OK("strings_cast_like_patroni",
       "{\"ttl\":\"30\",\"loop_wait\":\"10\",\"retry_timeout\":\"5\",\"pause\":\"on\","
       "\"synchronous_mode\":\"off\",\"failsafe_mode\":0,\"check_timeline\":\"0\"}"),
    OK("integral_real", "{\"ttl\":30.0}"),
    OK("nulls_are_absent",
       "{\"ttl\":null,\"postgresql\":null,\"standby_cluster\":null,\"pause\":null,\"slots\":"
       "null}"),
    OK("unknown_keys_kept", "{\"foo\":{\"bar\":[1,null]},\"citus\":{\"group\":0}}"),
    OK("quorum", "{\"synchronous_mode\":\"quorum\"}"),
    /* Patroni: a null or empty value is a physical slot, and so is one
     * that names only a database or only a plugin */
    OK("slots_physical_forms",
       "{\"slots\":{\"a\":null,\"b\":{},\"c\":{\"type\":\"physical\"},\"d_1\":{\"database\":"
       "\"app\"},\"e\":{\"type\":null}}}"),
    /* permanent logical slots, typed and (Patroni: a database and a plugin)
     * untyped */
    OK("slots_logical",
       "{\"slots\":{\"cdc\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":"
       "\"pgoutput\"},\"audit\":{\"database\":\"app\",\"plugin\":\"test_decoding\"}}}"),
    OK("ignore_slots_every_field",
       "{\"ignore_slots\":[{\"name\":\"barman\",\"type\":\"physical\"},{\"database\":\"app\","
       "\"plugin\":\"pgoutput\",\"type\":\"logical\",\"name\":null},{}]}"),
    OK("ttl_exactly_enough", "{\"ttl\":5,\"loop_wait\":1,\"retry_timeout\":2}"),
    OK("master_alias", "{\"master_start_timeout\":120,\"master_stop_timeout\":0}"),
    OK("new_name_wins_over_alias", "{\"primary_start_timeout\":10,\"master_start_timeout\":\"x\"}"),

    BAD("not_an_object", "[]", "config: must be an object"),
    BAD("ttl_not_integer", "{\"ttl\":\"abc\"}", "ttl: must be an integer >= 2"),
    BAD("ttl_too_small", "{\"ttl\":1}", "ttl: must be an integer >= 2"),
    BAD("ttl_too_large", "{\"ttl\":86401}", "ttl: must be an integer <= 86400"),
    BAD("ttl_boolean", "{\"ttl\":true}", "ttl: must be an integer >= 2"),
    BAD("ttl_fraction", "{\"ttl\":30.5}", "ttl: must be an integer >= 2"),
    BAD("ttl_object", "{\"ttl\":{}}", "ttl: must be an integer >= 2"),
    BAD("loop_wait_negative", "{\"loop_wait\":-1}", "loop_wait: must be an integer >= 1"),
    BAD("retry_timeout_zero", "{\"retry_timeout\":0}", "retry_timeout: must be an integer >= 1"),
    BAD("max_lag_negative", "{\"maximum_lag_on_failover\":-5}",
        "maximum_lag_on_failover: must be an integer >= 0"),
    BAD("primary_start_timeout_negative", "{\"primary_start_timeout\":-1}",
        "primary_start_timeout: must be an integer >= 0"),
    BAD("master_stop_timeout_text", "{\"master_stop_timeout\":\"soon\"}",
        "master_stop_timeout: must be an integer >= 0"),
    BAD("sync_count_zero", "{\"synchronous_node_count\":0}",
        "synchronous_node_count: must be an integer >= 1"),
    BAD("first_problem_wins", "{\"loop_wait\":-1,\"ttl\":\"x\"}", "ttl: must be an integer >= 2"),
    BAD("ttl_below_loop_wait", "{\"ttl\":20,\"loop_wait\":10}",
        "ttl: must be at least loop_wait + 2 * retry_timeout (10 + 2 * 10 = 30), not 20"),
    BAD("loop_wait_beyond_default_ttl", "{\"loop_wait\":30}",
        "ttl: must be at least loop_wait + 2 * retry_timeout (30 + 2 * 10 = 50), not 30"),
    BAD("synchronous_mode_maybe", "{\"synchronous_mode\":\"maybe\"}",
        "synchronous_mode: must be a boolean"),
    BAD("strict_list", "{\"synchronous_mode_strict\":[true]}",
        "synchronous_mode_strict: must be a boolean"),
    BAD("failsafe_real", "{\"failsafe_mode\":1.5}", "failsafe_mode: must be a boolean"),
    BAD("failsafe_on", "{\"failsafe_mode\":\"on\"}",
        "failsafe_mode: failsafe mode is not supported by dbha yet: a primary that cannot renew "
        "its leader lease is stopped (fenced) whatever this says; leave it off"),
    BAD("pause_object", "{\"pause\":{}}", "pause: must be a boolean"),
    BAD("check_timeline_text", "{\"check_timeline\":\"sure\"}",
        "check_timeline: must be a boolean"),
    BAD("timelines_negative", "{\"max_timelines_history\":-1}",
        "max_timelines_history: must be an integer >= 0"),
    BAD("syncnode_lag", "{\"maximum_lag_on_syncnode\":-2}",
        "maximum_lag_on_syncnode: must be an integer >= -1"),
    BAD("postgresql_string", "{\"postgresql\":\"x\"}", "postgresql: must be an object"),
    BAD("use_pg_rewind_text", "{\"postgresql\":{\"use_pg_rewind\":\"sometimes\"}}",
        "postgresql.use_pg_rewind: must be a boolean"),
    BAD("use_slots_list", "{\"postgresql\":{\"use_slots\":[]}}",
        "postgresql.use_slots: must be a boolean"),
    BAD("parameters_list", "{\"postgresql\":{\"parameters\":[\"work_mem\"]}}",
        "postgresql.parameters: must be an object"),
    BAD("parameters_string", "{\"postgresql\":{\"parameters\":\"work_mem=8MB\"}}",
        "postgresql.parameters: must be an object"),
    BAD("parameter_object", "{\"postgresql\":{\"parameters\":{\"work_mem\":{\"a\":1}}}}",
        "postgresql.parameters.work_mem: must be a string, number or boolean"),
    BAD("parameter_array", "{\"postgresql\":{\"parameters\":{\"shared_preload_libraries\":[]}}}",
        "postgresql.parameters.shared_preload_libraries: must be a string, number or boolean"),
    /* values are quoted as PostgreSQL reads them (lib/pgconf): only a NUL
     * cannot be written */
    OK("parameter_newline_quote_backslash",
       "{\"postgresql\":{\"parameters\":{\"x.y\":\"it's\\nC:\\\\temp\\\\\"}}}"),
    BAD("parameter_nul", "{\"postgresql\":{\"parameters\":{\"work_mem\":\"8MB\\u0000x\"}}}",
        "postgresql.parameters.work_mem: must not contain a NUL character"),
    BAD("parameter_name_blank", "{\"postgresql\":{\"parameters\":{\"work mem\":1}}}",
        "postgresql.parameters: \"work mem\" " NAME_HINT),
    BAD("parameter_name_digit", "{\"postgresql\":{\"parameters\":{\"1x\":1}}}",
        "postgresql.parameters: \"1x\" " NAME_HINT),
    BAD("parameter_name_empty", "{\"postgresql\":{\"parameters\":{\"\":1}}}",
        "postgresql.parameters: \"\" " NAME_HINT),
    BAD("parameter_name_newline", "{\"postgresql\":{\"parameters\":{\"work_mem\\nhba_file\":1}}}",
        "postgresql.parameters: \"work_mem\\nhba_file\" " NAME_HINT),
    BAD("parameter_name_two_dots", "{\"postgresql\":{\"parameters\":{\"a.b.c\":1}}}",
        "postgresql.parameters: \"a.b.c\" " NAME_HINT),
    BAD("parameter_name_include", "{\"postgresql\":{\"parameters\":{\"include\":\"/etc/x\"}}}",
        "postgresql.parameters: \"include\" " NAME_HINT),
    BAD("pg_hba_numbers", "{\"postgresql\":{\"pg_hba\":[1]}}",
        "postgresql.pg_hba: must be a list of strings"),
    BAD("pg_ident_object", "{\"postgresql\":{\"pg_ident\":{}}}",
        "postgresql.pg_ident: must be a list of strings"),
    BAD("recovery_conf_list", "{\"postgresql\":{\"recovery_conf\":[]}}",
        "postgresql.recovery_conf: must be an object"),
    BAD("recovery_conf_typo", "{\"postgresql\":{\"recovery_conf\":{\"restore_comand\":\"cp\"}}}",
        "postgresql.recovery_conf.restore_comand: is not a recovery setting of PostgreSQL 13 or "
        "later (restore_command, archive_cleanup_command, recovery_end_command, "
        "recovery_min_apply_delay, promote_trigger_file)"),
    BAD("recovery_conf_target",
        "{\"postgresql\":{\"recovery_conf\":{\"recovery_target_time\":\"x\"}}}",
        "postgresql.recovery_conf.recovery_target_time: is not written on a replica: a replica "
        "follows its leader to the end of the WAL (Patroni drops recovery_target* for replicas "
        "too; a point-in-time target belongs to bootstrap.<method>.recovery_conf)"),
    BAD("recovery_conf_object_value",
        "{\"postgresql\":{\"recovery_conf\":{\"restore_command\":{}}}}",
        "postgresql.recovery_conf.restore_command: must be a string, number or boolean"),
    BAD("standby_cluster_list", "{\"standby_cluster\":[]}", "standby_cluster: must be an object"),
    BAD("standby_host_number", "{\"standby_cluster\":{\"host\":1}}",
        "standby_cluster.host: must be a string"),
    BAD("standby_port_range", "{\"standby_cluster\":{\"port\":70000}}",
        "standby_cluster.port: must be a port between 1 and 65535"),
    BAD("standby_port_text", "{\"standby_cluster\":{\"port\":\"x\"}}",
        "standby_cluster.port: must be a port between 1 and 65535"),
    BAD("standby_delay_list", "{\"standby_cluster\":{\"recovery_min_apply_delay\":[]}}",
        "standby_cluster.recovery_min_apply_delay: must be a string or an integer"),
    BAD("standby_methods", "{\"standby_cluster\":{\"create_replica_methods\":\"basebackup\"}}",
        "standby_cluster.create_replica_methods: must be a list of strings"),
    OK("standby_cluster_active",
       "{\"standby_cluster\":{\"host\":\"10.0.0.1\",\"port\":5432,"
       "\"primary_slot_name\":\"dr\",\"recovery_min_apply_delay\":\"5min\","
       "\"create_replica_methods\":[\"basebackup\"]}}"),
    OK("standby_cluster_restore_only", "{\"standby_cluster\":{\"restore_command\":\"cp x y\"}}"),
    OK("standby_cluster_port_text", "{\"standby_cluster\":{\"host\":\"h\",\"port\":\"5433\"}}"),
    BAD("slots_list", "{\"slots\":[\"a\"]}", "slots: must be an object of slot names"),
    BAD("slot_number", "{\"slots\":{\"s1\":1}}",
        "slots.s1: must be null or an object whose type is \"physical\" or \"logical\""),
    BAD("slot_type_other", "{\"slots\":{\"s1\":{\"type\":\"virtual\"}}}",
        "slots.s1: must be null or an object whose type is \"physical\" or \"logical\""),
    BAD("slot_name_upper", "{\"slots\":{\"Archiver\":{\"type\":\"physical\"}}}",
        "slots.Archiver: a slot name may only contain lower case letters, numbers and the "
        "underscore, at most 63 of them"),
    BAD("slot_name_long",
        "{\"slots\":{\"a234567890123456789012345678901234567890123456789012345678901234\":null}}",
        "slots.a234567890123456789012345678901234567890123456789012345678901234: a slot name "
        "may only contain lower case letters, numbers and the underscore, at most 63 of them"),
    BAD("slot_logical_without_plugin",
        "{\"slots\":{\"cdc\":{\"type\":\"logical\",\"database\":\"app\"}}}",
        "slots.cdc: a logical slot needs \"database\" and \"plugin\" (non-empty strings) to be "
        "created"),
    BAD("slot_logical_empty_database",
        "{\"slots\":{\"cdc\":{\"type\":\"logical\",\"database\":\"\",\"plugin\":\"x\"}}}",
        "slots.cdc: a logical slot needs \"database\" and \"plugin\" (non-empty strings) to be "
        "created"),
    /* the older name is read first, as in Patroni */
    BAD("permanent_slots_name", "{\"permanent_slots\":{\"A\":null},\"slots\":{\"a\":null}}",
        "slots.A: a slot name may only contain lower case letters, numbers and the underscore, "
        "at most 63 of them"),
    BAD("permanent_replication_slots_first",
        "{\"permanent_replication_slots\":{\"B\":null},\"permanent_slots\":{\"a\":null}}",
        "slots.B: a slot name may only contain lower case letters, numbers and the underscore, "
        "at most 63 of them"),
    /* Python's `or`: an empty object gives way to the next name */
    BAD("empty_older_name_gives_way", "{\"permanent_slots\":{},\"slots\":{\"C\":null}}",
        "slots.C: a slot name may only contain lower case letters, numbers and the underscore, "
        "at most 63 of them"),
    BAD("ignore_slots_text", "{\"ignore_slots\":\"x\"}", "ignore_slots: must be a list of objects"),
    BAD("ignore_slots_item", "{\"ignore_slots\":[1]}",
        "ignore_slots[0]: must be an object of name, type, database and plugin"),
    BAD("ignore_slots_misspelt", "{\"ignore_slots\":[{\"name\":\"a\"},{\"nmae\":\"barman\"}]}",
        "ignore_slots[1]: unknown field \"nmae\" (name, type, database or plugin)"),
    BAD("ignore_slots_number", "{\"ignore_slots\":[{\"name\":1}]}",
        "ignore_slots[0]: \"name\" must be a string"),
    BAD("ignore_slots_type", "{\"ignore_slots\":[{\"type\":\"both\"}]}",
        "ignore_slots[0]: \"type\" must be \"physical\" or \"logical\""),
};

static void test_validate_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(validations) / sizeof(validations[0]); i++) {
        const ValidRow *row = &validations[i];
        json_t *doc = load(row->doc);
        char err[ERR_MAX];
        memset(err, 'x', sizeof(err));
        int r = dynconfig_validate(doc, err, sizeof(err));
        if (!row->message) {
            if (r != 0 || err[0] != '\0') {
                fail_msg("%s: expected valid, got %d \"%s\"", row->name, r, err);
            }
        } else if (r != -EINVAL || strcmp(err, row->message) != 0) {
            fail_msg("%s: got %d \"%s\", expected -EINVAL \"%s\"", row->name, r, err, row->message);
        }
        json_decref(doc);
    }
}

static void test_validate_message_buffer(void **state)
{
    (void)state;
    json_t *doc = load("{\"ttl\":\"abc\"}");
    assert_int_equal(dynconfig_validate(doc, NULL, 0), -EINVAL);
    char small[5];
    assert_int_equal(dynconfig_validate(doc, small, sizeof(small)), -EINVAL);
    assert_string_equal(small, "ttl:");
    char none[1] = { 'x' };
    assert_int_equal(dynconfig_validate(doc, none, 0), -EINVAL);
    assert_int_equal(none[0], 'x');
    assert_int_equal(dynconfig_validate(NULL, NULL, 0), -EINVAL);
    json_decref(doc);
}

/* What PATCH /config does: merge, then validate the result. */
static void test_merge_then_validate(void **state)
{
    (void)state;
    json_t *base = load("{\"ttl\":30,\"loop_wait\":10,\"retry_timeout\":10}");
    json_t *ok = load("{\"ttl\":25,\"loop_wait\":5}");
    json_t *bad = load("{\"loop_wait\":15}");
    json_t *out = NULL;
    char err[ERR_MAX];
    assert_int_equal(dynconfig_merge(base, ok, &out), 0);
    assert_int_equal(dynconfig_validate(out, err, sizeof(err)), 0);
    json_decref(out);
    assert_int_equal(dynconfig_merge(base, bad, &out), 0);
    assert_int_equal(dynconfig_validate(out, err, sizeof(err)), -EINVAL);
    assert_string_equal(
        err, "ttl: must be at least loop_wait + 2 * retry_timeout (15 + 2 * 10 = 35), not 30");
    json_decref(out);
    json_decref(base);
    json_decref(ok);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_table),
        cmocka_unit_test(test_merge_result_is_a_copy),
        cmocka_unit_test(test_merge_depth_limit),
        cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_message_buffer),
        cmocka_unit_test(test_merge_then_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
