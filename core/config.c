/* config.c -- parse and validate the config file. Nothing here starts
 * anything: a config is either complete and valid, or rejected whole with
 * every error found, each as FILE:LINE: message. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>

#include "ident.h"
#include "log.h"
#include "netutil.h"
#include "token.h"

/* where a hub without tls_cert keeps its certificate (Makefile: STATEDIR) */
#ifndef RI_STATE_DIR_DEFAULT
#define RI_STATE_DIR_DEFAULT "/var/lib/ri"
#endif

struct ctx {
    struct ri_config *c;
    struct ri_errs *errs;
};

static int line_of(const config_setting_t *s)
{
    return s ? (int)config_setting_source_line(s) : 0;
}

#define ERR(x, s, ...) ri_errs_add((x)->errs, (x)->c->path, line_of(s), __VA_ARGS__)

static char *resolve_path(const struct ri_config *c, const char *p)
{
    if (p[0] == '/' || !c->dir)
        return strdup(p);
    size_t n = strlen(c->dir) + strlen(p) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", c->dir, p);
    return out;
}

/* Unknown keys are errors: a typo must not silently fall back to a default. */
static void check_keys(struct ctx *x, const config_setting_t *grp, const char *where,
                       const char *const *known)
{
    int n = config_setting_length(grp);
    for (int i = 0; i < n; i++) {
        config_setting_t *m = config_setting_get_elem(grp, (unsigned)i);
        const char *name = config_setting_name(m);
        if (!name)
            continue;
        int ok = 0;
        for (const char *const *k = known; *k; k++)
            if (strcmp(*k, name) == 0)
                ok = 1;
        if (!ok)
            ERR(x, m, "unknown key '%s' in %s", name, where);
    }
}

static const char *get_str(struct ctx *x, const config_setting_t *grp, const char *key,
                           int required)
{
    config_setting_t *s = config_setting_get_member(grp, key);
    if (!s) {
        if (required)
            ERR(x, grp, "'%s' is required", key);
        return NULL;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING) {
        ERR(x, s, "'%s' must be a string", key);
        return NULL;
    }
    const char *v = config_setting_get_string(s);
    if (required && !*v) {
        ERR(x, s, "'%s' must not be empty", key);
        return NULL;
    }
    return v;
}

static int is_int(const config_setting_t *s)
{
    int t = config_setting_type(s);
    return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static long long get_int(struct ctx *x, const config_setting_t *grp, const char *key,
                         long long def, long long min, long long max)
{
    config_setting_t *s = config_setting_get_member(grp, key);
    if (!s)
        return def;
    if (!is_int(s)) {
        ERR(x, s, "'%s' must be an integer", key);
        return def;
    }
    long long v = config_setting_get_int64(s);
    if (v < min || v > max) {
        ERR(x, s, "'%s' = %lld is out of range %lld-%lld", key, v, min, max);
        return def;
    }
    return v;
}

static int get_bool(struct ctx *x, const config_setting_t *grp, const char *key, int def)
{
    config_setting_t *s = config_setting_get_member(grp, key);
    if (!s)
        return def;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
        ERR(x, s, "'%s' must be true or false", key);
        return def;
    }
    return config_setting_get_bool(s);
}

static double get_secs(struct ctx *x, const config_setting_t *grp, const char *key,
                       double def, double min, double max)
{
    config_setting_t *s = config_setting_get_member(grp, key);
    if (!s)
        return def;
    double v;
    if (is_int(s))
        v = (double)config_setting_get_int64(s);
    else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else {
        ERR(x, s, "'%s' must be a number of seconds", key);
        return def;
    }
    if (v < min || v > max) {
        ERR(x, s, "'%s' = %g is out of range %g-%g", key, v, min, max);
        return def;
    }
    return v;
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static void parse_plugins(struct ctx *x, config_setting_t *root)
{
    struct ri_config *c = x->c;
    config_setting_t *pl = config_setting_get_member(root, "plugins");
    if (!pl)
        return;
    c->plugins_line = line_of(pl);
    if (config_setting_type(pl) != CONFIG_TYPE_LIST && config_setting_type(pl) != CONFIG_TYPE_ARRAY) {
        ERR(x, pl, "'plugins' must be a list: plugins = ( { name = \"...\"; }, ... );");
        return;
    }
    int n = config_setting_length(pl);
    c->plugins = calloc((size_t)n + 1, sizeof *c->plugins);
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(pl, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            ERR(x, g, "plugins entry %d must be a group { name = \"...\"; }", i + 1);
            continue;
        }
        const char *name = get_str(x, g, "name", 1);
        if (!name)
            continue;
        int enabled = 1;
        config_setting_t *en = config_setting_get_member(g, "enabled");
        if (en) {
            if (config_setting_type(en) != CONFIG_TYPE_BOOL)
                ERR(x, en, "'enabled' must be true or false");
            else
                enabled = config_setting_get_bool(en);
        }
        for (size_t j = 0; j < c->n_plugins; j++)
            if (strcmp(c->plugins[j].name, name) == 0)
                ERR(x, g, "plugin '%s' is listed twice (first at line %d)", name,
                    c->plugins[j].line);
        struct ri_plugin_conf *p = &c->plugins[c->n_plugins++];
        p->name = name;
        p->enabled = enabled;
        p->line = line_of(g);
        p->group = g;
    }
}

