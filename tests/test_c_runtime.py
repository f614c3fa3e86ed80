"""The portable C runtime on the host: golden vectors, sanitizers, loader fuzzing."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from starmind_lib.provenance import REPO_ROOT

RUNTIME = REPO_ROOT / "device" / "c"
BUILD = RUNTIME / "build"
REFERENCE = sorted((REPO_ROOT / "data" / "reference").glob("*.golden.json"))

pytestmark = pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("make"), reason="needs gcc and make")


@pytest.fixture(scope="module")
def binaries():
    subprocess.run(["make", "-s", "-C", str(RUNTIME), "all", "sanitize"], check=True, capture_output=True)
    return BUILD


def run_host(binary: Path, model: Path, prompt, n: int, *extra) -> dict:
    proc = subprocess.run([str(binary), str(model), "--prompt", ",".join(map(str, prompt)), "--n", str(n),
                           *map(str, extra)], capture_output=True, text=True, timeout=120)
    assert not proc.stderr, proc.stderr  # a sanitizer report goes to stderr
    return json.loads(proc.stdout)


def test_reference_models_exist():
    assert len(REFERENCE) >= 2


@pytest.mark.parametrize("golden", REFERENCE, ids=lambda p: p.name.split(".")[0])
@pytest.mark.parametrize("build", ["starmind_host", "starmind_host_asan"])
def test_golden_vectors_int8(binaries, golden, build):
    g = json.loads(golden.read_text())
    model = golden.parent / g["model"]
    r = run_host(binaries / build, model, g["prompt_ids"], g["greedy"]["n_new"])
    assert r["status"] == 0 and r["scheme"] == "int8"
    assert r["first_logits"] == g["first_logits"]
    assert r["tokens"] == g["greedy"]["output_ids"]
    for s in g["sampled"]:
        r = run_host(binaries / build, model, g["prompt_ids"], s["n_new"], "--seed", s["seed"],
                     "--temp-q8", s["temperature_q8"], "--top-k", s["top_k"])
        assert r["tokens"] == s["output_ids"], s


@pytest.mark.parametrize("golden", REFERENCE, ids=lambda p: p.name.split(".")[0])
def test_golden_vectors_float32(binaries, golden):
    g = json.loads(golden.read_text())
    f = g["float32"]
    r = run_host(binaries / "starmind_host_asan", golden.parent / g["float_model"], g["prompt_ids"],
                 g["greedy"]["n_new"])
    assert r["scheme"] == "float32"
    worst = max(abs(a - b) for a, b in zip(r["first_logits"], f["first_logits"]))
    assert worst <= f["abs_tolerance"], worst
    assert r["tokens"] == f["greedy_output_ids"]


@pytest.mark.parametrize("flags", [["--no-kv"], ["--sram"], ["--sram", "--no-kv"]])
def test_cache_and_placement_do_not_change_tokens(binaries, flags):
    g = json.loads(REFERENCE[-1].read_text())
    model = REFERENCE[-1].parent / g["model"]
    r = run_host(binaries / "starmind_host_asan", model, g["prompt_ids"], 12, "--seed", 3, "--temp-q8", 200, *flags)
    base = run_host(binaries / "starmind_host", model, g["prompt_ids"], 12, "--seed", 3, "--temp-q8", 200)
    assert r["tokens"] == base["tokens"] and r["first_logits"] == base["first_logits"]


def test_arena_too_small_is_an_error_not_a_crash(binaries):
    model = REFERENCE[0].parent / json.loads(REFERENCE[0].read_text())["model"]
    r = run_host(binaries / "starmind_host_asan", model, [1, 2], 4, "--arena", 64)
    assert r["status"] == -2 and "arena too small" in r["error"]


@pytest.mark.parametrize("mutate, code", [
    (lambda b: b"XTARMIND" + b[8:], -6),                    # magic
    (lambda b: b[:16] + b"\x03" + b[17:], -5),              # version 3
    (lambda b: b[:-4], -7),                                 # truncated
    (lambda b: b + b"\0\0\0\0", -7),                        # trailing bytes
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), -4),            # payload bit flip -> CRC
])
def test_corrupt_files_rejected(binaries, tmp_path, mutate, code):
    model = REFERENCE[0].parent / json.loads(REFERENCE[0].read_text())["model"]
    bad = tmp_path / "bad.smd"
    bad.write_bytes(mutate(model.read_bytes()))
    r = run_host(binaries / "starmind_host_asan", bad, [1], 2)
    assert r["status"] == code, r


def test_loader_fuzz_under_sanitizers(binaries):
    models = [str(REFERENCE[0].parent / json.loads(g.read_text())[k]) for g in REFERENCE
              for k in ("model", "float_model")] + [str(REFERENCE[0].parent / "v1" / "ref_tiny_learned.v1.smd")]
    proc = subprocess.run([str(binaries / "starmind_fuzz_asan"), "5000", "1", *models],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["iterations"] == 5000
    rejected = sum(summary["rejected"].values())
    assert rejected + summary["loaded"] == 5000
    assert rejected > 4000          # almost every mutant is caught (by a CRC or a structural check)
    assert summary["loaded"] == summary["ran"]
    # the CRC-refreshed mutants reach the structural checks
    assert summary["rejected"]["inconsistent header, tensor table or vocabulary"] > 500
    # ... and the version-2 sections: special tokens and the encoder tables; mutants that load also encode
    assert summary["rejected"]["invalid special tokens or stop rule"] > 20
    assert summary["rejected"]["invalid encoder section"] > 20
    assert summary["encoded"] > 50


# ---- format version 2 ---------------------------------------------------------------------------
@pytest.mark.parametrize("golden", REFERENCE, ids=lambda p: p.name.split(".")[0])
def test_golden_window_encode_and_stop(binaries, golden, tmp_path):
    """200 tokens past max_seq_len (the window restart), the encoder's golden ids, the prompt text."""
    g = json.loads(golden.read_text())
    model = golden.parent / g["model"]
    w = g["window"]
    r = run_host(binaries / "starmind_host_asan", model, g["prompt_ids"], w["n_new"], "--window", "--no-stop")
    assert r["tokens"] == w["greedy_output_ids"] and r["restarts"] > 0
    s = w["sampled"][0]
    r = run_host(binaries / "starmind_host", model, g["prompt_ids"], w["n_new"], "--window", "--no-stop",
                 "--seed", s["seed"], "--temp-q8", s["temperature_q8"], "--top-k", s["top_k"])
    assert r["tokens"] == s["output_ids"]
    for e in g["encode"]:
        f = tmp_path / "prompt.txt"
        f.write_bytes(e["text"].encode("utf-8"))
        proc = subprocess.run([str(binaries / "starmind_host_asan"), str(model), "--text-file", str(f), "--encode-only"],
                              capture_output=True, text=True)
        assert not proc.stderr and json.loads(proc.stdout)["ids"] == e["ids"], e
    if g["encode"]:  # the prompt as text gives the golden run
        f = tmp_path / "prompt.txt"
        f.write_bytes(g["prompt_text"].encode())
        proc = subprocess.run([str(binaries / "starmind_host"), str(model), "--text-file", str(f), "--n",
                               str(g["greedy"]["n_new"])], capture_output=True, text=True)
        r = json.loads(proc.stdout)
        assert r["prompt_ids"] == g["prompt_ids"] and r["tokens"] == g["greedy"]["output_ids"]


