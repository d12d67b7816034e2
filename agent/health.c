/* REST health-check decision, written to answer exactly what Patroni 3.0.2's
 * RestApiHandler.do_GET / do_GET_liveness / do_GET_readiness answer, so that
 * HAProxy and Kubernetes checks written for Patroni keep working. Comments
 * marked "Patroni:" point at behaviour we copy on purpose even where it is
 * surprising. */
#include "health.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

static const char *const method_table[_HEALTH_METHOD_MAX] = {
    [HEALTH_METHOD_GET] = "GET",
    [HEALTH_METHOD_HEAD] = "HEAD",
    [HEALTH_METHOD_OPTIONS] = "OPTIONS",
};

static const char *const pg_state_table[_HEALTH_PG_MAX] = {
    [HEALTH_PG_RUNNING] = "running",       [HEALTH_PG_STARTING] = "starting",
    [HEALTH_PG_RESTARTING] = "restarting", [HEALTH_PG_STOPPING] = "stopping",
    [HEALTH_PG_STOPPED] = "stopped",       [HEALTH_PG_CRASHED] = "crashed",
    [HEALTH_PG_OTHER] = "other",
};

static const char *const role_table[_HEALTH_ROLE_MAX] = {
    [HEALTH_ROLE_PRIMARY] = "primary",
    [HEALTH_ROLE_REPLICA] = "replica",
    [HEALTH_ROLE_STANDBY_LEADER] = "standby_leader",
    [HEALTH_ROLE_DEMOTED] = "demoted",
    [HEALTH_ROLE_UNINITIALIZED] = "uninitialized",
};

static const char *table_to_string(const char *const *table, size_t n, int i)
{
    return i >= 0 && (size_t)i < n ? table[i] : NULL;
}

static int table_from_string(const char *const *table, size_t n, const char *s)
{
    if (!s) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (table[i] && strcmp(table[i], s) == 0) {
            return (int)i;
        }
    }
    return -EINVAL;
}

const char *health_method_to_string(HealthMethod m)
{
    return table_to_string(method_table, ELEMENTSOF(method_table), m);
}

HealthMethod health_method_from_string(const char *s)
{
    return table_from_string(method_table, ELEMENTSOF(method_table), s);
}

const char *health_pg_state_to_string(HealthPgState s)
{
    return table_to_string(pg_state_table, ELEMENTSOF(pg_state_table), s);
}

HealthPgState health_pg_state_from_string(const char *s)
{
    return table_from_string(pg_state_table, ELEMENTSOF(pg_state_table), s);
}

const char *health_role_to_string(HealthRole r)
{
    return table_to_string(role_table, ELEMENTSOF(role_table), r);
}

HealthRole health_role_from_string(const char *s)
{
    int r = table_from_string(role_table, ELEMENTSOF(role_table), s);
    /* Patroni 3.0.2 writes "master"; accept it when reading its documents. */
    if (r < 0 && s && strcmp(s, "master") == 0) {
        r = HEALTH_ROLE_PRIMARY;
    }
    return r;
}

/* ---- ?lag= parsing: Patroni's utils.parse_int(value, 'B') ---------------- */

/* Python's str.strip() set for ASCII. */
static bool py_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static bool is_digit_base(char c, int base, int *ret_digit)
{
    int d;
    if (c >= '0' && c <= '9') {
        d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
    } else {
        return false;
    }
    if (d >= base) {
        return false;
    }
    *ret_digit = d;
    return true;
}

/* Round half to even without libm: Patroni's rint() (Python 3's round()). */
static double round_half_even(double v)
{
    if (!(v > -4503599627370496.0 && v < 4503599627370496.0)) {
        return v; /* |v| >= 2^52 is integral already (or inf/nan) */
    }
    int64_t ti = (int64_t)v; /* toward zero */
    double t = (double)ti;
    double d = v - t;
    if (d > 0.5 || (d == 0.5 && (ti & 1))) {
        return t + 1;
    }
    if (d < -0.5 || (d == -0.5 && (ti & 1))) {
        return t - 1;
    }
    return t;
}

