/* the mux (core/mux.c) over real sockets (socketpairs), with a fake tunnel:
 * control frames it queues are captured, DATA/FIN it composes are read
 * from the batch buffer, and frames "from the peer" go in through
 * ri_mux_on_frame. Flow control, half-close, reset, credit, scheduling. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "clock.h"
#include "mux.h"
#include "plugin.h"
#include "t.h"
#include "window.h"
#include "worker.h"

struct fake {
    struct ri_worker w;
    struct ri_mux m;
    struct ri_mux_env env;
    /* captured control frames */
    struct { uint8_t type; uint32_t stream; uint32_t v; uint16_t code; } ctrl[4096];
    int n_ctrl;
    int kicks, idles;
};

static int f_ctrl(void *o, uint8_t type, uint32_t stream, const void *p, size_t n)
{
    struct fake *f = o;
    if (f->n_ctrl == 4096)
        return -1;
    const uint8_t *b = p;
    f->ctrl[f->n_ctrl].type = type;
    f->ctrl[f->n_ctrl].stream = stream;
    f->ctrl[f->n_ctrl].v = n >= 4 ? ri_get32(b) : 0;
    f->ctrl[f->n_ctrl].code = n >= 2 ? ri_get16(b) : 0;
    f->n_ctrl++;
    return 0;
}
static void f_kick(void *o) { ((struct fake *)o)->kicks++; }
static void f_idle(void *o) { ((struct fake *)o)->idles++; }
static void f_open(void *o, uint32_t id, const struct ri_open *op) {}

static int fake_init(struct fake *f, struct ri_module *sched)
{
    memset(f, 0, sizeof *f);
    ri_worker_init(&f->w, t_loop(), 0, NULL);
    f->env = (struct ri_mux_env){.owner = f, .ctrl = f_ctrl, .kick = f_kick, .idle = f_idle,
                                 .open = f_open};
    struct ri_mux_policy pol = {.sched = sched};
    char err[256];
    if (ri_mux_init(&f->m, &f->w, &f->env, &ri_core_api, RI_ROLE_EDGE, &pol, 100, err,
                    sizeof err) < 0)
        return -1;
    ri_mux_set_phase(&f->m, RI_MUX_OPEN);
    return 0;
}

static void fake_free(struct fake *f)
{
    ri_mux_destroy(&f->m);
    ri_worker_destroy(&f->w);
}

/* A client connected to the edge: returns the client's end; the other end
 * becomes stream `id` (ids start at 1). */
static int client(struct fake *f, uint16_t port)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return -1;
    /* open_local asks the socket for its addresses: AF_UNIX has none that
     * OPEN can carry, which is fine for the mux (family 0) */
    if (ri_mux_open_local(&f->m, sv[1], port) < 0)
        return -1;
    return sv[0];
}

static void spin(void) /* let readable sockets reach the scheduler */
{
    for (int i = 0; i < 3; i++)
        ev_run(t_loop(), EVRUN_NOWAIT);
}

/* Composes until nothing more comes; returns the DATA payload bytes per
 * stream (index = stream id, up to 8) and counts FINs. */
static size_t drain(struct fake *f, size_t per_stream[8], int fins[8], uint32_t order[],
                    size_t *n_order)
{
    static uint8_t buf[256 * 1024];
    size_t total = 0;
    for (int round = 0; round < 10000; round++) {
        spin();
        size_t len = 0;
        size_t added = ri_mux_compose(&f->m, buf, &len, 128 * 1024, sizeof buf, SIZE_MAX, 0, NULL);
        if (!len)
            break;
        total += added;
        for (size_t off = 0; off < len;) {
            struct ri_frame_hdr h;
            ri_frame_hdr_get(buf + off, len - off, RI_FRAME_MAX_PAYLOAD, &h);
            if (h.stream < 8) {
                if (h.type == RI_F_DATA && per_stream)
                    per_stream[h.stream] += h.len;
                if (h.type == RI_F_FIN && fins)
                    fins[h.stream]++;
            }
            if (order && h.type == RI_F_DATA && *n_order < 4096)
                order[(*n_order)++] = h.stream;
            off += RI_FRAME_HDR + h.len;
        }
    }
    return total;
}

