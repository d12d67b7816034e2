/* What the agent tells the world: its member key in etcd (Patroni 3.0.2's
 * member JSON, under its own lease) and the REST snapshot (health inputs,
 * the /patroni and /cluster documents, /metrics), rebuilt after a tick or a
 * probe while REST clients ask; otherwise a tick only marks the snapshot too
 * old and the next request has a fresh one made. */
#include "publish.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "health.h"
#include "log.h"
#include "macro.h"
#include "topology.h"

#define PUBLISH_TAGS_MAX 32
#define PUBLISH_TAG_MAX  128
#define PUBLISH_TIME_MAX 64

static bool holds_leader(const PublishView *a)
{
    return a->dcs_ok && a->cluster && a->cluster->leader &&
           strcmp(a->cluster->leader->name, a->config->name) == 0;
}

/* Patroni's member `state`. */
static const char *member_state(const PublishView *a)
{
    switch (a->state) {
    case HA_STATE_CLONING:
        return "creating replica";
    case HA_STATE_BOOTSTRAP_INITDB:
        return "initializing new cluster";
    case HA_STATE_BOOTSTRAP_STARTING:
    case HA_STATE_STARTING_PRIMARY:
    case HA_STATE_STARTING_REPLICA:
        return "starting";
    case HA_STATE_STOPPING:
        return "stopping";
    default:
        break;
    }
    if (a->pg_running) {
        return a->probe_ok ? "running" : "starting";
    }
    return "stopped";
}

static DcsRole member_role(const PublishView *a)
{
    switch (a->state) {
    case HA_STATE_PRIMARY:
    case HA_STATE_STARTING_PRIMARY:
    case HA_STATE_BOOTSTRAP_STARTING:
        return DCS_ROLE_PRIMARY;
    case HA_STATE_CLONING:
    case HA_STATE_BOOTSTRAP_INITDB:
        return DCS_ROLE_UNINITIALIZED;
    default:
        break;
    }
    if (a->probe_ok && !a->snap->in_recovery) {
        return DCS_ROLE_PRIMARY;
    }
    if (holds_leader(a) && dcs_cluster_is_standby(a->cluster)) {
        return DCS_ROLE_STANDBY_LEADER;
    }
    return DCS_ROLE_REPLICA;
}

static uint64_t wal_position(const PublishView *a)
{
    if (!a->probe_ok) {
        return 0;
    }
    if (!a->snap->in_recovery) {
        return a->snap->current_lsn;
    }
    return a->snap->replay_lsn > a->snap->receive_lsn ? a->snap->replay_lsn : a->snap->receive_lsn;
}

/* The leader's pg_stat_replication as the member key's rows; LSNs that
 * PostgreSQL shows as NULL (the probe's 0) are unknown. */
static size_t replication_rows(const PgSnapshot *s, DcsReplicationRow *rows)
{
    size_t n = s->n_replication < PGPROBE_REPLICAS_MAX ? s->n_replication : PGPROBE_REPLICAS_MAX;
    for (size_t i = 0; i < n; i++) {
        const PgReplicationRow *r = &s->replication[i];
        rows[i] = (DcsReplicationRow){
            .name = r->application_name,
            .state = r->state,
            .sync_state = r->sync_state,
            .has_write_lsn = r->write_lsn != 0,
            .write_lsn = r->write_lsn,
            .has_flush_lsn = r->flush_lsn != 0,
            .flush_lsn = r->flush_lsn,
            .has_replay_lsn = r->replay_lsn != 0,
            .replay_lsn = r->replay_lsn,
            .has_write_lag = r->has_write_lag,
            .write_lag = r->write_lag_sec,
            .has_flush_lag = r->has_flush_lag,
            .flush_lag = r->flush_lag_sec,
            .has_replay_lag = r->has_replay_lag,
            .replay_lag = r->replay_lag_sec,
        };
    }
    return n;
}