/* control_socket and control_socket_mode, in the hub or the edge group */
static void parse_control(struct ctx *x, config_setting_t *grp)
{
    struct ri_config *c = x->c;
    const char *cs = get_str(x, grp, "control_socket", 0);
    /* a string, read as octal ("0660"): libconfig reads 0660 as decimal */
    const char *mode = get_str(x, grp, "control_socket_mode", 0);
    c->control_socket_mode = 0600;
    if (mode) {
        char *end;
        unsigned long m = strtoul(mode, &end, 8);
        if (!mode[0] || *end || m > 0777)
            ERR(x, config_setting_get_member(grp, "control_socket_mode"),
                "'control_socket_mode' must be an octal file mode like \"0660\"");
        else
            c->control_socket_mode = (unsigned)m;
    }
    if (!cs)
        return;
    if (!cs[0]) {
        ERR(x, config_setting_get_member(grp, "control_socket"), "'control_socket' is empty");
        return;
    }
    c->control_socket = resolve_path(c, cs);
    c->control_socket_line = line_of(config_setting_get_member(grp, "control_socket"));
    if (c->control_socket && strlen(c->control_socket) >= 100) /* sun_path holds 108 */
        ERR(x, config_setting_get_member(grp, "control_socket"),
            "'control_socket' path is too long for a Unix socket (at most 99 bytes)");
}

static void parse_edges(struct ctx *x, config_setting_t *hub)
{
    struct ri_config *c = x->c;
    config_setting_t *el = config_setting_get_member(hub, "edges");
    if (!el)
        return; /* a hub with no edges is valid: edges arrive on reload */
    if (config_setting_type(el) != CONFIG_TYPE_LIST) {
        ERR(x, el, "'edges' must be a list: edges = ( { id = ...; secret = ...; }, ... );");
        return;
    }
    int n = config_setting_length(el);
    c->edges = calloc((size_t)n + 1, sizeof *c->edges);
    static const char *const keys[] = {"id", "secret", "listen_ports", "stun_interval_secs",
                                       NULL};
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(el, (unsigned)i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            ERR(x, g, "edges entry %d must be a group", i + 1);
            continue;
        }
        check_keys(x, g, "an edge", keys);
        struct ri_edge_conf *e = &c->edges[c->n_edges];
        e->line = line_of(g);
        e->id = get_str(x, g, "id", 1);
        e->secret = get_str(x, g, "secret", 1);
        e->stun_interval_secs = (uint32_t)get_int(x, g, "stun_interval_secs", 300, 0, 86400);
        char why[256];
        int id_ok = 0;
        if (e->id) {
            if (ri_check_edge_id(e->id, why, sizeof why) < 0)
                ERR(x, config_setting_get_member(g, "id"), "edges entry %d: %s", i + 1, why);
            else
                id_ok = 1;
            for (size_t j = 0; j < c->n_edges; j++)
                if (c->edges[j].id && strcmp(c->edges[j].id, e->id) == 0)
                    ERR(x, g, "edge id '%s' is listed twice (first at line %d)", e->id,
                        c->edges[j].line);
        }
        if (e->secret && ri_check_secret(e->secret, why, sizeof why) < 0) {
            if (id_ok)
                ERR(x, config_setting_get_member(g, "secret"), "edge '%s': %s", e->id, why);
            else
                ERR(x, config_setting_get_member(g, "secret"), "edges entry %d: %s", i + 1, why);
        }
        config_setting_t *ports = config_setting_get_member(g, "listen_ports");
        if (ports) {
            int t = config_setting_type(ports);
            if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
                ERR(x, ports, "'listen_ports' must be an array like [ 80, 443 ]");
            } else {
                int np = config_setting_length(ports);
                if (np > 4096) {
                    ERR(x, ports, "'listen_ports' has %d entries, at most 4096", np);
                    np = 0;
                }
                e->ports = calloc((size_t)np + 1, sizeof *e->ports);
                for (int k = 0; k < np; k++) {
                    config_setting_t *p = config_setting_get_elem(ports, (unsigned)k);
                    if (!is_int(p) || config_setting_get_int64(p) < 1 ||
                        config_setting_get_int64(p) > 65535) {
                        ERR(x, p, "listen port must be an integer 1-65535");
                        continue;
                    }
                    e->ports[e->n_ports++] = (uint16_t)config_setting_get_int64(p);
                }
                qsort(e->ports, e->n_ports, sizeof *e->ports, cmp_u16);
                for (size_t k = 1; k < e->n_ports; k++)
                    if (e->ports[k] == e->ports[k - 1])
                        ERR(x, ports, "listen port %u is listed twice", e->ports[k]);
            }
        }
        c->n_edges++;
    }
}

