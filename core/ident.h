/* ident.h -- the rules for an edge id and a shared secret, pure. Every
 * place that takes one (token encode/decode, the hub's and the edge's
 * config, HELLO on the wire) checks it here, so each rule has one message. */
#ifndef RI_IDENT_H
#define RI_IDENT_H

#include <stddef.h>

#define RI_EDGE_ID_MIN_LEN 1
#define RI_EDGE_ID_MAX_LEN 128 /* = RI_EDGE_ID_MAX, the wire's limit */
#define RI_SECRET_MIN_LEN 16

/* 0 when id[0..n) is 1-128 printable ASCII characters without spaces
 * (0x21-0x7e); else -1 with one line in err (never quoting the id, which
 * may come from a peer). */
int ri_check_edge_id_n(const char *id, size_t n, char *err, size_t errlen);
int ri_check_edge_id(const char *id, char *err, size_t errlen);

/* 0 when a secret is usable: at least 16 characters and not one of the
 * placeholders the example configs ship ("REPLACE-with-...", "...change-me");
 * else -1 with one line in err (never quoting the secret). */
int ri_check_secret(const char *secret, char *err, size_t errlen);
/* 1 when s is one of those placeholders. */
int ri_is_placeholder_secret(const char *s);

/* How to make a secret, for messages. */
#define RI_SECRET_HOWTO "`ri-core secret` or `head -c 32 /dev/urandom | base64` makes one"

#endif
