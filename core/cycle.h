/* cycle.h -- one generation of configuration: the parsed config and the
 * plugins it enabled, reference-counted. A reload builds a new cycle and
 * swaps it in; tunnels keep the cycle they started with until they end
 * (after nginx's ngx_cycle_t), so no plugin is unloaded while in use. */
#ifndef RI_CYCLE_H
#define RI_CYCLE_H

#include "config.h"
#include "errs.h"
#include "plugin.h"

struct ri_cycle {
    int refs;
    struct ri_config *cfg;
    struct ri_plugins *pl;
};

/* Loads config and plugins; NULL with every error in errs. */
struct ri_cycle *ri_cycle_load(const char *path, struct ri_errs *errs);
struct ri_cycle *ri_cycle_ref(struct ri_cycle *c);
void ri_cycle_unref(struct ri_cycle *c);

#endif
