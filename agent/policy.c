#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define USEC_PER_SEC 1000000ULL

/* A replica's timeline: the one it last streamed on, else pg_control's
 * from the probe (never newer than the one replayed). */
static int64_t our_timeline(const HaMemory *m, const PgSnapshot *s)
{
    return (int64_t)(m->streamed_tli > s->timeline ? m->streamed_tli : s->timeline);
}

/* A running replica checks its position against the leader's fork point
 * (from the history key). Its timeline is the one it last streamed on:
 * pg_control's lags behind until a restartpoint, and received_tli exists
 * only while a walreceiver runs, which is exactly what fails here. A
 * replica that has not streamed since the agent started (a former primary
 * started as a replica while no one led, or an agent restarted beside a
 * replica whose walreceiver keeps failing) has only pg_control's timeline,
 * the snapshot's: it is never newer than the one replayed, so the verdict
 * can only err towards a rewind that pg_rewind finds needless, never
 * towards following a timeline that forked off behind us (found by the
 * chaos suite, seed 27 round 3: a fenced former leader came back as a
 * replica and never streamed). The verdict is kept while PostgreSQL is
 * down, so the stopped replica is rewound; streaming from the leader
 * clears it. */
static void divergence(const HaObservation *o, HaMemory *m, HaStep *st)
{
    const DcsCluster *c = o->dcs_ok ? o->view : NULL;
    const DcsMember *lm = c ? dcs_cluster_leader_member(c) : NULL;
    const PgSnapshot *s = o->snap;
    if (!lm || !o->pg_running || !s || !s->in_recovery) {
        return;
    }
    /* whatever the walreceiver's status: the timeline it received WAL on
     * is the one pg_last_wal_receive_lsn() stays on after it stops (seen:
     * a former primary's walreceiver restarting right after a clean
     * switchover, its received WAL on the new timeline, pg_control's still
     * the old one: a needless rewind). A walreceiver that PostgreSQL
     * rejects received nothing past the fork, on our own timeline. */
    if (s->received_tli > m->streamed_tli) {
        m->streamed_tli = s->received_tli;
    }
    /* "streaming" shows also while a walreceiver that PostgreSQL will reject
     * starts up: only streaming on the leader's timeline clears the verdict,
     * from the leader or from a replicatefrom member that streams it */
    if (o->streaming && o->following && (lm->timeline <= 0 || s->received_tli >= lm->timeline)) {
        m->diverged = false;
        return;
    }
    uint64_t pos = s->receive_lsn > s->replay_lsn ? s->receive_lsn : s->replay_lsn;
    bool d = dcs_history_diverged(c->history, our_timeline(m, s), pos, lm->timeline);
    st->say_diverged = d && !m->diverged;
    m->diverged = d;
}

/* A crash of our primary is observed (not decided): it starts the
 * primary_start_timeout clock. The memory of it ends when PostgreSQL is
 * back as a primary, when another member leads (we rejoin), or when the
 * others had a whole ttl to take over and did not (we may lead again). */
static void crash_memory(const HaObservation *o, HaMemory *m, HaInput *in)
{
    uint64_t now = o->now_usec;
    uint64_t ttl = (uint64_t)o->dcs->ttl * USEC_PER_SEC;
    uint64_t start_timeout = (uint64_t)o->dcs->primary_start_timeout * USEC_PER_SEC;
    if (m->state == HA_STATE_PRIMARY && !o->pg_running && m->primary_down_usec == 0) {
        m->primary_down_usec = now;
    }
    if ((o->pg_running && o->snap && !o->snap->in_recovery) ||
        (in->has_leader && !in->leader_is_me) ||
        (m->primary_down_usec != 0 && now - m->primary_down_usec > start_timeout + ttl)) {
        m->primary_down_usec = 0;
    }
    in->crash_noted = m->primary_down_usec != 0;
    in->restart_expired =
        !o->pg_running && m->primary_down_usec != 0 && now - m->primary_down_usec >= start_timeout;
}

/* A promotion that may still happen (HaMemory.promote_usec). It ends when
 * PROMOTE succeeds (PostgreSQL out of recovery and the steps after it
 * done: one that finished between two ticks is taken up by the next
 * PROMOTE), when PostgreSQL is not running (a postmaster that starts again
 * removes a promote signal file before its startup process runs), or when
 * we are no longer a replica in the table's sense (the FENCE that ends it
 * leaves that state). A promote signal file seen
 * on a running replica starts one too: a request left by an agent that
 * died mid-promotion, or by someone else (not while paused: an operator's
 * own promotion is left alone then). Replay that moves counts as progress;
 * HA_PROMOTE_STALL_USEC without any is a stall. */
