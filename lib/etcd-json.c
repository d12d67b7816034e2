/* The wire format of etcd's v3 JSON gateway, with no I/O: base64, prefix
 * range ends, request bodies, response and error parsing, and the watch
 * stream's line buffer. Everything a server sends is checked: a wrong type or
 * bad base64 is BAD_RESPONSE, never a crash. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "etcd-internal.h"
#include "etcd.h"

static void result_donep(EtcdResult *r)
{
    etcd_result_done(r);
}

static void watch_response_donep(EtcdWatchResponse *r)
{
    etcd_watch_response_done(r);
}

/* ---- base64 ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int etcd_base64_encode(const void *data, size_t len, char **ret)
{
    const unsigned char *in = data;
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3) {
        return -ENOMEM;
    }
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out) {
        return -ENOMEM;
    }
    char *p = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = b64_alphabet[v >> 18 & 63];
        *p++ = b64_alphabet[v >> 12 & 63];
        *p++ = b64_alphabet[v >> 6 & 63];
        *p++ = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = b64_alphabet[v >> 18 & 63];
        *p++ = b64_alphabet[v >> 12 & 63];
        *p++ = '=';
        *p++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = b64_alphabet[v >> 18 & 63];
        *p++ = b64_alphabet[v >> 12 & 63];
        *p++ = b64_alphabet[v >> 6 & 63];
        *p++ = '=';
    }
    *p = '\0';
    *ret = out;
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int etcd_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len)
{
    if (len % 4 != 0) {
        return -EBADMSG;
    }
    size_t pad = 0;
    if (len > 0 && s[len - 1] == '=') {
        pad++;
        if (s[len - 2] == '=') {
            pad++;
        }
    }
    size_t out_len = len / 4 * 3 - pad;
    _cleanup_free_ char *out = malloc(out_len + 1);
    if (!out) {
        return -ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        for (size_t j = 0; j < 4; j++) {
            if (last && s[i + j] == '=' && j >= 4 - pad) {
                v[j] = 0;
                continue;
            }
            v[j] = b64_value(s[i + j]);
            if (v[j] < 0) {
                return -EBADMSG;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t n = last ? 3 - pad : 3;
        if (last && pad > 0 && (w & (pad == 1 ? 0xffu : 0xffffu)) != 0) {
            return -EBADMSG; /* non-canonical trailing bits */
        }
        for (size_t j = 0; j < n; j++) {
            out[o++] = (char)(w >> (16 - 8 * j) & 0xff);
        }
    }
    out[o] = '\0';
    *ret = TAKE_PTR(out);
    *ret_len = o;
    return 0;
}

