/* plugin.h -- loading plugin .so files, instances, and typed calls into them.
 *
 * A module is one loaded .so with core-owned copies of its descriptor and
 * ops table (zero-filled past what the plugin declared, optional slots
 * filled with no-op defaults), so the core calls every slot without a NULL
 * test and never reads past a plugin's table. Modules and instances are
 * reference-counted: a config generation holds its modules, an instance
 * holds its module, and whoever uses an instance holds the instance, so a
 * .so is unmapped only when nothing uses it (after Linux module refcounts
 * and FreeRADIUS's HUP). */
#ifndef RI_PLUGIN_LOADER_H
#define RI_PLUGIN_LOADER_H

#include <ev.h>
#include <jansson.h>
#include <pthread.h>
#include <libconfig.h>
#include <sys/stat.h>

#include "config.h"
#include "errs.h"
#include "ri_plugin.h"

struct ri_module {
    _Atomic int refs; /* atomic: dropped on whichever worker thread held the last reference */
    char *path;                 /* the file as configured */
    void *dl;                   /* its mapping (maybe of a private copy: plugin.c) */
    struct ri_plugin desc;      /* core-owned copy */
    union {
        struct ri_auth_ops auth;
        struct ri_listener_ops listener;
        struct ri_header_ops header;
        struct ri_sched_ops sched;
        struct ri_classify_ops cls;
        struct ri_service_ops service;
    } ops;                      /* core-owned copy of desc.ops */
};

struct ri_timer;
struct ri_io;

struct ri_inst {
    _Atomic int refs; /* atomic: dropped on whichever worker thread held the last reference */
    struct ri_module *mod;      /* a reference */
    const config_setting_t *settings; /* readable during create only */
    void *state;                /* desc.inst_size bytes */
    char prefix[80];            /* log prefix */
    struct ev_loop *loop;       /* where its timers and watchers run */
    int role;                   /* enum ri_role */
    /* set by the owner: where a listener's connections go, whom a policy's
     * kick wakes */
    int (*accept)(void *arg, int fd, uint16_t port);
    void *accept_arg;
    void (*kick)(void *arg);
    void *kick_arg;
    struct ri_fdpool *fds;      /* listener: sockets handed over (api->listen_fd) */
    /* service: runs a read-only control command (api->query); set by the
     * role once the instance's config is current. Returns the answer (a
     * new reference) or NULL when the command is not available. */
    json_t *(*query)(void *arg, json_t *req);
    void *query_arg;
    /* a header injector built against ABI 2.2 or older, which may keep
     * state in build: its calls from the hub's workers take turns */
    pthread_mutex_t *serial;
    struct ri_timer *timers;    /* what the plugin created and did not free */
    struct ri_io *ios;
};

const char *ri_kind_name(unsigned kind);

/* Where plugins are found when the config sets no plugin_dir: beside the
 * binary (<bindir>/plugins), then <bindir>/../lib/ri/plugins, then the
 * compiled-in install folder. Returns a static buffer. */
const char *ri_plugin_default_dir(void);

/* Loads one .so and checks its descriptor; NULL with a message naming the
 * file in err. `want_name` may be NULL (skip the name check). The result
 * has one reference. */
struct ri_module *ri_module_open(const char *path, const char *want_name, char *err,
                                 size_t errlen);
struct ri_module *ri_module_ref(struct ri_module *m);
/* A module from a descriptor compiled into the binary (no .so): checked and
 * adopted like a plugin's, never freed. 0, or -1 with err. */
int ri_module_static(struct ri_module *m, const struct ri_plugin *d, char *err, size_t errlen);
/* The built-in scheduler (sched_fifo), used when a config enables none. */
struct ri_module *ri_module_builtin_sched(void);
void ri_module_unref(struct ri_module *m);

/* Creates an instance (one reference) of m: allocates its state and runs
 * create with `api` and `settings` (NULL: none). */
struct ri_inst *ri_inst_create(struct ri_module *m, const config_setting_t *settings,
                               struct ev_loop *loop, int role,
                               const struct ri_core_api *api, char *err, size_t errlen);
struct ri_inst *ri_inst_ref(struct ri_inst *i);

/* An instance's timers and fd watchers (the api table's timer_* and io_*). */
struct ri_timer *ri_inst_timer_new(struct ri_inst *i, ri_timer_cb *cb, void *arg);
void ri_inst_timer_start(struct ri_timer *t, double after, double repeat);
void ri_inst_timer_stop(struct ri_timer *t);
void ri_inst_timer_free(struct ri_timer *t);
struct ri_io *ri_inst_io_new(struct ri_inst *i, int fd, int events, ri_io_cb *cb, void *arg);
void ri_inst_io_start(struct ri_io *io);
void ri_inst_io_stop(struct ri_io *io);
void ri_inst_io_free(struct ri_io *io);
/* The last reference runs destroy, then stops and frees (and logs) any
 * timer or watcher the plugin left behind. */
void ri_inst_unref(struct ri_inst *i);

