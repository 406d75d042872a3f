/* edge.c -- the edge role: a TLS tunnel out to the hub, reconnecting with
 * exponential backoff and jitter; listens on the ports the hub assigns
 * (through the listener plugin) and opens one stream per client.
 *
 * The public ports stay open while there is no tunnel: a client that
 * arrives then is held (accepted, nothing sent yet) for up to hold_secs
 * until a tunnel is ready, and only then reset. When the hub says it is
 * going away (GOAWAY: it stops or hands over to a new process), a new
 * tunnel is opened at once and takes the new streams while the old one
 * drains; `tunnels` lists them all.
 *
 * Lanes: with a hub that speaks them (capability bit 3), the edge keeps
 * several such connections (`lanes`), each connecting, authenticating and
 * reconnecting on its own; each lane's `t` is where its new streams go, and
 * a new client goes to the ready lane with the least data queued and in
 * flight (pick_lane). Ports belong to the edge: the listeners stay while
 * any lane is up, as they stay while there is none.
 *
 * Workers (core/ARCHITECTURE.md, "Workers"): `workers` event loops, the
 * first being the main loop itself; lane i's tunnel runs on loop
 * i mod workers. With one lane (the default on a LAN or loopback) nothing
 * moves; the lanes of a long link spread over the cores. The main loop
 * keeps the listeners, held clients, connecting and the handshakes, the
 * control socket, reloads and STUN; a lane's tunnel moves to its worker
 * once ready (as on the hub), and a new client's socket follows it there
 * (lane_open). Main and a worker talk by message only; what the lanes
 * write together -- the edge's stream count and in-flight cap -- is the
 * mux share, under its lock (mux.h).
 *
 * This file is what runs on the edge's MAIN loop: the lanes and connecting,
 * the handshakes, the listeners and held clients, placement, moving a ready
 * tunnel to its worker, what main does with a worker's messages, the
 * control socket's commands, reloads, stopping, handover, and starting and
 * stopping the workers. What runs on a worker's loop -- a moved tunnel's
 * hooks, the calls main makes there, a client posted there, the worker
 * thread's start and end -- is in edgeworker.c. This file calls into
 * edgeworker.c, never the other way round: a worker reaches the main loop
 * only through the struct edge_main that start_workers fills in here
 * (edgeworker.h). */
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.h"
#include "accesslog.h"
#include "api.h"
#include "clock.h"
#include "control.h"
#include "ctlinfo.h"
#include "cycle.h"
#include "edgeworker.h"
#include "events.h"
#include "fdpool.h"
#include "handover.h"
#include "log.h"
#include "netutil.h"
#include "ratelimit.h"
#include "resolve.h"
#include "role.h"
#include "stunc.h"
#include "tunnel.h"
#include "version.h"
#include "worker.h"
#include "wthread.h"

/* One of the edge's connections to the hub, with its own connect state,
 * backoff and current tunnel. */
struct lane {
    struct edge *e;
    unsigned idx;
    /* where this lane's new streams go: its tunnel on the main loop
     * (connecting .. ready, or all its life), or on a worker (away) */
    struct ri_tunnel *t;
    struct away *away;
    int cfd;                      /* TCP connect in progress */
    struct ri_resolve_req *rq;    /* hub_host being resolved */
    struct sockaddr_storage addrs[RI_RESOLVE_MAX]; /* the hub's addresses, tried in order */
    socklen_t addr_lens[RI_RESOLVE_MAX];
    int n_addrs, next_addr;
    ev_io cio;
    ev_timer ctimer, retry;
    double backoff;
    int refused;                  /* the hub refused it after the handshake (GOAWAY, too
                                   * many lanes): the close that follows backs off long */
    uint64_t addr_sent_tid;       /* the tunnel told of the public address */
};

struct edge {
    struct ev_loop *loop;
    struct ri_worker w;
    /* loops: 1 + the workers on threads (ew[0..n_loops-2]) */
    uint32_t n_loops;
    struct edge_worker *ew;
    struct ri_mailbox mb;         /* posts from the workers */
    struct edge_main main;        /* what the workers reach of this loop (edgeworker.h) */
    int mb_open;
    struct away *aways;           /* lanes' tunnels on workers, until gone */
    ev_timer handoff;             /* moves parked tunnels to their workers */
    struct ri_mux_share *share;   /* what every lane's mux counts together */
    struct ri_event_bus bus;
    struct ri_accesslog *alog; /* access_log, or NULL */
    struct ri_resolver *res;
    const struct ri_run_opts *opts;
    struct ri_cycle *cy;
    struct ri_tls_creds *creds;   /* for the next connection (hub_ca) */
    struct lane lanes[RI_LANES_LIMIT];
    struct ri_tunnel *tunnels;    /* the lanes' tunnels and those still draining */
    int configured;               /* a lane is ready and the edge has its ports (CONFIG) */
    int have_config;              /* a CONFIG arrived in this run (lanes: reused by a new lane) */
    uint64_t group;               /* lanes: this process run's group id */
    /* per hub (hub_host, then edge.hubs): it speaks lanes (its last lane up
     * said so) */
    int lanes_ok[RI_HUBS_MAX];
    unsigned auto_lanes;          /* lanes = auto: what the round trip asks for */
    uint64_t wmem_max;            /* net.ipv4.tcp_wmem's maximum: one lane's send buffer */
    struct ri_ratelimit rl_lane;  /* lanes lost and refused */
    struct ri_ratelimit rl_config; /* the hub's CONFIGs */
    ev_timer drain, relisten;
    ev_signal sig_term, sig_int, sig_hup;
    double relisten_backoff;
    uint64_t ports_reported_tid; /* the tunnel told of failed ports (report_ports) */
    int ports_reported_bad;
    int handed_over; /* a new process took the listening sockets */
    uint16_t ports[RI_CONFIG_PORTS_MAX];
    size_t n_ports;
    int listening;
    int stopping;
    /* clients accepted while no tunnel could take them, oldest first */
    struct held *held, **held_tail;
    uint32_t n_held;
    ev_timer hold_timer;
    struct ri_ratelimit rl_hold;
    struct ri_handover_srv *ho;   /* a later process takes our listeners over here */
    struct ri_ctl *ctl;           /* the control socket, or NULL */
    uint64_t started_ns;          /* monotonic */
    uint64_t tunnels_up, reconnects; /* tunnels that became ready; all but the first */
    uint64_t connect_failures;    /* the hub could not be reached (TCP) */
    uint64_t handshake_failures;  /* tunnels that closed before they were ready */
    char last_error[640];         /* why the last connection failed or ended */
    /* the public address STUN found (family 0: none yet), the tunnel told
     * of it, and the hub's interval (CONFIG) */
    struct ri_stunc *stun;
    struct sockaddr_storage public_addr;
    uint32_t stun_interval;
    int sd_ready; /* systemd was told READY=1 (the first ports are open) */
};

struct held {
    struct held *next;
    int fd;
    uint16_t port;
    ev_tstamp since;
};

static void connect_lane(struct lane *l);

/* A new group id (lanes): random per edge process run, and anew when the
 * edge's identity or hub changes on a reload. */
static int new_group(struct edge *e)
{
    return ri_core_api.random(&e->group, sizeof e->group) < 0 ? -1 : 0;
}

/* net.ipv4.tcp_wmem's maximum: what one connection's send buffer grows to
 * (4 MiB by default), so one lane's reach per round trip. */
static uint64_t read_wmem_max(void)
{
    unsigned long a, b, c;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
    int n = f ? fscanf(f, "%lu %lu %lu", &a, &b, &c) : 0;
    if (f)
        fclose(f);
    return n == 3 && c >= 65536 ? c : 4u << 20;
}

/* A lane's tunnel that streams may go to: ready here (and not on its way
 * to a worker), or on a worker (main hears when it goes away or drains). */
static int lane_up(const struct lane *l)
{
    if (l->away)
        return 1;
    return l->t && l->t->state == RI_T_READY && !l->t->draining && !l->t->closing &&
           !l->t->parked;
}

/* The loop lane l's tunnel runs on: NULL for the main loop. */
static struct edge_worker *lane_worker(const struct edge *e, const struct lane *l)
{
    uint32_t i = l->idx % e->n_loops;
    return i ? &e->ew[i - 1] : NULL;
}

static uint64_t lane_tid(const struct lane *l)
{
    return l->t ? l->t->id : l->away ? l->away->tid : 0;
}

static uint32_t lane_caps(const struct lane *l)
{
    return l->t ? l->t->mux.caps : l->away ? l->away->caps : 0;
}

/* Clients posted to a worker's lane that it has not taken in yet. The
 * worker publishes a client's stream before it counts it taken
 * (ew_open_run): read in the other order, a client is counted once or twice,
 * never not at all. */
static uint32_t in_post(const struct away *a)
{
    return a->sent_opens - atomic_load_explicit(&a->took_opens, memory_order_acquire);
}

static uint32_t lane_streams(const struct lane *l)
{
    if (l->t)
        return l->t->mux.n;
    if (!l->away)
        return 0;
    uint32_t posted = in_post(l->away);
    return atomic_load_explicit(&l->away->pub.streams, memory_order_relaxed) + posted;
}

static uint64_t lane_load(const struct lane *l)
{
    if (l->t)
        return ri_tunnel_load(l->t);
    if (!l->away)
        return 0;
    uint64_t posted = in_post(l->away);
    return atomic_load_explicit(&l->away->pub.load, memory_order_relaxed) + posted * 16384;
}

/* Any lane up (ready, not draining); the first such, or NULL. */
static struct lane *any_lane_up(struct edge *e)
{
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++)
        if (lane_up(&e->lanes[i]))
            return &e->lanes[i];
    return NULL;
}

static unsigned lanes_up(const struct edge *e)
{
    unsigned n = 0;
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++)
        n += lane_up(&e->lanes[i]);
    return n;
}

/* How many lanes the edge keeps now: `lanes`, or auto; one per hub at
 * least (config.c makes sure lanes_max allows it). */
static unsigned lanes_wanted(const struct edge *e)
{
    const struct ri_config *c = e->cy->cfg;
    unsigned n = c->lanes ? c->lanes : e->auto_lanes;
    n = n < 1 ? 1 : n > c->lanes_max ? c->lanes_max : n;
    return n < c->n_hubs ? (unsigned)c->n_hubs : n;
}