static void parse_hub(struct ctx *x, config_setting_t *root)
{
    struct ri_config *c = x->c;
    config_setting_t *hub = config_setting_get_member(root, "hub");
    if (!hub) {
        ERR(x, NULL, "role is \"hub\" but there is no 'hub = { ... };' group");
        return;
    }
    if (config_setting_type(hub) != CONFIG_TYPE_GROUP) {
        ERR(x, hub, "'hub' must be a group");
        return;
    }
    static const char *const keys[] = {
        "listen", "tls_cert", "tls_key", "state_dir", "target_host", "edges",
        "handshake_timeout_secs",
        "max_handshakes", "connect_timeout_secs", "ping_interval_secs", "ping_timeout_secs",
        "drain_timeout_secs", "max_streams", "control_socket", "control_socket_mode",
        "edges_file", "public_host", "max_lanes_per_edge", "offer_lanes", "workers", NULL};
    check_keys(x, hub, "hub", keys);
    parse_control(x, hub);
    const char *ef = get_str(x, hub, "edges_file", 0);
    if (ef) {
        if (!ef[0])
            ERR(x, config_setting_get_member(hub, "edges_file"), "'edges_file' is empty");
        else
            c->edges_file = resolve_path(c, ef);
        c->edges_file_line = line_of(config_setting_get_member(hub, "edges_file"));
    }
    c->public_host = get_str(x, hub, "public_host", 0);
    if (c->public_host && !c->public_host[0])
        ERR(x, config_setting_get_member(hub, "public_host"), "'public_host' is empty");
    c->listen = get_str(x, hub, "listen", 1);
    char host[256];
    int port;
    if (c->listen && (ri_parse_hostport(c->listen, host, sizeof host, &port) < 0 || !ri_is_numeric_ip(host)))
        ERR(x, config_setting_get_member(hub, "listen"),
            "'listen' must be a numeric address and port, like \"0.0.0.0:8443\" or \"[::]:8443\"");
    const char *cert = get_str(x, hub, "tls_cert", 0), *key = get_str(x, hub, "tls_key", 0);
    if (!cert != !key)
        ERR(x, hub, "'tls_cert' and 'tls_key' go together: give both or neither");
    if (cert && key) {
        c->tls_cert = resolve_path(c, cert);
        c->tls_key = resolve_path(c, key);
    }
    c->tls_cert_line = line_of(config_setting_get_member(hub, "tls_cert"));
    c->tls_key_line = line_of(config_setting_get_member(hub, "tls_key"));
    config_setting_t *sds = config_setting_get_member(hub, "state_dir");
    const char *sd = get_str(x, hub, "state_dir", 0);
    c->state_dir_line = line_of(sds);
    if (!sds)
        c->state_dir = strdup(RI_STATE_DIR_DEFAULT);
    else if (sd && *sd)
        c->state_dir = resolve_path(c, sd);
    c->target_host = get_str(x, hub, "target_host", 0);
    c->target_host_line = line_of(config_setting_get_member(hub, "target_host"));
    if (!c->target_host) {
        c->target_host = "127.0.0.1";
        c->target_host_line = line_of(hub);
    }
    c->handshake_timeout = get_secs(x, hub, "handshake_timeout_secs", 10, 0.1, 300);
    c->max_handshakes = (uint32_t)get_int(x, hub, "max_handshakes", 64, 1, 100000);
    c->connect_timeout = get_secs(x, hub, "connect_timeout_secs", 10, 0.1, 300);
    c->ping_interval = get_secs(x, hub, "ping_interval_secs", 15, 0.1, 3600);
    c->ping_timeout = get_secs(x, hub, "ping_timeout_secs", 45, 0.2, 7200);
    c->drain_timeout = get_secs(x, hub, "drain_timeout_secs", 30, 0, 3600);
    c->max_streams = (uint32_t)get_int(x, hub, "max_streams", 20000, 1, 1000000);
    c->max_lanes = (uint32_t)get_int(x, hub, "max_lanes_per_edge", 16, 1, 256);
    c->offer_lanes = get_bool(x, hub, "offer_lanes", 1);
    /* 0: one per online CPU (ri_hub_run) */
    c->workers = (uint32_t)get_int(x, hub, "workers", 0, 0, RI_WORKERS_MAX);
    parse_edges(x, hub);
}

