/* edgeworker.c -- the edge's workers: what runs on a worker's event loop
 * (core/ARCHITECTURE.md, "The edge's workers"). A lane's tunnel moved here
 * (ew_adopt_run) runs with the hooks below: its CONFIG and GOAWAY go to main
 * as news, its close as its `gone` message. Main's calls run here while it
 * waits (a control frame, a drain, a reload's settings, what the control
 * commands read), a client main posts opens its stream here or goes back,
 * and the worker thread starts and ends here.
 *
 * Main's side -- lanes, connecting, handshakes, listeners, held clients,
 * placement, the control socket, reloads -- is edge.c, which calls into this
 * file; this file never calls edge.c: it reaches main only by posting to
 * main's mailbox, with main's functions, what main handed it at start
 * (struct edge_main, edgeworker.h). ew_gather_list also runs on main over
 * its own tunnels; it is here, beside the worker's use of it. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctlinfo.h"
#include "edgeworker.h"
#include "log.h"
#include "netutil.h"

/* ---- finding a tunnel, talking to the main loop (struct edge_main) ---------------- */
static struct ri_tunnel *ew_find(struct edge_worker *ew, uint64_t tid)
{
    for (struct ri_tunnel *t = ew->tunnels; t; t = t->next)
        if (t->id == tid)
            return t;
    return NULL;
}

static int serving(const struct ri_tunnel *t)
{
    return t->state == RI_T_READY && !t->draining && !t->closing;
}

/* fn(arg) on the main loop, later; fn frees arg. -1 when out of memory
 * (logged; the caller still owns arg). */
static int ew_to_main(struct edge_worker *ew, ri_mail_fn *fn, void *arg)
{
    if (ri_mailbox_post(ew->main->mb, fn, arg) == 0)
        return 0;
    log_err("edge: worker %d: out of memory: a message to the main loop is lost", ew->index);
    return -1;
}

/* ---- main's calls --------------------------------------------------------------- */
void ew_ctrl_run(void *arg)
{
    struct ctrl_ctx *c = arg;
    struct ri_tunnel *t = ew_find(c->ew, c->tid);
    c->rc = t && serving(t) ? ri_tunnel_ctrl(t, c->type, 0, c->p, c->n) : -1;
}

void ew_drain_run(void *arg)
{
    struct drain_ctx *c = arg;
    for (struct ri_tunnel *t = c->ew->tunnels, *nx; t; t = nx) {
        nx = t->next; /* a tunnel may close (and unlink) at once */
        if (c->tid && t->id != c->tid)
            continue;
        if (c->now)
            ri_tunnel_fail(t, c->code, "%s", c->why);
        else
            ri_tunnel_drain(t, c->code, c->why, c->secs);
    }
}

/* ---- a client posted by main ---------------------------------------------------- */
void ew_open_run(void *arg) /* the worker */
{
    struct open_msg *o = arg;
    struct ri_tunnel *t = ew_find(o->ew, o->tid);
    int here = t && serving(t);
    if (here) {
        ri_mux_open_local(&t->mux, o->fd, o->port);
        ri_tunnel_publish(t); /* its stream counts before it stops counting as posted */
    }
    /* (a tunnel that failed meanwhile has sent its away home: not to be touched) */
    if (t && t->role_data)
        atomic_fetch_add_explicit(&((struct away *)t->role_data)->took_opens, 1,
                                  memory_order_release);
    if (here) {
        free(o);
    } else if (ew_to_main(o->ew, o->ew->main->open_back_run, o) < 0) {
        ri_close_abort(o->fd);
        free(o);
    }
}

/* ---- the hooks of a tunnel on a worker: news and gone ------------------------------ */
static void ew_config(struct ri_tunnel *t, const struct ri_config_msg *m)
{
    struct edge_worker *ew = t->owner;
    struct news *n = malloc(sizeof *n);
    if (n) {
        n->a = t->role_data;
        n->cfg = *m;
    }
    if (!n || ew_to_main(ew, ew->main->config_news_run, n) < 0) {
        free(n);
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory passing CONFIG on");
        return;
    }
}

