/* admin_http -- Prometheus metrics and a status page over HTTP (a service
 * plugin, either role, off unless enabled).
 *
 * libmicrohttpd runs in external-event mode on the role's own loop: its
 * epoll fd is watched for reading through api->io_new, MHD_run runs when
 * it is readable, and a timer follows MHD_get_timeout. No thread. Every
 * answer is built when asked, from api->query ("metrics", "status",
 * "streams": the control socket's commands, in-process), so the data path
 * pays nothing for it.
 *
 * Endpoints (GET or HEAD): /metrics (Prometheus text), /status.json
 * ({"status":..., "streams":..., "metrics":...}), /ready (200 when the
 * process does its job, else 503), / (a self-contained HTML page that polls
 * /status.json every second). Anything else: 404.
 *
 * Settings: listen ("127.0.0.1:9180"; "[::1]:9180" for IPv6),
 * max_connections (int, default 32), timeout (seconds, default 10).
 * The socket is opened from a timer, not in create, and retried (soon,
 * then every second, with a warning) while the address is busy: on a
 * reload the old instance holds it until the new config is current. The
 * socket is not shared (no SO_REUSEPORT): a second process on the same
 * address fails instead of getting half the scrapes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ri_plugin.h"

#define DEFAULT_LISTEN "127.0.0.1:9180"

struct inst {
    const struct ri_core_api *api;
    ri_inst *self;
    struct sockaddr_storage sa;
    char listen[128];
    unsigned max_conns, timeout;
    struct MHD_Daemon *d;
    ri_io *io;
    ri_timer *tick;  /* MHD's own timeout */
    ri_timer *start; /* opens the socket (and retries) */
    double retry;    /* next retry's delay, seconds */
    int warned;
};

