/* hub.c -- the hub role: accepts edges over TLS, authenticates them against
 * the edge registry, pushes their ports, and connects each stream to
 * target_host:<edge port> with the header injector's bytes first.
 *
 * This file is what runs on the hub's MAIN loop: accepting, handshakes,
 * placing a ready tunnel on a worker (main's book of groups, lanes gone),
 * the registry and the edges, the control socket's commands, reloads,
 * stopping, handover, and starting and stopping the workers. What runs on a
 * worker's loop -- a ready tunnel's hooks (the streams' connects among
 * them), the calls main makes there, the worker thread's start and end --
 * is in hubworker.c. This file calls into hubworker.c, never the other way
 * round: a worker reaches the main loop only through the struct hub_main
 * that start_workers fills in here (hubworker.h). */
#include <errno.h>
#include <fcntl.h>
#include <ev.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.h"
#include "accesslog.h"
#include "api.h"
#include "b64.h"
#include "control.h"
#include "ctlinfo.h"
#include "edgejson.h"
#include "edgestore.h"
#include "token.h"
#include "version.h"
#include "certstate.h"
#include "clock.h"
#include "cycle.h"
#include "events.h"
#include "fdpool.h"
#include "handover.h"
#include "hubworker.h"
#include "log.h"
#include "netutil.h"
#include "penalty.h"
#include "ratelimit.h"
#include "registry.h"
#include "resolve.h"
#include "role.h"
#include "tunnel.h"
#include "worker.h"
#include "wthread.h"

/* Main's book of edge groups on workers: where the lanes of (edge id,
 * group) live, so every lane of a group goes to the same worker; the
 * tunnel id of each lane index (its lane gone clears only its own). */
struct hub_home {
    char edge_id[RI_EDGE_ID_MAX + 1];
    uint64_t group;
    struct hub_worker *hw;
    uint32_t mask;              /* lane indices placed */
    uint64_t tid[RI_LANES_LIMIT];
    struct hub_home *next;
};

struct hub {
    struct ev_loop *loop;
    struct ri_worker w;
    struct hub_worker *hw;      /* workers */
    uint32_t n_hw;
    struct ri_mailbox mb;       /* posts from threaded workers */
    int mb_open;
    struct hub_main main;       /* what the workers reach of this loop (hubworker.h) */
    struct hub_home *homes;
    ev_timer handoff;           /* moves parked tunnels to their workers */
    struct ri_ratelimit rl_ports;
    struct ri_event_bus bus;
    struct ri_accesslog *alog; /* access_log, or NULL */
    struct ri_registry reg;
    struct ri_resolver *res;
    const struct ri_run_opts *opts;
    struct ri_cycle *cy;
    struct ri_tls_creds *creds;
    int lfd;
    ev_io lio;
    ev_timer accept_pause, drain;
    ev_signal sig_term, sig_int, sig_hup;
    struct ri_tunnel *tunnels;
    uint32_t handshaking;
    uint64_t handshake_failures; /* tunnels that closed before they were ready */
    struct sockaddr_storage target;
    socklen_t target_len;
    int stopping;
    /* a reload waiting for its target_host to resolve, with the
     * certificate it loaded */
    struct ri_cycle *pending;
    struct ri_tls_creds *pending_creds;
    struct ri_resolve_req *pending_req;
    /* what unauthenticated peers can make us log: accept failures, the
     * handshake cap, handshakes that fail (shared by those tunnels) */
    struct ri_ratelimit rl_accept, rl_overload, rl_preauth, rl_penalty, rl_banned;
    /* what authenticated edges can make us log: replacements, lanes refused */
    struct ri_ratelimit rl_replace, rl_lanes;
    struct ri_penalty penalty; /* addresses that keep failing to authenticate */
    struct ri_handover_srv *ho; /* a later process takes our socket over here */
    /* the control socket; the edges changed over it (runtime edges: the
     * edges file's, which win over the config's for the same id) and
     * where they are kept (NULL: memory only) */
    struct ri_ctl *ctl;
    struct ri_edge_set *runtime;
    struct ri_edge_store *store;
    uint64_t started_ns; /* monotonic */
    /* control clients waiting for the outcome of a reload */
    uint64_t *reload_waiters;
    size_t n_waiters;
    const char *change_src; /* "reload" or "control": what edge_changed logs */
};

static void emit(struct hub *h, struct ri_event *ev)
{
    ev->role = RI_ROLE_HUB;
    ri_event_emit(&h->bus, ev);
}

/* ---- talking to the workers (their answers: struct hub_main) -------------------- */
/* fn(arg) on hw's loop while main waits; inline when hw is the main loop */
static void to_worker(struct hub_worker *hw, ri_mail_fn *fn, void *arg)
{
    if (hw->threaded)
        ri_mailbox_call(&hw->th.mb, fn, arg);
    else
        fn(arg);
}

/* ---- tunnel hooks ----------------------------------------------------------- */
static int hub_lookup(struct ri_tunnel *t, const char *id, const uint8_t **secret, size_t *len)
{
    struct hub *h = t->owner;
    const struct ri_edge_def *e = ri_edge_set_find(h->reg.set, id);
    if (!e)
        return -1;
    *secret = (const uint8_t *)e->secret;
    *len = strlen(e->secret);
    return 0;
}

/* ---- placement: main's book of groups ----------------------------------------- */
static struct hub_home *find_home(struct hub *h, const char *edge_id, uint64_t group)
{
    for (struct hub_home *o = h->homes; o; o = o->next)
        if (o->group == group && strcmp(o->edge_id, edge_id) == 0)
            return o;
    return NULL;
}

/* Lanes placed on workers and not yet reported gone (stopping waits for 0) */
static uint32_t lanes_out(const struct hub *h)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->n_hw; i++)
        n += h->hw[i].lanes;
    return n;
}

static void maybe_stopped(struct hub *h)
{
    if (h->stopping && !h->tunnels && !lanes_out(h))
        ev_break(h->loop, EVBREAK_ALL);
}

/* t goes to the worker of its group, or the one with the fewest lanes.
 * edgeConnected (and the registry's connect count) once per edge: for the
 * first lane of its group, not for each lane; edgeDisconnected when the
 * last one is gone (lane_gone_run). Main's book decides both, so a lane on
 * its way to a worker already counts. */
static struct hub_worker *place(struct hub *h, struct ri_tunnel *t, const struct ri_edge_def *e)
{
    struct hub_home *home = has_lanes(t) ? find_home(h, t->edge_id, t->group) : NULL;
    struct hub_worker *hw = home ? home->hw : &h->hw[0];
    for (uint32_t i = 1; !home && i < h->n_hw; i++)
        if (h->hw[i].lanes < hw->lanes)
            hw = &h->hw[i];
    struct lane_gone *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    int first = !home;
    if (has_lanes(t) && !home) {
        if (!(home = calloc(1, sizeof *home))) {
            free(g);
            return NULL;
        }
        snprintf(home->edge_id, sizeof home->edge_id, "%s", t->edge_id);
        home->group = t->group;
        home->hw = hw;
        home->next = h->homes;
        h->homes = home;
    }
    if (home) {
        home->mask |= 1u << t->lane;
        home->tid[t->lane] = t->id;
    }
    g->h = h;
    g->hw = hw;
    snprintf(g->edge_id, sizeof g->edge_id, "%s", t->edge_id);
    snprintf(g->peer, sizeof g->peer, "%s", t->peer);
    g->group = t->group;
    g->tid = t->id;
    g->lane = t->lane;
    g->lanes = has_lanes(t);
    hw->lanes++;
    t->role_data = g;
    if (first) {
        struct ri_event ev = {.type = RI_EVT_EDGE_CONNECTED, .tunnel_id = t->id,
                              .edge_id = t->edge_id, .peer = t->peer, .ports = e->ports,
                              .n_ports = e->n_ports};
        emit(h, &ev);
    }
    return hw;
}

static void lane_gone_run(void *arg)
{
    struct lane_gone *g = arg;
    struct hub *h = g->h;
    int last = !g->lanes; /* one connection without lanes is its own edge connection */
    for (struct hub_home **pp = &h->homes, *o; g->lanes && (o = *pp); pp = &o->next) {
        if (o->group != g->group || strcmp(o->edge_id, g->edge_id) != 0)
            continue;
        if (o->tid[g->lane] == g->tid) {
            o->mask &= ~(1u << g->lane);
            o->tid[g->lane] = 0;
        }
        if (!o->mask) {
            *pp = o->next;
            free(o);
            last = 1;
        }
        break;
    }
    if (last) {
        struct ri_event ev = {.type = RI_EVT_EDGE_DISCONNECTED, .tunnel_id = g->tid,
                              .edge_id = g->edge_id, .peer = g->peer, .code = g->code,
                              .reason = g->why, .count = g->lost};
        emit(h, &ev);
    }
    g->hw->lanes--;
    free(g);
    maybe_stopped(h);
}

