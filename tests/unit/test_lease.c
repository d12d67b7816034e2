/* Unit tests for agent/lease: the safety margin rule, the split brain of a
 * ttl raised at run time (the deadline must stay the old lease's until the
 * leader key is on the new one), and a property test against a model of
 * etcd. The model keeps leases with their expiry and the leader key with its
 * lease; every request takes time to arrive, may be lost on the way, or may
 * be applied with its answer lost; time passes, another node takes a free
 * key, the agent restarts (its predecessor's lease still holds the key), and
 * an etcd leader change resets every lease to its full TTL. After every
 * step the agent has observed, no deadline it acts on may be later than
 * the model's expiry of the lease that holds our leader key. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lease.h"

#define MS  1000ULL
#define SEC (1000 * 1000ULL)

static void test_margin(void **state)
{
    (void)state;
    static const struct {
        uint64_t ttl_usec, margin_usec;
    } rows[] = {
        { 0, 0 },
        { 300 * MS, 100 * MS },
        { 1 * SEC, 333333 },
        { 2 * SEC, 666666 },
        { 3 * SEC, 1 * SEC },
        { 5 * SEC, 1 * SEC },
        { 10 * SEC, 1 * SEC },
        { 30 * SEC, 1 * SEC },
        { UINT64_MAX, LEASE_SAFETY_MARGIN_USEC },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t m = lease_margin_usec(rows[i].ttl_usec);
        if (m != rows[i].margin_usec) {
            fail_msg("ttl %llu us: margin %llu us, expected %llu us",
                     (unsigned long long)rows[i].ttl_usec, (unsigned long long)m,
                     (unsigned long long)rows[i].margin_usec);
        }
        /* the deadline always leaves at least two thirds of the ttl */
        assert_true(m * 3 <= rows[i].ttl_usec || rows[i].ttl_usec == UINT64_MAX);
    }
}

static void test_renew_due(void **state)
{
    (void)state;
    static const struct {
        int64_t ttl_sec;
        uint64_t cap_usec, retry_usec, after_usec;
    } rows[] = {
        { 30, 0, 10 * SEC, 19 * SEC },        /* Patroni's defaults: 29 - 10 */
        { 10, 0, 4 * SEC, 5 * SEC },          /* 9 - 4 */
        { 5, 0, 1 * SEC, 2 * SEC },           /* 4 - the 2 s floor */
        { 3, 0, 1 * SEC, 1 * SEC },           /* 2 - 1: the floor capped at the half */
        { 30, 0, 0, 19333333 },               /* no retry_timeout: a third is left */
        { 30, 0, 25 * SEC, 14500 * MS },      /* retry_timeout past the half: halfway */
        { 2, 0, 1 * SEC, 666667 },            /* (2 - 2/3) / 2 */
        { 30, 10 * SEC, 10 * SEC, 10 * SEC }, /* capped: a watchdog, loop_wait 10 */
        { 10, 1500 * MS, 4 * SEC, 1500 * MS },
        { 3, 5 * SEC, 1 * SEC, 1 * SEC }, /* a cap above it changes nothing */
    };
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        Lease l;
        lease_init(&l, NULL, NULL);
        assert_int_equal(lease_renew_due_usec(&l), 0);
        lease_set_max_interval(&l, rows[i].cap_usec);
        lease_set_retry(&l, rows[i].retry_usec);
        l.cur = (LeaseGrant){ .id = 1, .ttl_sec = rows[i].ttl_sec, .sent_usec = 100 * SEC };
        uint64_t due = lease_renew_due_usec(&l);
        if (due - 100 * SEC > rows[i].after_usec + 1 || due - 100 * SEC + 1 < rows[i].after_usec) {
            fail_msg("ttl %" PRId64 " cap %" PRIu64 " retry %" PRIu64 ": due after %" PRIu64 " us",
                     rows[i].ttl_sec, rows[i].cap_usec, rows[i].retry_usec, due - 100 * SEC);
        }
        /* the renewal always comes before the deadline, with retry_timeout
         * (or half of what the ttl allows, if that is less) for retries */
        uint64_t deadline = lease_deadline_usec(&l);
        uint64_t usable = deadline - 100 * SEC;
        uint64_t want = rows[i].retry_usec < usable / 2 ? rows[i].retry_usec : usable / 2;
        assert_true(due < deadline);
        assert_true(deadline - due + 1 >= want);
    }
}

