/* The `config` key's document: Patroni's merge for PATCH /config and a
 * validation that refuses what the agents could not apply. Types and ranges
 * come from the bootstrap.dcs rows of the config schema, so a value accepted
 * in the YAML file is accepted here and the other way round. */
#include "dynconfig.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "config-schema.h"
#include "macro.h"
#include "pgconf.h"

/* Room for a dotted key path in messages ("postgresql.parameters.<name>"). */
#define DYNCONFIG_PATH_MAX 256

/* ---- merge ------------------------------------------------------------ */

/* A copy of v with the null members of every object dropped. */
static json_t *copy_without_nulls(const json_t *v, unsigned depth)
{
    if (depth > DYNCONFIG_DEPTH_MAX) {
        return NULL;
    }
    if (!json_is_object(v)) {
        return json_deep_copy(v);
    }
    json_t *o = json_object();
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child)
    {
        if (!o) {
            break;
        }
        if (json_is_null(child)) {
            continue;
        }
        json_t *c = copy_without_nulls(child, depth + 1);
        if (!c || json_object_set_new(o, key, c) < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

/* Applies patch to target in place. -EINVAL (too deep) or -ENOMEM. */
static int merge_into(json_t *target, const json_t *patch, unsigned depth)
{
    if (depth > DYNCONFIG_DEPTH_MAX) {
        return -EINVAL;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)patch, key, value)
    {
        if (json_is_null(value)) {
            (void)json_object_del(target, key);
            continue;
        }
        json_t *old = json_object_get(target, key);
        if (json_is_object(value) && json_is_object(old)) {
            int r = merge_into(old, value, depth + 1);
            if (r < 0) {
                return r;
            }
            continue;
        }
        json_t *copy = copy_without_nulls(value, depth + 1);
        if (!copy) {
            return json_is_object(value) ? -EINVAL : -ENOMEM;
        }
        if (json_object_set_new(target, key, copy) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

int dynconfig_merge(const json_t *base, const json_t *patch, json_t **ret)
{
    if (!ret || !json_is_object(patch) || (base && !json_is_object(base))) {
        return -EINVAL;
    }
    json_t *out = base ? json_deep_copy(base) : json_object();
    if (!out) {
        return -ENOMEM;
    }
    int r = merge_into(out, patch, 0);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    *ret = out;
    return 0;
}

/* ---- validation ------------------------------------------------------- */

typedef struct Check {
    char *err; /* borrowed, may be NULL */
    size_t errlen;
} Check;

_printf_(3, 4) static int fail(Check *c, const char *key, const char *fmt, ...)
{
    if (c->err && c->errlen > 0) {
        char msg[2 * DYNCONFIG_PATH_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        (void)snprintf(c->err, c->errlen, "%s: %s", key, msg);
    }
    return -EINVAL;
}

/* An integer as Patroni reads one (it casts with int()): a JSON integer, an
 * integral real, or a decimal string. */
static bool as_int(const json_t *v, int64_t *ret)
{
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d < -9.2e18 || d > 9.2e18 || (double)(int64_t)d != d) {
            return false;
        }
        *ret = (int64_t)d;
        return true;
    }
    return json_is_string(v) && config_parse_int(json_string_value(v), ret) == 0;
}

/* The spellings the cluster view (lib/dcs.c) reads as booleans. */
static bool as_bool(const json_t *v, bool *ret)
{
    if (json_is_boolean(v)) {
        *ret = json_is_true(v);
        return true;
    }
    if (json_is_integer(v)) {
        *ret = json_integer_value(v) != 0;
        return true;
    }
    if (!json_is_string(v)) {
        return false;
    }
    const char *s = json_string_value(v);
    if (strcmp(s, "1") == 0 || strcmp(s, "0") == 0) {
        *ret = s[0] == '1';
        return true;
    }
    return config_parse_bool(s, ret) == 0;
}

static int check_int_range(Check *c, const char *key, const json_t *v, int64_t min, int64_t max,
                           int64_t *ret)
{
    int64_t n;
    if (!as_int(v, &n) || n < min) {
        return fail(c, key, "must be an integer >= %" PRId64, min);
    }
    if (n > max) {
        return fail(c, key, "must be an integer <= %" PRId64, max);
    }
    if (ret) {
        *ret = n;
    }
    return 0;
}

/* An integer key checked against its bootstrap.dcs row. Absent or null:
 * the row's default in *ret. */
static int check_row_int(Check *c, const json_t *doc, const char *key, const char *row_key,
                         int64_t *ret)
{
    char path[DYNCONFIG_PATH_MAX];
    (void)snprintf(path, sizeof(path), "bootstrap.dcs.%s", row_key);
    const ConfigRow *row = config_schema_find(path);
    if (!row || row->type != CONFIG_TYPE_INT) {
        return fail(c, key, "no schema row (internal error)");
    }
    const json_t *v = json_object_get(doc, key);
    if (ret) {
        *ret = row->def_int;
    }
    if (!v || json_is_null(v)) {
        return 0;
    }
    return check_int_range(c, key, v, row->min, row->max, ret);
}

static int check_bool(Check *c, const char *key, const json_t *v)
{
    bool b;
    if (!v || json_is_null(v) || as_bool(v, &b)) {
        return 0;
    }
    return fail(c, key, "must be a boolean");
}

static int check_row_bool(Check *c, const json_t *doc, const char *key)
{
    char path[DYNCONFIG_PATH_MAX];
    (void)snprintf(path, sizeof(path), "bootstrap.dcs.%s", key);
    const ConfigRow *row = config_schema_find(path);
    if (!row || row->type != CONFIG_TYPE_BOOL) {
        return fail(c, key, "no schema row (internal error)");
    }
    return check_bool(c, key, json_object_get(doc, key));
}

static int check_object(Check *c, const char *key, const json_t *v)
{
    if (!v || json_is_null(v) || json_is_object(v)) {
        return 0;
    }
    return fail(c, key, "must be an object");
}

static int check_string(Check *c, const char *key, const json_t *v)
{
    if (!v || json_is_null(v) || json_is_string(v)) {
        return 0;
    }
    return fail(c, key, "must be a string");
}

static int check_string_list(Check *c, const char *key, const json_t *v)
{
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_array(v)) {
        return fail(c, key, "must be a list of strings");
    }
    size_t i;
    const json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            return fail(c, key, "must be a list of strings");
        }
    }
    return 0;
}

