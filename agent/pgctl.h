/* Local PostgreSQL control for the agent: where things live (data dir, bin
 * dir, socket, log, passfile), what the data directory holds, the files the
 * agent manages in it (postgresql.conf, pg_hba.conf, standby.signal), and the
 * argument vectors of the server tools the agent runs as child processes.
 * Running those children is the agent loop's job (agent/jobs.c). Nothing here
 * blocks for long: every function reads or writes a few small local files. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"

#define PGCTL_PATH_MAX     4096
#define PGCTL_ARGV_MAX     64
#define PGCTL_CONNINFO_MAX 2048

/* Default locations when the config does not name them. */
#define PGCTL_DEFAULT_BIN_DIR "/usr/lib/postgresql/15/bin"
/* The Unix socket directory PostgreSQL and libpq are built with on Debian
 * (upstream's is /tmp): where use_unix_socket connects when no absolute
 * unix_socket_directories is given. */
#define PGCTL_DEFAULT_SOCKET_DIR "/var/run/postgresql"
/* A clone is made here and renamed over data_dir only when complete. */
#define PGCTL_CLONE_SUFFIX ".dbha-clone"
/* The first line of every postgresql.conf the agent writes. */
#define PGCTL_CONF_HEADER "# Written by dbagent"
/* Suffix of a data directory moved aside (never deleted). */
#define PGCTL_ASIDE_SUFFIX ".dbha-old"

typedef enum PgDataState {
    PGDATA_EMPTY,   /* missing or an empty directory */
    PGDATA_VALID,   /* PG_VERSION and global/pg_control present */
    PGDATA_INVALID, /* something else: files, but not a cluster */
    _PGDATA_STATE_MAX,
    _PGDATA_STATE_INVALID = -EINVAL,
} PgDataState;

const char *pgctl_data_state_to_string(PgDataState s);

/* Paths and settings derived once from the Config. Strings owned. */
typedef struct PgCtl {
    const Config *config; /* borrowed */
    char *bin_dir;
    char *data_dir;
    char *clone_dir; /* data_dir + PGCTL_CLONE_SUFFIX */
    char *log_file;  /* data_dir + ".log": PostgreSQL's stderr via pg_ctl -l */
    char *pgpass;    /* postgresql.pgpass, else data_dir + ".pgpass" */
    char *pwfile;    /* data_dir + ".pwfile": the superuser password for initdb, briefly */
    /* Patroni's config_dir (absolute; data_dir when not configured) and
     * the files the agent writes there */
    char *config_dir;
    char *conf_file;      /* config_dir/NAME.conf (config_base_name) */
    char *base_conf_name; /* "NAME.base.conf", included from conf_file */
    char *hba_file;       /* config_dir/pg_hba.conf */
    char *ident_file;     /* config_dir/pg_ident.conf */
    /* conf_file is not data_dir/postgresql.conf: the server is started
     * with --config-file, and conf_file names data_directory, hba_file and
     * ident_file */
    bool own_conf_file;
    char *socket_dir; /* first absolute one of unix_socket_directories, or NULL */
    char *local_host; /* how the agent reaches its server: a socket directory or a listen
                         address (postgresql.use_unix_socket) */
    char *listen_addresses;
    int port;
    /* borrowed: the cluster-wide parameters of the `config` key, used
     * instead of bootstrap.dcs's when set (the caller keeps them alive
     * while writing) */
    const ConfigMap *dcs_parameters;
    /* borrowed: the cluster's postgresql.pg_hba / pg_ident (the `config`
     * key's, else bootstrap.dcs's), used where the node gives none; NULL:
     * bootstrap.dcs's */
    const ConfigStrv *dcs_pg_hba, *dcs_pg_ident;
    /* borrowed: the cluster's postgresql.recovery_conf (the `config`
     * key's), used where the node gives none; NULL: bootstrap.dcs's */
    const ConfigMap *dcs_recovery_conf;
    /* borrowed: synchronous_standby_names as the leader manages it in
     * synchronous_mode (it replaces any configured value); NULL when not
     * managed */
    const char *synchronous_standby_names;
    /* permanent logical slots: this member keeps copies of them as a
     * replica (agent/logical.h), so hot_standby_feedback is on, over
     * postgresql.parameters, as Patroni enforces it */
    bool hot_standby_feedback;
    /* borrowed, set from a custom bootstrap's command until its roles are
     * set (finish_bootstrap): a primary's files are then written as Patroni
     * writes them for it, pg_hba.conf trusting the superuser and the
     * replication user locally, recovery.signal and the method's
     * recovery_conf (or no signal file, unless keep_existing_recovery_conf) */
    const ConfigBootstrapMethod *bootstrap_custom;
} PgCtl;

