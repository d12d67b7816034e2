/* Fencing a hung or dead agent: a small process forked by dbagent that shuts
 * PostgreSQL down (SIGKILL to it and every process of it, postmaster.h) when
 * the agent's heartbeat in
 * a shared file goes stale, so a SIGSTOPped, hung or SIGKILLed agent cannot
 * leave a writable primary behind once its etcd lease can expire.
 *
 * How it works. The agent maps a small heartbeat file (MAP_SHARED, mode 0600,
 * e.g. "<data_dir>.dbha-fence") that the fence process maps too. While the
 * node runs a writable primary, the agent writes a deadline (CLOCK_MONOTONIC,
 * the same clock in every process of the machine) after each successful lease
 * renewal: fence_arm(). The fence process sleeps until the deadline (the
 * agent signals it when a new deadline is earlier than the one it sleeps
 * for; a later one it finds when it wakes), or while disarmed until it is
 * signalled or the agent exits; once the deadline has passed it
 * disarms the file and kills the postmaster named in
 * <data_dir>/postmaster.pid (when that PID is a live postgres process) and
 * its processes (pm_kill_now). The
 * agent must re-arm after it is leader again. After the fork the fence
 * touches only the mapping, /proc, postmaster.pid, kill(2) and stderr: no
 * event loop, etcd, libpq, REST, allocation or exec, so nothing it does can
 * hang.
 *
 * Lifetime. The fence runs in its own session (a kill of the agent's process
 * group does not reach it) and is named "dbagent-fence" (comm, see
 * /proc/PID/comm; the command line stays the agent's). It exits when the agent
 * asks (fence_stop), or when it is disarmed and the agent recorded in the file
 * is dead or it got SIGTERM/SIGINT; never while armed, so a killed agent's
 * primary is still fenced at its deadline. A restarted agent finds the live
 * fence in the file and reuses it with the same deadline, so an agent back
 * within the margin keeps its primary. The file records the boot it was
 * written in; a file from an earlier boot is reset. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"

/* The deadline the fence fires at is the leader lease's (lease.h,
 * lease_deadline_usec(): the earliest send time of a successful keepalive
 * plus the TTL etcd granted, less LEASE_SAFETY_MARGIN_USEC or a third of
 * the ttl), so it is never later than etcd can expire the leader key. */

/* A disarmed fence sleeps until a signal or its agent's exit (its pidfd);
 * without signalfd or pidfd_open it looks this often whether its agent is
 * still alive (it exits once the agent is gone). An armed one sleeps until
 * its deadline. */
#define FENCE_IDLE_USEC (10 * 1000 * 1000ULL)
/* The agent's "the deadline came earlier: look again". */
#define FENCE_WAKE_SIGNAL SIGUSR1
/* fence_stop(): how long the fence may take to exit before SIGKILL. */
#define FENCE_STOP_TIMEOUT_USEC (2 * 1000 * 1000ULL)
/* fence_start(): how long to wait for another agent's fence_start() on the
 * same file (an flock) before giving up with -EBUSY. */
#define FENCE_LOCK_TIMEOUT_USEC (2 * 1000 * 1000ULL)
/* The data directory path stored in the file (checked on reuse). */
#define FENCE_PATH_MAX 4096
/* The fence process's name (comm, at most 15 characters). */
#define FENCE_PROCESS_NAME "dbagent-fence"

typedef struct Fence Fence;

/* Opens or creates heartbeat_path (0600), maps it, and reuses the live fence
 * process recorded in it when it guards the same data_dir (its deadline is
 * kept: call fence_arm() or fence_disarm() before deciding anything else),
 * else forks a new one (an armed deadline left in the file by a dead fence of
 * this boot is kept too, so it still fires). data_dir is made absolute.
 * Returns 0 and *ret (free it with fence_stop() or fence_free()), -EINVAL,
 * -ENAMETOOLONG, -EBUSY (another fence_start() holds the file, or a live fence
 * guards another data_dir), or another -errno. Logs (info) which fence it
 * uses. */
int fence_start(const char *heartbeat_path, const char *data_dir, Fence **ret);

/* Arms (or moves) the deadline, CLOCK_MONOTONIC microseconds; 0 is taken as
 * 1 (fire at once). Call after every successful lease renewal while a
 * writable primary runs: deadline = lease_deadline_usec().
 * NULL-safe, never blocks, does not log. */
