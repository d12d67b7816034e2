/* dbctl route pgbouncer: points pgbouncer's write database at the primary
 * and its read-only database at a healthy replica, from the cluster's
 * topology document, by rewriting the [databases] section of pgbouncer.ini
 * (lib/pgbini.c) and running RELOAD on pgbouncer's admin console. With
 * --watch it follows the cluster through an etcd watch until SIGINT/SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "clock.h"
#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "etcd.h"
#include "log.h"
#include "macro.h"
#include "pgbini.h"
#include "topology.h"

#define ROUTE_INI_MAX     (1024 * 1024)
#define ROUTE_DEFAULT_DB  "postgres"
#define ROUTE_READ_SUFFIX "_ro"
/* pgbouncer's defaults for the admin console */
#define ROUTE_DEFAULT_LISTEN_PORT "6432"
#define ROUTE_DEFAULT_SOCKET_DIR  "/tmp"
#define ROUTE_DEFAULT_ADMIN_USER  "pgbouncer"
#define ROUTE_ADMIN_DB            "pgbouncer"
#define ROUTE_CONNECT_TIMEOUT     "3"
#define ROUTE_QUERY_USEC          (5 * 1000 * 1000ULL)
/* --watch: the watch is polled in slices so a signal is seen quickly; a
 * full re-read every ROUTE_RESYNC_USEC catches edits of the ini file;
 * failures back off with jitter. */
#define ROUTE_POLL_USEC        (200 * 1000ULL)
#define ROUTE_RESYNC_USEC      (30 * 1000 * 1000ULL)
#define ROUTE_BACKOFF_MIN_USEC (200 * 1000ULL)
#define ROUTE_BACKOFF_MAX_USEC (5 * 1000 * 1000ULL)
#define ROUTE_NAME_MAX         256 /* a database name or a host */

typedef struct Route {
    const char *ini;      /* borrowed, --ini */
    char *ini_path;       /* owned, the file the rename replaces (symlinks resolved) */
    const char *write_db; /* borrowed */
    char read_db[ROUTE_NAME_MAX];
    const char *dbname;     /* borrowed */
    const char *admin_user; /* borrowed, NULL: from the ini */
    bool reload;            /* false with --no-reload */
    CtlTarget target;
    bool from_key;         /* the last read follows the topology key */
    TopologySource source; /* where the last read's document came from */
    int64_t revision;      /* etcd revision of the last read */
} Route;

static void route_done(Route *r)
{
    ctl_target_done(&r->target);
    free(r->ini_path);
}

/* ---- the topology ---- */

/* One range read of the cluster, so the topology and leader keys are seen
 * at one revision: the topology key's document while it names the leader
 * key's member, else the same document built from the leader and member
 * keys (a cluster whose agents do not write the key, or whose key is left
 * over from another leader: topology_select). Logs the failure, and the
 * source when it changes. */
static int read_topology(Route *rt, json_t **ret)
{
    EtcdClient *client = rt->target.client;
    EtcdError e = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int r = dcs_cluster_read(client, &rt->target.paths, &c, &e);
    if (r < 0) {
        return log_error_errno(r, "cannot read cluster \"%s\" from etcd (%s): %s", rt->target.scope,
                               etcd_client_get_endpoint(client),
                               e.message[0] ? e.message : strerror(-r));
    }
    bool first = rt->revision == 0;
    rt->revision = c->revision;
    TopologySource source;
    r = topology_select(c, rt->target.scope, ret, &source);
    if (r < 0) {
        return log_error_errno(r, "cannot build the topology document: %m");
    }
    if (first || source != rt->source) {
        const char *key = rt->target.paths.topology;
        const char *leader = c->leader ? c->leader->name : NULL;
        const char *named = topology_leader(c->topology);
        switch (source) {
        case TOPOLOGY_SOURCE_KEY:
            if (!first) {
                log_info("routing from the topology key \"%s\"", key);
            }
            break;
        case TOPOLOGY_SOURCE_NO_KEY:
            log_info("no topology key \"%s\": routing from the members' keys", key);
            break;
        default:
            log_notice("the topology key \"%s\" names leader \"%s\" but %s%s%s: routing from the "
                       "members' keys until the leader rewrites it",
                       key, named ? named : "(none)",
                       leader ? "the leader key names \"" : "there is no leader key",
                       leader ? leader : "", leader ? "\"" : "");
            break;
        }
    }
    rt->source = source;
    rt->from_key = source == TOPOLOGY_SOURCE_KEY;
    return 0;
}

