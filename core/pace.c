/* pace.c -- in-flight cap from measured delivery rate and round trip. */
#include "pace.h"

#include <string.h>

#define RTT_WINDOW_NS 10000000000ull /* min RTT remembered this long */
#define BW_WINDOW_NS 200000000ull    /* max rate remembered this long */
#define AGG_WINDOW_NS 1000000000ull  /* largest aggregation remembered this long */
#define AGG_MAX_NS 250000ull         /* at most 0.25 ms of delivery as allowance */
#define BW_SPAN_NS 10000000ull       /* a rate sample spans at least this much */

static uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c)
{
    __uint128_t r = (__uint128_t)a * b / c;
    return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

/* The cap from the estimates, clamped in 128 bits so absurd samples
 * cannot wrap to a small cap. */
static void update_cwnd(struct ri_pace *p)
{
    __uint128_t c = 2 * ((__uint128_t)p->bw * p->min_rtt / 1000000000u);
    uint64_t extra = p->extra[0] > p->extra[1] ? p->extra[0] : p->extra[1];
    uint64_t limit = mul_div(p->bw, AGG_MAX_NS, 1000000000u);
    c += extra < limit ? extra : limit;
    p->cwnd = c < RI_PACE_MIN ? RI_PACE_MIN : c > RI_PACE_MAX ? RI_PACE_MAX : (uint64_t)c;
}

/* BBR's ACK aggregation estimate: within an epoch that starts whenever the
 * ACKs fall behind what the delivery rate predicts, how far ahead of that
 * prediction they ran. */
static void aggregation(struct ri_pace *p, uint64_t bytes, uint64_t now)
{
    if (!p->bw)
        return;
    if (now - p->extra_epoch > AGG_WINDOW_NS) {
        p->extra[0] = p->extra[1];
        p->extra[1] = 0;
        p->extra_epoch = now;
    }
    uint64_t expected = p->agg_start ? mul_div(p->bw, now - p->agg_start, 1000000000u) : 0;
    /* a new epoch when the ACKs fell behind the rate, and at least every
     * BW_SPAN_NS: a rate estimate a little low must not read as a burst
     * that grows for as long as the transfer lasts */
    if (!p->agg_start || p->agg_acked <= expected || now - p->agg_start > BW_SPAN_NS) {
        p->agg_start = now;
        p->agg_acked = 0;
        expected = 0;
    }
    p->agg_acked += bytes;
    uint64_t extra = p->agg_acked - expected;
    if (extra > p->cwnd)
        extra = p->cwnd; /* BBR: never more than what could be in flight */
    if (extra > p->extra[1])
        p->extra[1] = extra;
}

void ri_pace_init(struct ri_pace *p)
{
    memset(p, 0, sizeof *p);
    p->cwnd = RI_PACE_MIN;
}

void ri_pace_on_send(struct ri_pace *p, uint64_t bytes, uint64_t now_ns)
{
    if (!p->hist_n) { /* the rate's history starts with the first send */
        p->hist[0].t = now_ns;
        p->hist[0].acked = p->acked;
        p->hist_head = 1;
        p->hist_n = 1;
    }
    p->sent += bytes;
    unsigned next = (p->head + 1) % RI_PACE_RING;
    if (next == p->tail) /* full: merge into the newest entry */
        p->head = (p->head + RI_PACE_RING - 1) % RI_PACE_RING, next = (p->head + 1) % RI_PACE_RING;
    p->ring[p->head].seq = p->sent;
    p->ring[p->head].t = now_ns;
    p->head = next;
}

/* A round trip: from a send to the ACK that covered it. seq: the end of
 * that send. */
static void rtt_sample(struct ri_pace *p, uint64_t rtt, uint64_t seq, uint64_t now)
{
    if (rtt == 0)
        rtt = 1;
    if (!p->min_rtt || rtt < p->min_rtt)
        p->min_rtt = rtt;
    if (!p->min_rtt_next || rtt < p->min_rtt_next)
        p->min_rtt_next = rtt;
    if (!p->min_rtt_epoch)
        p->min_rtt_epoch = now; /* first sample */
    if (p->probe_seq && seq > p->probe_seq) {
        /* sent into an empty pipe: the path's round trip, not our queue's */
        p->min_rtt = p->min_rtt_next; /* forget minima older than two windows */
        p->min_rtt_next = rtt;
        p->min_rtt_epoch = now;
        p->probe_seq = 0;
    } else if (!p->probe_seq && now - p->min_rtt_epoch > RTT_WINDOW_NS) {
        /* A busy sender keeps 2 x BDP in flight, so every sample also holds
         * one BDP of our own queue: taking them as the new minimum would
         * double the cap every window. Like BBR's ProbeRTT, let what is in
         * flight drain, send into the empty pipe, and take that sample. */
        p->probe_seq = p->sent;
    }
}

static void bw_sample(struct ri_pace *p, uint64_t bw, uint64_t now)
{
    if (bw > p->bw)
        p->bw = bw;
    if (bw > p->bw_next)
        p->bw_next = bw;
    if (!p->probe_seq && now - p->bw_epoch > BW_WINDOW_NS) { /* a probe's low rates pass */
        p->bw = p->bw_next > bw ? p->bw_next : bw;
        p->bw_next = bw;
        p->bw_epoch = now;
    }
}

/* The delivery rate over the last span of at least BW_SPAN_NS (or a round
 * trip, if longer) of ACKs; early on, over what there is, if it covers at
 * least half a round trip. */
static void rate(struct ri_pace *p, uint64_t now)
{
    uint64_t span = p->min_rtt > BW_SPAN_NS ? p->min_rtt : BW_SPAN_NS;
    int found = -1;
    for (unsigned k = 0; k < p->hist_n; k++) { /* newest first */
        unsigned i = (p->hist_head + RI_PACE_HIST - 1 - k) % RI_PACE_HIST;
        if (now - p->hist[i].t >= span) {
            found = (int)i;
            break;
        }
    }
    if (found < 0 && p->hist_n) {
        unsigned oldest = (p->hist_head + RI_PACE_HIST - p->hist_n) % RI_PACE_HIST;
        if (now - p->hist[oldest].t >= p->min_rtt / 2 && now > p->hist[oldest].t)
            found = (int)oldest;
    }
    if (found >= 0)
        bw_sample(p, mul_div(p->acked - p->hist[found].acked, 1000000000u,
                             now - p->hist[found].t), now);
    /* remember this ACK (thinned out: entries at least span/16 apart) */
    unsigned last = (p->hist_head + RI_PACE_HIST - 1) % RI_PACE_HIST;
    if (p->hist_n && now - p->hist[last].t < span / 16)
        return;
    p->hist[p->hist_head].t = now;
    p->hist[p->hist_head].acked = p->acked;
    p->hist_head = (p->hist_head + 1) % RI_PACE_HIST;
    if (p->hist_n < RI_PACE_HIST)
        p->hist_n++;
}

void ri_pace_share_sent(struct ri_pace_share *s, uint64_t bytes, uint64_t now_ns)
{
    if (!s->edge.cwnd) /* a share starts zeroed (calloc) */
        ri_pace_init(&s->edge);
    ri_pace_on_send(&s->edge, bytes, now_ns);
}

void ri_pace_share_acked(struct ri_pace_share *s, uint64_t acked, uint64_t now_ns)
{
    if (acked)
        ri_pace_on_ack(&s->edge, acked, now_ns);
}

/* What a closed lane had in flight is written off as acknowledged (no
 * sample: the entries stay in the ring until later ACKs pass them). */
void ri_pace_share_leave(struct ri_pace_share *s, const struct ri_pace *p)
{
    uint64_t mine = p->sent - p->acked, left = s->edge.sent - s->edge.acked;
    s->edge.acked += mine < left ? mine : left;
}

uint64_t ri_pace_share_room(const struct ri_pace *p, const struct ri_pace_share *s, int *held)
{
    uint64_t own = ri_pace_room(p);
    if (held)
        *held = 0;
    if (!s || !own)
        return own;
    uint64_t edge = s->edge.cwnd ? ri_pace_room(&s->edge) : RI_PACE_MIN;
    if (edge >= own)
        return own;
    /* nothing in flight on this lane: one record, so it always gets an ACK */
    uint64_t floor = p->sent == p->acked ? RI_PACE_LANE_FLOOR : 0;
    if (floor > own)
        floor = own;
    if (edge < floor)
        edge = floor;
    if (held && edge < RI_PACE_LANE_FLOOR)
        *held = 1;
    return edge;
}

void ri_pace_on_ack(struct ri_pace *p, uint64_t bytes, uint64_t now_ns)
{
    uint64_t before = p->acked;
    p->acked += bytes;
    if (p->acked > p->sent)
        p->acked = p->sent; /* a lying peer gains nothing */
    while (p->tail != p->head && p->ring[p->tail].seq <= p->acked) {
        rtt_sample(p, now_ns - p->ring[p->tail].t, p->ring[p->tail].seq, now_ns);
        p->tail = (p->tail + 1) % RI_PACE_RING;
    }
    rate(p, now_ns);
    aggregation(p, p->acked - before, now_ns);
    /* 2 x BDP: full speed with room to grow (the rate samples then rise) */
    update_cwnd(p);
}