static int double_to_int64(double v, int64_t *ret)
{
    if (v != v) {
        return -EINVAL; /* nan: Python's int() raises, no limit applies */
    }
    if (v >= 9223372036854775807.0) {
        *ret = INT64_MAX;
    } else if (v <= -9223372036854775808.0) {
        *ret = INT64_MIN;
    } else {
        *ret = (int64_t)v;
    }
    return 0;
}

/* strtol as Patroni's regexes do it: ^[-+]?0x[0-9a-fA-F]+ (hex), then
 * ^[-+]?0[0-7]* (octal), then ^[-+]?[1-9][0-9]* (decimal). Saturates.
 * Returns the number of characters consumed, 0 for no match. */
static size_t py_strtol(const char *s, size_t len, int64_t *ret)
{
    size_t i = 0;
    bool neg = false;
    int base;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    int d;
    if (i + 2 < len && s[i] == '0' && s[i + 1] == 'x' && is_digit_base(s[i + 2], 16, &d)) {
        base = 16;
        i += 2;
    } else if (i < len && s[i] == '0') {
        base = 8;
    } else if (i < len && s[i] >= '1' && s[i] <= '9') {
        base = 10;
    } else {
        return 0;
    }

    uint64_t acc = 0;
    bool overflow = false;
    size_t start = i;
    while (i < len && is_digit_base(s[i], base, &d)) {
        if (acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) {
            overflow = true;
        } else {
            acc = acc * (uint64_t)base + (uint64_t)d;
        }
        i++;
    }
    if (i == start) {
        return 0;
    }
    if (neg) {
        *ret = overflow || acc > (uint64_t)INT64_MAX + 1 ? INT64_MIN : (int64_t)(0 - acc);
    } else {
        *ret = overflow || acc > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)acc;
    }
    return i;
}

/* Patroni's DBL_RE ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)? followed by
 * float(). Returns the number of characters consumed, 0 for no match. */
static size_t py_strtod(const char *s, size_t len, double *ret)
{
    size_t i = 0, end;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        i++;
    }
    size_t int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    size_t int_end = i;
    if (i < len && s[i] == '.' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
    } else if (int_end == int_start) {
        return 0; /* [0-9]+ must match somewhere */
    }
    end = i;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < len && (s[j] == '-' || s[j] == '+')) {
            j++;
        }
        size_t exp_start = j;
        while (j < len && s[j] >= '0' && s[j] <= '9') {
            j++;
        }
        if (j > exp_start) {
            end = j;
        }
    }

    char buf[HEALTH_QUERY_FIELD_MAX + 1];
    if (end >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, s, end);
    buf[end] = '\0';
    *ret = strtod(buf, NULL);
    return end;
}

typedef struct LagUnit {
    const char *name;
    double factor;     /* bytes */
    double round_step; /* Patroni rounds to a multiple of the next smaller unit */
} LagUnit;

static const LagUnit lag_units[] = {
    { "B", 1.0, 0.0 },
    { "kB", 1024.0, 1.0 },
    { "MB", 1048576.0, 1024.0 },
    { "GB", 1073741824.0, 1048576.0 },
    { "TB", 1099511627776.0, 1073741824.0 },
};

