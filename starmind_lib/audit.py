"""Chapter 08: the claims of the earlier write-up, each checked against our result tables.

Every claim is a small function ``claim_NN(data) -> Verdict``; the verdict
(``supported``, ``refuted`` or ``inconclusive``) is computed from the tables,
never typed in, and carries the table (and figure) it rests on::

    data = AuditData.load("data/results")
    verdicts = run_audit(data)
    summary(verdicts)               # one row per claim

Rules every claim follows:

* speeds are compared like with like: the write-up measured an interpreter
  (CircuitPython) on a real board, so its absolute speeds are compared only
  with MicroPython speeds measured on hardware; our C runtime (cycle-exact on
  the emulated Pico) is reported beside them, labelled, never mixed in;
* a verdict never rests on predicted numbers alone: predictions are shown,
  labelled, and the verdict is ``inconclusive``;
* missing evidence gives ``inconclusive`` with the reason, never a number;
* quality counts: speed rows carry the model's bits per character.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import pandas as pd

from . import analysis as an

VerdictKind = Literal["supported", "refuted", "inconclusive"]
TRUSTED_SPEED = ("measured_hardware", "cycle_exact_emulation")
GOLDEN = (1 + 5 ** 0.5) / 2


@dataclass
class Verdict:
    claim_id: int
    claim: str
    measurement_text: str
    verdict: VerdictKind
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    runtime: str = ""          # which runtime(s) and how the numbers were obtained
    figure: object = None      # an altair chart, or None when the evidence table says it all

    def __post_init__(self):
        if self.verdict not in ("supported", "refuted", "inconclusive"):
            raise ValueError(f"verdict must be supported, refuted or inconclusive, got {self.verdict!r}")


@dataclass
class AuditData:
    """The result tables the audit reads; a table that does not exist is None, with the reason in ``missing``."""
    variants: pd.DataFrame | None = None
    quant: pd.DataFrame | None = None
    c_runs: pd.DataFrame | None = None
    micropython_runs: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    stats: pd.DataFrame | None = None
    gpu_single: pd.DataFrame | None = None      # a few study configs trained one at a time on one GPU
    missing: dict = field(default_factory=dict)
    synthetic: bool = False

    @classmethod
    def load(cls, results_dir, synthetic: bool = False) -> "AuditData":
        data, loaders = cls(synthetic=synthetic), {
            "variants": lambda: an.load_variants(results_dir, "08"),
            "quant": lambda: an.load_quant(results_dir, "08"),
            "c_runs": lambda: an.load_runs(results_dir, "c", "08"),
            "micropython_runs": lambda: an.load_runs(results_dir, "micropython", "08"),
            "predictions": lambda: an.load_runs(results_dir, "predicted", "08"),
            "stats": lambda: an.read_table(results_dir, "stats", "08"),
            "gpu_single": lambda: an.canonical(an.read_table(results_dir, "gpu_single", "08"))}
        for name, load in loaders.items():
            try:
                setattr(data, name, load())
            except an.MissingResult as exc:
                data.missing[name] = str(exc)
        return data

    def need(self, *names: str) -> str | None:
        """The reason the claim cannot be checked, or None when every table is there."""
        gone = [self.missing.get(n, f"no {n} table") for n in names if getattr(self, n) is None]
        return "; ".join(gone) or None

    def runs(self, trusted_only: bool = True) -> pd.DataFrame:
        """C and MicroPython runs joined to their models; by default only speeds we can trust."""
        frames = [r for r in (self.c_runs, self.micropython_runs) if r is not None]
        if not frames or self.variants is None:
            return pd.DataFrame()
        pts = an.device_points(self.variants, pd.concat(frames, ignore_index=True), self.quant, ok_only=False,
                               trained_only=False)
        if trusted_only:
            pts = pts[pts["speed_source"].isin(TRUSTED_SPEED)]
        return pts.reset_index(drop=True)


def _inconclusive(cid, claim, reason, evidence=None) -> Verdict:
    """No verdict: the reason is the measurement, and the table says what was missing when nothing else can."""
    if evidence is None or evidence.empty:
        evidence = pd.DataFrame([{"claim": cid, "missing evidence": reason}])
    return Verdict(cid, claim, f"Not measurable here: {reason}", "inconclusive", evidence)


def _cols(df, cols):
    return df[[c for c in cols if c in df.columns]]


def _fmt(x, digits=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def _times(x) -> str:
    """A ratio as '1.14x' (or 'n/a')."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}x"


def _runtime_text(df) -> str:
    return "; ".join(sorted(set(df["runtime_label"]))) if "runtime_label" in df and len(df) else ""


# ---- shared analysis: one-factor-at-a-time speed effects ---------------------------------

FACTORS = {  # factor -> (how a step is counted, claimed slowdown range per step)
    "dim": ("doubling", (0.40, 0.50)),
    "n_layers": ("extra layer", (0.25, 0.40)),
    "n_heads": ("doubling", (0.20, 0.25)),
    "ffn_ratio": ("doubling", (0.15, 0.20)),
    "vocab_size": ("doubling", (0.08, 0.12)),
}
CONTEXT = ("runtime", "speed_source", "scheme", "kv_cache", "weights_in", "board", "activation", "pos", "tied",
           "n_tokens", "temperature_q8")


