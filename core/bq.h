/* bq.h -- a byte queue of fixed-size chunks from a pool. A stream holds no
 * chunk until data waits for its socket, and returns them as soon as the
 * socket takes the bytes: an idle stream costs no buffer memory. Each event
 * loop (worker) has its own pool, so no lock is ever taken. */
#ifndef RI_BQ_H
#define RI_BQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define RI_CHUNK_SIZE (16384 - 2 * sizeof(void *))

struct ri_chunk {
    struct ri_chunk *next;
    uint32_t off, len; /* valid bytes are data[off, off+len) */
    uint8_t data[RI_CHUNK_SIZE];
};

struct ri_bq_pool {
    struct ri_chunk *free;
    size_t n_free;
    size_t max_free; /* chunks kept for reuse; beyond that they are freed */
    size_t in_use;   /* chunks held by queues */
    size_t peak;     /* highest in_use since the last ri_bq_pool_trim */
};

struct ri_bq {
    struct ri_chunk *head, *tail;
    size_t bytes;
    struct ri_bq_pool *pool;
};

#define RI_BQ_POOL_KEEP 256 /* default max_free: 4 MiB of free chunks */

void ri_bq_pool_init(struct ri_bq_pool *p, size_t max_free);
void ri_bq_pool_drain(struct ri_bq_pool *p); /* frees the free chunks */

/* Gives memory back to the system after a burst: when the chunks in use
 * fell by RI_BQ_TRIM_BYTES or more since the last call, returns the heap's
 * free pages (malloc_trim) and says 1. Called from a slow timer. */
#define RI_BQ_TRIM_BYTES (8u << 20)
int ri_bq_pool_trim(struct ri_bq_pool *p);

static inline void ri_bq_init(struct ri_bq *q, struct ri_bq_pool *pool)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
    q->pool = pool;
}
/* Appends n bytes; -1 on allocation failure (nothing appended). */
int ri_bq_append(struct ri_bq *q, const void *p, size_t n);
/* Fills up to max iovecs with the queued bytes; returns the count. */
int ri_bq_iov(const struct ri_bq *q, struct iovec *iov, int max);
/* Drops n bytes from the front, returning emptied chunks to the pool. */
void ri_bq_consume(struct ri_bq *q, size_t n);
void ri_bq_clear(struct ri_bq *q);

#endif
