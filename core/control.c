/* control.c -- the control socket (see control.h). */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "token.h"
#include "log.h"
#include "netutil.h"
#include "ratelimit.h"

struct client {
    struct ri_ctl *ctl;
    uint64_t id;
    int fd;
    ev_io rio, wio;
    char *in;          /* RI_CTL_LINE_MAX + 1 bytes */
    size_t in_len;
    char *out;         /* out[off, len) waits for the socket */
    size_t out_off, out_len, out_cap;
    int subscribed, closing; /* closing: drop once out is written */
    uint64_t dropped;        /* events lost since the last "dropped" line */
    struct client *prev, *next;
};

struct ri_ctl {
    struct ev_loop *loop;
    struct ri_event_bus *bus;
    struct ri_event_sub *sub;
    const struct ri_ctl_cmd *cmds;
    void *arg;
    char *path;
    dev_t dev;
    ino_t ino;
    int fd;
    ev_io lio;
    struct client *clients;
    unsigned n_clients;
    uint64_t next_id;
    struct ri_ratelimit rl_drop, rl_full, rl_slow;
};

json_t *ri_ctl_error(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

json_t *ri_ctl_ok(void) { return json_pack("{s:b}", "ok", 1); }

void ri_rfc3339(uint64_t wall_ns, char *out, size_t cap)
{
    time_t s = (time_t)(wall_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&s, &tm);
    char d[32];
    strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03uZ", d, (unsigned)(wall_ns % 1000000000u / 1000000u));
}

json_t *ri_event_json(const struct ri_event *ev)
{
    char ts[40], a[80];
    ri_rfc3339(ev->wall_ns, ts, sizeof ts);
    json_t *o = json_pack("{s:s, s:s}", "event", ri_event_name(ev->type), "time", ts);
    if (!o)
        return NULL;
    if (ev->tunnel_id)
        json_object_set_new(o, "tunnel", json_integer((json_int_t)ev->tunnel_id));
    if (ev->edge_id && ev->edge_id[0])
        json_object_set_new(o, "edge", json_string(ev->edge_id));
    if (ev->peer && ev->peer[0])
        json_object_set_new(o, "peer", json_string(ev->peer));
    switch (ev->type) {
    case RI_EVT_STREAM_OPENED:
    case RI_EVT_STREAM_CLOSED:
    case RI_EVT_STREAM_CLASSIFIED:
        json_object_set_new(o, "stream", json_integer(ev->stream_id));
        json_object_set_new(o, "port", json_integer(ev->port));
        if (ev->client)
            json_object_set_new(o, "client", json_string(ri_raddr_str(ev->client, a, sizeof a)));
        if (ev->target && ev->target->family)
            json_object_set_new(o, "target", json_string(ri_raddr_str(ev->target, a, sizeof a)));
        if (ev->type == RI_EVT_STREAM_CLOSED) {
            json_object_set_new(o, "bytesUp", json_integer((json_int_t)ev->bytes_up));
            json_object_set_new(o, "bytesDown", json_integer((json_int_t)ev->bytes_down));
            json_object_set_new(o, "duration", json_real(ev->duration));
            json_object_set_new(o, "code", json_integer(ev->code));
            if (ev->code && ev->reason && ev->reason[0])
                json_object_set_new(o, "reason", json_string(ev->reason));
        }
        if (ev->type == RI_EVT_STREAM_CLASSIFIED)
            json_object_set_new(o, "class", json_string(ev->klass ? "sustained" : "normal"));
        break;
    case RI_EVT_EDGE_CONNECTED:
    case RI_EVT_PORTS_UPDATED: {
        json_t *p = json_array();
        for (size_t i = 0; p && i < ev->n_ports; i++)
            json_array_append_new(p, json_integer(ev->ports[i]));
        json_object_set_new(o, "ports", p ? p : json_null());
        break;
    }
    case RI_EVT_EDGE_DISCONNECTED:
    case RI_EVT_TUNNEL_DISCONNECTED:
    case RI_EVT_EDGE_AUTH_FAILED:
        json_object_set_new(o, "code", json_integer(ev->code));
        json_object_set_new(o, "reason", json_string(ev->reason ? ev->reason : ""));
        if (ev->type != RI_EVT_EDGE_AUTH_FAILED)
            json_object_set_new(o, "streamsLost", json_integer(ev->count));
        break;
    case RI_EVT_PUBLIC_IP_DISCOVERED:
        if (ev->address)
            json_object_set_new(o, "address", json_string(ev->address));
        if (ev->server && ev->server[0])
            json_object_set_new(o, "server", json_string(ev->server));
        break;
    case RI_EVT_RELOAD_OK:
    case RI_EVT_RELOAD_FAILED:
        json_object_set_new(o, "path", json_string(ev->path ? ev->path : ""));
        if (ev->reason && ev->reason[0])
            json_object_set_new(o, ev->type == RI_EVT_RELOAD_OK ? "changes" : "reason",
                                ev->type == RI_EVT_RELOAD_OK ? ri_ctl_changes(ev->reason)
                                                             : json_string(ev->reason));
        break;
    }
    return o;
}

json_t *ri_ctl_changes(const char *what)
{
    size_t n = what ? strlen(what) : 0;
    if (n >= 3 && what[0] == ' ' && what[1] == '(' && what[n - 1] == ')')
        return json_stringn(what + 2, n - 3);
    return json_string(what ? what : "");
}

/* ---- clients ----------------------------------------------------------------------- */
static void client_free(struct client *c)
{
    struct ri_ctl *ctl = c->ctl;
    ev_io_stop(ctl->loop, &c->rio);
    ev_io_stop(ctl->loop, &c->wio);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctl->n_clients--;
    free(c->in);
    free(c->out);
    free(c);
}

static void client_drop(struct client *c, const char *why)
{
    ri_log_rl(&c->ctl->rl_drop, RI_LOG_WARN, "control: dropping client %llu: %s",
              (unsigned long long)c->id, why);
    client_free(c);
}

/* Appends one line; -1 when it would take the client over limit. */
static int out_append(struct client *c, const char *s, size_t n, size_t limit)
{
    size_t pending = c->out_len - c->out_off;
    if (pending + n + 1 > limit)
        return -1;
    if (c->out_off && c->out_len + n + 1 > c->out_cap) { /* move the rest to the front */
        memmove(c->out, c->out + c->out_off, pending);
        c->out_len = pending;
        c->out_off = 0;
    }
    if (c->out_len + n + 1 > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n + 1)
            cap *= 2;
        char *nb = realloc(c->out, cap);
        if (!nb)
            return -1;
        c->out = nb;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, s, n);
    c->out[c->out_len + n] = '\n';
    c->out_len += n + 1;
    ev_io_start(c->ctl->loop, &c->wio);
    return 0;
}

