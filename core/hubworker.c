/* hubworker.c -- the hub's workers: what runs on a worker's event loop
 * (core/ARCHITECTURE.md, "Workers"). A ready tunnel's hooks (an OPEN
 * connects to target_host:<edge port> with the header injector's bytes
 * first; PORTS and ADDR from the edge; its close), joining its group's
 * lanes and sending CONFIG, the bytes of its closed streams per edge, the
 * calls main makes here while it waits (adopt, replace, view, change,
 * accumulate, stop), and the worker thread's start and end.
 *
 * Main's side -- accepting, handshakes, placement, the registry, the control
 * socket, reloads -- is hub.c, which calls into this file; this file never
 * calls hub.c: it reaches main only by posting to main's mailbox what main
 * handed it at start (struct hub_main, hubworker.h). The few functions that
 * also run on main over its own list (hw_replace_in, hw_change_in, hw_acc_list,
 * hw_stop_in) are here, beside the worker's use of them. */
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctlinfo.h"
#include "hubworker.h"
#include "log.h"
#include "netutil.h"
#include "plugin.h"
#include "role.h"

/* ---- talking to the main loop (struct hub_main) --------------------------- */
/* fn(arg) on the main loop, later (inline when hw is the main loop); fn
 * frees arg. -1 when out of memory (logged; the caller still owns arg). */
static int to_main(struct hub_worker *hw, ri_mail_fn *fn, void *arg)
{
    if (!hw->threaded) {
        fn(arg);
        return 0;
    }
    if (ri_mailbox_post(hw->main->mb, fn, arg) == 0)
        return 0;
    log_err("hub: worker %d: out of memory: a message to the main loop is lost", hw->index);
    return -1;
}

static void hw_emit(struct hub_worker *hw, struct ri_event *ev)
{
    ev->role = RI_ROLE_HUB;
    ri_event_emit(hw->w->bus, ev);
}

/* From t's worker (or main, for a tunnel that ended before it moved) */
void hw_post_lane_gone(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct lane_gone *g = t->role_data;
    t->role_data = NULL;
    g->code = code;
    g->lost = lost;
    snprintf(g->why, sizeof g->why, "%s", why ? why : "");
    const struct hub_main *m = g->hw->main;
    if (g->hw->threaded)
        ri_mailbox_send(m->mb, &g->mail, m->lane_gone_run, g);
    else
        m->lane_gone_run(g);
}

static void post_edge_note(struct hub_worker *hw, const char *edge_id,
                           const struct ri_ports_msg *m)
{
    struct edge_note *n = calloc(1, sizeof *n);
    if (n && m && (n->ports = malloc(sizeof *m)))
        memcpy(n->ports, m, sizeof *m);
    if (!n || (m && !n->ports)) {
        free(n);
        log_err("hub: out of memory: a note about edge %s is lost", edge_id);
        return;
    }
    n->h = hw->main->h;
    snprintf(n->edge_id, sizeof n->edge_id, "%s", edge_id);
    if (to_main(hw, hw->main->edge_note_run, n) < 0) {
        free(n->ports);
        free(n);
    }
}

/* ---- the bytes of the worker's closed streams, per edge ------------------- */
/* A stream closed on this worker: its bytes join the edge's (hw->eb). */
void hw_count(void *arg, const struct ri_event *ev)
{
    struct hub_worker *hw = arg;
    struct edge_bytes *b = NULL;
    for (size_t i = 0; i < hw->n_eb && !b; i++)
        if (strcmp(hw->eb[i].id, ev->edge_id) == 0)
            b = &hw->eb[i];
    if (!b) {
        if (hw->n_eb == hw->cap_eb) {
            size_t cap = hw->cap_eb ? 2 * hw->cap_eb : 16;
            struct edge_bytes *n = realloc(hw->eb, cap * sizeof *n);
            if (!n) {
                log_err("hub: worker %d: out of memory: edge %s's bytes are not counted",
                        hw->index, ev->edge_id);
                return;
            }
            hw->eb = n;
            hw->cap_eb = cap;
        }
        b = &hw->eb[hw->n_eb++];
        snprintf(b->id, sizeof b->id, "%s", ev->edge_id);
        b->up = b->down = 0;
    }
    b->up += ev->bytes_up;
    b->down += ev->bytes_down;
}

