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
#include "log.h"
#include "netutil.h"
#include "role.h"
#include "tunnel.h"

struct edge {
    struct ri_cycle *cy;
    const char *path;
    struct ri_tls_creds creds; /* per connection attempt */
    int have_creds;
    struct ri_tunnel *t;
    int cfd; /* TCP connect in progress */
    struct sockaddr_storage addrs[8]; /* the hub's addresses, tried in order */
    socklen_t addr_lens[8];
    int n_addrs, next_addr;
    ev_io cio;
    ev_timer ctimer, retry, drain;
    ev_timer trim; /* gives memory back after a burst (ri_bq_trim) */
    double backoff;
    uint16_t ports[RI_CONFIG_PORTS_MAX];
    size_t n_ports;
    int listening;
    int stopping;
};

static struct edge E;

static void connect_hub(void);

static int listener_apply(struct ri_inst *li, const char *bind_address, const uint16_t *ports,
                          size_t n, int quiet)
{
    const struct ri_listener_ops *ops = li->mod->desc->ops;
    struct ri_listen_set set = {.bind_address = bind_address, .ports = ports, .n_ports = n};
    char err[512] = "";
    int rc = ops->apply(li->state, &set, err, sizeof err);
    if (rc < 0 && !quiet)
        log_warn("edge: listener: %s", err[0] ? err : "some ports could not be opened");
    return rc;
}

static void apply_ports(const uint16_t *ports, size_t n)
{
    listener_apply(E.cy->pl->listener, E.cy->cfg->bind_address, ports, n, 0);
    E.listening = n > 0;
}

static void close_listeners(void)
{
    if (E.listening)
        apply_ports(NULL, 0);
}

static void free_creds(void)
{
    if (E.have_creds)
        ri_tls_creds_free(&E.creds);
    E.have_creds = 0;
}

static void schedule_retry(void)
{
    if (E.stopping)
        return;
    const struct ri_config *c = E.cy->cfg;
    if (E.backoff < c->reconnect_min)
        E.backoff = c->reconnect_min;
    /* jitter: 75-125% of the current step, so many edges do not stampede */
    uint32_t r = 0;
    ri_core_api.random(&r, sizeof r);
    double delay = E.backoff * (0.75 + 0.5 * (r / 4294967296.0));
    if (delay > c->reconnect_max)
        delay = c->reconnect_max;
    log_info("edge: reconnecting in %.1f s", delay);
    ev_timer_stop(EV_DEFAULT, &E.retry);
    ev_timer_set(&E.retry, delay, 0);
    ev_timer_start(EV_DEFAULT, &E.retry);
    E.backoff *= 2;
    if (E.backoff > c->reconnect_max)
        E.backoff = c->reconnect_max;
}

/* ---- tunnel hooks ----------------------------------------------------------- */
static void edge_tls_up(struct ri_tunnel *t)
{
    const struct ri_config *c = t->cy->cfg;
    char err[256];
    if (ri_tls_check_peer(t->tls, &E.creds, c->hub_fingerprint, c->hub_host, err, sizeof err) < 0) {
        ri_tunnel_fail(t, RI_E_AUTH, "%s", err);
        return;
    }
    ri_tunnel_send_hello(t, c->edge_id, c->secret);
}

static void edge_ready(struct ri_tunnel *t)
{
    E.backoff = 0;
    log_info("edge %s: connected to hub %s", t->edge_id, t->peer);
}

