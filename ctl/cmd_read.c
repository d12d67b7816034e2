/* dbctl's small read-only verbs: history (the `history` key as a table, JSON
 * or YAML), show-config (the `config` key, YAML by default, as patronictl
 * shows it) and dsn (a libpq multi-host connection string for the cluster's
 * members, the likely match first, with target_session_attrs for the wanted
 * role and a connect_timeout so dead hosts are skipped). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "macro.h"
#include "output.h"
#include "verbarg.h"

#define READ_CELL_MAX 64

/* Reads the cluster (scope_arg: the cluster name given on the command line,
 * or NULL); prints one line and returns 1 when it cannot, 2 for a usage
 * or config problem. */
static int read_cluster(const char *verb, const char *scope_arg, CtlTarget *t, DcsCluster **ret)
{
    if (verbarg_check_cluster(verb, scope_arg) < 0) {
        return 2;
    }
    int r = ctl_target_open(verb, NULL, scope_arg, t);
    if (r < 0) {
        return r == -EINVAL ? 2 : 1;
    }
    EtcdError e = { 0 };
    r = dcs_cluster_read(t->client, &t->paths, ret, &e);
    if (r < 0) {
        fprintf(stderr, "dbctl %s: cannot read cluster \"%s\": %s\n", verb, t->scope,
                e.message[0] ? e.message : strerror(-r));
        return 1;
    }
    return 0;
}

/* At most one positional argument, patronictl's cluster name, into *ret
 * (NULL when none). argv[first..] are the verb's arguments left after its
 * options. */
static int cluster_arg(const char *verb, int argc, char *argv[], int first, const char **ret)
{
    if (argc - first > 1) {
        fprintf(stderr, "dbctl %s: unexpected argument \"%s\"\n", verb, argv[first + 1]);
        return 2;
    }
    *ret = first < argc ? argv[first] : NULL;
    return 0;
}

/* The history as patronictl's rows: each line of the key padded to its
 * five columns with "". */
static json_t *history_rows(const DcsHistory *h)
{
    json_t *rows = json_array();
    size_t i;
    json_t *line;
    if (!rows || !h || !json_is_array(h->data)) {
        return rows;
    }
    json_array_foreach(h->data, i, line)
    {
        json_t *row = json_is_array(line) ? json_copy(line) : json_array();
        while (row && json_array_size(row) < 5) {
            if (json_array_append_new(row, json_string("")) < 0) {
                json_decref(row);
                row = NULL;
            }
        }
        if (!row || json_array_append_new(rows, row) < 0) {
            json_decref(rows);
            return NULL;
        }
    }
    return rows;
}