int etcd_prefix_range_end(const void *prefix, size_t len, char **ret, size_t *ret_len)
{
    const unsigned char *p = prefix;
    size_t n = len;
    while (n > 0 && p[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        char *out = calloc(1, 2);
        if (!out) {
            return -ENOMEM;
        }
        *ret = out;
        *ret_len = 1;
        return 0;
    }
    char *out = malloc(n + 1);
    if (!out) {
        return -ENOMEM;
    }
    memcpy(out, p, n);
    out[n - 1] = (char)(p[n - 1] + 1);
    out[n] = '\0';
    *ret = out;
    *ret_len = n;
    return 0;
}

/* ---- request encoding ---- */

static int json_set_b64(json_t *o, const char *field, const void *data, size_t len)
{
    _cleanup_free_ char *b = NULL;
    int r = etcd_base64_encode(data, len, &b);
    if (r < 0) {
        return r;
    }
    return json_object_set_new(o, field, json_string(b)) < 0 ? -ENOMEM : 0;
}

/* int64 as a JSON string, the way the gateway writes them. */
static int json_set_int64(json_t *o, const char *field, int64_t v)
{
    char buf[32];
    (void)snprintf(buf, sizeof(buf), "%" PRId64, v);
    return json_object_set_new(o, field, json_string(buf)) < 0 ? -ENOMEM : 0;
}

static int json_set_true(json_t *o, const char *field)
{
    return json_object_set_new(o, field, json_true()) < 0 ? -ENOMEM : 0;
}

static int json_set_key_range(json_t *o, const char *key, bool prefix)
{
    if (!key) {
        return -EINVAL;
    }
    size_t len = strlen(key);
    int r = json_set_b64(o, "key", len > 0 ? key : "\0", len > 0 ? len : 1);
    if (r < 0) {
        return r;
    }
    if (prefix) {
        _cleanup_free_ char *end = NULL;
        size_t end_len;
        r = etcd_prefix_range_end(key, len, &end, &end_len);
        if (r < 0) {
            return r;
        }
        r = json_set_b64(o, "range_end", end, end_len);
    }
    return r;
}

static int json_dump_to(json_t *o, char **ret)
{
    char *s = json_dumps(o, JSON_COMPACT);
    if (!s) {
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

static int build_range(const char *key, const EtcdRangeOptions *opts, json_t **ret)
{
    static const EtcdRangeOptions none = { 0 };
    _cleanup_(json_decrefp) json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    if (!opts) {
        opts = &none;
    }
    int r = json_set_key_range(o, key, opts->prefix);
    if (r >= 0 && opts->revision > 0) {
        r = json_set_int64(o, "revision", opts->revision);
    }
    if (r >= 0 && opts->limit > 0) {
        r = json_set_int64(o, "limit", opts->limit);
    }
    if (r >= 0 && opts->keys_only) {
        r = json_set_true(o, "keys_only");
    }
    if (r >= 0 && opts->count_only) {
        r = json_set_true(o, "count_only");
    }
    if (r >= 0 && opts->serializable) {
        r = json_set_true(o, "serializable");
    }
    if (r < 0) {
        return r;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

static int build_put(const char *key, const void *value, size_t value_len,
                     const EtcdPutOptions *opts, json_t **ret)
{
    _cleanup_(json_decrefp) json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    if (!key || !*key || (!value && value_len > 0)) {
        return -EINVAL;
    }
    int r = json_set_key_range(o, key, false);
    if (r >= 0) {
        r = json_set_b64(o, "value", value ? value : "", value_len);
    }
    if (r >= 0 && opts && opts->lease != 0) {
        r = json_set_int64(o, "lease", opts->lease);
    }
    if (r >= 0 && opts && opts->prev_kv) {
        r = json_set_true(o, "prev_kv");
    }
    if (r < 0) {
        return r;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

static int build_delete(const char *key, bool prefix, bool prev_kv, json_t **ret)
{
    _cleanup_(json_decrefp) json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    if (!key || (!*key && !prefix)) {
        return -EINVAL;
    }
    int r = json_set_key_range(o, key, prefix);
    if (r >= 0 && prev_kv) {
        r = json_set_true(o, "prev_kv");
    }
    if (r < 0) {
        return r;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

int etcd_json_range_request(const char *key, const EtcdRangeOptions *opts, char **ret)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = build_range(key, opts, &o);
    return r < 0 ? r : json_dump_to(o, ret);
}

int etcd_json_put_request(const char *key, const void *value, size_t value_len,
                          const EtcdPutOptions *opts, char **ret)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = build_put(key, value, value_len, opts, &o);
    return r < 0 ? r : json_dump_to(o, ret);
}

int etcd_json_delete_request(const char *key, bool prefix, bool prev_kv, char **ret)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = build_delete(key, prefix, prev_kv, &o);
    return r < 0 ? r : json_dump_to(o, ret);
}

static int build_compare(const EtcdCompare *cmp, json_t **ret)
{
    const char *target = etcd_compare_target_to_string(cmp->target);
    const char *result = etcd_compare_result_to_string(cmp->result);
    if (!target || !result || !cmp->key || !*cmp->key) {
        return -EINVAL;
    }
    _cleanup_(json_decrefp) json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    int r = json_set_key_range(o, cmp->key, false);
    if (r >= 0) {
        r = json_object_set_new(o, "result", json_string(result)) < 0 ? -ENOMEM : 0;
    }
    if (r >= 0) {
        r = json_object_set_new(o, "target", json_string(target)) < 0 ? -ENOMEM : 0;
    }
    if (r >= 0) {
        switch (cmp->target) {
        case ETCD_COMPARE_VERSION:
            r = json_set_int64(o, "version", cmp->number);
            break;
        case ETCD_COMPARE_CREATE:
            r = json_set_int64(o, "create_revision", cmp->number);
            break;
        case ETCD_COMPARE_MOD:
            r = json_set_int64(o, "mod_revision", cmp->number);
            break;
        case ETCD_COMPARE_LEASE:
            r = json_set_int64(o, "lease", cmp->number);
            break;
        case ETCD_COMPARE_VALUE:
            if (!cmp->value && cmp->value_len > 0) {
                return -EINVAL;
            }
            r = json_set_b64(o, "value", cmp->value ? cmp->value : "", cmp->value_len);
            break;
        default:
            return -EINVAL;
        }
    }
    if (r < 0) {
        return r;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

static int build_op(const EtcdOp *op, json_t **ret)
{
    _cleanup_(json_decrefp) json_t *inner = NULL;
    const char *field;
    int r;
    switch (op->type) {
    case ETCD_OP_RANGE: {
        EtcdRangeOptions ro = { .prefix = op->prefix,
                                .keys_only = op->keys_only,
                                .limit = op->limit };
        r = build_range(op->key, &ro, &inner);
        field = "request_range";
        break;
    }
    case ETCD_OP_PUT: {
        EtcdPutOptions po = { .lease = op->lease, .prev_kv = op->prev_kv };
        r = build_put(op->key, op->value, op->value_len, &po, &inner);
        field = "request_put";
        break;
    }
    case ETCD_OP_DELETE:
        r = build_delete(op->key, op->prefix, op->prev_kv, &inner);
        field = "request_delete_range";
        break;
    default:
        return -EINVAL;
    }
    if (r < 0) {
        return r;
    }
    json_t *o = json_pack("{s:O}", field, inner);
    if (!o) {
        return -ENOMEM;
    }
    *ret = o;
    return 0;
}

static int build_op_list(const EtcdOp *ops, size_t n, json_t **ret)
{
    _cleanup_(json_decrefp) json_t *a = json_array();
    if (!a) {
        return -ENOMEM;
    }
    if (n > 0 && !ops) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *op = NULL;
        int r = build_op(&ops[i], &op);
        if (r < 0) {
            return r;
        }
        if (json_array_append_new(a, op) < 0) {
            return -ENOMEM;
        }
    }
    *ret = TAKE_PTR(a);
    return 0;
}

int etcd_json_txn_request(const EtcdTxn *txn, char **ret)
{
    if (!txn || (txn->n_compares > 0 && !txn->compares)) {
        return -EINVAL;
    }
    _cleanup_(json_decrefp) json_t *o = json_object();
    _cleanup_(json_decrefp) json_t *cmps = json_array();
    _cleanup_(json_decrefp) json_t *succ = NULL;
    _cleanup_(json_decrefp) json_t *fail = NULL;
    if (!o || !cmps) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < txn->n_compares; i++) {
        json_t *c = NULL;
        int r = build_compare(&txn->compares[i], &c);
        if (r < 0) {
            return r;
        }
        if (json_array_append_new(cmps, c) < 0) {
            return -ENOMEM;
        }
    }
    int r = build_op_list(txn->success, txn->n_success, &succ);
    if (r < 0) {
        return r;
    }
    r = build_op_list(txn->failure, txn->n_failure, &fail);
    if (r < 0) {
        return r;
    }
    if (json_object_set(o, "compare", cmps) < 0 || json_object_set(o, "success", succ) < 0 ||
        json_object_set(o, "failure", fail) < 0) {
        return -ENOMEM;
    }
    return json_dump_to(o, ret);
}

int etcd_json_watch_request(const EtcdWatchOptions *opts, int64_t start_revision, char **ret)
{
    if (!opts || !opts->key) {
        return -EINVAL;
    }
    _cleanup_(json_decrefp) json_t *cr = json_object();
    if (!cr) {
        return -ENOMEM;
    }
    int r = json_set_key_range(cr, opts->key, opts->prefix);
    if (r >= 0 && start_revision > 0) {
        r = json_set_int64(cr, "start_revision", start_revision);
    }
    if (r >= 0 && opts->prev_kv) {
        r = json_set_true(cr, "prev_kv");
    }
    if (r < 0) {
        return r;
    }
    _cleanup_(json_decrefp) json_t *o = json_pack("{s:O}", "create_request", cr);
    if (!o) {
        return -ENOMEM;
    }
    return json_dump_to(o, ret);
}

/* ---- response parsing ---- */

#define BAD(e, ...) etcd_error_set((e), ETCD_ERROR_BAD_RESPONSE, 0, 200, __VA_ARGS__)

int etcd_json_parse_object(const char *body, size_t len, json_t **ret, EtcdError *reterr)
{
    json_error_t jerr;
    json_t *o = json_loadb(body ? body : "", body ? len : 0, 0, &jerr);
    if (!o) {
        return BAD(reterr, "invalid JSON at position %d: %s", jerr.position, jerr.text);
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return BAD(reterr, "answer is not a JSON object");
    }
    *ret = o;
    return 0;
}

/* An int64 field, sent as a JSON string (or a plain integer). Missing or
 * null: 0. Parsed with strtoll so ids above 2^53 keep every digit. */
static int get_int64(const json_t *o, const char *field, int64_t *ret, EtcdError *e)
{
    const json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) {
        *ret = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        *ret = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v)) {
        return BAD(e, "field \"%s\" is not an integer string", field);
    }
    const char *s = json_string_value(v);
    if (json_string_length(v) != strlen(s) || !(*s == '-' || (*s >= '0' && *s <= '9'))) {
        return BAD(e, "field \"%s\" is not an integer string", field);
    }
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s) {
        return BAD(e, "field \"%s\" is not an int64: \"%.32s\"", field, s);
    }
    *ret = (int64_t)n;
    return 0;
}

static int get_bool(const json_t *o, const char *field, bool *ret, EtcdError *e)
{
    const json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) {
        *ret = false;
        return 0;
    }
    if (!json_is_boolean(v)) {
        return BAD(e, "field \"%s\" is not a boolean", field);
    }
    *ret = json_is_true(v);
    return 0;
}

/* An optional field of one JSON type: *ret NULL when absent or null. */
static int get_typed(const json_t *o, const char *field, json_type type, const char *what,
                     json_t **ret, EtcdError *e)
{
    json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) {
        *ret = NULL;
        return 0;
    }
    if (json_typeof(v) != type) {
        return BAD(e, "field \"%s\" is not %s", field, what);
    }
    *ret = v;
    return 0;
}

static int get_object(const json_t *o, const char *field, json_t **ret, EtcdError *e)
{
    return get_typed(o, field, JSON_OBJECT, "an object", ret, e);
}

static int get_array(const json_t *o, const char *field, json_t **ret, EtcdError *e)
{
    return get_typed(o, field, JSON_ARRAY, "an array", ret, e);
}

static int get_bytes(const json_t *o, const char *field, char **ret, size_t *ret_len, EtcdError *e)
{
    const json_t *v = json_object_get(o, field);
    const char *s = "";
    size_t len = 0;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            return BAD(e, "field \"%s\" is not a string", field);
        }
        s = json_string_value(v);
        len = json_string_length(v);
    }
    int r = etcd_base64_decode(s, len, ret, ret_len);
    if (r == -EBADMSG) {
        return BAD(e, "field \"%s\" is not valid base64", field);
    }
    if (r < 0) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    return 0;
}

