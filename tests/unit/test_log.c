/* Unit tests for lib/log: level names, formatting to a file sink, %m, the
 * returned error code, and once-per-state-change conditions. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define CAPTURE_MAX 8192

typedef struct Capture {
    FILE *f;
    char *buf;
    size_t size;
} Capture;

/* ---- log.dir: DIR/patroni.log, rotated as Python's RotatingFileHandler ---- */

static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static long file_size(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void remove_dir(const char *dir)
{
    static const char *const names[] = { "patroni.log", "patroni.log.1", "patroni.log.2",
                                         "patroni.log.3", "moved.log" };
    char path[512];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        (void)unlink(path);
    }
    assert_int_equal(rmdir(dir), 0);
}

/* Each line is "YYYY-MM-DD HH:MM:SS.mmm INFO    line NN\n": 40 bytes. At
 * 100 bytes a file takes two lines (a third would reach 120 >= 100), and
 * with two old files kept the first lines are dropped in order. */
static void test_dir_rotates_as_python(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    log_set_context(NULL, NULL, NULL);
    log_set_max_level(LOG_LEVEL_INFO);
    LogTarget before = log_get_target();
    assert_int_equal(log_set_dir(dir, 100, 2), 0);
    assert_int_equal(log_get_target(), LOG_TARGET_DIR);
    struct stat st;
    char path[512];
    snprintf(path, sizeof(path), "%s/patroni.log", dir);
    assert_int_equal(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0640 & ~mask);
    for (int i = 1; i <= 7; i++) {
        log_info("line %02d", i);
    }
    /* 7 lines: .2 had 1-2 and was dropped for 3-4, .1 has 5-6, the file 7 */
    char *cur = slurp(dir, "patroni.log"), *one = slurp(dir, "patroni.log.1"),
         *two = slurp(dir, "patroni.log.2");
    assert_non_null(cur);
    assert_non_null(one);
    assert_non_null(two);
    assert_null(slurp(dir, "patroni.log.3"));
    assert_non_null(strstr(cur, "INFO    line 07\n"));
    assert_null(strstr(cur, "line 06"));
    assert_non_null(strstr(one, "line 05\n"));
    assert_non_null(strstr(one, "line 06\n"));
    assert_non_null(strstr(two, "line 03\n"));
    assert_non_null(strstr(two, "line 04\n"));
    assert_null(strstr(two, "line 02"));
    assert_true(file_size(dir, "patroni.log.1") < 100);
    assert_true(file_size(dir, "patroni.log.2") < 100);
    free(cur);
    free(one);
    free(two);
    /* back to where lines went before */
    assert_int_equal(log_set_dir(NULL, 0, 0), 0);
    assert_int_equal(log_get_target(), before);
    /* a directory that is not there: an error, nothing changed */
    assert_int_equal(log_set_dir("/nonexistent-dbha-dir", 100, 2), -ENOENT);
    assert_int_equal(log_get_target(), before);
    remove_dir(dir);
}

static int journal_lines;

static int fake_journal(LogLevel level, const char *message_id, const char *file, int line,
                        const char *func, const char *msg, const char *member, const char *scope,
                        const char *role)
{
    (void)level, (void)message_id, (void)file, (void)line, (void)func, (void)member, (void)scope,
        (void)role;
    if (strstr(msg, "to both")) {
        journal_lines++;
    }
    return 0;
}

/* Under systemd (the journal as target) log.dir adds the file beside the
 * journal: every line in both. */
static void test_dir_beside_the_journal(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    log_set_max_level(LOG_LEVEL_INFO);
    log_set_journal_backend(fake_journal);
    log_set_target(LOG_TARGET_JOURNAL);
    journal_lines = 0;
    assert_int_equal(log_set_dir(dir, 0, 0), 0);
    log_info("to both %d", 1);
    log_warning("to both %d", 2);
    assert_int_equal(journal_lines, 2);
    char *cur = slurp(dir, "patroni.log");
    assert_non_null(cur);
    assert_non_null(strstr(cur, "INFO    to both 1\n"));
    assert_non_null(strstr(cur, "WARNING to both 2\n"));
    free(cur);
    assert_int_equal(log_set_dir(NULL, 0, 0), 0);
    assert_int_equal(log_get_target(), LOG_TARGET_JOURNAL);
    log_info("to both %d", 3); /* the journal alone again */
    assert_int_equal(journal_lines, 3);
    log_set_journal_backend(NULL);
    log_set_target(LOG_TARGET_STDERR);
    remove_dir(dir);
}

