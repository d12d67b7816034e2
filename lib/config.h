/* Agent configuration: the Patroni-compatible YAML subset from DESIGN.md,
 * loaded with libyaml into a typed struct, validated with FILE:LINE:COL
 * positions, and overridden from PATRONI_* / DBHA_* environment variables.
 * Nothing here logs: problems are returned as a list of diagnostics. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "macro.h"

/* A string-to-string map kept in file order (postgresql.parameters, custom
 * tags, callbacks). Values are the scalar's text as written. */
typedef struct ConfigKv {
    char *key;   /* owned */
    char *value; /* owned */
} ConfigKv;

typedef struct ConfigMap {
    ConfigKv *items; /* owned */
    size_t n;
} ConfigMap;

/* A custom bootstrap method: bootstrap.method names it, bootstrap.<name>
 * holds it (Patroni's Bootstrap._custom_bootstrap()). */
typedef struct ConfigBootstrapMethod {
    char *name;    /* owned */
    char *command; /* owned: split as shlex; run with --scope and --datadir unless no_params */
    bool no_params;
    bool keep_existing_recovery_conf; /* recovery.signal/standby.signal the command left stay */
    bool has_recovery_conf;
    /* owned: recovery settings for the first start (PITR: restore_command,
     * recovery_target_*), with recovery.signal */
    ConfigMap recovery_conf;
} ConfigBootstrapMethod;

/* A custom replica method: an entry of create_replica_methods other than
 * basebackup, with its postgresql.<name> section (Patroni's
 * Bootstrap.create_replica()). */
typedef struct ConfigReplicaMethod {
    char *name;    /* owned */
    char *command; /* owned: the section's `command`, else the name; split as shlex */
    /* the section's flags, true as Python takes a value (1, yes, "x") */
    bool keep_data, no_params;
    bool no_leader; /* no_leader or no_master: runs without a member to copy from */
    /* owned: the section's keys but `command`, in file order, each value as
     * Patroni passes it (--key=value): YAML booleans True/False, null None */
    ConfigMap options;
} ConfigReplicaMethod;

typedef struct ConfigStrv {
    char **items; /* owned, each owned */
    size_t n;
} ConfigStrv;

/* A user's libpq connection settings besides its name and password, as
 * Patroni 3.0.2 passes them on (its _AUTH_ALLOWED_PARAMETERS). */
/* clang-format off */
#define CONFIG_USER_LIBPQ_KEYS \
    X(sslmode) X(sslcert) X(sslkey) X(sslpassword) X(sslrootcert) X(sslcrl) X(sslcrldir) \
    X(gssencmode) X(channel_binding)
/* clang-format on */

typedef struct ConfigUser {
    char *username;   /* owned */
    char *password;   /* owned; never logged */
#define X(k) char *k; /* owned; libpq's keyword of the same name */
    CONFIG_USER_LIBPQ_KEYS
#undef X
} ConfigUser;

typedef enum ConfigWatchdogMode {
    CONFIG_WATCHDOG_OFF,
    CONFIG_WATCHDOG_AUTOMATIC,
    CONFIG_WATCHDOG_REQUIRED,
    _CONFIG_WATCHDOG_MAX,
    _CONFIG_WATCHDOG_INVALID = -EINVAL,
} ConfigWatchdogMode;

/* The cluster-wide settings Patroni keeps in the DCS `config` key; seeded
 * from bootstrap.dcs. Times are in seconds as in Patroni. */
