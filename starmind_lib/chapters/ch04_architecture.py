"""Chapter 04 (the architecture study): the results table, the trend, the fixed-budget comparisons.

::

    df = study_table(results_dir, runs_dir, recompute, sweep_params, data_source, data_dir, profile)
    trend = fit_trend(df)                 # bpc = a + b * log10(params), char models
    budget_comparisons(df)                # one row per (axis, budget, option)
    bpc_vs_params_chart(df, trend); budget_chart(df)
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.seeds import MIN_COVERAGE, V1_SOURCE
from ..numbers import plural
from ..training.sweep import SweepConfig, prepare_data, results_table, run_sweep, study_data_config
from ..training.grid import tokenizers_needed

AXIS_LABELS = {"width": "width", "depth": "depth", "heads": "heads", "ffn_ratio": "FFN ratio", "vocab": "vocabulary",
               "golden": "golden ratio / Fibonacci", "activation": "activation", "position": "positions",
               "tying": "tied head", "budget_depth": "budget: depth", "budget_heads": "budget: heads",
               "budget_ffn_ratio": "budget: FFN ratio", "budget_vocab": "budget: vocabulary"}


def prepared_dir(runs_dir: str | Path, corpus) -> Path:
    """Prepared token data lives per corpus fingerprint, shared by chapters 03 and 04."""
    return Path(runs_dir) / "sweep_data" / corpus.fingerprint[:12]


def prepare_study_data(runs_dir, data_source: str, data_dir: str, specs: list[str]) -> Path:
    from ..data import load_corpus, resolve_data_source
    source, resolved = resolve_data_source(data_source, data_dir)
    corpus = load_corpus(study_data_config(source, resolved))
    return prepare_data(corpus, specs, prepared_dir(runs_dir, corpus))


def study_table(results_dir, runs_dir, recompute: bool, sweep_params: dict, data_source: str = "tinystories",
                data_dir: str = "", profile: str = "", progress: bool = True) -> pd.DataFrame:
    """The sweep's table: trained now (``recompute``: only the variants not yet in it) or read as committed."""
    table = results_table(results_dir)
    if recompute:
        sweep = SweepConfig.from_params(sweep_params)
        data = prepare_study_data(runs_dir, data_source, data_dir, tokenizers_needed(sweep.selected()))
        run_sweep(sweep, data, results_dir, runs_dir, profile=profile, progress=progress)
    if not table.journal.exists():
        raise FileNotFoundError(
            f"no sweep results at {table.journal}; run this chapter with recompute=True "
            f"(e.g. `make study`, or scripts/run_study_gpu.sh then `python -m starmind_lib.training.sweep unpack`)")
    df = table.frame()
    if recompute:  # only this grid's variants (the table may hold more from earlier runs)
        ids = {v["variant_id"] for v in SweepConfig.from_params(sweep_params).selected()}
        df = df[df.variant_id.isin(ids)]
    return df.reset_index(drop=True)




def chapter_table(v1: pd.DataFrame, runs: pd.DataFrame | None, tier: str = "base",
                  min_coverage: float = MIN_COVERAGE) -> tuple[pd.DataFrame, str]:
    """The table the chapter draws: Study v2's ``tier`` (whole split, mean over seeds, with intervals) once it
    covers ``min_coverage`` of the v1 table's variants, else the v1 table (prefix score, one seed; no
    intervals) whole, never a mix of the two. Returns (table, what its bpc is)."""
    from ..analysis.seeds import study_variants
    v2 = study_variants(v1, runs, tier) if runs is not None and len(runs) else v1.iloc[0:0]
    if len(v2) and len(v2) >= min_coverage * len(v1):
        n = sorted(set(v2["n_seeds"]))
        seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
        return v2, (f"Study v2's score ({tier} grid at the tuned rates): the whole validation split, "
                    f"mean of {seeds} seeds")
    source = V1_SOURCE + (f" (Study v2's {tier} grid has {len(v2)} of these {len(v1)} variants so far: chapter 4b)"
                          if len(v2) else "")
    return v1.assign(bpc_ci_low=np.nan, bpc_ci_high=np.nan, n_seeds=1, bpc_source=source), source


def seed_values(runs: pd.DataFrame | None, tier: str = "base") -> dict[str, np.ndarray]:
    """{config_hash: per-seed whole-split bpc} for one tier (empty without Study v2 runs)."""
    if runs is None or not len(runs):
        return {}
    sel = runs[runs["tier"] == tier]
    return {h: g["bpc"].to_numpy(float) for h, g in sel.groupby("config_hash")}


