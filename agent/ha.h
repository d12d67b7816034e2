/* The HA decision: a pure, table-driven function from what the agent
 * observed (its data directory and PostgreSQL, the cluster view from etcd,
 * the job it has running) to the next state and an ordered list of actions.
 * No I/O, no clock reads, no allocation: agent/ha_exec.c performs the
 * actions. Each row of the table in ha.c is {from, guard, to, actions,
 * reason}; the first row whose `from` matches and whose guard holds wins. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HA_ACTIONS_MAX 8

typedef enum HaState {
    HA_STATE_INIT,               /* just started, or between phases: look at the data dir */
    HA_STATE_BOOTSTRAP_INITDB,   /* won `initialize`, initdb running */
    HA_STATE_BOOTSTRAP_STARTING, /* initdb done, the new primary starting */
    HA_STATE_BOOTSTRAP_POST,     /* the new primary runs, without the leader key yet:
                                    bootstrap.post_bootstrap running (Patroni's order) */
    HA_STATE_CLONING,            /* pg_basebackup into the clone dir, or a replica method */
    HA_STATE_STARTING_REPLICA,   /* pg_ctl start of a replica */
    HA_STATE_STARTING_PRIMARY,   /* pg_ctl start of a primary that holds the leader key */
    HA_STATE_PRIMARY,            /* leader: PostgreSQL is the writable primary */
    HA_STATE_REPLICA,            /* PostgreSQL runs as a standby */
    HA_STATE_STOPPING,           /* pg_ctl stop on the way out */
    HA_STATE_REWINDING,          /* pg_rewind against the new leader */
    HA_STATE_REFUSED,            /* the data dir belongs to another cluster: hands off */
    HA_STATE_PRE_PROMOTE,        /* a replica holding the leader key runs pre_promote */
    _HA_STATE_MAX,
    _HA_STATE_INVALID = -EINVAL,
} HaState;

typedef enum HaAction {
    HA_ACTION_RACE_INITIALIZE, /* create-if-absent `initialize` (fails when lost) */
    HA_ACTION_RUN_INITDB,      /* start the initdb job */
    HA_ACTION_WRITE_PRIMARY_CONF,
    HA_ACTION_WRITE_REPLICA_CONF, /* following the leader (or nobody yet) */
    HA_ACTION_START_POSTGRES,     /* start the pg_ctl start job */
    HA_ACTION_STOP_POSTGRES,      /* start the pg_ctl stop job (fast) */
    HA_ACTION_FINISH_BOOTSTRAP,   /* roles, `initialize` = sysid, `config`, history */
    HA_ACTION_ABORT_BOOTSTRAP,    /* stop, remove the new data dir, release `initialize` */
    HA_ACTION_TAKE_LEADER,        /* create-if-absent leader key with our lease */
    HA_ACTION_RENEW_LEADER,       /* compare value == us, put with our lease */
    HA_ACTION_CLONE,          /* start the next replica method's job (pg_basebackup or custom) */
    HA_ACTION_REMOVE_CLONE,   /* remove a failed clone; the next method, else the backoff */
    HA_ACTION_INSTALL_CLONE,  /* rename the clone dir over data_dir (in place: nothing) */
    HA_ACTION_FOLLOW,         /* re-point primary_conninfo at the upstream, reload */
    HA_ACTION_SYNC_SLOTS,     /* a slot per member streaming from us (leader: every other
                                 member), drop inactive others, advance unused ones */
    HA_ACTION_PUBLISH_STATUS, /* `status` optime (and slots) */
    HA_ACTION_REFUSE,         /* log the refusal once */
    HA_ACTION_RECLAIM_INITIALIZE, /* create-if-absent `initialize` = our system identifier */
    HA_ACTION_PROMOTE,            /* pg_promote, CHECKPOINT, primary config, history */
    HA_ACTION_RELEASE_LEADER,     /* delete the leader key while it names us */
    HA_ACTION_FENCE,              /* SIGKILL to postgresql: no more writes, at once */
    HA_ACTION_REWIND,             /* start the pg_rewind job against the leader */
    HA_ACTION_MOVE_DATA_ASIDE,    /* rename data_dir out of the way (never delete it) */
    HA_ACTION_NOTE_CRASH,         /* report the crash (its time is observed, not decided) */
    HA_ACTION_SWITCHOVER_DEMOTE,  /* CHECKPOINT, fast stop (WAL reaches the standbys), release */
    HA_ACTION_CLEAR_FAILOVER,     /* delete the `failover` key: the switchover is done */
    HA_ACTION_RESTART_POSTGRES,   /* start the pg_ctl restart job (fast stop, then start) */
    HA_ACTION_SYNC_REPLICATION,   /* synchronous_mode: the `sync` key and
                                     synchronous_standby_names (agent/syncrep.c) */
    HA_ACTION_RUN_POST_BOOTSTRAP, /* roles (bootstrap.users), then the post_bootstrap job */
    HA_ACTION_RUN_PRE_PROMOTE,    /* start the postgresql.pre_promote job */
    HA_ACTION_INITIALIZE_STANDBY, /* a new standby cluster's leader: `initialize` (our empty
                                     placeholder) = our system identifier, the `config` key */
    _HA_ACTION_MAX,
    _HA_ACTION_INVALID = -EINVAL,
} HaAction;

