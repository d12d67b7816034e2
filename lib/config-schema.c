/* The configuration schema: every key dbha reads, with Patroni's defaults,
 * plus the value syntax the rows use and the schema-driven constructor and
 * destructor of Config. The loader that walks YAML and the environment
 * against this table is lib/config.c. */
#include "config-schema.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cmdsplit.h"
#include "config.h"
#include "log.h"
#include "logfmt.h"

static const char *check_host_port(const char *s);
static const char *check_etcd_host(const char *s);
static const char *check_etcd_url(const char *s);
static const char *check_rest_listen(const char *s);
static const char *check_bootstrap_method(const char *s);
static const char *check_sslmode(const char *s);
static const char *check_gssencmode(const char *s);
static const char *check_channel_binding(const char *s);
static const char *check_listen(const char *s);
static const char *check_protocol(const char *s);
static const char *check_bool(const char *s);
static const char *check_log_level(const char *s);
static const char *check_log_dir(const char *s);
static const char *check_log_format(const char *s);
static const char *check_command(const char *s);
static const char *check_nonempty_path(const char *s);
static const char *check_database(const char *s);
static const char *check_config_base_name(const char *s);
static const char *check_watchdog_driver(const char *s);
static const char *check_verify_client(const char *s);
static const char *check_allowlist_entry(const char *s);

static const char *const initdb_forbidden[] = { "pgdata",    "D", "nosync",  "N", "pwfile",
                                                "sync-only", "S", "version", "V", NULL };
static const char *const basebackup_forbidden[] = { "pgdata",     "D", "format",      "F",
                                                    "wal-method", "X", "xlog-method", NULL };

#define R      CONFIG_F_RELOADABLE
#define REQ    CONFIG_F_REQUIRED
#define SECRET CONFIG_F_SECRET
#define OFF(f) offsetof(Config, f)
#define SEC(p, f)                                                                                  \
    {                                                                                              \
        .path = p, .type = CONFIG_TYPE_SECTION, .flags = (f) | R                                   \
    }
#define STR(p, fld, f, def, chk, e)                                                                \
    {                                                                                              \
        .path = p, .type = CONFIG_TYPE_STRING, .offset = OFF(fld), .flags = f, .def_str = def,     \
        .check = chk, .env = e                                                                     \
    }
#define INT(p, fld, f, def, lo, hi)                                                                \
    {                                                                                              \
        .path = p, .type = CONFIG_TYPE_INT, .offset = OFF(fld), .flags = f, .def_int = def,        \
        .min = lo, .max = hi                                                                       \
    }
#define BOOL(p, fld, f, def)                                                                       \
    {                                                                                              \
        .path = p, .type = CONFIG_TYPE_BOOL, .offset = OFF(fld), .flags = f, .def_int = def        \
    }
#define LIST(p, t, fld, f)                                                                         \
    {                                                                                              \
        .path = p, .type = t, .offset = OFF(fld), .flags = f                                       \
    }

