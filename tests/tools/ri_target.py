#!/usr/bin/env python3
"""ri_target.py -- upstream servers for benchmarks and link tests, in a
process of their own (so they can run in another network namespace).

    ri_target.py --echo PORT --source PORT [--sink PORT] [--bind ADDR]

  echo    echoes every byte (a thread per connection)
  source  sends bytes as fast as the connection takes them, until the peer
          closes (a download that never ends by itself)
  sink    reads and discards (an upload)

A PROXY v1 line at the start of a connection is skipped, so the tunnel may
keep its header injector on. Prints "READY" once every port listens; runs
until SIGTERM.
"""
import argparse
import signal
import socket
import sys
import threading


def strip_proxy(c, d):
    if not d.startswith(b"PROXY "):
        return d
    while b"\r\n" not in d:
        more = c.recv(256)
        if not more:
            return b""
        d += more
    return d[d.index(b"\r\n") + 2:]


def serve(c, mode):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if mode == "source":
            blob = b"s" * (1 << 20)
            c.settimeout(None)
            first = c.recv(4096)  # the request (and maybe a PROXY line)
            if not first:
                return
            while True:
                c.sendall(blob)
        first = True
        while True:
            d = c.recv(1 << 18)
            if not d:
                break
            if first:
                first = False
                d = strip_proxy(c, d)
                if not d:
                    continue
            if mode == "echo":
                c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()


def listener(addr, port, mode):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1024)

    def run():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c, mode), daemon=True).start()
    threading.Thread(target=run, daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--echo", type=int, action="append", default=[])
    ap.add_argument("--source", type=int, action="append", default=[])
    ap.add_argument("--sink", type=int, action="append", default=[])
    ap.add_argument("--bind", default="0.0.0.0")
    a = ap.parse_args()
    for mode in ("echo", "source", "sink"):
        for p in getattr(a, mode):
            listener(a.bind, p, mode)
    print("READY", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main())
