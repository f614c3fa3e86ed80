"""The claims audit: each verdict on synthetic tables whose right answer is known."""
import pandas as pd
import pytest

from starmind_lib.analysis import audit, audit_base, claims_design
from starmind_lib.analysis.audit import AuditData, Verdict

import synthetic_results as syn


def load(tmp_path, v=None, runs=None, unigram=True, **run_kw) -> AuditData:
    v = syn.variants() if v is None else v
    runs = syn.c_runs(v, **run_kw) if runs is None else runs
    syn.write_all(tmp_path, v, runs, unigram=unigram)
    return AuditData.load(tmp_path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The 'claims hold' world for the speed-ratio claims (but 1-wide models are noise)."""
    return load(tmp_path_factory.mktemp("world"))


def test_every_claim_1_to_13_has_a_check_and_a_verdict(world):
    verdicts = audit.run_audit(world)
    assert [v.claim_id for v in verdicts] == list(range(1, 14))
    assert all(isinstance(v, Verdict) and v.claim and v.measurement_text for v in verdicts)
    table = audit.summary(verdicts)
    assert list(table["claim"]) == list(range(1, 14))
    assert set(table["verdict"]) <= {"supported", "refuted", "inconclusive"}


def test_nothing_measured_gives_inconclusive_with_the_reason(tmp_path):
    data = AuditData.load(tmp_path)
    verdicts = audit.run_audit(data)
    assert {v.verdict for v in verdicts} == {"inconclusive"}
    assert "sweep/variants.parquet" in verdicts[0].measurement_text
    assert "run `make study`" in verdicts[0].measurement_text


def test_verdict_rejects_unknown_kind():
    with pytest.raises(ValueError, match="verdict must be"):
        Verdict(1, "c", "m", "probably")


def test_claim_01_vocabulary_512_runs_refutes(world):
    v = audit.claim_01(world)
    assert v.verdict == "refuted"
    assert "vocabulary 512 ran on c-int8, emulated (cycle-counted)" in v.measurement_text
    assert "cycle-exact" not in v.measurement_text


def test_claim_01_supported_when_only_large_vocabularies_fail(tmp_path):
    v = syn.variants(grid=dict(dim=[8], n_layers=[1], n_heads=[1], ffn_ratio=[1], vocab_size=[256, 512, 1024]))
    runs = syn.c_runs(v)
    runs.loc[runs["model"].str.startswith(("v512", "v1024")), "status"] = "out_of_memory"
    assert audit.claim_01(load(tmp_path, v, runs)).verdict == "supported"


def test_claim_01_inconclusive_without_large_vocabularies(tmp_path):
    v = syn.variants(grid=dict(dim=[8], n_layers=[1], n_heads=[1], ffn_ratio=[1], vocab_size=[128, 256]))
    verdict = audit.claim_01(load(tmp_path, v))
    assert verdict.verdict == "inconclusive" and "512 or more" in verdict.measurement_text


def test_claim_02_params_limit(tmp_path, world):
    # The synthetic grid runs a 17K-parameter model at > 1 token/s, but not a 20K one: no model >= 20K.
    big = syn.variants(grid=dict(dim=[48], n_layers=[2], n_heads=[1], ffn_ratio=[4], vocab_size=[256]))
    assert big["n_params"].iloc[0] > 20_000
    assert audit.claim_02(load(tmp_path / "a", big)).verdict == "refuted"
    limited = load(tmp_path / "b", max_ok_params=9_000)
    verdict = audit.claim_02(limited)
    assert verdict.verdict == "supported", verdict.measurement_text


def test_claim_03_speed_order_supported_when_effects_match(world):
    verdict = audit.claim_03(world)
    assert verdict.verdict == "supported", verdict.measurement_text
    ev = verdict.evidence
    table = ev[ev["runtime"].str.startswith("c-int8")]
    table = table[table["runtime"] == table["runtime"].iloc[0]].set_index("factor")
    for factor, slowdown in syn.SLOWDOWN.items():
        assert table.loc[factor, "slowdown_per_step"] == pytest.approx(slowdown, abs=1e-9)


def test_claim_03_and_05_when_heads_speed_things_up(tmp_path):
    data = load(tmp_path, heads_slowdown=-0.10)
    assert audit.claim_03(data).verdict == "refuted"
    five = audit.claim_05(data)
    assert five.verdict == "supported" and "+10.0%" in five.measurement_text


def test_claim_05_refuted_when_heads_cost_time(world):
    verdict = audit.claim_05(world)
    assert verdict.verdict == "refuted" and "-22.0%" in verdict.measurement_text


def test_claim_04_narrow_models_that_emit_noise_are_refuted(world):
    verdict = audit.claim_04(world)
    assert verdict.verdict == "refuted" and "noise" in verdict.measurement_text


def test_claim_04_narrow_models_that_learn_and_are_fastest(tmp_path):
    assert audit.claim_04(load(tmp_path, syn.variants(narrow_noise=False))).verdict == "supported"


def test_claim_04_without_unigram_baseline_is_inconclusive(tmp_path):
    assert audit.claim_04(load(tmp_path, unigram=False)).verdict == "inconclusive"


def test_claim_06_fat_ffn_front(world, tmp_path):
    assert audit.claim_06(world).verdict == "supported"
    v = syn.variants(grid=dict(dim=[8, 16], n_layers=[1], n_heads=[1], ffn_ratio=[1, 2], vocab_size=[256]))
    verdict = audit.claim_06(load(tmp_path, v))
    assert verdict.verdict == "inconclusive" and "no FFN ratio" in verdict.measurement_text


def test_claim_07_golden_allocations():
    v = pd.DataFrame({"variant_id": ["gold", "plain", "plain_big"], "dim": [8, 8, 16],
                      "ffn_hidden": [13, 16, 32], "params": [1000, 1000, 4000], "val_bpc": [2.5, 2.0, 1.8]})
    assert list(claims_design.is_golden(v)) == [True, False, False]
    assert list(claims_design.is_golden(v.assign(axis=["width", "golden", "width"]))) == [False, True, False]
    verdict = audit.claim_07(AuditData(variants=v))
    assert verdict.verdict == "refuted" and "beaten" in verdict.measurement_text
    v.loc[0, "val_bpc"] = 1.5
    assert audit.claim_07(AuditData(variants=v)).verdict == "supported"
    assert audit.claim_07(AuditData(variants=v.iloc[1:])).verdict == "inconclusive"
    # with seeds, a golden variant is beaten only beyond seed noise
    v = v.assign(val_bpc=[2.5, 2.0, 1.8], config_hash=["G", "P", "B"])
    noisy = {"G": [2.0, 2.5, 3.0], "P": [1.9, 2.0, 2.1]}
    within = audit.claim_07(AuditData(variants=v, seed_bpc=noisy))
    assert within.verdict != "refuted" and "0 golden variants are beaten by a smaller or equal non-golden one " \
        "(1 more is bettered within seed noise only)" in within.measurement_text
    clear = audit.claim_07(AuditData(variants=v, seed_bpc={"G": [2.49, 2.5, 2.51], "P": [1.99, 2.0, 2.01]}))
    assert clear.verdict == "refuted" and "1 golden variants are beaten by a smaller or equal non-golden one by more " \
        "than seed noise;" in clear.measurement_text
    assert clear.evidence["against seed noise"].iloc[0].startswith("exceeds seed noise (±")


def test_claim_08_int8_faster_refutes_the_slowdown(world, tmp_path):
    verdict = audit.claim_08(world)
    assert verdict.verdict == "refuted" and "1.80x the float32 speed" in verdict.measurement_text
    slow = load(tmp_path, int8_speedup=0.7)
    assert audit.claim_08(slow).verdict == "supported"


def test_claim_09_flash_vs_sram(world, tmp_path):
    verdict = audit.claim_09(world)
    assert verdict.verdict == "supported" and "1.05x" in verdict.measurement_text
    assert audit.claim_09(load(tmp_path / "m", flash_over_sram=2.0)).verdict == "refuted"


def test_claim_10_kv_cache_speedup(world, tmp_path):
    verdict = audit.claim_10(world)
    assert verdict.verdict == "supported" and "4.0x" in verdict.measurement_text
    assert audit.claim_10(load(tmp_path, kv_speedup=1.5)).verdict == "direction supported, size differs"
    assert audit.claim_10(load(tmp_path / "none", kv_speedup=0.9)).verdict == "refuted"


def test_claim_11_chunked_loading():
    v = pd.DataFrame({"variant_id": ["a", "b"], "params": [1000, 9000], "val_bpc": [2.0, 1.8]})
    runs = pd.DataFrame({"variant_id": ["a", "a", "b", "b"], "loader": ["whole", "chunked"] * 2,
                         "status": ["ok", "ok", "out_of_memory", "ok"], "tokens_per_s": [1.0] * 4,
                         "speed_source": "measured_hardware", "runtime": "micropython-viper",
                         "runtime_kind": "micropython"})
    assert audit.claim_11(AuditData(variants=v, micropython_runs=runs)).verdict == "supported"
    predicted = runs.assign(speed_source="predicted")
    verdict = audit.claim_11(AuditData(variants=v, predictions=predicted))
    assert verdict.verdict == "inconclusive" and "no board measured" in verdict.measurement_text


def test_claim_12_needs_micropython_measured_on_a_pico(world):
    verdict = audit.claim_12(world)
    assert verdict.verdict == "inconclusive" and "no MicroPython" in verdict.measurement_text
    v = pd.DataFrame({"variant_id": ["k1", "k8"], "params": [1000, 8000], "val_bpc": [2.4, 2.0]})
    mp = pd.DataFrame({"variant_id": ["k1", "k8"], "status": "ok", "tokens_per_s": [20.0, 2.5],
                       "speed_source": "measured_hardware", "runtime": "micropython-viper",
                       "runtime_kind": "micropython"})
    assert audit.claim_12(AuditData(variants=v, micropython_runs=mp)).verdict == "supported"
    mp.loc[0, "tokens_per_s"] = 2.0
    assert audit.claim_12(AuditData(variants=v, micropython_runs=mp)).verdict == "refuted"


def test_claim_13_training_time(world, tmp_path):
    verdict = audit.claim_13(world)
    assert verdict.verdict == "inconclusive" and "not a GPU" in verdict.measurement_text
    gpu = load(tmp_path, syn.variants(gpu_seconds=95.0))
    verdict = audit.claim_13(gpu)
    assert verdict.verdict == "supported" and "95 s" in verdict.measurement_text
    # Much faster than "about 2 minutes": training is cheap, as claimed, only more so.
    fast = audit.claim_13(load(tmp_path / "fast", syn.variants(gpu_seconds=20.0)))
    assert fast.verdict == "direction supported, size differs" and "token budget" in fast.claim_setting
    assert audit.claim_13(load(tmp_path / "slow", syn.variants(gpu_seconds=900.0))).verdict == "refuted"
    # quality from Study v2 (trained on a CPU) does not hide the first sweep's GPU training times
    cpu_scored = gpu.variants.assign(machine="Linux-x86_64 2cpu", device="cpu", wall_s=3000.0)
    both = AuditData(variants=cpu_scored, training=gpu.training)
    assert audit.claim_13(both).verdict == "supported" and "95 s" in audit.claim_13(both).measurement_text


def test_speed_effects_use_the_median_of_repeated_runs():
    pts = pd.DataFrame({"variant_id": ["a", "a", "a", "b"], "dim": [8, 8, 8, 16], "status": "ok",
                        "tokens_per_s": [10.0, 12.0, 100.0, 6.0], "runtime": "c-int8",
                        "runtime_label": "c-int8, emulated (cycle-counted)"})
    effects = audit_base.speed_effects(pts, "dim")
    assert len(effects) == 1 and effects["slowdown_per_step"].iloc[0] == pytest.approx(0.5)


def test_save_summary_writes_every_claim_with_provenance(world, tmp_path):
    verdicts = audit.run_audit(world)
    saved = pd.read_parquet(audit.save_summary(verdicts, tmp_path, profile="smoke"))
    assert list(saved["claim"]) == list(range(1, 14)) and set(saved["profile"]) == {"smoke"}
    assert audit.counts(verdicts) == saved["verdict"].value_counts().reindex(
        list(audit_base.VERDICTS), fill_value=0).to_dict()


def test_verdicts_say_what_happened():
    assert audit_base.range_verdict(5.0, 3, 7) == "supported"
    assert audit_base.range_verdict(12.4, 3, 7) == "direction supported, size differs"   # larger than claimed
    assert audit_base.range_verdict(1.5, 3, 7) == "direction supported, size differs"    # smaller, same way
    assert audit_base.range_verdict(0.9, 3, 7) == "refuted"                               # no speed-up at all
    assert audit_base.range_verdict(float("nan"), 3, 7) == "inconclusive"
    Verdict(1, "c", "m", "not comparable", per_runtime={"c-int8": "refuted"})
    with pytest.raises(ValueError, match="verdict must be"):
        Verdict(1, "c", "m", "supported", per_runtime={"c-int8": "maybe"})


def test_claim_09_gives_one_verdict_per_runtime_from_each_runs_own_size(tmp_path):
    v = syn.variants()
    runs = syn.c_runs(v, flash_over_sram=2.0)
    runs = runs[runs["runtime"] == "c-int8"]
    fl = syn.c_runs(v, flash_over_sram=1.05)
    fl = fl[fl["runtime"] == "c-int8"].assign(runtime="c-float32")
    verdict = audit.claim_09(load(tmp_path, v, pd.concat([runs, fl], ignore_index=True)))
    assert verdict.per_runtime == {"c-float32": "supported", "c-int8": "refuted"}
    assert verdict.verdict == "inconclusive" and "c-int8: refuted" in audit.summary([verdict])["per runtime"][0]


def test_chapter_08_shows_all_13_claims_with_verdicts(tmp_path):
    from test_analysis import run_notebook
    v = syn.variants(grid=dict(dim=[2, 8], n_layers=[1, 2], n_heads=[1], ffn_ratio=[1, 16], vocab_size=[256, 512]))
    syn.write_all(tmp_path / "results", v, syn.c_runs(v))
    text = run_notebook("08_audit", tmp_path / "results", tmp_path)
    for cid in range(1, 14):
        assert f"Evidence for claim {cid}" in text
    assert (tmp_path / "results" / "audit" / "verdicts.parquet").exists()


def test_claim_08_sizes_from_the_quant_table_when_devices_lack_them(world):
    quant = pd.DataFrame({"variant_id": ["m", "m"], "scheme": ["float32", "int8_engine"],
                          "flash_bytes": [4000, 1100], "val_bpc": [2.00, 2.02]})
    no_runs = AuditData(variants=world.variants, quant=quant)
    verdict = audit.claim_08(no_runs)
    assert verdict.verdict == "inconclusive"
    assert "0.28x the size of the float32 one" in verdict.measurement_text and "+0.02 bits/char" in verdict.measurement_text


def test_claim_02_labels_a_trained_model_only_the_first_study_scored(world):
    import dataclasses
    runs = world.runs()
    ok = runs[runs["status"].eq("ok") & runs["variant_id"].isin(world.variants["variant_id"])]
    top = int(ok["params"].max())
    gone = world.variants["params"] == top               # Study v2 has not trained the largest models
    data = dataclasses.replace(world, variants=world.variants[~gone], training=world.variants)
    text = audit.claim_02(data).measurement_text
    assert f"({top:,} parameters, " in text.split("The largest trained model that runs, ")[1]
    assert "the first study's score: the first 32,768 validation tokens" in text and "Study v2 has not trained it" in text
    assert "Study v2 has not trained it" not in audit.claim_02(world).measurement_text


def test_claim_02_gives_the_largest_runnable_model_its_int8_score_when_chapter_05_measured_it(world):
    """The device runs the int8 file: its quality is the float score plus the int8 cost, said as such."""
    import dataclasses
    runs = world.runs()
    ok = runs[runs["status"].eq("ok") & runs["variant_id"].isin(world.variants["variant_id"])
              & (runs["tokens_per_s"] >= 1.0)]
    top = ok.sort_values(["params", "tokens_per_s"]).iloc[-1]
    float_bpc = float(world.variants.set_index("variant_id").loc[top["variant_id"], "val_bpc"])
    quant = pd.DataFrame({"variant_id": [top["variant_id"]], "scheme": ["int8_engine"], "val_bpc": [float_bpc + 0.25],
                          "bpc_delta": [0.25]})
    data = dataclasses.replace(world, quant=quant)
    text = audit.claim_02(data).measurement_text.split("The largest trained model that runs, ")[1]
    assert top["scheme"] == "int8"                      # the synthetic world's largest runnable model runs int8
    assert f"{float_bpc + 0.25:.2f} bits/char as the int8 model it runs, {float_bpc:.2f} bits/char in float" in text
    plain = audit.claim_02(world).measurement_text.split("The largest trained model that runs, ")[1]
    assert f"{float_bpc:.2f} bits/char)" in plain and "int8 model" not in plain