static size_t write_all(int fd, size_t n)
{
    static uint8_t junk[65536];
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, junk, n - done > sizeof junk ? sizeof junk : n - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    return done;
}

/* All credit granted to `stream` in WINDOW frames from index `from` on. */
static uint64_t granted(const struct fake *f, uint32_t stream, int from)
{
    uint64_t g = 0;
    for (int i = from; i < f->n_ctrl; i++)
        if (f->ctrl[i].type == RI_F_WINDOW && f->ctrl[i].stream == stream)
            g += f->ctrl[i].v;
    return g;
}

static struct ri_frame_hdr hdr(uint8_t type, uint32_t stream, uint32_t len)
{
    return (struct ri_frame_hdr){.type = type, .stream = stream, .len = len};
}

TEST(mux_sender_stops_at_credit_and_resumes_with_window)
{
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f && fake_init(f, NULL) == 0);
    int c = client(f, 443);
    CHECK(c >= 0);
    int sz = 4 << 20;
    setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    size_t per[8] = {0};
    /* more than the initial 1 MiB of credit, written and drained in turns */
    size_t wrote = 0;
    for (int i = 0; i < 64 && per[1] < RI_WINDOW_INITIAL; i++) {
        wrote += write_all(c, 128 * 1024);
        drain(f, per, NULL, NULL, NULL);
    }
    wrote += write_all(c, 256 * 1024);
    drain(f, per, NULL, NULL, NULL);
    CHECK(wrote > RI_WINDOW_INITIAL);
    CHECK_INT(per[1], RI_WINDOW_INITIAL); /* exactly the credit, not a byte more */
    char err[128];
    uint8_t w[4];
    ri_put32(w, 100000);
    struct ri_frame_hdr h = hdr(RI_F_WINDOW, 1, 4);
    CHECK_INT(ri_mux_on_frame(&f->m, &h, w, err, sizeof err), 0);
    drain(f, per, NULL, NULL, NULL);
    CHECK_INT(per[1], RI_WINDOW_INITIAL + 100000);
    /* credit past 2 GiB is a protocol error */
    ri_put32(w, 0xffffffffu);
    CHECK_INT(ri_mux_on_frame(&f->m, &h, w, err, sizeof err), -1);
    CHECK_HAS(err, "past 2 GiB");
    close(c);
    fake_free(f);
    free(f);
}

TEST(mux_receive_window_enforced_and_credit_returned)
{
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f && fake_init(f, NULL) == 0);
    int c = client(f, 80);
    CHECK(c >= 0);
    int sz = 8 << 20;
    setsockopt(c, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    static uint8_t data[RI_FRAME_MAX_PAYLOAD];
    char err[128];
    struct ri_frame_hdr h = hdr(RI_F_DATA, 1, RI_FRAME_MAX_PAYLOAD);
    /* the stream's window was granted up to its target when it opened */
    CHECK(RI_WINDOW_INITIAL + granted(f, 1, 0) >= RI_WINDOW_INITIAL);
    /* the client reads as it goes: credit comes back in WINDOW frames */
    int before = f->n_ctrl;
    static uint8_t sink[1 << 20];
    size_t sent = 0;
    for (int i = 0; i < 64; i++) {
        CHECK_INT(ri_mux_on_frame(&f->m, &h, data, err, sizeof err), 0);
        sent += RI_FRAME_MAX_PAYLOAD;
        while (read(c, sink, sizeof sink) > 0)
            ;
        spin();
    }
    uint64_t more = granted(f, 1, before);
    CHECK_MSG(more >= sent - RI_WINDOW_MAX, "%llu of %zu bytes of credit returned",
              (unsigned long long)more, sent);
    /* a peer sending beyond what it was granted: that stream is reset (RST 5) */
    int c2 = client(f, 80);
    CHECK(c2 >= 0);
    uint64_t g2 = RI_WINDOW_INITIAL + granted(f, 2, 0);
    struct ri_frame_hdr h2 = hdr(RI_F_DATA, 2, RI_FRAME_MAX_PAYLOAD);
    int reset = 0;
    for (uint64_t sent2 = 0; sent2 <= g2 && !reset; sent2 += RI_FRAME_MAX_PAYLOAD) {
        CHECK_INT(ri_mux_on_frame(&f->m, &h2, data, err, sizeof err), 0);
        for (int i = 0; i < f->n_ctrl; i++)
            reset |= f->ctrl[i].type == RI_F_RST && f->ctrl[i].stream == 2 &&
                     f->ctrl[i].code == RI_RST_FLOW;
    }
    CHECK_MSG(reset, "no RST 5 for a stream sent past its window");
    /* the client of the reset stream: what was written, then the end */
    ssize_t r;
    while ((r = read(c2, sink, sizeof sink)) > 0)
        ;
    CHECK_INT(r, 0);
    close(c);
    close(c2);
    fake_free(f);
    free(f);
}

