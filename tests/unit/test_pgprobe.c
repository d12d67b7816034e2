/* Unit tests for agent/pgprobe's pure helpers: LSN parsing and formatting,
 * number columns (lags, timestamps) and a replica's own lag in seconds,
 * postmaster.pid parsing (including malformed files), the libpq connection
 * parameters and their loggable form (never the password). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "pgprobe.h"

static void test_parse_lsn(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int r;
        uint64_t v;
    } rows[] = {
        { "0/0", 0, 0 },
        { "0/4000060", 0, 0x4000060 },
        { "16/B374D848", 0, 0x16B374D848ULL },
        { "ffffffff/ffffffff", 0, UINT64_MAX },
        { "A/b", 0, 0xA0000000BULL },
        { "", -EINVAL, 0 },
        { "/", -EINVAL, 0 },
        { "0/", -EINVAL, 0 },
        { "/0", -EINVAL, 0 },
        { "0x1/0", -EINVAL, 0 },
        { "1/2/3", -EINVAL, 0 },
        { "123456789/0", -EINVAL, 0 },
        { "0/123456789", -EINVAL, 0 },
        { " 0/1", -EINVAL, 0 },
        { "0/1 ", -EINVAL, 0 },
        { "g/1", -EINVAL, 0 },
        { "-1/0", -EINVAL, 0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t v = 42;
        int r = pgprobe_parse_lsn(rows[i].in, &v);
        if (r != rows[i].r || (r == 0 && v != rows[i].v) || (r < 0 && v != 42)) {
            fail_msg("lsn \"%s\": r=%d v=%llx", rows[i].in, r, (unsigned long long)v);
        }
    }
    assert_int_equal(pgprobe_parse_lsn(NULL, &(uint64_t){ 0 }), -EINVAL);
}

static void test_parse_double(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int r;
        double v;
    } rows[] = {
        { "0", 0, 0 },           { "12.5", 0, 12.5 },        { "0.060844", 0, 0.060844 },
        { "-0.001", 0, -0.001 }, { "1e-06", 0, 1e-06 },      { "1764180165.93", 0, 1764180165.93 },
        { "", -EINVAL, 0 },      { " 1", -EINVAL, 0 },       { "1 ", -EINVAL, 0 },
        { "1s", -EINVAL, 0 },    { "00:00:01", -EINVAL, 0 }, { "nan", -EINVAL, 0 },
        { "inf", -EINVAL, 0 },   { "1e999", -EINVAL, 0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double v = 42;
        int r = pgprobe_parse_double(rows[i].in, &v);
        if (r != rows[i].r || (r == 0 && v != rows[i].v) || (r < 0 && v != 42)) {
            fail_msg("number \"%s\": r=%d v=%g", rows[i].in, r, v);
        }
    }
    double v = 42;
    assert_int_equal(pgprobe_parse_double(NULL, &v), -ENODATA);
    assert_true(v == 42);
}

/* The parser's own path for plain decimals gives strtod's double, bit for
 * bit, on PostgreSQL's outputs and on the edges of that path (15 and 16
 * significant digits, leading zeros, signs, a lone dot). */
