"""A short run of every libFuzzer target (tests/fuzz/fuzz_*.c), each from
its committed seed corpus, under ASan+UBSan: a crash, a sanitizer report or
a leak in ri's code fails the test. RI_FUZZ_SECS sets the time per target
(default 30; 5 for a sanitizer build of the suite, whose fuzzers are the
same binaries). Longer runs: `make fuzz`, then build/fuzz/fuzz_<name>."""
import os
import shutil
import subprocess

from harness import ROOT, SANITIZED, check, timeout

FUZZ_DIR = os.path.join(ROOT, "build", "fuzz")
SEEDS = os.path.join(ROOT, "tests", "fuzz", "seeds")


def _run(env, name):
    exe = os.path.join(FUZZ_DIR, f"fuzz_{name}")
    check(os.access(exe, os.X_OK), f"{exe} not built (`make fuzz`; needs clang)")
    secs = int(os.environ.get("RI_FUZZ_SECS", "5" if SANITIZED else "30"))
    corpus = env.path("corpus")
    shutil.copytree(os.path.join(SEEDS, name), corpus)
    e = dict(os.environ, LSAN_OPTIONS="suppressions=" +
             os.path.join(ROOT, "tests", "fuzz", "lsan.supp"))
    r = subprocess.run([exe, f"-max_total_time={secs}", "-print_final_stats=1",
                        f"-artifact_prefix={env.dir}/", "-timeout=10", "-rss_limit_mb=4096",
                        corpus], capture_output=True, text=True, errors="replace", env=e,
                       timeout=secs + 120)
    out = r.stdout + r.stderr
    runs = [l for l in out.splitlines() if "number_of_executed_units" in l]
    env.debug(f"fuzz_{name}: {runs[-1] if runs else '?'}")
    check(r.returncode == 0, f"fuzz_{name} found a problem (rc {r.returncode}); its input is in "
                             f"{env.dir}:\n{out[-3000:]}")
    check(runs and int(runs[-1].split(":")[-1]) > 100, f"fuzz_{name} hardly ran: {runs}")


@timeout(200)
def test_fuzz_frame(env):
    _run(env, "frame")


@timeout(200)
def test_fuzz_token(env):
    _run(env, "token")


@timeout(200)
def test_fuzz_config(env):
    _run(env, "config")


@timeout(200)
def test_fuzz_tunnel(env):
    _run(env, "tunnel")


@timeout(200)
def test_fuzz_stun(env):
    _run(env, "stun")
