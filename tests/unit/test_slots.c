/* Unit tests for agent/slots.c: which permanent physical and logical slots
 * a member keeps and which slots it never drops, from the `slots` and `ignore_slots`
 * of the settings in force (Patroni 3.0.2's get_replication_slots() and
 * ignore_replication_slot()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "slots.h"

typedef struct SlotsRow {
    const char *name;
    const char *slots;  /* JSON or NULL */
    const char *ignore; /* JSON or NULL */
    const char *own;    /* this member's slot */
    SlotsRole role;
    const char *permanent; /* the names, comma-separated, in order */
    const char *logical;   /* name:database:plugin, comma-separated, in order */
    const char *ignored;
    bool ignore_all;
    const char *problem; /* a substring of it, or NULL for none */
} SlotsRow;

static const SlotsRow rows[] = {
    { "nothing", NULL, NULL, "n1", SLOTS_PRIMARY, "", "", "", false, NULL },
    { "physical_forms_on_the_leader",
      "{\"a\":null,\"b\":{},\"c\":{\"type\":\"physical\"},\"d\":{\"database\":\"app\"}}", NULL,
      "n1", SLOTS_PRIMARY, "a,b,c,d", "", "", false, NULL },
    { "physical_on_a_standby_leader", "{\"a\":null}", NULL, "n1", SLOTS_STANDBY_LEADER, "a", "", "",
      false, NULL },
    { "none_on_a_replica", "{\"a\":null,\"b\":{\"type\":\"physical\"}}", NULL, "n1", SLOTS_REPLICA,
      "", "", "", false, NULL },
    { "not_on_itself", "{\"n1\":null,\"n2\":null}", NULL, "n1", SLOTS_PRIMARY, "n2", "", "", false,
      NULL },
    /* Patroni 3.0.2: a primary keeps both kinds, a standby leader the
     * physical ones, a replica the logical ones, a nofailover replica none */
    { "logical_on_the_primary",
      "{\"cdc\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":\"pgoutput\"},\"arch\":null}",
      NULL, "n1", SLOTS_PRIMARY, "arch", "cdc:app:pgoutput", "", false, NULL },
    { "logical_on_a_replica",
      "{\"cdc\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":\"pgoutput\"},\"arch\":null}",
      NULL, "n1", SLOTS_REPLICA, "", "cdc:app:pgoutput", "", false, NULL },
    { "no_logical_on_a_standby_leader",
      "{\"cdc\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":\"pgoutput\"},\"arch\":null}",
      NULL, "n1", SLOTS_STANDBY_LEADER, "arch", "", "", false, NULL },
    { "none_on_a_nofailover_replica",
      "{\"cdc\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":\"pgoutput\"},\"arch\":null}",
      NULL, "n1", SLOTS_NONE, "", "", "", false, NULL },
    { "logical_untyped", "{\"cdc\":{\"database\":\"app\",\"plugin\":\"x\"}}", NULL, "n1",
      SLOTS_PRIMARY, "", "cdc:app:x", "", false, NULL },
    { "logical_without_plugin_skipped", "{\"cdc\":{\"type\":\"logical\",\"database\":\"app\"}}",
      NULL, "n1", SLOTS_PRIMARY, "", "", "", false, "\"cdc\" is a logical slot without" },
    { "logical_named_as_the_member", "{\"n1\":{\"database\":\"app\",\"plugin\":\"x\"}}", NULL, "n1",
      SLOTS_REPLICA, "", "", "", false, "\"n1\" is a logical slot named as a member" },
    { "bad_name_skipped", "{\"Arch\":null,\"ok\":null}", NULL, "n1", SLOTS_PRIMARY, "ok", "", "",
      false, "\"Arch\" is not a valid slot name" },
    { "bad_value_skipped", "{\"a\":7,\"b\":{\"type\":\"other\"}}", NULL, "n1", SLOTS_PRIMARY, "",
      "", "", false, "\"a\" has a value" },
    { "ignore_by_name", NULL, "[{\"name\":\"barman\"},{\"name\":\"wal_1\",\"type\":\"physical\"}]",
      "n1", SLOTS_PRIMARY, "", "", "barman,wal_1", false, NULL },
    { "ignore_on_a_replica_too", NULL, "[{\"name\":\"barman\"}]", "n1", SLOTS_REPLICA, "", "",
      "barman", false, NULL },
    /* a matcher that names a database, a plugin or type logical never
     * matches a physical slot */
    { "logical_matchers_protect_no_physical_slot", NULL,
      "[{\"name\":\"a\",\"type\":\"logical\"},{\"name\":\"b\",\"database\":\"app\"},"
      "{\"plugin\":\"pgoutput\"}]",
      "n1", SLOTS_PRIMARY, "", "", "", false, NULL },
    { "empty_fields_match_anything", NULL, "[{\"name\":\"c\",\"database\":\"\",\"plugin\":null}]",
      "n1", SLOTS_PRIMARY, "", "", "c", false, NULL },
    { "matcher_without_name_keeps_all", NULL, "[{\"type\":\"physical\"}]", "n1", SLOTS_PRIMARY, "",
      "", "", true, NULL },
    { "empty_matcher_keeps_all", NULL, "[{}]", "n1", SLOTS_PRIMARY, "", "", "", true, NULL },
    { "name_no_slot_can_have", NULL, "[{\"name\":\"Barman-1\"}]", "n1", SLOTS_PRIMARY, "", "", "",
      false, NULL },
    /* what it protects is unknown: nothing is dropped, and it is said */
    { "malformed_ignore_keeps_all", NULL, "[{\"nmae\":\"barman\"}]", "n1", SLOTS_PRIMARY, "", "",
      "", true, "ignore_slots\" is malformed" },
    { "malformed_ignore_not_a_list", NULL, "{\"name\":\"barman\"}", "n1", SLOTS_PRIMARY, "", "", "",
      true, "ignore_slots\" is malformed" },
    { "slots_not_an_object", "[\"a\"]", NULL, "n1", SLOTS_PRIMARY, "", "", "", false,
      "\"slots\" is not an object" },
};

