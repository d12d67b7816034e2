/* Unit tests for agent/pgctl.c's file writer: a secret file (the passfile,
 * initdb's password file) is written through a fresh name, mode 0600, and
 * renamed over its path; a symlink planted there is replaced, not followed.
 * And the postgresql.conf it writes from Patroni's parameters. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "pgctl.h"

#define PATH_BUF 512

static void read_all(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static size_t entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void test_symlink_is_replaced_not_followed(void **state)
{
    (void)state;
    char dir[] = "/tmp/dbha-test-pgctl-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[PATH_BUF], target[PATH_BUF], buf[64];
    snprintf(path, sizeof(path), "%s/pgpass", dir);
    snprintf(target, sizeof(target), "%s/target", dir);
    FILE *f = fopen(target, "we");
    assert_non_null(f);
    fputs("untouched\n", f);
    fclose(f);
    assert_int_equal(symlink(target, path), 0);

    assert_int_equal(pgctl_write_file(path, "*:*:*:u:secret\n", 15), 0);

    read_all(target, buf, sizeof(buf));
    assert_string_equal(buf, "untouched\n");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    read_all(path, buf, sizeof(buf));
    assert_string_equal(buf, "*:*:*:u:secret\n");
    assert_int_equal(entries(dir), 2); /* no temporary file left */

    unlink(path);
    unlink(target);
    rmdir(dir);
}

static void test_missing_directory_fails(void **state)
{
    (void)state;
    assert_int_equal(pgctl_write_file("/nonexistent-dbha-dir/pgpass", "x", 1), -ENOENT);
}

static void files_for(const char *tail, const ConfigStrv *dcs_hba, char *conf, char *hba,
                      char *ident, size_t size);

/* postgresql.conf for parameters given in the YAML (extra: lines under
 * postgresql.parameters); returns the file's text in buf. */
static void conf_for(const char *extra, char *buf, size_t size)
{
    char tail[1024];
    snprintf(tail, sizeof(tail), "  parameters:\n%s", extra);
    files_for(tail, NULL, buf, NULL, NULL, size);
}

/* PostgreSQL 13 and later refuse to start on wal_keep_segments: Patroni
 * writes wal_keep_size of that many 16 MB segments instead, unless
 * wal_keep_size is given. */
static void test_wal_keep_segments_translated(void **state)
{
    (void)state;
    char buf[8192];
    conf_for("    wal_keep_segments: 8\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\nwal_keep_size = '128MB'\n"));
    assert_null(strstr(buf, "wal_keep_segments ="));

    conf_for("    wal_keep_segments: 8\n    wal_keep_size: 1GB\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "\nwal_keep_size = '1GB'\n"));
    assert_null(strstr(buf, "128MB"));
    assert_null(strstr(buf, "wal_keep_segments ="));

    conf_for("    wal_keep_segments: many\n", buf, sizeof(buf));
    assert_null(strstr(buf, "wal_keep_size ="));
    assert_null(strstr(buf, "wal_keep_segments ="));
    assert_non_null(strstr(buf, "# wal_keep_segments is not a whole number"));

    conf_for("    work_mem: 8MB\n", buf, sizeof(buf));
    assert_null(strstr(buf, "wal_keep"));
}

static Config *config_with(const char *auth)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "scope: s\nname: n1\nrestapi:\n  connect_address: 127.0.0.1:8008\n"
             "etcd3:\n  hosts: 127.0.0.1:2379\n"
             "postgresql:\n  data_dir: /tmp/none\n  connect_address: 127.0.0.1:5432\n"
             "  pgpass: /tmp/pg pass\n  authentication:\n%s",
             auth);
    Config *c = NULL;
    ConfigDiags d = { 0 };
    int r = config_load_string("test.yml", yaml, NULL, &c, &d);
    if (r < 0) {
        config_diags_print(&d, stderr);
    }
    assert_int_equal(r, 0);
    config_diags_done(&d);
    return c;
}

