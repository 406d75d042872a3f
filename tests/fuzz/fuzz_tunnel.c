/* fuzz_tunnel -- libFuzzer target for everything a peer's bytes reach after
 * TLS: frame parsing and dispatch, the handshake state machine, the mux's
 * streams (DATA, FIN, RST, WINDOW, OPEN on the hub), CONFIG on the edge,
 * keepalive frames, GOAWAY and the close sequence. It runs the real
 * tunnel.c, handshake.c and mux.c with a fake TLS layer (fake_tlsio.c)
 * that hands them the input as decrypted records.
 *
 * Input: byte 0 picks the role this process plays (bit 0: 0 hub, 1 edge)
 * and the record size (bits 1-3); the rest is what the peer "sent". A fake
 * auth plugin lets a fuzzer through the handshake when it finds the
 * exchange (seeds in tests/fuzz/seeds/tunnel show it):
 *   hub:  HELLO(id "fz", auth "fake", message "E") -> AUTH "H", WELCOME
 *   edge: -> HELLO; AUTH "H"; WELCOME
 * On the edge two client streams are open once it is READY, with data
 * waiting, so frames for streams 1 and 2 find someone to talk to; on the
 * hub an OPEN connects to a local Unix socket.
 *
 *   make fuzz && build/fuzz/fuzz_tunnel -max_total_time=60 tests/fuzz/seeds/tunnel
 */
#include <ev.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api.h"
#include "fake_tlsio.h"
#include "log.h"
#include "plugin.h"
#include "tunnel.h"
#include "worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- a fake auth plugin: one message each way --------------------------- */
static int fake_step(void *inst, void *conn, const struct ri_auth_ctx *ctx, const uint8_t *in,
                     size_t in_len, uint8_t *out, size_t *out_len, int *done, char *err,
                     size_t errlen)
{
    int *st = conn;
    *out_len = 0;
    if (ctx->role == RI_ROLE_EDGE) {
        if ((*st)++ == 0) {
            out[0] = 'E';
            *out_len = 1;
            return 0;
        }
        if (in_len >= 1 && in[0] == 'H') {
            *done = 1;
            return 0;
        }
        return -1;
    }
    if (in_len >= 1 && in[0] == 'E') {
        out[0] = 'H';
        *out_len = 1;
        *done = 1;
        return 0;
    }
    return -1;
}

static const struct ri_auth_ops fake_ops = {.size = sizeof fake_ops, .step = fake_step,
                                            .conn_size = sizeof(int)};
static const struct ri_plugin fake_desc = {RI_PLUGIN_HEADER, .kind = RI_KIND_AUTH,
                                           .name = "fake", .ops = &fake_ops};

static struct ev_loop *loop;
static struct ri_worker worker;
static struct ri_module auth_mod;
static struct ri_inst *auth_hub, *auth_edge;
static int ulisten = -1;
static struct sockaddr_un uaddr;
static struct ri_tunnel *cur;
static int ready, clients[2] = {-1, -1};

static int h_lookup(struct ri_tunnel *t, const char *id, const uint8_t **secret, size_t *len)
{
    if (strcmp(id, "fz") != 0)
        return -1;
    *secret = (const uint8_t *)"0123456789abcdef";
    *len = 16;
    return 0;
}

/* The edge: two clients are waiting the moment the tunnel is up, so the
 * frames that follow in the same records find streams 1 and 2. */
static void h_ready(struct ri_tunnel *t)
{
    ready = 1;
    if (t->role != RI_ROLE_EDGE)
        return;
    for (int i = 0; i < 2; i++) {
        int cs[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, cs) < 0)
            return;
        clients[i] = cs[0];
        (void)!write(cs[0], "client bytes", 12);
        ri_mux_open_local(&t->mux, cs[1], (uint16_t)(443 + i));
    }
}

static void h_open(struct ri_tunnel *t, uint32_t id, const struct ri_open *o)
{
    if (id % 3 == 0) {
        ri_mux_refuse(&t->mux, id, RI_RST_FORBIDDEN, "fuzz: not this one");
        return;
    }
    ri_mux_connect(&t->mux, id, o, (struct sockaddr *)&uaddr, sizeof uaddr, "HDR\r\n", 5, 1.0);
}

