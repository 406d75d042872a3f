/* classify_elephant.h -- the elephant rule, pure (unit-tested directly). */
#ifndef RI_CLASSIFY_ELEPHANT_H
#define RI_CLASSIFY_ELEPHANT_H

#include <stdint.h>

#include "ri_plugin.h"

#define ELEPHANT_AGE_SECS 10.0
#define ELEPHANT_RATE_MBIT 20.0

struct elephant_rule {
    uint64_t min_age_ns;    /* strictly older than this */
    double min_bytes_per_s; /* strictly faster than this, on average */
};

static inline void elephant_rule_init(struct elephant_rule *r, double age_secs,
                                      double rate_mbit)
{
    r->min_age_ns = (uint64_t)(age_secs * 1e9);
    r->min_bytes_per_s = rate_mbit * 1e6 / 8;
}

/* RI_CLASS_SUSTAINED once old and fast enough; sustained stays sustained. */
static inline uint32_t elephant_classify(const struct elephant_rule *r,
                                         const struct ri_stream_stats *st)
{
    if (st->klass == RI_CLASS_SUSTAINED)
        return RI_CLASS_SUSTAINED;
    if (st->age_ns <= r->min_age_ns || st->age_ns == 0)
        return st->klass;
    uint64_t big = st->tx_bytes > st->rx_bytes ? st->tx_bytes : st->rx_bytes;
    double rate = (double)big * 1e9 / (double)st->age_ns;
    return rate > r->min_bytes_per_s ? RI_CLASS_SUSTAINED : st->klass;
}

#endif
