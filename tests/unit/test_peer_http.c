/* Unit tests for lib/peer-http.c: the TLS set-up for requests to agents
 * (Patroni's PatroniRequest rules, a row per case) and the URLs it refuses
 * to fetch. No network: requests are set up, never performed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "peer-http.h"

typedef struct TlsRow {
    const char *name;
    /* config */
    const char *r_cafile, *r_certfile, *r_keyfile;
    const char *c_cacert, *c_certfile, *c_keyfile;
    bool insecure; /* the caller's: true for the agent, false for dbctl */
    /* expected */
    const char *cafile, *certfile, *keyfile;
    bool want_insecure, skip_host_check;
} TlsRow;

static const TlsRow rows[] = {
    /* Patroni's agent (insecure=True) without a client certificate: CERT_NONE */
    { "agent_plain", NULL, NULL, NULL, NULL, NULL, NULL, true, NULL, NULL, NULL, true, false },
    { "agent_cafile_only", "/ca", NULL, NULL, NULL, NULL, NULL, true, "/ca", NULL, NULL, true,
      false },
    /* with a certificate: CERT_REQUIRED against the CA, no host name check */
    { "agent_https", "/ca", "/crt", "/key", NULL, NULL, NULL, true, "/ca", "/crt", "/key", false,
      true },
    { "agent_key_in_cert", "/ca", "/crt", NULL, NULL, NULL, NULL, true, "/ca", "/crt", NULL, false,
      true },
    /* ctl before restapi, each on its own */
    { "agent_ctl_all", "/ca", "/crt", "/key", "/cca", "/ccrt", "/ckey", true, "/cca", "/ccrt",
      "/ckey", false, true },
    { "agent_ctl_cacert", "/ca", "/crt", "/key", "/cca", NULL, NULL, true, "/cca", "/crt", "/key",
      false, true },
    { "agent_ctl_cert_only", NULL, NULL, NULL, NULL, "/ccrt", NULL, true, NULL, "/ccrt", NULL,
      false, true },
    /* patronictl (ctl.insecure false): always verified, host name too */
    { "ctl_plain", "/ca", NULL, NULL, NULL, NULL, NULL, false, "/ca", NULL, NULL, false, false },
    { "ctl_https", "/ca", "/crt", "/key", NULL, NULL, NULL, false, "/ca", "/crt", "/key", false,
      false },
};

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void test_tls_from_config(void **state)
{
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const TlsRow *r = &rows[i];
        Config c;
        memset(&c, 0, sizeof(c));
        c.restapi.cafile = (char *)r->r_cafile;
        c.restapi.certfile = (char *)r->r_certfile;
        c.restapi.keyfile = (char *)r->r_keyfile;
        c.ctl.cacert = (char *)r->c_cacert;
        c.ctl.certfile = (char *)r->c_certfile;
        c.ctl.keyfile = (char *)r->c_keyfile;
        PeerHttpOptions o = { .timeout_usec = 1, .username = "u" };
        peer_http_tls_from_config(&c, r->insecure, &o);
        bool ok = str_eq(o.cafile, r->cafile) && str_eq(o.certfile, r->certfile) &&
                  str_eq(o.keyfile, r->keyfile) && o.insecure == r->want_insecure &&
                  o.skip_host_check == r->skip_host_check && o.timeout_usec == 1 &&
                  str_eq(o.username, "u");
        if (!ok) {
            print_error("row \"%s\": cafile %s certfile %s keyfile %s insecure %d skip_host %d\n",
                        r->name, o.cafile ? o.cafile : "-", o.certfile ? o.certfile : "-",
                        o.keyfile ? o.keyfile : "-", o.insecure, o.skip_host_check);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_only_http_urls(void **state)
{
    static const struct {
        const char *url;
        int want;
    } urls[] = {
        { "http://127.0.0.1:8008/patroni", 0 },
        { "HTTPS://127.0.0.1:8008/patroni", 0 },
        { "file:///etc/passwd", -EINVAL },
        { "gopher://127.0.0.1:70/1", -EINVAL },
        { "ftp://127.0.0.1/x", -EINVAL },
        { "dict://127.0.0.1:11211/stat", -EINVAL },
        { "127.0.0.1:8008/patroni", -EINVAL },
        { "", -EINVAL },
        { NULL, -EINVAL },
    };
    PeerHttpOptions o = { .timeout_usec = 1000 };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        PeerHttpRequest req = { 0 };
        int r = peer_http_request_init(&req, "GET", urls[i].url, NULL, &o);
        if (r != urls[i].want) {
            print_error("url \"%s\": %d, want %d\n", urls[i].url ? urls[i].url : "(null)", r,
                        urls[i].want);
        }
        assert_int_equal(r, urls[i].want);
        peer_http_request_done(&req, false);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_from_config),
        cmocka_unit_test(test_only_http_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
