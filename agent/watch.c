#include "watch.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "kvcache.h"
#include "log.h"
#include "macro.h"
#include "topology.h"

#define USEC_PER_SEC 1000000ULL

struct ClusterWatch {
    const DcsPaths *paths; /* borrowed */
    char *me;              /* owned */
    char *member_key;      /* owned: ours */
    KvCache *cache;        /* owned: the thread writes, the loop reads */
    EtcdClient *client;    /* owned: the thread's */
    bool behind;           /* the last read found the cache behind: do not wait for it */

    pthread_t thread;
    bool started;
    atomic_bool watch_stop;
    pthread_mutex_t watch_lock;
    EtcdWatch *watch; /* borrowed from the thread, under watch_lock: free wakes it */

    int wake_fd;              /* eventfd: the thread writes, the loop reads */
    atomic_bool wake_tick;    /* set with a write of wake_fd: run a tick */
    atomic_bool wake_routing; /* set with a write of wake_fd: another member's key changed
                                 what a router reads (the leader publishes the topology) */
    atomic_uint_fast64_t routing_neutral; /* other members' key writes that changed nothing a
                                             router reads */
};

/* One etcd_watch_poll() of the watch thread: it is woken for shutdown
 * (etcd_watch_wakeup), so this only bounds the wait. */
#define WATCH_THREAD_POLL_USEC (60 * USEC_PER_SEC)
/* After a failed load or watch set-up, the thread tries again this late. */
#define WATCH_THREAD_RETRY_USEC (500 * 1000ULL)

static bool wakes_loop(const ClusterWatch *a, const EtcdKeyValue *kv)
{
    /* Our own member key changes every loop: not a reason to wake. */
    if (strcmp(kv->key, a->member_key) == 0) {
        return false;
    }
    return strcmp(kv->key, a->paths->leader) == 0 || strcmp(kv->key, a->paths->initialize) == 0 ||
           strcmp(kv->key, a->paths->config) == 0 || strcmp(kv->key, a->paths->failover) == 0 ||
           strcmp(kv->key, a->paths->sync) == 0;
}

static void wake_loop(ClusterWatch *a)
{
    uint64_t one = 1;
    atomic_store(&a->wake_tick, true);
    (void)!write(a->wake_fd, &one, sizeof(one));
}

static void wake_for_routing(ClusterWatch *a)
{
    uint64_t one = 1;
    atomic_store(&a->wake_routing, true);
    (void)!write(a->wake_fd, &one, sizeof(one));
}

/* The name in another member's key (borrowed from kv), or NULL. */
static const char *other_member(const ClusterWatch *a, const EtcdKeyValue *kv)
{
    size_t n = strlen(a->paths->members);
    if (strncmp(kv->key, a->paths->members, n) != 0 || strcmp(kv->key, a->member_key) == 0) {
        return NULL;
    }
    const char *name = kv->key + n;
    return *name && !strchr(name, '/') ? name : NULL;
}

/* The cache's view now; NULL when it is invalid or out of memory. */
static DcsCluster *cache_view(ClusterWatch *a)
{
    EtcdResult res = { 0 };
    DcsCluster *c = NULL;
    if (kv_cache_snapshot(a->cache, 0, 0, &res) < 0) {
        return NULL;
    }
    if (dcs_cluster_from_result(a->paths, &res, &c) < 0) {
        c = NULL;
    }
    etcd_result_done(&res);
    return c;
}

/* The leader key in view c names us (our member key is members/<our name>). */
static bool view_names_us(const ClusterWatch *a, const DcsCluster *c)
{
    return c && c->leader && strcmp(c->leader->name, a->me) == 0;
}

/* The cache first, then the wake-up: the tick it wakes sees the change. A
 * message the cache cannot take ends the watch; the thread loads again.
 * Other members' keys wake only the leader, and only when the write
 * changed what a router reads (topology_member_changed, on the views
 * before and after the message): members rewrite their keys as their
 * positions move, and a router that reads the topology cares about state,
 * lag bucket, tags and addresses only. */
