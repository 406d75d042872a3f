/* tp_undef -- calls a function nobody defines: dlopen(RTLD_NOW) fails. */
#include "ri_plugin.h"

void ri_no_such_function(void); /* defined nowhere */

static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    ri_no_such_function();
    *len = 0;
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = build};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_undef",
    .description = "test: unresolved symbol",
    .ops = &ops,
};
