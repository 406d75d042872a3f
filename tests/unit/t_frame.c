/* the wire codec (core/frame.c) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "t.h"

TEST(frame_hdr_roundtrip)
{
    uint8_t b[RI_FRAME_HDR];
    ri_frame_hdr_put(b, RI_F_DATA, 0xdeadbeefu, 1234);
    static const uint8_t want[RI_FRAME_HDR] = {0x11, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0x04, 0xd2};
    CHECK_MEM(b, want, sizeof want); /* big-endian on the wire */
    struct ri_frame_hdr h;
    CHECK_INT(ri_frame_hdr_get(b, sizeof b, RI_FRAME_MAX_PAYLOAD, &h), 1);
    CHECK_INT(h.type, RI_F_DATA);
    CHECK_INT(h.flags, 0);
    CHECK_INT(h.stream, 0xdeadbeefu);
    CHECK_INT(h.len, 1234);
    b[1] = 0x80;
    CHECK_INT(ri_frame_hdr_get(b, sizeof b, RI_FRAME_MAX_PAYLOAD, &h), 1);
    CHECK_INT(h.flags, 0x80);
}

TEST(frame_hdr_short_and_oversize)
{
    uint8_t b[RI_FRAME_HDR + 4];
    struct ri_frame_hdr h;
    ri_frame_hdr_put(b, RI_F_DATA, 1, 10);
    for (size_t n = 0; n < RI_FRAME_HDR; n++)
        CHECK_MSG(ri_frame_hdr_get(b, n, RI_FRAME_MAX_PAYLOAD, &h) == 0, "avail %zu", n);
    ri_frame_hdr_put(b, RI_F_DATA, 1, RI_FRAME_MAX_PAYLOAD);
    CHECK_INT(ri_frame_hdr_get(b, sizeof b, RI_FRAME_MAX_PAYLOAD, &h), 1);
    ri_frame_hdr_put(b, RI_F_DATA, 1, RI_FRAME_MAX_PAYLOAD + 1);
    CHECK_INT(ri_frame_hdr_get(b, sizeof b, RI_FRAME_MAX_PAYLOAD, &h), -1);
    ri_frame_hdr_put(b, RI_F_DATA, 1, 0xffffffffu);
    CHECK_INT(ri_frame_hdr_get(b, sizeof b, RI_FRAME_MAX_PAYLOAD, &h), -1);
    ri_frame_hdr_put(b, RI_F_AUTH, 0, 8193);
    CHECK_INT(ri_frame_hdr_get(b, sizeof b, 8192, &h), -1); /* the pre-auth limit */
}

static int check(uint8_t type, uint8_t flags, uint32_t stream, uint32_t len, char *err)
{
    struct ri_frame_hdr h = {.type = type, .flags = flags, .stream = stream, .len = len};
    err[0] = '\0';
    return ri_frame_check(&h, err, 200);
}

TEST(frame_check_accepts_valid)
{
    static const struct { uint8_t type; uint32_t stream, len; } ok[] = {
        {RI_F_HELLO, 0, 8}, {RI_F_HELLO, 0, RI_HELLO_MAX}, {RI_F_AUTH, 0, 0},
        {RI_F_AUTH, 0, RI_AUTH_FRAME_MAX}, {RI_F_WELCOME, 0, 2}, {RI_F_WELCOME, 0, RI_WELCOME_MAX},
        {RI_F_REFUSE, 0, 2},
        {RI_F_REFUSE, 0, 2 + RI_REASON_MAX}, {RI_F_CONFIG, 0, 6},
        {RI_F_CONFIG, 0, 6 + 2 * RI_CONFIG_PORTS_MAX}, {RI_F_PING, 0, 8}, {RI_F_PONG, 0, 8},
        {RI_F_GOAWAY, 0, 6}, {RI_F_GOAWAY, 0, 6 + RI_REASON_MAX}, {RI_F_ACK, 0, 4},
        {RI_F_OPEN, 1, RI_OPEN_LEN},
        {RI_F_DATA, 7, 1}, {RI_F_DATA, 0xffffffffu, RI_FRAME_MAX_PAYLOAD}, {RI_F_FIN, 3, 0},
        {RI_F_RST, 3, 2}, {RI_F_RST, 3, 2 + RI_REASON_MAX}, {RI_F_WINDOW, 9, 4},
        {RI_F_CLASS, 9, 1},
    };
    char err[200];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        CHECK_MSG(check(ok[i].type, 0, ok[i].stream, ok[i].len, err) == 0,
                  "type 0x%02x stream %u len %u refused: %s", ok[i].type, ok[i].stream,
                  ok[i].len, err);
}