/* Text postgresql.conf can hold: anything but a NUL (pgconf quotes the
 * rest, newlines included). */
static bool conf_text_ok(const json_t *s)
{
    return strlen(json_string_value(s)) == json_string_length(s);
}

/* A value postgresql.conf takes: null (not set), a number, a boolean, or a
 * string without a NUL. */
static int check_conf_scalar(Check *c, const char *key, const json_t *v)
{
    if (json_is_null(v) || json_is_number(v) || json_is_boolean(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(c, key, "must be a string, number or boolean");
    }
    if (!conf_text_ok(v)) {
        return fail(c, key, "must not contain a NUL character");
    }
    return 0;
}

static int check_parameters(Check *c, const json_t *params)
{
    if (!params || json_is_null(params)) {
        return 0;
    }
    if (!json_is_object(params)) {
        return fail(c, "postgresql.parameters", "must be an object");
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)params, name, v)
    {
        char key[DYNCONFIG_PATH_MAX];
        (void)snprintf(key, sizeof(key), "postgresql.parameters.%s", name);
        if (!pgconf_name_valid(name)) {
            char shown[PGCONF_PRINTABLE_MAX];
            return fail(c, "postgresql.parameters", PGCONF_NAME_HINT,
                        pgconf_printable(name, shown, sizeof(shown)));
        }
        int r = check_conf_scalar(c, key, v);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* Patroni's recovery_conf: the settings a replica takes; one it drops or
 * PostgreSQL 13+ does not know is refused, so that what is stored is what
 * a replica writes. */
static int check_recovery_conf(Check *c, const json_t *rc)
{
    int r = check_object(c, "postgresql.recovery_conf", rc);
    if (r < 0 || !json_is_object(rc)) {
        return r;
    }
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)rc, name, v)
    {
        char key[DYNCONFIG_PATH_MAX];
        char shown[PGCONF_PRINTABLE_MAX];
        (void)snprintf(key, sizeof(key), "postgresql.recovery_conf.%s",
                       pgconf_printable(name, shown, sizeof(shown)));
        const char *why = NULL;
        switch (pgconf_recovery_param(name, &why)) {
        case PGCONF_RECOVERY_WRITTEN:
            break;
        case PGCONF_RECOVERY_DROPPED:
            return fail(c, key, "is not written on a replica: %s", why);
        case PGCONF_RECOVERY_UNKNOWN:
            return fail(c, key,
                        "is not a recovery setting of PostgreSQL 13 or later (restore_command, "
                        "archive_cleanup_command, recovery_end_command, recovery_min_apply_delay, "
                        "promote_trigger_file)");
        }
        if ((r = check_conf_scalar(c, key, v)) < 0) {
            return r;
        }
    }
    return 0;
}

