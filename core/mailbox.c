/* mailbox.c -- messages to an event loop from other threads (see mailbox.h). */
#include "mailbox.h"

#include <stddef.h>
#include <stdlib.h>

static void run_all(struct ri_mailbox *mb)
{
    pthread_mutex_lock(&mb->mu);
    struct ri_mail *m = mb->head;
    mb->head = mb->tail = NULL;
    pthread_mutex_unlock(&mb->mu);
    while (m) {
        struct ri_mail *next = m->next;
        int waited = m->waited, free_it = !m->waited && !m->owned;
        m->fn(m->arg); /* an owned m may be freed by fn: not touched after */
        if (waited) {
            pthread_mutex_lock(&mb->mu);
            m->finished = 1; /* the caller may return (and its stack go) from here on */
            pthread_cond_broadcast(&mb->done);
            pthread_mutex_unlock(&mb->mu);
        } else if (free_it) {
            free(m);
        }
        m = next;
    }
}

static void wake_cb(EV_P_ ev_async *w, int revents)
{
    run_all((struct ri_mailbox *)((char *)w - offsetof(struct ri_mailbox, wake)));
}

int ri_mailbox_init(struct ri_mailbox *mb, struct ev_loop *loop)
{
    mb->loop = loop;
    mb->head = mb->tail = NULL;
    if (pthread_mutex_init(&mb->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&mb->done, NULL) != 0) {
        pthread_mutex_destroy(&mb->mu);
        return -1;
    }
    ev_async_init(&mb->wake, wake_cb);
    ev_async_start(loop, &mb->wake);
    ev_unref(loop);
    return 0;
}

void ri_mailbox_close(struct ri_mailbox *mb)
{
    run_all(mb);
    ev_ref(mb->loop);
    ev_async_stop(mb->loop, &mb->wake);
}

void ri_mailbox_free(struct ri_mailbox *mb)
{
    pthread_cond_destroy(&mb->done);
    pthread_mutex_destroy(&mb->mu);
}

static void enqueue(struct ri_mailbox *mb, struct ri_mail *m)
{
    m->next = NULL;
    if (mb->tail)
        mb->tail->next = m;
    else
        mb->head = m;
    mb->tail = m;
}

int ri_mailbox_post(struct ri_mailbox *mb, ri_mail_fn *fn, void *arg)
{
    struct ri_mail *m = malloc(sizeof *m);
    if (!m)
        return -1;
    *m = (struct ri_mail){.fn = fn, .arg = arg};
    pthread_mutex_lock(&mb->mu);
    enqueue(mb, m);
    pthread_mutex_unlock(&mb->mu);
    ev_async_send(mb->loop, &mb->wake);
    return 0;
}

void ri_mailbox_send(struct ri_mailbox *mb, struct ri_mail *m, ri_mail_fn *fn, void *arg)
{
    *m = (struct ri_mail){.fn = fn, .arg = arg, .owned = 1};
    pthread_mutex_lock(&mb->mu);
    enqueue(mb, m);
    pthread_mutex_unlock(&mb->mu);
    ev_async_send(mb->loop, &mb->wake);
}

void ri_mailbox_run(struct ri_mailbox *mb) { run_all(mb); }

void ri_mailbox_call(struct ri_mailbox *mb, ri_mail_fn *fn, void *arg)
{
    struct ri_mail m = {.fn = fn, .arg = arg, .waited = 1};
    pthread_mutex_lock(&mb->mu);
    enqueue(mb, &m);
    pthread_mutex_unlock(&mb->mu);
    ev_async_send(mb->loop, &mb->wake);
    pthread_mutex_lock(&mb->mu);
    while (!m.finished)
        pthread_cond_wait(&mb->done, &mb->mu);
    pthread_mutex_unlock(&mb->mu);
}
