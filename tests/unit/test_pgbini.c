/* Unit tests for lib/pgbini.c: reading pgbouncer.ini, rewriting entries of
 * its [databases] section byte for byte elsewhere (table-driven), and
 * choosing the primary and a healthy replica from a topology document. */
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

#include "pgbini.h"

#define TARGETS_MAX 2

static const PgbIniTarget WRITE = { "app", "10.0.0.1", 5432, "postgres" };
static const PgbIniTarget READ = { "app_ro", "10.0.0.2", 5433, "postgres" };

typedef struct RewriteCase {
    const char *name;
    const char *in;
    PgbIniTarget targets[TARGETS_MAX];
    size_t n_targets;
    const char *want;  /* NULL: an error is expected */
    bool changed;      /* expected *ret_changed */
    unsigned err_line; /* with want NULL */
} RewriteCase;

static const RewriteCase rewrite_cases[] = {
    {
        .name = "replace host and port in place, keep other params and spacing",
        .in = "; operator comment\n"
              "[pgbouncer]\n"
              "listen_port = 6432   \n"
              "\n"
              "[databases]\n"
              "# the write database\n"
              "app  =  host=old port=1 dbname=postgres   user=app  pool_size=5\n"
              "other = host=x dbname=y\n"
              "\n"
              "[users]\n"
              "app = pool_mode=session\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "; operator comment\n"
                "[pgbouncer]\n"
                "listen_port = 6432   \n"
                "\n"
                "[databases]\n"
                "# the write database\n"
                "app  =  host=10.0.0.1 port=5432 dbname=postgres   user=app  pool_size=5\n"
                "other = host=x dbname=y\n"
                "\n"
                "[users]\n"
                "app = pool_mode=session\n",
        .changed = true,
    },
    {
        .name = "nothing to change: same bytes, not changed",
        .in = "[databases]\n"
              "app = host='10.0.0.1' port=5432 dbname=postgres\n"
              "app_ro = dbname=postgres port=5433 host=10.0.0.2\n",
        .targets = { WRITE, READ },
        .n_targets = 2,
        .want = "[databases]\n"
                "app = host='10.0.0.1' port=5432 dbname=postgres\n"
                "app_ro = dbname=postgres port=5433 host=10.0.0.2\n",
        .changed = false,
    },
    {
        .name = "missing parameters are appended",
        .in = "[databases]\napp = user=app\napp_ro =\n",
        .targets = { WRITE, READ },
        .n_targets = 2,
        .want = "[databases]\n"
                "app = user=app host=10.0.0.1 port=5432 dbname=postgres\n"
                "app_ro = host=10.0.0.2 port=5433 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "empty value right after '='",
        .in = "[databases]\napp_ro=\n",
        .targets = { READ },
        .n_targets = 1,
        .want = "[databases]\napp_ro= host=10.0.0.2 port=5433 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "missing entries go after the section's last entry, before its trailing comments",
        .in = "[databases]\n"
              "x = host=h\n"
              "\n"
              "; about pgbouncer\n"
              "[pgbouncer]\n"
              "pool_mode = transaction\n",
        .targets = { WRITE, READ },
        .n_targets = 2,
        .want = "[databases]\n"
                "x = host=h\n"
                "app = host=10.0.0.1 port=5432 dbname=postgres\n"
                "app_ro = host=10.0.0.2 port=5433 dbname=postgres\n"
                "\n"
                "; about pgbouncer\n"
                "[pgbouncer]\n"
                "pool_mode = transaction\n",
        .changed = true,
    },
    {
        .name = "empty [databases] section at the end without a final newline",
        .in = "[pgbouncer]\nlisten_port = 1\n[databases]",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[pgbouncer]\nlisten_port = 1\n[databases]\n"
                "app = host=10.0.0.1 port=5432 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "no [databases]: added before the first section",
        .in = ";; header\n[pgbouncer]\nlisten_port = 1\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = ";; header\n[databases]\napp = host=10.0.0.1 port=5432 dbname=postgres\n\n"
                "[pgbouncer]\nlisten_port = 1\n",
        .changed = true,
    },
    {
        .name = "empty file",
        .in = "",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\napp = host=10.0.0.1 port=5432 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "CRLF file keeps CRLF",
        .in = "[databases]\r\napp = host=a port=1 dbname=postgres  \r\n[pgbouncer]\r\n",
        .targets = { WRITE, READ },
        .n_targets = 2,
        .want = "[databases]\r\napp = host=10.0.0.1 port=5432 dbname=postgres  \r\n"
                "app_ro = host=10.0.0.2 port=5433 dbname=postgres\r\n[pgbouncer]\r\n",
        .changed = true,
    },
    {
        .name = "CRLF file ending in [databases]\\r: the line end is completed",
        .in = "[pgbouncer]\r\nlisten_port = 1\r\n[databases]\r",
        .targets = { WRITE, READ },
        .n_targets = 2,
        .want = "[pgbouncer]\r\nlisten_port = 1\r\n[databases]\r\n"
                "app = host=10.0.0.1 port=5432 dbname=postgres\r\n"
                "app_ro = host=10.0.0.2 port=5433 dbname=postgres\r\n",
        .changed = true,
    },
    {
        .name = "a file of one line, [databases]\\r",
        .in = "[databases]\r",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\r\napp = host=10.0.0.1 port=5432 dbname=postgres\r\n",
        .changed = true,
    },
    {
        .name = "CRLF file ending in [databases]\\r\\n",
        .in = "[pgbouncer]\r\nlisten_port = 1\r\n[databases]\r\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[pgbouncer]\r\nlisten_port = 1\r\n[databases]\r\n"
                "app = host=10.0.0.1 port=5432 dbname=postgres\r\n",
        .changed = true,
    },
    {
        .name = "CRLF file whose last entry has no line end",
        .in = "[databases]\r\nx = host=h",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\r\nx = host=h\r\napp = host=10.0.0.1 port=5432 dbname=postgres\r\n",
        .changed = true,
    },
    {
        .name = "CRLF file without [databases] and without a final line end",
        .in = "; only a comment\r",
        .targets = { WRITE },
        .n_targets = 1,
        .want =
            "; only a comment\r\n[databases]\r\napp = host=10.0.0.1 port=5432 dbname=postgres\r\n",
        .changed = true,
    },
    {
        /* pgbouncer (and libpq) end a quoted value at its closing quote:
         * host='' and port=1 are two parameters; the new host used to be
         * glued to the next one ("host=10.0.0.1port=1", found by
         * fuzz/fuzz_pgbini.c: the second rewrite then changed the file) */
        .name = "a quoted value right before the next parameter: the new one stays apart",
        .in = "[databases]\napp = host=''user=u dbname='old'port=5432\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\napp = host=10.0.0.1 user=u dbname=postgres port=5432\n",
        .changed = true,
    },
    {
        .name = "quoted values of other parameters are kept, ours quoted when needed",
        .in = "[databases]\napp = password='it''s secret' host=a\n",
        .targets = { { "app", "my host", 5432, "o'db" } },
        .n_targets = 1,
        .want = "[databases]\napp = password='it''s secret' host='my host' port=5432 "
                "dbname='o''db'\n",
        .changed = true,
    },
    {
        .name = "the key of another section is not an entry",
        .in = "[users]\napp = pool_mode=session\n[databases]\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[users]\napp = pool_mode=session\n[databases]\n"
                "app = host=10.0.0.1 port=5432 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "a double-quoted key and a repeated entry are both rewritten",
        .in = "[databases]\n\"app\" = host=a\napp = host=b\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\n\"app\" = host=10.0.0.1 port=5432 dbname=postgres\n"
                "app = host=10.0.0.1 port=5432 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "comment lines that look like entries are kept",
        .in = "[databases]\n; app = host=a\n  # app = host=b\napp = host=10.0.0.1 port=5432 "
              "dbname=postgres\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\n; app = host=a\n  # app = host=b\napp = host=10.0.0.1 port=5432 "
                "dbname=postgres\n",
        .changed = false,
    },
    {
        .name = "unterminated quote in a target entry is an error naming the line",
        .in = "[databases]\n\napp = host='a\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = NULL,
        .err_line = 3,
    },
    {
        .name = "a parameter without '=' is an error",
        .in = "[databases]\napp = host\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = NULL,
        .err_line = 2,
    },
    {
        .name = "a malformed entry we do not own is kept",
        .in = "[databases]\nx = host='a\n",
        .targets = { WRITE },
        .n_targets = 1,
        .want = "[databases]\nx = host='a\napp = host=10.0.0.1 port=5432 dbname=postgres\n",
        .changed = true,
    },
    {
        .name = "invalid port",
        .in = "",
        .targets = { { "app", "h", 0, "d" } },
        .n_targets = 1,
        .want = NULL,
    },
    {
        .name = "the same name twice",
        .in = "",
        .targets = { WRITE, WRITE },
        .n_targets = 2,
        .want = NULL,
    },
};

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

