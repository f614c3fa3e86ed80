"""Chapter 07: loaders, the Pareto front and the recommendations."""
import pandas as pd
import pytest

from starmind_lib.analysis import pareto, tables as an

import synthetic_results as syn


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    v = syn.variants(grid=dict(dim=[8, 16], n_layers=[1, 2], n_heads=[1], ffn_ratio=[1, 4], vocab_size=[256]))
    syn.write_all(root, v, syn.c_runs(v))
    return root


def test_missing_table_names_the_file_and_the_notebook(tmp_path):
    with pytest.raises(an.MissingResult, match=r"chapter 07 needs .*sweep/variants.parquet: run `make study` "
                                                r"or the 04 \(sweep\) notebook"):
        an.load_variants(tmp_path)
    assert an.load_quant(tmp_path, required=False) is None


def test_missing_column_is_named(tmp_path):
    syn.write(tmp_path, "sweep/variants", pd.DataFrame({"variant_id": ["a"], "params": [10]}), "variant_id")
    with pytest.raises(an.MissingResult,
                       match="needs column\\(s\\) 'val_bpc' in .*sweep/variants \\(it has: params, variant_id"):
        an.load_variants(tmp_path)


def test_loaders_map_aliases_and_expand_config_and_extra(results):
    v = an.load_variants(results)
    row = v.set_index("variant_id").loc["v256_d16_l2_h1_f64"]
    assert (row["dim"], row["n_layers"], row["ffn_hidden"], row["ffn_ratio"]) == (16, 2, 64, 4.0)
    runs = an.load_runs(results, "c")
    assert {"variant_id", "kv_cache", "weights_in", "runtime_kind"} <= set(runs.columns)
    assert set(runs["runtime_kind"]) == {"c"}


def test_pareto_mask_golden():
    df = pd.DataFrame({"bpc": [2.0, 1.5, 1.5, 3.0, 1.0], "tokens_per_s": [10, 10, 5, 20, 1]})
    # row 0 is dominated by row 1 (same speed, better bpc); row 2 by row 1 (faster, same bpc).
    assert list(pareto.pareto_mask(df, minimize=["bpc"], maximize=["tokens_per_s"])) == [False, True, False, True, True]
    with pytest.raises(ValueError, match="at least one objective"):
        pareto.pareto_mask(df)


def test_device_points_use_quantised_bpc_when_known(results):
    v, runs = an.load_variants(results), an.load_runs(results, "c")
    quant = pd.DataFrame({"variant_id": ["v256_d8_l1_h1_f8"], "scheme": ["int8_engine"], "val_bpc": [9.9]})
    runs["scheme"] = runs["runtime"].str.replace("c-", "")
    pts = an.device_points(v, runs, quant)
    row = pts[(pts["variant_id"] == "v256_d8_l1_h1_f8") & (pts["scheme"] == "int8")].iloc[0]
    assert row["bpc"] == 9.9 and row["bpc_of"] == "int8 model"
    other = pts[pts["variant_id"] == "v256_d16_l1_h1_f16"].iloc[0]
    assert other["bpc"] == other["val_bpc"] and other["runtime_label"].startswith("c-int8, emulated (cycle-counted)")


def test_quantised_points_add_chapter_fives_cost_to_their_models_float_score(results):
    v, runs = an.load_variants(results), an.load_runs(results, "c")
    quant = pd.DataFrame({"variant_id": ["v256_d8_l1_h1_f8"], "scheme": ["int8_engine"], "val_bpc": [9.9],
                          "bpc_delta": [0.25]})
    runs["scheme"] = runs["runtime"].str.replace("c-", "")
    pts = an.device_points(v, runs, quant)
    row = pts[(pts["variant_id"] == "v256_d8_l1_h1_f8") & (pts["scheme"] == "int8")].iloc[0]
    assert row["bpc"] == pytest.approx(row["val_bpc"] + 0.25)        # never the scheme's bpc of another study
    assert row["bpc_of"] == "int8 model: float score + chapter 5's measured cost (whole split, one seed)"
    # a MicroPython run (its table has no scheme column) runs the same int8 file: the same shifted score
    mp = runs[runs["variant_id"] == "v256_d8_l1_h1_f8"].head(1).drop(columns=["scheme"]).assign(
        runtime_kind="micropython", runtime="micropython-asm")
    got = an.device_points(v, mp, quant).iloc[0]
    assert got["scheme"] == "int8" and got["bpc"] == pytest.approx(row["bpc"]) and got["bpc_of"] == row["bpc_of"]


