/* Local PostgreSQL control: paths, data directory inspection, the
 * configuration files the agent owns, and server-tool argument vectors.
 * The agent rewrites postgresql.conf on every start (and after a clone or a
 * rewind, which bring another member's copy), so the file in the data
 * directory is always this node's. */
#include "pgctl.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config-schema.h"
#include "log.h"
#include "pgconf.h"

/* pg_control (src/include/catalog/pg_control.h): the layout version of
 * PostgreSQL 13-16 and DBState's DB_SHUTDOWNED. */
#define PGCTL_CONTROL_VERSION 1300
#define PGCTL_DB_SHUTDOWNED   1

static const char *const data_state_table[_PGDATA_STATE_MAX] = {
    [PGDATA_EMPTY] = "empty",
    [PGDATA_VALID] = "valid",
    [PGDATA_INVALID] = "invalid",
};

const char *pgctl_data_state_to_string(PgDataState s)
{
    if (s < 0 || s >= _PGDATA_STATE_MAX) {
        return NULL;
    }
    return data_state_table[s];
}

static char *path_join(const char *a, const char *b)
{
    char *r = NULL;
    if (asprintf(&r, "%s%s", a, b) < 0) {
        return NULL;
    }
    return r;
}

static char *dir_join(const char *dir, const char *name)
{
    char *r = NULL;
    if (asprintf(&r, "%s/%s", dir, name) < 0) {
        return NULL;
    }
    return r;
}

/* Python's os.path.abspath for what it is used on here: a relative path
 * joined to the working directory, trailing slashes dropped. */
static char *absolute_dir(const char *path)
{
    char *r;
    if (path[0] == '/') {
        r = strdup(path);
    } else {
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd) {
            return NULL;
        }
        r = strcmp(path, ".") == 0 ? strdup(cwd) : dir_join(cwd, path);
    }
    if (!r) {
        return NULL;
    }
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/') {
        r[--n] = '\0';
    }
    return r;
}

/* config_dir and the names of the files the agent writes there, as
 * Patroni's ConfigHandler derives them. */
static int init_config_files(PgCtl *p, const Config *c)
{
    const char *base =
        c->postgresql.config_base_name ? c->postgresql.config_base_name : "postgresql";
    _cleanup_free_ char *data_abs = absolute_dir(p->data_dir);
    _cleanup_free_ char *conf_name = path_join(base, ".conf");
    p->config_dir = absolute_dir(c->postgresql.config_dir ? c->postgresql.config_dir : p->data_dir);
    p->base_conf_name = path_join(base, ".base.conf");
    if (!data_abs || !conf_name || !p->config_dir || !p->base_conf_name) {
        return -ENOMEM;
    }
    p->conf_file = dir_join(p->config_dir, conf_name);
    p->hba_file = dir_join(p->config_dir, "pg_hba.conf");
    p->ident_file = dir_join(p->config_dir, "pg_ident.conf");
    if (!p->conf_file || !p->hba_file || !p->ident_file) {
        return -ENOMEM;
    }
    p->own_conf_file = strcmp(p->config_dir, data_abs) != 0 || strcmp(base, "postgresql") != 0;
    return 0;
}

/* "127.0.0.1,127.0.2.1:5432" -> "127.0.0.1,127.0.2.1" */
static char *listen_hosts(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon) {
        return strdup(listen);
    }
    return strndup(listen, (size_t)(colon - listen));
}

int pgctl_make_parents(const char *path)
{
    _cleanup_free_ char *dir = strdup(path);
    if (!dir) {
        return -ENOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        return 0;
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                return -errno;
            }
            if (end) {
                return 0;
            }
            *p = '/';
        }
    }
}

int pgctl_init(PgCtl *ret, const Config *c)
{
    PgCtl p = { .config = c };
    int r = -ENOMEM;
    const char *sockets, *listen;
    bool use_socket;

    p.port = config_postgresql_port(c);
    if (p.port < 0) {
        return -EINVAL;
    }
    /* Relative paths are the agent's working directory's, as Patroni's
     * (which never changes it) are: made absolute here, since the jobs run
     * from / and the server from its data directory (Patroni's sample
     * config has data_dir: data/postgresql0). A trailing slash goes: it
     * would put the clone inside the data dir. */
    p.bin_dir = absolute_dir(c->postgresql.bin_dir ? c->postgresql.bin_dir : PGCTL_DEFAULT_BIN_DIR);
    p.data_dir = absolute_dir(c->postgresql.data_dir);
    if (!p.bin_dir || !p.data_dir) {
        goto fail;
    }
    p.clone_dir = path_join(p.data_dir, PGCTL_CLONE_SUFFIX);
    p.log_file = path_join(p.data_dir, ".log");
    p.pwfile = path_join(p.data_dir, ".pwfile");
    p.pgpass = c->postgresql.pgpass ? absolute_dir(c->postgresql.pgpass)
                                    : path_join(p.data_dir, ".pgpass");
    if (!p.clone_dir || !p.log_file || !p.pgpass || !p.pwfile) {
        goto fail;
    }
    r = init_config_files(&p, c);
    if (r < 0) {
        goto fail;
    }
    r = -ENOMEM;
    sockets = config_map_get(&c->postgresql.parameters, "unix_socket_directories");
    if (!sockets) {
        sockets = config_map_get(&c->bootstrap.dcs.parameters, "unix_socket_directories");
    }
    /* Patroni's _get_unix_local_address(): the first absolute directory of
     * the list (spaces around an entry trimmed); a relative one ('.', as in
     * Patroni's sample) is where the server also puts a socket, but not a
     * place to connect to: without an absolute one, TCP */
    for (const char *s = sockets; s && *s;) {
        s += strspn(s, " \t");
        size_t len = strcspn(s, ",");
        size_t end = len;
        while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\t')) {
            end--;
        }
        if (end > 0 && s[0] == '/') {
            p.socket_dir = strndup(s, end);
            if (!p.socket_dir) {
                goto fail;
            }
            break;
        }
        s += len + (s[len] == ',');
    }
    listen = c->postgresql.listen ? c->postgresql.listen : c->postgresql.connect_address;
    p.listen_addresses = listen_hosts(listen);
    if (!p.listen_addresses) {
        goto fail;
    }
    /* postgresql.use_unix_socket as Patroni reads it: true, the socket (the
     * first absolute directory, else the one PostgreSQL and libpq are built
     * with); false, TCP. Absent (Patroni: false), the socket when one is
     * configured: dbha's behaviour before it read the key. */
    use_socket = p.socket_dir != NULL;
    if (c->postgresql.use_unix_socket) {
        (void)config_parse_bool(c->postgresql.use_unix_socket, &use_socket);
    }
    if (use_socket) {
        p.local_host = strdup(p.socket_dir ? p.socket_dir : PGCTL_DEFAULT_SOCKET_DIR);
    } else {
        /* the first listen address; a wildcard means the loopback */
        size_t len = strcspn(p.listen_addresses, ",");
        _cleanup_free_ char *first = strndup(p.listen_addresses, len);
        if (!first) {
            goto fail;
        }
        bool wildcard = strcmp(first, "*") == 0 || strcmp(first, "0.0.0.0") == 0 ||
                        strcmp(first, "::") == 0 || !*first;
        p.local_host = strdup(wildcard ? "127.0.0.1" : first);
    }
    if (!p.local_host) {
        goto fail;
    }
    *ret = p;
    return 0;