def fit_trend(df: pd.DataFrame, tokenizer: str = "char") -> dict:
    """Least-squares bpc = a + b * log10(params) over the configurations of one tokenizer kind (one point
    each, however many sweep axes share it)."""
    from ..analysis.pareto import one_per_configuration
    sub = one_per_configuration(df[df.tokenizer_spec.str.startswith(tokenizer)])
    if len(sub) < 2:
        return {"a": math.nan, "b": math.nan, "r2": math.nan, "n": len(sub)}
    x, y = np.log10(sub.n_params.astype(float)), sub.bpc.astype(float)
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    ss_res, ss_tot = float(((y - pred) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    return {"a": float(a), "b": float(b), "r2": 1 - ss_res / ss_tot if ss_tot else math.nan, "n": len(sub)}


def golden_vs_trend(df: pd.DataFrame, trend: dict, values: dict | None = None) -> tuple[pd.DataFrame, str]:
    """The golden-axis configurations against the character trend line: each one's distance from it (with
    its per-seed scores), and a sentence that sets those distances against the spread of every character
    configuration around the same line (one standard deviation of the residuals)."""
    from ..analysis.pareto import one_per_configuration
    key = "config_hash" if "config_hash" in df else "variant_id"
    golden_keys = set(df.loc[df.axis == "golden", key])
    one = one_per_configuration(df)                  # a configuration several axes share counts once
    if "names" in one:
        one = one.assign(variant_id=one.pop("names"))
    golden = one[one[key].isin(golden_keys)].copy()
    if golden.empty or math.isnan(trend.get("b", math.nan)):
        return golden, "cannot be set against a trend yet"

    def line(n):
        return trend["a"] + trend["b"] * np.log10(n.astype(float))
    char = one[one.tokenizer_spec.str.startswith("char")]
    sd = float((char.bpc - line(char.n_params)).std(ddof=1))
    golden["vs_trend"] = golden.bpc - line(golden.n_params)
    golden["seeds"] = [", ".join(f"{v:.2f}" for v in (values or {}).get(k, [])) or "–" for k in golden[key]]
    above, below = golden[golden.vs_trend > sd], golden[golden.vs_trend < -sd]
    worst = above.sort_values("vs_trend", ascending=False)
    text = (f"lie {golden.vs_trend.mean():+.2f} bpc from the trend on average, where the "
            f"{plural(len(char), 'character configuration')} scatter around it with a standard deviation of "
            f"{sd:.2f}: {len(above)} of {len(golden)} lie more than that above it"
            + (" (" + ", ".join(f"{r.variant_id} {r.vs_trend:+.2f}" for r in worst.itertuples()) + ")" if len(above)
               else "") + f" and {len(below)} more than that below it")
    return golden.sort_values("n_params"), text


def budget_comparisons(df: pd.DataFrame) -> pd.DataFrame:
    """The fixed-budget variants: axis, budget, the option varied, params and bpc."""
    sub = df[df.axis.str.startswith("budget_")].copy()
    if sub.empty:
        return sub
    sub["compare"] = sub.axis.str.replace("budget_", "", regex=False)
    sub["option"] = sub.variant_id.str.split("-").str[-1]
    cols = ["compare", "budget", "option", "variant_id", "dim", "n_layers", "n_heads", "ffn_hidden",
            "tokenizer_spec", "n_params", "bpc", "bpc_ci_low", "bpc_ci_high", "config_hash"]
    return sub[[c for c in cols if c in sub]].sort_values(["compare", "budget", "bpc"])


def best_per_budget(cmp: pd.DataFrame, values: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """For each comparison and budget: the option with the lowest bpc, the runner-up, the margin, the worst,
    and (with per-seed ``values`` by config_hash) whether the best beats the runner-up beyond seed noise."""
    from ..analysis.seeds import NOT_TESTED, compare_values
    rows = []
    for (compare, budget), g in cmp.groupby(["compare", "budget"]):
        g = g.sort_values("bpc")
        row = {"compare": compare, "budget": int(budget), "options": len(g), "best": g.option.iloc[0],
               "best_bpc": g.bpc.iloc[0], "worst": g.option.iloc[-1], "spread_bpc": g.bpc.iloc[-1] - g.bpc.iloc[0]}
        if len(g) > 1:
            row |= {"runner-up": g.option.iloc[1], "margin_bpc": g.bpc.iloc[1] - g.bpc.iloc[0]}
            a, b = (values or {}).get(g.config_hash.iloc[1]) if "config_hash" in g else None, \
                (values or {}).get(g.config_hash.iloc[0]) if "config_hash" in g else None
            cmp_ = compare_values(a, b) if a is not None and b is not None else {"noise": np.nan, "verdict": NOT_TESTED}
            row |= {"seed_noise_bpc": cmp_["noise"], "verdict": cmp_["verdict"]}
        rows.append(row)
    return pd.DataFrame(rows)


def nearest_model(df: pd.DataFrame, target_params: int, factor: float = 1.5) -> pd.Series | None:
    """"Near N parameters": the model nearest ``target_params`` in parameter count (ties: the lower bpc),
    within a window of ``factor`` either way (None when no model is that close)."""
    sub = df[(df.n_params >= target_params / factor) & (df.n_params <= target_params * factor)]
    if sub.empty:
        return None
    return sub.assign(_dist=(sub.n_params - target_params).abs()).sort_values(["_dist", "bpc"]).iloc[0]


def best_in_window(df: pd.DataFrame, target_params: int, factor: float = 1.5) -> pd.Series | None:
    """The lowest-bpc model with between ``target_params / factor`` and ``target_params * factor`` parameters."""
    sub = df[(df.n_params >= target_params / factor) & (df.n_params <= target_params * factor)]
    return None if sub.empty else sub.sort_values("bpc").iloc[0]


def samples_of(row) -> list[dict]:
    s = row["samples"]
    return json.loads(s) if isinstance(s, str) else list(s)


def vs_window_runner_up(df: pd.DataFrame, row, target: int, values: dict | None, factor: float = 1.5) -> str:
    """'; against the runner-up, X (1.43): no measurable difference (margin 0.038 bpc, seed noise ±0.062)':
    the best model of a window against the best other configuration in it, over their seeds."""
    from ..analysis.seeds import NOT_TESTED, compare_values, verdict_text
    sub = df[(df.n_params >= target / factor) & (df.n_params <= target * factor)]
    key = "config_hash" if "config_hash" in df else "variant_id"
    others = sub[sub[key] != row[key]]
    if others.empty:
        return "; no other configuration in that window"
    rival = others.sort_values("bpc").iloc[0]
    a, b = ((values or {}).get(r[key]) for r in (row, rival))
    c = (compare_values(a, b) if a is not None and b is not None else
         {"diff": float(rival.bpc - row.bpc), "verdict": NOT_TESTED})
    return f"; against the runner-up, {rival.variant_id} ({rival.bpc:.2f}): {verdict_text(c, c['diff'])}"


def best_samples_markdown(df: pd.DataFrame, targets=(10_000, 100_000), prompt: str = "once upon",
                          values: dict | None = None) -> str:
    """Markdown: the best model within 1.5x of each parameter target (window stated), whether it beats the
    window's runner-up beyond seed noise (``values``: per-seed bpc by config_hash), and what it writes."""
    blocks = []
    for target in targets:
        row = best_in_window(df, target)
        if row is None:
            continue
        seeds = int(row.get("n_seeds", 1) or 1)
        v2 = str(row.get("bpc_source", "")).startswith("Study v2")
        how = f"{row.bpc:.2f} bpc" + ((f", mean of {seeds} seeds" if seeds > 1 else ", one seed") + ", whole split"
                                       if v2 else ", one seed, on the first study's validation prefix")
        lines = [f"**{row.variant_id}** ({int(row.n_params):,} parameters, {how}; the best with "
                 f"{target / 1.5:,.0f} to {target * 1.5:,.0f} parameters"
                 f"{vs_window_runner_up(df, row, target, values)})", ""]
        for s in samples_of(row):
            if s["prompt"].lower().startswith(prompt):
                mode = s["mode"].replace("T=", "sampled at temperature ")
                lines.append(f"- *{mode}*: `{s['text'].replace(chr(10), ' ⏎ ')}`")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def read_study_table(results_dir) -> pd.DataFrame | None:
    """The committed/computed sweep table, or None when the study has not run yet."""
    table = results_table(results_dir)
    return table.frame() if table.journal.exists() else None


# ---------------------------------------------------------------- figures
def has_intervals(df: pd.DataFrame) -> bool:
    """Whether rows carry a 95 % interval of the mean over seeds (Study v2 rows with two or more seeds)."""
    return "bpc_ci_low" in df and bool(df["bpc_ci_low"].notna().any())


def bpc_vs_params_chart(df: pd.DataFrame, trend: dict, unigram: float | None = None):
    import altair as alt

    from ..book.figures import label
    data = df.assign(axis_label=df.axis.map(AXIS_LABELS).fillna(df.axis),
                     kind=np.where(df.tokenizer_spec.str.startswith("bpe"), "BPE", "char"))
    x = alt.X("n_params:Q", scale=alt.Scale(type="log"), title=label("parameters", "count, log scale"))
    y = alt.Y("bpc:Q", title=label("validation loss", "bits per character"), scale=alt.Scale(zero=False))
    points = alt.Chart(data).mark_point(filled=True, size=40, opacity=0.75).encode(
        x=x, y=y, color=alt.Color("axis_label:N", title="comparison"), shape=alt.Shape("kind:N", title="tokenizer"),
        tooltip=["variant_id", "n_params", alt.Tooltip("bpc:Q", format=".3f"), "tokenizer_spec"])
    layers = [points]
    if has_intervals(data):
        layers.append(alt.Chart(data).mark_rule(opacity=0.6).encode(
            x=x, y="bpc_ci_low:Q", y2="bpc_ci_high:Q", color=alt.Color("axis_label:N", legend=None)))
    if not math.isnan(trend.get("b", math.nan)):
        xs = np.logspace(np.log10(data.n_params.min()), np.log10(data.n_params.max()), 50)
        line = pd.DataFrame({"n_params": xs, "bpc": trend["a"] + trend["b"] * np.log10(xs)})
        layers.append(alt.Chart(line).mark_line(color="black", strokeDash=[6, 3]).encode(x=x, y=y))
    if unigram is not None:
        layers.append(alt.Chart(pd.DataFrame({"bpc": [unigram]})).mark_rule(color="gray").encode(y="bpc:Q"))
    return alt.layer(*layers).properties(width=560, height=340)


def budget_chart(cmp: pd.DataFrame):
    import altair as alt

    from ..book.figures import label
    names = {"depth": "depth (l = layers)", "heads": "heads (h)", "ffn_ratio": "FFN ratio (r)",
             "vocab": "vocabulary"}
    cmp = cmp.assign(comparison=cmp["compare"].map(lambda c: names.get(c, str(c).replace("_", " "))))
    x = alt.X("budget:Q", scale=alt.Scale(type="log"), title=label("parameter budget", "log scale"))
    color = alt.Color("option:N", title="option", legend=alt.Legend(columns=4))
    layers = [alt.Chart().mark_line(point=True).encode(
        x=x, y=alt.Y("bpc:Q", title="bits per character", scale=alt.Scale(zero=False)), color=color,
        tooltip=["variant_id", "n_params", alt.Tooltip("bpc:Q", format=".3f")])]
    if has_intervals(cmp):
        layers.append(alt.Chart().mark_rule().encode(x=x, y="bpc_ci_low:Q", y2="bpc_ci_high:Q", color=color))
    return alt.layer(*layers, data=cmp).properties(width=240, height=180).facet(
        facet=alt.Facet("comparison:N", title=None, header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
        columns=2)


def axis_chart(df: pd.DataFrame, axis: str, x_field: str, x_title: str, log_x: bool = True):
    """bpc against one hyperparameter for the one-at-a-time comparisons (colour: group)."""
    import altair as alt

    from ..book.figures import label, log_ticks
    sub = df[df.axis == axis]
    scale = alt.Scale(type="log") if log_x else alt.Scale(zero=False)
    axis_spec = alt.Axis(values=log_ticks(sub[x_field])) if log_x and len(sub) else alt.Axis()
    x = alt.X(f"{x_field}:Q", scale=scale, title=x_title, axis=axis_spec)
    layers = [alt.Chart(sub).mark_line(point=True).encode(
        x=x, y=alt.Y("bpc:Q", title=label("bits per character"), scale=alt.Scale(zero=False)),
        color=alt.Color("group:N", title=None),
        tooltip=["variant_id", "n_params", alt.Tooltip("bpc:Q", format=".3f")])]
    if has_intervals(sub):
        layers.append(alt.Chart(sub).mark_rule().encode(x=x, y="bpc_ci_low:Q", y2="bpc_ci_high:Q",
                                                        color=alt.Color("group:N", title=None)))
    return alt.layer(*layers).properties(width=240, height=180, title=AXIS_LABELS.get(axis, axis))
