/* handshake.c -- HELLO/AUTH/WELCOME (see handshake.h). */
#include "handshake.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

_Static_assert(RI_AUTH_MSG_MAX <= RI_AUTH_FRAME_MAX, "an auth message must fit an AUTH frame");

int ri_hs_init(struct ri_hs *hs, int role, struct ri_inst *auth, const struct ri_hs_io *io,
               uint32_t caps)
{
    memset(hs, 0, sizeof *hs);
    hs->role = role;
    hs->state = RI_HS_TLS;
    hs->io = *io;
    hs->caps_mine = caps;
    size_t cs = auth->mod->ops.auth.conn_size;
    if (cs && !(hs->auth_conn = calloc(1, cs)))
        return -1;
    hs->auth = ri_inst_ref(auth);
    return 0;
}

void ri_hs_free(struct ri_hs *hs)
{
    if (hs->secret) {
        gnutls_memset(hs->secret, 0, hs->secret_len);
        free(hs->secret);
    }
    if (hs->auth_conn) {
        gnutls_memset(hs->auth_conn, 0, hs->auth->mod->ops.auth.conn_size);
        free(hs->auth_conn);
    }
    ri_inst_unref(hs->auth);
    hs->secret = NULL;
    hs->auth_conn = NULL;
    hs->auth = NULL;
}

static int end(struct ri_hs *hs, int rc, unsigned code, const char *peer_reason,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int end(struct ri_hs *hs, int rc, unsigned code, const char *peer_reason,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hs->reason, sizeof hs->reason, fmt, ap);
    va_end(ap);
    /* the wire carries at most RI_REASON_MAX bytes of it */
    const char *pr = peer_reason ? peer_reason : hs->reason;
    size_t n = strnlen(pr, RI_REASON_MAX);
    memcpy(hs->peer_reason, pr, n);
    hs->peer_reason[n] = '\0';
    hs->code = code;
    hs->state = RI_HS_FAILED;
    return rc;
}

static int keep_secret(struct ri_hs *hs, const uint8_t *secret, size_t len)
{
    if (!(hs->secret = malloc(len + 1)))
        return -1;
    memcpy(hs->secret, secret, len);
    hs->secret[len] = 0;
    hs->secret_len = len;
    return 0;
}

/* Runs the auth plugin on the peer's message (NULL for the edge's first)
 * and sends what it produces as `type`. */
static int step(struct ri_hs *hs, uint8_t type, const uint8_t *in, size_t n)
{
    struct ri_auth_ctx ctx = {.size = sizeof ctx, .role = hs->role, .edge_id = hs->edge_id,
                              .secret = hs->secret, .secret_len = hs->secret_len,
                              .binding = hs->binding, .binding_len = sizeof hs->binding};
    uint8_t out[RI_AUTH_MSG_MAX];
    size_t ol = sizeof out;
    char err[256] = "";
    int done = 0;
    int rc = ri_auth_step(hs->auth, hs->auth_conn, &ctx, in, n, out, &ol, &done, err,
                          sizeof err);
    if (hs->unknown_id && (rc < 0 || done)) /* the decoy exchange ends where a real one would */
        return end(hs, RI_HS_REFUSE, RI_E_AUTH, "authentication failed", "unknown edge id '%s'",
                   hs->edge_id);
    if (rc < 0) {
        if (hs->role == RI_ROLE_HUB)
            return end(hs, RI_HS_REFUSE, RI_E_AUTH, "authentication failed",
                       "authentication failed: %s", err[0] ? err : "refused by the auth plugin");
        return end(hs, RI_HS_FAIL, RI_E_AUTH, NULL, "authentication failed: %s",
                   err[0] ? err : "refused by the auth plugin");
    }
    if (ol > sizeof out)
        ol = sizeof out;
    if (done)
        hs->auth_done = 1;
    if (type == RI_F_HELLO) {
        uint8_t hello[RI_HELLO_MAX];
        size_t hl = ri_hello_encode_lane(hello, sizeof hello, hs->edge_id,
                                         hs->auth->mod->desc.name, out, ol, hs->caps_mine,
                                         hs->group, hs->lane);
        if (!hl)
            return end(hs, RI_HS_FAIL, RI_E_INTERNAL, NULL, "HELLO does not fit");
        return hs->io.emit(hs->io.arg, RI_F_HELLO, hello, hl) < 0
                   ? end(hs, RI_HS_FAIL, RI_E_INTERNAL, NULL, "cannot queue HELLO")
                   : RI_HS_CONTINUE;
    }
    if (ol && hs->io.emit(hs->io.arg, RI_F_AUTH, out, ol) < 0)
        return end(hs, RI_HS_FAIL, RI_E_INTERNAL, NULL, "cannot queue AUTH");
    return RI_HS_CONTINUE;
}

int ri_hs_begin(struct ri_hs *hs, const uint8_t binding[32], const char *edge_id,
                const char *secret)
{
    memcpy(hs->binding, binding, sizeof hs->binding);
    hs->state = RI_HS_AUTH;
    if (hs->role == RI_ROLE_HUB)
        return RI_HS_CONTINUE;
    snprintf(hs->edge_id, sizeof hs->edge_id, "%s", edge_id);
    if (keep_secret(hs, (const uint8_t *)secret, strlen(secret)) < 0)
        return end(hs, RI_HS_FAIL, RI_E_INTERNAL, NULL, "out of memory");
    return step(hs, RI_F_HELLO, NULL, 0);
}

