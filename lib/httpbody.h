/* An HTTP answer's body collected by libcurl (CURLOPT_WRITEFUNCTION
 * http_body_write, CURLOPT_WRITEDATA a HttpBody), with a size cap: the one
 * sink of the etcd client, the election's peer fetches, dbctl's REST calls
 * and libdbha's REST source. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct HttpBody {
    char *data;   /* owned; NUL-terminated after len bytes; NULL before the first byte */
    size_t len;   /* bytes received */
    size_t cap;   /* bytes allocated */
    size_t max;   /* cap on len (set by the caller; 0: no cap) */
    bool too_big; /* the answer passed max, or memory ran out: the transfer was aborted */
} HttpBody;

/* Appends the chunk; returns its size, or 0 (libcurl then aborts the
 * transfer with CURLE_WRITE_ERROR) when it would pass max or memory runs
 * out (too_big is set either way). */
size_t http_body_write(char *ptr, size_t size, size_t nmemb, void *userdata);

/* Frees the data and zeroes everything but max. */
void http_body_done(HttpBody *b);