static void parse_edge(struct ctx *x, config_setting_t *root)
{
    struct ri_config *c = x->c;
    config_setting_t *edge = config_setting_get_member(root, "edge");
    if (!edge) {
        ERR(x, NULL, "role is \"edge\" but there is no 'edge = { ... };' group");
        return;
    }
    if (config_setting_type(edge) != CONFIG_TYPE_GROUP) {
        ERR(x, edge, "'edge' must be a group");
        return;
    }
    static const char *const keys[] = {
        "token", "hub_host", "hub_port", "edge_id", "secret", "bind_address",
        "hub_fingerprint", "hub_ca", "reconnect_min_secs", "reconnect_max_secs",
        "ping_interval_secs", "ping_timeout_secs", "drain_timeout_secs", "max_streams",
        "hold_secs", "hold_max", "control_socket", "control_socket_mode", "stun_servers",
        "lanes", "lanes_max", "offer_lanes", "hubs", "workers", NULL};
    check_keys(x, edge, "edge", keys);
    parse_control(x, edge);
    const char *token = c->token = get_str(x, edge, "token", 0);
    c->hub_host_line = line_of(config_setting_get_member(edge, token ? "token" : "hub_host"));
    int fields = config_setting_get_member(edge, "hub_host") || config_setting_get_member(edge, "hub_port") ||
                 config_setting_get_member(edge, "edge_id") || config_setting_get_member(edge, "secret");
    if (token && fields) {
        ERR(x, edge, "give either 'token' or hub_host/hub_port/edge_id/secret, not both");
    } else if (token) {
        struct ri_token t;
        char err[256];
        if (ri_token_decode(token, &t, err, sizeof err) < 0) {
            ERR(x, config_setting_get_member(edge, "token"), "bad token: %s%s", err,
                ri_is_placeholder_secret(t.secret)
                    ? "; then replace the token with one `ri-core token encode` makes with it"
                    : "");
        } else {
            c->hub_host = strdup(t.hub_host);
            c->hub_port = t.hub_port;
            c->edge_id = strdup(t.edge_id);
            c->secret = strdup(t.secret);
            c->n_hubs = 1; /* the token's further hubs (its optional "H") */
            for (int i = 0; i < t.n_hubs && c->n_hubs < RI_HUBS_MAX; i++) {
                char host[RI_TOKEN_FIELD_MAX + 1];
                int port;
                if (ri_parse_hostport(t.hubs[i], host, sizeof host, &port) < 0)
                    continue; /* checked by the decoder already */
                c->hubs_extra[c->n_hubs] = strdup(host);
                c->hubs_host[c->n_hubs] = c->hubs_extra[c->n_hubs];
                c->hubs_port[c->n_hubs++] = port;
            }
        }
        gnutls_memset(&t, 0, sizeof t);
    } else {
        const char *h = get_str(x, edge, "hub_host", 1), *e = get_str(x, edge, "edge_id", 1),
                   *s = c->secret_str = get_str(x, edge, "secret", 1);
        c->hub_port = (int)get_int(x, edge, "hub_port", 0, 1, 65535);
        if (!config_setting_get_member(edge, "hub_port"))
            ERR(x, edge, "'hub_port' is required (or use 'token')");
        c->hub_host = h ? strdup(h) : NULL;
        c->edge_id = e ? strdup(e) : NULL;
        c->secret = s ? strdup(s) : NULL;
    }
    if (!token) { /* a token's fields were checked by its decoder, with the same rules */
        char why[256];
        if (c->edge_id && ri_check_edge_id(c->edge_id, why, sizeof why) < 0)
            ERR(x, config_setting_get_member(edge, "edge_id"), "%s", why);
        if (c->secret && ri_check_secret(c->secret, why, sizeof why) < 0)
            ERR(x, config_setting_get_member(edge, "secret"), "%s", why);
    }
    c->bind_address = get_str(x, edge, "bind_address", 0);
    if (!c->bind_address)
        c->bind_address = "0.0.0.0";
    else if (!ri_is_numeric_ip(c->bind_address))
        ERR(x, config_setting_get_member(edge, "bind_address"),
            "'bind_address' must be a numeric IPv4 or IPv6 address");
    c->hub_fingerprint = get_str(x, edge, "hub_fingerprint", 0);
    if (c->hub_fingerprint) {
        const char *f = c->hub_fingerprint;
        int ok = strncmp(f, "sha256:", 7) == 0;
        size_t hex = 0;
        for (const char *p = f + 7; ok && *p; p++) {
            if (*p == ':')
                continue;
            if (!strchr("0123456789abcdefABCDEF", *p))
                ok = 0;
            hex++;
        }
        if (!ok || hex != 64)
            ERR(x, config_setting_get_member(edge, "hub_fingerprint"),
                "'hub_fingerprint' must be \"sha256:\" and 64 hex digits (colons allowed)");
    }
    const char *ca = get_str(x, edge, "hub_ca", 0);
    if (ca)
        c->hub_ca = resolve_path(c, ca);
    c->hub_ca_line = line_of(config_setting_get_member(edge, "hub_ca"));
    c->reconnect_min = get_secs(x, edge, "reconnect_min_secs", 0.25, 0.01, 3600);
    c->reconnect_max = get_secs(x, edge, "reconnect_max_secs", 1.5, 0.01, 86400);
    c->hold_secs = get_secs(x, edge, "hold_secs", 10, 0, 3600);
    c->hold_max = (uint32_t)get_int(x, edge, "hold_max", 1024, 1, 1000000);
    if (c->reconnect_max < c->reconnect_min)
        ERR(x, edge, "'reconnect_max_secs' is below 'reconnect_min_secs'");
    c->ping_interval = get_secs(x, edge, "ping_interval_secs", 15, 0.1, 3600);
    c->ping_timeout = get_secs(x, edge, "ping_timeout_secs", 45, 0.2, 7200);
    c->drain_timeout = get_secs(x, edge, "drain_timeout_secs", 30, 0, 3600);
    c->max_streams = (uint32_t)get_int(x, edge, "max_streams", 20000, 1, 1000000);
    c->lanes_max = (uint32_t)get_int(x, edge, "lanes_max", RI_LANES_MAX_DEFAULT, 1,
                                     RI_LANES_LIMIT);
    c->lanes = (uint32_t)get_int(x, edge, "lanes", 0, 1, RI_LANES_LIMIT);
    c->workers = (uint32_t)get_int(x, edge, "workers", 0, 0, RI_WORKERS_MAX);
    if (c->lanes > c->lanes_max)
        ERR(x, config_setting_get_member(edge, "lanes"), "'lanes' = %u is above 'lanes_max' (%u)",
            c->lanes, c->lanes_max);
    c->offer_lanes = get_bool(x, edge, "offer_lanes", 1);
    /* more hubs, with the same edges: the lanes go round them */
    c->hubs_host[0] = c->hub_host;
    c->hubs_port[0] = c->hub_port;
    if (!c->n_hubs)
        c->n_hubs = 1;
    config_setting_t *hs = config_setting_get_member(edge, "hubs");
    if (hs && c->n_hubs > 1) {
        ERR(x, hs, "the token names further hubs already: give them in the token or in "
                   "'hubs', not both");
    } else if (hs && !config_setting_is_aggregate(hs)) {
        ERR(x, hs, "'hubs' must be a list like [ \"hub2.example.net:8443\" ]");
    } else if (hs && config_setting_length(hs) > RI_HUBS_MAX - 1) {
        ERR(x, hs, "'hubs' has %d entries, at most %d", config_setting_length(hs),
            RI_HUBS_MAX - 1);
    } else if (hs) {
        for (int i = 0; i < config_setting_length(hs); i++) {
            config_setting_t *it = config_setting_get_elem(hs, (unsigned)i);
            const char *v = config_setting_get_string(it);
            char host[256];
            int port;
            if (!v || ri_parse_hostport(v, host, sizeof host, &port) < 0 || !host[0] ||
                port < 1 || port > 65535) {
                ERR(x, it, "'hubs' entries are \"host:port\" strings%s%s%s",
                    v ? ", not \"" : "", v ? v : "", v ? "\"" : "");
                continue;
            }
            c->hubs_extra[c->n_hubs] = strdup(host);
            c->hubs_host[c->n_hubs] = c->hubs_extra[c->n_hubs];
            c->hubs_port[c->n_hubs++] = port;
        }
    }
    if (c->n_hubs > 1) { /* every hub gets a lane */
        uint32_t want = (uint32_t)c->n_hubs;
        if (c->lanes && c->lanes < want)
            ERR(x, config_setting_get_member(edge, "lanes"),
                "'lanes' = %u is below the number of hubs (%u): every hub gets a lane",
                c->lanes, want);
        if (c->lanes_max < want)
            ERR(x, hs ? hs : edge, "'lanes_max' (%u) is below the number of hubs (%u)",
                c->lanes_max, want);
    }
    config_setting_t *ss = config_setting_get_member(edge, "stun_servers");
    if (!ss) {
        static const char *const defaults[] = {RI_STUN_DEFAULT_SERVERS};
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            c->stun_servers[c->n_stun_servers++] = defaults[i];
    } else if (!config_setting_is_aggregate(ss)) {
        ERR(x, ss, "'stun_servers' must be a list like [ \"stun.example.net:3478\" ] "
                   "(empty: no STUN)");
    } else if (config_setting_length(ss) > RI_CONFIG_STUN_MAX) {
        ERR(x, ss, "'stun_servers' has %d entries, at most %d", config_setting_length(ss),
            RI_CONFIG_STUN_MAX);
    } else {
        for (int i = 0; i < config_setting_length(ss); i++) {
            config_setting_t *it = config_setting_get_elem(ss, (unsigned)i);
            const char *v = config_setting_get_string(it);
            char host[256];
            int port;
            if (!v || ri_parse_hostport(v, host, sizeof host, &port) < 0 || !host[0])
                ERR(x, it, "'stun_servers' entries are \"host:port\" strings%s%s%s",
                    v ? ", not \"" : "", v ? v : "", v ? "\"" : "");
            else
                c->stun_servers[c->n_stun_servers++] = v;
        }
    }
}

