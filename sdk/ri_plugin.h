/*
 * ri_plugin.h -- the public plugin ABI of ri (edge ingress tunnel).
 *
 * Self-contained C99: this header includes only standard headers. No libev,
 * GnuTLS or libconfig type crosses the boundary. Handles are opaque; every
 * service of the core reaches a plugin through `struct ri_core_api`, a
 * versioned table of function pointers handed to `create`, so a plugin needs
 * no link-time symbol from the ri-core binary.
 *
 * A plugin .so exports exactly one data symbol, RI_PLUGIN_SYMBOL ("ri_plugin"),
 * of type `const struct ri_plugin`. See sdk/README.md for a walk-through.
 *
 * Conventions (everywhere in this header):
 *   - functions return 0 on success or a negative errno-style code on failure;
 *     where an `err` buffer is passed, a failure writes one line of human text
 *     into it (no trailing newline);
 *   - slots marked "required" must be non-NULL or the loader refuses the
 *     plugin; "optional" slots may be NULL (the loader then puts a no-op
 *     default there, so the core never tests a slot for NULL);
 *   - hot-path slots come first in each ops table;
 *   - every ops table and every struct that crosses the boundary begins with
 *     `size`, its sizeof as the side that filled it was built. The loader
 *     copies a plugin's descriptor and ops table into zeroed tables of the
 *     core's own size, reading only `size` bytes, so a plugin built against
 *     an older, smaller table still loads. A struct the plugin hands the core
 *     to fill (ri_stream_stats for api->stream_stats) is filled only up to
 *     the size it declares. Structs the core hands a plugin are never smaller
 *     than the plugin's own (its minor is never newer than the core's).
 *
 * Versioning rule: adding a slot at the end of a table or struct, a new
 * kind, a new event or a new core service bumps RI_ABI_MINOR; changing or
 * removing anything bumps RI_ABI_MAJOR and resets the minor. The loader
 * accepts a plugin whose major equals the core's and whose minor is <= the
 * core's.
 *
 * Changelog:
 *   2.3  the hub's workers (sdk/README.md, "Threads"): a header injector's
 *        `build` may run on several threads at once with the same instance
 *        (a plugin built against 2.2 or older is called under a lock the
 *        core holds per instance); schedulers and classifiers are created,
 *        called and destroyed on the worker that runs their tunnel.
 *   2.2  a plugin that serves what the core knows (admin_http: Prometheus
 *        metrics, a status page):
 *        - kind "service" (RI_KIND_SERVICE, struct ri_service_ops): one
 *          instance per config, in either role, driven only by its own
 *          timers and fd watchers;
 *        - api->query runs a read-only control-socket command (status,
 *          streams, metrics) in-process and gives the JSON answer, which
 *          api->query_free releases.
 *   2.1  listening sockets change hands without closing (listen_tcp):
 *        - ri_listener_ops.fds lists the open listening sockets, so the
 *          core can pass them to the next listener instance (SIGHUP) or to
 *          a new ri-core process taking over (an upgrade);
 *        - ri_listen_set.flags: RI_LISTEN_HANDED_OVER (close without draining)
 *        - api->listen_fd gives a listener the socket handed over for an
 *          address and port, before it would open its own.
 *   2.0  size first in every ops table and boundary struct (descriptor and
 *        ri_core_api already had one); loader copies tables and fills
 *        optional slots with no-op defaults; `sent` is never NULL.
 *        New, each for a policy that needs it:
 *        - event slots keyed by enum ri_policy_event in the scheduler and
 *          classifier ops (opened, closed, class changed, dequeued but
 *          nothing to read) -- a class change is an event, no longer
 *          remove + enqueue (sched_3tier moves a queued stream between tiers;
 *          sched_drr resets a flow's deficit when it runs dry);
 *        - api->kick: a non-work-conserving scheduler (a shaper, the
 *          guaranteed-rate tier of sched_3tier) asks to be called again;
 *        - ri_sched_ctx: pace room, min RTT, delivery rate, chunk cap; dequeue
 *          may lower the bytes the core reads for the stream (sched_drr's
 *          deficit);
 *        - ri_classify_ops.class_window: the receive window for a class
 *          (classify_elephant locks sustained streams at 1 MiB);
 *        - settings paths and lists: cfg_* take "list.[2].key" paths and
 *          api->cfg_len counts a list (sched_drr's port_weights);
 *        - descriptor `stats`: a plugin's own counters in the metrics;
 *        - ri_stream_stats: rx_window;
 *        - timers and fd watchers are tracked per instance: the core stops
 *          and frees what an instance left behind at destroy, and logs it.
 *   1.0  first ABI: kinds auth, listener, header, sched, classify.
 */
