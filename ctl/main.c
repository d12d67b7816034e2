/* dbctl entry point: global options and the verb table. Each verb family
 * lives in ctl/cmd_<family>.c. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"
#include "ctl.h"
#include "log.h"
#include "macro.h"

const char *arg_config = NULL;
const char *arg_etcd = NULL;
const char *arg_etcd_cacert = NULL, *arg_etcd_cert = NULL, *arg_etcd_key = NULL;
const char *arg_etcd_user = NULL;
bool arg_insecure = false;
const char *arg_scope = NULL;
CtlOutput arg_output = CTL_OUTPUT_TABLE;
bool arg_force = false;

typedef enum VerbFlags {
    VERB_MUTATING = 1 << 0,  /* asks for confirmation unless --force */
    VERB_NEEDS_ETCD = 1 << 1 /* reads the cluster from etcd */
} VerbFlags;

typedef struct Verb {
    const char *name;
    const char *alias; /* or NULL */
    int min_args, max_args;
    VerbFlags flags;
    int (*fn)(int argc, char *argv[]);
    const char *help;  /* one line for `dbctl --help` */
    const char *usage; /* the verb's arguments and options, for `dbctl VERB --help` */
} Verb;

/* patronictl's -W and -w/--watch of status (list) and topology */
#define WATCH_HELP_LINES                                                                           \
    "  -W               show again every 2 seconds until SIGINT or SIGTERM\n"                      \
    "  -w, --watch S    show again every S seconds (e.g. 0.5; 0: once)\n"                          \
    "  --count N        with -W or -w: stop after N rounds\n"                                      \
    "Each round reads etcd again; on a terminal it first clears the screen (not when\n"            \
    "stdout is a pipe or a file), as patronictl. A cluster etcd cannot give is\n"                  \
    "reported on stderr and the watch goes on. SIGINT ends it with \"Aborted!\" on\n"              \
    "stderr and exit status 1, SIGTERM by the signal, as patronictl ends."
#define WATCH_HELP      WATCH_HELP_LINES "\n"
#define WATCH_HELP_LAST WATCH_HELP_LINES

