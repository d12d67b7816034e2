/* dbctl's HTTP calls to the agents' REST APIs (libcurl): one request with
 * a deadline, basic auth and CA from the -c CONFIG file's restapi section
 * when given, the body kept in memory. */
#pragma once

#include <stddef.h>

#include <jansson.h>

#include "config.h"

#define CTL_HTTP_BODY_MAX (1024 * 1024)

typedef struct CtlHttpReply {
    long status; /* 0: no answer (see error) */
    char *body;  /* owned, NUL-terminated, may be NULL */
    size_t len;
    char error[256]; /* why there was no answer */
} CtlHttpReply;

void ctl_http_reply_done(CtlHttpReply *r);

/* The REST base URL ("http://host:port") of a member from its api_url
 * ("http://host:port/patroni"). Returns a malloc'ed string or NULL. */
char *ctl_api_base(const char *api_url);

/* method base+path with body (JSON, may be NULL). cfg (may be NULL) gives
 * restapi.authentication and restapi.cafile. Returns 0 when an answer came
 * (any status), -EIO (no answer, reason in ret->error) or -ENOMEM. */
int ctl_http(const char *method, const char *base, const char *path, const json_t *body,
             const Config *cfg, long timeout_ms, CtlHttpReply *ret);

/* The reply's message into buf: the text body, the "error" of a JSON one,
 * or why there was no answer. */
void ctl_http_message(const CtlHttpReply *r, char *buf, size_t size);
