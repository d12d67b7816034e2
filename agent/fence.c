/* The fence process and the agent's handle on it (see fence.h for the
 * protocol). Both sides share one FenceShared through a MAP_SHARED file
 * mapping; every field the other process reads is a lock-free C11 atomic. */
#include "fence.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "inherit.h"
#include "log.h"
#include "pgprobe.h"
#include "postmaster.h"

#define FENCE_MAGIC       UINT64_C(0x45434e4546414844) /* "DHAFENCE" */
#define FENCE_VERSION     1
#define FENCE_BOOT_ID_MAX 40             /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */
#define FENCE_MSG_MAX     512            /* one line the fence process writes to stderr */
#define FENCE_STEP_USEC   (10 * 1000ULL) /* polling step of the bounded waits */
/* EEVDF's shortest slice (100 us): see child_priority() */
#define FENCE_SLICE_NSEC (100 * 1000ULL)
/* fence_fork waits this long at most for its child to take its name */
#define FENCE_NAME_WAIT_USEC (1000 * 1000ULL)
#define FENCE_NAME_STEP_USEC (1000ULL)

/* Fields shared across processes must not need a lock. */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics must be lock-free to be shared between processes");

/* The heartbeat file's layout. The header (magic, version, size, boot_id)
 * and data_dir are written under the file's flock by fence_start() only. */
typedef struct FenceShared {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    char boot_id[FENCE_BOOT_ID_MAX];
    /* fence pid << 32 | agent pid, in one word so that "the agent takes over
     * the fence" and "the fence retires" are one compare-and-swap each: at
     * most one of them wins. */
    _Atomic uint64_t owner;
    _Atomic uint64_t deadline_usec;   /* CLOCK_MONOTONIC; 0: disarmed */
    _Atomic uint64_t exit_pid;        /* the fence pid asked to exit */
    _Atomic uint64_t beat_usec;       /* the fence's last wake-up (informational) */
    _Atomic uint64_t fenced_count;    /* postmasters killed */
    _Atomic uint64_t last_fence_usec; /* when, 0: never */
    _Atomic uint64_t last_postmaster; /* to whom */
    char data_dir[FENCE_PATH_MAX];    /* what the fence guards */
} FenceShared;

struct Fence {
    FenceShared *shared; /* owned: the mapping */
    int fd;              /* owned: the heartbeat file, kept for its flock */
    char *path;          /* owned */
    char *data_dir;      /* owned: absolute */
    pid_t pid;           /* the fence process */
    bool is_child;       /* we forked it, so we reap it */
    bool reused;
};

/* ---- pure helpers ---- */

bool fence_should_fire(bool armed, uint64_t deadline_usec, uint64_t now_usec)
{
    return armed && now_usec >= deadline_usec;
}

uint64_t fence_wait_usec(bool armed, uint64_t deadline_usec, uint64_t now_usec)
{
    if (!armed) {
        return FENCE_IDLE_USEC;
    }
    return now_usec >= deadline_usec ? 0 : deadline_usec - now_usec;
}

bool fence_should_exit(bool exit_requested, bool armed, bool agent_alive, bool term_received)
{
    if (exit_requested) {
        return true;
    }
    return !armed && (!agent_alive || term_received);
}

FenceVerdict fence_verdict(const FenceLocal *l)
{
    if (l->paused && !l->promoting) {
        return FENCE_DISARM;
    }
    if (l->leading && l->has_deadline) {
        return FENCE_ARM;
    }
    if (!l->running) {
        return FENCE_DISARM;
    }
    if (l->promoting) {
        return l->has_deadline ? FENCE_ARM : FENCE_KEEP;
    }
    bool fresh = l->snap_usec > l->maybe_primary_usec;
    if (l->probe_ok && l->in_recovery && fresh) {
        return FENCE_DISARM;
    }
    if (!fresh && l->has_deadline) {
        return FENCE_ARM;
    }
    return FENCE_KEEP;
}