static void ew_goaway(struct ri_tunnel *t, unsigned code, const char *reason)
{
    struct edge_worker *ew = t->owner;
    if (code == RI_E_NONE)
        return;
    struct news *n = malloc(sizeof *n);
    if (n) {
        n->a = t->role_data;
        n->code = code;
        n->streams = t->mux.n;
        snprintf(n->reason, sizeof n->reason, "%s", reason);
        if (ew_to_main(ew, ew->main->goaway_news_run, n) == 0)
            return;
    }
    free(n);
    ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory passing GOAWAY on");
}

static void ew_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct edge_worker *ew = t->owner;
    struct away *a = t->role_data;
    ri_tunnel_list_unlink(&ew->tunnels, t);
    t->pub = NULL;
    t->role_data = NULL;
    a->code = code;
    a->lost = lost;
    snprintf(a->why, sizeof a->why, "%s", why ? why : "");
    ri_mailbox_send(ew->main->mb, &a->mail, ew->main->gone_run, a);
}

static const struct ri_tunnel_hooks ew_hooks = {
    .config = ew_config,
    .goaway = ew_goaway,
    .closed = ew_closed,
};

/* ---- adopting a tunnel, a reload, what the commands read ------------------------- */
void ew_adopt_run(void *arg) /* the worker, while main waits */
{
    struct adopt_ctx *c = arg;
    struct edge_worker *ew = c->ew;
    struct ri_tunnel *t = c->t;
    ri_tunnel_list_push(&ew->tunnels, t); /* first: one that fails attaching unlinks */
    t->role_data = c->a;
    t->pub = &c->a->pub;
    if (ri_tunnel_attach(t, &ew->own, &ew_hooks, ew, &c->pol) == 0 &&
        !ri_mux_join(&t->mux, c->share))
        ri_tunnel_fail(t, RI_E_INTERNAL, "out of memory");
}

void ew_update_run(void *arg) /* a worker: a reload's settings for its tunnels */
{
    struct update_ctx *u = arg;
    for (struct ri_tunnel *t = u->ew->tunnels; t; t = t->next)
        ri_tunnel_update(t, u->ts);
}

void ew_gather_list(struct gather_ctx *g, const struct ri_tunnel *list)
{
    for (const struct ri_tunnel *t = list; t; t = t->next) {
        g->active += t->mux.n;
        g->schedq += t->mux.queued;
        g->ctrlq += t->ctrl.bytes;
        if (g->streams)
            ri_ctlinfo_streams(g->streams, &t->mux, t->edge_id, t->id, 0);
        if (g->n_per < GATHER_TUNNELS) {
            g->per[g->n_per].tid = t->id;
            g->per[g->n_per++].n = t->mux.n;
        }
    }
}

void ew_gather_run(void *arg)
{
    struct gather_ctx *g = arg;
    ew_gather_list(g, g->ew->tunnels);
    ri_counters_add(&g->sum, &g->ew->own.ctr);
}

/* ---- the worker's thread -------------------------------------------------------- */
void ew_thread_start(void *arg) /* on the worker's thread, before its loop */
{
    struct edge_worker *ew = arg;
    ri_event_bus_init(&ew->bus);
    ew->fwd = (struct ri_event_fwd){.mb = ew->main->mb, .to = ew->main->bus, .who = ew->who};
    ri_event_subscribe(&ew->bus, RI_EVT_ALL, ri_event_forward, &ew->fwd);
    ri_worker_init(&ew->own, ew->th.loop, ew->index, &ew->bus);
}

void ew_thread_stop(void *arg) /* on the worker's thread, after its loop */
{
    struct edge_worker *ew = arg;
    struct drain_ctx c = {.ew = ew, .code = RI_E_SHUTDOWN, .why = "edge stopped", .now = 1};
    ew_drain_run(&c); /* nothing is left unless the edge failed on its way up */
    ev_run(ew->th.loop, EVRUN_NOWAIT); /* the reapers of what just closed */
    ri_worker_destroy(&ew->own);
    ri_event_bus_free(&ew->bus);
}
