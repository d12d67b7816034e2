/* The watch-fed copy of a prefix: a key-sorted array under a mutex, and a
 * condition variable on which readers wait for the watch to catch up. */
#include "kvcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct KvCache {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* CLOCK_MONOTONIC: the content or validity changed */
    EtcdKeyValue *kvs;      /* owned, sorted by key as etcd sorts (bytewise) */
    size_t n_kvs;
    size_t cap;
    int64_t revision; /* 0 while invalid */
    bool valid;
    KvCacheStats stats;
};

static void clear_kvs(KvCache *c)
{
    for (size_t i = 0; i < c->n_kvs; i++) {
        etcd_key_value_done(&c->kvs[i]);
    }
    c->n_kvs = 0;
}

int kv_cache_new(KvCache **ret)
{
    _cleanup_free_ KvCache *c = calloc(1, sizeof(*c));
    pthread_condattr_t attr;
    if (!c) {
        return -ENOMEM;
    }
    int r = pthread_condattr_init(&attr);
    if (r != 0) {
        return -r;
    }
    r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (r == 0) {
        r = pthread_cond_init(&c->changed, &attr);
    }
    (void)pthread_condattr_destroy(&attr);
    if (r != 0) {
        return -r;
    }
    r = pthread_mutex_init(&c->lock, NULL);
    if (r != 0) {
        (void)pthread_cond_destroy(&c->changed);
        return -r;
    }
    *ret = TAKE_PTR(c);
    return 0;
}

