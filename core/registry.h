/* registry.h -- the hub's edges: who may connect, with which secret, and
 * which ports each is given.
 *
 * An edge set is an immutable, reference-counted snapshot hashed by id.
 * Every change -- SIGHUP today, the control socket and a shared store later
 * -- builds a new set and goes through one path, ri_registry_apply, which
 * reports each difference (added, removed, re-keyed, ports changed) to the
 * hub so it can act on live tunnels, then makes the new set current. Per-
 * edge counters live beside the sets, keyed by id, so they survive
 * reconnects and set changes (an edge removed from the set loses them). */
#ifndef RI_REGISTRY_H
#define RI_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "events.h"

struct ri_config;

struct ri_edge_def {
    char *id;
    char *secret;
    uint16_t *ports; /* sorted, unique */
    size_t n_ports;
    uint32_t stun_interval_secs;
};

struct ri_edge_set {
    _Atomic int refs; /* atomic: dropped on whichever worker thread held the last reference */
    size_t n;
    struct ri_edge_def *v;
    uint32_t mask;  /* hash table of indexes + 1 (0 = empty) */
    uint32_t *slot;
};

/* A set of deep copies of defs (ids must be unique); NULL on out of memory. */
struct ri_edge_set *ri_edge_set_new(const struct ri_edge_def *defs, size_t n);
/* The edges of a hub config. */
struct ri_edge_set *ri_edge_set_from_config(const struct ri_config *c);
struct ri_edge_set *ri_edge_set_ref(struct ri_edge_set *s);
void ri_edge_set_unref(struct ri_edge_set *s);
const struct ri_edge_def *ri_edge_set_find(const struct ri_edge_set *s, const char *id);
int ri_edge_def_has_port(const struct ri_edge_def *d, uint16_t port);
int ri_edge_def_same_ports(const struct ri_edge_def *a, const struct ri_edge_def *b);

enum ri_edge_change {
    RI_EDGE_ADDED,
    RI_EDGE_REMOVED,
    RI_EDGE_REKEYED,       /* its secret changed: its tunnel must authenticate again */
    RI_EDGE_PORTS_CHANGED, /* ports or STUN interval changed */
};
typedef void ri_edge_change_cb(void *arg, enum ri_edge_change what,
                               const struct ri_edge_def *old, const struct ri_edge_def *cur);

/* What the registry counts per edge id. */
struct ri_edge_stats {
    char *id;
    uint64_t connects, auth_failures, bad_opens;
    uint64_t streams_opened, streams_closed;
    uint64_t last_connected_ns;    /* wall clock */
    uint32_t ports_failed;         /* assigned ports the edge reports it cannot open */
};

struct ri_registry {
    struct ri_edge_set *set; /* current (a reference) */
    struct ri_edge_stats *stats;
    size_t n_stats, cap_stats;
};

void ri_registry_init(struct ri_registry *r, struct ri_edge_set *initial);
void ri_registry_free(struct ri_registry *r);
/* Makes `next` current (takes a reference), telling cb about every
 * difference first; counters of removed edges are dropped. */
void ri_registry_apply(struct ri_registry *r, struct ri_edge_set *next, ri_edge_change_cb *cb,
                       void *arg);
/* The counters of an edge in the current set (NULL for an unknown id). */
struct ri_edge_stats *ri_registry_stats(struct ri_registry *r, const char *id);
/* An event subscriber that keeps the counters (arg: the registry). */
void ri_registry_count(void *arg, const struct ri_event *ev);

#endif
