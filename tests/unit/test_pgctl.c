/* Unit tests for agent/pgctl.c's file writer: a secret file (the passfile,
 * initdb's password file) is written through a fresh name, mode 0600, and
 * renamed over its path; a symlink planted there is replaced, not followed. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgctl.h"

#define PATH_BUF 512

static void read_all(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static size_t entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void test_symlink_is_replaced_not_followed(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-pgctl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[PATH_BUF], target[PATH_BUF], buf[64];
    snprintf(path, sizeof(path), "%s/pgpass", dir);
    snprintf(target, sizeof(target), "%s/target", dir);
    FILE *f = fopen(target, "we");
    assert_non_null(f);
    fputs("untouched\n", f);
    fclose(f);
    assert_int_equal(symlink(target, path), 0);

    assert_int_equal(pgctl_write_file(path, "*:*:*:u:secret\n", 15), 0);

    read_all(target, buf, sizeof(buf));
    assert_string_equal(buf, "untouched\n");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    read_all(path, buf, sizeof(buf));
    assert_string_equal(buf, "*:*:*:u:secret\n");
    assert_int_equal(entries(dir), 2); /* no temporary file left */

    unlink(path);
    unlink(target);
    rmdir(dir);
}

static void test_missing_directory_fails(void **state)
{
    (void)state;
    assert_int_equal(pgctl_write_file("/nonexistent-dbha-dir/pgpass", "x", 1), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symlink_is_replaced_not_followed),
        cmocka_unit_test(test_missing_directory_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