/* ---- main: an edge authenticated ------------------------------------------------ */
static void hub_ready(struct ri_tunnel *t)
{
    struct hub *h = t->owner;
    h->handshaking--;
    ri_penalty_clear(&h->penalty, (struct sockaddr *)&t->peer_sa);
    const struct ri_edge_def *e = ri_edge_set_find(h->reg.set, t->edge_id);
    if (!e) { /* removed while it authenticated (apply_edges also catches it) */
        ri_tunnel_goaway(t, RI_E_REMOVED, "edge removed from the hub config", 1);
        return;
    }
    uint32_t max = h->cy->cfg->max_lanes;
    if (has_lanes(t)) {
        /* every peer-supplied value is checked: the index against the
         * protocol's range, and the count against our limit. (Not the index
         * against the limit: an edge spreading lanes over several hubs
         * numbers them across all, so a hub sees indices 0, 2, 4, ...) */
        /* the count is main's book: lanes placed and not yet gone, so a
         * lane still draining counts until it has closed (the old single
         * loop counted live lanes only; an edge at the limit that drains one
         * index and opens another waits for the first to close) */
        struct hub_home *home = t->lane < RI_LANES_LIMIT ? find_home(h, t->edge_id, t->group)
                                                         : NULL;
        uint32_t others = home ? (uint32_t)__builtin_popcount(home->mask & ~(1u << t->lane))
                               : 0;
        if (t->lane >= RI_LANES_LIMIT || others >= max) {
            ri_log_rl(&h->rl_lanes, RI_LOG_WARN,
                      "edge %s: lane %u from %s refused: %s (max_lanes_per_edge %u)",
                      t->edge_id, t->lane, t->peer,
                      t->lane >= RI_LANES_LIMIT ? "lane index out of range" : "too many lanes",
                      max);
            ri_tunnel_goaway(t, RI_E_LANES, "too many lanes", 1);
            return;
        }
    }
    struct replace_ctx c = {.rl = &h->rl_replace, .drain_timeout = h->cy->cfg->drain_timeout,
                            .t = t};
    hw_replace_in(&c, h->tunnels); /* ready here, not yet on their worker */
    for (uint32_t i = 0; i < h->n_hw; i++) {
        c.hw = &h->hw[i];
        to_worker(c.hw, hw_replace_run, &c);
    }
    if (c.replaced == 1)
        ri_log_rl(&h->rl_replace, RI_LOG_WARN, "edge %s: new connection from %s replaces the "
                  "one from %s (%u open stream%s finish there)", t->edge_id, t->peer, c.last,
                  c.streams, c.streams == 1 ? "" : "s");
    else if (c.replaced)
        ri_log_rl(&h->rl_replace, RI_LOG_WARN, "edge %s: new connection from %s replaces %u "
                  "older ones, the lanes of an older edge process (%u open stream%s finish "
                  "there)", t->edge_id, t->peer, c.replaced, c.streams,
                  c.streams == 1 ? "" : "s");
    struct hub_worker *hw = place(h, t, e);
    if (!hw) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
        return;
    }
    if (!hw->threaded) { /* the main loop runs it: nothing moves */
        ri_tunnel_list_unlink(&h->tunnels, t); /* hw_join puts it on the worker's list */
        hw_join(hw, t);
        return;
    }
    ri_tunnel_park(t); /* moves in handoff_cb, outside the tunnel's callbacks */
    ev_timer_start(h->loop, &h->handoff);
}

/* Moves the parked tunnels to their workers. */
static void handoff_cb(EV_P_ ev_timer *w, int revents)
{
    struct hub *h = w->data;
    for (struct ri_tunnel *t = h->tunnels, *nx; t; t = nx) {
        nx = t->next;
        if (!t->parked || !t->role_data)
            continue;
        if (t->state != RI_T_READY || t->closing || t->draining) {
            ri_tunnel_unpark(t); /* closing already: it ends here (hub_closed books it) */
            continue;
        }
        if (ri_tunnel_detach(t) < 0) {
            ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory moving it to a worker");
            continue;
        }
        ri_tunnel_list_unlink(&h->tunnels, t);
        struct adopt_ctx a = {.hw = ((struct lane_gone *)t->role_data)->hw, .t = t};
        to_worker(a.hw, hw_adopt_run, &a);
    }
}

static void hub_refused(struct ri_tunnel *t, unsigned code, const char *reason)
{
    struct hub *h = t->owner;
    struct ri_event ev = {.type = RI_EVT_EDGE_AUTH_FAILED, .tunnel_id = t->id,
                          .edge_id = t->hs.edge_id, .peer = t->peer, .code = code,
                          .reason = reason};
    emit(h, &ev);
    if (code != RI_E_AUTH)
        return;
    uint64_t ban = ri_penalty_fail(&h->penalty, (struct sockaddr *)&t->peer_sa, ri_now_ns());
    if (ban)
        ri_log_rl(&h->rl_penalty, RI_LOG_WARN,
                  "hub: %s keeps failing to authenticate: refusing its connections for %.0f s",
                  t->peer, (double)ban / 1e9);
}

/* A tunnel on the main loop ends: in its handshake, refused once ready,
 * or ready and parked but closed before it moved. */
static void hub_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct hub *h = t->owner;
    if (!t->was_ready) {
        h->handshaking--;
        h->handshake_failures++;
    }
    ri_tunnel_list_unlink(&h->tunnels, t);
    if (t->role_data)
        hw_post_lane_gone(t, code, why, lost);
    maybe_stopped(h);
}

/* ---- a worker's notes about an edge (struct hub_main), on the main loop ---------- */
static void hub_ports(struct hub *h, const char *edge_id, const struct ri_ports_msg *m);

static void edge_note_run(void *arg)
{
    struct edge_note *n = arg;
    if (n->ports) {
        hub_ports(n->h, n->edge_id, n->ports);
        free(n->ports);
    } else {
        struct ri_edge_stats *st = ri_registry_stats(&n->h->reg, n->edge_id);
        if (st)
            st->bad_opens++;
    }
    free(n);
}

/* The edge could not open some of the ports assigned to it (in use, below
 * 1024 without privilege): the operator hears it here, at error level.
 * Only ports assigned to this edge count; the edge's text is printable and
 * bounded (ri_ports_decode) and the line rate-limited. On the main loop. */
static void hub_ports(struct hub *h, const char *edge_id, const struct ri_ports_msg *m)
{
    const struct ri_edge_def *e = ri_edge_set_find(h->reg.set, edge_id);
    struct ri_edge_stats *st = ri_registry_stats(&h->reg, edge_id);
    if (!e)
        return;
    char list[256] = "";
    size_t off = 0, n = 0;
    for (size_t i = 0; i < m->n_failed; i++) {
        if (!ri_edge_def_has_port(e, m->ports[i]))
            continue; /* not ours to hear about */
        n++;
        if (off < sizeof list - 8)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%u", n > 1 ? "," : "",
                                    m->ports[i]);
    }
    if (n)
        ri_log_rl(&h->rl_ports, RI_LOG_ERROR,
                  "edge %s: cannot open %zu of its %zu port%s (%s): %s; the edge retries",
                  edge_id, n, e->n_ports, e->n_ports == 1 ? "" : "s", list,
                  m->reason[0] ? m->reason : "no reason given");
    else if (st && st->ports_failed)
        ri_log_rl(&h->rl_ports, RI_LOG_INFO, "edge %s: all %zu port%s open now", edge_id,
                  e->n_ports, e->n_ports == 1 ? "" : "s");
    if (st)
        st->ports_failed = (uint32_t)n;
}

/* handshakes, on the main loop */
static const struct ri_tunnel_hooks hub_hooks = {
    .lookup = hub_lookup,
    .ready = hub_ready,
    .refused = hub_refused,
    .closed = hub_closed,
};

