/* Unit tests for agent/postmaster: /proc/PID/stat parsing, the start-time
 * match against postmaster.pid, pm_find() on real processes (this test,
 * a child named "postgres" started now and a PID that another instance's
 * file might name), and pm_kill_now() on a fake postmaster that
 * ignores SIGQUIT, running and stopped, with two children, and on one
 * that forks all the time. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "postmaster.h"

static void test_proc_stat_parse(void **state)
{
    (void)state;
    ProcStat s;
    const char line[] = "4242 (postgres) S 4200 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 "
                        "987654 123 45 18446744073709551615\n";
    assert_int_equal(proc_stat_parse(line, &s), 0);
    assert_string_equal(s.comm, "postgres");
    assert_int_equal(s.state, 'S');
    assert_int_equal(s.ppid, 4200);
    assert_int_equal(s.start_ticks, 987654);
    /* a comm with ") " inside: the last ')' ends it */
    const char odd[] = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0\n";
    assert_int_equal(proc_stat_parse(odd, &s), 0);
    assert_string_equal(s.comm, "a) b (c");
    assert_int_equal(s.state, 'R');
    assert_int_equal(s.ppid, 1);
    assert_int_equal(s.start_ticks, 55);
    static const char *const bad[] = {
        "",
        "12 postgres S 1",
        "12 (postgres)S 1 2",
        "12 (postgres) S",
        "12 (postgres) S x 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55",
        "12 (postgres) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0", /* no starttime */
        "12 (postgres) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5x5 0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (proc_stat_parse(bad[i], &s) != -EINVAL) {
            fail_msg("parsed \"%s\"", bad[i]);
        }
    }
    /* our own: running, started after boot */
    assert_int_equal(proc_stat_read(getpid(), &s), 0);
    assert_int_equal(s.ppid, getppid());
    assert_true(s.state == 'R' || s.state == 'S');
    assert_int_equal(proc_stat_read(0, &s), -ESRCH);
    assert_int_equal(proc_stat_read(2147483646, &s), -ESRCH);
}

static void test_start_matches(void **state)
{
    (void)state;
    assert_true(pm_start_matches(1000.0, 0)); /* the file has no start time */
    assert_true(pm_start_matches(1000.0, 1000));
    assert_true(pm_start_matches(1000.9, 1000));
    assert_true(pm_start_matches(1003.0, 1000));
    assert_true(pm_start_matches(997.0, 1000));
    assert_false(pm_start_matches(1003.5, 1000));
    assert_false(pm_start_matches(996.0, 1000));
    assert_false(pm_start_matches(1000.0, 900));
    /* this process started within a few seconds of its start time */
    ProcStat s;
    assert_int_equal(proc_stat_read(getpid(), &s), 0);
    double started = proc_start_epoch(s.start_ticks);
    double now = (double)time(NULL);
    assert_true(started <= now + 1 && started > now - 600);
}

/* A forked fake never outlives the test, even one that fails half-way
 * (cmocka jumps past the cleanup): killed with its parent, and after 60 s
 * in any case. */
static void bounded_child(void)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    (void)alarm(60);
}

/* A fake postmaster: a child named "postgres" that ignores SIGQUIT (as a
 * postmaster that is stuck would) with `kids` children named "postgres"
 * too, each ignoring SIGQUIT when `stubborn`. Returns its PID once the
 * children run. */
static pid_t fake_postmaster(int kids, bool stubborn)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        bounded_child();
        (void)prctl(PR_SET_NAME, "postgres", 0, 0, 0);
        (void)signal(SIGQUIT, SIG_IGN);
        for (int i = 0; i < kids; i++) {
            pid_t k = fork();
            if (k == 0) {
                bounded_child();
                if (!stubborn) {
                    (void)signal(SIGQUIT, SIG_DFL);
                }
                for (;;) {
                    pause();
                }
            }
        }
        (void)!write(ready[1], "x", 1);
        for (;;) {
            pause();
        }
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

/* A fake postmaster working in dir (as a postmaster works in its data
 * directory) with one child there. */
static pid_t fake_postmaster_in(const char *dir)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        bounded_child();
        if (chdir(dir) < 0) {
            _exit(1);
        }
        (void)prctl(PR_SET_NAME, "postgres", 0, 0, 0);
        if (fork() == 0) {
            bounded_child();
            for (;;) {
                pause();
            }
        }
        (void)!write(ready[1], "x", 1);
        for (;;) {
            pause();
        }
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void write_pidfile(const char *dir, pid_t pid, long long start)
{
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%d\n%s\n%lld\n5432\n/tmp\n*\n  5432001  3\nready   \n", (int)pid, dir, start);
    fclose(f);
}

