/* byte queue (core/bq.c) against a flat reference buffer */
#include <stdlib.h>

#include "bq.h"

static struct ri_bq_pool P = {.max_free = RI_BQ_POOL_KEEP};
#define ri_bq_pool_allocated() (P.in_use)
#include "t.h"

/* The queue's bytes, gathered through ri_bq_iov, must equal ref[0, n). */
static int same_as(const char *file, int line, const struct ri_bq *q, const uint8_t *ref,
                   size_t n)
{
    if (q->bytes != n)
        return t_fail_at(file, line, "queue holds %zu bytes, reference %zu", q->bytes, n);
    struct iovec iov[256]; /* more than the reference's 1 MiB needs */
    int cnt = ri_bq_iov(q, iov, 256);
    size_t off = 0;
    for (int i = 0; i < cnt; i++) {
        if (iov[i].iov_len == 0 || iov[i].iov_len > RI_CHUNK_SIZE)
            return t_fail_at(file, line, "iov %d has length %zu", i, iov[i].iov_len);
        if (off + iov[i].iov_len > n || memcmp(iov[i].iov_base, ref + off, iov[i].iov_len))
            return t_fail_at(file, line, "iov %d differs from the reference at %zu", i, off);
        off += iov[i].iov_len;
    }
    if (off != n)
        return t_fail_at(file, line, "iovs cover %zu of %zu bytes", off, n);
    return 0;
}
#define CHECK_SAME(q, ref, n) CHECK(same_as(__FILE__, __LINE__, q, ref, n) == 0)

TEST(bq_random_against_reference)
{
    enum { CAP = 8 * 16384 * 8 };
    uint8_t *ref = malloc(CAP), *src = malloc(3 * RI_CHUNK_SIZE + 1);
    CHECK(ref && src);
    size_t start = ri_bq_pool_allocated(), n = 0;
    struct ri_bq q = {.pool = &P};
    t_seed(4);
    int ok = 1;
    for (int step = 0; step < 4000 && ok; step++) {
        uint32_t r = t_rand();
        /* mostly small pieces, sometimes several chunks, sometimes chunk-sized */
        size_t k = (r & 3) == 0 ? t_rand() % (3 * RI_CHUNK_SIZE + 1)
                 : (r & 3) == 1 ? RI_CHUNK_SIZE - 1 + t_rand() % 3
                                : t_rand() % 2000;
        if (t_rand() % 2 && n + k <= CAP) {
            t_rand_bytes(src, k);
            if (ri_bq_append(&q, src, k) != 0) {
                ok = 0;
                t_fail_at(__FILE__, __LINE__, "append of %zu failed", k);
                break;
            }
            memcpy(ref + n, src, k);
            n += k;
        } else {
            if (k > n)
                k = n;
            ri_bq_consume(&q, k);
            memmove(ref, ref + k, n - k);
            n -= k;
        }
        ok = same_as(__FILE__, __LINE__, &q, ref, n) == 0;
        /* chunks in use are exactly those needed (plus a partly used head/tail) */
        size_t used = ri_bq_pool_allocated() - start;
        if (ok && used > n / RI_CHUNK_SIZE + 2) {
            t_fail_at(__FILE__, __LINE__, "%zu chunks in use for %zu bytes", used, n);
            ok = 0;
        }
        if (ok && n == 0 && used != 0) {
            t_fail_at(__FILE__, __LINE__, "empty queue holds %zu chunks", used);
            ok = 0;
        }
    }
    ri_bq_clear(&q);
    free(ref);
    free(src);
    if (!ok)
        return;
    CHECK_INT(ri_bq_pool_allocated(), start);
    CHECK(q.head == NULL && q.tail == NULL && q.bytes == 0);
}

TEST(bq_iov_limit_and_boundaries)
{
    static uint8_t data[3 * RI_CHUNK_SIZE + 10];
    t_seed(5);
    t_rand_bytes(data, sizeof data);
    size_t start = ri_bq_pool_allocated();
    struct ri_bq q = {.pool = &P};
    CHECK_INT(ri_bq_append(&q, data, 0), 0);
    CHECK_INT(ri_bq_pool_allocated(), start); /* nothing queued costs nothing */
    CHECK_INT(ri_bq_append(&q, data, 5), 0);
    CHECK_INT(ri_bq_append(&q, data + 5, sizeof data - 5), 0);
    CHECK_INT(ri_bq_pool_allocated() - start, 4);
    struct iovec iov[8];
    CHECK_INT(ri_bq_iov(&q, iov, 1), 1);
    CHECK_INT(iov[0].iov_len, RI_CHUNK_SIZE);
    CHECK_INT(ri_bq_iov(&q, iov, 8), 4);
    CHECK_INT(iov[3].iov_len, 10);
    /* consume exactly to a chunk boundary: that chunk goes back */
    ri_bq_consume(&q, RI_CHUNK_SIZE);
    CHECK_INT(ri_bq_pool_allocated() - start, 3);
    ri_bq_consume(&q, 1);
    CHECK_INT(ri_bq_iov(&q, iov, 8), 3);
    CHECK_INT(iov[0].iov_len, RI_CHUNK_SIZE - 1);
    CHECK_MEM(iov[0].iov_base, data + RI_CHUNK_SIZE + 1, 16);
    ri_bq_consume(&q, q.bytes);
    CHECK(q.head == NULL && q.tail == NULL);
    CHECK_INT(ri_bq_pool_allocated(), start);
    CHECK_INT(ri_bq_iov(&q, iov, 8), 0);
    /* the tail chunk is reused for small appends */
    CHECK_INT(ri_bq_append(&q, "ab", 2), 0);
    CHECK_INT(ri_bq_append(&q, "cd", 2), 0);
    CHECK_INT(ri_bq_iov(&q, iov, 8), 1);
    CHECK_MEM(iov[0].iov_base, "abcd", 4);
    ri_bq_clear(&q);
}

TEST(bq_clear_returns_chunks)
{
    static uint8_t data[5 * RI_CHUNK_SIZE];
    size_t start = ri_bq_pool_allocated();
    struct ri_bq a = {.pool = &P}, b = {.pool = &P};
    CHECK_INT(ri_bq_append(&a, data, sizeof data), 0);
    CHECK_INT(ri_bq_append(&b, data, 100), 0);
    ri_bq_consume(&a, 7);
    CHECK_INT(ri_bq_pool_allocated() - start, 6);
    ri_bq_clear(&a);
    CHECK_INT(ri_bq_pool_allocated() - start, 1);
    CHECK(a.head == NULL && a.tail == NULL && a.bytes == 0);
    ri_bq_clear(&b);
    CHECK_INT(ri_bq_pool_allocated(), start);
    /* a small pool limit frees the rest instead of keeping them */
    P.max_free = 2;
    CHECK_INT(ri_bq_append(&a, data, sizeof data), 0);
    ri_bq_clear(&a);
    P.max_free = RI_BQ_POOL_KEEP;
    CHECK_INT(ri_bq_pool_allocated(), start);
    ri_bq_pool_drain(&P);
    /* and the queue works after the pool was drained */
    CHECK_INT(ri_bq_append(&a, "x", 1), 0);
    CHECK_INT(a.bytes, 1);
    ri_bq_clear(&a);
    ri_bq_pool_drain(&P);
}
