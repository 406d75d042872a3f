/* worker.h -- one event loop's context. Everything the data path needs that
 * is not per tunnel or per stream lives here and is handed down, never
 * reached through a global: the loop itself, the chunk pool, the counters.
 * Today a process runs one worker; nothing in the data path assumes so. */
#ifndef RI_WORKER_H
#define RI_WORKER_H

#include <ev.h>
#include <stdint.h>

#include "bq.h"
#include "fdlimit.h"

struct ri_event_bus;

/* Totals of one worker since it started (read on demand, e.g. for status
 * and metrics; the data path only increments). */
struct ri_counters {
    uint64_t tunnels_opened, tunnels_closed;
    uint64_t streams_opened, streams_closed, streams_refused;
    uint64_t streams_refused_fdlimit; /* of those: at the descriptor limit (fdlimit.h) */
    uint64_t bytes_to_peer, bytes_from_peer; /* DATA payload through tunnels */
    uint64_t frames_out, frames_in;
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
/* A new tunnel id, unique in the process (never 0). */
uint64_t ri_worker_tunnel_id(struct ri_worker *w);
/* A new client (edge) or upstream (hub) connection got descriptor fd:
 * 0 to go on, -1 to refuse it with a reset (the caller closes fd) because
 * the open-file limit is near (fdlimit.h). Logs the near-limit warning and
 * the refusals (rate-limited) naming role and what is refused, and counts
 * the refusal in streams_refused_fdlimit (the caller counts streams_refused). */
int ri_worker_fd_room(struct ri_worker *w, int fd, const char *role, const char *what);

#endif
