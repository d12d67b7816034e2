/* dbctl -> agent REST calls. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "httpbody.h"
#include "macro.h"

#define CTL_HTTP_CONNECT_TIMEOUT_MS 1000L

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
    CURL *curl = curl_easy_init();
    if (!curl) {
        return -ENOMEM;
    }
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    HttpBody s = { .max = CTL_HTTP_BODY_MAX };
    char errbuf[CURL_ERROR_SIZE] = "";
    (void)curl_easy_setopt(curl, CURLOPT_URL, url);
    (void)curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    (void)curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    (void)curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CTL_HTTP_CONNECT_TIMEOUT_MS);
    (void)curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_body_write);
    (void)curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
    (void)curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    (void)curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") != 0) {
        (void)curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text ? text : "");
        (void)curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(text ? strlen(text) : 0));
    }
    if (cfg && cfg->restapi.authentication.username) {
        (void)curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        (void)curl_easy_setopt(curl, CURLOPT_USERNAME, cfg->restapi.authentication.username);
        (void)curl_easy_setopt(curl, CURLOPT_PASSWORD,
                               strempty(cfg->restapi.authentication.password));
    }
    if (cfg && cfg->restapi.cafile) {
        (void)curl_easy_setopt(curl, CURLOPT_CAINFO, cfg->restapi.cafile);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        (void)curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ret->status);
        ret->body = s.data;
        ret->len = s.len;
    } else {
        free(s.data);
        (void)snprintf(ret->error, sizeof(ret->error), "%s",
                       errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK ? 0 : -EIO;
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
