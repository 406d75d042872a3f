/* mux.c -- streams over one tunnel.
 *
 * Sending (socket -> tunnel): a stream whose socket is readable and which has
 * send credit is handed to the scheduler; when the tunnel has room, the
 * scheduler picks a stream and its bytes are read straight from the socket
 * into the tunnel's batch buffer behind a DATA header. The kernel's socket
 * buffer is the only per-stream send buffer: a stream waiting for its turn or
 * for credit simply stops reading, and TCP pushes back on its client.
 *
 * Receiving (tunnel -> socket): DATA is written straight to the socket; only
 * what the socket does not take is copied into the stream's chunk queue
 * (bounded by the credit we granted). Credit is returned with WINDOW frames
 * once bytes have been written onward, sized by the adaptive window policy.
 */
#include "mux.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "log.h"
#include "netutil.h"
#include "plugin.h"
#include "sched_fifo.h"
#include "tunnel.h"
#include "window.h"

#define SP(m, s) ((void *)((char *)(s) + (m)->sched_off))
#define CP(m, s) ((void *)((char *)(s) + (m)->cls_off))

static void stream_read_cb(EV_P_ ev_io *w, int revents);
static void stream_write_cb(EV_P_ ev_io *w, int revents);
static void stream_free(struct ri_stream *s);

static uint64_t now_ns(void) { return ri_core_api.now_ns(); }

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

static void cls_tick(EV_P_ ev_timer *w, int revents);

int ri_mux_init(struct ri_tunnel *t, const struct ri_module *sched,
                const struct ri_module *cls, uint32_t max_streams, char *err, size_t errlen)
{
    struct ri_mux *m = &t->mux;
    memset(m, 0, sizeof *m);
    if (!sched)
        sched = &ri_sched_fifo_builtin;
    if (!(m->sched = ri_inst_create(sched, err, errlen)))
        return -1;
    m->sops = sched->desc->ops;
    if (cls) {
        if (!(m->cls = ri_inst_create(cls, err, errlen))) {
            ri_inst_destroy(m->sched);
            return -1;
        }
        m->cops = cls->desc->ops;
    }
    m->sched_off = align16(sizeof(struct ri_stream));
    m->cls_off = m->sched_off + align16(sched->desc->stream_size);
    m->stream_size = m->cls_off + (cls ? align16(cls->desc->stream_size) : 0);
    m->mask = 255;
    m->tab = calloc(m->mask + 1, sizeof *m->tab);
    m->max_streams = max_streams;
    if (!m->tab) {
        snprintf(err, errlen, "out of memory");
        ri_inst_destroy(m->sched);
        ri_inst_destroy(m->cls);
        return -1;
    }
    ev_timer_init(&m->cls_timer, cls_tick, 1.0, 1.0);
    return 0;
}

void ri_mux_destroy(struct ri_tunnel *t)
{
    struct ri_mux *m = &t->mux;
    while (m->all)
        ri_mux_stream_reset(m->all, RI_RST_RESET, NULL);
    ev_timer_stop(EV_DEFAULT, &m->cls_timer);
    ri_inst_destroy(m->sched);
    ri_inst_destroy(m->cls);
    free(m->tab);
    m->tab = NULL;
}

void ri_mux_stop_all(struct ri_tunnel *t)
{
    for (struct ri_stream *s = t->mux.all; s; s = s->next) {
        ev_io_stop(EV_DEFAULT, &s->rio);
        ev_io_stop(EV_DEFAULT, &s->wio);
        ev_timer_stop(EV_DEFAULT, &s->ctimer);
    }
    ev_timer_stop(EV_DEFAULT, &t->mux.cls_timer);
}