typedef struct ConfigDcs {
    int64_t ttl;                     /* 30 */
    int64_t loop_wait;               /* 10 */
    int64_t retry_timeout;           /* 10 */
    int64_t maximum_lag_on_failover; /* 1048576 bytes */
    int64_t primary_start_timeout;   /* 300 */
    int64_t primary_stop_timeout;    /* 0 */
    bool synchronous_mode;
    bool synchronous_mode_strict;
    int64_t synchronous_node_count;  /* 1 */
    int64_t max_timelines_history;   /* 0: the history key keeps every line */
    int64_t maximum_lag_on_syncnode; /* -1 (or 0): a lagging synchronous standby is kept */
    bool failsafe_mode;
    bool check_timeline; /* false, as Patroni: a replica behind the cluster's timeline may
                            not be elected */
    bool pause;          /* false: true seeds the config key paused (maintenance mode) */
    bool use_pg_rewind;  /* false, as Patroni */
    bool use_slots;      /* true */
    ConfigMap parameters;
    /* owned references, NULL when absent: Patroni's permanent slots
     * ({name: {type, database, plugin} or null}) and ignore_slots ([{name,
     * type, database, plugin}]), as written; agent/slots.h reads them */
    struct json_t *slots;
    struct json_t *ignore_slots;
    /* owned reference, NULL when absent: Patroni's standby_cluster section
     * ({host, port, primary_slot_name, restore_command, ...}) as written;
     * lib/standby.h reads it */
    struct json_t *standby_cluster;
    /* postgresql.pg_hba and pg_ident of the cluster (Patroni's dynamic
     * config): used where the node's own postgresql.pg_hba/pg_ident are
     * not given */
    ConfigStrv pg_hba, pg_ident;
    /* postgresql.recovery_conf of the cluster: a replica's recovery
     * settings (restore_command, ...) where the node gives none */
    ConfigMap recovery_conf;
} ConfigDcs;

/* Defaults follow Patroni's (see the schema table in config.c), except:
 * - restapi.listen, when not given, is 127.0.0.1 with the port of
 *   restapi.connect_address: the REST API is not exposed to the network
 *   unless the config says so (Patroni requires listen; its configs set it).
 * - postgresql.listen stays NULL when not given; use
 *   config_postgresql_port() for the port.
 * - namespace is normalised to "/name/" (Patroni joins it with slashes too).
 * A Config is built only by config_load*(); every string is owned by it. */
