"""Study v2: whole-split evaluation with intervals, distinct configurations, tiers, resumable runs."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from starmind_lib.model import ModelConfig, Transformer
from starmind_lib.training.evaluation import StoryEval, bootstrap_bpc, evaluate_stories, story_nats
from starmind_lib.training.grid import grid
from starmind_lib.training.plan import (LR_GRID, LR_REPRESENTATIVES, Job, StudyConfig, config_hash, variant_id_list,
                                        distinct_configs, long_tier_configs, plan_jobs, representatives,
                                        tuned_rates)
from starmind_lib.training.study import results_table, run_study, train_job
from starmind_lib.training.sweep import prepare_data, study_data_config


def _stories(lengths, vocab=10, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(2, vocab, size=n) for n in lengths]


def test_sliding_windows_score_every_target_exactly_once_with_enough_context():
    stories = _stories([3, 16, 17, 40, 100])
    ev = StoryEval.build(stories, [n + 5 for n in (3, 16, 17, 40, 100)], eos_id=1, seq_len=16)
    assert ev.stride == 8
    # each story scores its tokens plus the closing EOS
    per_story = np.bincount(ev.story, weights=ev.mask.sum(1), minlength=5)
    assert per_story.tolist() == [4, 17, 18, 41, 101]
    for s, toks in enumerate(stories):
        seq = np.concatenate([[1], toks, [1]])
        got = {}
        for w in np.flatnonzero(ev.story == s):
            # the window's inputs are a contiguous slice of the story: recover its start
            x = ev.inputs[w]
            for st in range(len(seq)):
                if np.array_equal(seq[st:st + 16][:int((x != 0).sum())], x[:int((x != 0).sum())]):
                    break
            for j in np.flatnonzero(ev.mask[w]):
                assert ev.targets[w, j] == seq[st + j + 1]
                assert (st + j + 1) not in got            # scored once
                got[st + j + 1] = j                       # context length j+1
        assert sorted(got) == list(range(1, len(seq)))
        assert all(ctx + 1 >= min(8, t) for t, ctx in got.items())


def test_uniform_model_scores_log2_vocab_per_token_over_characters():
    class Uniform(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(*x.shape, 10), None
    stories = _stories([5, 30, 70])
    chars = np.array([11, 50, 90])
    ev = StoryEval.build(stories, chars, eos_id=1, seq_len=16)
    res = evaluate_stories(Uniform(), ev)
    n_targets = 6 + 31 + 71
    assert res["eval_tokens"] == n_targets and res["eval_chars"] == 151 and res["eval_stories"] == 3
    assert res["bpc"] == pytest.approx(n_targets * math.log2(10) / 151, rel=1e-6)
    assert res["bpc_ci_low"] <= res["bpc"] <= res["bpc_ci_high"]


def test_a_short_story_scores_like_one_full_forward_pass():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=12, dim=8, n_layers=1, n_heads=2, ffn_hidden=16, max_seq_len=32))
    toks = _stories([20], vocab=12)[0]
    ev = StoryEval.build([toks], [20], eos_id=1, seq_len=32)
    seq = torch.tensor(np.concatenate([[1], toks, [1]]))[None]
    logits, _ = model(seq[:, :-1])
    want = torch.nn.functional.cross_entropy(logits[0], seq[0, 1:], reduction="sum").item()
    assert story_nats(model, ev)[0] == pytest.approx(want, rel=1e-6)


def test_bootstrap_interval_is_deterministic_and_narrows_with_more_stories():
    rng = np.random.default_rng(1)
    nats = rng.gamma(5.0, 100.0, size=50)
    chars = rng.integers(300, 900, size=50)
    a, b = bootstrap_bpc(nats, chars), bootstrap_bpc(nats, chars)
    assert a == b and a[1] < a[0] < a[2]
    big = bootstrap_bpc(np.tile(nats, 16), np.tile(chars, 16))
    assert big[0] == pytest.approx(a[0]) and (big[2] - big[1]) < (a[2] - a[1]) / 2


def test_story_table_mismatch_is_a_clear_error():
    ids = np.array([3, 4, 1, 5, 1])
    with pytest.raises(ValueError, match="validation: 2 tokenized stories but 3 character counts"):
        StoryEval.from_stream(ids, 1, [2, 1, 4], seq_len=8)
    with pytest.raises(ValueError, match="does not end with EOS"):
        StoryEval.from_stream(ids[:-1], 1, [2, 1], seq_len=8)


def test_distinct_configurations_dedupe_the_grid_and_axes_reference_them():
    variants = grid("full")
    configs = distinct_configs(variants)
    assert len(variants) == 198 and len(configs) == 155
    assert sum(len(c["variant_ids"]) for c in configs) == 198
    base = next(c for c in configs if "depth-d16-l2" in c["variant_ids"])
    assert len(base["variant_ids"]) > 1 and len(base["axes"]) > 1
    # the hash is the configuration's identity: no seed, rate or budget; the context is part of it
    assert base["config_hash"] == config_hash(base) != config_hash(base, seq_len=32)
    assert len({c["config_hash"] for c in configs}) == 155
    for names in LR_REPRESENTATIVES.values():
        for n in names:
            assert any(n in c["variant_ids"] for c in configs), n


def _rows(configs, bpc_of):
    rows = []
    for c in configs:
        for lr in LR_GRID:
            rows.append({"tier": "lr", "bucket": c["bucket"], "name": c["name"], "variant_ids": c["variant_ids"],
                         "lr": lr, "bpc": bpc_of(c, lr),
                         "config_hash": c["config_hash"], "unigram_bpc": 4.0})
    return rows


def test_tuned_rates_need_every_representative_at_every_rate():
    configs = distinct_configs(grid("full"))
    reps = [c for c in configs if set(c["variant_ids"]) & {n for ns in LR_REPRESENTATIVES.values() for n in ns}]
    best = {"1k": 1e-2, "10k": 5e-3, "100k": 2e-3, "300k": 2e-3, "1m": 1e-3}
    rows = _rows(reps, lambda c, lr: 2.0 + abs(math.log(lr / best[c["bucket"]])))
    assert tuned_rates(rows) == best
    assert "1m" not in tuned_rates([r for r in rows if not (r["bucket"] == "1m" and r["lr"] == 1e-2)])
    study = StudyConfig.from_params({})
    jobs, why = plan_jobs("base", study, configs, rows)
    assert why == "" and len(jobs) == 155 * 3
    assert {j.lr for j in jobs if j.config["bucket"] == "100k"} == {2e-3}
    assert len({j.run_key for j in jobs}) == len(jobs)
    jobs, why = plan_jobs("base", study, configs, rows[:3])
    assert jobs == [] and "wait for their learning-rate sweep" in why
    # a bucket whose sweep is complete trains while the others wait
    no_1m = [r for r in rows if r["bucket"] != "1m"]
    jobs, why = plan_jobs("base", study, configs, no_1m)
    assert {j.config["bucket"] for j in jobs} == {"1k", "10k", "100k", "300k"} and "['1m']" in why
    assert plan_jobs("long", study, configs, no_1m) == ([], "tier 'long' waits for the learning-rate sweep of "
                                                            "bucket(s) ['1m']")


def test_long_tier_takes_the_front_then_fills_to_twenty_only_models_beating_unigram():
    configs = distinct_configs(grid("full"))
    rows = [{"tier": "base", "config_hash": c["config_hash"], "bpc": 5.0 - math.log10(c["n_params"]) / 2
             + (0.3 if c["tokenizer"] == "bpe" else 0.0), "unigram_bpc": 4.25} for c in configs]
    chosen = long_tier_configs(rows, configs, 20)      # every larger model is better: a front of ~100
    assert 24 < len(chosen) <= 44                        # thinned to at most 2n, plus the best of each decade
    by = {r["config_hash"]: r["bpc"] for r in rows}
    assert all(by[c["config_hash"]] < 4.25 for c in chosen)
    sizes = sorted(c["n_params"] for c in chosen)
    assert sizes[0] < 3_000 and sizes[-1] > 1_000_000


def test_a_configuration_the_long_tier_started_gets_all_its_seeds_after_the_plan_passes_it_by(monkeypatch):
    import starmind_lib.training.plan as plan
    configs = sorted(distinct_configs(grid("full")), key=lambda c: c["n_params"])
    study = StudyConfig.from_params({"seeds": [0, 1, 2]})
    reps = {n for ns in LR_REPRESENTATIVES.values() for n in ns}
    rows = [{"tier": "lr", "config_hash": c["config_hash"], "variant_ids": c["variant_ids"], "lr": lr, "bpc": 2.0}
            for c in configs if set(c["variant_ids"]) & reps for lr in study.lr_grid]
    monkeypatch.setattr(plan, "long_tier_plan", lambda rows, configs, n, lr_grid: configs[:20])
    planned = {c["name"] for c in configs[:20]}
    jobs, why = plan_jobs("long", study, configs, rows)
    assert why == "" and {j.config["name"] for j in jobs} == planned and len(jobs) == 20 * 3
    old = configs[100]                                   # trained once under an earlier plan
    rows.append({"tier": "long", "config_hash": old["config_hash"], "name": old["name"], "seed": 0, "bpc": 1.5})
    jobs, _ = plan_jobs("long", study, configs, rows)
    assert {j.config["name"] for j in jobs} == planned | {old["name"]}
    assert sorted(j.seed for j in jobs if j.config["name"] == old["name"]) == [0, 1, 2]


def test_long_tier_keeps_a_front_of_up_to_twice_n_whole():
    """22 models on the front (each better than every smaller one), the rest worse: all 22 are trained."""
    configs = sorted(distinct_configs(grid("full")), key=lambda c: c["n_params"])
    sizes = sorted({c["n_params"] for c in configs})
    front_sizes = set(sizes[::len(sizes) // 22][:22])
    front, rows, seen = set(), [], set()
    for c in configs:
        on = c["n_params"] in front_sizes and c["n_params"] not in seen
        seen.add(c["n_params"])
        rank = sorted(front_sizes).index(c["n_params"]) if on else 0
        rows.append({"tier": "base", "config_hash": c["config_hash"], "unigram_bpc": 4.25,
                     "bpc": 4.0 - 0.1 * rank if on else 4.2})
        if on:
            front.add(c["config_hash"])
    chosen = {c["config_hash"] for c in long_tier_configs(rows, configs, 20)}
    assert len(front) == 22 and front <= chosen and len(chosen) == 22


def test_study_config_rejects_unknown_tiers():
    from starmind_lib.config import ConfigError
    with pytest.raises(ConfigError, match="unknown tier"):
        StudyConfig.from_params({"tiers": ["lr", "medium"]})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from starmind_lib.data import load_corpus
    corpus = load_corpus(study_data_config("synthetic"))
    return prepare_data(corpus, ["char64", "bpe384"], tmp_path_factory.mktemp("prepared_v2"))


def test_a_tiny_study_runs_its_tiers_resumes_and_records_whole_split_rows(prepared, tmp_path, capsys):
    reps = representatives(distinct_configs(grid("smoke")))
    assert reps == {"1k": ("width-d2",), "10k": ("depth-d16-l1", "vocab-d16-bpe384")}
    params = {"grid": "smoke", "tiers": ["lr", "base"], "seeds": [0, 1], "lr_grid": [1e-3, 1e-2],
              "base_tokens": 2048, "seq_len": 16, "batch_size": 8, "eval_every": 8, "workers": 1,
              "device": "cpu"}
    study = StudyConfig.from_params(params)
    df = run_study(study, prepared, tmp_path / "results", tmp_path / "runs", progress=False)
    lr_rows = df[df.tier == "lr"]
    assert len(lr_rows) == 3 * 2                      # 3 representatives x 2 rates, one seed
    base = df[df.tier == "base"]
    assert len(base) == 5 * 2 and set(base.seed) == {0, 1}
    for col in ("config_hash", "seed", "lr", "tokens_trained", "bpc", "bpc_ci_low", "bpc_ci_high", "eval_chars",
                "eval_stories", "prefix_bpc", "train_bpc", "git_commit", "machine"):
        assert df[col].notna().all(), col
    assert (df.bpc_ci_low <= df.bpc).all() and (df.bpc <= df.bpc_ci_high).all()
    # identical text for every tokenizer: the same characters and stories are evaluated
    assert df.eval_chars.nunique() == 1 and df.eval_stories.nunique() == 1
    # seeds differ, and the same seed reproduces exactly
    one = base[base.name == "width-d8"].sort_values("seed").bpc.tolist()
    assert one[0] != one[1]
    # the rerun trains nothing and appends nothing: the raw journal (not rows(), which drops repeated keys)
    # keeps one line per run, and no checkpoint is written again
    table = results_table(tmp_path / "results")
    checkpoints = [tmp_path / "runs" / c for c in df.checkpoint]
    mtimes = [c.stat().st_mtime_ns for c in checkpoints]
    journal = table.journal.read_bytes()
    capsys.readouterr()
    again = run_study(study, prepared, tmp_path / "results", tmp_path / "runs", progress=True)
    out = capsys.readouterr().out
    assert "study: tier 'lr': 6 runs, 0 to train" in out and "study: tier 'base': 10 runs, 0 to train" in out
    assert "study: 0 runs trained in " in out and out.rstrip().endswith("; table has 16 runs"), out
    assert table.journal.read_bytes() == journal
    assert len([line for line in journal.decode().splitlines() if line.strip()]) == len(df) == 16
    assert [c.stat().st_mtime_ns for c in checkpoints] == mtimes
    assert len(again) == len(df) and Path(table.stem.with_suffix(".parquet")).exists()


def test_a_run_another_study_process_finished_meanwhile_is_neither_trained_nor_appended(prepared, tmp_path,
                                                                                          monkeypatch, capsys):
    """Two studies started on one results folder (what once duplicated a long-tier row): before each run starts,
    the study asks the table again, and a row that still arrives twice is appended once."""
    import starmind_lib.training.study as st
    params = {"grid": "smoke", "tiers": ["untuned"], "seeds": [0], "base_tokens": 1024, "seq_len": 16,
              "batch_size": 8, "eval_every": 8, "workers": 1, "device": "cpu"}
    study = StudyConfig.from_params(params)
    real, trained = st.train_job_group, []

    def other_process_wins(unit, *args):      # while this unit trains, another process finishes the next one
        rows = real(unit, *args)
        trained.extend(j.config["name"] for j in unit)
        if len(trained) == 1:
            done = real(todo[1:2], *args)[0]
            assert results_table(tmp_path / "results").append(done) and results_table(
                tmp_path / "results").append(rows[0])        # ... and the first one too
        return rows
    jobs, _ = st.plan_jobs("untuned", study, [c for c in st.distinct_configs(grid("smoke"), 16)], [])
    todo = st.job_order(jobs)
    assert len(todo) >= 3
    monkeypatch.setattr(st, "train_job_group", other_process_wins)
    df = run_study(study, prepared, tmp_path / "results", tmp_path / "runs", progress=False)
    assert todo[1].config["name"] not in trained and len(trained) == len(todo) - 1
    assert sorted(df.run_key) == sorted(j.run_key for j in todo)          # every run once
    assert len(results_table(tmp_path / "results").journal.read_text().splitlines()) == len(todo)
    assert f"study: {todo[0].run_key} ({todo[0].config['name']}) is already in the table" in capsys.readouterr().out


def test_a_run_that_raises_is_an_error_row_naming_it_the_others_are_trained_and_a_rerun_retries_it(
        prepared, tmp_path, monkeypatch, capsys):
    import json

    import starmind_lib.training.study as st
    params = {"grid": "smoke", "tiers": ["untuned"], "seeds": [0], "base_tokens": 1024, "seq_len": 16,
              "batch_size": 8, "eval_every": 8, "workers": 1, "device": "cpu"}
    study = StudyConfig.from_params(params)
    jobs, _ = st.plan_jobs("untuned", study, st.distinct_configs(grid("smoke"), 16), [])
    todo = st.job_order(jobs)
    broken = todo[1]
    real, trained = st.train_job_group, []

    def one_run_breaks(unit, *args):
        trained.extend(j.run_key for j in unit)
        if any(j.run_key == broken.run_key for j in unit):
            raise RuntimeError("CUDA out of memory (stand-in)")
        return real(unit, *args)
    monkeypatch.setattr(st, "train_job_group", one_run_breaks)
    df = run_study(study, prepared, tmp_path / "results", tmp_path / "runs", progress=True)
    out = capsys.readouterr().out
    assert trained == [j.run_key for j in todo]
    assert sorted(df.run_key) == sorted(j.run_key for j in todo if j is not broken)     # the others went on
    name = broken.config["name"]
    assert f"study: {broken.run_key} ({name}) failed: RuntimeError: CUDA out of memory (stand-in)\n" in out
    assert f"study: {len(todo) - 1} runs trained in " in out
    errors = tmp_path / "results" / "sweep" / "study_v2_errors.jsonl"
    [error] = [json.loads(line) for line in errors.read_text().splitlines()]
    assert (error["run_key"], error["name"], error["tier"], error["error"]) == (
        broken.run_key, name, "untuned", "RuntimeError: CUDA out of memory (stand-in)")
    assert error["attempt"] == f"{broken.run_key}@{error['timestamp']}"
    # failing again is a second attempt in the log (not dropped as a repeated key)
    trained.clear()
    run_study(study, prepared, tmp_path / "results", tmp_path / "runs", progress=True)
    assert trained == [broken.run_key]
    attempts = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [a["run_key"] for a in attempts] == [broken.run_key] * 2 and attempts[0]["attempt"] != attempts[1]["attempt"]
    capsys.readouterr()
    # the rerun (the failure gone) trains that run and nothing else; the raw journal holds each run once
    trained.clear()
    monkeypatch.setattr(st, "train_job_group", lambda unit, *args: trained.extend(j.run_key for j in unit)
                        or real(unit, *args))
    again = run_study(study, prepared, tmp_path / "results", tmp_path / "runs", progress=True)
    assert trained == [broken.run_key] and "study: 1 runs trained in " in capsys.readouterr().out
    lines = results_table(tmp_path / "results").journal.read_text().splitlines()
    assert sorted(json.loads(line)["run_key"] for line in lines) == sorted(j.run_key for j in todo)
    assert json.loads(lines[-1])["run_key"] == broken.run_key
    assert sorted(again.run_key) == sorted(j.run_key for j in todo)


def test_merging_another_machines_journal_twice_adds_its_missing_runs_once(tmp_path, capsys):
    """``merge``: the runs of another journal whose run_key is not here are appended as recorded there; a run
    already here keeps this machine's row; a second merge adds nothing; a journal that is not there is named."""
    import json
    import re

    from starmind_lib.provenance import ResultTable
    from starmind_lib.training.study import main, merge_runs
    here = results_table(tmp_path / "here")
    mine = [{"run_key": f"r{i}", "name": f"m{i}", "bpc": 2.0 + i / 10, "machine": "cpu box"} for i in range(2)]
    for row in mine:
        assert here.append(row)
    gpu = ResultTable(tmp_path / "gpu" / "study_v2", key="run_key")
    theirs = [{**mine[1], "bpc": 9.9, "machine": "gpu box"},
              {"run_key": "r2", "name": "m2", "bpc": 2.2, "machine": "gpu box"},
              {"run_key": "r3", "name": "m3", "bpc": 2.3, "machine": "gpu box"}]
    for row in theirs:
        assert gpu.append(row)
    assert merge_runs(gpu.journal, tmp_path / "here") == 2
    journal = here.journal.read_text()
    assert merge_runs(gpu.journal, tmp_path / "here") == 0
    assert here.journal.read_text() == journal                    # the raw journal: no line added
    assert [json.loads(line) for line in journal.splitlines()] == mine + theirs[1:]
    assert len(pd.read_parquet(here.stem.with_suffix(".parquet"))) == 4
    assert main(["merge", str(gpu.journal), "--results-dir", str(tmp_path / "here")]) == 0
    assert capsys.readouterr().out == f"merged 0 new runs from {gpu.journal} into {here.journal}\n"
    missing = tmp_path / "nowhere" / "study_v2.jsonl"
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(str(missing))}: no such study journal$"):
        merge_runs(missing, tmp_path / "here")
    assert here.journal.read_text() == journal