static int header_revision(const json_t *o, int64_t *ret, EtcdError *e)
{
    json_t *h = NULL;
    int r = get_object(o, "header", &h, e);
    if (r < 0) {
        return r;
    }
    if (!h) {
        *ret = 0;
        return 0;
    }
    return get_int64(h, "revision", ret, e);
}

static int parse_kv(const json_t *o, EtcdKeyValue *ret, EtcdError *e)
{
    if (!json_is_object(o)) {
        return BAD(e, "key-value is not an object");
    }
    _cleanup_(etcd_key_value_done) EtcdKeyValue kv = { 0 };
    int r = get_bytes(o, "key", &kv.key, &kv.key_len, e);
    if (r >= 0) {
        r = get_bytes(o, "value", &kv.value, &kv.value_len, e);
    }
    if (r >= 0) {
        r = get_int64(o, "create_revision", &kv.create_revision, e);
    }
    if (r >= 0) {
        r = get_int64(o, "mod_revision", &kv.mod_revision, e);
    }
    if (r >= 0) {
        r = get_int64(o, "version", &kv.version, e);
    }
    if (r >= 0) {
        r = get_int64(o, "lease", &kv.lease, e);
    }
    if (r < 0) {
        return r;
    }
    *ret = kv;
    kv = (EtcdKeyValue){ 0 };
    return 0;
}

