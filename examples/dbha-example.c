/* dbha-example: an application on libdbha. It writes rows with increasing
 * sequence numbers through the pool's primary connection, takes the WAL
 * position after each commit, and reads the newest row back through a
 * read-your-writes connection (a replica that replayed that position, else
 * the primary). Every event is one JSON line on stdout:
 *
 *   {"ts": 1700000000.123, "event": "write", "ok": true, "node": "node1", "seq": 7,
 *    "lsn": "0/3000060", "ms": 1.4}
 *   {"ts": ..., "event": "read", "ok": true, "node": "node2", "role": "replica",
 *    "seq": 7, "want_seq": 7, "want_lsn": "0/3000060", "stale": false, "ms": 0.9}
 *   {"ts": ..., "event": "topology", "version": 4, "primary": "node2", "timeline": 2}
 *   {"ts": ..., "event": "summary", ...}
 *
 * Usage: dbha-example (--etcd [https://]HOST:PORT[,...] --scope NAME [--namespace NS]
 *                      [--etcd-cacert FILE] [--etcd-cert FILE --etcd-key FILE]
 *                      [--etcd-user NAME] | --rest URL[,...])
 *                     --conninfo "user=... password=... dbname=..."
 *                     [--duration SEC] [--interval-ms N] [--timeout-ms N] [--max-lag BYTES]
 *                     [--table NAME] [--threads N] [--acquire primary|replica [--count N]]
 * --threads: N writer threads share the pool (thread k writes k+1, k+1+N, ...);
 * each checks its reads against its own last acknowledged write.
 * --acquire: only acquire and release connections of that role (every
 * --interval-ms, --count times or for --duration), one "acquire" event each;
 * exits 1 when the last one failed.
 * --etcd-user: the password is read from the environment (DBHA_ETCD_PASSWORD),
 * never from the command line. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "dbha/dbha.h"

#define MAX_LIST    16
#define THREADS_MAX 16
#define SQL_MAX     512
#define TABLE_MAX   64
#define SEQ_TEXT    32

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_wall(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_mono(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints obj (stolen) as one line with a "ts" field. */
static void emit(json_t *obj)
{
    if (!obj) {
        return;
    }
    (void)json_object_set_new(obj, "ts", json_real(now_wall()));
    char *s = json_dumps(obj, JSON_COMPACT);
    if (s) {
        pthread_mutex_lock(&out_mu);
        (void)fprintf(stdout, "%s\n", s);
        (void)fflush(stdout);
        pthread_mutex_unlock(&out_mu);
    }
    free(s);
    json_decref(obj);
}

/* A failed write or read event: ok false, the error, the time taken. */
static void emit_failure(json_t *obj, const char *error, double t0)
{
    (void)json_object_set_new(obj, "ok", json_false());
    (void)json_object_set_new(obj, "error", json_string(error));
    (void)json_object_set_new(obj, "ms", json_real((now_mono() - t0) * 1e3));
    emit(obj);
}

static void on_topology(DbhaClient *c, DbhaTopology *t, void *userdata)
{
    json_t *o = json_pack("{s:s, s:I}", "event", "topology", "version", (json_int_t)t->version);
    (void)json_object_set_new(o, "primary",
                              t->primary ? json_string(t->primary->name) : json_null());
    (void)json_object_set_new(o, "timeline",
                              t->timeline >= 0 ? json_integer(t->timeline) : json_null());
    emit(o);
}

static size_t split(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < max;
         tok = strtok_r(NULL, ",", &save)) {
        out[n++] = tok;
    }
    return n;
}

