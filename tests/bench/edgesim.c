/* edgesim.c -- many simulated edges in one process, for the scale tests.
 *
 *   ri-edgesim --hub HOST:PORT --edges N --seed SEED --plugin auth_secret.so
 *              --listen ADDR:PORT [--prefix sim-] [--rounds K]
 *              [--reconnect-min S] [--reconnect-max S] [--log-level warn]
 *
 * Edge i is "<prefix>%04d" with the secret hex(HMAC-SHA-256(SEED, id))
 * (tests/bench/scale.py writes the hub's config with the same). Each edge
 * is a real ri tunnel: core/tunnel.c with TLS 1.3 (tlsio.c), the HELLO /
 * AUTH / WELCOME exchange through the real auth plugin (handshake.c), the
 * CONFIG, flow control, keepalive -- the code ri-core's edge runs, in one
 * libev loop holding N connections. Only the public ports are simulated:
 * when an edge is ready and has its CONFIG, a client connects to a
 * listener of this process (--listen; every edge must be assigned its port,
 * since OPEN carries the address the client reached) and is handed to the
 * edge's tunnel (ri_mux_open_local, as the real edge's listener does), so
 * the hub opens a stream to target_host:<that port>.
 * The client sends one line and expects it back (an echo target behind
 * the hub), then closes. An edge "carries traffic" once that echo came
 * back on its current tunnel.
 *
 * A lost tunnel is reconnected with the real edge's backoff (core/edge.c
 * schedule_retry): from reconnect_min (0.25 s) doubling to reconnect_max
 * (1.5 s), each delay jittered to 75-125 %; 30 s after a refusal that
 * repeating will not fix; reset by a successful handshake.
 *
 * Output, one JSON object per line on stdout:
 *   {"event":"status", ...}   once a second while not every edge carries traffic
 *   {"event":"all_up", "round":R, ...}  every edge carries traffic again:
 *       the per-edge distribution (p50/p90/p99/max, seconds) of the time
 *       from the round's start for the edge (start of the program, or the
 *       moment it lost its tunnel) to its tunnel being ready ("ready") and
 *       to its echo ("traffic"), over the edges that went down this round
 *   {"event":"summary", ...}  at exit (SIGTERM/SIGINT, or after K rounds)
 * Times are CLOCK_MONOTONIC seconds ("mono"), the clock of Python's
 * time.monotonic(), so the caller can relate them to its own events. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "netutil.h"
#include "plugin.h"
#include "tls.h"
#include "tunnel.h"
#include "worker.h"

struct sim {
    int idx;
    char id[64];
    char secret[65];
    struct ri_tunnel *t;
    int cfd;              /* TCP connect to the hub in progress */
    ev_io cio;
    ev_timer retry, ctimer;
    double backoff;
    int ready, ok;        /* tunnel ready; echo done on the current tunnel */
    int down;             /* counted in this round (lost its tunnel or never up) */
    uint16_t port;        /* first assigned port; 0 before CONFIG */
    int sfd;              /* the simulated client, -1 when none */
    ev_io sio;
    char line[96];
    size_t llen, sent, got;
    uint64_t t0, t_ready, t_ok; /* this round's start, ready, echo (ns) */
};

static struct ev_loop *loop;
static struct ri_worker W;
static struct ri_tls_creds *creds;
static struct ri_inst *auth;
static struct sim *E;
static int N;
static struct sockaddr_storage hub_sa;
static socklen_t hub_sl;
static char hub_text[300];
static int lfd = -1;
static struct sockaddr_in laddr;
static ev_io lio;
static int *by_port; /* client's local port -> edge index + 1 */
static double rmin = 0.25, rmax = 1.5;
static int rounds_max;
static int round_no;
static int n_ready, n_ok;
static uint64_t start_ns, round_start_ns;
static uint64_t attempts, handshakes, streams_ok, streams_failed, refusals;
static ev_timer status_t;
static ev_signal sig_term, sig_int;

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static void start_connect(struct sim *e);
static void start_stream(struct sim *e);

