/* hub.c -- the hub role: accepts edges over TLS, authenticates them, pushes
 * their ports, and connects each stream to target_host:<edge port> with the
 * header injector's bytes first. */
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
#include "clock.h"
#include "log.h"
#include "netutil.h"
#include "penalty.h"
#include "ratelimit.h"
#include "role.h"
#include "tunnel.h"

struct hub {
    struct ri_cycle *cy;
    const char *path;
    struct ri_tls_creds creds;
    int lfd;
    ev_io lio;
    struct ri_tunnel *tunnels;
    uint32_t handshaking;
    struct sockaddr_storage target;
    socklen_t target_len;
    int stopping;
    ev_timer drain;
    ev_timer accept_pause;
    ev_timer trim; /* gives memory back after a burst (ri_bq_trim) */
    /* what unauthenticated peers can make us log: accept failures, the
     * handshake cap, handshakes that fail (shared by those tunnels) */
    struct ri_ratelimit rl_accept, rl_overload, rl_preauth, rl_penalty, rl_banned;
    struct ri_penalty penalty; /* addresses that keep failing to authenticate */
};

static struct hub H;

/* ---- tunnel hooks --------------------------------------------------------- */
static int hub_lookup(struct ri_tunnel *t, const char *id, const uint8_t **secret, size_t *len)
{
    const struct ri_edge_conf *e = ri_config_find_edge(H.cy->cfg, id);
    if (!e)
        return -1;
    *secret = (const uint8_t *)e->secret;
    *len = strlen(e->secret);
    return 0;
}

static void send_config(struct ri_tunnel *t, const struct ri_edge_conf *e)
{
    static struct ri_config_msg m;
    static uint8_t buf[6 + 2 * RI_CONFIG_PORTS_MAX];
    m.stun_interval_secs = e->stun_interval_secs;
    m.n_ports = (uint16_t)e->n_ports;
    memcpy(m.ports, e->ports, e->n_ports * sizeof *e->ports);
    size_t n = ri_config_encode(buf, sizeof buf, &m);
    ri_tunnel_ctrl(t, RI_F_CONFIG, 0, buf, n);
}

static void hub_ready(struct ri_tunnel *t)
{
    H.handshaking--;
    ri_penalty_clear(&H.penalty, (struct sockaddr *)&t->peer_sa);
    /* a reload since HELLO looked the edge up may have removed it or changed
     * its secret (hub_reload skips tunnels still in the handshake) */
    const struct ri_edge_conf *e = ri_config_find_edge(H.cy->cfg, t->edge_id);
    if (!e || strcmp(e->secret, (const char *)t->secret) != 0) {
        log_info("edge %s: %s during its handshake: disconnecting", t->edge_id,
                 e ? "secret changed" : "removed from the config");
        ri_tunnel_goaway(t, e ? RI_E_AUTH : RI_E_REMOVED,
                         e ? "secret changed" : "edge removed from the hub config", 1);
        return;
    }
    /* policy: the newer connection for an edge id replaces the older one */
    for (struct ri_tunnel *o = H.tunnels; o; o = o->next)
        if (o != t && o->was_ready && o->state == RI_T_READY && strcmp(o->edge_id, t->edge_id) == 0) {
            log_warn("edge %s: new connection from %s replaces the one from %s", t->edge_id,
                     t->peer, o->peer);
            ri_tunnel_goaway(o, RI_E_REPLACED, "a newer connection for this edge id", 1);
        }
    log_info("edge %s connected from %s (%zu port%s)", t->edge_id, t->peer, e->n_ports,
             e->n_ports == 1 ? "" : "s");
    send_config(t, e);
}

static void connect_timeout_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_stream *s = (struct ri_stream *)((char *)w - offsetof(struct ri_stream, ctimer));
    ri_mux_stream_connected(s, ETIMEDOUT);
}

