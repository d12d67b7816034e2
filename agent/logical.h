/* Permanent logical replication slots through a failover: Patroni 3.0's way
 * on PostgreSQL 11 and later (postgresql/slots.py, 3.0.2).
 *
 * - The primary creates each permanent logical slot in its database with
 *   its plugin and publishes the slots' confirmed_flush_lsn in the `status`
 *   key's "slots" ({"name": LSN as an integer}).
 * - A replica that may become the primary (not tagged nofailover) keeps a
 *   copy of each: a slot the primary published and the replica lacks is
 *   copied (its `pg_replslot/NAME/state` file, read on the primary with
 *   pg_read_binary_file) and loaded by a restart of the replica; one it has
 *   is moved to the published position with pg_replication_slot_advance.
 *   hot_standby_feedback is on there (agent/pgctl.h), so that the primary
 *   keeps the catalog rows those slots still need to decode.
 * - After a failover the promoted replica has the slots, at most a loop
 *   behind their consumers: a consumer that resumes from its own position
 *   misses nothing and reads nothing again; one that resumes from the
 *   slot's position (pg_recvlogical) gets the changes of that last loop
 *   again.
 *
 * dbha departs from Patroni in one place: Patroni drops every logical slot
 * on the primary that `slots` does not name (unless ignore_slots matches
 * it); dbha drops only the slots it published itself as permanent and the
 * copies on replicas, so a slot an operator or a CDC tool created is never
 * lost with its consumer's position. The glue is in ha_exec.c; what is
 * decided here is pure (logical_plan). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"
#include "pgprobe.h"
#include "slots.h"

#define LOGICAL_SLOTS_MAX     64 /* local logical slots looked at, actions per loop */
#define LOGICAL_DATABASES_MAX 8  /* kept local connections, one per database */
/* how far one pg_replication_slot_advance moves a slot: a step decodes in
 * well under the probe's statement_timeout, and the next loop goes on */
#define LOGICAL_ADVANCE_STEP (16ULL * 1024 * 1024)

/* A logical slot as pg_replication_slots shows it (not a temporary one). */
typedef struct LogicalSlot {
    char name[PGPROBE_NAME_MAX];
    char database[PGPROBE_NAME_MAX];
    char plugin[PGPROBE_NAME_MAX];
    bool active;
    bool has_confirmed;
    uint64_t confirmed_flush;
    bool has_catalog_xmin;
    uint64_t catalog_xmin;
} LogicalSlot;

typedef enum LogicalStep {
    LOGICAL_CREATE,   /* primary: create it (in slot->database, with slot->plugin) */
    LOGICAL_RECREATE, /* primary: one of its name with another database or plugin,
                         not active: drop it and create it */
    LOGICAL_ADVANCE,  /* replica: pg_replication_slot_advance to lsn */
    LOGICAL_COPY,     /* replica: copy it from the primary (then a restart loads it) */
    LOGICAL_DROP,     /* not active and not wanted here (name only) */
} LogicalStep;

typedef struct LogicalAction {
    LogicalStep step;
    char name[PGPROBE_NAME_MAX];
    char database[PGPROBE_NAME_MAX]; /* where to run it */
    const SlotsLogical *want;        /* borrowed from the SlotsWanted; NULL for DROP */
    uint64_t lsn;                    /* ADVANCE */
} LogicalAction;

typedef struct LogicalPlan {
    LogicalAction actions[LOGICAL_SLOTS_MAX];
    size_t n;
    /* primary: {"name": confirmed_flush_lsn} of the wanted slots that exist
     * with the wanted database and plugin (the status key's "slots");
     * owned, never NULL after a successful plan */
    json_t *positions;
    /* why a wanted slot was skipped (in use with another database or plugin,
     * a bad published position): owned, NULL when nothing */
    char *problem;
} LogicalPlan;

/* What to do on this member, from the wanted slots (slots_wanted()), the
 * local logical slots, and on a replica the primary's published positions
 * (the status key's "slots", NULL when none):
 * - primary: create the missing, recreate the mismatched (inactive); drop a
 *   slot that `published` (our own last status) names and w no longer
 *   wants, unless ignore_slots protects it (ignored(name, database, plugin,
 *   userdata) true);
 * - replica: advance each one the primary published further than its
 *   confirmed_flush_lsn (by at most LOGICAL_ADVANCE_STEP), copy each one
 *   published and missing, drop an inactive one with another database or
 *   plugin (copied again next time) and one not wanted (unless ignored).
 * Returns 0, -ENOMEM, or -E2BIG when more than LOGICAL_SLOTS_MAX actions
 * (the first ones are planned). Pure. */
typedef bool (*LogicalIgnoredFn)(const char *name, const char *database, const char *plugin,
                                 void *userdata);
int logical_plan(const SlotsWanted *w, bool primary, const LogicalSlot *local, size_t n_local,
                 const json_t *published, LogicalIgnoredFn ignored, void *userdata,
                 LogicalPlan *ret);
void logical_plan_done(LogicalPlan *p);

/* A published position: a non-negative JSON integer, or a string of
 * decimal digits (Patroni parses it with int()). Returns 0 or -EINVAL. */
int logical_parse_position(const json_t *v, uint64_t *ret);

/* A connection's settings as Patroni's own connections: host, port,
 * dbname (NULL: "postgres"), user's name, password and libpq settings
 * (sslmode, ...). Strings borrowed. */
void logical_probe_config(const ConfigUser *user, const char *host, unsigned port,
                          const char *dbname, PgProbeConfig *ret);

/* The local logical slots, through the probe's connection (the view is the
 * same from every database). Returns 0 and *ret_n, or a negative errno. */
