/* mux.h -- the streams of one tunnel: per-stream flow control, socket I/O,
 * upstream connects, the scheduler and classifier instances.
 *
 * The mux knows nothing of TLS, handshakes or roles' policies: what it needs
 * from its tunnel comes through a small environment given at init (queue a
 * control frame, run the writer, "last stream gone", and on the hub "an
 * OPEN arrived"), and the tunnel tells it its phase. */
#ifndef RI_MUX_H
#define RI_MUX_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bq.h"
#include "frame.h"
#include "netutil.h"
#include "pace.h"
#include "ratelimit.h"
#include "ri_plugin.h"

struct ri_inst;
struct ri_module;
struct ri_pace;
struct ri_worker;

#define RI_DATA_CHUNK (64u * 1024u) /* most payload one dequeue reads */


struct ri_mux;

struct ri_stream {
    struct ri_mux *m;
    uint32_t id;
    int fd;
    ev_io rio, wio;
    ev_timer ctimer;               /* hub: upstream connect deadline */
    struct ri_stream *hnext;       /* hash chain */
    struct ri_stream *prev, *next; /* all streams of the mux */
    struct ri_bq outq;             /* from the tunnel, waiting for the socket */
    uint64_t tx_credit, tx_bytes;  /* towards the tunnel */
    uint64_t rx_bytes, rx_consumed, rx_granted; /* from the tunnel */
    uint64_t opened_ns, tick_bytes;
    void *sp, *cp;                 /* the scheduler's and classifier's areas */
    void *areas;                   /* their block when not inline (after a policy swap) */
    struct ri_addr client;         /* who connected to the edge */
    struct ri_addr target;         /* hub: the upstream it connects to */
    uint32_t hdr_left; /* header bytes at the front of outq (not stream data) */
    uint32_t klass;    /* in force: the higher of ours and the peer's */
    uint8_t own_class, peer_class; /* our classifier's verdict; the peer's (CLASS frames) */
    uint16_t edge_port;
    unsigned queued : 1, reading : 1, rd_eof : 1, fin_sent : 1, fin_rcvd : 1, wr_shut : 1,
        connecting : 1;
};

/* What the mux needs from its tunnel. */
struct ri_mux_env {
    void *owner;
    int (*ctrl)(void *owner, uint8_t type, uint32_t stream, const void *p, size_t n);
    void (*kick)(void *owner); /* something is ready to send */
    void (*idle)(void *owner); /* the last stream ended */
    /* hub: the peer opened stream id; call ri_mux_connect or ri_mux_refuse */
    void (*open)(void *owner, uint32_t id, const struct ri_open *o);
};

enum ri_mux_phase {
    RI_MUX_HANDSHAKE, /* no streams yet */
    RI_MUX_OPEN,      /* streams open and flow */
    RI_MUX_DRAINING,  /* no new streams; open ones flow */
    RI_MUX_DEAD,      /* the tunnel is gone: nothing flows */
};

/* The policy a mux runs: modules (referenced by the mux while in use) and
 * their settings (read at instance creation only). */
struct ri_mux_policy {
    struct ri_module *sched, *cls; /* sched NULL: the built-in fifo */
    const void *sched_settings, *cls_settings; /* config_setting_t */
};

/* What the lanes of one edge share (each lane is a tunnel with its own
 * mux): the stream count that max_streams and the window budget (window.h)
 * apply to, per edge rather than per connection, and the in-flight cap
 * across the lanes. Reference-counted by its creator and the muxes that
 * joined it. An edge with workers runs its lanes on several threads
 * (core/ARCHITECTURE.md, "Workers"): the share is the one object they
 * write together -- the count is atomic, the rest is under `mu`, taken
 * once per write batch and per ACK frame, never per stream or per byte. */
struct ri_mux_share {
    pthread_mutex_t mu;
    uint32_t refs;                /* mu */
    _Atomic uint32_t streams;     /* open streams on all lanes */
    struct ri_pace_share pace;    /* mu: the in-flight cap across the lanes (pace.h) */
    struct ri_mux *muxes;         /* mu: the lanes (ri_mux.share_next) */
    int threaded; /* lanes may run on other loops: they are woken by ev_async */
};
struct ri_mux {
    struct ri_worker *w;
    const struct ri_mux_env *env;
    const struct ri_core_api *api;
    int role;
    enum ri_mux_phase phase;
    const char *label;          /* "tunnel <peer>[ edge <id>]" for logs */
    const char *edge_id;        /* for events ("" until known) */
    const char *peer;           /* for events: the tunnel's remote address */
    uint64_t tunnel_id;
    uint32_t caps;              /* capabilities in use on the tunnel (frame.h) */
    struct ri_ratelimit *rl;    /* the tunnel's limiter for peer-triggered lines */
    struct ri_stream **tab;
    uint32_t mask, n;
    uint32_t next_id;           /* edge: last id given */
    uint32_t last_id;           /* hub: highest id opened by the peer */
    uint32_t max_streams;
    struct ri_stream *all;
    struct ri_inst *sched, *cls;
    size_t sched_size, cls_size; /* per-stream areas */
    uint32_t queued;
    uint64_t tx_bytes, rx_bytes;
    ev_timer cls_timer;
    struct ri_mux_share *share; /* the edge's lanes; NULL: this mux alone */
    struct ri_mux *share_next;
    ev_async share_wake;        /* a threaded share: another lane's ACK freed room */
};

