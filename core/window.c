/* window.c -- adaptive window sizing and credit batching. */
#include "window.h"

uint32_t ri_window_target(uint32_t active_streams, int sustained)
{
    if (sustained)
        return RI_WINDOW_MIN;
    if (active_streams == 0)
        active_streams = 1;
    uint32_t w = RI_WINDOW_BUDGET / active_streams;
    if (w < RI_WINDOW_MIN) return RI_WINDOW_MIN;
    if (w > RI_WINDOW_MAX) return RI_WINDOW_MAX;
    return w;
}

uint32_t ri_window_grant(uint64_t granted, uint64_t consumed, uint32_t target)
{
    uint64_t in_use = granted - consumed; /* in flight + buffered here */
    if (in_use >= target)
        return 0;
    uint64_t want = target - in_use;
    return want >= target / 4 ? (uint32_t)want : 0;
}