TEST(frame_check_rejects_unknown_type)
{
    static const uint8_t bad[] = {0x00, 0x0c, 0x0f, 0x16, 0x20, 0xff};
    char err[200];
    for (size_t i = 0; i < sizeof bad; i++) {
        CHECK_MSG(check(bad[i], 0, 0, 0, err) == -1, "type 0x%02x accepted", bad[i]);
        CHECK_HAS(err, "unknown frame type");
        CHECK_MSG(check(bad[i], 0, 1, 8, err) == -1, "type 0x%02x accepted", bad[i]);
    }
}

TEST(frame_check_rejects_wrong_stream)
{
    static const uint8_t conn[] = {RI_F_HELLO, RI_F_AUTH,  RI_F_WELCOME, RI_F_REFUSE,
                                   RI_F_CONFIG, RI_F_PING, RI_F_PONG,    RI_F_GOAWAY, RI_F_ACK};
    static const uint8_t strm[] = {RI_F_OPEN, RI_F_DATA, RI_F_FIN, RI_F_RST, RI_F_WINDOW,
                                   RI_F_CLASS};
    static const uint32_t conn_len[] = {8, 0, 2, 2, 6, 8, 8, 6, 4};
    static const uint32_t strm_len[] = {RI_OPEN_LEN, 1, 0, 2, 4, 1};
    char err[200];
    for (size_t i = 0; i < sizeof conn; i++) {
        CHECK_MSG(check(conn[i], 0, 1, conn_len[i], err) == -1, "type 0x%02x on stream 1", conn[i]);
        CHECK_HAS(err, "must be 0");
    }
    for (size_t i = 0; i < sizeof strm; i++) {
        CHECK_MSG(check(strm[i], 0, 0, strm_len[i], err) == -1, "type 0x%02x on stream 0", strm[i]);
        CHECK_HAS(err, "on stream 0");
    }
}

TEST(frame_check_rejects_bad_length)
{
    static const struct { uint8_t type; uint32_t stream, len; } bad[] = {
        {RI_F_HELLO, 0, 7}, {RI_F_HELLO, 0, RI_HELLO_MAX + 1}, {RI_F_AUTH, 0, RI_AUTH_FRAME_MAX + 1},
        {RI_F_WELCOME, 0, 1}, {RI_F_WELCOME, 0, RI_WELCOME_MAX + 1}, {RI_F_REFUSE, 0, 1},
        {RI_F_REFUSE, 0, 3 + RI_REASON_MAX}, {RI_F_CONFIG, 0, 5},
        {RI_F_CONFIG, 0, 7 + 2 * RI_CONFIG_PORTS_MAX}, {RI_F_PING, 0, 7}, {RI_F_PING, 0, 9},
        {RI_F_PONG, 0, 0}, {RI_F_GOAWAY, 0, 5}, {RI_F_GOAWAY, 0, 7 + RI_REASON_MAX},
        {RI_F_ACK, 0, 3}, {RI_F_ACK, 0, 5},
        {RI_F_OPEN, 1, RI_OPEN_LEN - 1}, {RI_F_OPEN, 1, RI_OPEN_LEN + 1}, {RI_F_DATA, 1, 0},
        {RI_F_DATA, 1, RI_FRAME_MAX_PAYLOAD + 1}, {RI_F_FIN, 1, 1}, {RI_F_RST, 1, 1},
        {RI_F_RST, 1, 3 + RI_REASON_MAX}, {RI_F_WINDOW, 1, 3}, {RI_F_WINDOW, 1, 5},
        {RI_F_CLASS, 1, 0}, {RI_F_CLASS, 1, 2},
    };
    char err[200];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(check(bad[i].type, 0, bad[i].stream, bad[i].len, err) == -1,
                  "type 0x%02x len %u accepted", bad[i].type, bad[i].len);
        CHECK_HAS(err, "bad length");
    }
}

TEST(frame_check_rejects_flags)
{
    char err[200];
    for (unsigned f = 1; f < 256; f <<= 1) {
        CHECK_MSG(check(RI_F_DATA, (uint8_t)f, 1, 10, err) == -1, "flags 0x%02x accepted", f);
        CHECK_HAS(err, "flags");
        CHECK_INT(check(RI_F_PING, (uint8_t)f, 0, 8, err), -1);
    }
}