typedef enum HaDataDir {
    HA_DATA_EMPTY,   /* nothing there: bootstrap or clone */
    HA_DATA_OURS,    /* a cluster whose system identifier matches `initialize` (or
                        `initialize` is not set yet) */
    HA_DATA_FOREIGN, /* another cluster's data, or not a data directory */
    _HA_DATA_MAX,
    _HA_DATA_INVALID = -EINVAL,
} HaDataDir;

typedef enum HaJobResult {
    HA_JOB_NONE,      /* no job finished since the last decision */
    HA_JOB_RUNNING,   /* a job is still running */
    HA_JOB_SUCCEEDED, /* the state's job finished with status 0 */
    HA_JOB_FAILED,    /* it failed, was killed at its deadline, or could not start */
    _HA_JOB_RESULT_MAX,
    _HA_JOB_RESULT_INVALID = -EINVAL,
} HaJobResult;

/* What an operator asked this member to do (POST /restart, /reinitialize). */
typedef enum HaRequest {
    HA_REQUEST_NONE,
    HA_REQUEST_RESTART, /* restart PostgreSQL in place, keeping the role */
    HA_REQUEST_REINIT,  /* a replica: stop, move the data aside, clone anew */
    HA_REQUEST_REJOIN,  /* a member an operator's switchover or reinitialize stopped starts
                           again as a replica, also while paused (Patroni's demote and
                           reinitialize do); set by their actions, ended by the start, a
                           rewind or a clone */
    _HA_REQUEST_MAX,
    _HA_REQUEST_INVALID = -EINVAL,
} HaRequest;