/* The hub lane l connects to: hub_host, then edge.hubs, round robin. */
static unsigned lane_hub(const struct lane *l) { return l->idx % l->e->cy->cfg->n_hubs; }

/* The first lane of each hub always connects; the others once that hub
 * said it speaks lanes. */
static int lane_wanted(const struct lane *l)
{
    const struct edge *e = l->e;
    return !e->stopping && l->idx < lanes_wanted(e) &&
           (l->idx < e->cy->cfg->n_hubs || e->lanes_ok[lane_hub(l)]);
}

static int any_hub_lanes(const struct edge *e)
{
    for (size_t i = 0; i < e->cy->cfg->n_hubs; i++)
        if (e->lanes_ok[i])
            return 1;
    return 0;
}

/* Placement: the ready lane with the least data queued and in flight --
 * our DATA the hub has not acknowledged, control frames and the batch not
 * yet written, and a record's worth per stream waiting for the in-flight
 * cap -- counted in 64 KiB steps, so that lanes near idle tie and the one
 * with the fewest streams wins. Round robin would give every Nth stream to
 * a lane stuck behind a slow window or a descheduled peer. */
static struct lane *pick_lane(struct edge *e)
{
    struct lane *best = NULL;
    uint64_t best_load = 0;
    uint32_t best_n = 0;
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
        struct lane *l = &e->lanes[i];
        if (!lane_up(l))
            continue;
        /* a lane on a worker: what it published after its last batch,
         * plus the clients on their way to it (ri_tunnel_load's record per
         * stream waiting) */
        uint64_t load = lane_load(l) >> 16;
        uint32_t n = lane_streams(l);
        if (!best || load < best_load || (load == best_load && n < best_n)) {
            best = l;
            best_load = load;
            best_n = n;
        }
    }
    return best;
}

static void emit(struct edge *e, struct ri_event *ev)
{
    ev->role = RI_ROLE_EDGE;
    ri_event_emit(&e->bus, ev);
}

static int lane_ctrl(struct edge *e, struct lane *l, uint8_t type, const void *p, size_t n);
static void lane_drop(struct edge *e, struct lane *l, unsigned code, const char *why, double secs);
static int lane_open(struct edge *e, struct lane *l, int fd, uint16_t port, unsigned returned);

/* ---- listeners --------------------------------------------------------------- */
static int listener_apply(struct edge *e, struct ri_inst *li, const char *bind_address,
                          const uint16_t *ports, size_t n, int quiet, char *err, size_t errlen)
{
    struct ri_listen_set set = {.size = sizeof set, .bind_address = bind_address,
                                .ports = ports, .n_ports = n,
                                .flags = e->handed_over ? RI_LISTEN_HANDED_OVER : 0};
    err[0] = '\0';
    int rc = ri_listen_apply(li, &set, err, errlen);
    if (rc < 0 && !quiet)
        log_err("edge: listener: %s", err[0] ? err : "some ports could not be opened");
    return rc;
}

/* A port that failed to open (in use, no privilege) is tried again with
 * backoff: 1 s doubling to 30 s, until it opens or is no longer assigned. */
static void schedule_relisten(struct edge *e)
{
    if (e->relisten_backoff < 1.0)
        e->relisten_backoff = 1.0;
    log_warn("edge: will retry the ports that failed in %.0f s", e->relisten_backoff);
    ev_timer_stop(e->loop, &e->relisten);
    ev_timer_set(&e->relisten, e->relisten_backoff, 0);
    ev_timer_start(e->loop, &e->relisten);
    e->relisten_backoff = e->relisten_backoff * 2 > 30 ? 30 : e->relisten_backoff * 2;
}

/* Tells the hub which of its ports this edge could not open, and why (a
 * PORTS frame), so its logs and status show it; again when that clears.
 * Quiet when nothing is wrong, or the hub or the listener cannot say. */
static void report_ports(struct edge *e, const uint16_t *ports, size_t n, const char *why)
{
    struct lane *l = any_lane_up(e); /* the edge's news: on one lane */
    if (!l || !(lane_caps(l) & RI_CAP_PORTS) || e->stopping)
        return;
    uint64_t tid = lane_tid(l);
    int was_bad = e->ports_reported_tid == tid && e->ports_reported_bad;
    uint16_t *open = malloc(2 * RI_CONFIG_PORTS_MAX * sizeof *open);
    uint8_t *buf = malloc(RI_PORTS_MAX);
    int k = open ? ri_listen_open_ports(e->cy->pl->listener, open, RI_CONFIG_PORTS_MAX) : -1;
    if (k >= 0 && buf) {
        uint16_t *failed = open + RI_CONFIG_PORTS_MAX;
        size_t nf = 0;
        for (size_t i = 0; i < n; i++) { /* ports is sorted */
            int have = 0;
            for (int j = 0; j < k && !have; j++)
                have = open[j] == ports[i];
            if (!have)
                failed[nf++] = ports[i];
        }
        if (nf || was_bad) {
            size_t len = ri_ports_encode(buf, RI_PORTS_MAX, failed, nf, nf ? why : "");
            if (len && lane_ctrl(e, l, RI_F_PORTS, buf, len) == 0) {
                e->ports_reported_tid = tid;
                e->ports_reported_bad = nf > 0;
            }
        }
    }
    free(open);
    free(buf);
}

static void apply_ports(struct edge *e, const uint16_t *ports, size_t n)
{
    char err[512];
    int rc = listener_apply(e, e->cy->pl->listener, e->cy->cfg->bind_address, ports, n, 0, err,
                            sizeof err);
    e->listening = n > 0;
    if (rc < 0 && n)
        schedule_relisten(e);
    else {
        ev_timer_stop(e->loop, &e->relisten);
        e->relisten_backoff = 0;
    }
    report_ports(e, ports, n, rc < 0 ? (err[0] ? err : "could not be opened") : "");
}

static void relisten_cb(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = w->data;
    if (e->listening && !e->stopping)
        apply_ports(e, e->ports, e->n_ports);
}

static void close_listeners(struct edge *e)
{
    ev_timer_stop(e->loop, &e->relisten);
    if (e->listening)
        apply_ports(e, NULL, 0);
}

/* After a refusal the hub will repeat (wrong secret, unknown id), the
 * backoff grows to this however low reconnect_max_secs is. */
#define REFUSED_BACKOFF_MAX 30.0

static void schedule_retry(struct lane *l, int refused)
{
    struct edge *e = l->e;
    if (!lane_wanted(l))
        return;
    const struct ri_config *c = e->cy->cfg;
    double max = refused && c->reconnect_max < REFUSED_BACKOFF_MAX ? REFUSED_BACKOFF_MAX
                                                                   : c->reconnect_max;
    if (l->backoff < c->reconnect_min)
        l->backoff = c->reconnect_min;
    /* jitter: 75-125% of the current step, so many edges (and lanes) do not
     * stampede */
    uint32_t r = 0;
    ri_core_api.random(&r, sizeof r);
    double delay = l->backoff * (0.75 + 0.5 * (r / 4294967296.0));
    if (delay > max)
        delay = max * (0.75 + 0.25 * (r / 4294967296.0));
    if (l->idx)
        log_info("edge: lane %u: reconnecting in %.1f s", l->idx, delay);
    else
        log_info("edge: reconnecting in %.1f s", delay);
    ev_timer_stop(e->loop, &l->retry);
    ev_timer_set(&l->retry, delay, 0);
    ev_timer_start(e->loop, &l->retry);
    l->backoff *= 2;
    if (l->backoff > max)
        l->backoff = max;
}

/* ---- tunnels and held clients ------------------------------------------------ */
/* A connection attempt of the lane is under way or scheduled. */
static int connecting(const struct lane *l)
{
    return l->t || l->away || l->cfd >= 0 || l->rq || ev_is_active(&l->retry);
}

static int port_assigned(const struct edge *e, uint16_t port)
{
    for (size_t i = 0; i < e->n_ports; i++)
        if (e->ports[i] == port)
            return 1;
    return 0;
}

static void arm_hold_timer(struct edge *e)
{
    ev_timer_stop(e->loop, &e->hold_timer);
    if (!e->held)
        return;
    double left = e->held->since + e->cy->cfg->hold_secs - ev_now(e->loop);
    ev_timer_set(&e->hold_timer, left > 0.001 ? left : 0.001, 0);
    ev_timer_start(e->loop, &e->hold_timer);
}

/* Resets the held clients that waited hold_secs (all of them with all). */
static void expire_held(struct edge *e, int all, const char *why)
{
    uint32_t n = 0;
    ev_tstamp now = ev_now(e->loop);
    while (e->held && (all || e->held->since + e->cy->cfg->hold_secs <= now + 0.0005)) {
        struct held *h = e->held;
        e->held = h->next;
        ri_close_abort(h->fd);
        free(h);
        e->n_held--;
        n++;
    }
    if (!e->held)
        e->held_tail = &e->held;
    if (n)
        ri_log_rl(&e->rl_hold, RI_LOG_WARN, "edge: reset %u client%s: %s", n, n == 1 ? "" : "s",
                  why);
    arm_hold_timer(e);
}

static void hold_cb(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = w->data;
    char why[96];
    snprintf(why, sizeof why, "no tunnel to the hub within hold_secs (%g s)",
             e->cy->cfg->hold_secs);
    expire_held(e, 0, why);
}

static void hold_client(struct edge *e, int fd, uint16_t port)
{
    const struct ri_config *c = e->cy->cfg;
    struct held *h = NULL;
    if (c->hold_secs <= 0 || e->n_held >= c->hold_max || !(h = malloc(sizeof *h))) {
        ri_log_rl(&e->rl_hold, RI_LOG_WARN, "edge: reset a client on port %u: no tunnel to the hub%s",
                  port, c->hold_secs <= 0 ? " (hold_secs = 0)"
                        : e->n_held >= c->hold_max ? " and hold_max clients already waiting" : "");
        ri_close_abort(fd);
        return;
    }
    h->fd = fd;
    h->port = port;
    h->since = ev_now(e->loop);
    h->next = NULL;
    *e->held_tail = h;
    e->held_tail = &h->next;
    if (e->n_held++ == 0) {
        log_info("edge: holding new clients until a tunnel to the hub is ready (up to %g s)",
                 c->hold_secs);
        arm_hold_timer(e);
    }
}

