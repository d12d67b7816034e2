/* Performs the HA decision's actions. Each action is one function that
 * does its I/O (etcd, libpq, files, a job) by a deadline, logs what it did
 * or why it failed, and returns 0 or a negative errno; it must be safe to
 * run again after a failure (the same decision may come back next tick). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "agent.h"
#include "clock.h"
#include "cmdsplit.h"
#include "slots.h"
#include "upstream.h"

#define EXEC_SQL_DEADLINE_USEC (5 * 1000 * 1000ULL)

static int etcd_fail(int r, const char *what, const EtcdError *e)
{
    return log_warning_errno(r, "%s: %s", what, e->message[0] ? e->message : "failed");
}

/* ---- etcd ---- */

/* Create-if-absent `key` = value, with our lease when leased. Returns 0,
 * -ECANCELED when the key exists (held by *ret_holder, owned, optional). */
static int create_key(Agent *a, const char *key, const char *value, bool leased, char **ret_holder)
{
    int r = dcs_store_create(&a->store, key, value, leased ? lease_id(&a->lease) : 0, ret_holder);
    if (r < 0 && r != -ECANCELED) {
        return etcd_fail(r, key, &a->store.error);
    }
    return r;
}

/* The result of one of the store's plain writes, logged when it failed. */
static int stored(Agent *a, int r, const char *key)
{
    return r < 0 ? etcd_fail(r, key, &a->store.error) : 0;
}

static int take_leader(Agent *a)
{
    if (lease_id(&a->lease) == 0) {
        return log_warning_errno(-ENOLINK, "no etcd lease: cannot take the leader key");
    }
    _cleanup_free_ char *holder = NULL;
    int r = create_key(a, a->paths.leader, a->config->name, true, &holder);
    if (r == -ECANCELED) {
        if (holder && strcmp(holder, a->config->name) == 0) {
            return 0; /* ours already (same name, maybe an older lease) */
        }
        return log_info_errno(r, "the leader key is held by \"%s\"", strna(holder));
    }
    if (r < 0) {
        return r;
    }
    log_struct_id(LOG_LEVEL_NOTICE, "a1c5e7d2b8f34a6c9e0d1b2c3f4a5b6c", "acquired the leader key");
    return 0;
}

/* Compare-and-swap: the key still names us; put it again with our lease (a
 * restarted agent has a new lease). */
static int renew_leader(Agent *a)
{
    bool same_lease =
        a->cluster && a->cluster->leader && a->cluster->leader->lease == lease_id(&a->lease);
    if (same_lease) {
        /* the keepalive of our lease already renewed it */
        return 0;
    }
    int r = dcs_store_renew_leader(&a->store, a->config->name, lease_id(&a->lease));
    if (r == -ECANCELED) {
        return log_warning_errno(r, "the leader key no longer names us");
    }
    return r < 0 ? etcd_fail(r, "renewing the leader key", &a->store.error) : 0;
}

/* The result of taking or renewing the leader key, after refreshing its v2
 * copy when that worked. */
static int mirrored(Agent *a, int r)
{
    if (r >= 0) {
        agent_mirror_leader_v2(a, true);
    }
    return r;
}

/* ---- files and jobs ---- */

static int write_pwfile(Agent *a, char **ret_path)
{
    const char *pw = a->config->postgresql.superuser.password;
    if (!pw) {
        *ret_path = NULL;
        return 0;
    }
    _cleanup_free_ char *path = strdup(a->local.ctl.pwfile);
    _cleanup_free_ char *line = NULL;
    if (!path || asprintf(&line, "%s\n", pw) < 0) {
        return -ENOMEM;
    }
    int r = pgctl_write_file(path, line, strlen(line));
    explicit_bzero(line, strlen(line));
    if (r < 0) {
        return log_error_errno(r, "writing \"%s\": %m", path);
    }
    *ret_path = TAKE_PTR(path);
    return 0;
}

static int push_option(char ***v, size_t *k, const char *key, const char *value);
static char *find_in_path(const char *word);
static void resolve_command(char **v);

/* A configured command (SECTION NAME, e.g. "postgresql." "wal_e") split
 * as shlex splits it, its first word looked up in PATH: the number of
 * words in *ret_v, or a negative errno (logged; *ret_v freed). */
static int split_command(const char *section, const char *name, const char *cmd, char ***ret_v)
{
    char **v = NULL;
    int n = cmd ? cmdsplit(cmd, &v) : -EINVAL;
    if (n <= 0) {
        cmdsplit_free(v);
        *ret_v = NULL;
        return log_error_errno(n < 0 ? n : -EINVAL, "%s%s: cannot split \"%s\" into words (%m)",
                               section, name, cmd ? cmd : "");
    }
    resolve_command(v);
    *ret_v = v;
    return n;
}

/* Patroni's _custom_bootstrap(): the command, then --scope and --datadir
 * unless no_params, writing the data directory itself. */
char **agent_before_stop_argv(const Agent *a)
{
    const char *cmd = a->config->postgresql.before_stop;
    char **v = NULL;
    if (!cmd || split_command("postgresql.before_stop", "", cmd, &v) < 0) {
        return NULL;
    }
    log_info("running before_stop before stopping postgresql: %s", cmd);
    return v;
}

void agent_run_before_stop(Agent *a)
{
    char **before = agent_before_stop_argv(a);
    if (!before) {
        return;
    }
    int timeout = agent_before_stop_timeout(a);
    int r = jobs_run_sync(&a->jobs, before, timeout);
    cmdsplit_free(before);
    if (r == -ETIMEDOUT) {
        log_warning("before_stop killed after %d s: stopping postgresql now", timeout);
    } else if (r < 0) {
        log_info("before_stop failed (its outcome does not matter, as in Patroni)");
    }
}

int agent_before_stop_timeout(const Agent *a)
{
    uint64_t deadline = lease_deadline_usec(&a->lease), now = clock_monotonic_usec();
    if (!agent_view_leads(a) || deadline == 0) {
        return AGENT_BEFORE_STOP_TIMEOUT_SEC;
    }
    uint64_t left = deadline > now ? (deadline - now) / 1000000ULL : 0;
    return left < 1                               ? 1
           : left < AGENT_BEFORE_STOP_TIMEOUT_SEC ? (int)left
                                                  : AGENT_BEFORE_STOP_TIMEOUT_SEC;
}

static int run_custom_bootstrap(Agent *a, const ConfigBootstrapMethod *b)
{
    char **v = NULL;
    int n = split_command("bootstrap.", b->name, b->command, &v);
    if (n < 0) {
        return n;
    }
    size_t k = (size_t)n;
    if (!b->no_params && (push_option(&v, &k, "scope", a->config->scope) < 0 ||
                          push_option(&v, &k, "datadir", a->local.ctl.data_dir) < 0)) {
        cmdsplit_free(v);
        return log_error_errno(-ENOMEM, "bootstrap.%s: %m", b->name);
    }
    log_notice("bootstrapping the cluster with bootstrap.%s: %s", b->name, b->command);
    /* until its roles are set: its files as Patroni writes them */
    a->local.ctl.bootstrap_custom = b;
    int r = jobs_start(&a->jobs, JOB_INITDB, v, AGENT_BASEBACKUP_TIMEOUT_SEC);
    cmdsplit_free(v);
    return r;
}

static int run_initdb(Agent *a)
{
    if (a->config->bootstrap.custom) {
        return run_custom_bootstrap(a, a->config->bootstrap.custom);
    }
    _cleanup_free_ char *pwfile = NULL;
    int r = write_pwfile(a, &pwfile);
    if (r < 0) {
        return r;
    }
    PgArgv argv = { 0 };
    r = pgctl_argv_initdb(&a->local.ctl, pwfile, &argv);
    if (r >= 0) {
        r = jobs_start(&a->jobs, JOB_INITDB, argv.argv, AGENT_INITDB_TIMEOUT_SEC);
    }
    pgctl_argv_done(&argv);
    /* the file is removed when the job ends (agent/jobs.c) */
    return r;
}

/* Patroni's postgresql.pg_ctl_timeout: how long a start waits for the
 * server to accept connections (pg_ctl -t). When it passes, pg_ctl gives up
 * waiting but the server goes on starting; the loop sees it come up. */
static int start_timeout_sec(const Agent *a)
{
    return (int)a->config->postgresql.pg_ctl_timeout;
}

static int start_postgres(Agent *a)
{
    int r = pgctl_write_pgpass(&a->local.ctl);
    if (r < 0) {
        return log_error_errno(r, "writing the passfile \"%s\": %m", a->local.ctl.pgpass);
    }
    pid_t named = 0;
    r = pm_set_aside_stale(a->local.ctl.data_dir, &named);
    if (r > 0) {
        log_warning("%s/postmaster.pid named process %d, which is not our postmaster: renamed "
                    "to postmaster.pid.stale so that postgresql can start (it would refuse to "
                    "beside it); process %d is left alone",
                    a->local.ctl.data_dir, (int)named, (int)named);
    } else if (r < 0) {
        log_warning_errno(r, "setting the stale postmaster.pid aside: %m");
    }
    /* an operator's restart of the stopped server (ha_memory_before):
     * its timeout, and its job answers the request */
    bool restart = a->mem.start_answers_restart;
    a->mem.start_answers_restart = false;
    PgArgv argv = { 0 };
    int timeout = restart && a->restart_timeout_sec > 0 && a->restart_timeout_sec < INT_MAX
                      ? (int)a->restart_timeout_sec
                      : start_timeout_sec(a);
    if (restart) {
        a->restart_timeout_sec = 0;
    }
    r = pgctl_argv_start(&a->local.ctl, timeout, &argv);
    if (r >= 0) {
        r = jobs_start(&a->jobs, restart ? JOB_RESTART : JOB_START, argv.argv, timeout + 5);
    }
    pgctl_argv_done(&argv);
    if (r >= 0 && restart) {
        log_notice("starting postgresql, which was not running (restart requested through the "
                   "REST API)");
    }
    return r;
}

/* An operator's restart: pg_ctl restart (fast stop, start) as one job, so
 * the loop keeps renewing the lease; the request is consumed now. */
static int restart_postgres(Agent *a)
{
    int r = pgctl_write_pgpass(&a->local.ctl);
    if (r < 0) {
        return log_error_errno(r, "writing the passfile \"%s\": %m", a->local.ctl.pgpass);
    }
    PgArgv argv = { 0 };
    /* Patroni's restart "timeout": the start may take that long */
    int timeout = a->restart_timeout_sec > 0 && a->restart_timeout_sec < INT_MAX
                      ? (int)a->restart_timeout_sec
                      : start_timeout_sec(a);
    a->restart_timeout_sec = 0;
    r = pgctl_argv_restart(&a->local.ctl, "fast", timeout, &argv);
    char **before = r >= 0 ? agent_before_stop_argv(a) : NULL;
    if (r >= 0) {
        r = jobs_start_after(&a->jobs, JOB_RESTART, before, AGENT_BEFORE_STOP_TIMEOUT_SEC,
                             argv.argv, timeout + 5);
    }
    cmdsplit_free(before);
    pgctl_argv_done(&argv);
    if (r >= 0) {
        bool slots =
            a->logical.n_staged > 0 && a->logical.staged_postmaster == a->local.postmaster_pid;
        log_notice("restarting postgresql (%s)", slots ? "to load the logical slots copied from "
                                                         "the primary"
                                                       : "requested through the REST API");
    }
    return r;
}

/* postgresql.before_stop first (Patroni 3.1's), in the job: the loop goes
 * on meanwhile; a primary's fence stays armed at its lease's deadline */
static int stop_postgres(Agent *a)
{
    PgArgv argv = { 0 };
    int r = pgctl_argv_stop(&a->local.ctl, "fast", AGENT_STOP_TIMEOUT_SEC, &argv);
    char **before = r >= 0 ? agent_before_stop_argv(a) : NULL;
    if (r >= 0) {
        r = jobs_start_after(&a->jobs, JOB_STOP, before, AGENT_BEFORE_STOP_TIMEOUT_SEC, argv.argv,
                             AGENT_STOP_TIMEOUT_SEC + 5);
    }
    cmdsplit_free(before);
    pgctl_argv_done(&argv);
    return r;
}

static const DcsMember *leader_member(const Agent *a)
{
    return a->cluster ? dcs_cluster_leader_member(a->cluster) : NULL;
}