/* Fills *ret from the config. Returns 0, -EINVAL (no port), -ENOMEM. */
int pgctl_init(PgCtl *ret, const Config *c);
/* Creates the missing directories above path (not path itself), 0755, as
 * Patroni's os.makedirs does for a data directory on a host where they are
 * missing (Debian's /var/lib/postgresql/15 before the first cluster).
 * Returns 0 or a negative errno. */
int pgctl_make_parents(const char *path);
void pgctl_done(PgCtl *p);

PgDataState pgctl_data_state(const char *dir);

/* The database system identifier from <dir>/global/pg_control (its first
 * field). Returns 0, -ENOENT, -EIO, -EINVAL (short file). */
int pgctl_read_system_identifier(const char *dir, uint64_t *ret);

/* pg_control's `state` says "shut down" (DBState DB_SHUTDOWNED): the
 * shutdown checkpoint is written, so no backend is left. Reads the fields
 * that lead ControlFileData in every version since 9.6 (system_identifier,
 * pg_control_version, catalog_version_no, state) and accepts only
 * pg_control_version 1300 (PostgreSQL 13 to 16). Returns 1, 0, or a
 * negative errno (-EPROTO for another layout). */
int pgctl_control_shut_down(const char *dir);

/* standby.signal exists in the data dir. */
bool pgctl_is_standby(const PgCtl *p);
/* A promote signal file (pg_promote()'s, `pg_ctl promote`'s) exists in the
 * data dir: a promotion asked for that the startup process has not read. */
bool pgctl_has_promote_signal(const PgCtl *p);

/* Upstream of a replica: NULL host means "no upstream yet" (a replica that
 * waits for a leader). */
typedef struct PgUpstream {
    const char *host; /* borrowed */
    int port;
    const char *slot_name; /* borrowed; NULL: no slot */
    /* a standby cluster's (lib/standby.h), written over recovery_conf's;
     * borrowed, NULL: none. recovery_min_apply_delay only for the remote
     * primary (Patroni's build_recovery_params()) */
    const char *restore_command, *archive_cleanup_command, *recovery_min_apply_delay;
    /* target_session_attrs=read-write: the standby leader streams through a
     * slot on the remote primary, so it must reach the primary among the
     * hosts it names (Patroni adds it then) */
    bool read_write;
} PgUpstream;

/* The primary_conninfo for upstream (application_name = member name,
 * passfile = our passfile). Returns 0 or -ENOBUFS. */
int pgctl_primary_conninfo(const PgCtl *p, const PgUpstream *u, char *buf, size_t size);
/* The superuser's connection to the local server, as Patroni's format_dsn
 * of its local connection: host, port, user, dbname, passfile and the
 * superuser's libpq settings, no password. Owned by the caller; NULL: no
 * memory. */
char *pgctl_local_conninfo(const PgCtl *p);
/* The same to another member's server (host, port of its conn_url) as the
 * user pg_rewind connects as (rewind, else the superuser), with the given
 * connect_timeout in seconds. Owned by the caller; NULL: no memory. */
char *pgctl_remote_conninfo(const PgCtl *p, const char *host, int port, int connect_timeout);

/* Writes the files the agent manages in data_dir: postgresql.conf (our
 * settings and both parameter sets, including initdb's original as
 * postgresql.base.conf), pg_hba.conf when the config has lines, and for a
 * replica standby.signal plus primary_conninfo/primary_slot_name, and
 * first the passfile that primary_conninfo names (pgctl_write_pgpass());
 * for a primary, removes standby.signal. Each file is replaced atomically.
 * Returns 0 or -errno. */
