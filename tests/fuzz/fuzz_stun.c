/* fuzz_stun -- libFuzzer target for the STUN Binding codec (core/stun.c).
 *
 * The input is a datagram as the edge's STUN client receives it. It is
 * parsed twice: against a fixed transaction id, and against the id in its
 * own bytes 8..19 (so most inputs get past that check to the attributes).
 * The datagram is copied to a buffer of exactly its size so ASan sees any
 * read past it. An accepted response has a Binding success header whose
 * length matches, and an IPv4 or IPv6 address.
 *
 *   make fuzz && build/fuzz/fuzz_stun -max_total_time=60 tests/fuzz/seeds/stun
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void parse(const uint8_t *p, size_t n, const uint8_t *txid)
{
    struct sockaddr_storage a;
    enum ri_stun_src src;
    char err[128];
    if (ri_stun_parse(p, n, txid, &a, &src, err, sizeof err) == 0) {
        CHECK(n >= RI_STUN_HDR && (n - RI_STUN_HDR) % 4 == 0);
        CHECK(p[0] == 0x01 && p[1] == 0x01);
        CHECK((size_t)(p[2] << 8 | p[3]) + RI_STUN_HDR == n);
        CHECK(memcmp(p + 8, txid, RI_STUN_TXID) == 0);
        CHECK(a.ss_family == AF_INET || a.ss_family == AF_INET6);
        CHECK(src == RI_STUN_FROM_XOR || src == RI_STUN_FROM_MAPPED);
    } else {
        CHECK(memchr(err, '\0', sizeof err) && err[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    static const uint8_t fixed[RI_STUN_TXID] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    parse(p, size, fixed);
    if (size >= RI_STUN_HDR) {
        uint8_t txid[RI_STUN_TXID];
        memcpy(txid, p + 8, sizeof txid);
        parse(p, size, txid);
    }
    uint8_t req[RI_STUN_HDR];
    CHECK(ri_stun_request(req, fixed) == RI_STUN_HDR);
    free(p);
    return 0;
}
