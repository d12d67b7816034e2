/* synchronous_mode, the leader's side: each loop it picks the synchronous
 * standbys (agent/sync.c) and moves the `sync` key and
 * synchronous_standby_names towards them in the order that keeps the key
 * naming every member that could hold an acknowledged transaction:
 *
 *   adding a member:   the key first, then synchronous_standby_names;
 *   removing a member: synchronous_standby_names first; then, once its
 *                      walsender shows it is no longer waited on, our flush
 *                      position L is taken; once every member that stays has
 *                      flushed past L (so holds every commit acknowledged
 *                      before), the key drops it.
 *
 * One key write per loop at most: each step acts on what the next loop
 * observes. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "agent.h"
#include "clock.h"
#include "sync.h"

#define SYNC_NAMES_TEXT_MAX 1024

/* Compare-and-swap of the sync key: our leader key still names us and the
 * sync key is as we read it (mod_revision 0: absent). value NULL deletes. */
static int write_sync_key(Agent *a, const char *value)
{
    const char *me = a->config->name;
    const DcsSync *k = a->cluster ? a->cluster->sync : NULL;
    /* the view is read once per loop: a key we wrote since is newer */
    int64_t seen = k ? k->mod_revision : 0;
    if (a->cluster && a->sync_key_written_in == a->cluster->revision) {
        seen = a->sync_key_revision;
    }
    int64_t written = 0;
    int r = dcs_store_set_sync(&a->store, me, value, seen, &written);
    if (r >= 0) {
        a->sync_key_revision = written;
        a->sync_key_written_in = a->cluster ? a->cluster->revision : 0;
    }
    if (r == -ECANCELED) {
        return log_warning_errno(r, "the sync key or the leader key changed meanwhile: not "
                                    "writing the sync key");
    }
    if (r < 0) {
        return log_warning_errno(r, "writing the sync key: %s", a->store.error.message);
    }
    return 0;
}

static int put_sync_key(Agent *a, const SyncSet *standbys)
{
    char text[SYNC_NAMES_TEXT_MAX];
    _cleanup_free_ char *value = NULL;
    if (sync_key_text(standbys, text, sizeof(text)) < 0 ||
        dcs_sync_encode(a->config->name, text, &value) < 0) {
        return log_error_errno(-ENOMEM, "encoding the sync key");
    }
    int r = write_sync_key(a, value);
    if (r >= 0) {
        log_struct_id(LOG_LEVEL_NOTICE, "5b0e3c7d9a1f4e28b6c4d2a0f8e6b1c3",
                      "sync key: leader \"%s\", synchronous standbys \"%s\"", a->config->name,
                      text);
    }
    return r;
}

/* Writes postgresql.conf with `names` (NULL: not managed) and reloads. */
static int apply_names(Agent *a, const char *names)
{
    char *copy = NULL;
    if (names && !(copy = strdup(names))) {
        return -ENOMEM;
    }
    free(a->sync_names);
    a->sync_names = copy;
    a->pg.synchronous_standby_names = a->sync_names;
    int r = agent_write_conf(a, a->probe_ok && a->snap.in_recovery);
    if (r < 0) {
        return r;
    }
    r = agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL);
    if (r < 0) {
        return r;
    }
    a->sync_release_lsn = 0;
    agent_callbacks(a, CALLBACKS_EVENT_RELOADED);
    if (names) {
        log_struct_id(LOG_LEVEL_NOTICE, "0c6a2e8f4b1d4a97a3e5c7b9d1f3a5e7",
                      "synchronous_standby_names = '%s'", names);
    } else {
        log_notice("synchronous_standby_names is no longer managed (synchronous_mode off)");
    }
    return 0;
}

static bool member_nosync(const DcsMember *m)
{
    return m && m->tags && json_is_true(json_object_get(m->tags, "nosync"));
}

