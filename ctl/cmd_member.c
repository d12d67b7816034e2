/* dbctl restart, reinit, reload and flush restart: each acts on members
 * through their agents' REST API (POST /restart, /reinitialize, /reload,
 * DELETE /restart), as patronictl does, with restapi.authentication from
 * -c CONFIG. Replicas are restarted before the leader, so a cluster-wide
 * restart keeps one writable primary for as long as possible. Member names
 * may follow the cluster's name, as patronictl's arguments do. A restart
 * --scheduled at a time is kept by each agent until then (202). */
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
#include "http.h"
#include "macro.h"
#include "prompt.h"

/* A restart waits for PostgreSQL to come back (the agent answers then). */
#define MEMBER_RESTART_TIMEOUT_MS 120000L
#define MEMBER_CALL_TIMEOUT_MS    10000L
#define MEMBER_MESSAGE_MAX        512
#define MEMBER_TIME_MAX           64 /* "2030-01-01T12:00:00+00:00" */
/* dbctl reinit --wait: how long, and how often the member key is read. */
#define REINIT_WAIT_USEC (600 * 1000 * 1000ULL)
#define REINIT_POLL_USEC (500 * 1000ULL)

static bool is_leader(const DcsCluster *c, const DcsMember *m)
{
    return c->leader && strcmp(c->leader->name, m->name) == 0;
}

/* The members named in argv[first..] (all when none), replicas first.
 * Returns the count, or -ENOENT after naming an unknown member. */
static int select_members(const char *verb, const DcsCluster *c, int argc, char *argv[],
                          const DcsMember **out, size_t max)
{
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) { /* replicas, then the leader */
        for (size_t i = 0; i < c->n_members && n < max; i++) {
            const DcsMember *m = &c->members[i];
            bool wanted = argc == 0;
            for (int k = 0; k < argc && !wanted; k++) {
                wanted = strcmp(argv[k], m->name) == 0;
            }
            if (wanted && is_leader(c, m) == (pass == 1)) {
                out[n++] = m;
            }
        }
    }
    for (int k = 0; k < argc; k++) {
        if (!dcs_cluster_get_member(c, argv[k])) {
            fprintf(stderr, "dbctl %s: \"%s\" is not a member of the cluster\n", verb, argv[k]);
            return -ENOENT;
        }
    }
    return (int)n;
}

/* patronictl's `restart CLUSTER_NAME [MEMBER...]`: the first name is the
 * cluster's when it is the scope. A lone name that is both the scope and a
 * member's name is the member (acting on one member rather than on all). */
static bool names_cluster(const DcsCluster *c, const char *scope, int argc, char *argv[])
{
    if (argc == 0 || strcmp(argv[0], scope) != 0) {
        return false;
    }
    return argc > 1 || !dcs_cluster_get_member(c, argv[0]);
}

/* One REST call; prints "MEMBER: message". Returns the HTTP status (0: no
 * answer). */
static long call_member(const char *method, const DcsMember *m, const char *path,
                        const json_t *body, const Config *cfg, long timeout_ms, char *msg,
                        size_t msgsize)
{
    _cleanup_free_ char *base = ctl_api_base(m->api_url);
    if (!base) {
        (void)snprintf(msg, msgsize, "no REST API address in its member key");
        return 0;
    }
    CtlHttpReply r;
    int k = ctl_http(method, base, path, body, cfg, timeout_ms, &r);
    if (k == -ENOMEM) {
        (void)snprintf(msg, msgsize, "out of memory");
        return 0;
    }
    ctl_http_message(&r, msg, msgsize);
    long status = r.status;
    ctl_http_reply_done(&r);
    return status;
}

/* patronictl restart's options that go into the request. */
typedef struct RestartOptions {
    const char *scheduled; /* NULL: now */
    const char *pg_version;
    const char *timeout;
    bool any;
} RestartOptions;

/* patronictl's parse_scheduled(), "now" is none; a time without a timezone
 * is UTC here, as for `dbctl switchover --scheduled` (patronictl: the local
 * zone). Returns 0 and the time to send (NULL for now), or -EINVAL. */
