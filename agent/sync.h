/* Synchronous replication (synchronous_mode), the leader's pure part: which
 * replicas to make synchronous standbys, how synchronous_standby_names is
 * written, and when the `sync` key may stop naming a member.
 *
 * The invariant, kept by agent/syncrep.c with these functions: at every
 * moment the `sync` key names every member that could hold a transaction the
 * leader acknowledged. So a member joins the key before it enters
 * synchronous_standby_names, and leaves the key only after it left
 * synchronous_standby_names (its walsender no longer releases waiting
 * commits) and the members that stay have flushed everything written up to
 * that moment. Only members the key names may be promoted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYNC_SET_MAX 16

/* One row of the leader's pg_stat_replication, as the choice needs it. */
typedef struct SyncReplica {
    const char *name;   /* application_name, which is the member name */
    bool streaming;     /* state = 'streaming' */
    bool eligible;      /* a member of the cluster, not tagged nosync */
    bool sync;          /* sync_state 'sync' or 'quorum': its flushes release commits */
    bool waited_on;     /* sync_state other than 'async' (named in synchronous_standby_names) */
    uint64_t flush_lsn; /* 0 when NULL */
} SyncReplica;

/* A set of member names, borrowed from the rows or the key. */
typedef struct SyncSet {
    const char *names[SYNC_SET_MAX];
    size_t n;
} SyncSet;

/* Case-insensitive, as PostgreSQL matches application_name. */
bool sync_set_contains(const SyncSet *s, const char *name);
/* Every name of a is in b. */
bool sync_set_subset(const SyncSet *a, const SyncSet *b);
/* Adds name unless present or full. */
void sync_set_add(SyncSet *s, const char *name);

/* Patroni's maximum_lag_on_syncnode: a row is a candidate only while it has
 * flushed to within max_lag bytes of the furthest candidate's flush
 * position (of primary_lsn when it is the only one); max_lag <= 0: no
 * limit, as Patroni. */
typedef struct SyncLagLimit {
    int64_t max_lag;
    uint64_t primary_lsn;
} SyncLagLimit;

/* The synchronous standbys to have: up to `count` rows that are streaming,
 * eligible and within `lag`, those already in `current` first (a working
 * synchronous standby is kept), then the others by flush position (highest
 * first), then by name. Fills *ret with borrowed names. */
void sync_choose(const SyncReplica *rows, size_t n, const SyncSet *current, int64_t count,
                 const SyncLagLimit *lag, SyncSet *ret);

/* synchronous_standby_names for the set: `FIRST k ("a","b")` with k the set's
 * size, "" for an empty set, or "*" with any_standby (strict mode with no
 * candidate: commits wait for whichever standby comes). Returns 0 or
 * -ENOBUFS. */
int sync_standby_names(const SyncSet *s, bool any_standby, char *buf, size_t size);

/* The members joined by "," as the key's sync_standby stores them; "" for an
 * empty set. Returns 0 or -ENOBUFS. */
int sync_key_text(const SyncSet *s, char *buf, size_t size);

/* No replica outside `keep` is still waited on: their walsenders have
 * applied the new synchronous_standby_names and release no more commits. */
bool sync_others_released(const SyncReplica *rows, size_t n, const SyncSet *keep);

/* Every member of `keep` is a synchronous standby now and has flushed up to
 * lsn. */
bool sync_caught_up(const SyncReplica *rows, size_t n, const SyncSet *keep, uint64_t lsn);

/* Longest synchronous_standby_names / sync key member list we write. */
#define SYNC_NAMES_TEXT_MAX 1024

/* The leader's synchronous replication step: at most one effect per loop,
 * in the safe order (the key names a standby before PostgreSQL waits for
 * it; PostgreSQL stops waiting for a standby, and the standbys that stay
 * hold everything acknowledged until then, before the key stops naming
 * it). Pure: the agent performs the effect (agent/sync_exec.c for the key,
 * agent/ha_exec.c for postgresql.conf). */
typedef enum SyncEffect {
    SYNC_EFFECT_NONE,
    SYNC_EFFECT_PUT_KEY,      /* write the sync key: leader us, standbys step->key */
    SYNC_EFFECT_DELETE_KEY,   /* synchronous_mode is off: delete the key */
    SYNC_EFFECT_SET_NAMES,    /* synchronous_standby_names = step->names, reload */
    SYNC_EFFECT_UNSET_NAMES,  /* stop managing synchronous_standby_names, reload */
    SYNC_EFFECT_NOTE_RELEASE, /* remember our flush position now, look again in a second */
    _SYNC_EFFECT_MAX,
} SyncEffect;

typedef struct SyncPlanInput {
    bool enabled; /* synchronous_mode */
    bool strict;  /* synchronous_mode_strict */
    int64_t node_count;
    SyncLagLimit lag;        /* maximum_lag_on_syncnode */
    bool key_present;        /* the view has a sync key */
    bool key_mine;           /* it names us as leader */
    SyncSet key;             /* its standbys (empty unless key_mine) */
    const SyncReplica *rows; /* pg_stat_replication */
    size_t n;
    const char *names;    /* synchronous_standby_names we manage; NULL: not managed */
    uint64_t release_lsn; /* our flush position noted while shrinking the key; 0: none */
    bool async_said;      /* "no synchronous standby" was logged for this episode */
} SyncPlanInput;

typedef struct SyncStep {
    SyncEffect effect;
    SyncSet key;                     /* PUT_KEY (names borrowed from the input) */
    char names[SYNC_NAMES_TEXT_MAX]; /* SET_NAMES */
    bool clears_release;             /* PUT_KEY: forget release_lsn once written */
    bool say_strict_wait, say_async; /* log it (once per episode) */
    bool async_said;                 /* the episode flag to remember */
} SyncStep;

/* Returns 0, or -ENOBUFS when the names do not fit. */
int sync_plan(const SyncPlanInput *in, SyncStep *ret);

/* The wanted standbys differ from what the key allows: a standby to add, or
 * (not strict) one to give up on. The loop should run now: commits may
 * wait for a standby that is gone. */
bool sync_needs_step(const SyncPlanInput *in);
