/* Test driver for agent/pgprobe: probes a real PostgreSQL and prints each
 * snapshot as one JSON line. With --interactive it keeps one PgProbe and
 * probes once per line read from stdin, so a test can show connection reuse
 * and reconnection across a server restart.
 *
 * pg_probe --host DIR|ADDR --port N [--user U] [--dbname D] [--timeout-ms N]
 *          [--statement-timeout-ms N] [--data-dir DIR] [--interactive] */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"
#include "pgprobe.h"

static json_t *lsn_json(uint64_t lsn)
{
    char buf[PGPROBE_LSN_STR_MAX];
    if (lsn == 0 || pgprobe_format_lsn(lsn, buf, sizeof(buf)) < 0) {
        return json_null();
    }
    return json_string(buf);
}

static json_t *snapshot_json(const PgSnapshot *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "in_recovery", json_boolean(s->in_recovery));
    json_object_set_new(o, "timeline", json_integer(s->timeline));
    json_object_set_new(o, "current_lsn", lsn_json(s->current_lsn));
    json_object_set_new(o, "receive_lsn", lsn_json(s->receive_lsn));
    json_object_set_new(o, "replay_lsn", lsn_json(s->replay_lsn));
    json_object_set_new(o, "current_lsn_int", json_integer((json_int_t)s->current_lsn));
    json_object_set_new(o, "receive_lsn_int", json_integer((json_int_t)s->receive_lsn));
    json_object_set_new(o, "replay_lsn_int", json_integer((json_int_t)s->replay_lsn));
    json_object_set_new(o, "replay_timestamp",
                        s->has_replay_timestamp ? json_real(s->replay_timestamp) : json_null());
    if (s->has_wal_receiver) {
        json_t *w = json_object();
        json_object_set_new(w, "status", json_string(s->wal_receiver_status));
        json_object_set_new(w, "received_tli", json_integer(s->received_tli));
        json_object_set_new(w, "sender_host", json_string(s->sender_host));
        json_object_set_new(w, "sender_port", json_integer(s->sender_port));
        json_object_set_new(w, "slot_name", json_string(s->slot_name));
        json_object_set_new(o, "wal_receiver", w);
    } else {
        json_object_set_new(o, "wal_receiver", json_null());
    }
    json_object_set_new(o, "server_version_num", json_integer(s->server_version_num));
    char sysid[32];
    (void)snprintf(sysid, sizeof(sysid), "%llu", (unsigned long long)s->system_identifier);
    json_object_set_new(o, "system_identifier", json_string(sysid));
    json_object_set_new(o, "postmaster_start_time", json_real(s->postmaster_start_time));
    json_t *rows = json_array();
    for (size_t i = 0; i < s->n_replication && i < PGPROBE_REPLICAS_MAX; i++) {
        const PgReplicationRow *r = &s->replication[i];
        json_t *row = json_object();
        json_object_set_new(row, "application_name", json_string(r->application_name));
        json_object_set_new(row, "state", json_string(r->state));
        json_object_set_new(row, "sync_state", json_string(r->sync_state));
        json_object_set_new(row, "sent_lsn", lsn_json(r->sent_lsn));
        json_object_set_new(row, "write_lsn", lsn_json(r->write_lsn));
        json_object_set_new(row, "flush_lsn", lsn_json(r->flush_lsn));
        json_object_set_new(row, "replay_lsn", lsn_json(r->replay_lsn));
        json_object_set_new(row, "replay_lag",
                            r->has_replay_lag ? json_real(r->replay_lag_sec) : json_null());
        json_array_append_new(rows, row);
    }
    json_object_set_new(o, "replication", rows);
    json_object_set_new(o, "n_replication", json_integer((json_int_t)s->n_replication));
    return o;
}

static int probe_once(PgProbe *p, unsigned timeout_ms, const char *data_dir)
{
    PgSnapshot *s = malloc(sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    uint64_t start = clock_monotonic_usec();
    int r = pgprobe_snapshot(p, start + (uint64_t)timeout_ms * 1000ULL, s);
    uint64_t end = clock_monotonic_usec();

    json_t *o = r >= 0 ? snapshot_json(s) : json_object();
    json_object_set_new(o, "reachable", json_boolean(r >= 0));
    json_object_set_new(o, "error", r >= 0 ? json_null() : json_string(pgprobe_last_error(p)));
    json_object_set_new(o, "errno", json_integer(r >= 0 ? 0 : -r));
    json_object_set_new(o, "timed_out", json_boolean(r == -ETIMEDOUT));
    json_object_set_new(o, "elapsed_ms", json_real((double)(end - start) / 1000.0));
    json_object_set_new(o, "connects", json_integer(pgprobe_connect_count(p)));
    json_object_set_new(o, "backend_pid", json_integer(pgprobe_backend_pid(p)));
    if (data_dir) {
        PgPostmasterPid pm;
        int k = pgprobe_read_postmaster_pid(data_dir, &pm);
        json_object_set_new(o, "postmaster_pid", k >= 0 ? json_integer(pm.pid) : json_null());
        json_object_set_new(
            o, "postmaster_alive",
            json_boolean(k >= 0 && !pm.standalone && pgprobe_pid_is_postmaster(pm.pid)));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    free(s);
    if (!line) {
        return -ENOMEM;
    }
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    return 0;
}

int main(int argc, char *argv[])
{
    static const struct option opts[] = {
        { "host", required_argument, NULL, 'h' },
        { "port", required_argument, NULL, 'p' },
        { "user", required_argument, NULL, 'U' },
        { "dbname", required_argument, NULL, 'd' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "statement-timeout-ms", required_argument, NULL, 's' },
        { "data-dir", required_argument, NULL, 'D' },
        { "interactive", no_argument, NULL, 'i' },
        { "debug", no_argument, NULL, 'v' },
        { 0 },
    };
    PgProbeConfig cfg = { 0 };
    unsigned timeout_ms = 1000;
    const char *data_dir = NULL;
    int interactive = 0, c;

    log_setup_default();
    log_set_max_level(LOG_LEVEL_INFO);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cfg.host = optarg;
            break;
        case 'p':
            cfg.port = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'U':
            cfg.user = optarg;
            break;
        case 'd':
            cfg.dbname = optarg;
            break;
        case 't':
            timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            cfg.statement_timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'D':
            data_dir = optarg;
            break;
        case 'i':
            interactive = 1;
            break;
        case 'v':
            log_set_max_level(LOG_LEVEL_DEBUG);
            break;
        default:
            fprintf(stderr, "usage: pg_probe --host DIR|ADDR --port N [options]\n");
            return 2;
        }
    }
    /* The password, if any, comes from PGPASSWORD/PGPASSFILE via libpq. */
    PgProbe *p = NULL;
    int r = pgprobe_new(&cfg, &p);
    if (r < 0) {
        fprintf(stderr, "pg_probe: invalid arguments: %s\n", strerror(-r));
        return 2;
    }
    if (!interactive) {
        r = probe_once(p, timeout_ms, data_dir);
    } else {
        char line[256];
        while (fgets(line, sizeof(line), stdin)) {
            r = probe_once(p, timeout_ms, data_dir);
            if (r < 0) {
                break;
            }
        }
    }
    pgprobe_free(p);
    return r < 0 ? 1 : 0;
}
