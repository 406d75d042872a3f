/* tunnel.c -- one tunnel connection: batched writes (control frames first),
 * frame dispatch, keepalive, the close sequence. */
#include "tunnel.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "plugin.h"
#include "worker.h"

#define LOOP (t->w->loop)
#define TUNNEL_OF(ptr, member) ((struct ri_tunnel *)((char *)(ptr) - offsetof(struct ri_tunnel, member)))

static void read_cb(EV_P_ ev_io *w, int revents);
static void write_cb(EV_P_ ev_io *w, int revents);
static void flusher_cb(EV_P_ ev_prepare *w, int revents);
static void keepalive_cb(EV_P_ ev_timer *w, int revents);
static int parse(struct ri_tunnel *t);
static void linger_cb(EV_P_ ev_timer *w, int revents);
static void deadline_cb(EV_P_ ev_timer *w, int revents);
static void reaper_cb(EV_P_ ev_timer *w, int revents);
static void ack_delay_cb(EV_P_ ev_timer *w, int revents);
static void flush(struct ri_tunnel *t);
static void drained_check(struct ri_tunnel *t);
static int send_ack(struct ri_tunnel *t);

/* ---- the mux's environment ---------------------------------------------------- */
static int env_ctrl(void *o, uint8_t type, uint32_t stream, const void *p, size_t n)
{
    return ri_tunnel_ctrl(o, type, stream, p, n);
}
static void env_kick(void *o) { ri_tunnel_kick(o); }
static void env_idle(void *o) { drained_check(o); }
static void env_open(void *o, uint32_t id, const struct ri_open *op)
{
    struct ri_tunnel *t = o;
    if (t->hooks->open)
        t->hooks->open(t, id, op);
    else
        ri_mux_refuse(&t->mux, id, RI_RST_INTERNAL, "this side accepts no streams");
}

/* ---- the handshake's environment --------------------------------------------------- */
static int hs_emit(void *o, uint8_t type, const void *p, size_t n)
{
    return ri_tunnel_ctrl(o, type, 0, p, n);
}
static int hs_lookup(void *o, const char *id, const uint8_t **secret, size_t *len)
{
    struct ri_tunnel *t = o;
    return t->hooks->lookup ? t->hooks->lookup(t, id, secret, len) : -1;
}

static void set_label(struct ri_tunnel *t)
{
    snprintf(t->label, sizeof t->label, "tunnel %s%s%s", t->peer, t->edge_id[0] ? " edge " : "",
             t->edge_id);
    t->mux.label = t->label;
    t->mux.edge_id = t->edge_id;
    t->mux.peer = t->peer;
}

static void free_mine(struct ri_tunnel *t)
{
    if (t->my_secret) {
        gnutls_memset(t->my_secret, 0, strlen(t->my_secret));
        free(t->my_secret);
    }
    free(t->my_id);
    t->my_secret = t->my_id = NULL;
}

