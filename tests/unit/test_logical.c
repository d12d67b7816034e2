/* Unit tests for agent/logical.c: what a primary and a replica do with the
 * permanent logical slots (logical_plan), the published positions, and the
 * copied state file's installation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "logical.h"

static SlotsLogical want_items[] = {
    { "cdc", "app", "pgoutput" },
    { "audit", "app", "test_decoding" },
};
static const SlotsWanted want = { .logical = want_items, .n_logical = 2 };

static LogicalSlot slot(const char *name, const char *db, const char *plugin, bool active,
                        bool has_confirmed, uint64_t confirmed)
{
    LogicalSlot s = { .active = active,
                      .has_confirmed = has_confirmed,
                      .confirmed_flush = confirmed };
    (void)snprintf(s.name, sizeof(s.name), "%s", name);
    (void)snprintf(s.database, sizeof(s.database), "%s", db);
    (void)snprintf(s.plugin, sizeof(s.plugin), "%s", plugin);
    return s;
}

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) {
        fail_msg("bad test JSON %s: %s", text, e.text);
    }
    return v;
}

/* "STEP:name[@lsn]" for each action, comma-separated */
static void describe(const LogicalPlan *p, char *buf, size_t size)
{
    static const char *const steps[] = { "create", "recreate", "advance", "copy", "drop" };
    buf[0] = '\0';
    for (size_t i = 0; i < p->n; i++) {
        size_t used = strlen(buf);
        const LogicalAction *a = &p->actions[i];
        if (a->step == LOGICAL_ADVANCE) {
            (void)snprintf(buf + used, size - used, "%s%s:%s@%llu", i ? "," : "", steps[a->step],
                           a->name, (unsigned long long)a->lsn);
        } else {
            (void)snprintf(buf + used, size - used, "%s%s:%s", i ? "," : "", steps[a->step],
                           a->name);
        }
    }
}

static bool ignore_keep(const char *name, const char *database, const char *plugin, void *userdata)
{
    (void)database;
    (void)plugin;
    return strcmp(name, (const char *)userdata) == 0;
}

