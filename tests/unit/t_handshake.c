/* the handshake state machine (core/handshake.c): an edge and a hub wired
 * back to back through frame queues, with the real auth_secret plugin and
 * a fake one that misbehaves on request. */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "frame.h"
#include "handshake.h"
#include "plugin.h"
#include "t.h"

struct frame {
    uint8_t type;
    size_t len;
    uint8_t p[RI_HELLO_MAX];
};

struct side {
    struct ri_hs hs;
    struct frame out[8]; /* frames it emitted, not yet delivered */
    int n_out;
    const char *known_id, *known_secret; /* hub: the one edge it knows */
};

static int emit(void *arg, uint8_t type, const void *p, size_t n)
{
    struct side *s = arg;
    if (s->n_out == 8 || n > sizeof s->out[0].p)
        return -1;
    s->out[s->n_out].type = type;
    s->out[s->n_out].len = n;
    memcpy(s->out[s->n_out].p, p, n);
    s->n_out++;
    return 0;
}

static int lookup(void *arg, const char *id, const uint8_t **secret, size_t *len)
{
    struct side *s = arg;
    if (strcmp(id, s->known_id) != 0)
        return -1;
    *secret = (const uint8_t *)s->known_secret;
    *len = strlen(s->known_secret);
    return 0;
}

/* Delivers everything `from` emitted to `to`; returns the last result. */
static int deliver(struct side *from, struct side *to)
{
    int rc = RI_HS_CONTINUE;
    for (int i = 0; i < from->n_out && rc == RI_HS_CONTINUE; i++) {
        struct ri_frame_hdr h = {.type = from->out[i].type, .len = (uint32_t)from->out[i].len};
        rc = ri_hs_on_frame(&to->hs, &h, from->out[i].p);
    }
    from->n_out = 0;
    return rc;
}

static struct ri_module *auth_module(void)
{
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/plugins/auth_secret.so", t_build_dir());
    return ri_module_open(path, "auth_secret", err, sizeof err);
}

static const uint8_t binding[32] = "0123456789abcdef0123456789abcde";

/* Sets up both sides with auth module m; the hub knows hub_id/hub_secret. */
static int setup(struct side *edge, struct side *hub, struct ri_module *m, uint32_t edge_caps,
                 uint32_t hub_caps, const char *hub_id, const char *hub_secret)
{
    char err[256];
    memset(edge, 0, sizeof *edge);
    memset(hub, 0, sizeof *hub);
    hub->known_id = hub_id;
    hub->known_secret = hub_secret;
    struct ri_inst *ie = ri_inst_create(m, NULL, t_loop(), RI_ROLE_EDGE, &ri_core_api, err,
                                        sizeof err);
    struct ri_inst *ih = ri_inst_create(m, NULL, t_loop(), RI_ROLE_HUB, &ri_core_api, err,
                                        sizeof err);
    struct ri_hs_io eio = {.arg = edge, .emit = emit}, hio = {.arg = hub, .emit = emit,
                                                              .lookup = lookup};
    int rc = ie && ih && ri_hs_init(&edge->hs, RI_ROLE_EDGE, ie, &eio, edge_caps) == 0 &&
                     ri_hs_init(&hub->hs, RI_ROLE_HUB, ih, &hio, hub_caps) == 0
                 ? 0
                 : -1;
    ri_inst_unref(ie); /* the handshakes hold their own references */
    ri_inst_unref(ih);
    return rc;
}

static void teardown(struct side *edge, struct side *hub)
{
    ri_hs_free(&edge->hs);
    ri_hs_free(&hub->hs);
}

