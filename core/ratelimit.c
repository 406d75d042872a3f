/* ratelimit.c -- fixed-window event limiter (see ratelimit.h). */
#include "ratelimit.h"

int ri_ratelimit_pass(struct ri_ratelimit *rl, uint64_t now_ns, uint64_t *held)
{
    uint64_t iv = rl->interval_ns ? rl->interval_ns : RI_RATELIMIT_DEFAULT_NS;
    uint32_t burst = rl->burst ? rl->burst : 1;
    uint64_t t = now_ns + 1; /* start_ns 0 means "no interval yet" */
    if (rl->start_ns == 0 || t < rl->start_ns || t - rl->start_ns >= iv) {
        rl->start_ns = t;
        rl->used = 0;
    }
    if (rl->used >= burst) {
        rl->held++;
        return 0;
    }
    rl->used++;
    *held = rl->held;
    rl->held = 0;
    return 1;
}
