/* hubworker.h -- the hub's workers, between hub.c (the main loop) and
 * hubworker.c (what runs on a worker's loop). Internal to the hub role.
 *
 * The cut is "which loop runs this". hub.c: accepting, handshakes,
 * placement and main's book of groups, the registry and the edges, the
 * control socket, reloads, stopping, handover, starting and stopping the
 * workers. hubworker.c: a ready tunnel's hooks, joining its group, the
 * per-edge bytes of closed streams, the calls main makes on a worker, the
 * worker thread's start and end. A few of those calls also run on main, over
 * main's own list of handshakes and parked tunnels (hw_replace_in, hw_change_in,
 * hw_acc_list, hw_stop_in): they live in hubworker.c with the worker's use.
 *
 * hub.c calls into hubworker.c; hubworker.c never calls hub.c. Main reaches
 * a worker by a call (hub.c's to_worker: fn runs on the worker's loop while
 * main waits; the *_run functions below are those fns, each with its ctx).
 * A worker reaches main only by posts, through the struct hub_main that
 * hub.c fills at start and every worker points at: main's mailbox and event
 * bus, and the two functions main runs for a worker's messages. hubworker.c
 * holds main's struct hub only as an opaque pointer it hands back. */
#ifndef RI_HUBWORKER_H
#define RI_HUBWORKER_H

#include <jansson.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cycle.h"
#include "events.h"
#include "frame.h"
#include "mailbox.h"
#include "ratelimit.h"
#include "registry.h"
#include "tunnel.h"
#include "worker.h"
#include "wthread.h"

struct hub; /* hub.c's: the main loop's state, opaque here */

/* The main loop as its workers reach it, filled by hub.c (start_workers).
 * A threaded worker posts fn(arg) to mb and forwards its events to bus; a
 * worker that is the main loop itself (workers = 1) runs fn(arg) inline. */
struct hub_main {
    struct hub *h;                /* opaque: handed back in a struct edge_note */
    struct ri_mailbox *mb;        /* main's mailbox (threaded workers only) */
    struct ri_event_bus *bus;     /* main's event bus: a threaded worker's events go there */
    ri_mail_fn *lane_gone_run;    /* on main: a struct lane_gone; frees it */
    ri_mail_fn *edge_note_run;    /* on main: a struct edge_note; frees it */
};

/* Workers (core/ARCHITECTURE.md, "Workers"): the main loop accepts,
 * authenticates, keeps the registry, the control socket and reloads; a
 * ready tunnel moves to a worker, which runs it and its streams to the
 * end. All lanes of an edge group go to one worker (their shared window
 * budget and pacing never cross threads). With workers = 1 the one worker
 * is the main loop itself and nothing moves. Main reaches a worker by a
 * call (runs there while main waits); a worker reaches main only by posts,
 * so no two threads ever wait on each other. */
struct hub_worker {
    const struct hub_main *main;
    int index;                 /* 1.. */
    int threaded;              /* 0: the main loop's own (workers = 1) */
    struct ri_wthread th;
    struct ev_loop *loop;
    struct ri_worker *w;       /* &own, or the main loop's when not threaded */
    struct ri_worker own;
    struct ri_event_bus bus;   /* threaded: forwards every event to main */
    struct ri_event_fwd fwd;
    char who[32];              /* "hub: worker 2", for its lost events */
    /* the worker's: its ready tunnels */
    struct ri_tunnel *tunnels;
    int stopping;              /* hw_stop_run told it the hub is stopping */
    /* the worker's: bytes of its closed streams per edge id (status and
     * metrics add those of the live ones, in the same call: a consistent
     * snapshot, where the registry's counts lag by the events in flight) */
    struct edge_bytes *eb;
    size_t n_eb, cap_eb;
    /* main's: lanes placed here and not yet reported gone (placement) */
    uint32_t lanes;
    /* what the worker's tunnels need of the hub, replaced by main in a call
     * (push_view): references, immutable while held */
    struct ri_cycle *cy;
    struct ri_edge_set *set;
    struct sockaddr_storage target;
    socklen_t target_len;
};

struct edge_bytes {
    char id[RI_EDGE_ID_MAX + 1];
    uint64_t up, down;
};

/* Lanes (core/PROTOCOL.md, "Lanes"): connections of one edge id that
 * offer lanes and name the same group form one edge (hubworker.c:
 * same_group). */
static inline int has_lanes(const struct ri_tunnel *t) { return (t->mux.caps & RI_CAP_LANES) != 0; }

/* ---- worker -> main: posts (struct hub_main) ---------------------------------- */
/* A placed lane is gone (closed on its worker, or before it got there):
 * allocated when it is placed, so the message cannot be lost to a failed
 * malloc (stopping waits for every one: lanes_out()). */