/* ---- table ------------------------------------------------------------------- */
static struct ri_stream *lookup(struct ri_mux *m, uint32_t id)
{
    for (struct ri_stream *s = m->tab[id & m->mask]; s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

static void table_grow(struct ri_mux *m)
{
    uint32_t nmask = m->mask * 2 + 1;
    struct ri_stream **nt = calloc((size_t)nmask + 1, sizeof *nt);
    if (!nt)
        return; /* chains just get longer */
    for (uint32_t i = 0; i <= m->mask; i++) {
        struct ri_stream *s = m->tab[i];
        while (s) {
            struct ri_stream *nx = s->hnext;
            s->hnext = nt[s->id & nmask];
            nt[s->id & nmask] = s;
            s = nx;
        }
    }
    free(m->tab);
    m->tab = nt;
    m->mask = nmask;
}

static struct ri_stream *stream_alloc(struct ri_tunnel *t, uint32_t id, uint16_t port)
{
    struct ri_mux *m = &t->mux;
    struct ri_stream *s = calloc(1, m->stream_size);
    if (!s)
        return NULL;
    s->t = t;
    s->id = id;
    s->fd = -1;
    s->edge_port = port;
    s->tx_credit = RI_WINDOW_INITIAL;
    s->rx_granted = RI_WINDOW_INITIAL;
    s->opened_ns = now_ns();
    s->klass = RI_CLASS_DATA;
    ev_init(&s->rio, stream_read_cb);
    ev_init(&s->wio, stream_write_cb);
    ev_init(&s->ctimer, NULL);
    if (m->n >= (m->mask + 1) * 2)
        table_grow(m);
    s->hnext = m->tab[id & m->mask];
    m->tab[id & m->mask] = s;
    s->next = m->all;
    if (m->all)
        m->all->prev = s;
    m->all = s;
    m->n++;
    if (m->cops && !ev_is_active(&m->cls_timer))
        ev_timer_start(EV_DEFAULT, &m->cls_timer);
    return s;
}

static void stream_free(struct ri_stream *s)
{
    struct ri_tunnel *t = s->t;
    struct ri_mux *m = &t->mux;
    if (s->queued) {
        m->sops->remove(m->sched->state, s, SP(m, s));
        m->queued--;
    }
    ev_io_stop(EV_DEFAULT, &s->rio);
    ev_io_stop(EV_DEFAULT, &s->wio);
    ev_timer_stop(EV_DEFAULT, &s->ctimer);
    if (s->fd >= 0)
        close(s->fd);
    ri_bq_clear(&s->outq);
    struct ri_stream **pp = &m->tab[s->id & m->mask];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    if (s->prev)
        s->prev->next = s->next;
    else
        m->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    m->n--;
    free(s);
    if (m->n == 0) {
        ev_timer_stop(EV_DEFAULT, &m->cls_timer);
        ri_tunnel_drained_check(t);
    }
}

/* Abortive close: the local peer sees a TCP reset, not a clean end. */
static void close_abort(struct ri_stream *s)
{
    if (s->fd < 0)
        return;
    ri_close_abort(s->fd);
    s->fd = -1;
}

void ri_mux_stream_reset(struct ri_stream *s, unsigned code, const char *reason)
{
    struct ri_tunnel *t = s->t;
    if (reason && t->state != RI_T_DEAD)
        ri_tunnel_rst(t, s->id, code, reason);
    close_abort(s);
    stream_free(s);
}

static int stream_done(struct ri_stream *s)
{
    if (s->fin_sent && s->fin_rcvd && s->wr_shut) {
        stream_free(s);
        return 1;
    }
    return 0;
}

/* ---- sending side ------------------------------------------------------------ */
static void sched_enqueue(struct ri_mux *m, struct ri_stream *s)
{
    s->queued = 1;
    m->queued++;
    m->sops->enqueue(m->sched->state, s, SP(m, s), s->klass);
}

/* Read interest follows state: never while queued, out of credit, at EOF. */
static void update_reading(struct ri_stream *s)
{
    int want = !s->queued && !s->rd_eof && s->tx_credit > 0 && !s->connecting && s->fd >= 0 &&
               s->t->state == RI_T_READY;
    if (want && !s->reading)
        ev_io_start(EV_DEFAULT, &s->rio);
    else if (!want && s->reading)
        ev_io_stop(EV_DEFAULT, &s->rio);
    s->reading = (unsigned)want;
}

static void stream_read_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_stream *s = (struct ri_stream *)((char *)w - offsetof(struct ri_stream, rio));
    struct ri_mux *m = &s->t->mux;
    sched_enqueue(m, s);
    update_reading(s);
    ri_tunnel_kick(s->t);
}

size_t ri_mux_compose(struct ri_tunnel *t, uint8_t *buf, size_t *len, size_t target,
                      size_t cap, size_t budget)
{
    struct ri_mux *m = &t->mux;
    size_t added = 0;
    while (*len < target && m->queued && added < budget) {
        struct ri_sched_ctx ctx = {.now_ns = now_ns(), .tunnel_tx_bytes = m->tx_bytes,
                                   .queued = m->queued};
        struct ri_stream *s = m->sops->dequeue(m->sched->state, &ctx);
        if (!s)
            break;
        s->queued = 0;
        m->queued--;
        size_t room = cap - *len - RI_FRAME_HDR;
        if (room > RI_DATA_CHUNK)
            room = RI_DATA_CHUNK;
        if (room > s->tx_credit)
            room = (size_t)s->tx_credit;
        if (room > budget - added)
            room = budget - added;
        ssize_t n = read(s->fd, buf + *len + RI_FRAME_HDR, room);
        if (n > 0) {
            ri_frame_hdr_put(buf + *len, RI_F_DATA, s->id, (uint32_t)n);
            *len += RI_FRAME_HDR + (size_t)n;
            s->tx_credit -= (uint64_t)n;
            s->tx_bytes += (uint64_t)n;
            m->tx_bytes += (uint64_t)n;
            added += (size_t)n;
            if (m->sops->sent)
                m->sops->sent(m->sched->state, s, SP(m, s), (size_t)n, &ctx);
            /* stay in line while there is credit: by our next turn more has
             * usually arrived, and a read that finds nothing (EAGAIN) costs
             * less than re-arming the watcher after every short read */
            if (s->tx_credit > 0)
                sched_enqueue(m, s);
            update_reading(s);
        } else if (n == 0) {
            s->rd_eof = 1;
            ri_frame_hdr_put(buf + *len, RI_F_FIN, s->id, 0);
            *len += RI_FRAME_HDR;
            s->fin_sent = 1;
            update_reading(s);
            stream_done(s);
        } else if (errno == EAGAIN || errno == EINTR) {
            update_reading(s);
        } else {
            char why[96];
            snprintf(why, sizeof why, "read: %s", strerror(errno));
            ri_mux_stream_reset(s, RI_RST_RESET, why);
        }
    }
    return added;
}

/* ---- receiving side ---------------------------------------------------------- */
static uint32_t window_target(struct ri_stream *s)
{
    return ri_window_target(s->t->mux.n, s->klass == RI_CLASS_SUSTAINED);
}

/* n bytes went out of the socket: return credit when the policy says so */
static void consumed(struct ri_stream *s, size_t n)
{
    s->rx_consumed += n;
    uint32_t g = ri_window_grant(s->rx_granted, s->rx_consumed, window_target(s));
    if (g) {
        uint8_t p[4];
        ri_put32(p, g);
        s->rx_granted += g;
        ri_tunnel_ctrl(s->t, RI_F_WINDOW, s->id, p, 4);
    }
}

/* Writes what the socket takes; 0 ok, -1 stream was reset. */
static int flush_out(struct ri_stream *s)
{
    while (s->outq.bytes) {
        struct iovec iov[32];
        int cnt = ri_bq_iov(&s->outq, iov, 32);
        ssize_t w = writev(s->fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            char why[96];
            snprintf(why, sizeof why, "write: %s", strerror(errno));
            ri_mux_stream_reset(s, RI_RST_RESET, why);
            return -1;
        }
        ri_bq_consume(&s->outq, (size_t)w);
        size_t hdr = w < (ssize_t)s->hdr_left ? (size_t)w : s->hdr_left;
        s->hdr_left -= (uint32_t)hdr; /* the injected header earns the peer no credit */
        if ((size_t)w > hdr)
            consumed(s, (size_t)w - hdr);
    }
    if (s->outq.bytes) {
        ev_io_start(EV_DEFAULT, &s->wio);
        return 0;
    }
    ev_io_stop(EV_DEFAULT, &s->wio);
    if (s->fin_rcvd && !s->wr_shut) {
        shutdown(s->fd, SHUT_WR);
        s->wr_shut = 1;
        if (stream_done(s))
            return -1;
    }
    return 0;
}

static void stream_write_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_stream *s = (struct ri_stream *)((char *)w - offsetof(struct ri_stream, wio));
    if (s->connecting) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
            err = errno;
        ri_mux_stream_connected(s, err);
        return;
    }
    flush_out(s);
}

