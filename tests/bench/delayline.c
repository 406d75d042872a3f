/* ri-delayline -- a long link that TCP itself sees: two TUN devices, each
 * packet held for a fixed one-way delay, no rate limit beyond the CPU.
 *
 *   ri-delayline --delay-ms D --a NS:DEV --b NS:DEV [--buffer-mib M] [--mtu M]
 *
 * Opens TUN device DEV (IFF_TUN | IFF_NO_PI) in network namespace NS for
 * each side (an empty NS: this process's own namespace; NS is a name from
 * `ip netns`), prints "READY" once both exist, and then forwards every IP
 * packet read from one device to the other after D/2 ms (D is the round
 * trip). The caller gives the devices their addresses and brings them up;
 * the devices go away when this process exits.
 *
 * Each direction has its own thread and a FIFO: a ring of --buffer-mib
 * bytes (64: 1 Gbit/s for more than 500 ms) of records {arrival time,
 * length, packet}. A packet that does not fit is dropped (drop-tail) and
 * counted. Packets leave up to 50 µs early, so that one wake-up sends a
 * batch. On SIGTERM or SIGINT it prints one line of JSON with packets,
 * bytes, drops and the largest packet each way (a packet above the MTU
 * would mean the kernel handed over an unsegmented GSO packet) and the CPU
 * seconds it used (is the delay line the bottleneck?), and exits.
 *
 * Only the devices it is told to open are touched; addresses and routes are
 * the caller's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT 65536
#define WRAP UINT32_MAX
/* A packet may leave this much before its time, so that one wake-up sends
 * a batch rather than one packet each (0.1 % of a 50 ms round trip). */
#define EARLY_NS 50000

