#!/usr/bin/env python3
"""bench.py -- ri beside the tunnels operators compare it with, in one run.

Every tunnel ("peer") forwards three entry ports to three targets that
ri-loadgen serves (echo, source, sink), and the same figures are taken
through each, one peer after another, so every number is a same-run ratio:

  single     one download (or upload, --up), Gbit/s  (ri-loadgen bulk)
  parallel   --parallel downloads at once, Gbit/s, and Jain's fairness
             index over their bytes (1.0 = equal shares)
  cost       per GB of one bulk stream: CPU ms, context switches and
             syscalls of the tunnel's processes (perf stat)
  rtt        64-byte round trips on an idle tunnel, p50/p99 µs
  rtt_bulk   the same round trips while --bulk-streams downloads run
             through the same tunnel (capped at --bulk-rate each, if
             given), after --bulk-warmup seconds; bulk Gbit/s beside it
  conns      connections per second (connect, 64-byte echo, close) from
             C threads
  idle_mem   --idle-streams idle connections held open through the tunnel:
             user-space memory (RSS of the tunnel's processes) and kernel
             memory (slab + TCP buffers) per connection, the latter over
             raw's (the client's and targets' own sockets)

Peers: raw (no tunnel: the machine's limit), haproxy (one plain TCP hop),
ssh (OpenSSH -L, all ports over one connection, aes128-gcm), stunnel (TLS,
one connection per stream) and ri (hub + edge, PROXY v1 header on: the
targets skip it). --ri-policies fifo,3tier,drr runs ri once per scheduling
policy ("ri", "ri-3tier", "ri-drr").

--runs N goes over all peers N times, the order rotated by one each
round (no peer always first); the table shows each figure's median, a
column of the same-run ratio to ssh (single, parallel: median of the
per-run ratios), and below it ri's run-to-run spread (largest and smallest
run, % off the median) and its per-run ratios. The JSON keeps every run.
A peer that fails to start is stopped and started once more, then left
out of that round with a note; the others go on.

--link RATE (1gbit, 100mbit) puts the targets and each tunnel's far half
(hub, sshd, stunnel server) in a network namespace behind a veth pair
shaped with tc tbf (tests/lib/netns.py; 198.18.0.0/15 addresses, root
needed), as an edge sits behind its uplink.

--delay MS[,MS...] (long-link mode) puts them behind ri-delayline instead
(tests/bench/delayline.c, netns.DelayLink): two TUN devices, every packet
held for half the round trip, so the tunnel's own TCP sees the delay and
its send buffer bounds it as on a real long path. Per round trip: single
and --parallel stream Gbit/s (peers raw, ssh, ri unless --peers), the
round trip measured through no tunnel, ri's window/RTT (core/window.h) and
its share of it, `ss -tinm` of ri's tunnel mid-way through the single
stream (both sides), the delay line's packet and drop counts.

Output: a table (also into README.md between the bench markers with
--update-readme; bench-long markers in long-link mode) and the JSON in
--json (default build/bench.json, build/bench-long.json with --delay).
Needs ri-loadgen (make bench builds it, and ri-delayline); peers whose
programs are missing are skipped with a note (make bench installs them as
root)."""
import argparse
import atexit
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import netns  # noqa: E402

LOADGEN = None
LINK = None
_procs = []


# ---- processes -----------------------------------------------------------------
def spawn(argv, log=None, **kw):
    """Starts argv in its own process group; stopped by stop_all() at exit."""
    out = open(log, "w") if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                         **kw)
    _procs.append(p)
    return p


def stop(p, timeout=5):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in _procs:
        _procs.remove(p)


@atexit.register
def stop_all():
    for p in list(_procs):
        stop(p, 2)


def far(argv):
    return LINK.far(argv) if LINK else argv


