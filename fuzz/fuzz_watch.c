/* Fuzz target: the etcd watch stream (lib/etcd-watch.c's line buffer and
 * etcd_parse_watch_line in lib/etcd-json.c). The input is the stream's
 * bytes, fed to the line buffer in chunks whose sizes come from the input
 * itself (as curl hands them over), each complete line parsed as a watch
 * message. Checks that the lines handed out, joined with '\n', are the
 * input's non-empty lines (a "\r" before the "\n" dropped). */
#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "fuzz.h"

#define FUZZ_CHUNK_MAX 97 /* a prime, so chunk ends fall everywhere */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_INPUT_MAX);
    EtcdLineBuffer b = { 0 };
    size_t off = 0, seen = 0;
    while (off < size) {
        size_t chunk = 1 + (size_t)data[off] % FUZZ_CHUNK_MAX;
        if (chunk > size - off) {
            chunk = size - off;
        }
        if (etcd_line_buffer_append(&b, data + off, chunk) < 0) {
            break;
        }
        off += chunk;
        const char *line;
        size_t len;
        while (etcd_line_buffer_next(&b, &line, &len) == 1) {
            if (len == 0 || memchr(line, '\n', len)) {
                abort(); /* empty lines are skipped; a line has no '\n' */
            }
            /* The line is the input's next non-empty line, without its
             * "\n" or "\r\n". */
            for (;;) {
                if (seen < size && data[seen] == '\n') {
                    seen++;
                } else if (seen + 1 < size && data[seen] == '\r' && data[seen + 1] == '\n') {
                    seen += 2;
                } else {
                    break;
                }
            }
            if (seen + len > size || memcmp(data + seen, line, len) != 0) {
                abort();
            }
            seen += len;
            if (seen < size && data[seen] == '\r') {
                seen++;
            }
            if (seen >= size || data[seen] != '\n') {
                abort();
            }
            seen++;
            EtcdWatchResponse w = { 0 };
            EtcdError err;
            (void)etcd_parse_watch_line(line, len, &w, &err);
            etcd_watch_response_done(&w);
        }
    }
    const char *rest;
    (void)etcd_line_buffer_pending(&b, &rest);
    etcd_line_buffer_done(&b);
    return 0;
}