TEST(mux_half_close_both_ways_then_stream_ends)
{
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f && fake_init(f, NULL) == 0);
    int c = client(f, 22);
    CHECK(c >= 0);
    CHECK_INT(write(c, "hello", 5), 5);
    shutdown(c, SHUT_WR); /* the client is done sending */
    size_t per[8] = {0};
    int fins[8] = {0};
    drain(f, per, fins, NULL, NULL);
    CHECK_INT(per[1], 5);
    CHECK_INT(fins[1], 1);
    CHECK_INT(f->m.n, 1); /* still open: the other direction flows */
    char err[128];
    struct ri_frame_hdr d = hdr(RI_F_DATA, 1, 6);
    CHECK_INT(ri_mux_on_frame(&f->m, &d, (const uint8_t *)"world!", err, sizeof err), 0);
    struct ri_frame_hdr fin = hdr(RI_F_FIN, 1, 0);
    CHECK_INT(ri_mux_on_frame(&f->m, &fin, NULL, err, sizeof err), 0);
    char got[16] = {0};
    CHECK_INT(read(c, got, sizeof got), 6);
    CHECK_STR(got, "world!");
    CHECK_INT(read(c, got, sizeof got), 0); /* EOF: the peer's FIN reached the client */
    CHECK_INT(f->m.n, 0);                   /* both directions done: gone */
    CHECK_INT(f->idles, 1);
    /* frames for the closed stream are ignored; for a never-opened one an error */
    CHECK_INT(ri_mux_on_frame(&f->m, &d, (const uint8_t *)"late!!", err, sizeof err), 0);
    struct ri_frame_hdr never = hdr(RI_F_DATA, 9, 1);
    CHECK_INT(ri_mux_on_frame(&f->m, &never, (const uint8_t *)"x", err, sizeof err), -1);
    CHECK_HAS(err, "never opened");
    close(c);
    fake_free(f);
    free(f);
}

TEST(mux_peer_reset_resets_the_client)
{
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f && fake_init(f, NULL) == 0);
    int c = client(f, 22);
    CHECK(c >= 0);
    uint8_t r[32];
    size_t n = ri_reason_encode(r, sizeof r, RI_RST_REFUSED, "upstream refused");
    struct ri_frame_hdr h = hdr(RI_F_RST, 1, (uint32_t)n);
    char err[128];
    CHECK_INT(ri_mux_on_frame(&f->m, &h, r, err, sizeof err), 0);
    CHECK_INT(f->m.n, 0);
    char b;
    CHECK(read(c, &b, 1) <= 0); /* closed on the mux's side */
    /* a local reset tells the peer */
    int c2 = client(f, 22);
    CHECK(c2 >= 0);
    struct ri_frame_hdr data = hdr(RI_F_DATA, 2, 4);
    close(c2); /* the client goes away: writing to it fails */
    ri_mux_on_frame(&f->m, &data, (const uint8_t *)"ping", err, sizeof err);
    ri_mux_on_frame(&f->m, &data, (const uint8_t *)"ping", err, sizeof err);
    int rst = 0;
    for (int i = 0; i < f->n_ctrl; i++)
        rst |= f->ctrl[i].type == RI_F_RST && f->ctrl[i].stream == 2;
    CHECK_MSG(rst, "no RST for a stream whose socket failed");
    close(c);
    fake_free(f);
    free(f);
}

