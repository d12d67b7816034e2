/* dbctl switchover, failover and flush: the `failover` key.
 *
 * switchover is a planned change of primary: it checks the candidate,
 * writes {"leader", "member"} (as patronictl does) and waits until the
 * leader key names the candidate. The agents do the work: the old primary
 * checkpoints, stops (its walsenders deliver every WAL record first) and
 * releases the key; the candidate promotes; the old primary follows it.
 * With --scheduled TIME it writes {"leader", "member", "scheduled_at"} and
 * returns: the leader acts at that time, `status` shows it until then and
 * `flush` deletes it.
 *
 * failover writes {"member"} without a leader, as patronictl does when the
 * leader is dead: the candidate takes the free leader key and promotes
 * (with a live leader, that leader hands over first). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "http.h"
#include "macro.h"
#include "prompt.h"
#include "verbarg.h"

/* The agents refuse it too (POST /switchover, /failover: 412). */
#define STANDBY_REFUSAL                                                                            \
    "the cluster is a standby cluster, which has no primary to hand over: its standby leader is "  \
    "replaced when it fails; promote the cluster with dbctl edit-config --set "                    \
    "standby_cluster=null"

/* How long dbctl waits for the candidate to take the leader key. */
#define SWITCHOVER_WAIT_USEC   (60 * 1000 * 1000ULL)
#define SWITCHOVER_POLL_USEC   (20 * 1000ULL)
#define FAILOVER_WAIT_SEC      30
#define FAILOVER_WAIT_MAX_SEC  3600
#define FAILOVER_POLL_USEC     (100 * 1000ULL)
#define SWITCHOVER_DEFAULT_LAG 1048576
#define SWITCHOVER_TIME_MAX    64  /* "2030-01-01T00:00:00+00:00" */
#define SWITCHOVER_MESSAGE_MAX 256 /* a refusal's reason */

static bool tag_true(const DcsMember *m, const char *tag)
{
    return m->tags && json_is_true(json_object_get(m->tags, tag));
}

/* Why m can never be the candidate (no --force overrides it), or NULL. */
static const char *hard_problem(const DcsCluster *c, const DcsMember *m)
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
    return NULL;
}

/* Whether the WAL m holds is further behind the leader's last position than
 * maximum_lag_on_failover (dcs_member_wal_lag: received counts, as in
 * Patroni); why in buf. An unknown position counts as too far: nothing says
 * it is close. */
static bool lag_problem(const DcsCluster *c, const DcsMember *m, char *buf, size_t size)
{
    int64_t max = c->config ? c->config->dcs.maximum_lag_on_failover : SWITCHOVER_DEFAULT_LAG;
    uint64_t lag = 0;
    if (dcs_member_wal_lag(c, m, &lag) < 0) {
        (void)snprintf(buf, size, "its position is unknown, so its lag cannot be checked");
        return true;
    }
    if (lag > (uint64_t)max) {
        (void)snprintf(buf, size,
                       "it lags %llu bytes behind the leader's last position "
                       "(maximum_lag_on_failover is %lld)",
                       (unsigned long long)lag, (long long)max);
        return true;
    }
    return false;
}

/* In synchronous_mode only a member the sync key names holds every
 * acknowledged transaction. NULL when m is one (or the mode is off). */
static const char *sync_problem(const DcsCluster *c, const DcsMember *m)
{
    return dcs_sync_problem(c, c->config && c->config->dcs.synchronous_mode, m->name)
               ? "it is not a synchronous standby (synchronous_mode is on): acknowledged "
                 "transactions could be lost"
               : NULL;
}

/* A switchover candidate: a running replica that may lead and is close
 * enough. Returns NULL or why not (static). */
static const char *candidate_problem(const DcsCluster *c, const DcsMember *m)
{
    const char *why = hard_problem(c, m);
    if (why) {
        return why;
    }
    /* what no catching up can change first (Patroni's API checks the sync
     * key before anything else): the lag may be a moment's */
    why = sync_problem(c, m);
    if (why) {
        return why;
    }
    char buf[SWITCHOVER_MESSAGE_MAX];
    uint64_t lag;
    /* an unknown position does not stop a switchover: the leader waits for
     * the candidate to receive everything before it lets go */
    if (dcs_member_wal_lag(c, m, &lag) >= 0 && lag_problem(c, m, buf, sizeof(buf))) {
        return "it lags more than maximum_lag_on_failover";
    }
    return NULL;
}

