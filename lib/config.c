/* Agent configuration loader. One schema table describes every key we read;
 * the libyaml document is walked against it into a fresh Config, every
 * problem is collected as a "FILE:LINE:COL: message" diagnostic, then the
 * PATRONI_* / DBHA_* environment overrides go through the same rows and the
 * cross-field rules (required keys, timing) run last. Nothing here logs. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "cmdsplit.h"
#include "config-schema.h"
#include "dynconfig.h"
#include "pgconf.h"

/* Longest key we compute an edit distance for; longer keys get no hint. */
#define CONFIG_KEY_MAX 64
/* How much of a bad value a message echoes before cutting it with "...". */
#define CONFIG_ECHO_MAX 60
/* Room for "PATRONI_" + the longest environment suffix + NUL. */
#define CONFIG_ENV_NAME_MAX 64
/* Room for "an integer between MIN and MAX" with two int64s. */
#define CONFIG_WHAT_MAX 96
/* Refuse config files larger than this: they are not configs. */
#define CONFIG_FILE_MAX (16u * 1024u * 1024u)

/* ---- diagnostics ------------------------------------------------------ */

void config_diags_done(ConfigDiags *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].text);
    }
    free(d->items);
    *d = (ConfigDiags){ 0 };
}

void config_diags_print(const ConfigDiags *d, FILE *out)
{
    for (size_t i = 0; d && i < d->n; i++) {
        ConfigSeverity s = d->items[i].severity;
        fprintf(out, "%s: %s\n",
                s == CONFIG_ERROR  ? "error"
                : s == CONFIG_NOTE ? "note"
                                   : "warning",
                d->items[i].text);
    }
}

/* Where a value came from: a file position, or an environment variable. */
typedef struct ConfigWhere {
    unsigned line, column; /* 1-based; 0 = unknown */
    const char *env;       /* borrowed; set for an environment override */
} ConfigWhere;

/* One value being applied to a row: a YAML node, or an environment string. */
typedef struct ConfigValue {
    yaml_node_t *node; /* borrowed; NULL for an environment string */
    const char *text;  /* borrowed; the scalar's text, NULL for a collection */
    ConfigWhere where;
} ConfigValue;

/* A postgresql.<name> mapping, read during the walk (the YAML document is
 * gone by the time create_replica_methods is known). */
typedef struct MethodSection {
    ConfigReplicaMethod m; /* command NULL when the section has none */
    bool bootstrap;        /* bootstrap.<name>, else postgresql.<name> */
    /* bootstrap.<name>'s own: keep_existing_recovery_conf, recovery_conf
     * (its names' places in rc_at), the places of the keys Patroni does not
     * read there (m.options' keys) in opt_at */
    bool keep_existing, has_recovery_conf;
    ConfigMap recovery_conf;
    ConfigWhere *rc_at, *opt_at;
    ConfigWhere key_at, command_at, keep_data_at;
    char *bad; /* owned: the first problem in the section, reported if it is used */
    ConfigWhere bad_at;
} MethodSection;

typedef struct ConfigLoader {
    const char *name;     /* borrowed; the file name in messages */
    Config *config;       /* borrowed; being built */
    ConfigDiags *diags;   /* borrowed; the caller's */
    yaml_document_t *doc; /* borrowed; the document being walked */
    bool oom;
    /* Per schema row: given in the file (where the key and value are),
     * given in the environment, or rejected. */
    bool in_file[CONFIG_SCHEMA_MAX], in_env[CONFIG_SCHEMA_MAX], bad[CONFIG_SCHEMA_MAX];
    ConfigWhere key_at[CONFIG_SCHEMA_MAX], value_at[CONFIG_SCHEMA_MAX], env_at[CONFIG_SCHEMA_MAX];
    char env_name[CONFIG_SCHEMA_MAX][CONFIG_ENV_NAME_MAX]; /* the variable that was applied */
    /* set while a value from the environment parsed as YAML is applied
     * (a list or a mapping): positions inside it name this variable */
    const char *env_doc;
    /* postgresql.<name> mappings that are no setting: custom replica
     * methods when create_replica_methods names them (check_replica_methods),
     * else unknown keys */
    MethodSection *sections;
    size_t n_sections;
    bool for_ctl; /* config_load_ctl(): the keys only an agent needs may be missing */
} ConfigLoader;

static void loader_diag(ConfigLoader *l, ConfigSeverity severity, const ConfigWhere *w,
                        const char *fmt, ...) _printf_(4, 5);

static void loader_diag(ConfigLoader *l, ConfigSeverity severity, const ConfigWhere *w,
                        const char *fmt, ...)
{
    static const ConfigWhere start = { 1, 1, NULL };
    _cleanup_free_ char *msg = NULL;
    char *text = NULL;
    va_list ap;
    int r;

    if (!w || (!w->env && w->line == 0)) {
        w = &start;
    }
    va_start(ap, fmt);
    r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        msg = NULL;
        l->oom = true;
        return;
    }
    if (w->env || l->env_doc) {
        r = asprintf(&text, "environment %s: %s", w->env ? w->env : l->env_doc, msg);
    } else {
        r = asprintf(&text, "%s:%u:%u: %s", l->name, w->line, w->column, msg);
    }
    if (r < 0) {
        l->oom = true;
        return;
    }
    ConfigDiag *items = realloc(l->diags->items, (l->diags->n + 1) * sizeof(*items));
    if (!items) {
        free(text);
        l->oom = true;
        return;
    }
    l->diags->items = items;
    l->diags->items[l->diags->n++] = (ConfigDiag){
        .severity = severity,
        .text = text,
        .line = w->env ? 0 : w->line,
        .column = w->env ? 0 : w->column,
    };
    if (severity == CONFIG_ERROR) {
        l->diags->n_errors++;
    }
}

#define loader_error(l, w, ...) loader_diag(l, CONFIG_ERROR, w, __VA_ARGS__)
#define loader_warn(l, w, ...)  loader_diag(l, CONFIG_WARNING, w, __VA_ARGS__)
#define loader_note(l, w, ...)  loader_diag(l, CONFIG_NOTE, w, __VA_ARGS__)

static ConfigWhere where_of_mark(yaml_mark_t m)
{
    return (ConfigWhere){ .line = (unsigned)m.line + 1, .column = (unsigned)m.column + 1 };
}

static ConfigValue value_of_node(yaml_node_t *n)
{
    return (ConfigValue){
        .node = n,
        .text = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL,
        .where = where_of_mark(n->start_mark),
    };
}

/* PyYAML's null: an empty plain scalar, "~" or null in three spellings. */
static bool value_is_null(const ConfigValue *v)
{
    if (!v->node || v->node->type != YAML_SCALAR_NODE ||
        v->node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
    for (size_t i = 0; i < ELEMENTSOF(nulls); i++) {
        if (strcmp(v->text, nulls[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Describes a value for "got ...": the scalar quoted (cut, with control
 * characters replaced), or "a mapping"/"a sequence". */
static void value_describe(const ConfigValue *v, char *buf, size_t size)
{
    if (!v->text) {
        snprintf(buf, size, "%s", v->node->type == YAML_MAPPING_NODE ? "a mapping" : "a sequence");
        return;
    }
    if (value_is_null(v)) {
        snprintf(buf, size, "an empty value");
        return;
    }
    size_t n = strlen(v->text), cut = n > CONFIG_ECHO_MAX ? CONFIG_ECHO_MAX : n;
    while (cut < n && cut > 0 && ((unsigned char)v->text[cut] & 0xC0) == 0x80) {
        cut--; /* do not split a UTF-8 sequence */
    }
    int len = snprintf(buf, size, "\"%.*s%s\"", (int)cut, v->text, cut < n ? "..." : "");
    for (int i = 1; i < len && (size_t)i < size; i++) {
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
            buf[i] = '?';
        }
    }
}

/* "expected WHAT for "PATH", got VALUE"; secrets never show the value. */
static void value_error(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v,
                        const char *what)
{
    char got[CONFIG_ECHO_MAX + 16];

    l->bad[row - config_schema] = true;
    if (row->flags & CONFIG_F_SECRET) {
        loader_error(l, &v->where, "expected %s for \"%s\"", what, row->path);
        return;
    }
    value_describe(v, got, sizeof(got));
    loader_error(l, &v->where, "expected %s for \"%s\", got %s", what, row->path, got);
}

static void loader_oom(ConfigLoader *l, int r)
{
    if (r < 0) {
        l->oom = true;
    }
}

/* ---- the schema walk -------------------------------------------------- */

/* Whether `path` is a direct child of `prefix` ("" for the top level), and
 * then its last component. */
static const char *child_name(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);

    if (n == 0) {
        return strchr(path, '.') ? NULL : path;
    }
    if (strncmp(path, prefix, n) != 0 || path[n] != '.' || strchr(path + n + 1, '.')) {
        return NULL;
    }
    return path + n + 1;
}

/* Optimal string alignment distance: Levenshtein plus the swap of two
 * adjacent characters as one edit ("mdoe" -> "mode"), the commonest typo. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[CONFIG_KEY_MAX + 1][CONFIG_KEY_MAX + 1];

    if (la > CONFIG_KEY_MAX || lb > CONFIG_KEY_MAX) {
        return SIZE_MAX;
    }
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            size_t best = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best) {
                best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static void unknown_key(ConfigLoader *l, const char *prefix, const char *key, const ConfigWhere *w,
                        const char *value)
{
    const char *sep = *prefix ? "." : "";
    _cleanup_free_ char *path = NULL;

    if (asprintf(&path, "%s%s%s", prefix, sep, key) < 0) {
        l->oom = true;
        return;
    }
    const char *refused = config_refused_reason(path);
    if (refused) {
        loader_error(l, w, "\"%s\" is not supported: %s", path, refused);
        return;
    }
    const char *stricter = config_stricter_note(path, value);
    if (stricter) {
        loader_note(l, w, "\"%s\" is honoured the stricter way: %s", path, stricter);
        return;
    }
    const char *noop = config_noop_note(path);
    if (noop) {
        loader_note(l, w, "\"%s\" is accepted and does nothing: %s", path, noop);
        return;
    }
    if (config_is_patroni_only(path)) {
        const char *note = config_patroni_only_note(path);
        if (note) {
            loader_warn(l, w, "\"%s\" is not read: %s", path, note);
        } else {
            loader_warn(l, w, "unknown key \"%s\" (a Patroni setting dbha does not use)", path);
        }
        return;
    }
    /* Suggest the closest sibling when the typo is small for its length. */
    const char *best = NULL;
    size_t best_d = SIZE_MAX, len = strlen(key);
    size_t limit = len / 3 < 1 ? 1 : (len / 3 > 2 ? 2 : len / 3);
    for (size_t i = 0; i < config_schema_n; i++) {
        const char *name = child_name(config_schema[i].path, prefix);
        if (!name) {
            continue;
        }
        size_t d = edit_distance(key, name);
        if (d < best_d) {
            best_d = d;
            best = name;
        }
    }
    if (best && best_d <= limit) {
        loader_warn(l, w, "unknown key \"%s\" (did you mean \"%s%s%s\"?)", path, prefix, sep, best);
    } else {
        loader_warn(l, w, "unknown key \"%s\"", path);
    }
}

/* Returns the key node of an earlier pair with the same scalar key. */
static yaml_node_t *earlier_key(yaml_document_t *doc, yaml_node_t *map, yaml_node_pair_t *pair,
                                const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0) {
            return k;
        }
    }
    return NULL;
}

/* Iterates a mapping's pairs with scalar, non-duplicate keys; reports the
 * others. Calls fn(l, path, key, key node, value node, userdata). */
typedef void (*ConfigPairFn)(ConfigLoader *l, const char *path, const char *key,
                             yaml_node_t *key_node, yaml_node_t *value_node, const void *userdata);

static void for_each_pair(ConfigLoader *l, const char *path, yaml_node_t *map, ConfigPairFn fn,
                          const void *userdata)
{
    const char *sep = *path ? "." : "";

    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        if (!k || !v) {
            continue;
        }
        ConfigWhere kw = where_of_mark(k->start_mark);
        if (k->type != YAML_SCALAR_NODE) {
            const char *got = k->type == YAML_MAPPING_NODE ? "a mapping" : "a sequence";
            if (*path) {
                loader_error(l, &kw, "expected a scalar key in \"%s\", got %s", path, got);
            } else {
                loader_error(l, &kw, "expected a scalar key at the top level, got %s", got);
            }
            continue;
        }
        const char *key = (const char *)k->data.scalar.value;
        yaml_node_t *first = earlier_key(l->doc, map, p, key);
        if (first) {
            loader_error(l, &kw, "duplicate key \"%s%s%s\" (first given at line %u)", path, sep,
                         key, (unsigned)first->start_mark.line + 1);
            continue;
        }
        fn(l, path, key, k, v, userdata);
    }
}

