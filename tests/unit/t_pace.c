/* in-flight pacing (core/pace.c), driven by synthetic clocks */
#include "pace.h"
#include "t.h"

#define US 1000ull
#define MS 1000000ull
#define SEC 1000000000ull
#define KiB 1024ull
#define MiB (1024ull * 1024ull)
#define T0 (5 * SEC) /* a monotonic clock does not start at 0 */

static uint64_t inflight(const struct ri_pace *p) { return p->sent - p->acked; }

/* ---- a simulated bottleneck: `rate` bytes/s, then `rtt` ns back to the ACK.
 * The sender offers what ri_pace_room allows in chunks of at most 64 KiB, as
 * the tunnel's compose does; every chunk is acknowledged on its own. */
#define PIPE_Q 8192
struct pipe {
    uint64_t rate, rtt;
    uint64_t now, link_free;
    struct { uint64_t at, bytes; } q[PIPE_Q];
    unsigned qh, qt; /* FIFO: departures are ordered and the delay fixed */
    uint64_t cwnd_lo, cwnd_hi; /* over the run, after each ACK */
    uint64_t acks;
};

static void pipe_init(struct pipe *pp, uint64_t rate, uint64_t rtt)
{
    memset(pp, 0, sizeof *pp);
    pp->rate = rate;
    pp->rtt = rtt;
    pp->now = pp->link_free = T0;
}

/* 0 ok; -1: the sender stalled (no room and nothing in flight) or the
 * queue overflowed; -2: an invariant broke. */
static int pipe_run(struct ri_pace *p, struct pipe *pp, uint64_t until)
{
    pp->cwnd_lo = UINT64_MAX;
    pp->cwnd_hi = 0;
    while (pp->now < until) {
        uint64_t room;
        while ((room = ri_pace_room(p)) > 0) {
            uint64_t n = room < 64 * KiB ? room : 64 * KiB;
            ri_pace_on_send(p, n, pp->now);
            uint64_t start = pp->link_free > pp->now ? pp->link_free : pp->now;
            pp->link_free = start + n * SEC / pp->rate;
            if (pp->qt - pp->qh == PIPE_Q)
                return -1;
            pp->q[pp->qt % PIPE_Q].at = pp->link_free + pp->rtt;
            pp->q[pp->qt % PIPE_Q].bytes = n;
            pp->qt++;
        }
        if (pp->qt == pp->qh)
            return -1; /* nothing in flight, no room: stalled for good */
        pp->now = pp->q[pp->qh % PIPE_Q].at;
        ri_pace_on_ack(p, pp->q[pp->qh % PIPE_Q].bytes, pp->now);
        pp->qh++;
        pp->acks++;
        if (p->acked > p->sent || p->cwnd < RI_PACE_MIN || p->cwnd > RI_PACE_MAX)
            return -2;
        if (p->cwnd < pp->cwnd_lo)
            pp->cwnd_lo = p->cwnd;
        if (p->cwnd > pp->cwnd_hi)
            pp->cwnd_hi = p->cwnd;
    }
    return 0;
}

/* The ring holds the sends not yet acknowledged, oldest first. */
static int ring_ok(const struct ri_pace *p)
{
    uint64_t prev = p->acked;
    unsigned n = 0;
    for (unsigned i = p->tail; i != p->head; i = (i + 1) % RI_PACE_RING, n++) {
        if (p->ring[i].seq <= prev || p->ring[i].seq > p->sent)
            return 0;
        prev = p->ring[i].seq;
    }
    return n < RI_PACE_RING && (n == 0 || prev == p->sent);
}

TEST(pace_initial_cwnd_is_min)
{
    struct ri_pace p;
    ri_pace_init(&p);
    CHECK_INT(p.cwnd, RI_PACE_MIN);
    CHECK_INT(p.sent, 0);
    CHECK_INT(p.acked, 0);
    CHECK_INT(ri_pace_room(&p), RI_PACE_MIN);
    /* the floor is below the peer's ACK cadence (64 KiB): the peer also
     * ACKs whenever its socket runs dry, which it does as soon as we stop
     * (tests/integ/test_faults.py checks both ends) */
    CHECK(RI_PACE_MIN >= 2 * 16 * KiB);
    /* an ACK before any send changes nothing */
    ri_pace_on_ack(&p, 1000, T0);
    CHECK_INT(p.acked, 0);
    CHECK_INT(p.cwnd, RI_PACE_MIN);
    CHECK_INT(ri_pace_room(&p), RI_PACE_MIN);
}

