/* proxy_v1.h -- PROXY protocol v1 line formatting (pure, unit-tested). */
#ifndef RI_PROXY_V1_H
#define RI_PROXY_V1_H

#include <stddef.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107 /* longest line the spec allows, CRLF included */

/* Formats "PROXY TCP4|TCP6 src dst sport dport\r\n". Mixed families are
 * written as TCP6 with IPv4-mapped addresses; other families as
 * "PROXY UNKNOWN\r\n". Returns the length, or 0 if cap is too small. */
size_t proxy_v1_format(char *out, size_t cap, const struct sockaddr *src,
                       const struct sockaddr *dst);

#endif
