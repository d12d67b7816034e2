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
#include "sync_exec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "log.h"
#include "macro.h"

void sync_rep_done(SyncRep *s)
{
    free(s->names);
    *s = (SyncRep){ 0 };
}

int sync_rep_set_names(SyncRep *s, const char *names)
{
    char *copy = names ? strdup(names) : NULL;
    if (names && !copy) {
        return -ENOMEM;
    }
    free(s->names);
    s->names = copy;
    return 0;
}

int sync_rep_write_key(SyncRep *s, const SyncEnv *env, const SyncSet *standbys)
{
    char text[SYNC_NAMES_TEXT_MAX];
    _cleanup_free_ char *value = NULL;
    if (standbys && (sync_key_text(standbys, text, sizeof(text)) < 0 ||
                     dcs_sync_encode(env->me, text, &value) < 0)) {
        return log_error_errno(-ENOMEM, "encoding the sync key");
    }
    const DcsSync *k = env->view ? env->view->sync : NULL;
    /* the view is read once per loop: a key we wrote since is newer */
    int64_t seen = k ? k->mod_revision : 0;
    if (env->view && s->key_written_in == env->view->revision) {
        seen = s->key_revision;
    }
    int64_t written = 0;
    int r = dcs_store_set_sync(env->store, env->me, value, seen, &written);
    if (r >= 0) {
        s->key_revision = written;
        s->key_written_in = env->view ? env->view->revision : 0;
    }
    if (r == -ECANCELED) {
        return log_warning_errno(r, "the sync key or the leader key changed meanwhile: not "
                                    "writing the sync key");
    }
    if (r < 0) {
        return log_warning_errno(r, "writing the sync key: %s", env->store->error.message);
    }
    if (standbys) {
        log_struct_id(LOG_LEVEL_NOTICE, "5b0e3c7d9a1f4e28b6c4d2a0f8e6b1c3",
                      "sync key: leader \"%s\", synchronous standbys \"%s\"", env->me, text);
    } else {
        log_notice("synchronous_mode is off: deleted the sync key");
    }
    return 0;
}

static bool member_nosync(const DcsMember *m)
{
    return m && m->tags && json_is_true(json_object_get(m->tags, "nosync"));
}

/* The leader's pg_stat_replication as the choice sees it. */
static size_t replica_rows(const SyncEnv *env, SyncReplica *rows, size_t max)
{
    const PgSnapshot *snap = env->snap;
    const DcsCluster *c = env->view;
    size_t n =
        snap->n_replication < PGPROBE_REPLICAS_MAX ? snap->n_replication : PGPROBE_REPLICAS_MAX;
    size_t o = 0;
    for (size_t i = 0; i < n && o < max; i++) {
        const PgReplicationRow *row = &snap->replication[i];
        /* PostgreSQL matches application_name case-insensitively */
        const DcsMember *m = NULL;
        for (size_t j = 0; j < c->n_members && !m; j++) {
            if (strcasecmp(c->members[j].name, row->application_name) == 0) {
                m = &c->members[j];
            }
        }
        rows[o++] = (SyncReplica){
            .name = row->application_name,
            .streaming = strcmp(row->state, "streaming") == 0,
            .eligible = m && !member_nosync(m) && strcmp(m->name, env->me) != 0,
            .sync = strcmp(row->sync_state, "sync") == 0 || strcmp(row->sync_state, "quorum") == 0,
            .waited_on = row->sync_state[0] && strcmp(row->sync_state, "async") != 0,
            .flush_lsn = row->flush_lsn,
        };
    }
    return o;
}

static void key_of(const SyncEnv *env, bool *ret_mine, SyncSet *ret)
{
    const DcsSync *k = env->view ? env->view->sync : NULL;
    bool mine = k && k->leader && strcasecmp(k->leader, env->me) == 0;
    *ret = (SyncSet){ 0 };
    for (size_t i = 0; mine && i < k->n_members; i++) {
        sync_set_add(ret, k->members[i]);
    }
    *ret_mine = mine;
}

bool sync_rep_input(const SyncRep *s, const SyncEnv *env, SyncReplica rows[PGPROBE_REPLICAS_MAX],
                    SyncPlanInput *in)
{
    if (!env->view || !env->snap || env->snap->in_recovery) {
        return false;
    }
    *in = (SyncPlanInput){
        .enabled = env->dcs->synchronous_mode,
        .strict = env->dcs->synchronous_mode_strict,
        .node_count = env->dcs->synchronous_node_count,
        .lag = { .max_lag = env->dcs->maximum_lag_on_syncnode,
                 .primary_lsn = env->snap->current_lsn },
        .key_present = env->view->sync != NULL,
        .rows = rows,
        .names = s->names,
        .release_lsn = s->release_lsn,
        .async_said = s->async_said,
    };
    key_of(env, &in->key_mine, &in->key);
    in->n = replica_rows(env, rows, PGPROBE_REPLICAS_MAX);
    return true;
}

void sync_rep_before_start(SyncRep *s, const SyncEnv *env)
{
    if (!env->dcs->synchronous_mode) {
        (void)sync_rep_set_names(s, NULL);
        return;
    }
    if (s->names) {
        return;
    }
    bool mine;
    SyncSet key;
    key_of(env, &mine, &key);
    char names[SYNC_NAMES_TEXT_MAX];
    if (sync_standby_names(&key, key.n == 0 && env->dcs->synchronous_mode_strict, names,
                           sizeof(names)) >= 0) {
        (void)sync_rep_set_names(s, names);
    }
}

bool sync_rep_needs_tick(const SyncRep *s, const SyncEnv *env)
{
    SyncReplica rows[PGPROBE_REPLICAS_MAX];
    SyncPlanInput in;
    return sync_rep_input(s, env, rows, &in) && sync_needs_step(&in);
}
