/* tp_label_b -- a header plugin writing "label=b\r\n"; tp_label_a and
 * tp_label_b both call themselves tp_label: copying one over the other is
 * how a test replaces a plugin file in place. */
#include <string.h>

#include "ri_plugin.h"

static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    memcpy(buf, "label=b\r\n", 9);
    *len = 9;
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = build};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_label",
    .description = "test: writes label=b",
    .ops = &ops,
};
