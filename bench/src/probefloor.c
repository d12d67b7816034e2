/* The CPU floor of an agent that probes PostgreSQL every loop.
 *
 *     probefloor CONNINFO INTERVAL_MS
 *
 * Connects once, then for ever: sleeps INTERVAL_MS on a timerfd (as the
 * agent's loop timer), sends the agent's own probe query (pgprobe_sql.h) and
 * waits for its results with poll(), as agent/pgprobe.c does, and nothing
 * else: no decision, no logging, no etcd, no REST. bench/footprint runs it
 * beside an idle cluster and reads its CPU time the way it reads the
 * agents'; what it uses is what any agent must spend per loop on this
 * machine to keep Patroni's promise of a probe every loop_wait. Ends on
 * SIGTERM; exits 1 if the server goes away. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgprobe_sql.h"

static int wait_in(PGconn *conn)
{
    struct pollfd p = { .fd = PQsocket(conn), .events = POLLIN };

    while (poll(&p, 1, 5000) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return PQconsumeInput(conn) ? 0 : -1;
}

static int probe(PGconn *conn)
{
    PGresult *res;
    int ok = 1;

    if (!PQsendQuery(conn, PGPROBE_SNAPSHOT_SQL)) {
        return -1;
    }
    while (PQflush(conn) > 0) {
        if (wait_in(conn) < 0) {
            return -1;
        }
    }
    for (;;) {
        while (PQisBusy(conn)) {
            if (wait_in(conn) < 0) {
                return -1;
            }
        }
        res = PQgetResult(conn);
        if (!res) {
            break;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ok = 0;
        }
        PQclear(res);
    }
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: probefloor CONNINFO INTERVAL_MS\n");
        return 2;
    }
    long interval_ms = strtol(argv[2], NULL, 10);
    if (interval_ms <= 0) {
        fprintf(stderr, "probefloor: INTERVAL_MS must be a positive number\n");
        return 2;
    }
    PGconn *conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK || PQsetnonblocking(conn, 1) != 0) {
        fprintf(stderr, "probefloor: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (tfd < 0) {
        perror("probefloor: timerfd_create");
        return 1;
    }
    struct itimerspec every = {
        .it_value = { .tv_sec = interval_ms / 1000, .tv_nsec = interval_ms % 1000 * 1000000 },
    };
    every.it_interval = every.it_value;
    if (timerfd_settime(tfd, 0, &every, NULL) < 0) {
        perror("probefloor: timerfd_settime");
        return 1;
    }
    fprintf(stdout, "probing every %ld ms\n", interval_ms);
    fflush(stdout);
    for (;;) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof(expirations)) < 0 && errno != EINTR) {
            perror("probefloor: read");
            return 1;
        }
        if (probe(conn) < 0) {
            fprintf(stderr, "probefloor: probe failed: %s", PQerrorMessage(conn));
            PQfinish(conn);
            return 1;
        }
    }
}
