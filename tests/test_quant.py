"""Quantisation: fixed-point constants, calibration, the int8 engine's quality margin, the chapter-05 stage."""
import math

import numpy as np
import pytest
import torch

from starmind_lib.quant import intengine as ie, reference, schemes as quant, smd as export, stage
from starmind_lib.config import ConfigError
from starmind_lib.model import ModelConfig, Transformer, save_checkpoint
from starmind_lib.training.evaluation import StoryEval

ALPHA = reference.REFERENCE_ALPHABET


def decode(ids):
    return "".join(ALPHA[int(i)] for i in ids)


@pytest.fixture(scope="module")
def trained():
    """A ~10K-parameter rope/silu char model trained for a few seconds on synthetic sentences."""
    torch.set_num_threads(1)
    params, steps = reference.REFERENCE_MODELS["ref_rope_silu"]
    model, ids = reference.train_reference_model(params, steps)
    T = model.cfg.max_seq_len
    stories = [reference._encode_ref(reference.reference_text(6, seed=100 + i)) for i in range(40)]
    eval_set = StoryEval.build(stories, [len(s) for s in stories], 27, T)   # a char model: 1 token, 1 character
    calib = [ids[i * T:(i + 1) * T] for i in range(16)]
    return model, eval_set, calib


def test_requant_params_approximate_the_factor():
    f = np.array([1e-6, 3.3e-4, 0.01, 0.5, 1.0, 1.9])
    mq = quant.requant_params(f)
    assert ((mq[:, 0] <= 65535) & (mq[:, 1] >= 0) & (mq[:, 1] <= 30)).all()
    approx = mq[:, 0] / 2.0 ** (15 + mq[:, 1])
    assert np.allclose(approx[2:], f[2:], rtol=2e-5)      # 16 significant bits where the shift allows
    with pytest.raises(ValueError, match=r"out of \[0, 2\)"):
        quant.requant_params([2.5])
    ms = quant.mulshift_params([3.0, 250.0, 0.001])
    assert np.allclose(ms[:, 0] / 2.0 ** ms[:, 1], [3.0, 250.0, 0.001], rtol=1e-4)


def test_requant_integer_result_matches_real_product():
    rng = np.random.default_rng(0)
    f = rng.uniform(1e-4, 1.9, 200)
    mq = quant.requant_params(f)
    acc = rng.integers(-(1 << 28), 1 << 28, 200)
    got = ie.requant(acc, mq[:, 0], mq[:, 1])
    assert np.all(np.abs(got - acc * f) <= np.abs(acc * f) * 2e-5 + 1)


def test_float_reference_matches_torch(trained):
    model, eval_set, _ = trained
    w = eval_set.inputs[0]
    ours = quant.float_forward(quant.numpy_weights(model), model.cfg, w)
    with torch.no_grad():
        ref = model(torch.from_numpy(w[None]))[0][0].double().numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_calibration_records_every_quantisation_point(trained):
    model, _, calib = trained
    tr = quant.calibrate(model, calib)
    for i in range(model.cfg.n_layers):
        for k in ("attn_in", "q", "k", "v", "ffn_in", "h", "g"):
            assert tr.maxabs[f"layers.{i}.{k}"] > 0
    assert tr.maxabs["res"] > 0 and tr.maxabs["final"] > 0


def test_int8_engine_quality_margin_and_greedy_agreement(trained):
    """int8 per-row weights stay within 0.02 bpc of float32; the integer engine within 0.03 and agrees on >= 95%."""
    model, eval_set, calib = trained
    rows = {r["scheme"]: r for r in quant.evaluate_schemes(model, eval_set, calib)}
    assert rows["float32"]["bpc"] < 1.5  # the model learned something (a uniform guess is 5 bits)
    assert abs(rows["float16"]["bpc_delta"]) < 0.002
    assert abs(rows["int8_row"]["bpc_delta"]) < 0.02
    assert abs(rows["int8_engine"]["bpc_delta"]) < 0.03
    assert rows["int8_engine"]["greedy_agreement"] >= 0.95
    assert rows["int4_group32"]["bpc_delta"] > rows["int8_row"]["bpc_delta"]  # fewer bits cost more
    sizes = [rows[s]["bytes"] for s in ("float32", "float16", "int8_row", "int4_group32")]
    assert sizes == sorted(sizes, reverse=True)
    assert all(r["error"] == "" for r in rows.values())


