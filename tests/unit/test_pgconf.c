/* lib/pgconf: parameter names as PostgreSQL 15's configuration lexer reads
 * them, and values quoted so that GUC_scanstr() gives them back. The reader
 * below follows guc-file.l's STRING rule and GUC_scanstr() as written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgconf.h"

#define VALUE_MAX 256

/* The quoted text pgconf_put_value() writes for value. */
static char *quoted(const char *value)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    pgconf_put_value(f, value);
    assert_int_equal(fclose(f), 0);
    return buf;
}

/* guc-file.l's STRING, '([^'\\\n]|\\.|'')*', must match the whole text;
 * then GUC_scanstr() turns it into out. Fails the test when the lexer would
 * not read it as one string token. */
static void lex_and_scan(const char *s, char *out, size_t outsize)
{
    size_t len = strlen(s);
    assert_true(len >= 2 && s[0] == '\'' && s[len - 1] == '\'');
    size_t i = 1, j = 0;
    while (i < len - 1) {
        assert_true(j + 1 < outsize);
        char ch = s[i];
        assert_true(ch != '\n');
        if (ch == '\\') {
            assert_true(i + 1 < len - 1);  /* `\\.`: the escaped byte is inside */
            assert_true(s[i + 1] != '\n'); /* flex's `.` stops at a newline */
            char e = s[++i];
            const char *octal = "01234567";
            if (strchr(octal, e)) {
                int v = 0, k = 0;
                for (; k < 3 && s[i + k] && strchr(octal, s[i + k]); k++) {
                    v = (v << 3) + (s[i + k] - '0');
                }
                i += (size_t)k;
                out[j++] = (char)v;
                continue;
            }
            out[j++] = e == 'b'   ? '\b'
                       : e == 'f' ? '\f'
                       : e == 'n' ? '\n'
                       : e == 'r' ? '\r'
                       : e == 't' ? '\t'
                                  : e;
            i++;
        } else if (ch == '\'') {
            assert_true(s[i + 1] == '\''); /* a lone quote would end the token */
            out[j++] = '\'';
            i += 2;
        } else {
            out[j++] = ch;
            i++;
        }
    }
    out[j] = '\0';
}

static void test_values_read_back(void **state)
{
    (void)state;
    static const char *const values[] = {
        "",
        "8MB",
        "C:\\temp\\new",
        "it's",
        "ends with a backslash\\",
        "\\",
        "''",
        "line one\nline two",
        "cr\r\nlf",
        "tab\there \b \f \x01\x1f\x7f 7",
        "\x01"
        "7", /* an octal escape followed by a digit */
        "caf\xc3\xa9 \xff",
        "'; include '/etc/passwd",
        "a\nfsync = off",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char *q = quoted(values[i]);
        char back[VALUE_MAX];
        lex_and_scan(q, back, sizeof(back));
        if (strcmp(back, values[i]) != 0) {
            fail_msg("value %zu: wrote %s, read back something else", i, q);
        }
        free(q);
    }
}

static void test_values_as_written(void **state)
{
    (void)state;
    static const struct {
        const char *value, *text;
    } rows[] = {
        { "C:\\temp\\new", "'C:\\\\temp\\\\new'" },
        { "it's", "'it''s'" },
        { "x\\", "'x\\\\'" },
        { "a\nb\rc\td", "'a\\nb\\rc\\td'" },
        { "\x01"
          "7",
          "'\\0017'" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *q = quoted(rows[i].value);
        assert_string_equal(q, rows[i].text);
        free(q);
    }
}

static void test_line(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    pgconf_put_line(f, "dbha_test.path", "C:\\temp\\new");
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "dbha_test.path = 'C:\\\\temp\\\\new'\n");
    free(buf);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {
        "work_mem", "_x", "A9", "auto_explain.log_min_duration", "x.y", "caf\xc3\xa9", "\xff_1",
    };
    static const char *const bad[] = {
        "",
        "1x",
        "work mem",
        "work-mem",
        "a.b.c",
        "a.",
        ".a",
        "a..b",
        "a.1",
        "x$",
        "work_mem = 1\nhba_file",
        "hba_file\n",
        "x'",
        "x=1",
        "x#",
        "include",
        "INCLUDE",
        "include_if_exists",
        "include_dir",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!pgconf_name_valid(good[i])) {
            fail_msg("\"%s\" refused", good[i]);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (pgconf_name_valid(bad[i])) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
    }
}

static void test_printable(void **state)
{
    (void)state;
    char buf[PGCONF_PRINTABLE_MAX];
    assert_string_equal(pgconf_printable("work_mem", buf, sizeof(buf)), "work_mem");
    assert_string_equal(pgconf_printable("a\nb\rc\td\x01", buf, sizeof(buf)), "a\\nb\\rc\\td\\001");
    char small[6];
    /* an escape is never cut in half */
    assert_string_equal(pgconf_printable("abcd\n", small, sizeof(small)), "abcd");
    assert_string_equal(pgconf_printable("ab\ncdef", small, sizeof(small)), "ab\\nc");
    char none[1] = { 'x' };
    assert_string_equal(pgconf_printable("abc", none, sizeof(none)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_read_back),
        cmocka_unit_test(test_values_as_written),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