static void on_data(struct ri_stream *s, const uint8_t *p, size_t n)
{
    s->rx_bytes += n;
    if (!s->outq.bytes && !s->connecting) {
        ssize_t w;
        do
            w = write(s->fd, p, n);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN) {
            char why[96];
            snprintf(why, sizeof why, "write: %s", strerror(errno));
            ri_mux_stream_reset(s, RI_RST_RESET, why);
            return;
        }
        if (w > 0) {
            p += w, n -= (size_t)w;
            consumed(s, (size_t)w);
        }
        if (!n)
            return;
        if (ri_bq_append(&s->outq, p, n) < 0) {
            ri_mux_stream_reset(s, RI_RST_INTERNAL, "out of memory");
            return;
        }
        ev_io_start(EV_DEFAULT, &s->wio);
        return;
    }
    if (ri_bq_append(&s->outq, p, n) < 0)
        ri_mux_stream_reset(s, RI_RST_INTERNAL, "out of memory");
}

int ri_mux_on_frame(struct ri_tunnel *t, const struct ri_frame_hdr *h, const uint8_t *p,
                    char *err, size_t errlen)
{
    struct ri_mux *m = &t->mux;
    if (h->type == RI_F_OPEN) {
        if (t->role != RI_ROLE_HUB) {
            snprintf(err, errlen, "OPEN from the hub");
            return -1;
        }
        if (h->stream <= m->last_id) {
            snprintf(err, errlen, "OPEN of stream %u reuses an id (last was %u)", h->stream,
                     m->last_id);
            return -1;
        }
        m->last_id = h->stream;
        struct ri_open o;
        if (ri_open_decode(p, h->len, &o, err, errlen) < 0)
            return -1;
        if (t->draining || m->n >= m->max_streams) {
            if (!t->draining)
                ri_log_rl(&t->rl, RI_LOG_WARN,
                          "tunnel %s edge %s: stream %u refused: max_streams (%u) reached",
                          t->peer, t->edge_id, h->stream, m->max_streams);
            ri_tunnel_rst(t, h->stream, RI_RST_LIMIT,
                          t->draining ? "hub is draining" : "too many streams");
            return 0;
        }
        t->hooks->open(t, h->stream, &o);
        return 0;
    }
    struct ri_stream *s = lookup(m, h->stream);
    if (!s) {
        /* ids only grow: a known-but-gone id is a stream we already closed */
        uint32_t hi = t->role == RI_ROLE_HUB ? m->last_id : m->next_id;
        if (h->stream > hi) {
            snprintf(err, errlen, "%s for stream %u that was never opened",
                     ri_ftype_str(h->type), h->stream);
            return -1;
        }
        return 0;
    }
    switch (h->type) {
    case RI_F_DATA:
        if (s->fin_rcvd) {
            ri_mux_stream_reset(s, RI_RST_PROTOCOL, "DATA after FIN");
            return 0;
        }
        if (s->rx_bytes + h->len > s->rx_granted) {
            ri_log_rl(&t->rl, RI_LOG_WARN, "tunnel %s: stream %u: peer sent beyond its window",
                      t->peer, s->id);
            ri_mux_stream_reset(s, RI_RST_FLOW, "data beyond the window");
            return 0;
        }
        on_data(s, p, h->len);
        return 0;
    case RI_F_FIN:
        if (s->fin_rcvd)
            return 0;
        s->fin_rcvd = 1;
        if (!s->connecting)
            flush_out(s);
        return 0;
    case RI_F_RST: {
        uint16_t code;
        char reason[RI_REASON_MAX + 1];
        ri_reason_decode(p, h->len, &code, reason, sizeof reason);
        log_debug("tunnel %s: stream %u reset by peer: %s: %s", t->peer, s->id,
                  ri_rst_code_str(code), reason);
        close_abort(s);
        stream_free(s);
        return 0;
    }
    case RI_F_WINDOW: {
        uint32_t d = ri_get32(p);
        if (s->tx_credit + d > (1ull << 31)) {
            snprintf(err, errlen, "WINDOW grows stream %u's credit past 2 GiB", s->id);
            return -1;
        }
        s->tx_credit += d;
        update_reading(s);
        return 0;
    }
    }
    snprintf(err, errlen, "unexpected %s frame", ri_ftype_str(h->type));
    return -1;
}

