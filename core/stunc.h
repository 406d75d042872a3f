/* stunc.h -- the edge's STUN client: asks STUN servers (RFC 5389 Binding)
 * for this machine's public address, at start and then every interval, on
 * the loop without ever blocking it (a UDP socket per attempt, names
 * resolved off the loop). Each server gets RI_STUNC_TRIES transmissions
 * (RI_STUNC_RTO, then doubled) before the next one is asked; when no server
 * answered, the round is repeated after a backoff that doubles from
 * RI_STUNC_BACKOFF_MIN up to the interval (at most RI_STUNC_BACKOFF_MAX). */
#ifndef RI_STUNC_H
#define RI_STUNC_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RI_STUNC_RTO 0.5          /* first retransmission timeout, s */
#define RI_STUNC_TRIES 2          /* transmissions per server and round */
#define RI_STUNC_BACKOFF_MIN 2.0  /* s, after a round without an answer */
#define RI_STUNC_BACKOFF_MAX 300.0
#define RI_STUNC_SERVERS_MAX 16

struct ri_resolver;
struct ri_stunc;
struct ri_stun_counters;

/* A round's answer: the address (with the port the server saw) and which
 * server ("host:port") gave it. */
typedef void ri_stunc_cb(void *arg, const struct sockaddr *addr, const char *server);

/* ctr (worker.h: requests sent, how attempts ended) is the caller's and
 * outlives the client; only incremented here. */
struct ri_stunc *ri_stunc_new(struct ev_loop *loop, struct ri_resolver *res,
                              struct ri_stun_counters *ctr, ri_stunc_cb *cb, void *arg);
/* The servers ("host:port", copied) and the interval (s; 0 stops asking).
 * A first call, new servers or an interval that was 0 start a round now; a
 * new interval otherwise takes effect from now. */
void ri_stunc_set(struct ri_stunc *s, const char *const *servers, size_t n, uint32_t interval);
void ri_stunc_free(struct ri_stunc *s);

#endif
