/* Internals of the etcd client shared by lib/etcd*.c and the unit tests: the
 * pure encoders/parsers of the v3 JSON gateway (no I/O), the watch stream's
 * line buffer, and the client helpers the watch needs. Not a public API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "etcd.h"

/* A response line or body larger than this is refused (BAD_RESPONSE). */
#define ETCD_BODY_MAX (64u * 1024u * 1024u)

/* jansson provides json_decrefp for _cleanup_. */

DEFINE_TRIVIAL_CLEANUP_FUNC(CURL *, curl_easy_cleanup);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all);

/* Fills *e (when e != NULL) with kind, codes and a printf message; returns
 * etcd_error_kind_to_errno(kind). */
int etcd_error_set(EtcdError *e, EtcdErrorKind kind, int grpc_code, long http_status,
                   const char *fmt, ...) _printf_(5, 6);

/* Standard base64 with padding. *ret is NUL-terminated. */
int etcd_base64_encode(const void *data, size_t len, char **ret);
/* Strict: length multiple of 4, '=' only at the end, no whitespace. *ret gets
 * an extra NUL after *ret_len bytes. -EBADMSG on bad input. */
int etcd_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len);

/* range_end for "every key starting with prefix": prefix with its last
 * non-0xff byte incremented and what follows dropped; "\0" (len 1) when the
 * prefix is empty or all 0xff. */
int etcd_prefix_range_end(const void *prefix, size_t len, char **ret, size_t *ret_len);

/* Request bodies (JSON text, owned by the caller). */
int etcd_json_range_request(const char *key, const EtcdRangeOptions *opts, char **ret);
int etcd_json_put_request(const char *key, const void *value, size_t value_len,
                          const EtcdPutOptions *opts, char **ret);
int etcd_json_delete_request(const char *key, bool prefix, bool prev_kv, char **ret);
int etcd_json_txn_request(const EtcdTxn *txn, char **ret);
int etcd_json_watch_request(const EtcdWatchOptions *opts, int64_t start_revision, char **ret);

/* Parses a JSON object body; -EBADMSG (BAD_RESPONSE) when it is not one. */
int etcd_json_parse_object(const char *body, size_t len, json_t **ret, EtcdError *reterr);

/* Response parsers: body is one HTTP 200 answer. Return 0 and fill *ret, or
 * -EBADMSG with BAD_RESPONSE for anything malformed. */
int etcd_parse_range_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr);
int etcd_parse_put_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr);
int etcd_parse_delete_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr);
int etcd_parse_txn_response(const char *body, size_t len, EtcdResult *ret, EtcdError *reterr);
int etcd_parse_lease_grant_response(const char *body, size_t len, EtcdLease *ret,
                                    EtcdError *reterr);
/* Wrapped in "result"; missing or 0 TTL -> -ESRCH LEASE_NOT_FOUND.
 * *ret_revision (may be NULL): result.header.revision, 0 when absent. */
int etcd_parse_lease_keepalive_response(const char *body, size_t len, int64_t *ret_ttl,
                                        int64_t *ret_revision, EtcdError *reterr);
/* TTL -1 -> -ESRCH LEASE_NOT_FOUND. */
int etcd_parse_lease_ttl_response(const char *body, size_t len, EtcdLease *ret, EtcdError *reterr);
int etcd_parse_header_response(const char *body, size_t len, int64_t *ret_revision,
                               EtcdError *reterr);
int etcd_parse_auth_response(const char *body, size_t len, char **ret_token, EtcdError *reterr);
/* One line of the watch stream: {"result":{...}} or {"error":{...}}. An
 * error line returns its mapped error (e.g. -EHOSTUNREACH for "no leader"). */
int etcd_parse_watch_line(const char *line, size_t len, EtcdWatchResponse *ret, EtcdError *reterr);

/* Classifies a non-200 answer (either error shape, or not JSON at all) and
 * returns the -errno of its kind: 503/14, 500/2 and other 5xx UNAVAILABLE;
 * 401/16 AUTH; 403/7 PERMISSION_DENIED; 404/5 LEASE_NOT_FOUND; code 11
 * "compacted" COMPACTED; other 4xx INVALID. Always fills reterr. */
