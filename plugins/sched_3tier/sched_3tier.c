/* sched_3tier -- three tiers, after the original system's scheduler:
 *
 *   control    window updates, pings, opens, closes: the core sends them
 *              before any data, always (tier 1 needs no code here);
 *   data       streams of the normal class, in round robin (tier 2);
 *   sustained  elephants (RI_CLASS_SUSTAINED, e.g. from classify_elephant):
 *              they send when nothing else is ready, and otherwise are
 *              still guaranteed `sustained_min_rate` bytes/s, so an
 *              elephant is slowed, never starved (tier 3).
 *
 * The guarantee is a token bucket: credit accrues at sustained_min_rate
 * (bytes/s) and a sustained chunk spends it. While data streams are ready,
 * the sustained tier gets a turn when it has credit and either a whole
 * chunk's worth has accrued or `data_gate` data chunks went since its last
 * turn -- so it never waits behind more than data_gate chunks when it is
 * owed, and never takes more than its rate from them. When no data stream
 * is ready, sustained streams take everything (the bucket stays empty
 * meanwhile, so an elephant cannot save up a burst against the next
 * interactive stream).
 *
 * data_gate, and the original's 64: the original gates its data queue at
 * 64 buffered items so bulk data cannot pile up in front of control
 * frames. ri has no such queue -- it reads a stream's socket only when the
 * scheduler picks that stream, and control frames always go first -- so the
 * gate counts what matters here instead: data-tier chunks (up to 64 KiB
 * each) that may go out while the sustained tier is owed its share.
 *
 * Settings: sustained_min_rate (bytes/s, 1000000), data_gate (chunks, 64). */
#include <errno.h>
#include <stdio.h>

#include "ri_plugin.h"

#define CHUNK 65536

struct node {
    ri_stream *s;
    struct node *prev, *next;
    uint8_t tier, queued;
};

struct tier {
    struct node *head, *tail;
    uint32_t n;
};

enum { DATA = 0, SUST = 1 };

struct inst {
    struct tier t[2];
    uint64_t min_rate;  /* bytes/s the sustained tier is owed */
    uint32_t gate;      /* data chunks before an owed sustained turn */
    int64_t credit;     /* bytes the sustained tier may send at its guaranteed rate */
    uint64_t last_ns;   /* of the last refill */
    uint32_t data_run;  /* data chunks since the sustained tier last sent */
    int last_tier, last_free;
    uint64_t bytes[2];  /* sent per tier, for the metrics */
};

static ri_create_f t3_create;
static ri_sched_enqueue_f t3_enqueue;
static ri_sched_dequeue_f t3_dequeue;
static ri_sched_sent_f t3_sent;
static ri_sched_remove_f t3_remove;
static ri_sched_event_f t3_event;
static ri_stats_f t3_stats;

static int t3_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                     size_t errlen)
{
    struct inst *in = state;
    int64_t rate = 1000000, gate = 64;
    int rc = api->cfg_int(self, "sustained_min_rate", &rate);
    if (rc == -EINVAL || (rc == 0 && (rate < 1 || rate > 100000000000LL)))
        return snprintf(err, errlen, "sustained_min_rate must be bytes/s, 1-100000000000"), -1;
    rc = api->cfg_int(self, "data_gate", &gate);
    if (rc == -EINVAL || (rc == 0 && (gate < 1 || gate > 1000000)))
        return snprintf(err, errlen, "data_gate must be 1-1000000 chunks"), -1;
    in->min_rate = (uint64_t)rate;
    in->gate = (uint32_t)gate;
    return 0;
}

static void push(struct tier *t, struct node *n)
{
    n->next = NULL;
    n->prev = t->tail;
    if (t->tail)
        t->tail->next = n;
    else
        t->head = n;
    t->tail = n;
    t->n++;
}

static void unlink_(struct tier *t, struct node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        t->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        t->tail = n->prev;
    n->prev = n->next = NULL;
    t->n--;
}

