/* The configuration schema, private to lib/ (config*.c; dynconfig.c reads
 * the bootstrap.dcs rows): one row per YAML key with its type, field,
 * default, flags, check and environment name, plus the value syntax (ports,
 * addresses, integers, booleans) and the small containers every row type
 * fills. Nothing here logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/* Upper bound on the rows, for per-row arrays sized at compile time. */
#define CONFIG_SCHEMA_MAX 192

typedef enum ConfigType {
    CONFIG_TYPE_SECTION,  /* a mapping of further rows */
    CONFIG_TYPE_STRING,   /* char *: any scalar, optionally checked */
    CONFIG_TYPE_INT,      /* int64_t within [min, max] */
    CONFIG_TYPE_BOOL,     /* bool, YAML 1.1 spellings as PyYAML, any case */
    CONFIG_TYPE_WATCHDOG, /* ConfigWatchdogMode */
    CONFIG_TYPE_HOSTS,    /* ConfigStrv of "host:port": a list, or "h1:p,h2:p" */
    CONFIG_TYPE_STRV,     /* ConfigStrv: a list of strings */
    CONFIG_TYPE_OPTIONS,  /* ConfigStrv of "--opt"/"--k=v": list of strings/1-key maps, or a map */
    CONFIG_TYPE_MAP,      /* ConfigMap: a mapping of scalars */
    CONFIG_TYPE_JSON,     /* json_t *: any value, scalars typed as PyYAML types them */
} ConfigType;

enum {
    CONFIG_F_REQUIRED = 1 << 0,
    CONFIG_F_RELOADABLE = 1 << 1,   /* takes effect on SIGHUP without a restart */
    CONFIG_F_SECRET = 1 << 2,       /* the value never appears in a message */
    CONFIG_F_OPEN = 1 << 3,         /* SECTION: other keys go to the ConfigMap at offset */
    CONFIG_F_PG_NAMES = 1 << 4,     /* MAP: the keys are PostgreSQL parameter names */
    CONFIG_F_RECOVERY = 1 << 5,     /* MAP: Patroni's recovery_conf (pgconf_recovery_param) */
    CONFIG_F_HTTP_HEADERS = 1 << 6, /* MAP: HTTP header names and values */
};

/* Returns NULL when the value is valid, else what was expected, for
 * "expected %s for ...". */
typedef const char *(*ConfigCheck)(const char *value);

typedef struct ConfigRow {
    const char *path; /* dotted YAML path */
    ConfigType type;
    size_t offset; /* of the field in Config */
    unsigned flags;
    const char *def_str;          /* STRING default, copied */
    int64_t def_int;              /* INT, BOOL, WATCHDOG default */
    int64_t min, max;             /* INT range */
    ConfigCheck check;            /* STRING value, HOSTS item */
    const char *const *forbidden; /* OPTIONS that dbha sets itself */
    const char *env;              /* suffix after PATRONI_ / DBHA_, or NULL */
} ConfigRow;

extern const ConfigRow config_schema[];
extern const size_t config_schema_n;

/* The field of `row` inside Config `c`, as a `type *`. */
#define CONFIG_FIELD(c, row, type) ((type *)((char *)(c) + (row)->offset))

/* Returns the row for a dotted path, or NULL. */
const ConfigRow *config_schema_find(const char *path);
/* Why a key Patroni honours is refused by dbha (ignoring it would change
 * what the cluster does), or NULL. */
const char *config_refused_reason(const char *path);

/* Patroni's etcd3.url / etcd3.proxy: one endpoint as a URL, read with
 * libcurl's URL API. Strings owned. */
typedef struct ConfigEtcdUrl {
    char *protocol;  /* "http" or "https" */
    char *host_port; /* "host:port" (2379 when the URL has no port) */
    char *username;  /* NULL: none in the URL */
    char *password;  /* NULL: none in the URL */
} ConfigEtcdUrl;
/* Returns 0, -EINVAL (not an http(s) URL with a host), -ENOMEM. */
int config_etcd_url_parse(const char *s, ConfigEtcdUrl *ret);
void config_etcd_url_done(ConfigEtcdUrl *u);
/* Why a key that tunes only Patroni's own Python runtime means nothing for
 * dbha (accepted with a note), or NULL. */
const char *config_noop_note(const char *path);
/* A Patroni key whose value dbha honours more safely than Patroni would
 * (remove_data_directory_on_*, true or false): what dbha does, or NULL (a
 * value that is no boolean: then the key is warned about). value is the
 * YAML scalar as written (NULL: not a scalar). */
const char *config_stricter_note(const char *path, const char *value);
/* Whether `path` is a key Patroni knows and dbha ignores. */
bool config_is_patroni_only(const char *path);
/* What dbha does instead, for the Patroni-only keys where that needs
 * saying; NULL for the others. */
const char *config_patroni_only_note(const char *path);

/* A new Config holding every row's default. -ENOMEM. */
int config_new_defaults(Config **ret);

/* Value syntax. Each returns 0 and writes *ret, or -EINVAL (-ERANGE for an
 * integer beyond int64). */
int config_parse_bool(const char *s, bool *ret);
int config_parse_int(const char *s, int64_t *ret);
/* 1..65535 from the whole of s; -EINVAL when not digits, -ERANGE outside. */
int config_parse_port(const char *s);
/* The colon before the port in "host:port" ("[v6]:port" too), or NULL. */
const char *config_port_colon(const char *s);

/* The JSON value PyYAML (YAML 1.1) makes of a plain scalar: an integer, a
 * float, a boolean, else a string (nulls are the caller's). NULL: -ENOMEM. */
json_t *config_scalar_json(const char *s);

void config_strv_done(ConfigStrv *v);
/* Appends s and takes ownership of it, also on failure; s == NULL is -ENOMEM. */
int config_strv_push(ConfigStrv *v, char *s);
void config_map_done(ConfigMap *m);
/* Appends copies of key and value. -ENOMEM. */
int config_map_push(ConfigMap *m, const char *key, const char *value);