int verb_history(int argc, char *argv[])
{
    static const struct option options[] = {
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, 'f' },
        {},
    };
    static const char *const headers[] = { "TL", "LSN", "Reason", "Timestamp", "New Leader" };
    CtlOutput out = arg_output;
    OutputFormat fmt = out == CTL_OUTPUT_TABLE ? OUTPUT_FORMAT_PRETTY : _OUTPUT_FORMAT_INVALID;
    const char *cluster = NULL;
    int opt, r;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "o:f:", options, NULL)) >= 0) {
        switch (opt) {
        case 'o':
            if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0 &&
                strcmp(optarg, "yaml") != 0) {
                fprintf(stderr, "dbctl history: unknown output format \"%s\" (table, json, yaml)\n",
                        optarg);
                return 2;
            }
            out = optarg[0] == 't'   ? CTL_OUTPUT_TABLE
                  : optarg[0] == 'j' ? CTL_OUTPUT_JSON
                                     : CTL_OUTPUT_YAML;
            fmt = out == CTL_OUTPUT_TABLE ? OUTPUT_FORMAT_PRETTY : _OUTPUT_FORMAT_INVALID;
            break;
        case 'f':
            if (verbarg_format("history", optarg, &fmt) < 0) {
                return 2;
            }
            break;
        default:
            fprintf(stderr, "Try 'dbctl history --help' for more information.\n");
            return 2;
        }
    }
    if ((r = cluster_arg("history", argc, argv, optind, &cluster)) != 0) {
        return r;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    r = read_cluster("history", cluster, &t, &c);
    if (r) {
        ctl_target_done(&t);
        return r;
    }
    const DcsHistory *h = c->history;
    if (fmt == OUTPUT_FORMAT_TSV || fmt == OUTPUT_FORMAT_JSON || fmt == OUTPUT_FORMAT_YAML) {
        /* patronictl's rows; a table without a title keeps empty cells */
        json_auto_t *rows = history_rows(h);
        r = rows ? output_rows(fmt, headers, ELEMENTSOF(headers), rows, false, stdout) : -ENOMEM;
    } else if (fmt != OUTPUT_FORMAT_PRETTY) {
        json_t *empty = json_array();
        const json_t *v = h && h->data ? h->data : empty;
        r = out == CTL_OUTPUT_JSON ? output_json(v, stdout) : output_yaml(v, stdout);
        json_decref(empty);
    } else {
        _cleanup_(output_table_freep) OutputTable *tab = output_table_new(5, headers);
        r = tab ? 0 : -ENOMEM;
        for (size_t i = 0; r >= 0 && h && i < h->n_entries; i++) {
            const DcsHistoryEntry *e = &h->entries[i];
            char tl[READ_CELL_MAX], lsn[READ_CELL_MAX];
            snprintf(tl, sizeof(tl), "%lld", (long long)e->timeline);
            snprintf(lsn, sizeof(lsn), "%llu", (unsigned long long)e->lsn);
            const char *cells[] = { tl, lsn, e->reason, e->timestamp, e->new_leader };
            r = output_table_add_row(tab, cells);
        }
        if (r >= 0) {
            output_table_align_right(tab, 0);
            output_table_align_right(tab, 1);
            r = output_table_print(tab, NULL, stdout);
        }
    }
    ctl_target_done(&t);
    return r < 0 ? 1 : 0;
}

