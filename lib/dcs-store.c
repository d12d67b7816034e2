/* The typed writes of the cluster's keys (dcs-store.h). Each builds its
 * transaction here; the callers say what they want written and under
 * which condition. */
#include "dcs-store.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

/* One txn: compares, then the success ops; nothing on failure unless
 * `failure` is given. Returns 0, -ECANCELED, or the error. */
static int txn(DcsStore *s, const EtcdCompare *cmp, size_t n_cmp, const EtcdOp *ops, size_t n_ops,
               const EtcdOp *failure, EtcdResult *ret)
{
    EtcdTxn t = { .compares = cmp,
                  .n_compares = n_cmp,
                  .success = ops,
                  .n_success = n_ops,
                  .failure = failure,
                  .n_failure = failure ? 1 : 0 };
    EtcdResult res = { 0 };
    s->error = (EtcdError){ 0 };
    int r = etcd_txn(s->etcd, &t, &res, &s->error);
    if (r >= 0 && !res.succeeded) {
        r = -ECANCELED;
    }
    if (ret) {
        *ret = res;
    } else {
        etcd_result_done(&res);
    }
    return r;
}

static EtcdCompare mod_is(const char *key, int64_t mod_revision)
{
    return (EtcdCompare){
        .key = key, .target = ETCD_COMPARE_MOD, .result = ETCD_COMPARE_EQUAL, .number = mod_revision
    };
}

static EtcdCompare value_is(const char *key, const char *value)
{
    return (EtcdCompare){ .key = key,
                          .target = ETCD_COMPARE_VALUE,
                          .result = ETCD_COMPARE_EQUAL,
                          .value = value,
                          .value_len = strlen(value) };
}

static EtcdOp put(const char *key, const char *value, int64_t lease)
{
    return (EtcdOp){
        .type = ETCD_OP_PUT, .key = key, .value = value, .value_len = strlen(value), .lease = lease
    };
}

int dcs_store_put_if(DcsStore *s, const char *key, int64_t mod_revision, const char *value)
{
    EtcdCompare cmp = mod_is(key, mod_revision);
    EtcdOp op = put(key, value, 0);
    return txn(s, &cmp, 1, &op, 1, NULL, NULL);
}

int dcs_store_delete_if(DcsStore *s, const char *key, int64_t mod_revision)
{
    EtcdCompare cmp = mod_is(key, mod_revision);
    EtcdOp op = { .type = ETCD_OP_DELETE, .key = key };
    return txn(s, &cmp, 1, &op, 1, NULL, NULL);
}

static int put_plain(DcsStore *s, const char *key, const char *value, int64_t lease)
{
    EtcdPutOptions o = { .lease = lease };
    s->error = (EtcdError){ 0 };
    return etcd_put(s->etcd, key, value, strlen(value), &o, NULL, &s->error);
}

int dcs_store_touch_member(DcsStore *s, const char *name, const char *value, int64_t lease)
{
    _cleanup_free_ char *key = NULL;
    int r = dcs_paths_member(s->paths, name, &key);
    if (r < 0) {
        return r;
    }
    return put_plain(s, key, value, lease);
}

int dcs_store_set_initialize(DcsStore *s, const char *value)
{
    return put_plain(s, s->paths->initialize, value, 0);
}

int dcs_store_set_history(DcsStore *s, const char *value)
{
    return put_plain(s, s->paths->history, value, 0);
}

int dcs_store_write_status(DcsStore *s, const char *value)
{
    return put_plain(s, s->paths->status, value, 0);
}

int dcs_store_remove_cluster(DcsStore *s, int64_t *ret_count)
{
    EtcdResult res = { 0 };
    s->error = (EtcdError){ 0 };
    int r = etcd_delete(s->etcd, s->paths->prefix, true, false, &res, &s->error);
    if (r >= 0 && ret_count) {
        *ret_count = res.count;
    }
    etcd_result_done(&res);
    return r;
}

int dcs_store_release_initialize(DcsStore *s)
{
    EtcdCompare cmp = value_is(s->paths->initialize, "");
    EtcdOp op = { .type = ETCD_OP_DELETE, .key = s->paths->initialize };
    return txn(s, &cmp, 1, &op, 1, NULL, NULL);
}

/* key = value (NULL: deleted) while the leader key names `name` and key's
 * mod_revision is still mod_revision. */
static int write_as_leader(DcsStore *s, const char *name, const char *key, const char *value,
                           int64_t mod_revision, int64_t *ret_revision)
{
    EtcdCompare cmp[] = { value_is(s->paths->leader, name), mod_is(key, mod_revision) };
    EtcdOp op = value ? put(key, value, 0) : (EtcdOp){ .type = ETCD_OP_DELETE, .key = key };
    EtcdResult res = { 0 };
    int r = txn(s, cmp, ELEMENTSOF(cmp), &op, 1, NULL, &res);
    if (r >= 0 && ret_revision) {
        *ret_revision = value ? res.revision : 0;
    }
    etcd_result_done(&res);
    return r;
}