static int parse_scheduled(const char *s, char *buf, size_t size, const char **ret)
{
    double at;
    if (!s || strcmp(s, "now") == 0) {
        *ret = NULL;
        return 0;
    }
    if (dcs_parse_time_full(s, false, &at) == 0) {
        *ret = s; /* the agent keeps the zone it was given in, as Patroni's isoformat() */
        return 0;
    }
    if (dcs_parse_time_full(s, true, &at) < 0) {
        return -EINVAL;
    }
    time_t t = (time_t)at;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%S+00:00", &tm) == 0) {
        return -EINVAL;
    }
    *ret = buf;
    return 0;
}

/* POST /restart with patronictl's body; with --force a scheduled restart
 * the member has is deleted first, as patronictl does. */
static long restart_member(const DcsMember *m, const RestartOptions *ro, json_t *body,
                           const Config *cfg, char *msg, size_t msgsize)
{
    if (ro->pg_version) {
        (void)json_object_set_new(body, "postgres_version", json_string(ro->pg_version));
    }
    if (ro->scheduled) {
        (void)json_object_set_new(body, "schedule", json_string(ro->scheduled));
    }
    if (ro->timeout) {
        (void)json_object_set_new(body, "timeout", json_string(ro->timeout));
    }
    if (ro->scheduled && arg_force && m->data && json_object_get(m->data, "scheduled_restart")) {
        long st =
            call_member("DELETE", m, "/restart", NULL, cfg, MEMBER_CALL_TIMEOUT_MS, msg, msgsize);
        if (st >= 400 && st != 404) {
            fprintf(stderr, "dbctl restart: %s: flush scheduled restart: %s\n", m->name, msg);
        }
    }
    return call_member("POST", m, "/restart", body, cfg,
                       ro->scheduled ? MEMBER_CALL_TIMEOUT_MS : MEMBER_RESTART_TIMEOUT_MS, msg,
                       msgsize);
}

/* An index below n, at random (restart --any). */
static size_t rand_member(size_t n)
{
    srand((unsigned)(clock_monotonic_usec() ^ (uint64_t)getpid()));
    return (size_t)rand() % n;
}

typedef enum MemberVerb { MV_RESTART, MV_REINIT, MV_RELOAD } MemberVerb;

