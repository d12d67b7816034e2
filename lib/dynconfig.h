/* The dynamic configuration kept in the etcd `config` key (Patroni's JSON:
 * ttl, loop_wait, retry_timeout, maximum_lag_on_failover, the synchronous
 * settings, pause, standby_cluster, postgresql.{parameters, use_pg_rewind,
 * use_slots, ...}): Patroni's PATCH /config merge and a strict validation
 * of a whole document. Shared by dbctl edit-config and the agent's
 * PATCH/PUT /config. Pure; nothing here logs. */
#pragma once

#include <stddef.h>

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