def test_seed_noise_verdicts_and_summaries():
    import pandas as pd
    from starmind_lib.analysis.seeds import (NO_DIFF, NOT_TESTED, REAL, compare_values, nearest,
                                             rank_correlation, seed_summary, t975)
    assert t975(2) == pytest.approx(4.303) and t975(1e6) == pytest.approx(1.96)
    assert compare_values([2.00, 2.01, 2.02], [1.80, 1.81, 1.82])["verdict"] == REAL
    same = compare_values([2.00, 2.10, 1.95], [2.02, 1.97, 2.06])
    assert same["verdict"] == NO_DIFF and same["noise"] > abs(same["diff"])
    assert compare_values([2.0], [1.0])["verdict"] == NOT_TESTED
    runs = pd.DataFrame([{"config_hash": "a", "tier": "base", "lr": 3e-3, "tokens_trained": 10, "seq_len": 64,
                          "name": "x", "n_params": 1000, "seed": s, "bpc": b, "bpc_ci_low": b - 0.1,
                          "bpc_ci_high": b + 0.1, "unigram_bpc": 4.0, "eval_chars": 100, "train_val_gap": 0.0}
                         for s, b in enumerate((2.0, 2.2, 2.4))])
    s = seed_summary(runs).iloc[0]
    assert s.n_seeds == 3 and s.bpc_mean == pytest.approx(2.2) and s.bpc_sd == pytest.approx(0.2)
    assert s.bpc_mean_ci_high - s.bpc_mean == pytest.approx(4.303 * 0.2 / 3 ** 0.5, rel=1e-3)
    summ = pd.DataFrame({"n_params": [9_000, 10_400, 76_000, 101_000], "bpc_mean": [2.0, 2.1, 1.5, 1.6]})
    assert nearest(summ, 100_000).iloc[0].n_params == 101_000   # nearest, not the best in the window
    assert nearest(summ, 10_000).iloc[0].n_params == 10_400
    assert rank_correlation(pd.Series([1, 2, 3, 4]), pd.Series([10, 20, 30, 40])) == pytest.approx(1.0)


