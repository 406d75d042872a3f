/* auth_secret -- mutual shared-secret authentication bound to the TLS session.
 *
 * Neither side ever sends the secret. Four messages, carried by the core in
 * HELLO and AUTH frames:
 *   edge -> hub   Ne                      (32 random bytes)
 *   hub  -> edge  Nh                      (32 random bytes)
 *   edge -> hub   Pe = HMAC(secret, "ri-auth-v1 edge" | B | id | Ne | Nh)
 *   hub  -> edge  Ph = HMAC(secret, "ri-auth-v1 hub"  | B | id | Ne | Nh)
 * B is the TLS 1.3 exporter channel binding of this very session, so a proof
 * is worthless on any other connection: a man in the middle who terminates
 * TLS itself sees a different B on each side and can relay nothing useful,
 * even when the edge does not verify the hub's certificate. The hub checks
 * Pe before it proves anything, and proofs are compared in constant time.
 */
#include <stdio.h>
#include <string.h>

#include "ri_plugin.h"

#define NONCE 32
#define MAC 32

enum { ST_START = 0, ST_EDGE_SENT_NONCE, ST_EDGE_SENT_PROOF, ST_HUB_SENT_NONCE, ST_DONE };

struct conn {
    int st;
    uint8_t ne[NONCE], nh[NONCE];
};

struct inst {
    const struct ri_core_api *api;
};

static ri_create_f as_create;
static ri_auth_step_f as_step;

static int as_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                     size_t errlen)
{
    struct inst *in = state;
    in->api = api;
    return 0;
}

static int proof(const struct inst *in, const struct ri_auth_ctx *ctx, const struct conn *c,
                 const char *label, uint8_t out[MAC])
{
    uint8_t msg[32 + 64 + 128 + 2 * NONCE];
    size_t n = 0, ll = strlen(label), il = strlen(ctx->edge_id);
    if (ctx->binding_len != 32 || il > 128)
        return -1;
    memcpy(msg + n, label, ll), n += ll;
    memcpy(msg + n, ctx->binding, 32), n += 32;
    memcpy(msg + n, ctx->edge_id, il), n += il;
    memcpy(msg + n, c->ne, NONCE), n += NONCE;
    memcpy(msg + n, c->nh, NONCE), n += NONCE;
    return in->api->hmac_sha256(ctx->secret, ctx->secret_len, msg, n, out);
}

static int as_step(void *state, void *conn, const struct ri_auth_ctx *ctx, const uint8_t *in,
                   size_t in_len, uint8_t *out, size_t *out_len, int *done, char *err,
                   size_t errlen)
{
    struct inst *st = state;
    struct conn *c = conn;
    size_t cap = *out_len;
    *out_len = 0;
    if (cap < MAC) {
        snprintf(err, errlen, "output buffer too small");
        return -1;
    }
    uint8_t want[MAC];
    if (ctx->role == RI_ROLE_EDGE) {
        switch (c->st) {
        case ST_START:
            if (st->api->random(c->ne, NONCE) < 0)
                return snprintf(err, errlen, "no randomness"), -1;
            memcpy(out, c->ne, NONCE);
            *out_len = NONCE;
            c->st = ST_EDGE_SENT_NONCE;
            return 0;
        case ST_EDGE_SENT_NONCE:
            if (in_len != NONCE)
                return snprintf(err, errlen, "hub challenge has %zu bytes, expected %d", in_len,
                                NONCE), -1;
            memcpy(c->nh, in, NONCE);
            if (proof(st, ctx, c, "ri-auth-v1 edge", out) < 0)
                return snprintf(err, errlen, "cannot compute proof"), -1;
            *out_len = MAC;
            c->st = ST_EDGE_SENT_PROOF;
            return 0;
        case ST_EDGE_SENT_PROOF:
            if (in_len != MAC || proof(st, ctx, c, "ri-auth-v1 hub", want) < 0 ||
                !st->api->memeq_ct(want, in, MAC))
                return snprintf(err, errlen,
                                "the hub could not prove it knows our secret (wrong secret, or "
                                "a man in the middle)"), -1;
            c->st = ST_DONE;
            *done = 1;
            return 0;
        }
    } else {
        switch (c->st) {
        case ST_START:
            if (in_len != NONCE)
                return snprintf(err, errlen, "edge nonce has %zu bytes, expected %d", in_len,
                                NONCE), -1;
            memcpy(c->ne, in, NONCE);
            if (st->api->random(c->nh, NONCE) < 0)
                return snprintf(err, errlen, "no randomness"), -1;
            memcpy(out, c->nh, NONCE);
            *out_len = NONCE;
            c->st = ST_HUB_SENT_NONCE;
            return 0;
        case ST_HUB_SENT_NONCE:
            if (in_len != MAC || proof(st, ctx, c, "ri-auth-v1 edge", want) < 0 ||
                !st->api->memeq_ct(want, in, MAC))
                return snprintf(err, errlen, "wrong secret for edge '%s'", ctx->edge_id), -1;
            if (proof(st, ctx, c, "ri-auth-v1 hub", out) < 0)
                return snprintf(err, errlen, "cannot compute proof"), -1;
            *out_len = MAC;
            c->st = ST_DONE;
            *done = 1;
            return 0;
        }
    }
    snprintf(err, errlen, "unexpected auth message");
    return -1;
}

static const struct ri_auth_ops ops = {
    .size = sizeof ops,
    .step = as_step,
    .conn_size = sizeof(struct conn),
};

static const char *const keys[] = {NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_AUTH,
    .name = "auth_secret",
    .description = "mutual HMAC-SHA-256 challenge-response bound to the TLS session",
    .ops = &ops,
    .inst_size = sizeof(struct inst),
    .create = as_create,
    .keys = keys,
};
