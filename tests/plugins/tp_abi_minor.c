/* tp_abi_minor -- needs a newer minor ABI than the core has: refused. */
#include "ri_plugin.h"

static uint32_t classify(void *inst, void *sp, const struct ri_stream_stats *st)
{
    return st->klass;
}

static const struct ri_classify_ops ops = {.size = sizeof ops, .classify = classify};

RI_EXPORT const struct ri_plugin ri_plugin = {
    .abi_major = RI_ABI_MAJOR,
    .abi_minor = RI_ABI_MINOR + 1,
    .struct_size = sizeof(struct ri_plugin),
    .kind = RI_KIND_CLASSIFY,
    .name = "tp_abi_minor",
    .description = "test: needs a newer minor ABI",
    .ops = &ops,
};