static int hub_open(struct ri_tunnel *t, uint32_t id, const struct ri_open *o)
{
    uint16_t port = ntohs(o->edge.ss_family == AF_INET
                              ? ((const struct sockaddr_in *)&o->edge)->sin_port
                              : ((const struct sockaddr_in6 *)&o->edge)->sin6_port);
    /* Only the ports the hub assigned to this edge, as it stands now (a
     * port removed by a reload is refused from that moment on). */
    const struct ri_edge_conf *ec = ri_config_find_edge(H.cy->cfg, t->edge_id);
    if (!ec || !ri_edge_has_port(ec, port)) {
        t->bad_opens++;
        ri_log_rl(&t->rl, RI_LOG_WARN,
                  "edge %s: stream %u: refused: port %u is not assigned to this edge "
                  "(%u such OPENs on this tunnel)", t->edge_id, id, port, t->bad_opens);
        ri_tunnel_rst(t, id, RI_RST_FORBIDDEN, "port not assigned to this edge");
        if (t->bad_opens > RI_BAD_OPENS_MAX)
            ri_tunnel_goaway(t, RI_E_PROTOCOL,
                             "too many OPENs for ports not assigned to this edge", 1);
        return -1;
    }
    struct ri_stream *s = ri_mux_stream_new(t, id, port);
    if (!s)
        return -1;
    struct ri_inst *hi = H.cy->pl->header;
    if (hi) {
        const struct ri_header_ops *ops = hi->mod->desc->ops;
        struct ri_conn_info ci = {.client = o->client, .edge = o->edge,
                                  .edge_id = t->edge_id, .stream_id = id};
        uint8_t hdr[RI_HEADER_MAX];
        size_t len = 0;
        char err[200] = "";
        if (ops->build(hi->state, &ci, hdr, sizeof hdr, &len, err, sizeof err) < 0 ||
            len > sizeof hdr) {
            ri_log_rl(&t->rl, RI_LOG_WARN, "edge %s: stream %u: header plugin: %s", t->edge_id,
                      id, err);
            ri_mux_stream_reset(s, RI_RST_INTERNAL, "header injector failed");
            return -1;
        }
        if (len && ri_mux_stream_prepend(s, hdr, len) < 0) {
            ri_mux_stream_reset(s, RI_RST_INTERNAL, "out of memory");
            return -1;
        }
    }
    struct sockaddr_storage dst = H.target;
    if (dst.ss_family == AF_INET)
        ((struct sockaddr_in *)&dst)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&dst)->sin6_port = htons(port);
    int fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        char why[96];
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        ri_mux_stream_reset(s, RI_RST_INTERNAL, why);
        return -1;
    }
    int rc = connect(fd, (struct sockaddr *)&dst, H.target_len);
    if (rc == 0) {
        ri_mux_stream_attach(s, fd, 1);
        ri_mux_stream_connected(s, 0);
    } else if (errno == EINPROGRESS) {
        ri_mux_stream_attach(s, fd, 1);
        ev_timer_init(&s->ctimer, connect_timeout_cb, H.cy->cfg->connect_timeout, 0);
        ev_timer_start(EV_DEFAULT, &s->ctimer);
    } else {
        int e = errno;
        ri_mux_stream_attach(s, fd, 1);
        ri_mux_stream_connected(s, e);
        return -1;
    }
    return 0;
}


