/* listen_tcp -- the edge's public TCP listeners. `apply` makes the open set
 * equal to the ports the hub assigned: new ports are opened, removed ports
 * closed, kept ports (and every connection already accepted) untouched.
 * Accepted sockets are handed to the core, which opens a stream for each.
 *
 * A port is taken over, not re-bound, when the core holds its socket from
 * an earlier instance or process (api->listen_fd): a reload or an upgrade
 * never closes a public port. Otherwise the port is bound without
 * SO_REUSEPORT, so a second process on the same address and port fails with
 * "Address already in use" instead of silently sharing its clients.
 *
 * Settings: backlog (int, default 1024), v6only (bool, default false: a "::"
 * bind also accepts IPv4 clients as IPv4-mapped addresses).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ri_plugin.h"

struct listener {
    struct listener *next;
    struct inst *in;
    uint16_t port;
    int fd;
    ri_io *w;
    ri_timer *pause;
};

struct inst {
    const struct ri_core_api *api;
    ri_inst *self;
    struct listener *list;
    char bind[64];
    int backlog, v6only;
    uint64_t last_err_log_ns;
};

static ri_create_f lt_create;
static ri_destroy_f lt_destroy;
static ri_listen_apply_f lt_apply;

static void on_accept(void *arg, int fd, int revents)
{
    struct listener *l = arg;
    struct inst *in = l->in;
    for (int i = 0; i < 64; i++) {
        int c = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            uint64_t now = in->api->now_ns();
            if (now - in->last_err_log_ns > 1000000000ull) {
                in->api->log(in->self, RI_LOG_WARN, "accept on port %u: %s%s", l->port,
                             strerror(errno), l->pause ? ": pausing this port for 1 s" : "");
                in->last_err_log_ns = now;
            }
            /* out of descriptors: the socket stays readable, so pause it
             * rather than spin; clients wait in the backlog meanwhile */
            if (l->pause) {
                in->api->io_stop(l->w);
                in->api->timer_start(l->pause, 1.0, 0);
            }
            return;
        }
        in->api->accept_conn(in->self, c, l->port);
    }
}

static int lt_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                     size_t errlen)
{
    struct inst *in = state;
    in->api = api;
    in->self = self;
    int64_t v = 1024;
    int rc = api->cfg_int(self, "backlog", &v);
    if (rc == 0 && (v < 1 || v > 65535))
        return snprintf(err, errlen, "backlog must be 1-65535"), -1;
    if (rc == -EINVAL)
        return snprintf(err, errlen, "backlog must be an integer"), -1;
    in->backlog = (int)v;
    int b = 0;
    rc = api->cfg_bool(self, "v6only", &b);
    if (rc == -EINVAL)
        return snprintf(err, errlen, "v6only must be true or false"), -1;
    in->v6only = b;
    return 0;
}

static void resume(void *arg)
{
    struct listener *l = arg;
    l->in->api->io_start(l->w);
}

/* Before a listening socket closes, take what is already queued on it: the
 * kernel would reset those clients. They become streams like any other (or
 * are refused by the core if the tunnel is down). */
static void drain_queue(struct inst *in, struct listener *l)
{
    for (int i = 0; i < 4096; i++) {
        int c = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        in->api->accept_conn(in->self, c, l->port);
    }
}

/* drain: serve what waits in the queue (a port that goes away); not when
 * the socket lives on in another process, whose clients those are */
static void close_listener(struct inst *in, struct listener *l, int drain)
{
    if (drain)
        drain_queue(in, l);
    in->api->timer_free(l->pause);
    in->api->io_free(l->w);
    close(l->fd);
    free(l);
}

static void lt_destroy(void *state)
{
    struct inst *in = state;
    while (in->list) {
        struct listener *l = in->list;
        in->list = l->next;
        close_listener(in, l, 1);
    }
}

/* 0 opened, 1 taken over (a socket handed on by the previous instance or
 * process: the port never closed), -1 failed with why */