static _Noreturn void die(const char *what, const char *arg)
{
    fprintf(stderr, "ri-delayline: %s%s%s%s%s\n", what, arg ? " " : "", arg ? arg : "",
            errno ? ": " : "", errno ? strerror(errno) : "");
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One record in the ring: header, then the packet, padded to 8 bytes. */
struct rec {
    uint64_t t; /* arrival, ns */
    uint32_t len; /* WRAP: the rest of the ring is unused, go to its start */
    uint32_t pad;
};

struct dir {
    const char *name;
    int in, out;
    uint64_t delay_ns;
    unsigned char *ring;
    size_t cap, head, tail, used; /* head: oldest record; tail: where the next goes */
    atomic_uint_fast64_t packets, bytes, drops, max_pkt, write_errors;
};

static size_t rec_size(uint32_t len)
{
    return sizeof(struct rec) + ((len + 7u) & ~(size_t)7u);
}

/* Reads every packet waiting on d->in into the ring (at most 256 at a go,
 * so the head's deadline is checked in between). */
static void take(struct dir *d, unsigned char *scratch)
{
    for (int i = 0; i < 256; i++) {
        /* the next record must fit contiguously, at the tail or (wrapping) at 0 */
        size_t need = rec_size(MAX_PKT), at = d->tail;
        int fits = 0;
        if (d->used == 0) {
            d->head = d->tail = at = 0;
            fits = 1;
        } else if (d->tail > d->head) {
            if (d->cap - d->tail >= need)
                fits = 1;
            else if (d->head >= need) {
                at = 0;
                fits = 2;
            }
        } else if (d->head - d->tail >= need)
            fits = 1;
        unsigned char *buf = fits ? d->ring + at + sizeof(struct rec) : scratch;
        ssize_t n = read(d->in, buf, MAX_PKT);
        if (n <= 0)
            return; /* EAGAIN (or the device is gone: the caller stops us) */
        if (!fits) {
            atomic_fetch_add(&d->drops, 1);
            continue;
        }
        if (fits == 2) { /* mark the end as unused, then move the packet to 0 */
            struct rec *w = (struct rec *)(d->ring + d->tail);
            if (d->cap - d->tail >= sizeof *w)
                w->len = WRAP;
            d->used += d->cap - d->tail;
            d->tail = 0;
        }
        struct rec *r = (struct rec *)(d->ring + at);
        r->t = now_ns();
        r->len = (uint32_t)n;
        d->tail = at + rec_size((uint32_t)n);
        d->used += rec_size((uint32_t)n);
        if (d->tail == d->cap)
            d->tail = 0;
        atomic_fetch_add(&d->packets, 1);
        atomic_fetch_add(&d->bytes, (uint64_t)n);
        if ((uint64_t)n > atomic_load(&d->max_pkt))
            atomic_store(&d->max_pkt, (uint64_t)n);
    }
}

/* Writes every record whose time has come; returns the ns until the next
 * one is due, or -1 when the ring is empty. */
static int64_t give(struct dir *d)
{
    while (d->used) {
        struct rec *r = (struct rec *)(d->ring + d->head);
        if (d->cap - d->head < sizeof *r || r->len == WRAP) {
            d->used -= d->cap - d->head;
            d->head = 0;
            continue;
        }
        uint64_t due = r->t + d->delay_ns, now = now_ns() + EARLY_NS;
        if (due > now)
            return (int64_t)(due - now);
        if (write(d->out, r + 1, r->len) < 0)
            atomic_fetch_add(&d->write_errors, 1);
        size_t sz = rec_size(r->len);
        d->head += sz;
        d->used -= sz;
        if (d->head == d->cap)
            d->head = 0;
    }
    return -1;
}

static void *run(void *arg)
{
    struct dir *d = arg;
    unsigned char *scratch = malloc(MAX_PKT);
    if (!scratch)
        die("out of memory", NULL);
    prctl(PR_SET_TIMERSLACK, 1UL);
    for (;;) {
        int64_t wait = give(d);
        struct pollfd pf = {.fd = d->in, .events = POLLIN};
        struct timespec ts, *tp = NULL;
        if (wait >= 0) {
            ts.tv_sec = (time_t)(wait / 1000000000);
            ts.tv_nsec = (long)(wait % 1000000000);
            tp = &ts;
        }
        int k = ppoll(&pf, 1, tp, NULL);
        if (k < 0 && errno != EINTR)
            die("poll failed", d->name);
        if (k > 0 && (pf.revents & POLLIN))
            take(d, scratch);
        else if (k > 0 && (pf.revents & (POLLERR | POLLHUP | POLLNVAL)))
            return NULL;
    }
}

/* Opens TUN device dev in network namespace ns ("" = ours). */
static int open_tun(const char *spec, int mtu)
{
    char ns[256], dev[IFNAMSIZ];
    const char *colon = strchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof ns || strlen(colon + 1) >= IFNAMSIZ ||
        !colon[1])
        die("expected NS:DEV, got", spec);
    memcpy(ns, spec, (size_t)(colon - spec));
    ns[colon - spec] = 0;
    strcpy(dev, colon + 1);
    int home = -1;
    if (ns[0]) {
        char path[300];
        snprintf(path, sizeof path, "/run/netns/%s", ns);
        home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        int nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (home < 0 || nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
            die("cannot enter network namespace", ns);
        close(nsfd);
    }
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        die("cannot open /dev/net/tun", NULL);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strcpy(ifr.ifr_name, dev);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        die("TUNSETIFF failed for", dev);
    /* the MTU is set here so that it holds before the first packet */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifr.ifr_mtu = mtu;
    if (s < 0 || ioctl(s, SIOCSIFMTU, &ifr) < 0)
        die("cannot set the MTU of", dev);
    close(s);
    if (home >= 0) {
        if (setns(home, CLONE_NEWNET) < 0)
            die("cannot return to our network namespace", NULL);
        close(home);
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void report(FILE *f, const struct dir *d, const char *sep)
{
    fprintf(f,
            "\"%s\": {\"packets\": %llu, \"bytes\": %llu, \"drops\": %llu, \"max_packet\": %llu,"
            " \"write_errors\": %llu}%s",
            d->name, (unsigned long long)atomic_load(&d->packets),
            (unsigned long long)atomic_load(&d->bytes), (unsigned long long)atomic_load(&d->drops),
            (unsigned long long)atomic_load(&d->max_pkt),
            (unsigned long long)atomic_load(&d->write_errors), sep);
}

int main(int argc, char **argv)
{
    const char *a = NULL, *b = NULL;
    double delay_ms = -1, buf_mib = 64;
    int mtu = 9000;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            die("a value is missing after", argv[i]);
        if (!strcmp(argv[i], "--delay-ms"))
            delay_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--a"))
            a = argv[++i];
        else if (!strcmp(argv[i], "--b"))
            b = argv[++i];
        else if (!strcmp(argv[i], "--buffer-mib"))
            buf_mib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--mtu"))
            mtu = atoi(argv[++i]);
        else
            die("unknown option", argv[i]);
    }
    if (!a || !b || delay_ms < 0)
        die("usage: ri-delayline --delay-ms D --a NS:DEV --b NS:DEV [--buffer-mib M] [--mtu M]",
            NULL);
    if (mtu < 576 || mtu > 65535)
        die("--mtu must be 576-65535", NULL);
    if (buf_mib < 1 || buf_mib > 4096)
        die("--buffer-mib must be 1-4096", NULL);

    /* signals go to the main thread only, which reports and exits */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    static struct dir d[2];
    int fa = open_tun(a, mtu), fb = open_tun(b, mtu);
    uint64_t one_way = (uint64_t)(delay_ms * 1e6 / 2);
    d[0] = (struct dir){.name = "a_to_b", .in = fa, .out = fb, .delay_ns = one_way};
    d[1] = (struct dir){.name = "b_to_a", .in = fb, .out = fa, .delay_ns = one_way};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        d[i].cap = (size_t)(buf_mib * 1024 * 1024) & ~(size_t)7u;
        d[i].ring = malloc(d[i].cap);
        if (!d[i].ring)
            die("cannot allocate the ring", NULL);
        if (pthread_create(&th[i], NULL, run, &d[i]))
            die("cannot start a thread", NULL);
    }
    printf("READY\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"cpu_s\": %.3f, ", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    report(stdout, &d[0], ", ");
    report(stdout, &d[1], "}\n");
    fflush(stdout);
    return 0;
}
