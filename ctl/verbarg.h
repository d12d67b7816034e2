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
