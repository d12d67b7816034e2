/* Child processes the agent runs: initdb, pg_ctl start/stop, pg_basebackup.
 * One job at a time, each in its own process group with a deadline; its end
 * (exit, signal, or the deadline's SIGKILL) wakes the loop. The HA decision
 * sees the job as running, then succeeded or failed, exactly once. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "clock.h"

static const char *const job_kind_table[_AGENT_JOB_KIND_MAX] = {
    [AGENT_JOB_NONE] = "none",
    [AGENT_JOB_INITDB] = "initdb",
    [AGENT_JOB_START] = "start",
    [AGENT_JOB_STOP] = "stop",
    [AGENT_JOB_BASEBACKUP] = "basebackup",
    [AGENT_JOB_REWIND] = "rewind",
    [AGENT_JOB_RESTART] = "restart",
};

const char *agent_job_kind_to_string(AgentJobKind k)
{
    return k >= 0 && k < _AGENT_JOB_KIND_MAX ? job_kind_table[k] : NULL;
}

/* In the child: default signal mask, own process group, PGPASSFILE. */
static _noreturn_ void exec_child(const Agent *a, char *const *argv)
{
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    (void)setpgid(0, 0);
    (void)setenv("PGPASSFILE", a->pg.pgpass, 1);
    /* tools like initdb print to stdout: keep it with the agent's log */
    (void)dup2(STDERR_FILENO, STDOUT_FILENO);
    if (chdir("/") < 0) {
        _exit(127);
    }
    execv(argv[0], argv);
    fprintf(stderr, "dbagent: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void job_finished(Agent *a, bool ok, const char *how)
{
    AgentJob *j = &a->job;
    j->child = sd_event_source_unref(j->child);
    j->timeout = sd_event_source_unref(j->timeout);
    j->finished = true;
    j->ok = ok;
    j->pid = 0;
    if (j->kind == AGENT_JOB_INITDB) {
        (void)unlink(a->pg.pwfile);
    }
    if (ok) {
        log_info("%s finished", agent_job_kind_to_string(j->kind));
    } else {
        log_error("%s failed: %s", agent_job_kind_to_string(j->kind), how);
    }
    agent_callbacks_job(a, j->kind, ok);
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata)
{
    (void)s;
    Agent *a = userdata;
    char how[64];
    bool ok = si->si_code == CLD_EXITED && si->si_status == 0;
    if (si->si_code == CLD_EXITED) {
        snprintf(how, sizeof(how), "exit status %d", si->si_status);
    } else {
        snprintf(how, sizeof(how), "killed by signal %d%s", si->si_status,
                 a->job.killed ? " at its deadline" : "");
    }
    job_finished(a, ok, how);
    /* decide now, not at the next loop_wait */
    uint64_t one = 1;
    (void)!write(a->wake_fd, &one, sizeof(one));
    return 0;
}

static int on_job_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
    (void)s;
    (void)usec;
    Agent *a = userdata;
    if (a->job.pid > 0) {
        log_error("%s did not finish in time: killing it", agent_job_kind_to_string(a->job.kind));
        a->job.killed = true;
        (void)kill(-a->job.pid, SIGKILL);
    }
    return 0;
}

int agent_job_start(Agent *a, AgentJobKind kind, char *const *argv, int timeout_sec)
{
    if (a->job.kind != AGENT_JOB_NONE && !a->job.finished) {
        return log_error_errno(-EBUSY, "cannot start %s: %s is running",
                               agent_job_kind_to_string(kind),
                               agent_job_kind_to_string(a->job.kind));
    }
    a->job = (AgentJob){ .kind = kind };
    pid_t pid = fork();
    if (pid < 0) {
        a->job = (AgentJob){ 0 };
        return log_error_errno(-errno, "fork: %m");
    }
    if (pid == 0) {
        exec_child(a, argv);
    }
    (void)setpgid(pid, pid); /* also here: no race with the kill below */
    a->job.pid = pid;
    int r = sd_event_add_child(a->event, &a->job.child, pid, WEXITED, on_child, a);
    if (r >= 0) {
        uint64_t deadline = clock_monotonic_usec() + (uint64_t)timeout_sec * 1000000ULL;
        r = sd_event_add_time(a->event, &a->job.timeout, CLOCK_MONOTONIC, deadline, 0,
                              on_job_timeout, a);
    }
    if (r < 0) {
        (void)kill(-pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        a->job.child = sd_event_source_unref(a->job.child);
        a->job = (AgentJob){ 0 };
        return log_error_errno(r, "watching %s: %m", agent_job_kind_to_string(kind));
    }
    log_info("running %s (pid %d, deadline %d s)", agent_job_kind_to_string(kind), (int)pid,
             timeout_sec);
    return 0;
}

void agent_job_kill(Agent *a)
{
    AgentJob *j = &a->job;
    if (j->pid > 0) {
        log_warning("killing the running %s (pid %d)", agent_job_kind_to_string(j->kind),
                    (int)j->pid);
        (void)kill(-j->pid, SIGKILL);
        (void)waitpid(j->pid, NULL, 0);
    }
    j->child = sd_event_source_unref(j->child);
    j->timeout = sd_event_source_unref(j->timeout);
    *j = (AgentJob){ 0 };
}

int agent_run_sync(Agent *a, char *const *argv, int timeout_sec)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        exec_child(a, argv);
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
