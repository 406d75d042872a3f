/* wthread.h -- an event loop on a thread of its own, reached through its
 * mailbox (mailbox.h). The hub's and the edge's workers run on these. */
#ifndef RI_WTHREAD_H
#define RI_WTHREAD_H

#include <ev.h>
#include <pthread.h>

#include "mailbox.h"

struct ri_wthread {
    struct ev_loop *loop;
    struct ri_mailbox mb;
    pthread_t th;
    int running;
    ri_mail_fn *at_start; /* runs on the thread before its loop (may be NULL) */
    ri_mail_fn *at_stop;  /* runs on the thread after its loop ended (may be NULL) */
    void *arg;
    char name[16];        /* the thread's name (top, perf): "ri-worker-1" */
};

/* Creates the loop and its mailbox (on the caller's thread; nothing runs
 * yet), then starts the thread. -1 with err on failure. */
int ri_wthread_start(struct ri_wthread *t, const char *name, ri_mail_fn *at_start,
                     ri_mail_fn *at_stop, void *arg, char *err, size_t errlen);
/* Ends the loop (after what is queued in the mailbox ran), runs at_stop on
 * the thread and joins it; frees the loop. */
void ri_wthread_stop(struct ri_wthread *t);

#endif
