/* tp_dup_b -- one of two files that both call themselves "tp_dup". */
#include "ri_plugin.h"

static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    *len = 0;
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = build};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_dup",
    .description = "test: duplicate name (b)",
    .ops = &ops,
};