/* ---- a growing text buffer (malloc: MHD frees it with free()) --------------- */
struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void bput(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void bputs(struct buf *b, const char *s) { bput(b, s, strlen(s)); }

static void bprintf(struct buf *b, const char *fmt, ...) RI_PRINTF(2, 3);
static void bprintf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        bput(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- asking the core ------------------------------------------------------------ */
/* The answer of one command, parsed; NULL when the core gave none. */
static json_t *ask(struct inst *in, const char *cmd)
{
    char req[64], *ans = NULL;
    snprintf(req, sizeof req, "{\"cmd\":\"%s\"}", cmd);
    if (in->api->query(in->self, req, &ans) != 0)
        return NULL;
    json_t *o = json_loads(ans, 0, NULL);
    in->api->query_free(ans);
    if (o && !json_is_true(json_object_get(o, "ok"))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void ask_raw(struct inst *in, struct buf *b, const char *cmd)
{
    char req[64], *ans = NULL;
    snprintf(req, sizeof req, "{\"cmd\":\"%s\"}", cmd);
    if (in->api->query(in->self, req, &ans) == 0) {
        bputs(b, ans);
        in->api->query_free(ans);
    } else {
        bputs(b, "null");
    }
}

/* ---- /metrics ------------------------------------------------------------------- */
static uint64_t num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return json_integer_value(v) < 0 ? 0 : (uint64_t)json_integer_value(v);
    if (json_is_boolean(v))
        return json_is_true(v);
    return 0;
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
    bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct buf *b, const char *name, uint64_t v)
{
    bprintf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* a label's value, escaped as the format says */
static void label_value(struct buf *b, const char *v)
{
    for (const char *c = v ? v : ""; *c; c++) {
        if (*c == '\\' || *c == '"')
            bput(b, "\\", 1);
        if (*c == '\n')
            bputs(b, "\\n");
        else
            bput(b, c, 1);
    }
}

/* one value per element of arr, labelled label="<its member lkey>" */
static void per_label(struct buf *b, const json_t *arr, const char *name, const char *type,
                      const char *help, const char *label, const char *lkey, const char *key)
{
    family(b, name, type, help);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        bprintf(b, "%s{%s=\"", name, label);
        label_value(b, json_string_value(json_object_get(e, lkey)));
        bprintf(b, "\"} %llu\n", (unsigned long long)num(e, key));
    }
}

/* one value per edge, labelled edge="<id>" */
static void per_edge(struct buf *b, const json_t *edges, const char *name, const char *type,
                     const char *help, const char *key)
{
    per_label(b, edges, name, type, help, "edge", "id", key);
}

/* an info sample, name{[edge="<edge>",]address="<o's publicIp>"} 1, when o has one */
static void public_ip_info(struct buf *b, const char *name, const char *edge, const json_t *o)
{
    const char *ip = json_string_value(json_object_get(o, "publicIp"));
    if (!ip)
        return;
    bprintf(b, "%s{", name);
    if (edge) {
        bputs(b, "edge=\"");
        label_value(b, edge);
        bputs(b, "\",");
    }
    bputs(b, "address=\"");
    label_value(b, ip);
    bputs(b, "\"} 1\n");
}

static struct {
    const char *name, *type, *help, *key;
} const common[] = {
    {"ri_ready", "gauge", "1 when the process does its job (see /ready).", "ready"},
    {"ri_tunnels_opened_total", "counter", "Tunnels that became ready.", "tunnelsOpened"},
    {"ri_tunnels_closed_total", "counter", "Ready tunnels that closed.", "tunnelsClosed"},
    {"ri_streams_opened_total", "counter", "Streams opened.", "streamsOpened"},
    {"ri_streams_closed_total", "counter", "Streams closed.", "streamsClosed"},
    {"ri_streams_refused_total", "counter", "Streams refused.", "streamsRefused"},
    {"ri_streams_refused_fdlimit_total", "counter",
     "Streams refused at the descriptor limit.", "streamsRefusedFdLimit"},
    {"ri_tunnel_sent_bytes_total", "counter", "Stream payload bytes sent into tunnels.",
     "bytesToPeer"},
    {"ri_tunnel_received_bytes_total", "counter", "Stream payload bytes received from tunnels.",
     "bytesFromPeer"},
    {"ri_handshake_failures_total", "counter",
     "Tunnels that closed before they were ready (TLS or authentication).",
     "handshakeFailures"},
    {"ri_control_frames_sent_total", "counter", "Frames other than DATA sent into tunnels.",
     "controlFramesSent"},
    {"ri_control_frames_received_total", "counter",
     "Frames other than DATA received from tunnels.", "controlFramesReceived"},
    {"ri_window_stalls_total", "counter",
     "Times a stream used up its peer's window and waited for WINDOW to send more.",
     "windowStalls"},
    {"ri_pace_stalls_total", "counter",
     "Times a tunnel with streams waiting reached its in-flight cap and waited for ACK.",
     "paceStalls"},
    {"ri_sched_queued_streams", "gauge",
     "Streams with data waiting in the scheduler for their turn now.", "schedQueued"},
    {"ri_control_queued_bytes", "gauge", "Control frame bytes waiting to be written now.",
     "controlQueuedBytes"},
};

static struct {
    const char *name, *help, *key;
} const per_class[] = {
    {"ri_data_frames_sent_total", "DATA frames sent, by the stream's class.", "framesSent"},
    {"ri_data_frames_received_total", "DATA frames received, by the stream's class.",
     "framesReceived"},
    {"ri_data_sent_bytes_total", "DATA payload bytes sent, by the stream's class.", "bytesSent"},
    {"ri_data_received_bytes_total", "DATA payload bytes received, by the stream's class.",
     "bytesReceived"},
};

static void metrics_text(struct inst *in, struct buf *b, const json_t *m)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    int hub = role && strcmp(role, "hub") == 0;
    family(b, "ri_info", "gauge", "The role of this process.");
    bprintf(b, "ri_info{role=\"%s\"} 1\n", hub ? "hub" : "edge");
    family(b, "ri_uptime_seconds", "gauge", "Seconds since the process started.");
    bprintf(b, "ri_uptime_seconds %.3f\n", json_real_value(json_object_get(m, "uptime")));
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        family(b, common[i].name, common[i].type, common[i].help);
        sample(b, common[i].name, num(m, common[i].key));
    }
    for (size_t i = 0; i < sizeof per_class / sizeof per_class[0]; i++)
        per_label(b, json_object_get(m, "classes"), per_class[i].name, "counter",
                  per_class[i].help, "class", "class", per_class[i].key);
    if (hub) {
        const json_t *edges = json_object_get(m, "edges");
        uint64_t connected = 0, active = 0, auth = 0;
        size_t i;
        json_t *e;
        json_array_foreach(edges, i, e) {
            connected += num(e, "connected");
            active += num(e, "activeStreams");
            auth += num(e, "authFailures");
        }
        family(b, "ri_edges_configured", "gauge", "Edges the hub knows.");
        sample(b, "ri_edges_configured", json_array_size(edges));
        family(b, "ri_edges_connected", "gauge", "Edges with a ready tunnel.");
        sample(b, "ri_edges_connected", connected);
        family(b, "ri_streams_active", "gauge", "Streams open now.");
        sample(b, "ri_streams_active", active);
        family(b, "ri_handshakes_in_progress", "gauge", "Tunnels not yet ready.");
        sample(b, "ri_handshakes_in_progress", num(m, "handshaking"));
        family(b, "ri_auth_failures_total", "counter", "Failed edge authentications.");
        sample(b, "ri_auth_failures_total", auth);
        per_edge(b, edges, "ri_edge_connected", "gauge", "1 when the edge has a ready tunnel.",
                 "connected");
        per_edge(b, edges, "ri_edge_streams_active", "gauge", "Streams open now, per edge.",
                 "activeStreams");
        per_edge(b, edges, "ri_edge_streams_opened_total", "counter", "Streams opened, per edge.",
                 "streamsOpened");
        per_edge(b, edges, "ri_edge_streams_closed_total", "counter", "Streams closed, per edge.",
                 "streamsClosed");
        per_edge(b, edges, "ri_edge_upstream_bytes_total", "counter",
                 "Bytes from clients to the upstream, per edge.", "bytesUp");
        per_edge(b, edges, "ri_edge_downstream_bytes_total", "counter",
                 "Bytes from the upstream to clients, per edge.", "bytesDown");
        per_edge(b, edges, "ri_edge_connects_total", "counter", "Tunnels that became ready, "
                 "per edge.", "connects");
        per_edge(b, edges, "ri_edge_auth_failures_total", "counter",
                 "Failed authentications, per edge.", "authFailures");
        per_edge(b, edges, "ri_edge_ports_failed", "gauge",
                 "Assigned ports the edge reports it cannot open.", "portsFailed");
        per_edge(b, edges, "ri_edge_sched_queued_streams", "gauge",
                 "Streams with data waiting in the scheduler now, per edge.", "schedQueued");
        family(b, "ri_edge_public_ip_info", "gauge",
               "The public IP each edge reported (STUN), per edge.");
        json_array_foreach(edges, i, e)
            public_ip_info(b, "ri_edge_public_ip_info",
                           json_string_value(json_object_get(e, "id")), e);
    } else {
        family(b, "ri_edges_connected", "gauge", "1 when the tunnel to the hub is ready.");
        sample(b, "ri_edges_connected", num(m, "connected"));
        family(b, "ri_streams_active", "gauge", "Streams open now.");
        sample(b, "ri_streams_active", num(m, "activeStreams"));
        family(b, "ri_reconnects_total", "counter", "Tunnels that became ready after the first.");
        sample(b, "ri_reconnects_total", num(m, "reconnects"));
        family(b, "ri_connect_failures_total", "counter", "Attempts that could not reach the hub.");
        sample(b, "ri_connect_failures_total", num(m, "connectFailures"));
        family(b, "ri_ports", "gauge", "Public ports the hub assigned.");
        sample(b, "ri_ports", num(m, "ports"));
        family(b, "ri_ports_failed", "gauge", "Assigned ports that are not open.");
        sample(b, "ri_ports_failed", num(m, "portsFailed"));
        family(b, "ri_held_clients", "gauge", "Clients waiting for a tunnel.");
        sample(b, "ri_held_clients", num(m, "heldClients"));
        const json_t *stun = json_object_get(m, "stun");
        family(b, "ri_stun_requests_total", "counter",
               "STUN Binding requests sent (retransmissions included).");
        sample(b, "ri_stun_requests_total", num(stun, "requests"));
        family(b, "ri_stun_results_total", "counter",
               "How STUN attempts ended: ok (an answer), timeout (a server that never "
               "answered), error, malformed (a datagram that was no valid answer).");
        static const char *const results[] = {"ok", "timeout", "error", "malformed"};
        for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
            bprintf(b, "ri_stun_results_total{result=\"%s\"} %llu\n", results[i],
                    (unsigned long long)num(stun, results[i]));
        family(b, "ri_public_ip_info", "gauge", "The public IP STUN found (absent until then).");
        public_ip_info(b, "ri_public_ip_info", NULL, m);
    }
}

/* ---- the page ------------------------------------------------------------------- */
static const char page[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n<title>ri status</title>\n<style>\n"
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\n"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}\n"
    "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\n"
    "th{background:#f3f3f3}.up{color:#080}.down{color:#b00}\n"
    "canvas{border:1px solid #ccc;display:block;margin:.3em 0 1em}\n"
    "</style></head><body>\n<h1>ri <span id=\"role\"></span></h1>\n"
    "<p id=\"summary\">loading&hellip;</p>\n"
    "<h2>Edges</h2>\n<table id=\"edges\"><thead><tr><th>edge</th><th>state</th><th>ports</th>"
    "<th>streams</th><th>bytes up</th><th>bytes down</th></tr></thead><tbody></tbody></table>\n"
    "<h2>Throughput</h2>\n<div id=\"graphs\"></div>\n"
    "<h2>Streams</h2>\n<table id=\"streams\"><thead><tr><th>edge</th><th>stream</th>"
    "<th>port</th><th>client</th><th>age (s)</th><th>bytes up</th><th>bytes down</th></tr>"
    "</thead><tbody></tbody></table>\n"
    "<script>\n"
    "'use strict';\n"
    "const hist = {}; let last = null; const N = 60;\n"
    "function cell(tr, text, cls) { const td = document.createElement('td');\n"
    "  td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); }\n"
    "function edgesOf(d) {\n"
    "  const s = d.status || {}, m = d.metrics || {};\n"
    "  if (s.role === 'hub') return (m.edges || []).map(e => {\n"
    "    const st = (s.edges || []).find(x => x.id === e.id) || {};\n"
    "    return {id: e.id, connected: e.connected, ports: st.listenPorts || [],\n"
    "            streams: e.activeStreams, up: e.bytesUp, down: e.bytesDown}; });\n"
    "  return [{id: s.edgeId || m.edgeId || '?', connected: !!s.connected,\n"
    "           ports: s.listenPorts || [], streams: m.activeStreams || 0,\n"
    "           up: m.bytesToPeer || 0, down: m.bytesFromPeer || 0}];\n"
    "}\n"
    "function draw(id) {\n"
    "  let c = document.getElementById('g-' + id);\n"
    "  if (!c) { const h = document.createElement('div'); h.textContent = id;\n"
    "    c = document.createElement('canvas'); c.id = 'g-' + id; c.width = 480; c.height = 100;\n"
    "    const g = document.getElementById('graphs'); g.appendChild(h); g.appendChild(c); }\n"
    "  const x = c.getContext('2d'), v = hist[id] || [];\n"
    "  x.clearRect(0, 0, c.width, c.height);\n"
    "  const max = Math.max(1, ...v.map(p => Math.max(p[0], p[1])));\n"
    "  [['#06c', 0], ['#c60', 1]].forEach(([col, k]) => {\n"
    "    x.strokeStyle = col; x.beginPath();\n"
    "    v.forEach((p, i) => { const px = i * c.width / (N - 1),\n"
    "      py = c.height - 2 - p[k] / max * (c.height - 14);\n"
    "      if (i) x.lineTo(px, py); else x.moveTo(px, py); });\n"
    "    x.stroke(); });\n"
    "  x.fillStyle = '#222'; x.font = '11px sans-serif';\n"
    "  x.fillText('peak ' + (max / 1024).toFixed(1) + ' KiB/s (blue up, orange down)', 4, 11);\n"
    "}\n"
    "function show(d) {\n"
    "  const s = d.status || {}, m = d.metrics || {}, now = Date.now() / 1000;\n"
    "  document.getElementById('role').textContent = s.role ? '(' + s.role + ')' : '';\n"
    "  document.getElementById('summary').textContent = (m.ready ? 'ready' : 'not ready') +\n"
    "    ', version ' + (s.version || '?') + ', up ' + Math.round(s.uptime || 0) + ' s';\n"
    "  const tb = document.querySelector('#edges tbody'); tb.textContent = '';\n"
    "  for (const e of edgesOf(d)) {\n"
    "    const tr = document.createElement('tr'); tr.className = 'edge';\n"
    "    cell(tr, e.id); cell(tr, e.connected ? 'connected' : 'down', e.connected ? 'up' : 'down');\n"
    "    cell(tr, e.ports.join(', ')); cell(tr, String(e.streams));\n"
    "    cell(tr, String(e.up)); cell(tr, String(e.down)); tb.appendChild(tr);\n"
    "    const h = hist[e.id] || (hist[e.id] = []), p = last && last[e.id];\n"
    "    if (p) { const dt = Math.max(0.001, now - p.t);\n"
    "      h.push([Math.max(0, e.up - p.up) / dt, Math.max(0, e.down - p.down) / dt]);\n"
    "      if (h.length > N) h.shift(); }\n"
    "    draw(e.id);\n"
    "  }\n"
    "  last = {}; for (const e of edgesOf(d)) last[e.id] = {t: now, up: e.up, down: e.down};\n"
    "  const sb = document.querySelector('#streams tbody'); sb.textContent = '';\n"
    "  for (const x of ((d.streams || {}).streams || [])) {\n"
    "    const tr = document.createElement('tr');\n"
    "    cell(tr, x.edge || ''); cell(tr, String(x.stream)); cell(tr, String(x.port));\n"
    "    cell(tr, x.client || ''); cell(tr, Number(x.age || 0).toFixed(1));\n"
    "    cell(tr, String(x.bytesUp)); cell(tr, String(x.bytesDown)); sb.appendChild(tr);\n"
    "  }\n"
    "}\n"
    "async function poll() {\n"
    "  try { const r = await fetch('/status.json', {cache: 'no-store'});\n"
    "    if (r.ok) show(await r.json());\n"
    "    else document.getElementById('summary').textContent = 'HTTP ' + r.status;\n"
    "  } catch (e) { document.getElementById('summary').textContent = 'unreachable'; }\n"
    "}\n"
    "poll(); setInterval(poll, 1000);\n"
    "</script></body></html>\n";

/* ---- HTTP ----------------------------------------------------------------------- */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             struct buf *b)
{
    struct MHD_Response *r;
    if (b->oom || !b->p) {
        free(b->p);
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r = MHD_create_response_from_buffer(strlen("out of memory\n"), (void *)"out of memory\n",
                                            MHD_RESPMEM_PERSISTENT);
        type = "text/plain; charset=utf-8";
    } else {
        r = MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(b->p);
    }
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct inst *in = cls;
    struct buf b = {0};
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        bputs(&b, "method not allowed\n");
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", &b);
    }
    if (strcmp(url, "/metrics") == 0) {
        json_t *m = ask(in, "metrics");
        if (!m) {
            bputs(&b, "the core gave no metrics\n");
            return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", &b);
        }
        metrics_text(in, &b, m);
        json_decref(m);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
    }
    if (strcmp(url, "/status.json") == 0) {
        bputs(&b, "{\"status\":");
        ask_raw(in, &b, "status");
        bputs(&b, ",\"streams\":");
        ask_raw(in, &b, "streams");
        bputs(&b, ",\"metrics\":");
        ask_raw(in, &b, "metrics");
        bputs(&b, "}\n");
        return reply(c, MHD_HTTP_OK, "application/json", &b);
    }
    if (strcmp(url, "/ready") == 0) {
        json_t *m = ask(in, "metrics");
        int ready = m && json_is_true(json_object_get(m, "ready"));
        json_decref(m);
        bputs(&b, ready ? "ready\n" : "not ready\n");
        return reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                     "text/plain; charset=utf-8", &b);
    }
    if (strcmp(url, "/") == 0) {
        bput(&b, page, sizeof page - 1);
        return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", &b);
    }
    bputs(&b, "not found\n");
    return reply(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", &b);
}