static uint64_t owner_pack(pid_t fence_pid, pid_t agent_pid)
{
    return (uint64_t)(uint32_t)fence_pid << 32 | (uint32_t)agent_pid;
}

static pid_t owner_fence(uint64_t owner)
{
    return (pid_t)(uint32_t)(owner >> 32);
}

static pid_t owner_agent(uint64_t owner)
{
    return (pid_t)(uint32_t)owner;
}

/* ---- /proc (allocation-free: the fence process uses these too) ---- */

/* Alive and not a zombie (a reaped-late or orphaned process counts as dead). */
static bool pid_alive(pid_t pid)
{
    ProcStat st;
    if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM)) {
        return false;
    }
    if (proc_stat_read(pid, &st) < 0) {
        return false;
    }
    return st.state != 'Z' && st.state != 'X' && st.state != 'x';
}

/* Stopped by a signal or a tracer: it cannot fence until resumed. */
static bool pid_stopped(pid_t pid)
{
    ProcStat st;
    return proc_stat_read(pid, &st) == 0 && (st.state == 'T' || st.state == 't');
}

static bool pid_is_fence(pid_t pid)
{
    ProcStat st;
    if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM) || proc_stat_read(pid, &st) < 0) {
        return false;
    }
    return st.state != 'Z' && st.state != 'X' && st.state != 'x' &&
           strcmp(st.comm, FENCE_PROCESS_NAME) == 0;
}

/* ---- the fence process ---- */

/* One line to stderr with write(2): no stdio lock that another thread of the
 * agent might have held when it forked. */
static void _printf_(1, 2) child_say(const char *fmt, ...)
{
    char buf[FENCE_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 2;
    buf[len++] = '\n';
    (void)!write(STDERR_FILENO, buf, len);
}

static void child_fire(FenceShared *sh, const char *data_dir, uint64_t late_usec, uint64_t now)
{
    PmProc pm;
    PmNotFound why;
    pid_t named = 0;
    unsigned long long late_ms = (unsigned long long)(late_usec / 1000);
    if (pm_find(data_dir, &pm, &why, &named) < 0) {
        child_say(
            "fence: agent heartbeat is %llu ms late: no postmaster running in \"%s\" (%s%s%d)",
            late_ms, data_dir, pm_not_found_to_string(why), named ? ": process " : "", (int)named);
        return;
    }
    atomic_fetch_add(&sh->fenced_count, 1);
    atomic_store(&sh->last_fence_usec, now);
    atomic_store(&sh->last_postmaster, (uint64_t)pm.pid);
    child_say("fence: agent heartbeat is %llu ms late: killing postmaster %d and its processes",
              late_ms, (int)pm.pid);
    PmStopReport rep;
    int r = pm_kill_now(&pm, PM_FENCE_KILL_WAIT_USEC, &rep);
    unsigned long long first_ms = (unsigned long long)((late_usec + rep.first_kill_usec) / 1000);
    unsigned long long kill_ms = (unsigned long long)((late_usec + rep.kill_usec) / 1000);
    if (r < 0) {
        child_say("fence: %zu processes of postmaster %d still run after SIGKILL (sent %llu to "
                  "%llu ms after the deadline)",
                  rep.left, (int)pm.pid, first_ms, kill_ms);
        return;
    }
    child_say("fence: postmaster %d%s and %zu processes: SIGKILL %llu to %llu ms after the "
              "deadline, all gone after %llu ms",
              (int)pm.pid, rep.stopped_found ? " (found stopped)" : "", rep.processes - 1, first_ms,
              kill_ms, (unsigned long long)((late_usec + rep.took_usec) / 1000));
}

/* sched_setattr(2)'s struct sched_attr, its first layout (48 bytes; glibc
 * 2.36 declares none, and the kernel's header clashes with <sched.h>). */
typedef struct FenceSchedAttr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
} FenceSchedAttr;

