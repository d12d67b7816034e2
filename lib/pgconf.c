/* postgresql.conf's lexical rules, so that every writer of the file and
 * every place a parameter name enters (config file, config key, REST,
 * dbctl) agree with what PostgreSQL will read. */
#include "pgconf.h"

#include <string.h>
#include <strings.h>

#include "macro.h"

static bool id_start(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' || ch >= 0x80;
}

static bool id_char(unsigned char ch)
{
    return id_start(ch) || (ch >= '0' && ch <= '9');
}

/* Length of the ID at s, 0 when s does not start with one. */
static size_t id_length(const char *s)
{
    if (!id_start((unsigned char)*s)) {
        return 0;
    }
    size_t n = 1;
    while (id_char((unsigned char)s[n])) {
        n++;
    }
    return n;
}

static bool directive(const char *name)
{
    static const char *const names[] = { "include", "include_if_exists", "include_dir" };
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool pgconf_name_valid(const char *name)
{
    size_t n = id_length(name);
    if (n == 0) {
        return false;
    }
    if (name[n] == '.') {
        size_t m = id_length(name + n + 1);
        if (m == 0) {
            return false;
        }
        n += 1 + m;
    }
    return name[n] == '\0' && !directive(name);
}

void pgconf_put_value(FILE *f, const char *value)
{
    static const char letters[][2] = {
        { '\b', 'b' }, { '\f', 'f' }, { '\n', 'n' }, { '\r', 'r' }, { '\t', 't' },
    };
    fputc('\'', f);
    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        const char *letter = NULL;
        for (size_t i = 0; i < ELEMENTSOF(letters); i++) {
            if (*s == (unsigned char)letters[i][0]) {
                letter = &letters[i][1];
            }
        }
        if (letter) {
            fputc('\\', f);
            fputc(*letter, f);
        } else if (*s == '\'') {
            fputs("''", f);
        } else if (*s == '\\') {
            fputs("\\\\", f);
        } else if (*s < 0x20 || *s == 0x7f) {
            /* three digits: a digit after it is never read as part of it */
            fprintf(f, "\\%03o", *s);
        } else {
            fputc(*s, f);
        }
    }
    fputc('\'', f);
}

void pgconf_put_line(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s = ", name);
    pgconf_put_value(f, value);
    fputc('\n', f);
}