/* ---- the ini file ---- */

static int read_ini(const char *path, char **ret_text, size_t *ret_len)
{
    _cleanup_free_ char *buf = malloc(ROUTE_INI_MAX + 1);
    if (!buf) {
        return -ENOMEM;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        return -errno;
    }
    size_t n = fread(buf, 1, ROUTE_INI_MAX + 1, f);
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    if (err < 0) {
        return err;
    }
    if (n > ROUTE_INI_MAX) {
        return -EFBIG;
    }
    buf[n] = 0;
    *ret_text = TAKE_PTR(buf);
    *ret_len = n;
    return 0;
}

/* Replaces path with text: a temp file in the same directory with the
 * original's mode (and owner, when allowed), fsync, rename, fsync of the
 * directory. A reader sees the old file or the new one, never a mix. */
static int write_atomic(const char *path, const char *text, size_t len)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        return -errno;
    }
    _cleanup_free_ char *dir_copy = strdup(path), *base_copy = strdup(path);
    if (!dir_copy || !base_copy) {
        return -ENOMEM;
    }
    const char *dir = dirname(dir_copy);
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s/.%s.dbctl-XXXXXX", dir, basename(base_copy)) < 0) {
        tmp = NULL;
        return -ENOMEM;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int r = 0;
    if (fchmod(fd, st.st_mode & 07777) < 0) {
        r = -errno;
    }
    /* keep the owner when we may (root); otherwise the file becomes ours */
    (void)!fchown(fd, st.st_uid, st.st_gid);
    for (size_t off = 0; r == 0 && off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno != EINTR) {
            r = -errno;
        } else if (w > 0) {
            off += (size_t)w;
        }
    }
    if (r == 0 && fsync(fd) < 0) {
        r = -errno;
    }
    if (close(fd) < 0 && r == 0) {
        r = -errno;
    }
    if (r == 0 && rename(tmp, path) < 0) {
        r = -errno;
    }
    if (r < 0) {
        (void)unlink(tmp);
        return r;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* host= and port= of an entry as the file has them now ("" and 0 when
 * absent or malformed). */
typedef struct EntryAt {
    char host[ROUTE_NAME_MAX];
    int port;
} EntryAt;

static int entry_at(const char *text, size_t len, const char *db, EntryAt *ret)
{
    _cleanup_free_ char *host = NULL, *port = NULL;
    int r = pgbini_get_database_param(text, len, db, PGBINI_PARAM_HOST, &host);
    if (r == -ENOMEM) {
        return r;
    }
    r = pgbini_get_database_param(text, len, db, PGBINI_PARAM_PORT, &port);
    if (r == -ENOMEM) {
        return r;
    }
    long p = 0;
    if (!port || !ctl_parse_long(port, 1, 65535, &p)) {
        p = 0;
    }
    *ret = (EntryAt){ .port = (int)p };
    if (host && strlen(host) < sizeof(ret->host)) {
        strcpy(ret->host, host);
    }
    return 0;
}

static bool entry_is(const EntryAt *e, const PgbIniHost *h)
{
    return e->port == h->port && strcmp(e->host, h->host) == 0;
}

/* Applies the document to the ini file. Returns 1 when the file changed, 0
 * when it already said so, -EINVAL for a problem with the ini file (logged),
 * another -errno (logged). *ret_no_primary: the document has no primary. */
static int apply(Route *rt, const json_t *doc, bool *ret_no_primary)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_ini(rt->ini_path, &text, &len);
    if (r < 0) {
        log_error_errno(r, "cannot read \"%s\": %m", rt->ini);
        return r == -ENOMEM ? r : -EINVAL;
    }
    EntryAt cur_write, cur_read;
    r = entry_at(text, len, rt->write_db, &cur_write);
    if (r >= 0) {
        r = entry_at(text, len, rt->read_db, &cur_read);
    }
    if (r < 0) {
        return log_error_errno(r, "cannot read \"%s\": %m", rt->ini);
    }
    PgbIniChoice ch;
    r = pgbini_choose(doc, cur_read.host[0] ? cur_read.host : NULL, cur_read.port, &ch);
    if (r < 0) {
        log_error("the topology document of cluster \"%s\" is malformed", rt->target.scope);
        return -EBADMSG;
    }
    PgbIniTarget targets[2];
    size_t n = 0;
    if (ch.primary.name) {
        targets[n++] = (PgbIniTarget){ rt->write_db, ch.primary.host, ch.primary.port, rt->dbname };
    }
    if (ch.replica.name) {
        targets[n++] = (PgbIniTarget){ rt->read_db, ch.replica.host, ch.replica.port, rt->dbname };
    }
    *ret_no_primary = !ch.primary.name;
    _cleanup_free_ char *out = NULL;
    size_t out_len = 0;
    bool changed = false;
    PgbIniError e = { 0 };
    r = pgbini_rewrite_databases(text, len, targets, n, &out, &out_len, &changed, &e);
    if (r == -EINVAL) {
        if (e.line) {
            log_error("%s:%u: %s", rt->ini, e.line, e.message);
        } else {
            log_error("%s: %s", rt->ini, e.message);
        }
        return r;
    }
    if (r < 0) {
        return log_error_errno(r, "cannot rewrite \"%s\": %m", rt->ini);
    }
    if (!changed) {
        log_debug("\"%s\" already routes as the topology says", rt->ini);
        return 0;
    }
    r = write_atomic(rt->ini_path, out, out_len);
    if (r < 0) {
        return log_error_errno(r, "cannot write \"%s\": %m", rt->ini);
    }
    if (ch.primary.name && !entry_is(&cur_write, &ch.primary)) {
        log_notice("pgbouncer database \"%s\" -> primary \"%s\" (%s:%d)", rt->write_db,
                   ch.primary.name, ch.primary.host, ch.primary.port);
    }
    if (ch.replica.name && !entry_is(&cur_read, &ch.replica)) {
        log_notice("pgbouncer database \"%s\" -> %s \"%s\" (%s:%d)", rt->read_db,
                   ch.replica_is_primary ? "primary (no healthy replica)" : "replica",
                   ch.replica.name, ch.replica.host, ch.replica.port);
    }
    return 1;
}