def test_a_study_run_repeats_the_v1_sweep_recipe_exactly(prepared, tmp_path):
    """The lr tier at 3e-3, seed 0 is chapter 4's recipe: same model, data order and prefix score."""
    from starmind_lib.training.sweep import SweepConfig, train_variant
    v = next(v for v in grid("smoke") if v["variant_id"] == "width-d8")
    old = train_variant(v, SweepConfig.from_params({"tokens": 4096, "seq_len": 16, "batch_size": 8,
                                                     "eval_every": 8, "eval_tokens": 32768, "device": "cpu"}),
                        str(prepared), str(tmp_path / "v1"))
    c = next(c for c in distinct_configs(grid("smoke"), seq_len=16) if "width-d8" in c["variant_ids"])
    study = StudyConfig.from_params({"base_tokens": 4096, "seq_len": 16, "batch_size": 8, "eval_every": 8,
                                     "device": "cpu"})
    new = train_job(Job(c, 0, 3e-3, 4096, "lr"), study, str(prepared), str(tmp_path / "v2"))
    assert new["tokens_trained"] == old["tokens_trained"]
    assert new["prefix_bpc"] == old["bpc"]            # bit for bit
    assert new["bpc"] != new["prefix_bpc"]            # the whole split is another measurement


def _v2_runs(spec):
    """Study v2 rows: {config_hash: (variant_ids, [bpc per seed])}, base tier."""
    import pandas as pd
    return pd.DataFrame([{"config_hash": h, "tier": "base", "lr": 1e-2, "tokens_trained": 2_000_896, "seq_len": 64,
                          "name": ids[0], "variant_ids": ids, "n_params": 1000, "seed": s, "bpc": b,
                          "bpc_ci_low": b - 0.01, "bpc_ci_high": b + 0.01, "unigram_bpc": 4.25, "eval_chars": 616648,
                          "train_val_gap": 0.0, "samples": [], "wall_s": 10.0, "tokens_per_s": 1e5,
                          "machine": "m", "git_commit": "c", "is_synthetic": False}
                         for h, (ids, bpcs) in spec.items() for s, b in enumerate(bpcs)])