/* Every key dbha reads. Times are seconds, as in Patroni. */
const ConfigRow config_schema[] = {
    STR("scope", scope, REQ, NULL, NULL, "SCOPE"),
    STR("namespace", namespace, 0, "/service/", NULL, "NAMESPACE"),
    STR("name", name, REQ, NULL, NULL, "NAME"),

    SEC("restapi", 0),
    STR("restapi.listen", restapi.listen, R, NULL, check_rest_listen, "RESTAPI_LISTEN"),
    STR("restapi.connect_address", restapi.connect_address, REQ | R, NULL, check_host_port,
        "RESTAPI_CONNECT_ADDRESS"),
    SEC("restapi.authentication", 0),
    STR("restapi.authentication.username", restapi.authentication.username, R, NULL, NULL,
        "RESTAPI_USERNAME"),
    STR("restapi.authentication.password", restapi.authentication.password, R | SECRET, NULL, NULL,
        "RESTAPI_PASSWORD"),
    STR("restapi.certfile", restapi.certfile, R, NULL, NULL, "RESTAPI_CERTFILE"),
    STR("restapi.keyfile", restapi.keyfile, R, NULL, NULL, "RESTAPI_KEYFILE"),
    STR("restapi.keyfile_password", restapi.keyfile_password, R | SECRET, NULL, NULL,
        "RESTAPI_KEYFILE_PASSWORD"),
    STR("restapi.cafile", restapi.cafile, R, NULL, NULL, "RESTAPI_CAFILE"),
    /* from the environment as Patroni's _parse_dict: "{A: b}" or "A: b" */
    { .path = "restapi.http_extra_headers",
      .type = CONFIG_TYPE_MAP,
      .offset = OFF(restapi.http_extra_headers),
      .flags = CONFIG_F_HTTP_HEADERS,
      .env = "RESTAPI_HTTP_EXTRA_HEADERS" },
    { .path = "restapi.https_extra_headers",
      .type = CONFIG_TYPE_MAP,
      .offset = OFF(restapi.https_extra_headers),
      .flags = CONFIG_F_HTTP_HEADERS,
      .env = "RESTAPI_HTTPS_EXTRA_HEADERS" },
    STR("restapi.verify_client", restapi.verify_client, 0, NULL, check_verify_client,
        "RESTAPI_VERIFY_CLIENT"),
    /* from the environment as Patroni's _parse_list: "[a, b]", "a, b" */
    { .path = "restapi.allowlist",
      .type = CONFIG_TYPE_STRV,
      .offset = OFF(restapi.allowlist),
      .check = check_allowlist_entry,
      .env = "RESTAPI_ALLOWLIST" },
    { .path = "restapi.allowlist_include_members",
      .type = CONFIG_TYPE_BOOL,
      .offset = OFF(restapi.allowlist_include_members),
      .def_int = false,
      .env = "RESTAPI_ALLOWLIST_INCLUDE_MEMBERS" },

    /* Patroni's agent and patronictl talk to REST APIs with these, each
     * falling back to restapi's cafile/certfile/keyfile (PatroniRequest). */
    SEC("ctl", 0),
    STR("ctl.cacert", ctl.cacert, 0, NULL, NULL, "CTL_CACERT"),
    STR("ctl.certfile", ctl.certfile, 0, NULL, NULL, "CTL_CERTFILE"),
    STR("ctl.keyfile", ctl.keyfile, 0, NULL, NULL, "CTL_KEYFILE"),
    STR("ctl.keyfile_password", ctl.keyfile_password, SECRET, NULL, NULL, "CTL_KEYFILE_PASSWORD"),
    { .path = "ctl.insecure",
      .type = CONFIG_TYPE_BOOL,
      .offset = OFF(ctl.insecure),
      .def_int = false,
      .env = "CTL_INSECURE" },
    SEC("ctl.authentication", 0),
    STR("ctl.authentication.username", ctl.authentication.username, 0, NULL, NULL, "CTL_USERNAME"),
    STR("ctl.authentication.password", ctl.authentication.password, SECRET, NULL, NULL,
        "CTL_PASSWORD"),
    STR("ctl.auth", ctl.auth, SECRET, NULL, NULL, NULL),

    SEC("etcd3", 0),
    { .path = "etcd3.hosts",
      .type = CONFIG_TYPE_HOSTS,
      .offset = OFF(etcd3.hosts),
      .check = check_etcd_host,
      .env = "ETCD3_HOSTS" },
    STR("etcd3.host", etcd3.host, 0, NULL, check_etcd_host, "ETCD3_HOST"),
    STR("etcd3.url", etcd3.url, 0, NULL, check_etcd_url, "ETCD3_URL"),
    STR("etcd3.proxy", etcd3.proxy, 0, NULL, check_etcd_url, "ETCD3_PROXY"),
    { .path = "etcd3.port",
      .type = CONFIG_TYPE_INT,
      .offset = OFF(etcd3.port),
      .def_int = 2379,
      .min = 1,
      .max = 65535,
      .env = "ETCD3_PORT" },
    STR("etcd3.protocol", etcd3.protocol, 0, "http", check_protocol, "ETCD3_PROTOCOL"),
    STR("etcd3.username", etcd3.username, 0, NULL, NULL, "ETCD3_USERNAME"),
    STR("etcd3.password", etcd3.password, SECRET, NULL, NULL, "ETCD3_PASSWORD"),
    STR("etcd3.cacert", etcd3.cacert, 0, NULL, NULL, "ETCD3_CACERT"),
    STR("etcd3.cert", etcd3.cert, 0, NULL, NULL, "ETCD3_CERT"),
    STR("etcd3.key", etcd3.key, 0, NULL, NULL, "ETCD3_KEY"),
    BOOL("etcd3.use_proxies", etcd3.use_proxies, 0, false),
    BOOL("etcd3.mirror_leader_v2", etcd3.mirror_leader_v2, 0, false),

    SEC("bootstrap", 0),
    SEC("bootstrap.dcs", 0),
    /* etcd refuses leases shorter than 2 s; a day bounds the sums below. */
    INT("bootstrap.dcs.ttl", bootstrap.dcs.ttl, R, 30, 2, 86400),
    INT("bootstrap.dcs.loop_wait", bootstrap.dcs.loop_wait, R, 10, 1, 86400),
    INT("bootstrap.dcs.retry_timeout", bootstrap.dcs.retry_timeout, R, 10, 1, 86400),
    INT("bootstrap.dcs.maximum_lag_on_failover", bootstrap.dcs.maximum_lag_on_failover, R, 1048576,
        0, INT64_MAX),
    INT("bootstrap.dcs.primary_start_timeout", bootstrap.dcs.primary_start_timeout, R, 300, 0,
        INT32_MAX),
    INT("bootstrap.dcs.primary_stop_timeout", bootstrap.dcs.primary_stop_timeout, R, 0, 0,
        INT32_MAX),
    /* Patroni's older names, read when the new ones are absent */
    INT("bootstrap.dcs.master_start_timeout", alias.master_start_timeout, R, 300, 0, INT32_MAX),
    INT("bootstrap.dcs.master_stop_timeout", alias.master_stop_timeout, R, 0, 0, INT32_MAX),
    INT("bootstrap.dcs.max_timelines_history", bootstrap.dcs.max_timelines_history, R, 0, 0,
        INT32_MAX),
    INT("bootstrap.dcs.maximum_lag_on_syncnode", bootstrap.dcs.maximum_lag_on_syncnode, R, -1, -1,
        INT64_MAX),
    BOOL("bootstrap.dcs.synchronous_mode", bootstrap.dcs.synchronous_mode, R, false),
    BOOL("bootstrap.dcs.synchronous_mode_strict", bootstrap.dcs.synchronous_mode_strict, R, false),
    INT("bootstrap.dcs.synchronous_node_count", bootstrap.dcs.synchronous_node_count, R, 1, 1,
        INT32_MAX),
    BOOL("bootstrap.dcs.failsafe_mode", bootstrap.dcs.failsafe_mode, R, false),
    BOOL("bootstrap.dcs.check_timeline", bootstrap.dcs.check_timeline, R, false),
    BOOL("bootstrap.dcs.pause", bootstrap.dcs.pause, R, false),
    SEC("bootstrap.dcs.postgresql", 0),
    BOOL("bootstrap.dcs.postgresql.use_pg_rewind", bootstrap.dcs.use_pg_rewind, R, false),
    BOOL("bootstrap.dcs.postgresql.use_slots", bootstrap.dcs.use_slots, R, true),
    LIST("bootstrap.dcs.postgresql.parameters", CONFIG_TYPE_MAP, bootstrap.dcs.parameters,
         R | CONFIG_F_PG_NAMES),
    LIST("bootstrap.dcs.postgresql.pg_hba", CONFIG_TYPE_STRV, bootstrap.dcs.pg_hba, R),
    LIST("bootstrap.dcs.postgresql.pg_ident", CONFIG_TYPE_STRV, bootstrap.dcs.pg_ident, R),
    LIST("bootstrap.dcs.postgresql.recovery_conf", CONFIG_TYPE_MAP, bootstrap.dcs.recovery_conf,
         R | CONFIG_F_RECOVERY),
    /* kept as written and stored in the config key, read from there */
    LIST("bootstrap.dcs.slots", CONFIG_TYPE_JSON, bootstrap.dcs.slots, R),
    LIST("bootstrap.dcs.ignore_slots", CONFIG_TYPE_JSON, bootstrap.dcs.ignore_slots, R),
    LIST("bootstrap.dcs.permanent_slots", CONFIG_TYPE_JSON, alias.permanent_slots, R),
    LIST("bootstrap.dcs.permanent_replication_slots", CONFIG_TYPE_JSON,
         alias.permanent_replication_slots, R),
    LIST("bootstrap.dcs.standby_cluster", CONFIG_TYPE_JSON, bootstrap.dcs.standby_cluster, R),
    { .path = "bootstrap.initdb",
      .type = CONFIG_TYPE_OPTIONS,
      .offset = OFF(bootstrap.initdb),
      .flags = R,
      .forbidden = initdb_forbidden },
    LIST("bootstrap.pg_hba", CONFIG_TYPE_STRV, bootstrap.pg_hba, R),
    LIST("bootstrap.users", CONFIG_TYPE_JSON, bootstrap.users, R | SECRET),
    STR("bootstrap.post_bootstrap", bootstrap.post_bootstrap, R, NULL, check_command, NULL),
    STR("bootstrap.post_init", alias.post_init, R, NULL, check_command, NULL),
    /* initdb, or a custom method: a section of that name (config.c) */
    STR("bootstrap.method", bootstrap.method, R, "initdb", check_bootstrap_method, NULL),

    SEC("postgresql", 0),
    STR("postgresql.listen", postgresql.listen, 0, NULL, check_listen, "POSTGRESQL_LISTEN"),
    STR("postgresql.connect_address", postgresql.connect_address, REQ | R, NULL, check_host_port,
        "POSTGRESQL_CONNECT_ADDRESS"),
    STR("postgresql.data_dir", postgresql.data_dir, REQ, NULL, NULL, "POSTGRESQL_DATA_DIR"),
    STR("postgresql.bin_dir", postgresql.bin_dir, R, NULL, NULL, "POSTGRESQL_BIN_DIR"),
    STR("postgresql.pgpass", postgresql.pgpass, R, NULL, NULL, "POSTGRESQL_PGPASS"),
    STR("postgresql.use_pg_rewind", postgresql.use_pg_rewind, R, NULL, check_bool, NULL),
    STR("postgresql.database", postgresql.database, 0, "postgres", check_database, NULL),
    STR("postgresql.krbsrvname", postgresql.krbsrvname, 0, NULL, NULL, NULL),
    STR("postgresql.proxy_address", postgresql.proxy_address, R, NULL, check_host_port,
        "POSTGRESQL_PROXY_ADDRESS"),
    STR("postgresql.config_dir", postgresql.config_dir, 0, NULL, check_nonempty_path,
        "POSTGRESQL_CONFIG_DIR"),
    STR("postgresql.config_base_name", postgresql.config_base_name, 0, "postgresql",
        check_config_base_name, NULL),
    STR("postgresql.custom_conf", postgresql.custom_conf, R, NULL, check_nonempty_path, NULL),
    STR("postgresql.use_unix_socket", postgresql.use_unix_socket, 0, NULL, check_bool, NULL),
    SEC("postgresql.authentication", 0),
    SEC("postgresql.authentication.superuser", 0),
    STR("postgresql.authentication.superuser.username", postgresql.superuser.username, R, NULL,
        NULL, "SUPERUSER_USERNAME"),
    STR("postgresql.authentication.superuser.password", postgresql.superuser.password, R | SECRET,
        NULL, NULL, "SUPERUSER_PASSWORD"),
    SEC("postgresql.authentication.replication", 0),
    STR("postgresql.authentication.replication.username", postgresql.replication.username, R, NULL,
        NULL, "REPLICATION_USERNAME"),
    STR("postgresql.authentication.replication.password", postgresql.replication.password,
        R | SECRET, NULL, NULL, "REPLICATION_PASSWORD"),
    SEC("postgresql.authentication.rewind", 0),
    STR("postgresql.authentication.rewind.username", postgresql.rewind.username, R, NULL, NULL,
        "REWIND_USERNAME"),
    STR("postgresql.authentication.rewind.password", postgresql.rewind.password, R | SECRET, NULL,
        NULL, "REWIND_PASSWORD"),
/* Patroni's libpq settings of each user (sslpassword is a secret) */
#define USER_LIBPQ(user, USER)                                                                     \
    STR("postgresql.authentication." #user ".sslmode", postgresql.user.sslmode, R, NULL,           \
        check_sslmode, #USER "_SSLMODE"),                                                          \
        STR("postgresql.authentication." #user ".sslcert", postgresql.user.sslcert, R, NULL, NULL, \
            #USER "_SSLCERT"),                                                                     \
        STR("postgresql.authentication." #user ".sslkey", postgresql.user.sslkey, R, NULL, NULL,   \
            #USER "_SSLKEY"),                                                                      \
        STR("postgresql.authentication." #user ".sslpassword", postgresql.user.sslpassword,        \
            R | SECRET, NULL, NULL, #USER "_SSLPASSWORD"),                                         \
        STR("postgresql.authentication." #user ".sslrootcert", postgresql.user.sslrootcert, R,     \
            NULL, NULL, #USER "_SSLROOTCERT"),                                                     \
        STR("postgresql.authentication." #user ".sslcrl", postgresql.user.sslcrl, R, NULL, NULL,   \
            #USER "_SSLCRL"),                                                                      \
        STR("postgresql.authentication." #user ".sslcrldir", postgresql.user.sslcrldir, R, NULL,   \
            NULL, #USER "_SSLCRLDIR"),                                                             \
        STR("postgresql.authentication." #user ".gssencmode", postgresql.user.gssencmode, R, NULL, \
            check_gssencmode, #USER "_GSSENCMODE"),                                                \
        STR("postgresql.authentication." #user ".channel_binding",                                 \
            postgresql.user.channel_binding, R, NULL, check_channel_binding,                       \
            #USER "_CHANNEL_BINDING")
    USER_LIBPQ(superuser, SUPERUSER),
    USER_LIBPQ(replication, REPLICATION),
    USER_LIBPQ(rewind, REWIND),
#undef USER_LIBPQ
    LIST("postgresql.parameters", CONFIG_TYPE_MAP, postgresql.parameters, R | CONFIG_F_PG_NAMES),
    LIST("postgresql.pg_hba", CONFIG_TYPE_STRV, postgresql.pg_hba, R),
    LIST("postgresql.pg_ident", CONFIG_TYPE_STRV, postgresql.pg_ident, R),
    LIST("postgresql.recovery_conf", CONFIG_TYPE_MAP, postgresql.recovery_conf,
         R | CONFIG_F_RECOVERY),
    LIST("postgresql.callbacks", CONFIG_TYPE_MAP, postgresql.callbacks, R),
    /* dbha's own: Patroni lets a callback run for ever */
    INT("postgresql.callback_timeout", postgresql.callback_timeout, R, 60, 1, 86400),
    STR("postgresql.pre_promote", postgresql.pre_promote, R, NULL, check_command, NULL),
    STR("postgresql.before_stop", postgresql.before_stop, R, NULL, check_command, NULL),
    INT("postgresql.pg_ctl_timeout", postgresql.pg_ctl_timeout, R, 60, 1, 86400),
    LIST("postgresql.create_replica_methods", CONFIG_TYPE_STRV, postgresql.create_replica_methods,
         R),
    LIST("postgresql.create_replica_method", CONFIG_TYPE_STRV, alias.create_replica_method, R),
    STR("postgresql.name", alias.postgresql_name, 0, NULL, NULL, NULL),
    { .path = "postgresql.basebackup",
      .type = CONFIG_TYPE_OPTIONS,
      .offset = OFF(postgresql.basebackup),
      .flags = R,
      .forbidden = basebackup_forbidden },

    { .path = "tags",
      .type = CONFIG_TYPE_SECTION,
      .offset = OFF(tags.custom),
      .flags = R | CONFIG_F_OPEN },
    BOOL("tags.nofailover", tags.nofailover, R, false),
    BOOL("tags.noloadbalance", tags.noloadbalance, R, false),
    BOOL("tags.clonefrom", tags.clonefrom, R, false),
    BOOL("tags.nosync", tags.nosync, R, false),
    STR("tags.replicatefrom", tags.replicatefrom, R, NULL, NULL, NULL),
    INT("tags.failover_priority", tags.failover_priority, R, 1, 0, INT32_MAX),

    SEC("watchdog", 0),
    { .path = "watchdog.mode",
      .type = CONFIG_TYPE_WATCHDOG,
      .offset = OFF(watchdog.mode),
      .flags = R,
      .def_int = CONFIG_WATCHDOG_AUTOMATIC },
    STR("watchdog.device", watchdog.device, R, "/dev/watchdog", NULL, NULL),
    /* Patroni's: "default" (a Linux watchdog device) or "testing" (a FIFO
     * that takes the timeout as "Ctimeout=N\n", for test harnesses) */
    STR("watchdog.driver", watchdog.driver, R, "default", check_watchdog_driver, NULL),
    /* -1 is Patroni's "half of ttl". */
    INT("watchdog.safety_margin", watchdog.safety_margin, R, 5, -1, 86400),

    SEC("log", 0),
    STR("log.level", log.level, R, "INFO", check_log_level, "LOG_LEVEL"),
    STR("log.dir", log.dir, R, NULL, check_log_dir, "LOG_DIR"),
    STR("log.format", log.format, R, NULL, check_log_format, "LOG_FORMAT"),
    STR("log.dateformat", log.dateformat, R, NULL, NULL, "LOG_DATEFORMAT"),
    { .path = "log.file_size",
      .type = CONFIG_TYPE_INT,
      .offset = OFF(log.file_size),
      .flags = R,
      .def_int = 25000000,
      .min = 0,
      .max = INT64_MAX,
      .env = "LOG_FILE_SIZE" },
    { .path = "log.file_num",
      .type = CONFIG_TYPE_INT,
      .offset = OFF(log.file_num),
      .flags = R,
      .def_int = 4,
      .min = 0,
      .max = 1000000,
      .env = "LOG_FILE_NUM" },
};

#undef R
#undef REQ
#undef SECRET
#undef OFF
#undef SEC
#undef STR
#undef INT
#undef BOOL
#undef LIST

const size_t config_schema_n = ELEMENTSOF(config_schema);
_Static_assert(ELEMENTSOF(config_schema) <= CONFIG_SCHEMA_MAX, "raise CONFIG_SCHEMA_MAX");

/* Keys Patroni knows that dbha does not use: warned about as unknown, but
 * without a misleading "did you mean". */
static const char *const patroni_only_keys[] = {
    "restapi.request_queue_size",
    "restapi.server_tokens",
    "bootstrap.dcs.member_slots_ttl",
    "postgresql.remove_data_directory_on_rewind_failure",
    "postgresql.remove_data_directory_on_diverged_timelines",
    "bootstrap.dcs.postgresql.remove_data_directory_on_rewind_failure",
    "bootstrap.dcs.postgresql.remove_data_directory_on_diverged_timelines",
    "log.type",
};

/* Keys Patroni honours that dbha cannot honour yet, where ignoring them
 * would change what the cluster does: refused, with what to do. */
static const struct {
    const char *path, *why;
} refused_keys[] = {
    { "etcd",
      "dbha talks to etcd's v3 API only: rename the section \"etcd\" to \"etcd3\" (etcd 3.4 "
      "and later serve it; keys written through the v2 API are not seen through v3)" },
    { "consul", "dbha keeps the cluster's state in etcd only: replace \"consul\" with an "
                "\"etcd3\" section (hosts: HOST:PORT,...)" },
    { "zookeeper", "dbha keeps the cluster's state in etcd only: replace \"zookeeper\" with an "
                   "\"etcd3\" section (hosts: HOST:PORT,...)" },
    { "exhibitor", "dbha keeps the cluster's state in etcd only: replace \"exhibitor\" with an "
                   "\"etcd3\" section (hosts: HOST:PORT,...)" },
    { "kubernetes", "dbha keeps the cluster's state in etcd only: replace \"kubernetes\" with an "
                    "\"etcd3\" section (hosts: HOST:PORT,...)" },
    { "raft", "dbha keeps the cluster's state in etcd only: replace \"raft\" with an \"etcd3\" "
              "section (hosts: HOST:PORT,...)" },
    { "citus", "Citus clusters are not supported by dbha: remove the section, or keep Patroni "
               "for this cluster" },
    { "etcd3.srv",
      "dbha does not look etcd's endpoints up in DNS SRV records, so it would talk to other "
      "endpoints than Patroni: list them under etcd3.hosts (HOST:PORT,...) and remove this key" },
    { "etcd3.srv_suffix",
      "dbha does not look etcd's endpoints up in DNS SRV records, so it would talk to other "
      "endpoints than Patroni: list them under etcd3.hosts (HOST:PORT,...) and remove this key" },
    { "etcd3.discovery_srv",
      "dbha does not look etcd's endpoints up in DNS SRV records, so it would talk to other "
      "endpoints than Patroni: list them under etcd3.hosts (HOST:PORT,...) and remove this key" },
    { "etcd3.srv_domain",
      "dbha does not look etcd's endpoints up in DNS SRV records, so it would talk to other "
      "endpoints than Patroni: list them under etcd3.hosts (HOST:PORT,...) and remove this key" },
    { "restapi.ciphers",
      "the REST API's TLS library (GnuTLS, through libmicrohttpd) does not read OpenSSL cipher "
      "lists, and ignoring it would offer ciphers you excluded: remove it to use GnuTLS's "
      "default priorities, or keep Patroni for this cluster" },
    { "restapi.auth", "the old \"user:password\" form is not read: write it as "
                      "restapi.authentication.username and restapi.authentication.password" },
    { "postgresql.superuser", "the old form is not read: move username and password under "
                              "postgresql.authentication.superuser" },
    { "postgresql.replication", "the old form is not read: move username and password under "
                                "postgresql.authentication.replication" },
    { "postgresql.pg_rewind", "the old form is not read: move username and password under "
                              "postgresql.authentication.rewind and set "
                              "bootstrap.dcs.postgresql.use_pg_rewind: true (the old form turned "
                              "it on)" },
};

const char *config_refused_reason(const char *path)
{
    for (size_t i = 0; i < ELEMENTSOF(refused_keys); i++) {
        if (strcmp(refused_keys[i].path, path) == 0) {
            return refused_keys[i].why;
        }
    }
    return NULL;
}

const char *config_noop_note(const char *path)
{
    static const struct {
        const char *path, *note;
    } notes[] = {
        { "log.traceback_level", "dbha writes no Python tracebacks" },
        { "postgresql.use_unix_socket_repl",
          "dbha opens no replication connection to its own server (Patroni's reads the "
          "replica's timeline with IDENTIFY_SYSTEM; dbha's probe query reads it)" },
        { "log.max_queue_size",
          "dbha writes each line when it is logged and keeps no queue of lines" },
        { "log.loggers",
          "dbha has no Python loggers (urllib3, patroni.ha, ...) whose levels it could set; "
          "log.level sets the agent's" },
    };
    for (size_t i = 0; i < ELEMENTSOF(notes); i++) {
        if (strcmp(notes[i].path, path) == 0) {
            return notes[i].note;
        }
    }
    return NULL;
}

const char *config_stricter_note(const char *path, const char *value)
{
    bool on = false;
    if (!value || config_parse_bool(value, &on) < 0) {
        return NULL;
    }
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    if (strcmp(leaf, "remove_data_directory_on_rewind_failure") != 0 &&
        strcmp(leaf, "remove_data_directory_on_diverged_timelines") != 0) {
        return NULL;
    }
    if (!config_is_patroni_only(path)) {
        return NULL;
    }
    if (on) {
        return "the data directory is moved aside (renamed to DATA_DIR.dbha-old-TIME, kept, never "
               "deleted) and the member cloned anew, where Patroni would delete it";
    }
    /* false: Patroni keeps the data and "tries to follow the new leader",
     * which diverged data cannot do: the member stays a replica that never
     * streams until an operator reinitializes it, one copy of the data
     * fewer until then */
    return "the data directory is never deleted, as false asks: it is moved aside (renamed to "
           "DATA_DIR.dbha-old-TIME, kept) and the member cloned anew, where Patroni would leave "
           "it following a leader it cannot stream from until an operator reinitializes it";
}

const char *config_patroni_only_note(const char *path)
{
    static const char aside[] =
        "dbha moves the data directory aside (renamed, kept, never deleted) and clones the member "
        "anew whatever this says; with false Patroni would leave the member down for an operator";
    static const struct {
        const char *path, *note;
    } notes[] = {
        { "postgresql.remove_data_directory_on_rewind_failure", aside },
        { "postgresql.remove_data_directory_on_diverged_timelines", aside },
        { "bootstrap.dcs.postgresql.remove_data_directory_on_rewind_failure", aside },
        { "bootstrap.dcs.postgresql.remove_data_directory_on_diverged_timelines", aside },
    };
    for (size_t i = 0; i < ELEMENTSOF(notes); i++) {
        if (strcmp(notes[i].path, path) == 0) {
            return notes[i].note;
        }
    }
    return NULL;
}

bool config_is_patroni_only(const char *path)
{
    for (size_t i = 0; i < ELEMENTSOF(patroni_only_keys); i++) {
        if (strcmp(patroni_only_keys[i], path) == 0) {
            return true;
        }
    }
    return false;
}

static const char *const watchdog_mode_table[_CONFIG_WATCHDOG_MAX] = {
    [CONFIG_WATCHDOG_OFF] = "off",
    [CONFIG_WATCHDOG_AUTOMATIC] = "automatic",
    [CONFIG_WATCHDOG_REQUIRED] = "required",
};

const char *config_watchdog_mode_to_string(ConfigWatchdogMode m)
{
    if (m < 0 || m >= _CONFIG_WATCHDOG_MAX) {
        return NULL;
    }
    return watchdog_mode_table[m];
}

/* Patroni's spellings: a YAML false, "off"/"disable(d)", "auto(matic)",
 * "require(d)", any case. */
ConfigWatchdogMode config_watchdog_mode_from_string(const char *s)
{
    static const struct {
        const char *name;
        ConfigWatchdogMode mode;
    } aliases[] = {
        { "off", CONFIG_WATCHDOG_OFF },          { "false", CONFIG_WATCHDOG_OFF },
        { "no", CONFIG_WATCHDOG_OFF },           { "disable", CONFIG_WATCHDOG_OFF },
        { "disabled", CONFIG_WATCHDOG_OFF },     { "automatic", CONFIG_WATCHDOG_AUTOMATIC },
        { "auto", CONFIG_WATCHDOG_AUTOMATIC },   { "required", CONFIG_WATCHDOG_REQUIRED },
        { "require", CONFIG_WATCHDOG_REQUIRED },
    };

    if (!s) {
        return _CONFIG_WATCHDOG_INVALID;
    }
    for (size_t i = 0; i < ELEMENTSOF(aliases); i++) {
        if (strcasecmp(s, aliases[i].name) == 0) {
            return aliases[i].mode;
        }
    }
    return _CONFIG_WATCHDOG_INVALID;
}

/* ---- value checks ----------------------------------------------------- */

/* Parses a port of 1..65535 from the whole of s. */
int config_parse_port(const char *s)
{
    int port = 0;

    if (!*s || strlen(s) > 5) {
        return -EINVAL;
    }
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            return -EINVAL;
        }
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535 ? port : -ERANGE;
}

/* A host: a name or address without blanks, commas or slashes, or a
 * bracketed IPv6 address. [s, end) */
static bool host_is_valid(const char *s, const char *end)
{
    if (s >= end) {
        return false;
    }
    if (*s == '[') {
        return end - s > 2 && end[-1] == ']';
    }
    for (const char *p = s; p < end; p++) {
        if (isspace((unsigned char)*p) || *p == ',' || *p == '/' || *p == '[' || *p == ']') {
            return false;
        }
    }
    return true;
}

/* Splits at the port colon: the last ':' (after a "]" for IPv6). */
const char *config_port_colon(const char *s)
{
    const char *bracket = strrchr(s, ']');
    const char *colon = strrchr(bracket ? bracket : s, ':');

    return colon;
}

static const char *check_address(const char *s, bool many)
{
    const char *colon = config_port_colon(s);
    const char *expected = many ? "\"address[,address...]:port\"" : "\"host:port\"";

    if (!colon) {
        return expected;
    }
    if (many) {
        const char *start = s;
        for (;;) {
            const char *comma = memchr(start, ',', (size_t)(colon - start));
            const char *end = comma ? comma : colon;
            while (start < end && *start == ' ') {
                start++;
            }
            if (!host_is_valid(start, end)) {
                return expected;
            }
            if (!comma) {
                break;
            }
            start = comma + 1;
        }
    } else if (!host_is_valid(s, colon)) {
        return expected;
    }
    int r = config_parse_port(colon + 1);
    if (r == -ERANGE) {
        return "a port between 1 and 65535";
    }
    return r < 0 ? expected : NULL;
}

static const char *check_host_port(const char *s)
{
    return check_address(s, false);
}

/* "host:port", or "host" (Patroni's etcd3.port, else 2379, is added) */
static const char *check_etcd_host(const char *s)
{
    if (config_port_colon(s) || !*s) {
        return check_address(s, false);
    }
    return host_is_valid(s, s + strlen(s)) ? NULL : "\"host:port\" or \"host\"";
}

static const char *check_etcd_url(const char *s)
{
    ConfigEtcdUrl u;
    if (config_etcd_url_parse(s, &u) < 0) {
        return "an http:// or https:// URL of one etcd endpoint (http://HOST:PORT)";
    }
    config_etcd_url_done(&u);
    return NULL;
}

int config_etcd_url_parse(const char *s, ConfigEtcdUrl *ret)
{
    *ret = (ConfigEtcdUrl){ 0 };
    CURLU *h = curl_url();
    if (!h) {
        return -ENOMEM;
    }
    int r = -EINVAL;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *password = NULL;
    CURLUcode pc;
    if (curl_url_set(h, CURLUPART_URL, s, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        goto done;
    }
    pc = curl_url_get(h, CURLUPART_PORT, &port, 0);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PORT) {
        goto done;
    }
    (void)curl_url_get(h, CURLUPART_USER, &user, CURLU_URLDECODE);
    (void)curl_url_get(h, CURLUPART_PASSWORD, &password, CURLU_URLDECODE);
    ret->username = user ? strdup(user) : NULL;
    ret->password = password ? strdup(password) : NULL;
    curl_free(user);
    curl_free(password);
    ret->protocol = strdup(scheme);
    /* Patroni's: r.port or 2379, whatever the scheme */
    if (asprintf(&ret->host_port, "%s:%s", host, port ? port : "2379") < 0) {
        ret->host_port = NULL;
    }
    r = ret->protocol && ret->host_port && (!user || ret->username) && (!password || ret->password)
            ? 0
            : -ENOMEM;
    if (r < 0) {
        config_etcd_url_done(ret);
    }
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(h);
    return r;
}

void config_etcd_url_done(ConfigEtcdUrl *u)
{
    free(u->protocol);
    free(u->host_port);
    free(u->username);
    if (u->password) {
        explicit_bzero(u->password, strlen(u->password));
    }
    free(u->password);
    *u = (ConfigEtcdUrl){ 0 };
}

static const char *one_of(const char *s, const char *const *names, const char *expected)
{
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            return NULL;
        }
    }
    return expected;
}

static const char *check_sslmode(const char *s)
{
    static const char *const names[] = { "disable",   "allow",       "prefer", "require",
                                         "verify-ca", "verify-full", NULL };
    return one_of(
        s, names,
        "one of disable, allow, prefer, require, verify-ca, verify-full (libpq's sslmode)");
}

static const char *check_gssencmode(const char *s)
{
    static const char *const names[] = { "disable", "prefer", "require", NULL };
    return one_of(s, names, "one of disable, prefer, require (libpq's gssencmode)");
}

static const char *check_channel_binding(const char *s)
{
    static const char *const names[] = { "disable", "prefer", "require", NULL };
    return one_of(s, names, "one of disable, prefer, require (libpq's channel_binding)");
}

/* initdb, or the name of a bootstrap.<name> section (checked when the
 * whole file is read: check_bootstrap_method_section in config.c) */
static const char *check_bootstrap_method(const char *s)
{
    return *s && !strchr(s, '.') ? NULL : "\"initdb\" or the name of a section under bootstrap";
}

/* Patroni's ":8008" (no host) listens on every IPv4 address; "*:8008" too. */
static const char *check_rest_listen(const char *s)
{
    const char *colon = config_port_colon(s);
    if (colon && (colon == s || (colon == s + 1 && *s == '*'))) {
        int r = config_parse_port(colon + 1);
        return r == -ERANGE ? "a port between 1 and 65535" : r < 0 ? "\"host:port\"" : NULL;
    }
    return check_address(s, false);
}

static const char *check_listen(const char *s)
{
    return check_address(s, true);
}

static const char *check_protocol(const char *s)
{
    return strcmp(s, "http") == 0 || strcmp(s, "https") == 0 ? NULL : "one of http, https";
}

static const char *check_watchdog_driver(const char *s)
{
    return strcmp(s, "default") == 0 || strcmp(s, "testing") == 0 ? NULL
                                                                  : "\"default\" or \"testing\"";
}

/* Patroni lowercases it; any case. */
static const char *check_verify_client(const char *s)
{
    return strcasecmp(s, "none") == 0 || strcasecmp(s, "optional") == 0 ||
                   strcasecmp(s, "required") == 0
               ? NULL
               : "one of none, optional, required";
}

/* Patroni's rule: with a '/' a network (host bits may be set), otherwise an
 * address or a host name (resolved when the REST API starts). */
static const char *check_allowlist_entry(const char *s)
{
    static const char *const what = "an address, a network ADDRESS/BITS or a host name";
    const char *slash = strchr(s, '/');
    if (!slash) {
        return host_is_valid(s, s + strlen(s)) && s[0] != '[' ? NULL : what;
    }
    char addr[INET6_ADDRSTRLEN];
    size_t n = (size_t)(slash - s);
    if (n == 0 || n >= sizeof(addr)) {
        return what;
    }
    memcpy(addr, s, n);
    addr[n] = '\0';
    unsigned char buf[sizeof(struct in6_addr)];
    int max = inet_pton(AF_INET, addr, buf) == 1    ? 32
              : inet_pton(AF_INET6, addr, buf) == 1 ? 128
                                                    : -1;
    const char *bits = slash + 1;
    if (max < 0 || !isdigit((unsigned char)bits[0]) || strlen(bits) > 3) {
        return what;
    }
    for (const char *p = bits; *p; p++) {
        if (!isdigit((unsigned char)*p)) {
            return what;
        }
    }
    return atoi(bits) <= max ? NULL : what;
}

static const char *check_bool(const char *s)
{
    bool b;
    return config_parse_bool(s, &b) == 0 ? NULL : "a boolean";
}

static const char *check_log_level(const char *s)
{
    return log_level_from_string(s) >= 0 ? NULL : "one of DEBUG, INFO, WARNING, ERROR, CRITICAL";
}

/* A command line as Patroni splits it (shlex): at least one word, quotes
 * closed. */
static const char *check_command(const char *s)
{
    char **v = NULL;
    int n = cmdsplit(s, &v);
    cmdsplit_free(v);
    return n > 0 ? NULL : "a command line (words as a shell splits them, quotes closed)";
}

static const char *check_log_dir(const char *s)
{
    return *s ? NULL : "a directory for patroni.log (or no log.dir: stderr or the journal)";
}

static const char *check_database(const char *s)
{
    return *s ? NULL : "a database name (or no key: postgres)";
}

static const char *check_nonempty_path(const char *s)
{
    return *s ? NULL : "a path (or no key: the default)";
}

/* The names of the files derive from it: NAME.conf, NAME.base.conf. */
static const char *check_config_base_name(const char *s)
{
    if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        return "a file name without \"/\" (postgresql.conf is NAME.conf)";
    }
    return NULL;
}

static const char *check_log_format(const char *s)
{
    LogFmt *f = NULL;
    const char *why = NULL;
    int r = logfmt_parse(s, NULL, &f, &why);
    logfmt_free(f);
    return r == -EINVAL ? why : NULL;
}

/* PyYAML's YAML 1.1 booleans; any case, as the issue asks. */
int config_parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = { "true", "yes", "on" }, *const no[] = { "false", "no",
                                                                              "off" };

    for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

/* A decimal integer as YAML writes it: optional sign, digits, '_' allowed
 * between digits. -ERANGE beyond int64. */
int config_parse_int(const char *s, int64_t *ret)
{
    bool neg = false;
    uint64_t v = 0;
    const char *p = s;

    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    if (!isdigit((unsigned char)*p)) {
        return -EINVAL;
    }
    bool range = false;
    for (; *p; p++) {
        if (*p == '_' && isdigit((unsigned char)p[-1])) {
            continue;
        }
        if (!isdigit((unsigned char)*p)) {
            return -EINVAL;
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            range = true;
        } else {
            v = v * 10 + d;
        }
    }
    if (range || v > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
        return -ERANGE;
    }
    *ret = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* ---- containers ------------------------------------------------------- */

void config_strv_done(ConfigStrv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->items[i]);
    }
    free(v->items);
    *v = (ConfigStrv){ 0 };
}

/* Appends s, taking ownership of it (freed on failure). */
int config_strv_push(ConfigStrv *v, char *s)
{
    if (!s) {
        return -ENOMEM;
    }
    char **items = realloc(v->items, (v->n + 1) * sizeof(*items));
    if (!items) {
        free(s);
        return -ENOMEM;
    }
    v->items = items;
    v->items[v->n++] = s;
    return 0;
}

void config_map_done(ConfigMap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    *m = (ConfigMap){ 0 };
}

int config_map_push(ConfigMap *m, const char *key, const char *value)
{
    ConfigKv kv = { .key = strdup(key), .value = strdup(value) };
    ConfigKv *items = NULL;

    if (kv.key && kv.value) {
        items = realloc(m->items, (m->n + 1) * sizeof(*items));
    }
    if (!items) {
        free(kv.key);
        free(kv.value);
        return -ENOMEM;
    }
    m->items = items;
    m->items[m->n++] = kv;
    return 0;
}

const char *config_map_get(const ConfigMap *m, const char *key)
{
    if (!m || !key) {
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->items[i].key, key) == 0) {
            return m->items[i].value;
        }
    }
    return NULL;
}

Config *config_free(Config *c)
{
    if (!c) {
        return NULL;
    }
    for (size_t i = 0; i < config_schema_n; i++) {
        const ConfigRow *row = &config_schema[i];
        switch (row->type) {
        case CONFIG_TYPE_STRING:
            free(*CONFIG_FIELD(c, row, char *));
            break;
        case CONFIG_TYPE_HOSTS:
        case CONFIG_TYPE_STRV:
        case CONFIG_TYPE_OPTIONS:
            config_strv_done(CONFIG_FIELD(c, row, ConfigStrv));
            break;
        case CONFIG_TYPE_MAP:
            config_map_done(CONFIG_FIELD(c, row, ConfigMap));
            break;
        case CONFIG_TYPE_JSON:
            json_decref(*CONFIG_FIELD(c, row, json_t *));
            break;
        case CONFIG_TYPE_SECTION:
            if (row->flags & CONFIG_F_OPEN) {
                config_map_done(CONFIG_FIELD(c, row, ConfigMap));
            }
            break;
        default:
            break;
        }
    }
    for (size_t i = 0; i < c->postgresql.n_replica_methods; i++) {
        ConfigReplicaMethod *m = &c->postgresql.replica_methods[i];
        free(m->name);
        free(m->command);
        config_map_done(&m->options);
    }
    free(c->postgresql.replica_methods);
    if (c->bootstrap.custom) {
        free(c->bootstrap.custom->name);
        free(c->bootstrap.custom->command);
        config_map_done(&c->bootstrap.custom->recovery_conf);
        free(c->bootstrap.custom);
    }
    free(c->source_file);
    free(c);
    return NULL;
}

int config_new_defaults(Config **ret)
{
    _cleanup_(config_freep) Config *c = calloc(1, sizeof(*c));

    if (!c) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < config_schema_n; i++) {
        const ConfigRow *row = &config_schema[i];
        switch (row->type) {
        case CONFIG_TYPE_STRING:
            if (row->def_str) {
                *CONFIG_FIELD(c, row, char *) = strdup(row->def_str);
                if (!*CONFIG_FIELD(c, row, char *)) {
                    return -ENOMEM;
                }
            }
            break;
        case CONFIG_TYPE_INT:
            *CONFIG_FIELD(c, row, int64_t) = row->def_int;
            break;
        case CONFIG_TYPE_BOOL:
            *CONFIG_FIELD(c, row, bool) = row->def_int != 0;
            break;
        case CONFIG_TYPE_WATCHDOG:
            *CONFIG_FIELD(c, row, ConfigWatchdogMode) = (ConfigWatchdogMode)row->def_int;
            break;
        default:
            break;
        }
    }
    *ret = TAKE_PTR(c);
    return 0;
}

const ConfigRow *config_schema_find(const char *path)
{
    for (size_t i = 0; i < config_schema_n; i++) {
        if (strcmp(config_schema[i].path, path) == 0) {
            return &config_schema[i];
        }
    }
    return NULL;
}

json_t *config_scalar_json(const char *s)
{
    static const char *const yes[] = {
        "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"
    };
    static const char *const no[] = { "no",    "No",  "NO",  "false", "False",
                                      "FALSE", "off", "Off", "OFF" };
    for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            return json_true();
        }
        if (strcmp(s, no[i]) == 0) {
            return json_false();
        }
    }
    const char *p = s + (*s == '-' || *s == '+');
    size_t digits = strspn(p, "0123456789");
    if (digits > 0 && p[digits] == '\0' && (digits == 1 || p[0] != '0')) {
        int64_t v;
        if (config_parse_int(s, &v) == 0) {
            return json_integer(v);
        }
    }
    /* [-+]?[0-9]*\.[0-9]*([eE][-+][0-9]+)? with at least one digit */
    if (p[digits] == '.') {
        const char *q = p + digits + 1;
        size_t frac = strspn(q, "0123456789");
        q += frac;
        if (digits + frac > 0 && (*q == 'e' || *q == 'E') && (q[1] == '-' || q[1] == '+') &&
            strspn(q + 2, "0123456789") > 0) {
            q += 2 + strspn(q + 2, "0123456789");
        }
        if (digits + frac > 0 && *q == '\0') {
            return json_real(strtod(s, NULL));
        }
    }
    return json_string(s);
}