/* Patroni passes each user's sslmode, sslrootcert, ... (its
 * _AUTH_ALLOWED_PARAMETERS) on to that user's connections, and writes
 * sslmode, gssencmode and channel_binding "prefer" into primary_conninfo
 * when none is given; values are quoted as libpq reads them. */
static void test_user_libpq_settings_reach_connections(void **state)
{
    (void)state;
    Config *c = config_with("    replication:\n      username: repl\n"
                            "      sslmode: verify-full\n"
                            "      sslrootcert: /etc/ssl/my ca's.pem\n"
                            "      channel_binding: require\n"
                            "    rewind:\n      username: rw\n      sslmode: require\n"
                            "      sslcert: /c.pem\n      sslkey: /k.pem\n");
    PgCtl p;
    assert_int_equal(pgctl_init(&p, c), 0);
    char buf[1024];
    PgUpstream u = { .host = "10.0.0.1", .port = 5433 };
    assert_int_equal(pgctl_primary_conninfo(&p, &u, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "host='10.0.0.1' port='5433' user='repl' passfile='/tmp/pg pass' "
                             "application_name='n1' sslmode='verify-full' "
                             "sslrootcert='/etc/ssl/my ca\\'s.pem' gssencmode='prefer' "
                             "channel_binding='require' connect_timeout=2");
    char small[16];
    assert_int_equal(pgctl_primary_conninfo(&p, &u, small, sizeof(small)), -ENOBUFS);

    PgArgv a;
    assert_int_equal(pgctl_argv_rewind(&p, "10.0.0.1", 5433, &a), 0);
    assert_string_equal(a.argv[a.argc - 1],
                        "--source-server=host='10.0.0.1' port='5433' user='rw' "
                        "dbname='postgres' passfile='/tmp/pg pass' sslmode='require' "
                        "sslcert='/c.pem' sslkey='/k.pem' connect_timeout=5");
    pgctl_argv_done(&a);

    assert_int_equal(pgctl_argv_basebackup(&p, "10.0.0.1", 5433, &a), 0);
    int d = -1;
    for (int i = 0; i < a.argc; i++) {
        if (strcmp(a.argv[i], "-d") == 0) {
            d = i;
        }
    }
    assert_true(d > 0 && d + 1 < a.argc);
    assert_string_equal(a.argv[d + 1], "sslmode='verify-full' sslrootcert='/etc/ssl/my ca\\'s.pem' "
                                       "channel_binding='require'");
    pgctl_argv_done(&a);
    pgctl_done(&p);
    config_free(c);

    /* none given: Patroni's defaults, and no -d */
    c = config_with("    replication:\n      username: repl\n");
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_int_equal(pgctl_primary_conninfo(&p, &u, buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, " sslmode='prefer' gssencmode='prefer' channel_binding='prefer' "));
    assert_int_equal(pgctl_argv_basebackup(&p, "10.0.0.1", 5433, &a), 0);
    for (int i = 0; i < a.argc; i++) {
        assert_string_not_equal(a.argv[i], "-d");
    }
    pgctl_argv_done(&a);
    pgctl_done(&p);
    config_free(c);
}

/* Patroni connects through the first absolute directory of
 * unix_socket_directories; a relative one ('.', in Patroni's own sample) is
 * skipped, and with none the agent connects over TCP; use_unix_socket
 * chooses when written. A value that is not a boolean is refused. */
static void test_local_address_from_socket_directories(void **state)
{
    (void)state;
    /* use_unix_socket (Patroni's): NULL absent; true the socket (Debian's
     * built-in directory when none is absolute), false TCP */
    static const struct {
        const char *dirs, *use, *want;
    } rows[] = {
        { "'/run/postgresql'", NULL, "/run/postgresql" },
        { "' /run/a , /tmp'", NULL, "/run/a" },
        { "'., /tmp/x'", NULL, "/tmp/x" },
        { "'.'", NULL, "127.0.0.1" },
        { "'..,  '", NULL, "127.0.0.1" },
        { "''", NULL, "127.0.0.1" },
        { "'/run/postgresql'", "true", "/run/postgresql" },
        { "'/run/postgresql'", "false", "127.0.0.1" },
        { "'/run/postgresql'", "off", "127.0.0.1" },
        { "'..'", "yes", "/var/run/postgresql" },
        { "''", "True", "/var/run/postgresql" },
        { "''", "false", "127.0.0.1" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml),
                 "scope: s\nname: n1\nrestapi:\n  connect_address: 127.0.0.1:8008\n"
                 "etcd3:\n  hosts: 127.0.0.1:2379\n"
                 "postgresql:\n  data_dir: /tmp/none\n  connect_address: 127.0.0.1:5432\n"
                 "  listen: 0.0.0.0:5432\n"
                 "  parameters:\n    unix_socket_directories: %s\n%s%s%s",
                 rows[i].dirs, rows[i].use ? "  use_unix_socket: " : "",
                 rows[i].use ? rows[i].use : "", rows[i].use ? "\n" : "");
        Config *c = NULL;
        ConfigDiags d = { 0 };
        assert_int_equal(config_load_string("test.yml", yaml, NULL, &c, &d), 0);
        config_diags_done(&d);
        PgCtl p;
        assert_int_equal(pgctl_init(&p, c), 0);
        if (strcmp(p.local_host, rows[i].want) != 0) {
            fail_msg("%s, use_unix_socket %s: local host \"%s\", want \"%s\"", rows[i].dirs,
                     rows[i].use ? rows[i].use : "absent", p.local_host, rows[i].want);
        }
        pgctl_done(&p);
        config_free(c);
    }
    Config *c = NULL;
    ConfigDiags d = { 0 };
    assert_int_equal(config_load_string("test.yml",
                                        "scope: s\nname: n1\nrestapi:\n  connect_address: "
                                        "127.0.0.1:8008\netcd3:\n  hosts: 127.0.0.1:2379\n"
                                        "postgresql:\n  data_dir: /tmp/none\n  connect_address: "
                                        "127.0.0.1:5432\n  use_unix_socket: sometimes\n",
                                        NULL, &c, &d),
                     -EINVAL);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.items[0].text, "test.yml:10:20:"));
    assert_non_null(strstr(d.items[0].text, "postgresql.use_unix_socket"));
    config_diags_done(&d);
}

