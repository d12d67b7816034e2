/* Lease keepalives on one long-lived stream (POST /v3/lease/keepalive with
 * a chunked body), as etcd's own client keeps one LeaseKeepAlive stream:
 * each renewal is one JSON line up and one line down on an open
 * connection, instead of a new HTTP request and a new gRPC stream at the
 * gateway. The unary POST stays the fallback for everything the stream
 * cannot answer (see etcd_lease_keepalive() in lib/etcd.c).
 *
 * What the gateway needs (etcd 3.4, measured): "Expect: 100-continue".
 * Without it Go's HTTP/1.1 server drains the request body before it writes
 * the response headers, so no answer comes until the body ends; with it,
 * each message is answered at once. One message is in flight at a time and
 * every failure closes the stream, so an answer always belongs to the
 * message just sent. When a stream never answered and a POST to the same
 * endpoint then did, the endpoint cannot stream (a proxy, another gateway):
 * the stream is not tried again for STREAM_RETRY_MIN_USEC (doubling up to
 * STREAM_RETRY_MAX_USEC), so it costs one request timeout per retry period,
 * not one per renewal. An etcd that answers nothing at all (stopped, no
 * quorum) teaches nothing about streaming: the next renewal tries again. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "clock.h"
#include "etcd-internal.h"
#include "log.h"

#define STREAM_RETRY_MIN_USEC (60 * 1000 * 1000ULL)
#define STREAM_RETRY_MAX_USEC (15 * 60 * 1000 * 1000ULL)

struct EtcdKeepaliveStream {
    CURLM *multi; /* owned */
    CURL *easy;   /* owned, NULL while closed */
    struct curl_slist *headers;
    size_t endpoint;
    EtcdLineBuffer buf;
    bool buf_error;
    const char *out; /* borrowed from the caller until the next call: the message */
    size_t out_len, out_off;
    bool answered;          /* this stream answered at least once */
    bool suspect;           /* closed before it ever answered */
    uint64_t retry_at_usec; /* closed: do not open before this */
    uint64_t retry_usec;    /* the current backoff */
};

static void stream_close(EtcdKeepaliveStream *s)
{
    if (s->easy) {
        (void)curl_multi_remove_handle(s->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    etcd_line_buffer_done(&s->buf);
    s->buf_error = false;
    s->out = NULL;
    s->out_len = s->out_off = 0;
}

EtcdKeepaliveStream *etcd_keepalive_stream_free(EtcdKeepaliveStream *s)
{
    if (!s) {
        return NULL;
    }
    stream_close(s);
    if (s->multi) {
        (void)curl_multi_cleanup(s->multi);
    }
    free(s);
    return NULL;
}

bool etcd_keepalive_stream_is_open(const EtcdKeepaliveStream *s)
{
    return s && s->easy;
}

static size_t stream_read(char *ptr, size_t size, size_t nitems, void *userdata)
{
    EtcdKeepaliveStream *s = userdata;
    size_t left = s->out_len - s->out_off;
    if (left == 0) {
        return CURL_READFUNC_PAUSE; /* 0 would end the body */
    }
    size_t n = size * nitems < left ? size * nitems : left;
    memcpy(ptr, s->out + s->out_off, n);
    s->out_off += n;
    return n;
}

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    EtcdKeepaliveStream *s = userdata;
    size_t n = size * nmemb;
    if (etcd_line_buffer_append(&s->buf, ptr, n) < 0) {
        s->buf_error = true;
        return 0; /* aborts the transfer */
    }
    return n;
}

/* Opens the stream on the client's current endpoint; the first message is
 * already queued (s->out). */
static int stream_open(EtcdClient *c, EtcdKeepaliveStream *s, EtcdError *e)
{
    _cleanup_free_ char *auth = NULL, *url = NULL;
    int r = etcd_client_auth_header(c, &auth, e);
    if (r < 0) {
        return r;
    }
    s->endpoint = etcd_client_current_endpoint(c);
    if (etcd_client_endpoint_url(c, s->endpoint, "/v3/lease/keepalive", &url) < 0) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    const char *hdrs[] = { "Content-Type: application/json", "Transfer-Encoding: chunked",
                           "Expect: 100-continue", auth };
    r = etcd_append_headers(&s->headers, hdrs, ELEMENTSOF(hdrs), e);
    if (r < 0) {
        return r;
    }
    s->easy = curl_easy_init();
    if (!s->easy) {
        return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_easy_init failed");
    }
    CURLcode cc = etcd_client_setup_easy(c, s->easy) < 0 ? CURLE_FAILED_INIT : CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK) {                                                                      \
            cc = curl_easy_setopt(s->easy, opt, val);                                              \
        }                                                                                          \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_READFUNCTION, stream_read);
    SET(CURLOPT_READDATA, s);
    SET(CURLOPT_WRITEFUNCTION, stream_write);
    SET(CURLOPT_WRITEDATA, s);
    SET(CURLOPT_HTTPHEADER, s->headers);
#undef SET
    if (cc != CURLE_OK || curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) {
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
        return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "cannot set up the keepalive stream");
    }
    s->answered = false;
    return 0;
}

/* Drives the transfer until one complete answer line, the transfer's end,
 * or `deadline`. 1: *ret_line and *ret_len (borrowed until the next call on s);
 * < 0: the stream failed (e says why). */
