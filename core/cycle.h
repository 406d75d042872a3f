/* cycle.h -- one generation of configuration: the parsed config and the
 * plugins it enabled, reference-counted. A reload builds a new cycle and
 * swaps it in, keeping the old one if the new one fails (after nginx's
 * ngx_cycle_t). Live tunnels do not hold a cycle: they hold what they use
 * (policy instances, credentials), each reference-counted itself. */
#ifndef RI_CYCLE_H
#define RI_CYCLE_H

#include <ev.h>

#include "config.h"
#include "errs.h"
#include "mux.h"
#include "plugin.h"

struct ri_cycle {
    _Atomic int refs; /* atomic: dropped on whichever worker thread held the last reference */
    struct ri_config *cfg;
    struct ri_plugins *pl;
};

/* Loads config and plugins (instances on `loop`, with `api`); NULL with
 * every error in errs. */
struct ri_cycle *ri_cycle_load(const char *path, struct ev_loop *loop,
                               const struct ri_core_api *api, struct ri_errs *errs);
struct ri_cycle *ri_cycle_ref(struct ri_cycle *c);

/* The scheduler and classifier a tunnel runs under this cycle. */
struct ri_mux_policy ri_cycle_policy(const struct ri_cycle *c);
/* 1 when b's scheduler or classifier differs from a's (module or settings):
 * live tunnels then swap to b's. */
int ri_cycle_policy_changed(const struct ri_cycle *a, const struct ri_cycle *b);
/* 1 when both enable the same module (same file mapping, same name) for kind. */
int ri_cycle_same_module(const struct ri_cycle *a, const struct ri_cycle *b, unsigned kind);
/* What a reload from a to b changes, for the log: "; sched: x -> y; ..." */
void ri_cycle_describe_changes(const struct ri_cycle *a, const struct ri_cycle *b, char *out,
                               size_t cap);
void ri_cycle_unref(struct ri_cycle *c);

#endif
