/* The etcd watch: one HTTP stream per watch (POST /v3/watch) driven by a curl
 * multi handle, so a main loop can wait on it with a timeout. The stream is
 * one JSON object per line. When it breaks (member died, "no leader", bad
 * token) it is re-opened on the next endpoint from the last seen revision + 1,
 * so no event is lost or repeated; compaction and server-side cancels end the
 * watch with a typed error. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include <curl/curl.h>

#include "clock.h"
#include "etcd-internal.h"
#include "etcd.h"
#include "log.h"

#define WATCH_BACKOFF_MIN_USEC (100 * 1000ULL)
#define WATCH_BACKOFF_MAX_USEC (2 * 1000 * 1000ULL)
/* One curl_multi_poll waits at most this long. It only bounds the int it
 * is given: libcurl shortens every wait to its own next timer
 * (curl_multi_timeout, honoured below and inside curl_multi_poll), and
 * etcd_watch_wakeup() ends a wait from another thread, so nothing needs a
 * periodic wake-up. */
#define WATCH_POLL_SLICE_MSEC (60 * 1000)

struct EtcdWatch {
    EtcdClient *client; /* borrowed */
    char *key;          /* owned */
    EtcdWatchOptions opts;
    EtcdWatchCallback cb;
    void *userdata; /* borrowed */

    CURLM *multi;               /* owned */
    CURL *easy;                 /* owned, NULL while disconnected */
    struct curl_slist *headers; /* owned */
    char *body;                 /* owned, the create_request */
    EtcdLineBuffer buf;
    bool buf_error; /* the write callback ran out of memory or over ETCD_BODY_MAX */

    size_t endpoint;
    bool created; /* the current stream got its "created" */
    bool auth_retried;
    int64_t next_revision;
    uint64_t reconnect_at_usec;
    uint64_t backoff_usec;
    unsigned connects;

    int terminal; /* < 0 once the watch has ended */
    EtcdError terminal_error;

    atomic_bool woken; /* etcd_watch_wakeup() was called: the poll returns */
};

