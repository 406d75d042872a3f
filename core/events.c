/* events.c -- the event bus and its first subscriber, the log. */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mailbox.h"
#include "netutil.h"

void ri_event_bus_init(struct ri_event_bus *b) { b->subs = NULL; }

void ri_event_bus_free(struct ri_event_bus *b)
{
    while (b->subs) {
        struct ri_event_sub *s = b->subs;
        b->subs = s->next;
        free(s);
    }
}

struct ri_event_sub *ri_event_subscribe(struct ri_event_bus *b, uint32_t mask,
                                        ri_event_cb *cb, void *arg)
{
    struct ri_event_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cb = cb;
    s->arg = arg;
    s->mask = mask;
    struct ri_event_sub **pp = &b->subs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    return s;
}

void ri_event_unsubscribe(struct ri_event_bus *b, struct ri_event_sub *s)
{
    for (struct ri_event_sub **pp = &b->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            free(s);
            return;
        }
}

void ri_event_emit(struct ri_event_bus *b, struct ri_event *ev)
{
    if (!b)
        return;
    if (!ev->wall_ns) { /* a forwarded event (ri_event_dup) keeps its time */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ev->wall_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    if (!ev->edge_id)
        ev->edge_id = "";
    if (!ev->peer)
        ev->peer = "";
    if (!ev->reason)
        ev->reason = "";
    for (struct ri_event_sub *s = b->subs, *nx; s; s = nx) {
        nx = s->next; /* a subscriber may unsubscribe itself */
        if (s->mask & RI_EVT_BIT(ev->type))
            s->cb(s->arg, ev);
    }
}

const char *ri_event_name(int type)
{
    static const char *const names[RI_EVT_MAX_] = {
        [RI_EVT_EDGE_CONNECTED] = "edgeConnected",
        [RI_EVT_EDGE_DISCONNECTED] = "edgeDisconnected",
        [RI_EVT_EDGE_AUTH_FAILED] = "edgeAuthFailed",
        [RI_EVT_STREAM_OPENED] = "streamOpened",
        [RI_EVT_STREAM_CLOSED] = "streamClosed",
        [RI_EVT_PORTS_UPDATED] = "portsUpdated",
        [RI_EVT_RELOAD_OK] = "reloadOk",
        [RI_EVT_RELOAD_FAILED] = "reloadFailed",
        [RI_EVT_TUNNEL_CONNECTED] = "tunnelConnected",
        [RI_EVT_TUNNEL_DISCONNECTED] = "tunnelDisconnected",
        [RI_EVT_STREAM_CLASSIFIED] = "streamClassified",
        [RI_EVT_PUBLIC_IP_DISCOVERED] = "publicIpDiscovered",
    };
    return type > 0 && type < RI_EVT_MAX_ && names[type] ? names[type] : "unknown";
}

static void port_list(const struct ri_event *ev, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ev->n_ports && off + 16 < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%u", i ? "," : "", ev->ports[i]);
    if (ev->n_ports && off + 16 >= cap)
        snprintf(out + off, cap - off, ",...");
    if (!ev->n_ports)
        snprintf(out, cap, "(none)");
}

void ri_event_log(void *arg, const struct ri_event *ev)
{
    char list[256];
    switch (ev->type) {
    case RI_EVT_EDGE_CONNECTED:
        log_info("edge %s connected from %s (%zu port%s)", ev->edge_id, ev->peer, ev->n_ports,
                 ev->n_ports == 1 ? "" : "s");
        break;
    case RI_EVT_PORTS_UPDATED:
        if (ev->role == RI_ROLE_EDGE)
            break; /* the edge logs what it was assigned itself, rate-limited */
        port_list(ev, list, sizeof list);
        log_info("edge %s: ports changed: pushing %zu port%s: %s", ev->edge_id, ev->n_ports,
                 ev->n_ports == 1 ? "" : "s", list);
        break;
    case RI_EVT_PUBLIC_IP_DISCOVERED:
        if (ev->role == RI_ROLE_EDGE) /* the hub logs what an edge tells it, rate-limited */
            log_info("edge %s: public address is %s (STUN server %s)", ev->edge_id, ev->address,
                     ev->server ? ev->server : "?");
        break;
    case RI_EVT_TUNNEL_CONNECTED:
        log_info("edge %s: connected to hub %s", ev->edge_id, ev->peer);
        break;
    case RI_EVT_RELOAD_OK:
        log_info("%s: reloaded %s%s", ev->role == RI_ROLE_EDGE ? "edge" : "hub", ev->path,
                 ev->reason);
        break;
    case RI_EVT_RELOAD_FAILED:
        log_err("%s: reload failed; the running configuration stays in force%s%s",
                ev->role == RI_ROLE_EDGE ? "edge" : "hub", ev->reason[0] ? ": " : "", ev->reason);
        break;
    case RI_EVT_STREAM_OPENED:
        log_debug("%s %s: stream %u opened on port %u", ev->edge_id[0] ? "edge" : "tunnel",
                  ev->edge_id[0] ? ev->edge_id : ev->peer, ev->stream_id, ev->port);
        break;
    case RI_EVT_STREAM_CLOSED:
        log_debug("%s %s: stream %u closed (%llu bytes up, %llu down, %.3f s%s%s)",
                  ev->edge_id[0] ? "edge" : "tunnel", ev->edge_id[0] ? ev->edge_id : ev->peer,
                  ev->stream_id, (unsigned long long)ev->bytes_up,
                  (unsigned long long)ev->bytes_down, ev->duration, ev->code ? ", reset: " : "",
                  ev->code ? ev->reason : "");
        break;
    case RI_EVT_STREAM_CLASSIFIED:
        log_debug("%s: stream %u class %u", ev->edge_id[0] ? ev->edge_id : ev->peer,
                  ev->stream_id, ev->klass);
        break;
    }
}

static size_t text_len(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *put_text(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*at, s, n);
    const char *r = *at;
    *at += n;
    return r;
}

struct ri_event *ri_event_dup(const struct ri_event *ev)
{
    size_t n = sizeof *ev + 2 * sizeof(struct ri_addr) + ev->n_ports * sizeof *ev->ports +
               text_len(ev->edge_id) + text_len(ev->peer) + text_len(ev->reason) +
               text_len(ev->path) + text_len(ev->address) + text_len(ev->server);
    struct ri_event *c = malloc(n);
    if (!c)
        return NULL;
    *c = *ev;
    struct ri_addr *addrs = (struct ri_addr *)(c + 1);
    if (ev->client)
        c->client = memcpy(&addrs[0], ev->client, sizeof addrs[0]);
    if (ev->target)
        c->target = memcpy(&addrs[1], ev->target, sizeof addrs[1]);
    char *at = (char *)(addrs + 2);
    if (ev->n_ports) {
        c->ports = memcpy(at, ev->ports, ev->n_ports * sizeof *ev->ports);
        at += ev->n_ports * sizeof *ev->ports;
    }
    c->edge_id = put_text(&at, ev->edge_id);
    c->peer = put_text(&at, ev->peer);
    c->reason = put_text(&at, ev->reason);
    c->path = put_text(&at, ev->path);
    c->address = put_text(&at, ev->address);
    c->server = put_text(&at, ev->server);
    return c;
}

struct fwd {
    struct ri_event_bus *to;
    struct ri_event *ev;
};

static void fwd_run(void *arg)
{
    struct fwd *f = arg;
    ri_event_emit(f->to, f->ev);
    free(f->ev);
    free(f);
}

void ri_event_forward(void *arg, const struct ri_event *ev)
{
    const struct ri_event_fwd *fw = arg;
    struct fwd *f = malloc(sizeof *f);
    if (f && (f->ev = ri_event_dup(ev))) {
        f->to = fw->to;
        if (ri_mailbox_post(fw->mb, fwd_run, f) == 0)
            return;
        free(f->ev);
    }
    free(f);
    log_err("%s: out of memory: a %s event is lost", fw->who, ri_event_name(ev->type));
}