static void hub_closed(struct ri_tunnel *t, unsigned code)
{
    if (!t->was_ready)
        H.handshaking--;
    if (!t->was_ready && (code == RI_E_AUTH || code == RI_E_UNKNOWN_EDGE)) {
        uint64_t ban = ri_penalty_fail(&H.penalty, (struct sockaddr *)&t->peer_sa, ri_now_ns());
        if (ban)
            ri_log_rl(&H.rl_penalty, RI_LOG_WARN,
                      "hub: %s keeps failing to authenticate: refusing its connections for "
                      "%.0f s", t->peer, (double)ban / 1e9);
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        H.tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    if (H.stopping && !H.tunnels)
        ev_break(EV_DEFAULT, EVBREAK_ALL);
}

static const struct ri_tunnel_hooks hub_hooks = {
    .lookup = hub_lookup,
    .ready = hub_ready,
    .open = hub_open,
    .closed = hub_closed,
};

/* ---- accepting edges --------------------------------------------------------- */
static void accept_cb(EV_P_ ev_io *w, int revents)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(H.lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listener stays readable: pause it instead of spinning.
                 * The timer is re-armed with its interval every time (a
                 * fired one-shot libev timer would otherwise restart with
                 * a deadline in the past and fire at once). */
                ri_log_rl(&H.rl_accept, RI_LOG_WARN,
                          "hub: accept: %s: pausing new connections for 1 s", strerror(errno));
                ev_io_stop(EV_A_ & H.lio);
                ev_timer_stop(EV_A_ & H.accept_pause);
                ev_timer_set(&H.accept_pause, 1.0, 0);
                ev_timer_start(EV_A_ & H.accept_pause);
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                ri_log_rl(&H.rl_accept, RI_LOG_WARN, "hub: accept: %s", strerror(errno));
            }
            return;
        }
        char peer[64];
        ri_addr_str((struct sockaddr *)&ss, peer, sizeof peer);
        uint64_t ban = ri_penalty_check(&H.penalty, (struct sockaddr *)&ss, ri_now_ns());
        if (ban) {
            ri_log_rl(&H.rl_banned, RI_LOG_WARN,
                      "hub: refusing %s for %.0f s more: repeated authentication failures",
                      peer, (double)ban / 1e9);
            close(fd);
            continue;
        }
        if (H.handshaking >= H.cy->cfg->max_handshakes) {
            ri_log_rl(&H.rl_overload, RI_LOG_WARN,
                      "hub: %u connections still in handshake (max_handshakes): dropping %s",
                      H.handshaking, peer);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct ri_tunnel *t = ri_tunnel_new(RI_ROLE_HUB, fd, H.cy, &hub_hooks, peer);
        if (!t) {
            close(fd);
            continue;
        }
        H.handshaking++;
        t->preauth_rl = &H.rl_preauth;
        memcpy(&t->peer_sa, &ss, sl < sizeof ss ? sl : sizeof ss);
        t->next = H.tunnels;
        if (H.tunnels)
            H.tunnels->prev = t;
        H.tunnels = t;
        log_debug("hub: connection from %s", peer);
        ri_tunnel_start_tls(t, &H.creds, NULL, H.cy->cfg->handshake_timeout);
    }
}