int etcd_parse_error_response(long http_status, const char *body, size_t len, EtcdError *reterr);
/* Whether an error of this kind/code should be retried on another endpoint. */
bool etcd_error_is_retryable(const EtcdError *e);

/* Growable byte buffer that hands out complete '\n'-terminated lines. */
typedef struct EtcdLineBuffer {
    char *data; /* owned */
    size_t len;
    size_t start; /* consumed prefix */
    size_t cap;
} EtcdLineBuffer;

/* -ENOMEM, or -EBADMSG when a pending line would exceed ETCD_BODY_MAX. */
int etcd_line_buffer_append(EtcdLineBuffer *b, const void *data, size_t len);
/* Returns 1 with the next line (without '\n', borrowed until the next call),
 * 0 when no complete line is buffered. Empty lines are skipped. */
int etcd_line_buffer_next(EtcdLineBuffer *b, const char **ret_line, size_t *ret_len);
/* Bytes buffered after the last complete line. */
size_t etcd_line_buffer_pending(const EtcdLineBuffer *b, const char **ret_data);
void etcd_line_buffer_done(EtcdLineBuffer *b);

/* Client helpers for the watch (lib/etcd-watch.c). */
size_t etcd_client_n_endpoints(const EtcdClient *c);
size_t etcd_client_current_endpoint(const EtcdClient *c);
const char *etcd_client_endpoint_name(const EtcdClient *c, size_t i); /* "host:port" */
/* "http(s)://host:port" + path, owned by caller. */
int etcd_client_endpoint_url(const EtcdClient *c, size_t i, const char *path, char **ret);
/* Sets TLS and connect-timeout options on a stream handle. */
int etcd_client_setup_easy(const EtcdClient *c, CURL *easy);
/* Appends the n header lines (NULL entries skipped) to *list; on failure
 * *list keeps what was appended, for the caller to free. */
int etcd_append_headers(struct curl_slist **list, const char *const *hdrs, size_t n, EtcdError *e);
/* Authenticates when a username is set and there is no token yet. Returns
 * 0 and *ret_header (owned, "Authorization: tok") or NULL when auth is off. */
int etcd_client_auth_header(EtcdClient *c, char **ret_header, EtcdError *reterr);
void etcd_client_forget_token(EtcdClient *c);

/* Lease keepalives on one long-lived stream (lib/etcd-keepalive.c). */
typedef struct EtcdKeepaliveStream EtcdKeepaliveStream;
EtcdKeepaliveStream *etcd_keepalive_stream_free(EtcdKeepaliveStream *s);
bool etcd_keepalive_stream_is_open(const EtcdKeepaliveStream *s);
/* One keepalive (msg: the request JSON and "\n", borrowed until the next
 * call: curl may read the rest of it then) on *sp, created on first use and
 * opened on the client's current endpoint when closed; waits at most
 * timeout_usec for the answer. 0 with *ret_ttl and *ret_revision, or
 * -ESRCH (LEASE_NOT_FOUND): etcd's answer. -EAGAIN (e untouched): the
 * stream is backing off (etcd_keepalive_stream_posted()). Any other error closes
 * the stream; whether etcd renewed the lease is then unknown. The caller
 * renews without the stream in both cases. */
int etcd_keepalive_stream_renew(EtcdClient *c, EtcdKeepaliveStream **sp, const char *msg,
                                uint64_t timeout_usec, int64_t *ret_ttl, int64_t *ret_revision,
                                EtcdError *e);
/* After a POST keepalive to `endpoint` was answered: a stream that failed
 * there before it ever answered is not tried again for a while. NULL-safe. */
void etcd_keepalive_stream_posted(EtcdKeepaliveStream *s, size_t endpoint);
/* Counts one request (and its time, and a failure) in the client's stats. */
void etcd_client_count_request(EtcdClient *c, uint64_t usec, bool failed, bool connected);
