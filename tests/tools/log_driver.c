/* Test driver for lib/log: logs a fixed sequence through whatever target
 * log_setup_default() picks (stderr, or journald when JOURNAL_STREAM names
 * this process's stderr), so a test can check both back ends end to end. */
#include <stdio.h>
#include <string.h>

#include "log.h"

int main(int argc, char *argv[])
{
    log_setup_default();
    log_set_max_level(LOG_LEVEL_DEBUG);
    if (argc > 1 && strcmp(argv[1], "--target") == 0) {
        printf("%s\n", log_get_target() == LOG_TARGET_JOURNAL ? "journal" : "stderr");
        return 0;
    }
    log_set_context("node1", "demo", "replica");
    log_info("agent starting");
    log_warning_errno(-111, "etcd unreachable: %m");
    log_struct_id(LOG_LEVEL_NOTICE, "8d2a4f1e5b7c4c0a9e6d3b2f1a0c9e8d", "promoted to primary");

    LogCondition c = LOG_CONDITION_INIT("postgresql down", LOG_LEVEL_WARNING);
    for (unsigned long long t = 0; t < 20; t++) {
        log_condition_update(&c, t < 10, t * 1000000ULL, "connection refused");
    }
    return 0;
}