static void apply_value(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v);
static bool check_slots_value(ConfigLoader *l, const ConfigRow *row, yaml_node_t *value,
                              const json_t *j);
static bool check_standby_value(ConfigLoader *l, const ConfigRow *row, yaml_node_t *value,
                                const json_t *j);
static json_t *users_json(ConfigLoader *l, yaml_node_t *value);

/* ---- custom replica methods (postgresql.<name>) ---------------------- */

static size_t row_index(const char *path);

/* Python's truth of a YAML scalar as PyYAML loads it: null, false/no/off,
 * a zero number and '' are false. */
static bool py_truth(const ConfigValue *v)
{
    if (value_is_null(v)) {
        return false;
    }
    bool plain = v->node && v->node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    bool b;
    if (plain && config_parse_bool(v->text, &b) == 0) {
        return b;
    }
    if (plain) {
        char *end = NULL;
        double d = strtod(v->text, &end);
        if (end != v->text && *end == '\0') {
            return d != 0;
        }
    }
    return *v->text != '\0';
}

/* str() of a YAML scalar as PyYAML loads it, for --key=value: booleans
 * True/False, null None, anything else as written. */
static const char *py_str(const ConfigValue *v)
{
    if (value_is_null(v)) {
        return "None";
    }
    bool b;
    if (v->node && v->node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        config_parse_bool(v->text, &b) == 0) {
        return b ? "True" : "False";
    }
    return v->text;
}

/* Whether unknown_key() would only warn about postgresql.<key>: then a
 * mapping there may be a replica method's section. */
static bool method_section_candidate(const char *prefix, const char *key)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s.%s", prefix, key) < 0) {
        return false;
    }
    return !config_refused_reason(path) && !config_stricter_note(path, NULL) &&
           !config_noop_note(path) && !config_is_patroni_only(path);
}

static void method_bad(ConfigLoader *l, MethodSection *ms, const ConfigWhere *w, const char *fmt,
                       ...) _printf_(4, 5);
static void method_bad(ConfigLoader *l, MethodSection *ms, const ConfigWhere *w, const char *fmt,
                       ...)
{
    if (ms->bad) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&ms->bad, fmt, ap) < 0) {
        ms->bad = NULL;
        l->oom = true;
    }
    va_end(ap);
    ms->bad_at = *w;
}

static int push_where(ConfigWhere **v, size_t n, const ConfigWhere *w)
{
    ConfigWhere *nv = realloc(*v, (n + 1) * sizeof(*nv));
    if (!nv) {
        return -ENOMEM;
    }
    nv[n] = *w;
    *v = nv;
    return 0;
}

static void recovery_pair(ConfigLoader *l, const char *path, const char *key, yaml_node_t *k,
                          yaml_node_t *vn, const void *userdata)
{
    MethodSection *ms = (MethodSection *)userdata;
    ConfigValue v = value_of_node(vn);
    ConfigWhere kw = where_of_mark(k->start_mark);
    if (!v.text) {
        char got[CONFIG_ECHO_MAX + 16];
        value_describe(&v, got, sizeof(got));
        method_bad(l, ms, &v.where, "expected a scalar for \"%s.%s\", got %s", path, key, got);
        return;
    }
    if (value_is_null(&v)) {
        return; /* as Patroni: not set */
    }
    size_t n = ms->recovery_conf.n;
    loader_oom(l, push_where(&ms->rc_at, n, &kw));
    loader_oom(l, config_map_push(&ms->recovery_conf, key, v.text));
}

/* bootstrap.<name>: Patroni reads command, no_params, recovery_conf and
 * keep_existing_recovery_conf; anything else is kept, to be warned about
 * if the section is the method. */
static void bootstrap_method_pair(ConfigLoader *l, MethodSection *ms, const char *path,
                                  const char *key, const ConfigWhere *kw, const ConfigValue *v)
{
    if (strcmp(key, "recovery_conf") == 0) {
        if (v->node->type != YAML_MAPPING_NODE) {
            if (!value_is_null(v)) {
                method_bad(l, ms, &v->where,
                           "expected a mapping of recovery settings for \"%s.recovery_conf\"",
                           path);
            }
            return;
        }
        ms->has_recovery_conf = true;
        _cleanup_free_ char *sub = NULL;
        if (asprintf(&sub, "%s.recovery_conf", path) < 0) {
            l->oom = true;
            return;
        }
        for_each_pair(l, sub, v->node, recovery_pair, ms);
        return;
    }
    if (!v->text) {
        char got[CONFIG_ECHO_MAX + 16];
        value_describe(v, got, sizeof(got));
        method_bad(l, ms, &v->where, "expected a scalar for \"%s.%s\", got %s", path, key, got);
        return;
    }
    if (strcmp(key, "no_params") == 0) {
        ms->m.no_params = py_truth(v);
    } else if (strcmp(key, "keep_existing_recovery_conf") == 0) {
        ms->keep_existing = py_truth(v);
    } else {
        size_t n = ms->m.options.n;
        loader_oom(l, push_where(&ms->opt_at, n, kw));
        loader_oom(l, config_map_push(&ms->m.options, key, v->text));
    }
}

static void method_pair(ConfigLoader *l, const char *path, const char *key, yaml_node_t *k,
                        yaml_node_t *vn, const void *userdata)
{
    MethodSection *ms = (MethodSection *)userdata;
    ConfigValue v = value_of_node(vn);
    ConfigWhere kw = where_of_mark(k->start_mark);

    if (ms->bootstrap && strcmp(key, "command") != 0) {
        bootstrap_method_pair(l, ms, path, key, &kw, &v);
        return;
    }
    if (!v.text) {
        char got[CONFIG_ECHO_MAX + 16];
        value_describe(&v, got, sizeof(got));
        method_bad(l, ms, &v.where,
                   "expected a scalar for \"%s.%s\", got %s (it is passed to the "
                   "method's command as --%s=VALUE)",
                   path, key, got, key);
        return;
    }
    if (strcmp(key, "command") == 0) {
        char **argv = NULL;
        int n = value_is_null(&v) ? 0 : cmdsplit(v.text, &argv);
        cmdsplit_free(argv);
        if (n <= 0) {
            method_bad(l, ms, &v.where,
                       "expected a command line for \"%s.command\" (words as a shell splits "
                       "them, quotes closed)",
                       path);
            return;
        }
        free(ms->m.command);
        ms->m.command = strdup(v.text);
        loader_oom(l, ms->m.command ? 0 : -ENOMEM);
        ms->command_at = v.where;
        return;
    }
    if (strchr(key, '=') || !*key) {
        method_bad(l, ms, &kw,
                   "\"%s.%s\": an option name cannot be empty or hold \"=\" (it is "
                   "passed as --NAME=VALUE)",
                   path, key);
        return;
    }
    if (strcmp(key, "keep_data") == 0) {
        ms->m.keep_data = py_truth(&v);
        ms->keep_data_at = kw;
    } else if (strcmp(key, "no_params") == 0) {
        ms->m.no_params = py_truth(&v);
    } else if (strcmp(key, "no_leader") == 0 || strcmp(key, "no_master") == 0) {
        ms->m.no_leader = ms->m.no_leader || py_truth(&v);
    }
    loader_oom(l, config_map_push(&ms->m.options, key, py_str(&v)));
}

static void method_section(ConfigLoader *l, const char *prefix, const char *key,
                           const ConfigWhere *kw, yaml_node_t *vn)
{
    MethodSection *s = realloc(l->sections, (l->n_sections + 1) * sizeof(*s));
    if (!s) {
        l->oom = true;
        return;
    }
    l->sections = s;
    MethodSection *ms = &s[l->n_sections++];
    *ms = (MethodSection){ .key_at = *kw, .bootstrap = strcmp(prefix, "bootstrap") == 0 };
    ms->m.name = strdup(key);
    if (!ms->m.name) {
        l->oom = true;
        return;
    }
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s.%s", prefix, key) < 0) {
        l->oom = true;
        return;
    }
    for_each_pair(l, path, vn, method_pair, ms);
}

static void method_section_done(MethodSection *ms)
{
    free(ms->m.name);
    free(ms->m.command);
    config_map_done(&ms->m.options);
    config_map_done(&ms->recovery_conf);
    free(ms->rc_at);
    free(ms->opt_at);
    free(ms->bad);
    *ms = (MethodSection){ 0 };
}

static void sections_free(ConfigLoader *l)
{
    for (size_t i = 0; i < l->n_sections; i++) {
        method_section_done(&l->sections[i]);
    }
    free(l->sections);
    l->sections = NULL;
    l->n_sections = 0;
}

/* The custom methods create_replica_methods names, in its order, each with
 * its section (or none: Patroni then runs the name as the command); a
 * section no method names is an unknown key, as before. */
/* The i-th name of postgresql.create_replica_methods, then of
 * bootstrap.dcs.standby_cluster.create_replica_methods (the methods of a
 * standby cluster's clones, whose sections are under postgresql too), with
 * where the list is and which key it is; NULL past the end. */
static const char *method_list_name(ConfigLoader *l, size_t i, const ConfigWhere **ret_at,
                                    const char **ret_key)
{
    Config *c = l->config;
    size_t crm = row_index("postgresql.create_replica_methods");
    const ConfigStrv *names = &c->postgresql.create_replica_methods;
    size_t n = l->bad[crm] ? 0 : names->n;
    if (i < n) {
        *ret_at = l->in_env[crm] ? &l->env_at[crm] : &l->value_at[crm];
        *ret_key = "postgresql.create_replica_methods";
        return names->items[i];
    }
    size_t sb = row_index("bootstrap.dcs.standby_cluster");
    const json_t *list =
        l->bad[sb] ? NULL
                   : json_object_get(c->bootstrap.dcs.standby_cluster, "create_replica_methods");
    const json_t *v = json_is_array(list) ? json_array_get(list, i - n) : NULL;
    *ret_at = l->in_env[sb] ? &l->env_at[sb] : &l->value_at[sb];
    *ret_key = "bootstrap.dcs.standby_cluster.create_replica_methods";
    return json_string_value(v);
}