static void accept_resume_cb(EV_P_ ev_timer *w, int revents)
{
    if (!H.stopping && H.lfd >= 0)
        ev_io_start(EV_A_ & H.lio);
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

static int resolve_target(const struct ri_config *c, struct sockaddr_storage *ss,
                          socklen_t *sl)
{
    char err[256];
    if (ri_resolve(c->target_host, 1, ss, sl, err, sizeof err) < 0) {
        log_err("hub: target_host: %s", err);
        return -1;
    }
    return 0;
}

int ri_hub_check(const struct ri_config *c, struct ri_errs *errs)
{
    size_t before = errs->n;
    char err[512] = "";
    struct sockaddr_storage ss;
    socklen_t sl;
    if (ri_resolve(c->target_host, 1, &ss, &sl, err, sizeof err) < 0)
        ri_errs_add(errs, c->path, 0, "target_host: %s", err);
    if (c->tls_cert) {
        struct ri_tls_creds creds;
        if (ri_tls_server_creds(&creds, c->tls_cert, c->tls_key, err, sizeof err) < 0)
            ri_errs_add(errs, c->path, 0, "%s", err);
        ri_tls_creds_free(&creds);
    }
    return errs->n > before ? -1 : 0;
}

/* ---- reload and shutdown ------------------------------------------------------ */
static int same_ports(const struct ri_edge_conf *a, const struct ri_edge_conf *b)
{
    return a->n_ports == b->n_ports && a->stun_interval_secs == b->stun_interval_secs &&
           memcmp(a->ports, b->ports, a->n_ports * sizeof *a->ports) == 0;
}

static void hub_reload(void)
{
    struct ri_errs errs = {0};
    log_info("hub: SIGHUP: reloading %s", H.path);
    struct ri_cycle *ncy = ri_cycle_load(H.path, &errs);
    if (!ncy) {
        for (size_t i = 0; i < errs.n; i++)
            log_err("reload: %s", errs.lines[i]);
        log_err("hub: reload failed; the running configuration stays in force");
        ri_errs_free(&errs);
        return;
    }
    ri_errs_free(&errs);
    struct ri_config *oc = H.cy->cfg, *nc = ncy->cfg;
    if (nc->role != RI_ROLE_HUB) {
        log_err("hub: reload: the new config is not a hub config; keeping the running one");
        ri_cycle_unref(ncy);
        return;
    }
    struct sockaddr_storage tgt;
    socklen_t tl;
    if (resolve_target(nc, &tgt, &tl) < 0) {
        log_err("hub: reload failed; the running configuration stays in force");
        ri_cycle_unref(ncy);
        return;
    }
    if (strcmp(oc->listen, nc->listen) != 0)
        log_warn("hub: reload: 'listen' changed to %s: takes effect on restart", nc->listen);
    if (ri_str_differs(oc->tls_cert, nc->tls_cert) || ri_str_differs(oc->tls_key, nc->tls_key))
        log_warn("hub: reload: TLS certificate settings changed: take effect on restart");
    H.target = tgt;
    H.target_len = tl;
    struct ri_cycle *old = H.cy;
    H.cy = ncy;
    ri_log_level = nc->log_level;
    for (struct ri_tunnel *t = H.tunnels; t; t = t->next) {
        if (t->state != RI_T_READY)
            continue;
        const struct ri_edge_conf *ne = ri_config_find_edge(nc, t->edge_id);
        const struct ri_edge_conf *oe = ri_config_find_edge(oc, t->edge_id);
        if (!ne) {
            log_info("edge %s: removed from the config: disconnecting", t->edge_id);
            ri_tunnel_goaway(t, RI_E_REMOVED, "edge removed from the hub config", 1);
        } else if (!oe || strcmp(ne->secret, oe->secret) != 0) {
            log_info("edge %s: secret changed: disconnecting (it must authenticate again)",
                     t->edge_id);
            ri_tunnel_goaway(t, RI_E_AUTH, "secret changed", 1);
        } else if (!same_ports(ne, oe)) {
            log_info("edge %s: ports changed: pushing %zu port%s", t->edge_id, ne->n_ports,
                     ne->n_ports == 1 ? "" : "s");
            send_config(t, ne);
        }
    }
    ri_cycle_unref(old);
    log_info("hub: reloaded %s (%zu edge%s)", H.path, nc->n_edges, nc->n_edges == 1 ? "" : "s");
}

static void drain_timeout_cb(EV_P_ ev_timer *w, int revents)
{
    log_warn("hub: drain timeout: closing %s with open streams", H.tunnels ? "tunnels" : "");
    struct ri_tunnel *t = H.tunnels;
    while (t) {
        struct ri_tunnel *nx = t->next;
        ri_tunnel_fail(t, RI_E_SHUTDOWN, "drain timeout");
        t = nx;
    }
}

static void hub_stop(void)
{
    if (H.stopping) {
        log_warn("hub: second stop signal: closing now");
        drain_timeout_cb(EV_DEFAULT, &H.drain, 0);
        return;
    }
    H.stopping = 1;
    log_info("hub: stopping: no new edges; draining open streams (up to %.0f s)",
             H.cy->cfg->drain_timeout);
    ev_io_stop(EV_DEFAULT, &H.lio);
    ev_timer_stop(EV_DEFAULT, &H.accept_pause);
    close(H.lfd);
    H.lfd = -1;
    if (!H.tunnels) {
        ev_break(EV_DEFAULT, EVBREAK_ALL);
        return;
    }
    for (struct ri_tunnel *t = H.tunnels; t; t = t->next) {
        if (t->state != RI_T_READY)
            ri_tunnel_fail(t, RI_E_SHUTDOWN, "hub stopping");
        else
            ri_tunnel_goaway(t, RI_E_SHUTDOWN, "hub stopping", t->mux.n == 0);
    }
    ev_timer_init(&H.drain, drain_timeout_cb, H.cy->cfg->drain_timeout, 0);
    ev_timer_start(EV_DEFAULT, &H.drain);
}

static void trim_cb(EV_P_ ev_timer *w, int revents)
{
    if (ri_bq_trim())
        log_debug("memory: returned free heap pages to the system after a burst");
}

static void signal_cb(EV_P_ ev_signal *w, int revents)
{
    if (w->signum == SIGHUP)
        hub_reload();
    else
        hub_stop();
}

int ri_hub_run(struct ri_cycle *cy, const char *path)
{
    memset(&H, 0, sizeof H);
    H.rl_accept = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    H.rl_overload = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    H.rl_preauth = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    H.rl_penalty = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    H.rl_banned = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    H.cy = cy;
    H.path = path;
    H.lfd = -1;
    const struct ri_config *c = cy->cfg;
    char err[512] = "";
    if (resolve_target(c, &H.target, &H.target_len) < 0)
        return 1;
    if (ri_tls_server_creds(&H.creds, c->tls_cert, c->tls_key, err, sizeof err) < 0) {
        log_err("hub: %s", err);
        return 1;
    }
    if ((H.lfd = open_listener(c->listen, err, sizeof err)) < 0) {
        log_err("hub: %s", err);
        ri_tls_creds_free(&H.creds);
        return 1;
    }
    log_info("hub: listening on %s for %zu edge%s; TLS certificate %s%s", c->listen, c->n_edges,
             c->n_edges == 1 ? "" : "s", H.creds.fingerprint,
             c->tls_cert ? "" : " (ephemeral, self-signed)");
    log_info("hub: streams go to %s:<edge port>%s%s", c->target_host,
             cy->pl->header ? " with header " : " (no header injector)",
             cy->pl->header ? cy->pl->header->mod->desc->name : "");
    ev_io_init(&H.lio, accept_cb, H.lfd, EV_READ);
    ev_timer_init(&H.accept_pause, accept_resume_cb, 1.0, 0);
    ev_timer_init(&H.trim, trim_cb, 2.0, 2.0);
    ev_timer_start(EV_DEFAULT, &H.trim);
    ev_io_start(EV_DEFAULT, &H.lio);
    ev_signal sig_term, sig_int, sig_hup;
    ev_signal_init(&sig_term, signal_cb, SIGTERM);
    ev_signal_init(&sig_int, signal_cb, SIGINT);
    ev_signal_init(&sig_hup, signal_cb, SIGHUP);
    ev_signal_start(EV_DEFAULT, &sig_term);
    ev_signal_start(EV_DEFAULT, &sig_int);
    ev_signal_start(EV_DEFAULT, &sig_hup);

    ev_run(EV_DEFAULT, 0);

    /* after the loop: free what is left (tunnels freed by their reapers) */
    ev_timer_stop(EV_DEFAULT, &H.drain);
    ev_timer_stop(EV_DEFAULT, &H.accept_pause);
    ev_timer_stop(EV_DEFAULT, &H.trim);
    ev_signal_stop(EV_DEFAULT, &sig_term);
    ev_signal_stop(EV_DEFAULT, &sig_int);
    ev_signal_stop(EV_DEFAULT, &sig_hup);
    if (H.lfd >= 0)
        close(H.lfd);
    ri_tls_creds_free(&H.creds);
    ri_cycle_unref(H.cy);
    log_info("hub: stopped");
    return 0;
}
