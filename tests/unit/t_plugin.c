/* the plugin loader (core/plugin.c) with the test plugins of tests/plugins/
 * (built into $RI_BUILD/test-plugins) and the real ones ($RI_BUILD/plugins).
 * Every config below is a hub with auth_secret plus the entries under test;
 * "#<" marks the entry an error must be reported at. */
#include <dlfcn.h>
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "api.h"
#include "cfgu.h"
#include "config.h"
#include "plugin.h"
#include "t.h"

#define AUTH "  { name = \"auth_secret\"; file = \"@P@/auth_secret.so\"; },\n"

static size_t n_loaded(const struct ri_plugins *p)
{
    size_t n = 0;
    for (unsigned k = 1; p && k <= RI_KIND_MAX_; k++)
        n += p->by_kind[k] != NULL;
    return n;
}

struct loaded {
    struct ri_config *cfg;
    struct ri_plugins *pl;
    struct ri_errs errs;
    char path[4096];
    int mark; /* line of "#<", 0 if none */
};

static void unload(struct loaded *l)
{
    ri_plugins_free(l->pl);
    ri_config_free(l->cfg);
    ri_errs_free(&l->errs);
    memset(l, 0, sizeof *l);
}

/* A hub config with plugin_dir = test-plugins and the given plugin entries.
 * The config itself must be valid; l->pl is what the loader made of it. */
static int load(const char *file, int line, struct loaded *l, const char *entries)
{
    char text[8192], tp[4200];
    memset(l, 0, sizeof *l);
    snprintf(tp, sizeof tp, "%s/test-plugins/tp_settings.so", t_build_dir());
    if (access(tp, R_OK) != 0)
        return t_fail_at(file, line, "%s is missing: build with `make unit` (RI_BUILD=%s)", tp,
                         t_build_dir());
    snprintf(text, sizeof text,
             "role = \"hub\";\nplugin_dir = \"@TP@\";\nplugins = (\n%s);\n"
             "hub = { listen = \"127.0.0.1:8443\"; };\n", entries);
    l->mark = u_marked_line(text, "#<");
    if (u_write_cfg(l->path, sizeof l->path, "hub.cfg", text) < 0)
        return t_fail_at(file, line, "cannot write %s", l->path);
    l->cfg = ri_config_load(l->path, &l->errs);
    if (!l->cfg) {
        t_fail_at(file, line, "config refused: %s", u_errs_str(&l->errs));
        unload(l);
        return -1;
    }
    l->pl = ri_plugins_load(l->cfg, t_loop(), &ri_core_api, &l->errs);
    return 0;
}

/* The entries must be refused with exactly one error at the "#<" line that
 * names the .so file (when so is given) and holds both words. */
static int refused(const char *file, int line, const char *entries, const char *so,
                   const char *w1, const char *w2)
{
    struct loaded l;
    if (load(file, line, &l, entries) < 0)
        return -1;
    int rc = 0;
    char sopath[4200];
    snprintf(sopath, sizeof sopath, "%s/test-plugins/%s", t_build_dir(), so ? so : "");
    if (l.pl)
        rc = t_fail_at(file, line, "plugins loaded, wanted \"%s\"", w1);
    else if (u_has_err(file, line, &l.errs, l.path, l.mark, w1) < 0 ||
             (w2 && u_has_err(file, line, &l.errs, l.path, l.mark, w2) < 0) ||
             (so && u_has_err(file, line, &l.errs, l.path, l.mark, sopath) < 0))
        rc = -1;
    else if (l.errs.n != 1)
        rc = t_fail_at(file, line, "%zu errors, wanted 1: %s", l.errs.n, u_errs_str(&l.errs));
    unload(&l);
    return rc;
}
#define CHECK_REFUSED(entries, so, w1, w2) \
    CHECK(refused(__FILE__, __LINE__, entries, so, w1, w2) == 0)

TEST(plugin_real_plugins_load)
{
    struct loaded l;
    CHECK(load(__FILE__, __LINE__, &l, AUTH
               "  { name = \"header_proxy_v1\"; file = \"@P@/header_proxy_v1.so\"; }\n") == 0);
    int ok = l.pl && n_loaded(l.pl) == 2 && l.pl->auth && l.pl->header && !l.pl->listener &&
             !strcmp(l.pl->by_kind[RI_KIND_AUTH]->desc.name, "auth_secret") &&
             !strcmp(l.pl->by_kind[RI_KIND_HEADER]->desc.name, "header_proxy_v1") &&
             !l.pl->by_kind[RI_KIND_SCHED];
    char why[1024];
    snprintf(why, sizeof why, "%s", u_errs_str(&l.errs));
    unload(&l);
    CHECK_MSG(ok, "%s", why);
}

