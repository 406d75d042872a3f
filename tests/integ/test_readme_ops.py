"""The README's Operations walkthrough, run as written.

The fenced blocks between `<!-- ops-walkthrough -->` and
`<!-- /ops-walkthrough -->` in README.md are taken in order: a block without
a language is a file, named by the last `NAME.cfg` the prose before it
mentions; an `sh` block is commands, one per line, each followed by the
output the README promises as `# ...` lines. The only substitutions are the
ones the README documents: the ports its "It uses ports ..." sentence lists
(each replaced by a free port) and the token and secret placeholders its
"... stand for the token and the secret step 2 prints" sentence names
(replaced by what step 2 printed). Commands run in a bash shell in the
test's folder with RI set to the build's ri-core; the ones the README runs
in the background (`&`) or until ^C (`subscribe`) run as processes of the
harness (stopped at the end, also on failure). Between steps the test waits
for what a person at the terminal would see first (a listener, a connected
edge), never for a fixed time.

Then it checks what the walkthrough promises: every `# ...` output line
appears in the command's output, every sample event line of `subscribe`
arrives in that order, the token starts as shown and works alone, the port
added at runtime carries a byte-exact stream to the upstream, the metrics
are there, reload answers ok, edges.json holds the edge (mode 0600)."""
import hashlib
import json
import os
import re
import stat
import subprocess
import urllib.request

from harness import ROOT, SANITIZER_RE, T, Proc, check, fail, wait_listening, wait_until

README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- ops-walkthrough -->", "<!-- /ops-walkthrough -->"


# ---- reading the README -----------------------------------------------------------
def _section():
    """(intro prose, walkthrough text) of the README's ## Operations."""
    text = open(README, encoding="utf-8").read()
    ops = text.find("\n## Operations\n")
    check(ops >= 0, "README.md has no '## Operations' section")
    nxt = text.find("\n## ", ops + 1)
    a, b = text.find(BEGIN, ops), text.find(END, ops)
    check(0 <= a < b < (nxt if nxt >= 0 else len(text)),
          f"README.md: {BEGIN} ... {END} not found inside ## Operations")
    return text[ops:a], text[a + len(BEGIN):b]


def _placeholders(intro):
    """The ports and the token/secret placeholders the README says to replace."""
    m = re.search(r"It uses\s+ports\s+(.*?)if one of them is taken", intro, re.S)
    check(m, "README Operations: no 'It uses ports ... if one of them is taken' sentence")
    ports = sorted({int(p) for p in re.findall(r"\b(\d{4,5})\b", m.group(1))})
    check(len(ports) >= 3, f"README Operations: ports sentence names {ports}")
    m = re.search(r"`([^`]+\.\.\.)`\s+and\s+`([^`]+\.\.\.)`\s+stand\s+for\s+the\s+token\s+"
                  r"and\s+the\s+secret", intro)
    check(m, "README Operations: no '`...` and `...` stand for the token and the secret' "
             "sentence")
    return ports, m.group(1), m.group(2)


def _steps(walk):
    """[("file", name, text) | ("sh", None, text)] in README order."""
    out, pos = [], 0
    for m in re.finditer(r"(?ms)^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", walk):
        prose, lang, body = walk[pos:m.start()], m.group(1), m.group(2)
        pos = m.end()
        if lang == "":
            names = re.findall(r"`([\w.-]+\.cfg)`", prose)
            check(names, f"README walkthrough: a file block without a `NAME.cfg` before it:\n"
                         f"{body[:200]}")
            out.append(("file", names[-1], body))
        elif lang == "sh":
            out.append(("sh", None, body))
        else:
            fail(f"README walkthrough: a ```{lang} block the test does not know")
    return out


def _commands(body):
    """[(command, [expected output lines])] of an sh block."""
    cmds = []
    for ln in body.splitlines():
        s = ln.strip()
        if not s:
            continue
        if s.startswith("#"):
            check(cmds, f"README walkthrough: an output line before any command: {ln!r}")
            cmds[-1][1].append(re.sub(r"^#\s?", "", s))
        else:
            cmds.append((s, []))
    return cmds


def _norm(s):
    return " ".join(s.split())


