/* dbctl version: dbctl's own version (agents' versions are read from their
 * member keys once dbctl talks to the cluster). */
#include <stdio.h>

#include "dbha/dbha.h"

#include "ctl.h"

int verb_version(int argc, char *argv[])
{
    if (argc > 1) {
        fprintf(stderr, "dbctl version: unexpected argument \"%s\"\n", argv[1]);
        return 2;
    }
    if (arg_output == CTL_OUTPUT_JSON) {
        printf("{\"dbctl\": \"%s\"}\n", dbha_version());
    } else {
        printf("dbctl version %s\n", dbha_version());
    }
    return 0;
}