def test_chapter_four_reads_study_v2_means_per_variant_with_verdicts_against_the_runner_up():
    import pandas as pd
    from starmind_lib.chapters.ch04_architecture import (V1_SOURCE, best_per_budget, budget_comparisons,
                                                         chapter_table, seed_values)
    v1 = pd.DataFrame([{"variant_id": v, "axis": "budget_depth", "group": "budget_depth@1000", "budget": 1000,
                        "dim": 8, "n_layers": n, "n_heads": 1, "ffn_hidden": 32, "tokenizer_spec": "char64",
                        "n_params": 1000, "bpc": 3.0, "unigram_bpc": 4.2}
                       for v, n in (("budget1k-depth-l1", 1), ("budget1k-depth-l2", 2), ("budget1k-depth-l4", 4))])
    runs = _v2_runs({"h1": (["budget1k-depth-l1"], [2.50, 2.51, 2.52]),
                     "h2": (["budget1k-depth-l2", "width-d6"], [2.30, 2.31, 2.32]),
                     "h4": (["budget1k-depth-l4"], [2.33, 2.20, 2.45])})
    df, source = chapter_table(v1, runs)
    assert source.startswith("Study v2") and "mean of 3 seeds" in source
    assert len(df) == 3 and set(df.variant_id) == set(v1.variant_id)     # width-d6 is not in this v1 table
    row = df.set_index("variant_id").loc["budget1k-depth-l2"]
    assert row.bpc == pytest.approx(2.31) and row.v1_bpc == 3.0 and row.n_seeds == 3
    assert row.bpc_ci_high - row.bpc == pytest.approx(4.303 * 0.01 / 3 ** 0.5, rel=1e-3)
    assert row.unigram_bpc == 4.25                          # the whole split's unigram, not v1's prefix one
    best = best_per_budget(budget_comparisons(df), seed_values(runs)).iloc[0]
    assert (best.best, best["runner-up"], best.worst) == ("l2", "l4", "l1")
    assert best.margin_bpc == pytest.approx((2.33 + 2.20 + 2.45) / 3 - 2.31) and best.verdict == "no measurable difference"
    assert best.seed_noise_bpc > best.margin_bpc
    # without Study v2 runs the chapter falls back to v1, says so, and claims no intervals
    df1, source1 = chapter_table(v1, runs.iloc[0:0])
    assert source1 == V1_SOURCE and df1.bpc_ci_low.isna().all()
    assert best_per_budget(budget_comparisons(df1)).iloc[0].verdict == "one seed: not tested"


