/* Fuzz target: the REST health decision's path and query parsing
 * (agent/health.c: health_route, health_check, health_parse_lag). The input
 * is a request target, "/path?query" (up to the first '\n'); it is decided
 * for GET, HEAD and OPTIONS against a few nodes (leader, streaming replica,
 * paused sync standby, stopped). Checks: the status is 200 or 503 with a
 * reason, and health_check serves exactly the routes that are not OTHER. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "health.h"

#define FUZZ_TARGET_MAX 4096
#define SEC             1000000ULL

static const HealthTag tags[] = {
    { "zone", "eu-1" },
    { "nofailover", "true" },
    { "rack", "7" },
};

static const HealthNode nodes[] = {
    {
        .state = HEALTH_PG_RUNNING,
        .role = HEALTH_ROLE_PRIMARY,
        .probe_ok = true,
        .postmaster_alive = true,
        .dcs_ok = true,
        .is_leader = true,
        .leader_optime = 50331968,
        .tags = tags,
        .n_tags = 1,
        .now_usec = 100 * SEC,
        .next_run_usec = 105 * SEC,
        .ttl_usec = 30 * SEC,
    },
    {
        .state = HEALTH_PG_RUNNING,
        .role = HEALTH_ROLE_REPLICA,
        .probe_ok = true,
        .in_recovery = true,
        .replayed_lsn = 50331000,
        .postmaster_alive = true,
        .dcs_ok = true,
        .leader_optime = 50331968,
        .tags = tags,
        .n_tags = 3,
        .now_usec = 100 * SEC,
        .next_run_usec = 95 * SEC,
        .ttl_usec = 30 * SEC,
    },
    {
        .state = HEALTH_PG_RUNNING,
        .role = HEALTH_ROLE_REPLICA,
        .probe_ok = true,
        .in_recovery = true,
        .postmaster_alive = true,
        .dcs_ok = true,
        .paused = true,
        .synchronous_mode = true,
        .sync_standby = true,
        .noloadbalance = true,
        .now_usec = 100 * SEC,
        .next_run_usec = 10 * SEC,
        .ttl_usec = 30 * SEC,
    },
    {
        .state = HEALTH_PG_STOPPED,
        .role = HEALTH_ROLE_UNINITIALIZED,
        .standby_cluster = true,
        .now_usec = 100 * SEC,
        .ttl_usec = 30 * SEC,
    },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_TARGET_MAX);
    const uint8_t *nl = memchr(data, '\n', size);
    char *target = fuzz_strndup(data, nl ? (size_t)(nl - data) : size);
    if (!target) {
        return 0;
    }
    char *query = strchr(target, '?');
    if (query) {
        *query++ = '\0';
    }
    const char *path = target;

    for (int m = 0; m < _HEALTH_METHOD_MAX; m++) {
        HealthRoute route = health_route(m, path);
        if (route < 0 || route >= _HEALTH_ROUTE_MAX) {
            abort();
        }
        for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
            HealthResult res;
            int r = health_check(&nodes[i], m, path, query, &res);
            if (route == HEALTH_ROUTE_OTHER ? r != -EOPNOTSUPP : r != 0) {
                abort();
            }
            if (r == 0 && ((res.status != 200 && res.status != 503) || !res.reason)) {
                abort();
            }
        }
    }
    int64_t lag;
    (void)health_parse_lag(query ? query : path, &lag);
    (void)health_method_from_string(path);
    (void)health_role_from_string(path);
    (void)health_pg_state_from_string(path);
    free(target);
    return 0;
}
