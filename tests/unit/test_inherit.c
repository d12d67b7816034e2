/* Unit tests for lib/inherit.c: which environment entries children get,
 * and that a child closes every descriptor above stderr. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "inherit.h"

typedef struct EnvCase {
    const char *name;
    char *env[8];
    char *extra[3];
    const char *want; /* the result, entries joined by ';' */
} EnvCase;

static const EnvCase env_cases[] = {
    { "nothing to strip", { "PATH=/bin", "HOME=/root", NULL }, { NULL }, "PATH=/bin;HOME=/root" },
    { "the agent's prefixes go",
      { "PATRONI_SUPERUSER_PASSWORD=s3", "PATH=/bin", "DBHA_ETCD3_PASSWORD=s4",
        "KUBERNETES_SERVICE_HOST=h", "PGPORT=5", NULL },
      { NULL },
      "PATH=/bin;PGPORT=5" },
    { "a prefix only at the start",
      { "MY_PATRONI_X=1", "XDBHA_=2", "PATRONI=3", NULL },
      { NULL },
      "MY_PATRONI_X=1;XDBHA_=2;PATRONI=3" },
    { "extra replaces the same name",
      { "PGPASSFILE=/old", "PGPASSFILE_NOT=1", "PATH=/bin", NULL },
      { "PGPASSFILE=/new", NULL },
      "PGPASSFILE_NOT=1;PATH=/bin;PGPASSFILE=/new" },
    { "empty", { NULL }, { NULL }, "" },
};

static void join(char **v, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; v[i]; i++) {
        if (i > 0) {
            strncat(buf, ";", size - strlen(buf) - 1);
        }
        strncat(buf, v[i], size - strlen(buf) - 1);
    }
}

static void test_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_cases) / sizeof(env_cases[0]); i++) {
        const EnvCase *c = &env_cases[i];
        char **out = NULL;
        assert_int_equal(inherit_env_new(c->env, c->extra, &out), 0);
        char got[512];
        join(out, got, sizeof(got));
        if (strcmp(got, c->want) != 0) {
            fail_msg("%s: got \"%s\", want \"%s\"", c->name, got, c->want);
        }
        assert_null(inherit_env_free(out));
    }
}

static void test_env_null_extra(void **state)
{
    (void)state;
    char *env[] = { "DBHA_X=1", "A=b", NULL };
    char **out = NULL;
    assert_int_equal(inherit_env_new(env, NULL, &out), 0);
    assert_string_equal(out[0], "A=b");
    assert_null(out[1]);
    inherit_env_free(out);
}

/* A forked child that calls inherit_close_fds keeps 0-2 only: it exits 0
 * when the descriptor opened before the fork is closed. */
static void test_close_fds(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_RDONLY); /* inheritable on purpose */
    assert_true(fd > 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        inherit_close_fds();
        _exit(fcntl(fd, F_GETFD) < 0 && fcntl(2, F_GETFD) >= 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_null_extra),
        cmocka_unit_test(test_close_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