def test_chapters_keep_the_v1_table_whole_until_study_v2_covers_it():
    import pandas as pd
    from starmind_lib.analysis.seeds import V1_SOURCE
    from starmind_lib.chapters.ch04_architecture import chapter_table
    v1 = pd.DataFrame([{"variant_id": f"v{i}", "n_params": 1000 * (i + 1), "bpc": 3.0, "unigram_bpc": 4.2}
                       for i in range(10)])
    partial = _v2_runs({f"h{i}": ([f"v{i}"], [2.5, 2.6, 2.7]) for i in range(8)})
    df, source = chapter_table(v1, partial)
    assert source.startswith(V1_SOURCE) and "8 of these 10 variants" in source
    assert len(df) == 10 and (df.bpc == 3.0).all()                      # v1 whole, not a mix
    df, source = chapter_table(v1, _v2_runs({f"h{i}": ([f"v{i}"], [2.5, 2.6, 2.7]) for i in range(9)}))
    assert source.startswith("Study v2") and len(df) == 9 and df.bpc.round(6).eq(2.6).all()


def test_named_configurations_train_first_and_unknown_names_are_refused():
    from starmind_lib.config import ConfigError
    from starmind_lib.training.plan import estimated_cost, job_order
    configs = distinct_configs(grid("full"))
    study = StudyConfig.from_params({"first": ["vocab-d32-bpe2048"]})
    jobs, _ = plan_jobs("untuned", study, configs, [])
    ordered = job_order(jobs, study.first)
    assert "vocab-d32-bpe2048" in ordered[0].config["variant_ids"]
    costs = [estimated_cost(j) for j in ordered[1:]]
    assert costs == sorted(costs) and len(ordered) == len(jobs) == 155
    with pytest.raises(ConfigError, match=r"'first': \['no-such-model'\] not in the 'full' grid"):
        StudyConfig.from_params({"first": ["no-such-model"]})


def test_long_tier_table_compares_two_and_twenty_million_tokens_per_configuration():
    import pandas as pd
    from starmind_lib.chapters.ch04b_study_v2 import long_rank_correlation, long_tier_table
    base = _v2_runs({"a": (["x"], [2.0, 2.1, 2.2]), "b": (["y"], [1.5, 1.5, 1.5]), "c": (["z"], [3.0, 3.0, 3.0])})
    long = _v2_runs({"a": (["x"], [1.8]), "b": (["y"], [1.2]), "c": (["z"], [2.9])}).assign(
        tier="long", tokens_trained=20_000_000, best_tokens=12_000_000, curve=[[]] * 3)
    t = long_tier_table(pd.concat([base, long], ignore_index=True)).set_index("configuration")
    assert t.loc["x", "bpc at 2 M tokens"] == pytest.approx(2.1) and t.loc["x", "gain"] == pytest.approx(0.3)
    assert t.loc["y", "tokens"] == 20_000_000 and t.loc["z", "best dev step (tokens)"] == 12_000_000
    assert long_rank_correlation(pd.concat([base, long], ignore_index=True)) == pytest.approx(1.0)
    assert long_tier_table(base).empty


def test_targets_count_only_means_over_three_seeds():
    import pandas as pd
    from starmind_lib.chapters.ch04b_study_v2 import targets_table
    base = _v2_runs({"a": (["x"], [1.85, 1.88, 1.91]), "b": (["y"], [2.0, 2.0, 2.0])}).assign(n_params=[10_000] * 3
                                                                                               + [9_000] * 3)
    long = _v2_runs({"a": (["x"], [1.70])}).assign(tier="long", n_params=10_000)
    runs = pd.concat([base, long], ignore_index=True)
    t = targets_table(runs).set_index("target")
    near = t.loc["best near 10,000 parameters (6,667 to 15,000)"]
    # 1.88 meets 1.90, but its interval over seeds (1.805-1.955) holds the goal: the page says so
    assert (near["model"], near["bpc (mean)"], near["seeds"], near["met"]) == (
        "x", 1.88, 3, "yes, within seed noise of the goal")
    assert near["nearest model"] == "x (10,000): 1.880"
    tight = _v2_runs({"a": (["x"], [1.84, 1.845, 1.85])}).assign(n_params=10_000)
    assert targets_table(tight).iloc[0]["met"] == "yes"
    assert targets_table(tight.assign(bpc=tight["bpc"] + 0.08)).iloc[0]["met"] == "no"
    assert t.loc["best overall", "met"] == "no"                       # goal 1.15
    tl = targets_table(runs, tier="long").set_index("target")
    assert tl.loc["best near 10,000 parameters (6,667 to 15,000)", "met"] == "not decided: 1 seed (below the goal)"
    assert tl.loc["best overall", "95 % interval"] == "one seed"
    # a better one-seed model does not undo a target that a three-seed model meets
    longer = pd.concat([runs, _v2_runs({"b": (["y"], [1.10, 1.12, 1.14])}).assign(tier="long", n_params=200_000),
                        _v2_runs({"c": (["z"], [0.95])}).assign(tier="long", n_params=900_000)], ignore_index=True)
    best = targets_table(longer, tier="long").set_index("target").loc["best overall"]
    assert (best["model"], best["seeds"]) == ("z", 1)
    assert best["met"] == "yes, by y (3 seeds, 1.120); z has 1 seed"