void fence_arm(Fence *f, uint64_t deadline_usec);
/* No writable primary to protect (replica, stopped, demoted). NULL-safe. */
void fence_disarm(Fence *f);

/* Checks the fence process is alive and still the one in the file, and
 * forks a new one (keeping the deadline) when it is not. Call once per tick.
 * Returns 0 when it was fine, 1 when it was restarted (logged as a warning),
 * or -errno. */
int fence_ensure(Fence *f);

/* Clean agent shutdown: disarms, asks the fence to exit (flag + SIGTERM),
 * waits up to FENCE_STOP_TIMEOUT_USEC (then SIGKILL), reaps it when it is our
 * child, unmaps and frees. NULL-safe; returns NULL. */
Fence *fence_stop(Fence *f);
/* Releases the handle only and leaves the fence process running with its
 * deadline (what a crashed agent leaves behind; also for exec). NULL-safe;
 * returns NULL. */
Fence *fence_free(Fence *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(Fence *, fence_free);

/* Observers (0/false for NULL). */
int fence_get_pid(const Fence *f);
bool fence_is_armed(const Fence *f);
uint64_t fence_get_deadline_usec(const Fence *f);
unsigned fence_get_fenced_count(const Fence *f);
uint64_t fence_get_last_fence_usec(const Fence *f); /* CLOCK_MONOTONIC, 0: never */
bool fence_get_reused(const Fence *f);              /* fence_start() found a live fence */

/* ---- pure helpers (the fence loop's decisions) ---- */

/* Armed and the deadline reached. */
bool fence_should_fire(bool armed, uint64_t deadline_usec, uint64_t now_usec);
/* How long the loop sleeps: until an armed deadline (0 once reached), else
 * FENCE_IDLE_USEC. */
uint64_t fence_wait_usec(bool armed, uint64_t deadline_usec, uint64_t now_usec);
/* Whether the fence process exits: when asked to (exit_requested), or when
 * disarmed and the agent is dead or a SIGTERM/SIGINT arrived; never while
 * armed otherwise. */
bool fence_should_exit(bool exit_requested, bool armed, bool agent_alive, bool term_received);

/* What the agent does with the fence after a tick or a renewal. */
typedef enum FenceVerdict {
    FENCE_KEEP,   /* leave the deadline as it is */
    FENCE_ARM,    /* arm (or move) it to the lease's deadline */
    FENCE_DISARM, /* nothing writable to protect */
} FenceVerdict;

/* What the agent knows of the local server for fencing. */
typedef struct FenceLocal {
    bool leading;                /* a primary holding the leader key */
    bool has_deadline;           /* the lease has a deadline */
    bool running;                /* the postmaster runs (verified: agent/postmaster.h) */
    bool probe_ok;               /* the last probe answered */
    bool in_recovery;            /* what it answered */
    uint64_t snap_usec;          /* when (CLOCK_MONOTONIC) */
    uint64_t maybe_primary_usec; /* when an action that may leave the server a primary
                                    (promote, start as primary) last ran; 0: never */
    bool promoting;              /* a promotion asked for may still happen (agent/policy.h): a probe
                                    in recovery proves nothing about the next moment */
    bool paused;                 /* the cluster is paused (maintenance mode) */
} FenceLocal;

/* Disarmed while the cluster is paused and no promotion is pending: in
 * Patroni's maintenance mode nothing stops PostgreSQL by itself, not even
 * the agent's death or a lease that runs out; nobody promotes then without
 * an operator's request, and the cluster resumes only with a leader
 * (docs/pause.md). Otherwise armed while leading; disarmed only when PostgreSQL provably takes no
 * writes: it does not run, or a probe taken after the last action that may
 * have made it a primary found it in recovery with no promotion pending
 * (the snapshot from before a promotion whose last steps failed says
 * "replica" of a writable server, and a pending promotion can finish after
 * any probe: those are armed at the lease's deadline). Otherwise kept (a running
 * server that may be a primary keeps its deadline, e.g. an agent restarted
 * while etcd is down). Pure. */
FenceVerdict fence_verdict(const FenceLocal *l);
