/* The HA state machine as one table. Reading order: rows for every state
 * first (a running job), then each state's rows from the most specific to
 * its catch-all. Actions run in order and stop at the first failure; the
 * agent then stays in `from` and decides again on the next tick, so every
 * action must be safe to repeat.
 *
 *   INIT --empty, no initialize--> BOOTSTRAP_INITDB --ok--> BOOTSTRAP_STARTING --up--> PRIMARY
 *   INIT --empty, leader--> CLONING --ok--> STARTING_REPLICA --ok--> REPLICA
 *   INIT --ours, stopped, former primary, no leader--> STARTING_PRIMARY --ok--> PRIMARY
 *   INIT --ours, stopped--> STARTING_REPLICA;  INIT --ours, running--> PRIMARY | REPLICA
 *   INIT --foreign data--> REFUSED;  PRIMARY | REPLICA --postgres gone--> INIT
 */
#include "ha.h"

#include <string.h>

#include <jansson.h>

#include "macro.h"

static const char *const state_table[_HA_STATE_MAX] = {
    [HA_STATE_INIT] = "init",
    [HA_STATE_BOOTSTRAP_INITDB] = "bootstrap-initdb",
    [HA_STATE_BOOTSTRAP_STARTING] = "bootstrap-starting",
    [HA_STATE_BOOTSTRAP_POST] = "bootstrap-post",
    [HA_STATE_CLONING] = "cloning",
    [HA_STATE_STARTING_REPLICA] = "starting-replica",
    [HA_STATE_STARTING_PRIMARY] = "starting-primary",
    [HA_STATE_PRIMARY] = "primary",
    [HA_STATE_REPLICA] = "replica",
    [HA_STATE_STOPPING] = "stopping",
    [HA_STATE_REFUSED] = "refused",
    [HA_STATE_REWINDING] = "rewinding",
    [HA_STATE_PRE_PROMOTE] = "pre-promote",
};

static const char *const action_table[_HA_ACTION_MAX] = {
    [HA_ACTION_RACE_INITIALIZE] = "race-initialize",
    [HA_ACTION_RUN_INITDB] = "run-initdb",
    [HA_ACTION_WRITE_PRIMARY_CONF] = "write-primary-conf",
    [HA_ACTION_WRITE_REPLICA_CONF] = "write-replica-conf",
    [HA_ACTION_START_POSTGRES] = "start-postgres",
    [HA_ACTION_STOP_POSTGRES] = "stop-postgres",
    [HA_ACTION_FINISH_BOOTSTRAP] = "finish-bootstrap",
    [HA_ACTION_ABORT_BOOTSTRAP] = "abort-bootstrap",
    [HA_ACTION_TAKE_LEADER] = "take-leader",
    [HA_ACTION_RENEW_LEADER] = "renew-leader",
    [HA_ACTION_CLONE] = "clone",
    [HA_ACTION_REMOVE_CLONE] = "remove-clone",
    [HA_ACTION_INSTALL_CLONE] = "install-clone",
    [HA_ACTION_FOLLOW] = "follow",
    [HA_ACTION_SYNC_SLOTS] = "sync-slots",
    [HA_ACTION_SYNC_REPLICATION] = "sync-replication",
    [HA_ACTION_RUN_POST_BOOTSTRAP] = "run-post-bootstrap",
    [HA_ACTION_RUN_PRE_PROMOTE] = "run-pre-promote",
    [HA_ACTION_INITIALIZE_STANDBY] = "initialize-standby",
    [HA_ACTION_PUBLISH_STATUS] = "publish-status",
    [HA_ACTION_REFUSE] = "refuse",
    [HA_ACTION_RECLAIM_INITIALIZE] = "reclaim-initialize",
    [HA_ACTION_PROMOTE] = "promote",
    [HA_ACTION_RELEASE_LEADER] = "release-leader",
    [HA_ACTION_FENCE] = "fence",
    [HA_ACTION_REWIND] = "rewind",
    [HA_ACTION_MOVE_DATA_ASIDE] = "move-data-aside",
    [HA_ACTION_NOTE_CRASH] = "note-crash",
    [HA_ACTION_SWITCHOVER_DEMOTE] = "switchover-demote",
    [HA_ACTION_CLEAR_FAILOVER] = "clear-failover",
    [HA_ACTION_RESTART_POSTGRES] = "restart-postgres",
};

static int lookup(const char *const *table, int n, const char *s)
{
    if (!s) {
        return -EINVAL;
    }
    for (int i = 0; i < n; i++) {
        if (table[i] && strcmp(table[i], s) == 0) {
            return i;
        }
    }
    return -EINVAL;
}

const char *ha_state_to_string(HaState s)
{
    return s >= 0 && s < _HA_STATE_MAX ? state_table[s] : NULL;
}

HaState ha_state_from_string(const char *s)
{
    return (HaState)lookup(state_table, _HA_STATE_MAX, s);
}

const char *ha_action_to_string(HaAction a)
{
    return a >= 0 && a < _HA_ACTION_MAX ? action_table[a] : NULL;
}

HaAction ha_action_from_string(const char *s)
{
    return (HaAction)lookup(action_table, _HA_ACTION_MAX, s);
}

bool ha_action_may_make_primary(HaAction a)
{
    return a == HA_ACTION_PROMOTE || a == HA_ACTION_WRITE_PRIMARY_CONF ||
           a == HA_ACTION_FINISH_BOOTSTRAP;
}

/* ---- guards: pure predicates over the input ---- */

static bool guard_always(const HaInput *in)
{
    (void)in;
    return true;
}

static bool guard_job_running(const HaInput *in)
{
    return in->job == HA_JOB_RUNNING;
}

static bool guard_job_failed(const HaInput *in)
{
    return in->job == HA_JOB_FAILED;
}

static bool guard_job_succeeded(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED;
}

static bool guard_data_foreign(const HaInput *in)
{
    return in->data == HA_DATA_FOREIGN;
}

/* A job failed on a data directory we may clean up (ours or empty). */
static bool guard_job_failed_ours(const HaInput *in)
{
    return in->job == HA_JOB_FAILED && in->data != HA_DATA_FOREIGN;
}

static bool guard_job_succeeded_ours(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED && in->data == HA_DATA_OURS;
}

static bool guard_job_succeeded_empty(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED && in->data == HA_DATA_EMPTY;
}

/* Our data, and etcd lost `initialize` (e.g. its data was wiped): claim it
 * back with our system identifier rather than let anyone bootstrap anew. */
static bool guard_ours_uninitialized(const HaInput *in)
{
    return in->data == HA_DATA_OURS && !in->has_initialize && !in->nofailover;
}

static bool guard_dcs_down(const HaInput *in)
{
    return !in->dcs_ok;
}

/* Nobody initialized the cluster and we may lead it. */
static bool guard_empty_uninitialized_may_lead(const HaInput *in)
{
    return in->data == HA_DATA_EMPTY && !in->has_initialize && !in->nofailover &&
           !in->standby_cluster;
}

