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
 * once bytes have been written onward, sized by the window policy (or the
 * classifier's window for the stream's class).
 */
#include "mux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "events.h"
#include "log.h"
#include "netutil.h"
#include "pace.h"
#include "plugin.h"
#include "window.h"
#include "worker.h"

static void stream_read_cb(EV_P_ ev_io *w, int revents);
static void stream_write_cb(EV_P_ ev_io *w, int revents);
static void connect_timeout_cb(EV_P_ ev_timer *w, int revents);
static void cls_tick(EV_P_ ev_timer *w, int revents);
static void set_class(struct ri_stream *s);

#define LOOP (m->w->loop)

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

static void kick_cb(void *arg)
{
    struct ri_mux *m = arg;
    m->env->kick(m->env->owner);
}

/* ---- policy instances ------------------------------------------------------ */
static int make_policy(struct ri_mux *m, const struct ri_mux_policy *pol, struct ri_inst **sched,
                       struct ri_inst **cls, char *err, size_t errlen)
{
    struct ri_module *sm = pol->sched ? pol->sched : ri_module_builtin_sched();
    *cls = NULL;
    if (!(*sched = ri_inst_create(sm, pol->sched_settings, LOOP, m->role, m->api, err, errlen)))
        return -1;
    if (pol->cls && !(*cls = ri_inst_create(pol->cls, pol->cls_settings, LOOP, m->role, m->api,
                                            err, errlen))) {
        ri_inst_unref(*sched);
        return -1;
    }
    (*sched)->kick = kick_cb;
    (*sched)->kick_arg = m;
    if (*cls) {
        (*cls)->kick = kick_cb;
        (*cls)->kick_arg = m;
    }
    return 0;
}

int ri_mux_init(struct ri_mux *m, struct ri_worker *w, const struct ri_mux_env *env,
                const struct ri_core_api *api, int role, const struct ri_mux_policy *pol,
                uint32_t max_streams, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->w = w;
    m->env = env;
    m->api = api;
    m->role = role;
    m->label = "tunnel";
    m->edge_id = "";
    m->peer = "";
    m->max_streams = max_streams;
    m->mask = 255;
    if (!(m->tab = calloc(m->mask + 1, sizeof *m->tab))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pol && make_policy(m, pol, &m->sched, &m->cls, err, errlen) < 0) {
        free(m->tab);
        m->tab = NULL;
        return -1;
    }
    m->sched_size = m->sched ? align16(m->sched->mod->desc.stream_size) : 0;
    m->cls_size = m->cls ? align16(m->cls->mod->desc.stream_size) : 0;
    ev_timer_init(&m->cls_timer, cls_tick, 1.0, 1.0);
    return 0;
}

void ri_mux_set_phase(struct ri_mux *m, enum ri_mux_phase phase) { m->phase = phase; }

struct ri_mux_share *ri_mux_share_new(int threaded)
{
    struct ri_mux_share *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    if (pthread_mutex_init(&sh->mu, NULL) != 0) {
        free(sh);
        return NULL;
    }
    sh->refs = 1;
    sh->threaded = threaded;
    return sh;
}

void ri_mux_share_unref(struct ri_mux_share *sh)
{
    if (!sh)
        return;
    pthread_mutex_lock(&sh->mu);
    uint32_t left = --sh->refs;
    pthread_mutex_unlock(&sh->mu);
    if (!left) {
        pthread_mutex_destroy(&sh->mu);
        free(sh);
    }
}

/* A threaded share's wake-up, on this lane's own loop */
static void share_wake_cb(EV_P_ ev_async *w, int revents)
{
    struct ri_mux *m = w->data;
    if (m->queued && m->phase != RI_MUX_DEAD)
        m->env->kick(m->env->owner);
}

struct ri_mux_share *ri_mux_join(struct ri_mux *m, struct ri_mux_share *sh)
{
    if (m->share)
        return m->share;
    if (!sh) {
        if (!(sh = ri_mux_share_new(0)))
            return NULL;
    } else {
        pthread_mutex_lock(&sh->mu);
        sh->refs++;
        pthread_mutex_unlock(&sh->mu);
    }
    if (sh->threaded) {
        ev_async_init(&m->share_wake, share_wake_cb);
        m->share_wake.data = m;
        ev_async_start(LOOP, &m->share_wake);
    }
    atomic_fetch_add_explicit(&sh->streams, m->n, memory_order_relaxed);
    pthread_mutex_lock(&sh->mu);
    m->share = sh;
    m->share_next = sh->muxes;
    sh->muxes = m;
    pthread_mutex_unlock(&sh->mu);
    return sh;
}

