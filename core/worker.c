/* worker.c -- an event loop's context (see worker.h). */
#include "worker.h"

#include <string.h>

#include "clock.h"
#include "log.h"

static void trim_cb(EV_P_ ev_timer *t, int revents)
{
    struct ri_worker *w = (struct ri_worker *)((char *)t - offsetof(struct ri_worker, trim));
    if (ri_bq_pool_trim(&w->pool))
        log_debug("memory: returned free heap pages to the system after a burst");
}

void ri_worker_init(struct ri_worker *w, struct ev_loop *loop, int index,
                    struct ri_event_bus *bus)
{
    memset(w, 0, sizeof *w);
    w->loop = loop;
    w->index = index;
    w->bus = bus;
    ri_bq_pool_init(&w->pool, RI_BQ_POOL_KEEP);
    ev_timer_init(&w->trim, trim_cb, 2.0, 2.0);
    ev_timer_start(loop, &w->trim);
    ev_unref(loop); /* the housekeeping timer alone does not keep the loop running */
    ri_fdlimit_init(&w->fdl);
}

int ri_worker_fd_room(struct ri_worker *w, int fd, const char *role, const char *what)
{
    struct ri_fdlimit *f = &w->fdl;
    int rc = ri_fdlimit_check(f, fd, ri_now_ns());
    if (rc == RI_FDLIMIT_WARN) {
        char m[400];
        ri_fdlimit_warn_text(f, fd, what, m, sizeof m);
        log_warn("%s: %s", role, m);
    } else if (rc == RI_FDLIMIT_REFUSE) {
        w->ctr.streams_refused_fdlimit++;
        ri_log_rl(&f->rl, RI_LOG_WARN,
                  "%s: refusing new %s with a reset: %d of %llu descriptors in use, the last "
                  "%llu kept for the process itself (%llu refused so far)",
                  role, what, fd + 1, (unsigned long long)f->limit,
                  (unsigned long long)ri_fdlimit_reserve(f->limit),
                  (unsigned long long)f->refused);
        return -1;
    }
    return 0;
}

void ri_worker_destroy(struct ri_worker *w)
{
    ev_ref(w->loop);
    ev_timer_stop(w->loop, &w->trim);
    ri_bq_pool_drain(&w->pool);
}

uint64_t ri_worker_tunnel_id(struct ri_worker *w)
{
    return (uint64_t)w->index << 56 | ++w->next_tunnel_id;
}

void ri_counters_add(struct ri_counters *dst, const struct ri_counters *src)
{
    /* every member is a uint64_t: the struct is summed as an array */
    _Static_assert(sizeof *dst % sizeof(uint64_t) == 0, "counters are uint64_t only");
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < sizeof *dst / sizeof *d; i++)
        d[i] += s[i];
}