/* The fencing process must run when its deadline comes even while
 * PostgreSQL, in the same control group, takes all the CPU the group may
 * have: with the node held to 2 % of a CPU it woke 0.2 to 1.2 s late (make
 * chaos FAULTS=starve@leader,cut-etcd@leader), more than the margin.
 * SCHED_FIFO (priority 1, which RLIMIT_RTPRIO >= 1 allows, the unit's
 * LimitRTPRIO=1, or CAP_SYS_NICE) is not held back by a CPU quota or by
 * busy backends; the fence sleeps all but microseconds, so it takes
 * nothing from them. Else the shortest slice EEVDF takes (Linux 6.12 and
 * later, unprivileged), which puts its wake-ups ahead of its group's busy
 * tasks: beside eight busy loops held to 2 % of a CPU it halved the
 * lateness (median 1.1 s to 0.6 s); older kernels ignore it. Returns what
 * it got, for the log. */
static const char *child_priority(void)
{
    struct sched_param p = { .sched_priority = 1 };
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &p) == 0) {
        return "real-time priority (SCHED_FIFO 1)";
    }
    FenceSchedAttr a = { .size = sizeof(a),
                         .sched_policy = SCHED_OTHER,
                         .sched_runtime = FENCE_SLICE_NSEC };
    if (syscall(SYS_sched_setattr, 0, &a, 0) == 0) {
        return "no real-time priority (LimitRTPRIO=1 gives it): the shortest time slice";
    }
    return "no real-time priority (LimitRTPRIO=1 gives it)";
}

