/* oot_sched -- a complete round-robin scheduler, built out of tree against
 * sdk/ri_plugin.h alone (C99, nothing else on the include path):
 *
 *   cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -I sdk \
 *      -o oot_sched.so tests/plugins/oot_sched.c
 *
 * Ready streams wait in a FIFO; dequeue takes the first, and the core puts
 * it back at the end when it still has data, so every ready stream sends
 * one chunk per round. The per-stream area is a list node that remembers
 * its stream, which is how dequeue maps back to a handle. */
#include <stddef.h>

#include "ri_plugin.h"

struct node {
    ri_stream *s;
    struct node *prev, *next;
    int queued;
};

struct rr {
    struct node *head, *tail;
    uint64_t sent_bytes;
};

static void rr_enqueue(void *inst, ri_stream *s, void *sp, uint32_t klass)
{
    struct rr *rr = inst;
    struct node *n = sp;
    (void)klass; /* round robin treats every class alike */
    if (n->queued)
        return;
    n->s = s;
    n->next = NULL;
    n->prev = rr->tail;
    if (rr->tail)
        rr->tail->next = n;
    else
        rr->head = n;
    rr->tail = n;
    n->queued = 1;
}

static void unlink_node(struct rr *rr, struct node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        rr->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        rr->tail = n->prev;
    n->prev = n->next = NULL;
    n->queued = 0;
}

static ri_stream *rr_dequeue(void *inst, const struct ri_sched_ctx *ctx, uint32_t *max_bytes)
{
    struct rr *rr = inst;
    struct node *n = rr->head;
    (void)ctx, (void)max_bytes;
    if (!n)
        return NULL;
    unlink_node(rr, n);
    return n->s;
}

static void rr_sent(void *inst, ri_stream *s, void *sp, size_t bytes,
                    const struct ri_sched_ctx *ctx)
{
    struct rr *rr = inst;
    (void)s, (void)sp, (void)ctx;
    rr->sent_bytes += bytes;
}

static void rr_remove(void *inst, ri_stream *s, void *sp)
{
    struct node *n = sp;
    (void)s;
    if (n->queued)
        unlink_node(inst, n);
}

static const struct ri_sched_ops ops = {
    .size = sizeof ops,
    .enqueue = rr_enqueue,
    .dequeue = rr_dequeue,
    .sent = rr_sent,
    .remove = rr_remove,
};

static const char *const keys[] = {NULL}; /* no settings */

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "oot_sched",
    .description = "round robin, one chunk per ready stream (out-of-tree example)",
    .ops = &ops,
    .inst_size = sizeof(struct rr),
    .stream_size = sizeof(struct node),
    .keys = keys,
};