static int parse_kv_array(const json_t *a, EtcdKeyValue **ret, size_t *ret_n, EtcdError *e)
{
    size_t n = a ? json_array_size(a) : 0;
    if (n == 0) {
        *ret = NULL;
        *ret_n = 0;
        return 0;
    }
    EtcdKeyValue *kvs = calloc(n, sizeof(*kvs));
    if (!kvs) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int r = parse_kv(json_array_get(a, i), &kvs[i], e);
        if (r < 0) {
            for (size_t j = 0; j < i; j++) {
                etcd_key_value_done(&kvs[j]);
            }
            free(kvs);
            return r;
        }
    }
    *ret = kvs;
    *ret_n = n;
    return 0;
}

static int parse_range_object(const json_t *o, EtcdResult *ret, EtcdError *e)
{
    _cleanup_(result_donep) EtcdResult res = { .type = ETCD_OP_RANGE };
    json_t *kvs = NULL;
    int r = header_revision(o, &res.revision, e);
    if (r >= 0) {
        r = get_array(o, "kvs", &kvs, e);
    }
    if (r >= 0) {
        r = parse_kv_array(kvs, &res.kvs, &res.n_kvs, e);
    }
    if (r >= 0) {
        r = get_int64(o, "count", &res.count, e);
    }
    if (r >= 0) {
        r = get_bool(o, "more", &res.more, e);
    }
    if (r < 0) {
        return r;
    }
    *ret = res;
    res = (EtcdResult){ 0 };
    return 0;
}

