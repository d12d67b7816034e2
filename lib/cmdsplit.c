/* Patroni's command lines split into words as Python's shlex.split (POSIX
 * mode) does: blanks separate words, single quotes keep everything, double
 * quotes keep all but \\" and \\\\, a backslash outside quotes keeps the next
 * character. No expansion of any kind. Used by postgresql.callbacks and
 * bootstrap.post_bootstrap. */
#include "cmdsplit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

char **cmdsplit_free(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++) {
        free(argv[i]);
    }
    free(argv);
    return NULL;
}

/* Appends a word to a NULL-terminated vector of n words. */
int cmdsplit_push(char ***v, size_t *n, char *word)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (!nv) {
        free(word);
        return -ENOMEM;
    }
    nv[(*n)++] = word;
    nv[*n] = NULL;
    *v = nv;
    return 0;
}

int cmdsplit(const char *command, char ***ret_argv)
{
    if (!command) {
        return -EINVAL;
    }
    size_t len = strlen(command);
    char **v = calloc(1, sizeof(char *));
    char *word = malloc(len + 1);
    if (!v || !word) {
        free(v);
        free(word);
        return -ENOMEM;
    }
    size_t n = 0, w = 0;
    bool in_word = false; /* a word started (maybe empty: '' or "") */
    char quote = 0;       /* the open quote, 0: none */
    int r = 0;
    for (const char *p = command; *p && r >= 0; p++) {
        char ch = *p;
        if (quote == '\'') {
            if (ch == '\'') {
                quote = 0;
            } else {
                word[w++] = ch;
            }
        } else if (quote == '"') {
            if (ch == '"') {
                quote = 0;
            } else if (ch == '\\' && (p[1] == '"' || p[1] == '\\')) {
                word[w++] = *++p;
            } else if (ch == '\\' && p[1] == '\0') {
                r = -EINVAL; /* shlex: "No escaped character" */
            } else {
                word[w++] = ch;
            }
        } else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            if (in_word) {
                word[w] = '\0';
                char *copy = strdup(word);
                r = copy ? cmdsplit_push(&v, &n, copy) : -ENOMEM;
                in_word = false;
                w = 0;
            }
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
            in_word = true;
        } else if (ch == '\\') {
            if (p[1] == '\0') {
                r = -EINVAL;
            } else {
                word[w++] = *++p;
                in_word = true;
            }
        } else {
            word[w++] = ch;
            in_word = true;
        }
    }
    if (r >= 0 && quote) {
        r = -EINVAL; /* shlex: "No closing quotation" */
    }
    if (r >= 0 && in_word) {
        word[w] = '\0';
        char *copy = strdup(word);
        r = copy ? cmdsplit_push(&v, &n, copy) : -ENOMEM;
    }
    free(word);
    if (r < 0) {
        cmdsplit_free(v);
        return r;
    }
    *ret_argv = v;
    return (int)n;
}
