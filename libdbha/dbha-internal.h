/* libdbha's private parts shared by libdbha/dbha-*.c and the unit tests: error
 * text helpers and the pool's bookkeeping, which is pure (no libpq, no
 * clock) so tests/unit/test_dbha.c can drive it. */
#pragma once

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "dbha/dbha.h"

#include "macro.h"

/* Writes code and the formatted message into reterr (when not NULL);
 * returns code. */
int dbha_error_set(DbhaError *reterr, int code, const char *fmt, ...) _printf_(3, 4);

/* A condition variable on CLOCK_MONOTONIC; returns 0 or -errno. */
int dbha_cond_init_monotonic(pthread_cond_t *cond);
/* pthread_cond_timedwait until the monotonic time at_usec. */
void dbha_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, uint64_t at_usec);
/* The client's round-robin cursor, advanced (the pool spreads with it). */
unsigned dbha_client_next_rr(DbhaClient *c);

/* ---- pool bookkeeping ---- */

/* What the pool knows of one open connection, without the PGconn. */
typedef struct DbhaSlot {
    DbhaRole role;
    char node[DBHA_NAME_MAX];
    bool in_use;
    bool doomed;              /* to be closed: lost its role, broken, failed a check */
    int64_t checked_version;  /* topology version when its role was last verified */
    uint64_t idle_since_usec; /* monotonic time of its last release */
} DbhaSlot;

/* Whether a connection to node may serve role under topology t: the
 * primary's name for PRIMARY; a healthy replica (max_lag_bytes bound) for
 * REPLICA. A NULL topology keeps nothing. */
bool dbha_slot_role_valid(const DbhaTopology *t, DbhaRole role, const char *node,
                          int64_t max_lag_bytes);

/* Why a slot must be checked on the server before it is lent, as a bit set. */
#define DBHA_CHECK_TOPOLOGY_CHANGED 0x1 /* the version moved since its last check */
#define DBHA_CHECK_IDLE             0x2 /* idle for at least idle_check_usec */
unsigned dbha_slot_needs_check(const DbhaSlot *s, int64_t version, uint64_t now_usec,
                               uint64_t idle_check_usec);

/* Picks an idle, not doomed slot of role among slots[0..n): one to node
 * `prefer` when there is one (prefer may be NULL), else any whose node is
 * still valid for the role under t. Returns its index or -ENOENT. */
int dbha_slots_pick_idle(const DbhaSlot *slots, size_t n, DbhaRole role, const char *prefer,
                         const DbhaTopology *t, int64_t max_lag_bytes);

/* Marks doomed every idle slot whose node lost its role under t; returns how
 * many. In-use slots are left to their release. */
size_t dbha_slots_doom_invalid(DbhaSlot *slots, size_t n, const DbhaTopology *t,
                               int64_t max_lag_bytes);

/* Counts slots of role: open (pending creations included by the caller),
 * in use and idle. */
typedef struct DbhaSlotCounts {
    size_t open;
    size_t in_use;
    size_t idle;
} DbhaSlotCounts;
void dbha_slots_count(const DbhaSlot *slots, size_t n, DbhaRole role, DbhaSlotCounts *ret);