# ---- the walk ---------------------------------------------------------------------
class Walk:
    def __init__(self, env):
        self.env = env
        self.run_env = dict(os.environ, RI=env.core)
        self.procs = {}          # "hub", "edge", "upstream", "subscribe"
        self.subst = {}          # README text -> value
        self.starts = {}         # role -> the README's command that starts it

    def apply(self, s):
        for k, v in self.subst.items():
            s = s.replace(k, v)
        return s

    def background(self, code, name, kind):
        argv = ["bash", "-c", "exec " + code]
        p = Proc(self.env, name, argv, kind=kind, extra_env={"RI": self.env.core})
        self.procs[name] = p
        return p

    def run(self, code):
        try:
            r = subprocess.run(["bash", "-c", code], cwd=self.env.dir, env=self.run_env,
                               capture_output=True, text=True, errors="replace",
                               timeout=T(30))
        except subprocess.TimeoutExpired:
            fail(f"README command did not finish within {T(30):.0f}s: {code}")
        self.env.debug(f"$ {code}\n-> rc {r.returncode}\n{r.stdout}{r.stderr}")
        check(not SANITIZER_RE.search(r.stdout + r.stderr),
              f"sanitizer report from README command {code}:\n{r.stderr[-3000:]}")
        check(r.returncode == 0,
              f"README command failed (rc {r.returncode}): {code}\n{r.stdout}{r.stderr}")
        return r.stdout


def _expect_lines(cmd, out, expected):
    """Each `# line` after a command is a line of its output (whitespace runs
    compared as one space)."""
    have = [_norm(x) for x in out.splitlines()]
    for e in expected:
        check(_norm(e) in have,
              f"README says `{cmd}` prints {e!r}; it printed:\n{out}")


