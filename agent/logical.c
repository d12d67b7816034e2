/* Permanent logical slots through a failover (logical.h). */
#include "logical.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "macro.h"

/* ---- the plan (pure) ---- */

static const LogicalSlot *find_local(const LogicalSlot *local, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(local[i].name, name) == 0) {
            return &local[i];
        }
    }
    return NULL;
}

static bool wanted(const SlotsWanted *w, const char *name)
{
    for (size_t i = 0; i < w->n_logical; i++) {
        if (strcmp(w->logical[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool same_slot(const LogicalSlot *l, const SlotsLogical *w)
{
    return strcmp(l->database, w->database) == 0 && strcmp(l->plugin, w->plugin) == 0;
}

int logical_parse_position(const json_t *v, uint64_t *ret)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ret = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19) {
        return -EINVAL;
    }
    *ret = strtoull(s, NULL, 10);
    return 0;
}

/* Adds an action; false when the plan is full. */
static bool add(LogicalPlan *p, LogicalStep step, const char *name, const char *database,
                const SlotsLogical *want, uint64_t lsn)
{
    if (p->n >= LOGICAL_SLOTS_MAX) {
        return false;
    }
    LogicalAction *a = &p->actions[p->n++];
    *a = (LogicalAction){ .step = step, .want = want, .lsn = lsn };
    (void)snprintf(a->name, sizeof(a->name), "%s", name);
    (void)snprintf(a->database, sizeof(a->database), "%s", database);
    return true;
}

static void note(FILE *f, bool *any, const char *fmt, ...) _printf_(3, 4);
static void note(FILE *f, bool *any, const char *fmt, ...)
{
    va_list ap;
    if (*any) {
        fputs("; ", f);
    }
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    *any = true;
}

int logical_plan(const SlotsWanted *w, bool primary, const LogicalSlot *local, size_t n_local,
                 const json_t *published, LogicalIgnoredFn ignored, void *userdata,
                 LogicalPlan *ret)
{
    LogicalPlan p = { .positions = json_object() };
    char *problem = NULL;
    size_t problem_size = 0;
    FILE *f = open_memstream(&problem, &problem_size);
    if (!p.positions || !f) {
        json_decref(p.positions);
        if (f) {
            fclose(f);
        }
        free(problem);
        return -ENOMEM;
    }
    bool any = false, full = false;
    int r = 0;
    for (size_t i = 0; i < w->n_logical && !full; i++) {
        const SlotsLogical *want = &w->logical[i];
        const LogicalSlot *l = find_local(local, n_local, want->name);
        if (primary) {
            if (!l) {
                full = !add(&p, LOGICAL_CREATE, want->name, want->database, want, 0);
            } else if (same_slot(l, want)) {
                if (l->has_confirmed &&
                    json_object_set_new(p.positions, want->name,
                                        json_integer((json_int_t)l->confirmed_flush)) < 0) {
                    r = -ENOMEM;
                    break;
                }
            } else if (!l->active) {
                full = !add(&p, LOGICAL_RECREATE, want->name, want->database, want, 0);
            } else {
                note(f, &any,
                     "\"%s\" is in use with database \"%s\" and plugin \"%s\", not the "
                     "configured \"%s\" and \"%s\"",
                     want->name, l->database, l->plugin, want->database, want->plugin);
            }
            continue;
        }
        const json_t *pub = published ? json_object_get(published, want->name) : NULL;
        uint64_t lsn = 0;
        if (pub && logical_parse_position(pub, &lsn) < 0) {
            note(f, &any, "the primary's position of \"%s\" is not an LSN", want->name);
            pub = NULL;
        }
        if (l && same_slot(l, want)) {
            if (pub && (!l->has_confirmed || l->confirmed_flush < lsn)) {
                uint64_t to = lsn;
                if (l->has_confirmed && lsn - l->confirmed_flush > LOGICAL_ADVANCE_STEP) {
                    to = l->confirmed_flush + LOGICAL_ADVANCE_STEP;
                }
                full = !add(&p, LOGICAL_ADVANCE, want->name, want->database, want, to);
            }
        } else if (l) {
            if (!l->active) {
                full = !add(&p, LOGICAL_DROP, l->name, l->database, NULL, 0);
            }
        } else if (pub) {
            full = !add(&p, LOGICAL_COPY, want->name, want->database, want, 0);
        }
    }
    for (size_t i = 0; i < n_local && r == 0 && !full; i++) {
        const LogicalSlot *l = &local[i];
        if (wanted(w, l->name) || l->active ||
            (ignored && ignored(l->name, l->database, l->plugin, userdata))) {
            continue;
        }
        /* a primary drops only what it published as permanent itself */
        if (primary && !(published && json_object_get(published, l->name))) {
            continue;
        }
        full = !add(&p, LOGICAL_DROP, l->name, l->database, NULL, 0);
    }
    if (fclose(f) != 0) {
        r = -ENOMEM;
    }
    if (r < 0) {
        free(problem);
        logical_plan_done(&p);
        return r;
    }
    if (any) {
        p.problem = problem;
    } else {
        free(problem);
    }
    *ret = p;
    return full ? -E2BIG : 0;
}

void logical_plan_done(LogicalPlan *p)
{
    json_decref(p->positions);
    free(p->problem);
    *p = (LogicalPlan){ 0 };
}

/* ---- running it ---- */

void logical_probe_config(const ConfigUser *user, const char *host, unsigned port,
                          const char *dbname, PgProbeConfig *ret)
{
    PgProbeConfig pc = {
        .host = host,
        .port = port,
        .user = user->username,
        .password = user->password,
        .dbname = dbname,
        .connect_timeout_sec = 2,
        .statement_timeout_ms = 2000,
    };
#define X(k)                                                                                       \
    if (user->k) {                                                                                 \
        pc.extra_keys[pc.n_extra] = #k;                                                            \
        pc.extra_values[pc.n_extra++] = user->k;                                                   \
    }
    CONFIG_USER_LIBPQ_KEYS
#undef X
    *ret = pc;
}

/* E'...' with ' and \ doubled: a literal whatever standard_conforming_strings
 * says. */
static char *literal(const char *s)
{
    size_t n = strlen(s);
    char *r = malloc(2 * n + 4);
    if (!r) {
        return NULL;
    }
    size_t o = 0;
    r[o++] = 'E';
    r[o++] = '\'';
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\') {
            r[o++] = *s;
        }
        r[o++] = *s;
    }
    r[o++] = '\'';
    r[o] = '\0';
    return r;
}

/* literal() written into a stream (a list of names). */
static void put_literal(FILE *f, const char *s)
{
    fputs("E'", f);
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\') {
            fputc(*s, f);
        }
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void copy_value(PGresult *res, int row, int col, char *buf, size_t size)
{
    (void)snprintf(buf, size, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

int logical_list(PgProbe *probe, uint64_t deadline_usec, LogicalSlot *ret, size_t max,
                 size_t *ret_n)
{
    PGresult *res = NULL;
    int r = pgprobe_exec(probe,
                         "SELECT slot_name, database, plugin, active, "
                         "pg_catalog.pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint, "
                         "catalog_xmin::text::bigint "
                         "FROM pg_catalog.pg_replication_slots "
                         "WHERE slot_type = 'logical' AND NOT temporary ORDER BY slot_name",
                         deadline_usec, &res);
    if (r < 0) {
        return r;
    }
    if (!res || PQnfields(res) != 6) {
        if (res) {
            PQclear(res);
        }
        return -EPROTO;
    }
    size_t n = 0;
    for (int i = 0; i < PQntuples(res) && n < max; i++) {
        LogicalSlot *s = &ret[n++];
        *s = (LogicalSlot){ 0 };
        copy_value(res, i, 0, s->name, sizeof(s->name));
        copy_value(res, i, 1, s->database, sizeof(s->database));
        copy_value(res, i, 2, s->plugin, sizeof(s->plugin));
        s->active = strcmp(PQgetvalue(res, i, 3), "t") == 0;
        if (!PQgetisnull(res, i, 4)) {
            s->has_confirmed = true;
            s->confirmed_flush = strtoull(PQgetvalue(res, i, 4), NULL, 10);
        }
        if (!PQgetisnull(res, i, 5)) {
            s->has_catalog_xmin = true;
            s->catalog_xmin = strtoull(PQgetvalue(res, i, 5), NULL, 10);
        }
    }
    PQclear(res);
    *ret_n = n;
    return 0;
}

void logical_conns_done(LogicalConns *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->db[i].database);
        pgprobe_free(c->db[i].probe);
    }
    *c = (LogicalConns){ 0 };
}

static int conn_for(LogicalConns *c, const PgProbeConfig *local, const char *database,
                    PgProbe **ret)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->db[i].database, database) == 0) {
            *ret = c->db[i].probe;
            return 0;
        }
    }
    if (c->n >= LOGICAL_DATABASES_MAX) {
        return -E2BIG;
    }
    PgProbeConfig cfg = *local;
    cfg.dbname = database;
    char *name = strdup(database);
    PgProbe *p = NULL;
    int r = name ? pgprobe_new(&cfg, &p) : -ENOMEM;
    if (r < 0) {
        free(name);
        return r;
    }
    c->db[c->n].database = name;
    c->db[c->n++].probe = p;
    *ret = p;
    return 0;
}