TEST(pace_room_follows_sends_and_acks)
{
    struct ri_pace p;
    ri_pace_init(&p);
    uint64_t t = T0;
    ri_pace_on_send(&p, 10 * KiB, t);
    CHECK_INT(ri_pace_room(&p), RI_PACE_MIN - 10 * KiB);
    ri_pace_on_send(&p, RI_PACE_MIN - 10 * KiB, t += 10 * US);
    CHECK_INT(ri_pace_room(&p), 0);
    ri_pace_on_send(&p, 5000, t += 10 * US); /* past the cap: still 0, no wrap */
    CHECK_INT(ri_pace_room(&p), 0);
    CHECK_INT(inflight(&p), RI_PACE_MIN + 5000);
    /* a partial ACK below the first send's end: room back, no sample yet */
    ri_pace_on_ack(&p, 8 * KiB, t += MS);
    CHECK_INT(p.cwnd, RI_PACE_MIN);
    CHECK_INT(ri_pace_room(&p), 8 * KiB - 5000);
    CHECK(ring_ok(&p));
    /* everything acknowledged: the whole cap is room again */
    ri_pace_on_ack(&p, inflight(&p), t += MS);
    CHECK_INT(inflight(&p), 0);
    CHECK_INT(ri_pace_room(&p), p.cwnd);
    CHECK(p.cwnd >= RI_PACE_MIN && p.cwnd <= RI_PACE_MAX);
    CHECK_INT(p.tail, p.head); /* every send was sampled */
    CHECK(ring_ok(&p));
    /* and again, in small steps */
    for (int i = 0; i < 20; i++) {
        uint64_t before = ri_pace_room(&p);
        ri_pace_on_send(&p, 1000, t += US);
        CHECK_INT(ri_pace_room(&p), before - 1000);
    }
    for (int i = 0; i < 20; i++) {
        ri_pace_on_ack(&p, 1000, t += US);
        CHECK_INT(inflight(&p), 20000 - 1000 * (uint64_t)(i + 1));
        CHECK_INT(ri_pace_room(&p), p.cwnd - inflight(&p));
    }
}

TEST(pace_ack_above_sent_is_clamped)
{
    struct ri_pace p;
    ri_pace_init(&p);
    uint64_t t = T0;
    ri_pace_on_send(&p, 1000, t);
    ri_pace_on_ack(&p, 5000, t += MS); /* the peer claims more than we sent */
    CHECK_INT(p.acked, 1000);
    CHECK_INT(p.sent, 1000);
    CHECK_INT(ri_pace_room(&p), p.cwnd);
    /* the surplus is not banked: the next send counts in full */
    ri_pace_on_send(&p, 1000, t += MS);
    CHECK_INT(inflight(&p), 1000);
    CHECK_INT(ri_pace_room(&p), p.cwnd - 1000);
    ri_pace_on_ack(&p, UINT32_MAX, t += MS);
    CHECK_INT(p.acked, p.sent);
    CHECK(ring_ok(&p));
    CHECK(p.cwnd >= RI_PACE_MIN && p.cwnd <= RI_PACE_MAX);
}

TEST(pace_zero_rtt_sample)
{
    struct ri_pace p;
    ri_pace_init(&p);
    ri_pace_on_send(&p, 64 * KiB, T0);
    ri_pace_on_ack(&p, 64 * KiB, T0); /* same instant: rtt 0, rate unknown */
    CHECK_INT(p.min_rtt, 1);
    CHECK_INT(p.cwnd, RI_PACE_MIN);
    CHECK_INT(ri_pace_room(&p), RI_PACE_MIN);
}

TEST(pace_first_sample)
{
    struct ri_pace p;
    ri_pace_init(&p);
    /* 200 KiB in 1 ms is 200 MiB/s: 2 x BDP = 400 KiB, plus the allowance
     * for aggregation: a first ACK counts in full (as in BBR), but no more
     * than the cap in force when it came (the floor) */
    ri_pace_on_send(&p, 200 * KiB, T0);
    ri_pace_on_ack(&p, 200 * KiB, T0 + MS);
    CHECK_INT(p.min_rtt, MS);
    CHECK_INT(p.bw, 200 * KiB * 1000);
    CHECK_INT(p.cwnd, 400 * KiB + RI_PACE_MIN);
}

