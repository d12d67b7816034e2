/* Who should lead when the leader key is gone: the pure ranking of
 * candidates (highest WAL position, then failover_priority, then name) and
 * the I/O that asks every peer's REST API for its position at once, with a
 * short deadline (a peer that does not answer in time is not a contender:
 * it may be the dead primary). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dcs.h"
#include "peer-http.h"

/* How long all peers together may take to answer. */
#define ELECTION_PEER_TIMEOUT_USEC (500 * 1000ULL)
#define ELECTION_PEERS_MAX         64

typedef struct ElectionCandidate {
    const char *name;          /* borrowed */
    uint64_t wal_lsn;          /* the larger of received and replayed (or the primary's current) */
    int64_t failover_priority; /* 0: never */
    bool nofailover;
    bool backoff; /* its pre_promote failed less than ttl ago: it wins no tie */
} ElectionCandidate;

/* True when `a` should lead rather than `b`: higher WAL position, then
 * higher failover_priority, then the smaller name. A candidate with
 * nofailover or priority 0 never wins against one without. Pure. */
bool election_better(const ElectionCandidate *a, const ElectionCandidate *b);

/* What one peer said. */
typedef struct ElectionPeer {
    const char *name; /* borrowed from the cluster view */
    bool answered;
    bool running_primary; /* it says it runs a writable primary */
    bool has_replayed;    /* it reported xlog.replayed_location (a replica) */
    uint64_t replayed_lsn;
    const char *excluded; /* static, set by the caller: a cluster rule keeps it from
                             promoting (synchronous_mode), or NULL */
    bool watchdog_failed; /* it says watchdog_failed (Patroni 3.0.2): it will not promote */
    ElectionCandidate c;
} ElectionPeer;

/* The limits every candidate is held to besides its rank. */
typedef struct ElectionRules {
    bool has_optime;                 /* the status key's optime is known */
    uint64_t optime;                 /* the last leader position */
    int64_t maximum_lag_on_failover; /* bytes */
    bool check_timeline;             /* Patroni's: see election_timeline_blocked() */
    int64_t cluster_timeline;        /* dcs_history_cluster_timeline(); 0: unknown */
} ElectionRules;

/* Is a replica that has replayed up to `replayed` too far behind to be
 * promoted? True when rules->optime - replayed > maximum_lag_on_failover;
 * then buf holds the reason ("replay is paused, N bytes behind the last
 * leader position (maximum_lag_on_failover M)", without "replay is
 * paused, " when it is not). False (buf untouched) when it is within the
 * limit or the optime is unknown. Pure. */
bool election_lag_blocked(const ElectionRules *rules, uint64_t replayed, bool paused, char *buf,
                          size_t size);

/* Patroni's check_timeline: a replica on an older timeline than the
 * cluster's (the one after the last promotion the history key records) has
 * not followed that promotion, and promoted it would drop the writes made
 * since. True when rules->check_timeline and 0 < my_timeline <
 * rules->cluster_timeline; then buf holds the reason ("timeline N is behind
 * the cluster's timeline M (check_timeline)"). False (buf untouched) when
 * off or either timeline is unknown. Pure. */
bool election_timeline_blocked(const ElectionRules *rules, int64_t my_timeline, char *buf,
                               size_t size);

/* Why peer p will not promote itself, so it must not stand in the way of a
 * good candidate: NULL when it is a contender, else a static reason (tagged
 * nofailover, failover_priority 0, replay past maximum_lag_on_failover, a
 * required watchdog it cannot arm).
 * One rule per line: new rules (synchronous mode) go here. Pure. */
const char *election_peer_skip(const ElectionPeer *p, const ElectionRules *rules);

/* Asks every member of the view except `self` (GET its api_url, http and
 * https only) in parallel, all done by ELECTION_PEER_TIMEOUT_USEC, with the
 * TLS settings of *tls (peer_http_tls_from_config(); NULL: defaults). A peer
 * answered when it sent its status document with 200 or 503 (Patroni's
 * codes for it); a refusal, a certificate that does not verify or anything
 * else is no answer. Fills peers[] (at most ELECTION_PEERS_MAX) and *ret_n.
 * Returns 0, or -ENOMEM/-EIO. Logs at debug. */
int election_ask_peers(const DcsCluster *view, const char *self, const PeerHttpOptions *tls,
                       ElectionPeer *peers, size_t *ret_n);

/* Whether the PostgreSQL server at conninfo accepts writes: connects
 * (bounded by conninfo's connect_timeout) and asks pg_is_in_recovery().
 * 1: a primary; 0: a standby, or no server answered (*why says which
 * when given); -ENOMEM. Blocking; for the rare check of a former leader
 * whose agent is gone (agent/agent.c). */
int election_probe_primary(const char *conninfo, char *why, size_t why_size);

/* The verdict for `me` given the peers' answers: false when a peer runs a
 * primary or a peer that election_peer_skip() does not skip ranks better.
 * Pure. *ret_reason (static) says why not. */
bool election_is_healthiest(const ElectionCandidate *me, const ElectionPeer *peers, size_t n,
                            const ElectionRules *rules, const char **ret_reason);
