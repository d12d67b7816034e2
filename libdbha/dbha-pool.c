/* libdbha's role-aware libpq pool. Connections are kept per role (primary,
 * replica) and lent against the client's cached topology; a connection is
 * verified with pg_is_in_recovery() when opened, after a topology change and
 * after idling, and closed when its node lost the role. Every wait is bounded
 * by the caller's timeout; libpq is driven non-blocking (PQconnectStart,
 * PQsendQuery + poll) so a dead node cannot stall an acquire. A maintenance
 * thread keeps min connections, drops stale ones and health-checks idle ones. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "dbha-internal.h"

#define POOL_DEFAULT_MAX          4
#define POOL_DEFAULT_CONNECT_USEC (2 * 1000 * 1000ULL)
#define POOL_DEFAULT_IDLE_USEC    (5 * 1000 * 1000ULL)
#define POOL_DEFAULT_QUERY_USEC   (1000 * 1000ULL)
#define POOL_RECHECK_USEC         (50 * 1000ULL)   /* an acquire re-reads the topology */
#define POOL_TICK_USEC            (200 * 1000ULL)  /* the maintenance thread */
#define POOL_MIN_BACKOFF_USEC     (1000 * 1000ULL) /* min connections: after a failure */
#define POOL_PORT_TEXT_MAX        16
#define POOL_MIN_TRY_USEC         (200 * 1000ULL) /* a connect when the caller's time is up */

struct DbhaConn {
    DbhaPool *pool; /* borrowed */
    PGconn *pg;     /* owned */
    DbhaRole role;
    char node[DBHA_NAME_MAX];
};

struct DbhaPool {
    DbhaClient *client; /* borrowed */
    char *conninfo;     /* owned */
    unsigned min[_DBHA_ROLE_MAX];
    unsigned max[_DBHA_ROLE_MAX];
    int64_t max_lag_bytes;
    uint64_t connect_usec;
    uint64_t idle_check_usec;
    uint64_t query_usec;

    pthread_mutex_t mu;
    pthread_cond_t cond; /* a slot was released or closed, or stop */
    DbhaConn **conns;    /* owned, parallel to slots */
    DbhaSlot *slots;     /* owned */
    size_t n, cap;
    unsigned pending[_DBHA_ROLE_MAX]; /* connections being opened */
    DbhaPoolStats stats[_DBHA_ROLE_MAX];
    int64_t seen_version;                    /* the maintenance thread's */
    uint64_t min_retry_usec[_DBHA_ROLE_MAX]; /* no min-filling before (after a failure) */
    bool stop;
    pthread_t thread;
    bool thread_started;
};

PGconn *dbha_conn_get_pg(DbhaConn *conn)
{
    return conn ? conn->pg : NULL;
}

const char *dbha_conn_get_node(const DbhaConn *conn)
{
    return conn ? conn->node : NULL;
}

DbhaRole dbha_conn_get_role(const DbhaConn *conn)
{
    return conn ? conn->role : _DBHA_ROLE_MAX;
}

/* Waits until the socket is ready for the direction libpq asked, or the deadline. */
static int wait_socket(PGconn *pg, bool for_write, uint64_t deadline_usec)
{
    int fd = PQsocket(pg);
    if (fd < 0) {
        return -EBADF;
    }
    uint64_t now = clock_monotonic_usec();
    if (now >= deadline_usec) {
        return -ETIMEDOUT;
    }
    struct pollfd p = { .fd = fd, .events = for_write ? POLLOUT : POLLIN };
    int ms = (int)((deadline_usec - now + 999) / 1000);
    int r = poll(&p, 1, ms);
    if (r < 0) {
        return -errno;
    }
    return r == 0 ? -ETIMEDOUT : 0;
}