def test_a_long_tier_score_takes_the_int8_cost_of_its_own_long_run_else_says_it_borrows_the_base_one(results):
    """A 20 M-token model can quantise worse than its 2 M-token run (heads-d16-h4: +0.24 against +0.09 on
    a short check): its int8 point adds the cost measured on the long run when there is one, and says
    where the cost came from when there is not. The audit's median cost stays chapter 05's (base tier)."""
    from starmind_lib.analysis.claims_design import _quant_cost
    v, runs = an.load_variants(results), an.load_runs(results, "c")
    runs["scheme"] = runs["runtime"].str.replace("c-", "")
    a, b = "v256_d8_l1_h1_f8", "v256_d16_l1_h1_f16"
    v = v.assign(study_tier=v["variant_id"].map({a: "long", b: "long"}).fillna("base"),
                 config_hash=v["variant_id"])
    quant = pd.DataFrame({"variant_id": [a, a, b, a, a, b], "scheme": ["int8_engine"] * 3 + ["float32"] * 3,
                          "tier": ["base", "long", "base", "base", "long", "long"],
                          "val_bpc": [3.0, 2.5, 3.1, 2.9, 2.2, 2.3], "bpc_delta": [0.1, 0.3, 0.05, 0.0, 0.0, 0.0],
                          "flash_bytes": [10, 10, 10, 40, 40, 40]})
    pts = an.device_points(v, runs, quant)
    got = pts[pts["scheme"] == "int8"].drop_duplicates("variant_id").set_index("variant_id")
    assert got.loc[a, "bpc"] == pytest.approx(got.loc[a, "val_bpc"] + 0.3)
    assert got.loc[a, "bpc_of"] == ("int8 model: long-tier float score + the cost measured on its long-tier run "
                                    "(whole split, one seed)")
    assert got.loc[b, "bpc"] == pytest.approx(got.loc[b, "val_bpc"] + 0.05)
    # a's long-run cost stands; its base run's cost is the other run's, for comparisons that rest on it
    assert got.loc[a, "cost_other_run"] == pytest.approx(0.1) and pd.isna(got.loc[b, "cost_other_run"])
    assert got.loc[b, "bpc_of"] == ("int8 model: long-tier float score + chapter 5's cost, measured on the "
                                    "base-tier run (its long-tier run is not quantised)")
    from starmind_lib.analysis.quant_costs import quant_cost_sources
    # b's float32 run has its own long-tier row, but its int8 cost is the base run's; the other
    # configurations have no cost at all and say so
    unmeasured = sorted(set(pts.loc[pts["scheme"].eq("int8") & ~pts["variant_id"].isin([a, b]), "variant_id"]))
    assert len(unmeasured) > 1
    assert quant_cost_sources(pts.sort_values("scheme")) == (
        "on their own long-tier run for 1 configuration, on the base-tier run chapter 05 quantised for "
        f"1 configuration ({b}: its score comes from the long tier, whose run chapter 05 could not quantise or has "
        f"not quantised), and on no run yet for {len(unmeasured)} configurations ({', '.join(unmeasured)}: their "
        "int8 points carry the float score)")
    # the median over base-tier configurations of chapter 05's cost (a +0.1, b +0.05), not a's long-tier +0.3
    assert _quant_cost(quant)[0] == pytest.approx(0.075)


def test_run_names_with_a_scheme_suffix_map_to_their_variant():
    v = pd.DataFrame({"variant_id": ["w16_d2"], "val_bpc": [2.0], "params": [100]})
    runs = pd.DataFrame({"variant_id": ["w16_d2-int8"], "status": ["ok"], "tokens_per_s": [3.0],
                         "speed_source": ["cycle_exact_emulation"], "runtime": ["c-int8"]})
    assert list(an.device_points(v, runs)["variant_id"]) == ["w16_d2"]


