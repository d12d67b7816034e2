/* Patroni 3.0.2's etcd3 cluster model: paths, a lenient parser of one prefix
 * range into a DcsCluster, encoders that write Patroni's exact bytes, and the
 * GET /cluster body. Lenient because other writers (Patroni of any version,
 * humans with etcdctl) share these keys: a value we cannot read becomes an
 * "unknown" field and a debug note, never an error that hides the cluster. */
#include "dcs.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config-schema.h"
#include "dynconfig.h"
#include "log.h"
#include "pgconf.h"
#include "standby.h"

/* Patroni writes compact JSON with Python's default ensure_ascii. 15
 * significant digits print 0.9 as "0.9" like Python's repr (17 would not). */
#define DCS_JSON_FLAGS                                                                             \
    (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
/* Decimal text of an int64 plus sign and NUL. */
#define DCS_INT_TEXT_MAX 24
/* Longest conn_url port text we accept ("65535"). */
#define DCS_PORT_TEXT_MAX 5

/* jansson's own json_decrefp (decref, then NULL). */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* ---- paths ------------------------------------------------------------ */

static int join3(const char *a, const char *b, const char *c, char **ret)
{
    if (asprintf(ret, "%s%s%s", a, b, c) < 0) {
        *ret = NULL;
        return -ENOMEM;
    }
    return 0;
}

void dcs_paths_done(DcsPaths *p)
{
    if (!p) {
        return;
    }
    free(p->prefix);
    free(p->leader);
    free(p->members);
    free(p->config);
    free(p->initialize);
    free(p->history);
    free(p->failover);
    free(p->sync);
    free(p->status);
    free(p->leader_optime);
    free(p->failsafe);
    free(p->topology);
    *p = (DcsPaths){ 0 };
}

int dcs_paths_init(DcsPaths *p, const char *namespace, const char *scope)
{
    if (!p || !scope || !*scope || strchr(scope, '/')) {
        return -EINVAL;
    }
    *p = (DcsPaths){ 0 };
    if (!namespace || !*namespace) {
        namespace = DCS_DEFAULT_NAMESPACE;
    }
    /* Patroni joins ['', namespace, scope] with '/' and squeezes repeated
     * slashes; we do the same for the namespace part. */
    const char *b = namespace;
    while (*b == '/') {
        b++;
    }
    size_t len = strlen(b);
    while (len > 0 && b[len - 1] == '/') {
        len--;
    }
    int r;
    if (len == 0) {
        r = asprintf(&p->prefix, "/%s/", scope);
    } else {
        r = asprintf(&p->prefix, "/%.*s/%s/", (int)len, b, scope);
    }
    if (r < 0) {
        p->prefix = NULL;
        return -ENOMEM;
    }
    /* Squeeze "//" inside the namespace ("a//b"). */
    char *w = p->prefix;
    for (const char *s = p->prefix; *s; s++) {
        if (!(*s == '/' && w > p->prefix && w[-1] == '/')) {
            *w++ = *s;
        }
    }
    *w = '\0';

    const struct {
        char **dst;
        const char *name;
    } keys[] = {
        { &p->leader, DCS_KEY_LEADER },
        { &p->members, DCS_KEY_MEMBERS },
        { &p->config, DCS_KEY_CONFIG },
        { &p->initialize, DCS_KEY_INITIALIZE },
        { &p->history, DCS_KEY_HISTORY },
        { &p->failover, DCS_KEY_FAILOVER },
        { &p->sync, DCS_KEY_SYNC },
        { &p->status, DCS_KEY_STATUS },
        { &p->leader_optime, DCS_KEY_LEADER_OPTIME },
        { &p->failsafe, DCS_KEY_FAILSAFE },
        { &p->topology, DCS_KEY_TOPOLOGY },
    };
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        if (join3(p->prefix, keys[i].name, "", keys[i].dst) < 0) {
            dcs_paths_done(p);
            return -ENOMEM;
        }
    }
    return 0;
}

int dcs_paths_member(const DcsPaths *p, const char *name, char **ret_key)
{
    if (!p || !p->members || !name || !*name || strchr(name, '/')) {
        return -EINVAL;
    }
    return join3(p->members, name, "", ret_key);
}

/* ---- roles ------------------------------------------------------------ */

static const char *const role_table[_DCS_ROLE_MAX] = {
    [DCS_ROLE_PRIMARY] = "master",
    [DCS_ROLE_REPLICA] = "replica",
    [DCS_ROLE_STANDBY_LEADER] = "standby_leader",
    [DCS_ROLE_DEMOTED] = "demoted",
    [DCS_ROLE_UNINITIALIZED] = "uninitialized",
};

const char *dcs_role_to_string(DcsRole r)
{
    if (r < 0 || r >= _DCS_ROLE_MAX) {
        return NULL;
    }
    return role_table[r];
}

DcsRole dcs_role_from_string(const char *s)
{
    if (!s) {
        return _DCS_ROLE_INVALID;
    }
    if (strcmp(s, "primary") == 0 || strcmp(s, "promoted") == 0) {
        return DCS_ROLE_PRIMARY;
    }
    for (int i = 0; i < _DCS_ROLE_MAX; i++) {
        if (strcmp(s, role_table[i]) == 0) {
            return (DcsRole)i;
        }
    }
    return _DCS_ROLE_INVALID;
}

/* ---- lenient scalar readers (Patroni's parse_int / parse_bool) --------- */

static bool text_to_int64(const char *s, int64_t *ret)
{
    if (!s) {
        return false;
    }
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (!*s) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return false;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (*end) {
        return false;
    }
    *ret = v;
    return true;
}

static bool json_to_int64(const json_t *v, int64_t *ret)
{
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9.2e18 && d <= 9.2e18) {
            *ret = (int64_t)d;
            return true;
        }
        return false;
    }
    if (json_is_string(v)) {
        return text_to_int64(json_string_value(v), ret);
    }
    return false;
}

static bool json_to_bool(const json_t *v, bool *ret)
{
    if (json_is_boolean(v)) {
        *ret = json_is_true(v);
        return true;
    }
    if (json_is_integer(v)) {
        *ret = json_integer_value(v) != 0;
        return true;
    }
    if (json_is_string(v)) {
        static const char *const yes[] = { "on", "true", "yes", "1" };
        static const char *const no[] = { "off", "false", "no", "0" };
        const char *s = json_string_value(v);
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
            if (strcasecmp(s, yes[i]) == 0) {
                *ret = true;
                return true;
            }
            if (strcasecmp(s, no[i]) == 0) {
                *ret = false;
                return true;
            }
        }
    }
    return false;
}

/* A JSON integer >= 0 (LSNs). */
static bool json_to_lsn(const json_t *v, uint64_t *ret)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *ret = (uint64_t)json_integer_value(v);
    return true;
}

static const char *json_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int strdup_or_null(const char *s, char **ret)
{
    *ret = NULL;
    if (s && !(*ret = strdup(s))) {
        return -ENOMEM;
    }
    return 0;
}

static void problem(DcsCluster *c, const char *key, const char *what)
{
    c->n_problems++;
    log_debug("dcs: ignoring malformed \"%s\": %s", key, what);
}

/* Parses a value that should be a JSON object or list. NULL when it is not
 * JSON of that type. */
