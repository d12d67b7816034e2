/* The topology document (see topology.h). */
#include "topology.h"

#include <errno.h>
#include <string.h>

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *endpoint(const char *name, const char *host, int port, const char *api_url)
{
    return json_pack("{s:s, s:o, s:o, s:o}", "name", name, "host", str_or_null(host), "port",
                     host && port > 0 ? json_integer(port) : json_null(), "api_url",
                     str_or_null(api_url));
}

static json_t *replica_entry(const DcsCluster *c, const DcsMember *m)
{
    json_t *e = endpoint(m->name, m->host, m->port, m->api_url);
    if (!e) {
        return NULL;
    }
    uint64_t lag = 0;
    bool has_lag = dcs_member_lag(c, m, &lag) >= 0;
    json_t *tags = m->tags ? json_deep_copy(m->tags) : json_object();
    const json_t *nlb = m->tags ? json_object_get(m->tags, "noloadbalance") : NULL;
    if (json_object_set_new(e, "state", json_string(dcs_member_state_text(c, m))) < 0 ||
        json_object_set_new(e, "lag_bytes", has_lag ? json_integer((json_int_t)lag) : json_null()) <
            0 ||
        json_object_set_new(e, "sync", json_boolean(dcs_cluster_is_sync_standby(c, m->name))) < 0 ||
        json_object_set_new(e, "noloadbalance", json_boolean(json_is_true(nlb))) < 0 ||
        json_object_set_new(e, "upstream", str_or_null(m->upstream)) < 0 ||
        json_object_set_new(e, "tags", tags) < 0) {
        json_decref(e);
        return NULL;
    }
    return e;
}

int topology_build(const DcsCluster *c, const char *scope, const TopologySelf *self, json_t **ret)
{
    if (!c || !scope || (self && !self->name)) {
        return -EINVAL;
    }
    const char *leader = self ? self->name : c->leader ? c->leader->name : NULL;
    const DcsMember *lm = leader ? dcs_cluster_get_member(c, leader) : NULL;
    int64_t timeline = self && self->timeline > 0 ? self->timeline : lm ? lm->timeline : 0;
    json_t *primary = NULL;
    if (self) {
        primary = endpoint(self->name, self->host, self->port, self->api_url);
    } else if (leader) {
        primary =
            endpoint(leader, lm ? lm->host : NULL, lm ? lm->port : 0, lm ? lm->api_url : NULL);
    } else {
        primary = json_null();
    }
    json_t *replicas = json_array();
    json_t *doc =
        json_pack("{s:s, s:o, s:o, s:o, s:o}", "scope", scope, "leader", str_or_null(leader),
                  "timeline", timeline > 0 ? json_integer(timeline) : json_null(), "primary",
                  primary, "replicas", replicas);
    if (!doc) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        if (leader && strcmp(m->name, leader) == 0) {
            continue;
        }
        json_t *e = replica_entry(c, m);
        if (!e || json_array_append_new(replicas, e) < 0) {
            json_decref(doc);
            return -ENOMEM;
        }
    }
    *ret = doc;
    return 0;
}

int topology_lag_bucket(const json_t *lag_bytes)
{
    if (!json_is_integer(lag_bytes) || json_integer_value(lag_bytes) < 0) {
        return -1;
    }
    uint64_t q = (uint64_t)json_integer_value(lag_bytes) / TOPOLOGY_LAG_QUANTUM;
    int b = 0;
    while (q > 0) {
        b++;
        q >>= 1;
    }
    return b;
}

/* A copy without version and updated, each lag_bytes replaced by its bucket. */
static json_t *normalized(const json_t *doc)
{
    json_t *d = json_deep_copy(doc);
    if (!d) {
        return NULL;
    }
    (void)json_object_del(d, "version");
    (void)json_object_del(d, "updated");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(d, "replicas"), i, r)
    {
        if (json_is_object(r) && json_object_set_new(r, "lag_bytes",
                                                     json_integer(topology_lag_bucket(
                                                         json_object_get(r, "lag_bytes")))) < 0) {
            json_decref(d);
            return NULL;
        }
    }
    return d;
}

/* What a router reads of replica name in view c, lag_bytes as its bucket;
 * null when c has no such member. NULL: out of memory. */