/* ---- HELLO ---------------------------------------------------------------- */

TEST(frame_hello_roundtrip)
{
    uint8_t msg[32], buf[512];
    t_seed(2);
    t_rand_bytes(msg, sizeof msg);
    size_t n = ri_hello_encode(buf, sizeof buf, "edge-nyc-01", "auth_secret", msg, sizeof msg,
                               0xa5000003u);
    CHECK_INT(n, 4 + 2 + 1 + 11 + 1 + 11 + 2 + 32 + 4);
    CHECK_MEM(buf, "RITN\x00\x01", 6);
    struct ri_hello h;
    char err[200];
    CHECK_MSG(ri_hello_decode(buf, n, &h, err, sizeof err) == 0, "%s", err);
    CHECK_INT(h.version, RI_PROTO_VERSION);
    CHECK_STR(h.edge_id, "edge-nyc-01");
    CHECK_STR(h.auth, "auth_secret");
    CHECK_INT(h.auth_len, 32);
    CHECK(h.auth_msg == buf + n - 4 - 32); /* points into the payload */
    CHECK_MEM(h.auth_msg, msg, 32);
    CHECK_INT(h.caps, 0xa5000003u);
    /* a peer without capabilities (an older edge) sends none: caps 0 */
    CHECK_MSG(ri_hello_decode(buf, n - 4, &h, err, sizeof err) == 0, "%s", err);
    CHECK_INT(h.caps, 0);
    /* bytes a later version may add after the capabilities are ignored */
    memset(buf + n, 0xee, RI_HELLO_EXTRA_MAX);
    CHECK_MSG(ri_hello_decode(buf, n + RI_HELLO_EXTRA_MAX, &h, err, sizeof err) == 0, "%s", err);
    CHECK_INT(h.caps, 0xa5000003u);
    CHECK_INT(ri_hello_decode(buf, n + RI_HELLO_EXTRA_MAX + 1, &h, err, sizeof err), -1);

    /* empty auth name and message, longest id */
    char id[RI_EDGE_ID_MAX + 1];
    memset(id, 'i', RI_EDGE_ID_MAX);
    id[RI_EDGE_ID_MAX] = '\0';
    n = ri_hello_encode(buf, sizeof buf, id, "", NULL, 0, 0);
    CHECK(n > 0);
    CHECK_MSG(ri_hello_decode(buf, n, &h, err, sizeof err) == 0, "%s", err);
    CHECK_STR(h.edge_id, id);
    CHECK_STR(h.auth, "");
    CHECK_INT(h.auth_len, 0);
}

/* Lanes (RI_CAP_LANES): group id and lane index follow the capabilities.
 * A hub without lanes reads the capabilities and ignores the 9 bytes (they
 * are within the RI_HELLO_EXTRA_MAX allowance); a HELLO that sets the bit
 * without the fields is malformed. */
TEST(frame_hello_lanes)
{
    uint8_t buf[512];
    struct ri_hello h;
    char err[200];
    uint64_t group = 0x0123456789abcdefull;
    size_t n = ri_hello_encode_lane(buf, sizeof buf, "e1", "auth_secret",
                                    (const uint8_t *)"xy", 2, RI_CAP_LANES | RI_CAP_CLASS,
                                    group, 7);
    CHECK_INT(n, 4 + 2 + 1 + 2 + 1 + 11 + 2 + 2 + 4 + RI_LANE_FIELDS);
    CHECK_MSG(ri_hello_decode(buf, n, &h, err, sizeof err) == 0, "%s", err);
    CHECK_INT(h.caps, RI_CAP_LANES | RI_CAP_CLASS);
    CHECK(h.group == group);
    CHECK_INT(h.lane, 7);
    CHECK(RI_LANE_FIELDS <= RI_HELLO_EXTRA_MAX); /* an older hub ignores them */
    /* the bit without (all of) the fields */
    CHECK_INT(ri_hello_decode(buf, n - 1, &h, err, sizeof err), -1);
    CHECK_INT(ri_hello_decode(buf, n - RI_LANE_FIELDS, &h, err, sizeof err), -1);
    /* without the bit nothing is written, and a later field may follow */
    n = ri_hello_encode_lane(buf, sizeof buf, "e1", "a", NULL, 0, RI_CAP_CLASS, group, 7);
    CHECK_INT(n, 4 + 2 + 1 + 2 + 1 + 1 + 2 + 4);
    CHECK_MSG(ri_hello_decode(buf, n, &h, err, sizeof err) == 0, "%s", err);
    CHECK(h.group == 0 && h.lane == 0);
}

