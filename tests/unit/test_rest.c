/* Unit tests for the pure parts of agent/rest: snapshot ownership and
 * refcounting, handler-table lookup, the basic-auth comparison and the
 * listen-address parser. The HTTP side is covered by
 * tests/integration/test_rest.py. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "macro.h"
#include "rest.h"

static HealthNode sample_node(void)
{
    return (HealthNode){
        .state = HEALTH_PG_RUNNING,
        .role = HEALTH_ROLE_PRIMARY,
        .probe_ok = true,
        .is_leader = true,
        .dcs_ok = true,
        .ttl_usec = 30000000,
    };
}

static void test_snapshot_copies_tags(void **state)
{
    (void)state;
    HealthNode n = sample_node();
    /* Tags on the heap, freed before the snapshot is used. */
    char *key = strdup("dc"), *value = strdup("east");
    HealthTag *tags = calloc(1, sizeof(*tags));
    assert_non_null(key);
    assert_non_null(value);
    assert_non_null(tags);
    tags[0] = (HealthTag){ key, value };
    n.tags = tags;
    n.n_tags = 1;

    RestSnapshot *s = NULL;
    assert_int_equal(rest_snapshot_new(&n, 42, &s), 0);
    free(key);
    free(value);
    free(tags);

    const HealthNode *c = rest_snapshot_node(s);
    assert_non_null(c);
    assert_int_equal(c->n_tags, 1);
    assert_string_equal(c->tags[0].key, "dc");
    assert_string_equal(c->tags[0].value, "east");
    assert_true(c->is_leader);
    assert_int_equal(rest_snapshot_time_usec(s), 42);
    assert_null(rest_snapshot_unref(s));
}

static void test_snapshot_refcount(void **state)
{
    (void)state;
    HealthNode n = sample_node();
    RestSnapshot *s = NULL;
    assert_int_equal(rest_snapshot_new(&n, 1, &s), 0);

    json_t *doc = json_pack("{s:s, s:i}", "state", "running", "timeline", 1);
    assert_int_equal(rest_snapshot_set_document(s, REST_DOC_PATRONI, doc), 0);
    /* The snapshot holds its own reference. */
    json_decref(doc);
    const json_t *got = rest_snapshot_document(s, REST_DOC_PATRONI);
    assert_non_null(got);
    assert_int_equal(json_integer_value(json_object_get(got, "timeline")), 1);
    assert_null(rest_snapshot_document(s, REST_DOC_CLUSTER));

    /* Replacing and removing a document. */
    json_t *cl = json_pack("{s:[]}", "members");
    assert_int_equal(rest_snapshot_set_document(s, REST_DOC_CLUSTER, cl), 0);
    assert_int_equal(rest_snapshot_set_document(s, REST_DOC_CLUSTER, cl), 0);
    assert_int_equal(rest_snapshot_set_document(s, REST_DOC_CLUSTER, NULL), 0);
    assert_null(rest_snapshot_document(s, REST_DOC_CLUSTER));
    json_decref(cl);
    assert_int_equal(rest_snapshot_set_metrics(s, "x 1\n"), 0);
    assert_int_equal(rest_snapshot_set_leader_deadline(s, 99), 0);

    /* Two more holders; the last unref frees (ASan/LSan checks). */
    RestSnapshot *a = rest_snapshot_ref(s);
    RestSnapshot *b = rest_snapshot_ref(s);
    assert_ptr_equal(a, s);
    assert_ptr_equal(b, s);

    rest_snapshot_seal(s);
    assert_int_equal(rest_snapshot_set_document(s, REST_DOC_CONFIG, NULL), -EBUSY);
    assert_int_equal(rest_snapshot_set_metrics(s, NULL), -EBUSY);
    assert_int_equal(rest_snapshot_set_leader_deadline(s, 1), -EBUSY);

    assert_null(rest_snapshot_unref(a));
    assert_null(rest_snapshot_unref(s));
    /* b still holds it. */
    assert_int_equal(json_integer_value(
                         json_object_get(rest_snapshot_document(b, REST_DOC_PATRONI), "timeline")),
                     1);
    assert_null(rest_snapshot_unref(b));

    assert_null(rest_snapshot_unref(NULL));
    assert_null(rest_snapshot_ref(NULL));
}

