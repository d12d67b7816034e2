#include "jobs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "inherit.h"
#include "log.h"
#include "macro.h"

static const char *const job_kind_table[_JOB_KIND_MAX] = {
    [JOB_NONE] = "none",
    [JOB_INITDB] = "initdb",
    [JOB_START] = "start",
    [JOB_STOP] = "stop",
    [JOB_BASEBACKUP] = "basebackup",
    [JOB_REWIND] = "rewind",
    [JOB_RESTART] = "restart",
    [JOB_POST_BOOTSTRAP] = "post_bootstrap",
    [JOB_REPLICA_METHOD] = "replica_method",
    [JOB_PRE_PROMOTE] = "pre_promote",
};

const char *job_kind_to_string(JobKind k)
{
    return k >= 0 && k < _JOB_KIND_MAX ? job_kind_table[k] : NULL;
}

/* In the child: default signal mask, own process group, only stdin, stdout
 * and stderr open, the environment jobs_set_pgpass built (no allocation
 * here: the agent has threads). */
/* In the child, before its own command: `before` runs in the same process
 * group to its end or for timeout_sec (then SIGKILL); its exit status is
 * only reported (Patroni ignores it). Async-signal-safe calls only. */
static void run_before(const Jobs *j, char *const *before, int timeout_sec)
{
    static char *const empty[] = { NULL };
    pid_t pid = fork();
    if (pid < 0) {
        dprintf(STDERR_FILENO, "dbagent: before_stop: fork failed\n");
        return;
    }
    if (pid == 0) {
        execve(before[0], before, j->env ? j->env : empty);
        dprintf(STDERR_FILENO, "dbagent: cannot run %s\n", before[0]);
        _exit(127);
    }
    /* bounded: timeout_sec in 10 ms steps */
    long steps = (long)timeout_sec * 100;
    for (long i = 0; i <= steps; i++) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            dprintf(STDERR_FILENO, "dbagent: before_stop %s exited with %d\n", before[0],
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            return;
        }
        if (w < 0 && errno != EINTR) {
            return;
        }
        struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    dprintf(STDERR_FILENO, "dbagent: before_stop %s killed after %d s\n", before[0], timeout_sec);
}

/* In the child: default signal mask, own process group, only stdin, stdout
 * and stderr open, the environment jobs_set_pgpass built (no allocation
 * here: the agent has threads); `before` first when not NULL. */
static _noreturn_ void exec_child(const Jobs *j, char *const *before, int before_timeout_sec,
                                  char *const *argv)
{
    static char *const empty[] = { NULL };
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)setpgid(0, 0);
    /* tools like initdb print to stdout: keep it with the agent's log */
    (void)dup2(STDERR_FILENO, STDOUT_FILENO);
    inherit_close_fds();
    if (chdir("/") < 0) {
        _exit(127);
    }
    if (before) {
        run_before(j, before, before_timeout_sec);
    }
    execve(argv[0], argv, j->env ? j->env : empty);
    dprintf(STDERR_FILENO, "dbagent: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void job_finished(Jobs *j, bool ok, const char *how)
{
    j->child = sd_event_source_unref(j->child);
    j->timeout = sd_event_source_unref(j->timeout);
    j->finished = true;
    j->ok = ok;
    j->pid = 0;
    if (ok) {
        log_info("%s finished", job_kind_to_string(j->kind));
    } else {
        log_error("%s failed: %s", job_kind_to_string(j->kind), how);
    }
    if (j->on_end) {
        j->on_end(j->kind, ok, j->userdata);
    }
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata)
{
    (void)s;
    Jobs *j = userdata;
    char how[64];
    bool ok = si->si_code == CLD_EXITED && si->si_status == 0;
    if (si->si_code == CLD_EXITED) {
        snprintf(how, sizeof(how), "exit status %d", si->si_status);
    } else {
        snprintf(how, sizeof(how), "killed by signal %d%s", si->si_status,
                 j->killed ? " at its deadline" : "");
    }
    job_finished(j, ok, how);
    /* decide now, not at the next loop_wait */
    ticker_schedule(j->ticker, clock_monotonic_usec());
    return 0;
}

static int on_job_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
    (void)s;
    (void)usec;
    Jobs *j = userdata;
    if (j->pid > 0) {
        log_error("%s did not finish in time: killing it", job_kind_to_string(j->kind));
        j->killed = true;
        (void)kill(-j->pid, SIGKILL);
    }
    return 0;
}

