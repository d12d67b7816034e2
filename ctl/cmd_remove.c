/* dbctl remove: delete every key of a cluster from etcd (patronictl
 * remove). The cluster name must be typed twice over, in effect: as the
 * argument, matching the scope, and on a terminal once more together with
 * "Yes I am aware". A cluster with a leader is refused unless --force: its
 * agents would only write their keys again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "macro.h"
#include "prompt.h"

#define REMOVE_ANSWER_MAX 256
#define REMOVE_AWARE      "Yes I am aware"

static bool confirm_removal(const char *scope)
{
    if (!ctl_is_interactive()) {
        return arg_force;
    }
    char answer[REMOVE_ANSWER_MAX];
    if (ctl_ask("Please confirm the cluster name to remove: ", answer, sizeof(answer)) < 0 ||
        strcmp(answer, scope) != 0) {
        return false;
    }
    printf("You are about to remove all information of cluster \"%s\" from etcd.\n", scope);
    return ctl_ask("Please type \"" REMOVE_AWARE "\" to continue: ", answer, sizeof(answer)) >= 0 &&
           strcmp(answer, REMOVE_AWARE) == 0;
}

int verb_remove(int argc, char *argv[])
{
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
            arg_force = true;
        } else if (argv[i][0] == '-' || name) {
            fprintf(stderr, "dbctl remove: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        fprintf(stderr, "dbctl remove: give the name of the cluster to remove\n");
        return 2;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    DcsStore store = { 0 };
    int64_t removed = 0;
    /* with neither --scope nor -c, the argument names the cluster */
    int ret = ctl_read_cluster("remove", !arg_scope && !arg_config ? name : NULL, &t, &c);
    if (ret != 0) {
        goto done;
    }
    if (strcmp(t.scope, name) != 0) {
        fprintf(stderr, "dbctl remove: \"%s\" is not the cluster's name (the scope is \"%s\")\n",
                name, t.scope);
        ret = 2;
        goto done;
    }
    ret = 1;
    if (c->leader && !arg_force) {
        fprintf(stderr,
                "dbctl remove: cluster \"%s\" has a leader (\"%s\"): stop its agents first, or "
                "use --force\n",
                name, c->leader->name);
        goto done;
    }
    if (!confirm_removal(name)) {
        fprintf(stderr, "dbctl remove: not confirmed%s\n",
                ctl_is_interactive() ? "" : " (use --force)");
        goto done;
    }
    store = ctl_store(&t);
    if (dcs_store_remove_cluster(&store, &removed) < 0) {
        fprintf(stderr, "dbctl remove: deleting the keys of cluster \"%s\": %s\n", name,
                store.error.message);
        goto done;
    }
    printf("Removed %lld keys of cluster \"%s\"\n", (long long)removed, name);
    if (c->n_members > 0) {
        fprintf(stderr,
                "dbctl remove: warning: %zu members were registered; agents that still run "
                "write their keys again\n",
                c->n_members);
    }
    ret = 0;
done:
    ctl_target_done(&t);
    return ret;
}
