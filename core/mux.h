/* mux.h -- streams multiplexed over one tunnel: per-stream flow control,
 * socket I/O, the scheduler and classifier plugins. */
#ifndef RI_MUX_H
#define RI_MUX_H

#include <ev.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bq.h"
#include "frame.h"
#include "ri_plugin.h"

struct ri_tunnel;
struct ri_inst;
struct ri_module;

#define RI_DATA_CHUNK (64u * 1024u) /* most payload one dequeue reads */

struct ri_stream {
    struct ri_tunnel *t;
    uint32_t id;
    int fd;
    ev_io rio, wio;
    ev_timer ctimer; /* hub: upstream connect deadline */
    struct ri_stream *hnext;       /* hash chain */
    struct ri_stream *prev, *next; /* all streams of the tunnel */
    struct ri_bq outq;             /* from the tunnel, waiting for the socket */
    uint64_t tx_credit, tx_bytes;  /* towards the tunnel */
    uint64_t rx_bytes, rx_consumed, rx_granted; /* from the tunnel */
    uint64_t opened_ns, tick_bytes;
    uint32_t hdr_left; /* header bytes at the front of outq (not stream data) */
    uint32_t klass;
    uint16_t edge_port;
    unsigned queued : 1, reading : 1, rd_eof : 1, fin_sent : 1, fin_rcvd : 1, wr_shut : 1,
        connecting : 1;
    /* plugin per-stream areas follow the struct (see mux.c) */
};

struct ri_mux {
    struct ri_stream **tab;
    uint32_t mask, n;
    uint32_t next_id;   /* edge: last id given */
    uint32_t last_id;   /* hub: highest id opened by the peer */
    uint32_t max_streams;
    struct ri_stream *all;
    struct ri_inst *sched, *cls;
    const struct ri_sched_ops *sops;
    const struct ri_classify_ops *cops;
    size_t sched_off, cls_off, stream_size;
    uint32_t queued;
    uint64_t tx_bytes;
    ev_timer cls_timer;
};

int ri_mux_init(struct ri_tunnel *t, const struct ri_module *sched,
                const struct ri_module *cls, uint32_t max_streams, char *err, size_t errlen);
void ri_mux_destroy(struct ri_tunnel *t); /* resets every stream */

/* Edge: a client connected on public port `port`. Takes fd. */
int ri_mux_open_local(struct ri_tunnel *t, int fd, uint16_t port);
/* Hub: create the stream the peer opened; the caller attaches an fd. */
struct ri_stream *ri_mux_stream_new(struct ri_tunnel *t, uint32_t id, uint16_t edge_port);
/* Attach a socket (hub: connecting; reading starts once connected). */
void ri_mux_stream_attach(struct ri_stream *s, int fd, int connecting);
/* Hub: upstream connect finished (err = 0 ok, else errno). */
void ri_mux_stream_connected(struct ri_stream *s, int err);
/* Queue bytes for the socket ahead of everything the tunnel delivers. */
int ri_mux_stream_prepend(struct ri_stream *s, const void *p, size_t n);
void ri_mux_stream_reset(struct ri_stream *s, unsigned code, const char *reason);

/* Stream frames from the tunnel. <0: the tunnel must fail (reason in err). */
int ri_mux_on_frame(struct ri_tunnel *t, const struct ri_frame_hdr *h, const uint8_t *p,
                    char *err, size_t errlen);
/* Appends DATA/FIN frames of ready streams to buf until *len >= target or
 * `budget` payload bytes went in; returns the payload bytes added. */
size_t ri_mux_compose(struct ri_tunnel *t, uint8_t *buf, size_t *len, size_t target,
                      size_t cap, size_t budget);
/* Stops reading from every stream (tunnel dying) */
void ri_mux_stop_all(struct ri_tunnel *t);

int ri_mux_stream_stats(const ri_stream *s, struct ri_stream_stats *out);

#endif
