/* sched_fifo.c -- built-in round-robin scheduler, written against the same
 * ABI as plugins (like Linux's built-in reno congestion control). */
#include "sched_fifo.h"

#include <stddef.h>

struct fifo_node {
    ri_stream *s;
    struct fifo_node *next;
};

struct fifo {
    struct fifo_node *head, *tail;
};

static ri_sched_enqueue_f fifo_enqueue;
static ri_sched_dequeue_f fifo_dequeue;
static ri_sched_remove_f fifo_remove;

static void fifo_enqueue(void *inst, ri_stream *s, void *sp, uint32_t klass)
{
    struct fifo *q = inst;
    struct fifo_node *n = sp;
    n->s = s;
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

static ri_stream *fifo_dequeue(void *inst, const struct ri_sched_ctx *ctx)
{
    struct fifo *q = inst;
    struct fifo_node *n = q->head;
    if (!n)
        return NULL;
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    return n->s;
}

static void fifo_remove(void *inst, ri_stream *s, void *sp)
{
    struct fifo *q = inst;
    struct fifo_node *prev = NULL;
    for (struct fifo_node *n = q->head; n; prev = n, n = n->next) {
        if (n != sp)
            continue;
        if (prev)
            prev->next = n->next;
        else
            q->head = n->next;
        if (q->tail == n)
            q->tail = prev;
        return;
    }
}

static const struct ri_sched_ops fifo_ops = {
    .enqueue = fifo_enqueue,
    .dequeue = fifo_dequeue,
    .remove = fifo_remove,
};

static const struct ri_plugin fifo_desc = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "fifo (built-in)",
    .description = "round robin over ready streams; control frames first",
    .ops = &fifo_ops,
    .inst_size = sizeof(struct fifo),
    .stream_size = sizeof(struct fifo_node),
};

const struct ri_module ri_sched_fifo_builtin = {.path = NULL, .dl = NULL, .desc = &fifo_desc};
