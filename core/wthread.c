/* wthread.c -- an event loop on a thread of its own (see wthread.h). */
#include "wthread.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void *thread_main(void *arg)
{
    struct ri_wthread *t = arg;
    pthread_setname_np(pthread_self(), t->name);
    if (t->at_start)
        t->at_start(t->arg);
    /* the mailbox does not hold the loop by itself (mailbox.h): the loop
     * runs until ri_wthread_stop says so, whatever else is active */
    ev_ref(t->loop);
    ev_run(t->loop, 0);
    ev_unref(t->loop);
    if (t->at_stop)
        t->at_stop(t->arg);
    ri_mailbox_close(&t->mb);
    return NULL;
}

int ri_wthread_start(struct ri_wthread *t, const char *name, ri_mail_fn *at_start,
                     ri_mail_fn *at_stop, void *arg, char *err, size_t errlen)
{
    snprintf(t->name, sizeof t->name, "%.15s", name);
    t->at_start = at_start;
    t->at_stop = at_stop;
    t->arg = arg;
    t->running = 0;
    if (!(t->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK))) {
        snprintf(err, errlen, "%s: cannot create an event loop", name);
        return -1;
    }
    if (ri_mailbox_init(&t->mb, t->loop) < 0) {
        snprintf(err, errlen, "%s: cannot create its mailbox", name);
        ev_loop_destroy(t->loop);
        return -1;
    }
    /* signals go to the main thread's loop, never to a worker: the thread
     * starts with all of them blocked (it inherits the mask) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&t->th, NULL, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot start a thread: %s", name, strerror(rc));
        ri_mailbox_close(&t->mb);
        ri_mailbox_free(&t->mb);
        ev_loop_destroy(t->loop);
        return -1;
    }
    t->running = 1;
    return 0;
}

static void break_loop(void *arg)
{
    struct ri_wthread *t = arg;
    ev_break(t->loop, EVBREAK_ALL);
}

void ri_wthread_stop(struct ri_wthread *t)
{
    if (!t->running)
        return;
    ri_mailbox_call(&t->mb, break_loop, t);
    pthread_join(t->th, NULL);
    ri_mailbox_free(&t->mb);
    ev_loop_destroy(t->loop);
    t->running = 0;
}