int verb_show_config(int argc, char *argv[])
{
    const char *cluster = NULL;
    if (argc > 1 && argv[1][0] == '-') {
        fprintf(stderr, "dbctl show-config: unexpected option \"%s\"\n", argv[1]);
        return 2;
    }
    int r = cluster_arg("show-config", argc, argv, 1, &cluster);
    if (r) {
        return r;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    r = read_cluster("show-config", cluster, &t, &c);
    if (r) {
        ctl_target_done(&t);
        return r;
    }
    if (!c->config || !c->config->data) {
        fprintf(stderr, "dbctl show-config: cluster \"%s\" has no config key\n", t.scope);
        ctl_target_done(&t);
        return 1;
    }
    r = arg_output == CTL_OUTPUT_JSON ? output_json(c->config->data, stdout)
                                      : output_yaml(c->config->data, stdout);
    ctl_target_done(&t);
    return r < 0 ? 1 : 0;
}

/* libpq's target_session_attrs for each --role. */
static const struct {
    const char *role, *attrs;
} dsn_roles[] = {
    { "primary", "read-write" },
    { "replica", "standby" },
    { "prefer-replica", "prefer-standby" },
    { "any", "any" },
};

#define DSN_CONNECT_TIMEOUT_SEC 3
#define DSN_CONNECT_TIMEOUT_MAX 3600

/* The order hosts are listed in: libpq tries them in turn, so the likely
 * match goes first (the leader for primary and any, streaming replicas
 * before the others for replica roles). Lower ranks first. */
static int dsn_rank(const DcsCluster *c, const DcsMember *m, bool want_replica)
{
    bool leader = c->leader && strcmp(c->leader->name, m->name) == 0;
    bool streaming = m->replication_state && strcmp(m->replication_state, "streaming") == 0;
    if (!want_replica) {
        return leader ? 0 : 1;
    }
    return leader ? 2 : streaming ? 0 : 1;
}

/* dsn -m NAME: that member's host and port alone (patronictl's dsn -m). */
static int dsn_member(const char *cluster, const char *name, long timeout)
{
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int r = read_cluster("dsn", cluster, &t, &c);
    if (r) {
        ctl_target_done(&t);
        return r;
    }
    const DcsMember *m = dcs_cluster_get_member(c, name);
    if (!m) {
        fprintf(stderr, "dbctl dsn: no member \"%s\" in cluster \"%s\"\n", name, t.scope);
        r = 1;
    } else if (!m->host) {
        fprintf(stderr, "dbctl dsn: member \"%s\" publishes no address (conn_url)\n", name);
        r = 1;
    } else if (timeout > 0) {
        printf("host=%s port=%d connect_timeout=%ld\n", m->host, m->port, timeout);
    } else {
        printf("host=%s port=%d\n", m->host, m->port);
    }
    ctl_target_done(&t);
    return r;
}

int verb_dsn(int argc, char *argv[])
{
    static const struct option options[] = {
        { "role", required_argument, NULL, 'r' },
        { "member", required_argument, NULL, 'm' },
        { "connect-timeout", required_argument, NULL, 't' },
        {},
    };
    const char *role = NULL, *member = NULL, *cluster = NULL;
    long timeout = DSN_CONNECT_TIMEOUT_SEC;
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "r:m:t:", options, NULL)) >= 0) {
        switch (opt) {
        case 'r':
            role = optarg;
            break;
        case 'm':
            member = optarg;
            break;
        case 't':
            if (!ctl_parse_long(optarg, 0, DSN_CONNECT_TIMEOUT_MAX, &timeout)) {
                fprintf(stderr, "dbctl dsn: --connect-timeout needs whole seconds from 0 to %d\n",
                        DSN_CONNECT_TIMEOUT_MAX);
                return 2;
            }
            break;
        default:
            fprintf(stderr, "Try 'dbctl dsn --help' for more information.\n");
            return 2;
        }
    }
    if (cluster_arg("dsn", argc, argv, optind, &cluster) != 0) {
        return 2;
    }
    if (member && role) {
        fprintf(stderr, "dbctl dsn: --role and --member are mutually exclusive options\n");
        return 2;
    }
    if (member) {
        return dsn_member(cluster, member, timeout);
    }
    role = role ? role : "primary";
    const char *attrs = NULL;
    for (size_t i = 0; i < ELEMENTSOF(dsn_roles); i++) {
        if (strcmp(role, dsn_roles[i].role) == 0) {
            attrs = dsn_roles[i].attrs;
        }
    }
    if (!attrs) {
        fprintf(stderr, "dbctl dsn: unknown role \"%s\" (primary, replica, prefer-replica, any)\n",
                role);
        return 2;
    }
    bool want_replica = strcmp(attrs, "standby") == 0 || strcmp(attrs, "prefer-standby") == 0;
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int r = read_cluster("dsn", cluster, &t, &c);
    if (r) {
        ctl_target_done(&t);
        return r;
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        ctl_target_done(&t);
        return 1;
    }
    /* hosts and ports in rank order, members sorted by name within a rank */
    size_t n = 0;
    fputs("host=", f);
    for (int rank = 0; rank <= 2; rank++) {
        for (size_t i = 0; i < c->n_members; i++) {
            if (c->members[i].host && dsn_rank(c, &c->members[i], want_replica) == rank) {
                fprintf(f, "%s%s", n++ ? "," : "", c->members[i].host);
            }
        }
    }
    fputs(" port=", f);
    n = 0;
    for (int rank = 0; rank <= 2; rank++) {
        for (size_t i = 0; i < c->n_members; i++) {
            if (c->members[i].host && dsn_rank(c, &c->members[i], want_replica) == rank) {
                fprintf(f, "%s%d", n++ ? "," : "", c->members[i].port);
            }
        }
    }
    fprintf(f, " target_session_attrs=%s", attrs);
    if (timeout > 0) {
        fprintf(f, " connect_timeout=%ld", timeout);
    }
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "dbctl dsn: cluster \"%s\" has no members with an address\n", t.scope);
        r = 1;
    } else {
        printf("%s\n", buf);
    }
    free(buf);
    ctl_target_done(&t);
    return r;
}