static _noreturn_ void child_main(FenceShared *sh, const char *data_dir, pid_t agent)
{
    pid_t self = getpid();
    sigset_t wait_set;
    sigemptyset(&wait_set);
    sigaddset(&wait_set, SIGTERM);
    sigaddset(&wait_set, SIGINT);
    sigaddset(&wait_set, FENCE_WAKE_SIGNAL);
    /* SIGTERM/SIGINT and the agent's "look again" are taken with
     * sigtimedwait (the sleep of the loop), everything else unblocked, as a
     * fresh process has it */
    (void)sigprocmask(SIG_SETMASK, &wait_set, NULL);
    struct sigaction dfl = { .sa_handler = SIG_DFL }, ign = { .sa_handler = SIG_IGN };
    (void)sigaction(SIGTERM, &dfl, NULL);
    (void)sigaction(SIGINT, &dfl, NULL);
    (void)sigaction(SIGCHLD, &dfl, NULL);
    (void)sigaction(SIGHUP, &ign, NULL);
    (void)sigaction(SIGPIPE, &ign, NULL);
    (void)setsid();
    (void)prctl(PR_SET_NAME, FENCE_PROCESS_NAME, 0, 0, 0);
    (void)prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    if (chdir("/") < 0) {
        _exit(1);
    }
    /* keep stderr (the agent's log); nothing else of the agent's */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        (void)dup2(null, STDIN_FILENO);
        (void)dup2(null, STDOUT_FILENO);
    }
    inherit_close_fds();
    atomic_store(&sh->owner, owner_pack(self, agent));
    child_say("fence: process %d for \"%s\": %s", (int)self, data_dir, child_priority());

    /* The signals arrive through a signalfd, and the agent's exit through
     * its pidfd, so a disarmed fence sleeps until one of them comes instead
     * of looking every FENCE_IDLE_USEC (which it still does without them:
     * Linux before 5.3). */
    int sig_fd = signalfd(-1, &wait_set, SFD_CLOEXEC | SFD_NONBLOCK);
    int agent_fd = -1;
    pid_t agent_fd_pid = 0; /* whose pidfd agent_fd is (or was, once it exited) */

    bool term = false;
    /* Runs as long as the agent needs it and does not allocate. It sleeps
     * until the deadline it last read (a renewal only moves the deadline
     * later: waking at the old one, it reads the new one and sleeps again),
     * or while disarmed until a signal or the agent's exit; the agent
     * signals it when a deadline comes earlier than the one it sleeps for,
     * or when it arms it. */
    for (;;) {
        uint64_t now = clock_monotonic_usec();
        atomic_store(&sh->beat_usec, now);
        uint64_t owner = atomic_load(&sh->owner);
        if (owner_fence(owner) != self) {
            child_say("fence: replaced by fence process %d: exiting", (int)owner_fence(owner));
            _exit(0);
        }
        uint64_t deadline = atomic_load(&sh->deadline_usec);
        bool armed = deadline != 0;
        if (fence_should_fire(armed, deadline, now)) {
            /* claim this deadline first: an agent that re-armed in between
             * wins, and it is fenced at its new deadline if it is late again */
            if (atomic_compare_exchange_strong(&sh->deadline_usec, &deadline, 0)) {
                child_fire(sh, data_dir, now - deadline, now);
            }
            continue;
        }
        bool exit_requested = atomic_load(&sh->exit_pid) == (uint64_t)self;
        bool agent_alive = pid_alive(owner_agent(owner));
        if (fence_should_exit(exit_requested, armed, agent_alive, term)) {
            if (atomic_compare_exchange_strong(&sh->owner, &owner,
                                               owner_pack(0, owner_agent(owner)))) {
                if (!exit_requested) {
                    child_say("fence: %s and nothing is armed: exiting",
                              agent_alive ? "asked to stop" : "the agent is gone");
                }
                _exit(0);
            }
            continue; /* an agent took the fence over meanwhile */
        }
        /* a pidfd of the agent that owns us now, while it lives (a dead
         * one's stays readable: it is closed, not polled again) */
        if (owner_agent(owner) != agent_fd_pid) {
            if (agent_fd >= 0) {
                (void)close(agent_fd);
            }
            agent_fd_pid = owner_agent(owner);
            agent_fd = agent_alive ? (int)syscall(SYS_pidfd_open, agent_fd_pid, 0) : -1;
        } else if (agent_fd >= 0 && !agent_alive) {
            (void)close(agent_fd);
            agent_fd = -1;
        }
        bool until_woken = !armed && sig_fd >= 0 && agent_fd >= 0;
        uint64_t wait = fence_wait_usec(armed, deadline, now);
        if (sig_fd < 0) {
            struct timespec ts = { .tv_sec = (time_t)(wait / 1000000),
                                   .tv_nsec = (long)(wait % 1000000) * 1000 };
            int sig = sigtimedwait(&wait_set, NULL, &ts);
            term = term || sig == SIGTERM || sig == SIGINT; /* FENCE_WAKE_SIGNAL: look again */
            continue;
        }
        struct pollfd fds[] = { { .fd = sig_fd, .events = POLLIN },
                                { .fd = agent_fd, .events = POLLIN } };
        struct timespec ts = { .tv_sec = (time_t)(wait / 1000000),
                               .tv_nsec = (long)(wait % 1000000) * 1000 };
        (void)ppoll(fds, agent_fd >= 0 ? 2 : 1, until_woken ? NULL : &ts, NULL);
        struct signalfd_siginfo si;
        while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            term = term || si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT;
        }
    }
}

/* ---- the agent's side ---- */

static int read_boot_id(char *buf, size_t size)
{
    buf[0] = '\0';
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = read(fd, buf, size - 1);
    int e = errno;
    (void)close(fd);
    if (n < 0) {
        buf[0] = '\0';
        return -e;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static void sleep_usec(uint64_t usec)
{
    struct timespec ts = { .tv_sec = (time_t)(usec / 1000000),
                           .tv_nsec = (long)(usec % 1000000) * 1000 };
    (void)nanosleep(&ts, NULL);
}

static int lock_file(int fd)
{
    for (uint64_t waited = 0; waited <= FENCE_LOCK_TIMEOUT_USEC; waited += FENCE_STEP_USEC) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            return 0;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            return -errno;
        }
        sleep_usec(FENCE_STEP_USEC);
    }
    return -EBUSY;
}

