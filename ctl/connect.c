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

int ctl_target_open(const char *verb, const char *namespace_arg, const char *scope_arg,
                    CtlTarget *ret)
{
    _cleanup_(config_freep) Config *cfg = NULL;
    const char *scope = scope_arg ? scope_arg : arg_scope;
    const char *namespace = namespace_arg;
    const char *endpoints[CTL_ETCD_ENDPOINTS_MAX];
    size_t n_endpoints = 0;
    _cleanup_free_ char *etcd_copy = NULL;
    EtcdClientConfig ec = {
        .protocol = ETCD_PROTOCOL_HTTP,
        .request_timeout_usec = CTL_ETCD_REQUEST_USEC,
        .connect_timeout_usec = CTL_ETCD_CONNECT_USEC,
        .deadline_usec = CTL_ETCD_DEADLINE_USEC,
    };

    if (!arg_config && !arg_etcd) {
        return usage(verb, "no cluster given: use -c CONFIG, or --etcd HOST:PORT and --scope NAME");
    }
    if (arg_config) {
        ConfigDiags diags = { 0 };
        int r = config_load(arg_config, environ, &cfg, &diags);
        if (r < 0) {
            config_diags_print(&diags, stderr);
            config_diags_done(&diags);
            if (r == -ENOMEM) {
                return r;
            }
            fprintf(stderr, "dbctl %s: cannot use config \"%s\"\n", verb, arg_config);
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
        ec.cacert = cfg->etcd3.cacert;
        ec.cert = cfg->etcd3.cert;
        ec.key = cfg->etcd3.key;
        if (!arg_etcd) {
            for (size_t i = 0; i < cfg->etcd3.hosts.n && n_endpoints < ELEMENTSOF(endpoints); i++) {
                endpoints[n_endpoints++] = cfg->etcd3.hosts.items[i];
            }
        }
    }
    if (arg_etcd) {
        etcd_copy = strdup(arg_etcd);
        if (!etcd_copy) {
            return -ENOMEM;
        }
        for (char *save = NULL, *t = strtok_r(etcd_copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (n_endpoints == ELEMENTSOF(endpoints)) {
                return usage(verb, "too many --etcd endpoints (at most 16)");
            }
            endpoints[n_endpoints++] = t;
        }
    }
    if (n_endpoints == 0) {
        return usage(verb, "no etcd endpoint: give --etcd HOST:PORT or etcd3.hosts in the config");
    }
    if (!scope || !*scope) {
        return usage(verb, "no scope: give --scope NAME (or -c CONFIG with scope)");
    }

    CtlTarget t = { 0 };
    int r = dcs_paths_init(&t.paths, namespace, scope);
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