/* ---- reconnecting, as core/edge.c does ------------------------------------ */
#define REFUSED_BACKOFF_MAX 30.0
static int refused_for_good(unsigned code)
{
    return code == RI_E_VERSION || code == RI_E_AUTH || code == RI_E_UNKNOWN_EDGE ||
           code == RI_E_REMOVED || code == RI_E_AUTH_METHOD;
}

static void schedule_retry(struct sim *e, int refused)
{
    double max = refused && rmax < REFUSED_BACKOFF_MAX ? REFUSED_BACKOFF_MAX : rmax;
    if (e->backoff < rmin)
        e->backoff = rmin;
    uint32_t r = 0;
    ri_core_api.random(&r, sizeof r);
    double delay = e->backoff * (0.75 + 0.5 * (r / 4294967296.0));
    if (delay > max)
        delay = max * (0.75 + 0.25 * (r / 4294967296.0));
    ev_timer_stop(loop, &e->retry);
    ev_timer_set(&e->retry, delay, 0);
    ev_timer_start(loop, &e->retry);
    e->backoff *= 2;
    if (e->backoff > max)
        e->backoff = max;
}

/* ---- the simulated client of one edge -------------------------------------- */
static void stop_stream(struct sim *e)
{
    if (e->sfd < 0)
        return;
    ev_io_stop(loop, &e->sio);
    close(e->sfd);
    e->sfd = -1;
}

static void stream_failed(struct sim *e, const char *why)
{
    streams_failed++;
    log_debug("%s: stream failed: %s", e->id, why);
    stop_stream(e);
    /* try again on the same tunnel a little later */
    if (e->ready && e->port) {
        ev_timer_stop(loop, &e->retry);
        ev_timer_set(&e->retry, 0.5, 0);
        ev_timer_start(loop, &e->retry);
    }
}

static void print_round(void);

static void stream_done(struct sim *e)
{
    stop_stream(e);
    streams_ok++;
    e->ok = 1;
    e->t_ok = ri_now_ns();
    n_ok++;
    if (n_ok == N)
        print_round();
}

static void sio_cb(EV_P_ ev_io *w, int revents)
{
    struct sim *e = w->data;
    if (e->sent < e->llen) {
        ssize_t n = send(e->sfd, e->line + e->sent, e->llen - e->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return stream_failed(e, strerror(errno));
        if (n > 0)
            e->sent += (size_t)n;
        if (e->sent == e->llen) {
            ev_io_stop(loop, &e->sio);
            ev_io_set(&e->sio, e->sfd, EV_READ);
            ev_io_start(loop, &e->sio);
        }
        return;
    }
    char buf[128];
    ssize_t n = recv(e->sfd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        return stream_failed(e, n == 0 ? "closed before the echo" : strerror(errno));
    if (e->got + (size_t)n > e->llen || memcmp(buf, e->line + e->got, (size_t)n) != 0)
        return stream_failed(e, "the echo differs");
    e->got += (size_t)n;
    if (e->got == e->llen)
        stream_done(e);
}

static void start_stream(struct sim *e)
{
    if (e->sfd >= 0 || e->ok || !e->ready || !e->port)
        return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return stream_failed(e, strerror(errno));
    if (connect(fd, (struct sockaddr *)&laddr, sizeof laddr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return stream_failed(e, strerror(errno));
    }
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    by_port[ntohs(me.sin_port)] = e->idx + 1;
    e->sfd = fd;
    e->llen = (size_t)snprintf(e->line, sizeof e->line, "%s round %d\n", e->id, round_no);
    e->sent = e->got = 0;
    ev_io_init(&e->sio, sio_cb, fd, EV_WRITE);
    e->sio.data = e;
    ev_io_start(loop, &e->sio);
}

/* The client reached our listener: hand it to its edge's tunnel as a
 * client of the edge's port. */
static void lio_cb(EV_P_ ev_io *w, int revents)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int k = by_port[ntohs(peer.sin_port)];
        by_port[ntohs(peer.sin_port)] = 0;
        struct sim *e = k ? &E[k - 1] : NULL;
        if (!e || !e->t || !e->ready || e->t->state != RI_T_READY) {
            ri_close_abort(fd);
            continue;
        }
        ri_mux_open_local(&e->t->mux, fd, e->port);
    }
}

/* ---- tunnel hooks ----------------------------------------------------------- */
static void h_ready(struct ri_tunnel *t)
{
    struct sim *e = t->owner;
    e->ready = 1;
    e->backoff = 0;
    e->t_ready = ri_now_ns();
    n_ready++;
    handshakes++;
}

static void h_config(struct ri_tunnel *t, const struct ri_config_msg *m)
{
    struct sim *e = t->owner;
    e->port = m->n_ports ? m->ports[0] : 0;
    start_stream(e);
}

static void h_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    struct sim *e = t->owner;
    if (t != e->t)
        return;
    e->t = NULL;
    e->port = 0;
    stop_stream(e);
    if (e->ready)
        n_ready--;
    e->ready = 0;
    if (e->ok) {
        n_ok--;
        e->ok = 0;
    }
    if (!e->down) {
        e->down = 1;
        e->t0 = ri_now_ns();
        if (!round_start_ns)
            round_start_ns = e->t0;
    }
    if (!t->was_ready && code != RI_E_NONE && refused_for_good(code))
        refusals++;
    log_debug("%s: tunnel closed: %s", e->id, why ? why : "");
    schedule_retry(e, refused_for_good(code));
}

