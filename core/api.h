/* api.h -- the core services table handed to plugins (struct ri_core_api). */
#ifndef RI_API_H
#define RI_API_H

#include "ri_plugin.h"

extern const struct ri_core_api ri_core_api;

/* The process role plugins see through api->role. */
void ri_api_set_role(int role);

/* Where accepted connections from listener plugins go (the edge sets it). */
typedef int ri_accept_hook_f(int fd, uint16_t port);
void ri_api_set_accept_hook(ri_accept_hook_f *hook);

#endif
