/* header_proxy_v1 -- writes a PROXY protocol v1 line before each stream's
 * bytes, so the upstream (HAProxy `accept-proxy`, nginx `proxy_protocol`,
 * SmartProxy) sees the real client address and the edge port it reached. */
#include <stdio.h>

#include "proxy_v1.h"
#include "ri_plugin.h"

static ri_header_build_f pv1_build;

static int pv1_build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                     size_t *len, char *err, size_t errlen)
{
    size_t n = proxy_v1_format((char *)buf, cap, (const struct sockaddr *)&ci->client,
                               (const struct sockaddr *)&ci->edge);
    if (!n) {
        snprintf(err, errlen, "PROXY v1 line does not fit");
        return -1;
    }
    *len = n;
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = pv1_build};
static const char *const keys[] = {NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "header_proxy_v1",
    .description = "PROXY protocol v1 line (real client address) before each stream",
    .ops = &ops,
    .keys = keys,
};
