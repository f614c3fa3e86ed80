"""Chapter 08: the claims of the earlier write-up, each checked against our result tables.

Every claim is a small function ``claim_NN(data) -> Verdict``; the verdict is computed
from the tables, never typed in, and carries the table (and figure) it rests on. The
verdicts say what happened (``VERDICTS``): ``supported``; ``refuted`` (the effect is
absent or goes the other way); ``direction supported, size differs`` (the effect is
there, but larger or smaller than claimed); ``not comparable`` (our setting cannot be
matched to the write-up's); ``inconclusive`` (the evidence is missing). A claim whose
answer depends on the runtime carries one verdict per runtime (``per_runtime``)::

    data = AuditData.load("data/results")
    verdicts = run_audit(data)
    summary(verdicts)               # one row per claim

Rules every claim follows:

* speeds are compared like with like: the write-up measured an interpreter
  (CircuitPython) on a real board, so its absolute speeds are compared only
  with MicroPython speeds measured on hardware; our C runtime (cycle-counted
  emulation of the Pico, see ``EMULATION_NOTE``) is reported beside them, labelled,
  never mixed in;
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

from ..numbers import fmt_num, fmt_ratio
from . import tables as an

VerdictKind = Literal["supported", "refuted", "direction supported, size differs", "not comparable",
                      "inconclusive"]
VERDICTS: tuple[str, ...] = ("supported", "refuted", "direction supported, size differs", "not comparable",
                             "inconclusive")
SIZE_DIFFERS = "direction supported, size differs"
# Speeds a verdict may rest on: measured on a board, or counted on the emulated Pico (with or without the
# XIP cache-miss model; "cycle_exact_emulation" is the older name of the same source, in older rows).
TRUSTED_SPEED = ("measured_hardware", "cycle_counted_emulation", "emulation_xip_model", "cycle_exact_emulation")
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
    per_runtime: dict = field(default_factory=dict)   # runtime label -> verdict, when the answer depends on it
    claim_setting: str = ""    # the claim evaluated at the write-up's own settings, where it gives them

    def __post_init__(self):
        for kind in (self.verdict, *self.per_runtime.values()):
            if kind not in VERDICTS:
                raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {kind!r}")


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
    training: pd.DataFrame | None = None        # the first study's sweep as trained: its machines and wall times
    missing: dict = field(default_factory=dict)
    synthetic: bool = False
    bpc_source: str = ""                        # which study scored the variants (chapter 07's rule)
    seed_bpc: dict = field(default_factory=dict)  # {config_hash: per-seed bpc} of the tier that scored each variant
    # The design claims (6, 7) compare configurations at one training budget: Study v2's base tier, where every
    # configuration has its seeds (None for the v1 table: ``design()`` then falls back to ``variants``).
    base_variants: pd.DataFrame | None = None
    base_seed_bpc: dict = field(default_factory=dict)

    def _study_variants(self, results_dir) -> pd.DataFrame:
        """The variants as chapter 07 scores them: Study v2 (whole split, long tier first) once it covers the
        grid, else the v1 table; the sentence saying which is kept in ``bpc_source``."""
        from .seeds import load_study_variants
        variants, self.bpc_source = load_study_variants(results_dir, "08")
        return variants

    @classmethod
    def load(cls, results_dir, synthetic: bool = False) -> "AuditData":
        data, loaders = cls(synthetic=synthetic), {
            "variants": lambda: data._study_variants(results_dir),
            "training": lambda: an.load_variants(results_dir, "08"),
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
        from .seeds import load_study, load_study_variants, scored_seed_values
        study = load_study(results_dir)
        data.seed_bpc = scored_seed_values(study, data.variants)   # {} for the v1 table
        if data.variants is not None and "study_tier" in data.variants.columns:
            base, _ = load_study_variants(results_dir, "08", tiers=("base",))
            if "study_tier" in base.columns:                         # Study v2 covers the grid at the base tier
                data.base_variants, data.base_seed_bpc = base, scored_seed_values(study, base)
        return data

    def design(self) -> tuple[pd.DataFrame, dict, str]:
        """The variants, their per-seed scores and the budget in words for claims that compare designs: one
        training budget (the base tier) when Study v2 has it, else the page's variants as they are."""
        if self.base_variants is None:
            return self.variants, self.seed_bpc, ""
        v = self.base_variants
        lo, hi = int(v["n_seeds"].min()), int(v["n_seeds"].max())
        seeds = f"{lo}" if lo == hi else f"{lo} to {hi}"
        tokens = int(v["tokens_trained"].median())
        return v, self.base_seed_bpc, (f"one training budget, Study v2's base tier ({tokens:,} tokens, {seeds} "
                                       "seeds per configuration)")

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


