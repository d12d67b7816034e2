/* Arguments several dbctl verbs share with patronictl: the cluster name
 * patronictl takes as a positional argument (`patronictl list demo`) and its
 * -f/--format value. Each function prints one line to stderr on a usage
 * error and logs nothing. */
#pragma once

#include <stdbool.h>

#include "output.h"

/* name, a cluster name given as a positional argument, may select the
 * cluster: as in patronictl it is used instead of the scope of -c CONFIG.
 * When --scope is given too, the two must be the same name. Returns 0, or
 * -EINVAL after printing "dbctl VERB: cluster name "X" does not match
 * --scope "Y"". */
int verbarg_check_cluster(const char *verb, const char *name);

/* The -f/--format value s (pretty, tsv, json, yaml; also yml and table).
 * Returns 0 with *ret, or -EINVAL after printing the accepted values. */
int verbarg_format(const char *verb, const char *s, OutputFormat *ret);

/* patronictl's cluster names (`list a b`): every name given must pass
 * verbarg_check_cluster. n is the count of names; 0 means the config's
 * scope. Returns 0 or -EINVAL after printing the line. */
int verbarg_check_clusters(const char *verb, int n, char *const names[]);

/* Upper bounds of -w/--watch SECONDS and of dbctl's --count N. */
#define VERBARG_WATCH_MAX_SEC 86400
#define VERBARG_COUNT_MAX     1000000
/* patronictl's interval for -W */
#define VERBARG_WATCH_DEFAULT_SEC 2.0

/* patronictl's -W and -w/--watch SECONDS (list, topology, query), and
 * dbctl's --count N. */
typedef struct VerbWatch {
    bool every_default; /* -W */
    double seconds;     /* -w SECONDS; 0: none */
    long count;         /* --count N: stop after N rounds; 0: until a signal */
} VerbWatch;

/* -w's value: a decimal number of seconds (0.5, 2, 1e-1) in
 * [0, VERBARG_WATCH_MAX_SEC]; 0 is no watch, as in patronictl. Returns 0
 * with *ret, or -EINVAL after printing the accepted range. */
int verbarg_watch_seconds(const char *verb, const char *s, double *ret);

/* --count's value, in [1, VERBARG_COUNT_MAX]. Returns 0 or -EINVAL after
 * printing the line. */
int verbarg_watch_count(const char *verb, const char *s, long *ret);

/* patronictl's watching(): -w when it is not 0, else 2 with -W, else 0
 * (one round). */
double verbarg_watch_interval(const VerbWatch *w);

/* Checks the options together (--count needs a watch). Returns 0 or
 * -EINVAL after printing the line. */
int verbarg_watch_check(const char *verb, const VerbWatch *w);

/* One round of a watch: prints what the verb shows. Returns the round's
 * exit status (0 or 1); *ret_stop = true ends the watch after it (an error
 * patronictl stops on). */
typedef int (*VerbWatchRound)(void *userdata, bool *ret_stop);

/* Runs round once without a watch. With one (interval > 0): blocks SIGINT
 * and SIGTERM, and runs round every interval seconds, first writing
 * click.clear()'s escape sequence when clear and stdout is a terminal, until
 * a round stops it, --count rounds ran, or a signal comes (taken while
 * sleeping, so a round is never cut). Returns the last round's status; on
 * SIGINT prints patronictl's "\nAborted!" to stderr and returns 1; on
 * SIGTERM returns VERBARG_WATCH_TERMINATED: after its cleanup the verb passes
 * it to verbarg_watch_exit(). */
#define VERBARG_WATCH_TERMINATED (-1)
int verbarg_watch_run(const VerbWatch *w, bool clear, VerbWatchRound round, void *userdata);

/* r, or for VERBARG_WATCH_TERMINATED ends the process by SIGTERM with the
 * default action, as patronictl ends (Python does not catch SIGTERM). */
int verbarg_watch_exit(int r);
