/* libdbha's pure parts: the topology document decoded into DbhaTopology
 * (jansson), replica choice, LSN text, and the pool's slot bookkeeping. No
 * I/O and no clock here, so the unit tests cover all of it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dbha-internal.h"

int dbha_error_set(DbhaError *reterr, int code, const char *fmt, ...)
{
    if (reterr) {
        va_list ap;
        va_start(ap, fmt);
        reterr->code = code;
        (void)vsnprintf(reterr->message, sizeof(reterr->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *dbha_role_to_string(DbhaRole r)
{
    static const char *const table[_DBHA_ROLE_MAX] = {
        [DBHA_ROLE_PRIMARY] = "primary",
        [DBHA_ROLE_REPLICA] = "replica",
    };
    return (unsigned)r < _DBHA_ROLE_MAX ? table[r] : NULL;
}

/* The refcount lives next to the public struct, out of the API's sight. */
typedef struct TopologyBox {
    atomic_uint refs;
    DbhaTopology pub;
    DbhaNode *nodes; /* owned: the primary (if any) first, then the replicas */
    size_t n_nodes;
} TopologyBox;

#define BOX_OF(t) ((TopologyBox *)((char *)(t)-offsetof(TopologyBox, pub)))

static void node_done(DbhaNode *n)
{
    free((char *)n->name);
    free((char *)n->host);
    free((char *)n->api_url);
    free((char *)n->state);
    free((char *)n->tags_json);
}

static void box_free(TopologyBox *b)
{
    if (!b) {
        return;
    }
    for (size_t i = 0; i < b->n_nodes; i++) {
        node_done(&b->nodes[i]);
    }
    free(b->nodes);
    free((char *)b->pub.scope);
    free((char *)b->pub.leader);
    free((char *)b->pub.updated);
    free(b);
}

DbhaTopology *dbha_topology_ref(DbhaTopology *t)
{
    if (t) {
        atomic_fetch_add_explicit(&BOX_OF(t)->refs, 1, memory_order_relaxed);
    }
    return t;
}

DbhaTopology *dbha_topology_unref(DbhaTopology *t)
{
    if (t && atomic_fetch_sub_explicit(&BOX_OF(t)->refs, 1, memory_order_acq_rel) == 1) {
        box_free(BOX_OF(t));
    }
    return NULL;
}

/* An optional string member: absent or null leaves *ret NULL. */
static int opt_string(json_t *obj, const char *key, const char *where, char **ret,
                      DbhaError *reterr)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s\"%s\" is not a string", where, key);
    }
    *ret = strdup(json_string_value(v));
    return *ret ? 0 : dbha_error_set(reterr, -ENOMEM, "out of memory");
}

static int opt_bool(json_t *obj, const char *key, const char *where, bool *ret, DbhaError *reterr)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s\"%s\" is not a boolean", where, key);
    }
    *ret = json_is_true(v);
    return 0;
}

static int decode_node(json_t *obj, bool replica, size_t index, DbhaNode *n, DbhaError *reterr)
{
    char where[64];
    if (replica) {
        (void)snprintf(where, sizeof(where), "replicas[%zu].", index);
    } else {
        (void)snprintf(where, sizeof(where), "primary.");
    }
    if (!json_is_object(obj)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s is not an object",
                              replica ? "a replica" : "primary");
    }
    int r;
    if ((r = opt_string(obj, "name", where, (char **)&n->name, reterr)) < 0 ||
        (r = opt_string(obj, "host", where, (char **)&n->host, reterr)) < 0 ||
        (r = opt_string(obj, "api_url", where, (char **)&n->api_url, reterr)) < 0) {
        return r;
    }
    if (!n->name || !n->host) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s%s missing", where,
                              n->name ? "\"host\"" : "\"name\"");
    }
    if (strlen(n->name) >= DBHA_NAME_MAX || strlen(n->host) >= DBHA_NAME_MAX) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s\"%s\" longer than %d bytes", where,
                              strlen(n->name) >= DBHA_NAME_MAX ? "name" : "host",
                              DBHA_NAME_MAX - 1);
    }
    json_t *port = json_object_get(obj, "port");
    if (!json_is_integer(port) || json_integer_value(port) <= 0 ||
        json_integer_value(port) > 65535) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s\"port\" missing or out of range",
                              where);
    }
    n->port = (int)json_integer_value(port);
    if (replica) {
        if ((r = opt_string(obj, "state", where, (char **)&n->state, reterr)) < 0 ||
            (r = opt_bool(obj, "sync", where, &n->sync, reterr)) < 0 ||
            (r = opt_bool(obj, "noloadbalance", where, &n->noloadbalance, reterr)) < 0) {
            return r;
        }
        json_t *lag = json_object_get(obj, "lag_bytes");
        if (lag && !json_is_null(lag)) {
            if (!json_is_integer(lag)) {
                return dbha_error_set(reterr, -EBADMSG,
                                      "topology: %s\"lag_bytes\" is not an integer", where);
            }
            n->lag_known = true;
            n->lag_bytes = json_integer_value(lag);
        }
    }
    json_t *tags = json_object_get(obj, "tags");
    if (tags && !json_is_null(tags) && !json_is_object(tags)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: %s\"tags\" is not an object", where);
    }
    n->tags_json = tags && json_is_object(tags) ? json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS)
                                                : strdup("{}");
    return n->tags_json ? 0 : dbha_error_set(reterr, -ENOMEM, "out of memory");
}

