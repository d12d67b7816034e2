/* dbctl status (alias list): one etcd range on the cluster prefix, shown as
 * DESIGN.md's JSON object, as YAML, or as a patronictl-style table.
 *
 * Role: the member named by the leader key is "primary" ("standby_leader"
 * in a standby cluster or when its member data says standby_leader); a member
 * listed in the sync key is "sync_standby"; every other member is "replica"
 * (the leader key is the truth, as in patronictl).
 *
 * State, from the member's Patroni state (and replication_state, 3.0.4+):
 *   running + replication_state "streaming" (not the leader)  -> streaming
 *   running (anything else)                                    -> running
 *   starting, restarting, initializing new cluster,
 *   running custom bootstrap script, starting after custom
 *   bootstrap                                                  -> starting
 *   stopping                                                   -> stopping
 *   creating replica                                           -> creating replica
 *   rewinding, running pg_rewind                               -> rewinding
 *   crashed and every "... failed" state                       -> crashed
 *   stopped, unknown, absent or anything else                  -> stopped
 *
 * topology shows the same rows as a tree: the leader, then each replica
 * under the member its replicatefrom tag names (under the leader when the
 * tag is absent, names no other member or would make a loop).
 *
 * Both take several cluster names (patronictl's `list a b`: each cluster in
 * turn) and patronictl's -W / -w SECONDS (verbarg_watch_run: etcd read again
 * every round). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "macro.h"
#include "output.h"
#include "topology.h"
#include "verbarg.h"

#define STATUS_MIB (1024ULL * 1024ULL)
/* Room for "host:port" cells, numbers and "Cluster: <scope> (<sysid>)" titles. */
#define STATUS_CELL_MAX 512

static const char *member_role(const DcsCluster *c, const DcsMember *m)
{
    if (c->leader && strcmp(c->leader->name, m->name) == 0) {
        return dcs_cluster_is_standby(c) || m->role == DCS_ROLE_STANDBY_LEADER ? "standby_leader"
                                                                               : "primary";
    }
    return dcs_cluster_is_sync_standby(c, m->name) ? "sync_standby" : "replica";
}

/* The config key's synchronous_mode: "off", "on" or "strict". */
static const char *sync_mode(const DcsCluster *c)
{
    const ConfigDcs *d = c->config ? &c->config->dcs : NULL;
    return !d || !d->synchronous_mode ? "off" : d->synchronous_mode_strict ? "strict" : "on";
}

/* In synchronous_mode, the standbys the leader's sync key names (the text
 * as stored), or NULL: replication is asynchronous. */
static const char *sync_standbys(const DcsCluster *c)
{
    const DcsSync *k = c->sync;
    if (strcmp(sync_mode(c), "off") == 0 || !k || !k->leader || !c->leader ||
        strcmp(k->leader, c->leader->name) != 0 || k->n_members == 0) {
        return NULL;
    }
    return k->sync_standby;
}

static json_t *lag_bytes_json(bool has_lag, const DcsLag *l)
{
    return has_lag ? json_integer((json_int_t)l->bytes) : json_null();
}

static json_t *lag_seconds_json(bool has_lag, const DcsLag *l)
{
    return has_lag && l->has_seconds ? json_real(l->seconds) : json_null();
}

/* Ours beside DESIGN.md's fields, only when they say something:
 * "replay_paused": true and "failover_blocked": "<why it is not promoted>". */
static int lag_extras_json(const DcsMember *m, json_t *o)
{
    if ((m->replay_paused && json_object_set_new(o, "replay_paused", json_true()) < 0) ||
        (m->failover_blocked &&
         json_object_set_new(o, "failover_blocked", json_string(m->failover_blocked)) < 0)) {
        return -ENOMEM;
    }
    return 0;
}

