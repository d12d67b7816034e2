/* Unit tests for the rules around the HA table (agent/policy.c): crash
 * memory, divergence, the failover key, synchronous_mode's and the
 * watchdog's vetoes, our own lag, the election gate, and what actions
 * change in the memory. An exhaustive pass runs every state against every
 * combination of the observations the rules read, through the table, and
 * checks the properties the rules exist for. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define NOW   (1000ULL * 1000 * 1000 * 1000)
#define EPOCH 2000000000.0
#define SEC   1000000ULL

typedef struct World {
    ConfigDcs dcs;
    DcsCluster view;
    DcsLeader leader;
    DcsMember members[3];
    DcsFailover failover;
    DcsSync sync;
    char *sync_members[1];
    DcsConfig config;
    PgSnapshot snap;
    HaObservation obs;
} World;

/* n1 (us), n2, n3; the leader key names `leader` (NULL: none). */
static void world(World *w, const char *leader)
{
    memset(w, 0, sizeof(*w));
    w->dcs = (ConfigDcs){
        .ttl = 30, .loop_wait = 10, .primary_start_timeout = 300, .maximum_lag_on_failover = 1048576
    };
    static char *names[] = { "n1", "n2", "n3" };
    static char host[] = "127.0.0.1";
    for (size_t i = 0; i < 3; i++) {
        w->members[i] = (DcsMember){
            .name = names[i], .host = host, .port = 5432 + (int)i, .state = "running", .timeline = 2
        };
    }
    w->view = (DcsCluster){ .members = w->members, .n_members = 3, .initialize = "7" };
    if (leader) {
        w->leader = (DcsLeader){ .name = (char *)leader };
        w->view.leader = &w->leader;
    }
    w->snap = (PgSnapshot){ .in_recovery = true, .receive_lsn = 5000, .replay_lsn = 5000 };
    w->obs = (HaObservation){
        .now_usec = NOW,
        .now_epoch = EPOCH,
        .me = "n1",
        .dcs = &w->dcs,
        .data = HA_DATA_OURS,
        .pg_running = true,
        .snap = &w->snap,
        .dcs_ok = true,
        .view = &w->view,
        .failover_priority = 1,
    };
}

