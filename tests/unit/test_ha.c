/* Tests for agent/ha: the HA decision table.
 *
 * 1. Table-driven cases, at least one per row of the table, each naming the
 *    row it exercises by its reason string (looked up through ha_table(), so
 *    reordering rows cannot make a case silently test another row).
 * 2. Coverage: every row is exercised by at least one case.
 * 3. Exhaustive: every state x every combination of what the guards read.
 *    No input without a matching row, no row shadowed by earlier rows, every
 *    state but STOPPING reachable from INIT, and the safety invariants.
 * 4. The string tables, argument checks and --dump-fsm output.
 * A failing case prints its name. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ha.h"
#include "macro.h"

#define NOW       (1000ULL * 1000000ULL)
#define ANY       _HA_STATE_MAX
#define ACTS(...) .actions = { __VA_ARGS__ }, .n_actions = ELEMENTSOF(((HaAction[]){ __VA_ARGS__ }))
#define NO_ACTS   .n_actions = 0

/* Inputs. Every case sets what it depends on; the rest is false / 0. */
#define IN(...)                                                                                    \
    {                                                                                              \
        .now_usec = NOW, __VA_ARGS__                                                               \
    }
/* A running, reachable primary / replica with our data and a fresh view. */
#define PRIMARY_UP          .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true, .dcs_ok = true
#define REPLICA_UP          PRIMARY_UP, .pg_in_recovery = true
#define STOPPED             .data = HA_DATA_OURS, .dcs_ok = true
#define LEADER_ME           .has_initialize = true, .has_leader = true, .leader_is_me = true
#define LEADER_OTHER_NOADDR .has_initialize = true, .has_leader = true, .leader_is_me = false
#define LEADER_OTHER        LEADER_OTHER_NOADDR, .leader_member_known = true

typedef struct Case {
    const char *name;
    HaInput in;
    HaState next;
    HaAction actions[HA_ACTIONS_MAX];
    size_t n_actions;
    const char *reason; /* exact reason of the row meant to match */
} Case;