static int status_to_json(const DcsCluster *c, const char *scope, json_t **ret)
{
    json_t *members = json_array();
    json_auto_t *o = json_pack("{s:s, s:s?, s:b, s:o}", "cluster", scope, "leader",
                               c->leader ? c->leader->name : NULL, "paused",
                               dcs_cluster_is_paused(c), "members", members);
    if (!o) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        DcsLag lag;
        bool has_lag = dcs_member_lag_info(c, m, &lag) == 0;
        json_t *tags = m->tags ? json_deep_copy(m->tags) : json_object();
        json_t *row =
            json_pack("{s:s, s:s?, s:o, s:s, s:s, s:o, s:o, s:o, s:o}", "name", m->name, "host",
                      m->host, "port", m->host ? json_integer(m->port) : json_null(), "role",
                      member_role(c, m), "state", dcs_member_state_text(c, m), "timeline",
                      m->timeline > 0 ? json_integer(m->timeline) : json_null(), "lag_bytes",
                      lag_bytes_json(has_lag, &lag), "lag_seconds", lag_seconds_json(has_lag, &lag),
                      "tags", tags);
        if (row && lag_extras_json(m, row) < 0) {
            json_decref(row);
            row = NULL;
        }
        if (!row || json_array_append_new(members, row) < 0) {
            return -ENOMEM;
        }
    }
    const DcsFailover *f = c->failover;
    if (f && f->scheduled_at) {
        json_t *s = json_pack("{s:s, s:s?, s:s?}", "at", f->scheduled_at, "from", f->leader, "to",
                              f->candidate);
        if (!s || json_object_set_new(o, "scheduled_switchover", s) < 0) {
            return -ENOMEM;
        }
    }
    *ret = TAKE_PTR(o);
    return 0;
}

/* patronictl's "Lag in MB": Python's round(bytes / MiB), halves to even. */
static unsigned long long lag_mb(uint64_t bytes)
{
    uint64_t q = bytes / STATUS_MIB, rem = bytes % STATUS_MIB;
    if (rem * 2 > STATUS_MIB || (rem * 2 == STATUS_MIB && q % 2 == 1)) {
        q++;
    }
    return (unsigned long long)q;
}

static const char *table_role(const char *role)
{
    if (strcmp(role, "primary") == 0) {
        return "Leader";
    }
    if (strcmp(role, "standby_leader") == 0) {
        return "Standby Leader";
    }
    if (strcmp(role, "sync_standby") == 0) {
        return "Sync Standby";
    }
    return "Replica";
}

/* One row to print: a member and its depth in the topology tree (0 in
 * status). */
typedef struct StatusRow {
    const DcsMember *m;
    unsigned depth;
} StatusRow;

/* How status and topology print: -o gives dbctl's documents (DESIGN.md's
 * status object, the topology key), -f patronictl's print_output formats
 * (rows with patronictl's column names). */
typedef enum ListFormat {
    LIST_PRETTY,   /* -o table, -f pretty */
    LIST_TSV,      /* -f tsv */
    LIST_JSON,     /* -f json: patronictl's rows */
    LIST_YAML,     /* -f yaml */
    LIST_DOC_JSON, /* -o json: dbctl's document */
    LIST_DOC_YAML, /* -o yaml */
} ListFormat;

static ListFormat list_format_from_output(CtlOutput o)
{
    return o == CTL_OUTPUT_JSON   ? LIST_DOC_JSON
           : o == CTL_OUTPUT_YAML ? LIST_DOC_YAML
                                  : LIST_PRETTY;
}

static ListFormat list_format_from_format(OutputFormat f)
{
    static const ListFormat map[_OUTPUT_FORMAT_MAX] = {
        [OUTPUT_FORMAT_PRETTY] = LIST_PRETTY,
        [OUTPUT_FORMAT_TSV] = LIST_TSV,
        [OUTPUT_FORMAT_JSON] = LIST_JSON,
        [OUTPUT_FORMAT_YAML] = LIST_YAML,
    };
    return map[f];
}