/* A new standby cluster: its first member clones the remote primary
 * (Patroni's bootstrap_standby_leader), after the same race for
 * `initialize`, and with the same backoff after a failed attempt. */
static bool guard_empty_uninitialized_standby(const HaInput *in)
{
    return in->data == HA_DATA_EMPTY && !in->has_initialize && !in->nofailover &&
           in->standby_cluster && in->now_usec >= in->clone_retry_usec;
}

/* A leader to clone from, and no backoff pending. */
static bool guard_empty_can_clone(const HaInput *in)
{
    return in->data == HA_DATA_EMPTY && in->has_initialize && in->has_leader && !in->leader_is_me &&
           in->leader_member_known && in->now_usec >= in->clone_retry_usec;
}

/* No leader, but a replica method that needs none (Patroni: a method with
 * no_leader, `initialize` set and not being bootstrapped). */
static bool guard_empty_can_clone_unled(const HaInput *in)
{
    return in->data == HA_DATA_EMPTY && in->has_initialize && !in->has_leader && in->clone_unled &&
           in->now_usec >= in->clone_retry_usec;
}

/* A replica method wrote the data directory itself: a data directory of
 * this cluster is there to start. */
static bool guard_in_place_clone_done(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED && in->clone_in_place && in->data == HA_DATA_OURS;
}

static bool guard_in_place_clone_wrong(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED && in->clone_in_place;
}

static bool guard_empty(const HaInput *in)
{
    return in->data == HA_DATA_EMPTY;
}

static bool running_primary(const HaInput *in)
{
    return in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable && !in->pg_in_recovery;
}

/* Taking the leader key needs a cluster identity that matches our data. */
static bool may_take_leader(const HaInput *in)
{
    return in->dcs_ok && in->has_initialize && !in->has_leader && !in->nofailover &&
           !in->failover_candidate_other;
}

static bool guard_running_primary(const HaInput *in)
{
    return running_primary(in);
}

static bool guard_running_primary_mine(const HaInput *in)
{
    return running_primary(in) && in->leader_is_me && !in->standby_cluster;
}

static bool guard_running_primary_unled(const HaInput *in)
{
    return running_primary(in) && may_take_leader(in) && !in->standby_cluster;
}

/* A writable primary where the settings describe a standby cluster (the
 * section was added to a running cluster): it stops, to start again as a
 * standby (Patroni demotes it: "cannot be a real primary in standby
 * cluster"). */
static bool guard_running_primary_standby(const HaInput *in)
{
    return running_primary(in) && in->standby_cluster && in->dcs_ok && !in->paused;
}

static bool guard_running_primary_other_leader(const HaInput *in)
{
    return running_primary(in) && in->has_leader && !in->leader_is_me;
}

static bool guard_running_replica(const HaInput *in)
{
    return in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable && in->pg_in_recovery;
}

static bool guard_running_unreachable(const HaInput *in)
{
    return in->data == HA_DATA_OURS && in->pg_running && !in->pg_reachable;
}

static bool stopped_ours(const HaInput *in)
{
    return in->data == HA_DATA_OURS && !in->pg_running;
}

/* Stopped data in a standby cluster starts as a standby, whatever it was:
 * of the remote primary when the key is ours or free, else of the standby
 * leader (Patroni's recover()). */
static bool guard_stopped_standby(const HaInput *in)
{
    return stopped_ours(in) && in->standby_cluster && in->dcs_ok;
}

/* We hold the key by name (e.g. restarted before the lease ran out) and the
 * data was a primary. */
static bool guard_stopped_primary_mine(const HaInput *in)
{
    return stopped_ours(in) && in->leader_is_me && !in->standby_signal && !in->standby_cluster;
}

/* A former primary after a clean whole-cluster stop: start it as the primary
 * again (no promotion, so no new timeline) if the leader key is free. */
static bool guard_stopped_primary_unled(const HaInput *in)
{
    /* not right after our own crash: a replica gets its chance first */
    return stopped_ours(in) && !in->standby_signal && may_take_leader(in) && !in->restart_expired &&
           !in->standby_cluster;
}

static bool guard_stopped(const HaInput *in)
{
    return stopped_ours(in);
}

/* Our primary crashed and we let go of the key: while a replica may take
 * over, do not start (as a replica it would need a rewind anyway). */
static bool guard_stopped_primary_after_crash(const HaInput *in)
{
    return stopped_ours(in) && !in->standby_signal && in->restart_expired && !in->has_leader;
}

/* A former primary (no standby.signal) stopped for a switchover or manual
 * failover to another member, before the candidate took the key: started as
 * a replica now it would write standby.signal and later follow the new
 * leader as a replica, without the pg_rewind that a former primary gets,
 * though its WAL goes past the new leader's fork point when the candidate
 * had not received the last of it (found by the chaos suite, seed 7 round
 * 23: the replication path had been cut, the handover was not confirmed).
 * It waits, stopped, until the candidate leads, and then rewinds. */
static bool guard_stopped_primary_no_leader(const HaInput *in)
{
    return stopped_ours(in) && !in->standby_signal && in->dcs_ok && !in->has_leader &&
           in->failover_candidate_other;
}

static bool guard_up(const HaInput *in)
{
    return in->pg_running && in->pg_reachable;
}

static bool guard_up_fresh_view(const HaInput *in)
{
    return guard_up(in) && in->dcs_ok;
}

/* The new primary answers and the leader key is free (or ours). */
/* The new primary runs and is out of recovery (a custom bootstrap's
 * recovery_conf may have it replay to a target first: Patroni's "waiting
 * for end of recovery after bootstrap"). */
static bool guard_bootstrap_up(const HaInput *in)
{
    return guard_up(in) && !in->pg_in_recovery && in->dcs_ok && !in->nofailover &&
           (!in->has_leader || in->leader_is_me);
}

static bool guard_initdb_done_lost(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED && in->data != HA_DATA_FOREIGN &&
           ((in->has_leader && !in->leader_is_me) || in->nofailover);
}

/* Someone else leads while our bootstrap was finishing: ours is void. */
static bool guard_bootstrap_up_post(const HaInput *in)
{
    return guard_bootstrap_up(in) && in->post_bootstrap;
}

/* post_bootstrap finished well now, or at an earlier tick that could not
 * go on (etcd unreachable): a failure ends BOOTSTRAP_POST when it is seen. */
static bool guard_post_bootstrap_done(const HaInput *in)
{
    return (in->job == HA_JOB_SUCCEEDED || in->job == HA_JOB_NONE) && guard_bootstrap_up(in);
}

static bool guard_pg_stopped(const HaInput *in)
{
    return !in->pg_running;
}

static bool guard_bootstrap_lost(const HaInput *in)
{
    return in->dcs_ok && ((in->has_leader && !in->leader_is_me) || in->nofailover);
}

static bool guard_pg_gone(const HaInput *in)
{
    return !in->pg_running;
}

/* The start job is over (it succeeded, or none runs) and PostgreSQL is not
 * running: it stopped after it started (fenced, crashed, killed). Nothing
 * would start it again from a starting state. */