def free_port(hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3")):
    import socket
    for _ in range(500):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        ok = True
        for h in hosts:
            t = socket.socket()
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind((h, p))
            except OSError:
                ok = False
            t.close()
        if ok:
            return p
    raise RuntimeError("no free port")


def loadgen(*args, timeout=120):
    r = subprocess.run([LOADGEN, *args], capture_output=True, text=True, timeout=timeout)
    line = (r.stdout.strip().splitlines() or ["{}"])[-1]
    try:
        out = json.loads(line)
    except ValueError:
        out = {"error": f"ri-loadgen: {r.stdout.strip()} {r.stderr.strip()}"}
    if r.returncode and "error" not in out:
        out["error"] = f"ri-loadgen exited {r.returncode}: {r.stderr.strip()}"
    return out


def wait_ready(entry, what, timeout=20, proc=None):
    """Until one round trip through `entry` (an echo) works."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        r = subprocess.run([LOADGEN, "rtt", "--to", entry, "--count", "1"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: no round trip through {entry} within {timeout}s")


def wait_port(host, port, what, timeout=20, proc=None):
    """Until host:port accepts a connection (from this namespace: the near
    side, where the peer's client half connects from)."""
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what}: {host}:{port} not accepting within {timeout}s")


def descendants(pids):
    """pids and all their descendants (from /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo += children.get(p, [])
    return out


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def kernel_kib():
    """Kernel memory that sockets take, in KiB: the slab caches (socket
    structs, files, epoll items) plus TCP buffer pages (/proc/net/sockstat,
    this namespace and, in link mode, the far one). Machine-wide: the
    figure is a difference over thousands of connections, so the noise of
    everything else on the machine divides away."""
    slab = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                slab = int(line.split()[1])

    def pages(prefix):
        r = subprocess.run([*prefix, "cat", "/proc/net/sockstat"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if line.startswith("TCP:"):
                f = line.split()
                return int(f[f.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        return 0
    return slab + pages(()) + (pages(LINK.far([])) if LINK else 0)


# ---- peers ---------------------------------------------------------------------
class Peer:
    name = "?"
    needs = ()

    def __init__(self, tmp, targets):
        self.tmp, self.targets = tmp, targets  # targets: {"echo": port, ...}
        self.procs = []
        self.entries = {}

    @classmethod
    def missing(cls):
        return [n for n in cls.needs if not (shutil.which(n) or os.path.exists(f"/usr/sbin/{n}"))]

    def target_host(self):
        """Where the tunnel's far half reaches the targets."""
        return "127.0.0.1"

    def far_host(self):
        """Where the tunnel's far half listens (for its near half)."""
        return LINK.far_addr if LINK else "127.0.0.1"

    def start(self):
        raise NotImplementedError

    def pids(self):
        return descendants([p.pid for p in self.procs])

    def stop(self):
        for p in reversed(self.procs):
            stop(p)
        self.procs = []

    def spawn(self, argv, log):
        p = spawn(argv, os.path.join(self.tmp, log))
        self.procs.append(p)
        return p


class Raw(Peer):
    name = "raw"

    def start(self):
        h = LINK.far_addr if LINK else "127.0.0.1"
        self.entries = {k: f"{h}:{p}" for k, p in self.targets.items()}


class Haproxy(Peer):
    name, needs = "haproxy", ("haproxy",)

    def start(self):
        th = LINK.far_addr if LINK else "127.0.0.1"
        lines = ["global", "  maxconn 8000", "defaults", "  mode tcp", "  timeout connect 5s",
                 "  timeout client 1h", "  timeout server 1h"]
        for k, p in self.targets.items():
            e = free_port()
            self.entries[k] = f"127.0.0.3:{e}"
            lines += [f"listen {k}", f"  bind 127.0.0.3:{e}", f"  server t {th}:{p}"]
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = self.spawn(["haproxy", "-db", "-f", cfg], "haproxy.log")
        wait_ready(self.entries["echo"], "haproxy", proc=p)


class Ssh(Peer):
    name, needs = "ssh", ("sshd", "ssh", "ssh-keygen")

    def start(self):
        t = self.tmp
        for key in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{t}/{key}"],
                           check=True)
        shutil.copy(f"{t}/user.pub", f"{t}/authorized_keys")
        port = free_port()
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        with open(f"{t}/sshd_config", "w") as f:
            f.write(f"Port {port}\nListenAddress {self.far_host()}\nHostKey {t}/host\n"
                    f"AuthorizedKeysFile {t}/authorized_keys\nPidFile {t}/sshd.pid\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPermitRootLogin yes\nAllowTcpForwarding yes\n"
                    "Ciphers aes128-gcm@openssh.com\nMaxStartups 1000\nMaxSessions 1000\n")
        os.makedirs("/run/sshd", exist_ok=True)
        d = self.spawn(far([sshd, "-D", "-e", "-f", f"{t}/sshd_config"]), "sshd.log")
        fwd = []
        for k, p in self.targets.items():
            e = free_port()
            self.entries[k] = f"127.0.0.3:{e}"
            fwd += ["-L", f"127.0.0.3:{e}:127.0.0.1:{p}"]
        argv = ["ssh", "-N", "-i", f"{t}/user", "-p", str(port), "-c", "aes128-gcm@openssh.com",
                "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={t}/known_hosts",
                "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes", *fwd,
                f"{os.environ.get('USER', 'root')}@{self.far_host()}"]
        wait_port(self.far_host(), port, "sshd", proc=d)  # ssh gives up at once (255)
        c = self.spawn(argv, "ssh.log")
        wait_ready(self.entries["echo"], "ssh", proc=c)
        self.sshd = d


class Stunnel(Peer):
    name, needs = "stunnel", ("stunnel4", "openssl")

    def start(self):
        t = self.tmp
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=bench", "-keyout", f"{t}/key.pem", "-out", f"{t}/cert.pem"],
                       check=True, capture_output=True)
        srv = [f"pid = {t}/srv.pid", "foreground = yes", "debug = 3"]
        cli = [f"pid = {t}/cli.pid", "foreground = yes", "debug = 3"]
        tls_ports = []
        for k, p in self.targets.items():
            tls, e = free_port(), free_port()
            self.entries[k] = f"127.0.0.3:{e}"
            tls_ports.append(tls)
            srv += [f"[{k}]", f"accept = {self.far_host()}:{tls}", f"connect = 127.0.0.1:{p}",
                    f"cert = {t}/cert.pem", f"key = {t}/key.pem"]
            cli += [f"[{k}]", "client = yes", f"accept = 127.0.0.3:{e}",
                    f"connect = {self.far_host()}:{tls}"]
        for n, lines in (("srv", srv), ("cli", cli)):
            with open(f"{t}/{n}.conf", "w") as f:
                f.write("\n".join(lines) + "\n")
        s = self.spawn(far(["stunnel4", f"{t}/srv.conf"]), "stunnel-srv.log")
        for tls in tls_ports:
            wait_port(self.far_host(), tls, "stunnel server", proc=s)
        c = self.spawn(["stunnel4", f"{t}/cli.conf"], "stunnel-cli.log")
        wait_ready(self.entries["echo"], "stunnel", proc=c)


POLICY_PLUGINS = {
    "fifo": "",
    "3tier": '{ name = "sched_3tier"; }, { name = "classify_elephant"; },',
    "drr": '{ name = "sched_drr"; },',
}


