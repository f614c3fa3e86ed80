"""The book in the `report` profile, built from the committed tables: every number glued into the
prose equals its value computed here, independently, from those tables; and no page has a badly
written number (``browsercheck.text_problems``).

Slow (every chapter executes; minutes on 2 cores): one build, shared by the tests of this module.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import book_build
from starmind_lib.book import browsercheck, build as book
from starmind_lib.provenance import REPO_ROOT

RESULTS = REPO_ROOT / "data" / "results"


def _read(stem: str) -> pd.DataFrame:
    """A table as the chapters read it: its JSONL journal (the source; the Parquet file is a snapshot)."""
    path = RESULTS / f"{stem}.jsonl"
    if not path.exists():
        return pd.read_parquet(RESULTS / f"{stem}.parquet")
    from test_layout import journal_rows
    return pd.DataFrame(journal_rows(path))


def _stats(view, split, col):
    s = _read("data/stats")
    return s[(s["view"] == view) & (s["split"] == split)].sort_values("timestamp").iloc[-1][col]


def _variants():
    return _read("sweep/variants")


def _bpc(v):
    return v["val_bpc"] if "val_bpc" in v else v["bpc"]


def _stored_rows(stem: Path) -> int:
    """Rows as stored (the appendix's inventory): the snapshot's, else every complete line of the journal."""
    snap = stem.with_suffix(".parquet")
    if snap.exists():
        return len(pd.read_parquet(snap))
    return sum(1 for line in stem.with_suffix(".jsonl").read_text().splitlines() if line.strip().endswith("}"))


def _tok(kind, vocab, lowercase, col):
    t = _read("tokenizers/tokenizers")
    return float(t[(t["kind"] == kind) & (t["requested_vocab_size"] == vocab) & (t["lowercase"] == lowercase)]
                 .iloc[-1][col])


def _bpe_sizes():
    t = _read("tokenizers/tokenizers")
    sizes = sorted(set(t.loc[t["kind"] == "bpe", "requested_vocab_size"]))
    return next(v for v in sizes if v > 258), sizes[-1]


def _char_small():
    t = _read("tokenizers/tokenizers")
    return int(t.loc[t["kind"] == "char", "requested_vocab_size"].min())


def _ref(name, col):
    r = _read("train/runs")
    return r[r["name"] == name].sort_values("timestamp").iloc[-1][col]


def _bucket(n_params: int) -> str:
    from starmind_lib.training.plan import BUCKETS
    return [name for name, lo in BUCKETS if n_params >= lo][-1]


def _study_scores(tiers=("base",)):
    """(variant_id, bpc, n_params, unigram) of the chapters' table: Study v2 (mean over seeds, expanded to
    every variant id using a configuration; each configuration from the first of ``tiers`` that trained it;
    runs only at their bucket's rate, the lr sweep's best) once it covers 90 % of the v1 table, else v1."""
    v1 = _variants()
    runs = _read("sweep/study_v2")
    if len(runs):
        lr = runs[runs["tier"] == "lr"]
        per = lr.groupby(["lr", "config_hash"])["bpc"].mean().reset_index()
        per["bucket"] = per["config_hash"].map(dict(zip(lr["config_hash"], lr["n_params"].map(_bucket))))
        rates = {b: g.groupby("lr")["bpc"].mean().idxmin() for b, g in per.groupby("bucket")}
        runs = runs[runs["lr"] == runs["n_params"].map(lambda n: rates.get(_bucket(n)))]
    rows, seen = [], set()
    for tier in tiers:
        sel = runs[runs["tier"] == tier] if len(runs) else runs
        for h, g in sel.groupby("config_hash"):
            if h in seen:
                continue
            seen.add(h)
            for vid in g["variant_ids"].iloc[0]:
                if vid in set(v1["variant_id"]):
                    rows.append({"variant_id": vid, "config_hash": h, "bpc": g["bpc"].mean(),
                                 "n_params": int(g["n_params"].iloc[0]),
                                 "unigram_bpc": float(g["unigram_bpc"].iloc[0]),
                                 "tokens_trained": int(g["tokens_trained"].iloc[0])})
    if len(rows) >= 0.9 * len(v1):
        return pd.DataFrame(rows)
    return v1.assign(bpc=_bpc(v1))[["variant_id", "bpc", "n_params", "unigram_bpc", "tokens_trained"]]


def _quant(scheme=None, tier="base"):
    """Chapter 05's rows: its tier (the base tier's; the long tier's are its last section and chapter 07's)."""
    q = _read("quant/quant")
    q = q[(q["error"].fillna("") == "") & (q["tier"] == tier)]
    return q if scheme is None else q[q["scheme"] == scheme]


def _long_cost_larger() -> str:
    """Chapter 05's 'larger in N of M': configurations whose long run's engine cost exceeds their base run's."""
    base = _quant("int8_engine").drop_duplicates("config_hash").set_index("config_hash")["bpc_delta"]
    long = _quant("int8_engine", "long").drop_duplicates("config_hash").set_index("config_hash")["bpc_delta"]
    both = long.index.intersection(base.index)
    return f"{int((long[both] > base[both]).sum())} of {len(both)}"


