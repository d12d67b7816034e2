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

PgconfRecovery pgconf_recovery_param(const char *name, const char **why)
{
    /* Patroni's recovery_parameters that PostgreSQL 13 to 15 know, less
     * those its build_recovery_params() replaces or drops */
    static const char *const written[] = { "restore_command", "archive_cleanup_command",
                                           "recovery_end_command", "recovery_min_apply_delay",
                                           "promote_trigger_file" };
    static const struct {
        const char *name;
        bool prefix;
        const char *why;
    } dropped[] = {
        { "recovery_target", true,
          "a replica follows its leader to the end of the WAL (Patroni drops recovery_target* "
          "for replicas too; a point-in-time target belongs to bootstrap.<method>.recovery_conf)" },
        { "primary_conninfo", false,
          "the agent writes it from the leader's address and the replication user, as Patroni" },
        { "primary_slot_name", false,
          "the agent writes the member's slot on the leader, as Patroni" },
        { "standby_mode", false,
          "PostgreSQL 12 and later have no such setting: the agent writes standby.signal, as "
          "Patroni" },
        { "trigger_file", false,
          "PostgreSQL 12 and later have no such setting (promote_trigger_file), and the agent "
          "promotes with pg_ctl, as Patroni" },
        { "pause_at_recovery_target", false,
          "PostgreSQL 12 and later have no such setting, and a replica has no recovery target" },
    };
    for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++) {
        if (strcasecmp(name, written[i]) == 0) {
            return PGCONF_RECOVERY_WRITTEN;
        }
    }
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
        size_t n = strlen(dropped[i].name);
        if (dropped[i].prefix ? strncasecmp(name, dropped[i].name, n) == 0
                              : strcasecmp(name, dropped[i].name) == 0) {
            if (why) {
                *why = dropped[i].why;
            }
            return PGCONF_RECOVERY_DROPPED;
        }
    }
    return PGCONF_RECOVERY_UNKNOWN;
}