static bool guard_start_over_pg_gone(const HaInput *in)
{
    return !in->pg_running && (in->job == HA_JOB_NONE || in->job == HA_JOB_SUCCEEDED);
}

/* Down, and a fresh view says the key is still ours: restart in place. */
static bool guard_pg_gone_mine(const HaInput *in)
{
    return !in->pg_running && in->dcs_ok && in->leader_is_me && !in->standby_cluster;
}

static bool guard_up_no_leader_may_take(const HaInput *in)
{
    return guard_up(in) && !in->has_leader && !in->nofailover && !in->standby_cluster;
}

static bool guard_up_no_leader(const HaInput *in)
{
    return guard_up(in) && !in->has_leader;
}

static bool guard_other_leader(const HaInput *in)
{
    return in->has_leader && !in->leader_is_me;
}

static bool guard_no_leader_may_take(const HaInput *in)
{
    return !in->has_leader && !in->nofailover && in->pg_reachable && !in->standby_cluster;
}

static bool guard_no_leader(const HaInput *in)
{
    return !in->has_leader;
}

static bool guard_must_follow(const HaInput *in)
{
    return in->dcs_ok && in->has_leader && !in->leader_is_me && in->leader_member_known &&
           !in->follows_upstream;
}

static bool guard_lease_expiring(const HaInput *in)
{
    return in->lease_expiring;
}

/* The leader key is free and the election says we are the best candidate. */
static bool elected(const HaInput *in)
{
    return in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable && in->pg_in_recovery &&
           may_take_leader(in) && in->healthiest && !in->pre_promote_backoff;
}

static bool guard_elected(const HaInput *in)
{
    return elected(in) && !in->standby_cluster;
}

/* A standby cluster without a leader: its best replica becomes the standby
 * leader by following the remote primary, with no promotion (Patroni:
 * "promoted self to a standby leader by acquiring session lock"). */
static bool guard_standby_elected(const HaInput *in)
{
    return elected(in) && in->standby_cluster;
}

/* The standby leader: a replica holding the key of a standby cluster. */
static bool standby_leader(const HaInput *in)
{
    return in->standby_cluster && in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable &&
           in->pg_in_recovery && in->dcs_ok && in->leader_is_me;
}

static bool guard_standby_leader_refollow(const HaInput *in)
{
    return standby_leader(in) && !in->follows_upstream;
}

static bool guard_standby_leader(const HaInput *in)
{
    return standby_leader(in);
}

/* Paused, the standby leader keeps its key as a paused primary does. */
static bool guard_paused_standby_leader(const HaInput *in)
{
    return in->paused && standby_leader(in);
}

static bool guard_elected_pre_promote(const HaInput *in)
{
    return guard_elected(in) && in->pre_promote;
}

/* A planned switchover away from us to a member that is up. */
static bool guard_switchover_away(const HaInput *in)
{
    return in->dcs_ok && in->leader_is_me && in->failover_from_me && in->failover_candidate_other &&
           in->pg_running && in->pg_reachable;
}

/* We are the switchover's candidate and the old leader has let go. */
static bool guard_switchover_to_me(const HaInput *in)
{
    return in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable && in->pg_in_recovery &&
           in->dcs_ok && in->has_initialize && !in->has_leader && in->failover_candidate_me &&
           !in->nofailover && !in->pre_promote_backoff && !in->standby_cluster;
}

static bool guard_switchover_to_me_pre_promote(const HaInput *in)
{
    return guard_switchover_to_me(in) && in->pre_promote;
}

/* A running replica whose fresh view says the leader key is ours: it took
 * the key and its promotion did not finish (PostgreSQL stopped during it, a
 * disk full at the end-of-recovery checkpoint, and it was started again as
 * a replica). The key is kept alive by the member lease it shares, so
 * without these rows nobody would lead. Patroni promotes ("promoted self to
 * leader because I had the session lock"). */
static bool guard_replica_holds_leader(const HaInput *in)
{
    return in->data == HA_DATA_OURS && in->pg_running && in->pg_reachable && in->pg_in_recovery &&
           in->dcs_ok && in->leader_is_me && !in->lease_expiring;
}

static bool guard_replica_holds_leader_may_lead(const HaInput *in)
{
    return guard_replica_holds_leader(in) && !in->nofailover && !in->standby_cluster;
}

static bool guard_replica_holds_leader_pre_promote(const HaInput *in)
{
    return guard_replica_holds_leader_may_lead(in) && in->pre_promote;
}

/* pre_promote succeeded and nothing changed meanwhile: the key is still
 * ours on a fresh view, the lease not about to run out, PostgreSQL the
 * replica it was. */
static bool pre_promote_may_promote(const HaInput *in)
{
    return in->job == HA_JOB_SUCCEEDED && guard_replica_holds_leader_may_lead(in);
}

static bool guard_pre_promote_done_switchover(const HaInput *in)
{
    return pre_promote_may_promote(in) && in->failover_candidate_me;
}

static bool guard_pre_promote_done(const HaInput *in)
{
    return pre_promote_may_promote(in);
}

/* It failed (or was killed at its deadline), or its outcome was lost (an
 * action after it failed): the key is ours to give back. */
static bool guard_pre_promote_failed_mine(const HaInput *in)
{
    return in->job != HA_JOB_SUCCEEDED && in->dcs_ok && in->leader_is_me;
}

/* A promotion that may still happen while the leader key is not (or soon
 * not) ours: it must be made impossible before anyone else can lead. */
static bool promoting(const HaInput *in)
{
    /* data that stopped being ours is stopped by the foreign-data rows */
    return in->promoting && in->data == HA_DATA_OURS;
}

static bool guard_promoting_lost(const HaInput *in)
{
    return promoting(in) && (in->lease_expiring || (in->dcs_ok && !in->leader_is_me));
}

/* Pause waits for a stalled promotion rather than act on PostgreSQL. */
static bool guard_promote_stalled(const HaInput *in)
{
    return promoting(in) && in->promote_stalled && !in->paused;
}

static bool guard_promoting_switchover(const HaInput *in)
{
    return promoting(in) && in->dcs_ok && in->leader_is_me && in->failover_candidate_me;
}

static bool guard_promoting_mine(const HaInput *in)
{
    return promoting(in) && in->dcs_ok && in->leader_is_me;
}

static bool guard_promoting(const HaInput *in)
{
    return promoting(in);
}

/* Paused, an operator's switchover or failover still runs, as in Patroni:
 * the leader hands over, the named candidate takes the free key and
 * promotes, and the former primary it stopped rewinds and rejoins (Patroni's
 * one exception to starting nothing while paused). No automatic action
 * brings a paused cluster here: only a failover key an operator wrote. */
static bool paused_handover(const HaInput *in)
{
    if (in->failover_candidate_me) {
        return true;
    }
    if (in->state == HA_STATE_PRIMARY) {
        return in->leader_is_me && in->failover_from_me && in->failover_candidate_other;
    }
    /* Patroni's condition: a rewind is needed and possible (else it
     * leaves the server stopped while paused) */
    return in->state == HA_STATE_INIT && in->data == HA_DATA_OURS && !in->pg_running &&
           !in->standby_signal && in->dcs_ok &&
           ((in->has_leader && !in->leader_is_me && in->use_pg_rewind) ||
            in->failover_candidate_other);
}

