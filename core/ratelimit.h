/* ratelimit.h -- bounds how often one kind of event may be logged (pure).
 *
 * Anything a peer can trigger at will -- a refused OPEN, a failed handshake,
 * an accept that runs out of descriptors -- would otherwise let that peer
 * fill the disk and burn a core formatting lines. A limiter lets `burst`
 * events through per `interval`; the first one let through after a quiet
 * spell reports how many were held back, so nothing vanishes silently. */
#ifndef RI_RATELIMIT_H
#define RI_RATELIMIT_H

#include <stdint.h>

struct ri_ratelimit {
    uint64_t interval_ns; /* 0 means RI_RATELIMIT_DEFAULT_NS */
    uint32_t burst;       /* events per interval; 0 means 1 */
    uint32_t used;        /* events let through in the current interval */
    uint64_t start_ns;    /* when the current interval began */
    uint64_t held;        /* events held back since the last one let through */
};

#define RI_RATELIMIT_DEFAULT_NS 1000000000ull

/* A limiter of `burst` events per `interval_ns` (designated initialiser). */
#define RI_RATELIMIT_INIT(interval_ns_, burst_) {.interval_ns = (interval_ns_), .burst = (burst_)}

/* 1: let this event through, with *held set to how many were held back
 * since the previous one let through (then reset); 0: hold it back. */
int ri_ratelimit_pass(struct ri_ratelimit *rl, uint64_t now_ns, uint64_t *held);

#endif