/* The tunnel is ready with its ports: the held clients go through it. */
static void release_held(struct edge *e)
{
    if (!e->held || !any_lane_up(e)) /* the lane ready is on its way to a worker */
        return;
    uint32_t n = 0, gone = 0;
    while (e->held) {
        struct held *h = e->held;
        e->held = h->next;
        e->n_held--;
        struct lane *l = port_assigned(e, h->port) ? pick_lane(e) : NULL;
        if (l) {
            lane_open(e, l, h->fd, h->port, 0);
            n++;
        } else {
            ri_close_abort(h->fd);
            gone++;
        }
        free(h);
    }
    e->held_tail = &e->held;
    ev_timer_stop(e->loop, &e->hold_timer);
    log_info("edge: %u held client%s sent through the new tunnel%s", n, n == 1 ? "" : "s",
             gone ? " (the rest were for ports no longer assigned: reset)" : "");
}

/* systemd (Type=notify): ready once the listeners for the hub's first
 * CONFIG are open (or taken over from the process before) */
static void sd_ready(struct edge *e)
{
    if (!e->sd_ready) {
        e->sd_ready = 1;
        ri_sd_notify("READY=1");
    }
}

/* ---- public address (STUN) --------------------------------------------------- */
/* Tells the hub (ADDR) the public address STUN found, once per tunnel and
 * again when it changes; only to a hub that understands ADDR. */
static void send_addr(struct edge *e)
{
    if (!e->public_addr.ss_family)
        return;
    uint8_t p[RI_ADDR_LEN];
    ri_pubaddr_encode(p, (struct sockaddr *)&e->public_addr);
    /* every lane: the hub keeps it per connection, for the PROXY header of
     * the streams on it */
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
        struct lane *l = &e->lanes[i];
        if (!lane_up(l) || !(lane_caps(l) & RI_CAP_ADDR) || l->addr_sent_tid == lane_tid(l))
            continue;
        if (lane_ctrl(e, l, RI_F_ADDR, p, sizeof p) == 0)
            l->addr_sent_tid = lane_tid(l);
    }
}

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return 0;
    if (b->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static void stun_found(void *arg, const struct sockaddr *a, const char *server)
{
    struct edge *e = arg;
    char ip[64];
    ri_ip_str(a, ip, sizeof ip);
    if (same_ip(&e->public_addr, a)) {
        log_debug("edge: STUN server %s: public address still %s", server, ip);
        return;
    }
    /* what the hub would refuse (unspecified, multicast) is no answer */
    uint8_t p[RI_ADDR_LEN];
    struct sockaddr_storage chk;
    char why[128];
    ri_pubaddr_encode(p, a);
    if (ri_pubaddr_decode(p, sizeof p, &chk, why, sizeof why) < 0) {
        log_warn("edge: STUN server %s: unusable answer %s: %s", server, ip, why);
        return;
    }
    /* the port the server saw is this UDP socket's mapping: only the
     * address says something about the edge's TCP listeners */
    memset(&e->public_addr, 0, sizeof e->public_addr);
    if (a->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&e->public_addr;
        *in = *(const struct sockaddr_in *)a;
        in->sin_port = 0;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&e->public_addr;
        *in6 = *(const struct sockaddr_in6 *)a;
        in6->sin6_port = 0;
    }
    struct ri_event ev = {.type = RI_EVT_PUBLIC_IP_DISCOVERED, .edge_id = e->cy->cfg->edge_id,
                          .peer = "", .address = ip, .server = server};
    emit(e, &ev);
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++)
        e->lanes[i].addr_sent_tid = 0;
    send_addr(e);
}

static void stun_apply(struct edge *e)
{
    const struct ri_config *c = e->cy->cfg;
    ri_stunc_set(e->stun, c->stun_servers, c->n_stun_servers, e->stun_interval);
}

/* ---- tunnel hooks ----------------------------------------------------------- */
static int edge_tls_up(struct ri_tunnel *t, char *err, size_t errlen)
{
    struct edge *e = t->owner;
    const struct ri_config *c = e->cy->cfg;
    const struct lane *l = t->role_data;
    return ri_tls_check_peer(t->io.s, t->creds, c->hub_fingerprint,
                             c->hubs_host[l ? lane_hub(l) : 0], err, errlen);
}

/* lanes = auto: one lane moves about 70 % of the send buffer's maximum
 * (net.ipv4.tcp_wmem) per round trip; enough lanes for 10 Gbit/s at the
 * round trip this lane's TCP measured, within lanes_max. On a LAN or
 * loopback that is one lane; at 50 ms, eight. */
#define AUTO_LANES_RATE (10e9 / 8) /* bytes/s the lanes should be able to carry */
static unsigned auto_lanes_for(const struct edge *e, int fd, double *rtt_ms)
{
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    memset(&ti, 0, sizeof ti);
    *rtt_ms = 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0 || !ti.tcpi_rtt)
        return 1;
    *rtt_ms = ti.tcpi_rtt / 1e3;
    double per_lane = 0.7 * (double)e->wmem_max / (ti.tcpi_rtt / 1e6); /* bytes/s */
    double n = AUTO_LANES_RATE / per_lane;
    unsigned max = e->cy->cfg->lanes_max;
    return n >= max ? max : n < 1 ? 1 : (unsigned)n + (n > (unsigned)n);
}

/* Connects the lanes that are wanted and idle; ends those no longer wanted
 * (fewer lanes after a reload, or a hub without lanes). */
static void cancel_connect(struct lane *l);
static void ensure_lanes(struct edge *e)
{
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
        struct lane *l = &e->lanes[i];
        if (lane_wanted(l)) {
            if (!connecting(l))
                connect_lane(l);
            continue;
        }
        if (e->stopping)
            continue;
        cancel_connect(l);
        ev_timer_stop(e->loop, &l->retry);
        lane_drop(e, l, RI_E_SHUTDOWN, "the edge keeps fewer lanes", e->cy->cfg->drain_timeout);
    }
}

static void lane_serving(struct edge *e, struct lane *l);

static void edge_ready(struct ri_tunnel *t)
{
    struct edge *e = t->owner;
    struct lane *l = t->role_data;
    if (e->tunnels_up++)
        e->reconnects++;
    l->backoff = 0;
    int lanes = (t->mux.caps & RI_CAP_LANES) != 0;
    if (!lanes && l->idx >= e->cy->cfg->n_hubs) {
        /* the hub does not speak lanes (any more): one connection it is */
        e->lanes_ok[lane_hub(l)] = 0;
        ri_log_rl(&e->rl_lane, RI_LOG_WARN, "edge: the hub does not speak lanes: using one "
                  "connection");
        l->t = NULL;
        ri_tunnel_goaway(t, RI_E_SHUTDOWN, "the hub does not speak lanes", 1);
        ensure_lanes(e);
        return;
    }
    struct ri_event ev = {.type = RI_EVT_TUNNEL_CONNECTED, .tunnel_id = t->id,
                          .edge_id = t->edge_id, .peer = t->peer};
    emit(e, &ev);
    if (!lanes) {
        e->lanes_ok[lane_hub(l)] = 0;
        e->configured = 0; /* a hub without lanes sends CONFIG on every connection */
    } else {
        e->lanes_ok[lane_hub(l)] = 1;
        if (!e->cy->cfg->lanes) {
            double rtt;
            unsigned n = auto_lanes_for(e, t->io.fd, &rtt);
            if (n > e->auto_lanes) {
                log_info("edge: round trip to the hub %.1f ms: %u lanes (lanes = auto, "
                         "lanes_max %u)", rtt, n, e->cy->cfg->lanes_max);
                e->auto_lanes = n;
            }
        }
    }
    if (lane_worker(e, l)) {
        /* its streams will live on its worker: none start here (lane_up
         * says no while it is parked); handoff_cb moves it */
        ri_tunnel_park(t);
        ev_timer_start(e->loop, &e->handoff);
        ensure_lanes(e);
        return;
    }
    /* the edge's lanes count their streams together (max_streams, the
     * window budget, the in-flight cap): they join one share */
    if (!ri_mux_join(&t->mux, e->share)) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
        return;
    }
    lane_serving(e, l);
}

/* Lane l's tunnel serves: ready on the main loop, or arrived on its
 * worker. A lane joining lanes that are up (or the first after a loss in
 * this run) serves with the ports the edge has; the hub sends CONFIG only
 * to the first lane of a group it did not know, and that follows at once
 * if so. */
static void lane_serving(struct edge *e, struct lane *l)
{
    if ((lane_caps(l) & RI_CAP_LANES) && e->have_config && !e->configured)
        e->configured = 1;
    if (e->configured)
        release_held(e);
    ensure_lanes(e);
    send_addr(e);
}

/* The hub assigns ports (CONFIG) on the lane's current tunnel tid; a
 * draining tunnel's news does not count (the current lanes' does). */
