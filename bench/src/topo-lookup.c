/* Topology lookups per second through libdbha: from the client's cache
 * (dbha_client_get_topology + dbha_topology_unref, no I/O; with 1 and 2
 * threads) against a fresh read of the etcd key each time
 * (dbha_client_fetch_topology: one range request and a decode). Prints one
 * JSON object on stdout.
 *
 * Usage: topo-lookup --etcd HOST:PORT --scope NAME [--seconds S] */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbha/dbha.h"

#define THREADS_MAX 2

static double now_sec(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct Worker {
    DbhaClient *client;
    double seconds;
    bool fetch;
    uint64_t ops;
    uint64_t errors;
    int64_t version_sum; /* keeps the reads from being optimized away */
} Worker;

static void *work(void *userdata)
{
    Worker *w = userdata;
    double end = now_sec() + w->seconds;
    while (now_sec() < end) {
        /* 64 lookups between clock reads: the clock costs as much as a lookup */
        for (int i = 0; i < (w->fetch ? 1 : 64); i++) {
            DbhaTopology *t = NULL;
            int r = w->fetch ? dbha_client_fetch_topology(w->client, &t, NULL)
                             : dbha_client_get_topology(w->client, &t);
            if (r < 0) {
                w->errors++;
                continue;
            }
            w->version_sum += t->version + (int64_t)t->n_replicas;
            dbha_topology_unref(t);
            w->ops++;
        }
    }
    return NULL;
}

/* Lookups per second over all threads. */
static double run(DbhaClient *c, unsigned threads, bool fetch, double seconds, uint64_t *ret_errors)
{
    Worker w[THREADS_MAX] = { 0 };
    pthread_t tid[THREADS_MAX];
    double t0 = now_sec();
    for (unsigned i = 0; i < threads; i++) {
        w[i] = (Worker){ .client = c, .seconds = seconds, .fetch = fetch };
        if (pthread_create(&tid[i], NULL, work, &w[i]) != 0) {
            (void)fprintf(stderr, "topo-lookup: pthread_create failed\n");
            exit(1);
        }
    }
    uint64_t ops = 0, errors = 0;
    for (unsigned i = 0; i < threads; i++) {
        (void)pthread_join(tid[i], NULL);
        ops += w[i].ops;
        errors += w[i].errors;
    }
    *ret_errors = errors;
    return (double)ops / (now_sec() - t0);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "etcd", required_argument, NULL, 'e' },
        { "scope", required_argument, NULL, 's' },
        { "seconds", required_argument, NULL, 'S' },
        { NULL, 0, NULL, 0 },
    };
    const char *etcd = NULL, *scope = NULL;
    double seconds = 3;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'e':
            etcd = optarg;
            break;
        case 's':
            scope = optarg;
            break;
        case 'S':
            seconds = strtod(optarg, NULL);
            break;
        default:
            return 2;
        }
    }
    if (!etcd || !scope || seconds <= 0) {
        (void)fprintf(stderr, "usage: topo-lookup --etcd HOST:PORT --scope NAME [--seconds S]\n");
        return 2;
    }
    DbhaClientOptions o = { .etcd_endpoints = &etcd, .n_etcd_endpoints = 1, .scope = scope };
    DbhaClient *c = NULL;
    DbhaError err = { 0 };
    DbhaTopology *t = NULL;
    if (dbha_client_open(&o, &c, &err) < 0 ||
        dbha_client_wait_topology(c, 0, 10 * 1000 * 1000ULL, &t, &err) < 0) {
        (void)fprintf(stderr, "topo-lookup: %s\n", err.message);
        dbha_client_free(c);
        return 1;
    }
    size_t replicas = t->n_replicas;
    int64_t version = t->version;
    dbha_topology_unref(t);
    uint64_t e1, e2, e3;
    double cache1 = run(c, 1, false, seconds, &e1);
    double cache2 = run(c, 2, false, seconds, &e2);
    double fetch1 = run(c, 1, true, seconds, &e3);
    (void)printf("{\"version\": %lld, \"replicas\": %zu, \"seconds\": %.1f, "
                 "\"cache_lookups_per_sec_1_thread\": %.0f, "
                 "\"cache_lookups_per_sec_2_threads\": %.0f, "
                 "\"etcd_fetches_per_sec\": %.0f, \"cache_vs_fetch\": %.0f, \"errors\": %llu}\n",
                 (long long)version, replicas, seconds, cache1, cache2, fetch1,
                 fetch1 > 0 ? cache1 / fetch1 : 0.0, (unsigned long long)(e1 + e2 + e3));
    dbha_client_free(c);
    return e1 + e2 + e3 == 0 ? 0 : 1;
}
