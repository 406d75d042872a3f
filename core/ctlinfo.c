/* ctlinfo.c -- see ctlinfo.h */
#include "worker.h"
#include "ctlinfo.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "control.h"
#include "netutil.h"
#include "tunnel.h"

void ri_ctlinfo_mono_time(uint64_t mono_ns, char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t now = ri_now_ns();
    ri_rfc3339(wall - (now > mono_ns ? now - mono_ns : 0), out, cap);
}

void ri_ctlinfo_streams(json_t *arr, const struct ri_mux *m, const char *edge_id,
                        uint64_t tunnel_id, int up_is_rx)
{
    for (const struct ri_stream *s = m->all; s; s = s->next) {
        struct ri_stream_stats st = {.size = sizeof st};
        if (ri_mux_stream_stats(s, &st) < 0)
            continue;
        char client[80], target[80];
        json_t *o = json_pack(
            "{s:s, s:I, s:i, s:i, s:s, s:f, s:I, s:I, s:s, s:I, s:I, s:I}", "edge", edge_id,
            "tunnel", (json_int_t)tunnel_id, "stream", (int)st.id, "port", (int)st.edge_port,
            "client", ri_raddr_str(&s->client, client, sizeof client), "age",
            (double)st.age_ns / 1e9, "bytesUp", (json_int_t)(up_is_rx ? st.rx_bytes : st.tx_bytes),
            "bytesDown", (json_int_t)(up_is_rx ? st.tx_bytes : st.rx_bytes), "class",
            st.klass ? "sustained" : "normal", "window", (json_int_t)st.rx_window, "sendCredit",
            (json_int_t)st.tx_window, "buffered", (json_int_t)st.rx_buffered);
        if (o && s->target.family)
            json_object_set_new(o, "target", json_string(ri_raddr_str(&s->target, target,
                                                                      sizeof target)));
        if (o)
            json_array_append_new(arr, o);
    }
}

json_t *ri_ctlinfo_plugins(const struct ri_plugins *pl)
{
    const struct ri_module *s = pl->by_kind[RI_KIND_SCHED], *c = pl->by_kind[RI_KIND_CLASSIFY],
                           *a = pl->by_kind[RI_KIND_AUTH], *h = pl->by_kind[RI_KIND_HEADER],
                           *l = pl->by_kind[RI_KIND_LISTENER];
    json_t *o = json_pack("{s:s}", "scheduler", s ? s->desc.name : "fifo (built-in)");
    json_object_set_new(o, "classifier", c ? json_string(c->desc.name) : json_null());
    json_object_set_new(o, "auth", a ? json_string(a->desc.name) : json_null());
    if (h)
        json_object_set_new(o, "header", json_string(h->desc.name));
    if (l)
        json_object_set_new(o, "listener", json_string(l->desc.name));
    return o;
}

void ri_ctlinfo_counters(json_t *a, const struct ri_counters *k)
{
    json_object_set_new(a, "tunnelsOpened", json_integer((json_int_t)k->tunnels_opened));
    json_object_set_new(a, "tunnelsClosed", json_integer((json_int_t)k->tunnels_closed));
    json_object_set_new(a, "streamsOpened", json_integer((json_int_t)k->streams_opened));
    json_object_set_new(a, "streamsClosed", json_integer((json_int_t)k->streams_closed));
    json_object_set_new(a, "streamsRefused", json_integer((json_int_t)k->streams_refused));
    json_object_set_new(a, "streamsRefusedFdLimit",
                        json_integer((json_int_t)k->streams_refused_fdlimit));
    json_object_set_new(a, "bytesToPeer", json_integer((json_int_t)k->bytes_to_peer));
    json_object_set_new(a, "bytesFromPeer", json_integer((json_int_t)k->bytes_from_peer));
    json_object_set_new(a, "controlFramesSent", json_integer((json_int_t)k->ctrl_frames_out));
    json_object_set_new(a, "controlFramesReceived", json_integer((json_int_t)k->ctrl_frames_in));
    json_object_set_new(a, "windowStalls", json_integer((json_int_t)k->window_stalls));
    json_object_set_new(a, "paceStalls", json_integer((json_int_t)k->pace_stalls));
    /* normal and sustained always; a classifier's further classes once used */
    json_t *cl = json_array();
    for (unsigned i = 0; cl && i < RI_CTR_CLASSES; i++) {
        if (i > RI_CLASS_SUSTAINED && !k->data_frames_out[i] && !k->data_frames_in[i])
            continue;
        char name[16];
        snprintf(name, sizeof name, "class%u", i);
        json_array_append_new(
            cl, json_pack("{s:s, s:I, s:I, s:I, s:I}", "class",
                          i == RI_CLASS_DATA ? "normal" : i == RI_CLASS_SUSTAINED ? "sustained"
                                                                                   : name,
                          "framesSent", (json_int_t)k->data_frames_out[i], "framesReceived",
                          (json_int_t)k->data_frames_in[i], "bytesSent",
                          (json_int_t)k->data_bytes_out[i], "bytesReceived",
                          (json_int_t)k->data_bytes_in[i]));
    }
    json_object_set_new(a, "classes", cl ? cl : json_null());
}

json_t *ri_ctlinfo_ip(const struct sockaddr_storage *a)
{
    char ip[64];
    if (!a || !a->ss_family)
        return json_null();
    return json_string(ri_ip_str((const struct sockaddr *)a, ip, sizeof ip));
}