static void promotion(const HaObservation *o, HaMemory *m, HaInput *in)
{
    const PgSnapshot *s = o->snap;
    uint64_t now = o->now_usec;
    if (m->promote_usec == 0 && o->promote_signal && !in->paused && o->pg_running && s &&
        s->in_recovery && m->state == HA_STATE_REPLICA) {
        m->promote_usec = now;
        m->promote_progress_usec = now;
        m->promote_replay_lsn = s->replay_lsn;
    }
    if (m->promote_usec != 0 && (m->state != HA_STATE_REPLICA || !o->pg_running)) {
        m->promote_usec = 0;
    }
    if (m->promote_usec == 0) {
        return;
    }
    if (s && s->replay_lsn > m->promote_replay_lsn) {
        m->promote_replay_lsn = s->replay_lsn;
        m->promote_progress_usec = now;
    }
    in->promoting = true;
    in->promote_stalled = now - m->promote_progress_usec >= HA_PROMOTE_STALL_USEC;
}

/* The failover key: a scheduled switchover waits for its time (a tick is
 * wanted then); an unreadable time never comes. */
static void failover_key(const HaObservation *o, HaStep *st)
{
    const DcsCluster *c = o->view;
    const DcsFailover *fo = c ? c->failover : NULL;
    if (fo && fo->scheduled_at) {
        double at;
        if (dcs_parse_time(fo->scheduled_at, &at) < 0) {
            st->failover_time_unreadable = true;
            fo = NULL;
        } else if (at - o->now_epoch > 0) {
            st->wake_usec = o->now_usec + (uint64_t)((at - o->now_epoch) * USEC_PER_SEC) + 1000;
            fo = NULL;
        }
    }
    const char *cand_name = fo ? dcs_failover_candidate(c) : NULL;
    if (!cand_name) {
        return;
    }
    HaInput *in = &st->input;
    const DcsMember *cand = dcs_cluster_get_member(c, cand_name);
    in->failover_from_me = !fo->leader || strcmp(fo->leader, o->me) == 0;
    in->failover_candidate_me = strcmp(cand_name, o->me) == 0;
    in->failover_candidate_other =
        !in->failover_candidate_me && cand && cand->state && strcmp(cand->state, "running") == 0;
}

/* Our own verdict on our lag, kept in failover_blocked for the member key.
 * Replay, not receipt, is what a promotion would make visible, so the
 * replayed position counts. */
static bool lag_verdict(const HaObservation *o, HaStep *st)
{
    HaMemory *m = &st->memory;
    char why[HA_REASON_MAX];
    bool paused = o->snap->replay_paused;
    bool blocked = election_lag_blocked(&st->rules, o->snap->replay_lsn, paused, why, sizeof(why));
    /* Patroni asks the server (IDENTIFY_SYSTEM) */
    blocked = blocked ||
              election_timeline_blocked(&st->rules, our_timeline(m, o->snap), why, sizeof(why));
    bool was = m->failover_blocked[0] != '\0';
    st->say_lag_blocked = blocked && (!was || paused != m->lag_blocked_paused);
    st->say_lag_ok = !blocked && was;
    m->lag_blocked_paused = blocked && paused;
    if (blocked) {
        (void)snprintf(m->failover_blocked, sizeof(m->failover_blocked), "%s", why);
    } else {
        m->failover_blocked[0] = '\0';
    }
    return blocked;
}

bool ha_memory_pre_promote_backoff(const HaMemory *m, uint64_t now_usec, int64_t ttl)
{
    return m->pre_promote_failed_usec != 0 &&
           now_usec < m->pre_promote_failed_usec + (uint64_t)ttl * 1000000ULL;
}

