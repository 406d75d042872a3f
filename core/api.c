/* api.c -- the core services plugins call through struct ri_core_api:
 * logging, clock, settings, libev-backed timers and I/O watchers, stream
 * stats, GnuTLS-backed crypto helpers, and the listener accept hook. */
#include "api.h"

#include <errno.h>
#include <ev.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mux.h"
#include "plugin.h"

static int g_role;
static ri_accept_hook_f *g_accept;

void ri_api_set_role(int role) { g_role = role; }
void ri_api_set_accept_hook(ri_accept_hook_f *hook) { g_accept = hook; }

static void api_log(ri_inst *self, int level, const char *fmt, ...)
{
    if (level > ri_log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    ri_logv(level < 0 ? 0 : level, self ? self->prefix : "plugin", fmt, ap);
    va_end(ap);
}

static uint64_t api_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int api_role(ri_inst *self) { return g_role; }

static int lookup(ri_inst *self, const char *key, config_setting_t **out)
{
    if (!self || !self->settings)
        return -ENOENT;
    *out = config_setting_get_member(self->settings, key);
    return *out ? 0 : -ENOENT;
}

static int api_cfg_int(ri_inst *self, const char *key, int64_t *out)
{
    config_setting_t *s;
    int rc = lookup(self, key, &s);
    if (rc)
        return rc;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
        return -EINVAL;
    *out = config_setting_get_int64(s);
    return 0;
}

static int api_cfg_bool(ri_inst *self, const char *key, int *out)
{
    config_setting_t *s;
    int rc = lookup(self, key, &s);
    if (rc)
        return rc;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return -EINVAL;
    *out = config_setting_get_bool(s);
    return 0;
}

static int api_cfg_float(ri_inst *self, const char *key, double *out)
{
    config_setting_t *s;
    int rc = lookup(self, key, &s);
    if (rc)
        return rc;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_FLOAT)
        *out = config_setting_get_float(s);
    else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        *out = (double)config_setting_get_int64(s);
    else
        return -EINVAL;
    return 0;
}

static int api_cfg_str(ri_inst *self, const char *key, const char **out)
{
    config_setting_t *s;
    int rc = lookup(self, key, &s);
    if (rc)
        return rc;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return -EINVAL;
    *out = config_setting_get_string(s);
    return 0;
}

/* ---- timers and watchers ------------------------------------------------ */
struct ri_timer {
    ev_timer w;
    ri_timer_cb *cb;
    void *arg;
};

static void timer_thunk(EV_P_ ev_timer *w, int revents)
{
    struct ri_timer *t = (struct ri_timer *)w;
    t->cb(t->arg);
}

static ri_timer *api_timer_new(ri_inst *self, ri_timer_cb *cb, void *arg)
{
    struct ri_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    ev_init(&t->w, timer_thunk);
    t->cb = cb;
    t->arg = arg;
    return t;
}

static void api_timer_start(ri_timer *t, double after, double repeat)
{
    ev_timer_stop(EV_DEFAULT, &t->w);
    ev_timer_set(&t->w, after, repeat);
    ev_timer_start(EV_DEFAULT, &t->w);
}

static void api_timer_stop(ri_timer *t) { ev_timer_stop(EV_DEFAULT, &t->w); }

static void api_timer_free(ri_timer *t)
{
    if (!t)
        return;
    ev_timer_stop(EV_DEFAULT, &t->w);
    free(t);
}

struct ri_io {
    ev_io w;
    ri_io_cb *cb;
    void *arg;
};

static void io_thunk(EV_P_ ev_io *w, int revents)
{
    struct ri_io *io = (struct ri_io *)w;
    int ev = (revents & EV_READ ? RI_IO_READ : 0) | (revents & EV_WRITE ? RI_IO_WRITE : 0);
    io->cb(io->arg, w->fd, ev);
}

static ri_io *api_io_new(ri_inst *self, int fd, int events, ri_io_cb *cb, void *arg)
{
    struct ri_io *io = calloc(1, sizeof *io);
    if (!io)
        return NULL;
    ev_io_init(&io->w, io_thunk, fd,
               (events & RI_IO_READ ? EV_READ : 0) | (events & RI_IO_WRITE ? EV_WRITE : 0));
    io->cb = cb;
    io->arg = arg;
    return io;
}

static void api_io_start(ri_io *w) { ev_io_start(EV_DEFAULT, &w->w); }
static void api_io_stop(ri_io *w) { ev_io_stop(EV_DEFAULT, &w->w); }

static void api_io_free(ri_io *w)
{
    if (!w)
        return;
    ev_io_stop(EV_DEFAULT, &w->w);
    free(w);
}

/* ---- crypto --------------------------------------------------------------- */
static int api_random(void *buf, size_t len)
{
    return gnutls_rnd(GNUTLS_RND_RANDOM, buf, len) == 0 ? 0 : -EIO;
}

static int api_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                           uint8_t out[32])
{
    return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_len, msg, msg_len, out) == 0 ? 0 : -EIO;
}

static int api_memeq_ct(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < len; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

static int api_accept_conn(ri_inst *self, int fd, uint16_t port)
{
    if (!g_accept) {
        close(fd);
        return -ENOTCONN;
    }
    return g_accept(fd, port);
}

const struct ri_core_api ri_core_api = {
    .abi_major = RI_ABI_MAJOR,
    .abi_minor = RI_ABI_MINOR,
    .size = sizeof(struct ri_core_api),
    .log = api_log,
    .now_ns = api_now_ns,
    .role = api_role,
    .cfg_int = api_cfg_int,
    .cfg_bool = api_cfg_bool,
    .cfg_float = api_cfg_float,
    .cfg_str = api_cfg_str,
    .timer_new = api_timer_new,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .timer_free = api_timer_free,
    .io_new = api_io_new,
    .io_start = api_io_start,
    .io_stop = api_io_stop,
    .io_free = api_io_free,
    .stream_stats = ri_mux_stream_stats,
    .random = api_random,
    .hmac_sha256 = api_hmac_sha256,
    .memeq_ct = api_memeq_ct,
    .accept_conn = api_accept_conn,
};
