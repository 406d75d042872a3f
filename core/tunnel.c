/* tunnel.c -- one TLS connection: handshake and authentication, frame
 * parsing, batched writes (control frames first), keepalive, teardown. */
#include "tunnel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "log.h"

static void tunnel_read_cb(EV_P_ ev_io *w, int revents);
static void tunnel_write_cb(EV_P_ ev_io *w, int revents);
static void tunnel_flush(struct ri_tunnel *t);
static void flusher_cb(EV_P_ ev_prepare *w, int revents);

static void reaper_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = (struct ri_tunnel *)((char *)w - offsetof(struct ri_tunnel, reaper));
    ri_mux_destroy(t);
    /* ri_tunnel_fail stopped these, but a flush still running in the failing
     * callback may have re-armed the writer: never leave one on freed memory */
    ev_io_stop(EV_A_ & t->rio);
    ev_io_stop(EV_A_ & t->wio);
    ev_prepare_stop(EV_A_ & t->flusher);
    ev_timer_stop(EV_A_ & t->timer);
    ev_timer_stop(EV_A_ & t->reaper);
    if (t->tls)
        gnutls_deinit(t->tls);
    if (t->fd >= 0)
        close(t->fd);
    /* last: the owner may free the TLS credentials the session used */
    if (t->hooks->closed)
        t->hooks->closed(t, t->close_code);
    if (t->auth_conn)
        free(t->auth_conn);
    if (t->secret) {
        gnutls_memset(t->secret, 0, t->secret_len);
        free(t->secret);
    }
    ri_bq_clear(&t->ctrl);
    free(t->rbuf);
    free(t->wbuf);
    free(t->ibuf);
    free(t->obuf);
    ri_cycle_unref(t->cy);
    free(t);
}

struct ri_tunnel *ri_tunnel_new(int role, int fd, struct ri_cycle *cy,
                                const struct ri_tunnel_hooks *hooks,
                                const char *peer)
{
    struct ri_tunnel *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->rbuf = malloc(RI_RBUF_SIZE);
    t->wbuf = malloc(RI_WBUF_SIZE);
    t->ibuf = malloc(RI_NETBUF_SIZE);
    t->obuf = malloc(RI_NETBUF_SIZE);
    const struct ri_config *c = cy->cfg;
    const struct ri_auth_ops *ao = cy->pl->auth->mod->desc->ops;
    char err[256] = "out of memory";
    if (!t->rbuf || !t->wbuf || !t->ibuf || !t->obuf ||
        (ao->conn_size && !(t->auth_conn = calloc(1, ao->conn_size))) ||
        ri_mux_init(t, cy->pl->by_kind[RI_KIND_SCHED], cy->pl->by_kind[RI_KIND_CLASSIFY],
                    c->max_streams, err, sizeof err) < 0) {
        log_err("tunnel %s: %s", peer, err);
        free(t->auth_conn);
        free(t->rbuf);
        free(t->wbuf);
        free(t->ibuf);
        free(t->obuf);
        free(t);
        return NULL;
    }
    t->role = role;
    t->fd = fd;
    t->state = RI_T_TCP;
    t->cy = ri_cycle_ref(cy);
    t->hooks = hooks;
    t->ping_interval = c->ping_interval;
    t->ping_timeout = c->ping_timeout;
    snprintf(t->peer, sizeof t->peer, "%s", peer);
    t->auth = cy->pl->auth;
    /* Queue in our scheduler, not in the kernel: past this many unsent bytes
     * the socket reports "full", so control frames and interactive streams
     * never wait behind megabytes of bulk data already handed to TCP. */
    int lowat = RI_TCP_NOTSENT_LOWAT;
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    ri_pace_init(&t->pace);
    t->rl = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    ev_io_init(&t->rio, tunnel_read_cb, fd, EV_READ);
    ev_io_init(&t->wio, tunnel_write_cb, fd, EV_WRITE);
    ev_prepare_init(&t->flusher, flusher_cb);
    ev_init(&t->timer, NULL);
    ev_timer_init(&t->reaper, reaper_cb, 0, 0);
    return t;
}