/* Edges gone from the set lose their counts, as in the registry. */
static void hw_prune_counts(struct hub_worker *hw)
{
    for (size_t i = 0; i < hw->n_eb;)
        if (!ri_edge_set_find(hw->set, hw->eb[i].id))
            hw->eb[i] = hw->eb[--hw->n_eb];
        else
            i++;
}

/* ---- lanes and CONFIG ----------------------------------------------------- */
/* The lanes of one edge (hubworker.h: has_lanes) */
static int live(const struct ri_tunnel *t)
{
    return t->state == RI_T_READY && !t->closing && !t->draining;
}

static int same_group(const struct ri_tunnel *a, const struct ri_tunnel *b)
{
    return has_lanes(a) && has_lanes(b) && a->group == b->group &&
           strcmp(a->edge_id, b->edge_id) == 0;
}

static void send_config(struct ri_tunnel *t, const struct ri_edge_def *e)
{
    struct ri_config_msg *m = malloc(sizeof *m);
    uint8_t *buf = malloc(RI_CONFIG_MAX);
    if (m && buf) {
        m->stun_interval_secs = e->stun_interval_secs;
        m->n_ports = (uint16_t)e->n_ports;
        memcpy(m->ports, e->ports, e->n_ports * sizeof *e->ports);
        size_t n = ri_config_encode(buf, RI_CONFIG_MAX, m);
        if (ri_tunnel_ctrl(t, RI_F_CONFIG, 0, buf, n) == 0)
            t->config_sent = 1;
    } else {
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory sending CONFIG");
    }
    free(m);
    free(buf);
}

/* The group's oldest live lane but `skip`: where CONFIG goes. */
static struct ri_tunnel *config_lane(struct hub_worker *hw, const struct ri_tunnel *of,
                                     const struct ri_tunnel *skip)
{
    struct ri_tunnel *best = NULL;
    for (struct ri_tunnel *o = hw->tunnels; o; o = o->next)
        if (o != skip && live(o) && same_group(o, of) &&
            (!best || o->connected_ns < best->connected_ns))
            best = o;
    return best;
}

/* ---- an edge's new connection: what it replaces, and adopting it --------- */
void hw_replace_in(struct replace_ctx *c, struct ri_tunnel *list)
{
    struct ri_tunnel *t = c->t;
    for (struct ri_tunnel *o = list, *nx; o; o = nx) {
        nx = o->next;
        if (o == t || !live(o) || strcmp(o->edge_id, t->edge_id) != 0)
            continue;
        if (same_group(o, t)) {
            if (o->lane != t->lane)
                continue;
            ri_log_rl(c->rl, RI_LOG_INFO,
                      "edge %s: lane %u reconnected from %s: closing its old connection "
                      "from %s (%u stream%s lost there)", t->edge_id, t->lane, t->peer,
                      o->peer, o->mux.n, o->mux.n == 1 ? "" : "s");
            ri_tunnel_goaway(o, RI_E_REPLACED, "lane reconnected", 1);
            continue;
        }
        c->replaced++;
        c->streams += o->mux.n;
        snprintf(c->last, sizeof c->last, "%s", o->peer);
        ri_tunnel_drain(o, RI_E_REPLACED, "replaced by a newer connection with this edge id",
                        c->drain_timeout);
    }
}

void hw_replace_run(void *arg)
{
    struct replace_ctx *c = arg;
    hw_replace_in(c, c->hw->tunnels);
}

static const struct ri_tunnel_hooks hw_hooks;

void hw_adopt_run(void *arg)
{
    struct adopt_ctx *a = arg;
    struct hub_worker *hw = a->hw;
    struct ri_tunnel *t = a->t;
    /* linked first: a tunnel that fails while attaching is unlinked by its
     * closed hook */
    ri_tunnel_list_push(&hw->tunnels, t);
    struct ri_mux_policy pol = ri_cycle_policy(hw->cy);
    if (ri_tunnel_attach(t, hw->w, &hw_hooks, hw, &pol) == 0)
        hw_join(hw, t);
}

