/* fuzz_token -- libFuzzer target for connection tokens (core/token.c,
 * core/b64.c).
 *
 * The first byte picks a mode: odd, the rest is the token string as pasted
 * (base64url, whitespace, garbage); even, the rest is the JSON inside a
 * token, base64url-encoded here, so the fuzzer reaches the JSON checks
 * without having to find valid base64 of valid JSON by chance. A token that
 * decodes must hold sane fields and survive encode -> decode unchanged.
 *
 *   make fuzz && build/fuzz/fuzz_token -max_total_time=60 [corpus-dir]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    int raw = data[0] & 1;
    data++, size--;
    char *s = malloc(raw ? size + 1 : b64url_enc_len(size) + 1);
    if (!s)
        return 0;
    if (raw) {
        memcpy(s, data, size);
        s[size] = '\0';
    } else {
        b64url_encode(data, size, s);
    }
    struct ri_token t, back;
    char err[256];
    err[0] = '\0';
    int rc = ri_token_decode(s, &t, err, sizeof err);
    free(s);
    CHECK(rc == 0 || rc == -1);
    if (rc < 0) {
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(t.hub_host[0] && t.edge_id[0] && t.secret[0]);
    CHECK(t.hub_port >= 1 && t.hub_port <= 65535);
    char *enc = ri_token_encode(&t, err, sizeof err);
    CHECK(enc != NULL);
    CHECK(strchr(enc, '=') == NULL);
    rc = ri_token_decode(enc, &back, err, sizeof err);
    free(enc);
    CHECK(rc == 0);
    CHECK(strcmp(t.hub_host, back.hub_host) == 0 && t.hub_port == back.hub_port &&
          strcmp(t.edge_id, back.edge_id) == 0 && strcmp(t.secret, back.secret) == 0);
    return 0;
}