def _c_ok(kv: bool | None = None, weights: str | None = "flash"):
    c = _read("device/c_runs")
    c = c[(c["status"] == "ok") & (c["scheme"] == "int8")]
    if weights:
        c = c[c["weights"] == weights]
    return c[c["kv_cache"].astype(bool)] if kv else c


def _c_largest():
    c = _c_ok()
    return c.loc[c["n_params"].idxmax()]


def _iso(scheme, weights, kv):
    """The median speed-up of one setting over the same model's int8 / flash / KV-cache run."""
    c = _read("device/c_runs")
    c = c[c["status"] == "ok"]
    ref = c[(c["scheme"] == "int8") & (c["weights"] == "flash") & c["kv_cache"].astype(bool)]
    ref = ref.set_index("model_id")["tokens_per_s_133MHz"]
    one = c[(c["scheme"] == scheme) & (c["weights"] == weights) & (c["kv_cache"].astype(bool) == kv)]
    one = one[one["model_id"].isin(ref.index)]
    return float(pd.Series(one["tokens_per_s_133MHz"].to_numpy() / ref[one["model_id"]].to_numpy()).median())


def _c_best_near(target):
    """The study or reference model nearest ``target`` parameters (0.75x to 1.33x), its fastest int8
    KV-cache run."""
    c = _c_ok(kv=True, weights=None)
    c = c[(c["n_params"] >= 0.75 * target) & (c["n_params"] <= 1.33 * target)
          & c["source"].isin(["study", "reference"])]
    c = c.assign(d=(c["n_params"] - target).abs()).sort_values(["d", "tokens_per_s_133MHz"], ascending=[True, False])
    return c.iloc[0]


def _c_context(target):
    """The study or reference model nearest ``target`` parameters (0.75x to 1.33x) among the runs with weights
    in SRAM timed over the whole window (ties: the faster)."""
    c = _c_ok(kv=True, weights="sram")
    c = c[c["tokens_per_s_full_133MHz"].notna() & c["source"].isin(["study", "reference"])
          & (c["n_params"] >= 0.75 * target) & (c["n_params"] <= 1.33 * target)]
    c = c.assign(d=(c["n_params"] - target).abs()).sort_values(["d", "tokens_per_s_full_133MHz"],
                                                               ascending=[True, False])
    return c.iloc[0]


def _c_context_checks():
    c = _read("device/c_runs")
    return pd.concat([c["window_matches_reference"], c["long_matches_reference"]]).dropna().astype(bool)


def _mp_current():
    """micropython_runs as chapter 06b counts it: the working tree's runtime, one row per board and job
    (``measure.current_rows``, the table's documented reading rule), read from the journal here."""
    from starmind_lib.devices.measure import current_rows
    lines = (RESULTS / "device" / "micropython_runs.jsonl").read_text().splitlines()
    return pd.DataFrame(current_rows([json.loads(x) for x in lines if x.strip()]))


def _mp_ok():
    m = _mp_current()
    return m[m["status"] == "ok"]


def _placement_spread():
    """The placement spreads of the runtime chapter 06b reads (where that runtime has placement rows)."""
    from starmind_lib.devices.placement import spread
    from starmind_lib.provenance import ResultTable
    rows = ResultTable(RESULTS / "device" / "micropython_placement", key="key").rows()
    cur = _mp_current()
    runtimes = set(cur["runtime_sha256_16"].dropna()) if "runtime_sha256_16" in cur else set()
    mine = [r for r in rows if r.get("runtime_sha256_16") in runtimes]
    return spread(mine or rows)


