/* tp_abi_major -- claims the next major ABI: the loader must refuse it. */
#include "ri_plugin.h"

static uint32_t classify(void *inst, void *sp, const struct ri_stream_stats *st)
{
    return st->klass;
}

static const struct ri_classify_ops ops = {.size = sizeof ops, .classify = classify};

RI_EXPORT const struct ri_plugin ri_plugin = {
    .abi_major = RI_ABI_MAJOR + 1,
    .abi_minor = 0,
    .struct_size = sizeof(struct ri_plugin),
    .kind = RI_KIND_CLASSIFY,
    .name = "tp_abi_major",
    .description = "test: built for a future major ABI",
    .ops = &ops,
};
