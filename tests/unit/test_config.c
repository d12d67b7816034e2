/* Unit tests for lib/config.c: a table of broken configs with their exact
 * diagnostics, defaults, a full config, environment overrides, secrets kept
 * out of messages, and the example configs under configs/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config-schema.h"
#include "config.h"

#ifndef DBHA_CONFIG_DOC
#define DBHA_CONFIG_DOC "docs/configuration.md"
#endif
#ifndef DBHA_CONFIGS_DIR
#define DBHA_CONFIGS_DIR "configs" /* `make unit` runs from the repo root */
#endif

/* The smallest valid config, 9 lines; rows below append to it. */
#define TOP  "scope: demo\nname: n1\n"
#define REST "restapi:\n  connect_address: 127.0.0.1:8008\n"
#define ETCD "etcd3:\n  hosts: 127.0.0.1:2379\n"
#define PG   "postgresql:\n  data_dir: /d\n  connect_address: 127.0.0.1:5432\n"
#define BASE TOP REST ETCD PG

#define SECRET "s3cr3t-XYZ"

#define NAME_HINT                                                                                  \
    "is not a PostgreSQL parameter name: use letters, digits and \"_\" (not a digit first), with " \
    "at most one \".\" (extension.setting)"

typedef struct BrokenRow {
    const char *name;
    const char *yaml;
    ConfigSeverity severity;
    const char *message; /* without "test.yml:LINE:COL: " */
    unsigned line, column;
} BrokenRow;

#define ERR(n, y, m, l, c)                                                                         \
    {                                                                                              \
        n, y, CONFIG_ERROR, m, l, c                                                                \
    }
#define WARN(n, y, m, l, c)                                                                        \
    {                                                                                              \
        n, y, CONFIG_WARNING, m, l, c                                                              \
    }
#define NOTE(n, y, m, l, c)                                                                        \
    {                                                                                              \
        n, y, CONFIG_NOTE, m, l, c                                                                 \
    }