int health_parse_lag(const char *s, int64_t *ret)
{
    if (!s || !ret) {
        return -EINVAL;
    }
    size_t len = strlen(s);
    while (len > 0 && py_isspace(s[len - 1])) {
        len--;
    }
    while (len > 0 && py_isspace(*s)) {
        s++;
        len--;
    }

    int64_t ival = 0;
    double dval = 0;
    bool is_double = false;
    size_t n = py_strtol(s, len, &ival);
    /* Patroni: `val is None and unit.startswith('.') or unit and unit[0] in
     * ('.', 'e', 'E')` switches to strtod on the whole value. */
    if ((n == 0 && len > 0 && s[0] == '.') ||
        (n < len && (s[n] == '.' || s[n] == 'e' || s[n] == 'E'))) {
        n = py_strtod(s, len, &dval);
        is_double = true;
    }
    if (n == 0) {
        return -EINVAL;
    }

    const char *unit = s + n;
    size_t ulen = len - n;
    while (ulen > 0 && py_isspace(*unit)) {
        unit++;
        ulen--;
    }
    if (ulen == 0) {
        if (!is_double) {
            *ret = ival;
            return 0;
        }
        return double_to_int64(round_half_even(dval), ret);
    }

    for (size_t i = 0; i < ELEMENTSOF(lag_units); i++) {
        const LagUnit *u = &lag_units[i];
        if (strlen(u->name) != ulen || memcmp(u->name, unit, ulen) != 0) {
            continue;
        }
        /* Patroni multiplies in floating point, as we do. */
        double v = (is_double ? dval : (double)ival) * u->factor;
        if (u->round_step > 0) {
            v = round_half_even(v / u->round_step) * u->round_step;
        }
        return double_to_int64(round_half_even(v), ret);
    }
    return -EINVAL; /* case matters: "KB" and "mb" are not units to Patroni */
}

/* ---- query string: Python's parse_qs(keep_blank_values=False) ------------- */

typedef struct QueryField {
    const char *name_raw;
    size_t name_len;
    const char *value_raw;
    size_t value_len;
} QueryField;

/* Next '&'-separated field that has '=' and a non-empty raw value (parse_qs
 * drops the others). Returns false at the end. */
static bool query_next(const char **cursor, QueryField *ret)
{
    const char *p = *cursor;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t flen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', flen);
        const char *next = amp ? amp + 1 : p + flen;
        if (eq && (size_t)(eq - p) + 1 < flen) {
            *ret = (QueryField){
                .name_raw = p,
                .name_len = (size_t)(eq - p),
                .value_raw = eq + 1,
                .value_len = flen - (size_t)(eq - p) - 1,
            };
            *cursor = next;
            return true;
        }
        p = next;
    }
    *cursor = p;
    return false;
}

static int hex_value(char c)
{
    int d;
    return is_digit_base(c, 16, &d) ? d : -1;
}

/* '+' to space, then %XX unquoting; an invalid escape stays as it is.
 * Returns false when the result does not fit in size - 1 bytes. */
static bool query_decode(const char *raw, size_t len, char *buf, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len && hex_value(raw[i + 1]) >= 0 &&
                   hex_value(raw[i + 2]) >= 0) {
            c = (char)(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
            i += 2;
        }
        if (o + 1 >= size) {
            return false;
        }
        buf[o++] = c;
    }
    buf[o] = '\0';
    return true;
}

static bool query_name_is(const QueryField *f, const char *name)
{
    char buf[HEALTH_QUERY_FIELD_MAX + 1];
    return query_decode(f->name_raw, f->name_len, buf, sizeof(buf)) && strcmp(buf, name) == 0;
}

/* The first non-empty value of `name`, decoded; false when absent or too long. */
static bool query_first(const char *query, const char *name, char *buf, size_t size,
                        bool *ret_found)
{
    const char *cursor = query;
    QueryField f;
    *ret_found = false;
    while (query_next(&cursor, &f)) {
        if (query_name_is(&f, name)) {
            *ret_found = true;
            return query_decode(f.value_raw, f.value_len, buf, size);
        }
    }
    return false;
}

static const char *node_tag(const HealthNode *n, const char *key)
{
    for (size_t i = 0; i < n->n_tags; i++) {
        if (n->tags[i].key && strcmp(n->tags[i].key, key) == 0) {
            return n->tags[i].value;
        }
    }
    return NULL;
}

/* Patroni: every ?tag_<key>=<value> must equal the node's tag <key>; a tag
 * the node does not have fails the check. Only the first value of a
 * repeated key counts. Returns true when all match. */
