#!/usr/bin/env python3
"""The test runner behind `make test`:

    python3 tests/run.py --build build [-k SUBSTRING] [-v] [--keep]

First runs DIR/unit-tests (RI_BUILD=DIR): its `PASS name` / `FAIL name: ...`
lines count in the totals; a missing binary, a crash or a missing summary
line counts as a failure. Then every integration test: each plain function
`test_*(env)` of tests/integ/test_*.py, in file order, with a fresh harness
Env that is always closed afterwards. Prints `PASS name` / `FAIL name: reason`
per test (with the tails of the processes' logs on a failure) and, as the very
last line, `N passed, M failed`. Exit code 0 only when nothing failed.

-k SUBSTRING selects integration tests whose name (file::function) contains
it; the unit tests then run only if "unit-tests" contains it. -v prints the
processes' logs of every test. --keep keeps each test's temporary folder.
"""
import argparse
import importlib.util
import inspect
import os
import re
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))


class TestTimeout(Exception):
    pass


def out(line=""):
    print(line, flush=True)


def san_of(core):
    """The make SAN= value core was built with: "1" (ASan+UBSan), "thread"
    (TSan) or "0"."""
    try:
        with open(core, "rb") as f:
            data = f.read()
    except OSError:
        return "0"
    return "1" if b"__asan_init" in data else "thread" if b"__tsan_init" in data else "0"


# test files whose tests run no hub tunnel, or nothing `workers` changes:
# run once, not again per --workers value
NO_TUNNEL = ("fuzz", "architecture", "install", "sdk", "systemd", "cli", "harness", "bench")


def is_sanitized(core):
    return san_of(core) != "0"


def run_unit(build, verbose, scale):
    """Returns (passed, failed)."""
    exe = os.path.join(build, "unit-tests")
    if not os.access(exe, os.X_OK):
        out(f"FAIL unit-tests: {exe} not found (make {'SAN=1 ' if 'san' in build else ''}unit "
            "builds it)")
        return 0, 1
    env = dict(os.environ, RI_BUILD=build)
    t0 = time.monotonic()
    try:
        r = subprocess.run([exe], cwd=ROOT, env=env, capture_output=True, text=True,
                           errors="replace", timeout=600 * scale)
        text, rc = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        rc = None
    passed = failed = 0
    summary = None
    for line in text.splitlines():
        if line.startswith("PASS "):
            passed += 1
            out(line)
        elif line.startswith("FAIL "):
            failed += 1
            out(line)
        else:
            m = re.match(r"^\s*(\d+) passed, (\d+) failed\s*$", line)
            if m:
                summary = (int(m.group(1)), int(m.group(2)))
            elif verbose:
                out("    " + line)
    problem = None
    if rc is None:
        problem = f"timed out after {600 * scale:.0f}s"
    elif rc < 0:
        problem = f"killed by signal {-rc}"
    elif summary is None:
        problem = f"no 'N passed, M failed' line (rc {rc})"
    elif summary != (passed, failed):
        problem = f"its summary says {summary[0]} passed, {summary[1]} failed but it printed " \
                  f"{passed} PASS and {failed} FAIL lines"
    elif rc != 0 and failed == 0:
        problem = f"exit code {rc} with no FAIL line"
    elif rc == 0 and failed:
        problem = f"exit code 0 despite {failed} FAIL line(s)"
    if re.search(r"ERROR: \w*Sanitizer|runtime error:", text):
        problem = (problem + "; " if problem else "") + "sanitizer report in its output"
    if problem:
        failed += 1
        out(f"FAIL unit-tests: {problem}")
        tail = "\n".join(text.splitlines()[-30:])
        out("    " + tail.replace("\n", "\n    "))
    out(f"(unit-tests: {passed} PASS lines, {failed} failure(s), "
        f"{time.monotonic() - t0:.1f}s)")
    return passed, failed


