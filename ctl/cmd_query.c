/* dbctl query: run SQL on one member over libpq and print the result as a
 * table, JSON or YAML. The member's address is its conn_url in etcd; the
 * credentials are the operator's (-U, --password typed on the terminal,
 * PGPASSWORD, ~/.pgpass) or the superuser of -c CONFIG. Every statement runs under
 * statement_timeout. patronictl's -W / -w SECONDS run it again and again, each
 * time reading the cluster and connecting anew, as patronictl's query does. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "input.h"
#include "macro.h"
#include "output.h"
#include "prompt.h"
#include "verbarg.h"

#define QUERY_FILE_MAX        (1024 * 1024)
#define QUERY_TIMEOUT_SEC     60
#define QUERY_TIMEOUT_MAX_SEC 86400
#define QUERY_CONNECT_SEC     "5"
/* Room for "-c statement_timeout=N" and a port's text. */
#define QUERY_OPTION_MAX 64
/* Room for a typed password. */
#define QUERY_PASSWORD_MAX 1024

static void password_wipe(char (*p)[QUERY_PASSWORD_MAX])
{
    explicit_bzero(*p, sizeof(*p));
}

static bool is_leader(const DcsCluster *c, const DcsMember *m)
{
    return c->leader && strcmp(c->leader->name, m->name) == 0;
}

/* The member to run on: -m NAME, else by role. NULL and why in *why. */
static const DcsMember *pick_member(const DcsCluster *c, const char *name, const char *role,
                                    const char **why)
{
    if (name) {
        const DcsMember *m = dcs_cluster_get_member(c, name);
        *why = m ? NULL : "no such member";
        return m;
    }
    const DcsMember *leader = dcs_cluster_leader_member(c);
    if (strcmp(role, "primary") == 0 || (strcmp(role, "any") == 0 && leader)) {
        *why = leader ? NULL : "the cluster has no leader";
        return leader;
    }
    /* a replica (or, for any, whoever runs): streaming ones first */
    const DcsMember *best = NULL;
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        if (is_leader(c, m) || !m->host || !m->state || strcmp(m->state, "running") != 0) {
            continue;
        }
        bool streaming = m->replication_state && strcmp(m->replication_state, "streaming") == 0;
        if (!best || (streaming && !(best->replication_state &&
                                     strcmp(best->replication_state, "streaming") == 0))) {
            best = m;
        }
    }
    *why = best ? NULL : "no running replica";
    return best;
}

static int print_result(const char *member, PGresult *res, CtlOutput fmt)
{
    int n_fields = PQnfields(res), n_rows = PQntuples(res);
    if (fmt != CTL_OUTPUT_TABLE) {
        json_t *rows = json_array();
        json_auto_t *o = json_pack("{s:s, s:s, s:o}", "member", member, "command", PQcmdStatus(res),
                                   "rows", rows);
        if (!o) {
            return -ENOMEM;
        }
        for (int i = 0; i < n_rows; i++) {
            json_t *row = json_object();
            if (!row || json_array_append_new(rows, row) < 0) {
                return -ENOMEM;
            }
            for (int j = 0; j < n_fields; j++) {
                json_t *v =
                    PQgetisnull(res, i, j) ? json_null() : json_string(PQgetvalue(res, i, j));
                if (!v || json_object_set_new(row, PQfname(res, j), v) < 0) {
                    return -ENOMEM;
                }
            }
        }
        return fmt == CTL_OUTPUT_JSON ? output_json(o, stdout) : output_yaml(o, stdout);
    }
    if (n_fields == 0) {
        printf("%s\n", PQcmdStatus(res));
        return 0;
    }
    _cleanup_free_ const char **cells = calloc((size_t)n_fields, sizeof(*cells));
    if (!cells) {
        return -ENOMEM;
    }
    for (int j = 0; j < n_fields; j++) {
        cells[j] = PQfname(res, j);
    }
    _cleanup_(output_table_freep) OutputTable *t = output_table_new((size_t)n_fields, cells);
    if (!t) {
        return -ENOMEM;
    }
    for (int i = 0; i < n_rows; i++) {
        for (int j = 0; j < n_fields; j++) {
            cells[j] = PQgetisnull(res, i, j) ? "" : PQgetvalue(res, i, j);
        }
        int r = output_table_add_row(t, cells);
        if (r < 0) {
            return r;
        }
    }
    return output_table_print(t, NULL, stdout);
}

