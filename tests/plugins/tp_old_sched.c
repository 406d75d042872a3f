/* tp_old_sched -- a scheduler as a plugin of an older 2.x minor would look:
 * its descriptor ends before `stats`, its ops table before `event`. The
 * types below are local copies of those older, smaller layouts, so the
 * objects in this .so are exactly that small (ASan would catch a read past
 * them). */
#include <stddef.h>

#include "ri_plugin.h"

struct old_sched_ops { /* struct ri_sched_ops without `event` */
    uint32_t size;
    ri_sched_enqueue_f *enqueue;
    ri_sched_dequeue_f *dequeue;
    ri_sched_sent_f *sent;
    ri_sched_remove_f *remove;
};

struct old_plugin { /* struct ri_plugin without `stats` */
    uint16_t abi_major, abi_minor;
    uint32_t struct_size;
    uint32_t kind;
    const char *name, *description;
    const void *ops;
    size_t inst_size, stream_size;
    ri_create_f *create;
    ri_destroy_f *destroy;
    const char *const *keys;
};

static void enqueue(void *inst, ri_stream *s, void *sp, uint32_t klass) {}
static ri_stream *dequeue(void *inst, const struct ri_sched_ctx *c, uint32_t *max) { return 0; }
static void remove_(void *inst, ri_stream *s, void *sp) {}

static const struct old_sched_ops ops = {
    .size = sizeof ops, .enqueue = enqueue, .dequeue = dequeue, .remove = remove_};

RI_EXPORT const struct old_plugin ri_plugin = {
    .abi_major = RI_ABI_MAJOR,
    .abi_minor = 0,
    .struct_size = sizeof(struct old_plugin),
    .kind = RI_KIND_SCHED,
    .name = "tp_old_sched",
    .description = "test: tables of an older minor",
    .ops = &ops,
    .stream_size = 16,
};