def _best(tiers=("base",)):
    s = _study_scores(tiers)
    return s.loc[s["bpc"].idxmin()]


# (chapter, glue name) -> the value, computed from the committed tables without the chapter's code
EXPECTED = {
    ("01_data", "train_chars_cased"): lambda: _stats("cased", "train", "characters"),
    ("01_data", "train_stories_cased"): lambda: _stats("cased", "train", "stories"),
    ("01_data", "distinct_chars_cased"): lambda: _stats("cased", "train", "distinct_characters"),
    ("01_data", "train_chars_lc"): lambda: _stats("lowercased", "train", "characters"),
    ("01_data", "train_stories_lc"): lambda: _stats("lowercased", "train", "stories"),
    ("01_data", "distinct_chars_lc"): lambda: _stats("lowercased", "train", "distinct_characters"),
    ("01_data", "val_stories"): lambda: _stats("cased", "val", "stories"),
    ("01_data", "val_chars"): lambda: _stats("cased", "val", "characters"),
    ("01_data", "median_story_chars"): lambda: _stats("cased", "train", "median_story_chars"),
    ("01_data", "chars_999"): lambda: int((_read("data/chars").sort_values("count", ascending=False)["count"]
                                           .cumsum() / _read("data/chars")["count"].sum() < 0.999).sum() + 1),
    # passes over the lowercased training characters: Study v2's tokens trained (a tier's), times the characters
    # per token of the largest lowercased BPE (chapter 02's table) for the BPE clause
    ("01_data", "data_passes_char"): lambda: _read("sweep/study_v2").query("tier == 'base'")["tokens_trained"].max()
                                             / _stats("lowercased", "train", "characters"),
    ("01_data", "data_passes_long"): lambda: _read("sweep/study_v2").query("tier == 'long'")["tokens_trained"].max()
                                             / _stats("lowercased", "train", "characters"),
    ("01_data", "data_passes_bpe"): lambda: _read("sweep/study_v2").query("tier == 'base'")["tokens_trained"].max()
                                            * _tok("bpe", _bpe_sizes()[1], True, "chars_per_token")
                                            / _stats("lowercased", "train", "characters"),
    ("02_tokenizers", "bpe_small"): lambda: _bpe_sizes()[0],
    ("02_tokenizers", "bpe_large"): lambda: _bpe_sizes()[1],
    ("02_tokenizers", "bpe_cpt_small"): lambda: _tok("bpe", _bpe_sizes()[0], False, "chars_per_token"),
    ("02_tokenizers", "bpe_cpt_large"): lambda: _tok("bpe", _bpe_sizes()[1], False, "chars_per_token"),
    ("02_tokenizers", "bpe_lc_cpt_large"): lambda: _tok("bpe", _bpe_sizes()[1], True, "chars_per_token"),
    ("02_tokenizers", "bpe_bytes_large_d64"): lambda: _tok("bpe", _bpe_sizes()[1], False, "device_bytes_d64"),
    ("02_tokenizers", "bpe_merges_large"): lambda: _tok("bpe", _bpe_sizes()[1], False, "merges_bytes"),
    ("02_tokenizers", "char_bytes_d64"): lambda: _read("tokenizers/tokenizers").query("kind == 'char' and not lowercase")
                                                 .sort_values("vocab_size").iloc[-1]["device_bytes_d64"],
    ("02_tokenizers", "char_small"): _char_small,
    ("02_tokenizers", "bpe_min_vocab"): lambda: _read("tokenizers/tokenizers").query("kind == 'bpe'")["vocab_size"]
                                                .min(),
    ("02_tokenizers", "char_small_chars"): lambda: _char_small() - 3,
    ("02_tokenizers", "char_small_unk_pct"): lambda: 100 * _tok("char", _char_small(), False, "unk_rate"),
    ("02_tokenizers", "char_small_lc_unk_pct"): lambda: 100 * _tok("char", _char_small(), True, "unk_rate"),
    ("03_training", "train_unigram_bpc"): lambda: _ref("ref-10k", "unigram_bpc"),
    ("03_training", "train_ref_10k_params"): lambda: _ref("ref-10k", "n_params"),
    ("03_training", "train_ref_10k_bpc"): lambda: _ref("ref-10k", "bpc"),
    ("03_training", "train_ref_10k_prefix_bpc"): lambda: _ref("ref-10k", "prefix_bpc"),
    ("03_training", "train_ref_100k_params"): lambda: _ref("ref-100k", "n_params"),
    ("03_training", "train_ref_100k_bpc"): lambda: _ref("ref-100k", "bpc"),
    ("03_training", "train_ref_100k_prefix_bpc"): lambda: _ref("ref-100k", "prefix_bpc"),
    ("03_training", "train_ref_10k_ci"): lambda: _ref("ref-10k", "bpc_ci_low"),       # the first number
    ("03_training", "train_ref_100k_ci"): lambda: _ref("ref-100k", "bpc_ci_low"),
    ("03_training", "train_tokens"): lambda: _ref("ref-10k", "tokens_trained"),
    ("03_training", "train_eval_every"): lambda: _ref("ref-10k", "config")["eval_every"],
    ("03_training", "train_eval_tokens"): lambda: _ref("ref-10k", "config")["eval_tokens"],
    ("03_training", "train_vocab"): lambda: _ref("ref-10k", "config")["vocab_size"],
    ("03_training", "train_seq_len"): lambda: _ref("ref-10k", "config")["seq_len"],
    ("03_training", "train_lr"): lambda: _ref("ref-10k", "config")["lr"],
    ("03_training", "train_machine"): lambda: ", ".join(sorted({_ref("ref-10k", "machine"),
                                                                 _ref("ref-100k", "machine")})),
    ("03_training", "train_temperature"): lambda: float(next(s["mode"] for s in _ref("ref-10k", "samples")
                                                             if s["mode"] != "greedy").split("=")[1]),
    ("03_training", "train_n_seeds"): lambda: _read("sweep/study_v2").query("tier == 'base'")
                                              .groupby("config_hash")["seed"].nunique().max(),
    ("03_training", "train_study_tokens"): lambda: _study_scores()["tokens_trained"].median(),
    ("04_architecture", "arch_n_variants"): lambda: len(_study_scores()),
    ("04_architecture", "arch_tokens"): lambda: _study_scores()["tokens_trained"].median(),
    ("04_architecture", "arch_best_bpc"): lambda: _best()["bpc"],
    ("04_architecture", "arch_best_id"): lambda: _best()["variant_id"],
    ("04_architecture", "arch_best_params"): lambda: _best()["n_params"],
    ("04_architecture", "arch_n_worse_than_unigram"): lambda: int((_study_scores()["bpc"] >= _study_scores()
                                                                   ["unigram_bpc"].iloc[0]).sum()),
    ("04_architecture", "arch_unigram_bpc"): lambda: _study_scores()["unigram_bpc"].iloc[0],
    ("04b_study_v2", "v2_n_runs"): lambda: len(_read("sweep/study_v2")),
    ("04b_study_v2", "v2_eval_chars"): lambda: _read("sweep/study_v2")["eval_chars"].iloc[0],
    ("04b_study_v2", "v2_eval_stories"): lambda: _read("sweep/study_v2")["eval_stories"].iloc[0],
    ("04b_study_v2", "v2_epochs"): lambda: 20_000_000 / _stats("lowercased", "train", "characters"),
    ("05_quantisation", "n_models"): lambda: _quant()["run_key"].nunique(),
    ("05_quantisation", "lt_n_larger"): _long_cost_larger,
    ("05_quantisation", "eval_stories"): lambda: _quant()["eval_stories"].median(),
    ("05_quantisation", "eval_chars"): lambda: _quant()["eval_chars"].median(),
    ("05_quantisation", "measurable_int8_engine"): lambda: int(((lambda q: (q["bpc_delta_ci_low"] > 0)
                                                                  | (q["bpc_delta_ci_high"] < 0))(
                                                                      _quant("int8_engine"))).sum()),
    ("05_quantisation", "agreement_median"): lambda: _quant("int8_engine")["greedy_agreement"].median(),
    ("05_quantisation", "agreement_min"): lambda: _quant("int8_engine")["greedy_agreement"].min(),
    ("05_quantisation", "worst_engine_variant"): lambda: _quant("int8_engine").sort_values("bpc_delta")
                                                         .iloc[-1]["variant_id"],
    ("05_quantisation", "max_delta_int8_engine"): lambda: _quant("int8_engine")["bpc_delta"].max(),
    ("05_quantisation", "median_delta_int8_engine"): lambda: _quant("int8_engine")["bpc_delta"].median(),
    ("05_quantisation", "max_delta_int4_group32"): lambda: _quant("int4_group32")["bpc_delta"].max(),
    ("05_quantisation", "median_delta_int4_group32"): lambda: _quant("int4_group32")["bpc_delta"].median(),
    ("06_device", "n_runs"): lambda: len(_read("device/c_runs")),
    ("06_device", "n_checked"): lambda: int(_read("device/c_runs")["matches_reference"].notna().sum()),
    ("06_device", "n_mismatch"): lambda: int((_read("device/c_runs")["matches_reference"] == False).sum()),  # noqa
    ("06_device", "largest_params"): lambda: _c_largest()["n_params"],
    ("06_device", "largest_tps"): lambda: _c_largest()["tokens_per_s_133MHz"],
    ("06_device", "largest_fit_params"): lambda: _c_ok(kv=True)["n_params"].max(),
    ("06_device", "best_10k_tps"): lambda: _c_best_near(10_000)["tokens_per_s_133MHz"],
    ("06_device", "best_100k_tps"): lambda: _c_best_near(100_000)["tokens_per_s_133MHz"],
    ("06_device", "n_context_checked"): lambda: len(_c_context_checks()),
    ("06_device", "n_context_mismatch"): lambda: int((~_c_context_checks()).sum()),
    **{("06_device", f"ctx_{n}_{k}"): (lambda t=t, col=col: _c_context(t)[col])
       for n, t in (("10k", 10_000), ("100k", 100_000))
       for k, col in (("full133", "tokens_per_s_full_133MHz"), ("full125", "tokens_per_s_full_125MHz"),
                      ("long133", "tokens_per_s_long_133MHz"))},
    **{("06_device", f"iso_{name}"): (lambda a=args: _iso(*a))
       for name, args in (("kv_cache_off", ("int8", "flash", False)), ("float32_flash", ("float32", "flash", True)),
                          ("float32_sram", ("float32", "sram", True)), ("int8_sram", ("int8", "sram", True)))},
    ("06b_micropython", "mp_n_rows"): lambda: len(_mp_current()),
    ("06b_micropython", "mp_n_models"): lambda: _mp_current()["model"].nunique(),
    ("06b_micropython", "mp_n_ok"): lambda: len(_mp_ok()),
    ("06b_micropython", "mp_n_failed"): lambda: len(_mp_current()) - len(_mp_ok()),
    ("06b_micropython", "mp_n_match"): lambda: int(_mp_ok()["tokens_match_reference"].astype(bool).sum()),
    ("06b_micropython", "mp_largest_ram"): lambda: _mp_ok().query("weights_requested == 'ram'")["n_params"].max(),
    ("06_device", "word_cpm"): lambda: (lambda k: k[k["kernel"].str.contains("word loads")]["cycles_per_mac_raw"]
                                        .iloc[0])(pd.read_parquet(RESULTS / "device" / "kernels.parquet")),
    **{("06_device", name): (lambda kernel=kernel: (lambda k: k[(k["kernel"] == kernel) & (k["weights"] == "sram")]
                                                   ["cycles_per_mac_raw"].iloc[0])(
                                                       pd.read_parquet(RESULTS / "device" / "kernels.parquet")))
       for name, kernel in (("asm_cpm", "Thumb asm 4 rows"), ("plain_cpm", "plain C"))},
    ("06b_micropython", "mp_placement_text"): lambda: round(next(iter(_placement_spread().values()))["low"]),
    ("06b_micropython", "mp_probes_text"): lambda: _mp_current().query("source == 'size_probe'")["n_params"].min(),
    ("06b_micropython", "mp_clock_mhz"): lambda: sorted(set(_mp_current()["clock_hz"].dropna()))[0] / 1e6,
    ("07_analysis", "n_models"): lambda: len(_study_scores(("long", "base"))),      # chapter 07 prefers the long tier
    ("07_analysis", "best_bpc"): lambda: _best(("long", "base"))["bpc"],
    ("07_analysis", "n_configs"): lambda: _study_scores(("long", "base"))["config_hash"].nunique(),
    ("09_appendix", "appendix_n_rows"): lambda: sum(_stored_rows(p) for p in sorted(
        {q.with_suffix("") for q in RESULTS.rglob("*.*") if q.suffix in (".parquet", ".jsonl")})),
    ("09_appendix", "appendix_n_tables"): lambda: len({q.with_suffix("") for q in RESULTS.rglob("*.*")
                                                        if q.suffix in (".parquet", ".jsonl")}),
}

