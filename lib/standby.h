/* Patroni's standby_cluster section: a cluster whose leader (the standby
 * leader) follows a remote primary, or restores WAL from an archive, and
 * never takes writes; its other members follow the standby leader. Pure: the
 * section is read from the JSON kept in ConfigDcs (the file's bootstrap.dcs
 * or the `config` key); every pointer returned is borrowed from it. */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#define STANDBY_DELAY_MAX 64

typedef struct StandbyCluster {
    const char *host;              /* NULL: none (WAL comes from restore_command only) */
    int port;                      /* 5432 when not given (libpq's default) */
    const char *primary_slot_name; /* slot on the remote primary; NULL: none */
    const char *restore_command;   /* NULL: none */
    const char *archive_cleanup_command;
    char recovery_min_apply_delay[STANDBY_DELAY_MAX]; /* "" when not given */
    const json_t *create_replica_methods; /* array of names, NULL: not given (basebackup) */
} StandbyCluster;

/* Patroni's is_standby_cluster(): sc is an object whose host, port or
 * restore_command is set (true in Python's sense). */
bool standby_cluster_active(const json_t *sc);

/* Reads an active section that dynconfig_check_standby_cluster() accepts.
 * Returns 1 and *ret, 0 when sc describes no standby cluster, -EINVAL when
 * it does but cannot be read (then no member may follow it or take writes). */
int standby_cluster_read(const json_t *sc, StandbyCluster *ret);