/* Paused (Patroni's maintenance mode): a running primary keeps running
 * whatever happens to its lease, as Patroni ("continue to run as leader
 * because paused"): nobody promotes while paused unless an operator asks,
 * so no second primary can come of it. With etcd it keeps the leader key,
 * or takes it back once it expired, and creates the members' slots (none
 * is dropped while paused: agent/ha_exec.c). Only another member holding the key
 * (an operator's failover) still stops it: the rows of (g) follow. */
static bool paused_primary(const HaInput *in)
{
    return in->paused && running_primary(in) && !in->standby_cluster;
}

static bool guard_paused_leader(const HaInput *in)
{
    return paused_primary(in) && in->dcs_ok && in->leader_is_me && !paused_handover(in);
}

static bool guard_paused_leader_unled(const HaInput *in)
{
    return paused_primary(in) && may_take_leader(in) && !paused_handover(in);
}

/* Replicas follow the leader an operator's failover made (Patroni's
 * follow() re-points them while paused too): a reload, nothing stops. */
static bool guard_paused_must_follow(const HaInput *in)
{
    return in->paused && guard_must_follow(in) && in->data == HA_DATA_OURS && in->pg_running &&
           in->pg_reachable && in->pg_in_recovery && !in->standby_cluster;
}

/* Everything else waits while paused. An agent (re)started while paused
 * reattaches to the server that runs, by the INIT rows (its primary takes
 * back the key; another leader's key stops it, as (g)); so does a member
 * an operator's switchover or reinitialize stopped (HA_REQUEST_REJOIN). A
 * start, rewind or clone an operator's restart, switchover or reinitialize
 * began (the only ways into those states while paused) is finished by its
 * rows. */
static bool guard_paused(const HaInput *in)
{
    bool primary = in->state == HA_STATE_PRIMARY || in->state == HA_STATE_STARTING_PRIMARY;
    bool reattach = in->state == HA_STATE_INIT && ((in->data == HA_DATA_OURS && in->pg_running) ||
                                                   in->request == HA_REQUEST_REJOIN);
    bool finishing = in->state == HA_STATE_STARTING_PRIMARY ||
                     in->state == HA_STATE_STARTING_REPLICA || in->state == HA_STATE_REWINDING ||
                     in->state == HA_STATE_CLONING;
    return in->paused && !reattach && !finishing && !paused_handover(in) &&
           !(primary && in->has_leader && !in->leader_is_me);
}

static bool guard_restart_expired(const HaInput *in)
{
    return in->restart_expired;
}

/* A former primary (no standby.signal) that must follow another leader:
 * its timeline may have diverged, pg_rewind finds out and fixes it. */
static bool guard_stopped_primary_must_rewind(const HaInput *in)
{
    return stopped_ours(in) && !in->standby_signal && in->dcs_ok && in->has_leader &&
           !in->leader_is_me && in->leader_member_known && in->use_pg_rewind;
}

/* A replica whose WAL went past the leader's fork point (a forced failover
 * to a less advanced member): PostgreSQL refuses to follow the new
 * timeline, so it must be rewound, or cloned anew without use_pg_rewind. */
static bool diverged_from_leader(const HaInput *in)
{
    return in->diverged && in->dcs_ok && in->has_leader && !in->leader_is_me &&
           in->leader_member_known;
}

static bool guard_replica_diverged(const HaInput *in)
{
    return diverged_from_leader(in) && in->data == HA_DATA_OURS && in->pg_running;
}

static bool guard_stopped_replica_diverged_rewind(const HaInput *in)
{
    return diverged_from_leader(in) && stopped_ours(in) && in->standby_signal && in->use_pg_rewind;
}

static bool guard_stopped_replica_diverged(const HaInput *in)
{
    return diverged_from_leader(in) && stopped_ours(in) && in->standby_signal;
}

static bool guard_stopped_primary_crashed_mine(const HaInput *in)
{
    return stopped_ours(in) && in->leader_is_me && in->restart_expired;
}

/* An operator's restart of our running primary: only while we hold the
 * key, can renew it and see etcd (the safety rows come first anyway). */
static bool guard_restart_primary(const HaInput *in)
{
    return in->request == HA_REQUEST_RESTART && in->data == HA_DATA_OURS && in->dcs_ok &&
           in->leader_is_me && !in->lease_expiring && in->pg_running && in->pg_reachable &&
           !in->pg_in_recovery && !in->standby_cluster;
}

static bool guard_restart_replica(const HaInput *in)
{
    return in->request == HA_REQUEST_RESTART && in->data == HA_DATA_OURS &&
           (!in->leader_is_me || in->standby_cluster) && in->pg_running && in->pg_reachable &&
           in->pg_in_recovery;
}

/* Reinitialize: only a replica of a cluster that has another leader to
 * clone from. */
static bool reinit_possible(const HaInput *in)
{
    return in->request == HA_REQUEST_REINIT && in->data == HA_DATA_OURS && in->dcs_ok &&
           in->has_leader && !in->leader_is_me && in->leader_member_known;
}

static bool guard_reinit_running(const HaInput *in)
{
    return reinit_possible(in) && in->pg_running && (!in->pg_reachable || in->pg_in_recovery);
}

/* From the states a stopped server waits in: paused, a replica whose
 * server stopped stays REPLICA (and a former primary PRIMARY). */
static bool guard_reinit_stopped(const HaInput *in)
{
    bool waiting = in->state == HA_STATE_INIT || in->state == HA_STATE_REPLICA ||
                   in->state == HA_STATE_PRIMARY;
    return reinit_possible(in) && !in->pg_running && waiting;
}

/* Paused, an operator's restart of a server that is not running starts it,
 * as Patroni's (a stop, which finds nothing to stop, then a start): the
 * paused rows leave a stopped server alone, so the request is taken up
 * here, from the states a stopped server waits in. */
static bool paused_restart_stopped(const HaInput *in)
{
    bool waiting = in->state == HA_STATE_INIT || in->state == HA_STATE_REPLICA ||
                   in->state == HA_STATE_PRIMARY;
    return in->paused && in->request == HA_REQUEST_RESTART && waiting && stopped_ours(in) &&
           in->dcs_ok;
}

/* A replica starts as one, following the leader (or the remote primary). */
static bool guard_paused_restart_stopped_replica(const HaInput *in)
{
    return paused_restart_stopped(in) && (in->standby_signal || in->standby_cluster);
}

/* A former primary starts as the primary only under its own key, or a free
 * one it takes first (as the unpaused INIT rows). Under another member's
 * key it is not started: Patroni would start it as a second primary; it
 * rejoins by a rewind (paused_handover) or a reinitialize. */
static bool paused_restart_stopped_primary(const HaInput *in)
{
    return paused_restart_stopped(in) && !in->standby_signal && !in->standby_cluster;
}