def test_long_tier_status_says_how_much_of_the_tier_is_trained():
    import pandas as pd
    from starmind_lib.chapters.ch04b_study_v2 import long_tier_status
    t = pd.DataFrame({"params": [234, 990], "seeds": [1, 1]})
    assert long_tier_status(t) == ("So far 2 configurations of the 20 it plans have been trained, with 1 seed each, "
                                   "from 234 to 990 parameters (the cheapest first).")
    assert long_tier_status(t.assign(seeds=[3, 1]), planned=24).startswith("So far 2 configurations of the 24")
    assert "been trained, 1 with 3 seeds, 1 with 1 seed, from 234" in long_tier_status(t.assign(seeds=[3, 1]))
    assert long_tier_status(pd.DataFrame()) == "None of the 20 configurations it plans has been trained yet."
    assert long_tier_status(t.assign(seeds=3), planned=2) == ("All 2 configurations it plans have been trained, with "
                                                              "3 seeds each, from 234 to 990 parameters.")
    moved = t.assign(configuration=["a", "b"], planned=["yes", "no longer"])
    assert long_tier_status(moved, planned=24) == (
        "So far 1 configuration of the 24 it plans has been trained, with 1 seed each, from 234 to 234 parameters "
        "(the cheapest first). 1 more configuration (b) was chosen while the base grid was incomplete; the "
        "complete grid's front passes it by, but the tier trains every configuration it has started to all its "
        "seeds (it has 1 seed).")
    three = pd.DataFrame({"params": [234, 990, 5000], "seeds": [3, 3, 1], "configuration": ["a", "b", "c"],
                          "planned": ["yes", "no longer", "no longer"]})
    assert long_tier_status(three).endswith("2 more configurations (b, c) were chosen while the base grid was "
                                            "incomplete; the complete grid's front passes them by, but the tier "
                                            "trains every configuration it has started to all its seeds (1 with 3 "
                                            "seeds, 1 with 1 seed).")


def test_base_runs_at_a_rate_that_is_no_longer_their_buckets_are_kept_apart(tmp_path):
    from starmind_lib.analysis.seeds import SUPERSEDED, load_study
    from starmind_lib.provenance import ResultTable
    configs = distinct_configs(grid("full"))
    reps = [c for c in configs if set(c["variant_ids"]) & {n for ns in LR_REPRESENTATIVES.values() for n in ns}]
    rows = _rows(reps, lambda c, lr: 2.0 + abs(math.log(lr / 1e-2)))        # every bucket tunes to 1e-2
    big = next(c for c in configs if "budget300k-vocab-bpe1024" in c["variant_ids"])
    for lr in (1e-2, 2e-2):
        rows.append({"tier": "base", "name": big["name"], "variant_ids": big["variant_ids"], "lr": lr, "bpc": 1.5,
                     "config_hash": big["config_hash"], "unigram_bpc": 4.0, "n_params": big["n_params"],
                     "bucket": "100k"})                                    # the bucket it was trained in
    table = ResultTable(tmp_path / "sweep" / "study_v2", key="run_key")
    for i, r in enumerate(rows):
        table.append({"run_key": f"k{i}", "seed": 0, "tokens_trained": 1, "seq_len": 64,
                      "n_params": r.get("n_params", 1000), **r})
    runs = load_study(tmp_path)
    base = runs[(runs["config_hash"] == big["config_hash"]) & runs["tier"].isin(["base", SUPERSEDED])]
    assert set(base["bucket"]) == {"300k"}
    assert base.set_index("lr")["tier"].to_dict() == {1e-2: "base", 2e-2: SUPERSEDED}


def test_the_context_control_compares_each_control_with_its_model_at_64_tokens():
    """Each control twice: the base grid's 32 sequences per step (rows from before the batch column: derived
    from tokens per step), and the same tokens per step as at 64 tokens (its batch column)."""
    from starmind_lib.chapters.ch04b_study_v2 import (context_control_table, context_control_text, context_finding,
                                                      same_steps)
    runs = _v2_runs({"c": (["width-d32"], [2.00, 2.01, 2.02]), "b": (["vocab-d32-bpe1024"], [1.60, 1.62, 1.61])})
    runs["tokenizer_spec"] = runs["name"].map({"width-d32": "char64", "vocab-d32-bpe1024": "bpe1024"})
    runs["eval_tokens"] = runs["tokenizer_spec"].map({"char64": 616_648 + 700, "bpe1024": 200_000 + 700})
    runs["eval_stories"] = 700
    ctl = _v2_runs({"cx": (["width-d32"], [1.90, 1.91, 1.92]), "bx": (["vocab-d32-bpe1024"], [1.61, 1.60, 1.63])})
    ctl["tier"], ctl["seq_len"] = "context", [204] * 3 + [20] * 3
    runs["best_step"], runs["best_tokens"] = 977, 977 * 32 * 64
    ctl["best_step"] = [307] * 3 + [3125] * 3
    ctl["best_tokens"] = ctl["tokens_trained"] = ctl["best_step"] * 32 * ctl["seq_len"]
    runs["tokens_trained"] = runs["best_tokens"]
    ctl["tokenizer_spec"] = ctl["name"].map({"width-d32": "char64", "vocab-d32-bpe1024": "bpe1024"})
    ctl["name"] = ctl["name"] + "-ctx" + ctl["seq_len"].astype(str)
    steps = ctl[ctl.seq_len == 204].assign(batch_size=10, best_step=981, best_tokens=981 * 10 * 204,
                                           tokens_trained=981 * 10 * 204, bpc=[2.05, 2.06, 2.07])
    t = context_control_table(pd.concat([runs, ctl, steps], ignore_index=True))
    assert list(zip(t["model"], t["sequences per step"], t["optimizer steps"])) == [
        ("vocab-d32-bpe1024-ctx20", "32 / 32", "977 / 3,125"), ("width-d32-ctx204", "32 / 32", "977 / 307"),
        ("width-d32-ctx204", "32 / 10", "977 / 981")]
    assert t["context (characters)"].tolist() == [round(20 * 616_648 / 200_000), 204, 204]
    assert t["difference"].tolist() == pytest.approx([0.003, -0.10, 0.05])
    assert t["verdict"].tolist() == ["no measurable difference", "exceeds seed noise", "exceeds seed noise"]
    assert same_steps(t).tolist() == [False, False, True]
    text = context_control_text(t[~same_steps(t)])
    noise = t.set_index("model").loc["vocab-d32-bpe1024-ctx20", "seed noise ±"]
    assert text == (f"vocab-d32-bpe1024-ctx20 scores 1.613 bpc in 3,125 steps against 1.610 in 977 at 64 tokens "
                    f"(+0.003, within seed noise ±{noise:.3f}); width-d32-ctx204 scores 1.910 bpc in 307 steps "
                    f"against 2.010 in 977 at 64 tokens (-0.100, beyond seed noise ±{t.iloc[1]['seed noise ±']:.3f}).")
    assert context_control_text(pd.DataFrame()) == "The context-control tier has not been trained yet."
    # the same-steps control (width, 981 against 977 steps) moved beyond noise: the finding names it
    assert context_finding(t) == ("With the same optimizer steps, width-d32-ctx204 differs from its model at 64 tokens "
                                  "by +0.050 bpc (beyond seed noise ±%.3f); the character model scores 0.40 bpc worse "
                                  "than the BPE-1024 one at 64 tokens." % t.iloc[2]["seed noise ±"])
    assert context_finding(t.iloc[:2]) == ""                        # no control trained with the same steps
    quiet = t.assign(verdict="no measurable difference", **{"seed noise ±": 0.1})
    assert context_finding(quiet.iloc[[0, 2]].assign(**{"optimizer steps": "977 / 981"})).endswith(
        "(±0.100 at most), while the character model scores 0.40 bpc worse than the BPE-1024 one at 64 tokens: at "
        "this size and budget, the characters of context each sees do not explain that gap.")
    assert context_finding(quiet.iloc[[0, 2]].assign(**{"optimizer steps": "977 / 981", "seed noise ±": 0.5})
                           ).endswith("the controls are too noisy to say how much of it the context explains.")