static const struct ri_tunnel_hooks hooks = {
    .ready = h_ready,
    .config = h_config,
    .closed = h_closed,
};

/* ---- connecting ------------------------------------------------------------ */
static void cancel_connect(struct sim *e)
{
    ev_io_stop(loop, &e->cio);
    ev_timer_stop(loop, &e->ctimer);
    if (e->cfd >= 0)
        close(e->cfd);
    e->cfd = -1;
}

static void connect_failed(struct sim *e, const char *why)
{
    log_debug("%s: cannot reach the hub: %s", e->id, why);
    cancel_connect(e);
    if (!e->down) {
        e->down = 1;
        e->t0 = ri_now_ns();
    }
    schedule_retry(e, 0);
}

static void tcp_connected(struct sim *e)
{
    ev_io_stop(loop, &e->cio);
    ev_timer_stop(loop, &e->ctimer);
    int fd = e->cfd;
    e->cfd = -1;
    struct ri_tunnel_params p = {
        .role = RI_ROLE_EDGE, .fd = fd, .peer = hub_text, .w = &W, .api = &ri_core_api,
        .creds = creds, .auth = auth, .max_streams = 64, .ping_interval = 15,
        .ping_timeout = 45, .handshake_timeout = 10.0, .edge_id = e->id, .secret = e->secret,
        .hooks = &hooks, .owner = e};
    e->t = ri_tunnel_new(&p);
    if (!e->t)
        schedule_retry(e, 0);
}

static void cio_cb(EV_P_ ev_io *w, int revents)
{
    struct sim *e = w->data;
    int err = ri_connect_error(e->cfd);
    if (err)
        connect_failed(e, strerror(err));
    else
        tcp_connected(e);
}

static void ctimer_cb(EV_P_ ev_timer *w, int revents) { connect_failed(w->data, "timed out"); }

static void start_connect(struct sim *e)
{
    attempts++;
    e->cfd = socket(hub_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (e->cfd < 0)
        return connect_failed(e, strerror(errno));
    if (connect(e->cfd, (struct sockaddr *)&hub_sa, hub_sl) == 0)
        return tcp_connected(e);
    if (errno != EINPROGRESS)
        return connect_failed(e, strerror(errno));
    ev_io_set(&e->cio, e->cfd, EV_WRITE);
    ev_io_start(loop, &e->cio);
    ev_timer_set(&e->ctimer, 10.0, 0);
    ev_timer_start(loop, &e->ctimer);
}

static void retry_cb(EV_P_ ev_timer *w, int revents)
{
    struct sim *e = w->data;
    if (e->ready) /* a stream to retry on a live tunnel */
        start_stream(e);
    else if (!e->t && e->cfd < 0)
        start_connect(e);
}

/* ---- reports ----------------------------------------------------------------- */
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void dist(const char *name, double *v, int n, int last)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
#define PCT(p) (n ? v[(int)ceil((p) / 100.0 * n) - 1 < 0 ? 0 : (int)ceil((p) / 100.0 * n) - 1] : 0)
    printf("\"%s\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f}%s", name,
           PCT(50), PCT(90), PCT(99), n ? v[n - 1] : 0.0, last ? "" : ", ");
#undef PCT
}

