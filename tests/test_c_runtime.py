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
    (lambda b: b[:16] + b"\x02" + b[17:], -5),              # version 2
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
              for k in ("model", "float_model")]
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
