/* ri-loadgen -- the benchmark's traffic: targets and clients in one binary.
 *
 * A Python client tops out near 5,000 connections a second and a few Gb/s;
 * this one does not, so the tunnel under test stays the bottleneck.
 *
 *   ri-loadgen serve [--host H] [--echo P] [--source P] [--sink P]
 *       Targets. Each connection may start with a PROXY v1 line (a tunnel's
 *       header injector), which is skipped. echo: sends back every byte.
 *       source: reads one request line "SOURCE <bytes/s>\n" (0 = as fast as
 *       the socket takes it) and sends until the peer goes away. sink:
 *       discards until the peer's FIN, then answers with the byte count as
 *       a decimal line. Prints "READY echo=P source=P sink=P" once
 *       listening (port 0 picks a free one).
 *
 *   ri-loadgen bulk --to H:P --streams N --secs S [--warmup W] [--rate BPS] [--up]
 *       N downloads from a source target (uploads to a sink with --up);
 *       counts only the bytes of the S seconds after W seconds of warm-up
 *       (or up to a SIGTERM, which ends the window early).
 *   ri-loadgen rtt --to H:P --count N [--interval-us U] [--size B]
 *       N round trips of B bytes (64) through an echo target, one every U
 *       microseconds (1000), on one connection.
 *   ri-loadgen conns --to H:P --secs S [--parallel C]
 *       Connect, 64-byte echo, close, as fast as C threads (4) manage.
 *   ri-loadgen hold --to H:P --count N
 *       Opens N connections, one echo on each, prints "HELD N", keeps them
 *       until its standard input closes.
 *
 * Every client prints one line of JSON. Only loopback, the benchmarking
 * range or whatever address the caller names is used: the tool picks none.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 * 1024)
#define MAX_STREAMS 1024

/* die("bad address", a) prints "ri-loadgen: bad address <a>" */
static _Noreturn void die(const char *what, const char *arg)
{
    fprintf(stderr, "ri-loadgen: %s%s%s\n", what, arg ? " " : "", arg ? arg : "");
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_exact(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t k = read(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* "host:port", "[v6]:port" */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *h = host;
    if (h[0] == '[') {
        h++;
        char *e = strchr(h, ']');
        if (!e)
            return -1;
        *e = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static struct sockaddr_storage g_to;
static socklen_t g_tolen;

static int dial(void)
{
    int fd = socket(g_to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&g_to, g_tolen) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* ---- targets ------------------------------------------------------------------ */
enum { ECHO, SOURCE, SINK };

struct conn {
    int fd, mode;
};

/* Reads the first bytes of a connection, drops a PROXY v1 line if there is
 * one, and returns how many bytes of payload are left at the front of buf
 * (-1: the peer went away first). */
static ssize_t skip_proxy(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    for (;;) {
        ssize_t k = read(fd, buf + have, cap - have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return have ? (ssize_t)have : -1;
        have += (size_t)k;
        if (have < 6 && memcmp(buf, "PROXY ", have) == 0)
            continue; /* could still be a header */
        if (memcmp(buf, "PROXY ", have < 6 ? have : 6) != 0)
            return (ssize_t)have;
        char *e = memchr(buf, '\n', have);
        if (!e) {
            if (have >= 108) /* longer than any v1 header: not one */
                return (ssize_t)have;
            continue;
        }
        size_t hl = (size_t)(e - buf) + 1;
        memmove(buf, buf + hl, have - hl);
        return (ssize_t)(have - hl);
    }
}

/* have: payload bytes already read (0: none yet) */
static void serve_echo(int fd, char *buf, ssize_t have)
{
    for (;;) {
        if (have > 0 && write_all(fd, buf, (size_t)have) < 0)
            return;
        have = read(fd, buf, BUF);
        if (have < 0 && errno == EINTR)
            continue;
        if (have <= 0)
            return;
    }
}

static void serve_source(int fd, char *buf, ssize_t have)
{
    /* the request line may come in pieces */
    while (!memchr(buf, '\n', (size_t)have) && have < 64) {
        ssize_t k = read(fd, buf + have, (size_t)(64 - have));
        if (k <= 0)
            return;
        have += k;
    }
    unsigned long long rate = 0;
    if (sscanf(buf, "SOURCE %llu", &rate) != 1)
        return;
    memset(buf, 'x', BUF);
    uint64_t t0 = now_ns(), sent = 0;
    for (;;) {
        size_t n = BUF;
        if (rate) {
            /* at most 1 ms ahead of the rate */
            uint64_t due = (uint64_t)((double)(now_ns() - t0) * (double)rate / 1e9) + rate / 1000;
            if (sent >= due) {
                sleep_ns(500000);
                continue;
            }
            if (due - sent < n)
                n = (size_t)(due - sent);
        }
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        sent += (uint64_t)k;
    }
}

static void serve_sink(int fd, char *buf, ssize_t have)
{
    unsigned long long total = (unsigned long long)have;
    for (;;) {
        ssize_t k = read(fd, buf, BUF);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return;
        if (k == 0)
            break;
        total += (unsigned long long)k;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%llu\n", total);
    write_all(fd, line, (size_t)n);
}

static void *conn_main(void *arg)
{
    struct conn c = *(struct conn *)arg;
    free(arg);
    char *buf = malloc(BUF);
    if (buf) {
        ssize_t have = skip_proxy(c.fd, buf, BUF);
        if (have >= 0 || c.mode == SINK) {
            if (c.mode == ECHO)
                serve_echo(c.fd, buf, have);
            else if (c.mode == SOURCE)
                serve_source(c.fd, buf, have);
            else
                serve_sink(c.fd, buf, have < 0 ? 0 : have);
        }
        free(buf);
    }
    close(c.fd);
    return NULL;
}

static int listen_on(const char *host, int port, int *bound)
{
    char a[300];
    snprintf(a, sizeof a, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_addr(a, &ss, &len) < 0)
        die("bad address", a);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0)
        die("cannot listen on", a);
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                           : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static _Noreturn void cmd_serve(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port[3] = {-1, -1, -1}, fd[3], bound[3] = {0, 0, 0};
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            die("a value is missing after", argv[i]);
        if (!strcmp(argv[i], "--host"))
            host = argv[++i];
        else if (!strcmp(argv[i], "--echo"))
            port[ECHO] = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--source"))
            port[SOURCE] = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sink"))
            port[SINK] = atoi(argv[++i]);
        else
            die("unknown option", argv[i]);
    }
    struct pollfd pf[3];
    int n = 0, mode[3];
    for (int m = 0; m < 3; m++)
        if (port[m] >= 0) {
            fd[m] = listen_on(host, port[m], &bound[m]);
            pf[n] = (struct pollfd){.fd = fd[m], .events = POLLIN};
            mode[n++] = m;
        }
    if (!n)
        die("serve needs --echo, --source or --sink", NULL);
    printf("READY echo=%d source=%d sink=%d\n", bound[ECHO], bound[SOURCE], bound[SINK]);
    fflush(stdout);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 128 * 1024);
    for (;;) {
        if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR)
            die("poll failed", NULL);
        for (int i = 0; i < n; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            int c = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0) {
                if (errno == EMFILE || errno == ENFILE)
                    sleep_ns(10000000);
                continue;
            }
            int one = 1;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            struct conn *cn = malloc(sizeof *cn);
            pthread_t th;
            if (!cn) {
                close(c);
                continue;
            }
            cn->fd = c;
            cn->mode = mode[i];
            if (pthread_create(&th, &at, conn_main, cn) != 0) {
                free(cn);
                close(c);
            }
        }
    }
}

/* ---- bulk --------------------------------------------------------------------- */
struct bulk {
    pthread_t th;
    int fd, up;
    unsigned long long rate;
    _Atomic uint64_t bytes;
    _Atomic int failed;
};

static atomic_int g_stop;
static volatile sig_atomic_t g_term; /* SIGTERM: end the measured window now */

static void on_term(int sig)
{
    (void)sig;
    g_term = 1;
}

static void *bulk_main(void *arg)
{
    struct bulk *b = arg;
    char *buf = malloc(BUF);
    if (!buf) {
        b->failed = 1;
        return NULL;
    }
    if (!b->up) {
        char req[64];
        int n = snprintf(req, sizeof req, "SOURCE %llu\n", b->rate);
        if (write_all(b->fd, req, (size_t)n) < 0)
            b->failed = 1;
        while (!b->failed && !atomic_load(&g_stop)) {
            ssize_t k = read(b->fd, buf, BUF);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                if (!atomic_load(&g_stop))
                    b->failed = 1;
                break;
            }
            atomic_fetch_add_explicit(&b->bytes, (uint64_t)k, memory_order_relaxed);
        }
    } else {
        memset(buf, 'u', BUF);
        uint64_t t0 = now_ns(), sent = 0;
        while (!atomic_load(&g_stop)) {
            size_t n = BUF;
            if (b->rate) {
                uint64_t due = (uint64_t)((double)(now_ns() - t0) * (double)b->rate / 1e9) +
                               b->rate / 1000;
                if (sent >= due) {
                    sleep_ns(500000);
                    continue;
                }
                if (due - sent < n)
                    n = (size_t)(due - sent);
            }
            ssize_t k = write(b->fd, buf, n);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                if (!atomic_load(&g_stop))
                    b->failed = 1;
                break;
            }
            sent += (uint64_t)k;
            atomic_fetch_add_explicit(&b->bytes, (uint64_t)k, memory_order_relaxed);
        }
    }
    free(buf);
    return NULL;
}

static double jain(const double *x, int n)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) {
        s += x[i];
        q += x[i] * x[i];
    }
    return q > 0 ? s * s / (n * q) : 0;
}

