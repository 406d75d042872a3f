/* plugin.c -- the plugin loader: dlopen with RTLD_NOW|RTLD_LOCAL, descriptor
 * checks (each refusal has its own message naming the file), core-owned
 * copies of descriptor and ops with no-op defaults, refcounted modules and
 * instances. */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdpool.h"
#include "log.h"

#ifndef RI_PLUGIN_DIR_DEFAULT
#define RI_PLUGIN_DIR_DEFAULT "/usr/local/lib/ri/plugins"
#endif

/* the descriptor fields every 2.x plugin has (later minors may add more) */
#define DESC_MIN_SIZE (offsetof(struct ri_plugin, keys) + sizeof(const char *const *))
#define OPS_MAX_SIZE 4096u /* a larger declared size is garbage, not a table */

const char *ri_kind_name(unsigned kind)
{
    static const char *const names[] = {"?", "auth", "listener", "header", "sched", "classify",
                                        "service"};
    return kind <= RI_KIND_MAX_ ? names[kind] : "?";
}

static int is_dir(const char *p) { return access(p, X_OK) == 0; }

const char *ri_plugin_default_dir(void)
{
    static char dir[PATH_MAX];
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *bindir = dirname(exe);
        snprintf(dir, sizeof dir, "%s/plugins", bindir);
        if (is_dir(dir))
            return dir;
        snprintf(dir, sizeof dir, "%s/../lib/ri/plugins", bindir);
        if (is_dir(dir))
            return dir;
    }
    snprintf(dir, sizeof dir, "%s", RI_PLUGIN_DIR_DEFAULT);
    return dir;
}

/* ---- mappings ---------------------------------------------------------------
 * dlopen() of a path that is already mapped returns the mapped object even
 * when the file changed since (a new build copied over the old one), so a
 * reload would silently keep running the old code. The loader remembers the
 * identity (device, inode, size, mtime) of the file behind every mapping it
 * made; when the file at a path no longer matches what is mapped from it,
 * the new file is mapped from a private copy (in $TMPDIR, unlinked at once)
 * while the old mapping serves whoever still uses it. Control path only. */
struct mapping {
    char *path;
    struct stat id;
    void *dl;
    int users;
};
static struct mapping *maps;
static size_t n_maps;

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void *map_private_copy(const char *path, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s/ri-plugin-XXXXXX.so", tmp && *tmp ? tmp : "/tmp");
    int out = mkstemps(copy, 3), in = open(path, O_RDONLY | O_CLOEXEC);
    int ok = out >= 0 && in >= 0;
    char buf[65536];
    ssize_t n = 0;
    while (ok && (n = read(in, buf, sizeof buf)) > 0)
        ok = write(out, buf, (size_t)n) == n;
    ok = ok && n == 0;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    void *dl = ok ? dlopen(copy, RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!dl) {
        const char *e = ok ? dlerror() : strerror(errno);
        snprintf(err, errlen,
                 "%s: changed since it was loaded and cannot be loaded again from a private "
                 "copy (%s): restart ri-core to run the new file", path, e ? e : "?");
    }
    if (out >= 0)
        unlink(copy);
    return dl;
}

/* The mapped files are the process's: the main loop loads, and a hub
 * worker may drop the last reference to a tunnel's scheduler or classifier
 * module, so the table is taken under this lock (control path only). */
static pthread_mutex_t maps_mu = PTHREAD_MUTEX_INITIALIZER;

static void *map_open_locked(const char *path, char *err, size_t errlen);

static void *map_open(const char *path, char *err, size_t errlen)
{
    pthread_mutex_lock(&maps_mu);
    void *dl = map_open_locked(path, err, errlen);
    pthread_mutex_unlock(&maps_mu);
    return dl;
}