int logical_list(PgProbe *probe, uint64_t deadline_usec, LogicalSlot *ret, size_t max,
                 size_t *ret_n);

/* Kept local connections, one per database, made from the probe's
 * settings with another dbname. */
typedef struct LogicalConns {
    struct {
        char *database; /* owned */
        PgProbe *probe; /* owned */
    } db[LOGICAL_DATABASES_MAX];
    size_t n;
} LogicalConns;

void logical_conns_done(LogicalConns *c);

/* Runs one action on this member's server: CREATE, RECREATE and ADVANCE
 * through a connection to its database (local: the probe's settings,
 * another dbname), DROP through probe. COPY is not run here
 * (logical_fetch, logical_install). Returns 0, or a negative errno with why
 * in err (-ENOENT: the WAL the slot needs is gone, SQLSTATE 58P01). */
int logical_run(LogicalConns *c, const PgProbeConfig *local, PgProbe *probe,
                const LogicalAction *act, uint64_t deadline_usec, char *err, size_t errlen);

/* A copied slot: its name and its state file's bytes. */
typedef struct LogicalCopy {
    char name[PGPROBE_NAME_MAX];
    unsigned char *state; /* owned */
    size_t size;
} LogicalCopy;

/* Reads the state files of the COPY actions' slots on the primary (through
 * leader: its address, the rewind user or the superuser, as Patroni) where
 * the slot there has the wanted database and plugin. Returns the number of
 * copies in ret (up to max), or a negative errno with why in err. */
int logical_fetch(const PgProbeConfig *leader, const LogicalPlan *plan, uint64_t deadline_usec,
                  LogicalCopy *ret, size_t max, char *err, size_t errlen);
void logical_copy_done(LogicalCopy *c);

/* Writes a copy as data_dir/pg_replslot/NAME/state, through NAME.tmp (which
 * PostgreSQL removes at start if we die half-way), each step fsynced; a
 * directory of that name (a loaded slot's) is swapped for it in one
 * rename (RENAME_EXCHANGE). PostgreSQL loads it at its next start. Returns
 * 0 or a negative errno. */
int logical_install(const char *data_dir, const LogicalCopy *c);
/* Removes data_dir/pg_replslot/NAME (a copy no start loaded). */
int logical_uninstall(const char *data_dir, const char *name);

/* A copy not known yet to be safe after a failover: the primary's catalog
 * rows it needs may have been removed before this replica's
 * hot_standby_feedback reached the primary. xmin: the primary's
 * catalog_xmin of that slot when our physical slot there first had one. */
typedef struct LogicalUnready {
    char name[PGPROBE_NAME_MAX];
    bool has_xmin;
    uint64_t xmin;
} LogicalUnready;

/* What the agent keeps between loops (ha_exec.c). */
typedef struct LogicalState {
    LogicalConns conns;
    char *problem;     /* the last one logged, owned */
    json_t *positions; /* primary: what the status key's "slots" should be, owned */
    /* copies written and not yet loaded by a restart of that postmaster */
    char staged[LOGICAL_SLOTS_MAX][PGPROBE_NAME_MAX];
    size_t n_staged;
    pid_t staged_postmaster;
    uint64_t staged_at_usec;
    bool seen; /* the last look found local logical slots */
    /* a copy that could not advance (its WAL is gone here) is made again
     * only after copy_after_usec; the wait doubles each time */
    uint64_t copy_after_usec, copy_backoff_usec;
    /* loaded copies that could not advance: kept until a new copy
     * replaces them */
    char broken[LOGICAL_SLOTS_MAX][PGPROBE_NAME_MAX];
    size_t n_broken;
    /* copies whose safety is not known yet (all of them when the agent
     * starts on a replica, as Patroni's forced readiness check) */
    LogicalUnready unready[LOGICAL_SLOTS_MAX];
    size_t n_unready;
    bool readiness_started;      /* the local slots were put in unready once */
    bool readiness_problem_said; /* the physical slot's catalog_xmin problem was logged */
} LogicalState;

void logical_state_done(LogicalState *s);

/* What the primary says for the readiness check: our physical slot there
 * (exists; its catalog_xmin, which hot_standby_feedback sets) and the
 * catalog_xmin of its logical slots of the unready names. */
typedef struct LogicalXmins {
    bool physical_exists, has_physical;
    uint64_t physical_xmin;
    char names[LOGICAL_SLOTS_MAX][PGPROBE_NAME_MAX];
    bool has_xmin[LOGICAL_SLOTS_MAX];
    uint64_t xmins[LOGICAL_SLOTS_MAX];
    size_t n;
} LogicalXmins;

/* Adds name to the unready copies (again: its remembered xmin is
 * forgotten). Returns 0 or -E2BIG. */
int logical_unready_add(LogicalState *s, const char *name);
/* Patroni's check_logical_slots_readiness(): once our physical slot on the
 * primary has a catalog_xmin, each unready copy remembers the primary's
 * catalog_xmin of its slot; a copy is safe when that remembered value <=
 * the physical slot's catalog_xmin <= the copy's own catalog_xmin. Safe and
 * vanished copies leave the list; the safe ones' names are returned in
 * ready (up to max). Pure. */
size_t logical_readiness(LogicalState *s, const LogicalXmins *primary, const LogicalSlot *local,
                         size_t n_local, char ready[][PGPROBE_NAME_MAX], size_t max);
/* Asks the primary (through leader) for the xmins of our physical slot
 * `physical` and of the unready slots. Returns 0 or a negative errno (why
 * in err). */
int logical_primary_xmins(const PgProbeConfig *leader, const LogicalState *s, const char *physical,
                          uint64_t deadline_usec, LogicalXmins *ret, char *err, size_t errlen);