/* A scheduler that sends at most 1000 bytes per turn (round robin). */
static uint32_t cap_bytes = 1000;
struct cnode { ri_stream *s; struct cnode *next; };
struct cq { struct cnode *head, *tail; };
static void cq_enq(void *inst, ri_stream *s, void *sp, uint32_t k)
{
    struct cq *q = inst;
    struct cnode *n = sp;
    n->s = s;
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}
static ri_stream *cq_deq(void *inst, const struct ri_sched_ctx *ctx, uint32_t *max)
{
    struct cq *q = inst;
    struct cnode *n = q->head;
    if (!n)
        return NULL;
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    *max = cap_bytes;
    return n->s;
}
static void cq_rm(void *inst, ri_stream *s, void *sp)
{
    struct cq *q = inst;
    struct cnode **pp = &q->head, *prev = NULL;
    while (*pp && *pp != sp)
        prev = *pp, pp = &(*pp)->next;
    if (*pp) {
        *pp = ((struct cnode *)sp)->next;
        if (q->tail == sp)
            q->tail = prev;
    }
}
static const struct ri_sched_ops cq_ops = {.size = sizeof cq_ops, .enqueue = cq_enq,
                                           .dequeue = cq_deq, .remove = cq_rm};
static const struct ri_plugin cq_desc = {RI_PLUGIN_HEADER, .kind = RI_KIND_SCHED,
                                         .name = "capped", .ops = &cq_ops,
                                         .inst_size = sizeof(struct cq),
                                         .stream_size = sizeof(struct cnode)};

TEST(mux_scheduler_order_and_chunk_cap)
{
    /* the built-in round robin: two busy streams alternate */
    struct fake *f = calloc(1, sizeof *f);
    CHECK(f && fake_init(f, NULL) == 0);
    int a = client(f, 1), b = client(f, 2);
    CHECK(a >= 0 && b >= 0);
    write_all(a, 200000);
    write_all(b, 200000);
    static uint32_t order[4096];
    size_t n = 0, per[8] = {0};
    drain(f, per, NULL, order, &n);
    CHECK(n >= 4);
    int alternations = 0;
    for (size_t i = 1; i < n; i++)
        alternations += order[i] != order[i - 1];
    CHECK_MSG(alternations * 3 >= (int)n, "%d alternations in %zu DATA frames", alternations, n);
    CHECK_INT(per[1], 200000);
    CHECK_INT(per[2], 200000);
    close(a);
    close(b);
    fake_free(f);
    /* a scheduler that lowers the chunk: no DATA frame is larger */
    static struct ri_module cm;
    char err[256];
    CHECK_MSG(ri_module_static(&cm, &cq_desc, err, sizeof err) == 0, "%s", err);
    CHECK(fake_init(f, &cm) == 0);
    a = client(f, 1);
    CHECK(a >= 0);
    write_all(a, 50000);
    static uint8_t buf[256 * 1024];
    size_t biggest = 0, total = 0;
    for (int round = 0; round < 1000 && total < 50000; round++) {
        spin();
        size_t len = 0;
        total += ri_mux_compose(&f->m, buf, &len, 128 * 1024, sizeof buf, SIZE_MAX, 0, NULL);
        for (size_t off = 0; off < len;) {
            struct ri_frame_hdr h;
            ri_frame_hdr_get(buf + off, len - off, RI_FRAME_MAX_PAYLOAD, &h);
            if (h.type == RI_F_DATA && h.len > biggest)
                biggest = h.len;
            off += RI_FRAME_HDR + h.len;
        }
    }
    CHECK_INT(total, 50000);
    CHECK_INT(biggest, cap_bytes);
    close(a);
    fake_free(f);
    free(f);
}

/* ---- the edge's share across threads (edge workers) ---------------------------- */
/* Two lanes of one edge on two loops, each on a thread of its own, write the
 * share's in-flight cap together; an ACK on one frees room for the other,
 * which is woken on its own loop. (Run under `make SAN=thread test` too.) */
struct side {
    struct fake f;
    struct ev_loop *loop;
    struct ri_pace own;
    int rounds;
    ev_timer poll, guard;
};

