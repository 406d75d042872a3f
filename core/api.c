/* api.c -- struct ri_core_api: what plugins may ask of the core. */
#include "api.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <unistd.h>

#include "clock.h"
#include "fdpool.h"
#include "log.h"
#include "mux.h"
#include "plugin.h"
#include "token.h"

static void api_log(ri_inst *self, int level, const char *fmt, ...)
{
    if (level > ri_log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    ri_logv(level < 0 ? 0 : level, self ? self->prefix : "plugin", fmt, ap);
    va_end(ap);
}

static uint64_t api_now_ns(void) { return ri_now_ns(); }

static int api_role(ri_inst *self) { return self ? self->role : 0; }

/* keys may be paths: "list.[2].key" (libconfig's syntax) */
static int lookup(ri_inst *self, const char *key, config_setting_t **out)
{
    if (!self || !self->settings || !key)
        return -ENOENT;
    *out = config_setting_lookup((config_setting_t *)self->settings, key);
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

static int api_cfg_len(ri_inst *self, const char *key, size_t *out)
{
    config_setting_t *s;
    int rc = lookup(self, key, &s);
    if (rc)
        return rc;
    if (!config_setting_is_aggregate(s))
        return -EINVAL;
    *out = (size_t)config_setting_length(s);
    return 0;
}

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
    if (!self || !self->accept) {
        close(fd);
        return -ENOTCONN;
    }
    return self->accept(self->accept_arg, fd, port);
}

static int api_listen_fd(ri_inst *self, const char *bind_address, uint16_t port)
{
    return self && self->fds ? ri_fdpool_take(self->fds, bind_address, port) : -1;
}

static void api_kick(ri_inst *self)
{
    if (self && self->kick)
        self->kick(self->kick_arg);
}

/* The answer is dumped with jansson, whose allocator main() may have
 * replaced (the wiping one): it goes back through ri_json_free. */
static int api_query(ri_inst *self, const char *request_json, char **answer_json)
{
    if (answer_json)
        *answer_json = NULL;
    if (!request_json || !answer_json)
        return -EINVAL;
    if (!self || !self->query)
        return -ENOTCONN;
    json_error_t je;
    json_t *req = json_loads(request_json, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(req)) {
        json_decref(req);
        return -EINVAL;
    }
    json_t *ans = self->query(self->query_arg, req);
    json_decref(req);
    if (!ans)
        return -EINVAL;
    char *s = json_dumps(ans, RI_JSON_OUT);
    json_decref(ans);
    if (!s)
        return -ENOMEM;
    *answer_json = s;
    return 0;
}

static void api_query_free(char *answer_json) { ri_json_free(answer_json); }

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
    .cfg_len = api_cfg_len,
    .timer_new = ri_inst_timer_new,
    .timer_start = ri_inst_timer_start,
    .timer_stop = ri_inst_timer_stop,
    .timer_free = ri_inst_timer_free,
    .io_new = ri_inst_io_new,
    .io_start = ri_inst_io_start,
    .io_stop = ri_inst_io_stop,
    .io_free = ri_inst_io_free,
    .stream_stats = ri_mux_stream_stats,
    .random = api_random,
    .hmac_sha256 = api_hmac_sha256,
    .memeq_ct = api_memeq_ct,
    .accept_conn = api_accept_conn,
    .kick = api_kick,
    .listen_fd = api_listen_fd,
    .query = api_query,
    .query_free = api_query_free,
};