int pgctl_write_config(const PgCtl *p, bool replica, const PgUpstream *u);
/* Patroni's bootstrap.pg_hba: after initdb or a custom bootstrap, its lines
 * are appended to the data directory's pg_hba.conf (and to config_dir's when
 * that one already exists), unless a pg_hba is configured (which replaces
 * the file). Once: replicas get the lines with their clone. Returns 0 or a
 * negative errno. */
int pgctl_append_bootstrap_hba(const PgCtl *p);

/* Writes content to path through a new file of mode 0600 in the same
 * directory (created with O_EXCL | O_NOFOLLOW, fsync'd, renamed over path):
 * a symlink at path is replaced, never followed. Returns 0 or -errno. */
int pgctl_write_file(const char *path, const char *content, size_t len);

/* The passfile with the replication and rewind credentials (mode 0600).
 * Returns 0 or -errno. */
int pgctl_write_pgpass(const PgCtl *p);

/* Argument vectors for the server tools. Each fills argv (NULL-terminated,
 * strings owned by *ret and freed with pgctl_argv_done). */
typedef struct PgArgv {
    char *argv[PGCTL_ARGV_MAX]; /* owned */
    int argc;
} PgArgv;

void pgctl_argv_done(PgArgv *a);
/* initdb -D data_dir -U superuser [--pwfile F] [bootstrap.initdb ...]
 * (--data-checksums unless given). */
int pgctl_argv_initdb(const PgCtl *p, const char *pwfile, PgArgv *ret);
/* pg_ctl start -w -t timeout -D data_dir -l log_file */
int pgctl_argv_start(const PgCtl *p, int timeout_sec, PgArgv *ret);
/* pg_ctl restart -w -t timeout -m mode -D data_dir -l log_file */
int pgctl_argv_restart(const PgCtl *p, const char *mode, int timeout_sec, PgArgv *ret);
/* pg_ctl stop -w -t timeout -m mode -D data_dir */
int pgctl_argv_stop(const PgCtl *p, const char *mode, int timeout_sec, PgArgv *ret);
/* pg_basebackup -D clone_dir -X stream -h host -p port -U replication -w
 * [postgresql.basebackup ...] (-c fast unless given). */
int pgctl_argv_basebackup(const PgCtl *p, const char *host, int port, PgArgv *ret);

/* pg_rewind -D data_dir --source-server='host port user dbname passfile'
 * (the rewind role, else the superuser). */
int pgctl_argv_rewind(const PgCtl *p, const char *host, int port, PgArgv *ret);

/* Renames data_dir to data_dir + PGCTL_ASIDE_SUFFIX + a UTC timestamp,
 * never deleting anything. *ret_path (optional, owned) is the new name.
 * Returns 0 or -errno. */
int pgctl_move_aside(const PgCtl *p, char **ret_path);

/* Removes a directory tree (for the clone temp dir and a data dir whose
 * bootstrap failed). Returns 0 or -errno. */
int pgctl_remove_tree(const char *dir);
/* Renames clone_dir to data_dir (data_dir must be empty or missing).
 * Returns 0 or -errno. */
int pgctl_install_clone(const PgCtl *p);
/* The end of a custom bootstrap: the pg_hba.conf it found is put back
 * when no pg_hba is configured (the next pgctl_write_config writes the
 * configured one otherwise). Returns 0 or -errno. */
int pgctl_end_custom_bootstrap(PgCtl *p);
/* Removes what dir holds, keeping dir itself (a mount point, its owner and
 * mode). 0 when it does not exist. */
int pgctl_empty_dir(const char *dir);
/* The connection string Patroni gives a custom replica method
 * (--connstring): dbname, user, host, port and the replication user's
 * libpq settings, no password (PGPASSFILE has it); NULL on -ENOMEM. */
char *pgctl_clone_connstring(const PgCtl *p, const char *host, int port);