static int watch_cb(EtcdWatch *w, const EtcdWatchResponse *resp, void *userdata)
{
    ClusterWatch *a = userdata;
    bool wake = false, members = false;
    for (size_t i = 0; !resp->created && i < resp->n_events; i++) {
        wake = wake || wakes_loop(a, &resp->events[i].kv);
        members = members || other_member(a, &resp->events[i].kv);
    }
    /* a tick publishes the topology anyway */
    _cleanup_(dcs_cluster_freep) DcsCluster *before = members && !wake ? cache_view(a) : NULL;
    if (!view_names_us(a, before)) {
        before = dcs_cluster_free(before);
    }
    int r = resp->created ? kv_cache_check_next(a->cache, etcd_watch_get_next_revision(w))
                          : kv_cache_apply(a->cache, resp);
    if (r < 0 && !resp->canceled) {
        log_debug("watch: the cache missed events (next revision %" PRId64 "): reloading",
                  etcd_watch_get_next_revision(w));
        wake_loop(a);
        return r;
    }
    if (wake) {
        wake_loop(a);
        return 0;
    }
    if (!before || r < 0) {
        return 0;
    }
    _cleanup_(dcs_cluster_freep) DcsCluster *after = cache_view(a);
    bool routing = false, joined_or_left = false;
    for (size_t i = 0; i < resp->n_events; i++) {
        const char *name = other_member(a, &resp->events[i].kv);
        routing = routing || (name && topology_member_changed(before, after, name));
        joined_or_left = joined_or_left || (name && after &&
                                            (dcs_cluster_get_member(before, name) != NULL) !=
                                                (dcs_cluster_get_member(after, name) != NULL));
    }
    if (joined_or_left) {
        /* a member came (or went): the leader makes (or drops) its slot
         * now, not at its next loop, which a rejoining member's walreceiver
         * can beat by a loop_wait (it would be turned away for the missing
         * slot and wait 5 s before asking again) */
        wake_loop(a);
        return 0;
    }
    if (routing) {
        wake_for_routing(a);
    } else {
        atomic_fetch_add(&a->routing_neutral, 1);
    }
    return 0;
}

/* Publishes the thread's watch for agent_free's wake-up. Once the pointer
 * is published, the stop flag is read again: a stop set before the
 * publication is seen here, one set after it finds the watch to wake. */
static bool watch_publish(ClusterWatch *a, EtcdWatch *w)
{
    (void)pthread_mutex_lock(&a->watch_lock);
    a->watch = w;
    (void)pthread_mutex_unlock(&a->watch_lock);
    return !atomic_load(&a->watch_stop);
}

static void watch_retry_sleep(ClusterWatch *a)
{
    for (uint64_t t = 0; t < WATCH_THREAD_RETRY_USEC && !atomic_load(&a->watch_stop);
         t += 100 * 1000ULL) {
        usleep(100 * 1000);
    }
}

/* One range of the prefix loads the cache at revision R; the watch starts
 * at R + 1, so every later change reaches the cache exactly once. */
static int watch_load(ClusterWatch *a, EtcdClient *c, int64_t *ret_next)
{
    EtcdRangeOptions ro = { .prefix = true };
    EtcdResult res = { 0 };
    EtcdError e = { 0 };
    int r = etcd_range(c, a->paths->prefix, &ro, &res, &e);
    if (r < 0) {
        log_debug("watch: reading the cluster prefix: %s", e.message);
        return r;
    }
    r = kv_cache_load(a->cache, &res);
    if (r >= 0) {
        *ret_next = res.revision + 1;
    } else {
        log_debug("watch: loading the cache: %s", strerror(-r));
    }
    etcd_result_done(&res);
    return r;
}

