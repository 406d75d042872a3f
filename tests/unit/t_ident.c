/* edge id and secret rules (core/ident.c), and that every place taking one
 * -- token encode and decode, the hub's and the edge's config, HELLO --
 * refuses with the same message for the same rule. */
#include <stdio.h>
#include <stdlib.h>

#include "b64.h"
#include "cfgu.h"
#include "config.h"
#include "frame.h"
#include "ident.h"
#include "t.h"
#include "token.h"

#define GOOD_SECRET "9LrQw2vX0aKcT7mZ4pYh1sUe8nBd3fGj6RtWq5xVz0E"

TEST(ident_edge_id_rules)
{
    char err[256], id[200];
    CHECK_INT(ri_check_edge_id("e", err, sizeof err), 0);
    CHECK_INT(ri_check_edge_id("edge_with-odd.chars~!", err, sizeof err), 0);
    memset(id, 'x', 128);
    id[128] = '\0';
    CHECK_INT(ri_check_edge_id(id, err, sizeof err), 0);
    id[128] = 'x';
    id[129] = '\0';
    CHECK_INT(ri_check_edge_id(id, err, sizeof err), -1);
    CHECK_STR(err, "edge id has 129 characters: it must have 1-128");
    CHECK_INT(ri_check_edge_id("", err, sizeof err), -1);
    CHECK_STR(err, "edge id has 0 characters: it must have 1-128");
    CHECK_INT(ri_check_edge_id("edge nyc", err, sizeof err), -1);
    CHECK_STR(err, "edge id has a space at position 5: it must be printable ASCII without spaces");
    static const char *const bad[] = {"edge\tnyc", "edge\nnyc", "edge\x7f", "\xc3\xa9" "dge"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(ri_check_edge_id(bad[i], err, sizeof err) == -1, "id %zu accepted", i);
        CHECK_HAS(err, "non-printable or non-ASCII byte");
    }
    /* with a length: a NUL inside is a bad byte, not the end */
    CHECK_INT(ri_check_edge_id_n("ab\0cd", 5, err, sizeof err), -1);
    CHECK_HAS(err, "position 3");
}

TEST(ident_secret_rules)
{
    char err[256];
    CHECK_INT(ri_check_secret("0123456789abcdef", err, sizeof err), 0);
    CHECK_INT(ri_check_secret(GOOD_SECRET, err, sizeof err), 0);
    CHECK_INT(ri_check_secret("0123456789abcde", err, sizeof err), -1);
    CHECK_HAS(err, "secret has 15 characters: it must have at least 16");
    CHECK_HAS(err, "ri-core secret");
    CHECK_INT(ri_check_secret("", err, sizeof err), -1);
    CHECK_HAS(err, "secret has 0 characters");
    /* what the examples shipped, and their kind */
    static const char *const placeholders[] = {
        "REPLACE-with-ri-core-secret-output-1", "replace-with-your-own-secret",
        "loopback-demo-secret-change-me", "my-secret-CHANGEME-please", "placeholder-secret-0001"};
    for (size_t i = 0; i < sizeof placeholders / sizeof placeholders[0]; i++) {
        CHECK_MSG(ri_check_secret(placeholders[i], err, sizeof err) == -1, "%s accepted",
                  placeholders[i]);
        CHECK_HAS(err, "secret is a placeholder from the examples: replace it");
        CHECK_HAS(err, "`ri-core secret` or `head -c 32 /dev/urandom | base64`");
        CHECK(!strstr(err, placeholders[i])); /* a secret is never quoted */
    }
}

/* The error of config text (one edge entry or edge group), or "" */
static void config_error(const char *text, char *out, size_t cap)
{
    char path[4096];
    out[0] = '\0';
    if (u_write_cfg(path, sizeof path, "ri.cfg", text) < 0)
        return;
    struct ri_errs e = {0};
    struct ri_config *c = ri_config_load(path, &e);
    ri_config_free(c);
    if (e.n)
        snprintf(out, cap, "%s", e.lines[0]);
    ri_errs_free(&e);
}