TEST(pace_cwnd_converges_to_2bdp)
{
    /* 1 GB/s, 1 ms: BDP 1 MB (plus one 64 KiB chunk's serialisation in the
     * measured round trip), so the cap settles near 2 MB -- plus at most
     * 0.25 ms of delivery (250 KB) of allowance for ACK aggregation, which the
     * start-up's rising rate leaves for a second or two */
    static struct pipe pp;
    struct ri_pace p;
    ri_pace_init(&p);
    pipe_init(&pp, 1000000000ull, MS);
    CHECK_INT(pipe_run(&p, &pp, T0 + 300 * MS), 0);
    uint64_t want = 2 * (pp.rate * (pp.rtt + 64 * KiB * SEC / pp.rate) / SEC);
    uint64_t allow = pp.rate / 4000;
    CHECK_MSG(p.cwnd >= want * 9 / 10 && p.cwnd <= want * 12 / 10 + allow,
              "cwnd %llu, 2 x BDP %llu", (unsigned long long)p.cwnd, (unsigned long long)want);
    CHECK_MSG(p.min_rtt >= MS && p.min_rtt <= MS + 100 * US, "min_rtt %llu",
              (unsigned long long)p.min_rtt);
    CHECK_MSG(p.bw >= 950000000ull && p.bw <= 1100000000ull, "bw %llu",
              (unsigned long long)p.bw);
    /* and stays there: no drift over another second */
    CHECK_INT(pipe_run(&p, &pp, T0 + 1300 * MS), 0);
    CHECK_MSG(pp.cwnd_lo >= want * 9 / 10 && pp.cwnd_hi <= want * 12 / 10 + allow,
              "cwnd moved within %llu..%llu, 2 x BDP %llu", (unsigned long long)pp.cwnd_lo,
              (unsigned long long)pp.cwnd_hi, (unsigned long long)want);
    CHECK(inflight(&p) <= p.cwnd);
    CHECK(ring_ok(&p));
}

TEST(pace_cwnd_never_below_min)
{
    /* 1 MB/s, 1 ms: BDP 1 KB, far under the floor; long enough for the
     * round-trip estimate to be renewed a few times (our own queue must not
     * count as path delay). The cap stays at the floor, or one ACK above
     * it (this pipe acknowledges each chunk on its own: the aggregation
     * allowance is one ACK's size) -- a few milliseconds of queue at 1 MB/s,
     * not seconds */
    static struct pipe pp;
    struct ri_pace p;
    ri_pace_init(&p);
    pipe_init(&pp, 1000000ull, MS);
    CHECK_INT(pipe_run(&p, &pp, T0 + 45 * SEC), 0);
    /* a chunk of 32 KiB takes 33 ms at 1 MB/s: that is the round trip this
     * pipe shows, so 2 x BDP is two chunks, and one ACK of allowance */
    CHECK(pp.cwnd_lo >= RI_PACE_MIN);
    CHECK_MSG(pp.cwnd_hi <= 5 * RI_PACE_MIN, "cwnd up to %llu",
              (unsigned long long)pp.cwnd_hi);
    CHECK(pp.acks > 10);
}

TEST(pace_cwnd_does_not_ratchet)
{
    /* a sender that never runs dry keeps a BDP of its own data queued: the
     * round trips it measures are doubled, and a minimum renewed from them
     * alone would double the cap every 10-20 s (up to RI_PACE_MAX) */
    static struct pipe pp;
    struct ri_pace p;
    ri_pace_init(&p);
    pipe_init(&pp, 1000000000ull, MS);
    CHECK_INT(pipe_run(&p, &pp, T0 + 2 * SEC), 0);
    uint64_t want = 2 * (pp.rate * (pp.rtt + 64 * KiB * SEC / pp.rate) / SEC);
    CHECK_INT(pipe_run(&p, &pp, T0 + 50 * SEC), 0);
    CHECK_MSG(pp.cwnd_hi <= want * 12 / 10 + pp.rate / 1000, "cwnd rose to %llu, 2 x BDP %llu",
              (unsigned long long)pp.cwnd_hi, (unsigned long long)want);
    CHECK_MSG(p.min_rtt <= MS + 100 * US, "min_rtt %llu", (unsigned long long)p.min_rtt);
    /* and the link stays busy: probing the round trip costs little */
    uint64_t acked0 = p.acked, t1 = pp.now;
    CHECK_INT(pipe_run(&p, &pp, t1 + 30 * SEC), 0);
    uint64_t rate = (p.acked - acked0) / ((pp.now - t1) / MS) * 1000;
    CHECK_MSG(rate >= pp.rate * 95 / 100, "%llu B/s of %llu", (unsigned long long)rate,
              (unsigned long long)pp.rate);
}

