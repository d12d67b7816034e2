/* Fuzz target: the dynamic configuration's merge and validation
 * (lib/dynconfig.c: dynconfig_merge, dynconfig_validate). The input is two
 * JSON texts one after the other: the stored config and a PATCH /config
 * body (a lone text is validated, and merged into nothing). Checks: the
 * merge leaves both inputs as they were, and applying the same patch again
 * changes nothing (a merge patch is idempotent). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dynconfig.h"
#include "fuzz.h"

#define FUZZ_ERR_MAX 256

static void validate(const json_t *doc)
{
    char err[FUZZ_ERR_MAX];
    memset(err, 'x', sizeof(err));
    if (dynconfig_validate(doc, err, sizeof(err)) != 0 && !memchr(err, '\0', sizeof(err))) {
        abort();
    }
    (void)dynconfig_validate(doc, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_INPUT_MAX);
    json_error_t jerr;
    json_t *base =
        json_loadb((const char *)data, size, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
    if (!base) {
        return 0;
    }
    size_t used = (size_t)jerr.position <= size ? (size_t)jerr.position : size;
    json_t *patch = json_loadb((const char *)data + used, size - used, JSON_DECODE_ANY, NULL);
    validate(base);

    json_t *base_copy = json_deep_copy(base);
    json_t *patch_copy = patch ? json_deep_copy(patch) : NULL;
    json_t *merged = NULL;
    if (patch && dynconfig_merge(base, patch, &merged) == 0) {
        if (!json_equal(base, base_copy) || !json_equal(patch, patch_copy)) {
            abort();
        }
        validate(merged);
        json_t *twice = NULL;
        if (dynconfig_merge(merged, patch, &twice) == 0 && !json_equal(twice, merged)) {
            char *a = json_dumps(merged, JSON_COMPACT), *b = json_dumps(twice, JSON_COMPACT);
            fprintf(stderr, "patch applied twice:\n%s\n%s\n", a ? a : "?", b ? b : "?");
            abort();
        }
        json_decref(twice);
    }
    json_t *fresh = NULL;
    if (dynconfig_merge(NULL, base, &fresh) == 0) {
        validate(fresh);
    }
    json_decref(fresh);
    json_decref(merged);
    json_decref(base_copy);
    json_decref(patch_copy);
    json_decref(patch);
    json_decref(base);
    return 0;
}