/* Opens a connection to host:port within the deadline. */
static int pg_connect(DbhaPool *p, const char *host, int port, uint64_t deadline_usec, PGconn **ret,
                      DbhaError *reterr)
{
    char port_text[POOL_PORT_TEXT_MAX];
    (void)snprintf(port_text, sizeof(port_text), "%d", port);
    const char *keys[] = { "application_name", "dbname", "host", "port", NULL };
    const char *vals[] = { "libdbha", p->conninfo, host, port_text, NULL };
    /* Later keywords win: the conninfo (expanded from dbname) may set its own
     * application_name; host and port are always the chosen node's. */
    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (!pg) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    if (PQstatus(pg) == CONNECTION_BAD) {
        int r = dbha_error_set(reterr, -ECONNREFUSED, "connection to %s:%d: %s", host, port,
                               PQerrorMessage(pg));
        PQfinish(pg);
        return r;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            /* libpq's message ends with a newline; keep the first line. */
            char msg[DBHA_ERROR_MESSAGE_MAX];
            (void)snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
            msg[strcspn(msg, "\n")] = '\0';
            int r = dbha_error_set(reterr, -ECONNREFUSED, "connection to %s:%d failed: %s", host,
                                   port, msg);
            PQfinish(pg);
            return r;
        }
        int r = wait_socket(pg, st == PGRES_POLLING_WRITING, deadline_usec);
        if (r < 0) {
            PQfinish(pg);
            return dbha_error_set(reterr, r, "connection to %s:%d: %s", host, port,
                                  r == -ETIMEDOUT ? "timed out" : strerror(-r));
        }
        st = PQconnectPoll(pg);
    }
    *ret = pg;
    return 0;
}

/* Runs a one-value query within the deadline; *ret_value gets the text of
 * the first column of the first row (NULL for SQL NULL; free it). The
 * connection is non-blocking only meanwhile: applications get it blocking. */
static int pg_query_value_nb(PGconn *pg, const char *sql, uint64_t deadline_usec, char **ret_value,
                             DbhaError *reterr);
static int pg_query_value(PGconn *pg, const char *sql, uint64_t deadline_usec, char **ret_value,
                          DbhaError *reterr)
{
    if (PQsetnonblocking(pg, 1) != 0) {
        return dbha_error_set(reterr, -EIO, "cannot make the connection non-blocking");
    }
    int r = pg_query_value_nb(pg, sql, deadline_usec, ret_value, reterr);
    if (PQsetnonblocking(pg, 0) != 0 && r >= 0) {
        free(*ret_value);
        r = dbha_error_set(reterr, -EIO, "cannot make the connection blocking again");
    }
    return r;
}

static int pg_query_value_nb(PGconn *pg, const char *sql, uint64_t deadline_usec, char **ret_value,
                             DbhaError *reterr)
{
    if (PQstatus(pg) != CONNECTION_OK) {
        return dbha_error_set(reterr, -ENOTCONN, "connection lost");
    }
    if (!PQsendQuery(pg, sql)) {
        return dbha_error_set(reterr, -EIO, "%s", PQerrorMessage(pg));
    }
    int r;
    while ((r = PQflush(pg)) == 1) {
        if ((r = wait_socket(pg, true, deadline_usec)) < 0) {
            return dbha_error_set(reterr, r, "query timed out");
        }
    }
    if (r < 0) {
        return dbha_error_set(reterr, -EIO, "%s", PQerrorMessage(pg));
    }
    PGresult *last = NULL;
    bool failed = false;
    char msg[DBHA_ERROR_MESSAGE_MAX] = "";
    for (;;) {
        while (PQisBusy(pg)) {
            if ((r = wait_socket(pg, false, deadline_usec)) < 0) {
                PQclear(last);
                return dbha_error_set(reterr, r, "query %s",
                                      r == -ETIMEDOUT ? "timed out" : "failed");
            }
            if (!PQconsumeInput(pg)) {
                PQclear(last);
                (void)snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg));
                msg[strcspn(msg, "\n")] = '\0';
                return dbha_error_set(reterr, -EIO, "%s", msg);
            }
        }
        PGresult *res = PQgetResult(pg);
        if (!res) {
            break;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            failed = true;
            (void)snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(res));
            msg[strcspn(msg, "\n")] = '\0';
        }
        PQclear(last);
        last = res;
    }
    if (failed || !last || PQntuples(last) < 1 || PQnfields(last) < 1) {
        PQclear(last);
        return dbha_error_set(reterr, -EIO, "query failed: %s", msg[0] ? msg : "no row");
    }
    char *v = NULL;
    if (!PQgetisnull(last, 0, 0) && !(v = strdup(PQgetvalue(last, 0, 0)))) {
        PQclear(last);
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    PQclear(last);
    *ret_value = v;
    return 0;
}