static int absolute_path(const char *p, char **ret)
{
    char *s;
    if (p[0] == '/') {
        s = strdup(p);
    } else {
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd) {
            return -errno;
        }
        if (asprintf(&s, "%s/%s", cwd, p) < 0) {
            s = NULL;
        }
    }
    if (!s) {
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

/* pid is a fence process: named so, or our own child that has not been
 * reaped (its PID cannot be recycled, and it may not have renamed itself
 * yet). */
static bool fence_is_fence(const Fence *f, pid_t pid)
{
    if (pid > 0 && pid == f->pid && f->is_child) {
        return pid_alive(pid);
    }
    return pid_is_fence(pid);
}

/* A fence that can act: alive and not stopped. (It sleeps until its
 * deadline, so the age of its last wake-up says nothing.) */
static bool fence_responsive(const Fence *f, pid_t pid)
{
    return fence_is_fence(f, pid) && !pid_stopped(pid);
}

/* Reaps our child when it has exited; true when pid is gone. */
static bool fence_gone(Fence *f)
{
    if (f->is_child) {
        pid_t w = waitpid(f->pid, NULL, WNOHANG);
        if (w == f->pid) {
            f->is_child = false;
            return true;
        }
        if (w < 0 && errno == ECHILD) {
            f->is_child = false;
        }
    }
    return !pid_alive(f->pid);
}

static bool fence_wait_gone(Fence *f, uint64_t timeout_usec)
{
    for (uint64_t waited = 0; waited <= timeout_usec; waited += FENCE_STEP_USEC) {
        if (fence_gone(f)) {
            return true;
        }
        sleep_usec(FENCE_STEP_USEC);
    }
    return false;
}

/* With the file locked. */
static int fence_fork(Fence *f)
{
    FenceShared *sh = f->shared;
    pid_t agent = getpid();
    atomic_store(&sh->exit_pid, 0);
    atomic_store(&sh->beat_usec, clock_monotonic_usec());
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        child_main(sh, f->data_dir, agent);
    }
    /* the child stores the same value; whoever is first, it is set before
     * the file is unlocked */
    atomic_store(&sh->owner, owner_pack(pid, agent));
    f->pid = pid;
    f->is_child = true;
    /* Another agent (ours restarted) knows a fence by its name: it must not
     * find our child still under the agent's name and start a second one
     * beside it (seen in CI under load: an armed fence replaced 123 ms after
     * it was forked). Bounded: a child that never renames is replaced by the
     * next fence_ensure. */
    for (uint64_t waited = 0; waited < FENCE_NAME_WAIT_USEC && !pid_is_fence(pid);
         waited += FENCE_NAME_STEP_USEC) {
        sleep_usec(FENCE_NAME_STEP_USEC);
    }
    return 0;
}

/* With the file locked: take over the fence recorded in the file, or start
 * one. */
static int fence_attach_or_fork(Fence *f)
{
    FenceShared *sh = f->shared;
    uint64_t owner = atomic_load(&sh->owner);
    pid_t old = owner_fence(owner);
    bool same_dir = strncmp(sh->data_dir, f->data_dir, sizeof(sh->data_dir)) == 0;
    if (old > 0 && fence_is_fence(f, old)) {
        if (fence_responsive(f, old)) {
            if (!same_dir) {
                return log_error_errno(-EBUSY, "fence process %d in \"%s\" guards \"%.*s\"",
                                       (int)old, f->path, (int)sizeof(sh->data_dir), sh->data_dir);
            }
            if (atomic_compare_exchange_strong(&sh->owner, &owner, owner_pack(old, getpid()))) {
                bool ours = old == f->pid && f->is_child;
                f->pid = old;
                f->is_child = ours;
                f->reused = !ours;
                return 0;
            }
            /* it retired at this very moment: start a new one */
        } else {
            log_warning("fence process %d does not respond: replacing it", (int)old);
            (void)kill(old, SIGKILL);
            if (old == f->pid && f->is_child) {
                (void)fence_wait_gone(f, FENCE_STOP_TIMEOUT_USEC);
            }
        }
    }
    if (!same_dir) {
        /* a deadline set for another directory says nothing about ours */
        atomic_store(&sh->deadline_usec, 0);
        memset(sh->data_dir, 0, sizeof(sh->data_dir));
        memcpy(sh->data_dir, f->data_dir, strlen(f->data_dir));
    }
    return fence_fork(f);
}