def config_key(df: pd.DataFrame) -> pd.Series:
    """The model each row is of: its configuration hash, else (a v1 row, a reference model) its own name."""
    return df["config_hash"].fillna(df["variant_id"]) if "config_hash" in df.columns else df["variant_id"]


def distinct_configs(v: pd.DataFrame, flag: pd.Series | None = None) -> tuple[pd.DataFrame, pd.Series | None]:
    """One row per configuration (``config_hash``): names that share one are aliases of one trained model and
    count once, named together ("fib-d8-f21 (= fib-depth-d8-l2)"); ``flag`` is true for a configuration when
    it is for any of its names. Without ``config_hash`` every name is its own configuration."""
    if "config_hash" not in v.columns or v.empty:
        return v, flag
    from .pareto import one_per_configuration
    key = config_key(v)
    first = one_per_configuration(v.assign(config_hash=key))
    first = first.assign(variant_id=first.pop("names"), config_hash=v.loc[first.index, "config_hash"])
    if flag is not None:
        flag = flag.groupby(key, sort=False).any().loc[key[first.index]].set_axis(first.index)
    return first, flag


def distinct_pairs(pairs: pd.DataFrame, variants: pd.DataFrame | None) -> pd.DataFrame:
    """Pairs of runs with one row per configuration and setting: the same run joined to two alias names of
    one configuration counts once (the first name is kept)."""
    if pairs.empty or variants is None or "config_hash" not in variants.columns:
        return pairs
    cfg = pairs["variant_id"].map(dict(zip(variants["variant_id"], variants["config_hash"])))
    cfg = cfg.fillna(pairs["variant_id"])
    same = [c for c in (*CONTEXT, "runtime_kind") if c in pairs.columns]
    keys = pd.Series(list(zip(cfg.map(str), *(pairs[c].map(str) for c in same))), index=pairs.index)
    return pairs.loc[~keys.duplicated()]


def _inconclusive(cid, claim, reason, evidence=None) -> Verdict:
    """No verdict: the reason is the measurement, and the table says what was missing when nothing else can."""
    if evidence is None or evidence.empty:
        evidence = pd.DataFrame([{"claim": cid, "missing evidence": reason}])
    return Verdict(cid, claim, f"Not measurable here: {reason}", "inconclusive", evidence)


def _cols(df, cols):
    return df[[c for c in cols if c in df.columns]]


def _fmt(x, digits=3) -> str:
    return fmt_num(x, sig=digits)


def _times(x) -> str:
    """A ratio as '1.14x' (or 'n/a')."""
    return fmt_ratio(x)


def range_verdict(value: float, low: float, high: float, neutral: float = 1.0) -> VerdictKind:
    """A claimed range [low, high] of an effect against a measured value: inside it ``supported``; on the
    claimed side of ``neutral`` (no effect) but outside the range ``direction supported, size differs``;
    at or beyond ``neutral`` (no effect, or the other way) ``refuted``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "inconclusive"
    if low <= value <= high:
        return "supported"
    return SIZE_DIFFERS if (value - neutral) * (low - neutral) > 0 else "refuted"


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
    """One verdict from several runtimes: they must agree, else the claim depends on the runtime
    (``inconclusive`` overall; the per-runtime verdicts say which way each went)."""
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


# ---- small figures -------------------------------------------------------------------------------

# Legends go under the chart, in columns, with no label cut short: a legend at the right of a 420 px
# chart runs off a narrow page.
LEGEND_BELOW = {"orient": "bottom", "direction": "vertical", "columns": 1, "labelLimit": 0, "symbolLimit": 0}
COLUMN_TITLES = {"variant_id": "model", "runtime_label": "runtime (how measured)", "runtime_kind": "runtime family",
                 "bpc_of": "bpc of", "val_bpc": "validation bits/char", "params": "parameters",
                 "model_kb": "model file (KB)", "flash_over_sram": "flash cycles / SRAM cycles",
                 "wall_s": "training wall time (s)", "tokens_per_s": "tokens/s", "ffn_ratio": "FFN ratio",
                 "dim": "width", "slowdown_per_step": "slowdown per step", "largest_alloc_kb": "largest allocation (KB)"}


def color_title(name: str) -> str:
    """A reader's name for a column (raw column names stay out of charts)."""
    return COLUMN_TITLES.get(name, name.replace("_", " "))