/* The connection's server is in the role: pg_is_in_recovery() is false on a
 * primary and true on a replica. */
static int pg_verify_role(PGconn *pg, DbhaRole role, const char *node, uint64_t deadline_usec,
                          DbhaError *reterr)
{
    char *v = NULL;
    int r = pg_query_value(pg, "SELECT pg_is_in_recovery()", deadline_usec, &v, reterr);
    if (r < 0) {
        return r;
    }
    bool recovery = v && strcmp(v, "t") == 0;
    free(v);
    if (recovery != (role == DBHA_ROLE_REPLICA)) {
        return dbha_error_set(reterr, -EROFS, "node \"%s\" is %s, not %s", node,
                              recovery ? "in recovery" : "not in recovery",
                              role == DBHA_ROLE_PRIMARY ? "a primary" : "a replica");
    }
    return 0;
}

/* ---- the slot table (under p->mu) ---- */

static int slots_add(DbhaPool *p, DbhaConn *c, const DbhaSlot *s)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        DbhaConn **nc = realloc(p->conns, cap * sizeof(*nc));
        if (!nc) {
            return -ENOMEM;
        }
        p->conns = nc;
        DbhaSlot *ns = realloc(p->slots, cap * sizeof(*ns));
        if (!ns) {
            return -ENOMEM;
        }
        p->slots = ns;
        p->cap = cap;
    }
    p->conns[p->n] = c;
    p->slots[p->n] = *s;
    p->n++;
    return 0;
}

static int slots_find(DbhaPool *p, const DbhaConn *c)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->conns[i] == c) {
            return (int)i;
        }
    }
    return -ENOENT;
}

/* Removes slot i and returns its connection for the caller to close. */
static DbhaConn *slots_take(DbhaPool *p, size_t i)
{
    DbhaConn *c = p->conns[i];
    p->stats[p->slots[i].role].closed++;
    p->n--;
    p->conns[i] = p->conns[p->n];
    p->slots[i] = p->slots[p->n];
    (void)pthread_cond_broadcast(&p->cond);
    return c;
}

static void conn_close(DbhaConn *c)
{
    if (c) {
        PQfinish(c->pg);
        free(c);
    }
}

/* Closes every idle doomed slot. */
static void reap_doomed(DbhaPool *p)
{
    for (size_t i = 0; i < p->n;) {
        if (p->slots[i].doomed && !p->slots[i].in_use) {
            conn_close(slots_take(p, i));
        } else {
            i++;
        }
    }
}

/* Frees room for one connection of role by closing an idle one of that role
 * to another node than `keep`. Returns whether it did. */
static bool evict_idle(DbhaPool *p, DbhaRole role, const char *keep)
{
    for (size_t i = 0; i < p->n; i++) {
        DbhaSlot *s = &p->slots[i];
        if (s->role == role && !s->in_use && strcmp(s->node, keep) != 0) {
            conn_close(slots_take(p, i));
            return true;
        }
    }
    return false;
}

static unsigned open_count(DbhaPool *p, DbhaRole role)
{
    DbhaSlotCounts k;
    dbha_slots_count(p->slots, p->n, role, &k);
    return (unsigned)k.open + p->pending[role];
}

/* Opens, verifies and registers a connection to node (called with p->mu
 * held and pending[role] already counted; drops the lock meanwhile). */