/* patronictl's output_members() columns: the first seven always, each of
 * the last three with --extended or when a member (with an address) has
 * it. Cluster is printed by tsv, json and yaml only. */
enum {
    COL_CLUSTER,
    COL_MEMBER,
    COL_HOST,
    COL_ROLE,
    COL_STATE,
    COL_TL,
    COL_LAG,
    COL_PENDING,
    COL_SCHEDULED,
    COL_TAGS,
    _COL_MAX,
};

static const char *const column_names[_COL_MAX] = {
    [COL_CLUSTER] = "Cluster",
    [COL_MEMBER] = "Member",
    [COL_HOST] = "Host",
    [COL_ROLE] = "Role",
    [COL_STATE] = "State",
    [COL_TL] = "TL",
    [COL_LAG] = "Lag in MB",
    [COL_PENDING] = "Pending restart",
    [COL_SCHEDULED] = "Scheduled restart",
    [COL_TAGS] = "Tags",
};

typedef struct ListColumns {
    size_t idx[_COL_MAX]; /* column ids, in order */
    size_t n;
    bool append_port; /* Host as host:port */
} ListColumns;

/* The member's scheduled restart as patronictl shows it: "TIME" or
 * "TIME if version < V"; NULL when none. */
static char *scheduled_restart_text(const DcsMember *m)
{
    const json_t *s = m->data ? json_object_get(m->data, "scheduled_restart") : NULL;
    const char *at = json_string_value(json_object_get(s, "schedule"));
    if (!at) {
        return NULL;
    }
    const json_t *v = json_object_get(s, "postgres_version");
    _cleanup_free_ char *version = NULL;
    char *text = NULL;
    if (v && output_cell_text(v, true, &version) < 0) {
        return NULL;
    }
    if (asprintf(&text, "%s%s%s", at, version ? " if version < " : "", strempty(version)) < 0) {
        return NULL;
    }
    return text;
}

static bool has_tags(const DcsMember *m)
{
    return m->tags && json_object_size(m->tags) > 0;
}

static void pick_columns(const DcsCluster *c, bool extended, ListColumns *ret)
{
    bool pending = extended, scheduled = extended, tags = extended;
    bool append_port = false;
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        if (!m->host) {
            continue;
        }
        _cleanup_free_ char *sched = scheduled_restart_text(m);
        pending = pending || m->pending_restart;
        scheduled = scheduled || sched;
        tags = tags || has_tags(m);
        if (m->port != DCS_DEFAULT_PG_PORT) {
            append_port = true;
        }
        for (size_t j = 0; j < i; j++) {
            if (c->members[j].host && strcmp(m->host, c->members[j].host) == 0) {
                append_port = true;
            }
        }
    }
    *ret = (ListColumns){ .append_port = append_port };
    for (size_t k = 0; k < _COL_MAX; k++) {
        if ((k == COL_PENDING && !pending) || (k == COL_SCHEDULED && !scheduled) ||
            (k == COL_TAGS && !tags)) {
            continue;
        }
        ret->idx[ret->n++] = k;
    }
}

/* One cell of a member's row, as patronictl puts it: strings, the timeline
 * and the lag in MB as numbers ("unknown" when not known; "" for the
 * leader), the tags as an object. */