static void lane_config(struct edge *e, uint64_t tid, const char *edge_id, const char *peer,
                        int draining, const struct ri_config_msg *m)
{
    char list[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < m->n_ports && off < sizeof list - 16; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%u", i ? "," : "", m->ports[i]);
    if (m->n_ports * 6 > sizeof list - 16)
        snprintf(list + off, sizeof list - off, ",...");
    ri_log_rl(&e->rl_config, RI_LOG_INFO, "edge %s: hub assigns %u port%s: %s", edge_id,
              m->n_ports, m->n_ports == 1 ? "" : "s", m->n_ports ? list : "(none)");
    memcpy(e->ports, m->ports, m->n_ports * sizeof *m->ports);
    e->n_ports = m->n_ports;
    struct ri_event ev = {.type = RI_EVT_PORTS_UPDATED, .tunnel_id = tid, .edge_id = edge_id,
                          .peer = peer, .ports = e->ports, .n_ports = e->n_ports};
    emit(e, &ev);
    if (!draining && !e->stopping) {
        apply_ports(e, e->ports, e->n_ports);
        e->configured = 1;
        e->have_config = 1;
        sd_ready(e);
        release_held(e);
        e->stun_interval = m->stun_interval_secs; /* 0: the hub wants no STUN */
        stun_apply(e);
        send_addr(e);
    }
}

static void edge_config(struct ri_tunnel *t, const struct ri_config_msg *m)
{
    struct lane *l = t->role_data;
    if (l && t == l->t)
        lane_config(t->owner, t->id, t->edge_id, t->peer, t->draining, m);
}

/* A lane went away: without lanes up the edge waits for a CONFIG again. */
static void lane_gone(struct edge *e)
{
    if (!any_lane_up(e))
        e->configured = 0;
}

/* The hub will take no new streams on t. When it stops or hands over to a
 * new process, a new tunnel is opened at once (new clients are held until
 * it is ready) while t's streams finish. A newer connection with our id
 * (another edge process took over, or two edges share an id) is no reason
 * to hurry back. */
static int refused_for_good(unsigned code);
static void lose_ports(struct edge *e, unsigned code, const char *reason);

/* Lane l's current tunnel got GOAWAY (the caller took it off the lane). */
static void lane_goaway(struct edge *e, struct lane *l, const char *edge_id, unsigned code,
                        const char *reason, uint32_t streams)
{
    lane_gone(e);
    if (e->stopping)
        return;
    if (refused_for_good(code)) { /* removed from the hub's config, or re-keyed */
        if (!any_lane_up(e)) /* with several hubs, another may still vouch for us */
            lose_ports(e, code, reason);
        return; /* the close that follows schedules the retry: a quick one, whose
                 * handshake the hub refuses, and that backs off long */
    }
    /* Too many lanes: the hub accepts the handshake and refuses after it,
     * every time. edge_ready reset the backoff when the lane came up and
     * the close that follows is a plain EOF: without the flag such a lane
     * would come back four times a second. It retries after the long one. */
    if (code == RI_E_LANES) {
        l->refused = 1;
        l->backoff = REFUSED_BACKOFF_MAX;
        ri_log_rl(&e->rl_lane, RI_LOG_WARN, "edge %s: the hub refused lane %u (%s): trying "
                  "it again later", edge_id, l->idx, reason);
        return;
    }
    if (code == RI_E_REPLACED) {
        ri_log_rl(&e->rl_lane, RI_LOG_WARN,
                  "edge %s: another connection with this edge id replaced ours (%s)",
                  edge_id, reason);
        schedule_retry(l, 0);
        return;
    }
    log_info("edge %s: the hub is going away (%s): opening a new tunnel now; %u open "
             "stream%s finish on the old one", edge_id, reason, streams,
             streams == 1 ? "" : "s");
    l->backoff = 0;
    connect_lane(l);
}

static void edge_goaway(struct ri_tunnel *t, unsigned code, const char *reason)
{
    struct lane *l = t->role_data;
    if (code == RI_E_NONE || !l || t != l->t)
        return;
    l->t = NULL;
    lane_goaway(t->owner, l, t->edge_id, code, reason, t->mux.n);
}

/* Refusals that another try in a second will not fix: back off further. */
static int refused_for_good(unsigned code)
{
    return code == RI_E_AUTH || code == RI_E_UNKNOWN_EDGE || code == RI_E_REMOVED ||
           code == RI_E_AUTH_METHOD || code == RI_E_VERSION;
}

/* The hub no longer vouches for us (it refused or removed this edge): its
 * ports close and held clients go, rather than waiting on a tunnel that
 * will not come. A later successful handshake opens what the hub assigns. */
static void lose_ports(struct edge *e, unsigned code, const char *reason)
{
    e->have_config = 0;
    if (!e->listening && !e->held)
        return;
    char why[RI_REASON_MAX + 64];
    log_warn("edge: the hub refused this edge (%s): closing its public ports",
             ri_code_reason(why, sizeof why, ri_conn_code_str(code), reason));
    e->n_ports = 0;
    close_listeners(e);
    expire_held(e, 1, "the hub refused this edge");
}

static void maybe_stopped(struct edge *e)
{
    if (e->stopping && !e->tunnels && !e->aways)
        ev_break(e->loop, EVBREAK_ALL);
}

/* A tunnel of lane l ended (current: it was the lane's, and the caller
 * took it off). */
struct ended {
    uint64_t tid;
    const char *edge_id, *peer, *why;
    unsigned code;
    uint32_t lost;
    int was_ready;
};

static void lane_closed(struct edge *e, struct lane *l, int current, const struct ended *x)
{
    unsigned code = x->code;
    const char *why = x->why;
    uint32_t lost = x->lost;
    if (current)
        lane_gone(e);
    if (why && why[0] && code != RI_E_NONE)
        snprintf(e->last_error, sizeof e->last_error, "%s", why);
    if (x->was_ready) {
        struct ri_event ev = {.type = RI_EVT_TUNNEL_DISCONNECTED, .tunnel_id = x->tid,
                              .edge_id = x->edge_id, .peer = x->peer, .code = code,
                              .reason = why, .count = lost};
        emit(e, &ev);
        if (current && lanes_wanted(e) > 1 && !e->stopping)
            ri_log_rl(&e->rl_lane, RI_LOG_WARN, "edge: lane %u lost (%s): %u stream%s on it "
                      "reset, %u other lane%s up", l->idx, why && why[0] ? why : "closed",
                      lost, lost == 1 ? "" : "s", lanes_up(e), lanes_up(e) == 1 ? "" : "s");
    }
    if (current && refused_for_good(code) && !any_lane_up(e))
        lose_ports(e, code, why);
    if (e->stopping) {
        maybe_stopped(e);
    } else if (l && !connecting(l)) {
        schedule_retry(l, refused_for_good(code) || code == RI_E_LANES || l->refused);
        l->refused = 0;
    }
}

static void edge_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct edge *e = t->owner;
    struct lane *l = t->role_data;
    ri_tunnel_list_unlink(&e->tunnels, t);
    if (!t->was_ready && !e->stopping)
        e->handshake_failures++;
    int current = l && t == l->t;
    if (current)
        l->t = NULL;
    struct ended x = {.tid = t->id, .edge_id = t->edge_id, .peer = t->peer, .why = why,
                      .code = code, .lost = lost, .was_ready = t->was_ready};
    lane_closed(e, l, current, &x);
}

static const struct ri_tunnel_hooks edge_hooks = {
    .tls_up = edge_tls_up,
    .ready = edge_ready,
    .config = edge_config,
    .goaway = edge_goaway,
    .closed = edge_closed,
};

/* ---- the workers: main's side (theirs: edgeworker.c) ---------------------------- */
/* Main reaches a worker by a call (fn runs there while main waits) for
 * what is rare -- a control frame, a drain, a reload, the control
 * socket's reads -- and by a post for a new client; a worker reaches main
 * only by posts (struct edge_main), so no two threads ever wait on each
 * other. */

/* A control frame (PORTS, ADDR) on lane l's tunnel, wherever it runs. */
static int lane_ctrl(struct edge *e, struct lane *l, uint8_t type, const void *p, size_t n)
{
    if (l->t)
        return ri_tunnel_ctrl(l->t, type, 0, p, n);
    if (!l->away)
        return -1;
    struct ctrl_ctx c = {.ew = l->away->ew, .tid = l->away->tid, .type = type, .p = p, .n = n};
    ri_mailbox_call(&c.ew->th.mb, ew_ctrl_run, &c);
    return c.rc;
}

/* Lane l stops taking streams: its tunnel drains (its streams finish) and
 * closes; the lane is free to connect again. */
static void lane_drop(struct edge *e, struct lane *l, unsigned code, const char *why, double secs)
{
    if (l->t) {
        struct ri_tunnel *t = l->t;
        l->t = NULL;
        ri_tunnel_drain(t, code, why, secs);
    } else if (l->away) {
        struct drain_ctx c = {.ew = l->away->ew, .tid = l->away->tid, .code = code, .why = why,
                              .secs = secs};
        l->away = NULL;
        ri_mailbox_call(&c.ew->th.mb, ew_drain_run, &c);
    }
}

/* Every tunnel on every worker drains (or fails, now). */
static void drain_workers(struct edge *e, unsigned code, const char *why, double secs, int now)
{
    for (uint32_t i = 0; i + 1 < e->n_loops; i++) {
        struct drain_ctx c = {.ew = &e->ew[i], .code = code, .why = why, .secs = secs,
                              .now = now};
        ri_mailbox_call(&c.ew->th.mb, ew_drain_run, &c);
    }
}

static void place_client(struct edge *e, int fd, uint16_t port, unsigned returned);

static void open_back_run(void *arg) /* main */
{
    struct open_msg *o = arg;
    place_client(o->e, o->fd, o->port, o->returned + 1u);
    free(o);
}

/* returned: times the client came back from a worker already */
static int lane_open(struct edge *e, struct lane *l, int fd, uint16_t port, unsigned returned)
{
    if (l->t)
        return ri_mux_open_local(&l->t->mux, fd, port);
    struct open_msg *o = malloc(sizeof *o);
    if (o) {
        *o = (struct open_msg){.e = e, .ew = l->away->ew, .tid = l->away->tid, .fd = fd,
                               .port = port, .returned = (uint8_t)returned};
        if (ri_mailbox_post(&o->ew->th.mb, ew_open_run, o) == 0) {
            l->away->sent_opens++;
            return 0;
        }
        free(o);
    }
    ri_log_rl(&e->rl_hold, RI_LOG_WARN, "edge: reset a client on port %u: out of memory", port);
    e->w.ctr.streams_refused++;
    ri_close_abort(fd);
    return -1;
}

static void config_news_run(void *arg) /* main */
{
    struct news *n = arg;
    struct away *a = n->a;
    if (a->l->away == a)
        lane_config(a->e, a->tid, a->edge_id, a->peer, 0, &n->cfg);
    free(n);
}

static void goaway_news_run(void *arg) /* main */
{
    struct news *n = arg;
    struct away *a = n->a;
    if (a->l->away == a) {
        a->l->away = NULL;
        lane_goaway(a->e, a->l, a->edge_id, n->code, n->reason, n->streams);
    }
    free(n);
}

static void gone_run(void *arg) /* main */
{
    struct away *a = arg;
    struct edge *e = a->e;
    int current = a->l->away == a;
    if (current)
        a->l->away = NULL;
    if (a->prev)
        a->prev->next = a->next;
    else
        e->aways = a->next;
    if (a->next)
        a->next->prev = a->prev;
    struct ended x = {.tid = a->tid, .edge_id = a->edge_id, .peer = a->peer, .why = a->why,
                      .code = a->code, .lost = a->lost, .was_ready = 1};
    lane_closed(e, a->l, current, &x);
    free(a);
}

