/* The rules around the HA table, as pure functions: from one tick's
 * observation and what the agent remembers, the table's input, the
 * election's verdict, the memory to keep, and when to look again. No I/O,
 * no clock reads, no logging: the agent (agent/agent.c) observes, calls
 * these, says what changed, and performs the decision's actions
 * (agent/ha_exec.c), telling ha_memory_before/after what it did.
 *
 *   observe --> ha_policy_input --> [ask peers] --> ha_policy_elect --> ha_policy_decide --> act
 *                      ^                                                      |
 *                      +---------------------- HaMemory <---------------------+
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dcs.h"
#include "election.h"
#include "ha.h"
#include "pgprobe.h"

/* Longest "not a candidate: ..." reason kept for the member key. */
#define HA_REASON_MAX 256
/* Backoff between failed clones: doubled per failure up to the max, plus
 * up to a quarter of jitter. */
#define HA_CLONE_BACKOFF_MIN_USEC (2 * 1000 * 1000ULL)
#define HA_CLONE_BACKOFF_MAX_USEC (60 * 1000 * 1000ULL)
/* REMOVE_CLONE's result when create_replica_methods has another method to
 * try: that one at once, no backoff (Patroni tries them in one go). */
#define HA_CLONE_NEXT_METHOD 1

/* A replica that runs but does not stream yet is looked at this often, for
 * this long after it became a replica: the moment it streams reaches its
 * member key (and so the topology) within a look, not at the next
 * loop_wait. */
#define HA_STREAM_LOOK_USEC   (1000 * 1000ULL)
#define HA_STREAM_WINDOW_USEC (30 * 1000 * 1000ULL)

/* A promotion asked for (pg_promote) whose replay made no progress for this
 * long is ended: PostgreSQL is stopped at once (it could finish the
 * promotion at any later moment) and the leader key released. Replay that
 * moves (a replica promoted with WAL still to apply) is waited for. */
#define HA_PROMOTE_STALL_USEC (15 * 1000 * 1000ULL)

/* What the agent remembers between ticks. */
typedef struct HaMemory {
    HaState state;
    uint64_t state_since_usec;  /* when it was entered */
    HaRequest request;          /* an operator's restart or reinitialize, until taken up */
    uint64_t primary_down_usec; /* when our primary was found down (0: it is not) */
    bool diverged; /* seen past the leader's fork point; kept until rewound or moved aside */
    uint32_t streamed_tli;            /* the timeline we last streamed on as a replica; 0: unknown
                                         (we led, or the data was rewound or replaced since) */
    uint64_t clone_retry_usec;        /* no clone before this */
    unsigned clone_failures;          /* in a row, for the backoff */
    uint64_t pre_promote_failed_usec; /* when a failed pre_promote made us release the key */
    /* Why we are not a candidate for promotion, "" when we are; published
     * as failover_blocked while there is no leader. */
    char failover_blocked[HA_REASON_MAX];
    bool lag_blocked_paused;  /* the lag verdict last said: blocked with replay paused */
    bool sync_blocked;        /* the sync-key verdict was said */
    const char *election_why; /* static: the last "not promoting" reason, or NULL */
    /* A promotion that may still happen or whose steps after it are left:
     * asked for (PROMOTE returned -EINPROGRESS, or a promote signal file
     * was seen) and neither finished by PROMOTE nor made impossible (the
     * postmaster gone). 0: none. */
    uint64_t promote_usec;
    uint64_t promote_progress_usec; /* when replay last moved since (or promote_usec) */
    uint64_t promote_replay_lsn;    /* where it was then */
    /* The next pg_ctl start is an operator's restart of a stopped server:
     * its job answers the request (a restart job, on_restart callback). */
    bool start_answers_restart;
} HaMemory;