/* Patroni's slot_name_from_member_name: lowercase, [a-z0-9_] only. */
static void slot_name(const char *member, char *buf, size_t size)
{
    size_t o = 0;
    for (const char *s = member; *s && o + 1 < size; s++) {
        char ch = *s;
        if (ch >= 'A' && ch <= 'Z') {
            ch = (char)(ch - 'A' + 'a');
        }
        buf[o++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ? ch : '_';
    }
    buf[o] = '\0';
}

int agent_standby(const Agent *a, StandbyCluster *ret)
{
    return standby_cluster_read(agent_dcs(a)->standby_cluster, ret);
}

const DcsMember *agent_upstream(Agent *a)
{
    StandbyCluster sc;
    if (agent_standby(a, &sc) > 0 && (!a->cluster || !a->cluster->leader || agent_view_leads(a))) {
        (void)snprintf(a->remote_host, sizeof(a->remote_host), "%s", sc.host ? sc.host : "");
        if (sc.host) {
            (void)snprintf(a->remote_name, sizeof(a->remote_name), "the remote primary (%s:%d)",
                           sc.host, sc.port);
        } else {
            (void)snprintf(a->remote_name, sizeof(a->remote_name),
                           "the archive (standby_cluster.restore_command)");
        }
        a->remote = (DcsMember){ .name = a->remote_name,
                                 .host = sc.host ? a->remote_host : NULL,
                                 .port = sc.host ? sc.port : 0 };
        return &a->remote;
    }
    return cascade_upstream(&a->cascade, a->cluster, a->config);
}

int agent_write_conf(Agent *a, bool replica)
{
    /* the leader, or the member our replicatefrom tag names; our slot
     * there: the leader keeps one for every member, a replica for those
     * whose tag names it. In a standby cluster the standby leader follows
     * the remote primary, through standby_cluster.primary_slot_name, and
     * every member takes the section's restore settings. */
    const DcsMember *up = replica ? agent_upstream(a) : NULL;
    bool remote = up && up == &a->remote;
    StandbyCluster sc;
    bool standby = agent_standby(a, &sc) > 0;
    char slot[PGPROBE_NAME_MAX], remote_slot[PGPROBE_NAME_MAX];
    slot_name(a->config->name, slot, sizeof(slot));
    if (sc.primary_slot_name) {
        slot_name(sc.primary_slot_name, remote_slot, sizeof(remote_slot));
    }
    PgUpstream u = { 0 };
    if (up && up->host && strcmp(up->name, a->config->name) != 0) {
        u = (PgUpstream){ .host = up->host, .port = up->port };
        if (remote) {
            /* Patroni: a slot there only when use_slots and one is named */
            u.slot_name = agent_dcs(a)->use_slots && sc.primary_slot_name ? remote_slot : NULL;
            u.read_write = u.slot_name != NULL;
        } else {
            u.slot_name = agent_dcs(a)->use_slots ? slot : NULL;
        }
    }
    if (replica && standby) {
        u.restore_command = sc.restore_command;
        u.archive_cleanup_command = sc.archive_cleanup_command;
        u.recovery_min_apply_delay =
            remote && sc.recovery_min_apply_delay[0] ? sc.recovery_min_apply_delay : NULL;
    }
    const DcsConfig *cc = a->cluster ? a->cluster->config : NULL;
    /* a key with a bad parameter name: the local file's bootstrap.dcs ones */
    a->local.ctl.dcs_parameters = cc && !cc->bad_parameter ? &cc->dcs.parameters : NULL;
    a->local.ctl.dcs_pg_hba = cc ? &cc->dcs.pg_hba : NULL;
    a->local.ctl.dcs_pg_ident = cc ? &cc->dcs.pg_ident : NULL;
    a->local.ctl.dcs_recovery_conf = cc ? &cc->dcs.recovery_conf : NULL;
    /* Patroni: on every member that would keep permanent logical slots as
     * a replica (a nofailover member and a standby cluster keep none) */
    a->local.ctl.hot_standby_feedback = agent_dcs(a)->use_slots &&
                                        slots_any_logical(agent_dcs(a)) &&
                                        !a->config->tags.nofailover && !standby;
    int r = pgctl_write_config(&a->local.ctl, replica, &u);
    a->local.ctl.dcs_parameters = NULL;
    a->local.ctl.dcs_pg_hba = a->local.ctl.dcs_pg_ident = NULL;
    a->local.ctl.dcs_recovery_conf = NULL;
    if (r < 0) {
        return log_error_errno(r, "writing the configuration in \"%s\" (config_dir): %m",
                               a->local.ctl.config_dir);
    }
    a->params_revision = cc ? cc->mod_revision : 0;
    /* the archive of an archive-only standby cluster is followed too */
    return cascade_set_following(&a->cascade, u.host || remote ? up->name : NULL);
}

typedef int (*ArgvAgainst)(const PgCtl *p, const char *host, int port, PgArgv *ret);

/* A job that connects to another member (pg_basebackup, pg_rewind): the
 * passfile first, since the tool reads the password from it. */
static int run_against(Agent *a, const DcsMember *m, JobKind kind, ArgvAgainst build,
                       int timeout_sec)
{
    int r = pgctl_write_pgpass(&a->local.ctl);
    if (r < 0) {
        return log_error_errno(r, "writing the passfile \"%s\": %m", a->local.ctl.pgpass);
    }
    PgArgv argv = { 0 };
    r = build(&a->local.ctl, m->host, m->port, &argv);
    if (r >= 0) {
        r = jobs_start(&a->jobs, kind, argv.argv, timeout_sec);
    }
    pgctl_argv_done(&argv);
    return r;
}

/* A running member tagged clonefrom, else the leader; NULL when there is
 * no member with an address to copy from. In a standby cluster with no
 * other leader: the remote primary (NULL when the section names no host). */
static const DcsMember *clone_source(Agent *a)
{
    const DcsMember *up = agent_upstream(a);
    if (up == &a->remote) {
        return up->host ? up : NULL;
    }
    for (size_t i = 0; a->cluster && i < a->cluster->n_members; i++) {
        const DcsMember *m = &a->cluster->members[i];
        json_t *t = m->tags ? json_object_get(m->tags, "clonefrom") : NULL;
        if (t && json_is_true(t) && m->host && m->state && strcmp(m->state, "running") == 0 &&
            strcmp(m->name, a->config->name) != 0) {
            return m;
        }
    }
    const DcsMember *lm = leader_member(a);
    return lm && lm->host ? lm : NULL;
}

/* The name-th method of create_replica_methods, or, for a clone of the
 * remote primary of a standby cluster (its first member, or one with no
 * standby leader), of standby_cluster.create_replica_methods (Patroni's
 * RemoteMember: that list, else basebackup); a clone of the standby leader
 * uses the member's own list, as Patroni 3.0.2's create_replica() does.
 * NULL past the end. */
static const char *method_name(const Agent *a, size_t i)
{
    StandbyCluster sc;
    if (agent_standby(a, &sc) > 0 && (!a->cluster || !a->cluster->leader || agent_view_leads(a))) {
        if (!sc.create_replica_methods || json_array_size(sc.create_replica_methods) == 0) {
            return i == 0 ? "basebackup" : NULL;
        }
        const json_t *v = json_array_get(sc.create_replica_methods, i);
        return v ? json_is_string(v) ? json_string_value(v) : "" : NULL;
    }
    const ConfigStrv *names = &a->config->postgresql.create_replica_methods;
    if (names->n == 0) {
        return i == 0 ? "basebackup" : NULL;
    }
    return i < names->n ? names->items[i] : NULL;
}

size_t agent_clone_methods(const Agent *a, bool have_source,
                           const ConfigReplicaMethod *out[AGENT_CLONE_METHODS_MAX])
{
    const Config *c = a->config;
    size_t n = 0;
    const char *name;
    for (size_t i = 0; (name = method_name(a, i)) && n < AGENT_CLONE_METHODS_MAX; i++) {
        const ConfigReplicaMethod *m = NULL;
        for (size_t j = 0; j < c->postgresql.n_replica_methods; j++) {
            if (strcmp(c->postgresql.replica_methods[j].name, name) == 0) {
                m = &c->postgresql.replica_methods[j];
            }
        }
        if (!m && strcmp(name, "basebackup") != 0) {
            continue; /* a repeated name (the config kept it once), or one with no section */
        }
        bool seen = false;
        for (size_t k = 0; k < n; k++) {
            seen = seen || out[k] == m;
        }
        if (!seen && (m ? have_source || m->no_leader : have_source)) {
            out[n++] = m;
        }
    }
    return n;
}

/* "--key=value" appended to a command's words */
static int push_option(char ***v, size_t *k, const char *key, const char *value)
{
    char *w = NULL;
    if (asprintf(&w, "--%s=%s", key, value) < 0) {
        return -ENOMEM;
    }
    return cmdsplit_push(v, k, w);
}

/* Patroni's parameters for a custom method: the section's keys as
 * --key=value in its order, then scope, role, datadir and connstring
 * (dict.update: a key the section has keeps its place and takes our value);
 * with no_params, the section's keys but no_params, no_master, no_leader and
 * keep_data, and nothing of ours. */
static int method_params(const Agent *a, const ConfigReplicaMethod *m, const char *connstring,
                         char ***v, size_t *k)
{
    const char *ours[][2] = { { "scope", a->config->scope },
                              { "role", "replica" },
                              { "datadir", a->local.ctl.data_dir },
                              { "connstring", connstring } };
    static const char *const flags[] = { "no_params", "no_master", "no_leader", "keep_data" };
    bool given[ELEMENTSOF(ours)] = { false };
    for (size_t i = 0; i < m->options.n; i++) {
        const char *key = m->options.items[i].key, *value = m->options.items[i].value;
        bool skip = false;
        for (size_t f = 0; m->no_params && f < ELEMENTSOF(flags); f++) {
            skip = skip || strcmp(key, flags[f]) == 0;
        }
        for (size_t o = 0; !m->no_params && o < ELEMENTSOF(ours); o++) {
            if (strcmp(key, ours[o][0]) == 0) {
                value = ours[o][1];
                given[o] = true;
            }
        }
        if (!skip && push_option(v, k, key, value) < 0) {
            return -ENOMEM;
        }
    }
    for (size_t o = 0; !m->no_params && o < ELEMENTSOF(ours); o++) {
        if (!given[o] && push_option(v, k, ours[o][0], ours[o][1]) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* A custom method writes into data_dir itself, which is empty (the rules
 * clone only then: older data was moved aside, never deleted, so keep_data
 * has nothing to keep). */
static int run_method(Agent *a, const ConfigReplicaMethod *m, const DcsMember *src)
{
    int r = pgctl_write_pgpass(&a->local.ctl);
    if (r < 0) {
        return log_error_errno(r, "writing the passfile \"%s\": %m", a->local.ctl.pgpass);
    }
    _cleanup_free_ char *conn =
        src ? pgctl_clone_connstring(&a->local.ctl, src->host, src->port) : strdup("");
    if (!conn) {
        return log_error_errno(-ENOMEM, "postgresql.%s: %m", m->name);
    }
    char **v = NULL;
    int n = split_command("postgresql.", m->name, m->command, &v);
    if (n < 0) {
        return n;
    }
    size_t k = (size_t)n;
    if (method_params(a, m, conn, &v, &k) < 0) {
        cmdsplit_free(v);
        return log_error_errno(-ENOMEM, "postgresql.%s: %m", m->name);
    }
    if (src) {
        log_info("creating the replica with method \"%s\" from \"%s\" (%s:%d)", m->name, src->name,
                 src->host, src->port);
    } else {
        log_info("creating the replica with method \"%s\", without a leader (no_leader)", m->name);
    }
    r = jobs_start(&a->jobs, JOB_REPLICA_METHOD, v, AGENT_BASEBACKUP_TIMEOUT_SEC);
    cmdsplit_free(v);
    return r;
}

/* A name of standby_cluster.create_replica_methods (the config key may
 * have been changed with PATCH /config) with no section in this node's
 * file: skipped, said at each clone (Patroni would run the name as the
 * command; the file's own lists are checked when it is loaded). */
static void warn_unknown_methods(const Agent *a)
{
    const char *name;
    for (size_t i = 0; (name = method_name(a, i)); i++) {
        bool known = strcmp(name, "basebackup") == 0;
        for (size_t j = 0; !known && j < a->config->postgresql.n_replica_methods; j++) {
            known = strcmp(a->config->postgresql.replica_methods[j].name, name) == 0;
        }
        if (!known) {
            log_warning("replica method \"%s\" has no postgresql.%s section in this node's "
                        "configuration: skipped",
                        name, name);
        }
    }
}

static int clone_replica(Agent *a)
{
    warn_unknown_methods(a);
    const DcsMember *src = clone_source(a);
    const ConfigReplicaMethod *methods[AGENT_CLONE_METHODS_MAX];
    size_t n = agent_clone_methods(a, src != NULL, methods);
    if (n == 0) {
        return log_warning_errno(-ENOENT, src ? "create_replica_methods lists no method"
                                              : "no member to clone from");
    }
    if (a->clone_method >= n) {
        a->clone_method = 0;
    }
    const ConfigReplicaMethod *m = methods[a->clone_method];
    a->clone_in_place = m != NULL;
    if (m) {
        return run_method(a, m, src);
    }
    int r = pgctl_remove_tree(a->local.ctl.clone_dir);
    if (r < 0) {
        return log_error_errno(r, "removing the old clone \"%s\": %m", a->local.ctl.clone_dir);
    }
    log_info("cloning from \"%s\" (%s:%d)", src->name, src->host, src->port);
    return run_against(a, src, JOB_BASEBACKUP, pgctl_argv_basebackup, AGENT_BASEBACKUP_TIMEOUT_SEC);
}

/* A failed clone (or one that left no data directory of this cluster):
 * what it wrote goes, then the next method, or the backoff. */
static int remove_clone(Agent *a)
{
    const char *dir = a->clone_in_place ? a->local.ctl.data_dir : a->local.ctl.clone_dir;
    int r = a->clone_in_place ? pgctl_empty_dir(dir) : pgctl_remove_tree(dir);
    if (r < 0) {
        log_error_errno(r, "removing the failed clone \"%s\": %m", dir);
    }
    a->clone_in_place = false;
    const ConfigReplicaMethod *methods[AGENT_CLONE_METHODS_MAX];
    size_t n = agent_clone_methods(a, clone_source(a) != NULL, methods);
    if (r >= 0 && a->clone_method + 1 < n) {
        a->clone_method++;
        return HA_CLONE_NEXT_METHOD;
    }
    a->clone_method = 0;
    /* the first member of a new standby cluster: `initialize` is still the
     * placeholder it raced for, which would keep every member waiting for
     * it; released, the race is run again after the backoff (Patroni
     * cancels the initialization and exits) */
    StandbyCluster sc;
    if (agent_standby(a, &sc) != 0 && a->cluster && a->cluster->initialize &&
        !*a->cluster->initialize && !a->cluster->leader) {
        (void)dcs_store_release_initialize(&a->store);
        log_error("the standby cluster's first clone failed: released \"initialize\"");
    }
    return 0; /* the backoff: ha_memory_after() */
}

static int install_clone(Agent *a)
{
    a->clone_method = 0;
    if (a->clone_in_place) {
        a->clone_in_place = false; /* the method wrote data_dir itself */
        return 0;
    }
    int r = pgctl_install_clone(&a->local.ctl);
    if (r < 0) {
        return log_error_errno(r, "moving the clone into \"%s\": %m", a->local.ctl.data_dir);
    }
    return 0;
}

/* ---- SQL on the local server ---- */

int agent_exec_sql(Agent *a, const char *sql, PGresult **ret)
{
    int r = pgprobe_exec(a->local.probe, sql, clock_monotonic_usec() + EXEC_SQL_DEADLINE_USEC, ret);
    if (r < 0) {
        return log_error_errno(r, "postgresql: %s", pgprobe_last_error(a->local.probe));
    }
    return 0;
}

/* s between q characters, embedded q doubled: "ident" or 'literal'. */
static char *quote(const char *s, char q)
{
    size_t n = strlen(s);
    char *r = malloc(2 * n + 3);
    if (!r) {
        return NULL;
    }
    size_t o = 0;
    r[o++] = q;
    for (; *s; s++) {
        if (*s == q) {
            r[o++] = q;
        }
        r[o++] = *s;
    }
    r[o++] = q;
    r[o] = '\0';
    return r;
}

/* CREATE or ALTER role `u` with the given options and its password. The
 * statement holds the password: neither we nor the server log it. */
static int ensure_role(Agent *a, const ConfigUser *u, const char *options)
{
    if (!u->username) {
        return 0;
    }
    _cleanup_free_ char *ident = quote(u->username, '"');
    _cleanup_free_ char *name = quote(u->username, '\'');
    _cleanup_free_ char *pw = u->password ? quote(u->password, '\'') : NULL;
    _cleanup_free_ char *sql = NULL;
    if (!ident || !name || (u->password && !pw)) {
        return -ENOMEM;
    }
    if (asprintf(&sql,
                 "SET synchronous_commit = local;"
                 "DO $dbha$ BEGIN "
                 "IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s) THEN "
                 "CREATE ROLE %s WITH %s; END IF; END $dbha$;"
                 "ALTER ROLE %s WITH %s%s%s",
                 name, ident, options, ident, options, pw ? " PASSWORD " : "", pw ? pw : "") < 0) {
        return -ENOMEM;
    }
    int r =
        pgprobe_exec_unlogged(a->local.probe, sql, clock_monotonic_usec() + EXEC_SQL_DEADLINE_USEC);
    explicit_bzero(sql, strlen(sql));
    if (pw) {
        explicit_bzero(pw, strlen(pw));
    }
    if (r < 0) {
        return log_error_errno(r, "creating role \"%s\" failed: %s", u->username,
                               pgprobe_last_error(a->local.probe));
    }
    return 0;
}

static int create_roles(Agent *a)
{
    const Config *c = a->config;
    int r = ensure_role(a, &c->postgresql.superuser, "SUPERUSER LOGIN");
    if (r >= 0) {
        r = ensure_role(a, &c->postgresql.replication, "REPLICATION LOGIN");
    }
    if (r >= 0) {
        r = ensure_role(a, &c->postgresql.rewind, "LOGIN");
    }
    if (r >= 0 && c->postgresql.rewind.username) {
        /* what pg_rewind needs from a non-superuser source */
        _cleanup_free_ char *sql = NULL;
        _cleanup_free_ char *ident = quote(c->postgresql.rewind.username, '"');
        if (!ident ||
            asprintf(&sql,
                     "GRANT EXECUTE ON function pg_catalog.pg_ls_dir(text, boolean, boolean) TO %s;"
                     "GRANT EXECUTE ON function pg_catalog.pg_stat_file(text, boolean) TO %s;"
                     "GRANT EXECUTE ON function pg_catalog.pg_read_binary_file(text) TO %s;"
                     "GRANT EXECUTE ON function pg_catalog.pg_read_binary_file(text, bigint, "
                     "bigint, boolean) TO %s;",
                     ident, ident, ident, ident) < 0) {
            return -ENOMEM;
        }
        r = agent_exec_sql(a, sql, NULL);
    }
    /* Patroni's bootstrap.users, as its create_or_update_role(): the options
     * as given (the loader checked them), LOGIN unless LOGIN or NOLOGIN is
     * among them, and the password */
    const char *name;
    json_t *role;
    json_object_foreach(c->bootstrap.users, name, role)
    {
        if (r < 0) {
            break;
        }
        char options[512] = "";
        bool login = false;
        size_t i;
        json_t *o;
        json_array_foreach(json_object_get(role, "options"), i, o)
        {
            const char *opt = json_string_value(o);
            login = login || strcmp(opt, "LOGIN") == 0 || strcmp(opt, "NOLOGIN") == 0;
            size_t used = strlen(options);
            snprintf(options + used, sizeof(options) - used, "%s%s", used ? " " : "", opt);
        }
        if (!login) {
            size_t used = strlen(options);
            snprintf(options + used, sizeof(options) - used, "%sLOGIN", used ? " " : "");
        }
        ConfigUser u = { .username = (char *)name,
                         .password = (char *)json_string_value(json_object_get(role, "password")) };
        r = ensure_role(a, &u, options);
    }
    return r;
}

/* A first word without a "/" from PATH, as Python's subprocess finds it;
 * NULL: not found (the word is kept). */
static char *find_in_path(const char *word)
{
    const char *path = getenv("PATH");
    if (!path || !*path) {
        path = "/usr/local/bin:/usr/bin:/bin";
    }
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        char *full = NULL;
        if (n > 0 && asprintf(&full, "%.*s/%s", (int)n, p, word) >= 0) {
            if (access(full, X_OK) == 0) {
                return full;
            }
            free(full);
        }
        p += n + (p[n] == ':');
    }
    return NULL;
}

/* A command's first word without a '/' is looked up in PATH, as a shell
 * would (the job runs it with execv). */
static void resolve_command(char **v)
{
    if (strchr(v[0], '/')) {
        return;
    }
    char *full = find_in_path(v[0]);
    if (full) {
        free(v[0]);
        v[0] = full;
    }
}

/* Patroni's bootstrap.post_bootstrap (post_init): the roles first (the
 * script may use them), then the command with the new primary's connection
 * string appended (its passfile in it, and PGPASSFILE), as a job the loop
 * watches. Nothing names us leader yet: the other members wait on the
 * `initialize` key we hold. */
static int run_post_bootstrap(Agent *a)
{
    if (!a->local.probe_ok) {
        return log_warning_errno(-EAGAIN, "the new primary does not answer yet");
    }
    int r = create_roles(a);
    if (r < 0) {
        return r;
    }
    r = pgctl_write_pgpass(&a->local.ctl);
    if (r < 0) {
        return log_error_errno(r, "writing the passfile \"%s\": %m", a->local.ctl.pgpass);
    }
    _cleanup_free_ char *dsn = pgctl_local_conninfo(&a->local.ctl);
    if (!dsn) {
        return -ENOMEM;
    }
    char **argv = NULL;
    int n =
        split_command("bootstrap.post_bootstrap", "", a->config->bootstrap.post_bootstrap, &argv);
    if (n < 0) {
        return n;
    }
    size_t k = (size_t)n;
    char *last = strdup(dsn);
    if (!last || cmdsplit_push(&argv, &k, last) < 0) {
        cmdsplit_free(argv);
        return -ENOMEM;
    }
    r = jobs_start(&a->jobs, JOB_POST_BOOTSTRAP, argv, AGENT_POST_BOOTSTRAP_TIMEOUT_SEC);
    cmdsplit_free(argv);
    return r;
}

/* Patroni's _pre_promote(): the command split as shlex splits it, no
 * arguments added; its exit status decides (the rows in agent/ha.c). */
static int run_pre_promote(Agent *a)
{
    const char *cmd = a->config->postgresql.pre_promote;
    char **v = NULL;
    int n = split_command("postgresql.pre_promote", "", cmd, &v);
    if (n < 0) {
        return n;
    }
    log_notice("running pre_promote before promoting: %s", cmd);
    int r = jobs_start(&a->jobs, JOB_PRE_PROMOTE, v, AGENT_PRE_PROMOTE_TIMEOUT_SEC);
    cmdsplit_free(v);
    return r;
}

static char *iso_now(void)
{
    struct timespec ts;
    struct tm tm;
    char buf[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%06ld+00:00", ts.tv_nsec / 1000);
    return strdup(buf);
}

/* A new cluster's identity: `initialize` (our empty placeholder from the
 * race) becomes the system identifier, and the `config` key is made from
 * bootstrap.dcs unless it exists. */
static int store_identity(Agent *a, uint64_t sysid)
{
    _cleanup_free_ char *init = NULL, *config = NULL;
    if (dcs_initialize_encode(sysid, &init) < 0 ||
        dcs_config_encode(&a->config->bootstrap.dcs, &config) < 0) {
        return -ENOMEM;
    }
    int r = stored(a, dcs_store_set_initialize(&a->store, init), a->paths.initialize);
    if (r < 0) {
        return r;
    }
    _cleanup_free_ char *holder = NULL;
    r = create_key(a, a->paths.config, config, false, &holder);
    return r < 0 && r != -ECANCELED ? r : 0;
}

static int finish_bootstrap(Agent *a)
{
    if (!a->local.probe_ok) {
        return log_warning_errno(-EAGAIN, "the new primary does not answer yet");
    }
    int r = create_roles(a);
    if (r < 0) {
        return r;
    }
    uint64_t sysid =
        a->local.snap.system_identifier ? a->local.snap.system_identifier : a->local.sysid;
    r = store_identity(a, sysid);
    if (r < 0) {
        return r;
    }
    /* As Patroni 3.0.2: an empty history on timeline 1. Its readers take the
     * cluster's timeline as the last line's + 1, so a line for timeline 1
     * would make patronictl show timeline 2. */
    r = stored(a, dcs_store_set_history(&a->store, "[]"), a->paths.history);
    if (r < 0) {
        return r;
    }
    if (a->local.ctl.bootstrap_custom) {
        /* the roles have this config's passwords now: the configured
         * pg_hba.conf (or the one the command left) and no recovery
         * settings any more, as Patroni's post_bootstrap */
        r = pgctl_end_custom_bootstrap(&a->local.ctl);
        if (r < 0) {
            log_error_errno(r, "putting back pg_hba.conf after the custom bootstrap: %m");
        }
        r = agent_write_conf(a, false);
        if (r >= 0) {
            r = agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL);
        }
        if (r < 0) {
            return r;
        }
    }
    log_struct_id(LOG_LEVEL_NOTICE, "7e2b9c4d1a6f48e3b5c0d9a8f7e6d5c4",
                  "bootstrapped cluster \"%s\" (system identifier %" PRIu64 ")", a->config->scope,
                  sysid);
    return 0;
}

/* The standby leader, on every loop (its callbacks learn the role once).
 * The first leader of a new standby cluster, once it runs as a standby of
 * the remote primary: `initialize` (the placeholder it raced for) becomes
 * the system identifier and the `config` key is written, as a bootstrap's
 * last steps (Patroni's post_bootstrap after bootstrap_standby_leader). No
 * roles are made and no history written: they are the remote primary's.
 * Nothing to do once `initialize` is set. */
static int initialize_standby(Agent *a)
{
    /* the view names us the leader now: a role that changed to
     * standby_leader is announced (on_role_change), else nothing */
    agent_callbacks(a, CALLBACKS_EVENT_ATTACHED);
    if (!a->cluster || !a->cluster->initialize || *a->cluster->initialize) {
        return 0;
    }
    uint64_t sysid =
        a->local.snap.system_identifier ? a->local.snap.system_identifier : a->local.sysid;
    if (sysid == 0) {
        return log_warning_errno(-EAGAIN, "the standby's system identifier is not known yet");
    }
    int r = store_identity(a, sysid);
    if (r < 0) {
        return r;
    }
    log_struct_id(LOG_LEVEL_NOTICE, "3c8e1f7a5b2d4e69a0c4b7d2e9f1a6b3",
                  "bootstrapped standby cluster \"%s\" (system identifier %" PRIu64 ")",
                  a->config->scope, sysid);
    return 0;
}

static int abort_bootstrap(Agent *a)
{
    a->local.ctl.bootstrap_custom = NULL;
    if (a->local.running) {
        PgArgv argv = { 0 };
        if (pgctl_argv_stop(&a->local.ctl, "immediate", AGENT_STOP_TIMEOUT_SEC, &argv) >= 0) {
            (void)jobs_run_sync(&a->jobs, argv.argv, AGENT_STOP_TIMEOUT_SEC);
        }
        pgctl_argv_done(&argv);
    }
    int r = pgctl_remove_tree(a->local.ctl.data_dir);
    if (r < 0) {
        log_error_errno(r, "removing the failed bootstrap in \"%s\": %m", a->local.ctl.data_dir);
    }
    /* release `initialize` only while it is still our empty placeholder */
    (void)dcs_store_release_initialize(&a->store);
    log_error("bootstrap failed: removed the new data directory and released \"initialize\"");
    return 0;
}

static int follow(Agent *a)
{
    int r = agent_write_conf(a, true);
    if (r < 0) {
        return r;
    }
    r = agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL);
    if (r < 0) {
        return r;
    }
    log_info("following \"%s\"", strna(cascade_following(&a->cascade)));
    StandbyCluster sc;
    if (agent_standby(a, &sc) != 0) {
        /* in a standby cluster a member becomes (or stops being) the
         * standby leader without a restart: Patroni's on_role_change */
        agent_callbacks(a, CALLBACKS_EVENT_ATTACHED);
    }
    agent_callbacks(a, CALLBACKS_EVENT_RELOADED);
    return 0;
}

/* The slots this member keeps: the leader one for every other member, a
 * replica one for every member whose replicatefrom tag names it (Patroni
 * 3.0.2 keeps none on the leader for a member whose replicatefrom names
 * another member; but that member falls back to the leader while its
 * upstream is unavailable, and its primary_slot_name must then exist).
 *
 * WAL retention: such a slot is unused while the member streams from
 * elsewhere, and an unused slot holds WAL without limit. So an inactive slot
 * of a member that streams (from someone else: with us its slot would be
 * active) is advanced to the position the member publishes, less one WAL
 * segment: the member has that WAL already, and the segment kept covers the
 * start of the segment its walreceiver asks for when it comes back (a record
 * may cross into the next segment). A member that does not stream keeps its
 * slot where it is, as before: it may need that WAL to catch up. */
#define SLOTS_RECHECK_USEC (300 * 1000 * 1000ULL)

typedef struct SlotSet {
    const PgSnapshot *snap; /* the last probe's: who streams from us */
    FILE *create;           /* VALUES rows ('slot') we want */
    FILE *advance;          /* VALUES rows ('slot', 'lsn'::pg_lsn) to move forward */
    size_t n_advance;
} SlotSet;

/* A member that streams from us uses its slot here (its walreceiver names
 * it): nothing to advance, and its published position, which moves with
 * every write, stays out of the statements (they run only when they change). */
static bool streams_from_us(const PgSnapshot *snap, const char *member)
{
    size_t n =
        snap->n_replication < PGPROBE_REPLICAS_MAX ? snap->n_replication : PGPROBE_REPLICAS_MAX;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(snap->replication[i].application_name, member) == 0 &&
            strcmp(snap->replication[i].state, "streaming") == 0) {
            return true;
        }
    }
    return false;
}

