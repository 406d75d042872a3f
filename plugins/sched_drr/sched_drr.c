/* sched_drr -- deficit round robin across streams (Shreedhar and Varghese):
 * each ready stream, in turn, may send up to its deficit, which grows by
 * quantum x weight at the start of its turn; what it does not use carries
 * over while it stays busy, and is forgotten when it runs dry. Streams with
 * equal weights get equal shares of the tunnel whatever their chunk sizes;
 * weights per listen port give, say, port 443 three times port 22's share.
 *
 * The core reads a stream for at most *max_bytes per dequeue: the deficit
 * lowers it. A stream with deficit left after its chunk stays at the head
 * (enqueue puts it back first) until its turn is used up.
 *
 * Sparse streams first (as in fq_codel): a stream that becomes ready after
 * running dry -- an interactive session typing, a request -- joins a list
 * of new streams served before the busy ones, for its first quantum. It
 * costs the busy streams nothing over time (that quantum is part of the
 * new stream's fair share) and keeps a keystroke from waiting a whole round
 * behind every bulk transfer's quantum.
 *
 * Settings: quantum (bytes per turn and unit of weight, 65536),
 * port_weights = ( { port = 443; weight = 3; }, ... ) (unlisted ports: 1). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ri_plugin.h"

#define MAX_WEIGHTS 256

struct node {
    ri_stream *s;
    struct node *prev, *next;
    uint64_t deficit;
    uint32_t weight;
    uint8_t queued, in_turn, list; /* list: NEW or OLD */
    uint8_t fresh; /* ran dry since its last turn: joins the new list */
};

enum { NEW = 0, OLD = 1 };

struct list {
    struct node *head, *tail;
};

struct inst {
    const struct ri_core_api *api;
    struct list l[2];
    uint64_t quantum;
    uint16_t ports[MAX_WEIGHTS];
    uint32_t weights[MAX_WEIGHTS];
    size_t n_weights;
    struct node *last; /* dequeued last, for sent() */
};

static ri_create_f drr_create;
static ri_sched_enqueue_f drr_enqueue;
static ri_sched_dequeue_f drr_dequeue;
static ri_sched_sent_f drr_sent;
static ri_sched_remove_f drr_remove;
static ri_sched_event_f drr_event;

static int drr_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                      size_t errlen)
{
    struct inst *in = state;
    in->api = api;
    int64_t q = 65536;
    int rc = api->cfg_int(self, "quantum", &q);
    if (rc == -EINVAL || (rc == 0 && (q < 1024 || q > (64 << 20))))
        return snprintf(err, errlen, "quantum must be 1024-67108864 bytes"), -1;
    in->quantum = (uint64_t)q;
    size_t n = 0;
    rc = api->cfg_len(self, "port_weights", &n);
    if (rc == -EINVAL)
        return snprintf(err, errlen, "port_weights must be a list of { port; weight; } groups"),
               -1;
    if (n > MAX_WEIGHTS)
        return snprintf(err, errlen, "port_weights has %zu entries, at most %d", n,
                        MAX_WEIGHTS), -1;
    for (size_t i = 0; i < n; i++) {
        char key[64];
        int64_t port, weight;
        snprintf(key, sizeof key, "port_weights.[%zu].port", i);
        if (api->cfg_int(self, key, &port) != 0 || port < 1 || port > 65535)
            return snprintf(err, errlen, "port_weights entry %zu: port must be 1-65535", i + 1),
                   -1;
        snprintf(key, sizeof key, "port_weights.[%zu].weight", i);
        if (api->cfg_int(self, key, &weight) != 0 || weight < 1 || weight > 1000)
            return snprintf(err, errlen, "port_weights entry %zu: weight must be 1-1000", i + 1),
                   -1;
        for (size_t j = 0; j < i; j++)
            if (in->ports[j] == port)
                return snprintf(err, errlen, "port_weights: port %lld is listed twice",
                                (long long)port), -1;
        in->ports[i] = (uint16_t)port;
        in->weights[i] = (uint32_t)weight;
    }
    in->n_weights = n;
    return 0;
}

static uint32_t weight_of(const struct inst *in, uint16_t port)
{
    for (size_t i = 0; i < in->n_weights; i++)
        if (in->ports[i] == port)
            return in->weights[i];
    return 1;
}

static void unlink_(struct inst *in, struct node *n)
{
    struct list *l = &in->l[n->list];
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    n->queued = 0;
}

static void push_head(struct list *l, struct node *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

static void push_tail(struct list *l, struct node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static void drr_enqueue(void *state, ri_stream *s, void *sp, uint32_t klass)
{
    struct inst *in = state;
    struct node *n = sp;
    n->s = s;
    n->queued = 1;
    if (n->in_turn && n->deficit > 0) { /* its turn goes on: back to the head */
        push_head(&in->l[n->list], n);
        return;
    }
    n->in_turn = 0;
    n->list = n->fresh ? NEW : OLD;
    push_tail(&in->l[n->list], n);
}

static ri_stream *drr_dequeue(void *state, const struct ri_sched_ctx *ctx, uint32_t *max_bytes)
{
    struct inst *in = state;
    struct node *n = in->l[NEW].head ? in->l[NEW].head : in->l[OLD].head;
    if (!n)
        return NULL;
    if (!n->in_turn) {
        n->in_turn = 1;
        n->deficit += in->quantum * (n->weight ? n->weight : 1);
    }
    unlink_(in, n);
    if (n->deficit < *max_bytes)
        *max_bytes = (uint32_t)n->deficit;
    in->last = n;
    return n->s;
}

static void drr_sent(void *state, ri_stream *s, void *sp, size_t bytes,
                     const struct ri_sched_ctx *ctx)
{
    struct node *n = sp;
    n->deficit = bytes >= n->deficit ? 0 : n->deficit - bytes;
    if (n->deficit == 0) {
        n->in_turn = 0; /* its turn is used up: to the back of the busy round */
        n->fresh = 0;
    }
}

static void drr_remove(void *state, ri_stream *s, void *sp)
{
    struct node *n = sp;
    if (n->queued)
        unlink_(state, n);
}

static void drr_event(void *state, ri_stream *s, void *sp, int event, uint32_t klass)
{
    struct inst *in = state;
    struct node *n = sp;
    if (event == RI_EV_OPENED) {
        struct ri_stream_stats st;
        memset(&st, 0, sizeof st);
        st.size = sizeof st;
        n->weight = in->api->stream_stats(s, &st) == 0 ? weight_of(in, st.edge_port) : 1;
        n->fresh = 1;
    } else if (event == RI_EV_IDLE) {
        n->deficit = 0; /* a flow that runs dry keeps nothing (DRR) */
        n->in_turn = 0;
        n->fresh = 1;   /* and comes back as a new, sparse flow */
    }
}

static const struct ri_sched_ops ops = {
    .size = sizeof ops,
    .enqueue = drr_enqueue,
    .dequeue = drr_dequeue,
    .sent = drr_sent,
    .remove = drr_remove,
    .event = drr_event,
};
static const char *const keys[] = {"quantum", "port_weights", NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "sched_drr",
    .description = "deficit round robin across streams, optional weights per listen port",
    .ops = &ops,
    .inst_size = sizeof(struct inst),
    .stream_size = sizeof(struct node),
    .create = drr_create,
    .keys = keys,
};