static void test_primary(void **state)
{
    (void)state;
    char d[512];
    LogicalPlan p;
    /* none there yet: both created, nothing published */
    assert_int_equal(logical_plan(&want, true, NULL, 0, NULL, NULL, NULL, &p), 0);
    describe(&p, d, sizeof(d));
    assert_string_equal(d, "create:cdc,create:audit");
    assert_int_equal(json_object_size(p.positions), 0);
    logical_plan_done(&p);

    /* cdc there, audit with another plugin (inactive: recreated), an
     * operator's slot kept, the slot we published before and no longer
     * want dropped, one ignore_slots protects kept */
    LogicalSlot local[] = {
        slot("cdc", "app", "pgoutput", true, true, 5000),
        slot("audit", "app", "wal2json", false, true, 10),
        slot("debezium", "app", "pgoutput", false, true, 20),
        slot("old", "app", "pgoutput", false, true, 30),
        slot("kept", "app", "pgoutput", false, true, 40),
    };
    json_t *ours = load("{\"cdc\":4000,\"old\":30,\"kept\":40}");
    assert_int_equal(logical_plan(&want, true, local, 5, ours, ignore_keep, "kept", &p), 0);
    describe(&p, d, sizeof(d));
    assert_string_equal(d, "recreate:audit,drop:old");
    char *pos = json_dumps(p.positions, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(pos, "{\"cdc\":5000}");
    free(pos);
    assert_null(p.problem);
    logical_plan_done(&p);

    /* a mismatched slot in use is left alone and said; an active unwanted
     * one is not dropped */
    local[1].active = true;
    local[3].active = true;
    assert_int_equal(logical_plan(&want, true, local, 5, ours, NULL, NULL, &p), 0);
    describe(&p, d, sizeof(d));
    assert_string_equal(d, "drop:kept");
    assert_non_null(p.problem);
    assert_non_null(strstr(p.problem, "\"audit\" is in use with database \"app\" and plugin "
                                      "\"wal2json\""));
    logical_plan_done(&p);
    json_decref(ours);
}

static void test_replica(void **state)
{
    (void)state;
    char d[512];
    LogicalPlan p;
    json_t *pub = load("{\"cdc\":9000,\"audit\":\"7000\"}");
    /* none here: copied, both published */
    assert_int_equal(logical_plan(&want, false, NULL, 0, pub, NULL, NULL, &p), 0);
    describe(&p, d, sizeof(d));
    assert_string_equal(d, "copy:cdc,copy:audit");
    assert_int_equal(json_object_size(p.positions), 0); /* a replica publishes nothing */
    logical_plan_done(&p);

    /* not published yet: nothing to copy from */
    assert_int_equal(logical_plan(&want, false, NULL, 0, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.n, 0);
    logical_plan_done(&p);

    /* behind: advanced (a string position too, as Patroni's int() reads
     * it); at or past the published position: nothing; mismatched:
     * dropped (copied again next time); unwanted copies dropped unless
     * ignored */
    LogicalSlot local[] = {
        slot("cdc", "app", "pgoutput", false, true, 8000),
        slot("audit", "app", "test_decoding", false, true, 7000),
        slot("stale", "app", "pgoutput", false, true, 1),
        slot("kept", "app", "pgoutput", false, true, 1),
    };
    assert_int_equal(logical_plan(&want, false, local, 4, pub, ignore_keep, "kept", &p), 0);
    describe(&p, d, sizeof(d));
    assert_string_equal(d, "advance:cdc@9000,drop:stale");
    logical_plan_done(&p);
    (void)snprintf(local[1].plugin, sizeof(local[1].plugin), "pgoutput");
    assert_int_equal(logical_plan(&want, false, local, 2, pub, NULL, NULL, &p), 0);
    describe(&p, d, sizeof(d));
    assert_string_equal(d, "advance:cdc@9000,drop:audit");
    logical_plan_done(&p);

    /* far behind: one step at a time */
    local[0].confirmed_flush = 100;
    json_t *far = load("{\"cdc\":1000000000}");
    assert_int_equal(logical_plan(&want, false, local, 1, far, NULL, NULL, &p), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.actions[0].lsn, 100 + LOGICAL_ADVANCE_STEP);
    logical_plan_done(&p);
    json_decref(far);

    /* a bad published position is said and not acted on */
    json_t *bad = load("{\"cdc\":\"0/16B2DC0\",\"audit\":-1}");
    assert_int_equal(logical_plan(&want, false, NULL, 0, bad, NULL, NULL, &p), 0);
    assert_int_equal(p.n, 0);
    assert_non_null(p.problem);
    assert_non_null(strstr(p.problem, "position of \"cdc\" is not an LSN"));
    logical_plan_done(&p);
    json_decref(bad);
    json_decref(pub);
}

static void test_full_plan(void **state)
{
    (void)state;
    static SlotsLogical many[LOGICAL_SLOTS_MAX + 5];
    static char names[LOGICAL_SLOTS_MAX + 5][16];
    for (size_t i = 0; i < LOGICAL_SLOTS_MAX + 5; i++) {
        (void)snprintf(names[i], sizeof(names[i]), "s%zu", i);
        many[i] = (SlotsLogical){ names[i], "app", "pgoutput" };
    }
    SlotsWanted w = { .logical = many, .n_logical = LOGICAL_SLOTS_MAX + 5 };
    LogicalPlan p;
    assert_int_equal(logical_plan(&w, true, NULL, 0, NULL, NULL, NULL, &p), -E2BIG);
    assert_int_equal(p.n, LOGICAL_SLOTS_MAX);
    logical_plan_done(&p);
}

static void test_positions(void **state)
{
    (void)state;
    uint64_t v = 0;
    json_t *ok[] = { json_integer(0), json_integer(123), json_string("456") };
    uint64_t want_v[] = { 0, 123, 456 };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(logical_parse_position(ok[i], &v), 0);
        assert_int_equal(v, want_v[i]);
        json_decref(ok[i]);
    }
    json_t *bad[] = { json_integer(-1),
                      json_string(""),
                      json_string("1/2"),
                      json_real(1.5),
                      json_string("99999999999999999999"),
                      json_null() };
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(logical_parse_position(bad[i], &v), -EINVAL);
        json_decref(bad[i]);
    }
}

