/* ri_peer.c -- a scriptable tunnel peer for tests: plays an edge or a hub
 * that knows the secret but behaves as badly as a test asks.
 *
 *   ri-peer edge --connect HOST:PORT --id ID --secret S --plugin auth_secret.so [opts]
 *   ri-peer hub  --listen HOST:PORT  --id ID --secret S --plugin auth_secret.so [opts]
 *
 * It does the TLS 1.3 handshake and the authentication with the real auth
 * plugin (so the proofs are genuine), prints "READY", then reads commands
 * from stdin, one line at a time; several commands on one line separated by
 * " ; " go out in one write (one TCP segment where they fit). Every frame
 * received is printed as one line:
 *
 *   < TYPE stream=N len=L [details]
 *
 * and the end as "CLOSED <why>". Commands:
 *   open ID PORT          OPEN (client 127.0.0.1:40000 -> 127.0.0.2:PORT)
 *   data ID TEXT          DATA with TEXT (\n and \\ escapes)
 *   bulk ID BYTES         DATA frames of 'x' totalling BYTES, ignoring windows
 *   fin ID | rst ID CODE | window ID N | ack N | ping | goaway CODE
 *   config P1,P2,...      (hub) CONFIG with these ports; "config none" for none
 *   configmany N          (hub) CONFIG with ports 1..N
 *   configrange FIRST N   (hub) CONFIG with ports FIRST..FIRST+N-1
 *   autoack on|off, autowindow on|off   answer DATA with ACK / WINDOW or not
 *   frame TYPE STREAM HEX any frame; TYPE in decimal or 0x..
 *   keyupdate             TLS 1.3 KeyUpdate asking the peer to update too
 *   keyupdate1            TLS 1.3 KeyUpdate for our direction only
 *   tickets N             (hub) N TLS session tickets
 *   sleep MS | quit
 * Options:
 *   --no-ack --no-pong --no-window   do not answer the peer's DATA/PING
 *   --tickets N   (hub) send N session tickets with the first AUTH message
 *   --config P,.. (hub) CONFIG after WELCOME (default: none sent)
 *   --raw         stop after TLS ("TLS-UP"): the test drives the handshake
 *   --bind ADDR   (edge) connect from this source address
 *
 * Exit: 0 after "quit" or stdin EOF, 1 on a failed handshake or a lost
 * connection. Deliberately no event library: poll() on stdin and the socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "netutil.h"
#include "api.h"
#include "plugin.h"
#include "tls.h"

#define OBUF (4u << 20)
#define RBUF (256u * 1024u)

static int hub_mode, no_ack, no_pong, no_window, raw_mode, n_tickets;
static const char *edge_id, *secret, *config_ports, *bind_addr;
static int fd = -1;
static gnutls_session_t S;
static uint8_t *obuf, rbuf[RBUF];
static size_t olen, rlen;
static int would_block;
static struct ri_inst *auth;
static void *auth_conn;
static uint8_t binding[32];
static int authed, ready;
static char claimed_id[RI_EDGE_ID_MAX + 1];

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    out("CLOSED %s", m);
    exit(1);
}

/* ---- transport: GnuTLS writes into obuf, we send it in one go ------------- */
static ssize_t push(gnutls_transport_ptr_t p, const void *d, size_t n)
{
    if (olen + n > OBUF) {
        errno = EAGAIN;
        return -1;
    }
    memcpy(obuf + olen, d, n);
    olen += n;
    return (ssize_t)n;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *d, size_t n)
{
    ssize_t r = recv(fd, d, n, 0);
    if (r < 0 && errno == EAGAIN)
        would_block = 1;
    return r;
}

static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, (int)ms);
}

static void flush_out(void)
{
    size_t off = 0;
    while (off < olen) {
        ssize_t n = send(fd, obuf + off, olen - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 1000);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("send: %s", strerror(errno));
        off += (size_t)n;
    }
    olen = 0;
}

