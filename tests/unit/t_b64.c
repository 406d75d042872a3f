/* base64url (core/b64.c) */
#include <stdlib.h>

#include "b64.h"
#include "t.h"

static long dec(const char *s, unsigned char *out) { return b64url_decode(s, strlen(s), out); }

TEST(b64_known_vectors)
{
    /* RFC 4648 section 10, without padding, plus the two url-safe letters */
    static const struct { const char *raw, *enc; } v[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
        {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[16];
        size_t n = strlen(v[i].raw);
        CHECK_INT(b64url_enc_len(n), strlen(v[i].enc));
        b64url_encode(v[i].raw, n, out);
        CHECK_STR(out, v[i].enc);
        unsigned char back[16];
        CHECK_INT(dec(v[i].enc, back), n);
        CHECK_MEM(back, v[i].raw, n);
    }
}

TEST(b64_roundtrip_random)
{
    t_seed(1);
    for (size_t n = 0; n <= 64; n++) {
        for (int rep = 0; rep < 20; rep++) {
            unsigned char raw[64], back[64 * 3 / 4 + 3 + 64];
            char enc[100];
            t_rand_bytes(raw, n);
            b64url_encode(raw, n, enc);
            CHECK_INT(strlen(enc), b64url_enc_len(n));
            CHECK_MSG(strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789-_") == strlen(enc),
                      "length %zu: non-url-safe character in \"%s\"", n, enc);
            CHECK_INT(dec(enc, back), n);
            CHECK_MEM(back, raw, n);
        }
    }
}

TEST(b64_rejects_bad_chars)
{
    static const char *const bad[] = {"QU+D", "QU/D", "QU D", "QU=D", "QUJD\n", "Q\x01JD",
                                      "QU\xffQ", "=QUJ", "QUJD.A"};
    unsigned char out[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(dec(bad[i], out) == -1, "accepted \"%s\"", bad[i]);
}

TEST(b64_padding)
{
    unsigned char out[16];
    /* correct padding is accepted and means the same as none */
    CHECK_INT(dec("QQ==", out), 1);
    CHECK_INT(out[0], 'A');
    CHECK_INT(dec("QUI=", out), 2);
    CHECK_MEM(out, "AB", 2);
    CHECK_INT(dec("QUJD", out), 3);
    /* wrong amount of padding, or padding where none belongs */
    static const char *const bad[] = {"QQ=", "QQ===", "QUI==", "QUJD=", "QUJD==", "QUJD====",
                                      "=", "==", "====", "Q", "QUJDQ", "QUJDQ=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(dec(bad[i], out) == -1, "accepted \"%s\"", bad[i]);
}

TEST(b64_rejects_noncanonical_bits)
{
    /* the bits after the last whole byte must be zero: in "Q?" the last
     * 4 bits of '?', in "QU?" its last 2 bits */
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char out[16];
    for (int v = 0; v < 64; v++) {
        char two[] = {'Q', abc[v], 0}, three[] = {'Q', 'U', abc[v], 0};
        CHECK_MSG(dec(two, out) == ((v & 15) ? -1 : 1), "\"%s\" -> %ld", two, dec(two, out));
        CHECK_MSG(dec(three, out) == ((v & 3) ? -1 : 2), "\"%s\" -> %ld", three,
                  dec(three, out));
    }
    CHECK_INT(dec("QR==", out), -1);
}