static void test_parse_double_is_strtod(void **state)
{
    (void)state;
    static const char *fixed[] = {
        "1764180165.93",
        "1764180165.935521",
        "1764180165.9355211",
        "-0",
        "-0.0",
        "0.000000000000001",
        "0.0000000000000001",
        "999999999999999",
        "9999999999999999",
        "123456789012345.6",
        "0.1",
        "0.3",
        "3.0000000000000004",
        "1.",
        ".5",
        "-.5",
        "00000000000000000012.5",
        "1764180165.123456789",
    };
    char buf[64];
    unsigned seed = 12345;
    for (size_t i = 0; i < 20000 + sizeof(fixed) / sizeof(fixed[0]); i++) {
        const char *in = buf;
        if (i < sizeof(fixed) / sizeof(fixed[0])) {
            in = fixed[i];
        } else {
            /* epoch seconds with 0..9 fraction digits, lags, tiny values */
            seed = seed * 1103515245u + 12345u;
            unsigned frac_digits = (seed >> 16) % 10;
            seed = seed * 1103515245u + 12345u;
            unsigned long long whole =
                (i % 3 == 0) ? 1700000000ull + seed % 100000000u : seed % 1000u;
            seed = seed * 1103515245u + 12345u;
            unsigned long long scale = 1;
            for (unsigned d = 0; d < frac_digits; d++) {
                scale *= 10;
            }
            if (frac_digits == 0) {
                snprintf(buf, sizeof(buf), "%llu", whole);
            } else {
                snprintf(buf, sizeof(buf), "%s%llu.%0*llu", (i % 7 == 0) ? "-" : "", whole,
                         (int)frac_digits, (unsigned long long)seed % scale);
            }
        }
        double v = 42;
        char *end = NULL;
        double want = strtod(in, &end);
        int r = pgprobe_parse_double(in, &v);
        if (r != 0 || *end != '\0' || memcmp(&v, &want, sizeof(v)) != 0) {
            fail_msg("number \"%s\": r=%d v=%.17g strtod=%.17g", in, r, v, want);
        }
    }
}

static void test_replica_lag_seconds(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        PgSnapshot s;
        int r;
        double v;
    } rows[] = {
        { "primary: none", { .in_recovery = false, .has_replay_timestamp = true }, -ENODATA, 0 },
        { "caught up with what it received: 0",
          { .in_recovery = true,
            .receive_lsn = 500,
            .replay_lsn = 500,
            .has_replay_timestamp = true,
            .replay_timestamp = 100,
            .clock_epoch = 190 },
          0,
          0 },
        { "caught up, nothing replayed yet: 0",
          { .in_recovery = true, .receive_lsn = 500, .replay_lsn = 500 },
          0,
          0 },
        { "behind (replay paused): now - last replayed commit",
          { .in_recovery = true,
            .receive_lsn = 900,
            .replay_lsn = 500,
            .replay_paused = true,
            .has_replay_timestamp = true,
            .replay_timestamp = 100,
            .clock_epoch = 112.5 },
          0,
          12.5 },
        { "behind, no replayed commit yet: unknown",
          { .in_recovery = true, .receive_lsn = 900, .replay_lsn = 500 },
          -ENODATA,
          0 },
        { "no walreceiver (archive recovery): from the timestamp",
          { .in_recovery = true,
            .replay_lsn = 500,
            .has_replay_timestamp = true,
            .replay_timestamp = 100,
            .clock_epoch = 103 },
          0,
          3 },
        { "clock behind the commit time: 0",
          { .in_recovery = true,
            .receive_lsn = 900,
            .replay_lsn = 500,
            .has_replay_timestamp = true,
            .replay_timestamp = 100,
            .clock_epoch = 99 },
          0,
          0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double v = 42;
        int r = pgprobe_replica_lag_seconds(&rows[i].s, &v);
        if (r != rows[i].r || (r == 0 && v != rows[i].v) || (r < 0 && v != 42)) {
            fail_msg("row \"%s\": r=%d v=%g", rows[i].name, r, v);
        }
    }
}

