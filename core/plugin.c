/* plugin.c -- the plugin loader: dlopen with RTLD_NOW|RTLD_LOCAL, descriptor
 * checks (each refusal has its own message naming the file), instances. */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "log.h"

#ifndef RI_PLUGIN_DIR_DEFAULT
#define RI_PLUGIN_DIR_DEFAULT "/usr/local/lib/ri/plugins"
#endif

const char *ri_kind_name(unsigned kind)
{
    static const char *const names[] = {"?", "auth", "listener", "header", "sched", "classify"};
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

/* Required ops per kind: the hot path never tests for NULL. */
static const char *missing_op(const struct ri_plugin *d)
{
    const void *ops = d->ops;
    switch (d->kind) {
    case RI_KIND_AUTH: {
        const struct ri_auth_ops *o = ops;
        return o->step ? NULL : "step";
    }
    case RI_KIND_LISTENER: {
        const struct ri_listener_ops *o = ops;
        return o->apply ? NULL : "apply";
    }
    case RI_KIND_HEADER: {
        const struct ri_header_ops *o = ops;
        return o->build ? NULL : "build";
    }
    case RI_KIND_SCHED: {
        const struct ri_sched_ops *o = ops;
        if (!o->enqueue) return "enqueue";
        if (!o->dequeue) return "dequeue";
        if (!o->remove) return "remove";
        return NULL;
    }
    case RI_KIND_CLASSIFY: {
        const struct ri_classify_ops *o = ops;
        return o->classify ? NULL : "classify";
    }
    }
    return NULL;
}

int ri_module_open(struct ri_module *m, const char *path, const char *want_name, char *err,
                   size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (access(path, R_OK) != 0) {
        snprintf(err, errlen, "%s: cannot open plugin: %s", path, strerror(errno));
        return -1;
    }
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        snprintf(err, errlen, "%s: cannot load plugin: %s", path, e ? e : "unknown error");
        return -1;
    }
    const struct ri_plugin *d = dlsym(dl, RI_PLUGIN_SYMBOL);
    const char *why = NULL;
    char buf[256];
    if (!d) {
        why = "has no '" RI_PLUGIN_SYMBOL "' symbol: not an ri plugin (export "
              "`const struct ri_plugin ri_plugin`)";
    } else if (d->abi_major != RI_ABI_MAJOR) {
        snprintf(buf, sizeof buf,
                 "built for plugin ABI %u.%u, this ri-core speaks ABI %u.%u: rebuild the "
                 "plugin against this ri-core's sdk/",
                 d->abi_major, d->abi_minor, RI_ABI_MAJOR, RI_ABI_MINOR);
        why = buf;
    } else if (d->abi_minor > RI_ABI_MINOR) {
        snprintf(buf, sizeof buf,
                 "needs plugin ABI %u.%u, newer than this ri-core's %u.%u: upgrade ri-core",
                 d->abi_major, d->abi_minor, RI_ABI_MAJOR, RI_ABI_MINOR);
        why = buf;
    } else if (d->struct_size < sizeof(struct ri_plugin)) {
        snprintf(buf, sizeof buf, "descriptor is %u bytes, expected at least %zu",
                 d->struct_size, sizeof(struct ri_plugin));
        why = buf;
    } else if (d->kind < 1 || d->kind > RI_KIND_MAX_) {
        snprintf(buf, sizeof buf, "unknown plugin kind %u (known: 1-%d)", d->kind,
                 RI_KIND_MAX_);
        why = buf;
    } else if (!d->name || !d->name[0]) {
        why = "descriptor has no name";
    } else if (!d->ops) {
        snprintf(buf, sizeof buf, "%s plugin '%s' has no ops table", ri_kind_name(d->kind),
                 d->name);
        why = buf;
    } else if (missing_op(d)) {
        snprintf(buf, sizeof buf, "%s plugin '%s' lacks the required op '%s'",
                 ri_kind_name(d->kind), d->name, missing_op(d));
        why = buf;
    } else if (want_name && strcmp(d->name, want_name) != 0) {
        snprintf(buf, sizeof buf, "declares itself '%s', not '%s'", d->name, want_name);
        why = buf;
    }
    if (why) {
        snprintf(err, errlen, "%s: %s", path, why);
        dlclose(dl);
        return -1;
    }
    m->path = strdup(path);
    m->dl = dl;
    m->desc = d;
    return 0;
}

