/* frame.h -- the tunnel's wire format (see core/PROTOCOL.md), pure codec.
 *
 * Every frame: type u8 | flags u8 | stream u32 | length u32 | payload,
 * big-endian, 10-byte header. Stream 0 carries connection-level frames. */
#ifndef RI_FRAME_H
#define RI_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RI_PROTO_MAGIC "RITN"
#define RI_PROTO_VERSION 1
#define RI_FRAME_HDR 10
#define RI_FRAME_MAX_PAYLOAD (64u * 1024u) /* hard limit; larger is a protocol error */
#define RI_REASON_MAX 200                  /* reason text in REFUSE/GOAWAY/RST */
#define RI_EDGE_ID_MAX 128
#define RI_AUTH_NAME_MAX 63                /* the auth plugin's name in HELLO */
#define RI_AUTH_FRAME_MAX 1024             /* an auth message (= the SDK's RI_AUTH_MSG_MAX) */
#define RI_HELLO_EXTRA_MAX 64              /* bytes after the known HELLO/WELCOME fields */
#define RI_HELLO_MAX (4 + 2 + 1 + RI_EDGE_ID_MAX + 1 + RI_AUTH_NAME_MAX + 2 + \
                      RI_AUTH_FRAME_MAX + 4 + RI_HELLO_EXTRA_MAX)
#define RI_WELCOME_MAX (2 + 4 + RI_HELLO_EXTRA_MAX)
#define RI_PREAUTH_MAX_PAYLOAD 8192u        /* any frame before authentication */
#define RI_CONFIG_PORTS_MAX 4096
#define RI_CONFIG_MAX (6 + 2 * RI_CONFIG_PORTS_MAX)

/* Capability bits, exchanged in HELLO (the edge's) and WELCOME (the hub's);
 * a tunnel uses what both sides set. A peer that sends none has none. A new
 * frame type or field that an older peer would reject is sent only when the
 * matching bit is in use (core/PROTOCOL.md, "Capabilities"). */
#define RI_CAP_CLASS (1u << 0) /* CLASS frames: a stream's class told to the peer */
#define RI_CAP_PORTS (1u << 1) /* PORTS frames: the edge reports ports it cannot open */
#define RI_CAP_ADDR (1u << 2)  /* ADDR frames: the edge tells its public address (STUN) */
#define RI_CAP_LANES (1u << 3) /* lanes: HELLO carries group id and lane index; several
                                * connections of one edge form one edge on the hub */
#define RI_CAPS_SUPPORTED (RI_CAP_CLASS | RI_CAP_PORTS | RI_CAP_ADDR | RI_CAP_LANES)
#define RI_LANE_FIELDS 9       /* HELLO with RI_CAP_LANES: group u64, lane u8 */

enum ri_ftype {
    RI_F_HELLO = 0x01,   /* edge -> hub: magic, version, edge id, auth name, auth msg */
    RI_F_AUTH = 0x02,    /* both: next auth message */
    RI_F_WELCOME = 0x03, /* hub -> edge: authenticated; streams may open */
    RI_F_REFUSE = 0x04,  /* both: handshake refused: code, reason; then close */
    RI_F_CONFIG = 0x05,  /* hub -> edge: listen ports and settings */
    RI_F_PING = 0x06,    /* both: 8 opaque bytes */
    RI_F_PONG = 0x07,    /* both: echo of a PING's bytes */
    RI_F_GOAWAY = 0x08,  /* both: no new streams; last stream, code, reason */
    RI_F_ACK = 0x09,     /* both: u32 DATA payload bytes taken out of the pipe */
    RI_F_PORTS = 0x0a,   /* edge -> hub: the assigned ports it could not open, and why
                          * (only with RI_CAP_PORTS) */
    RI_F_ADDR = 0x0b,    /* edge -> hub: its public address as STUN found it
                          * (only with RI_CAP_ADDR) */
    RI_F_OPEN = 0x10,    /* edge -> hub: new stream with addresses */
    RI_F_DATA = 0x11,    /* both: stream bytes */
    RI_F_FIN = 0x12,     /* both: sender's direction ends (half-close) */
    RI_F_RST = 0x13,     /* both: stream aborted: code, reason */
    RI_F_WINDOW = 0x14,  /* both: u32 more bytes of send credit */
    RI_F_CLASS = 0x15,   /* both: u8 the stream's class as the sender's classifier sees it
                          * (only with RI_CAP_CLASS) */
};

