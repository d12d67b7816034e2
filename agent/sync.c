/* Synchronous replication: the pure choices (see sync.h). */
#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool sync_set_contains(const SyncSet *s, const char *name)
{
    for (size_t i = 0; s && name && i < s->n; i++) {
        if (strcasecmp(s->names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

bool sync_set_subset(const SyncSet *a, const SyncSet *b)
{
    for (size_t i = 0; i < a->n; i++) {
        if (!sync_set_contains(b, a->names[i])) {
            return false;
        }
    }
    return true;
}

void sync_set_add(SyncSet *s, const char *name)
{
    if (name && s->n < SYNC_SET_MAX && !sync_set_contains(s, name)) {
        s->names[s->n++] = name;
    }
}

/* a before b among the newcomers: further ahead, then by name. */
static bool ranks_before(const SyncReplica *a, const SyncReplica *b)
{
    if (a->flush_lsn != b->flush_lsn) {
        return a->flush_lsn > b->flush_lsn;
    }
    return strcmp(a->name, b->name) < 0;
}

/* Patroni's sync_node_maxlag test: max_lsn is the furthest candidate's
 * position when there are several, else the primary's. */
static bool within_lag(const SyncReplica *rows, size_t n, const SyncLagLimit *lag,
                       const SyncReplica *r)
{
    if (!lag || lag->max_lag <= 0) {
        return true;
    }
    uint64_t ref = 0;
    size_t candidates = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].streaming && rows[i].eligible && rows[i].name) {
            candidates++;
            ref = rows[i].flush_lsn > ref ? rows[i].flush_lsn : ref;
        }
    }
    if (candidates <= 1) {
        ref = lag->primary_lsn;
    }
    return r->flush_lsn >= ref || ref - r->flush_lsn <= (uint64_t)lag->max_lag;
}

void sync_choose(const SyncReplica *rows, size_t n, const SyncSet *current, int64_t count,
                 const SyncLagLimit *lag, SyncSet *ret)
{
    *ret = (SyncSet){ 0 };
    size_t want = count < 0 ? 0 : count > SYNC_SET_MAX ? SYNC_SET_MAX : (size_t)count;
    for (size_t i = 0; i < n && ret->n < want; i++) {
        if (rows[i].streaming && rows[i].eligible && sync_set_contains(current, rows[i].name) &&
            within_lag(rows, n, lag, &rows[i])) {
            sync_set_add(ret, rows[i].name);
        }
    }
    /* then the best of the rest, one at a time (n is small) */
    while (ret->n < want) {
        const SyncReplica *best = NULL;
        for (size_t i = 0; i < n; i++) {
            const SyncReplica *r = &rows[i];
            if (!r->streaming || !r->eligible || !r->name || sync_set_contains(ret, r->name) ||
                !within_lag(rows, n, lag, r)) {
                continue;
            }
            if (!best || ranks_before(r, best)) {
                best = r;
            }
        }
        if (!best) {
            break;
        }
        sync_set_add(ret, best->name);
    }
}

int sync_standby_names(const SyncSet *s, bool any_standby, char *buf, size_t size)
{
    if (size == 0) {
        return -ENOBUFS;
    }
    buf[0] = '\0'; /* fmemopen leaves the buffer alone when nothing is written */
    FILE *f = fmemopen(buf, size, "w");
    if (!f) {
        return -ENOBUFS;
    }
    if (any_standby) {
        fputs("*", f);
    } else if (s->n > 0) {
        fprintf(f, "FIRST %zu (", s->n);
        for (size_t i = 0; i < s->n; i++) {
            fputs(i ? ",\"" : "\"", f);
            for (const char *c = s->names[i]; *c; c++) {
                if (*c == '"') {
                    fputc('"', f); /* an identifier's quote is doubled */
                }
                fputc(*c, f);
            }
            fputc('"', f);
        }
        fputs(")", f);
    }
    /* fmemopen needs room for the terminating NUL: a full buffer failed */
    bool ok = fflush(f) == 0 && ftell(f) < (long)size;
    fclose(f);
    return ok ? 0 : -ENOBUFS;
}

int sync_key_text(const SyncSet *s, char *buf, size_t size)
{
    size_t o = 0;
    if (size == 0) {
        return -ENOBUFS;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        int w = snprintf(buf + o, size - o, "%s%s", i ? "," : "", s->names[i]);
        if (w < 0 || (size_t)w >= size - o) {
            return -ENOBUFS;
        }
        o += (size_t)w;
    }
    return 0;
}

bool sync_others_released(const SyncReplica *rows, size_t n, const SyncSet *keep)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].waited_on && !sync_set_contains(keep, rows[i].name)) {
            return false;
        }
    }
    return true;
}