/* The reason we will not be promoted, only while there is no leader. */
static const char *failover_blocked(const PublishView *a)
{
    return a->failover_blocked[0] && a->cluster && !a->cluster->leader ? a->failover_blocked : NULL;
}

/* The view just read holds our member key with this content on our current
 * lease: writing it again would change nothing (its lease keeps it alive).
 * Patroni 3.0.2 skips such writes too (Etcd3.touch_member). */
static bool member_key_current(const PublishView *a, const char *value)
{
    const DcsMember *me =
        a->dcs_ok && a->cluster ? dcs_cluster_get_member(a->cluster, a->config->name) : NULL;
    if (!me || !me->valid || !me->data || me->lease != lease_id(a->lease)) {
        return false;
    }
    json_t *mine = json_loads(value, 0, NULL);
    bool same = mine && json_equal(mine, me->data);
    json_decref(mine);
    return same;
}

/* FNV-1a, for the member key's inputs (below). */
typedef struct Fnv {
    uint64_t h;
} Fnv;

static void fnv_bytes(Fnv *f, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        f->h = (f->h ^ b[i]) * 1099511628211ULL;
    }
}

/* A string with its terminator, NULL apart from "" */
static void fnv_str(Fnv *f, const char *s)
{
    if (s) {
        fnv_bytes(f, s, strlen(s) + 1);
    } else {
        fnv_bytes(f, "\xff", 1);
    }
}

static void fnv_u64(Fnv *f, uint64_t v)
{
    fnv_bytes(f, &v, sizeof(v));
}

static void fnv_f64(Fnv *f, double v)
{
    fnv_bytes(f, &v, sizeof(v));
}

static void fnv_json(Fnv *f, const json_t *j)
{
    fnv_u64(f, (uint64_t)json_typeof(j));
    const char *key;
    json_t *v;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        json_object_foreach((json_t *)j, key, v)
        {
            fnv_str(f, key);
            fnv_json(f, v);
        }
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(j); i++) {
            fnv_json(f, json_array_get(j, i));
        }
        break;
    case JSON_STRING:
        fnv_bytes(f, json_string_value(j), json_string_length(j));
        fnv_bytes(f, "", 1);
        break;
    case JSON_INTEGER:
        fnv_u64(f, (uint64_t)json_integer_value(j));
        break;
    case JSON_REAL:
        fnv_f64(f, json_real_value(j));
        break;
    default:
        break;
    }
}

/* Everything dcs_member_encode() reads, so that a tick whose inputs are
 * those of the key already in etcd skips encoding and comparing it. */
static uint64_t member_inputs_hash(const DcsMemberInfo *m)
{
    Fnv f = { 14695981039346656037ULL };
    fnv_str(&f, m->conn_url);
    fnv_str(&f, m->api_url);
    fnv_str(&f, m->state);
    fnv_u64(&f, (uint64_t)m->role);
    fnv_str(&f, m->version);
    fnv_str(&f, m->proxy_url);
    if (m->tags) {
        fnv_json(&f, m->tags);
    }
    fnv_u64(&f, m->scheduled_restart != NULL);
    if (m->scheduled_restart) {
        fnv_json(&f, m->scheduled_restart);
    }
    bool flags[] = { m->pending_restart, m->has_xlog_location,  m->pause,
                     m->has_receive_lsn, m->has_replay_lsn,     m->replay_paused,
                     m->has_lag_seconds, m->replication != NULL };
    fnv_bytes(&f, flags, sizeof(flags));
    uint64_t nums[] = { m->xlog_location, (uint64_t)m->timeline, m->receive_lsn, m->replay_lsn,
                        m->n_replication };
    fnv_bytes(&f, nums, sizeof(nums));
    fnv_f64(&f, m->lag_seconds);
    fnv_str(&f, m->replication_state);
    for (size_t i = 0; m->replication && i < m->n_replication; i++) {
        const DcsReplicationRow *r = &m->replication[i];
        fnv_str(&f, r->name);
        fnv_str(&f, r->state);
        fnv_str(&f, r->sync_state);
        bool rf[] = { r->has_write_lsn, r->has_flush_lsn, r->has_replay_lsn,
                      r->has_write_lag, r->has_flush_lag, r->has_replay_lag };
        fnv_bytes(&f, rf, sizeof(rf));
        uint64_t lsn[] = { r->write_lsn, r->flush_lsn, r->replay_lsn };
        fnv_bytes(&f, lsn, sizeof(lsn));
        double lag[] = { r->write_lag, r->flush_lag, r->replay_lag };
        fnv_bytes(&f, lag, sizeof(lag));
    }
    fnv_str(&f, m->failover_blocked);
    fnv_str(&f, m->upstream);
    return f.h;
}