static void send_frame(uint8_t type, uint32_t stream, const void *p, size_t n)
{
    uint8_t hdr[RI_FRAME_HDR];
    ri_frame_hdr_put(hdr, type, stream, (uint32_t)n);
    /* header and payload in one record, as ri-core sends them */
    uint8_t *buf = malloc(RI_FRAME_HDR + n);
    if (!buf)
        die("out of memory");
    memcpy(buf, hdr, RI_FRAME_HDR);
    if (n)
        memcpy(buf + RI_FRAME_HDR, p, n);
    size_t off = 0, total = RI_FRAME_HDR + n;
    while (off < total) {
        size_t k = total - off > 16384 ? 16384 : total - off;
        ssize_t r = gnutls_record_send(S, buf + off, k);
        if (r == GNUTLS_E_AGAIN) {
            flush_out();
            continue;
        }
        if (r < 0)
            die("TLS send: %s", gnutls_strerror((int)r));
        off += (size_t)r;
    }
    free(buf);
}

/* ---- authentication through the real plugin -------------------------------- */
static int auth_step(const uint8_t *in, size_t n, uint8_t *o, size_t *ol)
{
    struct ri_auth_ctx ctx = {.size = sizeof ctx, .role = hub_mode ? RI_ROLE_HUB : RI_ROLE_EDGE,
                              .edge_id = hub_mode ? claimed_id : edge_id,
                              .secret = (const uint8_t *)secret,
                              .secret_len = strlen(secret),
                              .binding = binding,
                              .binding_len = 32};
    char err[256] = "";
    int done = 0;
    *ol = RI_AUTH_MSG_MAX;
    if (ri_auth_step(auth, auth_conn, &ctx, in, n, o, ol, &done, err, sizeof err) < 0) {
        out("AUTH-FAILED %s", err);
        return -1;
    }
    if (done)
        authed = 1;
    return 0;
}

static void send_config(const char *list)
{
    static struct ri_config_msg m;
    static uint8_t buf[6 + 2 * RI_CONFIG_PORTS_MAX];
    m.stun_interval_secs = 0;
    m.n_ports = 0;
    if (strcmp(list, "none") != 0) {
        char *dup = strdup(list), *save = NULL;
        for (char *tok = strtok_r(dup, ",", &save); tok && m.n_ports < RI_CONFIG_PORTS_MAX;
             tok = strtok_r(NULL, ",", &save))
            m.ports[m.n_ports++] = (uint16_t)atoi(tok);
        free(dup);
    }
    size_t n = ri_config_encode(buf, sizeof buf, &m);
    send_frame(RI_F_CONFIG, 0, buf, n);
}

static void handshake_frame(const struct ri_frame_hdr *h, const uint8_t *p)
{
    uint8_t o[RI_AUTH_MSG_MAX];
    size_t ol;
    if (hub_mode && h->type == RI_F_HELLO) {
        struct ri_hello hel;
        char err[256];
        if (ri_hello_decode(p, h->len, &hel, err, sizeof err) < 0)
            die("bad HELLO: %s", err);
        snprintf(claimed_id, sizeof claimed_id, "%s", hel.edge_id);
        if (auth_step(hel.auth_msg, hel.auth_len, o, &ol) < 0)
            die("authentication failed");
        if (n_tickets) {
            int rc = gnutls_session_ticket_send(S, (unsigned)n_tickets, 0);
            out("TICKETS %d %s", n_tickets, rc < 0 ? gnutls_strerror(rc) : "sent");
        }
        send_frame(RI_F_AUTH, 0, o, ol);
    } else if (h->type == RI_F_AUTH) {
        if (auth_step(p, h->len, o, &ol) < 0)
            die("authentication failed");
        if (ol)
            send_frame(RI_F_AUTH, 0, o, ol);
        if (hub_mode && authed) {
            uint8_t w[6];
            send_frame(RI_F_WELCOME, 0, w, ri_welcome_encode(w, RI_CAPS_SUPPORTED));
            if (config_ports)
                send_config(config_ports);
            ready = 1;
            out("READY");
        }
    } else if (!hub_mode && h->type == RI_F_WELCOME) {
        if (!authed)
            die("WELCOME before the hub proved the secret");
        ready = 1;
        out("READY");
    }
}