fail:
    pgctl_done(&p);
    return r;
}

void pgctl_done(PgCtl *p)
{
    free(p->bin_dir);
    free(p->data_dir);
    free(p->clone_dir);
    free(p->log_file);
    free(p->pgpass);
    free(p->pwfile);
    free(p->config_dir);
    free(p->conf_file);
    free(p->base_conf_name);
    free(p->hba_file);
    free(p->ident_file);
    free(p->socket_dir);
    free(p->local_host);
    free(p->listen_addresses);
    *p = (PgCtl){ 0 };
}

PgDataState pgctl_data_state(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? PGDATA_EMPTY : PGDATA_INVALID;
    }
    bool any = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            any = true;
            break;
        }
    }
    closedir(d);
    if (!any) {
        return PGDATA_EMPTY;
    }
    char path[PGCTL_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof(path), "%s/PG_VERSION", dir);
    if (stat(path, &st) < 0) {
        return PGDATA_INVALID;
    }
    snprintf(path, sizeof(path), "%s/global/pg_control", dir);
    if (stat(path, &st) < 0) {
        return PGDATA_INVALID;
    }
    return PGDATA_VALID;
}

/* The fields that lead ControlFileData in every version since 9.6, in the
 * server's byte order (this host's). */
typedef struct ControlHead {
    uint64_t system_identifier;
    uint32_t pg_control_version;
    uint32_t catalog_version_no;
    int32_t state; /* enum DBState */
} ControlHead;

/* Reads the first `size` bytes of <dir>/global/pg_control. Returns 0,
 * -errno, or -EINVAL for a short file. */
