"""The architecture study: the grid, crash safety (a real kill -9), the backends, the GPU hand-off."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from starmind_lib.config import ConfigError
from starmind_lib.model import Transformer, count_params as torch_count
from starmind_lib.training.sweep import (SweepConfig, checkpoint_path, load_prepared, load_variant, pack_outputs,
                                         pending_variants, prepare_data, results_table, run_sweep,
                                         study_data_config, unpack_outputs)
from starmind_lib.training.grid import BUDGET_TOLERANCE, count_params, full_grid, grid, solve_width

REPO = Path(__file__).resolve().parent.parent
FAST = {"tokens": 3072, "seq_len": 32, "batch_size": 16, "eval_every": 3, "eval_tokens": 512}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from starmind_lib.data import load_corpus
    corpus = load_corpus(study_data_config("synthetic"))
    return prepare_data(corpus, ["char64", "bpe384"], tmp_path_factory.mktemp("prepared"))


def test_full_grid_has_at_least_176_unique_stable_variants_covering_the_axes():
    variants = full_grid()
    ids = [v["variant_id"] for v in variants]
    assert len(ids) >= 176 and len(set(ids)) == len(ids)
    assert ids == [v["variant_id"] for v in full_grid()]  # stable order and names
    dims = {v["dim"] for v in variants}
    assert {1, 2, 3, 4, 64} <= dims
    assert {1, 2, 3, 4, 5, 6, 8, 10, 12} <= {v["n_layers"] for v in variants}
    assert {1, 16} <= {v["n_heads"] for v in variants}
    ratios = {v["ffn_hidden"] / v["dim"] for v in variants if v["axis"] == "ffn_ratio"}
    assert min(ratios) == 1 and max(ratios) == 256
    vocabs = {(v["tokenizer"], v["vocab_size"]) for v in variants}
    assert ("char", 32) in vocabs and ("bpe", 4096) in vocabs
    assert any(v["axis"] == "golden" for v in variants)
    assert {v["budget"] for v in variants if v["budget"]} == {1000, 3000, 10000, 30000, 100000, 300000}
    # every config is valid, and the checkpoints of the whole study fit the 60 MB hand-off
    cfg = SweepConfig.from_params({})
    assert sum(count_params(**v) for v in variants) * 4 < 60e6
    for v in variants:
        cfg.train_config(v)


def test_budget_variants_hold_their_budget_and_vary_one_thing():
    budget = [v for v in full_grid() if v["budget"]]
    for v in budget:
        assert abs(count_params(**v) - v["budget"]) / v["budget"] <= BUDGET_TOLERANCE, v["variant_id"]
    depth10k = {v["n_layers"]: v for v in budget if v["group"] == "budget10k-depth"}
    assert set(depth10k) == {1, 2, 4, 8}
    assert depth10k[1]["dim"] > depth10k[8]["dim"]  # the width was solved down as depth went up
    assert solve_width(1000, vocab_size=4096) is None  # the embedding alone exceeds the budget


@pytest.mark.parametrize("vid", ["width-d1", "vocab-d32-bpe4096", "act-d16-swiglu", "tied-d32-false", "fib-d13-f34"])
def test_grid_parameter_formula_matches_the_built_model(vid):
    v = next(v for v in full_grid() if v["variant_id"] == vid)
    model = Transformer(SweepConfig.from_params({}).train_config(v).model_config(v["vocab_size"]))
    assert torch_count(model) == count_params(**v)


def test_grid_selection_and_bad_names():
    assert len(grid("smoke")) == 5 and len(grid("quick")) == 15
    with pytest.raises(ValueError, match="unknown grid 'huge'"):
        grid("huge")
    with pytest.raises(ConfigError, match="'grid' must be one of"):
        SweepConfig.from_params({"grid": "huge"})
    with pytest.raises(ConfigError, match=r"unknown variant id\(s\) \['nope'\]"):
        SweepConfig.from_params({"variants": ["nope"]}).selected()


def test_prepared_data_decodes_like_the_tokenizer_and_carries_the_baseline(prepared):
    from starmind_lib.training.sweep import PieceDecoder
    from starmind_lib.tokenizers import load_tokenizer
    for spec in ("char64", "bpe384"):
        d = load_prepared(prepared, spec)
        tok = load_tokenizer(prepared / spec / "tokenizer.json")
        ids = d["val"][:500].tolist()
        assert PieceDecoder(d["meta"]["pieces"])(ids) == tok.decode(ids)
        assert d["meta"]["is_synthetic"] and 2 < d["meta"]["unigram_bpc"] < 6
        assert d["meta"]["prompts"]["Once upon a time"] == tok.encode("Once upon a time")


def test_serial_sweep_writes_table_and_loadable_checkpoints_then_skips_them(prepared, tmp_path):
    sweep = SweepConfig.from_params({**FAST, "grid": "smoke", "backend": "serial",
                                     "variants": ["width-d2", "vocab-d16-bpe384"]})
    df = run_sweep(sweep, prepared, tmp_path / "res", tmp_path / "runs", progress=False)
    assert sorted(df.variant_id) == ["vocab-d16-bpe384", "width-d2"]
    row = df.set_index("variant_id").loc["width-d2"]
    assert row.tokens_trained == 3072 and row.n_params == count_params(dim=2, n_layers=2, ffn_hidden=8, vocab_size=row.vocab_size)
    assert row.bpc > 0 and row.is_synthetic and len(row.samples) == 6
    assert (tmp_path / "res/sweep/variants.parquet").exists() and (tmp_path / "res/sweep/variants.jsonl").exists()
    model = load_variant(tmp_path / "runs", "width-d2")
    assert model.cfg.dim == 2 and torch_count(model) == row.n_params
    mtime = checkpoint_path(tmp_path / "runs", "width-d2").stat().st_mtime_ns
    run_sweep(sweep, prepared, tmp_path / "res", tmp_path / "runs", progress=False)  # nothing left to do
    assert checkpoint_path(tmp_path / "runs", "width-d2").stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="already holds variant 'width-d2' trained with another config"):
        pending_variants(sweep.replace(tokens=4096), results_table(tmp_path / "res"))
    with pytest.raises(FileNotFoundError, match="no checkpoint for variant 'width-d8'"):
        load_variant(tmp_path / "runs", "width-d8")


def test_kill_9_mid_sweep_loses_and_duplicates_nothing(prepared, tmp_path):
    params = json.dumps({**FAST, "tokens": 12288, "grid": "smoke", "backend": "serial"})
    cmd = [sys.executable, "-m", "starmind_lib.training.sweep", "run", "--data", str(prepared), "--out", str(tmp_path),
           "--params", params, "--profile", "smoke"]
    journal = tmp_path / "results/sweep/variants.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    n_variants = len(grid("smoke"))
    rows_at_kill = []
    for kills in range(2):  # kill twice, at different points, then let it finish
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        target = kills + 1
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_text().count("\n") >= target:
                break
            time.sleep(0.05)
        time.sleep(0.3 * kills)  # the second kill lands mid-training
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # the kill landed: the sweep died of SIGKILL (it had not finished) with rows still missing
        assert proc.returncode == -signal.SIGKILL, (kills, proc.returncode)
        rows_at_kill.append(journal.read_text().count("\n"))       # whole lines (a torn last one is not a row)
        assert target <= rows_at_kill[-1] < n_variants, (kills, rows_at_kill)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = Counter(json.loads(line)["variant_id"] for line in journal.read_text().splitlines() if line.strip())
    assert set(counts) == {v["variant_id"] for v in grid("smoke")}
    assert set(counts.values()) == {1}
    for vid in counts:
        load_variant(tmp_path / "runs", vid)


def test_process_pool_matches_serial_results(prepared, tmp_path):
    base = {**FAST, "grid": "smoke", "variants": ["width-d2", "depth-d16-l1"], "device": "cpu"}
    a = run_sweep(SweepConfig.from_params({**base, "backend": "process", "workers": 2}), prepared,
                  tmp_path / "a", tmp_path / "ra", progress=False).set_index("variant_id")
    b = run_sweep(SweepConfig.from_params({**base, "backend": "serial"}), prepared,
                  tmp_path / "b", tmp_path / "rb", progress=False).set_index("variant_id")
    assert a.loc["width-d2", "bpc"] == b.loc["width-d2", "bpc"]  # deterministic across processes
    assert (checkpoint_path(tmp_path / "ra", "depth-d16-l1").read_bytes()
            == checkpoint_path(tmp_path / "rb", "depth-d16-l1").read_bytes())


def test_dask_local_cluster_runs_a_tiny_sweep(prepared, tmp_path):
    pytest.importorskip("dask.distributed")
    sweep = SweepConfig.from_params({**FAST, "grid": "smoke", "backend": "dask", "workers": 2,
                                     "variants": ["width-d2", "width-d8"], "device": "cpu"})
    df = run_sweep(sweep, prepared, tmp_path / "res", tmp_path / "runs", progress=False)
    assert sorted(df.variant_id) == ["width-d2", "width-d8"]
    assert checkpoint_path(tmp_path / "runs", "width-d8").exists()


def test_pack_and_unpack_round_trip_within_the_file_limits(prepared, tmp_path):
    sweep = SweepConfig.from_params({**FAST, "grid": "smoke", "backend": "serial", "variants": ["width-d2", "width-d8"]})
    run_sweep(sweep, prepared, tmp_path / "res", tmp_path / "runs", progress=False)
    files = pack_outputs(tmp_path / "res", tmp_path / "runs", tmp_path / "out", shard_bytes=8000)
    assert [f.name for f in files] == ["study-table.tar", "models-00.tar", "models-01.tar"]
    unpack_outputs(tmp_path / "out", tmp_path / "res2", tmp_path / "runs2")
    assert (tmp_path / "res2/sweep/variants.jsonl").read_bytes() == (tmp_path / "res/sweep/variants.jsonl").read_bytes()
    assert (checkpoint_path(tmp_path / "runs2", "width-d8").read_bytes()
            == checkpoint_path(tmp_path / "runs", "width-d8").read_bytes())


def test_trend_fit_and_budget_summary_of_a_known_table():
    import pandas as pd

    from starmind_lib.chapters.ch04_architecture import (best_per_budget, budget_comparisons, fit_trend,
                                                         best_in_window)
    params = [1_000, 10_000, 100_000, 1_000_000]
    df = pd.DataFrame({"variant_id": [f"budget{p // 1000}k-depth-l{i}" for i, p in enumerate(params)],
                       "axis": "budget_depth", "budget": params, "n_params": params, "tokenizer_spec": "char64",
                       "bpc": [4.0 - 0.5 * i for i in range(4)], "dim": 8, "n_layers": 2, "n_heads": 1,
                       "ffn_hidden": 32})
    trend = fit_trend(df)
    assert trend["b"] == pytest.approx(-0.5) and trend["a"] == pytest.approx(5.5) and trend["r2"] == pytest.approx(1)
    summary = best_per_budget(budget_comparisons(df))
    assert list(summary.best) == ["l0", "l1", "l2", "l3"] and (summary.spread_bpc == 0).all()
    assert best_in_window(df, 12_000).variant_id == "budget10k-depth-l1"
    assert best_in_window(df, 400) is None


def test_gpu_study_script_runs_end_to_end_on_cpu(prepared, tmp_path):
    """scripts/run_study_gpu.sh with a tiny grid on the CPU: trains, packs, and unpacks into a table."""
    params = json.dumps({**FAST, "grid": "smoke", "variants": ["width-d2"], "device": "cpu", "workers": 1})
    env = {**os.environ, "PYTHON": sys.executable, "STUDY_PARAMS": params, "STUDY_WORK_DIR": str(tmp_path / "work")}
    done = subprocess.run(["bash", str(REPO / "scripts/run_study_gpu.sh"), str(prepared), str(tmp_path / "out"), "1", "120"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["models-00.tar", "study-table.tar", "study.log"]
    unpack_outputs(tmp_path / "out", tmp_path / "results", tmp_path / "runs")
    assert results_table(tmp_path / "results").keys() == {"width-d2"}
    assert load_variant(tmp_path / "runs", "width-d2").cfg.dim == 2