static Config *config_dirs(const char *data, const char *tail)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "scope: s\nname: n1\nrestapi:\n  connect_address: 127.0.0.1:8008\n"
             "etcd3:\n  hosts: 127.0.0.1:2379\n"
             "postgresql:\n  data_dir: %s\n  connect_address: 127.0.0.1:5432\n%s",
             data, tail);
    Config *c = NULL;
    ConfigDiags d = { 0 };
    if (config_load_string("test.yml", yaml, NULL, &c, &d) < 0) {
        config_diags_print(&d, stderr);
        fail();
    }
    config_diags_done(&d);
    return c;
}

/* postgresql.conf, pg_hba.conf and pg_ident.conf (each "" when not written;
 * NULL: not wanted) for a YAML tail after the minimal config (indented lines
 * are more postgresql keys, then top-level ones) and a cluster config key's
 * pg_hba lines (NULL: none). */
static void files_for(const char *tail, const ConfigStrv *dcs_hba, char *conf, char *hba,
                      char *ident, size_t size)
{
    char dir[] = "/tmp/dbha-test-pgfiles-XXXXXX";
    assert_non_null(mkdtemp(dir));
    Config *c = config_dirs(dir, tail);
    PgCtl p;
    assert_int_equal(pgctl_init(&p, c), 0);
    p.dcs_pg_hba = dcs_hba;
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    char path[PATH_BUF];
    const char *names[] = { "postgresql.conf", "pg_hba.conf", "pg_ident.conf" };
    char *bufs[] = { conf, hba, ident };
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (bufs[i]) {
            bufs[i][0] = '\0';
            if (access(path, F_OK) == 0) {
                read_all(path, bufs[i], size);
            }
        }
        unlink(path);
    }
    rmdir(dir);
    pgctl_done(&p);
    config_free(c);
}

