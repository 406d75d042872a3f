/* connection tokens (core/token.c) */
#include <stdio.h>
#include <stdlib.h>

#include "b64.h"
#include "t.h"
#include "token.h"

#define NYC_JSON "{\"h\":\"hub.example.com\",\"p\":8443,\"e\":\"edge-nyc-01\",\"s\":\"supersecrettoken1\"}"
#define NYC_TOKEN "eyJoIjoiaHViLmV4YW1wbGUuY29tIiwicCI6ODQ0MywiZSI6ImVkZ2UtbnljLTAxIiwicyI6" \
                  "InN1cGVyc2VjcmV0dG9rZW4xIn0"

static struct ri_token nyc(void)
{
    struct ri_token t = {.hub_port = 8443};
    strcpy(t.hub_host, "hub.example.com");
    strcpy(t.edge_id, "edge-nyc-01");
    strcpy(t.secret, "supersecrettoken1");
    return t;
}

/* Decodes base64url(json); err gets the message. */
static int dec_json(const char *json, struct ri_token *t, char *err, size_t errlen)
{
    size_t n = strlen(json);
    char *s = malloc(b64url_enc_len(n) + 1);
    if (!s)
        return -99;
    b64url_encode(json, n, s);
    err[0] = '\0';
    int rc = ri_token_decode(s, t, err, errlen);
    free(s);
    return rc;
}

/* json must be refused with a message containing each of the words. */
static int refused(const char *file, int line, const char *json, const char *w1,
                   const char *w2)
{
    struct ri_token t;
    char err[256];
    int rc = dec_json(json, &t, err, sizeof err);
    if (rc != -1)
        return t_fail_at(file, line, "accepted (rc %d): %s", rc, json);
    if (!strstr(err, w1) || (w2 && !strstr(err, w2)))
        return t_fail_at(file, line, "message \"%s\" lacks \"%s\"%s%s%s for %s", err, w1,
                         w2 ? " / \"" : "", w2 ? w2 : "", w2 ? "\"" : "", json);
    return 0;
}
#define CHECK_REFUSED(json, w1, w2) CHECK(refused(__FILE__, __LINE__, json, w1, w2) == 0)

TEST(token_encode_exact)
{
    struct ri_token t = nyc();
    char err[128];
    char *s = ri_token_encode(&t, err, sizeof err);
    CHECK_MSG(s, "encode failed: %s", err);
    int prefix = strncmp(s, "eyJoIjoiaHViLmV4YW1wbGUuY29tIiwi", 32) == 0;
    int exact = strcmp(s, NYC_TOKEN) == 0;
    /* and it is b64url of the compact JSON, computed independently */
    char want[256];
    b64url_encode(NYC_JSON, strlen(NYC_JSON), want);
    int same = strcmp(s, want) == 0, pad = strchr(s, '=') != NULL;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", s);
    free(s);
    CHECK_MSG(prefix, "prefix of %s", copy);
    CHECK_MSG(exact && same, "token %s", copy);
    CHECK(!pad);
}

TEST(token_encode_refuses_bad_fields)
{
    char err[128];
    struct ri_token t = nyc();
    t.hub_port = 0;
    CHECK(ri_token_encode(&t, err, sizeof err) == NULL);
    CHECK_HAS(err, "port");
    t = nyc();
    t.secret[0] = '\0';
    CHECK(ri_token_encode(&t, err, sizeof err) == NULL);
    CHECK_HAS(err, "secret");
}

TEST(token_decode_roundtrip)
{
    struct ri_token t = nyc(), back;
    char err[128] = "";
    strcpy(t.secret, "s\"ecr\\et/\xc3\xa9 with \"quotes\"");
    char *s = ri_token_encode(&t, err, sizeof err);
    CHECK_MSG(s, "encode failed: %s", err);
    int rc = ri_token_decode(s, &back, err, sizeof err);
    free(s);
    CHECK_MSG(rc == 0, "decode failed: %s", err);
    CHECK_STR(back.hub_host, t.hub_host);
    CHECK_INT(back.hub_port, 8443);
    CHECK_STR(back.edge_id, t.edge_id);
    CHECK_STR(back.secret, t.secret);
    /* the literal token, with the whitespace a paste brings along */
    CHECK_INT(ri_token_decode("  " NYC_TOKEN "\r\n", &back, err, sizeof err), 0);
    CHECK_STR(back.secret, "supersecrettoken1");
}