static json_t *load_value(const EtcdKeyValue *kv, bool want_array)
{
    json_error_t err;
    json_t *v = json_loadb(kv->value ? kv->value : "", kv->value_len, 0, &err);
    if (v && (want_array ? !json_is_array(v) : !json_is_object(v))) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* ---- conn_url --------------------------------------------------------- */

int dcs_parse_conn_url(const char *url, char **ret_host, int *ret_port)
{
    if (!url) {
        return -EINVAL;
    }
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    /* authority ends at the path, query or fragment */
    size_t alen = strcspn(s, "/?#");
    const char *at = memrchr(s, '@', alen);
    if (at) {
        alen -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    const char *host = s, *port = NULL;
    size_t hlen;
    if (alen > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', alen);
        if (!close) {
            return -EINVAL;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        if ((size_t)(close + 1 - s) < alen) {
            if (close[1] != ':') {
                return -EINVAL;
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', alen);
        hlen = colon ? (size_t)(colon - s) : alen;
        port = colon ? colon + 1 : NULL;
    }
    if (hlen == 0) {
        return -EINVAL;
    }
    int p = DCS_DEFAULT_PG_PORT;
    if (port) {
        size_t plen = (size_t)(s + alen - port);
        if (plen > 0) {
            if (plen > DCS_PORT_TEXT_MAX) {
                return -EINVAL;
            }
            p = 0;
            for (size_t i = 0; i < plen; i++) {
                if (!isdigit((unsigned char)port[i])) {
                    return -EINVAL;
                }
                p = p * 10 + (port[i] - '0');
            }
            if (p < 1 || p > 65535) {
                return -EINVAL;
            }
        }
    }
    char *h = strndup(host, hlen);
    if (!h) {
        return -ENOMEM;
    }
    *ret_host = h;
    *ret_port = p;
    return 0;
}

/* ---- parsing one key -------------------------------------------------- */

static void member_done(DcsMember *m)
{
    free(m->name);
    free(m->replication);
    json_decref(m->data);
    free(m->host);
    *m = (DcsMember){ 0 };
}

/* Patroni before 1.0 stored "postgres://...?application_name=<api_url>". */
static json_t *legacy_member_data(const char *value)
{
    _cleanup_free_ char *conn = strdup(value);
    if (!conn) {
        return NULL;
    }
    const char *api = NULL;
    char *q = strchr(conn, '?');
    if (q) {
        *q++ = '\0';
        for (char *save = NULL, *t = strtok_r(q, "&", &save); t; t = strtok_r(NULL, "&", &save)) {
            if (strncmp(t, "application_name=", 17) == 0) {
                api = t + 17;
            }
        }
    }
    return json_pack("{s:s, s:s*}", "conn_url", conn, "api_url", api);
}

/* A JSON number of seconds; false for null, absent or anything else. */
static bool json_to_seconds(const json_t *v, double *ret)
{
    if (!json_is_number(v)) {
        return false;
    }
    *ret = json_number_value(v);
    return true;
}

/* An optional LSN field: false when absent or null; a problem when it is
 * something else. */
static bool member_lsn(DcsCluster *c, const char *key, const json_t *o, const char *field,
                       uint64_t *ret)
{
    const json_t *v = json_object_get(o, field);
    if (!v || json_is_null(v)) {
        return false;
    }
    if (!json_to_lsn(v, ret)) {
        problem(c, key, "an LSN field is not a non-negative integer");
        return false;
    }
    return true;
}

/* dbha's "replication" list (the leader's pg_stat_replication); rows
 * without a name are dropped. */
static int replication_parse(DcsCluster *c, const char *key, const json_t *list, DcsMember *m)
{
    if (!list) {
        return 0;
    }
    if (!json_is_array(list)) {
        problem(c, key, "replication is not a list");
        return 0;
    }
    size_t n = json_array_size(list);
    if (n == 0) {
        return 0;
    }
    m->replication = calloc(n, sizeof(*m->replication));
    if (!m->replication) {
        return -ENOMEM;
    }
    size_t i;
    const json_t *o;
    json_array_foreach(list, i, o)
    {
        const char *name = json_str(o, "name");
        if (!name) {
            problem(c, key, "a replication row has no name");
            continue;
        }
        DcsReplicationRow *row = &m->replication[m->n_replication++];
        *row = (DcsReplicationRow){ .name = name,
                                    .state = json_str(o, "state"),
                                    .sync_state = json_str(o, "sync_state") };
        row->has_write_lsn = member_lsn(c, key, o, "write_lsn", &row->write_lsn);
        row->has_flush_lsn = member_lsn(c, key, o, "flush_lsn", &row->flush_lsn);
        row->has_replay_lsn = member_lsn(c, key, o, "replay_lsn", &row->replay_lsn);
        row->has_write_lag = json_to_seconds(json_object_get(o, "write_lag"), &row->write_lag);
        row->has_flush_lag = json_to_seconds(json_object_get(o, "flush_lag"), &row->flush_lag);
        row->has_replay_lag = json_to_seconds(json_object_get(o, "replay_lag"), &row->replay_lag);
    }
    return 0;
}

static int member_parse(DcsCluster *c, const EtcdKeyValue *kv, const char *name, DcsMember *m)
{
    *m = (DcsMember){ .role = _DCS_ROLE_INVALID,
                      .lease = kv->lease,
                      .create_revision = kv->create_revision,
                      .mod_revision = kv->mod_revision };
    m->name = strdup(name);
    if (!m->name) {
        return -ENOMEM;
    }
    const char *value = kv->value ? kv->value : "";
    if (strncmp(value, "postgres", 8) == 0) {
        m->data = legacy_member_data(value);
    } else {
        m->data = load_value(kv, false);
    }
    m->valid = m->data != NULL;
    if (!m->data) {
        problem(c, kv->key, "member data is not a JSON object");
        m->data = json_object();
        if (!m->data) {
            return -ENOMEM;
        }
        return 0;
    }
    const json_t *d = m->data;
    m->conn_url = json_str(d, "conn_url");
    m->api_url = json_str(d, "api_url");
    m->state = json_str(d, "state");
    m->role_text = json_str(d, "role");
    m->version = json_str(d, "version");
    m->replication_state = json_str(d, "replication_state");
    m->proxy_url = json_str(d, "proxy_url");
    m->role = dcs_role_from_string(m->role_text);
    if (m->role_text && m->role < 0) {
        problem(c, kv->key, "unknown role");
    }
    const json_t *x = json_object_get(d, "xlog_location");
    if (x) {
        m->has_xlog_location = json_to_lsn(x, &m->xlog_location);
        if (!m->has_xlog_location) {
            problem(c, kv->key, "xlog_location is not a non-negative integer");
        }
    }
    const json_t *tl = json_object_get(d, "timeline");
    if (tl && (!json_to_int64(tl, &m->timeline) || m->timeline < 0)) {
        problem(c, kv->key, "timeline is not an integer");
        m->timeline = 0;
    }
    json_t *tags = json_object_get(d, "tags");
    if (tags && !json_is_object(tags)) {
        problem(c, kv->key, "tags is not an object");
        tags = NULL;
    }
    m->tags = tags;
    (void)json_to_bool(json_object_get(d, "pending_restart"), &m->pending_restart);
    (void)json_to_bool(json_object_get(d, "pause"), &m->pause);
    m->has_receive_lsn = member_lsn(c, kv->key, d, "receive_lsn", &m->receive_lsn);
    m->has_replay_lsn = member_lsn(c, kv->key, d, "replay_lsn", &m->replay_lsn);
    (void)json_to_bool(json_object_get(d, "replay_paused"), &m->replay_paused);
    m->has_lag_seconds = json_to_seconds(json_object_get(d, "lag_seconds"), &m->lag_seconds);
    m->failover_blocked = json_str(d, "failover_blocked");
    m->upstream = json_str(d, "upstream");
    int rr = replication_parse(c, kv->key, json_object_get(d, "replication"), m);
    if (rr < 0) {
        return rr;
    }
    if (m->conn_url) {
        int r = dcs_parse_conn_url(m->conn_url, &m->host, &m->port);
        if (r == -ENOMEM) {
            return r;
        }
        if (r < 0) {
            problem(c, kv->key, "conn_url has no host");
        }
    }
    return 0;
}

static void config_map_free_items(ConfigMap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    *m = (ConfigMap){ 0 };
}

/* The text Patroni would put in postgresql.conf for a parameter value. */
static char *parameter_text(const json_t *v)
{
    char *s = NULL;
    if (json_is_string(v)) {
        s = strdup(json_string_value(v));
    } else if (json_is_integer(v)) {
        if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0) {
            s = NULL;
        }
    } else if (json_is_real(v)) {
        if (asprintf(&s, "%.17g", json_real_value(v)) < 0) {
            s = NULL;
        }
    } else if (json_is_boolean(v)) {
        s = strdup(json_is_true(v) ? "on" : "off");
    } else {
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    return s;
}

static DcsConfig *cluster_config_free(DcsConfig *cfg)
{
    if (cfg) {
        json_decref(cfg->data);
        json_decref(cfg->dcs.slots);
        json_decref(cfg->dcs.ignore_slots);
        json_decref(cfg->dcs.standby_cluster);
        config_map_free_items(&cfg->dcs.parameters);
        config_strv_done(&cfg->dcs.pg_hba);
        config_strv_done(&cfg->dcs.pg_ident);
        config_map_free_items(&cfg->dcs.recovery_conf);
        free(cfg->bad_parameter);
        free(cfg);
    }
    return NULL;
}

/* The name of the first parameter PostgreSQL would not read as one, or
 * NULL. */
static const char *first_bad_name(const json_t *params)
{
    const char *k;
    const json_t *pv;
    json_object_foreach((json_t *)params, k, pv)
    {
        if (!pgconf_name_valid(k)) {
            return k;
        }
    }
    return NULL;
}

/* postgresql.parameters into cfg->dcs.parameters; none of them when one
 * name is bad (someone else wrote the key: it must not reach
 * postgresql.conf). -ENOMEM. */
static int config_parameters_parse(DcsCluster *c, const EtcdKeyValue *kv, const json_t *params,
                                   DcsConfig *cfg)
{
    const char *bad = first_bad_name(params);
    if (bad) {
        problem(c, kv->key, "postgresql.parameters has a bad name");
        cfg->bad_parameter = strdup(bad);
        return cfg->bad_parameter ? 0 : -ENOMEM;
    }
    if (json_object_size(params) == 0) {
        return 0;
    }
    ConfigMap *m = &cfg->dcs.parameters;
    m->items = calloc(json_object_size(params), sizeof(*m->items));
    if (!m->items) {
        return -ENOMEM;
    }
    const char *k;
    const json_t *pv;
    json_object_foreach((json_t *)params, k, pv)
    {
        if (json_is_null(pv)) {
            continue;
        }
        ConfigKv *kvp = &m->items[m->n];
        kvp->key = strdup(k);
        kvp->value = parameter_text(pv);
        m->n++;
        if (!kvp->key || !kvp->value) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* postgresql.recovery_conf into *out: the settings a replica's
 * postgresql.conf takes (pgconf_recovery_param); a value that is not a
 * scalar, or a name that is not such a setting, is a problem of the view
 * and is left out (PATCH /config refuses both). -ENOMEM. */
static int config_recovery_parse(DcsCluster *c, const EtcdKeyValue *kv, const json_t *v,
                                 ConfigMap *out)
{
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_object(v)) {
        problem(c, kv->key, "postgresql.recovery_conf is not an object");
        return 0;
    }
    const char *k;
    const json_t *pv;
    json_object_foreach((json_t *)v, k, pv)
    {
        if (json_is_null(pv)) {
            continue;
        }
        if (json_is_object(pv) || json_is_array(pv) ||
            pgconf_recovery_param(k, NULL) != PGCONF_RECOVERY_WRITTEN) {
            problem(c, kv->key, "postgresql.recovery_conf has a setting a replica cannot take");
            continue;
        }
        _cleanup_free_ char *text = parameter_text(pv);
        if (!text || config_map_push(out, k, text) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* A list of strings (pg_hba, pg_ident lines) into *out; anything else is
 * a problem of the view and leaves *out empty. -ENOMEM. */
static int config_lines(DcsCluster *c, const EtcdKeyValue *kv, const char *name, const json_t *v,
                        ConfigStrv *out)
{
    if (!v || json_is_null(v)) {
        return 0;
    }
    size_t i;
    const json_t *line;
    bool ok = json_is_array(v);
    json_array_foreach(v, i, line)
    {
        ok = ok && json_is_string(line);
    }
    if (!ok) {
        problem(c, kv->key, name);
        return 0;
    }
    json_array_foreach(v, i, line)
    {
        if (config_strv_push(out, strdup(json_string_value(line))) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int config_parse(DcsCluster *c, const EtcdKeyValue *kv, DcsConfig **ret)
{
    DcsConfig *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        return -ENOMEM;
    }
    cfg->mod_revision = kv->mod_revision;
    cfg->dcs = (ConfigDcs){
        .ttl = 30,
        .loop_wait = 10,
        .retry_timeout = 10,
        .maximum_lag_on_failover = 1048576,
        .primary_start_timeout = 300,
        .primary_stop_timeout = 0,
        .synchronous_node_count = 1,
        .use_slots = true,
        .maximum_lag_on_syncnode = -1,
    };
    cfg->data = load_value(kv, false);
    if (!cfg->data) {
        problem(c, kv->key, "config is not a JSON object");
        cfg->data = json_object();
        if (!cfg->data) {
            cluster_config_free(cfg);
            return -ENOMEM;
        }
        *ret = cfg;
        return 0;
    }
    const json_t *d = cfg->data;
    const struct {
        const char *name, *alias;
        int64_t *dst;
    } ints[] = {
        { "ttl", NULL, &cfg->dcs.ttl },
        { "loop_wait", NULL, &cfg->dcs.loop_wait },
        { "retry_timeout", NULL, &cfg->dcs.retry_timeout },
        { "maximum_lag_on_failover", NULL, &cfg->dcs.maximum_lag_on_failover },
        { "primary_start_timeout", "master_start_timeout", &cfg->dcs.primary_start_timeout },
        { "primary_stop_timeout", "master_stop_timeout", &cfg->dcs.primary_stop_timeout },
        { "synchronous_node_count", NULL, &cfg->dcs.synchronous_node_count },
        { "max_timelines_history", NULL, &cfg->dcs.max_timelines_history },
        { "maximum_lag_on_syncnode", NULL, &cfg->dcs.maximum_lag_on_syncnode },
    };
    for (size_t i = 0; i < ELEMENTSOF(ints); i++) {
        const json_t *v = json_object_get(d, ints[i].name);
        if (!v && ints[i].alias) {
            v = json_object_get(d, ints[i].alias);
        }
        if (v && !json_is_null(v) && !json_to_int64(v, ints[i].dst)) {
            problem(c, kv->key, ints[i].name);
        }
    }
    const struct {
        const char *name;
        bool *dst;
    } bools[] = {
        { "synchronous_mode", &cfg->dcs.synchronous_mode },
        { "synchronous_mode_strict", &cfg->dcs.synchronous_mode_strict },
        { "failsafe_mode", &cfg->dcs.failsafe_mode },
        { "pause", &cfg->pause },
        { "check_timeline", &cfg->dcs.check_timeline },
    };
    for (size_t i = 0; i < ELEMENTSOF(bools); i++) {
        const json_t *v = json_object_get(d, bools[i].name);
        if (v && !json_is_null(v) && !json_to_bool(v, bools[i].dst)) {
            /* Patroni 4's synchronous_mode: quorum is "on" for us */
            if (json_is_string(v) && strcmp(bools[i].name, "synchronous_mode") == 0 &&
                strcmp(json_string_value(v), "quorum") == 0) {
                *bools[i].dst = true;
            } else {
                problem(c, kv->key, bools[i].name);
            }
        }
    }
    /* Patroni's older names first (dynconfig_permanent_slots()) */
    json_t *slots = (json_t *)dynconfig_permanent_slots(d);
    json_t *ignore = json_object_get(d, "ignore_slots");
    /* kept whatever their type: agent/slots.c says what it cannot use, and
     * keeps every slot when ignore_slots cannot be read */
    cfg->dcs.slots = slots && !json_is_null(slots) ? json_incref(slots) : NULL;
    cfg->dcs.ignore_slots = ignore && !json_is_null(ignore) ? json_incref(ignore) : NULL;
    char slots_err[256];
    if (dynconfig_check_slots(slots, ignore, NULL, slots_err, sizeof(slots_err)) < 0) {
        problem(c, kv->key, slots_err);
    }
    json_t *sc = json_object_get(d, "standby_cluster");
    char sc_err[256];
    if (json_is_object(sc) && dynconfig_check_standby_cluster(sc, sc_err, sizeof(sc_err)) < 0) {
        /* a section that cannot be read still says "standby cluster": the
         * leader must not take writes (standby_cluster_read() fails, so it
         * follows nobody until the key is corrected) */
        problem(c, kv->key, sc_err);
    }
    cfg->dcs.standby_cluster = json_is_object(sc) ? json_incref(sc) : NULL;
    cfg->standby_cluster = standby_cluster_active(sc);
    const json_t *pg = json_object_get(d, "postgresql");
    if (json_is_object(pg)) {
        const json_t *v;
        if ((v = json_object_get(pg, "use_pg_rewind")) &&
            !json_to_bool(v, &cfg->dcs.use_pg_rewind)) {
            problem(c, kv->key, "postgresql.use_pg_rewind");
        }
        if ((v = json_object_get(pg, "use_slots")) && !json_to_bool(v, &cfg->dcs.use_slots)) {
            problem(c, kv->key, "postgresql.use_slots");
        }
        if (config_lines(c, kv, "postgresql.pg_hba", json_object_get(pg, "pg_hba"),
                         &cfg->dcs.pg_hba) < 0 ||
            config_lines(c, kv, "postgresql.pg_ident", json_object_get(pg, "pg_ident"),
                         &cfg->dcs.pg_ident) < 0 ||
            config_recovery_parse(c, kv, json_object_get(pg, "recovery_conf"),
                                  &cfg->dcs.recovery_conf) < 0) {
            cluster_config_free(cfg);
            return -ENOMEM;
        }
        const json_t *params = json_object_get(pg, "parameters");
        if (json_is_object(params)) {
            int r = config_parameters_parse(c, kv, params, cfg);
            if (r < 0) {
                cluster_config_free(cfg);
                return r;
            }
        } else if (params && !json_is_null(params)) {
            problem(c, kv->key, "postgresql.parameters is not an object");
        }
    }
    *ret = cfg;
    return 0;
}

static DcsHistory *history_free(DcsHistory *h)
{
    if (h) {
        for (size_t i = 0; i < h->n_entries; i++) {
            free(h->entries[i].reason);
            free(h->entries[i].timestamp);
            free(h->entries[i].new_leader);
        }
        free(h->entries);
        json_decref(h->data);
        free(h);
    }
    return NULL;
}

static int history_parse(DcsCluster *c, const EtcdKeyValue *kv, DcsHistory **ret)
{
    DcsHistory *h = calloc(1, sizeof(*h));
    if (!h) {
        return -ENOMEM;
    }
    h->mod_revision = kv->mod_revision;
    h->data = load_value(kv, true);
    if (!h->data) {
        problem(c, kv->key, "history is not a JSON list");
        h->data = json_array();
        if (!h->data) {
            history_free(h);
            return -ENOMEM;
        }
        *ret = h;
        return 0;
    }
    size_t n = json_array_size(h->data);
    h->entries = calloc(n ? n : 1, sizeof(*h->entries));
    if (!h->entries) {
        history_free(h);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *line = json_array_get(h->data, i);
        DcsHistoryEntry e = { 0 };
        if (!json_is_array(line) || json_array_size(line) < 2 ||
            !json_to_int64(json_array_get(line, 0), &e.timeline) ||
            !json_to_lsn(json_array_get(line, 1), &e.lsn)) {
            problem(c, kv->key, "history line is not [timeline, lsn, ...]");
            continue;
        }
        DcsHistoryEntry *dst = &h->entries[h->n_entries++];
        *dst = e;
        if (strdup_or_null(json_string_value(json_array_get(line, 2)), &dst->reason) < 0 ||
            strdup_or_null(json_string_value(json_array_get(line, 3)), &dst->timestamp) < 0 ||
            strdup_or_null(json_string_value(json_array_get(line, 4)), &dst->new_leader) < 0) {
            history_free(h);
            return -ENOMEM;
        }
    }
    *ret = h;
    return 0;
}

static DcsFailover *failover_free(DcsFailover *f)
{
    if (f) {
        free(f->leader);
        free(f->candidate);
        free(f->scheduled_at);
        free(f);
    }
    return NULL;
}

static int failover_parse(DcsCluster *c, const EtcdKeyValue *kv, DcsFailover **ret)
{
    if (kv->value_len == 0) {
        *ret = NULL;
        return 0;
    }
    DcsFailover *f = calloc(1, sizeof(*f));
    if (!f) {
        return -ENOMEM;
    }
    f->mod_revision = kv->mod_revision;
    _cleanup_json_ json_t *d = load_value(kv, false);
    int r = 0;
    if (d) {
        if (strdup_or_null(json_str(d, "leader"), &f->leader) < 0 ||
            strdup_or_null(json_str(d, "member"), &f->candidate) < 0 ||
            strdup_or_null(json_str(d, "scheduled_at"), &f->scheduled_at) < 0) {
            r = -ENOMEM;
        }
    } else {
        /* Patroni's oldest format: "leader:candidate" */
        const char *colon = strchr(kv->value, ':');
        size_t l = colon ? (size_t)(colon - kv->value) : kv->value_len;
        while (l > 0 && isspace((unsigned char)kv->value[l - 1])) {
            l--;
        }
        f->leader = l ? strndup(kv->value, l) : NULL;
        if (l && !f->leader) {
            r = -ENOMEM;
        }
        if (colon) {
            const char *s = colon + 1;
            while (isspace((unsigned char)*s)) {
                s++;
            }
            if (*s && !(f->candidate = strdup(s))) {
                r = -ENOMEM;
            }
        }
        if (r == 0 && !f->leader && !f->candidate) {
            problem(c, kv->key, "failover is neither JSON nor leader:candidate");
        }
    }
    if (r < 0) {
        failover_free(f);
        return r;
    }
    *ret = f;
    return 0;
}

static DcsSync *sync_free(DcsSync *s)
{
    if (s) {
        free(s->leader);
        free(s->sync_standby);
        for (size_t i = 0; i < s->n_members; i++) {
            free(s->members[i]);
        }
        free(s->members);
        free(s);
    }
    return NULL;
}

static int sync_parse(DcsCluster *c, const EtcdKeyValue *kv, DcsSync **ret)
{
    DcsSync *s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->mod_revision = kv->mod_revision;
    _cleanup_json_ json_t *d = load_value(kv, false);
    if (!d) {
        problem(c, kv->key, "sync is not a JSON object");
        *ret = s;
        return 0;
    }
    if (strdup_or_null(json_str(d, "leader"), &s->leader) < 0 ||
        strdup_or_null(json_str(d, "sync_standby"), &s->sync_standby) < 0) {
        sync_free(s);
        return -ENOMEM;
    }
    if (s->sync_standby) {
        size_t cap = 1;
        for (const char *p = s->sync_standby; *p; p++) {
            cap += *p == ',';
        }
        s->members = calloc(cap, sizeof(*s->members));
        if (!s->members) {
            sync_free(s);
            return -ENOMEM;
        }
        const char *p = s->sync_standby;
        for (size_t i = 0; i < cap; i++) {
            size_t len = strcspn(p, ",");
            const char *b = p, *e = p + len;
            while (b < e && isspace((unsigned char)*b)) {
                b++;
            }
            while (e > b && isspace((unsigned char)e[-1])) {
                e--;
            }
            if (e > b) {
                s->members[s->n_members] = strndup(b, (size_t)(e - b));
                if (!s->members[s->n_members++]) {
                    sync_free(s);
                    return -ENOMEM;
                }
            }
            p += len + (p[len] == ',');
        }
    }
    *ret = s;
    return 0;
}

static void status_parse(DcsCluster *c, const EtcdKeyValue *kv, DcsStatus *st)
{
    json_decref(st->slots);
    *st = (DcsStatus){ .mod_revision = kv->mod_revision };
    _cleanup_json_ json_t *d = load_value(kv, false);
    if (!d) {
        problem(c, kv->key, "status is not a JSON object");
        return;
    }
    st->has_optime = json_to_lsn(json_object_get(d, "optime"), &st->optime);
    if (!st->has_optime && json_object_get(d, "optime")) {
        problem(c, kv->key, "status optime is not an integer");
    }
    json_t *slots = json_object_get(d, "slots");
    if (json_is_object(slots)) {
        st->slots = json_incref(slots);
    }
}

static void legacy_optime_parse(DcsCluster *c, const EtcdKeyValue *kv, DcsStatus *st)
{
    int64_t v;
    if (!text_to_int64(kv->value, &v) || v < 0) {
        problem(c, kv->key, "optime/leader is not an integer");
        return;
    }
    *st = (DcsStatus){ .has_optime = true,
                       .optime = (uint64_t)v,
                       .legacy_optime = true,
                       .mod_revision = kv->mod_revision };
}

/* ---- the view --------------------------------------------------------- */

DcsCluster *dcs_cluster_free(DcsCluster *c)
{
    if (!c) {
        return NULL;
    }
    free(c->initialize);
    cluster_config_free(c->config);
    if (c->leader) {
        free(c->leader->name);
        free(c->leader);
    }
    for (size_t i = 0; i < c->n_members; i++) {
        member_done(&c->members[i]);
    }
    free(c->members);
    history_free(c->history);
    failover_free(c->failover);
    sync_free(c->sync);
    json_decref(c->status.slots);
    json_decref(c->failsafe);
    json_decref(c->topology);
    free(c);
    return NULL;
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const DcsMember *)a)->name, ((const DcsMember *)b)->name);
}

static int cluster_fill(DcsCluster *c, const DcsPaths *paths, const EtcdResult *res)
{
    c->revision = res->revision;
    size_t plen = strlen(paths->prefix), mlen = strlen(DCS_KEY_MEMBERS);
    const EtcdKeyValue *legacy_optime = NULL;
    bool have_status = false;
    int r = 0;

    c->members = calloc(res->n_kvs ? res->n_kvs : 1, sizeof(*c->members));
    if (!c->members) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < res->n_kvs && r >= 0; i++) {
        const EtcdKeyValue *kv = &res->kvs[i];
        if (!kv->key || kv->key_len < plen || strncmp(kv->key, paths->prefix, plen) != 0) {
            continue;
        }
        if (memchr(kv->key, '\0', kv->key_len)) {
            /* etcd keys are bytes: "leader\0x" is another key than "leader",
             * not a second leader key to replace the first (and leak it) */
            problem(c, kv->key, "the key contains a NUL byte");
            continue;
        }
        const char *rel = kv->key + plen;
        const char *value = kv->value ? kv->value : "";
        if (strncmp(rel, DCS_KEY_MEMBERS, mlen) == 0) {
            const char *name = rel + mlen;
            if (!*name || strchr(name, '/')) {
                problem(c, kv->key, "not a member key");
                continue;
            }
            r = member_parse(c, kv, name, &c->members[c->n_members]);
            c->n_members++;
        } else if (strcmp(rel, DCS_KEY_LEADER) == 0) {
            if (!*value) {
                problem(c, kv->key, "leader key is empty");
                continue;
            }
            c->leader = calloc(1, sizeof(*c->leader));
            if (!c->leader || !(c->leader->name = strdup(value))) {
                r = -ENOMEM;
                continue;
            }
            c->leader->lease = kv->lease;
            c->leader->create_revision = kv->create_revision;
            c->leader->mod_revision = kv->mod_revision;
        } else if (strcmp(rel, DCS_KEY_INITIALIZE) == 0) {
            if (!(c->initialize = strdup(value))) {
                r = -ENOMEM;
            }
        } else if (strcmp(rel, DCS_KEY_CONFIG) == 0) {
            r = config_parse(c, kv, &c->config);
        } else if (strcmp(rel, DCS_KEY_HISTORY) == 0) {
            r = history_parse(c, kv, &c->history);
        } else if (strcmp(rel, DCS_KEY_FAILOVER) == 0) {
            r = failover_parse(c, kv, &c->failover);
        } else if (strcmp(rel, DCS_KEY_SYNC) == 0) {
            r = sync_parse(c, kv, &c->sync);
        } else if (strcmp(rel, DCS_KEY_STATUS) == 0) {
            status_parse(c, kv, &c->status);
            have_status = true;
        } else if (strcmp(rel, DCS_KEY_LEADER_OPTIME) == 0) {
            legacy_optime = kv;
        } else if (strcmp(rel, DCS_KEY_FAILSAFE) == 0) {
            c->failsafe = load_value(kv, false);
            if (!c->failsafe) {
                problem(c, kv->key, "failsafe is not a JSON object");
            }
        } else if (strcmp(rel, DCS_KEY_TOPOLOGY) == 0) {
            c->topology = load_value(kv, false);
            c->topology_mod_revision = kv->mod_revision;
            if (!c->topology) {
                problem(c, kv->key, "topology is not a JSON object");
            }
        }
    }
    if (r < 0) {
        return r;
    }
    /* As Patroni: optime/leader only counts when there is no status key. */
    if (!have_status && legacy_optime) {
        legacy_optime_parse(c, legacy_optime, &c->status);
    }
    qsort(c->members, c->n_members, sizeof(*c->members), member_cmp);
    return 0;
}

int dcs_cluster_from_result(const DcsPaths *paths, const EtcdResult *res, DcsCluster **ret)
{
    if (!paths || !paths->prefix || !res || !ret) {
        return -EINVAL;
    }
    DcsCluster *c = calloc(1, sizeof(*c));
    if (!c) {
        return -ENOMEM;
    }
    int r = cluster_fill(c, paths, res);
    if (r < 0) {
        dcs_cluster_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

int dcs_cluster_read(EtcdClient *client, const DcsPaths *paths, DcsCluster **ret, EtcdError *reterr)
{
    if (!client || !paths || !paths->prefix || !ret) {
        return -EINVAL;
    }
    EtcdRangeOptions opts = { .prefix = true };
    EtcdResult res = { 0 };
    int r = etcd_range(client, paths->prefix, &opts, &res, reterr);
    if (r < 0) {
        return r;
    }
    r = dcs_cluster_from_result(paths, &res, ret);
    etcd_result_done(&res);
    return r;
}

const DcsMember *dcs_cluster_get_member(const DcsCluster *c, const char *name)
{
    if (!c || !name) {
        return NULL;
    }
    DcsMember key = { .name = (char *)name };
    return bsearch(&key, c->members, c->n_members, sizeof(*c->members), member_cmp);
}

const DcsMember *dcs_cluster_leader_member(const DcsCluster *c)
{
    return c && c->leader ? dcs_cluster_get_member(c, c->leader->name) : NULL;
}

bool dcs_cluster_is_paused(const DcsCluster *c)
{
    return c && c->config && c->config->pause;
}

bool dcs_cluster_is_standby(const DcsCluster *c)
{
    return c && c->config && c->config->standby_cluster;
}

const char *dcs_member_state_text(const DcsCluster *c, const DcsMember *m)
{
    static const struct {
        const char *patroni, *ours;
    } map[] = {
        { "starting", "starting" },
        { "restarting", "starting" },
        { "initializing new cluster", "starting" },
        { "running custom bootstrap script", "starting" },
        { "starting after custom bootstrap", "starting" },
        { "stopping", "stopping" },
        { "creating replica", "creating replica" },
        { "rewinding", "rewinding" },
        { "running pg_rewind", "rewinding" },
        { "crashed", "crashed" },
        { "stopped", "stopped" },
    };
    const char *s = m->state;
    if (!s) {
        return "stopped";
    }
    if (strcmp(s, "running") == 0) {
        bool leader = c->leader && strcmp(c->leader->name, m->name) == 0;
        return !leader && m->replication_state && strcmp(m->replication_state, "streaming") == 0
                   ? "streaming"
                   : "running";
    }
    for (size_t i = 0; i < ELEMENTSOF(map); i++) {
        if (strcmp(s, map[i].patroni) == 0) {
            return map[i].ours;
        }
    }
    size_t len = strlen(s);
    if (len >= 6 && strcmp(s + len - 6, "failed") == 0) {
        return "crashed";
    }
    return "stopped";
}

bool dcs_cluster_is_sync_standby(const DcsCluster *c, const char *name)
{
    if (!c || !c->sync || !name) {
        return false;
    }
    for (size_t i = 0; i < c->sync->n_members; i++) {
        if (strcasecmp(c->sync->members[i], name) == 0) {
            return true;
        }
    }
    return false;
}

const char *dcs_sync_problem(const DcsCluster *c, bool synchronous_mode, const char *name)
{
    if (!synchronous_mode || !c || !c->sync || !c->sync->leader || !*c->sync->leader) {
        return NULL;
    }
    if (name && (strcasecmp(c->sync->leader, name) == 0 || dcs_cluster_is_sync_standby(c, name))) {
        return NULL;
    }
    return "synchronous_mode is on and it is not a synchronous standby";
}

int dcs_cluster_reference_lsn(const DcsCluster *c, uint64_t *ret_lsn)
{
    if (!c) {
        return -EINVAL;
    }
    if (c->status.has_optime) {
        *ret_lsn = c->status.optime;
        return 0;
    }
    const DcsMember *l = dcs_cluster_leader_member(c);
    if (l && l->has_xlog_location) {
        *ret_lsn = l->xlog_location;
        return 0;
    }
    return -ENODATA;
}

static bool is_leader_member(const DcsCluster *c, const DcsMember *m)
{
    return c->leader && strcmp(c->leader->name, m->name) == 0;
}

const DcsReplicationRow *dcs_cluster_replication_row(const DcsCluster *c, const char *name)
{
    const DcsMember *l = c && name ? dcs_cluster_leader_member(c) : NULL;
    for (size_t i = 0; l && i < l->n_replication; i++) {
        if (strcmp(l->replication[i].name, name) == 0) {
            return &l->replication[i];
        }
    }
    return NULL;
}

static uint64_t behind(uint64_t ref, uint64_t pos)
{
    return ref > pos ? ref - pos : 0;
}

int dcs_member_lag_info(const DcsCluster *c, const DcsMember *m, DcsLag *ret)
{
    if (!c || !m || !ret) {
        return -EINVAL;
    }
    DcsLag l = { .replay_paused = m->replay_paused };
    if (is_leader_member(c, m)) {
        l.has_seconds = true;
        *ret = l;
        return 0;
    }
    const DcsMember *lm = dcs_cluster_leader_member(c);
    const DcsReplicationRow *row = dcs_cluster_replication_row(c, m->name);
    uint64_t ref;
    bool has_ref = dcs_cluster_reference_lsn(c, &ref) >= 0;
    if (row && row->has_replay_lsn && lm && lm->has_xlog_location) {
        /* the leader wrote its position and the row in one probe */
        uint64_t pos = lm->xlog_location;
        l.bytes = behind(pos, row->replay_lsn);
        l.has_write_bytes = row->has_write_lsn;
        l.write_bytes = row->has_write_lsn ? behind(pos, row->write_lsn) : 0;
        l.has_flush_bytes = row->has_flush_lsn;
        l.flush_bytes = row->has_flush_lsn ? behind(pos, row->flush_lsn) : 0;
        if (row->has_replay_lag) {
            l.has_seconds = true;
            l.seconds = row->replay_lag;
        } else if (row->replay_lsn >= pos) {
            l.has_seconds = true; /* PostgreSQL's NULL for a caught-up, idle standby */
        }
        l.has_write_seconds = row->has_write_lag;
        l.write_seconds = row->write_lag;
        l.has_flush_seconds = row->has_flush_lag;
        l.flush_seconds = row->flush_lag;
    } else if (has_ref && m->has_replay_lsn) {
        l.bytes = behind(ref, m->replay_lsn);
    } else if (has_ref && m->has_xlog_location) {
        l.bytes = behind(ref, m->xlog_location);
    } else {
        return -ENODATA;
    }
    /* PostgreSQL samples replay_lag only when the standby's replay position
     * moves, so it stands still while replay does (paused, or blocked by a
     * conflict): behind the leader, the replica's own growing view counts
     * when it is larger. */
    if (m->has_lag_seconds && (!l.has_seconds || (l.bytes > 0 && m->lag_seconds > l.seconds))) {
        l.has_seconds = true;
        l.seconds = m->lag_seconds;
    }
    *ret = l;
    return 0;
}

int dcs_member_lag(const DcsCluster *c, const DcsMember *m, uint64_t *ret_bytes)
{
    DcsLag l;
    int r = dcs_member_lag_info(c, m, &l);
    if (r < 0) {
        return r;
    }
    *ret_bytes = l.bytes;
    return 0;
}

int dcs_member_wal_lag(const DcsCluster *c, const DcsMember *m, uint64_t *ret_bytes)
{
    if (!c || !m || !ret_bytes) {
        return -EINVAL;
    }
    if (is_leader_member(c, m)) {
        *ret_bytes = 0;
        return 0;
    }
    const DcsMember *lm = dcs_cluster_leader_member(c);
    const DcsReplicationRow *row = dcs_cluster_replication_row(c, m->name);
    uint64_t ref;
    if (row && lm && lm->has_xlog_location && (row->has_flush_lsn || row->has_replay_lsn)) {
        uint64_t held = row->has_flush_lsn ? row->flush_lsn : 0;
        if (row->has_replay_lsn && row->replay_lsn > held) {
            held = row->replay_lsn;
        }
        *ret_bytes = behind(lm->xlog_location, held);
        return 0;
    }
    if (dcs_cluster_reference_lsn(c, &ref) < 0 || !m->has_xlog_location) {
        return -ENODATA;
    }
    *ret_bytes = behind(ref, m->xlog_location);
    return 0;
}

static bool member_tag_true(const DcsMember *m, const char *tag)
{
    return m->tags && json_is_true(json_object_get(m->tags, tag));
}

const char *dcs_candidate_problem(const DcsCluster *c, const DcsMember *m, bool forced)
{
    if (!c || !m) {
        return "no such member";
    }
    if (c->leader && strcmp(c->leader->name, m->name) == 0) {
        return "it is the current leader";
    }
    if (!m->state || strcmp(m->state, "running") != 0) {
        return "it is not running";
    }
    if (member_tag_true(m, "nofailover")) {
        return "it is tagged nofailover";
    }
    /* the sync key before the lag: a lag may be a moment's */
    const char *why = dcs_sync_problem(c, c->config && c->config->dcs.synchronous_mode, m->name);
    if (!forced && why) {
        return "it is not a synchronous standby";
    }
    uint64_t lag = 0;
    int64_t max = c->config ? c->config->dcs.maximum_lag_on_failover : 1048576;
    if (!forced && dcs_member_wal_lag(c, m, &lag) >= 0 && lag > (uint64_t)max) {
        return "it lags more than maximum_lag_on_failover";
    }
    return NULL;
}

const DcsMember *dcs_pick_candidate(const DcsCluster *c)
{
    const DcsMember *best = NULL;
    for (size_t i = 0; c && i < c->n_members; i++) {
        const DcsMember *m = &c->members[i];
        if (dcs_candidate_problem(c, m, false)) {
            continue;
        }
        if (!best || (m->has_xlog_location && m->xlog_location > best->xlog_location)) {
            best = m;
        }
    }
    return best;
}

const char *dcs_failover_candidate(const DcsCluster *c)
{
    const DcsFailover *fo = c ? c->failover : NULL;
    if (!fo) {
        return NULL;
    }
    if (fo->candidate) {
        return fo->candidate;
    }
    const DcsMember *picked = dcs_pick_candidate(c);
    return picked ? picked->name : NULL;
}

/* Reads exactly n digits. */
static bool read_digits(const char **p, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9') {
            return false;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

int dcs_parse_time(const char *s, double *ret_epoch)
{
    return dcs_parse_time_full(s, false, ret_epoch);
}

int dcs_parse_time_full(const char *s, bool utc_default, double *ret_epoch)
{
    if (!s || !ret_epoch) {
        return -EINVAL;
    }
    const char *p = s;
    int y, mo, d, h, mi, sec;
    if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
        !read_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ')) {
        return -EINVAL;
    }
    p++;
    if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi)) {
        return -EINVAL;
    }
    sec = 0;
    if (*p == ':') {
        p++;
        if (!read_digits(&p, 2, &sec)) {
            return -EINVAL;
        }
    }
    double frac = 0, scale = 0.1;
    if (*p == '.' || *p == ',') {
        p++;
        if (*p < '0' || *p > '9') {
            return -EINVAL;
        }
        for (; *p >= '0' && *p <= '9'; p++, scale /= 10) {
            frac += (*p - '0') * scale;
        }
    }
    int offset = 0; /* seconds east of UTC */
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!read_digits(&p, 2, &oh)) {
            return -EINVAL;
        }
        if (*p == ':') {
            p++;
        }
        if (*p && !read_digits(&p, 2, &om)) {
            return -EINVAL;
        }
        if (oh > 23 || om > 59) {
            return -EINVAL;
        }
        offset = sign * (oh * 3600 + om * 60);
    } else if (!utc_default) {
        return -EINVAL; /* no timezone: ambiguous, as Patroni refuses it */
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
        return -EINVAL;
    }
    struct tm tm = { .tm_year = y - 1900,
                     .tm_mon = mo - 1,
                     .tm_mday = d,
                     .tm_hour = h,
                     .tm_min = mi,
                     .tm_sec = sec };
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) {
        return -EINVAL; /* timegm normalised an impossible date (Feb 30) */
    }
    *ret_epoch = (double)t - offset + frac;
    return 0;
}

int64_t dcs_history_cluster_timeline(const DcsHistory *h)
{
    if (!h) {
        return 0;
    }
    if (h->n_entries > 0) {
        return h->entries[h->n_entries - 1].timeline + 1;
    }
    return json_is_array(h->data) && json_array_size(h->data) == 0 ? 1 : 0;
}

bool dcs_history_diverged(const DcsHistory *h, int64_t our_tli, uint64_t our_lsn,
                          int64_t leader_tli)
{
    if (!h || our_tli <= 0 || leader_tli <= our_tli) {
        return false;
    }
    for (size_t i = 0; i < h->n_entries; i++) {
        if (h->entries[i].timeline == our_tli) {
            return our_lsn > h->entries[i].lsn;
        }
    }
    return false;
}

/* ---- GET /cluster ----------------------------------------------------- */

static int set_new(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

/* Patroni's "lag" (bytes; "unknown" without a position; 0 without a
 * reference position, as Patroni's missing leader optime), plus ours. */
static int lag_to_json(const DcsCluster *c, const DcsMember *m, json_t *o)
{
    DcsLag l;
    int r = dcs_member_lag_info(c, m, &l);
    if (r < 0) {
        bool known = m->has_replay_lsn || m->has_xlog_location;
        return set_new(o, "lag", known ? json_integer(0) : json_string("unknown"));
    }
    if (set_new(o, "lag", json_integer((json_int_t)l.bytes)) < 0 ||
        (l.has_seconds && set_new(o, "lag_seconds", json_real(l.seconds)) < 0) ||
        (l.has_write_bytes &&
         set_new(o, "write_lag_bytes", json_integer((json_int_t)l.write_bytes)) < 0) ||
        (l.has_flush_bytes &&
         set_new(o, "flush_lag_bytes", json_integer((json_int_t)l.flush_bytes)) < 0) ||
        (l.replay_paused && set_new(o, "replay_paused", json_true()) < 0)) {
        return -ENOMEM;
    }
    return 0;
}

static int member_to_json(const DcsCluster *c, const DcsMember *m, json_t **ret)
{
    _cleanup_json_ json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    bool is_leader = c->leader && strcmp(c->leader->name, m->name) == 0;
    const char *role = is_leader ? (dcs_cluster_is_standby(c) ? "standby_leader" : "leader")
                       : dcs_cluster_is_sync_standby(c, m->name) ? "sync_standby"
                                                                 : "replica";
    if (set_new(o, "name", json_string(m->name)) < 0 || set_new(o, "role", json_string(role)) < 0 ||
        set_new(o, "state", json_string(m->state ? m->state : "")) < 0 ||
        set_new(o, "api_url", m->api_url ? json_string(m->api_url) : json_null()) < 0) {
        return -ENOMEM;
    }
    if (m->host) {
        if (set_new(o, "host", json_string(m->host)) < 0 ||
            set_new(o, "port", json_integer(m->port)) < 0) {
            return -ENOMEM;
        }
    }
    static const char *const optional[] = { "timeline", "pending_restart", "scheduled_restart",
                                            "tags" };
    for (size_t i = 0; i < ELEMENTSOF(optional); i++) {
        const json_t *v = json_object_get(m->data, optional[i]);
        if (v && set_new(o, optional[i], json_deep_copy(v)) < 0) {
            return -ENOMEM;
        }
    }
    if (!is_leader) {
        int r = lag_to_json(c, m, o);
        if (r < 0) {
            return r;
        }
    }
    if (m->failover_blocked &&
        set_new(o, "failover_blocked", json_string(m->failover_blocked)) < 0) {
        return -ENOMEM;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

int dcs_cluster_to_json(const DcsCluster *c, const char *scope, json_t **ret)
{
    if (!c || !ret) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *o = json_object();
    json_t *members = json_array();
    if (!o || set_new(o, "members", members) < 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        json_t *m = NULL;
        int r = member_to_json(c, &c->members[i], &m);
        if (r < 0) {
            return r;
        }
        if (json_array_append_new(members, m) < 0) {
            return -ENOMEM;
        }
    }
    if (dcs_cluster_is_paused(c) && set_new(o, "pause", json_true()) < 0) {
        return -ENOMEM;
    }
    if (c->failover && c->failover->scheduled_at) {
        json_t *s = json_pack("{s:s, s:s*, s:s*}", "at", c->failover->scheduled_at, "from",
                              c->failover->leader, "to", c->failover->candidate);
        if (set_new(o, "scheduled_switchover", s) < 0) {
            return -ENOMEM;
        }
    }
    if (scope && set_new(o, "scope", json_string(scope)) < 0) {
        return -ENOMEM;
    }
    *ret = TAKE_PTR(o);
    return 0;
}

/* ---- encoders --------------------------------------------------------- */

static int dump(const json_t *v, char **ret)
{
    char *s = json_dumps(v, DCS_JSON_FLAGS | JSON_ENCODE_ANY);
    if (!s) {
        return -ENOMEM;
    }
    *ret = s;
    return 0;
}

static json_t *lsn_or_null(bool has, uint64_t lsn)
{
    return has ? json_integer((json_int_t)lsn) : json_null();
}

static json_t *seconds_or_null(bool has, double sec)
{
    return has ? json_real(sec) : json_null();
}

int dcs_replication_row_to_json(const DcsReplicationRow *row, json_t **ret)
{
    if (!row || !row->name || !ret) {
        return -EINVAL;
    }
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:o, s:o, s:o, s:o, s:o, s:o}", "name", row->name,
                          "state", row->state, "sync_state", row->sync_state, "write_lsn",
                          lsn_or_null(row->has_write_lsn, row->write_lsn), "flush_lsn",
                          lsn_or_null(row->has_flush_lsn, row->flush_lsn), "replay_lsn",
                          lsn_or_null(row->has_replay_lsn, row->replay_lsn), "write_lag",
                          seconds_or_null(row->has_write_lag, row->write_lag), "flush_lag",
                          seconds_or_null(row->has_flush_lag, row->flush_lag), "replay_lag",
                          seconds_or_null(row->has_replay_lag, row->replay_lag));
    if (!o) {
        return -ENOMEM;
    }
    *ret = o;
    return 0;
}

int dcs_member_encode(const DcsMemberInfo *m, char **ret_json)
{
    if (!m || !ret_json || !m->conn_url || !m->api_url || !m->state || !m->version) {
        return -EINVAL;
    }
    const char *role = dcs_role_to_string(m->role);
    if (!role) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "conn_url", m->conn_url, "api_url", m->api_url,
                  "state", m->state, "role", role, "version", m->version);
    if (!o) {
        return -ENOMEM;
    }
    if (m->proxy_url && set_new(o, "proxy_url", json_string(m->proxy_url)) < 0) {
        return -ENOMEM;
    }
    if (m->tags && json_object_size(m->tags) > 0 &&
        set_new(o, "tags", json_deep_copy(m->tags)) < 0) {
        return -ENOMEM;
    }
    if (m->pending_restart && set_new(o, "pending_restart", json_true()) < 0) {
        return -ENOMEM;
    }
    if (m->has_xlog_location &&
        set_new(o, "xlog_location", json_integer((json_int_t)m->xlog_location)) < 0) {
        return -ENOMEM;
    }
    if (m->timeline > 0 && set_new(o, "timeline", json_integer(m->timeline)) < 0) {
        return -ENOMEM;
    }
    if (m->replication_state &&
        set_new(o, "replication_state", json_string(m->replication_state)) < 0) {
        return -ENOMEM;
    }
    if (m->scheduled_restart &&
        set_new(o, "scheduled_restart", json_deep_copy(m->scheduled_restart)) < 0) {
        return -ENOMEM;
    }
    if (m->pause && set_new(o, "pause", json_true()) < 0) {
        return -ENOMEM;
    }
    if ((m->has_receive_lsn &&
         set_new(o, "receive_lsn", json_integer((json_int_t)m->receive_lsn)) < 0) ||
        (m->has_replay_lsn &&
         set_new(o, "replay_lsn", json_integer((json_int_t)m->replay_lsn)) < 0) ||
        (m->replay_paused && set_new(o, "replay_paused", json_true()) < 0) ||
        (m->has_lag_seconds && set_new(o, "lag_seconds", json_real(m->lag_seconds)) < 0)) {
        return -ENOMEM;
    }
    if (m->replication) {
        json_t *list = json_array();
        if (set_new(o, "replication", list) < 0) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_replication; i++) {
            json_t *row = NULL;
            if (dcs_replication_row_to_json(&m->replication[i], &row) < 0 ||
                json_array_append_new(list, row) < 0) {
                return -ENOMEM;
            }
        }
    }
    if (m->failover_blocked &&
        set_new(o, "failover_blocked", json_string(m->failover_blocked)) < 0) {
        return -ENOMEM;
    }
    if (m->upstream && set_new(o, "upstream", json_string(m->upstream)) < 0) {
        return -ENOMEM;
    }
    return dump(o, ret_json);
}

int dcs_tags_from_config(const Config *c, json_t **ret)
{
    if (!c || !ret) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *o = json_object();
    if (!o) {
        return -ENOMEM;
    }
    const struct {
        const char *name;
        bool value;
    } flags[] = {
        { "nofailover", c->tags.nofailover },
        { "noloadbalance", c->tags.noloadbalance },
        { "clonefrom", c->tags.clonefrom },
        { "nosync", c->tags.nosync },
    };
    for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
        if (flags[i].value && set_new(o, flags[i].name, json_true()) < 0) {
            return -ENOMEM;
        }
    }
    if (c->tags.replicatefrom &&
        set_new(o, "replicatefrom", json_string(c->tags.replicatefrom)) < 0) {
        return -ENOMEM;
    }
    if (c->tags.failover_priority != 1 &&
        set_new(o, "failover_priority", json_integer(c->tags.failover_priority)) < 0) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->tags.custom.n; i++) {
        const ConfigKv *kv = &c->tags.custom.items[i];
        if (set_new(o, kv->key, config_scalar_json(kv->value ? kv->value : "")) < 0) {
            return -ENOMEM;
        }
    }
    *ret = TAKE_PTR(o);
    return 0;
}

int dcs_config_encode(const ConfigDcs *d, char **ret_json)
{
    if (!d || !ret_json) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *params = json_object();
    if (!params) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < d->parameters.n; i++) {
        const ConfigKv *kv = &d->parameters.items[i];
        if (set_new(params, kv->key, config_scalar_json(kv->value ? kv->value : "")) < 0) {
            return -ENOMEM;
        }
    }
    _cleanup_json_ json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:b, s:{s:b, s:b, s:O}}", "ttl",
        (json_int_t)d->ttl, "loop_wait", (json_int_t)d->loop_wait, "retry_timeout",
        (json_int_t)d->retry_timeout, "maximum_lag_on_failover",
        (json_int_t)d->maximum_lag_on_failover, "primary_start_timeout",
        (json_int_t)d->primary_start_timeout, "primary_stop_timeout",
        (json_int_t)d->primary_stop_timeout, "synchronous_mode", d->synchronous_mode,
        "synchronous_mode_strict", d->synchronous_mode_strict, "synchronous_node_count",
        (json_int_t)d->synchronous_node_count, "failsafe_mode", d->failsafe_mode, "postgresql",
        "use_pg_rewind", d->use_pg_rewind, "use_slots", d->use_slots, "parameters", params);
    if (!o) {
        return -ENOMEM;
    }
    if (d->maximum_lag_on_syncnode != -1 &&
        set_new(o, "maximum_lag_on_syncnode", json_integer(d->maximum_lag_on_syncnode)) < 0) {
        return -ENOMEM;
    }
    if (d->max_timelines_history > 0 &&
        set_new(o, "max_timelines_history", json_integer(d->max_timelines_history)) < 0) {
        return -ENOMEM;
    }
    if (d->check_timeline && set_new(o, "check_timeline", json_true()) < 0) {
        return -ENOMEM;
    }
    if (d->pause && set_new(o, "pause", json_true()) < 0) {
        return -ENOMEM;
    }
    const struct {
        const char *name;
        const ConfigStrv *lines;
    } lists[] = { { "pg_hba", &d->pg_hba }, { "pg_ident", &d->pg_ident } };
    for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
        if (lists[i].lines->n == 0) {
            continue;
        }
        json_t *a = json_array();
        if (!a || set_new(json_object_get(o, "postgresql"), lists[i].name, a) < 0) {
            return -ENOMEM;
        }
        for (size_t j = 0; j < lists[i].lines->n; j++) {
            if (json_array_append_new(a, json_string(lists[i].lines->items[j])) < 0) {
                return -ENOMEM;
            }
        }
    }
    if (d->recovery_conf.n > 0) {
        json_t *rc = json_object();
        if (!rc || set_new(json_object_get(o, "postgresql"), "recovery_conf", rc) < 0) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < d->recovery_conf.n; i++) {
            const ConfigKv *kv = &d->recovery_conf.items[i];
            if (set_new(rc, kv->key, config_scalar_json(kv->value ? kv->value : "")) < 0) {
                return -ENOMEM;
            }
        }
    }
    if (d->slots && set_new(o, "slots", json_deep_copy(d->slots)) < 0) {
        return -ENOMEM;
    }
    if (d->ignore_slots && set_new(o, "ignore_slots", json_deep_copy(d->ignore_slots)) < 0) {
        return -ENOMEM;
    }
    if (d->standby_cluster &&
        set_new(o, "standby_cluster", json_deep_copy(d->standby_cluster)) < 0) {
        return -ENOMEM;
    }
    return dump(o, ret_json);
}

