/* sched_prio -- strict priority by listen port: a complete, commented
 * example of a custom scheduler for ri (sdk/README.md, "Writing a custom
 * scheduler"). Build it against the SDK alone:
 *
 *   cc -std=c99 -Wall -Wextra -O2 -shared -fPIC -I sdk -o sched_prio.so sdk/examples/sched_prio.c
 *
 * and enable it in a site's config:
 *
 *   plugins = ( ..., { name = "sched_prio"; file = "/opt/ri/sched_prio.so";
 *                      ports = [ 22, 443 ]; } );
 *
 * Streams whose edge port is listed go first, in the order listed: while
 * any stream on port 22 has data, it sends; port 443 only when no port-22
 * stream is ready; every other port only when no listed port is. Within a
 * level, streams take turns (round robin). Strict priority can starve the
 * lower levels -- that is its point -- so list only ports whose traffic is
 * small or must win (SSH, a control API).
 */
#include <stdio.h>
#include <string.h>

#include "ri_plugin.h"

#define LEVELS 9 /* up to 8 listed ports, then everything else */

/* The per-stream area: the core allocates stream_size bytes, zeroed, for
 * every stream and passes it as `sp`. We keep the stream's handle in it
 * (to return from dequeue) and its links in a level's list. */
struct node {
    ri_stream *s;
    struct node *prev, *next;
    int level;   /* decided once, when the stream opens */
    int queued;
};

struct level {
    struct node *head, *tail;
};

/* The per-instance state: the core allocates inst_size bytes, zeroed. One
 * instance runs per tunnel. */
struct prio {
    const struct ri_core_api *api;
    uint16_t ports[LEVELS - 1];
    int n_ports;
    struct level lv[LEVELS];
};

/* Function-type declarations: the compiler checks each signature. */
static ri_create_f prio_create;
static ri_sched_enqueue_f prio_enqueue;
static ri_sched_dequeue_f prio_dequeue;
static ri_sched_remove_f prio_remove;
static ri_sched_event_f prio_event;

/* create: read the settings (only here: copy what you keep) and refuse bad
 * ones with a message; the core prints it as FILE:LINE. */
static int prio_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                       size_t errlen)
{
    struct prio *p = state;
    size_t n = 0;
    p->api = api;
    if (api->cfg_len(self, "ports", &n) != 0 || n == 0 || n > LEVELS - 1) {
        snprintf(err, errlen, "ports must list 1-%d edge ports, highest priority first",
                 LEVELS - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char key[32];
        int64_t port;
        snprintf(key, sizeof key, "ports.[%u]", (unsigned)i);
        if (api->cfg_int(self, key, &port) != 0 || port < 1 || port > 65535) {
            snprintf(err, errlen, "ports entry %u is not a port", (unsigned)i + 1);
            return -1;
        }
        p->ports[i] = (uint16_t)port;
    }
    p->n_ports = (int)n;
    return 0;
}

static void append(struct level *l, struct node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static void unlink_node(struct level *l, struct node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* event: RI_EV_OPENED comes once per stream, before any enqueue: the place
 * to look at the stream (its edge port) and set up its area. */
static void prio_event(void *state, ri_stream *s, void *sp, int event, uint32_t klass)
{
    struct prio *p = state;
    struct node *n = sp;
    (void)klass;
    if (event != RI_EV_OPENED)
        return;
    struct ri_stream_stats st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st; /* the core fills no more than this */
    n->level = LEVELS - 1;
    if (p->api->stream_stats(s, &st) == 0)
        for (int i = 0; i < p->n_ports; i++)
            if (p->ports[i] == st.edge_port)
                n->level = i;
}

/* enqueue: s has data and send credit. The core never enqueues a stream
 * that is already queued. */
static void prio_enqueue(void *state, ri_stream *s, void *sp, uint32_t klass)
{
    struct prio *p = state;
    struct node *n = sp;
    (void)klass; /* strict priority ignores traffic classes */
    n->s = s;
    n->queued = 1;
    append(&p->lv[n->level], n);
}

/* dequeue: the next stream to send a chunk. The core reads up to
 * *max_bytes from it and enqueues it again (at the tail of its level) if
 * it still has data and credit, so streams of one level take turns. */
static ri_stream *prio_dequeue(void *state, const struct ri_sched_ctx *ctx, uint32_t *max_bytes)
{
    struct prio *p = state;
    (void)ctx, (void)max_bytes;
    for (int i = 0; i < LEVELS; i++) {
        struct node *n = p->lv[i].head;
        if (n) {
            unlink_node(&p->lv[i], n);
            n->queued = 0;
            return n->s;
        }
    }
    return NULL;
}

/* remove: a queued stream is closing. */
static void prio_remove(void *state, ri_stream *s, void *sp)
{
    struct prio *p = state;
    struct node *n = sp;
    (void)s;
    if (n->queued)
        unlink_node(&p->lv[n->level], n);
    n->queued = 0;
}

/* Every ops table starts with its size. */
static const struct ri_sched_ops ops = {
    .size = sizeof ops,
    .enqueue = prio_enqueue,
    .dequeue = prio_dequeue,
    .remove = prio_remove,
    .event = prio_event,
};

/* The settings this plugin reads: any other key in its group is an error. */
static const char *const keys[] = {"ports", NULL};

/* The one exported symbol. */
RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SCHED,
    .name = "sched_prio",
    .description = "strict priority by listen port (SDK example)",
    .ops = &ops,
    .inst_size = sizeof(struct prio),
    .stream_size = sizeof(struct node),
    .create = prio_create,
    .keys = keys,
};