static void test_rewrite_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rewrite_cases) / sizeof(rewrite_cases[0]); i++) {
        const RewriteCase *c = &rewrite_cases[i];
        char *out = NULL;
        size_t out_len = 0;
        bool changed = !c->changed;
        PgbIniError e = { 0 };
        int r = pgbini_rewrite_databases(c->in, strlen(c->in), c->targets, c->n_targets, &out,
                                         &out_len, &changed, &e);
        if (!c->want) {
            if (r != -EINVAL || out || (c->err_line && e.line != c->err_line) || !e.message[0]) {
                fail_msg("case \"%s\": r=%d line=%u message=\"%s\"", c->name, r, e.line, e.message);
            }
            continue;
        }
        if (r != 0 || strcmp(out, c->want) != 0 || out_len != strlen(c->want) ||
            changed != c->changed) {
            fail_msg("case \"%s\": r=%d changed=%d (want %d)\n--- got\n%s--- want\n%s---", c->name,
                     r, changed, c->changed, out ? out : "(null)", c->want);
        }
        /* applying the same targets again changes nothing */
        char *again = NULL;
        size_t again_len = 0;
        bool changed2 = true;
        r = pgbini_rewrite_databases(out, out_len, c->targets, c->n_targets, &again, &again_len,
                                     &changed2, &e);
        if (r != 0 || changed2 || strcmp(again, out) != 0) {
            fail_msg("case \"%s\": second rewrite r=%d changed=%d", c->name, r, changed2);
        }
        free(again);
        free(out);
    }
}