static int check_postgresql(Check *c, const json_t *pg)
{
    int r = check_object(c, "postgresql", pg);
    if (r < 0 || !json_is_object(pg)) {
        return r;
    }
    if ((r = check_bool(c, "postgresql.use_pg_rewind", json_object_get(pg, "use_pg_rewind"))) < 0 ||
        (r = check_bool(c, "postgresql.use_slots", json_object_get(pg, "use_slots"))) < 0 ||
        (r = check_parameters(c, json_object_get(pg, "parameters"))) < 0 ||
        (r = check_string_list(c, "postgresql.pg_hba", json_object_get(pg, "pg_hba"))) < 0 ||
        (r = check_string_list(c, "postgresql.pg_ident", json_object_get(pg, "pg_ident"))) < 0 ||
        (r = check_recovery_conf(c, json_object_get(pg, "recovery_conf"))) < 0) {
        return r;
    }
    return 0;
}

static int check_standby_cluster(Check *c, const json_t *sc)
{
    int r = check_object(c, "standby_cluster", sc);
    if (r < 0 || !json_is_object(sc)) {
        return r;
    }
    static const char *const strings[] = { "host", "primary_slot_name", "restore_command",
                                           "archive_cleanup_command" };
    for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
        char key[DYNCONFIG_PATH_MAX];
        (void)snprintf(key, sizeof(key), "standby_cluster.%s", strings[i]);
        if ((r = check_string(c, key, json_object_get(sc, strings[i]))) < 0) {
            return r;
        }
    }
    const json_t *port = json_object_get(sc, "port");
    if (port && !json_is_null(port) &&
        check_int_range(c, "standby_cluster.port", port, 1, 65535, NULL) < 0) {
        return fail(c, "standby_cluster.port", "must be a port between 1 and 65535");
    }
    const json_t *delay = json_object_get(sc, "recovery_min_apply_delay");
    if (delay && !json_is_null(delay) && !json_is_string(delay) && !json_is_integer(delay)) {
        return fail(c, "standby_cluster.recovery_min_apply_delay",
                    "must be a string or an integer");
    }
    if ((r = check_string_list(c, "standby_cluster.create_replica_methods",
                               json_object_get(sc, "create_replica_methods"))) < 0) {
        return r;
    }
    return 0;
}

bool dynconfig_slot_name_valid(const char *name)
{
    size_t n = name ? strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") : 0;
    return n > 0 && n <= 63 && name[n] == '\0';
}

DynconfigSlotType dynconfig_slot_type(const json_t *value)
{
    if (!value || json_is_null(value)) {
        return DYNCONFIG_SLOT_PHYSICAL;
    }
    if (!json_is_object(value)) {
        return DYNCONFIG_SLOT_BAD;
    }
    const json_t *type = json_object_get(value, "type");
    if (type && !json_is_null(type)) {
        const char *t = json_string_value(type);
        return !t                           ? DYNCONFIG_SLOT_BAD
               : strcmp(t, "physical") == 0 ? DYNCONFIG_SLOT_PHYSICAL
               : strcmp(t, "logical") == 0  ? DYNCONFIG_SLOT_LOGICAL
                                            : DYNCONFIG_SLOT_BAD;
    }
    /* Patroni: no type is logical when database and plugin are both given */
    const char *db = json_string_value(json_object_get(value, "database"));
    const char *plugin = json_string_value(json_object_get(value, "plugin"));
    return db && *db && plugin && *plugin ? DYNCONFIG_SLOT_LOGICAL : DYNCONFIG_SLOT_PHYSICAL;
}

bool dynconfig_logical_slot(const json_t *value, const char **ret_database, const char **ret_plugin)
{
    const char *db = json_string_value(json_object_get(value, "database"));
    const char *plugin = json_string_value(json_object_get(value, "plugin"));
    if (dynconfig_slot_type(value) != DYNCONFIG_SLOT_LOGICAL || !db || !*db || !plugin ||
        !*plugin) {
        return false;
    }
    if (ret_database) {
        *ret_database = db;
    }
    if (ret_plugin) {
        *ret_plugin = plugin;
    }
    return true;
}

