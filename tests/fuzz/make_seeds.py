#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets that need structured input
(tests/fuzz/seeds/tunnel, seeds/config). Run it after changing the wire
format; the seeds are committed."""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def frame(t, stream, payload=b""):
    return struct.pack(">BBII", t, 0, stream, len(payload)) + payload


def reason(code, text):
    return struct.pack(">H", code) + text.encode()


HELLO, AUTH, WELCOME, REFUSE, CONFIG, PING, PONG, GOAWAY, ACK = range(1, 10)
PORTS, ADDR = 0x0a, 0x0b
OPEN, DATA, FIN, RST, WINDOW = 0x10, 0x11, 0x12, 0x13, 0x14


def hello(edge_id="fz", auth="fake", msg=b"E", caps=0):
    b = b"RITN" + struct.pack(">H", 1) + bytes([len(edge_id)]) + edge_id.encode()
    b += bytes([len(auth)]) + auth.encode() + struct.pack(">H", len(msg)) + msg
    return b + struct.pack(">I", caps)


def open_(port, client_port=40000):
    ip4 = bytes([127, 0, 0, 1]) + bytes(12)
    ip4e = bytes([127, 0, 0, 2]) + bytes(12)
    return bytes([4]) + ip4 + struct.pack(">H", client_port) + ip4e + struct.pack(">H", port)


def u32(v):
    return struct.pack(">I", v)


def write(dirname, name, data):
    d = os.path.join(HERE, "seeds", dirname)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    hub_ready = frame(HELLO, 0, hello())
    streams = (frame(OPEN, 1, open_(443)) + frame(DATA, 1, b"hello upstream") +
               frame(WINDOW, 1, u32(65536)) + frame(OPEN, 2, open_(80)) +
               frame(DATA, 2, b"x" * 3000) + frame(FIN, 1) + frame(RST, 2, reason(3, "bye")) +
               frame(ACK, 0, u32(3014)) + frame(PING, 0, b"12345678") +
               frame(OPEN, 4, open_(22)) + frame(DATA, 4, b"ssh") +
               frame(GOAWAY, 0, u32(4) + reason(6, "stopping")) + frame(FIN, 4) +
               frame(GOAWAY, 0, u32(4) + reason(0, "drained")))
    for chunk in (0, 2, 5, 7):
        write("tunnel", f"hub-streams-c{chunk}", bytes([chunk << 1]) + hub_ready + streams)
    # ADDR (capability bit 2): a good one, then one with a bad family
    write("tunnel", "hub-addr", bytes([4]) + frame(HELLO, 0, hello(caps=7)) +
          frame(ADDR, 0, bytes([4, 203, 0, 113, 7]) + bytes(12)) + frame(OPEN, 1, open_(443)) +
          frame(ADDR, 0, bytes([5]) + bytes(16)))
    write("tunnel", "hub-bad-auth", bytes([4]) + frame(HELLO, 0, hello(msg=b"X")))
    write("tunnel", "hub-unknown-id", bytes([4]) + frame(HELLO, 0, hello(edge_id="nobody")))
    write("tunnel", "hub-data-first", bytes([4]) + frame(DATA, 1, b"too early"))
    edge_ready = frame(AUTH, 0, b"H") + frame(WELCOME, 0, struct.pack(">HI", 1, 0))
    cfg = frame(CONFIG, 0, u32(300) + struct.pack(">H", 3) + struct.pack(">HHH", 80, 443, 8443))
    edge_streams = (cfg + frame(WINDOW, 1, u32(1 << 20)) + frame(DATA, 1, b"to the client") +
                    frame(DATA, 2, b"y" * 65536) + frame(FIN, 1) +
                    frame(RST, 2, reason(1, "refused")) + frame(ACK, 0, u32(24)) +
                    frame(CONFIG, 0, u32(0) + struct.pack(">H", 0)) +
                    frame(PING, 0, b"abcdefgh") + frame(DATA, 9, b"never opened"))
    for chunk in (0, 3, 5):
        write("tunnel", f"edge-streams-c{chunk}", bytes([1 | chunk << 1]) + edge_ready + edge_streams)
    write("tunnel", "edge-refused", bytes([5]) + frame(REFUSE, 0, reason(3, "authentication failed")))
    write("tunnel", "edge-welcome-first", bytes([5]) + frame(WELCOME, 0, struct.pack(">H", 1)))
    for f in sorted(os.listdir(os.path.join(ROOT, "conf"))):
        if f.endswith(".cfg"):
            shutil.copy(os.path.join(ROOT, "conf", f), os.path.join(HERE, "seeds", "config", f))
    write("config", "ints", b'role = "hub";\nhub = { listen = "127.0.0.1:1"; max_streams = 4294967396;\n'
                            b'edges = ( { id = "a"; secret = "0123456789abcdef"; listen_ports = [ 0x10, 80, 65535 ]; } ); };\n')
    write("config", "edge-token", b'role = "edge";\nedge = { token = "eyJoIjoiaHViIiwicCI6ODQ0MywiZSI6ImUxIiwicyI6IjAxMjM0NTY3ODlhYmNkZWYifQ"; };\n')


if __name__ == "__main__":
    os.makedirs(os.path.join(HERE, "seeds", "config"), exist_ok=True)
    main()
