/* process.h -- what a daemon does to its own process once at start: raise
 * the open-file limit (as HAProxy does) and drop root for `user = "..."`
 * keeping only CAP_NET_BIND_SERVICE, so an edge can still open a port below
 * 1024 that the hub assigns later. */
#ifndef RI_PROCESS_H
#define RI_PROCESS_H

#include <stddef.h>
#include <stdint.h>

/* Raises the soft RLIMIT_NOFILE to the hard one and warns when the result
 * cannot hold `need` descriptors. Logs what it did. */
void ri_nofile_raise(uint64_t need, const char *what);

/* 0 when `user` exists and this process can become it; else -1 and why. */
int ri_user_check(const char *user, char *err, size_t errlen);

/* Becomes `user` (its uid, primary group and supplementary groups), keeping
 * CAP_NET_BIND_SERVICE. Needs root; 0 or -1 with err. */
int ri_drop_privileges(const char *user, char *err, size_t errlen);

#endif
