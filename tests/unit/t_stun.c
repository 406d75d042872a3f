/* STUN Binding codec (core/stun.c), the ADDR frame and the private-address
 * rule the hub applies to the PROXY header's destination */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "netutil.h"
#include "stun.h"
#include "t.h"

static const uint8_t TX[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                               0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* RFC 5769 2.2: a response with XOR-MAPPED-ADDRESS 192.0.2.1:32853 */
static const uint8_t RFC5769_V4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
    0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
    0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
    0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
    0x04, 0xc0, 0x7d, 0x4c, 0x96};

/* RFC 5769 2.3: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853 */
static const uint8_t RFC5769_V6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
    0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
    0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
    0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
    0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
    0x0b, 0x4c};

static const char *show(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    return ri_addr_str((const struct sockaddr *)a, buf, cap);
}

/* A response of type `type` with the given attributes appended. */
static size_t msg(uint8_t *out, uint16_t type, const uint8_t *attrs, size_t alen)
{
    out[0] = (uint8_t)(type >> 8), out[1] = (uint8_t)type;
    out[2] = (uint8_t)(alen >> 8), out[3] = (uint8_t)alen;
    out[4] = 0x21, out[5] = 0x12, out[6] = 0xa4, out[7] = 0x42;
    memcpy(out + 8, TX, 12);
    memcpy(out + 20, attrs, alen);
    return 20 + alen;
}

TEST(stun_request_layout)
{
    uint8_t b[RI_STUN_HDR];
    CHECK_INT(ri_stun_request(b, TX), 20);
    static const uint8_t head[8] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    CHECK_MEM(b, head, 8);
    CHECK_MEM(b + 8, TX, 12);
}

