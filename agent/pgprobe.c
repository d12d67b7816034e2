/* Local PostgreSQL probe over libpq's non-blocking API. Every wait is a
 * poll() on PQsocket() bounded by the caller's deadline, so a hung or
 * SIGSTOPped server costs at most the deadline.
 *
 * We do not call PQcancel() when a deadline passes: in libpq 15 it connects
 * to the postmaster and waits for its reply without any timeout, so it would
 * hang on exactly the stopped server we are trying to survive. Dropping the
 * connection ends the backend at its next read or write, and the
 * statement_timeout we pass in the startup options bounds the query itself. */
#include "pgprobe.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"
#include "macro.h"
#include "pgprobe_sql.h"

#define DEFAULT_STATEMENT_TIMEOUT_MS 2000
#define DEFAULT_CONNECT_TIMEOUT_SEC  2
#define POSTMASTER_PID_FILE_MAX      4096
#define PROC_STAT_MAX                1024

static const char snapshot_sql[] = PGPROBE_SNAPSHOT_SQL;

enum {
    COL_IN_RECOVERY,
    COL_CURRENT_LSN,
    COL_WALFILE_TLI,
    COL_RECEIVE_LSN,
    COL_REPLAY_LSN,
    COL_REPLAY_TS,
    COL_REPLAY_PAUSED,
    COL_CLOCK,
    COL_WR_STATUS,
    COL_WR_TLI,
    COL_WR_HOST,
    COL_WR_PORT,
    COL_WR_SLOT,
    COL_VERSION,
    COL_SYSID,
    COL_START_TIME,
    COL_CHECKPOINT_TLI,
    COL_PENDING_RESTART,
    COL_PHYSICAL_SLOTS,
    _COL_MAX,
};

enum {
    REP_APP,
    REP_STATE,
    REP_SENT,
    REP_WRITE,
    REP_FLUSH,
    REP_REPLAY,
    REP_SYNC,
    REP_WRITE_LAG,
    REP_FLUSH_LAG,
    REP_REPLAY_LAG,
    _REP_MAX,
};

struct PgProbe {
    PgConnParams params;
    PGconn *conn; /* owned, NULL when not connected */
    unsigned connects;
    char error[PGPROBE_ERROR_MAX];
    char sqlstate[6]; /* of the last failed statement, "" when none */
};

static inline void pgresult_clearp(PGresult **r)
{
    if (*r) {
        PQclear(*r);
        *r = NULL;
    }
}

/* ---- pure helpers ---------------------------------------------------------- */

static char *strdup_or_null(const char *s, bool *ret_oom)
{
    if (!s) {
        return NULL;
    }
    char *d = strdup(s);
    if (!d) {
        *ret_oom = true;
    }
    return d;
}

void pgprobe_conn_params_done(PgConnParams *p)
{
    if (!p) {
        return;
    }
    free(p->host);
    free(p->user);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
    }
    free(p->password);
    free(p->dbname);
    for (size_t i = 0; i < PGPROBE_EXTRA_MAX; i++) {
        if (p->extra_values[i]) {
            explicit_bzero(p->extra_values[i], strlen(p->extra_values[i]));
        }
        free(p->extra_keys[i]);
        free(p->extra_values[i]);
    }
    *p = (PgConnParams){ 0 };
}