def test_scheme_bytes_formulas():
    m = Transformer(ModelConfig(vocab_size=32, dim=8, n_layers=1, n_heads=1, ffn_hidden=16, pos="none"))
    n_mat = 32 * 8 + 4 * 64 + 2 * 128
    n_vec = 3 * 8
    assert quant.scheme_bytes(m, "float32") == 4 * (n_mat + n_vec)
    assert quant.scheme_bytes(m, "int8_row") == n_mat + 4 * (32 + 4 * 8 + 16 + 8) + 4 * n_vec
    assert quant.scheme_bytes(m, "int4_group32") == n_mat // 2 + 2 * (32 + 32 + 16 + 8) + 4 * n_vec
    assert quant.scheme_bytes(m, "int4_group4") == n_mat // 2 + 2 * (64 + 64 + 32 + 32) + 4 * n_vec


def test_quantized_copy_changes_only_matrices():
    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=32, dim=8, n_layers=1, n_heads=1, ffn_hidden=16))
    q = quant.quantized_copy(m, "int4_group32")
    w, wq = m.layers[0].attn.wq.weight, q.layers[0].attn.wq.weight
    assert not torch.equal(w, wq) and (w - wq).abs().max() < w.abs().max() / 7
    assert torch.equal(m.final_norm.weight, q.final_norm.weight)
    with pytest.raises(ValueError, match="unknown quantisation scheme 'int3'"):
        quant.quantized_copy(m, "int3")


def test_quant_config_rejects_unknown_scheme():
    with pytest.raises(ConfigError, match="schemes"):
        stage.QuantConfig.from_params({"schemes": ["int8_row", "int2"]})
    with pytest.raises(ConfigError, match="eval_tokens"):
        stage.QuantConfig.from_params({"eval_tokens": 3})
    with pytest.raises(ConfigError, match="int4_group1"):
        stage.QuantConfig.from_params({"schemes": ["int4_group1"]})
    assert stage.QuantConfig.from_params({"schemes": ["int4_group16"]}).schemes == ("int4_group16",)


def test_engine_limits_are_enforced():
    m = Transformer(ModelConfig(vocab_size=32, dim=8, n_layers=1, n_heads=1, ffn_hidden=40000))
    with pytest.raises(ValueError, match="int8 scheme's limits"):
        quant.to_int8_engine(m, quant.Trace())


def _fake_study(tmp_path, model):
    """Study v2's outputs for one run: prepared data with story tables, a checkpoint, a study_v2 row."""
    from starmind_lib.training import study, sweep
    data_dir = tmp_path / "runs" / "study_data"
    texts = {split: [reference.reference_text(5, seed=s) for s in seeds]
             for split, seeds in (("train", range(60)), ("val", range(100, 130)))}
    eos = 27                                       # an id the sentences never use: it ends every story
    ids = {k: np.concatenate([np.append(reference._encode_ref(t), eos) for t in v]) for k, v in texts.items()}
    sweep.write_prepared(data_dir / "char32", ids["train"], ids["val"], [c.encode().hex() for c in ALPHA],
                         prompts={}, spec="char32", name="char-32", unigram_bpc=4.0, fingerprint="x",
                         is_synthetic=True, source_label="synthetic", lowercase=True, eos_id=eos,
                         train_story_chars=[len(t) for t in texts["train"]],
                         val_story_chars=[len(t) for t in texts["val"]])
    save_checkpoint(model, tmp_path / "runs" / "study_v2" / "r1" / "model.safetensors")
    row = {"run_key": "r1", "config_hash": "c1", "name": "v1", "variant_ids": ["v1", "v1b"], "tier": "long",
           "seed": 0, "lr": 0.01, "n_params": 1000, "tokenizer_spec": "char32", "bpc": 1.0, "bucket": "1k",
           "tokens_trained": 1000, "seq_len": model.cfg.max_seq_len, "dim": model.cfg.dim,
           "n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads, "ffn_hidden": model.cfg.ffn_hidden,
           "activation": model.cfg.activation, "pos": model.cfg.pos, "tied": model.cfg.tied,
           "data_fingerprint": "x", "checkpoint": "study_v2/r1/model.safetensors"}
    study.results_table(tmp_path / "results").append(row)
    study.results_table(tmp_path / "results").append({**row, "run_key": "r2", "checkpoint": "study_v2/r2/gone"})
    return data_dir