static void want_slot(const DcsMember *m, void *userdata)
{
    SlotSet *set = userdata;
    char slot[PGPROBE_NAME_MAX];
    slot_name(m->name, slot, sizeof(slot));
    fprintf(set->create, ",('%s')", slot);
    if (!streams_from_us(set->snap, m->name) && m->has_xlog_location && m->xlog_location > 0 &&
        m->state && strcmp(m->state, "running") == 0 && m->replication_state &&
        strcmp(m->replication_state, "streaming") == 0) {
        fprintf(set->advance, "%s('%s','%X/%X'::pg_catalog.pg_lsn)", set->n_advance ? "," : "",
                slot, (unsigned)(m->xlog_location >> 32), (unsigned)m->xlog_location);
        set->n_advance++;
    }
}

static int sync_slots_as(Agent *a, bool leader);

/* Logs problem (at level, after "what: ") when it differs from *kept, the
 * last one logged, and "no problem any more" when it went away; keeps a
 * copy in *kept. */
static void log_problem_change(char **kept, const char *problem, LogLevel level, const char *what)
{
    if ((!problem && !*kept) || (problem && *kept && strcmp(problem, *kept) == 0)) {
        return;
    }
    if (problem) {
        log_full(level, "%s: %s", what, problem);
    } else {
        log_info("%s: no problem any more", what);
    }
    free(*kept);
    *kept = problem ? strdup(problem) : NULL;
}