def speed_effects(points: pd.DataFrame, factor: str) -> pd.DataFrame:
    """Pairs of runs that differ only in ``factor``: slowdown per step (doubling or extra layer)."""
    if points.empty or factor not in points.columns:
        return pd.DataFrame()
    fixed = [f for f in FACTORS if f != factor and f in points.columns]
    context = [c for c in CONTEXT if c in points.columns]
    pts = points[(points["status"] == "ok") & points["tokens_per_s"].gt(0)]
    if pts.empty:
        return pd.DataFrame()
    rows = []
    for _, group in pts.groupby(fixed + context, dropna=False, sort=False):
        speeds = group.groupby(factor)["tokens_per_s"].median()   # repeated runs: their median
        label = group["runtime_label"].iloc[0]
        for (fa, ta), (fb, tb) in zip(speeds.iloc[:-1].items(), speeds.iloc[1:].items()):
            steps = (fb - fa) if FACTORS[factor][0] == "extra layer" else math.log2(fb / fa)
            rows.append({"factor": factor, "from": fa, "to": fb, "runtime": label, "tokens_per_s_from": ta,
                         "tokens_per_s_to": tb, "slowdown_per_step": 1 - (tb / ta) ** (1 / steps)})
    return pd.DataFrame(rows)


def _effects_by_runtime(points: pd.DataFrame) -> pd.DataFrame:
    effects = [speed_effects(points, f) for f in FACTORS]
    effects = [e for e in effects if not e.empty]
    if not effects:
        return pd.DataFrame()
    allpairs = pd.concat(effects, ignore_index=True)
    out = allpairs.groupby(["runtime", "factor"], sort=False).agg(
        slowdown_per_step=("slowdown_per_step", "median"), pairs=("slowdown_per_step", "size")).reset_index()
    out["step"] = out["factor"].map(lambda f: FACTORS[f][0])
    out["claimed_low"] = out["factor"].map(lambda f: FACTORS[f][1][0])
    out["claimed_high"] = out["factor"].map(lambda f: FACTORS[f][1][1])
    return out


def _combine(per_runtime: dict[str, VerdictKind]) -> VerdictKind:
    """One verdict from several runtimes: they must agree, else the claim depends on the runtime."""
    kinds = set(per_runtime.values())
    return kinds.pop() if len(kinds) == 1 else "inconclusive"


# ---- the claims ------------------------------------------------------------------------------

CLAIM_TEXT = {
    1: "Vocabulary is limited to 256 tokens by memory fragmentation; 512 and more fail.",
    2: "About 10K parameters is the practical limit on the RP2040.",
    3: ("Speed impact, most to least: width (40-50% slower per doubling), depth (25-40% per extra layer), "
        "heads (20-25% per doubling), FFN ratio (15-20% per doubling), vocabulary (8-12% per doubling)."),
    4: "1-wide models are the fastest (32 tokens/s) and 2-wide reach 24 tokens/s; such models do work.",
    5: "More attention heads make inference faster.",
    6: "Fat FFN layers (64x to 256x the width) are more efficient than thin ones.",
    7: "Fibonacci and golden-ratio allocations of parameters are optimal.",
    8: "Quantisation saves memory but slows inference through de-quantisation overhead.",
    9: "The RP2040's bottleneck is computation, not memory bandwidth.",
    10: "A KV cache speeds multi-token generation 3 to 7 times.",
    11: "Chunked loading removes large-allocation failures.",
    12: "1K-parameter models reach 15-32 tokens/s, 8K models 2-3, 10K models up to 14.5.",
    13: "Each model trains in about 2 minutes on an H100.",
}


def claim_01(data: AuditData) -> Verdict:
    claim = CLAIM_TEXT[1]
    if (reason := data.need("variants")) or (data.c_runs is None and data.micropython_runs is None):
        return _inconclusive(1, claim, reason or data.need("c_runs", "micropython_runs"))
    runs = data.runs(trusted_only=False)
    runs = runs[runs["speed_source"] != "predicted"]
    if "vocab_size" not in runs.columns or runs.empty:
        return _inconclusive(1, claim, "no device run records a vocabulary size")
    table = runs.groupby(["runtime_label", "vocab_size"]).agg(
        runs=("status", "size"), ok=("status", lambda s: int((s == "ok").sum())),
        memory_failures=("status", lambda s: int(s.isin(["out_of_memory", "does_not_fit"]).sum()))).reset_index()
    big = table[table["vocab_size"] >= 512]
    if big.empty:
        return _inconclusive(1, claim, "no vocabulary of 512 or more was run on a board", table)
    if big["ok"].sum() > 0:
        ran = big[big["ok"] > 0]
        text = "; ".join(f"vocabulary {int(r.vocab_size)} ran on {r.runtime_label} ({r.ok} of {r.runs} runs ok)"
                         for r in ran.itertuples())
        return Verdict(1, claim, f"Larger vocabularies run: {text}.", "refuted", table, _runtime_text(runs))
    small_ok = table[(table["vocab_size"] <= 256) & (table["ok"] > 0)]
    all_memory = big["memory_failures"].sum() == big["runs"].sum()
    verdict = "supported" if not small_ok.empty and all_memory else "inconclusive"
    return Verdict(1, claim, f"Every run with a vocabulary of 512 or more failed ({int(big['runs'].sum())} runs); "
                   f"{len(small_ok)} runtime/vocabulary pairs at 256 or less ran.", verdict, table, _runtime_text(runs))


def _is_trained(data: AuditData, model_id) -> bool:
    return model_id in set(data.variants["variant_id"])