int logical_run(LogicalConns *c, const PgProbeConfig *local, PgProbe *probe,
                const LogicalAction *act, uint64_t deadline_usec, char *err, size_t errlen)
{
    _cleanup_free_ char *name = literal(act->name);
    _cleanup_free_ char *plugin = act->want ? literal(act->want->plugin) : NULL;
    _cleanup_free_ char *sql = NULL;
    if (!name || (act->want && !plugin)) {
        return -ENOMEM;
    }
    static const char drop[] = "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
                               "pg_catalog.pg_replication_slots WHERE slot_name = %s AND NOT "
                               "active";
    static const char create[] =
        "SELECT pg_catalog.pg_create_logical_replication_slot(%s, %s) WHERE NOT EXISTS ("
        "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = %s)";
    int n;
    switch (act->step) {
    case LOGICAL_CREATE:
        n = asprintf(&sql, create, name, plugin, name);
        break;
    case LOGICAL_RECREATE:
        n = asprintf(&sql,
                     "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM "
                     "pg_catalog.pg_replication_slots WHERE slot_name = %s AND NOT active;"
                     "SELECT pg_catalog.pg_create_logical_replication_slot(%s, %s) WHERE "
                     "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE "
                     "slot_name = %s)",
                     name, name, plugin, name);
        break;
    case LOGICAL_ADVANCE:
        n = asprintf(&sql, "SELECT pg_catalog.pg_replication_slot_advance(%s, '%X/%X')", name,
                     (unsigned)(act->lsn >> 32), (unsigned)act->lsn);
        break;
    case LOGICAL_DROP:
        n = asprintf(&sql, drop, name);
        break;
    default:
        return -EINVAL;
    }
    if (n < 0) {
        sql = NULL;
        return -ENOMEM;
    }
    PgProbe *p = probe;
    int r = 0;
    if (act->step != LOGICAL_DROP) {
        r = conn_for(c, local, act->database, &p);
        if (r < 0) {
            (void)snprintf(err, errlen, "no connection to database \"%s\": %s", act->database,
                           r == -E2BIG ? "too many databases" : strerror(-r));
            return r;
        }
    }
    r = pgprobe_exec(p, sql, deadline_usec, NULL);
    if (r < 0) {
        (void)snprintf(err, errlen, "%s", pgprobe_last_error(p));
        if (strcmp(pgprobe_last_sqlstate(p), "58P01") == 0) {
            return -ENOENT;
        }
    }
    return r;
}