static void *side_traffic(void *arg)
{
    struct side *s = arg;
    for (int i = 0; i < s->rounds; i++) {
        uint64_t now = ri_now_ns();
        if (ri_mux_share_room(&s->f.m, &s->own) == 0)
            continue;
        ri_pace_on_send(&s->own, 1000, now);
        ri_mux_share_sent(&s->f.m, 1000, now);
        ri_pace_on_ack(&s->own, 1000, now);
        ri_mux_share_acked(&s->f.m, 1000, now);
    }
    return NULL;
}

static void side_poll(EV_P_ ev_timer *w, int revents)
{
    if (((struct side *)w->data)->f.kicks)
        ev_break(EV_A_ EVBREAK_ALL);
}

static void side_guard(EV_P_ ev_timer *w, int revents) { ev_break(EV_A_ EVBREAK_ALL); }

static void *side_wait_kick(void *arg) /* runs the side's loop until it is kicked */
{
    struct side *s = arg;
    ev_run(s->loop, 0);
    return NULL;
}

static int side_init(struct side *s, int rounds)
{
    memset(s, 0, sizeof *s);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    if (!s->loop)
        return -1;
    ri_worker_init(&s->f.w, s->loop, 0, NULL);
    s->f.env = (struct ri_mux_env){.owner = &s->f, .ctrl = f_ctrl, .kick = f_kick,
                                   .idle = f_idle, .open = f_open};
    struct ri_mux_policy pol = {0};
    char err[256];
    if (ri_mux_init(&s->f.m, &s->f.w, &s->f.env, &ri_core_api, RI_ROLE_EDGE, &pol, 100, err,
                    sizeof err) < 0)
        return -1;
    ri_mux_set_phase(&s->f.m, RI_MUX_OPEN);
    ri_pace_init(&s->own);
    s->rounds = rounds;
    ev_timer_init(&s->poll, side_poll, 0.001, 0.001);
    ev_timer_init(&s->guard, side_guard, 10.0, 0);
    s->poll.data = s->guard.data = s;
    return 0;
}

static void side_free(struct side *s)
{
    ev_timer_stop(s->loop, &s->poll);
    ev_timer_stop(s->loop, &s->guard);
    fake_free(&s->f);
    ev_loop_destroy(s->loop);
}

TEST(mux_share_across_threads)
{
    static struct side a, b;
    CHECK(side_init(&a, 20000) == 0 && side_init(&b, 20000) == 0);
    struct ri_mux_share *sh = ri_mux_share_new(1);
    CHECK(sh != NULL);
    CHECK(ri_mux_join(&a.f.m, sh) == sh && ri_mux_join(&b.f.m, sh) == sh);
    /* both lanes send and are acknowledged at once: the edge's count is theirs */
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, side_traffic, &a) == 0);
    CHECK(pthread_create(&tb, NULL, side_traffic, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_mutex_lock(&sh->mu);
    uint64_t sent = sh->pace.edge.sent, acked = sh->pace.edge.acked;
    pthread_mutex_unlock(&sh->mu);
    CHECK_MSG(sent == a.own.sent + b.own.sent && acked == sent && sent > 0,
              "edge sent %llu acked %llu, lanes %llu + %llu", (unsigned long long)sent,
              (unsigned long long)acked, (unsigned long long)a.own.sent,
              (unsigned long long)b.own.sent);
    /* b waits with streams queued, held back by the edge's cap; an ACK on
     * a (another thread) wakes b on b's own loop, and only b */
    b.f.m.queued = 1;
    sh->pace.blocked = 1;
    ev_timer_start(b.loop, &b.poll);
    ev_timer_start(b.loop, &b.guard);
    CHECK(pthread_create(&tb, NULL, side_wait_kick, &b) == 0);
    ri_pace_on_send(&a.own, 1000, ri_now_ns());
    ri_mux_share_sent(&a.f.m, 1000, ri_now_ns());
    ri_mux_share_acked(&a.f.m, 1000, ri_now_ns());
    pthread_join(tb, NULL);
    CHECK_MSG(b.f.kicks == 1 && a.f.kicks == 0, "kicks: a %d, b %d", a.f.kicks, b.f.kicks);
    CHECK(!sh->pace.blocked);
    b.f.m.queued = 0;
    side_free(&a);
    side_free(&b);
    ri_mux_share_unref(sh); /* the lanes left it: this was the last reference */
}