/* On t's worker: t becomes (a lane of) its edge there. */
void hw_join(struct hub_worker *hw, struct ri_tunnel *t)
{
    if (!hw->threaded) { /* the main loop's: hub_ready took it off h->tunnels */
        ri_tunnel_list_push(&hw->tunnels, t);
        t->hooks = &hw_hooks;
        t->owner = hw;
    }
    const struct ri_edge_def *e = ri_edge_set_find(hw->set, t->edge_id);
    if (!e) { /* removed on the way */
        ri_tunnel_goaway(t, RI_E_REMOVED, "edge removed from the hub config", 1);
        return;
    }
    int first = 1; /* no lane of t's group up before it */
    if (has_lanes(t)) {
        struct ri_mux_share *share = NULL;
        for (struct ri_tunnel *o = hw->tunnels; o; o = o->next)
            if (o != t && live(o) && same_group(o, t)) {
                first = 0;
                if (o->mux.share)
                    share = o->mux.share;
            }
        if (!ri_mux_join(&t->mux, share)) {
            ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
            return;
        }
    }
    /* CONFIG goes to the edge, not to each lane: on the first lane of its
     * group (a lane joining a group that is up needs none) */
    if (first)
        send_config(t, e);
}

/* ---- a worker's tunnels --------------------------------------------------- */
static void hw_open(struct ri_tunnel *t, uint32_t id, const struct ri_open *o)
{
    struct hub_worker *hw = t->owner;
    uint16_t port = ri_open_edge_port(o);
    /* Only the ports the hub assigned to this edge, as they stand now (a
     * port removed by a reload is refused from that moment on). */
    const struct ri_edge_def *e = ri_edge_set_find(hw->set, t->edge_id);
    if (!e || !ri_edge_def_has_port(e, port)) {
        t->bad_opens++;
        post_edge_note(hw, t->edge_id, NULL);
        ri_log_rl(&t->rl, RI_LOG_WARN,
                  "edge %s: stream %u: refused: port %u is not assigned to this edge "
                  "(%u such OPENs on this tunnel)", t->edge_id, id, port, t->bad_opens);
        ri_mux_refuse(&t->mux, id, RI_RST_FORBIDDEN, "port not assigned to this edge");
        if (t->bad_opens > RI_BAD_OPENS_MAX)
            ri_tunnel_goaway(t, RI_E_PROTOCOL,
                             "too many OPENs for ports not assigned to this edge", 1);
        return;
    }
    uint8_t hdr[RI_HEADER_MAX];
    size_t hl = 0;
    struct ri_inst *hi = hw->cy->pl->header;
    if (hi) {
        struct ri_conn_info ci = {.size = sizeof ci, .stream_id = id, .client = o->client,
                                  .edge = o->edge, .edge_id = t->edge_id};
        /* An edge behind NAT (or bound to a private or unspecified address)
         * accepts clients on an address nobody outside knows it by: the
         * header then names the public address STUN found (ADDR), with the
         * edge's port (netutil.h: ri_addr_use_public). */
        if (t->public_addr.ss_family)
            ri_addr_use_public(&ci.edge, &t->public_addr);
        char err[200] = "";
        if (ri_header_build(hi, &ci, hdr, sizeof hdr, &hl, err, sizeof err) < 0 ||
            hl > sizeof hdr) {
            ri_log_rl(&t->rl, RI_LOG_WARN, "edge %s: stream %u: header plugin: %s", t->edge_id,
                      id, err[0] ? err : "output too large");
            ri_mux_refuse(&t->mux, id, RI_RST_INTERNAL, "header injector failed");
            return;
        }
    }
    struct sockaddr_storage dst = hw->target;
    if (dst.ss_family == AF_INET)
        ((struct sockaddr_in *)&dst)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&dst)->sin6_port = htons(port);
    ri_mux_connect(&t->mux, id, o, (struct sockaddr *)&dst, hw->target_len, hdr, hl,
                   hw->cy->cfg->connect_timeout);
}

static void hw_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct hub_worker *hw = t->owner;
    /* the lane that carried the edge's latest CONFIG is gone while others
     * stay: the CONFIG may not have arrived, so the next oldest gets it */
    if (t->config_sent && has_lanes(t) && !hw->stopping) {
        struct ri_tunnel *n = config_lane(hw, t, t);
        const struct ri_edge_def *e = ri_edge_set_find(hw->set, t->edge_id);
        if (n && e && !n->config_sent)
            send_config(n, e);
    }
    ri_tunnel_list_unlink(&hw->tunnels, t);
    hw_post_lane_gone(t, code, why, lost); /* edgeDisconnected, if it was the group's last */
}