/* ---- copying a slot from the primary ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int unhex(const char *s, unsigned char **ret, size_t *ret_size)
{
    size_t n = strlen(s);
    if (n % 2 != 0 || n == 0) {
        return -EINVAL;
    }
    unsigned char *b = malloc(n / 2);
    if (!b) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return -EINVAL;
        }
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    *ret = b;
    *ret_size = n / 2;
    return 0;
}

void logical_copy_done(LogicalCopy *c)
{
    free(c->state);
    *c = (LogicalCopy){ 0 };
}

/* One query, "head (names)", on a connection of its own to the primary
 * (leader), closed after: returns 0 and *ret (PQclear it), or a negative
 * errno with why in err. */
static int query_once(const PgProbeConfig *leader, const char *head, const char *names,
                      uint64_t deadline_usec, PGresult **ret, char *err, size_t errlen)
{
    _cleanup_free_ char *sql = NULL;
    if (asprintf(&sql, "%s (%s)", head, names) < 0) {
        sql = NULL;
        return -ENOMEM;
    }
    PgProbe *p = NULL;
    int r = pgprobe_new(leader, &p);
    if (r < 0) {
        (void)snprintf(err, errlen, "%s", strerror(-r));
        return r;
    }
    r = pgprobe_exec(p, sql, deadline_usec, ret);
    if (r < 0) {
        (void)snprintf(err, errlen, "%s", pgprobe_last_error(p));
    }
    pgprobe_free(p);
    return r;
}