TEST(stun_rfc5769_vectors)
{
    struct sockaddr_storage a;
    enum ri_stun_src src;
    char err[128], s[64];
    CHECK_MSG(ri_stun_parse(RFC5769_V4, sizeof RFC5769_V4, TX, &a, &src, err, sizeof err) == 0,
              "v4: %s", err);
    CHECK_INT(src, RI_STUN_FROM_XOR);
    CHECK_STR(show(&a, s, sizeof s), "192.0.2.1:32853");
    CHECK_MSG(ri_stun_parse(RFC5769_V6, sizeof RFC5769_V6, TX, &a, &src, err, sizeof err) == 0,
              "v6: %s", err);
    CHECK_STR(show(&a, s, sizeof s), "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

TEST(stun_mapped_fallback_and_xor_preferred)
{
    uint8_t b[128];
    struct sockaddr_storage a;
    enum ri_stun_src src;
    char err[128], s[64];
    /* MAPPED-ADDRESS only: 203.0.113.7:4242 */
    static const uint8_t mapped[] = {0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x10, 0x92,
                                     203,  0,    113,  7};
    size_t n = msg(b, RI_STUN_BINDING_SUCCESS, mapped, sizeof mapped);
    CHECK_MSG(ri_stun_parse(b, n, TX, &a, &src, err, sizeof err) == 0, "%s", err);
    CHECK_INT(src, RI_STUN_FROM_MAPPED);
    CHECK_STR(show(&a, s, sizeof s), "203.0.113.7:4242");
    /* MAPPED first, then XOR-MAPPED (192.0.2.1:32853): XOR wins */
    uint8_t both[24];
    memcpy(both, mapped, 12);
    memcpy(both + 12, RFC5769_V4 + 36, 12);
    n = msg(b, RI_STUN_BINDING_SUCCESS, both, sizeof both);
    CHECK_MSG(ri_stun_parse(b, n, TX, &a, &src, err, sizeof err) == 0, "%s", err);
    CHECK_INT(src, RI_STUN_FROM_XOR);
    CHECK_STR(show(&a, s, sizeof s), "192.0.2.1:32853");
    /* IPv6 MAPPED-ADDRESS */
    uint8_t v6[24] = {0x00, 0x01, 0x00, 0x14, 0x00, 0x02, 0x00, 0x50, 0x20, 0x01, 0x0d, 0xb8};
    v6[23] = 9;
    n = msg(b, RI_STUN_BINDING_SUCCESS, v6, sizeof v6);
    CHECK_MSG(ri_stun_parse(b, n, TX, &a, &src, err, sizeof err) == 0, "%s", err);
    CHECK_STR(show(&a, s, sizeof s), "[2001:db8::9]:80");
}

static int rejects(const uint8_t *p, size_t n, const char *want)
{
    struct sockaddr_storage a;
    enum ri_stun_src src;
    char err[128] = "";
    if (ri_stun_parse(p, n, TX, &a, &src, err, sizeof err) == 0)
        return t_fail_at(__FILE__, __LINE__, "accepted, want \"%s\"", want);
    if (!strstr(err, want))
        return t_fail_at(__FILE__, __LINE__, "error \"%s\", want \"%s\"", err, want);
    return 0;
}

TEST(stun_rejects_malformed)
{
    uint8_t b[128];
    static const uint8_t mapped[] = {0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x10, 0x92,
                                     203,  0,    113,  7};
    size_t n = msg(b, RI_STUN_BINDING_SUCCESS, mapped, sizeof mapped);
    CHECK(rejects(b, 19, "shorter") == 0);
    b[0] |= 0x80;
    CHECK(rejects(b, n, "top bits") == 0);
    b[0] &= 0x3f;
    b[7] ^= 1;
    CHECK(rejects(b, n, "cookie") == 0);
    b[7] ^= 1;
    CHECK(rejects(b, n - 4, "does not match") == 0); /* datagram shorter than the length */
    b[3] = 10;                                         /* not a multiple of 4 */
    CHECK(rejects(b, n, "does not match") == 0);
    b[3] = 12;
    b[19] ^= 1;
    CHECK(rejects(b, n, "not our transaction") == 0);
    b[19] ^= 1;
    b[1] = 0x11; /* 0x0111: error response */
    CHECK(rejects(b, n, "error response") == 0);
    b[1] = 0x01, b[0] = 0x00; /* 0x0001: a request */
    CHECK(rejects(b, n, "not a Binding success") == 0);
    b[0] = 0x01;
    b[23] = 12; /* attribute length overruns the message */
    CHECK(rejects(b, n, "overruns") == 0);
    b[23] = 8;
    b[25] = 3; /* family 3 */
    CHECK(rejects(b, n, "family") == 0);
    b[25] = 2; /* IPv6 in 8 bytes */
    CHECK(rejects(b, n, "IPv6 in 8") == 0);
    b[25] = 1;
    b[21] = 0x22; /* SOFTWARE instead: no address at all */
    CHECK(rejects(b, n, "no XOR-MAPPED") == 0);
    /* a MAPPED-ADDRESS too short to hold even its family and port */
    n = msg(b, RI_STUN_BINDING_SUCCESS, mapped, 4);
    b[22] = 0, b[23] = 0;
    CHECK(rejects(b, n, "MAPPED-ADDRESS of 0 bytes") == 0);
}

TEST(addr_frame_roundtrip_and_checks)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(99)};
    inet_pton(AF_INET, "203.0.113.7", &in.sin_addr);
    uint8_t p[RI_ADDR_LEN];
    ri_pubaddr_encode(p, (struct sockaddr *)&in);
    CHECK_INT(p[0], 4);
    struct sockaddr_storage a;
    char err[128], s[64];
    CHECK_MSG(ri_pubaddr_decode(p, sizeof p, &a, err, sizeof err) == 0, "%s", err);
    CHECK_STR(show(&a, s, sizeof s), "203.0.113.7:0"); /* the port is not sent */
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    ri_pubaddr_encode(p, (struct sockaddr *)&in6);
    CHECK_INT(p[0], 6);
    CHECK_MSG(ri_pubaddr_decode(p, sizeof p, &a, err, sizeof err) == 0, "%s", err);
    CHECK_STR(show(&a, s, sizeof s), "[2001:db8::1]:0");
    CHECK(ri_pubaddr_decode(p, 16, &a, err, sizeof err) < 0);
    p[0] = 5;
    CHECK(ri_pubaddr_decode(p, sizeof p, &a, err, sizeof err) < 0 && strstr(err, "family"));
    ri_pubaddr_encode(p, (struct sockaddr *)&in);
    p[9] = 1;
    CHECK(ri_pubaddr_decode(p, sizeof p, &a, err, sizeof err) < 0 && strstr(err, "padding"));
    memset(p + 1, 0, 16);
    CHECK(ri_pubaddr_decode(p, sizeof p, &a, err, sizeof err) < 0 && strstr(err, "unspecified"));
    p[1] = 224;
    CHECK(ri_pubaddr_decode(p, sizeof p, &a, err, sizeof err) < 0 && strstr(err, "multicast"));
    struct ri_frame_hdr h = {.type = RI_F_ADDR, .stream = 0, .len = RI_ADDR_LEN};
    CHECK(ri_frame_check(&h, err, sizeof err) == 0);
    h.len = 16;
    CHECK(ri_frame_check(&h, err, sizeof err) < 0);
    h.len = RI_ADDR_LEN, h.stream = 1;
    CHECK(ri_frame_check(&h, err, sizeof err) < 0);
    CHECK((RI_CAPS_SUPPORTED & RI_CAP_ADDR) && RI_CAP_ADDR == 4u);
}