static void job_clear(Jobs *j)
{
    j->child = sd_event_source_unref(j->child);
    j->timeout = sd_event_source_unref(j->timeout);
    j->kind = JOB_NONE;
    j->pid = 0;
    j->finished = j->ok = j->killed = false;
}

int jobs_start(Jobs *j, JobKind kind, char *const *argv, int timeout_sec)
{
    return jobs_start_after(j, kind, NULL, 0, argv, timeout_sec);
}

int jobs_start_after(Jobs *j, JobKind kind, char *const *before, int before_timeout_sec,
                     char *const *argv, int timeout_sec)
{
    if (before) {
        timeout_sec += before_timeout_sec;
    }
    if (j->kind != JOB_NONE && !j->finished) {
        return log_error_errno(-EBUSY, "cannot start %s: %s is running", job_kind_to_string(kind),
                               job_kind_to_string(j->kind));
    }
    job_clear(j);
    j->kind = kind;
    pid_t pid = fork();
    if (pid < 0) {
        job_clear(j);
        return log_error_errno(-errno, "fork: %m");
    }
    if (pid == 0) {
        exec_child(j, before, before_timeout_sec, argv);
    }
    (void)setpgid(pid, pid); /* also here: no race with the kill below */
    j->pid = pid;
    int r = sd_event_add_child(j->event, &j->child, pid, WEXITED, on_child, j);
    if (r >= 0) {
        uint64_t deadline = clock_monotonic_usec() + (uint64_t)timeout_sec * 1000000ULL;
        r = sd_event_add_time(j->event, &j->timeout, CLOCK_MONOTONIC, deadline, 0, on_job_timeout,
                              j);
    }
    if (r < 0) {
        (void)kill(-pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        job_clear(j);
        return log_error_errno(r, "watching %s: %m", job_kind_to_string(kind));
    }
    log_info("running %s (pid %d, deadline %d s)", job_kind_to_string(kind), (int)pid, timeout_sec);
    return 0;
}

void jobs_kill(Jobs *j)
{
    if (j->pid > 0) {
        log_warning("killing the running %s (pid %d)", job_kind_to_string(j->kind), (int)j->pid);
        (void)kill(-j->pid, SIGKILL);
        (void)waitpid(j->pid, NULL, 0);
    }
    job_clear(j);
}

int jobs_run_sync(const Jobs *j, char *const *argv, int timeout_sec)
{
    return jobs_run_sync_after(j, NULL, 0, argv, timeout_sec);
}

int jobs_run_sync_after(const Jobs *j, char *const *before, int before_timeout_sec,
                        char *const *argv, int timeout_sec)
{
    if (before) {
        timeout_sec += before_timeout_sec;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        exec_child(j, before, before_timeout_sec, argv);
    }
    /* bounded: timeout_sec in 10 ms steps */
    long steps = (long)timeout_sec * 100;
    for (long i = 0; i <= steps; i++) {
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
        }
        if (w < 0 && errno != EINTR) {
            return -errno;
        }
        struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    (void)kill(-pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    return -ETIMEDOUT;
}

void jobs_init(Jobs *j, sd_event *event, Ticker *ticker, JobEndFn on_end, void *userdata)
{
    *j = (Jobs){ .event = event, .ticker = ticker, .on_end = on_end, .userdata = userdata };
}

void jobs_done(Jobs *j)
{
    jobs_kill(j);
    j->env = inherit_env_free(j->env);
}

int jobs_set_pgpass(Jobs *j, const char *path)
{
    _cleanup_free_ char *var = NULL;
    if (path && asprintf(&var, "PGPASSFILE=%s", path) < 0) {
        return -ENOMEM;
    }
    char *const extra[] = { var, NULL };
    extern char **environ;
    char **env = NULL;
    int r = inherit_env_new(environ, extra, &env);
    if (r < 0) {
        return r;
    }
    inherit_env_free(j->env);
    j->env = env;
    return 0;
}

HaJobResult jobs_result(const Jobs *j)
{
    if (j->kind == JOB_NONE) {
        return HA_JOB_NONE;
    }
    return !j->finished ? HA_JOB_RUNNING : j->ok ? HA_JOB_SUCCEEDED : HA_JOB_FAILED;
}

JobKind jobs_take(Jobs *j, bool *ret_ok)
{
    if (j->kind == JOB_NONE || !j->finished) {
        *ret_ok = false;
        return JOB_NONE;
    }
    JobKind k = j->kind;
    *ret_ok = j->ok;
    job_clear(j);
    return k;
}