static int open_slot(DbhaPool *p, DbhaRole role, const DbhaNode *node, int64_t version, bool lend,
                     bool first_try, uint64_t deadline_usec, DbhaConn **ret, DbhaError *reterr)
{
    DbhaConn *c = calloc(1, sizeof(*c));
    char host[DBHA_NAME_MAX];
    int port = node->port;
    (void)snprintf(host, sizeof(host), "%s", node->host);
    if (c) {
        c->pool = p;
        c->role = role;
        (void)snprintf(c->node, sizeof(c->node), "%s", node->name);
    }
    pthread_mutex_unlock(&p->mu);
    /* Bounded by the caller's deadline, but a first try (a timeout of 0 too)
     * gets at least POOL_MIN_TRY_USEC. */
    uint64_t now = clock_monotonic_usec();
    uint64_t floor = first_try ? now + POOL_MIN_TRY_USEC : now;
    uint64_t cap = deadline_usec > floor ? deadline_usec : floor;
    uint64_t conn_deadline = now + p->connect_usec < cap ? now + p->connect_usec : cap;
    int r = c ? pg_connect(p, host, port, conn_deadline, &c->pg, reterr)
              : dbha_error_set(reterr, -ENOMEM, "out of memory");
    if (r >= 0) {
        uint64_t qd = clock_monotonic_usec() + p->query_usec;
        r = pg_verify_role(c->pg, role, c->node, qd < cap ? qd : cap, reterr);
    }
    pthread_mutex_lock(&p->mu);
    p->pending[role]--;
    (void)pthread_cond_broadcast(&p->cond);
    if (r < 0) {
        conn_close(c);
        return r;
    }
    p->stats[role].created++;
    DbhaSlot s = { .role = role,
                   .in_use = lend,
                   .checked_version = version,
                   .idle_since_usec = clock_monotonic_usec() };
    (void)snprintf(s.node, sizeof(s.node), "%s", c->node);
    r = slots_add(p, c, &s);
    if (r < 0) {
        p->stats[role].closed++;
        conn_close(c);
        return dbha_error_set(reterr, r, "out of memory");
    }
    if (ret) {
        *ret = c;
    }
    return 0;
}

/* Checks a lent slot (in_use already set) without the lock. On failure the
 * slot is closed. Called with p->mu held. */
static int check_slot(DbhaPool *p, size_t i, int64_t version, DbhaError *reterr)
{
    DbhaConn *c = p->conns[i];
    DbhaRole role = p->slots[i].role;
    pthread_mutex_unlock(&p->mu);
    int r = pg_verify_role(c->pg, role, c->node, clock_monotonic_usec() + p->query_usec, reterr);
    pthread_mutex_lock(&p->mu);
    int k = slots_find(p, c);
    if (k < 0) {
        return -ENOENT; /* cannot happen: a lent slot stays */
    }
    if (r < 0) {
        conn_close(slots_take(p, (size_t)k));
        return r;
    }
    p->slots[k].checked_version = version;
    return 0;
}

/* The one acquire loop. force_node: only that replica, one attempt without
 * waiting (read-your-writes walks the replicas with it). */