typedef struct Config {
    char *source_file; /* owned; the path given to config_load */

    char *scope;     /* owned, required */
    char *namespace; /* owned, "/service/" */
    char *name;      /* owned, required */

    struct {
        char *listen;          /* owned, "host:port" */
        char *connect_address; /* owned, required */
        ConfigUser authentication;
        char *certfile, *keyfile, *cafile; /* owned */
        char *keyfile_password;            /* owned: decrypts keyfile; NULL: not encrypted */
        ConfigMap http_extra_headers;      /* on every response */
        ConfigMap https_extra_headers;     /* also, with TLS (winning over the above) */
        char *verify_client;               /* owned: "none", "optional", "required"; NULL: none */
        ConfigStrv allowlist;              /* addresses, CIDRs and host names, as written */
        bool allowlist_include_members;
    } restapi;

    struct {
        char *cacert, *certfile, *keyfile; /* owned: TLS to agents' REST APIs (PatroniRequest) */
        char *keyfile_password;            /* owned: decrypts keyfile (else restapi's) */
        bool insecure; /* dbctl does not verify the agents' certificates (without certfile) */
        struct {
            char *username, *password; /* owned: dbctl's REST credentials (else restapi's) */
        } authentication;
        char *auth; /* owned: Patroni 3.0's "user:password" form, folded into authentication */
    } ctl;

    struct {
        ConfigStrv hosts; /* "host:port" each; `host` is folded in here */
        char *host;       /* owned; the single-host form as given, also in hosts */
        /* owned, NULL when absent: Patroni's url and proxy, one endpoint as
         * a URL (scheme, host, port, credentials); when given, hosts is
         * that endpoint alone */
        char *url, *proxy;
        int64_t port;              /* 2379: the port of a hosts/host entry written without one */
        char *protocol;            /* owned, "http" or "https" */
        char *username;            /* owned */
        char *password;            /* owned; never logged */
        char *cacert, *cert, *key; /* owned */
        bool use_proxies;
        bool mirror_leader_v2; /* dbha: keep the leader key in the v2 store too */
    } etcd3;

    struct {
        ConfigDcs dcs;
        ConfigStrv initdb; /* "--opt" / "--key=value" as given to initdb */
        ConfigStrv pg_hba;
        char *method; /* owned, "initdb" or the name of a custom method */
        /* owned, NULL for initdb: the custom method's section */
        struct ConfigBootstrapMethod *custom;
        /* owned reference, NULL when absent: Patroni's bootstrap.users,
         * {name: {"password": text or absent, "options": [UPPER-CASE role
         * options]}}, validated; never logged (passwords) */
        struct json_t *users;
        /* owned, NULL: none; Patroni's bootstrap.post_bootstrap (old name
         * post_init): a command line, split as shlex does, run once with
         * the new primary's connection string appended */
        char *post_bootstrap;
    } bootstrap;

    struct {
        char *listen;          /* owned, "addr[,addr...]:port" */
        char *connect_address; /* owned, "host:port", required */
        char *data_dir;        /* owned, required */
        char *bin_dir;         /* owned */
        char *pgpass;          /* owned */
        /* owned, NULL: data_dir. Patroni's config_dir: where postgresql.conf,
         * its base, pg_hba.conf and pg_ident.conf are written (the server
         * is started with --config-file there) */
        char *config_dir;
        char *config_base_name; /* owned, "postgresql": NAME.conf, NAME.base.conf */
        /* owned, NULL: none. Patroni's custom_conf: the file postgresql.conf
         * includes instead of NAME.base.conf (relative: to config_dir) */
        char *custom_conf;
        /* owned, a YAML boolean as written, NULL when absent: true connects
         * the agent to its server over the Unix socket, false over TCP,
         * absent over the socket when unix_socket_directories names an
         * absolute directory (pgctl_init) */
        char *use_unix_socket;
        /* owned, a YAML boolean as written, NULL when absent: Patroni's
         * node-level use_pg_rewind, which wins over the cluster's */
        char *use_pg_rewind;
        char *database;      /* owned, "postgres": the agent's connections, conn_url */
        char *krbsrvname;    /* owned: PGKRBSRVNAME of the agent and all it starts */
        char *proxy_address; /* owned, "host:port": published as proxy_url */
        ConfigUser superuser, replication, rewind;
        ConfigMap parameters;
        ConfigStrv pg_hba;
        ConfigStrv pg_ident;
        /* Patroni's recovery_conf: written on a replica (restore_command,
         * ...); replaces the cluster's when given */
        ConfigMap recovery_conf;
        ConfigMap callbacks;      /* on_start, on_stop, ... -> command */
        int64_t callback_timeout; /* seconds a callback may run (dbha's own key) */
        /* owned, NULL: none. Patroni's fencing script: run after the leader
         * key is taken and before PostgreSQL is promoted; a non-zero exit
         * cancels the promotion (the key released, no leader race for ttl) */
        char *pre_promote;
        char *before_stop;      /* Patroni 3.1's: run (waited for, bounded) before every stop */
        int64_t pg_ctl_timeout; /* 60: seconds pg_ctl start/restart waits (-t) */
        ConfigStrv create_replica_methods;
        ConfigStrv basebackup; /* "--opt" / "--key=value" */
        /* owned: the custom methods create_replica_methods names, in its
         * order (basebackup, built in, is not among them) */
        ConfigReplicaMethod *replica_methods;
        size_t n_replica_methods;
    } postgresql;

    struct {
        bool nofailover;
        bool noloadbalance;
        bool clonefrom;
        bool nosync;
        char *replicatefrom;       /* owned */
        int64_t failover_priority; /* 1 */
        ConfigMap custom;          /* any other tag, as written */
    } tags;

    struct {
        ConfigWatchdogMode mode; /* automatic, as Patroni */
        char *device;            /* owned, "/dev/watchdog" */
        char *driver;            /* owned, "default" or "testing" (Patroni's) */
        int64_t safety_margin;   /* 5 */
    } watchdog;

    struct {
        char *level;       /* owned, "INFO" */
        char *dir;         /* owned, NULL: stderr or the journal; else DIR/patroni.log */
        int64_t file_size; /* 25000000: rotated at this size (0: never) */
        int64_t file_num;  /* 4: rotated files kept (0: never rotated) */
        /* owned, NULL: dbha's line. Patroni's format (Python logging's
         * %-style) and dateformat (strftime of %(asctime)s; "" = NULL) */
        char *format;
        char *dateformat;
    } log;
    /* Patroni's other spellings, moved onto their keys by the loader when
     * those are not given (and warned about when they are); nothing else
     * reads these */
    struct {
        int64_t master_start_timeout, master_stop_timeout; /* bootstrap.dcs.primary_* */
        ConfigStrv create_replica_method;                  /* postgresql.create_replica_methods */
        char *postgresql_name;                             /* owned; name */
        struct json_t *permanent_slots;                    /* owned; bootstrap.dcs.slots */
        struct json_t *permanent_replication_slots;        /* owned; bootstrap.dcs.slots */
        char *post_init;                                   /* owned; bootstrap.post_bootstrap */
    } alias;
} Config;