static json_t *member_cell(const DcsCluster *c, const char *scope, const StatusRow *row,
                           const ListColumns *cols, size_t col)
{
    const DcsMember *m = row->m;
    const char *role = member_role(c, m);
    uint64_t bytes;
    switch (col) {
    case COL_CLUSTER:
        return json_string(scope);
    case COL_MEMBER: {
        /* patronictl topology: "+ name" one level down, two more blanks per level */
        unsigned indent = row->depth > 0 ? 2 * (row->depth - 1) : 0;
        _cleanup_free_ char *name = NULL;
        if (asprintf(&name, "%*s%s%s", (int)indent, "", row->depth > 0 ? "+ " : "", m->name) < 0) {
            return NULL;
        }
        return json_string(name);
    }
    case COL_HOST: {
        _cleanup_free_ char *host = NULL;
        if (!m->host) {
            return json_string("");
        }
        if (asprintf(&host, cols->append_port ? "%s:%d" : "%s", m->host, m->port) < 0) {
            return NULL;
        }
        return json_string(host);
    }
    case COL_ROLE:
        return json_string(table_role(role));
    case COL_STATE:
        return json_string(dcs_member_state_text(c, m));
    case COL_TL:
        return m->timeline > 0 ? json_integer((json_int_t)m->timeline) : json_string("");
    case COL_LAG:
        if (strcmp(role, "primary") == 0 || strcmp(role, "standby_leader") == 0) {
            return json_string("");
        }
        return dcs_member_lag(c, m, &bytes) == 0 ? json_integer((json_int_t)lag_mb(bytes))
                                                 : json_string("unknown");
    case COL_PENDING:
        return json_string(m->pending_restart ? "*" : "");
    case COL_SCHEDULED: {
        _cleanup_free_ char *sched = scheduled_restart_text(m);
        return json_string(strempty(sched));
    }
    case COL_TAGS:
        return has_tags(m) ? json_deep_copy(m->tags) : json_string("");
    default:
        return json_string("");
    }
}

/* The rows, each an array of the chosen columns' cells. */
static int member_rows(const DcsCluster *c, const char *scope, const StatusRow *rows, size_t n,
                       const ListColumns *cols, json_t **ret)
{
    json_auto_t *all = json_array();
    if (!all) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array();
        if (!row || json_array_append_new(all, row) < 0) {
            return -ENOMEM;
        }
        for (size_t k = 0; k < cols->n; k++) {
            json_t *cell = member_cell(c, scope, &rows[i], cols, cols->idx[k]);
            if (!cell || json_array_append_new(row, cell) < 0) {
                return -ENOMEM;
            }
        }
    }
    *ret = TAKE_PTR(all);
    return 0;
}

/* patronictl's footer lines: maintenance mode and a scheduled switchover;
 * then ours: why a member will not be promoted (while there is no leader). */
static void print_footer(const DcsCluster *c)
{
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        if (m->failover_blocked) {
            printf(" %s: not promoted: %s\n", m->name, m->failover_blocked);
        }
    }
    if (dcs_cluster_is_paused(c)) {
        printf(" Maintenance mode: on\n");
    }
    /* the Sync Standby role shows a working synchronous mode; say so when
     * there is none */
    if (strcmp(sync_mode(c), "off") != 0 && c->leader && !sync_standbys(c)) {
        printf(" Synchronous mode: %s (no synchronous standby: %s)\n", sync_mode(c),
               strcmp(sync_mode(c), "strict") == 0 ? "commits wait" : "replicating asynchronously");
    }
    const DcsFailover *f = c->failover;
    if (f && f->scheduled_at) {
        printf(" Switchover scheduled at: %s\n", f->scheduled_at);
        if (f->leader) {
            printf("                    from: %s\n", f->leader);
        }
        if (f->candidate) {
            printf("                      to: %s\n", f->candidate);
        }
    }
}

/* The pretty table: every chosen column but Cluster, which is in the
 * title; numbers right-aligned; tags as YAML lines (status) or in flow
 * style on one line (topology, as patronictl prints both); then the
 * footer. */