/* ISO 8601 as patronictl takes it (dcs_parse_time_full); a time without a
 * timezone is UTC. Fractions of a second are dropped. -EINVAL. */
static int parse_scheduled(const char *s, time_t *ret)
{
    double t;
    int r = dcs_parse_time_full(s, true, &t);
    if (r < 0) {
        return r;
    }
    *ret = (time_t)t;
    return 0;
}

/* Patroni's isoformat() of an aware UTC time: 2030-01-01T12:00:00+00:00. */
static void format_utc(time_t t, char *buf, size_t size)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%S+00:00", &tm) == 0) {
        (void)snprintf(buf, size, "%lld", (long long)t);
    }
}

/* ---- the failover key ---- */

/* Polls the leader key until it names candidate or wait_usec pass. */
static bool wait_for_leader(CtlTarget *t, const char *candidate, uint64_t wait_usec,
                            uint64_t poll_usec)
{
    for (uint64_t waited = 0; waited < wait_usec; waited += poll_usec) {
        EtcdKeyValue kv = { 0 };
        if (etcd_get(t->client, t->paths.leader, &kv, NULL) >= 0) {
            bool done = strcmp(kv.value, candidate) == 0;
            etcd_key_value_done(&kv);
            if (done) {
                return true;
            }
        }
        struct timespec ts = { .tv_sec = (time_t)(poll_usec / 1000000),
                               .tv_nsec = (long)(poll_usec % 1000000) * 1000 };
        nanosleep(&ts, NULL);
    }
    return false;
}

/* ---- switchover ---- */

static int schedule_switchover(CtlTarget *t, const DcsCluster *c, const char *from,
                               const char *candidate, time_t at)
{
    char when[SWITCHOVER_TIME_MAX];
    format_utc(at, when, sizeof(when));
    if (!ctl_confirm("Switch over from \"%s\" to \"%s\" at %s?", from, candidate, when)) {
        fprintf(stderr, "dbctl switchover: not confirmed (use --force)\n");
        return 1;
    }
    DcsStore store = ctl_store(t);
    int r = dcs_store_set_failover_unchanged(&store, from, candidate, when, c->revision);
    if (r == -ECANCELED) {
        fprintf(stderr, "dbctl switchover: the failover key changed meanwhile; nothing written\n");
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "dbctl switchover: writing the failover key: %s\n",
                r == -ENOMEM ? "out of memory" : store.error.message);
        return 1;
    }
    printf("Switchover scheduled at %s from \"%s\" to \"%s\"\n", when, from, candidate);
    return 0;
}