def claim_02(data: AuditData, limit: int = 10_000, min_tokens_per_s: float = 1.0) -> Verdict:
    claim = CLAIM_TEXT[2]
    if reason := data.need("variants"):
        return _inconclusive(2, claim, reason)
    runs = data.runs()
    if runs.empty:
        return _inconclusive(2, claim, data.need("c_runs", "micropython_runs") or "no device runs with trusted speeds")
    runs["practical"] = (runs["status"] == "ok") & (runs["tokens_per_s"] >= min_tokens_per_s)
    table = runs.groupby("runtime_label").agg(
        largest_practical_params=("params", lambda p: p[runs.loc[p.index, "practical"]].max()),
        largest_tried_params=("params", "max")).reset_index()
    practical = runs[runs["practical"]].sort_values("params").groupby("runtime_label").tail(1)
    show = [c for c in ("runtime_label", "variant_id", "tokens_per_s", "peak_ram_bytes", "bpc") if c in practical]
    table = table.merge(practical[show].rename(columns={"variant_id": "largest_practical_model"}),
                        on="runtime_label", how="left")
    best = table["largest_practical_params"].max()
    fig = _scatter(runs, "params", "tokens_per_s", "status", log_x=True, rule_x=limit)
    if pd.notna(best) and best >= 2 * limit:
        top = table.loc[table["largest_practical_params"].idxmax()]
        text = (f"{top['largest_practical_model']} ({int(best):,} parameters"
                f"{'' if _is_trained(data, top['largest_practical_model']) else ', untrained: speed and memory do not depend on the weights'}"
                f") runs at {top['tokens_per_s']:.1f} tokens/s on {top['runtime_label']}.")
        # A trained model says more than a size probe: name the largest trained one that runs, with its quality.
        trained = runs[runs["practical"] & runs["variant_id"].isin(set(data.variants["variant_id"]))]
        if not trained.empty:
            t = trained.sort_values(["params", "tokens_per_s"]).iloc[-1]
            text += (f" The largest trained model that runs, {t['variant_id']} ({int(t['params']):,} parameters, "
                     f"{t['bpc']:.2f} bits/char), makes {t['tokens_per_s']:.1f} tokens/s on {t['runtime_label']}.")
        return Verdict(2, claim, text, "refuted", table, _runtime_text(runs), fig)
    if table["largest_tried_params"].max() <= limit:
        return _inconclusive(2, claim, f"no model above {limit:,} parameters was run", table)
    if pd.isna(best):
        return _inconclusive(2, claim, f"no model ran at {min_tokens_per_s:g} token/s or more", table)
    return Verdict(2, claim, f"The largest practical model has {_fmt(best)} parameters; larger ones failed "
                   f"or ran below {min_tokens_per_s:g} token/s.", "supported", table, _runtime_text(runs), fig)


def claim_03(data: AuditData, tolerance: float = 0.05) -> Verdict:
    claim = CLAIM_TEXT[3]
    if reason := data.need("variants"):
        return _inconclusive(3, claim, reason)
    table = _effects_by_runtime(data.runs())
    if table.empty:
        return _inconclusive(3, claim, data.need("c_runs") or "no pairs of runs differ in a single factor")
    table["within_claim"] = table["slowdown_per_step"].between(table["claimed_low"] - tolerance,
                                                               table["claimed_high"] + tolerance)
    per_runtime, texts = {}, []
    claimed_order = list(FACTORS)
    for rt, group in table.groupby("runtime"):
        if len(group) < 3:
            continue
        measured_order = list(group.sort_values("slowdown_per_step", ascending=False)["factor"])
        same_order = measured_order == [f for f in claimed_order if f in measured_order]
        per_runtime[rt] = "supported" if same_order and group["within_claim"].all() else "refuted"
        texts.append(f"{rt}: " + ", ".join(f"{r.factor} {r.slowdown_per_step:+.0%} per {r.step}"
                                            for r in group.itertuples()) +
                     f" (order {'as' if same_order else 'not as'} claimed)")
    if not per_runtime:
        return _inconclusive(3, claim, "fewer than three factors were varied one at a time", table)
    fig = _effect_chart(table)
    return Verdict(3, claim, "Measured slowdown per step: " + "; ".join(texts) + ".", _combine(per_runtime),
                   table, "; ".join(per_runtime), fig)