#ifndef RI_PLUGIN_H
#define RI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RI_ABI_MAJOR 2
#define RI_ABI_MINOR 3

/* The one data symbol every plugin exports. */
#define RI_PLUGIN_SYMBOL "ri_plugin"

#if defined(__GNUC__)
#define RI_EXPORT __attribute__((visibility("default")))
#define RI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RI_EXPORT
#define RI_PRINTF(f, a)
#endif

/* Opaque handles owned by the core. */
typedef struct ri_inst ri_inst;     /* one plugin instance */
typedef struct ri_stream ri_stream; /* one multiplexed stream */
typedef struct ri_timer ri_timer;   /* a timer watcher */
typedef struct ri_io ri_io;         /* an fd readiness watcher */

enum ri_kind {
    RI_KIND_AUTH = 1,     /* authenticates an edge to the hub and back */
    RI_KIND_LISTENER = 2, /* opens the edge's public ports */
    RI_KIND_HEADER = 3,   /* writes a header before a stream's bytes upstream */
    RI_KIND_SCHED = 4,    /* orders data frames of ready streams */
    RI_KIND_CLASSIFY = 5, /* puts a stream in a traffic class */
    RI_KIND_SERVICE = 6,  /* 2.2: runs beside the core on its loop (admin_http) */
    RI_KIND_MAX_ = 6
};

enum ri_log_level { RI_LOG_ERROR = 0, RI_LOG_WARN = 1, RI_LOG_INFO = 2, RI_LOG_DEBUG = 3 };

enum ri_role { RI_ROLE_HUB = 1, RI_ROLE_EDGE = 2 };

/* Traffic classes. A classifier returns one; a scheduler gets it with
 * enqueue and with RI_EV_CLASS. Classes above SUSTAINED are free for
 * policies to define (a classifier and a scheduler that agree on them). */
enum ri_class {
    RI_CLASS_DATA = 0,      /* normal (interactive or short) traffic */
    RI_CLASS_SUSTAINED = 1, /* elephant flow: demoted, guaranteed a minimum rate */
    RI_CLASS_MAX_ = 7
};

/* Events a scheduler or classifier receives through its `event` slot. */
enum ri_policy_event {
    RI_EV_OPENED = 1, /* a stream opened; its per-stream area is fresh and zeroed */
    RI_EV_CLOSED = 2, /* a stream is closing (a queued one was `remove`d first) */
    RI_EV_CLASS = 3,  /* the stream's class changed to `klass`; a queued stream stays
                       * queued: move it between your queues if you keep several */
    RI_EV_IDLE = 4,   /* dequeued, but its socket had nothing to read: it is not
                       * enqueued again until data arrives */
};

/* ----------------------------------------------------------------------- */
/* Measurements the core passes to policies (read-only).                   */

/* Per-stream statistics as seen from this process: "tx" is towards the
 * tunnel peer, "rx" is from it. */
struct ri_stream_stats {
    uint32_t size;           /* sizeof as built by whoever allocated it */
    uint32_t id;             /* stream id, unique within one tunnel session */
    uint32_t klass;          /* current enum ri_class */
    uint16_t edge_port;      /* the public port the client connected to */
    uint16_t reserved_;
    uint64_t age_ns;         /* since the stream opened */
    uint64_t tx_bytes;       /* payload bytes sent into the tunnel */
    uint64_t rx_bytes;       /* payload bytes received from the tunnel */
    uint64_t tx_window;      /* send credit currently left, bytes */
    uint64_t rx_buffered;    /* received bytes not yet written onward */
    uint32_t active_streams; /* streams open on this tunnel's edge right now (all
                              * its lanes: the connections of one edge) */
    uint32_t rx_window;      /* receive window this side aims to grant, bytes */
};

