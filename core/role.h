/* role.h -- the two roles ri-core plays. Each runs the event loop until
 * SIGTERM/SIGINT (graceful drain) and reloads on SIGHUP. */
#ifndef RI_ROLE_H
#define RI_ROLE_H

#include "cycle.h"

/* Both take ownership of cy and return the process exit code. */
int ri_hub_run(struct ri_cycle *cy, const char *config_path);
int ri_edge_run(struct ri_cycle *cy, const char *config_path);

#endif
