/* ctlinfo.h -- what both roles answer over the control socket about
 * their streams and plugins (JSON), so hub.c and edge.c say it alike. */
#ifndef RI_CTLINFO_H
#define RI_CTLINFO_H

#include <jansson.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mux.h"
#include "plugin.h"

/* Every stream of m as {edge, tunnel, stream, port, client, age, bytesUp,
 * bytesDown, class, window, ...} appended to arr. up_is_rx: bytes the
 * tunnel received are client->upstream bytes (the hub). */
void ri_ctlinfo_streams(json_t *arr, const struct ri_mux *m, const char *edge_id,
                        uint64_t tunnel_id, int up_is_rx);
/* {"scheduler": name|"fifo (built-in)", "classifier": name|null, ...} */
json_t *ri_ctlinfo_plugins(const struct ri_plugins *pl);
/* The loop's counters (worker.h) as members of a `metrics` answer. */
struct ri_counters;
void ri_ctlinfo_counters(json_t *a, const struct ri_counters *k);
/* An address's IP as a JSON string; null when family is 0 (none known). */
json_t *ri_ctlinfo_ip(const struct sockaddr_storage *a);
/* A monotonic ri_now_ns() time as RFC 3339 wall-clock text. */
void ri_ctlinfo_mono_time(uint64_t mono_ns, char *out, size_t cap);

#endif