/* The enabled plugins of one config, at most one per kind. */
struct ri_plugins {
    struct ri_module *by_kind[RI_KIND_MAX_ + 1];
    const config_setting_t *settings[RI_KIND_MAX_ + 1];
    int line[RI_KIND_MAX_ + 1];
    /* per-config instances (auth, listener, header, service); sched and
     * classify instances are per tunnel (mux.c) */
    struct ri_inst *auth, *listener, *header, *service;
};

/* Where entry pc of config c loads from: its `file` (relative to the
 * config's folder) or <plugin_dir>/<name>.so. 0, or -1 with why in err
 * (a `file` that is not a string, a name that is not [a-z0-9_]+). */
int ri_plugin_conf_path(const struct ri_config *c, const struct ri_plugin_conf *pc, char *path,
                        size_t cap, char *err, size_t errlen);
/* The kinds that run in one role only: a listener on the edge, a header
 * plugin on the hub. 0 when module m may run in `role`; else -1 with why
 * (naming the plugin, its kind and the role it belongs to) in err. */
int ri_plugin_role_check(const struct ri_module *m, int role, char *err, size_t errlen);

/* Loads every enabled plugin of c and creates the per-config instances on
 * `loop` with `api`. NULL with every problem in errs. */
struct ri_plugins *ri_plugins_load(const struct ri_config *c, struct ev_loop *loop,
                                   const struct ri_core_api *api, struct ri_errs *errs);
void ri_plugins_free(struct ri_plugins *p);

/* 1 when two plugin settings groups hold the same values (a policy whose
 * module and settings did not change keeps running across a reload). */
int ri_settings_equal(const config_setting_t *a, const config_setting_t *b);

/* ---- typed calls into plugins: the only place ops are invoked ----------- */
static inline int ri_auth_step(struct ri_inst *i, void *conn, const struct ri_auth_ctx *ctx,
                               const uint8_t *in, size_t in_len, uint8_t *out,
                               size_t *out_len, int *done, char *err, size_t errlen)
{
    return i->mod->ops.auth.step(i->state, conn, ctx, in, in_len, out, out_len, done, err,
                                 errlen);
}
static inline int ri_listen_apply(struct ri_inst *i, const struct ri_listen_set *set,
                                  char *err, size_t errlen)
{
    return i->mod->ops.listener.apply(i->state, set, err, errlen);
}
/* Duplicates every listening socket of listener i into pool (under the
 * address and port the listener names); the listener keeps its own. */
void ri_listen_export(struct ri_inst *i, struct ri_fdpool *pool);
/* The ports listener i has open (at most cap of them, unsorted); -1 when the
 * plugin does not say (it has no `fds` op). */
int ri_listen_open_ports(struct ri_inst *i, uint16_t *out, size_t cap);
static inline int ri_header_build(struct ri_inst *i, const struct ri_conn_info *ci,
                                  uint8_t *buf, size_t cap, size_t *len, char *err,
                                  size_t errlen)
{
    if (!i->serial) /* 2.3 and newer: build may run on several workers at once */
        return i->mod->ops.header.build(i->state, ci, buf, cap, len, err, errlen);
    pthread_mutex_lock(i->serial);
    int rc = i->mod->ops.header.build(i->state, ci, buf, cap, len, err, errlen);
    pthread_mutex_unlock(i->serial);
    return rc;
}
static inline void ri_sched_enqueue(struct ri_inst *i, ri_stream *s, void *sp, uint32_t k)
{
    i->mod->ops.sched.enqueue(i->state, s, sp, k);
}
static inline ri_stream *ri_sched_dequeue(struct ri_inst *i, const struct ri_sched_ctx *ctx,
                                          uint32_t *max_bytes)
{
    return i->mod->ops.sched.dequeue(i->state, ctx, max_bytes);
}
static inline void ri_sched_sent(struct ri_inst *i, ri_stream *s, void *sp, size_t n,
                                 const struct ri_sched_ctx *ctx)
{
    i->mod->ops.sched.sent(i->state, s, sp, n, ctx);
}
static inline void ri_sched_remove(struct ri_inst *i, ri_stream *s, void *sp)
{
    i->mod->ops.sched.remove(i->state, s, sp);
}
static inline void ri_sched_event(struct ri_inst *i, ri_stream *s, void *sp, int ev,
                                  uint32_t k)
{
    i->mod->ops.sched.event(i->state, s, sp, ev, k);
}
static inline uint32_t ri_classify(struct ri_inst *i, void *sp,
                                   const struct ri_stream_stats *st)
{
    return i->mod->ops.cls.classify(i->state, sp, st);
}
static inline uint32_t ri_class_window(struct ri_inst *i, uint32_t klass, uint32_t n)
{
    return i->mod->ops.cls.class_window(i->state, klass, n);
}
static inline void ri_classify_event(struct ri_inst *i, ri_stream *s, void *sp, int ev,
                                     const struct ri_stream_stats *st)
{
    i->mod->ops.cls.event(i->state, s, sp, ev, st);
}

#endif