static void keepalive_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = (struct ri_tunnel *)((char *)w - offsetof(struct ri_tunnel, timer));
    ev_tstamp idle = ev_now(EV_A) - t->last_rx;
    if (t->state == RI_T_READY && idle >= t->ping_timeout) {
        ri_tunnel_fail(t, RI_E_TIMEOUT, "peer silent for %.0f s (ping_timeout_secs %.0f): dead",
                       idle, t->ping_timeout);
        return;
    }
    if (t->state != RI_T_READY) {
        ri_tunnel_fail(t, RI_E_TIMEOUT, "handshake not finished in time");
        return;
    }
    if (idle >= t->ping_interval * 0.9) {
        uint8_t p[8];
        uint64_t now = (uint64_t)(ev_now(EV_A) * 1e6);
        for (int i = 0; i < 8; i++)
            p[i] = (uint8_t)(now >> (56 - 8 * i));
        ri_tunnel_ctrl(t, RI_F_PING, 0, p, 8);
    }
}

/* ---- transport: GnuTLS reads and writes our buffers, we do the syscalls -- */
static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t n)
{
    struct ri_tunnel *t = p;
    if (t->ooff && t->olen + n > RI_NETBUF_SIZE) {
        memmove(t->obuf, t->obuf + t->ooff, t->olen - t->ooff);
        t->olen -= t->ooff;
        t->ooff = 0;
    }
    size_t room = RI_NETBUF_SIZE - t->olen;
    if (room == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (n > room)
        n = room;
    memcpy(t->obuf + t->olen, data, n);
    t->olen += n;
    return (ssize_t)n;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t n)
{
    struct ri_tunnel *t = p;
    if (t->ioff == t->ilen) {
        t->ioff = t->ilen = 0;
        ssize_t r = recv(t->fd, t->ibuf, RI_NETBUF_SIZE, 0);
        if (r < 0 && errno == EAGAIN)
            t->rx_blocked = 1; /* the socket is empty: see tunnel_read */
        else if (r < 0)
            t->rx_errno = errno; /* for the log: GnuTLS only says "pull error" */
        if (r <= 0)
            return r; /* errno tells GnuTLS EAGAIN/EINTR/other; 0 is EOF */
        t->ilen = (size_t)r;
    }
    size_t k = t->ilen - t->ioff;
    if (k > n)
        k = n;
    memcpy(data, t->ibuf + t->ioff, k);
    t->ioff += k;
    return (ssize_t)k;
}

static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
    struct ri_tunnel *t = p;
    if (t->ioff < t->ilen)
        return 1;
    struct pollfd pfd = {.fd = t->fd, .events = POLLIN};
    return poll(&pfd, 1, (int)ms);
}

/* Sends what GnuTLS produced. 0: all sent; 1: socket full (writer armed);
 * -1: the tunnel failed. */
static int obuf_send(struct ri_tunnel *t)
{
    while (t->ooff < t->olen) {
        ssize_t n = send(t->fd, t->obuf + t->ooff, t->olen - t->ooff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!ev_is_active(&t->wio) && t->state != RI_T_DEAD)
                    ev_io_start(EV_DEFAULT, &t->wio);
                return 1;
            }
            ri_tunnel_fail(t, RI_E_NONE, "send: %s", strerror(errno));
            return -1;
        }
        t->ooff += (size_t)n;
    }
    t->ooff = t->olen = 0;
    return 0;
}

int ri_tunnel_start_tls(struct ri_tunnel *t, const struct ri_tls_creds *creds,
                        const char *server_name, double handshake_timeout)
{
    int rc = ri_tls_session(&t->tls, creds, t->role == RI_ROLE_HUB, t->fd, server_name);
    if (rc < 0) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "TLS session: %s", gnutls_strerror(rc));
        return -1;
    }
    gnutls_transport_set_ptr(t->tls, t);
    gnutls_transport_set_push_function(t->tls, tls_push);
    gnutls_transport_set_pull_function(t->tls, tls_pull);
    gnutls_transport_set_pull_timeout_function(t->tls, tls_pull_timeout);
    t->state = RI_T_TLS;
    t->last_rx = ev_now(EV_DEFAULT);
    /* one deadline covers TLS and authentication */
    ev_timer_init(&t->timer, keepalive_cb, handshake_timeout, 0);
    ev_timer_start(EV_DEFAULT, &t->timer);
    ev_io_start(EV_DEFAULT, &t->rio);
    ev_io_start(EV_DEFAULT, &t->wio);
    return 0;
}