static void check_replica_methods(ConfigLoader *l)
{
    Config *c = l->config;
    bool *used = calloc(l->n_sections + 1, sizeof(*used));
    if (!used) {
        l->oom = true;
        return;
    }
    const ConfigWhere *list_at;
    const char *list_key, *name;
    for (size_t i = 0; (name = method_list_name(l, i, &list_at, &list_key)); i++) {
        if (strcmp(name, "basebackup") == 0) {
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < c->postgresql.n_replica_methods; j++) {
            dup = dup || strcmp(c->postgresql.replica_methods[j].name, name) == 0;
        }
        if (dup) {
            continue; /* Patroni would run it twice; once is what was meant */
        }
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "postgresql.%s", name) < 0) {
            l->oom = true;
            break;
        }
        if (!*name || strchr(name, '.')) {
            loader_error(l, list_at,
                         "\"%s\": \"%s\" cannot name a replica method: a method's name is the "
                         "key of its section under postgresql",
                         list_key, name);
            continue;
        }
        if (config_schema_find(path)) {
            loader_error(l, list_at,
                         "\"%s\": \"%s\" cannot name a replica method: \"%s\" is a setting, "
                         "not a method's section",
                         list_key, name, path);
            continue;
        }
        MethodSection *ms = NULL;
        for (size_t j = 0; j < l->n_sections; j++) {
            if (!used[j] && !l->sections[j].bootstrap && strcmp(l->sections[j].m.name, name) == 0) {
                ms = &l->sections[j];
                used[j] = true;
            }
        }
        if (ms && ms->bad) {
            loader_error(l, &ms->bad_at, "%s", ms->bad);
            continue;
        }
        if (ms && ms->m.keep_data) {
            loader_note(l, &ms->keep_data_at,
                        "\"postgresql.%s.keep_data\" is honoured the stricter way: dbha runs a "
                        "replica method only on an empty data directory (older data was moved "
                        "aside, kept), so there is nothing to keep and a delta restore copies "
                        "everything",
                        name);
        }
        ConfigReplicaMethod m = { 0 };
        if (ms) {
            m = ms->m;
            ms->m = (ConfigReplicaMethod){ 0 };
        } else {
            m.name = strdup(name);
            if (!m.name) {
                l->oom = true;
                break;
            }
        }
        if (!m.command) {
            /* Patroni runs the method's name */
            m.command = strdup(m.name);
            char **argv = NULL;
            int n = m.command ? cmdsplit(m.command, &argv) : -ENOMEM;
            cmdsplit_free(argv);
            if (n <= 0 && m.command) {
                loader_error(l, ms ? &ms->key_at : list_at,
                             "\"postgresql.%s\": the method has no \"command\" and its name is "
                             "no command line: give it a command",
                             name);
            }
        }
        ConfigReplicaMethod *v = m.command
                                     ? realloc(c->postgresql.replica_methods,
                                               (c->postgresql.n_replica_methods + 1) * sizeof(*v))
                                     : NULL;
        if (!v) {
            free(m.name);
            free(m.command);
            config_map_done(&m.options);
            l->oom = true;
            break;
        }
        c->postgresql.replica_methods = v;
        v[c->postgresql.n_replica_methods++] = m;
    }
    for (size_t j = 0; j < l->n_sections; j++) {
        if (!used[j] && !l->sections[j].bootstrap) {
            unknown_key(l, "postgresql", l->sections[j].m.name, &l->sections[j].key_at, NULL);
        }
    }
    free(used);
}

/* The recovery settings a custom bootstrap may start with (Patroni writes
 * them with recovery.signal): PostgreSQL 13 and later's, targets included. */
static bool bootstrap_recovery_name(const char *name)
{
    static const char *const names[] = {
        "restore_command",          "archive_cleanup_command", "recovery_end_command",
        "recovery_target",          "recovery_target_name",    "recovery_target_time",
        "recovery_target_xid",      "recovery_target_lsn",     "recovery_target_inclusive",
        "recovery_target_timeline", "recovery_target_action",  "recovery_min_apply_delay",
        "promote_trigger_file",
    };
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* bootstrap.method other than initdb: its bootstrap.<name> section, which
 * must have a command (Patroni runs initdb instead, silently). The other
 * bootstrap.<name> sections are unknown keys, as before. */
static void check_bootstrap_method_section(ConfigLoader *l)
{
    Config *c = l->config;
    size_t bm = row_index("bootstrap.method");
    const char *method = c->bootstrap.method;
    const ConfigWhere *at = l->in_env[bm] ? &l->env_at[bm] : &l->value_at[bm];
    bool custom = method && strcmp(method, "initdb") != 0 && !l->bad[bm];
    MethodSection *use = NULL;
    for (size_t j = 0; j < l->n_sections; j++) {
        MethodSection *ms = &l->sections[j];
        if (!ms->bootstrap) {
            continue;
        }
        if (custom && !use && strcmp(ms->m.name, method) == 0) {
            use = ms;
        } else {
            unknown_key(l, "bootstrap", ms->m.name, &ms->key_at, NULL);
        }
    }
    if (!custom) {
        return;
    }
    if (!use || (!use->m.command && !use->bad)) {
        loader_error(l, use ? &use->key_at : at,
                     "\"bootstrap.method\": \"%s\" needs a section \"bootstrap.%s\" with a "
                     "\"command\" (Patroni would run initdb instead): give it one, or use "
                     "method: initdb",
                     method, method);
        return;
    }
    if (use->bad) {
        loader_error(l, &use->bad_at, "%s", use->bad);
        return;
    }
    for (size_t i = 0; i < use->m.options.n; i++) {
        loader_warn(l, &use->opt_at[i],
                    "\"bootstrap.%s.%s\" is not read: Patroni passes a bootstrap method's command "
                    "only --scope and --datadir (none with no_params), and so does dbha",
                    method, use->m.options.items[i].key);
    }
    bool ok = true;
    for (size_t i = 0; i < use->recovery_conf.n; i++) {
        const char *name = use->recovery_conf.items[i].key;
        if (strcmp(name, "standby_mode") == 0) {
            loader_error(l, &use->rc_at[i],
                         "\"bootstrap.%s.recovery_conf.standby_mode\": a bootstrap that stays a "
                         "standby never ends (the cluster would have no primary): remove it, and "
                         "end the recovery with recovery_target_action: promote",
                         method);
            ok = false;
        } else if (!bootstrap_recovery_name(name)) {
            char shown[PGCONF_PRINTABLE_MAX];
            loader_error(l, &use->rc_at[i],
                         "in \"bootstrap.%s.recovery_conf\": \"%s\" is not a recovery setting "
                         "of PostgreSQL 13 or later: use restore_command, recovery_target_time "
                         "(or another recovery_target_*), recovery_target_action, "
                         "recovery_end_command, archive_cleanup_command, recovery_min_apply_delay "
                         "or promote_trigger_file",
                         method, pgconf_printable(name, shown, sizeof(shown)));
            ok = false;
        }
    }
    if (!ok) {
        return;
    }
    ConfigBootstrapMethod *b = calloc(1, sizeof(*b));
    if (!b) {
        l->oom = true;
        return;
    }
    *b = (ConfigBootstrapMethod){
        .name = use->m.name,
        .command = use->m.command,
        .no_params = use->m.no_params,
        .keep_existing_recovery_conf = use->keep_existing,
        .has_recovery_conf = use->has_recovery_conf,
        .recovery_conf = use->recovery_conf,
    };
    use->m.name = use->m.command = NULL;
    use->recovery_conf = (ConfigMap){ 0 };
    c->bootstrap.custom = b;
}

static void section_pair(ConfigLoader *l, const char *path, const char *key, yaml_node_t *k,
                         yaml_node_t *vn, const void *userdata)
{
    const ConfigRow *section = userdata;
    const ConfigRow *row = NULL;
    ConfigWhere kw = where_of_mark(k->start_mark);
    ConfigValue v = value_of_node(vn);

    /* A dotted key is one YAML key, not a path into the schema. */
    if (!strchr(key, '.')) {
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s%s%s", path, *path ? "." : "", key) < 0) {
            l->oom = true;
            return;
        }
        row = config_schema_find(full);
    }
    if (!row && section && (section->flags & CONFIG_F_OPEN)) {
        /* Any other tag is kept as written, for the member's tags JSON. */
        if (!v.text) {
            char got[CONFIG_ECHO_MAX + 16];
            value_describe(&v, got, sizeof(got));
            loader_error(l, &v.where, "expected a scalar for \"%s.%s\", got %s", path, key, got);
        } else if (!value_is_null(&v)) {
            loader_oom(l,
                       config_map_push(CONFIG_FIELD(l->config, section, ConfigMap), key, v.text));
        }
        return;
    }
    if (!row && vn->type == YAML_MAPPING_NODE &&
        (strcmp(path, "postgresql") == 0 || strcmp(path, "bootstrap") == 0) &&
        method_section_candidate(path, key)) {
        method_section(l, path, key, &kw, vn);
        return;
    }
    if (!row) {
        unknown_key(l, path, key, &kw, v.text);
        return;
    }
    size_t i = (size_t)(row - config_schema);
    l->in_file[i] = true;
    l->key_at[i] = kw;
    l->value_at[i] = v.where;
    apply_value(l, row, &v);
}

/* RFC 9110's token */
static bool http_header_name_ok(const char *s)
{
    if (!*s) {
        return false;
    }
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!(isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch))) {
            return false;
        }
    }
    return true;
}

/* field-value: visible characters, spaces and tabs (obs-text allowed) */
static bool http_header_value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

