/* The leader lease: the one owner of the etcd lease this agent attaches its
 * keys to, and of the deadline by which it must have stopped acting as the
 * leader. Every reader (HA input, fencing process, watchdog, REST, metrics)
 * asks lease_deadline_usec()/lease_expiry_usec() and nothing else.
 *
 * The rule. etcd expires a lease at (the moment it handled the last grant
 * or keepalive) + (the TTL it granted). We record for each lease the TTL
 * etcd granted and the monotonic time the successful request was SENT
 * (before etcd handled it), so sent + granted TTL is never later than etcd's
 * expiry. The leader key may be attached to more than one of our leases
 * while it is moved from one to another (a ttl change re-grants; a restarted
 * agent finds its key on its predecessor's lease; a move whose answer was
 * lost leaves either possible): every lease that may hold it is kept alive
 * and counts, and the deadline is the earliest of them. A lease stops
 * counting only on evidence that it no longer holds the key: a move that
 * etcd confirmed, a cluster view that shows the key elsewhere (or not ours),
 * or etcd saying the lease is gone.
 *
 * The I/O goes through LeaseOps so that the rule is tested against a model
 * of etcd (tests/unit/test_lease.c); lease_etcd_ops is the real one. The
 * functions that take `now_usec` never read the clock themselves. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dcs-store.h"
#include "etcd.h"

/* How much earlier than the earliest possible expiry the agent stops acting
 * as the leader (and the fencing process fires): min(LEASE_SAFETY_MARGIN_USEC,
 * ttl / 3), so a short ttl still leaves two thirds of it for renewals (ttl
 * 3 s: 1 s; ttl 1 s: 333 ms). It covers the fencing process's wake-up
 * latency, scheduling delay on a loaded host and the kill itself. etcd expires a lease 35-449 ms
 * after its TTL (measured), and a replica then needs more than 100 ms to promote, but nothing
 * counts on either. */
#define LEASE_SAFETY_MARGIN_USEC (1000 * 1000ULL)
/* At least this is left for retries after a renewal is due, whatever
 * retry_timeout says: an etcd leader election (election timeout 1 s by
 * default) stalls keepalives for about that long, and a killed member's
 * requests move to another endpoint meanwhile. */
#define LEASE_RETRY_FLOOR_USEC (2 * 1000 * 1000ULL)

typedef struct LeaseGrant {
    int64_t id;            /* 0: none */
    int64_t asked_ttl_sec; /* what we asked etcd for (0: unknown, adopted) */
    int64_t ttl_sec;       /* what etcd granted; 0: unknown (counts as expired) */
    uint64_t sent_usec;    /* send time of the last successful grant/keepalive */
} LeaseGrant;

/* The etcd side. Each returns 0 or -errno; userdata is LeaseOps' caller's. */
typedef struct LeaseOps {
    /* Grants a lease of ttl_sec; *ret_id and *ret_ttl (granted) on success. */
    int (*grant)(void *userdata, int64_t ttl_sec, int64_t *ret_id, int64_t *ret_ttl);
    /* One keepalive: *ret_ttl (the granted TTL, > 0), or -ESRCH: gone. */
    int (*keepalive)(void *userdata, int64_t id, int64_t *ret_ttl);
    /* Moves the leader key onto lease `to` when it names us and is attached
     * to lease `from` (one txn): 0 moved; -ECANCELED it was not (ours on
     * `from`); any other error: the outcome is unknown. */
    int (*move_leader)(void *userdata, int64_t from, int64_t to);
    /* Revokes a lease (its keys are deleted); best effort. */
    int (*revoke)(void *userdata, int64_t id);
} LeaseOps;

typedef struct Lease {
    LeaseGrant cur;      /* new keys are attached to this one */
    LeaseGrant old;      /* another of ours that may still hold the leader key (id 0: none) */
    const LeaseOps *ops; /* borrowed */
    void *userdata;      /* borrowed */
    uint64_t
        max_interval_usec; /* renew at least this often (0: no cap); lease_set_max_interval() */
    uint64_t retry_usec;   /* left for retries after a renewal is due; lease_set_retry() */
    bool moved;            /* set when a move of the leader key was confirmed; cleared by
                              lease_take_moved() */
} Lease;

void lease_init(Lease *l, const LeaseOps *ops, void *userdata);

/* ---- pure: the deadline and what derives from it ---- */

/* min(LEASE_SAFETY_MARGIN_USEC, ttl / 3). */
uint64_t lease_margin_usec(uint64_t ttl_usec);
/* The earliest moment etcd may expire a lease that may hold our leader key
 * (sent + granted TTL, minimum over them); 0 when we have no lease. */
