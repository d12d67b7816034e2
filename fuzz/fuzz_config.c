/* Fuzz target: the YAML config loader with environment overrides
 * (config_load_string in lib/config.c, the schema rows of
 * lib/config-schema.c). The input is YAML, then optionally a line "#ENV"
 * (a YAML comment) followed by "NAME=value" lines: up to FUZZ_ENV_MAX of
 * them are passed as the envp, so PATRONI_* / DBHA_* overrides are fuzzed
 * too without touching the process environment. A loaded Config is also
 * summarised and its port derived. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define FUZZ_ENV_MAX    16
#define FUZZ_ENV_MARKER "\n#ENV\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, fuzz_cap(size, FUZZ_INPUT_MAX));
    if (!text) {
        return 0;
    }
    char *envp[FUZZ_ENV_MAX + 1] = { NULL };
    char *marker = strstr(text, FUZZ_ENV_MARKER);
    if (marker) {
        marker[1] = '\0'; /* the YAML keeps its last '\n' */
        char *line = marker + strlen(FUZZ_ENV_MARKER);
        size_t n = 0;
        while (line && *line && n < FUZZ_ENV_MAX) {
            char *next = strchr(line, '\n');
            if (next) {
                *next++ = '\0';
            }
            if (strchr(line, '=')) {
                envp[n++] = line;
            }
            line = next;
        }
    }

    ConfigDiags diags = { 0 };
    Config *c = NULL;
    int r = config_load_string("fuzz.yml", text, envp, &c, &diags);
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (f) {
        config_diags_print(&diags, f);
        if (r == 0 && c) {
            config_summary(c, f);
        }
        fclose(f);
    }
    free(out);
    if (r == 0 && c) {
        (void)config_postgresql_port(c);
        (void)config_map_get(&c->postgresql.parameters, "max_connections");
        (void)config_watchdog_mode_to_string(c->watchdog.mode);
    }
    config_free(c);
    config_diags_done(&diags);
    free(text);
    return 0;
}