void ri_module_close(struct ri_module *m)
{
    if (m->dl)
        dlclose(m->dl);
    free(m->path);
    memset(m, 0, sizeof *m);
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 48)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static int check_settings_keys(const struct ri_module *m, const struct ri_config *c,
                               struct ri_errs *errs)
{
    const char *const *keys = m->desc->keys;
    if (!keys)
        return 0;
    int bad = 0, n = config_setting_length(m->pc->group);
    for (int i = 0; i < n; i++) {
        config_setting_t *s = config_setting_get_elem(m->pc->group, (unsigned)i);
        const char *k = config_setting_name(s);
        if (!k || !strcmp(k, "name") || !strcmp(k, "enabled") || !strcmp(k, "file"))
            continue;
        int ok = 0;
        for (const char *const *p = keys; *p; p++)
            ok |= strcmp(*p, k) == 0;
        if (!ok) {
            ri_errs_add(errs, c->path, (int)config_setting_source_line(s),
                        "plugin '%s' has no setting '%s'", m->desc->name, k);
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

struct ri_inst *ri_inst_create(const struct ri_module *m, char *err, size_t errlen)
{
    const struct ri_plugin *d = m->desc;
    struct ri_inst *i = calloc(1, sizeof *i);
    if (!i) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    i->mod = m;
    i->settings = m->pc ? m->pc->group : NULL;
    snprintf(i->prefix, sizeof i->prefix, "%s", d->name);
    if (d->inst_size && !(i->state = calloc(1, d->inst_size))) {
        free(i);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (d->create) {
        char perr[256] = "";
        if (d->create(&ri_core_api, i, i->state, perr, sizeof perr) < 0) {
            snprintf(err, errlen, "plugin '%s': %s", d->name, perr[0] ? perr : "create failed");
            free(i->state);
            free(i);
            return NULL;
        }
    }
    return i;
}

void ri_inst_destroy(struct ri_inst *i)
{
    if (!i)
        return;
    if (i->mod->desc->destroy)
        i->mod->desc->destroy(i->state);
    free(i->state);
    free(i);
}

struct ri_plugins *ri_plugins_load(const struct ri_config *c, struct ri_errs *errs)
{
    struct ri_plugins *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->mods = calloc(c->n_plugins + 1, sizeof *p->mods);
    const char *dir = c->plugin_dir ? c->plugin_dir : ri_plugin_default_dir();
    size_t before = errs->n;
    for (size_t k = 0; k < c->n_plugins; k++) {
        const struct ri_plugin_conf *pc = &c->plugins[k];
        if (!pc->enabled)
            continue; /* disabled plugins are not loaded at all */
        const char *file = NULL;
        config_setting_t *fs = config_setting_get_member(pc->group, "file");
        if (fs && config_setting_type(fs) == CONFIG_TYPE_STRING)
            file = config_setting_get_string(fs);
        else if (fs) {
            ri_errs_add(errs, c->path, pc->line, "plugin '%s': 'file' must be a string", pc->name);
            continue;
        }
        if (!file && !valid_name(pc->name)) {
            ri_errs_add(errs, c->path, pc->line,
                        "plugin name '%s' must be [a-z0-9_]+ (or give file = \"...\")", pc->name);
            continue;
        }
        char path[PATH_MAX], err[768];
        if (file && file[0] == '/')
            snprintf(path, sizeof path, "%s", file);
        else if (file)
            snprintf(path, sizeof path, "%s/%s", c->dir, file);
        else
            snprintf(path, sizeof path, "%s/%s.so", dir, pc->name);
        struct ri_module m;
        /* with an explicit file the declared name is authoritative */
        if (ri_module_open(&m, path, file ? NULL : pc->name, err, sizeof err) < 0) {
            ri_errs_add(errs, c->path, pc->line, "%s", err);
            continue;
        }
        m.pc = pc;
        int dup = 0;
        for (size_t j = 0; j < p->n; j++)
            if (strcmp(p->mods[j].desc->name, m.desc->name) == 0) {
                ri_errs_add(errs, c->path, pc->line,
                            "%s: duplicate plugin name '%s' (already loaded from %s)", path,
                            m.desc->name, p->mods[j].path);
                dup = 1;
            }
        unsigned kind = m.desc->kind;
        if (!dup && p->by_kind[kind]) {
            ri_errs_add(errs, c->path, pc->line,
                        "plugin '%s': a %s plugin ('%s') is already enabled; enable one per kind",
                        m.desc->name, ri_kind_name(kind), p->by_kind[kind]->desc->name);
            dup = 1;
        }
        if (dup) {
            ri_module_close(&m);
            continue;
        }
        p->mods[p->n] = m;
        p->by_kind[kind] = &p->mods[p->n];
        p->n++;
        check_settings_keys(&p->mods[p->n - 1], c, errs);
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
    /* per-config instances: create reads settings and may refuse them */
    ri_api_set_role(c->role);
    struct { unsigned kind; struct ri_inst **slot; } single[] = {
        {RI_KIND_AUTH, &p->auth}, {RI_KIND_LISTENER, &p->listener}, {RI_KIND_HEADER, &p->header}};
    for (size_t k = 0; k < sizeof single / sizeof single[0]; k++) {
        struct ri_module *m = p->by_kind[single[k].kind];
        if (!m)
            continue;
        char err[512];
        if (!(*single[k].slot = ri_inst_create(m, err, sizeof err)))
            ri_errs_add(errs, c->path, m->pc->line, "%s", err);
    }
    /* sched/classify: create one throw-away instance so bad settings are
     * reported now, not when the first tunnel comes up */
    for (unsigned kind = RI_KIND_SCHED; kind <= RI_KIND_CLASSIFY; kind++) {
        struct ri_module *m = p->by_kind[kind];
        if (!m)
            continue;
        char err[512];
        struct ri_inst *i = ri_inst_create(m, err, sizeof err);
        if (!i)
            ri_errs_add(errs, c->path, m->pc->line, "%s", err);
        ri_inst_destroy(i);
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
    ri_inst_destroy(p->auth);
    ri_inst_destroy(p->listener);
    ri_inst_destroy(p->header);
    for (size_t i = 0; i < p->n; i++)
        ri_module_close(&p->mods[i]);
    free(p->mods);
    free(p);
}
