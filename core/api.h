/* api.h -- the core services table handed to plugins (struct ri_core_api).
 * A thin adapter: every entry forwards to the module that owns the job
 * (plugin.c for timers and watchers, mux.c for stream statistics, GnuTLS
 * for crypto). The core itself never calls through this table. */
#ifndef RI_API_H
#define RI_API_H

#include "ri_plugin.h"

extern const struct ri_core_api ri_core_api;

#endif
