#!/usr/bin/env python3
"""The loopback demo behind `make demo`.

Starts, on loopback only, a demo upstream (prints the PROXY v1 line it gets,
then echoes), a hub (conf/hub-loopback.cfg) and an edge (conf/edge-loopback.cfg),
sends a request through the edge's public port and shows what the upstream saw.
When a port of the example configs is taken, the configs are copied into a
temporary folder with free ports instead. Every process is stopped on exit.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def port_free(host, port):
    s = socket.socket()
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Upstream(threading.Thread):
    """Reads the PROXY v1 line, records it, echoes the rest back."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.seen = []

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        data = b""
        while b"\r\n" not in data:
            d = c.recv(1)
            if not d:
                return
            data += d
        self.seen.append(data.decode("ascii", "replace"))
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.close()


def wait_for(pred, what, logs=(), timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    for name in logs:
        print(f"--- {name} ---\n" + open(name).read().rstrip())
    raise SystemExit(f"demo: timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    binary = os.path.join(TOP, args.build, "ri-core")
    plugins = os.path.join(TOP, args.build, "plugins")
    hub_cfg = os.path.join(TOP, "conf", "hub-loopback.cfg")
    edge_cfg = os.path.join(TOP, "conf", "edge-loopback.cfg")
    hub_port, ports = 8443, [18080, 18443]
    tmp = tempfile.mkdtemp(prefix="ri-demo-")
    if not (port_free("127.0.0.1", hub_port) and all(port_free("127.0.0.1", p) for p in ports)
            and all(port_free("127.0.0.2", p) for p in ports)):
        new_hub, new_ports = free_port(), [free_port(), free_port()]
        print(f"demo: example ports busy; using hub port {new_hub}, edge ports {new_ports}")
        for src, name in ((hub_cfg, "hub.cfg"), (edge_cfg, "edge.cfg")):
            text = re.sub(r"\b%d\b" % hub_port, str(new_hub), open(src).read())
            for old, new in zip(ports, new_ports):
                text = re.sub(r"\b%d\b" % old, str(new), text)
            text = re.sub(r'plugin_dir = "[^"]*"', f'plugin_dir = "{plugins}"', text)
            text = re.sub(r'state_dir = "[^"]*"', f'state_dir = "{os.path.join(TOP, args.build, "state")}"', text)
            open(os.path.join(tmp, name), "w").write(text)
        hub_cfg, edge_cfg = os.path.join(tmp, "hub.cfg"), os.path.join(tmp, "edge.cfg")
        hub_port, ports = new_hub, new_ports
    elif args.build != "build":
        for src, name in ((hub_cfg, "hub.cfg"), (edge_cfg, "edge.cfg")):
            text = re.sub(r'plugin_dir = "[^"]*"', f'plugin_dir = "{plugins}"', open(src).read())
            text = re.sub(r'state_dir = "[^"]*"', f'state_dir = "{os.path.join(TOP, args.build, "state")}"', text)
            open(os.path.join(tmp, name), "w").write(text)
        hub_cfg, edge_cfg = os.path.join(tmp, "hub.cfg"), os.path.join(tmp, "edge.cfg")

    up = Upstream(ports[0])
    up.start()
    procs = []
    logs = {}
    try:
        for role, cfg in (("hub", hub_cfg), ("edge", edge_cfg)):
            log = open(os.path.join(tmp, role + ".log"), "w+")
            logs[role] = log
            print(f"demo: starting {role}: {os.path.relpath(binary)} -c {os.path.relpath(cfg)}")
            procs.append(subprocess.Popen([binary, "-c", cfg], stdout=log, stderr=log,
                                          start_new_session=True))
            if role == "hub":
                wait_for(lambda: "listening on" in open(log.name).read(), "the hub", [log.name])
        wait_for(lambda: open(logs["edge"].name).read().count("listening on 127.0.0.2") >= 2,
                 "the edge to open the ports the hub assigned",
                 [logs["hub"].name, logs["edge"].name])
        print(f"demo: client connects to the edge at 127.0.0.2:{ports[0]}")
        with socket.create_connection(("127.0.0.2", ports[0]), timeout=10) as c:
            client_port = c.getsockname()[1]
            c.sendall(b"hello through the tunnel\n")
            reply = b""
            while not reply.endswith(b"\n"):
                d = c.recv(4096)
                if not d:
                    break
                reply += d
        wait_for(lambda: up.seen, "the upstream to see the stream")
        print(f"demo: client 127.0.0.1:{client_port} -> edge 127.0.0.2:{ports[0]} got back: {reply!r}")
        print(f"demo: upstream received the header: {up.seen[0]!r}")
        m = re.match(r"PROXY TCP4 (\S+) (\S+) (\d+) (\d+)\r\n", up.seen[0])
        ok = bool(m) and int(m.group(3)) == client_port and reply == b"hello through the tunnel\n"
        print("demo: the upstream saw the real client address %s:%s -> %s"
              % ((m.group(1), m.group(3), "OK" if ok else "MISMATCH") if m else ("?", "?", "MISMATCH")))
        print("\n--- hub log ---\n" + open(logs["hub"].name).read().rstrip())
        print("--- edge log ---\n" + open(logs["edge"].name).read().rstrip())
        return 0 if ok else 1
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        up.sock.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