static int parse_put_object(const json_t *o, EtcdResult *ret, EtcdError *e)
{
    _cleanup_(result_donep) EtcdResult res = { .type = ETCD_OP_PUT };
    json_t *prev = NULL;
    int r = header_revision(o, &res.revision, e);
    if (r >= 0) {
        r = get_object(o, "prev_kv", &prev, e);
    }
    if (r >= 0 && prev) {
        res.kvs = calloc(1, sizeof(*res.kvs));
        if (!res.kvs) {
            return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
        r = parse_kv(prev, &res.kvs[0], e);
        if (r >= 0) {
            res.n_kvs = 1;
        }
    }
    if (r < 0) {
        return r;
    }
    *ret = res;
    res = (EtcdResult){ 0 };
    return 0;
}

static int parse_delete_object(const json_t *o, EtcdResult *ret, EtcdError *e)
{
    _cleanup_(result_donep) EtcdResult res = { .type = ETCD_OP_DELETE };
    json_t *prev = NULL;
    int r = header_revision(o, &res.revision, e);
    if (r >= 0) {
        r = get_int64(o, "deleted", &res.count, e);
    }
    if (r >= 0) {
        r = get_array(o, "prev_kvs", &prev, e);
    }
    if (r >= 0) {
        r = parse_kv_array(prev, &res.kvs, &res.n_kvs, e);
    }
    if (r < 0) {
        return r;
    }
    *ret = res;
    res = (EtcdResult){ 0 };
    return 0;
}

typedef int (*ObjectParser)(const json_t *o, EtcdResult *ret, EtcdError *e);

static int parse_body(const char *body, size_t len, ObjectParser p, EtcdResult *ret, EtcdError *e)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = etcd_json_parse_object(body, len, &o, e);
    return r < 0 ? r : p(o, ret, e);
}

int etcd_parse_range_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr)
{
    return parse_body(body, len, parse_range_object, ret, reterr);
}

int etcd_parse_put_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr)
{
    return parse_body(body, len, parse_put_object, ret, reterr);
}

int etcd_parse_delete_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr)
{
    return parse_body(body, len, parse_delete_object, ret, reterr);
}

static int parse_txn_object(const json_t *o, EtcdResult *ret, EtcdError *e)
{
    static const struct {
        const char *field;
        ObjectParser parse;
    } kinds[] = {
        { "response_range", parse_range_object },
        { "response_put", parse_put_object },
        { "response_delete_range", parse_delete_object },
    };
    _cleanup_(result_donep) EtcdResult res = { .type = ETCD_OP_RANGE };
    json_t *responses = NULL;
    int r = header_revision(o, &res.revision, e);
    if (r >= 0) {
        r = get_bool(o, "succeeded", &res.succeeded, e);
    }
    if (r >= 0) {
        r = get_array(o, "responses", &responses, e);
    }
    if (r < 0) {
        return r;
    }
    size_t n = responses ? json_array_size(responses) : 0;
    if (n > 0) {
        res.responses = calloc(n, sizeof(*res.responses));
        if (!res.responses) {
            return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(responses, i);
        if (!json_is_object(item)) {
            return BAD(e, "txn response %zu is not an object", i);
        }
        bool found = false;
        for (size_t k = 0; k < ELEMENTSOF(kinds) && !found; k++) {
            json_t *inner = NULL;
            r = get_object(item, kinds[k].field, &inner, e);
            if (r < 0) {
                return r;
            }
            if (inner) {
                r = kinds[k].parse(inner, &res.responses[i], e);
                if (r < 0) {
                    return r;
                }
                res.n_responses = i + 1;
                found = true;
            }
        }
        if (!found) {
            return BAD(e, "txn response %zu has no known response type", i);
        }
    }
    *ret = res;
    res = (EtcdResult){ 0 };
    return 0;
}

int etcd_parse_txn_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr)
{
    return parse_body(body, len, parse_txn_object, ret, reterr);
}