/* ---- teardown ------------------------------------------------------------ */
void ri_tunnel_fail(struct ri_tunnel *t, unsigned code, const char *fmt, ...)
{
    if (t->state == RI_T_DEAD)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int lvl = (code == RI_E_SHUTDOWN || code == RI_E_NONE) ? RI_LOG_INFO : RI_LOG_WARN;
    /* an unauthenticated peer may open connections at will: their
     * endings share one limiter (the role's); an edge's tunnel logs freely */
    if (!t->was_ready && t->preauth_rl)
        ri_log_rl(t->preauth_rl, lvl, "tunnel %s%s%s: closed: %s", t->peer,
                  t->edge_id[0] ? " edge " : "", t->edge_id, msg);
    else
        ri_log(lvl, "tunnel %s%s%s: closed: %s", t->peer, t->edge_id[0] ? " edge " : "",
               t->edge_id, msg);
    t->state = RI_T_DEAD;
    t->close_code = code;
    ev_io_stop(EV_DEFAULT, &t->rio);
    ev_io_stop(EV_DEFAULT, &t->wio);
    ev_prepare_stop(EV_DEFAULT, &t->flusher);
    ev_timer_stop(EV_DEFAULT, &t->timer);
    ri_mux_stop_all(t);
    ev_timer_start(EV_DEFAULT, &t->reaper);
}

static void linger_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = (struct ri_tunnel *)((char *)w - offsetof(struct ri_tunnel, timer));
    ri_tunnel_fail(t, t->close_code, t->close_after_flush == 2
                                         ? "peer did not close the connection in time"
                                         : "peer did not read our last frame in time");
}

/* Writes what is queued, then shuts our side down and waits for the peer's
 * EOF, still reading (and discarding) meanwhile: a socket closed with bytes
 * unread, or receiving some after close, answers with a TCP reset, and the
 * reset throws away our own last bytes still in flight. */
static void close_when_flushed(struct ri_tunnel *t, unsigned code)
{
    t->close_after_flush = 1;
    t->close_code = code;
    ev_timer_stop(EV_DEFAULT, &t->timer);
    ev_timer_init(&t->timer, linger_cb, 2.0, 0);
    ev_timer_start(EV_DEFAULT, &t->timer);
    ri_tunnel_kick(t);
}

void ri_tunnel_close(struct ri_tunnel *t, unsigned code)
{
    if (t->state == RI_T_DEAD || t->close_after_flush)
        return;
    close_when_flushed(t, code);
}

void ri_tunnel_refuse(struct ri_tunnel *t, unsigned code, const char *reason)
{
    if (t->state == RI_T_DEAD || t->close_after_flush)
        return;
    if (t->preauth_rl)
        ri_log_rl(t->preauth_rl, RI_LOG_WARN, "tunnel %s%s%s: refused: %s: %s", t->peer,
                  t->edge_id[0] ? " edge " : "", t->edge_id, ri_conn_code_str(code), reason);
    else
        log_warn("tunnel %s%s%s: refused: %s: %s", t->peer, t->edge_id[0] ? " edge " : "",
                 t->edge_id, ri_conn_code_str(code), reason);
    uint8_t p[2 + RI_REASON_MAX];
    size_t n = ri_reason_encode(p, sizeof p, (uint16_t)code, reason);
    ri_tunnel_ctrl(t, RI_F_REFUSE, 0, p, n);
    close_when_flushed(t, code);
}

/* A protocol violation. During the handshake (after TLS, before WELCOME)
 * the peer hears why with REFUSE code 1 before the close; afterwards the
 * tunnel just closes with the logged reason. */
static void proto_fail(struct ri_tunnel *t, const char *fmt, ...) RI_PRINTF(2, 3);
static void proto_fail(struct ri_tunnel *t, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t->state == RI_T_AUTH)
        ri_tunnel_refuse(t, RI_E_PROTOCOL, msg);
    else
        ri_tunnel_fail(t, RI_E_PROTOCOL, "%s", msg);
}

void ri_tunnel_goaway(struct ri_tunnel *t, unsigned code, const char *reason, int close_now)
{
    if (t->state == RI_T_DEAD || t->close_after_flush)
        return;
    uint8_t p[6 + RI_REASON_MAX];
    ri_put32(p, t->role == RI_ROLE_EDGE ? t->mux.next_id : t->mux.last_id);
    size_t n = 4 + ri_reason_encode(p + 4, sizeof p - 4, (uint16_t)code, reason);
    ri_tunnel_ctrl(t, RI_F_GOAWAY, 0, p, n);
    t->draining = 1;
    if (close_now)
        close_when_flushed(t, code);
    else
        ri_tunnel_drained_check(t);
}