static void stream_close(EtcdWatch *w)
{
    if (w->easy) {
        (void)curl_multi_remove_handle(w->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
    }
    curl_slist_free_all(w->headers);
    w->headers = NULL;
    free(w->body);
    w->body = NULL;
    etcd_line_buffer_done(&w->buf);
    w->buf_error = false;
    w->created = false;
}

EtcdWatch *etcd_watch_free(EtcdWatch *w)
{
    if (!w) {
        return NULL;
    }
    stream_close(w);
    if (w->multi) {
        (void)curl_multi_cleanup(w->multi);
    }
    free(w->key);
    free(w);
    return NULL;
}

int etcd_watch_new(EtcdClient *c, const EtcdWatchOptions *opts, EtcdWatchCallback cb,
                   void *userdata, EtcdWatch **ret_watch, EtcdError *reterr)
{
    if (!c || !opts || !opts->key || !cb || !ret_watch || opts->start_revision < 0) {
        return etcd_error_set(reterr, ETCD_ERROR_INVALID, 0, 0, "invalid watch arguments");
    }
    _cleanup_(etcd_watch_freep) EtcdWatch *w = calloc(1, sizeof(*w));
    if (!w) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    w->key = strdup(opts->key);
    w->multi = curl_multi_init();
    if (!w->key || !w->multi) {
        return etcd_error_set(reterr, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    w->client = c;
    w->opts = *opts;
    w->opts.key = w->key;
    w->cb = cb;
    w->userdata = userdata;
    w->endpoint = etcd_client_current_endpoint(c);
    w->next_revision = opts->start_revision;
    *ret_watch = TAKE_PTR(w);
    return 0;
}

int etcd_watch_wakeup(EtcdWatch *w)
{
    atomic_store(&w->woken, true);
    return curl_multi_wakeup(w->multi) == CURLM_OK ? 0 : -EIO;
}

int64_t etcd_watch_get_next_revision(const EtcdWatch *w)
{
    return w->next_revision;
}

const char *etcd_watch_get_endpoint(const EtcdWatch *w)
{
    return etcd_client_endpoint_name(w->client, w->endpoint);
}

int etcd_watch_get_fd(const EtcdWatch *w)
{
    /* One easy handle, so at most one socket. CURLINFO_ACTIVESOCKET only
     * knows finished transfers; curl_multi_fdset knows the live one (it
     * skips descriptors >= FD_SETSIZE, which then read as -EAGAIN). */
    fd_set rd, wr, ex;
    int max_fd = -1;
    if (!w->easy || !w->created) {
        return -EAGAIN;
    }
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    if (curl_multi_fdset(w->multi, &rd, &wr, &ex, &max_fd) != CURLM_OK || max_fd < 0) {
        return -EAGAIN;
    }
    return max_fd;
}

uint64_t etcd_watch_get_wakeup_usec(const EtcdWatch *w)
{
    if (w->terminal < 0) {
        return UINT64_MAX;
    }
    uint64_t now = clock_monotonic_usec();
    if (!w->easy) {
        return w->reconnect_at_usec > now ? w->reconnect_at_usec : now;
    }
    if (!w->created || etcd_watch_get_fd(w) < 0) {
        return now + ETCD_WATCH_CONNECT_SLICE_USEC;
    }
    long ms = -1;
    if (curl_multi_timeout(w->multi, &ms) != CURLM_OK || ms < 0) {
        return UINT64_MAX;
    }
    return now + (uint64_t)ms * 1000ULL;
}

unsigned etcd_watch_get_connects(const EtcdWatch *w)
{
    return w->connects;
}

static size_t stream_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    EtcdWatch *w = userdata;
    size_t n = size * nmemb;
    if (etcd_line_buffer_append(&w->buf, ptr, n) < 0) {
        w->buf_error = true;
        return 0; /* aborts the transfer */
    }
    return n;
}

static int set_terminal(EtcdWatch *w, int r, const EtcdError *e)
{
    stream_close(w);
    w->terminal = r;
    w->terminal_error = *e;
    return r;
}

/* The stream broke: close it and try the next endpoint after a backoff. */
static void schedule_reconnect(EtcdWatch *w, const EtcdError *why)
{
    bool was_created = w->created;
    stream_close(w);
    log_debug("etcd watch on %s broke: %s", etcd_client_endpoint_name(w->client, w->endpoint),
              why->message);
    w->endpoint = (w->endpoint + 1) % etcd_client_n_endpoints(w->client);
    if (was_created) {
        w->backoff_usec = 0; /* it worked until now: try the next member at once */
    } else if (w->backoff_usec < WATCH_BACKOFF_MIN_USEC) {
        w->backoff_usec = WATCH_BACKOFF_MIN_USEC;
    } else {
        w->backoff_usec = w->backoff_usec * 2 > WATCH_BACKOFF_MAX_USEC ? WATCH_BACKOFF_MAX_USEC
                                                                       : w->backoff_usec * 2;
    }
    uint64_t now = clock_monotonic_usec();
    w->reconnect_at_usec = now + w->backoff_usec + now % (w->backoff_usec / 4 + 1);
}

/* Opens the stream on w->endpoint. Errors are transient (reconnect later)
 * unless set_terminal() was called. */
static int stream_open(EtcdWatch *w, EtcdError *e)
{
    _cleanup_free_ char *auth = NULL;
    _cleanup_free_ char *url = NULL;
    int r = etcd_client_auth_header(w->client, &auth, e);
    if (r < 0) {
        return r;
    }
    r = etcd_json_watch_request(&w->opts, w->next_revision, &w->body);
    if (r < 0) {
        return etcd_error_set(e, r == -ENOMEM ? ETCD_ERROR_NO_MEMORY : ETCD_ERROR_INVALID, 0, 0,
                              "cannot encode the watch request");
    }
    r = etcd_client_endpoint_url(w->client, w->endpoint, "/v3/watch", &url);
    if (r < 0) {
        return etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
    }
    const char *hdrs[] = { "Content-Type: application/json", "Expect:", auth };
    r = etcd_append_headers(&w->headers, hdrs, ELEMENTSOF(hdrs), e);
    if (r < 0) {
        return r;
    }
    w->easy = curl_easy_init();
    if (!w->easy) {
        return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "curl_easy_init failed");
    }
    CURLcode cc = etcd_client_setup_easy(w->client, w->easy) < 0 ? CURLE_FAILED_INIT : CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK) {                                                                      \
            cc = curl_easy_setopt(w->easy, opt, val);                                              \
        }                                                                                          \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_COPYPOSTFIELDS, w->body);
    SET(CURLOPT_HTTPHEADER, w->headers);
    SET(CURLOPT_WRITEFUNCTION, stream_write);
    SET(CURLOPT_WRITEDATA, w);
