"""The MicroPython runtime (device/micropython/starmind_mp) against the reference engine's golden vectors.

* the pure-Python kernels, run by CPython, reproduce every golden: prompt logits,
  greedy and sampled token ids;
* the viper kernels, executed by CPython through a model of viper's semantics
  (unsigned ptr8/ptr16 loads, wrapping stores, 32-bit uint), reproduce them too;
* mpy-cross compiles every module for armv6m (viper type errors are compile errors);
* the loader rejects corrupted files by their checksums;
* the planner's verdicts and predicted speeds.
"""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from starmind_lib.devices import planner
from starmind_lib.devices.runtime import RUNTIME_DIR, compile_module, device_runtime, model_architecture, runtime_files, runtime_sources
from starmind_lib.provenance import REPO_ROOT

REFERENCE = REPO_ROOT / "data" / "reference"
GOLDENS = sorted(REFERENCE.glob("*.golden.json"))

mp = device_runtime()


def golden_ids():
    return [g.name.split(".")[0] for g in GOLDENS]


@pytest.fixture(params=GOLDENS, ids=golden_ids())
def golden(request):
    return json.loads(request.param.read_text())


def test_reference_goldens_exist():
    assert len(GOLDENS) >= 2, "data/reference must hold golden vectors (python -m starmind_lib.quant.reference make-reference)"


def check_engine_against_golden(eng, g):
    for p, tok in enumerate(g["prompt_ids"]):
        logits = eng.forward_token(tok, p)
        assert [int(v) for v in logits] == g["prompt_logits"][p], f"logits differ at prompt position {p}"
    assert eng.generate(g["prompt_ids"], g["greedy"]["n_new"]) == g["greedy"]["output_ids"]
    for s in g["sampled"]:
        got = eng.generate(g["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"])
        assert got == s["output_ids"], f"sampled ids differ for {s}"


def test_python_kernels_reproduce_goldens(golden):
    model = mp.smd.load(str(REFERENCE / golden["model"]))
    eng = mp.engine.IntEngine(model, "python")
    assert eng.k.NAME == "python"
    check_engine_against_golden(eng, golden)
    assert model.decode(golden["greedy"]["output_ids"]).decode() == golden["greedy"]["text"]


# ---- viper, executed by CPython under a model of its semantics ------------------------------
class _Ptr:
    """viper's ptr8/ptr16/ptr32 over a buffer: unsigned 8/16-bit loads, signed 32-bit, stores wrap."""
    fmt, bits, signed = "B", 8, False

    def __init__(self, buf):
        self.mv = memoryview(buf).cast("B").cast(self.fmt)

    def __getitem__(self, i):
        return self.mv[i]

    def __setitem__(self, i, v):
        v &= (1 << self.bits) - 1
        if self.signed and v >= 1 << (self.bits - 1):
            v -= 1 << self.bits
        self.mv[i] = v


class ptr8(_Ptr):  # noqa: N801 - viper's names
    pass


class ptr16(_Ptr):  # noqa: N801
    fmt, bits = "H", 16


class ptr32(_Ptr):  # noqa: N801
    fmt, bits, signed = "i", 32, True


class uint(int):  # noqa: N801 - a 32-bit machine word
    def __new__(cls, v):
        return int.__new__(cls, int(v) & 0xFFFFFFFF)

    def __lshift__(self, n):
        return uint(int(self) << n)

    def __rshift__(self, n):
        return uint(int(self) >> n)

    def __xor__(self, o):
        return uint(int(self) ^ int(o))

    __rxor__ = __xor__


def _viper(fn):
    casts = {k: v for k, v in fn.__annotations__.items() if isinstance(v, type) and issubclass(v, _Ptr)}
    names = fn.__code__.co_varnames[:fn.__code__.co_argcount]

    def call(*args):
        return fn(*[casts[n](a) if n in casts else a for n, a in zip(names, args)])
    return call


@pytest.fixture(scope="module")
def viper_kernels():
    fake = types.ModuleType("micropython")
    fake.viper = _viper
    fake.const = lambda x: x
    saved = sys.modules.get("micropython")
    sys.modules["micropython"] = fake
    try:
        mod = types.ModuleType("starmind_mp.kernels_viper_on_cpython")
        mod.__dict__.update(ptr8=ptr8, ptr16=ptr16, ptr32=ptr32, uint=uint)
        src = (RUNTIME_DIR / "starmind_mp" / "kernels_viper.py").read_text()
        exec(compile(src, "kernels_viper.py", "exec", dont_inherit=True), mod.__dict__)  # real annotations
    finally:
        if saved is None:
            del sys.modules["micropython"]
        else:
            sys.modules["micropython"] = saved
    return mod