static void edge_config(struct ri_tunnel *t, const struct ri_config_msg *m)
{
    char list[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < m->n_ports && off < sizeof list - 16; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s%u", i ? "," : "", m->ports[i]);
    if (m->n_ports * 6 > sizeof list - 16)
        snprintf(list + off, sizeof list - off, ",...");
    ri_log_rl(&t->rl, RI_LOG_INFO, "edge %s: hub assigns %u port%s: %s", t->edge_id,
              m->n_ports, m->n_ports == 1 ? "" : "s", m->n_ports ? list : "(none)");
    memcpy(E.ports, m->ports, m->n_ports * sizeof *m->ports);
    E.n_ports = m->n_ports;
    if (!t->draining && !E.stopping)
        apply_ports(E.ports, E.n_ports);
}

static void edge_goaway(struct ri_tunnel *t, unsigned code, const char *reason)
{
    close_listeners(); /* new clients are refused; open streams go on */
}

static void edge_closed(struct ri_tunnel *t, unsigned code)
{
    E.t = NULL;
    free_creds();
    close_listeners();
    if (E.stopping)
        ev_break(EV_DEFAULT, EVBREAK_ALL);
    else
        schedule_retry();
}

static const struct ri_tunnel_hooks edge_hooks = {
    .tls_up = edge_tls_up,
    .ready = edge_ready,
    .config = edge_config,
    .goaway = edge_goaway,
    .closed = edge_closed,
};

static int edge_accept(int fd, uint16_t port)
{
    if (!E.t || E.t->state != RI_T_READY || E.t->draining || E.stopping) {
        ri_close_abort(fd);
        return -1;
    }
    return ri_mux_open_local(E.t, fd, port);
}

/* ---- connecting ------------------------------------------------------------- */
static void connect_failed(const char *why)
{
    log_warn("edge: cannot reach hub %s:%d: %s", E.cy->cfg->hub_host, E.cy->cfg->hub_port, why);
    ev_io_stop(EV_DEFAULT, &E.cio);
    ev_timer_stop(EV_DEFAULT, &E.ctimer);
    if (E.cfd >= 0)
        close(E.cfd);
    E.cfd = -1;
    free_creds();
    schedule_retry();
}

static void tcp_connected(void)
{
    ev_io_stop(EV_DEFAULT, &E.cio);
    ev_timer_stop(EV_DEFAULT, &E.ctimer);
    int fd = E.cfd;
    E.cfd = -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct ri_config *c = E.cy->cfg;
    char peer[300];
    snprintf(peer, sizeof peer, "%s:%d", c->hub_host, c->hub_port);
    E.t = ri_tunnel_new(RI_ROLE_EDGE, fd, E.cy, &edge_hooks, peer);
    if (!E.t) {
        close(fd);
        free_creds();
        schedule_retry();
        return;
    }
    /* SNI only for a name, never for an address literal */
    ri_tunnel_start_tls(E.t, &E.creds, ri_is_numeric_ip(c->hub_host) ? NULL : c->hub_host, 10.0);
}

static void try_next_addr(const char *why);

static void cio_cb(EV_P_ ev_io *w, int revents)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(E.cfd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err)
        try_next_addr(strerror(err));
    else
        tcp_connected();
}

static void ctimer_cb(EV_P_ ev_timer *w, int revents) { try_next_addr("connect timed out"); }

/* A host name may resolve to several addresses (IPv6 and IPv4, say): try
 * each in turn before backing off, so one unreachable family is no outage. */
static void try_next_addr(const char *why)
{
    ev_io_stop(EV_DEFAULT, &E.cio);
    ev_timer_stop(EV_DEFAULT, &E.ctimer);
    if (E.cfd >= 0) {
        char a[64];
        log_info("edge: hub address %s: %s", ri_addr_str((struct sockaddr *)&E.addrs[E.next_addr - 1], a, sizeof a), why);
        close(E.cfd);
        E.cfd = -1;
    }
    while (E.next_addr < E.n_addrs) {
        const struct sockaddr_storage *ss = &E.addrs[E.next_addr];
        socklen_t sl = E.addr_lens[E.next_addr++];
        E.cfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (E.cfd < 0) {
            why = strerror(errno);
            continue;
        }
        if (connect(E.cfd, (const struct sockaddr *)ss, sl) == 0) {
            tcp_connected();
            return;
        }
        if (errno == EINPROGRESS) {
            ev_io_init(&E.cio, cio_cb, E.cfd, EV_WRITE);
            ev_io_start(EV_DEFAULT, &E.cio);
            ev_timer_init(&E.ctimer, ctimer_cb, 10.0, 0);
            ev_timer_start(EV_DEFAULT, &E.ctimer);
            return;
        }
        why = strerror(errno);
        close(E.cfd);
        E.cfd = -1;
    }
    connect_failed(why);
}
static void retry_cb(EV_P_ ev_timer *w, int revents) { connect_hub(); }