static int cmd_bulk(int argc, char **argv)
{
    int streams = 1, up = 0;
    double secs = 5, warmup = 1;
    unsigned long long rate = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--up")) {
            up = 1;
            continue;
        }
        if (i + 1 >= argc)
            die("a value is missing after", argv[i]);
        if (!strcmp(argv[i], "--streams"))
            streams = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--secs"))
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--warmup"))
            warmup = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rate"))
            rate = strtoull(argv[++i], NULL, 10);
        else
            die("unknown option", argv[i]);
    }
    if (streams < 1 || streams > MAX_STREAMS)
        die("--streams must be 1-1024", NULL);
    static struct bulk b[MAX_STREAMS];
    for (int i = 0; i < streams; i++) {
        b[i].fd = dial();
        if (b[i].fd < 0) {
            printf("{\"error\": \"connect: %s\"}\n", strerror(errno));
            return 1;
        }
        b[i].up = up;
        b[i].rate = rate;
        pthread_create(&b[i].th, NULL, bulk_main, &b[i]);
    }
    sleep_ns((uint64_t)(warmup * 1e9));
    uint64_t a[MAX_STREAMS], t0 = now_ns();
    for (int i = 0; i < streams; i++)
        a[i] = atomic_load(&b[i].bytes);
    /* in slices, so SIGTERM ends the window early (a caller that runs
     * other probes beside the bulk stops it when they are done) */
    signal(SIGTERM, on_term);
    for (uint64_t end = t0 + (uint64_t)(secs * 1e9); !g_term && now_ns() < end;)
        sleep_ns(end - now_ns() < 10000000u ? end - now_ns() : 10000000u);
    uint64_t t1 = now_ns();
    double got[MAX_STREAMS], total = 0;
    for (int i = 0; i < streams; i++) {
        got[i] = (double)(atomic_load(&b[i].bytes) - a[i]);
        total += got[i];
    }
    atomic_store(&g_stop, 1);
    unsigned long long received = 0, written = 0;
    int failed = 0, sink_ok = 1;
    for (int i = 0; i < streams; i++) {
        shutdown(b[i].fd, up ? SHUT_WR : SHUT_RDWR);
        pthread_join(b[i].th, NULL);
        failed += b[i].failed;
        written += atomic_load(&b[i].bytes);
        if (up) {
            char line[32] = {0};
            size_t have = 0;
            ssize_t k;
            while (have < sizeof line - 1 && (k = read(b[i].fd, line + have, sizeof line - 1 - have)) > 0)
                have += (size_t)k;
            unsigned long long r;
            if (sscanf(line, "%llu", &r) == 1)
                received += r;
            else
                sink_ok = 0;
        }
        close(b[i].fd);
    }
    double dt = (double)(t1 - t0) / 1e9;
    printf("{\"streams\": %d, \"secs\": %.3f, \"gbps\": %.4f, \"jain\": %.4f, \"failed\": %d",
           streams, dt, total * 8 / dt / 1e9, jain(got, streams), failed);
    /* an upload's figure is what the socket took; the sink confirms that
     * every byte written arrived */
    if (up)
        printf(", \"sink_confirmed\": %s", sink_ok && received == written ? "true" : "false");
    printf(", \"bytes\": [");
    for (int i = 0; i < streams; i++)
        printf("%s%.0f", i ? ", " : "", got[i]);
    printf("]}\n");
    return failed ? 1 : 0;
}

