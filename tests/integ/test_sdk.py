"""The SDK guide is true: its example builds with its own documented cc
line (warnings as errors) against sdk/ alone, and ri-core loads the result."""
import os
import re
import subprocess

from harness import ROOT, check


def test_guide_example_builds_and_loads(env):
    guide = open(os.path.join(ROOT, "sdk", "README.md")).read()
    blocks = re.findall(r"```c\n(.*?)```", guide, re.S)
    example = next((b for b in blocks if "RI_EXPORT const struct ri_plugin ri_plugin" in b
                    and "#include" in b), None)
    check(example, "sdk/README.md has no complete plugin example")
    name = re.search(r'\.name = "(\w+)"', example).group(1)
    m = re.search(r"^(cc [^\n]*-o (%s\.so) (%s\.c))$" % (name, name), guide, re.M)
    check(m, f"sdk/README.md documents no cc line for {name}.c")
    cmd, out, src = m.group(1), m.group(2), m.group(3)
    with open(env.path(src), "w") as f:
        f.write(example)
    cmd = cmd.replace("-I sdk", "-I " + os.path.join(ROOT, "sdk")) + " -Werror"
    r = subprocess.run(cmd, shell=True, cwd=env.dir, capture_output=True, text=True)
    check(r.returncode == 0, f"`{cmd}` failed:\n{r.stderr}")
    cfg = env.write("hub.cfg", f'role = "hub";\nplugin_dir = "{env.plugin_dir}";\n'
                    'plugins = ( { name = "auth_secret"; }, '
                    f'{{ name = "{name}"; file = "{env.path(out)}"; }} );\n'
                    'hub = { listen = "127.0.0.1:8443"; };\n')
    r = env.run_core(["-t", "-c", cfg])
    check(r.returncode == 0 and f"{name}(sched)" in r.stdout,
          f"ri-core -t with the guide's plugin: rc {r.returncode}\n{r.stdout}{r.stderr}")
