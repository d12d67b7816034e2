/* Unit tests for the etcd client's wire format (lib/etcd-json.c through
 * lib/etcd-internal.h): base64, prefix range ends, request bodies, every
 * response shape of the v3 gateway, error classification, the watch stream's
 * line splitting, and malformed or truncated answers. No network. */
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

#include "etcd-internal.h"
#include "etcd.h"

#define LEASE_BIG      2324035635939115042LL /* > 2^53: a double would round it */
#define LEASE_BIG_TEXT "2324035635939115042"

static json_t *load(const char *s)
{
    json_error_t err;
    json_t *o = json_loads(s, 0, &err);
    if (!o) {
        fail_msg("bad JSON from encoder: %s: %s", err.text, s);
    }
    return o;
}

static const char *str_at(json_t *o, const char *path)
{
    /* path "a.b.c" into nested objects, last must be a string */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
        cur = json_object_get(cur, t);
        if (!cur) {
            fail_msg("missing %s", path);
        }
    }
    if (!json_is_string(cur)) {
        fail_msg("%s is not a string", path);
    }
    return json_string_value(cur);
}

/* ---- base64 ---- */

static void test_base64_vectors(void **state)
{
    static const struct {
        const char *plain, *b64;
    } v[] = {
        { "", "" },
        { "f", "Zg==" },
        { "fo", "Zm8=" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" },
        { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
        { "/ha/", "L2hhLw==" },
        { "/svc/leader", "L3N2Yy9sZWFkZXI=" },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        char *enc = NULL, *dec = NULL;
        size_t len;
        assert_int_equal(etcd_base64_encode(v[i].plain, strlen(v[i].plain), &enc), 0);
        assert_string_equal(enc, v[i].b64);
        assert_int_equal(etcd_base64_decode(enc, strlen(enc), &dec, &len), 0);
        assert_int_equal(len, strlen(v[i].plain));
        assert_memory_equal(dec, v[i].plain, len);
        assert_int_equal(dec[len], '\0');
        free(enc);
        free(dec);
    }
}

static void test_base64_binary_roundtrip(void **state)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (unsigned char)(i * 7 + 3);
    }
    data[0] = 0;
    data[1] = 0xff;
    for (size_t n = 0; n <= sizeof(data); n++) {
        char *enc = NULL, *dec = NULL;
        size_t len;
        assert_int_equal(etcd_base64_encode(data, n, &enc), 0);
        assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
        assert_int_equal(etcd_base64_decode(enc, strlen(enc), &dec, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(dec, data, n);
        free(enc);
        free(dec);
    }
}

static void test_base64_invalid(void **state)
{
    static const char *bad[] = {
        "Zm9",      "Zm9v!", "Zm9v YmFy", "=Zm9", "Zg=a",
        "Z===",     "====",  "Zm9v\n",    "Zh==", /* non-zero trailing bits */
        "Zm9=Zm9v", "Zm-v",  "Zm_v",
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        char *dec = NULL;
        size_t len = 12345;
        int r = etcd_base64_decode(bad[i], strlen(bad[i]), &dec, &len);
        if (r != -EBADMSG) {
            fail_msg("\"%s\" decoded (r=%d)", bad[i], r);
        }
        assert_null(dec);
        assert_int_equal(len, 12345); /* untouched on failure */
    }
}

/* ---- prefix rule ---- */

static void test_prefix_range_end(void **state)
{
    static const struct {
        const char *prefix;
        size_t len;
        const char *end;
        size_t end_len;
    } v[] = {
        { "/ha/", 4, "/ha0", 4 },       { "a", 1, "b", 1 },           { "a\xff", 2, "b", 1 },
        { "a\xff\xff", 3, "b", 1 },     { "ab\xfe", 3, "ab\xff", 3 }, { "\xff", 1, "\0", 1 },
        { "\xff\xff\xff", 3, "\0", 1 }, { "", 0, "\0", 1 },           { "x\x7f", 2, "x\x80", 2 },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        char *end = NULL;
        size_t len;
        assert_int_equal(etcd_prefix_range_end(v[i].prefix, v[i].len, &end, &len), 0);
        assert_int_equal(len, v[i].end_len);
        assert_memory_equal(end, v[i].end, len);
        free(end);
    }
}

/* ---- request encoding ---- */

static void test_encode_range(void **state)
{
    char *s = NULL;
    EtcdRangeOptions ro = { .prefix = true,
                            .revision = 42,
                            .limit = 2,
                            .keys_only = true,
                            .count_only = false,
                            .serializable = true };
    assert_int_equal(etcd_json_range_request("/ha/", &ro, &s), 0);
    json_t *o = load(s);
    assert_string_equal(str_at(o, "key"), "L2hhLw==");
    assert_string_equal(str_at(o, "range_end"), "L2hhMA=="); /* "/ha0" */
    assert_string_equal(str_at(o, "revision"), "42");
    assert_string_equal(str_at(o, "limit"), "2");
    assert_true(json_is_true(json_object_get(o, "keys_only")));
    assert_true(json_is_true(json_object_get(o, "serializable")));
    assert_null(json_object_get(o, "count_only"));
    json_decref(o);
    free(s);

    assert_int_equal(etcd_json_range_request("/k", NULL, &s), 0);
    o = load(s);
    assert_string_equal(str_at(o, "key"), "L2s=");
    assert_int_equal(json_object_size(o), 1);
    json_decref(o);
    free(s);

    /* everything: key "\0", range_end "\0" */
    ro = (EtcdRangeOptions){ .prefix = true };
    assert_int_equal(etcd_json_range_request("", &ro, &s), 0);
    o = load(s);
    assert_string_equal(str_at(o, "key"), "AA==");
    assert_string_equal(str_at(o, "range_end"), "AA==");
    json_decref(o);
    free(s);
}

static void test_encode_put_delete(void **state)
{
    char *s = NULL;
    const char value[] = { 'a', 0, (char)0xff, 'b' };
    EtcdPutOptions po = { .lease = LEASE_BIG, .prev_kv = true };
    assert_int_equal(etcd_json_put_request("/k", value, sizeof(value), &po, &s), 0);
    json_t *o = load(s);
    assert_string_equal(str_at(o, "value"), "YQD/Yg==");
    assert_string_equal(str_at(o, "lease"), LEASE_BIG_TEXT);
    assert_true(json_is_true(json_object_get(o, "prev_kv")));
    json_decref(o);
    free(s);

    assert_int_equal(etcd_json_put_request("/k", "", 0, NULL, &s), 0);
    o = load(s);
    assert_string_equal(str_at(o, "value"), "");
    assert_null(json_object_get(o, "lease"));
    json_decref(o);
    free(s);

    assert_int_equal(etcd_json_put_request("", "x", 1, NULL, &s), -EINVAL);
    assert_int_equal(etcd_json_put_request(NULL, "x", 1, NULL, &s), -EINVAL);

    assert_int_equal(etcd_json_delete_request("/hb/", true, true, &s), 0);
    o = load(s);
    assert_string_equal(str_at(o, "range_end"), "L2hiMA==");
    assert_true(json_is_true(json_object_get(o, "prev_kv")));
    json_decref(o);
    free(s);
    assert_int_equal(etcd_json_delete_request("", false, false, &s), -EINVAL);
}

static void test_encode_txn(void **state)
{
    EtcdCompare cmps[] = {
        { .key = "/svc/leader", .target = ETCD_COMPARE_CREATE, .result = ETCD_COMPARE_EQUAL },
        { .key = "/svc/leader",
          .target = ETCD_COMPARE_VALUE,
          .result = ETCD_COMPARE_NOT_EQUAL,
          .value = "node1",
          .value_len = 5 },
        { .key = "/m", .target = ETCD_COMPARE_MOD, .result = ETCD_COMPARE_LESS, .number = 15 },
        { .key = "/v",
          .target = ETCD_COMPARE_VERSION,
          .result = ETCD_COMPARE_GREATER,
          .number = 3 },
        { .key = "/l",
          .target = ETCD_COMPARE_LEASE,
          .result = ETCD_COMPARE_EQUAL,
          .number = LEASE_BIG },
    };
    EtcdOp success[] = {
        { .type = ETCD_OP_PUT,
          .key = "/svc/leader",
          .value = "node1",
          .value_len = 5,
          .lease = LEASE_BIG },
        { .type = ETCD_OP_DELETE, .key = "/svc/x/", .prefix = true, .prev_kv = true },
    };
    EtcdOp failure[] = { { .type = ETCD_OP_RANGE, .key = "/svc/leader" } };
    EtcdTxn txn = { cmps, ELEMENTSOF(cmps), success, ELEMENTSOF(success), failure, 1 };
    char *s = NULL;
    assert_int_equal(etcd_json_txn_request(&txn, &s), 0);
    json_t *o = load(s);
    json_t *c = json_object_get(o, "compare");
    assert_int_equal(json_array_size(c), 5);
    assert_string_equal(str_at(json_array_get(c, 0), "key"), "L3N2Yy9sZWFkZXI=");
    assert_string_equal(str_at(json_array_get(c, 0), "target"), "CREATE");
    assert_string_equal(str_at(json_array_get(c, 0), "result"), "EQUAL");
    assert_string_equal(str_at(json_array_get(c, 0), "create_revision"), "0");
    assert_string_equal(str_at(json_array_get(c, 1), "target"), "VALUE");
    assert_string_equal(str_at(json_array_get(c, 1), "result"), "NOT_EQUAL");
    assert_string_equal(str_at(json_array_get(c, 1), "value"), "bm9kZTE=");
    assert_string_equal(str_at(json_array_get(c, 2), "mod_revision"), "15");
    assert_string_equal(str_at(json_array_get(c, 2), "result"), "LESS");
    assert_string_equal(str_at(json_array_get(c, 3), "version"), "3");
    assert_string_equal(str_at(json_array_get(c, 3), "result"), "GREATER");
    assert_string_equal(str_at(json_array_get(c, 4), "lease"), LEASE_BIG_TEXT);
    json_t *succ = json_object_get(o, "success");
    assert_int_equal(json_array_size(succ), 2);
    assert_string_equal(str_at(json_array_get(succ, 0), "request_put.lease"), LEASE_BIG_TEXT);
    assert_string_equal(str_at(json_array_get(succ, 0), "request_put.value"), "bm9kZTE=");
    assert_string_equal(str_at(json_array_get(succ, 1), "request_delete_range.range_end"),
                        "L3N2Yy94MA==");
    json_t *fail = json_object_get(o, "failure");
    assert_string_equal(str_at(json_array_get(fail, 0), "request_range.key"), "L3N2Yy9sZWFkZXI=");
    json_decref(o);
    free(s);

    /* empty branches are still arrays; bad enums are refused */
    EtcdTxn empty = { cmps, 1, NULL, 0, NULL, 0 };
    assert_int_equal(etcd_json_txn_request(&empty, &s), 0);
    o = load(s);
    assert_true(json_is_array(json_object_get(o, "success")));
    json_decref(o);
    free(s);
    EtcdCompare bad = { .key = "/k", .target = (EtcdCompareTarget)99 };
    EtcdTxn badtxn = { &bad, 1, NULL, 0, NULL, 0 };
    assert_int_equal(etcd_json_txn_request(&badtxn, &s), -EINVAL);
}

static void test_encode_watch(void **state)
{
    EtcdWatchOptions wo = { .key = "/svc/", .prefix = true, .prev_kv = true };
    char *s = NULL;
    assert_int_equal(etcd_json_watch_request(&wo, 17, &s), 0);
    json_t *o = load(s);
    assert_string_equal(str_at(o, "create_request.key"), "L3N2Yy8=");
    assert_string_equal(str_at(o, "create_request.range_end"), "L3N2YzA=");
    assert_string_equal(str_at(o, "create_request.start_revision"), "17");
    json_decref(o);
    free(s);
    assert_int_equal(etcd_json_watch_request(&wo, 0, &s), 0);
    o = load(s);
    assert_null(json_object_get(json_object_get(o, "create_request"), "start_revision"));
    json_decref(o);
    free(s);
}

/* ---- responses ---- */

#define P(s) (s), strlen(s)

static void test_parse_range(void **state)
{
    EtcdResult r = { 0 };
    EtcdError e = { 0 };
    const char *body =
        "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"19\",\"raft_term\":"
        "\"2\"},\"kvs\":[{\"key\":\"L2hhL2E=\",\"create_revision\":\"4\",\"mod_revision\":\"5\","
        "\"version\":\"2\",\"value\":\"di9oYS9h\",\"lease\":\"" LEASE_BIG_TEXT
        "\"},{\"key\":\"L2hhL2I=\"}],\"count\":\"3\",\"more\":true}";
    assert_int_equal(etcd_parse_range_response(P(body), &r, &e), 0);
    assert_int_equal(r.revision, 19);
    assert_int_equal(r.n_kvs, 2);
    assert_int_equal(r.count, 3);
    assert_true(r.more);
    assert_string_equal(r.kvs[0].key, "/ha/a");
    assert_int_equal(r.kvs[0].key_len, 5);
    assert_string_equal(r.kvs[0].value, "v/ha/a");
    assert_int_equal(r.kvs[0].create_revision, 4);
    assert_int_equal(r.kvs[0].mod_revision, 5);
    assert_int_equal(r.kvs[0].version, 2);
    assert_true(r.kvs[0].lease == LEASE_BIG);
    /* missing fields are 0 / empty */
    assert_string_equal(r.kvs[1].key, "/ha/b");
    assert_int_equal(r.kvs[1].value_len, 0);
    assert_string_equal(r.kvs[1].value, "");
    assert_int_equal(r.kvs[1].create_revision, 0);
    assert_int_equal(r.kvs[1].lease, 0);
    etcd_result_done(&r);

    /* a missing key: only a header */
    assert_int_equal(etcd_parse_range_response(P("{\"header\":{\"revision\":\"7\"}}"), &r, &e), 0);
    assert_int_equal(r.revision, 7);
    assert_int_equal(r.n_kvs, 0);
    assert_int_equal(r.count, 0);
    assert_false(r.more);
    etcd_result_done(&r);

    /* no header at all, integers as numbers, binary value */
    assert_int_equal(
        etcd_parse_range_response(
            P("{\"kvs\":[{\"key\":\"AA==\",\"value\":\"YQD/Yg==\",\"version\":1}]}"), &r, &e),
        0);
    assert_int_equal(r.revision, 0);
    assert_int_equal(r.kvs[0].key_len, 1);
    assert_int_equal(r.kvs[0].key[0], 0);
    assert_int_equal(r.kvs[0].value_len, 4);
    assert_memory_equal(r.kvs[0].value,
                        "a\0\xff"
                        "b",
                        4);
    assert_int_equal(r.kvs[0].version, 1);
    etcd_result_done(&r);

    /* int64 limits */
    assert_int_equal(
        etcd_parse_range_response(
            P("{\"kvs\":[{\"lease\":\"9223372036854775807\",\"version\":\"-1\"}],\"count\":\"0\"}"),
            &r, &e),
        0);
    assert_true(r.kvs[0].lease == INT64_MAX);
    assert_int_equal(r.kvs[0].version, -1);
    etcd_result_done(&r);
}

static void test_parse_put_delete(void **state)
{
    EtcdResult r = { 0 };
    EtcdError e = { 0 };
    assert_int_equal(
        etcd_parse_put_response(P("{\"header\":{\"revision\":\"11\"},\"prev_kv\":{\"key\":\"L2s=\","
                                  "\"create_revision\":\"10\",\"mod_revision\":\"10\",\"version\":"
                                  "\"1\",\"value\":\"MQ==\"}}"),
                                &r, &e),
        0);
    assert_int_equal(r.type, ETCD_OP_PUT);
    assert_int_equal(r.revision, 11);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].key, "/k");
    assert_string_equal(r.kvs[0].value, "1");
    etcd_result_done(&r);

    assert_int_equal(etcd_parse_put_response(P("{\"header\":{\"revision\":\"12\"}}"), &r, &e), 0);
    assert_int_equal(r.n_kvs, 0);
    etcd_result_done(&r);

    assert_int_equal(etcd_parse_delete_response(
                         P("{\"header\":{\"revision\":\"13\"},\"deleted\":\"1\",\"prev_kvs\":[{"
                           "\"key\":\"L2hiL3g=\",\"value\":\"eA==\"}]}"),
                         &r, &e),
                     0);
    assert_int_equal(r.type, ETCD_OP_DELETE);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.n_kvs, 1);
    assert_string_equal(r.kvs[0].key, "/hb/x");
    etcd_result_done(&r);

    /* deleting nothing: header only */
    assert_int_equal(etcd_parse_delete_response(P("{\"header\":{}}"), &r, &e), 0);
    assert_int_equal(r.count, 0);
    etcd_result_done(&r);
}