/* Under sh->mu: runs the writer of every lane with streams waiting (the
 * edge's in-flight cap freed room); a lane on another loop is woken there
 * (its queue is its own thread's to read). */
static void share_kick(struct ri_mux_share *sh, struct ri_mux *self)
{
    for (struct ri_mux *m = sh->muxes; m; m = m->share_next)
        if (sh->threaded && m->w->loop != self->w->loop)
            ev_async_send(m->w->loop, &m->share_wake);
        else if (m->queued && m->phase != RI_MUX_DEAD)
            m->env->kick(m->env->owner);
}

uint64_t ri_mux_share_room(struct ri_mux *m, const struct ri_pace *own)
{
    struct ri_mux_share *sh = m->share;
    if (!sh)
        return ri_pace_room(own);
    int held = 0;
    pthread_mutex_lock(&sh->mu);
    uint64_t room = ri_pace_share_room(own, &sh->pace, &held);
    if (held && m->queued) /* an ACK on any lane runs us again */
        sh->pace.blocked = 1;
    pthread_mutex_unlock(&sh->mu);
    return room;
}

void ri_mux_share_sent(struct ri_mux *m, uint64_t bytes, uint64_t now_ns)
{
    struct ri_mux_share *sh = m->share;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->mu);
    ri_pace_share_sent(&sh->pace, bytes, now_ns);
    pthread_mutex_unlock(&sh->mu);
}

void ri_mux_share_acked(struct ri_mux *m, uint64_t acked, uint64_t now_ns)
{
    struct ri_mux_share *sh = m->share;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->mu);
    ri_pace_share_acked(&sh->pace, acked, now_ns);
    if (sh->pace.blocked && ri_pace_room(&sh->pace.edge) > 0) {
        sh->pace.blocked = 0; /* the lanes the edge's cap held back */
        share_kick(sh, m);
    }
    pthread_mutex_unlock(&sh->mu);
}

void ri_mux_share_forget(struct ri_mux *m, const struct ri_pace *own)
{
    struct ri_mux_share *sh = m->share;
    if (!sh)
        return;
    pthread_mutex_lock(&sh->mu);
    ri_pace_share_leave(&sh->pace, own);
    pthread_mutex_unlock(&sh->mu);
}

static void leave_share(struct ri_mux *m)
{
    struct ri_mux_share *sh = m->share;
    if (!sh)
        return;
    /* what this lane still counts (streams reset before) */
    atomic_fetch_sub_explicit(&sh->streams, m->n, memory_order_relaxed);
    pthread_mutex_lock(&sh->mu);
    for (struct ri_mux **pp = &sh->muxes; *pp; pp = &(*pp)->share_next)
        if (*pp == m) {
            *pp = m->share_next;
            break;
        }
    /* unlinked under mu first: no other lane's kick reaches the watcher */
    if (sh->threaded)
        ev_async_stop(LOOP, &m->share_wake);
    pthread_mutex_unlock(&sh->mu);
    m->share_next = NULL;
    m->share = NULL;
    ri_mux_share_unref(sh);
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

static void addr_from(struct ri_addr *a, const struct sockaddr *sa)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        a->family = 4;
        memcpy(a->ip, &in->sin_addr, 4);
        a->port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        a->family = 6;
        memcpy(a->ip, &in6->sin6_addr, 16);
        a->port = ntohs(in6->sin6_port);
    }
}