static bool guard_paused_restart_stopped_primary_mine(const HaInput *in)
{
    return paused_restart_stopped_primary(in) && in->leader_is_me && !in->lease_expiring;
}

/* A free key while paused may hide a primary that runs on without it: one
 * whose agent died while it led (nothing fences while paused). The agent
 * asks that member's server before this row is reached. */
static bool guard_paused_restart_stopped_primary_elsewhere(const HaInput *in)
{
    return paused_restart_stopped_primary(in) && !in->has_leader && in->paused_leader_elsewhere;
}

static bool guard_paused_restart_stopped_primary_unled(const HaInput *in)
{
    return paused_restart_stopped_primary(in) && may_take_leader(in) && !in->pre_promote_backoff;
}

/* ---- the table ---- */

#define ANY    _HA_STATE_MAX
#define STAY   _HA_STATE_MAX
#define G(f)   f, #f
#define A(...) { __VA_ARGS__ }, ELEMENTSOF(((HaAction[]){ __VA_ARGS__ }))
#define NONE   { 0 }, 0

static const HaRow table[] = {
    /* A job (initdb, clone, start, stop) is running: keep observing. */
    { ANY, G(guard_job_running), STAY, NONE, "waiting for the running job" },

    /* A promotion asked for and not finished (PROMOTE waits for it no
     * longer than the lease's next renewal) may finish at any moment:
     * until PostgreSQL is seen out of recovery or stopped, the fence stays
     * armed, and nobody else may lead before it is stopped. A signal file
     * removed in time would withdraw it, but the startup process may have
     * read it already and nothing outside shows that; only a stop makes it
     * impossible (FENCE: immediate, verified). Before an operator's
     * request and before pause, which must not leave it to finish unseen. */
    { HA_STATE_REPLICA, G(guard_promoting_lost), HA_STATE_INIT, A(HA_ACTION_FENCE),
      "the leader key is no longer ours (or our lease runs out) while postgresql promotes: "
      "stopping it at once so that the promotion cannot finish (SIGKILL)" },
    { HA_STATE_REPLICA, G(guard_promote_stalled), HA_STATE_INIT,
      A(HA_ACTION_FENCE, HA_ACTION_RELEASE_LEADER),
      "postgresql made no progress with the promotion for 15 s: stopping it at once so that it "
      "cannot finish later (SIGKILL), then releasing the leader key" },
    { HA_STATE_REPLICA, G(guard_promoting_switchover), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "switchover: postgresql is still promoting: keeping the leader key and waiting" },
    { HA_STATE_REPLICA, G(guard_promoting_mine), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "postgresql is still promoting: keeping the leader key and waiting" },
    { HA_STATE_REPLICA, G(guard_promoting), STAY, NONE,
      "postgresql is still promoting; etcd unreachable" },

    /* What an operator asked for, also while paused (as Patroni; pause lets
     * the steps that follow finish): restart in place, or a replica's
     * reinitialization (stop, data aside, clone, start). */
    { HA_STATE_PRIMARY, G(guard_restart_primary), HA_STATE_STARTING_PRIMARY,
      A(HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_RESTART_POSTGRES),
      "restart requested: restarting the primary in place" },
    { HA_STATE_REPLICA, G(guard_restart_replica), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_RESTART_POSTGRES), "restart requested: restarting the replica" },
    { HA_STATE_REPLICA, G(guard_reinit_running), HA_STATE_INIT, A(HA_ACTION_STOP_POSTGRES),
      "reinitialize requested: stopping the replica" },
    { ANY, G(guard_reinit_stopped), HA_STATE_INIT, A(HA_ACTION_MOVE_DATA_ASIDE),
      "reinitialize: moving the data directory aside to clone anew" },
    { ANY, G(guard_paused_restart_stopped_replica), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: starting the stopped replica" },
    { ANY, G(guard_paused_restart_stopped_primary_mine), HA_STATE_STARTING_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: holding the leader key, starting the stopped primary" },
    { ANY, G(guard_paused_restart_stopped_primary_elsewhere), STAY, NONE,
      "paused, restart requested: not starting our former primary: the member that led while "
      "paused still accepts writes (its agent does not answer); start its agent or stop that "
      "postgresql" },
    { ANY, G(guard_paused_restart_stopped_primary_unled), HA_STATE_STARTING_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "paused, restart requested: taking the free leader key, starting the stopped primary" },

    /* Maintenance mode: hands off PostgreSQL. The leader keeps its key, or
     * takes it back after its lease ran out (etcd unreachable, the agent
     * stopped); its PostgreSQL runs on either way. */
    { HA_STATE_PRIMARY, G(guard_paused_leader), STAY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "paused: keeping the leader key, no other action" },
    { HA_STATE_PRIMARY, G(guard_paused_leader_unled), STAY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_PUBLISH_STATUS),
      "paused: the leader key ran out; taking it back for the running primary" },
    { HA_STATE_REPLICA, G(guard_paused_standby_leader), STAY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_PUBLISH_STATUS),
      "paused: keeping the leader key of the standby cluster, no other action" },
    { HA_STATE_REPLICA, G(guard_paused_must_follow), STAY, A(HA_ACTION_FOLLOW),
      "paused: following the new leader" },
    { ANY, G(guard_paused), STAY, NONE, "paused: no automatic action" },

    { HA_STATE_REFUSED, G(guard_always), STAY, NONE,
      "the data directory belongs to another cluster; nothing is done" },

    /* Data that stopped being this cluster's (its `initialize` changed under
     * a running node): stop serving it and keep hands off. */
    { HA_STATE_PRIMARY, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE), "the primary's data is not this cluster's" },
    { HA_STATE_REPLICA, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE), "the replica's data is not this cluster's" },
    { HA_STATE_PRE_PROMOTE, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the replica's data is not this cluster's (pre_promote ran)" },
    { HA_STATE_STARTING_PRIMARY, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the starting primary's data is not this cluster's" },
    { HA_STATE_STARTING_REPLICA, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the starting replica's data is not this cluster's" },

    /* INIT: look at the data directory and the cluster. */
    { HA_STATE_INIT, G(guard_data_foreign), HA_STATE_REFUSED, A(HA_ACTION_REFUSE),
      "the data directory is not this cluster's" },
    { HA_STATE_INIT, G(guard_dcs_down), STAY, NONE, "waiting for etcd" },
    { HA_STATE_INIT, G(guard_empty_uninitialized_standby), HA_STATE_CLONING,
      A(HA_ACTION_RACE_INITIALIZE, HA_ACTION_CLONE),
      "a new standby cluster: racing for initialize, then cloning the remote primary" },
    { HA_STATE_INIT, G(guard_empty_uninitialized_may_lead), HA_STATE_BOOTSTRAP_INITDB,
      A(HA_ACTION_RACE_INITIALIZE, HA_ACTION_RUN_INITDB),
      "the cluster is not initialized: bootstrapping it" },
    { HA_STATE_INIT, G(guard_empty_can_clone), HA_STATE_CLONING, A(HA_ACTION_CLONE),
      "cloning a replica from the leader" },
    { HA_STATE_INIT, G(guard_empty_can_clone_unled), HA_STATE_CLONING, A(HA_ACTION_CLONE),
      "no leader: creating a replica with a method that needs none (no_leader)" },
    { HA_STATE_INIT, G(guard_empty), STAY, NONE, "waiting for a leader to clone from" },
    { HA_STATE_INIT, G(guard_ours_uninitialized), STAY, A(HA_ACTION_RECLAIM_INITIALIZE),
      "\"initialize\" is missing: claiming it with our system identifier" },
    { HA_STATE_INIT, G(guard_running_primary_standby), STAY, A(HA_ACTION_STOP_POSTGRES),
      "a standby cluster takes no writes: stopping the primary to start it as a standby" },
    { HA_STATE_INIT, G(guard_running_primary_mine), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "reattached to the running primary" },
    { HA_STATE_INIT, G(guard_running_primary_unled), HA_STATE_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "a running primary and no leader: taking the leader key" },
    { HA_STATE_INIT, G(guard_running_primary_other_leader), STAY, A(HA_ACTION_STOP_POSTGRES),
      "another member is the leader: stopping to rejoin as a replica" },
    { HA_STATE_INIT, G(guard_running_replica), HA_STATE_REPLICA, NONE,
      "reattached to the running replica" },
    { HA_STATE_INIT, G(guard_running_unreachable), STAY, NONE,
      "postgresql runs but does not answer yet" },
    { HA_STATE_INIT, G(guard_stopped_standby), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "standby cluster: starting as a standby (of the remote primary when we lead)" },
    { HA_STATE_INIT, G(guard_stopped_primary_crashed_mine), STAY, A(HA_ACTION_RELEASE_LEADER),
      "the primary did not come back within primary_start_timeout: releasing the leader key" },
    { HA_STATE_INIT, G(guard_stopped_primary_must_rewind), HA_STATE_REWINDING, A(HA_ACTION_REWIND),
      "a former primary: rewinding against the new leader" },
    { HA_STATE_INIT, G(guard_stopped_replica_diverged_rewind), HA_STATE_REWINDING,
      A(HA_ACTION_REWIND), "a replica past the leader's fork point: rewinding against it" },
    { HA_STATE_INIT, G(guard_stopped_replica_diverged), HA_STATE_INIT, A(HA_ACTION_MOVE_DATA_ASIDE),
      "a replica past the leader's fork point, use_pg_rewind off: moving the data aside to "
      "clone anew" },
    { HA_STATE_INIT, G(guard_stopped_primary_mine), HA_STATE_STARTING_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "holding the leader key: starting the primary" },
    { HA_STATE_INIT, G(guard_stopped_primary_unled), HA_STATE_STARTING_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "a former primary and no leader: taking the leader key and starting" },
    { HA_STATE_INIT, G(guard_stopped_primary_after_crash), STAY, NONE,
      "our primary crashed and the key is free: waiting for a replica to take over" },
    { HA_STATE_INIT, G(guard_stopped_primary_no_leader), STAY, NONE,
      "a former primary handing over: waiting for the candidate to lead, to rewind against it" },
    { HA_STATE_INIT, G(guard_stopped), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES), "starting as a replica" },
    { HA_STATE_INIT, G(guard_always), STAY, NONE, "waiting" },

    /* Bootstrap. */
    { HA_STATE_BOOTSTRAP_INITDB, G(guard_job_failed_ours), HA_STATE_INIT,
      A(HA_ACTION_ABORT_BOOTSTRAP), "initdb failed" },
    { HA_STATE_BOOTSTRAP_INITDB, G(guard_data_foreign), HA_STATE_REFUSED, A(HA_ACTION_REFUSE),
      "after initdb the data directory is not this cluster's" },
    { HA_STATE_BOOTSTRAP_INITDB, G(guard_initdb_done_lost), HA_STATE_INIT,
      A(HA_ACTION_ABORT_BOOTSTRAP), "initdb done but another member leads: abandoning it" },
    { HA_STATE_BOOTSTRAP_INITDB, G(guard_job_succeeded_ours), HA_STATE_BOOTSTRAP_STARTING,
      A(HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "initdb done: starting the new primary" },
    { HA_STATE_BOOTSTRAP_INITDB, G(guard_always), STAY, NONE, "waiting for initdb" },
    { HA_STATE_BOOTSTRAP_STARTING, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the new primary's data is not this cluster's" },
    { HA_STATE_BOOTSTRAP_STARTING, G(guard_job_failed), HA_STATE_INIT, A(HA_ACTION_ABORT_BOOTSTRAP),
      "the new primary did not start" },
    { HA_STATE_BOOTSTRAP_STARTING, G(guard_bootstrap_lost), HA_STATE_INIT,
      A(HA_ACTION_ABORT_BOOTSTRAP), "another member leads: abandoning our bootstrap" },
    { HA_STATE_BOOTSTRAP_STARTING, G(guard_bootstrap_up_post), HA_STATE_BOOTSTRAP_POST,
      A(HA_ACTION_RUN_POST_BOOTSTRAP), "the new primary runs: running post_bootstrap" },
    { HA_STATE_BOOTSTRAP_STARTING, G(guard_bootstrap_up), HA_STATE_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_FINISH_BOOTSTRAP, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "bootstrapped the cluster: leader" },
    { HA_STATE_BOOTSTRAP_STARTING, G(guard_always), STAY, NONE, "waiting for the new primary" },
    /* post_bootstrap, as Patroni: before `initialize`, `config` and the
     * leader key are written; a failure abandons the bootstrap. */
    { HA_STATE_BOOTSTRAP_POST, G(guard_data_foreign), HA_STATE_REFUSED,
      A(HA_ACTION_STOP_POSTGRES, HA_ACTION_REFUSE),
      "the new primary's data is not this cluster's" },
    { HA_STATE_BOOTSTRAP_POST, G(guard_job_failed), HA_STATE_INIT, A(HA_ACTION_ABORT_BOOTSTRAP),
      "post_bootstrap failed: abandoning the bootstrap" },
    { HA_STATE_BOOTSTRAP_POST, G(guard_bootstrap_lost), HA_STATE_INIT, A(HA_ACTION_ABORT_BOOTSTRAP),
      "another member leads: abandoning our bootstrap" },
    { HA_STATE_BOOTSTRAP_POST, G(guard_pg_stopped), HA_STATE_INIT, A(HA_ACTION_ABORT_BOOTSTRAP),
      "the new primary stopped during post_bootstrap: abandoning the bootstrap" },
    { HA_STATE_BOOTSTRAP_POST, G(guard_post_bootstrap_done), HA_STATE_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_FINISH_BOOTSTRAP, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "post_bootstrap done: bootstrapped the cluster, leader" },
    { HA_STATE_BOOTSTRAP_POST, G(guard_always), STAY, NONE,
      "post_bootstrap done; waiting for etcd and the new primary to finish the bootstrap" },

    /* Replica creation. */
    { HA_STATE_CLONING, G(guard_job_failed), HA_STATE_INIT, A(HA_ACTION_REMOVE_CLONE),
      "the clone failed: retrying after a backoff" },
    { HA_STATE_CLONING, G(guard_in_place_clone_done), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_INSTALL_CLONE, HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "the replica method filled the data directory: starting the replica" },
    { HA_STATE_CLONING, G(guard_in_place_clone_wrong), HA_STATE_INIT, A(HA_ACTION_REMOVE_CLONE),
      "the replica method left no data directory of this cluster: emptying it" },
    { HA_STATE_CLONING, G(guard_job_succeeded_empty), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_INSTALL_CLONE, HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "clone done: starting the replica" },
    { HA_STATE_CLONING, G(guard_job_succeeded), HA_STATE_INIT, A(HA_ACTION_REMOVE_CLONE),
      "the data directory filled up while cloning: discarding the clone" },
    { HA_STATE_CLONING, G(guard_always), STAY, NONE, "waiting for the clone" },

    /* Starting. */
    { HA_STATE_STARTING_REPLICA, G(guard_job_failed), HA_STATE_INIT, NONE,
      "the replica did not start" },
    /* Slots for the members that cascade from us exist before our member
     * key first says "running" (they may point at us from then on). */
    { HA_STATE_STARTING_REPLICA, G(guard_up_fresh_view), HA_STATE_REPLICA, A(HA_ACTION_SYNC_SLOTS),
      "replica started" },
    { HA_STATE_STARTING_REPLICA, G(guard_up), HA_STATE_REPLICA, NONE,
      "replica started; etcd unreachable" },
    { HA_STATE_STARTING_REPLICA, G(guard_start_over_pg_gone), HA_STATE_INIT, NONE,
      "postgresql stopped after the replica started: deciding again" },
    { HA_STATE_STARTING_REPLICA, G(guard_always), STAY, NONE, "waiting for the replica to start" },
    { HA_STATE_STARTING_PRIMARY, G(guard_lease_expiring), HA_STATE_INIT, A(HA_ACTION_FENCE),
      "the leader lease expires while the primary starts: fencing" },
    { HA_STATE_STARTING_PRIMARY, G(guard_other_leader), HA_STATE_INIT, A(HA_ACTION_FENCE),
      "another member holds the leader key: fencing the starting primary" },
    { HA_STATE_STARTING_PRIMARY, G(guard_job_failed), HA_STATE_INIT, NONE,
      "the primary did not start" },
    { HA_STATE_STARTING_PRIMARY, G(guard_dcs_down), STAY, NONE,
      "the primary is starting but etcd is unreachable" },
    { HA_STATE_STARTING_PRIMARY, G(guard_up_no_leader_may_take), HA_STATE_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "primary started and the leader key is free: taking it" },
    { HA_STATE_STARTING_PRIMARY, G(guard_up_no_leader), HA_STATE_INIT, A(HA_ACTION_FENCE),
      "primary started but the leader key is gone and we may not take it: fencing" },
    { HA_STATE_STARTING_PRIMARY, G(guard_up), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "primary started" },
    { HA_STATE_STARTING_PRIMARY, G(guard_start_over_pg_gone), HA_STATE_INIT, NONE,
      "postgresql stopped after the primary started: deciding again" },
    { HA_STATE_STARTING_PRIMARY, G(guard_always), STAY, NONE, "waiting for the primary to start" },

    /* Rejoin. */
    { HA_STATE_REWINDING, G(guard_data_foreign), HA_STATE_REFUSED, A(HA_ACTION_REFUSE),
      "after pg_rewind the data directory is not this cluster's" },
    { HA_STATE_REWINDING, G(guard_job_failed), HA_STATE_INIT, A(HA_ACTION_MOVE_DATA_ASIDE),
      "pg_rewind failed: moving the data directory aside to clone anew" },
    { HA_STATE_REWINDING, G(guard_job_succeeded), HA_STATE_STARTING_REPLICA,
      A(HA_ACTION_WRITE_REPLICA_CONF, HA_ACTION_START_POSTGRES),
      "rewound: starting as a replica of the new leader" },
    { HA_STATE_REWINDING, G(guard_always), STAY, NONE, "waiting for pg_rewind" },

    /* Leader. */
    { HA_STATE_PRIMARY, G(guard_lease_expiring), HA_STATE_INIT, A(HA_ACTION_FENCE),
      "the leader lease could not be renewed in time: fencing (SIGKILL)" },
    { HA_STATE_PRIMARY, G(guard_other_leader), HA_STATE_INIT, A(HA_ACTION_FENCE),
      "another member holds the leader key: fencing (SIGKILL)" },
    { HA_STATE_PRIMARY, G(guard_restart_expired), HA_STATE_INIT, A(HA_ACTION_RELEASE_LEADER),
      "the primary is down and may not be restarted in place: releasing the leader key" },
    { HA_STATE_PRIMARY, G(guard_pg_gone_mine), HA_STATE_STARTING_PRIMARY,
      A(HA_ACTION_NOTE_CRASH, HA_ACTION_WRITE_PRIMARY_CONF, HA_ACTION_START_POSTGRES),
      "the primary is not running: restarting it in place" },
    { HA_STATE_PRIMARY, G(guard_pg_gone), HA_STATE_INIT, NONE,
      "the primary is not running and our leadership is unconfirmed" },
    { HA_STATE_PRIMARY, G(guard_dcs_down), STAY, NONE, "etcd unreachable" },
    { HA_STATE_PRIMARY, G(guard_running_primary_standby), HA_STATE_INIT, A(HA_ACTION_STOP_POSTGRES),
      "the cluster is now a standby cluster, which takes no writes: stopping the primary to "
      "start it as the standby leader" },
    { HA_STATE_PRIMARY, G(guard_switchover_away), HA_STATE_INIT, A(HA_ACTION_SWITCHOVER_DEMOTE),
      "switchover: stopping and handing the leader key to the candidate" },
    { HA_STATE_PRIMARY, G(guard_no_leader_may_take), STAY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "the leader key is gone: taking it again" },
    { HA_STATE_PRIMARY, G(guard_no_leader), HA_STATE_INIT, A(HA_ACTION_STOP_POSTGRES),
      "the leader key is gone and we may not take it: stopping" },
    { HA_STATE_PRIMARY, G(guard_always), STAY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "leader" },

    /* pre_promote (Patroni's fencing script), run after the leader key is
     * taken: the key is held while it runs (the job row above), and
     * PostgreSQL is promoted only when it succeeded and the key is still
     * ours on a fresh view with time left on the lease. A failure gives the
     * key back and keeps us out of the leader race for ttl (policy.c). */
    { HA_STATE_PRE_PROMOTE, G(guard_pre_promote_done_switchover), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "pre_promote succeeded: switchover: promoting" },
    { HA_STATE_PRE_PROMOTE, G(guard_pre_promote_done), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "pre_promote succeeded: promoting" },
    { HA_STATE_PRE_PROMOTE, G(guard_pre_promote_failed_mine), HA_STATE_REPLICA,
      A(HA_ACTION_RELEASE_LEADER),
      "pre_promote failed: not promoting; releasing the leader key (no leader race for ttl)" },
    { HA_STATE_PRE_PROMOTE, G(guard_always), HA_STATE_REPLICA, NONE,
      "pre_promote ended, but the leader key is not ours on a fresh view, the lease runs out or "
      "postgresql is no running replica: not promoting" },

    /* Replica. */
    { HA_STATE_REPLICA, G(guard_pg_gone), HA_STATE_INIT, NONE, "the replica is not running" },
    { HA_STATE_REPLICA, G(guard_running_primary), HA_STATE_INIT, NONE,
      "postgresql runs as a primary (a promotion whose last steps failed): deciding again" },
    { HA_STATE_REPLICA, G(guard_standby_leader_refollow), STAY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_FOLLOW), "standby leader: following the remote primary" },
    { HA_STATE_REPLICA, G(guard_standby_leader), STAY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_INITIALIZE_STANDBY, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_PUBLISH_STATUS),
      "standby leader" },
    { HA_STATE_REPLICA, G(guard_replica_holds_leader_pre_promote), HA_STATE_PRE_PROMOTE,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_RUN_PRE_PROMOTE),
      "we hold the leader key and postgresql is a replica: running pre_promote before promoting" },
    { HA_STATE_REPLICA, G(guard_replica_holds_leader_may_lead), HA_STATE_PRIMARY,
      A(HA_ACTION_RENEW_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "we hold the leader key and postgresql is a replica (a promotion that did not finish): "
      "promoting" },
    { HA_STATE_REPLICA, G(guard_replica_holds_leader), HA_STATE_REPLICA,
      A(HA_ACTION_RELEASE_LEADER), "we hold the leader key but may not lead: releasing it" },
    { HA_STATE_REPLICA, G(guard_switchover_to_me_pre_promote), HA_STATE_PRE_PROMOTE,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_RUN_PRE_PROMOTE),
      "switchover: we are the candidate: took the leader key, running pre_promote" },
    { HA_STATE_REPLICA, G(guard_switchover_to_me), HA_STATE_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_PROMOTE, HA_ACTION_CLEAR_FAILOVER, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_SYNC_REPLICATION, HA_ACTION_PUBLISH_STATUS),
      "switchover: we are the candidate: promoting" },
    { HA_STATE_REPLICA, G(guard_standby_elected), STAY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_INITIALIZE_STANDBY, HA_ACTION_FOLLOW, HA_ACTION_SYNC_SLOTS,
        HA_ACTION_PUBLISH_STATUS),
      "no leader in the standby cluster and we are the best candidate: took the leader key, "
      "following the remote primary" },
    { HA_STATE_REPLICA, G(guard_elected_pre_promote), HA_STATE_PRE_PROMOTE,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_RUN_PRE_PROMOTE),
      "no leader and we are the best candidate: took the leader key, running pre_promote" },
    { HA_STATE_REPLICA, G(guard_elected), HA_STATE_PRIMARY,
      A(HA_ACTION_TAKE_LEADER, HA_ACTION_PROMOTE, HA_ACTION_SYNC_SLOTS, HA_ACTION_SYNC_REPLICATION,
        HA_ACTION_PUBLISH_STATUS),
      "no leader and we are the best candidate: promoting" },
    { HA_STATE_REPLICA, G(guard_replica_diverged), HA_STATE_INIT, A(HA_ACTION_STOP_POSTGRES),
      "our WAL goes past the leader's fork point: stopping to rewind" },
    { HA_STATE_REPLICA, G(guard_must_follow), STAY, A(HA_ACTION_FOLLOW),
      "following a new upstream (the leader, or the replicatefrom member)" },
    /* A replica keeps slots for the members that cascade from it, from a
     * fresh view only (it drops the others). */
    { HA_STATE_REPLICA, G(guard_dcs_down), STAY, NONE, "replica; etcd unreachable" },
    { HA_STATE_REPLICA, G(guard_always), STAY, A(HA_ACTION_SYNC_SLOTS), "replica" },

    /* Shutdown runs outside the table (agent_stop); it only waits here. */
    { HA_STATE_STOPPING, G(guard_always), STAY, NONE, "stopping" },
};

