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

/* The escape letter GUC_scanstr() knows for ch, or 0. */
static char escape_letter(unsigned char ch)
{
    static const char letters[][2] = {
        { '\b', 'b' }, { '\f', 'f' }, { '\n', 'n' }, { '\r', 'r' }, { '\t', 't' },
    };
    for (size_t i = 0; i < ELEMENTSOF(letters); i++) {
        if (ch == (unsigned char)letters[i][0]) {
            return letters[i][1];
        }
    }
    return 0;
}

static bool control_byte(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f;
}

/* Room for one escaped control byte: a backslash, three octal digits, NUL. */
#define CONTROL_ESCAPE_MAX 5

/* A control byte as \<letter> or, without one, three-digit octal: a digit
 * after it is never read as part of it. */
static const char *control_escape(unsigned char ch, char out[CONTROL_ESCAPE_MAX])
{
    char letter = escape_letter(ch);
    if (letter) {
        (void)snprintf(out, CONTROL_ESCAPE_MAX, "\\%c", letter);
    } else {
        (void)snprintf(out, CONTROL_ESCAPE_MAX, "\\%03o", ch);
    }
    return out;
}

const char *pgconf_printable(const char *name, char *buf, size_t size)
{
    if (size == 0) {
        return buf;
    }
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) {
        char esc[CONTROL_ESCAPE_MAX] = { (char)*s, '\0' };
        if (control_byte(*s)) {
            control_escape(*s, esc);
        }
        size_t n = strlen(esc);
        if (o + n >= size) {
            break;
        }
        memcpy(buf + o, esc, n);
        o += n;
    }
    buf[o] = '\0';
    return buf;
}

void pgconf_put_value(FILE *f, const char *value)
{
    fputc('\'', f);
    for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
        char esc[CONTROL_ESCAPE_MAX];
        if (control_byte(*s)) {
            fputs(control_escape(*s, esc), f);
        } else if (*s == '\'') {
            fputs("''", f);
        } else if (*s == '\\') {
            fputs("\\\\", f);
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