static void t3_enqueue(void *state, ri_stream *s, void *sp, uint32_t klass)
{
    struct inst *in = state;
    struct node *n = sp;
    n->s = s;
    n->tier = klass >= RI_CLASS_SUSTAINED ? SUST : DATA;
    n->queued = 1;
    push(&in->t[n->tier], n);
}

static void t3_remove(void *state, ri_stream *s, void *sp)
{
    struct inst *in = state;
    struct node *n = sp;
    if (n->queued)
        unlink_(&in->t[n->tier], n);
    n->queued = 0;
}

static void refill(struct inst *in, uint64_t now)
{
    if (in->last_ns && now > in->last_ns) {
        uint64_t dt = now - in->last_ns;
        int64_t add = (int64_t)((double)dt * (double)in->min_rate / 1e9);
        /* at most a tenth of a second's worth (or two chunks) saved up */
        int64_t cap = (int64_t)(in->min_rate / 10);
        if (cap < 2 * CHUNK)
            cap = 2 * CHUNK;
        in->credit = in->credit + add > cap ? cap : in->credit + add;
    }
    in->last_ns = now;
}

static ri_stream *t3_dequeue(void *state, const struct ri_sched_ctx *ctx, uint32_t *max_bytes)
{
    struct inst *in = state;
    refill(in, ctx->now_ns);
    struct tier *d = &in->t[DATA], *su = &in->t[SUST];
    if (!d->n && !su->n)
        return NULL;
    int owed = su->n && in->credit > 0 && (in->credit >= CHUNK || in->data_run >= in->gate);
    int tier = !d->n || owed ? SUST : DATA;
    struct node *n = in->t[tier].head;
    unlink_(&in->t[tier], n);
    n->queued = 0;
    in->last_tier = tier;
    in->last_free = tier == SUST && !d->n;
    (void)max_bytes;
    return n->s;
}

static void t3_sent(void *state, ri_stream *s, void *sp, size_t bytes,
                    const struct ri_sched_ctx *ctx)
{
    struct inst *in = state;
    in->bytes[in->last_tier] += bytes;
    if (in->last_tier == DATA) {
        in->data_run++;
        return;
    }
    in->data_run = 0;
    in->credit -= (int64_t)bytes;
    if (in->last_free && in->credit < 0)
        in->credit = 0; /* spare capacity costs the tier nothing */
}

static void t3_event(void *state, ri_stream *s, void *sp, int event, uint32_t klass)
{
    struct inst *in = state;
    struct node *n = sp;
    if (event != RI_EV_CLASS || !n->queued)
        return;
    int tier = klass >= RI_CLASS_SUSTAINED ? SUST : DATA;
    if (tier == n->tier)
        return;
    unlink_(&in->t[n->tier], n);
    n->tier = (uint8_t)tier;
    push(&in->t[tier], n);
}

static void t3_stats(void *state, ri_stat_emit_f *emit, void *arg)
{
    struct inst *in = state;
    emit(arg, "data_bytes_total", "payload bytes sent from the data tier", 1,
         (double)in->bytes[DATA]);
    emit(arg, "sustained_bytes_total", "payload bytes sent from the sustained tier", 1,
         (double)in->bytes[SUST]);
    emit(arg, "queued_data", "data-tier streams waiting", 0, in->t[DATA].n);
    emit(arg, "queued_sustained", "sustained-tier streams waiting", 0, in->t[SUST].n);
}

static const struct ri_sched_ops ops = {
    .size = sizeof ops,
    .enqueue = t3_enqueue,
    .dequeue = t3_dequeue,
    .sent = t3_sent,
    .remove = t3_remove,
    .event = t3_event,
};
static const char *const keys[] = {"sustained_min_rate", "data_gate", NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "sched_3tier",
    .description = "control first, then normal streams, then elephants at a guaranteed rate",
    .ops = &ops,
    .inst_size = sizeof(struct inst),
    .stream_size = sizeof(struct node),
    .create = t3_create,
    .keys = keys,
    .stats = t3_stats,
};
