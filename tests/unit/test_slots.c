/* Unit tests for agent/slots.c: which permanent physical slots a member
 * keeps and which slots it never drops, from the `slots` and `ignore_slots`
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
    bool leader;
    const char *permanent; /* the names, comma-separated, in order */
    const char *ignored;
    bool ignore_all;
    const char *problem; /* a substring of it, or NULL for none */
} SlotsRow;

static const SlotsRow rows[] = {
    { "nothing", NULL, NULL, "n1", true, "", "", false, NULL },
    { "physical_forms_on_the_leader",
      "{\"a\":null,\"b\":{},\"c\":{\"type\":\"physical\"},\"d\":{\"database\":\"app\"}}", NULL,
      "n1", true, "a,b,c,d", "", false, NULL },
    { "none_on_a_replica", "{\"a\":null,\"b\":{\"type\":\"physical\"}}", NULL, "n1", false, "", "",
      false, NULL },
    { "not_on_itself", "{\"n1\":null,\"n2\":null}", NULL, "n1", true, "n2", "", false, NULL },
    { "logical_skipped_and_named",
      "{\"cdc\":{\"type\":\"logical\",\"database\":\"app\",\"plugin\":\"pgoutput\"},\"arch\":null}",
      NULL, "n1", true, "arch", "", false, "\"cdc\" is a logical slot" },
    { "logical_untyped_skipped", "{\"cdc\":{\"database\":\"app\",\"plugin\":\"x\"}}", NULL, "n1",
      true, "", "", false, "\"cdc\" is a logical slot" },
    { "bad_name_skipped", "{\"Arch\":null,\"ok\":null}", NULL, "n1", true, "ok", "", false,
      "\"Arch\" is not a valid slot name" },
    { "bad_value_skipped", "{\"a\":7,\"b\":{\"type\":\"other\"}}", NULL, "n1", true, "", "", false,
      "\"a\" has a value" },
    { "ignore_by_name", NULL, "[{\"name\":\"barman\"},{\"name\":\"wal_1\",\"type\":\"physical\"}]",
      "n1", true, "", "barman,wal_1", false, NULL },
    { "ignore_on_a_replica_too", NULL, "[{\"name\":\"barman\"}]", "n1", false, "", "barman", false,
      NULL },
    /* a matcher that names a database, a plugin or type logical never
     * matches a physical slot */
    { "logical_matchers_protect_no_physical_slot", NULL,
      "[{\"name\":\"a\",\"type\":\"logical\"},{\"name\":\"b\",\"database\":\"app\"},"
      "{\"plugin\":\"pgoutput\"}]",
      "n1", true, "", "", false, NULL },
    { "empty_fields_match_anything", NULL, "[{\"name\":\"c\",\"database\":\"\",\"plugin\":null}]",
      "n1", true, "", "c", false, NULL },
    { "matcher_without_name_keeps_all", NULL, "[{\"type\":\"physical\"}]", "n1", true, "", "", true,
      NULL },
    { "empty_matcher_keeps_all", NULL, "[{}]", "n1", true, "", "", true, NULL },
    { "name_no_slot_can_have", NULL, "[{\"name\":\"Barman-1\"}]", "n1", true, "", "", false, NULL },
    /* what it protects is unknown: nothing is dropped, and it is said */
    { "malformed_ignore_keeps_all", NULL, "[{\"nmae\":\"barman\"}]", "n1", true, "", "", true,
      "ignore_slots\" is malformed" },
    { "malformed_ignore_not_a_list", NULL, "{\"name\":\"barman\"}", "n1", true, "", "", true,
      "ignore_slots\" is malformed" },
    { "slots_not_an_object", "[\"a\"]", NULL, "n1", true, "", "", false,
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
        assert_int_equal(slots_wanted(&dcs, row->own, row->leader, &w), 0);
        char perm[256], ign[256];
        join(w.permanent, w.n_permanent, perm, sizeof(perm));
        join(w.ignored, w.n_ignored, ign, sizeof(ign));
        if (strcmp(perm, row->permanent) != 0 || strcmp(ign, row->ignored) != 0 ||
            w.ignore_all != row->ignore_all ||
            (row->problem ? !w.problem || !strstr(w.problem, row->problem) : w.problem != NULL)) {
            fail_msg("%s: permanent \"%s\" ignored \"%s\" ignore_all %d problem \"%s\"", row->name,
                     perm, ign, w.ignore_all, w.problem ? w.problem : "(none)");
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
        assert_int_equal(slots_wanted(&dcs, "me", true, &w), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_names_reaching_sql_are_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