static void test_snapshot_bad_args(void **state)
{
    (void)state;
    HealthNode n = sample_node();
    RestSnapshot *s = NULL;
    assert_int_equal(rest_snapshot_new(NULL, 0, &s), -EINVAL);
    n.n_tags = 1; /* tags NULL */
    assert_int_equal(rest_snapshot_new(&n, 0, &s), -EINVAL);
    HealthTag bad = { "k", NULL };
    n.tags = &bad;
    assert_int_equal(rest_snapshot_new(&n, 0, &s), -EINVAL);
    assert_null(s);

    n = sample_node();
    assert_int_equal(rest_snapshot_new(&n, 0, &s), 0);
    assert_int_equal(rest_snapshot_set_document(s, _REST_DOC_MAX, NULL), -EINVAL);
    assert_int_equal(rest_snapshot_set_document(s, (RestDoc)-1, NULL), -EINVAL);
    rest_snapshot_unref(s);
}

static void test_doc_strings(void **state)
{
    (void)state;
    assert_string_equal(rest_doc_to_string(REST_DOC_PATRONI), "patroni");
    assert_string_equal(rest_doc_to_string(REST_DOC_CONFIG), "config");
    assert_null(rest_doc_to_string(_REST_DOC_MAX));
    assert_int_equal(rest_doc_from_string("status"), REST_DOC_PATRONI);
    assert_int_equal(rest_doc_from_string("patroni"), REST_DOC_PATRONI);
    assert_int_equal(rest_doc_from_string("history"), REST_DOC_HISTORY);
    assert_int_equal(rest_doc_from_string("cluster"), REST_DOC_CLUSTER);
    assert_int_equal(rest_doc_from_string("metrics"), _REST_DOC_INVALID);
    assert_int_equal(rest_doc_from_string(NULL), _REST_DOC_INVALID);
}

static int dummy(const RestCall *call, RestReply *reply, void *userdata)
{
    return 0;
}

typedef struct LookupRow {
    const char *method;
    const char *path;
    int want; /* index into the table, -1 for none */
    bool path_known;
} LookupRow;