TEST(plugin_needs_auth)
{
    struct loaded l;
    CHECK(load(__FILE__, __LINE__, &l, "  { name = \"tp_settings\"; answer = 42; }\n") == 0);
    /* reported at the `plugins = (` line */
    int rc = l.pl ? -1 : u_has_err(__FILE__, __LINE__, &l.errs, l.path, 3, "no auth plugin enabled");
    size_t n = l.errs.n;
    unload(&l);
    CHECK(rc == 0);
    CHECK_INT(n, 1);
}

TEST(plugin_refuses_abi_major)
{
    char w[64];
    snprintf(w, sizeof w, "built for plugin ABI %d.0, this ri-core speaks ABI %d.%d",
             RI_ABI_MAJOR + 1, RI_ABI_MAJOR, RI_ABI_MINOR);
    CHECK_REFUSED(AUTH "  { name = \"tp_abi_major\"; } #<\n", "tp_abi_major.so", w, "rebuild");
}

TEST(plugin_refuses_abi_minor)
{
    char w[64];
    snprintf(w, sizeof w, "needs plugin ABI %d.%d", RI_ABI_MAJOR, RI_ABI_MINOR + 1);
    CHECK_REFUSED(AUTH "  { name = \"tp_abi_minor\"; } #<\n", "tp_abi_minor.so", w,
                  "upgrade ri-core");
}

TEST(plugin_refuses_no_symbol)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_nosym\"; } #<\n", "tp_nosym.so",
                  "has no 'ri_plugin' symbol", NULL);
}

TEST(plugin_refuses_missing_op)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_noop\"; } #<\n", "tp_noop.so",
                  "sched plugin 'tp_noop' lacks the required op 'dequeue'", NULL);
}

TEST(plugin_refuses_unknown_kind)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_badkind\"; } #<\n", "tp_badkind.so",
                  "unknown plugin kind 99", NULL);
}

TEST(plugin_refuses_duplicate_name)
{
    CHECK_REFUSED(AUTH "  { name = \"first\"; file = \"@TP@/tp_dup_a.so\"; },\n"
                       "  { name = \"second\"; file = \"@TP@/tp_dup_b.so\"; } #<\n",
                  "tp_dup_b.so", "duplicate plugin name 'tp_dup'", "tp_dup_a.so)");
}

TEST(plugin_refuses_wrong_declared_name)
{
    /* found by name in plugin_dir: the file must call itself that name */
    CHECK_REFUSED(AUTH "  { name = \"tp_dup_a\"; } #<\n", "tp_dup_a.so",
                  "declares itself 'tp_dup', not 'tp_dup_a'", NULL);
}

TEST(plugin_refuses_unresolved_symbol)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_undef\"; } #<\n", "tp_undef.so", "cannot load plugin",
                  "ri_no_such_function");
}

TEST(plugin_refuses_missing_file)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_not_built\"; } #<\n", "tp_not_built.so",
                  "cannot open plugin", "No such file");
    CHECK_REFUSED(AUTH "  { name = \"Bad-Name\"; } #<\n", NULL, "must be [a-z0-9_]+", NULL);
}

TEST(plugin_refuses_two_of_a_kind)
{
    CHECK_REFUSED(AUTH "  { name = \"header_proxy_v1\"; file = \"@P@/header_proxy_v1.so\"; },\n"
                       "  { name = \"tp_settings\"; answer = 42; } #<\n",
                  NULL, "plugin 'tp_settings': a header plugin ('header_proxy_v1') is already "
                        "enabled", NULL);
}