def _scatter(df, x, y, color, log_x=False, rule_x=None, rule_y=None, color_type="N", title=""):
    import altair as alt

    from ..book.figures import log_ticks
    if df is None or df.empty or x not in df or y not in df:
        return None
    tip = [c for c in ("variant_id", x, y, color, "runtime_label", "val_bpc", "bpc") if c in df.columns]
    colour = (alt.Color(f"{color}:Q", scale=alt.Scale(type="log", scheme="viridis"), title=color_title(color))
              if color_type == "Q" else alt.Color(f"{color}:N", title=color_title(color), legend=LEGEND_BELOW))
    base = alt.Chart(df.reset_index(drop=True)).mark_circle(size=60).encode(
        # explicit ticks: Vega's own (1, 2, ... 9 per decade; or every 0.5) run together on a 420-pixel axis
        x=alt.X(f"{x}:Q", scale=alt.Scale(type="log") if log_x else alt.Scale(zero=False), title=color_title(x),
                axis=alt.Axis(values=log_ticks(df[x])) if log_x else alt.Axis(tickCount=6)),
        y=alt.Y(f"{y}:Q", scale=alt.Scale(zero=False), title=color_title(y)), color=colour,
        tooltip=list(dict.fromkeys(tip)))
    layers = [base]
    if rule_x is not None:
        layers.append(alt.Chart(pd.DataFrame({x: [rule_x]})).mark_rule(strokeDash=[4, 3]).encode(x=f"{x}:Q"))
    if rule_y is not None:
        layers.append(alt.Chart(pd.DataFrame({y: [rule_y]})).mark_rule(strokeDash=[4, 3]).encode(y=f"{y}:Q"))
    return alt.layer(*layers).properties(width=420, height=240, title=title).interactive()


def _bar(df, x, y, color, rule=None, title="", chart_title=""):
    import altair as alt
    if df is None or df.empty:
        return None
    bars = alt.Chart(df.reset_index(drop=True)).mark_bar().encode(
        x=alt.X(f"{x}:N", sort="-y", title=color_title(x),
                axis=alt.Axis(labels=len(df) <= 40, labelAngle=-60, labelLimit=140)),
        y=alt.Y(f"{y}:Q", title=title or color_title(y)),
        color=alt.Color(f"{color}:N", title=color_title(color), legend=LEGEND_BELOW),
        tooltip=[c for c in (x, y, color) if c in df.columns])
    if rule is None:
        return bars.properties(width=420, height=240, title=chart_title)
    line = alt.Chart(pd.DataFrame({y: [rule]})).mark_rule(strokeDash=[4, 3], color="black").encode(y=f"{y}:Q")
    return (bars + line).properties(width=420, height=240, title=chart_title)


FACTOR_NAMES = {"dim": "width", "n_layers": "depth", "n_heads": "heads", "ffn_ratio": "FFN ratio",
                "vocab_size": "vocabulary"}
FACTOR_LABELS = {"dim": "width (per doubling)", "n_layers": "depth (per extra layer)", "n_heads": "heads (per doubling)",
                 "ffn_ratio": "FFN ratio (per doubling)", "vocab_size": "vocabulary (per doubling)"}


def _effect_chart(table):
    import altair as alt
    table = table.assign(change=table["factor"].map(FACTOR_LABELS).fillna(table["factor"]))
    order = [FACTOR_LABELS[f] for f in FACTORS]
    base = alt.Chart(table).encode(y=alt.Y("change:N", sort=order, title=None))
    claimed = alt.Chart(table.drop_duplicates("factor")).mark_bar(opacity=0.3, color="gray").encode(
        y=alt.Y("change:N", sort=order, title=None), x="claimed_low:Q", x2="claimed_high:Q")
    measured = base.mark_point(filled=True, size=80).encode(
        x=alt.X("slowdown_per_step:Q", title="slowdown per step (grey: claimed range)", axis=alt.Axis(format="%")),
        color=alt.Color("runtime:N", title="runtime (how measured)", legend=LEGEND_BELOW),
        tooltip=["runtime", "change", "slowdown_per_step", "pairs"])
    return (claimed + measured).properties(width=420, height=200)