/* A share for an edge's lanes (threaded: they may run on several loops);
 * the caller holds one reference. NULL: out of memory. */
struct ri_mux_share *ri_mux_share_new(int threaded);
void ri_mux_share_unref(struct ri_mux_share *sh);
/* Joins the lanes that share sh (NULL: starts a new share, returned), so
 * max_streams and the window budget count their streams together. On the
 * mux's own loop. NULL: out of memory (the mux stays alone). Leaves the
 * share at destroy. */
struct ri_mux_share *ri_mux_join(struct ri_mux *m, struct ri_mux_share *sh);
/* The edge's in-flight cap, for the tunnel of mux m (alone: own's room).
 * DATA bytes it may send now, within its own cap and the edge's; when the
 * edge's cap said no while streams wait, the next ACK on any lane runs
 * this lane's writer again. */
uint64_t ri_mux_share_room(struct ri_mux *m, const struct ri_pace *own);
void ri_mux_share_sent(struct ri_mux *m, uint64_t bytes, uint64_t now_ns);
/* An ACK on m's lane: counts for the edge, and wakes the lanes the edge's
 * cap held back once it has room. */
void ri_mux_share_acked(struct ri_mux *m, uint64_t acked, uint64_t now_ns);
/* m's lane closed: its bytes in flight no longer count for the edge. */
void ri_mux_share_forget(struct ri_mux *m, const struct ri_pace *own);
/* Open streams of the edge: this mux's, or all its lanes'. */
static inline uint32_t ri_mux_edge_streams(const struct ri_mux *m)
{
    return m->share ? atomic_load_explicit(&m->share->streams, memory_order_relaxed) : m->n;
}

/* pol NULL: no scheduler or classifier yet (the hub makes them where the
 * tunnel will run: ri_mux_set_policy before the first stream). */
int ri_mux_init(struct ri_mux *m, struct ri_worker *w, const struct ri_mux_env *env,
                const struct ri_core_api *api, int role, const struct ri_mux_policy *pol,
                uint32_t max_streams, char *err, size_t errlen);
void ri_mux_destroy(struct ri_mux *m); /* resets every stream */
void ri_mux_set_phase(struct ri_mux *m, enum ri_mux_phase phase);

/* Replaces the scheduler and classifier while streams are open: queued
 * streams leave the old scheduler in its order and join the new one in that
 * order, every stream gets fresh zeroed areas; classes are kept, the
 * classifier's per-stream state starts over. -1 (old policy kept) if a new
 * instance cannot be created. */
int ri_mux_set_policy(struct ri_mux *m, const struct ri_mux_policy *pol, char *err,
                      size_t errlen);

/* Edge: a client connected on public port `port`. Takes fd. */
int ri_mux_open_local(struct ri_mux *m, int fd, uint16_t port);
/* Hub, from env->open: connect stream id to dst, sending hdr first. */
int ri_mux_connect(struct ri_mux *m, uint32_t id, const struct ri_open *o,
                   const struct sockaddr *dst, socklen_t dl, const void *hdr, size_t hl,
                   double timeout);
/* Hub, from env->open: refuse stream id. */
void ri_mux_refuse(struct ri_mux *m, uint32_t id, unsigned code, const char *reason);
void ri_mux_stream_reset(struct ri_stream *s, unsigned code, const char *reason);

/* Stream frames from the tunnel. <0: the tunnel must fail (reason in err). */
int ri_mux_on_frame(struct ri_mux *m, const struct ri_frame_hdr *h, const uint8_t *p,
                    char *err, size_t errlen);
/* Appends DATA/FIN frames of ready streams to buf until *len >= target or
 * `budget` payload bytes went in; returns the payload bytes added. A read
 * that may take more than `align` bytes (0: no alignment) is shortened so
 * that its frame ends at a multiple of `align` in buf: the caller cuts buf
 * into TLS records of that size, so none goes out part-full. */
size_t ri_mux_compose(struct ri_mux *m, uint8_t *buf, size_t *len, size_t target, size_t cap,
                      size_t budget, size_t align, const struct ri_pace *pace);

int ri_mux_stream_stats(const ri_stream *s, struct ri_stream_stats *out);
/* The public port of a stream's edge address in an OPEN. */
uint16_t ri_open_edge_port(const struct ri_open *o);

#endif