void ha_policy_input(const HaObservation *o, const HaMemory *mem, HaStep *st)
{
    *st = (HaStep){ .memory = *mem };
    HaMemory *m = &st->memory;
    HaInput *in = &st->input;
    const DcsCluster *c = o->view;
    const DcsLeader *l = c ? c->leader : NULL;
    const DcsMember *lm = c ? dcs_cluster_leader_member(c) : NULL;
    const PgSnapshot *s = o->snap;
    *in = (HaInput){
        .state = m->state,
        .now_usec = o->now_usec,
        .data = o->data,
        .pg_running = o->pg_running,
        .pg_reachable = s != NULL,
        .pg_in_recovery = s && s->in_recovery,
        .standby_signal = o->standby_signal,
        .job = o->job,
        .follows_upstream = o->follows_upstream,
        .clone_retry_usec = m->clone_retry_usec,
        .clone_in_place = o->clone_in_place,
        .clone_unled = o->clone_no_leader && c && c->initialize && *c->initialize,
        .lease_expiring = o->lease_expiring,
        .use_pg_rewind =
            o->node_use_pg_rewind != 0 ? o->node_use_pg_rewind > 0 : o->dcs->use_pg_rewind,
        .post_bootstrap = o->post_bootstrap,
        .pre_promote = o->pre_promote,
        .pre_promote_backoff = ha_memory_pre_promote_backoff(m, o->now_usec, o->dcs->ttl),
        .dcs_ok = o->dcs_ok,
        .has_initialize = c && c->initialize != NULL,
        .has_leader = l != NULL,
        .leader_is_me = l && strcmp(l->name, o->me) == 0,
        .leader_member_known = lm && lm->host,
        .nofailover = o->tag_nofailover || o->watchdog_blocked,
        .paused = c && dcs_cluster_is_paused(c),
        .paused_leader_elsewhere = o->paused_leader_elsewhere,
        .request = m->request,
        .standby_cluster = o->standby_cluster,
    };
    divergence(o, m, st);
    in->diverged = m->diverged;
    crash_memory(o, m, in);
    promotion(o, m, in);
    failover_key(o, st);

    /* synchronous_mode: only the members the sync key names may lead,
     * unless an operator's failover names us */
    const char *sync_why = dcs_sync_problem(c, o->dcs->synchronous_mode, o->me);
    bool sync_blocked = sync_why && !in->failover_candidate_me;
    bool sync_verdict = sync_blocked && !in->has_leader; /* published: dbctl status says why */
    if (sync_verdict) {
        (void)snprintf(m->failover_blocked, sizeof(m->failover_blocked),
                       "%s (the sync key names \"%s\" and \"%s\")", sync_why,
                       c->sync->leader ? c->sync->leader : "(null)",
                       c->sync->sync_standby ? c->sync->sync_standby : "(null)");
    }
    st->say_sync_blocked = sync_verdict && !m->sync_blocked;
    m->sync_blocked = sync_verdict;
    in->nofailover = in->nofailover || sync_blocked;

    /* The named candidate of a switchover or manual failover takes over
     * without an election: asking the peers would only delay it. */
    st->election_open = in->dcs_ok && !in->has_leader && in->pg_reachable && in->pg_in_recovery &&
                        !in->nofailover && !in->paused && !in->failover_candidate_me;
    if (st->election_open) {
        st->rules = (ElectionRules){
            .has_optime = c->status.has_optime,
            .optime = c->status.optime,
            .maximum_lag_on_failover = o->dcs->maximum_lag_on_failover,
            .check_timeline = o->dcs->check_timeline,
            .cluster_timeline = dcs_history_cluster_timeline(c ? c->history : NULL),
        };
        st->ask_peers = !lag_verdict(o, st);
    } else if (sync_verdict) {
        m->election_why = NULL;
    } else {
        /* no election, no verdict to publish */
        m->failover_blocked[0] = '\0';
        m->election_why = NULL;
    }
}

void ha_policy_elect(const HaObservation *o, ElectionPeer *peers, size_t n, HaStep *st)
{
    if (!st->ask_peers || !peers) {
        return; /* not asked, or the peers could not be asked: not the healthiest */
    }
    const PgSnapshot *s = o->snap;
    ElectionCandidate me = {
        .name = o->me,
        .wal_lsn = s->receive_lsn > s->replay_lsn ? s->receive_lsn : s->replay_lsn,
        .failover_priority = o->failover_priority,
        .nofailover = o->tag_nofailover,
    };
    const char *why = NULL;
    bool best = election_is_healthiest(&me, peers, n, &st->rules, &why);
    st->say_not_promoting = !best && why != st->memory.election_why ? why : NULL;
    st->memory.election_why = best ? NULL : why;
    st->input.healthiest = best;
}

/* A replica that does not stream yet is looked at again soon, from the
 * tick that enters the replica state on (at that tick the walreceiver has
 * often not connected yet: waiting for loop_wait then kept routers seeing
 * it as not streaming for a whole loop). */
static void stream_look(const HaObservation *o, HaStep *st)
{
    const HaMemory *m = &st->memory;
    const PgSnapshot *s = o->snap;
    if (st->decision.next != HA_STATE_REPLICA || !o->pg_running || !s || !s->in_recovery ||
        o->streaming) {
        return;
    }
    bool entering = m->state != HA_STATE_REPLICA;
    if (!entering && o->now_usec - m->state_since_usec >= HA_STREAM_WINDOW_USEC) {
        return;
    }
    uint64_t look = o->now_usec + HA_STREAM_LOOK_USEC;
    if (st->wake_usec == 0 || look < st->wake_usec) {
        st->wake_usec = look;
    }
}