int logical_fetch(const PgProbeConfig *leader, const LogicalPlan *plan, uint64_t deadline_usec,
                  LogicalCopy *ret, size_t max, char *err, size_t errlen)
{
    _cleanup_free_ char *names = NULL;
    size_t names_size = 0;
    FILE *f = open_memstream(&names, &names_size);
    if (!f) {
        return -ENOMEM;
    }
    size_t wanted_n = 0;
    for (size_t i = 0; i < plan->n; i++) {
        if (plan->actions[i].step != LOGICAL_COPY) {
            continue;
        }
        if (wanted_n++) {
            fputc(',', f);
        }
        put_literal(f, plan->actions[i].name);
    }
    if (fclose(f) != 0) {
        return -ENOMEM;
    }
    if (wanted_n == 0) {
        return 0;
    }
    PGresult *res = NULL;
    int r = query_once(leader,
                       "SELECT slot_name, database, plugin, pg_catalog.encode(pg_catalog."
                       "pg_read_binary_file('pg_replslot/' || slot_name || '/state'), 'hex') "
                       "FROM pg_catalog.pg_replication_slots WHERE NOT "
                       "pg_catalog.pg_is_in_recovery() AND slot_type = 'logical' AND NOT "
                       "temporary AND slot_name IN",
                       names, deadline_usec, &res, err, errlen);
    if (r < 0) {
        return r;
    }
    size_t n = 0;
    for (int i = 0; res && PQnfields(res) == 4 && i < PQntuples(res) && n < max; i++) {
        const char *name = PQgetvalue(res, i, 0);
        const SlotsLogical *want = NULL;
        for (size_t j = 0; j < plan->n; j++) {
            if (plan->actions[j].step == LOGICAL_COPY && strcmp(plan->actions[j].name, name) == 0) {
                want = plan->actions[j].want;
            }
        }
        /* Patroni's compare_slots(): copied only with the configured
         * database and plugin */
        if (!want || strcmp(PQgetvalue(res, i, 1), want->database) != 0 ||
            strcmp(PQgetvalue(res, i, 2), want->plugin) != 0 || PQgetisnull(res, i, 3)) {
            continue;
        }
        LogicalCopy c = { 0 };
        (void)snprintf(c.name, sizeof(c.name), "%s", name);
        if (unhex(PQgetvalue(res, i, 3), &c.state, &c.size) < 0) {
            continue;
        }
        ret[n++] = c;
    }
    if (res) {
        PQclear(res);
    }
    if (n == 0) {
        (void)snprintf(err, errlen,
                       "the primary has none of them with the configured database "
                       "and plugin");
    }
    return (int)n;
}

/* ---- the state file ---- */

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* Removes a slot directory: its regular files, then itself. */
static int remove_slot_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? 0 : -errno;
    }
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && r == 0) {
            r = -errno;
        }
    }
    closedir(d);
    if (r == 0 && rmdir(dir) < 0) {
        r = -errno;
    }
    return r;
}

int logical_install(const char *data_dir, const LogicalCopy *c)
{
    _cleanup_free_ char *slots = NULL, *dir = NULL, *tmp = NULL, *state = NULL;
    if (asprintf(&slots, "%s/pg_replslot", data_dir) < 0) {
        slots = NULL;
        return -ENOMEM;
    }
    if (asprintf(&dir, "%s/%s", slots, c->name) < 0) {
        dir = NULL;
        return -ENOMEM;
    }
    if (asprintf(&tmp, "%s.tmp", dir) < 0) {
        tmp = NULL;
        return -ENOMEM;
    }
    if (asprintf(&state, "%s/state", tmp) < 0) {
        state = NULL;
        return -ENOMEM;
    }
    int r = remove_slot_dir(tmp);
    if (r < 0) {
        return r;
    }
    if (mkdir(tmp, 0700) < 0) {
        return -errno;
    }
    int fd = open(state, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    size_t done = 0;
    while (done < c->size) {
        ssize_t w = write(fd, c->state + done, c->size - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            r = w < 0 ? -errno : -EIO;
            close(fd);
            return r;
        }
        done += (size_t)w;
    }
    r = fsync(fd) < 0 ? -errno : 0;
    if (close(fd) < 0 && r == 0) {
        r = -errno;
    }
    if (r == 0) {
        r = fsync_path(tmp, O_RDONLY | O_DIRECTORY);
    }
    /* over an existing directory: swapped in one step (the old one, now
     * NAME.tmp, removed after), so a crash never finds neither */
    if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        r = remove_slot_dir(tmp);
    } else if (r == 0 && errno == ENOENT && rename(tmp, dir) < 0) {
        r = -errno;
    } else if (r == 0 && errno != ENOENT) {
        r = -errno;
    }
    if (r == 0) {
        r = fsync_path(dir, O_RDONLY | O_DIRECTORY);
    }
    if (r == 0) {
        r = fsync_path(slots, O_RDONLY | O_DIRECTORY);
    }
    return r;
}