TEST(token_decode_any_key_order_extra_keys)
{
    struct ri_token t;
    char err[256];
    int rc = dec_json("{\"s\":\"secret-of-16-char\",\"x\":[1,2],\"e\":\"edge\",\"p\":1,\"v\":{},"
                      "\"h\":\"::1\"}", &t, err, sizeof err);
    CHECK_MSG(rc == 0, "refused: %s", err);
    CHECK_STR(t.hub_host, "::1");
    CHECK_INT(t.hub_port, 1);
    CHECK_STR(t.edge_id, "edge");
    CHECK_STR(t.secret, "secret-of-16-char");
    CHECK_INT(dec_json("{\"h\":\"h\",\"p\":65535,\"e\":\"e\",\"s\":\"0123456789abcdef\"}", &t, err,
                       sizeof err), 0);
    CHECK_INT(t.hub_port, 65535);
}

TEST(token_decode_accepts_padding)
{
    /* JSON lengths of every residue mod 3: no, two and one '=' */
    for (int spaces = 0; spaces < 3; spaces++) {
        char json[128], enc[200], err[256];
        snprintf(json, sizeof json, "{\"h\":\"a\",\"p\":2,\"e\":\"b\",\"s\":\"0123456789abcdef\"%*s}",
                 spaces, "");
        b64url_encode(json, strlen(json), enc);
        size_t n = strlen(enc);
        while (n % 4)
            enc[n++] = '=';
        enc[n] = '\0';
        struct ri_token t;
        CHECK_MSG(ri_token_decode(enc, &t, err, sizeof err) == 0, "%s: %s", enc, err);
        CHECK_STR(t.secret, "0123456789abcdef");
    }
}

TEST(token_rejects_bad_base64)
{
    struct ri_token t;
    char err[256];
    CHECK_INT(ri_token_decode("eyJo+IjoiaHVi", &t, err, sizeof err), -1);
    CHECK_HAS(err, "base64");
    CHECK_INT(ri_token_decode("eyJoI", &t, err, sizeof err), -1);
    CHECK_HAS(err, "base64");
    CHECK_INT(ri_token_decode("   ", &t, err, sizeof err), -1);
    CHECK_HAS(err, "empty");
}

TEST(token_rejects_not_json)
{
    CHECK_REFUSED("{\"h\":\"a\",", "JSON", NULL);
    CHECK_REFUSED("hello", "JSON", NULL);
    CHECK_REFUSED("{\"h\":\"a\",\"h\":\"b\",\"p\":1,\"e\":\"e\",\"s\":\"s\"}", "JSON", NULL);
}

TEST(token_rejects_json_not_object)
{
    CHECK_REFUSED("[\"h\",\"p\",\"e\",\"s\"]", "not an object", NULL);
    /* jansson refuses scalars at the top already */
    CHECK_REFUSED("\"just a string\"", "JSON", NULL);
    CHECK_REFUSED("8443", "JSON", NULL);
}

TEST(token_rejects_missing_keys)
{
    CHECK_REFUSED("{\"p\":1,\"e\":\"e\",\"s\":\"s\"}", "\"h\"", "no");
    CHECK_REFUSED("{\"h\":\"h\",\"e\":\"e\",\"s\":\"s\"}", "\"p\"", "no");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"s\":\"s\"}", "\"e\"", "no");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"e\":\"e\"}", "\"s\"", "no");
    CHECK_REFUSED("{}", "\"h\"", "no");
}

TEST(token_rejects_mistyped_keys)
{
    CHECK_REFUSED("{\"h\":7,\"p\":1,\"e\":\"e\",\"s\":\"s\"}", "\"h\"", "not a string");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":\"8443\",\"e\":\"e\",\"s\":\"s\"}", "\"p\"", "not an integer");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":8443.0,\"e\":\"e\",\"s\":\"s\"}", "\"p\"", "not an integer");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"e\":12,\"s\":\"s\"}", "\"e\"", "not a string");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"e\":\"e\",\"s\":true}", "\"s\"", "not a string");
    CHECK_REFUSED("{\"h\":null,\"p\":1,\"e\":\"e\",\"s\":\"s\"}", "\"h\"", "not a string");
}

TEST(token_rejects_bad_port)
{
    CHECK_REFUSED("{\"h\":\"h\",\"p\":0,\"e\":\"e\",\"s\":\"s\"}", "port", "out of range");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":65536,\"e\":\"e\",\"s\":\"s\"}", "port", "65536");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":-1,\"e\":\"e\",\"s\":\"s\"}", "port", "-1");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":4294975739,\"e\":\"e\",\"s\":\"s\"}", "port", "out of range");
}