/* Our key in the view is the one found equal to what inputs of this hash
 * encode (publish_member), not rewritten since, on our lease. */
static bool member_key_confirmed(const Publisher *p, const PublishView *a, uint64_t hash,
                                 uint64_t now)
{
    const DcsMember *me =
        a->dcs_ok && a->cluster ? dcs_cluster_get_member(a->cluster, a->config->name) : NULL;
    return me && p->member_confirmed_usec &&
           now - p->member_confirmed_usec < PUBLISH_MEMBER_RECHECK_USEC && hash == p->member_hash &&
           me->mod_revision == p->member_mod_revision && me->lease == lease_id(a->lease) &&
           p->member_lease == me->lease;
}

void publish_config_changed(Publisher *p)
{
    free(p->conn_url);
    free(p->proxy_url);
    free(p->api_url);
    json_decref(p->tags);
    p->conn_url = p->proxy_url = p->api_url = NULL;
    p->tags = NULL;
    p->member_confirmed_usec = 0;
}

void publish_done(Publisher *p)
{
    publish_config_changed(p);
    free(p->topology_same_as);
    p->topology_same_as = NULL;
}

int publish_config_urls(const Config *c, char **ret_conn, char **ret_api, char **ret_proxy)
{
    /* Patroni's: postgres://connect_address/database, proxy_url the same
     * way from proxy_address */
    _cleanup_free_ char *conn = NULL, *api = NULL, *proxy = NULL;
    if (asprintf(&conn, "postgres://%s/%s", c->postgresql.connect_address, c->postgresql.database) <
            0 ||
        asprintf(&api, "%s://%s/patroni", c->restapi.certfile ? "https" : "http",
                 c->restapi.connect_address) < 0 ||
        (ret_proxy && c->postgresql.proxy_address &&
         asprintf(&proxy, "postgres://%s/%s", c->postgresql.proxy_address, c->postgresql.database) <
             0)) {
        return -ENOMEM;
    }
    *ret_conn = TAKE_PTR(conn);
    *ret_api = TAKE_PTR(api);
    if (ret_proxy) {
        *ret_proxy = TAKE_PTR(proxy);
    }
    return 0;
}

/* The member key's parts that only the config decides, built once. */
static int config_parts(Publisher *p, const Config *c)
{
    if (p->conn_url && p->api_url && p->tags) {
        return 0;
    }
    publish_config_changed(p);
    if (publish_config_urls(c, &p->conn_url, &p->api_url, &p->proxy_url) < 0) {
        return -ENOMEM;
    }
    return dcs_tags_from_config(c, &p->tags) < 0 ? -ENOMEM : 0;
}

