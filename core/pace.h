/* pace.h -- how much DATA may be in flight on one tunnel (pure logic).
 *
 * Per-stream windows bound memory, but all streams share one TCP pipe: when
 * the receiving process is the bottleneck, everything the windows allow
 * (4 MiB per stream) queues in that pipe ahead of interactive bytes. So the
 * sender also caps the tunnel's DATA in flight -- sent but not yet taken out
 * of the pipe by the peer, which reports that with ACK frames -- at about
 * twice the bandwidth-delay product it measures (after BBR: the maximum
 * recent delivery rate times the minimum recent round trip), never below
 * RI_PACE_MIN. The queue then forms in the scheduler, where priorities work,
 * instead of in the kernel, where they cannot. Every 10 s a busy sender lets
 * the pipe drain once to measure the round trip without its own queue. */
#ifndef RI_PACE_H
#define RI_PACE_H

#include <stdint.h>

#define RI_PACE_MIN (256u * 1024u)       /* in-flight floor */
#define RI_PACE_MAX (64u * 1024u * 1024u) /* in-flight ceiling */
#define RI_PACE_RING 128

struct ri_pace {
    uint64_t sent, acked; /* DATA payload bytes */
    uint64_t cwnd;
    uint64_t min_rtt, min_rtt_next, min_rtt_epoch; /* ns; two 10 s buckets */
    uint64_t bw, bw_next, bw_epoch;                /* bytes/s; two 200 ms buckets */
    uint64_t probe_seq; /* non-zero: draining to re-measure the round trip */
    struct { uint64_t seq, t, acked; } ring[RI_PACE_RING];
    unsigned head, tail;
};

void ri_pace_init(struct ri_pace *p);
void ri_pace_on_send(struct ri_pace *p, uint64_t bytes, uint64_t now_ns);
void ri_pace_on_ack(struct ri_pace *p, uint64_t bytes, uint64_t now_ns);
/* DATA bytes that may be sent now. */
static inline uint64_t ri_pace_room(const struct ri_pace *p)
{
    uint64_t inflight = p->sent - p->acked;
    if (p->probe_seq && inflight)
        return 0; /* probing (pace.c): the pipe empties before the next send */
    return inflight >= p->cwnd ? 0 : p->cwnd - inflight;
}

#endif