/* A renewal due before the next tick moves the tick to it (one wake for
 * both); a tick is never moved later, and an overdue renewal (a failed one,
 * retried by the loop) moves nothing. */
static void test_tick_usec(void **state)
{
    (void)state;
    Lease l;
    lease_init(&l, NULL, NULL);
    lease_set_retry(&l, 10 * SEC);
    /* no lease: the tick as asked */
    assert_int_equal(lease_tick_usec(&l, 100 * SEC, 110 * SEC), 110 * SEC);
    l.cur = (LeaseGrant){ .id = 1, .ttl_sec = 30, .sent_usec = 100 * SEC }; /* due at 119 s */
    static const struct {
        uint64_t now, tick, want;
    } rows[] = {
        { 101 * SEC, 111 * SEC, 111 * SEC }, /* due after the tick: unchanged */
        { 111 * SEC, 121 * SEC, 119 * SEC }, /* due before it: the tick comes at the renewal */
        { 118 * SEC, 119 * SEC, 119 * SEC }, /* due at it */
        { 119 * SEC, 129 * SEC, 129 * SEC }, /* due now: this tick renews, no second one */
        { 125 * SEC, 126 * SEC, 126 * SEC }, /* overdue: the retry schedule stands */
    };
    for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
        assert_int_equal(lease_renew_due_usec(&l), 119 * SEC);
        assert_int_equal(lease_tick_usec(&l, rows[i].now, rows[i].tick), rows[i].want);
    }
}

/* ---- a model of etcd ---- */

#define MODEL_LEASES_MAX 64
#define ETCD_MIN_TTL     2

typedef enum Fault {
    FAULT_NONE,
    FAULT_LOST_REQUEST,  /* never reaches etcd */
    FAULT_LOST_RESPONSE, /* applied; the answer never comes */
} Fault;

typedef struct ModelLease {
    int64_t id;
    int64_t ttl;
    uint64_t expiry;
} ModelLease;

typedef struct Model {
    uint64_t now; /* the true time, the same monotonic clock the agent reads */
    uint64_t rng;
    ModelLease leases[MODEL_LEASES_MAX];
    size_t n;
    int64_t next_id;
    bool leader;      /* the leader key exists */
    bool leader_mine; /* and names us */
    int64_t leader_lease;
    unsigned fault_pct; /* chance of a fault per request */
    Fault script[8];    /* the next requests' faults, before fault_pct counts */
    size_t n_script;
    uint64_t max_delay;     /* a request's one-way trip */
    unsigned calls, faults; /* counters, for the report */
} Model;

static uint64_t rnd(Model *m)
{
    /* xorshift64* */
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * 2685821657736338717ULL;
}

static uint64_t rnd_below(Model *m, uint64_t n)
{
    return n ? rnd(m) % n : 0;
}

static ModelLease *model_lease(Model *m, int64_t id)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->leases[i].id == id) {
            return &m->leases[i];
        }
    }
    return NULL;
}

static void model_drop(Model *m, int64_t id)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->leases[i].id == id) {
            m->leases[i] = m->leases[--m->n];
            break;
        }
    }
    if (m->leader && m->leader_lease == id) {
        m->leader = false; /* the key goes with its lease */
    }
}

/* Time passes; etcd expires what is due (at the earliest at its expiry). */
static void model_advance(Model *m, uint64_t usec)
{
    m->now += usec;
    for (size_t i = 0; i < m->n;) {
        if (m->leases[i].expiry <= m->now) {
            model_drop(m, m->leases[i].id);
            continue;
        }
        i++;
    }
}