/* A file rewritten at every failover stays as it is after the first
 * rewrite, whatever its line ends. */
static void test_rewrite_is_stable(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "[pgbouncer]\r\nlisten_port = 1\r\n[databases]\r",
        "[databases]\r",
        "[databases]\r\napp = host=a\r",
        "[pgbouncer]\nlisten_port = 1\n[databases]",
        "[databases]\r\n\r\n[pgbouncer]\r\n",
    };
    const PgbIniTarget targets[] = { WRITE, READ };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        char *text = strdup(inputs[i]);
        size_t len = strlen(text);
        char *first = NULL;
        for (int round = 0; round < 5; round++) {
            char *out = NULL;
            size_t out_len = 0;
            bool changed = false;
            PgbIniError e = { 0 };
            assert_int_equal(
                pgbini_rewrite_databases(text, len, targets, 2, &out, &out_len, &changed, &e), 0);
            if (round == 0) {
                first = strdup(out);
            } else if (changed || strcmp(out, first) != 0) {
                fail_msg("input %zu changed at rewrite %d:\n%s", i, round + 1, out);
            }
            free(text);
            text = out;
            len = out_len;
        }
        /* one entry each, and the file's line ends throughout */
        assert_int_equal(count_of(first, "\napp = "), 1);
        assert_int_equal(count_of(first, "\napp_ro = "), 1);
        if (strstr(inputs[i], "\r")) {
            assert_int_equal(count_of(first, "\n"), count_of(first, "\r\n"));
        }
        free(first);
        free(text);
    }
}