/* What a scheduler sees when asked for the next stream. */
struct ri_sched_ctx {
    uint32_t size;            /* sizeof(struct ri_sched_ctx) in the core */
    uint32_t queued;          /* streams currently enqueued in this scheduler */
    uint64_t now_ns;          /* monotonic clock */
    uint64_t tunnel_tx_bytes; /* payload bytes sent on this tunnel so far */
    uint64_t pace_room;       /* DATA bytes the tunnel may still put in flight now */
    uint64_t min_rtt_ns;      /* smallest recent round trip of the tunnel; 0 unknown */
    uint64_t delivery_rate;   /* bytes/s the peer recently took out; 0 unknown */
    uint32_t max_chunk;       /* most payload one dequeue can send (the core's cap) */
    uint32_t reserved_;
};

/* ----------------------------------------------------------------------- */
/* Core services, handed to every plugin at create time.                   */

typedef void ri_timer_cb(void *arg);
typedef void ri_io_cb(void *arg, int fd, int revents);

enum ri_io_events { RI_IO_READ = 1, RI_IO_WRITE = 2 };

/* Settings lookups: 0 found, -ENOENT absent, -EINVAL wrong type/range. A key
 * may be a path into lists and groups in libconfig's syntax:
 * "port_weights.[0].port" is the `port` of the first group of the list
 * `port_weights`. */
struct ri_core_api {
    uint16_t abi_major;     /* of the core */
    uint16_t abi_minor;
    uint32_t size;          /* sizeof(struct ri_core_api) in the core */

    /* logging; the core prefixes the plugin's name */
    void (*log)(ri_inst *self, int level, const char *fmt, ...) RI_PRINTF(3, 4);
    uint64_t (*now_ns)(void);   /* monotonic clock, nanoseconds */
    int (*role)(ri_inst *self); /* enum ri_role of the process running self */

    /* the plugin's own settings: the keys of its group in `plugins = (...)` */
    int (*cfg_int)(ri_inst *self, const char *key, int64_t *out);
    int (*cfg_bool)(ri_inst *self, const char *key, int *out);
    int (*cfg_float)(ri_inst *self, const char *key, double *out);
    int (*cfg_str)(ri_inst *self, const char *key, const char **out);
    /* elements of a list, array or group at key */
    int (*cfg_len)(ri_inst *self, const char *key, size_t *out);

    /* timers (seconds) and fd watchers (level-triggered), on the event loop
     * that runs self; owned by self: left-overs are stopped and freed when
     * the instance is destroyed */
    ri_timer *(*timer_new)(ri_inst *self, ri_timer_cb *cb, void *arg);
    void (*timer_start)(ri_timer *t, double after, double repeat);
    void (*timer_stop)(ri_timer *t);
    void (*timer_free)(ri_timer *t);
    ri_io *(*io_new)(ri_inst *self, int fd, int events, ri_io_cb *cb, void *arg);
    void (*io_start)(ri_io *w);
    void (*io_stop)(ri_io *w);
    void (*io_free)(ri_io *w);

    /* streams: fills out up to out->size bytes (set it to sizeof first) */
    int (*stream_stats)(const ri_stream *s, struct ri_stream_stats *out);

    /* crypto, backed by the core's TLS library */
    int (*random)(void *buf, size_t len);
    int (*hmac_sha256)(const void *key, size_t key_len, const void *msg,
                       size_t msg_len, uint8_t out[32]);
    int (*memeq_ct)(const void *a, const void *b, size_t len); /* 1 equal */

    /* listener plugins hand accepted connections to the core. The core owns
     * fd from then on (also on failure). `port` is the public port. */
    int (*accept_conn)(ri_inst *self, int fd, uint16_t port);