static bool tags_match(const HealthNode *n, const char *query)
{
    const char *cursor = query;
    QueryField f;
    char name[HEALTH_QUERY_FIELD_MAX + 1], value[HEALTH_QUERY_FIELD_MAX + 1];
    unsigned seen = 0;

    while (seen++ < HEALTH_QUERY_FIELDS_MAX && query_next(&cursor, &f)) {
        if (!query_decode(f.name_raw, f.name_len, name, sizeof(name))) {
            if (f.name_len >= 4 && strncmp(f.name_raw, "tag_", 4) == 0) {
                return false; /* a tag we cannot compare is a mismatch */
            }
            continue;
        }
        if (strncmp(name, "tag_", 4) != 0) {
            continue;
        }
        /* skip a key that appeared before: parse_qs keeps its first value */
        bool repeated = false;
        const char *c2 = query;
        QueryField g;
        while (query_next(&c2, &g) && g.name_raw < f.name_raw) {
            if (query_name_is(&g, name)) {
                repeated = true;
                break;
            }
        }
        if (repeated) {
            continue;
        }
        const char *mine = node_tag(n, name + 4);
        if (!mine || !query_decode(f.value_raw, f.value_len, value, sizeof(value)) ||
            strcmp(mine, value) != 0) {
            return false;
        }
    }
    return true;
}

/* ---- the decision ---------------------------------------------------------- */

HealthRoute health_route(HealthMethod method, const char *path)
{
    static const char *const other[] = { "patroni", "status",  "cluster",  "history",
                                         "config",  "metrics", "failsafe", "topology" };
    if (!path || method < 0 || method >= _HEALTH_METHOD_MAX) {
        return _HEALTH_ROUTE_INVALID;
    }
    /* Patroni: only GET has per-path handlers; HEAD and OPTIONS always run the
     * generic check. "/status" is our alias for /patroni (DESIGN.md). */
    if (method != HEALTH_METHOD_GET) {
        return HEALTH_ROUTE_STATUS;
    }
    const char *seg = path;
    while (*seg == '/') {
        seg++;
    }
    size_t len = strcspn(seg, "/");
    if (len == strlen("liveness") && strncmp(seg, "liveness", len) == 0) {
        return HEALTH_ROUTE_LIVENESS;
    }
    if (len == strlen("readiness") && strncmp(seg, "readiness", len) == 0) {
        return HEALTH_ROUTE_READINESS;
    }
    for (size_t i = 0; i < ELEMENTSOF(other); i++) {
        if (len == strlen(other[i]) && strncmp(seg, other[i], len) == 0) {
            return HEALTH_ROUTE_OTHER;
        }
    }
    return HEALTH_ROUTE_STATUS;
}

/* What get_postgresql_status() reports: the role comes from
 * pg_is_in_recovery() when the query ran, else from the agent; a "running"
 * server whose query failed reports "unknown". */
typedef struct NodeView {
    HealthRole role;
    bool running;
    bool has_replayed; /* the response has xlog.replayed_location */
} NodeView;

static NodeView node_view(const HealthNode *n)
{
    bool queried =
        n->probe_ok && (n->state == HEALTH_PG_RUNNING || n->state == HEALTH_PG_STARTING ||
                        n->state == HEALTH_PG_RESTARTING);
    NodeView v = { .role = n->role, .running = false, .has_replayed = false };
    if (queried) {
        v.role = n->in_recovery ? HEALTH_ROLE_REPLICA : HEALTH_ROLE_PRIMARY;
        /* Patroni: in a standby cluster a recovering node reports the agent's role
         * (standby_leader or replica). */
        if (v.role == HEALTH_ROLE_REPLICA && n->standby_cluster) {
            v.role = n->role;
        }
        v.running = n->state == HEALTH_PG_RUNNING;
        v.has_replayed = n->in_recovery;
    }
    return v;
}

/* leader > replayed + max_lag, without overflow. */
static bool lag_exceeds(uint64_t leader, uint64_t replayed, int64_t max_lag)
{
    if (max_lag >= 0) {
        return leader > replayed && leader - replayed > (uint64_t)max_lag;
    }
    uint64_t m = (uint64_t)(-(max_lag + 1)) + 1; /* |max_lag| */
    return leader >= replayed || replayed - leader < m;
}