/* The request's trip to etcd; returns the fault to apply. */
static Fault model_send(Model *m)
{
    m->calls++;
    model_advance(m, rnd_below(m, m->max_delay));
    Fault f = FAULT_NONE;
    if (m->n_script > 0) {
        f = m->script[0];
        memmove(m->script, m->script + 1, --m->n_script * sizeof(m->script[0]));
        m->faults += f != FAULT_NONE;
    } else if (rnd_below(m, 100) < m->fault_pct) {
        f = rnd_below(m, 2) ? FAULT_LOST_REQUEST : FAULT_LOST_RESPONSE;
        m->faults++;
    }
    return f;
}

static int model_answer(Model *m, Fault f, int r)
{
    model_advance(m, rnd_below(m, m->max_delay));
    return f == FAULT_NONE ? r : -ETIMEDOUT;
}

static int op_grant(void *userdata, int64_t ttl_sec, int64_t *ret_id, int64_t *ret_ttl)
{
    Model *m = userdata;
    Fault f = model_send(m);
    if (f == FAULT_LOST_REQUEST || m->n == MODEL_LEASES_MAX) {
        return model_answer(m, FAULT_LOST_REQUEST, 0);
    }
    int64_t granted = ttl_sec < ETCD_MIN_TTL ? ETCD_MIN_TTL : ttl_sec;
    ModelLease *l = &m->leases[m->n++];
    *l = (ModelLease){ .id = ++m->next_id,
                       .ttl = granted,
                       .expiry = m->now + (uint64_t)granted * SEC };
    int64_t id = l->id;
    int r = model_answer(m, f, 0);
    if (r == 0) {
        *ret_id = id;
        *ret_ttl = granted;
    }
    return r;
}

static int op_keepalive(void *userdata, int64_t id, int64_t *ret_ttl)
{
    Model *m = userdata;
    Fault f = model_send(m);
    if (f == FAULT_LOST_REQUEST) {
        return model_answer(m, f, 0);
    }
    ModelLease *l = model_lease(m, id);
    if (!l) {
        return model_answer(m, f, -ESRCH);
    }
    l->expiry = m->now + (uint64_t)l->ttl * SEC;
    int64_t ttl = l->ttl;
    int r = model_answer(m, f, 0);
    if (r == 0) {
        *ret_ttl = ttl;
    }
    return r;
}

static int op_move_leader(void *userdata, int64_t from, int64_t to)
{
    Model *m = userdata;
    Fault f = model_send(m);
    if (f == FAULT_LOST_REQUEST) {
        return model_answer(m, f, 0);
    }
    if (!(m->leader && m->leader_mine && m->leader_lease == from)) {
        return model_answer(m, f, -ECANCELED);
    }
    if (!model_lease(m, to)) {
        return model_answer(m, f, -ENOENT); /* etcd: requested lease not found */
    }
    m->leader_lease = to;
    return model_answer(m, f, 0);
}

static int op_revoke(void *userdata, int64_t id)
{
    Model *m = userdata;
    Fault f = model_send(m);
    if (f == FAULT_LOST_REQUEST) {
        return model_answer(m, f, 0);
    }
    if (!model_lease(m, id)) {
        return model_answer(m, f, -ESRCH);
    }
    model_drop(m, id);
    return model_answer(m, f, 0);
}

static const LeaseOps model_ops = {
    .grant = op_grant,
    .keepalive = op_keepalive,
    .move_leader = op_move_leader,
    .revoke = op_revoke,
};

/* The agent's own writes of the leader key, as ha_exec does them: take it
 * when free (create_revision == 0, with the current lease), renew it onto
 * the current lease when the view shows it on another (value == us). */
static void model_take(Model *m, int64_t lease)
{
    Fault f = model_send(m);
    if (f != FAULT_LOST_REQUEST && !m->leader && lease != 0 && model_lease(m, lease)) {
        m->leader = true;
        m->leader_mine = true;
        m->leader_lease = lease;
    }
    (void)model_answer(m, f, 0);
}

