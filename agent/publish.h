/* Publishing: the member key, the REST snapshot (and /metrics), the
 * leader's topology key and etcd3.mirror_leader_v2. The agent lends what is
 * published as a PublishView for one call; the Publisher holds the handles
 * it writes through and what it remembers between calls. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dcs-store.h"
#include "dcs.h"
#include "etcd.h"
#include "ha.h"
#include "lease.h"
#include "pgprobe.h"
#include "rest.h"
#include "watch.h"

/* A REST client that asked within this long keeps the REST snapshot (and
 * the one-second probe timer) warm. */
#define PUBLISH_WARM_USEC (10 * 1000 * 1000ULL)

typedef struct PublishView {
    const Config *config;
    const ConfigDcs *dcs; /* the settings in force */
    const DcsCluster *cluster;
    bool dcs_ok;
    uint64_t dcs_seen_usec;
    double dcs_seen_epoch;
    HaState state;
    bool pg_running;
    bool probe_ok;
    const PgSnapshot *snap; /* the last probe's (read only when probe_ok) */
    const char *failover_blocked;
    bool watchdog_failed;     /* watchdog.mode required and no safe device: not a candidate */
    bool pre_promote_backoff; /* pre_promote failed less than ttl ago: out of the leader race */
    const Lease *lease;
    const char *following;           /* the member primary_conninfo points at, or NULL */
    const json_t *scheduled_restart; /* Patroni's member key field, or NULL (agent/api.h) */
    uint64_t next_tick_usec;
    /* for /metrics */
    uint64_t loops;
    uint64_t leader_changes;
    uint64_t dcs_cache_reads;
    uint64_t dcs_etcd_reads;
    uint64_t topology_member_wakes;
    uint64_t routing_neutral;
    uint64_t fencings; /* times the fencing process shut PostgreSQL down */
} PublishView;

typedef struct Publisher {
    DcsStore *store;         /* borrowed */
    EtcdClient *etcd;        /* borrowed */
    const DcsPaths *paths;   /* borrowed */
    const char *member_key;  /* borrowed */
    RestServer *rest;        /* borrowed */
    ClusterWatch *watch;     /* borrowed */
    int v2_mirror_result;    /* last etcd3.mirror_leader_v2 outcome: 1 written, 2 removed,
                                -errno failed, 0 none yet */
    uint64_t published_usec; /* the last REST snapshot's time (0: none yet) */
    char *topology_same_as;  /* owned: the inputs (view revision, timeline, addresses) the
                                topology key was last found up to date with */
    /* the member key's inputs (a hash) when the view last showed our key
     * with what they encode, and that key's revision and lease: the same
     * inputs against the same key skip the encoding (publish_member) */
    uint64_t member_hash;
    int64_t member_mod_revision, member_lease;
    uint64_t member_confirmed_usec; /* 0: not confirmed */
    /* owned: the member key's parts derived from the config alone, built on
     * first use and again after publish_config_changed() */
    char *conn_url, *proxy_url, *api_url; /* proxy_url: NULL without proxy_address */
    json_t *tags;
} Publisher;

/* The config was replaced (a reload): what publish derives from it alone is
 * derived again. */
void publish_config_changed(Publisher *p);

/* The member key's conn_url and api_url, and proxy_url (NULL without
 * postgresql.proxy_address; ret_proxy may be NULL), as Patroni forms them
 * from the config. Returns 0 or -ENOMEM (nothing set). */
int publish_config_urls(const Config *c, char **ret_conn, char **ret_api, char **ret_proxy);
/* Frees what p owns. */
void publish_done(Publisher *p);

/* The member key's content is compared in full at least this often. */
#define PUBLISH_MEMBER_RECHECK_USEC (60 * 1000 * 1000ULL)

/* Our member key, written when its content changes (agent/publish.c). */
int publish_member(Publisher *p, const PublishView *v);
/* The REST snapshot: documents, health inputs and metrics. */
void publish_rest(Publisher *p, const PublishView *v, uint64_t now_usec);
/* The REST snapshot now, read or not: before the election asks the peers,
 * which ask us at the same moment, so that their requests are answered at
 * once instead of waiting for a loop busy asking them. */
void publish_rest_now(Publisher *p, const PublishView *v, uint64_t now_usec);
/* Leader: writes the topology key when a router would route differently
 * (agent/topopub.c), from v's view or (watched) the cache's. Returns 0
 * (also when nothing was written) or -errno. */
int publish_topology(Publisher *p, const PublishView *v);
int publish_topology_watched(Publisher *p, const PublishView *v);
/* etcd3.mirror_leader_v2: while leading, the leader key's name in etcd's v2
 * store (refreshed with the ttl); on release, deleted while it names us.
 * Logged once per change of outcome. No-op when the option is off. */
void publish_mirror_leader_v2(Publisher *p, const PublishView *v, bool leading);
/* GET /metrics (Prometheus text format 0.0.4; agent/metrics.c). Returns 0
 * and *ret (malloc'ed), or -ENOMEM. */
int publish_metrics_text(const Publisher *p, const PublishView *v, uint64_t now_usec, char **ret);