static int read_control_head(const char *dir, ControlHead *ret, size_t size)
{
    char path[PGCTL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/global/pg_control", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = read(fd, ret, size);
    int e = errno;
    close(fd);
    if (n < 0) {
        return -e;
    }
    return n == (ssize_t)size ? 0 : -EINVAL;
}

int pgctl_read_system_identifier(const char *dir, uint64_t *ret)
{
    ControlHead head;
    int r = read_control_head(dir, &head, sizeof(head.system_identifier));
    if (r < 0) {
        return r;
    }
    *ret = head.system_identifier;
    return 0;
}

int pgctl_control_shut_down(const char *dir)
{
    ControlHead head;
    int r = read_control_head(dir, &head, sizeof(head));
    if (r < 0) {
        return r;
    }
    if (head.pg_control_version != PGCTL_CONTROL_VERSION) {
        return -EPROTO;
    }
    return head.state == PGCTL_DB_SHUTDOWNED;
}

bool pgctl_is_standby(const PgCtl *p)
{
    char path[PGCTL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/standby.signal", p->data_dir);
    return access(path, F_OK) == 0;
}

bool pgctl_has_promote_signal(const PgCtl *p)
{
    char path[PGCTL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/promote", p->data_dir);
    return access(path, F_OK) == 0;
}

/* " key='value'" in libpq's conninfo syntax: ' and \ escaped with \. */
static void put_conn(FILE *f, const char *key, const char *value)
{
    fprintf(f, " %s='", key);
    for (const char *c = value; *c; c++) {
        if (*c == '\'' || *c == '\\') {
            fputc('\\', f);
        }
        fputc(*c, f);
    }
    fputc('\'', f);
}

/* The user's libpq settings (Patroni's authentication.<user>.ssl*, ...);
 * with defaults, those Patroni writes into primary_conninfo when the user
 * sets none: sslmode, gssencmode and channel_binding "prefer". */
static void put_user_libpq(FILE *f, const ConfigUser *u, bool defaults)
{
#define X(k)                                                                                       \
    if (u->k) {                                                                                    \
        put_conn(f, #k, u->k);                                                                     \
    } else if (defaults && (strcmp(#k, "sslmode") == 0 || strcmp(#k, "gssencmode") == 0 ||         \
                            strcmp(#k, "channel_binding") == 0)) {                                 \
        put_conn(f, #k, "prefer");                                                                 \
    }
    CONFIG_USER_LIBPQ_KEYS
#undef X
}

/* A conninfo of the given parts, or NULL (-ENOMEM). */
static char *conninfo(const char *host, int port, const ConfigUser *u, const char *default_user,
                      const char *dbname, const char *passfile, const char *application_name,
                      bool defaults, int connect_timeout, const char *krbsrvname)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return NULL;
    }
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    put_conn(f, "host", host);
    put_conn(f, "port", portbuf);
    put_conn(f, "user", u->username ? u->username : default_user);
    if (dbname) {
        put_conn(f, "dbname", dbname);
    }
    put_conn(f, "passfile", passfile);
    if (application_name) {
        put_conn(f, "application_name", application_name);
    }
    put_user_libpq(f, u, defaults);
    fprintf(f, " connect_timeout=%d", connect_timeout);
    if (krbsrvname) {
        put_conn(f, "krbsrvname", krbsrvname);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    memmove(buf, buf + 1, strlen(buf)); /* the leading space */
    return buf;
}

char *pgctl_local_conninfo(const PgCtl *p)
{
    const Config *c = p->config;
    return conninfo(p->local_host, p->port, &c->postgresql.superuser, "postgres",
                    c->postgresql.database, p->pgpass, NULL, false, 3, NULL);
}

char *pgctl_remote_conninfo(const PgCtl *p, const char *host, int port, int connect_timeout)
{
    const Config *c = p->config;
    const ConfigUser *u =
        c->postgresql.rewind.username ? &c->postgresql.rewind : &c->postgresql.superuser;
    return conninfo(host, port, u, "postgres", c->postgresql.database, p->pgpass, NULL, false,
                    connect_timeout, NULL);
}

int pgctl_primary_conninfo(const PgCtl *p, const PgUpstream *u, char *buf, size_t size)
{
    const Config *c = p->config;
    /* krbsrvname as Patroni's primary_conninfo (the server's walreceiver
     * also has PGKRBSRVNAME from the agent's environment) */
    _cleanup_free_ char *s = conninfo(u->host, u->port, &c->postgresql.replication, "replicator",
                                      NULL, p->pgpass, c->name, true, 2, c->postgresql.krbsrvname);
    if (!s) {
        return -ENOMEM;
    }
    if (u->read_write) {
        char *t = NULL;
        if (asprintf(&t, "%s target_session_attrs=read-write", s) < 0) {
            return -ENOMEM;
        }
        free(s);
        s = t;
    }
    if (strlen(s) >= size) {
        return -ENOBUFS;
    }
    memcpy(buf, s, strlen(s) + 1);
    return 0;
}

static int write_all(int fd, const char *content, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, content + off, len - off);
        if (w < 0 && errno != EINTR) {
            return -errno;
        }
        off += w > 0 ? (size_t)w : 0;
    }
    return 0;
}

int pgctl_write_file(const char *path, const char *content, size_t len)
{
    char tmp[PGCTL_PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.dbha-XXXXXX", path) >= sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    /* a fresh name (O_CREAT | O_EXCL, mode 0600): nothing planted there is
     * followed or reused */
    int fd = mkostemp(tmp, O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    int r = write_all(fd, content, len);
    if (r == 0 && fsync(fd) < 0) {
        r = -errno;
    }
    if (close(fd) < 0 && r == 0) {
        r = -errno;
    }
    /* rename replaces a symlink at path, it does not follow it */
    if (r == 0 && rename(tmp, path) < 0) {
        r = -errno;
    }
    if (r < 0) {
        (void)unlink(tmp);
    }
    return r;
}

static bool managed_param(const char *name)
{
    static const char *const names[] = {
        "listen_addresses",  "port",
        "cluster_name",      "hba_file",
        "ident_file",        "config_file",
        "data_directory",    "primary_conninfo",
        "primary_slot_name", "recovery_target_timeline",
    };
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void put_params(FILE *f, const PgCtl *p, const ConfigMap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        if (p->synchronous_standby_names &&
            strcmp(m->items[i].key, "synchronous_standby_names") == 0) {
            continue;
        }
        /* PostgreSQL 13 and later do not know it: put_wal_keep() */
        if (strcmp(m->items[i].key, "wal_keep_segments") == 0) {
            continue;
        }
        /* names are refused where they enter; one that got past must not
         * write a line of its own */
        if (!managed_param(m->items[i].key) && pgconf_name_valid(m->items[i].key)) {
            pgconf_put_line(f, m->items[i].key, m->items[i].value);
        }
    }
}

/* Settings a cluster that can fail over needs, unless the config sets them. */
static const ConfigMap *cluster_params(const PgCtl *p)
{
    return p->dcs_parameters ? p->dcs_parameters : &p->config->bootstrap.dcs.parameters;
}

static void put_default(FILE *f, const PgCtl *p, const char *name, const char *value)
{
    if (!config_map_get(&p->config->postgresql.parameters, name) &&
        !config_map_get(cluster_params(p), name)) {
        pgconf_put_line(f, name, value);
    }
}

/* The node's value of a parameter, else the cluster's, else NULL. */
static const char *param(const PgCtl *p, const char *name)
{
    const char *v = config_map_get(&p->config->postgresql.parameters, name);
    return v ? v : config_map_get(cluster_params(p), name);
}

/* Patroni's translation for PostgreSQL 13 and later (the only versions
 * dbha runs): wal_keep_segments, which they no longer know, becomes
 * wal_keep_size of that many 16 MB segments, unless wal_keep_size is set
 * (then it is written by put_params() and wins). */
static void put_wal_keep(FILE *f, const PgCtl *p)
{
    const char *segments = param(p, "wal_keep_segments");
    if (!segments || param(p, "wal_keep_size")) {
        return;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(segments, &end, 10);
    if (errno || end == segments || *end || n < 0 || n > INT32_MAX / 16) {
        fputs("# wal_keep_segments is not a whole number of segments: not written\n", f);
        return;
    }
    char size[32];
    snprintf(size, sizeof(size), "%lldMB", n * 16);
    fputs("# wal_keep_segments, as Patroni translates it for PostgreSQL 13 and later\n", f);
    pgconf_put_line(f, "wal_keep_size", size);
}

/* A small configuration file, whole (at most 1 MiB). */
static int read_small_file(const char *path, char **ret, size_t *ret_len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return -errno;
    }
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    if (!m) {
        fclose(f);
        return -ENOMEM;
    }
    char chunk[4096];
    size_t n, total = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && total <= (1u << 20)) {
        fwrite(chunk, 1, n, m);
        total += n;
    }
    int r = ferror(f) ? -EIO : total > (1u << 20) ? -EFBIG : 0;
    fclose(f);
    if (fclose(m) != 0 && r == 0) {
        r = -ENOMEM;
    }
    if (r < 0) {
        free(buf);
        return r;
    }
    *ret = buf;
    *ret_len = size;
    return 0;
}

/* A postgresql.conf that an agent wrote (dbha's or Patroni's) includes
 * its base: as a base itself it would include itself. */
static bool managed_conf(const char *text)
{
    return strncmp(text, PGCTL_CONF_HEADER, strlen(PGCTL_CONF_HEADER)) == 0 ||
           strncmp(text, "# Do not edit this file manually!", 33) == 0;
}

/* dst does not exist yet: a copy of src, if src is there and (unless
 * any_writer) not a file an agent wrote: an agent's postgresql.conf is no
 * base, but the pg_hba.conf a primary's agent wrote is what its clones'
 * servers should read, as Patroni's backup of it is restored on a replica.
 * Returns 1 when copied, 0 when there was nothing to copy. */
static int seed_file(const char *dst, const char *src, bool any_writer)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_small_file(src, &text, &len);
    if (r == -ENOENT) {
        return 0;
    }
    if (r < 0) {
        return r;
    }
    if (!any_writer && managed_conf(text)) {
        return 0;
    }
    r = pgctl_write_file(dst, text, len);
    return r < 0 ? r : 1;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 || errno != ENOENT;
}

/* A config_dir of its own (Patroni's config_dir): created if missing, and
 * where it lacks the base, pg_hba.conf or pg_ident.conf, they are seeded
 * from the data directory (initdb's or the clone's own files), so that a
 * new config_dir starts from what the server would have read in its data
 * directory. (Patroni requires them there: its start fails on a
 * config_dir without postgresql.conf.) A Debian layout already has them:
 * its postgresql.conf becomes the base, once, as in the data directory. */
static int prepare_config_dir(const PgCtl *p, bool write_hba, bool write_ident)
{
    int m = pgctl_make_parents(p->config_dir); /* /etc/postgresql/17 on a new host */
    if (m < 0) {
        return m;
    }
    if (mkdir(p->config_dir, 0700) < 0 && errno != EEXIST) {
        return -errno;
    }
    _cleanup_free_ char *base = dir_join(p->config_dir, p->base_conf_name);
    _cleanup_free_ char *data_conf = dir_join(p->data_dir, "postgresql.conf");
    _cleanup_free_ char *data_base = dir_join(p->data_dir, "postgresql.base.conf");
    _cleanup_free_ char *data_hba = dir_join(p->data_dir, "pg_hba.conf");
    _cleanup_free_ char *data_ident = dir_join(p->data_dir, "pg_ident.conf");
    if (!base || !data_conf || !data_base || !data_hba || !data_ident) {
        return -ENOMEM;
    }
    int r = 0;
    if (!p->config->postgresql.custom_conf && !file_exists(base)) {
        if (file_exists(p->conf_file)) {
            if (rename(p->conf_file, base) < 0) {
                return -errno;
            }
        } else {
            /* an agent's own postgresql.conf in the data directory has
             * the original beside it */
            r = seed_file(base, data_base, false);
            if (r == 0) {
                r = seed_file(base, data_conf, false);
            }
        }
    }
    if (r >= 0 && !write_hba && !file_exists(p->hba_file)) {
        r = seed_file(p->hba_file, data_hba, true);
    }
    if (r >= 0 && !write_ident && !file_exists(p->ident_file)) {
        r = seed_file(p->ident_file, data_ident, true);
    }
    return r < 0 ? r : 0;
}

/* Patroni's recovery_conf on a replica: the node's, else the cluster's
 * (the `config` key's, or bootstrap.dcs's before there is one); only the
 * settings a replica takes (the loaders refuse or warn about the rest). */
static bool overridden(const PgUpstream *u, const char *name)
{
    return u &&
           ((u->restore_command && strcasecmp(name, "restore_command") == 0) ||
            (u->archive_cleanup_command && strcasecmp(name, "archive_cleanup_command") == 0) ||
            (u->recovery_min_apply_delay && strcasecmp(name, "recovery_min_apply_delay") == 0));
}

static void put_recovery_conf(FILE *f, const PgCtl *p, const PgUpstream *u)
{
    const Config *c = p->config;
    const ConfigMap *m = &c->postgresql.recovery_conf;
    const char *source = "postgresql.recovery_conf";
    if (m->n == 0) {
        m = p->dcs_recovery_conf ? p->dcs_recovery_conf : &c->bootstrap.dcs.recovery_conf;
        source = "the cluster's postgresql.recovery_conf";
    }
    bool first = true;
    for (size_t i = 0; i < m->n; i++) {
        const char *name = m->items[i].key;
        if (pgconf_recovery_param(name, NULL) != PGCONF_RECOVERY_WRITTEN ||
            !pgconf_name_valid(name) || overridden(u, name)) {
            continue;
        }
        if (first) {
            fprintf(f, "\n# %s\n", source);
            first = false;
        }
        char lower[64];
        size_t n = strlen(name) < sizeof(lower) - 1 ? strlen(name) : sizeof(lower) - 1;
        for (size_t j = 0; j < n; j++) {
            lower[j] = (char)tolower((unsigned char)name[j]);
        }
        lower[n] = '\0';
        pgconf_put_line(f, lower, m->items[i].value ? m->items[i].value : "");
    }
}

/* The settings Patroni empties on a replica (build_recovery_params()). */
static const char *const recovery_targets[] = {
    "recovery_target",      "recovery_target_lsn", "recovery_target_name",
    "recovery_target_time", "recovery_target_xid",
};

static int write_postgresql_conf(const PgCtl *p, bool replica, const PgUpstream *u)
{
    const Config *c = p->config;
    const char *path = p->conf_file;
    _cleanup_free_ char *base = dir_join(p->config_dir, p->base_conf_name);
    if (!base) {
        return -ENOMEM;
    }

    /* initdb's own file becomes the base we include, once. */
    struct stat st;
    if (!c->postgresql.custom_conf && stat(base, &st) < 0 && errno == ENOENT &&
        stat(path, &st) == 0) {
        if (rename(path, base) < 0) {
            return -errno;
        }
    }

    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return -ENOMEM;
    }
    fputs(PGCTL_CONF_HEADER
          "; changes here are overwritten at the next start.\n"
          "# Node settings: postgresql.parameters; cluster-wide: bootstrap.dcs.\n",
          f);
    if (c->postgresql.custom_conf) {
        /* Patroni's: include, not include_if_exists (a missing file stops
         * the server with its name) */
        fputs("include ", f);
        pgconf_put_value(f, c->postgresql.custom_conf);
        fputs("\n\n", f);
    } else {
        fputs("include_if_exists ", f);
        pgconf_put_value(f, p->base_conf_name);
        fputs("\n\n", f);
    }
    if (p->own_conf_file) {
        /* after the include: a base (Debian's) naming other paths must
         * not move the server away from the files the agent manages */
        fputs("# postgresql.config_dir\n", f);
        pgconf_put_line(f, "data_directory", p->data_dir);
        pgconf_put_line(f, "hba_file", p->hba_file);
        pgconf_put_line(f, "ident_file", p->ident_file);
    }
    pgconf_put_line(f, "listen_addresses", p->listen_addresses);
    char port[16];
    snprintf(port, sizeof(port), "%d", p->port);
    pgconf_put_line(f, "port", port);
    /* Patroni's: the scope (a server it started runs with it, and the
     * setting needs a restart) */
    pgconf_put_line(f, "cluster_name", c->scope);
    put_default(f, p, "wal_level", "replica");
    put_default(f, p, "hot_standby", "on");
    put_default(f, p, "wal_log_hints", "on");
    put_default(f, p, "max_wal_senders", "10");
    put_default(f, p, "max_replication_slots", "10");
    fputs(p->dcs_parameters ? "\n# the cluster's config key: postgresql.parameters\n"
                            : "\n# bootstrap.dcs.postgresql.parameters\n",
          f);
    put_params(f, p, cluster_params(p));
    fputs("\n# postgresql.parameters\n", f);
    put_params(f, p, &c->postgresql.parameters);
    put_wal_keep(f, p);
    if (p->hot_standby_feedback) {
        fputs("\n# permanent logical slots (bootstrap.dcs.slots): their copies on replicas\n", f);
        pgconf_put_line(f, "hot_standby_feedback", "on");
    }
    if (p->synchronous_standby_names) {
        fputs("\n# synchronous_mode: the leader's choice of synchronous standbys\n", f);
        pgconf_put_line(f, "synchronous_standby_names", p->synchronous_standby_names);
    }
    /* on a primary too: the setting needs a restart, and a promoted
     * replica reloads this file (a change would be reported as an error) */
    pgconf_put_line(f, "recovery_target_timeline", "latest");
    /* Patroni's on a replica, so that no recovery target in an included
     * file pauses, promotes or shuts down a standby; on a primary too: each
     * needs a restart, and one the file loses (a promotion, a server that
     * Patroni started as a replica taken over) leaves the server
     * pending_restart */
    for (size_t i = 0; i < ELEMENTSOF(recovery_targets); i++) {
        pgconf_put_line(f, recovery_targets[i], "");
    }
    const ConfigBootstrapMethod *b = p->bootstrap_custom;
    if (!replica && b && b->has_recovery_conf) {
        fprintf(f, "\n# bootstrap.%s.recovery_conf (the custom bootstrap's first start)\n",
                b->name);
        for (size_t i = 0; i < b->recovery_conf.n; i++) {
            pgconf_put_line(f, b->recovery_conf.items[i].key, b->recovery_conf.items[i].value);
        }
    }
    if (replica) {
        fputs("\n# replication\n", f);
        if (u && u->host) {
            char conninfo[PGCTL_CONNINFO_MAX];
            int r = pgctl_primary_conninfo(p, u, conninfo, sizeof(conninfo));
            if (r < 0) {
                fclose(f);
                free(buf);
                return r;
            }
            pgconf_put_line(f, "primary_conninfo", conninfo);
            if (u->slot_name) {
                pgconf_put_line(f, "primary_slot_name", u->slot_name);
            }
        }
        put_recovery_conf(f, p, u);
        if (u &&
            (u->restore_command || u->archive_cleanup_command || u->recovery_min_apply_delay)) {
            fputs("\n# standby_cluster\n", f);
            const char *const lines[][2] = {
                { "restore_command", u->restore_command },
                { "archive_cleanup_command", u->archive_cleanup_command },
                { "recovery_min_apply_delay", u->recovery_min_apply_delay },
            };
            for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                if (lines[i][1]) {
                    pgconf_put_line(f, lines[i][0], lines[i][1]);
                }
            }
        }
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    int r = pgctl_write_file(path, buf, size);
    free(buf);
    return r;
}

/* Writes lines to path under a comment saying where they came from. */
static int write_lines(const char *path, const char *source, const ConfigStrv *lines)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return -ENOMEM;
    }
    fprintf(f, "# Written by dbagent from %s.\n", source);
    for (size_t i = 0; i < lines->n; i++) {
        fprintf(f, "%s\n", lines->items[i]);
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    int r = pgctl_write_file(path, buf, size);
    free(buf);
    return r;
}

typedef struct HbaSource {
    const char *what;
    const ConfigStrv *lines;
} HbaSource;

/* Patroni's order: the node's postgresql.pg_hba, else the cluster's (the
 * `config` key's postgresql.pg_hba, or bootstrap.dcs's before there is
 * one); none (what = NULL): initdb's (or the clone's) file stays, with
 * bootstrap.pg_hba appended once at the bootstrap
 * (pgctl_append_bootstrap_hba()). pg_ident.conf the same way, from
 * postgresql.pg_ident. */
static void hba_sources(const PgCtl *p, HbaSource *hba, HbaSource *ident)
{
    const Config *c = p->config;
    const ConfigStrv *dcs_hba = p->dcs_pg_hba ? p->dcs_pg_hba : &c->bootstrap.dcs.pg_hba;
    const ConfigStrv *dcs_ident = p->dcs_pg_ident ? p->dcs_pg_ident : &c->bootstrap.dcs.pg_ident;
    *hba = (HbaSource){ 0 };
    *ident = (HbaSource){ 0 };
    if (c->postgresql.pg_hba.n > 0) {
        *hba = (HbaSource){ "postgresql.pg_hba", &c->postgresql.pg_hba };
    } else if (dcs_hba->n > 0) {
        *hba = (HbaSource){ "the cluster's postgresql.pg_hba", dcs_hba };
    }
    if (c->postgresql.pg_ident.n > 0) {
        *ident = (HbaSource){ "postgresql.pg_ident", &c->postgresql.pg_ident };
    } else if (dcs_ident->n > 0) {
        *ident = (HbaSource){ "the cluster's postgresql.pg_ident", dcs_ident };
    }
}

#define BOOTSTRAP_HBA_SUFFIX ".dbha-bootstrap"

/* Patroni's pg_hba.conf while a custom bootstrap runs: the superuser and
 * the replication user trusted on the socket and the agent's address, so
 * that the roles of a restored cluster can be given this config's
 * passwords. What was there is kept aside (pgctl_end_custom_bootstrap). */
static int write_bootstrap_hba(const PgCtl *p)
{
    const Config *c = p->config;
    char aside[PGCTL_PATH_MAX];
    snprintf(aside, sizeof(aside), "%s%s", p->hba_file, BOOTSTRAP_HBA_SUFFIX);
    struct stat st;
    if (stat(aside, &st) < 0 && rename(p->hba_file, aside) < 0 && errno != ENOENT) {
        return -errno;
    }
    const char *su =
        c->postgresql.superuser.username ? c->postgresql.superuser.username : "postgres";
    const char *repl =
        c->postgresql.replication.username ? c->postgresql.replication.username : "replicator";
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return -ENOMEM;
    }
    fprintf(f,
            "# Written by dbagent for the custom bootstrap bootstrap.%s, until its roles are "
            "set.\n",
            p->bootstrap_custom->name);
    fprintf(f, "local\treplication\t\"%s\"\ttrust\nlocal\tall\t\"%s\"\ttrust\n", repl, su);
    if (p->local_host && p->local_host[0] != '/') {
        const char *mask = strchr(p->local_host, ':') ? "128" : "32";
        fprintf(f, "host\treplication\t\"%s\"\t%s/%s\ttrust\n", repl, p->local_host, mask);
        fprintf(f, "host\tall\t\"%s\"\t%s/%s\ttrust\n", su, p->local_host, mask);
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    int r = pgctl_write_file(p->hba_file, buf, size);
    free(buf);
    return r;
}

int pgctl_end_custom_bootstrap(PgCtl *p)
{
    p->bootstrap_custom = NULL;
    char aside[PGCTL_PATH_MAX];
    snprintf(aside, sizeof(aside), "%s%s", p->hba_file, BOOTSTRAP_HBA_SUFFIX);
    HbaSource hba, ident;
    hba_sources(p, &hba, &ident);
    if (hba.what) {
        return unlink(aside) < 0 && errno != ENOENT ? -errno : 0;
    }
    return rename(aside, p->hba_file) < 0 && errno != ENOENT ? -errno : 0;
}

static int append_lines(const char *path, const ConfigStrv *lines)
{
    FILE *f = fopen(path, "ae");
    if (!f) {
        return -errno;
    }
    fputs("\n# Appended by dbagent from bootstrap.pg_hba.\n", f);
    for (size_t i = 0; i < lines->n; i++) {
        fprintf(f, "%s\n", lines->items[i]);
    }
    int r = fflush(f) != 0 || fsync(fileno(f)) < 0 ? -errno : 0;
    if (fclose(f) != 0 && r == 0) {
        r = -errno;
    }
    return r;
}

int pgctl_append_bootstrap_hba(const PgCtl *p)
{
    HbaSource hba, ident;
    hba_sources(p, &hba, &ident);
    const ConfigStrv *lines = &p->config->bootstrap.pg_hba;
    if (hba.what || lines->n == 0) {
        return 0; /* a configured pg_hba replaces the file: nothing to add to */
    }
    _cleanup_free_ char *data_hba = dir_join(p->data_dir, "pg_hba.conf");
    if (!data_hba) {
        return -ENOMEM;
    }
    int r = append_lines(data_hba, lines);
    if (r >= 0 && strcmp(data_hba, p->hba_file) != 0 && file_exists(p->hba_file)) {
        r = append_lines(p->hba_file, lines); /* config_dir's own, kept (Debian's) */
    }
    return r;
}

int pgctl_write_config(const PgCtl *p, bool replica, const PgUpstream *u)
{
    HbaSource hba, ident;
    hba_sources(p, &hba, &ident);
    const ConfigBootstrapMethod *b = replica ? NULL : p->bootstrap_custom;
    int r = 0;
    if (p->own_conf_file) {
        r = prepare_config_dir(p, hba.what != NULL, ident.what != NULL);
        if (r < 0) {
            return r;
        }
    }
    if (replica && u && u->host) {
        /* primary_conninfo names the passfile, and a reload makes the
         * walreceiver read it: it must hold the replication user for any
         * host first (the one Patroni wrote names its last leader only) */
        r = pgctl_write_pgpass(p);
        if (r < 0) {
            return r;
        }
    }
    r = write_postgresql_conf(p, replica, u);
    if (r == 0 && b) {
        r = write_bootstrap_hba(p);
    } else if (r == 0 && hba.what) {
        r = write_lines(p->hba_file, hba.what, hba.lines);
    }
    if (r == 0 && ident.what) {
        r = write_lines(p->ident_file, ident.what, ident.lines);
    }
    if (r < 0) {
        return r;
    }
    char path[PGCTL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/standby.signal", p->data_dir);
    if (replica) {
        return pgctl_write_file(path, "", 0);
    }
    if (b && b->keep_existing_recovery_conf && !b->has_recovery_conf) {
        return 0; /* the signal files the command left decide */
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        return -errno;
    }
    if (b) {
        /* Patroni: its recovery_conf with recovery.signal, else none */
        snprintf(path, sizeof(path), "%s/recovery.signal", p->data_dir);
        if (b->has_recovery_conf) {
            return pgctl_write_file(path, "", 0);
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            return -errno;
        }
    }
    return 0;
}

/* A passfile field: ':' and '\' escaped with '\'. */
static void put_pgpass_field(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == ':' || *s == '\\') {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
}

int pgctl_write_pgpass(const PgCtl *p)
{
    const Config *c = p->config;
    const ConfigUser *users[] = { &c->postgresql.replication, &c->postgresql.rewind,
                                  &c->postgresql.superuser };
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < ELEMENTSOF(users); i++) {
        if (!users[i]->username || !users[i]->password) {
            continue;
        }
        fputs("*:*:*:", f);
        put_pgpass_field(f, users[i]->username);
        fputc(':', f);
        put_pgpass_field(f, users[i]->password);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    int r = pgctl_write_file(p->pgpass, buf, size);
    explicit_bzero(buf, size);
    free(buf);
    return r;
}

void pgctl_argv_done(PgArgv *a)
{
    for (int i = 0; i < a->argc; i++) {
        free(a->argv[i]);
    }
    *a = (PgArgv){ 0 };
}

static int argv_add(PgArgv *a, const char *s)
{
    if (a->argc + 1 >= PGCTL_ARGV_MAX) {
        return -E2BIG;
    }
    a->argv[a->argc] = strdup(s);
    if (!a->argv[a->argc]) {
        return -ENOMEM;
    }
    a->argc++;
    a->argv[a->argc] = NULL;
    return 0;
}

static int argv_tool(const PgCtl *p, const char *tool, PgArgv *a)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", p->bin_dir, tool) < 0) {
        return -ENOMEM;
    }
    return argv_add(a, path);
}

#define ADD(a, s)                                                                                  \
    do {                                                                                           \
        int _r = argv_add((a), (s));                                                               \
        if (_r < 0) {                                                                              \
            pgctl_argv_done(a);                                                                    \
            return _r;                                                                             \
        }                                                                                          \
    } while (0)

static bool options_have(const ConfigStrv *opts, const char *name, const char *short_name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < opts->n; i++) {
        const char *o = opts->items[i];
        if (strncmp(o, name, len) == 0 && (o[len] == '\0' || o[len] == '=')) {
            return true;
        }
        if (short_name && strcmp(o, short_name) == 0) {
            return true;
        }
    }
    return false;
}

int pgctl_argv_initdb(const PgCtl *p, const char *pwfile, PgArgv *ret)
{
    const Config *c = p->config;
    PgArgv a = { 0 };
    int r = argv_tool(p, "initdb", &a);
    if (r < 0) {
        return r;
    }
    ADD(&a, "-D");
    ADD(&a, p->data_dir);
    ADD(&a, "-U");
    ADD(&a, c->postgresql.superuser.username ? c->postgresql.superuser.username : "postgres");
    if (pwfile) {
        _cleanup_free_ char *o = NULL;
        if (asprintf(&o, "--pwfile=%s", pwfile) < 0) {
            pgctl_argv_done(&a);
            return -ENOMEM;
        }
        ADD(&a, o);
    }
    /* pg_rewind needs checksums or wal_log_hints; checksums by default */
    if (!options_have(&c->bootstrap.initdb, "--data-checksums", "-k") &&
        !options_have(&c->bootstrap.initdb, "--no-data-checksums", NULL)) {
        ADD(&a, "--data-checksums");
    }
    for (size_t i = 0; i < c->bootstrap.initdb.n; i++) {
        ADD(&a, c->bootstrap.initdb.items[i]);
    }
    *ret = a;
    return 0;
}

/* pg_ctl ACTION -w -t timeout [-m mode] -D data_dir [-l log_file] */
static int argv_pg_ctl(const PgCtl *p, const char *action, const char *mode, int timeout_sec,
                       bool log, PgArgv *ret)
{
    PgArgv a = { 0 };
    char t[16];
    snprintf(t, sizeof(t), "%d", timeout_sec);
    int r = argv_tool(p, "pg_ctl", &a);
    if (r < 0) {
        return r;
    }
    ADD(&a, action);
    ADD(&a, "-w");
    ADD(&a, "-t");
    ADD(&a, t);
    if (mode) {
        ADD(&a, "-m");
        ADD(&a, mode);
    }
    ADD(&a, "-D");
    ADD(&a, p->data_dir);
    if (log) {
        ADD(&a, "-l");
        ADD(&a, p->log_file);
    }
    if (log && p->own_conf_file) {
        /* pg_ctl hands -o to the server through /bin/sh: the path is
         * single-quoted, a ' in it as '\'' */
        _cleanup_free_ char *o = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&o, &size);
        if (!f) {
            pgctl_argv_done(&a);
            return -ENOMEM;
        }
        fputs("--config-file='", f);
        for (const char *c = p->conf_file; *c; c++) {
            if (*c == '\'') {
                fputs("'\\''", f);
            } else {
                fputc(*c, f);
            }
        }
        fputc('\'', f);
        if (fclose(f) != 0) {
            pgctl_argv_done(&a);
            return -ENOMEM;
        }
        ADD(&a, "-o");
        ADD(&a, o);
    }
    *ret = a;
    return 0;
}