static void emit_stream(struct ri_stream *s, int type, unsigned code, const char *reason)
{
    struct ri_mux *m = s->m;
    int hub = m->role == RI_ROLE_HUB;
    struct ri_event ev = {
        .type = type, .role = m->role, .tunnel_id = m->tunnel_id, .edge_id = m->edge_id,
        .peer = m->peer, .stream_id = s->id, .port = s->edge_port, .client = &s->client,
        .target = hub ? &s->target : NULL,
        /* up = client -> upstream: the edge sends it, the hub receives it */
        .bytes_up = hub ? s->rx_bytes : s->tx_bytes, .bytes_down = hub ? s->tx_bytes : s->rx_bytes,
        .duration = (double)(ri_now_ns() - s->opened_ns) / 1e9, .code = code, .reason = reason,
        .klass = s->klass};
    ri_event_emit(m->w->bus, &ev);
}

static struct ri_stream *stream_alloc(struct ri_mux *m, uint32_t id, uint16_t port)
{
    size_t base = align16(sizeof(struct ri_stream));
    struct ri_stream *s = calloc(1, base + m->sched_size + m->cls_size);
    if (!s)
        return NULL;
    s->m = m;
    s->id = id;
    s->fd = -1;
    s->edge_port = port;
    s->sp = (char *)s + base;
    s->cp = m->cls ? (char *)s + base + m->sched_size : NULL;
    s->tx_credit = RI_WINDOW_INITIAL;
    s->rx_granted = RI_WINDOW_INITIAL;
    s->opened_ns = ri_now_ns();
    s->klass = RI_CLASS_DATA;
    ri_bq_init(&s->outq, &m->w->pool);
    ev_init(&s->rio, stream_read_cb);
    ev_init(&s->wio, stream_write_cb);
    ev_init(&s->ctimer, connect_timeout_cb);
    if (m->n >= (m->mask + 1) * 2)
        table_grow(m);
    s->hnext = m->tab[id & m->mask];
    m->tab[id & m->mask] = s;
    s->next = m->all;
    if (m->all)
        m->all->prev = s;
    m->all = s;
    m->n++;
    if (m->share)
        atomic_fetch_add_explicit(&m->share->streams, 1, memory_order_relaxed);
    m->w->ctr.streams_opened++;
    ri_sched_event(m->sched, s, s->sp, RI_EV_OPENED, s->klass);
    if (m->cls) {
        struct ri_stream_stats st = {.size = sizeof st};
        ri_mux_stream_stats(s, &st);
        ri_classify_event(m->cls, s, s->cp, RI_EV_OPENED, &st);
        if (!ev_is_active(&m->cls_timer))
            ev_timer_start(LOOP, &m->cls_timer);
    }
    return s;
}

/* code/reason: how it ended (0 = both sides finished cleanly) */
static void stream_free(struct ri_stream *s, unsigned code, const char *reason)
{
    struct ri_mux *m = s->m;
    emit_stream(s, RI_EVT_STREAM_CLOSED, code, reason);
    if (s->queued) {
        ri_sched_remove(m->sched, s, s->sp);
        m->queued--;
    }
    ri_sched_event(m->sched, s, s->sp, RI_EV_CLOSED, s->klass);
    if (m->cls) {
        struct ri_stream_stats st = {.size = sizeof st};
        ri_mux_stream_stats(s, &st);
        ri_classify_event(m->cls, s, s->cp, RI_EV_CLOSED, &st);
    }
    ev_io_stop(LOOP, &s->rio);
    ev_io_stop(LOOP, &s->wio);
    ev_timer_stop(LOOP, &s->ctimer);
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
    if (m->share)
        atomic_fetch_sub_explicit(&m->share->streams, 1, memory_order_relaxed);
    m->w->ctr.streams_closed++;
    free(s->areas);
    free(s);
    if (m->n == 0) {
        ev_timer_stop(LOOP, &m->cls_timer);
        if (m->phase != RI_MUX_DEAD)
            m->env->idle(m->env->owner);
    }
}

void ri_mux_destroy(struct ri_mux *m)
{
    m->phase = RI_MUX_DEAD;
    while (m->all)
        ri_mux_stream_reset(m->all, RI_RST_RESET, NULL);
    leave_share(m);
    if (m->tab) {
        ev_timer_stop(LOOP, &m->cls_timer);
        ri_inst_unref(m->sched);
        ri_inst_unref(m->cls);
    }
    free(m->tab);
    m->tab = NULL;
    m->sched = m->cls = NULL;
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
    struct ri_mux *m = s->m;
    if (reason && m->phase != RI_MUX_DEAD) {
        uint8_t p[2 + RI_REASON_MAX];
        size_t n = ri_reason_encode(p, sizeof p, (uint16_t)code, reason);
        m->env->ctrl(m->env->owner, RI_F_RST, s->id, p, n);
    }
    close_abort(s);
    stream_free(s, code ? code : RI_RST_RESET, reason ? reason : ri_rst_code_str(code));
}