    /* schedulers and classifiers: run the tunnel's writer again soon (in
     * this loop iteration), e.g. when a rate-limited queue became eligible
     * again after dequeue had returned NULL while streams were queued */
    void (*kick)(ri_inst *self);

    /* 2.1 -- listener plugins: a listening socket for bind_address:port
     * that an earlier listener instance (before a SIGHUP) or the ri-core
     * process this one took over from was using, or -1. The caller owns it
     * from then on (it is listening and non-blocking). Ask before opening
     * a port yourself: a socket handed over keeps its queue of clients,
     * and two sockets cannot both listen on one port. */
    int (*listen_fd)(ri_inst *self, const char *bind_address, uint16_t port);

    /* 2.2 -- a read-only control-socket command run in-process, through the
     * same command table the control socket serves: request_json is a
     * request line ({"cmd": "status"}, "streams" or "metrics"; see the
     * README's control socket section). On 0, *answer_json is the answer
     * as the socket would send it ({"ok": true, ...} or {"ok": false,
     * "error": ...}), NUL-terminated, to be released with query_free (never
     * free()). -EINVAL: request not JSON or a command the core does not
     * answer in-process; -ENOTCONN: the instance is not attached to a role
     * yet (during create); -ENOMEM. Call it from the loop, not from create. */
    int (*query)(ri_inst *self, const char *request_json, char **answer_json);
    void (*query_free)(char *answer_json); /* NULL is fine */
};

/* ----------------------------------------------------------------------- */
/* Kind: auth. Runs once per tunnel, after TLS, before any stream.          */

#define RI_AUTH_MSG_MAX 1024 /* largest message one step may produce */

struct ri_auth_ctx {
    uint32_t size;            /* sizeof(struct ri_auth_ctx) in the core */
    int role;                 /* enum ri_role */
    const char *edge_id;      /* edge: own id; hub: the id the edge claims */
    const uint8_t *secret;    /* edge: own secret; hub: the configured secret */
    size_t secret_len;
    const uint8_t *binding;   /* TLS channel binding (exporter), this session */
    size_t binding_len;
};

/* One step of the exchange. `in` is the peer's last message (NULL, 0 on the
 * edge's first call). Write the next message into out (capacity *out_len,
 * at least RI_AUTH_MSG_MAX) and set *out_len (0: nothing to send). Set *done
 * to 1 when the peer is authenticated; the step that sets it may still
 * produce a final message. Negative return: refuse, with a reason in err
 * (logged by the core; never include the secret). */
typedef int ri_auth_step_f(void *inst, void *conn, const struct ri_auth_ctx *ctx,
                           const uint8_t *in, size_t in_len, uint8_t *out,
                           size_t *out_len, int *done, char *err, size_t errlen);

struct ri_auth_ops {
    uint32_t size;        /* sizeof(struct ri_auth_ops) */
    ri_auth_step_f *step; /* required */
    size_t conn_size;     /* per-connection state the core zeroes and keeps */
};

/* ----------------------------------------------------------------------- */
/* Kind: listener set. Runs on the edge.                                    */

struct ri_listen_set {
    uint32_t size;            /* sizeof(struct ri_listen_set) in the core */
    const char *bind_address; /* numeric IPv4/IPv6, "0.0.0.0", "::" */
    const uint16_t *ports;    /* sorted, unique */
    size_t n_ports;
    /* 2.1: RI_LISTEN_HANDED_OVER -- the sockets now belong to a new process
     * (an upgrade): close the ports that go WITHOUT accepting what waits in
     * their queues (those clients are the new process's). Read it only when
     * size covers it. */
    uint32_t flags;
};
#define RI_LISTEN_HANDED_OVER 1u

/* Make the open listeners equal `set`: open what is new, close what is gone,
 * keep the rest (and every accepted connection) untouched. Returns 0 when all
 * ports are open; on partial failure returns negative with the failing ports
 * named in err, keeping whatever it could open. */
