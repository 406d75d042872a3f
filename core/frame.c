/* frame.c -- encode/decode of tunnel frames. Pure: no I/O, no allocation. */
#include "frame.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ident.h"

_Static_assert(RI_EDGE_ID_MAX == RI_EDGE_ID_MAX_LEN, "one limit for an edge id");

const char *ri_conn_code_str(unsigned code)
{
    static const char *const s[] = {"none", "protocol error", "version mismatch",
                                    "authentication failed", "unknown edge id",
                                    "replaced by a newer connection", "shutting down",
                                    "timeout", "flow-control violation", "internal error",
                                    "edge removed from the hub config", "auth method mismatch",
                                    "too many lanes"};
    return code < sizeof s / sizeof s[0] ? s[code] : "unknown code";
}

const char *ri_code_reason(char *buf, size_t len, const char *what, const char *reason)
{
    if (!reason || !reason[0])
        snprintf(buf, len, "%s", what);
    else if (strncasecmp(reason, what, strlen(what)) == 0)
        snprintf(buf, len, "%s", reason);
    else
        snprintf(buf, len, "%s: %s", what, reason);
    return buf;
}

const char *ri_rst_code_str(unsigned code)
{
    static const char *const s[] = {"none", "upstream refused", "upstream unreachable",
                                    "connection reset", "protocol error",
                                    "flow-control violation", "shutting down",
                                    "upstream connect timeout", "internal error",
                                    "port not assigned to this edge", "too many streams"};
    return code < sizeof s / sizeof s[0] ? s[code] : "unknown code";
}

const char *ri_ftype_str(unsigned t)
{
    switch (t) {
    case RI_F_HELLO: return "HELLO";
    case RI_F_AUTH: return "AUTH";
    case RI_F_WELCOME: return "WELCOME";
    case RI_F_REFUSE: return "REFUSE";
    case RI_F_CONFIG: return "CONFIG";
    case RI_F_PING: return "PING";
    case RI_F_PONG: return "PONG";
    case RI_F_GOAWAY: return "GOAWAY";
    case RI_F_ACK: return "ACK";
    case RI_F_PORTS: return "PORTS";
    case RI_F_ADDR: return "ADDR";
    case RI_F_OPEN: return "OPEN";
    case RI_F_DATA: return "DATA";
    case RI_F_FIN: return "FIN";
    case RI_F_RST: return "RST";
    case RI_F_WINDOW: return "WINDOW";
    case RI_F_CLASS: return "CLASS";
    default: return "unknown";
    }
}

void ri_frame_hdr_put(uint8_t *p, uint8_t type, uint32_t stream, uint32_t len)
{
    p[0] = type;
    p[1] = 0;
    ri_put32(p + 2, stream);
    ri_put32(p + 6, len);
}

int ri_frame_hdr_get(const uint8_t *p, size_t avail, uint32_t max_payload,
                     struct ri_frame_hdr *h)
{
    if (avail < RI_FRAME_HDR)
        return 0;
    h->type = p[0];
    h->flags = p[1];
    h->stream = ri_get32(p + 2);
    h->len = ri_get32(p + 6);
    return h->len > max_payload ? -1 : 1;
}

int ri_frame_check(const struct ri_frame_hdr *h, char *err, size_t errlen)
{
    int conn_level; /* 1: stream must be 0; 0: stream must be non-zero */
    uint32_t min = 0, max = RI_FRAME_MAX_PAYLOAD;
    switch (h->type) {
    case RI_F_HELLO: conn_level = 1; min = 8; max = RI_HELLO_MAX; break;
    case RI_F_AUTH: conn_level = 1; max = RI_AUTH_FRAME_MAX; break;
    case RI_F_WELCOME: conn_level = 1; min = 2; max = RI_WELCOME_MAX; break;
    case RI_F_REFUSE: conn_level = 1; min = 2; max = 2 + RI_REASON_MAX; break;
    case RI_F_CONFIG: conn_level = 1; min = 6; max = RI_CONFIG_MAX; break;
    case RI_F_PING:
    case RI_F_PONG: conn_level = 1; min = max = 8; break;
    case RI_F_GOAWAY: conn_level = 1; min = 6; max = 6 + RI_REASON_MAX; break;
    case RI_F_ACK: conn_level = 1; min = max = 4; break;
    case RI_F_PORTS: conn_level = 1; min = 2; max = RI_PORTS_MAX; break;
    case RI_F_ADDR: conn_level = 1; min = max = RI_ADDR_LEN; break;
    case RI_F_OPEN: conn_level = 0; min = max = RI_OPEN_LEN; break;
    case RI_F_DATA: conn_level = 0; min = 1; break;
    case RI_F_FIN: conn_level = 0; max = 0; break;
    case RI_F_RST: conn_level = 0; min = 2; max = 2 + RI_REASON_MAX; break;
    case RI_F_WINDOW: conn_level = 0; min = max = 4; break;
    case RI_F_CLASS: conn_level = 0; min = max = 1; break;
    default:
        snprintf(err, errlen, "unknown frame type 0x%02x", h->type);
        return -1;
    }
    if (conn_level && h->stream != 0) {
        snprintf(err, errlen, "%s frame on stream %u (must be 0)", ri_ftype_str(h->type),
                 h->stream);
        return -1;
    }
    if (!conn_level && h->stream == 0) {
        snprintf(err, errlen, "%s frame on stream 0", ri_ftype_str(h->type));
        return -1;
    }
    if (h->len < min || h->len > max) {
        snprintf(err, errlen, "%s frame with bad length %u", ri_ftype_str(h->type), h->len);
        return -1;
    }
    if (h->flags != 0) {
        snprintf(err, errlen, "%s frame with unknown flags 0x%02x", ri_ftype_str(h->type),
                 h->flags);
        return -1;
    }
    return 0;
}