void ri_mux_refuse(struct ri_mux *m, uint32_t id, unsigned code, const char *reason)
{
    uint8_t p[2 + RI_REASON_MAX];
    size_t n = ri_reason_encode(p, sizeof p, (uint16_t)code, reason);
    m->w->ctr.streams_refused++;
    m->env->ctrl(m->env->owner, RI_F_RST, id, p, n);
}

static int stream_done(struct ri_stream *s)
{
    if (s->fin_sent && s->fin_rcvd && s->wr_shut) {
        stream_free(s, 0, "");
        return 1;
    }
    return 0;
}

/* ---- sending side ------------------------------------------------------------ */
static void sched_enqueue(struct ri_mux *m, struct ri_stream *s)
{
    s->queued = 1;
    m->queued++;
    ri_sched_enqueue(m->sched, s, s->sp, s->klass);
}

/* Read interest follows state: never while queued, out of credit, at EOF. */
static void update_reading(struct ri_stream *s)
{
    struct ri_mux *m = s->m;
    int want = !s->queued && !s->rd_eof && s->tx_credit > 0 && !s->connecting && s->fd >= 0 &&
               (m->phase == RI_MUX_OPEN || m->phase == RI_MUX_DRAINING);
    if (want && !s->reading)
        ev_io_start(LOOP, &s->rio);
    else if (!want && s->reading)
        ev_io_stop(LOOP, &s->rio);
    s->reading = (unsigned)want;
}

static void stream_read_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_stream *s = (struct ri_stream *)((char *)w - offsetof(struct ri_stream, rio));
    struct ri_mux *m = s->m;
    sched_enqueue(m, s);
    update_reading(s);
    m->env->kick(m->env->owner);
}

static void fill_ctx(const struct ri_mux *m, struct ri_sched_ctx *ctx, const struct ri_pace *p)
{
    *ctx = (struct ri_sched_ctx){.size = sizeof *ctx, .queued = m->queued, .now_ns = ri_now_ns(),
                                 .tunnel_tx_bytes = m->tx_bytes, .max_chunk = RI_DATA_CHUNK};
    if (p) {
        ctx->pace_room = ri_pace_room(p);
        ctx->min_rtt_ns = p->min_rtt;
        ctx->delivery_rate = p->bw;
    }
}

/* The read size for a frame at buf offset `at`, shortened so the frame ends
 * on a multiple of align, when that still leaves more than one record's
 * worth: a 64 KiB DATA frame with its 10-byte header would otherwise take
 * four full TLS records and a fifth for the last 10 bytes. */
static size_t aligned_room(size_t at, size_t room, size_t align)
{
    if (!align || room <= align)
        return room;
    size_t over = (at + RI_FRAME_HDR + room) % align;
    return over < room ? room - over : room;
}

