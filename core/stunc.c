/* stunc.c -- the edge's STUN client (see stunc.h): the I/O around stun.c. */
#include "stunc.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "netutil.h"
#include "ratelimit.h"
#include "resolve.h"
#include "stun.h"
#include "worker.h"

struct ri_stunc {
    struct ev_loop *loop;
    struct ri_resolver *res;
    struct ri_stun_counters *ctr;
    ri_stunc_cb *cb;
    void *arg;
    char *servers[RI_STUNC_SERVERS_MAX];
    size_t n;
    uint32_t interval; /* 0: stopped */
    size_t idx;        /* the server being asked in this round */
    int tries;         /* transmissions to it so far */
    int fd;
    ev_io rio;
    ev_timer timer;    /* the answer's deadline, or the next round */
    int waiting;       /* timer is the next round (not a deadline) */
    double backoff;
    double rto;
    uint8_t txid[RI_STUN_TXID];
    struct ri_resolve_req *rq;
    struct ri_ratelimit rl; /* what servers (or whoever spoofs them) make us log */
};

static void try_server(struct ri_stunc *s);

static void close_sock(struct ri_stunc *s)
{
    ev_io_stop(s->loop, &s->rio);
    ev_timer_stop(s->loop, &s->timer);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    ri_resolve_cancel(s->rq);
    s->rq = NULL;
}

static void arm(struct ri_stunc *s, double secs, int waiting)
{
    ev_timer_stop(s->loop, &s->timer);
    ev_timer_set(&s->timer, secs, 0);
    ev_timer_start(s->loop, &s->timer);
    s->waiting = waiting;
}

static void start_round(struct ri_stunc *s)
{
    close_sock(s);
    s->idx = 0;
    try_server(s);
}

static void round_failed(struct ri_stunc *s)
{
    double cap = s->interval < RI_STUNC_BACKOFF_MAX ? s->interval : RI_STUNC_BACKOFF_MAX;
    if (s->backoff < RI_STUNC_BACKOFF_MIN)
        s->backoff = RI_STUNC_BACKOFF_MIN;
    if (s->backoff > cap)
        s->backoff = cap;
    log_warn("edge: STUN: no answer from %s%s; retrying in %.0f s",
             s->n == 1 ? "" : "any of ", s->n == 1 ? s->servers[0] : "the STUN servers",
             s->backoff);
    arm(s, s->backoff, 1);
    s->backoff *= 2;
}

static void next_server(struct ri_stunc *s)
{
    close_sock(s);
    s->idx++;
    try_server(s);
}

static void send_request(struct ri_stunc *s)
{
    uint8_t req[RI_STUN_HDR];
    if (s->tries == 0 && gnutls_rnd(GNUTLS_RND_NONCE, s->txid, sizeof s->txid) < 0) {
        log_warn("edge: STUN: no random transaction id");
        s->ctr->errors++;
        next_server(s);
        return;
    }
    /* a retransmission repeats the transaction (RFC 5389 7.2.1) */
    ri_stun_request(req, s->txid);
    s->ctr->requests++;
    if (send(s->fd, req, sizeof req, 0) < 0 && errno != EAGAIN && errno != EINTR) {
        log_info("edge: STUN server %s: %s", s->servers[s->idx], strerror(errno));
        s->ctr->errors++;
        next_server(s);
        return;
    }
    s->rto = s->tries ? s->rto * 2 : RI_STUNC_RTO;
    s->tries++;
    arm(s, s->rto, 0);
}

static void timer_cb(EV_P_ ev_timer *w, int revents)
{
    struct ri_stunc *s = w->data;
    if (s->waiting) {
        start_round(s);
    } else if (s->tries < RI_STUNC_TRIES) {
        log_debug("edge: STUN server %s: no answer in %.1f s: asking again", s->servers[s->idx],
                  s->rto);
        send_request(s);
    } else {
        log_info("edge: STUN server %s: no answer after %d tries", s->servers[s->idx],
                 s->tries);
        s->ctr->timeouts++;
        next_server(s);
    }
}