int ha_policy_decide(const HaObservation *o, HaStep *st)
{
    int r = ha_decide(&st->input, &st->decision);
    if (r >= 0) {
        stream_look(o, st);
    }
    return r;
}

void ha_memory_enter(HaMemory *m, HaState next, uint64_t now_usec)
{
    if (next != m->state) {
        m->state = next;
        m->state_since_usec = now_usec;
    }
    if (m->request == HA_REQUEST_REJOIN &&
        (next == HA_STATE_REPLICA || next == HA_STATE_PRIMARY || next == HA_STATE_CLONING)) {
        m->request = HA_REQUEST_NONE; /* rejoined, or on another way back */
    }
}

void ha_memory_before(HaMemory *m, HaAction a)
{
    switch (a) {
    case HA_ACTION_PROMOTE:
    case HA_ACTION_INSTALL_CLONE:
        m->streamed_tli = 0;
        break;
    case HA_ACTION_REWIND:
        m->diverged = false; /* pg_rewind brings us onto the leader's timeline */
        m->streamed_tli = 0;
        if (m->request == HA_REQUEST_REJOIN) {
            m->request = HA_REQUEST_NONE;
        }
        break;
    case HA_ACTION_MOVE_DATA_ASIDE:
        if (m->request == HA_REQUEST_REINIT) {
            /* reinitialized from here on: the clone follows, also while
             * paused (the request ends when the clone starts) */
            m->request = HA_REQUEST_REJOIN;
        }
        m->diverged = false;
        m->streamed_tli = 0;
        break;
    case HA_ACTION_RESTART_POSTGRES:
        m->request = HA_REQUEST_NONE; /* consumed now, whatever the outcome */
        break;
    case HA_ACTION_SWITCHOVER_DEMOTE:
        m->request = HA_REQUEST_REJOIN; /* what the operator asked for ends with our start */
        break;
    case HA_ACTION_START_POSTGRES:
        if (m->request == HA_REQUEST_REJOIN) {
            m->request = HA_REQUEST_NONE;
        } else if (m->request == HA_REQUEST_RESTART) {
            /* a stopped server's restart is its start, whichever row
             * starts it: consumed now, answered by the job */
            m->request = HA_REQUEST_NONE;
            m->start_answers_restart = true;
        }
        break;
    default:
        break;
    }
}

void ha_memory_after(HaMemory *m, HaAction a, int result, uint64_t now_usec,
                     unsigned jitter_permille)
{
    bool ok = result >= 0;
    switch (a) {
    case HA_ACTION_RELEASE_LEADER:
        if (m->state == HA_STATE_PRE_PROMOTE) {
            /* pre_promote failed: out of the leader race for ttl, whether
             * the release went through or the key expires by itself */
            m->pre_promote_failed_usec = now_usec;
        }
        break;
    case HA_ACTION_PROMOTE:
        if (ok) {
            m->primary_down_usec = 0;
            m->promote_usec = 0;
        } else if (result == -EINPROGRESS && m->promote_usec == 0) {
            m->promote_usec = now_usec;
            m->promote_progress_usec = now_usec;
            m->promote_replay_lsn = 0; /* the next probe's position counts as progress */
        }
        break;
    case HA_ACTION_FENCE:
        if (ok) {
            m->promote_usec = 0; /* the postmaster is gone: nothing left to finish it */
        }
        break;
    case HA_ACTION_REMOVE_CLONE: {
        if (result == HA_CLONE_NEXT_METHOD) {
            m->clone_retry_usec = now_usec; /* the next method now */
            break;
        }
        uint64_t backoff = HA_CLONE_BACKOFF_MIN_USEC
                           << (m->clone_failures < 5 ? m->clone_failures : 5);
        if (backoff > HA_CLONE_BACKOFF_MAX_USEC) {
            backoff = HA_CLONE_BACKOFF_MAX_USEC;
        }
        /* jitter: up to a quarter more, so replicas do not retry in step */
        backoff += (uint64_t)(jitter_permille % 1000) * (backoff / 4000);
        m->clone_failures++;
        m->clone_retry_usec = now_usec + backoff;
        break;
    }
    case HA_ACTION_INSTALL_CLONE:
        if (ok) {
            m->clone_failures = 0;
        }
        break;
    default:
        break;
    }
}
