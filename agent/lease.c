/* The leader lease and its deadline (lease.h has the rule). The state is two
 * slots: the current lease, and another of ours that may still hold the
 * leader key. Everything that could make a deadline later than etcd's
 * expiry is kept out by construction: a slot's time only moves forward on a
 * successful request and to the time before it was sent, and a slot leaves
 * the minimum only on evidence. */
#include "lease.h"

#include <errno.h>
#include <string.h>

#define USEC_PER_SEC 1000000ULL

void lease_init(Lease *l, const LeaseOps *ops, void *userdata)
{
    *l = (Lease){ .ops = ops, .userdata = userdata };
}

uint64_t lease_margin_usec(uint64_t ttl_usec)
{
    uint64_t third = ttl_usec / 3;
    return third < LEASE_SAFETY_MARGIN_USEC ? third : LEASE_SAFETY_MARGIN_USEC;
}

static uint64_t grant_expiry(const LeaseGrant *g)
{
    return g->sent_usec + (uint64_t)(g->ttl_sec > 0 ? g->ttl_sec : 0) * USEC_PER_SEC;
}

static uint64_t grant_deadline(const LeaseGrant *g)
{
    uint64_t ttl = (uint64_t)(g->ttl_sec > 0 ? g->ttl_sec : 0) * USEC_PER_SEC;
    return g->sent_usec + ttl - lease_margin_usec(ttl);
}

/* The minimum of f over the slots that count; 0 when there is none. A slot
 * never renewed (sent 0) counts as time 1: already past. */
static uint64_t min_over(const Lease *l, uint64_t (*f)(const LeaseGrant *))
{
    uint64_t m = 0;
    const LeaseGrant *slots[] = { &l->cur, &l->old };
    for (size_t i = 0; i < 2; i++) {
        if (slots[i]->id == 0) {
            continue;
        }
        uint64_t v = f(slots[i]);
        if (v == 0) {
            v = 1;
        }
        if (m == 0 || v < m) {
            m = v;
        }
    }
    return m;
}

uint64_t lease_expiry_usec(const Lease *l)
{
    return min_over(l, grant_expiry);
}

uint64_t lease_deadline_usec(const Lease *l)
{
    return min_over(l, grant_deadline);
}

bool lease_expiring(const Lease *l, uint64_t now_usec)
{
    uint64_t d = lease_deadline_usec(l);
    return d != 0 && now_usec >= d;
}

int64_t lease_id(const Lease *l)
{
    return l->cur.id;
}

int64_t lease_ttl_sec(const Lease *l)
{
    int64_t m = -1;
    const LeaseGrant *slots[] = { &l->cur, &l->old };
    for (size_t i = 0; i < 2; i++) {
        if (slots[i]->id == 0) {
            continue;
        }
        int64_t t = slots[i]->ttl_sec > 0 ? slots[i]->ttl_sec : 0; /* unknown: none left */
        if (m < 0 || t < m) {
            m = t;
        }
    }
    return m < 0 ? 0 : m;
}

static uint64_t grant_sent(const LeaseGrant *g)
{
    return g->sent_usec;
}

uint64_t lease_renewed_usec(const Lease *l)
{
    return min_over(l, grant_sent);
}

static uint64_t grant_renew_due(const LeaseGrant *g, uint64_t cap_usec, uint64_t retry_usec)
{
    uint64_t ttl = (uint64_t)(g->ttl_sec > 0 ? g->ttl_sec : 0) * USEC_PER_SEC;
    uint64_t usable = ttl - lease_margin_usec(ttl);
    uint64_t leave = retry_usec > LEASE_RETRY_FLOOR_USEC ? retry_usec : LEASE_RETRY_FLOOR_USEC;
    if (leave < usable / 3) {
        leave = usable / 3;
    }
    if (leave > usable / 2) {
        leave = usable / 2;
    }
    uint64_t after = usable - leave;
    if (cap_usec != 0 && cap_usec < after) {
        after = cap_usec;
    }
    return g->sent_usec + after;
}

uint64_t lease_renew_due_usec(const Lease *l)
{
    uint64_t m = 0;
    const LeaseGrant *slots[] = { &l->cur, &l->old };
    for (size_t i = 0; i < 2; i++) {
        if (slots[i]->id == 0) {
            continue;
        }
        uint64_t v = grant_renew_due(slots[i], l->max_interval_usec, l->retry_usec);
        if (v == 0) {
            v = 1;
        }
        if (m == 0 || v < m) {
            m = v;
        }
    }
    return m;
}

uint64_t lease_tick_usec(const Lease *l, uint64_t now_usec, uint64_t tick_usec)
{
    uint64_t due = lease_renew_due_usec(l);
    return due > now_usec && due < tick_usec ? due : tick_usec;
}

void lease_set_max_interval(Lease *l, uint64_t interval_usec)
{
    l->max_interval_usec = interval_usec;
}

void lease_set_retry(Lease *l, uint64_t retry_usec)
{
    l->retry_usec = retry_usec;
}

static int keepalive(Lease *l, LeaseGrant *g, uint64_t now_usec)
{
    int64_t ttl = 0;
    int r = l->ops->keepalive(l->userdata, g->id, &ttl);
    if (r == -ESRCH || (r >= 0 && ttl <= 0)) {
        *g = (LeaseGrant){ 0 }; /* gone at etcd, and every key on it */
        return -ESRCH;
    }
    if (r < 0) {
        return r;
    }
    g->ttl_sec = ttl;
    g->sent_usec = now_usec;
    return 0;
}

