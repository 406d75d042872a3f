/* config.h -- the operator's config file (libconfig syntax), parsed and
 * validated into plain structs. Every error is reported as FILE:LINE: msg. */
#ifndef RI_CONFIG_H
#define RI_CONFIG_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "errs.h"

#define RI_CONFIG_STUN_MAX 16 /* edge.stun_servers entries */
#define RI_WORKERS_MAX 64       /* workers at most (hub and edge) */
#define RI_LANES_LIMIT 32       /* edge.lanes_max at most */
#define RI_LANES_MAX_DEFAULT 8  /* edge.lanes_max by default */
#define RI_HUBS_MAX 8           /* hubs an edge spreads its lanes over (hub_host + edge.hubs) */
/* edge.stun_servers when the file names none: public servers that answer
 * RFC 5389 Binding requests over UDP */
#define RI_STUN_DEFAULT_SERVERS "stun.l.google.com:19302", "stun.cloudflare.com:3478"

struct ri_plugin_conf {
    const char *name;
    int enabled;
    int line;
    config_setting_t *group; /* the plugin's own settings (name/enabled skipped) */
};

struct ri_edge_conf {
    const char *id;
    const char *secret;
    uint16_t *ports; /* sorted, unique */
    size_t n_ports;
    uint32_t stun_interval_secs;
    int line;
};

struct ri_config {
    char *path;
    char *dir; /* folder of the file: relative paths resolve against it */
    config_t cf;

    int role; /* enum ri_role */
    /* the file holds secrets (hub edges, an edge's secret or token) and
     * group or others may read it: the role warns at start, -t too */
    int secrets_exposed;
    unsigned file_mode;
    int log_level;
    int log_json;     /* log_format = "json": one JSON object per line */
    char *plugin_dir; /* resolved, or NULL for the default search */
    int plugins_line;
    struct ri_plugin_conf *plugins;
    size_t n_plugins;
    char *handover_socket; /* a later process takes the listening sockets over here */
    char *access_log;      /* one line per stream ("-": into the main log); NULL off */
    const char *user;      /* run as this user once started (needs root); NULL: stay */
    char *control_socket;  /* hub.control_socket / edge.control_socket; NULL: none */
    unsigned control_socket_mode; /* its file mode (default 0600) */

    /* both roles */
    double ping_interval, ping_timeout, drain_timeout;
    uint32_t max_streams; /* per edge (across its lanes) */
    int offer_lanes;      /* offer RI_CAP_LANES (false: behave as a peer without lanes) */

    /* hub */
    const char *listen;
    char *tls_cert, *tls_key;
    /* where the hub keeps the self-signed certificate it makes when there
     * is no tls_cert (certstate.h); NULL: ephemeral (state_dir = "") */
    char *state_dir;
    const char *target_host;
    struct ri_edge_conf *edges;
    size_t n_edges;
    double handshake_timeout, connect_timeout;
    uint32_t max_handshakes;
    char *edges_file;        /* the edges changed over the control socket; NULL: memory only */
    const char *public_host; /* the host name provision puts in tokens; NULL: listen's */
    uint32_t max_lanes;      /* hub.max_lanes_per_edge */
    uint32_t workers;        /* event loops for ready tunnels (hub: for edges' lanes,
                              * edge: for its own lanes); 0 = online CPUs */

    /* edge */
    char *hub_host;
    int hub_port;
    char *edge_id;
    char *secret;
    const char *token, *secret_str; /* in libconfig's memory (wiped at free) */
    const char *bind_address;
    const char *hub_fingerprint; /* "sha256:<hex>" or NULL */
    char *hub_ca;
    double reconnect_min, reconnect_max;
    double hold_secs;  /* a client waits this long for a tunnel */
    uint32_t hold_max; /* clients held at once */
    uint32_t lanes;     /* edge.lanes: connections to the hub; 0: auto (by round trip) */
    uint32_t lanes_max; /* auto never opens more */
    /* the hubs lane i connects to: hubs[i % n_hubs]; [0] is hub_host:hub_port,
     * the rest edge.hubs (strdup'd, freed with the config) */
    const char *hubs_host[RI_HUBS_MAX];
    int hubs_port[RI_HUBS_MAX];
    char *hubs_extra[RI_HUBS_MAX];
    size_t n_hubs;
    /* STUN servers ("host:port") asked for the public address; pointers
     * into libconfig's memory or static defaults; none: STUN is off */
    const char *stun_servers[RI_CONFIG_STUN_MAX];
    size_t n_stun_servers;

    /* lines of the settings checks after parsing report on (0: not in the
     * file; the error then names the group's line or none) */
    int tls_cert_line, tls_key_line, state_dir_line, target_host_line;
    int hub_host_line, hub_ca_line, edges_file_line, control_socket_line;
};

/* Loads and validates; NULL with every problem appended to errs. */
struct ri_config *ri_config_load(const char *path, struct ri_errs *errs);
void ri_config_free(struct ri_config *c);
const struct ri_edge_conf *ri_config_find_edge(const struct ri_config *c, const char *id);
/* 1 when two optional config strings differ (NULL equals only NULL). */
int ri_str_differs(const char *a, const char *b);

#endif
