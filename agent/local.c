#include "local.h"

#include <errno.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

void local_role_may_change(LocalPg *l)
{
    /* a probe in the same microsecond must not count as after it */
    l->maybe_primary_usec = clock_monotonic_usec() + 1;
}

void local_unwatch(LocalPg *l)
{
    l->postmaster_io = sd_event_source_disable_unref(l->postmaster_io);
    l->data_dir_io = sd_event_source_disable_unref(l->data_dir_io);
    l->postmaster_watched = 0;
}

static int on_data_dir_change(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
    (void)s;
    (void)ev;
    LocalPg *l = userdata;
    /* any event (a creation, an overflowed queue, the directory gone): look */
    l->promote_maybe = true;
    return 0;
}

/* Watches the data directory for as long as the postmaster: a promote
 * signal file that appears is then seen without looking for it every tick.
 * The file may already be there: the first call looks. */
static void watch_data_dir(LocalPg *l)
{
    l->data_dir_io = sd_event_source_disable_unref(l->data_dir_io);
    l->promote_maybe = true;
    int r = sd_event_add_inotify(l->event, &l->data_dir_io, l->ctl.data_dir,
                                 IN_CREATE | IN_MOVED_TO | IN_ONLYDIR, on_data_dir_change, l);
    if (r < 0) {
        l->data_dir_io = NULL;
        log_debug_errno(r, "inotify on %s: %m; looking for a promote signal every tick",
                        l->ctl.data_dir);
    }
}

bool local_promote_signal(LocalPg *l)
{
    if (!l->data_dir_io) {
        return pgctl_has_promote_signal(&l->ctl);
    }
    if (l->promote_maybe) {
        l->promote_maybe = pgctl_has_promote_signal(&l->ctl);
    }
    return l->promote_maybe;
}

static int on_postmaster_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    (void)s;
    (void)fd;
    (void)revents;
    LocalPg *l = userdata;
    local_unwatch(l);
    if (l->on_exit) {
        l->on_exit(l->userdata);
    }
    return 0;
}

/* Polls a pidfd of the postmaster we saw, so that its exit wakes the loop
 * without a timer. Without pidfd_open() (Linux before 5.3) the probe timer
 * keeps looking every second instead (probe_timer_needed). */
static bool watch_postmaster(LocalPg *l, bool watch)
{
    if (l->postmaster_watched == l->postmaster_pid && (l->postmaster_io || !l->postmaster_pid)) {
        return false;
    }
    local_unwatch(l);
    if (l->postmaster_pid <= 0 || !watch) {
        return false;
    }
    int fd = (int)syscall(SYS_pidfd_open, l->postmaster_pid, 0);
    if (fd < 0) {
        log_debug("pidfd_open(%d): %m; looking for the postmaster every second",
                  (int)l->postmaster_pid);
        return false;
    }
    if (!pm_proc_running(&l->postmaster)) {
        /* it exited (and the PID may be another process's now): look again soon */
        (void)close(fd);
        return true;
    }
    int r = sd_event_add_io(l->event, &l->postmaster_io, fd, EPOLLIN, on_postmaster_exit, l);
    if (r < 0) {
        (void)close(fd);
        log_debug_errno(r, "watching postmaster %d: %m", (int)l->postmaster_pid);
        return false;
    }
    (void)sd_event_source_set_io_fd_own(l->postmaster_io, true);
    l->postmaster_watched = l->postmaster_pid;
    watch_data_dir(l);
    return false;
}

/* The postmaster whose pidfd we poll has not exited: no need to read
 * postmaster.pid and /proc again. */
static bool postmaster_alive_watched(const LocalPg *l)
{
    if (!l->running || !l->postmaster_io || l->postmaster_watched != l->postmaster_pid) {
        return false;
    }
    struct pollfd p = { .fd = sd_event_source_get_io_fd(l->postmaster_io), .events = POLLIN };
    return p.fd >= 0 && poll(&p, 1, 0) == 0;
}

bool local_observe(LocalPg *l, uint64_t now, bool watch)
{
    if (!postmaster_alive_watched(l)) {
        PmProc pm = { 0 };
        PmNotFound why = PM_FOUND;
        pid_t file_pid = 0;
        l->running = pm_find(l->ctl.data_dir, &pm, &why, &file_pid) == 0;
        l->postmaster = l->running ? pm : (PmProc){ 0 };
        l->postmaster_pid = l->postmaster.pid;
        if (why != l->not_found &&
            (why == PM_NOT_POSTGRES || why == PM_OTHER_START || why == PM_SELF_OR_PARENT)) {
            /* a stale postmaster.pid whose PID another process has now:
             * not ours, never signalled */
            log_warning("%s/postmaster.pid names process %d: %s; not our postmaster",
                        l->ctl.data_dir, (int)file_pid, pm_not_found_to_string(why));
        }
        l->not_found = why;
    }
    bool again = watch_postmaster(l, watch);
    if (!l->running) {
        l->probe_ok = false;
        return again;
    }
    /* written only on success: the last good snapshot stays otherwise */
    int r = pgprobe_snapshot(l->probe, now + LOCAL_PROBE_DEADLINE_USEC, &l->snap);
    l->probe_ok = r >= 0;
    if (l->probe_ok) {
        l->snap_usec = clock_monotonic_usec();
        if (l->snap.system_identifier) {
            l->sysid = l->snap.system_identifier;
        }
    }
    (void)log_condition_update(&l->down, !l->probe_ok, now, pgprobe_last_error(l->probe));
    return again;
}

PgDataState local_data_state(LocalPg *l, uint64_t *ret_sysid)
{
    pid_t pm = l->running && local_watching(l) ? l->postmaster_watched : 0;
    if (pm != 0 && pm == l->data_valid_for && l->sysid != 0) {
        *ret_sysid = l->sysid;
        return PGDATA_VALID;
    }
    l->data_valid_for = 0;
    PgDataState s = pgctl_data_state(l->ctl.data_dir);
    if (s != PGDATA_VALID) {
        return s;
    }
    uint64_t sysid = 0;
    if (pgctl_read_system_identifier(l->ctl.data_dir, &sysid) < 0) {
        return PGDATA_INVALID;
    }
    l->sysid = sysid;
    l->data_valid_for = pm;
    *ret_sysid = sysid;
    return PGDATA_VALID;
}

void local_done(LocalPg *l)
{
    local_unwatch(l);
    l->probe = pgprobe_free(l->probe);
    pgctl_done(&l->ctl);
}
