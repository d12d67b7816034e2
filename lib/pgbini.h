/* pgbouncer's configuration file (pgbouncer.ini) for `dbctl route pgbouncer`:
 * a line-oriented reader (`[section]` headers, `key = value` lines, `;` and
 * `#` comment lines, as pgbouncer's own parser reads them), the rewrite of
 * entries of the [databases] section that keeps every other byte, and the
 * choice of the hosts from dbha's topology document. Pure: no I/O, no
 * logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define PGBINI_ERROR_MAX 256

/* The parameters of a [databases] entry that dbha owns; the others (user=,
 * pool_size=, ...) are left as written. */
#define PGBINI_PARAM_HOST   "host"
#define PGBINI_PARAM_PORT   "port"
#define PGBINI_PARAM_DBNAME "dbname"

typedef struct PgbIniError {
    unsigned line; /* 1-based, 0 when not about one line */
    char message[PGBINI_ERROR_MAX];
} PgbIniError;

/* The value of key in [section] of the ini text (the last one when the key
 * repeats, as pgbouncer reads it), trimmed; keys and section names compare
 * case-insensitively, like pgbouncer's settings. text need not be
 * NUL-terminated. Returns 0 and *ret_value (owned by the caller), -ENOENT
 * when the key is absent, -ENOMEM. */
int pgbini_get(const char *text, size_t len, const char *section, const char *key,
               char **ret_value);

/* The value of param (e.g. "host") in the connection string of the
 * [databases] entry named db (compared exactly; a key written in double
 * quotes is unquoted), unquoted. Returns 0 and *ret_value (owned), -ENOENT
 * when the entry or the parameter is absent, -EINVAL when the entry's
 * connection string is malformed, -ENOMEM. */
int pgbini_get_database_param(const char *text, size_t len, const char *db, const char *param,
                              char **ret_value);

/* The password of user in a pgbouncer auth_file (userlist.txt: one
 * `"user" "password"` per line, "" inside quotes for a quote; lines that do
 * not start with a quote are ignored, as pgbouncer does). A hashed password
 * ("md5..." or "SCRAM-SHA-256$...") is returned as written;
 * pgbini_password_is_hashed tells. Returns 0 and *ret_password (owned),
 * -ENOENT when the user has no line, -ENOMEM. */
int pgbini_userlist_password(const char *text, size_t len, const char *user, char **ret_password);
bool pgbini_password_is_hashed(const char *password);

/* Where one [databases] entry should point. Strings borrowed. */
typedef struct PgbIniTarget {
    const char *name;   /* the entry's key, e.g. "postgres_ro" */
    const char *host;   /* host= */
    int port;           /* port= (1..65535) */
    const char *dbname; /* dbname= */
} PgbIniTarget;

/* Rewrites the [databases] section of the ini text so every target's entry
 * carries the target's host=, port= and dbname=: those parameters are
 * replaced where they stand, missing ones are appended, every other
 * parameter and all spacing are kept. An entry that does not exist is added
 * after the section's last entry; a missing [databases] section is added
 * before the first section. Every line outside the entries changed is kept
 * byte for byte (a file with CRLF line ends gets CRLF on added lines; a last
 * line that ends in a bare '\r' gets its '\n' before anything is added).
 * Returns 0 with *ret_text (NUL-terminated, owned), *ret_len and
 * *ret_changed (false: *ret_text equals text); -EINVAL with reterr (line and
 * message) for a malformed entry of a target (unterminated quote, a
 * parameter without '=') or an invalid target; -ENOMEM. */
int pgbini_rewrite_databases(const char *text, size_t len, const PgbIniTarget *targets,
                             size_t n_targets, char **ret_text, size_t *ret_len, bool *ret_changed,
                             PgbIniError *reterr);

/* One member picked from the topology document. Strings borrowed from the
 * document. */
typedef struct PgbIniHost {
    const char *name; /* member name, NULL when none was picked */
    const char *host;
    int port;
} PgbIniHost;

typedef struct PgbIniChoice {
    PgbIniHost primary;      /* "primary" of the document; name NULL when null */
    PgbIniHost replica;      /* a healthy replica, else the primary; name NULL when neither */
    bool replica_is_primary; /* no healthy replica: the read entry falls back to the primary */
} PgbIniChoice;

/* A replica of the topology document is healthy for routing when its state
 * is "streaming" (or "running" with a known lag_bytes) and noloadbalance is
 * false. */
bool pgbini_replica_healthy(const json_t *replica);

/* Picks the primary and a healthy replica from a topology document
 * (/<namespace>/<scope>/topology). The replica is current (host and port as
 * the read entry names them now, NULL for none) when that one is still
 * healthy, so a reload does not move readers without a reason; else the
 * healthy replica with the least lag_bytes (unknown lag last), then by name.
 * Members without a host or with a port outside 1..65535 are skipped.
 * Returns 0 and *ret, -EINVAL when doc is not a topology object. */
int pgbini_choose(const json_t *doc, const char *current_host, int current_port, PgbIniChoice *ret);