def test_stage_writes_resumable_table_on_whole_stories(tmp_path, trained, capsys):
    model = trained[0]
    data_dir = _fake_study(tmp_path, model)
    cfg = stage.QuantConfig.from_params({"schemes": ["int8_row", "int8_engine"], "calib_windows": 4,
                                         "study_data_dir": str(data_dir), "tier": "long"})
    df = stage.run_quant(cfg, tmp_path / "results", tmp_path / "runs", profile="test", progress=False)
    # the run whose checkpoint is gone is an error line naming it, without rows (a later run retries it)
    assert "quant: r2 (v1): checkpoint" in capsys.readouterr().err
    assert sorted(df["key"]) == ["r1/int8_engine", "r1/int8_row"]
    ok = df
    assert (ok["error"] == "").all() and ok["is_synthetic"].all()
    # every validation story, whole: 30 stories and all their characters
    assert set(ok["eval_stories"]) == {30} and set(ok["eval_chars"]) == {
        sum(len(reference.reference_text(5, seed=s)) for s in range(100, 130))}
    assert ((ok["bpc_ci_low"] < ok["bpc"]) & (ok["bpc"] < ok["bpc_ci_high"])).all()
    assert ((ok["bpc_delta_ci_low"] <= ok["bpc_delta"]) & (ok["bpc_delta"] <= ok["bpc_delta_ci_high"])).all()
    assert (tmp_path / "results" / "quant" / "quant.parquet").exists()
    smd = tmp_path / "runs" / "smd"
    assert (smd / "v1.smd").read_bytes() == (smd / "v1b.smd").read_bytes()   # one file per variant id
    eng = ie.IntEngine(export.read_smd(smd / "v1.smd"))
    assert len(eng.generate([1, 2], 5)) == 5
    before = (tmp_path / "results" / "quant" / "quant.jsonl").read_text()
    cfg2 = cfg.replace(schemes=("int8_row", "int8_engine", "float16"))
    df2 = stage.run_quant(cfg2, tmp_path / "results", tmp_path / "runs", progress=False)
    after = (tmp_path / "results" / "quant" / "quant.jsonl").read_text()
    assert after.startswith(before) and len(df2) == 3  # finished rows kept, only the new scheme ran
    assert math.isclose(stage.read_quant(tmp_path / "results")["bpc"].min(), df2["bpc"].min())


def test_stage_without_study_runs_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Study v2 runs .*run chapter 04b first"):
        stage.run_quant(stage.QuantConfig(), tmp_path / "results", tmp_path / "runs", progress=False)