int logical_uninstall(const char *data_dir, const char *name)
{
    _cleanup_free_ char *dir = NULL, *slots = NULL;
    if (asprintf(&slots, "%s/pg_replslot", data_dir) < 0) {
        slots = NULL;
        return -ENOMEM;
    }
    if (asprintf(&dir, "%s/%s", slots, name) < 0) {
        dir = NULL;
        return -ENOMEM;
    }
    int r = remove_slot_dir(dir);
    return r < 0 ? r : fsync_path(slots, O_RDONLY | O_DIRECTORY);
}

void logical_state_done(LogicalState *s)
{
    logical_conns_done(&s->conns);
    free(s->problem);
    json_decref(s->positions);
    *s = (LogicalState){ 0 };
}

/* ---- readiness (Patroni's check_logical_slots_readiness) ---- */

int logical_unready_add(LogicalState *s, const char *name)
{
    for (size_t i = 0; i < s->n_unready; i++) {
        if (strcmp(s->unready[i].name, name) == 0) {
            s->unready[i].has_xmin = false; /* a new copy: remembered again */
            return 0;
        }
    }
    if (s->n_unready >= LOGICAL_SLOTS_MAX) {
        return -E2BIG;
    }
    LogicalUnready *u = &s->unready[s->n_unready++];
    *u = (LogicalUnready){ 0 };
    (void)snprintf(u->name, sizeof(u->name), "%s", name);
    return 0;
}

size_t logical_readiness(LogicalState *s, const LogicalXmins *primary, const LogicalSlot *local,
                         size_t n_local, char ready[][PGPROBE_NAME_MAX], size_t max)
{
    size_t n_ready = 0;
    if (primary->has_physical) {
        for (size_t i = 0; i < s->n_unready; i++) {
            LogicalUnready *u = &s->unready[i];
            for (size_t j = 0; j < primary->n && !u->has_xmin; j++) {
                if (strcmp(primary->names[j], u->name) == 0 && primary->has_xmin[j]) {
                    u->has_xmin = true;
                    u->xmin = primary->xmins[j];
                }
            }
        }
    }
    for (size_t i = 0; i < s->n_unready;) {
        LogicalUnready *u = &s->unready[i];
        const LogicalSlot *l = find_local(local, n_local, u->name);
        bool gone = !l;
        bool safe = l && primary->has_physical && u->has_xmin && l->has_catalog_xmin &&
                    u->xmin <= primary->physical_xmin && primary->physical_xmin <= l->catalog_xmin;
        if (!gone && !safe) {
            i++;
            continue;
        }
        if (safe && n_ready < max) {
            memcpy(ready[n_ready++], u->name, sizeof(u->name));
        }
        memmove(u, u + 1, (s->n_unready - i - 1) * sizeof(*u));
        s->n_unready--;
    }
    return n_ready;
}

int logical_primary_xmins(const PgProbeConfig *leader, const LogicalState *s, const char *physical,
                          uint64_t deadline_usec, LogicalXmins *ret, char *err, size_t errlen)
{
    _cleanup_free_ char *names = NULL;
    size_t names_size = 0;
    FILE *f = open_memstream(&names, &names_size);
    if (!f) {
        return -ENOMEM;
    }
    put_literal(f, physical);
    for (size_t i = 0; i < s->n_unready; i++) {
        fputc(',', f);
        put_literal(f, s->unready[i].name);
    }
    if (fclose(f) != 0) {
        return -ENOMEM;
    }
    PGresult *res = NULL;
    int r = query_once(leader,
                       "SELECT slot_name, slot_type, catalog_xmin::text::bigint FROM "
                       "pg_catalog.pg_replication_slots WHERE NOT pg_catalog.pg_is_in_recovery() "
                       "AND slot_name IN",
                       names, deadline_usec, &res, err, errlen);
    if (r < 0) {
        return r;
    }
    LogicalXmins x = { 0 };
    for (int i = 0; res && PQnfields(res) == 3 && i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 0);
        bool has = !PQgetisnull(res, i, 2);
        uint64_t v = has ? strtoull(PQgetvalue(res, i, 2), NULL, 10) : 0;
        if (strcmp(name, physical) == 0 && strcmp(PQgetvalue(res, i, 1), "physical") == 0) {
            x.physical_exists = true;
            x.has_physical = has;
            x.physical_xmin = v;
        } else if (x.n < LOGICAL_SLOTS_MAX) {
            (void)snprintf(x.names[x.n], sizeof(x.names[x.n]), "%s", name);
            x.has_xmin[x.n] = has;
            x.xmins[x.n++] = v;
        }
    }
    if (res) {
        PQclear(res);
    }
    *ret = x;
    return 0;
}