static int ready(struct ri_hs *hs);

/* The hub's step on the edge's message (the one in HELLO, or an AUTH):
 * once the edge is proven -- after however many messages the plugin
 * needs -- WELCOME follows the plugin's last message. */
static int hub_step(struct ri_hs *hs, const uint8_t *in, size_t n)
{
    int rc = step(hs, RI_F_AUTH, in, n);
    if (rc != RI_HS_CONTINUE || !hs->auth_done)
        return rc;
    uint8_t w[6];
    size_t wl = ri_welcome_encode(w, hs->caps_mine);
    if (hs->io.emit(hs->io.arg, RI_F_WELCOME, w, wl) < 0)
        return end(hs, RI_HS_FAIL, RI_E_INTERNAL, NULL, "cannot queue WELCOME");
    return ready(hs);
}

static int on_hello(struct ri_hs *hs, const uint8_t *p, size_t n)
{
    struct ri_hello h;
    char err[256];
    int rc = ri_hello_decode(p, n, &h, err, sizeof err);
    if (rc < 0)
        return end(hs, RI_HS_REFUSE, rc == RI_HELLO_VERSION ? RI_E_VERSION : RI_E_PROTOCOL, NULL, "%s", err);
    snprintf(hs->edge_id, sizeof hs->edge_id, "%s", h.edge_id);
    hs->caps_peer = h.caps;
    hs->group = h.group;
    hs->lane = h.lane;
    const char *mine = hs->auth->mod->desc.name;
    if (strcmp(h.auth, mine) != 0)
        return end(hs, RI_HS_REFUSE, RI_E_AUTH_METHOD, NULL,
                   "edge authenticates with '%s', this hub with '%s'", h.auth, mine);
    const uint8_t *secret;
    size_t sl;
    uint8_t decoy[32];
    if (hs->io.lookup(hs->io.arg, h.edge_id, &secret, &sl) < 0) {
        /* An unknown id gets the same exchange as a known one with a wrong
         * secret -- a challenge, then the refusal after the proof -- under a
         * random secret nobody knows, so a client cannot tell the two apart
         * by the frames it sees. Only our log says which it was. */
        if (gnutls_rnd(GNUTLS_RND_RANDOM, decoy, sizeof decoy) < 0)
            return end(hs, RI_HS_REFUSE, RI_E_AUTH, "authentication failed",
                       "unknown edge id '%s'", h.edge_id);
        hs->unknown_id = 1;
        secret = decoy;
        sl = sizeof decoy;
    }
    int kept = keep_secret(hs, secret, sl);
    gnutls_memset(decoy, 0, sizeof decoy);
    if (kept < 0)
        return end(hs, RI_HS_FAIL, RI_E_INTERNAL, NULL, "out of memory");
    return hub_step(hs, h.auth_msg, h.auth_len);
}

static int ready(struct ri_hs *hs)
{
    hs->caps = hs->caps_mine & hs->caps_peer;
    hs->state = RI_HS_READY;
    if (hs->secret) { /* not needed any more */
        gnutls_memset(hs->secret, 0, hs->secret_len);
        free(hs->secret);
        hs->secret = NULL;
    }
    return RI_HS_OK;
}

int ri_hs_on_frame(struct ri_hs *hs, const struct ri_frame_hdr *h, const uint8_t *p)
{
    int hub = hs->role == RI_ROLE_HUB;
    if (hs->state != RI_HS_AUTH)
        return end(hs, RI_HS_FAIL, RI_E_PROTOCOL, NULL, "%s frame after the handshake ended",
                   ri_ftype_str(h->type));
    switch (h->type) {
    case RI_F_HELLO:
        if (!hub || hs->edge_id[0])
            break;
        return on_hello(hs, p, h->len);
    case RI_F_AUTH:
        if (hs->auth_done || (hub && !hs->edge_id[0]))
            break;
        return hub ? hub_step(hs, p, h->len) : step(hs, RI_F_AUTH, p, h->len);
    case RI_F_WELCOME: {
        if (hub)
            break;
        uint16_t version;
        uint32_t caps;
        if (ri_welcome_decode(p, h->len, &version, &caps) < 0 || version != RI_PROTO_VERSION)
            return end(hs, RI_HS_REFUSE, RI_E_VERSION, NULL, "WELCOME for protocol version %u",
                       h->len >= 2 ? ri_get16(p) : 0);
        if (!hs->auth_done)
            return end(hs, RI_HS_FAIL, RI_E_AUTH, NULL,
                       "hub sent WELCOME before proving the shared secret");
        hs->caps_peer = caps;
        return ready(hs);
    }
    case RI_F_REFUSE: {
        uint16_t code;
        char reason[RI_REASON_MAX + 1];
        ri_reason_decode(p, h->len, &code, reason, sizeof reason);
        char why[RI_REASON_MAX + 64];
        return end(hs, RI_HS_FAIL, code, NULL, "peer refused us: %s",
                   ri_code_reason(why, sizeof why, ri_conn_code_str(code), reason));
    }
    }
    return end(hs, RI_HS_REFUSE, RI_E_PROTOCOL, NULL, "unexpected %s frame during the handshake",
               ri_ftype_str(h->type));
}
