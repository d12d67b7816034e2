/* Which replication slots the settings in force ask a member to keep beyond
 * its members' slots, and which physical ones it must never drop: Patroni's
 * permanent slots (`slots`) and `ignore_slots` (dynconfig.h has the rules a
 * written value is held to). Pure: ha_exec.c's slot sync applies it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* A permanent logical slot: its name (valid), database and plugin. */
typedef struct SlotsLogical {
    char *name, *database, *plugin; /* owned */
} SlotsLogical;

typedef struct SlotsWanted {
    char **permanent; /* owned: physical slots the leader keeps (valid names) */
    size_t n_permanent;
    SlotsLogical *logical; /* owned: permanent logical slots this member keeps */
    size_t n_logical;
    char **ignored; /* owned: physical slots never dropped (valid names) */
    size_t n_ignored;
    /* no physical slot is dropped: a matcher has no name (or ignore_slots
     * is malformed, so what it protects is unknown) */
    bool ignore_all;
    /* owned: what was skipped and why, for the log; NULL when nothing */
    char *problem;
} SlotsWanted;

/* Who keeps which permanent slots (Patroni 3.0.2's get_replication_slots):
 * a primary the physical and the logical ones; a standby leader the
 * physical ones; a replica the logical ones unless it is tagged nofailover
 * (it may become the primary, and the slots must be there when it does);
 * a replica of a standby cluster none (its cluster has no primary that
 * publishes them). */
typedef enum SlotsRole {
    SLOTS_PRIMARY,
    SLOTS_STANDBY_LEADER,
    SLOTS_REPLICA,
    SLOTS_NONE, /* keeps no permanent slot (nofailover replica, standby cluster replica) */
} SlotsRole;

/* Reads dcs->slots and dcs->ignore_slots. own_slot is this member's slot
 * name (a permanent slot of that name is not made on itself, as in
 * Patroni; a logical one of that name is skipped, named in problem).
 * Bad names are skipped and named in problem. Returns 0 or -ENOMEM (then
 * *ret is empty). */
int slots_wanted(const ConfigDcs *dcs, const char *own_slot, SlotsRole role, SlotsWanted *ret);
/* Whether ignore_slots protects a slot (Patroni's
 * ignore_replication_slot(): a matcher whose name is absent or equal and
 * each of database, plugin and type absent, empty or equal; a malformed
 * ignore_slots protects every slot). type is "physical" or "logical";
 * database and plugin NULL for a physical slot. */
bool slots_ignored(const ConfigDcs *dcs, const char *name, const char *type, const char *database,
                   const char *plugin);
/* Whether dcs asks for a permanent logical slot at all (valid ones). */
bool slots_any_logical(const ConfigDcs *dcs);
void slots_wanted_done(SlotsWanted *w);