/* Moves the parked tunnels to their lanes' workers. */
static void handoff_cb(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = w->data;
    /* from the head after each: what a move sets off (ensure_lanes dropping
     * a lane) may unlink any tunnel; each pass leaves one fewer parked */
again:
    for (struct ri_tunnel *t = e->tunnels; t; t = t->next) {
        struct lane *l = t->role_data;
        if (!t->parked || !l)
            continue;
        if (l->t != t || t->state != RI_T_READY || t->closing || t->draining) {
            ri_tunnel_unpark(t); /* ending already: it ends here */
            goto again;
        }
        struct away *a = calloc(1, sizeof *a);
        if (!a || ri_tunnel_detach(t) < 0) {
            free(a);
            ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory moving it to a worker");
            goto again;
        }
        ri_tunnel_list_unlink(&e->tunnels, t);
        a->e = e;
        a->ew = lane_worker(e, l);
        a->l = l;
        a->tid = t->id;
        a->caps = t->mux.caps;
        a->connected_ns = t->connected_ns;
        snprintf(a->peer, sizeof a->peer, "%s", t->peer);
        snprintf(a->edge_id, sizeof a->edge_id, "%s", t->edge_id);
        a->next = e->aways;
        if (e->aways)
            e->aways->prev = a;
        e->aways = a;
        l->t = NULL;
        l->away = a;
        struct adopt_ctx c = {.ew = a->ew, .t = t, .a = a, .share = e->share,
                              .pol = ri_cycle_policy(e->cy)};
        ri_mailbox_call(&c.ew->th.mb, ew_adopt_run, &c);
        /* on its worker now (or ending there: its gone message follows) */
        lane_serving(e, l);
        goto again;
    }
}

static int edge_accept(void *arg, int fd, uint16_t port)
{
    struct edge *e = arg;
    if (e->stopping) {
        ri_close_abort(fd);
        return -1;
    }
    /* near the open-file limit: one warning; at it, the client gets a reset
     * and the last descriptors stay free for the edge itself */
    if (ri_worker_fd_room(&e->w, fd, "edge", "clients") < 0) {
        e->w.ctr.streams_refused++;
        ri_close_abort(fd);
        return -1;
    }
    place_client(e, fd, port, 0);
    return 0;
}

/* A client goes to the lane best able to take it, or waits for one. One
 * that came back from a worker (its lane stopped taking streams meanwhile)
 * is placed again; a third time it waits with the held ones. */
static void place_client(struct edge *e, int fd, uint16_t port, unsigned returned)
{
    if (e->stopping || (returned && !port_assigned(e, port))) {
        if (!e->stopping)
            ri_log_rl(&e->rl_hold, RI_LOG_WARN, "edge: reset a client on port %u: the port "
                      "was unassigned while it was on its way to a lane", port);
        ri_close_abort(fd);
        return;
    }
    struct lane *l = e->configured && returned < 3 ? pick_lane(e) : NULL;
    if (!l)
        hold_client(e, fd, port);
    else
        lane_open(e, l, fd, port, returned);
}

static json_t *edge_query(void *arg, json_t *req);

/* Hooks an edge's per-config instances to it: where the listener's
 * connections go, what a service plugin's api->query runs. */
static void set_listener_hook(struct edge *e, struct ri_cycle *cy)
{
    cy->pl->listener->accept = edge_accept;
    cy->pl->listener->accept_arg = e;
    if (cy->pl->service) {
        cy->pl->service->query = edge_query;
        cy->pl->service->query_arg = e;
    }
}

/* ---- connecting ------------------------------------------------------------- */
/* Drops a lane's connection attempt in progress: the name lookup and the
 * socket. */
static void cancel_connect(struct lane *l)
{
    struct edge *e = l->e;
    ri_resolve_cancel(l->rq);
    l->rq = NULL;
    ev_io_stop(e->loop, &l->cio);
    ev_timer_stop(e->loop, &l->ctimer);
    if (l->cfd >= 0)
        close(l->cfd);
    l->cfd = -1;
}

static void connect_failed(struct lane *l, const char *why)
{
    struct edge *e = l->e;
    const struct ri_config *c = e->cy->cfg;
    char hp[300];
    e->connect_failures++;
    ri_hostport_str(c->hubs_host[lane_hub(l)], c->hubs_port[lane_hub(l)], hp, sizeof hp);
    if (l->idx)
        ri_log_rl(&e->rl_lane, RI_LOG_WARN, "edge: lane %u: cannot reach hub %s: %s", l->idx,
                  hp, why);
    else
        log_warn("edge: cannot reach hub %s: %s", hp, why);
    snprintf(e->last_error, sizeof e->last_error, "cannot reach hub %s: %s", hp, why);
    cancel_connect(l);
    schedule_retry(l, 0);
}

static void tcp_connected(struct lane *l)
{
    struct edge *e = l->e;
    ev_io_stop(e->loop, &l->cio);
    ev_timer_stop(e->loop, &l->ctimer);
    int fd = l->cfd;
    l->cfd = -1;
    const struct ri_config *c = e->cy->cfg;
    char peer[300];
    const char *host = c->hubs_host[lane_hub(l)];
    ri_hostport_str(host, c->hubs_port[lane_hub(l)], peer, sizeof peer);
    struct ri_tunnel_params p = {
        .role = RI_ROLE_EDGE, .fd = fd, .peer = peer, .w = &e->w, .api = &ri_core_api,
        .creds = e->creds, .sni = ri_is_numeric_ip(host) ? NULL : host,
        .auth = e->cy->pl->auth, .policy = ri_cycle_policy(e->cy), .max_streams = c->max_streams,
        .ping_interval = c->ping_interval, .ping_timeout = c->ping_timeout,
        .handshake_timeout = 10.0, .edge_id = c->edge_id, .secret = c->secret,
        .group = e->group, .lane = (uint8_t)l->idx,
        .caps_off = c->offer_lanes ? 0 : RI_CAP_LANES, .hooks = &edge_hooks, .owner = e,
        /* a lane for a worker gets its scheduler and classifier there */
        .defer_policy = lane_worker(e, l) != NULL};
    l->t = ri_tunnel_new(&p);
    if (l->t) {
        l->t->role_data = l;
        ri_tunnel_list_push(&e->tunnels, l->t);
    } else {
        schedule_retry(l, 0);
    }
}

static void try_next_addr(struct lane *l, const char *why);

static void cio_cb(EV_P_ ev_io *w, int revents)
{
    struct lane *l = w->data;
    int err = ri_connect_error(l->cfd);
    if (err)
        try_next_addr(l, strerror(err));
    else
        tcp_connected(l);
}

static void ctimer_cb(EV_P_ ev_timer *w, int revents)
{
    try_next_addr(w->data, "connect timed out");
}

/* A host name may resolve to several addresses (IPv6 and IPv4, say): try
 * each in turn before backing off, so one unreachable family is no outage. */
static void try_next_addr(struct lane *l, const char *why)
{
    struct edge *e = l->e;
    ev_io_stop(e->loop, &l->cio);
    ev_timer_stop(e->loop, &l->ctimer);
    if (l->cfd >= 0) {
        char a[64];
        log_info("edge: hub address %s: %s",
                 ri_addr_str((struct sockaddr *)&l->addrs[l->next_addr - 1], a, sizeof a), why);
        close(l->cfd);
        l->cfd = -1;
    }
    while (l->next_addr < l->n_addrs) {
        const struct sockaddr_storage *ss = &l->addrs[l->next_addr];
        socklen_t sl = l->addr_lens[l->next_addr++];
        l->cfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (l->cfd < 0) {
            why = strerror(errno);
            continue;
        }
        if (connect(l->cfd, (const struct sockaddr *)ss, sl) == 0) {
            tcp_connected(l);
            return;
        }
        if (errno == EINPROGRESS) {
            ev_io_set(&l->cio, l->cfd, EV_WRITE);
            ev_io_start(e->loop, &l->cio);
            ev_timer_set(&l->ctimer, 10.0, 0);
            ev_timer_start(e->loop, &l->ctimer);
            return;
        }
        why = strerror(errno);
        close(l->cfd);
        l->cfd = -1;
    }
    connect_failed(l, why);
}

static void resolved(void *arg, const struct sockaddr_storage *a, const socklen_t *len, int n,
                     const char *err)
{
    struct lane *l = arg;
    l->rq = NULL;
    if (n <= 0) {
        connect_failed(l, err);
        return;
    }
    /* A name with several addresses (DNS round robin over several hubs, or
     * one hub's IPv6 and IPv4) spreads the lanes: a hub's k-th lane starts
     * at its k-th address and tries the others after it, so hubs behind one
     * name each get lanes, and an unreachable address costs a lane only
     * its first try. */
    int first = (int)((l->idx / l->e->cy->cfg->n_hubs) % (unsigned)n);
    for (int k = 0; k < n; k++) {
        l->addrs[k] = a[(first + k) % n];
        l->addr_lens[k] = len[(first + k) % n];
    }
    l->n_addrs = n;
    l->next_addr = 0;
    try_next_addr(l, "no address");
}

static void retry_cb(EV_P_ ev_timer *w, int revents)
{
    struct lane *l = w->data;
    if (lane_wanted(l))
        connect_lane(l);
}

static void connect_lane(struct lane *l)
{
    struct edge *e = l->e;
    const struct ri_config *c = e->cy->cfg;
    ev_timer_stop(e->loop, &l->retry);
    if (l->cfd >= 0 || l->rq)
        return; /* under way */
    /* the name is resolved off the loop: open streams never wait for DNS */
    if (!(l->rq = ri_resolve_async(e->res, c->hubs_host[lane_hub(l)], c->hubs_port[lane_hub(l)],
                                   resolved, l)))
        connect_failed(l, "cannot start resolving the hub's name");
}

