/* The local PostgreSQL as the agent observes it: whether the postmaster
 * runs (its pidfd polled by the loop, so its exit is seen at once without
 * a timer), the last probe's snapshot, the system identifier, and the
 * paths and settings to control it (PgCtl). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "log.h"
#include "pgctl.h"
#include "pgprobe.h"
#include "postmaster.h"

/* The deadline of one probe of the local PostgreSQL. */
#define LOCAL_PROBE_DEADLINE_USEC (1000 * 1000ULL)

/* The postmaster whose pidfd was polled exited. */
typedef void (*LocalExitFn)(void *userdata);

typedef struct LocalPg {
    PgCtl ctl;       /* paths and settings (agent/pgctl.h) */
    PgProbe *probe;  /* owned */
    PgSnapshot snap; /* the last successful probe's */
    bool probe_ok;   /* the last probe succeeded */
    bool running;    /* the postmaster is alive */
    pid_t postmaster_pid;
    PmProc postmaster;           /* the same, with its start time (agent/postmaster.h) */
    uint64_t snap_usec;          /* when snap was taken (CLOCK_MONOTONIC) */
    uint64_t maybe_primary_usec; /* local_role_may_change(): the last action that may have
                                    left the server a primary; 0: none */
    PmNotFound not_found;        /* why no postmaster was found, for a log line once per change */
    uint64_t sysid;              /* from pg_control or the probe, 0 when unknown */
    pid_t data_valid_for;        /* the watched postmaster a valid data directory was seen under */
    LogCondition down;           /* "postgresql not answering", once per change */

    sd_event *event;                /* borrowed */
    sd_event_source *postmaster_io; /* owned: pidfd of postmaster_pid, or NULL */
    pid_t postmaster_watched;       /* whose pidfd postmaster_io polls */
    sd_event_source *data_dir_io;   /* owned: inotify on the data directory while
                                       postmaster_io is set, or NULL */
    bool promote_maybe;             /* a promote signal file may exist (local_promote_signal()) */
    LocalExitFn on_exit;
    void *userdata;
} LocalPg;

/* Looks: is the postmaster alive (trusting its pidfd while it is quiet),
 * then one probe by its deadline. `watch`: poll the postmaster's pidfd
 * from now on (not while stopping). Returns true when the loop should look
 * again at once (the postmaster exited between its PID and its pidfd). */
bool local_observe(LocalPg *l, uint64_t now_usec, bool watch);
/* The postmaster's exit is seen through a pidfd (else only by looking). */
static inline bool local_watching(const LocalPg *l)
{
    return l->postmaster_io != NULL;
}
/* Stops polling the pidfd (the watched postmaster's exit was handled, or
 * the agent stops). */
void local_unwatch(LocalPg *l);
/* An action that may leave the server a primary (a promotion, a start as
 * primary) runs now: a snapshot from before it says nothing of its role. */
void local_role_may_change(LocalPg *l);
/* The last probe shows a replica whose walreceiver streams. */
static inline bool local_streaming(const LocalPg *l)
{
    return l->probe_ok && pgprobe_streaming(&l->snap);
}
/* The data directory's state (agent/pgctl.h); for a valid one, *ret_sysid
 * from its pg_control. While the postmaster we watch through its pidfd runs,
 * neither can change (it holds the directory, and a new pg_control comes
 * only from initdb, a clone or a rewind, none of which runs under it): they
 * are read once per postmaster, and again as soon as it is gone. */
PgDataState local_data_state(LocalPg *l, uint64_t *ret_sysid);
/* A promote signal file in the data directory (pgctl_has_promote_signal()).
 * While the postmaster is watched, the directory is watched too (inotify:
 * files created or moved into it), and the file is looked for only when
 * something was created since it was last found absent; else every call. */
bool local_promote_signal(LocalPg *l);
/* Frees the probe, the pidfd source and the settings. */
void local_done(LocalPg *l);
