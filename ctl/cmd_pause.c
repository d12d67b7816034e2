/* dbctl pause / resume: maintenance mode, the `pause` field of the config
 * key (as patronictl sets it). While paused no agent stops, restarts,
 * promotes or demotes PostgreSQL by itself, not even on its own shutdown or
 * death (docs/pause.md). --wait waits until every member reports the new
 * mode. resume refuses a cluster with no leader unless --force: a primary
 * left without its agent while paused runs unfenced. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "macro.h"
#include "verbarg.h"

#define PAUSE_WAIT_USEC (60 * 1000 * 1000ULL)
#define PAUSE_POLL_USEC (100 * 1000ULL)

static bool members_report(const DcsCluster *c, bool paused)
{
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i].pause != paused) {
            return false;
        }
    }
    return true;
}

static int set_pause(const char *verb, bool paused, int argc, char *argv[])
{
    bool wait = false;
    const char *cluster = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else if (strcmp(argv[i], "--force") == 0) {
            arg_force = true;
        } else if (argv[i][0] != '-' && !cluster) {
            cluster = argv[i]; /* patronictl's CLUSTER_NAME */
        } else {
            fprintf(stderr, "dbctl %s: unexpected argument \"%s\"\n", verb, argv[i]);
            return 2;
        }
    }
    if (verbarg_check_cluster(verb, cluster) < 0) {
        return 2;
    }
    CtlTarget t = { 0 };
    int r = ctl_target_open(verb, NULL, cluster, &t);
    if (r < 0) {
        return r == -EINVAL ? 2 : 1;
    }
    int ret = 1;
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    _cleanup_free_ char *value = NULL;
    json_t *cfg = NULL;
    EtcdError e = { 0 };
    DcsStore store = { 0 };
    r = dcs_cluster_read(t.client, &t.paths, &c, &e);
    if (r < 0) {
        fprintf(stderr, "dbctl %s: cannot read cluster \"%s\": %s\n", verb, t.scope, e.message);
        goto done;
    }
    if (!c->config || !c->config->data) {
        fprintf(stderr, "dbctl %s: cluster \"%s\" has no config key yet\n", verb, t.scope);
        goto done;
    }
    if (dcs_cluster_is_paused(c) == paused) {
        printf("Cluster \"%s\" is %s\n", t.scope, paused ? "already paused" : "not paused");
        ret = 0;
        goto done;
    }
    if (!paused && !c->leader && !arg_force) {
        fprintf(
            stderr,
            "dbctl %s: cluster \"%s\" has no leader. An agent stopped or killed while the "
            "cluster was paused leaves its PostgreSQL running, unfenced; resumed now, a replica "
            "would be promoted while that server may still take writes. Start the agents (a "
            "running primary takes its leader key back) until `dbctl list` shows a leader, "
            "or give --force\n",
            verb, t.scope);
        goto done;
    }
    cfg = json_deep_copy(c->config->data);
    if (!cfg || json_object_set_new(cfg, "pause", json_boolean(paused)) < 0 ||
        !(value = json_dumps(cfg, JSON_COMPACT))) {
        goto done;
    }
    store = ctl_store(&t);
    r = dcs_store_set_config(&store, value, c->config->mod_revision);
    if (r < 0) {
        fprintf(stderr, "dbctl %s: %s\n", verb,
                r == -ECANCELED ? "the config changed meanwhile; try again" : store.error.message);
        goto done;
    }
    printf("Cluster \"%s\" %s\n", t.scope, paused ? "paused" : "resumed");
    ret = 0;
    /* bounded: PAUSE_WAIT_USEC in PAUSE_POLL_USEC steps */
    for (uint64_t waited = 0; wait && waited < PAUSE_WAIT_USEC; waited += PAUSE_POLL_USEC) {
        DcsCluster *now = NULL;
        bool all =
            dcs_cluster_read(t.client, &t.paths, &now, NULL) >= 0 && members_report(now, paused);
        dcs_cluster_free(now);
        if (all) {
            printf("Every member reports %s\n", paused ? "paused" : "resumed");
            goto done;
        }
        struct timespec ts = { .tv_nsec = (long)PAUSE_POLL_USEC * 1000 };
        nanosleep(&ts, NULL);
    }
    if (wait) {
        fprintf(stderr, "dbctl %s: not every member reported it within %llu s\n", verb,
                (unsigned long long)(PAUSE_WAIT_USEC / 1000000));
        ret = 1;
    }
done:
    json_decref(cfg);
    ctl_target_done(&t);
    return ret;
}

int verb_pause(int argc, char *argv[])
{
    return set_pause("pause", true, argc, argv);
}

int verb_resume(int argc, char *argv[])
{
    return set_pause("resume", false, argc, argv);
}