/* ---- receiving ---------------------------------------------------------------- */
static void print_frame(const struct ri_frame_hdr *h, const uint8_t *p)
{
    char d[600] = "";
    uint16_t code;
    char reason[RI_REASON_MAX + 1];
    switch (h->type) {
    case RI_F_DATA: {
        size_t k = 0;
        for (uint32_t i = 0; i < h->len && k < 400; i++)
            k += (size_t)snprintf(d + k, sizeof d - k,
                                  p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' ? "%c" : "\\x%02x",
                                  p[i]);
        printf("< DATA stream=%u len=%u data=%s\n", h->stream, h->len, d);
        fflush(stdout);
        return;
    }
    case RI_F_RST:
    case RI_F_REFUSE:
        ri_reason_decode(p, h->len, &code, reason, sizeof reason);
        snprintf(d, sizeof d, " code=%u reason=%s", code, reason);
        break;
    case RI_F_GOAWAY:
        ri_reason_decode(p + 4, h->len - 4, &code, reason, sizeof reason);
        snprintf(d, sizeof d, " last=%u code=%u reason=%s", ri_get32(p), code, reason);
        break;
    case RI_F_WINDOW:
    case RI_F_ACK:
        snprintf(d, sizeof d, " n=%u", ri_get32(p));
        break;
    case RI_F_CONFIG: {
        static struct ri_config_msg m;
        char err[128];
        if (ri_config_decode(p, h->len, &m, err, sizeof err) == 0) {
            size_t k = (size_t)snprintf(d, sizeof d, " ports=");
            for (unsigned i = 0; i < m.n_ports && k < 500; i++)
                k += (size_t)snprintf(d + k, sizeof d - k, "%s%u", i ? "," : "", m.ports[i]);
        }
        break;
    }
    case RI_F_OPEN: {
        struct ri_open o;
        char err[128], a[64];
        if (ri_open_decode(p, h->len, &o, err, sizeof err) == 0)
            snprintf(d, sizeof d, " edge=%s", ri_addr_str((struct sockaddr *)&o.edge, a, sizeof a));
        break;
    }
    }
    out("< %s stream=%u len=%u%s", ri_ftype_str(h->type), h->stream, h->len, d);
}

static void on_frame(const struct ri_frame_hdr *h, const uint8_t *p)
{
    print_frame(h, p);
    if (!ready && !raw_mode) {
        if (h->type == RI_F_REFUSE)
            die("refused");
        handshake_frame(h, p);
        return;
    }
    if (h->type == RI_F_PING && !no_pong)
        send_frame(RI_F_PONG, 0, p, 8);
    if (h->type == RI_F_DATA) {
        uint8_t b[4];
        if (!no_ack) {
            ri_put32(b, h->len);
            send_frame(RI_F_ACK, 0, b, 4);
        }
        if (!no_window) {
            ri_put32(b, h->len);
            send_frame(RI_F_WINDOW, h->stream, b, 4);
        }
    }
}

static void read_tls(void)
{
    for (;;) {
        would_block = 0;
        ssize_t n = gnutls_record_recv(S, rbuf + rlen, RBUF - rlen);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            if (would_block)
                break;
            continue; /* a post-handshake message: records may follow */
        }
        if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
            die("peer closed the connection");
        if (n < 0) {
            if (gnutls_error_is_fatal((int)n))
                die("TLS receive: %s", gnutls_strerror((int)n));
            continue;
        }
        rlen += (size_t)n;
        size_t off = 0;
        for (;;) {
            struct ri_frame_hdr h;
            int r = ri_frame_hdr_get(rbuf + off, rlen - off, RBUF - RI_FRAME_HDR, &h);
            if (r <= 0 || rlen - off < RI_FRAME_HDR + (size_t)h.len)
                break;
            on_frame(&h, rbuf + off + RI_FRAME_HDR);
            off += RI_FRAME_HDR + h.len;
        }
        memmove(rbuf, rbuf + off, rlen - off);
        rlen -= off;
    }
    flush_out();
}

/* ---- commands ---------------------------------------------------------------- */
static size_t unescape(const char *s, uint8_t *o, size_t cap)
{
    size_t n = 0;
    for (; *s && n < cap; s++) {
        if (*s == '\\' && s[1] == 'n')
            o[n++] = '\n', s++;
        else if (*s == '\\' && s[1] == '\\')
            o[n++] = '\\', s++;
        else
            o[n++] = (uint8_t)*s;
    }
    return n;
}