def test_the_context_tier_trains_each_control_at_the_base_batch_and_at_the_same_tokens_per_step():
    from starmind_lib.training.plan import plan_jobs
    study = StudyConfig.from_params({"grid": "full", "seeds": [0, 1, 2]})
    configs = distinct_configs(grid("full"))
    rows = [{"tier": "lr", "config_hash": c["config_hash"], "variant_ids": c["variant_ids"], "lr": lr, "bpc": 2.0}
            for c in configs if set(c["variant_ids"]) & {n for ns in LR_REPRESENTATIVES.values() for n in ns}
            for lr in study.lr_grid]
    jobs, why = plan_jobs("context", study, configs, rows, {"char64": 1.0, "bpe1024": 3.2})
    assert why == "" and len(jobs) == 2 * 2 * 3
    got = {(j.config["name"], j.batch_size) for j in jobs}
    assert got == {("width-d32-ctx205", 0), ("width-d32-ctx205", 10), ("vocab-d32-bpe1024-ctx20", 0),
                   ("vocab-d32-bpe1024-ctx20", 102)}
    keys = [j.run_key for j in jobs]
    assert len(set(keys)) == len(keys) and sum(k.endswith("-b10") for k in keys) == 3
    assert not any("-b" in j.run_key for j in jobs if j.batch_size == 0)   # the old runs keep their keys


def test_variant_ids_read_the_same_whichever_way_a_table_stored_them():
    """JSON text (jsonl), arrays (parquet), one id, missing: one list; empty falls back to the run's name."""
    assert variant_id_list('["a", "b"]') == variant_id_list(np.array(["a", "b"])) == variant_id_list(("a", "b")) \
        == ["a", "b"]
    assert variant_id_list("a") == ["a"]
    assert variant_id_list(None, "n") == variant_id_list(float("nan"), "n") == variant_id_list("[]", "n") == ["n"]
    assert variant_id_list(None) == []


def test_long_tier_counts_base_runs_only_at_their_buckets_tuned_rate():
    """A configuration's base runs at a rate its bucket no longer uses (before a bucket split) do not drag
    its mean off the front."""
    configs = sorted(distinct_configs(grid("full")), key=lambda c: c["n_params"])
    small = configs[0]
    mid, big = (next(c for c in configs if c["bucket"] == b) for b in ("100k", "300k"))   # one decade
    rows = [{"tier": "base", "config_hash": small["config_hash"], "bpc": 3.0, "unigram_bpc": 4.25, "lr": 0.02},
            {"tier": "base", "config_hash": mid["config_hash"], "bpc": 3.1, "unigram_bpc": 4.25, "lr": 0.02},
            {"tier": "base", "config_hash": big["config_hash"], "bpc": 2.9, "unigram_bpc": 4.25, "lr": 0.01},
            {"tier": "base", "config_hash": big["config_hash"], "bpc": 3.5, "unigram_bpc": 4.25, "lr": 0.02}]
    rates = {small["bucket"]: 0.02, "100k": 0.02, "300k": 0.01}
    assert [c["name"] for c in long_tier_configs(rows, configs, 1, rates=rates)] == [small["name"], big["name"]]
    # counting the old rate too, big's mean is 3.2: off the front, and mid is its decade's best
    assert [c["name"] for c in long_tier_configs(rows, configs, 1)] == [small["name"], mid["name"]]


def test_chapter_seven_scores_the_long_tier_first_and_names_the_variants_left_out(monkeypatch):
    import pandas as pd
    from starmind_lib.analysis import seeds, tables
    v1 = pd.DataFrame([{"variant_id": f"v{i}", "n_params": 1000 * (i + 1), "bpc": 3.0, "unigram_bpc": 4.2}
                       for i in range(10)])
    runs = _v2_runs({f"h{i}": ([f"v{i}"], [2.5, 2.6, 2.7]) for i in range(9)})
    runs = pd.concat([runs, runs[runs.config_hash == "h0"].head(1).assign(tier="long", bpc=2.0)], ignore_index=True)
    monkeypatch.setattr(tables, "load_variants", lambda *a, **k: v1)
    monkeypatch.setattr(seeds, "load_study", lambda *a, **k: runs)
    df, source = seeds.load_study_variants("unused")
    df = df.set_index("variant_id")
    assert df.loc["v0", "bpc"] == 2.0 and df.loc["v0", "study_tier"] == "long" and df.loc["v0", "n_seeds"] == 1
    assert df.loc["v1", "study_tier"] == "base" and df.loc["v1", "bpc"] == pytest.approx(2.6)
    assert "1 configuration from the long tier (2,000,896 tokens, mean of 1 seed); 8 configurations from the base" \
        in source
    assert source.endswith("1 variant Study v2 has not trained yet (v9) is left out")


def test_chapter_4b_plans_the_long_tier_as_the_sweep_does():
    """The long configurations chapter 4b counts as planned are the ones the sweep would train from the
    committed table (the same rows, rates and front rule), not a second reading of the rule."""
    import json
    from starmind_lib.analysis.seeds import load_study
    from starmind_lib.chapters.ch04b_study_v2 import long_tier_plan
    results = Path(__file__).resolve().parents[1] / "data" / "results"
    rows = [json.loads(line) for line in (results / "sweep" / "study_v2.jsonl").read_text().splitlines() if line]
    # the plan from the other tiers' rows (the long rows add configurations started under an earlier plan)
    jobs, waits = plan_jobs("long", StudyConfig(long_seeds=1), distinct_configs(grid("full")),
                            [r for r in rows if r["tier"] != "long"])
    assert waits == "" and len(jobs) >= 20
    assert long_tier_plan(load_study(results)) == {j.config["config_hash"] for j in jobs}