static const BrokenRow broken[] = {
    /* bootstrap.users, each problem at its place */
    ERR("users_bad_option",
        BASE "bootstrap:\n  users:\n    admin:\n      options: [createdb, nosuchthing]\n",
        "\"bootstrap.users.admin.options\": \"nosuchthing\" is not a role option dbha passes "
        "to CREATE ROLE: one of SUPERUSER, CREATEDB, CREATEROLE, INHERIT, LOGIN, REPLICATION, "
        "BYPASSRLS, their NO... forms, or CONNECTION LIMIT n",
        13, 27),
    ERR("users_sql_in_option",
        BASE "bootstrap:\n  users:\n    admin:\n      options: ['login; drop table x']\n",
        "\"bootstrap.users.admin.options\": \"login; drop table x\" is not a role option dbha "
        "passes to CREATE ROLE: one of SUPERUSER, CREATEDB, CREATEROLE, INHERIT, LOGIN, "
        "REPLICATION, BYPASSRLS, their NO... forms, or CONNECTION LIMIT n",
        13, 17),
    ERR("users_not_mapping", BASE "bootstrap:\n  users: [a]\n",
        "\"bootstrap.users\": expected a mapping of role names to {password, options}", 11, 10),
    ERR("users_role_not_mapping", BASE "bootstrap:\n  users:\n    admin: secret\n",
        "\"bootstrap.users.admin\": expected a mapping with \"password\" and \"options\"", 12, 12),
    WARN("users_unknown_field", BASE "bootstrap:\n  users:\n    admin:\n      pasword: x\n",
         "unknown key \"bootstrap.users.admin.pasword\" (Patroni reads only \"password\" and "
         "\"options\")",
         13, 7),
    /* wrong types */
    ERR("ttl_not_integer", BASE "bootstrap:\n  dcs:\n    ttl: abc\n",
        "expected an integer for \"bootstrap.dcs.ttl\", got \"abc\"", 12, 10),
    ERR("ttl_float", BASE "bootstrap:\n  dcs:\n    ttl: 30.5\n",
        "expected an integer for \"bootstrap.dcs.ttl\", got \"30.5\"", 12, 10),
    ERR("retry_timeout_mapping", BASE "bootstrap:\n  dcs:\n    retry_timeout: {a: 1}\n",
        "expected an integer for \"bootstrap.dcs.retry_timeout\", got a mapping", 12, 20),
    ERR("bool_not_boolean", BASE "bootstrap:\n  dcs:\n    synchronous_mode: maybe\n",
        "expected a boolean for \"bootstrap.dcs.synchronous_mode\", got \"maybe\"", 12, 23),
    ERR("string_is_sequence", "scope: [a, b]\nname: n1\n" REST ETCD PG,
        "expected a string for \"scope\", got a sequence", 1, 8),
    ERR("section_is_scalar", BASE "watchdog: abc\n",
        "expected a mapping for \"watchdog\", got \"abc\"", 10, 11),
    ERR("pg_hba_not_list", BASE "  pg_hba: host all all 0.0.0.0/0 md5\n",
        "expected a list of strings for \"postgresql.pg_hba\", got \"host all all 0.0.0.0/0 md5\"",
        10, 11),
    ERR("pg_hba_item_mapping", BASE "  pg_hba:\n    - {a: b}\n",
        "expected a string for \"postgresql.pg_hba\", got a mapping", 11, 7),
    ERR("parameter_not_scalar", BASE "  parameters:\n    shared_buffers: [1, 2]\n",
        "expected a scalar for \"postgresql.parameters.shared_buffers\", got a sequence", 11, 21),
    ERR("parameter_bad_name", BASE "  parameters:\n    work-mem: 4MB\n",
        "in \"postgresql.parameters\": \"work-mem\" " NAME_HINT, 11, 5),
    ERR("dcs_parameter_newline_name",
        BASE
        "bootstrap:\n  dcs:\n    postgresql:\n      parameters:\n        \"x\\nhba_file\": 1\n",
        "in \"bootstrap.dcs.postgresql.parameters\": \"x\\nhba_file\" " NAME_HINT, 14, 9),
    ERR("custom_tag_not_scalar", BASE "tags:\n  zone: {a: b}\n",
        "expected a scalar for \"tags.zone\", got a mapping", 11, 9),
    ERR("hosts_mapping", TOP REST "etcd3:\n  hosts: {a: b}\n" PG,
        "expected a list or a comma-separated string of \"host:port\" for \"etcd3.hosts\", "
        "got a mapping",
        6, 10),
    ERR("non_scalar_key", BASE "? [a]\n: b\n",
        "expected a scalar key at the top level, got a sequence", 10, 3),
    /* out of range */
    ERR("ttl_below_etcd_minimum", BASE "bootstrap:\n  dcs:\n    ttl: 1\n",
        "expected an integer between 2 and 86400 for \"bootstrap.dcs.ttl\", got \"1\"", 12, 10),
    ERR("loop_wait_zero", BASE "bootstrap:\n  dcs:\n    loop_wait: 0\n",
        "expected an integer between 1 and 86400 for \"bootstrap.dcs.loop_wait\", got \"0\"", 12,
        16),
    ERR("failover_priority_negative", BASE "tags:\n  failover_priority: -1\n",
        "expected an integer >= 0 for \"tags.failover_priority\", got \"-1\"", 11, 22),
    ERR("sync_node_count_zero", BASE "bootstrap:\n  dcs:\n    synchronous_node_count: 0\n",
        "expected an integer >= 1 for \"bootstrap.dcs.synchronous_node_count\", got \"0\"", 12, 29),
    ERR("lag_overflows_int64",
        BASE "bootstrap:\n  dcs:\n    maximum_lag_on_failover: 99999999999999999999\n",
        "expected an integer >= 0 for \"bootstrap.dcs.maximum_lag_on_failover\", "
        "got \"99999999999999999999\"",
        12, 30),
    ERR("sync_node_count_huge", BASE "bootstrap:\n  dcs:\n    synchronous_node_count: 3000000000\n",
        "expected an integer between 1 and 2147483647 for "
        "\"bootstrap.dcs.synchronous_node_count\", "
        "got \"3000000000\"",
        12, 29),
    ERR("port_out_of_range", TOP "restapi:\n  connect_address: 127.0.0.1:70000\n" ETCD PG,
        "expected a port between 1 and 65535 for \"restapi.connect_address\", "
        "got \"127.0.0.1:70000\"",
        4, 20),
    /* bad enums */
    ERR("watchdog_mode", BASE "watchdog:\n  mode: sometimes\n",
        "expected one of off, automatic, required for \"watchdog.mode\", got \"sometimes\"", 11, 9),
    ERR("watchdog_driver", BASE "watchdog:\n  driver: softdog\n",
        "expected \"default\" or \"testing\" for \"watchdog.driver\", got \"softdog\"", 11, 11),
    ERR("log_level", BASE "log:\n  level: LOUD\n",
        "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL for \"log.level\", got \"LOUD\"", 11,
        10),
    ERR("log_format_unknown_field", BASE "log:\n  format: '%(nosuch)s'\n",
        "expected a Python logging format whose fields are asctime, created, filename, funcName, "
        "levelname, levelno, lineno, message, module, msecs, msg, name, pathname, process, "
        "processName, relativeCreated, thread or threadName, each as %(field) then flags, width, "
        "precision and one of the conversions s r a d i u o x X e E f F g G for \"log.format\", "
        "got \"%(nosuch)s\"",
        11, 11),
    ERR("recovery_conf_unknown", BASE "  recovery_conf:\n    restore_comand: cp\n",
        "in \"postgresql.recovery_conf\": \"restore_comand\" is not a recovery setting of "
        "PostgreSQL 13 or later: use restore_command, archive_cleanup_command, "
        "recovery_end_command, recovery_min_apply_delay or promote_trigger_file (other settings "
        "go under parameters)",
        11, 5),
    WARN("recovery_conf_dropped", BASE "  recovery_conf:\n    recovery_target_action: promote\n",
         "\"postgresql.recovery_conf.recovery_target_action\" is not written: a replica follows "
         "its leader to the end of the WAL (Patroni drops recovery_target* for replicas too; a "
         "point-in-time target belongs to bootstrap.<method>.recovery_conf)",
         11, 5),
    ERR("config_base_name_path", BASE "  config_base_name: a/b\n",
        "expected a file name without \"/\" (postgresql.conf is NAME.conf) for "
        "\"postgresql.config_base_name\", got \"a/b\"",
        10, 21),
    ERR("config_dir_empty", BASE "  config_dir: ''\n",
        "expected a path (or no key: the default) for \"postgresql.config_dir\", got \"\"", 10, 15),
    ERR("etcd_protocol", TOP REST "etcd3:\n  protocol: ftp\n  hosts: 127.0.0.1:2379\n" PG,
        "expected one of http, https for \"etcd3.protocol\", got \"ftp\"", 6, 13),
    /* bad addresses */
    ERR("connect_address_no_port",
        TOP REST ETCD "postgresql:\n  data_dir: /d\n  connect_address: 127.0.0.1\n",
        "expected \"host:port\" for \"postgresql.connect_address\", got \"127.0.0.1\"", 9, 20),
    ERR("connect_address_empty_host",
        TOP REST ETCD "postgresql:\n  data_dir: /d\n  connect_address: :5432\n",
        "expected \"host:port\" for \"postgresql.connect_address\", got \":5432\"", 9, 20),
    ERR("listen_empty_address", BASE "  listen: 127.0.0.1,:5432\n",
        "expected \"address[,address...]:port\" for \"postgresql.listen\", got \"127.0.0.1,:5432\"",
        10, 11),
    ERR("etcd_hosts_list_item",
        TOP REST "etcd3:\n  hosts:\n    - 127.0.0.1:2379\n    - no host\n" PG,
        "expected \"host:port\" or \"host\" for \"etcd3.hosts\", got \"no host\"", 8, 7),
    ERR("etcd_hosts_string_item", TOP REST "etcd3:\n  hosts: 127.0.0.1:2379,h2:x\n" PG,
        "expected \"host:port\" for \"etcd3.hosts\", got \"h2:x\"", 6, 10),
    ERR("etcd_host_bad", TOP REST "etcd3:\n  host: local/host\n" PG,
        "expected \"host:port\" or \"host\" for \"etcd3.host\", got \"local/host\"", 6, 9),
    /* duplicates */
    ERR("duplicate_top_level", BASE "scope: other\n",
        "duplicate key \"scope\" (first given at line 1)", 10, 1),
    ERR("duplicate_nested", BASE "bootstrap:\n  dcs:\n    ttl: 30\n    ttl: 40\n",
        "duplicate key \"bootstrap.dcs.ttl\" (first given at line 12)", 13, 5),
    ERR("duplicate_parameter", BASE "  parameters:\n    work_mem: 4MB\n    work_mem: 8MB\n",
        "duplicate key \"postgresql.parameters.work_mem\" (first given at line 11)", 12, 5),
    /* YAML itself */
    ERR("syntax_unclosed_flow", BASE "tags: [a, b\n",
        "YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at "
        "line 10, column 7)",
        11, 1),
    ERR("syntax_bad_indent", "scope: demo\n  name: n1\n",
        "YAML syntax error: mapping values are not allowed in this context", 2, 7),
    ERR("syntax_tab", "scope: demo\n\tname: n1\n",
        "YAML syntax error: found a tab character that violates indentation (while scanning a "
        "plain scalar at line 1, column 8)",
        2, 1),
    ERR("syntax_undefined_alias", BASE "tags:\n  zone: *nowhere\n",
        "YAML syntax error: found undefined alias", 11, 9),
    ERR("syntax_invalid_utf8", "scope: \xff\n", "YAML syntax error: invalid leading UTF-8 octet", 1,
        8),
    ERR("document_is_sequence", "- a\n- b\n", "expected a mapping at the top level, got a sequence",
        1, 1),
    ERR("document_is_scalar", "hello\n", "expected a mapping at the top level, got \"hello\"", 1,
        1),
    ERR("two_documents", BASE "---\nscope: other\n",
        "expected a single YAML document, found another", 10, 1),
    /* required keys */
    ERR("missing_scope", "name: n1\n" REST ETCD PG, "missing required key \"scope\"", 1, 1),
    ERR("missing_data_dir", TOP REST ETCD "postgresql:\n  connect_address: 127.0.0.1:5432\n",
        "missing required key \"postgresql.data_dir\"", 7, 1),
    ERR("missing_restapi_connect", TOP "restapi:\n  listen: 0.0.0.0:8008\n" ETCD PG,
        "missing required key \"restapi.connect_address\"", 3, 1),
    ERR("missing_restapi_section", TOP ETCD PG, "missing required key \"restapi.connect_address\"",
        1, 1),
    ERR("missing_etcd_hosts", TOP REST "etcd3:\n  protocol: http\n" PG,
        "missing required key \"etcd3.hosts\" (or \"etcd3.host\")", 5, 1),
    ERR("missing_etcd3", TOP REST PG, "missing required key \"etcd3.hosts\" (or \"etcd3.host\")", 1,
        1),
    ERR("null_scope", "scope:\nname: n1\n" REST ETCD PG, "no value for required key \"scope\"", 1,
        1),
    ERR("empty_name", "scope: demo\nname: ''\n" REST ETCD PG,
        "expected a non-empty string for \"name\", got \"\"", 2, 7),
    /* timing */
    ERR("timing_ttl_too_short", BASE "bootstrap:\n  dcs:\n    ttl: 20\n",
        "\"bootstrap.dcs.ttl\" (20) must be at least loop_wait + 2 * retry_timeout "
        "(10 + 2 * 10 = 30)",
        12, 10),
    ERR("timing_without_ttl", BASE "bootstrap:\n  dcs:\n    loop_wait: 5\n    retry_timeout: 15\n",
        "\"bootstrap.dcs.ttl\" (30) must be at least loop_wait + 2 * retry_timeout "
        "(5 + 2 * 15 = 35)",
        12, 16),
    /* initdb / basebackup options */
    ERR("initdb_two_key_item",
        BASE "bootstrap:\n  initdb:\n    - data-checksums\n    - {a: 1, b: 2}\n",
        "expected a string or a single \"key: value\" mapping for \"bootstrap.initdb\", got a "
        "mapping",
        13, 7),
    ERR("initdb_forbidden", BASE "bootstrap:\n  initdb:\n    - pgdata: /x\n",
        "option \"pgdata\" is not allowed in \"bootstrap.initdb\" (dbha sets it)", 12, 7),
    ERR("basebackup_scalar", BASE "  basebackup: fast\n",
        "expected a list or a mapping of options for \"postgresql.basebackup\", got \"fast\"", 10,
        15),
    /* secrets: the value never shows */
    ERR("password_mapping",
        BASE "  authentication:\n    superuser:\n      password: {" SECRET ": 1}\n",
        "expected a string for \"postgresql.authentication.superuser.password\"", 12, 17),
    ERR("etcd_password_sequence",
        TOP REST "etcd3:\n  hosts: 127.0.0.1:2379\n  password: [" SECRET "]\n" PG,
        "expected a string for \"etcd3.password\"", 7, 13),
    /* unknown keys are warnings and loading succeeds */
    WARN("unknown_typo", BASE "  dta_dir: /x\n",
         "unknown key \"postgresql.dta_dir\" (did you mean \"postgresql.data_dir\"?)", 10, 3),
    WARN("unknown_typo_nested", BASE "bootstrap:\n  dcs:\n    loop_wiat: 10\n",
         "unknown key \"bootstrap.dcs.loop_wiat\" (did you mean \"bootstrap.dcs.loop_wait\"?)", 12,
         5),
    WARN("unknown_swapped_letters", BASE "watchdog:\n  mdoe: 'off'\n",
         "unknown key \"watchdog.mdoe\" (did you mean \"watchdog.mode\"?)", 11, 3),
    /* Patroni's other stores (and etcd's v2 API) are refused, naming etcd3 */
    ERR("etcd_v2", BASE "etcd:\n  hosts: 127.0.0.1:2379\n",
        "\"etcd\" is not supported: dbha talks to etcd's v3 API only: rename the section "
        "\"etcd\" to \"etcd3\" (etcd 3.4 and later serve it; keys written through the v2 API are "
        "not seen through v3)",
        10, 1),
    ERR("consul", BASE "consul:\n  host: 127.0.0.1:8500\n",
        "\"consul\" is not supported: dbha keeps the cluster's state in etcd only: replace "
        "\"consul\" with an \"etcd3\" section (hosts: HOST:PORT,...)",
        10, 1),
    ERR("etcd3_srv", TOP REST "etcd3:\n  hosts: 127.0.0.1:2379\n  srv: example.org\n" PG,
        "\"etcd3.srv\" is not supported: dbha does not look etcd's endpoints up in DNS SRV "
        "records, so it would talk to other endpoints than Patroni: list them under etcd3.hosts "
        "(HOST:PORT,...) and remove this key",
        7, 3),
    ERR("old_superuser", BASE "  superuser:\n    username: postgres\n",
        "\"postgresql.superuser\" is not supported: the old form is not read: move username and "
        "password under postgresql.authentication.superuser",
        10, 3),
    ERR("extra_header_name",
        TOP "restapi:\n  connect_address: 127.0.0.1:8008\n"
            "  http_extra_headers:\n    'X Bad': 1\n" ETCD PG,
        "in \"restapi.http_extra_headers\": \"X Bad\" is not an HTTP header name: use letters, "
        "digits and !#$%&'*+-.^_`|~ only",
        6, 5),
    ERR("extra_header_value",
        TOP "restapi:\n  connect_address: 127.0.0.1:8008\n"
            "  https_extra_headers:\n    X-A: \"a\\r\\nSet-Cookie: x\"\n" ETCD PG,
        "\"restapi.https_extra_headers.X-A\": a header value must not hold a line break or "
        "another control character (it would end the header)",
        6, 10),
    ERR("restapi_ciphers",
        TOP "restapi:\n  connect_address: 127.0.0.1:8008\n  ciphers: HIGH\n" ETCD PG,
        "\"restapi.ciphers\" is not supported: the REST API's TLS library (GnuTLS, through "
        "libmicrohttpd) does not read OpenSSL cipher lists, and ignoring it would offer ciphers "
        "you excluded: remove it to use GnuTLS's default priorities, or keep Patroni for this "
        "cluster",
        5, 3),
    ERR("citus", BASE "citus:\n  group: 0\n",
        "\"citus\" is not supported: Citus clusters are not supported by dbha: remove the "
        "section, or keep Patroni for this cluster",
        10, 1),
    ERR("standby_cluster_port",
        BASE "bootstrap:\n  dcs:\n    standby_cluster:\n      host: 127.0.0.1\n      port: 70000\n",
        "bootstrap.dcs.standby_cluster.port: must be a port between 1 and 65535", 14, 13),
    ERR("standby_cluster_methods",
        BASE "bootstrap:\n  dcs:\n    standby_cluster:\n      host: 127.0.0.1\n"
             "      create_replica_methods: basebackup\n",
        "bootstrap.dcs.standby_cluster.create_replica_methods: must be a list of strings", 14, 31),
    ERR("pre_promote_unsplittable", BASE "  pre_promote: \"/bin/fence 'x\"\n",
        "expected a command line (words as a shell splits them, quotes closed) for "
        "\"postgresql.pre_promote\", got \"/bin/fence 'x\"",
        10, 16),
    ERR("failsafe_on", BASE "bootstrap:\n  dcs:\n    failsafe_mode: true\n",
        "\"bootstrap.dcs.failsafe_mode\": failsafe mode is not supported by dbha yet: a primary "
        "that cannot renew its leader lease is stopped (fenced) whatever this says; leave it off",
        12, 20),
    ERR("replica_method_sequence",
        BASE "  create_replica_methods: [wal_e]\n  wal_e:\n    command: restore\n"
             "    envdir: [a]\n",
        "expected a scalar for \"postgresql.wal_e.envdir\", got a sequence (it is passed to the "
        "method's command as --envdir=VALUE)",
        13, 13),
    ERR("replica_method_command_quote",
        BASE "  create_replica_methods: [wal_e, basebackup]\n  wal_e:\n    command: \"a 'b\"\n",
        "expected a command line for \"postgresql.wal_e.command\" (words as a shell splits them, "
        "quotes closed)",
        12, 14),
    ERR("replica_method_is_a_setting", BASE "  create_replica_methods: [parameters]\n",
        "\"postgresql.create_replica_methods\": \"parameters\" cannot name a replica method: "
        "\"postgresql.parameters\" is a setting, not a method's section",
        10, 27),
    ERR("bootstrap_method_without_section", BASE "bootstrap:\n  method: pgbackrest\n",
        "\"bootstrap.method\": \"pgbackrest\" needs a section \"bootstrap.pgbackrest\" with a "
        "\"command\" (Patroni would run initdb instead): give it one, or use method: initdb",
        11, 11),
    ERR("bootstrap_method_standby_mode",
        BASE "bootstrap:\n  method: r\n  r:\n    command: restore\n    recovery_conf:\n"
             "      standby_mode: on\n",
        "\"bootstrap.r.recovery_conf.standby_mode\": a bootstrap that stays a standby never ends "
        "(the cluster would have no primary): remove it, and end the recovery with "
        "recovery_target_action: promote",
        15, 7),
    ERR("bootstrap_method_unknown_recovery",
        BASE "bootstrap:\n  method: r\n  r:\n    command: restore\n    recovery_conf:\n"
             "      work_mem: 4MB\n",
        "in \"bootstrap.r.recovery_conf\": \"work_mem\" is not a recovery setting of PostgreSQL "
        "13 or later: use restore_command, recovery_target_time (or another recovery_target_*), "
        "recovery_target_action, recovery_end_command, archive_cleanup_command, "
        "recovery_min_apply_delay or promote_trigger_file",
        15, 7),
    WARN("unknown_no_suggestion", BASE "frobnicate: 1\n", "unknown key \"frobnicate\"", 10, 1),
    WARN("unknown_dotted", BASE "postgresql.data_dir: /x\n", "unknown key \"postgresql.data_dir\"",
         10, 1),
    NOTE("patroni_log_loggers", BASE "log:\n  loggers:\n    patroni.ha: DEBUG\n",
         "\"log.loggers\" is accepted and does nothing: dbha has no Python loggers (urllib3, "
         "patroni.ha, ...) whose levels it could set; log.level sets the agent's",
         11, 3),
    WARN("patroni_later_version", BASE "log:\n  type: json\n",
         "unknown key \"log.type\" (a Patroni setting dbha does not use)", 11, 3),
    ERR("ctl_auth_not_user_password", BASE "ctl:\n  auth: nocolon\n",
        "ctl.auth must be \"USER:PASSWORD\" (or write ctl.authentication's username and "
        "password)",
        11, 9),
    ERR("patroni_kubernetes", BASE "kubernetes: {}\n",
        "\"kubernetes\" is not supported: dbha keeps the cluster's state in etcd only: replace "
        "\"kubernetes\" with an \"etcd3\" section (hosts: HOST:PORT,...)",
        10, 1),
    NOTE("remove_data_directory_true_is_stricter",
         BASE "bootstrap:\n  dcs:\n    postgresql:\n"
              "      remove_data_directory_on_diverged_timelines: true\n",
         "\"bootstrap.dcs.postgresql.remove_data_directory_on_diverged_timelines\" is honoured "
         "the stricter way: the data directory is moved aside (renamed to "
         "DATA_DIR.dbha-old-TIME, kept, never deleted) and the member cloned anew, where Patroni "
         "would delete it",
         13, 7),
    NOTE("remove_data_directory_false_keeps_the_data",
         BASE "  remove_data_directory_on_rewind_failure: false\n",
         "\"postgresql.remove_data_directory_on_rewind_failure\" is honoured the stricter way: "
         "the data directory is never deleted, as false asks: it is moved aside (renamed to "
         "DATA_DIR.dbha-old-TIME, kept) and the member cloned anew, where Patroni would leave it "
         "following a leader it cannot stream from until an operator reinitializes it",
         10, 3),
    WARN("remove_data_directory_not_a_boolean",
         BASE "  remove_data_directory_on_rewind_failure: sometimes\n",
         "\"postgresql.remove_data_directory_on_rewind_failure\" is not read: dbha moves the data "
         "directory aside (renamed, kept, never deleted) and clones the member anew whatever this "
         "says; with false Patroni would leave the member down for an operator",
         10, 3),
    WARN("post_init_and_post_bootstrap",
         BASE "bootstrap:\n  post_init: /bin/false\n  post_bootstrap: /bin/true\n",
         "\"bootstrap.post_init\" is ignored because \"bootstrap.post_bootstrap\" is set", 11, 3),
    ERR("post_bootstrap_unclosed_quote", BASE "bootstrap:\n  post_bootstrap: \"/bin/x 'a\"\n",
        "expected a command line (words as a shell splits them, quotes closed) for "
        "\"bootstrap.post_bootstrap\", got \"/bin/x 'a\"",
        11, 19),
    /* the REST API's gates (issue #14) */
    ERR("verify_client", TOP REST "  verify_client: sometimes\n" ETCD PG,
        "expected one of none, optional, required for \"restapi.verify_client\", got "
        "\"sometimes\"",
        5, 18),
    ERR("allowlist_bad_network",
        TOP REST "  allowlist:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n" ETCD PG,
        "expected an address, a network ADDRESS/BITS or a host name for \"restapi.allowlist\", "
        "got \"10.0.0.0/33\"",
        7, 7),
    ERR("allowlist_not_list", TOP REST "  allowlist: 10.0.0.1\n" ETCD PG,
        "expected a list of strings for \"restapi.allowlist\", got \"10.0.0.1\"", 5, 14),
    ERR("allowlist_include_members", TOP REST "  allowlist_include_members: sure\n" ETCD PG,
        "expected a boolean for \"restapi.allowlist_include_members\", got \"sure\"", 5, 30),
    WARN("verify_client_without_https", TOP REST "  verify_client: required\n" ETCD PG,
         "\"restapi.verify_client\" is ignored without \"restapi.certfile\"", 5, 18),
    NOTE("patroni_use_unix_socket_repl", BASE "  use_unix_socket_repl: true\n",
         "\"postgresql.use_unix_socket_repl\" is accepted and does nothing: dbha opens no "
         "replication connection to its own server (Patroni's reads the replica's timeline with "
         "IDENTIFY_SYSTEM; dbha's probe query reads it)",
         10, 3),
    WARN("patroni_later_version", BASE "  before_stop: /bin/true\nlog:\n  type: json\n",
         "unknown key \"log.type\" (a Patroni setting dbha does not use)", 12, 3),
    ERR("before_stop_unclosed_quote", BASE "  before_stop: \"/bin/x 'a\"\n",
        "expected a command line (words as a shell splits them, quotes closed) for "
        "\"postgresql.before_stop\", got \"/bin/x 'a\"",
        10, 16),
    WARN("etcd_host_and_hosts",
         TOP REST "etcd3:\n  hosts: 127.0.0.1:2379\n  host: 127.0.0.2:2379\n" PG,
         "\"etcd3.host\" is ignored because \"etcd3.hosts\" is set", 7, 3),
    /* Patroni's other spellings lose to the keys themselves, with a word */
    WARN("master_and_primary_start_timeout",
         BASE "bootstrap:\n  dcs:\n    master_start_timeout: 5\n    primary_start_timeout: 9\n",
         "\"bootstrap.dcs.master_start_timeout\" is ignored because "
         "\"bootstrap.dcs.primary_start_timeout\" is set",
         12, 5),
    WARN("postgresql_name_and_name", BASE "  name: other\n",
         "\"postgresql.name\" is ignored because \"name\" is set", 10, 3),
    /* permanent slots and ignore_slots: each problem at its own place */
    ERR("slot_logical_without_plugin",
        BASE "bootstrap:\n  dcs:\n    slots:\n      arch: null\n      cdc:\n        type: logical\n"
             "        database: app\n",
        "bootstrap.dcs.slots.cdc: a logical slot needs \"database\" and \"plugin\" (non-empty "
        "strings) to be created",
        14, 7),
    ERR("slot_bad_name", BASE "bootstrap:\n  dcs:\n    slots:\n      Arch-1: {type: physical}\n",
        "bootstrap.dcs.slots.Arch-1: a slot name may only contain lower case letters, numbers and "
        "the underscore, at most 63 of them",
        13, 7),
    ERR("slots_not_a_mapping", BASE "bootstrap:\n  dcs:\n    slots: [a]\n",
        "bootstrap.dcs.slots: must be an object of slot names", 12, 12),
    ERR("ignore_slots_misspelt",
        BASE "bootstrap:\n  dcs:\n    ignore_slots:\n      - name: a\n      - nmae: barman\n",
        "bootstrap.dcs.ignore_slots[1]: unknown field \"nmae\" (name, type, database or plugin)",
        14, 9),
    ERR("slots_duplicate_slot", BASE "bootstrap:\n  dcs:\n    slots:\n      a:\n      a:\n",
        "duplicate key \"a\"", 14, 7),
};

