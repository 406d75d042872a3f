/* token.h -- connection tokens: base64url(JSON {"h","p","e","s"[,"H"]}), pure.
 * "H" (optional): more hubs with the same edges, ["host:port", ...]; the
 * edge spreads its lanes over them (edge.hubs). Old tokens have none. */
#ifndef RI_TOKEN_H
#define RI_TOKEN_H

#include <stddef.h>

#define RI_TOKEN_FIELD_MAX 256 /* each string field, bytes, excluding NUL */
#define RI_TOKEN_HUBS_MAX 7    /* "H" entries at most (edge.hubs) */

struct ri_token {
    char hub_host[RI_TOKEN_FIELD_MAX + 1];
    int hub_port; /* 1..65535 */
    char edge_id[RI_TOKEN_FIELD_MAX + 1];
    char secret[RI_TOKEN_FIELD_MAX + 1];
    char hubs[RI_TOKEN_HUBS_MAX][RI_TOKEN_FIELD_MAX + 1]; /* "host:port" */
    int n_hubs;
};
/* "host:port" or "[v6]:port" with a port 1-65535 and a host: the form of a
 * "H" entry (and of edge.hubs); 0 ok, -1 with a reason. */
int ri_token_hostport_check(const char *s, char *err, size_t errlen);

/* Both directions check every field: hub host not empty, port 1-65535, the
 * edge id and the secret by the rules of ident.h (one message per rule). */
/* Returns a malloc'd token string, or NULL with err set. */
char *ri_token_encode(const struct ri_token *t, char *err, size_t errlen);
/* 0 on success; -1 with a one-line reason in err. */
int ri_token_decode(const char *s, struct ri_token *t, char *err, size_t errlen);
/* Makes jansson wipe every block it frees (tokens, edges and control
 * requests carry secrets). Switching allocators while JSON values are
 * alive would free them with the wrong function: main() calls this first,
 * before anything uses jansson. */
void ri_token_secure_json(void);
/* Frees what json_dumps returned, with jansson's allocator in force (never
 * plain free()). */
void ri_json_free(void *p);
/* json_dumps flags for what the control socket and ctl print: compact,
 * reals to 9 significant digits (jansson's default 17 shows a duration of
 * 0.009440873 s as 0.0094408730000000007); with JSON_ENCODE_ANY for a
 * bare value. */
#define RI_JSON_OUT (JSON_COMPACT | JSON_REAL_PRECISION(9)) /* where jansson.h is included */
/* malloc'd {"hubHost":..,"hubPort":..,"edgeId":..,"secret":..} */
char *ri_token_to_json(const struct ri_token *t);

#endif
