/* Test driver for agent/fence: plays the agent. Starts (or reuses) the fence
 * process for DATA_DIR through HEARTBEAT_PATH, prints a status line, then
 * reads one command per line from stdin and answers each with one JSON line:
 *
 *   arm MS     deadline MS milliseconds from now; answers the deadline
 *   disarm
 *   status     {"fence_pid", "fenced_count", "armed", "deadline_usec", ...}
 *   stop       fence_stop() and exit 0 (a clean agent shutdown)
 *   exit       exit 0 leaving the fence running (like a crashed agent)
 *
 * fence_driver HEARTBEAT_PATH DATA_DIR [BIN_DIR]   (BIN_DIR is ignored) */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fence.h"
#include "log.h"
#include "pgprobe.h"

#define DRIVER_LINE_MAX 256

static void print_status(const char *what, const Fence *f)
{
    printf("{\"event\": \"%s\", \"driver_pid\": %d, \"fence_pid\": %d, \"reused\": %s, "
           "\"fenced_count\": %u, \"armed\": %s, \"deadline_usec\": %" PRIu64
           ", \"last_fence_usec\": %" PRIu64 ", \"now_usec\": %" PRIu64 "}\n",
           what, (int)getpid(), fence_get_pid(f), fence_get_reused(f) ? "true" : "false",
           fence_get_fenced_count(f), fence_is_armed(f) ? "true" : "false",
           fence_get_deadline_usec(f), fence_get_last_fence_usec(f), clock_monotonic_usec());
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: fence_driver HEARTBEAT_PATH DATA_DIR [BIN_DIR]\n");
        return 2;
    }
    log_set_max_level(LOG_LEVEL_DEBUG);
    Fence *f = NULL;
    int r = fence_start(argv[1], argv[2], &f);
    if (r < 0) {
        fprintf(stderr, "fence_start: %s\n", strerror(-r));
        return 1;
    }
    print_status("started", f);

    char line[DRIVER_LINE_MAX];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        unsigned long ms;
        if (sscanf(line, "arm %lu", &ms) == 1) {
            fence_arm(f, clock_monotonic_usec() + (uint64_t)ms * 1000);
            print_status("armed", f);
        } else if (strcmp(line, "disarm") == 0) {
            fence_disarm(f);
            print_status("disarmed", f);
        } else if (strcmp(line, "status") == 0) {
            print_status("status", f);
        } else if (strcmp(line, "ensure") == 0) {
            r = fence_ensure(f);
            print_status(r < 0 ? "ensure-failed" : r > 0 ? "restarted" : "ensured", f);
        } else if (strcmp(line, "stop") == 0) {
            int pid = fence_get_pid(f);
            f = fence_stop(f);
            printf("{\"event\": \"stopped\", \"fence_pid\": %d}\n", pid);
            fflush(stdout);
            return 0;
        } else if (strcmp(line, "exit") == 0) {
            break;
        } else {
            printf("{\"event\": \"error\", \"error\": \"unknown command\"}\n");
            fflush(stdout);
        }
    }
    /* stdin closed or "exit": leave the fence process running */
    f = fence_free(f);
    return 0;
}
