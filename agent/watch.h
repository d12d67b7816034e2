/* The watch-fed view of the cluster: a thread keeps a cache of the
 * cluster's prefix (lib/kvcache.h) with one etcd watch, and tells the loop
 * through an eventfd when to look: a tick for a change to the leader,
 * initialize, config, failover or sync key (or a watch that ended), and on
 * the leader for a member that joined or left (its slot); or, on the
 * leader, a topology publish when another member's key changed what a
 * router reads (topology_member_changed). Its own member key wakes nothing. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dcs.h"
#include "etcd.h"

/* How long a read waits for the cache to reach the revision the caller's
 * own etcd answers showed, before the caller reads etcd instead. */
#define WATCH_CACHE_WAIT_USEC (100 * 1000ULL)

typedef struct ClusterWatch ClusterWatch;

/* paths is borrowed and must outlive the watch; me is copied. Returns 0 or
 * a negative errno (not logged). */
int cluster_watch_new(const DcsPaths *paths, const char *me, ClusterWatch **ret);
/* Starts the thread with its own client (taken). Returns 0 or -errno. */
int cluster_watch_start(ClusterWatch *w, EtcdClient *client);
/* Stops the thread (wakes its watch), frees. Accepts NULL. */
ClusterWatch *cluster_watch_free(ClusterWatch *w);

/* Readable when the thread asks the loop to look. */
int cluster_watch_fd(const ClusterWatch *w);
/* Reads the eventfd and what was asked since: a tick, a topology publish. */
void cluster_watch_take(ClusterWatch *w, bool *ret_tick, bool *ret_routing);

/* The view from the cache, once it holds at least revision `seen` (the
 * highest this agent's own etcd answers showed: lib/kvcache.h says why that
 * is safe), waiting up to WATCH_CACHE_WAIT_USEC unless the last read found
 * the cache behind (when something else writes to the same etcd the
 * revision runs ahead of our prefix's and the cache never catches up).
 * Returns 0, -ETIMEDOUT (behind), -ESTALE (not loaded) or -ENOMEM. */
int cluster_watch_view(ClusterWatch *w, int64_t seen, uint64_t now_usec, DcsCluster **ret);
int64_t cluster_watch_revision(const ClusterWatch *w);
/* Other members' key writes the leader found routing-neutral. */
uint64_t cluster_watch_neutral(const ClusterWatch *w);