static char *first_line(const char *msg, char *buf, size_t size)
{
    (void)snprintf(buf, size, "%s", msg ? msg : "");
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* One writer thread. Thread k of n writes k+1, k+1+n, k+1+2n, ... */
typedef struct App {
    DbhaPool *pool;
    const char *table;
    uint64_t timeout_usec;
    int id, n_threads;
    double end, interval_ms;
    atomic_bool *table_ready; /* shared; thread 0 creates the table */
    int64_t next_seq;
    int64_t acked_seq;  /* last acknowledged write */
    uint64_t acked_lsn; /* WAL position after it */
    unsigned writes_ok, writes_failed, reads_ok, reads_failed, stale;
} App;

static void write_once(App *a)
{
    double t0 = now_mono();
    DbhaConn *conn = NULL;
    DbhaError err = { 0 };
    char msg[DBHA_ERROR_MESSAGE_MAX];
    json_t *o = json_pack("{s:s}", "event", "write");
    int64_t seq = a->next_seq;
    a->next_seq += a->n_threads;
    (void)json_object_set_new(o, "seq", json_integer(seq));
    (void)json_object_set_new(o, "thread", json_integer(a->id));
    if (dbha_pool_acquire(a->pool, DBHA_ROLE_PRIMARY, a->timeout_usec, &conn, &err) < 0) {
        a->writes_failed++;
        emit_failure(o, err.message, t0);
        return;
    }
    PGconn *pg = dbha_conn_get_pg(conn);
    (void)json_object_set_new(o, "node", json_string(dbha_conn_get_node(conn)));
    char sql[SQL_MAX];
    bool ok = true;
    if (!atomic_load(a->table_ready)) {
        (void)snprintf(sql, sizeof(sql),
                       "CREATE TABLE IF NOT EXISTS %s (seq bigint PRIMARY KEY, "
                       "at timestamptz NOT NULL DEFAULT now())",
                       a->table);
        PGresult *res = PQexec(pg, sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            (void)json_object_set_new(
                o, "error", json_string(first_line(PQresultErrorMessage(res), msg, sizeof(msg))));
        }
        PQclear(res);
        atomic_store(a->table_ready, ok);
    }
    if (ok) {
        char seq_text[SEQ_TEXT];
        (void)snprintf(seq_text, sizeof(seq_text), "%" PRId64, seq);
        const char *params[] = { seq_text };
        (void)snprintf(sql, sizeof(sql), "INSERT INTO %s (seq) VALUES ($1)", a->table);
        PGresult *res = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            (void)json_object_set_new(
                o, "error", json_string(first_line(PQresultErrorMessage(res), msg, sizeof(msg))));
        }
        PQclear(res);
    }
    uint64_t lsn = 0;
    if (ok) {
        /* After the commit: a replica that replayed this far shows the row. */
        PGresult *res = PQexec(pg, "SELECT pg_current_wal_lsn()");
        ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
             dbha_lsn_parse(PQgetvalue(res, 0, 0), &lsn) >= 0;
        if (!ok) {
            (void)json_object_set_new(
                o, "error", json_string(first_line(PQresultErrorMessage(res), msg, sizeof(msg))));
        }
        PQclear(res);
    }
    dbha_pool_release(a->pool, conn, !ok);
    (void)json_object_set_new(o, "ok", json_boolean(ok));
    if (ok) {
        char lsn_text[DBHA_LSN_TEXT_MAX];
        a->writes_ok++;
        a->acked_seq = seq;
        a->acked_lsn = lsn;
        (void)json_object_set_new(o, "lsn",
                                  json_string(dbha_lsn_format(lsn, lsn_text, sizeof(lsn_text))));
    } else {
        a->writes_failed++;
    }
    (void)json_object_set_new(o, "ms", json_real((now_mono() - t0) * 1e3));
    emit(o);
}