#undef SET
    if (cc != CURLE_OK || curl_multi_add_handle(w->multi, w->easy) != CURLM_OK) {
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
        return etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "cannot set up the watch stream");
    }
    w->connects++;
    log_debug("etcd watch on %s from revision %" PRId64,
              etcd_client_endpoint_name(w->client, w->endpoint), w->next_revision);
    return 0;
}

/* An error from the server or the transport: transient ones reconnect,
 * the others end the watch. Returns 0 or the terminal error. */
static int handle_error(EtcdWatch *w, int r, EtcdError *e)
{
    switch (e->kind) {
    case ETCD_ERROR_UNAVAILABLE:
        schedule_reconnect(w, e);
        return 0;
    case ETCD_ERROR_AUTH:
        if (e->grpc_code == 16 && !w->auth_retried) {
            w->auth_retried = true;
            etcd_client_forget_token(w->client);
            schedule_reconnect(w, e);
            w->reconnect_at_usec = clock_monotonic_usec();
            return 0;
        }
        return set_terminal(w, r, e);
    default:
        return set_terminal(w, r, e);
    }
}

static int dispatch_line(EtcdWatch *w, const char *line, size_t len, EtcdError *e)
{
    EtcdWatchResponse resp = { 0 };
    int r = etcd_parse_watch_line(line, len, &resp, e);
    if (r < 0) {
        return handle_error(w, r, e);
    }
    if (resp.created) {
        w->created = true;
        w->auth_retried = false;
        w->backoff_usec = 0;
        if (w->next_revision == 0) {
            w->next_revision = resp.revision + 1;
        }
    }
    for (size_t i = 0; i < resp.n_events; i++) {
        int64_t rev = resp.events[i].kv.mod_revision;
        if (rev >= w->next_revision) {
            w->next_revision = rev + 1;
        }
    }
    r = w->cb(w, &resp, w->userdata);
    if (r < 0) {
        etcd_watch_response_done(&resp);
        etcd_error_set(e, ETCD_ERROR_INTERNAL, 0, 0, "watch callback failed: %s", strerror(-r));
        return set_terminal(w, r, e);
    }
    if (resp.canceled) {
        if (resp.compact_revision > 0) {
            r = etcd_error_set(e, ETCD_ERROR_COMPACTED, 11, 200,
                               "watch start revision %" PRId64
                               " compacted (compact revision %" PRId64 ")",
                               w->next_revision, resp.compact_revision);
        } else {
            r = etcd_error_set(e, ETCD_ERROR_WATCH_CANCELED, 0, 200, "watch canceled: %s",
                               strna(resp.cancel_reason));
        }
        etcd_watch_response_done(&resp);
        return set_terminal(w, r, e);
    }
    etcd_watch_response_done(&resp);
    return 1;
}

/* Dispatches every complete line. Returns the number dispatched, or a
 * terminal error. Stops early when the stream was closed by an error line. */
static int dispatch_lines(EtcdWatch *w, EtcdError *e)
{
    int n = 0;
    const char *line;
    size_t len;
    while (w->easy && etcd_line_buffer_next(&w->buf, &line, &len) > 0) {
        int r = dispatch_line(w, line, len, e);
        if (r < 0) {
            return r;
        }
        n += r;
    }
    return n;
}

/* The transfer ended: the server closed the stream, it broke, or it never
 * started (non-200 answer with one error object). */