/* What each round of query needs: the target (read again every round, as
 * patronictl's query does) and the command line's choices. */
typedef struct QueryJob {
    CtlTarget target;
    const char *member, *role, *sql, *user, *dbname, *password; /* borrowed */
    long timeout;
    CtlOutput fmt;
} QueryJob;

/* One round: read the cluster, pick the member, connect, run the SQL and
 * print the result. An etcd error ends a watch (patronictl's query stops
 * on it); a member that cannot be picked, reached or run on is reported
 * and the watch goes on (patronictl prints the error as a row). */
static int query_round(void *userdata, bool *ret_stop)
{
    QueryJob *j = userdata;
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    _cleanup_(ctl_pq_finishp) PGconn *conn = NULL;
    _cleanup_(ctl_pq_clearp) PGresult *res = NULL;
    const char *why = NULL;
    char port[QUERY_OPTION_MAX], pgoptions[QUERY_OPTION_MAX];
    EtcdError e = { 0 };
    int r = dcs_cluster_read(j->target.client, &j->target.paths, &c, &e);
    if (r < 0) {
        fprintf(stderr, "dbctl query: cannot read cluster \"%s\" from etcd (%s): %s\n",
                j->target.scope, etcd_client_get_endpoint(j->target.client),
                e.message[0] ? e.message : strerror(-r));
        *ret_stop = true;
        return 1;
    }
    const DcsMember *m = pick_member(c, j->member, j->role ? j->role : "any", &why);
    if (!m) {
        fprintf(stderr, "dbctl query: %s%s%s\n", why, j->member ? ": " : "", strempty(j->member));
        return 1;
    }
    if (!m->host) {
        fprintf(stderr, "dbctl query: member \"%s\" publishes no conn_url\n", m->name);
        return 1;
    }
    (void)snprintf(port, sizeof(port), "%d", m->port);
    (void)snprintf(pgoptions, sizeof(pgoptions), "-c statement_timeout=%ld", j->timeout * 1000);
    {
        const char *keys[] = { "host",     "port",    "dbname",          "user",
                               "password", "options", "connect_timeout", "application_name",
                               NULL };
        const char *values[] = { m->host,           port,        j->dbname,
                                 j->user,           j->password, pgoptions,
                                 QUERY_CONNECT_SEC, "dbctl",     NULL };
        if (!j->password) {
            /* libpq stops at the first NULL key: move the rest up */
            for (size_t i = 4; keys[i]; i++) {
                keys[i] = keys[i + 1];
                values[i] = values[i + 1];
            }
        }
        conn = PQconnectdbParams(keys, values, 0);
    }
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "dbctl query: cannot connect to \"%s\" (%s:%d): %s", m->name, m->host,
                m->port, conn ? PQerrorMessage(conn) : "out of memory\n");
        return 1;
    }
    res = PQexec(conn, j->sql);
    if (!res ||
        (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)) {
        fprintf(stderr, "dbctl query: on \"%s\": %s", m->name,
                res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        return 1;
    }
    if (print_result(m->name, res, j->fmt) < 0) {
        fprintf(stderr, "dbctl query: cannot print the result\n");
        return 1;
    }
    fflush(stdout);
    return 0;
}