TEST(pace_cwnd_never_above_max)
{
    /* 100 GB/s, 2 ms: BDP 200 MB, far over the ceiling */
    static struct pipe pp;
    struct ri_pace p;
    ri_pace_init(&p);
    pipe_init(&pp, 100000000000ull, 2 * MS);
    CHECK_INT(pipe_run(&p, &pp, T0 + 100 * MS), 0);
    CHECK_INT(p.cwnd, RI_PACE_MAX);
    CHECK(pp.cwnd_hi <= RI_PACE_MAX);
    CHECK(inflight(&p) <= RI_PACE_MAX);
}

TEST(pace_absurd_samples_do_not_wrap)
{
    struct ri_pace p;
    /* BDP just over 2^63: doubling it must saturate, not wrap to ~0 */
    ri_pace_init(&p);
    uint64_t big = (1ull << 63) + 100000;
    ri_pace_on_send(&p, big, T0);
    ri_pace_on_ack(&p, UINT32_MAX, T0 + SEC);
    ri_pace_on_ack(&p, big, T0 + SEC);
    CHECK_INT(p.acked, big);
    CHECK_INT(p.cwnd, RI_PACE_MAX);
    /* a rate above 2^64 bytes/s (1 ns round trip) */
    ri_pace_init(&p);
    ri_pace_on_send(&p, 1ull << 40, T0);
    ri_pace_on_ack(&p, 1ull << 40, T0 + 1);
    CHECK_INT(p.cwnd, RI_PACE_MAX);
    CHECK_INT(ri_pace_room(&p), RI_PACE_MAX);
}

TEST(pace_ring_overflow_keeps_accounting)
{
    struct ri_pace p;
    ri_pace_init(&p);
    uint64_t t = T0;
    /* far more sends than ring slots, none acknowledged */
    for (int i = 0; i < 10 * RI_PACE_RING; i++) {
        ri_pace_on_send(&p, 1000, t += US);
        CHECK_MSG(ring_ok(&p), "after send %d", i);
    }
    CHECK_INT(p.sent, 10 * RI_PACE_RING * 1000);
    CHECK_INT(inflight(&p), 10 * RI_PACE_RING * 1000);
    CHECK_INT(ri_pace_room(&p), 0); /* 1.28 MB in flight > the 32 KiB floor */
    /* acknowledged in uneven pieces */
    uint64_t left = inflight(&p);
    while (left) {
        uint64_t k = 1 + t_rand() % 70000;
        if (k > left)
            k = left;
        ri_pace_on_ack(&p, k, t += 50 * US);
        left -= k;
        CHECK_INT(inflight(&p), left);
        CHECK(ring_ok(&p));
        CHECK(p.cwnd >= RI_PACE_MIN && p.cwnd <= RI_PACE_MAX);
        CHECK_INT(ri_pace_room(&p), left >= p.cwnd ? 0 : p.cwnd - left);
    }
    CHECK_INT(p.acked, p.sent);
    CHECK_INT(p.tail, p.head);
    CHECK_INT(ri_pace_room(&p), p.cwnd);
    /* still working normally afterwards */
    ri_pace_on_send(&p, 4000, t += US);
    CHECK_INT(ri_pace_room(&p), p.cwnd - 4000);
    ri_pace_on_ack(&p, 4000, t += MS);
    CHECK_INT(p.tail, p.head);
    CHECK_INT(ri_pace_room(&p), p.cwnd);
}

TEST(pace_random_against_reference)
{
    /* random sends, ACKs (some lying) and clock steps: the pacer's in-flight
     * count matches a plain sum, room never exceeds the cap */
    t_seed(11);
    struct ri_pace p;
    ri_pace_init(&p);
    uint64_t t = T0, sent = 0, acked = 0;
    for (int step = 0; step < 200000; step++) {
        t += t_rand() % (200 * US);
        if (t_rand() % 2) {
            uint64_t n = 1 + t_rand() % (64 * KiB);
            ri_pace_on_send(&p, n, t);
            sent += n;
        } else {
            uint64_t k = t_rand() % (96 * KiB); /* sometimes more than in flight */
            ri_pace_on_ack(&p, k, t);
            acked = acked + k > sent ? sent : acked + k;
        }
        CHECK_MSG(p.sent == sent && p.acked == acked, "step %d: %llu/%llu vs %llu/%llu", step,
                  (unsigned long long)p.sent, (unsigned long long)p.acked,
                  (unsigned long long)sent, (unsigned long long)acked);
        CHECK_MSG(p.cwnd >= RI_PACE_MIN && p.cwnd <= RI_PACE_MAX, "step %d: cwnd %llu", step,
                  (unsigned long long)p.cwnd);
        CHECK(ri_pace_room(&p) <= p.cwnd);
        CHECK_MSG(ring_ok(&p), "step %d", step);
    }
}