int dcs_store_set_sync(DcsStore *s, const char *name, const char *value, int64_t mod_revision,
                       int64_t *ret_revision)
{
    return write_as_leader(s, name, s->paths->sync, value, mod_revision, ret_revision);
}

int dcs_store_set_topology(DcsStore *s, const char *name, const char *value, int64_t mod_revision)
{
    return write_as_leader(s, name, s->paths->topology, value, mod_revision, NULL);
}

int dcs_store_set_config(DcsStore *s, const char *value, int64_t mod_revision)
{
    return dcs_store_put_if(s, s->paths->config, mod_revision, value);
}

int dcs_store_set_failover(DcsStore *s, const char *leader, const char *candidate,
                           const char *scheduled_at, int64_t *ret_revision)
{
    _cleanup_free_ char *value = NULL;
    int r = dcs_failover_encode(leader, candidate, scheduled_at, &value);
    if (r < 0) {
        return r;
    }
    s->error = (EtcdError){ 0 };
    EtcdResult res = { 0 };
    r = etcd_put(s->etcd, s->paths->failover, value, strlen(value), NULL, &res, &s->error);
    if (r >= 0 && ret_revision) {
        *ret_revision = res.revision;
    }
    etcd_result_done(&res);
    return r;
}

int dcs_store_set_failover_unchanged(DcsStore *s, const char *leader, const char *candidate,
                                     const char *scheduled_at, int64_t view_revision)
{
    _cleanup_free_ char *value = NULL;
    int r = dcs_failover_encode(leader, candidate, scheduled_at, &value);
    if (r < 0) {
        return r;
    }
    /* not written since the view: its mod_revision (0 when absent) is at
     * most the view's revision */
    EtcdCompare cmp = { .key = s->paths->failover,
                        .target = ETCD_COMPARE_MOD,
                        .result = ETCD_COMPARE_LESS,
                        .number = view_revision + 1 };
    EtcdOp op = put(s->paths->failover, value, 0);
    return txn(s, &cmp, 1, &op, 1, NULL, NULL);
}

int dcs_store_clear_failover(DcsStore *s, int64_t mod_revision)
{
    if (mod_revision >= 0) {
        return dcs_store_delete_if(s, s->paths->failover, mod_revision);
    }
    s->error = (EtcdError){ 0 };
    return etcd_delete(s->etcd, s->paths->failover, false, false, NULL, &s->error);
}

int dcs_store_take_leader(DcsStore *s, const char *name, int64_t lease, char **ret_holder)
{
    return dcs_store_create(s, s->paths->leader, name, lease, ret_holder);
}

int dcs_store_create(DcsStore *s, const char *key, const char *value, int64_t lease,
                     char **ret_holder)
{
    EtcdCompare cmp = {
        .key = key, .target = ETCD_COMPARE_CREATE, .result = ETCD_COMPARE_EQUAL, .number = 0
    };
    EtcdOp op = put(key, value, lease);
    EtcdOp get = { .type = ETCD_OP_RANGE, .key = key };
    EtcdResult res = { 0 };
    int r = txn(s, &cmp, 1, &op, 1, &get, &res);
    if (r == -ECANCELED && ret_holder) {
        *ret_holder = NULL;
        if (res.n_responses == 1 && res.responses[0].n_kvs == 1) {
            *ret_holder = strdup(res.responses[0].kvs[0].value);
        }
    }
    etcd_result_done(&res);
    return r;
}

int dcs_store_renew_leader(DcsStore *s, const char *name, int64_t lease)
{
    EtcdCompare cmp = value_is(s->paths->leader, name);
    EtcdOp op = put(s->paths->leader, name, lease);
    return txn(s, &cmp, 1, &op, 1, NULL, NULL);
}

int dcs_store_move_leader(DcsStore *s, const char *name, int64_t from, int64_t to)
{
    EtcdCompare cmp[] = {
        value_is(s->paths->leader, name),
        { .key = s->paths->leader,
          .target = ETCD_COMPARE_LEASE,
          .result = ETCD_COMPARE_EQUAL,
          .number = from },
    };
    EtcdOp op = put(s->paths->leader, name, to);
    return txn(s, cmp, ELEMENTSOF(cmp), &op, 1, NULL, NULL);
}

int dcs_store_release_leader(DcsStore *s, const char *name)
{
    EtcdCompare cmp = value_is(s->paths->leader, name);
    EtcdOp op = { .type = ETCD_OP_DELETE, .key = s->paths->leader };
    return txn(s, &cmp, 1, &op, 1, NULL, NULL);
}