static void map_pair(ConfigLoader *l, const char *path, const char *key, yaml_node_t *k,
                     yaml_node_t *vn, const void *userdata)
{
    const ConfigRow *row = userdata;
    ConfigMap *m = CONFIG_FIELD(l->config, row, ConfigMap);
    ConfigValue v = value_of_node(vn);

    if ((row->flags & CONFIG_F_PG_NAMES) && !pgconf_name_valid(key)) {
        ConfigWhere kw = where_of_mark(k->start_mark);
        char shown[PGCONF_PRINTABLE_MAX];
        loader_error(l, &kw, "in \"%s\": " PGCONF_NAME_HINT, path,
                     pgconf_printable(key, shown, sizeof(shown)));
        return;
    }
    if ((row->flags & CONFIG_F_HTTP_HEADERS) && !http_header_name_ok(key)) {
        ConfigWhere kw = where_of_mark(k->start_mark);
        char shown[PGCONF_PRINTABLE_MAX];
        loader_error(l, &kw,
                     "in \"%s\": \"%s\" is not an HTTP header name: use letters, digits and "
                     "!#$%%&'*+-.^_`|~ only",
                     path, pgconf_printable(key, shown, sizeof(shown)));
        return;
    }
    if ((row->flags & CONFIG_F_HTTP_HEADERS) && v.text && !http_header_value_ok(v.text)) {
        loader_error(l, &v.where,
                     "\"%s.%s\": a header value must not hold a line break or another control "
                     "character (it would end the header)",
                     path, key);
        return;
    }
    const char *why = NULL;
    if (row->flags & CONFIG_F_RECOVERY) {
        ConfigWhere kw = where_of_mark(k->start_mark);
        char shown[PGCONF_PRINTABLE_MAX];
        switch (pgconf_recovery_param(key, &why)) {
        case PGCONF_RECOVERY_WRITTEN:
            break;
        case PGCONF_RECOVERY_DROPPED:
            loader_warn(l, &kw, "\"%s.%s\" is not written: %s", path,
                        pgconf_printable(key, shown, sizeof(shown)), why);
            return;
        case PGCONF_RECOVERY_UNKNOWN:
            loader_error(l, &kw,
                         "in \"%s\": \"%s\" is not a recovery setting of PostgreSQL 13 or later: "
                         "use restore_command, archive_cleanup_command, recovery_end_command, "
                         "recovery_min_apply_delay or promote_trigger_file (other settings go "
                         "under parameters)",
                         path, pgconf_printable(key, shown, sizeof(shown)));
            return;
        }
    }
    if (!v.text) {
        char got[CONFIG_ECHO_MAX + 16];
        value_describe(&v, got, sizeof(got));
        loader_error(l, &v.where, "expected a scalar for \"%s.%s\", got %s", path, key, got);
        return;
    }
    if (value_is_null(&v)) {
        return; /* as Patroni: a null parameter is not set */
    }
    loader_oom(l, config_map_push(m, key, v.text));
}

/* "--name" or "--name=value" from an initdb/pg_basebackup option, unless
 * dbha passes that option itself. */
static int option_add(ConfigLoader *l, const ConfigRow *row, ConfigStrv *out, const ConfigWhere *w,
                      const char *name, const char *value)
{
    const char *bare = name;
    size_t n;
    char *s = NULL;

    while (*bare == '-') {
        bare++;
    }
    n = strcspn(bare, "=");
    for (const char *const *f = row->forbidden; f && *f; f++) {
        if (strlen(*f) == n && strncmp(*f, bare, n) == 0) {
            loader_error(l, w, "option \"%.*s\" is not allowed in \"%s\" (dbha sets it)", (int)n,
                         bare, row->path);
            l->bad[row - config_schema] = true;
            return 0;
        }
    }
    /* Patroni prefixes "--"; an option written with its dashes is kept. */
    const char *dashes = name[0] == '-' ? "" : "--";
    int r =
        value ? asprintf(&s, "%s%s=%s", dashes, name, value) : asprintf(&s, "%s%s", dashes, name);
    return config_strv_push(out, r < 0 ? NULL : s);
}

static void options_pair(ConfigLoader *l, const char *path, const char *key, yaml_node_t *k,
                         yaml_node_t *vn, const void *userdata)
{
    const ConfigRow *row = config_schema_find(path);
    ConfigValue v = value_of_node(vn);

    if (!v.text) {
        value_error(l, row, &v, "a scalar option value");
        return;
    }
    if (value_is_null(&v)) {
        return; /* Patroni skips options without a value */
    }
    ConfigWhere kw = where_of_mark(k->start_mark);
    loader_oom(l, option_add(l, row, (ConfigStrv *)userdata, &kw, key, v.text));
}

static void apply_options(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v,
                          ConfigStrv *out)
{
    if (v->node->type == YAML_MAPPING_NODE) {
        for_each_pair(l, row->path, v->node, options_pair, out);
        return;
    }
    yaml_node_t *seq = v->node;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *n = yaml_document_get_node(l->doc, *it);
        ConfigValue item = value_of_node(n);
        if (item.text && !value_is_null(&item)) {
            loader_oom(l, option_add(l, row, out, &item.where, item.text, NULL));
            continue;
        }
        if (n->type == YAML_MAPPING_NODE &&
            n->data.mapping.pairs.top - n->data.mapping.pairs.start == 1) {
            yaml_node_t *k = yaml_document_get_node(l->doc, n->data.mapping.pairs.start->key);
            yaml_node_t *val = yaml_document_get_node(l->doc, n->data.mapping.pairs.start->value);
            ConfigValue vv = value_of_node(val);
            if (k->type == YAML_SCALAR_NODE && vv.text && !value_is_null(&vv)) {
                loader_oom(l, option_add(l, row, out, &item.where,
                                         (const char *)k->data.scalar.value, vv.text));
                continue;
            }
        }
        value_error(l, row, &item, "a string or a single \"key: value\" mapping");
    }
}

/* One "host:port" of etcd3.hosts; `len` bytes of s, blanks trimmed. */
static void hosts_add(ConfigLoader *l, const ConfigRow *row, ConfigStrv *out, const ConfigValue *v,
                      const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++, len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        len--;
    }
    _cleanup_free_ char *host = strndup(s, len);
    if (!host) {
        l->oom = true;
        return;
    }
    const char *what = row->check(host);
    if (what) {
        ConfigValue item = { .node = v->node, .text = host, .where = v->where };
        value_error(l, row, &item, what);
        return;
    }
    loader_oom(l, config_strv_push(out, TAKE_PTR(host)));
}

static void apply_hosts(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v,
                        ConfigStrv *out)
{
    if (v->text) {
        for (const char *s = v->text;;) {
            size_t n = strcspn(s, ",");
            if (n > 0 || s[n] == ',') {
                hosts_add(l, row, out, v, s, n);
            }
            if (!s[n]) {
                break;
            }
            s += n + 1;
        }
        return;
    }
    yaml_node_t *seq = v->node;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        ConfigValue item = value_of_node(yaml_document_get_node(l->doc, *it));
        if (v->where.env) {
            item.where = v->where; /* not a position in the variable's text */
        }
        if (!item.text || value_is_null(&item)) {
            value_error(l, row, &item, "\"host:port\"");
            continue;
        }
        hosts_add(l, row, out, &item, item.text, strlen(item.text));
    }
}

static void apply_strv(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v, ConfigStrv *out)
{
    yaml_node_t *seq = v->node;

    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        ConfigValue item = value_of_node(yaml_document_get_node(l->doc, *it));
        if (!item.text || value_is_null(&item)) {
            value_error(l, row, &item, "a string");
            continue;
        }
        const char *what = row->check ? row->check(item.text) : NULL;
        if (what) {
            value_error(l, row, &item, what);
            continue;
        }
        loader_oom(l, config_strv_push(out, strdup(item.text)));
    }
}

/* Applies one value (from the file or the environment) to its row. A null
 * leaves the default, as Patroni treats a key without a value. */
/* The JSON value of a YAML node as PyYAML loads it: a mapping with scalar
 * keys, a sequence, a null, a plain scalar typed (config_scalar_json()), a
 * quoted scalar a string. Reports a non-scalar or duplicate key at its
 * position and returns NULL (also on -ENOMEM, with l->oom). */
static json_t *node_json(ConfigLoader *l, yaml_node_t *n, unsigned depth)
{
    ConfigValue v = value_of_node(n);
    if (depth > 32) {
        loader_error(l, &v.where, "nested more than 32 levels deep");
        return NULL;
    }
    json_t *out = NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        out = value_is_null(&v)                                 ? json_null()
              : n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? config_scalar_json(v.text)
                                                                : json_string(v.text);
        break;
    case YAML_SEQUENCE_NODE:
        out = json_array();
        for (yaml_node_item_t *i = n->data.sequence.items.start;
             out && i < n->data.sequence.items.top; i++) {
            yaml_node_t *item = yaml_document_get_node(l->doc, *i);
            json_t *j = item ? node_json(l, item, depth + 1) : NULL;
            if (!j || json_array_append_new(out, j) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        break;
    case YAML_MAPPING_NODE:
        out = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             out && p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
            yaml_node_t *val = yaml_document_get_node(l->doc, p->value);
            if (!k || !val) {
                continue;
            }
            ConfigWhere kw = where_of_mark(k->start_mark);
            if (k->type != YAML_SCALAR_NODE) {
                loader_error(l, &kw, "expected a scalar key");
                json_decref(out);
                return NULL;
            }
            const char *key = (const char *)k->data.scalar.value;
            if (json_object_get(out, key)) {
                loader_error(l, &kw, "duplicate key \"%s\"", key);
                json_decref(out);
                return NULL;
            }
            json_t *j = node_json(l, val, depth + 1);
            if (!j || json_object_set_new(out, key, j) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        break;
    default:
        break;
    }
    if (!out && !l->diags->n_errors) {
        l->oom = true;
    }
    return out;
}

static void apply_value(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v)
{
    Config *c = l->config;
    bool is_map = v->node && v->node->type == YAML_MAPPING_NODE;
    bool is_seq = v->node && v->node->type == YAML_SEQUENCE_NODE;

    if (value_is_null(v)) {
        return;
    }
    switch (row->type) {
    case CONFIG_TYPE_SECTION:
        if (!is_map) {
            value_error(l, row, v, "a mapping");
            return;
        }
        for_each_pair(l, row->path, v->node, section_pair, row);
        return;
    case CONFIG_TYPE_STRING: {
        const char *what = !v->text                                        ? "a string"
                           : (row->flags & CONFIG_F_REQUIRED) && !*v->text ? "a non-empty string"
                           : row->check                                    ? row->check(v->text)
                                                                           : NULL;
        if (what) {
            value_error(l, row, v, what);
            return;
        }
        char *s = strdup(v->text);
        if (!s) {
            l->oom = true;
            return;
        }
        free(*CONFIG_FIELD(c, row, char *));
        *CONFIG_FIELD(c, row, char *) = s;
        return;
    }
    case CONFIG_TYPE_INT: {
        int64_t n = 0;
        int r = v->text ? config_parse_int(v->text, &n) : -EINVAL;
        if (r == -EINVAL) {
            value_error(l, row, v, "an integer");
            return;
        }
        if (r < 0 || n < row->min || n > row->max) {
            char what[CONFIG_WHAT_MAX];
            /* Rows bounded only by the type's width read as "at least". */
            bool open_ended =
                row->max == INT64_MAX || (r == 0 && n < row->min && row->max >= INT32_MAX);
            if (open_ended) {
                snprintf(what, sizeof(what), "an integer >= %" PRId64, row->min);
            } else {
                snprintf(what, sizeof(what), "an integer between %" PRId64 " and %" PRId64,
                         row->min, row->max);
            }
            value_error(l, row, v, what);
            return;
        }
        *CONFIG_FIELD(c, row, int64_t) = n;
        return;
    }
    case CONFIG_TYPE_BOOL: {
        bool b;
        if (!v->text || config_parse_bool(v->text, &b) < 0) {
            value_error(l, row, v, "a boolean");
            return;
        }
        *CONFIG_FIELD(c, row, bool) = b;
        return;
    }
    case CONFIG_TYPE_WATCHDOG: {
        ConfigWatchdogMode m =
            v->text ? config_watchdog_mode_from_string(v->text) : _CONFIG_WATCHDOG_INVALID;
        if (m < 0) {
            value_error(l, row, v, "one of off, automatic, required");
            return;
        }
        *CONFIG_FIELD(c, row, ConfigWatchdogMode) = m;
        return;
    }
    case CONFIG_TYPE_HOSTS:
    case CONFIG_TYPE_STRV:
    case CONFIG_TYPE_OPTIONS: {
        ConfigStrv fresh = { 0 };
        size_t errors = l->diags->n_errors;
        if (row->type == CONFIG_TYPE_HOSTS && (v->text || is_seq)) {
            apply_hosts(l, row, v, &fresh);
        } else if (row->type == CONFIG_TYPE_STRV && is_seq) {
            apply_strv(l, row, v, &fresh);
        } else if (row->type == CONFIG_TYPE_OPTIONS && (is_seq || is_map)) {
            apply_options(l, row, v, &fresh);
        } else {
            value_error(l, row, v,
                        row->type == CONFIG_TYPE_HOSTS
                            ? "a list or a comma-separated string of \"host:port\""
                        : row->type == CONFIG_TYPE_STRV ? "a list of strings"
                                                        : "a list or a mapping of options");
        }
        if (l->diags->n_errors != errors || l->oom) {
            l->bad[row - config_schema] = true;
            config_strv_done(&fresh);
            return;
        }
        config_strv_done(CONFIG_FIELD(c, row, ConfigStrv));
        *CONFIG_FIELD(c, row, ConfigStrv) = fresh;
        return;
    }
    case CONFIG_TYPE_MAP:
        if (!is_map) {
            value_error(l, row, v, "a mapping");
            return;
        }
        for_each_pair(l, row->path, v->node, map_pair, row);
        return;
    case CONFIG_TYPE_JSON: {
        bool users = strcmp(row->path, "bootstrap.users") == 0;
        if (users && !v->node) {
            value_error(l, row, v, "a mapping of role names to {password, options}");
            return;
        }
        json_t *j = users     ? users_json(l, v->node)
                    : v->node ? node_json(l, v->node, 0)
                              : json_string(v->text);
        if (!j) {
            l->oom = l->oom || !v->node;
            l->bad[row - config_schema] = true;
            return;
        }
        if (v->node &&
            (!check_slots_value(l, row, v->node, j) || !check_standby_value(l, row, v->node, j))) {
            json_decref(j);
            l->bad[row - config_schema] = true;
            return;
        }
        json_decref(*CONFIG_FIELD(c, row, json_t *));
        *CONFIG_FIELD(c, row, json_t *) = j;
        return;
    }
    }
}

/* ---- parsing ---------------------------------------------------------- */

static void yaml_syntax_error(ConfigLoader *l, const yaml_parser_t *p, const char *text, size_t len)
{
    ConfigWhere w = where_of_mark(p->problem_mark);

    if (p->error == YAML_MEMORY_ERROR) {
        l->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        w = (ConfigWhere){ 1, 1, NULL };
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                w.line++, w.column = 1;
            } else {
                w.column++;
            }
        }
    }
    if (p->context) {
        loader_error(l, &w, "YAML syntax error: %s (%s at line %u, column %u)", strna(p->problem),
                     p->context, (unsigned)p->context_mark.line + 1,
                     (unsigned)p->context_mark.column + 1);
    } else {
        loader_error(l, &w, "YAML syntax error: %s", strna(p->problem));
    }
}

