/* main.c -- the ri-core command line: run a role, check a config, manage
 * tokens and secrets, list plugins. */
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process.h"
#include "accesslog.h"
#include "api.h"
#include "b64.h"
#include "ctl.h"
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
            "       ri-core token encode --hub-host H --hub-port P --edge-id E --secret-file FILE\n"
            "                            [--also-hub HOST:PORT ...]   (further hubs, edge.hubs)\n"
            "                                      (or --secret S; FILE or S '-': standard input)\n"
            "       ri-core token decode TOKEN | - | --token-file FILE   ('-': standard input)\n"
            "       ri-core secret                 print a new random 256-bit secret\n"
            "       ri-core ctl -s SOCKET [--json] COMMAND [JSON-ARGS]\n"
            "                                      ask a running hub or edge over its control_socket\n"
            "                                      (status, streams, metrics, reload, subscribe; hub:\n"
            "                                      update_edges, provision)\n"
            "       ri-core plugins [-c FILE]      list the plugins in the plugin folder (and those\n"
            "                                      FILE names, checked for its role)\n"
            "       ri-core -V | --version\n"
            "       ri-core -h | --help\n"
            "\n"
            "  -c, --config FILE   the config file (libconfig syntax; see conf/)\n"
            "  -t, --test          check the config, load its plugins and files (certificates,\n"
            "                      keys, hub_ca, state_dir, edges_file), resolve its names;\n"
            "                      exit 0 or 1\n"
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

/* Reads a secret or a token from FILE, or from standard input for "-", so
 * that it is not on the command line (ps, shell history): the whole input,
 * one trailing newline (\n or \r\n) dropped; more lines, a NUL byte,
 * nothing at all or more than cap bytes are errors. 0, or -1 after a
 * message on stderr. */
static int read_value(const char *file, const char *what, char *out, size_t cap)
{
    int in = strcmp(file, "-") == 0;
    const char *name = in ? "standard input" : file;
    FILE *f = in ? stdin : fopen(file, "r");
    if (!f) {
        fprintf(stderr, "ri-core: cannot read the %s from %s: %s\n", what, file, strerror(errno));
        return -1;
    }
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    int rerr = ferror(f);
    if (!in)
        fclose(f);
    int rc = -1;
    if (rerr)
        fprintf(stderr, "ri-core: cannot read the %s from %s\n", what, name);
    else {
        if (n && n < sizeof buf && buf[n - 1] == '\n')
            n--;
        if (n && n < sizeof buf && buf[n - 1] == '\r')
            n--;
        if (n == 0)
            fprintf(stderr, "ri-core: %s is empty: expected the %s\n", name, what);
        else if (n >= cap || n == sizeof buf)
            fprintf(stderr, "ri-core: the %s in %s is longer than %zu bytes\n", what, name,
                    cap - 1);
        else if (memchr(buf, '\n', n) || memchr(buf, '\r', n))
            fprintf(stderr, "ri-core: %s holds more than one line: expected the %s alone\n",
                    name, what);
        else if (memchr(buf, '\0', n))
            fprintf(stderr, "ri-core: the %s in %s contains a NUL byte\n", what, name);
        else {
            memcpy(out, buf, n);
            out[n] = '\0';
            rc = 0;
        }
    }
    gnutls_memset(buf, 0, sizeof buf);
    return rc;
}

static int cmd_token(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "ri-core: token needs 'encode' or 'decode' (see ri-core -h)\n");
        return 2;
    }
    char err[256];
    if (strcmp(argv[1], "decode") == 0) {
        const char *file = argc == 3 && strcmp(argv[2], "-") == 0 ? "-"
                         : argc == 4 && strcmp(argv[2], "--token-file") == 0 ? argv[3]
                         : NULL;
        if (argc != 3 && !file) {
            fprintf(stderr, "usage: ri-core token decode TOKEN | - | --token-file FILE\n");
            return 2;
        }
        static char text[4097]; /* the longest token the decoder takes, and a NUL */
        if (file && read_value(file, "token", text, sizeof text) < 0)
            return 1;
        struct ri_token t;
        int drc = ri_token_decode(file ? text : argv[2], &t, err, sizeof err);
        gnutls_memset(text, 0, sizeof text);
        if (drc < 0) {
            gnutls_memset(&t, 0, sizeof t);
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
                                          {"secret-file", required_argument, 0, 'F'},
                                          {"also-hub", required_argument, 0, 'A'},
                                          {0, 0, 0, 0}};
    struct ri_token t = {0};
    int have = 0, o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *v = optarg;
        char *end;
        switch (o) {
        case 'S':
        case 'F':
            if (have & 8) {
                fprintf(stderr, "ri-core: give the secret once: --secret or --secret-file\n");
                gnutls_memset(&t, 0, sizeof t);
                return 2;
            }
            have |= 8;
            if (o == 'F' || strcmp(v, "-") == 0) {
                if (read_value(v, "secret", t.secret, sizeof t.secret) < 0) {
                    gnutls_memset(&t, 0, sizeof t);
                    return 1;
                }
                break;
            }
            __attribute__((fallthrough)); /* a secret on the command line */
        case 'H':
        case 'E':
            if (strlen(v) > RI_TOKEN_FIELD_MAX) {
                fprintf(stderr, "ri-core: a value is longer than %d bytes\n", RI_TOKEN_FIELD_MAX);
                gnutls_memset(&t, 0, sizeof t);
                return 2;
            }
            strcpy(o == 'H' ? t.hub_host : o == 'E' ? t.edge_id : t.secret, v);
            have |= o == 'H' ? 1 : o == 'E' ? 4 : 8;
            break;
        case 'A': /* a further hub with the same edges (token "H", edge.hubs) */
            if (t.n_hubs >= RI_TOKEN_HUBS_MAX || strlen(v) > RI_TOKEN_FIELD_MAX) {
                fprintf(stderr, "ri-core: at most %d --also-hub of at most %d bytes\n",
                        RI_TOKEN_HUBS_MAX, RI_TOKEN_FIELD_MAX);
                gnutls_memset(&t, 0, sizeof t);
                return 2;
            }
            strcpy(t.hubs[t.n_hubs++], v);
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
        fprintf(stderr, "usage: ri-core token encode --hub-host H --hub-port P --edge-id E "
                        "--secret-file FILE|-  (or --secret S)\n");
        gnutls_memset(&t, 0, sizeof t);
        return 2;
    }
    char *tok = ri_token_encode(&t, err, sizeof err);
    gnutls_memset(&t, 0, sizeof t);
    if (!tok) {
        fprintf(stderr, "ri-core: %s\n", err);
        return 1;
    }
    printf("%s\n", tok);
    gnutls_memset(tok, 0, strlen(tok));
    free(tok);
    return 0;
}

