/* pace.h -- how much DATA may be in flight on one tunnel (pure logic).
 *
 * Per-stream windows bound memory, but all streams share one TCP pipe: when
 * the receiving process or the link is the bottleneck, everything the
 * windows allow (4 MiB per stream) would queue in that pipe ahead of
 * interactive bytes. So the sender also caps the tunnel's DATA in flight --
 * sent but not yet taken out of the pipe by the peer, which reports that
 * with ACK frames -- after BBR:
 *
 *   cap = 2 x max recent delivery rate x min recent round trip
 *         + the largest recent ACK aggregation,  within [RI_PACE_MIN, RI_PACE_MAX]
 *
 * The delivery rate is measured over at least 10 ms (or a round trip) of
 * ACKs, not per ACK: ACKs that arrive in lumps -- a receiver process that
 * was descheduled for a few milliseconds reads, and acknowledges, a few
 * milliseconds of data at once -- would otherwise read as rates the path
 * never had, and a cap built on them would queue that much more. The first
 * term keeps the pipe full with room to grow; the queue then forms in the
 * scheduler, where priorities work, not in the kernel or the link, where
 * they cannot. The second is BBR's allowance for ACK
 * aggregation: when the peer takes data in bursts -- its process was
 * descheduled, as happens all the time on a busy machine with few cores,
 * or its network hands packets over in batches -- ACKs arrive ahead of
 * what the delivery rate predicts, and the sender keeps that much extra in
 * flight so the pipe never runs dry while the peer catches up. On a link
 * that delivers smoothly it stays near one ACK's worth, so a shaped uplink
 * keeps a short queue; on loopback it grows to the bursts' size. It is
 * capped at 0.25 ms of delivery, so it never adds more than 0.25 ms of
 * queue. Every 10 s a busy sender lets the pipe drain once to measure the
 * round trip without its own queue (BBR's ProbeRTT). The floor is two TLS
 * records: a new tunnel starts there and, as each round trip's ACKs
 * measure the rate, the cap doubles per round trip (a slow start). */
#ifndef RI_PACE_H
#define RI_PACE_H

#include <stdint.h>

#define RI_PACE_MIN (32u * 1024u)        /* in-flight floor: two TLS records */
#define RI_PACE_MAX (64u * 1024u * 1024u) /* in-flight ceiling */
#define RI_PACE_RING 128
#define RI_PACE_HIST 64

struct ri_pace {
    uint64_t sent, acked; /* DATA payload bytes */
    uint64_t cwnd;
    uint64_t min_rtt, min_rtt_next, min_rtt_epoch; /* ns; two 10 s buckets */
    uint64_t bw, bw_next, bw_epoch;                /* bytes/s; two 200 ms buckets */
    uint64_t probe_seq; /* non-zero: draining to re-measure the round trip */
    uint64_t agg_start, agg_acked; /* the current ACK-aggregation epoch */
    uint64_t extra[2], extra_epoch; /* largest aggregation seen, two 1 s buckets */
    struct { uint64_t seq, t; } ring[RI_PACE_RING]; /* sends not yet acknowledged */
    unsigned head, tail;
    struct { uint64_t t, acked; } hist[RI_PACE_HIST]; /* recent ACKs, for the rate */
    unsigned hist_n, hist_head;
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

/* Lanes: the connections of one edge run over one path, so their DATA in
 * flight is capped together too: one more pace (the share's) sees every
 * lane's sends and ACKs as if they were one connection's -- the edge's
 * delivery rate and round trip -- and each lane may send only what both its
 * own cap and the edge's allow. N independent caps would each hold what
 * their lane measured, including rates measured while it had the path
 * alone. A lane that the edge's cap held back is run again when an ACK on
 * any lane frees room (`blocked`: the tunnel kicks the edge's lanes); and a
 * lane with nothing in flight may always send one record
 * (RI_PACE_LANE_FLOOR), so no lane can wait forever whatever happens. */
#define RI_PACE_LANE_FLOOR (16u * 1024u)
struct ri_pace_share {
    struct ri_pace edge;
    int blocked; /* a lane had data and room of its own, but not the edge's */
};
void ri_pace_share_sent(struct ri_pace_share *s, uint64_t bytes, uint64_t now_ns);
void ri_pace_share_acked(struct ri_pace_share *s, uint64_t acked, uint64_t now_ns);
/* A lane leaves (closed): its bytes in flight will not be acknowledged. */
void ri_pace_share_leave(struct ri_pace_share *s, const struct ri_pace *p);
/* DATA bytes lane p may send now, within its own cap and the edge's.
 * *held (may be NULL): set when the edge's cap, not the lane's, said no. */
uint64_t ri_pace_share_room(const struct ri_pace *p, const struct ri_pace_share *s, int *held);

#endif
