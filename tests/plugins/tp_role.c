/* tp_role -- a header plugin that writes "role=<hub|edge>\r\n", the role
 * api->role reports for its instance at the time of each stream. */
#include <stdio.h>

#include "ri_plugin.h"

struct st {
    const struct ri_core_api *api;
    ri_inst *self;
};

static int create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                  size_t errlen)
{
    struct st *s = state;
    s->api = api;
    s->self = self;
    return 0;
}

static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    struct st *s = inst;
    int r = s->api->role(s->self);
    *len = (size_t)snprintf((char *)buf, cap, "role=%s\r\n",
                            r == RI_ROLE_HUB ? "hub" : r == RI_ROLE_EDGE ? "edge" : "?");
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = build};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_role",
    .description = "test: writes the role its instance sees",
    .ops = &ops,
    .inst_size = sizeof(struct st),
    .create = create,
};
