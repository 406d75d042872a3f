/* tp_noop -- a scheduler without the required dequeue op. */
#include "ri_plugin.h"

static void enqueue(void *inst, ri_stream *s, void *sp, uint32_t klass) {}
static void remove_(void *inst, ri_stream *s, void *sp) {}

static const struct ri_sched_ops ops = {.size = sizeof ops, .enqueue = enqueue, .remove = remove_};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "tp_noop",
    .description = "test: sched plugin lacking dequeue",
    .ops = &ops,
};