static const Case cases[] = {
    /* ---- any state: a running job wins over everything ---- */
    { "init: job running wins over foreign data",
      IN(.state = HA_STATE_INIT, .job = HA_JOB_RUNNING, .data = HA_DATA_FOREIGN, .dcs_ok = true),
      HA_STATE_INIT, NO_ACTS, "waiting for the running job" },
    { "init: job running wins over an empty uninitialized cluster",
      IN(.state = HA_STATE_INIT, .job = HA_JOB_RUNNING, .data = HA_DATA_EMPTY, .dcs_ok = true),
      HA_STATE_INIT, NO_ACTS, "waiting for the running job" },
    { "primary: job running wins over another leader",
      IN(.state = HA_STATE_PRIMARY, .job = HA_JOB_RUNNING, PRIMARY_UP, LEADER_OTHER),
      HA_STATE_PRIMARY, NO_ACTS, "waiting for the running job" },
    { "primary: job running wins over postgres gone",
      IN(.state = HA_STATE_PRIMARY, .job = HA_JOB_RUNNING, .data = HA_DATA_OURS, .dcs_ok = true,
         LEADER_ME),
      HA_STATE_PRIMARY, NO_ACTS, "waiting for the running job" },
    { "replica: job running wins over a new leader",
      IN(.state = HA_STATE_REPLICA, .job = HA_JOB_RUNNING, REPLICA_UP, LEADER_OTHER),
      HA_STATE_REPLICA, NO_ACTS, "waiting for the running job" },
    { "bootstrap-initdb: initdb still running",
      IN(.state = HA_STATE_BOOTSTRAP_INITDB, .job = HA_JOB_RUNNING, .data = HA_DATA_OURS),
      HA_STATE_BOOTSTRAP_INITDB, NO_ACTS, "waiting for the running job" },
    { "bootstrap-starting: pg_ctl start still running while postgres is up",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_RUNNING, PRIMARY_UP),
      HA_STATE_BOOTSTRAP_STARTING, NO_ACTS, "waiting for the running job" },
    { "cloning: pg_basebackup still running",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_RUNNING, .data = HA_DATA_EMPTY), HA_STATE_CLONING,
      NO_ACTS, "waiting for the running job" },
    { "starting-replica: pg_ctl start running while up",
      IN(.state = HA_STATE_STARTING_REPLICA, .job = HA_JOB_RUNNING, REPLICA_UP),
      HA_STATE_STARTING_REPLICA, NO_ACTS, "waiting for the running job" },
    { "starting-primary: pg_ctl start running while up",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_RUNNING, PRIMARY_UP, LEADER_ME),
      HA_STATE_STARTING_PRIMARY, NO_ACTS, "waiting for the running job" },
    { "refused: job running", IN(.state = HA_STATE_REFUSED, .job = HA_JOB_RUNNING),
      HA_STATE_REFUSED, NO_ACTS, "waiting for the running job" },
    { "stopping: pg_ctl stop running", IN(.state = HA_STATE_STOPPING, .job = HA_JOB_RUNNING),
      HA_STATE_STOPPING, NO_ACTS, "waiting for the running job" },

    /* ---- refused: hands off for good ---- */
    { "refused: foreign data stays refused",
      IN(.state = HA_STATE_REFUSED, .data = HA_DATA_FOREIGN, .dcs_ok = true), HA_STATE_REFUSED,
      NO_ACTS, "the data directory belongs to another cluster; nothing is done" },
    { "refused: even with our data and no leader, nothing is done",
      IN(.state = HA_STATE_REFUSED, PRIMARY_UP, .has_initialize = true), HA_STATE_REFUSED, NO_ACTS,
      "the data directory belongs to another cluster; nothing is done" },
    { "refused: a finished job does not leave refused",
      IN(.state = HA_STATE_REFUSED, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_EMPTY, .dcs_ok = true),
      HA_STATE_REFUSED, NO_ACTS, "the data directory belongs to another cluster; nothing is done" },

    { "refused: a failed job does not leave refused",
      IN(.state = HA_STATE_REFUSED, .job = HA_JOB_FAILED, .data = HA_DATA_OURS, .dcs_ok = true),
      HA_STATE_REFUSED, NO_ACTS, "the data directory belongs to another cluster; nothing is done" },

    /* ---- init: foreign data and etcd ---- */
    { "init: foreign data -> refused",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_FOREIGN, .dcs_ok = true), HA_STATE_REFUSED,
      ACTS(HA_ACTION_REFUSE), "the data directory is not this cluster's" },
    { "init: foreign data -> refused even while etcd is down",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_FOREIGN, .dcs_ok = false), HA_STATE_REFUSED,
      ACTS(HA_ACTION_REFUSE), "the data directory is not this cluster's" },
    { "init: foreign data -> refused even when running with no leader",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_FOREIGN, .pg_running = true, .pg_reachable = true,
         .dcs_ok = true, .has_initialize = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_REFUSE), "the data directory is not this cluster's" },
    { "init: foreign data with nofailover and no initialize -> refused, no bootstrap",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_FOREIGN, .dcs_ok = true, .nofailover = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_REFUSE), "the data directory is not this cluster's" },
    { "init: etcd down, empty data: no bootstrap on a stale view",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = false), HA_STATE_INIT, NO_ACTS,
      "waiting for etcd" },
    { "init: etcd down, stopped former primary holding the key: wait",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_OURS, .dcs_ok = false, LEADER_ME), HA_STATE_INIT,
      NO_ACTS, "waiting for etcd" },
    { "init: etcd down, running primary: no leader-key action",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         .dcs_ok = false),
      HA_STATE_INIT, NO_ACTS, "waiting for etcd" },

    /* ---- init: empty data dir, bootstrap or clone ---- */
    { "init: empty, uninitialized -> race initialize and initdb",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true), HA_STATE_BOOTSTRAP_INITDB,
      ACTS(HA_ACTION_RACE_INITIALIZE, HA_ACTION_RUN_INITDB),
      "the cluster is not initialized: bootstrapping it" },
    { "init: bootstrap race lost (initialize exists, no leader yet) -> wait",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .has_initialize = true),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: nofailover never bootstraps",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .nofailover = true),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: empty, leader known -> clone",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER),
      HA_STATE_CLONING, ACTS(HA_ACTION_CLONE), "cloning a replica from the leader" },
    { "init: nofailover clones like anyone",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .nofailover = true),
      HA_STATE_CLONING, ACTS(HA_ACTION_CLONE), "cloning a replica from the leader" },
    { "init: clone backoff: now < clone_retry_usec must not clone",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .clone_retry_usec = NOW + 1),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: clone backoff over exactly at clone_retry_usec -> clone",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .clone_retry_usec = NOW),
      HA_STATE_CLONING, ACTS(HA_ACTION_CLONE), "cloning a replica from the leader" },
    { "init: clone backoff past -> clone",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .clone_retry_usec = NOW - 1),
      HA_STATE_CLONING, ACTS(HA_ACTION_CLONE), "cloning a replica from the leader" },
    { "init: no leader, a method with no_leader -> clone without one",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .has_initialize = true,
         .clone_unled = true),
      HA_STATE_CLONING, ACTS(HA_ACTION_CLONE),
      "no leader: creating a replica with a method that needs none (no_leader)" },
    { "init: no_leader method but no initialize: bootstrap, not a clone",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .clone_unled = false),
      HA_STATE_BOOTSTRAP_INITDB, ACTS(HA_ACTION_RACE_INITIALIZE, HA_ACTION_RUN_INITDB),
      "the cluster is not initialized: bootstrapping it" },
    { "init: no_leader method in its backoff -> wait",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .has_initialize = true,
         .clone_unled = true, .clone_retry_usec = NOW + 1),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: no_leader method, etcd down -> no clone on a stale view",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .has_initialize = true,
         .clone_unled = true),
      HA_STATE_INIT, NO_ACTS, "waiting for etcd" },
    { "init: leader's member key missing (no address) -> wait",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .has_initialize = true,
         .has_leader = true),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: empty data but the key names us: no clone from ourselves",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_ME,
         .leader_member_known = true),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },

    /* ---- init: our data, postgres running ---- */
    { "init: running primary, key is ours -> primary (renew)",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_ME), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "reattached to the running primary" },
    { "init: running primary with nofailover, key is ours -> primary (renew, not take)",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_ME, .nofailover = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "reattached to the running primary" },
    { "init: running primary, no leader -> take the key",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, .has_initialize = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "a running primary and no leader: taking the leader key" },
    { "init: running primary, no leader, nofailover -> does not take the key",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, .has_initialize = true, .nofailover = true),
      HA_STATE_INIT, NO_ACTS, "waiting" },
    { "init: running primary + other leader -> stop",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_OTHER), HA_STATE_INIT,
      ACTS(HA_ACTION_STOP_POSTGRES),
      "another member is the leader: stopping to rejoin as a replica" },
    { "init: running primary + other leader (address unknown) -> stop",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_OTHER_NOADDR), HA_STATE_INIT,
      ACTS(HA_ACTION_STOP_POSTGRES),
      "another member is the leader: stopping to rejoin as a replica" },
    { "init: running primary + other leader, nofailover -> stop",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_OTHER, .nofailover = true), HA_STATE_INIT,
      ACTS(HA_ACTION_STOP_POSTGRES),
      "another member is the leader: stopping to rejoin as a replica" },
    { "init: running replica -> replica", IN(.state = HA_STATE_INIT, REPLICA_UP, LEADER_OTHER),
      HA_STATE_REPLICA, NO_ACTS, "reattached to the running replica" },
    { "init: running replica, no leader -> replica (no promotion here)",
      IN(.state = HA_STATE_INIT, REPLICA_UP, .has_initialize = true), HA_STATE_REPLICA, NO_ACTS,
      "reattached to the running replica" },
    { "init: running but not answering -> wait",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_OURS, .pg_running = true, .dcs_ok = true,
         .has_initialize = true),
      HA_STATE_INIT, NO_ACTS, "postgresql runs but does not answer yet" },
    { "init: running but not answering, key is ours -> wait, no renew",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_OURS, .pg_running = true, .dcs_ok = true,
         LEADER_ME),
      HA_STATE_INIT, NO_ACTS, "postgresql runs but does not answer yet" },

    { "init: our data but etcd lost initialize -> reclaim it, take nothing yet",
      IN(.state = HA_STATE_INIT, PRIMARY_UP), HA_STATE_INIT, ACTS(HA_ACTION_RECLAIM_INITIALIZE),
      "\"initialize\" is missing: claiming it with our system identifier" },
    { "init: stopped, etcd lost initialize -> reclaim it", IN(.state = HA_STATE_INIT, STOPPED),
      HA_STATE_INIT, ACTS(HA_ACTION_RECLAIM_INITIALIZE),
      "\"initialize\" is missing: claiming it with our system identifier" },
    { "init: etcd lost initialize, nofailover -> no reclaim, start as a replica",
      IN(.state = HA_STATE_INIT, STOPPED, .nofailover = true), HA_STATE_STARTING_REPLICA,
      ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES), "starting as a replica" },

    { "init: stopped former primary, other leader, use_pg_rewind -> rewind",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .use_pg_rewind = true), HA_STATE_REWINDING,
      ACTS(HA_ACTION_REWIND), "a former primary: rewinding against the new leader" },
    { "init: stopped primary still holding the key past primary_start_timeout -> release",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_ME, .crash_noted = true, .restart_expired = true),
      HA_STATE_INIT, ACTS(HA_ACTION_RELEASE_LEADER),
      "the primary did not come back within primary_start_timeout: releasing the leader key" },

    /* ---- rewinding ---- */
    { "rewinding: pg_rewind failed -> move the data aside (never delete)",
      IN(.state = HA_STATE_REWINDING, .job = HA_JOB_FAILED, STOPPED, LEADER_OTHER), HA_STATE_INIT,
      ACTS(HA_ACTION_MOVE_DATA_ASIDE),
      "pg_rewind failed: moving the data directory aside to clone anew" },
    { "rewinding: done -> start as a replica",
      IN(.state = HA_STATE_REWINDING, .job = HA_JOB_SUCCEEDED, STOPPED, LEADER_OTHER),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "rewound: starting as a replica of the new leader" },
    { "rewinding: the data turned foreign -> refuse",
      IN(.state = HA_STATE_REWINDING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_FOREIGN,
         .dcs_ok = true, LEADER_OTHER),
      HA_STATE_REFUSED, ACTS(HA_ACTION_REFUSE),
      "after pg_rewind the data directory is not this cluster's" },
    { "rewinding: no result yet -> wait", IN(.state = HA_STATE_REWINDING, STOPPED, LEADER_OTHER),
      HA_STATE_REWINDING, NO_ACTS, "waiting for pg_rewind" },
    { "starting-primary: lease about to expire -> fence",
      IN(.state = HA_STATE_STARTING_PRIMARY, PRIMARY_UP, LEADER_ME, .lease_expiring = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "the leader lease expires while the primary starts: fencing" },

    { "init: right after our own crash, key free -> no retake, wait for a replica",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .crash_noted = true,
         .restart_expired = true),
      HA_STATE_INIT, NO_ACTS,
      "our primary crashed and the key is free: waiting for a replica to take over" },

    /* ---- init: our data, postgres stopped ---- */
    { "init: stopped former primary holding the key -> start primary",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_ME), HA_STATE_STARTING_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "holding the leader key: starting the primary" },
    { "init: stopped former primary, no leader -> take the key and start",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true), HA_STATE_STARTING_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "a former primary and no leader: taking the leader key and starting" },
    { "init: stopped former primary, no leader, nofailover -> start as replica",
      IN(.state = HA_STATE_INIT, STOPPED, .nofailover = true, .has_initialize = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "starting as a replica" },
    /* found by the chaos suite (seed 7, round 23) */
    { "init: stopped former primary handing over, no leader yet -> wait for the candidate",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .failover_candidate_other = true),
      HA_STATE_INIT, NO_ACTS,
      "a former primary handing over: waiting for the candidate to lead, to rewind against it" },
    { "init: stopped former primary, other leader -> start as replica",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER), HA_STATE_STARTING_REPLICA,
      ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES), "starting as a replica" },
    { "init: stopped standby, no leader -> start as replica (never promote a standby here)",
      IN(.state = HA_STATE_INIT, STOPPED, .standby_signal = true, .has_initialize = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "starting as a replica" },
    { "init: stopped standby while the key names us -> start as replica",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_ME, .standby_signal = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "starting as a replica" },
    { "init: a finished job's result is not looked at",
      IN(.state = HA_STATE_INIT, .job = HA_JOB_FAILED, STOPPED, LEADER_OTHER),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "starting as a replica" },

    { "init: a succeeded job's result is not looked at either",
      IN(.state = HA_STATE_INIT, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_EMPTY, .dcs_ok = true),
      HA_STATE_BOOTSTRAP_INITDB, ACTS(HA_ACTION_RACE_INITIALIZE, HA_ACTION_RUN_INITDB),
      "the cluster is not initialized: bootstrapping it" },

    /* ---- bootstrap ---- */
    { "bootstrap-initdb: initdb failed -> abort",
      IN(.state = HA_STATE_BOOTSTRAP_INITDB, .job = HA_JOB_FAILED, .data = HA_DATA_OURS,
         .dcs_ok = true, .has_initialize = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP), "initdb failed" },
    { "bootstrap-initdb: initdb done -> start the new primary",
      IN(.state = HA_STATE_BOOTSTRAP_INITDB, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .dcs_ok = true, .has_initialize = true),
      HA_STATE_BOOTSTRAP_STARTING, ACTS(HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "initdb done: starting the new primary" },
    { "bootstrap-initdb: no job result -> wait",
      IN(.state = HA_STATE_BOOTSTRAP_INITDB, .data = HA_DATA_EMPTY, .dcs_ok = true,
         .has_initialize = true),
      HA_STATE_BOOTSTRAP_INITDB, NO_ACTS, "waiting for initdb" },
    { "bootstrap-starting: start failed -> abort",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_FAILED, .data = HA_DATA_OURS,
         .dcs_ok = true, .has_initialize = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP), "the new primary did not start" },
    { "bootstrap-starting: start failed wins over postgres up",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_FAILED, PRIMARY_UP,
         .has_initialize = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP), "the new primary did not start" },
    { "bootstrap-starting: up -> finish bootstrap, leader",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_SUCCEEDED, PRIMARY_UP,
         .has_initialize = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_FINISH_BOOTSTRAP, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "bootstrapped the cluster: leader" },
    { "bootstrap-starting: a custom bootstrap still recovering (PITR) -> wait, no key",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_SUCCEEDED, REPLICA_UP,
         .has_initialize = true),
      HA_STATE_BOOTSTRAP_STARTING, NO_ACTS, "waiting for the new primary" },
    { "bootstrap-starting: up with post_bootstrap -> run it, no key yet",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_SUCCEEDED, PRIMARY_UP,
         .has_initialize = true, .post_bootstrap = true),
      HA_STATE_BOOTSTRAP_POST, ACTS(HA_ACTION_RUN_POST_BOOTSTRAP),
      "the new primary runs: running post_bootstrap" },
    { "bootstrap-starting: post_bootstrap set, another member leads -> abandon",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_SUCCEEDED, PRIMARY_UP, LEADER_OTHER,
         .post_bootstrap = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP),
      "another member leads: abandoning our bootstrap" },
    { "bootstrap-post: running -> wait",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_RUNNING, PRIMARY_UP,
         .has_initialize = true, .post_bootstrap = true),
      HA_STATE_BOOTSTRAP_POST, NO_ACTS, "waiting for the running job" },
    { "bootstrap-post: done -> finish bootstrap, leader",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_SUCCEEDED, PRIMARY_UP,
         .has_initialize = true, .post_bootstrap = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_FINISH_BOOTSTRAP, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "post_bootstrap done: bootstrapped the cluster, leader" },
    { "bootstrap-post: done at an earlier tick, etcd back -> finish",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_NONE, PRIMARY_UP, .has_initialize = true,
         .post_bootstrap = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_FINISH_BOOTSTRAP, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "post_bootstrap done: bootstrapped the cluster, leader" },
    { "bootstrap-post: done but etcd unreachable -> wait, never lead on a stale view",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .pg_running = true, .pg_reachable = true, .has_initialize = true, .post_bootstrap = true),
      HA_STATE_BOOTSTRAP_POST, NO_ACTS,
      "post_bootstrap done; waiting for etcd and the new primary to finish the bootstrap" },
    { "bootstrap-post: failed -> abandon the bootstrap",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_FAILED, PRIMARY_UP, .has_initialize = true,
         .post_bootstrap = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP),
      "post_bootstrap failed: abandoning the bootstrap" },
    { "bootstrap-post: another member leads -> abandon",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_SUCCEEDED, PRIMARY_UP, LEADER_OTHER,
         .post_bootstrap = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP),
      "another member leads: abandoning our bootstrap" },
    { "bootstrap-post: postgres stopped -> abandon",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .dcs_ok = true, .has_initialize = true, .post_bootstrap = true),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP),
      "the new primary stopped during post_bootstrap: abandoning the bootstrap" },
    { "bootstrap-post: foreign data -> stop and refuse",
      IN(.state = HA_STATE_BOOTSTRAP_POST, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .dcs_ok = true, .has_initialize = true, .post_bootstrap = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the new primary's data is not this cluster's" },
    { "bootstrap-starting: another member leads -> abandon our bootstrap",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_SUCCEEDED, PRIMARY_UP, LEADER_OTHER),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP),
      "another member leads: abandoning our bootstrap" },
    { "bootstrap-starting: foreign data -> stop and refuse",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .dcs_ok = true, .has_initialize = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the new primary's data is not this cluster's" },
    { "bootstrap-initdb: done but another member leads -> abandon",
      IN(.state = HA_STATE_BOOTSTRAP_INITDB, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_OTHER),
      HA_STATE_INIT, ACTS(HA_ACTION_ABORT_BOOTSTRAP),
      "initdb done but another member leads: abandoning it" },
    { "bootstrap-initdb: done but data foreign -> refuse, never delete it",
      IN(.state = HA_STATE_BOOTSTRAP_INITDB, .job = HA_JOB_FAILED, .data = HA_DATA_FOREIGN,
         .dcs_ok = true, .has_initialize = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_REFUSE),
      "after initdb the data directory is not this cluster's" },
    { "bootstrap-starting: started but not answering -> wait",
      IN(.state = HA_STATE_BOOTSTRAP_STARTING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .pg_running = true, .dcs_ok = true, .has_initialize = true),
      HA_STATE_BOOTSTRAP_STARTING, NO_ACTS, "waiting for the new primary" },

    /* ---- pre_promote ---- */
    { "pre_promote: data no longer this cluster's -> stop and refuse",
      IN(.state = HA_STATE_PRE_PROMOTE, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .pg_in_recovery = true, .dcs_ok = true, LEADER_ME,
         .pre_promote = true, .job = HA_JOB_SUCCEEDED),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the replica's data is not this cluster's (pre_promote ran)" },
    { "replica: elected with pre_promote -> take the key, run it",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .pre_promote = true),
      HA_STATE_PRE_PROMOTE, ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_RUN_PRE_PROMOTE),
      "no leader and we are the best candidate: took the leader key, running pre_promote" },
    { "replica: elected but pre_promote failed less than ttl ago -> no leader race",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .pre_promote = true, .pre_promote_backoff = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: switchover to us with pre_promote -> take the key, run it",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true,
         .failover_candidate_me = true, .pre_promote = true),
      HA_STATE_PRE_PROMOTE, ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_RUN_PRE_PROMOTE),
      "switchover: we are the candidate: took the leader key, running pre_promote" },
    { "replica holding the key with pre_promote -> run it before promoting",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .pre_promote = true),
      HA_STATE_PRE_PROMOTE, ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_RUN_PRE_PROMOTE),
      "we hold the leader key and postgresql is a replica: running pre_promote before promoting" },
    { "pre_promote running -> wait, the key kept by its lease",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_ME, .pre_promote = true,
         .job = HA_JOB_RUNNING),
      HA_STATE_PRE_PROMOTE, NO_ACTS, "waiting for the running job" },
    { "pre_promote succeeded, key ours -> promote",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_ME, .pre_promote = true,
         .job = HA_JOB_SUCCEEDED),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "pre_promote succeeded: promoting" },
    { "pre_promote succeeded in a switchover -> promote, clear the failover key",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_ME, .pre_promote = true,
         .job = HA_JOB_SUCCEEDED, .failover_candidate_me = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER,
           HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "pre_promote succeeded: switchover: promoting" },
    { "pre_promote succeeded but the lease runs out -> no promotion",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_ME, .pre_promote = true,
         .job = HA_JOB_SUCCEEDED, .lease_expiring = true),
      HA_STATE_REPLICA, NO_ACTS,
      "pre_promote ended, but the leader key is not ours on a fresh view, the lease runs out or "
      "postgresql is no running replica: not promoting" },
    { "pre_promote succeeded but another member took the key -> no promotion",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_OTHER, .pre_promote = true,
         .job = HA_JOB_SUCCEEDED),
      HA_STATE_REPLICA, NO_ACTS,
      "pre_promote ended, but the leader key is not ours on a fresh view, the lease runs out or "
      "postgresql is no running replica: not promoting" },
    { "pre_promote succeeded, etcd unreachable -> no promotion on a stale view",
      IN(.state = HA_STATE_PRE_PROMOTE, .data = HA_DATA_OURS, .pg_running = true,
         .pg_reachable = true, .pg_in_recovery = true, LEADER_ME, .pre_promote = true,
         .job = HA_JOB_SUCCEEDED),
      HA_STATE_REPLICA, NO_ACTS,
      "pre_promote ended, but the leader key is not ours on a fresh view, the lease runs out or "
      "postgresql is no running replica: not promoting" },
    { "pre_promote failed -> release the key, no promotion",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_ME, .pre_promote = true,
         .job = HA_JOB_FAILED),
      HA_STATE_REPLICA, ACTS(HA_ACTION_RELEASE_LEADER),
      "pre_promote failed: not promoting; releasing the leader key (no leader race for ttl)" },
    { "pre_promote's outcome lost (no job) -> release, no promotion",
      IN(.state = HA_STATE_PRE_PROMOTE, REPLICA_UP, LEADER_ME, .pre_promote = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_RELEASE_LEADER),
      "pre_promote failed: not promoting; releasing the leader key (no leader race for ttl)" },

    /* ---- cloning ---- */
    { "cloning: failed -> remove the clone, back off",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_FAILED, .data = HA_DATA_EMPTY, .dcs_ok = true,
         LEADER_OTHER),
      HA_STATE_INIT, ACTS(HA_ACTION_REMOVE_CLONE), "the clone failed: retrying after a backoff" },
    { "cloning: done -> install and start the replica",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_EMPTY, .dcs_ok = true,
         LEADER_OTHER),
      HA_STATE_STARTING_REPLICA,
      ACTS(HA_ACTION_INSTALL_CLONE, HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "clone done: starting the replica" },
    { "cloning: done while etcd is down -> still install (local only)",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_EMPTY),
      HA_STATE_STARTING_REPLICA,
      ACTS(HA_ACTION_INSTALL_CLONE, HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "clone done: starting the replica" },
    { "cloning: a custom method filled the data dir -> start the replica",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS, .dcs_ok = true,
         LEADER_OTHER, .clone_in_place = true),
      HA_STATE_STARTING_REPLICA,
      ACTS(HA_ACTION_INSTALL_CLONE, HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "the replica method filled the data directory: starting the replica" },
    { "cloning: a custom method succeeded but left nothing -> empty it, next method",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_EMPTY, .dcs_ok = true,
         LEADER_OTHER, .clone_in_place = true),
      HA_STATE_INIT, ACTS(HA_ACTION_REMOVE_CLONE),
      "the replica method left no data directory of this cluster: emptying it" },
    { "cloning: a custom method left another cluster's data -> empty it, never start it",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_FOREIGN,
         .dcs_ok = true, LEADER_OTHER, .clone_in_place = true),
      HA_STATE_INIT, ACTS(HA_ACTION_REMOVE_CLONE),
      "the replica method left no data directory of this cluster: emptying it" },
    { "cloning: a custom method failed -> remove what it wrote",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_FAILED, .data = HA_DATA_OURS, .dcs_ok = true,
         LEADER_OTHER, .clone_in_place = true),
      HA_STATE_INIT, ACTS(HA_ACTION_REMOVE_CLONE), "the clone failed: retrying after a backoff" },
    { "cloning: done but the data dir filled up -> discard the clone",
      IN(.state = HA_STATE_CLONING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS, .dcs_ok = true,
         LEADER_OTHER),
      HA_STATE_INIT, ACTS(HA_ACTION_REMOVE_CLONE),
      "the data directory filled up while cloning: discarding the clone" },
    { "cloning: no job result -> wait",
      IN(.state = HA_STATE_CLONING, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER),
      HA_STATE_CLONING, NO_ACTS, "waiting for the clone" },

    /* ---- starting ---- */
    { "starting-replica: start failed -> init",
      IN(.state = HA_STATE_STARTING_REPLICA, .job = HA_JOB_FAILED, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_OTHER),
      HA_STATE_INIT, NO_ACTS, "the replica did not start" },
    { "starting-replica: up -> replica (slots for members cascading from it first)",
      IN(.state = HA_STATE_STARTING_REPLICA, .job = HA_JOB_SUCCEEDED, REPLICA_UP, LEADER_OTHER),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica started" },
    { "starting-replica: up with no job result -> replica",
      IN(.state = HA_STATE_STARTING_REPLICA, REPLICA_UP, LEADER_OTHER), HA_STATE_REPLICA,
      ACTS(HA_ACTION_SYNC_SLOTS), "replica started" },
    { "starting-replica: up on a stale view -> replica, slots untouched",
      IN(.state = HA_STATE_STARTING_REPLICA, .data = HA_DATA_OURS, .pg_running = true,
         .pg_reachable = true, .pg_in_recovery = true, LEADER_OTHER),
      HA_STATE_REPLICA, NO_ACTS, "replica started; etcd unreachable" },
    { "starting-replica: started, not answering -> wait",
      IN(.state = HA_STATE_STARTING_REPLICA, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .pg_running = true, .dcs_ok = true, LEADER_OTHER),
      HA_STATE_STARTING_REPLICA, NO_ACTS, "waiting for the replica to start" },
    { "starting-replica: started, then stopped -> init",
      IN(.state = HA_STATE_STARTING_REPLICA, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_OTHER),
      HA_STATE_INIT, NO_ACTS, "postgresql stopped after the replica started: deciding again" },
    { "starting-replica: foreign data -> stop and refuse",
      IN(.state = HA_STATE_STARTING_REPLICA, .data = HA_DATA_FOREIGN, .pg_running = true,
         .dcs_ok = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the starting replica's data is not this cluster's" },
    { "starting-primary: start failed -> init",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_FAILED, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_ME),
      HA_STATE_INIT, NO_ACTS, "the primary did not start" },
    { "starting-primary: up -> primary",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_SUCCEEDED, PRIMARY_UP, LEADER_ME),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "primary started" },
    { "starting-primary: started, not answering -> wait",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .pg_running = true, .dcs_ok = true, LEADER_ME),
      HA_STATE_STARTING_PRIMARY, NO_ACTS, "waiting for the primary to start" },
    /* found by the chaos suite (seed 7, round 78): the primary started, the
     * fencing process shut it down (etcd had lost quorum), and the agent
     * waited in starting-primary for 3 minutes holding the leader key */
    { "starting-primary: started, then stopped -> init (starts it again)",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_ME),
      HA_STATE_INIT, NO_ACTS, "postgresql stopped after the primary started: deciding again" },
    { "starting-primary: no job, not running -> init",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_NONE, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_ME),
      HA_STATE_INIT, NO_ACTS, "postgresql stopped after the primary started: deciding again" },
    { "starting-primary: start still running, not up yet -> wait",
      IN(.state = HA_STATE_STARTING_PRIMARY, .job = HA_JOB_RUNNING, .data = HA_DATA_OURS,
         .dcs_ok = true, LEADER_ME),
      HA_STATE_STARTING_PRIMARY, NO_ACTS, "waiting for the running job" },
    { "starting-primary: up but etcd unreachable -> no leader-key action",
      IN(.state = HA_STATE_STARTING_PRIMARY, .data = HA_DATA_OURS, .pg_running = true,
         .pg_reachable = true, LEADER_ME),
      HA_STATE_STARTING_PRIMARY, NO_ACTS, "the primary is starting but etcd is unreachable" },
    { "starting-primary: foreign data -> stop and refuse, never renew the key",
      IN(.state = HA_STATE_STARTING_PRIMARY, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .dcs_ok = true, LEADER_ME),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the starting primary's data is not this cluster's" },

    /* ---- primary ---- */
    { "primary: postgres gone -> restart in place, keep the key",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .dcs_ok = true, LEADER_ME),
      HA_STATE_STARTING_PRIMARY,
      ACTS(HA_ACTION_NOTE_CRASH, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "the primary is not running: restarting it in place" },
    { "primary: postgres gone while etcd is down -> no restart without a fresh view",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, LEADER_ME), HA_STATE_INIT, NO_ACTS,
      "the primary is not running and our leadership is unconfirmed" },
    { "primary: postgres gone past primary_start_timeout -> release the key",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .dcs_ok = true, LEADER_ME,
         .crash_noted = true, .restart_expired = true),
      HA_STATE_INIT, ACTS(HA_ACTION_RELEASE_LEADER),
      "the primary is down and may not be restarted in place: releasing the leader key" },
    { "primary: lease about to expire -> fence at once",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .lease_expiring = true), HA_STATE_INIT,
      ACTS(HA_ACTION_FENCE), "the leader lease could not be renewed in time: fencing (SIGKILL)" },
    { "primary: lease about to expire while etcd is down -> fence",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         LEADER_ME, .lease_expiring = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "the leader lease could not be renewed in time: fencing (SIGKILL)" },
    { "primary: etcd down -> no leader-key action",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         LEADER_ME),
      HA_STATE_PRIMARY, NO_ACTS, "etcd unreachable" },
    { "primary: etcd down, the last view had another leader -> fence (it was true when read)",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         LEADER_OTHER),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "another member holds the leader key: fencing (SIGKILL)" },
    { "primary: etcd down, our key, postgres up -> keep serving until the lease margin",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         LEADER_ME),
      HA_STATE_PRIMARY, NO_ACTS, "etcd unreachable" },
    { "primary: another member holds the key -> fence",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_OTHER), HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "another member holds the leader key: fencing (SIGKILL)" },
    { "primary: another leader and postgres down -> no restart (a stale agent woke up)",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .dcs_ok = true, LEADER_OTHER),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "another member holds the leader key: fencing (SIGKILL)" },
    { "primary: another leader, a failed job -> still fence",
      IN(.state = HA_STATE_PRIMARY, .job = HA_JOB_FAILED, PRIMARY_UP, LEADER_OTHER), HA_STATE_INIT,
      ACTS(HA_ACTION_FENCE), "another member holds the leader key: fencing (SIGKILL)" },
    { "starting-primary: another leader -> fence",
      IN(.state = HA_STATE_STARTING_PRIMARY, PRIMARY_UP, LEADER_OTHER), HA_STATE_INIT,
      ACTS(HA_ACTION_FENCE), "another member holds the leader key: fencing the starting primary" },
    { "starting-primary: up, key free -> take it",
      IN(.state = HA_STATE_STARTING_PRIMARY, PRIMARY_UP, .has_initialize = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "primary started and the leader key is free: taking it" },
    { "starting-primary: up, key free, nofailover -> fence",
      IN(.state = HA_STATE_STARTING_PRIMARY, PRIMARY_UP, .has_initialize = true,
         .nofailover = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "primary started but the leader key is gone and we may not take it: fencing" },
    { "primary: leader key gone -> take it again",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, .has_initialize = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "the leader key is gone: taking it again" },
    { "primary: leader key gone, nofailover -> stop, never take it",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, .has_initialize = true, .nofailover = true),
      HA_STATE_INIT, ACTS(HA_ACTION_STOP_POSTGRES),
      "the leader key is gone and we may not take it: stopping" },
    { "primary: leader key gone, postgres not answering -> stop, never take it",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .pg_running = true, .dcs_ok = true,
         .has_initialize = true),
      HA_STATE_INIT, ACTS(HA_ACTION_STOP_POSTGRES),
      "the leader key is gone and we may not take it: stopping" },
    { "primary: data no longer this cluster's -> stop and refuse",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .dcs_ok = true, LEADER_ME),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the primary's data is not this cluster's" },
    { "primary: switchover to another member -> demote and hand over",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .failover_from_me = true,
         .failover_candidate_other = true),
      HA_STATE_INIT, ACTS(HA_ACTION_SWITCHOVER_DEMOTE),
      "switchover: stopping and handing the leader key to the candidate" },
    { "primary: switchover request from another leader's era -> ignored",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .failover_candidate_other = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "leader" },
    { "primary: leader -> renew", IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "leader" },
    { "primary: leader, a job succeeded -> renew",
      IN(.state = HA_STATE_PRIMARY, .job = HA_JOB_SUCCEEDED, PRIMARY_UP, LEADER_ME),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "leader" },

    /* ---- replica: a promotion asked for, not finished ---- */
    { "promoting: the key went to another member -> fence at once, nothing else",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .promoting = true), HA_STATE_INIT,
      ACTS(HA_ACTION_FENCE),
      "the leader key is no longer ours (or our lease runs out) while postgresql promotes: "
      "stopping it at once so that the promotion cannot finish (SIGKILL)" },
    { "promoting: the key is gone -> fence (it was not let go on purpose)",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .promoting = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "the leader key is no longer ours (or our lease runs out) while postgresql promotes: "
      "stopping it at once so that the promotion cannot finish (SIGKILL)" },
    { "promoting: etcd unreachable and the lease runs out -> fence",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         .pg_in_recovery = true, LEADER_ME, .lease_expiring = true, .promoting = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "the leader key is no longer ours (or our lease runs out) while postgresql promotes: "
      "stopping it at once so that the promotion cannot finish (SIGKILL)" },
    { "promoting: paused, and the key is gone -> fenced all the same",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .paused = true, .promoting = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "the leader key is no longer ours (or our lease runs out) while postgresql promotes: "
      "stopping it at once so that the promotion cannot finish (SIGKILL)" },
    { "promoting: a restart requested waits for the promotion's end",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .promoting = true,
         .request = HA_REQUEST_RESTART),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "postgresql is still promoting: keeping the leader key and waiting" },
    { "promoting: stalled -> fence first, then release the key",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .promoting = true,
         .promote_stalled = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE, HA_ACTION_RELEASE_LEADER),
      "postgresql made no progress with the promotion for 15 s: stopping it at once so that it "
      "cannot finish later (SIGKILL), then releasing the leader key" },
    { "promoting: stalled while paused -> keep waiting",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .promoting = true,
         .promote_stalled = true, .paused = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "postgresql is still promoting: keeping the leader key and waiting" },
    { "promoting: the key is ours -> renew it and wait on",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .promoting = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "postgresql is still promoting: keeping the leader key and waiting" },
    { "promoting: switchover candidate -> renew, wait on, then clear the failover key",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .promoting = true,
         .failover_candidate_me = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER,
           HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "switchover: postgresql is still promoting: keeping the leader key and waiting" },
    { "promoting: etcd unreachable, lease still good -> wait, no etcd action",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         .pg_in_recovery = true, LEADER_ME, .promoting = true),
      HA_STATE_REPLICA, NO_ACTS, "postgresql is still promoting; etcd unreachable" },
    { "promoting: data no longer this cluster's -> stopped by the foreign-data row",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .pg_in_recovery = true, .dcs_ok = true, LEADER_OTHER,
         .promoting = true),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the replica's data is not this cluster's" },

    /* ---- replica ---- */
    { "replica: postgres gone -> init",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_OURS, .dcs_ok = true, LEADER_OTHER),
      HA_STATE_INIT, NO_ACTS, "the replica is not running" },
    { "replica: data no longer this cluster's -> stop and refuse",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_FOREIGN, .pg_running = true,
         .pg_reachable = true, .pg_in_recovery = true, .dcs_ok = true, LEADER_OTHER),
      HA_STATE_REFUSED, ACTS(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the replica's data is not this cluster's" },
    /* found by the chaos suite (seed 7, round 80): elected, its promotion
     * crashed on a full disk, started again as a replica still holding the
     * key (kept alive by the member lease): no primary for 3 minutes */
    { "replica: the leader key is ours -> promote again",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "we hold the leader key and postgresql is a replica (a promotion that did not finish): "
      "promoting" },
    { "replica: the leader key is ours but we may not lead -> release it",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .nofailover = true), HA_STATE_REPLICA,
      ACTS(HA_ACTION_RELEASE_LEADER), "we hold the leader key but may not lead: releasing it" },
    /* ---- a standby cluster (standby_cluster): nobody takes writes ---- */
    { "init: new standby cluster -> race initialize and clone the remote primary",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .standby_cluster = true),
      HA_STATE_CLONING, ACTS(HA_ACTION_RACE_INITIALIZE, HA_ACTION_CLONE),
      "a new standby cluster: racing for initialize, then cloning the remote primary" },
    { "init: new standby cluster in the clone backoff -> wait, never initdb",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .standby_cluster = true,
         .clone_retry_usec = NOW + 1),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: new standby cluster with nofailover -> no race",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, .standby_cluster = true,
         .nofailover = true),
      HA_STATE_INIT, NO_ACTS, "waiting for a leader to clone from" },
    { "init: standby cluster, our running primary -> stop it",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_ME, .standby_cluster = true), HA_STATE_INIT,
      ACTS(HA_ACTION_STOP_POSTGRES),
      "a standby cluster takes no writes: stopping the primary to start it as a standby" },
    { "init: standby cluster, stopped former primary holding the key -> start as a standby",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_ME, .standby_cluster = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "standby cluster: starting as a standby (of the remote primary when we lead)" },
    { "init: standby cluster, stopped, no leader -> start as a standby, not as a primary",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .standby_cluster = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "standby cluster: starting as a standby (of the remote primary when we lead)" },
    { "primary: the cluster became a standby cluster -> stop",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .standby_cluster = true), HA_STATE_INIT,
      ACTS(HA_ACTION_STOP_POSTGRES),
      "the cluster is now a standby cluster, which takes no writes: stopping the primary to "
      "start it as the standby leader" },
    { "replica: standby cluster, no leader, elected -> take the key and follow the remote",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .standby_cluster = true),
      HA_STATE_REPLICA,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_INITIALIZE_STANDBY, HA_ACTION_FOLLOW,
           HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "no leader in the standby cluster and we are the best candidate: took the leader key, "
      "following the remote primary" },
    { "replica: standby cluster, elected with pre_promote -> no pre_promote, no promotion",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .standby_cluster = true, .pre_promote = true),
      HA_STATE_REPLICA,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_INITIALIZE_STANDBY, HA_ACTION_FOLLOW,
           HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "no leader in the standby cluster and we are the best candidate: took the leader key, "
      "following the remote primary" },
    { "replica: standby leader not following the remote -> renew and follow",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .standby_cluster = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_FOLLOW),
      "standby leader: following the remote primary" },
    { "replica: standby leader -> renew, never promote",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .standby_cluster = true,
         .follows_upstream = true),
      HA_STATE_REPLICA,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_INITIALIZE_STANDBY, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_PUBLISH_STATUS),
      "standby leader" },
    { "replica: standby_cluster removed -> the standby leader is promoted",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .follows_upstream = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "we hold the leader key and postgresql is a replica (a promotion that did not finish): "
      "promoting" },
    { "replica: standby cluster, switchover names us -> no promotion",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true,
         .failover_candidate_me = true, .standby_cluster = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: paused standby leader -> keeps the key",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .standby_cluster = true, .paused = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_PUBLISH_STATUS),
      "paused: keeping the leader key of the standby cluster, no other action" },
    { "replica: restart of the standby leader -> restarted in place",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_ME, .standby_cluster = true,
         .request = HA_REQUEST_RESTART),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_RESTART_POSTGRES),
      "restart requested: restarting the replica" },
    { "replica: no leader, elected -> take the key and promote",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "no leader and we are the best candidate: promoting" },
    { "replica: a promotion's last steps failed, postgresql is a primary -> decide again",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         .pg_in_recovery = false, .dcs_ok = true, .has_initialize = true, .has_leader = true,
         .leader_is_me = true, .leader_member_known = true),
      HA_STATE_INIT, NO_ACTS,
      "postgresql runs as a primary (a promotion whose last steps failed): deciding again" },
    { "replica: no leader but not the best candidate -> stay",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true), HA_STATE_REPLICA,
      ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: elected but nofailover -> never promote",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .nofailover = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: elected on a stale view -> no promotion",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         .pg_in_recovery = true, .has_initialize = true, .healthiest = true),
      HA_STATE_REPLICA, NO_ACTS, "replica; etcd unreachable" },
    { "replica: switchover names us and the leader let go -> promote",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true,
         .failover_candidate_me = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "switchover: we are the candidate: promoting" },
    { "replica: switchover names another member -> no election even if healthiest",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .failover_candidate_other = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    /* ---- a replica past the new leader's fork point ---- */
    { "diverged: a running replica stops to be rewound",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .follows_upstream = true,
         .diverged = true),
      HA_STATE_INIT, ACTS(HA_ACTION_STOP_POSTGRES),
      "our WAL goes past the leader's fork point: stopping to rewind" },
    { "diverged: stopped, it is rewound against the leader",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .standby_signal = true,
         .use_pg_rewind = true, .diverged = true),
      HA_STATE_REWINDING, ACTS(HA_ACTION_REWIND),
      "a replica past the leader's fork point: rewinding against it" },
    { "diverged: without use_pg_rewind the data goes aside for a new clone",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .standby_signal = true, .diverged = true),
      HA_STATE_INIT, ACTS(HA_ACTION_MOVE_DATA_ASIDE),
      "a replica past the leader's fork point, use_pg_rewind off: moving the data aside to "
      "clone anew" },
    { "diverged: nothing without a fresh view of etcd",
      IN(.state = HA_STATE_REPLICA, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         .pg_in_recovery = true, LEADER_OTHER, .follows_upstream = true, .diverged = true),
      HA_STATE_REPLICA, NO_ACTS, "replica; etcd unreachable" },

    /* ---- what an operator asked for ---- */
    { "restart: the leader restarts its primary in place",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .request = HA_REQUEST_RESTART),
      HA_STATE_STARTING_PRIMARY, ACTS(HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_RESTART_POSTGRES),
      "restart requested: restarting the primary in place" },
    { "restart: also while paused (an operator's request, as Patroni)",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .request = HA_REQUEST_RESTART,
         .paused = true),
      HA_STATE_STARTING_PRIMARY, ACTS(HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_RESTART_POSTGRES),
      "restart requested: restarting the primary in place" },
    { "restart: a paused replica restarts too",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .request = HA_REQUEST_RESTART,
         .paused = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_RESTART_POSTGRES),
      "restart requested: restarting the replica" },
    { "paused: a primary restarted by an operator finishes starting",
      IN(.state = HA_STATE_STARTING_PRIMARY, PRIMARY_UP, LEADER_ME, .paused = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "primary started" },
    { "paused: a replica restarted by an operator finishes starting",
      IN(.state = HA_STATE_STARTING_REPLICA, REPLICA_UP, LEADER_OTHER, .paused = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica started" },
    { "reinit: also while paused (an operator's request, as Patroni)",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .follows_upstream = true,
         .request = HA_REQUEST_REINIT, .paused = true),
      HA_STATE_INIT, ACTS(HA_ACTION_STOP_POSTGRES),
      "reinitialize requested: stopping the replica" },
    { "reinit while paused: the data moved aside, the clone follows",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .request = HA_REQUEST_REJOIN, .paused = true),
      HA_STATE_CLONING, ACTS(HA_ACTION_CLONE), "cloning a replica from the leader" },
    { "paused: an empty member without an operator's request is not cloned",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .paused = true),
      HA_STATE_INIT, NO_ACTS, "paused: no automatic action" },
    { "paused: a clone an operator's reinitialize started finishes",
      IN(.state = HA_STATE_CLONING, .data = HA_DATA_EMPTY, .dcs_ok = true, LEADER_OTHER,
         .job = HA_JOB_SUCCEEDED, .paused = true),
      HA_STATE_STARTING_REPLICA,
      ACTS(HA_ACTION_INSTALL_CLONE, HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "clone done: starting the replica" },
    { "paused: a stopped replica's restart starts it (Patroni's restart: stop, then start)",
      IN(.state = HA_STATE_REPLICA, STOPPED, LEADER_OTHER, .standby_signal = true,
         .request = HA_REQUEST_RESTART, .paused = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: starting the stopped replica" },
    { "paused: the same from INIT (an agent started over the stopped server)",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .standby_signal = true,
         .request = HA_REQUEST_RESTART, .paused = true),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: starting the stopped replica" },
    { "paused: a stopped server without a request stays stopped",
      IN(.state = HA_STATE_REPLICA, STOPPED, LEADER_OTHER, .standby_signal = true, .paused = true),
      HA_STATE_REPLICA, NO_ACTS, "paused: no automatic action" },
    { "paused: the leader's stopped primary restarts under its key",
      IN(.state = HA_STATE_PRIMARY, STOPPED, LEADER_ME, .request = HA_REQUEST_RESTART,
         .paused = true),
      HA_STATE_STARTING_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: holding the leader key, starting the stopped primary" },
    { "paused: a stopped former primary out of its key stays stopped",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .paused = true), HA_STATE_INIT,
      NO_ACTS, "paused: no automatic action" },
    { "paused: a stopped former primary takes the free key first, then starts",
      IN(.state = HA_STATE_PRIMARY, STOPPED, .has_initialize = true, .request = HA_REQUEST_RESTART,
         .paused = true),
      HA_STATE_STARTING_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: taking the free leader key, starting the stopped primary" },
    { "paused: not while a member that led paused may still run a primary",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .request = HA_REQUEST_RESTART,
         .paused = true, .paused_leader_elsewhere = true),
      HA_STATE_INIT, NO_ACTS,
      "paused, restart requested: not starting our former primary: the member that led while "
      "paused still accepts writes (its agent does not answer); start its agent or stop that "
      "postgresql" },
    { "paused: a stopped former primary under another member's key is not started",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .request = HA_REQUEST_RESTART,
         .paused = true),
      HA_STATE_INIT, NO_ACTS, "paused: no automatic action" },
    { "paused: nor with etcd unreachable",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, LEADER_ME, .request = HA_REQUEST_RESTART,
         .paused = true),
      HA_STATE_PRIMARY, NO_ACTS, "paused: no automatic action" },
    { "paused: a stopped replica's reinitialize moves its data aside",
      IN(.state = HA_STATE_REPLICA, STOPPED, LEADER_OTHER, .standby_signal = true,
         .request = HA_REQUEST_REINIT, .paused = true),
      HA_STATE_INIT, ACTS(HA_ACTION_MOVE_DATA_ASIDE),
      "reinitialize: moving the data directory aside to clone anew" },
    { "restart: never while the lease runs out",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .request = HA_REQUEST_RESTART,
         .lease_expiring = true),
      HA_STATE_INIT, ACTS(HA_ACTION_FENCE),
      "the leader lease could not be renewed in time: fencing (SIGKILL)" },
    { "restart: a replica restarts",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .follows_upstream = true,
         .request = HA_REQUEST_RESTART),
      HA_STATE_STARTING_REPLICA, ACTS(HA_ACTION_RESTART_POSTGRES),
      "restart requested: restarting the replica" },
    { "restart: waits for a running job",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .job = HA_JOB_RUNNING,
         .request = HA_REQUEST_RESTART),
      HA_STATE_REPLICA, NO_ACTS, "waiting for the running job" },
    { "reinit: a replica stops first",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .follows_upstream = true,
         .request = HA_REQUEST_REINIT),
      HA_STATE_INIT, ACTS(HA_ACTION_STOP_POSTGRES),
      "reinitialize requested: stopping the replica" },
    { "reinit: stopped, the data goes aside (then the clone follows)",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .standby_signal = true,
         .request = HA_REQUEST_REINIT),
      HA_STATE_INIT, ACTS(HA_ACTION_MOVE_DATA_ASIDE),
      "reinitialize: moving the data directory aside to clone anew" },
    { "reinit: never without a leader to clone from",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .follows_upstream = true,
         .request = HA_REQUEST_REINIT),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "reinit: never the leader",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .request = HA_REQUEST_REINIT),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "leader" },
    { "paused: a replica with no leader is not promoted",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true, .healthiest = true,
         .paused = true),
      HA_STATE_REPLICA, NO_ACTS, "paused: no automatic action" },
    { "paused: the leader keeps its key and does nothing else",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .paused = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "paused: keeping the leader key, no other action" },
    { "paused: a leader whose lease runs out keeps running and renews (Patroni)",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .paused = true, .lease_expiring = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "paused: keeping the leader key, no other action" },
    { "paused: a leader cut off from etcd keeps running",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .pg_running = true, .pg_reachable = true,
         LEADER_ME, .paused = true, .lease_expiring = true),
      HA_STATE_PRIMARY, NO_ACTS, "paused: no automatic action" },
    { "paused: a primary whose key ran out takes it back",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, .has_initialize = true, .paused = true),
      HA_STATE_PRIMARY, ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "paused: the leader key ran out; taking it back for the running primary" },
    { "paused: a primary that sees another leader (an operator's failover) is still fenced",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_OTHER, .paused = true), HA_STATE_INIT,
      ACTS(HA_ACTION_FENCE), "another member holds the leader key: fencing (SIGKILL)" },
    { "paused: an agent restarted over its running primary takes the key back",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, .has_initialize = true, .paused = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "a running primary and no leader: taking the leader key" },
    { "paused: an agent restarted over its running primary keeps its key",
      IN(.state = HA_STATE_INIT, PRIMARY_UP, LEADER_ME, .paused = true), HA_STATE_PRIMARY,
      ACTS(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
           HA_ACTION_PUBLISH_STATUS),
      "reattached to the running primary" },
    { "paused: an agent restarted over a running replica reattaches",
      IN(.state = HA_STATE_INIT, REPLICA_UP, LEADER_OTHER, .paused = true), HA_STATE_REPLICA,
      NO_ACTS, "reattached to the running replica" },
    { "paused: an operator's switchover: the leader hands over (Patroni)",
      IN(.state = HA_STATE_PRIMARY, PRIMARY_UP, LEADER_ME, .failover_from_me = true,
         .failover_candidate_other = true, .paused = true),
      HA_STATE_INIT, ACTS(HA_ACTION_SWITCHOVER_DEMOTE),
      "switchover: stopping and handing the leader key to the candidate" },
    { "paused: an operator's switchover: the candidate promotes",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true,
         .failover_candidate_me = true, .paused = true),
      HA_STATE_PRIMARY,
      ACTS(HA_ACTION_TAKE_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER, HA_ACTION_SYNC_SLOTS,
           HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "switchover: we are the candidate: promoting" },
    { "paused: the former primary a switchover stopped rewinds and rejoins",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .use_pg_rewind = true, .paused = true),
      HA_STATE_REWINDING, ACTS(HA_ACTION_REWIND),
      "a former primary: rewinding against the new leader" },
    { "paused: the former primary waits for the candidate to lead",
      IN(.state = HA_STATE_INIT, STOPPED, .has_initialize = true, .failover_candidate_other = true,
         .paused = true),
      HA_STATE_INIT, NO_ACTS,
      "a former primary handing over: waiting for the candidate to lead, to rewind against it" },
    { "paused: a replica follows the leader an operator's failover made",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .paused = true), HA_STATE_REPLICA,
      ACTS(HA_ACTION_FOLLOW), "paused: following the new leader" },
    { "paused: a stopped replica is not started",
      IN(.state = HA_STATE_INIT, STOPPED, LEADER_OTHER, .standby_signal = true, .paused = true),
      HA_STATE_INIT, NO_ACTS, "paused: no automatic action" },
    { "paused: an agent restarted over a stopped server does not start it",
      IN(.state = HA_STATE_INIT, .data = HA_DATA_OURS, .dcs_ok = true, LEADER_OTHER,
         .paused = true),
      HA_STATE_INIT, NO_ACTS, "paused: no automatic action" },
    { "paused: a stopped primary is not restarted, and keeps its key (Patroni deletes it)",
      IN(.state = HA_STATE_PRIMARY, .data = HA_DATA_OURS, .dcs_ok = true, LEADER_ME,
         .paused = true),
      HA_STATE_PRIMARY, NO_ACTS, "paused: no automatic action" },
    { "replica: must follow a new leader", IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER),
      HA_STATE_REPLICA, ACTS(HA_ACTION_FOLLOW),
      "following a new upstream (the leader, or the replicatefrom member)" },
    { "replica: nofailover follows a new leader too",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .nofailover = true), HA_STATE_REPLICA,
      ACTS(HA_ACTION_FOLLOW),
      "following a new upstream (the leader, or the replicatefrom member)" },
    { "replica: already follows the leader",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER, .follows_upstream = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: new leader's address unknown -> no follow yet",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, LEADER_OTHER_NOADDR), HA_STATE_REPLICA,
      ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: no leader -> stays a replica",
      IN(.state = HA_STATE_REPLICA, REPLICA_UP, .has_initialize = true), HA_STATE_REPLICA,
      ACTS(HA_ACTION_SYNC_SLOTS), "replica" },
    { "replica: a job failed -> stays a replica",
      IN(.state = HA_STATE_REPLICA, .job = HA_JOB_FAILED, REPLICA_UP, LEADER_OTHER,
         .follows_upstream = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },

    { "replica: a job succeeded -> stays a replica",
      IN(.state = HA_STATE_REPLICA, .job = HA_JOB_SUCCEEDED, REPLICA_UP, LEADER_OTHER,
         .follows_upstream = true),
      HA_STATE_REPLICA, ACTS(HA_ACTION_SYNC_SLOTS), "replica" },

    /* ---- stopping ---- */
    { "stopping: waits", IN(.state = HA_STATE_STOPPING, .data = HA_DATA_OURS, .dcs_ok = true),
      HA_STATE_STOPPING, NO_ACTS, "stopping" },
    { "stopping: a failed stop job does not leave stopping",
      IN(.state = HA_STATE_STOPPING, .job = HA_JOB_FAILED, .data = HA_DATA_OURS), HA_STATE_STOPPING,
      NO_ACTS, "stopping" },
    { "stopping: a finished stop job does not leave stopping",
      IN(.state = HA_STATE_STOPPING, .job = HA_JOB_SUCCEEDED, .data = HA_DATA_OURS),
      HA_STATE_STOPPING, NO_ACTS, "stopping" },
};