static void print_diags(const ConfigDiags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        print_error("    %s: %s\n", d->items[i].severity == CONFIG_ERROR ? "error" : "warning",
                    d->items[i].text);
    }
}

static void test_broken_table(void **state)
{
    size_t failures = 0;

    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        const BrokenRow *row = &broken[i];
        ConfigDiags d = { 0 };
        Config *c = NULL;
        char want[1024];

        snprintf(want, sizeof(want), "test.yml:%u:%u: %s", row->line, row->column, row->message);
        int r = config_load_string("test.yml", row->yaml, NULL, &c, &d);
        bool ok = d.n == 1 && d.items[0].severity == row->severity &&
                  strcmp(d.items[0].text, want) == 0 && d.items[0].line == row->line &&
                  d.items[0].column == row->column &&
                  (row->severity == CONFIG_ERROR ? r == -EINVAL && !c : r == 0 && c);
        if (!ok) {
            print_error("row \"%s\": r=%d, want exactly:\n    %s: %s\ngot:\n", row->name, r,
                        row->severity == CONFIG_ERROR ? "error" : "warning", want);
            print_diags(&d);
            failures++;
        }
        config_free(c);
        config_diags_done(&d);
    }
    assert_int_equal(failures, 0);
    assert_true(sizeof(broken) / sizeof(broken[0]) >= 30);
}

static Config *load_ok(const char *yaml, char *const *envp)
{
    ConfigDiags d = { 0 };
    Config *c = NULL;

    int r = config_load_string("test.yml", yaml, envp, &c, &d);
    if (r != 0 || d.n != 0) {
        print_error("load failed: r=%d\n", r);
        print_diags(&d);
    }
    assert_int_equal(r, 0);
    assert_int_equal(d.n, 0);
    config_diags_done(&d);
    return c;
}