/* Connection-level codes (REFUSE, GOAWAY). */
enum ri_conn_code {
    RI_E_NONE = 0,
    RI_E_PROTOCOL = 1,     /* malformed or unexpected frame */
    RI_E_VERSION = 2,      /* incompatible protocol version */
    RI_E_AUTH = 3,         /* authentication failed */
    RI_E_UNKNOWN_EDGE = 4, /* edge id not configured on the hub */
    RI_E_REPLACED = 5,     /* a newer connection took this edge id */
    RI_E_SHUTDOWN = 6,     /* peer is shutting down */
    RI_E_TIMEOUT = 7,      /* handshake or keepalive timeout */
    RI_E_FLOW = 8,         /* flow-control violation */
    RI_E_INTERNAL = 9,     /* resource failure on the sender */
    RI_E_REMOVED = 10,     /* edge removed from the hub's config */
    RI_E_AUTH_METHOD = 11, /* edge and hub use different auth plugins */
    RI_E_LANES = 12,       /* lane refused: index or count above the hub's max_lanes_per_edge */
};

/* Stream-level codes (RST). */
enum ri_rst_code {
    RI_RST_REFUSED = 1,     /* upstream refused the connection */
    RI_RST_UNREACHABLE = 2, /* upstream unreachable / connect failed */
    RI_RST_RESET = 3,       /* local socket reset or errored */
    RI_RST_PROTOCOL = 4,    /* stream protocol error */
    RI_RST_FLOW = 5,        /* peer exceeded its window */
    RI_RST_SHUTDOWN = 6,    /* drained at shutdown */
    RI_RST_TIMEOUT = 7,     /* upstream connect timeout */
    RI_RST_INTERNAL = 8,    /* resource failure (header, memory) */
    RI_RST_FORBIDDEN = 9,   /* OPEN for a port the hub did not assign to this edge */
    RI_RST_LIMIT = 10,      /* max_streams reached */
};

const char *ri_conn_code_str(unsigned code);
const char *ri_rst_code_str(unsigned code);
const char *ri_ftype_str(unsigned type);
/* "what: reason" for a log line, without saying the same thing twice: just
 * `what` when the reason is empty, just the reason when it already starts
 * with `what` (case-insensitive). Returns buf. */
const char *ri_code_reason(char *buf, size_t len, const char *what, const char *reason);

struct ri_frame_hdr {
    uint8_t type;
    uint8_t flags;
    uint32_t stream;
    uint32_t len;
};

static inline void ri_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void ri_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint16_t ri_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t ri_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void ri_frame_hdr_put(uint8_t *p, uint8_t type, uint32_t stream, uint32_t len);
/* 1: header decoded; 0: need more bytes; -1: length above max_payload. */
int ri_frame_hdr_get(const uint8_t *p, size_t avail, uint32_t max_payload,
                     struct ri_frame_hdr *h);

/* Checks a frame's stream/length against its type's rules (pure).
 * 0 ok; -1 with reason in err. Unknown types are rejected. */
int ri_frame_check(const struct ri_frame_hdr *h, char *err, size_t errlen);

/* HELLO: magic, version, edge id, auth plugin name, first auth message,
 * then (optional) capabilities u32; with RI_CAP_LANES in them, group id
 * u64 and lane index u8; further bytes are ignored. */