TEST(plugin_settings_reach_create)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; answer = 7; label = \"hello\"; #<\n"
                       "    verbose = true; ratio = 0.25; }\n",
                  NULL, "plugin 'tp_settings': got answer=7 label=hello verbose=1 ratio=0.25",
                  NULL);
    /* an int where a float is asked for is accepted */
    struct loaded l;
    CHECK(load(__FILE__, __LINE__, &l, AUTH
               "  { name = \"tp_settings\"; answer = 42; ratio = 3; label = \"x y\"; }\n") == 0);
    char seen[256] = "(not loaded)", why[1024];
    snprintf(why, sizeof why, "%s", u_errs_str(&l.errs));
    if (l.pl && l.pl->header) {
        const char *s = dlsym(l.pl->by_kind[RI_KIND_HEADER]->dl, "tp_settings_seen");
        snprintf(seen, sizeof seen, "%s", s ? s : "(no symbol)");
    }
    unload(&l);
    CHECK_MSG(strcmp(why, "(no errors)") == 0, "%s", why);
    CHECK_STR(seen, "answer=42 label=x y verbose=0 ratio=3");
}

TEST(plugin_settings_types_checked)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; } #<\n", NULL,
                  "plugin 'tp_settings': answer: missing (-ENOENT)", NULL);
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; answer = \"42\"; } #<\n", NULL,
                  "answer: wrong type (-EINVAL)", NULL);
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; answer = 42; label = 5; } #<\n", NULL,
                  "label: wrong type (-EINVAL)", NULL);
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; answer = 42; verbose = 1; } #<\n", NULL,
                  "verbose: wrong type (-EINVAL)", NULL);
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; answer = 42; ratio = \"0.5\"; } #<\n", NULL,
                  "ratio: wrong type (-EINVAL)", NULL);
}

TEST(plugin_refuses_unknown_setting)
{
    CHECK_REFUSED(AUTH "  { name = \"tp_settings\"; answer = 42;\n"
                       "    anwser = 42; } #<\n",
                  NULL, "plugin 'tp_settings' has no setting 'anwser'", NULL);
    /* header_proxy_v1 declares an empty key list: it takes no settings */
    CHECK_REFUSED(AUTH "  { name = \"header_proxy_v1\"; file = \"@P@/header_proxy_v1.so\";\n"
                       "    version = 2; } #<\n",
                  NULL, "plugin 'header_proxy_v1' has no setting 'version'", NULL);
}

TEST(plugin_disabled_is_not_loaded)
{
    /* a disabled entry is never opened, even when its file is broken */
    static const char *const broken[] = {"tp_abi_major", "tp_nosym", "tp_undef", "tp_badkind",
                                         "tp_not_built"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        char entries[512];
        snprintf(entries, sizeof entries, AUTH "  { name = \"%s\"; enabled = false; }\n",
                 broken[i]);
        struct loaded l;
        CHECK(load(__FILE__, __LINE__, &l, entries) == 0);
        int ok = l.pl && n_loaded(l.pl) == 1;
        char why[1024];
        snprintf(why, sizeof why, "%s", u_errs_str(&l.errs));
        unload(&l);
        CHECK_MSG(ok, "disabled %s: %s", broken[i], why);
        /* and enabling it again brings the refusal back */
        snprintf(entries, sizeof entries, AUTH "  { name = \"%s\"; enabled = true; } #<\n",
                 broken[i]);
        CHECK_REFUSED(entries, NULL, broken[i], NULL);
    }
}

TEST(plugin_enable_toggles_loading)
{
    struct loaded l;
    CHECK(load(__FILE__, __LINE__, &l, AUTH
               "  { name = \"tp_settings\"; enabled = false; answer = 1; }\n") == 0);
    int off_ok = l.pl && n_loaded(l.pl) == 1 && !l.pl->header && !l.pl->by_kind[RI_KIND_HEADER];
    unload(&l);
    CHECK(off_ok);
    CHECK(load(__FILE__, __LINE__, &l, AUTH
               "  { name = \"tp_settings\"; enabled = true; answer = 42; }\n") == 0);
    int on_ok = l.pl && n_loaded(l.pl) == 2 && l.pl->header &&
                !strcmp(l.pl->by_kind[RI_KIND_HEADER]->desc.name, "tp_settings");
    char why[1024];
    snprintf(why, sizeof why, "%s", u_errs_str(&l.errs));
    unload(&l);
    CHECK_MSG(on_ok, "%s", why);
    /* two of one kind are fine while one of them is disabled */
    CHECK(load(__FILE__, __LINE__, &l, AUTH
               "  { name = \"header_proxy_v1\"; file = \"@P@/header_proxy_v1.so\"; enabled = false; },\n"
               "  { name = \"tp_settings\"; answer = 42; }\n") == 0);
    int one_ok = l.pl && n_loaded(l.pl) == 2;
    unload(&l);
    CHECK(one_ok);
}

