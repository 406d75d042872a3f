/* stun.h -- the STUN Binding transaction of RFC 5389, as far as an edge
 * needs it to learn its public address: a request to send, a response to
 * check. Pure: no sockets, no clock, no randomness (the caller draws the
 * transaction id). The I/O is in stunc.c. */
#ifndef RI_STUN_H
#define RI_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RI_STUN_HDR 20            /* type u16, length u16, cookie u32, transaction id */
#define RI_STUN_TXID 12           /* 96-bit transaction id */
#define RI_STUN_COOKIE 0x2112A442u
#define RI_STUN_BINDING_REQUEST 0x0001
#define RI_STUN_BINDING_SUCCESS 0x0101
#define RI_STUN_BINDING_ERROR 0x0111
#define RI_STUN_ATTR_MAPPED 0x0001
#define RI_STUN_ATTR_XOR_MAPPED 0x0020
#define RI_STUN_MAX 1500          /* a response larger than this is not read whole */

/* Which attribute the address came from. */
enum ri_stun_src { RI_STUN_FROM_XOR = 1, RI_STUN_FROM_MAPPED = 2 };

/* A Binding request without attributes: RI_STUN_HDR bytes into out. */
size_t ri_stun_request(uint8_t out[RI_STUN_HDR], const uint8_t txid[RI_STUN_TXID]);

/* Checks a datagram as the answer to the request with txid: the top two
 * bits zero, a Binding success response, length a multiple of 4 matching
 * the datagram, the magic cookie, the transaction id, every attribute
 * inside the message. The address comes from XOR-MAPPED-ADDRESS, else from
 * MAPPED-ADDRESS (IPv4 or IPv6; other attributes are skipped). 0 with *addr
 * (family, address and port) and *src set; -1 with a reason in err. */
int ri_stun_parse(const uint8_t *p, size_t n, const uint8_t txid[RI_STUN_TXID],
                  struct sockaddr_storage *addr, enum ri_stun_src *src, char *err,
                  size_t errlen);

#endif