struct ri_hello {
    uint16_t version;
    char edge_id[RI_EDGE_ID_MAX + 1];
    char auth[RI_AUTH_NAME_MAX + 1];
    const uint8_t *auth_msg; /* points into the decoded payload */
    size_t auth_len;
    uint32_t caps;
    uint64_t group;          /* with RI_CAP_LANES: random per edge process run */
    uint8_t lane;            /* with RI_CAP_LANES: this connection's index */
};
size_t ri_hello_encode(uint8_t *out, size_t cap, const char *edge_id, const char *auth,
                       const uint8_t *msg, size_t msg_len, uint32_t caps); /* 0: does not fit */
/* The same with the lane fields, written when caps has RI_CAP_LANES. */
size_t ri_hello_encode_lane(uint8_t *out, size_t cap, const char *edge_id, const char *auth,
                            const uint8_t *msg, size_t msg_len, uint32_t caps, uint64_t group,
                            uint8_t lane);
/* 0 ok; RI_HELLO_MALFORMED or RI_HELLO_VERSION (with a reason in err) */
enum { RI_HELLO_MALFORMED = -1, RI_HELLO_VERSION = -2 };
int ri_hello_decode(const uint8_t *p, size_t n, struct ri_hello *h, char *err, size_t errlen);

/* WELCOME: version u16, then (optional) capabilities u32; more is ignored. */
size_t ri_welcome_encode(uint8_t out[6], uint32_t caps);
int ri_welcome_decode(const uint8_t *p, size_t n, uint16_t *version, uint32_t *caps);

/* OPEN */
struct ri_open {
    struct sockaddr_storage client;
    struct sockaddr_storage edge;
};
#define RI_OPEN_LEN 37
void ri_open_encode(uint8_t out[RI_OPEN_LEN], const struct sockaddr *client,
                    const struct sockaddr *edge);
int ri_open_decode(const uint8_t *p, size_t n, struct ri_open *o, char *err, size_t errlen);

/* CONFIG */
struct ri_config_msg {
    uint32_t stun_interval_secs;
    uint16_t n_ports;
    uint16_t ports[RI_CONFIG_PORTS_MAX];
};
size_t ri_config_encode(uint8_t *out, size_t cap, const struct ri_config_msg *c);
int ri_config_decode(const uint8_t *p, size_t n, struct ri_config_msg *c, char *err,
                     size_t errlen);

/* PORTS: count u16 | that many ports u16 (sorted, unique, non-zero) | reason
 * text; count 0 = every assigned port is open. */
struct ri_ports_msg {
    uint16_t n_failed;
    uint16_t ports[RI_CONFIG_PORTS_MAX];
    char reason[RI_REASON_MAX + 1]; /* printable ASCII after decoding */
};
size_t ri_ports_encode(uint8_t *out, size_t cap, const uint16_t *ports, size_t n,
                       const char *reason);
int ri_ports_decode(const uint8_t *p, size_t n, struct ri_ports_msg *m, char *err,
                    size_t errlen);
#define RI_PORTS_MAX (2 + 2 * RI_CONFIG_PORTS_MAX + RI_REASON_MAX)

/* ADDR: family u8 (4 or 6) | address [16] (IPv4 in the first 4 bytes, the
 * rest zero). Decoding refuses another family, IPv4 padding that is not
 * zero, and an unspecified or multicast address; the port is 0. */
#define RI_ADDR_LEN 17
void ri_pubaddr_encode(uint8_t out[RI_ADDR_LEN], const struct sockaddr *a);
int ri_pubaddr_decode(const uint8_t *p, size_t n, struct sockaddr_storage *a, char *err,
                      size_t errlen);

/* REFUSE / RST: code u16 + reason; GOAWAY: last stream u32 + code u16 + reason */
size_t ri_reason_encode(uint8_t *out, size_t cap, uint16_t code, const char *reason);
void ri_reason_decode(const uint8_t *p, size_t n, uint16_t *code, char *reason,
                      size_t reason_cap);

#endif