static void box_freep(TopologyBox **b)
{
    box_free(*b);
    *b = NULL;
}

int dbha_topology_parse(const char *text, size_t len, DbhaTopology **ret, DbhaError *reterr)
{
    if (!text || !ret) {
        return dbha_error_set(reterr, -EINVAL, "topology: no text");
    }
    json_error_t jerr;
    _cleanup_(json_decrefp) json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return dbha_error_set(reterr, -EBADMSG, "topology: invalid JSON at line %d column %d: %s",
                              jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: not a JSON object");
    }
    json_t *version = json_object_get(root, "version");
    if (!json_is_integer(version)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: \"version\" missing or not an integer");
    }
    json_t *replicas = json_object_get(root, "replicas");
    if (!json_is_array(replicas)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: \"replicas\" missing or not an array");
    }
    json_t *primary = json_object_get(root, "primary");
    if (primary && !json_is_null(primary) && !json_is_object(primary)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: \"primary\" is not an object");
    }
    bool has_primary = primary && json_is_object(primary);

    _cleanup_(box_freep) TopologyBox *b = calloc(1, sizeof(*b));
    if (!b) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    atomic_init(&b->refs, 1);
    size_t n_replicas = json_array_size(replicas);
    size_t n = n_replicas + (has_primary ? 1 : 0);
    b->nodes = calloc(n ? n : 1, sizeof(DbhaNode));
    if (!b->nodes) {
        return dbha_error_set(reterr, -ENOMEM, "out of memory");
    }
    b->n_nodes = n;
    b->pub.version = json_integer_value(version);
    int r;
    if ((r = opt_string(root, "scope", "", (char **)&b->pub.scope, reterr)) < 0 ||
        (r = opt_string(root, "leader", "", (char **)&b->pub.leader, reterr)) < 0 ||
        (r = opt_string(root, "updated", "", (char **)&b->pub.updated, reterr)) < 0) {
        return r;
    }
    json_t *tl = json_object_get(root, "timeline");
    if (tl && !json_is_null(tl) && !json_is_integer(tl)) {
        return dbha_error_set(reterr, -EBADMSG, "topology: \"timeline\" is not an integer");
    }
    b->pub.timeline = json_is_integer(tl) ? json_integer_value(tl) : -1;

    size_t k = 0;
    if (has_primary) {
        if ((r = decode_node(primary, false, 0, &b->nodes[k], reterr)) < 0) {
            return r;
        }
        b->pub.primary = &b->nodes[k++];
    }
    b->pub.replicas = &b->nodes[k];
    b->pub.n_replicas = n_replicas;
    for (size_t i = 0; i < n_replicas; i++) {
        if ((r = decode_node(json_array_get(replicas, i), true, i, &b->nodes[k++], reterr)) < 0) {
            return r;
        }
    }
    *ret = &TAKE_PTR(b)->pub;
    return 0;
}

const DbhaNode *dbha_topology_find_replica(const DbhaTopology *t, const char *name)
{
    if (!t || !name) {
        return NULL;
    }
    for (size_t i = 0; i < t->n_replicas; i++) {
        if (strcmp(t->replicas[i].name, name) == 0) {
            return &t->replicas[i];
        }
    }
    return NULL;
}

bool dbha_node_is_healthy_replica(const DbhaNode *n, int64_t max_lag_bytes)
{
    if (!n || !n->state || n->noloadbalance) {
        return false;
    }
    bool streaming = strcmp(n->state, "streaming") == 0;
    bool running = strcmp(n->state, "running") == 0 && n->lag_known;
    if (!streaming && !running) {
        return false;
    }
    if (max_lag_bytes >= 0 && (!n->lag_known || n->lag_bytes > max_lag_bytes)) {
        return false;
    }
    return true;
}