/* ---- opening ------------------------------------------------------------------ */
static void tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void grant_initial(struct ri_stream *s)
{
    uint32_t g = ri_window_grant(s->rx_granted, s->rx_consumed, window_target(s));
    if (g) {
        uint8_t p[4];
        ri_put32(p, g);
        s->rx_granted += g;
        ri_tunnel_ctrl(s->t, RI_F_WINDOW, s->id, p, 4);
    }
}

int ri_mux_open_local(struct ri_tunnel *t, int fd, uint16_t port)
{
    struct ri_mux *m = &t->mux;
    if (m->n >= m->max_streams || m->next_id == UINT32_MAX) {
        ri_log_rl(&t->rl, RI_LOG_WARN, "tunnel %s: refusing a client on port %u: %s", t->peer,
                  port, m->n >= m->max_streams ? "max_streams reached" : "stream ids exhausted");
        ri_close_abort(fd);
        return -1;
    }
    struct sockaddr_storage peer, local;
    socklen_t pl = sizeof peer, ll = sizeof local;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
        getsockname(fd, (struct sockaddr *)&local, &ll) < 0) {
        close(fd);
        return -1;
    }
    struct ri_stream *s = stream_alloc(t, m->next_id + 1, port);
    if (!s) {
        close(fd);
        return -1;
    }
    m->next_id++;
    uint8_t o[RI_OPEN_LEN];
    ri_open_encode(o, (struct sockaddr *)&peer, (struct sockaddr *)&local);
    ri_tunnel_ctrl(t, RI_F_OPEN, s->id, o, sizeof o);
    grant_initial(s);
    ri_mux_stream_attach(s, fd, 0);
    return 0;
}

