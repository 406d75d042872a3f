/* handshake.h -- the tunnel's authentication after TLS: HELLO, AUTH...,
 * WELCOME (core/PROTOCOL.md, "Handshake"). Frames in, frames out, no I/O:
 * the owner feeds it the peer's stream-0 frames and sends what it emits, so
 * it is unit-tested with a fake auth plugin and fuzzed as it runs.
 *
 *   edge                                   hub
 *    ri_hs_begin -> HELLO(id, auth, m1, caps) ->   on_frame: lookup(id), step(m1)
 *                <- AUTH(m2) ---------------------
 *    step(m2) ---> AUTH(m3) ---------------------> step(m3): edge proven
 *                <- AUTH(m4), WELCOME(caps) ------ READY
 *    step(m4): hub proven; WELCOME: READY
 *
 * Every refusal keeps the detail for the log (hs->reason) and gives the
 * peer only what it may know (hs->peer_reason): an unauthenticated client
 * learns neither whether an edge id exists nor why its proof failed. An
 * unknown id is not refused at HELLO: the hub runs the exchange with a
 * random decoy secret and refuses where a wrong secret is refused, with
 * the same code and reason, so the frames a client sees are the same. */
#ifndef RI_HANDSHAKE_H
#define RI_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct ri_inst;

struct ri_hs_io {
    void *arg;
    /* queue one frame on stream 0; <0 fails the handshake */
    int (*emit)(void *arg, uint8_t type, const void *p, size_t n);
    /* hub: the configured secret of an edge id (copied at once); 0 found, -1 unknown */
    int (*lookup)(void *arg, const char *edge_id, const uint8_t **secret, size_t *len);
};

enum ri_hs_state {
    RI_HS_TLS,     /* waiting for TLS: nothing exchanged yet */
    RI_HS_AUTH,    /* HELLO sent (edge) or awaited (hub); AUTH messages flow */
    RI_HS_READY,   /* authenticated both ways: streams may open */
    RI_HS_FAILED,  /* refused or failed: hs->code and hs->reason say why */
};

enum ri_hs_rc {
    RI_HS_CONTINUE = 0, /* more frames to come */
    RI_HS_OK = 1,       /* just became READY */
    RI_HS_REFUSE = -1,  /* tell the peer with REFUSE(code, peer_reason), then close */
    RI_HS_FAIL = -2,    /* close without a frame (the peer refused us, or we cannot go on) */
};

struct ri_hs {
    int role; /* enum ri_role */
    enum ri_hs_state state;
    struct ri_inst *auth; /* a reference */
    void *auth_conn;      /* the plugin's per-connection state */
    struct ri_hs_io io;
    char edge_id[RI_EDGE_ID_MAX + 1];
    uint8_t *secret;      /* our copy, wiped when done */
    size_t secret_len;
    uint8_t binding[32];  /* TLS exporter of this session */
    int auth_done;        /* the peer proved the secret */
    int unknown_id;       /* hub: HELLO named no known edge; a decoy exchange runs */
    uint32_t caps_mine, caps_peer, caps; /* caps = both */
    /* lanes (RI_CAP_LANES): the edge's group id and lane index -- its own
     * (set by the owner before ri_hs_begin), or on the hub what HELLO said */
    uint64_t group;
    uint8_t lane;
    unsigned code;        /* enum ri_conn_code when REFUSE/FAIL */
    char reason[256];     /* for our log */
    char peer_reason[RI_REASON_MAX + 1]; /* for REFUSE */
};

/* 0, or -1 out of memory. auth is referenced. caps: what we offer. */
int ri_hs_init(struct ri_hs *hs, int role, struct ri_inst *auth, const struct ri_hs_io *io,
               uint32_t caps);
/* Wipes the secret and frees the plugin state. */
void ri_hs_free(struct ri_hs *hs);

/* TLS is up. The edge sends HELLO (edge_id and secret are its own); the hub
 * passes NULLs and waits. */
int ri_hs_begin(struct ri_hs *hs, const uint8_t binding[32], const char *edge_id,
                const char *secret);
/* One stream-0 frame from the peer before READY (not PING/PONG, which the
 * owner answers in any state). */
int ri_hs_on_frame(struct ri_hs *hs, const struct ri_frame_hdr *h, const uint8_t *p);

#endif
