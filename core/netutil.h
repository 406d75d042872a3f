/* netutil.h -- address parsing, resolution and formatting helpers. */
#ifndef RI_NETUTIL_H
#define RI_NETUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A client's or upstream's address, compact (logs, events, status). */
struct ri_addr {
    uint8_t family; /* 0 none, 4, 6 */
    uint8_t ip[16];
    uint16_t port;
};

/* "host:port" or "[v6]:port"; 0 ok, -1 malformed. */
int ri_parse_hostport(const char *s, char *host, size_t hcap, int *port);
/* First address of host:port. */
int ri_resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
               char *err, size_t errlen);
/* Up to max addresses in the resolver's order; returns how many, or -1. */
int ri_resolve_all(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   int max, char *err, size_t errlen);
const char *ri_addr_str(const struct sockaddr *sa, char *buf, size_t cap);
/* The address alone: "1.2.3.4", "2001:db8::1" ("?" for another family). */
const char *ri_ip_str(const struct sockaddr *sa, char *buf, size_t cap);
/* "1.2.3.4:5", "[v6]:5", or "-" for no address; returns buf. */
const char *ri_raddr_str(const struct ri_addr *a, char *buf, size_t cap);
/* "host:port", "[v6]:port" for an IPv6 literal; returns buf. */
const char *ri_hostport_str(const char *host, int port, char *buf, size_t cap);
/* 1 when s is a numeric IPv4 or IPv6 address (no name lookup needed). */
int ri_is_numeric_ip(const char *s);
/* The outcome of a non-blocking connect() once fd is writable: 0, or the
 * errno value it failed with (SO_ERROR). */
int ri_connect_error(int fd);
/* 1 when the address cannot be reached from the Internet as it is: private
 * (RFC 1918), loopback, link-local (169.254/16, fe80::/10), unique local
 * (fc00::/7) or unspecified (0.0.0.0, ::); an IPv4-mapped IPv6 address is
 * judged as its IPv4 address. 0 otherwise (public), and for other families. */
int ri_addr_is_private(const struct sockaddr *sa);
/* The hub's rule for the PROXY header's destination: when the address a
 * client reached the edge on (edge) is private by ri_addr_is_private and
 * the edge reported a public address (pub, from STUN) of its family --
 * an IPv4 one also for an IPv4-mapped IPv6 edge address, kept mapped --
 * edge's address becomes pub's (the port stays). 1 replaced, 0 left. */
int ri_addr_use_public(struct sockaddr_storage *edge, const struct sockaddr_storage *pub);
/* Closes fd so that the peer sees a TCP reset (SO_LINGER 0), not a clean end. */
void ri_close_abort(int fd);

#endif