static int run(MemberVerb mv, int argc, char *argv[])
{
    static const char *const names[] = { "restart", "reinit", "reload" };
    const char *verb = names[mv];
    static const struct option options[] = {
        { "pending", no_argument, NULL, 'p' },
        { "role", required_argument, NULL, 'r' },
        { "force", no_argument, NULL, 'f' },
        { "wait", no_argument, NULL, 'w' },
        { "scheduled", required_argument, NULL, 's' },
        { "pg-version", required_argument, NULL, 'V' },
        { "timeout", required_argument, NULL, 't' },
        { "any", no_argument, NULL, 'a' },
        {},
    };
    bool pending = false, wait = false;
    const char *role = NULL;
    RestartOptions ro = { 0 };
    char when[MEMBER_TIME_MAX];
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "f", options, NULL)) >= 0) {
        switch (opt) {
        case 'p':
            pending = true;
            break;
        case 'r':
            if (strcmp(optarg, "primary") != 0 && strcmp(optarg, "replica") != 0 &&
                strcmp(optarg, "any") != 0) {
                fprintf(stderr, "dbctl %s: --role is primary, replica or any\n", verb);
                return 2;
            }
            role = strcmp(optarg, "any") == 0 ? NULL : optarg;
            break;
        case 'f':
            arg_force = true;
            break;
        case 'w':
            wait = true;
            break;
        case 's':
            if (parse_scheduled(optarg, when, sizeof(when), &ro.scheduled) < 0) {
                fprintf(stderr,
                        "dbctl %s: Unable to parse scheduled timestamp (%s). It should be in an "
                        "unambiguous format (e.g. ISO 8601)\n",
                        verb, optarg);
                return 2;
            }
            break;
        case 'V':
            ro.pg_version = optarg;
            break;
        case 't':
            ro.timeout = optarg;
            break;
        case 'a':
            ro.any = true;
            break;
        default:
            return 2;
        }
    }
    bool restart_opts = pending || role || ro.scheduled || ro.pg_version || ro.timeout || ro.any;
    if ((mv != MV_RESTART && restart_opts) || (mv != MV_REINIT && wait)) {
        fprintf(stderr, "dbctl %s: option not supported by this command\n", verb);
        return 2;
    }
    if (mv == MV_REINIT && (argc - optind < 1 || argc - optind > 2)) {
        fprintf(stderr, "dbctl reinit: name exactly one member\n");
        return 2;
    }

    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int ret = ctl_read_cluster(verb, NULL, &t, &c);
    if (ret != 0) {
        ctl_target_done(&t);
        return ret;
    }
    int first = optind;
    if (names_cluster(c, t.scope, argc - first, argv + first)) {
        first++;
    }
    if (mv == MV_REINIT && argc - first != 1) {
        fprintf(stderr, "dbctl reinit: name exactly one member\n");
        ctl_target_done(&t);
        return 2;
    }
    const DcsMember *sel[64];
    int n = select_members(verb, c, argc - first, argv + first, sel, ELEMENTSOF(sel));
    if (n < 0) {
        ctl_target_done(&t);
        return 1;
    }
    /* restart --pending / --role: only members that match, as patronictl */
    size_t kept = 0;
    for (int i = 0; i < n; i++) {
        bool primary = is_leader(c, sel[i]);
        if ((pending && !sel[i]->pending_restart) ||
            (role && (strcmp(role, "primary") == 0) != primary)) {
            continue;
        }
        sel[kept++] = sel[i];
    }
    if (kept == 0) {
        printf("No member to %s\n", verb);
        ctl_target_done(&t);
        return 0;
    }
    if (ro.scheduled && dcs_cluster_is_paused(c)) {
        fprintf(stderr, "dbctl %s: Can't schedule restart in the paused state\n", verb);
        ctl_target_done(&t);
        return 1;
    }
    if (ro.any) { /* patronictl's --any: one of them, at random */
        sel[0] = sel[(size_t)rand_member(kept)];
        kept = 1;
    }
    char names_list[512] = "";
    for (size_t i = 0; i < kept; i++) {
        size_t used = strlen(names_list);
        (void)snprintf(names_list + used, sizeof(names_list) - used, "%s%s", i ? ", " : "",
                       sel[i]->name);
    }
    if (ro.scheduled ? !ctl_confirm("Schedule a restart of %s of cluster \"%s\" at %s?", names_list,
                                    t.scope, ro.scheduled)
                     : !ctl_confirm("%s %s of cluster \"%s\"?",
                                    mv == MV_RESTART  ? "Restart"
                                    : mv == MV_REINIT ? "Reinitialize"
                                                      : "Reload",
                                    names_list, t.scope)) {
        fprintf(stderr, "dbctl %s: not confirmed (use --force)\n", verb);
        ctl_target_done(&t);
        return 1;
    }

    ret = 0;
    for (size_t i = 0; i < kept; i++) {
        char msg[MEMBER_MESSAGE_MAX];
        json_auto_t *body = json_object();
        long status;
        if (!body) {
            ret = 1;
            break;
        }
        if (mv == MV_RESTART) {
            if (pending) {
                (void)json_object_set_new(body, "restart_pending", json_true());
            }
            status = restart_member(sel[i], &ro, body, t.config, msg, sizeof(msg));
        } else if (mv == MV_REINIT) {
            (void)json_object_set_new(body, "force", json_boolean(arg_force));
            status = call_member("POST", sel[i], "/reinitialize", body, t.config,
                                 MEMBER_CALL_TIMEOUT_MS, msg, sizeof(msg));
        } else {
            status = call_member("POST", sel[i], "/reload", NULL, t.config, MEMBER_CALL_TIMEOUT_MS,
                                 msg, sizeof(msg));
        }
        bool ok = status >= 200 && status < 300;
        if (ok) {
            printf("%s: %s\n", sel[i]->name, msg);
        } else {
            fprintf(stderr, "dbctl %s: %s: %s%s\n", verb, sel[i]->name, msg,
                    status == 401
                        ? " (set ctl.authentication or restapi.authentication in the config)"
                        : "");
            ret = 1;
        }
    }
    if (ret == 0 && mv == MV_REINIT && wait) {
        /* the member key says "running" again once the clone streams */
        const char *name = sel[0]->name;
        uint64_t deadline = clock_monotonic_usec() + REINIT_WAIT_USEC;
        bool seen_down = false, done = false;
        while (!done && clock_monotonic_usec() < deadline) {
            (void)usleep((useconds_t)REINIT_POLL_USEC);
            _cleanup_(dcs_cluster_freep) DcsCluster *now = NULL;
            EtcdError e = { 0 };
            if (dcs_cluster_read(t.client, &t.paths, &now, &e) < 0) {
                continue;
            }
            const DcsMember *m = dcs_cluster_get_member(now, name);
            bool running = m && m->state && strcmp(m->state, "running") == 0;
            seen_down |= !running;
            done = seen_down && running;
        }
        if (done) {
            printf("%s: reinitialized and running\n", name);
        } else {
            fprintf(stderr, "dbctl reinit: %s did not come back within %llu s\n", name,
                    (unsigned long long)(REINIT_WAIT_USEC / 1000000));
            ret = 1;
        }
    }
    ctl_target_done(&t);
    return ret;
}