def test_chapter_five_sentences_follow_the_table():
    import pandas as pd
    from starmind_lib.chapters.ch05_quantisation import scheme_summary, size_trend_text
    df = pd.DataFrame({"scheme": ["int4_group32"] * 4 + ["float16"] * 4, "run_key": list("abcd") * 2,
                       "n_params": [100, 1000, 10000, 100000] * 2,
                       "bpc_delta": [0.4, 0.3, 0.2, 0.1, 1e-4, 0.0, 2e-4, -1e-5],
                       "bpc_delta_ci_low": [0.3, 0.2, 0.1, 0.05, 5e-5, -1e-5, 1e-4, -2e-5],
                       "bpc_delta_ci_high": [0.5, 0.4, 0.3, 0.2, 2e-4, 1e-5, 3e-4, -1e-6], "bytes": [10] * 8})
    assert size_trend_text(df, "int4_group32") == ("falls as models grow (rank correlation -1.00 between cost "
                                                   "and parameters over 4 models)")
    flat = df.assign(bpc_delta=[0.4, 0.3, 0.2, 0.1, 1e-4, 3e-4, 0.0, 2e-4])     # float16 ranks 2 4 1 3
    assert size_trend_text(flat, "float16").startswith("shows no clear trend with model size (rank correlation +0.00")
    assert size_trend_text(df.head(2), "int4_group32") == "cannot be related to size yet (2 models)"
    s = scheme_summary(df, ["float32", "float16", "int4_group32"]).set_index("scheme")
    assert list(s.index) == ["float16", "int4_group32"]                 # absent schemes left out, order kept
    assert (s.loc["float16", "cost measurable"], s.loc["int4_group32", "cost measurable"]) == (3, 4)
    assert (s.loc["float16", "measurably worse"], s.loc["float16", "measurably better"]) == (2, 1)
    assert s.loc["int4_group32", "worst cost"] == 0.4 and s.loc["float16", "models"] == 4


def test_chapter_five_keeps_the_planned_runs_only():
    import pandas as pd
    from starmind_lib.chapters.ch05_quantisation import selected_rows
    df = pd.DataFrame({"run_key": ["a", "b", "old"], "scheme": ["float32"] * 3})
    assert list(selected_rows(df, [{"run_key": "a"}, {"run_key": "b"}])["run_key"]) == ["a", "b"]
    with pytest.raises(ValueError, match="no row for the 1 planned run: run chapter 05 with recompute=true"):
        selected_rows(pd.DataFrame({"key": ["v1/float32"]}), [{"run_key": "a"}])


def test_a_configuration_whose_seed_zero_checkpoint_is_lost_falls_back_to_a_kept_seed(tmp_path):
    """One run per configuration: seed 0 where it is kept or quantised, else the first fallback seed that is
    (a checkpoint under runs_dir, or a row of the committed table on a machine without checkpoints)."""
    import pandas as pd
    from starmind_lib.chapters.ch05_quantisation import coverage_text, what_models
    from starmind_lib.training import study
    runs = tmp_path / "runs"
    table = study.results_table(tmp_path / "results")
    for c, seed, kept in [("c1", 0, True), ("c2", 0, False), ("c2", 1, True), ("c3", 0, False), ("c3", 1, False),
                          ("c3", 2, False), ("c4", 0, False)]:
        ckpt = f"study_v2/{c}-s{seed}/model.safetensors"
        if kept:
            (runs / ckpt).parent.mkdir(parents=True)
            (runs / ckpt).write_bytes(b"x")
        table.append({"run_key": f"{c}-s{seed}", "config_hash": c, "name": c, "tier": "long", "seed": seed,
                      "lr": 0.01, "n_params": int(c[1]), "bpc": 2.0, "tokens_trained": 100, "checkpoint": ckpt})
    stage.results_table(tmp_path / "results").append({"key": "c3-s2/float32", "run_key": "c3-s2"})
    cfg = stage.QuantConfig.from_params({"tier": "long", "fallback_seeds": [1, 2]})
    picked = [r["run_key"] for r in stage.select_runs(cfg, tmp_path / "results", runs)]
    assert picked == ["c1-s0", "c2-s1", "c3-s2", "c4-s0"]
    # without checkpoints only the committed table decides
    assert [r["run_key"] for r in stage.select_runs(cfg, tmp_path / "results")] == ["c1-s0", "c2-s0", "c3-s2",
                                                                                    "c4-s0"]
    # no fallback seeds: seed 0 of every configuration, kept or not
    plain = stage.QuantConfig.from_params({"tier": "long"})
    assert [r["run_key"] for r in stage.select_runs(plain, tmp_path / "results", runs)] == [
        "c1-s0", "c2-s0", "c3-s0", "c4-s0"]
    planned = stage.select_runs(cfg, tmp_path / "results", runs)
    done = pd.DataFrame([r for r in planned if r["run_key"] != "c4-s0"])
    assert coverage_text(done, planned, cfg) == (
        "3 of the 4 runs it plans are quantised (Study v2's long tier; it plans seed-0 runs; seed 1 for 1 "
        "configuration, seed 2 for 1 configuration whose seed-0 checkpoint was not kept); 1 other run is not quantised yet")
    assert what_models(done, cfg) == (
        "the long tier's runs at the tuned learning rate of each size bucket (3 configurations, 100 tokens each; "
        "seed-0 runs; seed 1 for 1 configuration, seed 2 for 1 configuration whose seed-0 checkpoint was not kept)")


