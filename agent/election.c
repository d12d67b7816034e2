/* Leader election, the pure part: the ranking of candidates, the lag
 * limit, and the verdict over the peers' answers (agent/election_exec.c
 * asks them). */
#include "election.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool election_better(const ElectionCandidate *a, const ElectionCandidate *b)
{
    bool a_can = !a->nofailover && a->failover_priority > 0;
    bool b_can = !b->nofailover && b->failover_priority > 0;
    if (a_can != b_can) {
        return a_can;
    }
    if (a->wal_lsn != b->wal_lsn) {
        return a->wal_lsn > b->wal_lsn;
    }
    /* Patroni 3.0.2 ranks by WAL only, and one whose pre_promote failed
     * stays out for ttl while another takes the key; dbha's tie-breaks must
     * not make the others wait for it (it would fail again, for ever) */
    if (a->backoff != b->backoff) {
        return !a->backoff;
    }
    if (a->failover_priority != b->failover_priority) {
        return a->failover_priority > b->failover_priority;
    }
    return strcmp(a->name, b->name) < 0;
}

static bool past_limit(const ElectionRules *rules, uint64_t replayed, uint64_t *ret_behind)
{
    if (!rules || !rules->has_optime || rules->optime <= replayed ||
        rules->maximum_lag_on_failover < 0) {
        return false;
    }
    uint64_t behind = rules->optime - replayed;
    *ret_behind = behind;
    return behind > (uint64_t)rules->maximum_lag_on_failover;
}

bool election_lag_blocked(const ElectionRules *rules, uint64_t replayed, bool paused, char *buf,
                          size_t size)
{
    uint64_t behind = 0;
    if (!past_limit(rules, replayed, &behind)) {
        return false;
    }
    if (buf && size > 0) {
        (void)snprintf(buf, size,
                       "%s%" PRIu64 " bytes behind the last leader position "
                       "(maximum_lag_on_failover %" PRId64 ")",
                       paused ? "replay is paused, " : "", behind, rules->maximum_lag_on_failover);
    }
    return true;
}

bool election_timeline_blocked(const ElectionRules *rules, int64_t my_timeline, char *buf,
                               size_t size)
{
    if (!rules || !rules->check_timeline || my_timeline <= 0 ||
        rules->cluster_timeline <= my_timeline) {
        return false;
    }
    if (buf && size > 0) {
        (void)snprintf(buf, size,
                       "timeline %" PRId64 " is behind the cluster's timeline %" PRId64
                       " (check_timeline)",
                       my_timeline, rules->cluster_timeline);
    }
    return true;
}

const char *election_peer_skip(const ElectionPeer *p, const ElectionRules *rules)
{
    uint64_t behind;
    if (p->excluded) {
        return p->excluded;
    }
    if (p->c.nofailover) {
        return "it is tagged nofailover";
    }
    if (p->c.failover_priority <= 0) {
        return "its failover_priority is 0";
    }
    if (p->watchdog_failed) {
        return "it is not watchdog capable";
    }
    if (p->has_replayed && past_limit(rules, p->replayed_lsn, &behind)) {
        return "its replay is past maximum_lag_on_failover";
    }
    return NULL;
}

bool election_is_healthiest(const ElectionCandidate *me, const ElectionPeer *peers, size_t n,
                            const ElectionRules *rules, const char **ret_reason)
{
    for (size_t i = 0; i < n; i++) {
        const ElectionPeer *p = &peers[i];
        if (!p->answered) {
            continue;
        }
        if (p->running_primary) {
            *ret_reason = "another member still runs a primary";
            return false;
        }
        if (election_peer_skip(p, rules)) {
            continue;
        }
        if (election_better(&p->c, me)) {
            *ret_reason = "another member is a better candidate";
            return false;
        }
    }
    *ret_reason = NULL;
    return true;
}