typedef int ri_listen_apply_f(void *inst, const struct ri_listen_set *set,
                              char *err, size_t errlen);

/* 2.1: call each(arg, bind_address, port, fd) for every listening socket
 * that is open now. The sockets stay yours: the core duplicates what it
 * hands on (to the next instance or process, which asks api->listen_fd).
 * Without this op a listener's ports are closed and opened again on a
 * reload, and an upgrade cannot take them over. */
typedef void ri_listen_each_f(void *arg, const char *bind_address, uint16_t port, int fd);
typedef void ri_listen_fds_f(void *inst, ri_listen_each_f *each, void *arg);

struct ri_listener_ops {
    uint32_t size;            /* sizeof(struct ri_listener_ops) */
    ri_listen_apply_f *apply; /* required */
    ri_listen_fds_f *fds;     /* optional (2.1) */
};

/* ----------------------------------------------------------------------- */
/* Kind: header injector. Runs on the hub, once per stream.                 */

#define RI_HEADER_MAX 536 /* room one build call gets (PROXY v2 max + TLVs) */

struct ri_conn_info {
    uint32_t size;                  /* sizeof(struct ri_conn_info) in the core */
    uint32_t stream_id;
    struct sockaddr_storage client; /* the client as the edge saw it */
    struct sockaddr_storage edge;   /* the edge address it connected to */
    const char *edge_id;
};

/* Write the header into buf (capacity cap >= RI_HEADER_MAX) and set *len. */
typedef int ri_header_build_f(void *inst, const struct ri_conn_info *ci,
                              uint8_t *buf, size_t cap, size_t *len,
                              char *err, size_t errlen);

struct ri_header_ops {
    uint32_t size;            /* sizeof(struct ri_header_ops) */
    ri_header_build_f *build; /* required */
};

/* ----------------------------------------------------------------------- */
/* Kind: scheduler. Orders the data of ready streams into the tunnel.       */
/*
 * The core keeps control frames (window updates, pings, opens, closes,
 * config) in its own queue that always goes first; a scheduler only decides
 * which ready stream sends its next chunk of data. A stream is "ready" when
 * it has data waiting and send credit. The core enqueues it once, asks for
 * dequeue when the tunnel has room, reads up to *max_bytes from the stream
 * it gets back and sends them (reporting the count through `sent`), and
 * enqueues it again if it is still ready. A stream is never enqueued twice.
 * `sp` is the per-stream area of stream_size bytes the core allocates
 * (zeroed) for this scheduler. All calls come from one thread, never
 * re-entrantly.
 */
typedef void ri_sched_enqueue_f(void *inst, ri_stream *s, void *sp, uint32_t klass);
/* Returns the next stream (NULL: none now; call api->kick later if streams
 * are queued but held back). *max_bytes comes preset to the core's cap
 * (ctx->max_chunk); lower it to send less for this stream this turn. */
typedef ri_stream *ri_sched_dequeue_f(void *inst, const struct ri_sched_ctx *ctx,
                                      uint32_t *max_bytes);
typedef void ri_sched_sent_f(void *inst, ri_stream *s, void *sp, size_t bytes,
                             const struct ri_sched_ctx *ctx);
typedef void ri_sched_remove_f(void *inst, ri_stream *s, void *sp);
typedef void ri_sched_event_f(void *inst, ri_stream *s, void *sp, int event, uint32_t klass);

struct ri_sched_ops {
    uint32_t size;               /* sizeof(struct ri_sched_ops) */
    /* hot path */
    ri_sched_enqueue_f *enqueue; /* required */
    ri_sched_dequeue_f *dequeue; /* required */
    ri_sched_sent_f *sent;       /* optional: bytes sent for s after dequeue */
    /* control path */
    ri_sched_remove_f *remove;   /* required: s is queued and closing: unlink it */
    ri_sched_event_f *event;     /* optional: enum ri_policy_event */
    /* where the plugin finds its per-stream area from a handle: the core
     * passes sp to every call above except dequeue; to map a handle back,
     * keep `s` in your per-stream area and a list of those areas. */
};