TEST(token_rejects_empty_fields)
{
    CHECK_REFUSED("{\"h\":\"\",\"p\":1,\"e\":\"e\",\"s\":\"s\"}", "host", "empty");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"e\":\"\",\"s\":\"s\"}", "edge id", "0 characters");
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"e\":\"e\",\"s\":\"\"}", "secret", "0 characters");
}

TEST(token_rejects_long_fields)
{
    char big[RI_TOKEN_FIELD_MAX + 2], json[1024];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0'; /* 257 bytes */
    const char *keys = "hes";
    for (int k = 0; k < 3; k++) {
        snprintf(json, sizeof json, "{\"h\":\"%s\",\"p\":1,\"e\":\"%s\",\"s\":\"%s\"}",
                 k == 0 ? big : "h", k == 1 ? big : "e", k == 2 ? big : "s");
        char key[8];
        snprintf(key, sizeof key, "\"%c\"", keys[k]);
        CHECK_REFUSED(json, key, "longer than 256");
    }
    /* exactly the limit is fine */
    big[RI_TOKEN_FIELD_MAX] = '\0';
    snprintf(json, sizeof json, "{\"h\":\"h\",\"p\":1,\"e\":\"e\",\"s\":\"%s\"}", big);
    struct ri_token t;
    char err[256];
    CHECK_MSG(dec_json(json, &t, err, sizeof err) == 0, "%s", err);
    CHECK_INT(strlen(t.secret), RI_TOKEN_FIELD_MAX);
    /* an embedded NUL (\u0000) would silently truncate the secret */
    CHECK_REFUSED("{\"h\":\"h\",\"p\":1,\"e\":\"e\",\"s\":\"ab\\u0000cd\"}", "JSON", NULL);
}

TEST(token_rejects_too_long_token)
{
    char *s = malloc(5000);
    CHECK(s);
    memset(s, 'A', 4999);
    s[4999] = '\0';
    struct ri_token t;
    char err[256];
    int rc = ri_token_decode(s, &t, err, sizeof err);
    free(s);
    CHECK_INT(rc, -1);
    CHECK_HAS(err, "longer than");
}

/* "H": further hubs (lanes to several hubs). Optional: an old token has
 * none and still decodes; a token with it round-trips; bad entries are
 * refused with a reason. */
TEST(token_further_hubs)
{
    struct ri_token t = nyc(), d;
    char err[256];
    CHECK_MSG(ri_token_decode(NYC_TOKEN, &d, err, sizeof err) == 0, "%s", err);
    CHECK_INT(d.n_hubs, 0);
    strcpy(t.hubs[0], "hub2.example.com:8443");
    strcpy(t.hubs[1], "[2001:db8::1]:443");
    t.n_hubs = 2;
    char *s = ri_token_encode(&t, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    int rc = ri_token_decode(s, &d, err, sizeof err);
    free(s);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_INT(d.n_hubs, 2);
    CHECK_STR(d.hubs[0], "hub2.example.com:8443");
    CHECK_STR(d.hubs[1], "[2001:db8::1]:443");
    CHECK_REFUSED("{\"h\":\"a\",\"p\":1,\"e\":\"edge-1\",\"s\":\"supersecrettoken1\",\"H\":\"b:2\"}",
                  "\"H\"", NULL);
    CHECK_REFUSED("{\"h\":\"a\",\"p\":1,\"e\":\"edge-1\",\"s\":\"supersecrettoken1\",\"H\":[\"b\"]}",
                  "host:port", NULL);
    CHECK_REFUSED("{\"h\":\"a\",\"p\":1,\"e\":\"edge-1\",\"s\":\"supersecrettoken1\",\"H\":[\"b:0\"]}",
                  "host:port", NULL);
    CHECK_REFUSED("{\"h\":\"a\",\"p\":1,\"e\":\"edge-1\",\"s\":\"supersecrettoken1\",\"H\":[7]}",
                  "not a string", NULL);
    CHECK_REFUSED("{\"h\":\"a\",\"p\":1,\"e\":\"edge-1\",\"s\":\"supersecrettoken1\",\"H\":"
                  "[\"b:1\",\"b:1\",\"b:1\",\"b:1\",\"b:1\",\"b:1\",\"b:1\",\"b:1\"]}",
                  "at most 7", NULL);
    t.n_hubs = 1;
    strcpy(t.hubs[0], "nohostport");
    CHECK(ri_token_encode(&t, err, sizeof err) == NULL && strstr(err, "host:port"));
}
