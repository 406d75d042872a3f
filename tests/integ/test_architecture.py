"""The shape of the code: no dependency cycle among core's object files
(from their symbols: who calls whom), and the SDK headers include nothing
of core/ (a plugin builds against sdk/ alone)."""
import os
import re
import subprocess

from harness import ROOT, check


def _symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRVWGS":
            defined.add(parts[2])
    return defined, undefined


def _graph(env):
    objdir = os.path.join(env.build, "obj", "core")
    # only objects of sources that exist (a stale .o of a deleted file is not the code)
    objs = sorted(f for f in os.listdir(objdir) if f.endswith(".o") and
                  os.path.exists(os.path.join(ROOT, "core", f[:-2] + ".c")))
    check(len(objs) > 10, f"core objects not found in {objdir}")
    builtin = os.path.join(env.build, "obj", "builtin")
    paths = {f[:-2]: os.path.join(objdir, f) for f in objs}
    if os.path.isdir(builtin):
        for f in os.listdir(builtin):
            paths["builtin/" + f[:-2]] = os.path.join(builtin, f)
    defs, undefs = {}, {}
    for name, p in paths.items():
        defs[name], undefs[name] = _symbols(p)
    owner = {}
    for name, d in defs.items():
        for sym in d:
            owner[sym] = name
    edges = {n: set() for n in paths}
    for name, u in undefs.items():
        for sym in u:
            o = owner.get(sym)
            if o and o != name:
                edges[name].add(o)
    return edges


def _cycles(edges):
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_core_has_no_dependency_cycle(env):
    edges = _graph(env)
    cycles = _cycles(edges)
    check(not cycles, "dependency cycles among core's objects: " +
          "; ".join(" <-> ".join(c) for c in cycles))
    # the pure layer depends on nothing with I/O
    for pure in ("frame", "stun", "window", "pace", "token", "ident", "ratelimit", "penalty",
                 "b64", "edgejson"):
        bad = edges.get(pure, set()) - {"b64", "frame", "ident"}
        check(not bad, f"{pure}.o (pure logic) depends on {sorted(bad)}")
    # the handshake is frames in, frames out: no tunnel, socket or loop
    check(not (edges["handshake"] & {"tunnel", "tlsio", "mux", "hub", "hubworker", "edge",
                                     "edgeworker", "worker"}),
          f"handshake.o depends on {sorted(edges['handshake'])}")
    check("tunnel" not in edges["mux"], "mux.o calls into tunnel.o")


def test_sdk_is_self_contained(env):
    sdk = os.path.join(ROOT, "sdk")
    for f in os.listdir(sdk):
        if not f.endswith(".h"):
            continue
        text = open(os.path.join(sdk, f)).read()
        for inc in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', text, re.M):
            check(inc in ("stddef.h", "stdint.h", "sys/socket.h"),
                  f"sdk/{f} includes {inc}: the SDK may include only standard headers")
