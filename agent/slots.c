/* Permanent physical and logical slots, ignored physical slots (Patroni's get_replication_slots()
 * and ignore_replication_slot() in dcs/__init__.py and
 * postgresql/slots.py, 3.0.2). */
#include "slots.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dynconfig.h"
#include "macro.h"

static int push(char ***v, size_t *n, const char *s)
{
    char *copy = strdup(s);
    char **items = copy ? realloc(*v, (*n + 1) * sizeof(**v)) : NULL;
    if (!items) {
        free(copy);
        return -ENOMEM;
    }
    *v = items;
    (*v)[(*n)++] = copy;
    return 0;
}

static bool field_empty(const json_t *matcher, const char *field)
{
    const char *s = json_string_value(json_object_get(matcher, field));
    return !s || !*s;
}

/* Patroni: a matcher matches a slot when its name is absent or equal and
 * each of database, plugin and type is empty or equal; a physical slot has
 * no database or plugin. */
static int read_ignored(const json_t *ignore, SlotsWanted *w)
{
    size_t i;
    const json_t *m;
    json_array_foreach(ignore, i, m)
    {
        const char *type = json_string_value(json_object_get(m, "type"));
        if (!field_empty(m, "database") || !field_empty(m, "plugin") ||
            (type && *type && strcmp(type, "physical") != 0)) {
            continue; /* matches logical slots only */
        }
        const json_t *name = json_object_get(m, "name");
        if (!name || json_is_null(name)) {
            w->ignore_all = true;
        } else if (dynconfig_slot_name_valid(json_string_value(name))) {
            if (push(&w->ignored, &w->n_ignored, json_string_value(name)) < 0) {
                return -ENOMEM;
            }
        } /* else no slot can have that name */
    }
    return 0;
}

static int note(FILE *f, bool *any, const char *name, const char *why)
{
    int r = fprintf(f, "%s\"%s\" %s", *any ? "; " : "", name, why);
    *any = true;
    return r < 0 ? -ENOMEM : 0;
}

static int push_logical(SlotsWanted *w, const char *name, const char *database, const char *plugin)
{
    SlotsLogical *items = realloc(w->logical, (w->n_logical + 1) * sizeof(*items));
    if (!items) {
        return -ENOMEM;
    }
    w->logical = items;
    SlotsLogical l = { strdup(name), strdup(database), strdup(plugin) };
    if (!l.name || !l.database || !l.plugin) {
        free(l.name);
        free(l.database);
        free(l.plugin);
        return -ENOMEM;
    }
    w->logical[w->n_logical++] = l;
    return 0;
}

static bool field_matches(const json_t *matcher, const char *field, const char *value)
{
    const char *m = json_string_value(json_object_get(matcher, field));
    return !m || !*m || (value && strcmp(m, value) == 0);
}

bool slots_ignored(const ConfigDcs *dcs, const char *name, const char *type, const char *database,
                   const char *plugin)
{
    if (!dcs->ignore_slots || json_is_null(dcs->ignore_slots)) {
        return false;
    }
    if (dynconfig_check_slots(NULL, dcs->ignore_slots, NULL, NULL, 0) < 0) {
        return true;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(dcs->ignore_slots, i, m)
    {
        const json_t *n = json_object_get(m, "name");
        if ((!n || json_is_null(n) || strcmp(json_string_value(n), name) == 0) &&
            field_matches(m, "type", type) && field_matches(m, "database", database) &&
            field_matches(m, "plugin", plugin)) {
            return true;
        }
    }
    return false;
}

bool slots_any_logical(const ConfigDcs *dcs)
{
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)dcs->slots, name, v)
    {
        if (dynconfig_slot_name_valid(name) && dynconfig_logical_slot(v, NULL, NULL)) {
            return true;
        }
    }
    return false;
}

int slots_wanted(const ConfigDcs *dcs, const char *own_slot, SlotsRole role, SlotsWanted *ret)
{
    bool leader = role == SLOTS_PRIMARY || role == SLOTS_STANDBY_LEADER;
    bool logical = role == SLOTS_PRIMARY || role == SLOTS_REPLICA;
    const char *database, *plugin;
    SlotsWanted w = { 0 };
    char *problem = NULL;
    size_t problem_size = 0;
    FILE *f = open_memstream(&problem, &problem_size);
    bool any = false;
    int r = f ? 0 : -ENOMEM;

    if (r == 0 && dcs->ignore_slots) {
        if (dynconfig_check_slots(NULL, dcs->ignore_slots, NULL, NULL, 0) < 0) {
            w.ignore_all = true;
            r = note(f, &any, "ignore_slots", "is malformed: no slot is dropped");
        } else {
            r = read_ignored(dcs->ignore_slots, &w);
        }
    }
    if (r == 0 && dcs->slots && !json_is_object(dcs->slots)) {
        r = note(f, &any, "slots", "is not an object of slot names");
    }
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)dcs->slots, name, v)
    {
        if (r < 0) {
            break;
        }
        if (!dynconfig_slot_name_valid(name)) {
            r = note(f, &any, name, "is not a valid slot name (lower case letters, digits, _)");
            continue;
        }
        switch (dynconfig_slot_type(v)) {
        case DYNCONFIG_SLOT_PHYSICAL:
            if (leader && (!own_slot || strcmp(name, own_slot) != 0)) {
                r = push(&w.permanent, &w.n_permanent, name);
            }
            break;
        case DYNCONFIG_SLOT_LOGICAL:
            if (!dynconfig_logical_slot(v, &database, &plugin)) {
                r = note(f, &any, name, "is a logical slot without a database and a plugin");
            } else if (own_slot && strcmp(name, own_slot) == 0) {
                /* Patroni: it conflicts with the member's physical slot */
                r = note(f, &any, name, "is a logical slot named as a member's physical slot");
            } else if (logical) {
                r = push_logical(&w, name, database, plugin);
            }
            break;
        case DYNCONFIG_SLOT_BAD:
            r = note(f, &any, name, "has a value that is neither null nor a slot object");
            break;
        }
    }
    if (f && fclose(f) != 0) {
        r = -ENOMEM;
    }
    if (r < 0) {
        free(problem);
        slots_wanted_done(&w);
        *ret = (SlotsWanted){ 0 };
        return -ENOMEM;
    }
    if (any) {
        w.problem = problem;
    } else {
        free(problem);
    }
    *ret = w;
    return 0;
}

void slots_wanted_done(SlotsWanted *w)
{
    for (size_t i = 0; i < w->n_permanent; i++) {
        free(w->permanent[i]);
    }
    for (size_t i = 0; i < w->n_ignored; i++) {
        free(w->ignored[i]);
    }
    for (size_t i = 0; i < w->n_logical; i++) {
        free(w->logical[i].name);
        free(w->logical[i].database);
        free(w->logical[i].plugin);
    }
    free(w->logical);
    free(w->permanent);
    free(w->ignored);
    free(w->problem);
    *w = (SlotsWanted){ 0 };
}
