/* classify_elephant -- finds elephant flows: a stream becomes sustained
 * (RI_CLASS_SUSTAINED) once it has been open longer than `age_secs` and its
 * average rate since it opened exceeds `rate_mbit`. One way: it never
 * returns to normal. The core then holds its receive window at the 1 MiB
 * floor and a scheduler that knows classes (sched_3tier) demotes it.
 *
 * The rate is the larger direction's bytes over the stream's age: a
 * download elephant counts the same on the hub (which sends it) as on the
 * edge (which receives it), and a chatty echo is not counted twice.
 *
 * Settings (defaults are the original system's): age_secs (10), rate_mbit
 * (20, i.e. 2.5 MB/s). */
#include <errno.h>
#include <stdio.h>

#include "classify_elephant.h"
#include "ri_plugin.h"

struct inst {
    const struct ri_core_api *api;
    ri_inst *self;
    struct elephant_rule rule;
    uint64_t classified; /* streams made sustained so far */
};

static ri_create_f ce_create;
static ri_classify_f ce_classify;
static ri_stats_f ce_stats;

static int ce_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                     size_t errlen)
{
    struct inst *in = state;
    in->api = api;
    in->self = self;
    double age = ELEPHANT_AGE_SECS, mbit = ELEPHANT_RATE_MBIT;
    int rc = api->cfg_float(self, "age_secs", &age);
    if (rc == -EINVAL || (rc == 0 && (age < 0 || age > 86400)))
        return snprintf(err, errlen, "age_secs must be a number 0-86400"), -1;
    rc = api->cfg_float(self, "rate_mbit", &mbit);
    if (rc == -EINVAL || (rc == 0 && (mbit < 0 || mbit > 1e6)))
        return snprintf(err, errlen, "rate_mbit must be a number 0-1000000"), -1;
    elephant_rule_init(&in->rule, age, mbit);
    return 0;
}

static uint32_t ce_classify(void *state, void *sp, const struct ri_stream_stats *st)
{
    struct inst *in = state;
    uint32_t k = elephant_classify(&in->rule, st);
    if (k == RI_CLASS_SUSTAINED && st->klass != RI_CLASS_SUSTAINED) {
        in->classified++;
        uint64_t big = st->tx_bytes > st->rx_bytes ? st->tx_bytes : st->rx_bytes;
        double age = (double)st->age_ns / 1e9;
        in->api->log(in->self, RI_LOG_INFO,
                     "stream %u (port %u) is sustained: %.1f s old, %.1f Mbit/s on average",
                     st->id, st->edge_port, age, age > 0 ? (double)big * 8 / age / 1e6 : 0.0);
    }
    return k;
}

static void ce_stats(void *state, ri_stat_emit_f *emit, void *arg)
{
    struct inst *in = state;
    emit(arg, "classified_total", "streams classified sustained", 1, (double)in->classified);
}

static const struct ri_classify_ops ops = {.size = sizeof ops, .classify = ce_classify};
static const char *const keys[] = {"age_secs", "rate_mbit", NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_CLASSIFY,
    .name = "classify_elephant",
    .description = "long, fast streams become sustained (elephant flows), for good",
    .ops = &ops,
    .inst_size = sizeof(struct inst),
    .create = ce_create,
    .keys = keys,
    .stats = ce_stats,
};
