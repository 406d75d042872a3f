/* edgejson.h -- edges as JSON, pure (jansson, no I/O): what update_edges
 * and provision take over the control socket and what the edges file
 * holds. One entry is {"id": "...", "secret": "...", "listen_ports": [..],
 * "stun_interval_secs": 300}; the id and secret rules are ident.c's, the
 * port rules the config's (1-65535, no duplicates, at most 4096). */
#ifndef RI_EDGEJSON_H
#define RI_EDGEJSON_H

#include <jansson.h>
#include <stddef.h>

#include "registry.h"

#define RI_EDGEJSON_PORTS_MAX 4096 /* listen_ports per edge, as in the config */
#define RI_EDGEJSON_EDGES_MAX 100000 /* entries in one list */

/* Validates every entry of arr (a JSON array) all-or-nothing: 0 with
 * *out (n entries, sorted ports; free with ri_edge_defs_free) or -1 with
 * one line in err naming the bad entry ("edges[2] (id 'x'): ..."). */
int ri_edges_from_json(const json_t *arr, struct ri_edge_def **out, size_t *n, char *err,
                       size_t errlen);
/* One entry (provision: id and listen_ports; secret given by the caller). */
int ri_edge_from_json(const json_t *o, const char *where, int need_secret,
                      struct ri_edge_def *d, char *err, size_t errlen);
void ri_edge_defs_free(struct ri_edge_def *v, size_t n);
/* [{id, secret, listen_ports, stun_interval_secs}, ...] of defs (secrets
 * included: for the edges file only). */
json_t *ri_edges_to_json(const struct ri_edge_def *v, size_t n, int with_secrets);

#endif