static void step(const World *w, const HaMemory *m, HaStep *st)
{
    ha_policy_input(&w->obs, m, st);
    /* the peers all answer behind us: the election makes us the healthiest */
    ElectionPeer peers[2] = {
        { .name = "n2",
          .answered = true,
          .has_replayed = true,
          .replayed_lsn = 10,
          .c = { .name = "n2", .wal_lsn = 10, .failover_priority = 1 } },
        { .name = "n3",
          .answered = true,
          .has_replayed = true,
          .replayed_lsn = 10,
          .c = { .name = "n3", .wal_lsn = 10, .failover_priority = 1 } },
    };
    ha_policy_elect(&w->obs, peers, 2, st);
    assert_int_equal(ha_policy_decide(&w->obs, st), 0);
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

static void test_crash_memory(void **state)
{
    (void)state;
    World w;
    world(&w, "n1");
    w.obs.pg_running = false;
    w.obs.snap = NULL;
    HaMemory m = { .state = HA_STATE_PRIMARY };
    HaStep st;
    step(&w, &m, &st);
    /* the crash's time is the observation's */
    assert_int_equal(st.memory.primary_down_usec, NOW);
    assert_true(st.input.crash_noted);
    assert_false(st.input.restart_expired);
    /* primary_start_timeout later: expired; a whole ttl more: forgotten */
    m = st.memory;
    w.obs.now_usec = NOW + 300 * SEC;
    step(&w, &m, &st);
    assert_true(st.input.restart_expired);
    w.obs.now_usec = NOW + 331 * SEC;
    step(&w, &m, &st);
    assert_int_equal(st.memory.primary_down_usec, 0);
    /* another leader ends it at once (we rejoin) */
    w.obs.now_usec = NOW + 10 * SEC;
    w.leader.name = "n2";
    step(&w, &m, &st);
    assert_int_equal(st.memory.primary_down_usec, 0);
    assert_false(st.input.crash_noted);
    /* a primary found running again ends it too */
    w.leader.name = "n1";
    w.obs.pg_running = true;
    w.snap.in_recovery = false;
    w.obs.snap = &w.snap;
    step(&w, &m, &st);
    assert_int_equal(st.memory.primary_down_usec, 0);
}

static void test_divergence(void **state)
{
    (void)state;
    World w;
    world(&w, "n2");
    w.members[1].timeline = 3;
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    /* streaming on timeline 2 from the leader: the timeline is remembered */
    w.obs.streaming = w.obs.following = true;
    w.snap.received_tli = 2;
    step(&w, &m, &st);
    assert_int_equal(st.memory.streamed_tli, 2);
    /* ... and streaming on the leader's timeline clears a verdict */
    m = st.memory;
    m.diverged = true;
    w.snap.received_tli = 3;
    step(&w, &m, &st);
    assert_false(st.memory.diverged);
    assert_int_equal(st.memory.streamed_tli, 3);
    /* stopped: the verdict is kept (nothing to compare with) */
    m.diverged = true;
    w.obs.pg_running = false;
    step(&w, &m, &st);
    assert_true(st.memory.diverged);
    assert_true(st.input.diverged);
}

/* A replica that has not streamed since the agent started (streamed_tli 0)
 * is judged on pg_control's timeline, the snapshot's: a former primary
 * started as a replica with its WAL past the leader's fork point is
 * diverged, one behind it is not, and an unknown timeline says nothing. */
static void test_divergence_never_streamed(void **state)
{
    (void)state;
    World w;
    world(&w, "n2");
    w.members[1].timeline = 3;
    DcsHistoryEntry e[] = { { .timeline = 1, .lsn = 3000 }, { .timeline = 2, .lsn = 6000 } };
    DcsHistory h = { .entries = e, .n_entries = 2 };
    w.view.history = &h;
    w.obs.following = true; /* primary_conninfo names the leader, the walreceiver fails */
    w.snap.timeline = 2;
    w.snap.receive_lsn = 0;
    w.snap.replay_lsn = 7000;
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    step(&w, &m, &st);
    assert_true(st.memory.diverged);
    assert_true(st.input.diverged);
    assert_true(has_action(&st.decision, HA_ACTION_STOP_POSTGRES));
    /* at the fork point or behind it: it can follow */
    w.snap.replay_lsn = 6000;
    step(&w, &m, &st);
    assert_false(st.memory.diverged);
    /* an older timeline past its own fork point */
    w.snap.timeline = 1;
    w.snap.replay_lsn = 3001;
    step(&w, &m, &st);
    assert_true(st.memory.diverged);
    /* a timeline remembered from streaming is newer than pg_control's: it wins */
    m.streamed_tli = 2;
    step(&w, &m, &st);
    assert_false(st.memory.diverged);
    /* a walreceiver seen on the leader's timeline while not (yet) streaming,
     * then gone: what it received stays on that timeline (a former primary
     * right after a clean switchover), not pg_control's older one */
    m.streamed_tli = 0;
    w.obs.streaming = false;
    w.snap.timeline = 2;
    w.snap.received_tli = 2;
    w.snap.receive_lsn = 5500; /* on timeline 2, before its fork at 6000 */
    w.snap.replay_lsn = 3001;
    step(&w, &m, &st);
    assert_int_equal(st.memory.streamed_tli, 2);
    assert_false(st.memory.diverged);
    m = st.memory;
    w.snap.timeline = 1;
    w.snap.received_tli = 0;
    step(&w, &m, &st);
    assert_false(st.memory.diverged);
    m.streamed_tli = 0; /* without that memory: the needless verdict */
    step(&w, &m, &st);
    assert_true(st.memory.diverged);
    w.snap.receive_lsn = 0;
    w.snap.replay_lsn = 7000;
    /* no timeline known at all: no verdict */
    m.streamed_tli = 0;
    w.snap.timeline = 0;
    step(&w, &m, &st);
    assert_false(st.memory.diverged);
}

static void test_scheduled_failover(void **state)
{
    (void)state;
    World w;
    world(&w, "n2");
    w.failover = (DcsFailover){ .leader = "n2",
                                .candidate = "n1",
                                .scheduled_at = "2033-05-18T03:33:20+00:00" }; /* EPOCH */
    w.view.failover = &w.failover;
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    /* its time has not come: a tick is wanted then, the key does not count */
    w.obs.now_epoch = EPOCH - 5.5;
    step(&w, &m, &st);
    assert_false(st.input.failover_candidate_me);
    assert_true(st.wake_usec >= NOW + 5 * SEC && st.wake_usec <= NOW + 6 * SEC);
    /* it has: we are the candidate, n2 leaves */
    w.obs.now_epoch = EPOCH;
    step(&w, &m, &st);
    assert_true(st.input.failover_candidate_me);
    assert_int_equal(st.wake_usec, 0);
    /* unreadable: never comes (said at debug level) */
    w.failover.scheduled_at = "tomorrow";
    step(&w, &m, &st);
    assert_false(st.input.failover_candidate_me);
    assert_true(st.failover_time_unreadable);
}

static void test_vetoes(void **state)
{
    (void)state;
    World w;
    world(&w, NULL);
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    /* no leader, healthy, no veto: the election is open and we lead */
    step(&w, &m, &st);
    assert_true(st.election_open);
    assert_true(st.input.healthiest);
    assert_true(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
    /* the watchdog's veto and the tag's fold into nofailover */
    w.obs.watchdog_blocked = true;
    step(&w, &m, &st);
    assert_false(st.election_open);
    assert_false(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
    w.obs.watchdog_blocked = false;
    /* synchronous_mode: the key names n1 as leader and n2: we are not named */
    w.dcs.synchronous_mode = true;
    w.sync_members[0] = "n2";
    w.sync = (DcsSync){
        .leader = "n3", .sync_standby = "n2", .members = w.sync_members, .n_members = 1
    };
    w.view.sync = &w.sync;
    step(&w, &m, &st);
    assert_true(st.input.nofailover);
    assert_true(st.say_sync_blocked);
    assert_non_null(strstr(st.memory.failover_blocked, "the sync key names \"n3\" and \"n2\""));
    /* said once */
    m = st.memory;
    step(&w, &m, &st);
    assert_false(st.say_sync_blocked);
    /* an operator's failover naming us lifts it */
    w.failover = (DcsFailover){ .candidate = "n1" };
    w.view.failover = &w.failover;
    step(&w, &m, &st);
    assert_false(st.input.nofailover);
    assert_true(st.input.failover_candidate_me);
    assert_false(st.election_open); /* the named candidate needs no election */
    assert_true(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
}

static void test_lag(void **state)
{
    (void)state;
    World w;
    world(&w, NULL);
    w.view.status = (DcsStatus){ .has_optime = true, .optime = 5000 + 2 * 1048576 };
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    step(&w, &m, &st);
    /* too far behind the last leader position: no peers asked, no lead */
    assert_true(st.election_open);
    assert_false(st.ask_peers);
    assert_false(st.input.healthiest);
    assert_true(st.say_lag_blocked);
    assert_true(st.memory.failover_blocked[0] != '\0');
    assert_false(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
    m = st.memory;
    step(&w, &m, &st);
    assert_false(st.say_lag_blocked); /* once */
    /* replay paused: said again, with the new cause */
    w.snap.replay_paused = true;
    step(&w, &m, &st);
    assert_true(st.say_lag_blocked);
    /* caught up: a candidate again, said once */
    m = st.memory;
    w.snap.replay_paused = false;
    w.snap.replay_lsn = w.snap.receive_lsn = 5000 + 2 * 1048576;
    step(&w, &m, &st);
    assert_true(st.say_lag_ok);
    assert_true(st.ask_peers);
    assert_string_equal(st.memory.failover_blocked, "");
    /* a leader: no verdict published */
    m = st.memory;
    (void)snprintf(m.failover_blocked, sizeof(m.failover_blocked), "stale");
    world(&w, "n2");
    step(&w, &m, &st);
    assert_string_equal(st.memory.failover_blocked, "");
}

/* check_timeline (Patroni's): a replica whose timeline is behind the
 * cluster's (the last history line's + 1) is no candidate; off, or with
 * the timeline it streamed on remembered as current, it is. */
static void test_check_timeline(void **state)
{
    (void)state;
    World w;
    world(&w, NULL);
    DcsHistoryEntry e[] = { { .timeline = 1, .lsn = 3000 }, { .timeline = 2, .lsn = 4000 } };
    DcsHistory h = { .entries = e, .n_entries = 2 };
    w.view.history = &h;
    w.snap.timeline = 2; /* the cluster is on 3 */
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    /* off (Patroni's default): a candidate */
    step(&w, &m, &st);
    assert_true(st.ask_peers);
    assert_true(st.input.healthiest);
    assert_true(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
    /* on: behind, no peers asked, no lead, the reason published */
    w.dcs.check_timeline = true;
    step(&w, &m, &st);
    assert_true(st.election_open);
    assert_false(st.ask_peers);
    assert_false(st.input.healthiest);
    assert_false(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
    assert_true(st.say_lag_blocked);
    assert_string_equal(st.memory.failover_blocked,
                        "timeline 2 is behind the cluster's timeline 3 (check_timeline)");
    /* streamed on timeline 3 (pg_control's still says 2): a candidate */
    m = st.memory;
    m.streamed_tli = 3;
    step(&w, &m, &st);
    assert_true(st.ask_peers);
    assert_true(st.say_lag_ok);
    assert_true(has_action(&st.decision, HA_ACTION_TAKE_LEADER));
    /* no history key: the cluster's timeline is unknown, nothing to hold to */
    m.streamed_tli = 0;
    m.failover_blocked[0] = '\0';
    w.view.history = NULL;
    step(&w, &m, &st);
    assert_true(st.ask_peers);
    /* an empty history list: the cluster is on timeline 1 */
    json_t *empty = json_array();
    assert_int_equal(dcs_history_cluster_timeline(&(DcsHistory){ .data = empty }), 1);
    json_decref(empty);
}

static void test_not_promoting_said_once(void **state)
{
    (void)state;
    World w;
    world(&w, NULL);
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    ha_policy_input(&w.obs, &m, &st);
    ElectionPeer better = { .name = "n2",
                            .answered = true,
                            .has_replayed = true,
                            .replayed_lsn = 9000,
                            .c = { .name = "n2", .wal_lsn = 9000, .failover_priority = 1 } };
    ha_policy_elect(&w.obs, &better, 1, &st);
    assert_false(st.input.healthiest);
    assert_non_null(st.say_not_promoting);
    m = st.memory;
    ha_policy_input(&w.obs, &m, &st);
    ha_policy_elect(&w.obs, &better, 1, &st);
    assert_null(st.say_not_promoting);
    /* peers that could not be asked: not the healthiest, nothing said */
    ha_policy_input(&w.obs, &m, &st);
    ha_policy_elect(&w.obs, NULL, 0, &st);
    assert_false(st.input.healthiest);
}

static void test_memory_of_actions(void **state)
{
    (void)state;
    HaMemory m = { .diverged = true, .streamed_tli = 4, .request = HA_REQUEST_REINIT };
    ha_memory_before(&m, HA_ACTION_REWIND);
    assert_false(m.diverged);
    assert_int_equal(m.streamed_tli, 0);
    m.diverged = true;
    ha_memory_before(&m, HA_ACTION_MOVE_DATA_ASIDE);
    assert_false(m.diverged);
    /* a reinit goes on as a rejoin: its clone and start follow, also paused */
    assert_int_equal(m.request, HA_REQUEST_REJOIN);
    ha_memory_enter(&m, HA_STATE_CLONING, 1);
    assert_int_equal(m.request, HA_REQUEST_NONE);
    /* a switchover's demote asks for the rejoin; the start ends it */
    ha_memory_before(&m, HA_ACTION_SWITCHOVER_DEMOTE);
    assert_int_equal(m.request, HA_REQUEST_REJOIN);
    ha_memory_before(&m, HA_ACTION_START_POSTGRES);
    assert_int_equal(m.request, HA_REQUEST_NONE);
    ha_memory_before(&m, HA_ACTION_SWITCHOVER_DEMOTE);
    ha_memory_before(&m, HA_ACTION_REWIND);
    assert_int_equal(m.request, HA_REQUEST_NONE);
    m.request = HA_REQUEST_RESTART;
    ha_memory_before(&m, HA_ACTION_MOVE_DATA_ASIDE);
    assert_int_equal(m.request, HA_REQUEST_RESTART); /* only a reinit is consumed there */
    ha_memory_before(&m, HA_ACTION_RESTART_POSTGRES);
    assert_int_equal(m.request, HA_REQUEST_NONE);
    assert_false(m.start_answers_restart);
    /* a stopped server's restart is its start: the start job answers it */
    m.request = HA_REQUEST_RESTART;
    ha_memory_before(&m, HA_ACTION_START_POSTGRES);
    assert_int_equal(m.request, HA_REQUEST_NONE);
    assert_true(m.start_answers_restart);
    m.start_answers_restart = false;
    ha_memory_before(&m, HA_ACTION_START_POSTGRES);
    assert_false(m.start_answers_restart); /* a start of its own answers nothing */
    m.streamed_tli = 3;
    ha_memory_before(&m, HA_ACTION_PROMOTE);
    assert_int_equal(m.streamed_tli, 0);
    m.primary_down_usec = 5;
    ha_memory_after(&m, HA_ACTION_PROMOTE, -EIO, NOW, 0);
    assert_int_equal(m.primary_down_usec, 5);
    ha_memory_after(&m, HA_ACTION_PROMOTE, 0, NOW, 0);
    assert_int_equal(m.primary_down_usec, 0);
    /* clone retries back off: 2 s doubling to 60 s, at most a quarter more */
    uint64_t want[] = { 2, 4, 8, 16, 32, 60, 60 };
    for (size_t i = 0; i < 7; i++) {
        ha_memory_after(&m, HA_ACTION_REMOVE_CLONE, 0, NOW, 0);
        assert_int_equal(m.clone_retry_usec, NOW + want[i] * SEC);
    }
    ha_memory_after(&m, HA_ACTION_REMOVE_CLONE, 0, NOW, 999);
    assert_true(m.clone_retry_usec > NOW + 60 * SEC && m.clone_retry_usec <= NOW + 75 * SEC);
    ha_memory_after(&m, HA_ACTION_INSTALL_CLONE, -EIO, NOW, 0);
    assert_int_equal(m.clone_failures, 8);
    ha_memory_after(&m, HA_ACTION_INSTALL_CLONE, 0, NOW, 0);
    assert_int_equal(m.clone_failures, 0);
    /* another of create_replica_methods to try: at once, no failure counted */
    ha_memory_after(&m, HA_ACTION_REMOVE_CLONE, 0, NOW, 0);
    ha_memory_after(&m, HA_ACTION_REMOVE_CLONE, HA_CLONE_NEXT_METHOD, NOW + SEC, 0);
    assert_int_equal(m.clone_retry_usec, NOW + SEC);
    assert_int_equal(m.clone_failures, 1);
}

/* A promotion asked for and not finished: remembered from PROMOTE's
 * -EINPROGRESS (or a promote signal file on a running replica), waited for
 * while replay moves, a stall after HA_PROMOTE_STALL_USEC without, and
 * forgotten only when PostgreSQL is out of recovery or not running (or a
 * FENCE stopped it). */
static void test_promotion(void **state)
{
    (void)state;
    World w;
    world(&w, "n1");
    HaMemory m = { .state = HA_STATE_REPLICA };
    HaStep st;
    /* refused before pg_promote (the sync key): nothing pending */
    ha_memory_after(&m, HA_ACTION_PROMOTE, -EPERM, NOW, 0);
    assert_int_equal(m.promote_usec, 0);
    ha_memory_after(&m, HA_ACTION_PROMOTE, -EINPROGRESS, NOW, 0);
    assert_int_equal(m.promote_usec, NOW);
    step(&w, &m, &st);
    assert_true(st.input.promoting);
    assert_false(st.input.promote_stalled);
    assert_string_equal(st.decision.reason,
                        "postgresql is still promoting: keeping the leader key and waiting");
    m = st.memory;
    /* a later attempt keeps the first one's time */
    ha_memory_after(&m, HA_ACTION_PROMOTE, -EINPROGRESS, NOW + 2 * SEC, 0);
    assert_int_equal(m.promote_usec, NOW);
    /* no replay progress: a stall after 15 s, not before */
    w.obs.now_usec = NOW + HA_PROMOTE_STALL_USEC - 1;
    step(&w, &m, &st);
    assert_false(st.input.promote_stalled);
    /* replay moves (WAL still to apply): the clock starts again */
    w.snap.replay_lsn += 100;
    step(&w, &m, &st);
    assert_false(st.input.promote_stalled);
    m = st.memory;
    w.obs.now_usec += HA_PROMOTE_STALL_USEC;
    step(&w, &m, &st);
    assert_true(st.input.promote_stalled);
    assert_int_equal(st.decision.actions[0], HA_ACTION_FENCE);
    assert_int_equal(st.decision.actions[1], HA_ACTION_RELEASE_LEADER);
    /* the key went elsewhere: fenced, whatever the stall */
    World other;
    world(&other, "n2");
    other.obs.now_usec = NOW + SEC;
    step(&other, &m, &st);
    assert_true(st.input.promoting);
    assert_int_equal(st.decision.n_actions, 1);
    assert_int_equal(st.decision.actions[0], HA_ACTION_FENCE);
    /* a probe that failed proves nothing: still pending */
    w.obs.snap = NULL;
    step(&w, &m, &st);
    assert_true(st.input.promoting);
    /* out of recovery between two ticks: PROMOTE once more takes up the
     * steps after it (the history key, the configuration, callbacks) */
    w.obs.snap = &w.snap;
    w.snap.in_recovery = false;
    w.obs.now_usec = m.promote_progress_usec + SEC; /* not stalled */
    step(&w, &m, &st);
    assert_true(st.input.promoting);
    assert_int_equal(st.decision.actions[1], HA_ACTION_PROMOTE);
    /* the postmaster gone: nothing left to finish it */
    w.snap.in_recovery = true;
    w.obs.pg_running = false;
    w.obs.snap = NULL;
    step(&w, &m, &st);
    assert_int_equal(st.memory.promote_usec, 0);
    /* FENCE ends it when it succeeded, not when it failed */
    ha_memory_after(&m, HA_ACTION_FENCE, -ETIMEDOUT, NOW, 0);
    assert_int_equal(m.promote_usec, NOW);
    ha_memory_after(&m, HA_ACTION_FENCE, 0, NOW, 0);
    assert_int_equal(m.promote_usec, 0);
    /* a promote signal file on a running replica: someone asked (an agent
     * that died mid-promotion); not while paused, not in another state */
    world(&w, "n2");
    w.obs.promote_signal = true;
    m = (HaMemory){ .state = HA_STATE_REPLICA };
    step(&w, &m, &st);
    assert_true(st.input.promoting);
    assert_int_equal(st.decision.actions[0], HA_ACTION_FENCE);
    w.config = (DcsConfig){ .pause = true, .dcs = w.dcs };
    w.view.config = &w.config;
    step(&w, &m, &st);
    assert_false(st.input.promoting);
    w.view.config = NULL;
    m.state = HA_STATE_PRIMARY;
    step(&w, &m, &st);
    assert_false(st.input.promoting);
}

static void test_stream_look(void **state)
{
    (void)state;
    World w;
    world(&w, "n2");
    HaMemory m = { .state = HA_STATE_INIT };
    ha_memory_enter(&m, HA_STATE_REPLICA, NOW - 5 * SEC);
    assert_int_equal(m.state_since_usec, NOW - 5 * SEC);
    ha_memory_enter(&m, HA_STATE_REPLICA, NOW); /* the same state: its time stays */
    assert_int_equal(m.state_since_usec, NOW - 5 * SEC);
    HaStep st;
    /* started, not streaming yet: look again in a second */
    step(&w, &m, &st);
    assert_int_equal(st.wake_usec, NOW + HA_STREAM_LOOK_USEC);
    /* streaming: loop_wait is enough */
    w.obs.streaming = true;
    step(&w, &m, &st);
    assert_int_equal(st.wake_usec, 0);
    /* not streaming for longer than the window: loop_wait again */
    w.obs.streaming = false;
    m.state_since_usec = NOW - HA_STREAM_WINDOW_USEC;
    step(&w, &m, &st);
    assert_int_equal(st.wake_usec, 0);
    /* the tick that enters the replica state looks again too, however long
     * it was starting (CI: the walreceiver connected after that tick, and
     * the topology waited a whole loop_wait for it) */
    HaMemory starting = { .state = HA_STATE_INIT };
    ha_memory_enter(&starting, HA_STATE_STARTING_REPLICA, NOW - HA_STREAM_WINDOW_USEC - SEC);
    step(&w, &starting, &st);
    assert_int_equal(st.decision.next, HA_STATE_REPLICA);
    assert_int_equal(st.wake_usec, NOW + HA_STREAM_LOOK_USEC);
    w.obs.streaming = true;
    step(&w, &starting, &st);
    assert_int_equal(st.decision.next, HA_STATE_REPLICA);
    assert_int_equal(st.wake_usec, 0);
    w.obs.streaming = false;
    /* a primary is never looked at for this */
    ha_memory_enter(&m, HA_STATE_PRIMARY, NOW);
    w.snap.in_recovery = false;
    step(&w, &m, &st);
    assert_int_equal(st.wake_usec, 0);
}

/* ---- exhaustive: every state against every combination the rules read ---- */

enum {
    B_PG_RUNNING,
    B_PROBED,
    B_IN_RECOVERY,
    B_DCS_OK,
    B_LEADER_ME,
    B_LEADER_OTHER,
    B_TAG_NOFAILOVER,
    B_WATCHDOG_BLOCKED,
    B_SYNC_NOT_NAMED,
    B_PAUSED,
    B_LAGGING,
    B_FAILOVER_ME,
    B_FAILOVER_LATER,
    B_CRASH_REMEMBERED,
    B_LEASE_EXPIRING,
    B_PROMOTE_PENDING,
    B_PROMOTE_SIGNAL,
    N_B,
};

#define BIT(b) ((bits >> (b)) & 1u)

/* Patroni's node-level postgresql.use_pg_rewind wins over the cluster's;
 * absent, the cluster's counts. */
static void test_node_use_pg_rewind(void **state)
{
    (void)state;
    World w;
    HaStep st;
    HaMemory m = { 0 };
    const struct {
        bool cluster;
        int node;
        bool want;
    } cases[] = {
        { false, 0, false }, { true, 0, true }, { true, -1, false },
        { false, 1, true },  { true, 1, true }, { false, -1, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        world(&w, "n2");
        w.dcs.use_pg_rewind = cases[i].cluster;
        w.obs.node_use_pg_rewind = cases[i].node;
        step(&w, &m, &st);
        assert_int_equal(st.input.use_pg_rewind, cases[i].want);
    }
}

static void test_exhaustive(void **state)
{
    (void)state;
    size_t n = 0, elections = 0, takes = 0;
    for (int s = 0; s < _HA_STATE_MAX; s++) {
        for (unsigned bits = 0; bits < (1u << N_B); bits++) {
            if (BIT(B_LEADER_ME) && BIT(B_LEADER_OTHER)) {
                continue;
            }
            World w;
            world(&w, BIT(B_LEADER_ME) ? "n1" : BIT(B_LEADER_OTHER) ? "n2" : NULL);
            w.obs.pg_running = BIT(B_PG_RUNNING);
            w.obs.snap = BIT(B_PROBED) ? &w.snap : NULL;
            w.snap.in_recovery = BIT(B_IN_RECOVERY);
            w.obs.dcs_ok = BIT(B_DCS_OK);
            w.obs.tag_nofailover = BIT(B_TAG_NOFAILOVER);
            w.obs.watchdog_blocked = BIT(B_WATCHDOG_BLOCKED);
            w.obs.lease_expiring = BIT(B_LEASE_EXPIRING);
            w.obs.promote_signal = BIT(B_PROMOTE_SIGNAL);
            if (BIT(B_SYNC_NOT_NAMED)) {
                w.dcs.synchronous_mode = true;
                w.sync_members[0] = "n2";
                w.sync = (DcsSync){
                    .leader = "n3", .sync_standby = "n2", .members = w.sync_members, .n_members = 1
                };
                w.view.sync = &w.sync;
            }
            if (BIT(B_PAUSED)) {
                w.config = (DcsConfig){ .pause = true, .dcs = w.dcs };
                w.view.config = &w.config;
            }
            if (BIT(B_LAGGING)) {
                w.view.status = (DcsStatus){ .has_optime = true, .optime = 1ULL << 40 };
            }
            if (BIT(B_FAILOVER_ME) || BIT(B_FAILOVER_LATER)) {
                w.failover = (DcsFailover){ .candidate = "n1" };
                if (BIT(B_FAILOVER_LATER)) {
                    w.failover.scheduled_at = "2033-05-18T03:33:30+00:00";
                    w.obs.now_epoch = EPOCH - 60;
                }
                w.view.failover = &w.failover;
            }
            HaMemory m = { .state = (HaState)s,
                           .primary_down_usec = BIT(B_CRASH_REMEMBERED) ? NOW - SEC : 0,
                           .promote_usec = BIT(B_PROMOTE_PENDING) ? NOW - SEC : 0,
                           .promote_progress_usec = BIT(B_PROMOTE_PENDING) ? NOW - SEC : 0 };
            HaStep st;
            step(&w, &m, &st);
            n++;
            const HaInput *in = &st.input;
            bool leads = has_action(&st.decision, HA_ACTION_TAKE_LEADER) ||
                         has_action(&st.decision, HA_ACTION_RACE_INITIALIZE);
            bool named = BIT(B_FAILOVER_ME) && !BIT(B_FAILOVER_LATER);
            elections += st.election_open;
            takes += has_action(&st.decision, HA_ACTION_TAKE_LEADER);
            /* the vetoes reach the table: nofailover and the watchdog always,
             * the sync key unless an operator's failover names us */
            if (BIT(B_TAG_NOFAILOVER) || BIT(B_WATCHDOG_BLOCKED) ||
                (BIT(B_SYNC_NOT_NAMED) && !named)) {
                assert_true(in->nofailover);
                assert_false(leads);
                assert_false(st.ask_peers);
            }
            /* the election runs only where a promotion could follow */
            if (st.election_open) {
                assert_true(in->dcs_ok && !in->has_leader && in->pg_reachable &&
                            in->pg_in_recovery && !in->nofailover && !in->paused &&
                            !in->failover_candidate_me);
            }
            /* too far behind: nobody is asked and we are not the healthiest */
            if (BIT(B_LAGGING) && st.election_open) {
                assert_false(st.ask_peers);
                assert_false(in->healthiest);
                assert_true(st.memory.failover_blocked[0] != '\0');
            }
            assert_true(!in->healthiest || st.ask_peers);
            /* a scheduled switchover counts only from its time, and asks
             * for a tick then */
            if (BIT(B_FAILOVER_LATER)) {
                assert_false(in->failover_candidate_me);
                assert_true(st.wake_usec > NOW);
            }
            /* failover_blocked is published only while there is no leader */
            if (in->has_leader) {
                assert_string_equal(st.memory.failover_blocked, "");
            }
            /* crash memory: another leader ends it; a primary running ends it */
            if (BIT(B_LEADER_OTHER) ||
                (BIT(B_PG_RUNNING) && BIT(B_PROBED) && !BIT(B_IN_RECOVERY))) {
                assert_int_equal(st.memory.primary_down_usec, 0);
            } else if (s == HA_STATE_PRIMARY && !BIT(B_PG_RUNNING)) {
                assert_true(in->crash_noted);
            }
            /* a promotion that may still finish (or whose last steps are
             * left): only on a running replica; remembered exactly then */
            bool maybe = s == HA_STATE_REPLICA && BIT(B_PG_RUNNING);
            bool asked = BIT(B_PROMOTE_PENDING) || (BIT(B_PROMOTE_SIGNAL) && BIT(B_PROBED) &&
                                                    BIT(B_IN_RECOVERY) && !BIT(B_PAUSED));
            assert_int_equal(in->promoting, maybe && asked);
            assert_int_equal(st.memory.promote_usec != 0, in->promoting);
            /* ... and nobody else may lead before it is stopped */
            if (in->promoting && (BIT(B_LEASE_EXPIRING) || (BIT(B_DCS_OK) && !BIT(B_LEADER_ME)))) {
                assert_int_equal(st.decision.actions[0], HA_ACTION_FENCE);
            }
            /* the lease and the job pass through unchanged */
            assert_int_equal(in->lease_expiring, BIT(B_LEASE_EXPIRING));
            assert_int_equal(in->state, s);
        }
    }
    /* the enumeration reached both sides of the gates */
    assert_true(elections > 0 && takes > 0);
    print_message("policy: %zu observations, %zu with the election open, %zu taking the key\n", n,
                  elections, takes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_memory),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_divergence_never_streamed),
        cmocka_unit_test(test_scheduled_failover),
        cmocka_unit_test(test_vetoes),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_check_timeline),
        cmocka_unit_test(test_not_promoting_said_once),
        cmocka_unit_test(test_memory_of_actions),
        cmocka_unit_test(test_promotion),
        cmocka_unit_test(test_stream_look),
        cmocka_unit_test(test_node_use_pg_rewind),
        cmocka_unit_test(test_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
