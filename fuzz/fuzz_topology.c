/* Fuzz target: the topology document as routers read it (lib/topology.c:
 * topology_version, topology_same, topology_lag_bucket, topology_stamp;
 * lib/pgbini.c: pgbini_choose, pgbini_replica_healthy). The input is the
 * topology key's value. Checks: a document is the same as itself, as its
 * stamped copy and as its encoded-then-parsed copy; choosing again with the
 * chosen replica as the current one keeps it. (Building a document from a
 * cluster view is fuzzed by fuzz_dcs.) */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "pgbini.h"
#include "topology.h"

static void check_choice(const json_t *doc)
{
    PgbIniChoice first;
    if (pgbini_choose(doc, NULL, 0, &first) != 0) {
        return;
    }
    if (!first.replica.name || first.replica_is_primary) {
        return;
    }
    PgbIniChoice again;
    if (pgbini_choose(doc, first.replica.host, first.replica.port, &again) != 0 ||
        !again.replica.host || strcmp(again.replica.host, first.replica.host) != 0 ||
        again.replica.port != first.replica.port) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_INPUT_MAX);
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!doc) {
        return 0;
    }
    (void)topology_version(doc);
    (void)topology_lag_bucket(doc);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "replicas"), i, r)
    {
        (void)topology_lag_bucket(json_object_get(r, "lag_bytes"));
        (void)pgbini_replica_healthy(r);
    }
    check_choice(doc);

    if (json_is_object(doc)) {
        if (!topology_same(doc, doc)) {
            abort();
        }
        json_t *stamped = json_deep_copy(doc);
        if (stamped && topology_stamp(stamped, 12, "2026-11-27T13:00:00.123456+00:00") == 0 &&
            (!topology_same(doc, stamped) || topology_version(stamped) != 12)) {
            abort();
        }
        json_decref(stamped);
        char *text = json_dumps(doc, JSON_COMPACT);
        if (text) {
            json_t *back = json_loads(text, 0, NULL);
            if (back && !topology_same(doc, back)) {
                abort();
            }
            json_decref(back);
            free(text);
        }
    }
    (void)topology_same(doc, NULL);
    json_decref(doc);
    return 0;
}
