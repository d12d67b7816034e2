/* The resident-memory floor of dbagent's libraries.
 *
 * Links exactly the libraries dbagent links (the Makefile passes the same
 * pkg-config line), does what the agent must do before its own code runs
 * (curl_global_init, which initializes libcurl's TLS backend), and prints
 * /proc/self/status memory fields as one JSON object. With --init none it
 * skips curl_global_init, showing the cost of loading alone. bench/footprint
 * runs it; nothing here is the agent's code. Built with -DFLOOR_BARE it
 * links libc only: the floor of any C program. --hold keeps the process
 * alive until stdin closes, so that its /proc/PID/smaps can be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef FLOOR_BARE
#include <gnutls/gnutls.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <systemd/sd-event.h>
#include <yaml.h>
#endif

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    size_t n = strlen(field);
    long kb = -1;

    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = atol(line + n + 1);
        }
    }
    fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    const char *init = "curl_global_init";
    int hold = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hold") == 0) {
            hold = 1;
        } else if (strcmp(argv[i], "--init") == 0 && i + 1 < argc &&
                   strcmp(argv[i + 1], "none") == 0) {
            init = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--init none] [--hold]\n", argv[0]);
            return 2;
        }
    }
#ifdef FLOOR_BARE
    init = "none";
#else
    /* Reference one symbol of each library so that --as-needed keeps
     * every one of them, as in dbagent. */
    const void *volatile keep[] = {
        (const void *)PQlibVersion,        (const void *)yaml_get_version_string,
        (const void *)json_object,         (const void *)MHD_get_version,
        (const void *)sd_event_new,        (const void *)curl_version,
        (const void *)gnutls_check_version
    };
    (void)keep;
    if (strcmp(init, "none") != 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return 1;
    }
#endif
    printf("{\"init\": \"%s\", \"VmRSS\": %ld, \"RssAnon\": %ld, \"RssFile\": %ld}\n", init,
           status_kb("VmRSS"), status_kb("RssAnon"), status_kb("RssFile"));
    fflush(stdout);
    if (hold) {
        while (getchar() != EOF)
            ;
    }
    return 0;
}