static int check_slots_in(Check *c, const json_t *slots, const json_t *ignore,
                          DynconfigSlotWhere *where)
{
    *where = (DynconfigSlotWhere){ .ignore_index = -1 };
    if (slots && !json_is_null(slots) && !json_is_object(slots)) {
        return fail(c, "slots", "must be an object of slot names");
    }
    const char *name;
    json_t *v;
    char key[DYNCONFIG_PATH_MAX];
    json_object_foreach((json_t *)slots, name, v)
    {
        (void)snprintf(key, sizeof(key), "slots.%s", name);
        where->slot = name;
        if (!dynconfig_slot_name_valid(name)) {
            return fail(c, key,
                        "a slot name may only contain lower case letters, numbers and the "
                        "underscore, at most 63 of them");
        }
        switch (dynconfig_slot_type(v)) {
        case DYNCONFIG_SLOT_PHYSICAL:
            break;
        case DYNCONFIG_SLOT_LOGICAL:
            if (!dynconfig_logical_slot(v, NULL, NULL)) {
                return fail(c, key,
                            "a logical slot needs \"database\" and \"plugin\" (non-empty "
                            "strings) to be created");
            }
            break;
        case DYNCONFIG_SLOT_BAD:
            return fail(c, key,
                        "must be null or an object whose type is \"physical\" or \"logical\"");
        }
    }
    where->slot = NULL;
    if (!ignore || json_is_null(ignore)) {
        return 0;
    }
    if (!json_is_array(ignore)) {
        return fail(c, "ignore_slots", "must be a list of objects");
    }
    static const char *const fields[] = { "name", "type", "database", "plugin" };
    size_t i;
    const json_t *item;
    json_array_foreach(ignore, i, item)
    {
        where->ignore_index = (ssize_t)i;
        (void)snprintf(key, sizeof(key), "ignore_slots[%zu]", i);
        if (!json_is_object(item)) {
            return fail(c, key, "must be an object of name, type, database and plugin");
        }
        const char *field;
        json_object_foreach((json_t *)item, field, v)
        {
            bool known = false;
            for (size_t f = 0; f < ELEMENTSOF(fields); f++) {
                known = known || strcmp(field, fields[f]) == 0;
            }
            /* an unknown (misspelt) field would leave a matcher that
             * protects every slot */
            if (!known) {
                return fail(c, key, "unknown field \"%.64s\" (name, type, database or plugin)",
                            field);
            }
            if (!json_is_null(v) && !json_is_string(v)) {
                return fail(c, key, "\"%s\" must be a string", field);
            }
        }
        const char *type = json_string_value(json_object_get(item, "type"));
        if (type && *type && strcmp(type, "physical") != 0 && strcmp(type, "logical") != 0) {
            return fail(c, key, "\"type\" must be \"physical\" or \"logical\"");
        }
    }
    where->ignore_index = -1;
    return 0;
}

int dynconfig_check_standby_cluster(const json_t *sc, char *err, size_t errlen)
{
    Check c = { .err = err, .errlen = errlen };
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    return check_standby_cluster(&c, sc);
}

int dynconfig_check_slots(const json_t *slots, const json_t *ignore_slots,
                          DynconfigSlotWhere *where, char *err, size_t errlen)
{
    Check c = { .err = err, .errlen = errlen };
    DynconfigSlotWhere unused;
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    return check_slots_in(&c, slots, ignore_slots, where ? where : &unused);
}

bool dynconfig_truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_TRUE:
        return true;
    default:
        return false;
    }
}

const json_t *dynconfig_permanent_slots(const json_t *doc)
{
    static const char *const names[] = { "permanent_replication_slots", "permanent_slots",
                                         "slots" };
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        const json_t *v = json_object_get(doc, names[i]);
        if (dynconfig_truthy(v)) {
            return v;
        }
    }
    return NULL;
}

static int check_slots(Check *c, const json_t *doc)
{
    DynconfigSlotWhere where;
    return check_slots_in(c, dynconfig_permanent_slots(doc), json_object_get(doc, "ignore_slots"),
                          &where);
}

/* synchronous_mode also takes Patroni 4's "quorum", which the cluster view
 * reads as on. */
