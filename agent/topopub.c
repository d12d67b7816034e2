/* The leader's topology key (lib/topology.h): rebuilt from the watched view
 * after each leader tick, and between ticks when the watch saw another
 * member's key change what a router reads; written only when a router
 * would route differently, in one transaction that also checks we still
 * hold the leader key and that nobody wrote the topology since our view
 * of it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "macro.h"
#include "publish.h"
#include "topology.h"

static int iso_now(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0) {
        return -ENOSPC;
    }
    snprintf(buf + n, size - n, ".%06ld+00:00", ts.tv_nsec / 1000);
    return 0;
}

static int publish(Publisher *p, const PublishView *a, const DcsCluster *c)
{
    const Config *cfg = a->config;
    if (!c || !a->probe_ok || a->snap->in_recovery) {
        return 0;
    }
    _cleanup_free_ char *conn_url = NULL, *api_url = NULL, *host = NULL;
    int port = 0;
    if (publish_config_urls(cfg, &conn_url, &api_url, NULL) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    if (dcs_parse_conn_url(conn_url, &host, &port) < 0) {
        host = NULL;
        port = 0;
    }
    /* The view at one revision never changes: the same inputs as the last
     * time the key was found up to date need no rebuilding */
    _cleanup_free_ char *inputs = NULL;
    if (c->revision > 0 && asprintf(&inputs, "%" PRId64 "|%" PRIu32 "|%s|%s|%s", c->revision,
                                    a->snap->timeline, cfg->scope, conn_url, api_url) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    if (inputs && p->topology_same_as && strcmp(inputs, p->topology_same_as) == 0) {
        return 0;
    }
    TopologySelf self = {
        .name = cfg->name,
        .host = host,
        .port = port,
        .api_url = api_url,
        .timeline = a->snap->timeline,
    };
    json_t *doc = NULL;
    int r = topology_build(c, cfg->scope, &self, &doc);
    if (r < 0) {
        return log_error_errno(r, "building the topology document: %m");
    }
    if (topology_same(doc, c->topology)) {
        json_decref(doc);
        free(p->topology_same_as);
        p->topology_same_as = TAKE_PTR(inputs);
        return 0;
    }
    char now[64];
    /* over a document naming another leader, one version is skipped: the
     * one readers gave what they built meanwhile (topology_select) */
    int64_t version = topology_next_version(c->topology, cfg->name);
    _cleanup_free_ char *text = NULL;
    if (iso_now(now, sizeof(now)) < 0 || topology_stamp(doc, version, now) < 0 ||
        !(text = json_dumps(doc, JSON_COMPACT))) {
        json_decref(doc);
        return log_error_errno(-ENOMEM, "encoding the topology document");
    }
    json_decref(doc);
    r = dcs_store_set_topology(p->store, cfg->name, text,
                               c->topology ? c->topology_mod_revision : 0);
    if (r == -ECANCELED) {
        /* our view of the leader or topology key is behind: the next tick
         * sees the current one */
        return log_debug_errno(r, "topology not written: the view is behind");
    }
    if (r < 0) {
        return log_debug_errno(r, "writing %s: %s", p->paths->topology, p->store->error.message);
    }
    log_debug("topology version %lld written", (long long)version);
    return 1;
}

int publish_topology(Publisher *p, const PublishView *a)
{
    int r = publish(p, a, a->cluster);
    return r < 0 ? r : 0;
}

int publish_topology_watched(Publisher *p, const PublishView *a)
{
    if (a->state != HA_STATE_PRIMARY) {
        return 0;
    }
    /* The change that woke us is in the cache (applied before the wake).
     * The view must also hold what this agent last wrote, its topology
     * among it, or the write's compare fails: the same freshness rule as a
     * tick's view (lib/kvcache.h). */
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int r =
        cluster_watch_view(p->watch, etcd_client_get_revision(p->etcd), clock_monotonic_usec(), &c);
    if (r < 0) {
        return r;
    }
    if (!c->leader || strcmp(c->leader->name, a->config->name) != 0) {
        return 0;
    }
    r = publish(p, a, c);
    if (r > 0) {
        log_debug("another member's routing changed: topology published between loops");
    }
    return r < 0 ? r : 0;
}

void publish_mirror_leader_v2(Publisher *p, const PublishView *a, bool leading)
{
    if (!a->config->etcd3.mirror_leader_v2) {
        return;
    }
    EtcdError e = { 0 };
    const char *me = a->config->name;
    int r = leading ? etcd_v2_set(p->etcd, p->paths->leader, me, a->dcs->ttl, &e)
                    : etcd_v2_delete_if(p->etcd, p->paths->leader, me, &e);
    int result = r < 0 ? r : leading ? 1 : 2;
    if (result != p->v2_mirror_result) {
        if (r < 0) {
            log_warning("the v2 copy of the leader key (etcd3.mirror_leader_v2) failed: %s",
                        e.message);
        } else {
            log_info("the v2 copy of the leader key (etcd3.mirror_leader_v2) is %s",
                     leading ? "written" : "removed");
        }
    }
    p->v2_mirror_result = result;
}
