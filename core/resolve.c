/* resolve.c -- getaddrinfo in a thread, answers through a pipe (resolve.h).
 *
 * A finished request writes its own pointer into the resolver's pipe; the
 * loop reads pointers and runs callbacks. The write end lives in a small
 * shared channel that outlives the resolver until the last thread is done,
 * so freeing the resolver never waits for a slow DNS answer. */
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netutil.h"

struct chan {
    pthread_mutex_t mu;
    int refs;   /* the resolver and every running thread */
    int wfd;
    int closed; /* the resolver is gone: threads free their own request */
};

struct ri_resolver {
    struct ev_loop *loop;
    struct chan *ch;
    int rfd;
    ev_io rio;
    ev_idle now;            /* answers that need no thread */
    struct ri_resolve_req *ready; /* numeric answers waiting for `now` */
    struct ri_resolve_req *pending; /* every request not yet delivered */
};

struct ri_resolve_req {
    struct ri_resolver *r;
    struct chan *ch;
    char *host;
    int port;
    ri_resolve_cb *cb;
    void *arg;
    int cancelled;
    struct sockaddr_storage addrs[RI_RESOLVE_MAX];
    socklen_t lens[RI_RESOLVE_MAX];
    int n;
    char err[256];
    struct ri_resolve_req *next, *prev; /* r->pending */
    struct ri_resolve_req *next_ready;
};

static void chan_unref(struct chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    int left = --ch->refs;
    pthread_mutex_unlock(&ch->mu);
    if (left)
        return;
    close(ch->wfd);
    pthread_mutex_destroy(&ch->mu);
    free(ch);
}

static void req_free(struct ri_resolve_req *q)
{
    free(q->host);
    free(q);
}

static void unlink_req(struct ri_resolve_req *q)
{
    struct ri_resolver *r = q->r;
    if (q->prev)
        q->prev->next = q->next;
    else
        r->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
}

static void deliver(struct ri_resolve_req *q)
{
    unlink_req(q);
    if (!q->cancelled)
        q->cb(q->arg, q->addrs, q->lens, q->n, q->err);
    req_free(q);
}

static void lookup(struct ri_resolve_req *q)
{
    q->n = ri_resolve_all(q->host, q->port, q->addrs, q->lens, RI_RESOLVE_MAX, q->err,
                          sizeof q->err);
    if (q->n < 0)
        q->n = 0;
}

static void *worker(void *arg)
{
    struct ri_resolve_req *q = arg;
    struct chan *ch = q->ch;
    lookup(q);
    pthread_mutex_lock(&ch->mu);
    int delivered = !ch->closed && write(ch->wfd, &q, sizeof q) == (ssize_t)sizeof q;
    pthread_mutex_unlock(&ch->mu);
    if (!delivered)
        req_free(q); /* the resolver is gone */
    chan_unref(ch);
    return NULL;
}

static void pipe_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_resolver *r = w->data;
    struct ri_resolve_req *q;
    while (read(r->rfd, &q, sizeof q) == (ssize_t)sizeof q)
        deliver(q);
}

static void idle_cb(EV_P_ ev_idle *w, int revents)
{
    struct ri_resolver *r = w->data;
    ev_idle_stop(EV_A_ w);
    while (r->ready) {
        struct ri_resolve_req *q = r->ready;
        r->ready = q->next_ready;
        deliver(q);
    }
}

struct ri_resolver *ri_resolver_new(struct ev_loop *loop)
{
    struct ri_resolver *r = calloc(1, sizeof *r);
    struct chan *ch = calloc(1, sizeof *ch);
    int fds[2];
    if (!r || !ch || pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(r);
        free(ch);
        return NULL;
    }
    pthread_mutex_init(&ch->mu, NULL);
    ch->refs = 1;
    ch->wfd = fds[1];
    r->loop = loop;
    r->ch = ch;
    r->rfd = fds[0];
    ev_io_init(&r->rio, pipe_cb, r->rfd, EV_READ);
    r->rio.data = r;
    ev_io_start(loop, &r->rio);
    ev_unref(loop); /* waiting for answers alone does not keep the loop running */
    ev_idle_init(&r->now, idle_cb);
    r->now.data = r;
    return r;
}

void ri_resolver_free(struct ri_resolver *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->ch->mu);
    r->ch->closed = 1;
    pthread_mutex_unlock(&r->ch->mu);
    /* answers already in the pipe or ready: free them unanswered */
    struct ri_resolve_req *q;
    while (read(r->rfd, &q, sizeof q) == (ssize_t)sizeof q) {
        unlink_req(q);
        req_free(q);
    }
    while (r->ready) {
        q = r->ready;
        r->ready = q->next_ready;
        unlink_req(q);
        req_free(q);
    }
    /* still running: their threads free them */
    for (q = r->pending; q; q = q->next)
        q->cancelled = 1;
    ev_ref(r->loop);
    ev_io_stop(r->loop, &r->rio);
    ev_idle_stop(r->loop, &r->now);
    close(r->rfd);
    chan_unref(r->ch);
    free(r);
}

struct ri_resolve_req *ri_resolve_async(struct ri_resolver *r, const char *host, int port,
                                  ri_resolve_cb *cb, void *arg)
{
    struct ri_resolve_req *q = calloc(1, sizeof *q);
    if (!q || !(q->host = strdup(host))) {
        free(q);
        return NULL;
    }
    q->r = r;
    q->ch = r->ch;
    q->port = port;
    q->cb = cb;
    q->arg = arg;
    q->next = r->pending;
    if (r->pending)
        r->pending->prev = q;
    r->pending = q;
    if (ri_is_numeric_ip(host)) { /* no lookup: answered on the next iteration */
        lookup(q);
        q->next_ready = r->ready;
        r->ready = q;
        ev_idle_start(r->loop, &r->now);
        return q;
    }
    pthread_mutex_lock(&r->ch->mu);
    r->ch->refs++;
    pthread_mutex_unlock(&r->ch->mu);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    pthread_t th;
    int rc = pthread_create(&th, &at, worker, q);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        unlink_req(q);
        req_free(q);
        chan_unref(r->ch);
        return NULL;
    }
    return q;
}

void ri_resolve_cancel(struct ri_resolve_req *q)
{
    if (q)
        q->cancelled = 1;
}