/* libconfig 1.5 reads an integer literal without an L suffix as 32 bits and
 * silently wraps larger ones (4294967396 becomes 100), so a range check on
 * the parsed value can pass a number the operator never wrote. This scans
 * the file's integer literals -- skipping strings and comments -- and
 * reports every one that does not fit in 32 bits without the suffix. */
static void check_int_literals(struct ctx *x, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return; /* only files (an include of /dev/zero would never end) */
    FILE *f = fopen(path, "r");
    if (!f || depth > 4) {
        if (f)
            fclose(f);
        return;
    }
    int line = 1, ch, prev = '\n';
    while ((ch = fgetc(f)) != EOF) {
        if (ch == '\n') {
            line++;
        } else if (ch == '"') { /* a string: skip to its closing quote */
            while ((ch = fgetc(f)) != EOF && ch != '"') {
                if (ch == '\\')
                    ch = fgetc(f);
                if (ch == '\n')
                    line++;
            }
        } else if (ch == '#' || ch == '/') {
            int nx = ch == '/' ? fgetc(f) : '#';
            if (nx == '#' || nx == '/') { /* # or // to the end of the line */
                while ((ch = fgetc(f)) != EOF && ch != '\n')
                    ;
                line++;
            } else if (nx == '*') { /* a block comment */
                int last = 0;
                while ((ch = fgetc(f)) != EOF && !(last == '*' && ch == '/')) {
                    if (ch == '\n')
                        line++;
                    last = ch;
                }
            } else if (nx != EOF) {
                ungetc(nx, f);
            }
            ch = '\n'; /* a comment separates tokens */
        } else if (ch == '@') { /* @include "file", relative to the config's folder */
            char word[16] = "", name[PATH_MAX] = "";
            if (fscanf(f, "%15[a-z] \"%4095[^\"]\"", word, name) == 2 &&
                strcmp(word, "include") == 0) {
                char *p = resolve_path(x->c, name);
                if (p)
                    check_int_literals(x, p, depth + 1);
                free(p);
            }
        } else if ((ch >= '0' && ch <= '9') &&
                   !((prev >= 'a' && prev <= 'z') || (prev >= 'A' && prev <= 'Z') ||
                     prev == '_' || prev == '.' || (prev >= '0' && prev <= '9'))) {
            char lit[64];
            size_t n = 0;
            int neg = prev == '-';
            lit[n++] = (char)ch;
            while ((ch = fgetc(f)) != EOF && n < sizeof lit - 1 &&
                   ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '+' ||
                    (ch == '-' && (lit[n - 1] == 'e' || lit[n - 1] == 'E'))))
                lit[n++] = (char)ch;
            lit[n] = '\0';
            if (ch != EOF)
                ungetc(ch, f);
            int hex = lit[0] == '0' && (lit[1] == 'x' || lit[1] == 'X');
            if (!hex && strpbrk(lit, ".eE"))
                ch = 0; /* a float */
            else if (n && (lit[n - 1] == 'L' || lit[n - 1] == 'l'))
                ch = 0; /* 64-bit on purpose */
            else {
                errno = 0;
                char *end;
                unsigned long long v = strtoull(lit, &end, 0);
                int big = errno == ERANGE || *end ||
                          (hex ? v > 0xffffffffull : v > (neg ? 2147483648ull : 2147483647ull));
                if (big && !*end)
                    ri_errs_add(x->errs, path, line,
                                "integer %s%s is out of range (libconfig reads integers "
                                "without an L suffix as 32-bit)", neg ? "-" : "", lit);
                ch = 0;
            }
            prev = ch;
            continue;
        }
        prev = ch;
    }
    fclose(f);
}