int publish_member(Publisher *p, const PublishView *a)
{
    if (lease_id(a->lease) == 0) {
        return -ENOLINK;
    }
    _cleanup_free_ char *value = NULL;
    if (config_parts(p, a->config) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    bool replica = a->probe_ok && a->snap->in_recovery;
    bool primary = a->probe_ok && !a->snap->in_recovery;
    DcsReplicationRow rows[PGPROBE_REPLICAS_MAX];
    size_t n_rows = primary ? replication_rows(a->snap, rows) : 0;
    double lag_sec = 0;
    bool has_lag_sec = replica && pgprobe_replica_lag_seconds(a->snap, &lag_sec) >= 0;
    DcsMemberInfo m = {
        .conn_url = p->conn_url,
        .proxy_url = p->proxy_url,
        .api_url = p->api_url,
        .state = member_state(a),
        .role = member_role(a),
        .version = DBHA_VERSION,
        .tags = p->tags,
        .has_xlog_location = a->probe_ok,
        .xlog_location = wal_position(a),
        .timeline = a->probe_ok ? a->snap->timeline : 0,
        .replication_state = (a->probe_ok && pgprobe_streaming(a->snap)) ? "streaming" : NULL,
        .scheduled_restart = a->scheduled_restart,
        .pause = a->cluster && dcs_cluster_is_paused(a->cluster),
        .pending_restart = a->probe_ok && a->snap->pending_restart,
        .has_receive_lsn = replica && a->snap->receive_lsn != 0,
        .receive_lsn = a->snap->receive_lsn,
        .has_replay_lsn = replica,
        .replay_lsn = a->snap->replay_lsn,
        .replay_paused = replica && a->snap->replay_paused,
        .has_lag_seconds = has_lag_sec,
        .lag_seconds = lag_sec,
        .replication = primary ? rows : NULL,
        .n_replication = n_rows,
        .failover_blocked = failover_blocked(a),
        .upstream = (a->probe_ok && pgprobe_streaming(a->snap)) ? a->following : NULL,
    };
    uint64_t now = clock_monotonic_usec();
    uint64_t hash = member_inputs_hash(&m);
    if (member_key_confirmed(p, a, hash, now)) {
        return 0;
    }
    int r = dcs_member_encode(&m, &value);
    if (r < 0) {
        return log_error_errno(r, "encoding the member key: %m");
    }
    if (member_key_current(a, value)) {
        const DcsMember *me = dcs_cluster_get_member(a->cluster, a->config->name);
        p->member_hash = hash;
        p->member_mod_revision = me->mod_revision;
        p->member_lease = me->lease;
        p->member_confirmed_usec = now;
        return 0;
    }
    p->member_confirmed_usec = 0;
    r = dcs_store_touch_member(p->store, a->config->name, value, lease_id(a->lease));
    if (r < 0) {
        return log_debug_errno(r, "updating %s: %s", p->member_key, p->store->error.message);
    }
    return 0;
}

static HealthPgState health_state(const PublishView *a)
{
    switch (a->state) {
    case HA_STATE_STARTING_PRIMARY:
    case HA_STATE_STARTING_REPLICA:
    case HA_STATE_BOOTSTRAP_STARTING:
        return HEALTH_PG_STARTING;
    case HA_STATE_STOPPING:
        return HEALTH_PG_STOPPING;
    case HA_STATE_CLONING:
    case HA_STATE_BOOTSTRAP_INITDB:
    case HA_STATE_REFUSED:
        return HEALTH_PG_OTHER;
    default:
        break;
    }
    return a->pg_running ? HEALTH_PG_RUNNING : HEALTH_PG_STOPPED;
}

/* Tags as Patroni renders them for ?tag_ matching: strings verbatim, other
 * scalars as Python's str(v).lower(). */
typedef struct TagBuf {
    HealthTag tags[PUBLISH_TAGS_MAX];
    char values[PUBLISH_TAGS_MAX][PUBLISH_TAG_MAX];
    size_t n;
} TagBuf;

static void fill_tags(const json_t *obj, TagBuf *b)
{
    const char *k;
    json_t *v;
    b->n = 0;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (b->n >= PUBLISH_TAGS_MAX) {
            break;
        }
        char *dst = b->values[b->n];
        if (json_is_string(v)) {
            snprintf(dst, PUBLISH_TAG_MAX, "%s", json_string_value(v));
        } else if (json_is_boolean(v)) {
            snprintf(dst, PUBLISH_TAG_MAX, "%s", json_is_true(v) ? "true" : "false");
        } else if (json_is_integer(v)) {
            snprintf(dst, PUBLISH_TAG_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            snprintf(dst, PUBLISH_TAG_MAX, "%g", json_real_value(v));
        } else {
            continue;
        }
        b->tags[b->n] = (HealthTag){ .key = k, .value = dst };
        b->n++;
    }
}

/* Patroni prints pg_last_xact_replay_timestamp() with Python's str():
 * "2026-11-26 18:02:45.930000+00:00" (no fraction when it is 0); null
 * before the first replayed commit. */
static json_t *replayed_timestamp(const PgSnapshot *s)
{
    if (!s->has_replay_timestamp) {
        return json_null();
    }
    /* epoch seconds are positive: truncation is floor; no libm */
    time_t t = (time_t)s->replay_timestamp;
    long usec = (long)((s->replay_timestamp - (double)t) * 1e6 + 0.5);
    if (usec >= 1000000) {
        t++;
        usec -= 1000000;
    }
    struct tm tm;
    char text[PUBLISH_TIME_MAX];
    gmtime_r(&t, &tm);
    size_t n = strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &tm);
    if (usec > 0) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, ".%06u", (unsigned)usec % 1000000U);
    }
    (void)snprintf(text + n, sizeof(text) - n, "+00:00");
    return json_string(text);
}

