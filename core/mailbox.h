/* mailbox.h -- messages to an event loop from other threads: how a role's
 * main loop and its worker loops talk (core/ARCHITECTURE.md, "Workers";
 * the edge's lanes also write one locked object, the mux share). A message
 * is a function and its argument, run on the loop that owns the mailbox,
 * in the order posted. A message costs a malloc (post) or a wait (call):
 * control path and one post per new edge client, never per frame or byte. */
#ifndef RI_MAILBOX_H
#define RI_MAILBOX_H

#include <ev.h>
#include <pthread.h>

typedef void ri_mail_fn(void *arg);

/* One message. ri_mailbox_post allocates it; ri_mailbox_send takes one the
 * caller allocated ahead (a message that must not be lost to a failed
 * malloc), which fn then owns with its arg. */
struct ri_mail {
    ri_mail_fn *fn;
    void *arg;
    int waited;   /* a call(): on the caller's stack, not freed by the mailbox */
    int finished; /* a call(): fn returned (under mu) */
    int owned;    /* send(): the caller's memory, not freed by the mailbox */
    struct ri_mail *next;
};

struct ri_mailbox {
    struct ev_loop *loop; /* the owner's */
    ev_async wake;
    pthread_mutex_t mu;
    pthread_cond_t done;  /* a call() finished */
    struct ri_mail *head, *tail;
};

/* On the owner's thread, before anyone posts. The mailbox does not keep
 * the loop running by itself (ev_unref). */
int ri_mailbox_init(struct ri_mailbox *mb, struct ev_loop *loop);
/* On the owner's thread: runs what is still queued, then stops waking the
 * loop. Nobody may post or call from then on. */
void ri_mailbox_close(struct ri_mailbox *mb);
/* Frees it, once no thread can be inside post or call any more (a caller
 * woken by the last call may still be leaving it until its thread is
 * joined). */
void ri_mailbox_free(struct ri_mailbox *mb);
/* From any thread: fn(arg) runs later on the owner's loop. -1 when out of
 * memory (nothing queued; the caller still owns arg). */
int ri_mailbox_post(struct ri_mailbox *mb, ri_mail_fn *fn, void *arg);
/* From any thread: m->fn(m->arg) runs later on the owner's loop; never
 * fails. m stays the caller's (fn may free it). */
void ri_mailbox_send(struct ri_mailbox *mb, struct ri_mail *m, ri_mail_fn *fn, void *arg);
/* On the owner's thread: runs what is queued now (what other threads posted
 * before this call), as the loop would. */
void ri_mailbox_run(struct ri_mailbox *mb);
/* From another thread than the owner's: runs fn(arg) on the owner's loop
 * and waits until it returned. The caller is blocked meanwhile, so fn may
 * read (not change) what the caller owns. The owner must never call back
 * into the caller's mailbox and wait: waits go one way only (main ->
 * workers), so no two threads ever wait on each other. */
void ri_mailbox_call(struct ri_mailbox *mb, ri_mail_fn *fn, void *arg);

#endif
