"""The SDK guide is true: its example builds with its own documented cc
line (warnings as errors) against sdk/ alone, and ri-core loads the result."""
import os
import re
import shutil
import subprocess

from harness import ROOT, check



def _check_loads(env, name, so_path, settings, what):
    """ri-core -t loads the plugin built at so_path, with these settings."""
    cfg = env.write("hub.cfg", f'role = "hub";\nplugin_dir = "{env.plugin_dir}";\n'
                    'plugins = ( { name = "auth_secret"; }, '
                    f'{{ name = "{name}"; file = "{so_path}"; {settings} }} );\n'
                    'hub = { listen = "127.0.0.1:8443"; };\n')
    r = env.run_core(["-t", "-c", cfg])
    check(r.returncode == 0 and f"{name}(" in r.stdout,
          f"ri-core -t with {what}: rc {r.returncode}\n{r.stdout}{r.stderr}")

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
    cmd = cmd.replace("-I sdk", "-I " + os.path.join(ROOT, "sdk")) + " -Wall -Wextra -Werror"
    r = subprocess.run(cmd, shell=True, cwd=env.dir, capture_output=True, text=True)
    check(r.returncode == 0, f"`{cmd}` failed:\n{r.stderr}")
    _check_loads(env, name, env.path(out), "", "the guide's plugin")


def test_examples_build_warning_free_with_their_documented_line(env):
    """Every example in sdk/examples/ builds with the cc line its header
    documents -- the same line sdk/README.md gives -- with -Wall -Wextra
    -Werror (and with clang too, when it is installed), and loads."""
    guide = open(os.path.join(ROOT, "sdk", "README.md")).read()
    exdir = os.path.join(ROOT, "sdk", "examples")
    examples = sorted(f for f in os.listdir(exdir) if f.endswith(".c"))
    check(examples, "sdk/examples/ has no example")
    for src in examples:
        name = src[:-2]
        text = open(os.path.join(exdir, src)).read()
        m = re.search(r"^ \*   (cc .* -o %s\.so sdk/examples/%s)$" % (name, re.escape(src)),
                      text, re.M)
        check(m, f"sdk/examples/{src} documents no cc line in its header")
        line = m.group(1)
        check(line in guide, f"sdk/README.md does not give the line of {src}'s header: {line}")
        for flag in ("-Wall", "-Wextra"):
            check(flag in line.split(), f"the documented line of {src} lacks {flag}: {line}")
        out = env.path(f"{name}.so")
        compilers = ["cc"] + (["clang"] if shutil.which("clang") else [])
        for compiler in compilers:
            cmd = (line.replace("cc ", compiler + " ", 1).replace(f"-o {name}.so", f"-o {out}")
                   + " -Wall -Wextra -Werror")
            r = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True)
            check(r.returncode == 0 and not r.stderr.strip(),
                  f"`{cmd}`: rc {r.returncode}, warnings or errors:\n{r.stderr}")
        # the settings its header shows, if any
        header = re.sub(r"(?m)^\s*\*+ ?", "", text.split("*/")[0])
        m = re.search(r'\{ name = "%s"; file = "[^"]*";\s*(.*?)\s*\}' % name, header, re.S)
        settings = " ".join(m.group(1).split()) if m else ""
        _check_loads(env, name, out, settings, src)