static void *watch_main(void *userdata)
{
    ClusterWatch *a = userdata;
    EtcdClient *c = a->client;
    while (!atomic_load(&a->watch_stop)) {
        _cleanup_(etcd_watch_freep) EtcdWatch *w = NULL;
        int64_t next = 0;
        EtcdError e = { 0 };
        if (watch_load(a, c, &next) < 0) {
            watch_retry_sleep(a);
            continue;
        }
        EtcdWatchOptions o = { .key = a->paths->prefix, .prefix = true, .start_revision = next };
        if (etcd_watch_new(c, &o, watch_cb, a, &w, &e) < 0) {
            log_debug("watch: %s", e.message);
            kv_cache_invalidate(a->cache);
            watch_retry_sleep(a);
            continue;
        }
        bool run = watch_publish(a, w);
        while (run && !atomic_load(&a->watch_stop)) {
            int r = etcd_watch_poll(w, WATCH_THREAD_POLL_USEC, &e);
            if (r < 0) {
                /* compacted, canceled, or the cache refused a message: the
                 * loop reads etcd until the cache is loaded again */
                log_debug("watch ended: %s", e.message);
                kv_cache_invalidate(a->cache);
                wake_loop(a);
                break;
            }
        }
        (void)watch_publish(a, NULL);
    }
    kv_cache_invalidate(a->cache);
    return NULL;
}

int cluster_watch_new(const DcsPaths *paths, const char *me, ClusterWatch **ret)
{
    ClusterWatch *w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    w->paths = paths;
    w->wake_fd = -1;
    w->watch_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    int r = dcs_paths_member(paths, me, &w->member_key);
    if (r >= 0) {
        w->me = strdup(me);
        r = w->me ? kv_cache_new(&w->cache) : -ENOMEM;
    }
    if (r >= 0) {
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r = w->wake_fd < 0 ? -errno : 0;
    }
    if (r < 0) {
        cluster_watch_free(w);
        return r;
    }
    *ret = w;
    return 0;
}

int cluster_watch_start(ClusterWatch *w, EtcdClient *client)
{
    w->client = client;
    atomic_store(&w->watch_stop, false);
    int r = pthread_create(&w->thread, NULL, watch_main, w);
    if (r != 0) {
        return -r;
    }
    w->started = true;
    return 0;
}

ClusterWatch *cluster_watch_free(ClusterWatch *w)
{
    if (!w) {
        return NULL;
    }
    if (w->started) {
        atomic_store(&w->watch_stop, true);
        (void)pthread_mutex_lock(&w->watch_lock);
        if (w->watch) {
            (void)etcd_watch_wakeup(w->watch);
        }
        (void)pthread_mutex_unlock(&w->watch_lock);
        (void)pthread_join(w->thread, NULL);
    }
    etcd_client_free(w->client);
    kv_cache_free(w->cache);
    (void)pthread_mutex_destroy(&w->watch_lock);
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
    }
    free(w->member_key);
    free(w->me);
    free(w);
    return NULL;
}

int cluster_watch_fd(const ClusterWatch *w)
{
    return w->wake_fd;
}

void cluster_watch_take(ClusterWatch *w, bool *ret_tick, bool *ret_routing)
{
    uint64_t n;
    (void)!read(w->wake_fd, &n, sizeof(n));
    /* a flag set after the read is seen here or with the next read */
    *ret_tick = atomic_exchange(&w->wake_tick, false);
    *ret_routing = atomic_exchange(&w->wake_routing, false);
}

int cluster_watch_view(ClusterWatch *w, int64_t seen, uint64_t now_usec, DcsCluster **ret)
{
    EtcdResult res = { 0 };
    uint64_t deadline = w->behind ? 0 : now_usec + WATCH_CACHE_WAIT_USEC;
    int r = kv_cache_snapshot(w->cache, seen, deadline, &res);
    w->behind = r == -ETIMEDOUT;
    if (r < 0) {
        return r;
    }
    r = dcs_cluster_from_result(w->paths, &res, ret);
    etcd_result_done(&res);
    return r;
}

int64_t cluster_watch_revision(const ClusterWatch *w)
{
    return kv_cache_revision(w->cache);
}

uint64_t cluster_watch_neutral(const ClusterWatch *w)
{
    return (uint64_t)atomic_load(&((ClusterWatch *)w)->routing_neutral);
}