static void model_renew(Model *m, int64_t lease)
{
    Fault f = model_send(m);
    if (f != FAULT_LOST_REQUEST && m->leader && m->leader_mine && lease != 0 &&
        model_lease(m, lease)) {
        m->leader_lease = lease;
    }
    (void)model_answer(m, f, 0);
}

/* The invariant: when the key names us, every deadline we act on comes no
 * later than etcd can expire the lease that holds it. */
static void check(const Model *m, const Lease *l, unsigned seed, unsigned step, const char *what)
{
    if (!m->leader || !m->leader_mine) {
        return;
    }
    const ModelLease *holder = NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (m->leases[i].id == m->leader_lease) {
            holder = &m->leases[i];
        }
    }
    assert_non_null(holder);
    uint64_t expiry = lease_expiry_usec(l), deadline = lease_deadline_usec(l);
    if (expiry == 0 || expiry > holder->expiry || deadline > expiry) {
        fail_msg("seed %u step %u (%s): our expiry %" PRIu64 " (deadline %" PRIu64
                 "), etcd expires lease %" PRId64 " at %" PRIu64 " (now %" PRIu64 "; cur %" PRId64
                 " old %" PRId64 ")",
                 seed, step, what, expiry, deadline, holder->id, holder->expiry, m->now, l->cur.id,
                 l->old.id);
    }
}

/* One agent tick: keep, read the view (it may fail), settle, act. */
static void tick(Model *m, Lease *l, int64_t want, bool *settled)
{
    if (lease_keep(l, m->now, 0, want) < 0) {
        return;
    }
    Fault f = model_send(m); /* the range read */
    if (f != FAULT_NONE) {
        (void)model_answer(m, f, 0);
        return;
    }
    bool mine = m->leader && m->leader_mine;
    int64_t holder = m->leader ? m->leader_lease : 0;
    bool free_key = !m->leader;
    (void)model_answer(m, f, 0);
    (void)lease_settle(l, m->now, want, mine, holder);
    *settled = true;
    if (free_key) {
        model_take(m, lease_id(l));
    } else if (mine && holder != lease_id(l)) {
        model_renew(m, lease_id(l));
    }
}

static const int64_t ttls[] = { 1, 2, 3, 5, 10, 30 };

static void run_seed(unsigned seed, unsigned steps, unsigned *ret_moves, unsigned *ret_checks)
{
    Model m = { .now = 1000 * SEC, .rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)seed << 17) };
    m.fault_pct = (unsigned)rnd_below(&m, 40);
    m.max_delay = 1 + rnd_below(&m, 700 * MS);
    Lease l;
    lease_init(&l, &model_ops, &m);
    /* renewals paced on their own, or capped (a watchdog) */
    uint64_t cap = rnd_below(&m, 2) ? 0 : 1 + rnd_below(&m, 3 * SEC);
    lease_set_max_interval(&l, cap);
    /* and retry_timeout anywhere from none to past the ttl */
    uint64_t retry = rnd_below(&m, 40 * SEC);
    lease_set_retry(&l, retry);
    int64_t want = ttls[rnd_below(&m, ELEMENTSOF(ttls))];
    bool settled = false;
    unsigned checks = 0;
    for (unsigned step = 0; step < steps; step++) {
        uint64_t ev = rnd_below(&m, 100);
        const char *what = "tick";
        if (ev < 55) {
            tick(&m, &l, want, &settled);
        } else if (ev < 70) {
            what = "ttl change";
            want = ttls[rnd_below(&m, ELEMENTSOF(ttls))];
        } else if (ev < 88) {
            what = "time passes";
            model_advance(&m, rnd_below(&m, 4 * SEC));
        } else if (ev < 92) {
            what = "another node takes a free key";
            if (!m.leader) {
                m.leader = true;
                m.leader_mine = false;
                m.leader_lease = 0;
            }
        } else if (ev < 94) {
            what = "another node's key goes";
            if (m.leader && !m.leader_mine) {
                m.leader = false;
            }
        } else if (ev < 97) {
            what = "agent restart";
            lease_init(&l, &model_ops, &m);
            lease_set_max_interval(&l, cap);
            lease_set_retry(&l, retry);
            settled = false;
        } else {
            what = "etcd leader change";
            for (size_t i = 0; i < m.n; i++) {
                m.leases[i].expiry = m.now + (uint64_t)m.leases[i].ttl * SEC;
            }
        }
        if (settled) {
            check(&m, &l, seed, step, what);
            checks++;
        }
    }
    /* Then a healthy etcd: the lease converges on the ttl asked for, and a
     * key of ours sits on the current lease alone. */
    m.fault_pct = 0;
    for (unsigned i = 0; i < 6; i++) {
        model_advance(&m, 300 * MS);
        tick(&m, &l, want, &settled);
        check(&m, &l, seed, steps + i, "healthy tick");
    }
    if (l.cur.asked_ttl_sec != want || l.old.id != 0 ||
        (m.leader && m.leader_mine && m.leader_lease != l.cur.id)) {
        fail_msg("seed %u: no convergence: want ttl %" PRId64 ", cur %" PRId64 " (asked %" PRId64
                 "), old %" PRId64 ", key %s on %" PRId64,
                 seed, want, l.cur.id, l.cur.asked_ttl_sec, l.old.id,
                 m.leader ? (m.leader_mine ? "ours" : "theirs") : "absent", m.leader_lease);
    }
    *ret_moves += l.moved;
    *ret_checks += checks;
}