static void test_defaults(void **state)
{
    Config *c = load_ok(BASE, NULL);

    assert_string_equal(c->source_file, "test.yml");
    assert_string_equal(c->scope, "demo");
    assert_string_equal(c->name, "n1");
    assert_string_equal(c->namespace, "/service/");
    assert_int_equal(c->bootstrap.dcs.ttl, 30);
    assert_int_equal(c->bootstrap.dcs.loop_wait, 10);
    assert_int_equal(c->bootstrap.dcs.retry_timeout, 10);
    assert_int_equal(c->bootstrap.dcs.maximum_lag_on_failover, 1048576);
    assert_int_equal(c->bootstrap.dcs.primary_start_timeout, 300);
    assert_int_equal(c->bootstrap.dcs.primary_stop_timeout, 0);
    assert_int_equal(c->bootstrap.dcs.synchronous_node_count, 1);
    assert_false(c->bootstrap.dcs.synchronous_mode);
    assert_false(c->bootstrap.dcs.synchronous_mode_strict);
    assert_false(c->bootstrap.dcs.failsafe_mode);
    assert_true(c->bootstrap.dcs.use_slots);
    assert_false(c->bootstrap.dcs.use_pg_rewind);
    assert_int_equal(c->bootstrap.dcs.parameters.n, 0);
    assert_int_equal(c->bootstrap.initdb.n, 0);
    assert_int_equal(c->tags.failover_priority, 1);
    assert_false(c->tags.nofailover);
    assert_null(c->tags.replicatefrom);
    assert_int_equal(c->tags.custom.n, 0);
    assert_int_equal(c->watchdog.mode, CONFIG_WATCHDOG_AUTOMATIC);
    assert_string_equal(c->watchdog.device, "/dev/watchdog");
    assert_int_equal(c->watchdog.safety_margin, 5);
    assert_string_equal(c->log.level, "INFO");
    assert_string_equal(c->etcd3.protocol, "http");
    assert_false(c->etcd3.use_proxies);
    assert_int_equal(c->etcd3.hosts.n, 1);
    assert_string_equal(c->etcd3.hosts.items[0], "127.0.0.1:2379");
    /* restapi.listen: loopback with connect_address's port */
    assert_string_equal(c->restapi.listen, "127.0.0.1:8008");
    assert_null(c->restapi.authentication.username);
    assert_null(c->postgresql.listen);
    assert_null(c->postgresql.bin_dir);
    assert_null(c->postgresql.superuser.password);
    assert_int_equal(config_postgresql_port(c), 5432);
    config_free(c);
}

static const char full_yaml[] = "scope: demo\n"
                                "namespace: dbha\n"
                                "name: node1\n"
                                "restapi:\n"
                                "  listen: 0.0.0.0:8011\n"
                                "  connect_address: 127.0.0.1:8011\n"
                                "  authentication: {username: admin, password: " SECRET "}\n"
                                "  certfile: /c.pem\n"
                                "  keyfile: /k.pem\n"
                                "  cafile: /ca.pem\n"
                                "etcd3:\n"
                                "  hosts: [127.0.0.1:2379, '[::1]:2379']\n"
                                "  protocol: https\n"
                                "  username: etcduser\n"
                                "  password: " SECRET "\n"
                                "  cacert: /e/ca\n"
                                "  cert: /e/cert\n"
                                "  key: /e/key\n"
                                "  use_proxies: yes\n"
                                "bootstrap:\n"
                                "  dcs:\n"
                                "    ttl: 20\n"
                                "    loop_wait: 4\n"
                                "    retry_timeout: 8\n"
                                "    maximum_lag_on_failover: 1_000_000\n"
                                "    primary_start_timeout: 60\n"
                                "    primary_stop_timeout: 5\n"
                                "    synchronous_mode: on\n"
                                "    synchronous_mode_strict: TRUE\n"
                                "    synchronous_node_count: 2\n"
                                "    failsafe_mode: No\n"
                                "    postgresql:\n"
                                "      use_pg_rewind: true\n"
                                "      use_slots: false\n"
                                "      parameters:\n"
                                "        max_connections: 100\n"
                                "        wal_log_hints: on\n"
                                "        auto_explain.log_min_duration: 10s\n"
                                "  initdb:\n"
                                "    - data-checksums\n"
                                "    - encoding: UTF8\n"
                                "    - {locale: C.UTF-8}\n"
                                "  pg_hba:\n"
                                "    - host replication replicator 127.0.0.1/32 md5\n"
                                "    - host all all 0.0.0.0/0 md5\n"
                                "postgresql:\n"
                                "  listen: 127.0.0.1,127.0.2.1:5441\n"
                                "  connect_address: 127.0.0.1:5441\n"
                                "  data_dir: /var/lib/dbha/node1\n"
                                "  bin_dir: /usr/lib/postgresql/15/bin\n"
                                "  pgpass: /tmp/pgpass1\n"
                                "  authentication:\n"
                                "    superuser: {username: postgres, password: " SECRET "}\n"
                                "    replication: {username: replicator, password: " SECRET "}\n"
                                "    rewind: {username: rewinder, password: " SECRET "}\n"
                                "  parameters:\n"
                                "    unix_socket_directories: /tmp\n"
                                "  pg_hba: [local all all trust]\n"
                                "  callbacks:\n"
                                "    on_start: /bin/true\n"
                                "    on_role_change: /usr/local/bin/role.sh\n"
                                "  create_replica_methods: [basebackup]\n"
                                "  basebackup:\n"
                                "    max-rate: 100M\n"
                                "    checkpoint: fast\n"
                                "tags:\n"
                                "  nofailover: false\n"
                                "  noloadbalance: true\n"
                                "  clonefrom: true\n"
                                "  nosync: no\n"
                                "  replicatefrom: node2\n"
                                "  failover_priority: 0\n"
                                "  zone: eu-1\n"
                                "  rack: 7\n"
                                "watchdog:\n"
                                "  mode: off\n"
                                "  device: /dev/watchdog1\n"
                                "  safety_margin: -1\n"
                                "log:\n"
                                "  level: debug\n";

static void test_full_config(void **state)
{
    Config *c = load_ok(full_yaml, NULL);

    assert_string_equal(c->namespace, "/dbha/");
    assert_string_equal(c->name, "node1");
    assert_string_equal(c->restapi.listen, "0.0.0.0:8011");
    assert_string_equal(c->restapi.connect_address, "127.0.0.1:8011");
    assert_string_equal(c->restapi.authentication.username, "admin");
    assert_string_equal(c->restapi.authentication.password, SECRET);
    assert_string_equal(c->restapi.certfile, "/c.pem");
    assert_string_equal(c->restapi.keyfile, "/k.pem");
    assert_string_equal(c->restapi.cafile, "/ca.pem");
    assert_int_equal(c->etcd3.hosts.n, 2);
    assert_string_equal(c->etcd3.hosts.items[1], "[::1]:2379");
    assert_string_equal(c->etcd3.protocol, "https");
    assert_string_equal(c->etcd3.username, "etcduser");
    assert_string_equal(c->etcd3.password, SECRET);
    assert_string_equal(c->etcd3.cacert, "/e/ca");
    assert_string_equal(c->etcd3.cert, "/e/cert");
    assert_string_equal(c->etcd3.key, "/e/key");
    assert_true(c->etcd3.use_proxies);

    const ConfigDcs *dcs = &c->bootstrap.dcs;
    assert_int_equal(dcs->ttl, 20);
    assert_int_equal(dcs->loop_wait, 4);
    assert_int_equal(dcs->retry_timeout, 8);
    assert_int_equal(dcs->maximum_lag_on_failover, 1000000);
    assert_int_equal(dcs->primary_start_timeout, 60);
    assert_int_equal(dcs->primary_stop_timeout, 5);
    assert_true(dcs->synchronous_mode);
    assert_true(dcs->synchronous_mode_strict);
    assert_int_equal(dcs->synchronous_node_count, 2);
    assert_false(dcs->failsafe_mode);
    assert_true(dcs->use_pg_rewind);
    assert_false(dcs->use_slots);
    assert_int_equal(dcs->parameters.n, 3);
    assert_string_equal(config_map_get(&dcs->parameters, "max_connections"), "100");
    assert_string_equal(config_map_get(&dcs->parameters, "wal_log_hints"), "on");
    assert_string_equal(config_map_get(&dcs->parameters, "auto_explain.log_min_duration"), "10s");
    assert_null(config_map_get(&dcs->parameters, "nope"));

    assert_int_equal(c->bootstrap.initdb.n, 3);
    assert_string_equal(c->bootstrap.initdb.items[0], "--data-checksums");
    assert_string_equal(c->bootstrap.initdb.items[1], "--encoding=UTF8");
    assert_string_equal(c->bootstrap.initdb.items[2], "--locale=C.UTF-8");
    assert_int_equal(c->bootstrap.pg_hba.n, 2);
    assert_string_equal(c->bootstrap.pg_hba.items[1], "host all all 0.0.0.0/0 md5");

    assert_string_equal(c->postgresql.listen, "127.0.0.1,127.0.2.1:5441");
    assert_string_equal(c->postgresql.connect_address, "127.0.0.1:5441");
    assert_string_equal(c->postgresql.data_dir, "/var/lib/dbha/node1");
    assert_string_equal(c->postgresql.bin_dir, "/usr/lib/postgresql/15/bin");
    assert_string_equal(c->postgresql.pgpass, "/tmp/pgpass1");
    assert_string_equal(c->postgresql.superuser.username, "postgres");
    assert_string_equal(c->postgresql.superuser.password, SECRET);
    assert_string_equal(c->postgresql.replication.username, "replicator");
    assert_string_equal(c->postgresql.rewind.username, "rewinder");
    assert_string_equal(config_map_get(&c->postgresql.parameters, "unix_socket_directories"),
                        "/tmp");
    assert_int_equal(c->postgresql.pg_hba.n, 1);
    assert_string_equal(config_map_get(&c->postgresql.callbacks, "on_role_change"),
                        "/usr/local/bin/role.sh");
    assert_int_equal(c->postgresql.create_replica_methods.n, 1);
    assert_int_equal(c->postgresql.basebackup.n, 2);
    assert_string_equal(c->postgresql.basebackup.items[0], "--max-rate=100M");
    assert_string_equal(c->postgresql.basebackup.items[1], "--checkpoint=fast");
    assert_int_equal(config_postgresql_port(c), 5441);

    assert_false(c->tags.nofailover);
    assert_true(c->tags.noloadbalance);
    assert_true(c->tags.clonefrom);
    assert_false(c->tags.nosync);
    assert_string_equal(c->tags.replicatefrom, "node2");
    assert_int_equal(c->tags.failover_priority, 0);
    assert_int_equal(c->tags.custom.n, 2);
    assert_string_equal(config_map_get(&c->tags.custom, "zone"), "eu-1");
    assert_string_equal(config_map_get(&c->tags.custom, "rack"), "7");

    assert_int_equal(c->watchdog.mode, CONFIG_WATCHDOG_OFF);
    assert_string_equal(c->watchdog.device, "/dev/watchdog1");
    assert_int_equal(c->watchdog.safety_margin, -1);
    assert_string_equal(c->log.level, "debug");
    config_free(c);
}

/* Loads `yaml` with `envp` expecting one diag (error or warning) of text
 * `want` exactly. */
