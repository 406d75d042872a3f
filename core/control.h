/* control.h -- the control socket: a Unix stream socket served from the
 * role's event loop. One JSON object per line each way: a request
 * {"cmd": "...", ...} gets {"ok": true, ...} or {"ok": false, "error":
 * "..."}. The commands are the role's (hub.c, edge.c), given as a table,
 * so this file knows nothing of either role. `subscribe` is served here:
 * the connection becomes a stream of the event bus's events.
 *
 * Limits, per client: a request line of at most RI_CTL_LINE_MAX bytes
 * (longer: an error answer, then the client is dropped); at most
 * RI_CTL_OUT_MAX bytes of answers waiting for a client that does not read
 * (over it the client is dropped, with a rate-limited log line); a
 * subscriber holds at most RI_CTL_EVENTS_MAX bytes of waiting events, then
 * loses events (logged, rate-limited) and, once it has caught up, reads
 * {"event":"dropped", "count":N}. The kernel's send buffer of a client
 * socket is set to RI_CTL_SOCK_BUF. At most RI_CTL_CLIENTS clients at once (more are closed on
 * accept). */
#ifndef RI_CONTROL_H
#define RI_CONTROL_H

#include <ev.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"

#define RI_CTL_LINE_MAX (64u * 1024)    /* one request line, bytes (newline excluded) */
#define RI_CTL_OUT_MAX (1u << 20)       /* answers waiting for one client */
#define RI_CTL_EVENTS_MAX (64u * 1024)  /* events waiting for one subscriber */
#define RI_CTL_CLIENTS 64
#define RI_CTL_SOCK_BUF (64 * 1024)     /* SO_SNDBUF of a client's socket */

struct ri_ctl;

/* A command: the answer ({"ok": true, ...} or ri_ctl_error(...)), given
 * to the server, or NULL when the role answers later with ri_ctl_reply
 * (a reload resolving target_host). client identifies the requester. */
typedef json_t *ri_ctl_cmd_f(void *arg, struct ri_ctl *ctl, uint64_t client, json_t *req);

struct ri_ctl_cmd {
    const char *name;
    ri_ctl_cmd_f *fn;
};

/* Binds path (a stale socket file there is replaced), sets its mode, and
 * serves it on loop; cmds ends with a {NULL} entry. NULL with err. */
struct ri_ctl *ri_ctl_open(struct ev_loop *loop, struct ri_event_bus *bus, const char *path,
                           unsigned mode, const struct ri_ctl_cmd *cmds, void *arg, char *err,
                           size_t errlen);
/* Closes every client (after writing what answers wait for it, as far
 * as its socket takes them without blocking) and the socket; removes the
 * socket file if it is still ours. NULL is fine. */
void ri_ctl_close(struct ri_ctl *ctl);
/* Runs req through cmds in-process, as the socket would, for the commands
 * that only read (status, streams, metrics; ctl is NULL for them): the
 * answer, or NULL for another command or one that would answer later
 * (api->query of a service plugin). Does not take req. */
json_t *ri_ctl_query(const struct ri_ctl_cmd *cmds, void *arg, json_t *req);
/* A late answer to client (gone: dropped). Takes ans. */
void ri_ctl_reply(struct ri_ctl *ctl, uint64_t client, json_t *ans);
/* {"ok": false, "error": "<printf>"} */
json_t *ri_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* What a reload changed, as its log line ends it (" (3 edges; ...)"), as the
 * JSON string the control answers and events carry ("3 edges; ..."). */
json_t *ri_ctl_changes(const char *what);
/* {"ok": true} */
json_t *ri_ctl_ok(void);
/* An event as the subscribe stream shows it ({"event": "streamClosed",
 * "time": RFC 3339, ...}). */
json_t *ri_event_json(const struct ri_event *ev);
/* "2026-01-02T03:04:05.678Z" of a wall-clock time in ns */
void ri_rfc3339(uint64_t wall_ns, char *out, size_t cap);

#endif
