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
/* "1.2.3.4:5", "[v6]:5", or "-" for no address; returns buf. */
const char *ri_raddr_str(const struct ri_addr *a, char *buf, size_t cap);
/* "host:port", "[v6]:port" for an IPv6 literal; returns buf. */
const char *ri_hostport_str(const char *host, int port, char *buf, size_t cap);
/* 1 when s is a numeric IPv4 or IPv6 address (no name lookup needed). */
int ri_is_numeric_ip(const char *s);
/* Closes fd so that the peer sees a TCP reset (SO_LINGER 0), not a clean end. */
void ri_close_abort(int fd);

#endif