/* ---- pgbouncer's admin console ---- */

/* Where the admin console listens: listen_addr's first address (a wildcard
 * means loopback) and listen_port, else the socket in unix_socket_dir. */
static int admin_address(const Route *rt, char **ret_host, char **ret_port)
{
    _cleanup_free_ char *text = NULL, *addr = NULL, *port = NULL, *sock = NULL;
    size_t len = 0;
    int r = read_ini(rt->ini_path, &text, &len);
    if (r < 0) {
        return r;
    }
    (void)pgbini_get(text, len, "pgbouncer", "listen_addr", &addr);
    (void)pgbini_get(text, len, "pgbouncer", "listen_port", &port);
    (void)pgbini_get(text, len, "pgbouncer", "unix_socket_dir", &sock);
    if (!port || !*port) {
        free(port);
        port = strdup(ROUTE_DEFAULT_LISTEN_PORT);
    }
    char *host = NULL;
    if (addr && *addr) {
        size_t n = strcspn(addr, ", \t");
        addr[n] = 0;
        host = strcmp(addr, "*") == 0 || strcmp(addr, "0.0.0.0") == 0 ? strdup("127.0.0.1")
               : strcmp(addr, "::") == 0                              ? strdup("::1")
                                                                      : strdup(addr);
    } else if (!sock || *sock) {
        host = strdup(sock ? sock : ROUTE_DEFAULT_SOCKET_DIR);
    } else {
        return -EADDRNOTAVAIL; /* no TCP listener and no socket */
    }
    if (!host || !port) {
        free(host);
        return -ENOMEM;
    }
    *ret_host = host;
    *ret_port = TAKE_PTR(port);
    return 0;
}

static int admin_user(const Route *rt, char **ret)
{
    if (rt->admin_user) {
        char *u = strdup(rt->admin_user);
        if (!u) {
            return -ENOMEM;
        }
        *ret = u;
        return 0;
    }
    _cleanup_free_ char *text = NULL, *users = NULL;
    size_t len = 0;
    int r = read_ini(rt->ini_path, &text, &len);
    if (r < 0) {
        return r;
    }
    const char *u = ROUTE_DEFAULT_ADMIN_USER;
    if (pgbini_get(text, len, "pgbouncer", "admin_users", &users) >= 0) {
        char *s = users + strspn(users, ", \t");
        s[strcspn(s, ", \t")] = 0;
        if (*s) {
            u = s;
        }
    }
    char *copy = strdup(u);
    if (!copy) {
        return -ENOMEM;
    }
    *ret = copy;
    return 0;
}

