/* dbctl version: dbctl's own version and, when a cluster is given, each
 * member's agent version from GET <api_url> (Patroni's /patroni body:
 * patroni.version, server_version), with a short timeout per member so a
 * dead node costs at most VERSION_TIMEOUT_MS. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dbha/dbha.h"

#include "connect.h"
#include "ctl.h"
#include "dcs.h"
#include "http.h"
#include "macro.h"
#include "output.h"

#define VERSION_TIMEOUT_MS 2000L
/* Room for "15.4" or "9.6.24". */
#define VERSION_PG_MAX 32

/* GET url; the parsed JSON object, or NULL (unreachable, not JSON). */
static json_t *fetch_json(const char *url)
{
    CtlHttpReply r;
    if (ctl_http("GET", url, "", NULL, NULL, VERSION_TIMEOUT_MS, &r) < 0) {
        return NULL;
    }
    json_t *v = r.status == 200 && r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    ctl_http_reply_done(&r);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* PostgreSQL's server_version_num as text: 150004 -> "15.4", 90624 -> "9.6.24". */
static void pg_version_text(json_int_t v, char *buf, size_t size)
{
    if (v >= 100000) {
        (void)snprintf(buf, size, "%lld.%lld", (long long)(v / 10000), (long long)(v % 100));
    } else {
        (void)snprintf(buf, size, "%lld.%lld.%lld", (long long)(v / 10000),
                       (long long)(v / 100 % 100), (long long)(v % 100));
    }
}

/* {"name", "agent": "dbha"|"Patroni"|null, "version", "postgresql"} for one
 * member; version null when it does not answer. */
static json_t *member_version(const DcsMember *m)
{
    json_auto_t *body = m->api_url ? fetch_json(m->api_url) : NULL;
    const json_t *patroni = body ? json_object_get(body, "patroni") : NULL;
    const char *version = json_string_value(json_object_get(patroni, "version"));
    const json_t *sv = body ? json_object_get(body, "server_version") : NULL;
    char pg[VERSION_PG_MAX] = "";
    if (json_is_integer(sv) && json_integer_value(sv) > 0) {
        pg_version_text(json_integer_value(sv), pg, sizeof(pg));
    }
    /* our /patroni carries dbha_state beside Patroni's fields */
    const char *agent = !version ? NULL : json_object_get(body, "dbha_state") ? "dbha" : "Patroni";
    return json_pack("{s:s, s:s?, s:s?, s:s?}", "name", m->name, "agent", agent, "version", version,
                     "postgresql", pg[0] ? pg : NULL);
}

static bool wanted(const char *name, int argc, char *argv[])
{
    if (argc <= 1) {
        return true;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return true;
        }
    }
    return false;
}

int verb_version(int argc, char *argv[])
{
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') {
            fprintf(stderr, "dbctl version: unexpected option \"%s\"\n", argv[i]);
            return 2;
        }
    }
    if (!arg_config && !arg_etcd) {
        if (argc > 1) {
            fprintf(stderr, "dbctl version: members need a cluster: give -c CONFIG, or --etcd "
                            "and --scope\n");
            return 2;
        }
        if (arg_output == CTL_OUTPUT_TABLE) {
            printf("dbctl version %s\n", dbha_version());
            return 0;
        }
        json_auto_t *o = json_pack("{s:s}", "dbctl", dbha_version());
        int r = !o                              ? -ENOMEM
                : arg_output == CTL_OUTPUT_JSON ? output_json(o, stdout)
                                                : output_yaml(o, stdout);
        return r < 0 ? 1 : 0;
    }

    CtlTarget t = { 0 };
    _cleanup_(dcs_cluster_freep) DcsCluster *c = NULL;
    json_auto_t *members = json_array();
    json_auto_t *o = NULL;
    int r;
    int ret = ctl_read_cluster("version", NULL, &t, &c);
    if (ret != 0) {
        goto done;
    }
    ret = 1;
    for (int i = 1; i < argc; i++) {
        if (!dcs_cluster_get_member(c, argv[i])) {
            fprintf(stderr, "dbctl version: no member \"%s\" in cluster \"%s\"\n", argv[i],
                    t.scope);
            goto done;
        }
    }
    if (!members) {
        goto done;
    }
    for (size_t i = 0; i < c->n_members; i++) {
        if (!wanted(c->members[i].name, argc, argv)) {
            continue;
        }
        json_t *v = member_version(&c->members[i]);
        if (!v || json_array_append_new(members, v) < 0) {
            goto done;
        }
    }
    if (arg_output != CTL_OUTPUT_TABLE) {
        o = json_pack("{s:s, s:O}", "dbctl", dbha_version(), "members", members);
        r = !o                              ? -ENOMEM
            : arg_output == CTL_OUTPUT_JSON ? output_json(o, stdout)
                                            : output_yaml(o, stdout);
        ret = r < 0 ? 1 : 0;
        goto done;
    }
    printf("dbctl version %s\n\n", dbha_version());
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *agent = json_string_value(json_object_get(m, "agent"));
        const char *version = json_string_value(json_object_get(m, "version"));
        const char *pg = json_string_value(json_object_get(m, "postgresql"));
        if (!version) {
            printf("%s: unreachable\n", name);
        } else {
            printf("%s: %s %s%s%s\n", name, agent, version, pg ? " PostgreSQL " : "", strempty(pg));
        }
    }
    ret = 0;
done:
    fflush(stdout);
    ctl_target_done(&t);
    return ret;
}