int pgprobe_conn_params_init(PgConnParams *p, const PgProbeConfig *cfg)
{
    if (!p || !cfg || !cfg->host || !*cfg->host || cfg->port == 0 || cfg->port > 65535 ||
        cfg->n_extra > PGPROBE_EXTRA_MAX) {
        return -EINVAL;
    }
    PgConnParams n = { 0 };
    bool oom = false;
    n.host = strdup_or_null(cfg->host, &oom);
    n.user = strdup_or_null(cfg->user, &oom);
    n.password = strdup_or_null(cfg->password, &oom);
    n.dbname = strdup_or_null(cfg->dbname ? cfg->dbname : "postgres", &oom);
    for (size_t i = 0; i < cfg->n_extra; i++) {
        n.extra_keys[i] = strdup_or_null(cfg->extra_keys[i], &oom);
        n.extra_values[i] = strdup_or_null(cfg->extra_values[i], &oom);
    }
    if (oom) {
        pgprobe_conn_params_done(&n);
        return -ENOMEM;
    }
    unsigned ct = cfg->connect_timeout_sec ? cfg->connect_timeout_sec : DEFAULT_CONNECT_TIMEOUT_SEC;
    unsigned st =
        cfg->statement_timeout_ms ? cfg->statement_timeout_ms : DEFAULT_STATEMENT_TIMEOUT_MS;
    (void)snprintf(n.port, sizeof(n.port), "%u", cfg->port);
    (void)snprintf(n.connect_timeout, sizeof(n.connect_timeout), "%u", ct);
    (void)snprintf(n.options, sizeof(n.options), "-c statement_timeout=%u", st);

    size_t k = 0;
#define ADD(key, val)                                                                              \
    do {                                                                                           \
        n.keywords[k] = (key);                                                                     \
        n.values[k] = (val);                                                                       \
        k++;                                                                                       \
    } while (0)
    ADD("host", n.host);
    ADD("port", n.port);
    if (n.user) {
        ADD("user", n.user);
    }
    if (n.password) {
        ADD("password", n.password);
    }
    ADD("dbname", n.dbname);
    ADD("connect_timeout", n.connect_timeout);
    ADD("application_name", "dbha");
    ADD("options", n.options);
    for (size_t i = 0; i < cfg->n_extra; i++) {
        if (n.extra_keys[i] && n.extra_values[i]) {
            ADD(n.extra_keys[i], n.extra_values[i]);
        }
    }
#undef ADD
    n.keywords[k] = NULL;
    n.values[k] = NULL;
    *p = n;
    /* values[] point into n's buffers: re-point them at *p's */
    for (size_t i = 0; i < k; i++) {
        if (n.values[i] == n.port) {
            p->values[i] = p->port;
        } else if (n.values[i] == n.connect_timeout) {
            p->values[i] = p->connect_timeout;
        } else if (n.values[i] == n.options) {
            p->values[i] = p->options;
        }
    }
    return 0;
}