def test_recommend_picks_lowest_bpc_within_budget():
    pts = pd.DataFrame({"variant_id": ["small", "mid", "big", "mp"], "bpc": [3.0, 2.5, 2.0, 2.8],
                        "tokens_per_s": [30.0, 10.0, 2.0, 5.0], "peak_ram_bytes": [10_240, 40_960, 200_000, 20_000],
                        "runtime_kind": ["c", "c", "c", "micropython"], "speed_source": "cycle_exact_emulation",
                        "text": ["a", "b", "c", "d"]})
    rec = pareto.recommend(pts, [(64, 5.0), (16, 1.0), (512, 100.0)]).set_index(["budget", "runtime_kind"])
    assert rec.loc[("≤ 64 KB RAM, ≥ 5 tok/s", "c"), "variant_id"] == "mid"
    assert rec.loc[("≤ 64 KB RAM, ≥ 5 tok/s", "micropython"), "variant_id"] == "mp"
    assert rec.loc[("≤ 16 KB RAM, ≥ 1 tok/s", "c"), "device_story"] == "a"
    assert rec.loc[("≤ 512 KB RAM, ≥ 100 tok/s", "c"), "note"] == "no model fits this budget"


def test_pareto_chart_builds(results):
    pts = an.device_points(an.load_variants(results), an.load_runs(results, "c"))
    spec = pareto.pareto_chart(pts).to_dict()
    assert spec["layer"][0]["mark"]["type"] == "circle"


def test_predictions_in_the_planner_wide_format_become_one_row_per_runtime(tmp_path):
    wide = pd.DataFrame({"model": ["w8"], "dim": [8], "fits": [False], "heap_needed_bytes": [300_000],
                         "label": ["predicted"], "tokens_per_s_micropython-viper": [12.0],
                         "tokens_per_s_low_micropython-viper": [9.0], "tokens_per_s_high_micropython-viper": [15.0],
                         "tokens_per_s_micropython-python": [0.5]})
    syn.write(tmp_path, "device/planner", wide, "model")
    runs = an.load_runs(tmp_path, "predicted").set_index("runtime")
    assert runs.loc["micropython-viper", "tokens_per_s"] == 12.0
    assert runs.loc["micropython-viper", "tokens_per_s_low"] == 9.0
    assert runs.loc["micropython-python", "tokens_per_s"] == 0.5
    assert set(runs["status"]) == {"does_not_fit"} and set(runs["speed_source"]) == {"predicted"}
    assert set(runs["peak_ram_bytes"]) == {300_000}


def test_sample_text_prefers_a_sampled_story():
    samples = '[{"prompt": "a", "mode": "greedy", "text": "aaa"}, {"prompt": "a", "mode": "T=0.8", "text": "a cat"}]'
    assert an.sample_text(samples) == "a cat"
    assert an.sample_text("plain story", max_chars=5) == "plain"
    assert an.sample_text(None) == "" and an.sample_text(float("nan")) == ""


def test_headline_numbers_without_device_runs_say_na():
    v = pd.DataFrame({"variant_id": ["a", "b"], "val_bpc": [2.5, 2.0], "params": [10, 20]})
    nums = pareto.headline_numbers(v, pd.DataFrame())
    assert nums["n_models"] == "2" and nums["best_bpc"] == "2.000" and nums["front_best_tps"] == "n/a"
    assert pareto.headline_numbers(None, pd.DataFrame())["best_bpc"] == "n/a"
    assert nums["n_configs"] == "n/a"                       # neither a config hash nor the architecture


def test_configurations_are_counted_by_hash_or_from_the_architecture():
    from starmind_lib.training.plan import ARCH_FIELDS
    arch = {"dim": 16, "n_layers": 2, "n_heads": 2, "ffn_hidden": 64, "activation": "gelu", "pos": "learned",
            "tied": True, "tokenizer": "char", "vocab_size": 40}
    assert set(arch) == set(ARCH_FIELDS)
    v1 = pd.DataFrame([{**arch, "variant_id": "a"}, {**arch, "variant_id": "b"}, {**arch, "dim": 32, "variant_id": "c"}])
    assert pareto.distinct_configurations(v1) == 2           # a and b are one configuration trained twice
    v2 = pd.DataFrame({"variant_id": ["a", "b", "c"], "config_hash": ["h1", "h1", "h2"], "val_bpc": [2.0] * 3})
    assert pareto.headline_numbers(v2, pd.DataFrame())["n_configs"] == "2"