int etcd_parse_header_response(const char *body, size_t len, int64_t *ret_revision,
                               EtcdError *reterr)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int64_t rev;
    int r = etcd_json_parse_object(body, len, &o, reterr);
    if (r >= 0) {
        r = header_revision(o, &rev, reterr);
    }
    if (r < 0) {
        return r;
    }
    if (ret_revision) {
        *ret_revision = rev;
    }
    return 0;
}

int etcd_parse_lease_grant_response(const char *body, size_t len, EtcdLease *ret, EtcdError *reterr)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    EtcdLease l = { 0 };
    int r = etcd_json_parse_object(body, len, &o, reterr);
    if (r >= 0) {
        r = header_revision(o, &l.revision, reterr);
    }
    if (r >= 0) {
        r = get_int64(o, "ID", &l.id, reterr);
    }
    if (r >= 0) {
        r = get_int64(o, "TTL", &l.ttl, reterr);
    }
    if (r < 0) {
        return r;
    }
    /* The gateway puts grant errors in an "error" string with 200 in some
     * versions; an answer without an ID is unusable either way. */
    const json_t *err = json_object_get(o, "error");
    if (json_is_string(err) && json_string_length(err) > 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 200, "lease grant failed: %s",
                              json_string_value(err));
    }
    if (l.id == 0 || l.ttl <= 0) {
        return BAD(reterr, "lease grant answer without ID or TTL");
    }
    l.granted_ttl = l.ttl;
    *ret = l;
    return 0;
}

int etcd_parse_lease_keepalive_response(const char *body, size_t len, int64_t *ret_ttl,
                                        int64_t *ret_revision, EtcdError *reterr)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    json_t *res = NULL;
    int64_t ttl, rev;
    int r = etcd_json_parse_object(body, len, &o, reterr);
    if (r < 0) {
        return r;
    }
    json_t *err = json_object_get(o, "error");
    if (err) {
        return etcd_parse_error_response(200, body, len, reterr);
    }
    r = get_object(o, "result", &res, reterr);
    if (r < 0) {
        return r;
    }
    if (!res) {
        return BAD(reterr, "keepalive answer without \"result\"");
    }
    r = get_int64(res, "TTL", &ttl, reterr);
    if (r >= 0) {
        r = header_revision(res, &rev, reterr);
    }
    if (r < 0) {
        return r;
    }
    if (ttl <= 0) {
        return etcd_error_set(reterr, ETCD_ERROR_LEASE_NOT_FOUND, 5, 200,
                              "lease not found (keepalive answered without TTL)");
    }
    *ret_ttl = ttl;
    if (ret_revision) {
        *ret_revision = rev;
    }
    return 0;
}

int etcd_parse_lease_ttl_response(const char *body, size_t len, EtcdLease *ret, EtcdError *reterr)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    EtcdLease l = { 0 };
    int r = etcd_json_parse_object(body, len, &o, reterr);
    if (r >= 0) {
        r = header_revision(o, &l.revision, reterr);
    }
    if (r >= 0) {
        r = get_int64(o, "ID", &l.id, reterr);
    }
    if (r >= 0) {
        r = get_int64(o, "TTL", &l.ttl, reterr);
    }
    if (r >= 0) {
        r = get_int64(o, "grantedTTL", &l.granted_ttl, reterr);
    }
    if (r < 0) {
        return r;
    }
    if (l.ttl < 0) {
        return etcd_error_set(reterr, ETCD_ERROR_LEASE_NOT_FOUND, 5, 200, "lease not found");
    }
    *ret = l;
    return 0;
}

int etcd_parse_auth_response(const char *body, size_t len, char **ret_token, EtcdError *reterr)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = etcd_json_parse_object(body, len, &o, reterr);
    if (r < 0) {
        return r;
    }
    const json_t *t = json_object_get(o, "token");
    if (!json_is_string(t) || json_string_length(t) == 0 ||
        json_string_length(t) != strlen(json_string_value(t))) {
        return BAD(reterr, "authenticate answer without a token");
    }
    for (const char *p = json_string_value(t); *p; p++) {
        if (*p == '\r' || *p == '\n') {
            return BAD(reterr, "token contains a line break");
        }
    }
    char *tok = strdup(json_string_value(t));
    if (!tok) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    *ret_token = tok;
    return 0;
}

