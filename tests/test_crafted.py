"""Crafted goldens that fire every clamp and special branch (data/reference/crafted/), in every
runtime: the reference engine, the independent scalar engine, the C runtime (host build, ASan) and
the MicroPython runtime (run by CPython); and the committed coverage table."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from starmind_lib.provenance import REPO_ROOT
from starmind_lib.quant import crafted, intengine as ie
from starmind_lib.quant.smd import read_smd

REF = REPO_ROOT / "data" / "reference"
CRAFTED = sorted((REF / "crafted").glob("*.golden.json"))
RUNTIME = REPO_ROOT / "device" / "c"


@pytest.fixture(params=CRAFTED, ids=[p.name.split(".")[0] for p in CRAFTED])
def golden(request):
    return json.loads(request.param.read_text())


def test_crafted_files_are_what_the_generator_makes():
    models = crafted.crafted_models()
    assert sorted(models) == [p.name.split(".")[0] for p in CRAFTED]
    for name, (data, _) in models.items():
        assert (REF / "crafted" / f"{name}.smd").read_bytes() == data, name


def test_reference_engine_reproduces_crafted_goldens(golden):
    path = REF / "crafted" / golden["model"]
    assert crafted.crafted_golden(path, golden["prompt_ids"]) == golden


def test_every_branch_fires_in_some_golden_and_the_table_is_current():
    doc = json.loads((REF / "coverage.json").read_text())
    assert doc["branches"] == list(ie.BRANCHES)
    for b in ie.BRANCHES:
        assert bool(doc["fired_by"][b]) != (b in crafted.UNREACHABLE), b
    for name in ("crafted_saturate", "crafted_stop"):  # recomputed: the committed counts are current
        g = json.loads((REF / "crafted" / f"{name}.golden.json").read_text())
        assert crafted.run_golden(g, REF / "crafted") == doc["goldens"][name]


@pytest.mark.parametrize("name", ["crafted_saturate", "crafted_stop"])
def test_independent_scalar_engine_agrees(name):
    from scalar_spec_engine import SpecModel
    g = json.loads((REF / "crafted" / f"{name}.golden.json").read_text())
    m = SpecModel((REF / "crafted" / g["model"]).read_bytes())
    cache = m.new_cache()
    assert [m.step(cache, t, p) for p, t in enumerate(g["prompt_ids"])] == g["prompt_logits"]
    for s in g["sampled"]:
        out = m.generate(g["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"])
        if g["stop_at_eos"] and g["eos_id"] in out:
            out = out[:out.index(g["eos_id"]) + 1]
        assert out == s["output_ids"]


@pytest.fixture(scope="module")
def host():
    if not shutil.which("gcc") or not shutil.which("make"):
        pytest.skip("needs gcc and make")
    subprocess.run(["make", "-s", "-C", str(RUNTIME), "sanitize"], check=True, capture_output=True)
    return RUNTIME / "build" / "starmind_host_asan"


def _run(host, model, prompt, n, *extra):
    proc = subprocess.run([str(host), str(model), "--prompt", ",".join(map(str, prompt)), "--n", str(n),
                           *map(str, extra)], capture_output=True, text=True, timeout=300)
    assert not proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def test_c_runtime_reproduces_crafted_goldens(golden, host):
    model = REF / "crafted" / golden["model"]
    r = _run(host, model, golden["prompt_ids"], golden["greedy"]["n_new"])
    assert r["first_logits"] == golden["first_logits"] and r["tokens"] == golden["greedy"]["output_ids"]
    for s in golden["sampled"]:
        r = _run(host, model, golden["prompt_ids"], s["n_new"], "--seed", s["seed"], "--temp-q8", s["temperature_q8"],
                 "--top-k", s["top_k"])
        assert r["tokens"] == s["output_ids"], s
    w = golden["window"]
    assert _run(host, model, golden["prompt_ids"], w["n_new"], "--window")["tokens"] == w["greedy_output_ids"]


def test_micropython_runtime_reproduces_crafted_goldens(golden):
    from starmind_lib.devices.runtime import device_runtime
    mp = device_runtime()
    import starmind_mp.story as story
    m = mp.smd.load(str(REF / "crafted" / golden["model"]))
    eng = mp.engine.IntEngine(m, "python")
    for p, tok in enumerate(golden["prompt_ids"]):
        assert [int(v) for v in eng.forward_token(tok, p)] == golden["prompt_logits"][p]
    assert story.generate(eng, golden["prompt_ids"], golden["greedy"]["n_new"]) == golden["greedy"]["output_ids"]
    for s in golden["sampled"]:
        got = story.generate(eng, golden["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"])
        assert got == s["output_ids"], s
    w = golden["window"]
    assert story.generate(eng, golden["prompt_ids"], w["n_new"]) == w["greedy_output_ids"]
