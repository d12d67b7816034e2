/* The postmaster found and stopped for sure (postmaster.h). Nothing here
 * allocates: /proc is read into stack buffers and listed with getdents64. */
#include "postmaster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "pgprobe.h"

#define PROC_STAT_TEXT_MAX 1024
#define PM_STEP_USEC       (10 * 1000ULL) /* polling step of the bounded waits */

int proc_stat_parse(const char *text, ProcStat *ret)
{
    if (!text || !ret) {
        return -EINVAL;
    }
    /* "pid (comm) S ppid ...": comm may hold ')' itself, so take the last one */
    const char *open_paren = strchr(text, '(');
    const char *close_paren = strrchr(text, ')');
    if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] != ' ' ||
        !close_paren[2]) {
        return -EINVAL;
    }
    ProcStat s = { 0 };
    size_t len = (size_t)(close_paren - open_paren - 1);
    if (len >= sizeof(s.comm)) {
        len = sizeof(s.comm) - 1;
    }
    memcpy(s.comm, open_paren + 1, len);
    s.state = close_paren[2];
    /* fields from 3 (state) on are separated by single spaces: ppid is the
     * 4th, starttime the 22nd */
    const char *p = close_paren + 2;
    for (int field = 3; field <= 22; field++) {
        if (field == 4 || field == 22) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(p, &end, 10);
            if (errno != 0 || end == p || (*end != ' ' && *end != '\n' && *end != '\0')) {
                return -EINVAL;
            }
            if (field == 4) {
                s.ppid = (pid_t)v;
            } else {
                s.start_ticks = (uint64_t)v;
            }
        }
        if (field == 22) {
            break;
        }
        p = strchr(p, ' ');
        if (!p) {
            return -EINVAL;
        }
        p++;
    }
    *ret = s;
    return 0;
}

int proc_stat_read(pid_t pid, ProcStat *ret)
{
    char path[64], buf[PROC_STAT_TEXT_MAX];
    if (pid <= 0) {
        return -ESRCH;
    }
    (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? -ESRCH : -EIO;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd);
    if (n <= 0) {
        return n == 0 ? -ESRCH : -EIO; /* a process that just exited reads empty */
    }
    buf[n] = '\0';
    return proc_stat_parse(buf, ret) < 0 ? -EIO : 0;
}

double proc_start_epoch(uint64_t start_ticks)
{
    /* the start time counts from boot (CLOCK_BOOTTIME since Linux 5.5,
     * CLOCK_MONOTONIC before: the same unless the machine slept) */
    struct timespec real, boot;
    (void)clock_gettime(CLOCK_REALTIME, &real);
    (void)clock_gettime(CLOCK_BOOTTIME, &boot);
    double boot_epoch =
        (double)(real.tv_sec - boot.tv_sec) + (double)(real.tv_nsec - boot.tv_nsec) / 1e9;
    long hz = sysconf(_SC_CLK_TCK);
    return boot_epoch + (double)start_ticks / (double)(hz > 0 ? hz : 100);
}

bool pm_start_matches(double proc_epoch, int64_t file_epoch)
{
    return file_epoch == 0 || fabs(proc_epoch - (double)file_epoch) <= PM_START_TOLERANCE_SEC;
}

static bool state_runs(char state)
{
    return state != 'Z' && state != 'X' && state != 'x';
}

bool pm_proc_running(const PmProc *p)
{
    ProcStat s;
    if (!p || p->pid <= 0 || proc_stat_read(p->pid, &s) < 0) {
        return false;
    }
    return s.start_ticks == p->start_ticks && state_runs(s.state);
}