/* A draining tunnel ends with a handshake: each side, once its last stream
 * has ended (every byte written to its own sockets), says so with GOAWAY
 * code 0, and the connection closes when both have. Closing as soon as one
 * side is done would reset the other side's streams that still hold data
 * for a slow client or upstream. */
void ri_tunnel_drained_check(struct ri_tunnel *t)
{
    if (t->state != RI_T_READY || !t->draining || t->mux.n || t->close_after_flush)
        return;
    if (!t->sent_drained) {
        uint8_t p[6 + RI_REASON_MAX];
        ri_put32(p, t->role == RI_ROLE_EDGE ? t->mux.next_id : t->mux.last_id);
        size_t n = 4 + ri_reason_encode(p + 4, sizeof p - 4, RI_E_NONE, "drained");
        t->sent_drained = 1;
        if (ri_tunnel_ctrl(t, RI_F_GOAWAY, 0, p, n) < 0)
            return;
    }
    if (t->peer_drained)
        ri_tunnel_close(t, RI_E_SHUTDOWN);
}

/* ---- sending --------------------------------------------------------------- */
int ri_tunnel_ctrl(struct ri_tunnel *t, uint8_t type, uint32_t stream, const void *p,
                   size_t n)
{
    if (t->state == RI_T_DEAD)
        return -1;
    /* before authentication only a few handshake frames (and PONGs) are due:
     * an unauthenticated peer must not make us queue megabytes */
    size_t max = t->state == RI_T_READY ? RI_CTRL_MAX : RI_CTRL_PREAUTH_MAX;
    if (t->ctrl.bytes + RI_FRAME_HDR + n > max) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "control queue over %zu bytes: peer is not reading",
                       max);
        return -1;
    }
    uint8_t hdr[RI_FRAME_HDR];
    ri_frame_hdr_put(hdr, type, stream, (uint32_t)n);
    if (ri_bq_append(&t->ctrl, hdr, sizeof hdr) < 0 || (n && ri_bq_append(&t->ctrl, p, n) < 0)) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory queueing a control frame");
        return -1;
    }
    ri_tunnel_kick(t);
    return 0;
}

int ri_tunnel_rst(struct ri_tunnel *t, uint32_t stream, unsigned code, const char *reason)
{
    uint8_t p[2 + RI_REASON_MAX];
    size_t n = ri_reason_encode(p, sizeof p, (uint16_t)code, reason);
    return ri_tunnel_ctrl(t, RI_F_RST, stream, p, n);
}

/* Writes are batched per loop iteration: everything queued while handling
 * this iteration's events goes out in one flush just before the loop polls
 * again. The write watcher is armed only when the socket is full, which
 * saves two epoll_ctl calls per round on a busy tunnel. */
void ri_tunnel_kick(struct ri_tunnel *t)
{
    if (t->state >= RI_T_AUTH && t->state != RI_T_DEAD && t->close_after_flush != 2 &&
        !ev_is_active(&t->wio) && !ev_is_active(&t->flusher))
        ev_prepare_start(EV_DEFAULT, &t->flusher);
}

static void flusher_cb(EV_P_ ev_prepare *w, int revents)
{
    struct ri_tunnel *t = (struct ri_tunnel *)((char *)w - offsetof(struct ri_tunnel, flusher));
    ev_prepare_stop(EV_A_ w);
    if (t->state != RI_T_DEAD && !ev_is_active(&t->wio))
        tunnel_flush(t);
}

/* Fill wbuf with the next batch: every queued control byte first (whole
 * frames are never split by data), then data from the scheduler. */
static void compose(struct ri_tunnel *t)
{
    t->wlen = t->woff = 0;
    while (t->ctrl.bytes && t->wlen < RI_WBUF_BATCH) {
        struct iovec iov[1];
        if (ri_bq_iov(&t->ctrl, iov, 1) < 1)
            break;
        size_t k = iov[0].iov_len;
        if (k > RI_WBUF_BATCH - t->wlen)
            k = RI_WBUF_BATCH - t->wlen;
        memcpy(t->wbuf + t->wlen, iov[0].iov_base, k);
        t->wlen += k;
        ri_bq_consume(&t->ctrl, k);
    }
    if (t->ctrl.bytes || t->state != RI_T_READY || t->close_after_flush)
        return; /* a control frame may be cut at the batch end: no data after it */
    size_t room = (size_t)ri_pace_room(&t->pace);
    if (!room)
        return; /* in-flight cap reached: the peer's ACK kicks us again */
    size_t n = ri_mux_compose(t, t->wbuf, &t->wlen, RI_WBUF_BATCH, RI_WBUF_SIZE, room);
    if (n)
        ri_pace_on_send(&t->pace, n, ri_core_api.now_ns());
}