/* The admin user's password from the auth_file of [pgbouncer], when it is
 * there in clear text and PGPASSWORD is not set (libpq then also tries
 * ~/.pgpass). NULL otherwise; nothing is logged but at debug level. */
static char *admin_password(const Route *rt, const char *user)
{
    if (getenv("PGPASSWORD")) {
        return NULL;
    }
    _cleanup_free_ char *text = NULL, *auth_file = NULL, *users = NULL;
    size_t len = 0, users_len = 0;
    if (read_ini(rt->ini_path, &text, &len) < 0 ||
        pgbini_get(text, len, "pgbouncer", "auth_file", &auth_file) < 0 || !*auth_file) {
        return NULL;
    }
    int r = read_ini(auth_file, &users, &users_len);
    if (r < 0) {
        log_debug_errno(r, "cannot read auth_file \"%s\": %m", auth_file);
        return NULL;
    }
    char *pw = NULL;
    if (pgbini_userlist_password(users, users_len, user, &pw) < 0) {
        return NULL;
    }
    if (pgbini_password_is_hashed(pw)) {
        free(pw);
        return NULL;
    }
    return pw;
}

/* RELOAD on the admin console, every step with a deadline. Logs failures. */
static int reload_pgbouncer(const Route *rt)
{
    _cleanup_free_ char *host = NULL, *port = NULL, *user = NULL;
    int r = admin_address(rt, &host, &port);
    if (r < 0) {
        return log_error_errno(r, "cannot find pgbouncer's admin console in \"%s\": %m", rt->ini);
    }
    r = admin_user(rt, &user);
    if (r < 0) {
        return log_error_errno(r, "cannot read \"%s\": %m", rt->ini);
    }
    _cleanup_free_ char *password = admin_password(rt, user);
    const char *keys[] = { "host", "port", "dbname", "user", "connect_timeout", "password", NULL };
    const char *values[] = {
        host, port, ROUTE_ADMIN_DB, user, ROUTE_CONNECT_TIMEOUT, password, NULL
    };
    if (!password) {
        keys[5] = NULL; /* libpq's PGPASSWORD or ~/.pgpass */
    }
    _cleanup_(ctl_pq_finishp) PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
        log_error("cannot connect to pgbouncer's admin console at %s:%s as \"%s\": %.*s", host,
                  port, user, (int)strcspn(msg, "\n"), msg);
        return -ECONNREFUSED;
    }
    if (!PQsendQuery(conn, "RELOAD")) {
        log_error("pgbouncer RELOAD failed: %.*s", (int)strcspn(PQerrorMessage(conn), "\n"),
                  PQerrorMessage(conn));
        return -EIO;
    }
    uint64_t deadline = clock_monotonic_usec() + ROUTE_QUERY_USEC;
    while (PQisBusy(conn)) {
        uint64_t now = clock_monotonic_usec();
        if (now >= deadline) {
            log_error("pgbouncer RELOAD did not answer within %llu s",
                      (unsigned long long)(ROUTE_QUERY_USEC / 1000000ULL));
            return -ETIMEDOUT;
        }
        struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN };
        int left_ms = (int)((deadline - now + 999) / 1000);
        if (poll(&p, 1, left_ms) < 0 && errno != EINTR) {
            return log_error_errno(-errno, "poll: %m");
        }
        if (!PQconsumeInput(conn)) {
            break;
        }
    }
    _cleanup_(ctl_pq_clearp) PGresult *res = PQgetResult(conn);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        log_error("pgbouncer RELOAD failed: %.*s", (int)strcspn(msg, "\n"), msg);
        return -EIO;
    }
    log_info("pgbouncer at %s:%s reloaded", host, port);
    return 0;
}

/* ---- the verb ---- */

static int route_once(Route *rt)
{
    json_auto_t *doc = NULL;
    if (read_topology(rt, &doc) < 0) {
        return 1;
    }
    bool no_primary = false;
    int r = apply(rt, doc, &no_primary);
    if (r == -EINVAL) {
        return 2;
    }
    if (r < 0) {
        return 1;
    }
    if (r > 0 && rt->reload && reload_pgbouncer(rt) < 0) {
        return 1;
    }
    if (no_primary) {
        log_error("cluster \"%s\" has no primary: database \"%s\" left as it was", rt->target.scope,
                  rt->write_db);
        return 1;
    }
    return 0;
}