/* Parses and walks the document; false when the YAML itself is broken
 * (then nothing else is worth checking). */
static bool load_yaml(ConfigLoader *l, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, next;
    bool ok = false;

    if (!yaml_parser_initialize(&parser)) {
        l->oom = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_syntax_error(l, &parser, text, len);
        yaml_parser_delete(&parser);
        return false;
    }
    l->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        ConfigValue v = value_of_node(root);
        if (root->type == YAML_MAPPING_NODE) {
            for_each_pair(l, "", root, section_pair, NULL);
        } else if (!value_is_null(&v)) {
            char got[CONFIG_ECHO_MAX + 16];
            value_describe(&v, got, sizeof(got));
            loader_error(l, &v.where, "expected a mapping at the top level, got %s", got);
            goto out; /* every key would be "missing": say nothing more */
        }
        /* As PyYAML's safe_load: one document only. */
        if (!yaml_parser_load(&parser, &next)) {
            yaml_syntax_error(l, &parser, text, len);
            goto out;
        }
        yaml_node_t *second = yaml_document_get_root_node(&next);
        if (second) {
            ConfigWhere w = where_of_mark(next.start_mark);
            loader_error(l, &w, "expected a single YAML document, found another");
        }
        yaml_document_delete(&next);
    }
    ok = true;
out:
    l->doc = NULL;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ok;
}

/* ---- environment ------------------------------------------------------ */

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);

    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
            return *e + n + 1;
        }
    }
    return NULL;
}

/* PATRONI_ETCD3_HOSTS may be Patroni's YAML list form ("'h1:p','h2:p'" or
 * "[...]"); it is parsed as YAML, the plain "h1:p,h2:p" form as a string. */