typedef enum ConfigSeverity {
    CONFIG_WARNING,
    CONFIG_ERROR,
    CONFIG_NOTE, /* a Patroni key that tunes only Patroni's Python runtime: accepted */
} ConfigSeverity;

/* One problem found while loading: "FILE:LINE:COL: message", or for an
 * environment override "environment PATRONI_X: message". */
typedef struct ConfigDiag {
    ConfigSeverity severity;
    char *text;            /* owned, the full line without "warning:"/"error:" prefixes */
    unsigned line, column; /* 1-based; 0 when not from the file */
} ConfigDiag;

typedef struct ConfigDiags {
    ConfigDiag *items; /* owned */
    size_t n;
    size_t n_errors;
} ConfigDiags;

/* Parses `path` (and applies the environment `envp`, NULL-terminated
 * "NAME=value" strings; pass `environ` or NULL for none), validates, and on
 * success stores a new Config in *ret. Every problem found is appended to
 * diags (which the caller owns and frees with config_diags_done), whether or
 * not loading succeeds. Returns 0, -EINVAL when any error was found (nothing
 * stored), -ENOENT/-EACCES/... when the file cannot be read (a diag says so),
 * -ENOMEM. */
int config_load(const char *path, char *const *envp, Config **ret, ConfigDiags *diags);

/* Patroni's PATRONI_CONFIGURATION: with no file, the whole YAML document
 * is that variable of envp (positions read "PATRONI_CONFIGURATION:LINE:COL");
 * the other variables apply as with a file. -ENOENT (with a diag) when it
 * is not set. */
#define CONFIG_ENV_DOCUMENT "PATRONI_CONFIGURATION"
int config_load_env(char *const *envp, Config **ret, ConfigDiags *diags);
/* config_load(path), or config_load_env() when path is NULL. */
int config_load_from(const char *path, char *const *envp, Config **ret, ConfigDiags *diags);

/* For dbctl: the file patronictl reads (scope, namespace, etcd3, ctl,
 * restapi's credentials) or an agent's whole config. The keys only an agent
 * needs (name, data_dir, connect addresses, etcd3.hosts) may be missing;
 * everything present is checked as config_load() does. path NULL: no file,
 * the environment alone (PATRONI_CONFIGURATION, else the PATRONI_*
 * variables), as patronictl without a config file. */
int config_load_ctl(const char *path, char *const *envp, Config **ret, ConfigDiags *diags);

/* Same, from a string; `name` stands for the file name in messages. */
int config_load_string(const char *name, const char *text, char *const *envp, Config **ret,
                       ConfigDiags *diags);

Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

void config_diags_done(ConfigDiags *d);
/* Writes each diag as "error: TEXT" / "warning: TEXT" lines. */
void config_diags_print(const ConfigDiags *d, FILE *out);

const char *config_watchdog_mode_to_string(ConfigWatchdogMode m);
ConfigWatchdogMode config_watchdog_mode_from_string(const char *s);

/* Returns the value of `key` in a ConfigMap, or NULL. */
const char *config_map_get(const ConfigMap *m, const char *key);

/* The PostgreSQL port: from postgresql.listen, else from
 * postgresql.connect_address. Returns 1..65535, or -EINVAL when neither
 * gives one. */
int config_postgresql_port(const Config *c);

/* Prints a few human-readable lines (scope, name, namespace, etcd hosts,
 * data_dir, addresses, timing) for `dbagent --validate-config`. Never
 * prints a secret. Does not log. */
void config_summary(const Config *c, FILE *out);