static void print_module(const char *label, const struct ri_module *m, const char *extra)
{
    printf("  %-20s %-8s ABI %u.%u  %s%s\n", label, ri_kind_name(m->desc.kind),
           m->desc.abi_major, m->desc.abi_minor, m->desc.description ? m->desc.description : "",
           extra);
}

/* The plugins a config names, each loaded and checked as -t would (file,
 * descriptor, the role it may run in), with FILE:LINE for every refusal.
 * Returns 1 when one is refused. */
static int list_config_plugins(const struct ri_config *c)
{
    int rc = 0;
    printf("plugins %s names:\n", c->path);
    for (size_t i = 0; i < c->n_plugins; i++) {
        const struct ri_plugin_conf *pc = &c->plugins[i];
        char path[4096], err[768], extra[4200];
        if (!pc->enabled) {
            printf("  %-20s disabled (%s:%d)\n", pc->name, c->path, pc->line);
            continue;
        }
        struct ri_module *m = NULL;
        if (ri_plugin_conf_path(c, pc, path, sizeof path, err, sizeof err) == 0 &&
            (m = ri_module_open(path, config_setting_get_member(pc->group, "file") ? NULL
                                                                                  : pc->name,
                                err, sizeof err)) &&
            ri_plugin_role_check(m, c->role, err, sizeof err) == 0) {
            snprintf(extra, sizeof extra, " (%s, %s:%d)", path, c->path, pc->line);
            print_module(m->desc.name, m, extra);
        } else {
            printf("  %-20s REFUSED: %s:%d: %s\n", pc->name, c->path, pc->line, err);
            rc = 1;
        }
        ri_module_unref(m);
    }
    return rc;
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
    int rc = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ri-core: cannot open plugin folder %s\n", dir);
        rc = 1;
    } else {
        printf("plugins in %s:\n", dir);
        struct dirent *de;
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
            print_module(m->desc.name, m, "");
            ri_module_unref(m);
        }
        closedir(d);
    }
    if (c && list_config_plugins(c))
        rc = 1;
    ri_config_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    ri_token_secure_json(); /* before any JSON value exists */
    if (argc >= 2 && strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return ri_ctl_main(argc - 1, argv + 1);
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
    if (test) {
        char e[400];
        if (ri_accesslog_check(c->access_log, e, sizeof e) < 0)
            ri_errs_add(&errs, c->path, 0, "%s", e);
        if (c->user && ri_user_check(c->user, e, sizeof e) < 0)
            ri_errs_add(&errs, c->path, 0, "%s", e);
    }
    if (test && ((c->role == RI_ROLE_HUB ? ri_hub_check(c, &errs) : ri_edge_check(c, &errs)) < 0 ||
                 errs.n)) {
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
    ri_log_json = c->log_json;
    if (c->secrets_exposed)
        log_warn("%s holds secrets but is readable by group or others (mode %04o): chmod 600 %s",
                 cfg_path, c->file_mode, cfg_path);
    signal(SIGPIPE, SIG_IGN);
    /* a stream holds one descriptor (the client's on the edge, the
     * upstream's on the hub): one full tunnel's worth, and room for the rest */
    ri_nofile_raise((uint64_t)c->max_streams + (c->role == RI_ROLE_EDGE ? c->hold_max : 0) + 64,
                    c->role == RI_ROLE_HUB ? "max_streams of one edge" : "max_streams");
    struct ri_run_opts run = {.loop = loop, .config_path = cfg_path, .debug = debug};
    int rc = c->role == RI_ROLE_HUB ? ri_hub_run(cy, &run) : ri_edge_run(cy, &run);
    ev_loop_destroy(loop);
    gnutls_global_deinit();
    return rc;
}