static void test_parse_txn(void **state)
{
    EtcdResult r = { 0 };
    EtcdError e = { 0 };
    /* the winner */
    assert_int_equal(etcd_parse_txn_response(
                         P("{\"header\":{\"revision\":\"14\"},\"succeeded\":true,\"responses\":[{"
                           "\"response_put\":{\"header\":{\"revision\":\"14\"}}}]}"),
                         &r, &e),
                     0);
    assert_true(r.succeeded);
    assert_int_equal(r.revision, 14);
    assert_int_equal(r.n_responses, 1);
    assert_int_equal(r.responses[0].type, ETCD_OP_PUT);
    etcd_result_done(&r);

    /* the loser: no "succeeded", the holder in the range response */
    assert_int_equal(etcd_parse_txn_response(
                         P("{\"header\":{\"revision\":\"14\"},\"responses\":[{\"response_range\":{"
                           "\"header\":{},\"kvs\":[{\"key\":\"L3N2Yy9sZWFkZXI=\",\"create_"
                           "revision\":\"14\",\"mod_revision\":\"14\",\"version\":\"1\",\"value\":"
                           "\"bm9kZTE=\",\"lease\":\"" LEASE_BIG_TEXT "\"}],\"count\":\"1\"}}]}"),
                         &r, &e),
                     0);
    assert_false(r.succeeded);
    assert_int_equal(r.n_responses, 1);
    assert_int_equal(r.responses[0].type, ETCD_OP_RANGE);
    assert_int_equal(r.responses[0].n_kvs, 1);
    assert_string_equal(r.responses[0].kvs[0].value, "node1");
    assert_true(r.responses[0].kvs[0].lease == LEASE_BIG);
    etcd_result_done(&r);

    /* stale mod_revision and no failure ops: just the header */
    assert_int_equal(etcd_parse_txn_response(P("{\"header\":{\"revision\":\"15\"}}"), &r, &e), 0);
    assert_false(r.succeeded);
    assert_int_equal(r.n_responses, 0);
    etcd_result_done(&r);

    assert_int_equal(
        etcd_parse_txn_response(P("{\"succeeded\":true,\"responses\":[{\"response_delete_range\":{"
                                  "\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"L2s=\"}]}}]}"),
                                &r, &e),
        0);
    assert_int_equal(r.responses[0].type, ETCD_OP_DELETE);
    assert_int_equal(r.responses[0].count, 1);
    etcd_result_done(&r);
}

