/* fdpool.h -- listening sockets on their way from one owner to the next.
 *
 * A listening socket outlives the listener instance (SIGHUP) or the
 * ri-core process (an upgrade, handover.c) that opened it: the old owner's
 * sockets are duplicated into a pool, and the new owner claims each by
 * address and port (api->listen_fd) before it would bind its own. The
 * socket never closes, so no client in its queue is reset and no SYN finds
 * the port closed. What nobody claims is closed by ri_fdpool_close_rest
 * (after its queue was taken by the caller, if it wants to).
 *
 * Pure bookkeeping apart from close(): one pool per owner, no globals. */
#ifndef RI_FDPOOL_H
#define RI_FDPOOL_H

#include <stddef.h>
#include <stdint.h>

#define RI_FDPOOL_MAX 4200 /* a listener's ports (4096) and the hub's socket */
#define RI_FDPOOL_ADDR 64

struct ri_fdpool_entry {
    char addr[RI_FDPOOL_ADDR]; /* numeric bind address as the owner named it */
    uint16_t port;
    int fd;
};

struct ri_fdpool {
    struct ri_fdpool_entry *e;
    size_t n, cap;
};

/* Takes ownership of fd (closes it when the pool is full or out of memory:
 * returns -1 then). */
int ri_fdpool_put(struct ri_fdpool *p, const char *addr, uint16_t port, int fd);
/* The fd for addr:port (ownership to the caller), or -1. */
int ri_fdpool_take(struct ri_fdpool *p, const char *addr, uint16_t port);
/* Calls each(arg, entry) for what is left, then closes it and empties the
 * pool; each may be NULL. */
void ri_fdpool_close_rest(struct ri_fdpool *p,
                          void (*each)(void *arg, const struct ri_fdpool_entry *e), void *arg);
void ri_fdpool_free(struct ri_fdpool *p);

#endif
