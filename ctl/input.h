/* dbctl's input documents: a YAML or JSON text (a config to apply, the
 * result of $EDITOR) turned into a json_t, with scalars typed as PyYAML's
 * safe_load types them, so what patronictl users write means the same.
 * Nothing here logs. */
#pragma once

#include <stddef.h>

#include <jansson.h>

/* Nesting deeper than this is refused (also catches recursive aliases). */
#define INPUT_DEPTH_MAX 64
/* Room for an error message ("line L, column C: ...") */
#define INPUT_ERROR_MAX 256

/* Parses text (len bytes) as JSON, else as one YAML document. Plain YAML
 * scalars become null (~, null, empty), booleans (true/false, yes/no,
 * on/off in their three casings), decimal integers (with '_'), floats
 * (with a '.') or strings; quoted and block scalars are strings; mapping
 * keys are strings. Returns 0 and a new reference in *ret, -ENODATA for an
 * empty document, -EINVAL with a message in err (line and column for YAML),
 * or -ENOMEM. */
int input_parse_document(const char *text, size_t len, json_t **ret, char *err, size_t errlen);

/* Reads a whole file ("-" for stdin) of at most max_bytes into a new
 * NUL-terminated buffer. Returns 0 with *ret and *ret_len, -EFBIG beyond
 * max_bytes, or the -errno of open/read. */
int input_read_file(const char *path, size_t max_bytes, char **ret, size_t *ret_len);
