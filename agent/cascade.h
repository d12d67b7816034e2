/* Cascading replication, the agent's memory of it: whom this replica
 * streams from (the pure choice is upstream_choose() in lib/upstream.h),
 * the choice last logged, and a replicatefrom member it gave up on. A
 * replica whose walreceiver does not stream from its replicatefrom member
 * on two looks falls back to the leader at once (within two loops) instead
 * of waiting out that member's ttl: its key may say "streaming" while its
 * PostgreSQL is dead and its agent hung. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dcs.h"

/* A replicatefrom member we could not stream from is tried again after
 * this backoff (doubled per failure in a row up to the max), and only once
 * its agent has rewritten its member key. */
#define CASCADE_RETRY_MIN_USEC (2 * 1000 * 1000ULL)
#define CASCADE_RETRY_MAX_USEC (60 * 1000 * 1000ULL)

typedef struct Cascade {
    char *following; /* owned: the member primary_conninfo points at, NULL: none */
    /* the last upstream choice logged: its member (owned), whether it
     * cascades, and why not (static) */
    char *note_member;
    bool note_cascading, noted;
    const char *note_why;
    char *avoid;            /* owned: a replicatefrom member we could not stream from */
    int64_t avoid_revision; /* its member key's mod_revision when we gave up on it */
    uint64_t retry_usec;    /* and not before this */
    unsigned failures;      /* give-ups in a row, for the backoff */
    uint64_t down_usec;     /* the first look that saw no streaming from a replicatefrom
                               upstream (0: streaming, or not cascading) */
} Cascade;

void cascade_done(Cascade *c);

/* Whom to stream from now: upstream_choose() on the view, our replicatefrom
 * tag and the member we gave up on; logs the choice when it changes.
 * Borrowed from view; NULL when there is none. */
const DcsMember *cascade_upstream(Cascade *c, const DcsCluster *view, const Config *config);

/* primary_conninfo now points at `name` (NULL: nobody). Its own looks
 * count from now. Returns 0 or -ENOMEM. */
int cascade_set_following(Cascade *c, const char *name);
static inline const char *cascade_following(const Cascade *c)
{
    return c->following;
}
/* We stream (or are configured to) from m. */
bool cascade_follows(const Cascade *c, const DcsMember *m);

/* One look (a tick or a probe): `replica` is a running replica in the
 * REPLICA state, `streaming` its walreceiver streams. When two looks at
 * least half a loop_wait apart see a replicatefrom upstream not streaming,
 * gives up on that member until its agent has rewritten its key and the
 * backoff has passed (logged). Returns when a tick should look (again) or
 * act: now after a give-up, the second look's time after a first failed
 * one; 0: no need. view NULL: etcd is not reachable (nothing to do). */
uint64_t cascade_observe(Cascade *c, const DcsCluster *view, const char *replicatefrom,
                         bool replica, bool streaming, int64_t loop_wait, uint64_t now);
