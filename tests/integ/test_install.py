"""`make install` as an operator (or a packager) runs it: PREFIX and
DESTDIR, the plugin folder compiled in for the PREFIX given at install time
even after a `make` with another PREFIX, the SDK guide under share/doc, and
example configs that work wherever they are installed or copied."""
import os
import re
import shutil
import subprocess

from harness import ROOT, SANITIZED, T, check, timeout

PLUGINS = sorted(d for d in os.listdir(os.path.join(ROOT, "plugins"))
                 if os.path.isdir(os.path.join(ROOT, "plugins", d)))


def _copy_build(env):
    """What `make install` needs of the build folder, copied with its
    timestamps (so nothing is rebuilt but what PREFIX changes): the
    suite's own build is left alone."""
    dst = env.path("build")
    os.makedirs(dst)
    for name in (".deps", "ri-core", "plugindir.stamp"):
        src = os.path.join(env.build, name)
        if os.path.exists(src):
            shutil.copy2(src, os.path.join(dst, name))
    for sub in ("plugins", "obj/core", "obj/builtin"):
        shutil.copytree(os.path.join(env.build, sub), os.path.join(dst, sub))
    return dst


def _make(env, build, *args):
    # not the jobserver or variables of a `make test` we may run under
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    cmd = ["make", "-C", ROOT, f"BUILD={build}",
           f"SAN={os.environ.get('RI_SAN', '1' if SANITIZED else '0')}", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=clean, timeout=T(300))
    except subprocess.TimeoutExpired:
        check(False, f"{' '.join(cmd)} did not finish")
    env.debug(f"{' '.join(cmd)} -> rc {r.returncode}\n{r.stdout}{r.stderr}")
    check(r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r


def _run(env, exe, args, cwd=None):
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=T(30),
                       cwd=cwd or env.dir)
    env.debug(f"{exe} {' '.join(args)} -> rc {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def _listed(out):
    return sorted(re.findall(r"^\s+(\S+)\s+\w+\s+ABI \d+\.\d+", out, re.M))


@timeout(240)
def test_make_install_prefix_destdir(env):
    build = _copy_build(env)
    prefix, other, stage = env.path("opt/ri"), env.path("other"), env.path("stage")
    # an earlier `make` with another PREFIX compiled that one in (a copy of
    # the binary away from any plugins folder looks there) ...
    _make(env, build, f"PREFIX={other}", "all")
    early = env.path("early")
    os.makedirs(early)
    shutil.copy2(os.path.join(build, "ri-core"), early)
    r = _run(env, os.path.join(early, "ri-core"), ["plugins"])
    check(f"{other}/lib/ri/plugins" in r.stdout + r.stderr,
          f"make with PREFIX={other} did not compile it in:\n{r.stdout}{r.stderr}")
    # ... and `make install PREFIX=... DESTDIR=...` recompiles for its own
    _make(env, build, f"PREFIX={prefix}", f"DESTDIR={stage}", "install")
    check(not os.path.exists(prefix), "make install wrote outside DESTDIR")
    root = stage + prefix
    for rel in ["bin/ri-core", "include/ri/ri_plugin.h", "share/doc/ri/README.md",
                "share/doc/ri/examples/sched_prio.c"] + \
               [f"lib/ri/plugins/{p}.so" for p in PLUGINS] + \
               [f"share/ri/conf/{c}" for c in os.listdir(os.path.join(ROOT, "conf"))
                if c.endswith(".cfg")] + \
               [f"lib/systemd/system/{u}" for u in ("ri-hub.service", "ri-edge.service")]:
        check(os.path.isfile(os.path.join(root, rel)), f"{rel} not installed under DESTDIR")
    # the units start the installed binary, under PREFIX (not DESTDIR)
    for u in ("ri-hub.service", "ri-edge.service"):
        text = open(os.path.join(root, "lib/systemd/system", u)).read()
        check(re.search(r"^ExecStart=%s/bin/ri-core -c /etc/ri/" % re.escape(prefix), text, re.M)
              and "/usr/local" not in text and stage not in text,
              f"installed {u}: {text!r}")
    check(not os.path.exists(os.path.join(root, "include/ri/README.md")),
          "the SDK guide is installed among the headers (include/ri/README.md)")
    check("Writing an ri plugin" in open(os.path.join(root, "share/doc/ri/README.md")).read(),
          "share/doc/ri/README.md is not the SDK guide")
    # what a package manager does with the staged tree
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    os.rename(root, prefix)
    core = os.path.join(prefix, "bin", "ri-core")

    # the installed configs: no plugin_dir (the compiled-in folder applies
    # wherever they go), nothing about build/, no comment line twice
    confdir = os.path.join(prefix, "share", "ri", "conf")
    for name in sorted(os.listdir(confdir)):
        text = open(os.path.join(confdir, name)).read()
        check(not re.search(r"^\s*plugin_dir\s*=", text, re.M), f"installed {name} sets plugin_dir")
        check("build/" not in text, f"installed {name} mentions build/")
        comments = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("#")]
        dups = sorted({c for c in comments if comments.count(c) > 1 and len(c) > 1})
        check(not dups, f"installed {name} repeats comment lines: {dups}")

    # the hub template copied to /etc/ri as its comment says, secrets filled in
    etc = env.path("etc/ri")
    os.makedirs(etc)
    text = open(os.path.join(confdir, "hub.cfg")).read()
    r = _run(env, core, ["-t", "-c", os.path.join(confdir, "hub.cfg")])
    check(r.returncode == 1 and "placeholder" in r.stderr,
          f"the installed template with its placeholders: rc {r.returncode} {r.stderr!r}")
    text = re.sub(r"REPLACE-with-ri-core-secret-output-(\d)",
                  lambda m: f"installed-{os.urandom(12).hex()}-{m.group(1)}", text)
    hub_cfg = env.write("etc/ri/hub.cfg", text)
    r = _run(env, core, ["-t", "-c", hub_cfg])
    check(r.returncode == 0 and "configuration OK: role hub, plugins: auth_secret(auth) "
          "header_proxy_v1(header)" in r.stdout,
          f"installed ri-core -t -c /etc/ri/hub.cfg: rc {r.returncode}\n{r.stdout}{r.stderr}")
    r = _run(env, core, ["-t", "-c", os.path.join(confdir, "hub-loopback.cfg")])
    check(r.returncode == 0, f"the installed loopback example: rc {r.returncode} {r.stderr}")

    # the installed binary finds the installed plugins ...
    r = _run(env, core, ["plugins"])
    check(r.returncode == 0 and _listed(r.stdout) == PLUGINS,
          f"installed ri-core plugins: rc {r.returncode}\n{r.stdout}{r.stderr}")
    # ... and its compiled-in folder is the install PREFIX's, not the one of
    # the earlier make: a copy of the binary elsewhere finds them there
    elsewhere = env.path("elsewhere")
    os.makedirs(elsewhere)
    shutil.copy2(core, elsewhere)
    r = _run(env, os.path.join(elsewhere, "ri-core"), ["plugins"])
    check(r.returncode == 0 and f"plugins in {prefix}/lib/ri/plugins:" in r.stdout
          and _listed(r.stdout) == PLUGINS,
          f"the compiled-in plugin folder is not {prefix}/lib/ri/plugins:\n{r.stdout}{r.stderr}")
    r = _run(env, os.path.join(elsewhere, "ri-core"), ["-t", "-c", hub_cfg])
    check(r.returncode == 0, f"-t from a copy elsewhere: rc {r.returncode} {r.stderr}")

    # the same PREFIX again: nothing to rebuild
    r = _make(env, build, f"PREFIX={prefix}", "all")
    check("CC" not in r.stdout and "LINK" not in r.stdout,
          f"make with an unchanged PREFIX rebuilt something:\n{r.stdout}")