/* Sends an answer (takes it); -1 when the client was dropped for it. */
static int send_json(struct client *c, json_t *o)
{
    char *s = o ? json_dumps(o, RI_JSON_OUT) : NULL;
    json_decref(o);
    if (!s) {
        client_drop(c, "out of memory");
        return -1;
    }
    int rc = out_append(c, s, strlen(s), RI_CTL_OUT_MAX);
    ri_json_free(s);
    if (rc < 0) {
        char why[120];
        snprintf(why, sizeof why, "more than %u bytes of answers wait for it (it does not read)",
                 RI_CTL_OUT_MAX);
        client_drop(c, why);
    }
    return rc;
}

static struct client *client_by_id(struct ri_ctl *ctl, uint64_t id)
{
    for (struct client *c = ctl->clients; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

void ri_ctl_reply(struct ri_ctl *ctl, uint64_t client, json_t *ans)
{
    struct client *c = ctl ? client_by_id(ctl, client) : NULL;
    if (!c) {
        json_decref(ans);
        return;
    }
    send_json(c, ans);
}

static void on_event(void *arg, const struct ri_event *ev)
{
    struct ri_ctl *ctl = arg;
    char *s = NULL;
    for (struct client *c = ctl->clients; c; c = c->next) {
        if (!c->subscribed || c->closing)
            continue;
        if (!s) {
            json_t *o = ri_event_json(ev);
            s = o ? json_dumps(o, RI_JSON_OUT) : NULL;
            json_decref(o);
            if (!s)
                return;
        }
        /* a subscriber that does not keep up loses events, never memory */
        if (c->dropped || out_append(c, s, strlen(s), RI_CTL_EVENTS_MAX) < 0) {
            if (!c->dropped++)
                ri_log_rl(&ctl->rl_slow, RI_LOG_WARN,
                          "control: subscriber %llu does not keep up (%u bytes wait): "
                          "dropping events until it does", (unsigned long long)c->id,
                          RI_CTL_EVENTS_MAX);
        }
    }
    ri_json_free(s);
}

json_t *ri_ctl_query(const struct ri_ctl_cmd *cmds, void *arg, json_t *req)
{
    static const char *const readonly[] = {"status", "streams", "metrics", NULL};
    const char *name = json_string_value(json_object_get(req, "cmd"));
    if (!name)
        return NULL;
    size_t r = 0;
    while (readonly[r] && strcmp(readonly[r], name) != 0)
        r++;
    if (!readonly[r])
        return NULL;
    for (const struct ri_ctl_cmd *k = cmds; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k->fn(arg, NULL, 0, req);
    return NULL;
}

/* One request line; -1 when the client is gone. */
static int handle_line(struct client *c, const char *line, size_t n)
{
    struct ri_ctl *ctl = c->ctl;
    json_error_t je;
    json_t *req = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
    if (!req)
        return send_json(c, ri_ctl_error("not JSON: %s (at character %d)", je.text,
                                          je.position));
    json_t *cmd = json_object_get(req, "cmd");
    json_t *ans;
    if (!json_is_object(req))
        ans = ri_ctl_error("a request is a JSON object {\"cmd\": \"...\", ...}");
    else if (!json_is_string(cmd))
        ans = ri_ctl_error("'cmd' must be a string");
    else if (strcmp(json_string_value(cmd), "subscribe") == 0) {
        c->subscribed = 1;
        ans = json_pack("{s:b, s:s}", "ok", 1, "subscribed", "events");
    } else {
        const struct ri_ctl_cmd *k = ctl->cmds;
        while (k->name && strcmp(k->name, json_string_value(cmd)) != 0)
            k++;
        if (!k->name) {
            char names[400] = "subscribe";
            size_t off = strlen(names);
            for (const struct ri_ctl_cmd *q = ctl->cmds; q->name && off < sizeof names; q++)
                off += (size_t)snprintf(names + off, sizeof names - off, ", %s", q->name);
            ans = ri_ctl_error("unknown command '%.64s' (this %s knows: %s)",
                               json_string_value(cmd), "process", names);
        } else {
            ans = k->fn(ctl->arg, ctl, c->id, req);
            if (!ans) { /* answered later */
                json_decref(req);
                return 0;
            }
        }
    }
    json_decref(req);
    return send_json(c, ans);
}

static void client_read_cb(EV_P_ ev_io *w, int revents)
{
    struct client *c = w->data;
    for (int rounds = 0; rounds < 16; rounds++) {
        if (c->subscribed || c->closing) { /* input is ignored now: read for EOF */
            char junk[4096];
            ssize_t r = recv(c->fd, junk, sizeof junk, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                client_free(c);
                return;
            }
            if (r < 0)
                return;
            continue;
        }
        ssize_t r = recv(c->fd, c->in + c->in_len, RI_CTL_LINE_MAX + 1 - c->in_len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            client_free(c);
            return;
        }
        if (r < 0)
            return;
        size_t scanned = c->in_len;
        c->in_len += (size_t)r;
        size_t start = 0;
        for (size_t i = scanned; i < c->in_len; i++) {
            if (c->in[i] != '\n')
                continue;
            size_t n = i - start;
            if (n && c->in[start + n - 1] == '\r')
                n--;
            if (n && handle_line(c, c->in + start, n) < 0)
                return;
            start = i + 1;
            if (c->subscribed)
                break; /* what follows subscribe is ignored */
        }
        if (c->subscribed) {
            c->in_len = 0;
            continue;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len > RI_CTL_LINE_MAX) {
            char m[100];
            snprintf(m, sizeof m, "request line longer than %u bytes", RI_CTL_LINE_MAX);
            if (send_json(c, ri_ctl_error("%s: closing the connection", m)) < 0)
                return;
            c->closing = 1;
            c->in_len = 0;
            ri_log_rl(&c->ctl->rl_drop, RI_LOG_WARN, "control: dropping client %llu: %s",
                      (unsigned long long)c->id, m);
        }
    }
}

static void client_write_cb(EV_P_ ev_io *w, int revents)
{
    struct client *c = w->data;
    while (c->out_off < c->out_len) {
        ssize_t r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) {
            client_free(c);
            return;
        }
        c->out_off += (size_t)r;
    }
    c->out_off = c->out_len = 0;
    if (c->dropped) { /* caught up: say how many it lost */
        char line[80];
        int n = snprintf(line, sizeof line, "{\"event\":\"dropped\",\"count\":%llu}",
                         (unsigned long long)c->dropped);
        c->dropped = 0;
        out_append(c, line, (size_t)n, RI_CTL_OUT_MAX);
        return;
    }
    ev_io_stop(EV_A_ w);
    if (c->closing)
        client_free(c);
}

static void accept_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_ctl *ctl = w->data;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                ri_log_rl(&ctl->rl_full, RI_LOG_WARN, "control: accept: %s", strerror(errno));
            return;
        }
        struct client *c = ctl->n_clients < RI_CTL_CLIENTS ? calloc(1, sizeof *c) : NULL;
        if (c && !(c->in = malloc(RI_CTL_LINE_MAX + 1))) {
            free(c);
            c = NULL;
        }
        if (!c) {
            ri_log_rl(&ctl->rl_full, RI_LOG_WARN, "control: %u clients at once (at most %u): "
                      "closing a new one", ctl->n_clients, RI_CTL_CLIENTS);
            close(fd);
            continue;
        }
        /* the kernel holds little for a client too (Linux doubles this) */
        int sb = RI_CTL_SOCK_BUF;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
        c->ctl = ctl;
        c->fd = fd;
        c->id = ++ctl->next_id;
        ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
        ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
        c->rio.data = c->wio.data = c;
        c->next = ctl->clients;
        if (ctl->clients)
            ctl->clients->prev = c;
        ctl->clients = c;
        ctl->n_clients++;
        ev_io_start(EV_A_ & c->rio);
    }
}