static int parse_event(const json_t *o, EtcdEvent *ret, EtcdError *e)
{
    if (!json_is_object(o)) {
        return BAD(e, "watch event is not an object");
    }
    EtcdEvent ev = { 0 };
    const json_t *type = json_object_get(o, "type");
    if (!type || json_is_null(type)) {
        ev.type = ETCD_EVENT_PUT;
    } else if (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0) {
        ev.type = ETCD_EVENT_PUT;
    } else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0) {
        ev.type = ETCD_EVENT_DELETE;
    } else if (json_is_integer(type) && json_integer_value(type) >= 0 &&
               json_integer_value(type) < _ETCD_EVENT_TYPE_MAX) {
        ev.type = (EtcdEventType)json_integer_value(type);
    } else {
        return BAD(e, "unknown watch event type");
    }
    json_t *kv = NULL, *prev = NULL;
    int r = get_object(o, "kv", &kv, e);
    if (r >= 0) {
        r = get_object(o, "prev_kv", &prev, e);
    }
    if (r < 0) {
        return r;
    }
    if (!kv) {
        return BAD(e, "watch event without kv");
    }
    r = parse_kv(kv, &ev.kv, e);
    if (r < 0) {
        return r;
    }
    if (prev) {
        r = parse_kv(prev, &ev.prev_kv, e);
        if (r < 0) {
            etcd_key_value_done(&ev.kv);
            return r;
        }
        ev.has_prev_kv = true;
    }
    *ret = ev;
    return 0;
}

