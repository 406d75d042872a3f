/* edge.c -- the edge role: one TLS tunnel out to the hub, reconnecting with
 * exponential backoff and jitter; listens on the ports the hub assigns
 * (through the listener plugin) and opens one stream per client. */
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "cycle.h"
#include "events.h"
#include "log.h"
#include "netutil.h"
#include "resolve.h"
#include "role.h"
#include "tunnel.h"
#include "worker.h"

struct edge {
    struct ev_loop *loop;
    struct ri_worker w;
    struct ri_event_bus bus;
    struct ri_resolver *res;
    const struct ri_run_opts *opts;
    struct ri_cycle *cy;
    struct ri_tls_creds *creds;   /* for the next connection (hub_ca) */
    struct ri_tunnel *t;
    int cfd;                      /* TCP connect in progress */
    struct ri_resolve_req *rq;    /* hub_host being resolved */
    struct sockaddr_storage addrs[RI_RESOLVE_MAX]; /* the hub's addresses, tried in order */
    socklen_t addr_lens[RI_RESOLVE_MAX];
    int n_addrs, next_addr;
    ev_io cio;
    ev_timer ctimer, retry, drain, relisten;
    ev_signal sig_term, sig_int, sig_hup;
    double backoff, relisten_backoff;
    uint16_t ports[RI_CONFIG_PORTS_MAX];
    size_t n_ports;
    int listening;
    int stopping;
};

static void connect_hub(struct edge *e);

static void emit(struct edge *e, struct ri_event *ev)
{
    ev->role = RI_ROLE_EDGE;
    ri_event_emit(&e->bus, ev);
}