struct ri_tunnel *ri_tunnel_new(const struct ri_tunnel_params *p)
{
    struct ri_tunnel *t = calloc(1, sizeof *t);
    char err[256] = "out of memory";
    if (!t)
        goto fail_fd;
    t->id = ri_worker_tunnel_id(p->w);
    t->role = p->role;
    t->w = p->w;
    t->owner = p->owner;
    t->hooks = p->hooks;
    t->state = RI_T_TLS;
    t->ping_interval = p->ping_interval;
    t->ping_timeout = p->ping_timeout;
    t->preauth_rl = p->preauth_rl;
    t->rl = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    snprintf(t->peer, sizeof t->peer, "%s", p->peer);
    if (p->peer_sa && p->peer_sa_len <= sizeof t->peer_sa)
        memcpy(&t->peer_sa, p->peer_sa, p->peer_sa_len);
    if (p->role == RI_ROLE_EDGE)
        snprintf(t->edge_id, sizeof t->edge_id, "%s", p->edge_id);
    ri_bq_init(&t->ctrl, &p->w->pool);
    ri_pace_init(&t->pace);
    t->env = (struct ri_mux_env){.owner = t, .ctrl = env_ctrl, .kick = env_kick,
                                 .idle = env_idle, .open = env_open};
    struct ri_hs_io hio = {.arg = t, .emit = hs_emit, .lookup = hs_lookup};
    if (!(t->rbuf = malloc(RI_RBUF_SIZE)) || !(t->wbuf = malloc(RI_WBUF_SIZE)) ||
        ri_tlsio_init(&t->io, p->fd) < 0 ||
        ri_hs_init(&t->hs, p->role, p->auth, &hio, RI_CAPS_SUPPORTED & ~p->caps_off) < 0 ||
        (p->role == RI_ROLE_EDGE &&
         (!(t->my_id = strdup(p->edge_id)) || !(t->my_secret = strdup(p->secret)))))
        goto fail;
    if (ri_mux_init(&t->mux, p->w, &t->env, p->api, p->role,
                    p->defer_policy ? NULL : &p->policy, p->max_streams, err, sizeof err) < 0)
        goto fail;
    t->mux.tunnel_id = t->id;
    t->mux.rl = &t->rl;
    t->group = t->hs.group = p->group;
    t->lane = t->hs.lane = p->lane;
    set_label(t);
    int rc = ri_tlsio_start(&t->io, p->creds, p->role == RI_ROLE_HUB, p->sni);
    if (rc < 0) {
        snprintf(err, sizeof err, "TLS session: %s", gnutls_strerror(rc));
        goto fail;
    }
    t->creds = ri_tls_creds_ref(p->creds);
    /* Queue in our scheduler, not in the kernel: past this many unsent bytes
     * the socket reports "full", so control frames and interactive streams
     * never wait behind megabytes of bulk data already handed to TCP. */
    int lowat = RI_TCP_NOTSENT_LOWAT, one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ev_io_init(&t->rio, read_cb, p->fd, EV_READ);
    ev_io_init(&t->wio, write_cb, p->fd, EV_WRITE);
    ev_prepare_init(&t->flusher, flusher_cb);
    /* one deadline covers TLS and authentication */
    ev_timer_init(&t->keepalive, keepalive_cb, p->handshake_timeout, 0);
    ev_init(&t->linger, linger_cb);
    ev_init(&t->deadline, deadline_cb);
    ev_timer_init(&t->reaper, reaper_cb, 0, 0);
    ev_init(&t->ack_delay, ack_delay_cb);
    t->last_rx = ev_now(LOOP);
    ev_timer_start(LOOP, &t->keepalive);
    ev_io_start(LOOP, &t->rio);
    ev_io_start(LOOP, &t->wio);
    t->w->ctr.tunnels_opened++;
    return t;
fail:
    log_err("tunnel %s: %s", p->peer, err);
    if (t) {
        ri_mux_destroy(&t->mux);
        ri_hs_free(&t->hs);
        ri_tlsio_free(&t->io);
        free_mine(t);
        free(t->rbuf);
        free(t->wbuf);
        free(t);
    }
fail_fd:
    close(p->fd);
    return NULL;
}

void ri_tunnel_update(struct ri_tunnel *t, const struct ri_tunnel_settings *s)
{
    if (t->state == RI_T_DEAD)
        return;
    t->ping_interval = s->ping_interval;
    t->ping_timeout = s->ping_timeout;
    t->mux.max_streams = s->max_streams;
    if (t->state == RI_T_READY && !t->closing) {
        ev_timer_stop(LOOP, &t->keepalive);
        ev_timer_set(&t->keepalive, t->ping_interval, t->ping_interval);
        ev_timer_start(LOOP, &t->keepalive);
    }
    if (s->swap_policy && t->mux.sched) { /* none yet: made where it will run */
        char err[256];
        if (ri_mux_set_policy(&t->mux, &s->policy, err, sizeof err) < 0)
            log_err("%s: keeps its scheduler and classifier: %s", t->label, err);
    }
}

/* Every watcher of the tunnel but the reaper (a close, a move, the reaper). */
static void stop_watchers(struct ri_tunnel *t)
{
    ev_io_stop(LOOP, &t->rio);
    ev_io_stop(LOOP, &t->wio);
    ev_prepare_stop(LOOP, &t->flusher);
    ev_timer_stop(LOOP, &t->keepalive);
    ev_timer_stop(LOOP, &t->linger);
    ev_timer_stop(LOOP, &t->deadline);
    ev_timer_stop(LOOP, &t->ack_delay);
}

/* ---- moving to another loop (the hub's workers) ---------------------------------- */
void ri_tunnel_park(struct ri_tunnel *t)
{
    t->parked = 1;
    ev_io_stop(LOOP, &t->rio);
}

void ri_tunnel_unpark(struct ri_tunnel *t)
{
    if (!t->parked)
        return;
    t->parked = 0;
    if (t->state == RI_T_DEAD)
        return;
    ev_io_start(LOOP, &t->rio);
    ev_feed_event(LOOP, &t->rio, EV_READ);
}

int ri_tunnel_detach(struct ri_tunnel *t)
{
    if (t->state != RI_T_READY || t->closing || t->draining || !t->parked)
        return -1;
    if (t->ctrl.bytes && !(t->carry = malloc(t->ctrl.bytes)))
        return -1;
    stop_watchers(t);
    /* the control queue's chunks belong to this loop's pool: the bytes
     * travel on their own (a WELCOME the socket did not take yet) */
    t->carry_len = t->ctrl.bytes;
    if (t->carry_len) {
        size_t off = 0;
        while (t->ctrl.bytes) {
            struct iovec iov[64];
            int n = ri_bq_iov(&t->ctrl, iov, 64);
            size_t got = 0;
            for (int i = 0; i < n; i++) {
                memcpy(t->carry + off + got, iov[i].iov_base, iov[i].iov_len);
                got += iov[i].iov_len;
            }
            off += got;
            ri_bq_consume(&t->ctrl, got);
        }
    }
    ri_bq_clear(&t->ctrl);
    return 0;
}

