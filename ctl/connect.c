/* dbctl's cluster target. -c CONFIG gives everything (etcd3 hosts, auth,
 * TLS, namespace, scope); --etcd and --scope override it or stand alone.
 * Config warnings are not printed: dbctl often reads the agent's own file,
 * and the agent already reports them. */
#include "connect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "macro.h"

/* --etcd accepts at most this many comma-separated endpoints. */
#define CTL_ETCD_ENDPOINTS_MAX 16

void ctl_target_done(CtlTarget *t)
{
    if (!t) {
        return;
    }
    t->client = etcd_client_free(t->client);
    t->config = config_free(t->config);
    dcs_paths_done(&t->paths);
    free(t->scope);
    t->scope = NULL;
}

static int usage(const char *verb, const char *msg)
{
    fprintf(stderr, "dbctl %s: %s\n", verb, msg);
    return -EINVAL;
}

/* The directory click.get_app_dir() gives on Linux, as patronictl finds
 * its file: $XDG_CONFIG_HOME/APP, else ~/.config/APP. */
static char *app_config_file(const char *app, const char *file)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    char *path = NULL;
    int r;
    if (xdg && *xdg) {
        r = asprintf(&path, "%s/%s/%s", xdg, app, file);
    } else if (home && *home) {
        r = asprintf(&path, "%s/.config/%s/%s", home, app, file);
    } else {
        return NULL;
    }
    return r < 0 ? NULL : path;
}

int ctl_resolve_config(void)
{
    static char *found;
    static const char *const named[] = { "DBCTL_CONFIG_FILE", "PATRONICTL_CONFIG_FILE" };
    static const struct {
        const char *app, *file;
    } defaults[] = { { "dbha", "dbctl.yaml" }, { "patroni", "patronictl.yaml" } };

    if (arg_config) {
        return 0;
    }
    for (size_t i = 0; i < ELEMENTSOF(named); i++) {
        const char *v = getenv(named[i]);
        if (v && *v) {
            /* named by the user: it must be there (patronictl's rule) */
            if (access(v, R_OK) < 0) {
                fprintf(stderr, "dbctl: cannot read the config file %s names (%s): %m\n", named[i],
                        v);
                return -EINVAL;
            }
            arg_config = v;
            return 0;
        }
    }
    for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
        free(found);
        found = app_config_file(defaults[i].app, defaults[i].file);
        if (found && access(found, F_OK) == 0) {
            arg_config = found;
            return 0;
        }
    }
    free(found);
    found = NULL;
    return 0;
}

/* "https://h:p" or "http://h:p" sets the protocol (all alike); "h:p" keeps
 * it. The scheme is cut off in place. */
static int endpoint_scheme(const char *verb, char **e, int *protocol)
{
    static const struct {
        const char *prefix;
        EtcdProtocol p;
    } schemes[] = { { "http://", ETCD_PROTOCOL_HTTP }, { "https://", ETCD_PROTOCOL_HTTPS } };
    for (size_t i = 0; i < ELEMENTSOF(schemes); i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncmp(*e, schemes[i].prefix, n) != 0) {
            continue;
        }
        if (*protocol >= 0 && *protocol != (int)schemes[i].p) {
            return usage(verb, "--etcd endpoints mix http:// and https://");
        }
        *protocol = (int)schemes[i].p;
        *e += n;
        size_t len = strlen(*e);
        if (len > 0 && (*e)[len - 1] == '/') {
            (*e)[len - 1] = '\0';
        }
        return 0;
    }
    if (strstr(*e, "://")) {
        return usage(verb,
                     "an --etcd endpoint is HOST:PORT, http://HOST:PORT or https://HOST:PORT");
    }
    return 0;
}

