/* Patroni's standby_cluster section (lib/standby.h). */
#include "standby.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config-schema.h"
#include "config.h"
#include "dynconfig.h"

bool standby_cluster_active(const json_t *sc)
{
    return json_is_object(sc) && (dynconfig_truthy(json_object_get(sc, "host")) ||
                                  dynconfig_truthy(json_object_get(sc, "port")) ||
                                  dynconfig_truthy(json_object_get(sc, "restore_command")));
}

static const char *text(const json_t *sc, const char *key)
{
    const char *s = json_string_value(json_object_get(sc, key));
    return s && *s ? s : NULL;
}

int standby_cluster_read(const json_t *sc, StandbyCluster *ret)
{
    *ret = (StandbyCluster){ .port = 5432 };
    if (!standby_cluster_active(sc)) {
        return 0;
    }
    if (dynconfig_check_standby_cluster(sc, NULL, 0) < 0) {
        return -EINVAL;
    }
    const json_t *port = json_object_get(sc, "port");
    int64_t n = 0;
    if (json_is_integer(port)) {
        n = json_integer_value(port);
    } else if (json_is_string(port) && config_parse_int(json_string_value(port), &n) < 0) {
        return -EINVAL;
    }
    if (n > 0 && n <= 65535) {
        ret->port = (int)n;
    }
    ret->host = text(sc, "host");
    ret->primary_slot_name = text(sc, "primary_slot_name");
    ret->restore_command = text(sc, "restore_command");
    ret->archive_cleanup_command = text(sc, "archive_cleanup_command");
    const json_t *delay = json_object_get(sc, "recovery_min_apply_delay");
    if (json_is_integer(delay)) {
        (void)snprintf(ret->recovery_min_apply_delay, sizeof(ret->recovery_min_apply_delay),
                       "%" JSON_INTEGER_FORMAT, json_integer_value(delay));
    } else if (json_is_string(delay) &&
               json_string_length(delay) < sizeof(ret->recovery_min_apply_delay)) {
        memcpy(ret->recovery_min_apply_delay, json_string_value(delay),
               json_string_length(delay) + 1);
    } else if (json_is_string(delay)) {
        return -EINVAL;
    }
    const json_t *methods = json_object_get(sc, "create_replica_methods");
    ret->create_replica_methods = json_is_array(methods) ? methods : NULL;
    return 1;
}