/* Patroni's rows (application_name, state, sync_state) with the positions
 * and lags of the member key's rows. */
static json_t *replication_doc(const PgSnapshot *s)
{
    json_t *list = json_array();
    DcsReplicationRow rows[PGPROBE_REPLICAS_MAX];
    size_t n = replication_rows(s, rows);
    for (size_t i = 0; list && i < n; i++) {
        json_t *row = NULL;
        if (dcs_replication_row_to_json(&rows[i], &row) < 0) {
            continue;
        }
        json_object_del(row, "name");
        json_object_set_new(row, "application_name", json_string(rows[i].name));
        json_array_append_new(list, row);
    }
    return list;
}

/* A replica's lag as dbctl and GET /cluster show it (dcs_member_lag_info on
 * our member key), and its own view in seconds when the key has none yet. */
static void own_lag_doc(const PublishView *a, json_t *d)
{
    const DcsMember *me = a->cluster ? dcs_cluster_get_member(a->cluster, a->config->name) : NULL;
    DcsLag l;
    if (me && dcs_member_lag_info(a->cluster, me, &l) >= 0) {
        json_object_set_new(d, "lag_bytes", json_integer((json_int_t)l.bytes));
        if (l.has_seconds) {
            json_object_set_new(d, "lag_seconds", json_real(l.seconds));
        }
        return;
    }
    double sec;
    if (pgprobe_replica_lag_seconds(a->snap, &sec) >= 0) {
        json_object_set_new(d, "lag_seconds", json_real(sec));
    }
}