static void tunnel_flush(struct ri_tunnel *t)
{
    for (;;) {
        /* encrypt while a full record still fits in obuf */
        while (RI_NETBUF_SIZE - (t->olen - t->ooff) >= RI_TLS_RECORD + 256) {
            ssize_t n;
            if (t->inflight) {
                n = gnutls_record_send(t->tls, NULL, 0);
            } else {
                if (t->woff == t->wlen) {
                    compose(t);
                    if (t->wlen == 0)
                        break;
                }
                size_t k = t->wlen - t->woff;
                if (k > RI_TLS_RECORD)
                    k = RI_TLS_RECORD;
                n = gnutls_record_send(t->tls, t->wbuf + t->woff, k);
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                    t->inflight = k; /* re-offered as (NULL, 0) */
            }
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                break;
            if (n < 0) {
                ri_tunnel_fail(t, RI_E_NONE, "TLS send: %s", gnutls_strerror((int)n));
                return;
            }
            t->woff += (size_t)n;
            t->inflight = 0;
        }
        int rc = obuf_send(t);
        if (rc != 0)
            return; /* failed, or the socket is full and the writer is armed */
        if (t->woff == t->wlen && !t->inflight) {
            compose(t);
            if (t->wlen == 0) {
                ev_io_stop(EV_DEFAULT, &t->wio);
                if (t->close_after_flush) {
                    /* all written: our FIN; the peer's EOF ends it (tunnel_read) */
                    shutdown(t->fd, SHUT_WR);
                    t->close_after_flush = 2;
                }
                return;
            }
        }
    }
}

/* ---- handshake --------------------------------------------------------------- */
static void do_handshake(struct ri_tunnel *t)
{
    if (obuf_send(t) != 0)
        return;
    int rc = gnutls_handshake(t->tls);
    int sent = obuf_send(t);
    if (sent < 0)
        return;
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        if (sent == 0)
            ev_io_stop(EV_DEFAULT, &t->wio);
        return;
    }
    if (rc < 0) {
        if (gnutls_error_is_fatal(rc)) {
            ri_tunnel_fail(t, RI_E_PROTOCOL, "TLS handshake failed: %s", gnutls_strerror(rc));
            return;
        }
        return; /* a warning alert: keep going */
    }
    if (sent == 0)
        ev_io_stop(EV_DEFAULT, &t->wio);
    if (ri_tls_binding(t->tls, t->binding) < 0) {
        ri_tunnel_fail(t, RI_E_PROTOCOL, "no TLS 1.3 exporter channel binding");
        return;
    }
    t->state = RI_T_AUTH;
    log_debug("tunnel %s: TLS up (%s)", t->peer,
              gnutls_cipher_get_name(gnutls_cipher_get(t->tls)));
    if (t->hooks->tls_up)
        t->hooks->tls_up(t);
    /* the peer's first frames may have arrived with its last handshake
     * message: they sit in ibuf (or in GnuTLS) and the socket will not turn
     * readable again for them */
    if (t->state == RI_T_AUTH && (t->ioff < t->ilen || gnutls_record_check_pending(t->tls)))
        ev_feed_event(EV_DEFAULT, &t->rio, EV_READ);
}

/* Runs the auth plugin on the peer's message (NULL for the edge's first). */
static int auth_step(struct ri_tunnel *t, const uint8_t *in, size_t n, uint8_t *out,
                     size_t *out_len)
{
    const struct ri_auth_ops *ao = t->auth->mod->desc->ops;
    struct ri_auth_ctx ctx = {
        .role = t->role, .edge_id = t->edge_id, .secret = t->secret,
        .secret_len = t->secret_len, .binding = t->binding, .binding_len = 32};
    char err[256] = "";
    int done = 0;
    *out_len = RI_AUTH_MSG_MAX;
    int rc = ao->step(t->auth->state, t->auth_conn, &ctx, in, n, out, out_len, &done, err,
                      sizeof err);
    if (rc < 0) {
        if (t->role == RI_ROLE_HUB)
            ri_tunnel_refuse(t, RI_E_AUTH, err[0] ? err : "authentication failed");
        else
            ri_tunnel_fail(t, RI_E_AUTH, "authentication failed: %s", err[0] ? err : "?");
        return -1;
    }
    if (*out_len > RI_AUTH_MSG_MAX)
        *out_len = RI_AUTH_MSG_MAX;
    if (done)
        t->auth_done = 1;
    return 0;
}

