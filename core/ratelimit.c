/* ratelimit.c -- fixed-window event limiter (see ratelimit.h). */
#include "ratelimit.h"

int ri_ratelimit_pass(struct ri_ratelimit *rl, uint64_t now_ns, uint64_t *held)
{
    uint64_t iv = rl->interval_ns ? rl->interval_ns : RI_RATELIMIT_DEFAULT_NS;
    uint32_t burst = rl->burst ? rl->burst : 1;
    if (rl->start_ns == 0 || now_ns - rl->start_ns >= iv || now_ns < rl->start_ns) {
        rl->start_ns = now_ns ? now_ns : 1;
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
