/* fdpool.c -- listening sockets on their way to their next owner. */
#include "fdpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ri_fdpool_put(struct ri_fdpool *p, const char *addr, uint16_t port, int fd)
{
    if (fd < 0)
        return -1;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct ri_fdpool_entry *e;
        if (cap > RI_FDPOOL_MAX || !(e = realloc(p->e, cap * sizeof *e))) {
            close(fd);
            return -1;
        }
        p->e = e;
        p->cap = cap;
    }
    struct ri_fdpool_entry *e = &p->e[p->n++];
    snprintf(e->addr, sizeof e->addr, "%s", addr ? addr : "");
    e->port = port;
    e->fd = fd;
    return 0;
}

int ri_fdpool_take(struct ri_fdpool *p, const char *addr, uint16_t port)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->e[i].port == port && strcmp(p->e[i].addr, addr ? addr : "") == 0) {
            int fd = p->e[i].fd;
            p->e[i] = p->e[--p->n];
            return fd;
        }
    return -1;
}

void ri_fdpool_close_rest(struct ri_fdpool *p,
                          void (*each)(void *arg, const struct ri_fdpool_entry *e), void *arg)
{
    for (size_t i = 0; i < p->n; i++) {
        if (each)
            each(arg, &p->e[i]);
        close(p->e[i].fd);
    }
    p->n = 0;
}

void ri_fdpool_free(struct ri_fdpool *p)
{
    ri_fdpool_close_rest(p, NULL, NULL);
    free(p->e);
    p->e = NULL;
    p->cap = 0;
}
