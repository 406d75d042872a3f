/* cycle.c -- config + plugins as one refcounted generation. */
#include "cycle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct ri_mux_policy ri_cycle_policy(const struct ri_cycle *c)
{
    const struct ri_plugins *pl = c->pl;
    return (struct ri_mux_policy){.sched = pl->by_kind[RI_KIND_SCHED],
                                  .cls = pl->by_kind[RI_KIND_CLASSIFY],
                                  .sched_settings = pl->settings[RI_KIND_SCHED],
                                  .cls_settings = pl->settings[RI_KIND_CLASSIFY]};
}

int ri_cycle_same_module(const struct ri_cycle *a, const struct ri_cycle *b, unsigned kind)
{
    const struct ri_module *x = a->pl->by_kind[kind], *y = b->pl->by_kind[kind];
    return x == y || (x && y && x->dl == y->dl && strcmp(x->desc.name, y->desc.name) == 0);
}

static int same_kind(const struct ri_cycle *a, const struct ri_cycle *b, unsigned kind)
{
    return ri_cycle_same_module(a, b, kind) &&
           ri_settings_equal(a->pl->settings[kind], b->pl->settings[kind]);
}

int ri_cycle_policy_changed(const struct ri_cycle *a, const struct ri_cycle *b)
{
    return !same_kind(a, b, RI_KIND_SCHED) || !same_kind(a, b, RI_KIND_CLASSIFY);
}

void ri_cycle_describe_changes(const struct ri_cycle *a, const struct ri_cycle *b, char *out,
                               size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    for (unsigned k = 1; k <= RI_KIND_MAX_ && off < cap; k++) {
        if (same_kind(a, b, k))
            continue;
        const struct ri_module *x = a->pl->by_kind[k], *y = b->pl->by_kind[k];
        const char *how = ri_cycle_same_module(a, b, k) ? " (settings changed)"
                        : x && y && !strcmp(x->desc.name, y->desc.name) ? " (new file)" : "";
        off += (size_t)snprintf(out + off, cap - off, "; %s: %s -> %s%s", ri_kind_name(k),
                                x ? x->desc.name : "none", y ? y->desc.name : "none", how);
    }
}