static void test_parse_lease(void **state)
{
    EtcdLease l = { 0 };
    EtcdError e = { 0 };
    int64_t ttl = 77;
    assert_int_equal(
        etcd_parse_lease_grant_response(
            P("{\"header\":{\"revision\":\"3\"},\"ID\":\"" LEASE_BIG_TEXT "\",\"TTL\":\"10\"}"), &l,
            &e),
        0);
    assert_true(l.id == LEASE_BIG);
    assert_int_equal(l.ttl, 10);

    assert_int_equal(
        etcd_parse_lease_keepalive_response(
            P("{\"result\":{\"header\":{},\"ID\":\"" LEASE_BIG_TEXT "\",\"TTL\":\"10\"}}\n"), &ttl,
            NULL, &e),
        0);
    assert_int_equal(ttl, 10);
    /* the header's revision: what the loop knows etcd had reached */
    int64_t rev = -1;
    assert_int_equal(etcd_parse_lease_keepalive_response(
                         P("{\"result\":{\"header\":{\"revision\":\"57\"},\"ID\":\"5\","
                           "\"TTL\":\"10\"}}\n"),
                         &ttl, &rev, &e),
                     0);
    assert_int_equal(rev, 57);

    /* lease gone: 200 without TTL, or TTL 0 */
    ttl = 77;
    assert_int_equal(etcd_parse_lease_keepalive_response(
                         P("{\"result\":{\"header\":{},\"ID\":\"999\"}}\n"), &ttl, NULL, &e),
                     -ESRCH);
    assert_int_equal(e.kind, ETCD_ERROR_LEASE_NOT_FOUND);
    assert_int_equal(ttl, 77);
    assert_int_equal(etcd_parse_lease_keepalive_response(
                         P("{\"result\":{\"ID\":\"999\",\"TTL\":\"0\"}}"), &ttl, NULL, &e),
                     -ESRCH);
    /* a streaming error inside a 200 */
    assert_int_equal(etcd_parse_lease_keepalive_response(
                         P("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
                           "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}"),
                         &ttl, NULL, &e),
                     -EHOSTUNREACH);
    assert_int_equal(e.kind, ETCD_ERROR_UNAVAILABLE);
    assert_int_equal(e.grpc_code, 14);

    assert_int_equal(
        etcd_parse_lease_ttl_response(
            P("{\"ID\":\"5\",\"TTL\":\"9\",\"grantedTTL\":\"10\",\"keys\":[\"L2xr\"]}"), &l, &e),
        0);
    assert_int_equal(l.ttl, 9);
    assert_int_equal(l.granted_ttl, 10);
    assert_int_equal(etcd_parse_lease_ttl_response(P("{\"ID\":\"5\",\"TTL\":\"-1\"}"), &l, &e),
                     -ESRCH);
    assert_int_equal(e.kind, ETCD_ERROR_LEASE_NOT_FOUND);
}

