/* Client addresses for the REST API's allowlist (restnet.h). */
#include "restnet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* "ADDRESS" or "ADDRESS/BITS" (host bits may be set, as Python's
 * ip_network(strict=False)). */
bool rest_net_parse(const char *s, size_t len, RestNet *ret)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
    }
    RestNet n = { 0 };
    if (inet_pton(AF_INET, buf, n.addr) == 1) {
        n.family = AF_INET;
        n.prefix = 32;
    } else if (inet_pton(AF_INET6, buf, n.addr) == 1) {
        n.family = AF_INET6;
        n.prefix = 128;
    } else {
        return false;
    }
    if (slash) {
        char *end = NULL;
        unsigned long bits = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || bits > n.prefix) {
            return false;
        }
        n.prefix = (unsigned)bits;
    }
    *ret = n;
    return true;
}

/* An IPv4 address arriving on an IPv6 socket is matched as IPv4. */
bool rest_net_of_sockaddr(const struct sockaddr *sa, RestNet *ret)
{
    RestNet n = { 0 };
    if (sa && sa->sa_family == AF_INET) {
        n.family = AF_INET;
        n.prefix = 32;
        memcpy(n.addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            n.family = AF_INET;
            n.prefix = 32;
            memcpy(n.addr, a6->s6_addr + 12, 4);
        } else {
            n.family = AF_INET6;
            n.prefix = 128;
            memcpy(n.addr, a6->s6_addr, 16);
        }
    } else {
        return false;
    }
    *ret = n;
    return true;
}

bool rest_net_contains(const RestNet *net, const RestNet *a)
{
    if (net->family != a->family) {
        return false;
    }
    unsigned full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, a->addr, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (net->addr[full] & mask) == (a->addr[full] & mask);
}

bool rest_nets_contain(const RestNet *nets, size_t n, const RestNet *a)
{
    for (size_t i = 0; i < n; i++) {
        if (rest_net_contains(&nets[i], a)) {
            return true;
        }
    }
    return false;
}

/* The host of "scheme://host[:port]/..." when it is an IP address. */
bool rest_net_of_url(const char *url, RestNet *ret)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p) {
        return false;
    }
    p += 3;
    const char *at = strpbrk(p, "@/");
    if (at && *at == '@') {
        p = at + 1;
    }
    if (*p == '[') {
        const char *end = strchr(p, ']');
        return end && !memchr(p + 1, '/', (size_t)(end - p - 1)) &&
               rest_net_parse(p + 1, (size_t)(end - p - 1), ret);
    }
    size_t len = strcspn(p, ":/?#");
    return rest_net_parse(p, len, ret) && ret->prefix == 32;
}