static int map_file(Fence *f)
{
    struct stat st;
    char boot_id[FENCE_BOOT_ID_MAX];
    if (fstat(f->fd, &st) < 0) {
        return -errno;
    }
    if (!S_ISREG(st.st_mode)) {
        return -EINVAL;
    }
    bool fresh = st.st_size != (off_t)sizeof(FenceShared);
    if (fresh && (ftruncate(f->fd, 0) < 0 || ftruncate(f->fd, sizeof(FenceShared)) < 0)) {
        return -errno;
    }
    void *m = mmap(NULL, sizeof(FenceShared), PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0);
    if (m == MAP_FAILED) {
        return -errno;
    }
    f->shared = m;
    FenceShared *sh = f->shared;
    (void)read_boot_id(boot_id, sizeof(boot_id));
    if (fresh || sh->magic != FENCE_MAGIC || sh->version != FENCE_VERSION ||
        sh->size != sizeof(FenceShared) ||
        strncmp(sh->boot_id, boot_id, sizeof(sh->boot_id)) != 0) {
        /* new, foreign or from an earlier boot: its PIDs and monotonic times
         * mean nothing now */
        memset(sh, 0, sizeof(*sh));
        memcpy(sh->boot_id, boot_id, strlen(boot_id));
        sh->version = FENCE_VERSION;
        sh->size = sizeof(FenceShared);
        atomic_thread_fence(memory_order_release);
        sh->magic = FENCE_MAGIC;
    }
    return 0;
}

int fence_start(const char *heartbeat_path, const char *data_dir, Fence **ret)
{
    if (!heartbeat_path || !*heartbeat_path || !data_dir || !*data_dir || !ret) {
        return -EINVAL;
    }
    _cleanup_(fence_freep) Fence *f = calloc(1, sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    f->fd = -1;
    f->path = strdup(heartbeat_path);
    if (!f->path) {
        return -ENOMEM;
    }
    int r = absolute_path(data_dir, &f->data_dir);
    if (r < 0) {
        return r;
    }
    if (strlen(f->data_dir) >= FENCE_PATH_MAX) {
        return -ENAMETOOLONG;
    }
    f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f->fd < 0) {
        return log_error_errno(-errno, "cannot open fence heartbeat \"%s\": %m", f->path);
    }
    r = lock_file(f->fd);
    if (r < 0) {
        return log_error_errno(r, "cannot lock fence heartbeat \"%s\": %m", f->path);
    }
    r = map_file(f);
    if (r >= 0) {
        r = fence_attach_or_fork(f);
    }
    (void)flock(f->fd, LOCK_UN);
    if (r < 0) {
        return log_error_errno(r, "cannot start the fence process for \"%s\": %m", f->path);
    }
    uint64_t deadline = atomic_load(&f->shared->deadline_usec);
    if (f->reused) {
        log_info("reusing fence process %d (%s)", (int)f->pid, deadline ? "armed" : "disarmed");
    } else {
        log_info("started fence process %d for \"%s\"%s", (int)f->pid, f->data_dir,
                 deadline ? " (armed by a previous agent)" : "");
    }
    *ret = TAKE_PTR(f);
    return 0;
}

void fence_arm(Fence *f, uint64_t deadline_usec)
{
    if (!f || !f->shared) {
        return;
    }
    uint64_t d = deadline_usec ? deadline_usec : 1;
    if (atomic_load(&f->shared->deadline_usec) == d) {
        return; /* a store would dirty the shared page (a fault, a disk write) for nothing */
    }
    uint64_t was = atomic_exchange(&f->shared->deadline_usec, d);
    /* The fence sleeps until the deadline it read: wake it only when this
     * one is earlier (or it was disarmed). A signal that stays pending is
     * taken by its next sleep, so none is lost. */
    if ((was == 0 || d < was) && f->pid > 0 && fence_is_fence(f, f->pid)) {
        (void)kill(f->pid, FENCE_WAKE_SIGNAL);
    }
}