def test_long_curves_draw_one_line_per_run_even_when_two_configurations_share_a_size():
    """heads-d32-h4 and heads-d32-h8 have the same parameter count: grouped by size and seed they were drawn
    as one zigzag line."""
    from starmind_lib.chapters.ch04b_study_v2 import long_curves_chart
    curve = [{"tokens": 1_000_000, "val_bpc": 1.7}, {"tokens": 2_000_000, "val_bpc": 1.6}]
    runs = pd.DataFrame([{"tier": "long", "name": n, "n_params": 26_784, "seed": 0, "run_key": f"{n}-long-s0",
                          "curve": curve} for n in ("heads-d32-h4", "heads-d32-h8")])
    spec = long_curves_chart(runs).to_dict()
    assert spec["encoding"]["detail"]["field"] == "run"
    data = next(iter(spec["datasets"].values()))
    assert sorted({d["run"] for d in data}) == ["heads-d32-h4-long-s0", "heads-d32-h8-long-s0"]


def test_long_curves_axis_spans_the_curves_not_the_decade_below():
    """Vega rounded the log axis down to 100,000 while the first evaluation is near 1 M tokens: a decade of
    empty plot. The domain is the curves' own span, with 1-2-5 ticks inside it."""
    from starmind_lib.chapters.ch04b_study_v2 import long_curves_chart
    curve = [{"tokens": 999_424, "val_bpc": 1.7}, {"tokens": 20_000_768, "val_bpc": 1.2}]
    runs = pd.DataFrame([{"tier": "long", "name": "a", "n_params": 1_000, "seed": 0, "run_key": "a-long-s0",
                          "curve": curve}])
    x = long_curves_chart(runs).to_dict()["encoding"]["x"]
    assert x["scale"]["domain"] == [999_424, 20_000_768] and x["scale"]["nice"] is False
    assert x["axis"]["values"] == [1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000]


def test_a_changed_winner_says_whether_the_new_one_beats_the_old_beyond_seed_noise():
    """Winners that trade places at the tuned rate are often within seed noise of each other: the table
    says which, and the prose counts only those beyond it."""
    from starmind_lib.chapters.ch04b_study_v2 import TUNED_VERDICT, moved_beyond_noise, tuning_moves
    untuned = _v2_runs({"h1": (["heads-d16-h1"], [2.80]), "h2": (["heads-d16-h2"], [2.90])}).assign(
        tier="untuned", lr=3e-3)
    clear = _v2_runs({"h1": (["heads-d16-h1"], [2.50, 2.51, 2.52]), "h2": (["heads-d16-h2"], [2.30, 2.31, 2.32])})
    row = tuning_moves(pd.concat([untuned, clear], ignore_index=True)).set_index("comparison").loc["heads-d16"]
    assert (row["best at 3e-3"], row["best tuned"], row["same winner"]) == ("heads-d16-h1", "heads-d16-h2", "no")
    assert row[TUNED_VERDICT] == "exceeds seed noise (margin 0.2 bpc, seed noise ±0.023)"   # t(4) 2.776 x 0.00816
    noisy = _v2_runs({"h1": (["heads-d16-h1"], [2.30, 2.50, 2.70]), "h2": (["heads-d16-h2"], [2.25, 2.45, 2.65])})
    moves = tuning_moves(pd.concat([untuned, noisy], ignore_index=True))
    assert moves.set_index("comparison").loc["heads-d16", TUNED_VERDICT].startswith("no measurable difference")
    assert moved_beyond_noise(moves) == 0
    assert moved_beyond_noise(tuning_moves(pd.concat([untuned, clear], ignore_index=True))) == 1


def test_a_tier_is_complete_only_when_it_trained_every_run_it_plans():
    from starmind_lib.chapters.ch04b_study_v2 import TIER_LABELS, tier_complete
    prog = pd.DataFrame({"tier": [TIER_LABELS["base"], TIER_LABELS["untuned"]], "runs planned": [465, 155],
                         "runs done": [465, 144], "note": ["complete", ""]})
    assert tier_complete(prog, "base") and not tier_complete(prog, "untuned")
    assert not tier_complete(prog, "long") and not tier_complete(pd.DataFrame(), "base")


def test_the_seed_table_names_a_shared_configuration_by_every_name_the_other_tables_use():
    from starmind_lib.chapters.ch04b_study_v2 import seed_table
    runs = _v2_runs({"a": (["width-d6", "budget1k-depth-l2", "budget1k-heads-h1"], [3.06, 3.07, 3.08]),
                     "b": (["width-d5"], [3.4, 3.5])})
    t = seed_table(runs).set_index("configuration")
    assert t.loc["width-d6", "also named"] == "budget1k-depth-l2, budget1k-heads-h1"
    assert t.loc["width-d5", "also named"] == "–"
    assert t.loc["width-d6", "seeds"] == 3


def test_golden_configurations_are_set_against_the_spread_of_every_configuration_around_the_trend():
    import numpy as np
    import pandas as pd
    from starmind_lib.chapters.ch04_architecture import best_samples_markdown, fit_trend, golden_vs_trend
    n = np.array([100, 1000, 10000, 100000, 1000, 1000, 10000])
    bpc = np.array([4.0, 3.0, 2.0, 1.0, 3.1, 3.1, 2.9])
    df = pd.DataFrame({"variant_id": ["a", "b", "c", "d", "g1", "g1-alias", "g2"], "n_params": n, "bpc": bpc,
                       "config_hash": ["a", "b", "c", "d", "g1", "g1", "g2"], "tokenizer_spec": "char64",
                       "axis": ["x", "x", "x", "x", "golden", "depth", "golden"], "samples": [[]] * 7})
    trend = fit_trend(df)                      # g1 and its alias are one point: 6 configurations
    assert trend["n"] == 6
    g, text = golden_vs_trend(df, trend, {"g2": np.array([2.8, 2.9, 3.0])})
    assert g["variant_id"].tolist() == ["g1 (= g1-alias)", "g2"]
    assert g.set_index("config_hash").loc["g2", "seeds"] == "2.80, 2.90, 3.00"
    one = [0, 1, 2, 3, 4, 6]                   # the alias left out
    sd = float(np.std(bpc[one] - (trend["a"] + trend["b"] * np.log10(n[one])), ddof=1))
    assert text.startswith(f"lie +{g.vs_trend.mean():.2f} bpc from the trend on average, where the 6 character "
                           f"configurations scatter around it with a standard deviation of {sd:.2f}: 1 of 2 lie more "
                           "than that above it (g2 +")
    md = best_samples_markdown(df.assign(n_seeds=3, bpc_source="Study v2"), targets=(1000,),
                               values={"b": np.array([3.0, 3.0, 3.01]), "g1": np.array([3.1, 3.0, 3.2])})
    assert "against the runner-up, g1-alias (3.10): no measurable difference" not in md   # an alias is no rival
    assert md.startswith("**b** (1,000 parameters, 3.00 bpc, mean of 3 seeds, whole split; the best with 667 to "
                         "1,500 parameters; against the runner-up, g1 (3.10): no measurable difference (margin "
                         "0.097 bpc, seed noise ±")
