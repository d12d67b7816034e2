/* Writes to the cluster's keys: one typed function per write, in the shape
 * of Patroni's AbstractDCS (take_leader, update_leader, delete_leader,
 * set_config_value, manual_failover, ...). Every compare-and-swap and every
 * write guarded by the leader key is built here once; the agent and dbctl
 * call these instead of assembling transactions at the call site.
 *
 * Each function returns 0 when it wrote, -ECANCELED when a compare did not
 * hold (nothing was written), or the etcd error (described in s->error).
 * Nothing here logs. */
#pragma once

#include <stdint.h>

#include "dcs.h"
#include "etcd.h"

typedef struct DcsStore {
    EtcdClient *etcd;      /* borrowed */
    const DcsPaths *paths; /* borrowed */
    EtcdError error;       /* of the last failed call */
} DcsStore;

/* ---- generic compare-and-swap on a key's mod_revision ---- */

/* Puts key = value if its mod_revision is still mod_revision (0: the key
 * must not exist). */
int dcs_store_put_if(DcsStore *s, const char *key, int64_t mod_revision, const char *value);
/* Deletes key if its mod_revision is still mod_revision. */
int dcs_store_delete_if(DcsStore *s, const char *key, int64_t mod_revision);

/* Creates key = value (on lease when non-zero) if it does not exist.
 * -ECANCELED when it does; *ret_holder (optional, owned, may stay NULL) is
 * its value then. */
int dcs_store_create(DcsStore *s, const char *key, const char *value, int64_t lease,
                     char **ret_holder);

/* Deletes `initialize` while it is the empty placeholder of a bootstrap
 * in progress (a failed bootstrap gives the race back). */
int dcs_store_release_initialize(DcsStore *s);

/* ---- keys only the leader writes ---- */

/* The `sync` key = value (NULL: deleted), while the leader key names
 * `name` and the sync key's mod_revision is still mod_revision (0: absent).
 * *ret_revision (optional): its new mod_revision (0 when deleted). */
int dcs_store_set_sync(DcsStore *s, const char *name, const char *value, int64_t mod_revision,
                       int64_t *ret_revision);
/* The `topology` key = value, on the same two conditions. */
int dcs_store_set_topology(DcsStore *s, const char *name, const char *value, int64_t mod_revision);

/* ---- plain writes ---- */

/* Our member key = value on our lease. */
int dcs_store_touch_member(DcsStore *s, const char *name, const char *value, int64_t lease);
/* `initialize` = the system identifier, once the bootstrap is done. */
int dcs_store_set_initialize(DcsStore *s, const char *value);
/* `history` = value (the whole list: dcs_history_append() builds it). */
int dcs_store_set_history(DcsStore *s, const char *value);
/* `status` = value (the leader's optime). */
int dcs_store_write_status(DcsStore *s, const char *value);
/* Deletes every key of the cluster; *ret_count (optional): how many. */
int dcs_store_remove_cluster(DcsStore *s, int64_t *ret_count);

/* ---- the config key ---- */

/* The dynamic configuration, compare-and-swap on the revision it was read
 * at (0: there is none yet). */
int dcs_store_set_config(DcsStore *s, const char *value, int64_t mod_revision);

/* ---- the failover key ---- */

/* {"leader", "member", "scheduled_at"} (each only when non-NULL), written
 * whatever was there (patronictl does so); *ret_revision (optional): the
 * key's new mod_revision. */
int dcs_store_set_failover(DcsStore *s, const char *leader, const char *candidate,
                           const char *scheduled_at, int64_t *ret_revision);
/* The same, only if the key did not change since the view read at
 * view_revision (an absent key counts as unchanged). */
int dcs_store_set_failover_unchanged(DcsStore *s, const char *leader, const char *candidate,
                                     const char *scheduled_at, int64_t view_revision);
/* Deletes it if its mod_revision is still mod_revision; mod_revision < 0:
 * whatever it holds. */
int dcs_store_clear_failover(DcsStore *s, int64_t mod_revision);

/* ---- the leader key ---- */

/* Creates the leader key = name on lease, if there is none. -ECANCELED
 * when there is one; *ret_holder (optional, owned, may stay NULL) names
 * its holder then. */
int dcs_store_take_leader(DcsStore *s, const char *name, int64_t lease, char **ret_holder);
/* Puts it again with lease if it still names us (a new lease of ours). */
int dcs_store_renew_leader(DcsStore *s, const char *name, int64_t lease);
/* Moves it onto lease `to` if it names us and is attached to lease `from`. */
int dcs_store_move_leader(DcsStore *s, const char *name, int64_t from, int64_t to);
/* Deletes it if it still names us. */
int dcs_store_release_leader(DcsStore *s, const char *name);