static void expect_one_diag(const char *yaml, char *const *envp, ConfigSeverity sev,
                            const char *want)
{
    ConfigDiags d = { 0 };
    Config *c = NULL;

    int r = config_load_string("test.yml", yaml, envp, &c, &d);
    if (d.n != 1 || strcmp(d.items[0].text, want) != 0 || d.items[0].severity != sev) {
        print_error("want: %s\ngot:\n", want);
        print_diags(&d);
        fail();
    }
    assert_int_equal(r, sev == CONFIG_ERROR ? -EINVAL : 0);
    config_free(c);
    config_diags_done(&d);
}

/* Patroni's etcd3.port, url and proxy: an entry without a port gets
 * etcd3.port (2379); a URL is the one endpoint, its scheme the protocol and
 * its credentials the user's; proxy wins over url, and either over hosts
 * (said). */
static void test_etcd_port_url_proxy(void **state)
{
    (void)state;
    Config *c =
        load_ok(TOP REST "etcd3:\n  hosts: 127.0.0.1, 127.0.0.2:2391\n  port: 2390\n" PG, NULL);
    assert_int_equal(c->etcd3.hosts.n, 2);
    assert_string_equal(c->etcd3.hosts.items[0], "127.0.0.1:2390");
    assert_string_equal(c->etcd3.hosts.items[1], "127.0.0.2:2391");
    config_free(c);
    c = load_ok(TOP REST "etcd3:\n  host: localhost\n" PG, NULL);
    assert_int_equal(c->etcd3.hosts.n, 1);
    assert_string_equal(c->etcd3.hosts.items[0], "localhost:2379");
    config_free(c);

    c = load_ok(TOP REST "etcd3:\n  url: https://u%40x:p%3As@127.0.0.1:2381\n" PG, NULL);
    assert_int_equal(c->etcd3.hosts.n, 1);
    assert_string_equal(c->etcd3.hosts.items[0], "127.0.0.1:2381");
    assert_string_equal(c->etcd3.protocol, "https");
    assert_string_equal(c->etcd3.username, "u@x");
    assert_string_equal(c->etcd3.password, "p:s");
    config_free(c);
    c = load_ok(TOP REST "etcd3:\n  url: http://127.0.0.1\n  username: k\n" PG, NULL);
    assert_string_equal(c->etcd3.hosts.items[0], "127.0.0.1:2379");
    assert_string_equal(c->etcd3.protocol, "http");
    assert_string_equal(c->etcd3.username, "k"); /* none in the URL: the key's */
    config_free(c);

    expect_one_diag(TOP REST "etcd3:\n  hosts: 127.0.0.9:1\n  proxy: http://127.0.0.1:2382\n" PG,
                    NULL, CONFIG_WARNING,
                    "test.yml:7:3: \"etcd3.hosts\" and \"etcd3.host\" are not used because "
                    "\"etcd3.proxy\" is set");
    expect_one_diag(
        TOP REST "etcd3:\n  url: http://127.0.0.1:1\n  proxy: http://127.0.0.1:2382\n" PG, NULL,
        CONFIG_WARNING, "test.yml:7:3: \"etcd3.url\" is not used because \"etcd3.proxy\" is set");
    expect_one_diag(TOP REST "etcd3:\n  url: ftp://127.0.0.1\n" PG, NULL, CONFIG_ERROR,
                    "test.yml:6:8: expected an http:// or https:// URL of one etcd endpoint "
                    "(http://HOST:PORT) for \"etcd3.url\", got \"ftp://127.0.0.1\"");
    expect_one_diag(TOP REST "etcd3:\n  protocol: https\n  url: http://127.0.0.1\n" PG, NULL,
                    CONFIG_WARNING,
                    "test.yml:7:3: \"etcd3.protocol\" is not used: \"etcd3.url\" says http");
}

/* The rest of Patroni's environment: the old names of three variables,
 * PATRONI_<name>_PASSWORD/_OPTIONS as bootstrap.users, and a warning for a
 * PATRONI_ variable dbha reads nothing from. */
static void test_patroni_env_rest(void **state)
{
    (void)state;
    char *old[] = { "PATRONI_LOGLEVEL=DEBUG", "PATRONI_LOGFORMAT=%(message)s", NULL };
    Config *c = load_ok(BASE, old);
    assert_string_equal(c->log.level, "DEBUG");
    assert_string_equal(c->log.format, "%(message)s");
    config_free(c);
    char *both[] = { "PATRONI_LOGLEVEL=DEBUG", "PATRONI_LOG_LEVEL=ERROR", NULL };
    c = load_ok(BASE, both);
    assert_string_equal(c->log.level, "ERROR"); /* the new name wins */
    config_free(c);

    char *users[] = { "PATRONI_ADMIN_PASSWORD=pw", "PATRONI_ADMIN_OPTIONS=createdb, createrole",
                      "PATRONI_APP_PASSWORD=apw", "PATRONI_EMPTY_PASSWORD=", NULL };
    c = load_ok(BASE "bootstrap:\n  users:\n    APP:\n      password: file\n"
                     "      options: [login]\n",
                users);
    assert_non_null(c->bootstrap.users);
    _cleanup_free_ char *text = json_dumps(c->bootstrap.users, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"ADMIN\":{\"options\":[\"CREATEDB\",\"CREATEROLE\"],"
                              "\"password\":\"pw\"},\"APP\":{\"options\":[\"LOGIN\"],"
                              "\"password\":\"apw\"}}");
    config_free(c);

    char *bad[] = { "PATRONI_ADMIN_PASSWORD=pw", "PATRONI_ADMIN_OPTIONS=login; drop table x",
                    NULL };
    expect_one_diag(BASE, bad, CONFIG_ERROR,
                    "environment PATRONI_ADMIN_PASSWORD: \"bootstrap.users.ADMIN.options\": "
                    "\"login; drop table x\" is not a role option dbha passes to CREATE ROLE: one "
                    "of SUPERUSER, CREATEDB, CREATEROLE, INHERIT, LOGIN, REPLICATION, BYPASSRLS, "
                    "their NO... forms, or CONNECTION LIMIT n");
    char *unknown[] = { "PATRONI_RESTAPI_SOMETHING=1", NULL };
    expect_one_diag(BASE, unknown, CONFIG_WARNING,
                    "environment PATRONI_RESTAPI_SOMETHING: not read by dbha: no setting has this "
                    "name (the PATRONI_ names dbha reads are in docs/configuration.md)");
}

static void test_env_overrides(void **state)
{
    char *env[] = {
        "HOME=/root",
        "PATRONI_NAME=from-patroni",
        "DBHA_NAME=from-dbha",
        "PATRONI_SCOPE=envscope",
        "PATRONI_NAMESPACE=/ns/",
        "PATRONI_RESTAPI_LISTEN=0.0.0.0:9000",
        "PATRONI_RESTAPI_USERNAME=u",
        "DBHA_RESTAPI_PASSWORD=" SECRET,
        "PATRONI_ETCD3_PROTOCOL=https",
        "PATRONI_ETCD3_PASSWORD=" SECRET,
        "PATRONI_POSTGRESQL_DATA_DIR=/env/data",
        "PATRONI_POSTGRESQL_LISTEN=*:6000",
        "PATRONI_SUPERUSER_USERNAME=su",
        "PATRONI_SUPERUSER_PASSWORD=" SECRET,
        "DBHA_REPLICATION_USERNAME=rep",
        "PATRONI_REWIND_PASSWORD=rw",
        "PATRONI_LOG_LEVEL=WARNING",
        "PATRONI_POSTGRESQL_BIN_DIR=", /* empty: not set */
        NULL,
    };
    Config *c = load_ok(BASE, env);

    assert_string_equal(c->name, "from-dbha");
    assert_string_equal(c->scope, "envscope");
    assert_string_equal(c->namespace, "/ns/");
    assert_string_equal(c->restapi.listen, "0.0.0.0:9000");
    assert_string_equal(c->restapi.authentication.username, "u");
    assert_string_equal(c->restapi.authentication.password, SECRET);
    assert_string_equal(c->etcd3.protocol, "https");
    assert_string_equal(c->etcd3.password, SECRET);
    assert_string_equal(c->postgresql.data_dir, "/env/data");
    assert_string_equal(c->postgresql.listen, "*:6000");
    assert_int_equal(config_postgresql_port(c), 6000);
    assert_string_equal(c->postgresql.superuser.username, "su");
    assert_string_equal(c->postgresql.replication.username, "rep");
    assert_string_equal(c->postgresql.rewind.password, "rw");
    assert_string_equal(c->log.level, "WARNING");
    assert_null(c->postgresql.bin_dir);
    config_free(c);

    /* DBHA_ wins even when the PATRONI_ value is invalid */
    char *env2[] = { "PATRONI_ETCD3_PROTOCOL=ftp", "DBHA_ETCD3_PROTOCOL=https", NULL };
    c = load_ok(BASE, env2);
    assert_string_equal(c->etcd3.protocol, "https");
    config_free(c);
}

static void test_env_satisfies_required(void **state)
{
    char *env[] = {
        "PATRONI_SCOPE=s",
        "DBHA_NAME=n",
        "PATRONI_RESTAPI_CONNECT_ADDRESS=10.0.0.1:8008",
        "PATRONI_ETCD3_HOST=10.0.0.9:2379",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS=10.0.0.1:5432",
        "PATRONI_POSTGRESQL_DATA_DIR=/data",
        NULL,
    };
    Config *c = load_ok("", env);

    assert_string_equal(c->scope, "s");
    assert_string_equal(c->name, "n");
    assert_string_equal(c->restapi.listen, "127.0.0.1:8008");
    assert_int_equal(c->etcd3.hosts.n, 1);
    assert_string_equal(c->etcd3.hosts.items[0], "10.0.0.9:2379");
    assert_string_equal(c->etcd3.host, "10.0.0.9:2379");
    config_free(c);
}

static void test_env_bad_values(void **state)
{
    char *proto[] = { "PATRONI_ETCD3_PROTOCOL=ftp", NULL };
    expect_one_diag(BASE, proto, CONFIG_ERROR,
                    "environment PATRONI_ETCD3_PROTOCOL: expected one of http, https for "
                    "\"etcd3.protocol\", got \"ftp\"");
    char *addr[] = { "DBHA_POSTGRESQL_CONNECT_ADDRESS=nope", NULL };
    expect_one_diag(BASE, addr, CONFIG_ERROR,
                    "environment DBHA_POSTGRESQL_CONNECT_ADDRESS: expected \"host:port\" for "
                    "\"postgresql.connect_address\", got \"nope\"");
    char *hosts[] = { "PATRONI_ETCD3_HOSTS='h1:2379','h 2'", NULL };
    expect_one_diag(BASE, hosts, CONFIG_ERROR,
                    "environment PATRONI_ETCD3_HOSTS: expected \"host:port\" or \"host\" for "
                    "\"etcd3.hosts\", got \"h 2\"");
    char *level[] = { "PATRONI_LOG_LEVEL=chatty", NULL };
    expect_one_diag(BASE, level, CONFIG_ERROR,
                    "environment PATRONI_LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR, "
                    "CRITICAL for \"log.level\", got \"chatty\"");
    char *listen[] = { "PATRONI_RESTAPI_LISTEN=0.0.0.0:0", NULL };
    expect_one_diag(BASE, listen, CONFIG_ERROR,
                    "environment PATRONI_RESTAPI_LISTEN: expected a port between 1 and 65535 for "
                    "\"restapi.listen\", got \"0.0.0.0:0\"");
    char *host[] = { "PATRONI_ETCD3_HOST=127.0.0.3:2379", NULL };
    expect_one_diag(BASE, host, CONFIG_WARNING,
                    "environment PATRONI_ETCD3_HOST: \"etcd3.host\" is ignored because "
                    "\"etcd3.hosts\" is set");
}