/* The watch callback: marks *dirty when an event can change the routing. */
typedef struct WatchState {
    Route *route; /* borrowed */
    bool dirty;
} WatchState;

static int on_watch(EtcdWatch *w, const EtcdWatchResponse *resp, void *userdata)
{
    WatchState *ws = userdata;
    for (size_t i = 0; i < resp->n_events; i++) {
        const EtcdKeyValue *kv = &resp->events[i].kv;
        bool is_topology = strcmp(kv->key, ws->route->target.paths.topology) == 0;
        bool is_leader = strcmp(kv->key, ws->route->target.paths.leader) == 0;
        /* the leader key decides whether the topology key is followed;
         * while it is not, every change of a member may matter */
        if (is_topology || is_leader || !ws->route->from_key) {
            ws->dirty = true;
        }
    }
    return 0;
}

static uint64_t backoff_next(uint64_t b)
{
    b = b ? b * 2 : ROUTE_BACKOFF_MIN_USEC;
    return b > ROUTE_BACKOFF_MAX_USEC ? ROUTE_BACKOFF_MAX_USEC : b;
}

static uint64_t jitter(uint64_t usec)
{
    return usec / 2 + (uint64_t)rand() % (usec / 2 + 1);
}

/* Waits up to usec for SIGINT/SIGTERM; true when one came. */
static bool wait_signal(const sigset_t *mask, uint64_t usec)
{
    struct timespec ts = { .tv_sec = (time_t)(usec / 1000000ULL),
                           .tv_nsec = (long)(usec % 1000000ULL) * 1000L };
    return sigtimedwait(mask, NULL, &ts) >= 0;
}

static int route_watch(Route *rt)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    (void)sigprocmask(SIG_BLOCK, &mask, NULL);
    srand((unsigned)(clock_monotonic_usec() ^ (uint64_t)getpid()));

    WatchState ws = { .route = rt, .dirty = true };
    EtcdWatch *watch = NULL;
    bool reload_pending = rt->reload; /* the first pass reloads even without a change */
    bool logged_no_primary = false;
    bool first = true;
    uint64_t read_backoff = 0, reload_backoff = 0;
    uint64_t next_read = 0, next_reload = 0, next_resync = 0;
    int ret = 0;

    log_info("following cluster \"%s\" into \"%s\"", rt->target.scope, rt->ini);
    for (;;) {
        if (wait_signal(&mask, 0)) {
            break;
        }
        uint64_t now = clock_monotonic_usec();
        if (now >= next_resync) {
            ws.dirty = true;
        }
        if (ws.dirty && now >= next_read) {
            json_auto_t *doc = NULL;
            bool no_primary = false;
            int r = read_topology(rt, &doc);
            if (r >= 0) {
                r = apply(rt, doc, &no_primary);
            }
            if (r == -EINVAL && first) {
                ret = 2; /* the ini file cannot be used at all */
                break;
            }
            if (r < 0) {
                read_backoff = backoff_next(read_backoff);
                next_read = now + jitter(read_backoff);
            } else {
                first = false;
                ws.dirty = false;
                read_backoff = 0;
                next_resync = now + ROUTE_RESYNC_USEC;
                reload_pending = reload_pending || (r > 0 && rt->reload);
                if (no_primary && !logged_no_primary) {
                    log_warning("cluster \"%s\" has no primary: database \"%s\" left as it was",
                                rt->target.scope, rt->write_db);
                }
                logged_no_primary = no_primary;
                if (!watch) {
                    EtcdWatchOptions wo = { .key = rt->target.paths.prefix,
                                            .prefix = true,
                                            .start_revision = rt->revision + 1 };
                    EtcdError e = { 0 };
                    r = etcd_watch_new(rt->target.client, &wo, on_watch, &ws, &watch, &e);
                    if (r < 0) {
                        log_error_errno(r, "cannot watch \"%s\": %s", rt->target.paths.prefix,
                                        e.message);
                        ret = 1;
                        break;
                    }
                }
            }
        }
        if (reload_pending && now >= next_reload) {
            if (reload_pgbouncer(rt) >= 0) {
                reload_pending = false;
                reload_backoff = 0;
            } else {
                reload_backoff = backoff_next(reload_backoff);
                next_reload = now + jitter(reload_backoff);
            }
        }
        if (!watch) {
            if (wait_signal(&mask, ROUTE_POLL_USEC)) {
                break;
            }
            continue;
        }
        EtcdError e = { 0 };
        int r = etcd_watch_poll(watch, ROUTE_POLL_USEC, &e);
        if (r < 0) {
            /* compaction, a cancel, auth: start over from a fresh read */
            log_warning_errno(r, "the watch on \"%s\" ended: %s; reading again",
                              rt->target.paths.prefix, e.message[0] ? e.message : strerror(-r));
            watch = etcd_watch_free(watch);
            ws.dirty = true;
            read_backoff = backoff_next(read_backoff);
            next_read = clock_monotonic_usec() + jitter(read_backoff);
        }
    }
    watch = etcd_watch_free(watch);
    if (ret == 0) {
        log_info("stopped following cluster \"%s\"", rt->target.scope);
    }
    return ret;
}

