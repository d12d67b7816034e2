/* See httpbody.h. */
#include "httpbody.h"

#include <stdlib.h>
#include <string.h>

size_t http_body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    HttpBody *b = userdata;
    size_t n = size * nmemb;
    if (b->max && b->len + n > b->max) {
        b->too_big = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d) {
            b->too_big = true;
            return 0;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

void http_body_done(HttpBody *b)
{
    size_t max = b->max;
    free(b->data);
    *b = (HttpBody){ .max = max };
}