static void apply_env_hosts(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v)
{
    const char *s = v->text + strspn(v->text, " \t");
    _cleanup_free_ char *wrapped = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;

    if (!strpbrk(s, "'\"[") && *s != '-') {
        apply_value(l, row, v);
        return;
    }
    if (asprintf(&wrapped, *s == '[' || *s == '-' ? "%s" : "[%s]", s) < 0) {
        l->oom = true;
        return;
    }
    if (!yaml_parser_initialize(&parser)) {
        l->oom = true;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)wrapped, strlen(wrapped));
    if (!yaml_parser_load(&parser, &doc)) {
        value_error(l, row, v, "a list or a comma-separated string of \"host:port\"");
        yaml_parser_delete(&parser);
        return;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_SEQUENCE_NODE) {
        value_error(l, row, v, "a list or a comma-separated string of \"host:port\"");
    } else {
        ConfigValue list = { .node = root, .text = NULL, .where = v->where };
        l->doc = &doc;
        apply_value(l, row, &list);
        l->doc = NULL;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

/* A list or a mapping from the environment, as Patroni's _parse_list and
 * _parse_dict: YAML, in [] or {} unless it is written so already; it
 * replaces the file's value. */
static void apply_env_yaml(ConfigLoader *l, const ConfigRow *row, const ConfigValue *v)
{
    bool map = row->type == CONFIG_TYPE_MAP;
    const char *s = v->text + strspn(v->text, " \t\n");
    bool wrapped = map ? *s == '{' : (*s == '-' || strchr(s, '['));
    _cleanup_free_ char *text = NULL;
    if (asprintf(&text, wrapped ? "%s" : map ? "{%s}" : "[%s]", v->text) < 0) {
        l->oom = true;
        return;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        l->oom = true;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    bool ok = yaml_parser_load(&parser, &doc);
    yaml_parser_delete(&parser);
    yaml_node_t *root = ok ? yaml_document_get_root_node(&doc) : NULL;
    yaml_node_type_t want = map ? YAML_MAPPING_NODE : YAML_SEQUENCE_NODE;
    if (!root || root->type != want) {
        l->bad[row - config_schema] = true;
        loader_error(l, &v->where, "expected %s for \"%s\" (YAML, as Patroni reads it: %s)",
                     map ? "a mapping" : "a list", row->path,
                     map ? "\"{Name: value, ...}\" or \"Name: value, ...\""
                         : "\"[a, b]\" or \"a, b\"");
        if (ok) {
            yaml_document_delete(&doc);
        }
        return;
    }
    if (map) {
        config_map_done(CONFIG_FIELD(l->config, row, ConfigMap));
    }
    yaml_document_t *file_doc = l->doc;
    l->doc = &doc;
    l->env_doc = v->where.env;
    ConfigValue rv = value_of_node(root);
    rv.where = v->where;
    apply_value(l, row, &rv);
    l->doc = file_doc;
    l->env_doc = NULL;
    yaml_document_delete(&doc);
}

static void apply_env(ConfigLoader *l, char *const *envp)
{
    for (size_t i = 0; i < config_schema_n; i++) {
        const ConfigRow *row = &config_schema[i];
        char *name = l->env_name[i];
        const char *value = NULL;

        if (!row->env) {
            continue;
        }
        /* DBHA_X wins over PATRONI_X. */
        static const char *const prefixes[] = { "DBHA_", "PATRONI_" };
        for (size_t p = 0; p < ELEMENTSOF(prefixes) && !value; p++) {
            int r = snprintf(name, CONFIG_ENV_NAME_MAX, "%s%s", prefixes[p], row->env);
            assert(r > 0 && r < CONFIG_ENV_NAME_MAX);
            value = env_get(envp, name);
            if (value && !*value) {
                value = NULL; /* as Patroni: an empty variable is not set */
            }
        }
        if (!value) {
            continue;
        }
        ConfigValue v = { .node = NULL, .text = value, .where = { .env = name } };
        l->in_env[i] = true;
        l->env_at[i] = v.where;
        l->bad[i] = false;
        if (row->type == CONFIG_TYPE_HOSTS) {
            apply_env_hosts(l, row, &v);
        } else if (row->type == CONFIG_TYPE_STRV || row->type == CONFIG_TYPE_MAP) {
            apply_env_yaml(l, row, &v);
        } else {
            apply_value(l, row, &v);
        }
    }
}

/* ---- cross-field rules ------------------------------------------------ */

static size_t row_index(const char *path)
{
    const ConfigRow *row = config_schema_find(path);

    assert(row);
    return (size_t)(row - config_schema);
}

/* Where to point for a key that is missing: its own key when it is there
 * without a value, else the nearest enclosing key in the file, else 1:1. */
static const ConfigWhere *missing_where(ConfigLoader *l, const char *path)
{
    char parent[CONFIG_KEY_MAX * 4];

    const ConfigRow *row = config_schema_find(path);
    if (row && l->in_file[row - config_schema]) {
        return &l->key_at[row - config_schema];
    }
    snprintf(parent, sizeof(parent), "%s", path);
    for (char *dot; (dot = strrchr(parent, '.'));) {
        *dot = '\0';
        row = config_schema_find(parent);
        if (row && l->in_file[row - config_schema]) {
            return &l->key_at[row - config_schema];
        }
    }
    return NULL;
}

/* Patroni's other spellings of a key: used when the key itself is not
 * given (Patroni: primary_start_timeout wins over master_start_timeout,
 * create_replica_methods over create_replica_method, name over
 * postgresql.name). */
static void resolve_aliases(ConfigLoader *l)
{
    static const struct {
        const char *alias, *target;
    } pairs[] = {
        { "bootstrap.dcs.master_start_timeout", "bootstrap.dcs.primary_start_timeout" },
        { "bootstrap.dcs.master_stop_timeout", "bootstrap.dcs.primary_stop_timeout" },
        { "postgresql.create_replica_method", "postgresql.create_replica_methods" },
        { "postgresql.name", "name" },
        { "bootstrap.dcs.permanent_replication_slots", "bootstrap.dcs.slots" },
        { "bootstrap.dcs.permanent_slots", "bootstrap.dcs.slots" },
        { "bootstrap.post_init", "bootstrap.post_bootstrap" },
    };
    Config *c = l->config;

    for (size_t i = 0; i < ELEMENTSOF(pairs); i++) {
        size_t a = row_index(pairs[i].alias), t = row_index(pairs[i].target);
        const ConfigRow *ra = &config_schema[a], *rt = &config_schema[t];
        if (!(l->in_file[a] || l->in_env[a]) || l->bad[a]) {
            continue;
        }
        if (l->in_file[t] || l->in_env[t]) {
            loader_warn(l, l->in_env[a] ? &l->env_at[a] : &l->key_at[a],
                        "\"%s\" is ignored because \"%s\" is set", pairs[i].alias, pairs[i].target);
            continue;
        }
        switch (ra->type) {
        case CONFIG_TYPE_INT:
            *CONFIG_FIELD(c, rt, int64_t) = *CONFIG_FIELD(c, ra, int64_t);
            break;
        case CONFIG_TYPE_STRV: {
            ConfigStrv *from = CONFIG_FIELD(c, ra, ConfigStrv),
                       *to = CONFIG_FIELD(c, rt, ConfigStrv);
            config_strv_done(to);
            *to = *from;
            *from = (ConfigStrv){ 0 };
            break;
        }
        case CONFIG_TYPE_STRING: {
            char **from = CONFIG_FIELD(c, ra, char *), **to = CONFIG_FIELD(c, rt, char *);
            free(*to);
            *to = *from;
            *from = NULL;
            break;
        }
        case CONFIG_TYPE_JSON: {
            json_t **from = CONFIG_FIELD(c, ra, json_t *), **to = CONFIG_FIELD(c, rt, json_t *);
            json_decref(*to);
            *to = *from;
            *from = NULL;
            break;
        }
        default:
            assert(!"alias of an unexpected type");
        }
        l->in_file[t] = l->in_file[a];
        l->in_env[t] = l->in_env[a];
        l->key_at[t] = l->key_at[a];
        l->value_at[t] = l->value_at[a];
        l->env_at[t] = l->env_at[a];
    }
}

/* Patroni's etcd3.proxy (else etcd3.url): the one endpoint, its scheme the
 * protocol, its credentials (when it has some) the user's; hosts and host
 * are not used then (said, as Patroni does not say). */
static void etcd_endpoint_from_url(ConfigLoader *l, size_t which)
{
    Config *c = l->config;
    const char *name = config_schema[which].path;
    const ConfigWhere *w = l->in_env[which] ? &l->env_at[which] : &l->key_at[which];
    const char *text = c->etcd3.proxy ? c->etcd3.proxy : c->etcd3.url;
    ConfigEtcdUrl u;
    int r = config_etcd_url_parse(text, &u);
    if (r < 0) {
        l->oom = l->oom || r == -ENOMEM;
        return;
    }
    if (c->etcd3.proxy && c->etcd3.url) {
        loader_warn(l, w, "\"etcd3.url\" is not used because \"etcd3.proxy\" is set");
    }
    if (c->etcd3.hosts.n > 0 || c->etcd3.host) {
        loader_warn(l, w, "\"etcd3.hosts\" and \"etcd3.host\" are not used because \"%s\" is set",
                    name);
    }
    size_t proto = row_index("etcd3.protocol");
    if ((l->in_file[proto] || l->in_env[proto]) && c->etcd3.protocol &&
        strcmp(c->etcd3.protocol, u.protocol) != 0) {
        loader_warn(l, w, "\"etcd3.protocol\" is not used: \"%s\" says %s", name, u.protocol);
    }
    config_strv_done(&c->etcd3.hosts);
    loader_oom(l, config_strv_push(&c->etcd3.hosts, TAKE_PTR(u.host_port)));
    free(c->etcd3.protocol);
    c->etcd3.protocol = TAKE_PTR(u.protocol);
    if (u.username) {
        free(c->etcd3.username);
        c->etcd3.username = TAKE_PTR(u.username);
        if (c->etcd3.password) {
            explicit_bzero(c->etcd3.password, strlen(c->etcd3.password));
        }
        free(c->etcd3.password);
        c->etcd3.password = TAKE_PTR(u.password);
    }
    config_etcd_url_done(&u);
}

static void check_required(ConfigLoader *l)
{
    Config *c = l->config;

    for (size_t i = 0; i < config_schema_n && !l->for_ctl; i++) {
        const ConfigRow *row = &config_schema[i];
        if (!(row->flags & CONFIG_F_REQUIRED) || l->bad[i] || *CONFIG_FIELD(c, row, char *)) {
            continue;
        }
        if (l->in_file[i]) {
            loader_error(l, &l->key_at[i], "no value for required key \"%s\"", row->path);
        } else {
            loader_error(l, missing_where(l, row->path), "missing required key \"%s\"", row->path);
        }
    }

    size_t hosts = row_index("etcd3.hosts"), host = row_index("etcd3.host");
    size_t url = row_index("etcd3.url"), proxy = row_index("etcd3.proxy");
    if (l->bad[hosts] || l->bad[host] || l->bad[url] || l->bad[proxy]) {
        return;
    }
    if (c->etcd3.proxy || c->etcd3.url) {
        etcd_endpoint_from_url(l, c->etcd3.proxy ? proxy : url);
        return;
    }
    if (c->etcd3.hosts.n == 0 && !c->etcd3.host) {
        if (l->for_ctl) {
            return; /* dbctl --etcd gives them */
        }
        loader_error(l, missing_where(l, "etcd3.hosts"),
                     "missing required key \"etcd3.hosts\" (or \"etcd3.host\")");
    } else if (c->etcd3.host && c->etcd3.hosts.n > 0) {
        const ConfigWhere *w = l->in_env[host] ? &l->env_at[host] : &l->key_at[host];
        loader_warn(l, w, "\"etcd3.host\" is ignored because \"etcd3.hosts\" is set");
    } else if (c->etcd3.host) {
        loader_oom(l, config_strv_push(&c->etcd3.hosts, strdup(c->etcd3.host)));
    }
    /* Patroni's: an entry without a port gets etcd3.port (2379) */
    for (size_t i = 0; i < c->etcd3.hosts.n; i++) {
        char *e = c->etcd3.hosts.items[i];
        char *full = NULL;
        if (!config_port_colon(e)) {
            if (asprintf(&full, "%s:%" PRId64, e, c->etcd3.port) < 0) {
                l->oom = true;
                return;
            }
            free(e);
            c->etcd3.hosts.items[i] = full;
        }
    }
}

/* A leader must be able to miss one loop and then retry etcd for
 * retry_timeout twice (Patroni's rule) before its lease runs out. */
static void check_timing(ConfigLoader *l)
{
    const ConfigDcs *d = &l->config->bootstrap.dcs;
    size_t ttl = row_index("bootstrap.dcs.ttl"), lw = row_index("bootstrap.dcs.loop_wait"),
           rt = row_index("bootstrap.dcs.retry_timeout");

    if (l->bad[ttl] || l->bad[lw] || l->bad[rt]) {
        return;
    }
    if (d->loop_wait + 2 * d->retry_timeout <= d->ttl) {
        return;
    }
    const ConfigWhere *w = l->in_file[ttl]  ? &l->value_at[ttl]
                           : l->in_file[lw] ? &l->value_at[lw]
                           : l->in_file[rt] ? &l->value_at[rt]
                                            : NULL;
    loader_error(l, w,
                 "\"bootstrap.dcs.ttl\" (%" PRId64 ") must be at least loop_wait + 2 * "
                 "retry_timeout (%" PRId64 " + 2 * %" PRId64 " = %" PRId64 ")",
                 d->ttl, d->loop_wait, d->retry_timeout, d->loop_wait + 2 * d->retry_timeout);
}

/* "/name/" with one slash at each end, as Patroni builds its key prefix. */
static int normalize_namespace(char **ns)
{
    const char *s = *ns + strspn(*ns, "/");
    size_t n = strlen(s);
    char *out = NULL;

    while (n > 0 && s[n - 1] == '/') {
        n--;
    }
    if (asprintf(&out, n ? "/%.*s/" : "/", (int)n, s) < 0) {
        return -ENOMEM;
    }
    free(*ns);
    *ns = out;
    return 0;
}

/* Patroni asks for client certificates only over HTTPS. */
static void check_verify_client(ConfigLoader *l)
{
    const Config *c = l->config;
    size_t vc = row_index("restapi.verify_client");

    if (c->restapi.verify_client && strcasecmp(c->restapi.verify_client, "none") != 0 &&
        !c->restapi.certfile) {
        const ConfigWhere *w = l->in_env[vc] ? &l->env_at[vc] : &l->value_at[vc];
        loader_warn(l, w, "\"restapi.verify_client\" is ignored without \"restapi.certfile\"");
    }
}

/* Where in `value` (the YAML node of slots or ignore_slots) the problem
 * dynconfig_check_slots() found is: the slot's key, or the ignore_slots
 * item; else the value itself. */
static ConfigWhere slot_problem_where(ConfigLoader *l, yaml_node_t *value,
                                      const DynconfigSlotWhere *at)
{
    if (at->slot && value->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = value->data.mapping.pairs.start;
             p < value->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE &&
                strcmp((const char *)k->data.scalar.value, at->slot) == 0) {
                return where_of_mark(k->start_mark);
            }
        }
    }
    if (at->ignore_index >= 0 && value->type == YAML_SEQUENCE_NODE &&
        at->ignore_index < value->data.sequence.items.top - value->data.sequence.items.start) {
        yaml_node_t *item =
            yaml_document_get_node(l->doc, value->data.sequence.items.start[at->ignore_index]);
        if (item) {
            return where_of_mark(item->start_mark);
        }
    }
    return where_of_mark(value->start_mark);
}

/* Permanent slots and ignore_slots by the rules the config key's are held to
 * (dynconfig_check_slots()), each problem at its place. Returns false when
 * there was one. */
static bool check_slots_value(ConfigLoader *l, const ConfigRow *row, yaml_node_t *value,
                              const json_t *j)
{
    bool ignore = strcmp(row->path, "bootstrap.dcs.ignore_slots") == 0;
    if (!ignore && strcmp(row->path, "bootstrap.dcs.slots") != 0 &&
        strcmp(row->path, "bootstrap.dcs.permanent_slots") != 0 &&
        strcmp(row->path, "bootstrap.dcs.permanent_replication_slots") != 0) {
        return true;
    }
    char err[512];
    DynconfigSlotWhere at;
    if (dynconfig_check_slots(ignore ? NULL : j, ignore ? j : NULL, &at, err, sizeof(err)) == 0) {
        return true;
    }
    ConfigWhere w = slot_problem_where(l, value, &at);
    loader_error(l, &w, "bootstrap.dcs.%s", err);
    return false;
}

/* bootstrap.dcs.standby_cluster by the rules the config key's is held to
 * (dynconfig_check_standby_cluster()), at the key it names. */
static bool check_standby_value(ConfigLoader *l, const ConfigRow *row, yaml_node_t *value,
                                const json_t *j)
{
    if (strcmp(row->path, "bootstrap.dcs.standby_cluster") != 0) {
        return true;
    }
    char err[512];
    if (dynconfig_check_standby_cluster(j, err, sizeof(err)) == 0) {
        return true;
    }
    ConfigWhere w = where_of_mark(value->start_mark);
    const char *key = strncmp(err, "standby_cluster.", 16) == 0 ? err + 16 : NULL;
    size_t len = key ? strcspn(key, ":") : 0;
    for (yaml_node_pair_t *p = value->type == YAML_MAPPING_NODE ? value->data.mapping.pairs.start
                                                                : NULL;
         p && len > 0 && p < value->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        if (k && v && k->type == YAML_SCALAR_NODE &&
            strlen((const char *)k->data.scalar.value) == len &&
            strncmp((const char *)k->data.scalar.value, key, len) == 0) {
            w = where_of_mark(v->start_mark);
        }
    }
    loader_error(l, &w, "bootstrap.dcs.%s", err);
    return false;
}