static void read_once(App *a)
{
    if (a->acked_seq == 0) {
        return;
    }
    double t0 = now_mono();
    DbhaConn *conn = NULL;
    DbhaError err = { 0 };
    char msg[DBHA_ERROR_MESSAGE_MAX];
    char lsn_text[DBHA_LSN_TEXT_MAX];
    json_t *o = json_pack("{s:s, s:I, s:s}", "event", "read", "want_seq", (json_int_t)a->acked_seq,
                          "want_lsn", dbha_lsn_format(a->acked_lsn, lsn_text, sizeof(lsn_text)));
    (void)json_object_set_new(o, "thread", json_integer(a->id));
    if (dbha_pool_acquire_ryw(a->pool, a->acked_lsn, a->timeout_usec, &conn, &err) < 0) {
        a->reads_failed++;
        emit_failure(o, err.message, t0);
        return;
    }
    PGconn *pg = dbha_conn_get_pg(conn);
    (void)json_object_set_new(o, "node", json_string(dbha_conn_get_node(conn)));
    (void)json_object_set_new(o, "role",
                              json_string(dbha_role_to_string(dbha_conn_get_role(conn))));
    char sql[SQL_MAX];
    (void)snprintf(sql, sizeof(sql), "SELECT coalesce(max(seq), 0) FROM %s", a->table);
    PGresult *res = PQexec(pg, sql);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok) {
        int64_t got = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        bool stale = got < a->acked_seq;
        a->stale += stale;
        (void)json_object_set_new(o, "seq", json_integer(got));
        (void)json_object_set_new(o, "stale", json_boolean(stale));
        a->reads_ok++;
    } else {
        (void)json_object_set_new(
            o, "error", json_string(first_line(PQresultErrorMessage(res), msg, sizeof(msg))));
        a->reads_failed++;
    }
    PQclear(res);
    dbha_pool_release(a->pool, conn, !ok);
    (void)json_object_set_new(o, "ok", json_boolean(ok));
    (void)json_object_set_new(o, "ms", json_real((now_mono() - t0) * 1e3));
    emit(o);
}

static void sleep_sec(double s);

static void *writer(void *userdata)
{
    App *a = userdata;
    while (now_mono() < a->end) {
        double t0 = now_mono();
        if (a->id == 0 || atomic_load(a->table_ready)) {
            write_once(a);
            read_once(a);
        }
        double left = a->interval_ms / 1e3 - (now_mono() - t0);
        if (left > 0) {
            sleep_sec(left);
        }
    }
    return NULL;
}

static json_t *stats_json(DbhaPool *p, DbhaRole role)
{
    DbhaPoolStats s;
    dbha_pool_get_stats(p, role, &s);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "acquired", (json_int_t)s.acquired,
                     "timeouts", (json_int_t)s.timeouts, "created", (json_int_t)s.created, "closed",
                     (json_int_t)s.closed, "in_use", (json_int_t)s.in_use, "idle",
                     (json_int_t)s.idle);
}

static void sleep_sec(double s)
{
    struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };
    (void)nanosleep(&ts, NULL);
}

/* One acquire and release of role; reports it; returns whether it worked. */
static bool acquire_once(DbhaPool *pool, DbhaRole role, uint64_t timeout_usec)
{
    double t0 = now_mono();
    DbhaConn *conn = NULL;
    DbhaError err = { 0 };
    int r = dbha_pool_acquire(pool, role, timeout_usec, &conn, &err);
    json_t *o = json_pack("{s:s, s:s, s:b, s:f}", "event", "acquire", "role",
                          dbha_role_to_string(role), "ok", r >= 0, "ms", (now_mono() - t0) * 1e3);
    (void)json_object_set_new(o, r >= 0 ? "node" : "error",
                              json_string(r >= 0 ? dbha_conn_get_node(conn) : err.message));
    (void)json_object_set_new(o, "errno", json_integer(r >= 0 ? 0 : -r));
    emit(o);
    dbha_pool_release(pool, conn, false);
    return r >= 0;
}