TEST(frame_hello_encode_limits)
{
    uint8_t buf[8192], msg[RI_AUTH_FRAME_MAX + 1] = {0};
    char id[RI_EDGE_ID_MAX + 2], auth[RI_AUTH_NAME_MAX + 2];
    memset(id, 'i', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    memset(auth, 'a', sizeof auth - 1);
    auth[sizeof auth - 1] = '\0';
    CHECK_INT(ri_hello_encode(buf, sizeof buf, id, "a", NULL, 0, 0), 0);   /* id 129 */
    CHECK_INT(ri_hello_encode(buf, sizeof buf, "e", auth, NULL, 0, 0), 0); /* auth 64 */
    CHECK_INT(ri_hello_encode(buf, sizeof buf, "e", "a", msg, RI_AUTH_FRAME_MAX + 1, 0), 0);
    CHECK(ri_hello_encode(buf, sizeof buf, "e", "a", msg, RI_AUTH_FRAME_MAX, 0) > 0);
    size_t need = 4 + 2 + 1 + 1 + 1 + 1 + 2 + 5 + 4;
    CHECK_INT(ri_hello_encode(buf, need - 1, "e", "a", msg, 5, 0), 0);      /* no room */
    CHECK_INT(ri_hello_encode(buf, need, "e", "a", msg, 5, 0), need);
    /* the largest HELLO is within the frame limit for it */
    memset(id, 'i', RI_EDGE_ID_MAX);
    id[RI_EDGE_ID_MAX] = '\0';
    auth[RI_AUTH_NAME_MAX] = '\0';
    size_t big = ri_hello_encode(buf, sizeof buf, id, auth, msg, RI_AUTH_FRAME_MAX, 1);
    CHECK(big > 0 && big + RI_HELLO_EXTRA_MAX == RI_HELLO_MAX);
    CHECK(RI_HELLO_MAX <= RI_PREAUTH_MAX_PAYLOAD);
}

TEST(frame_welcome_roundtrip)
{
    uint8_t w[RI_WELCOME_MAX + 1];
    uint16_t v;
    uint32_t caps;
    CHECK_INT(ri_welcome_encode(w, 0x12345678u), 6);
    CHECK_INT(ri_welcome_decode(w, 6, &v, &caps), 0);
    CHECK_INT(v, RI_PROTO_VERSION);
    CHECK_INT(caps, 0x12345678u);
    CHECK_INT(ri_welcome_decode(w, 2, &v, &caps), 0); /* an older hub: no caps */
    CHECK_INT(caps, 0);
    for (size_t n = 3; n < 6; n++)
        CHECK_INT(ri_welcome_decode(w, n, &v, &caps), -1);
    CHECK_INT(ri_welcome_decode(w, RI_WELCOME_MAX, &v, &caps), 0);
    CHECK_INT(ri_welcome_decode(w, RI_WELCOME_MAX + 1, &v, &caps), -1);
    CHECK_INT(ri_welcome_decode(w, 1, &v, &caps), -1);
}

TEST(frame_hello_bad_magic_and_version)
{
    uint8_t buf[256];
    size_t n = ri_hello_encode(buf, sizeof buf, "e1", "auth_secret", (const uint8_t *)"xy", 2, 0);
    CHECK(n > 0);
    struct ri_hello h;
    char err[200];
    buf[0] = 'X';
    CHECK_INT(ri_hello_decode(buf, n, &h, err, sizeof err), -1);
    CHECK_HAS(err, "magic");
    buf[0] = 'R';
    buf[5] = RI_PROTO_VERSION + 1;
    CHECK_INT(ri_hello_decode(buf, n, &h, err, sizeof err), RI_HELLO_VERSION);
    CHECK_HAS(err, "version");
    buf[4] = 1, buf[5] = RI_PROTO_VERSION; /* version 257 */
    CHECK_INT(ri_hello_decode(buf, n, &h, err, sizeof err), RI_HELLO_VERSION);
    buf[4] = 0;
    CHECK_INT(ri_hello_decode(buf, n, &h, err, sizeof err), 0);
}

TEST(frame_hello_truncated_and_malformed)
{
    uint8_t buf[256];
    size_t n = ri_hello_encode(buf, sizeof buf, "edge-1", "auth_secret",
                               (const uint8_t *)"message", 7, 3);
    struct ri_hello h;
    char err[200];
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1); /* exact size: ASan sees over-reads */
        CHECK(copy);
        memcpy(copy, buf, k);
        int rc = ri_hello_decode(copy, k, &h, err, sizeof err);
        free(copy);
        if (k == n - 4)
            CHECK_MSG(rc == 0, "a HELLO without capabilities refused: %s", err);
        else
            CHECK_MSG(rc < 0, "prefix of %zu/%zu bytes accepted", k, n);
    }
    /* id length 0, non-printable id, non-printable auth name */
    uint8_t b2[256];
    memcpy(b2, buf, n);
    b2[6] = 0;
    CHECK_INT(ri_hello_decode(b2, n, &h, err, sizeof err), -1);
    memcpy(b2, buf, n);
    b2[8] = ' ';
    CHECK_INT(ri_hello_decode(b2, n, &h, err, sizeof err), -1);
    CHECK_HAS(err, "edge id has a space"); /* the rule every edge id follows (ident.c) */
    memcpy(b2, buf, n);
    b2[8] = 0x01;
    CHECK_INT(ri_hello_decode(b2, n, &h, err, sizeof err), -1);
    CHECK_HAS(err, "non-printable");
    memcpy(b2, buf, n);
    b2[6 + 1 + 6 + 1] = 0x7f;
    CHECK_INT(ri_hello_decode(b2, n, &h, err, sizeof err), -1);
    CHECK_HAS(err, "non-printable");
}