static void test_format_lsn(void **state)
{
    (void)state;
    char buf[PGPROBE_LSN_STR_MAX];
    assert_int_equal(pgprobe_format_lsn(0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "0/0");
    assert_int_equal(pgprobe_format_lsn(0x16B374D848ULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "16/B374D848");
    assert_int_equal(pgprobe_format_lsn(UINT64_MAX, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "FFFFFFFF/FFFFFFFF");
    assert_int_equal(pgprobe_format_lsn(UINT64_MAX, buf, sizeof(buf) - 1), -ENOBUFS);

    /* round trip */
    const uint64_t samples[] = { 1, 0x100000000ULL, 0xDEADBEEF00C0FFEEULL, 0x3000028 };
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        uint64_t back = 0;
        assert_int_equal(pgprobe_format_lsn(samples[i], buf, sizeof(buf)), 0);
        assert_int_equal(pgprobe_parse_lsn(buf, &back), 0);
        assert_true(back == samples[i]);
    }
}

static void test_parse_postmaster_pid(void **state)
{
    (void)state;
    PgPostmasterPid pm;
    const char real[] = "27016\n/tmp/verify/pg/n1\n1764180000\n25432\n/tmp/verify/pg/sock\n"
                        "127.0.0.1\n  5432001      3\nready   \n";
    assert_int_equal(pgprobe_parse_postmaster_pid(real, &pm), 0);
    assert_int_equal(pm.pid, 27016);
    assert_false(pm.standalone);
    assert_int_equal(pm.start_time, 1764180000); /* line 3 */
    /* still being written, or garbage: no start time (Patroni reads it so) */
    assert_int_equal(pgprobe_parse_postmaster_pid("27016\n/d\n", &pm), 0);
    assert_int_equal(pm.start_time, 0);
    assert_int_equal(pgprobe_parse_postmaster_pid("27016\n/d\nx17\n", &pm), 0);
    assert_int_equal(pm.start_time, 0);
    assert_int_equal(pgprobe_parse_postmaster_pid("27016\r\n/d\r\n1764180001\r\n", &pm), 0);
    assert_int_equal(pm.start_time, 1764180001);

    assert_int_equal(pgprobe_parse_postmaster_pid("-4242\n/data\n", &pm), 0);
    assert_int_equal(pm.pid, 4242);
    assert_true(pm.standalone);

    assert_int_equal(pgprobe_parse_postmaster_pid("77", &pm), 0); /* no newline yet */
    assert_int_equal(pm.pid, 77);
    assert_int_equal(pgprobe_parse_postmaster_pid("78\r\n", &pm), 0);
    assert_int_equal(pm.pid, 78);

    static const char *const bad[] = {
        "",      "\n",      "0\n",   "-0\n",          "-\n",          "abc\n", " 12\n",
        "12 \n", "12abc\n", "1.5\n", "99999999999\n", "2147483648\n", "+12\n", "\n12\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pm = (PgPostmasterPid){ .pid = 99 };
        int r = pgprobe_parse_postmaster_pid(bad[i], &pm);
        if (r != -EINVAL || pm.pid != 99) {
            fail_msg("postmaster.pid \"%s\": r=%d pid=%d", bad[i], r, (int)pm.pid);
        }
    }
    assert_int_equal(pgprobe_parse_postmaster_pid(NULL, &pm), -EINVAL);
}

static void test_read_postmaster_pid(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-pgprobe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof(dir) + 32];
    (void)snprintf(path, sizeof(path), "%s/postmaster.pid", dir);

    PgPostmasterPid pm;
    assert_int_equal(pgprobe_read_postmaster_pid(dir, &pm), -ENOENT);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%d\n%s\n", (int)getpid(), dir);
    fclose(f);
    assert_int_equal(pgprobe_read_postmaster_pid(dir, &pm), 0);
    assert_int_equal(pm.pid, getpid());
    /* this test process is alive but is not a postgres */
    assert_false(pgprobe_pid_is_postmaster(pm.pid));

    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "garbage\n");
    fclose(f);
    assert_int_equal(pgprobe_read_postmaster_pid(dir, &pm), -EINVAL);

    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(pgprobe_read_postmaster_pid(dir, &pm), -EINVAL);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);

    assert_false(pgprobe_pid_is_postmaster(0));
    assert_false(pgprobe_pid_is_postmaster(-1));
    assert_false(pgprobe_pid_is_postmaster(2147483646));
}

static const char *param(const PgConnParams *p, const char *key)
{
    for (size_t i = 0; p->keywords[i]; i++) {
        if (strcmp(p->keywords[i], key) == 0) {
            return p->values[i];
        }
    }
    return NULL;
}