static void hba_for(const char *tail, const ConfigStrv *dcs_hba, char *hba, char *ident,
                    size_t size)
{
    files_for(tail, dcs_hba, NULL, hba, ident, size);
}

/* Patroni's order for pg_hba: the node's postgresql.pg_hba, then the
 * cluster's (the config key's, else bootstrap.dcs's); none leaves initdb's
 * (or the clone's) file. pg_ident the same way. */
static void test_pg_hba_and_pg_ident_order(void **state)
{
    (void)state;
    char hba[4096], ident[4096];
    const char *dcs =
        "bootstrap:\n  dcs:\n    postgresql:\n      pg_hba: [host all dcs 0/0 trust]\n"
        "      pg_ident: [m dcs dcs]\n  pg_hba: [host all boot 0/0 trust]\n";
    hba_for(dcs, NULL, hba, ident, sizeof(hba));
    assert_non_null(strstr(hba, "the cluster's postgresql.pg_hba.\nhost all dcs 0/0 trust\n"));
    assert_non_null(strstr(ident, "\nm dcs dcs\n"));

    /* the config key's lines replace bootstrap.dcs's */
    char *key_lines[] = { "host all key 0/0 trust" };
    ConfigStrv key = { .items = key_lines, .n = 1 };
    hba_for(dcs, &key, hba, ident, sizeof(hba));
    assert_non_null(strstr(hba, "\nhost all key 0/0 trust\n"));
    assert_null(strstr(hba, "dcs"));

    /* bootstrap.pg_hba is never written as the file (appended once at the
     * bootstrap: test_bootstrap_pg_hba_appended) */
    hba_for("bootstrap:\n  pg_hba: [host all boot 0/0 trust]\n", NULL, hba, ident, sizeof(hba));
    assert_string_equal(hba, "");
    assert_string_equal(ident, "");

    /* the node's own lines win over all */
    char tail[512];
    snprintf(tail, sizeof(tail),
             "  pg_hba: [host all node 0/0 trust]\n  pg_ident: [m node node]\n%s", dcs);
    hba_for(tail, &key, hba, ident, sizeof(hba));
    assert_non_null(strstr(hba, "from postgresql.pg_hba.\nhost all node 0/0 trust\n"));
    assert_null(strstr(hba, "key"));
    assert_non_null(strstr(ident, "\nm node node\n"));
    assert_null(strstr(ident, "dcs"));

    /* nothing: initdb's files stay (none written) */
    hba_for("", NULL, hba, ident, sizeof(hba));
    assert_string_equal(hba, "");
    assert_string_equal(ident, "");
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_BUF * 3];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Patroni 3.0.2's bootstrap.pg_hba: appended to initdb's pg_hba.conf after
 * the bootstrap, whose own lines stay (the socket's among them); nothing
 * when a pg_hba is configured, which replaces the file. */
static void test_bootstrap_pg_hba_appended(void **state)
{
    (void)state;
    const char *tails[] = {
        "bootstrap:\n  pg_hba: [host all boot 0/0 trust, host all b2 0/0 md5]\n",
        "  pg_hba: [host all node 0/0 trust]\nbootstrap:\n  pg_hba: [host all boot 0/0 trust]\n",
        "bootstrap:\n  dcs:\n    postgresql:\n      pg_hba: [host all dcs 0/0 trust]\n"
        "  pg_hba: [host all boot 0/0 trust]\n",
    };
    const char *want[] = {
        "local all all trust\n\n# Appended by dbagent from bootstrap.pg_hba.\n"
        "host all boot 0/0 trust\nhost all b2 0/0 md5\n",
        "local all all trust\n",
        "local all all trust\n",
    };
    for (size_t i = 0; i < ELEMENTSOF(tails); i++) {
        char dir[] = "/tmp/dbha-test-boothba-XXXXXX";
        assert_non_null(mkdtemp(dir));
        Config *c = config_dirs(dir, tails[i]);
        PgCtl p;
        assert_int_equal(pgctl_init(&p, c), 0);
        put_file(dir, "pg_hba.conf", "local all all trust\n"); /* initdb's */
        assert_int_equal(pgctl_append_bootstrap_hba(&p), 0);
        char buf[1024];
        char path[PATH_BUF * 3];
        snprintf(path, sizeof(path), "%s/pg_hba.conf", dir);
        read_all(path, buf, sizeof(buf));
        assert_string_equal(buf, want[i]);
        unlink(path);
        rmdir(dir);
        pgctl_done(&p);
        config_free(c);
    }
}

static bool has_file(const char *dir, const char *name, char *buf, size_t size)
{
    char path[PATH_BUF * 3];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (access(path, F_OK) != 0) {
        return false;
    }
    read_all(path, buf, size);
    return true;
}

static void remove_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    char path[PATH_BUF * 3];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Patroni's config_dir: postgresql.conf, its base, pg_hba.conf and
 * pg_ident.conf live there and the server is started with --config-file;
 * a new config_dir is seeded from the data directory's files (initdb's),
 * a Debian one keeps its postgresql.conf as the base; custom_conf is
 * included instead of the base; config_base_name names the files. */
