/* Fuzz target: the cluster view built from arbitrary keys
 * (dcs_cluster_from_result in lib/dcs.c) and what is derived from it: the
 * GET /cluster body, lag, candidates, sync and state text, the history
 * fork check, and the topology document built from the view
 * (topology_build, topology_member_changed in lib/topology.c).
 *
 * The input is a list of keys: a line "=== KEY" starts one, the lines up to
 * the next such line are its value (without the last '\n'). A KEY without
 * a leading '/' is relative to /service/demo/; a key given again is dropped
 * (etcd answers each key once), a key may hold any byte but '\n' (a NUL
 * too). Two views are built: from
 * every key, and from every key but the last (a member key changing). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dcs.h"
#include "fuzz.h"
#include "topology.h"

#define FUZZ_KEYS_MAX   64
#define FUZZ_KEY_MARKER "=== "
#define FUZZ_PREFIX     "/service/demo/"

static int add_kv(EtcdResult *r, const char *key, size_t key_len, const char *value,
                  size_t value_len)
{
    EtcdKeyValue *kv = &r->kvs[r->n_kvs];
    bool relative = key_len == 0 || key[0] != '/';
    size_t prefix_len = relative ? strlen(FUZZ_PREFIX) : 0;
    kv->key = malloc(prefix_len + key_len + 1);
    kv->value = malloc(value_len + 1);
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        *kv = (EtcdKeyValue){ 0 };
        return -1;
    }
    memcpy(kv->key, FUZZ_PREFIX, prefix_len);
    memcpy(kv->key + prefix_len, key, key_len);
    kv->key_len = prefix_len + key_len;
    kv->key[kv->key_len] = '\0';
    /* A range answer has each key once. */
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (r->kvs[i].key_len == kv->key_len && memcmp(r->kvs[i].key, kv->key, kv->key_len) == 0) {
            free(kv->key);
            free(kv->value);
            *kv = (EtcdKeyValue){ 0 };
            return 0;
        }
    }
    memcpy(kv->value, value, value_len);
    kv->value_len = value_len;
    kv->value[value_len] = '\0';
    kv->create_revision = 10 + (int64_t)r->n_kvs;
    kv->mod_revision = 20 + (int64_t)r->n_kvs;
    kv->version = 1;
    kv->lease = r->n_kvs % 3 == 0 ? 0 : 7587869330383545618LL + (int64_t)(r->n_kvs % 3);
    r->n_kvs++;
    r->count = (int64_t)r->n_kvs;
    return 0;
}

/* Splits the input into the kvs of a range answer. */
static int make_result(const char *text, size_t size, EtcdResult *r)
{
    *r = (EtcdResult){ .type = ETCD_OP_RANGE, .revision = 42 };
    r->kvs = calloc(FUZZ_KEYS_MAX, sizeof(*r->kvs));
    if (!r->kvs) {
        return -1;
    }
    const size_t marker_len = strlen(FUZZ_KEY_MARKER);
    const char *end = text + size;
    const char *p = text;
    /* Each key starts at the beginning of the input or after a '\n'. */
    while (p < end && r->n_kvs < FUZZ_KEYS_MAX) {
        if ((size_t)(end - p) < marker_len || memcmp(p, FUZZ_KEY_MARKER, marker_len) != 0) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
            continue;
        }
        const char *key = p + marker_len;
        const char *key_end = memchr(key, '\n', (size_t)(end - key));
        if (!key_end) {
            key_end = end;
        }
        const char *value = key_end < end ? key_end + 1 : end;
        const char *value_end = value;
        for (;;) {
            const char *nl = memchr(value_end, '\n', (size_t)(end - value_end));
            if (!nl) {
                value_end = end;
                break;
            }
            if ((size_t)(end - nl - 1) >= marker_len &&
                memcmp(nl + 1, FUZZ_KEY_MARKER, marker_len) == 0) {
                value_end = nl;
                break;
            }
            value_end = nl + 1;
        }
        if (add_kv(r, key, (size_t)(key_end - key), value, (size_t)(value_end - value)) < 0) {
            return -1;
        }
        p = value_end < end ? value_end + 1 : end;
    }
    return 0;
}

