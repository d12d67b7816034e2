/* Shared by the fuzz targets (fuzz/fuzz_*.c): the libFuzzer entry point,
 * which fuzz/replay.c also calls when the targets are built without
 * libFuzzer, and a helper to take an input as a C string. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Inputs longer than this are cut: the work per input stays bounded. */
#define FUZZ_INPUT_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data[0..size) as a NUL-terminated copy (owned by the caller), or NULL when
 * out of memory. Embedded NULs stay: C-string parsers see a prefix. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) {
        return NULL;
    }
    if (size > 0) {
        memcpy(s, data, size);
    }
    s[size] = '\0';
    return s;
}

/* Cuts the input to FUZZ_INPUT_MAX. */
static inline size_t fuzz_cap(size_t size, size_t max)
{
    return size < max ? size : max;
}