static void test_config_dir(void **state)
{
    (void)state;
    char data[] = "/tmp/dbha-test-cfgdata-XXXXXX";
    char top[] = "/tmp/dbha-test-cfg'dir-XXXXXX";
    assert_non_null(mkdtemp(data));
    assert_non_null(mkdtemp(top));
    char conf_dir[PATH_BUF], tail[PATH_BUF * 2], buf[8192], want[PATH_BUF * 2];
    snprintf(conf_dir, sizeof(conf_dir), "%s/etc", top);
    put_file(data, "postgresql.conf", "shared_buffers = 77MB # initdb\n");
    put_file(data, "pg_hba.conf", "local all all trust # initdb\n");
    put_file(data, "pg_ident.conf", "# initdb ident\n");

    /* a config_dir that does not exist yet: created and seeded */
    snprintf(tail, sizeof(tail), "  config_dir: %s\n", conf_dir);
    Config *c = config_dirs(data, tail);
    PgCtl p;
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_true(p.own_conf_file);
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    assert_true(has_file(conf_dir, "postgresql.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "include_if_exists 'postgresql.base.conf'\n"));
    snprintf(want, sizeof(want), "\ndata_directory = '%s'\n", data);
    assert_non_null(strstr(buf, want));
    /* the ' in the directory's name is quoted as pgconf quotes it */
    assert_non_null(strstr(buf, "\nhba_file = '/tmp/dbha-test-cfg''dir-"));
    assert_non_null(strstr(buf, "/etc/pg_hba.conf'\nident_file = '/tmp/dbha-test-cfg''dir-"));
    assert_true(strstr(buf, "data_directory") > strstr(buf, "include_if_exists"));
    assert_true(has_file(conf_dir, "postgresql.base.conf", buf, sizeof(buf)));
    assert_string_equal(buf, "shared_buffers = 77MB # initdb\n");
    assert_true(has_file(conf_dir, "pg_hba.conf", buf, sizeof(buf)));
    assert_string_equal(buf, "local all all trust # initdb\n");
    assert_true(has_file(conf_dir, "pg_ident.conf", buf, sizeof(buf)));
    /* the data directory's own file is left as it was */
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_string_equal(buf, "shared_buffers = 77MB # initdb\n");

    /* written again: the base is kept, not replaced by the managed file */
    put_file(conf_dir, "postgresql.base.conf", "work_mem = 9MB # edited\n");
    assert_int_equal(pgctl_write_config(&p, true, NULL), 0);
    assert_true(has_file(conf_dir, "postgresql.base.conf", buf, sizeof(buf)));
    assert_string_equal(buf, "work_mem = 9MB # edited\n");

    /* pg_ctl start gets the file, quoted for the shell pg_ctl runs */
    PgArgv a;
    assert_int_equal(pgctl_argv_start(&p, 60, &a), 0);
    assert_true(a.argc >= 2);
    assert_string_equal(a.argv[a.argc - 2], "-o");
    const char *q = strchr(top, '\'');
    snprintf(want, sizeof(want), "--config-file='%.*s'\\''%s/etc/postgresql.conf'", (int)(q - top),
             top, q + 1);
    assert_string_equal(a.argv[a.argc - 1], want);
    pgctl_argv_done(&a);
    assert_int_equal(pgctl_argv_stop(&p, "fast", 60, &a), 0);
    assert_string_not_equal(a.argv[a.argc - 2], "-o");
    pgctl_argv_done(&a);
    pgctl_done(&p);
    config_free(c);
    remove_files(conf_dir);

    /* Debian's layout: its postgresql.conf becomes the base, once; the
     * data directory's files are not copied over its pg_hba.conf */
    assert_int_equal(mkdir(conf_dir, 0700), 0);
    put_file(conf_dir, "postgresql.conf",
             "data_directory = '/var/lib/x'\ninclude_dir = 'conf.d'\n");
    put_file(conf_dir, "pg_hba.conf", "local all all peer # debian\n");
    c = config_dirs(data, tail);
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    assert_true(has_file(conf_dir, "postgresql.base.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "include_dir = 'conf.d'"));
    assert_true(has_file(conf_dir, "pg_hba.conf", buf, sizeof(buf)));
    assert_string_equal(buf, "local all all peer # debian\n");
    assert_true(has_file(conf_dir, "postgresql.conf", buf, sizeof(buf)));
    snprintf(want, sizeof(want), "\ndata_directory = '%s'\n", data);
    assert_non_null(strstr(buf, want));
    pgctl_done(&p);
    config_free(c);
    remove_files(conf_dir);

    /* a clone of a leader whose config was in its data directory: the
     * data directory's postgresql.conf is the agent's own, its base is
     * beside it; the seed is the base, never a file including itself */
    put_file(data, "postgresql.conf",
             PGCTL_CONF_HEADER "; x\ninclude_if_exists 'postgresql.base.conf'\n");
    put_file(data, "postgresql.base.conf", "max_connections = 33\n");
    c = config_dirs(data, tail);
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    assert_true(has_file(conf_dir, "postgresql.base.conf", buf, sizeof(buf)));
    assert_string_equal(buf, "max_connections = 33\n");
    pgctl_done(&p);
    config_free(c);
    remove_files(conf_dir);
    /* a Patroni-written one without a base: no seed at all */
    unlink(strcat(strcpy(want, data), "/postgresql.base.conf"));
    put_file(data, "postgresql.conf",
             "# Do not edit this file manually!\ninclude 'postgresql.base.conf'\n");
    c = config_dirs(data, tail);
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    assert_false(has_file(conf_dir, "postgresql.base.conf", buf, sizeof(buf)));
    pgctl_done(&p);
    config_free(c);
    remove_files(conf_dir);

    /* custom_conf instead of the base, and config_base_name */
    snprintf(tail, sizeof(tail),
             "  config_dir: %s\n  custom_conf: my'custom.conf\n  config_base_name: pg\n", conf_dir);
    c = config_dirs(data, tail);
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    assert_true(has_file(conf_dir, "pg.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "\ninclude 'my''custom.conf'\n"));
    assert_null(strstr(buf, "base.conf"));
    assert_false(has_file(conf_dir, "pg.base.conf", buf, sizeof(buf)));
    assert_false(has_file(conf_dir, "postgresql.conf", buf, sizeof(buf)));
    pgctl_done(&p);
    config_free(c);
    remove_files(conf_dir);

    /* config_base_name alone, in the data directory: its own file too */
    c = config_dirs(data, "  config_base_name: pg\n");
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_true(p.own_conf_file);
    pgctl_done(&p);
    config_free(c);
    /* config_dir naming the data directory (another spelling): not own */
    snprintf(tail, sizeof(tail), "  config_dir: %s/\n", data);
    c = config_dirs(data, tail);
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_false(p.own_conf_file);
    pgctl_done(&p);
    config_free(c);

    remove_files(top);
    remove_files(data);
}

/* Patroni's recovery_conf reaches a replica's postgresql.conf, never a
 * primary's: the node's own, else the cluster's (the config key's, else
 * bootstrap.dcs's); names lower-cased, as PostgreSQL reads them. */
static void test_recovery_conf(void **state)
{
    (void)state;
    char data[] = "/tmp/dbha-test-recovery-XXXXXX";
    assert_non_null(mkdtemp(data));
    char buf[8192];
    Config *c = config_dirs(data, "  recovery_conf:\n    Restore_Command: cp /arch/%f '%p'\n"
                                  "    recovery_min_apply_delay: 0\n"
                                  "bootstrap:\n  dcs:\n    postgresql:\n      recovery_conf:\n"
                                  "        archive_cleanup_command: dcs\n");
    PgCtl p;
    assert_int_equal(pgctl_init(&p, c), 0);
    PgUpstream u = { .host = "127.0.0.1", .port = 5432 };
    assert_int_equal(pgctl_write_config(&p, true, &u), 0);
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "\n# postgresql.recovery_conf\n"
                                "restore_command = 'cp /arch/%f ''%p'''\n"
                                "recovery_min_apply_delay = '0'\n"));
    assert_null(strstr(buf, "archive_cleanup_command"));
    assert_int_equal(pgctl_write_config(&p, false, NULL), 0);
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_null(strstr(buf, "restore_command"));
    pgctl_done(&p);
    config_free(c);

    /* no node setting: the cluster's, bootstrap.dcs's before the key */
    c = config_dirs(data, "bootstrap:\n  dcs:\n    postgresql:\n      recovery_conf:\n"
                          "        archive_cleanup_command: dcs\n");
    assert_int_equal(pgctl_init(&p, c), 0);
    assert_int_equal(pgctl_write_config(&p, true, &u), 0);
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "\n# the cluster's postgresql.recovery_conf\n"
                                "archive_cleanup_command = 'dcs'\n"));
    ConfigKv item = { .key = "restore_command", .value = "key" };
    ConfigMap key = { .items = &item, .n = 1 };
    p.dcs_recovery_conf = &key;
    assert_int_equal(pgctl_write_config(&p, true, &u), 0);
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "\nrestore_command = 'key'\n"));
    assert_null(strstr(buf, "archive_cleanup_command"));
    pgctl_done(&p);
    config_free(c);
    remove_files(data);
}