int ri_tunnel_send_hello(struct ri_tunnel *t, const char *edge_id, const char *secret)
{
    snprintf(t->edge_id, sizeof t->edge_id, "%s", edge_id);
    t->secret_len = strlen(secret);
    t->secret = malloc(t->secret_len + 1);
    if (!t->secret) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
        return -1;
    }
    memcpy(t->secret, secret, t->secret_len + 1);
    uint8_t msg[RI_AUTH_MSG_MAX], hello[RI_PREAUTH_MAX_PAYLOAD];
    size_t ml;
    if (auth_step(t, NULL, 0, msg, &ml) < 0)
        return -1;
    size_t hl = ri_hello_encode(hello, sizeof hello, edge_id, t->auth->mod->desc->name, msg, ml);
    if (!hl) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "HELLO does not fit");
        return -1;
    }
    return ri_tunnel_ctrl(t, RI_F_HELLO, 0, hello, hl);
}

static void become_ready(struct ri_tunnel *t)
{
    t->state = RI_T_READY;
    t->was_ready = 1;
    ev_timer_stop(EV_DEFAULT, &t->timer);
    ev_timer_init(&t->timer, keepalive_cb, t->ping_interval, t->ping_interval);
    ev_timer_start(EV_DEFAULT, &t->timer);
    if (t->hooks->ready)
        t->hooks->ready(t);
}

static int on_hello(struct ri_tunnel *t, const uint8_t *p, size_t n)
{
    struct ri_hello h;
    char err[256];
    int rc = ri_hello_decode(p, n, &h, err, sizeof err);
    if (rc < 0) {
        ri_tunnel_refuse(t, rc == -2 ? RI_E_VERSION : RI_E_PROTOCOL, err);
        return -1;
    }
    snprintf(t->edge_id, sizeof t->edge_id, "%s", h.edge_id);
    const char *mine = t->auth->mod->desc->name;
    if (strcmp(h.auth, mine) != 0) {
        snprintf(err, sizeof err, "edge authenticates with '%s', this hub with '%s'", h.auth,
                 mine);
        ri_tunnel_refuse(t, RI_E_AUTH_METHOD, err);
        return -1;
    }
    const uint8_t *secret;
    size_t sl;
    if (t->hooks->lookup(t, h.edge_id, &secret, &sl) < 0) {
        snprintf(err, sizeof err, "unknown edge id '%s'", h.edge_id);
        ri_tunnel_refuse(t, RI_E_UNKNOWN_EDGE, err);
        return -1;
    }
    if (!(t->secret = malloc(sl + 1))) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
        return -1;
    }
    memcpy(t->secret, secret, sl);
    t->secret[sl] = 0;
    t->secret_len = sl;
    uint8_t out[RI_AUTH_MSG_MAX];
    size_t ol;
    if (auth_step(t, h.auth_msg, h.auth_len, out, &ol) < 0)
        return -1;
    if (ol && ri_tunnel_ctrl(t, RI_F_AUTH, 0, out, ol) < 0)
        return -1;
    return 0;
}