int ri_edge_check(const struct ri_config *c, struct ri_errs *errs)
{
    size_t before = errs->n;
    char err[700] = "";
    struct sockaddr_storage ss;
    socklen_t sl;
    /* An error here, though the running edge only retries until the name
     * resolves: -t is where an operator learns of a typo in it. */
    if (ri_resolve(c->hub_host, c->hub_port, &ss, &sl, err, sizeof err) < 0)
        ri_errs_add(errs, c->path, c->hub_host_line,
                    "hub_host: %s (a running edge would keep retrying until it resolves)", err);
    for (size_t i = 1; i < c->n_hubs; i++)
        if (ri_resolve(c->hubs_host[i], c->hubs_port[i], &ss, &sl, err, sizeof err) < 0)
            ri_errs_add(errs, c->path, c->hub_host_line,
                        "hubs: %s: %s (a running edge would keep retrying until it resolves)",
                        c->hubs_host[i], err);
    struct ri_tls_creds *creds = ri_tls_client_creds(c->hub_ca, err, sizeof err);
    if (!creds)
        ri_errs_add(errs, c->path, c->hub_ca_line, "hub_ca: %s", err);
    ri_tls_creds_unref(creds);
    return errs->n > before ? -1 : 0;
}

/* ---- reload and shutdown ---------------------------------------------------- */
/* NULL when the new config is in force (what: the changes), else the
 * errors (FILE:LINE: message), as a JSON array of strings. */
static json_t *edge_reload(struct edge *e, char *what_out, size_t what_cap)
{
    struct ri_errs errs = {0};
    ri_sd_notify("RELOADING=1"); /* READY=1 follows the outcome (ri_sd_notify_event) */
    log_info("edge: %s: reloading %s", what_out ? "control socket" : "SIGHUP",
             e->opts->config_path);
    struct ri_cycle *ncy = ri_cycle_load(e->opts->config_path, e->loop, &ri_core_api, &errs);
    char err[700] = "";
    struct ri_tls_creds *creds = NULL;
    /* hub_ca is read on every reload, renewed or not; one that does not
     * load refuses the whole reload (the running config and CA stay) */
    if (ncy && ncy->cfg->role == RI_ROLE_EDGE &&
        !(creds = ri_tls_client_creds(ncy->cfg->hub_ca, err, sizeof err)))
        ri_errs_add(&errs, ncy->cfg->path, ncy->cfg->hub_ca_line, "hub_ca: %s", err);
    if (!ncy || ncy->cfg->role != RI_ROLE_EDGE || !creds) {
        json_t *lines = json_array();
        for (size_t i = 0; i < errs.n; i++) {
            log_err("reload: %s", errs.lines[i]);
            json_array_append_new(lines, json_string(errs.lines[i]));
        }
        const char *why = ncy && ncy->cfg->role != RI_ROLE_EDGE
                              ? "the new config is not an edge config" : "";
        if (why[0] || !json_array_size(lines))
            json_array_append_new(lines, json_string(why[0] ? why : "reload failed"));
        struct ri_event ev = {.type = RI_EVT_RELOAD_FAILED, .path = e->opts->config_path,
                              .reason = why};
        emit(e, &ev);
        ri_errs_free(&errs);
        ri_cycle_unref(ncy);
        ri_tls_creds_unref(creds);
        return lines;
    }
    ri_errs_free(&errs);
    const struct ri_config *oc = e->cy->cfg, *nc = ncy->cfg;
    /* A renewed CA file at the same path: the next connection is verified
     * against it; the tunnel up now, verified when it was made, stays (so a
     * CA replaced on the edge before the hub's certificate does not cut
     * the edge off). */
    if (nc->hub_ca && !ri_str_differs(oc->hub_ca, nc->hub_ca) &&
        strcmp(e->creds->fingerprint, creds->fingerprint) != 0)
        log_info("edge: hub_ca %s changed (%u certificate%s): the next connection to the hub "
                 "is verified against it", nc->hub_ca, creds->n_ca, creds->n_ca == 1 ? "" : "s");
    int hubs_changed = oc->n_hubs != nc->n_hubs;
    for (size_t i = 1; !hubs_changed && i < nc->n_hubs; i++)
        hubs_changed = strcmp(oc->hubs_host[i], nc->hubs_host[i]) != 0 ||
                       oc->hubs_port[i] != nc->hubs_port[i];
    int reconnect = hubs_changed ||
                    ri_str_differs(oc->hub_host, nc->hub_host) || oc->hub_port != nc->hub_port ||
                    ri_str_differs(oc->edge_id, nc->edge_id) || ri_str_differs(oc->secret, nc->secret) ||
                    ri_str_differs(oc->hub_fingerprint, nc->hub_fingerprint) ||
                    ri_str_differs(oc->hub_ca, nc->hub_ca) ||
                    !ri_cycle_same_module(e->cy, ncy, RI_KIND_AUTH);
    if (ri_str_differs(oc->control_socket, nc->control_socket) ||
        oc->control_socket_mode != nc->control_socket_mode)
        log_warn("edge: reload: control_socket changed: takes effect on restart");
    if (oc->workers != nc->workers)
        log_warn("edge: reload: 'workers' changed: takes effect on restart (%u running)",
                 e->n_loops);
    int swap = ri_cycle_policy_changed(e->cy, ncy);
    char changes[400], what[420] = "";
    ri_cycle_describe_changes(e->cy, ncy, changes, sizeof changes);
    if (changes[0])
        snprintf(what, sizeof what, " (%s)", changes + 2);
    /* The listening sockets belong to the old cycle's listener instance.
     * The new instance takes them over without closing them (duplicated
     * through a pool, claimed with api->listen_fd): no client in their
     * queues is reset and no SYN finds a port closed. The old instance
     * closes its copies when the old cycle goes. */
    set_listener_hook(e, ncy);
    struct ri_cycle *old = e->cy;
    struct ri_fdpool pool = {0};
    if (e->listening)
        ri_listen_export(old->pl->listener, &pool);
    e->cy = ncy;
    ri_tls_creds_unref(e->creds);
    e->creds = creds;
    ri_log_level = e->opts->debug ? RI_LOG_DEBUG : nc->log_level;
    ri_log_json = nc->log_json;
    char aerr[400];
    if (ri_accesslog_apply(&e->alog, &e->bus, nc->access_log, aerr, sizeof aerr) < 0)
        log_err("edge: reload: %s: access lines keep going where they went", aerr);
    stun_apply(e); /* new servers: asked at once */
    if (e->listening) {
        ncy->pl->listener->fds = &pool;
        apply_ports(e, e->ports, e->n_ports);
        ncy->pl->listener->fds = NULL;
    }
    ri_fdpool_free(&pool); /* duplicates of sockets the new instance did not take */
    struct ri_tunnel_settings ts = {.ping_interval = nc->ping_interval,
                                    .ping_timeout = nc->ping_timeout,
                                    .max_streams = nc->max_streams, .swap_policy = swap,
                                    .policy = ri_cycle_policy(ncy)};
    for (struct ri_tunnel *t = e->tunnels; t; t = t->next)
        ri_tunnel_update(t, &ts);
    for (uint32_t i = 0; i + 1 < e->n_loops; i++) {
        struct update_ctx u = {.ew = &e->ew[i], .ts = &ts};
        ri_mailbox_call(&u.ew->th.mb, ew_update_run, &u);
    }
    ri_cycle_unref(old);
    struct ri_event ev = {.type = RI_EVT_RELOAD_OK, .path = e->opts->config_path,
                          .reason = what};
    emit(e, &ev);
    if (reconnect) {
        /* a new tunnel with the new settings; open streams finish on the old */
        log_info("edge: hub connection settings changed: connecting again");
        /* a new group: the hub replaces the old lanes whole, and they drain */
        new_group(e);
        e->configured = 0;
        e->have_config = 0;
        memset(e->lanes_ok, 0, sizeof e->lanes_ok);
        for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
            struct lane *l = &e->lanes[i];
            l->backoff = 0;
            lane_drop(e, l, RI_E_SHUTDOWN, "edge config changed", nc->drain_timeout);
            cancel_connect(l);
            ev_timer_stop(e->loop, &l->retry);
        }
    }
    ensure_lanes(e); /* lanes or lanes_max may have changed too */
    if (what_out)
        snprintf(what_out, what_cap, "%s", what);
    return NULL;
}

/* ---- the control socket's commands ------------------------------------------------ */
/* What the commands read of the live tunnels (struct gather_ctx,
 * edgeworker.h): main's here, each worker's by a call. */
static void gather(struct edge *e, struct gather_ctx *g, json_t *streams)
{
    memset(g, 0, sizeof *g);
    g->streams = streams;
    ri_counters_add(&g->sum, &e->w.ctr);
    ew_gather_list(g, e->tunnels);
    for (uint32_t i = 0; i + 1 < e->n_loops; i++) {
        g->ew = &e->ew[i];
        ri_mailbox_call(&g->ew->th.mb, ew_gather_run, g);
    }
}

/* Open streams of lane l's tunnel, as gathered. */
static uint32_t gathered_streams(const struct gather_ctx *g, const struct lane *l)
{
    uint64_t tid = lane_tid(l);
    for (size_t i = 0; tid && i < g->n_per; i++)
        if (g->per[i].tid == tid)
            return g->per[i].n;
    return 0;
}

