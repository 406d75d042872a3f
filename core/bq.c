/* bq.c -- chunked byte queue with a free-list pool. */
#include "bq.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void ri_bq_pool_init(struct ri_bq_pool *p, size_t max_free)
{
    memset(p, 0, sizeof *p);
    p->max_free = max_free;
}

static struct ri_chunk *chunk_get(struct ri_bq_pool *p)
{
    struct ri_chunk *c = p->free;
    if (c) {
        p->free = c->next;
        p->n_free--;
    } else if (!(c = malloc(sizeof *c))) {
        return NULL;
    }
    c->next = NULL;
    c->off = c->len = 0;
    if (++p->in_use > p->peak)
        p->peak = p->in_use;
    return c;
}

static void chunk_put(struct ri_bq_pool *p, struct ri_chunk *c)
{
    p->in_use--;
    if (p->n_free >= p->max_free) {
        free(c);
        return;
    }
    c->next = p->free;
    p->free = c;
    p->n_free++;
}

void ri_bq_pool_drain(struct ri_bq_pool *p)
{
    while (p->free) {
        struct ri_chunk *c = p->free;
        p->free = c->next;
        free(c);
    }
    p->n_free = 0;
}

int ri_bq_pool_trim(struct ri_bq_pool *p)
{
    /* chunks are 16 KiB, below malloc's mmap threshold: freed ones stay in
     * the heap, scattered, and glibc returns such memory only when asked */
    size_t drop = p->peak - p->in_use;
    p->peak = p->in_use;
    if (drop * sizeof(struct ri_chunk) < RI_BQ_TRIM_BYTES)
        return 0;
    malloc_trim(0);
    return 1;
}

int ri_bq_append(struct ri_bq *q, const void *p, size_t n)
{
    const uint8_t *src = p;
    /* reserve every chunk first so a failure appends nothing */
    size_t room = q->tail ? RI_CHUNK_SIZE - q->tail->off - q->tail->len : 0;
    struct ri_chunk *first = NULL, *last = NULL;
    size_t need = n > room ? n - room : 0;
    while (need) {
        struct ri_chunk *c = chunk_get(q->pool);
        if (!c) {
            while (first) {
                struct ri_chunk *nx = first->next;
                chunk_put(q->pool, first);
                first = nx;
            }
            return -1;
        }
        if (last) last->next = c; else first = c;
        last = c;
        need = need > RI_CHUNK_SIZE ? need - RI_CHUNK_SIZE : 0;
    }
    if (room) {
        size_t k = n < room ? n : room;
        memcpy(q->tail->data + q->tail->off + q->tail->len, src, k);
        q->tail->len += (uint32_t)k;
        src += k, n -= k, q->bytes += k;
    }
    for (struct ri_chunk *c = first; c; c = c->next) {
        size_t k = n < RI_CHUNK_SIZE ? n : RI_CHUNK_SIZE;
        memcpy(c->data, src, k);
        c->len = (uint32_t)k;
        src += k, n -= k, q->bytes += k;
    }
    if (first) {
        if (q->tail) q->tail->next = first; else q->head = first;
        q->tail = last;
    }
    return 0;
}

int ri_bq_iov(const struct ri_bq *q, struct iovec *iov, int max)
{
    int i = 0;
    for (struct ri_chunk *c = q->head; c && i < max; c = c->next) {
        if (!c->len)
            continue;
        iov[i].iov_base = c->data + c->off;
        iov[i].iov_len = c->len;
        i++;
    }
    return i;
}

void ri_bq_consume(struct ri_bq *q, size_t n)
{
    if (n > q->bytes)
        n = q->bytes;
    q->bytes -= n;
    while (n && q->head) {
        struct ri_chunk *c = q->head;
        size_t k = n < c->len ? n : c->len;
        c->off += (uint32_t)k;
        c->len -= (uint32_t)k;
        n -= k;
        if (c->len == 0) {
            q->head = c->next;
            if (!q->head)
                q->tail = NULL;
            chunk_put(q->pool, c);
        }
    }
}

void ri_bq_clear(struct ri_bq *q)
{
    while (q->head) {
        struct ri_chunk *c = q->head;
        q->head = c->next;
        chunk_put(q->pool, c);
    }
    q->tail = NULL;
    q->bytes = 0;
}
