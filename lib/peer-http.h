/* The one HTTP client for talking to agents' REST APIs: dbctl's calls, the
 * election's peer fetches and libdbha's REST source. How a request to an
 * agent is set up (http and https only, the whole-request and connect
 * deadlines, TLS trust, basic auth, the capped body) is decided here once;
 * the callers choose only how they run it (blocking, or in their own
 * curl multi handle). Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "config.h"
#include "httpbody.h"

typedef struct PeerHttpOptions {
    uint64_t timeout_usec;         /* the whole request; never 0 */
    uint64_t connect_timeout_usec; /* 0: timeout_usec */
    const char *cafile;            /* borrowed: trust for https (NULL: the system's) */
    bool insecure;                 /* https without verifying the peer's certificate */
    bool skip_host_check;          /* verify the certificate, not that it names the host */
    const char *certfile;          /* borrowed: our client certificate (PEM), or NULL */
    const char *keyfile;           /* borrowed: its key; NULL: in certfile */
    const char *key_password;      /* borrowed: decrypts the key; NULL: not encrypted */
    const char *username;          /* borrowed: basic auth when non-NULL */
    const char *password;          /* borrowed */
    size_t body_max;               /* cap on the answer's body (0: none) */
} PeerHttpOptions;

typedef struct PeerHttpRequest {
    CURL *easy;                 /* owned (kept by peer_http_request_done(..., true)) */
    struct curl_slist *headers; /* owned */
    char *payload;              /* owned: the request body */
    HttpBody body;              /* the answer's body */
    char error[CURL_ERROR_SIZE];
} PeerHttpRequest;

/* The TLS part of *o (cafile, insecure, skip_host_check, certfile, keyfile,
 * key_password) for requests to agents, as Patroni's PatroniRequest sets it
 * up: the `ctl` section's cacert/certfile/keyfile/keyfile_password, each
 * falling back to restapi's cafile/certfile/keyfile/keyfile_password. With a
 * certfile the peer's certificate is always verified (its host name only
 * when !insecure) and ours is presented; without one it is verified unless
 * insecure. The agent asks its peers with insecure = true (Patroni's agent
 * does), dbctl with ctl.insecure (patronictl's). Pure. */
void peer_http_tls_from_config(const Config *c, bool insecure, PeerHttpOptions *o);

/* Sets req up for `method url` with payload (JSON text, NULL: none). An
 * easy handle already in req is reset and reused (its connection too).
 * Returns 0, -EINVAL (a URL that is not http:// or https://) or -ENOMEM. */
int peer_http_request_init(PeerHttpRequest *req, const char *method, const char *url,
                           const char *payload, const PeerHttpOptions *o);

/* Runs it to the end, bounded by its deadlines. Returns 0 and *ret_status
 * when an answer came (any status), -EIO when none did (the reason in
 * req->error), -EMSGSIZE when the body passed body_max. */
int peer_http_perform(PeerHttpRequest *req, long *ret_status);

/* Frees what init set up; keep_handle keeps req->easy for the next init. */
void peer_http_request_done(PeerHttpRequest *req, bool keep_handle);
