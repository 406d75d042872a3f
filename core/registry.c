/* registry.c -- edge sets, their differences, per-edge counters. */
#include "registry.h"

#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static void def_free(struct ri_edge_def *d)
{
    if (d->secret) {
        gnutls_memset(d->secret, 0, strlen(d->secret));
        free(d->secret);
    }
    free(d->id);
    free(d->ports);
}

struct ri_edge_set *ri_edge_set_new(const struct ri_edge_def *defs, size_t n)
{
    struct ri_edge_set *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->refs = 1;
    s->mask = 15;
    while (s->mask + 1 < 2 * n)
        s->mask = s->mask * 2 + 1;
    s->slot = calloc((size_t)s->mask + 1, sizeof *s->slot);
    s->v = calloc(n + 1, sizeof *s->v);
    if (!s->slot || !s->v)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct ri_edge_def *d = &s->v[i];
        d->id = strdup(defs[i].id);
        d->secret = strdup(defs[i].secret);
        d->ports = malloc((defs[i].n_ports + 1) * sizeof *d->ports);
        s->n = i + 1;
        if (!d->id || !d->secret || !d->ports)
            goto fail;
        memcpy(d->ports, defs[i].ports, defs[i].n_ports * sizeof *d->ports);
        d->n_ports = defs[i].n_ports;
        d->stun_interval_secs = defs[i].stun_interval_secs;
        uint32_t k = hash(d->id) & s->mask;
        while (s->slot[k])
            k = (k + 1) & s->mask;
        s->slot[k] = (uint32_t)i + 1;
    }
    return s;
fail:
    ri_edge_set_unref(s);
    return NULL;
}

struct ri_edge_set *ri_edge_set_from_config(const struct ri_config *c)
{
    struct ri_edge_def *defs = calloc(c->n_edges + 1, sizeof *defs);
    if (!defs)
        return NULL;
    for (size_t i = 0; i < c->n_edges; i++)
        defs[i] = (struct ri_edge_def){.id = (char *)c->edges[i].id,
                                       .secret = (char *)c->edges[i].secret,
                                       .ports = c->edges[i].ports,
                                       .n_ports = c->edges[i].n_ports,
                                       .stun_interval_secs = c->edges[i].stun_interval_secs};
    struct ri_edge_set *s = ri_edge_set_new(defs, c->n_edges);
    free(defs);
    return s;
}

struct ri_edge_set *ri_edge_set_ref(struct ri_edge_set *s)
{
    if (s)
        s->refs++;
    return s;
}

void ri_edge_set_unref(struct ri_edge_set *s)
{
    if (!s || --s->refs > 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        def_free(&s->v[i]);
    free(s->v);
    free(s->slot);
    free(s);
}

const struct ri_edge_def *ri_edge_set_find(const struct ri_edge_set *s, const char *id)
{
    if (!s || !id)
        return NULL;
    for (uint32_t k = hash(id) & s->mask; s->slot[k]; k = (k + 1) & s->mask)
        if (strcmp(s->v[s->slot[k] - 1].id, id) == 0)
            return &s->v[s->slot[k] - 1];
    return NULL;
}

int ri_edge_def_has_port(const struct ri_edge_def *d, uint16_t port)
{
    size_t lo = 0, hi = d->n_ports; /* ports are sorted */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->ports[mid] == port)
            return 1;
        if (d->ports[mid] < port)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int ri_edge_def_same_ports(const struct ri_edge_def *a, const struct ri_edge_def *b)
{
    return a->n_ports == b->n_ports && a->stun_interval_secs == b->stun_interval_secs &&
           memcmp(a->ports, b->ports, a->n_ports * sizeof *a->ports) == 0;
}

/* ---- the registry --------------------------------------------------------------- */
void ri_registry_init(struct ri_registry *r, struct ri_edge_set *initial)
{
    memset(r, 0, sizeof *r);
    r->set = initial;
}

void ri_registry_free(struct ri_registry *r)
{
    ri_edge_set_unref(r->set);
    for (size_t i = 0; i < r->n_stats; i++)
        free(r->stats[i].id);
    free(r->stats);
    memset(r, 0, sizeof *r);
}

struct ri_edge_stats *ri_registry_stats(struct ri_registry *r, const char *id)
{
    if (!ri_edge_set_find(r->set, id))
        return NULL;
    for (size_t i = 0; i < r->n_stats; i++)
        if (strcmp(r->stats[i].id, id) == 0)
            return &r->stats[i];
    if (r->n_stats == r->cap_stats) {
        size_t cap = r->cap_stats ? 2 * r->cap_stats : 16;
        struct ri_edge_stats *ns = realloc(r->stats, cap * sizeof *ns);
        if (!ns)
            return NULL;
        r->stats = ns;
        r->cap_stats = cap;
    }
    struct ri_edge_stats *st = &r->stats[r->n_stats];
    memset(st, 0, sizeof *st);
    if (!(st->id = strdup(id)))
        return NULL;
    r->n_stats++;
    return st;
}

void ri_registry_apply(struct ri_registry *r, struct ri_edge_set *next, ri_edge_change_cb *cb,
                       void *arg)
{
    struct ri_edge_set *old = r->set;
    for (size_t i = 0; old && i < old->n; i++) {
        const struct ri_edge_def *o = &old->v[i], *n = ri_edge_set_find(next, o->id);
        if (!n)
            cb(arg, RI_EDGE_REMOVED, o, NULL);
        else if (strcmp(o->secret, n->secret) != 0)
            cb(arg, RI_EDGE_REKEYED, o, n);
        else if (!ri_edge_def_same_ports(o, n))
            cb(arg, RI_EDGE_PORTS_CHANGED, o, n);
    }
    for (size_t i = 0; next && i < next->n; i++)
        if (!ri_edge_set_find(old, next->v[i].id))
            cb(arg, RI_EDGE_ADDED, NULL, &next->v[i]);
    r->set = ri_edge_set_ref(next);
    ri_edge_set_unref(old);
    for (size_t i = 0; i < r->n_stats;) { /* counters of edges that are gone */
        if (ri_edge_set_find(next, r->stats[i].id)) {
            i++;
            continue;
        }
        free(r->stats[i].id);
        r->stats[i] = r->stats[--r->n_stats];
    }
}

void ri_registry_count(void *arg, const struct ri_event *ev)
{
    struct ri_registry *r = arg;
    if (!ev->edge_id[0])
        return;
    struct ri_edge_stats *st = ri_registry_stats(r, ev->edge_id);
    if (!st)
        return;
    switch (ev->type) {
    case RI_EVT_EDGE_CONNECTED:
        st->connects++;
        st->last_connected_ns = ev->wall_ns;
        st->ports_failed = 0; /* the new tunnel reports afresh */
        break;
    case RI_EVT_EDGE_AUTH_FAILED:
        st->auth_failures++;
        break;
    case RI_EVT_STREAM_OPENED:
        st->streams_opened++;
        break;
    case RI_EVT_STREAM_CLOSED:
        st->streams_closed++; /* bytes: each hub worker keeps its own (hubworker.c, hw_count) */
        break;
    }
}
