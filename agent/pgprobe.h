/* Probe the local PostgreSQL: one kept libpq connection (reached through the
 * Unix socket directory or a listen address, never connect_address), one
 * round trip per probe that fills a PgSnapshot, and a deadline on every step
 * using libpq's non-blocking API. Plus postmaster.pid reading and a liveness
 * check, so a dead postmaster is noticed without a query. Logs at debug only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PGPROBE_LSN_STR_MAX  18 /* "FFFFFFFF/FFFFFFFF" + NUL */
#define PGPROBE_NAME_MAX     64 /* NAMEDATALEN: application_name, slot names */
#define PGPROBE_HOST_MAX     256
#define PGPROBE_STATE_MAX    32 /* pg_stat_replication.state, wal receiver status */
#define PGPROBE_REPLICAS_MAX 32 /* pg_stat_replication rows kept; more are counted only */
#define PGPROBE_ERROR_MAX    256
#define PGPROBE_OPTIONS_MAX  64
#define PGPROBE_EXTRA_MAX    9 /* more libpq keywords: sslmode, sslrootcert, ... */
#define PGPROBE_CONN_KEYS_MAX                                                                      \
    (9 + PGPROBE_EXTRA_MAX) /* host port user password dbname connect_timeout                      \
                               application_name options + extra + NULL */

/* How to reach the local server. Strings are copied by pgprobe_new(). */
typedef struct PgProbeConfig {
    const char *host;     /* Unix socket directory ("/run/postgresql") or a listen address */
    unsigned port;        /* 1..65535 */
    const char *user;     /* NULL: libpq's default */
    const char *password; /* NULL: none (or a passfile); never logged */
    const char *dbname;   /* NULL: "postgres" */
    unsigned connect_timeout_sec;  /* libpq's own cap, 0: 2 (its minimum); our deadline rules */
    unsigned statement_timeout_ms; /* server-side cap of every probe query, 0: 2000 */
    /* more libpq keywords and values (the superuser's sslmode, sslrootcert,
     * ...); at most PGPROBE_EXTRA_MAX; "sslpassword" is never shown */
    const char *extra_keys[PGPROBE_EXTRA_MAX];
    const char *extra_values[PGPROBE_EXTRA_MAX];
    size_t n_extra;
} PgProbeConfig;

/* PQconnectStartParams() keyword/value arrays built from a PgProbeConfig. */
typedef struct PgConnParams {
    const char *keywords[PGPROBE_CONN_KEYS_MAX]; /* borrowed: static strings, NULL-terminated */
    const char *values[PGPROBE_CONN_KEYS_MAX];   /* borrowed: point into the fields below */
    char *host;                                  /* owned */
    char *user;                                  /* owned, may be NULL */
    char *password;                              /* owned, may be NULL */
    char *dbname;                                /* owned */
    char *extra_keys[PGPROBE_EXTRA_MAX];         /* owned */
    char *extra_values[PGPROBE_EXTRA_MAX];       /* owned */
    char port[8];
    char connect_timeout[16];
    char options[PGPROBE_OPTIONS_MAX];
} PgConnParams;

typedef struct PgReplicationRow {
    char application_name[PGPROBE_NAME_MAX];
    char state[PGPROBE_STATE_MAX];
    char sync_state[PGPROBE_STATE_MAX];
    uint64_t sent_lsn, write_lsn, flush_lsn, replay_lsn; /* 0 when NULL */
    /* write_lag, flush_lag, replay_lag in seconds; PostgreSQL shows NULL
     * until the standby reports, and again once it is idle and caught up */
    bool has_write_lag, has_flush_lag, has_replay_lag;
    double write_lag_sec, flush_lag_sec, replay_lag_sec;
} PgReplicationRow;

typedef struct PgSnapshot {
    bool reachable; /* always true in a snapshot returned by pgprobe_snapshot() */
    bool in_recovery;
    uint32_t timeline;    /* primary: from the current WAL file name; replica: received_tli,
                             else the last checkpoint's */
    uint64_t current_lsn; /* primary: pg_current_wal_lsn(), else 0 */
    uint64_t receive_lsn; /* replica: pg_last_wal_receive_lsn(), else 0 */
    uint64_t replay_lsn;  /* replica: pg_last_wal_replay_lsn(), else 0 */
    bool has_replay_timestamp;
    double replay_timestamp; /* pg_last_xact_replay_timestamp(), epoch seconds */
    bool replay_paused;      /* replica: pg_is_wal_replay_paused() */
    double clock_epoch;      /* the server's clock_timestamp() during the probe */

    bool has_wal_receiver; /* pg_stat_wal_receiver has a row */
    char wal_receiver_status[PGPROBE_STATE_MAX];
    uint32_t received_tli;
    char sender_host[PGPROBE_HOST_MAX];
    unsigned sender_port;
    char slot_name[PGPROBE_NAME_MAX];

    int server_version_num;
    uint64_t system_identifier;
    double postmaster_start_time; /* epoch seconds */
    bool pending_restart;         /* a changed setting waits for a restart (pg_settings) */
    unsigned physical_slots;      /* rows in pg_replication_slots of slot_type physical */

    size_t n_replication;                               /* rows in pg_stat_replication */
    PgReplicationRow replication[PGPROBE_REPLICAS_MAX]; /* the first min(n, MAX) rows */
} PgSnapshot;

typedef struct PgProbe PgProbe;

/* Validates cfg (host set, port in range) and copies it; does not connect.
 * Returns 0 and *ret (owned by the caller), -EINVAL or -ENOMEM. */