TEST(ident_one_message_per_rule_everywhere)
{
    struct {
        const char *id, *secret;
    } cases[] = {{"edge nyc", GOOD_SECRET},
                 {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" /* 64 */
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", /* 65 */
                  GOOD_SECRET},
                 {"edge-nyc-01", "short-secret"},
                 {"edge-nyc-01", "REPLACE-with-ri-core-secret-output-1"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[256], got[1024], text[2048];
        int id_bad = ri_check_edge_id(cases[i].id, want, sizeof want) < 0;
        if (!id_bad)
            CHECK(ri_check_secret(cases[i].secret, want, sizeof want) < 0);
        /* token encode */
        struct ri_token t = {.hub_port = 8443};
        strcpy(t.hub_host, "hub.example.com");
        snprintf(t.edge_id, sizeof t.edge_id, "%s", cases[i].id);
        snprintf(t.secret, sizeof t.secret, "%s", cases[i].secret);
        char *tok = ri_token_encode(&t, got, sizeof got);
        CHECK_MSG(!tok, "case %zu: token encode accepted it", i);
        CHECK_STR(got, want);
        /* token decode of a token made by another implementation */
        char json[1024], enc[1500];
        snprintf(json, sizeof json, "{\"h\":\"hub.example.com\",\"p\":8443,\"e\":\"%s\",\"s\":\"%s\"}",
                 cases[i].id, cases[i].secret);
        b64url_encode(json, strlen(json), enc);
        struct ri_token back;
        CHECK_INT(ri_token_decode(enc, &back, got, sizeof got), -1);
        CHECK_STR(got, want);
        /* the hub's config */
        snprintf(text, sizeof text, "role = \"hub\";\nplugins = ( { name = \"auth_secret\"; } );\n"
                 "hub = {\n  listen = \"127.0.0.1:8443\";\n  edges = (\n"
                 "    { id = \"%s\"; secret = \"%s\"; listen_ports = [ 80 ]; }\n  );\n};\n",
                 cases[i].id, cases[i].secret);
        config_error(text, got, sizeof got);
        CHECK_MSG(strstr(got, want), "case %zu: hub config error \"%s\" lacks \"%s\"", i, got, want);
        CHECK_HAS(got, ":6: ");
        /* the edge's config, fields and token */
        snprintf(text, sizeof text, "role = \"edge\";\nplugins = ( { name = \"auth_secret\"; } );\n"
                 "edge = {\n  hub_host = \"h\";\n  hub_port = 8443;\n  edge_id = \"%s\";\n"
                 "  secret = \"%s\";\n};\n", cases[i].id, cases[i].secret);
        config_error(text, got, sizeof got);
        CHECK_MSG(strstr(got, want), "case %zu: edge config error \"%s\" lacks \"%s\"", i, got,
                  want);
        CHECK_HAS(got, id_bad ? ":6: " : ":7: ");
        snprintf(text, sizeof text, "role = \"edge\";\nplugins = ( { name = \"auth_secret\"; } );\n"
                 "edge = {\n  token = \"%s\";\n};\n", enc);
        config_error(text, got, sizeof got);
        CHECK_MSG(strstr(got, want), "case %zu: edge token error \"%s\" lacks \"%s\"", i, got,
                  want);
        /* HELLO on the wire (the id only) */
        if (id_bad) {
            uint8_t hello[RI_HELLO_MAX + 8] = "RITN";
            size_t il = strlen(cases[i].id), n = 6;
            hello[4] = 0, hello[5] = RI_PROTO_VERSION;
            hello[n++] = (uint8_t)il;
            memcpy(hello + n, cases[i].id, il), n += il;
            hello[n++] = 11;
            memcpy(hello + n, "auth_secret", 11), n += 11;
            hello[n++] = 0, hello[n++] = 0;
            struct ri_hello h;
            int rc = ri_hello_decode(hello, n, &h, got, sizeof got);
            if (il <= RI_EDGE_ID_MAX) { /* longer ones do not fit HELLO's framing */
                CHECK_INT(rc, -1);
                CHECK_STR(got, want);
            } else {
                CHECK_INT(rc, -1);
            }
        }
    }
}
