/* Fuzz target: the etcd v3 JSON gateway's response parsers
 * (lib/etcd-json.c). Each input is one HTTP body, given to every parser:
 * range, put, delete, txn, lease grant/keepalive/time-to-live, header,
 * auth, a watch line, and the non-200 classifier (with a status picked from
 * the input's length). Also checks what the parsers promise: every kv's key
 * and value are followed by a NUL. The base64 decoder and the prefix
 * range_end get the raw input too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "fuzz.h"

typedef int (*ResultParser)(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr);

static const ResultParser result_parsers[] = {
    etcd_parse_range_response,
    etcd_parse_put_response,
    etcd_parse_delete_response,
    etcd_parse_txn_response,
};

static const long error_statuses[] = { 200, 400, 401, 403, 404, 412, 500, 503 };

static void check_kvs(const EtcdKeyValue *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((kvs[i].key && kvs[i].key[kvs[i].key_len] != '\0') ||
            (kvs[i].value && kvs[i].value[kvs[i].value_len] != '\0')) {
            abort();
        }
    }
}

static void check_result(const EtcdResult *r)
{
    check_kvs(r->kvs, r->n_kvs);
    for (size_t i = 0; i < r->n_responses; i++) {
        check_result(&r->responses[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_INPUT_MAX);
    const char *body = (const char *)data;
    EtcdError err;

    for (size_t i = 0; i < sizeof(result_parsers) / sizeof(result_parsers[0]); i++) {
        EtcdResult res = { 0 };
        if (result_parsers[i](body, size, &res, &err) == 0) {
            check_result(&res);
        }
        etcd_result_done(&res);
    }

    EtcdLease lease = { 0 };
    (void)etcd_parse_lease_grant_response(body, size, &lease, &err);
    (void)etcd_parse_lease_ttl_response(body, size, &lease, &err);
    int64_t ttl = 0, revision = 0;
    (void)etcd_parse_lease_keepalive_response(body, size, &ttl, &revision, &err);
    (void)etcd_parse_header_response(body, size, &revision, &err);

    char *token = NULL;
    if (etcd_parse_auth_response(body, size, &token, &err) == 0) {
        free(token);
    }

    EtcdWatchResponse w = { 0 };
    if (etcd_parse_watch_line(body, size, &w, &err) == 0) {
        for (size_t i = 0; i < w.n_events; i++) {
            check_kvs(&w.events[i].kv, 1);
            if (w.events[i].has_prev_kv) {
                check_kvs(&w.events[i].prev_kv, 1);
            }
        }
    }
    etcd_watch_response_done(&w);

    long status = error_statuses[size % (sizeof(error_statuses) / sizeof(error_statuses[0]))];
    (void)etcd_parse_error_response(status, body, size, &err);
    (void)etcd_error_is_retryable(&err);

    char *decoded = NULL;
    size_t decoded_len = 0;
    if (etcd_base64_decode(body, size, &decoded, &decoded_len) == 0) {
        /* What the encoder makes of the bytes decodes to the same bytes. */
        char *again = NULL, *twice = NULL;
        size_t twice_len = 0;
        if (etcd_base64_encode(decoded, decoded_len, &again) == 0) {
            if (etcd_base64_decode(again, strlen(again), &twice, &twice_len) != 0 ||
                twice_len != decoded_len || memcmp(twice, decoded, decoded_len) != 0) {
                abort();
            }
        }
        free(twice);
        free(again);
        free(decoded);
    }
    char *end = NULL;
    size_t end_len = 0;
    if (etcd_prefix_range_end(body, size, &end, &end_len) == 0) {
        free(end);
    }
    return 0;
}