def test_chapter_five_sets_each_long_runs_engine_cost_beside_its_base_runs():
    """Only configurations quantised in both tiers are compared; errors and other schemes are not."""
    import pandas as pd
    from starmind_lib.chapters.ch05_quantisation import long_cost_words, long_tier_costs
    def row(h, tier, seed, delta, scheme="int8_engine", error=""):
        return {"config_hash": h, "name": f"cfg-{h}", "tier": tier, "seed": seed, "scheme": scheme, "error": error,
                "bpc_delta": delta, "bpc_delta_ci_low": delta - 0.001, "bpc_delta_ci_high": delta + 0.001,
                "n_params": {"a": 1000, "b": 5000, "c": 9000}[h], "n_heads": 2 if h == "b" else 1,
                "tokenizer_spec": "char64"}
    table = pd.DataFrame([row("a", "base", 0, 0.01), row("a", "long", 1, 0.04), row("b", "base", 0, 0.03),
                          row("b", "long", 1, 0.2), row("c", "long", 0, 0.5), row("b", "long", 1, 0.9, "float16"),
                          row("c", "base", 0, 0.0, error="checkpoint missing")])
    lt = long_tier_costs(table)
    assert list(lt["configuration"]) == ["cfg-a", "cfg-b"]
    assert lt["ratio"].round(6).tolist() == [4.0, round(0.2 / 0.03, 6)]
    assert list(lt["95 % interval (20 M)"]) == ["0.039–0.041", "0.199–0.201"]
    assert list(lt["seed of each run (2 M / 20 M)"]) == ["0 / 1", "0 / 1"]
    words = long_cost_words(lt)
    assert (words["lt_n"], words["lt_n_larger"], words["lt_ratio_min"], words["lt_ratio_max"]) == (
        "2 configurations", "2 of 2", "4", "6.7")
    assert words["lt_worst"] == ("cfg-b (2 heads, char64: +0.200 bpc against +0.030) and "
                                 "cfg-a (1 head, char64: +0.040 bpc against +0.010)")
    assert words["lt_exceptions"] == "; it is never smaller"
    shrunk = long_cost_words(long_tier_costs(pd.concat([table, pd.DataFrame([row("c", "base", 0, 0.6)])])))
    assert (shrunk["lt_n_larger"], shrunk["lt_exceptions"]) == ("2 of 3", "; not larger for cfg-c (+0.500 against +0.600)")
    assert long_tier_costs(table.drop(columns=["tier"])).empty


def test_chapter_five_names_the_runs_the_engine_could_not_quantise():
    import pandas as pd
    from starmind_lib.chapters.ch05_quantisation import failed_runs_text
    table = pd.DataFrame({"name": ["w4", "w4", "w8", "w2"], "tier": ["long", "long", "long", "base"],
                          "scheme": ["int8_engine", "float32", "int8_engine", "int8_engine"],
                          "run_key": ["k4", "k4", "k8", "k2"], "seed": [1, 1, 0, 0],
                          "error": ["ValueError: requant factor out of [0, 2): max 6.512", "", None, "boom"]})
    assert failed_runs_text(table, "long") == (
        " The engine could not quantise 1 long-tier run: w4 (seed 1: a requantisation factor of 6.5, outside the "
        "format's range of 0 to 2). Its constants must fit the format's fixed-point range, and this trained model's do not. "
        "Chapter 07 gives such a configuration its base-tier cost and says so.")
    assert failed_runs_text(table, "base") == " The engine could not quantise 1 base-tier run: w2 (seed 0: “boom”)."
    assert failed_runs_text(table[table["name"] != "w4"], "long") == ""
    assert failed_runs_text(table.drop(columns=["error"]), "long") == ""