/* ---- accepting edges --------------------------------------------------------- */
static void accept_cb(EV_P_ ev_io *w, int revents)
{
    struct hub *h = w->data;
    const struct ri_config *c = h->cy->cfg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(h->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listener stays readable: pause it instead of spinning.
                 * The timer is re-armed with its interval every time (a
                 * fired one-shot libev timer would otherwise restart with
                 * a deadline in the past and fire at once). */
                ri_log_rl(&h->rl_accept, RI_LOG_WARN,
                          "hub: accept: %s: pausing new connections for 1 s", strerror(errno));
                ev_io_stop(EV_A_ & h->lio);
                ev_timer_stop(EV_A_ & h->accept_pause);
                ev_timer_set(&h->accept_pause, 1.0, 0);
                ev_timer_start(EV_A_ & h->accept_pause);
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                ri_log_rl(&h->rl_accept, RI_LOG_WARN, "hub: accept: %s", strerror(errno));
            }
            return;
        }
        char peer[64];
        ri_addr_str((struct sockaddr *)&ss, peer, sizeof peer);
        uint64_t ban = ri_penalty_check(&h->penalty, (struct sockaddr *)&ss, ri_now_ns());
        if (ban) {
            ri_log_rl(&h->rl_banned, RI_LOG_WARN,
                      "hub: refusing %s for %.0f s more: repeated authentication failures",
                      peer, (double)ban / 1e9);
            close(fd);
            continue;
        }
        if (h->handshaking >= c->max_handshakes) {
            ri_log_rl(&h->rl_overload, RI_LOG_WARN,
                      "hub: %u connections still in handshake (max_handshakes): dropping %s",
                      h->handshaking, peer);
            close(fd);
            continue;
        }
        struct ri_tunnel_params p = {
            .role = RI_ROLE_HUB, .fd = fd, .peer = peer, .peer_sa = (struct sockaddr *)&ss,
            .peer_sa_len = sl, .w = &h->w, .api = &ri_core_api, .creds = h->creds,
            .auth = h->cy->pl->auth, .policy = ri_cycle_policy(h->cy), .max_streams = c->max_streams,
            .ping_interval = c->ping_interval, .ping_timeout = c->ping_timeout,
            .handshake_timeout = c->handshake_timeout, .hooks = &hub_hooks, .owner = h,
            .preauth_rl = &h->rl_preauth, .caps_off = c->offer_lanes ? 0 : RI_CAP_LANES,
            .defer_policy = h->hw[0].threaded};
        struct ri_tunnel *t = ri_tunnel_new(&p);
        if (!t)
            continue;
        h->handshaking++;
        ri_tunnel_list_push(&h->tunnels, t);
        log_debug("hub: connection from %s", peer);
    }
}

static void accept_resume_cb(EV_P_ ev_timer *w, int revents)
{
    struct hub *h = w->data;
    if (!h->stopping && h->lfd >= 0)
        ev_io_start(EV_A_ & h->lio);
}