static int print_pretty(const DcsCluster *c, const char *scope, const ListColumns *cols,
                        const json_t *rows, bool flow_tags)
{
    const char *headers[_COL_MAX];
    for (size_t k = 1; k < cols->n; k++) {
        headers[k - 1] = column_names[cols->idx[k]];
    }
    _cleanup_(output_table_freep) OutputTable *t = output_table_new(cols->n - 1, headers);
    if (!t) {
        return -ENOMEM;
    }
    for (size_t k = 1; k < cols->n; k++) {
        if (cols->idx[k] == COL_TL || cols->idx[k] == COL_LAG) {
            output_table_align_right(t, k - 1);
        }
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        char *cells[_COL_MAX] = { 0 };
        int r = 0;
        for (size_t k = 1; k < cols->n && r >= 0; k++) {
            r = output_cell_text(json_array_get(row, k), flow_tags, &cells[k - 1]);
        }
        if (r >= 0) {
            r = output_table_add_row(t, (const char *const *)cells);
        }
        for (size_t k = 0; k < _COL_MAX; k++) {
            free(cells[k]);
        }
        if (r < 0) {
            return r;
        }
    }
    char title[STATUS_CELL_MAX];
    if (c->initialize && *c->initialize) {
        (void)snprintf(title, sizeof(title), "Cluster: %s (%s)", scope, c->initialize);
    } else {
        (void)snprintf(title, sizeof(title), "Cluster: %s", scope);
    }
    int r = output_table_print(t, title, stdout);
    if (r >= 0) {
        print_footer(c);
    }
    return r;
}

/* The member rows in any -f format (pretty, tsv, json, yaml); tree says
 * the rows are topology's. */
static int print_rows(const DcsCluster *c, const char *scope, const StatusRow *rows, size_t n,
                      bool extended, bool tree, ListFormat fmt)
{
    static const OutputFormat of[] = {
        [LIST_TSV] = OUTPUT_FORMAT_TSV,
        [LIST_JSON] = OUTPUT_FORMAT_JSON,
        [LIST_YAML] = OUTPUT_FORMAT_YAML,
    };
    ListColumns cols;
    json_auto_t *cells = NULL;
    pick_columns(c, extended, &cols);
    int r = member_rows(c, scope, rows, n, &cols, &cells);
    if (r < 0) {
        return r;
    }
    if (fmt == LIST_PRETTY) {
        return print_pretty(c, scope, &cols, cells, tree);
    }
    const char *names[_COL_MAX];
    for (size_t k = 0; k < cols.n; k++) {
        names[k] = column_names[cols.idx[k]];
    }
    return output_rows(of[fmt], names, cols.n, cells, true, stdout);
}

static int print_status_rows(const DcsCluster *c, const char *scope, bool extended, ListFormat fmt)
{
    _cleanup_free_ StatusRow *rows = calloc(c->n_members ? c->n_members : 1, sizeof(*rows));
    if (!rows) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        rows[i] = (StatusRow){ .m = &c->members[i] };
    }
    return print_rows(c, scope, rows, c->n_members, extended, false, fmt);
}