bool sync_caught_up(const SyncReplica *rows, size_t n, const SyncSet *keep, uint64_t lsn)
{
    for (size_t k = 0; k < keep->n; k++) {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++) {
            ok = rows[i].name && strcasecmp(rows[i].name, keep->names[k]) == 0 && rows[i].sync &&
                 rows[i].flush_lsn >= lsn;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void step_put_key(SyncStep *st, const SyncSet *key, bool clears_release)
{
    st->effect = SYNC_EFFECT_PUT_KEY;
    st->key = *key;
    st->clears_release = clears_release;
}

int sync_plan(const SyncPlanInput *in, SyncStep *st)
{
    *st = (SyncStep){ .effect = SYNC_EFFECT_NONE, .async_said = in->async_said };
    if (!in->enabled) {
        /* synchronous_standby_names first, then the key */
        st->effect = in->names         ? SYNC_EFFECT_UNSET_NAMES
                     : in->key_present ? SYNC_EFFECT_DELETE_KEY
                                       : SYNC_EFFECT_NONE;
        return 0;
    }
    SyncSet key = in->key, want;
    sync_choose(in->rows, in->n, &key, in->node_count, &in->lag, &want);
    if (want.n == 0 && in->strict) {
        /* Strict: commits keep waiting. Whoever synchronous_standby_names
         * names stays in the key; with nobody named, any standby that comes
         * may release commits ("*"), and the key names none of them, so
         * nobody is promoted in the meantime. */
        if (!in->key_mine) {
            step_put_key(st, &key, false);
        } else if (!in->names || !*in->names) {
            st->effect = SYNC_EFFECT_SET_NAMES;
            (void)snprintf(st->names, sizeof(st->names), "*");
            st->say_strict_wait = !in->async_said;
            st->async_said = true;
        }
        return 0;
    }
    st->async_said = in->async_said && want.n == 0;

    /* 1. the key names every member we are about to wait for */
    if (!in->key_mine || !sync_set_subset(&want, &key)) {
        for (size_t i = 0; i < want.n; i++) {
            sync_set_add(&key, want.names[i]);
        }
        /* our view's revision of the key is stale after this: no other key
         * write in this loop (step 3 needs another loop anyway) */
        step_put_key(st, &key, false);
        return 0;
    }

    /* 2. then PostgreSQL waits for them (and no longer for the others) */
    if (sync_standby_names(&want, false, st->names, sizeof(st->names)) < 0) {
        return -ENOBUFS;
    }
    if (!in->names || strcmp(in->names, st->names) != 0) {
        st->effect = SYNC_EFFECT_SET_NAMES;
        if (want.n == 0 && !st->async_said) {
            st->say_async = true;
            st->async_said = true;
        }
        return 0;
    }

    /* 3. the key stops naming members PostgreSQL released, once the members
     * that stay hold everything acknowledged up to then */
    if (sync_set_subset(&key, &want) || !sync_others_released(in->rows, in->n, &want)) {
        return 0; /* nothing to drop, or their walsenders have not applied the change yet */
    }
    if (in->release_lsn == 0) {
        st->effect = SYNC_EFFECT_NOTE_RELEASE;
        return 0;
    }
    if (sync_caught_up(in->rows, in->n, &want, in->release_lsn)) {
        step_put_key(st, &want, true);
    }
    return 0;
}

bool sync_needs_step(const SyncPlanInput *in)
{
    if (!in->enabled) {
        return false;
    }
    SyncSet want;
    sync_choose(in->rows, in->n, &in->key, in->node_count, &in->lag, &want);
    return !sync_set_subset(&want, &in->key) || (!in->strict && !sync_set_subset(&in->key, &want));
}