/* The leader's pg_stat_replication as the choice sees it. */
static size_t replica_rows(const Agent *a, SyncReplica *rows, size_t max)
{
    size_t n =
        a->snap.n_replication < PGPROBE_REPLICAS_MAX ? a->snap.n_replication : PGPROBE_REPLICAS_MAX;
    size_t o = 0;
    for (size_t i = 0; i < n && o < max; i++) {
        const PgReplicationRow *row = &a->snap.replication[i];
        /* PostgreSQL matches application_name case-insensitively */
        const DcsMember *m = NULL;
        for (size_t j = 0; j < a->cluster->n_members && !m; j++) {
            if (strcasecmp(a->cluster->members[j].name, row->application_name) == 0) {
                m = &a->cluster->members[j];
            }
        }
        rows[o++] = (SyncReplica){
            .name = row->application_name,
            .streaming = strcmp(row->state, "streaming") == 0,
            .eligible = m && !member_nosync(m) && strcmp(m->name, a->config->name) != 0,
            .sync = strcmp(row->sync_state, "sync") == 0 || strcmp(row->sync_state, "quorum") == 0,
            .waited_on = row->sync_state[0] && strcmp(row->sync_state, "async") != 0,
            .flush_lsn = row->flush_lsn,
        };
    }
    return o;
}

static uint64_t flush_lsn_now(Agent *a)
{
    PGresult *res = NULL;
    uint64_t lsn = 0;
    if (agent_exec_sql(a, "SELECT pg_catalog.pg_current_wal_flush_lsn()::text", &res) >= 0 && res &&
        PQntuples(res) == 1 && pgprobe_parse_lsn(PQgetvalue(res, 0, 0), &lsn) < 0) {
        lsn = 0;
    }
    if (res) {
        PQclear(res);
    }
    return lsn;
}

static int sync_off(Agent *a)
{
    /* synchronous_standby_names first, then the key */
    if (a->sync_names) {
        int r = apply_names(a, NULL);
        if (r < 0) {
            return r;
        }
    }
    const DcsSync *k = a->cluster->sync;
    if (k) {
        int r = write_sync_key(a, NULL);
        if (r >= 0) {
            log_notice("synchronous_mode is off: deleted the sync key");
        }
        return r;
    }
    return 0;
}

/* What the key says (when it names us as leader), what PostgreSQL shows,
 * and whom we want as synchronous standbys. */
typedef struct SyncView {
    bool key_mine;
    SyncSet key;
    SyncReplica rows[PGPROBE_REPLICAS_MAX];
    size_t n;
    SyncSet want;
} SyncView;

static void sync_view(const Agent *a, SyncView *v)
{
    const DcsSync *k = a->cluster->sync;
    v->key_mine = k && k->leader && strcasecmp(k->leader, a->config->name) == 0;
    v->key = (SyncSet){ 0 };
    for (size_t i = 0; v->key_mine && i < k->n_members; i++) {
        sync_set_add(&v->key, k->members[i]);
    }
    v->n = replica_rows(a, v->rows, PGPROBE_REPLICAS_MAX);
    sync_choose(v->rows, v->n, &v->key, agent_dcs(a)->synchronous_node_count, &v->want);
}

bool agent_sync_needs_tick(const Agent *a)
{
    const ConfigDcs *dcs = agent_dcs(a);
    if (!dcs->synchronous_mode || !a->cluster || !a->probe_ok || a->snap.in_recovery ||
        a->state != HA_STATE_PRIMARY) {
        return false;
    }
    SyncView v;
    sync_view(a, &v);
    /* a standby to add, or (not strict) one to give up on: commits may be
     * waiting for a standby that is gone */
    return !sync_set_subset(&v.want, &v.key) ||
           (!dcs->synchronous_mode_strict && !sync_set_subset(&v.key, &v.want));
}