static void test_property(void **state)
{
    (void)state;
    unsigned moves = 0, checks = 0;
    for (unsigned seed = 1; seed <= 3000; seed++) {
        run_seed(seed, 300, &moves, &checks);
    }
    printf("lease property: 3000 seeds x 300 steps, %u checks of the deadline\n", checks);
    assert_true(checks > 100000);
}

/* The split brain, step by step: leading on a 10 s lease, ttl
 * raised to 30, then etcd cut off. The deadline stays the 10 s lease's until
 * etcd has confirmed that the key is on the 30 s one. */
static void lead_on(Model *m, Lease *l, int64_t ttl)
{
    lease_init(l, &model_ops, m);
    bool settled = false;
    tick(m, l, ttl, &settled); /* grant + take */
    tick(m, l, ttl, &settled);
    assert_true(m->leader && m->leader_mine);
    assert_int_equal(m->leader_lease, l->cur.id);
    assert_int_equal(lease_ttl_sec(l), ttl);
}

static void script(Model *m, size_t n, const Fault *f)
{
    memcpy(m->script, f, n * sizeof(*f));
    m->n_script = n;
}

static void test_ttl_raised(void **state)
{
    (void)state;
    /* etcd answers: the key moves to the 30 s lease at once */
    Model m = { .now = 1000 * SEC, .rng = 42, .max_delay = 1 };
    Lease l;
    lead_on(&m, &l, 10);
    int64_t ten = l.cur.id;
    assert_int_equal(lease_keep(&l, m.now, 0, 30), 0);
    assert_int_equal(lease_settle(&l, m.now, 30, true, m.leader_lease), 0);
    assert_true(l.cur.id != ten);
    assert_int_equal(m.leader_lease, l.cur.id);
    assert_int_equal(l.old.id, 0);
    assert_int_equal(lease_ttl_sec(&l), 30);
    assert_true(lease_take_moved(&l));

    /* the grant is lost: the 10 s lease rules, and being cut off from
     * then on brings the deadline within 10 s of the last renewal */
    Model m2 = { .now = 1000 * SEC, .rng = 7, .max_delay = 1 };
    Lease l2;
    lead_on(&m2, &l2, 10);
    uint64_t renewed = m2.now;
    assert_int_equal(lease_keep(&l2, renewed, 0, 30), 0);
    script(&m2, 1, (Fault[]){ FAULT_LOST_REQUEST });
    assert_true(lease_settle(&l2, m2.now, 30, true, m2.leader_lease) < 0);
    assert_int_equal(lease_ttl_sec(&l2), 10);
    m2.fault_pct = 100;
    for (int i = 0; i < 30; i++) {
        model_advance(&m2, 1 * SEC);
        (void)lease_keep(&l2, m2.now, 0, 30);
        assert_true(lease_expiry_usec(&l2) <= renewed + 10 * SEC);
    }
    assert_true(lease_expiring(&l2, renewed + 9 * SEC));

    /* the move is applied but its answer lost: both leases count (the
     * earlier expiry rules) until a view shows where the key is */
    Model m3 = { .now = 1000 * SEC, .rng = 9, .max_delay = 1 };
    Lease l3;
    lead_on(&m3, &l3, 10);
    int64_t old = l3.cur.id;
    renewed = m3.now;
    assert_int_equal(lease_keep(&l3, renewed, 0, 30), 0);
    script(&m3, 2, (Fault[]){ FAULT_NONE, FAULT_LOST_RESPONSE });
    assert_true(lease_settle(&l3, m3.now, 30, true, m3.leader_lease) < 0);
    assert_int_equal(m3.leader_lease, l3.cur.id); /* etcd moved it */
    assert_int_equal(l3.old.id, old);             /* we cannot know */
    assert_int_equal(lease_ttl_sec(&l3), 10);
    assert_true(lease_expiry_usec(&l3) <= renewed + 10 * SEC);
    bool settled = true;
    tick(&m3, &l3, 30, &settled); /* the view shows the key on the new lease */
    assert_int_equal(l3.old.id, 0);
    assert_int_equal(lease_ttl_sec(&l3), 30);

    /* lowering the ttl re-grants too, and the shorter lease counts at once */
    Model m4 = { .now = 1000 * SEC, .rng = 11, .max_delay = 1 };
    Lease l4;
    lead_on(&m4, &l4, 30);
    assert_int_equal(lease_keep(&l4, m4.now, 0, 5), 0);
    assert_int_equal(lease_settle(&l4, m4.now, 5, true, m4.leader_lease), 0);
    assert_int_equal(lease_ttl_sec(&l4), 5);
    assert_int_equal(m4.leader_lease, l4.cur.id);
    assert_true(lease_expiry_usec(&l4) <= m4.now + 5 * SEC);
}

