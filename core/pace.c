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

static void sample(struct ri_pace *p, uint64_t rtt, uint64_t bw, uint64_t now)
{
    if (rtt == 0)
        rtt = 1;
    if (!p->min_rtt || rtt < p->min_rtt)
        p->min_rtt = rtt;
    if (!p->min_rtt_next || rtt < p->min_rtt_next)
        p->min_rtt_next = rtt;
    if (now - p->min_rtt_epoch > RTT_WINDOW_NS) {
        p->min_rtt = p->min_rtt_next; /* forget minima older than two windows */
        p->min_rtt_next = rtt;
        p->min_rtt_epoch = now;
    }
    if (bw > p->bw)
        p->bw = bw;
    if (bw > p->bw_next)
        p->bw_next = bw;
    if (now - p->bw_epoch > BW_WINDOW_NS) {
        p->bw = p->bw_next > bw ? p->bw_next : bw;
        p->bw_next = bw;
        p->bw_epoch = now;
    }
    /* 2 x BDP: full speed with room to grow (the rate samples then rise) */
    __uint128_t bdp = (__uint128_t)p->bw * p->min_rtt / 1000000000u;
    uint64_t c = (uint64_t)(2 * bdp);
    p->cwnd = c < RI_PACE_MIN ? RI_PACE_MIN : c > RI_PACE_MAX ? RI_PACE_MAX : c;
}

void ri_pace_on_ack(struct ri_pace *p, uint64_t bytes, uint64_t now_ns)
{
    p->acked += bytes;
    if (p->acked > p->sent)
        p->acked = p->sent; /* a lying peer gains nothing */
    while (p->tail != p->head && p->ring[p->tail].seq <= p->acked) {
        uint64_t dt = now_ns - p->ring[p->tail].t;
        uint64_t delivered = p->acked - p->ring[p->tail].acked;
        uint64_t bw = dt ? (uint64_t)((__uint128_t)delivered * 1000000000u / dt) : 0;
        sample(p, dt, bw, now_ns);
        p->tail = (p->tail + 1) % RI_PACE_RING;
    }
}