TEST(handshake_completes_and_negotiates_caps)
{
    struct ri_module *m = auth_module();
    CHECK(m);
    struct side e, h;
    CHECK(setup(&e, &h, m, 0x5, 0x6, "edge-1", "0123456789abcdef") == 0);
    CHECK_INT(ri_hs_begin(&h.hs, binding, NULL, NULL), RI_HS_CONTINUE);
    CHECK_INT(ri_hs_begin(&e.hs, binding, "edge-1", "0123456789abcdef"), RI_HS_CONTINUE);
    CHECK_INT(e.n_out, 1);
    CHECK_INT(e.out[0].type, RI_F_HELLO);
    CHECK_INT(deliver(&e, &h), RI_HS_CONTINUE);          /* HELLO -> AUTH(m2) */
    CHECK_INT(h.n_out, 1);
    CHECK_INT(deliver(&h, &e), RI_HS_CONTINUE);          /* m2 -> AUTH(m3) */
    CHECK_INT(deliver(&e, &h), RI_HS_OK);                /* m3 -> AUTH(m4), WELCOME */
    CHECK_INT(h.n_out, 2);
    CHECK_INT(h.out[1].type, RI_F_WELCOME);
    CHECK_INT(deliver(&h, &e), RI_HS_OK);                /* m4, WELCOME */
    CHECK_INT(e.hs.state, RI_HS_READY);
    CHECK_INT(h.hs.state, RI_HS_READY);
    CHECK_INT(e.hs.caps, 0x4);
    CHECK_INT(h.hs.caps, 0x4);
    CHECK_STR(h.hs.edge_id, "edge-1");
    CHECK(h.hs.secret == NULL && e.hs.secret == NULL); /* wiped once done */
    teardown(&e, &h);
    ri_module_unref(m);
}

TEST(handshake_wrong_secret_and_unknown_id_look_alike_to_the_peer)
{
    struct ri_module *m = auth_module();
    CHECK(m);
    struct side e, h;
    char peer_wrong[256], peer_unknown[256];
    /* The same frames either way: HELLO -> the hub's challenge (AUTH, 32
     * bytes) -> the edge's proof -> refused, nothing more from the hub. An
     * unknown id refused at HELLO would tell a client the id does not exist. */
    static const char *const ids[] = {"edge-1", "edge-2"};
    static const char *const secrets[] = {"another-secret-16", "the-hubs-secret-16"};
    for (int k = 0; k < 2; k++) {
        CHECK(setup(&e, &h, m, 0, 0, "edge-1", "the-hubs-secret-16") == 0);
        ri_hs_begin(&h.hs, binding, NULL, NULL);
        ri_hs_begin(&e.hs, binding, ids[k], secrets[k]);
        CHECK_INT(deliver(&e, &h), RI_HS_CONTINUE);
        CHECK_INT(h.n_out, 1);
        CHECK_INT(h.out[0].type, RI_F_AUTH);
        CHECK_INT(h.out[0].len, 32);
        CHECK_INT(deliver(&h, &e), RI_HS_CONTINUE);
        CHECK_INT(deliver(&e, &h), RI_HS_REFUSE);
        CHECK_INT(h.n_out, 0);
        CHECK_INT(h.hs.code, RI_E_AUTH);
        CHECK_HAS(h.hs.reason, k == 0 ? "wrong secret for edge 'edge-1'"
                                      : "unknown edge id 'edge-2'");
        snprintf(k == 0 ? peer_wrong : peer_unknown, sizeof peer_wrong, "%s",
                 h.hs.peer_reason);
        teardown(&e, &h);
    }
    ri_module_unref(m);
    CHECK_STR(peer_wrong, "authentication failed");
    CHECK_STR(peer_unknown, peer_wrong);
}