static const Verb verbs[] = {
    { "status", "list", 0, 32, VERB_NEEDS_ETCD, verb_status,
      "show members, roles, states and lag (-o, -f, -e, -t, -W, -w)",
      "[CLUSTER...] [-o table|json|yaml | -f pretty|tsv|json|yaml] [-e] [-t]\n"
      "      [-W | -w SECONDS] [--count N] [--namespace NS]\n"
      "  CLUSTER...       clusters' names, each shown in turn (default: the scope;\n"
      "                   with --scope, only that name)\n"
      "  -o FORMAT        table, or dbctl's status document as json or yaml\n"
      "  -f, --format F   patronictl's formats: pretty (the table), tsv (a header row and\n"
      "                   a row per member, with the Cluster column), json or yaml (a\n"
      "                   list of {column: value}, empty cells left out)\n"
      "  -e, --extended   also the Pending restart, Scheduled restart and Tags columns\n"
      "                   (each is shown without -e when a member has a value for it)\n"
      "  -t, --timestamp  print the local time (YYYY-MM-DD HH:MM:SS) first\n" WATCH_HELP
      "A pending scheduled switchover is shown under the table (scheduled_switchover in\n"
      "-o json and -o yaml)." },
    { "topology", NULL, 0, 32, VERB_NEEDS_ETCD, verb_topology,
      "show the replication tree, replicas under their upstream (-o, -f, -W, -w)",
      "[CLUSTER...] [-o table|json|yaml | -f pretty|tsv|json|yaml] [-W | -w SECONDS]\n"
      "      [--count N] [--namespace NS]\n"
      "The table shows each replica under the member it streams from (its\n"
      "replicatefrom tag when not streaming), else under the leader. -o json and\n"
      "-o yaml print the topology document the leader publishes in the topology\n"
      "key (docs/topology.md; version 0: built from the member keys, no key yet);\n"
      "-f tsv, json and yaml print the table's rows in tree order, as `status -f`.\n"
      "Several CLUSTERs are shown in turn, as status shows them.\n" WATCH_HELP_LAST },
    { "history", NULL, 0, 5, VERB_NEEDS_ETCD, verb_history, "show the promotions (-o, -f)",
      "[CLUSTER] [-o table|json|yaml | -f pretty|tsv|json|yaml]\n"
      "  -o json|yaml     the history key as it is stored\n"
      "  -f, --format F   patronictl's formats: the table's columns (TL, LSN, Reason,\n"
      "                   Timestamp, New Leader) as tsv, or as a json or yaml list" },
    { "show-config", NULL, 0, 1, VERB_NEEDS_ETCD, verb_show_config,
      "show the cluster-wide configuration (YAML; JSON with dbctl -o json)", "[CLUSTER]" },
    { "edit-config", NULL, 0, 64, VERB_MUTATING | VERB_NEEDS_ETCD, verb_edit_config,
      "change the cluster-wide configuration (--set, -p, --apply, --replace, $EDITOR)",
      "[CLUSTER] [--set KEY.PATH=VALUE]... [-p NAME=VALUE]... [--apply FILE|-]\n"
      "      [--replace FILE|-] [-q] [--force]\n"
      "  --set KEY.PATH=VALUE  set a key of the config key (VALUE is JSON when it parses\n"
      "                        as JSON, else a string; null removes the key)\n"
      "  -p, --pg NAME=VALUE   the same for postgresql.parameters.NAME\n"
      "  --apply FILE|-        merge a YAML or JSON document (a null removes a key)\n"
      "  --replace FILE|-      the document replaces the whole config (then --apply,\n"
      "                        --set and -p apply to it)\n"
      "  -q, --quiet           print no diff (and not \"Not changed\")\n"
      "  --force               write without asking\n"
      "Without --set, -p, --apply or --replace on a terminal, opens $EDITOR (or\n"
      "$VISUAL, vi) on the YAML of the config. The result is validated, shown as a\n"
      "unified diff, confirmed, and written only if the config key did not change\n"
      "meanwhile." },
    { "dsn", NULL, 0, 8, VERB_NEEDS_ETCD, verb_dsn,
      "print a libpq connection string (--role primary|replica|prefer-replica|any, -m)",
      "[CLUSTER] [--role primary|replica|prefer-replica|any | -m MEMBER]\n"
      "      [--connect-timeout SECONDS]\n"
      "  -m, --member NAME  host= and port= of that member only (refused when the\n"
      "  cluster has no such member or it publishes no address)\n"
      "  host= and port= list every member with an address (libpq tries them in turn:\n"
      "  the leader first for primary and any, streaming replicas first otherwise);\n"
      "  target_session_attrs is read-write, standby, prefer-standby or any.\n"
      "  --connect-timeout  seconds per host before libpq moves on (default 3; 0 omits it)" },
    { "route", NULL, 1, 32, VERB_NEEDS_ETCD, verb_route,
      "point pgbouncer at the primary and a replica (route pgbouncer --ini FILE)",
      "pgbouncer --ini FILE [--watch] [--dbname DB] [--write-db NAME] [--read-db NAME]\n"
      "      [--admin-user USER] [--no-reload] [--namespace NS]\n"
      "  --ini FILE         pgbouncer.ini; only entries of its [databases] section change\n"
      "  --dbname DB        the PostgreSQL database the entries connect to (postgres)\n"
      "  --write-db NAME    the entry routed to the primary (default: DB)\n"
      "  --read-db NAME     the entry routed to a healthy replica, else to the primary\n"
      "                     (default: the write entry's name + \"_ro\")\n"
      "  --admin-user USER  for RELOAD on pgbouncer's admin console (default: the first of\n"
      "                     admin_users in the ini file, else pgbouncer); the password comes\n"
      "                     from PGPASSWORD, else from auth_file when it is in clear text\n"
      "                     there, else from ~/.pgpass\n"
      "  --no-reload        only rewrite the file\n"
      "  --watch            follow the cluster (etcd watch) until SIGINT or SIGTERM\n"
      "Reads the topology key (else the members' keys), sets host=, port= and dbname= of\n"
      "both entries (other parameters, lines and sections are kept byte for byte),\n"
      "replaces the file atomically when it changes and then runs RELOAD on the admin\n"
      "console (listen_addr/listen_port, else unix_socket_dir, of [pgbouncer]). Exit\n"
      "status 1 when etcd, the write or RELOAD failed or there is no primary." },
    { "query", NULL, 0, 16, VERB_NEEDS_ETCD, verb_query,
      "run SQL on a member (-c SQL, -f FILE, -W, -w)",
      "[CLUSTER] [-m MEMBER | -r primary|replica|any] (-c SQL | -f FILE|-) [-U USER]\n"
      "      [--password] [-d DBNAME] [--timeout SECONDS] [-o table|json]\n"
      "      [-W | -w SECONDS] [--count N]\n"
      "  -m, --member NAME  the member to run on\n"
      "  -r, --role ROLE    else the leader (primary), a streaming replica (replica),\n"
      "                     or the leader when there is one (any, the default)\n"
      "  -U, --username     default: postgresql.authentication.superuser.username of\n"
      "                     -c CONFIG, else postgres\n"
      "  -d, --dbname       default: postgres\n"
      "  --timeout SECONDS  statement_timeout (default 60)\n"
      "  --password         ask for the password on the terminal (not echoed)\n"
      "  -W, -w/--watch S   run again every 2 (-W) or S seconds, reading the cluster\n"
      "                     and connecting anew each time, until SIGINT (\"Aborted!\",\n"
      "                     exit 1) or SIGTERM (--count N: N runs); an etcd error ends\n"
      "                     it, a member that fails is reported and the next run goes on\n"
      "Without --password the password comes from PGPASSWORD (or ~/.pgpass), else from\n"
      "the superuser password of -c CONFIG. The host and port are the member's conn_url." },
    { "pause", NULL, 0, 2, VERB_MUTATING | VERB_NEEDS_ETCD, verb_pause,
      "maintenance mode: nothing stops, starts, promotes or demotes PostgreSQL (--wait)",
      "[CLUSTER] [--wait]\n"
      "  Also an agent's stop or death leaves its PostgreSQL running (docs/pause.md)." },
    { "resume", NULL, 0, 3, VERB_MUTATING | VERB_NEEDS_ETCD, verb_resume,
      "leave maintenance mode (--wait)",
      "[CLUSTER] [--wait] [--force]\n"
      "  Refused while the cluster has no leader, unless --force: an agent stopped or\n"
      "  killed while paused leaves its PostgreSQL running with no fence, and a replica\n"
      "  would be promoted beside it (docs/pause.md)." },
    { "switchover", NULL, 0, 16, VERB_MUTATING | VERB_NEEDS_ETCD, verb_switchover,
      "hand the primary role to a replica (--candidate, --primary, --scheduled)",
      "[CLUSTER] [--primary NAME] [--candidate NAME] [--scheduled ISO8601|now] [--force]\n"
      "  --scheduled TIME  run the switchover at TIME, e.g. 2030-01-01T12:00:00+01:00;\n"
      "                    a time without a timezone is UTC; it must lie ahead. dbctl\n"
      "                    returns at once; `status` shows it, `flush` cancels it." },
    { "failover", NULL, 0, 16, VERB_MUTATING | VERB_NEEDS_ETCD, verb_failover,
      "make a member the leader, also with no healthy leader (--candidate)",
      "[CLUSTER] --candidate NAME [--force] [--timeout SECONDS]\n"
      "  Refused when NAME is not a member, is not running, is tagged nofailover, or\n"
      "  lags more than maximum_lag_on_failover behind the leader's last position;\n"
      "  --force overrides only the lag (and confirms). Waits up to --timeout (30 s)\n"
      "  for NAME to hold the leader key. While paused, also refused when the leader's\n"
      "  agent does not answer or there is no leader (nothing fences that primary);\n"
      "  --force overrides that too (docs/pause.md)." },
    { "flush", NULL, 0, 69, VERB_MUTATING | VERB_NEEDS_ETCD, verb_flush,
      "cancel a scheduled switchover or scheduled restarts",
      "[CLUSTER] [switchover] [--force]\n"
      "       [CLUSTER] restart [MEMBER...] [--role primary|replica|any] [--force]\n"
      "  restart: DELETE /restart on each member (every one when none is named) that\n"
      "  shows a scheduled restart; the others are named." },
    { "restart", NULL, 0, 64, VERB_MUTATING | VERB_NEEDS_ETCD, verb_restart,
      "restart PostgreSQL on members through their agents (--pending, --role, --scheduled)",
      "[CLUSTER] [MEMBER...] [--pending] [--role primary|replica|any] [--any]\n"
      "      [--scheduled ISO8601|now] [--pg-version X.Y[.Z]] [--timeout SECONDS] [--force]\n"
      "  A first name equal to the cluster's scope is CLUSTER (patronictl's\n"
      "  CLUSTER_NAME), unless it is also the only name and a member's.\n"
      "  Every member when none is named; replicas first, then the leader, which\n"
      "  keeps the leader key. --pending: only members whose settings wait for a\n"
      "  restart. Each agent answers when PostgreSQL is back (POST /restart); the\n"
      "  REST API's credentials come from restapi.authentication of -c CONFIG.\n"
      "  --scheduled TIME  each agent restarts at TIME (a time without a timezone is\n"
      "                    UTC), one scheduled restart per member; `list -e` shows it,\n"
      "                    `flush CLUSTER restart` cancels it; --force replaces one\n"
      "  --pg-version V    only members running an older PostgreSQL than V\n"
      "  --timeout S       passed to the agent, which checks it and shows it with a\n"
      "                    scheduled restart (the restart waits pg_ctl_timeout)\n"
      "  --any             one of the selected members, at random" },
    { "reinit", NULL, 1, 5, VERB_MUTATING | VERB_NEEDS_ETCD, verb_reinit,
      "re-clone a replica from the leader (--wait)",
      "[CLUSTER] MEMBER [--force] [--wait]\n"
      "  The agent stops the replica, moves its data directory aside (kept, never\n"
      "  deleted) and clones from the leader; refused on the leader. --wait returns\n"
      "  once the member runs again." },
    { "reload", NULL, 0, 64, VERB_MUTATING | VERB_NEEDS_ETCD, verb_reload,
      "make agents re-read their configuration file",
      "[CLUSTER] [MEMBER...] [--force]\n"
      "  Every member when none is named (POST /reload); CLUSTER as for restart." },
    { "remove", NULL, 1, 2, VERB_MUTATING | VERB_NEEDS_ETCD, verb_remove,
      "delete every key of a cluster from etcd",
      "CLUSTER [--force]\n"
      "CLUSTER must be the cluster's scope. On a terminal asks for the cluster name and\n"
      "then \"Yes I am aware\"; otherwise --force is required. Refused while a leader\n"
      "key exists unless --force." },
    { "version", NULL, 0, 16, 0, verb_version,
      "print dbctl's version and each agent's (GET /patroni)",
      "[MEMBER...]\n"
      "With a cluster (-c CONFIG or --etcd and --scope), also each member's agent\n"
      "version from its REST API, or \"unreachable\"." },
};

