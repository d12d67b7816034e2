/* The upstream choice of a replica (cascading replication, the
 * `replicatefrom` tag), as a pure function of the cluster view so that
 * every member computes the same tree from the same view. */
#include "upstream.h"

#include <string.h>

static bool is_leader(const DcsCluster *c, const DcsMember *m)
{
    return c->leader && strcmp(c->leader->name, m->name) == 0;
}

const char *upstream_tag(const DcsMember *m)
{
    const json_t *t = m && m->tags ? json_object_get(m->tags, "replicatefrom") : NULL;
    const char *s = json_is_string(t) ? json_string_value(t) : NULL;
    return s && *s ? s : NULL;
}

const char *upstream_problem(const DcsCluster *c, const DcsMember *m)
{
    if (!m) {
        return "it is not a member of the cluster";
    }
    if (!m->host) {
        return "its address is unknown";
    }
    if (is_leader(c, m)) {
        return NULL;
    }
    if (!m->state || strcmp(m->state, "running") != 0) {
        return "it is not running";
    }
    if (m->role != DCS_ROLE_REPLICA) {
        return "it is not a replica";
    }
    if (!m->replication_state || strcmp(m->replication_state, "streaming") != 0) {
        return "it is not streaming";
    }
    return NULL;
}

/* Does the chain of replicatefrom tags that starts at `from` come back to
 * `me`? Tags only: whether a link is usable is each member's own decision,
 * and a loop must be broken the same way by every member on it. A loop
 * elsewhere (not through me) ends the walk after n_members steps; its
 * members break it themselves. */
static bool leads_back(const DcsCluster *c, const DcsMember *from, const char *me)
{
    const DcsMember *p = from;
    for (size_t steps = 0; p && steps <= c->n_members; steps++) {
        const char *next = upstream_tag(p);
        if (!next) {
            return false;
        }
        if (strcmp(next, me) == 0) {
            return true;
        }
        p = dcs_cluster_get_member(c, next);
    }
    return false;
}

void upstream_choose(const DcsCluster *c, const char *me, const char *replicatefrom,
                     const char *avoid, UpstreamChoice *ret)
{
    const DcsMember *lm = dcs_cluster_leader_member(c);
    UpstreamChoice u = { .member = lm && lm->host && strcmp(lm->name, me) != 0 ? lm : NULL };
    /* the leader streams from nobody, whatever its tag says */
    bool leading = c->leader && strcmp(c->leader->name, me) == 0;
    if (replicatefrom && *replicatefrom && !leading) {
        const DcsMember *m = dcs_cluster_get_member(c, replicatefrom);
        const char *why = NULL;
        if (strcmp(replicatefrom, me) == 0) {
            why = "it names this member itself";
        } else if ((why = upstream_problem(c, m))) {
            /* as reported */
        } else if (avoid && strcmp(avoid, m->name) == 0) {
            why = "this member could not stream from it";
        } else if (!is_leader(c, m) && leads_back(c, m, me)) {
            why = "its replicatefrom tags lead back to this member";
        }
        if (!why && !is_leader(c, m)) {
            u = (UpstreamChoice){ .member = m, .cascading = true };
        }
        u.why_not = why;
    }
    *ret = u;
}

size_t upstream_foreach_downstream(const DcsCluster *c, const char *me,
                                   void (*fn)(const DcsMember *m, void *userdata), void *userdata)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        const char *tag = upstream_tag(m);
        if (!tag || strcmp(tag, me) != 0 || strcmp(m->name, me) == 0 || is_leader(c, m)) {
            continue;
        }
        if (fn) {
            fn(m, userdata);
        }
        n++;
    }
    return n;
}