def run_notebook(stem, results_dir, tmp_path):
    """Execute a chapter with papermill on the given tables (smoke-style parameters); return its outputs' text."""
    import jupytext
    import papermill as pm
    from starmind_lib.provenance import REPO_ROOT
    nb = jupytext.read(REPO_ROOT / "notebooks" / f"{stem}.py")
    src, out = tmp_path / f"{stem}.ipynb", tmp_path / f"{stem}.out.ipynb"
    jupytext.write(nb, src)
    pm.execute_notebook(str(src), str(out), cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=False,
                        parameters={"results_dir": str(results_dir), "data_source": "synthetic",
                                    "profile": "smoke", "recompute": True})
    import json
    cells = json.loads(out.read_text())["cells"]
    return "\n".join(json.dumps(o) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


def test_chapter_07_runs_on_synthetic_tables(results, tmp_path):
    text = run_notebook("07_analysis", results, tmp_path)
    assert "synthetic stories" in text and "starmind-chart" in text
    assert "C runtime: the best model per budget" in text


def test_runs_of_models_outside_the_sweep_keep_their_own_architecture():
    v = pd.DataFrame({"variant_id": ["w16_d2"], "val_bpc": [2.0], "params": [100], "dim": [16]})
    runs = pd.DataFrame({"model_id": ["w16_d2", "probe_60k"], "status": ["ok", "ok"], "n_params": [100, 51488],
                         "dim": [16, 32], "tokens_per_s_133MHz": [3.0, 150.0],
                         "speed_source": "cycle_exact_emulation", "runtime": "c-int8"})
    runs = an.canonical(runs)
    assert list(an.device_points(v, runs)["variant_id"]) == ["w16_d2"]
    both = an.device_points(v, runs, trained_only=False).set_index("variant_id")
    assert both.loc["probe_60k", "params"] == 51488 and both.loc["probe_60k", "dim"] == 32
    assert both.loc["probe_60k", "tokens_per_s"] == 150.0 and pd.isna(both.loc["probe_60k", "bpc"])
    assert list(both["in_sweep"]) == [True, False]


def test_without_a_planner_table_predictions_come_from_the_planner_on_the_sweep(tmp_path):
    row = {"variant_id": "width-d16", "n_params": 9000, "bpc": 2.5, "dim": 16, "n_layers": 2, "n_heads": 1,
           "ffn_hidden": 64, "vocab_size": 64, "activation": "silu", "pos": "rope", "tied": True,
           "config": {"seq_len": 64}}
    big = {**row, "variant_id": "huge", "dim": 256, "ffn_hidden": 1024, "vocab_size": 4096, "n_params": 2_000_000}
    syn.write(tmp_path, "sweep/variants", pd.DataFrame([row, big]), "variant_id")
    pred = an.load_runs(tmp_path, "predicted")
    assert set(pred["runtime"]) == {"micropython-viper", "micropython-python"}
    assert set(pred["speed_source"]) == {"predicted"} and set(pred["runtime_kind"]) == {"micropython"}
    status = pred.groupby("variant_id")["status"].first()
    assert status["width-d16"] == "ok" and status["huge"] == "does_not_fit"
    viper = pred[pred["runtime"] == "micropython-viper"].set_index("variant_id")["tokens_per_s"]
    assert viper["width-d16"] > viper["huge"] > 0
    loaders = an.loader_predictions(an.load_variants(tmp_path)).set_index(["variant_id", "loader"])
    assert loaders.loc[("width-d16", "chunked"), "status"] == "ok"
    assert loaders.loc[("huge", "whole"), "status"] == "out_of_memory"
    assert loaders.loc[("width-d16", "whole"), "largest_alloc_bytes"] > loaders.loc[("width-d16", "chunked"),
                                                                                    "largest_alloc_bytes"]


def test_device_text_is_decoded_with_the_model_files_vocabulary(tmp_path):
    from starmind_lib.quant.smd import read_smd
    from starmind_lib.provenance import REPO_ROOT
    ref = sorted((REPO_ROOT / "data" / "reference").glob("ref_*.smd"))[0]
    vocab = read_smd(ref).vocab
    pts = pd.DataFrame({"variant_id": [ref.stem, "unknown"], "prompt_ids": ["[1, 2]", "[1]"],
                        "output_ids": [[3, 4], [2]], "text": ["", "kept"]})
    out = an.attach_device_text(pts, tmp_path)
    assert out["text"].iloc[0] == b"".join(vocab[i] for i in (1, 2, 3, 4)).decode("utf-8", "replace")
    assert out["text"].iloc[1] == "kept"
    # a run of untrained weights of the same shape (timed for speed) has no story to show
    stand_in = an.attach_device_text(pts.assign(weights_source=["untrained_same_architecture", "trained"]), tmp_path)
    assert pd.isna(stand_in["text"].iloc[0]) and stand_in["text"].iloc[1] == "kept"


def test_fronts_leave_out_models_no_better_than_unigram_and_near_means_nearest():
    import pandas as pd

    from starmind_lib.analysis.pareto import front_mask
    from starmind_lib.chapters.ch04_architecture import best_in_window, nearest_model
    pts = pd.DataFrame({"bpc": [4.32, 2.5, 1.9], "unigram_bpc": [4.25] * 3, "tokens_per_s": [9000.0, 1500.0, 200.0]})
    assert front_mask(pts, minimize=["bpc"], maximize=["tokens_per_s"]).tolist() == [False, True, True]
    df = pd.DataFrame({"n_params": [76_000, 98_000, 120_000], "bpc": [1.4, 1.6, 1.3]})
    assert int(nearest_model(df, 100_000).n_params) == 98_000         # nearest, not the best in the window
    assert int(best_in_window(df, 100_000).n_params) == 120_000
    assert nearest_model(df, 10_000) is None


def test_characters_per_second_come_from_the_tokenizer_and_a_log_axis_drops_zeros():
    v = pd.DataFrame({"variant_id": ["c", "b"], "val_bpc": [2.0, 1.5], "params": [100, 200],
                      "tokenizer_spec": ["char64", "bpe1024"]})
    # an untrained stand-in's own tokens: zero-byte special tokens only, 0 characters/s
    runs = pd.DataFrame({"variant_id": ["c", "b"], "status": ["ok", "ok"], "tokens_per_s": [100.0, 50.0],
                         "chars_per_s": [0.0, 0.0], "speed_source": ["cycle_exact_emulation"] * 2,
                         "runtime": ["c-int8"] * 2})
    pts = an.device_points(v, runs, chars_per_token={"char64": 1.0, "bpe1024": 3.2}).set_index("variant_id")
    assert pts.loc["c", "chars_per_s"] == 100.0 and pts.loc["b", "chars_per_s"] == pytest.approx(160.0)
    raw = an.device_points(v, runs)
    assert list(raw["chars_per_s"]) == [0.0, 0.0]
    data = pareto.pareto_chart(raw.assign(chars_per_s=[0.0, 80.0]), x="chars_per_s").to_dict()["datasets"]
    assert [row["chars_per_s"] for rows in data.values() for row in rows] == [80.0]


def test_the_cycle_profile_takes_the_model_the_speed_target_is_judged_by():
    from starmind_lib.bench.device_profile import profile_models
    from starmind_lib.bench.device_results import context_speeds, near_target
    rows = []
    for mid, n, tps in [("budget100k-depth-l1", 98_824, 262.0), ("depth-d32-l8", 100_896, 203.0),
                        ("budget10k-ffn_ratio-r1", 9_912, 1700.0), ("width-d8", 8_000, 2500.0)]:
        for weights in ("flash", "sram"):
            rows.append({"model_id": mid, "n_params": n, "scheme": "int8", "weights": weights, "kv_cache": True,
                         "status": "ok", "source": "study", "tokens_per_s_133MHz": tps,
                         "tokens_per_s_full_133MHz": tps if weights == "sram" else None, "prompt_ids": [1]})
    runs = pd.DataFrame(rows)
    picked = [(t, r["model_id"], r["weights"]) for t, r in profile_models(runs)]
    assert picked == [(10_000, "budget10k-ffn_ratio-r1", "flash"), (100_000, "depth-d32-l8", "flash")]
    assert near_target(context_speeds(runs), 100_000)["model"] == "depth-d32-l8"   # not the faster 98,824


def test_a_recommendation_is_tested_against_seed_noise_of_the_tier_its_score_came_from():
    """A long-tier score (one seed) is not tested on the base grid's three seeds; a base score is."""
    from starmind_lib.analysis.seeds import NOT_TESTED, scored_seed_values
    runs = pd.DataFrame({"tier": ["base"] * 6 + ["long"], "config_hash": ["a"] * 3 + ["b"] * 3 + ["a"],
                         "bpc": [2.40, 2.41, 2.42, 2.30, 2.31, 2.32, 2.07]})
    variants = pd.DataFrame({"variant_id": ["va", "vb"], "config_hash": ["a", "b"], "study_tier": ["long", "base"]})
    values = scored_seed_values(runs, variants)
    assert values["a"].tolist() == [2.07] and values["b"].tolist() == [2.30, 2.31, 2.32]
    assert scored_seed_values(runs, variants.drop(columns="study_tier")) == {}      # the v1 table: one seed
    ok = pd.DataFrame({"variant_id": ["va", "vb"], "config_hash": ["a", "b"], "bpc": [2.07, 2.31]})
    assert pareto.vs_runner_up(ok, values)["vs_runner_up"].startswith(NOT_TESTED)
    both_base = scored_seed_values(runs, variants.assign(study_tier="base"))
    base_ok = pd.DataFrame({"variant_id": ["vb", "va"], "config_hash": ["b", "a"], "bpc": [2.31, 2.41]})
    assert pareto.vs_runner_up(base_ok, both_base)["vs_runner_up"].startswith("exceeds seed noise (margin 0.1 bpc")


def test_a_verdict_without_seed_noise_does_not_print_a_noise():
    from starmind_lib.analysis.seeds import compare_values, verdict_text
    one = compare_values([2.0], [1.9, 1.91, 1.92])
    assert verdict_text(one) == "one seed: not tested" and verdict_text(one, 0.05) == "one seed: not tested (margin 0.05 bpc)"
    real = compare_values([2.0, 2.01, 2.02], [1.9, 1.91, 1.92])
    assert verdict_text(real) == f"exceeds seed noise (seed noise ±{real['noise']:.2g} bpc)"
    assert verdict_text(real, 0.1) == f"exceeds seed noise (margin 0.1 bpc, seed noise ±{real['noise']:.2g})"


def test_the_front_s_best_model_says_where_its_weights_were():
    pts = pd.DataFrame({"runtime_kind": ["c", "c"], "bpc": [2.0, 1.5], "tokens_per_s": [100.0, 10.0],
                        "peak_ram_bytes": [1000, 220_000], "params": [10, 20], "weights_in": ["flash", "sram"],
                        "unigram_bpc": [4.2, 4.2]})
    nums = pareto.headline_numbers(pd.DataFrame({"variant_id": ["a"], "val_bpc": [2.0]}), pts)
    assert (nums["front_best_bpc"], nums["front_best_weights"], nums["front_best_ram_kb"]) == \
        ("1.50", "its weights copied to SRAM", "215")
    nums = pareto.headline_numbers(pd.DataFrame({"variant_id": ["a"], "val_bpc": [2.0]}), pts.assign(weights_in="flash"))
    assert nums["front_best_weights"] == "its weights in flash (read through the XIP cache)"


def test_a_front_model_holds_its_place_only_beyond_the_seed_noise_of_the_model_as_fast_and_as_small():
    """a: fastest and smallest; b: slower, clearly better; c: slower and larger than b, better within noise;
    d: beaten by the unigram baseline, never a rival; c's int8 cost counts in its per-seed values."""
    from starmind_lib.analysis.seeds import NO_DIFF, NOT_TESTED, REAL
    pts = pd.DataFrame({"variant_id": ["a", "b", "c", "d", "b2"], "config_hash": ["A", "B", "C", "D", "B"],
                        "bpc": [3.0, 2.5, 2.48, 5.0, 2.5], "val_bpc": [3.0, 2.5, 2.46, 5.0, 2.5],
                        "unigram_bpc": 4.25, "tokens_per_s": [900, 500, 400, 2000, 100],
                        "peak_ram_bytes": [10, 20, 30, 5, 15]})
    values = {"A": [3.00, 3.01, 2.99], "B": [2.50, 2.52, 2.48], "C": [2.46, 2.50, 2.42]}
    axes = {"minimize": ["bpc", "peak_ram_bytes"], "maximize": ["tokens_per_s"]}
    front = pareto.front_mask(pts, **axes)
    assert pts[front]["variant_id"].tolist() == ["a", "b", "c", "b2"]
    edges = pareto.front_edges(pts, front, values, **axes)
    assert edges["verdict"].tolist() == [pareto.ALONE, REAL, NO_DIFF, REAL]   # d is faster and smaller, no model
    assert edges["rival"].tolist() == ["–", "a", "b", "a"]      # b's other placement (same config) is not b2's rival
    assert edges["margin"].iloc[1:].round(3).tolist() == [0.5, 0.02, 0.5]
    assert edges["noise"].iloc[2] > 0.02 and edges["noise"].iloc[1] < 0.5
    assert pareto.front_edges(pts, front, {}, **axes)["verdict"].iloc[2] == NOT_TESTED
    assert pareto.front_edge_summary(edges["verdict"]) == (
        "Of the 4 points on this front, 2 are better than every other model at least as fast and as small by "
        "more than seed noise, 1 is within seed noise of such a model (either would do) and 1 has no other "
        "model as fast and as small.")


def test_a_prediction_never_stands_beside_a_run_of_the_same_model():
    pred = pd.DataFrame({"variant_id": ["a", "a", "b", "c"], "runtime": ["micropython-viper", "micropython-python"] * 2,
                         "speed_source": "predicted", "status": "ok", "tokens_per_s": [5.0, 0.3, 9.0, 1.0]})
    mp = pd.DataFrame({"variant_id": ["a-int8", "b", "c"], "status": ["ok", "out_of_memory", "ok"],
                       "speed_source": ["emulated_stock_firmware", "emulated_stock_firmware",
                                        "host_timing_not_representative"]})
    kept = an.unrun_predictions(pred, mp)
    # a ran (under its file's name), b ran out of memory: neither keeps a prediction; the virtual board's
    # host timing of c is not a run on a Pico, so c keeps its prediction
    assert kept["variant_id"].tolist() == ["c"]
    assert an.unrun_predictions(pred, None) is pred
    assert an.speed_kind("emulated_stock_firmware") == "stock firmware, emulated (cycle-counted)"
    assert an.speed_kind(float("nan")) == ""


def test_a_recommendations_interval_moves_with_its_int8_cost():
    pts = pd.DataFrame({"variant_id": ["a", "b"], "bpc": [1.10, 1.50], "val_bpc": [1.00, 1.50],
                        "bpc_ci_low": [0.98, 1.45], "bpc_ci_high": [1.02, 1.55], "tokens_per_s": [10.0, 10.0],
                        "peak_ram_bytes": [1000, 1000], "runtime_kind": "c"})
    rec = pareto.recommend(pts, [(64, 1.0)]).iloc[0]
    assert rec["variant_id"] == "a"
    assert (round(rec["bpc_ci_low"], 6), round(rec["bpc_ci_high"], 6)) == (1.08, 1.12)


def test_a_configuration_that_axes_share_is_one_point_named_by_all_its_names():
    pts = pd.DataFrame({"variant_id": ["w6", "d2", "d2", "w5"], "config_hash": ["h", "h", "h", "g"],
                        "runtime": ["c-int8", "c-int8", "c-float32", "c-int8"], "tokens_per_s": [5.0, 5.0, 2.0, 9.0]})
    one = pareto.one_per_configuration(pts, pareto.RUN_FIELDS)
    # w6's int8 run stands for both names; only d2 ran float32, so that run stays, under the same label
    assert one[["variant_id", "runtime", "names"]].values.tolist() == [
        ["w6", "c-int8", "w6 (= d2)"], ["d2", "c-float32", "w6 (= d2)"], ["w5", "c-int8", "w5"]]
    assert len(pareto.one_per_configuration(pts)) == 2


def test_a_speed_target_met_by_less_than_the_emulators_optimism_says_a_pico_may_miss_it():
    from starmind_lib.bench.device_results import target_verdict
    assert target_verdict(227.6, 220.0) == ("met in emulation by 3.5 % only, less than the emulator's 3-8 % "
                                            "optimism on MicroPython benchmarks: a real Pico may miss it")
    assert target_verdict(1639.0, 1500.0) == "met"
    assert target_verdict(219.0, 220.0) == "missed"
    assert target_verdict(float("nan"), 220.0) == "no figure to judge"


def test_a_recommendation_says_when_the_other_runs_int8_cost_reverses_the_order():
    pts = pd.DataFrame({"variant_id": ["a", "b"], "config_hash": ["a", "b"], "bpc": [2.09, 2.21],
                        "val_bpc": [2.07, 1.97], "cost_other_run": [float("nan"), 0.088],
                        "tokens_per_s": [10.0, 10.0], "peak_ram_bytes": [1000, 1000], "runtime_kind": "c"})
    rec = pareto.recommend(pts, [(64, 1.0)]).iloc[0]
    assert rec["vs_runner_up"] == ("one seed: not tested (margin 0.12 bpc); but the order flips with the int8 cost "
                                   "measured on the other quantised run: b's (+0.088)")
    steady = pareto.recommend(pts.assign(cost_other_run=[float("nan"), 0.2]), [(64, 1.0)]).iloc[0]
    assert "flips" not in steady["vs_runner_up"]


def test_micropython_ram_is_all_sram_but_the_heap_left_free_after_loading(tmp_path):
    from starmind_lib.provenance import ResultTable
    t = ResultTable(tmp_path / "device" / "micropython_runs", key="key")
    t.append({"key": "k", "variant_id": "m", "status": "ok", "tokens_per_s": 5.0, "model_heap_bytes": 15_248,
              "heap_free_after_load": 196_128, "speed_source": "emulated_stock_firmware"})
    t.snapshot()
    runs = an.load_runs(tmp_path, "micropython")
    assert runs["peak_ram_bytes"].tolist() == [270_336 - 196_128]     # not the model's 15,248 bytes alone


def test_chapter_six_s_best_near_is_the_nearest_study_model_and_its_fastest_run():
    from starmind_lib.bench.device_results import best_near
    runs = pd.DataFrame({"model_id": ["far", "near-slow", "near-fast", "crafted", "close-ish"],
                         "n_params": [20_000, 10_100, 10_100, 10_000, 9_000],
                         "source": ["study", "study", "study", "crafted", "reference"],
                         "tokens_per_s_133MHz": [900.0, 100.0, 200.0, 5000.0, 300.0]})
    r = best_near(runs, 10_000)
    assert (r["model_id"], r["tokens_per_s_133MHz"]) == ("near-fast", 200.0)   # nearest count, then the faster
    assert best_near(runs, 1_000) is None                                      # nothing within 0.75x-1.33x
    assert best_near(runs[runs["model_id"].isin(["far", "crafted"])], 10_000) is None   # crafted: no study model


def test_chapter_six_isolated_speedups_and_speed_hierarchy_follow_a_known_table():
    from starmind_lib.bench.device_results import isolated_glue_name, isolated_speedups, speed_hierarchy
    runs = pd.DataFrame({
        "model_id": ["a", "a", "a", "b", "b", "c", "d"], "n_params": [10, 10, 10, 20, 20, 30, 40],
        "scheme": ["int8", "int8", "float32", "int8", "int8", "int8", "int8"],
        "weights": ["flash", "flash", "sram", "flash", "sram", "flash", "flash"],
        "kv_cache": [True, False, True, True, True, True, True],
        "tokens_per_s_133MHz": [100.0, 25.0, 50.0, 40.0, 60.0, 80.0, 20.0],
        "source": ["study"] * 7, "budget": [1.0] * 7, "axis": ["x", "x", "x", "y", "y", "x", "y"],
        "group": ["g1", "g1", "g1", "g2", "g2", "g1", "g2"]})
    iso = isolated_speedups(runs)
    assert sorted(zip(iso["model_id"], iso["setting"], iso["speedup"])) == [
        ("a", "KV cache off", 0.25), ("a", "float32, SRAM", 0.5), ("b", "int8, SRAM", 1.5)]
    assert isolated_glue_name("float32, SRAM") == "iso_float32_sram"
    hier = speed_hierarchy(runs[runs["kv_cache"] & (runs["scheme"] == "int8") & (runs["weights"] == "flash")],
                           {"x": "budget: width"})
    # g1 (axis x): a 100 and c 80 -> 1.25; g2 (axis y): b 40 and d 20 -> 2.0
    assert list(zip(hier["axis"], hier["median fastest/slowest"], hier["groups"])) == [("y", 2.0, 1), ("width", 1.25, 1)]