/* patronictl's --timestamp line: the local time to the second. */
static void print_timestamp(void)
{
    char when[STATUS_CELL_MAX];
    time_t now = time(NULL);
    struct tm tm;
    (void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    printf("%s\n", when);
}

static int show_once(CtlTarget *target, ListFormat fmt, bool extended)
{
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    EtcdError err = { 0 };
    int r = dcs_cluster_read(target->client, &target->paths, &c, &err);
    if (r < 0) {
        fprintf(stderr, "dbctl status: cannot read cluster \"%s\" from etcd (%s): %s\n",
                target->scope, etcd_client_get_endpoint(target->client),
                err.message[0] ? err.message : strerror(-r));
        return 1;
    }
    if (fmt == LIST_DOC_JSON || fmt == LIST_DOC_YAML) {
        json_auto_t *o = NULL;
        r = status_to_json(c, target->scope, &o);
        if (r >= 0) {
            r = fmt == LIST_DOC_JSON ? output_json(o, stdout) : output_yaml(o, stdout);
        }
    } else {
        r = print_status_rows(c, target->scope, extended, fmt);
    }
    fflush(stdout);
    if (r < 0) {
        fprintf(stderr, "dbctl status: cannot print the cluster: %s\n", strerror(-r));
        return 1;
    }
    return 0;
}

static int topology_once(CtlTarget *target, ListFormat fmt);

/* status and topology over every cluster named (patronictl's `list a b`):
 * one target each, read again every round of a watch. */
typedef struct ListJob {
    const char *verb;
    CtlTarget *targets; /* owned, n_targets of them */
    size_t n_targets;
    ListFormat fmt;
    bool extended, timestamp, tree;
} ListJob;

/* One round: the -t line, then each cluster in the order named. A cluster
 * etcd cannot give is reported and the watch goes on, as patronictl's
 * list retries until etcd answers. */
static int list_round(void *userdata, bool *ret_stop)
{
    ListJob *j = userdata;
    int ret = 0;
    if (j->timestamp) {
        print_timestamp();
    }
    for (size_t i = 0; i < j->n_targets; i++) {
        if (j->fmt == LIST_DOC_YAML && i > 0) {
            printf("---\n"); /* one YAML document per cluster */
        }
        int r = j->tree ? topology_once(&j->targets[i], j->fmt)
                        : show_once(&j->targets[i], j->fmt, j->extended);
        if (r != 0) {
            ret = r;
        }
    }
    return ret;
}

/* Opens a target per name (none: the config's scope), runs the rounds and
 * returns the exit status. */
static int list_run(ListJob *j, const char *namespace, int n_names, char *const names[],
                    const VerbWatch *w)
{
    if (verbarg_check_clusters(j->verb, n_names, names) < 0 ||
        verbarg_watch_check(j->verb, w) < 0) {
        return 2;
    }
    size_t n = n_names > 0 ? (size_t)n_names : 1;
    j->targets = calloc(n, sizeof(*j->targets));
    if (!j->targets) {
        fprintf(stderr, "dbctl %s: out of memory\n", j->verb);
        return 1;
    }
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        int r = ctl_target_open(j->verb, namespace, n_names > 0 ? names[i] : NULL, &j->targets[i]);
        if (r < 0) {
            ret = r == -EINVAL ? 2 : 1;
        } else {
            j->n_targets++;
        }
    }
    if (ret == 0) {
        ret = verbarg_watch_run(w, true, list_round, j);
    }
    for (size_t i = 0; i < j->n_targets; i++) {
        ctl_target_done(&j->targets[i]);
    }
    free(j->targets);
    j->targets = NULL;
    return verbarg_watch_exit(ret);
}

/* The -o value of status and topology (dbctl's documents); 2 for an
 * unknown one. */
static int parse_output(const char *verb, const char *s, ListFormat *ret)
{
    if (strcmp(s, "table") == 0) {
        *ret = LIST_PRETTY;
    } else if (strcmp(s, "json") == 0) {
        *ret = LIST_DOC_JSON;
    } else if (strcmp(s, "yaml") == 0) {
        *ret = LIST_DOC_YAML;
    } else {
        fprintf(stderr, "dbctl %s: unknown output format \"%s\" (table, json, yaml)\n", verb, s);
        return 2;
    }
    return 0;
}

/* The -f value (patronictl's formats); 2 for an unknown one. */
static int parse_format(const char *verb, const char *s, ListFormat *ret)
{
    OutputFormat f;
    if (verbarg_format(verb, s, &f) < 0) {
        return 2;
    }
    *ret = list_format_from_format(f);
    return 0;
}

