"""The benchmark's own parts (tests/bench/): its scripts compile, the
medians, spreads and same-run ratios of --runs come out right, and the
long-link delay line (ri-delayline, TUN devices in a network namespace)
delays what crosses it by the round trip asked. The benchmark itself is
`make bench`."""
import os
import py_compile
import subprocess
import sys

from harness import ROOT, check, fail, timeout

sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
import measure  # noqa: E402
import netns  # noqa: E402


def test_bench_scripts_compile(env):
    for d in ("tests/bench", "tests/lib"):
        for n in sorted(os.listdir(os.path.join(ROOT, d))):
            if n.endswith(".py"):
                py_compile.compile(os.path.join(ROOT, d, n), cfile=env.path(n + "c"), doraise=True)


def test_bench_medians_spread_and_ratios(env):
    import bench
    runs = [{"raw": {"single": {"gbps": 10.0}}, "ssh": {"single": {"gbps": 2.0}},
             "ri": {"single": {"gbps": g, "error": None}}} for g in (2.0, 3.0, 5.0)]
    runs[1]["ssh"]["single"]["gbps"] = 4.0
    res = bench.aggregate(runs, ["single"])
    check(res["ri"]["single"]["gbps"] == 3.0, f"median: {res['ri']['single']}")
    sp = res["ri"]["spread"]["single"]
    check((sp["max_pct"], sp["min_pct"]) == (66.7, -33.3), f"spread: {sp}")
    vs = res["ri"]["vs_ssh"]["single"]
    check(vs["runs"] == [1.0, 0.75, 2.5] and vs["median"] == 1.0, f"ri/ssh: {vs}")
    check("vs_ssh" not in res["ssh"], "ssh has a ratio to itself")
    text = bench.table(res, ["single"])
    check("×ssh" in text and "| ri | 3.00 | 1.00, - |" in text, f"table:\n{text}")
    th = bench.window_theory(1, 0.05)
    check(th["window_bytes"] == 4 << 20 and abs(th["gbps"] - 0.671) < 0.001, f"window: {th}")


@timeout(90)
def test_delayline_delays_by_the_round_trip(env):
    ok, why = netns.available()
    if not ok:
        fail(why)
    exe = env.path("ri-delayline")
    r = subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-o", exe, os.path.join(ROOT, "tests", "bench", "delayline.c"),
                        "-lpthread"], capture_output=True, text=True)
    check(r.returncode == 0, f"delayline.c does not build: {r.stderr}")
    link = netns.DelayLink(40, exe, tag=f"t{os.getpid() % 100000}")
    env.closers.append(link.close)
    echo = env.port()
    target = env.spawn("targets", link.far([sys.executable, os.path.join(ROOT, "tests", "tools",
                                                                          "ri_target.py"),
                                            "--echo", str(echo), "--bind", "0.0.0.0"]))
    target.wait_log(r"READY")
    s = measure.summary(measure.rtts((link.far_addr, echo), 20, interval=0.01))
    env.debug(f"round trips through a 40 ms delay line: {s} µs")
    check(39000 <= s["p50"] <= 50000, f"p50 {s['p50']} µs through a 40 ms delay line")
    target.stop()
    link.close()
    st = link.stats
    check(st and st["a_to_b"]["packets"] >= 20 and st["b_to_a"]["packets"] >= 20
          and st["a_to_b"]["drops"] == 0, f"delay line counters: {st}")