static int pool_acquire(DbhaPool *p, DbhaRole role, const char *force_node, uint64_t deadline_usec,
                        DbhaConn **ret, DbhaError *reterr)
{
    char reason[DBHA_ERROR_MESSAGE_MAX] = "";
    int reason_code = -ETIMEDOUT;
    unsigned attempts = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        DbhaTopology *t = NULL;
        bool stop = p->stop;
        if (stop) {
            pthread_mutex_unlock(&p->mu);
            return dbha_error_set(reterr, -ECANCELED, "pool is being freed");
        }
        if (dbha_client_get_topology(p->client, &t) < 0) {
            reason_code = -ENODATA;
            DbhaClientStats cs;
            dbha_client_get_stats(p->client, &cs);
            (void)snprintf(reason, sizeof(reason), "no topology yet%s%.200s",
                           cs.last_error[0] ? ": " : "", cs.last_error);
        } else {
            reap_doomed(p);
            const DbhaNode *target = NULL;
            if (force_node) {
                target = dbha_topology_find_replica(t, force_node);
                if (!dbha_node_is_healthy_replica(target, p->max_lag_bytes)) {
                    target = NULL;
                }
            } else if (role == DBHA_ROLE_PRIMARY) {
                target = t->primary;
            } else {
                unsigned cursor = dbha_client_next_rr(p->client);
                (void)dbha_topology_pick_replica(t, p->max_lag_bytes, &cursor, &target);
            }
            if (!target) {
                reason_code = -ETIMEDOUT;
                if (force_node) {
                    (void)snprintf(reason, sizeof(reason),
                                   "replica \"%s\" is not healthy in topology version %" PRId64,
                                   force_node, t->version);
                } else {
                    (void)snprintf(reason, sizeof(reason), "no %s in topology version %" PRId64,
                                   role == DBHA_ROLE_PRIMARY ? "primary" : "healthy replica",
                                   t->version);
                }
            } else {
                int i =
                    dbha_slots_pick_idle(p->slots, p->n, role, target->name, t, p->max_lag_bytes);
                if (i >= 0 && force_node && strcmp(p->slots[i].node, force_node) != 0) {
                    i = -ENOENT;
                }
                if (i >= 0) {
                    DbhaSlot *s = &p->slots[i];
                    DbhaConn *c = p->conns[i];
                    s->in_use = true;
                    int r = 0;
                    if (dbha_slot_needs_check(s, t->version, clock_monotonic_usec(),
                                              p->idle_check_usec)) {
                        r = check_slot(p, (size_t)i, t->version, reterr);
                    }
                    if (r >= 0) {
                        p->stats[role].acquired++;
                        *ret = c;
                        pthread_mutex_unlock(&p->mu);
                        dbha_topology_unref(t);
                        return 0;
                    }
                    (void)snprintf(reason, sizeof(reason), "%s",
                                   reterr ? reterr->message : "check failed");
                    dbha_topology_unref(t);
                    continue; /* closed; look again at once */
                }
                if (open_count(p, role) >= p->max[role] && force_node) {
                    (void)evict_idle(p, role, force_node);
                }
                if (open_count(p, role) < p->max[role]) {
                    p->pending[role]++;
                    DbhaConn *c = NULL;
                    DbhaError err = { 0 };
                    int r = open_slot(p, role, target, t->version, true, attempts++ == 0,
                                      deadline_usec, &c, &err);
                    if (r >= 0) {
                        p->stats[role].acquired++;
                        *ret = c;
                        pthread_mutex_unlock(&p->mu);
                        dbha_topology_unref(t);
                        return 0;
                    }
                    /* A try cut short by the deadline says less than the one before. */
                    if (!(r == -ETIMEDOUT && reason[0])) {
                        (void)snprintf(reason, sizeof(reason), "%s", err.message);
                    }
                    reason_code = -ETIMEDOUT;
                } else {
                    (void)snprintf(reason, sizeof(reason),
                                   "all %u %s connections in use (%u being opened)", p->max[role],
                                   dbha_role_to_string(role), p->pending[role]);
                }
            }
            dbha_topology_unref(t);
        }
        uint64_t now = clock_monotonic_usec();
        if (force_node || now >= deadline_usec) {
            if (!force_node) {
                p->stats[role].timeouts++; /* a replica skipped by read-your-writes is not */
            }
            pthread_mutex_unlock(&p->mu);
            return dbha_error_set(reterr, force_node ? -EAGAIN : reason_code,
                                  "no %s connection%s: %s", dbha_role_to_string(role),
                                  force_node ? "" : " within the timeout", reason);
        }
        uint64_t wake = now + POOL_RECHECK_USEC;
        dbha_cond_wait_until(&p->cond, &p->mu, wake < deadline_usec ? wake : deadline_usec);
    }
}

int dbha_pool_acquire(DbhaPool *p, DbhaRole role, uint64_t timeout_usec, DbhaConn **ret,
                      DbhaError *reterr)
{
    if (!p || !ret || (unsigned)role >= _DBHA_ROLE_MAX) {
        return dbha_error_set(reterr, -EINVAL, "invalid argument");
    }
    return pool_acquire(p, role, NULL, clock_monotonic_usec() + timeout_usec, ret, reterr);
}

#define RYW_MAX_REPLICAS 64