def discover():
    """([(name, function)] in file order, then definition order;
    [(file, error)] for files that do not import)."""
    tests, broken = [], []
    integ = os.path.join(HERE, "integ")
    for fn in sorted(os.listdir(integ)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        mod_name = fn[:-3]
        spec = importlib.util.spec_from_file_location(f"integ_{mod_name}",
                                                      os.path.join(integ, fn))
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:
            broken.append((fn, traceback.format_exc(limit=-3)))
            continue
        funcs = [(f.__code__.co_firstlineno, n, f) for n, f in vars(mod).items()
                 if n.startswith("test_") and inspect.isfunction(f)
                 and f.__module__ == mod.__name__]
        for _, n, f in sorted(funcs):
            tests.append((f"{mod_name[5:]}::{n[5:]}", f))
    return tests, broken


def where(tb):
    """file:line of the innermost frame in a test file, for failure reasons."""
    for fr in reversed(traceback.extract_tb(tb)):
        if os.sep + "integ" + os.sep in fr.filename:
            return f" [{os.path.basename(fr.filename)}:{fr.lineno}]"
    return ""


def _alarm(signum, frame):
    raise TestTimeout()


def run_one(harness, build, name, fn, verbose, keep, scale):
    """Returns (ok, reason, report)."""
    env = harness.Env(build, name, verbose)
    limit = getattr(fn, "timeout", 90) * scale
    ok, reason = True, None
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        fn(env)
    except TestTimeout:
        ok, reason = False, f"test did not finish within {limit:.0f}s"
    except harness.TestFailure as e:
        ok, reason = False, str(e) + where(e.__traceback__)
    except AssertionError as e:
        tb = traceback.extract_tb(e.__traceback__)[-1]
        ok, reason = False, f"{e or 'assertion failed'} ({os.path.basename(tb.filename)}:" \
                            f"{tb.lineno}: {tb.line})"
    except Exception as e:
        ok, reason = False, f"{type(e).__name__}: {e}\n" + traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    # teardown has its own limit
    signal.setitimer(signal.ITIMER_REAL, 120 * scale)
    try:
        problems = env.close()
    except TestTimeout:
        problems = ["teardown did not finish"]
        harness._kill_all()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if problems:
        if ok:
            reason = "; ".join(problems)
        else:
            reason += "\n    also: " + "; ".join(problems)
        ok = False
    report = env.report(60 if verbose else 25) if (not ok or verbose) else ""
    if verbose and env.notes:
        report = "---- harness notes ----\n" + "\n".join(env.notes[-50:]) + "\n" + report
    if ok and not keep:
        env.cleanup_dir()
    elif not ok:
        report += f"\n(test folder kept: {env.dir})"
    return ok, reason, report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="build folder (ri-core, plugins/)")
    ap.add_argument("-k", dest="select", default=None, help="run tests whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true", help="print process logs")
    ap.add_argument("--keep", action="store_true", help="keep every test's temp folder")
    ap.add_argument("--list", action="store_true", help="list the integration tests")
    ap.add_argument("--workers", "--hub-workers", dest="workers", default="2,1",
                    help="run the integration tests once per value of `workers`, written "
                    "into every hub and edge config (0: none, the default of one per CPU); "
                    "passes after the first skip what runs no tunnel (%s)" % ", ".join(NO_TUNNEL))
    a = ap.parse_args()

    build = a.build if os.path.isabs(a.build) else os.path.join(
        os.getcwd() if os.path.isdir(a.build) else ROOT, a.build)
    build = os.path.abspath(build)
    core = os.path.join(build, "ri-core")
    scale = float(os.environ.get("RI_TEST_SCALE", 0)) or (3.0 if is_sanitized(core) else 1.0)
    os.environ["RI_TEST_SCALE"] = str(scale)
    os.environ["RI_SANITIZED"] = "1" if is_sanitized(core) else "0"
    os.environ["RI_SAN"] = san_of(core)  # what `make SAN=` built it (tests that run make)
    os.environ["RI_BUILD"] = build
    # a stray SIGTERM/SIGHUP to the runner still runs the atexit cleanup
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    import harness
    harness.SCALE = scale
    nofile = harness.raise_nofile(65536)

    tests, broken = discover()
    if a.list:
        for n, _ in tests:
            out(n)
        return 0
    passed = failed = 0
    t_start = time.monotonic()
    out(f"ri tests: build {build}{' (sanitizers, deadlines x%g)' % scale if scale != 1 else ''}"
        f", RLIMIT_NOFILE {nofile}")
    if a.select:
        tests = [(n, f) for n, f in tests if a.select in n]
        if not tests and a.select not in "unit-tests" and \
                not any(a.select in fn for fn, _ in broken):
            out(f"FAIL selection: no test name contains {a.select!r} (see --list)")
            failed += 1
    if a.select is None or a.select in "unit-tests":
        p, f = run_unit(build, a.verbose, scale)
        passed += p
        failed += f
    for fn, err in broken:
        if a.select is None or a.select in fn:
            out(f"FAIL {fn}: does not import:\n    " + err.replace("\n", "\n    "))
            failed += 1
    if not os.access(core, os.X_OK):
        out(f"FAIL integration: {core} not found (run make first)")
        failed += 1
        tests = []
    passes = [int(w) for w in a.workers.split(",") if w.strip()] or [0]
    for i, workers in enumerate(passes):
        # the harness writes `workers = N` into every hub and edge config (0: none)
        os.environ["RI_TEST_WORKERS"] = str(workers) if workers else ""
        prefix = f"workers={workers}/" if i else ""
        for name, fn in tests:
            if i and name.split("::")[0] in NO_TUNNEL:
                continue
            t0 = time.monotonic()
            ok, reason, report = run_one(harness, build, prefix + name, fn, a.verbose, a.keep,
                                         scale)
            dt = time.monotonic() - t0
            if ok:
                passed += 1
                out(f"PASS {prefix}{name} ({dt:.1f}s)")
            else:
                failed += 1
                out(f"FAIL {prefix}{name}: {reason} ({dt:.1f}s)")
            if report:
                out("    " + report.replace("\n", "\n    "))
    out(f"(total time {time.monotonic() - t_start:.0f}s)")
    out(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
