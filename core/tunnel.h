/* tunnel.h -- one TLS connection between an edge and the hub: the control
 * queue, composing write batches (control frames first), dispatching
 * received frames, keepalive and the close sequence. TLS record I/O is in
 * tlsio.c, the authentication exchange in handshake.c, the streams in
 * mux.c; the role (hub.c, edge.c) owns the tunnel and hears from it through
 * hooks. */
#ifndef RI_TUNNEL_H
#define RI_TUNNEL_H

#include <ev.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bq.h"
#include "frame.h"
#include "handshake.h"
#include "mux.h"
#include "pace.h"
#include "ratelimit.h"
#include "tlsio.h"

#define RI_RBUF_SIZE (128u * 1024u)   /* decrypted, unparsed frames */
#define RI_WBUF_BATCH (64u * 1024u)   /* compose this much per batch */
#define RI_WBUF_SIZE (RI_WBUF_BATCH + RI_FRAME_MAX_PAYLOAD + RI_FRAME_HDR)
#define RI_CTRL_MAX (8u * 1024u * 1024u)  /* queued control bytes: peer not reading */
#define RI_CTRL_PREAUTH_MAX (64u * 1024u) /* the same before authentication */
#define RI_ACK_EVERY (64u * 1024u)        /* ACK at least this often */
#define RI_ACK_DEFER (8u * 1024u)         /* less, when the socket runs dry, may wait... */
#define RI_ACK_DELAY 0.002                /* ...this long (s) for a record to ride on */
#define RI_BAD_OPENS_MAX 64u  /* hub: OPENs for unassigned ports before GOAWAY */
#define RI_LINGER_SECS 2.0    /* a closing side waits this long for the peer */
#ifndef RI_TCP_NOTSENT_LOWAT
#define RI_TCP_NOTSENT_LOWAT (128 * 1024)
#endif

enum ri_tstate {
    RI_T_TLS,   /* TLS handshake */
    RI_T_AUTH,  /* HELLO/AUTH exchange (handshake.c) */
    RI_T_READY, /* streams flow */
    RI_T_DEAD,  /* closed; freed on the next loop iteration */
};

/* The polite end of a tunnel, after its last frame was queued. */
enum ri_tclose {
    RI_CLOSE_NONE,
    RI_CLOSE_FLUSH, /* writing what is queued, then shutting our side */
    RI_CLOSE_SHUT,  /* our side is shut: reading (and discarding) until the peer's EOF */
};

struct ri_tunnel;

/* What a tunnel running on a worker tells the loop that places new
 * streams on it (the edge's main loop, pick_lane): its load (ri_tunnel_load)
 * and open streams, stored after each write batch and ACK. The role owns
 * the memory and keeps it until the tunnel's `closed` hook ran. */
struct ri_tunnel_pub {
    _Atomic uint64_t load;
    _Atomic uint32_t streams;
};

/* What the role hears. Every hook is optional but `closed`. */
struct ri_tunnel_hooks {
    /* hub: secret of a configured edge id; 0 found, -1 unknown */
    int (*lookup)(struct ri_tunnel *t, const char *edge_id, const uint8_t **secret,
                  size_t *len);
    /* edge: TLS is up, check the hub's certificate; <0 fails the tunnel with err */
    int (*tls_up)(struct ri_tunnel *t, char *err, size_t errlen);
    void (*ready)(struct ri_tunnel *t); /* authenticated both ways */
    void (*config)(struct ri_tunnel *t, const struct ri_config_msg *m); /* edge */
    void (*open)(struct ri_tunnel *t, uint32_t id, const struct ri_open *o); /* hub */
    /* hub: the edge reports the assigned ports it could not open (n 0: all open) */
    void (*ports)(struct ri_tunnel *t, const struct ri_ports_msg *m);
    /* hub: the edge tells its public address (ADDR; checked by ri_pubaddr_decode) */
    void (*addr)(struct ri_tunnel *t, const struct sockaddr_storage *a);
    void (*goaway)(struct ri_tunnel *t, unsigned code, const char *reason);
    /* handshake failed (hub: the peer could not authenticate) */
    void (*refused)(struct ri_tunnel *t, unsigned code, const char *reason);
    /* about to be freed; streams_lost: streams open when it died */
    void (*closed)(struct ri_tunnel *t, unsigned code, const char *why, uint32_t streams_lost);
};