int ri_tunnel_attach(struct ri_tunnel *t, struct ri_worker *w,
                     const struct ri_tunnel_hooks *hooks, void *owner,
                     const struct ri_mux_policy *pol)
{
    t->w = w;
    t->mux.w = w;
    t->hooks = hooks;
    t->owner = owner;
    t->parked = 0;
    ri_bq_init(&t->ctrl, &w->pool);
    int rc = t->carry_len ? ri_bq_append(&t->ctrl, t->carry, t->carry_len) : 0;
    free(t->carry);
    t->carry = NULL;
    t->carry_len = 0;
    char err[256] = "out of memory";
    if (rc < 0 || (pol && ri_mux_set_policy(&t->mux, pol, err, sizeof err) < 0)) {
        ri_tunnel_fail(t, RI_E_INTERNAL, "%s", err);
        return -1;
    }
    t->last_rx = ev_now(LOOP);
    ev_timer_set(&t->keepalive, t->ping_interval, t->ping_interval);
    ev_timer_start(LOOP, &t->keepalive);
    ev_io_start(LOOP, &t->rio);
    ri_tunnel_kick(t);
    /* frames that came with the AUTH (rbuf) first, then whatever waits in
     * the socket or inside GnuTLS */
    if (parse(t) == 0)
        ev_feed_event(LOOP, &t->rio, EV_READ);
    return t->state == RI_T_DEAD ? -1 : 0;
}

/* ---- teardown ------------------------------------------------------------------ */
static void reaper_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, reaper);
    ri_mux_destroy(&t->mux);
    /* ri_tunnel_fail stopped these, but a flush still running in the failing
     * callback may have re-armed the writer: never leave one on freed memory */
    stop_watchers(t);
    ev_timer_stop(LOOP, &t->reaper);
    int fd = t->io.fd;
    free(t->carry);
    ri_tlsio_free(&t->io);
    ri_tls_creds_unref(t->creds); /* after the session that used them */
    close(fd);
    ri_hs_free(&t->hs);
    free_mine(t);
    ri_bq_clear(&t->ctrl);
    free(t->rbuf);
    free(t->wbuf);
    free(t);
}

void ri_tunnel_fail(struct ri_tunnel *t, unsigned code, const char *fmt, ...)
{
    if (t->state == RI_T_DEAD)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint32_t lost = t->mux.n;
    /* a clean end is news; streams cut or an error is a warning */
    int lvl = (code == RI_E_SHUTDOWN || code == RI_E_NONE) && !lost ? RI_LOG_INFO : RI_LOG_WARN;
    if (t->state == RI_T_TLS && t->io.rx_total == 0) {
        /* connected and went without a byte: a TCP health check or a port
         * scan, not worth a line at every probe */
        lvl = RI_LOG_DEBUG;
        snprintf(msg, sizeof msg, "closed before sending a byte (a TCP health check?)");
    }
    /* an unauthenticated peer may open connections at will: their endings
     * share one limiter (the role's); an edge's tunnel logs freely */
    if (!t->was_ready && t->preauth_rl)
        ri_log_rl(t->preauth_rl, lvl, "%s: closed: %s", t->label, msg);
    else if (lost)
        ri_log(lvl, "%s: closed: %s (%u open stream%s lost)", t->label, msg, lost,
               lost == 1 ? "" : "s");
    else
        ri_log(lvl, "%s: closed: %s", t->label, msg);
    t->state = RI_T_DEAD;
    t->close_code = code;
    /* its bytes in flight no longer count against the edge's cap */
    ri_mux_share_forget(&t->mux, &t->pace);
    ri_mux_set_phase(&t->mux, RI_MUX_DEAD);
    stop_watchers(t);
    for (struct ri_stream *s = t->mux.all; s; s = s->next) {
        ev_io_stop(LOOP, &s->rio);
        ev_io_stop(LOOP, &s->wio);
        ev_timer_stop(LOOP, &s->ctimer);
    }
    ev_timer_stop(LOOP, &t->mux.cls_timer);
    t->w->ctr.tunnels_closed++;
    /* the owner unlinks it now; the memory goes on the next iteration */
    t->hooks->closed(t, code, msg, lost);
    ev_timer_start(LOOP, &t->reaper);
}

static void linger_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, linger);
    ri_tunnel_fail(t, t->close_code, t->closing == RI_CLOSE_SHUT
                                         ? "peer did not close the connection in time"
                                         : "peer did not read our last frame in time");
}

static void deadline_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, deadline);
    ri_tunnel_fail(t, RI_E_SHUTDOWN, "drain timeout: %u stream%s still open", t->mux.n,
                   t->mux.n == 1 ? "" : "s");
}