static void read_cb(EV_P_ ev_io *w, int revents)
{
    struct ri_stunc *s = w->data;
    uint8_t buf[RI_STUN_MAX];
    for (int i = 0; i < 16; i++) {
        ssize_t r = recv(s->fd, buf, sizeof buf, MSG_TRUNC);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            /* ICMP port unreachable (ECONNREFUSED) and the like: the next server */
            log_info("edge: STUN server %s: %s", s->servers[s->idx], strerror(errno));
            s->ctr->errors++;
            next_server(s);
            return;
        }
        struct sockaddr_storage a;
        enum ri_stun_src src;
        char err[128];
        if ((size_t)r > sizeof buf) {
            s->ctr->malformed++;
            ri_log_rl(&s->rl, RI_LOG_WARN, "edge: STUN server %s: bad response: %zd bytes",
                      s->servers[s->idx], r);
            continue;
        }
        if (ri_stun_parse(buf, (size_t)r, s->txid, &a, &src, err, sizeof err) < 0) {
            /* not fatal: the server's real answer may still come */
            s->ctr->malformed++;
            ri_log_rl(&s->rl, RI_LOG_WARN, "edge: STUN server %s: bad response: %s",
                      s->servers[s->idx], err);
            continue;
        }
        char server[300];
        snprintf(server, sizeof server, "%s", s->servers[s->idx]);
        close_sock(s);
        s->ctr->ok++;
        s->backoff = 0;
        log_debug("edge: STUN server %s: mapped address from %s", server,
                  src == RI_STUN_FROM_XOR ? "XOR-MAPPED-ADDRESS" : "MAPPED-ADDRESS");
        arm(s, s->interval, 1);
        s->cb(s->arg, (struct sockaddr *)&a, server);
        return;
    }
}

static void resolved(void *arg, const struct sockaddr_storage *a, const socklen_t *l, int n,
                     const char *err)
{
    struct ri_stunc *s = arg;
    s->rq = NULL;
    if (n <= 0) {
        log_info("edge: STUN server %s: %s", s->servers[s->idx], err);
        s->ctr->errors++;
        next_server(s);
        return;
    }
    s->fd = socket(a[0].ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* connected: the kernel passes us only datagrams from that address */
    if (s->fd < 0 || connect(s->fd, (const struct sockaddr *)&a[0], l[0]) < 0) {
        log_info("edge: STUN server %s: %s", s->servers[s->idx], strerror(errno));
        s->ctr->errors++;
        next_server(s);
        return;
    }
    ev_io_set(&s->rio, s->fd, EV_READ);
    ev_io_start(s->loop, &s->rio);
    s->tries = 0;
    send_request(s);
}

static void try_server(struct ri_stunc *s)
{
    if (s->idx >= s->n) {
        round_failed(s);
        return;
    }
    char host[256];
    int port;
    if (ri_parse_hostport(s->servers[s->idx], host, sizeof host, &port) < 0 ||
        !(s->rq = ri_resolve_async(s->res, host, port, resolved, s))) {
        log_info("edge: STUN server %s: cannot resolve it", s->servers[s->idx]);
        s->ctr->errors++;
        s->idx++;
        try_server(s);
    }
}

struct ri_stunc *ri_stunc_new(struct ev_loop *loop, struct ri_resolver *res,
                              struct ri_stun_counters *ctr, ri_stunc_cb *cb, void *arg)
{
    struct ri_stunc *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->res = res;
    s->ctr = ctr;
    s->cb = cb;
    s->arg = arg;
    s->fd = -1;
    ev_init(&s->rio, read_cb);
    ev_init(&s->timer, timer_cb);
    s->rio.data = s->timer.data = s;
    s->rl = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 3);
    return s;
}

static void clear_servers(struct ri_stunc *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->servers[i]);
    s->n = 0;
}

void ri_stunc_set(struct ri_stunc *s, const char *const *servers, size_t n, uint32_t interval)
{
    if (!s)
        return;
    int same = n == s->n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(servers[i], s->servers[i]) == 0;
    uint32_t was = s->interval;
    if (!same) {
        clear_servers(s);
        for (size_t i = 0; i < n && i < RI_STUNC_SERVERS_MAX; i++)
            if ((s->servers[s->n] = strdup(servers[i])))
                s->n++;
    }
    s->interval = interval;
    if (!interval || !s->n) {
        close_sock(s);
        s->interval = 0;
        return;
    }
    if (!same || !was) {
        s->backoff = 0;
        start_round(s);
    } else if (interval != was && s->waiting && s->backoff == 0) {
        arm(s, interval, 1); /* the next round after the new interval */
    }
}

void ri_stunc_free(struct ri_stunc *s)
{
    if (!s)
        return;
    close_sock(s);
    clear_servers(s);
    free(s);
}