static void hw_ports(struct ri_tunnel *t, const struct ri_ports_msg *m)
{
    post_edge_note(t->owner, t->edge_id, m);
}

/* The edge's public address, as its STUN client found it (ADDR, checked by
 * the codec): kept per tunnel for the PROXY header (hw_open); logged
 * (rate-limited: the edge decides how often) and emitted when it changes. */
static void hw_addr(struct ri_tunnel *t, const struct sockaddr_storage *a)
{
    struct hub_worker *hw = t->owner;
    if (t->public_addr.ss_family == a->ss_family &&
        memcmp(&t->public_addr, a, sizeof *a) == 0)
        return;
    t->public_addr = *a;
    char ip[64];
    ri_ip_str((const struct sockaddr *)a, ip, sizeof ip);
    ri_log_rl(&t->rl, RI_LOG_INFO, "edge %s: public address is %s (STUN, from the edge)",
              t->edge_id, ip);
    struct ri_event ev = {.type = RI_EVT_PUBLIC_IP_DISCOVERED, .tunnel_id = t->id,
                          .edge_id = t->edge_id, .peer = t->peer, .address = ip};
    hw_emit(hw, &ev);
}

/* ready tunnels, on their worker */
static const struct ri_tunnel_hooks hw_hooks = {
    .addr = hw_addr,
    .open = hw_open,
    .ports = hw_ports,
    .closed = hw_closed,
};

/* ---- what workers know of the hub ----------------------------------------- */
void hw_view_run(void *arg)
{
    struct view_ctx *v = arg;
    struct hub_worker *hw = v->hw;
    struct ri_cycle *cy = hw->cy;
    struct ri_edge_set *set = hw->set;
    hw->cy = v->cy;
    hw->set = v->set;
    v->cy = cy;
    v->set = set;
    hw->target = *v->target;
    hw->target_len = v->target_len;
    hw_prune_counts(hw);
    for (struct ri_tunnel *t = hw->tunnels; v->ts && t; t = t->next)
        ri_tunnel_update(t, v->ts);
}

void hw_change_in(struct change_ctx *c, struct ri_tunnel **list)
{
    const char *id = c->id;
    for (struct ri_tunnel *t = *list, *nx; t; t = nx) {
        nx = t->next;
        /* tunnels in the handshake are matched on the id their HELLO claimed */
        const char *tid = t->state == RI_T_READY ? t->edge_id : t->hs.edge_id;
        if (t->state == RI_T_DEAD || strcmp(tid, id) != 0)
            continue;
        if (c->what == RI_EDGE_REMOVED) {
            log_info("edge %s: removed from the hub's edges: disconnecting", id);
            if (t->state == RI_T_READY)
                ri_tunnel_goaway(t, RI_E_REMOVED, "edge removed from the hub config", 1);
            else
                ri_tunnel_fail(t, RI_E_REMOVED, "edge removed during its handshake");
        } else if (c->what == RI_EDGE_REKEYED) {
            log_info("edge %s: secret changed: disconnecting (it must authenticate again)", id);
            if (t->state == RI_T_READY) /* the peer hears what any refusal says */
                ri_tunnel_goaway(t, RI_E_AUTH, "authentication failed", 1);
            else
                ri_tunnel_fail(t, RI_E_AUTH, "secret changed during its handshake");
        } else if (c->what == RI_EDGE_PORTS_CHANGED && c->hw && t->state == RI_T_READY &&
                   !t->closing) {
            /* once per edge: on its group's oldest live lane (a tunnel on its
             * way gets the new ports when it joins its worker) */
            if (has_lanes(t) && config_lane(c->hw, t, NULL) != t) {
                t->config_sent = 0;
                continue;
            }
            struct ri_event ev = {.type = RI_EVT_PORTS_UPDATED, .tunnel_id = t->id,
                                  .edge_id = id, .peer = t->peer, .ports = c->cur->ports,
                                  .n_ports = c->cur->n_ports};
            hw_emit(c->hw, &ev);
            send_config(t, c->cur);
        }
    }
}

void hw_change_run(void *arg)
{
    struct change_ctx *c = arg;
    hw_change_in(c, &c->hw->tunnels);
}

