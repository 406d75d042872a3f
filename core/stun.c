/* stun.c -- STUN Binding request and response (RFC 5389), pure codec. */
#include "stun.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t ri_stun_request(uint8_t out[RI_STUN_HDR], const uint8_t txid[RI_STUN_TXID])
{
    out[0] = 0;
    out[1] = RI_STUN_BINDING_REQUEST;
    out[2] = out[3] = 0; /* no attributes */
    out[4] = (uint8_t)(RI_STUN_COOKIE >> 24);
    out[5] = (uint8_t)(RI_STUN_COOKIE >> 16);
    out[6] = (uint8_t)(RI_STUN_COOKIE >> 8);
    out[7] = (uint8_t)RI_STUN_COOKIE;
    memcpy(out + 8, txid, RI_STUN_TXID);
    return RI_STUN_HDR;
}

/* An address attribute's value: reserved u8, family u8 (1 IPv4, 2 IPv6),
 * port u16, address; xor: XOR-MAPPED-ADDRESS (RFC 5389 15.2), with hdr the
 * message's first 20 bytes (cookie and transaction id). */
static int get_address(const uint8_t *v, size_t len, int xor, const uint8_t *hdr,
                       struct sockaddr_storage *ss, char *err, size_t errlen)
{
    const char *what = xor ? "XOR-MAPPED-ADDRESS" : "MAPPED-ADDRESS";
    if (len < 4)
        return snprintf(err, errlen, "%s of %zu bytes", what, len), -1;
    uint16_t port = get16(v + 2);
    if (xor)
        port ^= (uint16_t)(RI_STUN_COOKIE >> 16);
    memset(ss, 0, sizeof *ss);
    if (v[1] == 1) {
        if (len != 8)
            return snprintf(err, errlen, "%s: IPv4 in %zu bytes", what, len), -1;
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        uint8_t a[4];
        for (int i = 0; i < 4; i++)
            a[i] = (uint8_t)(v[4 + i] ^ (xor ? hdr[4 + i] : 0));
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a, 4);
        in->sin_port = htons(port);
    } else if (v[1] == 2) {
        if (len != 20)
            return snprintf(err, errlen, "%s: IPv6 in %zu bytes", what, len), -1;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        uint8_t a[16];
        for (int i = 0; i < 16; i++) /* cookie, then transaction id */
            a[i] = (uint8_t)(v[4 + i] ^ (xor ? hdr[4 + i] : 0));
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a, 16);
        in6->sin6_port = htons(port);
    } else {
        return snprintf(err, errlen, "%s with address family %u", what, v[1]), -1;
    }
    return 0;
}

int ri_stun_parse(const uint8_t *p, size_t n, const uint8_t txid[RI_STUN_TXID],
                  struct sockaddr_storage *addr, enum ri_stun_src *src, char *err,
                  size_t errlen)
{
    if (n < RI_STUN_HDR)
        return snprintf(err, errlen, "%zu bytes: shorter than a STUN header", n), -1;
    if (p[0] & 0xc0)
        return snprintf(err, errlen, "not a STUN message (top bits set)"), -1;
    if (get32(p + 4) != RI_STUN_COOKIE)
        return snprintf(err, errlen, "wrong magic cookie"), -1;
    uint16_t type = get16(p), len = get16(p + 2);
    if (len % 4 || (size_t)len + RI_STUN_HDR != n)
        return snprintf(err, errlen, "length %u does not match the %zu-byte datagram", len, n),
               -1;
    if (memcmp(p + 8, txid, RI_STUN_TXID) != 0)
        return snprintf(err, errlen, "not our transaction"), -1;
    if (type == RI_STUN_BINDING_ERROR)
        return snprintf(err, errlen, "Binding error response"), -1;
    if (type != RI_STUN_BINDING_SUCCESS)
        return snprintf(err, errlen, "message type 0x%04x is not a Binding success", type), -1;
    const uint8_t *xv = NULL, *mv = NULL;
    size_t xl = 0, ml = 0;
    for (size_t off = RI_STUN_HDR; off < n;) {
        if (n - off < 4)
            return snprintf(err, errlen, "truncated attribute header"), -1;
        uint16_t at = get16(p + off), al = get16(p + off + 2);
        size_t padded = ((size_t)al + 3) & ~(size_t)3;
        if (padded > n - off - 4)
            return snprintf(err, errlen, "attribute 0x%04x of %u bytes overruns the message",
                            at, al), -1;
        if (at == RI_STUN_ATTR_XOR_MAPPED && !xv)
            xv = p + off + 4, xl = al;
        else if (at == RI_STUN_ATTR_MAPPED && !mv)
            mv = p + off + 4, ml = al;
        off += 4 + padded;
    }
    if (xv) {
        *src = RI_STUN_FROM_XOR;
        return get_address(xv, xl, 1, p, addr, err, errlen);
    }
    if (mv) {
        *src = RI_STUN_FROM_MAPPED;
        return get_address(mv, ml, 0, p, addr, err, errlen);
    }
    return snprintf(err, errlen, "no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS"), -1;
}