def test_viper_kernels_reproduce_goldens(golden, viper_kernels, monkeypatch):
    monkeypatch.setattr(mp.engine, "load_kernels", lambda kind="auto": viper_kernels)
    model = mp.smd.load(str(REFERENCE / golden["model"]))
    eng = mp.engine.IntEngine(model, "viper")
    assert isinstance(eng.logits, bytearray)  # the viper path keeps raw buffers, as on a Pico

    forward = eng.forward_token

    def forward_as_ints(tok, pos):  # viper logits are a bytearray of int32: decode for the comparison
        return list(memoryview(forward(tok, pos)).cast("i"))

    eng.forward_token = forward_as_ints
    check_engine_against_golden(eng, golden)


@pytest.mark.parametrize("kernels", ["python", "viper"])
def test_flash_mode_streams_weights_in_blocks(golden, kernels, viper_kernels, monkeypatch):
    """Matrices left in the file, read in blocks of rows through a tiny scratch buffer: same tokens."""
    if kernels == "viper":
        monkeypatch.setattr(mp.engine, "load_kernels", lambda kind="auto": viper_kernels)
    monkeypatch.setattr(mp.engine, "SCRATCH_BYTES", 40)  # a few rows per block: many blocks per matrix
    model = mp.smd.load(str(REFERENCE / golden["model"]), weights="flash")
    assert model.weights == "flash" and "tok_emb" in model.offsets and "tok_emb" not in model.tensors
    eng = mp.engine.IntEngine(model, kernels)
    mats = [eng.head] + [m for layer in eng.layers for m in layer[4:] if m is not None]
    if any(rows * cols > 40 for _, _, rows, cols, _ in mats):
        assert any(blocking[0] < rows for _, _, rows, _, blocking in mats)  # several blocks per matrix
    assert eng.generate(golden["prompt_ids"], golden["greedy"]["n_new"]) == golden["greedy"]["output_ids"]
    s = golden["sampled"][0]
    assert eng.generate(golden["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"]) == \
        s["output_ids"]
    eng.close()


def test_flash_mode_still_checks_the_payload_crc(tmp_path):
    data = bytearray((REFERENCE / "ref_rope_silu.smd").read_bytes())
    data[-100] ^= 0x10  # inside a matrix the flash mode does not keep
    (tmp_path / "bad.smd").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="payload checksum"):
        mp.smd.load(str(tmp_path / "bad.smd"), weights="flash")
    with pytest.raises(ValueError, match="weights must be"):
        mp.smd.load(str(REFERENCE / "ref_rope_silu.smd"), weights="rom")


def test_auto_kernels_fall_back_to_python_on_cpython():
    assert mp.engine.load_kernels("auto").NAME == "python"
    with pytest.raises(ImportError, match="viper kernels unavailable"):
        mp.engine.load_kernels("viper")
    with pytest.raises(ValueError, match="kernels must be"):
        mp.engine.load_kernels("fast")


# ---- compiling for the Pico -----------------------------------------------------------------
def test_every_module_compiles_for_armv6m(tmp_path):
    sources = runtime_sources()
    assert {s.stem for s in sources} >= {"smd", "engine", "kernels_viper", "kernels_py", "bench"}
    for src in sources:
        compile_module(src, tmp_path / (src.stem + ".mpy"), "armv6m")
        assert (tmp_path / (src.stem + ".mpy")).read_bytes()[:1] == b"M"  # .mpy magic


def test_viper_type_error_is_caught_by_the_compile_check(tmp_path):
    bad = tmp_path / "bad_kernel.py"
    bad.write_text("import micropython\n@micropython.viper\ndef f(p: ptr8) -> int:\n    x = 1 << 30\n"
                   "    return p[0] + x\n")
    with pytest.raises(subprocess.CalledProcessError) as err:
        compile_module(bad, tmp_path / "bad.mpy", "armv6m")
    assert "ViperTypeError" in err.value.stderr


def test_bytecode_runtime_leaves_out_viper(tmp_path):
    files = runtime_files("mpy", tmp_path)
    names = {Path(remote).name for _, remote in files}
    assert "kernels_viper.mpy" not in names and "kernels_py.mpy" in names
    armv6m = {Path(remote).name for _, remote in runtime_files("mpy-armv6m", tmp_path)}
    assert "kernels_viper.mpy" in armv6m


# ---- the loader -----------------------------------------------------------------------------
@pytest.fixture
def ref_bytes():
    return (REFERENCE / "ref_tiny_learned.smd").read_bytes()


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"NOTSTARM" + b[8:], "wrong magic"),
    (lambda b: b[:16] + b"\x07\0\0\0" + b[20:], "version"),
    (lambda b: b[:-7], "truncated"),
    (lambda b: b[:-5] + bytes([b[-5] ^ 0x40]) + b[-4:], "payload checksum"),
    (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "header checksum"),
])
def test_loader_rejects_corrupted_files(tmp_path, ref_bytes, mutate, message):
    path = tmp_path / "bad.smd"
    path.write_bytes(mutate(ref_bytes))
    with pytest.raises(ValueError, match=message):
        mp.smd.load(str(path))