static void *map_open_locked(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0 || access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s: cannot open plugin: %s", path, strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < n_maps; i++)
        if (strcmp(maps[i].path, path) == 0 && same_file(&maps[i].id, &st)) {
            maps[i].users++;
            return maps[i].dl;
        }
    struct mapping *nm = realloc(maps, (n_maps + 1) * sizeof *maps);
    if (!nm) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    maps = nm;
    void *dl, *stale = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (stale) { /* mapped, but from an older file at this path */
        dlclose(stale);
        dl = map_private_copy(path, err, errlen);
    } else if (!(dl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s: cannot load plugin: %s", path, e ? e : "unknown error");
    }
    if (!dl)
        return NULL;
    maps[n_maps] = (struct mapping){.path = strdup(path), .id = st, .dl = dl, .users = 1};
    n_maps++;
    return dl;
}

static void map_close(void *dl)
{
    pthread_mutex_lock(&maps_mu);
    for (size_t i = 0; i < n_maps; i++) {
        if (maps[i].dl != dl)
            continue;
        if (--maps[i].users == 0) {
            dlclose(dl);
            free(maps[i].path);
            maps[i] = maps[--n_maps];
            if (n_maps == 0) {
                free(maps);
                maps = NULL;
            }
        }
        break;
    }
    pthread_mutex_unlock(&maps_mu);
}

/* ---- descriptor checks ------------------------------------------------------ */
static void noop_sched_sent(void *i, ri_stream *s, void *sp, size_t n,
                            const struct ri_sched_ctx *c) {}
static void noop_sched_event(void *i, ri_stream *s, void *sp, int ev, uint32_t k) {}
static uint32_t noop_class_window(void *i, uint32_t k, uint32_t n) { return 0; }
static void noop_classify_event(void *i, ri_stream *s, void *sp, int ev,
                                const struct ri_stream_stats *st) {}
static int noop_create(const struct ri_core_api *a, ri_inst *self, void *st, char *e, size_t el)
{
    return 0;
}
static void noop_destroy(void *st) {}
static void noop_stats(void *st, ri_stat_emit_f *emit, void *arg) {}

static void noop_listen_fds(void *st, ri_listen_each_f *each, void *arg) {}

static size_t ops_size(unsigned kind)
{
    switch (kind) {
    case RI_KIND_AUTH: return sizeof(struct ri_auth_ops);
    case RI_KIND_LISTENER: return sizeof(struct ri_listener_ops);
    case RI_KIND_HEADER: return sizeof(struct ri_header_ops);
    case RI_KIND_SCHED: return sizeof(struct ri_sched_ops);
    case RI_KIND_CLASSIFY: return sizeof(struct ri_classify_ops);
    case RI_KIND_SERVICE: return sizeof(struct ri_service_ops);
    }
    return 0;
}

/* Required ops per kind (checked on the core's copy); optional ones get
 * their default here, so the hot path never tests for NULL. */
static const char *fill_ops(struct ri_module *m)
{
    switch (m->desc.kind) {
    case RI_KIND_AUTH:
        return m->ops.auth.step ? NULL : "step";
    case RI_KIND_LISTENER:
        if (!m->ops.listener.fds)
            m->ops.listener.fds = noop_listen_fds;
        return m->ops.listener.apply ? NULL : "apply";
    case RI_KIND_HEADER:
        return m->ops.header.build ? NULL : "build";
    case RI_KIND_SCHED: {
        struct ri_sched_ops *o = &m->ops.sched;
        if (!o->enqueue) return "enqueue";
        if (!o->dequeue) return "dequeue";
        if (!o->remove) return "remove";
        if (!o->sent) o->sent = noop_sched_sent;
        if (!o->event) o->event = noop_sched_event;
        return NULL;
    }
    case RI_KIND_CLASSIFY: {
        struct ri_classify_ops *o = &m->ops.cls;
        if (!o->classify) return "classify";
        if (!o->class_window) o->class_window = noop_class_window;
        if (!o->event) o->event = noop_classify_event;
        return NULL;
    }
    case RI_KIND_SERVICE:
        return NULL; /* no slots yet: its timers and watchers do the work */
    }
    return "?";
}

/* Checks a descriptor and makes the core's copies of it and its ops. NULL
 * when it is fine, else why not. */
static const char *adopt(struct ri_module *m, const struct ri_plugin *d, const char *want,
                         char *buf, size_t bl)
{
    if (d->abi_major != RI_ABI_MAJOR) {
        snprintf(buf, bl,
                 "built for plugin ABI %u.%u, this ri-core speaks ABI %u.%u: rebuild the "
                 "plugin against this ri-core's sdk/",
                 d->abi_major, d->abi_minor, RI_ABI_MAJOR, RI_ABI_MINOR);
        return buf;
    }
    if (d->abi_minor > RI_ABI_MINOR) {
        snprintf(buf, bl, "needs plugin ABI %u.%u, newer than this ri-core's %u.%u: upgrade ri-core",
                 d->abi_major, d->abi_minor, RI_ABI_MAJOR, RI_ABI_MINOR);
        return buf;
    }
    if (d->struct_size < DESC_MIN_SIZE || d->struct_size > OPS_MAX_SIZE) {
        snprintf(buf, bl, "descriptor is %u bytes, expected at least %zu", d->struct_size,
                 (size_t)DESC_MIN_SIZE);
        return buf;
    }
    memcpy(&m->desc, d, d->struct_size < sizeof m->desc ? d->struct_size : sizeof m->desc);
    d = &m->desc;
    if (d->kind < 1 || d->kind > RI_KIND_MAX_) {
        snprintf(buf, bl, "unknown plugin kind %u (known: 1-%d)", d->kind, RI_KIND_MAX_);
        return buf;
    }
    if (!d->name || !d->name[0])
        return "descriptor has no name";
    if (!d->ops) {
        snprintf(buf, bl, "%s plugin '%s' has no ops table", ri_kind_name(d->kind), d->name);
        return buf;
    }
    uint32_t osz = *(const uint32_t *)d->ops; /* every ops table begins with its size */
    if (osz < sizeof(uint32_t) || osz > OPS_MAX_SIZE) {
        snprintf(buf, bl, "%s plugin '%s': its ops table declares size %u (set .size = "
                 "sizeof(struct ri_%s_ops))", ri_kind_name(d->kind), d->name, osz,
                 ri_kind_name(d->kind));
        return buf;
    }
    size_t mine = ops_size(d->kind);
    memcpy(&m->ops, d->ops, osz < mine ? osz : mine);
    m->ops.auth.size = (uint32_t)mine; /* the copy is the core's size (size is first in all) */
    const char *missing = fill_ops(m);
    if (missing) {
        snprintf(buf, bl, "%s plugin '%s' lacks the required op '%s'", ri_kind_name(d->kind),
                 d->name, missing);
        return buf;
    }
    if (want && strcmp(d->name, want) != 0) {
        snprintf(buf, bl, "declares itself '%s', not '%s'", d->name, want);
        return buf;
    }
    m->desc.ops = &m->ops;
    if (!m->desc.create) m->desc.create = noop_create;
    if (!m->desc.destroy) m->desc.destroy = noop_destroy;
    if (!m->desc.stats) m->desc.stats = noop_stats;
    m->desc.struct_size = sizeof m->desc;
    return NULL;
}

struct ri_module *ri_module_open(const char *path, const char *want_name, char *err,
                                 size_t errlen)
{
    void *dl = map_open(path, err, errlen);
    if (!dl)
        return NULL;
    struct ri_module *m = calloc(1, sizeof *m);
    const struct ri_plugin *d = dlsym(dl, RI_PLUGIN_SYMBOL);
    char buf[320];
    const char *why = !m ? "out of memory"
                    : !d ? "has no '" RI_PLUGIN_SYMBOL "' symbol: not an ri plugin (export "
                           "`const struct ri_plugin ri_plugin`)"
                         : adopt(m, d, want_name, buf, sizeof buf);
    if (why) {
        snprintf(err, errlen, "%s: %s", path, why);
        free(m);
        map_close(dl);
        return NULL;
    }
    m->refs = 1;
    m->path = strdup(path);
    m->dl = dl;
    return m;
}

/* The scheduler built into ri-core (plugins/sched_fifo compiled in): a
 * module without a mapping, adopted like any plugin, never freed. */
extern const struct ri_plugin ri_sched_fifo_plugin;

int ri_module_static(struct ri_module *m, const struct ri_plugin *d, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    char buf[256];
    const char *why = adopt(m, d, NULL, buf, sizeof buf);
    if (why) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    m->refs = 1;
    m->path = "(built in)";
    return 0;
}

struct ri_module *ri_module_builtin_sched(void)
{
    static struct ri_module m;
    if (!m.refs) {
        char err[256];
        if (ri_module_static(&m, &ri_sched_fifo_plugin, err, sizeof err) < 0)
            log_err("built-in scheduler: %s", err);
    }
    return &m;
}

struct ri_module *ri_module_ref(struct ri_module *m)
{
    if (m)
        m->refs++;
    return m;
}

void ri_module_unref(struct ri_module *m)
{
    if (!m || !m->dl || --m->refs > 0) /* built-in modules (no dl) live forever */
        return;
    map_close(m->dl);
    free(m->path);
    free(m);
}

/* ---- an instance's timers and fd watchers --------------------------------------
 * Each belongs to the instance that made it and runs on its loop; whatever
 * the plugin did not free by the time the instance is destroyed is stopped,
 * freed and reported, so a sloppy plugin cannot leave a callback into
 * unmapped code. */
struct ri_timer {
    ev_timer w;
    ri_timer_cb *cb;
    void *arg;
    struct ri_inst *owner;
    struct ri_timer *next, *prev;
};

struct ri_io {
    ev_io w;
    ri_io_cb *cb;
    void *arg;
    struct ri_inst *owner;
    struct ri_io *next, *prev;
};

static void timer_thunk(EV_P_ ev_timer *w, int revents)
{
    struct ri_timer *t = (struct ri_timer *)w;
    t->cb(t->arg);
}

struct ri_timer *ri_inst_timer_new(struct ri_inst *i, ri_timer_cb *cb, void *arg)
{
    struct ri_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    ev_init(&t->w, timer_thunk);
    t->cb = cb;
    t->arg = arg;
    t->owner = i;
    t->next = i->timers;
    if (i->timers)
        i->timers->prev = t;
    i->timers = t;
    return t;
}

void ri_inst_timer_start(struct ri_timer *t, double after, double repeat)
{
    ev_timer_stop(t->owner->loop, &t->w);
    ev_timer_set(&t->w, after < 0 ? 0 : after, repeat < 0 ? 0 : repeat);
    ev_timer_start(t->owner->loop, &t->w);
}

void ri_inst_timer_stop(struct ri_timer *t) { ev_timer_stop(t->owner->loop, &t->w); }

void ri_inst_timer_free(struct ri_timer *t)
{
    if (!t)
        return;
    ev_timer_stop(t->owner->loop, &t->w);
    if (t->prev)
        t->prev->next = t->next;
    else
        t->owner->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

static void io_thunk(EV_P_ ev_io *w, int revents)
{
    struct ri_io *io = (struct ri_io *)w;
    int ev = (revents & EV_READ ? RI_IO_READ : 0) | (revents & EV_WRITE ? RI_IO_WRITE : 0);
    io->cb(io->arg, w->fd, ev);
}

struct ri_io *ri_inst_io_new(struct ri_inst *i, int fd, int events, ri_io_cb *cb, void *arg)
{
    struct ri_io *io = calloc(1, sizeof *io);
    if (!io)
        return NULL;
    ev_io_init(&io->w, io_thunk, fd,
               (events & RI_IO_READ ? EV_READ : 0) | (events & RI_IO_WRITE ? EV_WRITE : 0));
    io->cb = cb;
    io->arg = arg;
    io->owner = i;
    io->next = i->ios;
    if (i->ios)
        i->ios->prev = io;
    i->ios = io;
    return io;
}

void ri_inst_io_start(struct ri_io *io) { ev_io_start(io->owner->loop, &io->w); }
void ri_inst_io_stop(struct ri_io *io) { ev_io_stop(io->owner->loop, &io->w); }

void ri_inst_io_free(struct ri_io *io)
{
    if (!io)
        return;
    ev_io_stop(io->owner->loop, &io->w);
    if (io->prev)
        io->prev->next = io->next;
    else
        io->owner->ios = io->next;
    if (io->next)
        io->next->prev = io->prev;
    free(io);
}

static void inst_cleanup(struct ri_inst *i)
{
    unsigned nt = 0, ni = 0;
    while (i->timers)
        ri_inst_timer_free(i->timers), nt++;
    while (i->ios)
        ri_inst_io_free(i->ios), ni++;
    if (nt || ni)
        log_warn("%s: left %u timer%s and %u fd watcher%s behind when its instance was "
                 "destroyed: stopped and freed", i->prefix, nt, nt == 1 ? "" : "s", ni,
                 ni == 1 ? "" : "s");
}

/* ---- instances --------------------------------------------------------------- */

static void free_serial(struct ri_inst *i)
{
    if (i->serial) {
        pthread_mutex_destroy(i->serial);
        free(i->serial);
    }
}

struct ri_inst *ri_inst_create(struct ri_module *m, const config_setting_t *settings,
                               struct ev_loop *loop, int role,
                               const struct ri_core_api *api, char *err, size_t errlen)
{
    const struct ri_plugin *d = &m->desc;
    struct ri_inst *i = calloc(1, sizeof *i);
    if (!i || (d->inst_size && !(i->state = calloc(1, d->inst_size)))) {
        free(i);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    i->refs = 1;
    if (d->kind == RI_KIND_HEADER && d->abi_minor < 3) {
        if (!(i->serial = malloc(sizeof *i->serial)) ||
            pthread_mutex_init(i->serial, NULL) != 0) {
            free(i->serial);
            free(i->state);
            free(i);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    i->mod = ri_module_ref(m);
    i->settings = settings;
    i->loop = loop;
    i->role = role;
    snprintf(i->prefix, sizeof i->prefix, "%s", d->name);
    char perr[256] = "";
    int rc = d->create(api, i, i->state, perr, sizeof perr);
    i->settings = NULL; /* the config it came from may go away after a reload */
    if (rc < 0) {
        snprintf(err, errlen, "plugin '%s': %s", d->name, perr[0] ? perr : "create failed");
        inst_cleanup(i);
        ri_module_unref(i->mod);
        free_serial(i);
        free(i->state);
        free(i);
        return NULL;
    }
    return i;
}

struct ri_inst *ri_inst_ref(struct ri_inst *i)
{
    if (i)
        i->refs++;
    return i;
}

void ri_inst_unref(struct ri_inst *i)
{
    if (!i || --i->refs > 0)
        return;
    i->mod->desc.destroy(i->state);
    inst_cleanup(i);
    ri_module_unref(i->mod);
    free_serial(i);
    free(i->state);
    free(i);
}

/* ---- a config's plugins -------------------------------------------------------- */
static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 48)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static void check_settings_keys(const struct ri_module *m, const struct ri_plugin_conf *pc,
                                const struct ri_config *c, struct ri_errs *errs)
{
    const char *const *keys = m->desc.keys;
    if (!keys)
        return;
    int n = config_setting_length(pc->group);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(pc->group, (unsigned)i);
        const char *k = config_setting_name(s);
        if (!k || !strcmp(k, "name") || !strcmp(k, "enabled") || !strcmp(k, "file"))
            continue;
        int ok = 0;
        for (const char *const *p = keys; *p; p++)
            ok |= strcmp(*p, k) == 0;
        if (!ok)
            ri_errs_add(errs, c->path, (int)config_setting_source_line(s),
                        "plugin '%s' has no setting '%s'", m->desc.name, k);
    }
}

static const char *conf_file(const struct ri_plugin_conf *pc)
{
    config_setting_t *fs = config_setting_get_member(pc->group, "file");
    return fs && config_setting_type(fs) == CONFIG_TYPE_STRING ? config_setting_get_string(fs)
                                                               : NULL;
}

int ri_plugin_conf_path(const struct ri_config *c, const struct ri_plugin_conf *pc, char *path,
                        size_t cap, char *err, size_t errlen)
{
    const char *file = conf_file(pc);
    if (!file && config_setting_get_member(pc->group, "file"))
        return snprintf(err, errlen, "plugin '%s': 'file' must be a string", pc->name), -1;
    if (!file && !valid_name(pc->name))
        return snprintf(err, errlen, "plugin name '%s' must be [a-z0-9_]+ (or give file = "
                        "\"...\")", pc->name), -1;
    if (file && file[0] == '/')
        snprintf(path, cap, "%s", file);
    else if (file)
        snprintf(path, cap, "%s/%s", c->dir, file);
    else
        snprintf(path, cap, "%s/%s.so", c->plugin_dir ? c->plugin_dir : ri_plugin_default_dir(),
                 pc->name);
    return 0;
}

int ri_plugin_role_check(const struct ri_module *m, int role, char *err, size_t errlen)
{
    unsigned kind = m->desc.kind;
    int only = kind == RI_KIND_LISTENER ? RI_ROLE_EDGE : kind == RI_KIND_HEADER ? RI_ROLE_HUB : 0;
    if (!only || !role || role == only)
        return 0;
    const char *mine = role == RI_ROLE_HUB ? "hub" : "edge";
    const char *its = only == RI_ROLE_HUB ? "hub" : "edge";
    return snprintf(err, errlen, "plugin '%s' is a %s plugin, which only runs on the %s: remove "
                    "it from this %s config (or set enabled = false)", m->desc.name,
                    ri_kind_name(kind), its, mine), -1;
}

struct ri_plugins *ri_plugins_load(const struct ri_config *c, struct ev_loop *loop,
                                   const struct ri_core_api *api, struct ri_errs *errs)
{
    struct ri_plugins *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    size_t before = errs->n;
    const char *names[RI_KIND_MAX_ + 1] = {0};
    for (size_t k = 0; k < c->n_plugins; k++) {
        const struct ri_plugin_conf *pc = &c->plugins[k];
        if (!pc->enabled)
            continue; /* disabled plugins are not loaded at all */
        char path[PATH_MAX], err[768];
        if (ri_plugin_conf_path(c, pc, path, sizeof path, err, sizeof err) < 0) {
            ri_errs_add(errs, c->path, pc->line, "%s", err);
            continue;
        }
        /* with an explicit file the declared name is authoritative */
        struct ri_module *m = ri_module_open(path, conf_file(pc) ? NULL : pc->name, err,
                                             sizeof err);
        if (!m) {
            ri_errs_add(errs, c->path, pc->line, "%s", err);
            continue;
        }
        if (ri_plugin_role_check(m, c->role, err, sizeof err) < 0) {
            ri_errs_add(errs, c->path, pc->line, "%s", err);
            ri_module_unref(m);
            continue;
        }
        int dup = 0;
        for (unsigned kind = 1; kind <= RI_KIND_MAX_; kind++)
            if (p->by_kind[kind] && strcmp(p->by_kind[kind]->desc.name, m->desc.name) == 0) {
                ri_errs_add(errs, c->path, pc->line,
                            "%s: duplicate plugin name '%s' (already loaded from %s)", path,
                            m->desc.name, p->by_kind[kind]->path);
                dup = 1;
            }
        unsigned kind = m->desc.kind;
        if (!dup && p->by_kind[kind]) {
            ri_errs_add(errs, c->path, pc->line,
                        "plugin '%s': a %s plugin ('%s') is already enabled; enable one per kind",
                        m->desc.name, ri_kind_name(kind), names[kind]);
            dup = 1;
        }
        if (dup) {
            ri_module_unref(m);
            continue;
        }
        p->by_kind[kind] = m;
        p->settings[kind] = pc->group;
        p->line[kind] = pc->line;
        names[kind] = m->desc.name;
        check_settings_keys(m, pc, c, errs);
    }
    if (c->role && !p->by_kind[RI_KIND_AUTH] && errs->n == before)
        ri_errs_add(errs, c->path, c->plugins_line,
                    "no auth plugin enabled: a tunnel needs one (e.g. { name = \"auth_secret\"; })");
    if (c->role == RI_ROLE_EDGE && !p->by_kind[RI_KIND_LISTENER] && errs->n == before)
        ri_errs_add(errs, c->path, c->plugins_line,
                    "no listener plugin enabled: an edge needs one (e.g. { name = \"listen_tcp\"; })");
    if (errs->n > before) {
        ri_plugins_free(p);
        return NULL;
    }
    /* per-config instances: create reads settings and may refuse them; for
     * the per-tunnel kinds one throw-away instance reports bad settings now,
     * not when the first tunnel comes up */
    for (unsigned kind = 1; kind <= RI_KIND_MAX_; kind++) {
        struct ri_module *m = p->by_kind[kind];
        if (!m)
            continue;
        char err[512];
        struct ri_inst *i = ri_inst_create(m, p->settings[kind], loop, c->role, api, err,
                                           sizeof err);
        if (!i)
            ri_errs_add(errs, c->path, p->line[kind], "%s", err);
        else if (kind == RI_KIND_AUTH)
            p->auth = i;
        else if (kind == RI_KIND_LISTENER)
            p->listener = i;
        else if (kind == RI_KIND_HEADER)
            p->header = i;
        else if (kind == RI_KIND_SERVICE)
            p->service = i;
        else
            ri_inst_unref(i);
    }
    if (errs->n > before) {
        ri_plugins_free(p);
        return NULL;
    }
    return p;
}

void ri_plugins_free(struct ri_plugins *p)
{
    if (!p)
        return;
    ri_inst_unref(p->auth);
    ri_inst_unref(p->listener);
    ri_inst_unref(p->header);
    ri_inst_unref(p->service);
    for (unsigned kind = 1; kind <= RI_KIND_MAX_; kind++)
        ri_module_unref(p->by_kind[kind]);
    free(p);
}

int ri_settings_equal(const config_setting_t *a, const config_setting_t *b)
{
    if (!a || !b)
        return a == b;
    int t = config_setting_type(a);
    if (t != config_setting_type(b))
        return 0;
    const char *na = config_setting_name(a), *nb = config_setting_name(b);
    if ((na == NULL) != (nb == NULL) || (na && strcmp(na, nb) != 0))
        return 0;
    switch (t) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return config_setting_get_int64(a) == config_setting_get_int64(b);
    case CONFIG_TYPE_FLOAT:
        return config_setting_get_float(a) == config_setting_get_float(b);
    case CONFIG_TYPE_BOOL:
        return config_setting_get_bool(a) == config_setting_get_bool(b);
    case CONFIG_TYPE_STRING:
        return strcmp(config_setting_get_string(a), config_setting_get_string(b)) == 0;
    }
    int n = config_setting_length(a);
    if (n != config_setting_length(b))
        return 0;
    for (int i = 0; i < n; i++) /* groups: same members in the same order */
        if (!ri_settings_equal(config_setting_get_elem(a, (unsigned)i),
                               config_setting_get_elem(b, (unsigned)i)))
            return 0;
    return 1;
}

struct export_ctx {
    struct ri_fdpool *pool;
};

static void export_one(void *arg, const char *bind_address, uint16_t port, int fd)
{
    struct export_ctx *x = arg;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d >= 0)
        ri_fdpool_put(x->pool, bind_address, port, d);
}

struct open_ctx {
    uint16_t *out;
    size_t cap, n;
};

static void note_open(void *arg, const char *bind_address, uint16_t port, int fd)
{
    struct open_ctx *x = arg;
    (void)bind_address, (void)fd;
    if (x->n < x->cap)
        x->out[x->n++] = port;
}

int ri_listen_open_ports(struct ri_inst *i, uint16_t *out, size_t cap)
{
    if (i->mod->ops.listener.fds == noop_listen_fds)
        return -1;
    struct open_ctx x = {.out = out, .cap = cap};
    i->mod->ops.listener.fds(i->state, note_open, &x);
    return (int)x.n;
}

void ri_listen_export(struct ri_inst *i, struct ri_fdpool *pool)
{
    struct export_ctx x = {.pool = pool};
    i->mod->ops.listener.fds(i->state, export_one, &x);
}