static void connect_hub(void)
{
    const struct ri_config *c = E.cy->cfg;
    char err[512] = "";
    if (ri_tls_client_creds(&E.creds, c->hub_ca, err, sizeof err) < 0) {
        ri_tls_creds_free(&E.creds);
        log_err("edge: %s", err);
        schedule_retry();
        return;
    }
    E.have_creds = 1;
    E.n_addrs = ri_resolve_all(c->hub_host, c->hub_port, E.addrs, E.addr_lens, 8, err, sizeof err);
    E.next_addr = 0;
    if (E.n_addrs < 0) {
        E.n_addrs = 0;
        connect_failed(err);
        return;
    }
    try_next_addr("no address");
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
    struct ri_tls_creds creds;
    if (ri_tls_client_creds(&creds, c->hub_ca, err, sizeof err) < 0)
        ri_errs_add(errs, c->path, 0, "%s", err);
    ri_tls_creds_free(&creds);
    return errs->n > before ? -1 : 0;
}

/* ---- reload and shutdown ---------------------------------------------------- */
static void edge_reload(void)
{
    struct ri_errs errs = {0};
    log_info("edge: SIGHUP: reloading %s", E.path);
    struct ri_cycle *ncy = ri_cycle_load(E.path, &errs);
    if (!ncy || ncy->cfg->role != RI_ROLE_EDGE) {
        for (size_t i = 0; i < errs.n; i++)
            log_err("reload: %s", errs.lines[i]);
        if (ncy)
            log_err("reload: the new config is not an edge config");
        log_err("edge: reload failed; the running configuration stays in force");
        ri_errs_free(&errs);
        ri_cycle_unref(ncy);
        return;
    }
    ri_errs_free(&errs);
    const struct ri_config *oc = E.cy->cfg, *nc = ncy->cfg;
    int reconnect = ri_str_differs(oc->hub_host, nc->hub_host) || oc->hub_port != nc->hub_port ||
                    ri_str_differs(oc->edge_id, nc->edge_id) || ri_str_differs(oc->secret, nc->secret) ||
                    ri_str_differs(oc->hub_fingerprint, nc->hub_fingerprint) ||
                    ri_str_differs(oc->hub_ca, nc->hub_ca);
    /* The listening sockets belong to the old cycle's listener instance.
     * Hand the ports over without a gap: the new instance opens them first
     * (listen_tcp binds with SO_REUSEPORT), then the old one accepts what
     * is queued on its sockets and closes them. A listener that cannot
     * share a port gets a second try once the old sockets are gone. */
    int was_listening = E.listening;
    struct ri_cycle *old = E.cy;
    E.cy = ncy;
    ri_log_level = nc->log_level;
    int keep = was_listening && !reconnect;
    int rc = keep ? listener_apply(ncy->pl->listener, nc->bind_address, E.ports, E.n_ports, 1) : 0;
    if (was_listening)
        listener_apply(old->pl->listener, oc->bind_address, NULL, 0, 0);
    if (keep && rc < 0)
        apply_ports(E.ports, E.n_ports);
    E.listening = keep;
    ri_cycle_unref(old);
    log_info("edge: reloaded %s", E.path);
    if (reconnect) {
        log_info("edge: hub connection settings changed: reconnecting");
        E.backoff = 0;
        if (E.t)
            ri_tunnel_fail(E.t, RI_E_SHUTDOWN, "config changed"); /* closed hook retries */
        else if (E.cfd >= 0)
            connect_failed("config changed");
        else if (ev_is_active(&E.retry))
            schedule_retry(); /* not after the old settings' (longer) backoff */
    }
}