def test_residual_scale_reproduces_chapter_five_at_the_shipped_headroom_and_resumes(tmp_path, trained, capsys):
    """The trace re-quantises chapter 05's worst runs at other residual ranges: at the shipped headroom it is
    chapter 05's cost exactly (the same calibration, constants and evaluation); a rerun adds no row."""
    from starmind_lib.quant import residual_scale as rs
    model = trained[0]
    data_dir = _fake_study(tmp_path, model)
    cfg = stage.QuantConfig.from_params({"schemes": ["int8_engine"], "calib_windows": 4,
                                         "study_data_dir": str(data_dir), "tier": "long"})
    q = stage.run_quant(cfg, tmp_path / "results", tmp_path / "runs", progress=False)
    capsys.readouterr()
    rcfg = rs.ResidualScaleConfig.from_params({"headrooms": [2.0, 0.5], "worst": 1, "controls": 0,
                                               "calib_windows": 4, "study_data_dir": str(data_dir), "tier": "long"})
    df = rs.run_residual_scale(rcfg, tmp_path / "results", tmp_path / "runs", profile="test")
    assert sorted(df["key"]) == ["r1/0.5", "r1/2"] and set(df["role"]) == {"worst"}
    eng = q[q["scheme"] == "int8_engine"].iloc[0]
    at2 = df[df["headroom"] == 2.0].iloc[0]
    assert at2["bpc_delta"] == eng["bpc_delta"] and at2["greedy_agreement"] == eng["greedy_agreement"]
    assert at2["shipped_bpc_delta"] == eng["bpc_delta"] and at2["shipped_headroom"] == quant.RES_HEADROOM
    assert df[df["headroom"] == 0.5].iloc[0]["bpc"] != at2["bpc"]      # another residual scale, another model
    # a smaller headroom: a finer residual step, so an embedding row takes more steps (here 4x, no bound binds)
    assert at2["embed_steps_median"] == at2["shipped_embed_steps_median"]
    assert df[df["headroom"] == 0.5].iloc[0]["embed_steps_median"] == pytest.approx(4 * at2["embed_steps_median"],
                                                                                     rel=1e-3)
    assert list(df["effective_headroom"]) == pytest.approx(list(df["headroom"]), rel=1e-3)   # no bound binds here
    # the chapter reads the rows of its trace, wherever the data was read from
    assert len(rs.read_residual_scale(tmp_path / "results", rcfg.replace(study_data_dir=""))) == 2
    assert rs.read_residual_scale(tmp_path / "results", rcfg.replace(worst=2)).empty
    journal = tmp_path / "results" / "quant" / "residual_scale.jsonl"
    before = journal.read_bytes()
    rs.run_residual_scale(rcfg, tmp_path / "results", tmp_path / "runs")
    assert journal.read_bytes() == before and len(before.splitlines()) == 2


def test_residual_scale_rejects_bad_headrooms_and_picks_worst_then_median():
    import pandas as pd

    from starmind_lib.quant import residual_scale as rs
    with pytest.raises(ConfigError, match=r"parameter 'headrooms': want values in \(0, 16\], got \[0.0\]"):
        rs.ResidualScaleConfig.from_params({"headrooms": [0]})
    with pytest.raises(ValueError, match=r"res_headroom 0: want 0 < res_headroom <= 16"):
        quant.to_int8_engine(None, quant.Trace(), res_headroom=0)
    q = pd.DataFrame({"run_key": list("abcdefg"), "scheme": "int8_engine", "error": ["", "", "", "", "", "x", ""],
                      "bpc_delta": [0.9, 0.01, 0.02, 0.03, 0.5, 5.0, 7.0], "variant_id": list("ABCDEFG"),
                      "tier": ["base"] * 6 + ["long"]})       # g: another tier's run, not chapter 05's
    picks = rs.pick_runs(q, rs.ResidualScaleConfig(worst=2, controls=2))
    # the median of the five without an error is d's 0.03: d, then c (0.01 from it)
    assert [(p["run_key"], p["role"]) for p in picks] == [("a", "worst"), ("e", "worst"), ("d", "control"),
                                                          ("c", "control")]
    # the controls come from runs whose checkpoint is kept; the worst are the worst whatever is kept
    kept = rs.pick_runs(q, rs.ResidualScaleConfig(worst=2, controls=1), usable={"b"})
    assert [p["run_key"] for p in kept] == ["a", "e", "b"]