static json_t *patroni_doc(const PublishView *a, const json_t *tags)
{
    json_t *d = json_object();
    if (!d) {
        return NULL;
    }
    const char *state = member_state(a);
    json_object_set_new(d, "state", json_string(state));
    if (a->probe_ok) {
        char started[64];
        time_t t = (time_t)a->snap->postmaster_start_time;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(started, sizeof(started), "%Y-%m-%d %H:%M:%S+00:00", &tm);
        json_object_set_new(d, "postmaster_start_time", json_string(started));
    }
    json_object_set_new(d, "role", json_string(dcs_role_to_string(member_role(a))));
    if (a->probe_ok && a->snap->pending_restart) {
        json_object_set_new(d, "pending_restart", json_true());
    }
    if (a->watchdog_failed) {
        /* Patroni 3.0.2's field: the election skips such a member */
        json_object_set_new(d, "watchdog_failed", json_true());
    }
    if (a->pre_promote_backoff) {
        /* dbha's: the others' elections do not wait for it on a tie */
        json_object_set_new(d, "pre_promote_backoff", json_true());
    }
    if (a->probe_ok) {
        json_object_set_new(d, "server_version", json_integer(a->snap->server_version_num));
        json_t *xlog = json_object();
        if (!a->snap->in_recovery) {
            json_object_set_new(xlog, "location", json_integer((json_int_t)a->snap->current_lsn));
        } else {
            json_object_set_new(xlog, "received_location",
                                json_integer((json_int_t)a->snap->receive_lsn));
            json_object_set_new(xlog, "replayed_location",
                                json_integer((json_int_t)a->snap->replay_lsn));
            json_object_set_new(xlog, "replayed_timestamp", replayed_timestamp(a->snap));
            json_object_set_new(xlog, "paused", json_boolean(a->snap->replay_paused));
        }
        json_object_set_new(d, "xlog", xlog);
        json_object_set_new(d, "timeline", json_integer(a->snap->timeline));
        if (!a->snap->in_recovery) {
            json_object_set_new(d, "replication", replication_doc(a->snap));
        }
        if (a->snap->in_recovery) {
            json_object_set_new(d, "replication_state",
                                json_string((a->probe_ok && pgprobe_streaming(a->snap))
                                                ? "streaming"
                                                : "in archive recovery"));
        }
        char sysid[32];
        snprintf(sysid, sizeof(sysid), "%" PRIu64, a->snap->system_identifier);
        json_object_set_new(d, "database_system_identifier", json_string(sysid));
    }
    if (a->probe_ok && a->snap->in_recovery) {
        own_lag_doc(a, d);
    }
    if (a->dcs_ok && a->cluster && !a->cluster->leader) {
        json_object_set_new(d, "cluster_unlocked", json_true());
    }
    if (failover_blocked(a)) {
        json_object_set_new(d, "failover_blocked", json_string(a->failover_blocked));
    }
    if (a->dcs_seen_epoch > 0) {
        json_object_set_new(d, "dcs_last_seen", json_integer((json_int_t)a->dcs_seen_epoch));
    }
    if (tags && json_object_size(tags) > 0) {
        json_object_set(d, "tags", (json_t *)tags);
    }
    if (a->scheduled_restart) {
        /* Patroni's GET /patroni: the member key's, without postmaster_start_time */
        json_t *s = json_deep_copy(a->scheduled_restart);
        (void)json_object_del(s, "postmaster_start_time");
        json_object_set_new(d, "scheduled_restart", s);
    }
    if (a->cluster && dcs_cluster_is_paused(a->cluster)) {
        json_object_set_new(d, "pause", json_true());
    }
    json_object_set_new(d, "patroni",
                        json_pack("{s:s, s:s, s:s}", "version", DBHA_VERSION, "scope",
                                  a->config->scope, "name", a->config->name));
    json_object_set_new(d, "dbha_state", json_string(ha_state_to_string(a->state)));
    return d;
}

void publish_rest(Publisher *p, const PublishView *a, uint64_t now_usec)
{
    uint64_t asked = rest_server_last_read_usec(p->rest);
    if (rest_server_published_usec(p->rest) != 0 &&
        !(asked && asked + PUBLISH_WARM_USEC > now_usec)) {
        /* nobody reads it: the next request waits for one (on_rest_refresh) */
        rest_server_expire(p->rest);
        return;
    }
    publish_rest_now(p, a, now_usec);
}