/* The row a case means: the one with its reason whose `from` is the case's
 * state or any state. Reasons repeat across states ("postgresql did not
 * start"), so the pair must be unique; SIZE_MAX when it is not. */
static size_t row_for(const Case *c)
{
    size_t n, found = SIZE_MAX;
    const HaRow *t = ha_table(&n);
    for (size_t i = 0; i < n; i++) {
        if ((t[i].from == c->in.state || t[i].from == _HA_STATE_MAX) &&
            strcmp(t[i].reason, c->reason) == 0) {
            if (found != SIZE_MAX) {
                return SIZE_MAX;
            }
            found = i;
        }
    }
    return found;
}

static const char *state_name(HaState s)
{
    const char *r = ha_state_to_string(s);
    return r ? r : "?";
}

static void format_actions(char *buf, size_t size, const HaAction *a, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < size; i++) {
        const char *name = ha_action_to_string(a[i]);
        int w = snprintf(buf + off, size - off, "%s%s", i ? "," : "", name ? name : "?");
        if (w < 0) {
            return;
        }
        off += (size_t)w;
    }
}

static void format_input(char *buf, size_t size, const HaInput *in)
{
    static const char *const data[] = { "empty", "ours", "foreign" };
    static const char *const job[] = { "none", "running", "succeeded", "failed" };
    snprintf(buf, size,
             "state=%s data=%s job=%s pg_running=%d pg_reachable=%d pg_in_recovery=%d "
             "standby_signal=%d follows_upstream=%d dcs_ok=%d has_initialize=%d has_leader=%d "
             "leader_is_me=%d leader_member_known=%d nofailover=%d lease_expiring=%d "
             "healthiest=%d restart_expired=%d use_pg_rewind=%d clone_backoff_pending=%d",
             state_name(in->state), data[in->data], job[in->job], in->pg_running, in->pg_reachable,
             in->pg_in_recovery, in->standby_signal, in->follows_upstream, in->dcs_ok,
             in->has_initialize, in->has_leader, in->leader_is_me, in->leader_member_known,
             in->nofailover, in->lease_expiring, in->healthiest, in->restart_expired,
             in->use_pg_rewind, in->now_usec < in->clone_retry_usec);
    size_t len = strlen(buf);
    snprintf(buf + len, size - len,
             " failover_from_me=%d candidate_me=%d candidate_other=%d paused=%d request=%d "
             "diverged=%d promoting=%d promote_stalled=%d standby_cluster=%d "
             "paused_leader_elsewhere=%d",
             in->failover_from_me, in->failover_candidate_me, in->failover_candidate_other,
             in->paused, (int)in->request, in->diverged, in->promoting, in->promote_stalled,
             in->standby_cluster, in->paused_leader_elsewhere);
}

