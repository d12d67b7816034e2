/* The postmaster of a data directory, known by PID and start time, and a
 * kill that is verified: the postmaster suspended, it and every process it
 * started SIGKILLed, until none of them runs. Patroni 3.0.2 finds its
 * postmaster the same way (postmaster.py: _is_postmaster_process) and
 * kills it with signal_kill after an immediate shutdown.
 *
 * Allocation-free and without locks: the fencing process (fence.h) uses it
 * after a fork of a multi-threaded agent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A postmaster.pid start time this far from the process's is another
 * process's file (Patroni 3.0.2: 3 s). */
#define PM_START_TOLERANCE_SEC 3
/* Processes of one postmaster looked after; more are counted. */
#define PM_CHILDREN_MAX 2048
/* Fencing (the agent's and the fencing process's): the lease deadline it
 * acts at leaves min(1 s, ttl/3) before etcd can give the leader key to
 * another member; SIGKILL goes at once, and this long at most is given to
 * finding every process and seeing them gone. */
#define PM_FENCE_KILL_WAIT_USEC (1000 * 1000ULL)
/* The comm of a process is at most 15 bytes. */
#define PM_COMM_MAX 32

/* One process: a PID that another process took since is not this one. */
typedef struct PmProc {
    pid_t pid;
    uint64_t start_ticks; /* /proc/PID/stat field 22: clock ticks after boot */
} PmProc;

/* The fields of /proc/PID/stat read here. */
typedef struct ProcStat {
    char comm[PM_COMM_MAX];
    char state; /* 'R', 'S', 'D', 'T', 'Z', ... */
    pid_t ppid;
    uint64_t start_ticks;
} ProcStat;

/* Parses the text of /proc/PID/stat (the comm may hold spaces and ')').
 * Returns 0 or -EINVAL. Pure. */
int proc_stat_parse(const char *text, ProcStat *ret);
/* Reads /proc/PID/stat. Returns 0, -ESRCH (no such process) or -EIO. */
int proc_stat_read(pid_t pid, ProcStat *ret);

/* The start of a process, in seconds since the epoch. */
double proc_start_epoch(uint64_t start_ticks);
/* A process started at proc_epoch is the one postmaster.pid says started at
 * file_epoch (0: the file has no start time, any process matches). Pure. */
bool pm_start_matches(double proc_epoch, int64_t file_epoch);

/* p still runs: the same process (start time), not a zombie. */
bool pm_proc_running(const PmProc *p);

/* Why pm_find() found no postmaster, for a log line. */
typedef enum PmNotFound {
    PM_FOUND = 0,
    PM_NO_FILE,       /* no postmaster.pid (or not readable) */
    PM_BAD_FILE,      /* not a postmaster.pid */
    PM_SINGLE_USER,   /* a single-user backend's file */
    PM_GONE,          /* the PID runs no process (or a zombie) */
    PM_NOT_POSTGRES,  /* another program runs under the PID */
    PM_OTHER_START,   /* a postgres process started at another time: another instance's */
    PM_SELF_OR_PARENT /* the PID is ours or our parent's */
} PmNotFound;
const char *pm_not_found_to_string(PmNotFound w);

/* The postmaster of data_dir: postmaster.pid names a live process named
 * postgres (or postmaster) that started within PM_START_TOLERANCE_SEC of the
 * file's start time (or, when the wall clock was stepped since, works in
 * data_dir and is not a child of a postgres process there) and is neither
 * us nor our parent. Returns 0 and *ret,
 * or -ESRCH with *ret_why (may be NULL) and *ret_file_pid (the PID the file
 * names, 0 when none; may be NULL). */
int pm_find(const char *data_dir, PmProc *ret, PmNotFound *ret_why, pid_t *ret_file_pid);

/* A postmaster.pid that names a live process which is not a postgres
 * started when the file says (another instance's backend, another program)
 * is renamed to postmaster.pid.stale: PostgreSQL would refuse to start
 * beside it ("lock file already exists"; Patroni passes the PID as
 * PG_GRANDPARENT_PID instead, which pg_ctl overrides with its own parent).
 * The file is read again just before and renamed only when it still holds
 * the same bytes. Returns 1 when renamed (*ret_named: the PID it named), 0
 * when there was nothing to do (no file, ours, gone, single-user), or
 * -errno. */
int pm_set_aside_stale(const char *data_dir, pid_t *ret_named);

/* The processes whose parent is p, at most max; more set *ret_truncated.
 * From the kernel's list of p's children (/proc/PID/task/PID/children),
 * else (a kernel without it) a scan of /proc. Returns how many were
 * stored. */
size_t pm_children(const PmProc *p, PmProc *out, size_t max, bool *ret_truncated);

typedef struct PmStopReport {
    size_t processes;   /* of the postmaster, it among them */
    bool stopped_found; /* the postmaster was stopped (SIGSTOP, a debugger): it could not act */
    size_t killed;      /* processes SIGKILLed, the postmaster among them */
    size_t left;        /* still running at the end, the postmaster among them */
    uint64_t first_kill_usec; /* from the call to the first SIGKILL (0: none sent) */
    uint64_t kill_usec;       /* from the call to the last child's SIGKILL */
    uint64_t took_usec;
} PmStopReport;

/* Fencing: a primary that may no longer hold the leader key must take no
 * more writes, now. The postmaster is suspended (SIGSTOP: it forks and
 * restarts nothing more), every process it started gets SIGKILL as soon
 * as it is listed (listed again until the postmaster is seen stopped, so
 * that a fork in flight is not missed), then the postmaster; then up to
 * kill_wait_usec in all for them to be gone (a zombie is gone: it cannot
 * run). Not SIGQUIT first (PostgreSQL's immediate shutdown, which Patroni
 * sends): it works through the postmaster, which must be scheduled to pass
 * it on, and backends went on committing for seconds that way when the
 * node was starved of CPU (the chaos suite: starve and stop-agent on the
 * leader). For the data both are a crash: no shutdown checkpoint, crash
 * recovery at the next start. Returns 0 when none of them runs, -EBUSY
 * when some still run (report->left), or -errno when the postmaster could
 * not be signalled. */
int pm_kill_now(const PmProc *pm, uint64_t kill_wait_usec, PmStopReport *ret);
