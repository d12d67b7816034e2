/* The topology document: what routers need from the cluster, in one key.
 *
 * The leader writes it to /<namespace>/<scope>/topology (not leased: it
 * outlives the leader) when something a router acts on changes, and every
 * agent serves its copy at GET /topology; `dbctl topology -o json` prints
 * it. Shape (docs/topology.md):
 *
 *   {"version": 12, "scope": "demo", "leader": "node1", "timeline": 3,
 *    "primary": {"name", "host", "port", "api_url"} | null,
 *    "replicas": [{"name", "host", "port", "api_url", "state", "lag_bytes",
 *                  "sync", "noloadbalance", "upstream", "tags"}, ...],
 *    "updated": "2026-11-27T13:00:00.123456+00:00"}
 *
 * Pure: no I/O. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dcs.h"

/* lag_bytes below this are "no lag" for the rewrite decision; above it the
 * document is rewritten each time the lag doubles or halves. */
#define TOPOLOGY_LAG_QUANTUM (64 * 1024)

/* The writing leader's own entry: fresher than its member key, which may
 * still say "replica" in the tick of its promotion. */
typedef struct TopologySelf {
    const char *name;
    const char *host;
    int port;
    const char *api_url;
    int64_t timeline; /* 0: the leader member key's */
} TopologySelf;

/* Builds the document, without "version" and "updated", from view c. The
 * leader is self when given, else the member the leader key names (none:
 * "leader" and "primary" are null). Every other member is a replica, sorted
 * by name; "state" is dcs_member_state_text's. Returns 0 and *ret (a new
 * reference), -EINVAL, -ENOMEM. */
int topology_build(const DcsCluster *c, const char *scope, const TopologySelf *self, json_t **ret);

/* Whether member `name`'s key changing from its value in view `before` to
 * its value in view `after` changes what a router reads of that member:
 * its replica entry as topology_build makes it (state, lag_bytes by
 * bucket, sync, noloadbalance, upstream, tags, host, port, api_url); when
 * the leader key names it, the whole document (topology_same: its key
 * holds the positions every replica's lag is measured against); a member
 * that joined or left changed. Each entry is built in its own view. What
 * it does not see: changes of other keys between the two views (the
 * leader, sync, config keys wake the loop by themselves). The leader
 * uses it on each other member's key write it watches, to publish the
 * topology at once only when a router would notice (a replica's
 * xlog_location moving inside its lag bucket is not such a change).
 * true also on a NULL argument or out of memory: a needless look beats a
 * missed change. Pure. */
bool topology_member_changed(const DcsCluster *before, const DcsCluster *after, const char *name);

/* The lag's bucket: 0 below TOPOLOGY_LAG_QUANTUM, then 1 + log2(bytes /
 * TOPOLOGY_LAG_QUANTUM); -1 for an unknown lag (a null or absent value). */
int topology_lag_bucket(const json_t *lag_bytes);

/* true when a router routes the same by a and b: equal but for "version",
 * "updated", and lag_bytes values in the same bucket. NULLs equal only each
 * other. */
bool topology_same(const json_t *a, const json_t *b);

/* Which document a reader follows (topology_select). The key's document
 * only while its "leader" is the member the leader key names (both null
 * agree): the key is not leased, so it outlives the leader that wrote it
 * (a cluster moved back to Patroni keeps dbha's last one forever), and in
 * a failover the leader key moves a moment before the new leader rewrites
 * the key. A leader key absent while the document names a leader is a
 * disagreement: nobody may run a writable primary then. */
typedef enum TopologySource {
    TOPOLOGY_SOURCE_KEY,    /* the key's document agrees with the leader key */
    TOPOLOGY_SOURCE_NO_KEY, /* no topology key: built from the member keys */
    TOPOLOGY_SOURCE_STALE,  /* the key names another leader: built from the member keys */
    _TOPOLOGY_SOURCE_MAX,
    _TOPOLOGY_SOURCE_INVALID = -EINVAL,
} TopologySource;

/* "key", "no-key", "stale"; NULL out of range. */
const char *topology_source_to_string(TopologySource s);
TopologySource topology_source_from_string(const char *s);

/* The document's "leader": its string, NULL when null, absent or not a
 * string (also for a NULL doc). Borrowed from doc. */
const char *topology_leader(const json_t *doc);

/* Which document view c's readers follow (see TopologySource). Pure. */
TopologySource topology_source(const DcsCluster *c);

/* The document a reader of view c follows: the key's (a new reference to
 * c->topology) when topology_source says TOPOLOGY_SOURCE_KEY, else the one
 * topology_build makes from the leader and member keys, with "version" 0
 * without a key and the key's version + 1 when it is stale (a reader's own
 * number: the next leader's write skips it, topology_next_version). Returns
 * 0 with *ret_doc (a new reference) and *ret_source, -EINVAL, -ENOMEM. */
int topology_select(const DcsCluster *c, const char *scope, json_t **ret_doc,
                    TopologySource *ret_source);

/* The version leader `writer` gives the document it writes over `current`
 * (the key's document, NULL when absent): current's + 1, or + 2 when current
 * names another leader, so that it is newer than the version readers gave
 * the document they built while the leader key and the key disagreed. */
int64_t topology_next_version(const json_t *current, const char *writer);

/* doc's "version" (0 when absent or not a positive integer). */
int64_t topology_version(const json_t *doc);

/* Sets "version" and "updated" (ISO 8601, as given). Returns 0, -EINVAL, -ENOMEM. */
int topology_stamp(json_t *doc, int64_t version, const char *updated);