/* ---- OPEN ----------------------------------------------------------------- */

static struct sockaddr_storage v4(const char *a, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    inet_pton(AF_INET, a, &in->sin_addr);
    return ss;
}

static struct sockaddr_storage v6(const char *a, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    inet_pton(AF_INET6, a, &in6->sin6_addr);
    return ss;
}

TEST(frame_open_roundtrip_ipv4)
{
    struct sockaddr_storage c = v4("203.0.113.7", 51234), e = v4("198.51.100.1", 443);
    uint8_t b[RI_OPEN_LEN];
    memset(b, 0xaa, sizeof b);
    ri_open_encode(b, (struct sockaddr *)&c, (struct sockaddr *)&e);
    CHECK_INT(b[0], 4);
    CHECK_MEM(b + 1, "\xcb\x00\x71\x07", 4);
    CHECK_MEM(b + 17, "\xc8\x22", 2); /* 51234 */
    struct ri_open o;
    char err[200];
    CHECK_MSG(ri_open_decode(b, sizeof b, &o, err, sizeof err) == 0, "%s", err);
    const struct sockaddr_in *oc = (const struct sockaddr_in *)&o.client;
    const struct sockaddr_in *oe = (const struct sockaddr_in *)&o.edge;
    const struct sockaddr_in *ic = (const struct sockaddr_in *)&c;
    const struct sockaddr_in *ie = (const struct sockaddr_in *)&e;
    CHECK_INT(oc->sin_family, AF_INET);
    CHECK_INT(oe->sin_family, AF_INET);
    CHECK_INT(oc->sin_addr.s_addr, ic->sin_addr.s_addr);
    CHECK_INT(oe->sin_addr.s_addr, ie->sin_addr.s_addr);
    CHECK_INT(ntohs(oc->sin_port), 51234);
    CHECK_INT(ntohs(oe->sin_port), 443);
}

TEST(frame_open_roundtrip_ipv6)
{
    struct sockaddr_storage c = v6("2001:db8::1", 1), e = v6("2001:db8:ffff::abcd:2", 65535);
    uint8_t b[RI_OPEN_LEN];
    ri_open_encode(b, (struct sockaddr *)&c, (struct sockaddr *)&e);
    CHECK_INT(b[0], 6);
    struct ri_open o;
    char err[200];
    CHECK_MSG(ri_open_decode(b, sizeof b, &o, err, sizeof err) == 0, "%s", err);
    const struct sockaddr_in6 *oc = (const struct sockaddr_in6 *)&o.client;
    const struct sockaddr_in6 *oe = (const struct sockaddr_in6 *)&o.edge;
    CHECK_INT(oc->sin6_family, AF_INET6);
    CHECK_INT(oe->sin6_family, AF_INET6);
    CHECK_MEM(&oc->sin6_addr, &((const struct sockaddr_in6 *)&c)->sin6_addr, 16);
    CHECK_MEM(&oe->sin6_addr, &((const struct sockaddr_in6 *)&e)->sin6_addr, 16);
    CHECK_INT(ntohs(oc->sin6_port), 1);
    CHECK_INT(ntohs(oe->sin6_port), 65535);
}

