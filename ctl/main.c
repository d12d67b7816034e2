/* dbctl entry point: global options and the verb table. Each verb family
 * lives in ctl/cmd_<family>.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "macro.h"

const char *arg_config = NULL;
const char *arg_etcd = NULL;
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
    const char *help;
} Verb;

static const Verb verbs[] = {
    { "version", NULL, 0, 0, 0, verb_version, "print dbctl's version" },
    { "status", "list", 0, 16, VERB_NEEDS_ETCD, verb_status,
      "show members, roles, states and lag (-o, --watch)" },
    { "history", NULL, 0, 0, VERB_NEEDS_ETCD, verb_history, "show the promotions (-o)" },
    { "show-config", NULL, 0, 0, VERB_NEEDS_ETCD, verb_show_config,
      "show the cluster-wide configuration (-o json|yaml)" },
    { "dsn", NULL, 0, 2, VERB_NEEDS_ETCD, verb_dsn,
      "print a libpq connection string (--role primary|replica|any)" },
    { "pause", NULL, 0, 1, VERB_MUTATING | VERB_NEEDS_ETCD, verb_pause,
      "maintenance mode: no automatic action (--wait)" },
    { "resume", NULL, 0, 1, VERB_MUTATING | VERB_NEEDS_ETCD, verb_resume,
      "leave maintenance mode (--wait)" },
    { "switchover", NULL, 0, 16, VERB_MUTATING | VERB_NEEDS_ETCD, verb_switchover,
      "hand the primary role to a replica (--candidate, --primary, --force)" },
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
           "             COMMAND [ARGS...]\n\nCommands:\n");
    for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
        printf("  %-12s %s\n", verbs[i].name, verbs[i].help);
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

int main(int argc, char *argv[])
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "etcd", required_argument, NULL, 'e' },
        { "scope", required_argument, NULL, 's' },
        { "output", required_argument, NULL, 'o' },
        { "force", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        {},
    };
    int c;

    log_setup_default();
    /* "+" stops at the first non-option: the verb parses its own options. */
    while ((c = getopt_long(argc, argv, "+c:e:s:o:fh", options, NULL)) >= 0) {
        switch (c) {
        case 'c':
            arg_config = optarg;
            break;
        case 'e':
            arg_etcd = optarg;
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
    if (optind >= argc) {
        fprintf(stderr, "dbctl: missing command\nTry 'dbctl --help' for more information.\n");
        return 2;
    }
    const Verb *v = find_verb(argv[optind]);
    if (!v) {
        fprintf(stderr, "dbctl: unknown command \"%s\"\n", argv[optind]);
        return 2;
    }
    int nargs = argc - optind - 1;
    if (nargs < v->min_args || nargs > v->max_args) {
        fprintf(stderr, "dbctl %s: expected %d to %d arguments, got %d\n", v->name, v->min_args,
                v->max_args, nargs);
        return 2;
    }
    return v->fn(argc - optind, argv + optind);
}