int verb_query(int argc, char *argv[])
{
    static const struct option options[] = {
        { "member", required_argument, NULL, 'm' },   { "role", required_argument, NULL, 'r' },
        { "command", required_argument, NULL, 'c' },  { "file", required_argument, NULL, 'f' },
        { "username", required_argument, NULL, 'U' }, { "dbname", required_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 't' },  { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, 'o' },   { "password", no_argument, NULL, 'P' },
        { "watch", required_argument, NULL, 'w' },    { "count", required_argument, NULL, 'C' },
        { "help", no_argument, NULL, 'h' },           {},
    };
    const char *member = NULL, *role = NULL, *sql_arg = NULL, *file = NULL, *user = NULL,
               *dbname = "postgres", *cluster = NULL;
    bool ask_password = false;
    long timeout = QUERY_TIMEOUT_SEC;
    CtlOutput fmt = arg_output;
    VerbWatch watch = { 0 };
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "m:r:c:f:U:d:o:w:Wh", options, NULL)) >= 0) {
        switch (opt) {
        case 'm':
            member = optarg;
            break;
        case 'r':
            role = optarg;
            if (strcmp(role, "primary") != 0 && strcmp(role, "replica") != 0 &&
                strcmp(role, "any") != 0) {
                fprintf(stderr, "dbctl query: unknown role \"%s\" (primary, replica, any)\n", role);
                return 2;
            }
            break;
        case 'c':
            sql_arg = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'U':
            user = optarg;
            break;
        case 'd':
            dbname = optarg;
            break;
        case 't':
            if (!ctl_parse_long(optarg, 1, QUERY_TIMEOUT_MAX_SEC, &timeout)) {
                fprintf(stderr, "dbctl query: --timeout needs whole seconds between 1 and %d\n",
                        QUERY_TIMEOUT_MAX_SEC);
                return 2;
            }
            break;
        case 'o':
            if (strcmp(optarg, "table") == 0) {
                fmt = CTL_OUTPUT_TABLE;
            } else if (strcmp(optarg, "json") == 0) {
                fmt = CTL_OUTPUT_JSON;
            } else if (strcmp(optarg, "yaml") == 0) {
                fmt = CTL_OUTPUT_YAML;
            } else {
                fprintf(stderr, "dbctl query: unknown output format \"%s\" (table, json, yaml)\n",
                        optarg);
                return 2;
            }
            break;
        case 'P':
            ask_password = true;
            break;
        case 'w':
            if (verbarg_watch_seconds("query", optarg, &watch.seconds) < 0) {
                return 2;
            }
            break;
        case 'W':
            /* patronictl query's watch flag (every 2 s), not psql's -W */
            watch.every_default = true;
            break;
        case 'C':
            if (verbarg_watch_count("query", optarg, &watch.count) < 0) {
                return 2;
            }
            break;
        case 'h':
            ctl_verb_help("query");
            return 0;
        default:
            fprintf(stderr, "Try 'dbctl query --help' for more information.\n");
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "dbctl query: unexpected argument \"%s\"\n", argv[optind + 1]);
        return 2;
    }
    cluster = optind < argc ? argv[optind] : NULL;
    if (verbarg_check_cluster("query", cluster) < 0 || verbarg_watch_check("query", &watch) < 0) {
        return 2;
    }
    if (!sql_arg == !file) {
        fprintf(stderr, "dbctl query: give the SQL with -c SQL or -f FILE (one of them)\n");
        return 2;
    }
    if (member && role) {
        fprintf(stderr, "dbctl query: -m and -r exclude each other\n");
        return 2;
    }
    _cleanup_free_ char *sql_file = NULL;
    if (file) {
        size_t len;
        int r = input_read_file(file, QUERY_FILE_MAX, &sql_file, &len);
        if (r < 0) {
            fprintf(stderr, "dbctl query: cannot read \"%s\": %s\n", file,
                    r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
            return 2;
        }
    }
    const char *sql = sql_file ? sql_file : sql_arg;
    /* asked before etcd is read, as patronictl asks; wiped on every return */
    _cleanup_(password_wipe) char typed[QUERY_PASSWORD_MAX] = "";
    if (ask_password) {
        int r = ctl_ask_password("Password: ", typed, sizeof(typed));
        if (r < 0) {
            fprintf(stderr, "dbctl query: --password: %s\n",
                    r == -ENOTTY    ? "stdin is not a terminal (PGPASSWORD or ~/.pgpass work "
                                      "without one)"
                    : r == -ENOBUFS ? "the password is too long"
                                    : "no password read");
            return 2;
        }
    }

    QueryJob job = { .member = member,
                     .role = role,
                     .sql = sql,
                     .user = user,
                     .dbname = dbname,
                     .timeout = timeout,
                     .fmt = fmt };
    int r = ctl_target_open("query", NULL, cluster, &job.target);
    if (r < 0) {
        return r == -EINVAL ? 2 : 1;
    }
    if (!job.user) {
        CtlTarget *t = &job.target;
        job.user = t->config && t->config->postgresql.superuser.username
                       ? t->config->postgresql.superuser.username
                       : "postgres";
    }
    /* the typed password first; then PGPASSWORD, when set, is the
     * operator's choice (libpq reads it) */
    if (ask_password) {
        job.password = typed;
    } else if (!getenv("PGPASSWORD") && job.target.config) {
        job.password = job.target.config->postgresql.superuser.password;
    }
    /* patronictl's query never clears the screen */
    r = verbarg_watch_run(&watch, false, query_round, &job);
    fflush(stdout);
    ctl_target_done(&job.target);
    return verbarg_watch_exit(r);
}