/* Logs what slots_wanted() skipped once per change of it. */
static void log_slots_problem(SlotsDone *done, const char *problem)
{
    log_problem_change(&done->problem, problem, LOG_LEVEL_ERROR,
                       "replication slots in the cluster config");
}

static int sync_logical(Agent *a, SlotsRole role);

/* A primary, or the standby leader (Patroni: slots for every member, and
 * the permanent physical ones, on a standby leader too); then the
 * permanent logical slots. */
static int sync_slots(Agent *a)
{
    StandbyCluster sc;
    bool standby = agent_standby(a, &sc) != 0;
    bool standby_leader = a->local.snap.in_recovery && standby && agent_view_leads(a);
    int r = sync_slots_as(a, !a->local.snap.in_recovery || standby_leader);
    SlotsRole role = !a->local.snap.in_recovery              ? SLOTS_PRIMARY
                     : standby_leader                        ? SLOTS_STANDBY_LEADER
                     : standby || a->config->tags.nofailover ? SLOTS_NONE
                                                             : SLOTS_REPLICA;
    (void)sync_logical(a, role);
    return r;
}

/* ---- permanent logical slots (agent/logical.h) ---- */

/* Copies written that no restart loaded within this long are removed: a
 * start much later must not load a slot state that old. */
#define LOGICAL_STAGED_USEC (60 * 1000 * 1000ULL)
/* A copy whose slot could not advance here is made again after this long,
 * doubled each time up to the maximum. */
#define LOGICAL_COPY_BACKOFF_MIN_USEC (5 * 1000 * 1000ULL)
#define LOGICAL_COPY_BACKOFF_MAX_USEC (300 * 1000 * 1000ULL)

static void logical_problem(Agent *a, const char *problem)
{
    log_problem_change(&a->logical.problem, problem, LOG_LEVEL_WARNING, "permanent logical slots");
}

