/* GET /metrics: Prometheus text format (version 0.0.4). The patroni_*
 * series carry Patroni 3.0.2's names and meaning, so dashboards and alerts
 * written for it keep working; dbha_* series are our own. Every series has
 * the labels scope and name, as Patroni's. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "publish.h"

/* A label value with \, " and newline escaped (the exposition format). */
static void put_label(FILE *f, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"') {
            fputc('\\', f);
            fputc(*v, f);
        } else if (*v == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*v, f);
        }
    }
}

typedef struct Out {
    FILE *f;
    const PublishView *a;
} Out;

/* "# HELP", "# TYPE", then one sample with the common labels and, when
 * extra_key is set, one more label. */
static void head(Out *o, const char *name, const char *type, const char *help)
{
    fprintf(o->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_labels(Out *o, const char *name, const char *extra_key, const char *extra_value)
{
    fprintf(o->f, "%s{scope=\"", name);
    put_label(o->f, o->a->config->scope);
    fputs("\",name=\"", o->f);
    put_label(o->f, o->a->config->name);
    if (extra_key) {
        fprintf(o->f, "\",%s=\"", extra_key);
        put_label(o->f, extra_value);
    }
    fputs("\"} ", o->f);
}

static void gauge(Out *o, const char *name, const char *help, double v)
{
    head(o, name, "gauge", help);
    sample_labels(o, name, NULL, NULL);
    fprintf(o->f, "%.17g\n", v);
}

static void counter(Out *o, const char *name, const char *help, uint64_t v)
{
    head(o, name, "counter", help);
    sample_labels(o, name, NULL, NULL);
    fprintf(o->f, "%" PRIu64 "\n", v);
}

static bool leading(const PublishView *a)
{
    return a->state == HA_STATE_PRIMARY && a->cluster && a->cluster->leader &&
           strcmp(a->cluster->leader->name, a->config->name) == 0;
}

/* One per-standby series of the leader: a value for each pg_stat_replication
 * row (rows where it is unknown get no sample). */
typedef bool (*RowValue)(const PgSnapshot *s, const PgReplicationRow *row, double *ret);

static uint64_t lsn_behind(uint64_t ref, uint64_t pos)
{
    return ref > pos ? ref - pos : 0;
}

static bool replay_bytes(const PgSnapshot *s, const PgReplicationRow *row, double *ret)
{
    *ret = (double)lsn_behind(s->current_lsn, row->replay_lsn);
    return true;
}

static bool write_bytes(const PgSnapshot *s, const PgReplicationRow *row, double *ret)
{
    *ret = (double)lsn_behind(s->current_lsn, row->write_lsn);
    return row->write_lsn != 0;
}

static bool flush_bytes(const PgSnapshot *s, const PgReplicationRow *row, double *ret)
{
    *ret = (double)lsn_behind(s->current_lsn, row->flush_lsn);
    return row->flush_lsn != 0;
}

/* PostgreSQL's NULL lag: 0 (a standby that is idle and caught up, or one
 * that has not reported yet), as before. */
static bool replay_seconds(const PgSnapshot *s, const PgReplicationRow *row, double *ret)
{
    *ret = row->has_replay_lag ? row->replay_lag_sec : 0;
    return true;
}

static bool write_seconds(const PgSnapshot *s, const PgReplicationRow *row, double *ret)
{
    *ret = row->has_write_lag ? row->write_lag_sec : 0;
    return true;
}

static bool flush_seconds(const PgSnapshot *s, const PgReplicationRow *row, double *ret)
{
    *ret = row->has_flush_lag ? row->flush_lag_sec : 0;
    return true;
}

static void replication_series(Out *o, bool primary)
{
    static const struct {
        const char *name, *help;
        RowValue value;
        bool bytes;
    } series[] = {
        { "dbha_replication_lag_bytes",
          "Leader only: its current WAL position minus each replica's replay position "
          "(pg_stat_replication), by application_name.",
          replay_bytes, true },
        { "dbha_replication_write_lag_bytes",
          "Leader only: its current WAL position minus each replica's written position, by "
          "application_name.",
          write_bytes, true },
        { "dbha_replication_flush_lag_bytes",
          "Leader only: its current WAL position minus each replica's flushed position, by "
          "application_name.",
          flush_bytes, true },
        { "dbha_replication_replay_lag_seconds",
          "Leader only: pg_stat_replication.replay_lag of each replica (0 when NULL), by "
          "application_name.",
          replay_seconds, false },
        { "dbha_replication_write_lag_seconds",
          "Leader only: pg_stat_replication.write_lag of each replica (0 when NULL), by "
          "application_name.",
          write_seconds, false },
        { "dbha_replication_flush_lag_seconds",
          "Leader only: pg_stat_replication.flush_lag of each replica (0 when NULL), by "
          "application_name.",
          flush_seconds, false },
    };
    const PgSnapshot *s = o->a->snap;
    for (size_t k = 0; k < ELEMENTSOF(series); k++) {
        head(o, series[k].name, "gauge", series[k].help);
        for (size_t i = 0; primary && i < s->n_replication && i < PGPROBE_REPLICAS_MAX; i++) {
            const PgReplicationRow *row = &s->replication[i];
            double v;
            if (!series[k].value(s, row, &v)) {
                continue;
            }
            sample_labels(o, series[k].name, "application_name", row->application_name);
            fprintf(o->f, series[k].bytes ? "%.0f\n" : "%.6f\n", v);
        }
    }
}

/* A replica's own lag as dbctl shows it (dcs_member_lag_info on its member
 * key); no sample when unknown. */
static void replica_series(Out *o, bool replica)
{
    const PublishView *a = o->a;
    const DcsMember *me =
        replica && a->cluster ? dcs_cluster_get_member(a->cluster, a->config->name) : NULL;
    DcsLag l;
    bool known = me && dcs_member_lag_info(a->cluster, me, &l) >= 0;
    head(o, "dbha_replica_lag_bytes", "gauge",
         "Replica only: the leader's position minus this replica's replay position.");
    if (known) {
        sample_labels(o, "dbha_replica_lag_bytes", NULL, NULL);
        fprintf(o->f, "%" PRIu64 "\n", l.bytes);
    }
    head(o, "dbha_replica_lag_seconds", "gauge",
         "Replica only: how far replay is behind, in seconds (the leader's replay_lag, else "
         "now minus the last replayed commit's time; 0 when caught up).");
    double sec = 0;
    bool has_sec = known && l.has_seconds;
    if (known && l.has_seconds) {
        sec = l.seconds;
    } else if (replica && pgprobe_replica_lag_seconds(a->snap, &sec) >= 0) {
        has_sec = true;
    }
    if (has_sec) {
        sample_labels(o, "dbha_replica_lag_seconds", NULL, NULL);
        fprintf(o->f, "%.6f\n", sec);
    }
}

int publish_metrics_text(const Publisher *p, const PublishView *a, uint64_t now_usec, char **ret)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return -ENOMEM;
    }
    Out o = { .f = f, .a = a };
    const PgSnapshot *s = a->snap;
    bool up = a->probe_ok;
    bool primary = up && !s->in_recovery;
    bool lead = leading(a);
    const DcsCluster *c = a->cluster;

    /* Patroni 3.0.2's series. */
    gauge(&o, "patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.",
          a->pg_running);
    gauge(&o, "patroni_postmaster_start_time", "Epoch seconds since Postgres started.",
          up ? s->postmaster_start_time : 0);
    gauge(&o, "patroni_master", "Value is 1 if this node is the leader, 0 otherwise.", lead);
    gauge(&o, "patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.", lead);
    gauge(&o, "patroni_xlog_location",
          "Current location of the Postgres transaction log, 0 if "
          "this node is not the leader.",
          primary ? (double)s->current_lsn : 0);
    gauge(&o, "patroni_standby_leader",
          "Value is 1 if this node is the standby_leader, 0 otherwise.", 0);
    gauge(&o, "patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.",
          up && s->in_recovery);
    gauge(&o, "patroni_sync_standby",
          "Value is 1 if this node is a sync standby replica, 0 "
          "otherwise.",
          c && dcs_cluster_is_sync_standby(c, a->config->name));
    gauge(&o, "patroni_xlog_received_location",
          "Current location of the received Postgres transaction log, 0 if this node is not a "
          "replica.",
          up && s->in_recovery ? (double)s->receive_lsn : 0);
    gauge(&o, "patroni_xlog_replayed_location",
          "Current location of the replayed Postgres transaction log, 0 if this node is not a "
          "replica.",
          up && s->in_recovery ? (double)s->replay_lsn : 0);
    gauge(&o, "patroni_xlog_replayed_timestamp",
          "Current timestamp of the replayed Postgres transaction log, 0 if null.",
          up && s->has_replay_timestamp ? s->replay_timestamp : 0);
    gauge(&o, "patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
          up && s->in_recovery && s->replay_paused);
    gauge(&o, "patroni_postgres_server_version", "Version of Postgres (if running), 0 otherwise.",
          up ? s->server_version_num : 0);
    gauge(&o, "patroni_cluster_unlocked", "Value is 1 if the cluster is unlocked, 0 if locked.",
          c && !c->leader);
    gauge(&o, "patroni_postgres_timeline",
          "Postgres timeline of this node (if running), 0 "
          "otherwise.",
          up ? s->timeline : 0);
    gauge(&o, "patroni_dcs_last_seen",
          "Epoch timestamp when DCS was last contacted "
          "successfully by Patroni.",
          (double)(int64_t)a->dcs_seen_epoch);
    gauge(&o, "patroni_pending_restart", "Value is 1 if the node needs a restart, 0 otherwise.",
          up && s->pending_restart);
    gauge(&o, "patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.",
          c && dcs_cluster_is_paused(c));

    /* Ours. */
    head(&o, "dbha_info", "gauge", "Always 1; the labels carry the agent's version and HA state.");
    fprintf(f, "dbha_info{scope=\"");
    put_label(f, a->config->scope);
    fputs("\",name=\"", f);
    put_label(f, a->config->name);
    fprintf(f, "\",version=\"%s\",state=\"%s\"} 1\n", DBHA_VERSION,
            strna(ha_state_to_string(a->state)));
    replication_series(&o, primary);
    replica_series(&o, up && s->in_recovery);
    double lease_left = 0;
    uint64_t expiry = lease_expiry_usec(a->lease);
    if (lead && expiry > now_usec) {
        lease_left = (double)(expiry - now_usec) / 1e6;
    }
    gauge(&o, "dbha_leader_lease_remaining_seconds",
          "Leader only: seconds until the leader lease expires unless renewed.", lease_left);
    counter(&o, "dbha_ha_loops_total", "HA loop iterations run.", a->loops);
    counter(&o, "dbha_leader_changes_total",
            "Changes of the leader key's holder this agent has seen (failovers and switchovers).",
            a->leader_changes);
    counter(&o, "dbha_fencings_total",
            "Times the fencing process shut PostgreSQL down because the leader lease was not "
            "renewed in time.",
            a->fencings);
    counter(&o, "dbha_dcs_cache_reads_total",
            "Cluster views built from the watch-fed copy of the cluster keys.", a->dcs_cache_reads);
    counter(&o, "dbha_dcs_etcd_reads_total",
            "Cluster views read from etcd (the watch-fed copy was not loaded or behind).",
            a->dcs_etcd_reads);
    counter(&o, "dbha_topology_member_wakes_total",
            "Leader only: topology publishes between loops because another member's key changed "
            "what a router reads.",
            a->topology_member_wakes);
    counter(&o, "dbha_topology_member_writes_ignored_total",
            "Leader only: other members' key writes that changed nothing a router reads and did "
            "not wake the loop.",
            a->routing_neutral);
    gauge(&o, "dbha_cluster_promotions", "Promotions recorded in the history key.",
          c && c->history ? (double)c->history->n_entries : 0);

    EtcdClientStats es;
    etcd_client_get_stats(p->etcd, &es);
    counter(&o, "dbha_etcd_requests_total",
            "Requests sent to etcd: HTTP requests, and keepalives on the lease keepalive stream.",
            es.requests);
    counter(&o, "dbha_etcd_keepalives_streamed_total",
            "Lease keepalives answered on the keepalive stream (the rest were POSTs).",
            es.streamed);
    counter(&o, "dbha_etcd_request_errors_total",
            "etcd requests that failed (transport error or an error answer).", es.errors);
    counter(&o, "dbha_etcd_endpoint_failovers_total",
            "Times a request moved on to another etcd endpoint.", es.failovers);
    counter(&o, "dbha_etcd_authentications_total",
            "Successful etcd authentications (the first, and each after a token expired or was "
            "unknown).",
            es.authentications);
    head(&o, "dbha_etcd_request_duration_seconds", "summary", "Time spent in etcd requests.");
    sample_labels(&o, "dbha_etcd_request_duration_seconds_sum", NULL, NULL);
    fprintf(f, "%.6f\n", (double)es.request_usec / 1e6);
    sample_labels(&o, "dbha_etcd_request_duration_seconds_count", NULL, NULL);
    fprintf(f, "%" PRIu64 "\n", es.requests);

    RestStats rs;
    rest_server_get_stats(p->rest, &rs);
    head(&o, "dbha_rest_responses_total", "counter", "REST API responses by status class.");
    static const char *const classes[REST_STATUS_CLASSES] = { "other", "1xx", "2xx",
                                                              "3xx",   "4xx", "5xx" };
    for (size_t i = 0; i < REST_STATUS_CLASSES; i++) {
        sample_labels(&o, "dbha_rest_responses_total", "code", classes[i]);
        fprintf(f, "%" PRIu64 "\n", rs.status_class[i]);
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    return 0;
}