static void test_dir_follows_a_moved_file_and_never_rotates_at_zero(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    log_set_context(NULL, NULL, NULL);
    log_set_max_level(LOG_LEVEL_INFO);
    LogTarget before = log_get_target();
    /* file_num 0: Python never rotates, however large the file */
    assert_int_equal(log_set_dir(dir, 100, 0), 0);
    for (int i = 1; i <= 5; i++) {
        log_info("line %02d", i);
    }
    assert_int_equal(file_size(dir, "patroni.log"), 5 * 40);
    assert_int_equal(file_size(dir, "patroni.log.1"), -1);
    /* moved away (logrotate without copytruncate): the next line starts
     * DIR/patroni.log again, the moved file keeps what it had */
    char from[512], to[512];
    snprintf(from, sizeof(from), "%s/patroni.log", dir);
    snprintf(to, sizeof(to), "%s/moved.log", dir);
    assert_int_equal(rename(from, to), 0);
    log_info("line %02d", 6);
    char *cur = slurp(dir, "patroni.log"), *moved = slurp(dir, "moved.log");
    assert_non_null(cur);
    assert_non_null(moved);
    assert_non_null(strstr(cur, "line 06\n"));
    assert_null(strstr(cur, "line 05"));
    assert_non_null(strstr(moved, "line 05\n"));
    assert_null(strstr(moved, "line 06"));
    free(cur);
    free(moved);
    assert_int_equal(log_set_dir(NULL, 0, 0), 0);
    assert_int_equal(log_get_target(), before);
    remove_dir(dir);
}

/* A reload moves the log directory and changes the format while other
 * threads log (the etcd watch, the REST server): no line may read the
 * settings being replaced (ASan: use after free without the lock). */
#define RELOAD_LINES 3000

static void *log_lines(void *arg)
{
    (void)arg;
    for (int i = 0; i < RELOAD_LINES; i++) {
        log_info("thread line %d", i);
    }
    return NULL;
}

static void test_reload_while_other_threads_log(void **state)
{
    (void)state;
    char a[] = "/tmp/dbha-test-log-XXXXXX", b[] = "/tmp/dbha-test-log-XXXXXX";
    assert_non_null(mkdtemp(a));
    assert_non_null(mkdtemp(b));
    log_set_context("n1", NULL, NULL);
    log_set_max_level(LOG_LEVEL_INFO);
    LogTarget before = log_get_target();
    assert_int_equal(log_set_dir(a, 4096, 2), 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, log_lines, NULL), 0);
    }
    for (int i = 0; i < 400; i++) {
        assert_int_equal(log_set_dir(i % 2 ? a : b, 4096, 2), 0);
        assert_int_equal(log_set_format(i % 2 ? "%(levelname)s %(message)s" : NULL, NULL), 0);
        log_set_context(i % 2 ? "n1" : "n2", NULL, NULL);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(log_set_format(NULL, NULL), 0);
    assert_int_equal(log_set_dir(NULL, 0, 0), 0);
    assert_int_equal(log_get_target(), before);
    log_set_context(NULL, NULL, NULL);
    remove_dir(a);
    remove_dir(b);
}

/* A forked child logs, and forks and logs again (the fencing process, a
 * job running before_stop): the lock a fork takes must not leave the child
 * unable to log. Bounded: 10 s, then the child is killed and the test
 * fails. */
static void test_fork_children_can_log(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    LogTarget before = log_get_target();
    assert_int_equal(log_set_dir(dir, 0, 0), 0);
    log_info("before the fork");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        log_info("in the child");
        pid_t grandchild = fork();
        if (grandchild == 0) {
            log_info("in the grandchild");
            _exit(0);
        }
        int st = 0;
        _exit(grandchild > 0 && waitpid(grandchild, &st, 0) == grandchild && WIFEXITED(st) &&
                      WEXITSTATUS(st) == 0
                  ? 0
                  : 1);
    }
    int status = -1;
    pid_t w = 0;
    for (int i = 0; i < 1000 && (w = waitpid(pid, &status, WNOHANG)) == 0; i++) {
        usleep(10 * 1000);
    }
    if (w == 0) {
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        fail_msg("the forked child hung logging");
    }
    assert_int_equal(w, pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *text = slurp(dir, "patroni.log");
    assert_non_null(text);
    assert_non_null(strstr(text, "in the child\n"));
    assert_non_null(strstr(text, "in the grandchild\n"));
    free(text);
    assert_int_equal(log_set_dir(NULL, 0, 0), 0);
    assert_int_equal(log_get_target(), before);
    remove_dir(dir);
}

static int setup(void **state)
{
    Capture *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->f = open_memstream(&c->buf, &c->size);
    assert_non_null(c->f);
    log_set_file(c->f);
    log_set_max_level(LOG_LEVEL_DEBUG);
    log_set_context(NULL, NULL, NULL);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    Capture *c = *state;
    log_set_target(LOG_TARGET_STDERR);
    fclose(c->f);
    free(c->buf);
    free(c);
    return 0;
}