#undef ANY
#undef STAY
#undef G
#undef A
#undef NONE

const HaRow *ha_table(size_t *ret_n)
{
    *ret_n = ELEMENTSOF(table);
    return table;
}

int ha_decide(const HaInput *in, HaDecision *ret)
{
    if (!in || !ret || in->state < 0 || in->state >= _HA_STATE_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < ELEMENTSOF(table); i++) {
        const HaRow *row = &table[i];
        if (row->from != _HA_STATE_MAX && row->from != in->state) {
            continue;
        }
        if (!row->guard(in)) {
            continue;
        }
        HaDecision d = {
            .next = row->to == _HA_STATE_MAX ? in->state : row->to,
            .n_actions = row->n_actions,
            .reason = row->reason,
            .row = i,
        };
        memcpy(d.actions, row->actions, sizeof(d.actions));
        *ret = d;
        return 0;
    }
    return -EINVAL; /* unreachable: every state has a catch-all row */
}

int ha_dump(const char *format, FILE *out)
{
    bool dot = strcmp(format, "dot") == 0;
    if (!dot && strcmp(format, "json") != 0) {
        return -EINVAL;
    }
    json_t *rows = dot ? NULL : json_array();
    if (dot) {
        fputs("digraph dbha_ha {\n  rankdir=LR;\n", out);
    } else if (!rows) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < ELEMENTSOF(table); i++) {
        const HaRow *r = &table[i];
        const char *from = r->from == _HA_STATE_MAX ? "*" : ha_state_to_string(r->from);
        const char *to = r->to == _HA_STATE_MAX ? from : ha_state_to_string(r->to);
        if (dot) {
            /* guard names all start with "guard_" */
            fprintf(out, "  \"%s\" -> \"%s\" [label=\"%s", from, to, r->guard_name + 6);
            for (size_t j = 0; j < r->n_actions; j++) {
                fprintf(out, "%s%s", j ? ", " : " / ", ha_action_to_string(r->actions[j]));
            }
            fputs("\"];\n", out);
            continue;
        }
        json_t *actions = json_array();
        for (size_t j = 0; actions && j < r->n_actions; j++) {
            json_array_append_new(actions, json_string(ha_action_to_string(r->actions[j])));
        }
        json_t *o =
            json_pack("{s:I, s:s, s:s, s:s, s:o, s:s}", "row", (json_int_t)i, "from", from, "guard",
                      r->guard_name, "to", to, "actions", actions, "reason", r->reason);
        if (!o || json_array_append_new(rows, o) < 0) {
            json_decref(rows);
            return -ENOMEM;
        }
    }
    if (dot) {
        fputs("}\n", out);
        return 0;
    }
    int r = json_dumpf(rows, out, JSON_INDENT(2)) < 0 ? -EIO : 0;
    fputc('\n', out);
    json_decref(rows);
    return r;
}