/* Checks one case; prints why it fails under the case's name. */
static bool check_case(const Case *c)
{
    HaDecision d;
    char want[256], got[256];
    size_t row = row_for(c);
    bool ok = true;

    if (row == SIZE_MAX) {
        print_error("case \"%s\": no unique row (state %s or any) with reason \"%s\"\n", c->name,
                    state_name(c->in.state), c->reason);
        return false;
    }
    int r = ha_decide(&c->in, &d);
    if (r != 0) {
        print_error("case \"%s\": ha_decide() = %d\n", c->name, r);
        return false;
    }
    if (d.row != row) {
        print_error("case \"%s\": matched row %zu (\"%s\"), want row %zu (\"%s\")\n", c->name,
                    d.row, d.reason, row, c->reason);
        ok = false;
    }
    if (!d.reason || strcmp(d.reason, c->reason) != 0) {
        print_error("case \"%s\": reason \"%s\", want \"%s\"\n", c->name,
                    d.reason ? d.reason : "(null)", c->reason);
        ok = false;
    }
    if (d.next != c->next) {
        print_error("case \"%s\": next %s, want %s\n", c->name, state_name(d.next),
                    state_name(c->next));
        ok = false;
    }
    if (d.n_actions != c->n_actions ||
        memcmp(d.actions, c->actions, c->n_actions * sizeof(c->actions[0])) != 0) {
        format_actions(got, sizeof(got), d.actions, d.n_actions);
        format_actions(want, sizeof(want), c->actions, c->n_actions);
        print_error("case \"%s\": actions [%s], want [%s]\n", c->name, got, want);
        ok = false;
    }
    return ok;
}

