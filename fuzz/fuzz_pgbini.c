/* Fuzz target: the pgbouncer.ini reader and [databases] rewrite
 * (lib/pgbini.c: pgbini_rewrite_databases, pgbini_get,
 * pgbini_get_database_param, pgbini_userlist_password).
 *
 * The input is the ini text. Its first line may name the targets, as a
 * pgbouncer comment: "; targets: NAME=HOST:PORT/DBNAME ..." (up to
 * FUZZ_TARGETS_MAX; names, hosts and dbnames of [A-Za-z0-9_.-]); without it
 * the targets are postgres -> 10.0.0.1:5432/postgres and postgres_ro ->
 * 10.0.0.2:5433/postgres. Properties: rewriting the rewritten text changes
 * nothing (rewriting twice equals rewriting once; a file ending in
 * "[databases]\r" once gained duplicate entries on every rewrite), and each
 * target's entry then reads back the target's host, port and dbname. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pgbini.h"

#define FUZZ_TARGETS_MAX 4
#define FUZZ_TOKEN_MAX   64
#define FUZZ_TARGETS_TAG "; targets:"

typedef struct FuzzTarget {
    char name[FUZZ_TOKEN_MAX];
    char host[FUZZ_TOKEN_MAX];
    char dbname[FUZZ_TOKEN_MAX];
    int port;
} FuzzTarget;

static bool token_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

/* Copies the token at *p into buf; returns its length (0: none). */
static size_t take_token(const char **p, const char *end, char *buf)
{
    size_t n = 0;
    while (*p < end && token_char(**p) && n < FUZZ_TOKEN_MAX - 1) {
        buf[n++] = *(*p)++;
    }
    buf[n] = '\0';
    return n;
}

static size_t parse_targets(const char *text, size_t len, FuzzTarget *t)
{
    size_t tag_len = strlen(FUZZ_TARGETS_TAG);
    if (len < tag_len || memcmp(text, FUZZ_TARGETS_TAG, tag_len) != 0) {
        return 0;
    }
    const char *end = memchr(text, '\n', len);
    if (!end) {
        end = text + len;
    }
    const char *p = text + tag_len;
    size_t n = 0;
    while (p < end && n < FUZZ_TARGETS_MAX) {
        while (p < end && *p == ' ') {
            p++;
        }
        FuzzTarget *f = &t[n];
        if (take_token(&p, end, f->name) == 0 || p >= end || *p++ != '=' ||
            take_token(&p, end, f->host) == 0 || p >= end || *p++ != ':') {
            break;
        }
        f->port = 0;
        while (p < end && isdigit((unsigned char)*p) && f->port < 100000) {
            f->port = f->port * 10 + (*p++ - '0');
        }
        if (p >= end || *p++ != '/' || take_token(&p, end, f->dbname) == 0) {
            break;
        }
        n++;
    }
    return n;
}

/* Whether each target's entry in text reads back as the target. Only for
 * targets with distinct names (a later duplicate wins). */
static void check_entries(const char *text, size_t len, const PgbIniTarget *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            if (i != j && strcmp(t[i].name, t[j].name) == 0) {
                return;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *host = NULL, *port = NULL, *dbname = NULL;
        char want_port[16];
        (void)snprintf(want_port, sizeof(want_port), "%d", t[i].port);
        if (pgbini_get_database_param(text, len, t[i].name, PGBINI_PARAM_HOST, &host) != 0 ||
            pgbini_get_database_param(text, len, t[i].name, PGBINI_PARAM_PORT, &port) != 0 ||
            pgbini_get_database_param(text, len, t[i].name, PGBINI_PARAM_DBNAME, &dbname) != 0 ||
            strcmp(host, t[i].host) != 0 || strcmp(port, want_port) != 0 ||
            strcmp(dbname, t[i].dbname) != 0) {
            fprintf(stderr, "target \"%s\" reads back host=%s port=%s dbname=%s\n", t[i].name,
                    host ? host : "(none)", port ? port : "(none)", dbname ? dbname : "(none)");
            abort();
        }
        free(host);
        free(port);
        free(dbname);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = fuzz_cap(size, FUZZ_INPUT_MAX);
    const char *text = (const char *)data;

    FuzzTarget parsed[FUZZ_TARGETS_MAX];
    PgbIniTarget targets[FUZZ_TARGETS_MAX] = {
        { "postgres", "10.0.0.1", 5432, "postgres" },
        { "postgres_ro", "10.0.0.2", 5433, "postgres" },
    };
    size_t n_targets = parse_targets(text, size, parsed);
    for (size_t i = 0; i < n_targets; i++) {
        targets[i] =
            (PgbIniTarget){ parsed[i].name, parsed[i].host, parsed[i].port, parsed[i].dbname };
    }
    if (n_targets == 0) {
        n_targets = 2;
    }

    char *out = NULL;
    size_t out_len = 0;
    bool changed = false;
    PgbIniError err;
    int r =
        pgbini_rewrite_databases(text, size, targets, n_targets, &out, &out_len, &changed, &err);
    if (r == 0) {
        if (strlen(out) != out_len && !memchr(text, '\0', size)) {
            abort();
        }
        if (!changed && (out_len != size || memcmp(out, text, size) != 0)) {
            abort();
        }
        char *again = NULL;
        size_t again_len = 0;
        bool changed_again = true;
        r = pgbini_rewrite_databases(out, out_len, targets, n_targets, &again, &again_len,
                                     &changed_again, &err);
        if (r != 0 || changed_again || again_len != out_len || memcmp(again, out, out_len) != 0) {
            fprintf(stderr, "second rewrite: r=%d changed=%d len %zu -> %zu\n", r, changed_again,
                    out_len, again_len);
            abort();
        }
        free(again);
        check_entries(out, out_len, targets, n_targets);
        free(out);
    }

    char *value = NULL;
    if (pgbini_get(text, size, "pgbouncer", "listen_port", &value) == 0) {
        free(value);
    }
    if (pgbini_get_database_param(text, size, "postgres", PGBINI_PARAM_HOST, &value) == 0) {
        free(value);
    }
    if (pgbini_userlist_password(text, size, "postgres", &value) == 0) {
        (void)pgbini_password_is_hashed(value);
        free(value);
    }
    return 0;
}
