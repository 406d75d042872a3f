/* tp_badkind -- a kind no core knows. */
#include "ri_plugin.h"

static const struct ri_auth_ops ops = {.size = sizeof ops, .step = 0};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = 99,
    .name = "tp_badkind",
    .description = "test: unknown kind",
    .ops = &ops,
};
