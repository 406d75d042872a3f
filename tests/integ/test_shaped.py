"""Behind a real bottleneck: the edge on this side of a 100 Mbit/s link
(veth pair shaped with tc tbf, in a network namespace), the hub and the
upstreams on the far side. Which scheduler runs decides how long an
interactive round trip waits behind bulk downloads; this test asserts the
ordering measured in one run (never an absolute time): sched_3tier (with
the elephant classifier) and sched_drr keep the tail (p90) of round
trips shorter than the built-in round robin when four bulk
downloads share the tunnel. The full table, with raw TCP and ssh beside
ri, is `make bench` (tests/bench/)."""
import os
import re
import sys

from harness import ROOT, EdgeSpec, Hub, check, fail, timeout, wait_until

sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import measure  # noqa: E402
import netns  # noqa: E402

POLICIES = {
    "fifo": [],
    "3tier": ['{ name = "sched_3tier"; }',
              '{ name = "classify_elephant"; age_secs = 1; rate_mbit = 8; }'],
    "drr": ['{ name = "sched_drr"; }'],
}


def _round_trips_beside_bulk(env, link, name, plugins, echo, source):
    spec = EdgeSpec(f"edge-{name}", [echo, source])
    pl = ['{ name = "auth_secret"; }'] + plugins
    hub_port = env.port()
    cfg = env.write(f"hub-{name}.cfg", env.hub_config(hub_port, [spec], listen_host=link.far_addr,
                                                      plugins=pl))
    hub = env.start_core(f"hub-{name}", cfg, cls=Hub, wrap=link.far([])[:4])
    hub.port = hub_port
    hub.wait_log(r"hub: listening on ")
    edge = env.edge(hub_port, spec, hub_host=link.far_addr, name=f"edge-{name}",
                    plugins_extra=plugins)
    bulk = measure.Bulk(("127.0.0.2", source), n=4)
    # Past the start-up: 24 MiB is two seconds of the link, and the
    # classifier (when loaded) has demoted all four downloads.
    wait_until(lambda: sum(bulk.bytes) > 24 << 20, 60, "the bulk downloads to get going")
    if any("classify_elephant" in p for p in plugins):
        # either side may classify a stream first; the other then learns
        # the class from a CLASS frame and logs nothing
        rx = re.compile(r"classify_elephant: stream (\d+) .* is sustained")
        wait_until(lambda: len(set(rx.findall(hub.lines_since(0) + edge.lines_since(0)))) == 4,
                   20, "the classifier to demote all four downloads")
    samples = measure.rtts(("127.0.0.2", echo), 300, interval=0.004)
    bulk.stop()
    check(not bulk.errors, f"{name}: bulk downloads failed: {bulk.errors[:2]}")
    edge.stop()
    hub.stop()
    return measure.summary(samples)


@timeout(240)
def test_schedulers_ordered_on_a_shaped_link(env):
    ok, why = netns.available()
    if not ok:
        fail(why)
    link = netns.Link(100, 20)
    env.closers.append(link.close)
    echo, source = env.ports(2)
    target = env.spawn("targets", link.far([sys.executable, os.path.join(ROOT, "tests", "tools",
                                                                          "ri_target.py"),
                                            "--echo", str(echo), "--source", str(source)]))
    target.wait_log(r"READY")
    res = {name: _round_trips_beside_bulk(env, link, name, pl, echo, source)
           for name, pl in POLICIES.items()}
    env.debug(f"round trips beside 4 bulk downloads, 100 Mbit/s: {res}")
    for name in ("3tier", "drr"):
        # The median is mostly the link's own queue (tbf), the same for
        # every policy; what a scheduler changes is the wait behind ri's
        # queue, which shows in the tail. The tail is read at p90, not p99:
        # p99 of 300 samples is the third-worst round trip, and on two
        # shared cores (SAN=1, another suite running) a few descheduled
        # round trips put drr's p99 above round robin's once; p90 takes
        # thirty of them to flip (typical under SAN=1: round robin p90
        # 12 ms, drr and 3tier 4.2-4.7 ms). The mean carries the CPU's
        # delays too: reported only.
        check(res[name]["p90"] < res["fifo"]["p90"], f"{name} did not beat round robin: {res}")