static json_t *edge_cmd_status(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct edge *e = arg;
    const struct ri_config *c = e->cy->cfg;
    char hp[300], ts[40];
    ri_ctlinfo_mono_time(e->started_ns, ts, sizeof ts);
    json_t *ports = json_array();
    for (size_t i = 0; ports && i < e->n_ports; i++)
        json_array_append_new(ports, json_integer(e->ports[i]));
    struct gather_ctx *g = malloc(sizeof *g);
    if (!g) {
        json_decref(ports);
        return ri_ctl_error("out of memory");
    }
    gather(e, g, NULL);
    uint32_t active = g->active;
    struct lane *ul = any_lane_up(e);
    int up = ul != NULL;
    json_t *a = json_pack("{s:b, s:s, s:s, s:s, s:s, s:f, s:b, s:s, s:o, s:b, s:i, s:I, s:o}",
                          "ok", 1, "role", "edge", "version", RI_VERSION, "edgeId",
                          c->edge_id, "started", ts, "uptime",
                          (double)(ri_now_ns() - e->started_ns) / 1e9, "connected", up, "hub",
                          ri_hostport_str(c->hub_host, c->hub_port, hp, sizeof hp),
                          "listenPorts", ports, "listening", e->listening != 0,
                          "activeStreams", (int)active, "reconnects",
                          (json_int_t)e->reconnects, "plugins", ri_ctlinfo_plugins(e->cy->pl));
    if (a) {
        json_object_set_new(a, "lastError", e->last_error[0] ? json_string(e->last_error)
                                                              : json_null());
        if (up) {
            char since[40];
            ri_ctlinfo_mono_time(ul->t ? ul->t->connected_ns : ul->away->connected_ns, since,
                                 sizeof since);
            json_object_set_new(a, "connectedSince", json_string(since));
            json_object_set_new(a, "hubAddress",
                                json_string(ul->t ? ul->t->peer : ul->away->peer));
        }
        /* the lanes: each connection with its streams */
        json_t *lanes = json_array();
        for (unsigned i = 0; lanes && i < RI_LANES_LIMIT; i++) {
            struct lane *l = &e->lanes[i];
            if (!l->t && !l->away && !lane_wanted(l))
                continue;
            const char *st = l->away ? "up"
                             : !l->t ? (connecting(l) ? "connecting" : "down")
                             : l->t->state != RI_T_READY ? "handshake"
                             : lane_up(l) || l->t->parked ? "up" : "draining";
            char lhp[300];
            const struct ri_config *cc = e->cy->cfg;
            ri_hostport_str(cc->hubs_host[lane_hub(l)], cc->hubs_port[lane_hub(l)], lhp,
                            sizeof lhp);
            json_t *lj = json_pack("{s:i, s:s, s:i, s:s, s:i}", "lane", (int)i, "state", st,
                                   "activeStreams", (int)gathered_streams(g, l), "hub", lhp,
                                   "worker", (int)(l->idx % e->n_loops));
            if (lj && lane_tid(l))
                json_object_set_new(lj, "tunnel", json_integer((json_int_t)lane_tid(l)));
            json_array_append_new(lanes, lj);
        }
        json_object_set_new(a, "lanes", lanes);
        json_object_set_new(a, "lanesUp", json_integer(lanes_up(e)));
        json_object_set_new(a, "lanesWanted", json_integer(lanes_wanted(e)));
        json_object_set_new(a, "hubSpeaksLanes", json_boolean(any_hub_lanes(e)));
        json_object_set_new(a, "heldClients", json_integer(e->n_held));
        json_object_set_new(a, "publicIp", ri_ctlinfo_ip(&e->public_addr));
        json_object_set_new(a, "workers", json_integer(e->n_loops));
    }
    free(g);
    return a;
}

static json_t *edge_cmd_streams(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct edge *e = arg;
    json_t *arr = json_array();
    struct gather_ctx *g = malloc(sizeof *g);
    if (!arr || !g) {
        json_decref(arr);
        free(g);
        return ri_ctl_error("out of memory");
    }
    gather(e, g, arr);
    free(g);
    return json_pack("{s:b, s:o}", "ok", 1, "streams", arr);
}

static json_t *edge_cmd_reload(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct edge *e = arg;
    if (e->stopping)
        return ri_ctl_error("the edge is stopping");
    char what[420] = "";
    json_t *errors = edge_reload(e, what, sizeof what);
    if (!errors)
        return json_pack("{s:b, s:o}", "ok", 1, "changes", ri_ctl_changes(what));
    json_t *first = json_array_get(errors, 0);
    json_t *a = json_pack("{s:b, s:s, s:o}", "ok", 0, "error",
                          first ? json_string_value(first) : "reload failed", "errors", errors);
    return a;
}

/* Counters for the metrics (admin_http), read when asked. Ready: the
 * tunnel is up with its ports, and every port it was given is open. */
static json_t *edge_cmd_metrics(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct edge *e = arg;
    struct gather_ctx *g = malloc(sizeof *g);
    if (!g)
        return ri_ctl_error("out of memory");
    gather(e, g, NULL);
    const struct ri_counters *k = &g->sum;
    uint32_t active = g->active;
    int up = any_lane_up(e) && e->configured;
    uint16_t open[RI_CONFIG_PORTS_MAX];
    int n_open = ri_listen_open_ports(e->cy->pl->listener, open, RI_CONFIG_PORTS_MAX);
    size_t failed = 0;
    for (size_t i = 0; n_open >= 0 && i < e->n_ports; i++) {
        int have = 0;
        for (int j = 0; j < n_open && !have; j++)
            have = open[j] == e->ports[i];
        failed += !have;
    }
    json_t *a = json_pack("{s:b, s:s, s:s, s:b, s:b, s:f}", "ok", 1, "role", "edge", "edgeId",
                          e->cy->cfg->edge_id, "connected", up, "ready",
                          up && !e->stopping && failed == 0 && (e->n_ports == 0 || e->listening), "uptime",
                          (double)(ri_now_ns() - e->started_ns) / 1e9);
    if (!a) {
        free(g);
        return ri_ctl_error("out of memory");
    }
    ri_ctlinfo_counters(a, k);
    json_object_set_new(a, "schedQueued", json_integer((json_int_t)g->schedq));
    json_object_set_new(a, "controlQueuedBytes", json_integer((json_int_t)g->ctrlq));
    json_object_set_new(a, "stun", json_pack("{s:I, s:I, s:I, s:I, s:I}", "requests",
                                             (json_int_t)k->stun.requests, "ok",
                                             (json_int_t)k->stun.ok, "timeout",
                                             (json_int_t)k->stun.timeouts, "error",
                                             (json_int_t)k->stun.errors, "malformed",
                                             (json_int_t)k->stun.malformed));
    json_object_set_new(a, "publicIp", ri_ctlinfo_ip(&e->public_addr));
    json_object_set_new(a, "activeStreams", json_integer(active));
    json_object_set_new(a, "heldClients", json_integer(e->n_held));
    json_object_set_new(a, "reconnects", json_integer((json_int_t)e->reconnects));
    json_object_set_new(a, "connectFailures", json_integer((json_int_t)e->connect_failures));
    json_object_set_new(a, "handshakeFailures", json_integer((json_int_t)e->handshake_failures));
    json_object_set_new(a, "ports", json_integer((json_int_t)e->n_ports));
    json_object_set_new(a, "portsFailed", json_integer((json_int_t)failed));
    free(g);
    return a;
}

static const struct ri_ctl_cmd edge_cmds[] = {
    {"status", edge_cmd_status}, {"streams", edge_cmd_streams}, {"metrics", edge_cmd_metrics},
    {"reload", edge_cmd_reload}, {NULL, NULL},
};

/* A service plugin's api->query runs the read-only commands above. */
static json_t *edge_query(void *arg, json_t *req) { return ri_ctl_query(edge_cmds, arg, req); }

static void drain_cb(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = w->data;
    drain_workers(e, RI_E_SHUTDOWN, "drain timeout", 0, 1);
    while (e->tunnels) /* each close unlinks it (edge_closed) */
        ri_tunnel_fail(e->tunnels, RI_E_SHUTDOWN, "drain timeout");
    maybe_stopped(e); /* or when the workers' last gone messages ran */
}

static void edge_stop(struct edge *e)
{
    if (e->stopping) {
        log_warn("edge: second stop signal: closing now");
        drain_workers(e, RI_E_SHUTDOWN, "second stop signal", 0, 1);
        while (e->tunnels)
            ri_tunnel_fail(e->tunnels, RI_E_SHUTDOWN, "second stop signal");
        maybe_stopped(e);
        return;
    }
    e->stopping = 1;
    ri_sd_notify("STOPPING=1");
    ri_stunc_free(e->stun);
    e->stun = NULL;
    ri_handover_close(e->ho);
    e->ho = NULL;
    close_listeners(e);
    expire_held(e, 1, "the edge is stopping");
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
        ev_timer_stop(e->loop, &e->lanes[i].retry);
        cancel_connect(&e->lanes[i]);
    }
    struct gather_ctx *g = malloc(sizeof *g);
    if (g) {
        gather(e, g, NULL);
        if (e->tunnels || e->aways)
            log_info("edge: stopping: draining %u open stream%s (up to %.0f s)", g->active,
                     g->active == 1 ? "" : "s", e->cy->cfg->drain_timeout);
        free(g);
    }
    /* each call may close and unlink its tunnel: walk a snapshot */
    struct ri_tunnel *list[256];
    size_t n = 0;
    for (struct ri_tunnel *t = e->tunnels; t && n < 256; t = t->next)
        list[n++] = t;
    for (size_t i = 0; i < n; i++)
        ri_tunnel_drain(list[i], RI_E_SHUTDOWN, "edge stopping", e->cy->cfg->drain_timeout);
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++)
        e->lanes[i].away = NULL; /* none takes streams any more */
    drain_workers(e, RI_E_SHUTDOWN, "edge stopping", e->cy->cfg->drain_timeout, 0);
    if (!e->tunnels && !e->aways) {
        ev_break(e->loop, EVBREAK_ALL);
        return;
    }
    ev_timer_set(&e->drain, e->cy->cfg->drain_timeout + 1, 0);
    ev_timer_start(e->loop, &e->drain);
}

/* ---- handover to a new process ---------------------------------------------- */
static void ho_give(void *arg, struct ri_fdpool *pool, json_t *info)
{
    struct edge *e = arg;
    if (e->listening)
        ri_listen_export(e->cy->pl->listener, pool);
    json_t *ports = json_array();
    for (size_t i = 0; i < e->n_ports; i++)
        json_array_append_new(ports, json_integer(e->ports[i]));
    json_object_set_new(info, "ports", ports);
    json_object_set_new(info, "bind_address", json_string(e->cy->cfg->bind_address));
}

static void ho_taken(void *arg)
{
    struct edge *e = arg;
    log_info("edge: a new edge process took the listeners over: draining");
    e->handed_over = 1; /* what waits in the accept queues is the new process's */
    edge_stop(e);
}

static const struct ri_handover_ops ho_ops = {.give = ho_give, .taken = ho_taken};

/* A process already serving this config's handover socket gives us its
 * listening sockets and the ports the hub assigned: the ports are open
 * (clients held) before our tunnel is up. Returns the connection for the
 * commit, or -1. */