int pgctl_argv_start(const PgCtl *p, int timeout_sec, PgArgv *ret)
{
    return argv_pg_ctl(p, "start", NULL, timeout_sec, true, ret);
}

int pgctl_argv_restart(const PgCtl *p, const char *mode, int timeout_sec, PgArgv *ret)
{
    return argv_pg_ctl(p, "restart", mode, timeout_sec, true, ret);
}

int pgctl_argv_stop(const PgCtl *p, const char *mode, int timeout_sec, PgArgv *ret)
{
    return argv_pg_ctl(p, "stop", mode, timeout_sec, false, ret);
}

int pgctl_argv_basebackup(const PgCtl *p, const char *host, int port, PgArgv *ret)
{
    const Config *c = p->config;
    PgArgv a = { 0 };
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    int r = argv_tool(p, "pg_basebackup", &a);
    if (r < 0) {
        return r;
    }
    ADD(&a, "-D");
    ADD(&a, p->clone_dir);
    ADD(&a, "-X");
    ADD(&a, "stream");
    ADD(&a, "-h");
    ADD(&a, host);
    ADD(&a, "-p");
    ADD(&a, portbuf);
    ADD(&a, "-U");
    ADD(&a, c->postgresql.replication.username ? c->postgresql.replication.username : "replicator");
    ADD(&a, "-w");
    /* the replication user's sslmode, sslrootcert, ... as a connection
     * string (it holds no host, port or user: -h, -p and -U stand) */
    _cleanup_free_ char *ssl = NULL;
    size_t ssl_size = 0;
    FILE *f = open_memstream(&ssl, &ssl_size);
    if (!f) {
        pgctl_argv_done(&a);
        return -ENOMEM;
    }
    put_user_libpq(f, &c->postgresql.replication, false);
    if (fclose(f) != 0) {
        pgctl_argv_done(&a);
        return -ENOMEM;
    }
    if (*ssl) {
        ADD(&a, "-d");
        ADD(&a, ssl + 1);
    }
    if (!options_have(&c->postgresql.basebackup, "--checkpoint", "-c")) {
        ADD(&a, "--checkpoint=fast");
    }
    for (size_t i = 0; i < c->postgresql.basebackup.n; i++) {
        ADD(&a, c->postgresql.basebackup.items[i]);
    }
    *ret = a;
    return 0;
}