static ssize_t logical_broken(const LogicalState *s, const char *name)
{
    for (size_t i = 0; i < s->n_broken; i++) {
        if (strcmp(s->broken[i], name) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

static void logical_unbreak(LogicalState *s, const char *name)
{
    ssize_t i = logical_broken(s, name);
    if (i >= 0) {
        memmove(s->broken[i], s->broken[i + 1],
                (s->n_broken - (size_t)i - 1) * sizeof(s->broken[0]));
        s->n_broken--;
    }
}

static bool logical_ignored(const char *name, const char *database, const char *plugin,
                            void *userdata)
{
    return slots_ignored(agent_dcs(userdata), name, "logical", database, plugin);
}

/* How the agent reads the primary's slots: the rewind user, else the
 * superuser (Patroni's rewind_credentials), to the leader's address and
 * postgresql.database. */
static void leader_probe_config(const Agent *a, const DcsMember *leader, PgProbeConfig *ret)
{
    const Config *c = a->config;
    const ConfigUser *user =
        c->postgresql.rewind.username ? &c->postgresql.rewind : &c->postgresql.superuser;
    logical_probe_config(user, leader->host, (unsigned)leader->port, c->postgresql.database, ret);
}

/* Copies that wait for the restart that loads them: true while they still
 * may (nothing else to do this loop); removed when they no longer may. */
static bool logical_staged_wait(Agent *a, SlotsRole role, uint64_t now)
{
    LogicalState *s = &a->logical;
    if (s->n_staged == 0) {
        return false;
    }
    if (a->local.postmaster_pid != s->staged_postmaster) {
        log_info("postgresql restarted: the copied logical slots are loaded");
        s->n_staged = 0;
        return false;
    }
    if (role == SLOTS_REPLICA &&
        (a->mem.request == HA_REQUEST_RESTART || now - s->staged_at_usec < LOGICAL_STAGED_USEC)) {
        return true;
    }
    for (size_t i = 0; i < s->n_staged; i++) {
        int r = logical_uninstall(a->local.ctl.data_dir, s->staged[i]);
        if (r < 0) {
            log_error_errno(r, "removing the unloaded copy of logical slot \"%s\": %m",
                            s->staged[i]);
        }
    }
    log_warning("removed %zu logical slot copies that no restart loaded (%s)", s->n_staged,
                role == SLOTS_REPLICA ? "the restart did not happen" : "no longer a replica");
    s->n_staged = 0;
    return false;
}

/* Patroni's copy_logical_slots(): the slots the primary published and we
 * lack, read there (the rewind user, else the superuser, as Patroni),
 * written into pg_replslot, loaded by a restart of this replica. */
static void logical_copy(Agent *a, const LogicalPlan *plan, uint64_t now, FILE *problems, bool *any)
{
    LogicalState *s = &a->logical;
    const DcsMember *leader = dcs_cluster_leader_member(a->cluster);
    if (dcs_cluster_is_paused(a->cluster)) {
        /* a copy takes a restart, which a paused cluster does not get */
        fprintf(problems, "%smissing here, not copied while the cluster is paused",
                *any ? "; " : "");
        *any = true;
        return;
    }
    if (a->mem.request != HA_REQUEST_NONE || !leader || !leader->host) {
        return; /* busy, or no primary to read from */
    }
    PgProbeConfig pc;
    leader_probe_config(a, leader, &pc);
    LogicalCopy copies[LOGICAL_SLOTS_MAX];
    char err[PGPROBE_ERROR_MAX] = "";
    int n = logical_fetch(&pc, plan, now + EXEC_SQL_DEADLINE_USEC, copies, LOGICAL_SLOTS_MAX, err,
                          sizeof(err));
    if (n <= 0) {
        fprintf(problems, "%scould not copy slots from the primary \"%s\": %s", *any ? "; " : "",
                leader->name, err);
        *any = true;
        return;
    }
    _cleanup_free_ char *names = NULL;
    size_t names_size = 0;
    FILE *f = open_memstream(&names, &names_size);
    for (int i = 0; i < n; i++) {
        /* over a loaded copy that cannot advance, too: its files are
         * swapped for the new ones, which the restart below loads (the
         * server writes a slot's state only when it changed, and a slot
         * that cannot advance does not change), so the slot is never
         * missing, not even between a drop and the restart */
        int r = logical_install(a->local.ctl.data_dir, &copies[i]);
        if (r >= 0) {
            logical_unbreak(s, copies[i].name);
        }
        if (r < 0) {
            log_error_errno(r, "writing the copy of logical slot \"%s\": %m", copies[i].name);
        } else {
            memcpy(s->staged[s->n_staged++], copies[i].name, sizeof(copies[i].name));
            (void)logical_unready_add(s, copies[i].name);
            if (f) {
                fprintf(f, "%s\"%s\"", s->n_staged > 1 ? ", " : "", copies[i].name);
            }
        }
        logical_copy_done(&copies[i]);
    }
    if (f && fclose(f) != 0) {
        names = NULL;
    }
    if (s->n_staged == 0) {
        return;
    }
    s->staged_postmaster = a->local.postmaster_pid;
    s->staged_at_usec = now;
    a->mem.request = HA_REQUEST_RESTART;
    agent_schedule_tick(a, now);
    log_info("copied logical slot%s %s from the primary \"%s\": restarting postgresql to load "
             "them",
             s->n_staged > 1 ? "s" : "", names ? names : "", leader->name);
}

/* Patroni's check_logical_slots_readiness(), with its log lines: whether
 * each copy is safe to use after a failover (logical_readiness()), asked of
 * the primary while some copy is not known to be; and at a promotion, a
 * warning naming those still not known. */
static void logical_check_ready(Agent *a, SlotsRole role, const LogicalSlot *local, size_t n,
                                uint64_t now)
{
    LogicalState *s = &a->logical;
    if (role == SLOTS_PRIMARY) {
        if (s->n_unready > 0) {
            _cleanup_free_ char *names = NULL;
            size_t size = 0;
            FILE *f = open_memstream(&names, &size);
            for (size_t i = 0; f && i < s->n_unready; i++) {
                fprintf(f, "%s\"%s\"", i ? ", " : "", s->unready[i].name);
            }
            if (f && fclose(f) != 0) {
                names = NULL;
            }
            log_warning("logical replication slots that might be unsafe to use after the "
                        "promotion (not yet known to be protected by the old primary): %s",
                        names ? names : "?");
        }
        s->n_unready = 0;
        s->readiness_started = false; /* if it becomes a replica again */
        return;
    }
    if (role != SLOTS_REPLICA) {
        return;
    }
    if (!s->readiness_started) {
        /* as Patroni at its start: every local copy is checked once */
        for (size_t i = 0; i < n; i++) {
            (void)logical_unready_add(s, local[i].name);
        }
        s->readiness_started = true;
    }
    const DcsMember *leader = dcs_cluster_leader_member(a->cluster);
    if (s->n_unready == 0 || !leader || !leader->host) {
        return;
    }
    /* our physical slot there: ours, or the one of the member we cascade
     * from (its hot_standby_feedback carries ours) */
    const DcsMember *up = agent_upstream(a);
    char physical[PGPROBE_NAME_MAX];
    slot_name(up && up != &a->remote && strcmp(up->name, leader->name) != 0 ? up->name
                                                                            : a->config->name,
              physical, sizeof(physical));
    PgProbeConfig pc;
    leader_probe_config(a, leader, &pc);
    LogicalXmins x;
    char err[PGPROBE_ERROR_MAX] = "";
    if (logical_primary_xmins(&pc, s, physical, now + EXEC_SQL_DEADLINE_USEC, &x, err,
                              sizeof(err)) < 0) {
        log_debug("checking the logical slots' readiness on the primary: %s", err);
        return;
    }
    if (!x.physical_exists || !x.has_physical) {
        if (!s->readiness_problem_said) {
            log_warning("logical slot copies are not yet safe after a failover: %s",
                        !x.physical_exists
                            ? "our physical slot does not exist on the primary"
                            : "our physical slot on the primary has no catalog_xmin yet "
                              "(hot_standby_feedback reaches it once this replica streams "
                              "through it)");
            s->readiness_problem_said = true;
        }
        return;
    }
    s->readiness_problem_said = false;
    char ready[LOGICAL_SLOTS_MAX][PGPROBE_NAME_MAX];
    size_t k = logical_readiness(s, &x, local, n, ready, LOGICAL_SLOTS_MAX);
    for (size_t i = 0; i < k; i++) {
        log_info("logical slot \"%s\" is safe to be used after a failover", ready[i]);
    }
}

static int sync_logical(Agent *a, SlotsRole role)
{
    LogicalState *s = &a->logical;
    const ConfigDcs *dcs = agent_dcs(a);
    uint64_t now = clock_monotonic_usec();
    if (!a->cluster || !a->local.probe_ok || logical_staged_wait(a, role, now)) {
        return 0;
    }
    const json_t *published = a->cluster->status.slots;
    bool primary = role == SLOTS_PRIMARY;
    if (!dcs->use_slots || role == SLOTS_STANDBY_LEADER ||
        (!slots_any_logical(dcs) && !s->seen && json_object_size(published) == 0)) {
        json_decref(s->positions);
        s->positions = NULL;
        return 0;
    }
    char own[PGPROBE_NAME_MAX];
    slot_name(a->config->name, own, sizeof(own));
    SlotsWanted w;
    if (slots_wanted(dcs, own, role, &w) < 0) {
        return -ENOMEM;
    }
    LogicalSlot local[LOGICAL_SLOTS_MAX];
    size_t n = 0;
    int r =
        logical_list(a->local.probe, now + EXEC_SQL_DEADLINE_USEC, local, LOGICAL_SLOTS_MAX, &n);
    if (r < 0) {
        slots_wanted_done(&w);
        log_debug("listing the logical slots: %s", pgprobe_last_error(a->local.probe));
        return r;
    }
    s->seen = n > 0;
    logical_check_ready(a, role, local, n, now);
    LogicalPlan plan;
    r = logical_plan(&w, primary, local, n, published, logical_ignored, a, &plan);
    if (r < 0 && r != -E2BIG) {
        slots_wanted_done(&w);
        return r;
    }
    _cleanup_free_ char *problem = NULL;
    size_t problem_size = 0;
    FILE *f = open_memstream(&problem, &problem_size);
    bool any = false;
    if (f && plan.problem) {
        fputs(plan.problem, f);
        any = true;
    }
    PgProbeConfig local_cfg;
    logical_probe_config(&a->config->postgresql.superuser, a->local.ctl.local_host,
                         (unsigned)a->local.ctl.port, NULL, &local_cfg);
    bool copy = false;
    for (size_t i = 0; i < plan.n && f; i++) {
        LogicalAction *act = &plan.actions[i];
        if (act->step == LOGICAL_ADVANCE && logical_broken(s, act->name) >= 0) {
            if (now < s->copy_after_usec || role != SLOTS_REPLICA) {
                continue; /* it cannot advance; a new copy replaces it in time */
            }
            act->step = LOGICAL_COPY;
        }
        if (act->step == LOGICAL_COPY) {
            copy = true;
            continue;
        }
        char err[PGPROBE_ERROR_MAX] = "";
        r = logical_run(&s->conns, &local_cfg, a->local.probe, act,
                        clock_monotonic_usec() + EXEC_SQL_DEADLINE_USEC, err, sizeof(err));
        static const char *const verbs[] = { [LOGICAL_CREATE] = "created",
                                             [LOGICAL_RECREATE] = "dropped and created again "
                                                                  "(its database or plugin "
                                                                  "changed)",
                                             [LOGICAL_ADVANCE] = "advanced",
                                             [LOGICAL_DROP] = "dropped" };
        if (r == -ENOENT && act->step == LOGICAL_ADVANCE) {
            /* Patroni drops it and copies it again at once. Here it stays
             * until a new copy replaces it (a primary made of this replica
             * meanwhile has a slot its consumer fails on, loudly, not a
             * new one that silently starts later), and the copy is made
             * after a backoff: each costs a restart, and the primary's slot
             * may still start before this replica's WAL (a slot no consumer
             * moved since this replica was cloned) */
            if (logical_broken(s, act->name) < 0 && s->n_broken < LOGICAL_SLOTS_MAX) {
                memcpy(s->broken[s->n_broken++], act->name, sizeof(act->name));
            }
            s->copy_backoff_usec =
                s->copy_backoff_usec ? 2 * s->copy_backoff_usec : LOGICAL_COPY_BACKOFF_MIN_USEC;
            if (s->copy_backoff_usec > LOGICAL_COPY_BACKOFF_MAX_USEC) {
                s->copy_backoff_usec = LOGICAL_COPY_BACKOFF_MAX_USEC;
            }
            s->copy_after_usec = now + s->copy_backoff_usec;
            log_warning("logical slot \"%s\" cannot advance here (the WAL it needs is not on "
                        "this replica): kept until a new copy from the primary replaces it, in "
                        "%" PRIu64 " s",
                        act->name, s->copy_backoff_usec / 1000000);
            continue;
        }
        if (r < 0) {
            fprintf(f, "%s\"%s\" not %s: %s", any ? "; " : "", act->name,
                    act->step == LOGICAL_ADVANCE ? "advanced"
                    : act->step == LOGICAL_DROP  ? "dropped"
                                                 : "created",
                    err);
            any = true;
        } else if (act->step == LOGICAL_ADVANCE) {
            s->copy_backoff_usec = 0; /* a copy that works */
            logical_unbreak(s, act->name);
            log_debug("logical slot \"%s\" advanced to %X/%X", act->name,
                      (unsigned)(act->lsn >> 32), (unsigned)act->lsn);
        } else if (act->step == LOGICAL_CREATE && json_object_get(published, act->name)) {
            /* the status key says it was there: on the primary before us,
             * or here until someone dropped it */
            log_error("logical slot \"%s\" was missing on this primary (the primary before "
                      "it published the slot): created anew at the current position, so its "
                      "consumers miss the changes between their position and this one",
                      act->name);
        } else {
            log_info("logical slot \"%s\" %s", act->name, verbs[act->step]);
        }
    }
    if (copy && f && role == SLOTS_REPLICA && now >= s->copy_after_usec) {
        logical_copy(a, &plan, now, f, &any);
    }
    json_decref(s->positions);
    s->positions = primary ? json_incref(plan.positions) : NULL;
    if (f && fclose(f) == 0) {
        logical_problem(a, any ? problem : NULL);
    }
    logical_plan_done(&plan);
    slots_wanted_done(&w);
    return 0;
}

/* leader: a slot for every other member (a primary, or a replica about to
 * be promoted); else the slots of the members that cascade from us. */
/* FNV-1a over the names streaming from us: the part of the snapshot the
 * plan reads (streams_from_us). */
static uint64_t streamers_hash(const PgSnapshot *snap)
{
    uint64_t h = 14695981039346656037ULL;
    size_t n =
        snap->n_replication < PGPROBE_REPLICAS_MAX ? snap->n_replication : PGPROBE_REPLICAS_MAX;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(snap->replication[i].state, "streaming") != 0) {
            continue;
        }
        for (const char *c = snap->replication[i].application_name;; c++) {
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
            if (!*c) {
                break;
            }
        }
    }
    return h;
}

static bool slots_unchanged(const SlotsDone *d, const Agent *a, uint64_t now)
{
    return d->plan && d->postmaster == a->local.postmaster_pid &&
           d->slots == a->local.snap.physical_slots && now - d->at_usec < SLOTS_RECHECK_USEC;
}

static int sync_slots_as(Agent *a, bool leader)
{
    if (!agent_dcs(a)->use_slots || !a->cluster || !a->local.probe_ok) {
        return 0;
    }
    /* the plan below is built from the view, the leader flag and who
     * streams from us: when none of them moved, neither did the plan */
    uint64_t streamers = streamers_hash(&a->local.snap);
    uint64_t now = clock_monotonic_usec();
    SlotsDone *done = &a->slots_done;
    if (slots_unchanged(done, a, now) && done->leader == leader &&
        done->revision == a->cluster->revision && done->streamers == streamers) {
        return 0;
    }
    _cleanup_free_ char *create = NULL, *advance = NULL;
    size_t create_size = 0, advance_size = 0;
    SlotSet set = { .snap = &a->local.snap,
                    .create = open_memstream(&create, &create_size),
                    .advance = open_memstream(&advance, &advance_size) };
    if (!set.create || !set.advance) {
        if (set.create) {
            fclose(set.create);
        }
        if (set.advance) {
            fclose(set.advance);
        }
        return -ENOMEM;
    }
    const char *me = a->config->name;
    char own[PGPROBE_NAME_MAX];
    slot_name(me, own, sizeof(own));
    SlotsWanted wanted;
    SlotsRole role = !leader                     ? SLOTS_REPLICA
                     : a->local.snap.in_recovery ? SLOTS_STANDBY_LEADER
                                                 : SLOTS_PRIMARY;
    if (slots_wanted(agent_dcs(a), own, role, &wanted) < 0) {
        fclose(set.create);
        fclose(set.advance);
        return -ENOMEM;
    }
    log_slots_problem(done, wanted.problem);
    if (leader) {
        for (size_t i = 0; i < a->cluster->n_members; i++) {
            if (strcmp(a->cluster->members[i].name, me) != 0) {
                want_slot(&a->cluster->members[i], &set);
            }
        }
        /* names checked by slots_wanted(): [a-z0-9_] only */
        for (size_t i = 0; i < wanted.n_permanent; i++) {
            fprintf(set.create, ",('%s')", wanted.permanent[i]);
        }
    } else {
        (void)upstream_foreach_downstream(a->cluster, me, want_slot, &set);
    }
    bool ok = fclose(set.create) == 0;
    ok = fclose(set.advance) == 0 && ok;
    _cleanup_free_ char *keep = NULL;
    size_t keep_size = 0;
    FILE *k = ok ? open_memstream(&keep, &keep_size) : NULL;
    if (k) {
        fputs(create, k);
        for (size_t i = 0; i < wanted.n_ignored; i++) {
            fprintf(k, ",('%s')", wanted.ignored[i]);
        }
        ok = fclose(k) == 0;
    }
    /* paused, nothing is dropped (Patroni's _drop_incorrect_slots): an
     * agent stopped for an upgrade loses its member key after ttl, and its
     * running replica still streams through its slot */
    bool drop = !wanted.ignore_all && !dcs_cluster_is_paused(a->cluster);
    slots_wanted_done(&wanted);
    if (!ok || !k) {
        return -ENOMEM;
    }
    /* ('') keeps each VALUES list valid when it is empty. A slot that
     * ignore_slots names is kept as if wanted (Patroni's
     * ignore_replication_slot()); a matcher without a name keeps them all. */
    _cleanup_free_ char *sql = NULL;
    if (asprintf(&sql,
                 "SET synchronous_commit = local;"
                 "SELECT pg_catalog.pg_create_physical_replication_slot(n, true) FROM (VALUES "
                 "('')%s) AS w(n) WHERE n <> '' AND NOT EXISTS (SELECT 1 FROM "
                 "pg_catalog.pg_replication_slots s WHERE s.slot_name = w.n);"
                 "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
                 "pg_catalog.pg_replication_slots WHERE %s slot_type = 'physical' AND NOT active "
                 "AND slot_name NOT IN (SELECT n FROM (VALUES ('')%s) AS k(n))",
                 create, drop ? "" : "false AND", keep) < 0) {
        return -ENOMEM;
    }
    /* The same statements under the same postmaster as last time, with as
     * many physical slots as then, change nothing (a slot is created only
     * when missing, dropped only when unwanted, advanced only when behind):
     * they run when what we want changes, PostgreSQL restarts, a slot comes
     * or goes behind our back (the probe's count differs from the one right
     * after our statements), and every
     * SLOTS_RECHECK_USEC for the rest (a slot dropped and another created
     * in between). Patroni 3.0.2 looks again only after a restart or a role
     * change. */
    _cleanup_free_ char *plan = NULL;
    if (asprintf(&plan, "%d%s\n%s", leader, sql, set.n_advance ? advance : "") < 0) {
        plan = NULL;
        return -ENOMEM;
    }
    if (slots_unchanged(done, a, now) && strcmp(done->plan, plan) == 0) {
        done->leader = leader;
        done->revision = a->cluster->revision;
        done->streamers = streamers;
        return 0;
    }
    free(done->plan);
    done->plan = NULL;
    int r = agent_exec_sql(a, sql, NULL);
    if (r < 0) {
        return r;
    }
    /* the count after them: compared with the next probe's, a slot dropped
     * or created behind our back after these statements still shows (the
     * probe's count from before them would miss a slot we just created and
     * someone dropped again) */
    PGresult *count = NULL;
    r = agent_exec_sql(a,
                       "SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots "
                       "WHERE slot_type = 'physical'",
                       &count);
    bool counted = r >= 0 && count && PQntuples(count) == 1;
    unsigned after = counted ? (unsigned)strtoul(PQgetvalue(count, 0, 0), NULL, 10) : 0;
    if (count) {
        PQclear(count);
    }
    if (!counted) {
        return r < 0 ? r : -EPROTO;
    }
    *done = (SlotsDone){ .problem = done->problem,
                         .plan = TAKE_PTR(plan),
                         .postmaster = a->local.postmaster_pid,
                         .slots = after,
                         .at_usec = now,
                         .leader = leader,
                         .revision = a->cluster->revision,
                         .streamers = streamers };
    if (set.n_advance == 0) {
        return 0;
    }
    /* apart, so that a slot taken in between fails only this statement */
    _cleanup_free_ char *adv = NULL;
    /* PostgreSQL moves a slot no further than its flush (a standby: replay)
     * position and refuses to move it backwards: the target is capped here
     * so that the comparison with restart_lsn sees the same value */
    if (asprintf(&adv,
                 "SELECT pg_catalog.pg_replication_slot_advance(s.slot_name, t.lsn) FROM ("
                 "SELECT w.n, LEAST(w.lsn - seg.b, cap.lsn) AS lsn FROM (VALUES %s) AS w(n, lsn), "
                 "(SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting("
                 "'wal_segment_size')) AS b) AS seg, "
                 "(SELECT CASE WHEN pg_catalog.pg_is_in_recovery() "
                 "THEN pg_catalog.pg_last_wal_replay_lsn() "
                 "ELSE pg_catalog.pg_current_wal_flush_lsn() END AS lsn) AS cap "
                 "WHERE w.lsn - '0/0'::pg_catalog.pg_lsn > seg.b) AS t "
                 "JOIN pg_catalog.pg_replication_slots s ON s.slot_name = t.n "
                 "WHERE s.slot_type = 'physical' AND NOT s.active AND s.restart_lsn IS NOT NULL "
                 "AND s.restart_lsn < t.lsn",
                 advance) < 0) {
        return -ENOMEM;
    }
    PGresult *res = NULL;
    if (pgprobe_exec(a->local.probe, adv, clock_monotonic_usec() + EXEC_SQL_DEADLINE_USEC, &res) <
        0) {
        log_debug("advancing unused slots: %s", pgprobe_last_error(a->local.probe));
    }
    if (res) {
        PQclear(res);
    }
    return 0;
}

static int publish_status(Agent *a)
{
    if (!a->local.probe_ok || a->local.snap.in_recovery) {
        return 0; /* a standby leader: the optime is the remote cluster's */
    }
    /* written when the optime moved (Patroni 3.0.2 writes it only when it
     * changed too): an idle cluster writes nothing */
    const DcsStatus *st = a->cluster ? &a->cluster->status : NULL;
    int r = 0;
    const json_t *slots = json_object_size(a->logical.positions) ? a->logical.positions : NULL;
    bool same_slots = st && ((!slots && json_object_size(st->slots) == 0) ||
                             (slots && st->slots && json_equal(st->slots, slots)));
    if (!st || st->mod_revision == 0 || st->legacy_optime || !same_slots || !st->has_optime ||
        st->optime != a->local.snap.current_lsn) {
        _cleanup_free_ char *v = NULL;
        r = dcs_status_encode(a->local.snap.current_lsn, slots, &v);
        if (r < 0) {
            return r;
        }
        r = stored(a, dcs_store_write_status(&a->store, v), a->paths.status);
    }
    (void)agent_publish_topology(a);
    return r;
}

int agent_release_leader(Agent *a)
{
    int r = dcs_store_release_leader(&a->store, a->config->name);
    if (r == -ECANCELED) {
        return 0; /* not ours (any more): nothing to release */
    }
    if (r < 0) {
        return etcd_fail(r, "releasing the leader key", &a->store.error);
    }
    log_struct_id(LOG_LEVEL_NOTICE, "c4e1b7a9d3f2486b8e5a0c1d2b3f4e5a", "released the leader key");
    agent_mirror_leader_v2(a, false);
    return 0;
}

static bool query_is_false(Agent *a, const char *sql, bool *ret)
{
    PGresult *res = NULL;
    if (agent_exec_sql(a, sql, &res) < 0 || !res) {
        if (res) {
            PQclear(res);
        }
        return false;
    }
    bool ok = PQntuples(res) == 1 && PQnfields(res) == 1;
    if (ok) {
        *ret = strcmp(PQgetvalue(res, 0, 0), "f") == 0;
    }
    PQclear(res);
    return ok;
}

/* pg_promote(wait => false) returns at once; polling pg_is_in_recovery()
 * every 10 ms learns of the promotion ~50 ms sooner than wait => true,
 * which polls in 100 ms steps. */
/* The fork point of the timeline we just created, from its history file
 * (pg_wal/<TLI>.history, last line: "<parent TLI>\t<LSN>\t<reason>"):
 * PostgreSQL's own record, where the probe's figures from before the
 * promotion may be stale (pg_control's timeline lags until a checkpoint).
 * Returns 0 and both values, or a negative errno (the caller keeps its
 * estimates). */
static int read_fork_point(Agent *a, uint32_t *ret_parent, uint64_t *ret_lsn, char *ret_reason,
                           size_t reason_size)
{
    PGresult *res = NULL;
    int r = agent_exec_sql(
        a,
        "SELECT pg_catalog.pg_read_file('pg_wal/' || pg_catalog.substr(pg_catalog.pg_walfile_name("
        "pg_catalog.pg_current_wal_lsn()), 1, 8) || '.history')",
        &res);
    if (r < 0) {
        return r;
    }
    r = -EBADMSG;
    const char *text = res && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : NULL;
    const char *line = NULL;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (*p >= '0' && *p <= '9') {
            line = p; /* the last line that starts with a timeline number */
        }
    }
    if (line) {
        char *end = NULL;
        unsigned long tli = strtoul(line, &end, 10);
        char lsn[PGPROBE_LSN_STR_MAX];
        size_t n = end && *end == '\t' ? strcspn(end + 1, "\t\n") : 0;
        if (tli > 0 && n > 0 && n < sizeof(lsn)) {
            memcpy(lsn, end + 1, n);
            lsn[n] = '\0';
            if (pgprobe_parse_lsn(lsn, ret_lsn) == 0) {
                *ret_parent = (uint32_t)tli;
                /* the third field: PostgreSQL's reason ("no recovery target
                 * specified"), which Patroni copies into `history` */
                const char *why = end + 1 + n;
                size_t wn = *why == '\t' ? strcspn(why + 1, "\n") : 0;
                if (wn > 0 && wn < reason_size) {
                    memcpy(ret_reason, why + 1, wn);
                    ret_reason[wn] = '\0';
                }
                r = 0;
            }
        }
    }
    PQclear(res);
    return r;
}

