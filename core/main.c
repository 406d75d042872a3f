/* main.c -- the ri-core command line: run a role, check a config, manage
 * tokens and secrets, list plugins. */
#include <dirent.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "b64.h"
#include "cycle.h"
#include "frame.h"
#include "log.h"
#include "plugin.h"
#include "role.h"
#include "tls.h"
#include "token.h"
#include "version.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ri-core -c FILE [-t] [-d]     run the hub or edge FILE describes (-t: check it and exit)\n"
            "       ri-core token encode --hub-host H --hub-port P --edge-id E --secret S\n"
            "       ri-core token decode TOKEN\n"
            "       ri-core secret                 print a new random 256-bit secret\n"
            "       ri-core plugins [-c FILE]      list the plugins found in the plugin folder\n"
            "       ri-core -V | --version\n"
            "       ri-core -h | --help\n"
            "\n"
            "  -c, --config FILE   the config file (libconfig syntax; see conf/)\n"
            "  -t, --test          check the config, load its plugins and files (certificates,\n"
            "                      keys, hub_ca, state_dir), resolve its names; exit 0 or 1\n"
            "  -d, --debug         log at debug level whatever the config says\n"
            "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the config.\n");
}

static int cmd_secret(void)
{
    if (ri_tls_init() < 0)
        return 1;
    uint8_t raw[32];
    char out[64];
    if (ri_core_api.random(raw, sizeof raw) < 0) {
        fprintf(stderr, "ri-core: cannot get random bytes\n");
        return 1;
    }
    b64url_encode(raw, sizeof raw, out);
    printf("%s\n", out);
    return 0;
}

static int cmd_token(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "ri-core: token needs 'encode' or 'decode' (see ri-core -h)\n");
        return 2;
    }
    char err[256];
    if (strcmp(argv[1], "decode") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: ri-core token decode TOKEN\n");
            return 2;
        }
        struct ri_token t;
        if (ri_token_decode(argv[2], &t, err, sizeof err) < 0) {
            fprintf(stderr, "ri-core: bad token: %s\n", err);
            return 1;
        }
        char *js = ri_token_to_json(&t);
        printf("%s\n", js ? js : "");
        if (js)
            gnutls_memset(js, 0, strlen(js));
        free(js);
        gnutls_memset(&t, 0, sizeof t);
        return js ? 0 : 1;
    }
    if (strcmp(argv[1], "encode") != 0) {
        fprintf(stderr, "ri-core: unknown token command '%s' (encode or decode)\n", argv[1]);
        return 2;
    }
    static const struct option opts[] = {{"hub-host", required_argument, 0, 'H'},
                                          {"hub-port", required_argument, 0, 'P'},
                                          {"edge-id", required_argument, 0, 'E'},
                                          {"secret", required_argument, 0, 'S'},
                                          {0, 0, 0, 0}};
    struct ri_token t = {0};
    int have = 0, o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *v = optarg;
        char *end;
        switch (o) {
        case 'H':
        case 'E':
        case 'S':
            if (strlen(v) > RI_TOKEN_FIELD_MAX) {
                fprintf(stderr, "ri-core: a value is longer than %d bytes\n", RI_TOKEN_FIELD_MAX);
                return 2;
            }
            strcpy(o == 'H' ? t.hub_host : o == 'E' ? t.edge_id : t.secret, v);
            have |= o == 'H' ? 1 : o == 'E' ? 4 : 8;
            break;
        case 'P':
            t.hub_port = (int)strtol(v, &end, 10);
            if (*end || end == v) {
                fprintf(stderr, "ri-core: --hub-port '%s' is not a number\n", v);
                return 2;
            }
            have |= 2;
            break;
        default:
            return 2;
        }
    }
    if (have != 15 || optind != argc) {
        fprintf(stderr, "usage: ri-core token encode --hub-host H --hub-port P --edge-id E --secret S\n");
        return 2;
    }
    char *tok = ri_token_encode(&t, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "ri-core: %s\n", err);
        return 1;
    }
    printf("%s\n", tok);
    free(tok);
    return 0;
}