static const char *const output_table[_CTL_OUTPUT_MAX] = {
    [CTL_OUTPUT_TABLE] = "table",
    [CTL_OUTPUT_JSON] = "json",
    [CTL_OUTPUT_YAML] = "yaml",
};

static CtlOutput output_from_string(const char *s)
{
    for (int i = 0; i < _CTL_OUTPUT_MAX; i++) {
        if (strcmp(s, output_table[i]) == 0) {
            return (CtlOutput)i;
        }
    }
    return _CTL_OUTPUT_INVALID;
}

static void help(void)
{
    printf("Usage: dbctl [-c CONFIG] [--etcd HOST:PORT] [--scope NAME] [-o table|json|yaml]\n"
           "             COMMAND [ARGS...]\n\n"
           "Global options:\n"
           "  -c, --config FILE     a patronictl config (scope, namespace, etcd3, ctl, restapi)\n"
           "                        or an agent's; default: $DBCTL_CONFIG_FILE, else\n"
           "                        $PATRONICTL_CONFIG_FILE, else ~/.config/dbha/dbctl.yaml,\n"
           "                        else ~/.config/patroni/patronictl.yaml, else the\n"
           "                        PATRONI_* environment variables alone\n"
           "  -e, --etcd HOST:PORT[,...]  etcd endpoints (http:// or https:// may lead)\n"
           "  -d, --dcs-url URL     patronictl's form: etcd3://HOST:PORT (also $DCS_URL)\n"
           "  --etcd-cacert FILE, --etcd-cert FILE, --etcd-key FILE\n"
           "                        TLS to etcd (https unless --etcd says http://)\n"
           "  --etcd-user USER[:PASSWORD]  etcd user; else the password is read from\n"
           "                        $DBHA_ETCD_PASSWORD\n"
           "  -s, --scope NAME      the cluster\n"
           "  -k, --insecure        do not verify the agents' REST API certificates\n"
           "  -o, --output FORMAT   table, json or yaml\n"
           "  -f, --force           do not ask for confirmation\n\n"
           "Commands:\n");
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
        printf("  %-12s %s\n", verbs[i].name, verbs[i].help);
    }
    printf("\n`dbctl COMMAND --help` describes a command's options.\n");
}