int verb_switchover(int argc, char *argv[])
{
    static const struct option options[] = {
        { "primary", required_argument, NULL, 'p' },
        { "leader", required_argument, NULL, 'p' },
        { "candidate", required_argument, NULL, 'c' },
        { "scheduled", required_argument, NULL, 's' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    const char *want_leader = NULL, *want_candidate = NULL;
    time_t scheduled = 0;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "fh", options, NULL)) >= 0) {
        switch (opt) {
        case 'p':
            want_leader = optarg;
            break;
        case 'c':
            want_candidate = optarg;
            break;
        case 's':
            if (strcmp(optarg, "now") == 0) {
                scheduled = 0;
            } else if (parse_scheduled(optarg, &scheduled) < 0) {
                fprintf(stderr,
                        "dbctl switchover: --scheduled \"%s\" is not an ISO 8601 time such as "
                        "2030-01-01T12:00:00+01:00 (or now)\n",
                        optarg);
                return 2;
            }
            break;
        case 'f':
            arg_force = true;
            break;
        case 'h':
            ctl_verb_help("switchover");
            return 0;
        default:
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "dbctl switchover: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    const char *cluster = optind < argc ? argv[optind] : NULL;
    if (verbarg_check_cluster("switchover", cluster) < 0) {
        return 2;
    }
    if (scheduled != 0 && scheduled <= time(NULL)) {
        char when[SWITCHOVER_TIME_MAX];
        format_utc(scheduled, when, sizeof(when));
        fprintf(stderr, "dbctl switchover: the scheduled time %s is in the past\n", when);
        return 1;
    }

    CtlTarget t = { 0 };
    /* every cleanup variable before the first goto: a jump must not skip one */
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    _cleanup_free_ char *candidate = NULL, *from = NULL;
    const char *leader, *why;
    const DcsMember *cand;
    uint64_t t0;
    DcsStore store = { 0 };
    int ret = ctl_read_cluster("switchover", cluster, &t, &c);
    if (ret != 0) {
        goto done;
    }
    ret = 1;
    if (dcs_cluster_is_standby(c)) {
        fprintf(stderr, "dbctl switchover: %s\n", STANDBY_REFUSAL);
        goto done;
    }
    if (!c->leader) {
        fprintf(stderr, "dbctl switchover: cluster \"%s\" has no leader (use failover)\n", t.scope);
        goto done;
    }
    if (c->failover && c->failover->scheduled_at) {
        fprintf(stderr,
                "dbctl switchover: a switchover is already scheduled at %s (dbctl flush "
                "cancels it)\n",
                c->failover->scheduled_at);
        goto done;
    }
    if (scheduled != 0 && dcs_cluster_is_paused(c)) {
        fprintf(stderr, "dbctl switchover: cannot schedule a switchover while the cluster is "
                        "paused\n");
        goto done;
    }
    leader = c->leader->name;
    if (want_leader && strcmp(want_leader, leader) != 0) {
        fprintf(stderr, "dbctl switchover: \"%s\" is not the leader (\"%s\" is)\n", want_leader,
                leader);
        goto done;
    }
    cand = want_candidate ? dcs_cluster_get_member(c, want_candidate) : dcs_pick_candidate(c);
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
    if (scheduled != 0) {
        ret = schedule_switchover(&t, c, from, candidate, scheduled);
        goto done;
    }
    if (!ctl_confirm("Switch over from \"%s\" to \"%s\"?", from, candidate)) {
        fprintf(stderr, "dbctl switchover: not confirmed (use --force)\n");
        goto done;
    }
    t0 = clock_monotonic_usec();
    store = ctl_store(&t);
    if (dcs_store_set_failover(&store, from, candidate, NULL, NULL) < 0) {
        fprintf(stderr, "dbctl switchover: writing the failover key: %s\n", store.error.message);
        goto done;
    }
    if (wait_for_leader(&t, candidate, SWITCHOVER_WAIT_USEC, SWITCHOVER_POLL_USEC)) {
        printf("Switched over from \"%s\" to \"%s\" in %llu ms\n", from, candidate,
               (unsigned long long)(clock_monotonic_usec() - t0) / 1000);
        ret = 0;
        goto done;
    }
    fprintf(stderr, "dbctl switchover: \"%s\" did not take over within %llu s\n", candidate,
            (unsigned long long)(SWITCHOVER_WAIT_USEC / 1000000));
done:
    ctl_target_done(&t);
    return ret;
}

/* ---- failover ---- */

/* How long a paused leader's agent gets to answer GET /patroni. */
#define FAILOVER_LEADER_ANSWER_MS 2000L

/* Paused, nothing fences a primary whose agent is gone (docs/pause.md): a
 * failover then needs the leader's agent to answer as a running primary
 * (it hands over), else --force. NULL when it answers; else why not. */
static const char *paused_leader_problem(const DcsCluster *c, const Config *cfg, char *buf,
                                         size_t size)
{
    const DcsMember *lm = dcs_cluster_leader_member(c);
    if (!c->leader) {
        return "the cluster has no leader: a member whose agent stopped or died while paused may "
               "still run a primary that takes writes";
    }
    _cleanup_free_ char *base = lm ? ctl_api_base(lm->api_url) : NULL;
    CtlHttpReply r = { 0 };
    if (!base || ctl_http("GET", base, "/patroni", NULL, cfg, FAILOVER_LEADER_ANSWER_MS, &r) < 0 ||
        (r.status != 200 && r.status != 503)) {
        ctl_http_reply_done(&r);
        (void)snprintf(buf, size,
                       "leader \"%s\"'s agent does not answer: its PostgreSQL may still take "
                       "writes, and while paused nothing fences it",
                       c->leader->name);
        return buf;
    }
    ctl_http_reply_done(&r);
    return NULL;
}

int verb_failover(int argc, char *argv[])
{
    static const struct option options[] = {
        { "candidate", required_argument, NULL, 'c' },
        { "force", no_argument, NULL, 'f' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    const char *want = NULL;
    long timeout = FAILOVER_WAIT_SEC;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "fh", options, NULL)) >= 0) {
        switch (opt) {
        case 'c':
            want = optarg;
            break;
        case 'f':
            arg_force = true;
            break;
        case 't':
            if (!ctl_parse_long(optarg, 1, FAILOVER_WAIT_MAX_SEC, &timeout)) {
                fprintf(stderr, "dbctl failover: --timeout needs whole seconds between 1 and %d\n",
                        FAILOVER_WAIT_MAX_SEC);
                return 2;
            }
            break;
        case 'h':
            ctl_verb_help("failover");
            return 0;
        default:
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "dbctl failover: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    const char *cluster = optind < argc ? argv[optind] : NULL;
    if (verbarg_check_cluster("failover", cluster) < 0) {
        return 2;
    }
    if (!want || !*want) {
        fprintf(stderr, "dbctl failover: --candidate NAME is required\n");
        return 2;
    }

    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    _cleanup_free_ char *old_leader = NULL;
    const DcsMember *cand;
    const char *why;
    char lag_why[SWITCHOVER_MESSAGE_MAX];
    DcsStore store = { 0 };
    uint64_t t0;
    int64_t put_revision;
    int ret = ctl_read_cluster("failover", cluster, &t, &c);
    if (ret != 0) {
        goto done;
    }
    ret = 1;
    if (dcs_cluster_is_standby(c)) {
        fprintf(stderr, "dbctl failover: %s\n", STANDBY_REFUSAL);
        goto done;
    }
    cand = dcs_cluster_get_member(c, want);
    why = hard_problem(c, cand);
    if (why) {
        fprintf(stderr, "dbctl failover: cannot fail over to \"%s\": %s\n", want, why);
        goto done;
    }
    /* the sync key before the lag, as for a switchover candidate (Patroni's
     * API order): a member the key does not name is refused for that, not
     * for a position its member key shows a moment behind */
    why = sync_problem(c, cand);
    if (why && !arg_force) {
        fprintf(stderr,
                "dbctl failover: cannot fail over to \"%s\": %s; --force to fail over anyway\n",
                want, why);
        goto done;
    }
    if (why) {
        fprintf(stderr, "dbctl failover: warning: \"%s\": %s; failing over anyway (--force)\n",
                want, why);
    }
    if (lag_problem(c, cand, lag_why, sizeof(lag_why))) {
        if (!arg_force) {
            fprintf(stderr,
                    "dbctl failover: cannot fail over to \"%s\": %s; --force to fail over "
                    "anyway\n",
                    want, lag_why);
            goto done;
        }
        fprintf(stderr, "dbctl failover: warning: \"%s\": %s; failing over anyway (--force)\n",
                want, lag_why);
    }
    if (c->leader && !(old_leader = strdup(c->leader->name))) {
        goto done;
    }
    if (dcs_cluster_is_paused(c)) {
        char pbuf[SWITCHOVER_MESSAGE_MAX];
        why = paused_leader_problem(c, t.config, pbuf, sizeof(pbuf));
        if (why && !arg_force) {
            fprintf(stderr,
                    "dbctl failover: cluster \"%s\" is paused and %s; promoting \"%s\" would "
                    "make two primaries unless that server is down. Stop it, or start its agent, "
                    "or --force to fail over anyway\n",
                    t.scope, why, want);
            goto done;
        }
        if (why) {
            fprintf(stderr,
                    "dbctl failover: warning: %s; failing over anyway (--force): make sure that "
                    "server takes no writes\n",
                    why);
        }
    }
    if (!ctl_confirm("Fail over to \"%s\"%s%s%s?", want, old_leader ? " (\"" : "",
                     strempty(old_leader), old_leader ? "\" is the leader now)" : "")) {
        fprintf(stderr, "dbctl failover: not confirmed (use --force)\n");
        goto done;
    }
    if (c->failover && c->failover->scheduled_at) {
        printf("Replacing the switchover scheduled at %s\n", c->failover->scheduled_at);
    }
    t0 = clock_monotonic_usec();
    store = ctl_store(&t);
    if (dcs_store_set_failover(&store, NULL, want, NULL, &put_revision) < 0) {
        fprintf(stderr, "dbctl failover: writing the failover key: %s\n", store.error.message);
        goto done;
    }
    if (wait_for_leader(&t, want, (uint64_t)timeout * 1000000, FAILOVER_POLL_USEC)) {
        printf("Failed over to \"%s\" in %llu ms\n", want,
               (unsigned long long)(clock_monotonic_usec() - t0) / 1000);
        ret = 0;
        goto done;
    }
    /* A request nobody acts on would keep the other members from taking
     * over (they defer to the named candidate): take it back. */
    if (dcs_store_clear_failover(&store, put_revision) >= 0) {
        fprintf(stderr,
                "dbctl failover: \"%s\" did not take over within %ld s; the request was "
                "withdrawn\n",
                want, timeout);
    } else {
        fprintf(stderr, "dbctl failover: \"%s\" did not take over within %ld s\n", want, timeout);
    }
done:
    ctl_target_done(&t);
    return ret;
}

/* ---- flush ---- */

/* patronictl's `flush CLUSTER_NAME restart|switchover [MEMBER...]
 * [--role R]`; dbctl's CLUSTER and the target are optional: a lone word
 * that is neither target is CLUSTER, and the target is then switchover.
 * `restart` is ctl_flush_restart() (ctl/cmd_member.c). */
int verb_flush(int argc, char *argv[])
{
    char *words[66] = { NULL };
    const char *cluster = NULL, *role = NULL;
    int n_words = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
            arg_force = true;
        } else if ((strcmp(argv[i], "--role") == 0 || strcmp(argv[i], "-r") == 0) && i + 1 < argc) {
            role = argv[++i];
        } else if (strncmp(argv[i], "--role=", 7) == 0) {
            role = argv[i] + 7;
        } else if (argv[i][0] != '-' && n_words < (int)ELEMENTSOF(words)) {
            words[n_words++] = argv[i];
        } else {
            fprintf(stderr, "dbctl flush: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (role && strcmp(role, "primary") != 0 && strcmp(role, "replica") != 0 &&
        strcmp(role, "any") != 0) {
        fprintf(stderr, "dbctl flush: --role is primary, replica or any\n");
        return 2;
    }
    int first = 0; /* the target's index */
    if (n_words > 0 && strcmp(words[0], "switchover") != 0 && strcmp(words[0], "restart") != 0) {
        cluster = words[0];
        first = 1;
    }
    const char *target = first < n_words ? words[first] : "switchover";
    if (strcmp(target, "restart") == 0) {
        if (verbarg_check_cluster("flush", cluster) < 0) {
            return 2;
        }
        return ctl_flush_restart(cluster, n_words - first - 1, words + first + 1,
                                 role && strcmp(role, "any") != 0 ? role : NULL);
    }
    if (strcmp(target, "switchover") != 0 || n_words > first + 1) {
        fprintf(stderr, "dbctl flush: unexpected argument \"%s\"\n",
                strcmp(target, "switchover") != 0 ? target : words[first + 1]);
        return 2;
    }
    if (verbarg_check_cluster("flush", cluster) < 0) {
        return 2;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    DcsStore store = { 0 };
    int r;
    int ret = ctl_read_cluster("flush", cluster, &t, &c);
    if (ret != 0) {
        goto done;
    }
    ret = 1;
    if (!c->failover || !c->failover->scheduled_at) {
        fprintf(stderr, "dbctl flush: no scheduled switchover in cluster \"%s\"\n", t.scope);
        goto done;
    }
    if (!ctl_confirm("Cancel the switchover scheduled at %s?", c->failover->scheduled_at)) {
        fprintf(stderr, "dbctl flush: not confirmed (use --force)\n");
        goto done;
    }
    store = ctl_store(&t);
    r = dcs_store_clear_failover(&store, c->failover->mod_revision);
    if (r == -ECANCELED) {
        fprintf(stderr, "dbctl flush: the failover key changed meanwhile; nothing deleted\n");
        goto done;
    }
    if (r < 0) {
        fprintf(stderr, "dbctl flush: deleting the failover key: %s\n", store.error.message);
        goto done;
    }
    printf("Cancelled the switchover scheduled at %s\n", c->failover->scheduled_at);
    ret = 0;
done:
    ctl_target_done(&t);
    return ret;
}