static void print_round(void)
{
    uint64_t now = ri_now_ns();
    double *rd = calloc((size_t)N, sizeof *rd), *ok = calloc((size_t)N, sizeof *ok);
    int n = 0;
    uint64_t first = 0, last_ok = 0;
    for (int i = 0; i < N; i++) {
        struct sim *e = &E[i];
        if (!e->down)
            continue;
        rd[n] = secs(e->t_ready - e->t0);
        ok[n] = secs(e->t_ok - e->t0);
        n++;
        if (!first || e->t0 < first)
            first = e->t0;
        if (e->t_ok > last_ok)
            last_ok = e->t_ok;
        e->down = 0;
    }
    if (!first)
        first = start_ns;
    printf("{\"event\": \"all_up\", \"round\": %d, \"edges\": %d, \"connected\": %d, "
           "\"went_down\": %d, \"mono\": %.6f, \"first_down_mono\": %.6f, "
           "\"last_traffic_mono\": %.6f, \"all_up_s\": %.3f, \"connect_attempts\": %llu, "
           "\"streams_ok\": %llu, \"streams_failed\": %llu, ",
           round_no, N, n_ready, n, secs(now), secs(first), secs(last_ok),
           secs(last_ok - first), (unsigned long long)attempts, (unsigned long long)streams_ok,
           (unsigned long long)streams_failed);
    dist("ready_s", rd, n, 0);
    dist("traffic_s", ok, n, 1);
    printf("}\n");
    fflush(stdout);
    free(rd);
    free(ok);
    round_no++;
    round_start_ns = 0;
    if (rounds_max && round_no >= rounds_max)
        ev_break(loop, EVBREAK_ALL);
}

static void status_cb(EV_P_ ev_timer *w, int revents)
{
    if (n_ok == N)
        return;
    printf("{\"event\": \"status\", \"mono\": %.6f, \"connected\": %d, \"traffic\": %d, "
           "\"connect_attempts\": %llu, \"streams_ok\": %llu, \"streams_failed\": %llu}\n",
           secs(ri_now_ns()), n_ready, n_ok, (unsigned long long)attempts,
           (unsigned long long)streams_ok, (unsigned long long)streams_failed);
    fflush(stdout);
}

static void sig_cb(EV_P_ ev_signal *w, int revents) { ev_break(loop, EVBREAK_ALL); }

