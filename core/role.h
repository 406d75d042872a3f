/* role.h -- the two roles ri-core plays. Each runs its event loop until
 * SIGTERM/SIGINT (graceful drain) and reloads on SIGHUP. */
#ifndef RI_ROLE_H
#define RI_ROLE_H

#include <ev.h>

#include "cycle.h"

/* How the process was started (main.c). */
struct ri_run_opts {
    struct ev_loop *loop;
    const char *config_path;
    int debug; /* -d: debug logging whatever the config (and its reloads) say */
};

/* What `ri-core -t` checks beyond the config itself: everything the role
 * would load or resolve at start (certificate and key files, the hub's
 * target_host, the edge's hub_ca and hub_host), so a config that passes
 * -t does not fail to start. 0 ok, -1 with errors added. */
int ri_hub_check(const struct ri_config *c, struct ri_errs *errs);
int ri_edge_check(const struct ri_config *c, struct ri_errs *errs);

/* Both take ownership of cy and return the process exit code. */
int ri_hub_run(struct ri_cycle *cy, const struct ri_run_opts *opts);
int ri_edge_run(struct ri_cycle *cy, const struct ri_run_opts *opts);

#endif