size_t ri_mux_compose(struct ri_mux *m, uint8_t *buf, size_t *len, size_t target, size_t cap,
                      size_t budget, size_t align, const struct ri_pace *pace)
{
    size_t added = 0;
    while (*len < target && m->queued && added < budget) {
        struct ri_sched_ctx ctx;
        fill_ctx(m, &ctx, pace);
        ctx.pace_room = ctx.pace_room > added ? ctx.pace_room - added : 0;
        uint32_t max = RI_DATA_CHUNK;
        struct ri_stream *s = ri_sched_dequeue(m->sched, &ctx, &max);
        if (!s)
            break; /* nothing eligible now: the scheduler kicks us when there is */
        s->queued = 0;
        m->queued--;
        size_t room = cap - *len - RI_FRAME_HDR;
        if (room > RI_DATA_CHUNK)
            room = RI_DATA_CHUNK;
        if (max && room > max)
            room = max;
        /* aligned before credit and the in-flight budget cut it: a frame
         * they cut is the batch's last anyway */
        room = aligned_room(*len, room, align);
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
            m->w->ctr.bytes_to_peer += (uint64_t)n;
            m->w->ctr.data_frames_out[s->klass]++;
            m->w->ctr.data_bytes_out[s->klass] += (uint64_t)n;
            /* it read all its credit allowed: more is likely waiting */
            if ((size_t)n == room && s->tx_credit == 0)
                m->w->ctr.window_stalls++;
            added += (size_t)n;
            ri_sched_sent(m->sched, s, s->sp, (size_t)n, &ctx);
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
            m->w->ctr.ctrl_frames_out++;
            s->fin_sent = 1;
            update_reading(s);
            stream_done(s);
        } else if (errno == EAGAIN || errno == EINTR) {
            ri_sched_event(m->sched, s, s->sp, RI_EV_IDLE, s->klass);
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
static uint32_t window_target(const struct ri_stream *s)
{
    const struct ri_mux *m = s->m;
    /* the window budget is the edge's, across its lanes */
    uint32_t n = ri_mux_edge_streams(m);
    uint32_t w = m->cls ? ri_class_window(m->cls, s->klass, n) : 0;
    return w ? w : ri_window_target(n, s->klass == RI_CLASS_SUSTAINED);
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
        s->m->env->ctrl(s->m->env->owner, RI_F_WINDOW, s->id, p, 4);
    }
}

/* Writes what the socket takes; 0 ok, -1 stream gone. */
static int flush_out(struct ri_stream *s)
{
    struct ri_mux *m = s->m;
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
        ev_io_start(LOOP, &s->wio);
        return 0;
    }
    ev_io_stop(LOOP, &s->wio);
    if (s->fin_rcvd && !s->wr_shut) {
        shutdown(s->fd, SHUT_WR);
        s->wr_shut = 1;
        if (stream_done(s))
            return -1;
    }
    return 0;
}

static void connected(struct ri_stream *s, int err);

static void stream_write_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_stream *s = (struct ri_stream *)((char *)w - offsetof(struct ri_stream, wio));
    if (s->connecting) {
        connected(s, ri_connect_error(s->fd));
        return;
    }
    flush_out(s);
}

static void on_data(struct ri_stream *s, const uint8_t *p, size_t n)
{
    s->rx_bytes += n;
    s->m->rx_bytes += n;
    s->m->w->ctr.bytes_from_peer += n;
    s->m->w->ctr.data_frames_in[s->klass]++;
    s->m->w->ctr.data_bytes_in[s->klass] += n;
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
        ev_io_start(s->m->w->loop, &s->wio);
        return;
    }
    if (ri_bq_append(&s->outq, p, n) < 0)
        ri_mux_stream_reset(s, RI_RST_INTERNAL, "out of memory");
}

uint16_t ri_open_edge_port(const struct ri_open *o)
{
    return ntohs(o->edge.ss_family == AF_INET
                     ? ((const struct sockaddr_in *)&o->edge)->sin_port
                     : ((const struct sockaddr_in6 *)&o->edge)->sin6_port);
}