/* ---- rtt ---------------------------------------------------------------------- */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *s, int n, double p)
{
    int k = (int)(p / 100.0 * (n - 1) + 0.5);
    return s[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int cmd_rtt(int argc, char **argv)
{
    int count = 1000, size = 64;
    long interval_us = 1000;
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            die("a value is missing after", argv[i]);
        if (!strcmp(argv[i], "--count"))
            count = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interval-us"))
            interval_us = atol(argv[++i]);
        else if (!strcmp(argv[i], "--size"))
            size = atoi(argv[++i]);
        else
            die("unknown option", argv[i]);
    }
    if (count < 1 || size < 1 || size > 65536)
        die("bad --count or --size", NULL);
    int fd = dial();
    if (fd < 0) {
        printf("{\"error\": \"connect: %s\"}\n", strerror(errno));
        return 1;
    }
    char *msg = malloc((size_t)size), *back = malloc((size_t)size);
    uint64_t *s = malloc(sizeof *s * (size_t)count);
    memset(msg, 'p', (size_t)size);
    /* one round trip to warm the path (and the target's PROXY skip) */
    if (write_all(fd, msg, (size_t)size) < 0 || read_exact(fd, back, (size_t)size) < 0) {
        printf("{\"error\": \"first round trip failed\"}\n");
        return 1;
    }
    uint64_t next = now_ns();
    for (int i = 0; i < count; i++) {
        next += (uint64_t)interval_us * 1000u;
        uint64_t t0 = now_ns();
        if (write_all(fd, msg, (size_t)size) < 0 || read_exact(fd, back, (size_t)size) < 0) {
            printf("{\"error\": \"round trip %d failed\"}\n", i);
            return 1;
        }
        uint64_t t1 = now_ns();
        s[i] = (t1 - t0) / 1000u;
        if (t1 < next)
            sleep_ns(next - t1);
        else
            next = t1;
    }
    close(fd);
    double sum = 0;
    for (int i = 0; i < count; i++)
        sum += (double)s[i];
    qsort(s, (size_t)count, sizeof *s, cmp_u64);
    printf("{\"n\": %d, \"p50_us\": %llu, \"p90_us\": %llu, \"p99_us\": %llu, \"max_us\": %llu, "
           "\"mean_us\": %.1f}\n",
           count, (unsigned long long)pct(s, count, 50), (unsigned long long)pct(s, count, 90),
           (unsigned long long)pct(s, count, 99), (unsigned long long)s[count - 1], sum / count);
    free(msg);
    free(back);
    free(s);
    return 0;
}

/* ---- conns -------------------------------------------------------------------- */
struct cworker {
    pthread_t th;
    uint64_t ok, errors;
    uint64_t until;
};

static void *conns_main(void *arg)
{
    struct cworker *w = arg;
    char msg[64], back[64];
    memset(msg, 'c', sizeof msg);
    while (now_ns() < w->until) {
        int fd = dial();
        if (fd < 0) {
            w->errors++;
            sleep_ns(1000000);
            continue;
        }
        if (write_all(fd, msg, sizeof msg) < 0 || read_exact(fd, back, sizeof back) < 0)
            w->errors++;
        else
            w->ok++;
        close(fd);
    }
    return NULL;
}

static int cmd_conns(int argc, char **argv)
{
    double secs = 3;
    int par = 4;
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            die("a value is missing after", argv[i]);
        if (!strcmp(argv[i], "--secs"))
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--parallel"))
            par = atoi(argv[++i]);
        else
            die("unknown option", argv[i]);
    }
    if (par < 1 || par > 256)
        die("--parallel must be 1-256", NULL);
    struct cworker *w = calloc((size_t)par, sizeof *w);
    uint64_t t0 = now_ns(), until = t0 + (uint64_t)(secs * 1e9);
    for (int i = 0; i < par; i++) {
        w[i].until = until;
        pthread_create(&w[i].th, NULL, conns_main, &w[i]);
    }
    uint64_t ok = 0, err = 0;
    for (int i = 0; i < par; i++) {
        pthread_join(w[i].th, NULL);
        ok += w[i].ok;
        err += w[i].errors;
    }
    double dt = (double)(now_ns() - t0) / 1e9;
    printf("{\"conns\": %llu, \"errors\": %llu, \"per_sec\": %.1f, \"secs\": %.3f}\n",
           (unsigned long long)ok, (unsigned long long)err, (double)ok / dt, dt);
    free(w);
    return 0;
}