int agent_sync_replication(Agent *a)
{
    if (!a->cluster || !a->probe_ok || a->snap.in_recovery) {
        return 0;
    }
    const ConfigDcs *dcs = agent_dcs(a);
    if (!dcs->synchronous_mode) {
        return sync_off(a);
    }
    SyncView v;
    sync_view(a, &v);
    bool key_mine = v.key_mine;
    SyncSet key = v.key, want = v.want;
    const SyncReplica *rows = v.rows;
    size_t n = v.n;

    char names[SYNC_NAMES_TEXT_MAX];
    if (want.n == 0 && dcs->synchronous_mode_strict) {
        /* Strict: commits keep waiting. Whoever synchronous_standby_names
         * names stays in the key; with nobody named, any standby that comes
         * may release commits ("*"), and the key names none of them, so
         * nobody is promoted in the meantime. */
        if (!key_mine) {
            return put_sync_key(a, &key);
        }
        if (!a->sync_names || !*a->sync_names) {
            if (!a->sync_async_logged) {
                log_warning("synchronous_mode_strict: no replica can be a synchronous standby; "
                            "commits wait until one streams");
                a->sync_async_logged = true;
            }
            return apply_names(a, "*");
        }
        return 0;
    }
    a->sync_async_logged = a->sync_async_logged && want.n == 0;

    /* 1. the key names every member we are about to wait for */
    if (!key_mine || !sync_set_subset(&want, &key)) {
        for (size_t i = 0; i < want.n; i++) {
            sync_set_add(&key, want.names[i]);
        }
        int r = put_sync_key(a, &key);
        if (r < 0) {
            return r;
        }
        /* our view's revision of the key is stale now: no other key write
         * in this loop (step 3 needs another loop anyway) */
    }

    /* 2. then PostgreSQL waits for them (and no longer for the others) */
    if (sync_standby_names(&want, false, names, sizeof(names)) < 0) {
        return log_error_errno(-ENOBUFS, "synchronous_standby_names too long");
    }
    if (!a->sync_names || strcmp(a->sync_names, names) != 0) {
        if (want.n == 0 && !a->sync_async_logged) {
            log_struct_id(LOG_LEVEL_WARNING, "9d7f5b3a1e2c4d68b0a2c4e6f8a0b2d4",
                          "no replica can be a synchronous standby: replicating asynchronously "
                          "until one streams (synchronous_mode_strict is off)");
            a->sync_async_logged = true;
        }
        return apply_names(a, names);
    }

    /* 3. the key stops naming members PostgreSQL released, once the members
     * that stay hold everything acknowledged up to then */
    if (sync_set_subset(&key, &want)) {
        return 0;
    }
    if (!sync_others_released(rows, n, &want)) {
        return 0; /* their walsenders have not applied the change yet */
    }
    if (a->sync_release_lsn == 0) {
        a->sync_release_lsn = flush_lsn_now(a);
        agent_schedule_tick(a, clock_monotonic_usec() + 1000 * 1000ULL);
        return 0;
    }
    if (!sync_caught_up(rows, n, &want, a->sync_release_lsn)) {
        return 0;
    }
    int r = put_sync_key(a, &want);
    if (r >= 0) {
        a->sync_release_lsn = 0;
    }
    return r;
}

int agent_sync_before_promote(Agent *a)
{
    const ConfigDcs *dcs = agent_dcs(a);
    if (!dcs->synchronous_mode) {
        /* a value left from when we led in synchronous_mode must not make
         * the new primary's commits wait */
        return a->sync_names ? apply_names(a, NULL) : 0;
    }
    /* an operator's failover naming us overrides it (refused unless forced) */
    const char *cand = dcs_failover_candidate(a->cluster);
    bool named = cand && strcmp(cand, a->config->name) == 0;
    const char *why = dcs_sync_problem(a->cluster, true, a->config->name);
    if (why && !named) {
        return log_warning_errno(-EPERM, "not promoting: %s", why);
    }
    SyncSet none = { 0 };
    int r = put_sync_key(a, &none);
    if (r < 0) {
        return r;
    }
    /* until a replica streams from us nothing but "*" (strict) can hold commits */
    r = apply_names(a, dcs->synchronous_mode_strict ? "*" : "");
    return r;
}

void agent_sync_before_start(Agent *a)
{
    const ConfigDcs *dcs = agent_dcs(a);
    if (!dcs->synchronous_mode) {
        free(a->sync_names);
        a->sync_names = NULL;
    } else if (!a->sync_names) {
        /* the last value the key allows: its standbys if it names us as leader */
        const DcsSync *k = a->cluster ? a->cluster->sync : NULL;
        bool mine = k && k->leader && strcasecmp(k->leader, a->config->name) == 0;
        SyncSet key = { 0 };
        for (size_t i = 0; mine && i < k->n_members; i++) {
            sync_set_add(&key, k->members[i]);
        }
        char names[SYNC_NAMES_TEXT_MAX];
        if (sync_standby_names(&key, key.n == 0 && dcs->synchronous_mode_strict, names,
                               sizeof(names)) >= 0) {
            a->sync_names = strdup(names);
        }
    }
    a->pg.synchronous_standby_names = a->sync_names;
}