static int grant(Lease *l, int64_t ttl_sec, uint64_t now_usec, LeaseGrant *ret)
{
    int64_t id = 0, granted = 0;
    int r = l->ops->grant(l->userdata, ttl_sec, &id, &granted);
    if (r < 0) {
        return r;
    }
    if (id == 0 || granted <= 0) {
        return -EPROTO;
    }
    *ret = (LeaseGrant){
        .id = id, .asked_ttl_sec = ttl_sec, .ttl_sec = granted, .sent_usec = now_usec
    };
    return 0;
}

int lease_keep(Lease *l, uint64_t now_usec, uint64_t ahead_usec, int64_t want_ttl_sec)
{
    int first = 0;
    LeaseGrant *slots[] = { &l->old, &l->cur };
    for (size_t i = 0; i < 2; i++) {
        if (slots[i]->id == 0 ||
            now_usec + ahead_usec <
                grant_renew_due(slots[i], l->max_interval_usec, l->retry_usec)) {
            continue;
        }
        int r = keepalive(l, slots[i], now_usec);
        if (r < 0 && r != -ESRCH && first == 0) {
            first = r;
        }
    }
    if (l->cur.id == 0) {
        int r = grant(l, want_ttl_sec, now_usec, &l->cur);
        if (r < 0 && first == 0) {
            first = r;
        }
    }
    return first;
}

int lease_settle(Lease *l, uint64_t now_usec, int64_t want_ttl_sec, bool leader_mine,
                 int64_t holder)
{
    int first = 0;
    bool held = leader_mine && holder != 0;

    /* Which of our leases may hold the key, on the view's evidence. */
    if (!held || holder == l->cur.id) {
        l->old = (LeaseGrant){ 0 };
    } else if (holder != l->old.id) {
        /* Ours on a lease we do not track (a predecessor's, or one whose
         * move we gave up on): it counts from now, its TTL from etcd. Until
         * etcd tells, its TTL is unknown and it counts as expired. */
        l->old = (LeaseGrant){ .id = holder, .sent_usec = now_usec };
        int r = keepalive(l, &l->old, now_usec);
        if (r == -ESRCH) {
            held = false; /* gone, and the key with it */
        } else if (r < 0) {
            first = r;
        }
    }

    /* A ttl change re-grants; the key moves below. */
    if (l->cur.id != 0 && l->cur.asked_ttl_sec != want_ttl_sec && l->old.id == 0) {
        LeaseGrant fresh;
        int r = grant(l, want_ttl_sec, now_usec, &fresh);
        if (r < 0) {
            if (first == 0) {
                first = r;
            }
        } else {
            if (held && holder == l->cur.id) {
                l->old = l->cur;
            }
            /* not holding the key: the old lease lapses by itself once the
             * member key is written with the new one */
            l->cur = fresh;
        }
    }

    /* Move the key onto the current lease. */
    if (held && l->old.id != 0 && l->cur.id != 0) {
        int r = l->ops->move_leader(l->userdata, l->old.id, l->cur.id);
        if (r >= 0 || r == -ECANCELED) {
            /* on the current lease now, or not ours on the old one */
            l->old = (LeaseGrant){ 0 };
            l->moved = l->moved || r >= 0;
        } else if (first == 0) {
            first = r;
        }
    }
    return first;
}

bool lease_take_moved(Lease *l)
{
    bool m = l->moved;
    l->moved = false;
    return m;
}

void lease_revoke_all(Lease *l)
{
    LeaseGrant *slots[] = { &l->old, &l->cur };
    for (size_t i = 0; i < 2; i++) {
        if (slots[i]->id != 0) {
            (void)l->ops->revoke(l->userdata, slots[i]->id);
            *slots[i] = (LeaseGrant){ 0 };
        }
    }
}

/* ---- etcd ---- */

/* The client's limit (etcd_client_set_limit()) keeps other calls from
 * delaying a renewal; the lease's own calls are what it makes room for, so
 * they are never cut by it. */
static uint64_t unlimit(LeaseEtcd *le)
{
    uint64_t was = etcd_client_get_limit(le->etcd);
    etcd_client_set_limit(le->etcd, 0);
    return was;
}

static int etcd_grant(void *userdata, int64_t ttl_sec, int64_t *ret_id, int64_t *ret_ttl)
{
    LeaseEtcd *le = userdata;
    EtcdLease lease = { 0 };
    uint64_t limit = unlimit(le);
    int r = etcd_lease_grant(le->etcd, ttl_sec, 0, &lease, &le->error);
    etcd_client_set_limit(le->etcd, limit);
    if (r < 0) {
        return r;
    }
    *ret_id = lease.id;
    *ret_ttl = lease.ttl;
    return 0;
}

static int etcd_keepalive(void *userdata, int64_t id, int64_t *ret_ttl)
{
    LeaseEtcd *le = userdata;
    uint64_t limit = unlimit(le);
    int r = etcd_lease_keepalive(le->etcd, id, ret_ttl, &le->error);
    etcd_client_set_limit(le->etcd, limit);
    return r;
}

static int etcd_move_leader(void *userdata, int64_t from, int64_t to)
{
    LeaseEtcd *le = userdata;
    uint64_t limit = unlimit(le);
    int r = dcs_store_move_leader(le->store, le->name, from, to);
    etcd_client_set_limit(le->etcd, limit);
    le->error = le->store->error;
    return r;
}

static int etcd_revoke(void *userdata, int64_t id)
{
    LeaseEtcd *le = userdata;
    uint64_t limit = unlimit(le);
    int r = etcd_lease_revoke(le->etcd, id, &le->error);
    etcd_client_set_limit(le->etcd, limit);
    return r;
}

const LeaseOps lease_etcd_ops = {
    .grant = etcd_grant,
    .keepalive = etcd_keepalive,
    .move_leader = etcd_move_leader,
    .revoke = etcd_revoke,
};