/* ---- synchronous_mode (the plan: sync_plan() in agent/sync.h) ---- */

/* Writes postgresql.conf with `names` (NULL: not managed) and reloads. */
static int apply_sync_names(Agent *a, const char *names)
{
    if (sync_rep_set_names(&a->sync, names) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    a->local.ctl.synchronous_standby_names = sync_rep_names(&a->sync);
    int r = agent_write_conf(a, a->local.probe_ok && a->local.snap.in_recovery);
    if (r < 0) {
        return r;
    }
    r = agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL);
    if (r < 0) {
        return r;
    }
    a->sync.release_lsn = 0;
    agent_callbacks(a, CALLBACKS_EVENT_RELOADED);
    if (names) {
        log_struct_id(LOG_LEVEL_NOTICE, "0c6a2e8f4b1d4a97a3e5c7b9d1f3a5e7",
                      "synchronous_standby_names = '%s'", names);
    } else {
        log_notice("synchronous_standby_names is no longer managed (synchronous_mode off)");
    }
    return 0;
}

static uint64_t flush_lsn_now(Agent *a)
{
    PGresult *res = NULL;
    uint64_t lsn = 0;
    if (agent_exec_sql(a, "SELECT pg_catalog.pg_current_wal_flush_lsn()::text", &res) >= 0 && res &&
        PQntuples(res) == 1 && pgprobe_parse_lsn(PQgetvalue(res, 0, 0), &lsn) < 0) {
        lsn = 0;
    }
    if (res) {
        PQclear(res);
    }
    return lsn;
}