static int stream_answer(EtcdKeepaliveStream *s, uint64_t deadline, const char **ret_line,
                         size_t *ret_len, EtcdError *e)
{
    for (;;) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc != CURLM_OK) {
            return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_multi_perform: %s",
                                  curl_multi_strerror(mc));
        }
        if (s->buf_error) {
            return etcd_error_set(e, ETCD_ERROR_BAD_RESPONSE, 0, 0,
                                  "keepalive stream: answer too large or out of memory");
        }
        long status = 0;
        (void)curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        if (etcd_line_buffer_next(&s->buf, ret_line, ret_len) == 1) {
            if (status != 200) {
                return etcd_parse_error_response(status, *ret_line, *ret_len, e);
            }
            return 1;
        }
        int queued = 0;
        CURLMsg *m;
        while ((m = curl_multi_info_read(s->multi, &queued))) {
            if (m->msg == CURLMSG_DONE) {
                const char *rest = NULL;
                size_t n = etcd_line_buffer_pending(&s->buf, &rest);
                if (m->data.result == CURLE_OK && status != 200 && n > 0) {
                    return etcd_parse_error_response(status, rest, n, e);
                }
                return etcd_error_set(
                    e, ETCD_ERROR_UNAVAILABLE, 0, status, "keepalive stream ended: %s",
                    m->data.result == CURLE_OK ? "by the server"
                                               : curl_easy_strerror(m->data.result));
            }
        }
        if (!running) {
            return etcd_error_set(e, ETCD_ERROR_UNAVAILABLE, 0, status, "keepalive stream ended");
        }
        uint64_t now = clock_monotonic_usec();
        if (now >= deadline) {
            return etcd_error_set(e, ETCD_ERROR_UNAVAILABLE, 0, status,
                                  "keepalive stream: no answer in time");
        }
        uint64_t left_ms = (deadline - now + 999) / 1000;
        mc = curl_multi_poll(s->multi, NULL, 0, left_ms > 60000 ? 60000 : (int)left_ms, NULL);
        if (mc != CURLM_OK) {
            return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_multi_poll: %s",
                                  curl_multi_strerror(mc));
        }
    }
}

int etcd_keepalive_stream_renew(EtcdClient *c, EtcdKeepaliveStream **sp, const char *msg,
                                uint64_t timeout_usec, int64_t *ret_ttl, int64_t *ret_revision,
                                EtcdError *e)
{
    uint64_t now = clock_monotonic_usec();
    EtcdKeepaliveStream *s = *sp;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
        s->multi = curl_multi_init();
        if (!s->multi) {
            free(s);
            return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_multi_init failed");
        }
        *sp = s;
    }
    if (!s->easy && now < s->retry_at_usec) {
        return -EAGAIN; /* backing off: the caller renews without the stream */
    }
    if (s->out_off != s->out_len) {
        stream_close(s); /* a message still half sent: nothing after it can be trusted */
        return etcd_error_set(e, ETCD_ERROR_UNAVAILABLE, 0, 0, "keepalive stream stalled");
    }
    s->out = msg;
    s->out_len = strlen(msg);
    s->out_off = 0;
    int r = 0;
    bool opened = !s->easy;
    if (opened) {
        r = stream_open(c, s, e);
    } else {
        const char *junk;
        size_t junk_len;
        if (etcd_line_buffer_next(&s->buf, &junk, &junk_len) == 1) {
            r = etcd_error_set(e, ETCD_ERROR_BAD_RESPONSE, 0, 0,
                               "keepalive stream: an answer nobody asked for");
        } else if (curl_easy_pause(s->easy, CURLPAUSE_CONT) != CURLE_OK) {
            r = etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_easy_pause failed");
        }
    }
    const char *line = NULL;
    size_t len = 0;
    if (r >= 0) {
        r = stream_answer(s, now + timeout_usec, &line, &len, e);
    }
    if (r >= 0) {
        r = etcd_parse_lease_keepalive_response(line, len, ret_ttl, ret_revision, e);
    }
    etcd_client_count_request(c, clock_monotonic_usec() - now,
                              r < 0 && e->kind != ETCD_ERROR_LEASE_NOT_FOUND, opened && r >= 0);
    if (r >= 0 || e->kind == ETCD_ERROR_LEASE_NOT_FOUND) {
        s->answered = true;
        s->suspect = false;
        s->retry_usec = 0;
        return r; /* an answer about the lease: the stream goes on */
    }
    /* A stream that never answered is suspect: if a POST to the same
     * endpoint is answered next, the endpoint works and the stream does not
     * (etcd_keepalive_stream_posted()). */
    s->suspect = !s->answered;
    stream_close(s);
    log_debug("etcd keepalive stream on %s: %s", etcd_client_endpoint_name(c, s->endpoint),
              e->message);
    return r;
}

void etcd_keepalive_stream_posted(EtcdKeepaliveStream *s, size_t endpoint)
{
    if (!s || !s->suspect) {
        return;
    }
    s->suspect = false;
    if (endpoint != s->endpoint) {
        return; /* its endpoint failed as a whole (or we moved on): nothing learned */
    }
    s->retry_usec = s->retry_usec == 0                          ? STREAM_RETRY_MIN_USEC
                    : s->retry_usec * 2 > STREAM_RETRY_MAX_USEC ? STREAM_RETRY_MAX_USEC
                                                                : s->retry_usec * 2;
    s->retry_at_usec = clock_monotonic_usec() + s->retry_usec;
    log_debug("etcd keepalive stream: endpoint answers a POST but not the stream; renewing "
              "with POSTs for %" PRIu64 " s",
              s->retry_usec / 1000000);
}