int dbha_pool_acquire_ryw(DbhaPool *p, uint64_t want_lsn, uint64_t timeout_usec, DbhaConn **ret,
                          DbhaError *reterr)
{
    if (!p || !ret) {
        return dbha_error_set(reterr, -EINVAL, "invalid argument");
    }
    uint64_t deadline = clock_monotonic_usec() + timeout_usec;
    DbhaTopology *t = NULL;
    char names[RYW_MAX_REPLICAS][DBHA_NAME_MAX];
    size_t n = 0;
    if (dbha_client_get_topology(p->client, &t) >= 0) {
        /* Each healthy replica once, starting at the shared cursor. */
        unsigned cursor = dbha_client_next_rr(p->client);
        for (size_t i = 0; i < t->n_replicas && n < RYW_MAX_REPLICAS; i++) {
            const DbhaNode *r = &t->replicas[(cursor + i) % t->n_replicas];
            if (dbha_node_is_healthy_replica(r, p->max_lag_bytes)) {
                (void)snprintf(names[n++], DBHA_NAME_MAX, "%s", r->name);
            }
        }
        t = dbha_topology_unref(t);
    }
    for (size_t i = 0; i < n && clock_monotonic_usec() < deadline; i++) {
        DbhaConn *c = NULL;
        if (pool_acquire(p, DBHA_ROLE_REPLICA, names[i], deadline, &c, NULL) < 0) {
            continue;
        }
        char *v = NULL;
        uint64_t qd = clock_monotonic_usec() + p->query_usec;
        int r = pg_query_value(c->pg, "SELECT pg_last_wal_replay_lsn()",
                               qd < deadline ? qd : deadline, &v, NULL);
        uint64_t replay = 0;
        bool ok =
            r >= 0 && v && dbha_lsn_parse(v, &replay) >= 0 && dbha_lsn_reached(replay, want_lsn);
        free(v);
        if (ok) {
            *ret = c;
            return 0;
        }
        dbha_pool_release(p, c, r < 0);
    }
    return pool_acquire(p, DBHA_ROLE_PRIMARY, NULL, deadline, ret, reterr);
}

void dbha_pool_release(DbhaPool *p, DbhaConn *c, bool broken)
{
    if (!p || !c) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    int i = slots_find(p, c);
    if (i < 0) {
        pthread_mutex_unlock(&p->mu); /* not ours: a caller bug */
        return;
    }
    DbhaTopology *t = NULL;
    bool valid = true;
    if (dbha_client_get_topology(p->client, &t) >= 0) {
        valid = dbha_slot_role_valid(t, c->role, c->node, -1);
        t = dbha_topology_unref(t);
    }
    if (broken || !valid || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        conn_close(slots_take(p, (size_t)i));
    } else {
        p->slots[i].in_use = false;
        p->slots[i].idle_since_usec = clock_monotonic_usec();
        (void)pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->mu);
}

void dbha_pool_get_stats(DbhaPool *p, DbhaRole role, DbhaPoolStats *ret)
{
    if (!p || !ret || (unsigned)role >= _DBHA_ROLE_MAX) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    DbhaSlotCounts k;
    dbha_slots_count(p->slots, p->n, role, &k);
    *ret = p->stats[role];
    ret->in_use = k.in_use;
    ret->idle = k.idle;
    pthread_mutex_unlock(&p->mu);
}

/* One maintenance pass (p->mu held): drop stale idle connections after a
 * topology change, check long-idle ones, open up to min. */
static void maintain(DbhaPool *p)
{
    DbhaTopology *t = NULL;
    if (dbha_client_get_topology(p->client, &t) < 0) {
        return;
    }
    if (t->version != p->seen_version) {
        (void)dbha_slots_doom_invalid(p->slots, p->n, t, -1);
        p->seen_version = t->version;
    }
    reap_doomed(p);
    /* Each check drops the lock (the table may move), so look again from the
     * start after each; a checked slot's idle time restarts, so this ends. */
    for (size_t round = 0; !p->stop && round < p->cap; round++) {
        uint64_t now = clock_monotonic_usec();
        size_t i = 0;
        while (i < p->n && (p->slots[i].in_use || !(dbha_slot_needs_check(&p->slots[i], t->version,
                                                                          now, p->idle_check_usec) &
                                                    DBHA_CHECK_IDLE))) {
            i++;
        }
        if (i == p->n) {
            break;
        }
        DbhaConn *c = p->conns[i];
        p->slots[i].in_use = true;
        if (check_slot(p, i, t->version, NULL) >= 0) {
            int k = slots_find(p, c);
            if (k >= 0) {
                p->slots[k].in_use = false;
                p->slots[k].idle_since_usec = clock_monotonic_usec();
            }
        }
    }
    for (DbhaRole role = 0; role < _DBHA_ROLE_MAX && !p->stop; role++) {
        if (clock_monotonic_usec() < p->min_retry_usec[role]) {
            continue;
        }
        for (unsigned tries = 0; open_count(p, role) < p->min[role] && tries < p->min[role];
             tries++) {
            const DbhaNode *target = t->primary;
            if (role == DBHA_ROLE_REPLICA) {
                unsigned cursor = dbha_client_next_rr(p->client);
                target = NULL;
                (void)dbha_topology_pick_replica(t, p->max_lag_bytes, &cursor, &target);
            }
            if (!target) {
                break;
            }
            p->pending[role]++;
            if (open_slot(p, role, target, t->version, false, true,
                          clock_monotonic_usec() + p->connect_usec, NULL, NULL) < 0) {
                /* a node that refuses or fails its check is not hammered */
                p->min_retry_usec[role] = clock_monotonic_usec() + POOL_MIN_BACKOFF_USEC;
                break;
            }
        }
    }
    dbha_topology_unref(t);
}

