/* worker.h -- one event loop's context. Everything the data path needs that
 * is not per tunnel or per stream lives here and is handed down, never
 * reached through a global: the loop itself, the chunk pool, the counters.
 * Each role runs one per event loop (core/ARCHITECTURE.md,
 * "Workers"), used by that loop's thread only. */
#ifndef RI_WORKER_H
#define RI_WORKER_H

#include <ev.h>
#include <stdint.h>

#include "bq.h"
#include "fdlimit.h"
#include "ri_plugin.h"

struct ri_event_bus;

#define RI_CTR_CLASSES (RI_CLASS_MAX_ + 1)

/* The STUN client's work (edge): Binding requests sent (retransmissions
 * included) and how each attempt ended. */
struct ri_stun_counters {
    uint64_t requests;
    uint64_t ok;        /* an answer with our address */
    uint64_t timeouts;  /* a server that gave no answer to all its tries */
    uint64_t errors;    /* a name that did not resolve, a socket error, ICMP */
    uint64_t malformed; /* datagrams that were no valid answer (ignored) */
};

/* Totals of one worker since it started (read on demand, e.g. for status
 * and metrics; the data path only increments). */
struct ri_counters {
    uint64_t tunnels_opened, tunnels_closed;
    uint64_t streams_opened, streams_closed, streams_refused;
    uint64_t streams_refused_fdlimit; /* of those: at the descriptor limit (fdlimit.h) */
    uint64_t bytes_to_peer, bytes_from_peer; /* DATA payload through tunnels */
    /* DATA frames and their payload by the stream's class in force when
     * they were sent or received (RI_CLASS_DATA, RI_CLASS_SUSTAINED, ...) */
    uint64_t data_frames_out[RI_CTR_CLASSES], data_frames_in[RI_CTR_CLASSES];
    uint64_t data_bytes_out[RI_CTR_CLASSES], data_bytes_in[RI_CTR_CLASSES];
    uint64_t ctrl_frames_out, ctrl_frames_in; /* every frame that is not DATA */
    uint64_t window_stalls; /* a stream read its last send credit: it waits for WINDOW */
    uint64_t pace_stalls;   /* a tunnel with streams queued reached its in-flight cap */
    struct ri_stun_counters stun;
};

struct ri_worker {
    struct ev_loop *loop;
    int index;                /* 0 is the main loop */
    struct ri_bq_pool pool;   /* stream and control buffers */
    struct ri_counters ctr;
    struct ri_event_bus *bus; /* where this worker's events go (may be NULL) */
    uint64_t next_tunnel_id;  /* stable ids: index in the top 8 bits */
    ev_timer trim;            /* gives memory back after a burst */
    struct ri_fdlimit fdl;    /* the open-file limit, as new connections near it */
};

void ri_worker_init(struct ri_worker *w, struct ev_loop *loop, int index,
                    struct ri_event_bus *bus);
void ri_worker_destroy(struct ri_worker *w);
/* dst += src, counter by counter (a threaded hub sums its workers' when
 * asked: counters live per worker). */
void ri_counters_add(struct ri_counters *dst, const struct ri_counters *src);
/* A new tunnel id, unique in the process (never 0). */
uint64_t ri_worker_tunnel_id(struct ri_worker *w);
/* A new client (edge) or upstream (hub) connection got descriptor fd:
 * 0 to go on, -1 to refuse it with a reset (the caller closes fd) because
 * the open-file limit is near (fdlimit.h). Logs the near-limit warning and
 * the refusals (rate-limited) naming role and what is refused, and counts
 * the refusal in streams_refused_fdlimit (the caller counts streams_refused). */
int ri_worker_fd_room(struct ri_worker *w, int fd, const char *role, const char *what);

#endif