def test_version1_file_loads(binaries):
    v1 = REFERENCE[0].parent / "v1" / "ref_tiny_learned.v1.smd"
    r = run_host(binaries / "starmind_host_asan", v1, [1, 2], 3)
    assert r["status"] == 0 and r["scheme"] == "int8"


def _variant(name, tmp_path, text=None, **edits):
    import dataclasses
    from starmind_lib.quant.smd import pack_smd, read_smd
    m = read_smd(REFERENCE[0].parent / name)
    t = {k: v.copy() for k, v in m.tensors.items()}
    for k, f in edits.items():
        f(t[k.replace("__", ".")])
    data = pack_smd(m.header, t, m.vocab, dataclasses.replace(m.text, **(text or {})))
    path = tmp_path / "variant.smd"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, text, edits, code", [
    ("ref_words_gelu.smd", {"bos_id": 1, "eos_id": 1}, {}, -10),
    ("ref_words_gelu.smd", {"eos_id": 5}, {}, -10),
    ("ref_tiny_learned.smd", {"stop_at_eos": True}, {}, -10),
    ("ref_tiny_learned.smd", {"lowercase": False}, {}, -11),
    ("ref_words_gelu.smd", {"encoder": "char"}, {}, -11),
    ("ref_bpe_lc.smd", {"merges": ((2, 3, 4),)}, {}, -11),
    ("ref_bpe_lc.smd", {"classes": ((10, 20, 1), (15, 30, 2))}, {}, -11),
    ("ref_rope_silu.smd", None, {"rope__cos": lambda a: a.__setitem__((5, 1), a[5, 1] + 2)}, -12),
    ("ref_rope_silu.f32.smd", None, {"rope__sin": lambda a: a.__setitem__((5, 1), a[5, 1] + 1e-4)}, -12),
    ("ref_rope_silu.f32.smd", None, {"layers__0__wq": lambda a: a.__setitem__((0, 0), float("nan"))}, -13),
    ("ref_rope_silu.f32.smd", None, {"layers__1__w2": lambda a: a.__setitem__((0, 0), float("inf"))}, -13),
])
def test_version2_defects_have_their_own_codes(binaries, tmp_path, name, text, edits, code):
    r = run_host(binaries / "starmind_host_asan", _variant(name, tmp_path, text, **edits), [0], 1)
    assert r["status"] == code, r


def test_packing_gap_is_its_own_code(binaries, tmp_path):
    import struct
    import zlib
    from starmind_lib.quant.smd import parse_smd
    src = (REFERENCE[0].parent / "ref_tiny_learned.smd").read_bytes()
    b = bytearray(src)
    hs = struct.unpack_from("<I", b, 20)[0]
    last = 32 + 96 + 48 * (parse_smd(src).header.n_tensors - 1)
    off = struct.unpack_from("<I", b, last + 40)[0]
    struct.pack_into("<I", b, last + 40, off + 4)
    b[32 + hs + off:32 + hs + off] = bytes(4)
    struct.pack_into("<I", b, 24, struct.unpack_from("<I", b, 24)[0] + 4)
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[16:32 + hs])))
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[32 + hs:])))
    path = tmp_path / "gap.smd"
    path.write_bytes(bytes(b))
    assert run_host(binaries / "starmind_host_asan", path, [0], 1)["status"] == -14