static int on_open(struct ri_mux *m, const struct ri_frame_hdr *h, const uint8_t *p, char *err,
                   size_t errlen)
{
    if (m->role != RI_ROLE_HUB) {
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
    /* Draining, an OPEN is still served: the edge opens nothing once it
     * has our GOAWAY, so this one crossed it on the wire, and its client's
     * first bytes may be in flight behind it -- refusing it would reset a
     * client that did nothing wrong. The drain's deadline bounds the rest. */
    if (ri_mux_edge_streams(m) >= m->max_streams) { /* per edge, across its lanes */
        ri_log_rl(m->rl, RI_LOG_WARN, "%s: stream %u refused: max_streams (%u) reached",
                  m->label, h->stream, m->max_streams);
        ri_mux_refuse(m, h->stream, RI_RST_LIMIT, "too many streams");
        return 0;
    }
    m->env->open(m->env->owner, h->stream, &o);
    return 0;
}

int ri_mux_on_frame(struct ri_mux *m, const struct ri_frame_hdr *h, const uint8_t *p,
                    char *err, size_t errlen)
{
    if (h->type == RI_F_OPEN)
        return on_open(m, h, p, err, errlen);
    struct ri_stream *s = lookup(m, h->stream);
    if (!s) {
        /* ids only grow: a known-but-gone id is a stream we already closed */
        uint32_t hi = m->role == RI_ROLE_HUB ? m->last_id : m->next_id;
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
            ri_log_rl(m->rl, RI_LOG_WARN, "%s: stream %u: peer sent beyond its window",
                      m->label, s->id);
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
        log_debug("%s: stream %u reset by peer: %s: %s", m->label, s->id,
                  ri_rst_code_str(code), reason);
        close_abort(s);
        stream_free(s, code ? code : RI_RST_RESET, reason);
        return 0;
    }
    case RI_F_CLASS:
        if (!(m->caps & RI_CAP_CLASS)) {
            snprintf(err, errlen, "CLASS frame without the capability");
            return -1;
        }
        if (p[0] > RI_CLASS_MAX_) {
            snprintf(err, errlen, "CLASS %u for stream %u is not a class", p[0], s->id);
            return -1;
        }
        s->peer_class = p[0];
        set_class(s);
        return 0;
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
static void grant_initial(struct ri_stream *s)
{
    uint32_t g = ri_window_grant(s->rx_granted, s->rx_consumed, window_target(s));
    if (g) {
        uint8_t p[4];
        ri_put32(p, g);
        s->rx_granted += g;
        s->m->env->ctrl(s->m->env->owner, RI_F_WINDOW, s->id, p, 4);
    }
}

static void attach(struct ri_stream *s, int fd, int connecting)
{
    struct ri_mux *m = s->m;
    int one = 1;
    s->fd = fd;
    s->connecting = (unsigned)connecting;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ev_io_set(&s->rio, fd, EV_READ);
    ev_io_set(&s->wio, fd, EV_WRITE);
    if (connecting)
        ev_io_start(LOOP, &s->wio);
    update_reading(s);
}

int ri_mux_open_local(struct ri_mux *m, int fd, uint16_t port)
{
    uint32_t open = ri_mux_edge_streams(m); /* per edge, across its lanes */
    if (open >= m->max_streams || m->next_id == UINT32_MAX) {
        ri_log_rl(m->rl, RI_LOG_WARN, "%s: refusing a client on port %u: %s", m->label, port,
                  open >= m->max_streams ? "max_streams reached" : "stream ids exhausted");
        m->w->ctr.streams_refused++;
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
    struct ri_stream *s = stream_alloc(m, m->next_id + 1, port);
    if (!s) {
        close(fd);
        return -1;
    }
    m->next_id++;
    addr_from(&s->client, (struct sockaddr *)&peer);
    uint8_t o[RI_OPEN_LEN];
    ri_open_encode(o, (struct sockaddr *)&peer, (struct sockaddr *)&local);
    m->env->ctrl(m->env->owner, RI_F_OPEN, s->id, o, sizeof o);
    grant_initial(s);
    attach(s, fd, 0);
    emit_stream(s, RI_EVT_STREAM_OPENED, 0, "");
    return 0;
}

static void connected(struct ri_stream *s, int err)
{
    struct ri_mux *m = s->m;
    ev_timer_stop(LOOP, &s->ctimer);
    if (err) {
        char why[160], cl[64], tg[64];
        ri_raddr_str(&s->client, cl, sizeof cl);
        ri_raddr_str(&s->target, tg, sizeof tg);
        snprintf(why, sizeof why, "upstream %s: %s", tg, strerror(err));
        ri_log_rl(m->rl, RI_LOG_WARN, "%s: stream %u from %s to edge port %u: %s", m->label,
                  s->id, cl, s->edge_port, why);
        ri_mux_stream_reset(s, err == ECONNREFUSED ? RI_RST_REFUSED
                               : err == ETIMEDOUT  ? RI_RST_TIMEOUT
                                                   : RI_RST_UNREACHABLE,
                            why);
        return;
    }
    s->connecting = 0;
    ev_io_stop(LOOP, &s->wio);
    if (flush_out(s) < 0)
        return;
    update_reading(s);
}

static void connect_timeout_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_stream *s = (struct ri_stream *)((char *)w - offsetof(struct ri_stream, ctimer));
    connected(s, ETIMEDOUT);
}

int ri_mux_connect(struct ri_mux *m, uint32_t id, const struct ri_open *o,
                   const struct sockaddr *dst, socklen_t dl, const void *hdr, size_t hl,
                   double timeout)
{
    int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        char why[96];
        snprintf(why, sizeof why, "socket: %s", strerror(errno));
        ri_log_rl(m->rl, RI_LOG_WARN, "%s: stream %u: %s", m->label, id, why);
        ri_mux_refuse(m, id, RI_RST_INTERNAL, why);
        return -1;
    }
    /* near the open-file limit: one warning; at it, RST code 10 (limit) and
     * the last descriptors stay free for the hub itself */
    if (ri_worker_fd_room(m->w, fd, "hub", "streams") < 0) {
        close(fd);
        ri_mux_refuse(m, id, RI_RST_LIMIT, "descriptor limit");
        return -1;
    }
    struct ri_stream *s = stream_alloc(m, id, ri_open_edge_port(o));
    if (!s) {
        close(fd);
        ri_mux_refuse(m, id, RI_RST_INTERNAL, "out of memory");
        return -1;
    }
    addr_from(&s->client, (const struct sockaddr *)&o->client);
    addr_from(&s->target, dst);
    grant_initial(s);
    emit_stream(s, RI_EVT_STREAM_OPENED, 0, "");
    /* the header goes before any stream data: appending now is prepending */
    if (hl && ri_bq_append(&s->outq, hdr, hl) < 0) {
        close(fd);
        ri_mux_stream_reset(s, RI_RST_INTERNAL, "out of memory");
        return -1;
    }
    s->hdr_left = (uint32_t)hl;
    int rc = connect(fd, dst, dl);
    int e = rc == 0 ? 0 : errno;
    attach(s, fd, 1);
    if (e == EINPROGRESS) {
        ev_timer_set(&s->ctimer, timeout, 0);
        ev_timer_start(LOOP, &s->ctimer);
        return 0;
    }
    connected(s, e);
    return e ? -1 : 0;
}

/* ---- policy ---------------------------------------------------------------------- */
int ri_mux_stream_stats(const ri_stream *s, struct ri_stream_stats *out)
{
    struct ri_stream_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    st.id = s->id;
    st.klass = s->klass;
    st.age_ns = ri_now_ns() - s->opened_ns;
    st.tx_bytes = s->tx_bytes;
    st.rx_bytes = s->rx_bytes;
    st.tx_window = s->tx_credit;
    st.rx_buffered = s->outq.bytes;
    st.active_streams = ri_mux_edge_streams(s->m);
    st.edge_port = s->edge_port;
    st.rx_window = window_target(s);
    /* only as much as the caller's struct holds (an older plugin's is smaller) */
    size_t n = out->size < sizeof st ? out->size : sizeof st;
    if (n < sizeof out->size)
        return -1;
    uint32_t their = out->size;
    memcpy(out, &st, n);
    out->size = their;
    return 0;
}

/* The class in force is the higher of ours and the peer's: a download
 * elephant is seen by the hub (its sender) and told to the edge, whose
 * grants then lock its window; the same the other way for uploads. */
static void set_class(struct ri_stream *s)
{
    struct ri_mux *m = s->m;
    uint32_t k = s->own_class > s->peer_class ? s->own_class : s->peer_class;
    if (k == s->klass)
        return;
    s->klass = k;
    ri_sched_event(m->sched, s, s->sp, RI_EV_CLASS, k);
    struct ri_event ev = {.type = RI_EVT_STREAM_CLASSIFIED, .role = m->role,
                          .tunnel_id = m->tunnel_id, .edge_id = m->edge_id, .peer = m->peer,
                          .stream_id = s->id, .port = s->edge_port, .client = &s->client,
                          .klass = k};
    ri_event_emit(m->w->bus, &ev);
}

static void cls_tick(EV_P_ ev_timer *w, int revents)
{
    struct ri_mux *m = (struct ri_mux *)((char *)w - offsetof(struct ri_mux, cls_timer));
    for (struct ri_stream *s = m->all; s; s = s->next) {
        uint64_t moved = s->tx_bytes + s->rx_bytes;
        if (moved == s->tick_bytes)
            continue;
        s->tick_bytes = moved;
        struct ri_stream_stats st = {.size = sizeof st};
        ri_mux_stream_stats(s, &st);
        uint32_t k = ri_classify(m->cls, s->cp, &st);
        if (k > RI_CLASS_MAX_ || k == s->own_class)
            continue;
        s->own_class = (uint8_t)k;
        if (m->caps & RI_CAP_CLASS) {
            uint8_t b = (uint8_t)k;
            m->env->ctrl(m->env->owner, RI_F_CLASS, s->id, &b, 1);
        }
        set_class(s);
    }
}

int ri_mux_set_policy(struct ri_mux *m, const struct ri_mux_policy *pol, char *err,
                      size_t errlen)
{
    struct ri_inst *sched, *cls;
    if (make_policy(m, pol, &sched, &cls, err, errlen) < 0)
        return -1;
    size_t ss = align16(sched->mod->desc.stream_size);
    size_t cs = cls ? align16(cls->mod->desc.stream_size) : 0;
    /* fresh areas for every stream first: a failure changes nothing */
    size_t n = 0;
    for (struct ri_stream *s = m->all; s; s = s->next)
        n++;
    void **areas = calloc(n + 1, sizeof *areas);
    int ok = areas != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (areas[i] = calloc(1, ss + cs + 1)) != NULL;
    if (!ok) {
        for (size_t i = 0; areas && i < n; i++)
            free(areas[i]);
        free(areas);
        ri_inst_unref(sched);
        ri_inst_unref(cls);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* the old scheduler's queue, in its order */
    struct ri_stream **order = calloc(m->queued + 1, sizeof *order);
    size_t nq = 0;
    struct ri_sched_ctx ctx;
    fill_ctx(m, &ctx, NULL);
    while (order && m->queued) {
        uint32_t max = RI_DATA_CHUNK;
        struct ri_stream *s = ri_sched_dequeue(m->sched, &ctx, &max);
        if (!s)
            break; /* a non-work-conserving scheduler holds the rest back */
        s->queued = 0;
        m->queued--;
        order[nq++] = s;
    }
    for (struct ri_stream *s = m->all; s; s = s->next) { /* whatever it still holds */
        if (!s->queued)
            continue;
        ri_sched_remove(m->sched, s, s->sp);
        s->queued = 0;
        m->queued--;
        if (order)
            order[nq++] = s;
    }
    for (struct ri_stream *s = m->all; s; s = s->next) {
        ri_sched_event(m->sched, s, s->sp, RI_EV_CLOSED, s->klass);
        if (m->cls) {
            struct ri_stream_stats st = {.size = sizeof st};
            ri_mux_stream_stats(s, &st);
            ri_classify_event(m->cls, s, s->cp, RI_EV_CLOSED, &st);
        }
    }
    ri_inst_unref(m->sched);
    ri_inst_unref(m->cls);
    m->sched = sched;
    m->cls = cls;
    m->sched_size = ss;
    m->cls_size = cs;
    size_t i = 0;
    for (struct ri_stream *s = m->all; s; s = s->next, i++) {
        free(s->areas);
        s->areas = areas[i];
        s->sp = areas[i];
        s->cp = cls ? (char *)areas[i] + ss : NULL;
        ri_sched_event(sched, s, s->sp, RI_EV_OPENED, s->klass);
        if (cls) {
            struct ri_stream_stats st = {.size = sizeof st};
            ri_mux_stream_stats(s, &st);
            ri_classify_event(cls, s, s->cp, RI_EV_OPENED, &st);
        }
    }
    free(areas);
    for (size_t k = 0; k < nq; k++)
        sched_enqueue(m, order[k]);
    for (struct ri_stream *s = m->all; s; s = s->next)
        update_reading(s); /* streams lost from the queue (no memory) read again */
    free(order);
    if (cls && m->n && !ev_is_active(&m->cls_timer))
        ev_timer_start(LOOP, &m->cls_timer);
    if (!cls)
        ev_timer_stop(LOOP, &m->cls_timer);
    m->env->kick(m->env->owner);
    return 0;
}