static void drain_cb(EV_P_ ev_timer *w, int revents)
{
    if (E.t)
        ri_tunnel_fail(E.t, RI_E_SHUTDOWN, "drain timeout");
    else
        ev_break(EV_A_ EVBREAK_ALL);
}

static void edge_stop(void)
{
    if (E.stopping) {
        log_warn("edge: second stop signal: closing now");
        drain_cb(EV_DEFAULT, &E.drain, 0);
        return;
    }
    E.stopping = 1;
    close_listeners();
    ev_timer_stop(EV_DEFAULT, &E.retry);
    if (E.cfd >= 0) {
        ev_io_stop(EV_DEFAULT, &E.cio);
        ev_timer_stop(EV_DEFAULT, &E.ctimer);
        close(E.cfd);
        E.cfd = -1;
    }
    if (!E.t) {
        ev_break(EV_DEFAULT, EVBREAK_ALL);
        return;
    }
    if (E.t->state != RI_T_READY) {
        ri_tunnel_fail(E.t, RI_E_SHUTDOWN, "edge stopping");
        return;
    }
    log_info("edge: stopping: draining %u open stream%s (up to %.0f s)", E.t->mux.n,
             E.t->mux.n == 1 ? "" : "s", E.cy->cfg->drain_timeout);
    ri_tunnel_goaway(E.t, RI_E_SHUTDOWN, "edge stopping", E.t->mux.n == 0);
    ev_timer_init(&E.drain, drain_cb, E.cy->cfg->drain_timeout, 0);
    ev_timer_start(EV_DEFAULT, &E.drain);
}

static void trim_cb(EV_P_ ev_timer *w, int revents)
{
    if (ri_bq_trim())
        log_debug("memory: returned free heap pages to the system after a burst");
}

static void signal_cb(EV_P_ ev_signal *w, int revents)
{
    if (w->signum == SIGHUP)
        edge_reload();
    else
        edge_stop();
}

int ri_edge_run(struct ri_cycle *cy, const char *path)
{
    memset(&E, 0, sizeof E);
    E.cy = cy;
    E.path = path;
    E.cfd = -1;
    ri_api_set_accept_hook(edge_accept);
    ev_init(&E.retry, retry_cb);
    ev_init(&E.drain, drain_cb);
    ev_timer_init(&E.trim, trim_cb, 2.0, 2.0);
    ev_timer_start(EV_DEFAULT, &E.trim);
    const struct ri_config *c = cy->cfg;
    log_info("edge %s: hub %s:%d, binding %s%s%s", c->edge_id, c->hub_host, c->hub_port,
             c->bind_address, c->hub_fingerprint ? ", pinned hub certificate" : "",
             c->hub_ca ? ", hub certificate checked against hub_ca" : "");
    ev_signal sig_term, sig_int, sig_hup;
    ev_signal_init(&sig_term, signal_cb, SIGTERM);
    ev_signal_init(&sig_int, signal_cb, SIGINT);
    ev_signal_init(&sig_hup, signal_cb, SIGHUP);
    ev_signal_start(EV_DEFAULT, &sig_term);
    ev_signal_start(EV_DEFAULT, &sig_int);
    ev_signal_start(EV_DEFAULT, &sig_hup);
    connect_hub();

    ev_run(EV_DEFAULT, 0);

    ev_timer_stop(EV_DEFAULT, &E.drain);
    ev_timer_stop(EV_DEFAULT, &E.retry);
    ev_timer_stop(EV_DEFAULT, &E.trim);
    ev_signal_stop(EV_DEFAULT, &sig_term);
    ev_signal_stop(EV_DEFAULT, &sig_int);
    ev_signal_stop(EV_DEFAULT, &sig_hup);
    close_listeners();
    free_creds();
    ri_cycle_unref(E.cy);
    ri_api_set_accept_hook(NULL);
    log_info("edge: stopped");
    return 0;
}