TEST(plugin_module_open_direct)
{
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/plugins/header_proxy_v1.so", t_build_dir());
    struct ri_module *m = ri_module_open(path, "header_proxy_v1", err, sizeof err);
    CHECK_MSG(m, "%s", err);
    int ok = m->desc.kind == RI_KIND_HEADER && m->dl && !strcmp(m->path, path) &&
             m->ops.header.size == sizeof(struct ri_header_ops) && m->ops.header.build &&
             m->desc.create && m->desc.destroy && m->desc.stats; /* defaults filled in */
    ri_module_unref(m);
    CHECK(ok);
    CHECK(ri_module_open(path, "other_name", err, sizeof err) == NULL);
    CHECK_HAS(err, path);
    CHECK_HAS(err, "declares itself 'header_proxy_v1', not 'other_name'");
    CHECK_STR(ri_kind_name(RI_KIND_SCHED), "sched");
    CHECK_STR(ri_kind_name(99), "?");
}

TEST(plugin_older_smaller_tables_load_with_defaults)
{
    /* tp_old_sched was built with a descriptor and an ops table smaller than
     * this core's (as a plugin of an older 2.x minor would be): the core
     * reads only what it declares and fills the rest with no-op defaults */
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/test-plugins/tp_old_sched.so", t_build_dir());
    struct ri_module *m = ri_module_open(path, "tp_old_sched", err, sizeof err);
    CHECK_MSG(m, "%s", err);
    const struct ri_sched_ops *o = &m->ops.sched;
    int ok = o->size == sizeof *o && o->enqueue && o->dequeue && o->remove && o->sent &&
             o->event && m->desc.stats && m->desc.struct_size == sizeof m->desc;
    /* the defaults are callable and harmless */
    struct ri_inst *in = ri_inst_create(m, NULL, t_loop(), RI_ROLE_HUB, &ri_core_api, err,
                                        sizeof err);
    if (in) {
        char sp[64] = {0}, fake;
        struct ri_sched_ctx ctx = {.size = sizeof ctx};
        ri_sched_sent(in, (ri_stream *)(void *)&fake, sp, 10, &ctx);
        ri_sched_event(in, (ri_stream *)(void *)&fake, sp, RI_EV_OPENED, 0);
        in->mod->desc.stats(in->state, NULL, NULL);
    }
    ri_inst_unref(in);
    ri_module_unref(m);
    CHECK_MSG(in, "%s", err);
    CHECK(ok);
}

TEST(plugin_leftover_timers_are_stopped_at_destroy)
{
    /* tp_leaky creates a timer and an fd watcher in create and never frees
     * them: destroying the instance must stop and free both (ASan would
     * report the leak, and a callback into unmapped code would crash) */
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/test-plugins/tp_leaky.so", t_build_dir());
    struct ri_module *m = ri_module_open(path, "tp_leaky", err, sizeof err);
    CHECK_MSG(m, "%s", err);
    struct ri_inst *in = ri_inst_create(m, NULL, t_loop(), RI_ROLE_HUB, &ri_core_api, err,
                                        sizeof err);
    int had = in && in->timers && in->ios;
    /* ev_run returns whether active watchers remain on the loop */
    int active_before = ev_run(t_loop(), EVRUN_NOWAIT);
    ri_inst_unref(in);
    int active_after = ev_run(t_loop(), EVRUN_NOWAIT);
    ri_module_unref(m);
    CHECK_MSG(had, "tp_leaky did not leave its timer and watcher: %s", err);
    CHECK(active_before);
    CHECK(!active_after);
}

/* ---- a plugin built out of tree ------------------------------------------ */