static void test_install(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-logical-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/pg_replslot", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    unsigned char bytes[] = { 1, 2, 3, 0, 255 };
    LogicalCopy c = { .state = bytes, .size = sizeof(bytes) };
    (void)snprintf(c.name, sizeof(c.name), "cdc");
    /* over an old copy and a half-written one */
    (void)snprintf(path, sizeof(path), "%s/pg_replslot/cdc", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    (void)snprintf(path, sizeof(path), "%s/pg_replslot/cdc/state", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old", f);
    fclose(f);
    (void)snprintf(path, sizeof(path), "%s/pg_replslot/cdc.tmp", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(logical_install(dir, &c), 0);
    (void)snprintf(path, sizeof(path), "%s/pg_replslot/cdc/state", dir);
    f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char got[16];
    assert_int_equal(fread(got, 1, sizeof(got), f), sizeof(bytes));
    fclose(f);
    assert_memory_equal(got, bytes, sizeof(bytes));
    struct stat st;
    (void)snprintf(path, sizeof(path), "%s/pg_replslot/cdc.tmp", dir);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(logical_uninstall(dir, "cdc"), 0);
    (void)snprintf(path, sizeof(path), "%s/pg_replslot/cdc", dir);
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(logical_uninstall(dir, "cdc"), 0); /* gone already: fine */
    /* no pg_replslot: an error, nothing written */
    (void)snprintf(path, sizeof(path), "%s/pg_replslot", dir);
    assert_int_equal(rmdir(path), 0);
    assert_true(logical_install(dir, &c) < 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_readiness(void **state)
{
    (void)state;
    LogicalState s = { 0 };
    assert_int_equal(logical_unready_add(&s, "cdc"), 0);
    assert_int_equal(logical_unready_add(&s, "audit"), 0);
    assert_int_equal(logical_unready_add(&s, "gone"), 0);
    assert_int_equal(logical_unready_add(&s, "cdc"), 0); /* once */
    assert_int_equal(s.n_unready, 3);
    LogicalSlot local[] = { slot("cdc", "app", "pgoutput", false, true, 10),
                            slot("audit", "app", "test_decoding", false, true, 10) };
    local[0].has_catalog_xmin = local[1].has_catalog_xmin = true;
    local[0].catalog_xmin = 750;
    local[1].catalog_xmin = 700;
    char ready[LOGICAL_SLOTS_MAX][PGPROBE_NAME_MAX];

    /* no catalog_xmin on our physical slot yet: nothing remembered, only
     * the vanished one leaves */
    LogicalXmins x = { .physical_exists = true, .n = 2 };
    (void)snprintf(x.names[0], sizeof(x.names[0]), "cdc");
    (void)snprintf(x.names[1], sizeof(x.names[1]), "audit");
    x.has_xmin[0] = x.has_xmin[1] = true;
    x.xmins[0] = 700;
    x.xmins[1] = 690;
    assert_int_equal(logical_readiness(&s, &x, local, 2, ready, LOGICAL_SLOTS_MAX), 0);
    assert_int_equal(s.n_unready, 2);
    assert_false(s.unready[0].has_xmin);

    /* the physical slot has one (720): the primary's values are remembered;
     * cdc: 700 <= 720 <= 750, safe; audit: 720 > its own 700, not yet */
    x.has_physical = true;
    x.physical_xmin = 720;
    assert_int_equal(logical_readiness(&s, &x, local, 2, ready, LOGICAL_SLOTS_MAX), 1);
    assert_string_equal(ready[0], "cdc");
    assert_int_equal(s.n_unready, 1);
    assert_string_equal(s.unready[0].name, "audit");
    assert_int_equal(s.unready[0].xmin, 690);

    /* audit's own catalog_xmin moves past it (advanced): safe; the
     * remembered 690 stays even if the primary's moved on */
    local[1].catalog_xmin = 730;
    x.xmins[1] = 725;
    assert_int_equal(logical_readiness(&s, &x, local, 2, ready, LOGICAL_SLOTS_MAX), 1);
    assert_string_equal(ready[0], "audit");
    assert_int_equal(s.n_unready, 0);

    /* a remembered value past the physical slot's: not safe (the primary
     * may have removed rows before our feedback arrived) */
    assert_int_equal(logical_unready_add(&s, "cdc"), 0);
    x.xmins[0] = 740;
    x.physical_xmin = 735;
    local[0].catalog_xmin = 760;
    assert_int_equal(logical_readiness(&s, &x, local, 2, ready, LOGICAL_SLOTS_MAX), 0);
    assert_int_equal(s.n_unready, 1);
    x.physical_xmin = 745;
    assert_int_equal(logical_readiness(&s, &x, local, 2, ready, LOGICAL_SLOTS_MAX), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_primary),   cmocka_unit_test(test_replica),
        cmocka_unit_test(test_full_plan), cmocka_unit_test(test_positions),
        cmocka_unit_test(test_install),   cmocka_unit_test(test_readiness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