TEST(frame_open_rejects_malformed)
{
    struct sockaddr_storage c = v4("10.0.0.1", 1000), e = v4("10.0.0.2", 80);
    uint8_t good[RI_OPEN_LEN + 1], b[RI_OPEN_LEN + 1];
    ri_open_encode(good, (struct sockaddr *)&c, (struct sockaddr *)&e);
    struct ri_open o;
    char err[200];
    CHECK_INT(ri_open_decode(good, RI_OPEN_LEN - 1, &o, err, sizeof err), -1);
    CHECK_INT(ri_open_decode(good, RI_OPEN_LEN + 1, &o, err, sizeof err), -1);
    static const uint8_t fams[] = {0, 2, 5, 10, 255};
    for (size_t i = 0; i < sizeof fams; i++) {
        memcpy(b, good, RI_OPEN_LEN);
        b[0] = fams[i];
        CHECK_MSG(ri_open_decode(b, RI_OPEN_LEN, &o, err, sizeof err) == -1, "family %u", fams[i]);
        CHECK_HAS(err, "family");
    }
    /* every byte of both IPv4 paddings must be zero */
    for (size_t k = 0; k < 12; k++)
        for (size_t side = 0; side < 2; side++) {
            memcpy(b, good, RI_OPEN_LEN);
            b[(side ? 23 : 5) + k] = 1;
            CHECK_MSG(ri_open_decode(b, RI_OPEN_LEN, &o, err, sizeof err) == -1,
                      "padding byte %zu of %s accepted", k, side ? "edge" : "client");
            CHECK_HAS(err, "padding");
        }
}

/* ---- CONFIG --------------------------------------------------------------- */

TEST(frame_config_roundtrip)
{
    static struct ri_config_msg m, back; /* 8 KiB each: not on the stack */
    static uint8_t buf[6 + 2 * RI_CONFIG_PORTS_MAX];
    char err[200];
    m.stun_interval_secs = 300;
    m.n_ports = 3;
    m.ports[0] = 80, m.ports[1] = 443, m.ports[2] = 65535;
    size_t n = ri_config_encode(buf, sizeof buf, &m);
    CHECK_INT(n, 12);
    CHECK_MEM(buf, "\x00\x00\x01\x2c\x00\x03\x00\x50\x01\xbb\xff\xff", 12);
    CHECK_MSG(ri_config_decode(buf, n, &back, err, sizeof err) == 0, "%s", err);
    CHECK_INT(back.stun_interval_secs, 300);
    CHECK_INT(back.n_ports, 3);
    CHECK_MEM(back.ports, m.ports, 3 * sizeof m.ports[0]);
    /* no ports, and the most ports */
    m.n_ports = 0;
    CHECK_INT(ri_config_encode(buf, sizeof buf, &m), 6);
    CHECK_INT(ri_config_decode(buf, 6, &back, err, sizeof err), 0);
    CHECK_INT(back.n_ports, 0);
    m.n_ports = RI_CONFIG_PORTS_MAX;
    for (unsigned i = 0; i < RI_CONFIG_PORTS_MAX; i++)
        m.ports[i] = (uint16_t)(1 + 15 * i);
    n = ri_config_encode(buf, sizeof buf, &m);
    CHECK_INT(n, sizeof buf);
    CHECK_MSG(ri_config_decode(buf, n, &back, err, sizeof err) == 0, "%s", err);
    CHECK_MEM(back.ports, m.ports, sizeof m.ports);
    CHECK_INT(ri_config_encode(buf, sizeof buf - 1, &m), 0);
    m.n_ports = RI_CONFIG_PORTS_MAX + 1;
    CHECK_INT(ri_config_encode(buf, sizeof buf, &m), 0);
}

static int config_bytes(uint8_t *b, uint16_t count, const uint16_t *ports, size_t n)
{
    ri_put32(b, 60);
    ri_put16(b + 4, count);
    for (size_t i = 0; i < n; i++)
        ri_put16(b + 6 + 2 * i, ports[i]);
    return (int)(6 + 2 * n);
}