/* The deadline of a key found on a lease we do not track (a restarted
 * agent) is that lease's: adopted with a keepalive; unknown when the
 * keepalive fails, which counts as expired. */
static void test_adopt(void **state)
{
    (void)state;
    Model m = { .now = 1000 * SEC, .rng = 3, .max_delay = 1 };
    Lease pred;
    lead_on(&m, &pred, 5);
    int64_t prev = m.leader_lease;

    Lease l; /* the new agent */
    lease_init(&l, &model_ops, &m);
    assert_int_equal(lease_keep(&l, m.now, 0, 30), 0);
    assert_true(l.cur.id != prev);
    script(&m, 1, (Fault[]){ FAULT_LOST_REQUEST }); /* the adopting keepalive */
    m.fault_pct = 100;
    assert_true(lease_settle(&l, m.now, 30, true, prev) < 0);
    assert_int_equal(l.old.id, prev);
    assert_true(lease_expiring(&l, m.now)); /* unknown TTL: past */

    m.fault_pct = 0;
    assert_int_equal(lease_settle(&l, m.now, 30, true, prev), 0);
    /* the key moved to the 30 s lease; only then does it count alone */
    assert_int_equal(m.leader_lease, l.cur.id);
    assert_int_equal(l.old.id, 0);
    assert_int_equal(lease_ttl_sec(&l), 30);

    /* a key that is not ours, or is gone, lets the old lease go */
    lead_on(&m, &l, 5);
    l.old = (LeaseGrant){ .id = 999, .ttl_sec = 1, .sent_usec = m.now };
    assert_int_equal(lease_settle(&l, m.now, 5, false, 0), 0);
    assert_int_equal(l.old.id, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_margin),    cmocka_unit_test(test_renew_due),
        cmocka_unit_test(test_tick_usec), cmocka_unit_test(test_ttl_raised),
        cmocka_unit_test(test_adopt),     cmocka_unit_test(test_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