TEST(handshake_refuses_frames_out_of_order)
{
    struct ri_module *m = auth_module();
    CHECK(m);
    struct side e, h;
    uint8_t nonce[32] = {0};
    /* the hub: AUTH before HELLO, WELCOME, CONFIG; a second HELLO */
    static const uint8_t wrong_first[] = {RI_F_AUTH, RI_F_WELCOME, RI_F_CONFIG, RI_F_GOAWAY};
    for (size_t i = 0; i < sizeof wrong_first; i++) {
        CHECK(setup(&e, &h, m, 0, 0, "edge-1", "0123456789abcdef") == 0);
        ri_hs_begin(&h.hs, binding, NULL, NULL);
        struct ri_frame_hdr fh = {.type = wrong_first[i], .len = 32};
        CHECK_INT(ri_hs_on_frame(&h.hs, &fh, nonce), RI_HS_REFUSE);
        CHECK_INT(h.hs.code, RI_E_PROTOCOL);
        teardown(&e, &h);
    }
    CHECK(setup(&e, &h, m, 0, 0, "edge-1", "0123456789abcdef") == 0);
    ri_hs_begin(&h.hs, binding, NULL, NULL);
    ri_hs_begin(&e.hs, binding, "edge-1", "0123456789abcdef");
    struct frame hello = e.out[0];
    CHECK_INT(deliver(&e, &h), RI_HS_CONTINUE);
    struct ri_frame_hdr fh = {.type = RI_F_HELLO, .len = (uint32_t)hello.len};
    CHECK_INT(ri_hs_on_frame(&h.hs, &fh, hello.p), RI_HS_REFUSE);
    CHECK_INT(h.hs.code, RI_E_PROTOCOL);
    teardown(&e, &h);
    /* the edge: WELCOME before the hub proved the secret */
    CHECK(setup(&e, &h, m, 0, 0, "edge-1", "0123456789abcdef") == 0);
    ri_hs_begin(&e.hs, binding, "edge-1", "0123456789abcdef");
    uint8_t w[6];
    struct ri_frame_hdr wh = {.type = RI_F_WELCOME, .len = (uint32_t)ri_welcome_encode(w, 0)};
    CHECK_INT(ri_hs_on_frame(&e.hs, &wh, w), RI_HS_FAIL);
    CHECK_INT(e.hs.code, RI_E_AUTH);
    CHECK_HAS(e.hs.reason, "before proving the shared secret");
    teardown(&e, &h);
    ri_module_unref(m);
}

TEST(handshake_refuse_from_peer_and_method_mismatch)
{
    struct ri_module *m = auth_module();
    CHECK(m);
    struct side e, h;
    CHECK(setup(&e, &h, m, 0, 0, "edge-1", "0123456789abcdef") == 0);
    ri_hs_begin(&e.hs, binding, "edge-1", "0123456789abcdef");
    uint8_t r[64];
    size_t n = ri_reason_encode(r, sizeof r, RI_E_AUTH, "authentication failed");
    struct ri_frame_hdr rh = {.type = RI_F_REFUSE, .len = (uint32_t)n};
    CHECK_INT(ri_hs_on_frame(&e.hs, &rh, r), RI_HS_FAIL);
    CHECK_INT(e.hs.code, RI_E_AUTH);
    CHECK_HAS(e.hs.reason, "peer refused us: authentication failed");
    /* once failed, nothing more is taken */
    CHECK_INT(ri_hs_on_frame(&e.hs, &rh, r), RI_HS_FAIL);
    teardown(&e, &h);
    /* an edge that names another auth plugin */
    CHECK(setup(&e, &h, m, 0, 0, "edge-1", "0123456789abcdef") == 0);
    ri_hs_begin(&h.hs, binding, NULL, NULL);
    uint8_t hello[RI_HELLO_MAX];
    size_t hl = ri_hello_encode(hello, sizeof hello, "edge-1", "auth_other", r, 32, 0);
    struct ri_frame_hdr hh = {.type = RI_F_HELLO, .len = (uint32_t)hl};
    CHECK_INT(ri_hs_on_frame(&h.hs, &hh, hello), RI_HS_REFUSE);
    CHECK_INT(h.hs.code, RI_E_AUTH_METHOD);
    CHECK_HAS(h.hs.reason, "'auth_other'");
    teardown(&e, &h);
    ri_module_unref(m);
}
