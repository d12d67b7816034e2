/* Public entry points of libdbha that have no better home yet. */
#include "dbha/dbha.h"

const char *dbha_version(void)
{
    return DBHA_VERSION;
}