int pgctl_argv_rewind(const PgCtl *p, const char *host, int port, PgArgv *ret)
{
    _cleanup_free_ char *source = NULL, *target = NULL,
                        *info = pgctl_remote_conninfo(p, host, port, 5);
    if (!info || asprintf(&source, "--source-server=%s", info) < 0 ||
        asprintf(&target, "--target-pgdata=%s", p->data_dir) < 0) {
        return -ENOMEM;
    }
    PgArgv a = { 0 };
    int r = argv_tool(p, "pg_rewind", &a);
    if (r < 0) {
        return r;
    }
    ADD(&a, target);
    ADD(&a, source);
    *ret = a;
    return 0;
}

#undef ADD

int pgctl_move_aside(const PgCtl *p, char **ret_path)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    _cleanup_free_ char *aside = NULL;
    if (asprintf(&aside, "%s%s-%s", p->data_dir, PGCTL_ASIDE_SUFFIX, stamp) < 0) {
        return -ENOMEM;
    }
    if (rename(p->data_dir, aside) < 0) {
        return -errno;
    }
    if (ret_path) {
        *ret_path = TAKE_PTR(aside);
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) {
        return rmdir(path) < 0 ? -1 : 0;
    }
    return unlink(path) < 0 ? -1 : 0;
}

