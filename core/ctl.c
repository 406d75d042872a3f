/* ctl.c -- `ri-core ctl -s SOCKET [--json] COMMAND [JSON-ARGS]`: sends one
 * request line, prints the answer as a table (or raw with --json); for
 * `subscribe`, prints every event until interrupted or the socket closes. */
#include "ctl.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "token.h"

#define ANSWER_MAX (64u << 20) /* one answer line we read, bytes */

static void usage(FILE *f)
{
    fprintf(f, "usage: ri-core ctl -s SOCKET [--json] COMMAND [JSON-ARGS]\n"
               "  commands: status, streams, metrics, reload, subscribe (hub and edge);\n"
               "            update_edges '{\"edges\": [...]}', provision '{\"id\": ..., "
               "\"listen_ports\": [...]}' (hub)\n"
               "  --json    print the answer (each event) as the raw JSON line\n");
}

static volatile sig_atomic_t interrupted;
static void on_int(int sig) { interrupted = 1; }

/* reads one line (without its newline) into *buf; 0, or -1 at EOF/error */
static int read_line(int fd, char **buf, size_t *cap, size_t *len, size_t *start, char **line)
{
    for (;;) {
        char *nl = *len > *start ? memchr(*buf + *start, '\n', *len - *start) : NULL;
        if (nl) {
            *nl = '\0';
            *line = *buf + *start;
            *start = (size_t)(nl - *buf) + 1;
            return 0;
        }
        if (*start) {
            memmove(*buf, *buf + *start, *len - *start);
            *len -= *start;
            *start = 0;
        }
        if (*len + 4096 > *cap) {
            if (*cap >= ANSWER_MAX)
                return -1;
            size_t nc = *cap ? *cap * 2 : 65536;
            char *nb = realloc(*buf, nc);
            if (!nb)
                return -1;
            *buf = nb;
            *cap = nc;
        }
        ssize_t r = read(fd, *buf + *len, *cap - *len - 1);
        if (r < 0 && errno == EINTR && !interrupted)
            continue;
        if (r <= 0)
            return -1;
        *len += (size_t)r;
    }
}

static const char *str(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "-";
}

static long long num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v)
         : json_is_real(v)    ? (long long)json_real_value(v) : 0;
}

static void ports_text(const json_t *a, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (off + 8 >= cap) {
            snprintf(out + off, cap - off, ",...");
            return;
        }
        off += (size_t)snprintf(out + off, cap - off, "%s%lld", i ? "," : "",
                                (long long)json_integer_value(v));
    }
    if (!off)
        snprintf(out, cap, "-");
}

static void print_status(const json_t *a)
{
    const char *skip[] = {"ok", "edges", "plugins", "listenPorts", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        int s = 0;
        for (const char **q = skip; *q; q++)
            s |= !strcmp(*q, k);
        if (s)
            continue;
        if (json_is_real(v)) {
            printf("%-16s %.1f\n", k, json_real_value(v));
            continue;
        }
        char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | RI_JSON_OUT);
        printf("%-16s %s\n", k, t ? t : json_string_value(v));
        ri_json_free(t);
    }
    json_t *pl = json_object_get(a, "plugins");
    json_object_foreach(pl, k, v)
        printf("%-16s %s\n", k, json_is_string(v) ? json_string_value(v) : "-");
    char p[256];
    if (json_object_get(a, "listenPorts")) {
        ports_text(json_object_get(a, "listenPorts"), p, sizeof p);
        printf("%-16s %s\n", "listenPorts", p);
    }
    json_t *edges = json_object_get(a, "edges");
    if (!json_is_array(edges))
        return;
    printf("\n%-24s %-7s %-9s %-22s %-24s %-20s %7s %12s %12s\n", "EDGE", "SOURCE", "CONNECTED",
           "REMOTE", "SINCE", "PORTS", "STREAMS", "BYTES_UP", "BYTES_DOWN");
    size_t i;
    json_array_foreach(edges, i, v) {
        ports_text(json_object_get(v, "listenPorts"), p, sizeof p);
        printf("%-24s %-7s %-9s %-22s %-24s %-20s %7lld %12lld %12lld\n", str(v, "id"),
               str(v, "source"), json_is_true(json_object_get(v, "connected")) ? "yes" : "no",
               str(v, "remote"), str(v, "connectedSince"), p, num(v, "activeStreams"),
               num(v, "bytesUp"), num(v, "bytesDown"));
    }
}