#define OK(r)   ((HealthResult){ .status = 200, .reply = reply, .reason = (r) })
#define FAIL(r) ((HealthResult){ .status = 503, .reply = reply, .reason = (r) })

static HealthResult check_status(const HealthNode *n, HealthReply reply, const char *path,
                                 const char *query)
{
    NodeView v = node_view(n);
    /* Patroni: "/" is "/primary". */
    const char *p = strcmp(path, "/") == 0 ? "/primary" : path;

    /* Patroni: the leader optime is only known with a cluster view; a node
     * whose response has no replayed_location counts as replayed 0. */
    uint64_t leader_optime = n->dcs_ok ? n->leader_optime : 0;
    uint64_t replayed = v.has_replayed ? n->replayed_lsn : 0;
    int64_t max_lag = INT64_MAX; /* Patroni: sys.maxsize when absent or unparsable */
    char lagbuf[HEALTH_QUERY_FIELD_MAX + 1];
    bool found;
    if (query_first(query, "lag", lagbuf, sizeof(lagbuf), &found) &&
        health_parse_lag(lagbuf, &max_lag) < 0) {
        max_lag = INT64_MAX;
    }
    bool lagging = leader_optime != 0 && lag_exceeds(leader_optime, replayed, max_lag);

    bool replica_ok = !n->noloadbalance && !lagging && v.role == HEALTH_ROLE_REPLICA && v.running;
    const char *replica_why = n->noloadbalance                ? "tagged noloadbalance"
                              : lagging                       ? "replication lag exceeds ?lag"
                              : v.role != HEALTH_ROLE_REPLICA ? "not a replica"
                              : !v.running                    ? "postgresql is not running"
                                                              : "running replica";
    bool leader_ok, primary_ok, standby_leader_ok;
    const char *leader_why;
    if (!n->dcs_ok && n->paused) {
        /* Patroni: paused without etcd, trust the PostgreSQL role alone. */
        leader_ok = v.role == HEALTH_ROLE_PRIMARY || v.role == HEALTH_ROLE_STANDBY_LEADER;
        primary_ok = v.role == HEALTH_ROLE_PRIMARY;
        standby_leader_ok = v.role == HEALTH_ROLE_STANDBY_LEADER;
        leader_why = "paused without etcd: judged by the postgresql role";
    } else if (n->is_leader) {
        leader_ok = true;
        if (n->standby_cluster) {
            primary_ok = replica_ok = false;
            replica_why = "leader of a standby cluster";
            standby_leader_ok =
                v.role == HEALTH_ROLE_REPLICA || v.role == HEALTH_ROLE_STANDBY_LEADER;
        } else {
            primary_ok = true;
            standby_leader_ok = false;
        }
        leader_why = n->standby_cluster ? "holds the leader key of a standby cluster"
                                        : "holds the leader key";
    } else {
        leader_ok = primary_ok = standby_leader_ok = false;
        leader_why = "does not hold the leader key";
    }

    HealthResult r = FAIL("no matching health check");
    bool ignore_tags = false;
    /* Patroni matches substrings, in this order. */
    if (strstr(p, "standby_leader") || strstr(p, "standby-leader")) {
        r = standby_leader_ok ? OK("standby leader") : FAIL(leader_why);
        if (!standby_leader_ok && n->is_leader && !n->standby_cluster) {
            r.reason = "not a standby cluster";
        }
        ignore_tags = true;
    } else if (strstr(p, "leader")) {
        r = leader_ok ? OK(leader_why) : FAIL(leader_why);
        ignore_tags = true;
    } else if (strstr(p, "master") || strstr(p, "primary") || strstr(p, "read-write")) {
        r = primary_ok ? OK(leader_why)
                       : FAIL(n->is_leader ? "leader of a standby cluster" : leader_why);
        ignore_tags = true;
    } else if (strstr(p, "replica")) {
        r = replica_ok ? OK(replica_why) : FAIL(replica_why);
    } else if (strstr(p, "read-only") && !strstr(p, "sync")) {
        if (primary_ok || standby_leader_ok) {
            r = OK(leader_why);
        } else {
            r = replica_ok ? OK(replica_why) : FAIL(replica_why);
        }
    } else if (strstr(p, "health")) {
        r = v.running ? OK("postgresql is running") : FAIL("postgresql is not running");
    } else if (n->dcs_ok) {
        bool is_sync = n->synchronous_mode && n->sync_standby;
        if ((strcmp(p, "/sync") == 0 || strcmp(p, "/synchronous") == 0)) {
            if (is_sync) {
                r = replica_ok ? OK("synchronous standby") : FAIL(replica_why);
            } else {
                r = FAIL("not a synchronous standby");
            }
        } else if (strcmp(p, "/async") == 0 || strcmp(p, "/asynchronous") == 0) {
            if (!is_sync) {
                r = replica_ok ? OK("asynchronous replica") : FAIL(replica_why);
            } else {
                r = FAIL("a synchronous standby");
            }
        } else if (strcmp(p, "/read-only-sync") == 0 || strcmp(p, "/read-only-synchronous") == 0) {
            if (primary_ok || standby_leader_ok) {
                r = OK(leader_why);
            } else if (is_sync) {
                r = replica_ok ? OK("synchronous standby") : FAIL(replica_why);
            } else {
                r = FAIL("not a synchronous standby");
            }
        }
    } else if (strcmp(p, "/sync") == 0 || strcmp(p, "/synchronous") == 0 ||
               strcmp(p, "/async") == 0 || strcmp(p, "/asynchronous") == 0 ||
               strcmp(p, "/read-only-sync") == 0 || strcmp(p, "/read-only-synchronous") == 0) {
        r = FAIL("no cluster view from etcd");
    }

    if (!ignore_tags && r.status == 200 && !tags_match(n, query)) {
        r = FAIL("tag mismatch");
    }
    return r;
}