static void test_parse_auth(void **state)
{
    char *tok = NULL;
    EtcdError e = { 0 };
    assert_int_equal(
        etcd_parse_auth_response(P("{\"header\":{},\"token\":\"WtFIsYhOclAUYgRm.288\"}"), &tok, &e),
        0);
    assert_string_equal(tok, "WtFIsYhOclAUYgRm.288");
    free(tok);
    tok = NULL;
    assert_int_equal(etcd_parse_auth_response(P("{\"header\":{}}"), &tok, &e), -EBADMSG);
    assert_int_equal(etcd_parse_auth_response(P("{\"token\":\"a\\r\\nX: y\"}"), &tok, &e),
                     -EBADMSG);
    assert_null(tok);
}

static void test_error_kinds(void **state)
{
    static const struct {
        long status;
        const char *body;
        EtcdErrorKind kind;
        int code;
    } v[] = {
        { 503,
          "{\"error\":\"etcdserver: request timed out\",\"message\":\"etcdserver: request "
          "timed out\",\"code\":14}",
          ETCD_ERROR_UNAVAILABLE, 14 },
        { 500, "{\"error\":\"context deadline exceeded\",\"code\":2}", ETCD_ERROR_UNAVAILABLE, 2 },
        { 401, "{\"error\":\"etcdserver: invalid auth token\",\"code\":16}", ETCD_ERROR_AUTH, 16 },
        { 400,
          "{\"error\":\"etcdserver: authentication failed, invalid user ID or password\","
          "\"code\":3}",
          ETCD_ERROR_AUTH, 3 },
        { 400, "{\"error\":\"etcdserver: user name is empty\",\"code\":3}", ETCD_ERROR_AUTH, 3 },
        { 403, "{\"error\":\"etcdserver: permission denied\",\"code\":7}",
          ETCD_ERROR_PERMISSION_DENIED, 7 },
        { 404, "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}",
          ETCD_ERROR_LEASE_NOT_FOUND, 5 },
        { 400, "{\"error\":\"mvcc: required revision has been compacted\",\"code\":11}",
          ETCD_ERROR_COMPACTED, 11 },
        { 400, "{\"error\":\"mvcc: required revision is a future revision\",\"code\":11}",
          ETCD_ERROR_INVALID, 11 },
        { 400, "{\"error\":\"unexpected EOF\",\"code\":3}", ETCD_ERROR_INVALID, 3 },
        { 412, "{\"error\":\"etcdserver: lease already exists\",\"code\":9}", ETCD_ERROR_INVALID,
          9 },
        { 400, "CommonName of client sending a request against gateway will be ignored",
          ETCD_ERROR_INVALID, 0 },
        { 502, "<html>bad gateway</html>", ETCD_ERROR_UNAVAILABLE, 0 },
        { 503, "", ETCD_ERROR_UNAVAILABLE, 0 },
        { 503,
          "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no "
          "leader\",\"http_status\":\"Service Unavailable\"}}",
          ETCD_ERROR_UNAVAILABLE, 14 },
        { 200, "garbage", ETCD_ERROR_BAD_RESPONSE, 0 },
        { 404, "404 page not found", ETCD_ERROR_INVALID, 0 },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        EtcdError e = { 0 };
        int r = etcd_parse_error_response(v[i].status, P(v[i].body), &e);
        if (e.kind != v[i].kind || e.grpc_code != v[i].code || e.http_status != v[i].status) {
            fail_msg("case %zu (%ld %s): kind %s code %d", i, v[i].status, v[i].body,
                     etcd_error_kind_to_string(e.kind), e.grpc_code);
        }
        assert_int_equal(r, etcd_error_kind_to_errno(v[i].kind));
        assert_true(strlen(e.message) > 0);
    }
}