static void *pool_thread(void *userdata)
{
    DbhaPool *p = userdata;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        maintain(p);
        if (p->stop) {
            break;
        }
        dbha_cond_wait_until(&p->cond, &p->mu, clock_monotonic_usec() + POOL_TICK_USEC);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

DbhaPool *dbha_pool_free(DbhaPool *p)
{
    if (!p) {
        return NULL;
    }
    if (p->thread_started) {
        pthread_mutex_lock(&p->mu);
        p->stop = true;
        (void)pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
        (void)pthread_join(p->thread, NULL);
    }
    for (size_t i = 0; i < p->n; i++) {
        conn_close(p->conns[i]);
    }
    free(p->conns);
    free(p->slots);
    if (p->conninfo) {
        explicit_bzero(p->conninfo, strlen(p->conninfo));
    }
    free(p->conninfo);
    (void)pthread_mutex_destroy(&p->mu);
    (void)pthread_cond_destroy(&p->cond);
    free(p);
    return NULL;
}

int dbha_pool_new(DbhaClient *client, const DbhaPoolOptions *o, DbhaPool **ret, DbhaError *reterr)
{
    if (!client || !o || !ret || !o->conninfo) {
        return dbha_error_set(reterr, -EINVAL, "client, options and conninfo are required");
    }
    unsigned maxp = o->max_primary ? o->max_primary : POOL_DEFAULT_MAX;
    unsigned maxr = o->max_replica ? o->max_replica : POOL_DEFAULT_MAX;
    if (o->min_primary > maxp || o->min_replica > maxr) {
        return dbha_error_set(reterr, -EINVAL, "min connections above max");
    }
    DbhaPool *p = calloc(1, sizeof(*p));
    if (!p) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    (void)pthread_mutex_init(&p->mu, NULL);
    int r = dbha_cond_init_monotonic(&p->cond);
    if (r < 0 || !(p->conninfo = strdup(o->conninfo))) {
        if (r >= 0) {
            (void)pthread_cond_destroy(&p->cond);
        }
        (void)pthread_mutex_destroy(&p->mu);
        free(p);
        return dbha_error_set(reterr, r < 0 ? r : -ENOMEM, "pool setup failed");
    }
    p->client = client;
    p->min[DBHA_ROLE_PRIMARY] = o->min_primary;
    p->max[DBHA_ROLE_PRIMARY] = maxp;
    p->min[DBHA_ROLE_REPLICA] = o->min_replica;
    p->max[DBHA_ROLE_REPLICA] = maxr;
    p->max_lag_bytes = o->max_lag_bytes;
    p->connect_usec = o->connect_timeout_usec ? o->connect_timeout_usec : POOL_DEFAULT_CONNECT_USEC;
    p->idle_check_usec = o->idle_check_usec ? o->idle_check_usec : POOL_DEFAULT_IDLE_USEC;
    p->query_usec = o->query_timeout_usec ? o->query_timeout_usec : POOL_DEFAULT_QUERY_USEC;
    r = pthread_create(&p->thread, NULL, pool_thread, p);
    if (r != 0) {
        dbha_pool_free(p);
        return dbha_error_set(reterr, -r, "pthread_create failed");
    }
    p->thread_started = true;
    *ret = p;
    return 0;
}