/* ---- HELLO: magic[4] version u16 idlen u8 id authlen u8 auth msglen u16 msg
 *      [caps u32 [group u64 lane u8 (caps has RI_CAP_LANES)]] [ignored] */
size_t ri_hello_encode(uint8_t *out, size_t cap, const char *edge_id, const char *auth,
                       const uint8_t *msg, size_t msg_len, uint32_t caps)
{
    return ri_hello_encode_lane(out, cap, edge_id, auth, msg, msg_len, caps, 0, 0);
}

size_t ri_hello_encode_lane(uint8_t *out, size_t cap, const char *edge_id, const char *auth,
                            const uint8_t *msg, size_t msg_len, uint32_t caps, uint64_t group,
                            uint8_t lane)
{
    size_t il = strlen(edge_id), al = strlen(auth);
    size_t lanes = caps & RI_CAP_LANES ? RI_LANE_FIELDS : 0;
    size_t need = 4 + 2 + 1 + il + 1 + al + 2 + msg_len + 4 + lanes;
    if (il > RI_EDGE_ID_MAX || al > RI_AUTH_NAME_MAX || msg_len > RI_AUTH_FRAME_MAX ||
        need > cap)
        return 0;
    uint8_t *p = out;
    memcpy(p, RI_PROTO_MAGIC, 4), p += 4;
    ri_put16(p, RI_PROTO_VERSION), p += 2;
    *p++ = (uint8_t)il;
    memcpy(p, edge_id, il), p += il;
    *p++ = (uint8_t)al;
    memcpy(p, auth, al), p += al;
    ri_put16(p, (uint16_t)msg_len), p += 2;
    if (msg_len)
        memcpy(p, msg, msg_len), p += msg_len;
    ri_put32(p, caps), p += 4;
    if (lanes) {
        ri_put32(p, (uint32_t)(group >> 32));
        ri_put32(p + 4, (uint32_t)group);
        p[8] = lane;
    }
    return need;
}

