/* proxy_v1.c -- PROXY protocol v1 formatting as HAProxy's proxy-protocol.txt
 * defines it: canonical addresses (inet_ntop), decimal ports without leading
 * zeroes, single spaces, CRLF, at most 107 bytes. */
#include "proxy_v1.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int v4_of(const struct sockaddr *sa, struct in_addr *a, unsigned *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *a = in->sin_addr;
        *port = ntohs(in->sin_port);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(a, in6->sin6_addr.s6_addr + 12, 4);
            *port = ntohs(in6->sin6_port);
            return 1;
        }
    }
    return 0;
}

static int v6_of(const struct sockaddr *sa, struct in6_addr *a, unsigned *port)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        *a = in6->sin6_addr;
        *port = ntohs(in6->sin6_port);
        return 1;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memset(a, 0, sizeof *a);
        a->s6_addr[10] = a->s6_addr[11] = 0xff;
        memcpy(a->s6_addr + 12, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
        return 1;
    }
    return 0;
}

size_t proxy_v1_format(char *out, size_t cap, const struct sockaddr *src,
                       const struct sockaddr *dst)
{
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    unsigned sp, dp;
    int n;
    struct in_addr s4, d4;
    struct in6_addr s6, d6;
    /* an IPv4 client reaching an IPv4-mapped listener is still TCP4 */
    if (v4_of(src, &s4, &sp) && v4_of(dst, &d4, &dp)) {
        inet_ntop(AF_INET, &s4, s, sizeof s);
        inet_ntop(AF_INET, &d4, d, sizeof d);
        n = snprintf(out, cap, "PROXY TCP4 %s %s %u %u\r\n", s, d, sp, dp);
    } else if (v6_of(src, &s6, &sp) && v6_of(dst, &d6, &dp)) {
        inet_ntop(AF_INET6, &s6, s, sizeof s);
        inet_ntop(AF_INET6, &d6, d, sizeof d);
        n = snprintf(out, cap, "PROXY TCP6 %s %s %u %u\r\n", s, d, sp, dp);
    } else {
        n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
    }
    if (n < 0 || (size_t)n >= cap || n > PROXY_V1_MAX)
        return 0;
    return (size_t)n;
}