/* The leader's loop step: one effect of the plan. */
static int sync_replication(Agent *a)
{
    SyncEnv env = agent_sync_env(a);
    SyncReplica rows[PGPROBE_REPLICAS_MAX];
    SyncPlanInput in;
    if (!sync_rep_input(&a->sync, &env, rows, &in)) {
        return 0;
    }
    SyncStep st;
    if (sync_plan(&in, &st) < 0) {
        return log_error_errno(-ENOBUFS, "synchronous_standby_names too long");
    }
    a->sync.async_said = st.async_said;
    if (st.say_strict_wait) {
        log_warning("synchronous_mode_strict: no replica can be a synchronous standby; "
                    "commits wait until one streams");
    }
    if (st.say_async) {
        log_struct_id(LOG_LEVEL_WARNING, "9d7f5b3a1e2c4d68b0a2c4e6f8a0b2d4",
                      "no replica can be a synchronous standby: replicating asynchronously "
                      "until one streams (synchronous_mode_strict is off)");
    }
    int r = 0;
    switch (st.effect) {
    case SYNC_EFFECT_PUT_KEY:
        r = sync_rep_write_key(&a->sync, &env, &st.key);
        if (r >= 0 && st.clears_release) {
            a->sync.release_lsn = 0;
        }
        return r;
    case SYNC_EFFECT_DELETE_KEY:
        return sync_rep_write_key(&a->sync, &env, NULL);
    case SYNC_EFFECT_SET_NAMES:
        return apply_sync_names(a, st.names);
    case SYNC_EFFECT_UNSET_NAMES:
        return apply_sync_names(a, NULL);
    case SYNC_EFFECT_NOTE_RELEASE:
        a->sync.release_lsn = flush_lsn_now(a);
        agent_schedule_tick(a, clock_monotonic_usec() + 1000 * 1000ULL);
        return 0;
    case SYNC_EFFECT_NONE:
    case _SYNC_EFFECT_MAX:
        break;
    }
    return r;
}

/* Before pg_promote: the `sync` key names only us and
 * synchronous_standby_names is "*" (strict) or "". Fails when the key no
 * longer names us as a synchronous standby (unless an operator's failover
 * names us: refused there unless forced). */
static int sync_before_promote(Agent *a)
{
    const ConfigDcs *dcs = agent_dcs(a);
    if (!dcs->synchronous_mode) {
        /* a value left from when we led in synchronous_mode must not make
         * the new primary's commits wait */
        return sync_rep_names(&a->sync) ? apply_sync_names(a, NULL) : 0;
    }
    const char *cand = dcs_failover_candidate(a->cluster);
    bool named = cand && strcmp(cand, a->config->name) == 0;
    const char *why = dcs_sync_problem(a->cluster, true, a->config->name);
    if (why && !named) {
        return log_warning_errno(-EPERM, "not promoting: %s", why);
    }
    SyncEnv env = agent_sync_env(a);
    SyncSet none = { 0 };
    int r = sync_rep_write_key(&a->sync, &env, &none);
    if (r < 0) {
        return r;
    }
    /* until a replica streams from us nothing but "*" (strict) can hold commits */
    return apply_sync_names(a, dcs->synchronous_mode_strict ? "*" : "");
}

static int promote_done(Agent *a, uint64_t switch_lsn, uint32_t old_timeline, uint64_t t0);

static int promote(Agent *a)
{
    uint64_t switch_lsn = a->local.snap.replay_lsn > a->local.snap.receive_lsn
                              ? a->local.snap.replay_lsn
                              : a->local.snap.receive_lsn;
    uint32_t old_timeline = a->local.snap.timeline;
    bool again = a->mem.promote_usec != 0; /* asked before, not finished */
    /* synchronous_mode: the sync key names only us before we accept writes
     * (done the first time; the key is not let go while a promotion may
     * still finish) */
    int r = again ? 0 : sync_before_promote(a);
    if (r < 0) {
        (void)agent_release_leader(a);
        return r;
    }
    uint64_t t0 = clock_monotonic_usec();
    bool promoted = false;
    if (again && query_is_false(a, "SELECT pg_catalog.pg_is_in_recovery()", &promoted) &&
        promoted) {
        /* it finished between two looks: only the steps after it are left */
        return promote_done(a, switch_lsn, old_timeline, a->mem.promote_usec);
    }
    promoted = false;
    r = agent_exec_sql(a, "SELECT pg_catalog.pg_promote(wait => false)", NULL);
    if (r < 0) {
        /* whether the request reached PostgreSQL is not known: it counts
         * as asked for (the policy waits, and stops PostgreSQL if it stalls) */
        log_warning("pg_promote failed; treating the promotion as pending");
        return -EINPROGRESS;
    }
    /* never past the lease's next renewal: the loop renews it between waits */
    uint64_t limit = t0 + AGENT_PROMOTE_WAIT_MAX_USEC;
    uint64_t due = lease_renew_due_usec(&a->lease);
    if (due != 0 && due < limit) {
        limit = due > t0 + AGENT_PROMOTE_WAIT_MIN_USEC ? due : t0 + AGENT_PROMOTE_WAIT_MIN_USEC;
    }
    for (uint64_t waited = 0; clock_monotonic_usec() < limit; waited += AGENT_PROMOTE_POLL_USEC) {
        bool done = false;
        if (query_is_false(a, "SELECT pg_catalog.pg_is_in_recovery()", &done) && done) {
            promoted = true;
            break;
        }
        /* PostgreSQL 15 takes a promote request that arrives just after its
         * walreceiver died (the old primary stopped) and then sleeps out
         * wal_retrieve_retry_interval (5 s by default) before acting on it:
         * measured 5008 ms in a switchover. A SIGHUP sets the startup
         * process's latch, which ends that sleep; a reload has no other
         * effect here. */
        if (waited > 0 && waited % AGENT_PROMOTE_NUDGE_USEC == 0) {
            (void)agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL);
        }
        struct timespec ts = { .tv_nsec = (long)AGENT_PROMOTE_POLL_USEC * 1000 };
        nanosleep(&ts, NULL);
    }
    if (!promoted) {
        if (again) {
            log_debug("postgresql is still in recovery after pg_promote");
        } else {
            log_warning("postgresql did not leave recovery within %llu ms of pg_promote: "
                        "waiting for it, with the fence armed and the lease renewed",
                        (unsigned long long)(clock_monotonic_usec() - t0) / 1000);
        }
        return -EINPROGRESS;
    }
    return promote_done(a, switch_lsn, old_timeline, again ? a->mem.promote_usec : t0);
}

/* What follows a promotion PostgreSQL finished (asked for at t0). */
static int promote_done(Agent *a, uint64_t switch_lsn, uint32_t old_timeline, uint64_t t0)
{
    int r;
    /* the rest of this tick acts on the snapshot from before: it must not
     * treat us as a replica (SYNC_SLOTS would keep only a replica's slots
     * and drop the ones the others are about to use) */
    a->local.snap.in_recovery = false;
    log_struct_id(LOG_LEVEL_NOTICE, "e8d4c2b6a0f94e1d8c7b5a3f2e1d0c9b",
                  "promoted to primary in %llu ms",
                  (unsigned long long)(clock_monotonic_usec() - t0) / 1000);
    agent_callbacks(a, CALLBACKS_EVENT_PROMOTED); /* not waited for */
    /* our postgresql.conf must stop pointing at the old upstream */
    r = agent_write_conf(a, false);
    if (r >= 0) {
        r = agent_exec_sql(a, "SELECT pg_catalog.pg_reload_conf()", NULL);
    }
    if (r < 0) {
        log_warning("could not rewrite the configuration after promotion");
    }
    char reason[128] = "no recovery target specified";
    if (read_fork_point(a, &old_timeline, &switch_lsn, reason, sizeof(reason)) < 0) {
        log_warning("could not read the new timeline's history file: the history key gets "
                    "the positions seen before the promotion");
    }
    /* pg_rewind on the others reads the new timeline from pg_control */
    if (agent_exec_sql(a, "CHECKPOINT", NULL) < 0) {
        log_warning("CHECKPOINT after promotion failed: pg_rewind may see the old timeline");
    }
    /* the topology written in this tick names the new timeline */
    PGresult *tli = NULL;
    if (agent_exec_sql(a, "SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()", &tli) >=
            0 &&
        tli && PQntuples(tli) == 1) {
        long v = strtol(PQgetvalue(tli, 0, 0), NULL, 10);
        if (v > 0) {
            a->local.snap.timeline = (uint32_t)v;
        }
    }
    if (tli) {
        PQclear(tli);
    }
    _cleanup_free_ char *old = NULL, *history = NULL, *ts = iso_now();
    if (a->cluster && a->cluster->history && a->cluster->history->data) {
        old = json_dumps(a->cluster->history->data, JSON_COMPACT);
    }
    const DcsConfig *cc = a->cluster ? a->cluster->config : NULL;
    if (ts && dcs_history_append(old, old_timeline ? old_timeline : 1, switch_lsn, reason, ts,
                                 a->config->name, cc ? cc->dcs.max_timelines_history : 0,
                                 &history) >= 0) {
        /* written by the loop after the action, when the lease renewal that
         * the wait for the promotion may have run up to is done */
        free(a->history_pending);
        a->history_pending = TAKE_PTR(history);
    }
    return 0;
}

/* SIGKILL to the postmaster and every process of it (postmaster.h says why
 * not SIGQUIT): no transaction commits after it, and nothing here can hang
 * (unlike pg_ctl or a query). */
static int fence(Agent *a)
{
    PmProc pm;
    if (pm_find(a->local.ctl.data_dir, &pm, NULL, NULL) < 0) {
        a->local.running = false;
        a->local.probe_ok = false;
        return 0;
    }
    log_struct_id(LOG_LEVEL_WARNING, "b3a2f1e0d9c84b7aa6958473625140f3",
                  "fencing: killing postgresql (postmaster %d and its processes)", (int)pm.pid);
    PmStopReport rep;
    int r = pm_kill_now(&pm, PM_FENCE_KILL_WAIT_USEC, &rep);
    if (r < 0) {
        /* not gone: the agent does not pretend it is, so the fence stays
         * armed and the next tick fences again */
        return log_error_errno(r,
                               "fencing: %zu processes of postmaster %d still run after "
                               "SIGKILL",
                               rep.left, (int)pm.pid);
    }
    log_info("fencing: postmaster %d%s and %zu processes: SIGKILL after %llu ms, all gone after "
             "%llu ms",
             (int)pm.pid, rep.stopped_found ? " (found stopped)" : "", rep.processes - 1,
             (unsigned long long)(rep.kill_usec / 1000),
             (unsigned long long)(rep.took_usec / 1000));
    a->local.running = false;
    a->local.probe_ok = false;
    agent_callbacks(a, CALLBACKS_EVENT_STOPPED);
    return 0;
}