def _event_regex(sample):
    """A sample `subscribe` line as a regex: the time's shape, the event,
    then the same keys in the same order; the values that do not depend on
    the machine (edge, ports, port, target, code, tunnel, stream, changes)
    must match."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\s+(\w+)\s+(.*)$", sample)
    check(m, f"README: a subscribe sample line of an unknown shape: {sample!r}")
    rx = r"(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s+" + re.escape(m.group(2)) + r"\s+"
    keys = list(re.finditer(r"(?:^|\s)(\w+)=", m.group(3)))
    check(keys, f"README: a subscribe sample line without key=value: {sample!r}")
    exact = {"edge", "ports", "port", "target", "code", "tunnel", "stream", "changes"}
    for i, k in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(m.group(3))
        val = m.group(3)[k.end():end]
        sep = "" if i == 0 else r"\s+"
        rx += sep + re.escape(k.group(1)) + "=" + (re.escape(val) if k.group(1) in exact
                                                    else r".+?")
    return m.group(2), rx + r"\s*$"


def test_readme_operations_walkthrough(env):
    intro, walk = _section()
    ports, token_ph, secret_ph = _placeholders(intro)
    steps = _steps(walk)
    w = Walk(env)
    # every documented port becomes a free one, everywhere in the walkthrough
    # (in the same order as the README's: lists the program sorts stay as shown)
    picked = set()
    while len(picked) < len(ports):
        picked.add(env.port())
    free = dict(zip(ports, sorted(picked)))
    walk_sub = lambda s: re.sub(r"(?<!\d)(%s)(?!\d)" % "|".join(map(str, ports)),
                                lambda m: str(free[int(m.group(1))]), s)
    hub_port = None
    seen = set()
    samples = []             # subscribe sample lines
    provisioned = None       # {"id", "secret", "token", ports}

    for kind, name, body in steps:
        body = walk_sub(body)
        if kind == "file":
            body = w.apply(body)
            check(token_ph not in body and secret_ph not in body,
                  f"README {name}: a placeholder is used before step 2 printed its value")
            env.write(name, body, mode=0o644)   # the README's chmod makes it 0600
            if re.search(r'role\s*=\s*"hub"', body):
                m = re.search(r'hub\s*=\s*\{[^}]*?listen\s*=\s*"127\.0\.0\.1:(\d+)"', body, re.S)
                check(m, f"README {name}: no hub listen address")
                hub_port = int(m.group(1))
                ms = re.search(r'listen\s*=\s*"(127\.0\.0\.1):(\d+)";\s*}', body)
                w.metrics_addr = (ms.group(1), int(ms.group(2))) if ms else None
            continue
        for cmd, expected in _commands(body):
            cmd = w.apply(cmd)
            expected = [w.apply(e) for e in expected]
            code = re.sub(r"\s+#\s.*$", "", cmd).strip()
            if code.endswith("&"):
                code = code[:-1].strip()
                m = re.match(r"\$RI -c (\S+)$", code)
                if m:
                    cfg = open(env.path(m.group(1))).read()
                    role = re.search(r'role\s*=\s*"(\w+)"', cfg).group(1)
                    mode = stat.S_IMODE(os.stat(env.path(m.group(1))).st_mode)
                    check(mode == 0o600, f"{m.group(1)} is {mode:o} when README starts it")
                    p = w.background(code, role, "core")
                    w.starts[role] = code
                    if role == "hub":
                        p.wait_log(r"hub: listening on 127\.0\.0\.1:%d " % hub_port)
                        p.wait_log(r"hub: control socket ")
                        if getattr(w, "metrics_addr", None):
                            wait_listening(*w.metrics_addr, proc=p)
                    else:
                        check(provisioned, "README starts the edge before provisioning it")
                        p.wait_log(r"edge \S+: connected to hub 127\.0\.0\.1:%d\b" % hub_port)
                        for port in provisioned["ports"]:
                            p.wait_log(r"listening on 127\.0\.0\.2 port %d\b" % port)
                        p.wait_log(r"edge: control socket ")
                    seen.add(role)
                else:
                    m = re.search(r"http\.server (\d+) --bind (\S+)", code)
                    check(m, f"README: a background command the test does not know: {code}")
                    p = w.background(code, "upstream", "other")
                    wait_listening(m.group(2), int(m.group(1)), proc=p)
                    seen.add("upstream")
                continue
            if re.search(r"\bctl -s \S+ subscribe\b", code):
                # until ^C: the README's second terminal
                p = w.background(code, "subscribe", "core")
                p.wait_log(r"following events from \S+ \(interrupt to stop\)")
                samples += expected
                seen.add("subscribe")
                continue
            # a command that returns: wait for what it needs first
            m = re.search(r"https?://(127\.0\.0\.[0-9]+):(\d+)/", code)
            if m:
                wait_listening(m.group(1), int(m.group(2)))
            out = w.run(code)
            if code == "$RI secret":
                check(re.fullmatch(r"[A-Za-z0-9_-]{43}\n", out), f"ri-core secret printed {out!r}")
                seen.add("secret")
            if " provision " in code:
                kv = dict(re.findall(r"^(\w+)\s+(\S+)$", out, re.M))
                check({"id", "secret", "token"} <= kv.keys(), f"provision printed:\n{out}")
                check(kv["token"].startswith(token_ph[:-3]),
                      f"the token {kv['token'][:30]}... does not start like README's {token_ph}")
                env.secrets.add(kv["secret"])
                args = json.loads(re.search(r"'(\{.*\})'", code).group(1))
                provisioned = dict(kv, ports=args.get("listen_ports", []))
                w.subst = {token_ph: kv["token"], secret_ph: kv["secret"]}
                expected = [w.apply(e) for e in expected]
                seen.add("provision")
            if " update_edges " in code:
                args = json.loads(re.search(r"'(\{.*\})'", code).group(1))
                mine = [e for e in args["edges"] if e["id"] == provisioned["id"]]
                check(mine and mine[0]["secret"] == provisioned["secret"],
                      f"update_edges of the README does not carry step 2's secret: {code}")
                provisioned["ports"] = mine[0]["listen_ports"]
                for port in provisioned["ports"]:   # the edge opens them at once
                    w.procs["edge"].wait_log(r"listening on 127\.0\.0\.2 port %d\b" % port)
                seen.add("update_edges")
            if re.search(r"ctl -s \S+ status$", code):
                if "hub" in code:
                    check(re.search(r"^%s\s+runtime\s+yes\s+127\.0\.0\.1:\d+\s+\S+\s+%s\s"
                                    % (re.escape(provisioned["id"]),
                                       ",".join(map(str, provisioned["ports"]))), out, re.M),
                          f"hub status does not show {provisioned['id']} connected:\n{out}")
                else:
                    # the README's comment: "key value, key value, ..."
                    claims = re.sub(r"^.*?#\s*", "", cmd) if "#" in cmd else ""
                    for claim in filter(None, (c.strip() for c in claims.split(","))):
                        check(_norm(claim) in [_norm(x) for x in out.splitlines()],
                              f"README says edge status shows {claim!r}; it printed:\n{out}")
                seen.add("status")
            if re.search(r"ctl -s \S+ reload$", code):
                seen.add("reload")
            if re.search(r"ctl -s \S+ metrics$", code):
                seen.add("metrics")
            if "/metrics" in code:
                seen.add("/metrics")
            _expect_lines(code, out, expected)

    # the walkthrough covers what issue 9 asks for
    want = {"hub", "secret", "provision", "edge", "status", "subscribe", "update_edges",
            "upstream", "metrics", "/metrics", "reload"}
    check(want <= seen, f"README walkthrough lacks: {sorted(want - seen)}")

    # the events README shows arrive, in its order
    sub = w.procs["subscribe"]
    since = 0
    check(samples, "README shows no sample line for subscribe")
    for s in samples:
        ev, rx = _event_regex(s)
        m = sub.wait_log(rx, since=since)
        since += len(sub.lines_since(since)[:m.end()].encode())
    # subscribe --json, as the prose after it says
    m = re.search(r"`(\$RI ctl -s \S+ subscribe --json)` prints the raw JSON lines.*?"
                  r"the first one is the answer,\s+`(\{[^`]+\})`", walk, re.S)
    check(m, "README: no `... subscribe --json` sentence with its first line")
    pj = w.background(m.group(1), "subscribe-json", "core")
    pj.wait_log(r"(?m)^%s$" % re.escape(m.group(2)))
    w.run(re.sub(r"subscribe --json", "reload", m.group(1)))
    line = pj.wait_log(r'(?m)^\{"event":"reloadOk".*\}$').group(0)
    check(json.loads(line)["time"].endswith("Z"), f"reloadOk JSON: {line}")

    # the port added at runtime carries a byte-exact stream to the upstream
    www = env.path("www")
    check(os.path.isdir(www), "README step 5 made no www folder")
    blob = os.urandom(1 << 20)
    with open(os.path.join(www, "blob.bin"), "wb") as f:
        f.write(blob)
    new_port = provisioned["ports"][-1]
    with urllib.request.urlopen(f"http://127.0.0.2:{new_port}/blob.bin", timeout=T(30)) as r:
        got = r.read()
    check(hashlib.sha256(got).digest() == hashlib.sha256(blob).digest(),
          f"1 MiB through 127.0.0.2:{new_port}: {len(got)} bytes, not the same")

    # "Started again ..., the hub reads edge-nyc-01 from edges.json and the
    # edge ... connects again with its ports"
    check(re.search(r"Started again with the\s+same `\$RI -c hub\.cfg &`, the hub reads "
                    r"`%s` from `edges\.json`" % re.escape(provisioned["id"]),
                    walk_sub(open(README, encoding="utf-8").read())),
          "README: the sentence on starting the hub again changed")
    edge = w.procs["edge"]
    m = edge.mark()
    w.procs["hub"].stop()
    edge.wait_log(r"closed", since=m)
    hub2 = w.background(w.starts["hub"], "hub-again", "core")
    hub2.wait_log(r"hub: 1 runtime edge from ")
    edge.wait_log(r"edge \S+: connected to hub 127\.0\.0\.1:%d\b" % hub_port, since=m)
    st = w.run("$RI ctl -s hub.sock status --json")
    e = [x for x in json.loads(st)["edges"] if x["id"] == provisioned["id"]]
    check(e and e[0]["source"] == "runtime" and e[0]["listenPorts"] == provisioned["ports"],
          f"after the restart: {st}")
    wait_until(lambda: json.loads(w.run("$RI ctl -s hub.sock status --json"))["edges"][0]
               ["connected"], 20, "the edge connected to the restarted hub")

    # the token alone: the edge config holds no other way to the hub
    ecfg = open(env.path("edge.cfg")).read()
    check(not re.search(r"^\s*(hub_host|hub_port|edge_id|secret)\s*=", ecfg, re.M),
          f"README's edge.cfg has more than the token:\n{ecfg}")
    # kept across restarts: edges.json holds the edge and its ports, owner-only
    ej = env.path("edges.json")
    check(stat.S_IMODE(os.stat(ej).st_mode) == 0o600, "edges.json is not 0600")
    edges = json.load(open(ej))["edges"]
    check([(e["id"], e["listen_ports"], e["secret"]) for e in edges] ==
          [(provisioned["id"], provisioned["ports"], provisioned["secret"])],
          f"edges.json: {edges}")