static void test_cases(void **state)
{
    (void)state;
    size_t failed = 0;
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        if (!check_case(&cases[i])) {
            failed++;
        }
    }
    if (failed > 0) {
        fail_msg("%zu of %zu cases failed", failed, ELEMENTSOF(cases));
    }
}

/* Every row of the table has a case (a new row without a test fails). */
static void test_cases_cover_every_row(void **state)
{
    (void)state;
    size_t n;
    const HaRow *t = ha_table(&n);
    bool *hit = calloc(n, sizeof(*hit));
    assert_non_null(hit);

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        HaDecision d;
        size_t row = row_for(&cases[i]);
        if (row != SIZE_MAX && ha_decide(&cases[i].in, &d) == 0 && d.row == row) {
            hit[row] = true;
        }
    }
    size_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!hit[i]) {
            print_error("row %zu (%s, %s, \"%s\") has no passing case\n", i,
                        t[i].from == _HA_STATE_MAX ? "*" : state_name(t[i].from), t[i].guard_name,
                        t[i].reason);
            missing++;
        }
    }
    free(hit);
    assert_int_equal(missing, 0);
}

/* (from, reason) names a row: it must be unique so cases can name rows. */
static void test_reasons_name_rows(void **state)
{
    (void)state;
    size_t n;
    const HaRow *t = ha_table(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(t[i].guard);
        assert_non_null(t[i].guard_name);
        assert_non_null(t[i].reason);
        assert_true(t[i].reason[0] != '\0');
        assert_true(t[i].n_actions <= HA_ACTIONS_MAX);
        assert_true(t[i].from >= 0 && t[i].from <= _HA_STATE_MAX);
        assert_true(t[i].to >= 0 && t[i].to <= _HA_STATE_MAX);
        for (size_t j = 0; j < t[i].n_actions; j++) {
            assert_true(t[i].actions[j] >= 0 && t[i].actions[j] < _HA_ACTION_MAX);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t[i].reason, t[j].reason) == 0 &&
                (t[i].from == t[j].from || t[i].from == _HA_STATE_MAX ||
                 t[j].from == _HA_STATE_MAX)) {
                fail_msg("rows %zu and %zu share from and reason \"%s\"", j, i, t[i].reason);
            }
        }
    }
}