static int usage(void)
{
    (void)fprintf(stderr,
                  "usage: dbha-example (--etcd [https://]HOST:PORT[,...] --scope NAME "
                  "[--namespace NS] [--etcd-cacert FILE] [--etcd-cert FILE --etcd-key FILE] "
                  "[--etcd-user NAME (password in DBHA_ETCD_PASSWORD)] | "
                  "--rest URL[,...]) --conninfo CONNINFO [--duration SEC] [--interval-ms N] "
                  "[--timeout-ms N] [--max-lag BYTES] [--table NAME] "
                  "[--threads N] [--acquire primary|replica [--count N]]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "etcd", required_argument, NULL, 'e' },
        { "scope", required_argument, NULL, 's' },
        { "namespace", required_argument, NULL, 'n' },
        { "rest", required_argument, NULL, 'r' },
        { "conninfo", required_argument, NULL, 'c' },
        { "duration", required_argument, NULL, 'd' },
        { "interval-ms", required_argument, NULL, 'i' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "max-lag", required_argument, NULL, 'l' },
        { "table", required_argument, NULL, 'T' },
        { "acquire", required_argument, NULL, 'a' },
        { "count", required_argument, NULL, 'C' },
        { "threads", required_argument, NULL, 'P' },
        { "etcd-cacert", required_argument, NULL, 'A' },
        { "etcd-cert", required_argument, NULL, 'E' },
        { "etcd-key", required_argument, NULL, 'K' },
        { "etcd-user", required_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    char *etcd = NULL, *rest = NULL;
    const char *scope = NULL, *ns = NULL, *conninfo = NULL, *table = "dbha_example";
    double duration = 10, interval_ms = 50, timeout_ms = 1000;
    long long max_lag = -1;
    const char *acquire = NULL;
    const char *etcd_cacert = NULL, *etcd_cert = NULL, *etcd_key = NULL, *etcd_user = NULL;
    long count = 0;
    int n_threads = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            etcd = optarg;
            break;
        case 's':
            scope = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case 'r':
            rest = optarg;
            break;
        case 'c':
            conninfo = optarg;
            break;
        case 'd':
            duration = strtod(optarg, NULL);
            break;
        case 'i':
            interval_ms = strtod(optarg, NULL);
            break;
        case 't':
            timeout_ms = strtod(optarg, NULL);
            break;
        case 'l':
            max_lag = strtoll(optarg, NULL, 10);
            break;
        case 'T':
            table = optarg;
            break;
        case 'a':
            acquire = optarg;
            break;
        case 'C':
            count = strtol(optarg, NULL, 10);
            break;
        case 'P':
            n_threads = (int)strtol(optarg, NULL, 10);
            break;
        case 'A':
            etcd_cacert = optarg;
            break;
        case 'E':
            etcd_cert = optarg;
            break;
        case 'K':
            etcd_key = optarg;
            break;
        case 'U':
            etcd_user = optarg;
            break;
        default:
            return usage();
        }
    }
    if ((!etcd && !rest) || !conninfo || strlen(table) >= TABLE_MAX ||
        (acquire && strcmp(acquire, "primary") != 0 && strcmp(acquire, "replica") != 0) ||
        n_threads < 1 || n_threads > THREADS_MAX ||
        strspn(table, "abcdefghijklmnopqrstuvwxyz_0123456789") != strlen(table)) {
        return usage();
    }
    const char *eps[MAX_LIST], *urls[MAX_LIST];
    DbhaClientOptions co = {
        .dcs_namespace = ns,
        .scope = scope,
        .callback = on_topology,
        .poll_interval_usec = 200 * 1000,
        .etcd_username = etcd_user,
        .etcd_password = etcd_user ? getenv("DBHA_ETCD_PASSWORD") : NULL,
        .etcd_cacert = etcd_cacert,
        .etcd_cert = etcd_cert,
        .etcd_key = etcd_key,
    };
    if (etcd) {
        co.etcd_endpoints = eps;
        co.n_etcd_endpoints = split(etcd, eps, MAX_LIST);
    } else {
        co.rest_urls = urls;
        co.n_rest_urls = split(rest, urls, MAX_LIST);
    }
    DbhaError err = { 0 };
    DbhaClient *client = NULL;
    if (dbha_client_open(&co, &client, &err) < 0) {
        (void)fprintf(stderr, "dbha-example: %s\n", err.message);
        return 1;
    }
    DbhaTopology *t = NULL;
    if (dbha_client_wait_topology(client, 0, 10 * 1000 * 1000ULL, &t, &err) < 0) {
        (void)fprintf(stderr, "dbha-example: %s\n", err.message);
        dbha_client_free(client);
        return 1;
    }
    t = dbha_topology_unref(t);
    DbhaPoolOptions po = {
        .conninfo = conninfo,
        .max_primary = 2,
        .max_replica = 4,
        .min_primary = 1,
        .max_lag_bytes = max_lag,
        .connect_timeout_usec = 1000 * 1000,
        .idle_check_usec = 2 * 1000 * 1000,
        .query_timeout_usec = 1000 * 1000,
    };
    DbhaPool *pool = NULL;
    if (dbha_pool_new(client, &po, &pool, &err) < 0) {
        (void)fprintf(stderr, "dbha-example: %s\n", err.message);
        dbha_client_free(client);
        return 1;
    }
    uint64_t timeout_usec = (uint64_t)(timeout_ms * 1000);
    atomic_bool table_ready = false;
    App apps[THREADS_MAX];
    App total = { 0 };
    int rc = 0;
    if (acquire) {
        DbhaRole role = strcmp(acquire, "primary") == 0 ? DBHA_ROLE_PRIMARY : DBHA_ROLE_REPLICA;
        double end = now_mono() + duration;
        for (long i = 0; count > 0 ? i < count : now_mono() < end; i++) {
            double t0 = now_mono();
            rc = acquire_once(pool, role, timeout_usec) ? 0 : 1;
            double left = interval_ms / 1e3 - (now_mono() - t0);
            if (left > 0 && (count == 0 || i + 1 < count)) {
                sleep_sec(left);
            }
        }
    } else {
        pthread_t tid[THREADS_MAX];
        double end = now_mono() + duration;
        int started = 0;
        for (int i = 0; i < n_threads; i++) {
            apps[i] = (App){ .pool = pool,
                             .table = table,
                             .timeout_usec = timeout_usec,
                             .id = i,
                             .n_threads = n_threads,
                             .end = end,
                             .interval_ms = interval_ms,
                             .table_ready = &table_ready,
                             .next_seq = i + 1 };
            if (pthread_create(&tid[i], NULL, writer, &apps[i]) != 0) {
                (void)fprintf(stderr, "dbha-example: pthread_create failed\n");
                rc = 1;
                break;
            }
            started++;
        }
        for (int i = 0; i < started; i++) {
            (void)pthread_join(tid[i], NULL);
            total.writes_ok += apps[i].writes_ok;
            total.writes_failed += apps[i].writes_failed;
            total.reads_ok += apps[i].reads_ok;
            total.reads_failed += apps[i].reads_failed;
            total.stale += apps[i].stale;
            total.acked_seq =
                apps[i].acked_seq > total.acked_seq ? apps[i].acked_seq : total.acked_seq;
        }
    }
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "event", "summary", "writes_ok",
                          (json_int_t)total.writes_ok, "writes_failed",
                          (json_int_t)total.writes_failed, "reads_ok", (json_int_t)total.reads_ok,
                          "reads_failed", (json_int_t)total.reads_failed, "stale_reads",
                          (json_int_t)total.stale, "last_seq", (json_int_t)total.acked_seq);
    (void)json_object_set_new(o, "primary_pool", stats_json(pool, DBHA_ROLE_PRIMARY));
    (void)json_object_set_new(o, "replica_pool", stats_json(pool, DBHA_ROLE_REPLICA));
    DbhaClientStats cs;
    dbha_client_get_stats(client, &cs);
    (void)json_object_set_new(o, "topology_updates", json_integer((json_int_t)cs.updates));
    emit(o);
    dbha_pool_free(pool);
    dbha_client_free(client);
    return rc;
}