/* One of CREATE ROLE's options without an argument (Patroni upper-cases
 * and passes them as written; dbha passes only these) or CONNECTION LIMIT n. */
static bool role_option_valid(const char *s)
{
    static const char *const words[] = {
        "SUPERUSER",    "NOSUPERUSER",   "CREATEDB",  "NOCREATEDB",  "CREATEROLE",
        "NOCREATEROLE", "INHERIT",       "NOINHERIT", "LOGIN",       "NOLOGIN",
        "REPLICATION",  "NOREPLICATION", "BYPASSRLS", "NOBYPASSRLS",
    };
    for (size_t i = 0; i < ELEMENTSOF(words); i++) {
        if (strcasecmp(s, words[i]) == 0) {
            return true;
        }
    }
    if (strncasecmp(s, "CONNECTION LIMIT ", 17) != 0) {
        return false;
    }
    const char *n = s + 17 + (s[17] == '-');
    if (!*n) {
        return false;
    }
    for (; *n; n++) {
        if (*n < '0' || *n > '9') {
            return false;
        }
    }
    return strlen(s) < 17 + 12;
}

/* opt, upper-cased, onto options when role_option_valid(); else an error
 * at w. False on an error (or out of memory: l->oom). */
static bool add_role_option(ConfigLoader *l, const ConfigWhere *w, const char *role,
                            const char *opt, json_t *options)
{
    if (!role_option_valid(opt)) {
        loader_error(l, w,
                     "\"bootstrap.users.%s.options\": \"%.64s\" is not a role option dbha "
                     "passes to CREATE ROLE: one of SUPERUSER, CREATEDB, CREATEROLE, INHERIT, "
                     "LOGIN, REPLICATION, BYPASSRLS, their NO... forms, or CONNECTION LIMIT n",
                     role, opt);
        return false;
    }
    _cleanup_free_ char *up = strdup(opt);
    if (!up) {
        l->oom = true;
        return false;
    }
    for (char *c = up; *c; c++) {
        *c = (char)toupper((unsigned char)*c);
    }
    if (json_array_append_new(options, json_string(up)) < 0) {
        l->oom = true;
        return false;
    }
    return true;
}

/* Patroni's bootstrap.users, checked at each place: role name to a mapping
 * of password (a scalar, kept as written) and options (a list of role
 * options). Returns the JSON the agent reads, NULL after an error. */
static json_t *users_json(ConfigLoader *l, yaml_node_t *value)
{
    ConfigWhere at = where_of_mark(value->start_mark);
    if (value->type != YAML_MAPPING_NODE) {
        loader_error(l, &at,
                     "\"bootstrap.users\": expected a mapping of role names to "
                     "{password, options}");
        return NULL;
    }
    _cleanup_(json_decrefp) json_t *out = json_object();
    if (!out) {
        l->oom = true;
        return NULL;
    }
    bool ok = true;
    for (yaml_node_pair_t *p = value->data.mapping.pairs.start; p < value->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        if (!k || !v) {
            continue;
        }
        ConfigWhere kw = where_of_mark(k->start_mark), vw = where_of_mark(v->start_mark);
        const char *name = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";
        if (!*name || strlen(name) >= 64) {
            loader_error(l, &kw, "\"bootstrap.users\": a role name of 1 to 63 bytes");
            ok = false;
            continue;
        }
        if (v->type != YAML_MAPPING_NODE) {
            loader_error(l, &vw,
                         "\"bootstrap.users.%s\": expected a mapping with \"password\" and "
                         "\"options\"",
                         name);
            ok = false;
            continue;
        }
        json_t *role = json_object(), *options = json_array();
        if (!role || !options || json_object_set_new(out, name, role) < 0 ||
            json_object_set_new(role, "options", options) < 0) {
            l->oom = true;
            return NULL;
        }
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
             q++) {
            yaml_node_t *fk = yaml_document_get_node(l->doc, q->key);
            yaml_node_t *fv = yaml_document_get_node(l->doc, q->value);
            if (!fk || !fv || fk->type != YAML_SCALAR_NODE) {
                continue;
            }
            const char *field = (const char *)fk->data.scalar.value;
            ConfigWhere fkw = where_of_mark(fk->start_mark), fvw = where_of_mark(fv->start_mark);
            if (strcmp(field, "password") == 0) {
                if (fv->type != YAML_SCALAR_NODE) {
                    loader_error(l, &fvw, "\"bootstrap.users.%s.password\": expected a scalar",
                                 name);
                    ok = false;
                } else if (json_object_set_new(role, "password",
                                               json_string((const char *)fv->data.scalar.value)) <
                           0) {
                    l->oom = true;
                    return NULL;
                }
            } else if (strcmp(field, "options") == 0) {
                if (fv->type != YAML_SEQUENCE_NODE) {
                    loader_error(l, &fvw, "\"bootstrap.users.%s.options\": expected a list", name);
                    ok = false;
                    continue;
                }
                if (fv->data.sequence.items.top - fv->data.sequence.items.start > 16) {
                    loader_error(l, &fvw, "\"bootstrap.users.%s.options\": at most 16", name);
                    ok = false;
                    continue;
                }
                for (yaml_node_item_t *i = fv->data.sequence.items.start;
                     i < fv->data.sequence.items.top; i++) {
                    yaml_node_t *o = yaml_document_get_node(l->doc, *i);
                    if (!o) {
                        continue;
                    }
                    ConfigWhere ow = where_of_mark(o->start_mark);
                    const char *opt =
                        o->type == YAML_SCALAR_NODE ? (const char *)o->data.scalar.value : "";
                    if (!add_role_option(l, &ow, name, opt, options)) {
                        if (l->oom) {
                            return NULL;
                        }
                        ok = false;
                    }
                }
            } else {
                loader_warn(l, &fkw,
                            "unknown key \"bootstrap.users.%s.%s\" (Patroni reads only "
                            "\"password\" and \"options\")",
                            name, field);
            }
        }
    }
    return ok ? json_incref(out) : NULL;
}

/* Values Patroni honours that dbha cannot honour yet, where going on would
 * do something else than the file says. */
static void check_unsupported(ConfigLoader *l)
{
    const Config *c = l->config;
    size_t fs = row_index("bootstrap.dcs.failsafe_mode");
    if (c->bootstrap.dcs.failsafe_mode && !l->bad[fs]) {
        loader_error(l, l->in_env[fs] ? &l->env_at[fs] : &l->value_at[fs],
                     "\"bootstrap.dcs.failsafe_mode\": failsafe mode is not supported by dbha "
                     "yet: a primary that cannot renew its leader lease is stopped (fenced) "
                     "whatever this says; leave it off");
    }
}

/* ---- the rest of Patroni's environment --------------------------------- */

/* Patroni's older names, read when the new one is not set (its
 * _fix_log_env()). */
static const struct {
    const char *old, *path;
} env_aliases[] = {
    { "LOGLEVEL", "log.level" },
    { "LOGFORMAT", "log.format" },
    { "LOG_DATEFMT", "log.dateformat" },
};

static bool env_suffix_is(const char *suffix, size_t len, const char *name)
{
    return strlen(name) == len && strncmp(suffix, name, len) == 0;
}

/* A PATRONI_<suffix> that apply_env() reads. */
static bool env_is_mapped(const char *suffix, size_t len)
{
    for (size_t i = 0; i < config_schema_n; i++) {
        if (config_schema[i].env && env_suffix_is(suffix, len, config_schema[i].env)) {
            return true;
        }
    }
    return false;
}

/* Patroni's PATRONI_<name>_OPTIONS: a YAML list, or "a,b" read as one. */
static json_t *env_role_options(ConfigLoader *l, const ConfigWhere *w, const char *role,
                                const char *text)
{
    _cleanup_(json_decrefp) json_t *out = json_array();
    if (!out) {
        l->oom = true;
        return NULL;
    }
    if (!text || !*text) {
        return TAKE_PTR(out);
    }
    const char *s = text + strspn(text, " \t");
    _cleanup_free_ char *wrapped = NULL;
    if (asprintf(&wrapped, *s == '[' || *s == '-' ? "%s" : "[%s]", s) < 0) {
        l->oom = true;
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        l->oom = true;
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)wrapped, strlen(wrapped));
    bool ok = yaml_parser_load(&parser, &doc);
    yaml_parser_delete(&parser);
    yaml_node_t *root = ok ? yaml_document_get_root_node(&doc) : NULL;
    if (!root || root->type != YAML_SEQUENCE_NODE) {
        loader_error(l, w, "\"bootstrap.users.%s.options\": expected a list of role options", role);
        if (ok) {
            yaml_document_delete(&doc);
        }
        return NULL;
    }
    for (yaml_node_item_t *i = root->data.sequence.items.start; i < root->data.sequence.items.top;
         i++) {
        yaml_node_t *o = yaml_document_get_node(&doc, *i);
        const char *opt =
            o && o->type == YAML_SCALAR_NODE ? (const char *)o->data.scalar.value : "";
        if (!add_role_option(l, w, role, opt, out)) {
            yaml_document_delete(&doc);
            return NULL;
        }
    }
    yaml_document_delete(&doc);
    return TAKE_PTR(out);
}

/* Patroni's PATRONI_<name>_PASSWORD (and _OPTIONS): a role bootstrap.users
 * creates, named as the variable spells it; over one of the file's. */
static void env_user(ConfigLoader *l, char *const *envp, const char *var, const char *role,
                     const char *password)
{
    ConfigWhere w = { .env = var };
    if (!*role || strlen(role) >= 64) {
        loader_error(l, &w, "\"bootstrap.users\": a role name of 1 to 63 bytes");
        return;
    }
    char opt_name[CONFIG_ENV_NAME_MAX + 16];
    snprintf(opt_name, sizeof(opt_name), "PATRONI_%s_OPTIONS", role);
    json_t *options = env_role_options(l, &w, role, env_get(envp, opt_name));
    if (!options) {
        return;
    }
    Config *c = l->config;
    if (!c->bootstrap.users && !(c->bootstrap.users = json_object())) {
        json_decref(options);
        l->oom = true;
        return;
    }
    /* merged into the file's role as Patroni merges the two configs: the
     * password replaced, the options only when the variable gives some */
    json_t *entry = json_object_get(c->bootstrap.users, role);
    if (!entry) {
        entry = json_pack("{s:o}", "options", json_array());
        if (!entry || json_object_set_new(c->bootstrap.users, role, entry) < 0) {
            json_decref(options);
            l->oom = true;
            return;
        }
    }
    bool has_options = env_get(envp, opt_name) != NULL;
    if (json_object_set_new(entry, "password", json_string(password)) < 0 ||
        (has_options ? json_object_set_new(entry, "options", options) < 0
                     : (json_decref(options), false))) {
        l->oom = true;
    }
}

/* After apply_env(): Patroni's other variables. The old names of three,
 * PATRONI_<name>_PASSWORD/_OPTIONS (bootstrap.users), and a warning for
 * any other PATRONI_ variable, which dbha would otherwise ignore without a
 * word (Patroni reads some that dbha has no setting for). */