static size_t unhex(const char *s, uint8_t *o, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        o[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void command(char *c)
{
    while (*c == ' ')
        c++;
    size_t len = strlen(c);
    while (len && c[len - 1] == ' ')
        c[--len] = '\0';
    char *arg = strchr(c, ' ');
    if (arg)
        *arg++ = 0;
    else
        arg = c + strlen(c);
    uint8_t b[64];
    if (!strcmp(c, "open")) {
        unsigned id, port;
        if (sscanf(arg, "%u %u", &id, &port) != 2)
            die("usage: open ID PORT");
        struct sockaddr_in cl = {.sin_family = AF_INET, .sin_port = htons(40000)},
                           ed = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &cl.sin_addr);
        inet_pton(AF_INET, "127.0.0.2", &ed.sin_addr);
        uint8_t o[RI_OPEN_LEN];
        ri_open_encode(o, (struct sockaddr *)&cl, (struct sockaddr *)&ed);
        send_frame(RI_F_OPEN, id, o, sizeof o);
    } else if (!strcmp(c, "data")) {
        unsigned id;
        int k = 0;
        if (sscanf(arg, "%u %n", &id, &k) < 1)
            die("usage: data ID TEXT");
        static uint8_t d[65536];
        size_t n = unescape(arg + k, d, sizeof d);
        send_frame(RI_F_DATA, id, d, n);
    } else if (!strcmp(c, "bulk")) {
        unsigned id;
        unsigned long long total;
        if (sscanf(arg, "%u %llu", &id, &total) != 2)
            die("usage: bulk ID BYTES");
        static uint8_t d[65536];
        memset(d, 'x', sizeof d);
        while (total) {
            size_t k = total > sizeof d ? sizeof d : (size_t)total;
            send_frame(RI_F_DATA, id, d, k);
            total -= k;
            if (olen > OBUF / 2)
                flush_out();
        }
    } else if (!strcmp(c, "fin")) {
        send_frame(RI_F_FIN, (uint32_t)atoi(arg), NULL, 0);
    } else if (!strcmp(c, "rst")) {
        unsigned id, code;
        if (sscanf(arg, "%u %u", &id, &code) != 2)
            die("usage: rst ID CODE");
        uint8_t p[2 + RI_REASON_MAX];
        size_t n = ri_reason_encode(p, sizeof p, (uint16_t)code, "ri-peer");
        send_frame(RI_F_RST, id, p, n);
    } else if (!strcmp(c, "window")) {
        unsigned id, v;
        if (sscanf(arg, "%u %u", &id, &v) != 2)
            die("usage: window ID N");
        ri_put32(b, v);
        send_frame(RI_F_WINDOW, id, b, 4);
    } else if (!strcmp(c, "ack")) {
        ri_put32(b, (uint32_t)strtoul(arg, NULL, 10));
        send_frame(RI_F_ACK, 0, b, 4);
    } else if (!strcmp(c, "ping")) {
        memcpy(b, "ri-peer!", 8);
        send_frame(RI_F_PING, 0, b, 8);
    } else if (!strcmp(c, "goaway")) {
        uint8_t p[6 + RI_REASON_MAX];
        ri_put32(p, 0);
        size_t n = 4 + ri_reason_encode(p + 4, sizeof p - 4, (uint16_t)atoi(arg), "ri-peer");
        send_frame(RI_F_GOAWAY, 0, p, n);
    } else if (!strcmp(c, "config")) {
        send_config(arg);
    } else if (!strcmp(c, "configmany")) {
        static struct ri_config_msg m;
        static uint8_t buf[6 + 2 * RI_CONFIG_PORTS_MAX];
        int n = atoi(arg);
        m.n_ports = 0;
        for (int i = 1; i <= n && i <= RI_CONFIG_PORTS_MAX; i++)
            m.ports[m.n_ports++] = (uint16_t)i;
        send_frame(RI_F_CONFIG, 0, buf, ri_config_encode(buf, sizeof buf, &m));
    } else if (!strcmp(c, "configrange")) {
        static struct ri_config_msg m;
        static uint8_t buf[6 + 2 * RI_CONFIG_PORTS_MAX];
        unsigned first, n;
        if (sscanf(arg, "%u %u", &first, &n) != 2 || first + n > 65536)
            die("usage: configrange FIRST N");
        m.n_ports = 0;
        for (unsigned i = 0; i < n && i < RI_CONFIG_PORTS_MAX; i++)
            m.ports[m.n_ports++] = (uint16_t)(first + i);
        send_frame(RI_F_CONFIG, 0, buf, ri_config_encode(buf, sizeof buf, &m));
    } else if (!strcmp(c, "autoack")) {
        no_ack = strcmp(arg, "on") != 0;
    } else if (!strcmp(c, "autowindow")) {
        no_window = strcmp(arg, "on") != 0;
    } else if (!strcmp(c, "frame")) {
        char hex[2 * 70000 + 1] = "";
        unsigned long type;
        unsigned id;
        char tstr[16];
        if (sscanf(arg, "%15s %u %140000s", tstr, &id, hex) < 2)
            die("usage: frame TYPE STREAM HEX");
        type = strtoul(tstr, NULL, 0);
        static uint8_t d[70000];
        size_t n = unhex(hex, d, sizeof d);
        send_frame((uint8_t)type, id, d, n);
    } else if (!strcmp(c, "keyupdate") || !strcmp(c, "keyupdate1")) {
        int rc = gnutls_session_key_update(S, strcmp(c, "keyupdate") ? 0 : GNUTLS_KU_PEER);
        if (rc < 0)
            die("key update: %s", gnutls_strerror(rc));
    } else if (!strcmp(c, "tickets")) {
        int rc = gnutls_session_ticket_send(S, (unsigned)atoi(arg), 0);
        out("TICKETS %s %s", arg, rc < 0 ? gnutls_strerror(rc) : "sent");
    } else if (!strcmp(c, "sleep")) {
        flush_out();
        struct timespec ts = {atoi(arg) / 1000, (long)(atoi(arg) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else if (!strcmp(c, "quit")) {
        flush_out();
        out("BYE");
        exit(0);
    } else if (*c) {
        die("unknown command '%s'", c);
    }
}

static void read_stdin(void)
{
    static char line[2 * 70000 + 256];
    if (!fgets(line, sizeof line, stdin)) {
        flush_out();
        out("BYE");
        exit(0);
    }
    line[strcspn(line, "\r\n")] = 0;
    char *save = NULL;
    for (char *c = strtok_r(line, ";", &save); c; c = strtok_r(NULL, ";", &save))
        command(c);
    flush_out(); /* everything of one line in one write */
    out("OK");
}

/* ---- setup ---------------------------------------------------------------------- */
static int open_socket(const char *hostport, int listening)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    socklen_t sl;
    char err[256];
    if (ri_parse_hostport(hostport, host, sizeof host, &port) < 0 ||
        ri_resolve(host, port, &ss, &sl, err, sizeof err) < 0)
        die("bad address %s", hostport);
    int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (listening) {
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(s, (struct sockaddr *)&ss, sl) < 0 || listen(s, 4) < 0)
            die("listen %s: %s", hostport, strerror(errno));
        out("LISTENING");
        int c = accept(s, NULL, NULL);
        if (c < 0)
            die("accept: %s", strerror(errno));
        close(s);
        s = c;
    } else {
        if (bind_addr) {
            struct sockaddr_storage bs;
            socklen_t bl;
            if (ri_resolve(bind_addr, 0, &bs, &bl, err, sizeof err) < 0 ||
                bind(s, (struct sockaddr *)&bs, bl) < 0)
                die("bind %s: %s", bind_addr, strerror(errno));
        }
        if (connect(s, (struct sockaddr *)&ss, sl) < 0)
            die("connect %s: %s", hostport, strerror(errno));
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    return s;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'}, {"listen", required_argument, 0, 'l'},
        {"id", required_argument, 0, 'i'},      {"secret", required_argument, 0, 's'},
        {"plugin", required_argument, 0, 'p'},  {"no-ack", no_argument, 0, 'A'},
        {"no-pong", no_argument, 0, 'P'},       {"no-window", no_argument, 0, 'W'},
        {"tickets", required_argument, 0, 'T'}, {"config", required_argument, 0, 'C'},
        {"raw", no_argument, 0, 'R'},           {"bind", required_argument, 0, 'B'},
        {0, 0, 0, 0}};
    if (argc < 2 || (strcmp(argv[1], "edge") && strcmp(argv[1], "hub"))) {
        fprintf(stderr, "usage: ri-peer edge|hub ... (see tests/tools/ri_peer.c)\n");
        return 2;
    }
    hub_mode = !strcmp(argv[1], "hub");
    const char *addr = NULL, *plugin = NULL;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': case 'l': addr = optarg; break;
        case 'i': edge_id = optarg; break;
        case 's': secret = optarg; break;
        case 'p': plugin = optarg; break;
        case 'A': no_ack = 1; break;
        case 'P': no_pong = 1; break;
        case 'W': no_window = 1; break;
        case 'T': n_tickets = atoi(optarg); break;
        case 'C': config_ports = optarg; break;
        case 'R': raw_mode = 1; break;
        case 'B': bind_addr = optarg; break;
        default: return 2;
        }
    }
    if (!addr || !edge_id || !secret || !plugin) {
        fprintf(stderr, "ri-peer: --connect/--listen, --id, --secret and --plugin are required\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    obuf = malloc(OBUF);
    char err[512];
    struct ri_module *mod;
    if (gnutls_global_init() < 0 || !(mod = ri_module_open(plugin, NULL, err, sizeof err)) ||
        !(auth = ri_inst_create(mod, NULL, NULL, hub_mode ? RI_ROLE_HUB : RI_ROLE_EDGE,
                                &ri_core_api, err, sizeof err)))
        die("setup: %s", err);
    size_t cs = auth->mod->ops.auth.conn_size;
    auth_conn = calloc(1, cs ? cs : 1);

    /* kept in a static: the tool exits from anywhere (die) */
    static struct ri_tls_creds *creds;
    creds = hub_mode ? ri_tls_server_ephemeral(err, sizeof err)
                     : ri_tls_client_creds(NULL, err, sizeof err);
    if (!creds)
        die("TLS credentials: %s", err);
    fd = open_socket(addr, hub_mode);
    int rc;
    if ((rc = ri_tls_session(&S, creds, hub_mode, fd, NULL)) < 0)
        die("TLS session: %s", gnutls_strerror(rc));
    gnutls_datum_t tkey = {0};
    if (hub_mode) {
        gnutls_session_ticket_key_generate(&tkey);
        gnutls_session_ticket_enable_server(S, &tkey);
    }
    gnutls_transport_set_push_function(S, push);
    gnutls_transport_set_pull_function(S, pull);
    gnutls_transport_set_pull_timeout_function(S, pull_timeout);
    do {
        rc = gnutls_handshake(S);
        flush_out();
        if (rc == GNUTLS_E_AGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            poll(&pf, 1, 1000);
        }
    } while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED ||
             (rc < 0 && !gnutls_error_is_fatal(rc)));
    if (rc < 0)
        die("TLS handshake: %s", gnutls_strerror(rc));
    if (ri_tls_binding(S, binding) < 0)
        die("no channel binding");
    out("TLS-UP");
    if (!hub_mode && !raw_mode) {
        uint8_t m1[RI_AUTH_MSG_MAX], hello[RI_FRAME_MAX_PAYLOAD];
        size_t ml;
        if (auth_step(NULL, 0, m1, &ml) < 0)
            die("authentication failed");
        size_t hl = ri_hello_encode(hello, sizeof hello, edge_id, auth->mod->desc.name, m1, ml,
                                    RI_CAPS_SUPPORTED);
        send_frame(RI_F_HELLO, 0, hello, hl);
        flush_out();
    }
    for (;;) {
        struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
        /* records GnuTLS already holds do not make the socket readable */
        int n = gnutls_record_check_pending(S) ? 1 : poll(pf, ready || raw_mode ? 2 : 1, -1);
        if (n < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (gnutls_record_check_pending(S) || pf[0].revents)
            read_tls();
        if (pf[1].revents)
            read_stdin();
    }
}
