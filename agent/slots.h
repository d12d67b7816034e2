/* Which physical replication slots the settings in force ask a member to
 * keep beyond its members' slots, and which it must never drop: Patroni's
 * permanent slots (`slots`) and `ignore_slots` (dynconfig.h has the rules a
 * written value is held to). Pure: ha_exec.c's slot sync applies it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef struct SlotsWanted {
    char **permanent; /* owned: physical slots the leader keeps (valid names) */
    size_t n_permanent;
    char **ignored; /* owned: physical slots never dropped (valid names) */
    size_t n_ignored;
    /* no physical slot is dropped: a matcher has no name (or ignore_slots
     * is malformed, so what it protects is unknown) */
    bool ignore_all;
    /* owned: what was skipped and why, for the log; NULL when nothing */
    char *problem;
} SlotsWanted;

/* Reads dcs->slots and dcs->ignore_slots. own_slot is this member's slot
 * name (a permanent slot of that name is not made on itself, as in
 * Patroni). Only a leader keeps permanent physical slots (leader == false
 * leaves permanent empty); logical ones and bad names are skipped and
 * named in problem. Returns 0 or -ENOMEM (then *ret is empty). */
int slots_wanted(const ConfigDcs *dcs, const char *own_slot, bool leader, SlotsWanted *ret);
void slots_wanted_done(SlotsWanted *w);