/* What a role gives a new tunnel. Pointers need only live through
 * ri_tunnel_new, except hooks, w, api and preauth_rl. */
struct ri_tunnel_params {
    int role;
    int fd;                     /* connected; the tunnel owns it from now on */
    const char *peer;           /* address text for logs */
    const struct sockaddr *peer_sa;
    socklen_t peer_sa_len;
    struct ri_worker *w;
    const struct ri_core_api *api;
    struct ri_tls_creds *creds; /* referenced by the tunnel */
    const char *sni;            /* edge: the hub's name, or NULL */
    struct ri_inst *auth;       /* referenced by the tunnel during its handshake */
    struct ri_mux_policy policy;
    uint32_t max_streams;
    double ping_interval, ping_timeout, handshake_timeout;
    const char *edge_id, *secret; /* edge: who we are */
    uint64_t group;             /* edge: lanes -- this process run's group id */
    uint8_t lane;               /* edge: lanes -- this connection's index */
    uint32_t caps_off;          /* capabilities not offered (offer_lanes = false) */
    const struct ri_tunnel_hooks *hooks;
    void *owner;                /* the role's context (t->owner) */
    struct ri_ratelimit *preauth_rl; /* shared by unauthenticated tunnels; may be NULL */
    int defer_policy;           /* hub: no scheduler/classifier until ri_tunnel_attach */
};

/* Settings a reload may change on a live tunnel. */
struct ri_tunnel_settings {
    double ping_interval, ping_timeout;
    uint32_t max_streams;
    int swap_policy;            /* 1: replace scheduler and classifier with `policy` */
    struct ri_mux_policy policy;
};

struct ri_tunnel {
    uint64_t id;              /* stable, unique in the process */
    int role;                 /* enum ri_role */
    enum ri_tstate state;
    enum ri_tclose closing;
    unsigned close_code;
    struct ri_worker *w;
    void *owner;
    const struct ri_tunnel_hooks *hooks;
    struct ri_tlsio io;
    struct ri_tls_creds *creds; /* a reference, for the session's life */
    struct ri_hs hs;
    struct ri_mux mux;
    struct ri_mux_env env;
    ev_io rio, wio;
    ev_prepare flusher;       /* runs the writer before the loop next polls */
    ev_timer keepalive;       /* the handshake deadline, then pings */
    ev_timer linger;          /* bounds the close sequence */
    ev_timer deadline;        /* bounds a drain (ri_tunnel_drain) */
    ev_timer reaper;          /* frees a dead tunnel outside its own callbacks */
    ev_timer ack_delay;       /* sends a small ACK nothing else carried */
    ev_tstamp last_rx;
    double ping_interval, ping_timeout;
    uint64_t connected_ns;    /* monotonic, when it became READY */
    /* lanes (RI_CAP_LANES in mux.caps once READY): the edge's group id
     * (random per edge process run) and this connection's lane index; the
     * edge's own, or on the hub what its HELLO said */
    uint64_t group;
    uint8_t lane;
    uint8_t config_sent;      /* hub: carried the edge's latest CONFIG */

    char peer[64];            /* address for logs */
    struct sockaddr_storage peer_sa;
    char edge_id[RI_EDGE_ID_MAX + 1];
    char label[64 + RI_EDGE_ID_MAX + 16]; /* "tunnel <peer>[ edge <id>]" */
    char *my_id, *my_secret;  /* edge: until the handshake starts */

    /* receive: decrypted bytes not yet parsed are rbuf[roff, rlen) */
    uint8_t *rbuf;
    size_t roff, rlen;
    /* send: one batch of frames, encrypted from wbuf[woff, wlen) */
    uint8_t *wbuf;
    size_t wlen, woff;
    struct ri_bq ctrl;        /* control frames: always composed before data */
    struct ri_pace pace;      /* our DATA in flight (see pace.h) */
    uint64_t rx_unacked;      /* peer DATA bytes parsed but not yet ACKed */

    int draining;             /* GOAWAY sent or received: no new streams */
    int sent_drained, peer_drained; /* the closing handshake (GOAWAY code 0) */
    int was_ready;            /* reached RI_T_READY once */
    int pace_stalled;         /* streams wait for the in-flight cap (counted once) */
    uint32_t bad_opens;       /* hub: OPENs for ports not assigned to this edge */
    /* hub: the public address the edge reported (ADDR frames, from STUN);
     * family 0 while none */
    struct sockaddr_storage public_addr;