static int cmd_plugins(const char *cfg_path)
{
    const char *dir = ri_plugin_default_dir();
    struct ri_config *c = NULL;
    if (cfg_path) {
        struct ri_errs errs = {0};
        if (!(c = ri_config_load(cfg_path, &errs))) {
            ri_errs_print(&errs);
            ri_errs_free(&errs);
            return 1;
        }
        if (c->plugin_dir)
            dir = c->plugin_dir;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ri-core: cannot open plugin folder %s\n", dir);
        ri_config_free(c);
        return 1;
    }
    printf("plugins in %s:\n", dir);
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 4 || strcmp(de->d_name + n - 3, ".so") != 0)
            continue;
        char path[4096], err[768];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct ri_module *m = ri_module_open(path, NULL, err, sizeof err);
        if (!m) {
            printf("  %-20s REFUSED: %s\n", de->d_name, err);
            rc = 1;
            continue;
        }
        printf("  %-20s %-8s ABI %u.%u  %s\n", m->desc.name, ri_kind_name(m->desc.kind),
               RI_ABI_MAJOR, RI_ABI_MINOR, m->desc.description ? m->desc.description : "");
        ri_module_unref(m);
    }
    closedir(d);
    ri_config_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "secret") == 0) {
        if (argc != 2) {
            fprintf(stderr, "usage: ri-core secret\n");
            return 2;
        }
        return cmd_secret();
    }
    int list_plugins = argc >= 2 && strcmp(argv[1], "plugins") == 0;
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                          {"test", no_argument, 0, 't'},
                                          {"debug", no_argument, 0, 'd'},
                                          {"version", no_argument, 0, 'V'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *cfg_path = NULL;
    int test = 0, debug = 0, o;
    if (list_plugins)
        optind = 2;
    while ((o = getopt_long(argc, argv, "c:tdVh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': cfg_path = optarg; break;
        case 't': test = 1; break;
        case 'd': debug = 1; break;
        case 'V':
            printf("ri-core %s (wire protocol %d, plugin ABI %d.%d, GnuTLS %s)\n", RI_VERSION,
                   RI_PROTO_VERSION, RI_ABI_MAJOR, RI_ABI_MINOR, gnutls_check_version(NULL));
            return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ri-core: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (list_plugins)
        return cmd_plugins(cfg_path);
    if (!cfg_path) {
        fprintf(stderr, "ri-core: no config file: use -c FILE (see -h)\n");
        return 2;
    }
    if (ri_tls_init() < 0) {
        fprintf(stderr, "ri-core: GnuTLS initialisation failed\n");
        return 1;
    }
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "ri-core: cannot create the event loop\n");
        return 1;
    }
    ri_module_builtin_sched(); /* adopted once, before any tunnel */
    struct ri_errs errs = {0};
    struct ri_cycle *cy = ri_cycle_load(cfg_path, loop, &ri_core_api, &errs);
    if (!cy) {
        ri_errs_print(&errs);
        fprintf(stderr, "%s: %zu error%s; %s\n", cfg_path, errs.n, errs.n == 1 ? "" : "s",
                test ? "configuration test failed" : "not starting");
        ri_errs_free(&errs);
        return 1;
    }
    const struct ri_config *c = cy->cfg;
    if (test && (c->role == RI_ROLE_HUB ? ri_hub_check(c, &errs) : ri_edge_check(c, &errs)) < 0) {
        ri_errs_print(&errs);
        fprintf(stderr, "%s: %zu error%s; configuration test failed\n", cfg_path, errs.n,
                errs.n == 1 ? "" : "s");
        ri_errs_free(&errs);
        ri_cycle_unref(cy);
        gnutls_global_deinit();
        return 1;
    }
    if (c->secrets_exposed && test)
        fprintf(stderr, "%s: warning: holds secrets but is readable by group or others (mode "
                "%04o): chmod 600 %s\n", cfg_path, c->file_mode, cfg_path);
    if (test) {
        printf("%s: configuration OK: role %s, plugins:", cfg_path,
               c->role == RI_ROLE_HUB ? "hub" : "edge");
        for (unsigned k = 1; k <= RI_KIND_MAX_; k++)
            if (cy->pl->by_kind[k])
                printf(" %s(%s)", cy->pl->by_kind[k]->desc.name, ri_kind_name(k));
        for (size_t i = 0; i < c->n_plugins; i++)
            if (!c->plugins[i].enabled)
                printf(" [%s disabled]", c->plugins[i].name);
        printf("\n");
        ri_cycle_unref(cy);
        gnutls_global_deinit();
        return 0;
    }
    ri_log_level = debug ? RI_LOG_DEBUG : c->log_level;
    if (c->secrets_exposed)
        log_warn("%s holds secrets but is readable by group or others (mode %04o): chmod 600 %s",
                 cfg_path, c->file_mode, cfg_path);
    signal(SIGPIPE, SIG_IGN);
    struct ri_run_opts run = {.loop = loop, .config_path = cfg_path, .debug = debug};
    int rc = c->role == RI_ROLE_HUB ? ri_hub_run(cy, &run) : ri_edge_run(cy, &run);
    ev_loop_destroy(loop);
    gnutls_global_deinit();
    return rc;
}
