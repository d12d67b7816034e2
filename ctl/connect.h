/* Which cluster a dbctl verb talks to and how: the etcd endpoints, auth and
 * TLS, namespace and scope, from -c CONFIG and/or --etcd/--scope. Shared by
 * every verb that reads or writes the cluster in etcd. */
#pragma once

#include <libpq-fe.h>

#include "config.h"
#include "dcs-store.h"
#include "dcs.h"
#include "etcd.h"

/* dbctl's budget for one etcd call, failover between endpoints included. */
#define CTL_ETCD_DEADLINE_USEC (3 * 1000 * 1000ULL)
#define CTL_ETCD_REQUEST_USEC  (1500 * 1000ULL)
#define CTL_ETCD_CONNECT_USEC  (500 * 1000ULL)

typedef struct CtlTarget {
    char *scope;        /* owned */
    DcsPaths paths;     /* for scope under the namespace */
    EtcdClient *client; /* owned; no I/O has happened yet */
    Config *config;     /* owned; the -c CONFIG file, NULL without one */
} CtlTarget;

/* The typed writes of the target's keys (its client and paths, borrowed). */
static inline DcsStore ctl_store(CtlTarget *t)
{
    return (DcsStore){ .etcd = t->client, .paths = &t->paths };
}

/* When no -c CONFIG was given: arg_config becomes the file named by
 * DBCTL_CONFIG_FILE, else PATRONICTL_CONFIG_FILE (either must be readable),
 * else the first that exists of ~/.config/dbha/dbctl.yaml and patronictl's
 * ~/.config/patroni/patronictl.yaml ($XDG_CONFIG_HOME for ~/.config).
 * Else it stays NULL. -EINVAL (one line on stderr) for a named file that
 * cannot be read. */
int ctl_resolve_config(void);

/* Resolves the target from the global options (arg_config, arg_etcd,
 * arg_scope), the verb's own namespace and scope overrides (NULL: none) and
 * creates the client. verb names the command in messages. On a usage or
 * config problem prints one precise line (or the config diagnostics) to
 * stderr and returns -EINVAL; -ENOMEM otherwise. 0 and *ret on success. */
int ctl_target_open(const char *verb, const char *namespace_arg, const char *scope_arg,
                    CtlTarget *ret);
void ctl_target_done(CtlTarget *t);

/* ctl_target_open, then one read of the cluster. Returns the verb's exit
 * status: 0 with *ret (free with dcs_cluster_free; t then needs
 * ctl_target_done), 2 for a usage or config problem, 1 when etcd cannot be
 * read (one line on stderr naming the cluster and the etcd error). t is
 * always safe to pass to ctl_target_done. */
int ctl_read_cluster(const char *verb, const char *scope_arg, CtlTarget *t, DcsCluster **ret);

/* _cleanup_ helpers for libpq handles (NULL-safe). */
void ctl_pq_finishp(PGconn **c);
void ctl_pq_clearp(PGresult **r);
