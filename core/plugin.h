/* plugin.h -- loading plugin .so files and creating their instances. */
#ifndef RI_PLUGIN_LOADER_H
#define RI_PLUGIN_LOADER_H

#include <libconfig.h>

#include "config.h"
#include "errs.h"
#include "ri_plugin.h"

struct ri_module {
    char *path;
    void *dl;
    const struct ri_plugin *desc;
    const struct ri_plugin_conf *pc; /* its entry in the config */
};

struct ri_inst {
    const struct ri_module *mod;
    const config_setting_t *settings;
    void *state; /* desc->inst_size bytes */
    char prefix[80]; /* log prefix */
};

/* The enabled plugins of one config, at most one per kind. */
struct ri_plugins {
    struct ri_module *mods;
    size_t n;
    struct ri_module *by_kind[RI_KIND_MAX_ + 1];
    /* per-config instances (auth, listener, header); sched and classify
     * instances are per tunnel: see ri_inst_create. */
    struct ri_inst *auth, *listener, *header;
};

const char *ri_kind_name(unsigned kind);

/* Where plugins are found when the config sets no plugin_dir: beside the
 * binary (<bindir>/plugins), then <bindir>/../lib/ri/plugins, then the
 * compiled-in install folder. Returns a static buffer. */
const char *ri_plugin_default_dir(void);

/* Loads one .so and checks its descriptor; NULL with a message naming the
 * file in err. `want_name` may be NULL (skip the name check). */
int ri_module_open(struct ri_module *m, const char *path, const char *want_name, char *err,
                   size_t errlen);
void ri_module_close(struct ri_module *m);

/* Loads every enabled plugin of c and creates the per-config instances. */
struct ri_plugins *ri_plugins_load(const struct ri_config *c, struct ri_errs *errs);
void ri_plugins_free(struct ri_plugins *p);

struct ri_inst *ri_inst_create(const struct ri_module *m, char *err, size_t errlen);
void ri_inst_destroy(struct ri_inst *i);

#endif