struct ri_config *ri_config_load(const char *path, struct ri_errs *errs)
{
    struct ri_config *c = calloc(1, sizeof *c);
    if (!c) {
        ri_errs_add(errs, path, 0, "out of memory");
        return NULL;
    }
    struct ctx x = {c, errs};
    size_t before = errs->n;
    c->path = strdup(path);
    char *tmp = strdup(path);
    c->dir = strdup(dirname(tmp));
    free(tmp);
    config_init(&c->cf);
    config_set_include_dir(&c->cf, c->dir);
    struct stat st = {0};
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        ri_errs_add(errs, path, 0, "is a directory, not a config file");
        ri_config_free(c);
        return NULL;
    }
    errno = 0;
    if (config_read_file(&c->cf, path) != CONFIG_TRUE) {
        if (config_error_type(&c->cf) == CONFIG_ERR_FILE_IO)
            ri_errs_add(errs, path, 0, "cannot read: %s", strerror(errno ? errno : ENOENT));
        else
        {
            /* libconfig's own text is often just "syntax error" */
            const char *what = config_error_text(&c->cf);
            int plain = strncmp(what, "syntax error", 12) == 0;
            ri_errs_add(errs, config_error_file(&c->cf) ? config_error_file(&c->cf) : path,
                        config_error_line(&c->cf), "%s%s", plain ? "" : "syntax error: ", what);
        }
        ri_config_free(c);
        return NULL;
    }
    check_int_literals(&x, path, 0);
    config_setting_t *root = config_root_setting(&c->cf);
    static const char *const keys[] = {"role", "log_level", "log_format", "plugin_dir",
                                       "plugins", "hub", "edge", "handover_socket",
                                       "access_log", "user", NULL};
    check_keys(&x, root, "the top level", keys);

    const char *role = get_str(&x, root, "role", 1);
    if (role) {
        if (strcmp(role, "hub") == 0)
            c->role = RI_ROLE_HUB;
        else if (strcmp(role, "edge") == 0)
            c->role = RI_ROLE_EDGE;
        else
            ERR(&x, config_setting_get_member(root, "role"),
                "role must be \"hub\" or \"edge\", not \"%s\"", role);
    }
    c->log_level = RI_LOG_INFO;
    const char *lvl = get_str(&x, root, "log_level", 0);
    if (lvl && (c->log_level = ri_log_parse_level(lvl)) < 0) {
        ERR(&x, config_setting_get_member(root, "log_level"),
            "log_level must be error, warn, info or debug, not \"%s\"", lvl);
        c->log_level = RI_LOG_INFO;
    }
    const char *lf = get_str(&x, root, "log_format", 0);
    if (lf && strcmp(lf, "json") == 0)
        c->log_json = 1;
    else if (lf && strcmp(lf, "text") != 0)
        ERR(&x, config_setting_get_member(root, "log_format"),
            "log_format must be \"text\" or \"json\", not \"%s\"", lf);
    const char *pd = get_str(&x, root, "plugin_dir", 0);
    if (pd)
        c->plugin_dir = resolve_path(c, pd);
    const char *hs = get_str(&x, root, "handover_socket", 0);
    if (hs) {
        c->handover_socket = resolve_path(c, hs);
        if (strlen(c->handover_socket) >= 100) /* sun_path holds 108 */
            ERR(&x, config_setting_get_member(root, "handover_socket"),
                "'handover_socket' path is too long for a Unix socket (at most 99 bytes)");
    }
    c->user = get_str(&x, root, "user", 0);
    if (c->user && !c->user[0])
        ERR(&x, config_setting_get_member(root, "user"), "'user' is empty");
    const char *al = get_str(&x, root, "access_log", 0);
    if (al) {
        if (!al[0])
            ERR(&x, config_setting_get_member(root, "access_log"),
                "'access_log' is empty: give a file, or \"-\" for the main log");
        else
            c->access_log = strcmp(al, "-") == 0 ? strdup("-") : resolve_path(c, al);
    }
    parse_plugins(&x, root);
    if (c->role == RI_ROLE_HUB)
        parse_hub(&x, root);
    else if (c->role == RI_ROLE_EDGE)
        parse_edge(&x, root);
    if (c->role != RI_ROLE_HUB && config_setting_get_member(root, "hub") && c->role)
        ERR(&x, config_setting_get_member(root, "hub"), "'hub' group in an edge config");
    if (c->role != RI_ROLE_EDGE && config_setting_get_member(root, "edge") && c->role)
        ERR(&x, config_setting_get_member(root, "edge"), "'edge' group in a hub config");
    if (c->ping_timeout && c->ping_timeout <= c->ping_interval)
        ERR(&x, NULL, "ping_timeout_secs (%g) must exceed ping_interval_secs (%g)",
            c->ping_timeout, c->ping_interval);

    if (errs->n > before) {
        ri_config_free(c);
        return NULL;
    }
    c->file_mode = (unsigned)(st.st_mode & 07777);
    c->secrets_exposed = (c->n_edges || c->secret) && (st.st_mode & 077) != 0;
    return c;
}