const char *pm_not_found_to_string(PmNotFound w)
{
    switch (w) {
    case PM_FOUND:
        return "found";
    case PM_NO_FILE:
        return "no postmaster.pid";
    case PM_BAD_FILE:
        return "postmaster.pid is malformed";
    case PM_SINGLE_USER:
        return "a single-user backend's postmaster.pid";
    case PM_GONE:
        return "the process postmaster.pid names is gone";
    case PM_NOT_POSTGRES:
        return "the process postmaster.pid names is not postgres";
    case PM_OTHER_START:
        return "the postgres process postmaster.pid names started at another time (another "
               "instance's)";
    case PM_SELF_OR_PARENT:
        return "postmaster.pid names this process or its parent";
    }
    return "?";
}

/* pid's working directory is dir (a postmaster and its processes chdir to
 * the data directory; compared by device and inode, so symlinks in the
 * configured path do not matter). */
static bool cwd_is(pid_t pid, const struct stat *dir)
{
    char path[64];
    struct stat st;
    (void)snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
    return stat(path, &st) == 0 && st.st_dev == dir->st_dev && st.st_ino == dir->st_ino;
}

/* A postgres process whose start time does not match the file's is still
 * this data directory's postmaster when it works in the data directory and
 * its parent is not a postgres process there (a backend's parent is its
 * postmaster): the wall clock was stepped since it started, which moves
 * the start time computed from /proc. Without this the agent would take
 * its own postmaster for another instance's after an NTP step of more than
 * PM_START_TOLERANCE_SEC (Patroni 3.0.2 does). */
static bool postmaster_of(const char *data_dir, pid_t pid, pid_t ppid)
{
    struct stat dir;
    if (stat(data_dir, &dir) < 0 || !cwd_is(pid, &dir)) {
        return false;
    }
    ProcStat parent;
    bool parent_ours =
        proc_stat_read(ppid, &parent) == 0 &&
        (strcmp(parent.comm, "postgres") == 0 || strcmp(parent.comm, "postmaster") == 0) &&
        cwd_is(ppid, &dir);
    return !parent_ours;
}

int pm_find(const char *data_dir, PmProc *ret, PmNotFound *ret_why, pid_t *ret_file_pid)
{
    PgPostmasterPid f = { 0 };
    PmNotFound why = PM_FOUND;
    ProcStat s = { 0 };
    int r = pgprobe_read_postmaster_pid(data_dir, &f);
    if (r < 0) {
        why = r == -EINVAL ? PM_BAD_FILE : PM_NO_FILE;
        f.pid = 0;
    } else if (f.standalone) {
        why = PM_SINGLE_USER;
    } else if (proc_stat_read(f.pid, &s) < 0 || !state_runs(s.state)) {
        why = PM_GONE;
    } else if (strcmp(s.comm, "postgres") != 0 && strcmp(s.comm, "postmaster") != 0) {
        why = PM_NOT_POSTGRES;
    } else if (!pm_start_matches(proc_start_epoch(s.start_ticks), f.start_time) &&
               !postmaster_of(data_dir, f.pid, s.ppid)) {
        why = PM_OTHER_START;
    } else if (f.pid == getpid() || f.pid == getppid()) {
        why = PM_SELF_OR_PARENT;
    }
    if (ret_why) {
        *ret_why = why;
    }
    if (ret_file_pid) {
        *ret_file_pid = f.pid;
    }
    if (why != PM_FOUND) {
        return -ESRCH;
    }
    *ret = (PmProc){ .pid = f.pid, .start_ticks = s.start_ticks };
    return 0;
}

static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = read(fd, buf, size - 1);
    int e = errno;
    (void)close(fd);
    if (n < 0) {
        return -e;
    }
    buf[n] = '\0';
    return n;
}