static int printable(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

int ri_hello_decode(const uint8_t *p, size_t n, struct ri_hello *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (n < 6 || memcmp(p, RI_PROTO_MAGIC, 4) != 0)
        return snprintf(err, errlen, "not an ri edge (bad magic)"), -1;
    h->version = ri_get16(p + 4);
    if (h->version != RI_PROTO_VERSION)
        return snprintf(err, errlen, "protocol version %u, this hub speaks %u", h->version,
                        RI_PROTO_VERSION), RI_HELLO_VERSION;
    size_t off = 6;
    if (off >= n) goto short_;
    size_t il = p[off++];
    if (il == 0 || il > RI_EDGE_ID_MAX || off + il > n) goto short_;
    if (ri_check_edge_id_n((const char *)p + off, il, err, errlen) < 0)
        return -1;
    memcpy(h->edge_id, p + off, il), off += il;
    if (off >= n) goto short_;
    size_t al = p[off++];
    if (al > RI_AUTH_NAME_MAX || off + al > n) goto short_;
    if (!printable(p + off, al))
        return snprintf(err, errlen, "auth name has non-printable bytes"), -1;
    memcpy(h->auth, p + off, al), off += al;
    if (off + 2 > n) goto short_;
    h->auth_len = ri_get16(p + off), off += 2;
    if (h->auth_len > RI_AUTH_FRAME_MAX || off + h->auth_len > n) goto short_;
    h->auth_msg = p + off;
    off += h->auth_len;
    if (off == n)
        return 0; /* a peer without capabilities */
    if (n - off < 4 || n - off > 4 + RI_HELLO_EXTRA_MAX) goto short_;
    h->caps = ri_get32(p + off);
    off += 4;
    if (h->caps & RI_CAP_LANES) { /* an edge that offers lanes says which one this is */
        if (n - off < RI_LANE_FIELDS)
            goto short_;
        h->group = (uint64_t)ri_get32(p + off) << 32 | ri_get32(p + off + 4);
        h->lane = p[off + 8];
    }
    return 0;
short_:
    snprintf(err, errlen, "malformed HELLO");
    return -1;
}

size_t ri_welcome_encode(uint8_t out[6], uint32_t caps)
{
    ri_put16(out, RI_PROTO_VERSION);
    ri_put32(out + 2, caps);
    return 6;
}

int ri_welcome_decode(const uint8_t *p, size_t n, uint16_t *version, uint32_t *caps)
{
    if (n < 2 || n > RI_WELCOME_MAX || (n > 2 && n < 6))
        return -1;
    *version = ri_get16(p);
    *caps = n >= 6 ? ri_get32(p + 2) : 0;
    return 0;
}

/* ---- OPEN: family u8 (4|6), client addr[16] port u16, edge addr[16] port u16 */
static void put_addr(uint8_t *p, const struct sockaddr *sa)
{
    memset(p, 0, 18);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(p, &in->sin_addr, 4);
        memcpy(p + 16, &in->sin_port, 2); /* already network order */
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(p, &in6->sin6_addr, 16);
        memcpy(p + 16, &in6->sin6_port, 2);
    }
}

void ri_open_encode(uint8_t out[RI_OPEN_LEN], const struct sockaddr *client,
                    const struct sockaddr *edge)
{
    /* both ends of one TCP connection share a family */
    out[0] = client->sa_family == AF_INET6 ? 6 : 4;
    put_addr(out + 1, client);
    put_addr(out + 19, edge);
}

static void get_addr(const uint8_t *p, int fam, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (fam == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, p, 4);
        memcpy(&in->sin_port, p + 16, 2);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, p, 16);
        memcpy(&in6->sin6_port, p + 16, 2);
    }
}

int ri_open_decode(const uint8_t *p, size_t n, struct ri_open *o, char *err, size_t errlen)
{
    if (n != RI_OPEN_LEN)
        return snprintf(err, errlen, "OPEN payload of %zu bytes", n), -1;
    if (p[0] != 4 && p[0] != 6)
        return snprintf(err, errlen, "OPEN with address family %u", p[0]), -1;
    if (p[0] == 4) {
        static const uint8_t zero[12];
        if (memcmp(p + 5, zero, 12) != 0 || memcmp(p + 23, zero, 12) != 0)
            return snprintf(err, errlen, "OPEN with IPv4 padding not zero"), -1;
    }
    get_addr(p + 1, p[0], &o->client);
    get_addr(p + 19, p[0], &o->edge);
    return 0;
}

/* ---- ADDR: family u8 (4|6), address[16] */
void ri_pubaddr_encode(uint8_t out[RI_ADDR_LEN], const struct sockaddr *a)
{
    uint8_t tmp[18];
    out[0] = a->sa_family == AF_INET6 ? 6 : 4;
    put_addr(tmp, a);
    memcpy(out + 1, tmp, 16);
}

int ri_pubaddr_decode(const uint8_t *p, size_t n, struct sockaddr_storage *a, char *err,
                      size_t errlen)
{
    static const uint8_t zero[16];
    if (n != RI_ADDR_LEN)
        return snprintf(err, errlen, "ADDR payload of %zu bytes", n), -1;
    if (p[0] != 4 && p[0] != 6)
        return snprintf(err, errlen, "ADDR with address family %u", p[0]), -1;
    if (p[0] == 4 && memcmp(p + 5, zero, 12) != 0)
        return snprintf(err, errlen, "ADDR with IPv4 padding not zero"), -1;
    if (memcmp(p + 1, zero, p[0] == 4 ? 4 : 16) == 0)
        return snprintf(err, errlen, "ADDR with the unspecified address"), -1;
    if ((p[0] == 4 && (p[1] & 0xf0) == 0xe0) || (p[0] == 6 && p[1] == 0xff))
        return snprintf(err, errlen, "ADDR with a multicast address"), -1;
    uint8_t tmp[18];
    memcpy(tmp, p + 1, 16);
    tmp[16] = tmp[17] = 0;
    get_addr(tmp, p[0], a);
    return 0;
}