/* "Usage: ... VERB ARGS", the one-line help as a sentence, then the rest of
 * the usage text (option details). */
static void verb_help(const Verb *v)
{
    const char *nl = strchr(v->usage, '\n');
    int first = nl ? (int)(nl - v->usage) : (int)strlen(v->usage);
    printf("Usage: dbctl [-c CONFIG] [--etcd HOST:PORT[,...]] [--scope NAME] %s %.*s\n", v->name,
           first, v->usage);
    printf("%c%s%s%s.\n", toupper((unsigned char)v->help[0]), v->help + 1,
           v->alias ? "; alias: " : "", strempty(v->alias));
    if (nl) {
        printf("%s\n", nl + 1);
    }
}

void ctl_verb_help(const char *name)
{
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
        if (strcmp(verbs[i].name, name) == 0) {
            verb_help(&verbs[i]);
            return;
        }
    }
}

static const Verb *find_verb(const char *name)
{
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
        if (strcmp(verbs[i].name, name) == 0 ||
            (verbs[i].alias && strcmp(verbs[i].alias, name) == 0)) {
            return &verbs[i];
        }
    }
    return NULL;
}

bool ctl_parse_long(const char *s, long min, long max, long *ret)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || !end || end == s || *end || v < min || v > max) {
        return false;
    }
    *ret = v;
    return true;
}