static void exercise(const DcsCluster *c)
{
    json_t *j = NULL;
    if (dcs_cluster_to_json(c, "demo", &j) == 0) {
        char *s = json_dumps(j, JSON_COMPACT);
        free(s);
        json_decref(j);
    }
    (void)dcs_cluster_leader_member(c);
    (void)dcs_cluster_is_paused(c);
    (void)dcs_cluster_is_standby(c);
    (void)dcs_pick_candidate(c);
    (void)dcs_failover_candidate(c);
    uint64_t lsn = 0;
    (void)dcs_cluster_reference_lsn(c, &lsn);
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        DcsLag lag;
        (void)dcs_member_lag_info(c, m, &lag);
        (void)dcs_member_state_text(c, m);
        (void)dcs_candidate_problem(c, m, false);
        (void)dcs_candidate_problem(c, m, true);
        (void)dcs_sync_problem(c, true, m->name);
        (void)dcs_cluster_is_sync_standby(c, m->name);
        (void)dcs_cluster_replication_row(c, m->name);
        (void)dcs_cluster_get_member(c, m->name);
    }
    if (c->history) {
        for (size_t i = 0; i < c->history->n_entries; i++) {
            const DcsHistoryEntry *e = &c->history->entries[i];
            (void)dcs_history_diverged(c->history, e->timeline, e->lsn + 1, e->timeline + 1);
            double t;
            if (e->timestamp) {
                (void)dcs_parse_time(e->timestamp, &t);
            }
        }
    }
    if (c->failover && c->failover->scheduled_at) {
        double t;
        (void)dcs_parse_time(c->failover->scheduled_at, &t);
        (void)dcs_parse_time_full(c->failover->scheduled_at, true, &t);
    }

    json_t *doc = NULL;
    if (topology_build(c, "demo", NULL, &doc) == 0) {
        if (!topology_same(doc, doc)) {
            abort();
        }
        json_t *stamped = json_deep_copy(doc);
        if (stamped && topology_stamp(stamped, 7, "2026-11-27T13:00:00.123456+00:00") == 0 &&
            (!topology_same(doc, stamped) || topology_version(stamped) != 7)) {
            abort();
        }
        json_decref(stamped);
        json_decref(doc);
    }
    const TopologySelf self = { .name = "node1",
                                .host = "127.0.0.1",
                                .port = 5441,
                                .api_url = "http://127.0.0.1:8011/patroni",
                                .timeline = 3 };
    if (topology_build(c, "demo", &self, &doc) == 0) {
        json_decref(doc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_INPUT_MAX);
    DcsPaths paths;
    if (dcs_paths_init(&paths, "/service/", "demo") < 0) {
        return 0;
    }
    EtcdResult r;
    DcsCluster *after = NULL, *before = NULL;
    if (make_result((const char *)data, size, &r) == 0 &&
        dcs_cluster_from_result(&paths, &r, &after) == 0) {
        exercise(after);
        if (r.n_kvs > 0) {
            r.n_kvs--; /* the view before the last key was written */
            if (dcs_cluster_from_result(&paths, &r, &before) == 0) {
                for (size_t i = 0; i < after->n_members; i++) {
                    (void)topology_member_changed(before, after, after->members[i].name);
                }
                if (r.n_kvs > 0 && r.kvs[r.n_kvs].key_len > strlen(paths.members) &&
                    memcmp(r.kvs[r.n_kvs].key, paths.members, strlen(paths.members)) == 0) {
                    (void)topology_member_changed(before, after,
                                                  r.kvs[r.n_kvs].key + strlen(paths.members));
                }
            }
            r.n_kvs++;
        }
    }
    dcs_cluster_free(before);
    dcs_cluster_free(after);
    etcd_result_done(&r);
    dcs_paths_done(&paths);
    return 0;
}