void ri_tunnel_drain(struct ri_tunnel *t, unsigned code, const char *reason, double secs)
{
    if (t->state == RI_T_DEAD || t->closing)
        return;
    if (t->state != RI_T_READY) { /* nothing to drain yet */
        ri_tunnel_fail(t, code, "%s", reason);
        return;
    }
    ri_tunnel_goaway(t, code, reason, t->mux.n == 0);
    if (t->state != RI_T_DEAD && !ev_is_active(&t->deadline)) {
        ev_timer_set(&t->deadline, secs, 0);
        ev_timer_start(LOOP, &t->deadline);
    }
}

/* Writes what is queued, then shuts our side down and waits for the peer's
 * EOF, still reading (and discarding) meanwhile: a socket closed with bytes
 * unread, or receiving some after close, answers with a TCP reset, and the
 * reset throws away our own last bytes still in flight. */
static void close_when_flushed(struct ri_tunnel *t, unsigned code)
{
    if (t->state == RI_T_DEAD || t->closing)
        return;
    t->closing = RI_CLOSE_FLUSH;
    t->close_code = code;
    ev_timer_stop(LOOP, &t->keepalive);
    ev_timer_set(&t->linger, RI_LINGER_SECS, 0);
    ev_timer_start(LOOP, &t->linger);
    ri_tunnel_kick(t);
}

void ri_tunnel_refuse(struct ri_tunnel *t, unsigned code, const char *reason)
{
    if (t->state == RI_T_DEAD || t->closing)
        return;
    uint8_t p[2 + RI_REASON_MAX];
    size_t n = ri_reason_encode(p, sizeof p, (uint16_t)code, reason);
    ri_tunnel_ctrl(t, RI_F_REFUSE, 0, p, n);
    close_when_flushed(t, code);
}

void ri_tunnel_goaway(struct ri_tunnel *t, unsigned code, const char *reason, int close_now)
{
    if (t->state == RI_T_DEAD || t->closing)
        return;
    uint8_t p[6 + RI_REASON_MAX];
    ri_put32(p, t->role == RI_ROLE_EDGE ? t->mux.next_id : t->mux.last_id);
    size_t n = 4 + ri_reason_encode(p + 4, sizeof p - 4, (uint16_t)code, reason);
    ri_tunnel_ctrl(t, RI_F_GOAWAY, 0, p, n);
    t->draining = 1;
    if (t->state == RI_T_READY)
        ri_mux_set_phase(&t->mux, RI_MUX_DRAINING);
    if (close_now)
        close_when_flushed(t, code);
    else
        drained_check(t);
}

/* A draining tunnel ends with a handshake: each side, once its last stream
 * has ended (every byte written to its own sockets), says so with GOAWAY
 * code 0, and the connection closes when both have. Closing as soon as one
 * side is done would reset the other side's streams that still hold data
 * for a slow client or upstream. */
static void drained_check(struct ri_tunnel *t)
{
    if (t->state != RI_T_READY || !t->draining || t->mux.n || t->closing)
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
        close_when_flushed(t, RI_E_SHUTDOWN);
}

/* A protocol violation. During the handshake the peer hears why (REFUSE
 * code 1) before the close; afterwards the tunnel just closes. */
static void proto_fail(struct ri_tunnel *t, const char *fmt, ...) RI_PRINTF(2, 3);
static void proto_fail(struct ri_tunnel *t, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t->state == RI_T_AUTH) {
        ri_log_rl(t->preauth_rl ? t->preauth_rl : &t->rl, RI_LOG_WARN, "%s: refused: %s: %s",
                  t->label, ri_conn_code_str(RI_E_PROTOCOL), msg);
        ri_tunnel_refuse(t, RI_E_PROTOCOL, msg);
    } else {
        ri_tunnel_fail(t, RI_E_PROTOCOL, "%s", msg);
    }
}

/* ---- keepalive --------------------------------------------------------------- */
static void keepalive_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, keepalive);
    ev_tstamp idle = ev_now(EV_A) - t->last_rx;
    if (t->state != RI_T_READY) {
        ri_tunnel_fail(t, RI_E_TIMEOUT, "handshake not finished in time");
        return;
    }
    if (idle >= t->ping_timeout) {
        ri_tunnel_fail(t, RI_E_TIMEOUT, "peer silent for %.0f s (ping_timeout_secs %.0f): dead",
                       idle, t->ping_timeout);
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

/* ---- sending ---------------------------------------------------------------------- */
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
    t->w->ctr.ctrl_frames_out++;
    ri_tunnel_kick(t);
    return 0;
}

/* Writes are batched per loop iteration: everything queued while handling
 * this iteration's events goes out in one flush just before the loop polls
 * again. The write watcher is armed only when the socket is full, which
 * saves two epoll_ctl calls per round on a busy tunnel. */