void fence_disarm(Fence *f)
{
    if (f && f->shared && atomic_load(&f->shared->deadline_usec) != 0) {
        atomic_store(&f->shared->deadline_usec, 0);
    }
}

int fence_ensure(Fence *f)
{
    if (!f || !f->shared) {
        return -EINVAL;
    }
    if (f->is_child && owner_fence(atomic_load(&f->shared->owner)) == f->pid) {
        /* Our unreaped child (its PID cannot be recycled) with no exit or
         * stop to report is alive and not stopped, without reading /proc.
         * WNOWAIT leaves any report to the checks below. */
        siginfo_t si = { 0 };
        if (waitid(P_PID, (id_t)f->pid, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) ==
                0 &&
            (si.si_pid == 0 || si.si_code == CLD_CONTINUED)) {
            return 0;
        }
    }
    bool gone = fence_gone(f);
    if (!gone && owner_fence(atomic_load(&f->shared->owner)) == f->pid &&
        fence_responsive(f, f->pid)) {
        return 0;
    }
    pid_t old = f->pid;
    int r = lock_file(f->fd);
    if (r < 0) {
        return log_error_errno(r, "cannot lock fence heartbeat \"%s\": %m", f->path);
    }
    f->reused = false;
    r = fence_attach_or_fork(f);
    (void)flock(f->fd, LOCK_UN);
    if (r < 0) {
        return log_error_errno(r, "cannot restart the fence process: %m");
    }
    log_warning("fence process %d was gone or stuck: now fence process %d", (int)old, (int)f->pid);
    return 1;
}

Fence *fence_stop(Fence *f)
{
    if (!f) {
        return NULL;
    }
    if (f->shared && f->pid > 0) {
        FenceShared *sh = f->shared;
        atomic_store(&sh->deadline_usec, 0);
        atomic_store(&sh->exit_pid, (uint64_t)f->pid);
        if (fence_is_fence(f, f->pid)) {
            (void)kill(f->pid, SIGTERM);
        }
        if (!fence_wait_gone(f, FENCE_STOP_TIMEOUT_USEC)) {
            log_warning("fence process %d did not exit: killing it", (int)f->pid);
            if (fence_is_fence(f, f->pid)) {
                (void)kill(f->pid, SIGKILL);
            }
            (void)fence_wait_gone(f, FENCE_STOP_TIMEOUT_USEC);
        }
        uint64_t owner = atomic_load(&sh->owner);
        if (owner_fence(owner) == f->pid) {
            (void)atomic_compare_exchange_strong(&sh->owner, &owner,
                                                 owner_pack(0, owner_agent(owner)));
        }
        log_info("fence process %d stopped", (int)f->pid);
    }
    return fence_free(f);
}

Fence *fence_free(Fence *f)
{
    if (!f) {
        return NULL;
    }
    if (f->shared) {
        (void)munmap(f->shared, sizeof(FenceShared));
    }
    if (f->fd >= 0) {
        (void)close(f->fd);
    }
    free(f->path);
    free(f->data_dir);
    free(f);
    return NULL;
}

int fence_get_pid(const Fence *f)
{
    return f ? (int)f->pid : 0;
}

bool fence_is_armed(const Fence *f)
{
    return f && f->shared && atomic_load(&f->shared->deadline_usec) != 0;
}

uint64_t fence_get_deadline_usec(const Fence *f)
{
    return f && f->shared ? atomic_load(&f->shared->deadline_usec) : 0;
}

unsigned fence_get_fenced_count(const Fence *f)
{
    return f && f->shared ? (unsigned)atomic_load(&f->shared->fenced_count) : 0;
}

uint64_t fence_get_last_fence_usec(const Fence *f)
{
    return f && f->shared ? atomic_load(&f->shared->last_fence_usec) : 0;
}

bool fence_get_reused(const Fence *f)
{
    return f && f->reused;
}
