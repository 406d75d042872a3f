/* resolve.h -- name resolution off the event loop. getaddrinfo() blocks
 * (seconds, when a DNS server is slow); on the loop it would stall every
 * tunnel and stream. A request runs getaddrinfo in a short-lived thread and
 * its answer comes back to the loop through a pipe; numeric addresses are
 * answered at once, without a thread. */
#ifndef RI_RESOLVE_H
#define RI_RESOLVE_H

#include <ev.h>
#include <sys/socket.h>

#define RI_RESOLVE_MAX 8 /* addresses kept per answer */

struct ri_resolver;
struct ri_resolve_req;

/* n > 0 addresses, or n == 0 with err set. */
typedef void ri_resolve_cb(void *arg, const struct sockaddr_storage *addrs,
                           const socklen_t *lens, int n, const char *err);

struct ri_resolver *ri_resolver_new(struct ev_loop *loop);
/* Cancels what is pending (no callback runs after this). */
void ri_resolver_free(struct ri_resolver *r);
/* Starts resolving host:port; cb runs later on the loop (also for a numeric
 * host, never from within this call). NULL if it cannot start (then cb
 * never runs). */
struct ri_resolve_req *ri_resolve_async(struct ri_resolver *r, const char *host, int port,
                                  ri_resolve_cb *cb, void *arg);
/* The callback will not run (the request is freed when its thread ends). */
void ri_resolve_cancel(struct ri_resolve_req *q);

#endif
