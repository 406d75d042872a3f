/* events.h -- state changes as events. Whatever happens to an edge, a
 * tunnel, a stream or the configuration is emitted once, here; who wants to
 * know subscribes: the log (the first subscriber), per-edge counters, later
 * the control socket's event stream and the metrics. An emitter never knows
 * who listens. Control path only: the hot data path emits nothing (a stream
 * emits at open and close). */
#ifndef RI_EVENTS_H
#define RI_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct ri_addr;

enum ri_event_type {
    RI_EVT_EDGE_CONNECTED = 1,  /* hub: an edge authenticated */
    RI_EVT_EDGE_DISCONNECTED,   /* hub: its tunnel ended (code, reason, streams lost) */
    RI_EVT_EDGE_AUTH_FAILED,    /* hub: a handshake was refused (peer, edge id if sent) */
    RI_EVT_STREAM_OPENED,
    RI_EVT_STREAM_CLOSED,       /* bytes each way, duration, reset code if any */
    RI_EVT_PORTS_UPDATED,       /* hub: pushed to an edge; edge: assigned by the hub */
    RI_EVT_RELOAD_OK,
    RI_EVT_RELOAD_FAILED,
    RI_EVT_TUNNEL_CONNECTED,    /* edge: its tunnel to the hub is up */
    RI_EVT_TUNNEL_DISCONNECTED, /* edge: its tunnel ended */
    RI_EVT_STREAM_CLASSIFIED,   /* a stream changed class */
    RI_EVT_PUBLIC_IP_DISCOVERED, /* edge: STUN found a new public address; hub: an edge
                                  * reported one (ADDR) */
    RI_EVT_MAX_
};

#define RI_EVT_BIT(t) (1u << (t))
#define RI_EVT_ALL 0xffffffffu

struct ri_event {
    int type;
    int role;               /* enum ri_role of the emitting process */
    uint64_t wall_ns;       /* set by ri_event_emit (when 0): Unix time, ns */
    uint64_t tunnel_id;
    const char *edge_id;    /* "" when unknown */
    const char *peer;       /* the tunnel's remote address, as text */
    uint32_t stream_id;
    uint16_t port;          /* a stream's edge port */
    const struct ri_addr *client;
    const struct ri_addr *target; /* hub: a stream's upstream */
    const uint16_t *ports;  /* PORTS_UPDATED, EDGE_CONNECTED */
    size_t n_ports;
    uint64_t bytes_up;      /* client -> upstream */
    uint64_t bytes_down;    /* upstream -> client */
    double duration;        /* seconds */
    unsigned code;          /* conn code (edge/tunnel events) or RST code (streams; 0 = clean) */
    const char *reason;
    uint32_t klass;
    uint32_t count;         /* streams lost, edges in a reload, ... */
    const char *path;       /* RELOAD_*: the config file */
    const char *address;    /* PUBLIC_IP_DISCOVERED: the address, as text */
    const char *server;     /* PUBLIC_IP_DISCOVERED (edge): the STUN server that said so */
};

typedef void ri_event_cb(void *arg, const struct ri_event *ev);

struct ri_event_sub {
    ri_event_cb *cb;
    void *arg;
    uint32_t mask; /* RI_EVT_BIT of the types wanted */
    struct ri_event_sub *next;
};

struct ri_event_bus {
    struct ri_event_sub *subs;
};

void ri_event_bus_init(struct ri_event_bus *b);
void ri_event_bus_free(struct ri_event_bus *b);
struct ri_event_sub *ri_event_subscribe(struct ri_event_bus *b, uint32_t mask,
                                        ri_event_cb *cb, void *arg);
void ri_event_unsubscribe(struct ri_event_bus *b, struct ri_event_sub *s);
/* Delivers ev to every subscriber, in subscription order (b may be NULL). */
void ri_event_emit(struct ri_event_bus *b, struct ri_event *ev);
/* A copy of ev in one allocation (its texts, ports and addresses with it),
 * to hand to another thread; free() it. NULL when out of memory. */
struct ri_event *ri_event_dup(const struct ri_event *ev);
/* A worker thread's bus (core/ARCHITECTURE.md, "Workers"): subscribed
 * with RI_EVT_ALL and a struct ri_event_fwd, it hands every event to the
 * main loop (a copy, posted to mb), which emits it on `to`, where the log,
 * the counters, the control socket and the access log listen. */
struct ri_mailbox;
struct ri_event_fwd {
    struct ri_mailbox *mb;
    struct ri_event_bus *to;
    const char *who; /* for the line when a copy cannot be made: "hub: worker 2" */
};
void ri_event_forward(void *arg, const struct ri_event *ev);
/* "edgeConnected", ... (the names the control socket uses) */
const char *ri_event_name(int type);

/* The log as a subscriber: one line per event that has no other line. */
void ri_event_log(void *arg, const struct ri_event *ev);

#endif