class Ri(Peer):
    name, needs = "ri", ()
    build = "build"
    policy = "fifo"
    lanes = 0   # --ri-lanes: the edge's `lanes` (0: its default, auto)
    workers = 0  # --ri-workers: hub's and edge's `workers` (0: their default, one per CPU)
    extra = {}  # policy -> extra plugin text (--ri-classify etc.)

    @classmethod
    def variant(cls, policy, workers=0):
        name = "ri" if policy == "fifo" else f"ri-{policy}"
        name += f"-w{workers}" if workers else ""
        return type(f"Ri_{policy}_{workers}", (cls,), {"policy": policy, "workers": workers,
                                                        "name": name})

    def start(self):
        t, b = self.tmp, os.path.join(ROOT, self.build)
        core, plugdir = os.path.join(b, "ri-core"), os.path.join(b, "plugins")
        hp = free_port()
        secret = os.urandom(16).hex()
        pol = POLICY_PLUGINS[self.policy]
        ports = ", ".join(str(p) for p in self.targets.values())
        hub = (f'role = "hub"; log_level = "warn"; plugin_dir = "{plugdir}";\n'
               f'plugins = ( {pol} {{ name = "auth_secret"; }}, {{ name = "header_proxy_v1"; }} );\n'
               f'hub = {{ listen = "{self.far_host()}:{hp}"; target_host = "127.0.0.1"; state_dir = "";\n'
               + (f'  workers = {self.workers};\n' if self.workers else '') +
               f'  edges = ( {{ id = "bench"; secret = "{secret}"; listen_ports = [ {ports} ]; }} ); }};\n')
        edge = (f'role = "edge"; log_level = "warn"; plugin_dir = "{plugdir}";\n'
                f'plugins = ( {pol} {{ name = "auth_secret"; }}, {{ name = "listen_tcp"; }} );\n'
                f'edge = {{ hub_host = "{self.far_host()}"; hub_port = {hp}; edge_id = "bench";\n'
                f'  secret = "{secret}"; bind_address = "127.0.0.2"; reconnect_min_secs = 0.1;'
                + (f' lanes = {self.lanes}; lanes_max = {max(8, self.lanes)};' if self.lanes else '')
                + (f' workers = {self.workers};' if self.workers else '')
                + ' };\n')
        for n, text in (("hub.cfg", hub), ("edge.cfg", edge)):
            fd = os.open(os.path.join(t, n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        self.hub_port = hp
        h = self.spawn(far([core, "-c", f"{t}/hub.cfg"]), "hub.log")
        wait_port(self.far_host(), hp, "ri hub", proc=h)  # saves the edge a backoff step
        e = self.spawn([core, "-c", f"{t}/edge.cfg"], "edge.log")
        self.entries = {k: f"127.0.0.2:{p}" for k, p in self.targets.items()}
        wait_ready(self.entries["echo"], "ri", proc=e)


PEERS = {"raw": Raw, "haproxy": Haproxy, "ssh": Ssh, "stunnel": Stunnel, "ri": Ri}


# ---- figures -------------------------------------------------------------------
def bulk_args(peer, a):
    """Downloads from the source target, or uploads to the sink (--up)."""
    return (["--to", peer.entries["sink"], "--up"] if a.up else
            ["--to", peer.entries["source"]])


def bulk_error(r):
    """An upload counts what the socket took; the sink must confirm that
    every byte arrived, or the figure is not throughput."""
    if r.get("error"):
        return r["error"]
    if r.get("sink_confirmed") is False:
        return "the sink did not receive every byte written"
    if r.get("failed"):
        return f"{r['failed']} stream(s) failed"
    return None


SS_FIELDS = ("cwnd", "rtt", "delivery_rate", "pacing_rate", "unacked", "notsent", "busy",
             "rwnd_limited", "sndbuf_limited", "skmem")


def tunnel_ss(peer):
    """`ss -tinm` of ri's tunnel connection on both sides (the hub sends a
    download, the edge an upload), with the fields that say what bounds it:
    cwnd, send buffer (skmem tb), time rwnd- and sndbuf-limited."""
    out = {}
    for side, prefix in (("hub", far([])), ("edge", [])):
        r = subprocess.run([*prefix, "ss", "-tinm", "state", "established",
                            f"( sport = :{peer.hub_port} or dport = :{peer.hub_port} )"],
                           capture_output=True, text=True)
        # one block per connection: its address line, then indented info;
        # with lanes there are several: the one that moved the most bytes
        # is the one carrying the stream
        blocks = []
        for line in r.stdout.splitlines()[1:]:
            if line and not line[0].isspace():
                blocks.append([line])
            elif blocks:
                blocks[-1].append(line)
        best, best_acked = None, -1
        for b in blocks:
            text = " ".join(x.strip() for x in b)
            fields, toks = {}, text.split()
            acked = 0
            for i, tok in enumerate(toks):
                k, _, v = tok.partition(":")
                if k == "bytes_acked" and v.isdigit():
                    acked = int(v)
                if k in SS_FIELDS and v:
                    fields[k] = v
                elif tok in SS_FIELDS and i + 1 < len(toks):  # "pacing_rate 1.2Gbps"
                    fields[tok] = toks[i + 1]
            if acked > best_acked:
                best, best_acked = {"fields": fields, "text": text}, acked
        out[side] = dict(best or {"fields": {}, "text": ""}, connections=len(blocks))
    return out


def bulk_result(bulk, timeout):
    """The JSON line a running `ri-loadgen bulk` ends with, or an error."""
    out, _ = bulk.communicate(timeout=timeout)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "bulk client gave no result"}


def fig_single(peer, a):
    args = [*bulk_args(peer, a), "--streams", "1", "--secs", str(a.seconds), "--warmup",
            str(a.warmup)]
    if not (DELAY and isinstance(peer, Ri)):
        r = loadgen("bulk", *args, timeout=a.warmup + a.seconds + 60)
        return {"gbps": r.get("gbps"), "error": bulk_error(r)}
    bulk = subprocess.Popen([LOADGEN, "bulk", *args], stdout=subprocess.PIPE, text=True)
    time.sleep(a.warmup + a.seconds / 2)
    ss = tunnel_ss(peer)
    r = bulk_result(bulk, a.seconds + 60)
    return {"gbps": r.get("gbps"), "error": bulk_error(r), "ss": ss}


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s():
    """CPU seconds the whole machine spent busy (not idle or iowait)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def fig_parallel(peer, a):
    args = [*bulk_args(peer, a), "--streams", str(a.parallel), "--secs", str(a.seconds),
            "--warmup", str(a.warmup)]
    if not DELAY:
        r = loadgen("bulk", *args, timeout=a.warmup + a.seconds + 60)
        return {"gbps": r.get("gbps"), "jain": r.get("jain"), "error": bulk_error(r)}
    # behind the delay line: where the CPU goes during the measured window
    # (cores busy: the tunnel's processes, the delay line, the load client,
    # the whole machine) -- on a small machine, what bounds 8 streams
    bulk = subprocess.Popen([LOADGEN, "bulk", *args], stdout=subprocess.PIPE, text=True)
    time.sleep(a.warmup)
    who = {"tunnel": sorted(peer.pids()), "delayline": [LINK.proc.pid] if LINK.proc else [],
           "client": [bulk.pid]}
    t0 = time.monotonic()
    c0 = {k: sum(proc_cpu_s(p) for p in v) for k, v in who.items()}
    m0 = machine_busy_s()
    time.sleep(a.seconds * 0.9)
    dt = time.monotonic() - t0
    cpu = {k: round((sum(proc_cpu_s(p) for p in v) - c0[k]) / dt, 2) for k, v in who.items()}
    cpu["machine"] = round((machine_busy_s() - m0) / dt, 2)
    r = bulk_result(bulk, a.seconds + 60)
    return {"gbps": r.get("gbps"), "jain": r.get("jain"), "error": bulk_error(r), "cores": cpu}


def fig_cost(peer, a):
    """CPU time, context switches and syscalls of the tunnel's processes per
    GB of one bulk stream (perf stat): figures that do not swing with the
    machine's load the way Gbit/s do, so a change's effect shows in one
    run. Instructions are reported where the machine exposes a PMU."""
    pids = sorted(peer.pids())
    if not pids:
        return {"error": None}  # raw: nothing to count
    if not shutil.which("perf"):
        return {"error": "perf is not installed (linux-perf)"}
    bulk = subprocess.Popen([LOADGEN, "bulk", *bulk_args(peer, a), "--streams", "1",
                             "--warmup", "0.5", "--secs", str(a.seconds)],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    ev = "task-clock,context-switches,instructions,raw_syscalls:sys_enter"
    st = subprocess.run(["perf", "stat", "-x", ",", "-e", ev, "-p", ",".join(map(str, pids)),
                         "--", "sleep", str(a.seconds)], capture_output=True, text=True)
    out, _ = bulk.communicate(timeout=60)
    try:
        b = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "bulk client gave no result"}
    gb = (b.get("gbps") or 0) * b.get("secs", 0) / 8
    if gb <= 0:
        return {"error": "no bytes moved"}
    vals = {}
    for line in st.stderr.splitlines():
        f = line.split(",")
        if len(f) > 2:
            try:
                vals[f[2]] = float(f[0])
            except ValueError:
                pass
    res = {"gb": round(gb, 2), "error": None if vals else f"perf stat: {st.stderr.strip()[:200]}"}
    if "task-clock" in vals:
        res["cpu_ms_per_gb"] = round(vals["task-clock"] / gb, 1)
    if "context-switches" in vals:
        res["ctxsw_per_gb"] = round(vals["context-switches"] / gb)
    if "raw_syscalls:sys_enter" in vals:
        res["syscalls_per_gb"] = round(vals["raw_syscalls:sys_enter"] / gb)
    if "instructions" in vals:
        res["instructions_per_gb"] = round(vals["instructions"] / gb)
    return res


def fig_rtt(peer, a):
    r = loadgen("rtt", "--to", peer.entries["echo"], "--count", str(a.rtt_count),
                "--interval-us", "1000")
    return {k: r.get(k) for k in ("p50_us", "p99_us", "mean_us", "error")}


def fig_rtt_bulk(peer, a):
    """Round trips beside bulk: the bulk runs from before the warm-up until
    the last round trip is done (SIGTERM ends its window), however long the
    round trips take on a slow link."""
    args = [LOADGEN, "bulk", *bulk_args(peer, a), "--streams", str(a.bulk_streams),
            "--warmup", str(a.bulk_warmup), "--secs", "3600"]
    if a.bulk_rate:
        args += ["--rate", str(a.bulk_rate)]
    bulk = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    out = ""
    try:
        time.sleep(a.bulk_warmup + 0.2)
        r = loadgen("rtt", "--to", peer.entries["echo"], "--count", str(a.rtt_count),
                    "--interval-us", "1000", timeout=600)
        bulk.terminate()
        out, _ = bulk.communicate(timeout=30)
    finally:
        if bulk.poll() is None:
            bulk.kill()
            bulk.wait()
    try:
        b = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        b = {"error": "bulk client gave no result"}
    res = {k: r.get(k) for k in ("p50_us", "p99_us", "mean_us")}
    res["bulk_gbps"] = b.get("gbps")
    res["error"] = r.get("error") or b.get("error")
    return res


def fig_conns(peer, a):
    r = loadgen("conns", "--to", peer.entries["echo"], "--secs", "2", "--parallel", "4")
    return {"per_sec": r.get("per_sec"), "errors": r.get("errors"), "error": r.get("error")}


def fig_idle_mem(peer, a):
    """For raw, pids is empty: its figure is the kernel memory of the
    client's and the targets' own sockets and threads, which the table
    subtracts from every tunnel's."""
    pids = peer.pids()
    n = a.idle_streams
    rss0, sk0 = rss_kib(pids), kernel_kib()
    h = subprocess.Popen([LOADGEN, "hold", "--to", peer.entries["echo"], "--count", str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = h.stdout.readline()
        if not line.startswith("HELD"):
            return {"error": f"hold: {line.strip()}"}
        held = int(line.split()[1])
        time.sleep(0.5)
        pids = peer.pids()  # ssh/stunnel/haproxy may have forked or threaded
        rss1, sk1 = rss_kib(pids), kernel_kib()
    finally:
        h.stdin.close()
        h.wait(30)
    return {"streams": held, "user_bytes": round((rss1 - rss0) * 1024 / held),
            "kernel_bytes": round((sk1 - sk0) * 1024 / held), "error": None}


FIGURES = {"single": fig_single, "parallel": fig_parallel, "cost": fig_cost, "rtt": fig_rtt,
           "rtt_bulk": fig_rtt_bulk, "conns": fig_conns, "idle_mem": fig_idle_mem}


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


# ---- runs, medians, ratios -----------------------------------------------------
MAIN = {"single": "gbps", "parallel": "gbps", "cost": "cpu_ms_per_gb", "rtt": "p99_us",
        "rtt_bulk": "p99_us", "conns": "per_sec", "idle_mem": "user_bytes"}


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def median_of(dicts):
    """One figure's runs -> its medians: every number that the runs have;
    the first run's value for anything else (the ss text, for one)."""
    import statistics
    out = {}
    for k in dict.fromkeys(k for d in dicts for k in d):
        vals = [d[k] for d in dicts if k in d]
        if vals and all(num(v) for v in vals):
            m = statistics.median(vals)
            out[k] = round(m) if all(isinstance(v, int) for v in vals) else round(m, 4)
        elif k == "error":
            errs = [v for v in vals if v]
            out[k] = "; ".join(dict.fromkeys(errs)) if errs else None
        else:
            out[k] = vals[0]
    return out


def aggregate(runs, figures):
    """runs: [{peer: {figure: {...}}}] -> {peer: medians + spread + vs_ssh}.
    spread: each figure's main number, its largest and smallest run as %
    off the median. vs_ssh: the peer's single and parallel Gbit/s over
    ssh's in the same run, every run and their median."""
    import statistics
    names = list(dict.fromkeys(n for r in runs for n in r))
    res = {}
    for n in names:
        res[n] = agg = {}
        for f in figures:
            got = [r[n][f] for r in runs if f in r.get(n, {})]
            if not got:
                continue
            agg[f] = median_of(got)
            vals = [g.get(MAIN[f]) for g in got if num(g.get(MAIN[f]))]
            med = agg[f].get(MAIN[f])
            if len(vals) > 1 and num(med) and med:
                agg.setdefault("spread", {})[f] = {
                    "max_pct": round((max(vals) - med) * 100 / med, 1),
                    "min_pct": round((min(vals) - med) * 100 / med, 1), "n": len(vals)}
        for f in ("single", "parallel"):
            ratios = []
            for r in runs:
                mine = r.get(n, {}).get(f, {}).get("gbps")
                ssh = r.get("ssh", {}).get(f, {}).get("gbps")
                if num(mine) and num(ssh) and ssh > 0:
                    ratios.append(round(mine / ssh, 3))
            if ratios and n != "ssh":
                agg.setdefault("vs_ssh", {})[f] = {"runs": ratios,
                                                   "median": round(statistics.median(ratios), 3)}
    return res


def start_peer(cls, tmp, tport, notes):
    """Starts a peer; one that fails to start is stopped and tried once
    more, then reported. Returns the started peer or None."""
    d = os.path.join(tmp, cls.name)
    for attempt in (1, 2):
        os.makedirs(d, exist_ok=True)
        peer = cls(d, tport)
        try:
            peer.start()
            return peer
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            peer.stop()
            notes.append(f"{cls.name}: start failed{' again' if attempt == 2 else ', retried'}:"
                         f" {e} (logs in {d})")
            d = os.path.join(tmp, f"{cls.name}-retry")
    return None


def run_peers(order, tmp, tport, figures, a, notes):
    results = {}
    for cls in order:
        peer = start_peer(cls, tmp, tport, notes)
        if peer is None:
            results[cls.name] = {"error": "did not start"}
            continue
        res = results[cls.name] = {}
        try:
            for f in figures:
                print(f"  {cls.name}: {f} ...", file=sys.stderr, flush=True)
                res[f] = FIGURES[f](peer, a)
                if res[f].get("error"):
                    notes.append(f"{cls.name} {f}: {res[f]['error']}")
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            notes.append(f"{cls.name}: {e} (logs in {peer.tmp})")
        finally:
            peer.stop()
    base = results.get("raw", {}).get("idle_mem", {}).get("kernel_bytes")
    for r in results.values():
        m = r.get("idle_mem")
        if m and base is not None and m.get("kernel_bytes") is not None:
            m["kernel_over_raw"] = m["kernel_bytes"] - base
    return results


def session(peers, figures, a, tmp, notes):
    """Targets up, then --runs rounds over the peers, the order rotated by
    one each round so that no peer always runs first. Returns (every run, behind a delay line the round trip
    measured through no tunnel, in ms)."""
    tport = {k: free_port() for k in ("echo", "source", "sink")}
    os.makedirs(tmp, exist_ok=True)
    log = os.path.join(tmp, "targets.log")
    srv = spawn(far([LOADGEN, "serve", "--host", "0.0.0.0" if LINK else "127.0.0.1",
                     "--echo", str(tport["echo"]), "--source", str(tport["source"]),
                     "--sink", str(tport["sink"])]), log)
    try:
        wait_port(LINK.far_addr if LINK else "127.0.0.1", tport["echo"], "ri-loadgen serve",
                  proc=srv)
        rtt_ms = None
        if DELAY:  # the round trip TCP sees through no tunnel: idle 64-byte echoes
            r = loadgen("rtt", "--to", f"{LINK.far_addr}:{tport['echo']}", "--count", "20",
                        "--interval-us", "10000", timeout=60)
            rtt_ms = r["p50_us"] / 1000 if num(r.get("p50_us")) else None
        runs = []
        for i in range(a.runs):
            k = i % len(peers)
            order = peers[k:] + peers[:k]
            if a.runs > 1:
                print(f"run {i + 1}/{a.runs}: {' '.join(c.name for c in order)}",
                      file=sys.stderr, flush=True)
            runs.append({"order": [c.name for c in order],
                         "results": run_peers(order, os.path.join(tmp, f"run{i + 1}"), tport,
                                              figures, a, notes)})
        return runs, rtt_ms
    finally:
        stop(srv)


# ---- tables --------------------------------------------------------------------
def table(results, figures):
    cols = [("peer", 10)]
    if "single" in figures:
        cols.append(("single Gb/s", 11))
    if "parallel" in figures:
        cols.append(("par Gb/s (jain)", 16))
    if "single" in figures or "parallel" in figures:
        cols.append(("×ssh single, par", 16))
    if "cost" in figures:
        cols.append(("per GB: CPU ms, ctxsw, syscalls", 31))
    if "rtt" in figures:
        cols.append(("rtt p50/p99 µs", 15))
    if "rtt_bulk" in figures:
        cols.append(("under bulk p50/p99 µs (bulk Gb/s)", 34))
    if "conns" in figures:
        cols.append(("conn/s", 8))
    if "idle_mem" in figures:
        cols.append(("idle stream B: user+kernel", 26))
    lines = ["| " + " | ".join(c for c, _ in cols) + " |",
             "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                            for i, (_, w) in enumerate(cols)) + "|"]
    for name, r in results.items():
        row = [name]
        if "single" in figures:
            row.append(fmt(r.get("single", {}).get("gbps"), ".2f"))
        if "parallel" in figures:
            p = r.get("parallel", {})
            row.append(f"{fmt(p.get('gbps'), '.2f')} ({fmt(p.get('jain'), '.3f')})")
        if "single" in figures or "parallel" in figures:
            v = r.get("vs_ssh", {})
            row.append("1" if name == "ssh" else
                       f"{fmt(v.get('single', {}).get('median'), '.2f')}, "
                       f"{fmt(v.get('parallel', {}).get('median'), '.2f')}")
        if "cost" in figures:
            p = r.get("cost", {})
            row.append(f"{fmt(p.get('cpu_ms_per_gb'), '.0f')}, {fmt(p.get('ctxsw_per_gb'), 'd')}, "
                       f"{fmt(p.get('syscalls_per_gb'), 'd')}")
        if "rtt" in figures:
            p = r.get("rtt", {})
            row.append(f"{fmt(p.get('p50_us'), 'd')}/{fmt(p.get('p99_us'), 'd')}")
        if "rtt_bulk" in figures:
            p = r.get("rtt_bulk", {})
            row.append(f"{fmt(p.get('p50_us'), 'd')}/{fmt(p.get('p99_us'), 'd')} "
                       f"({fmt(p.get('bulk_gbps'), '.3f')})")
        if "conns" in figures:
            row.append(fmt(r.get("conns", {}).get("per_sec"), ".0f"))
        if "idle_mem" in figures:
            p = r.get("idle_mem", {})
            k = p.get("kernel_over_raw", p.get("kernel_bytes"))
            row.append(f"{fmt(p.get('user_bytes'), 'd')}+{fmt(k, 'd')}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def spread_lines(results):
    """ri's (and its policy variants') run-to-run spread, one line each."""
    out = []
    for name, r in results.items():
        sp = r.get("spread")
        if not name.startswith("ri") or not sp:
            continue
        parts = [f"{f} {v['max_pct']:+.1f}/{v['min_pct']:+.1f}" for f, v in sp.items()]
        vs = r.get("vs_ssh", {})
        per = "; ".join(f"{f} {', '.join(format(x, '.2f') for x in v['runs'])}"
                        for f, v in vs.items())
        out.append(f"{name}: medians of {max(v['n'] for v in sp.values())} runs; run-to-run "
                   f"spread, max/min off the median, % (main figure of each column): "
                   f"{', '.join(parts)}" + (f"; ×ssh per run: {per}" if per else "") + ".")
    return out


def window_theory(streams, rtt_s):
    """ri's window/RTT for `streams` active streams, Gbit/s: each stream's
    window is clamp(budget / streams, min, max) (core/window.h, read here so
    the figure follows the code)."""
    import re
    val = {"BUDGET": 200 << 20, "MIN": 1 << 20, "MAX": 4 << 20}
    try:
        with open(os.path.join(ROOT, "core", "window.h")) as f:
            for k, a, b in re.findall(r"#define RI_WINDOW_(BUDGET|MIN|MAX) \((\d+)u << (\d+)\)",
                                      f.read()):
                val[k] = int(a) << int(b)
    except OSError:
        pass
    w = min(max(val["BUDGET"] // streams, val["MIN"]), val["MAX"])
    return {"window_bytes": w, "gbps": round(streams * w * 8 / rtt_s / 1e9, 4)}


def long_table(sessions, names):
    """One row per round trip: each peer's 1 / N streams, ri against ssh,
    raw and its window/RTT."""
    cols = ["round trip (p50 measured)"] + [f"{n} 1 / {sessions[0]['parallel']} Gb/s"
                                            for n in names]
    has_ri = "ri" in names
    if has_ri:
        cols += ["ri ×ssh", "ri ×raw", "ri window/RTT", "ri of window/RTT"]
    lines = ["| " + " | ".join(cols) + " |", "|---" + "|---:" * (len(cols) - 1) + "|"]

    def pair(r, f="gbps"):
        return (f"{fmt(r.get('single', {}).get(f), '.2f')} / "
                f"{fmt(r.get('parallel', {}).get(f), '.2f')}")
    for s in sessions:
        res = s["results"]
        row = [f"{s['rtt_ms']:g} ms ({fmt(s['rtt_measured_ms'], '.1f')} ms)"]
        row += [pair(res.get(n, {})) for n in names]
        if has_ri:
            ri = res.get("ri", {})

            def ratio(other, f):
                a, b = ri.get(f, {}).get("gbps"), res.get(other, {}).get(f, {}).get("gbps")
                return a / b if num(a) and num(b) and b else None
            row.append(f"{fmt(ratio('ssh', 'single'), '.2f')} / {fmt(ratio('ssh', 'parallel'), '.2f')}")
            row.append(f"{fmt(ratio('raw', 'single'), '.2f')} / {fmt(ratio('raw', 'parallel'), '.2f')}")
            th = s.get("ri_window", {})
            row.append(f"{fmt(th.get('single', {}).get('gbps'), '.2f')} / "
                       f"{fmt(th.get('parallel', {}).get('gbps'), '.2f')}")
            row.append(f"{fmt(th.get('single', {}).get('of_window'), '.2f')} / "
                       f"{fmt(th.get('parallel', {}).get('of_window'), '.2f')}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def update_readme(head, text, args, marker="bench"):
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in readme or end not in readme:
        print(f"README.md has no {marker} markers: not updated", file=sys.stderr)
        return
    block = (f"{begin}\n`tests/bench/bench.py {args}`: {head}.\n\n{text}\n{end}")
    readme = readme[:readme.index(begin)] + block + readme[readme.index(end) + len(end):]
    with open(path, "w") as f:
        f.write(readme)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d")}


def sysctl(name):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return " ".join(f.read().split())
    except OSError:
        return "?"


# ---- modes ---------------------------------------------------------------------
def main_loopback(a, peers, figures, tmp, notes):
    global LINK
    if a.link:
        ok, why = netns.available()
        if not ok:
            sys.exit(f"--link: {why}")
        rate = a.link.lower()
        mbit = float(rate[:-4]) * 1000 if rate.endswith("gbit") else float(rate[:-4])
        LINK = netns.Link(mbit, a.link_queue)
    try:
        runs, _ = session(peers, figures, a, tmp, notes)
    finally:
        if LINK:
            LINK.close()
    results = aggregate([r["results"] for r in runs], figures)
    out = {"machine": machine(), "link": a.link, "link_queue_ms": a.link_queue if a.link else None,
           "args": vars(a), "results": results, "runs": runs, "notes": notes}
    where = f"behind a {a.link} link ({a.link_queue:g} ms queue)" if a.link else "loopback"
    head = (f"{out['machine']['date']}, {out['machine']['cpu']}, {out['machine']['cores']} cores, "
            f"kernel {out['machine']['kernel']}, {where}; "
            + (f"medians of {a.runs} runs (peer order rotated per run); " if a.runs > 1 else "")
            + f"{'uploads' if a.up else 'downloads'}; under bulk: beside "
            f"{a.bulk_streams} bulk stream(s)"
            + (f" at {a.bulk_rate * 8 / 1e9:g} Gbit/s each" if a.bulk_rate else "")
            + f" after {a.bulk_warmup:g} s; {a.parallel} parallel streams; "
            f"{a.idle_streams} idle streams")
    text = table(results, figures)
    extra = spread_lines(results)
    if extra:
        text += "\n\n" + "\n".join("- " + x for x in extra)
    return out, head, text, "bench"


def main_long(a, peers, figures, tmp, notes):
    """--delay: one session per round trip behind the TUN delay line."""
    global LINK, DELAY
    ok, why = netns.available()
    if not ok:
        sys.exit(f"--delay: {why}")
    delayline = os.path.join(ROOT, a.build, "ri-delayline")
    if not os.access(delayline, os.X_OK):
        sys.exit(f"{delayline} is missing: run `make bench` (or make {a.build}/ri-delayline)")
    sessions = []
    for rtt in a.delay:
        DELAY = rtt
        print(f"long link: {rtt:g} ms round trip", file=sys.stderr, flush=True)
        LINK = netns.DelayLink(rtt, delayline, mtu=a.delay_mtu)
        s = {"rtt_ms": rtt, "parallel": a.parallel, "mtu": a.delay_mtu}
        try:
            runs, s["rtt_measured_ms"] = session(peers, figures, a,
                                                 os.path.join(tmp, f"rtt{rtt:g}"), notes)
        finally:
            LINK.close()
        s["delayline"] = LINK.stats
        s["runs"] = runs
        s["results"] = res = aggregate([r["results"] for r in runs], figures)
        ri = res.get("ri")
        if ri:
            rtt_s = (s["rtt_measured_ms"] or rtt) / 1000
            s["ri_window"] = {}
            for f, n in (("single", 1), ("parallel", a.parallel)):
                th = window_theory(n, rtt_s)
                got = ri.get(f, {}).get("gbps")
                th["of_window"] = round(got / th["gbps"], 3) if num(got) else None
                s["ri_window"][f] = th
        sessions.append(s)
    LINK = None
    out = {"machine": machine(), "mode": "long-link", "args": vars(a),
           "tcp_wmem": sysctl("net.ipv4.tcp_wmem"), "wmem_max": sysctl("net.core.wmem_max"),
           "tcp_congestion_control": sysctl("net.ipv4.tcp_congestion_control"),
           "sessions": sessions, "notes": notes}
    m = out["machine"]
    head = (f"{m['date']}, {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}; TUN delay line "
            f"(ri-delayline, MTU {a.delay_mtu}), "
            + (f"medians of {a.runs} runs; " if a.runs > 1 else "")
            + f"{'uploads' if a.up else 'downloads'}, {a.seconds:g} s after {a.warmup:g} s "
            f"warm-up; tcp_wmem {out['tcp_wmem']}, congestion control "
            f"{out['tcp_congestion_control']}")
    names = [n for n in dict.fromkeys(c.name for c in peers)]
    text = long_table(sessions, names)
    ss_lines = []
    for s in sessions:
        f = s["results"].get("ri", {}).get("single", {}).get("ss", {})
        sd = f.get("edge" if a.up else "hub", {})
        side = sd.get("fields")
        if side:
            lanes = sd.get("connections", 1)
            ss_lines.append(f"{s['rtt_ms']:g} ms, ri's tunnel at its sender mid-run (ss -ti"
                            + (f"; the busiest of its {lanes} lanes" if lanes > 1 else "")
                            + "): " + " ".join(f"{k}:{v}" for k, v in side.items()))
        for name in names:
            c = [r["results"].get(name, {}).get("parallel", {}).get("cores") for r in s["runs"]]
            c = [x for x in c if x]
            if c:
                ss_lines.append(f"{s['rtt_ms']:g} ms, {name}, {a.parallel} streams, cores busy "
                                "(per run; the machine has " + str(os.cpu_count()) + "): "
                                + "; ".join(", ".join(f"{k} {v:g}" for k, v in x.items())
                                            for x in c))
        dl = s.get("delayline") or {}
        if dl:
            ss_lines.append(f"{s['rtt_ms']:g} ms, the delay line: {dl.get('cpu_s')} CPU s, "
                            + ", ".join(f"{k} {v['packets']} packets (largest {v['max_packet']} "
                                        f"B), {v['drops']} dropped" for k, v in dl.items()
                                        if isinstance(v, dict))
                            + f"; the TUN queues ({netns.DelayLink.TUN_QLEN} packets) dropped "
                            f"{dl.get('tun_tx_dropped', '?')}")
    if ss_lines:
        text += "\n\n" + "\n".join("- " + x for x in ss_lines)
    return out, head, text, "bench-long"


DELAY = None


def main():
    global LOADGEN
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--peers", default=None,
                    help="default raw,haproxy,ssh,stunnel,ri (raw,ssh,ri with --delay)")
    ap.add_argument("--ri-policies", default="fifo",
                    help="comma-separated: fifo, 3tier (+ classify_elephant), drr")
    ap.add_argument("--figures", default=None,
                    help="default single,parallel,cost,rtt,rtt_bulk,conns,idle_mem "
                    "(single,parallel with --delay)")
    ap.add_argument("--runs", type=int, default=1,
                    help="rounds over all peers (order rotated per round); the table shows "
                    "medians")
    ap.add_argument("--seconds", type=float, default=None,
                    help="bulk measuring window (5; with --delay at least 25 round trips)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="bulk warm-up before the window (1; with --delay 2 s or 15 round trips)")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--ri-workers", default="0",
                    help="comma-separated `workers` (hub and edge) to run ri with, each a peer of its own "
                    "(0: the default, one per CPU, named ri; N: named ri-wN), e.g. 0,1")
    ap.add_argument("--ri-lanes", type=int, default=0,
                    help="the ri edge's `lanes` (default: none set, auto)")
    ap.add_argument("--up", action="store_true",
                    help="bulk figures upload (client to target) instead of download")
    ap.add_argument("--rtt-count", type=int, default=1000)
    ap.add_argument("--bulk-streams", type=int, default=1)
    ap.add_argument("--bulk-rate", type=int, default=0, help="bytes/s per bulk stream (0: no cap)")
    ap.add_argument("--bulk-warmup", type=float, default=1.0)
    ap.add_argument("--idle-streams", type=int, default=2000)
    ap.add_argument("--link", help="shaped link rate for tc tbf, e.g. 1gbit, 100mbit")
    ap.add_argument("--link-queue", type=float, default=20, help="link queue, ms at the rate")
    ap.add_argument("--delay", default=None,
                    help="long-link mode: round trips in ms, comma-separated (e.g. 50,200), "
                    "through the TUN delay line")
    ap.add_argument("--delay-mtu", type=int, default=9000, help="MTU of the delay line's TUNs")
    ap.add_argument("--json", default=None)
    ap.add_argument("--update-readme", action="store_true",
                    help="put the table into README.md between the bench markers "
                    "(bench-long with --delay)")
    a = ap.parse_args()
    if a.delay:
        a.delay = [float(x) for x in a.delay.split(",") if x]
        if a.link:
            sys.exit("--delay and --link do not combine")
    longest = max(a.delay) / 1000 if a.delay else 0
    a.peers = a.peers or ("raw,ssh,ri" if a.delay else "raw,haproxy,ssh,stunnel,ri")
    a.figures = a.figures or ("single,parallel" if a.delay else
                              "single,parallel,cost,rtt,rtt_bulk,conns,idle_mem")
    a.seconds = a.seconds if a.seconds is not None else max(5.0, 25 * longest)
    a.warmup = a.warmup if a.warmup is not None else (max(2.0, 15 * longest) if a.delay else 1.0)
    if a.runs < 1:
        sys.exit("--runs must be 1 or more")

    LOADGEN = os.path.join(ROOT, a.build, "ri-loadgen")
    if not os.access(LOADGEN, os.X_OK):
        sys.exit(f"{LOADGEN} is missing: run `make bench` (or make {a.build}/ri-loadgen)")
    Ri.build = a.build
    Ri.lanes = a.ri_lanes
    figures = [f for f in a.figures.split(",") if f]
    for f in figures:
        if f not in FIGURES:
            sys.exit(f"unknown figure {f}; known: {', '.join(FIGURES)}")
    peers, notes = [], []
    for n in a.peers.split(","):
        if n == "ri":
            for pol in a.ri_policies.split(","):
                if pol not in POLICY_PLUGINS:
                    sys.exit(f"unknown ri policy {pol}")
                for w in a.ri_workers.split(","):
                    peers.append(Ri.variant(pol, int(w)))
        elif n in PEERS:
            peers.append(PEERS[n])
        else:
            sys.exit(f"unknown peer {n}; known: {', '.join(PEERS)}")
    ready = []
    for cls in peers:
        miss = cls.missing()
        if miss:
            notes.append(f"{cls.name}: skipped, {' '.join(miss)} not installed")
        else:
            ready.append(cls)

    tmp = tempfile.mkdtemp(prefix="ri-bench-")
    mode = main_long if a.delay else main_loopback
    out, head, text, marker = mode(a, ready, figures, tmp, notes)
    print(f"\n{head}\n\n{text}")
    if a.update_readme:
        update_readme(head, text, " ".join(sys.argv[1:]), marker)
    for n in notes:
        print(f"note: {n}")
    path = a.json or os.path.join(ROOT, a.build, "bench-long.json" if a.delay else "bench.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"JSON: {path}")
    if notes:
        print(f"logs kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
