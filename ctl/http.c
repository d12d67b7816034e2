/* dbctl -> agent REST calls. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "macro.h"
#include "peer-http.h"

#define CTL_HTTP_CONNECT_TIMEOUT_MS 1000ULL

void ctl_http_reply_done(CtlHttpReply *r)
{
    if (r) {
        free(r->body);
        r->body = NULL;
        r->len = 0;
    }
}

char *ctl_api_base(const char *api_url)
{
    if (!api_url) {
        return NULL;
    }
    const char *scheme = strstr(api_url, "://");
    const char *host = scheme ? scheme + 3 : api_url;
    size_t n = (size_t)(host - api_url) + strcspn(host, "/");
    return strndup(api_url, n);
}

int ctl_http(const char *method, const char *base, const char *path, const json_t *body,
             const Config *cfg, long timeout_ms, CtlHttpReply *ret)
{
    *ret = (CtlHttpReply){ 0 };
    _cleanup_free_ char *url = NULL, *text = NULL;
    if (asprintf(&url, "%s%s", base, path) < 0) {
        return -ENOMEM;
    }
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        return -ENOMEM;
    }
    PeerHttpOptions o = {
        .timeout_usec = (uint64_t)timeout_ms * 1000,
        .connect_timeout_usec = CTL_HTTP_CONNECT_TIMEOUT_MS * 1000,
        .body_max = CTL_HTTP_BODY_MAX,
        .insecure = arg_insecure,
    };
    if (cfg) {
        /* PatroniRequest: ctl's credentials, else restapi's */
        bool ctl_auth = cfg->ctl.authentication.username != NULL;
        o.username =
            ctl_auth ? cfg->ctl.authentication.username : cfg->restapi.authentication.username;
        o.password = strempty(ctl_auth ? cfg->ctl.authentication.password
                                       : cfg->restapi.authentication.password);
        /* patronictl: the client certificate too (restapi.verify_client) */
        peer_http_tls_from_config(cfg, cfg->ctl.insecure || arg_insecure, &o);
    }
    const char *payload = strcmp(method, "GET") != 0 ? (text ? text : "") : NULL;
    PeerHttpRequest req = { 0 };
    int r = peer_http_request_init(&req, method, url, payload, &o);
    if (r < 0) {
        if (r == -EINVAL) {
            (void)snprintf(ret->error, sizeof(ret->error), "not an http(s) URL: %s", url);
            r = -EIO;
        }
        peer_http_request_done(&req, false);
        return r;
    }
    r = peer_http_perform(&req, &ret->status);
    if (r >= 0) {
        ret->body = TAKE_PTR(req.body.data);
        ret->len = req.body.len;
    } else {
        (void)snprintf(ret->error, sizeof(ret->error), "%s",
                       r == -EMSGSIZE ? "the answer is too large" : req.error);
        ret->status = 0;
        r = -EIO;
    }
    peer_http_request_done(&req, false);
    return r;
}

void ctl_http_message(const CtlHttpReply *r, char *buf, size_t size)
{
    if (!r->body || r->len == 0) {
        (void)snprintf(buf, size, "%s", r->status ? "(no message)" : r->error);
        return;
    }
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    const char *e = json_string_value(json_object_get(doc, "error"));
    (void)snprintf(buf, size, "%s", e ? e : r->body);
    json_decref(doc);
}