static void usage(void)
{
    fprintf(stderr, "usage: ri-edgesim --hub HOST:PORT --edges N --seed SEED --plugin "
                    "auth_secret.so --listen ADDR:PORT [--prefix sim-] [--rounds K] [--reconnect-min S] "
                    "[--reconnect-max S] [--log-level LEVEL]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *hub = NULL, *seed = NULL, *plugin = NULL, *prefix = "sim-", *listen_at = NULL;
    static const struct option opts[] = {
        {"hub", required_argument, 0, 'h'},           {"edges", required_argument, 0, 'n'},
        {"seed", required_argument, 0, 's'},          {"plugin", required_argument, 0, 'p'},
        {"prefix", required_argument, 0, 'x'},        {"rounds", required_argument, 0, 'r'},
        {"reconnect-min", required_argument, 0, 'a'}, {"reconnect-max", required_argument, 0, 'b'},
        {"log-level", required_argument, 0, 'l'},     {"listen", required_argument, 0, 'L'},
        {0, 0, 0, 0}};
    int o;
    ri_log_level = RI_LOG_WARN;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': hub = optarg; break;
        case 'n': N = atoi(optarg); break;
        case 's': seed = optarg; break;
        case 'p': plugin = optarg; break;
        case 'x': prefix = optarg; break;
        case 'r': rounds_max = atoi(optarg); break;
        case 'a': rmin = atof(optarg); break;
        case 'b': rmax = atof(optarg); break;
        case 'L': listen_at = optarg; break;
        case 'l':
            if ((ri_log_level = ri_log_parse_level(optarg)) < 0)
                usage();
            break;
        default: usage();
        }
    }
    if (!hub || !seed || !plugin || !listen_at || N <= 0 || N > 100000 || strlen(prefix) > 40)
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char err[512] = "", host[256];
    int port;
    if (ri_parse_hostport(hub, host, sizeof host, &port) < 0 ||
        ri_resolve(host, port, &hub_sa, &hub_sl, err, sizeof err) < 0) {
        fprintf(stderr, "ri-edgesim: bad hub address %s %s\n", hub, err);
        return 2;
    }
    snprintf(hub_text, sizeof hub_text, "%s", hub);
    struct ri_module *mod;
    if (ri_tls_init() < 0 || !(mod = ri_module_open(plugin, NULL, err, sizeof err)) ||
        !(auth = ri_inst_create(mod, NULL, NULL, RI_ROLE_EDGE, &ri_core_api, err, sizeof err)) ||
        !(creds = ri_tls_client_creds(NULL, err, sizeof err))) {
        fprintf(stderr, "ri-edgesim: %s\n", err);
        return 2;
    }
    loop = ev_default_loop(EVFLAG_AUTO);
    ri_worker_init(&W, loop, 0, NULL);

    /* the listener the simulated clients reach the edges through */
    struct sockaddr_storage ls;
    socklen_t ll;
    if (ri_parse_hostport(listen_at, host, sizeof host, &port) < 0 ||
        ri_resolve(host, port, &ls, &ll, err, sizeof err) < 0 || ls.ss_family != AF_INET) {
        fprintf(stderr, "ri-edgesim: bad listen address %s %s\n", listen_at, err);
        return 2;
    }
    memcpy(&laddr, &ls, sizeof laddr);
    int one = 1;
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&laddr, sizeof laddr) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "ri-edgesim: listen on %s: %s\n", listen_at, strerror(errno));
        return 2;
    }
    ev_io_init(&lio, lio_cb, lfd, EV_READ);
    ev_io_start(loop, &lio);
    by_port = calloc(65536, sizeof *by_port);

    E = calloc((size_t)N, sizeof *E);
    if (!E || !by_port)
        return 2;
    start_ns = ri_now_ns();
    for (int i = 0; i < N; i++) {
        struct sim *e = &E[i];
        e->idx = i;
        snprintf(e->id, sizeof e->id, "%s%04d", prefix, i);
        uint8_t mac[32];
        if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, seed, strlen(seed), e->id, strlen(e->id),
                             mac) < 0)
            return 2;
        for (int k = 0; k < 32; k++)
            snprintf(e->secret + 2 * k, 3, "%02x", mac[k]);
        e->cfd = e->sfd = -1;
        e->down = 1;
        e->t0 = start_ns;
        ev_init(&e->cio, cio_cb);
        ev_init(&e->retry, retry_cb);
        ev_init(&e->ctimer, ctimer_cb);
        e->cio.data = e->retry.data = e->ctimer.data = e;
        start_connect(e);
    }
    ev_timer_init(&status_t, status_cb, 1.0, 1.0);
    ev_timer_start(loop, &status_t);
    ev_signal_init(&sig_term, sig_cb, SIGTERM);
    ev_signal_init(&sig_int, sig_cb, SIGINT);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    ev_run(loop, 0);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"event\": \"summary\", \"edges\": %d, \"connected\": %d, \"traffic\": %d, "
           "\"rounds\": %d, \"connect_attempts\": %llu, \"handshakes\": %llu, "
           "\"refusals\": %llu, \"streams_ok\": %llu, \"streams_failed\": %llu, "
           "\"cpu_s\": %.3f, \"max_rss_kib\": %ld}\n",
           N, n_ready, n_ok, round_no, (unsigned long long)attempts,
           (unsigned long long)handshakes, (unsigned long long)refusals,
           (unsigned long long)streams_ok, (unsigned long long)streams_failed,
           (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6,
           ru.ru_maxrss);
    fflush(stdout);
    /* the tunnels die with the process: the hub sees the connections end */
    return 0;
}