int pgprobe_conn_params_describe(const PgConnParams *p, char *buf, size_t size)
{
    if (!p || !buf || size == 0) {
        return -EINVAL;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; p->keywords[i]; i++) {
        if (strcmp(p->keywords[i], "password") == 0 || strcmp(p->keywords[i], "sslpassword") == 0) {
            continue;
        }
        bool quote = strchr(p->values[i], ' ') != NULL;
        int w = snprintf(buf + o, size - o, "%s%s=%s%s%s", o ? " " : "", p->keywords[i],
                         quote ? "'" : "", p->values[i], quote ? "'" : "");
        if (w < 0 || (size_t)w >= size - o) {
            buf[0] = '\0';
            return -ENOBUFS;
        }
        o += (size_t)w;
    }
    return (int)o;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* 1..8 hex digits; returns the count consumed or 0. */
static size_t parse_hex32(const char *s, uint32_t *ret)
{
    uint32_t v = 0;
    size_t i = 0;
    for (; s[i] && hexval(s[i]) >= 0; i++) {
        if (i == 8) {
            return 0;
        }
        v = v << 4 | (uint32_t)hexval(s[i]);
    }
    if (i == 0) {
        return 0;
    }
    *ret = v;
    return i;
}

int pgprobe_parse_lsn(const char *s, uint64_t *ret)
{
    uint32_t hi, lo;
    if (!s || !ret) {
        return -EINVAL;
    }
    size_t n = parse_hex32(s, &hi);
    if (n == 0 || s[n] != '/') {
        return -EINVAL;
    }
    size_t m = parse_hex32(s + n + 1, &lo);
    if (m == 0 || s[n + 1 + m] != '\0') {
        return -EINVAL;
    }
    *ret = (uint64_t)hi << 32 | lo;
    return 0;
}

/* The probe's numbers are PostgreSQL's shortest round-trip output of
 * epoch seconds and lags ("1764180165.93", "0.060844"): at most 15
 * significant digits and no exponent. Those are read exactly without
 * strtod (about a tenth of an idle agent's time went to it): an integer
 * below 2^53 divided by a power of ten up to 10^22 is correctly rounded,
 * both being exact doubles (Clinger's fast path), so the result is strtod's.
 * Anything else returns false and goes to strtod. */
static bool parse_plain_decimal(const char *s, double *ret)
{
    static const double pow10[] = { 1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15 };
    bool negative = *s == '-';
    const char *c = s + negative;
    uint64_t m = 0;
    int digits = 0, fraction = 0;
    bool dot = false;
    for (; *c; c++) {
        if (*c == '.' && !dot) {
            dot = true;
            continue;
        }
        if (*c < '0' || *c > '9' || digits == 15 || fraction == 15) {
            return false;
        }
        m = m * 10 + (uint64_t)(*c - '0');
        digits += m != 0;
        fraction += dot;
    }
    if ((c == s + negative + dot) || (dot && c[-1] == '.')) {
        return false; /* "", "-", ".", "1.": strtod's to judge */
    }
    double v = (double)m / pow10[fraction];
    *ret = negative ? -v : v;
    return true;
}

int pgprobe_parse_double(const char *s, double *ret)
{
    if (!s) {
        return -ENODATA;
    }
    if (!ret || !*s || isspace((unsigned char)*s)) {
        return -EINVAL;
    }
    if (parse_plain_decimal(s, ret)) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) {
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

int pgprobe_replica_lag_seconds(const PgSnapshot *s, double *ret_sec)
{
    if (!s || !ret_sec) {
        return -EINVAL;
    }
    if (!s->in_recovery) {
        return -ENODATA;
    }
    if (s->receive_lsn != 0 && s->replay_lsn >= s->receive_lsn) {
        *ret_sec = 0;
        return 0;
    }
    if (!s->has_replay_timestamp) {
        return -ENODATA;
    }
    double d = s->clock_epoch - s->replay_timestamp;
    *ret_sec = d > 0 ? d : 0;
    return 0;
}

int pgprobe_format_lsn(uint64_t lsn, char *buf, size_t size)
{
    if (!buf) {
        return -EINVAL;
    }
    int w = snprintf(buf, size, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    if (w < 0 || (size_t)w >= size) {
        if (size > 0) {
            buf[0] = '\0';
        }
        return -ENOBUFS;
    }
    return 0;
}

int pgprobe_parse_postmaster_pid(const char *content, PgPostmasterPid *ret)
{
    if (!content || !ret) {
        return -EINVAL;
    }
    const char *p = content;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (*p < '0' || *p > '9') {
        return -EINVAL;
    }
    long long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > INT32_MAX) {
            return -EINVAL;
        }
    }
    /* the line ends here (a lone trailing \r is tolerated) */
    if (*p == '\r') {
        p++;
    }
    if (*p != '\n' && *p != '\0') {
        return -EINVAL;
    }
    if (v == 0) {
        return -EINVAL;
    }
    *ret = (PgPostmasterPid){ .pid = (pid_t)v, .standalone = neg };
    /* line 3: the start time (line 2 is the data directory) */
    const char *line = p;
    for (int i = 0; i < 2 && line; i++) {
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    if (line) {
        char *end = NULL;
        errno = 0;
        long long t = strtoll(line, &end, 10);
        if (errno == 0 && end != line && t > 0 && (*end == '\n' || *end == '\r' || !*end)) {
            ret->start_time = t;
        }
    }
    return 0;
}

int pgprobe_read_postmaster_pid(const char *data_dir, PgPostmasterPid *ret)
{
    char path[PGPROBE_HOST_MAX + 32];
    char buf[POSTMASTER_PID_FILE_MAX];
    if (!data_dir || !ret) {
        return -EINVAL;
    }
    int w = snprintf(path, sizeof(path), "%s/postmaster.pid", data_dir);
    if (w < 0 || (size_t)w >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int e = errno;
    (void)close(fd);
    if (n < 0) {
        return -e;
    }
    buf[n] = '\0';
    return pgprobe_parse_postmaster_pid(buf, ret);
}

bool pgprobe_pid_is_postmaster(pid_t pid)
{
    char path[64], buf[PROC_STAT_MAX];
    if (pid <= 0) {
        return false;
    }
    if (kill(pid, 0) < 0 && errno != EPERM) {
        return false;
    }
    (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold spaces or parentheses, so take the
     * last ')' */
    char *open_paren = strchr(buf, '(');
    char *close_paren = strrchr(buf, ')');
    if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] != ' ') {
        return false;
    }
    char state = close_paren[2];
    if (state == 'Z' || state == 'X' || state == 'x') {
        return false;
    }
    *close_paren = '\0';
    const char *comm = open_paren + 1;
    return strcmp(comm, "postgres") == 0 || strcmp(comm, "postmaster") == 0;
}

/* ---- the probe ------------------------------------------------------------- */

static void set_error(PgProbe *p, const char *prefix, const char *detail)
{
    (void)snprintf(p->error, sizeof(p->error), "%s%s%s", prefix, detail && *detail ? ": " : "",
                   detail ? detail : "");
    size_t len = strlen(p->error);
    while (len > 0 && (p->error[len - 1] == '\n' || p->error[len - 1] == ' ')) {
        p->error[--len] = '\0';
    }
}

static void drop_connection(PgProbe *p)
{
    if (p->conn) {
        PQfinish(p->conn);
        p->conn = NULL;
    }
}

int pgprobe_new(const PgProbeConfig *cfg, PgProbe **ret)
{
    if (!ret) {
        return -EINVAL;
    }
    PgProbe *p = calloc(1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    int r = pgprobe_conn_params_init(&p->params, cfg);
    if (r < 0) {
        free(p);
        return r;
    }
    char desc[512];
    if (pgprobe_conn_params_describe(&p->params, desc, sizeof(desc)) >= 0) {
        log_debug("postgresql probe: %s", desc);
    }
    *ret = p;
    return 0;
}

PgProbe *pgprobe_free(PgProbe *p)
{
    if (!p) {
        return NULL;
    }
    drop_connection(p);
    pgprobe_conn_params_done(&p->params);
    free(p);
    return NULL;
}

const char *pgprobe_last_sqlstate(const PgProbe *p)
{
    return p ? p->sqlstate : "";
}

const char *pgprobe_last_error(const PgProbe *p)
{
    return p ? p->error : "";
}

unsigned pgprobe_connect_count(const PgProbe *p)
{
    return p ? p->connects : 0;
}

int pgprobe_backend_pid(const PgProbe *p)
{
    return p && p->conn ? PQbackendPID(p->conn) : 0;
}

/* Waits until fd is ready for events or the deadline passes (-ETIMEDOUT). */
static int wait_fd(int fd, short events, uint64_t deadline_usec, short *ret_revents)
{
    if (fd < 0) {
        return -EBADF;
    }
    for (;;) {
        uint64_t now = clock_monotonic_usec();
        if (now >= deadline_usec) {
            return -ETIMEDOUT;
        }
        uint64_t left_ms = (deadline_usec - now + 999) / 1000;
        struct pollfd pfd = { .fd = fd, .events = events };
        int r = poll(&pfd, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r > 0) {
            if (ret_revents) {
                *ret_revents = pfd.revents;
            }
            return 0;
        }
    }
}

static int connect_deadline(PgProbe *p, uint64_t deadline_usec)
{
    drop_connection(p);
    PGconn *conn = PQconnectStartParams(p->params.keywords, p->params.values, 0);
    if (!conn) {
        set_error(p, "out of memory", NULL);
        return -ENOMEM;
    }
    p->connects++;
    if (PQstatus(conn) == CONNECTION_BAD) {
        set_error(p, "could not connect", PQerrorMessage(conn));
        PQfinish(conn);
        return -ECONNREFUSED;
    }
    /* libpq: start as if PQconnectPoll had returned PGRES_POLLING_WRITING */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (;;) {
        if (st == PGRES_POLLING_OK) {
            break;
        }
        if (st == PGRES_POLLING_FAILED) {
            set_error(p, "could not connect", PQerrorMessage(conn));
            PQfinish(conn);
            return -ECONNREFUSED;
        }
        int r = wait_fd(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                        deadline_usec, NULL);
        if (r < 0) {
            set_error(p, r == -ETIMEDOUT ? "timed out connecting" : "could not connect",
                      r == -ETIMEDOUT ? NULL : strerror(-r));
            PQfinish(conn);
            return r == -ETIMEDOUT ? r : -ECONNREFUSED;
        }
        st = PQconnectPoll(conn);
    }
    if (PQsetnonblocking(conn, 1) != 0) {
        set_error(p, "could not switch to non-blocking mode", PQerrorMessage(conn));
        PQfinish(conn);
        return -EPROTO;
    }
    p->conn = conn;
    log_debug("postgresql probe connected, backend pid %d", PQbackendPID(conn));
    return 0;
}

/* Sends sql (one or more statements) and collects up to max results, in
 * order; a statement that failed yields no result but sets the error. On
 * -ETIMEDOUT and on a broken connection the connection is dropped. Returns
 * the number of results, -EPROTO when a statement failed (the results are
 * dropped), -ETIMEDOUT or -ECONNRESET. */
static int run_query(PgProbe *p, const char *sql, uint64_t deadline_usec, PGresult **results,
                     int max)
{
    PGconn *conn = p->conn;
    int nres = 0;
    const char *query_error = NULL;
    int r;

    if (!PQsendQuery(conn, sql)) {
        set_error(p, "could not send the query", PQerrorMessage(conn));
        drop_connection(p);
        return -ECONNRESET;
    }
    for (;;) {
        int f = PQflush(conn);
        if (f == 0) {
            break;
        }
        if (f < 0) {
            set_error(p, "could not send the query", PQerrorMessage(conn));
            drop_connection(p);
            return -ECONNRESET;
        }
        short revents = 0;
        r = wait_fd(PQsocket(conn), POLLOUT | POLLIN, deadline_usec, &revents);
        if (r < 0) {
            goto fail_wait;
        }
        if ((revents & POLLIN) && !PQconsumeInput(conn)) {
            set_error(p, "connection lost", PQerrorMessage(conn));
            drop_connection(p);
            return -ECONNRESET;
        }
    }

    for (;;) {
        while (PQisBusy(conn)) {
            r = wait_fd(PQsocket(conn), POLLIN, deadline_usec, NULL);
            if (r < 0) {
                goto fail_wait;
            }
            if (!PQconsumeInput(conn)) {
                set_error(p, "connection lost", PQerrorMessage(conn));
                drop_connection(p);
                goto fail_reset;
            }
        }
        PGresult *res = PQgetResult(conn);
        if (!res) {
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            if (!query_error) {
                set_error(p, "query failed", PQresultErrorMessage(res));
                query_error = p->error;
                const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                (void)snprintf(p->sqlstate, sizeof(p->sqlstate), "%s", state ? state : "");
            }
            PQclear(res);
        } else if (nres < max) {
            results[nres++] = res;
        } else {
            PQclear(res);
        }
    }
    if (PQstatus(conn) == CONNECTION_BAD) {
        if (!query_error) {
            set_error(p, "connection lost", PQerrorMessage(conn));
        }
        drop_connection(p);
        goto fail_reset;
    }
    if (query_error) {
        for (int i = 0; i < nres; i++) {
            PQclear(results[i]);
        }
        return -EPROTO;
    }
    return nres;

fail_wait:
    set_error(p, r == -ETIMEDOUT ? "timed out waiting for the query" : "poll failed",
              r == -ETIMEDOUT ? NULL : strerror(-r));
    drop_connection(p);
    for (int i = 0; i < nres; i++) {
        PQclear(results[i]);
    }
    return r == -ETIMEDOUT ? r : -ECONNRESET;
fail_reset:
    for (int i = 0; i < nres; i++) {
        PQclear(results[i]);
    }
    return -ECONNRESET;
}

/* Connects when needed and runs sql; a kept connection that turns out
 * broken is replaced once within the same deadline. */
static int with_connection(PgProbe *p, uint64_t deadline_usec, const char *sql, PGresult **res,
                           int max)
{
    int r;
    p->error[0] = '\0';
    p->sqlstate[0] = '\0';
    if (p->conn && PQstatus(p->conn) != CONNECTION_OK) {
        drop_connection(p);
    }
    for (int attempt = 0;; attempt++) {
        bool reused = p->conn != NULL;
        if (!p->conn) {
            r = connect_deadline(p, deadline_usec);
            if (r < 0) {
                return r;
            }
        }
        r = run_query(p, sql, deadline_usec, res, max);
        if (r == -ECONNRESET && reused && attempt == 0) {
            log_debug("postgresql: kept connection broke (%s), reconnecting", p->error);
            continue;
        }
        return r;
    }
}

int pgprobe_exec(PgProbe *p, const char *sql, uint64_t deadline_usec, PGresult **ret_first)
{
    if (!p || !sql) {
        return -EINVAL;
    }
    PGresult *res[1] = { NULL };
    int r = with_connection(p, deadline_usec, sql, res, 1);
    if (r < 0) {
        log_debug("postgresql: %s", p->error);
        return r;
    }
    if (ret_first) {
        *ret_first = res[0];
    } else if (res[0]) {
        PQclear(res[0]);
    }
    return 0;
}

/* What keeps a statement out of the server log for this session (Patroni's
 * create_or_update_role): a failing statement is reported without its text,
 * since ERROR ranks below LOG for log_min_error_statement. */
static const char UNLOGGED_ON[] = "SET log_statement TO none;"
                                  "SET log_min_duration_statement TO -1;"
                                  "SET log_min_error_statement TO log;"
                                  "SET pg_stat_statements.track_utility TO off";
static const char UNLOGGED_OFF[] = "RESET log_statement;"
                                   "RESET log_min_duration_statement;"
                                   "RESET log_min_error_statement;"
                                   "RESET pg_stat_statements.track_utility";

/* run_query on the kept connection, results dropped. */
static int run_discard(PgProbe *p, const char *sql, uint64_t deadline_usec)
{
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
        return -ECONNRESET;
    }
    PGresult *res[1] = { NULL };
    int r = run_query(p, sql, deadline_usec, res, 1);
    PQclear(res[0]);
    return r;
}

int pgprobe_exec_unlogged(PgProbe *p, const char *sql, uint64_t deadline_usec)
{
    if (!p || !sql) {
        return -EINVAL;
    }
    PGresult *res[1] = { NULL };
    int r = with_connection(p, deadline_usec, UNLOGGED_ON, res, 1);
    PQclear(res[0]);
    /* on the same session only: a reconnect would log the statement */
    if (r >= 0) {
        r = run_discard(p, sql, deadline_usec);
    }
    if (r != -ECONNRESET && r != -ETIMEDOUT && p->conn) {
        /* also after a failed statement, while the session lives */
        char error[sizeof(p->error)];
        memcpy(error, p->error, sizeof(error));
        int r2 = run_discard(p, UNLOGGED_OFF, deadline_usec);
        if (r < 0) {
            memcpy(p->error, error, sizeof(error));
        }
        r = r < 0 ? r : r2;
    }
    if (r < 0) {
        log_debug("postgresql: %s", p->error);
    }
    return r;
}

static const char *value_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* src truncated to size - 1 bytes (NULL: ""), without printf's cost on
 * every probe */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = src ? strnlen(src, size - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static uint64_t lsn_or_zero(const char *s)
{
    uint64_t v = 0;
    if (s && pgprobe_parse_lsn(s, &v) < 0) {
        log_debug("postgresql probe: unexpected LSN \"%s\"", s);
        v = 0;
    }
    return v;
}

/* A number column; false (and a debug note for garbage) when it is not one. */
static bool number_or_null(const char *s, double *ret)
{
    int r = pgprobe_parse_double(s, ret);
    if (r == -EINVAL) {
        log_debug("postgresql probe: unexpected number \"%s\"", s);
    }
    return r == 0;
}

static int fill_snapshot(PgProbe *p, const PGresult *m, const PGresult *rep, PgSnapshot *s)
{
    if (PQntuples(m) != 1 || PQnfields(m) != _COL_MAX || PQnfields(rep) != _REP_MAX) {
        set_error(p, "probe query returned an unexpected shape", NULL);
        return -EPROTO;
    }
    const char *v;
    /* the rows past the ones filled stay as they were: no reader goes past
     * min(n_replication, PGPROBE_REPLICAS_MAX), and clearing all 32 rows of
     * 6.6 kB every loop was most of an idle probe's memory traffic */
    memset(s, 0, offsetof(PgSnapshot, replication));
    s->reachable = true;
    v = value_or_null(m, 0, COL_IN_RECOVERY);
    s->in_recovery = v && v[0] == 't';
    s->current_lsn = lsn_or_zero(value_or_null(m, 0, COL_CURRENT_LSN));
    s->receive_lsn = lsn_or_zero(value_or_null(m, 0, COL_RECEIVE_LSN));
    s->replay_lsn = lsn_or_zero(value_or_null(m, 0, COL_REPLAY_LSN));
    s->has_replay_timestamp =
        number_or_null(value_or_null(m, 0, COL_REPLAY_TS), &s->replay_timestamp);
    v = value_or_null(m, 0, COL_REPLAY_PAUSED);
    s->replay_paused = v && v[0] == 't';
    (void)number_or_null(value_or_null(m, 0, COL_CLOCK), &s->clock_epoch);
    if ((v = value_or_null(m, 0, COL_WR_STATUS))) {
        s->has_wal_receiver = true;
        copy_text(s->wal_receiver_status, sizeof(s->wal_receiver_status), v);
    }
    if ((v = value_or_null(m, 0, COL_WR_TLI))) {
        s->received_tli = (uint32_t)strtoul(v, NULL, 10);
    }
    copy_text(s->sender_host, sizeof(s->sender_host), value_or_null(m, 0, COL_WR_HOST));
    if ((v = value_or_null(m, 0, COL_WR_PORT))) {
        s->sender_port = (unsigned)strtoul(v, NULL, 10);
    }
    copy_text(s->slot_name, sizeof(s->slot_name), value_or_null(m, 0, COL_WR_SLOT));
    if ((v = value_or_null(m, 0, COL_VERSION))) {
        s->server_version_num = (int)strtol(v, NULL, 10);
    }
    if ((v = value_or_null(m, 0, COL_SYSID))) {
        s->system_identifier = (uint64_t)strtoll(v, NULL, 10);
    }
    (void)number_or_null(value_or_null(m, 0, COL_START_TIME), &s->postmaster_start_time);
    v = value_or_null(m, 0, COL_PENDING_RESTART);
    s->pending_restart = v && v[0] == 't';
    if ((v = value_or_null(m, 0, COL_PHYSICAL_SLOTS))) {
        s->physical_slots = (unsigned)strtoul(v, NULL, 10);
    }

    /* Timeline: see the comment in pgprobe_sql.h. */
    if (!s->in_recovery && (v = value_or_null(m, 0, COL_WALFILE_TLI))) {
        s->timeline = (uint32_t)strtoul(v, NULL, 16);
    } else if (s->in_recovery && s->received_tli > 0) {
        s->timeline = s->received_tli;
    } else if ((v = value_or_null(m, 0, COL_CHECKPOINT_TLI))) {
        s->timeline = (uint32_t)strtoul(v, NULL, 10);
    }

    s->n_replication = (size_t)PQntuples(rep);
    for (int i = 0; i < PQntuples(rep) && (size_t)i < PGPROBE_REPLICAS_MAX; i++) {
        PgReplicationRow *row = &s->replication[i];
        *row = (PgReplicationRow){ 0 };
        copy_text(row->application_name, sizeof(row->application_name),
                  value_or_null(rep, i, REP_APP));
        copy_text(row->state, sizeof(row->state), value_or_null(rep, i, REP_STATE));
        copy_text(row->sync_state, sizeof(row->sync_state), value_or_null(rep, i, REP_SYNC));
        row->sent_lsn = lsn_or_zero(value_or_null(rep, i, REP_SENT));
        row->write_lsn = lsn_or_zero(value_or_null(rep, i, REP_WRITE));
        row->flush_lsn = lsn_or_zero(value_or_null(rep, i, REP_FLUSH));
        row->replay_lsn = lsn_or_zero(value_or_null(rep, i, REP_REPLAY));
        row->has_write_lag =
            number_or_null(value_or_null(rep, i, REP_WRITE_LAG), &row->write_lag_sec);
        row->has_flush_lag =
            number_or_null(value_or_null(rep, i, REP_FLUSH_LAG), &row->flush_lag_sec);
        row->has_replay_lag =
            number_or_null(value_or_null(rep, i, REP_REPLAY_LAG), &row->replay_lag_sec);
    }
    return 0;
}

int pgprobe_snapshot(PgProbe *p, uint64_t deadline_usec, PgSnapshot *ret)
{
    if (!p || !ret) {
        return -EINVAL;
    }
    PGresult *res[2] = { NULL, NULL };
    int r = with_connection(p, deadline_usec, snapshot_sql, res, 2);
    if (r >= 0 && r != 2) {
        for (int i = 0; i < r; i++) {
            PQclear(res[i]);
        }
        set_error(p, "probe query returned no rows", NULL);
        r = -EPROTO;
    }
    if (r < 0) {
        log_debug("postgresql probe: %s", p->error);
        return r;
    }
    _cleanup_(pgresult_clearp) PGresult *m = res[0];
    _cleanup_(pgresult_clearp) PGresult *rep = res[1];
    return fill_snapshot(p, m, rep, ret);
}

bool pgprobe_streaming(const PgSnapshot *s)
{
    return s->in_recovery && s->has_wal_receiver &&
           strcmp(s->wal_receiver_status, "streaming") == 0;
}
