"""Packaging of the MicroPython runtime (device/micropython) for ``mpremote mip install``.

* package.json (sources) and package-mpy.json (armv6m .mpy) list exactly the modules of starmind_mp;
* every module compiles with ``mpy-cross -march=armv6m`` (viper and asm_thumb errors are compile errors),
  through the package's own build script (device/micropython/build_mpy.py);
* on the emulated firmware (rp2040js running stock MicroPython v1.27, slow): the asm kernels are the
  ones chosen, reproduce every golden vector exactly, and allocate nothing per generated token.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from starmind_lib.provenance import REPO_ROOT

MP_DIR = REPO_ROOT / "device" / "micropython"
PACKAGE_DIR = MP_DIR / "starmind_mp"
REFERENCE = REPO_ROOT / "data" / "reference"


def _build_script():
    spec = importlib.util.spec_from_file_location("starmind_build_mpy", MP_DIR / "build_mpy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _modules():
    return sorted(p.name for p in PACKAGE_DIR.glob("*.py"))


@pytest.mark.parametrize("manifest, ext, base", [("package.json", ".py", "starmind_mp/"),
                                                 ("package-mpy.json", ".mpy", "build/starmind_mp/")])
def test_manifest_lists_every_module(manifest, ext, base):
    data = json.loads((MP_DIR / manifest).read_text())
    assert data.get("version"), f"{manifest} needs a version"
    urls = data["urls"]
    assert all(isinstance(u, list) and len(u) == 2 for u in urls), "mip urls are [dest, src] pairs"
    want = [m[:-3] + ext for m in _modules()]
    assert sorted(Path(dest).name for dest, _ in urls) == sorted(want)
    for dest, src in urls:
        assert dest == "starmind_mp/" + Path(dest).name, f"{dest}: installs into /lib/starmind_mp"
        assert src == base + Path(dest).name, f"{src}: relative to {manifest}'s directory"
        if ext == ".py":
            assert (MP_DIR / src).is_file()


def test_build_script_checks_the_manifests():
    assert _build_script().check_manifests() == []


def test_every_module_compiles_for_armv6m(tmp_path):
    build = _build_script()
    outs = build.build(tmp_path, "armv6m")
    assert sorted(o.name for o in outs) == sorted(m[:-3] + ".mpy" for m in _modules())
    for o in outs:
        data = o.read_bytes()
        assert data[:1] == b"M" and len(data) > 16  # .mpy magic
    assert (tmp_path / "starmind_mp" / "kernels_asm.mpy").stat().st_size > 1000  # the machine code is in


def test_asm_kernel_compile_errors_are_reported(tmp_path):
    bad = tmp_path / "bad_asm.py"
    bad.write_text("import micropython\n@micropython.asm_thumb\ndef f(r0):\n    sdiv(r0, r0, r0)\n")
    with pytest.raises(subprocess.CalledProcessError) as err:
        _build_script().compile_one(bad, tmp_path / "bad.mpy", "armv6m")
    assert "unsupported Thumb instruction" in err.value.stderr  # armv6m has no divide instruction


# ---- on the real interpreter (emulated RP2040) ------------------------------------------------
DEVICE_SCRIPT = r'''
import gc, sys, json
sys.path.append("/lib")
from starmind_mp import smd, engine
G = %(goldens)s
out = {}
for name, g in G.items():
    m = smd.load("/models/" + name + ".smd", "ram")
    eng = engine.make_engine(m, "auto")
    pl = []
    for p, tok in enumerate(g["prompt_ids"]):
        l = eng.forward_token(tok, p)
        pl.append([int.from_bytes(l[4 * i:4 * i + 4], "little") for i in range(len(l) // 4)])
    gr = eng.generate(g["prompt_ids"], g["greedy"]["n_new"])
    sa = [eng.generate(g["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"]) for s in g["sampled"]]
    eng.prefill(g["prompt_ids"])
    for _ in range(2):  # warm-up, the same calls as measured
        eng.forward_token(eng.next_token(256, 0), eng.pos)
    gc.collect()
    a0 = gc.mem_alloc()
    while eng.pos < eng.context:
        eng.forward_token(eng.next_token(256, 0), eng.pos)
    alloc = gc.mem_alloc() - a0  # before the result dict is built
    out = {"kernels": eng.k.NAME, "prompt_logits": pl, "greedy": gr, "sampled": sa, "alloc": alloc}
    eng = m = pl = None
    gc.collect()
    print("RESULT " + json.dumps({name: out}))  # one line per model: one JSON of all would not fit the heap
    out = None
    gc.collect()
# weights streamed from the file (flash mode): the token loop allocates nothing either
m = smd.load("/models/%(flash)s.smd", "flash")
eng = engine.make_engine(m, "auto")
eng.prefill(G["%(flash)s"]["prompt_ids"])
for _ in range(2):
    eng.forward_token(eng.next_token(256, 0), eng.pos)
gc.collect()
a0 = gc.mem_alloc()
while eng.pos < eng.context:
    eng.forward_token(eng.next_token(256, 0), eng.pos)
alloc = gc.mem_alloc() - a0
print("FLASH " + json.dumps({"weights": m.weights, "alloc": alloc}))
'''


def _firmware_ready():
    try:
        from starmind_lib.devices import firmware
    except ImportError:
        return False
    return (shutil.which("node") is not None and firmware.firmware_path() is not None
            and (firmware.EMULATOR_DIR / "node_modules" / "rp2040js").exists())


@pytest.mark.slow
@pytest.mark.skipif(not _firmware_ready(), reason="needs node, rp2040js and the MicroPython firmware image")
def test_asm_kernels_on_the_emulated_firmware(tmp_path):
    from starmind_lib.devices.firmware import start_firmware_board
    outs = _build_script().build(tmp_path, "armv6m")
    goldens = {p.name.split(".")[0]: json.loads(p.read_text()) for p in sorted(REFERENCE.glob("*.golden.json"))}
    files = {f"lib/starmind_mp/{o.name}": o.read_bytes() for o in outs}
    files.update({f"models/{n}.smd": (REFERENCE / f"{n}.smd").read_bytes() for n in goldens})
    slim = {n: {k: g[k] for k in ("prompt_ids", "greedy", "sampled")} for n, g in goldens.items()}
    script = tmp_path / "job.py"
    script.write_text(DEVICE_SCRIPT % {"goldens": repr(slim), "flash": min(goldens)})
    mpremote = Path(sys.executable).parent / "mpremote"
    with start_firmware_board(files=files) as fb:
        p = subprocess.run([str(mpremote if mpremote.exists() else "mpremote"), "connect", fb.url, "soft-reset",
                            "run", str(script)], capture_output=True, text=True, timeout=900)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, p.stdout[-3000:] + p.stderr[-3000:]
    got = {k: v for ln in lines for k, v in json.loads(ln[7:]).items()}
    for name, g in goldens.items():
        r = got[name]
        assert r["kernels"] == "asm", "auto must choose the asm kernels on the stock RP2040 firmware"
        signed = [[v - (1 << 32) if v >= 1 << 31 else v for v in row] for row in r["prompt_logits"]]
        assert signed == g["prompt_logits"], name
        assert r["greedy"] == g["greedy"]["output_ids"], name
        assert r["sampled"] == [s["output_ids"] for s in g["sampled"]], name
        assert r["alloc"] == 0, f"{name}: {r['alloc']} bytes allocated by the token loop"
    flash = [json.loads(ln[6:]) for ln in p.stdout.splitlines() if ln.startswith("FLASH ")]
    assert flash and flash[0] == {"weights": "flash", "alloc": 0}, f"{flash}: bytes allocated by the token loop"