/* One tick's snapshot: everything the rules read, all I/O done. */
typedef struct HaObservation {
    uint64_t now_usec; /* monotonic */
    double now_epoch;  /* wall clock, for a scheduled switchover */
    const char *me;
    const ConfigDcs *dcs; /* the settings in force */
    bool tag_nofailover;  /* tags.nofailover */
    int64_t failover_priority;
    bool watchdog_blocked;  /* watchdog.mode required and the device cannot be opened */
    bool post_bootstrap;    /* bootstrap.post_bootstrap is set */
    bool pre_promote;       /* postgresql.pre_promote is set */
    int node_use_pg_rewind; /* postgresql.use_pg_rewind: 1 true, -1 false, 0 absent (the cluster's)
                             */

    HaDataDir data;
    bool pg_running;        /* the postmaster is alive */
    const PgSnapshot *snap; /* the last probe, NULL when it failed */
    bool standby_signal;
    bool promote_signal; /* a promote signal file in the data dir (a running replica) */
    HaJobResult job;
    bool streaming;        /* a replica whose walreceiver streams */
    bool following;        /* primary_conninfo points at a member */
    bool follows_upstream; /* ... at the one it should (agent/cascade.h) */

    bool dcs_ok;            /* the view is fresh */
    const DcsCluster *view; /* the last view (NULL before the first) */
    bool lease_expiring;    /* lease_expiring(): a leader must stop writes now */

    bool clone_in_place;  /* the clone job runs (ran) a custom replica method into data_dir */
    bool clone_no_leader; /* a custom replica method has no_leader (or no_master) */
    bool standby_cluster; /* the settings in force describe a standby cluster */
    bool paused_leader_elsewhere; /* HaInput's */
} HaObservation;

/* One tick's step through the rules. */
typedef struct HaStep {
    HaInput input;
    HaDecision decision;
    HaMemory memory;    /* to keep: the rules' changes, then the actions' (ha_memory_*) */
    uint64_t wake_usec; /* a tick is wanted then (a scheduled switchover's time), 0: none */

    /* the election: open when there is no leader and we could promote */
    bool election_open;
    bool ask_peers; /* open, and our own lag does not block us */
    ElectionRules rules;

    /* what changed, for the log (the text is in memory.failover_blocked) */
    bool say_lag_blocked, say_lag_ok, say_sync_blocked, say_diverged;
    const char *say_not_promoting; /* static */
    bool failover_time_unreadable;
} HaStep;

/* The table's input but the election's verdict, and the memory after the
 * rules: crash memory, divergence, the failover key, synchronous_mode's
 * and the watchdog's vetoes, our own lag. */
void ha_policy_input(const HaObservation *o, const HaMemory *m, HaStep *st);
/* The election over the peers' answers (peers NULL: they could not be
 * asked): input.healthiest and the "not promoting" verdict. The caller
 * sets each peer's `excluded`. No-op unless st->ask_peers. */
void ha_policy_elect(const HaObservation *o, ElectionPeer *peers, size_t n, HaStep *st);
/* The table (ha_decide) on the input, then the wake-up the state it enters
 * wants (a replica not streaming yet: a look a second later). Returns 0
 * or -EINVAL (a bug). */
int ha_policy_decide(const HaObservation *o, HaStep *st);

/* A failed pre_promote released the key less than ttl seconds before
 * now_usec: out of the leader race (Patroni's backoff). */
bool ha_memory_pre_promote_backoff(const HaMemory *m, uint64_t now_usec, int64_t ttl);

/* The decision's next state is entered (after its actions succeeded). */
void ha_memory_enter(HaMemory *m, HaState next, uint64_t now_usec);

/* What performing an action changes in the memory: before it runs
 * (whatever its outcome), and after, by its outcome (result: the action's
 * return value, 0 or a negative errno; -EINPROGRESS from PROMOTE: asked
 * for, not finished yet; HA_CLONE_NEXT_METHOD from REMOVE_CLONE). jitter_permille (0..999) spreads
 * clone retries. */
void ha_memory_before(HaMemory *m, HaAction a);
void ha_memory_after(HaMemory *m, HaAction a, int result, uint64_t now_usec,
                     unsigned jitter_permille);