static void test_error_kind_tables(void **state)
{
    for (int k = 0; k < _ETCD_ERROR_KIND_MAX; k++) {
        const char *s = etcd_error_kind_to_string(k);
        assert_non_null(s);
        assert_int_equal(etcd_error_kind_from_string(s), k);
        for (int j = 0; j < k; j++) {
            assert_int_not_equal(etcd_error_kind_to_errno(j), etcd_error_kind_to_errno(k));
        }
        assert_true(k == ETCD_ERROR_NONE ? etcd_error_kind_to_errno(k) == 0
                                         : etcd_error_kind_to_errno(k) < 0);
    }
    assert_null(etcd_error_kind_to_string(_ETCD_ERROR_KIND_MAX));
    assert_int_equal(etcd_error_kind_from_string("bogus"), _ETCD_ERROR_KIND_INVALID);
    assert_int_equal(etcd_protocol_from_string("HTTPS"), ETCD_PROTOCOL_HTTPS);
    assert_int_equal(etcd_protocol_from_string("ftp"), _ETCD_PROTOCOL_INVALID);
}

/* ---- watch stream ---- */

static const char watch_stream[] =
    "{\"result\":{\"header\":{\"revision\":\"16\"},\"created\":true}}\n"
    "{\"result\":{\"header\":{\"revision\":\"17\"},\"events\":[{\"kv\":{\"key\":"
    "\"L3N2Yy9sZWFkZXI=\",\"create_revision\":\"17\",\"mod_revision\":\"17\",\"version\":\"1\","
    "\"value\":\"bjE=\",\"lease\":\"" LEASE_BIG_TEXT "\"}}]}}\n"
    "\n"
    "{\"result\":{\"header\":{\"revision\":\"18\"},\"events\":[{\"kv\":{\"key\":"
    "\"L3N2Yy9sZWFkZXI=\",\"mod_revision\":\"18\",\"version\":\"2\",\"value\":\"bjI=\"},"
    "\"prev_kv\":{\"key\":\"L3N2Yy9sZWFkZXI=\",\"value\":\"bjE=\"}}]}}\r\n"
    "{\"result\":{\"header\":{\"revision\":\"19\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{"
    "\"key\":\"L3N2Yy9sZWFkZXI=\",\"mod_revision\":\"19\"}}]}}\n"
    "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"18\"}}\n";