uint64_t lease_expiry_usec(const Lease *l);
/* The moment to stop acting as the leader: the minimum over the same leases
 * of sent + ttl - lease_margin_usec(ttl); 0 when we have no lease. */
uint64_t lease_deadline_usec(const Lease *l);
/* We have a lease and now is at or past the deadline. */
bool lease_expiring(const Lease *l, uint64_t now_usec);
/* The lease new keys are attached to (0: none). */
int64_t lease_id(const Lease *l);
/* The shortest granted TTL among the leases that count (the watchdog's
 * timeout derives from it); 0 when none. */
int64_t lease_ttl_sec(const Lease *l);
/* The earliest send time among the leases that count: all were renewed at
 * or after it. 0 when none. */
uint64_t lease_renewed_usec(const Lease *l);

/* When the next keepalive is due: for each lease that counts, so that the
 * time left from then to its deadline is retry_timeout (lease_set_retry()),
 * at least LEASE_RETRY_FLOOR_USEC, and between a third and a half of
 * ttl - margin: due = sent + (ttl - margin) - clamp(max(retry, floor),
 * (ttl - margin) / 3, (ttl - margin) / 2). At Patroni's defaults (ttl 30,
 * retry_timeout 10) that is 19 s after the last renewal; ttl 10, retry 4:
 * 5 s; ttl 5, retry 1: 2 s; ttl 3: 1 s. It keeps Patroni's promise for
 * retry_timeout ("DCS or network issues shorter than this will not cause
 * Patroni to demote the leader"): an etcd outage that begins at any moment
 * and lasts less than retry_timeout ends before the deadline, as the
 * retries go on until then (Patroni's own rule, ttl >= loop_wait + 2 *
 * retry_timeout, keeps retry_timeout within the half). Never more often than
 * halfway, as before. Sooner when capped by lease_set_max_interval(); the
 * earliest over the leases that count; 0 when we have no lease. Renewing
 * on a timer of its own instead of every loop, and no more often than that
 * promise needs, is what keeps an idle node's etcd requests down; the
 * deadline does not depend on it. */
uint64_t lease_renew_due_usec(const Lease *l);
/* When to run a tick asked for at tick_usec: at the renewal instead when
 * that is due after now_usec and before tick_usec, so that the renewal
 * (done by the tick, observe → lease_keep) costs no wake of its own. Ticks
 * only come earlier, never later: loop_wait stays the longest sleep. */
uint64_t lease_tick_usec(const Lease *l, uint64_t now_usec, uint64_t tick_usec);
/* Renew at least every interval_usec (0: no cap). The agent caps it at
 * loop_wait while a watchdog is armed: the watchdog is kept alive after a
 * renewal, as often as Patroni does. */
void lease_set_max_interval(Lease *l, uint64_t interval_usec);
/* How long an etcd outage must be survived: retry_timeout (see
 * lease_renew_due_usec()). */
void lease_set_retry(Lease *l, uint64_t retry_usec);

/* ---- I/O through the ops ---- */

/* Keeps every lease that counts and is due (lease_renew_due_usec()) before
 * now_usec + ahead_usec alive (now_usec: read before the calls), and grants
 * one of want_ttl_sec when there is none. A lease etcd says is
 * gone is dropped. Returns 0 when every keepalive (or the grant) succeeded,
 * else the first error; the deadline then still comes from the last
 * successful ones. Does not log. */
int lease_keep(Lease *l, uint64_t now_usec, uint64_t ahead_usec, int64_t want_ttl_sec);

/* After a fresh view of the cluster (now_usec: read before the calls):
 * leader_mine tells whether the leader key names us, holder its lease.
 * Adopts a lease of ours that holds the key (found on a predecessor's
 * lease: kept alive from now on, and counted), drops one that provably
 * does not, re-grants when want_ttl_sec differs from what the current
 * lease was granted with, and moves the key onto the current lease in one
 * txn. Until etcd confirms the move, both leases count. Returns 0 or the
 * first error (the state stays safe either way). Does not log. */
int lease_settle(Lease *l, uint64_t now_usec, int64_t want_ttl_sec, bool leader_mine,
                 int64_t holder);

/* Whether a move of the leader key was confirmed since the last call (for a
 * log line). */
bool lease_take_moved(Lease *l);

/* Revokes every lease we hold (shutdown). */
void lease_revoke_all(Lease *l);

/* ---- the etcd implementation ---- */

typedef struct LeaseEtcd {
    EtcdClient *etcd; /* borrowed */
    DcsStore *store;  /* borrowed: moves the leader key */
    const char *name; /* borrowed: our member name, the leader key's value */
    EtcdError error;  /* of the last failed call */
} LeaseEtcd;

extern const LeaseOps lease_etcd_ops;