static int open_listener(const char *listen_addr, char *err, size_t errlen)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (ri_parse_hostport(listen_addr, host, sizeof host, &port) < 0 ||
        ri_resolve(host, port, &ss, &sl, err, errlen) < 0) {
        if (!err[0])
            snprintf(err, errlen, "bad listen address %s", listen_addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen_addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- the hub's certificate ------------------------------------------------------ */
static const char *setting_of(int which)
{
    return which == RI_TLS_KEY ? "tls_key" : "tls_cert";
}

static int line_of_which(const struct ri_config *c, int which)
{
    return which == RI_TLS_KEY && c->tls_key_line ? c->tls_key_line : c->tls_cert_line;
}

/* The certificate config c asks for: its tls_cert/tls_key files (read now,
 * so a renewed file at the same path is picked up), else the self-signed
 * one kept in state_dir, else an ephemeral one. cur: the one served now (a
 * reload), NULL at start. Returns a reference, or NULL with err as
 * "FILE:LINE: message" when tls_cert/tls_key do not load. A state_dir that
 * cannot be used fails nothing: the hub goes on with cur (a reload) or an
 * ephemeral certificate (start), and says so. */
static struct ri_tls_creds *hub_creds(const struct ri_config *c, struct ri_tls_creds *cur,
                                      char *err, size_t errlen)
{
    char e[700] = "";
    struct ri_tls_creds *n;
    if (c->tls_cert) {
        int which = RI_TLS_CERT;
        if (!(n = ri_tls_server_creds(c->tls_cert, c->tls_key, &which, e, sizeof e)))
            snprintf(err, errlen, "%s:%d: %s: %s", c->path, line_of_which(c, which),
                     setting_of(which), e);
        return n;
    }
    if (c->state_dir) {
        int made = 0;
        if ((n = ri_certstate_load(c->state_dir, &made, e, sizeof e))) {
            if (made)
                log_info("hub: generated a self-signed certificate %s and saved it to %s/%s "
                         "(key %s/%s): edges may pin it, it stays across restarts",
                         n->fingerprint, c->state_dir, RI_CERTSTATE_CERT, c->state_dir,
                         RI_CERTSTATE_KEY);
            else if (!cur || strcmp(cur->fingerprint, n->fingerprint) != 0)
                log_info("hub: loaded the self-signed certificate %s from %s/%s",
                         n->fingerprint, c->state_dir, RI_CERTSTATE_CERT);
            return n;
        }
        if (cur && cur->origin != RI_TLS_FROM_FILES) {
            log_warn("hub: state_dir: %s: keeping the current certificate %s", e,
                     cur->fingerprint);
            return ri_tls_creds_ref(cur);
        }
        log_warn("hub: state_dir: %s: using an ephemeral self-signed certificate instead; "
                 "edges that pin its fingerprint will be locked out after the next restart",
                 e);
    } else if (cur && cur->origin == RI_TLS_EPHEMERAL) {
        return ri_tls_creds_ref(cur); /* a reload does not change it */
    }
    if (!(n = ri_tls_server_ephemeral(e, sizeof e)))
        snprintf(err, errlen, "%s", e);
    else if (!c->state_dir)
        log_info("hub: state_dir is \"\": ephemeral self-signed certificate %s; it changes "
                 "at every start (edges that pin it must follow)", n->fingerprint);
    return n;
}

int ri_hub_check(const struct ri_config *c, struct ri_errs *errs)
{
    size_t before = errs->n;
    char err[700] = "";
    struct sockaddr_storage ss;
    socklen_t sl;
    if (ri_resolve(c->target_host, 1, &ss, &sl, err, sizeof err) < 0)
        ri_errs_add(errs, c->path, c->target_host_line, "target_host: %s", err);
    if (c->tls_cert) {
        int which = RI_TLS_CERT;
        struct ri_tls_creds *creds =
            ri_tls_server_creds(c->tls_cert, c->tls_key, &which, err, sizeof err);
        if (!creds)
            ri_errs_add(errs, c->path, line_of_which(c, which), "%s: %s", setting_of(which),
                        err);
        ri_tls_creds_unref(creds);
    } else if (c->state_dir && ri_certstate_check(c->state_dir, err, sizeof err) < 0) {
        /* the daemon would start, with an ephemeral certificate: an error
         * where the operator asked for this folder, else a warning */
        if (c->state_dir_line)
            ri_errs_add(errs, c->path, c->state_dir_line,
                        "state_dir: %s (the hub would fall back to an ephemeral certificate)",
                        err);
        else
            fprintf(stderr, "%s: warning: state_dir %s (the default): %s: the hub would use "
                    "an ephemeral certificate whose fingerprint changes at every start (set "
                    "hub.state_dir)\n", c->path, c->state_dir, err);
    }
    if (c->edges_file) { /* loaded as the hub loads it at start */
        struct ri_edge_store *st = ri_edge_store_file(c->edges_file);
        struct ri_edge_set *rt = st ? ri_edge_store_load(st, err, sizeof err) : NULL;
        if (!rt)
            ri_errs_add(errs, c->path, c->edges_file_line, "edges_file: %s",
                        st ? err : "out of memory");
        ri_edge_set_unref(rt);
        ri_edge_store_free(st);
    }
    return errs->n > before ? -1 : 0;
}

/* ---- the edges: the config's and the runtime ones --------------------------------- */
/* The hub's edges: the config's, and the runtime ones (edges file, control
 * socket), which win for an id in both (logged when log_conflicts). */
static struct ri_edge_set *effective_set(struct hub *h, const struct ri_config *c,
                                         int log_conflicts)
{
    const struct ri_edge_set *rt = h->runtime;
    size_t nrt = rt ? rt->n : 0, n = 0;
    struct ri_edge_def *defs = calloc(c->n_edges + nrt + 1, sizeof *defs);
    if (!defs)
        return NULL;
    for (size_t i = 0; i < c->n_edges; i++) {
        if (ri_edge_set_find(rt, c->edges[i].id)) {
            if (log_conflicts)
                log_warn("hub: edge %s is in %s (line %d) and in the runtime edges%s%s: the "
                         "runtime entry is used", c->edges[i].id, c->path, c->edges[i].line,
                         c->edges_file ? " of " : "", c->edges_file ? c->edges_file : "");
            continue;
        }
        defs[n++] = (struct ri_edge_def){.id = (char *)c->edges[i].id,
                                         .secret = (char *)c->edges[i].secret,
                                         .ports = c->edges[i].ports,
                                         .n_ports = c->edges[i].n_ports,
                                         .stun_interval_secs = c->edges[i].stun_interval_secs};
    }
    for (size_t i = 0; i < nrt; i++)
        defs[n++] = rt->v[i];
    struct ri_edge_set *s = ri_edge_set_new(defs, n);
    free(defs);
    return s;
}

/* ---- what workers know of the hub ------------------------------------------------- */
/* Gives every worker the current cycle, edges and target (after a reload
 * or a change of the edges), and a reload's settings for its tunnels. The
 * old references are dropped here, on the main loop. */
static void push_view(struct hub *h, const struct ri_tunnel_settings *ts)
{
    for (uint32_t i = 0; i < h->n_hw; i++) {
        struct view_ctx v = {.hw = &h->hw[i], .cy = ri_cycle_ref(h->cy),
                             .set = ri_edge_set_ref(h->reg.set), .target = &h->target,
                             .target_len = h->target_len, .ts = ts};
        to_worker(v.hw, hw_view_run, &v);
        ri_cycle_unref(v.cy);
        ri_edge_set_unref(v.set);
    }
}

/* ---- reload: one path for the edges (registry) and for live tunnels ---------- */
static void edge_changed(void *arg, enum ri_edge_change what, const struct ri_edge_def *old,
                         const struct ri_edge_def *cur)
{
    struct hub *h = arg;
    const char *id = old ? old->id : cur->id;
    /* the reload's log says what changed for each edge, connected or not */
    if (what != RI_EDGE_REMOVED) {
        char list[200];
        size_t off = 0;
        list[0] = '\0';
        for (size_t i = 0; i < cur->n_ports && off < sizeof list - 12; i++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%u", i ? "," : "",
                                    cur->ports[i]);
        if (off >= sizeof list - 12)
            snprintf(list + off, sizeof list - off, ",...");
        if (what == RI_EDGE_ADDED)
            log_info("hub: %s: edge %s added (ports %s)", h->change_src, id, cur->n_ports ? list : "none");
        else if (what == RI_EDGE_PORTS_CHANGED)
            log_info("hub: %s: edge %s: ports now %s", h->change_src, id, cur->n_ports ? list : "none");
        else
            log_info("hub: %s: edge %s: secret changed", h->change_src, id);
    } else {
        log_info("hub: %s: edge %s removed", h->change_src, id);
    }
    struct change_ctx c = {.what = what, .id = id, .cur = cur};
    hw_change_in(&c, &h->tunnels); /* in their handshake, or parked on the way */
    for (uint32_t i = 0; i < h->n_hw; i++) {
        c.hw = &h->hw[i];
        to_worker(c.hw, hw_change_run, &c);
    }
}

static void describe(char *out, size_t cap, const struct ri_cycle *o, const struct ri_cycle *n,
                     size_t n_edges)
{
    char changes[400];
    ri_cycle_describe_changes(o, n, changes, sizeof changes);
    size_t off = (size_t)snprintf(out, cap, " (%zu edge%s%s", n_edges,
                                  n_edges == 1 ? "" : "s", changes);
    if (off < cap && strcmp(o->cfg->target_host, n->cfg->target_host) != 0)
        off += (size_t)snprintf(out + off, cap - off, "; target_host: %s -> %s",
                                o->cfg->target_host, n->cfg->target_host);
    if (off < cap)
        snprintf(out + off, cap - off, ")");
}

static void reload_failed(struct hub *h, const char *why);
static void set_service_hook(struct hub *h, struct ri_cycle *cy);
static void reload_answer(struct hub *h, const char *what, json_t *errors);

/* Takes ncy and creds (a reference each). */
static void apply_cycle(struct hub *h, struct ri_cycle *ncy, struct ri_tls_creds *creds,
                        const struct sockaddr_storage *tgt, socklen_t tl)
{
    struct ri_config *oc = h->cy->cfg, *nc = ncy->cfg;
    if (strcmp(oc->listen, nc->listen) != 0)
        log_warn("hub: reload: 'listen' changed to %s: takes effect on restart", nc->listen);
    if (ri_str_differs(oc->control_socket, nc->control_socket) ||
        oc->control_socket_mode != nc->control_socket_mode)
        log_warn("hub: reload: control_socket changed: takes effect on restart");
    if (oc->workers != nc->workers)
        log_warn("hub: reload: 'workers' changed: takes effect on restart (%u running)",
                 h->n_hw);
    if (ri_str_differs(oc->edges_file, nc->edges_file))
        log_warn("hub: reload: edges_file changed: takes effect on restart (the runtime edges "
                 "stay as they are, kept in %s)", oc->edges_file ? oc->edges_file : "memory");
    struct ri_edge_set *set = effective_set(h, nc, 1);
    if (!set) {
        reload_failed(h, "out of memory");
        ri_cycle_unref(ncy);
        ri_tls_creds_unref(creds);
        return;
    }
    /* new handshakes use the new certificate; a live tunnel holds its own
     * reference to the credentials it was made with */
    if (strcmp(h->creds->fingerprint, creds->fingerprint) != 0)
        log_info("hub: TLS certificate changed: %s -> %s (new connections; tunnels up now "
                 "keep theirs)", h->creds->fingerprint, creds->fingerprint);
    ri_tls_creds_unref(h->creds);
    h->creds = creds;
    char what[512];
    describe(what, sizeof what, h->cy, ncy, set->n);
    int swap = ri_cycle_policy_changed(h->cy, ncy);
    struct ri_cycle *old = h->cy;
    h->cy = ncy;
    set_service_hook(h, ncy);
    h->target = *tgt;
    h->target_len = tl;
    ri_log_level = h->opts->debug ? RI_LOG_DEBUG : nc->log_level;
    ri_log_json = nc->log_json;
    char err[400];
    if (ri_accesslog_apply(&h->alog, &h->bus, nc->access_log, err, sizeof err) < 0)
        log_err("hub: reload: %s: access lines keep going where they went", err);
    h->change_src = "reload";
    ri_registry_apply(&h->reg, set, edge_changed, h);
    size_t n_edges = set->n;
    ri_edge_set_unref(set);
    struct ri_tunnel_settings ts = {.ping_interval = nc->ping_interval,
                                    .ping_timeout = nc->ping_timeout,
                                    .max_streams = nc->max_streams, .swap_policy = swap,
                                    .policy = ri_cycle_policy(ncy)};
    for (struct ri_tunnel *t = h->tunnels; t; t = t->next)
        ri_tunnel_update(t, &ts);
    push_view(h, &ts);
    ri_cycle_unref(old);
    struct ri_event ev = {.type = RI_EVT_RELOAD_OK, .path = h->opts->config_path,
                          .reason = what, .count = (uint32_t)n_edges};
    emit(h, &ev);
    reload_answer(h, what, NULL);
}

/* Answers the control clients waiting for this reload: ok with what
 * changed, or the errors (FILE:LINE: message; takes errors). */
static void reload_answer(struct hub *h, const char *what, json_t *errors)
{
    for (size_t i = 0; i < h->n_waiters; i++) {
        json_t *a;
        if (errors) {
            json_t *first = json_array_get(errors, 0);
            a = json_pack("{s:b, s:s, s:O}", "ok", 0, "error",
                          first ? json_string_value(first) : "reload failed", "errors", errors);
        } else { /* " (3 edges; ...)" -> "3 edges; ..." */
            char inner[512];
            size_t n = strlen(what);
            snprintf(inner, sizeof inner, "%.*s", n > 3 ? (int)(n - 3) : 0, what + 2);
            a = json_pack("{s:b, s:s}", "ok", 1, "changes", inner);
        }
        ri_ctl_reply(h->ctl, h->reload_waiters[i], a);
    }
    h->n_waiters = 0;
    json_decref(errors);
}

static void reload_failed_errs(struct hub *h, const char *why, json_t *errors)
{
    struct ri_event ev = {.type = RI_EVT_RELOAD_FAILED, .path = h->opts->config_path,
                          .reason = why};
    emit(h, &ev);
    if (!errors)
        errors = json_array();
    if (errors && !json_array_size(errors))
        json_array_append_new(errors, json_string(why && why[0] ? why : "reload failed"));
    reload_answer(h, NULL, errors);
}

static void reload_failed(struct hub *h, const char *why)
{
    reload_failed_errs(h, why, NULL);
}

static void target_resolved(void *arg, const struct sockaddr_storage *a, const socklen_t *l,
                            int n, const char *err)
{
    struct hub *h = arg;
    struct ri_cycle *ncy = h->pending;
    struct ri_tls_creds *creds = h->pending_creds;
    h->pending = NULL;
    h->pending_creds = NULL;
    h->pending_req = NULL;
    if (n <= 0) {
        char why[300];
        snprintf(why, sizeof why, "target_host: %s", err);
        reload_failed(h, why);
        ri_cycle_unref(ncy);
        ri_tls_creds_unref(creds);
        return;
    }
    apply_cycle(h, ncy, creds, &a[0], l[0]);
}

static void hub_reload(struct hub *h)
{
    struct ri_errs errs = {0};
    ri_sd_notify("RELOADING=1"); /* READY=1 follows the outcome (ri_sd_notify_event) */
    log_info("hub: %s: reloading %s", h->n_waiters ? "control socket" : "SIGHUP",
             h->opts->config_path);
    struct ri_cycle *ncy = ri_cycle_load(h->opts->config_path, h->loop, &ri_core_api, &errs);
    if (!ncy || ncy->cfg->role != RI_ROLE_HUB) {
        json_t *lines = json_array();
        for (size_t i = 0; i < errs.n; i++) {
            log_err("reload: %s", errs.lines[i]);
            json_array_append_new(lines, json_string(errs.lines[i]));
        }
        reload_failed_errs(h, ncy ? "the new config is not a hub config" : "", lines);
        ri_errs_free(&errs);
        ri_cycle_unref(ncy);
        return;
    }
    ri_errs_free(&errs);
    /* the certificate files are read on every reload, renewed or not; one
     * that does not load refuses the whole reload (the running config and
     * certificate stay) */
    char err[800] = "";
    struct ri_tls_creds *creds = hub_creds(ncy->cfg, h->creds, err, sizeof err);
    if (!creds) {
        log_err("reload: %s", err);
        reload_failed(h, err);
        ri_cycle_unref(ncy);
        return;
    }
    if (h->pending) { /* a newer reload supersedes one still resolving */
        ri_resolve_cancel(h->pending_req);
        ri_cycle_unref(h->pending);
        ri_tls_creds_unref(h->pending_creds);
    }
    /* target_host may need DNS: resolved off the loop, applied when known */
    h->pending = ncy;
    h->pending_creds = creds;
    h->pending_req = ri_resolve_async(h->res, ncy->cfg->target_host, 1, target_resolved, h);
    if (!h->pending_req) {
        h->pending = NULL;
        h->pending_creds = NULL;
        reload_failed(h, "cannot start resolving target_host");
        ri_cycle_unref(ncy);
        ri_tls_creds_unref(creds);
    }
}

/* ---- the control socket's commands ------------------------------------------------ */
static json_t *ports_json(const uint16_t *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(p[i]));
    return a;
}

/* per_edge: an array of set->n accumulators (free with acc_free), else
 * only the totals and streams */
static int accumulate(struct hub *h, struct acc_ctx *c, int per_edge, json_t *streams)
{
    memset(c, 0, sizeof *c);
    c->streams = streams;
    c->set = h->reg.set;
    if (per_edge && c->set->n && !(c->acc = calloc(c->set->n, sizeof *c->acc)))
        return -1;
    ri_counters_add(&c->sum, &h->w.ctr);
    hw_acc_list(c, h->tunnels);
    for (uint32_t i = 0; i < h->n_hw; i++) {
        c->hw = &h->hw[i];
        to_worker(c->hw, hw_acc_run, c);
    }
    return 0;
}

static void acc_free(struct acc_ctx *c)
{
    for (size_t i = 0; c->acc && i < c->set->n; i++)
        json_decref(c->acc[i].tun);
    free(c->acc);
}

static json_t *hub_cmd_status(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct hub *h = arg;
    const struct ri_config *c = h->cy->cfg;
    char ts[40];
    ri_ctlinfo_mono_time(h->started_ns, ts, sizeof ts);
    struct acc_ctx cx;
    if (accumulate(h, &cx, 1, NULL) < 0)
        return ri_ctl_error("out of memory");
    json_t *edges = json_array();
    const struct ri_edge_set *set = h->reg.set;
    for (size_t i = 0; set && i < set->n; i++) {
        const struct ri_edge_def *d = &set->v[i];
        struct ri_edge_stats *st = ri_registry_stats(&h->reg, d->id);
        struct edge_acc *ac = &cx.acc[i];
        json_t *tun = ac->tun ? json_incref(ac->tun) : json_array();
        uint64_t up = ac->up, down = ac->down; /* closed and live streams, per worker */
        uint32_t active = ac->active, lanes = ac->lanes;
        const struct sockaddr_storage *pub = ac->pub.ss_family ? &ac->pub : NULL;
        json_t *o = json_pack(
            "{s:s, s:s, s:o, s:I, s:b, s:o, s:i, s:I, s:I, s:I, s:I, s:I}", "id", d->id,
            "source", ri_edge_set_find(h->runtime, d->id) ? "runtime" : "config",
            "listenPorts", ports_json(d->ports, d->n_ports), "stunIntervalSecs",
            (json_int_t)d->stun_interval_secs, "connected", json_array_size(tun) > 0,
            "tunnels", tun, "activeStreams", (int)active, "bytesUp", (json_int_t)up,
            "bytesDown", (json_int_t)down, "connects", (json_int_t)(st ? st->connects : 0),
            "authFailures", (json_int_t)(st ? st->auth_failures : 0), "portsFailed",
            (json_int_t)(st ? st->ports_failed : 0));
        if (o && json_array_size(tun) == 1) { /* the usual case, flat */
            json_t *t0 = json_array_get(tun, 0);
            json_object_set(o, "remote", json_object_get(t0, "remote"));
            json_object_set(o, "connectedSince", json_object_get(t0, "connectedSince"));
        }
        if (o) {
            /* the edge once, with the connections that carry it now */
            json_object_set_new(o, "lanes", json_integer(lanes));
            json_object_set_new(o, "publicIp", ri_ctlinfo_ip(pub));
            json_array_append_new(edges, o);
        }
    }
    json_t *a = json_pack("{s:b, s:s, s:s, s:s, s:s, s:f, s:s, s:s, s:o, s:o}", "ok", 1,
                          "role", "hub", "version", RI_VERSION, "listen", c->listen,
                          "started", ts, "uptime", (double)(ri_now_ns() - h->started_ns) / 1e9,
                          "targetHost", c->target_host, "fingerprint", h->creds->fingerprint,
                          "plugins", ri_ctlinfo_plugins(h->cy->pl), "edges", edges);
    if (a) {
        json_object_set_new(a, "edgesFile", c->edges_file ? json_string(c->edges_file)
                                                          : json_null());
        json_object_set_new(a, "stopping", json_boolean(h->stopping));
        json_object_set_new(a, "workers", json_integer(h->n_hw));
    }
    acc_free(&cx);
    return a;
}

static json_t *hub_cmd_streams(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct hub *h = arg;
    json_t *arr = json_array();
    struct acc_ctx cx;
    if (!arr || accumulate(h, &cx, 0, arr) < 0) {
        json_decref(arr);
        return ri_ctl_error("out of memory");
    }
    return json_pack("{s:b, s:o}", "ok", 1, "streams", arr);
}

/* Makes next (taken) the runtime edges: stored first (a store that fails
 * changes nothing), then applied to the live hub through the registry. */
static json_t *set_runtime(struct hub *h, struct ri_edge_set *next)
{
    char err[600];
    if (h->store && ri_edge_store_save(h->store, next, err, sizeof err) < 0) {
        ri_edge_set_unref(next);
        log_err("hub: control: cannot save the edges: %s", err);
        return ri_ctl_error("cannot save the edges (nothing changed): %s", err);
    }
    struct ri_edge_set *old = h->runtime;
    h->runtime = next;
    struct ri_edge_set *set = effective_set(h, h->cy->cfg, 0);
    if (!set) {
        h->runtime = old;
        ri_edge_set_unref(next);
        return ri_ctl_error("out of memory");
    }
    ri_edge_set_unref(old);
    h->change_src = "control";
    ri_registry_apply(&h->reg, set, edge_changed, h);
    ri_edge_set_unref(set);
    push_view(h, NULL);
    return NULL;
}

static json_t *hub_cmd_update_edges(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct hub *h = arg;
    struct ri_edge_def *defs;
    size_t n;
    char err[600];
    if (ri_edges_from_json(json_object_get(req, "edges"), &defs, &n, err, sizeof err) < 0)
        return ri_ctl_error("%s; nothing changed", err);
    struct ri_edge_set *next = ri_edge_set_new(defs, n);
    ri_edge_defs_free(defs, n);
    if (!next)
        return ri_ctl_error("out of memory");
    log_info("hub: control: update_edges: %zu runtime edge%s", n, n == 1 ? "" : "s");
    json_t *e = set_runtime(h, next);
    if (e)
        return e;
    return json_pack("{s:b, s:i, s:i, s:b}", "ok", 1, "runtimeEdges", (int)n, "edges",
                     (int)h->reg.set->n, "persisted", h->store != NULL);
}

static json_t *hub_cmd_provision(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct hub *h = arg;
    const struct ri_config *c = h->cy->cfg;
    json_t *in = json_deep_copy(req);
    if (!in)
        return ri_ctl_error("out of memory");
    json_t *hh = json_object_get(in, "hub_host"), *hp = json_object_get(in, "hub_port");
    json_incref(hh);
    json_incref(hp);
    json_object_del(in, "cmd");
    json_object_del(in, "hub_host");
    json_object_del(in, "hub_port");
    struct ri_token tk = {0};
    struct ri_edge_def d;
    char err[600], host[256];
    json_t *ans = NULL;
    int lport = 0;
    if (json_object_get(in, "secret"))
        ans = ri_ctl_error("the hub makes the secret: give only id and listen_ports");
    else if (ri_edge_from_json(in, "the request", 0, &d, err, sizeof err) < 0)
        ans = ri_ctl_error("%s", err);
    json_decref(in);
    if (ans) {
        json_decref(hh);
        json_decref(hp);
        return ans;
    }
    /* where the edge connects: hub_host, else public_host, else listen's host */
    ri_parse_hostport(c->listen, host, sizeof host, &lport);
    const char *th = json_is_string(hh) ? json_string_value(hh)
                   : c->public_host ? c->public_host : host;
    if (hh && !json_is_string(hh))
        ans = ri_ctl_error("'hub_host' must be a string");
    else if (hp && (!json_is_integer(hp) || json_integer_value(hp) < 1 ||
                    json_integer_value(hp) > 65535))
        ans = ri_ctl_error("'hub_port' must be an integer 1-65535");
    else if (!hh && !c->public_host && (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")))
        ans = ri_ctl_error("the hub listens on %s: give 'hub_host' (or set "
                           "hub.public_host) for the token", c->listen);
    else if (ri_edge_set_find(h->reg.set, d.id))
        ans = ri_ctl_error("edge '%s' exists already (update_edges changes it)",
                           d.id);
    else if (strlen(th) > RI_TOKEN_FIELD_MAX)
        ans = ri_ctl_error("hub_host is longer than %d bytes", RI_TOKEN_FIELD_MAX);
    json_int_t port = hp ? json_integer_value(hp) : lport;
    char thost[RI_TOKEN_FIELD_MAX + 1] = "";
    if (!ans)
        snprintf(thost, sizeof thost, "%s", th);
    json_decref(hh);
    json_decref(hp);
    uint8_t raw[32];
    char secret[64];
    if (!ans && ri_core_api.random(raw, sizeof raw) < 0)
        ans = ri_ctl_error("cannot get random bytes");
    char *token = NULL;
    if (!ans) {
        b64url_encode(raw, sizeof raw, secret);
        snprintf(tk.hub_host, sizeof tk.hub_host, "%s", thost);
        tk.hub_port = (int)port;
        snprintf(tk.edge_id, sizeof tk.edge_id, "%s", d.id);
        snprintf(tk.secret, sizeof tk.secret, "%s", secret);
        if (!(token = ri_token_encode(&tk, err, sizeof err)))
            ans = ri_ctl_error("%s", err);
    }
    if (!ans) {
        free(d.secret);
        d.secret = strdup(secret);
        const struct ri_edge_set *rt = h->runtime;
        struct ri_edge_def *defs = calloc(rt->n + 2, sizeof *defs);
        struct ri_edge_set *next = NULL;
        if (defs && d.secret) {
            memcpy(defs, rt->v, rt->n * sizeof *defs);
            defs[rt->n] = d;
            next = ri_edge_set_new(defs, rt->n + 1);
        }
        free(defs);
        if (!next)
            ans = ri_ctl_error("out of memory");
        else {
            log_info("hub: control: provisioned edge %s (%zu port%s)", d.id, d.n_ports,
                     d.n_ports == 1 ? "" : "s");
            ans = set_runtime(h, next);
        }
        if (!ans)
            ans = json_pack("{s:b, s:s, s:s, s:s, s:s, s:I, s:b}", "ok", 1, "id", d.id, "secret",
                            secret, "token", token, "hubHost", tk.hub_host, "hubPort", port,
                            "persisted", h->store != NULL);
    }
    if (token) {
        gnutls_memset(token, 0, strlen(token));
        free(token);
    }
    gnutls_memset(&tk, 0, sizeof tk);
    gnutls_memset(secret, 0, sizeof secret);
    if (d.secret)
        gnutls_memset(d.secret, 0, strlen(d.secret));
    free(d.secret);
    free(d.id);
    free(d.ports);
    return ans;
}

static void hub_reload(struct hub *h);

static json_t *hub_cmd_reload(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct hub *h = arg;
    if (h->stopping)
        return ri_ctl_error("the hub is stopping");
    uint64_t *w = realloc(h->reload_waiters, (h->n_waiters + 1) * sizeof *w);
    if (!w)
        return ri_ctl_error("out of memory");
    h->reload_waiters = w;
    w[h->n_waiters++] = client;
    hub_reload(h); /* answers when it is done (target_host resolves off the loop) */
    return NULL;
}

/* Counters for the metrics (admin_http), read when asked: the process's
 * totals and, per edge of the current set, the registry's counts with the
 * bytes of its live streams added. */
static json_t *hub_cmd_metrics(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req)
{
    struct hub *h = arg;
    struct acc_ctx cx;
    if (accumulate(h, &cx, 1, NULL) < 0)
        return ri_ctl_error("out of memory");
    json_t *edges = json_array();
    const struct ri_edge_set *set = h->reg.set;
    for (size_t i = 0; edges && set && i < set->n; i++) {
        const struct ri_edge_def *d = &set->v[i];
        struct ri_edge_stats *st = ri_registry_stats(&h->reg, d->id);
        const struct edge_acc *ac = &cx.acc[i];
        uint64_t up = ac->up, down = ac->down; /* closed and live streams, per worker */
        json_t *o = json_pack(
            "{s:s, s:b, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", d->id,
            "connected", ac->tunnels > 0, "tunnels", (int)ac->tunnels,
            "activeStreams", (int)ac->active, "streamsOpened",
            (json_int_t)(st ? st->streams_opened : 0), "streamsClosed",
            (json_int_t)(st ? st->streams_closed : 0), "bytesUp",
            (json_int_t)up, "bytesDown", (json_int_t)down, "connects",
            (json_int_t)(st ? st->connects : 0), "authFailures",
            (json_int_t)(st ? st->auth_failures : 0), "badOpens",
            (json_int_t)(st ? st->bad_opens : 0), "portsFailed",
            (json_int_t)(st ? st->ports_failed : 0));
        if (o) {
            json_object_set_new(o, "schedQueued", json_integer((json_int_t)ac->schedq));
            json_object_set_new(o, "controlQueuedBytes", json_integer((json_int_t)ac->ctrlq));
            json_object_set_new(o, "lanes", json_integer(ac->lanes));
            json_object_set_new(o, "publicIp",
                                ri_ctlinfo_ip(ac->pub.ss_family ? &ac->pub : NULL));
            json_array_append_new(edges, o);
        }
    }
    json_t *a = json_pack("{s:b, s:s, s:b, s:f}", "ok", 1, "role", "hub", "ready",
                          h->lfd >= 0 && !h->stopping, "uptime",
                          (double)(ri_now_ns() - h->started_ns) / 1e9);
    if (!a || !edges) {
        json_decref(a);
        json_decref(edges);
        acc_free(&cx);
        return ri_ctl_error("out of memory");
    }
    ri_ctlinfo_counters(a, &cx.sum);
    json_object_set_new(a, "schedQueued", json_integer((json_int_t)cx.schedq));
    json_object_set_new(a, "controlQueuedBytes", json_integer((json_int_t)cx.ctrlq));
    json_object_set_new(a, "handshaking", json_integer(h->handshaking));
    json_object_set_new(a, "handshakeFailures", json_integer((json_int_t)h->handshake_failures));
    json_object_set_new(a, "workers", json_integer(h->n_hw));
    json_object_set_new(a, "edges", edges);
    acc_free(&cx);
    return a;
}

static const struct ri_ctl_cmd hub_cmds[] = {
    {"status", hub_cmd_status},   {"streams", hub_cmd_streams}, {"metrics", hub_cmd_metrics},
    {"update_edges", hub_cmd_update_edges}, {"provision", hub_cmd_provision},
    {"reload", hub_cmd_reload},   {NULL, NULL},
};

/* A service plugin's api->query runs the read-only commands above. */
static json_t *hub_query(void *arg, json_t *req) { return ri_ctl_query(hub_cmds, arg, req); }

static void set_service_hook(struct hub *h, struct ri_cycle *cy)
{
    if (cy->pl->service) {
        cy->pl->service->query = hub_query;
        cy->pl->service->query_arg = h;
    }
}

/* ---- shutdown -------------------------------------------------------------------- */
/* Every tunnel, on the main loop and on each worker */
static void stop_everywhere(struct hub *h, const char *why, int now)
{
    struct stop_ctx c = {.why = why, .now = now};
    hw_stop_in(&c, h->tunnels);
    for (uint32_t i = 0; i < h->n_hw; i++) {
        c.hw = &h->hw[i];
        to_worker(c.hw, hw_stop_run, &c);
    }
}

static void close_all(struct hub *h, const char *why)
{
    stop_everywhere(h, why, 1);
}

static void drain_timeout_cb(EV_P_ ev_timer *w, int revents)
{
    struct hub *h = w->data;
    log_warn("hub: drain timeout: closing tunnels with open streams");
    close_all(h, "drain timeout");
}

/* Stopping: a reload still resolving its target_host will not be applied;
 * whoever asked for it over the control socket hears so now, not a closed
 * connection. */
static void abandon_reload(struct hub *h)
{
    if (h->pending) {
        ri_resolve_cancel(h->pending_req);
        ri_cycle_unref(h->pending);
        ri_tls_creds_unref(h->pending_creds);
        h->pending = NULL;
        h->pending_creds = NULL;
        h->pending_req = NULL;
        log_info("hub: stopping: the reload waiting for target_host is abandoned");
    }
    if (h->n_waiters)
        reload_answer(h, NULL, json_pack("[s]", "shutting down: reload abandoned"));
}

/* why: NULL for a stop signal, else the reason edges are told */
static void hub_stop(struct hub *h, const char *why)
{
    if (!h->stopping)
        ri_sd_notify("STOPPING=1");
    if (h->stopping) {
        if (why)
            return;
        log_warn("hub: second stop signal: closing now");
        close_all(h, "second stop signal");
        return;
    }
    h->stopping = 1;
    abandon_reload(h);
    ri_handover_close(h->ho);
    h->ho = NULL;
    if (!why)
        why = "hub stopping";
    log_info("hub: stopping (%s): no new edges; draining open streams (up to %.0f s)", why,
             h->cy->cfg->drain_timeout);
    ev_io_stop(h->loop, &h->lio);
    ev_timer_stop(h->loop, &h->accept_pause);
    close(h->lfd);
    h->lfd = -1;
    if (!h->tunnels && !lanes_out(h)) {
        ev_break(h->loop, EVBREAK_ALL);
        return;
    }
    stop_everywhere(h, why, 0);
    ev_timer_set(&h->drain, h->cy->cfg->drain_timeout, 0);
    ev_timer_start(h->loop, &h->drain);
}

static void signal_cb(EV_P_ ev_signal *w, int revents)
{
    struct hub *h = w->data;
    if (w->signum != SIGHUP)
        hub_stop(h, NULL);
    else if (h->stopping) /* a reload now would reopen what the drain closed */
        log_info("hub: SIGHUP ignored: the hub is stopping");
    else
        hub_reload(h);
}

/* ---- handover to a new process ---------------------------------------------------- */
static void ho_give(void *arg, struct ri_fdpool *pool, json_t *info)
{
    struct hub *h = arg;
    if (h->lfd >= 0)
        ri_fdpool_put(pool, h->cy->cfg->listen, 0, fcntl(h->lfd, F_DUPFD_CLOEXEC, 0));
}

static void ho_taken(void *arg)
{
    hub_stop(arg, "handing over to a new hub process");
}

static const struct ri_handover_ops ho_ops = {.give = ho_give, .taken = ho_taken};

/* A process already serving this config's handover socket gives us its
 * listening socket: returns it (and *conn for the commit), or -1. */
static int take_over(struct hub *h, int *conn)
{
    const struct ri_config *c = h->cy->cfg;
    struct ri_fdpool pool = {0};
    json_t *info = NULL;
    char err[300];
    int rc = ri_handover_fetch(c->handover_socket, RI_ROLE_HUB, &pool, &info, conn, err,
                               sizeof err);
    json_decref(info);
    if (rc < 0)
        log_warn("hub: taking over from the running process failed (%s): opening our own "
                 "socket", err);
    int fd = rc > 0 ? ri_fdpool_take(&pool, c->listen, 0) : -1;
    if (rc > 0 && fd < 0)
        log_warn("hub: the running process listens elsewhere (not on %s): opening our own "
                 "socket", c->listen);
    ri_fdpool_free(&pool);
    return fd;
}

/* ---- starting and stopping the workers ----------------------------------------------- */
/* n event loops for ready tunnels: n = 1 is the main loop itself; more
 * are threads of their own (and the main loop keeps to handshakes and the
 * control path) */
static int start_workers(struct hub *h, uint32_t n, char *err, size_t errlen)
{
    if (!(h->hw = calloc(n, sizeof *h->hw))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->main = (struct hub_main){.h = h, .mb = &h->mb, .bus = &h->bus,
                                .lane_gone_run = lane_gone_run, .edge_note_run = edge_note_run};
    if (n > 1) {
        if (ri_mailbox_init(&h->mb, h->loop) < 0) {
            snprintf(err, errlen, "cannot create the workers' mailbox");
            return -1;
        }
        h->mb_open = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct hub_worker *hw = &h->hw[i];
        hw->main = &h->main;
        hw->index = (int)i + 1;
        hw->cy = ri_cycle_ref(h->cy);
        hw->set = ri_edge_set_ref(h->reg.set);
        hw->target = h->target;
        hw->target_len = h->target_len;
        if (n == 1) {
            hw->loop = h->loop;
            hw->w = &h->w;
            if (!ri_event_subscribe(&h->bus, RI_EVT_BIT(RI_EVT_STREAM_CLOSED), hw_count, hw)) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        } else {
            char name[32]; /* a thread's name holds 15 characters */
            snprintf(name, sizeof name, "ri-worker-%u", i + 1);
            snprintf(hw->who, sizeof hw->who, "hub: worker %u", i + 1);
            hw->threaded = 1;
            hw->w = &hw->own;
            if (ri_wthread_start(&hw->th, name, hw_thread_start, hw_thread_stop, hw, err,
                                 errlen) < 0)
                return -1;
            hw->loop = hw->th.loop;
        }
        h->n_hw++;
    }
    return 0;
}

static void stop_workers(struct hub *h)
{
    for (uint32_t i = 0; i < h->n_hw; i++)
        if (h->hw[i].threaded)
            ri_wthread_stop(&h->hw[i].th);
    if (h->mb_open) { /* what they posted last: events, lanes gone */
        ri_mailbox_close(&h->mb);
        ri_mailbox_free(&h->mb);
    }
    for (uint32_t i = 0; i < h->n_hw; i++) {
        ri_cycle_unref(h->hw[i].cy);
        ri_edge_set_unref(h->hw[i].set);
        free(h->hw[i].eb);
    }
    free(h->hw);
    while (h->homes) {
        struct hub_home *o = h->homes;
        h->homes = o->next;
        free(o);
    }
}

static uint32_t workers_wanted(const struct ri_config *c)
{
    if (c->workers)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > RI_WORKERS_MAX ? RI_WORKERS_MAX : (uint32_t)n;
}

int ri_hub_run(struct ri_cycle *cy, const struct ri_run_opts *opts)
{
    struct hub *h = calloc(1, sizeof *h);
    if (!h) {
        ri_cycle_unref(cy);
        return 1;
    }
    h->loop = opts->loop;
    h->opts = opts;
    h->cy = cy;
    set_service_hook(h, cy);
    h->lfd = -1;
    h->rl_accept = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    h->rl_overload = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    h->rl_preauth = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    h->rl_penalty = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    h->rl_banned = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    h->rl_replace = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    h->rl_lanes = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 2);
    h->rl_ports = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    ev_timer_init(&h->handoff, handoff_cb, 0, 0);
    h->handoff.data = h;
    ri_event_bus_init(&h->bus);
    ri_event_subscribe(&h->bus, RI_EVT_ALL, ri_event_log, NULL);
    ri_event_subscribe(&h->bus, RI_EVT_ALL, ri_registry_count, &h->reg);
    ri_event_subscribe(&h->bus, RI_EVT_BIT(RI_EVT_RELOAD_OK) | RI_EVT_BIT(RI_EVT_RELOAD_FAILED),
                       ri_sd_notify_event, NULL);
    ri_worker_init(&h->w, h->loop, 0, &h->bus);
    const struct ri_config *c = cy->cfg;
    char err[1024] = "";
    int rc = 1;
    h->started_ns = ri_now_ns();
    if (c->edges_file) {
        if (!(h->store = ri_edge_store_file(c->edges_file))) {
            log_err("hub: out of memory");
            goto out;
        }
        if (!(h->runtime = ri_edge_store_load(h->store, err, sizeof err))) {
            log_err("hub: %s:%d: edges_file: %s", c->path, c->edges_file_line, err);
            goto out;
        }
        log_info("hub: %zu runtime edge%s from %s", h->runtime->n,
                 h->runtime->n == 1 ? "" : "s", c->edges_file);
    } else if (!(h->runtime = ri_edge_set_new(NULL, 0))) {
        log_err("hub: out of memory");
        goto out;
    }
    ri_registry_init(&h->reg, effective_set(h, c, 1));
    if (!h->reg.set) {
        log_err("hub: out of memory");
        goto out;
    }
    if (ri_resolve(c->target_host, 1, &h->target, &h->target_len, err, sizeof err) < 0) {
        log_err("hub: %s:%d: target_host: %s", c->path, c->target_host_line, err);
        goto out;
    }
    if (!(h->res = ri_resolver_new(h->loop))) {
        log_err("hub: cannot start the resolver");
        goto out;
    }
    if (!(h->creds = hub_creds(c, NULL, err, sizeof err))) {
        log_err("hub: %s", err);
        goto out;
    }
    if (start_workers(h, workers_wanted(c), err, sizeof err) < 0) {
        log_err("hub: %s", err);
        goto out;
    }
    if (ri_accesslog_apply(&h->alog, &h->bus, c->access_log, err, sizeof err) < 0) {
        log_err("hub: %s", err);
        goto out;
    }
    if (c->user && ri_user_check(c->user, err, sizeof err) < 0) {
        log_err("hub: %s", err);
        goto out;
    }
    int conn = -1;
    if (c->handover_socket && (h->lfd = take_over(h, &conn)) >= 0)
        log_info("hub: took the listening socket %s over from the running process", c->listen);
    if (h->lfd < 0 && (h->lfd = open_listener(c->listen, err, sizeof err)) < 0) {
        log_err("hub: %s", err);
        if (conn >= 0)
            close(conn); /* the old process serves on */
        goto out;
    }
    /* the control socket before the "listening" line: whoever waits for that
     * line (an operator's script, the tests) may talk to the socket at once */
    if (c->control_socket) {
        if (!(h->ctl = ri_ctl_open(h->loop, &h->bus, c->control_socket, c->control_socket_mode,
                                   hub_cmds, h, err, sizeof err))) {
            log_err("hub: %s:%d: %s", c->path, c->control_socket_line, err);
            if (conn >= 0)
                close(conn); /* the old process serves on */
            goto out;
        }
        log_info("hub: control socket %s", c->control_socket);
    }
    log_info("hub: listening on %s for %zu edge%s; TLS certificate %s%s%s%s", c->listen,
             c->n_edges, c->n_edges == 1 ? "" : "s", h->creds->fingerprint,
             h->creds->origin == RI_TLS_EPHEMERAL ? " (ephemeral, self-signed)"
             : h->creds->origin == RI_TLS_FROM_STATE ? " (self-signed, kept in " : "",
             h->creds->origin == RI_TLS_FROM_STATE ? c->state_dir : "",
             h->creds->origin == RI_TLS_FROM_STATE ? ")" : "");
    if (h->hw[0].threaded)
        log_info("hub: %u workers: event loops on threads of their own run the edges' "
                 "tunnels; this one authenticates and serves the control path", h->n_hw);
    else
        log_info("hub: 1 worker: one event loop runs everything");
    log_info("hub: streams go to %s:<edge port>%s%s", c->target_host,
             cy->pl->header ? " with header " : " (no header injector)",
             cy->pl->header ? cy->pl->header->mod->desc.name : "");
    ev_io_init(&h->lio, accept_cb, h->lfd, EV_READ);
    ev_init(&h->accept_pause, accept_resume_cb);
    ev_init(&h->drain, drain_timeout_cb);
    ev_signal_init(&h->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&h->sig_int, signal_cb, SIGINT);
    ev_signal_init(&h->sig_hup, signal_cb, SIGHUP);
    h->lio.data = h->accept_pause.data = h->drain.data = h;
    h->sig_term.data = h->sig_int.data = h->sig_hup.data = h;
    ev_io_start(h->loop, &h->lio);
    if (conn >= 0 && ri_handover_commit(conn, err, sizeof err) < 0)
        log_warn("hub: the old process did not confirm the handover (%s): it may still "
                 "accept too", err);
    if (c->handover_socket &&
        !(h->ho = ri_handover_serve(h->loop, c->handover_socket, RI_ROLE_HUB, &ho_ops, h, err,
                                    sizeof err)))
        log_warn("hub: %s: upgrades will not be able to take over", err);
    /* everything that needs root is open: the TLS key, the listening socket */
    if (c->user && ri_drop_privileges(c->user, err, sizeof err) < 0) {
        log_err("hub: %s", err);
        goto out;
    }
    ev_signal_start(h->loop, &h->sig_term);
    ev_signal_start(h->loop, &h->sig_int);
    ev_signal_start(h->loop, &h->sig_hup);
    ri_sd_notify("READY=1"); /* systemd (Type=notify): the tunnel port accepts */

    ev_run(h->loop, 0);
    ev_run(h->loop, EVRUN_NOWAIT); /* the reapers of the tunnels that just closed */
    rc = 0;

    /* after the loop: tunnels freed by their reapers, which ran */
    ev_timer_stop(h->loop, &h->drain);
    ev_timer_stop(h->loop, &h->accept_pause);
    ev_signal_stop(h->loop, &h->sig_term);
    ev_signal_stop(h->loop, &h->sig_int);
    ev_signal_stop(h->loop, &h->sig_hup);
    log_info("hub: stopped");
out:
    abandon_reload(h);
    stop_workers(h);
    ri_ctl_close(h->ctl);
    free(h->reload_waiters);
    ri_edge_set_unref(h->runtime);
    ri_edge_store_free(h->store);
    ri_handover_close(h->ho);
    if (h->lfd >= 0)
        close(h->lfd);
    ri_resolver_free(h->res);
    ri_tls_creds_unref(h->creds);
    ri_registry_free(&h->reg);
    ri_cycle_unref(h->cy);
    ri_worker_destroy(&h->w);
    ri_accesslog_apply(&h->alog, &h->bus, NULL, err, sizeof err);
    ri_event_bus_free(&h->bus);
    free(h);
    return rc;
}
