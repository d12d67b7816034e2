/* Whom a replica streams from: the member its `replicatefrom` tag names
 * (cascading replication) while that member can serve it, else the leader.
 * Pure: no I/O, no clock, no logging; every pointer returned is borrowed
 * from the cluster view (or a static string). */
#pragma once

#include <stdbool.h>

#include "dcs.h"

typedef struct UpstreamChoice {
    const DcsMember *member; /* borrowed: the upstream; NULL when there is none (no leader
                                with an address and no usable replicatefrom member) */
    bool cascading;          /* member is the replicatefrom member, not the leader */
    const char *why_not;     /* static: why the replicatefrom member is not used; NULL when
                                it is, when there is no tag, or when the tag names the leader */
} UpstreamChoice;

/* The replicatefrom tag in member m's key; NULL when absent, empty or not a
 * string. */
const char *upstream_tag(const DcsMember *m);

/* Why member m cannot serve as a cascading upstream, NULL when it can: the
 * leader can; another member must have an address, state "running", role
 * replica and a walreceiver that streams (replication_state "streaming"),
 * so that a chain never ends at a member that has nothing to send. Static
 * text ("it is not running", ...). */
const char *upstream_problem(const DcsCluster *c, const DcsMember *m);

/* The upstream of the replica `me` whose tag is replicatefrom (NULL or "":
 * none). avoid (may be NULL) names a member this replica found it cannot
 * stream from: it counts as unavailable. The replicatefrom member is used
 * when it is in the view, is not `me`, has no upstream_problem(), is not
 * `avoid`, and the chain of replicatefrom tags from it does not lead back to
 * `me` (a loop: every member on it follows the leader); else the leader.
 * The leader itself gets no upstream. Always fills *ret. */
void upstream_choose(const DcsCluster *c, const char *me, const char *replicatefrom,
                     const char *avoid, UpstreamChoice *ret);

/* Names of the members whose replicatefrom tag names `me` (other than `me`
 * and the leader): the ones a replica keeps a replication slot for. Calls
 * fn(m, userdata) for each, in name order. Returns how many. */
size_t upstream_foreach_downstream(const DcsCluster *c, const char *me,
                                   void (*fn)(const DcsMember *m, void *userdata), void *userdata);
