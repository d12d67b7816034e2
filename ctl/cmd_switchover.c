/* dbctl switchover: a planned change of primary. Checks the candidate in the
 * cluster view, writes the `failover` key ({"leader", "member"}, as
 * patronictl does) and waits until the leader key names the candidate. The
 * agents do the work: the old primary checkpoints, stops (its walsenders
 * deliver every WAL record first) and releases the key; the candidate
 * promotes; the old primary follows it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "macro.h"

/* How long dbctl waits for the candidate to take the leader key. */
#define SWITCHOVER_WAIT_USEC (60 * 1000 * 1000ULL)
#define SWITCHOVER_POLL_USEC (20 * 1000ULL)

static bool tag_true(const DcsMember *m, const char *tag)
{
    return m->tags && json_is_true(json_object_get(m->tags, tag));
}

/* A candidate must be a streaming (or running) replica that may lead and is
 * within maximum_lag_on_failover. Returns NULL or why not (static). */
static const char *candidate_problem(const DcsCluster *c, const DcsMember *m)
{
    if (!m) {
        return "no such member";
    }
    if (c->leader && strcmp(c->leader->name, m->name) == 0) {
        return "it is the current leader";
    }
    if (!m->state || strcmp(m->state, "running") != 0) {
        return "it is not running";
    }
    if (tag_true(m, "nofailover")) {
        return "it is tagged nofailover";
    }
    uint64_t lag = 0;
    int64_t max = c->config ? c->config->dcs.maximum_lag_on_failover : 1048576;
    if (dcs_member_lag(c, m, &lag) >= 0 && lag > (uint64_t)max) {
        return "it lags more than maximum_lag_on_failover";
    }
    return NULL;
}

/* The most advanced eligible replica. */
static const DcsMember *pick_candidate(const DcsCluster *c)
{
    const DcsMember *best = NULL;
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        if (candidate_problem(c, m)) {
            continue;
        }
        if (!best || (m->has_xlog_location && m->xlog_location > best->xlog_location)) {
            best = m;
        }
    }
    return best;
}

static bool confirm(const char *leader, const char *candidate)
{
    if (arg_force || !isatty(STDIN_FILENO)) {
        return arg_force;
    }
    printf("Switch over from \"%s\" to \"%s\"? [y/N] ", leader, candidate);
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof(line), stdin)) {
        return false;
    }
    return line[0] == 'y' || line[0] == 'Y';
}

int verb_switchover(int argc, char *argv[])
{
    static const struct option options[] = {
        { "primary", required_argument, NULL, 'p' },
        { "leader", required_argument, NULL, 'p' },
        { "candidate", required_argument, NULL, 'c' },
        { "scheduled", required_argument, NULL, 's' },
        { "force", no_argument, NULL, 'f' },
        {},
    };
    const char *want_leader = NULL, *want_candidate = NULL;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "f", options, NULL)) >= 0) {
        switch (opt) {
        case 'p':
            want_leader = optarg;
            break;
        case 'c':
            want_candidate = optarg;
            break;
        case 's':
            if (strcmp(optarg, "now") != 0) {
                fprintf(stderr, "dbctl switchover: --scheduled takes only \"now\" in this "
                                "version\n");
                return 2;
            }
            break;
        case 'f':
            arg_force = true;
            break;
        default:
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dbctl switchover: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }

    CtlTarget t = { 0 };
    int r = ctl_target_open("switchover", NULL, NULL, &t);
    if (r < 0) {
        return r == -EINVAL ? 2 : 1;
    }
    int ret = 1;
    /* every cleanup variable before the first goto: a jump must not skip one */
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    _cleanup_free_ char *candidate = NULL, *from = NULL, *value = NULL;
    const char *leader, *why;
    const DcsMember *cand;
    uint64_t t0;
    EtcdError e = { 0 };
    r = dcs_cluster_read(t.client, &t.paths, &c, &e);
    if (r < 0) {
        fprintf(stderr, "dbctl switchover: cannot read cluster \"%s\": %s\n", t.scope, e.message);
        goto done;
    }
    if (!c->leader) {
        fprintf(stderr, "dbctl switchover: cluster \"%s\" has no leader (use failover)\n", t.scope);
        goto done;
    }
    leader = c->leader->name;
    if (want_leader && strcmp(want_leader, leader) != 0) {
        fprintf(stderr, "dbctl switchover: \"%s\" is not the leader (\"%s\" is)\n", want_leader,
                leader);
        goto done;
    }
    cand = want_candidate ? dcs_cluster_get_member(c, want_candidate) : pick_candidate(c);
    if (!cand) {
        fprintf(stderr, "dbctl switchover: %s\n",
                want_candidate ? "no such member" : "no eligible candidate");
        goto done;
    }
    why = candidate_problem(c, cand);
    if (why) {
        fprintf(stderr, "dbctl switchover: cannot switch over to \"%s\": %s\n", cand->name, why);
        goto done;
    }
    candidate = strdup(cand->name);
    from = strdup(leader);
    if (!candidate || !from) {
        goto done;
    }
    if (!confirm(from, candidate)) {
        fprintf(stderr, "dbctl switchover: not confirmed (use --force)\n");
        goto done;
    }
    if (dcs_failover_encode(from, candidate, NULL, &value) < 0) {
        goto done;
    }
    t0 = clock_monotonic_usec();
    r = etcd_put(t.client, t.paths.failover, value, strlen(value), NULL, NULL, &e);
    if (r < 0) {
        fprintf(stderr, "dbctl switchover: writing the failover key: %s\n", e.message);
        goto done;
    }
    /* bounded: SWITCHOVER_WAIT_USEC in SWITCHOVER_POLL_USEC steps */
    for (uint64_t waited = 0; waited < SWITCHOVER_WAIT_USEC; waited += SWITCHOVER_POLL_USEC) {
        EtcdKeyValue kv = { 0 };
        if (etcd_get(t.client, t.paths.leader, &kv, NULL) >= 0) {
            bool done = strcmp(kv.value, candidate) == 0;
            etcd_key_value_done(&kv);
            if (done) {
                printf("Switched over from \"%s\" to \"%s\" in %llu ms\n", from, candidate,
                       (unsigned long long)(clock_monotonic_usec() - t0) / 1000);
                ret = 0;
                goto done;
            }
        }
        struct timespec ts = { .tv_nsec = (long)SWITCHOVER_POLL_USEC * 1000 };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "dbctl switchover: \"%s\" did not take over within %llu s\n", candidate,
            (unsigned long long)(SWITCHOVER_WAIT_USEC / 1000000));
done:
    ctl_target_done(&t);
    return ret;
}