/* Handshake and connection-level frames. */
static int on_conn_frame(struct ri_tunnel *t, const struct ri_frame_hdr *h, const uint8_t *p)
{
    int hub = t->role == RI_ROLE_HUB;
    uint16_t code;
    char reason[RI_REASON_MAX + 1];
    switch (h->type) {
    case RI_F_HELLO:
        if (!hub || t->state != RI_T_AUTH || t->edge_id[0])
            goto unexpected;
        return on_hello(t, p, h->len);
    case RI_F_AUTH: {
        if (t->state != RI_T_AUTH || t->auth_done || (hub && !t->edge_id[0]))
            goto unexpected;
        uint8_t out[RI_AUTH_MSG_MAX];
        size_t ol;
        if (auth_step(t, p, h->len, out, &ol) < 0)
            return -1;
        if (ol && ri_tunnel_ctrl(t, RI_F_AUTH, 0, out, ol) < 0)
            return -1;
        if (hub && t->auth_done) {
            uint8_t w[2];
            ri_put16(w, RI_PROTO_VERSION);
            if (ri_tunnel_ctrl(t, RI_F_WELCOME, 0, w, 2) < 0)
                return -1;
            become_ready(t);
        }
        return 0;
    }
    case RI_F_WELCOME:
        if (hub || t->state != RI_T_AUTH)
            goto unexpected;
        if (!t->auth_done) {
            ri_tunnel_fail(t, RI_E_AUTH, "hub sent WELCOME before proving the shared secret");
            return -1;
        }
        become_ready(t);
        return 0;
    case RI_F_REFUSE:
        ri_reason_decode(p, h->len, &code, reason, sizeof reason);
        ri_tunnel_fail(t, code, "peer refused us: %s: %s", ri_conn_code_str(code), reason);
        return -1;
    case RI_F_CONFIG: {
        if (hub || t->state != RI_T_READY)
            goto unexpected;
        static struct ri_config_msg m; /* 8 KB: not on the stack */
        char err[128];
        if (ri_config_decode(p, h->len, &m, err, sizeof err) < 0) {
            proto_fail(t, "bad CONFIG: %s", err);
            return -1;
        }
        if (t->hooks->config)
            t->hooks->config(t, &m);
        return 0;
    }
    case RI_F_PING:
        return ri_tunnel_ctrl(t, RI_F_PONG, 0, p, 8);
    case RI_F_PONG:
        return 0;
    case RI_F_ACK:
        if (t->state != RI_T_READY)
            goto unexpected;
        ri_pace_on_ack(&t->pace, ri_get32(p), ri_core_api.now_ns());
        ri_tunnel_kick(t);
        return 0;
    case RI_F_GOAWAY:
        if (t->state != RI_T_READY)
            goto unexpected;
        ri_reason_decode(p + 4, h->len - 4, &code, reason, sizeof reason);
        if (code == RI_E_NONE)
            t->peer_drained = 1; /* its last stream ended: see ri_tunnel_drained_check */
        else if (!t->draining) /* a peer repeating GOAWAY is logged once */
            log_info("tunnel %s%s%s: peer is going away: %s%s%s", t->peer,
                     t->edge_id[0] ? " edge " : "", t->edge_id, ri_conn_code_str(code),
                     reason[0] ? ": " : "", reason);
        t->draining = 1;
        if (t->hooks->goaway)
            t->hooks->goaway(t, code, reason);
        ri_tunnel_drained_check(t);
        return 0;
    }
unexpected:
    proto_fail(t, "unexpected %s frame %s", ri_ftype_str(h->type),
               t->state == RI_T_READY ? "after the handshake" : "during the handshake");
    return -1;
}

/* ---- receiving --------------------------------------------------------------- */
/* Tells the peer how much of its DATA left the pipe (pace.h). */
static int send_ack(struct ri_tunnel *t)
{
    if (!t->rx_unacked)
        return 0;
    uint8_t p[4];
    ri_put32(p, (uint32_t)t->rx_unacked);
    t->rx_unacked = 0;
    return ri_tunnel_ctrl(t, RI_F_ACK, 0, p, 4);
}

static int parse(struct ri_tunnel *t)
{
    size_t off = t->roff;
    while (t->state != RI_T_DEAD && !t->close_after_flush) {
        /* per frame: WELCOME and a CONFIG above 8 KB often share one record */
        uint32_t max = t->state == RI_T_READY ? RI_FRAME_MAX_PAYLOAD : RI_PREAUTH_MAX_PAYLOAD;
        struct ri_frame_hdr h;
        int r = ri_frame_hdr_get(t->rbuf + off, t->rlen - off, max, &h);
        if (r == 0)
            break;
        if (r < 0) {
            proto_fail(t, "frame of %u bytes exceeds the %u-byte limit",
                           h.len, max);
            return -1;
        }
        if (t->rlen - off < RI_FRAME_HDR + (size_t)h.len)
            break;
        char err[256];
        if (ri_frame_check(&h, err, sizeof err) < 0) {
            proto_fail(t, "%s", err);
            return -1;
        }
        const uint8_t *p = t->rbuf + off + RI_FRAME_HDR;
        off += RI_FRAME_HDR + h.len;
        int rc;
        if (h.stream == 0) {
            rc = on_conn_frame(t, &h, p);
        } else if (t->state != RI_T_READY) {
            proto_fail(t, "%s frame before authentication",
                           ri_ftype_str(h.type));
            rc = -1;
        } else if ((rc = ri_mux_on_frame(t, &h, p, err, sizeof err)) < 0) {
            ri_tunnel_fail(t, RI_E_PROTOCOL, "%s", err);
        } else if (h.type == RI_F_DATA && (t->rx_unacked += h.len) >= RI_ACK_EVERY) {
            rc = send_ack(t);
        }
        if (rc < 0)
            return -1;
    }
    if (t->state == RI_T_DEAD)
        return -1;
    /* move a partial frame to the front only when the next record might
     * not fit behind it: most records then cost no memmove at all */
    t->roff = off;
    if (t->roff == t->rlen) {
        t->roff = t->rlen = 0;
    } else if (RI_RBUF_SIZE - t->rlen < RI_TLS_RECORD + 1024) {
        memmove(t->rbuf, t->rbuf + t->roff, t->rlen - t->roff);
        t->rlen -= t->roff;
        t->roff = 0;
    }
    return 0;
}