static int handle_done(EtcdWatch *w, CURLcode result, EtcdError *e)
{
    long status = 0;
    (void)curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    if (w->buf_error) {
        int r = etcd_error_set(e, ETCD_ERROR_BAD_RESPONSE, 0, status,
                               "watch stream line too long or out of memory");
        return set_terminal(w, r, e);
    }
    const char *rest;
    size_t n = etcd_line_buffer_pending(&w->buf, &rest);
    if (status != 0 && status != 200) {
        int r = etcd_parse_error_response(status, rest, n, e);
        return handle_error(w, r, e);
    }
    if (n > 0) {
        /* A last line without '\n'. */
        _cleanup_free_ char *line = strndup(rest, n);
        if (!line) {
            int r = etcd_error_set(e, ETCD_ERROR_NO_MEMORY, 0, 0, "out of memory");
            return set_terminal(w, r, e);
        }
        int r = dispatch_line(w, line, n, e);
        if (r < 0 || !w->easy) {
            return r < 0 ? r : 0;
        }
    }
    EtcdError why = { .kind = ETCD_ERROR_UNAVAILABLE };
    (void)snprintf(why.message, sizeof(why.message), "stream ended: %s",
                   result == CURLE_OK ? "closed by server" : curl_easy_strerror(result));
    schedule_reconnect(w, &why);
    return 0;
}

int etcd_watch_poll(EtcdWatch *w, uint64_t timeout_usec, EtcdError *reterr)
{
    EtcdError e = { 0 };
    int r;
    if (w->terminal < 0) {
        if (reterr) {
            *reterr = w->terminal_error;
        }
        return w->terminal;
    }
    uint64_t deadline = clock_monotonic_usec() + timeout_usec;
    int dispatched = 0;
    for (;;) {
        uint64_t now = clock_monotonic_usec();
        if (!w->easy) {
            if (now < w->reconnect_at_usec) {
                if (now >= deadline || atomic_exchange(&w->woken, false)) {
                    return dispatched;
                }
                uint64_t until = w->reconnect_at_usec < deadline ? w->reconnect_at_usec : deadline;
                uint64_t ms = (until - now + 999) / 1000;
                /* with no transfer, curl_multi_poll just waits: a wakeup ends it */
                (void)curl_multi_poll(
                    w->multi, NULL, 0,
                    (int)(ms > WATCH_POLL_SLICE_MSEC ? WATCH_POLL_SLICE_MSEC : ms), NULL);
                continue;
            }
            r = stream_open(w, &e);
            if (r < 0) {
                r = handle_error(w, r, &e);
                if (r < 0) {
                    goto fail;
                }
                continue;
            }
        }

        int running = 0;
        (void)curl_multi_perform(w->multi, &running);
        r = dispatch_lines(w, &e);
        if (r < 0) {
            goto fail;
        }
        dispatched += r;
        int queued;
        CURLMsg *m;
        while (w->easy && (m = curl_multi_info_read(w->multi, &queued))) {
            if (m->msg == CURLMSG_DONE && m->easy_handle == w->easy) {
                r = handle_done(w, m->data.result, &e);
                if (r < 0) {
                    goto fail;
                }
                dispatched += r;
                break;
            }
        }
        if (dispatched > 0) {
            return dispatched;
        }
        now = clock_monotonic_usec();
        if (now >= deadline || atomic_exchange(&w->woken, false)) {
            return 0;
        }
        if (w->easy) {
            uint64_t wait_ms = (deadline - now + 999) / 1000;
            long ms = wait_ms > WATCH_POLL_SLICE_MSEC ? WATCH_POLL_SLICE_MSEC : (long)wait_ms;
            long curl_ms = -1;
            (void)curl_multi_timeout(w->multi, &curl_ms);
            if (curl_ms >= 0 && curl_ms < ms) {
                ms = curl_ms;
            }
            (void)curl_multi_poll(w->multi, NULL, 0, (int)ms, NULL);
        }
    }
fail:
    if (reterr) {
        *reterr = e;
    }
    return r;
}