static void test_handler_lookup(void **state)
{
    (void)state;
    static const RestHandler table[] = {
        { "POST", "/switchover", REST_HANDLER_MUTATING, dummy, NULL },
        { "DELETE", "/switchover", REST_HANDLER_MUTATING, dummy, NULL },
        { "PATCH", "/config", REST_HANDLER_MUTATING, dummy, NULL },
        { "PUT", "/config", REST_HANDLER_MUTATING, dummy, NULL },
        { "POST", "/", 0, dummy, NULL },
    };
    static const LookupRow rows[] = {
        { "POST", "/switchover", 0, true },
        { "DELETE", "/switchover", 1, true },
        { "POST", "/switchover/extra", 0, true }, /* first segment, as Patroni */
        { "POST", "//switchover", 0, true },      /* lstrip('/') */
        { "PUT", "/switchover", -1, true },
        { "post", "/switchover", -1, true }, /* methods are case-sensitive */
        { "PATCH", "/config", 2, true },
        { "PUT", "/config", 3, true },
        { "GET", "/config", -1, true },
        { "POST", "/configx", -1, false },
        { "POST", "/conf", -1, false },
        { "POST", "/restart", -1, false },
        { "POST", "/", 4, true },
        { "POST", "", 4, true },
    };
    unsigned failures = 0;
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        bool known = !rows[i].path_known;
        const RestHandler *h =
            rest_handler_lookup(table, ELEMENTSOF(table), rows[i].method, rows[i].path, &known);
        const RestHandler *want = rows[i].want >= 0 ? &table[rows[i].want] : NULL;
        if (h != want || known != rows[i].path_known) {
            print_error("row %zu: %s %s -> %td known=%d, want %d known=%d\n", i, rows[i].method,
                        rows[i].path, h ? h - table : -1, known, rows[i].want, rows[i].path_known);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_null(rest_handler_lookup(NULL, 0, "POST", "/x", NULL));
    assert_null(rest_handler_lookup(table, ELEMENTSOF(table), NULL, "/x", NULL));
}

static void test_auth_check(void **state)
{
    (void)state;
    assert_true(rest_auth_check(NULL, NULL, NULL, NULL)); /* no auth configured */
    assert_true(rest_auth_check(NULL, NULL, "x", "y"));
    assert_true(rest_auth_check("admin", "s3cret", "admin", "s3cret"));
    assert_false(rest_auth_check("admin", "s3cret", "admin", "s3cre"));
    assert_false(rest_auth_check("admin", "s3cret", "admin", "s3cret!"));
    assert_false(rest_auth_check("admin", "s3cret", "admin", "S3cret"));
    assert_false(rest_auth_check("admin", "s3cret", "admim", "s3cret"));
    assert_false(rest_auth_check("admin", "s3cret", "", "s3cret"));
    assert_false(rest_auth_check("admin", "s3cret", "admin", ""));
    assert_false(rest_auth_check("admin", "s3cret", NULL, "s3cret"));
    assert_false(rest_auth_check("admin", "s3cret", "admin", NULL));
    /* A repetition of the secret is not a match. */
    assert_false(rest_auth_check("ab", "ab", "abab", "ab"));
    assert_true(rest_auth_check("admin", "", "admin", ""));
}

typedef struct ListenRow {
    const char *in;
    int r;
    int family;
    const char *addr;
    unsigned port;
} ListenRow;

static void test_parse_listen(void **state)
{
    (void)state;
    static const ListenRow rows[] = {
        { "127.0.0.1:8008", 0, AF_INET, "127.0.0.1", 8008 },
        { "0.0.0.0:0", 0, AF_INET, "0.0.0.0", 0 },
        { "*:8008", 0, AF_INET, "0.0.0.0", 8008 },
        { ":8008", 0, AF_INET, "0.0.0.0", 8008 },
        { "[::1]:8443", 0, AF_INET6, "::1", 8443 },
        { "[::]:65535", 0, AF_INET6, "::", 65535 },
        { "127.0.0.1", -EINVAL, 0, NULL, 0 },
        { "127.0.0.1:", -EINVAL, 0, NULL, 0 },
        { "127.0.0.1:65536", -EINVAL, 0, NULL, 0 },
        { "127.0.0.1:-1", -EINVAL, 0, NULL, 0 },
        { "127.0.0.1:80x", -EINVAL, 0, NULL, 0 },
        { "::1:8008", -EINVAL, 0, NULL, 0 },
        { "[::1]8008", -EINVAL, 0, NULL, 0 },
        { "[::1]", -EINVAL, 0, NULL, 0 },
        { "[127.0.0.1:80", -EINVAL, 0, NULL, 0 },
        { "[not-an-ip]:80", -EINVAL, 0, NULL, 0 },
        { "", -EINVAL, 0, NULL, 0 },
    };
    unsigned failures = 0;
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        RestError err = { { 0 } };
        int r = rest_parse_listen(rows[i].in, &ss, &len, &err);
        char buf[INET6_ADDRSTRLEN] = "";
        unsigned port = 0;
        if (r == 0 && ss.ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
            port = ntohs(sin->sin_port);
        } else if (r == 0 && ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
            port = ntohs(sin6->sin6_port);
        }
        bool ok =
            r == rows[i].r && (r != 0 || (ss.ss_family == rows[i].family &&
                                          strcmp(buf, rows[i].addr) == 0 && port == rows[i].port));
        if (r < 0 && err.message[0] == '\0') {
            ok = false;
        }
        if (!ok) {
            print_error("row %zu \"%s\": r=%d family=%d addr=%s port=%u err=\"%s\"\n", i,
                        rows[i].in, r, r == 0 ? ss.ss_family : 0, buf, port, err.message);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(rest_parse_listen(NULL, &ss, &len, NULL), -EINVAL);
}

static void test_server_bad_config(void **state)
{
    (void)state;
    RestServer *s = NULL;
    RestError err = { { 0 } };
    RestServerConfig cfg = { .listen = "127.0.0.1:0", .username = "u" };
    assert_int_equal(rest_server_new(&cfg, &s, &err), -EINVAL);
    assert_non_null(strstr(err.message, "password"));
    cfg = (RestServerConfig){ .listen = "127.0.0.1:0", .keyfile = "/nonexistent" };
    assert_int_equal(rest_server_new(&cfg, &s, &err), -EINVAL);
    cfg = (RestServerConfig){ .listen = "127.0.0.1:0", .certfile = "/nonexistent/cert.pem" };
    assert_int_equal(rest_server_new(&cfg, &s, &err), -ENOENT);
    assert_non_null(strstr(err.message, "/nonexistent/cert.pem"));
    RestHandler h = { "POST", "noslash", 0, dummy, NULL };
    cfg = (RestServerConfig){ .listen = "127.0.0.1:0", .handlers = &h, .n_handlers = 1 };
    assert_int_equal(rest_server_new(&cfg, &s, &err), -EINVAL);
    assert_null(s);
    assert_null(rest_server_free(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_copies_tags), cmocka_unit_test(test_snapshot_refcount),
        cmocka_unit_test(test_snapshot_bad_args),    cmocka_unit_test(test_doc_strings),
        cmocka_unit_test(test_handler_lookup),       cmocka_unit_test(test_auth_check),
        cmocka_unit_test(test_parse_listen),         cmocka_unit_test(test_server_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
