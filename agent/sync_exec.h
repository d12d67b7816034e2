/* synchronous_mode, the leader's side, and what it remembers between
 * loops. The step itself is pure (sync_plan() in agent/sync.h); this part
 * builds its input from the view and the probe, writes the `sync` key, and
 * owns the synchronous_standby_names value we manage. postgresql.conf is
 * written by the executor (agent/ha_exec.c), which tells us when. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dcs-store.h"
#include "dcs.h"
#include "pgprobe.h"
#include "sync.h"

typedef struct SyncRep {
    char *names;          /* owned: synchronous_standby_names we wrote; NULL: not managed */
    uint64_t release_lsn; /* shrinking the `sync` key: our flush position once the members
                             leaving it were released (0: not yet) */
    bool async_said;      /* "no synchronous standby" was said for this episode */
    /* the sync key's mod_revision after our last write of it (0: deleted),
     * and the revision of the view it was written under: a second write
     * under the same view compares with it */
    int64_t key_revision;
    int64_t key_written_in;
} SyncRep;

/* What a step reads, borrowed for one call. */
typedef struct SyncEnv {
    const char *me;
    const ConfigDcs *dcs;
    const DcsCluster *view; /* NULL: none */
    DcsStore *store;
    const PgSnapshot *snap; /* NULL: the last probe failed */
} SyncEnv;

void sync_rep_done(SyncRep *s);

/* The plan's input for a primary (false when there is no view or the probe
 * shows no primary). rows is filled, in->rows points at it. */
bool sync_rep_input(const SyncRep *s, const SyncEnv *env, SyncReplica rows[PGPROBE_REPLICAS_MAX],
                    SyncPlanInput *in);

/* Compare-and-swap of the sync key: our leader key still names us and the
 * sync key is as the view shows it (or as we wrote it under this view).
 * standbys NULL deletes it. Logs the outcome. Returns 0 or -errno
 * (-ECANCELED: something changed meanwhile). */
int sync_rep_write_key(SyncRep *s, const SyncEnv *env, const SyncSet *standbys);

/* The synchronous_standby_names value we manage from now (NULL: none;
 * copied). Returns 0 or -ENOMEM. */
int sync_rep_set_names(SyncRep *s, const char *names);
static inline const char *sync_rep_names(const SyncRep *s)
{
    return s->names;
}

/* The value to start a primary with: when synchronous_mode is on and we
 * manage nothing yet, the last value the key allows (its standbys if it
 * names us as leader; "*" in strict mode with none). */
void sync_rep_before_start(SyncRep *s, const SyncEnv *env);

/* The leader's probe sees a synchronous standby to add or (not strict) to
 * give up on: the loop should run now rather than at loop_wait. */
bool sync_rep_needs_tick(const SyncRep *s, const SyncEnv *env);
