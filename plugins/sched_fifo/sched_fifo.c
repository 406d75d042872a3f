/* sched_fifo -- round robin over ready streams (control frames go first in
 * the core anyway). The built-in scheduler when a site enables none, and a
 * plugin a site can name explicitly (benchmarks compare against it). One
 * source: `make` builds it into ri-core (with -DRI_BUILTIN, where the
 * descriptor is called ri_sched_fifo_plugin) and into sched_fifo.so.
 *
 * Ready streams wait in a FIFO; dequeue takes the first, and the core puts
 * it back at the end when it still has data and credit, so every ready
 * stream sends one chunk (up to 64 KiB) per round. The per-stream area is
 * the list node; it remembers its stream, which is how dequeue maps back to
 * a handle. */
#include <stddef.h>

#include "ri_plugin.h"

struct node {
    ri_stream *s;
    struct node *prev, *next;
};

struct fifo {
    struct node *head, *tail;
};

static ri_sched_enqueue_f fifo_enqueue;
static ri_sched_dequeue_f fifo_dequeue;
static ri_sched_remove_f fifo_remove;

static void fifo_enqueue(void *inst, ri_stream *s, void *sp, uint32_t klass)
{
    struct fifo *q = inst;
    struct node *n = sp;
    (void)klass; /* every class alike */
    n->s = s;
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

static void fifo_remove(void *inst, ri_stream *s, void *sp)
{
    struct fifo *q = inst;
    struct node *n = sp;
    (void)s;
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->prev = n->next = NULL;
}

static ri_stream *fifo_dequeue(void *inst, const struct ri_sched_ctx *ctx, uint32_t *max_bytes)
{
    struct fifo *q = inst;
    struct node *n = q->head;
    (void)ctx, (void)max_bytes;
    if (!n)
        return NULL;
    fifo_remove(inst, n->s, n);
    return n->s;
}

static const struct ri_sched_ops fifo_ops = {
    .size = sizeof(struct ri_sched_ops),
    .enqueue = fifo_enqueue,
    .dequeue = fifo_dequeue,
    .remove = fifo_remove,
};

static const char *const fifo_keys[] = {NULL}; /* no settings */

#ifdef RI_BUILTIN
#define RI_FIFO_DESC ri_sched_fifo_plugin
#else
#define RI_FIFO_DESC ri_plugin
RI_EXPORT
#endif
const struct ri_plugin RI_FIFO_DESC = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "sched_fifo",
    .description = "round robin over ready streams, one chunk each per round",
    .ops = &fifo_ops,
    .inst_size = sizeof(struct fifo),
    .stream_size = sizeof(struct node),
    .keys = fifo_keys,
};
