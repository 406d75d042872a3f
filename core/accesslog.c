/* accesslog.c -- one line per stream at its close; see accesslog.h. */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events.h"
#include "frame.h"
#include "log.h"
#include "netutil.h"
#include "role.h"

struct ri_accesslog {
    char *path; /* "-": the main log */
    int fd;
    struct ri_event_bus *bus;
    struct ri_event_sub *sub;
    struct ri_ratelimit rl; /* write errors */
};

size_t ri_accesslog_format(char *buf, size_t cap, const struct ri_event *ev)
{
    char cl[64], tg[64];
    int n = snprintf(buf, cap,
                     "edge=%s stream=%u client=%s port=%u target=%s up=%llu down=%llu "
                     "duration=%.3f class=%s end=%s",
                     ev->edge_id && ev->edge_id[0] ? ev->edge_id : "-", ev->stream_id,
                     ri_raddr_str(ev->client, cl, sizeof cl), ev->port,
                     ri_raddr_str(ev->target, tg, sizeof tg), (unsigned long long)ev->bytes_up,
                     (unsigned long long)ev->bytes_down, ev->duration,
                     ev->klass ? "sustained" : "normal", ev->code ? "reset" : "ok");
    if (n >= 0 && ev->code && (size_t)n < cap) {
        /* the reason comes from a peer (RST text): quote it, keep it printable */
        char why[RI_REASON_MAX + 1];
        size_t k = 0;
        const char *r = ev->reason && ev->reason[0] ? ev->reason : ri_rst_code_str(ev->code);
        for (; *r && k < sizeof why - 1; r++)
            why[k++] = (*r == '"' || (unsigned char)*r < 0x20 || (unsigned char)*r > 0x7e)
                           ? '?' : *r;
        why[k] = 0;
        n += snprintf(buf + n, cap - (size_t)n, " reason=\"%s\"", why);
    }
    if (n < 0)
        n = 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static void on_event(void *arg, const struct ri_event *ev)
{
    struct ri_accesslog *a = arg;
    char line[768], stamp[40];
    size_t n = ri_accesslog_format(line, sizeof line - 1, ev);
    if (a->fd < 0) {
        log_info("access: %s", line);
        return;
    }
    char out[sizeof line + sizeof stamp + 2];
    int k = snprintf(out, sizeof out, "%s %.*s\n", ri_log_stamp(stamp, sizeof stamp), (int)n, line);
    if (k > 0 && write(a->fd, out, (size_t)k) < 0)
        ri_log_rl(&a->rl, RI_LOG_ERROR, "access log %s: %s", a->path, strerror(errno));
}

static int open_log(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "access_log \"%s\": %s", path, strerror(errno));
    return fd;
}

int ri_accesslog_check(const char *path, char *err, size_t errlen)
{
    if (!path || strcmp(path, "-") == 0)
        return 0;
    int fd = open_log(path, err, errlen);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int ri_accesslog_apply(struct ri_accesslog **ap, struct ri_event_bus *bus, const char *path,
                       char *err, size_t errlen)
{
    struct ri_accesslog *a = *ap;
    if (!path) {
        if (a) {
            ri_event_unsubscribe(a->bus, a->sub);
            if (a->fd >= 0)
                close(a->fd);
            free(a->path);
            free(a);
            *ap = NULL;
        }
        return 0;
    }
    int fd = -1;
    if (strcmp(path, "-") != 0 && (fd = open_log(path, err, errlen)) < 0)
        return -1;
    char *p = strdup(path);
    if (!a && (a = calloc(1, sizeof *a)))
        a->rl = (struct ri_ratelimit)RI_RATELIMIT_INIT(RI_RATELIMIT_DEFAULT_NS, 1);
    if (!a) {
        free(p);
        p = NULL;
    }
    if (!p) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "access_log: out of memory");
        return -1;
    }
    if (a->sub && a->fd >= 0)
        close(a->fd);
    free(a->path);
    a->path = p;
    a->fd = fd;
    if (!a->sub) {
        a->bus = bus;
        if (!(a->sub = ri_event_subscribe(bus, RI_EVT_BIT(RI_EVT_STREAM_CLOSED), on_event, a))) {
            ri_accesslog_apply(&a, bus, NULL, err, errlen);
            snprintf(err, errlen, "access_log: out of memory");
            return -1;
        }
    }
    *ap = a;
    return 0;
}