/* A standby cluster's settings (lib/standby.h) win over recovery_conf's, in
 * a section of their own; the standby leader's conninfo asks for the
 * read-write host of the list when it streams through a slot. */
static void test_standby_cluster_settings(void **state)
{
    (void)state;
    char data[] = "/tmp/dbha-test-standby-XXXXXX";
    assert_non_null(mkdtemp(data));
    char buf[8192];
    Config *c = config_dirs(data, "  recovery_conf:\n    restore_command: node\n"
                                  "    recovery_min_apply_delay: 1s\n");
    PgCtl p;
    assert_int_equal(pgctl_init(&p, c), 0);
    PgUpstream u = { .host = "127.0.0.1",
                     .port = 6432,
                     .slot_name = "dr",
                     .read_write = true,
                     .restore_command = "cp /remote/%f %p",
                     .recovery_min_apply_delay = "5min" };
    assert_int_equal(pgctl_write_config(&p, true, &u), 0);
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_non_null(strstr(buf, " connect_timeout=2 target_session_attrs=read-write'\n"
                                "primary_slot_name = 'dr'\n"));
    assert_null(strstr(buf, "'node'"));
    assert_null(strstr(buf, "'1s'"));
    assert_non_null(strstr(buf, "\n# standby_cluster\n"
                                "restore_command = 'cp /remote/%f %p'\n"
                                "recovery_min_apply_delay = '5min'\n"));
    /* a member following the standby leader: no slot there of the remote,
     * no delay, the restore command still the section's */
    u = (PgUpstream){ .host = "127.0.0.1", .port = 5432, .restore_command = "cp /remote/%f %p" };
    assert_int_equal(pgctl_write_config(&p, true, &u), 0);
    assert_true(has_file(data, "postgresql.conf", buf, sizeof(buf)));
    assert_null(strstr(buf, "target_session_attrs"));
    assert_non_null(strstr(buf, "recovery_min_apply_delay = '1s'\n"));
    assert_non_null(strstr(buf, "\n# standby_cluster\nrestore_command = 'cp /remote/%f %p'\n"));
    pgctl_done(&p);
    config_free(c);
    remove_files(data);
}