const struct ri_edge_conf *ri_config_find_edge(const struct ri_config *c, const char *id)
{
    for (size_t i = 0; i < c->n_edges; i++)
        if (strcmp(c->edges[i].id, id) == 0)
            return &c->edges[i];
    return NULL;
}

int ri_str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

void ri_config_free(struct ri_config *c)
{
    if (!c)
        return;
    /* secrets live in libconfig's strings too: wipe them before it frees them */
    for (size_t i = 0; i < c->n_edges; i++)
        if (c->edges[i].secret)
            gnutls_memset((char *)c->edges[i].secret, 0, strlen(c->edges[i].secret));
    if (c->token)
        gnutls_memset((char *)c->token, 0, strlen(c->token));
    if (c->secret_str)
        gnutls_memset((char *)c->secret_str, 0, strlen(c->secret_str));
    for (size_t i = 0; i < c->n_edges; i++)
        free(c->edges[i].ports);
    free(c->edges);
    free(c->plugins);
    free(c->plugin_dir);
    free(c->handover_socket);
    free(c->control_socket);
    free(c->edges_file);
    free(c->access_log);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->state_dir);
    free(c->hub_host);
    for (size_t i = 0; i < RI_HUBS_MAX; i++)
        free(c->hubs_extra[i]);
    free(c->edge_id);
    if (c->secret) {
        gnutls_memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    free(c->hub_ca);
    config_destroy(&c->cf);
    free(c->path);
    free(c->dir);
    free(c);
}