/* patronictl's --dcs-url: [etcd3://]HOST:PORT. dbha speaks etcd's v3 API
 * only, so another scheme is refused rather than read as etcd3. */
static int dcs_url(const char *url)
{
    const char *sep = strstr(url, "://");
    if (sep && strncmp(url, "etcd3://", 8) != 0) {
        fprintf(stderr,
                "dbctl: --dcs-url \"%s\": dbha reaches etcd through its v3 API only; "
                "write etcd3://HOST:PORT\n",
                url);
        return -EINVAL;
    }
    arg_etcd = sep ? sep + 3 : url;
    if (!*arg_etcd || strchr(arg_etcd, '/')) {
        fprintf(stderr, "dbctl: --dcs-url \"%s\" is not etcd3://HOST:PORT\n", url);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char *argv[])
{
    enum {
        OPT_ETCD_CACERT = 0x100,
        OPT_ETCD_CERT,
        OPT_ETCD_KEY,
        OPT_ETCD_USER,
    };
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "etcd", required_argument, NULL, 'e' },
        { "dcs-url", required_argument, NULL, 'd' },
        { "dcs", required_argument, NULL, 'd' },
        { "etcd-cacert", required_argument, NULL, OPT_ETCD_CACERT },
        { "etcd-cert", required_argument, NULL, OPT_ETCD_CERT },
        { "etcd-key", required_argument, NULL, OPT_ETCD_KEY },
        { "etcd-user", required_argument, NULL, OPT_ETCD_USER },
        { "insecure", no_argument, NULL, 'k' },
        { "scope", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    int c;

    log_setup_default();
    /* "+" stops at the first non-option: the verb parses its own options. */
    const char *dcs = getenv("DCS_URL");
    while ((c = getopt_long(argc, argv, "+c:e:d:s:o:fkh", options, NULL)) >= 0) {
        switch (c) {
        case 'c':
            arg_config = optarg;
            break;
        case 'e':
            arg_etcd = optarg;
            dcs = NULL;
            break;
        case 'd':
            dcs = optarg;
            break;
        case OPT_ETCD_CACERT:
            arg_etcd_cacert = optarg;
            break;
        case OPT_ETCD_CERT:
            arg_etcd_cert = optarg;
            break;
        case OPT_ETCD_KEY:
            arg_etcd_key = optarg;
            break;
        case OPT_ETCD_USER:
            arg_etcd_user = optarg;
            break;
        case 'k':
            arg_insecure = true;
            break;
        case 's':
            arg_scope = optarg;
            break;
        case 'o':
            arg_output = output_from_string(optarg);
            if (arg_output < 0) {
                fprintf(stderr, "dbctl: unknown output format \"%s\" (table, json, yaml)\n",
                        optarg);
                return 2;
            }
            break;
        case 'f':
            arg_force = true;
            break;
        case 'h':
            help();
            return 0;
        default:
            fprintf(stderr, "Try 'dbctl --help' for more information.\n");
            return 2;
        }
    }
    if (dcs && !arg_etcd && dcs_url(dcs) < 0) {
        return 2;
    }
    if (ctl_resolve_config() < 0) {
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "dbctl: missing command\nTry 'dbctl --help' for more information.\n");
        return 2;
    }
    const Verb *v = find_verb(argv[optind]);
    if (!v) {
        fprintf(stderr, "dbctl: unknown command \"%s\"\n", argv[optind]);
        return 2;
    }
    /* `dbctl VERB --help` for every verb, before its own parsing */
    for (int i = optind + 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            verb_help(v);
            return 0;
        }
    }
    int nargs = argc - optind - 1;
    if (nargs < v->min_args || nargs > v->max_args) {
        fprintf(stderr, "dbctl %s: expected %d to %d arguments, got %d\n", v->name, v->min_args,
                v->max_args, nargs);
        return 2;
    }
    return v->fn(argc - optind, argv + optind);
}
