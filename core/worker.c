/* worker.c -- an event loop's context (see worker.h). */
#include "worker.h"

#include <string.h>

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