static void test_get(void **state)
{
    (void)state;
    const char *ini = "[databases]\n"
                      "listen_port = 1\n"
                      "app = host=a port=5 dbname='my db'\n"
                      "[PgBouncer]\n"
                      "  Listen_Addr =  127.0.0.1, ::1  \n"
                      "listen_port = 6000\n"
                      "; listen_port = 7000\n"
                      "listen_port = 6001\n"
                      "admin_users =\n";
    char *v = NULL;
    assert_int_equal(pgbini_get(ini, strlen(ini), "pgbouncer", "listen_addr", &v), 0);
    assert_string_equal(v, "127.0.0.1, ::1");
    free(v);
    assert_int_equal(pgbini_get(ini, strlen(ini), "pgbouncer", "listen_port", &v), 0);
    assert_string_equal(v, "6001");
    free(v);
    assert_int_equal(pgbini_get(ini, strlen(ini), "pgbouncer", "admin_users", &v), 0);
    assert_string_equal(v, "");
    free(v);
    v = NULL;
    assert_int_equal(pgbini_get(ini, strlen(ini), "pgbouncer", "auth_file", &v), -ENOENT);
    assert_null(v);
    /* text need not be NUL-terminated: stop before "listen_port = 6001" */
    size_t cut = (size_t)(strstr(ini, "; listen_port") - ini);
    assert_int_equal(pgbini_get(ini, cut, "pgbouncer", "listen_port", &v), 0);
    assert_string_equal(v, "6000");
    free(v);

    assert_int_equal(pgbini_get_database_param(ini, strlen(ini), "app", "dbname", &v), 0);
    assert_string_equal(v, "my db");
    free(v);
    assert_int_equal(pgbini_get_database_param(ini, strlen(ini), "app", "port", &v), 0);
    assert_string_equal(v, "5");
    free(v);
    v = NULL;
    assert_int_equal(pgbini_get_database_param(ini, strlen(ini), "app", "user", &v), -ENOENT);
    assert_int_equal(pgbini_get_database_param(ini, strlen(ini), "nope", "host", &v), -ENOENT);
    const char *bad = "[databases]\napp = host='a\n";
    assert_int_equal(pgbini_get_database_param(bad, strlen(bad), "app", "host", &v), -EINVAL);
    assert_null(v);
}

static void test_userlist(void **state)
{
    (void)state;
    const char *ul = ";; comment\n"
                     "\"admin\" \"s3cret\"\n"
                     "  \"app\"   \"it\"\"s\" extra\n"
                     "garbage line\n"
                     "\"md5u\" \"md5a3556571e93b0d20722ba62be61e8c2d\"\n"
                     "\"scram\" \"SCRAM-SHA-256$4096:abc=$def=:ghi=\"\n"
                     "\"broken\" \"no end\n"
                     "\"admin\" \"later\"";
    char *pw = NULL;
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "admin", &pw), 0);
    assert_string_equal(pw, "s3cret");
    assert_false(pgbini_password_is_hashed(pw));
    free(pw);
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "app", &pw), 0);
    assert_string_equal(pw, "it\"s");
    free(pw);
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "md5u", &pw), 0);
    assert_true(pgbini_password_is_hashed(pw));
    free(pw);
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "scram", &pw), 0);
    assert_true(pgbini_password_is_hashed(pw));
    free(pw);
    pw = NULL;
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "broken", &pw), -ENOENT);
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "nobody", &pw), -ENOENT);
    assert_int_equal(pgbini_userlist_password(ul, strlen(ul), "garbage", &pw), -ENOENT);
    assert_null(pw);
    assert_false(pgbini_password_is_hashed("md5-not-a-hash"));
}

/* ---- the choice ---- */

static json_t *doc(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fail_msg("bad JSON in the test: %s: %s", e.text, text);
    }
    return j;
}

#define PRIMARY "\"primary\": {\"name\": \"n1\", \"host\": \"h1\", \"port\": 5001}"

typedef struct ChooseCase {
    const char *name;
    const char *doc;
    const char *current_host;
    int current_port;
    const char *want_primary; /* NULL: none */
    const char *want_replica; /* NULL: none */
    bool fallback;
} ChooseCase;