struct ri_stream *ri_mux_stream_new(struct ri_tunnel *t, uint32_t id, uint16_t edge_port)
{
    struct ri_stream *s = stream_alloc(t, id, edge_port);
    if (!s) {
        ri_tunnel_rst(t, id, RI_RST_INTERNAL, "out of memory");
        return NULL;
    }
    grant_initial(s);
    return s;
}

void ri_mux_stream_attach(struct ri_stream *s, int fd, int connecting)
{
    s->fd = fd;
    s->connecting = (unsigned)connecting;
    tune_socket(fd);
    ev_io_set(&s->rio, fd, EV_READ);
    ev_io_set(&s->wio, fd, EV_WRITE);
    if (connecting)
        ev_io_start(EV_DEFAULT, &s->wio);
    update_reading(s);
}

void ri_mux_stream_connected(struct ri_stream *s, int err)
{
    ev_timer_stop(EV_DEFAULT, &s->ctimer);
    if (err) {
        char why[160];
        snprintf(why, sizeof why, "upstream port %u: %s", s->edge_port, strerror(err));
        ri_log_rl(&s->t->rl, RI_LOG_INFO, "tunnel %s: stream %u: %s", s->t->peer, s->id, why);
        ri_mux_stream_reset(s, err == ECONNREFUSED ? RI_RST_REFUSED
                                : err == ETIMEDOUT ? RI_RST_TIMEOUT
                                                   : RI_RST_UNREACHABLE,
                            why);
        return;
    }
    s->connecting = 0;
    ev_io_stop(EV_DEFAULT, &s->wio);
    if (flush_out(s) < 0)
        return;
    update_reading(s);
}

int ri_mux_stream_prepend(struct ri_stream *s, const void *p, size_t n)
{
    /* only used before any data arrived, so appending is prepending */
    if (ri_bq_append(&s->outq, p, n) < 0)
        return -1;
    s->hdr_left += (uint32_t)n;
    return 0;
}

/* ---- classification ------------------------------------------------------------ */
int ri_mux_stream_stats(const ri_stream *s, struct ri_stream_stats *out)
{
    memset(out, 0, sizeof *out);
    out->id = s->id;
    out->klass = s->klass;
    out->age_ns = now_ns() - s->opened_ns;
    out->tx_bytes = s->tx_bytes;
    out->rx_bytes = s->rx_bytes;
    out->tx_window = s->tx_credit;
    out->rx_buffered = s->outq.bytes;
    out->active_streams = s->t->mux.n;
    out->edge_port = s->edge_port;
    return 0;
}

static void cls_tick(EV_P_ ev_timer *w, int revents)
{
    struct ri_mux *m = (struct ri_mux *)((char *)w - offsetof(struct ri_mux, cls_timer));
    for (struct ri_stream *s = m->all; s; s = s->next) {
        uint64_t moved = s->tx_bytes + s->rx_bytes;
        if (moved == s->tick_bytes)
            continue;
        s->tick_bytes = moved;
        struct ri_stream_stats st;
        ri_mux_stream_stats(s, &st);
        uint32_t k = m->cops->classify(m->cls->state, CP(m, s), &st);
        if (k > RI_CLASS_MAX_ || k == s->klass)
            continue;
        log_debug("tunnel %s: stream %u class %u -> %u", s->t->peer, s->id, s->klass, k);
        s->klass = k;
        if (s->queued) {
            m->sops->remove(m->sched->state, s, SP(m, s));
            m->sops->enqueue(m->sched->state, s, SP(m, s), k);
        }
    }
}