int dbha_topology_pick_replica(const DbhaTopology *t, int64_t max_lag_bytes, unsigned *cursor,
                               const DbhaNode **ret)
{
    if (!t || !cursor || !ret) {
        return -EINVAL;
    }
    size_t n = t->n_replicas;
    for (size_t i = 0; i < n; i++) {
        const DbhaNode *c = &t->replicas[(*cursor + i) % n];
        if (dbha_node_is_healthy_replica(c, max_lag_bytes)) {
            *cursor = (unsigned)((*cursor + i + 1) % n);
            *ret = c;
            return 0;
        }
    }
    return -ENOENT;
}

int dbha_lsn_parse(const char *text, uint64_t *ret)
{
    if (!text || !ret) {
        return -EINVAL;
    }
    unsigned hi, lo;
    int used = 0;
    /* sscanf's %X accepts signs and spaces; insist on hex digits only. */
    size_t hlen = strspn(text, "0123456789abcdefABCDEF");
    if (hlen == 0 || hlen > 8 || text[hlen] != '/') {
        return -EINVAL;
    }
    size_t llen = strspn(text + hlen + 1, "0123456789abcdefABCDEF");
    if (llen == 0 || llen > 8 || text[hlen + 1 + llen] != '\0') {
        return -EINVAL;
    }
    if (sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used] != '\0') {
        return -EINVAL;
    }
    *ret = ((uint64_t)hi << 32) | lo;
    return 0;
}

char *dbha_lsn_format(uint64_t lsn, char *buf, size_t size)
{
    if (buf && size > 0) {
        (void)snprintf(buf, size, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    }
    return buf;
}

bool dbha_lsn_reached(uint64_t replay_lsn, uint64_t want_lsn)
{
    return replay_lsn >= want_lsn;
}

/* ---- pool bookkeeping ---- */

bool dbha_slot_role_valid(const DbhaTopology *t, DbhaRole role, const char *node,
                          int64_t max_lag_bytes)
{
    if (!t || !node) {
        return false;
    }
    if (role == DBHA_ROLE_PRIMARY) {
        return t->primary && strcmp(t->primary->name, node) == 0;
    }
    return dbha_node_is_healthy_replica(dbha_topology_find_replica(t, node), max_lag_bytes);
}

unsigned dbha_slot_needs_check(const DbhaSlot *s, int64_t version, uint64_t now_usec,
                               uint64_t idle_check_usec)
{
    unsigned why = 0;
    if (s->checked_version != version) {
        why |= DBHA_CHECK_TOPOLOGY_CHANGED;
    }
    if (now_usec >= s->idle_since_usec && now_usec - s->idle_since_usec >= idle_check_usec) {
        why |= DBHA_CHECK_IDLE;
    }
    return why;
}

int dbha_slots_pick_idle(const DbhaSlot *slots, size_t n, DbhaRole role, const char *prefer,
                         const DbhaTopology *t, int64_t max_lag_bytes)
{
    int any = -ENOENT;
    for (size_t i = 0; i < n; i++) {
        const DbhaSlot *s = &slots[i];
        if (s->role != role || s->in_use || s->doomed ||
            !dbha_slot_role_valid(t, role, s->node, max_lag_bytes)) {
            continue;
        }
        if (prefer && strcmp(s->node, prefer) == 0) {
            return (int)i;
        }
        if (any < 0) {
            any = (int)i;
        }
    }
    return any;
}

size_t dbha_slots_doom_invalid(DbhaSlot *slots, size_t n, const DbhaTopology *t,
                               int64_t max_lag_bytes)
{
    size_t doomed = 0;
    for (size_t i = 0; i < n; i++) {
        DbhaSlot *s = &slots[i];
        if (s->in_use || s->doomed) {
            continue;
        }
        if (!dbha_slot_role_valid(t, s->role, s->node, max_lag_bytes)) {
            s->doomed = true;
            doomed++;
        }
    }
    return doomed;
}

void dbha_slots_count(const DbhaSlot *slots, size_t n, DbhaRole role, DbhaSlotCounts *ret)
{
    DbhaSlotCounts c = { 0 };
    for (size_t i = 0; i < n; i++) {
        if (slots[i].role != role) {
            continue;
        }
        c.open++;
        if (slots[i].in_use) {
            c.in_use++;
        } else {
            c.idle++;
        }
    }
    *ret = c;
}
