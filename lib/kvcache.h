/* A watch-fed copy of one etcd prefix (the cluster's keys), so that the
 * agent's loop reads what its watch already delivered instead of a range
 * read per tick. The watch thread loads it from one range (revision R),
 * watches from R + 1 and applies every event in revision order; the loop
 * takes a copy when the copy has provably caught up, else reads etcd.
 *
 * Revision. The cache's revision is R after a load, then the mod_revision
 * of the last event applied: the kvs are exactly what a range of the
 * prefix at that revision returns. It does not use the revision in a watch
 * message's header: it proves nothing when the message is the stream's
 * "created" answer of a watch that starts in the past.
 *
 * Freshness (the rule kv_cache_snapshot() enforces). The loop passes the
 * highest revision etcd told it in this tick's own answers (the lease
 * keepalive sent at its start, its txns and puts: etcd_client_get_revision).
 * The copy is handed out only when its revision is at or above that one,
 * after a bounded wait for the watch; otherwise the caller reads etcd. So a
 * cached view contains every write the agent saw acknowledged (its own
 * leader renewals, member key, sync key) and everything the member that
 * answered this tick's keepalive had applied: it is the view a range read
 * at that moment would have returned, or a later one. (A linearizable range
 * would also see a write committed but not yet applied on that member: a
 * few milliseconds of etcd's own replication, which the watch then
 * delivers and which wakes the loop when it is a key the loop waits on.)
 *
 * Why a stale view cannot keep a leader in place. The view only feeds the
 * decision. What lets a node act as the leader is (1) the lease deadline,
 * which comes from the keepalive's send time and the TTL etcd granted
 * (agent/lease.h) and never from the view, and (2) the renewal every tick,
 * a txn that compares the leader key's value with our name: a key that
 * was deleted or taken fails it, whatever the view said, and the node
 * demotes. Taking the key is a create_revision == 0 txn, so an old view
 * that misses a new leader loses that race too. A change of the leader,
 * failover, sync, config or initialize key is applied here before the
 * watch thread wakes the loop, so the tick it wakes sees it.
 *
 * Invalid. Until the first load, after a compaction or cancel of the watch
 * (kv_cache_apply sees it), or when the watch resumed at a revision that
 * does not follow the cache's (kv_cache_check_next): a snapshot then fails
 * and the caller reads etcd, until the watch thread loads it again.
 *
 * Threads: one writer (the watch thread) and any number of readers, under
 * one mutex. Readers get a deep copy: the prefix holds tens of small keys,
 * a copy per tick costs microseconds, and dcs_cluster_from_result copies
 * what it keeps anyway; a refcounted snapshot would need copy-on-write of
 * the array on every event to save that. Nothing here reads the clock or
 * logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"
#include "macro.h"

typedef struct KvCache KvCache;

typedef struct KvCacheStats {
    uint64_t loads;         /* kv_cache_load() calls that succeeded */
    uint64_t events;        /* events applied */
    uint64_t invalidations; /* times a valid cache became invalid */
    uint64_t hits;          /* snapshots handed out */
    uint64_t waits;         /* snapshots that had to wait for the watch (handed out or not) */
    uint64_t misses;        /* snapshots refused: invalid, or behind after the wait */
} KvCacheStats;

/* Returns 0 and *ret (empty, invalid), -ENOMEM, or -errno from pthread. */
int kv_cache_new(KvCache **ret);
/* NULL-safe; returns NULL. No other thread may use it any more. */
KvCache *kv_cache_free(KvCache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(KvCache *, kv_cache_free);

/* ---- the writer (the watch thread) ---- */

/* Replaces the content with a range result of the prefix (its kvs and its
 * header revision R) and makes the cache valid at R; watch from R + 1.
 * A range with `more` set (a limit was hit) is refused with -EINVAL, as is
 * R <= 0. -ENOMEM leaves the cache invalid. Wakes waiting readers. */
int kv_cache_load(KvCache *c, const EtcdResult *range);

/* Applies one watch message. Events are applied in order; each must have
 * a mod_revision above the cache's revision or equal to the previous
 * event's of the same message (one txn may touch several keys). A message
 * that breaks the order, or a canceled one (compaction, server cancel),
 * makes the cache invalid and returns -ESTALE; an invalid cache ignores
 * messages and returns -ESTALE. -ENOMEM invalidates too. Returns the number
 * of events applied. Wakes waiting readers. */
int kv_cache_apply(KvCache *c, const EtcdWatchResponse *resp);

/* After the watch (re)opened its stream: it resumes at next_revision, which
 * must be the cache's revision + 1, or events were skipped. Invalidates
 * and returns -ESTALE when it is not; 0 otherwise (also when invalid). */
int kv_cache_check_next(KvCache *c, int64_t next_revision);

/* Makes the cache invalid (the watch ended, the thread stops). */
void kv_cache_invalidate(KvCache *c);

/* ---- readers (the loop) ---- */

/* A copy of the kvs when the cache is valid and its revision is at least
 * min_revision. When it is valid but behind, waits until deadline_usec
 * (CLOCK_MONOTONIC, absolute; 0: no wait) for the watch to catch up.
 * *ret is what a range of the prefix would return at the cache's
 * revision: type RANGE, revision, kvs sorted by key, count = n_kvs, more
 * false (free with etcd_result_done). Returns 0, -ESTALE (invalid),
 * -ETIMEDOUT (still behind at the deadline), -ENOMEM. */
int kv_cache_snapshot(KvCache *c, int64_t min_revision, uint64_t deadline_usec, EtcdResult *ret);

/* The cache's revision (0 while invalid). */
int64_t kv_cache_revision(KvCache *c);
bool kv_cache_is_valid(KvCache *c);
void kv_cache_get_stats(KvCache *c, KvCacheStats *ret);