int verb_route(int argc, char *argv[])
{
    static const struct option options[] = {
        { "ini", required_argument, NULL, 'i' },
        { "watch", no_argument, NULL, 'w' },
        { "write-db", required_argument, NULL, 'W' },
        { "read-db", required_argument, NULL, 'R' },
        { "dbname", required_argument, NULL, 'd' },
        { "admin-user", required_argument, NULL, 'U' },
        { "no-reload", no_argument, NULL, 'N' },
        { "namespace", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    if (argc < 2 || strcmp(argv[1], "pgbouncer") != 0) {
        fprintf(stderr, "dbctl route: expected \"pgbouncer\" (dbctl route pgbouncer --ini FILE)\n");
        return 2;
    }
    Route rt = { .dbname = ROUTE_DEFAULT_DB, .reload = true };
    const char *read_db = NULL, *namespace = NULL;
    bool watch = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "i:wW:R:d:U:Nn:h", options, NULL)) >= 0) {
        switch (c) {
        case 'i':
            rt.ini = optarg;
            break;
        case 'w':
            watch = true;
            break;
        case 'W':
            rt.write_db = optarg;
            break;
        case 'R':
            read_db = optarg;
            break;
        case 'd':
            rt.dbname = optarg;
            break;
        case 'U':
            rt.admin_user = optarg;
            break;
        case 'N':
            rt.reload = false;
            break;
        case 'n':
            namespace
            = optarg;
            break;
        case 'h':
            ctl_verb_help("route");
            return 0;
        default:
            fprintf(stderr, "Try 'dbctl route --help' for more information.\n");
            return 2;
        }
    }
    if (optind < argc - 1) {
        fprintf(stderr, "dbctl route: unexpected argument \"%s\"\n", argv[1 + optind]);
        return 2;
    }
    if (!rt.ini) {
        fprintf(stderr, "dbctl route pgbouncer: --ini FILE is required\n");
        return 2;
    }
    if (!*rt.dbname) {
        fprintf(stderr, "dbctl route pgbouncer: --dbname must not be empty\n");
        return 2;
    }
    if (!rt.write_db) {
        rt.write_db = rt.dbname;
    }
    int n = read_db ? snprintf(rt.read_db, sizeof(rt.read_db), "%s", read_db)
                    : snprintf(rt.read_db, sizeof(rt.read_db), "%s" ROUTE_READ_SUFFIX, rt.write_db);
    if (n < 0 || (size_t)n >= sizeof(rt.read_db)) {
        fprintf(stderr, "dbctl route pgbouncer: database name too long\n");
        return 2;
    }
    /* the same check the rewrite makes, as a usage error before any I/O */
    PgbIniTarget probe[2] = { { rt.write_db, "h", 1, rt.dbname },
                              { rt.read_db, "h", 1, rt.dbname } };
    PgbIniError e = { 0 };
    _cleanup_free_ char *probe_out = NULL;
    size_t probe_len = 0;
    bool probe_changed = false;
    if (pgbini_rewrite_databases("", 0, probe, 2, &probe_out, &probe_len, &probe_changed, &e) ==
        -EINVAL) {
        fprintf(stderr, "dbctl route pgbouncer: %s\n", e.message);
        return 2;
    }
    rt.ini_path = realpath(rt.ini, NULL);
    if (!rt.ini_path) {
        fprintf(stderr, "dbctl route pgbouncer: cannot use \"%s\": %s\n", rt.ini, strerror(errno));
        return 2;
    }
    int r = ctl_target_open("route", namespace, NULL, &rt.target);
    if (r < 0) {
        route_done(&rt);
        return r == -EINVAL ? 2 : 1;
    }
    r = watch ? route_watch(&rt) : route_once(&rt);
    route_done(&rt);
    return r;
}