/* ---- CONFIG: stun_interval u32, n u16, ports u16[n] (sorted, unique, non-zero) */
size_t ri_config_encode(uint8_t *out, size_t cap, const struct ri_config_msg *c)
{
    size_t need = 6 + 2 * (size_t)c->n_ports;
    if (c->n_ports > RI_CONFIG_PORTS_MAX || need > cap)
        return 0;
    ri_put32(out, c->stun_interval_secs);
    ri_put16(out + 4, c->n_ports);
    for (unsigned i = 0; i < c->n_ports; i++)
        ri_put16(out + 6 + 2 * i, c->ports[i]);
    return need;
}

int ri_config_decode(const uint8_t *p, size_t n, struct ri_config_msg *c, char *err,
                     size_t errlen)
{
    if (n < 6)
        return snprintf(err, errlen, "CONFIG too short"), -1;
    c->stun_interval_secs = ri_get32(p);
    c->n_ports = ri_get16(p + 4);
    if (c->n_ports > RI_CONFIG_PORTS_MAX || n != 6 + 2 * (size_t)c->n_ports)
        return snprintf(err, errlen, "CONFIG port count %u does not match length %zu",
                        c->n_ports, n), -1;
    for (unsigned i = 0; i < c->n_ports; i++) {
        c->ports[i] = ri_get16(p + 6 + 2 * i);
        if (c->ports[i] == 0 || (i && c->ports[i] <= c->ports[i - 1]))
            return snprintf(err, errlen, "CONFIG ports not sorted, unique and non-zero"), -1;
    }
    return 0;
}

size_t ri_ports_encode(uint8_t *out, size_t cap, const uint16_t *ports, size_t n,
                       const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > RI_REASON_MAX)
        rl = RI_REASON_MAX;
    size_t need = 2 + 2 * n + rl;
    if (n > RI_CONFIG_PORTS_MAX || need > cap)
        return 0;
    ri_put16(out, (uint16_t)n);
    for (size_t i = 0; i < n; i++)
        ri_put16(out + 2 + 2 * i, ports[i]);
    if (rl)
        memcpy(out + 2 + 2 * n, reason, rl);
    return need;
}

int ri_ports_decode(const uint8_t *p, size_t n, struct ri_ports_msg *m, char *err,
                    size_t errlen)
{
    if (n < 2)
        return snprintf(err, errlen, "PORTS too short"), -1;
    m->n_failed = ri_get16(p);
    size_t head = 2 + 2 * (size_t)m->n_failed;
    if (m->n_failed > RI_CONFIG_PORTS_MAX || n < head || n - head > RI_REASON_MAX)
        return snprintf(err, errlen, "PORTS count %u does not match length %zu", m->n_failed,
                        n), -1;
    for (unsigned i = 0; i < m->n_failed; i++) {
        m->ports[i] = ri_get16(p + 2 + 2 * i);
        if (m->ports[i] == 0 || (i && m->ports[i] <= m->ports[i - 1]))
            return snprintf(err, errlen, "PORTS ports not sorted, unique and non-zero"), -1;
    }
    size_t rl = n - head;
    for (size_t i = 0; i < rl; i++) { /* the peer's text goes into our logs */
        uint8_t ch = p[head + i];
        m->reason[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    m->reason[rl] = '\0';
    return 0;
}

size_t ri_reason_encode(uint8_t *out, size_t cap, uint16_t code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > RI_REASON_MAX)
        rl = RI_REASON_MAX;
    if (cap < 2 + rl)
        return 0;
    ri_put16(out, code);
    if (rl)
        memcpy(out + 2, reason, rl);
    return 2 + rl;
}

void ri_reason_decode(const uint8_t *p, size_t n, uint16_t *code, char *reason,
                      size_t reason_cap)
{
    *code = n >= 2 ? ri_get16(p) : 0;
    if (reason_cap == 0)
        return;
    size_t rl = n > 2 ? n - 2 : 0;
    if (rl >= reason_cap)
        rl = reason_cap - 1;
    /* the peer's text goes into our logs: keep it printable */
    for (size_t i = 0; i < rl; i++) {
        uint8_t ch = p[2 + i];
        reason[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    reason[rl] = '\0';
}