static int priv(const char *ip)
{
    struct sockaddr_storage ss = {0};
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &in->sin_addr);
    }
    return ri_addr_is_private((struct sockaddr *)&ss);
}

TEST(addr_is_private)
{
    static const char *const yes[] = {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                                      "127.0.0.2", "169.254.9.9", "0.0.0.0", "::", "::1",
                                      "fe80::1", "febf::1", "fc00::1", "fd12:3456::1",
                                      "::ffff:192.168.0.1", "::ffff:127.0.0.1"};
    static const char *const no[] = {"172.15.0.1", "172.32.0.1", "192.169.0.1", "8.8.8.8",
                                     "203.0.113.7", "100.64.0.1", "2001:db8::1", "fec0::1",
                                     "::ffff:8.8.8.8", "::2"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        CHECK_MSG(priv(yes[i]) == 1, "%s should be private", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        CHECK_MSG(priv(no[i]) == 0, "%s should be public", no[i]);
}

static struct sockaddr_storage sa(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &in6->sin6_addr);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        inet_pton(AF_INET, ip, &in->sin_addr);
    }
    return ss;
}

TEST(addr_use_public_rule)
{
    static const struct { const char *edge, *pub, *want; int replaced; } cases[] = {
        {"127.0.0.2", "203.0.113.7", "203.0.113.7:443", 1},
        {"10.0.0.5", "203.0.113.7", "203.0.113.7:443", 1},
        {"0.0.0.0", "203.0.113.7", "203.0.113.7:443", 1},
        {"198.51.100.1", "203.0.113.7", "198.51.100.1:443", 0},  /* public already */
        {"10.0.0.5", "2001:db8::7", "10.0.0.5:443", 0},          /* other family */
        {"::ffff:10.0.0.5", "203.0.113.7", "[::ffff:203.0.113.7]:443", 1},
        {"fd00::5", "2001:db8::7", "[2001:db8::7]:443", 1},
        {"fe80::5", "203.0.113.7", "[fe80::5]:443", 0},
        {"2001:db8::1", "2001:db8::7", "[2001:db8::1]:443", 0},
    };
    char s[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct sockaddr_storage e = sa(cases[i].edge, 443), p = sa(cases[i].pub, 0);
        CHECK_MSG(ri_addr_use_public(&e, &p) == cases[i].replaced, "%s with %s", cases[i].edge,
                  cases[i].pub);
        CHECK_STR(show(&e, s, sizeof s), cases[i].want);
    }
}
