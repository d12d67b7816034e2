/* The cluster name and --format of patronictl's command lines, checked the
 * same way for every verb that takes them. */
#include "verbarg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

int verbarg_check_cluster(const char *verb, const char *name)
{
    /* patronictl has no --scope: two different names on one command line
     * can only be a mistake, and a mutating verb must not guess */
    if (name && arg_scope && strcmp(name, arg_scope) != 0) {
        fprintf(stderr, "dbctl %s: cluster name \"%s\" does not match --scope \"%s\"\n", verb, name,
                arg_scope);
        return -EINVAL;
    }
    return 0;
}

int verbarg_format(const char *verb, const char *s, OutputFormat *ret)
{
    OutputFormat f = output_format_from_string(s);
    if (f < 0) {
        fprintf(stderr, "dbctl %s: unknown format \"%s\" (pretty, tsv, json, yaml)\n", verb, s);
        return -EINVAL;
    }
    *ret = f;
    return 0;
}