TEST(frame_config_rejects_bad_ports)
{
    static struct ri_config_msg m;
    uint8_t b[64];
    char err[200];
    static const uint16_t unsorted[] = {443, 80}, dup[] = {80, 443, 443}, zero[] = {0, 80},
                          ok[] = {1, 2, 65535};
    int n = config_bytes(b, 3, ok, 3);
    CHECK_MSG(ri_config_decode(b, (size_t)n, &m, err, sizeof err) == 0, "%s", err);
    n = config_bytes(b, 2, unsorted, 2);
    CHECK_INT(ri_config_decode(b, (size_t)n, &m, err, sizeof err), -1);
    CHECK_HAS(err, "sorted");
    n = config_bytes(b, 3, dup, 3);
    CHECK_INT(ri_config_decode(b, (size_t)n, &m, err, sizeof err), -1);
    n = config_bytes(b, 2, zero, 2);
    CHECK_INT(ri_config_decode(b, (size_t)n, &m, err, sizeof err), -1);
}

TEST(frame_config_rejects_count_mismatch)
{
    static struct ri_config_msg m;
    uint8_t b[64];
    char err[200];
    static const uint16_t ports[] = {80, 443, 8080};
    int n = config_bytes(b, 2, ports, 3); /* says 2, carries 3 */
    CHECK_INT(ri_config_decode(b, (size_t)n, &m, err, sizeof err), -1);
    CHECK_HAS(err, "does not match");
    n = config_bytes(b, 4, ports, 3);
    CHECK_INT(ri_config_decode(b, (size_t)n, &m, err, sizeof err), -1);
    n = config_bytes(b, 3, ports, 3);
    CHECK_INT(ri_config_decode(b, (size_t)n - 1, &m, err, sizeof err), -1); /* odd length */
    for (size_t k = 0; k < 6; k++)
        CHECK_MSG(ri_config_decode(b, k, &m, err, sizeof err) == -1, "%zu bytes accepted", k);
    /* a count above the maximum, with a matching length */
    static uint8_t big[6 + 2 * (RI_CONFIG_PORTS_MAX + 1)];
    ri_put16(big + 4, RI_CONFIG_PORTS_MAX + 1);
    for (unsigned i = 0; i <= RI_CONFIG_PORTS_MAX; i++)
        ri_put16(big + 6 + 2 * i, (uint16_t)(i + 1));
    CHECK_INT(ri_config_decode(big, sizeof big, &m, err, sizeof err), -1);
}

/* ---- reasons -------------------------------------------------------------- */

TEST(frame_reason_roundtrip)
{
    uint8_t b[2 + RI_REASON_MAX];
    size_t n = ri_reason_encode(b, sizeof b, RI_E_AUTH, "bad proof");
    CHECK_INT(n, 2 + 9);
    CHECK_MEM(b, "\x00\x03" "bad proof", n);
    uint16_t code;
    char r[RI_REASON_MAX + 1];
    ri_reason_decode(b, n, &code, r, sizeof r);
    CHECK_INT(code, RI_E_AUTH);
    CHECK_STR(r, "bad proof");
    CHECK_INT(ri_reason_encode(b, sizeof b, 0xbeef, NULL), 2);
    ri_reason_decode(b, 2, &code, r, sizeof r);
    CHECK_INT(code, 0xbeef);
    CHECK_STR(r, "");
    ri_reason_decode(b, 1, &code, r, sizeof r); /* too short for a code */
    CHECK_INT(code, 0);
    CHECK_STR(r, "");
    CHECK_INT(ri_reason_encode(b, 10, 1, "0123456789"), 0); /* no room */
}

TEST(frame_reason_truncates)
{
    char longr[RI_REASON_MAX + 100];
    memset(longr, 'r', sizeof longr - 1);
    longr[sizeof longr - 1] = '\0';
    uint8_t b[2 + RI_REASON_MAX + 100];
    size_t n = ri_reason_encode(b, sizeof b, 7, longr);
    CHECK_INT(n, 2 + RI_REASON_MAX);
    uint16_t code;
    char r[RI_REASON_MAX + 1];
    ri_reason_decode(b, n, &code, r, sizeof r);
    CHECK_INT(strlen(r), RI_REASON_MAX);
    longr[RI_REASON_MAX + 1] = '\0'; /* one over */
    CHECK_INT(ri_reason_encode(b, sizeof b, 7, longr), 2 + RI_REASON_MAX);
    longr[RI_REASON_MAX] = '\0';
    CHECK_INT(ri_reason_encode(b, sizeof b, 7, longr), 2 + RI_REASON_MAX);
    /* a reason buffer smaller than the text: cut, still terminated */
    char small[10];
    ri_reason_decode(b, n, &code, small, sizeof small);
    CHECK_STR(small, "rrrrrrrrr");
    /* the frame limit is enforced by ri_frame_check, decode copes with more */
    char big[64];
    uint8_t raw[100];
    memset(raw, 'z', sizeof raw);
    ri_reason_decode(raw, sizeof raw, &code, big, sizeof big);
    CHECK_INT(strlen(big), 63);
}