    /* logging what the peer triggers: the tunnel's own lines (stream
     * refusals, window violations) and, before authentication, the role's
     * limiter shared by every unauthenticated connection (may be NULL) */
    struct ri_ratelimit rl;
    struct ri_ratelimit *preauth_rl;

    /* moving to another loop (ri_tunnel_park/detach/attach) */
    int parked;               /* reads nothing until attached */
    uint8_t *carry;           /* queued control bytes on their way */
    size_t carry_len;

    struct ri_tunnel_pub *pub; /* NULL, or where it publishes its load */

    struct ri_tunnel *next, *prev; /* the role's list */
    void *role_data;          /* the role's per-tunnel data */
};

/* Creates the tunnel and starts TLS on its socket. NULL (fd closed) with a
 * logged reason on failure. */
struct ri_tunnel *ri_tunnel_new(const struct ri_tunnel_params *p);
/* A reload: new keepalive, max_streams and maybe policy for a live tunnel. */
void ri_tunnel_update(struct ri_tunnel *t, const struct ri_tunnel_settings *s);

/* Moving a ready tunnel to another event loop (the workers,
 * core/ARCHITECTURE.md "Workers"), in three steps:
 * - ri_tunnel_park, from the role's `ready` hook: no more frames are
 *   parsed or read here (what came with the AUTH waits in rbuf);
 * - ri_tunnel_detach, later on the same loop and outside the tunnel's own
 *   callbacks: every watcher stops, the queued control bytes leave this
 *   loop's pool. -1 (nothing changed: the tunnel stays here) when it is
 *   no longer a parked, ready tunnel that is not closing, or no memory;
 * - ri_tunnel_attach, on the new loop's thread: the new worker context,
 *   hooks and owner, the scheduler and classifier made there (pol; NULL
 *   keeps the current ones), watchers started, the frames that waited
 *   parsed. -1 when the tunnel failed there (its `closed` hook ran). */
void ri_tunnel_park(struct ri_tunnel *t);
/* A parked tunnel that stays after all (it began closing): reads again. */
void ri_tunnel_unpark(struct ri_tunnel *t);
int ri_tunnel_detach(struct ri_tunnel *t);
int ri_tunnel_attach(struct ri_tunnel *t, struct ri_worker *w,
                     const struct ri_tunnel_hooks *hooks, void *owner,
                     const struct ri_mux_policy *pol);

/* How busy the tunnel is for a new stream: our DATA the peer has not
 * acknowledged, control frames and the batch not yet written, and a
 * record's worth per stream waiting for the in-flight cap (bytes). */
uint64_t ri_tunnel_load(const struct ri_tunnel *t);
/* Stores the load and open streams in t->pub now (NULL: nothing); the
 * tunnel does so itself after every write batch and ACK. */
void ri_tunnel_publish(struct ri_tunnel *t);

/* A role's list of tunnels (t->next, t->prev): push at the head, unlink. */
void ri_tunnel_list_push(struct ri_tunnel **head, struct ri_tunnel *t);
void ri_tunnel_list_unlink(struct ri_tunnel **head, struct ri_tunnel *t);

/* Queue a control frame (stream 0 or a stream's WINDOW/OPEN/RST). */
int ri_tunnel_ctrl(struct ri_tunnel *t, uint8_t type, uint32_t stream, const void *p,
                   size_t n);
/* Something is ready to send: make sure the writer runs. */
void ri_tunnel_kick(struct ri_tunnel *t);

/* Polite ends: GOAWAY with code/reason (close_now: then close; else drain),
 * REFUSE during the handshake. */
void ri_tunnel_goaway(struct ri_tunnel *t, unsigned code, const char *reason, int close_now);
void ri_tunnel_refuse(struct ri_tunnel *t, unsigned code, const char *reason);
/* GOAWAY(code, reason), then the open streams finish (closing at once when
 * there are none) for at most secs before the tunnel is closed; a tunnel
 * not yet ready just closes. */
void ri_tunnel_drain(struct ri_tunnel *t, unsigned code, const char *reason, double secs);
/* Immediate end with a logged reason; streams are reset. */
void ri_tunnel_fail(struct ri_tunnel *t, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