/* ---- driving MHD from the loop -------------------------------------------------- */
static void rearm(struct inst *in)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(in->d, &ms) == MHD_YES)
        in->api->timer_start(in->tick, (double)ms / 1000.0, 0);
    else
        in->api->timer_stop(in->tick);
}

static void run(struct inst *in)
{
    MHD_run(in->d);
    rearm(in);
}

static void on_io(void *arg, int fd, int revents) { run(arg); }
static void on_tick(void *arg) { run(arg); }

static void log_mhd(void *arg, const char *fmt, va_list ap)
{
    struct inst *in = arg;
    char line[300];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    in->api->log(in->self, RI_LOG_DEBUG, "microhttpd: %s", line);
}

static void on_start(void *arg)
{
    struct inst *in = arg;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (in->sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    in->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, in,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&in->sa,
                             MHD_OPTION_CONNECTION_LIMIT, in->max_conns,
                             MHD_OPTION_CONNECTION_TIMEOUT, in->timeout,
                             MHD_OPTION_PER_IP_CONNECTION_LIMIT, in->max_conns,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                             MHD_OPTION_EXTERNAL_LOGGER, log_mhd, in, MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        in->d ? MHD_get_daemon_info(in->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!di) {
        int e = errno;
        if (in->d)
            MHD_stop_daemon(in->d);
        in->d = NULL;
        /* right after a reload the old instance may hold the port a few
         * more moments: retry soon, then every second, and say so once it
         * is not that */
        in->retry = in->retry ? in->retry * 2 : 0.02;
        if (in->retry >= 1.0) {
            in->retry = 1.0;
            if (!in->warned++)
                in->api->log(in->self, RI_LOG_WARN, "cannot listen on %s (%s): retrying every "
                             "second", in->listen, strerror(e));
        }
        in->api->timer_start(in->start, in->retry, 0);
        return;
    }
    in->io = in->api->io_new(in->self, di->epoll_fd, RI_IO_READ, on_io, in);
    if (!in->io) {
        MHD_stop_daemon(in->d);
        in->d = NULL;
        in->api->log(in->self, RI_LOG_ERROR, "out of memory: not serving %s", in->listen);
        return;
    }
    in->api->io_start(in->io);
    in->api->log(in->self, RI_LOG_INFO, "serving /metrics, /status.json, /ready and / on http://%s/",
                 in->listen);
    rearm(in);
}

/* "host:port" or "[v6]:port", numeric */
static int parse_listen(const char *s, struct sockaddr_storage *sa)
{
    char host[100];
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hl = (size_t)(rb - s - 1);
        if (hl >= sizeof host)
            return -1;
        memcpy(host, s + 1, hl);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
        if (hl >= sizeof host)
            return -1;
        memcpy(host, s, hl);
    }
    host[hl] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 1 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

static int admin_create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                        size_t errlen)
{
    struct inst *in = state;
    in->api = api;
    in->self = self;
    const char *listen = DEFAULT_LISTEN;
    int rc = api->cfg_str(self, "listen", &listen);
    if (rc == -EINVAL)
        return snprintf(err, errlen, "listen must be a string (\"127.0.0.1:9180\")"), -EINVAL;
    if (parse_listen(listen, &in->sa) < 0)
        return snprintf(err, errlen, "listen \"%s\": expected a numeric address and port, "
                        "\"127.0.0.1:9180\" or \"[::1]:9180\"", listen), -EINVAL;
    snprintf(in->listen, sizeof in->listen, "%s", listen);
    int64_t v = 32;
    if ((rc = api->cfg_int(self, "max_connections", &v)) == -EINVAL || v < 1 || v > 1024)
        return snprintf(err, errlen, "max_connections must be an integer from 1 to 1024"),
               -EINVAL;
    in->max_conns = (unsigned)v;
    v = 10;
    if ((rc = api->cfg_int(self, "timeout", &v)) == -EINVAL || v < 1 || v > 3600)
        return snprintf(err, errlen, "timeout must be an integer from 1 to 3600 (seconds)"),
               -EINVAL;
    in->timeout = (unsigned)v;
    in->tick = api->timer_new(self, on_tick, in);
    in->start = api->timer_new(self, on_start, in);
    if (!in->tick || !in->start)
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    api->timer_start(in->start, 0, 0); /* on the loop, once the config is current */
    return 0;
}

static void admin_destroy(void *state)
{
    struct inst *in = state;
    if (!in->api)
        return;
    if (in->io) {
        in->api->io_stop(in->io);
        in->api->io_free(in->io);
    }
    if (in->tick) {
        in->api->timer_stop(in->tick);
        in->api->timer_free(in->tick);
    }
    if (in->start) {
        in->api->timer_stop(in->start);
        in->api->timer_free(in->start);
    }
    if (in->d)
        MHD_stop_daemon(in->d);
}

static const char *const keys[] = {"listen", "max_connections", "timeout", NULL};

static const struct ri_service_ops ops = {.size = sizeof ops};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_SERVICE,
    .name = "admin_http",
    .description = "Prometheus /metrics, /status.json, /ready and a status page over HTTP",
    .ops = &ops,
    .inst_size = sizeof(struct inst),
    .create = admin_create,
    .destroy = admin_destroy,
    .keys = keys,
};