int verb_restart(int argc, char *argv[])
{
    return run(MV_RESTART, argc, argv);
}

int verb_reinit(int argc, char *argv[])
{
    return run(MV_REINIT, argc, argv);
}

int verb_reload(int argc, char *argv[])
{
    return run(MV_RELOAD, argc, argv);
}

int ctl_flush_restart(const char *cluster, int argc, char *argv[], const char *role)
{
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int ret = ctl_read_cluster("flush", cluster, &t, &c);
    if (ret != 0) {
        ctl_target_done(&t);
        return ret;
    }
    const DcsMember *sel[64];
    int n = select_members("flush", c, argc, argv, sel, ELEMENTSOF(sel));
    if (n < 0) {
        ctl_target_done(&t);
        return 1;
    }
    /* patronictl's flush CLUSTER restart: members with a scheduled restart
     * get DELETE /restart, the others are named */
    size_t kept = 0;
    char names_list[512] = "";
    for (int i = 0; i < n; i++) {
        bool primary = is_leader(c, sel[i]);
        if (role && (strcmp(role, "primary") == 0) != primary) {
            continue;
        }
        if (!sel[i]->data || !json_object_get(sel[i]->data, "scheduled_restart")) {
            printf("No scheduled restart for member %s\n", sel[i]->name);
            continue;
        }
        size_t used = strlen(names_list);
        (void)snprintf(names_list + used, sizeof(names_list) - used, "%s%s", kept ? ", " : "",
                       sel[i]->name);
        sel[kept++] = sel[i];
    }
    if (kept > 0 && !ctl_confirm("Cancel the scheduled restart of %s of cluster \"%s\"?",
                                 names_list, t.scope)) {
        fprintf(stderr, "dbctl flush: not confirmed (use --force)\n");
        ctl_target_done(&t);
        return 1;
    }
    for (size_t i = 0; i < kept; i++) {
        char msg[MEMBER_MESSAGE_MAX];
        long status = call_member("DELETE", sel[i], "/restart", NULL, t.config,
                                  MEMBER_CALL_TIMEOUT_MS, msg, sizeof(msg));
        if (status >= 200 && status < 300) {
            printf("%s: %s\n", sel[i]->name, msg);
        } else {
            fprintf(stderr, "dbctl flush: %s: %s%s\n", sel[i]->name, msg,
                    status == 401
                        ? " (set ctl.authentication or restapi.authentication in the config)"
                        : "");
            ret = 1;
        }
    }
    ctl_target_done(&t);
    return ret;
}