/* ---- listeners --------------------------------------------------------------- */
static int listener_apply(struct edge *e, struct ri_inst *li, const char *bind_address,
                          const uint16_t *ports, size_t n, int quiet)
{
    struct ri_listen_set set = {.size = sizeof set, .bind_address = bind_address,
                                .ports = ports, .n_ports = n};
    char err[512] = "";
    int rc = ri_listen_apply(li, &set, err, sizeof err);
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

static void apply_ports(struct edge *e, const uint16_t *ports, size_t n)
{
    int rc = listener_apply(e, e->cy->pl->listener, e->cy->cfg->bind_address, ports, n, 0);
    e->listening = n > 0;
    if (rc < 0 && n)
        schedule_relisten(e);
    else {
        ev_timer_stop(e->loop, &e->relisten);
        e->relisten_backoff = 0;
    }
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

static void schedule_retry(struct edge *e)
{
    if (e->stopping)
        return;
    const struct ri_config *c = e->cy->cfg;
    if (e->backoff < c->reconnect_min)
        e->backoff = c->reconnect_min;
    /* jitter: 75-125% of the current step, so many edges do not stampede */
    uint32_t r = 0;
    ri_core_api.random(&r, sizeof r);
    double delay = e->backoff * (0.75 + 0.5 * (r / 4294967296.0));
    if (delay > c->reconnect_max)
        delay = c->reconnect_max;
    log_info("edge: reconnecting in %.1f s", delay);
    ev_timer_stop(e->loop, &e->retry);
    ev_timer_set(&e->retry, delay, 0);
    ev_timer_start(e->loop, &e->retry);
    e->backoff *= 2;
    if (e->backoff > c->reconnect_max)
        e->backoff = c->reconnect_max;
}

/* ---- tunnel hooks ----------------------------------------------------------- */
static int edge_tls_up(struct ri_tunnel *t, char *err, size_t errlen)
{
    struct edge *e = t->owner;
    const struct ri_config *c = e->cy->cfg;
    return ri_tls_check_peer(t->io.s, t->creds, c->hub_fingerprint, c->hub_host, err, errlen);
}

static void edge_ready(struct ri_tunnel *t)
{
    struct edge *e = t->owner;
    e->backoff = 0;
    struct ri_event ev = {.type = RI_EVT_TUNNEL_CONNECTED, .tunnel_id = t->id,
                          .edge_id = t->edge_id, .peer = t->peer};
    emit(e, &ev);
}

static void edge_config(struct ri_tunnel *t, const struct ri_config_msg *m)
{
    struct edge *e = t->owner;
    char list[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < m->n_ports && off < sizeof list - 16; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%u", i ? "," : "", m->ports[i]);
    if (m->n_ports * 6 > sizeof list - 16)
        snprintf(list + off, sizeof list - off, ",...");
    ri_log_rl(&t->rl, RI_LOG_INFO, "edge %s: hub assigns %u port%s: %s", t->edge_id,
              m->n_ports, m->n_ports == 1 ? "" : "s", m->n_ports ? list : "(none)");
    memcpy(e->ports, m->ports, m->n_ports * sizeof *m->ports);
    e->n_ports = m->n_ports;
    struct ri_event ev = {.type = RI_EVT_PORTS_UPDATED, .tunnel_id = t->id,
                          .edge_id = t->edge_id, .peer = t->peer, .ports = e->ports,
                          .n_ports = e->n_ports};
    emit(e, &ev);
    if (!t->draining && !e->stopping)
        apply_ports(e, e->ports, e->n_ports);
}

static void edge_goaway(struct ri_tunnel *t, unsigned code, const char *reason)
{
    close_listeners(t->owner); /* new clients are refused; open streams go on */
}

static void edge_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct edge *e = t->owner;
    e->t = NULL;
    close_listeners(e);
    if (t->was_ready) {
        struct ri_event ev = {.type = RI_EVT_TUNNEL_DISCONNECTED, .tunnel_id = t->id,
                              .edge_id = t->edge_id, .peer = t->peer, .code = code,
                              .reason = why, .count = lost};
        emit(e, &ev);
    }
    if (e->stopping)
        ev_break(e->loop, EVBREAK_ALL);
    else
        schedule_retry(e);
}

static const struct ri_tunnel_hooks edge_hooks = {
    .tls_up = edge_tls_up,
    .ready = edge_ready,
    .config = edge_config,
    .goaway = edge_goaway,
    .closed = edge_closed,
};

static int edge_accept(void *arg, int fd, uint16_t port)
{
    struct edge *e = arg;
    if (!e->t || e->t->state != RI_T_READY || e->t->draining || e->stopping) {
        ri_close_abort(fd);
        return -1;
    }
    return ri_mux_open_local(&e->t->mux, fd, port);
}

static void set_listener_hook(struct edge *e, struct ri_cycle *cy)
{
    cy->pl->listener->accept = edge_accept;
    cy->pl->listener->accept_arg = e;
}

/* ---- connecting ------------------------------------------------------------- */
static void connect_failed(struct edge *e, const char *why)
{
    const struct ri_config *c = e->cy->cfg;
    int v6 = strchr(c->hub_host, ':') != NULL;
    log_warn("edge: cannot reach hub %s%s%s:%d: %s", v6 ? "[" : "", c->hub_host, v6 ? "]" : "",
             c->hub_port, why);
    ev_io_stop(e->loop, &e->cio);
    ev_timer_stop(e->loop, &e->ctimer);
    if (e->cfd >= 0)
        close(e->cfd);
    e->cfd = -1;
    schedule_retry(e);
}

static void tcp_connected(struct edge *e)
{
    ev_io_stop(e->loop, &e->cio);
    ev_timer_stop(e->loop, &e->ctimer);
    int fd = e->cfd;
    e->cfd = -1;
    const struct ri_config *c = e->cy->cfg;
    char peer[300];
    int v6 = strchr(c->hub_host, ':') != NULL;
    snprintf(peer, sizeof peer, "%s%s%s:%d", v6 ? "[" : "", c->hub_host, v6 ? "]" : "",
             c->hub_port);
    struct ri_tunnel_params p = {
        .role = RI_ROLE_EDGE, .fd = fd, .peer = peer, .w = &e->w, .api = &ri_core_api,
        .creds = e->creds, .sni = ri_is_numeric_ip(c->hub_host) ? NULL : c->hub_host,
        .auth = e->cy->pl->auth, .policy = ri_cycle_policy(e->cy), .max_streams = c->max_streams,
        .ping_interval = c->ping_interval, .ping_timeout = c->ping_timeout,
        .handshake_timeout = 10.0, .edge_id = c->edge_id, .secret = c->secret,
        .hooks = &edge_hooks, .owner = e};
    e->t = ri_tunnel_new(&p);
    if (!e->t)
        schedule_retry(e);
}

static void try_next_addr(struct edge *e, const char *why);

static void cio_cb(EV_P_ ev_io *w, int revents)
{
    struct edge *e = w->data;
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(e->cfd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err)
        try_next_addr(e, strerror(err));
    else
        tcp_connected(e);
}

static void ctimer_cb(EV_P_ ev_timer *w, int revents)
{
    try_next_addr(w->data, "connect timed out");
}

/* A host name may resolve to several addresses (IPv6 and IPv4, say): try
 * each in turn before backing off, so one unreachable family is no outage. */
static void try_next_addr(struct edge *e, const char *why)
{
    ev_io_stop(e->loop, &e->cio);
    ev_timer_stop(e->loop, &e->ctimer);
    if (e->cfd >= 0) {
        char a[64];
        log_info("edge: hub address %s: %s",
                 ri_addr_str((struct sockaddr *)&e->addrs[e->next_addr - 1], a, sizeof a), why);
        close(e->cfd);
        e->cfd = -1;
    }
    while (e->next_addr < e->n_addrs) {
        const struct sockaddr_storage *ss = &e->addrs[e->next_addr];
        socklen_t sl = e->addr_lens[e->next_addr++];
        e->cfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (e->cfd < 0) {
            why = strerror(errno);
            continue;
        }
        if (connect(e->cfd, (const struct sockaddr *)ss, sl) == 0) {
            tcp_connected(e);
            return;
        }
        if (errno == EINPROGRESS) {
            ev_io_set(&e->cio, e->cfd, EV_WRITE);
            ev_io_start(e->loop, &e->cio);
            ev_timer_set(&e->ctimer, 10.0, 0);
            ev_timer_start(e->loop, &e->ctimer);
            return;
        }
        why = strerror(errno);
        close(e->cfd);
        e->cfd = -1;
    }
    connect_failed(e, why);
}

static void resolved(void *arg, const struct sockaddr_storage *a, const socklen_t *l, int n,
                     const char *err)
{
    struct edge *e = arg;
    e->rq = NULL;
    if (n <= 0) {
        connect_failed(e, err);
        return;
    }
    memcpy(e->addrs, a, (size_t)n * sizeof *a);
    memcpy(e->addr_lens, l, (size_t)n * sizeof *l);
    e->n_addrs = n;
    e->next_addr = 0;
    try_next_addr(e, "no address");
}

static void retry_cb(EV_P_ ev_timer *w, int revents) { connect_hub(w->data); }

static void connect_hub(struct edge *e)
{
    const struct ri_config *c = e->cy->cfg;
    /* the name is resolved off the loop: open streams never wait for DNS */
    if (!(e->rq = ri_resolve_async(e->res, c->hub_host, c->hub_port, resolved, e)))
        connect_failed(e, "cannot start resolving the hub's name");
}

int ri_edge_check(const struct ri_config *c, struct ri_errs *errs)
{
    size_t before = errs->n;
    char err[512] = "";
    struct sockaddr_storage ss;
    socklen_t sl;
    /* a warning, not an error: the edge retries until the name resolves,
     * and a config is often checked where the hub's name does not */
    if (ri_resolve(c->hub_host, c->hub_port, &ss, &sl, err, sizeof err) < 0)
        fprintf(stderr, "%s: warning: hub_host: %s (the edge keeps retrying until it resolves)\n",
                c->path, err);
    struct ri_tls_creds *creds = ri_tls_client_creds(c->hub_ca, err, sizeof err);
    if (!creds)
        ri_errs_add(errs, c->path, 0, "%s", err);
    ri_tls_creds_unref(creds);
    return errs->n > before ? -1 : 0;
}

/* ---- reload and shutdown ---------------------------------------------------- */
static void edge_reload(struct edge *e)
{
    struct ri_errs errs = {0};
    log_info("edge: SIGHUP: reloading %s", e->opts->config_path);
    struct ri_cycle *ncy = ri_cycle_load(e->opts->config_path, e->loop, &ri_core_api, &errs);
    char err[512] = "";
    struct ri_tls_creds *creds = NULL;
    if (ncy && ncy->cfg->role == RI_ROLE_EDGE &&
        !(creds = ri_tls_client_creds(ncy->cfg->hub_ca, err, sizeof err)))
        ri_errs_add(&errs, ncy->cfg->path, 0, "%s", err);
    if (!ncy || ncy->cfg->role != RI_ROLE_EDGE || !creds) {
        for (size_t i = 0; i < errs.n; i++)
            log_err("reload: %s", errs.lines[i]);
        struct ri_event ev = {.type = RI_EVT_RELOAD_FAILED, .path = e->opts->config_path,
                              .reason = ncy && ncy->cfg->role != RI_ROLE_EDGE
                                            ? "the new config is not an edge config" : ""};
        emit(e, &ev);
        ri_errs_free(&errs);
        ri_cycle_unref(ncy);
        return;
    }
    ri_errs_free(&errs);
    const struct ri_config *oc = e->cy->cfg, *nc = ncy->cfg;
    int reconnect = ri_str_differs(oc->hub_host, nc->hub_host) || oc->hub_port != nc->hub_port ||
                    ri_str_differs(oc->edge_id, nc->edge_id) || ri_str_differs(oc->secret, nc->secret) ||
                    ri_str_differs(oc->hub_fingerprint, nc->hub_fingerprint) ||
                    ri_str_differs(oc->hub_ca, nc->hub_ca) ||
                    !ri_cycle_same_module(e->cy, ncy, RI_KIND_AUTH);
    int swap = ri_cycle_policy_changed(e->cy, ncy);
    char changes[400], what[420] = "";
    ri_cycle_describe_changes(e->cy, ncy, changes, sizeof changes);
    if (changes[0])
        snprintf(what, sizeof what, " (%s)", changes + 2);
    /* The listening sockets belong to the old cycle's listener instance.
     * Hand the ports over without a gap: the new instance opens them first
     * (listen_tcp binds with SO_REUSEPORT), then the old one accepts what
     * is queued on its sockets and closes them. A listener that cannot
     * share a port gets a second try once the old sockets are gone. */
    set_listener_hook(e, ncy);
    int was_listening = e->listening;
    struct ri_cycle *old = e->cy;
    e->cy = ncy;
    ri_tls_creds_unref(e->creds);
    e->creds = creds;
    ri_log_level = e->opts->debug ? RI_LOG_DEBUG : nc->log_level;
    int keep = was_listening && !reconnect;
    int rc = keep ? listener_apply(e, ncy->pl->listener, nc->bind_address, e->ports, e->n_ports, 1)
                  : 0;
    if (was_listening)
        listener_apply(e, old->pl->listener, oc->bind_address, NULL, 0, 0);
    e->listening = 0;
    if (keep) { /* the retry, or a no-op when all ports were handed over */
        e->listening = 1;
        if (rc < 0)
            apply_ports(e, e->ports, e->n_ports);
    }
    if (e->t) {
        struct ri_tunnel_settings ts = {.ping_interval = nc->ping_interval,
                                        .ping_timeout = nc->ping_timeout,
                                        .max_streams = nc->max_streams, .swap_policy = swap,
                                        .policy = ri_cycle_policy(ncy)};
        ri_tunnel_update(e->t, &ts);
    }
    ri_cycle_unref(old);
    struct ri_event ev = {.type = RI_EVT_RELOAD_OK, .path = e->opts->config_path,
                          .reason = what};
    emit(e, &ev);
    if (reconnect) {
        log_info("edge: hub connection settings changed: reconnecting");
        e->backoff = 0;
        if (e->t) {
            ri_tunnel_fail(e->t, RI_E_SHUTDOWN, "config changed"); /* closed hook retries */
        } else if (e->cfd >= 0 || e->rq) {
            ri_resolve_cancel(e->rq);
            e->rq = NULL;
            connect_failed(e, "config changed");
        } else if (ev_is_active(&e->retry)) {
            schedule_retry(e); /* not after the old settings' (longer) backoff */
        }
    }
}

static void drain_cb(EV_P_ ev_timer *w, int revents)
{
    struct edge *e = w->data;
    if (e->t)
        ri_tunnel_fail(e->t, RI_E_SHUTDOWN, "drain timeout");
    else
        ev_break(EV_A_ EVBREAK_ALL);
}

static void edge_stop(struct edge *e)
{
    if (e->stopping) {
        log_warn("edge: second stop signal: closing now");
        if (e->t)
            ri_tunnel_fail(e->t, RI_E_SHUTDOWN, "second stop signal");
        else
            ev_break(e->loop, EVBREAK_ALL);
        return;
    }
    e->stopping = 1;
    close_listeners(e);
    ev_timer_stop(e->loop, &e->retry);
    ri_resolve_cancel(e->rq);
    e->rq = NULL;
    if (e->cfd >= 0) {
        ev_io_stop(e->loop, &e->cio);
        ev_timer_stop(e->loop, &e->ctimer);
        close(e->cfd);
        e->cfd = -1;
    }
    if (!e->t) {
        ev_break(e->loop, EVBREAK_ALL);
        return;
    }
    if (e->t->state != RI_T_READY) {
        ri_tunnel_fail(e->t, RI_E_SHUTDOWN, "edge stopping");
        return;
    }
    log_info("edge: stopping: draining %u open stream%s (up to %.0f s)", e->t->mux.n,
             e->t->mux.n == 1 ? "" : "s", e->cy->cfg->drain_timeout);
    ri_tunnel_goaway(e->t, RI_E_SHUTDOWN, "edge stopping", e->t->mux.n == 0);
    ev_timer_set(&e->drain, e->cy->cfg->drain_timeout, 0);
    ev_timer_start(e->loop, &e->drain);
}

static void signal_cb(EV_P_ ev_signal *w, int revents)
{
    struct edge *e = w->data;
    if (w->signum == SIGHUP)
        edge_reload(e);
    else
        edge_stop(e);
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
    e->cfd = -1;
    ri_event_bus_init(&e->bus);
    ri_event_subscribe(&e->bus, RI_EVT_ALL, ri_event_log, NULL);
    ri_worker_init(&e->w, e->loop, 0, &e->bus);
    const struct ri_config *c = cy->cfg;
    char err[512] = "";
    int rc = 1;
    if (!(e->res = ri_resolver_new(e->loop))) {
        log_err("edge: cannot start the resolver");
        goto out;
    }
    if (!(e->creds = ri_tls_client_creds(c->hub_ca, err, sizeof err))) {
        log_err("edge: %s", err);
        goto out;
    }
    set_listener_hook(e, cy);
    ev_init(&e->retry, retry_cb);
    ev_init(&e->drain, drain_cb);
    ev_init(&e->ctimer, ctimer_cb);
    ev_init(&e->relisten, relisten_cb);
    ev_init(&e->cio, cio_cb);
    ev_signal_init(&e->sig_term, signal_cb, SIGTERM);
    ev_signal_init(&e->sig_int, signal_cb, SIGINT);
    ev_signal_init(&e->sig_hup, signal_cb, SIGHUP);
    e->retry.data = e->drain.data = e->ctimer.data = e->relisten.data = e->cio.data = e;
    e->sig_term.data = e->sig_int.data = e->sig_hup.data = e;
    int v6 = strchr(c->hub_host, ':') != NULL;
    log_info("edge %s: hub %s%s%s:%d, binding %s%s%s", c->edge_id, v6 ? "[" : "", c->hub_host,
             v6 ? "]" : "", c->hub_port, c->bind_address,
             c->hub_fingerprint ? ", pinned hub certificate" : "",
             c->hub_ca ? ", hub certificate checked against hub_ca" : "");
    ev_signal_start(e->loop, &e->sig_term);
    ev_signal_start(e->loop, &e->sig_int);
    ev_signal_start(e->loop, &e->sig_hup);
    connect_hub(e);

    ev_run(e->loop, 0);
    ev_run(e->loop, EVRUN_NOWAIT); /* the reaper of a tunnel that just closed */
    rc = 0;

    ev_timer_stop(e->loop, &e->drain);
    ev_timer_stop(e->loop, &e->retry);
    ev_timer_stop(e->loop, &e->relisten);
    ev_signal_stop(e->loop, &e->sig_term);
    ev_signal_stop(e->loop, &e->sig_int);
    ev_signal_stop(e->loop, &e->sig_hup);
    close_listeners(e);
    log_info("edge: stopped");
out:
    ri_resolver_free(e->res);
    ri_tls_creds_unref(e->creds);
    ri_cycle_unref(e->cy);
    ri_worker_destroy(&e->w);
    ri_event_bus_free(&e->bus);
    free(e);
    return rc;
}
