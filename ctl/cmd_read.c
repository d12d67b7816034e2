/* dbctl's small read-only verbs: history (the `history` key as a table, JSON
 * or YAML), show-config (the `config` key, YAML by default, as patronictl
 * shows it) and dsn (a libpq multi-host connection string for the cluster's
 * members, with target_session_attrs for the wanted role). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "macro.h"
#include "output.h"

#define READ_CELL_MAX 64

/* Reads the cluster; prints one line and returns 1 when it cannot. */
static int read_cluster(const char *verb, CtlTarget *t, DcsCluster **ret)
{
    int r = ctl_target_open(verb, NULL, NULL, t);
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

static int no_args(const char *verb, int argc, char *argv[])
{
    if (argc > 1) {
        fprintf(stderr, "dbctl %s: unexpected argument \"%s\"\n", verb, argv[1]);
        return 2;
    }
    return 0;
}

int verb_history(int argc, char *argv[])
{
    int r = no_args("history", argc, argv);
    if (r) {
        return r;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    r = read_cluster("history", &t, &c);
    if (r) {
        ctl_target_done(&t);
        return r;
    }
    const DcsHistory *h = c->history;
    if (arg_output != CTL_OUTPUT_TABLE) {
        json_t *empty = json_array();
        const json_t *v = h && h->data ? h->data : empty;
        r = arg_output == CTL_OUTPUT_JSON ? output_json(v, stdout) : output_yaml(v, stdout);
        json_decref(empty);
    } else {
        static const char *const headers[] = { "TL", "LSN", "Reason", "Timestamp", "New Leader" };
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
    int r = no_args("show-config", argc, argv);
    if (r) {
        return r;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    r = read_cluster("show-config", &t, &c);
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

int verb_dsn(int argc, char *argv[])
{
    const char *role = "primary";
    if (argc == 3 && strcmp(argv[1], "--role") == 0) {
        role = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "dbctl dsn: usage: dbctl dsn [--role primary|replica|any]\n");
        return 2;
    }
    /* libpq's names for the roles */
    const char *attrs = strcmp(role, "primary") == 0   ? "read-write"
                        : strcmp(role, "replica") == 0 ? "standby"
                        : strcmp(role, "any") == 0     ? "any"
                                                       : NULL;
    if (!attrs) {
        fprintf(stderr, "dbctl dsn: unknown role \"%s\" (primary, replica, any)\n", role);
        return 2;
    }
    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    int r = read_cluster("dsn", &t, &c);
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
    size_t n = 0;
    fputs("host=", f);
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i].host) {
            fprintf(f, "%s%s", n++ ? "," : "", c->members[i].host);
        }
    }
    fputs(" port=", f);
    n = 0;
    for (size_t i = 0; i < c->n_members; i++) {
        if (c->members[i].host) {
            fprintf(f, "%s%d", n++ ? "," : "", c->members[i].port);
        }
    }
    fprintf(f, " target_session_attrs=%s", attrs);
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
