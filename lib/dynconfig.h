/* The dynamic configuration kept in the etcd `config` key (Patroni's JSON:
 * ttl, loop_wait, retry_timeout, maximum_lag_on_failover, the synchronous
 * settings, pause, standby_cluster, postgresql.{parameters, use_pg_rewind,
 * use_slots, ...}): Patroni's PATCH /config merge and a strict validation
 * of a whole document. Shared by dbctl edit-config and the agent's
 * PATCH/PUT /config. Pure; nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Patroni's patch_config (PATCH /config): objects merge key by key and
 * recursively, a JSON null deletes the key, any other value (arrays too)
 * replaces the old one. An object that lands where there was none (or a
 * non-object) is copied without its null members, as RFC 7386 does (Patroni
 * would store the nulls). base may be NULL (an empty object); patch must be
 * an object. Neither is modified. Returns 0 and a new object in *ret, -EINVAL
 * (base not an object, patch not an object, nesting deeper than
 * DYNCONFIG_DEPTH_MAX) or -ENOMEM. */
#define DYNCONFIG_DEPTH_MAX 32
int dynconfig_merge(const json_t *base, const json_t *patch, json_t **ret);

/* Validates a whole config document as it would be stored. Integer and
 * boolean keys take the types and ranges of their bootstrap.dcs rows in the
 * config schema (integers may also be decimal strings and booleans the
 * strings Patroni accepts, as Patroni casts them); ttl must be at least
 * loop_wait + 2 * retry_timeout (defaults 30, 10, 10 when absent);
 * standby_cluster and postgresql are objects; postgresql.parameters maps
 * parameter names PostgreSQL reads (pgconf_name_valid()) to scalars
 * (strings without a NUL, numbers, booleans). A null value counts as absent. Unknown keys are
 * allowed, as Patroni keeps them. Returns 0, or -EINVAL with the first problem in err (if err and
 * errlen > 0) as "KEY: message", e.g. "ttl: must be an integer
 * >= 2" or "postgresql.parameters.work_mem: must be a string, number or
 * boolean". */
int dynconfig_validate(const json_t *doc, char *err, size_t errlen);

/* The standby_cluster section alone, by the rules dynconfig_validate()
 * holds it to (host, primary_slot_name, restore_command and
 * archive_cleanup_command strings, port 1-65535, recovery_min_apply_delay a
 * string or an integer, create_replica_methods a list of strings). Returns
 * 0, or -EINVAL with the reason in err as "standby_cluster.KEY: message". */
int dynconfig_check_standby_cluster(const json_t *sc, char *err, size_t errlen);

/* Python's truth of a JSON value, as Patroni's `a or b` sees it (NULL:
 * false). */
bool dynconfig_truthy(const json_t *v);

/* Permanent replication slots (Patroni's `slots`, also read as
 * `permanent_slots`) and `ignore_slots`, as dbha honours them:
 * - a slot name is Patroni's slot_name_re, [a-z0-9_]{1,63};
 * - a slot's value is null or an object; its type is "physical" or
 *   "logical", and without a type it is logical when it names both a
 *   database and a plugin (Patroni's rule), else physical;
 * - a logical slot needs a database and a plugin (Patroni logs and skips
 *   a bad slot; dbha refuses it, so that nothing written is ignored);
 * - ignore_slots is a list of objects of name, type, database and plugin
 *   (strings; a field that is absent or empty matches anything). */
typedef enum DynconfigSlotType {
    DYNCONFIG_SLOT_PHYSICAL,
    DYNCONFIG_SLOT_LOGICAL,
    DYNCONFIG_SLOT_BAD,
} DynconfigSlotType;

/* The permanent slots of a config document as Patroni 3.0.2 picks them:
 * the first of permanent_replication_slots, permanent_slots and slots that
 * is not empty (Python's `a or b or c`); NULL when none is. Borrowed. */
const json_t *dynconfig_permanent_slots(const json_t *doc);

bool dynconfig_slot_name_valid(const char *name);
/* The type of a permanent slot's value (NULL or null: physical). */
DynconfigSlotType dynconfig_slot_type(const json_t *value);
/* Whether a permanent slot's value is a logical slot with its database and
 * plugin (non-empty strings, borrowed from value into the non-NULL
 * ret_*). */
bool dynconfig_logical_slot(const json_t *value, const char **ret_database,
                            const char **ret_plugin);

/* Where dynconfig_check_slots() found its problem: the name of the slot at
 * fault (borrowed from slots), or the index of the ignore_slots item, or
 * neither (-1) when the container itself is wrong. */
typedef struct DynconfigSlotWhere {
    const char *slot;
    ssize_t ignore_index;
} DynconfigSlotWhere;

/* Checks slots (an object or NULL/null) and ignore_slots (a list or
 * NULL/null) by the rules above. Returns 0, or -EINVAL with "KEY: message"
 * in err and the place in *where (where may be NULL). */
int dynconfig_check_slots(const json_t *slots, const json_t *ignore_slots,
                          DynconfigSlotWhere *where, char *err, size_t errlen);