void publish_rest_now(Publisher *p, const PublishView *a, uint64_t now_usec)
{
    const ConfigDcs *dcs = a->dcs;
    json_t *tags = NULL;
    if (dcs_tags_from_config(a->config, &tags) < 0) {
        return;
    }
    TagBuf *tb = calloc(1, sizeof(*tb));
    if (!tb) {
        json_decref(tags);
        return;
    }
    fill_tags(tags, tb);
    uint64_t ttl_usec = (uint64_t)dcs->ttl * 1000000ULL;
    bool fresh = a->dcs_ok && a->dcs_seen_usec + ttl_usec > now_usec;
    const DcsCluster *c = a->cluster;
    HealthNode node = {
        .state = health_state(a),
        .role = member_role(a) == DCS_ROLE_PRIMARY          ? HEALTH_ROLE_PRIMARY
                : member_role(a) == DCS_ROLE_UNINITIALIZED  ? HEALTH_ROLE_UNINITIALIZED
                : member_role(a) == DCS_ROLE_STANDBY_LEADER ? HEALTH_ROLE_STANDBY_LEADER
                                                            : HEALTH_ROLE_REPLICA,
        .probe_ok = a->probe_ok,
        .in_recovery = a->probe_ok && a->snap->in_recovery,
        .replayed_lsn = a->probe_ok ? a->snap->replay_lsn : 0,
        .postmaster_alive = a->pg_running,
        .dcs_ok = fresh,
        .is_leader = holds_leader(a) &&
                     (a->state == HA_STATE_PRIMARY || member_role(a) == DCS_ROLE_STANDBY_LEADER),
        .paused = c && dcs_cluster_is_paused(c),
        .standby_cluster = c && dcs_cluster_is_standby(c),
        .synchronous_mode = dcs->synchronous_mode,
        .sync_standby = c && dcs_cluster_is_sync_standby(c, a->config->name),
        .leader_optime = c && c->status.has_optime ? c->status.optime : 0,
        .noloadbalance = a->config->tags.noloadbalance,
        .tags = tb->tags,
        .n_tags = tb->n,
        .now_usec = now_usec,
        .next_run_usec = a->next_tick_usec ? a->next_tick_usec : now_usec,
        .ttl_usec = ttl_usec,
    };
    RestSnapshot *snap = NULL;
    if (rest_snapshot_new(&node, now_usec, &snap) >= 0) {
        json_t *doc = patroni_doc(a, tags);
        if (doc) {
            (void)rest_snapshot_set_document(snap, REST_DOC_PATRONI, doc);
            json_decref(doc);
        }
        if (c) {
            json_t *cl = NULL;
            if (dcs_cluster_to_json(c, a->config->scope, &cl) >= 0) {
                (void)rest_snapshot_set_document(snap, REST_DOC_CLUSTER, cl);
                json_decref(cl);
            }
            if (c->history && c->history->data) {
                (void)rest_snapshot_set_document(snap, REST_DOC_HISTORY, c->history->data);
            }
            if (c->config && c->config->data) {
                (void)rest_snapshot_set_document(snap, REST_DOC_CONFIG, c->config->data);
            }
            /* the document routers follow: the key's, or while it names
             * another leader than the leader key, the one built from the
             * member keys (none without a key: 503) */
            json_t *topo = NULL;
            TopologySource ts;
            if (c->topology && topology_select(c, a->config->scope, &topo, &ts) >= 0) {
                (void)rest_snapshot_set_document(snap, REST_DOC_TOPOLOGY, topo);
                json_decref(topo);
            }
        }
        if (node.is_leader) {
            (void)rest_snapshot_set_leader_deadline(snap, lease_expiry_usec(a->lease));
        }
        _cleanup_free_ char *metrics = NULL;
        if (publish_metrics_text(p, a, now_usec, &metrics) >= 0) {
            (void)rest_snapshot_set_metrics(snap, metrics);
        }
        rest_server_publish(p->rest, snap);
        rest_snapshot_unref(snap);
        p->published_usec = now_usec;
    }
    free(tb);
    json_decref(tags);
}