TEST(pace_estimates_expire)
{
    /* a fast, short path, then a slow, long one: the old rate is forgotten
     * within 400 ms, the old round trip within 20 s, and the cap follows */
    static struct pipe pp;
    struct ri_pace p;
    ri_pace_init(&p);
    pipe_init(&pp, 1000000000ull, MS);
    CHECK_INT(pipe_run(&p, &pp, T0 + 200 * MS), 0);
    CHECK(p.cwnd > 1 * MiB);
    pp.rate = 10000000ull; /* 10 MB/s, 50 ms: 2 x BDP = 1 MB */
    pp.rtt = 50 * MS;
    uint64_t t1 = pp.now;
    CHECK_INT(pipe_run(&p, &pp, t1 + 2 * SEC), 0);
    /* new rate x old (min) rtt, plus one ACK of allowance: far below the
     * new 2 x BDP of 1 MB until the old round trip is forgotten */
    CHECK_MSG(p.cwnd <= 256 * KiB, "cwnd %llu", (unsigned long long)p.cwnd);
    CHECK_INT(pipe_run(&p, &pp, t1 + 25 * SEC), 0);
    CHECK_MSG(p.min_rtt >= 50 * MS, "min_rtt %llu", (unsigned long long)p.min_rtt);
    CHECK_MSG(p.cwnd >= 900 * 1000 && p.cwnd <= 1500 * 1000 + 64 * KiB, "cwnd %llu",
              (unsigned long long)p.cwnd);
}

TEST(pace_allows_for_ack_bursts)
{
    /* 1 GB/s, 100 us: BDP 100 KB. The peer takes its data in bursts, every
     * 2 ms (its process descheduled in between, as on a busy 2-core
     * machine): ACKs come 2 ms apart, each for everything that arrived.
     * Without an allowance the sender would stall at 2 x BDP between bursts
     * and reach 200 KB / 2 ms = 100 MB/s; with it, the cap covers a burst
     * and the link stays busy. */
    static struct pipe pp;
    struct ri_pace p;
    ri_pace_init(&p);
    pipe_init(&pp, 1000000000ull, 100 * US);
    uint64_t t = T0, delivered = 0, t_mid = 0, acked_mid = 0;
    uint64_t burst = 2 * MS;
    /* the pipe of this test: sends serialise at the rate; ACKs come at the
     * next multiple of `burst` after arrival, in one lump */
    uint64_t link_free = t, next_wake = t + burst, arrived = 0;
    struct { uint64_t at, bytes; } q[4096];
    unsigned qh = 0, qt = 0;
    while (t < T0 + 2 * SEC) {
        uint64_t room;
        while ((room = ri_pace_room(&p)) > 0 && qt - qh < 4096) {
            uint64_t n = room < 64 * KiB ? room : 64 * KiB;
            ri_pace_on_send(&p, n, t);
            uint64_t start = link_free > t ? link_free : t;
            link_free = start + n * SEC / pp.rate;
            q[qt % 4096].at = link_free + pp.rtt;
            q[qt % 4096].bytes = n;
            qt++;
        }
        t = next_wake;
        next_wake += burst;
        while (qh != qt && q[qh % 4096].at <= t)
            arrived += q[qh++ % 4096].bytes;
        if (arrived) {
            ri_pace_on_ack(&p, arrived, t);
            delivered += arrived;
            arrived = 0;
        }
        if (!t_mid && t >= T0 + SEC)
            t_mid = t, acked_mid = delivered;
    }
    uint64_t rate = (delivered - acked_mid) * SEC / (t - t_mid);
    CHECK_MSG(rate >= pp.rate * 8 / 10, "%llu B/s of %llu with ACKs in 2 ms bursts (cwnd %llu)",
              (unsigned long long)rate, (unsigned long long)pp.rate,
              (unsigned long long)p.cwnd);
    CHECK(p.cwnd <= RI_PACE_MAX);
}