static int open_port(struct inst *in, const char *bind_addr, uint16_t port, char *why,
                     size_t wl)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, bind_addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, bind_addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        sl = sizeof *s6;
    } else {
        snprintf(why, wl, "bad bind address %s", bind_addr);
        return -1;
    }
    int fd = in->api->listen_fd(in->self, bind_addr, port);
    int taken = fd >= 0;
    if (fd < 0) {
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, wl, "%s", strerror(errno));
            return -1;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &in->v6only, sizeof in->v6only);
        if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, in->backlog) < 0) {
            snprintf(why, wl, "%s", strerror(errno));
            close(fd);
            return -1;
        }
    }
    struct listener *l = calloc(1, sizeof *l);
    if (!l || !(l->w = in->api->io_new(in->self, fd, RI_IO_READ, on_accept, l))) {
        free(l);
        close(fd);
        snprintf(why, wl, "out of memory");
        return -1;
    }
    l->pause = in->api->timer_new(in->self, resume, l);
    l->in = in;
    l->port = port;
    l->fd = fd;
    l->next = in->list;
    in->list = l;
    in->api->io_start(l->w);
    return taken;
}

static int lt_apply(void *state, const struct ri_listen_set *set, char *err, size_t errlen)
{
    struct inst *in = state;
    const char *bind_addr = set->bind_address ? set->bind_address : "0.0.0.0";
    /* a new bind address reopens everything */
    int rebind = strcmp(in->bind, bind_addr) != 0;
    int handed = set->size >= offsetof(struct ri_listen_set, flags) + sizeof set->flags &&
                 (set->flags & RI_LISTEN_HANDED_OVER);
    snprintf(in->bind, sizeof in->bind, "%s", bind_addr);
    struct listener **pp = &in->list;
    while (*pp) {
        struct listener *l = *pp;
        int keep = !rebind;
        if (keep) {
            keep = 0;
            for (size_t i = 0; i < set->n_ports; i++)
                if (set->ports[i] == l->port)
                    keep = 1;
        }
        if (keep) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        in->api->log(in->self, RI_LOG_INFO, handed ? "handed port %u over" : "closed port %u",
                     l->port);
        close_listener(in, l, !handed);
    }
    int failed = 0;
    size_t off = 0;
    if (errlen)
        err[0] = '\0';
    for (size_t i = 0; i < set->n_ports; i++) {
        int have = 0;
        for (struct listener *l = in->list; l; l = l->next)
            if (l->port == set->ports[i])
                have = 1;
        if (have)
            continue;
        char why[128];
        int rc = open_port(in, bind_addr, set->ports[i], why, sizeof why);
        if (rc < 0) {
            failed++;
            if (off < errlen)
                off += (size_t)snprintf(err + off, errlen - off, "%scannot listen on %s port %u: %s",
                                        failed > 1 ? "; " : "", bind_addr, set->ports[i], why);
        } else {
            /* a handed-over port stayed open all along: no news */
            in->api->log(in->self, rc ? RI_LOG_DEBUG : RI_LOG_INFO, "%s on %s port %u",
                         rc ? "kept listening (handed over)" : "listening", bind_addr,
                         set->ports[i]);
        }
    }
    return failed ? -1 : 0;
}

static void lt_fds(void *state, ri_listen_each_f *each, void *arg)
{
    struct inst *in = state;
    for (struct listener *l = in->list; l; l = l->next)
        each(arg, in->bind, l->port, l->fd);
}

static const struct ri_listener_ops ops = {.size = sizeof ops, .apply = lt_apply, .fds = lt_fds};
static const char *const keys[] = {"backlog", "v6only", NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_LISTENER,
    .name = "listen_tcp",
    .description = "TCP listeners on the ports the hub assigns (IPv4/IPv6), hot-reloadable",
    .ops = &ops,
    .inst_size = sizeof(struct inst),
    .create = lt_create,
    .destroy = lt_destroy,
    .keys = keys,
};