TEST(plugin_out_of_tree_build)
{
    char so[4200], log[4200], cmd[12800];
    t_path(so, sizeof so, "oot_sched.so");
    t_path(log, sizeof log, "cc.log");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -I sdk -o '%s' "
             "tests/plugins/oot_sched.c >'%s' 2>&1",
             t_src_dir(), so, log);
    int rc = system(cmd);
    if (rc != 0) {
        char out[600] = "";
        FILE *f = fopen(log, "r");
        if (f) {
            size_t n = fread(out, 1, sizeof out - 1, f);
            out[n] = '\0';
            fclose(f);
        }
        FAIL("`%s` exited %d: %s", cmd, rc, out);
    }
    char err[1024];
    struct ri_module *m = ri_module_open(so, "oot_sched", err, sizeof err);
    CHECK_MSG(m, "%s", err);
    const struct ri_plugin *d = &m->desc;
    int meta = d->kind == RI_KIND_SCHED && !strcmp(d->name, "oot_sched") && d->stream_size > 0;

    /* drive it: three fake stream handles through one instance */
    struct ri_inst *in = ri_inst_create(m, NULL, t_loop(), RI_ROLE_HUB, &ri_core_api, err,
                                        sizeof err);
    char fake[3];
    ri_stream *s[3];
    void *sp[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (ri_stream *)(void *)&fake[i];
        sp[i] = calloc(1, d->stream_size);
    }
    ri_stream *got[6] = {0};
    if (in && sp[0] && sp[1] && sp[2]) {
        struct ri_sched_ctx ctx = {.size = sizeof ctx};
        uint32_t max = 65536;
        for (int i = 0; i < 3; i++)
            ri_sched_enqueue(in, s[i], sp[i], RI_CLASS_DATA);
        got[0] = ri_sched_dequeue(in, &ctx, &max);        /* s0 */
        ri_sched_sent(in, got[0], sp[0], 100, &ctx);
        ri_sched_enqueue(in, s[0], sp[0], RI_CLASS_DATA);  /* s1 s2 s0 */
        got[1] = ri_sched_dequeue(in, &ctx, &max);        /* s1 */
        ri_sched_remove(in, s[2], sp[2]);                 /* s0 */
        got[2] = ri_sched_dequeue(in, &ctx, &max);        /* s0 */
        got[3] = ri_sched_dequeue(in, &ctx, &max);        /* empty */
        ri_sched_enqueue(in, s[2], sp[2], RI_CLASS_SUSTAINED);
        got[4] = ri_sched_dequeue(in, &ctx, &max);        /* s2 */
        got[5] = ri_sched_dequeue(in, &ctx, &max);
    }
    ri_inst_unref(in);
    for (int i = 0; i < 3; i++)
        free(sp[i]);
    ri_module_unref(m);
    CHECK(meta);
    CHECK_MSG(in, "create: %s", err);
    CHECK(got[0] == s[0] && got[1] == s[1] && got[2] == s[0] && got[3] == NULL &&
          got[4] == s[2] && got[5] == NULL);
}

/* ---- 2.2: the service kind and api->query -------------------------------- */
static json_t *fake_query(void *arg, json_t *req)
{
    ++*(int *)arg;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    return cmd && !strcmp(cmd, "status") ? json_pack("{s:b, s:s}", "ok", 1, "role", "hub")
                                         : NULL;
}

TEST(plugin_service_kind_and_query)
{
    struct loaded l;
    CHECK(load(__FILE__, __LINE__, &l, AUTH
               "  { name = \"admin_http\"; file = \"@P@/admin_http.so\"; listen = \"127.0.0.1:1\"; }\n")
          == 0);
    struct ri_inst *svc = l.pl ? l.pl->service : NULL;
    int kind_ok = svc && svc->mod->desc.kind == RI_KIND_SERVICE &&
                  !strcmp(ri_kind_name(RI_KIND_SERVICE), "service");
    char why[1024];
    snprintf(why, sizeof why, "%s", u_errs_str(&l.errs));
    char *ans = (char *)"untouched";
    /* not attached to a role yet */
    int rc_detached = svc ? ri_core_api.query(svc, "{\"cmd\":\"status\"}", &ans) : 0;
    int null_after = ans == NULL;
    int calls = 0, rc_ok = -1, rc_other = 0, rc_bad = 0;
    if (svc) {
        svc->query = fake_query;
        svc->query_arg = &calls;
        rc_ok = ri_core_api.query(svc, "{\"cmd\":\"status\"}", &ans);
    }
    int ans_ok = rc_ok == 0 && ans && !strcmp(ans, "{\"ok\":true,\"role\":\"hub\"}");
    ri_core_api.query_free(ans);
    ri_core_api.query_free(NULL);
    if (svc) {
        rc_other = ri_core_api.query(svc, "{\"cmd\":\"reload\"}", &ans);
        rc_bad = ri_core_api.query(svc, "[1, 2", &ans);
    }
    unload(&l);
    CHECK_MSG(kind_ok, "%s", why);
    CHECK(rc_detached == -ENOTCONN && null_after);
    CHECK(ans_ok);
    CHECK(rc_other == -EINVAL && rc_bad == -EINVAL && calls == 2);
}