static void apply_env_rest(ConfigLoader *l, char *const *envp)
{
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, "PATRONI_", 8) != 0) {
            continue;
        }
        const char *eq = strchr(*e, '=');
        if (!eq || (size_t)(eq - *e) >= CONFIG_ENV_NAME_MAX) {
            continue;
        }
        char var[CONFIG_ENV_NAME_MAX];
        memcpy(var, *e, (size_t)(eq - *e));
        var[eq - *e] = '\0';
        const char *suffix = var + 8, *value = eq + 1;
        size_t len = strlen(suffix);
        if (env_is_mapped(suffix, len)) {
            continue;
        }
        if (strcmp(var, CONFIG_ENV_DOCUMENT) == 0) {
            if (strcmp(l->name, CONFIG_ENV_DOCUMENT) != 0) {
                ConfigWhere w = { .env = var };
                loader_warn(l, &w,
                            "not read: a configuration file was given, and the document in this "
                            "variable is read only without one (as Patroni does)");
            }
            continue;
        }
        bool alias = false;
        for (size_t a = 0; a < ELEMENTSOF(env_aliases); a++) {
            if (!env_suffix_is(suffix, len, env_aliases[a].old)) {
                continue;
            }
            alias = true;
            size_t i = row_index(env_aliases[a].path);
            if (l->in_env[i] || !*value) {
                break; /* the new name wins, as in Patroni */
            }
            snprintf(l->env_name[i], CONFIG_ENV_NAME_MAX, "%s", var);
            ConfigValue v = { .node = NULL, .text = value, .where = { .env = l->env_name[i] } };
            l->in_env[i] = true;
            l->env_at[i] = v.where;
            l->bad[i] = false;
            apply_value(l, &config_schema[i], &v);
        }
        if (alias) {
            continue;
        }
        if (len > 9 && strcmp(suffix + len - 9, "_PASSWORD") == 0) {
            char role[CONFIG_ENV_NAME_MAX];
            snprintf(role, sizeof(role), "%.*s", (int)(len - 9), suffix);
            if (*value) {
                env_user(l, envp, var, role, value);
            }
            continue;
        }
        if (len > 8 && strcmp(suffix + len - 8, "_OPTIONS") == 0) {
            char password[CONFIG_ENV_NAME_MAX + 16];
            snprintf(password, sizeof(password), "PATRONI_%.*s_PASSWORD", (int)(len - 8), suffix);
            if (env_get(envp, password)) {
                continue; /* read with it */
            }
        }
        ConfigWhere w = { .env = var };
        loader_warn(l, &w,
                    "not read by dbha: no setting has this name (the PATRONI_ names dbha reads are "
                    "in docs/configuration.md)");
    }
}

/* Patroni 3.0's ctl.auth, "user:password" (PatroniRequest sends it as
 * basic auth): the same as ctl.authentication, which wins when both are
 * written. */
static void fold_ctl_auth(ConfigLoader *l)
{
    Config *c = l->config;
    size_t i = row_index("ctl.auth");
    if (!c->ctl.auth || l->bad[i]) {
        return;
    }
    const ConfigWhere *w = l->in_env[i] ? &l->env_at[i] : &l->value_at[i];
    const char *colon = strchr(c->ctl.auth, ':');
    if (!colon || colon == c->ctl.auth) {
        loader_error(l, w,
                     "ctl.auth must be \"USER:PASSWORD\" (or write ctl.authentication's "
                     "username and password)");
        return;
    }
    if (c->ctl.authentication.username) {
        loader_warn(l, w, "\"ctl.auth\" is ignored because \"ctl.authentication\" is set");
        return;
    }
    c->ctl.authentication.username = strndup(c->ctl.auth, (size_t)(colon - c->ctl.auth));
    free(c->ctl.authentication.password);
    c->ctl.authentication.password = strdup(colon + 1);
    loader_oom(l, c->ctl.authentication.username && c->ctl.authentication.password ? 0 : -ENOMEM);
}

static void finalize(ConfigLoader *l)
{
    Config *c = l->config;

    resolve_aliases(l);
    fold_ctl_auth(l);
    check_required(l);
    check_timing(l);
    check_unsupported(l);
    check_replica_methods(l);
    check_bootstrap_method_section(l);
    check_verify_client(l);
    if (c->namespace) {
        loader_oom(l, normalize_namespace(&c->namespace));
    }
    if (!c->restapi.listen && c->restapi.connect_address) {
        const char *colon = config_port_colon(c->restapi.connect_address);
        if (colon && asprintf(&c->restapi.listen, "127.0.0.1%s", colon) < 0) {
            c->restapi.listen = NULL;
            l->oom = true;
        }
    }
}

/* ---- entry points ----------------------------------------------------- */

static int load_text(const char *name, const char *text, size_t len, char *const *envp,
                     bool for_ctl, Config **ret, ConfigDiags *diags)
{
    _cleanup_(config_freep) Config *c = NULL;
    _cleanup_free_ ConfigLoader *l = NULL;
    size_t errors = diags->n_errors;
    int r;

    r = config_new_defaults(&c);
    if (r < 0) {
        return r;
    }
    c->source_file = strdup(name);
    l = calloc(1, sizeof(*l));
    if (!c->source_file || !l) {
        return -ENOMEM;
    }
    *l = (ConfigLoader){ .name = name, .config = c, .diags = diags, .for_ctl = for_ctl };

    if (load_yaml(l, text, len)) {
        apply_env(l, envp);
        apply_env_rest(l, envp);
        finalize(l);
    }
    sections_free(l);
    if (l->oom) {
        return -ENOMEM;
    }
    if (diags->n_errors > errors) {
        return -EINVAL;
    }
    *ret = TAKE_PTR(c);
    return 0;
}

int config_load_string(const char *name, const char *text, char *const *envp, Config **ret,
                       ConfigDiags *diags)
{
    if (!name || !text || !ret || !diags) {
        return -EINVAL;
    }
    return load_text(name, text, strlen(text), envp, false, ret, diags);
}

static void file_diag(ConfigDiags *diags, const char *path, int error)
{
    char *text = NULL;

    /* Not a position in the file: "PATH: cannot read: REASON". */
    if (asprintf(&text, "%s: cannot read: %s", path, strerror(-error)) < 0) {
        return;
    }
    ConfigDiag *items = realloc(diags->items, (diags->n + 1) * sizeof(*items));
    if (!items) {
        free(text);
        return;
    }
    diags->items = items;
    diags->items[diags->n++] = (ConfigDiag){ .severity = CONFIG_ERROR, .text = text };
    diags->n_errors++;
}

static const char *env_document(char *const *envp)
{
    const char *text = NULL;
    size_t n = strlen(CONFIG_ENV_DOCUMENT);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, CONFIG_ENV_DOCUMENT, n) == 0 && (*e)[n] == '=') {
            text = *e + n + 1;
        }
    }
    return text;
}

int config_load_env(char *const *envp, Config **ret, ConfigDiags *diags)
{
    if (!ret || !diags) {
        return -EINVAL;
    }
    const char *text = env_document(envp);
    if (!text) {
        char *msg = strdup("no configuration: give a configuration file, or the YAML document "
                           "in the environment variable " CONFIG_ENV_DOCUMENT);
        ConfigDiag *items = msg ? realloc(diags->items, (diags->n + 1) * sizeof(*items)) : NULL;
        if (!items) {
            free(msg);
            return -ENOMEM;
        }
        diags->items = items;
        diags->items[diags->n++] = (ConfigDiag){ .severity = CONFIG_ERROR, .text = msg };
        diags->n_errors++;
        return -ENOENT;
    }
    return load_text(CONFIG_ENV_DOCUMENT, text, strlen(text), envp, false, ret, diags);
}

int config_load_from(const char *path, char *const *envp, Config **ret, ConfigDiags *diags)
{
    return path ? config_load(path, envp, ret, diags) : config_load_env(envp, ret, diags);
}

static int load_file(const char *path, char *const *envp, bool for_ctl, Config **ret,
                     ConfigDiags *diags)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0, cap = 0;
    FILE *f;
    int r = 0;

    if (!path || !ret || !diags) {
        return -EINVAL;
    }
    f = fopen(path, "re");
    if (!f) {
        r = negative_errno(errno);
        file_diag(diags, path, r);
        return r;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *t = ncap > CONFIG_FILE_MAX + 1 ? NULL : realloc(text, ncap);
            if (!t) {
                r = ncap > CONFIG_FILE_MAX + 1 ? -EFBIG : -ENOMEM;
                break;
            }
            text = t, cap = ncap;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                r = -EIO;
            }
            break;
        }
    }
    fclose(f);
    if (r < 0) {
        file_diag(diags, path, r);
        return r;
    }
    text[len] = '\0';
    return load_text(path, text, len, envp, for_ctl, ret, diags);
}

int config_load(const char *path, char *const *envp, Config **ret, ConfigDiags *diags)
{
    return load_file(path, envp, false, ret, diags);
}

int config_load_ctl(const char *path, char *const *envp, Config **ret, ConfigDiags *diags)
{
    if (!ret || !diags) {
        return -EINVAL;
    }
    if (path) {
        return load_file(path, envp, true, ret, diags);
    }
    const char *text = env_document(envp);
    if (text) {
        return load_text(CONFIG_ENV_DOCUMENT, text, strlen(text), envp, true, ret, diags);
    }
    return load_text("the environment", "{}", 2, envp, true, ret, diags);
}

int config_postgresql_port(const Config *c)
{
    const char *addrs[] = { c ? c->postgresql.listen : NULL,
                            c ? c->postgresql.connect_address : NULL };

    for (size_t i = 0; i < ELEMENTSOF(addrs); i++) {
        const char *colon = addrs[i] ? config_port_colon(addrs[i]) : NULL;
        int port = colon ? config_parse_port(colon + 1) : -EINVAL;
        if (port > 0) {
            return port;
        }
    }
    return -EINVAL;
}

void config_summary(const Config *c, FILE *out)
{
    if (!c) {
        return;
    }
    fprintf(out, "scope: %s\nname: %s\nnamespace: %s\n", strna(c->scope), strna(c->name),
            strna(c->namespace));
    fprintf(out, "etcd3: %s", strna(c->etcd3.protocol));
    for (size_t i = 0; i < c->etcd3.hosts.n; i++) {
        fprintf(out, "%s%s", i ? "," : " ", c->etcd3.hosts.items[i]);
    }
    fprintf(out, "\npostgresql: data_dir %s, connect_address %s, listen %s\n",
            strna(c->postgresql.data_dir), strna(c->postgresql.connect_address),
            strna(c->postgresql.listen));
    fprintf(out, "restapi: listen %s, connect_address %s\n", strna(c->restapi.listen),
            strna(c->restapi.connect_address));
    fprintf(out, "timing: ttl %" PRId64 "s, loop_wait %" PRId64 "s, retry_timeout %" PRId64 "s\n",
            c->bootstrap.dcs.ttl, c->bootstrap.dcs.loop_wait, c->bootstrap.dcs.retry_timeout);
    fprintf(out, "watchdog: %s\n", strna(config_watchdog_mode_to_string(c->watchdog.mode)));
}