/* ---- exhaustive ---- */

/* The booleans the guards read, in enumeration order. */
#define N_BOOLS 16
#define N_BITS  (N_BOOLS + 4) /* + clone backoff pending, 2 bits of failover key, paused */
/* The operator's requests enumerated: all of them. */
#define N_REQUESTS ((unsigned)_HA_REQUEST_MAX)
/* The exhaustive group enumerates ha_decide(), a pure function, over every
 * input: the release build's run of this test does it (make unit runs both
 * builds); under ASan it would repeat the same enumeration for 1 min 24 s
 * of CI's 30 minutes, where the "ha" group already takes every row. */
#if defined(__SANITIZE_ADDRESS__)
#define EXHAUSTIVE_HERE false
#else
#define EXHAUSTIVE_HERE true
#endif
/* A promotion: none, pending, stalled (in the replica state only). */
#define N_PROMOTION 3u

static void make_input(HaInput *in, HaState s, HaDataDir data, HaJobResult job, HaRequest request,
                       unsigned bits)
{
    *in = (HaInput){
        .state = s,
        .request = request,
        .data = data,
        .job = job,
        .pg_running = bits & (1u << 0),
        .pg_reachable = bits & (1u << 1),
        .pg_in_recovery = bits & (1u << 2),
        .standby_signal = bits & (1u << 3),
        .follows_upstream = bits & (1u << 4),
        .dcs_ok = bits & (1u << 5),
        .has_initialize = bits & (1u << 6),
        .has_leader = bits & (1u << 7),
        .leader_is_me = bits & (1u << 8),
        .leader_member_known = bits & (1u << 9),
        .nofailover = bits & (1u << 10),
        .lease_expiring = bits & (1u << 11),
        .healthiest = bits & (1u << 12),
        .restart_expired = bits & (1u << 13),
        .use_pg_rewind = bits & (1u << 14),
        .now_usec = NOW,
        .clone_retry_usec = (bits & (1u << 15)) ? NOW + 1 : NOW, /* pending : over */
        /* the failover key: none, naming us, naming another member away
         * from us, naming another member away from someone else */
        .failover_candidate_me = ((bits >> 16) & 3u) == 1,
        .failover_candidate_other = ((bits >> 16) & 3u) >= 2,
        .failover_from_me = ((bits >> 16) & 3u) == 2,
        .paused = bits & (1u << 18),
        .diverged = bits & (1u << 19),
    };
}

static bool has_action(const HaDecision *d, HaAction a)
{
    for (size_t i = 0; i < d->n_actions; i++) {
        if (d->actions[i] == a) {
            return true;
        }
    }
    return false;
}

enum {
    INV_NOFAILOVER_NEVER_LEADS,
    INV_START_XOR_STOP,
    INV_JOB_RUNNING_NO_ACTIONS,
    INV_FOREIGN_ONLY_REFUSE,
    INV_NO_TAKE_OVER_OTHER_LEADER,
    INV_NO_CLUSTER_ACTION_ON_STALE_VIEW,
    INV_OTHER_LEADER_STOPS_OUR_PRIMARY,
    INV_NO_PRIMARY_START_UNDER_OTHER_LEADER,
    INV_PROMOTING_WITHOUT_KEY_FENCES,
    INV_NO_RELEASE_BEFORE_FENCE_WHILE_PROMOTING,
    INV_CLONE_NEEDS_A_SOURCE,
    INV_PRE_PROMOTE_BEFORE_PROMOTE,
    INV_STANDBY_CLUSTER_NO_WRITES,
    _INV_MAX,
};

static const char *const inv_names[_INV_MAX] = {
    [INV_NOFAILOVER_NEVER_LEADS] = "(a) nofailover never takes the leader key or races initialize",
    [INV_START_XOR_STOP] = "(b) never both start-postgres and stop-postgres",
    [INV_JOB_RUNNING_NO_ACTIONS] = "(c) a running job means no actions",
    [INV_FOREIGN_ONLY_REFUSE] = "(d) foreign data is only refused, stopped or has the clone "
                                "dir (or what a replica method just wrote) removed: never "
                                "started, changed, deleted or led",
    [INV_NO_TAKE_OVER_OTHER_LEADER] = "(e) never take-leader while another member holds it",
    [INV_OTHER_LEADER_STOPS_OUR_PRIMARY] = "(g) a primary that sees another leader fences or "
                                           "stops at once",
    [INV_NO_PRIMARY_START_UNDER_OTHER_LEADER] = "(h) never start postgresql as a primary while "
                                                "another member holds the key",
    [INV_PROMOTING_WITHOUT_KEY_FENCES] = "(i) a promotion that may still finish while the key "
                                         "is another's, gone, or about to expire: the first "
                                         "action fences",
    [INV_NO_RELEASE_BEFORE_FENCE_WHILE_PROMOTING] = "(j) the leader key is never released while "
                                                    "a promotion may still finish, unless a "
                                                    "fence comes first",
    [INV_PRE_PROMOTE_BEFORE_PROMOTE] = "(l) with pre_promote set, a promotion starts only after "
                                       "it succeeded, the key ours on a fresh view with time left "
                                       "on the lease; never in its backoff",
    [INV_CLONE_NEEDS_A_SOURCE] = "(k) a clone starts from another member that leads, or with no "
                                 "leader at all through a method that needs none (no_leader)",
    [INV_STANDBY_CLUSTER_NO_WRITES] = "(m) in a standby cluster nothing is promoted, bootstrapped "
                                      "with initdb, started or kept as a primary: a running "
                                      "primary is stopped (or fenced), and a clone of a new "
                                      "standby cluster comes after the race for initialize",
    [INV_NO_CLUSTER_ACTION_ON_STALE_VIEW] = "(f) no leader-key, initialize, clone, follow or "
                                            "slot action while etcd is unreachable",
};

