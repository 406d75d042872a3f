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

/* systemd's readiness protocol (sd_notify(3)) without libsystemd: one
 * datagram with `state` ("READY=1", "RELOADING=1", "STOPPING=1", ...) to the
 * Unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace). 1 sent, 0 when there is no such socket (not under systemd),
 * -1 when sending failed (logged at debug). RELOADING=1 gets MONOTONIC_USEC
 * added, as systemd 253 asks. */
int ri_sd_notify(const char *state);

struct ri_event;
/* An event-bus subscriber: READY=1 once a reload has its outcome
 * (RI_EVT_RELOAD_OK or _FAILED; the running config serves either way). */
void ri_sd_notify_event(void *arg, const struct ri_event *ev);

#endif