/* ---- the control socket's commands: what a worker reads ------------------- */
void hw_acc_list(struct acc_ctx *c, const struct ri_tunnel *list)
{
    for (const struct ri_tunnel *t = list; t; t = t->next) {
        if (t->state != RI_T_READY)
            continue;
        c->schedq += t->mux.queued;
        c->ctrlq += t->ctrl.bytes;
        if (c->streams)
            ri_ctlinfo_streams(c->streams, &t->mux, t->edge_id, t->id, 1);
        const struct ri_edge_def *d = c->acc ? ri_edge_set_find(c->set, t->edge_id) : NULL;
        if (!d)
            continue;
        struct edge_acc *a = &c->acc[d - c->set->v];
        if (t->public_addr.ss_family)
            a->pub = t->public_addr;
        for (const struct ri_stream *s = t->mux.all; s; s = s->next) {
            a->up += s->rx_bytes;
            a->down += s->tx_bytes;
        }
        a->active += t->mux.n;
        a->tunnels++;
        a->lanes += live(t);
        a->schedq += t->mux.queued;
        a->ctrlq += t->ctrl.bytes;
        char since[40];
        ri_ctlinfo_mono_time(t->connected_ns, since, sizeof since);
        json_t *tj = json_pack("{s:I, s:s, s:s, s:i, s:b}", "tunnel", (json_int_t)t->id,
                               "remote", t->peer, "connectedSince", since, "activeStreams",
                               (int)t->mux.n, "draining", t->draining || t->closing);
        if (tj && c->hw)
            json_object_set_new(tj, "worker", json_integer(c->hw->index));
        if (tj && has_lanes(t)) {
            char g[20];
            snprintf(g, sizeof g, "%016llx", (unsigned long long)t->group);
            json_object_set_new(tj, "lane", json_integer(t->lane));
            json_object_set_new(tj, "group", json_string(g));
        }
        if (tj && !a->tun)
            a->tun = json_array();
        json_array_append_new(a->tun, tj);
    }
}

void hw_acc_run(void *arg)
{
    struct acc_ctx *c = arg;
    hw_acc_list(c, c->hw->tunnels);
    for (size_t i = 0; c->acc && i < c->hw->n_eb; i++) { /* its closed streams' bytes */
        const struct ri_edge_def *d = ri_edge_set_find(c->set, c->hw->eb[i].id);
        if (d) {
            c->acc[d - c->set->v].up += c->hw->eb[i].up;
            c->acc[d - c->set->v].down += c->hw->eb[i].down;
        }
    }
    if (c->hw->threaded)
        ri_counters_add(&c->sum, &c->hw->own.ctr);
}

/* ---- shutdown ------------------------------------------------------------- */
void hw_stop_in(struct stop_ctx *c, struct ri_tunnel *list)
{
    for (struct ri_tunnel *t = list, *nx; t; t = nx) {
        nx = t->next;
        if (c->now || t->state != RI_T_READY)
            ri_tunnel_fail(t, RI_E_SHUTDOWN, "%s", c->why);
        else
            ri_tunnel_goaway(t, RI_E_SHUTDOWN, c->why, t->mux.n == 0);
    }
}

void hw_stop_run(void *arg)
{
    struct stop_ctx *c = arg;
    c->hw->stopping = 1;
    hw_stop_in(c, c->hw->tunnels);
}

/* ---- the worker's thread -------------------------------------------------- */
void hw_thread_start(void *arg) /* on the worker's thread, before its loop */
{
    struct hub_worker *hw = arg;
    ri_event_bus_init(&hw->bus);
    ri_event_subscribe(&hw->bus, RI_EVT_BIT(RI_EVT_STREAM_CLOSED), hw_count, hw);
    hw->fwd = (struct ri_event_fwd){.mb = hw->main->mb, .to = hw->main->bus, .who = hw->who};
    ri_event_subscribe(&hw->bus, RI_EVT_ALL, ri_event_forward, &hw->fwd);
    ri_worker_init(&hw->own, hw->th.loop, hw->index, &hw->bus);
}

void hw_thread_stop(void *arg) /* on the worker's thread, after its loop */
{
    struct hub_worker *hw = arg;
    struct stop_ctx c = {.hw = hw, .why = "hub stopped", .now = 1};
    hw_stop_run(&c); /* nothing is left unless the hub failed on its way up */
    ev_run(hw->loop, EVRUN_NOWAIT); /* the reapers of what just closed */
    ri_worker_destroy(&hw->own);
    ri_event_bus_free(&hw->bus);
}
