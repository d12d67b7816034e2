/* What the agent tells the world: its member key in etcd (Patroni 3.0.2's
 * member JSON, under its own lease) and the REST snapshot (health inputs,
 * the /patroni and /cluster documents), rebuilt after every tick and every
 * one-second probe. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "metrics.h"

#define PUBLISH_TAGS_MAX 32
#define PUBLISH_TAG_MAX  128

static bool holds_leader(const Agent *a)
{
    return a->dcs_ok && a->cluster && a->cluster->leader &&
           strcmp(a->cluster->leader->name, a->config->name) == 0;
}

/* Patroni's member `state`. */
static const char *member_state(const Agent *a)
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

static DcsRole member_role(const Agent *a)
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
    if (a->probe_ok && !a->snap.in_recovery) {
        return DCS_ROLE_PRIMARY;
    }
    return DCS_ROLE_REPLICA;
}

static uint64_t wal_position(const Agent *a)
{
    if (!a->probe_ok) {
        return 0;
    }
    if (!a->snap.in_recovery) {
        return a->snap.current_lsn;
    }
    return a->snap.replay_lsn > a->snap.receive_lsn ? a->snap.replay_lsn : a->snap.receive_lsn;
}

bool agent_streaming(const Agent *a)
{
    return a->probe_ok && a->snap.in_recovery && a->snap.has_wal_receiver &&
           strcmp(a->snap.wal_receiver_status, "streaming") == 0;
}

int agent_touch_member(Agent *a)
{
    if (a->lease_id == 0) {
        return -ENOLINK;
    }
    const Config *c = a->config;
    _cleanup_free_ char *conn_url = NULL, *api_url = NULL, *value = NULL;
    json_t *tags = NULL;
    if (asprintf(&conn_url, "postgres://%s/postgres", c->postgresql.connect_address) < 0 ||
        asprintf(&api_url, "%s://%s/patroni", c->restapi.certfile ? "https" : "http",
                 c->restapi.connect_address) < 0 ||
        dcs_tags_from_config(c, &tags) < 0) {
        return log_error_errno(-ENOMEM, "out of memory");
    }
    DcsMemberInfo m = {
        .conn_url = conn_url,
        .api_url = api_url,
        .state = member_state(a),
        .role = member_role(a),
        .version = DBHA_VERSION,
        .tags = tags,
        .has_xlog_location = a->probe_ok,
        .xlog_location = wal_position(a),
        .timeline = a->probe_ok ? a->snap.timeline : 0,
        .replication_state = agent_streaming(a) ? "streaming" : NULL,
        .pause = a->cluster && dcs_cluster_is_paused(a->cluster),
        .pending_restart = a->probe_ok && a->snap.pending_restart,
    };
    int r = dcs_member_encode(&m, &value);
    json_decref(tags);
    if (r < 0) {
        return log_error_errno(r, "encoding the member key: %m");
    }
    EtcdPutOptions o = { .lease = a->lease_id };
    EtcdError e = { 0 };
    r = etcd_put(a->etcd, a->member_key, value, strlen(value), &o, NULL, &e);
    if (r < 0) {
        return log_debug_errno(r, "updating %s: %s", a->member_key, e.message);
    }
    return 0;
}

static HealthPgState health_state(const Agent *a)
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

static json_t *patroni_doc(const Agent *a, const json_t *tags)
{
    json_t *d = json_object();
    if (!d) {
        return NULL;
    }
    const char *state = member_state(a);
    json_object_set_new(d, "state", json_string(state));
    if (a->probe_ok) {
        char started[64];
        time_t t = (time_t)a->snap.postmaster_start_time;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(started, sizeof(started), "%Y-%m-%d %H:%M:%S+00:00", &tm);
        json_object_set_new(d, "postmaster_start_time", json_string(started));
    }
    json_object_set_new(d, "role", json_string(dcs_role_to_string(member_role(a))));
    if (a->probe_ok && a->snap.pending_restart) {
        json_object_set_new(d, "pending_restart", json_true());
    }
    if (a->probe_ok) {
        json_object_set_new(d, "server_version", json_integer(a->snap.server_version_num));
        json_t *xlog = json_object();
        if (!a->snap.in_recovery) {
            json_object_set_new(xlog, "location", json_integer((json_int_t)a->snap.current_lsn));
        } else {
            json_object_set_new(xlog, "received_location",
                                json_integer((json_int_t)a->snap.receive_lsn));
            json_object_set_new(xlog, "replayed_location",
                                json_integer((json_int_t)a->snap.replay_lsn));
            json_object_set_new(xlog, "replayed_timestamp", json_null());
            json_object_set_new(xlog, "paused", json_false());
        }
        json_object_set_new(d, "xlog", xlog);
        json_object_set_new(d, "timeline", json_integer(a->snap.timeline));
        if (!a->snap.in_recovery) {
            json_t *rep = json_array();
            size_t n = a->snap.n_replication < PGPROBE_REPLICAS_MAX ? a->snap.n_replication
                                                                    : PGPROBE_REPLICAS_MAX;
            for (size_t i = 0; i < n; i++) {
                const PgReplicationRow *row = &a->snap.replication[i];
                json_array_append_new(rep, json_pack("{s:s, s:s, s:s}", "application_name",
                                                     row->application_name, "state", row->state,
                                                     "sync_state", row->sync_state));
            }
            json_object_set_new(d, "replication", rep);
        }
        if (a->snap.in_recovery) {
            json_object_set_new(
                d, "replication_state",
                json_string(agent_streaming(a) ? "streaming" : "in archive recovery"));
        }
        char sysid[32];
        snprintf(sysid, sizeof(sysid), "%" PRIu64, a->snap.system_identifier);
        json_object_set_new(d, "database_system_identifier", json_string(sysid));
    }
    if (a->dcs_ok && a->cluster && !a->cluster->leader) {
        json_object_set_new(d, "cluster_unlocked", json_true());
    }
    if (a->dcs_seen_epoch > 0) {
        json_object_set_new(d, "dcs_last_seen", json_integer((json_int_t)a->dcs_seen_epoch));
    }
    if (tags && json_object_size(tags) > 0) {
        json_object_set(d, "tags", (json_t *)tags);
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

void agent_publish_rest(Agent *a, uint64_t now_usec)
{
    const ConfigDcs *dcs = agent_dcs(a);
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
        .role = member_role(a) == DCS_ROLE_PRIMARY         ? HEALTH_ROLE_PRIMARY
                : member_role(a) == DCS_ROLE_UNINITIALIZED ? HEALTH_ROLE_UNINITIALIZED
                                                           : HEALTH_ROLE_REPLICA,
        .probe_ok = a->probe_ok,
        .in_recovery = a->probe_ok && a->snap.in_recovery,
        .replayed_lsn = a->probe_ok ? a->snap.replay_lsn : 0,
        .postmaster_alive = a->pg_running,
        .dcs_ok = fresh,
        .is_leader = holds_leader(a) && a->state == HA_STATE_PRIMARY,
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
        }
        if (node.is_leader) {
            (void)rest_snapshot_set_leader_deadline(snap, a->lease_expires_usec);
        }
        _cleanup_free_ char *metrics = NULL;
        if (agent_metrics_text(a, now_usec, &metrics) >= 0) {
            (void)rest_snapshot_set_metrics(snap, metrics);
        }
        rest_server_publish(a->rest, snap);
        rest_snapshot_unref(snap);
    }
    free(tb);
    json_decref(tags);
}