def _one_setting(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the most common (runtime, weight placement, KV cache) setting: speeds comparable as they are."""
    setting = [c for c in ("runtime", "weights_in", "kv_cache") if c in runs.columns]
    if runs.empty or not setting:
        return runs
    counts = runs.groupby(setting).size()
    deployable = ("c-int8", "flash", True)[:len(setting)]    # what a Pico would run, when it was measured
    common = deployable if deployable in counts.index else counts.idxmax()
    common = common if isinstance(common, tuple) else (common,)
    mask = pd.Series(True, index=runs.index)
    for col, value in zip(setting, common):
        mask &= runs[col].eq(value)
    return runs[mask]


def _unigram_bpc(data: AuditData) -> float | None:
    """Bits per character of letter frequencies alone (the sweep records it beside every model)."""
    for table in (data.variants, data.stats):
        if table is None:
            continue
        for col in ("unigram_bpc", "char_entropy_bits", "unigram_entropy_bits", "entropy_bits_per_char"):
            if col in table.columns and table[col].notna().any():
                return float(table[col].dropna().median())
    return None


def claim_04(data: AuditData, margin_bpc: float = 0.1) -> Verdict:
    claim = CLAIM_TEXT[4]
    if reason := data.need("variants"):
        return _inconclusive(4, claim, reason)
    v = data.variants
    if "dim" not in v.columns or not (v["dim"] <= 2).any():
        return _inconclusive(4, claim, "the sweep trained no 1- or 2-wide model")
    is_narrow = v["dim"] <= 2
    if "axis" in v.columns and (is_narrow & v["axis"].eq("width")).any():
        is_narrow &= v["axis"].eq("width")      # the write-up's configuration: only the width changed
    narrow = _cols(v[is_narrow], ["variant_id", "dim", "n_layers", "params", "val_bpc", "sample"])
    if "sample" in narrow.columns:
        narrow = narrow.assign(sample=narrow["sample"].map(lambda s: an.sample_text(s, 120)))
    unigram = _unigram_bpc(data)
    if unigram is not None and "unigram_bpc" in v.columns:   # each model against its own tokenizer's data
        narrow_unigram = v.loc[narrow.index, "unigram_bpc"].fillna(unigram)
    else:
        narrow_unigram = pd.Series(unigram, index=narrow.index, dtype=float)
    runs = data.runs()
    if not runs.empty and "axis" in runs.columns:
        # Like with like: the width axis varies only the width (same depth, FFN ratio and vocabulary).
        runs = runs[runs["axis"].eq("width") & runs["status"].eq("ok")]
    runs = _one_setting(runs)
    speed = (runs.groupby("dim")["tokens_per_s"].median() if not runs.empty and "dim" in runs
             else pd.Series(dtype=float))
    narrow = narrow.assign(unigram_bpc=narrow_unigram,
                           best_tokens_per_s=narrow["dim"].map(speed) if len(speed) else float("nan"))
    best_bpc = float(v["val_bpc"].min())
    fig = _scatter(v.assign(width=v["dim"].astype(str)), "params", "val_bpc", "width", log_x=True, rule_y=unigram)
    if unigram is None:
        return _inconclusive(4, claim, "no unigram (letter frequency) baseline in the sweep or data tables: "
                             "cannot tell a narrow model from noise", narrow)
    noise = narrow["val_bpc"] >= narrow["unigram_bpc"] - margin_bpc
    text = (f"1- and 2-wide models reach {_fmt(narrow['val_bpc'].min())} bits/char against "
            f"{_fmt(narrow['unigram_bpc'].median())} for letter frequencies alone and {_fmt(best_bpc)} for our "
            "best model")
    if noise.all():
        return Verdict(4, claim, text + ": they emit noise, however fast.", "refuted", narrow, _runtime_text(runs), fig)
    fastest_dim = speed.idxmax() if len(speed) else None
    if fastest_dim is None:
        return Verdict(4, claim, text + ": they learn something, but there are no device speeds to check "
                       "'fastest'.", "inconclusive", narrow, "training (validation bits per character)", fig)
    verdict = "supported" if fastest_dim <= 2 else "refuted"
    return Verdict(4, claim, text + f"; the fastest width on device is {int(fastest_dim)} "
                   f"({_fmt(speed.max())} tokens/s, {_runtime_text(runs)}).", verdict, narrow, _runtime_text(runs), fig)


def claim_05(data: AuditData, min_gain: float = 0.02) -> Verdict:
    claim = CLAIM_TEXT[5]
    if reason := data.need("variants"):
        return _inconclusive(5, claim, reason)
    pairs = speed_effects(data.runs(), "n_heads")
    if pairs.empty:
        return _inconclusive(5, claim, data.need("c_runs") or "no pairs of runs differ only in the number of heads")
    per_runtime, texts = {}, []
    for rt, group in pairs.groupby("runtime"):
        gain = -group["slowdown_per_step"].median()
        per_runtime[rt] = "supported" if gain > min_gain else "refuted"
        texts.append(f"{rt}: doubling the heads changes speed by {gain:+.1%} (median of {len(group)} pairs)")
    fig = _scatter(pairs.assign(pair=pairs.index.astype(str)), "from", "slowdown_per_step", "runtime")
    return Verdict(5, claim, "; ".join(texts) + ".", _combine(per_runtime), pairs, "; ".join(per_runtime), fig)


def _front_share(v: pd.DataFrame, flag: pd.Series) -> tuple[pd.DataFrame, int, int]:
    front = an.pareto_mask(v, minimize=["val_bpc", "params"])
    table = v.assign(on_front=front, flagged=flag)
    return table, int((front & flag).sum()), int((front & ~flag).sum())


def claim_06(data: AuditData, fat_ratio: float = 64, thin_ratio: float = 4) -> Verdict:
    claim = CLAIM_TEXT[6]
    if reason := data.need("variants"):
        return _inconclusive(6, claim, reason)
    v = data.variants
    if "ffn_ratio" not in v.columns:
        return _inconclusive(6, claim, "the sweep table records no FFN size")
    fat, thin = v["ffn_ratio"] >= fat_ratio, v["ffn_ratio"] <= thin_ratio
    if not fat.any() or not thin.any():
        return _inconclusive(6, claim, f"the sweep has no FFN ratio ≥ {fat_ratio:g} (largest: "
                             f"{_fmt(v['ffn_ratio'].max())}) or none ≤ {thin_ratio:g}")
    sub = v[fat | thin]
    table, fat_front, thin_front = _front_share(sub, sub["ffn_ratio"] >= fat_ratio)
    table = _cols(table, ["variant_id", "params", "val_bpc", "ffn_ratio", "on_front"])
    text = (f"On the quality/size front of {fat_front + thin_front} models, {fat_front} have an FFN ≥ "
            f"{fat_ratio:g}x the width (largest tried: {_fmt(v['ffn_ratio'].max())}x) and {thin_front} "
            f"≤ {thin_ratio:g}x.")
    verdict = "supported" if fat_front > thin_front else "refuted" if thin_front > fat_front else "inconclusive"
    fig = _scatter(table, "params", "val_bpc", "ffn_ratio", log_x=True)
    return Verdict(6, claim, text, verdict, table, "training (validation bits per character)", fig)


def is_golden(v: pd.DataFrame, tol: float = 0.05) -> pd.Series:
    """The write-up's allocations: the sweep's own 'golden' axis when it has one, else variants whose
    FFN/width ratio is a power of φ (1 to 3) or whose width and FFN are Fibonacci numbers one or two apart."""
    if "axis" in v.columns:
        return v["axis"].astype(str).eq("golden")
    fib = [1, 2]
    while fib[-1] < 1 << 20:
        fib.append(fib[-1] + fib[-2])
    fib_pairs = set(zip(fib, fib[1:])) | set(zip(fib, fib[2:]))
    ratio = v["ffn_hidden"] / v["dim"]
    by_ratio = pd.concat([(ratio / GOLDEN ** k - 1).abs() <= tol for k in (1, 2, 3)], axis=1).any(axis=1)
    by_fib = pd.Series([(d, h) in fib_pairs for d, h in zip(v["dim"], v["ffn_hidden"])], index=v.index)
    return by_ratio | by_fib


def claim_07(data: AuditData, tol_bpc: float = 0.01) -> Verdict:
    claim = CLAIM_TEXT[7]
    if reason := data.need("variants"):
        return _inconclusive(7, claim, reason)
    v = data.variants
    if not {"dim", "ffn_hidden"} <= set(v.columns):
        return _inconclusive(7, claim, "the sweep table records no width/FFN sizes")
    golden = is_golden(v)
    if not golden.any():
        return _inconclusive(7, claim, "the sweep has no Fibonacci or golden-ratio allocation")
    if golden.all():
        return _inconclusive(7, claim, "every variant is golden: nothing to compare with")
    beaten = []
    for _, g in v[golden].iterrows():
        better = v[~golden & (v["params"] <= g["params"]) & (v["val_bpc"] < g["val_bpc"] - tol_bpc)]
        if not better.empty:
            b = better.sort_values("val_bpc").iloc[0]
            beaten.append({"golden": g["variant_id"], "golden_params": g["params"], "golden_bpc": g["val_bpc"],
                           "beaten_by": b["variant_id"], "params": b["params"], "bpc": b["val_bpc"]})
    table, gold_front, other_front = _front_share(v, golden)
    fig = _scatter(table.assign(allocation=table["flagged"].map({True: "golden/Fibonacci", False: "other"})),
                   "params", "val_bpc", "allocation", log_x=True)
    text = (f"{int(golden.sum())} golden/Fibonacci variants against {int((~golden).sum())} others; "
            f"{len(beaten)} golden variants are beaten by a smaller or equal non-golden one; the quality/size "
            f"front holds {gold_front} golden and {other_front} other variants.")
    verdict = "refuted" if beaten else ("supported" if other_front == 0 else "inconclusive")
    evidence = (pd.DataFrame(beaten) if beaten
                else _cols(table, ["variant_id", "params", "val_bpc", "flagged", "on_front"]))
    return Verdict(7, claim, text, verdict, evidence, "training (validation bits per character)", fig)


def _paired(runs: pd.DataFrame, column: str, a, b, value: str = "tokens_per_s", ignore=()) -> pd.DataFrame:
    """Runs of the same model and context that differ only in ``column`` (a vs b): one row per pair."""
    if column not in runs.columns or runs.empty:
        return pd.DataFrame()
    ok = runs[(runs["status"] == "ok") & runs[value].notna()]
    context = ["variant_id"] + [c for c in CONTEXT if c in ok.columns and c != column and c not in ignore]
    ok = ok.assign(_side=ok[column].map(lambda x: "a" if _same(x, a) else "b" if _same(x, b) else None))
    ok = ok[ok["_side"].notna()]
    wide = ok.pivot_table(index=context + ["runtime_kind"], columns="_side", values=value, aggfunc="median",
                          dropna=False)
    if not {"a", "b"} <= set(wide.columns):
        return pd.DataFrame()
    wide = wide.dropna(subset=["a", "b"]).reset_index().rename(columns={"a": f"{value}_{a}", "b": f"{value}_{b}"})
    wide["ratio"] = wide[f"{value}_{b}"] / wide[f"{value}_{a}"]
    return wide


def _same(x, target) -> bool:
    if isinstance(target, bool):
        return str(x).lower() in (("true", "1", "on", "yes") if target else ("false", "0", "off", "no"))
    return str(x).lower() == str(target).lower() or str(target).lower() in str(x).lower()


def _quant_cost(quant: pd.DataFrame | None) -> tuple[float, float]:
    """From the quantisation table: median int8/float32 size ratio and median bpc added by int8 (NaN if unknown)."""
    if quant is None or not {"variant_id", "scheme", "flash_bytes", "val_bpc"} <= set(quant.columns):
        return float("nan"), float("nan")
    wide = quant.pivot_table(index="variant_id", columns="scheme", values=["flash_bytes", "val_bpc"])
    if ("flash_bytes", "float32") not in wide or ("flash_bytes", "int8_engine") not in wide:
        return float("nan"), float("nan")
    size = (wide[("flash_bytes", "int8_engine")] / wide[("flash_bytes", "float32")]).median()
    cost = (wide[("val_bpc", "int8_engine")] - wide[("val_bpc", "float32")]).median()
    return float(size), float(cost)


def claim_08(data: AuditData, slower: float = 0.95) -> Verdict:
    claim = CLAIM_TEXT[8]
    if reason := data.need("variants"):
        return _inconclusive(8, claim, reason)
    runs = data.runs()
    speed = _paired(runs, "scheme", "float32", "int8", ignore=("runtime",))
    size_col = "model_bytes" if "model_bytes" in runs.columns else "flash_bytes"   # the model, not the firmware
    size = _paired(runs, "scheme", "float32", "int8", value=size_col, ignore=("runtime",))
    # Sizes from the quantisation table cover every study model; the device-run pairs are mostly small
    # models, whose files are dominated by the vocabulary and lookup tables, so they are only a fallback.
    q_size, q_cost = _quant_cost(data.quant)
    size_ratio = q_size if not math.isnan(q_size) else (
        float(size["ratio"].median()) if not size.empty else float("nan"))
    size_text = ("sizes not measured" if math.isnan(size_ratio)
                 else f"an int8 model file is {_times(size_ratio)} the size of the float32 one (median model)")
    if not math.isnan(q_cost):
        size_text += f" and adds {q_cost:+.3f} bits/char (chapter 05)"
    if speed.empty:
        return _inconclusive(8, claim, f"{size_text}; but no model was run both as float32 and as int8 on a "
                             "device, so the speed half is unmeasured")
    speedup = float(speed["ratio"].median())
    text = (f"int8 runs at {speedup:.2f}x the float32 speed (median of {len(speed)} pairs of runs, "
            f"{speed['variant_id'].nunique()} models); {size_text}.")
    if speedup >= slower:
        verdict = "refuted"                       # no slowdown: the claim's mechanism is absent
    elif math.isnan(size_ratio):
        verdict = "inconclusive"
    else:
        verdict = "supported" if size_ratio < 1 else "refuted"
    fig = _bar(speed, "variant_id", "ratio", "runtime_kind", rule=1.0, title="int8 speed / float32 speed")
    return Verdict(8, claim, text, verdict, speed, _runtime_text(runs), fig)


XIP_CACHE_BYTES = 16 * 1024   # the RP2040's flash cache (datasheet 2.6.3)


def claim_09(data: AuditData, compute_bound: float = 1.15, memory_bound: float = 1.5) -> Verdict:
    claim = CLAIM_TEXT[9]
    if reason := data.need("variants", "c_runs"):
        return _inconclusive(9, claim, reason)
    runs = data.runs()
    value = "cycles_per_token" if "cycles_per_token" in runs.columns else "tokens_per_s"
    pairs = _paired(runs, "weights_in", "sram", "flash", value=value)
    if pairs.empty:
        return _inconclusive(9, claim, "no model was run with its weights both in SRAM and in flash (XIP)")
    size_col = "model_bytes" if "model_bytes" in runs.columns else "flash_bytes"
    sizes = runs.groupby("variant_id")[size_col].max() if size_col in runs.columns else pd.Series(dtype=float)
    pairs = pairs.assign(flash_over_sram=pairs["ratio"] if value == "cycles_per_token" else 1 / pairs["ratio"],
                         model_kb=pairs["variant_id"].map(sizes) / 1024)
    # Weights that fit the 16 KB XIP cache are read from flash once: only larger models test the claim.
    big = pairs[pairs["model_kb"] * 1024 > XIP_CACHE_BYTES]
    small = pairs.drop(big.index)
    text = (f"Reading weights through the flash XIP cache instead of SRAM costs "
            f"{_times(small['flash_over_sram'].median())} the cycles per token for models that fit the 16 KB "
            f"cache ({len(small)} pairs of runs) and {_times(big['flash_over_sram'].median())} for larger ones "
            f"({len(big)} pairs, up to {_times(pairs['flash_over_sram'].max())}).")
    if big.empty:
        verdict = "inconclusive"
        text += " No model larger than the cache was run both ways."
    else:
        med = float(big["flash_over_sram"].median())
        verdict = "supported" if med <= compute_bound else "refuted" if med >= memory_bound else "inconclusive"
    if "cycles_per_token_raw" in runs.columns:
        # The XIP model adds a fixed penalty per cache miss: raw cycles are the same run without it.
        flash = runs[runs["weights_in"].astype(str).str.lower().eq("flash") & runs["cycles_per_token_raw"].notna()]
        stall = (1 - flash["cycles_per_token_raw"] / flash["cycles_per_token"]).groupby(flash["variant_id"]).max()
        if len(stall):
            text += (f" With weights in flash, cache-miss stalls take up to {stall.max():.0%} of the cycles per "
                     f"token (median over {len(stall)} models {stall.median():.0%}).")
    macs = pd.Series(an.macs_per_token(data.variants))
    sram = runs[runs["weights_in"].astype(str).str.lower().eq("sram") & runs["variant_id"].isin(macs.index)]
    if "cycles_per_token" in sram.columns and sram["cycles_per_token"].notna().any():
        per_mac = (sram["cycles_per_token"] / sram["variant_id"].map(macs)).groupby(sram["runtime"]).median()
        text += (" With weights in SRAM a token costs " +
                 ", ".join(f"{c:.1f} cycles per multiply-accumulate on {rt}" for rt, c in per_mac.dropna().items())
                 + " (median; MACs counted by the planner, all other work included).")
    fig = _scatter(pairs, "model_kb", "flash_over_sram", "runtime_kind", log_x=True, rule_x=XIP_CACHE_BYTES / 1024)
    return Verdict(9, claim, text, verdict, pairs.sort_values("model_kb"), _runtime_text(runs), fig)


def claim_10(data: AuditData, low: float = 3.0, high: float = 7.0) -> Verdict:
    claim = CLAIM_TEXT[10]
    if reason := data.need("variants"):
        return _inconclusive(10, claim, reason)
    pairs = _paired(data.runs(), "kv_cache", False, True)
    if pairs.empty:
        return _inconclusive(10, claim, data.need("c_runs") or "no model was run both with and without a KV cache")
    med = float(pairs["ratio"].median())
    text = (f"The KV cache speeds generation {med:.1f}x (median of {len(pairs)} pairs of runs, range "
            f"{pairs['ratio'].min():.1f}-{pairs['ratio'].max():.1f}x)")
    if "n_tokens" in pairs.columns:   # the gain grows with the context: say how long the runs were
        lengths = sorted(set(pairs["n_tokens"].dropna().astype(int)))
        text += f" generating {', '.join(map(str, lengths))} tokens"
        if "n_prompt" in data.runs().columns:
            text += f" after a {int(data.runs()['n_prompt'].median())}-token prompt"
    text += "." if low <= med <= high else (" — more than the claim says." if med > high else
                                            " — less than the claim says.")
    verdict = "supported" if low <= med <= high else "refuted"
    fig = _bar(pairs, "variant_id", "ratio", "runtime_kind", rule=low, title="speed with / without KV cache")
    return Verdict(10, claim, text, verdict, pairs, _runtime_text(data.runs()), fig)


def claim_11(data: AuditData) -> Verdict:
    claim = CLAIM_TEXT[11]
    if reason := data.need("variants"):
        return _inconclusive(11, claim, reason)
    frames = [f for f in (data.micropython_runs, data.predictions) if f is not None and "loader" in f.columns]
    if not frames:   # nobody measured the loaders: the planner's allocation model still shows the mechanism
        frames = [an.loader_predictions(data.variants)]
    if frames[0].empty:
        return _inconclusive(11, claim, "no MicroPython run or prediction of the two loaders")
    runs = an.device_points(data.variants, pd.concat(frames, ignore_index=True), ok_only=False)
    runs = runs.assign(ok=runs["status"] == "ok")
    table = runs.pivot_table(index=["variant_id", "speed_source"], columns="loader", values="ok", aggfunc="max")
    if not {"chunked", "whole"} <= set(table.columns):
        return _inconclusive(11, claim, "the loader was not varied (need both 'chunked' and 'whole')")
    table = (table.dropna(subset=["chunked", "whole"]).astype({"chunked": bool, "whole": bool}).reset_index()
             .sort_values(["whole", "chunked"]))                    # failures first
    measured = table[table["speed_source"] != "predicted"]
    basis = measured if not measured.empty else table
    rescued = int((basis["chunked"] & ~basis["whole"]).sum())
    whole_fail = int((~basis["whole"]).sum())
    both_fail = int((~basis["chunked"] & ~basis["whole"]).sum())
    text = (f"Of {len(basis)} models, whole-file loading fails for {whole_fail}; chunked loading rescues "
            f"{rescued} and {both_fail} fail either way")
    fig = None
    if "largest_alloc_bytes" in runs.columns:
        fig = _scatter(runs.assign(largest_alloc_kb=runs["largest_alloc_bytes"] / 1024), "params",
                       "largest_alloc_kb", "loader", log_x=True)
    if measured.empty:
        return Verdict(11, claim, text + " (predicted by the planner's heap model; no board measured the two "
                       "loaders, so no verdict).", "inconclusive", table, "MicroPython on a stock Pico, predicted", fig)
    verdict = ("inconclusive" if whole_fail == 0 else "supported" if rescued and not both_fail
               else "refuted" if not rescued else "inconclusive")
    return Verdict(11, claim, text + ".", verdict, measured,
                   _runtime_text(runs[runs["speed_source"] != "predicted"]), fig)


CLAIM_12_BANDS = [  # (label, params low, params high, claimed tokens/s low, high)
    ("~1K params", 500, 2_000, 15.0, 32.0),
    ("~8K params", 6_000, 9_000, 2.0, 3.0),
    ("~10K params", 9_000, 12_000, 0.0, 14.5),
]


def claim_12(data: AuditData, tolerance: float = 0.25) -> Verdict:
    claim = CLAIM_TEXT[12]
    if reason := data.need("variants"):
        return _inconclusive(12, claim, reason)
    frames = [f for f in (data.c_runs, data.micropython_runs, data.predictions) if f is not None]
    if not frames:
        return _inconclusive(12, claim, data.need("c_runs", "micropython_runs", "predictions"))
    runs = an.device_points(data.variants, pd.concat(frames, ignore_index=True), data.quant)
    rows = []
    for label, lo, hi, slo, shi in CLAIM_12_BANDS:
        band = runs[runs["params"].between(lo, hi)]
        for rt, g in band.groupby("runtime_label"):
            med = float(g["tokens_per_s"].median())
            rows.append({"band": label, "runtime": rt, "speed_source": g["speed_source"].iloc[0],
                         "models": g["variant_id"].nunique(), "tokens_per_s": med,
                         "bpc": float(g["bpc"].median()), "claimed_low": slo, "claimed_high": shi,
                         "within_claim": slo * (1 - tolerance) <= med <= shi * (1 + tolerance)})
    table = pd.DataFrame(rows)
    if table.empty:
        return _inconclusive(12, claim, "no device run of a model near 1K, 8K or 10K parameters")
    fig = _scatter(runs, "params", "tokens_per_s", "runtime_label", log_x=True)
    like = table[table["runtime"].str.contains("micropython", case=False)
                 & (table["speed_source"] == "measured_hardware")]
    text = "; ".join(f"{r.band} on {r.runtime}: {r.tokens_per_s:.3g} tokens/s (bpc {r.bpc:.3g})"
                     for r in table.itertuples())
    if like.empty:
        return Verdict(12, claim, text + ". The claim is about an interpreter on a real board; no MicroPython "
                       "speed measured on a Pico is available, so no verdict.", "inconclusive", table,
                       _runtime_text(runs), fig)
    verdict = "supported" if like["within_claim"].all() else "refuted"
    return Verdict(12, claim, text + ".", verdict, table, _runtime_text(runs), fig)


def claim_13(data: AuditData, claimed_s: float = 120.0) -> Verdict:
    claim = CLAIM_TEXT[13]
    if reason := data.need("variants"):
        return _inconclusive(13, claim, reason)
    v = data.variants
    if not {"wall_s", "machine"} <= set(v.columns):
        return _inconclusive(13, claim, "the sweep table records no training wall time or machine")
    table = v.groupby("machine").agg(models=("variant_id", "size"), median_wall_s=("wall_s", "median"),
                                     max_wall_s=("wall_s", "max")).reset_index()
    if "tokens_trained" in v.columns:
        table["median_tokens_trained"] = v.groupby("machine")["tokens_trained"].median().values
    on_gpu = v["machine"].astype(str).str.contains("H100|H200|A100|NVIDIA|GPU", case=False, regex=True)
    if "device" in v.columns:   # the sweep records where each model trained ("cuda" or "cpu")
        on_gpu |= v["device"].astype(str).str.startswith("cuda")
    gpu = table[table["machine"].isin(v.loc[on_gpu, "machine"])]
    fig = _bar(v, "variant_id", "wall_s", "machine", rule=claimed_s, title="training wall time (s)")
    if gpu.empty:
        return _inconclusive(13, claim, f"every model was trained on {', '.join(table['machine'])}, not a GPU",
                             table)
    med = float(gpu["median_wall_s"].median())
    text = f"Median training time {med:.0f} s per model on {', '.join(gpu['machine'])}"
    if "median_tokens_trained" in gpu.columns:   # the time scales with the token budget: say what it was
        text += f", each trained on {gpu['median_tokens_trained'].median():,.0f} tokens"
    text += " (the study's sweep: several models share the GPU)."
    single = data.gpu_single
    if single is not None and not single.empty and {"wall_s", "machine"} <= set(single.columns):
        # The claim's own setting: one model at a time on one H100.
        one = single.groupby("machine").agg(models=("variant_id", "size"), median_wall_s=("wall_s", "median"),
                                            max_wall_s=("wall_s", "max")).reset_index()
        one["setting"] = "one model at a time"
        table["setting"] = "sweep, models share the GPU"
        table = pd.concat([table, one], ignore_index=True)
        med = float(single["wall_s"].median())
        text += (f" Trained alone on {', '.join(one['machine'])}, {len(single)} study models of "
                 f"{int(single['params'].min()):,} to {int(single['params'].max()):,} parameters take "
                 f"{med:.0f} s each (median; at most {single['wall_s'].max():.0f} s).")
    verdict = "supported" if claimed_s / 2 <= med <= claimed_s * 2 else "refuted"
    return Verdict(13, claim, text, verdict, table, "training", fig)


CLAIMS: dict[int, Callable[[AuditData], Verdict]] = {
    1: claim_01, 2: claim_02, 3: claim_03, 4: claim_04, 5: claim_05, 6: claim_06, 7: claim_07,
    8: claim_08, 9: claim_09, 10: claim_10, 11: claim_11, 12: claim_12, 13: claim_13}


def run_audit(data: AuditData) -> list[Verdict]:
    """Every claim's verdict; a claim whose check crashes is reported as inconclusive with the error."""
    out = []
    for cid, check in CLAIMS.items():
        try:
            out.append(check(data))
        except (KeyError, ValueError, TypeError, an.MissingResult) as exc:  # tables of an unexpected shape
            out.append(_inconclusive(cid, CLAIM_TEXT[cid],
                                     f"the check failed on these tables ({type(exc).__name__}: {exc})"))
    return out


def summary(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([{"claim": v.claim_id, "statement": v.claim, "verdict": v.verdict,
                          "our measurement": v.measurement_text, "runtime": v.runtime} for v in verdicts])


def save_summary(verdicts: list[Verdict], results_dir, profile: str = "") -> Path:
    """Write ``<results_dir>/audit/verdicts.csv`` (with provenance) atomically; return its path."""
    from .provenance import atomic_path, provenance
    path = Path(results_dir) / "audit" / "verdicts.csv"
    frame = summary(verdicts).assign(**provenance(profile=profile))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    """How many claims got each verdict (every kind present, zero included)."""
    return {kind: sum(v.verdict == kind for v in verdicts) for kind in ("supported", "refuted", "inconclusive")}


# ---- small figures -------------------------------------------------------------------------------

def _scatter(df, x, y, color, log_x=False, rule_x=None, rule_y=None):
    import altair as alt
    if df is None or df.empty or x not in df or y not in df:
        return None
    tip = [c for c in ("variant_id", x, y, color, "runtime_label", "val_bpc", "bpc") if c in df.columns]
    base = alt.Chart(df.reset_index(drop=True)).mark_circle(size=60).encode(
        x=alt.X(f"{x}:Q", scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False)),
        y=alt.Y(f"{y}:Q", scale=alt.Scale(zero=False)), color=alt.Color(f"{color}:N"),
        tooltip=list(dict.fromkeys(tip)))
    layers = [base]
    if rule_x is not None:
        layers.append(alt.Chart(pd.DataFrame({x: [rule_x]})).mark_rule(strokeDash=[4, 3]).encode(x=f"{x}:Q"))
    if rule_y is not None:
        layers.append(alt.Chart(pd.DataFrame({y: [rule_y]})).mark_rule(strokeDash=[4, 3]).encode(y=f"{y}:Q"))
    return alt.layer(*layers).properties(width=420, height=240).interactive()


def _bar(df, x, y, color, rule=None, title=""):
    import altair as alt
    if df is None or df.empty:
        return None
    bars = alt.Chart(df.reset_index(drop=True)).mark_bar().encode(
        x=alt.X(f"{x}:N", sort="-y"), y=alt.Y(f"{y}:Q", title=title or y), color=f"{color}:N",
        tooltip=[c for c in (x, y, color) if c in df.columns])
    if rule is None:
        return bars.properties(width=420, height=240)
    line = alt.Chart(pd.DataFrame({y: [rule]})).mark_rule(strokeDash=[4, 3], color="black").encode(y=f"{y}:Q")
    return (bars + line).properties(width=420, height=240)


def _effect_chart(table):
    import altair as alt
    base = alt.Chart(table).encode(y=alt.Y("factor:N", sort=list(FACTORS)))
    claimed = alt.Chart(table.drop_duplicates("factor")).mark_bar(opacity=0.3, color="gray").encode(
        y=alt.Y("factor:N", sort=list(FACTORS)), x="claimed_low:Q", x2="claimed_high:Q")
    measured = base.mark_point(filled=True, size=80).encode(
        x=alt.X("slowdown_per_step:Q", title="slowdown per step (grey: claimed range)", axis=alt.Axis(format="%")),
        color="runtime:N", tooltip=["runtime", "factor", "slowdown_per_step", "pairs"])
    return (claimed + measured).properties(width=420, height=200)
