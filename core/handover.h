/* handover.h -- a new ri-core process takes the listening sockets over from
 * the running one, so an upgrade or a restart closes no port.
 *
 * The running process listens on `handover_socket` (a Unix SOCK_SEQPACKET
 * socket, owner-only, and only a process of the same user -- or root -- is
 * served). A new process with the same config connects at start:
 *
 *   new -> old  {"cmd":"handover","role":"hub"|"edge","pid":N}
 *   old -> new  {"ok":true,"role":..,"info":{..},"fds":[{"addr":..,"port":..},..],"more":bool}
 *               (the listening sockets ride along as SCM_RIGHTS, at most
 *               RI_HANDOVER_BATCH per message; "more" until the last)
 *   new -> old  {"cmd":"commit"}   once it serves on them
 *   old -> new  {"ok":true}        and the old process stops using them and
 *                                  drains (ops->taken)
 *
 * Until the commit nothing changes in the old process: a new process that
 * dies half-way leaves it serving as before. After the commit the new
 * process binds the handover socket's path for the next upgrade. */
#ifndef RI_HANDOVER_H
#define RI_HANDOVER_H

#include <ev.h>
#include <jansson.h>

#include "fdpool.h"

#define RI_HANDOVER_BATCH 200 /* fds per message (SCM_MAX_FD is 253) */

struct ri_handover_ops {
    /* duplicates of the listening sockets into pool, and what the taker
     * needs to know into info (a JSON object) */
    void (*give)(void *arg, struct ri_fdpool *pool, json_t *info);
    /* the new process serves now: stop using the sockets, drain, exit */
    void (*taken)(void *arg);
};

struct ri_handover_srv;

/* Listens on path (replacing a stale socket file there). NULL with err. */
struct ri_handover_srv *ri_handover_serve(struct ev_loop *loop, const char *path, int role,
                                          const struct ri_handover_ops *ops, void *arg,
                                          char *err, size_t errlen);
/* Stops listening (and removes the path if it is still ours). */
void ri_handover_close(struct ri_handover_srv *s);

/* At start, before serving: asks the process at path for its sockets.
 * Returns 1 with the sockets in pool, *info (a reference) and *conn (keep
 * it for ri_handover_commit); 0 when nobody serves there; -1 with err when
 * somebody does but the handover failed (then nothing was taken). */
int ri_handover_fetch(const char *path, int role, struct ri_fdpool *pool, json_t **info,
                      int *conn, char *err, size_t errlen);
/* Tells the old process that this one serves now; closes conn. 0, or -1
 * with err (the old process then keeps serving too). */
int ri_handover_commit(int conn, char *err, size_t errlen);

#endif