# glued values that are not numbers read from a table, and why they are not checked here; a glued name
# in neither dict fails test_every_glued_value_is_checked_or_exempt (a new number must be added to one)
EXEMPT = {
    "01_data": {"mojibake_stories": "a count the data stage logs per shard; tests/test_data.py checks it",
                "data_full_train_stories": "the full dataset's size, from its card (ch01_data.FULL_TRAIN_STORIES)",
                "data_study_tokens": "a parameter of chapter 4b (base_tokens; data_passes_char checks it)",
                "data_long_tokens": "a parameter of chapter 4b (long_tokens; data_passes_long checks it)",
                "chars_share": "the share chars_999 is counted at (ch01_data.COVER_SHARE)"},
    "02_tokenizers": {"pico_flash": "the board's flash (devices.emulated.FLASH_BYTES)",
                      "pico_ram": "the RP2040's RAM (devices.emulated.SRAM_BYTES)"},
    "03_training": {"train_ref_10k_tokens_per_s": "a training speed of the machine in the table (not a result)",
                    "train_ref_100k_tokens_per_s": "a training speed of the machine in the table (not a result)",
                    "train_seed_spread": "a sentence; its numbers are the spread of the seed table shown below it",
                    "train_study_source": "a sentence naming chapter 04's table (chapter_table(), as arch_bpc_source)"},
    "04_architecture": {"arch_bpc_source": "a sentence naming the table", "arch_n_configs": "a count of the grid",
                        "arch_bars": "a sentence", "arch_total_wall": "a duration, formatted",
                        "arch_machine": "machine names", "arch_trend_slope": "a least-squares fit of the table",
                        "arch_trend_r2": "a least-squares fit of the table", "arch_axes": "the grid's ranges",
                        "arch_budgets": "the grid's budgets", "arch_golden_text": "golden_vs_trend(); tests/test_study_v2.py checks it on a known table",
                        "arch_best_vs_runner_up": "a sentence with a Welch test (tests/test_study_v2.py)"},
    "04b_study_v2": {
        "v2_n_moved_real": "moved_beyond_noise(); tests/test_study_v2.py checks it on known seed values",
        "v2_context_text": "a sentence; its numbers are the context-control table shown below it",
        "v2_context_finding": "context_finding(); tests/test_study_v2.py checks it on known control rows",
        "v2_long_status": "a sentence: trained of planned (the plan's front, tests/test_study_v2.py); "
                          "its table below lists every long run with a 'planned' column",
        "v2_machines": "machine names", "v2_prefix_gap_median": "a difference of two columns",
        "v2_machine_diff_max": "a difference of two tables", "v2_n_compared": "a count of comparisons",
        "v2_n_moved": "a count of comparisons (tests/test_study_v2.py)",
        "v2_long_rank": "a rank correlation (tests/test_study_v2.py)"},
    "05_quantisation": {
        **{n: "residual_scale_words(); tests/test_quant.py checks it on a known table"
           for n in ("rs_worst_model", "rs_worst_resmax", "rs_control_embed", "rs_embed_shipped", "rs_n_worst",
                     "rs_n_controls", "rs_headrooms", "rs_finding")},
        "lt_exceptions": "long_cost_words(); tests/test_quant.py checks it on a known table",
        "lt_n": "long_cost_words(); tests/test_quant.py checks it on a known table",
        "lt_ratio_max": "long_cost_words(); tests/test_quant.py checks it on a known table",
        "lt_ratio_median": "long_cost_words(); tests/test_quant.py checks it on a known table",
        "lt_ratio_min": "long_cost_words(); tests/test_quant.py checks it on a known table",
        "lt_worst": "long_cost_words(); tests/test_quant.py checks it on a known table",
        "lt_failed": "failed_runs_text(); tests/test_quant.py checks it on a known table",
        "calib_windows": "a parameter", "worst_engine_head_dim": "the worst model's shape",
        "worst_engine_heads": "the worst model's shape",
        "n_ref_models": "the committed reference models", "ref_all_match": "a word",
        **{f"{w}_delta_{s}": "the same statistic as int8_engine's, for another scheme"
           for w in ("median", "max") for s in ("float32", "float16", "int8_tensor", "int8_row")},
        **{f"measurable_{s}": "the same statistic as int8_engine's, for another scheme"
           for s in ("float32", "float16", "int8_tensor", "int8_row", "int4_group32")},
        **{f"split_{s}": "scheme_summary()'s two counts; tests/test_quant.py checks them on a known table"
           for s in ("float32", "float16", "int8_tensor", "int8_row", "int4_group32", "int8_engine")},
        "q_what": "a sentence: the tier, seeds, tokens and configuration count of the table's runs",
        "int4_size_trend": "a sentence with a rank correlation (tests/test_quant.py)",
        "f16_ci_width": "a median width of the table's intervals"},
    "06_device": {"miss_penalty": "the XIP model's constant", "best_10k_model": "a name", "best_100k_model": "a name",
                  "best_10k_goal": "a word", "best_100k_goal": "a word",
                  "best_10k_flash_tps": "the same rule as best_10k_tps, weights in flash",
                  "best_100k_flash_tps": "the same rule as best_100k_tps, weights in flash",
                  "largest_model": "a name", "largest_ram_kb": "the largest model's row",
                  "largest_trained": "a sentence", "dot_share": "the cycle profile's range",
                  "top_axis": "a name", "sram_max_params": "a parameter of the isolation runs",
                  "nokv_max_params": "a parameter", "float_max_params": "a parameter",
                  "n_tokens_g": "a parameter", "n_prompt_g": "a parameter", "smallest_nofit": "a sentence",
                  "weights_sources": "a sentence of counts by weights_source", "long_tokens_g": "a parameter",
                  "near_window": "a constant (bench.device.NEAR)", "ctx_10k_model": "a name",
                  "ctx_100k_model": "a name", "ctx_10k_goal": "a word", "ctx_100k_goal": "a word",
                  "ctx_10k_window": "a sentence: counts and range of the context table's rows in the window",
                  "ctx_100k_window": "a sentence: counts and range of the context table's rows in the window"},
    "06b_micropython": {**{n: "a statistic of the measured rows shown in the chapter's tables (tests/test_micropython_runs.py)"
                           for n in ("mp_max_tok_s", "mp_alloc_ram", "mp_alloc_flash", "mp_heap_min", "mp_heap_max",
                                     "mp_load_min", "mp_load_max", "mp_n_clean", "mp_n_dirty", "mp_n_superseded",
                                     "mp_n_history", "mp_n_history_runtimes", "mp_n_predicted", "mp_n_study")},
                        **{f"mp_{s}_{f}": "the model nearest the size, a row of the measured table"
                           for s in ("10k", "100k") for f in ("model", "params", "tok_s", "tok_s_last", "text")},
                        **{n: "the planner's calibration (tests/test_planner_calibration.py)"
                           for n in ("mp_err_n", "mp_err_low", "mp_err_high", "mp_err_outside", "mp_mem_judged",
                                     "mp_mem_failed", "mp_fit_but_fails", "mp_no_but_ran", "mp_heap_uart",
                                     "mp_heap_usb")},
                        "mp_runtime": "a digest", "mp_tree_is_runtime": "a phrase",
                        "mp_predicted_points": "a sentence with mp_n_predicted's count", "mp_commits": "commit ids",
                        "mp_n_tokens": "a constant", "mp_n_measured": "a count of the measured table",
                        "mp_virtual_runs": "the virtual board's table", "mp_virtual_identical": "the virtual board's table",
                        "mp_repeat_text": "repeat_text(); tests/test_micropython_runs.py checks it on known runs",
                        "mp_holdout_text": "holdout_words(); tests/test_planner_calibration.py checks it on a known "
                                           "table",
                        "mp_placement_outside": "a count over the same spreads as mp_placement_text "
                                                "(tests/test_micropython_runs.py)"},
    "07_analysis": {"front_edges": "front_edge_summary(); tests/test_analysis.py checks it on known points and seeds",
                    "an_quant_cost_source": "quant_cost_sources(); tests/test_analysis.py checks it on known points",
                    "an_mp_ram_floor": "ram_floor_text(); tests/test_micropython_runs.py checks it on known runs",
                    "an_bpc_source": "a sentence naming the table", "n_device_points": "a count of joined runs",
                    "n_front": "the Pareto front (tests/test_analysis.py checks the front on known points)", "front_fastest_tps": "the front",
                    "front_fastest_bpc": "the front", "front_best_bpc": "the front", "front_best_tps": "the front",
                    "front_best_ram_kb": "the front", "front_best_params": "the front", "front_best_weights": "the front"},
    "08_audit": {"*": "verdicts computed by the audit from every table; tests/test_audit*.py check each claim"},
    "09_appendix": {"appendix_profile": "a parameter", "appendix_results_dir": "a parameter",
                    "appendix_data_source": "a parameter"},
}


