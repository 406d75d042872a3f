/* netutil.c -- address parsing, resolution and formatting. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netutil.h"

int ri_parse_hostport(const char *s, char *host, size_t hcap, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    const char *h = s, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']')
            return -1;
        h++, he--;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= hcap)
        return -1;
    /* an IPv6 host needs brackets: "::1:8443" could be an address without port */
    if (h == s && memchr(h, ':', hl))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 1 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int ri_resolve_all(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   int max, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof *ss)
            continue;
        memcpy(&ss[n], ai->ai_addr, ai->ai_addrlen);
        len[n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    if (n == 0)
        snprintf(err, errlen, "cannot resolve %s: no usable address", host);
    return n ? n : -1;
}

int ri_resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
               char *err, size_t errlen)
{
    return ri_resolve_all(host, port, ss, len, 1, err, errlen) < 0 ? -1 : 0;
}

const char *ri_raddr_str(const struct ri_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (!a || (a->family != 4 && a->family != 6) ||
        !inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->ip, ip, sizeof ip))
        snprintf(buf, cap, "-");
    else if (a->family == 4)
        snprintf(buf, cap, "%s:%u", ip, a->port);
    else
        snprintf(buf, cap, "[%s]:%u", ip, a->port);
    return buf;
}

const char *ri_hostport_str(const char *host, int port, char *buf, size_t cap)
{
    int v6 = strchr(host, ':') != NULL;
    snprintf(buf, cap, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return buf;
}

const char *ri_addr_str(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(buf, cap, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(buf, cap, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, cap, "?");
    }
    return buf;
}

const char *ri_ip_str(const struct sockaddr *sa, char *buf, size_t cap)
{
    const void *a = sa->sa_family == AF_INET ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                    : sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                    : NULL;
    if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)cap))
        snprintf(buf, cap, "?");
    return buf;
}

void ri_close_abort(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

int ri_is_numeric_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int v4_private(const uint8_t *a)
{
    return a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
           a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
           (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0);
}

int ri_addr_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_private((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family != AF_INET6)
        return 0;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const uint8_t zero[16], mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0)
        return v4_private(a + 12);
    if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1)) /* :: and ::1 */
        return 1;
    return (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || (a[0] & 0xfe) == 0xfc;
}

int ri_addr_use_public(struct sockaddr_storage *edge, const struct sockaddr_storage *pub)
{
    if (!ri_addr_is_private((const struct sockaddr *)edge))
        return 0;
    if (edge->ss_family == AF_INET && pub->ss_family == AF_INET) {
        ((struct sockaddr_in *)edge)->sin_addr = ((const struct sockaddr_in *)pub)->sin_addr;
        return 1;
    }
    if (edge->ss_family != AF_INET6)
        return 0;
    uint8_t *a = ((struct sockaddr_in6 *)edge)->sin6_addr.s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int is_mapped = memcmp(a, mapped, 12) == 0;
    if (is_mapped && pub->ss_family == AF_INET) {
        memcpy(a + 12, &((const struct sockaddr_in *)pub)->sin_addr, 4);
        return 1;
    }
    if (!is_mapped && pub->ss_family == AF_INET6) {
        memcpy(a, ((const struct sockaddr_in6 *)pub)->sin6_addr.s6_addr, 16);
        return 1;
    }
    return 0;
}

int ri_connect_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    return err;
}