static void tunnel_read(struct ri_tunnel *t)
{
    size_t budget = 1u << 20; /* then yield to other tunnels and streams */
    for (;;) {
        if (t->state == RI_T_DEAD)
            return;
        /* closing (close_when_flushed): frames no longer matter, EOF does */
        int closing = t->close_after_flush != 0;
        t->rx_blocked = 0;
        ssize_t n = closing ? gnutls_record_recv(t->tls, t->rbuf, RI_RBUF_SIZE)
                            : gnutls_record_recv(t->tls, t->rbuf + t->rlen, RI_RBUF_SIZE - t->rlen);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            /* A KeyUpdate's answer, if GnuTLS wrote one, waits in obuf. */
            if (t->olen > t->ooff)
                ri_tunnel_kick(t);
            if (t->rx_blocked) {
                send_ack(t);
                return; /* socket drained and nothing left decrypted in GnuTLS */
            }
            /* GnuTLS handled a post-handshake message (a TLS 1.3 KeyUpdate,
             * a session ticket) or an interrupted read and says AGAIN,
             * although more records may wait in ibuf: the socket will not
             * turn readable for those, so read on until it is empty. */
            n = 64; /* charged, so a flood of them yields too */
        } else {
            int end = n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION;
            if (closing && (end || (n < 0 && gnutls_error_is_fatal((int)n)))) {
                ri_tunnel_fail(t, t->close_code, "%s", ri_conn_code_str(t->close_code));
                return;
            }
            if (end) {
                /* peers close without close_notify: the frames say what happened */
                ri_tunnel_fail(t, t->draining ? RI_E_SHUTDOWN : RI_E_NONE,
                               "peer closed the connection");
                return;
            }
            if (n == GNUTLS_E_PULL_ERROR) {
                ri_tunnel_fail(t, t->draining ? RI_E_SHUTDOWN : RI_E_NONE, "connection lost: %s",
                               strerror(t->rx_errno));
                return;
            }
            if (n < 0 && gnutls_error_is_fatal((int)n)) {
                ri_tunnel_fail(t, RI_E_PROTOCOL, "TLS receive: %s", gnutls_strerror((int)n));
                return;
            }
            if (n < 0) {
                n = 1024; /* a warning alert: charged, so a stream of them yields too */
            } else if (!closing) {
                t->rlen += (size_t)n;
                t->last_rx = ev_now(EV_DEFAULT);
                if (parse(t) < 0)
                    return;
            }
        }
        if ((size_t)n >= budget) {
            /* more may sit decrypted inside GnuTLS: come back next iteration
             * rather than wait for the socket to turn readable again */
            ev_feed_event(EV_DEFAULT, &t->rio, EV_READ);
            send_ack(t);
            return;
        }
        budget -= (size_t)n;
    }
}

static void tunnel_read_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_tunnel *t = (struct ri_tunnel *)((char *)w - offsetof(struct ri_tunnel, rio));
    if (t->state == RI_T_TLS)
        do_handshake(t);
    else
        tunnel_read(t);
}

static void tunnel_write_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_tunnel *t = (struct ri_tunnel *)((char *)w - offsetof(struct ri_tunnel, wio));
    if (t->state == RI_T_TLS)
        do_handshake(t);
    else if (t->state != RI_T_DEAD)
        tunnel_flush(t);
}
