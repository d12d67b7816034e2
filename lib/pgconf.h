/* postgresql.conf as PostgreSQL 15's configuration lexer reads it
 * (src/backend/utils/misc/guc-file.l): which parameter names it takes and
 * how a value is quoted so that it reads back byte for byte. Pure; nothing
 * here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* True when name is a parameter name PostgreSQL's lexer reads as one token
 * (ID: [A-Za-z_\200-\377][A-Za-z_0-9\200-\377]*, or QUALIFIED_ID: ID.ID)
 * and not one of the directives that share that syntax (include,
 * include_if_exists, include_dir: they would read another file). */
bool pgconf_name_valid(const char *name);

/* name for a message, at most size - 1 bytes: a control byte as its
 * escape (\n, \r, \t, \ooo), so a name from etcd or a request cannot
 * start a line of its own in a log. Returns buf. */
#define PGCONF_PRINTABLE_MAX 128
const char *pgconf_printable(const char *name, char *buf, size_t size);

/* The message for a name pgconf_name_valid() refuses, a printf format
 * taking the name (through pgconf_printable()): what is wrong and what to
 * write instead. */
#define PGCONF_NAME_HINT                                                                           \
    "\"%.64s\" is not a PostgreSQL parameter name: use letters, digits and \"_\" (not a digit "    \
    "first), with at most one \".\" (extension.setting)"

/* The value as a quoted string literal: ' and \ doubled or escaped, \b \f
 * \n \r \t as their escapes and other control characters as three-digit
 * octal escapes, so that GUC_scanstr() gives back exactly value. Writes to
 * f; never fails except as f does (check ferror()). */
void pgconf_put_value(FILE *f, const char *value);

/* One `name = 'value'` line (the value quoted as pgconf_put_value()). The
 * caller has checked the name with pgconf_name_valid(). */
void pgconf_put_line(FILE *f, const char *name, const char *value);

/* What happens to a key of Patroni's recovery_conf (its recovery.conf
 * settings, written into postgresql.conf on a replica since PostgreSQL 12),
 * as Patroni 3.0 does for PostgreSQL 13 and later. */
typedef enum PgconfRecovery {
    PGCONF_RECOVERY_WRITTEN, /* written on a replica (restore_command, ...) */
    PGCONF_RECOVERY_DROPPED, /* Patroni drops it too; *why says why */
    PGCONF_RECOVERY_UNKNOWN, /* not a recovery setting of PostgreSQL 13+ */
} PgconfRecovery;

/* name compared without regard to case, as PostgreSQL and Patroni do;
 * *why (may be NULL) is set for PGCONF_RECOVERY_DROPPED. */
PgconfRecovery pgconf_recovery_param(const char *name, const char **why);
