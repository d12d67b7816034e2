/* The agents' REST client set-up (peer-http.h). */
#include "peer-http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inherit.h"

static bool http_url(const char *url)
{
    return url && (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
}

int peer_http_request_init(PeerHttpRequest *req, const char *method, const char *url,
                           const char *payload, const PeerHttpOptions *o)
{
    CURL *easy = req->easy;
    *req = (PeerHttpRequest){ .easy = easy, .body = { .max = o->body_max } };
    if (!http_url(url)) {
        return -EINVAL;
    }
    if (req->easy) {
        curl_easy_reset(req->easy);
    } else if (!(req->easy = curl_easy_init())) {
        return -ENOMEM;
    }
    CURL *c = req->easy;
    uint64_t connect = o->connect_timeout_usec ? o->connect_timeout_usec : o->timeout_usec;
    (void)curl_easy_setopt(c, CURLOPT_URL, url);
    /* a member's api_url comes from etcd: nothing but http(s), also on redirects */
    (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)inherit_curl_cloexec(c);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout_usec / 1000));
    (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect / 1000));
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &req->body);
    (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, req->error);
    if (method && strcmp(method, "GET") != 0) {
        (void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (payload) {
        req->payload = strdup(payload);
        req->headers = curl_slist_append(NULL, "Content-Type: application/json");
        if (!req->payload || !req->headers) {
            peer_http_request_done(req, true);
            return -ENOMEM;
        }
        (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, req->headers);
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->payload);
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(req->payload));
    }
    if (o->username) {
        (void)curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        (void)curl_easy_setopt(c, CURLOPT_USERNAME, o->username);
        (void)curl_easy_setopt(c, CURLOPT_PASSWORD, o->password ? o->password : "");
    }
    if (o->cafile) {
        (void)curl_easy_setopt(c, CURLOPT_CAINFO, o->cafile);
    }
    if (o->certfile) {
        (void)curl_easy_setopt(c, CURLOPT_SSLCERT, o->certfile);
        (void)curl_easy_setopt(c, CURLOPT_SSLKEY, o->keyfile ? o->keyfile : o->certfile);
        /* never NULL: OpenSSL would ask for an encrypted key's pass phrase
         * on the terminal, and wait */
        (void)curl_easy_setopt(c, CURLOPT_KEYPASSWD, o->key_password ? o->key_password : "");
    }
    if (o->insecure) {
        (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (o->skip_host_check) {
        (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return 0;
}

void peer_http_tls_from_config(const Config *c, bool insecure, PeerHttpOptions *o)
{
    const char *certfile = c->ctl.certfile ? c->ctl.certfile : c->restapi.certfile;
    o->cafile = c->ctl.cacert ? c->ctl.cacert : c->restapi.cafile;
    o->certfile = certfile;
    o->keyfile = NULL;
    o->key_password = NULL;
    o->insecure = false;
    o->skip_host_check = false;
    if (certfile) {
        /* urllib3: cert_reqs CERT_REQUIRED, assert_hostname False when insecure */
        o->keyfile = c->ctl.keyfile ? c->ctl.keyfile : c->restapi.keyfile;
        o->key_password =
            c->ctl.keyfile_password ? c->ctl.keyfile_password : c->restapi.keyfile_password;
        o->skip_host_check = insecure;
    } else {
        o->insecure = insecure;
    }
}

int peer_http_perform(PeerHttpRequest *req, long *ret_status)
{
    CURLcode rc = curl_easy_perform(req->easy);
    if (req->body.too_big) {
        return -EMSGSIZE;
    }
    if (rc != CURLE_OK) {
        if (!req->error[0]) {
            (void)strncpy(req->error, curl_easy_strerror(rc), sizeof(req->error) - 1);
        }
        return -EIO;
    }
    long status = 0;
    (void)curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    *ret_status = status;
    return 0;
}

void peer_http_request_done(PeerHttpRequest *req, bool keep_handle)
{
    curl_slist_free_all(req->headers);
    req->headers = NULL;
    free(req->payload);
    req->payload = NULL;
    http_body_done(&req->body);
    if (!keep_handle && req->easy) {
        curl_easy_cleanup(req->easy);
        req->easy = NULL;
    }
}