int ctl_target_open(const char *verb, const char *namespace_arg, const char *scope_arg,
                    CtlTarget *ret)
{
    _cleanup_(config_freep) Config *cfg = NULL;
    const char *scope = scope_arg ? scope_arg : arg_scope;
    const char *namespace = namespace_arg;
    const char *endpoints[CTL_ETCD_ENDPOINTS_MAX];
    size_t n_endpoints = 0;
    _cleanup_free_ char *etcd_copy = NULL, *user_copy = NULL;
    EtcdClientConfig ec = {
        .protocol = ETCD_PROTOCOL_HTTP,
        .request_timeout_usec = CTL_ETCD_REQUEST_USEC,
        .connect_timeout_usec = CTL_ETCD_CONNECT_USEC,
        .deadline_usec = CTL_ETCD_DEADLINE_USEC,
    };
    ConfigDiags diags = { 0 };
    int scheme = -1; /* the protocol --etcd's URLs name */

    /* no file: the environment alone, as patronictl (PATRONI_ETCD3_HOSTS...) */
    int r = config_load_ctl(arg_config, environ, &cfg, &diags);
    if (r < 0) {
        config_diags_print(&diags, stderr);
        config_diags_done(&diags);
        if (r == -ENOMEM) {
            return r;
        }
        fprintf(stderr, "dbctl %s: cannot use config \"%s\"\n", verb,
                arg_config ? arg_config : "from the environment");
        return -EINVAL;
    }
    config_diags_done(&diags);
    if (!scope) {
        scope = cfg->scope;
    }
    if (!namespace) {
        namespace = cfg->namespace;
    }
    if (cfg->etcd3.protocol) {
        EtcdProtocol p = etcd_protocol_from_string(cfg->etcd3.protocol);
        if (p < 0) {
            return usage(verb, "etcd3.protocol must be http or https");
        }
        ec.protocol = p;
    }
    ec.username = cfg->etcd3.username;
    ec.password = cfg->etcd3.password;
    ec.cacert = arg_etcd_cacert ? arg_etcd_cacert : cfg->etcd3.cacert;
    ec.cert = arg_etcd_cert ? arg_etcd_cert : cfg->etcd3.cert;
    ec.key = arg_etcd_key ? arg_etcd_key : cfg->etcd3.key;
    if (arg_etcd_user) {
        user_copy = strdup(arg_etcd_user);
        if (!user_copy) {
            return -ENOMEM;
        }
        char *colon = strchr(user_copy, ':');
        if (colon) {
            *colon = '\0';
        }
        ec.username = user_copy;
        ec.password = colon ? colon + 1 : getenv("DBHA_ETCD_PASSWORD");
        if (!*user_copy || !ec.password) {
            return usage(verb, "--etcd-user is USER:PASSWORD, or USER with the password in "
                               "DBHA_ETCD_PASSWORD (as libdbha)");
        }
    }
    if (!arg_etcd) {
        for (size_t i = 0; i < cfg->etcd3.hosts.n && n_endpoints < ELEMENTSOF(endpoints); i++) {
            endpoints[n_endpoints++] = cfg->etcd3.hosts.items[i];
        }
    } else {
        etcd_copy = strdup(arg_etcd);
        if (!etcd_copy) {
            return -ENOMEM;
        }
        for (char *save = NULL, *t = strtok_r(etcd_copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (n_endpoints == ELEMENTSOF(endpoints)) {
                return usage(verb, "too many --etcd endpoints (at most 16)");
            }
            r = endpoint_scheme(verb, &t, &scheme);
            if (r < 0) {
                return r;
            }
            endpoints[n_endpoints++] = t;
        }
    }
    if (scheme >= 0) {
        ec.protocol = (EtcdProtocol)scheme;
    } else if (arg_etcd_cacert || arg_etcd_cert) {
        ec.protocol = ETCD_PROTOCOL_HTTPS; /* TLS options without a scheme */
    }
    if (n_endpoints == 0) {
        return usage(verb, "no etcd endpoint: give -c CONFIG (a patronictl or dbagent config "
                           "file with etcd3.hosts), or --etcd HOST:PORT");
    }
    if (!scope || !*scope) {
        return usage(verb, "no scope: give --scope NAME (or a config with scope)");
    }

    CtlTarget t = { 0 };
    r = dcs_paths_init(&t.paths, namespace, scope);
    if (r == -EINVAL) {
        return usage(verb, "invalid scope: it must be non-empty and contain no \"/\"");
    }
    if (r < 0) {
        return r;
    }
    t.scope = strdup(scope);
    if (!t.scope) {
        ctl_target_done(&t);
        return -ENOMEM;
    }
    ec.endpoints = endpoints;
    ec.n_endpoints = n_endpoints;
    EtcdError err = { 0 };
    r = etcd_client_new(&ec, &t.client, &err);
    if (r < 0) {
        ctl_target_done(&t);
        if (r == -ENOMEM) {
            return r;
        }
        fprintf(stderr, "dbctl %s: invalid etcd settings: %s\n", verb, err.message);
        return -EINVAL;
    }
    t.config = TAKE_PTR(cfg);
    *ret = t;
    return 0;
}

int ctl_read_cluster(const char *verb, const char *scope_arg, CtlTarget *t, DcsCluster **ret)
{
    *t = (CtlTarget){ 0 };
    int r = ctl_target_open(verb, NULL, scope_arg, t);
    if (r < 0) {
        return r == -EINVAL ? 2 : 1;
    }
    EtcdError e = { 0 };
    r = dcs_cluster_read(t->client, &t->paths, ret, &e);
    if (r < 0) {
        fprintf(stderr, "dbctl %s: cannot read cluster \"%s\" from etcd (%s): %s\n", verb, t->scope,
                etcd_client_get_endpoint(t->client), e.message[0] ? e.message : strerror(-r));
        return 1;
    }
    return 0;
}

void ctl_pq_finishp(PGconn **c)
{
    if (*c) {
        PQfinish(*c);
        *c = NULL;
    }
}

void ctl_pq_clearp(PGresult **r)
{
    if (*r) {
        PQclear(*r);
        *r = NULL;
    }
}