int verb_status(int argc, char *argv[])
{
    enum { OPT_COUNT = 0x100 };
    static const struct option options[] = {
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, 'f' }, /* patronictl's */
        { "extended", no_argument, NULL, 'e' },
        { "timestamp", no_argument, NULL, 't' },
        { "watch", required_argument, NULL, 'w' },
        { "count", required_argument, NULL, OPT_COUNT },
        { "namespace", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    ListJob job = { .verb = "status", .fmt = list_format_from_output(arg_output) };
    VerbWatch watch = { 0 };
    const char *namespace = NULL;
    int c;

    optind = 0; /* restart getopt on the verb's own argv */
    while ((c = getopt_long(argc, argv, "o:f:etw:Wn:h", options, NULL)) >= 0) {
        switch (c) {
        case 'o':
            if (parse_output("status", optarg, &job.fmt) != 0) {
                return 2;
            }
            break;
        case 'f':
            if (parse_format("status", optarg, &job.fmt) != 0) {
                return 2;
            }
            break;
        case 'e':
            job.extended = true;
            break;
        case 't':
            job.timestamp = true;
            break;
        case 'w':
            if (verbarg_watch_seconds("status", optarg, &watch.seconds) < 0) {
                return 2;
            }
            break;
        case 'W':
            watch.every_default = true;
            break;
        case OPT_COUNT:
            if (verbarg_watch_count("status", optarg, &watch.count) < 0) {
                return 2;
            }
            break;
        case 'n':
            namespace
            = optarg;
            break;
        case 'h':
            ctl_verb_help("status");
            return 0;
        default:
            fprintf(stderr, "Try 'dbctl status --help' for more information.\n");
            return 2;
        }
    }
    /* every positional argument is a cluster name, as patronictl's list */
    return list_run(&job, namespace, argc - optind, argv + optind, &watch);
}

/* ---- topology ---- */

/* The member m replicates from: the upstream it says it streams from,
 * else (not streaming, or a Patroni member) its replicatefrom tag when that
 * names another member, else the leader's member; -1 for a root. Indexes
 * into c->members. */
static ssize_t upstream_of(const DcsCluster *c, size_t i, ssize_t leader)
{
    const DcsMember *m = &c->members[i];
    if ((ssize_t)i == leader) {
        return -1;
    }
    const json_t *tag = m->tags ? json_object_get(m->tags, "replicatefrom") : NULL;
    const char *up = m->upstream ? m->upstream : json_string_value(tag);
    if (up) {
        for (size_t j = 0; j < c->n_members; j++) {
            if (j != i && strcmp(c->members[j].name, up) == 0) {
                return (ssize_t)j;
            }
        }
    }
    return leader;
}

/* Parents for every member, with loops (a replicatefrom b, b replicatefrom
 * a) broken by hanging the member under the leader. */
static void topology_parents(const DcsCluster *c, ssize_t *parent)
{
    ssize_t leader = -1;
    for (size_t i = 0; c->leader && i < c->n_members; i++) {
        if (strcmp(c->members[i].name, c->leader->name) == 0) {
            leader = (ssize_t)i;
        }
    }
    for (size_t i = 0; i < c->n_members; i++) {
        parent[i] = upstream_of(c, i, leader);
    }
    for (size_t i = 0; i < c->n_members; i++) {
        /* a chain longer than the member count has a loop */
        ssize_t p = parent[i];
        size_t steps = 0;
        while (p >= 0 && steps <= c->n_members && p != (ssize_t)i) {
            p = parent[p];
            steps++;
        }
        if (p == (ssize_t)i || steps > c->n_members) {
            parent[i] = (ssize_t)i == leader ? -1 : leader;
        }
    }
}

/* Depth-first order from the roots (the leader first), children by name. */
static void topology_walk(const DcsCluster *c, const ssize_t *parent, ssize_t node, unsigned depth,
                          StatusRow *rows, size_t *n)
{
    rows[(*n)++] = (StatusRow){ .m = &c->members[node], .depth = depth };
    for (size_t j = 0; j < c->n_members && depth < c->n_members; j++) {
        if (parent[j] == node) {
            topology_walk(c, parent, (ssize_t)j, depth + 1, rows, n);
        }
    }
}

static size_t topology_rows(const DcsCluster *c, const ssize_t *parent, StatusRow *rows)
{
    size_t n = 0;
    for (int leader_pass = 1; leader_pass >= 0; leader_pass--) {
        for (size_t i = 0; i < c->n_members; i++) {
            bool is_leader = c->leader && strcmp(c->members[i].name, c->leader->name) == 0;
            if (parent[i] < 0 && is_leader == (leader_pass == 1)) {
                topology_walk(c, parent, (ssize_t)i, 0, rows, &n);
            }
        }
    }
    return n;
}

/* The document -o json and -o yaml print: what routers follow
 * (topology_select): the topology key as the leader wrote it while it names
 * the leader key's member, else one built from the members' keys (version
 * 0 without a key, e.g. a Patroni cluster's). */
static int topology_document(const DcsCluster *c, const char *scope, json_t **ret)
{
    TopologySource source;
    return topology_select(c, scope, ret, &source);
}

/* One cluster's tree in the chosen format; 1 when etcd cannot give it. */
static int topology_once(CtlTarget *target, ListFormat fmt)
{
    _cleanup_(dcs_cluster_freep) DcsCluster *cl = NULL;
    _cleanup_free_ ssize_t *parent = NULL;
    _cleanup_free_ StatusRow *rows = NULL;
    EtcdError err = { 0 };
    int r = dcs_cluster_read(target->client, &target->paths, &cl, &err);
    if (r < 0) {
        fprintf(stderr, "dbctl topology: cannot read cluster \"%s\" from etcd (%s): %s\n",
                target->scope, etcd_client_get_endpoint(target->client),
                err.message[0] ? err.message : strerror(-r));
        return 1;
    }
    parent = calloc(cl->n_members ? cl->n_members : 1, sizeof(*parent));
    rows = calloc(cl->n_members ? cl->n_members : 1, sizeof(*rows));
    if (!parent || !rows) {
        fprintf(stderr, "dbctl topology: out of memory\n");
        return 1;
    }
    topology_parents(cl, parent);
    if (fmt == LIST_DOC_JSON || fmt == LIST_DOC_YAML) {
        json_auto_t *o = NULL;
        r = topology_document(cl, target->scope, &o);
        if (r >= 0) {
            r = fmt == LIST_DOC_JSON ? output_json(o, stdout) : output_yaml(o, stdout);
        }
    } else {
        size_t n = topology_rows(cl, parent, rows);
        r = print_rows(cl, target->scope, rows, n, false, true, fmt);
    }
    fflush(stdout);
    if (r < 0) {
        fprintf(stderr, "dbctl topology: cannot print the cluster: %s\n", strerror(-r));
        return 1;
    }
    return 0;
}

int verb_topology(int argc, char *argv[])
{
    enum { OPT_COUNT = 0x100 };
    static const struct option options[] = {
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, 'f' },
        { "watch", required_argument, NULL, 'w' },
        { "count", required_argument, NULL, OPT_COUNT },
        { "namespace", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    ListJob job = { .verb = "topology", .fmt = list_format_from_output(arg_output), .tree = true };
    VerbWatch watch = { 0 };
    const char *namespace = NULL;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "o:f:w:Wn:h", options, NULL)) >= 0) {
        switch (c) {
        case 'o':
            if (parse_output("topology", optarg, &job.fmt) != 0) {
                return 2;
            }
            break;
        case 'f':
            if (parse_format("topology", optarg, &job.fmt) != 0) {
                return 2;
            }
            break;
        case 'w':
            if (verbarg_watch_seconds("topology", optarg, &watch.seconds) < 0) {
                return 2;
            }
            break;
        case 'W':
            watch.every_default = true;
            break;
        case OPT_COUNT:
            if (verbarg_watch_count("topology", optarg, &watch.count) < 0) {
                return 2;
            }
            break;
        case 'n':
            namespace
            = optarg;
            break;
        case 'h':
            ctl_verb_help("topology");
            return 0;
        default:
            fprintf(stderr, "Try 'dbctl topology --help' for more information.\n");
            return 2;
        }
    }
    return list_run(&job, namespace, argc - optind, argv + optind, &watch);
}