/* ----------------------------------------------------------------------- */
/* Kind: classifier. Decides a stream's class from its measurements.        */

/* Called about once a second for every stream that moved data (either
 * direction) since the last call. Return the new class (or the current one,
 * st->klass). `sp` is the stream_size area for this plugin. */
typedef uint32_t ri_classify_f(void *inst, void *sp, const struct ri_stream_stats *st);
/* The receive window this side grants a stream of class klass, in bytes,
 * among active_streams streams; 0 leaves it to the core's policy (see
 * sdk/README.md: clamp(200 MiB / n, 1 MiB, 4 MiB), 1 MiB when sustained). */
typedef uint32_t ri_class_window_f(void *inst, uint32_t klass, uint32_t active_streams);
typedef void ri_classify_event_f(void *inst, ri_stream *s, void *sp, int event,
                                 const struct ri_stream_stats *st);

struct ri_classify_ops {
    uint32_t size;                   /* sizeof(struct ri_classify_ops) */
    ri_classify_f *classify;         /* required */
    ri_class_window_f *class_window; /* optional */
    ri_classify_event_f *event;      /* optional: enum ri_policy_event */
};

/* ----------------------------------------------------------------------- */
/* Kind: service (2.2). Runs in either role, one instance per config; it
 * does its work from its own timers and fd watchers (api->timer_*,
 * api->io_*) and learns about the process through api->query. A reload
 * (SIGHUP) creates the new config's instance before the old one is
 * destroyed: open sockets from a timer, not in create, and retry. */
struct ri_service_ops {
    uint32_t size;      /* sizeof(struct ri_service_ops) */
    uint32_t reserved_; /* 0 */
};

/* ----------------------------------------------------------------------- */
/* The descriptor every plugin exports as `ri_plugin`.                      */

/* Instance lifecycle. `state` is inst_size bytes, zeroed, owned by the core
 * and valid until destroy returns. `api` stays valid as long as the instance.
 * create reads the plugin's settings; a negative return refuses the config. */
typedef int ri_create_f(const struct ri_core_api *api, ri_inst *self, void *state,
                        char *err, size_t errlen);
typedef void ri_destroy_f(void *state);

/* A plugin's own counters for the metrics: call emit once per value.
 * name: [a-z0-9_]+ (the core prefixes "ri_plugin_<plugin name>_");
 * counter: 1 for an ever-growing count, 0 for a gauge. */
typedef void ri_stat_emit_f(void *arg, const char *name, const char *help, int counter,
                            double value);
typedef void ri_stats_f(void *state, ri_stat_emit_f *emit, void *arg);

struct ri_plugin {
    /* version fields first: they protect the interpretation of the rest */
    uint16_t abi_major;     /* RI_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;     /* RI_ABI_MINOR the plugin was built with */
    uint32_t struct_size;   /* sizeof(struct ri_plugin) */
    uint32_t kind;          /* enum ri_kind */
    const char *name;       /* [a-z0-9_]+, unique among loaded plugins */
    const char *description;/* one line, for `ri-core plugins` */
    const void *ops;        /* struct ri_<kind>_ops for `kind`, required */
    size_t inst_size;       /* bytes of per-instance state (may be 0) */
    size_t stream_size;     /* bytes of per-stream state (sched, classify) */
    ri_create_f *create;    /* optional */
    ri_destroy_f *destroy;  /* optional */
    /* optional: NULL-terminated list of the setting keys this plugin reads;
     * when given, any other key in its config group is a config error. */
    const char *const *keys;
    ri_stats_f *stats;      /* optional: counters for the metrics (not read by the
                             * core yet: sdk/README.md, "Statistics") */
};

/* Convenience for the descriptor's first fields. */
#define RI_PLUGIN_HEADER \
    .abi_major = RI_ABI_MAJOR, .abi_minor = RI_ABI_MINOR, \
    .struct_size = sizeof(struct ri_plugin)

#ifdef __cplusplus
}
#endif
#endif /* RI_PLUGIN_H */