KvCache *kv_cache_free(KvCache *c)
{
    if (!c) {
        return NULL;
    }
    clear_kvs(c);
    free(c->kvs);
    (void)pthread_cond_destroy(&c->changed);
    (void)pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

static int key_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    int d = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (d != 0) {
        return d;
    }
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

static int kv_sort_cmp(const void *a, const void *b)
{
    const EtcdKeyValue *x = a, *y = b;
    return key_cmp(x->key, x->key_len, y->key, y->key_len);
}

/* The index of key, or where it would be inserted (*ret_found false). */
static size_t find(const KvCache *c, const char *key, size_t len, bool *ret_found)
{
    size_t lo = 0, hi = c->n_kvs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = key_cmp(c->kvs[mid].key, c->kvs[mid].key_len, key, len);
        if (d == 0) {
            *ret_found = true;
            return mid;
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *ret_found = false;
    return lo;
}

static char *dup_bytes(const char *p, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) {
        return NULL;
    }
    if (len > 0) {
        memcpy(d, p, len);
    }
    d[len] = '\0';
    return d;
}

static int kv_copy(const EtcdKeyValue *src, EtcdKeyValue *ret)
{
    EtcdKeyValue kv = *src;
    kv.key = dup_bytes(src->key ? src->key : "", src->key ? src->key_len : 0);
    kv.value = dup_bytes(src->value ? src->value : "", src->value ? src->value_len : 0);
    if (!kv.key || !kv.value) {
        etcd_key_value_done(&kv);
        return -ENOMEM;
    }
    kv.key_len = src->key ? src->key_len : 0;
    kv.value_len = src->value ? src->value_len : 0;
    *ret = kv;
    return 0;
}

static int reserve(KvCache *c, size_t n)
{
    if (n <= c->cap) {
        return 0;
    }
    size_t cap = c->cap ? c->cap * 2 : 16;
    while (cap < n) {
        cap *= 2;
    }
    EtcdKeyValue *p = reallocarray(c->kvs, cap, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    c->kvs = p;
    c->cap = cap;
    return 0;
}

/* Under the lock. */
static void invalidate_locked(KvCache *c)
{
    if (c->valid) {
        c->stats.invalidations++;
    }
    clear_kvs(c);
    c->valid = false;
    c->revision = 0;
    (void)pthread_cond_broadcast(&c->changed);
}

int kv_cache_load(KvCache *c, const EtcdResult *range)
{
    if (!range || range->more || range->revision <= 0) {
        return -EINVAL;
    }
    int r = 0;
    (void)pthread_mutex_lock(&c->lock);
    invalidate_locked(c);
    r = reserve(c, range->n_kvs);
    for (size_t i = 0; r >= 0 && i < range->n_kvs; i++) {
        r = kv_copy(&range->kvs[i], &c->kvs[i]);
        if (r >= 0) {
            c->n_kvs++;
        }
    }
    if (r >= 0) {
        /* etcd sorts a range by key; sorting again costs nothing and makes
         * the binary search independent of that */
        if (c->n_kvs > 1) {
            qsort(c->kvs, c->n_kvs, sizeof(*c->kvs), kv_sort_cmp);
        }
        c->valid = true;
        c->revision = range->revision;
        c->stats.loads++;
        (void)pthread_cond_broadcast(&c->changed);
    } else {
        clear_kvs(c);
    }
    (void)pthread_mutex_unlock(&c->lock);
    return r;
}

static int apply_event(KvCache *c, const EtcdEvent *ev)
{
    bool found;
    size_t i = find(c, ev->kv.key ? ev->kv.key : "", ev->kv.key ? ev->kv.key_len : 0, &found);
    if (ev->type == ETCD_EVENT_DELETE) {
        if (found) {
            etcd_key_value_done(&c->kvs[i]);
            memmove(&c->kvs[i], &c->kvs[i + 1], (c->n_kvs - i - 1) * sizeof(*c->kvs));
            c->n_kvs--;
        }
        return 0;
    }
    EtcdKeyValue kv;
    int r = kv_copy(&ev->kv, &kv);
    if (r < 0) {
        return r;
    }
    if (found) {
        etcd_key_value_done(&c->kvs[i]);
        c->kvs[i] = kv;
        return 0;
    }
    r = reserve(c, c->n_kvs + 1);
    if (r < 0) {
        etcd_key_value_done(&kv);
        return r;
    }
    memmove(&c->kvs[i + 1], &c->kvs[i], (c->n_kvs - i) * sizeof(*c->kvs));
    c->kvs[i] = kv;
    c->n_kvs++;
    return 0;
}

int kv_cache_apply(KvCache *c, const EtcdWatchResponse *resp)
{
    int r = 0;
    (void)pthread_mutex_lock(&c->lock);
    if (!c->valid) {
        r = -ESTALE;
    } else if (resp->canceled) {
        invalidate_locked(c);
        r = -ESTALE;
    } else {
        int64_t floor = c->revision, last = 0;
        for (size_t i = 0; i < resp->n_events; i++) {
            const EtcdEvent *ev = &resp->events[i];
            int64_t rev = ev->kv.mod_revision;
            if (rev <= floor || rev < last ||
                (ev->type != ETCD_EVENT_PUT && ev->type != ETCD_EVENT_DELETE)) {
                r = -ESTALE;
                break;
            }
            r = apply_event(c, ev);
            if (r < 0) {
                break;
            }
            last = rev;
            c->revision = rev;
            c->stats.events++;
        }
        if (r < 0) {
            invalidate_locked(c);
        } else {
            r = (int)resp->n_events;
            if (resp->n_events > 0) {
                (void)pthread_cond_broadcast(&c->changed);
            }
        }
    }
    (void)pthread_mutex_unlock(&c->lock);
    return r;
}

int kv_cache_check_next(KvCache *c, int64_t next_revision)
{
    int r = 0;
    (void)pthread_mutex_lock(&c->lock);
    if (c->valid && next_revision != c->revision + 1) {
        invalidate_locked(c);
        r = -ESTALE;
    }
    (void)pthread_mutex_unlock(&c->lock);
    return r;
}

void kv_cache_invalidate(KvCache *c)
{
    (void)pthread_mutex_lock(&c->lock);
    invalidate_locked(c);
    (void)pthread_mutex_unlock(&c->lock);
}

static int copy_out(const KvCache *c, EtcdResult *ret)
{
    EtcdResult res = { .type = ETCD_OP_RANGE, .revision = c->revision };
    res.kvs = calloc(c->n_kvs ? c->n_kvs : 1, sizeof(*res.kvs));
    if (!res.kvs) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_kvs; i++) {
        int r = kv_copy(&c->kvs[i], &res.kvs[i]);
        if (r < 0) {
            etcd_result_done(&res);
            return r;
        }
        res.n_kvs++;
    }
    res.count = (int64_t)res.n_kvs;
    *ret = res;
    return 0;
}

int kv_cache_snapshot(KvCache *c, int64_t min_revision, uint64_t deadline_usec, EtcdResult *ret)
{
    struct timespec ts = { .tv_sec = (time_t)(deadline_usec / 1000000ULL),
                           .tv_nsec = (long)(deadline_usec % 1000000ULL) * 1000L };
    bool waited = false;
    int r = 0;
    (void)pthread_mutex_lock(&c->lock);
    while (c->valid && c->revision < min_revision && deadline_usec > 0) {
        waited = true;
        if (pthread_cond_timedwait(&c->changed, &c->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (waited) {
        c->stats.waits++;
    }
    if (!c->valid) {
        r = -ESTALE;
    } else if (c->revision < min_revision) {
        r = -ETIMEDOUT;
    } else {
        r = copy_out(c, ret);
    }
    if (r >= 0) {
        c->stats.hits++;
    } else {
        c->stats.misses++;
    }
    (void)pthread_mutex_unlock(&c->lock);
    return r;
}

int64_t kv_cache_revision(KvCache *c)
{
    (void)pthread_mutex_lock(&c->lock);
    int64_t rev = c->valid ? c->revision : 0;
    (void)pthread_mutex_unlock(&c->lock);
    return rev;
}

bool kv_cache_is_valid(KvCache *c)
{
    (void)pthread_mutex_lock(&c->lock);
    bool v = c->valid;
    (void)pthread_mutex_unlock(&c->lock);
    return v;
}

void kv_cache_get_stats(KvCache *c, KvCacheStats *ret)
{
    (void)pthread_mutex_lock(&c->lock);
    *ret = c->stats;
    (void)pthread_mutex_unlock(&c->lock);
}