static void check_watch_lines(const char **lines, const size_t *lens, size_t n)
{
    assert_int_equal(n, 5);
    EtcdWatchResponse w = { 0 };
    EtcdError e = { 0 };
    assert_int_equal(etcd_parse_watch_line(lines[0], lens[0], &w, &e), 0);
    assert_true(w.created);
    assert_int_equal(w.revision, 16);
    assert_int_equal(w.n_events, 0);
    etcd_watch_response_done(&w);

    assert_int_equal(etcd_parse_watch_line(lines[1], lens[1], &w, &e), 0);
    assert_int_equal(w.n_events, 1);
    assert_int_equal(w.events[0].type, ETCD_EVENT_PUT);
    assert_string_equal(w.events[0].kv.key, "/svc/leader");
    assert_string_equal(w.events[0].kv.value, "n1");
    assert_true(w.events[0].kv.lease == LEASE_BIG);
    assert_false(w.events[0].has_prev_kv);
    etcd_watch_response_done(&w);

    assert_int_equal(etcd_parse_watch_line(lines[2], lens[2], &w, &e), 0);
    assert_int_equal(w.events[0].type, ETCD_EVENT_PUT);
    assert_true(w.events[0].has_prev_kv);
    assert_string_equal(w.events[0].prev_kv.value, "n1");
    etcd_watch_response_done(&w);

    assert_int_equal(etcd_parse_watch_line(lines[3], lens[3], &w, &e), 0);
    assert_int_equal(w.events[0].type, ETCD_EVENT_DELETE);
    assert_int_equal(w.events[0].kv.mod_revision, 19);
    assert_int_equal(w.events[0].kv.value_len, 0);
    etcd_watch_response_done(&w);

    assert_int_equal(etcd_parse_watch_line(lines[4], lens[4], &w, &e), 0);
    assert_true(w.canceled);
    assert_int_equal(w.compact_revision, 18);
    assert_int_equal(w.revision, 0);
    etcd_watch_response_done(&w);
}

static void feed_in_chunks(size_t chunk)
{
    EtcdLineBuffer b = { 0 };
    char *copies[8] = { 0 };
    const char *lines[8];
    size_t lens[8];
    size_t n = 0;
    size_t total = strlen(watch_stream);
    for (size_t off = 0; off < total; off += chunk) {
        size_t len = total - off < chunk ? total - off : chunk;
        assert_int_equal(etcd_line_buffer_append(&b, watch_stream + off, len), 0);
        const char *line;
        size_t ll;
        while (etcd_line_buffer_next(&b, &line, &ll) > 0) {
            assert_true(n < ELEMENTSOF(copies));
            copies[n] = strndup(line, ll); /* the line is only borrowed */
            lines[n] = copies[n];
            lens[n] = ll;
            n++;
        }
    }
    assert_int_equal(etcd_line_buffer_pending(&b, NULL), 0);
    check_watch_lines(lines, lens, n);
    for (size_t i = 0; i < n; i++) {
        free(copies[i]);
    }
    etcd_line_buffer_done(&b);
}

static void test_watch_stream_chunks(void **state)
{
    static const size_t chunks[] = { 1, 2, 3, 7, 64, 100, 4096 };
    for (size_t i = 0; i < ELEMENTSOF(chunks); i++) {
        feed_in_chunks(chunks[i]);
    }
}

static void test_watch_partial_line(void **state)
{
    EtcdLineBuffer b = { 0 };
    const char *line, *rest;
    size_t len;
    assert_int_equal(etcd_line_buffer_append(&b, P("{\"result\":")), 0);
    assert_int_equal(etcd_line_buffer_next(&b, &line, &len), 0);
    assert_int_equal(etcd_line_buffer_pending(&b, &rest), 10);
    assert_memory_equal(rest, "{\"result\":", 10);
    assert_int_equal(etcd_line_buffer_append(&b, P("{}}\n{\"x\"")), 0);
    assert_int_equal(etcd_line_buffer_next(&b, &line, &len), 1);
    assert_string_equal(line, "{\"result\":{}}");
    assert_int_equal(etcd_line_buffer_next(&b, &line, &len), 0);
    assert_int_equal(etcd_line_buffer_pending(&b, &rest), 4);
    etcd_line_buffer_done(&b);
}

static void test_watch_error_lines(void **state)
{
    EtcdWatchResponse w = { 0 };
    EtcdError e = { 0 };
    assert_int_equal(etcd_parse_watch_line(
                         P("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
                           "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}"),
                         &w, &e),
                     -EHOSTUNREACH);
    assert_int_equal(e.kind, ETCD_ERROR_UNAVAILABLE);
    assert_string_equal(e.message, "etcdserver: no leader");
    assert_int_equal(
        etcd_parse_watch_line(P("{\"error\":{\"grpc_code\":16,\"message\":\"etcdserver: invalid "
                                "auth token\"}}"),
                              &w, &e),
        -EACCES);
    /* permission denied arrives as a created+canceled result */
    assert_int_equal(
        etcd_parse_watch_line(P("{\"result\":{\"header\":{},\"watch_id\":\"-1\",\"created\":true,"
                                "\"canceled\":true,\"cancel_reason\":\"rpc error: code = "
                                "PermissionDenied desc = etcdserver: permission denied\"}}"),
                              &w, &e),
        0);
    assert_true(w.canceled);
    assert_non_null(strstr(w.cancel_reason, "permission denied"));
    etcd_watch_response_done(&w);
    /* progress notification */
    assert_int_equal(
        etcd_parse_watch_line(
            P("{\"result\":{\"header\":{\"revision\":\"21\"},\"watch_id\":\"-1\"}}"), &w, &e),
        0);
    assert_int_equal(w.revision, 21);
    assert_false(w.created);
    etcd_watch_response_done(&w);
}

