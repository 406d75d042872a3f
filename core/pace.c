/* pace.c -- in-flight cap from measured delivery rate and round trip. */
#include "pace.h"

#include <string.h>

#define RTT_WINDOW_NS 10000000000ull /* min RTT remembered this long */
#define BW_WINDOW_NS 200000000ull    /* max rate remembered this long */

void ri_pace_init(struct ri_pace *p)
{
    memset(p, 0, sizeof *p);
    p->cwnd = RI_PACE_MIN;
}

void ri_pace_on_send(struct ri_pace *p, uint64_t bytes, uint64_t now_ns)
{
    p->sent += bytes;
    unsigned next = (p->head + 1) % RI_PACE_RING;
    if (next == p->tail) /* full: merge into the newest entry */
        p->head = (p->head + RI_PACE_RING - 1) % RI_PACE_RING, next = (p->head + 1) % RI_PACE_RING;
    p->ring[p->head].seq = p->sent;
    p->ring[p->head].t = now_ns;
    p->ring[p->head].acked = p->acked;
    p->head = next;
}

/* seq: the end of the send this sample measured */
static void sample(struct ri_pace *p, uint64_t rtt, uint64_t bw, uint64_t seq, uint64_t now)
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
    if (bw > p->bw)
        p->bw = bw;
    if (bw > p->bw_next)
        p->bw_next = bw;
    if (!p->probe_seq && now - p->bw_epoch > BW_WINDOW_NS) { /* a probe's low rates pass */
        p->bw = p->bw_next > bw ? p->bw_next : bw;
        p->bw_next = bw;
        p->bw_epoch = now;
    }
    /* 2 x BDP: full speed with room to grow (the rate samples then rise);
     * clamped in 128 bits, so absurd samples cannot wrap to a small cap */
    __uint128_t c = 2 * ((__uint128_t)p->bw * p->min_rtt / 1000000000u);
    p->cwnd = c < RI_PACE_MIN ? RI_PACE_MIN : c > RI_PACE_MAX ? RI_PACE_MAX : (uint64_t)c;
}

void ri_pace_on_ack(struct ri_pace *p, uint64_t bytes, uint64_t now_ns)
{
    p->acked += bytes;
    if (p->acked > p->sent)
        p->acked = p->sent; /* a lying peer gains nothing */
    while (p->tail != p->head && p->ring[p->tail].seq <= p->acked) {
        uint64_t dt = now_ns - p->ring[p->tail].t;
        uint64_t delivered = p->acked - p->ring[p->tail].acked;
        __uint128_t r = dt ? (__uint128_t)delivered * 1000000000u / dt : 0;
        uint64_t bw = r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
        sample(p, dt, bw, p->ring[p->tail].seq, now_ns);
        p->tail = (p->tail + 1) % RI_PACE_RING;
    }
}