struct lane_gone {
    struct ri_mail mail;
    struct hub *h;
    struct hub_worker *hw;
    char edge_id[RI_EDGE_ID_MAX + 1];
    char peer[64];
    char why[RI_REASON_MAX + 64];
    uint64_t group, tid;
    uint8_t lane, lanes;
    unsigned code;
    uint32_t lost;
};

/* From t's worker (or main, for a tunnel that ended before it moved): t's
 * lane_gone (t->role_data, placed by main) goes to main's lane_gone_run. */
void hw_post_lane_gone(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost);

struct edge_note { /* a worker tells main about an edge: an OPEN for a port not its own */
    struct hub *h;
    char edge_id[RI_EDGE_ID_MAX + 1];
    struct ri_ports_msg *ports; /* or: the ports the edge cannot open */
};

/* ---- main -> a worker: calls (fn runs on the worker's loop while main waits) ----- */
/* What a worker does about a new connection t of an edge (runs there while
 * main waits; t is main's, read only): the newer connection for an edge id
 * takes its new streams; the older one drains (its streams finish), so a
 * new edge process taking over from an old one loses nothing. With lanes,
 * the older group goes whole; a lane of t's own group with t's index is
 * the one t reconnects (the edge found it dead before we did): it closes.
 * Draining tunnels of the id (o->draining) were told already. */
struct replace_ctx {
    struct ri_ratelimit *rl;   /* main's, for the lines about lanes reconnected */
    double drain_timeout;      /* the current config's */
    struct hub_worker *hw; /* NULL: main's own parked tunnels */
    struct ri_tunnel *t;
    uint32_t replaced, streams;
    char last[64];
};

void hw_replace_in(struct replace_ctx *c, struct ri_tunnel *list);
void hw_replace_run(void *arg);

struct adopt_ctx {
    struct hub_worker *hw;
    struct ri_tunnel *t;
};

/* t, detached from main, attached to the worker's loop and joined there */
void hw_adopt_run(void *arg);
/* On t's worker: t becomes (a lane of) its edge there. For the main loop's
 * own worker (not threaded), main has unlinked t from its list first. */
void hw_join(struct hub_worker *hw, struct ri_tunnel *t);

struct view_ctx {
    struct hub_worker *hw;
    struct ri_cycle *cy;        /* in: the current one (a reference); out: the old one */
    struct ri_edge_set *set;    /* the same */
    const struct sockaddr_storage *target;
    socklen_t target_len;
    const struct ri_tunnel_settings *ts; /* a reload's settings for live tunnels, or NULL */
};

void hw_view_run(void *arg);

/* What an edge's change does to its tunnels: on the main loop (handshakes,
 * tunnels on their way to a worker) and on each worker (runs there while
 * main waits). */
struct change_ctx {
    struct hub_worker *hw;
    enum ri_edge_change what;
    const char *id;
    const struct ri_edge_def *cur;
};

void hw_change_in(struct change_ctx *c, struct ri_tunnel **list);
void hw_change_run(void *arg);

/* What the control commands read of the live tunnels, gathered on the
 * main loop and on each worker (there, while main waits): per edge of the
 * current set, and the process's totals. */
struct edge_acc {
    uint64_t up, down, schedq, ctrlq;
    uint32_t active, tunnels, lanes;
    struct sockaddr_storage pub;
    json_t *tun; /* status: its connections */
};

struct acc_ctx {
    const struct ri_edge_set *set;
    struct edge_acc *acc;      /* set->n of them */
    struct hub_worker *hw;
    struct ri_counters sum;    /* the threaded workers' counters */
    uint64_t schedq, ctrlq;    /* all tunnels */
    json_t *streams;           /* the streams command: its array, else NULL */
};

void hw_acc_list(struct acc_ctx *c, const struct ri_tunnel *list);
void hw_acc_run(void *arg);

struct stop_ctx {
    struct hub_worker *hw;
    const char *why;
    int now;       /* 1: close at once; 0: GOAWAY, open streams finish */
};

void hw_stop_in(struct stop_ctx *c, struct ri_tunnel *list);
void hw_stop_run(void *arg);

/* ---- the worker's own ------------------------------------------------------------- */
/* A stream closed on this worker (an event-bus subscriber, arg: the
 * worker): its bytes join the edge's (hw->eb). */
void hw_count(void *arg, const struct ri_event *ev);
/* ri_wthread_start's at_start and at_stop (arg: the worker) */
void hw_thread_start(void *arg);
void hw_thread_stop(void *arg);

#endif