int pgprobe_new(const PgProbeConfig *cfg, PgProbe **ret);
/* Closes the connection; accepts NULL; returns NULL. */
PgProbe *pgprobe_free(PgProbe *p);

/* One probe, finished by deadline_usec (CLOCK_MONOTONIC, microseconds):
 * connects if there is no usable connection (one fresh reconnect is tried
 * when the kept one turns out broken), runs the snapshot query and fills
 * *ret. Returns 0; -ETIMEDOUT when the deadline passed (the connection is
 * dropped: closing it ends the backend, and statement_timeout bounds the
 * query server-side); -ECONNREFUSED when the server cannot be reached;
 * -EPROTO when the query failed; -ENOMEM. pgprobe_last_error() then tells
 * why, without the password. *ret is written only on success (its
 * replication rows past the ones filled are left as they were). */
int pgprobe_snapshot(PgProbe *p, uint64_t deadline_usec, PgSnapshot *ret);
/* A replica whose walreceiver reports "streaming" (PostgreSQL shows that
 * also while a walreceiver it will reject starts up). */
bool pgprobe_streaming(const PgSnapshot *s);
/* Runs sql (one or more statements, e.g. DDL) on the kept connection, by
 * deadline_usec like pgprobe_snapshot. On success returns 0 and, when
 * ret_first is not NULL, the first statement's result (PQclear it; NULL when
 * the statement returned none). A failed statement gives -EPROTO with the
 * server's message in pgprobe_last_error(). */
typedef struct pg_result PGresult;
int pgprobe_exec(PgProbe *p, const char *sql, uint64_t deadline_usec, PGresult **ret_first);

/* Like pgprobe_exec, for a statement that holds a secret (a role's
 * password): on the same session, first sets log_statement to none,
 * log_min_duration_statement to -1 and log_min_error_statement to log, so
 * neither the statement nor its failure reaches the server log, then runs
 * sql (without a reconnect: that would be a session without them), then
 * resets them. Returns 0 or a negative errno like pgprobe_exec. */
int pgprobe_exec_unlogged(PgProbe *p, const char *sql, uint64_t deadline_usec);

/* The last failure's message ("" after a success). Borrowed, valid until
 * the next call. */
const char *pgprobe_last_error(const PgProbe *p);
/* The SQLSTATE of the last failed statement ("58P01"), "" when the last
 * call failed otherwise or succeeded. Borrowed, valid until the next call. */
const char *pgprobe_last_sqlstate(const PgProbe *p);
/* How many connections were opened so far (reuse is observable in tests). */
unsigned pgprobe_connect_count(const PgProbe *p);
/* The kept connection's server PID, or 0. */
int pgprobe_backend_pid(const PgProbe *p);

/* ---- pure helpers ---- */

/* Builds the libpq parameters (application_name=dbha, options
 * "-c statement_timeout=<ms>"). Returns 0, -EINVAL or -ENOMEM; on success
 * the caller calls pgprobe_conn_params_done(). */
int pgprobe_conn_params_init(PgConnParams *p, const PgProbeConfig *cfg);
void pgprobe_conn_params_done(PgConnParams *p);
/* A loggable "key=value ..." form; the password is never included. Returns
 * the length written, or -ENOBUFS when buf is too small. */
int pgprobe_conn_params_describe(const PgConnParams *p, char *buf, size_t size);

/* A replica's own replication lag in seconds: 0 when replay has caught up
 * with what it received, else clock_epoch - replay_timestamp (never below
 * 0). Returns 0 and *ret_sec, or -ENODATA on a primary, or when PostgreSQL
 * has replayed no transaction yet. Pure. */
int pgprobe_replica_lag_seconds(const PgSnapshot *s, double *ret_sec);
/* A number PostgreSQL printed (date_part's double: "12.5", "-0.001",
 * "1e-06"), NULL for SQL NULL. Returns 0 and *ret, -ENODATA for NULL,
 * -EINVAL for anything else than one finite number. Pure. */
int pgprobe_parse_double(const char *s, double *ret);

/* "X/Y" with 1..8 hex digits on each side (pg_lsn's text form). Returns 0 or
 * -EINVAL. */
int pgprobe_parse_lsn(const char *s, uint64_t *ret);
/* Writes "X/Y" (uppercase hex, as PostgreSQL prints it). Returns 0 or
 * -ENOBUFS (buf needs PGPROBE_LSN_STR_MAX bytes). */
int pgprobe_format_lsn(uint64_t lsn, char *buf, size_t size);

/* postmaster.pid's first line: the postmaster PID, or minus the PID of a
 * single-user backend; its third: the start time. */
typedef struct PgPostmasterPid {
    pid_t pid;          /* > 0 */
    bool standalone;    /* the file belongs to a single-user backend, not a postmaster */
    int64_t start_time; /* seconds since the epoch; 0: not (yet) in the file */
} PgPostmasterPid;

/* Parses postmaster.pid contents. Returns 0, or -EINVAL for an empty file, a
 * first line that is not a decimal integer, 0, or out of range (a third
 * line that is not a number leaves start_time 0, as Patroni reads it). */
int pgprobe_parse_postmaster_pid(const char *content, PgPostmasterPid *ret);
/* Reads <data_dir>/postmaster.pid. Returns 0, -ENOENT when there is none,
 * -EINVAL when it is malformed, or another -errno. */
int pgprobe_read_postmaster_pid(const char *data_dir, PgPostmasterPid *ret);
/* True when pid is a live (not zombie) process whose name is postgres or
 * postmaster, so a recycled PID is not mistaken for the server. */
bool pgprobe_pid_is_postmaster(pid_t pid);
