/* fuzz_frame -- libFuzzer target for the wire codec (core/frame.c).
 *
 * The input is a byte stream read as the tunnel reads it: a header, a
 * payload, the next header... Every complete frame goes through
 * ri_frame_check and, whatever the check said, through the decoder of its
 * type (decoders must cope with any length). Each payload is copied to a
 * buffer of exactly its size so ASan sees any read past it. Decoded frames
 * must encode back to the same bytes.
 *
 *   make fuzz && build/fuzz/fuzz_frame -max_total_time=60 [corpus-dir]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK(s[i] >= 0x20 && s[i] < 0x7f);
}

static void payload(uint8_t type, const uint8_t *p, size_t n)
{
    char err[256];
    static uint8_t out[RI_PORTS_MAX + 64]; /* the largest encoder output */
    switch (type) {
    case RI_F_HELLO: {
        struct ri_hello h;
        int rc = ri_hello_decode(p, n, &h, err, sizeof err);
        CHECK(rc == 0 || rc == RI_HELLO_MALFORMED || rc == RI_HELLO_VERSION);
        if (rc == 0) {
            size_t known = (size_t)(h.auth_msg - p) + h.auth_len; /* before the caps */
            CHECK(h.auth_msg >= p && known <= n);
            CHECK(known == n || (n - known >= 4 && n - known <= 4 + RI_HELLO_EXTRA_MAX));
            size_t m = ri_hello_encode_lane(out, sizeof out, h.edge_id, h.auth, h.auth_msg,
                                            h.auth_len, h.caps, h.group, h.lane);
            size_t lanes = h.caps & RI_CAP_LANES ? RI_LANE_FIELDS : 0;
            CHECK(known == n || n - known >= 4 + lanes); /* the lane fields are there */
            /* the same bytes up to the caps, and the caps (and lane fields) when sent */
            CHECK(m == known + 4 + lanes && memcmp(out, p, known < n ? m : known) == 0);
        }
        break;
    }
    case RI_F_WELCOME: {
        uint16_t v;
        uint32_t caps;
        if (ri_welcome_decode(p, n, &v, &caps) == 0) {
            CHECK(n == 2 || (n >= 6 && n <= RI_WELCOME_MAX));
            CHECK(n > 2 || caps == 0);
        }
        break;
    }
    case RI_F_OPEN: {
        struct ri_open o;
        if (ri_open_decode(p, n, &o, err, sizeof err) == 0) {
            CHECK(n == RI_OPEN_LEN);
            ri_open_encode(out, (struct sockaddr *)&o.client, (struct sockaddr *)&o.edge);
            CHECK(memcmp(out, p, RI_OPEN_LEN) == 0);
        }
        break;
    }
    case RI_F_CONFIG: {
        static struct ri_config_msg m;
        if (ri_config_decode(p, n, &m, err, sizeof err) == 0) {
            for (unsigned i = 1; i < m.n_ports; i++)
                CHECK(m.ports[i - 1] < m.ports[i]);
            size_t k = ri_config_encode(out, sizeof out, &m);
            CHECK(k == n && memcmp(out, p, n) == 0);
        }
        break;
    }
    case RI_F_PORTS: {
        static struct ri_ports_msg m;
        if (ri_ports_decode(p, n, &m, err, sizeof err) == 0) {
            for (unsigned i = 1; i < m.n_failed; i++)
                CHECK(m.ports[i - 1] < m.ports[i]);
            printable(m.reason, sizeof m.reason);
            size_t k = ri_ports_encode(out, sizeof out, m.ports, m.n_failed, m.reason);
            CHECK(k == n);
        }
        break;
    }
    case RI_F_ADDR: {
        struct sockaddr_storage a;
        if (ri_pubaddr_decode(p, n, &a, err, sizeof err) == 0) {
            CHECK(n == RI_ADDR_LEN && (a.ss_family == AF_INET || a.ss_family == AF_INET6));
            ri_pubaddr_encode(out, (struct sockaddr *)&a);
            CHECK(memcmp(out, p, n) == 0);
        }
        break;
    }
    case RI_F_REFUSE:
    case RI_F_RST:
    case RI_F_GOAWAY: {
        uint16_t code;
        char reason[RI_REASON_MAX + 1], small[8];
        size_t off = type == RI_F_GOAWAY ? 4 : 0; /* GOAWAY: last stream first */
        if (n < off)
            break;
        ri_reason_decode(p + off, n - off, &code, reason, sizeof reason);
        printable(reason, sizeof reason);
        ri_reason_decode(p + off, n - off, &code, small, sizeof small);
        printable(small, sizeof small);
        /* what fits re-encodes to the same code and (printable) text */
        if (n - off >= 2 && n - off <= 2 + RI_REASON_MAX) {
            size_t k = ri_reason_encode(out, sizeof out, code, reason);
            CHECK(k == n - off);
            CHECK(ri_get16(out) == code);
        }
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    char err[256];
    while (off < size) {
        struct ri_frame_hdr h;
        int rc = ri_frame_hdr_get(data + off, size - off, RI_FRAME_MAX_PAYLOAD, &h);
        if (rc == 0)
            break; /* need more bytes */
        if (rc < 0) {
            CHECK(h.len > RI_FRAME_MAX_PAYLOAD);
            break; /* the tunnel fails here */
        }
        uint8_t hb[RI_FRAME_HDR];
        ri_frame_hdr_put(hb, h.type, h.stream, h.len);
        CHECK(memcmp(hb + 2, data + off + 2, RI_FRAME_HDR - 2) == 0 && hb[0] == h.type);
        off += RI_FRAME_HDR;
        if (h.len > size - off)
            break;
        int ok = ri_frame_check(&h, err, sizeof err) == 0;
        if (!ok)
            CHECK(strnlen(err, sizeof err) > 0);
        else
            CHECK(h.flags == 0 && h.len <= RI_FRAME_MAX_PAYLOAD);
        uint8_t *p = malloc(h.len ? h.len : 1);
        if (!p)
            return 0;
        memcpy(p, data + off, h.len);
        payload(h.type, p, h.len);
        free(p);
        off += h.len;
    }
    return 0;
}