/* ---- malformed answers ---- */

typedef enum Parser {
    PARSE_RANGE,
    PARSE_PUT,
    PARSE_DELETE,
    PARSE_TXN,
    PARSE_GRANT,
    PARSE_KEEPALIVE,
    PARSE_TTL,
    PARSE_AUTH,
    PARSE_WATCH,
    PARSE_HEADER,
} Parser;

static int run_parser(Parser p, const char *body, size_t len, EtcdError *e)
{
    EtcdResult r = { 0 };
    EtcdLease l = { 0 };
    EtcdWatchResponse w = { 0 };
    int64_t ttl = 0, rev = 0;
    char *tok = NULL;
    int ret = -1;
    switch (p) {
    case PARSE_RANGE:
        ret = etcd_parse_range_response(body, len, &r, e);
        break;
    case PARSE_PUT:
        ret = etcd_parse_put_response(body, len, &r, e);
        break;
    case PARSE_DELETE:
        ret = etcd_parse_delete_response(body, len, &r, e);
        break;
    case PARSE_TXN:
        ret = etcd_parse_txn_response(body, len, &r, e);
        break;
    case PARSE_GRANT:
        ret = etcd_parse_lease_grant_response(body, len, &l, e);
        break;
    case PARSE_KEEPALIVE:
        ret = etcd_parse_lease_keepalive_response(body, len, &ttl, &rev, e);
        break;
    case PARSE_TTL:
        ret = etcd_parse_lease_ttl_response(body, len, &l, e);
        break;
    case PARSE_AUTH:
        ret = etcd_parse_auth_response(body, len, &tok, e);
        break;
    case PARSE_WATCH:
        ret = etcd_parse_watch_line(body, len, &w, e);
        break;
    case PARSE_HEADER:
        ret = etcd_parse_header_response(body, len, &rev, e);
        break;
    }
    etcd_result_done(&r);
    etcd_watch_response_done(&w);
    free(tok);
    return ret;
}

static void test_malformed(void **state)
{
    static const struct {
        Parser p;
        const char *body;
    } v[] = {
        { PARSE_RANGE, "" },
        { PARSE_RANGE, "{" },
        { PARSE_RANGE, "garbage" },
        { PARSE_RANGE, "<html></html>" },
        { PARSE_RANGE, "[]" },
        { PARSE_RANGE, "null" },
        { PARSE_RANGE, "\"str\"" },
        { PARSE_RANGE, "{} trailing" },
        { PARSE_RANGE, "{\"kvs\":\"x\"}" },
        { PARSE_RANGE, "{\"kvs\":[1]}" },
        { PARSE_RANGE, "{\"kvs\":[{\"key\":\"@@@@\"}]}" },
        { PARSE_RANGE, "{\"kvs\":[{\"key\":\"Zm9\"}]}" },
        { PARSE_RANGE, "{\"kvs\":[{\"key\":5}]}" },
        { PARSE_RANGE, "{\"kvs\":[{\"value\":[]}]}" },
        { PARSE_RANGE, "{\"kvs\":[{\"mod_revision\":\"12x\"}]}" },
        { PARSE_RANGE, "{\"count\":\"abc\"}" },
        { PARSE_RANGE, "{\"count\":\"\"}" },
        { PARSE_RANGE, "{\"count\":\" 1\"}" },
        { PARSE_RANGE, "{\"count\":\"99999999999999999999\"}" },
        { PARSE_RANGE, "{\"count\":1.5}" },
        { PARSE_RANGE, "{\"count\":true}" },
        { PARSE_RANGE, "{\"count\":\"1\\u00002\"}" },
        { PARSE_RANGE, "{\"header\":[]}" },
        { PARSE_RANGE, "{\"header\":{\"revision\":true}}" },
        { PARSE_RANGE, "{\"more\":\"yes\"}" },
        { PARSE_PUT, "{\"prev_kv\":[]}" },
        { PARSE_PUT, "{\"prev_kv\":{\"key\":\"!!!!\"}}" },
        { PARSE_DELETE, "{\"deleted\":{}}" },
        { PARSE_DELETE, "{\"prev_kvs\":{}}" },
        { PARSE_TXN, "{\"succeeded\":\"true\"}" },
        { PARSE_TXN, "{\"responses\":{}}" },
        { PARSE_TXN, "{\"responses\":[{}]}" },
        { PARSE_TXN, "{\"responses\":[1]}" },
        { PARSE_TXN, "{\"responses\":[{\"response_put\":[]}]}" },
        { PARSE_TXN, "{\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"A\"}]}}]}" },
        { PARSE_GRANT, "{}" },
        { PARSE_GRANT, "{\"ID\":\"5\"}" },
        { PARSE_GRANT, "{\"ID\":\"x\",\"TTL\":\"10\"}" },
        { PARSE_KEEPALIVE, "{}" },
        { PARSE_KEEPALIVE, "{\"result\":[]}" },
        { PARSE_KEEPALIVE, "{\"result\":{\"TTL\":\"x\"}}" },
        { PARSE_KEEPALIVE, "{\"result\":{\"TTL\":\"10\"}" },
        { PARSE_TTL, "{\"TTL\":{}}" },
        { PARSE_AUTH, "{}" },
        { PARSE_AUTH, "{\"token\":1}" },
        { PARSE_AUTH, "{\"token\":\"\"}" },
        { PARSE_WATCH, "{}" },
        { PARSE_WATCH, "{\"result\":1}" },
        { PARSE_WATCH, "{\"result\":{\"events\":{}}}" },
        { PARSE_WATCH, "{\"result\":{\"events\":[{}]}}" },
        { PARSE_WATCH, "{\"result\":{\"events\":[{\"type\":\"BOGUS\",\"kv\":{}}]}}" },
        { PARSE_WATCH, "{\"result\":{\"events\":[{\"kv\":{\"key\":\"%%%%\"}}]}}" },
        { PARSE_WATCH, "{\"result\":{\"events\":[{\"kv\":{},\"prev_kv\":{\"value\":\"a\"}}]}}" },
        { PARSE_WATCH, "{\"result\":{\"created\":1}}" },
        { PARSE_WATCH, "{\"result\":{\"cancel_reason\":5}}" },
        { PARSE_WATCH, "{\"result\":{\"header\":{\"revision\":\"1\"}" },
        { PARSE_HEADER, "{\"header\":5}" },
        { PARSE_HEADER, "nope" },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        EtcdError e = { 0 };
        int r = run_parser(v[i].p, v[i].body, strlen(v[i].body), &e);
        if (r != -EBADMSG || e.kind != ETCD_ERROR_BAD_RESPONSE) {
            fail_msg("case %zu (%s): r=%d kind=%s", i, v[i].body, r,
                     strna(etcd_error_kind_to_string(e.kind)));
        }
    }
}