static void test_find(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-postmaster-XXXXXX";
    assert_non_null(mkdtemp(dir));
    PmProc pm;
    PmNotFound why;
    pid_t named;
    assert_int_equal(pm_find(dir, &pm, &why, &named), -ESRCH);
    assert_int_equal(why, PM_NO_FILE);
    assert_int_equal(named, 0);

    pid_t fake = fake_postmaster(0, true);
    ProcStat s;
    assert_int_equal(proc_stat_read(fake, &s), 0);
    long long started = (long long)proc_start_epoch(s.start_ticks);

    write_pidfile(dir, fake, started);
    assert_int_equal(pm_find(dir, &pm, &why, &named), 0);
    assert_int_equal(why, PM_FOUND);
    assert_int_equal(pm.pid, fake);
    assert_int_equal(pm.start_ticks, s.start_ticks);
    assert_true(pm_proc_running(&pm));
    /* the same PID with another start time: a process that is not this one */
    PmProc other = { .pid = fake, .start_ticks = s.start_ticks + 1 };
    assert_false(pm_proc_running(&other));

    /* a stale file of another instance whose PID is now a postgres process
     * started a minute later: not ours */
    write_pidfile(dir, fake, started - 60);
    assert_int_equal(pm_find(dir, &pm, &why, &named), -ESRCH);
    assert_int_equal(why, PM_OTHER_START);
    assert_int_equal(named, fake);
    /* ... unless it works in this data directory and is no backend there:
     * then the wall clock was stepped since it started, and it is ours */
    pid_t here = fake_postmaster_in(dir);
    ProcStat hs;
    assert_int_equal(proc_stat_read(here, &hs), 0);
    write_pidfile(dir, here, started - 60);
    assert_int_equal(pm_find(dir, &pm, &why, &named), 0);
    assert_int_equal(pm.pid, here);
    /* a backend of it (its child, also in the data directory) is not */
    PmProc here_proc = { .pid = here, .start_ticks = hs.start_ticks };
    PmProc kid;
    assert_int_equal(pm_children(&here_proc, &kid, 1, NULL), 1);
    write_pidfile(dir, kid.pid, started - 60);
    assert_int_equal(pm_find(dir, &pm, &why, &named), -ESRCH);
    assert_int_equal(why, PM_OTHER_START);
    kill(here, SIGKILL);
    kill(kid.pid, SIGKILL);
    assert_int_equal(waitpid(here, NULL, 0), here);
    /* ... and a file without a start time cannot tell: found (Patroni too) */
    write_pidfile(dir, fake, 0);
    assert_int_equal(pm_find(dir, &pm, &why, NULL), 0);

    /* this test process: alive, not a postgres */
    write_pidfile(dir, getpid(), started);
    assert_int_equal(pm_find(dir, &pm, &why, NULL), -ESRCH);
    assert_int_equal(why, PM_NOT_POSTGRES);

    kill(fake, SIGKILL);
    assert_int_equal(waitpid(fake, NULL, 0), fake);
    write_pidfile(dir, fake, started);
    assert_int_equal(pm_find(dir, &pm, &why, NULL), -ESRCH);
    assert_int_equal(why, PM_GONE);

    write_pidfile(dir, -(int)getpid(), 0);
    assert_int_equal(pm_find(dir, &pm, &why, NULL), -ESRCH);
    assert_int_equal(why, PM_SINGLE_USER);

    char path[256];
    (void)snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "garbage\n");
    fclose(f);
    assert_int_equal(pm_find(dir, &pm, &why, NULL), -ESRCH);
    assert_int_equal(why, PM_BAD_FILE);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_set_aside_stale(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-postmaster-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], aside[256];
    (void)snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
    (void)snprintf(aside, sizeof(aside), "%s/postmaster.pid.stale", dir);
    pid_t named = 0;
    assert_int_equal(pm_set_aside_stale(dir, &named), 0); /* no file */

    pid_t fake = fake_postmaster(0, true);
    ProcStat s;
    assert_int_equal(proc_stat_read(fake, &s), 0);
    long long started = (long long)proc_start_epoch(s.start_ticks);
    /* ours: left alone */
    write_pidfile(dir, fake, started);
    assert_int_equal(pm_set_aside_stale(dir, &named), 0);
    assert_int_equal(access(path, F_OK), 0);
    /* another instance's (a postgres started at another time): set aside,
     * the process untouched */
    write_pidfile(dir, fake, started - 3600);
    assert_int_equal(pm_set_aside_stale(dir, &named), 1);
    assert_int_equal(named, fake);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(aside, F_OK), 0);
    assert_int_equal(proc_stat_read(fake, &s), 0);
    assert_int_equal(s.state == 'S' || s.state == 'R', true);
    /* another program's PID: set aside too */
    write_pidfile(dir, getpid(), started);
    assert_int_equal(pm_set_aside_stale(dir, &named), 1);
    assert_int_equal(named, getpid());
    /* a dead PID: PostgreSQL takes such a file over itself */
    kill(fake, SIGKILL);
    assert_int_equal(waitpid(fake, NULL, 0), fake);
    write_pidfile(dir, fake, started);
    assert_int_equal(pm_set_aside_stale(dir, &named), 0);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(unlink(aside), 0);
    assert_int_equal(rmdir(dir), 0);
}