static int take_over(struct edge *e)
{
    const struct ri_config *c = e->cy->cfg;
    struct ri_fdpool pool = {0};
    json_t *info = NULL;
    char err[300];
    int conn = -1;
    int rc = ri_handover_fetch(c->handover_socket, RI_ROLE_EDGE, &pool, &info, &conn, err,
                               sizeof err);
    if (rc < 0)
        log_warn("edge: taking over from the running process failed (%s): starting afresh",
                 err);
    if (rc <= 0)
        return -1;
    const char *bind = json_string_value(json_object_get(info, "bind_address"));
    json_t *ports = json_object_get(info, "ports");
    size_t n = json_array_size(ports);
    if (bind && strcmp(bind, c->bind_address) == 0 && n <= RI_CONFIG_PORTS_MAX) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            json_int_t p = json_integer_value(json_array_get(ports, i));
            if (p > 0 && p < 65536)
                e->ports[k++] = (uint16_t)p;
        }
        e->n_ports = k;
        e->cy->pl->listener->fds = &pool;
        if (k)
            apply_ports(e, e->ports, e->n_ports);
        e->cy->pl->listener->fds = NULL;
        log_info("edge: took %zu listening port%s over from the running process", k,
                 k == 1 ? "" : "s");
    } else {
        log_warn("edge: the running process binds %s, this config %s: opening our own ports "
                 "when the hub assigns them", bind ? bind : "?", c->bind_address);
    }
    json_decref(info);
    ri_fdpool_free(&pool);
    return conn;
}

static void signal_cb(EV_P_ ev_signal *w, int revents)
{
    struct edge *e = w->data;
    if (w->signum != SIGHUP)
        edge_stop(e);
    else if (e->stopping) /* a reload now would reopen the listeners the drain closed */
        log_info("edge: SIGHUP ignored: the edge is stopping");
    else
        json_decref(edge_reload(e, NULL, 0));
}

/* ---- starting and stopping the workers ----------------------------------------------- */
/* The loops for the lanes: the main loop and workers - 1 threads, no more
 * than lanes_max can use. */
static int start_workers(struct edge *e, char *err, size_t errlen)
{
    const struct ri_config *c = e->cy->cfg;
    uint32_t n = c->workers;
    if (!n) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus < 1 ? 1 : cpus > RI_WORKERS_MAX ? RI_WORKERS_MAX : (uint32_t)cpus;
    }
    if (n > c->lanes_max)
        n = c->lanes_max;
    e->n_loops = 1;
    if (!(e->share = ri_mux_share_new(n > 1))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (n == 1)
        return 0;
    if (!(e->ew = calloc(n - 1, sizeof *e->ew)) || ri_mailbox_init(&e->mb, e->loop) < 0) {
        snprintf(err, errlen, "cannot create the workers");
        return -1;
    }
    e->mb_open = 1;
    /* all a worker knows of this loop: where to post, and what to run here */
    e->main = (struct edge_main){.mb = &e->mb, .bus = &e->bus,
                                 .config_news_run = config_news_run,
                                 .goaway_news_run = goaway_news_run, .gone_run = gone_run,
                                 .open_back_run = open_back_run};
    for (uint32_t i = 0; i + 1 < n; i++) {
        struct edge_worker *ew = &e->ew[i];
        char name[32]; /* a thread's name holds 15 characters */
        ew->main = &e->main;
        ew->index = (int)i + 1;
        snprintf(name, sizeof name, "ri-worker-%u", i + 1);
        snprintf(ew->who, sizeof ew->who, "edge: worker %u", i + 1);
        if (ri_wthread_start(&ew->th, name, ew_thread_start, ew_thread_stop, ew, err,
                             errlen) < 0)
            return -1;
        e->n_loops++;
    }
    log_info("edge: %u workers: lane i runs on loop i mod %u (the main loop and %u thread%s)",
             n, n, n - 1, n == 2 ? "" : "s");
    return 0;
}

static void stop_workers(struct edge *e)
{
    for (uint32_t i = 0; i + 1 < e->n_loops; i++)
        ri_wthread_stop(&e->ew[i].th);
    if (e->mb_open) { /* what they posted last: events, tunnels gone */
        ri_mailbox_close(&e->mb);
        ri_mailbox_free(&e->mb);
    }
    free(e->ew);
    ri_mux_share_unref(e->share);
}

int ri_edge_run(struct ri_cycle *cy, const struct ri_run_opts *opts)
{
    struct edge *e = calloc(1, sizeof *e);
    if (!e) {
        ri_cycle_unref(cy);
        return 1;
    }
    e->loop = opts->loop;
    e->opts = opts;
    e->cy = cy;
    e->n_loops = 1;
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
        struct lane *l = &e->lanes[i];
        l->e = e;
        l->idx = i;
        l->cfd = -1;
        ev_init(&l->retry, retry_cb);
        ev_init(&l->ctimer, ctimer_cb);
        ev_init(&l->cio, cio_cb);
        l->retry.data = l->ctimer.data = l->cio.data = l;
    }
    e->auto_lanes = 1;
    e->wmem_max = read_wmem_max();
    e->rl_lane = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    e->rl_config = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    ri_event_bus_init(&e->bus);
    ri_event_subscribe(&e->bus, RI_EVT_ALL, ri_event_log, NULL);
    ri_event_subscribe(&e->bus, RI_EVT_BIT(RI_EVT_RELOAD_OK) | RI_EVT_BIT(RI_EVT_RELOAD_FAILED),
                       ri_sd_notify_event, NULL);
    ri_worker_init(&e->w, e->loop, 0, &e->bus);
    const struct ri_config *c = cy->cfg;
    char err[512] = "";
    int rc = 1;
    if (!(e->res = ri_resolver_new(e->loop))) {
        log_err("edge: cannot start the resolver");
        goto out;
    }
    if (!(e->stun = ri_stunc_new(e->loop, e->res, &e->w.ctr.stun, stun_found, e))) {
        log_err("edge: out of memory");
        goto out;
    }
    if (!(e->creds = ri_tls_client_creds(c->hub_ca, err, sizeof err))) {
        log_err("edge: %s:%d: hub_ca: %s", c->path, c->hub_ca_line, err);
        goto out;
    }
    if (ri_accesslog_apply(&e->alog, &e->bus, c->access_log, err, sizeof err) < 0) {
        log_err("edge: %s", err);
        goto out;
    }
    set_listener_hook(e, cy);
    if (new_group(e) < 0) {
        log_err("edge: cannot get random bytes for the lanes' group id");
        goto out;
    }
    ev_init(&e->drain, drain_cb);
    ev_timer_init(&e->handoff, handoff_cb, 0, 0);
    e->handoff.data = e;
    ev_init(&e->relisten, relisten_cb);
    ev_init(&e->hold_timer, hold_cb);
    e->hold_timer.data = e;
    e->held_tail = &e->held;
    ev_signal_init(&e->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&e->sig_int, signal_cb, SIGINT);
    ev_signal_init(&e->sig_hup, signal_cb, SIGHUP);
    e->drain.data = e->relisten.data = e;
    e->sig_term.data = e->sig_int.data = e->sig_hup.data = e;
    char hp[300];
    log_info("edge %s: hub %s, binding %s%s%s", c->edge_id,
             ri_hostport_str(c->hub_host, c->hub_port, hp, sizeof hp), c->bind_address,
             c->hub_fingerprint ? ", pinned hub certificate" : "",
             c->hub_ca ? ", hub certificate checked against hub_ca" : "");
    ev_signal_start(e->loop, &e->sig_term);
    ev_signal_start(e->loop, &e->sig_int);
    ev_signal_start(e->loop, &e->sig_hup);
    if (c->user && ri_user_check(c->user, err, sizeof err) < 0) {
        log_err("edge: %s", err);
        goto out;
    }
    if (c->handover_socket) {
        int conn = take_over(e);
        if (conn >= 0 && ri_handover_commit(conn, err, sizeof err) < 0)
            log_warn("edge: the old process did not confirm the handover (%s)", err);
        if (!(e->ho = ri_handover_serve(e->loop, c->handover_socket, RI_ROLE_EDGE, &ho_ops, e,
                                        err, sizeof err)))
            log_warn("edge: %s: upgrades will not be able to take over", err);
    }
    /* ports the hub assigns later may be below 1024: CAP_NET_BIND_SERVICE stays */
    if (c->user && ri_drop_privileges(c->user, err, sizeof err) < 0) {
        log_err("edge: %s", err);
        goto out;
    }
    e->started_ns = ri_now_ns();
    if (c->control_socket) {
        if (!(e->ctl = ri_ctl_open(e->loop, &e->bus, c->control_socket, c->control_socket_mode,
                                   edge_cmds, e, err, sizeof err))) {
            log_err("edge: %s:%d: %s", c->path, c->control_socket_line, err);
            goto out;
        }
        log_info("edge: control socket %s", c->control_socket);
    }
    if (start_workers(e, err, sizeof err) < 0) {
        log_err("edge: workers: %s", err);
        goto out;
    }
    if (e->listening) /* ports taken over from the running process: serving already */
        sd_ready(e);
    ensure_lanes(e); /* lane 0; the others once the hub says it speaks lanes */

    ev_run(e->loop, 0);
    ev_run(e->loop, EVRUN_NOWAIT); /* the reaper of a tunnel that just closed */
    rc = 0;

    ev_timer_stop(e->loop, &e->drain);
    for (unsigned i = 0; i < RI_LANES_LIMIT; i++) {
        ev_timer_stop(e->loop, &e->lanes[i].retry);
        cancel_connect(&e->lanes[i]);
    }
    ev_timer_stop(e->loop, &e->relisten);
    expire_held(e, 1, "the edge is stopping");
    ev_signal_stop(e->loop, &e->sig_term);
    ev_signal_stop(e->loop, &e->sig_int);
    ev_signal_stop(e->loop, &e->sig_hup);
    close_listeners(e);
    log_info("edge: stopped");
out:
    e->stopping = 1; /* what the workers' last messages say starts nothing */
    ev_timer_stop(e->loop, &e->handoff);
    stop_workers(e);
    ri_ctl_close(e->ctl);
    ri_stunc_free(e->stun);
    ri_handover_close(e->ho);
    ri_resolver_free(e->res);
    ri_tls_creds_unref(e->creds);
    ri_cycle_unref(e->cy);
    ri_worker_destroy(&e->w);
    ri_accesslog_apply(&e->alog, &e->bus, NULL, err, sizeof err);
    ri_event_bus_free(&e->bus);
    free(e);
    return rc;
}