typedef struct HaInput {
    HaState state;
    uint64_t now_usec;

    /* local */
    HaDataDir data;
    bool pg_running;     /* the postmaster is alive */
    bool pg_reachable;   /* the last probe succeeded */
    bool pg_in_recovery; /* from that probe */
    bool standby_signal; /* standby.signal in the data dir (when not running) */
    HaJobResult job;
    bool follows_upstream;     /* the running replica follows whom it should: the member its
                                  replicatefrom tag names while that one can serve it, else
                                  the current leader (lib/upstream.h) */
    uint64_t clone_retry_usec; /* no clone before this (backoff after a failure) */
    bool clone_in_place;       /* the clone job runs (ran) a custom replica method, which writes
                                  into the data directory itself, not the clone dir */
    bool clone_unled;          /* a replica method needs no member to copy from (no_leader) and
                                  `initialize` names the cluster: a replica can be made without
                                  a leader (Patroni's "bootstrap (without leader)") */
    bool lease_expiring;       /* our last lease renewal is older than ttl minus the safety
                                  margin: a leader must stop accepting writes now */
    bool healthiest;           /* the election says we are the best candidate: healthy, within
                                  maximum_lag_on_failover, no reachable member better */
    bool crash_noted;          /* the primary went down and the time is recorded */
    bool restart_expired;      /* it has been down longer than primary_start_timeout */
    bool use_pg_rewind;
    bool post_bootstrap;      /* bootstrap.post_bootstrap (or post_init) is set */
    bool pre_promote;         /* postgresql.pre_promote is set: a promotion runs it first */
    bool pre_promote_backoff; /* it failed and we released the key less than ttl ago: no leader
                                 race (Patroni's backoff) */
    bool diverged;            /* our WAL goes past the point where the leader's timeline forked off
                                 ours (the `history` key): streaming from it cannot work */
    bool promoting;           /* a promotion was asked for and may still happen (or has, and the
                                 steps after it are left): not finished by PROMOTE, PostgreSQL
                                 not stopped (agent/policy.h) */
    bool promote_stalled;     /* ... and its replay made no progress for HA_PROMOTE_STALL_USEC */

    /* planned switchover (the `failover` key) */
    bool failover_from_me;         /* it names us as the leader to leave (or no leader) */
    bool failover_candidate_me;    /* it names us as the candidate */
    bool failover_candidate_other; /* it names another member, which is up */

    HaRequest request;

    /* maintenance mode (`pause` in the config key): no automatic action on
     * PostgreSQL; the leader only keeps its key, and fencing stays on */
    bool paused;
    bool paused_leader_elsewhere; /* another member led while paused and was not seen to stop
                                     running a primary since: its server may take writes with
                                     no key and no fence (agent.c remember_paused_leader) */

    /* cluster view */
    bool dcs_ok;         /* the view is fresh */
    bool has_initialize; /* the key exists (maybe "" while someone bootstraps) */
    bool has_leader;
    bool leader_is_me;        /* the leader key holds our name */
    bool leader_member_known; /* the leader's member key (its address) is there */

    /* config */
    bool nofailover;
    bool standby_cluster; /* the settings in force have an active standby_cluster section: the
                             leader follows the remote primary and nobody takes writes */
} HaInput;

typedef struct HaDecision {
    HaState next;
    HaAction actions[HA_ACTIONS_MAX];
    size_t n_actions;
    const char *reason; /* static */
    size_t row;         /* index of the row that matched (tests, --dump-fsm) */
} HaDecision;

/* PROMOTE, WRITE_PRIMARY_CONF, FINISH_BOOTSTRAP: PostgreSQL may take writes
 * from the moment the action starts, so the fencing process is armed
 * before it runs (agent/fence.h). */
bool ha_action_may_make_primary(HaAction a);

const char *ha_state_to_string(HaState s);
HaState ha_state_from_string(const char *s);
const char *ha_action_to_string(HaAction a);
HaAction ha_action_from_string(const char *s);

/* Decides. Pure. Returns 0 and *ret, or -EINVAL for an input out of range.
 * A state that no row covers is a programmer error: the last rows of the
 * table match every state, so that cannot happen (a unit test checks it). */
int ha_decide(const HaInput *in, HaDecision *ret);

/* The table, for tests and `dbagent --dump-fsm`. */
typedef struct HaRow {
    HaState from; /* _HA_STATE_MAX: any state */
    bool (*guard)(const HaInput *in);
    const char *guard_name;
    HaState to; /* _HA_STATE_MAX: stay */
    HaAction actions[HA_ACTIONS_MAX];
    size_t n_actions;
    const char *reason;
} HaRow;

const HaRow *ha_table(size_t *ret_n);

/* The table as Graphviz dot or JSON, for `dbagent --dump-fsm=dot|json`. */
int ha_dump(const char *format, FILE *out);