static PmProc proc_of(pid_t pid)
{
    ProcStat s;
    assert_int_equal(proc_stat_read(pid, &s), 0);
    return (PmProc){ .pid = pid, .start_ticks = s.start_ticks };
}

/* Processes named name that run (not zombies). */
static int count_named(const char *name)
{
    int n = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        ProcStat s;
        if (*end || pid <= 0 || proc_stat_read((pid_t)pid, &s) < 0) {
            continue;
        }
        n += strcmp(s.comm, name) == 0 && s.state != 'Z' && s.state != 'X';
    }
    closedir(d);
    return n;
}

/* A fake postmaster that forks a child every half millisecond (as a busy
 * one forks backends), the children without PR_SET_PDEATHSIG, so that one
 * missed by the kill would outlive it, named `kid`. */
static pid_t forking_postmaster(const char *kid)
{
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        bounded_child();
        (void)prctl(PR_SET_NAME, "postgres", 0, 0, 0);
        for (int i = 0; i < 20000; i++) { /* bounded: 10 s */
            if (fork() == 0) {
                (void)alarm(30);
                (void)prctl(PR_SET_NAME, kid, 0, 0, 0);
                for (;;) {
                    pause();
                }
            }
            if (i == 3) {
                (void)!write(ready[1], "x", 1);
            }
            struct timespec ts = { .tv_nsec = 500 * 1000 };
            nanosleep(&ts, NULL);
        }
        for (;;) {
            pause();
        }
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void test_kill_now(void **state)
{
    (void)state;
    /* running, ignoring SIGQUIT, two children ignoring it too: all three
     * SIGKILLed, all gone, nothing waited for first */
    pid_t fake = fake_postmaster(2, true);
    PmProc pm = proc_of(fake);
    PmProc kids[8];
    bool truncated = true;
    assert_int_equal(pm_children(&pm, kids, 8, &truncated), 2);
    assert_false(truncated);
    assert_int_equal(pm_children(&pm, kids, 1, &truncated), 1);
    assert_true(truncated);
    assert_int_equal(pm_children(&pm, kids, 8, NULL), 2);
    PmStopReport rep;
    assert_int_equal(pm_kill_now(&pm, 1000 * 1000, &rep), 0);
    assert_int_equal(rep.processes, 3);
    assert_false(rep.stopped_found);
    assert_int_equal(rep.killed, 3);
    assert_int_equal(rep.left, 0);
    assert_true(rep.kill_usec <= rep.took_usec);
    assert_false(pm_proc_running(&pm));
    for (int i = 0; i < 2; i++) {
        assert_false(pm_proc_running(&kids[i]));
    }
    int status;
    assert_int_equal(waitpid(fake, &status, 0), fake);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* stopped (SIGSTOP, as a hung host would leave it): found so, its
     * children (which would quit) killed with it */
    fake = fake_postmaster(2, false);
    pm = proc_of(fake);
    assert_int_equal(pm_children(&pm, kids, 8, NULL), 2);
    assert_int_equal(kill(fake, SIGSTOP), 0);
    for (int i = 0; i < 100; i++) { /* bounded: 1 s */
        ProcStat s;
        if (proc_stat_read(fake, &s) == 0 && s.state == 'T') {
            break;
        }
        struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_int_equal(pm_kill_now(&pm, 1000 * 1000, &rep), 0);
    assert_true(rep.stopped_found);
    assert_int_equal(rep.killed, 3);
    assert_int_equal(rep.left, 0);
    for (int i = 0; i < 2; i++) {
        assert_false(pm_proc_running(&kids[i]));
    }
    assert_int_equal(waitpid(fake, NULL, 0), fake);

    /* gone already: nothing to do */
    assert_int_equal(pm_kill_now(&pm, 1000 * 1000, &rep), 0);
    assert_int_equal(rep.killed, 0);
    assert_int_equal(rep.left, 0);

    /* forking all the time: no child it made before it stopped outlives
     * it, whichever fork was in flight when SIGSTOP came (five runs) */
    char kid[16];
    snprintf(kid, sizeof(kid), "pmkid%d", (int)(getpid() % 100000));
    for (int run = 0; run < 5; run++) {
        fake = forking_postmaster(kid);
        pm = proc_of(fake);
        assert_int_equal(pm_kill_now(&pm, 1000 * 1000, &rep), 0);
        assert_int_equal(rep.left, 0);
        assert_true(rep.processes >= 5);
        assert_int_equal(waitpid(fake, NULL, 0), fake);
        /* the children are reparented and reaped by init: zombies do not count */
        assert_int_equal(count_named(kid), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_stat_parse),
        cmocka_unit_test(test_start_matches),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_set_aside_stale),
        cmocka_unit_test(test_kill_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