static void h_config(struct ri_tunnel *t, const struct ri_config_msg *m)
{
    for (unsigned i = 1; i < m->n_ports; i++)
        if (m->ports[i] <= m->ports[i - 1] || !m->ports[i - 1])
            __builtin_trap(); /* the decoder promised sorted, unique, non-zero */
}

static void h_closed(struct ri_tunnel *t, unsigned code, const char *why, uint32_t lost)
{
    if (t == cur)
        cur = NULL;
}

static const struct ri_tunnel_hooks hooks = {.lookup = h_lookup, .ready = h_ready,
                                             .open = h_open, .config = h_config,
                                             .closed = h_closed};

static void setup(void)
{
    char err[256];
    ri_log_level = getenv("RI_FUZZ_LOG") ? RI_LOG_DEBUG : -1; /* silent unless asked */
    loop = ev_loop_new(EVFLAG_AUTO);
    ri_worker_init(&worker, loop, 0, NULL);
    ri_module_builtin_sched();
    if (ri_module_static(&auth_mod, &fake_desc, err, sizeof err) < 0)
        abort();
    auth_hub = ri_inst_create(&auth_mod, NULL, loop, RI_ROLE_HUB, &ri_core_api, err, sizeof err);
    auth_edge = ri_inst_create(&auth_mod, NULL, loop, RI_ROLE_EDGE, &ri_core_api, err,
                               sizeof err);
    /* the hub's "upstream": a listening Unix socket */
    ulisten = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    uaddr.sun_family = AF_UNIX;
    snprintf(uaddr.sun_path, sizeof uaddr.sun_path, "/tmp/ri-fuzz-up-%d", (int)getpid());
    unlink(uaddr.sun_path);
    if (ulisten < 0 || bind(ulisten, (struct sockaddr *)&uaddr, sizeof uaddr) < 0 ||
        listen(ulisten, 64) < 0)
        abort();
}

static void spin(int n)
{
    for (int i = 0; i < n; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loop)
        setup();
    if (size < 1)
        return 0;
    int edge = data[0] & 1;
    static const size_t chunks[8] = {1, 7, 64, 500, 4096, 16384, 65536, 131072};
    ri_fuzz_feed = (struct fake_feed){.p = data + 1, .n = size - 1,
                                      .chunk = chunks[(data[0] >> 1) & 7], .eof = 1};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    struct ri_tunnel_params p = {
        .role = edge ? RI_ROLE_EDGE : RI_ROLE_HUB, .fd = sv[0], .peer = "fuzz", .w = &worker,
        .api = &ri_core_api, .auth = edge ? auth_edge : auth_hub, .max_streams = 16,
        .ping_interval = 60, .ping_timeout = 120, .handshake_timeout = 60,
        .edge_id = "fz", .secret = "0123456789abcdef", .hooks = &hooks};
    ready = 0;
    cur = ri_tunnel_new(&p);
    if (!cur) {
        close(sv[1]);
        return 0;
    }
    struct ri_tunnel *t = cur;
    ev_feed_event(loop, &t->rio, EV_READ); /* "TLS is up" */
    for (int round = 0; round < 64 && cur; round++) {
        if (cur && ri_fuzz_feed.off < ri_fuzz_feed.n)
            ev_feed_event(loop, &cur->rio, EV_READ);
        spin(2);
        int c;
        while ((c = accept(ulisten, NULL, NULL)) >= 0)
            close(c);
        if (ri_fuzz_feed.off == ri_fuzz_feed.n && cur)
            ev_feed_event(loop, &cur->rio, EV_READ); /* the EOF */
    }
    if (cur)
        ri_tunnel_fail(cur, RI_E_SHUTDOWN, "fuzz input done");
    spin(3); /* the reaper */
    for (int i = 0; i < 2; i++)
        if (clients[i] >= 0) {
            close(clients[i]);
            clients[i] = -1;
        }
    close(sv[1]);
    int c;
    while ((c = accept(ulisten, NULL, NULL)) >= 0)
        close(c);
    return 0;
}