static int rewind_data(Agent *a)
{
    const DcsMember *lm = leader_member(a);
    if (!lm || !lm->host) {
        return log_warning_errno(-ENOENT, "no leader address to rewind against");
    }
    log_info("rewinding against \"%s\" (%s:%d)", lm->name, lm->host, lm->port);
    return run_against(a, lm, JOB_REWIND, pgctl_argv_rewind, AGENT_REWIND_TIMEOUT_SEC);
}

/* Planned switchover, the old primary's half: a CHECKPOINT first keeps the
 * shutdown checkpoint short; a fast shutdown then makes the walsenders send
 * every WAL record to the connected standbys before the server exits, so the
 * candidate has all of it; only then is the leader key released. */
/* The walsender serving the candidate, found before the stop: its normal
 * exit during a fast shutdown means the candidate confirmed every WAL
 * record, the shutdown checkpoint included. 0 when there is none. */
static pid_t candidate_walsender(Agent *a)
{
    const char *cand = dcs_failover_candidate(a->cluster);
    PGresult *res = NULL;
    pid_t pid = 0;
    if (!cand || agent_exec_sql(a,
                                "SELECT pid, application_name FROM pg_catalog.pg_stat_replication"
                                " WHERE state = 'streaming'",
                                &res) < 0) {
        return 0;
    }
    for (int i = 0; res && i < PQntuples(res); i++) {
        if (strcmp(PQgetvalue(res, i, 1), cand) == 0) {
            pid = (pid_t)strtol(PQgetvalue(res, i, 0), NULL, 10);
        }
    }
    PQclear(res);
    return pid;
}

/* Stops PostgreSQL for a switchover and releases the leader key as early as
 * is safe. pg_ctl stop -m fast sends SIGINT and then looks at postmaster.pid
 * every 100 ms; the agent sends the signal itself and looks every
 * SWITCHOVER_STOP_POLL_USEC. The key goes as soon as (1) pg_control says
 * "shut down" (the shutdown checkpoint is written: every backend is gone,
 * nothing more can be committed) and (2) the candidate's walsender has
 * exited (the candidate confirmed all WAL, that checkpoint included), even
 * while the postmaster still winds down (under client load that tail took
 * 180 ms here: connection attempts refused during shutdown). Then the
 * function waits for the postmaster itself, so that nothing starts while it
 * lives. Falls back to pg_ctl, releasing after the stop, when the postmaster
 * cannot be signalled. Returns 0 or a negative errno; *ret_released tells
 * whether the key is released, *ret_confirmed whether the candidate
 * confirmed the shutdown checkpoint. */
#define SWITCHOVER_STOP_POLL_USEC (5 * 1000ULL)
static int switchover_stop(Agent *a, uint64_t *ret_stop_usec, bool *ret_released,
                           bool *ret_confirmed)
{
    *ret_released = false;
    *ret_confirmed = false;
    /* before_stop while PostgreSQL still runs (Patroni 3.1's order); the
     * loop waits, and the fence stays armed at the lease's deadline */
    agent_run_before_stop(a);
    pid_t walsender = candidate_walsender(a);
    uint64_t t0 = clock_monotonic_usec();
    PmProc pm;
    if (pm_find(a->local.ctl.data_dir, &pm, NULL, NULL) == 0 && kill(pm.pid, SIGINT) == 0) {
        uint64_t deadline = t0 + AGENT_STOP_TIMEOUT_SEC * 1000000ULL;
        while (clock_monotonic_usec() < deadline) {
            bool gone = !pm_proc_running(&pm);
            if (!gone && !*ret_released && walsender > 0 && !pgprobe_pid_is_postmaster(walsender) &&
                pgctl_control_shut_down(a->local.ctl.data_dir) == 1) {
                *ret_stop_usec = clock_monotonic_usec() - t0;
                *ret_confirmed = true;
                *ret_released = agent_release_leader(a) >= 0;
                log_info("switchover: shutdown checkpoint written and delivered to the "
                         "candidate after %llu ms: leader key released",
                         (unsigned long long)*ret_stop_usec / 1000);
            }
            if (gone) {
                if (!*ret_released) {
                    *ret_stop_usec = clock_monotonic_usec() - t0;
                    /* it all ended between two looks: the same evidence */
                    *ret_confirmed = walsender > 0 && !pgprobe_pid_is_postmaster(walsender) &&
                                     pgctl_control_shut_down(a->local.ctl.data_dir) == 1;
                    if (*ret_confirmed) {
                        log_info("switchover: shutdown checkpoint written and delivered to the "
                                 "candidate after %llu ms; postgresql exited before the next "
                                 "look: leader key released next",
                                 (unsigned long long)*ret_stop_usec / 1000);
                    }
                }
                return 0;
            }
            (void)usleep((useconds_t)SWITCHOVER_STOP_POLL_USEC);
        }
        return log_error_errno(-ETIMEDOUT, "postgresql did not stop within %d s",
                               AGENT_STOP_TIMEOUT_SEC);
    }
    PgArgv argv = { 0 };
    int r = pgctl_argv_stop(&a->local.ctl, "fast", AGENT_STOP_TIMEOUT_SEC, &argv);
    if (r >= 0) {
        r = jobs_run_sync(&a->jobs, argv.argv, AGENT_STOP_TIMEOUT_SEC + 5);
    }
    pgctl_argv_done(&argv);
    *ret_stop_usec = clock_monotonic_usec() - t0;
    return r;
}

static int switchover_demote(Agent *a)
{
    uint64_t t0 = clock_monotonic_usec();
    (void)agent_exec_sql(a, "CHECKPOINT", NULL);
    uint64_t t1 = clock_monotonic_usec();
    uint64_t stop_usec = 0;
    bool released = false, confirmed = false;
    int r = switchover_stop(a, &stop_usec, &released, &confirmed);
    if (r < 0) {
        if (released) {
            return log_error_errno(r, "switchover: postgresql did not finish stopping: %m");
        }
        return log_error_errno(r, "switchover: stopping postgresql failed: %m");
    }
    a->local.running = false;
    a->local.probe_ok = false;
    agent_callbacks(a, CALLBACKS_EVENT_DEMOTED);
    uint64_t t2 = clock_monotonic_usec();
    if (!released) {
        r = agent_release_leader(a);
    }
    /* A clean stop whose last WAL the candidate confirmed: this server can
     * follow the candidate's new timeline as it is, so it comes back as a
     * replica without pg_rewind (standby.signal; the upstream is set once
     * the candidate holds the key). After the pg_ctl fallback that is not
     * known, and the former-primary path (pg_rewind) decides. */
    if (confirmed && agent_write_conf(a, true) >= 0) {
        log_info("switchover: standby.signal written; restarting as a replica without pg_rewind");
    }
    log_notice("switchover: checkpoint %llu ms, %s %llu ms, stopped after %llu ms",
               (unsigned long long)(t1 - t0) / 1000,
               released ? "key released while stopping after" : "stop, key released after",
               (unsigned long long)stop_usec / 1000, (unsigned long long)(t2 - t1) / 1000);
    return r;
}

static int clear_failover(Agent *a)
{
    int r = dcs_store_clear_failover(&a->store, -1);
    return r < 0 ? etcd_fail(r, "clearing the failover key", &a->store.error) : 0;
}

static int move_data_aside(Agent *a)
{
    _cleanup_free_ char *aside = NULL;
    int r = pgctl_move_aside(&a->local.ctl, &aside);
    if (r < 0) {
        return log_error_errno(r, "moving \"%s\" aside: %m", a->local.ctl.data_dir);
    }
    log_warning("moved the data directory aside to \"%s\" (kept, not deleted); cloning anew",
                aside);
    return 0;
}

int ha_exec_action(Agent *a, HaAction action)
{
    switch (action) {
    case HA_ACTION_RACE_INITIALIZE: {
        _cleanup_free_ char *holder = NULL;
        int r = create_key(a, a->paths.initialize, "", false, &holder);
        if (r == -ECANCELED) {
            return log_info_errno(r, "another member is bootstrapping the cluster");
        }
        return r;
    }
    case HA_ACTION_RECLAIM_INITIALIZE: {
        _cleanup_free_ char *v = NULL, *holder = NULL;
        if (dcs_initialize_encode(a->local.sysid, &v) < 0) {
            return -ENOMEM;
        }
        int r = create_key(a, a->paths.initialize, v, false, &holder);
        if (r >= 0) {
            log_warning("\"initialize\" was missing in etcd: set it to our system identifier %s",
                        v);
        }
        return r == -ECANCELED ? 0 : r;
    }
    case HA_ACTION_RUN_INITDB:
        return run_initdb(a);
    case HA_ACTION_PROMOTE:
        return promote(a);
    case HA_ACTION_RELEASE_LEADER:
        return agent_release_leader(a);
    case HA_ACTION_FENCE:
        return fence(a);
    case HA_ACTION_REWIND:
        return rewind_data(a);
    case HA_ACTION_MOVE_DATA_ASIDE:
        return move_data_aside(a);
    case HA_ACTION_RESTART_POSTGRES:
        return restart_postgres(a);
    case HA_ACTION_SWITCHOVER_DEMOTE:
        return switchover_demote(a);
    case HA_ACTION_CLEAR_FAILOVER:
        return clear_failover(a);
    case HA_ACTION_NOTE_CRASH:
        /* the time of the crash is observed in agent.c (it starts the
         * primary_start_timeout clock before any decision); this reports it */
        log_warning("the primary went down %llu ms ago: restarting it in place "
                    "(primary_start_timeout %" PRId64 " s)",
                    (unsigned long long)(clock_monotonic_usec() - a->mem.primary_down_usec) / 1000,
                    agent_dcs(a)->primary_start_timeout);
        return 0;
    case HA_ACTION_WRITE_PRIMARY_CONF: {
        SyncEnv env = agent_sync_env(a);
        sync_rep_before_start(&a->sync, &env);
        a->local.ctl.synchronous_standby_names = sync_rep_names(&a->sync);
    }
        return agent_write_conf(a, false);
    case HA_ACTION_WRITE_REPLICA_CONF:
        return agent_write_conf(a, true);
    case HA_ACTION_START_POSTGRES:
        return start_postgres(a);
    case HA_ACTION_STOP_POSTGRES:
        return stop_postgres(a);
    case HA_ACTION_FINISH_BOOTSTRAP:
        return finish_bootstrap(a);
    case HA_ACTION_RUN_PRE_PROMOTE:
        return run_pre_promote(a);
    case HA_ACTION_INITIALIZE_STANDBY:
        return initialize_standby(a);
    case HA_ACTION_RUN_POST_BOOTSTRAP:
        return run_post_bootstrap(a);
    case HA_ACTION_ABORT_BOOTSTRAP:
        return abort_bootstrap(a);
    case HA_ACTION_TAKE_LEADER:
        /* A replica about to lead: the others re-point at us as soon as they
         * see the leader key, so their slots must exist before it names us,
         * or each walreceiver fails ("replication slot does not exist") and
         * waits out wal_retrieve_retry_interval (5 s by default), with no
         * synchronous standby meanwhile. A standby can create physical
         * slots; if we do not lead after all, the replica's SYNC_SLOTS
         * drops them again. */
        if (a->local.probe_ok && a->local.snap.in_recovery) {
            if (sync_slots_as(a, true) < 0) {
                log_warning("could not create the members' slots before taking the leader key");
            } else {
                log_debug("created the members' slots before taking the leader key");
            }
        }
        return mirrored(a, take_leader(a));
    case HA_ACTION_RENEW_LEADER:
        return mirrored(a, renew_leader(a));
    case HA_ACTION_CLONE:
        return clone_replica(a);
    case HA_ACTION_REMOVE_CLONE:
        return remove_clone(a);
    case HA_ACTION_INSTALL_CLONE:
        return install_clone(a);
    case HA_ACTION_FOLLOW:
        return follow(a);
    case HA_ACTION_SYNC_SLOTS:
        return sync_slots(a);
    case HA_ACTION_SYNC_REPLICATION:
        return sync_replication(a);
    case HA_ACTION_PUBLISH_STATUS:
        return publish_status(a);
    case HA_ACTION_REFUSE:
        log_error("data directory \"%s\" holds another cluster (system identifier %" PRIu64
                  ", cluster \"%s\" has %s): refusing to touch it",
                  a->local.ctl.data_dir, a->local.sysid, a->config->scope,
                  a->cluster && a->cluster->initialize ? a->cluster->initialize : "none");
        return 0;
    default:
        log_error("unknown HA action %d: this is a bug", (int)action);
        return -EINVAL;
    }
}
