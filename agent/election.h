/* Who should lead when the leader key is gone: the pure ranking of
 * candidates (highest WAL position, then failover_priority, then name) and
 * the I/O that asks every peer's REST API for its position at once, with a
 * short deadline (a peer that does not answer in time is not a contender:
 * it may be the dead primary). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dcs.h"

/* How long all peers together may take to answer. */
#define ELECTION_PEER_TIMEOUT_USEC (500 * 1000ULL)
#define ELECTION_PEERS_MAX         64

typedef struct ElectionCandidate {
    const char *name;          /* borrowed */
    uint64_t wal_lsn;          /* the larger of received and replayed (or the primary's current) */
    int64_t failover_priority; /* 0: never */
    bool nofailover;
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
    ElectionCandidate c;
} ElectionPeer;

/* Asks every member of the view except `self` (GET its api_url) in
 * parallel, all done by ELECTION_PEER_TIMEOUT_USEC. Fills peers[] (at most
 * ELECTION_PEERS_MAX) and *ret_n. Returns 0, or -ENOMEM/-EIO. Logs at debug. */
int election_ask_peers(const DcsCluster *view, const char *self, ElectionPeer *peers,
                       size_t *ret_n);

/* The verdict for `me` given the peers' answers: false when a peer runs a
 * primary or ranks better. Pure. *ret_reason (static) says why not. */
bool election_is_healthiest(const ElectionCandidate *me, const ElectionPeer *peers, size_t n,
                            const char **ret_reason);