static HealthResult check_liveness(const HealthNode *n)
{
    const HealthReply reply = HEALTH_REPLY_CODE_ONLY;
    /* Patroni: the HA loop may be late by ttl on a running primary and by
     * 2*ttl elsewhere; in maintenance mode a stuck loop is fine. */
    bool primary = n->role == HEALTH_ROLE_PRIMARY && n->postmaster_alive;
    uint64_t threshold = n->ttl_usec * (primary ? 1 : 2);
    if (n->paused) {
        return OK("paused");
    }
    if (n->next_run_usec + threshold > n->now_usec) {
        return OK("ha loop is running");
    }
    return FAIL("ha loop is late");
}

static HealthResult check_readiness(const HealthNode *n)
{
    const HealthReply reply = HEALTH_REPLY_CODE_ONLY;
    /* Patroni 3.0.2: the leader is ready; anyone else when its PostgreSQL is
     * running (the agent's state, not the query result) and etcd answers. */
    if (n->is_leader) {
        return OK("holds the leader key");
    }
    if (n->state != HEALTH_PG_RUNNING) {
        return FAIL("postgresql is not running");
    }
    return n->dcs_ok ? OK("postgresql is running") : FAIL("no cluster view from etcd");
}

int health_check(const HealthNode *node, HealthMethod method, const char *path, const char *query,
                 HealthResult *ret)
{
    if (!node || !path || !ret) {
        return -EINVAL;
    }
    HealthRoute route = health_route(method, path);
    if (route < 0) {
        return -EINVAL;
    }
    const char *q = query ? query : "";
    switch (route) {
    case HEALTH_ROUTE_LIVENESS:
        *ret = check_liveness(node);
        return 0;
    case HEALTH_ROUTE_READINESS:
        *ret = check_readiness(node);
        return 0;
    case HEALTH_ROUTE_STATUS:
        *ret = check_status(
            node, method == HEALTH_METHOD_GET ? HEALTH_REPLY_STATUS_JSON : HEALTH_REPLY_CODE_ONLY,
            path, q);
        return 0;
    default:
        return -EOPNOTSUPP;
    }
}