def test_loader_reads_architecture_and_vocabulary():
    arch = model_architecture(REFERENCE / "ref_rope_silu.smd")
    g = json.loads((REFERENCE / "ref_rope_silu.golden.json").read_text())
    assert {k: arch[k] for k in g["config"]} == g["config"]
    assert arch["scheme"] == "int8"


def test_crc_fallback_matches_zlib():
    import zlib
    data = bytes(range(256)) * 3
    saved = mp.smd._crc32
    try:
        mp.smd._crc32 = None
        assert mp.smd.crc32(data[:100], mp.smd.crc32(data[:0])) == zlib.crc32(data[:100])
        assert mp.smd.crc32(data[100:], mp.smd.crc32(data[:100])) == zlib.crc32(data)
    finally:
        mp.smd._crc32 = saved


# ---- planner --------------------------------------------------------------------------------
def arch(**kw):
    base = dict(vocab_size=256, dim=32, n_layers=2, n_heads=2, ffn_hidden=64, activation="silu", pos="rope",
                tied=True, max_seq_len=128)
    return {**base, **kw}


def test_planner_small_model_fits_and_large_does_not():
    small = planner.plan_memory(arch())
    assert small.fits and small.label == "predicted"
    assert small.weights_bytes > 256 * 32 + 2 * (4 * 32 * 32 + 2 * 32 * 64)  # int8 data plus overheads
    big = planner.plan_memory(arch(dim=256, n_layers=4, ffn_hidden=1024))
    assert not big.fits and "will not fit" in big.reason


def test_planner_predictions_are_the_calibrated_sums():
    """Golden values of the calibrated planner (a ~150K-parameter model's memory plan, a tiny model's speed);
    whether the study's targets are met is printed by `make bench-planner`, not asserted."""
    mid = arch(dim=80, n_layers=2, n_heads=4, ffn_hidden=256, vocab_size=256, max_seq_len=64)
    assert sum(r * c for r, c in planner.weight_tensors(mid).values()) == 153_600
    plan = planner.plan_memory(mid)
    assert (plan.weights, plan.weights_bytes, plan.kv_cache_bytes, plan.buffers_bytes, plan.tables_bytes,
            plan.runtime_bytes, plan.total_bytes) == ("flash", 20752, 20544, 6720, 5712, 34560, 127632)
    tiny = arch(dim=24, n_layers=2, ffn_hidden=48, vocab_size=64, max_seq_len=64)
    a = planner._arch(tiny)
    f = planner.speed_features(a, 32.0, "ram")
    assert {k: v for k, v in f.items() if v} == {"const": 1, "layers": 2, "heads": 4, "macs": 10752, "attn": 3200,
                                                  "vocab": 64, "hidden": 144, "dims": 48, "rope": 4}
    cyc = sum(c * f[k] for k, c in planner.CALIBRATED_SPEED["viper/ram"].items())
    assert cyc == pytest.approx(1475641.0424, rel=1e-9)
    sp = planner.predict_speed(tiny, "micropython-viper")
    tol = planner.SPEED_TOLERANCE_BY_KERNELS["viper"]
    assert sp.label == "predicted" and sp.macs_per_token == 13824
    assert (sp.tokens_per_s, sp.tokens_per_s_low, sp.tokens_per_s_high) == pytest.approx(
        (125e6 / cyc, 125e6 / (cyc * (1 + tol)), 125e6 / (cyc * (1 - tol))), rel=1e-12)
    slow = planner.predict_speed(tiny, "micropython-python")     # uncalibrated: the operation-count model
    assert (slow.cycles_per_token_low, slow.cycles_per_token_high) == (20845600, 21497600)


def test_planner_counts_macs_exactly():
    ops = planner.op_counts(arch(dim=16, n_layers=1, ffn_hidden=32, vocab_size=10), context=4)
    assert ops["macs"] == 4 * 16 * 16 + 2 * 16 * 32 + 2 * 16 * 4 + 10 * 16


def test_planner_rejects_bad_input():
    with pytest.raises(ValueError, match="lacks"):
        planner.plan_memory({"dim": 4})
    with pytest.raises(ValueError, match="unknown runtime"):
        planner.predict_speed(arch(), "turbo")


def test_float_path_matches_the_float_model(golden):
    model = mp.smd.load(str(REFERENCE / golden["float_model"]))
    eng = mp.engine.make_engine(model)
    assert model.scheme == "float32" and type(eng).__name__ == "FloatEngine"
    logits = eng.prefill(golden["prompt_ids"])
    err = max(abs(a - b) for a, b in zip(logits, golden["float32"]["first_logits"]))
    assert err <= golden["float32"]["abs_tolerance"]
    assert eng.generate(golden["prompt_ids"], golden["greedy"]["n_new"]) == golden["float32"]["greedy_output_ids"]