static bool inv_holds(int inv, const HaInput *in, const HaDecision *d)
{
    switch (inv) {
    case INV_NOFAILOVER_NEVER_LEADS:
        return !in->nofailover ||
               (!has_action(d, HA_ACTION_TAKE_LEADER) && !has_action(d, HA_ACTION_RACE_INITIALIZE));
    case INV_START_XOR_STOP:
        return !(has_action(d, HA_ACTION_START_POSTGRES) && has_action(d, HA_ACTION_STOP_POSTGRES));
    case INV_JOB_RUNNING_NO_ACTIONS:
        return in->job != HA_JOB_RUNNING || d->n_actions == 0;
    case INV_FOREIGN_ONLY_REFUSE:
        for (size_t i = 0; in->data == HA_DATA_FOREIGN && i < d->n_actions; i++) {
            HaAction a = d->actions[i];
            if (a != HA_ACTION_REFUSE && a != HA_ACTION_STOP_POSTGRES &&
                a != HA_ACTION_REMOVE_CLONE) {
                return false;
            }
        }
        return true;
    case INV_OTHER_LEADER_STOPS_OUR_PRIMARY:
        if ((in->state != HA_STATE_PRIMARY && in->state != HA_STATE_STARTING_PRIMARY) ||
            !in->has_leader || in->leader_is_me || in->job == HA_JOB_RUNNING || !in->pg_running) {
            return true;
        }
        return has_action(d, HA_ACTION_FENCE) || has_action(d, HA_ACTION_STOP_POSTGRES);
    case INV_NO_PRIMARY_START_UNDER_OTHER_LEADER:
        return !(in->has_leader && !in->leader_is_me && has_action(d, HA_ACTION_START_POSTGRES) &&
                 has_action(d, HA_ACTION_WRITE_PRIMARY_CONF));
    case INV_NO_CLUSTER_ACTION_ON_STALE_VIEW:
        return in->dcs_ok ||
               !(has_action(d, HA_ACTION_TAKE_LEADER) || has_action(d, HA_ACTION_RENEW_LEADER) ||
                 has_action(d, HA_ACTION_RACE_INITIALIZE) ||
                 has_action(d, HA_ACTION_RECLAIM_INITIALIZE) || has_action(d, HA_ACTION_CLONE) ||
                 has_action(d, HA_ACTION_FOLLOW) || has_action(d, HA_ACTION_SYNC_SLOTS));
    case INV_NO_TAKE_OVER_OTHER_LEADER:
        return !(in->has_leader && !in->leader_is_me && has_action(d, HA_ACTION_TAKE_LEADER));
    case INV_PROMOTING_WITHOUT_KEY_FENCES:
        if (!in->promoting || in->data != HA_DATA_OURS || in->job == HA_JOB_RUNNING ||
            !(in->lease_expiring || (in->dcs_ok && !in->leader_is_me))) {
            return true;
        }
        return d->n_actions > 0 && d->actions[0] == HA_ACTION_FENCE;
    case INV_NO_RELEASE_BEFORE_FENCE_WHILE_PROMOTING:
        for (size_t i = 0; in->promoting && i < d->n_actions; i++) {
            if (d->actions[i] == HA_ACTION_FENCE || d->actions[i] == HA_ACTION_STOP_POSTGRES) {
                return true;
            }
            if (d->actions[i] == HA_ACTION_RELEASE_LEADER ||
                d->actions[i] == HA_ACTION_SWITCHOVER_DEMOTE) {
                return false;
            }
        }
        return true;
    case INV_PRE_PROMOTE_BEFORE_PROMOTE:
        if (!in->pre_promote || in->promoting || !has_action(d, HA_ACTION_PROMOTE)) {
            return !(in->pre_promote_backoff && has_action(d, HA_ACTION_TAKE_LEADER));
        }
        return in->state == HA_STATE_PRE_PROMOTE && in->job == HA_JOB_SUCCEEDED && in->dcs_ok &&
               in->leader_is_me && !in->lease_expiring;
    case INV_CLONE_NEEDS_A_SOURCE:
        return !has_action(d, HA_ACTION_CLONE) ||
               (in->has_leader && !in->leader_is_me && in->leader_member_known) ||
               (!in->has_leader && in->clone_unled) ||
               (in->standby_cluster && !in->has_initialize && d->n_actions > 0 &&
                d->actions[0] == HA_ACTION_RACE_INITIALIZE);
    case INV_STANDBY_CLUSTER_NO_WRITES:
        /* a promotion asked for before the section came is finished or
         * fenced by the rows of (i) and (j) */
        if (!in->standby_cluster || in->promoting) {
            return true;
        }
        for (size_t i = 0; i < d->n_actions; i++) {
            HaAction a = d->actions[i];
            if (a == HA_ACTION_PROMOTE || a == HA_ACTION_RUN_PRE_PROMOTE ||
                a == HA_ACTION_RUN_INITDB || a == HA_ACTION_WRITE_PRIMARY_CONF ||
                a == HA_ACTION_FINISH_BOOTSTRAP ||
                (a == HA_ACTION_CLONE && !in->has_initialize &&
                 d->actions[0] != HA_ACTION_RACE_INITIALIZE)) {
                return false;
            }
        }
        /* no state of a primary is entered */
        if (d->next != in->state &&
            (d->next == HA_STATE_PRIMARY || d->next == HA_STATE_STARTING_PRIMARY)) {
            return false;
        }
        /* a writable primary seen on a fresh view is stopped (maintenance
         * mode leaves it alone, as it leaves everything) */
        if ((in->state == HA_STATE_INIT || in->state == HA_STATE_PRIMARY) && in->dcs_ok &&
            in->has_initialize && in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable &&
            !in->pg_in_recovery && in->job != HA_JOB_RUNNING && !in->paused) {
            return has_action(d, HA_ACTION_STOP_POSTGRES) || has_action(d, HA_ACTION_FENCE) ||
                   has_action(d, HA_ACTION_SWITCHOVER_DEMOTE) ||
                   has_action(d, HA_ACTION_RELEASE_LEADER);
        }
        return true;
    default:
        return false;
    }
}

/* Most of the enumerated inputs cannot be observed together (reachable but
 * not running, the key is ours but there is no key). For reports, prefer the
 * example that contradicts itself least. */
static int plausibility(const HaInput *in)
{
    return (in->pg_running || !in->pg_reachable) + (in->pg_reachable || !in->pg_in_recovery) +
           (!in->pg_running || !in->standby_signal) + (in->has_leader || !in->leader_is_me) +
           (in->has_leader || !in->leader_member_known) + (in->has_initialize || !in->has_leader) +
           (in->pg_in_recovery || !in->follows_upstream) + in->dcs_ok + (in->job == HA_JOB_NONE) +
           (in->data != HA_DATA_EMPTY || !in->pg_running);
}

typedef struct Exhaustive {
    size_t n_rows;
    size_t n_inputs;
    size_t n_gaps;
    HaInput first_gap;
    size_t *first_match; /* per row: inputs for which it is the first match */
    bool edge[_HA_STATE_MAX][_HA_STATE_MAX];
    /* per invariant and row: violations and the first violating input */
    size_t *violations[_INV_MAX];
    HaInput *example[_INV_MAX];
} Exhaustive;

static Exhaustive *ex; /* computed once by the group setup */

static int exhaustive_alloc(Exhaustive *e, size_t n)
{
    e->n_rows = n;
    e->first_match = calloc(n, sizeof(size_t));
    if (!e->first_match) {
        return -1;
    }
    for (int v = 0; v < _INV_MAX; v++) {
        e->violations[v] = calloc(n, sizeof(size_t));
        e->example[v] = calloc(n, sizeof(HaInput));
        if (!e->violations[v] || !e->example[v]) {
            return -1;
        }
    }
    return 0;
}

static void exhaustive_free(Exhaustive *e)
{
    free(e->first_match);
    for (int v = 0; v < _INV_MAX; v++) {
        free(e->violations[v]);
        free(e->example[v]);
    }
}

/* One input into e: its first matching row, the edge, the invariants. */
static void exhaustive_take(Exhaustive *e, int s, const HaInput *in)
{
    HaDecision d;
    e->n_inputs++;
    if (ha_decide(in, &d) != 0 || d.row >= e->n_rows) {
        if (e->n_gaps++ == 0) {
            e->first_gap = *in;
        }
        return;
    }
    e->first_match[d.row]++;
    if (d.next >= 0 && d.next < _HA_STATE_MAX) {
        e->edge[s][d.next] = true;
    }
    for (int v = 0; v < _INV_MAX; v++) {
        if (inv_holds(v, in, &d)) {
            continue;
        }
        if (e->violations[v][d.row]++ == 0 ||
            plausibility(in) > plausibility(&e->example[v][d.row])) {
            e->example[v][d.row] = *in;
        }
    }
}

/* Every input of state s, into e. */
static void enumerate_state(Exhaustive *e, int s)
{
    for (int data = 0; data < _HA_DATA_MAX; data++) {
        for (int job = 0; job < _HA_JOB_RESULT_MAX; job++) {
            /* Beyond the common bits, what only some states read:
             * post_bootstrap (set, unset) in BOOTSTRAP_STARTING and
             * BOOTSTRAP_POST; a custom replica method (in place while
             * CLONING, usable without a leader in INIT: no guard reads
             * both) in INIT and CLONING; pre_promote (none, set, set and
             * in its backoff) in PRE_PROMOTE and REPLICA, where a
             * promotion (none, pending, stalled) is enumerated too, but
             * not with pre_promote: a promotion under way matches the
             * promoting rows first, which do not read it. */
            bool reads_post = s == HA_STATE_BOOTSTRAP_STARTING || s == HA_STATE_BOOTSTRAP_POST;
            bool reads_clone = s == HA_STATE_INIT || s == HA_STATE_CLONING;
            unsigned per = (1u << N_BITS) * N_REQUESTS;
            unsigned n_extra = s == HA_STATE_REPLICA       ? N_PROMOTION + 2u
                               : s == HA_STATE_PRE_PROMOTE ? 3u
                               : reads_post || reads_clone ? 2u
                                                           : 1u;
            /* standby_cluster: in the states whose rows read it */
            unsigned n_standby =
                s == HA_STATE_INIT || s == HA_STATE_PRIMARY || s == HA_STATE_REPLICA ? 2u : 1u;
            for (unsigned bits = 0; bits < per * n_extra * n_standby; bits++) {
                unsigned extra = (bits / per) % n_extra;
                unsigned promo = 0, pre = 0;
                if (s == HA_STATE_REPLICA) {
                    promo = extra < N_PROMOTION ? extra : 0;
                    pre = extra < N_PROMOTION ? 0 : extra - N_PROMOTION + 1;
                } else if (s == HA_STATE_PRE_PROMOTE) {
                    pre = extra;
                }
                HaInput in;
                unsigned rest = bits % per;
                make_input(&in, (HaState)s, (HaDataDir)data, (HaJobResult)job,
                           (HaRequest)(rest >> N_BITS), rest & ((1u << N_BITS) - 1));
                in.promoting = promo >= 1;
                in.promote_stalled = promo == 2;
                in.post_bootstrap = reads_post && extra > 0;
                in.clone_in_place = in.clone_unled = reads_clone && extra > 0;
                in.pre_promote = pre >= 1;
                in.pre_promote_backoff = pre == 2;
                in.standby_cluster = bits / (per * n_extra) == 1;
                exhaustive_take(e, s, &in);
                /* a member that led while paused and may still run a
                 * primary: read only by the rows of a paused restart */
                if (in.paused && in.request == HA_REQUEST_RESTART) {
                    in.paused_leader_elsewhere = true;
                    exhaustive_take(e, s, &in);
                }
            }
        }
    }
}

/* The states are enumerated on every core (each into its own part), then
 * merged in state order: the result is the one a single loop gives. */
typedef struct Enumeration {
    Exhaustive part[_HA_STATE_MAX];
    atomic_int next; /* index into order[] */
    int order[_HA_STATE_MAX];
} Enumeration;

static void *enumerate_worker(void *userdata)
{
    Enumeration *en = userdata;
    for (;;) {
        int i = atomic_fetch_add(&en->next, 1);
        if (i >= _HA_STATE_MAX) {
            return NULL;
        }
        enumerate_state(&en->part[en->order[i]], en->order[i]);
    }
}

