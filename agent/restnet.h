/* Client addresses for the REST API's allowlist (Patroni's
 * restapi.allowlist and allowlist_include_members): IPv4 and IPv6
 * networks, parsed from text, from a socket address or from the host of a
 * member's api_url, and matched. Pure; nothing here resolves a name or
 * logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define REST_NET_ADDR_MAX 16 /* bytes of an IPv6 address */

/* An IPv4 or IPv6 network; an address is one with all bits. */
typedef struct RestNet {
    int family;                            /* AF_INET or AF_INET6 */
    unsigned char addr[REST_NET_ADDR_MAX]; /* network byte order; 4 bytes for AF_INET */
    unsigned prefix;                       /* bits that must match */
} RestNet;

/* The len bytes at s as "ADDRESS" or "ADDRESS/BITS" (host bits may be set,
 * as Python's ip_network(strict=False)). Writes *ret only on success. */
bool rest_net_parse(const char *s, size_t len, RestNet *ret);
/* A socket address as an address (an IPv4-mapped IPv6 address as IPv4).
 * False for another family. */
bool rest_net_of_sockaddr(const struct sockaddr *sa, RestNet *ret);
/* The host of "scheme://[user@]host[:port][/...]" when it is an IP address
 * (IPv6 in brackets); false for a host name or anything else. */
bool rest_net_of_url(const char *url, RestNet *ret);
/* Whether address a is in net (different families never match). */
bool rest_net_contains(const RestNet *net, const RestNet *a);
/* Whether a is in any of the n nets. */
bool rest_nets_contain(const RestNet *nets, size_t n, const RestNet *a);