static json_t *load(const char *text)
{
    if (!text) {
        return NULL;
    }
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) {
        fail_msg("bad test JSON %s: %s", text, e.text);
    }
    return v;
}

static void join(char *const *v, size_t n, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(buf);
        (void)snprintf(buf + used, size - used, "%s%s", i ? "," : "", v[i]);
    }
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const SlotsRow *row = &rows[i];
        ConfigDcs dcs = { .slots = load(row->slots), .ignore_slots = load(row->ignore) };
        SlotsWanted w;
        assert_int_equal(slots_wanted(&dcs, row->own, row->role, &w), 0);
        char perm[256], ign[256], logical[256] = "";
        join(w.permanent, w.n_permanent, perm, sizeof(perm));
        join(w.ignored, w.n_ignored, ign, sizeof(ign));
        for (size_t j = 0; j < w.n_logical; j++) {
            size_t used = strlen(logical);
            (void)snprintf(logical + used, sizeof(logical) - used, "%s%s:%s:%s", j ? "," : "",
                           w.logical[j].name, w.logical[j].database, w.logical[j].plugin);
        }
        if (strcmp(perm, row->permanent) != 0 || strcmp(ign, row->ignored) != 0 ||
            strcmp(logical, row->logical) != 0 || w.ignore_all != row->ignore_all ||
            (row->problem ? !w.problem || !strstr(w.problem, row->problem) : w.problem != NULL)) {
            fail_msg("%s: permanent \"%s\" logical \"%s\" ignored \"%s\" ignore_all %d problem "
                     "\"%s\"",
                     row->name, perm, logical, ign, w.ignore_all, w.problem ? w.problem : "(none)");
        }
        slots_wanted_done(&w);
        json_decref(dcs.slots);
        json_decref(dcs.ignore_slots);
    }
}

/* Whatever the two documents hold, a name that reaches the SQL is one
 * PostgreSQL could give a slot ([a-z0-9_], at most 63): slots_wanted()'s
 * names are written into statements unquoted. */
static void test_names_reaching_sql_are_safe(void **state)
{
    (void)state;
    static const char *const names[] = { "a",
                                         "x'; DROP TABLE t; --",
                                         "A",
                                         "",
                                         "a b",
                                         "ok_1",
                                         "é",
                                         "a234567890123456789012345678901234567890123456789"
                                         "01234567890123" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *slots = json_pack("{s:n}", names[i]);
        json_t *ignore = json_pack("[{s:s}]", "name", names[i]);
        assert_non_null(slots);
        assert_non_null(ignore);
        ConfigDcs dcs = { .slots = slots, .ignore_slots = ignore };
        SlotsWanted w;
        assert_int_equal(slots_wanted(&dcs, "me", SLOTS_PRIMARY, &w), 0);
        for (size_t j = 0; j < w.n_permanent + w.n_ignored; j++) {
            const char *s = j < w.n_permanent ? w.permanent[j] : w.ignored[j - w.n_permanent];
            size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_");
            assert_true(n > 0 && n <= 63 && s[n] == '\0');
        }
        slots_wanted_done(&w);
        json_decref(slots);
        json_decref(ignore);
    }
}

/* ignore_slots as Patroni matches it, for logical and physical slots */
static void test_ignored(void **state)
{
    (void)state;
    ConfigDcs dcs = { .ignore_slots = load("[{\"name\":\"cdc\",\"type\":\"logical\"},"
                                           "{\"database\":\"app\",\"plugin\":\"wal2json\"}]") };
    assert_true(slots_ignored(&dcs, "cdc", "logical", "x", "y"));
    assert_false(slots_ignored(&dcs, "cdc", "physical", NULL, NULL));
    assert_true(slots_ignored(&dcs, "other", "logical", "app", "wal2json"));
    assert_false(slots_ignored(&dcs, "other", "logical", "app", "pgoutput"));
    assert_false(slots_ignored(&dcs, "other", "physical", NULL, NULL));
    json_decref(dcs.ignore_slots);
    dcs.ignore_slots = load("[{\"nmae\":\"x\"}]"); /* malformed: protects all */
    assert_true(slots_ignored(&dcs, "any", "logical", "a", "b"));
    json_decref(dcs.ignore_slots);
    dcs.ignore_slots = NULL;
    assert_false(slots_ignored(&dcs, "any", "logical", "a", "b"));
    dcs.slots = load("{\"a\":null,\"b\":{\"type\":\"logical\"}}");
    assert_false(slots_any_logical(&dcs));
    json_decref(dcs.slots);
    dcs.slots = load("{\"a\":null,\"b\":{\"database\":\"d\",\"plugin\":\"p\"}}");
    assert_true(slots_any_logical(&dcs));
    json_decref(dcs.slots);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_names_reaching_sql_are_safe),
        cmocka_unit_test(test_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