static void exhaustive_merge(Exhaustive *into, const Exhaustive *p)
{
    into->n_inputs += p->n_inputs;
    if (p->n_gaps > 0 && into->n_gaps == 0) {
        into->first_gap = p->first_gap;
    }
    into->n_gaps += p->n_gaps;
    for (size_t r = 0; r < into->n_rows; r++) {
        into->first_match[r] += p->first_match[r];
        for (int v = 0; v < _INV_MAX; v++) {
            if (p->violations[v][r] == 0) {
                continue;
            }
            if (into->violations[v][r] == 0 ||
                plausibility(&p->example[v][r]) > plausibility(&into->example[v][r])) {
                into->example[v][r] = p->example[v][r];
            }
            into->violations[v][r] += p->violations[v][r];
        }
    }
    for (int a = 0; a < _HA_STATE_MAX; a++) {
        for (int b = 0; b < _HA_STATE_MAX; b++) {
            into->edge[a][b] = into->edge[a][b] || p->edge[a][b];
        }
    }
}

static int exhaustive_setup(void **state)
{
    (void)state;
    size_t n;
    ha_table(&n);
    ex = calloc(1, sizeof(*ex));
    Enumeration *en = calloc(1, sizeof(*en));
    if (!ex || !en || exhaustive_alloc(ex, n) < 0) {
        free(en);
        return -1;
    }
    int k = 0;
    en->order[k++] = HA_STATE_REPLICA; /* the largest first */
    for (int s = 0; s < _HA_STATE_MAX; s++) {
        if (s != HA_STATE_REPLICA) {
            en->order[k++] = s;
        }
    }
    for (int s = 0; s < _HA_STATE_MAX; s++) {
        if (exhaustive_alloc(&en->part[s], n) < 0) {
            return -1;
        }
    }
    atomic_init(&en->next, 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    pthread_t threads[8];
    size_t n_threads = cores > 1 ? (cores < 8 ? (size_t)cores : 8) : 1;
    size_t started = 0;
    for (; started < n_threads - 1; started++) {
        if (pthread_create(&threads[started], NULL, enumerate_worker, en) != 0) {
            break;
        }
    }
    enumerate_worker(en); /* this thread too */
    for (size_t i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int s = 0; s < _HA_STATE_MAX; s++) {
        exhaustive_merge(ex, &en->part[s]);
        exhaustive_free(&en->part[s]);
    }
    free(en);
    return 0;
}

static int exhaustive_teardown(void **state)
{
    (void)state;
    if (ex) {
        free(ex->first_match);
        for (int v = 0; v < _INV_MAX; v++) {
            free(ex->violations[v]);
            free(ex->example[v]);
        }
        free(ex);
        ex = NULL;
    }
    return 0;
}

static void test_exhaustive_no_gap(void **state)
{
    (void)state;
    char buf[512];
    /* a promotion (pending, stalled) only in REPLICA: policy.c ends it elsewhere */
    /* post_bootstrap (set, unset) only in BOOTSTRAP_STARTING and BOOTSTRAP_POST */
    /* a custom replica method (set, unset) only in INIT and CLONING */
    /* pre_promote (set, in its backoff) only in PRE_PROMOTE and in REPLICA
     * without a promotion */
    /* standby_cluster (set, unset) in INIT, PRIMARY and REPLICA: their
     * inputs above once more */
    /* paused_leader_elsewhere (set) only paused with a restart request:
     * those inputs once more */
    size_t n =
        (size_t)(_HA_STATE_MAX + N_PROMOTION - 1 + 2 + 2 + 2 + 2 + 2 + 1 + (N_PROMOTION + 2)) *
        _HA_DATA_MAX * _HA_JOB_RESULT_MAX * (1u << N_BITS) * N_REQUESTS;
    assert_int_equal(ex->n_inputs, n + n / 2 / N_REQUESTS);
    if (ex->n_gaps > 0) {
        format_input(buf, sizeof(buf), &ex->first_gap);
        fail_msg("%zu inputs match no row, e.g. %s", ex->n_gaps, buf);
    }
}

static void test_exhaustive_no_shadowed_row(void **state)
{
    (void)state;
    size_t n;
    const HaRow *t = ha_table(&n);
    size_t shadowed = 0;
    for (size_t i = 0; i < n; i++) {
        if (ex->first_match[i] == 0) {
            print_error("row %zu (%s, %s, \"%s\") is never the first match\n", i,
                        t[i].from == _HA_STATE_MAX ? "*" : state_name(t[i].from), t[i].guard_name,
                        t[i].reason);
            shadowed++;
        }
    }
    assert_int_equal(shadowed, 0);
}

/* Every state but STOPPING (entered outside the table, by agent_stop) is
 * reachable from INIT through the table. */
static void test_exhaustive_states_reachable(void **state)
{
    (void)state;
    bool seen[_HA_STATE_MAX] = { [HA_STATE_INIT] = true };
    for (bool grew = true; grew;) {
        grew = false;
        for (int s = 0; s < _HA_STATE_MAX; s++) {
            for (int t = 0; seen[s] && t < _HA_STATE_MAX; t++) {
                if (ex->edge[s][t] && !seen[t]) {
                    seen[t] = grew = true;
                }
            }
        }
    }
    for (int s = 0; s < _HA_STATE_MAX; s++) {
        if (s == HA_STATE_STOPPING) {
            continue;
        }
        if (!seen[s]) {
            fail_msg("state %s is not reachable from init", state_name((HaState)s));
        }
    }
}

static void test_exhaustive_invariants(void **state)
{
    (void)state;
    size_t n;
    const HaRow *t = ha_table(&n);
    char buf[512], acts[256];
    size_t failed = 0;
    for (int v = 0; v < _INV_MAX; v++) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            total += ex->violations[v][i];
        }
        if (total == 0) {
            continue;
        }
        failed++;
        print_error("invariant %s: %zu violating inputs\n", inv_names[v], total);
        for (size_t i = 0; i < n; i++) {
            if (ex->violations[v][i] == 0) {
                continue;
            }
            format_input(buf, sizeof(buf), &ex->example[v][i]);
            format_actions(acts, sizeof(acts), t[i].actions, t[i].n_actions);
            print_error("  row %zu (%s, %s, \"%s\" -> [%s]): %zu inputs, e.g. %s\n", i,
                        t[i].from == _HA_STATE_MAX ? "*" : state_name(t[i].from), t[i].guard_name,
                        t[i].reason, acts, ex->violations[v][i], buf);
        }
    }
    if (failed > 0) {
        fail_msg("%zu of %d invariants violated", failed, _INV_MAX);
    }
}

/* ---- strings, arguments, dump ---- */

static void test_state_strings(void **state)
{
    (void)state;
    for (int s = 0; s < _HA_STATE_MAX; s++) {
        const char *name = ha_state_to_string((HaState)s);
        assert_non_null(name);
        assert_int_equal(ha_state_from_string(name), s);
        for (int o = 0; o < s; o++) {
            assert_string_not_equal(name, ha_state_to_string((HaState)o));
        }
    }
    assert_null(ha_state_to_string(_HA_STATE_MAX));
    assert_null(ha_state_to_string((HaState)-1));
    assert_null(ha_state_to_string(_HA_STATE_INVALID));
    assert_int_equal(ha_state_from_string(NULL), -EINVAL);
    assert_int_equal(ha_state_from_string(""), -EINVAL);
    assert_int_equal(ha_state_from_string("leader"), -EINVAL);
    assert_int_equal(ha_state_from_string("INIT"), -EINVAL);
}

static void test_action_strings(void **state)
{
    (void)state;
    for (int a = 0; a < _HA_ACTION_MAX; a++) {
        const char *name = ha_action_to_string((HaAction)a);
        assert_non_null(name);
        assert_int_equal(ha_action_from_string(name), a);
        for (int o = 0; o < a; o++) {
            assert_string_not_equal(name, ha_action_to_string((HaAction)o));
        }
    }
    assert_null(ha_action_to_string(_HA_ACTION_MAX));
    assert_null(ha_action_to_string((HaAction)-1));
    assert_null(ha_action_to_string(_HA_ACTION_INVALID));
    assert_int_equal(ha_action_from_string(NULL), -EINVAL);
    assert_int_equal(ha_action_from_string(""), -EINVAL);
    assert_int_equal(ha_action_from_string("demote"), -EINVAL);
}

static void test_decide_invalid(void **state)
{
    (void)state;
    HaInput in = { .state = HA_STATE_INIT };
    HaDecision d = { .row = 4242 };
    assert_int_equal(ha_decide(NULL, &d), -EINVAL);
    assert_int_equal(ha_decide(&in, NULL), -EINVAL);
    in.state = _HA_STATE_MAX;
    assert_int_equal(ha_decide(&in, &d), -EINVAL);
    in.state = (HaState)-1;
    assert_int_equal(ha_decide(&in, &d), -EINVAL);
    in.state = _HA_STATE_INVALID;
    assert_int_equal(ha_decide(&in, &d), -EINVAL);
    assert_int_equal(d.row, 4242); /* untouched on error */
}

static char *dump(const char *format, int *ret)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    *ret = ha_dump(format, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

static void test_dump_dot(void **state)
{
    (void)state;
    int r;
    char *out = dump("dot", &r);
    assert_int_equal(r, 0);
    assert_true(strlen(out) > 0);
    assert_non_null(strstr(out, "digraph"));
    assert_non_null(strstr(out, "\"init\" -> \"refused\""));
    free(out);
}

static void test_dump_json(void **state)
{
    (void)state;
    size_t n;
    const HaRow *t = ha_table(&n);
    int r;
    char *out = dump("json", &r);
    assert_int_equal(r, 0);
    assert_true(strlen(out) > 0);

    json_error_t err;
    json_t *root = json_loads(out, 0, &err);
    if (!root) {
        fail_msg("json_loads: %s (line %d)", err.text, err.line);
    }
    assert_true(json_is_array(root));
    assert_int_equal(json_array_size(root), n);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(root, i);
        assert_true(json_is_object(o));
        assert_int_equal(json_integer_value(json_object_get(o, "row")), i);
        assert_string_equal(json_string_value(json_object_get(o, "reason")), t[i].reason);
        assert_string_equal(json_string_value(json_object_get(o, "guard")), t[i].guard_name);
        json_t *acts = json_object_get(o, "actions");
        assert_true(json_is_array(acts));
        assert_int_equal(json_array_size(acts), t[i].n_actions);
        for (size_t j = 0; j < t[i].n_actions; j++) {
            assert_string_equal(json_string_value(json_array_get(acts, j)),
                                ha_action_to_string(t[i].actions[j]));
        }
    }
    json_decref(root);
    free(out);
}

static void test_dump_unknown_format(void **state)
{
    (void)state;
    int r;
    char *out = dump("xml", &r);
    assert_int_equal(r, -EINVAL);
    assert_int_equal(strlen(out), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons_name_rows),
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_cases_cover_every_row),
        cmocka_unit_test(test_state_strings),
        cmocka_unit_test(test_action_strings),
        cmocka_unit_test(test_decide_invalid),
        cmocka_unit_test(test_dump_dot),
        cmocka_unit_test(test_dump_json),
        cmocka_unit_test(test_dump_unknown_format),
    };
    const struct CMUnitTest exhaustive[] = {
        cmocka_unit_test(test_exhaustive_no_gap),
        cmocka_unit_test(test_exhaustive_no_shadowed_row),
        cmocka_unit_test(test_exhaustive_states_reachable),
        cmocka_unit_test(test_exhaustive_invariants),
    };
    /* TEST_HA_GROUPS=table or =exhaustive runs one group (make check runs
     * the exhaustive one beside the integration tests that measure no
     * time); unset, both */
    const char *groups = getenv("TEST_HA_GROUPS");
    bool table = !groups || strcmp(groups, "exhaustive") != 0;
    bool all_inputs = !groups || strcmp(groups, "table") != 0;
    int failed = 0;
    if (table) {
        failed += cmocka_run_group_tests_name("ha", tests, NULL, NULL);
    }
    if (all_inputs && EXHAUSTIVE_HERE) {
        failed += cmocka_run_group_tests_name("ha_exhaustive", exhaustive, exhaustive_setup,
                                              exhaustive_teardown);
    } else if (all_inputs) {
        print_message("ha_exhaustive: run by the release build's test_ha (make unit)\n");
    } else {
        print_message("ha_exhaustive: not run here (TEST_HA_GROUPS=%s)\n", groups);
    }
    return failed;
}