static void assert_hosts(const Config *c, size_t n, const char *const *want)
{
    assert_int_equal(c->etcd3.hosts.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(c->etcd3.hosts.items[i], want[i]);
    }
}

static void test_host_forms(void **state)
{
    static const char *const two[] = { "h1:2379", "h2:2380" };
    static const char *const yamls[] = {
        TOP REST "etcd3:\n  hosts: [h1:2379, h2:2380]\n" PG,
        TOP REST "etcd3:\n  hosts:\n    - h1:2379\n    - 'h2:2380'\n" PG,
        TOP REST "etcd3:\n  hosts: h1:2379,h2:2380\n" PG,
        TOP REST "etcd3:\n  hosts: 'h1:2379, h2:2380,'\n" PG,
    };
    for (size_t i = 0; i < sizeof(yamls) / sizeof(yamls[0]); i++) {
        Config *c = load_ok(yamls[i], NULL);
        assert_hosts(c, 2, two);
        config_free(c);
    }

    static const char *const one[] = { "h9:2379" };
    Config *c = load_ok(TOP REST "etcd3:\n  host: h9:2379\n" PG, NULL);
    assert_hosts(c, 1, one);
    config_free(c);

    /* environment: Patroni's list literal, a YAML list, a plain comma list */
    static const char *const envs[] = {
        "PATRONI_ETCD3_HOSTS='h1:2379','h2:2380'",
        "PATRONI_ETCD3_HOSTS=[\"h1:2379\", \"h2:2380\"]",
        "PATRONI_ETCD3_HOSTS=h1:2379, h2:2380",
        "DBHA_ETCD3_HOSTS=h1:2379,h2:2380",
    };
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        char *env[] = { (char *)envs[i], NULL };
        c = load_ok(BASE, env);
        assert_hosts(c, 2, two);
        config_free(c);
    }
}

static void test_initdb_forms(void **state)
{
    Config *c = load_ok(BASE "bootstrap:\n  initdb: [data-checksums, {encoding: UTF8}, "
                             "--no-locale, {auth-host: md5}]\n",
                        NULL);
    assert_int_equal(c->bootstrap.initdb.n, 4);
    assert_string_equal(c->bootstrap.initdb.items[0], "--data-checksums");
    assert_string_equal(c->bootstrap.initdb.items[1], "--encoding=UTF8");
    assert_string_equal(c->bootstrap.initdb.items[2], "--no-locale");
    assert_string_equal(c->bootstrap.initdb.items[3], "--auth-host=md5");
    config_free(c);

    /* the mapping form, as Patroni's process_user_options accepts */
    c = load_ok(BASE "bootstrap:\n  initdb:\n    encoding: UTF8\n    locale: C\n", NULL);
    assert_int_equal(c->bootstrap.initdb.n, 2);
    assert_string_equal(c->bootstrap.initdb.items[0], "--encoding=UTF8");
    assert_string_equal(c->bootstrap.initdb.items[1], "--locale=C");
    config_free(c);

    c = load_ok(BASE "  basebackup:\n    - verbose\n    - max-rate: 10M\n", NULL);
    assert_int_equal(c->postgresql.basebackup.n, 2);
    assert_string_equal(c->postgresql.basebackup.items[0], "--verbose");
    assert_string_equal(c->postgresql.basebackup.items[1], "--max-rate=10M");
    config_free(c);
}

static void test_yaml_booleans(void **state)
{
    static const struct {
        const char *text;
        bool value;
    } cases[] = {
        { "true", true },   { "True", true },   { "TRUE", true },  { "yes", true },
        { "Yes", true },    { "YES", true },    { "on", true },    { "On", true },
        { "ON", true },     { "tRuE", true },   { "'yes'", true }, { "false", false },
        { "False", false }, { "FALSE", false }, { "no", false },   { "No", false },
        { "NO", false },    { "off", false },   { "Off", false },  { "OFF", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), BASE "tags:\n  nofailover: %s\n  nosync: %s\n", cases[i].text,
                 cases[i].text);
        Config *c = load_ok(yaml, NULL);
        if (c->tags.nofailover != cases[i].value || c->tags.nosync != cases[i].value) {
            print_error("boolean \"%s\"\n", cases[i].text);
            fail();
        }
        config_free(c);
    }
    expect_one_diag(BASE "tags:\n  nofailover: 1\n", NULL, CONFIG_ERROR,
                    "test.yml:11:15: expected a boolean for \"tags.nofailover\", got \"1\"");
    expect_one_diag(BASE "tags:\n  nofailover: y\n", NULL, CONFIG_ERROR,
                    "test.yml:11:15: expected a boolean for \"tags.nofailover\", got \"y\"");

    /* watchdog.mode: off is a YAML false in Patroni; its other spellings */
    static const struct {
        const char *text;
        ConfigWatchdogMode mode;
    } modes[] = {
        { "off", CONFIG_WATCHDOG_OFF },          { "false", CONFIG_WATCHDOG_OFF },
        { "disabled", CONFIG_WATCHDOG_OFF },     { "automatic", CONFIG_WATCHDOG_AUTOMATIC },
        { "auto", CONFIG_WATCHDOG_AUTOMATIC },   { "Required", CONFIG_WATCHDOG_REQUIRED },
        { "require", CONFIG_WATCHDOG_REQUIRED },
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char yaml[512];
        snprintf(yaml, sizeof(yaml), BASE "watchdog:\n  mode: %s\n", modes[i].text);
        Config *c = load_ok(yaml, NULL);
        assert_int_equal(c->watchdog.mode, modes[i].mode);
        config_free(c);
    }
    assert_string_equal(config_watchdog_mode_to_string(CONFIG_WATCHDOG_REQUIRED), "required");
    assert_null(config_watchdog_mode_to_string(_CONFIG_WATCHDOG_MAX));
}

/* No diag ever shows a password, whatever is wrong around it. */
static void test_no_secret_in_diags(void **state)
{
    static const char *const yamls[] = {
        BASE "  authentication:\n    superuser:\n      password: {" SECRET ": x}\n",
        BASE "  authentication:\n    superuser:\n      password: {x: " SECRET "}\n",
        BASE "  authentication:\n    replication:\n      password: [" SECRET "]\n",
        BASE "  authentication:\n    rewind:\n      password: " SECRET "\n      password: " SECRET
             "\n",
        BASE "  authentication:\n    rewind:\n      pasword: " SECRET "\n",
        TOP "restapi:\n  connect_address: 127.0.0.1:8008\n  authentication:\n    password: [" SECRET
            "]\n" ETCD PG,
        TOP REST "etcd3:\n  hosts: 127.0.0.1:2379\n  password: {a: " SECRET "}\n" PG,
        BASE "  authentication:\n    superuser:\n      password: \"" SECRET "\n",
        BASE "  authentication:\n    superuser:\n      password: " SECRET "\n\tbad: 1\n",
        BASE "  authentication:\n    superuser:\n      password: &a " SECRET
             "\n      username: *b\n",
    };
    char *env[] = { "PATRONI_SUPERUSER_PASSWORD=" SECRET, "DBHA_ETCD3_PASSWORD=" SECRET,
                    "PATRONI_REPLICATION_PASSWORD=" SECRET, "PATRONI_RESTAPI_PASSWORD=" SECRET,
                    NULL };

    for (size_t i = 0; i < sizeof(yamls) / sizeof(yamls[0]); i++) {
        for (int with_env = 0; with_env < 2; with_env++) {
            ConfigDiags d = { 0 };
            Config *c = NULL;
            (void)config_load_string("test.yml", yamls[i], with_env ? env : NULL, &c, &d);
            assert_true(d.n > 0);
            for (size_t j = 0; j < d.n; j++) {
                if (strstr(d.items[j].text, SECRET)) {
                    print_error("case %zu leaks: %s\n", i, d.items[j].text);
                    fail();
                }
            }
            config_free(c);
            config_diags_done(&d);
        }
    }

    /* nor does the summary */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    Config *c = load_ok(full_yaml, env);
    config_summary(c, f);
    fclose(f);
    assert_null(strstr(buf, SECRET));
    assert_non_null(strstr(buf, "scope: demo\n"));
    assert_non_null(strstr(buf, "name: node1\n"));
    assert_non_null(strstr(buf, "etcd3: https 127.0.0.1:2379,[::1]:2379\n"));
    assert_non_null(strstr(buf, "data_dir /var/lib/dbha/node1"));
    assert_non_null(strstr(buf, "timing: ttl 20s, loop_wait 4s, retry_timeout 8s\n"));
    free(buf);
    config_free(c);
}

/* Every error in a file is reported, not only the first. */
static void test_collects_all_errors(void **state)
{
    ConfigDiags d = { 0 };
    Config *c = NULL;
    const char *yaml = "name: n1\n"
                       "restapi:\n  connect_address: nohost\n"
                       "etcd3:\n  hosts: [a:1, b c]\n  protocol: gopher\n"
                       "postgresql:\n  data_dir: /d\n  connect_address: 127.0.0.1:5432\n"
                       "  dta_dir: /x\n"
                       "bootstrap:\n  dcs:\n    ttl: x\n    loop_wait: -1\n"
                       "watchdog:\n  mode: sure\n";

    assert_int_equal(config_load_string("test.yml", yaml, NULL, &c, &d), -EINVAL);
    assert_null(c);
    static const char *const want[] = {
        "error: test.yml:3:20: expected \"host:port\" for \"restapi.connect_address\", got "
        "\"nohost\"",
        "error: test.yml:5:16: expected \"host:port\" or \"host\" for \"etcd3.hosts\", got "
        "\"b c\"",
        "error: test.yml:6:13: expected one of http, https for \"etcd3.protocol\", got \"gopher\"",
        "warning: test.yml:10:3: unknown key \"postgresql.dta_dir\" (did you mean "
        "\"postgresql.data_dir\"?)",
        "error: test.yml:13:10: expected an integer for \"bootstrap.dcs.ttl\", got \"x\"",
        "error: test.yml:14:16: expected an integer between 1 and 86400 for "
        "\"bootstrap.dcs.loop_wait\", got \"-1\"",
        "error: test.yml:16:9: expected one of off, automatic, required for \"watchdog.mode\", "
        "got \"sure\"",
        "error: test.yml:1:1: missing required key \"scope\"",
    };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_diags_print(&d, f);
    fclose(f);
    char expected[4096] = "";
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        strcat(expected, want[i]);
        strcat(expected, "\n");
    }
    assert_string_equal(buf, expected);
    assert_int_equal(d.n_errors, 7);
    free(buf);
    config_diags_done(&d);
}