static json_t *routing_entry(const DcsCluster *c, const char *name)
{
    const DcsMember *m = dcs_cluster_get_member(c, name);
    if (!m) {
        return json_null();
    }
    json_t *e = replica_entry(c, m);
    if (e && json_object_set_new(
                 e, "lag_bytes",
                 json_integer(topology_lag_bucket(json_object_get(e, "lag_bytes")))) < 0) {
        json_decref(e);
        e = NULL;
    }
    return e;
}

bool topology_member_changed(const DcsCluster *before, const DcsCluster *after, const char *name)
{
    if (!before || !after || !name) {
        return true;
    }
    if ((before->leader && strcmp(before->leader->name, name) == 0) ||
        (after->leader && strcmp(after->leader->name, name) == 0)) {
        /* the leader's key also carries the positions every replica's lag
         * is measured against: compare the whole documents */
        json_t *da = NULL, *db = NULL;
        bool changed = topology_build(before, "", NULL, &da) < 0 ||
                       topology_build(after, "", NULL, &db) < 0 || !topology_same(da, db);
        json_decref(da);
        json_decref(db);
        return changed;
    }
    json_t *a = routing_entry(before, name), *b = routing_entry(after, name);
    bool changed = !a || !b || !json_equal(a, b);
    json_decref(a);
    json_decref(b);
    return changed;
}

bool topology_same(const json_t *a, const json_t *b)
{
    if (!a || !b) {
        return a == b;
    }
    json_t *na = normalized(a), *nb = normalized(b);
    bool same = na && nb && json_equal(na, nb);
    json_decref(na);
    json_decref(nb);
    return same;
}

int64_t topology_version(const json_t *doc)
{
    const json_t *v = json_object_get(doc, "version");
    return json_is_integer(v) && json_integer_value(v) > 0 ? (int64_t)json_integer_value(v) : 0;
}

int topology_stamp(json_t *doc, int64_t version, const char *updated)
{
    if (!json_is_object(doc) || version < 0 || !updated) {
        return -EINVAL;
    }
    if (json_object_set_new(doc, "version", json_integer(version)) < 0 ||
        json_object_set_new(doc, "updated", json_string(updated)) < 0) {
        return -ENOMEM;
    }
    return 0;
}

static const char *const source_table[_TOPOLOGY_SOURCE_MAX] = {
    [TOPOLOGY_SOURCE_KEY] = "key",
    [TOPOLOGY_SOURCE_NO_KEY] = "no-key",
    [TOPOLOGY_SOURCE_STALE] = "stale",
};

const char *topology_source_to_string(TopologySource s)
{
    return (unsigned)s < _TOPOLOGY_SOURCE_MAX ? source_table[s] : NULL;
}

TopologySource topology_source_from_string(const char *s)
{
    for (int i = 0; s && i < _TOPOLOGY_SOURCE_MAX; i++) {
        if (strcmp(s, source_table[i]) == 0) {
            return (TopologySource)i;
        }
    }
    return _TOPOLOGY_SOURCE_INVALID;
}

const char *topology_leader(const json_t *doc)
{
    return json_string_value(json_object_get(doc, "leader"));
}

static bool same_name(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

TopologySource topology_source(const DcsCluster *c)
{
    if (!c || !c->topology) {
        return TOPOLOGY_SOURCE_NO_KEY;
    }
    return same_name(topology_leader(c->topology), c->leader ? c->leader->name : NULL)
               ? TOPOLOGY_SOURCE_KEY
               : TOPOLOGY_SOURCE_STALE;
}

int topology_select(const DcsCluster *c, const char *scope, json_t **ret_doc,
                    TopologySource *ret_source)
{
    if (!c || !scope || !ret_doc || !ret_source) {
        return -EINVAL;
    }
    TopologySource s = topology_source(c);
    if (s == TOPOLOGY_SOURCE_KEY) {
        *ret_doc = json_incref(c->topology);
        *ret_source = s;
        return 0;
    }
    json_t *doc = NULL;
    int r = topology_build(c, scope, NULL, &doc);
    if (r < 0) {
        return r;
    }
    int64_t version = s == TOPOLOGY_SOURCE_STALE ? topology_version(c->topology) + 1 : 0;
    if (json_object_set_new(doc, "version", json_integer(version)) < 0) {
        json_decref(doc);
        return -ENOMEM;
    }
    *ret_doc = doc;
    *ret_source = s;
    return 0;
}

int64_t topology_next_version(const json_t *current, const char *writer)
{
    if (!current) {
        return 1;
    }
    return topology_version(current) + (same_name(topology_leader(current), writer) ? 1 : 2);
}