static int check_synchronous_mode(Check *c, const json_t *doc)
{
    const json_t *v = json_object_get(doc, "synchronous_mode");
    if (json_is_string(v) && strcmp(json_string_value(v), "quorum") == 0) {
        return 0;
    }
    return check_row_bool(c, doc, "synchronous_mode");
}

#define FAILSAFE_REFUSED                                                                           \
    "failsafe mode is not supported by dbha yet: a primary that cannot renew its leader lease "    \
    "is stopped (fenced) whatever this says; leave it off"

/* failsafe_mode on is refused: dbha fences a primary that cannot reach etcd
 * (Patroni asks the other members and may keep it). */
static int check_failsafe(Check *c, const json_t *doc)
{
    bool on = false;
    const json_t *v = json_object_get(doc, "failsafe_mode");
    if (v && !json_is_null(v) && as_bool(v, &on) && on) {
        return fail(c, "failsafe_mode", FAILSAFE_REFUSED);
    }
    return 0;
}

/* Old names Patroni still reads, checked like the new ones. */
static int check_alias_int(Check *c, const json_t *doc, const char *alias, const char *row_key)
{
    if (json_object_get(doc, row_key)) {
        return 0; /* the new name wins and is checked itself */
    }
    return check_row_int(c, doc, alias, row_key, NULL);
}

int dynconfig_validate(const json_t *doc, char *err, size_t errlen)
{
    Check c = { .err = err, .errlen = errlen };
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    if (!json_is_object(doc)) {
        return fail(&c, "config", "must be an object");
    }
    int64_t ttl, loop_wait, retry_timeout;
    int r;
    if ((r = check_row_int(&c, doc, "ttl", "ttl", &ttl)) < 0 ||
        (r = check_row_int(&c, doc, "loop_wait", "loop_wait", &loop_wait)) < 0 ||
        (r = check_row_int(&c, doc, "retry_timeout", "retry_timeout", &retry_timeout)) < 0 ||
        (r = check_row_int(&c, doc, "maximum_lag_on_failover", "maximum_lag_on_failover", NULL)) <
            0 ||
        (r = check_row_int(&c, doc, "primary_start_timeout", "primary_start_timeout", NULL)) < 0 ||
        (r = check_row_int(&c, doc, "primary_stop_timeout", "primary_stop_timeout", NULL)) < 0 ||
        (r = check_alias_int(&c, doc, "master_start_timeout", "primary_start_timeout")) < 0 ||
        (r = check_alias_int(&c, doc, "master_stop_timeout", "primary_stop_timeout")) < 0 ||
        (r = check_row_int(&c, doc, "synchronous_node_count", "synchronous_node_count", NULL)) <
            0 ||
        (r = check_synchronous_mode(&c, doc)) < 0 ||
        (r = check_row_bool(&c, doc, "synchronous_mode_strict")) < 0 ||
        (r = check_row_bool(&c, doc, "failsafe_mode")) < 0 || (r = check_failsafe(&c, doc)) < 0 ||
        (r = check_row_int(&c, doc, "max_timelines_history", "max_timelines_history", NULL)) < 0) {
        return r;
    }
    /* Keys with no bootstrap.dcs row (dbha ignores them in the file). */
    const json_t *v;
    if ((v = json_object_get(doc, "maximum_lag_on_syncnode")) && !json_is_null(v) &&
        (r = check_int_range(&c, "maximum_lag_on_syncnode", v, -1, INT64_MAX, NULL)) < 0) {
        return r;
    }
    if ((r = check_bool(&c, "pause", json_object_get(doc, "pause"))) < 0 ||
        (r = check_bool(&c, "check_timeline", json_object_get(doc, "check_timeline"))) < 0 ||
        (r = check_standby_cluster(&c, json_object_get(doc, "standby_cluster"))) < 0 ||
        (r = check_postgresql(&c, json_object_get(doc, "postgresql"))) < 0 ||
        (r = check_slots(&c, doc)) < 0) {
        return r;
    }
    /* The config loader's rule: a leader can miss one loop and retry etcd
     * for retry_timeout twice before its lease runs out. */
    if (loop_wait + 2 * retry_timeout > ttl) {
        return fail(&c, "ttl",
                    "must be at least loop_wait + 2 * retry_timeout (%" PRId64 " + 2 * %" PRId64
                    " = %" PRId64 "), not %" PRId64,
                    loop_wait, retry_timeout, loop_wait + 2 * retry_timeout, ttl);
    }
    return 0;
}