POWER = r" × 10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)"      # fmt_num writes 5.4 × 10⁻⁷
DIGITS = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


def _number(text: str) -> float | None:
    m = re.search(r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?" + f"(?:{POWER})?", str(text))
    if not m:
        return None
    value = float(m.group(0).split(" ×")[0].replace(",", ""))
    return value * 10 ** int(m.group(1).translate(DIGITS)) if m.group(1) else value


def _matches(glued: str, expected) -> bool:
    glued = glued.strip().strip("'\"")        # a glued str is stored as its repr
    if isinstance(expected, str):
        return glued == expected
    got = _number(glued)
    if got is None:
        return False
    m = re.search(r"\d\.(\d+)", glued)
    decimals = len(m.group(1)) if m else 0
    power = re.search(POWER, glued)      # the last digit of 5.4 × 10⁻⁷ is worth 10⁻⁸
    if power:
        decimals -= int(power.group(1).translate(DIGITS))
    return abs(got - float(expected)) <= 0.5 * 10 ** -decimals + 1e-9 * abs(float(expected))


@pytest.fixture(scope="module")
def report_book():
    """The book as `make book` builds it (profile report, into book/): chapters already executed and up
    to date are reused, so after `make book` this costs a Jupyter Book run. $STARMIND_BOOK_NOTEBOOKS
    points the build at another notebooks directory. Started in the background once the tests were
    collected (conftest.py)."""
    rc, log = book_build("report").wait(timeout=1700)
    assert rc == 0, log[-9000:]
    return book.BOOK_DIR, book.BOOK_DIR / "_build" / "html"


def glued(out: Path) -> dict[tuple[str, str], str]:
    values = {}
    for path in sorted((out / book.EXECUTED).glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for o in cell.get("outputs", []):
                name = o.get("metadata", {}).get("scrapbook", {}).get("name")
                if name:
                    data = o.get("data", {})
                    values[(path.stem, name)] = next((v for k, v in data.items() if k.endswith("text/plain")), "")
    return values


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_numbers_glued_into_prose_equal_their_table_values(report_book):
    out, _ = report_book
    values = glued(out)
    wrong = []
    for key, compute in EXPECTED.items():
        assert key in values, f"{key} is no longer glued: update EXPECTED"
        expected = compute()
        if not _matches(values[key], expected):
            wrong.append(f"{key[0]} {key[1]}: page says {values[key]!r}, the committed tables give {expected!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_glued_value_is_checked_or_exempt(report_book):
    out, _ = report_book
    loose = sorted(f"{chapter} {name}" for chapter, name in glued(out)
                   if (chapter, name) not in EXPECTED and name not in EXEMPT.get(chapter, {})
                   and "*" not in EXEMPT.get(chapter, {}))
    assert not loose, ("glued into prose but neither checked against a table (EXPECTED) nor exempt with a "
                       "reason (EXEMPT): " + ", ".join(loose))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_report_pages_have_no_badly_written_numbers(report_book):
    _, html = report_book
    bad = []
    for page in browsercheck.pages(html):
        text = re.sub(r"<(script|style|pre|code)[^>]*>.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r'<div class="cell_input.*?</div>\s*</div>', " ", text, flags=re.S)
        text = re.sub(r'src="data:[^"]*"|href="data:[^"]*"', " ", text)
        text = re.sub(r"<[^>]+>", " ", text)
        bad += [f"{page.name}: {p}" for p in browsercheck.text_problems(text)]
    assert not bad, "\n".join(bad)