static void test_files(void **state)
{
    ConfigDiags d = { 0 };
    Config *c = NULL;

    assert_null(config_free(NULL));
    config_diags_done(NULL);
    assert_int_equal(config_load("/nonexistent/dbha.yml", NULL, &c, &d), -ENOENT);
    assert_null(c);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.n_errors, 1);
    assert_string_equal(d.items[0].text,
                        "/nonexistent/dbha.yml: cannot read: No such file or directory");
    config_diags_done(&d);

    static const char *const nodes[] = { "node1", "node2", "node3" };
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s.yml", DBHA_CONFIGS_DIR, nodes[i]);
        int r = config_load(path, NULL, &c, &d);
        if (r != 0 || d.n != 0) {
            print_error("%s: r=%d\n", path, r);
            print_diags(&d);
            fail();
        }
        assert_string_equal(c->source_file, path);
        assert_string_equal(c->scope, "demo");
        assert_string_equal(c->name, nodes[i]);
        assert_int_equal(config_postgresql_port(c), 5441 + (int)i);
        assert_int_equal(c->bootstrap.initdb.n, 2);
        c = config_free(c);
        config_diags_done(&d);
    }
}

/* docs/configuration.md documents every key the schema reads, and nothing
 * the schema does not know: the reference cannot drift from the code. */
static void test_reference_doc_matches_schema(void **state)
{
    FILE *f = fopen(DBHA_CONFIG_DOC, "re");
    assert_non_null(f);
    char *doc = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&doc, &size);
    assert_non_null(m);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        fwrite(buf, 1, n, m);
    }
    fclose(f);
    fclose(m);

    size_t missing = 0;
    for (size_t i = 0; i < config_schema_n; i++) {
        const ConfigRow *row = &config_schema[i];
        if (row->type == CONFIG_TYPE_SECTION && !(row->flags & CONFIG_F_OPEN)) {
            continue;
        }
        char needle[256];
        snprintf(needle, sizeof(needle), "| `%s` |", row->path);
        if (row->type == CONFIG_TYPE_SECTION) {
            snprintf(needle, sizeof(needle), "`%s`", row->path);
        }
        if (!strstr(doc, needle)) {
            print_error("%s: key \"%s\" is not documented\n", DBHA_CONFIG_DOC, row->path);
            missing++;
        }
    }
    /* every documented key row names a schema key */
    for (const char *p = doc; (p = strstr(p, "\n| `")); p++) {
        char key[256];
        if (sscanf(p, "\n| `%255[^`]`", key) == 1 && !config_schema_find(key)) {
            print_error("%s: documents unknown key \"%s\"\n", DBHA_CONFIG_DOC, key);
            missing++;
        }
    }
    free(doc);
    assert_int_equal(missing, 0);
}

/* Custom replica methods as Patroni reads them (Bootstrap.create_replica()):
 * the sections create_replica_methods names, in its order, the flags true
 * as Python takes them, the other keys with Python's str() of the value. */
static void test_replica_methods(void **state)
{
    (void)state;
    ConfigDiags d = { 0 };
    Config *c = NULL;
    int r =
        config_load_string("test.yml",
                           BASE "  create_replica_methods:\n    - pgbackrest\n    - wal_e\n"
                                "    - basebackup\n    - bare\n    - wal_e\n"
                                "  pgbackrest:\n"
                                "    command: /usr/bin/pgbackrest --stanza=main --delta restore\n"
                                "    keep_data: True\n    no_params: yes\n"
                                "  wal_e:\n    command: patroni_wale_restore\n    no_master: 1\n"
                                "    envdir: /etc/wal-e\n    use_iam: on\n    off: false\n"
                                "    empty:\n    quoted: 'true'\n    zero: 0.0\n",
                           NULL, &c, &d);
    assert_int_equal(r, 0);
    /* keep_data: a note, since dbha's methods always start on an empty directory */
    assert_int_equal(d.n, 1);
    assert_int_equal(d.items[0].severity, CONFIG_NOTE);
    assert_non_null(strstr(d.items[0].text, "test.yml:18:5: \"postgresql.pgbackrest.keep_data\" "
                                            "is honoured the stricter way"));
    config_diags_done(&d);
    assert_int_equal(c->postgresql.n_replica_methods, 3);
    const ConfigReplicaMethod *m = &c->postgresql.replica_methods[0];
    assert_string_equal(m->name, "pgbackrest");
    assert_string_equal(m->command, "/usr/bin/pgbackrest --stanza=main --delta restore");
    assert_true(m->keep_data && m->no_params && !m->no_leader);
    assert_int_equal(m->options.n, 2);
    assert_string_equal(m->options.items[0].key, "keep_data");
    assert_string_equal(m->options.items[0].value, "True");
    m = &c->postgresql.replica_methods[1];
    assert_string_equal(m->name, "wal_e");
    assert_string_equal(m->command, "patroni_wale_restore");
    assert_true(!m->keep_data && !m->no_params && m->no_leader);
    static const char *const want[][2] = { { "no_master", "1" },  { "envdir", "/etc/wal-e" },
                                           { "use_iam", "True" }, { "off", "False" },
                                           { "empty", "None" },   { "quoted", "true" },
                                           { "zero", "0.0" } };
    assert_int_equal(m->options.n, ELEMENTSOF(want));
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        assert_string_equal(m->options.items[i].key, want[i][0]);
        assert_string_equal(m->options.items[i].value, want[i][1]);
    }
    /* no section: Patroni runs the name */
    m = &c->postgresql.replica_methods[2];
    assert_string_equal(m->name, "bare");
    assert_string_equal(m->command, "bare");
    assert_int_equal(m->options.n, 0);
    config_free(c);

    /* flags false as Python takes them: 0, '', no, null */
    c = load_ok(BASE "  create_replica_methods: [x]\n  x:\n    no_leader: 0\n"
                     "    no_master: ''\n    keep_data: no\n    no_params:\n",
                NULL);
    m = &c->postgresql.replica_methods[0];
    assert_true(!m->no_leader && !m->keep_data && !m->no_params);
    config_free(c);

    /* a section no method names is an unknown key, as any other */
    c = NULL;
    assert_int_equal(
        config_load_string("test.yml", BASE "  wal_g:\n    command: x\n", NULL, &c, &d), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.items[0].severity, CONFIG_WARNING);
    assert_string_equal(d.items[0].text, "test.yml:10:3: unknown key \"postgresql.wal_g\"");
    assert_int_equal(c->postgresql.n_replica_methods, 0);
    config_diags_done(&d);
    config_free(c);
}

/* A custom bootstrap method as Patroni reads it (_custom_bootstrap()): the
 * section bootstrap.method names, its command, flags and recovery_conf;
 * the keys Patroni does not read there are warned about, the other
 * sections are unknown keys. */
static void test_bootstrap_method(void **state)
{
    (void)state;
    ConfigDiags d = { 0 };
    Config *c = NULL;
    int r = config_load_string(
        "test.yml",
        BASE "bootstrap:\n  method: pitr\n  pitr:\n    command: /usr/bin/restore --from x\n"
             "    no_params: yes\n    keep_existing_recovery_conf: 1\n    retries: 3\n"
             "    recovery_conf:\n      restore_command: cp /a/%f %p\n"
             "      recovery_target_time: '2026-12-07 10:00:00+00'\n"
             "      recovery_target_action: promote\n      recovery_end_command:\n"
             "  other:\n    command: x\n",
        NULL, &c, &d);
    assert_int_equal(r, 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.items[0].text, "test.yml:22:3: unknown key \"bootstrap.other\"");
    assert_string_equal(d.items[1].text,
                        "test.yml:16:5: \"bootstrap.pitr.retries\" is not read: Patroni passes a "
                        "bootstrap method's command only --scope and --datadir (none with "
                        "no_params), and so does dbha");
    config_diags_done(&d);
    const ConfigBootstrapMethod *b = c->bootstrap.custom;
    assert_non_null(b);
    assert_string_equal(b->name, "pitr");
    assert_string_equal(b->command, "/usr/bin/restore --from x");
    assert_true(b->no_params && b->keep_existing_recovery_conf && b->has_recovery_conf);
    assert_int_equal(b->recovery_conf.n, 3); /* the empty one is not set */
    assert_string_equal(b->recovery_conf.items[1].key, "recovery_target_time");
    assert_string_equal(b->recovery_conf.items[1].value, "2026-12-07 10:00:00+00");
    config_free(c);

    /* initdb: no custom method, any section is unknown */
    c = load_ok(BASE, NULL);
    assert_null(c->bootstrap.custom);
    config_free(c);
}

/* Patroni's list and mapping variables (_parse_list, _parse_dict): YAML,
 * bracketed or not; they replace the file's value. */
static void test_env_lists_and_maps(void **state)
{
    (void)state;
    char *env[] = {
        "PATRONI_RESTAPI_ALLOWLIST=127.0.0.1, 10.0.0.0/8",
        "PATRONI_RESTAPI_HTTP_EXTRA_HEADERS={X-Frame-Options: SAMEORIGIN}",
        "PATRONI_RESTAPI_HTTPS_EXTRA_HEADERS=Strict-Transport-Security: max-age=31536000",
        "PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS=on", NULL
    };
    Config *c = load_ok(TOP "restapi:\n  connect_address: 127.0.0.1:8008\n"
                            "  allowlist: [192.0.2.1]\n"
                            "  http_extra_headers:\n    X-From-File: 1\n" ETCD PG,
                        env);
    assert_int_equal(c->restapi.allowlist.n, 2);
    assert_string_equal(c->restapi.allowlist.items[0], "127.0.0.1");
    assert_string_equal(c->restapi.allowlist.items[1], "10.0.0.0/8");
    assert_int_equal(c->restapi.http_extra_headers.n, 1); /* replaced, not added to */
    assert_string_equal(c->restapi.http_extra_headers.items[0].key, "X-Frame-Options");
    assert_string_equal(c->restapi.https_extra_headers.items[0].value, "max-age=31536000");
    assert_true(c->restapi.allowlist_include_members);
    config_free(c);

    char *bad[] = { "PATRONI_RESTAPI_HTTP_EXTRA_HEADERS=X-Ok: 1, Bad Name: 2", NULL };
    ConfigDiags d = { 0 };
    c = NULL;
    assert_int_equal(config_load_string("test.yml", BASE, bad, &c, &d), -EINVAL);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.items[0].text, "environment PATRONI_RESTAPI_HTTP_EXTRA_HEADERS: in "
                                            "\"restapi.http_extra_headers\": \"Bad Name\""));
    config_diags_done(&d);
}

/* Patroni's PATRONI_CONFIGURATION: the document from the environment, the
 * other variables on top, positions naming the variable. */