static void print_streams(const json_t *a)
{
    printf("%-24s %6s %6s %-24s %9s %12s %12s %-9s %10s\n", "EDGE", "STREAM", "PORT", "CLIENT",
           "AGE_S", "BYTES_UP", "BYTES_DOWN", "CLASS", "WINDOW");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(a, "streams"), i, v)
        printf("%-24s %6lld %6lld %-24s %9.1f %12lld %12lld %-9s %10lld\n", str(v, "edge"),
               num(v, "stream"), num(v, "port"), str(v, "client"),
               json_real_value(json_object_get(v, "age")), num(v, "bytesUp"),
               num(v, "bytesDown"), str(v, "class"), num(v, "window"));
}

static void print_event(const json_t *ev)
{
    printf("%s %-18s", str(ev, "time"), str(ev, "event"));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ev, k, v) {
        if (!strcmp(k, "time") || !strcmp(k, "event"))
            continue;
        char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | RI_JSON_OUT);
        printf(" %s=%s", k, t ? t : json_string_value(v));
        ri_json_free(t);
    }
    printf("\n");
}

/* The metrics answer: its totals one per line, then the classes, STUN (edge)
 * and the edges (hub) as tables. */
static void print_metrics(const json_t *a)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        if (!strcmp(k, "ok") || json_is_array(v) || json_is_object(v))
            continue;
        if (json_is_real(v))
            printf("%-22s %.1f\n", k, json_real_value(v));
        else if (json_is_integer(v))
            printf("%-22s %lld\n", k, (long long)json_integer_value(v));
        else if (json_is_boolean(v))
            printf("%-22s %s\n", k, json_is_true(v) ? "yes" : "no");
        else
            printf("%-22s %s\n", k, json_is_string(v) ? json_string_value(v) : "-");
    }
    json_t *stun = json_object_get(a, "stun");
    if (stun)
        printf("%-22s requests %lld, ok %lld, timeout %lld, error %lld, malformed %lld\n",
               "stun", num(stun, "requests"), num(stun, "ok"), num(stun, "timeout"),
               num(stun, "error"), num(stun, "malformed"));
    size_t i;
    printf("\n%-10s %12s %12s %15s %15s\n", "CLASS", "FRAMES_SENT", "FRAMES_RECV",
           "BYTES_SENT", "BYTES_RECV");
    json_array_foreach(json_object_get(a, "classes"), i, v)
        printf("%-10s %12lld %12lld %15lld %15lld\n", str(v, "class"), num(v, "framesSent"),
               num(v, "framesReceived"), num(v, "bytesSent"), num(v, "bytesReceived"));
    json_t *edges = json_object_get(a, "edges");
    if (!json_is_array(edges))
        return;
    printf("\n%-24s %-9s %7s %9s %9s %12s %12s %6s %s\n", "EDGE", "CONNECTED", "STREAMS",
           "OPENED", "CLOSED", "BYTES_UP", "BYTES_DOWN", "QUEUED", "PUBLIC_IP");
    json_array_foreach(edges, i, v)
        printf("%-24s %-9s %7lld %9lld %9lld %12lld %12lld %6lld %s\n", str(v, "id"),
               json_is_true(json_object_get(v, "connected")) ? "yes" : "no",
               num(v, "activeStreams"), num(v, "streamsOpened"), num(v, "streamsClosed"),
               num(v, "bytesUp"), num(v, "bytesDown"), num(v, "schedQueued"),
               str(v, "publicIp"));
}