int pm_set_aside_stale(const char *data_dir, pid_t *ret_named)
{
    PmProc pm;
    PmNotFound why;
    pid_t named = 0;
    if (pm_find(data_dir, &pm, &why, &named) == 0 ||
        (why != PM_NOT_POSTGRES && why != PM_OTHER_START)) {
        return 0;
    }
    char path[4096], aside[4096 + 16], before[4096], now[4096];
    int w = snprintf(path, sizeof(path), "%s/postmaster.pid", data_dir);
    if (w < 0 || (size_t)w >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    (void)snprintf(aside, sizeof(aside), "%s.stale", path);
    ssize_t n = read_small(path, before, sizeof(before));
    if (n < 0) {
        return n == -ENOENT ? 0 : (int)n;
    }
    /* judged on these bytes: the PID still names the same kind of process */
    if (pm_find(data_dir, &pm, &why, &named) == 0 ||
        (why != PM_NOT_POSTGRES && why != PM_OTHER_START)) {
        return 0;
    }
    ssize_t m = read_small(path, now, sizeof(now));
    if (m != n || memcmp(before, now, (size_t)n) != 0) {
        return 0; /* rewritten meanwhile: look again at the next start */
    }
    if (rename(path, aside) < 0) {
        return -errno;
    }
    if (ret_named) {
        *ret_named = named;
    }
    return 1;
}

/* The layout getdents64(2) fills (glibc before 2.30 has no wrapper). */
struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static bool all_digits(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

/* Adds child to out (pid, start time) when its stat names p as parent and
 * it runs: a PID read from a listing may have been reaped and reused. */
static void add_child(const PmProc *p, pid_t pid, PmProc *out, size_t max, size_t *n,
                      bool *truncated)
{
    ProcStat s;
    if (pid <= 0 || pid == p->pid || proc_stat_read(pid, &s) < 0 || s.ppid != p->pid ||
        !state_runs(s.state)) {
        return;
    }
    if (*n < max) {
        out[(*n)++] = (PmProc){ .pid = pid, .start_ticks = s.start_ticks };
    } else {
        *truncated = true;
    }
}

/* The children the kernel lists for p's main thread
 * (/proc/PID/task/PID/children: a postmaster is single-threaded), one read
 * however many processes the host runs: under CPU starvation a scan of
 * every /proc entry takes the fencing process hundreds of milliseconds.
 * Returns 0 (*n set), or -ENOTSUP when the kernel has no such file
 * (CONFIG_PROC_CHILDREN off) while p runs. */
static int task_children(const PmProc *p, PmProc *out, size_t max, size_t *n, bool *truncated)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)p->pid, (int)p->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* gone: its children (if any are left) have another parent now */
        return pm_proc_running(p) ? -ENOTSUP : 0;
    }
    char buf[PM_CHILDREN_MAX * 8 + 1];
    size_t len = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        len += (size_t)got;
        if (len == sizeof(buf) - 1) {
            *truncated = true;
            break;
        }
    }
    (void)close(fd);
    buf[len] = '\0';
    for (char *c = buf; *c;) {
        char *end;
        long pid = strtol(c, &end, 10);
        if (end == c) {
            break;
        }
        add_child(p, (pid_t)pid, out, max, n, truncated);
        c = end;
    }
    return 0;
}

size_t pm_children(const PmProc *p, PmProc *out, size_t max, bool *ret_truncated)
{
    size_t n = 0;
    bool truncated = false;
    if (task_children(p, out, max, &n, &truncated) == -ENOTSUP) {
        int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) {
            _Alignas(struct linux_dirent64) char buf[8192];
            for (;;) {
                long got = syscall(SYS_getdents64, dir, buf, sizeof(buf));
                if (got <= 0) {
                    break;
                }
                for (long off = 0; off < got;) {
                    struct linux_dirent64 *d = (struct linux_dirent64 *)(void *)(buf + off);
                    off += d->d_reclen;
                    if (all_digits(d->d_name)) {
                        add_child(p, (pid_t)strtol(d->d_name, NULL, 10), out, max, &n, &truncated);
                    }
                }
            }
            (void)close(dir);
        }
    }
    if (ret_truncated) {
        *ret_truncated = truncated;
    }
    return n;
}