void ri_tunnel_kick(struct ri_tunnel *t)
{
    if (t->state >= RI_T_AUTH && t->state != RI_T_DEAD && t->closing != RI_CLOSE_SHUT &&
        !ev_is_active(&t->wio) && !ev_is_active(&t->flusher))
        ev_prepare_start(LOOP, &t->flusher);
}

static void flusher_cb(EV_P_ ev_prepare *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, flusher);
    ev_prepare_stop(EV_A_ w);
    if (t->state != RI_T_DEAD && !ev_is_active(&t->wio))
        flush(t);
}

/* Moves what is left of the batch (less than a record) to the front of
 * wbuf, where the next batch is composed behind it. */
static void carry_tail(struct ri_tunnel *t)
{
    size_t tail = t->wlen - t->woff;
    if (tail && t->woff)
        memmove(t->wbuf, t->wbuf + t->woff, tail);
    t->wlen = tail;
    t->woff = 0;
}

void ri_tunnel_list_push(struct ri_tunnel **head, struct ri_tunnel *t)
{
    t->prev = NULL;
    t->next = *head;
    if (*head)
        (*head)->prev = t;
    *head = t;
}

void ri_tunnel_list_unlink(struct ri_tunnel **head, struct ri_tunnel *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else if (*head == t)
        *head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

uint64_t ri_tunnel_load(const struct ri_tunnel *t)
{
    return (t->pace.sent - t->pace.acked) + t->ctrl.bytes + (t->wlen - t->woff) +
           (uint64_t)t->mux.queued * 16384;
}

/* For a loop that places streams on this tunnel from afar (t->pub). */
void ri_tunnel_publish(struct ri_tunnel *t)
{
    if (!t->pub)
        return;
    atomic_store_explicit(&t->pub->load, ri_tunnel_load(t), memory_order_relaxed);
    atomic_store_explicit(&t->pub->streams, t->mux.n, memory_order_relaxed);
}

static void compose_batch(struct ri_tunnel *t);

/* Tops wbuf up with the next batch, behind what is left of the last one:
 * every queued control byte first (whole frames are never split by data),
 * then data from the scheduler. */
static void compose(struct ri_tunnel *t)
{
    compose_batch(t);
    ri_tunnel_publish(t);
}

static void compose_batch(struct ri_tunnel *t)
{
    carry_tail(t);
    if (t->rx_unacked && (t->ctrl.bytes || t->mux.queued))
        send_ack(t); /* a deferred ACK rides along (ack_when_dry) */
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
    if (t->ctrl.bytes || t->state != RI_T_READY || t->closing)
        return; /* a control frame may be cut at the batch end: no data after it */
    /* the in-flight cap: this lane's, and its edge's across its lanes */
    size_t room = (size_t)ri_mux_share_room(&t->mux, &t->pace);
    /* in-flight cap reached: the peer's ACK kicks us again. A sliver of
     * room (full records leave them) waits for that ACK too, as TCP avoids
     * silly windows: spent now, it costs a read and a record of its own */
    if (!room || (room < RI_TLS_RECORD && t->pace.sent != t->pace.acked)) {
        if (t->mux.queued && !t->pace_stalled) { /* counted once per stall */
            t->pace_stalled = 1;
            t->w->ctr.pace_stalls++;
        }
        return;
    }
    t->pace_stalled = 0;
    size_t n = ri_mux_compose(&t->mux, t->wbuf, &t->wlen, RI_WBUF_BATCH, RI_WBUF_SIZE, room,
                              RI_TLS_RECORD, &t->pace);
    if (n) {
        uint64_t now = ri_now_ns();
        ri_pace_on_send(&t->pace, n, now);
        ri_mux_share_sent(&t->mux, n, now);
    }
}

/* Encrypts wbuf into obuf while a whole record fits there. Whenever less
 * than a full record is left, wbuf is topped up first, so records go out
 * full and the last part-full one only when nothing else is ready (never
 * held back). 1: obuf is full, 0: nothing left to send, -1: failed. */
static int encrypt(struct ri_tunnel *t)
{
    char err[256];
    while (ri_tlsio_room(&t->io)) {
        if (t->wlen - t->woff < RI_TLS_RECORD) {
            compose(t);
            if (t->state == RI_T_DEAD)
                return -1;
            if (t->woff == t->wlen)
                return 0;
        }
        ssize_t n = ri_tlsio_send(&t->io, t->wbuf + t->woff, t->wlen - t->woff, err, sizeof err);
        if (n < 0) {
            ri_tunnel_fail(t, RI_E_NONE, "%s", err);
            return -1;
        }
        t->woff += (size_t)n;
    }
    return 1;
}

static void flush(struct ri_tunnel *t)
{
    char err[256];
    for (;;) {
        int more = encrypt(t);
        if (more < 0)
            return;
        int rc = ri_tlsio_flush(&t->io, err, sizeof err);
        if (rc == RI_TLSIO_ERROR) {
            ri_tunnel_fail(t, RI_E_NONE, "%s", err);
            return;
        }
        if (rc == RI_TLSIO_AGAIN) { /* the socket is full: wait for room */
            if (!ev_is_active(&t->wio))
                ev_io_start(LOOP, &t->wio);
            return;
        }
        if (!more) {
            ev_io_stop(LOOP, &t->wio);
            if (t->closing == RI_CLOSE_FLUSH && t->state != RI_T_DEAD) {
                /* all written: our FIN; the peer's EOF ends it (tunnel_read) */
                shutdown(t->io.fd, SHUT_WR);
                t->closing = RI_CLOSE_SHUT;
            }
            return;
        }
    }
}

/* ---- handshake --------------------------------------------------------------- */
static void become_ready(struct ri_tunnel *t)
{
    t->state = RI_T_READY;
    t->was_ready = 1;
    t->connected_ns = ri_now_ns();
    if (t->role == RI_ROLE_HUB) {
        snprintf(t->edge_id, sizeof t->edge_id, "%s", t->hs.edge_id);
        t->group = t->hs.caps & RI_CAP_LANES ? t->hs.group : 0;
        t->lane = t->hs.caps & RI_CAP_LANES ? t->hs.lane : 0;
    }
    set_label(t);
    t->mux.caps = t->hs.caps;
    ri_mux_set_phase(&t->mux, t->draining ? RI_MUX_DRAINING : RI_MUX_OPEN);
    ev_timer_stop(LOOP, &t->keepalive);
    ev_timer_set(&t->keepalive, t->ping_interval, t->ping_interval);
    ev_timer_start(LOOP, &t->keepalive);
    /* the auth plugin's part is over: drop its state and secret now */
    ri_hs_free(&t->hs);
    if (t->hooks->ready)
        t->hooks->ready(t);
}

/* What the handshake said about the last frame. */
static int after_hs(struct ri_tunnel *t, int rc)
{
    if (rc == RI_HS_CONTINUE)
        return 0;
    if (rc == RI_HS_OK) {
        become_ready(t);
        return 0;
    }
    if (t->role == RI_ROLE_HUB && t->hs.edge_id[0] && !t->edge_id[0]) {
        snprintf(t->edge_id, sizeof t->edge_id, "%s", t->hs.edge_id);
        set_label(t);
    }
    if (rc == RI_HS_REFUSE) {
        char why[RI_REASON_MAX + 64];
        ri_log_rl(t->preauth_rl ? t->preauth_rl : &t->rl, RI_LOG_WARN, "%s: refused: %s", t->label,
                  ri_code_reason(why, sizeof why, ri_conn_code_str(t->hs.code), t->hs.reason));
        if (t->hooks->refused)
            t->hooks->refused(t, t->hs.code, t->hs.reason);
        ri_tunnel_refuse(t, t->hs.code, t->hs.peer_reason);
    } else {
        if (t->hooks->refused)
            t->hooks->refused(t, t->hs.code, t->hs.reason);
        ri_tunnel_fail(t, t->hs.code, "%s", t->hs.reason);
    }
    return -1;
}

static void do_handshake(struct ri_tunnel *t)
{
    char err[256];
    int rc = ri_tlsio_handshake(&t->io, err, sizeof err);
    if (rc == RI_TLSIO_ERROR) {
        ri_tunnel_fail(t, RI_E_PROTOCOL, "%s", err);
        return;
    }
    /* write interest only while handshake bytes wait for socket room */
    if (ri_tlsio_has_output(&t->io)) {
        if (!ev_is_active(&t->wio))
            ev_io_start(LOOP, &t->wio);
    } else {
        ev_io_stop(LOOP, &t->wio);
    }
    if (rc == RI_TLSIO_AGAIN)
        return;
    uint8_t binding[32];
    if (ri_tls_binding(t->io.s, binding) < 0) {
        ri_tunnel_fail(t, RI_E_PROTOCOL, "no TLS 1.3 exporter channel binding");
        return;
    }
    t->state = RI_T_AUTH;
    log_debug("%s: TLS up (%s)", t->label, ri_tlsio_cipher(&t->io));
    if (t->hooks->tls_up && t->hooks->tls_up(t, err, sizeof err) < 0) {
        ri_tunnel_fail(t, RI_E_AUTH, "%s", err);
        return;
    }
    rc = ri_hs_begin(&t->hs, binding, t->my_id, t->my_secret);
    free_mine(t);
    gnutls_memset(binding, 0, sizeof binding);
    if (after_hs(t, rc) < 0 || t->parked)
        return;
    /* the peer's first frames may have arrived with its last handshake
     * message: they sit in ibuf (or in GnuTLS) and the socket will not turn
     * readable again for them */
    if (ri_tlsio_has_input(&t->io))
        ev_feed_event(LOOP, &t->rio, EV_READ);
}

/* ---- receiving ---------------------------------------------------------------------- */
/* Tells the peer how much of its DATA left the pipe (pace.h). */
static int send_ack(struct ri_tunnel *t)
{
    if (!t->rx_unacked || t->state != RI_T_READY)
        return 0;
    uint8_t p[4];
    ri_put32(p, (uint32_t)t->rx_unacked);
    t->rx_unacked = 0;
    ev_timer_stop(LOOP, &t->ack_delay);
    return ri_tunnel_ctrl(t, RI_F_ACK, 0, p, 4);
}

/* The socket ran dry. A sizeable ACK goes now: the sender's in-flight cap
 * may be waiting for it. A small one (a few interactive messages) may wait
 * RI_ACK_DELAY for a record going out anyway -- typically the answer to
 * the message it acknowledges (compose) -- instead of costing a record of
 * its own and a wakeup of the peer. It is far below any sender's floor
 * (RI_PACE_MIN), so it never holds a sender back. */
static int ack_when_dry(struct ri_tunnel *t)
{
    if (t->rx_unacked >= RI_ACK_DEFER)
        return send_ack(t);
    if (t->rx_unacked && !ev_is_active(&t->ack_delay)) {
        ev_timer_set(&t->ack_delay, RI_ACK_DELAY, 0); /* a fired timer keeps no delay */
        ev_timer_start(LOOP, &t->ack_delay);
    }
    return 0;
}

static void ack_delay_cb(EV_P_ ev_timer *w, int revents)
{
    send_ack(TUNNEL_OF(w, ack_delay));
}

/* Connection-level frames once authenticated. */
static int on_conn_frame(struct ri_tunnel *t, const struct ri_frame_hdr *h, const uint8_t *p)
{
    uint16_t code;
    char reason[RI_REASON_MAX + 1];
    switch (h->type) {
    case RI_F_REFUSE:
        ri_reason_decode(p, h->len, &code, reason, sizeof reason);
        char why[RI_REASON_MAX + 64];
        ri_tunnel_fail(t, code, "peer refused us: %s",
                       ri_code_reason(why, sizeof why, ri_conn_code_str(code), reason));
        return -1;
    case RI_F_CONFIG: {
        if (t->role != RI_ROLE_EDGE)
            break;
        struct ri_config_msg *m = malloc(sizeof *m); /* 8 KB: not on the stack */
        char err[128];
        if (!m) {
            ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
            return -1;
        }
        if (ri_config_decode(p, h->len, m, err, sizeof err) < 0) {
            free(m);
            proto_fail(t, "bad CONFIG: %s", err);
            return -1;
        }
        if (t->hooks->config)
            t->hooks->config(t, m);
        free(m);
        return t->state == RI_T_DEAD ? -1 : 0;
    }
    case RI_F_PORTS: {
        if (t->role != RI_ROLE_HUB || !(t->mux.caps & RI_CAP_PORTS))
            break;
        struct ri_ports_msg *m = malloc(sizeof *m); /* 8 KB: not on the stack */
        char err[128];
        if (!m) {
            ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
            return -1;
        }
        if (ri_ports_decode(p, h->len, m, err, sizeof err) < 0) {
            free(m);
            proto_fail(t, "bad PORTS: %s", err);
            return -1;
        }
        if (t->hooks->ports)
            t->hooks->ports(t, m);
        free(m);
        return t->state == RI_T_DEAD ? -1 : 0;
    }
    case RI_F_ADDR: {
        if (t->role != RI_ROLE_HUB || !(t->mux.caps & RI_CAP_ADDR))
            break;
        struct sockaddr_storage a;
        char err[128];
        if (ri_pubaddr_decode(p, h->len, &a, err, sizeof err) < 0) {
            proto_fail(t, "bad ADDR: %s", err);
            return -1;
        }
        if (t->hooks->addr)
            t->hooks->addr(t, &a);
        return t->state == RI_T_DEAD ? -1 : 0;
    }
    case RI_F_ACK: {
        uint64_t before = t->pace.acked, now = ri_now_ns();
        ri_pace_on_ack(&t->pace, ri_get32(p), now);
        ri_mux_share_acked(&t->mux, t->pace.acked - before, now);
        ri_tunnel_publish(t);
        ri_tunnel_kick(t);
        return 0;
    }
    case RI_F_GOAWAY:
        ri_reason_decode(p + 4, h->len - 4, &code, reason, sizeof reason);
        if (code == RI_E_NONE)
            t->peer_drained = 1; /* its last stream ended: see drained_check */
        else if (!t->draining) /* a peer repeating GOAWAY is logged once */
        {
            char msg[RI_REASON_MAX + 64];
            log_info("%s: peer is going away: %s", t->label,
                     ri_code_reason(msg, sizeof msg, ri_conn_code_str(code), reason));
        }
        t->draining = 1;
        ri_mux_set_phase(&t->mux, RI_MUX_DRAINING);
        if (t->hooks->goaway)
            t->hooks->goaway(t, code, reason);
        drained_check(t);
        return t->state == RI_T_DEAD ? -1 : 0;
    }
    proto_fail(t, "unexpected %s frame after the handshake", ri_ftype_str(h->type));
    return -1;
}

static int dispatch(struct ri_tunnel *t, const struct ri_frame_hdr *h, const uint8_t *p)
{
    char err[256];
    if (h->type != RI_F_DATA)
        t->w->ctr.ctrl_frames_in++; /* DATA: counted by its stream's class (mux.c) */
    if (h->type == RI_F_PING) /* in any state: the peer may measure us */
        return ri_tunnel_ctrl(t, RI_F_PONG, 0, p, 8);
    if (h->type == RI_F_PONG)
        return 0;
    if (t->state == RI_T_AUTH) {
        if (h->stream != 0) {
            proto_fail(t, "%s frame before authentication", ri_ftype_str(h->type));
            return -1;
        }
        return after_hs(t, ri_hs_on_frame(&t->hs, h, p));
    }
    if (h->stream == 0)
        return on_conn_frame(t, h, p);
    if (ri_mux_on_frame(&t->mux, h, p, err, sizeof err) < 0) {
        ri_tunnel_fail(t, RI_E_PROTOCOL, "%s", err);
        return -1;
    }
    if (h->type == RI_F_DATA && (t->rx_unacked += h->len) >= RI_ACK_EVERY)
        return send_ack(t);
    return 0;
}

static int parse(struct ri_tunnel *t)
{
    size_t off = t->roff;
    while (t->state != RI_T_DEAD && !t->closing && !t->parked) {
        /* per frame: WELCOME and a CONFIG above 8 KB often share one record */
        uint32_t max = t->state == RI_T_READY ? RI_FRAME_MAX_PAYLOAD : RI_PREAUTH_MAX_PAYLOAD;
        struct ri_frame_hdr h;
        int r = ri_frame_hdr_get(t->rbuf + off, t->rlen - off, max, &h);
        if (r == 0)
            break;
        if (r < 0) {
            proto_fail(t, "frame of %u bytes exceeds the %u-byte limit", h.len, max);
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
        if (dispatch(t, &h, p) < 0 || t->state == RI_T_DEAD)
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
    char err[256];
    for (;;) {
        if (t->state == RI_T_DEAD)
            return;
        /* closing: frames no longer matter, the peer's EOF does */
        int closing = t->closing != RI_CLOSE_NONE;
        size_t got;
        int rc = closing ? ri_tlsio_recv(&t->io, t->rbuf, RI_RBUF_SIZE, &got, err, sizeof err)
                         : ri_tlsio_recv(&t->io, t->rbuf + t->rlen, RI_RBUF_SIZE - t->rlen, &got,
                                         err, sizeof err);
        if (ri_tlsio_has_output(&t->io))
            ri_tunnel_kick(t); /* GnuTLS's answer to a KeyUpdate waits in obuf */
        size_t cost = got;
        switch (rc) {
        case RI_TLSIO_AGAIN:
            ack_when_dry(t);
            return; /* socket drained and nothing left decrypted in GnuTLS */
        case RI_TLSIO_RETRY:
            cost = 64; /* a post-handshake message: read on; charged, so a flood yields */
            break;
        case RI_TLSIO_EOF:
            if (closing)
                ri_tunnel_fail(t, t->close_code, "%s", ri_conn_code_str(t->close_code));
            else
                ri_tunnel_fail(t, t->draining ? RI_E_SHUTDOWN : RI_E_NONE,
                               "peer closed the connection");
            return;
        case RI_TLSIO_ERROR:
            if (closing)
                ri_tunnel_fail(t, t->close_code, "%s", ri_conn_code_str(t->close_code));
            else
                ri_tunnel_fail(t, t->io.rx_errno ? (t->draining ? RI_E_SHUTDOWN : RI_E_NONE)
                                                 : RI_E_PROTOCOL, "%s", err);
            return;
        default:
            if (!closing) {
                t->rlen += got;
                t->last_rx = ev_now(LOOP);
                if (parse(t) < 0 || t->parked)
                    return; /* parked: the rest is read where it goes (ri_tunnel_attach) */
            }
        }
        if (cost >= budget) {
            /* more may sit decrypted inside GnuTLS: come back next iteration
             * rather than wait for the socket to turn readable again */
            ev_feed_event(LOOP, &t->rio, EV_READ);
            send_ack(t);
            return;
        }
        budget -= cost;
    }
}

static void read_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, rio);
    if (t->state == RI_T_TLS)
        do_handshake(t);
    else
        tunnel_read(t);
}

static void write_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_tunnel *t = TUNNEL_OF(w, wio);
    if (t->state == RI_T_TLS)
        do_handshake(t);
    else if (t->state != RI_T_DEAD)
        flush(t);
}
