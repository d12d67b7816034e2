/* Unit tests for agent/restnet.c: the allowlist's networks, a row per case
 * (parse, match, the host of a member's api_url). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "restnet.h"

typedef struct MatchRow {
    const char *net;  /* allowlist entry */
    const char *addr; /* client address */
    bool parses, matches;
} MatchRow;

static const MatchRow match_rows[] = {
    { "127.0.0.1", "127.0.0.1", true, true },
    { "127.0.0.1", "127.0.0.2", true, false },
    { "10.0.0.0/8", "10.255.1.2", true, true },
    { "10.0.0.0/8", "11.0.0.1", true, false },
    { "10.1.2.3/8", "10.9.9.9", true, true }, /* host bits set: strict=False */
    { "192.168.1.0/25", "192.168.1.127", true, true },
    { "192.168.1.0/25", "192.168.1.128", true, false },
    { "0.0.0.0/0", "8.8.8.8", true, true },
    { "0.0.0.0/0", "::1", true, false }, /* families never mix */
    { "::1", "::1", true, true },
    { "fd00::/8", "fd12:3456::1", true, true },
    { "fd00::/8", "fe80::1", true, false },
    { "2001:db8::/33", "2001:db8:7fff::1", true, true },
    { "2001:db8::/33", "2001:db8:8000::1", true, false },
    { "10.0.0.0/33", NULL, false, false },
    { "::/129", NULL, false, false },
    { "10.0.0.0/", NULL, false, false },
    { "10.0.0.0/x", NULL, false, false },
    { "10.0.0", NULL, false, false },
    { "localhost", NULL, false, false }, /* names are resolved by the server, not here */
    { "", NULL, false, false },
};

static bool addr_of(const char *text, RestNet *ret)
{
    return rest_net_parse(text, strlen(text), ret) &&
           ret->prefix == (ret->family == AF_INET ? 32u : 128u);
}

static void test_parse_and_match(void **state)
{
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
        const MatchRow *r = &match_rows[i];
        RestNet net, a;
        bool parses = rest_net_parse(r->net, strlen(r->net), &net);
        bool matches = parses && r->addr && addr_of(r->addr, &a) && rest_net_contains(&net, &a) &&
                       rest_nets_contain(&net, 1, &a);
        if (parses != r->parses || matches != r->matches) {
            print_error("\"%s\" vs \"%s\": parses %d matches %d, want %d %d\n", r->net,
                        r->addr ? r->addr : "-", parses, matches, r->parses, r->matches);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_sockaddr(void **state)
{
    struct sockaddr_in6 v6 = { .sin6_family = AF_INET6 };
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.2", &v6.sin6_addr), 1);
    RestNet a, net;
    assert_true(rest_net_of_sockaddr((const struct sockaddr *)&v6, &a));
    assert_int_equal(a.family, AF_INET); /* mapped: matched as IPv4 */
    assert_true(rest_net_parse("127.0.0.2", 9, &net));
    assert_true(rest_net_contains(&net, &a));
    struct sockaddr_in v4 = { .sin_family = AF_INET };
    assert_int_equal(inet_pton(AF_INET, "10.0.0.7", &v4.sin_addr), 1);
    assert_true(rest_net_of_sockaddr((const struct sockaddr *)&v4, &a));
    assert_true(rest_net_parse("10.0.0.0/29", 11, &net));
    assert_true(rest_net_contains(&net, &a));
    struct sockaddr un = { .sa_family = AF_UNIX };
    assert_false(rest_net_of_sockaddr(&un, &a));
    assert_false(rest_net_of_sockaddr(NULL, &a));
}

static void test_url_host(void **state)
{
    static const struct {
        const char *url, *host; /* host NULL: no address */
    } rows[] = {
        { "http://127.0.0.3:8008/patroni", "127.0.0.3" },
        { "https://10.1.2.3/patroni", "10.1.2.3" },
        { "http://user:pw@10.1.2.4:8008/", "10.1.2.4" },
        { "http://[::1]:8008/patroni", "::1" },
        { "http://[fd00::5]/", "fd00::5" },
        { "http://member5:8008/patroni", NULL },
        { "http://[fd00::/8]:80/", NULL },
        { "http://10.0.0.0/8", "10.0.0.0" }, /* the path is not a prefix */
        { "127.0.0.1:8008", NULL },
        { "", NULL },
        { NULL, NULL },
    };
    size_t failures = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        RestNet got, want;
        bool ok = rest_net_of_url(rows[i].url, &got);
        bool good = rows[i].host ? ok && addr_of(rows[i].host, &want) &&
                                       memcmp(&got, &want, sizeof(got)) == 0
                                 : !ok;
        if (!good) {
            print_error("\"%s\": %s\n", rows[i].url ? rows[i].url : "(null)",
                        ok ? "an address it should not be" : "no address");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_match),
        cmocka_unit_test(test_sockaddr),
        cmocka_unit_test(test_url_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
