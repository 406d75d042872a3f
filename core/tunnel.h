/* tunnel.h -- one TLS connection between an edge and the hub: handshake,
 * authentication, frame I/O, the control queue, keepalive and shutdown.
 * Streams on it live in the mux (mux.h). */
#ifndef RI_TUNNEL_H
#define RI_TUNNEL_H

#include <ev.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bq.h"
#include "cycle.h"
#include "frame.h"
#include "mux.h"
#include "pace.h"
#include "ratelimit.h"
#include "tls.h"

#define RI_RBUF_SIZE (128u * 1024u)            /* decrypted, unparsed frames */
#define RI_NETBUF_SIZE (128u * 1024u)          /* raw TLS bytes each way */
#define RI_WBUF_BATCH (64u * 1024u)          /* compose this much per batch */
#define RI_WBUF_SIZE (RI_WBUF_BATCH + RI_FRAME_MAX_PAYLOAD + RI_FRAME_HDR)
#define RI_PREAUTH_MAX_PAYLOAD 8192u         /* before authentication */
#define RI_CTRL_MAX (8u * 1024u * 1024u)     /* queued control bytes: peer not reading */
#define RI_CTRL_PREAUTH_MAX (64u * 1024u)    /* the same before authentication */
#define RI_TLS_RECORD 16384u
#define RI_ACK_EVERY (64u * 1024u)          /* ACK at least this often */
#define RI_BAD_OPENS_MAX 64u  /* hub: OPENs for unassigned ports before GOAWAY */
#ifndef RI_TCP_NOTSENT_LOWAT
#define RI_TCP_NOTSENT_LOWAT (128 * 1024)
#endif

enum ri_tstate {
    RI_T_TCP,   /* edge: connecting */
    RI_T_TLS,   /* TLS handshake */
    RI_T_AUTH,  /* HELLO/AUTH exchange */
    RI_T_READY, /* streams flow */
    RI_T_DEAD,  /* closed; freed on the next loop iteration */
};

struct ri_tunnel;

/* What the role (hub.c / edge.c) provides. */
struct ri_tunnel_hooks {
    /* hub: secret of a configured edge id; 0 found, -1 unknown */
    int (*lookup)(struct ri_tunnel *t, const char *edge_id, const uint8_t **secret,
                  size_t *len);
    void (*tls_up)(struct ri_tunnel *t);  /* edge: check peer, send HELLO */
    void (*ready)(struct ri_tunnel *t);   /* authenticated both ways */
    void (*config)(struct ri_tunnel *t, const struct ri_config_msg *m); /* edge */
    int (*open)(struct ri_tunnel *t, uint32_t id, const struct ri_open *o); /* hub */
    void (*goaway)(struct ri_tunnel *t, unsigned code, const char *reason);
    void (*closed)(struct ri_tunnel *t, unsigned code); /* about to be freed */
};

struct ri_tunnel {
    int role; /* enum ri_role */
    int fd;
    enum ri_tstate state;
    gnutls_session_t tls;
    ev_io rio, wio;
    ev_prepare flusher; /* runs the writer before the loop next polls */
    ev_timer timer;  /* handshake deadline, then keepalive */
    ev_timer reaper; /* frees a dead tunnel outside its own callbacks */
    ev_tstamp last_rx;
    double ping_interval, ping_timeout;

    struct ri_cycle *cy; /* the config generation this tunnel runs under */
    const struct ri_tunnel_hooks *hooks;
    char peer[64]; /* address for logs */
    struct sockaddr_storage peer_sa; /* hub: the edge's address (penalty.h) */
    char edge_id[RI_EDGE_ID_MAX + 1];

    /* authentication */
    struct ri_inst *auth;
    void *auth_conn;
    uint8_t *secret;
    size_t secret_len;
    uint8_t binding[32];
    int auth_done;

    /* receive: decrypted bytes not yet parsed */
    uint8_t *rbuf;
    size_t roff, rlen; /* unparsed bytes are rbuf[roff, rlen) */
    /* send: one batch of frames being written; `inflight` bytes were offered
     * to GnuTLS and answered E_AGAIN (re-offered as NULL, 0) */
    uint8_t *wbuf;
    size_t wlen, woff, inflight;
    /* raw TLS bytes between GnuTLS and the socket: one recv fills ibuf for
     * many records, one send drains obuf of many (GnuTLS's own transport
     * would make two syscalls per 16 KB record) */
    uint8_t *ibuf, *obuf;
    size_t ilen, ioff, olen, ooff;
    int rx_blocked; /* the last recv() found the socket empty */
    int rx_errno;   /* why the last recv() failed */
    struct ri_bq ctrl; /* control frames: always composed before data */
    struct ri_pace pace;   /* our DATA in flight (see pace.h) */
    uint64_t rx_unacked;   /* peer DATA bytes parsed but not yet ACKed */
    int close_after_flush; /* 1: flushing, then 2: our side shut, awaiting EOF */
    unsigned close_code;

    int draining;    /* GOAWAY sent or received: no new streams */
    int sent_drained, peer_drained; /* the closing handshake (GOAWAY code 0) */
    int was_ready;   /* reached RI_T_READY once */
    struct ri_mux mux;

    /* logging what the peer triggers: the tunnel's own lines (stream
     * refusals, window violations) and, before authentication, the role's
     * limiter shared by every unauthenticated connection (may be NULL) */
    struct ri_ratelimit rl;
    struct ri_ratelimit *preauth_rl;
    uint32_t bad_opens; /* hub: OPENs for ports not assigned to this edge */

    struct ri_tunnel *next, *prev; /* the hub's list of tunnels */
};

struct ri_tunnel *ri_tunnel_new(int role, int fd, struct ri_cycle *cy,
                                const struct ri_tunnel_hooks *hooks,
                                const char *peer);
/* Starts TLS on a connected socket. */
int ri_tunnel_start_tls(struct ri_tunnel *t, const struct ri_tls_creds *creds,
                        const char *server_name, double handshake_timeout);

/* Edge: begin authentication (after tls_up checks), sending HELLO. */
int ri_tunnel_send_hello(struct ri_tunnel *t, const char *edge_id, const char *secret);

/* Queue a control frame (stream 0 or a stream's WINDOW/OPEN/RST). */
int ri_tunnel_ctrl(struct ri_tunnel *t, uint8_t type, uint32_t stream, const void *p,
                   size_t n);
/* Queue RST for a stream (known to the mux or not) with code and reason. */
int ri_tunnel_rst(struct ri_tunnel *t, uint32_t stream, unsigned code, const char *reason);
/* Something is ready to send: make sure the writer runs. */
void ri_tunnel_kick(struct ri_tunnel *t);

/* A stream ended or a GOAWAY passed: close a drained tunnel politely. */
void ri_tunnel_drained_check(struct ri_tunnel *t);
/* Polite end: send REFUSE (handshake) or GOAWAY with code/reason, then close. */
void ri_tunnel_refuse(struct ri_tunnel *t, unsigned code, const char *reason);
void ri_tunnel_goaway(struct ri_tunnel *t, unsigned code, const char *reason, int close_now);
/* Close without a frame once everything queued is written (e.g. drained). */
void ri_tunnel_close(struct ri_tunnel *t, unsigned code);
/* Immediate end with a logged reason; streams are reset. */
void ri_tunnel_fail(struct ri_tunnel *t, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