static void test_config_from_environment(void **state)
{
    (void)state;
    char *env[] = { "PATRONI_CONFIGURATION=" BASE, "PATRONI_NAME=from-env", NULL };
    ConfigDiags d = { 0 };
    Config *c = NULL;
    assert_int_equal(config_load_env(env, &c, &d), 0);
    assert_int_equal(d.n, 0);
    assert_string_equal(c->name, "from-env");
    assert_string_equal(c->postgresql.data_dir, "/d");
    config_free(c);

    char *bad[] = { "PATRONI_CONFIGURATION=" BASE "bootstrap:\n  dcs:\n    ttl: x\n", NULL };
    c = NULL;
    assert_int_equal(config_load_from(NULL, bad, &c, &d), -EINVAL);
    assert_null(c);
    assert_true(d.n_errors == 1 &&
                strncmp(d.items[0].text, "PATRONI_CONFIGURATION:12:10: ", 29) == 0);
    config_diags_done(&d);

    char *none[] = { "PATRONI_SCOPE=x", NULL };
    assert_int_equal(config_load_env(none, &c, &d), -ENOENT);
    assert_int_equal(d.n_errors, 1);
    config_diags_done(&d);
}

/* dbctl's files: patronictl's (no name, data_dir, connect addresses,
 * maybe no etcd hosts), or none at all (the environment alone); the REST
 * credentials from ctl.authentication, else ctl.auth. */
static void test_ctl_mode(void **state)
{
    (void)state;
    ConfigDiags d = { 0 };
    Config *c = NULL;
    static const char patronictl[] = "scope: demo\nnamespace: /db/\n"
                                     "etcd3:\n  hosts: 127.0.0.1:2379\n  protocol: https\n"
                                     "ctl:\n  auth: admin:pw:with:colons\n";
    /* an agent refuses it */
    assert_int_equal(config_load_string("p.yml", patronictl, NULL, &c, &d), -EINVAL);
    config_diags_done(&d);

    char path[] = "/tmp/dbha-test-ctl-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, patronictl, strlen(patronictl)), (ssize_t)strlen(patronictl));
    close(fd);
    assert_int_equal(config_load_ctl(path, NULL, &c, &d), 0);
    assert_int_equal(d.n_errors, 0);
    assert_string_equal(c->scope, "demo");
    assert_string_equal(c->namespace, "/db/");
    assert_int_equal(c->etcd3.hosts.n, 1);
    assert_string_equal(c->ctl.authentication.username, "admin");
    assert_string_equal(c->ctl.authentication.password, "pw:with:colons");
    assert_null(c->name);
    assert_null(c->postgresql.data_dir);
    c = config_free(c);
    config_diags_done(&d);

    /* ctl.authentication wins over ctl.auth (warned); PATRONI_CTL_* apply */
    char *env[] = { "PATRONI_CTL_PASSWORD=from-env", NULL };
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs("scope: demo\nctl:\n  auth: a:b\n  authentication:\n    username: u\n", f);
    fclose(f);
    assert_int_equal(config_load_ctl(path, env, &c, &d), 0);
    assert_string_equal(c->ctl.authentication.username, "u");
    assert_string_equal(c->ctl.authentication.password, "from-env");
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0].text, "\"ctl.auth\" is ignored"));
    c = config_free(c);
    config_diags_done(&d);

    /* what is there is still checked, with its position */
    f = fopen(path, "we");
    assert_non_null(f);
    fputs("scope: demo\nbootstrap:\n  dcs:\n    ttl: x\n", f);
    fclose(f);
    assert_int_equal(config_load_ctl(path, NULL, &c, &d), -EINVAL);
    assert_null(c);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.items[0].text, ":4:10: "));
    config_diags_done(&d);
    unlink(path);

    /* no file: the environment alone, as patronictl */
    char *vars[] = { "PATRONI_SCOPE=envscope", "PATRONI_ETCD3_HOSTS=127.0.0.1:2379", NULL };
    assert_int_equal(config_load_ctl(NULL, vars, &c, &d), 0);
    assert_string_equal(c->scope, "envscope");
    assert_string_equal(c->etcd3.hosts.items[0], "127.0.0.1:2379");
    c = config_free(c);
    assert_int_equal(config_load_ctl(NULL, NULL, &c, &d), 0);
    assert_null(c->scope);
    assert_int_equal(c->etcd3.hosts.n, 0);
    c = config_free(c);
    char *doc[] = { "PATRONI_CONFIGURATION=scope: s\n", NULL };
    assert_int_equal(config_load_ctl(NULL, doc, &c, &d), 0);
    assert_string_equal(c->scope, "s");
    c = config_free(c);
    config_diags_done(&d);
}

/* Patroni's other spellings stand in for their keys when those are absent
 * (Patroni 3.0.2: config.py __REMAP_KEYS, postgresql/__init__.py
 * create_replica_methods or create_replica_method, name from postgresql). */
static void test_patroni_aliases(void **state)
{
    (void)state;
    Config *c = load_ok(TOP REST ETCD PG "  create_replica_method:\n    - basebackup\n"
                                         "bootstrap:\n  dcs:\n    master_start_timeout: 42\n"
                                         "    master_stop_timeout: 7\n",
                        NULL);
    assert_int_equal(c->bootstrap.dcs.primary_start_timeout, 42);
    assert_int_equal(c->bootstrap.dcs.primary_stop_timeout, 7);
    assert_int_equal(c->postgresql.create_replica_methods.n, 1);
    assert_string_equal(c->postgresql.create_replica_methods.items[0], "basebackup");
    config_free(c);

    /* Patroni's ":8008": every address */
    c = load_ok(TOP "restapi:\n  connect_address: 127.0.0.1:8008\n  listen: ':8008'\n" ETCD PG,
                NULL);
    assert_string_equal(c->restapi.listen, ":8008");
    config_free(c);
    c = load_ok(TOP "restapi:\n  connect_address: 127.0.0.1:8008\n  listen: '*:8008'\n" ETCD PG,
                NULL);
    config_free(c);
    ConfigDiags bad = { 0 };
    assert_int_equal(config_load_string("test.yml",
                                        TOP "restapi:\n  connect_address: 127.0.0.1:8008\n"
                                            "  listen: ':0'\n" ETCD PG,
                                        NULL, &c, &bad),
                     -EINVAL);
    config_diags_done(&bad);

    /* the older names of slots */
    c = load_ok(BASE "bootstrap:\n  dcs:\n    permanent_slots:\n      arch:\n", NULL);
    assert_non_null(c->bootstrap.dcs.slots);
    assert_non_null(json_object_get(c->bootstrap.dcs.slots, "arch"));
    config_free(c);
    c = load_ok(BASE "bootstrap:\n  dcs:\n    permanent_replication_slots: {arch2: {type: "
                     "physical}}\n",
                NULL);
    assert_non_null(json_object_get(c->bootstrap.dcs.slots, "arch2"));
    config_free(c);

    /* name only under postgresql: it satisfies the required key */
    c = load_ok("scope: demo\n" REST ETCD PG "  name: pgnode\n", NULL);
    assert_string_equal(c->name, "pgnode");
    config_free(c);

    /* with both, the new name wins */
    ConfigDiags d = { 0 };
    assert_int_equal(config_load_string("test.yml",
                                        BASE "bootstrap:\n  dcs:\n    primary_start_timeout: 9\n"
                                             "    master_start_timeout: 5\n",
                                        NULL, &c, &d),
                     0);
    assert_int_equal(c->bootstrap.dcs.primary_start_timeout, 9);
    assert_int_equal(d.n_errors, 0);
    assert_int_equal(d.n, 1);
    config_diags_done(&d);
    config_free(c);
}

static void test_misc(void **state)
{
    Config *c = load_ok(TOP "namespace: //a/b//\n" REST ETCD PG, NULL);
    assert_string_equal(c->namespace, "/a/b/");
    config_free(c);

    c = load_ok(TOP "namespace: /\n" REST ETCD PG, NULL);
    assert_string_equal(c->namespace, "/");
    config_free(c);

    /* bootstrap.users: passwords as written (not numbers), options upper-cased */
    c = load_ok(BASE "bootstrap:\n  users:\n    admin:\n      password: 0123\n"
                     "      options: [createrole, Connection Limit 5]\n    app: {options: []}\n",
                NULL);
    const json_t *admin = json_object_get(c->bootstrap.users, "admin");
    assert_string_equal(json_string_value(json_object_get(admin, "password")), "0123");
    assert_string_equal(json_string_value(json_array_get(json_object_get(admin, "options"), 0)),
                        "CREATEROLE");
    assert_string_equal(json_string_value(json_array_get(json_object_get(admin, "options"), 1)),
                        "CONNECTION LIMIT 5");
    const json_t *app = json_object_get(c->bootstrap.users, "app");
    assert_null(json_object_get(app, "password"));
    assert_int_equal(json_array_size(json_object_get(app, "options")), 0);
    config_free(c);

    /* null values keep the defaults, as Patroni's None */
    c = load_ok(BASE "  bin_dir:\n  parameters:\n    work_mem: ~\ntags:\nbootstrap:\n  dcs:\n"
                     "    ttl: null\n",
                NULL);
    assert_null(c->postgresql.bin_dir);
    assert_int_equal(c->postgresql.parameters.n, 0);
    assert_int_equal(c->bootstrap.dcs.ttl, 30);
    config_free(c);

    /* anchors and aliases resolve as in PyYAML; quoted numbers are accepted */
    c = load_ok(BASE "  parameters: &p\n    work_mem: 4MB\nbootstrap:\n  dcs:\n    ttl: '40'\n"
                     "    postgresql:\n      parameters: *p\n",
                NULL);
    assert_string_equal(config_map_get(&c->bootstrap.dcs.parameters, "work_mem"), "4MB");
    assert_int_equal(c->bootstrap.dcs.ttl, 40);
    config_free(c);

    /* a recursive alias is walked only as deep as the schema */
    ConfigDiags d = { 0 };
    c = NULL;
    assert_int_equal(config_load_string("t", BASE "tags: &t {x: *t}\n", NULL, &c, &d), -EINVAL);
    config_free(c);
    config_diags_done(&d);

    /* diags accumulate across loads into the caller's list */
    assert_int_equal(config_load_string("a", "scope: [\n", NULL, &c, &d), -EINVAL);
    assert_int_equal(config_load_string("b", "- 1\n", NULL, &c, &d), -EINVAL);
    assert_true(d.n >= 2);
    config_diags_done(&d);

    /* an empty file is an empty mapping */
    assert_int_equal(config_load_string("e", "", NULL, &c, &d), -EINVAL);
    assert_int_equal(d.n_errors, 6);
    config_diags_done(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_table),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_replica_methods),
        cmocka_unit_test(test_bootstrap_method),
        cmocka_unit_test(test_config_from_environment),
        cmocka_unit_test(test_ctl_mode),
        cmocka_unit_test(test_env_lists_and_maps),
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_patroni_env_rest),
        cmocka_unit_test(test_etcd_port_url_proxy),
        cmocka_unit_test(test_env_satisfies_required),
        cmocka_unit_test(test_env_bad_values),
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_initdb_forms),
        cmocka_unit_test(test_yaml_booleans),
        cmocka_unit_test(test_no_secret_in_diags),
        cmocka_unit_test(test_collects_all_errors),
        cmocka_unit_test(test_patroni_aliases),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_misc),
        cmocka_unit_test(test_reference_doc_matches_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
