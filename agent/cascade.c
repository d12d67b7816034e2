/* Cascading replication: whom this replica streams from (the member its
 * replicatefrom tag names, else the leader; lib/upstream.c decides from the
 * cluster view), and what the agent observes itself: a replicatefrom member
 * whose key still says "streaming" may be unable to send (its PostgreSQL
 * died and its agent is hung or gone, so the key lives on until its lease
 * expires). A replica that sees its walreceiver not streaming from it on
 * two ticks falls back to the leader at once (within two loops), instead
 * of waiting out that member's ttl. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "upstream.h"

#define USEC_PER_SEC 1000000ULL

const DcsMember *agent_upstream(Agent *a)
{
    if (!a->cluster) {
        return NULL;
    }
    UpstreamChoice u;
    upstream_choose(a->cluster, a->config->name, a->config->tags.replicatefrom, a->upstream_avoid,
                    &u);
    _cleanup_free_ char *note = NULL;
    if (asprintf(&note, "%s|%d|%s", u.member ? u.member->name : "", u.cascading,
                 strempty(u.why_not)) < 0) {
        return u.member;
    }
    if (a->upstream_note && strcmp(a->upstream_note, note) == 0) {
        return u.member;
    }
    if (u.cascading) {
        log_info("following \"%s\" (replicatefrom)", u.member->name);
    } else if (u.why_not && u.member) {
        log_warning("\"%s\" is unavailable (%s): following the leader \"%s\" instead",
                    a->config->tags.replicatefrom, u.why_not, u.member->name);
    } else if (u.why_not) {
        log_warning("\"%s\" is unavailable (%s), and there is no leader to follow instead",
                    a->config->tags.replicatefrom, u.why_not);
    }
    free(a->upstream_note);
    a->upstream_note = TAKE_PTR(note);
    return u.member;
}

uint64_t agent_observe_upstream(Agent *a, uint64_t now)
{
    const DcsCluster *c = a->dcs_ok ? a->cluster : NULL;
    if (!c) {
        return 0;
    }
    const char *tag = a->config->tags.replicatefrom;
    if (a->upstream_avoid) {
        const DcsMember *m = dcs_cluster_get_member(c, a->upstream_avoid);
        /* a key rewritten since we gave up: its agent runs and publishes
         * what it sees (a new key after its lease expired counts too) */
        bool republished = m && m->mod_revision > a->upstream_avoid_revision;
        if (!tag || strcmp(tag, a->upstream_avoid) != 0 ||
            (republished && now >= a->upstream_retry_usec)) {
            log_debug("\"%s\" may be our upstream again", a->upstream_avoid);
            free(a->upstream_avoid);
            a->upstream_avoid = NULL;
        }
    }
    const DcsMember *lm = dcs_cluster_leader_member(c);
    bool cascading = a->state == HA_STATE_REPLICA && a->following &&
                     !(lm && strcmp(lm->name, a->following) == 0) && a->pg_running && a->probe_ok &&
                     a->snap.in_recovery;
    if (!cascading || agent_streaming(a)) {
        a->upstream_down_usec = 0;
        if (cascading) {
            a->upstream_failures = 0;
        }
        return 0;
    }
    /* two looks without streaming, at least half a loop apart (a tick woken
     * by the watch may come right after another): a single look may catch
     * a walreceiver that reconnects */
    int64_t loop_wait = agent_dcs(a)->loop_wait;
    uint64_t grace = (uint64_t)(loop_wait > 1 ? loop_wait : 1) * USEC_PER_SEC / 2;
    if (a->upstream_down_usec == 0) {
        a->upstream_down_usec = now;
        return now + grace;
    }
    if (now < a->upstream_down_usec + grace) {
        return a->upstream_down_usec + grace;
    }
    const DcsMember *m = dcs_cluster_get_member(c, a->following);
    char *avoid = strdup(a->following);
    if (!avoid) {
        return 0;
    }
    free(a->upstream_avoid);
    a->upstream_avoid = avoid;
    a->upstream_avoid_revision = m ? m->mod_revision : 0;
    uint64_t backoff = AGENT_UPSTREAM_RETRY_MIN_USEC
                       << (a->upstream_failures < 8 ? a->upstream_failures : 8);
    if (backoff > AGENT_UPSTREAM_RETRY_MAX_USEC) {
        backoff = AGENT_UPSTREAM_RETRY_MAX_USEC;
    }
    a->upstream_failures++;
    a->upstream_retry_usec = now + backoff;
    log_warning("not streaming from \"%s\" for %" PRIu64 " ms: following the leader until it "
                "publishes its state again (at the earliest in %" PRIu64 " ms)",
                avoid, (now - a->upstream_down_usec) / 1000, backoff / 1000);
    a->upstream_down_usec = 0;
    return now;
}
