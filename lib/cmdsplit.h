/* Command lines split as Patroni splits them (shlex.split). */
#pragma once

#include <stddef.h>

/* Splits command into a NULL-terminated vector of words (*ret_argv, free
 * with cmdsplit_free()). Returns the number of words (0 for a blank line),
 * -EINVAL for an unclosed quote or a trailing backslash, -ENOMEM. */
int cmdsplit(const char *command, char ***ret_argv);
/* Appends word (taken, freed on failure) to such a vector of *n words. */
int cmdsplit_push(char ***v, size_t *n, char *word);
/* Frees such a vector; returns NULL. */
char **cmdsplit_free(char **argv);