static const char *captured(Capture *c)
{
    fflush(c->f);
    return c->buf ? c->buf : "";
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void test_level_names(void **state)
{
    (void)state;
    assert_int_equal(log_level_from_string("debug"), LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_from_string("INFO"), LOG_LEVEL_INFO);
    assert_int_equal(log_level_from_string("Warning"), LOG_LEVEL_WARNING);
    assert_int_equal(log_level_from_string("WARN"), LOG_LEVEL_WARNING);
    assert_int_equal(log_level_from_string("CRITICAL"), LOG_LEVEL_ERROR);
    assert_int_equal(log_level_from_string("loud"), _LOG_LEVEL_INVALID);
    assert_int_equal(log_level_from_string(NULL), _LOG_LEVEL_INVALID);
    assert_string_equal(log_level_to_string(LOG_LEVEL_NOTICE), "NOTICE");
    assert_null(log_level_to_string(_LOG_LEVEL_MAX));
}

static void test_format_and_filter(void **state)
{
    Capture *c = *state;
    log_set_max_level(LOG_LEVEL_INFO);
    log_debug("hidden %d", 1);
    log_info("shown %d", 2);
    log_set_context("node1", "demo", "primary");
    log_warning("with member");
    const char *out = captured(c);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "INFO    shown 2\n"));
    assert_non_null(strstr(out, "WARNING [node1] with member\n"));
    assert_int_equal(count_lines(out), 2);
    /* "YYYY-MM-DD HH:MM:SS.mmm " prefix */
    assert_true(strlen(out) > 24);
    assert_int_equal(out[4], '-');
    assert_int_equal(out[19], '.');
}

static void test_errno_return_and_percent_m(void **state)
{
    Capture *c = *state;
    assert_int_equal(log_error_errno(ENOENT, "open \"%s\": %m", "x.yml"), -ENOENT);
    assert_int_equal(log_error_errno(-EACCES, "again: %m"), -EACCES);
    assert_int_equal(log_info_errno(0, "fine"), 0);
    log_info("100%% literal");
    const char *out = captured(c);
    assert_non_null(strstr(out, "open \"x.yml\": No such file or directory\n"));
    assert_non_null(strstr(out, "again: Permission denied\n"));
    assert_non_null(strstr(out, "100% literal\n"));
}

static void test_condition_logs_once_per_change(void **state)
{
    Capture *c = *state;
    LogCondition cond = LOG_CONDITION_INIT("etcd unreachable", LOG_LEVEL_WARNING);

    assert_false(log_condition_update(&cond, false, 0, NULL));
    assert_true(log_condition_update(&cond, true, 1000000, "connection refused"));
    for (int i = 0; i < 50; i++) {
        assert_false(log_condition_update(&cond, true, 1000000 + i * 100000ULL, "refused"));
    }
    assert_true(log_condition_update(&cond, false, 7500000, NULL));
    assert_false(log_condition_update(&cond, false, 8000000, NULL));

    const char *out = captured(c);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "WARNING etcd unreachable: connection refused\n"));
    assert_non_null(
        strstr(out, "INFO    etcd unreachable: resolved after 6.500 s (51 checks failed)\n"));
    assert_int_equal(cond.events, 1);

    /* a second outage is a new event, logged again */
    assert_true(log_condition_update(&cond, true, 9000000, NULL));
    assert_int_equal(cond.events, 2);
    assert_int_equal(count_lines(captured(c)), 3);
}

static void test_struct_id_on_file_target(void **state)
{
    Capture *c = *state;
    log_struct_id(LOG_LEVEL_NOTICE, "5b8e4c2a0f4d4e0e9c3f3d3b1a2c4e6f", "promoted to %s",
                  "primary");
    assert_non_null(strstr(captured(c), "NOTICE  promoted to primary\n"));
}

static void test_journal_stream_mismatch_uses_stderr(void **state)
{
    (void)state;
    setenv("JOURNAL_STREAM", "1:1", 1);
    log_setup_default();
    assert_int_equal(log_get_target(), LOG_TARGET_STDERR);
    setenv("JOURNAL_STREAM", "garbage", 1);
    log_setup_default();
    assert_int_equal(log_get_target(), LOG_TARGET_STDERR);
    unsetenv("JOURNAL_STREAM");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_names),
        cmocka_unit_test_setup_teardown(test_format_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_return_and_percent_m, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_logs_once_per_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_struct_id_on_file_target, setup, teardown),
        cmocka_unit_test(test_journal_stream_mismatch_uses_stderr),
        cmocka_unit_test(test_dir_rotates_as_python),
        cmocka_unit_test(test_dir_follows_a_moved_file_and_never_rotates_at_zero),
        cmocka_unit_test(test_dir_beside_the_journal),
        cmocka_unit_test(test_reload_while_other_threads_log),
        cmocka_unit_test(test_fork_children_can_log),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
