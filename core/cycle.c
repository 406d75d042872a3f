/* cycle.c -- config + plugins as one refcounted generation. */
#include "cycle.h"

#include <stdlib.h>

struct ri_cycle *ri_cycle_load(const char *path, struct ev_loop *loop,
                               const struct ri_core_api *api, struct ri_errs *errs)
{
    struct ri_config *cfg = ri_config_load(path, errs);
    if (!cfg)
        return NULL;
    struct ri_plugins *pl = ri_plugins_load(cfg, loop, api, errs);
    if (!pl) {
        ri_config_free(cfg);
        return NULL;
    }
    struct ri_cycle *c = calloc(1, sizeof *c);
    if (!c) {
        ri_plugins_free(pl);
        ri_config_free(cfg);
        return NULL;
    }
    c->refs = 1;
    c->cfg = cfg;
    c->pl = pl;
    return c;
}

struct ri_cycle *ri_cycle_ref(struct ri_cycle *c)
{
    c->refs++;
    return c;
}

void ri_cycle_unref(struct ri_cycle *c)
{
    if (!c || --c->refs > 0)
        return;
    ri_plugins_free(c->pl);
    ri_config_free(c->cfg);
    free(c);
}