/* Relative paths are the working directory's (Patroni's sample has
 * data_dir: data/postgresql0 and pgpass relative to where it runs): the
 * jobs run from /, so the agent makes them absolute. */
static void test_relative_paths_are_the_working_directorys(void **state)
{
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    Config *c = config_dirs("data/postgresql0/", "  pgpass: pgpass0\n  bin_dir: bin\n");
    PgCtl p;
    assert_int_equal(pgctl_init(&p, c), 0);
    char want[8192];
    snprintf(want, sizeof(want), "%s/data/postgresql0", cwd);
    assert_string_equal(p.data_dir, want);
    snprintf(want, sizeof(want), "%s/data/postgresql0.pwfile", cwd);
    assert_string_equal(p.pwfile, want);
    snprintf(want, sizeof(want), "%s/pgpass0", cwd);
    assert_string_equal(p.pgpass, want);
    snprintf(want, sizeof(want), "%s/bin", cwd);
    assert_string_equal(p.bin_dir, want);
    pgctl_done(&p);
    config_free(c);
}

/* The directories above a data directory are made (Debian's
 * /var/lib/postgresql/15 before the first cluster), the data directory
 * itself is not; existing ones are fine; a file in the way is an error. */
static void test_make_parents(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-pgctl-parents-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512], probe[512];
    (void)snprintf(path, sizeof(path), "%s/var/lib/15/main", dir);
    assert_int_equal(pgctl_make_parents(path), 0);
    struct stat st;
    (void)snprintf(probe, sizeof(probe), "%s/var/lib/15", dir);
    assert_int_equal(stat(probe, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(pgctl_make_parents(path), 0); /* again: nothing to do */
    (void)snprintf(probe, sizeof(probe), "%s/file", dir);
    FILE *f = fopen(probe, "w");
    assert_non_null(f);
    fclose(f);
    (void)snprintf(path, sizeof(path), "%s/file/sub/main", dir);
    assert_true(pgctl_make_parents(path) < 0);
    assert_int_equal(pgctl_make_parents("main"), 0); /* relative, no parent */
    assert_int_equal(unlink(probe), 0);
    const char *rm[] = { "var/lib/15", "var/lib", "var" };
    for (size_t i = 0; i < 3; i++) {
        (void)snprintf(probe, sizeof(probe), "%s/%s", dir, rm[i]);
        assert_int_equal(rmdir(probe), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_parents),
        cmocka_unit_test(test_symlink_is_replaced_not_followed),
        cmocka_unit_test(test_missing_directory_fails),
        cmocka_unit_test(test_wal_keep_segments_translated),
        cmocka_unit_test(test_standby_cluster_settings),
        cmocka_unit_test(test_relative_paths_are_the_working_directorys),
        cmocka_unit_test(test_user_libpq_settings_reach_connections),
        cmocka_unit_test(test_local_address_from_socket_directories),
        cmocka_unit_test(test_pg_hba_and_pg_ident_order),
        cmocka_unit_test(test_bootstrap_pg_hba_appended),
        cmocka_unit_test(test_config_dir),
        cmocka_unit_test(test_recovery_conf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