def test_chapter_five_words_of_the_residual_scale_trace_follow_a_known_table():
    import pandas as pd

    from starmind_lib.chapters.ch05_quantisation import residual_scale_table, residual_scale_words
    rows = []
    for rk, role, shipped, res in (("a", "worst", 0.8, 300.0), ("b", "worst", 0.4, 200.0), ("c", "control", 0.007, 20.0)):
        for h, d in ((1.0, shipped / 2), (0.5, shipped / 20 if role == "worst" else 0.008)):
            rows.append(dict(run_key=rk, role=role, variant_id=rk.upper(), n_params=1000, dim=8, n_layers=1,
                             n_heads=2, res_maxabs=res, shipped_headroom=2.0, shipped_bpc_delta=shipped,
                             shipped_agreement=0.6, headroom=h, bpc_delta=d, greedy_agreement=0.9,
                             shipped_embed_steps_median=30.0, embed_steps_median=60.0 / h))
    rs = pd.DataFrame(rows).assign(effective_headroom=lambda d: d["headroom"])
    t = residual_scale_table(rs)
    assert list(t["configuration"]) == ["A", "B", "C"] and list(t["role"]) == ["worst", "worst", "control"]
    assert list(t.columns[-4:]) == ["cost at 2 (shipped)", "cost at 1", "cost at 0.5", "agreement, 2 → 0.5"]
    assert t.loc[0, "dim × layers × heads"] == "8 × 1 × 2" and t.loc[2, "cost at 0.5"] == 0.008
    words = residual_scale_words(rs)
    assert {k: v for k, v in words.items() if k != "rs_finding"} == {
        "rs_worst_model": "A", "rs_worst_resmax": "300", "rs_control_embed": "30", "rs_embed_shipped": "30",
        "rs_n_worst": "2 models", "rs_n_controls": "1 model", "rs_headrooms": "1 and 0.5"}
    assert words["rs_finding"] == (
        "At a headroom of 0.5 the median cost of the worst models falls from +0.6 to +0.03 bpc, and the worst "
        "model's falls from +0.8 to +0.04 (its argmax agreement from 60.0% to 90.0%; its embedding row now takes 120 "
        "steps); the controls' costs move by at most 0.0035 bpc. So most of the worst costs come from the residual "
        "scale, not from the int8 of the weights or of the other activations.")
    # a weight bound that kept the step coarser is said; a small fall is not called "most"
    bound = rs.assign(effective_headroom=lambda d: d["headroom"].where(d["run_key"] != "b", 1.5),
                      bpc_delta=lambda d: d["bpc_delta"].where(d["role"] != "worst", d["shipped_bpc_delta"] * 0.9))
    assert words != residual_scale_words(bound)
    # a cost that does not move as printed "stays"
    flat = rs.assign(bpc_delta=lambda d: d["shipped_bpc_delta"])
    assert residual_scale_words(flat)["rs_finding"].startswith(
        "At a headroom of 0.5 the median cost of the worst models stays at +0.6 bpc, and the worst model's stays at +0.8")
    assert residual_scale_words(bound)["rs_finding"].endswith(
        "In 1 run a weight's requantisation bound kept the step coarser than asked (effective headroom up to 1.5). "
        "So the residual scale explains only part of the worst costs; the rest is not traced here.")
    # nothing traced (or only controls): every name has a value, and the finding says why there is none
    for empty in (rs.iloc[:0], rs[rs["role"] != "worst"]):
        w = residual_scale_words(empty)
        assert set(w) == set(words) and w["rs_finding"].startswith("No run the engine hurts most has been traced")