int etcd_parse_watch_line(const char *line, size_t len, EtcdWatchResponse *ret, EtcdError *reterr)
{
    _cleanup_(json_decrefp) json_t *o = NULL;
    int r = etcd_json_parse_object(line, len, &o, reterr);
    if (r < 0) {
        return r;
    }
    if (json_object_get(o, "error")) {
        return etcd_parse_error_response(200, line, len, reterr);
    }
    json_t *res = NULL, *events = NULL;
    r = get_object(o, "result", &res, reterr);
    if (r < 0) {
        return r;
    }
    if (!res) {
        return BAD(reterr, "watch message without \"result\"");
    }
    _cleanup_(watch_response_donep) EtcdWatchResponse w = { 0 };
    r = header_revision(res, &w.revision, reterr);
    if (r >= 0) {
        r = get_bool(res, "created", &w.created, reterr);
    }
    if (r >= 0) {
        r = get_bool(res, "canceled", &w.canceled, reterr);
    }
    if (r >= 0) {
        r = get_int64(res, "compact_revision", &w.compact_revision, reterr);
    }
    if (r >= 0) {
        r = get_array(res, "events", &events, reterr);
    }
    if (r < 0) {
        return r;
    }
    const json_t *reason = json_object_get(res, "cancel_reason");
    if (reason && !json_is_null(reason)) {
        if (!json_is_string(reason)) {
            return BAD(reterr, "field \"cancel_reason\" is not a string");
        }
        w.cancel_reason = strdup(json_string_value(reason));
        if (!w.cancel_reason) {
            return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
    }
    size_t n = events ? json_array_size(events) : 0;
    if (n > 0) {
        w.events = calloc(n, sizeof(*w.events));
        if (!w.events) {
            return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) {
        r = parse_event(json_array_get(events, i), &w.events[i], reterr);
        if (r < 0) {
            return r;
        }
        w.n_events = i + 1;
    }
    *ret = w;
    w = (EtcdWatchResponse){ 0 };
    return 0;
}

/* ---- errors ---- */

static EtcdErrorKind kind_from_code(long http_status, int code, const char *msg)
{
    switch (code) {
    case 16: /* Unauthenticated */
        return ETCD_ERROR_AUTH;
    case 7: /* PermissionDenied */
        return ETCD_ERROR_PERMISSION_DENIED;
    case 5: /* NotFound: only leases in etcd's KV API */
        return ETCD_ERROR_LEASE_NOT_FOUND;
    case 14: /* Unavailable */
    case 2:  /* Unknown, "context deadline exceeded" */
    case 4:  /* DeadlineExceeded */
        return ETCD_ERROR_UNAVAILABLE;
    case 11: /* OutOfRange */
        if (strstr(msg, "compacted")) {
            return ETCD_ERROR_COMPACTED;
        }
        return ETCD_ERROR_INVALID;
    case 3: /* InvalidArgument, also used for bad credentials and a missing token */
        if (strstr(msg, "authentication failed") || strstr(msg, "user name is empty") ||
            strstr(msg, "invalid auth token")) {
            return ETCD_ERROR_AUTH;
        }
        return ETCD_ERROR_INVALID;
    default:
        break;
    }
    if (http_status == 401) {
        return ETCD_ERROR_AUTH;
    }
    if (http_status == 403) {
        return ETCD_ERROR_PERMISSION_DENIED;
    }
    if (http_status >= 500) {
        return ETCD_ERROR_UNAVAILABLE;
    }
    if (http_status >= 400) {
        return ETCD_ERROR_INVALID;
    }
    return ETCD_ERROR_BAD_RESPONSE;
}

int etcd_parse_error_response(long http_status, const char *body, size_t len, EtcdError *reterr)
{
    json_error_t jerr;
    _cleanup_(json_decrefp) json_t *o = NULL;
    if (body && len > 0) {
        o = json_loadb(body, len, 0, &jerr);
    }
    int code = 0;
    const char *msg = NULL;
    if (json_is_object(o)) {
        const json_t *err = json_object_get(o, "error");
        const json_t *c = json_object_get(o, "code");
        const json_t *m = json_object_get(o, "message");
        if (json_is_object(err)) { /* streaming shape */
            c = json_object_get(err, "grpc_code");
            m = json_object_get(err, "message");
        } else if (!json_is_string(m) && json_is_string(err)) {
            m = err;
        }
        if (json_is_integer(c) && json_integer_value(c) >= 0 && json_integer_value(c) < 100) {
            code = (int)json_integer_value(c);
        }
        if (json_is_string(m)) {
            msg = json_string_value(m);
        }
    }
    if (!msg) {
        /* Not etcd's JSON (a proxy, text/plain from the gateway): quote a bit
         * of it, printable characters only. */
        char text[96] = "";
        size_t n = 0;
        for (size_t i = 0; body && i < len && n + 1 < sizeof(text); i++) {
            unsigned char ch = (unsigned char)body[i];
            text[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
        }
        text[n] = '\0';
        EtcdErrorKind k = kind_from_code(http_status, 0, text);
        if (http_status == 200) {
            k = ETCD_ERROR_BAD_RESPONSE;
        }
        return etcd_error_set(reterr, k, 0, http_status, "HTTP %ld: %s", http_status,
                              n > 0 ? text : "(empty body)");
    }
    EtcdErrorKind k = kind_from_code(http_status, code, msg);
    return etcd_error_set(reterr, k, code, http_status, "%s", msg);
}

bool etcd_error_is_retryable(const EtcdError *e)
{
    return e->kind == ETCD_ERROR_UNAVAILABLE;
}

/* ---- line buffer ---- */

int etcd_line_buffer_append(EtcdLineBuffer *b, const void *data, size_t len)
{
    if (b->start > 0 && b->start == b->len) {
        b->start = b->len = 0;
    }
    if (b->len - b->start + len > ETCD_BODY_MAX) {
        return -EBADMSG;
    }
    if (b->len + len + 1 > b->cap) {
        if (b->start > 0) { /* compact first */
            memmove(b->data, b->data + b->start, b->len - b->start);
            b->len -= b->start;
            b->start = 0;
        }
        if (b->len + len + 1 > b->cap) {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < b->len + len + 1) {
                cap *= 2;
            }
            char *d = realloc(b->data, cap);
            if (!d) {
                return -ENOMEM;
            }
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int etcd_line_buffer_next(EtcdLineBuffer *b, const char **ret_line, size_t *ret_len)
{
    while (b->start < b->len) {
        char *s = b->data + b->start;
        char *nl = memchr(s, '\n', b->len - b->start);
        if (!nl) {
            return 0;
        }
        size_t n = (size_t)(nl - s);
        b->start += n + 1;
        if (n > 0 && s[n - 1] == '\r') {
            n--;
        }
        if (n == 0) {
            continue;
        }
        s[n] = '\0';
        *ret_line = s;
        *ret_len = n;
        return 1;
    }
    return 0;
}

size_t etcd_line_buffer_pending(const EtcdLineBuffer *b, const char **ret_data)
{
    if (ret_data) {
        *ret_data = b->data ? b->data + b->start : "";
    }
    return b->len - b->start;
}

void etcd_line_buffer_done(EtcdLineBuffer *b)
{
    free(b->data);
    *b = (EtcdLineBuffer){ 0 };
}