TEST(frame_reason_sanitises_bytes)
{
    static const uint8_t p[] = {0, 9, 'o', 'k', 0x01, '\n', 0x7f, 0xff, ' ', '~', 0x00, '!'};
    uint16_t code;
    char r[64];
    ri_reason_decode(p, sizeof p, &code, r, sizeof r);
    CHECK_INT(code, 9);
    CHECK_STR(r, "ok???? ~?!");
}

TEST(code_reason_says_things_once)
{
    char b[128];
    CHECK_STR(ri_code_reason(b, sizeof b, "unknown edge id", ""), "unknown edge id");
    CHECK_STR(ri_code_reason(b, sizeof b, "unknown edge id", NULL), "unknown edge id");
    CHECK_STR(ri_code_reason(b, sizeof b, "unknown edge id", "Unknown edge id 'x'"),
              "Unknown edge id 'x'");
    CHECK_STR(ri_code_reason(b, sizeof b, "shutting down", "hub stopping"),
              "shutting down: hub stopping");
    CHECK_STR(ri_code_reason(b, 8, "shutting down", "hub stopping"), "shuttin");
}

TEST(ports_roundtrip_and_bad_input)
{
    uint8_t b[RI_PORTS_MAX + 8];
    static struct ri_ports_msg m;
    char err[128];
    const uint16_t ports[] = {80, 443, 8443};
    size_t n = ri_ports_encode(b, sizeof b, ports, 3, "bind: Address already in use");
    CHECK_INT(n, 2 + 6 + strlen("bind: Address already in use"));
    CHECK_INT(ri_ports_decode(b, n, &m, err, sizeof err), 0);
    CHECK_INT(m.n_failed, 3);
    CHECK_INT(m.ports[2], 8443);
    CHECK_STR(m.reason, "bind: Address already in use");
    /* all open: no ports, no text */
    n = ri_ports_encode(b, sizeof b, NULL, 0, "");
    CHECK_INT(n, 2);
    CHECK_INT(ri_ports_decode(b, n, &m, err, sizeof err), 0);
    CHECK_INT(m.n_failed, 0);
    CHECK_STR(m.reason, "");
    /* a count past the payload, unsorted ports, a zero port */
    n = ri_ports_encode(b, sizeof b, ports, 3, "");
    CHECK_INT(ri_ports_decode(b, n - 1, &m, err, sizeof err), -1);
    const uint16_t unsorted[] = {443, 80};
    n = ri_ports_encode(b, sizeof b, unsorted, 2, "");
    CHECK_INT(ri_ports_decode(b, n, &m, err, sizeof err), -1);
    const uint16_t zero[] = {0};
    n = ri_ports_encode(b, sizeof b, zero, 1, "");
    CHECK_INT(ri_ports_decode(b, n, &m, err, sizeof err), -1);
    /* text past RI_REASON_MAX is refused; control bytes become '?' */
    b[0] = 0, b[1] = 0;
    memset(b + 2, 'a', RI_REASON_MAX + 1);
    CHECK_INT(ri_ports_decode(b, 2 + RI_REASON_MAX + 1, &m, err, sizeof err), -1);
    memcpy(b + 2, "x\ny", 3);
    CHECK_INT(ri_ports_decode(b, 5, &m, err, sizeof err), 0);
    CHECK_STR(m.reason, "x?y");
    /* the frame check bounds its length */
    struct ri_frame_hdr h = {.type = RI_F_PORTS, .stream = 0, .len = RI_PORTS_MAX + 1};
    CHECK_INT(ri_frame_check(&h, err, sizeof err), -1);
    h.len = 2;
    CHECK_INT(ri_frame_check(&h, err, sizeof err), 0);
}