static size_t count_running(const PmProc *pm, const PmProc *kids, size_t n)
{
    size_t left = pm_proc_running(pm) ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        left += pm_proc_running(&kids[i]) ? 1 : 0;
    }
    return left;
}

static void sleep_usec(uint64_t usec)
{
    struct timespec ts = { .tv_sec = (time_t)(usec / 1000000),
                           .tv_nsec = (long)(usec % 1000000) * 1000 };
    (void)nanosleep(&ts, NULL);
}

/* Polls until none runs or wait_usec passed; returns how many still run. */
static size_t wait_gone(const PmProc *pm, const PmProc *kids, size_t n, uint64_t wait_usec)
{
    uint64_t end = clock_monotonic_usec() + wait_usec;
    for (;;) {
        size_t left = count_running(pm, kids, n);
        if (left == 0 || clock_monotonic_usec() >= end) {
            return left;
        }
        sleep_usec(PM_STEP_USEC);
    }
}

/* A signal to p if it is still that process (a PID reused since is not). */
static bool signal_proc(const PmProc *p, int sig)
{
    return pm_proc_running(p) && kill(p->pid, sig) == 0;
}

static bool proc_stopped(const PmProc *p)
{
    ProcStat s;
    return proc_stat_read(p->pid, &s) == 0 && s.start_ticks == p->start_ticks &&
           (s.state == 'T' || s.state == 't');
}

static bool known(const PmProc *kids, size_t n, const PmProc *k)
{
    for (size_t i = 0; i < n; i++) {
        if (kids[i].pid == k->pid && kids[i].start_ticks == k->start_ticks) {
            return true;
        }
    }
    return false;
}

int pm_kill_now(const PmProc *pm, uint64_t kill_wait_usec, PmStopReport *ret)
{
    PmStopReport rep = { 0 };
    uint64_t t0 = clock_monotonic_usec();
    uint64_t end = t0 + kill_wait_usec;
    int r = 0;
    rep.stopped_found = proc_stopped(pm);
    /* suspended, it forks nothing more and restarts nothing it loses */
    if (pm_proc_running(pm) && kill(pm->pid, SIGSTOP) < 0 && errno != ESRCH) {
        r = -errno;
    }
    PmProc kids[PM_CHILDREN_MAX];
    size_t n = 0;
    /* every child, as soon as it is listed: a backend that is SIGKILLed
     * never returns to user space, so it acknowledges nothing more. Until
     * the postmaster is seen stopped, a fork it was in may still add one:
     * list again (bounded by the wait). */
    for (;;) {
        bool settled = !pm_proc_running(pm) || proc_stopped(pm);
        PmProc found[PM_CHILDREN_MAX];
        size_t m = pm_children(pm, found, PM_CHILDREN_MAX, NULL);
        for (size_t i = 0; i < m; i++) {
            if (n < PM_CHILDREN_MAX && !known(kids, n, &found[i])) {
                kids[n++] = found[i];
                if (signal_proc(&found[i], SIGKILL)) {
                    rep.killed++;
                    if (rep.first_kill_usec == 0) {
                        rep.first_kill_usec = clock_monotonic_usec() - t0;
                    }
                }
            }
        }
        if (settled || clock_monotonic_usec() >= end) {
            break;
        }
        sleep_usec(PM_STEP_USEC);
    }
    rep.kill_usec = clock_monotonic_usec() - t0;
    if (signal_proc(pm, SIGKILL)) {
        rep.killed++;
        if (rep.first_kill_usec == 0) {
            rep.first_kill_usec = rep.kill_usec;
        }
    }
    rep.processes = n + 1;
    uint64_t now = clock_monotonic_usec();
    rep.left = wait_gone(pm, kids, n, end > now ? end - now : 0);
    rep.took_usec = clock_monotonic_usec() - t0;
    if (ret) {
        *ret = rep;
    }
    if (rep.left == 0) {
        return 0;
    }
    return r < 0 && rep.killed == 0 ? r : -EBUSY;
}