static void test_conn_params(void **state)
{
    (void)state;
    PgConnParams p;
    PgProbeConfig cfg = {
        .host = "/run/postgresql",
        .port = 5432,
        .user = "postgres",
        .password = "s3cr3t-pw",
        .statement_timeout_ms = 750,
    };
    assert_int_equal(pgprobe_conn_params_init(&p, &cfg), 0);
    assert_string_equal(param(&p, "host"), "/run/postgresql");
    assert_string_equal(param(&p, "port"), "5432");
    assert_string_equal(param(&p, "user"), "postgres");
    assert_string_equal(param(&p, "password"), "s3cr3t-pw");
    assert_string_equal(param(&p, "dbname"), "postgres");
    assert_string_equal(param(&p, "application_name"), "dbha");
    assert_string_equal(param(&p, "connect_timeout"), "2");
    assert_string_equal(param(&p, "options"), "-c statement_timeout=750");

    char desc[512];
    int n = pgprobe_conn_params_describe(&p, desc, sizeof(desc));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(desc));
    assert_null(strstr(desc, "s3cr3t"));
    assert_null(strstr(desc, "password"));
    assert_non_null(strstr(desc, "host=/run/postgresql port=5432 user=postgres"));
    assert_non_null(strstr(desc, "options='-c statement_timeout=750'"));
    assert_int_equal(pgprobe_conn_params_describe(&p, desc, 10), -ENOBUFS);
    assert_string_equal(desc, "");
    pgprobe_conn_params_done(&p);

    /* no user/password: libpq's defaults; a listen address; defaults */
    cfg = (PgProbeConfig){ .host = "127.0.0.1", .port = 25432, .dbname = "app" };
    assert_int_equal(pgprobe_conn_params_init(&p, &cfg), 0);
    assert_null(param(&p, "user"));
    assert_null(param(&p, "password"));
    assert_string_equal(param(&p, "dbname"), "app");
    assert_string_equal(param(&p, "options"), "-c statement_timeout=2000");
    pgprobe_conn_params_done(&p);

    /* invalid */
    cfg = (PgProbeConfig){ .host = "", .port = 5432 };
    assert_int_equal(pgprobe_conn_params_init(&p, &cfg), -EINVAL);
    cfg = (PgProbeConfig){ .host = NULL, .port = 5432 };
    assert_int_equal(pgprobe_conn_params_init(&p, &cfg), -EINVAL);
    cfg = (PgProbeConfig){ .host = "/tmp", .port = 0 };
    assert_int_equal(pgprobe_conn_params_init(&p, &cfg), -EINVAL);
    cfg = (PgProbeConfig){ .host = "/tmp", .port = 65536 };
    assert_int_equal(pgprobe_conn_params_init(&p, &cfg), -EINVAL);
}

static void test_probe_lifecycle(void **state)
{
    (void)state;
    PgProbe *p = NULL;
    PgProbeConfig cfg = { .host = "/nonexistent-dbha-socket-dir", .port = 5432 };
    assert_int_equal(pgprobe_new(&cfg, &p), 0);
    assert_int_equal(pgprobe_connect_count(p), 0);
    assert_int_equal(pgprobe_backend_pid(p), 0);

    PgSnapshot s = { .reachable = true, .timeline = 7 };
    int r = pgprobe_snapshot(p, clock_monotonic_usec() + 500000, &s);
    assert_int_equal(r, -ECONNREFUSED);
    assert_int_equal(s.timeline, 7); /* untouched on failure */
    assert_int_equal(pgprobe_connect_count(p), 1);
    assert_true(strlen(pgprobe_last_error(p)) > 0);

    /* a deadline in the past times out without connecting */
    r = pgprobe_snapshot(p, 0, &s);
    assert_true(r == -ETIMEDOUT || r == -ECONNREFUSED);
    assert_null(pgprobe_free(p));
    assert_null(pgprobe_free(NULL));

    cfg.port = 0;
    p = NULL;
    assert_int_equal(pgprobe_new(&cfg, &p), -EINVAL);
    assert_null(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lsn),           cmocka_unit_test(test_format_lsn),
        cmocka_unit_test(test_parse_double),        cmocka_unit_test(test_parse_double_is_strtod),
        cmocka_unit_test(test_replica_lag_seconds), cmocka_unit_test(test_parse_postmaster_pid),
        cmocka_unit_test(test_read_postmaster_pid), cmocka_unit_test(test_conn_params),
        cmocka_unit_test(test_probe_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
