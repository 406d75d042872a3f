/* tp_label.h -- the body of tp_label_a.c and tp_label_b.c: a header plugin
 * writing "label=<TP_LABEL>\r\n". Both call themselves tp_label, so copying
 * one over the other is how a test replaces a plugin file in place. */
#include <string.h>

#include "ri_plugin.h"

static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    memcpy(buf, "label=" TP_LABEL "\r\n", 9);
    *len = 9;
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = build};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_label",
    .description = "test: writes label=" TP_LABEL,
    .ops = &ops,
};