/* Removes below dir, deepest first, with fn; 0 when dir does not exist. */
static int remove_walk(const char *dir,
                       int (*fn)(const char *, const struct stat *, int, struct FTW *))
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (nftw(dir, fn, 16, FTW_DEPTH | FTW_PHYS) < 0) {
        return -errno;
    }
    return 0;
}

int pgctl_remove_tree(const char *dir)
{
    return remove_walk(dir, remove_entry);
}

static int remove_below(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return ftw->level == 0 ? 0 : remove_entry(path, st, flag, ftw);
}

int pgctl_empty_dir(const char *dir)
{
    return remove_walk(dir, remove_below);
}

/* Patroni's format_dsn(): key=value, ' \ and space escaped with \. */
static void put_dsn(FILE *f, const char *key, const char *value)
{
    fprintf(f, " %s=", key);
    for (const char *c = value; *c; c++) {
        if (*c == '\'' || *c == '\\' || *c == ' ') {
            fputc('\\', f);
        }
        fputc(*c, f);
    }
}

char *pgctl_clone_connstring(const PgCtl *p, const char *host, int port)
{
    const Config *c = p->config;
    const ConfigUser *u = &c->postgresql.replication;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        return NULL;
    }
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    put_dsn(f, "dbname", c->postgresql.database);
    put_dsn(f, "user", u->username ? u->username : "replicator");
    put_dsn(f, "host", host);
    put_dsn(f, "port", portbuf);
#define X(k)                                                                                       \
    if (u->k) {                                                                                    \
        put_dsn(f, #k, u->k);                                                                      \
    }
    CONFIG_USER_LIBPQ_KEYS
#undef X
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    memmove(buf, buf + 1, strlen(buf)); /* the leading space */
    return buf;
}

int pgctl_install_clone(const PgCtl *p)
{
    /* an empty data_dir (e.g. a mount point's directory) is replaced */
    if (rmdir(p->data_dir) < 0 && errno != ENOENT) {
        return -errno;
    }
    if (rename(p->clone_dir, p->data_dir) < 0) {
        return -errno;
    }
    return 0;
}