struct ri_ctl *ri_ctl_open(struct ev_loop *loop, struct ri_event_bus *bus, const char *path,
                           unsigned mode, const struct ri_ctl_cmd *cmds, void *arg, char *err,
                           size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "control_socket %s: path too long", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    struct ri_ctl *ctl = calloc(1, sizeof *ctl);
    if (!ctl || !(ctl->path = strdup(path))) {
        free(ctl);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctl->loop = loop;
    ctl->bus = bus;
    ctl->cmds = cmds;
    ctl->arg = arg;
    ctl->rl_drop = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    ctl->rl_full = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    ctl->rl_slow = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 5);
    ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct stat st;
    /* a socket file left there (a crash; or the process this one takes
     * over from, which leaves a path that is no longer its own alone) is
     * replaced; anything else is not touched */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    mode_t old = umask(0177);
    int rc = ctl->fd < 0 ? -1 : bind(ctl->fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || chmod(path, mode) < 0 || listen(ctl->fd, 16) < 0 || stat(path, &st) < 0) {
        snprintf(err, errlen, "control_socket %s: %s", path, strerror(errno));
        if (ctl->fd >= 0)
            close(ctl->fd);
        free(ctl->path);
        free(ctl);
        return NULL;
    }
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    ctl->sub = ri_event_subscribe(bus, RI_EVT_ALL, on_event, ctl);
    ev_io_init(&ctl->lio, accept_cb, ctl->fd, EV_READ);
    ctl->lio.data = ctl;
    ev_io_start(loop, &ctl->lio);
    return ctl;
}

void ri_ctl_close(struct ri_ctl *ctl)
{
    if (!ctl)
        return;
    /* answers given last (a reload abandoned by a stop) go out if the
     * socket takes them now; nothing waits for a client that does not read */
    for (struct client *c = ctl->clients; c; c = c->next)
        while (c->out_off < c->out_len) {
            ssize_t r = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r <= 0 && !(r < 0 && errno == EINTR))
                break;
            if (r > 0)
                c->out_off += (size_t)r;
        }
    while (ctl->clients)
        client_free(ctl->clients);
    ev_io_stop(ctl->loop, &ctl->lio);
    close(ctl->fd);
    struct stat st;
    if (stat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
        unlink(ctl->path); /* not a newer process's socket at the same path */
    if (ctl->sub)
        ri_event_unsubscribe(ctl->bus, ctl->sub);
    free(ctl->path);
    free(ctl);
}