/* ---- hold --------------------------------------------------------------------- */
static int cmd_hold(int argc, char **argv)
{
    int count = 100;
    for (int i = 0; i < argc; i++) {
        if (i + 1 >= argc)
            die("a value is missing after", argv[i]);
        if (!strcmp(argv[i], "--count"))
            count = atoi(argv[++i]);
        else
            die("unknown option", argv[i]);
    }
    if (count < 1)
        die("bad --count", NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)count + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)count + 64 ? rl.rlim_max : (rlim_t)count + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int *fd = malloc(sizeof *fd * (size_t)count);
    char msg[16] = "hold-0123456789", back[16];
    int held = 0;
    for (int i = 0; i < count; i++) {
        fd[i] = dial();
        if (fd[i] < 0 || write_all(fd[i], msg, sizeof msg) < 0 ||
            read_exact(fd[i], back, sizeof back) < 0) {
            printf("{\"held\": %d, \"error\": \"connection %d: %s\"}\n", held, i,
                   strerror(errno));
            fflush(stdout);
            if (fd[i] >= 0)
                close(fd[i]);
            break;
        }
        held++;
    }
    printf("HELD %d\n", held);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    for (int i = 0; i < held; i++)
        close(fd[i]);
    free(fd);
    return held == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2)
        die("usage: ri-loadgen serve|bulk|rtt|conns|hold [options] (see the source)", NULL);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve"))
        cmd_serve(argc - 2, argv + 2);
    if (argc < 4 || strcmp(argv[2], "--to") != 0)
        die("clients need --to HOST:PORT first", NULL);
    if (parse_addr(argv[3], &g_to, &g_tolen) < 0)
        die("bad address", argv[3]);
    if (!strcmp(cmd, "bulk"))
        return cmd_bulk(argc - 4, argv + 4);
    if (!strcmp(cmd, "rtt"))
        return cmd_rtt(argc - 4, argv + 4);
    if (!strcmp(cmd, "conns"))
        return cmd_conns(argc - 4, argv + 4);
    if (!strcmp(cmd, "hold"))
        return cmd_hold(argc - 4, argv + 4);
    die("unknown command", cmd);
    return 2;
}