/* Every strict prefix of a valid answer is BAD_RESPONSE. */
static void test_truncated(void **state)
{
    static const struct {
        Parser p;
        const char *body;
    } v[] = {
        { PARSE_RANGE, "{\"header\":{\"revision\":\"19\"},\"kvs\":[{\"key\":\"L2hhL2E=\","
                       "\"create_revision\":\"4\",\"value\":\"di9oYS9h\"}],\"count\":\"1\"}" },
        { PARSE_TXN, "{\"header\":{\"revision\":\"14\"},\"succeeded\":true,\"responses\":[{"
                     "\"response_put\":{\"header\":{\"revision\":\"14\"}}}]}" },
        { PARSE_KEEPALIVE, "{\"result\":{\"header\":{},\"ID\":\"12\",\"TTL\":\"10\"}}" },
        { PARSE_WATCH, "{\"result\":{\"header\":{\"revision\":\"17\"},\"events\":[{\"kv\":{"
                       "\"key\":\"L3N2Yy9sZWFkZXI=\",\"value\":\"bjE=\"}}]}}" },
    };
    for (size_t i = 0; i < ELEMENTSOF(v); i++) {
        size_t n = strlen(v[i].body);
        EtcdError e = { 0 };
        assert_int_equal(run_parser(v[i].p, v[i].body, n, &e), 0);
        for (size_t k = 0; k < n; k++) {
            e = (EtcdError){ 0 };
            int r = run_parser(v[i].p, v[i].body, k, &e);
            if (r != -EBADMSG || e.kind != ETCD_ERROR_BAD_RESPONSE) {
                fail_msg("case %zu truncated at %zu: r=%d", i, k, r);
            }
        }
    }
}

/* ---- client construction (no I/O) ---- */

static void test_client_config(void **state)
{
    EtcdClient *c = NULL;
    EtcdError e = { 0 };
    const char *ok[] = { "127.0.0.1:2379", "https://10.0.0.1:2379/", "etcd1:2379" };
    EtcdClientConfig cfg = { .endpoints = ok, .n_endpoints = ELEMENTSOF(ok) };
    assert_int_equal(etcd_client_new(&cfg, &c, &e), 0);
    assert_string_equal(etcd_client_get_endpoint(c), "127.0.0.1:2379");
    char *url = NULL;
    assert_int_equal(etcd_client_endpoint_url(c, 1, "/v3/kv/range", &url), 0);
    assert_string_equal(url, "https://10.0.0.1:2379/v3/kv/range");
    free(url);
    c = etcd_client_free(c);
    assert_null(c);
    assert_null(etcd_client_free(NULL));

    static const char *bad[] = { "127.0.0.1", "ftp://h:1", "", "h:", "user@h:1" };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        const char *one[] = { bad[i] };
        cfg = (EtcdClientConfig){ .endpoints = one, .n_endpoints = 1, .password = "secretpw" };
        e = (EtcdError){ 0 };
        if (etcd_client_new(&cfg, &c, &e) != -EINVAL) {
            fail_msg("endpoint \"%s\" accepted", bad[i]);
        }
        assert_int_equal(e.kind, ETCD_ERROR_INVALID);
        assert_null(strstr(e.message, "secretpw"));
    }
    cfg = (EtcdClientConfig){ .endpoints = ok, .n_endpoints = 0 };
    assert_int_equal(etcd_client_new(&cfg, &c, &e), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_vectors),     cmocka_unit_test(test_base64_binary_roundtrip),
        cmocka_unit_test(test_base64_invalid),     cmocka_unit_test(test_prefix_range_end),
        cmocka_unit_test(test_encode_range),       cmocka_unit_test(test_encode_put_delete),
        cmocka_unit_test(test_encode_txn),         cmocka_unit_test(test_encode_watch),
        cmocka_unit_test(test_parse_range),        cmocka_unit_test(test_parse_put_delete),
        cmocka_unit_test(test_parse_txn),          cmocka_unit_test(test_parse_lease),
        cmocka_unit_test(test_parse_auth),         cmocka_unit_test(test_error_kinds),
        cmocka_unit_test(test_error_kind_tables),  cmocka_unit_test(test_watch_stream_chunks),
        cmocka_unit_test(test_watch_partial_line), cmocka_unit_test(test_watch_error_lines),
        cmocka_unit_test(test_malformed),          cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_client_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
