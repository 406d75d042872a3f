/* edgeworker.h -- the edge's workers, between edge.c (the main loop) and
 * edgeworker.c (what runs on a worker's loop). Internal to the edge role.
 *
 * The cut is "which loop runs this". edge.c: the lanes and connecting, the
 * handshakes, the listeners and held clients, placement (pick_lane,
 * lane_open), moving a ready tunnel to its worker (handoff_cb), what main
 * does with a worker's messages (config_news_run, goaway_news_run, gone_run,
 * open_back_run), the control socket's commands, reloads, stopping,
 * handover, starting and stopping the workers. edgeworker.c: a moved
 * tunnel's hooks (CONFIG, GOAWAY, its close), the calls main makes on a
 * worker (ctrl, drain, adopt, update, gather), a client posted to a worker
 * (ew_open_run), the worker thread's start and end. ew_gather_list also runs
 * on main, over main's own tunnels: it lives in edgeworker.c with the
 * worker's use.
 *
 * edge.c calls into edgeworker.c; edgeworker.c never calls edge.c. Main
 * reaches a worker by a call (ri_mailbox_call on the worker's th.mb: fn runs
 * on the worker's loop while main waits; the ew_*_run functions below are
 * those fns, each with its ctx) and, for a new client, by a post
 * (ew_open_run). A worker reaches main only by posts, through the struct
 * edge_main that edge.c fills at start and every worker points at: main's
 * mailbox and event bus, and the functions main runs for a worker's
 * messages. Those messages are main's own records (struct away, struct
 * open_msg) or point at one (struct news), which name main's struct edge
 * and struct lane: opaque here, and the worker never follows them. */
#ifndef RI_EDGEWORKER_H
#define RI_EDGEWORKER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "frame.h"
#include "mailbox.h"
#include "mux.h"
#include "tunnel.h"
#include "worker.h"
#include "wthread.h"

struct edge; /* edge.c's: the main loop's state, opaque here */
struct lane; /* edge.c's: one of the edge's connections, opaque here */

/* The main loop as its workers reach it, filled by edge.c (start_workers).
 * A worker posts each message to mb with the function main runs for it
 * (which frees it), and forwards its events to bus. Unlike the hub's
 * struct hub_main it holds no pointer to main's state: every message
 * already carries one that main filled in (struct away's and open_msg's e). */
struct edge_main {
    struct ri_mailbox *mb;        /* main's mailbox */
    struct ri_event_bus *bus;     /* main's event bus: a worker's events go there */
    ri_mail_fn *config_news_run;  /* on main: a struct news with a CONFIG */
    ri_mail_fn *goaway_news_run;  /* on main: a struct news with a GOAWAY */
    ri_mail_fn *gone_run;         /* on main: a struct away whose tunnel ended */
    ri_mail_fn *open_back_run;    /* on main: a struct open_msg the worker could not take */
};

/* A worker loop on a thread of its own (loops 1..; the main loop is 0). */
struct edge_worker {
    const struct edge_main *main;
    int index;
    struct ri_wthread th;
    struct ri_worker own;
    struct ri_event_bus bus;      /* forwards every event to main */
    struct ri_event_fwd fwd;
    char who[32];                 /* "edge: worker 1", for lost events */
    struct ri_tunnel *tunnels;    /* the worker's: the tunnels it runs */
};

/* Main's record of a lane's tunnel on a worker, from its move to its end
 * (the `gone` message, allocated with it so it cannot be lost to a failed
 * malloc, frees it on main). Messages about the tunnel name it, and run
 * on main in the order the worker posted them, `gone` last. */
struct away {
    struct ri_mail mail;          /* gone */
    struct edge *e;
    struct edge_worker *ew;
    struct lane *l;               /* its lane (l->away == this: still the lane's current) */
    uint64_t tid;
    uint32_t caps;
    uint64_t connected_ns;
    char peer[64];
    char edge_id[RI_EDGE_ID_MAX + 1];
    struct ri_tunnel_pub pub;     /* the worker's figures for placement */
    uint32_t sent_opens;          /* main's: clients posted to it ... */
    _Atomic uint32_t took_opens;  /* ... and those the worker took in */
    struct away *prev, *next;     /* main's list */
    /* filled by the worker before it posts `gone` */
    unsigned code;
    uint32_t lost;
    char why[512];
};

/* ---- main -> a worker: calls (fn runs on the worker's loop while main waits) ----- */
/* A control frame (PORTS, ADDR) on tunnel tid, if it still serves (rc -1 if not). */
struct ctrl_ctx {
    struct edge_worker *ew;
    uint64_t tid;
    uint8_t type;
    const void *p;
    size_t n;
    int rc;
};

void ew_ctrl_run(void *arg);

/* Tunnel tid (or all the worker's) drains, or fails at once. */
struct drain_ctx {
    struct edge_worker *ew;
    uint64_t tid;    /* 0: every tunnel of the worker */
    unsigned code;
    const char *why;
    double secs;
    int now;         /* fail at once instead */
};

void ew_drain_run(void *arg);

/* t, detached from main, attached to the worker's loop and joined to the
 * edge's share there. */
struct adopt_ctx {
    struct edge_worker *ew;
    struct ri_tunnel *t;
    struct away *a;
    struct ri_mux_share *share;
    struct ri_mux_policy pol;
};

void ew_adopt_run(void *arg);

/* A reload's settings for the worker's tunnels. */
struct update_ctx {
    struct edge_worker *ew;
    const struct ri_tunnel_settings *ts;
};

void ew_update_run(void *arg);

/* What the commands read of the live tunnels: on the main loop, and on
 * each worker (there, while main waits). */
#define GATHER_TUNNELS 64 /* per-tunnel stream counts kept for `status` */
struct gather_ctx {
    struct edge_worker *ew;
    json_t *streams;            /* the streams command's array, else NULL */
    struct ri_counters sum;     /* every loop's counters */
    uint64_t schedq, ctrlq;
    uint32_t active;
    struct { uint64_t tid; uint32_t n; } per[GATHER_TUNNELS];
    size_t n_per;
};

void ew_gather_list(struct gather_ctx *g, const struct ri_tunnel *list);
void ew_gather_run(void *arg);

/* ---- main -> a worker: a post ------------------------------------------------------ */
/* A new client for a lane on a worker: its socket goes there. Should the
 * tunnel have stopped taking streams meanwhile, the client comes back to
 * main, which places it again (main has heard of that by then: the
 * worker's news arrive in order) or holds it. */
struct open_msg {
    struct edge *e;
    struct edge_worker *ew;
    uint64_t tid;
    int fd;
    uint16_t port;
    uint8_t returned; /* times it came back */
};

void ew_open_run(void *arg); /* the worker: the client's stream opens there, or goes back */

/* ---- worker -> main: posts (struct edge_main) --------------------------------------- */
/* What a worker's tunnel tells main: CONFIG and GOAWAY as they come, then
 * `gone` (struct away's own message) when it ended. */
struct news {
    struct away *a;
    unsigned code;
    uint32_t streams;
    char reason[RI_REASON_MAX + 1];
    struct ri_config_msg cfg;
};

/* ---- the worker's thread ------------------------------------------------------------ */
/* ri_wthread_start's at_start and at_stop (arg: the worker) */
void ew_thread_start(void *arg);
void ew_thread_stop(void *arg);

#endif