int dcs_initialize_encode(uint64_t sysid, char **ret_text)
{
    if (!ret_text) {
        return -EINVAL;
    }
    if (asprintf(ret_text, "%" PRIu64, sysid) < 0) {
        *ret_text = NULL;
        return -ENOMEM;
    }
    return 0;
}

int dcs_status_encode(uint64_t optime, const json_t *slots, char **ret_json)
{
    if (!ret_json || optime > INT64_MAX) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *o = json_pack("{s:I}", "optime", (json_int_t)optime);
    if (!o) {
        return -ENOMEM;
    }
    if (json_is_object(slots) && json_object_size(slots) > 0 &&
        set_new(o, "slots", json_deep_copy(slots)) < 0) {
        return -ENOMEM;
    }
    return dump(o, ret_json);
}

int dcs_history_append(const char *old_value, int64_t timeline, uint64_t lsn, const char *reason,
                       const char *timestamp, const char *new_leader, int64_t max_lines,
                       char **ret_json)
{
    if (!ret_json || !reason || lsn > INT64_MAX || (new_leader && !timestamp) || max_lines < 0) {
        return -EINVAL;
    }
    json_error_t err;
    _cleanup_json_ json_t *list = old_value ? json_loads(old_value, 0, &err) : NULL;
    if (!json_is_array(list)) {
        json_decref(list);
        list = json_array();
        if (!list) {
            return -ENOMEM;
        }
    }
    json_t *line = json_pack("[I, I, s]", (json_int_t)timeline, (json_int_t)lsn, reason);
    if (!line || json_array_append_new(list, line) < 0) {
        return -ENOMEM;
    }
    if (timestamp && json_array_append_new(line, json_string(timestamp)) < 0) {
        return -ENOMEM;
    }
    if (new_leader && json_array_append_new(line, json_string(new_leader)) < 0) {
        return -ENOMEM;
    }
    while (max_lines > 0 && json_array_size(list) > (size_t)max_lines) {
        (void)json_array_remove(list, 0);
    }
    return dump(list, ret_json);
}

int dcs_failover_encode(const char *leader, const char *candidate, const char *scheduled_at,
                        char **ret_json)
{
    if (!ret_json) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *o = json_pack("{s:s*, s:s*, s:s*}", "leader", leader, "member",
                                         candidate, "scheduled_at", scheduled_at);
    if (!o) {
        return -ENOMEM;
    }
    return dump(o, ret_json);
}

int dcs_sync_encode(const char *leader, const char *sync_standby, char **ret_json)
{
    if (!ret_json || !leader) {
        return -EINVAL;
    }
    _cleanup_json_ json_t *o = json_pack("{s:s, s:s?}", "leader", leader, "sync_standby",
                                         sync_standby && *sync_standby ? sync_standby : NULL);
    if (!o) {
        return -ENOMEM;
    }
    return dump(o, ret_json);
}