static const ChooseCase choose_cases[] = {
    { "streaming replica with the least lag",
      "{" PRIMARY ", \"replicas\": ["
      "{\"name\": \"n2\", \"host\": \"h2\", \"port\": 5002, \"state\": \"streaming\", "
      "\"lag_bytes\": 70000, \"noloadbalance\": false},"
      "{\"name\": \"n3\", \"host\": \"h3\", \"port\": 5003, \"state\": \"streaming\", "
      "\"lag_bytes\": 0, \"noloadbalance\": false}]}",
      NULL, 0, "n1", "n3", false },
    { "the current replica is kept while healthy",
      "{" PRIMARY ", \"replicas\": ["
      "{\"name\": \"n2\", \"host\": \"h2\", \"port\": 5002, \"state\": \"streaming\", "
      "\"lag_bytes\": 70000},"
      "{\"name\": \"n3\", \"host\": \"h3\", \"port\": 5003, \"state\": \"streaming\", "
      "\"lag_bytes\": 0}]}",
      "h2", 5002, "n1", "n2", false },
    { "unknown lag sorts last; running needs a known lag",
      "{" PRIMARY ", \"replicas\": ["
      "{\"name\": \"n2\", \"host\": \"h2\", \"port\": 5002, \"state\": \"streaming\", "
      "\"lag_bytes\": null},"
      "{\"name\": \"n3\", \"host\": \"h3\", \"port\": 5003, \"state\": \"running\", "
      "\"lag_bytes\": 5},"
      "{\"name\": \"n4\", \"host\": \"h4\", \"port\": 5004, \"state\": \"running\", "
      "\"lag_bytes\": null}]}",
      NULL, 0, "n1", "n3", false },
    { "unhealthy replicas: the read entry falls back to the primary",
      "{" PRIMARY ", \"replicas\": ["
      "{\"name\": \"n2\", \"host\": \"h2\", \"port\": 5002, \"state\": \"stopped\", "
      "\"lag_bytes\": 0},"
      "{\"name\": \"n3\", \"host\": \"h3\", \"port\": 5003, \"state\": \"streaming\", "
      "\"lag_bytes\": 0, \"noloadbalance\": true},"
      "{\"name\": \"n4\", \"host\": \"h4\", \"port\": 5004, \"state\": \"running\", "
      "\"lag_bytes\": null},"
      "{\"name\": \"n5\", \"port\": 5005, \"state\": \"streaming\", \"lag_bytes\": 0}]}",
      "h3", 5003, "n1", "n1", true },
    { "no primary, a healthy replica",
      "{\"primary\": null, \"leader\": null, \"replicas\": ["
      "{\"name\": \"n2\", \"host\": \"h2\", \"port\": 5002, \"state\": \"streaming\", "
      "\"lag_bytes\": 0}]}",
      NULL, 0, NULL, "n2", false },
    { "nothing at all", "{\"primary\": null, \"replicas\": []}", NULL, 0, NULL, NULL, false },
    { "a primary with a bad port is no primary",
      "{\"primary\": {\"name\": \"n1\", \"host\": \"h1\", \"port\": 70000}}", NULL, 0, NULL, NULL,
      false },
};

static void test_choose_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(choose_cases) / sizeof(choose_cases[0]); i++) {
        const ChooseCase *c = &choose_cases[i];
        json_t *j = doc(c->doc);
        PgbIniChoice ch;
        int r = pgbini_choose(j, c->current_host, c->current_port, &ch);
        bool ok = r == 0 &&
                  (c->want_primary ? ch.primary.name && !strcmp(ch.primary.name, c->want_primary)
                                   : !ch.primary.name) &&
                  (c->want_replica ? ch.replica.name && !strcmp(ch.replica.name, c->want_replica)
                                   : !ch.replica.name) &&
                  ch.replica_is_primary == c->fallback;
        if (!ok) {
            fail_msg("case \"%s\": r=%d primary=%s replica=%s fallback=%d", c->name, r,
                     ch.primary.name ? ch.primary.name : "-",
                     ch.replica.name ? ch.replica.name : "-", ch.replica_is_primary);
        }
        json_decref(j);
    }
}

static void test_choose_host_fields(void **state)
{
    (void)state;
    json_t *j = doc("{" PRIMARY ", \"replicas\": [{\"name\": \"n2\", \"host\": \"h2\", "
                    "\"port\": 5002, \"state\": \"streaming\", \"lag_bytes\": 0}]}");
    PgbIniChoice ch;
    assert_int_equal(pgbini_choose(j, NULL, 0, &ch), 0);
    assert_string_equal(ch.primary.host, "h1");
    assert_int_equal(ch.primary.port, 5001);
    assert_string_equal(ch.replica.host, "h2");
    assert_int_equal(ch.replica.port, 5002);
    json_decref(j);

    json_t *arr = json_array();
    assert_int_equal(pgbini_choose(arr, NULL, 0, &ch), -EINVAL);
    json_decref(arr);
    j = doc("{\"primary\": \"n1\"}");
    assert_int_equal(pgbini_choose(j, NULL, 0, &ch), -EINVAL);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrite_table), cmocka_unit_test(test_rewrite_is_stable),
        cmocka_unit_test(test_get),           cmocka_unit_test(test_userlist),
        cmocka_unit_test(test_choose_table),  cmocka_unit_test(test_choose_host_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
