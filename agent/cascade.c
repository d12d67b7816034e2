#include "cascade.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "upstream.h"

#define USEC_PER_SEC 1000000ULL

void cascade_done(Cascade *c)
{
    free(c->following);
    free(c->note_member);
    free(c->avoid);
    *c = (Cascade){ 0 };
}

int cascade_set_following(Cascade *c, const char *name)
{
    char *copy = name ? strdup(name) : NULL;
    if (name && !copy) {
        return -ENOMEM;
    }
    free(c->following);
    c->following = copy;
    c->down_usec = 0; /* a new upstream: its own looks count */
    return 0;
}

bool cascade_follows(const Cascade *c, const DcsMember *m)
{
    return c->following && m && strcmp(c->following, m->name) == 0;
}

static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

const DcsMember *cascade_upstream(Cascade *c, const DcsCluster *view, const Config *config)
{
    if (!view) {
        return NULL;
    }
    UpstreamChoice u;
    upstream_choose(view, config->name, config->tags.replicatefrom, c->avoid, &u);
    const char *name = u.member ? u.member->name : "";
    if (c->noted && c->note_cascading == u.cascading && same_text(c->note_why, u.why_not) &&
        strcmp(c->note_member, name) == 0) {
        return u.member; /* said already */
    }
    char *copy = strdup(name);
    if (!copy) {
        return u.member;
    }
    if (u.cascading) {
        log_info("following \"%s\" (replicatefrom)", u.member->name);
    } else if (u.why_not && u.member) {
        log_warning("\"%s\" is unavailable (%s): following the leader \"%s\" instead",
                    config->tags.replicatefrom, u.why_not, u.member->name);
    } else if (u.why_not) {
        log_warning("\"%s\" is unavailable (%s), and there is no leader to follow instead",
                    config->tags.replicatefrom, u.why_not);
    }
    free(c->note_member);
    c->note_member = copy;
    c->note_cascading = u.cascading;
    c->note_why = u.why_not;
    c->noted = true;
    return u.member;
}

uint64_t cascade_observe(Cascade *c, const DcsCluster *view, const char *tag, bool replica,
                         bool streaming, int64_t loop_wait, uint64_t now)
{
    if (!view) {
        return 0;
    }
    if (c->avoid) {
        const DcsMember *m = dcs_cluster_get_member(view, c->avoid);
        /* a key rewritten since we gave up: its agent runs and publishes
         * what it sees (a new key after its lease expired counts too) */
        bool republished = m && m->mod_revision > c->avoid_revision;
        if (!tag || strcmp(tag, c->avoid) != 0 || (republished && now >= c->retry_usec)) {
            log_debug("\"%s\" may be our upstream again", c->avoid);
            free(c->avoid);
            c->avoid = NULL;
        }
    }
    const DcsMember *lm = dcs_cluster_leader_member(view);
    bool cascading = replica && c->following && !(lm && strcmp(lm->name, c->following) == 0);
    if (!cascading || streaming) {
        c->down_usec = 0;
        if (cascading) {
            c->failures = 0;
        }
        return 0;
    }
    /* two looks without streaming, at least half a loop apart (a tick woken
     * by the watch may come right after another): a single look may catch
     * a walreceiver that reconnects */
    uint64_t grace = (uint64_t)(loop_wait > 1 ? loop_wait : 1) * USEC_PER_SEC / 2;
    if (c->down_usec == 0) {
        c->down_usec = now;
        return now + grace;
    }
    if (now < c->down_usec + grace) {
        return c->down_usec + grace;
    }
    const DcsMember *m = dcs_cluster_get_member(view, c->following);
    char *avoid = strdup(c->following);
    if (!avoid) {
        return 0;
    }
    free(c->avoid);
    c->avoid = avoid;
    c->avoid_revision = m ? m->mod_revision : 0;
    uint64_t backoff = CASCADE_RETRY_MIN_USEC << (c->failures < 8 ? c->failures : 8);
    if (backoff > CASCADE_RETRY_MAX_USEC) {
        backoff = CASCADE_RETRY_MAX_USEC;
    }
    c->failures++;
    c->retry_usec = now + backoff;
    log_warning("not streaming from \"%s\" for %" PRIu64 " ms: following the leader until it "
                "publishes its state again (at the earliest in %" PRIu64 " ms)",
                avoid, (now - c->down_usec) / 1000, backoff / 1000);
    c->down_usec = 0;
    return now;
}