/* Lanes: four connections of one edge over one bottleneck (100 Mbit/s,
 * 20 ms), each with its own pace, sending in turn as the tunnel's compose
 * does. With the share (ri_pace_share_room) their sum in flight stays near
 * one connection's 2 x BDP; four independent caps hold far more. The path
 * stays full either way and no lane stalls for good (each may fill its
 * floor). Returns the most in flight after the start-up. */
static uint64_t lanes_run(int shared, uint64_t *delivered_rate, int *stalled)
{
    enum { N = 4 };
    static struct ri_pace p[N];
    struct ri_pace_share sh = {0};
    static struct { uint64_t at, bytes; int lane; } q[PIPE_Q];
    unsigned qh = 0, qt = 0;
    uint64_t rate = 12500000, rtt = 20 * MS;
    uint64_t now = T0, link_free = T0, delivered = 0, max_flight = 0, t_meas = T0 + 3 * SEC;
    *stalled = 0;
    for (int i = 0; i < N; i++)
        ri_pace_init(&p[i]);
    while (now < T0 + 10 * SEC) {
        for (int i = 0; i < N; i++) {
            uint64_t room;
            while ((room = ri_pace_share_room(&p[i], shared ? &sh : NULL, NULL)) > 0) {
                uint64_t n = room < 64 * KiB ? room : 64 * KiB;
                ri_pace_on_send(&p[i], n, now);
                ri_pace_share_sent(&sh, n, now);
                uint64_t start = link_free > now ? link_free : now;
                link_free = start + n * SEC / rate;
                if (qt - qh >= PIPE_Q) { *stalled = 2; return 0; }
                q[qt % PIPE_Q].at = link_free + rtt;
                q[qt % PIPE_Q].bytes = n;
                q[qt % PIPE_Q].lane = i;
                qt++;
            }
        }
        if (qt == qh) { *stalled = 1; return 0; }
        if (now > t_meas && (sh.edge.sent - sh.edge.acked) > max_flight)
            max_flight = (sh.edge.sent - sh.edge.acked);
        now = q[qh % PIPE_Q].at;
        int i = q[qh % PIPE_Q].lane;
        uint64_t before = p[i].acked;
        ri_pace_on_ack(&p[i], q[qh % PIPE_Q].bytes, now);
        ri_pace_share_acked(&sh, p[i].acked - before, now);
        if (now > t_meas)
            delivered += q[qh % PIPE_Q].bytes;
        qh++;
    }
    *delivered_rate = delivered * SEC / (now - t_meas);
    return max_flight;
}

TEST(pace_share_caps_lanes_together)
{
    uint64_t r1, r2, rate = 12500000, bdp = rate * 20 * MS / SEC;
    int s1, s2;
    uint64_t apart = lanes_run(0, &r1, &s1), together = lanes_run(1, &r2, &s2);
    CHECK_MSG(!s1 && !s2, "a run stalled (%d, %d)", s1, s2);
    CHECK_MSG(r1 >= rate * 9 / 10 && r2 >= rate * 9 / 10, "delivered %llu, %llu B/s of %llu",
              (unsigned long long)r1, (unsigned long long)r2, (unsigned long long)rate);
    CHECK_MSG(together < apart * 3 / 4 && together <= 5 * bdp / 2 + 4 * RI_PACE_MIN,
              "in flight: %llu with the share, %llu apart (BDP %llu)",
              (unsigned long long)together, (unsigned long long)apart,
              (unsigned long long)bdp);
}

/* A lane that closes writes its bytes in flight off the edge's count. */
TEST(pace_share_leave)
{
    struct ri_pace a, b;
    struct ri_pace_share sh = {0};
    ri_pace_init(&a);
    ri_pace_init(&b);
    CHECK(ri_pace_share_room(&a, &sh, NULL) >= RI_PACE_MIN);
    ri_pace_on_send(&a, 20000, T0);
    ri_pace_share_sent(&sh, 20000, T0);
    ri_pace_on_send(&b, 10000, T0);
    ri_pace_share_sent(&sh, 10000, T0);
    CHECK(sh.edge.sent - sh.edge.acked == 30000);
    ri_pace_share_leave(&sh, &a);
    CHECK(sh.edge.sent - sh.edge.acked == 10000);
    ri_pace_on_ack(&b, 10000, T0 + 20 * MS);
    ri_pace_share_acked(&sh, 10000, T0 + 20 * MS);
    CHECK(sh.edge.sent == sh.edge.acked);
}