static void print_generic(const json_t *a)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
        if (!strcmp(k, "ok"))
            continue;
        char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | RI_JSON_OUT);
        printf("%-12s %s\n", k, t ? t : json_string_value(v));
        ri_json_free(t);
    }
}

int ri_ctl_main(int argc, char **argv)
{
    const char *sock = NULL, *cmd = NULL, *args = NULL;
    int raw = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            raw = 1;
        else if (!strcmp(argv[i], "-s") || !strcmp(argv[i], "--socket")) {
            if (++i == argc) {
                usage(stderr);
                return 2;
            }
            sock = argv[i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!cmd)
            cmd = argv[i];
        else if (!args)
            args = argv[i];
        else {
            fprintf(stderr, "ri-core ctl: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!sock || !cmd) {
        fprintf(stderr, "ri-core ctl: %s\n", !sock ? "-s SOCKET is required" : "no command");
        usage(stderr);
        return 2;
    }
    json_t *req = json_object();
    if (args) {
        json_error_t je;
        json_decref(req);
        req = json_loads(args, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(req)) {
            fprintf(stderr, "ri-core ctl: the arguments must be one JSON object: %s\n",
                    req ? "not an object" : je.text);
            json_decref(req);
            return 2;
        }
    }
    json_object_set_new(req, "cmd", json_string(cmd));
    char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path) {
        fprintf(stderr, "ri-core ctl: socket path too long: %s\n", sock);
        ri_json_free(line);
        return 2;
    }
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "ri-core ctl: cannot connect to %s: %s\n", sock, strerror(errno));
        if (fd >= 0)
            close(fd);
        ri_json_free(line);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps leaves room for the NUL */
    int rc = 1;
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = write(fd, line + off, n + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "ri-core ctl: %s: %s\n", sock, strerror(errno));
            ri_json_free(line);
            close(fd);
            return 1;
        }
        off += (size_t)w;
    }
    ri_json_free(line);
    int sub = !strcmp(cmd, "subscribe");
    if (sub) {
        struct sigaction act = {.sa_handler = on_int};
        sigaction(SIGINT, &act, NULL);
        sigaction(SIGTERM, &act, NULL);
    }
    char *buf = NULL, *ln;
    size_t cap = 0, len = 0, start = 0;
    if (read_line(fd, &buf, &cap, &len, &start, &ln) < 0) {
        fprintf(stderr, "ri-core ctl: %s closed the connection without an answer\n", sock);
        goto out;
    }
    json_error_t je;
    json_t *a = json_loads(ln, 0, &je);
    if (!json_is_object(a)) {
        fprintf(stderr, "ri-core ctl: the answer is not a JSON object: %s\n", je.text);
        json_decref(a);
        goto out;
    }
    int ok = json_is_true(json_object_get(a, "ok"));
    if (raw)
        printf("%s\n", ln);
    else if (!ok) {
        fprintf(stderr, "ri-core ctl: %s: %s\n", cmd, str(a, "error"));
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(a, "errors"), i, v)
            if (i || strcmp(json_string_value(v), str(a, "error")))
                fprintf(stderr, "  %s\n", json_string_value(v));
    } else if (sub)
        fprintf(stderr, "ri-core ctl: following events from %s (interrupt to stop)\n", sock);
    else if (!strcmp(cmd, "status"))
        print_status(a);
    else if (!strcmp(cmd, "streams"))
        print_streams(a);
    else if (!strcmp(cmd, "metrics"))
        print_metrics(a);
    else
        print_generic(a);
    json_decref(a);
    rc = ok ? 0 : 1;
    fflush(stdout);
    while (ok && sub && !interrupted && read_line(fd, &buf, &cap, &len, &start, &ln) == 0) {
        if (raw)
            printf("%s\n", ln);
        else {
            json_t *ev = json_loads(ln, 0, &je);
            if (ev)
                print_event(ev);
            json_decref(ev);
        }
        fflush(stdout);
    }
out:
    free(buf);
    close(fd);
    return rc;
}
