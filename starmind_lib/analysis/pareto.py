"""Chapter 07's decisions: Pareto fronts, recommendations under budgets, headline numbers."""
from __future__ import annotations

import itertools
import math

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..numbers import fmt_num

from .tables import require_columns, sample_text


def pareto_mask(df: pd.DataFrame, minimize: Sequence[str] = (), maximize: Sequence[str] = ()) -> pd.Series:
    """True for rows no other row dominates (as good in every objective, strictly better in one)."""
    cols = list(minimize) + list(maximize)
    if not cols:
        raise ValueError("pareto_mask needs at least one objective in minimize or maximize")
    require_columns(df, cols, "the points table")
    # Flip maximised objectives so that smaller is better everywhere.
    values = pd.concat([df[list(minimize)], -df[list(maximize)]], axis=1).to_numpy(dtype=float)
    keep = []
    for i, v in enumerate(values):
        if any(math.isnan(x) for x in v):
            keep.append(False)
            continue
        dominated = ((values <= v).all(axis=1) & (values < v).any(axis=1)).any()
        keep.append(not dominated)
    return pd.Series(keep, index=df.index)


@dataclass(frozen=True)
class Budget:
    ram_kb: float
    min_tokens_per_s: float

    @property
    def label(self) -> str:
        return f"≤ {self.ram_kb:g} KB RAM, ≥ {self.min_tokens_per_s:g} tok/s"


def seed_compare(values: dict | None, a: pd.Series, b: pd.Series) -> dict:
    """:func:`~starmind_lib.analysis.seeds.compare_values` of two device points over their per-seed bpc
    (``values`` by config_hash), each shifted by the point's own quantisation cost (``bpc - val_bpc``) so a
    quantised point compares as quantised; "not tested" when either has no seeds."""
    from .seeds import NOT_TESTED, compare_values
    shift = lambda r: float(r["bpc"] - r["val_bpc"]) if "val_bpc" in r and pd.notna(r["val_bpc"]) else 0.0  # noqa: E731
    va, vb = (values or {}).get(a.get("config_hash")), (values or {}).get(b.get("config_hash"))
    if va is None or vb is None:
        return {"verdict": NOT_TESTED, "noise": np.nan}
    return compare_values(np.asarray(va) + shift(a), np.asarray(vb) + shift(b))


def vs_runner_up(ok: pd.DataFrame, values: dict | None) -> dict:
    """The best of ``ok`` (sorted, best first) against the best *other configuration*: its margin, and whether
    the margin exceeds seed noise (Welch 95 % over the per-seed bpc in ``values``, by config_hash; each shifted
    by the point's own quantisation cost so a quantised point compares as quantised)."""
    from .seeds import NOT_TESTED, verdict_text
    best = ok.iloc[0]
    key = "config_hash" if "config_hash" in ok else "variant_id"
    others = ok[ok[key] != best[key]]
    if others.empty:
        return {"runner_up": None, "vs_runner_up": "the only model that fits"}
    ru = others.iloc[0]
    margin = float(ru["bpc"] - best["bpc"])
    c = seed_compare(values, ru, best)
    verdict = f"{NOT_TESTED} (margin {fmt_num(margin, 2)} bpc)" if c["verdict"] == NOT_TESTED else verdict_text(c, margin)
    return {"runner_up": ru["variant_id"], "runner_up_bpc": float(ru["bpc"]),
            "vs_runner_up": verdict + cost_flip_text(best, ru)}


def cost_flip_text(best: pd.Series, ru: pd.Series) -> str:
    """'; but the order flips with the int8 cost measured on the other quantised run: X's (+0.088)': the order taken
    with the int8 cost of either configuration's other quantised run (``cost_other_run``), where it reverses;
    '' where no such cost reverses it. A seed test treats each point's int8 cost as exact; this says when one
    run's cost decides the order."""
    def options(r):
        alt = r.get("cost_other_run")
        return [(float(r["bpc"]), None)] + ([(float(r["val_bpc"] + alt), float(alt))]
                                            if pd.notna(alt) and pd.notna(r.get("val_bpc")) else [])
    for (b, b_alt), (r, r_alt) in itertools.product(options(best), options(ru)):
        if r < b:
            used = " and ".join(f"{who['variant_id']}'s ({'+' if cost >= 0 else ''}{fmt_num(cost, 2)})"
                                for who, cost in ((best, b_alt), (ru, r_alt)) if cost is not None)
            return f"; but the order flips with the int8 cost measured on the other quantised run: {used}"
    return ""


def recommend(points: pd.DataFrame, budgets: Iterable[tuple[float, float]] | Iterable[Budget],
              memory_col: str = "peak_ram_bytes", values: dict | None = None) -> pd.DataFrame:
    """For each budget and runtime kind, the lowest-bpc model that fits in RAM and is fast enough, and how it
    compares with the best other configuration that fits (``vs_runner_up``; seed noise from ``values``)."""
    require_columns(points, ["bpc", "tokens_per_s", memory_col, "runtime_kind"], "the points table")
    rows = []
    for b in budgets:
        b = b if isinstance(b, Budget) else Budget(*b)
        for kind, group in points.groupby("runtime_kind", sort=True):
            ok = group[(group[memory_col] <= b.ram_kb * 1024) & (group["tokens_per_s"] >= b.min_tokens_per_s)]
            if "unigram_bpc" in ok:        # never recommend a model no better than letter frequencies
                ok = ok[~(ok["bpc"] >= ok["unigram_bpc"])]
            row = {"budget": b.label, "ram_kb": b.ram_kb, "min_tokens_per_s": b.min_tokens_per_s,
                   "runtime_kind": kind}
            if ok.empty:
                rows.append({**row, "variant_id": None, "note": "no model fits this budget"})
                continue
            ok = ok.sort_values(["bpc", "tokens_per_s"], ascending=[True, False])
            best = ok.iloc[0]
            device_story, training_story = sample_text(best.get("text")), sample_text(best.get("sample"))
            # the float score's interval over seeds, moved by the same quantisation cost as the score itself
            cost = best["bpc"] - best["val_bpc"] if pd.notna(best.get("val_bpc")) else 0.0
            low, high = (best.get(k) + cost if pd.notna(best.get(k)) else np.nan
                         for k in ("bpc_ci_low", "bpc_ci_high"))
            rows.append({**row, "variant_id": best["variant_id"], "bpc": best["bpc"],
                         "tokens_per_s": best["tokens_per_s"], "chars_per_s": best.get("chars_per_s"),
                         "ram_kb_used": best[memory_col] / 1024, "params": best.get("params"),
                         "runtime": best.get("runtime_label"), "speed_source": best.get("speed_source"),
                         "weights_in": best.get("weights_in"), "bpc_ci_low": low,
                         "bpc_ci_high": high, "bpc_of": best.get("bpc_of"),
                         **vs_runner_up(ok, values), "device_story": device_story, "training_story": training_story,
                         "note": ""})
    return pd.DataFrame(rows)


def beats_unigram(df: pd.DataFrame) -> pd.Series:
    """Per model: is its bpc below the unigram baseline (True where the table cannot tell)?"""
    quality = "bpc" if "bpc" in df else "val_bpc"
    eligible = df[quality] < df["unigram_bpc"] if {"unigram_bpc", quality} <= set(df.columns) else \
        pd.Series(True, index=df.index)
    return eligible.fillna(True).astype(bool)


def front_mask(df: pd.DataFrame, minimize: Sequence[str] = (), maximize: Sequence[str] = ()) -> pd.Series:
    """The Pareto front among the models that beat the unigram baseline (``bpc < unigram_bpc``, where the
    table has both): a model no better than letter frequencies is never recommended, however fast."""
    eligible = beats_unigram(df)
    out = pd.Series(False, index=df.index)
    if eligible.any():
        out[eligible] = pareto_mask(df[eligible], minimize, maximize)
    return out


ALONE = "nothing as fast and as small"


def front_edges(df: pd.DataFrame, front: pd.Series, values: dict | None, minimize: Sequence[str] = (),
                maximize: Sequence[str] = ()) -> pd.DataFrame:
    """For each front model: is its place on the front more than seed noise? Its rival is the best *other
    configuration* at least as good on every other axis (at least as fast, no larger...), which would take
    its place if the two were equally good; the columns give the rival, the margin, the seed noise and the
    Welch verdict over their per-seed bpc (``values`` by config_hash, each shifted by the point's own
    quantisation cost, as in the recommendations). A model that nothing matches on the other axes says so."""
    key = "config_hash" if "config_hash" in df else "variant_id"
    others = [c for c in minimize if c != "bpc"], [c for c in maximize if c != "bpc"]
    eligible = beats_unigram(df)
    out = {}
    for i, x in df[front].iterrows():
        cover = df[eligible & (df[key] != x[key])]
        for c in others[0]:
            cover = cover[cover[c] <= x[c]]
        for c in others[1]:
            cover = cover[cover[c] >= x[c]]
        if cover.empty:
            out[i] = {"rival": "–", "margin": np.nan, "noise": np.nan, "verdict": ALONE}
            continue
        y = cover.sort_values("bpc").iloc[0]
        c = seed_compare(values, y, x)
        out[i] = {"rival": y["variant_id"], "margin": float(y["bpc"] - x["bpc"]), "noise": c["noise"],
                  "verdict": c["verdict"]}
    return pd.DataFrame.from_dict(out, orient="index", columns=["rival", "margin", "noise", "verdict"])


def front_edge_summary(verdicts: pd.Series) -> str:
    """:func:`front_edges`' verdicts in one sentence: how many front points hold their place by more than
    seed noise."""
    from ..numbers import plural
    from .seeds import NO_DIFF, NOT_TESTED, REAL
    n = len(verdicts)
    count = lambda v: int((verdicts == v).sum())  # noqa: E731
    real, same, untested, alone = count(REAL), count(NO_DIFF), count(NOT_TESTED), count(ALONE)
    parts = [f"{real} {'is' if real == 1 else 'are'} better than every other model at least as fast and as small "
             "by more than seed noise"]
    if same:
        parts.append(f"{same} {'is' if same == 1 else 'are'} within seed noise of such a model (either would do)")
    if untested:
        parts.append(f"{untested} {'has' if untested == 1 else 'have'} one seed on one side (not tested)")
    if alone:
        parts.append(f"{alone} {'has' if alone == 1 else 'have'} no other model as fast and as small")
    return f"Of the {plural(n, 'point')} on this front, " + (", ".join(parts[:-1]) + " and " + parts[-1]
                                                             if len(parts) > 1 else parts[0]) + "."


def pareto_chart(points: pd.DataFrame, x: str = "tokens_per_s", higher_x_is_better: bool = True,
                 color: str = "runtime_label", title: str = ""):
    """Quality against ``x`` (a speed, or a size when higher_x_is_better is False), every row a point,
    the Pareto front drawn as a dashed line; click the legend to isolate a group, hover for details."""
    import altair as alt
    pts = points[points[x].notna() & points["bpc"].notna()].copy() if "bpc" in points else \
        points.assign(bpc=points["val_bpc"])
    pts = pts[pd.to_numeric(pts[x], errors="coerce") > 0]      # a log axis: a zero would squash every point
    pts["on_front"] = front_mask(pts, minimize=["bpc"] + ([] if higher_x_is_better else [x]),
                                  maximize=[x] if higher_x_is_better else [])
    has_ram = "peak_ram_bytes" in pts and pts["peak_ram_bytes"].notna().any()
    if has_ram:
        pts["ram_kb"] = pts["peak_ram_bytes"] / 1024
    tooltip = [c for c in ["variant_id", color, "bpc", "bpc_of", x, "ram_kb", "params"] if c in pts.columns]
    select = alt.selection_point(fields=[color], bind="legend")
    keep = set(tooltip) | {x, "bpc", color, "on_front", "ram_kb"}
    pts = pts[[c for c in pts.columns if c in keep]]   # only what the chart draws goes into its spec
    from ..book.figures import log_ticks
    base = alt.Chart(pts).encode(
        x=alt.X(f"{x}:Q", scale=alt.Scale(type="log"), axis=alt.Axis(values=log_ticks(pts[x]) if len(pts) else None),
                title={"tokens_per_s": "tokens/s (log scale)", "chars_per_s": "characters/s (log scale)",
                       "peak_ram_bytes": "peak SRAM (bytes, log scale)", "params": "parameters (log scale)"}.get(
                    x, x.replace("_", " "))),
        y=alt.Y("bpc:Q", scale=alt.Scale(zero=False), title="validation bits per character (lower is better)"))
    dots = base.mark_circle(size=60).encode(
        color=alt.Color(f"{color}:N", title={"runtime_label": "runtime (how measured)"}.get(color, color.replace("_", " ")),
                        legend=alt.Legend(orient="bottom", direction="vertical", columns=1, labelLimit=0,
                                          symbolLimit=0)),
        opacity=alt.condition(select, alt.value(0.85), alt.value(0.1)),
        tooltip=tooltip).add_params(select)
    if has_ram:
        dots = dots.encode(size=alt.Size("ram_kb:Q", title="peak RAM (KB)", legend=alt.Legend(orient="top")))
    front = base.transform_filter("datum.on_front").mark_line(color="black", strokeDash=[4, 3])
    return (dots + front).properties(width=420, height=300, title=title).interactive()


def _or_na(value, fmt) -> str:
    return fmt(value) if value is not None and pd.notna(value) else "n/a"


WEIGHTS_TEXT = {"flash": "its weights in flash (read through the XIP cache)", "sram": "its weights copied to SRAM",
                "ram": "its weights in RAM"}


def distinct_configurations(variants: pd.DataFrame) -> int | None:
    """How many distinct configurations the variants are (Study v2 rows carry ``config_hash``; the v1
    table's is computed from its architecture fields, as the study keys them); None without either."""
    from ..training.plan import ARCH_FIELDS, config_hash
    if "config_hash" in variants:
        return int(variants["config_hash"].nunique())
    if not set(ARCH_FIELDS) <= set(variants.columns):
        return None
    return len({config_hash(r) for r in variants[list(ARCH_FIELDS)].to_dict("records")})


RUN_FIELDS = ("runtime", "speed_source", "weights_in", "kv_cache")   # what makes two runs of one model differ


def one_per_configuration(df: pd.DataFrame, keys: Sequence[str] = ()) -> pd.DataFrame:
    """One row per distinct configuration (``config_hash``) and run (``keys`` that the table has): a
    configuration several sweep axes share is one model, not one per name. It keeps its first name's rows
    (another name's run only where the first has none) and names them all in ``names``: "fib-d8-f21 (=
    fib-depth-d8-l2)"."""
    if df.empty or "config_hash" not in df:
        return df
    names = df.groupby("config_hash", sort=False)["variant_id"].agg(lambda s: list(dict.fromkeys(s)))
    rank = [names[h].index(v) for h, v in zip(df["config_hash"], df["variant_id"])]
    keys = ["config_hash", *[k for k in keys if k in df]]
    out = df.assign(_rank=rank).sort_values("_rank", kind="stable").drop_duplicates(keys).drop(columns="_rank")
    label = {h: n[0] + (f" (= {', '.join(n[1:])})" if len(n) > 1 else "") for h, n in names.items()}
    return out.assign(names=out["config_hash"].map(label)).sort_index()


def headline_numbers(variants: pd.DataFrame | None, points: pd.DataFrame) -> dict[str, str]:
    """The numbers chapter 07 quotes in prose, formatted; 'n/a' where the tables cannot give them."""
    have = variants is not None and len(variants)
    out = {"front_best_weights": "n/a", "n_models": str(len(variants)) if have else "0",
           "n_configs": _or_na(distinct_configurations(variants) if have else 0, lambda n: f"{n:,}"),
           "best_bpc": f"{variants['val_bpc'].min():.3f}" if have else "n/a",
           "n_device_points": "0", "n_front": "0", "front_fastest_tps": "n/a", "front_fastest_bpc": "n/a",
           "front_best_bpc": "n/a", "front_best_tps": "n/a", "front_best_ram_kb": "n/a", "front_best_params": "n/a"}
    c_points = points[points["runtime_kind"] == "c"] if len(points) else points
    if c_points.empty:
        return out
    front = c_points[front_mask(c_points, minimize=["bpc"], maximize=["tokens_per_s"])]
    if front.empty:              # no model beats the unigram baseline (e.g. the smoke profile's tiny runs)
        out.update(n_device_points=fmt_num(len(c_points), None))
        return out
    fastest, best = front.loc[front["tokens_per_s"].idxmax()], front.loc[front["bpc"].idxmin()]
    out.update(n_device_points=fmt_num(len(c_points), None), n_front=fmt_num(len(front), None),
               front_fastest_tps=fmt_num(fastest['tokens_per_s']), front_fastest_bpc=f"{fastest['bpc']:.2f}",
               front_best_bpc=f"{best['bpc']:.2f}", front_best_tps=fmt_num(best['tokens_per_s']),
               front_best_ram_kb=_or_na(best.get("peak_ram_bytes"), lambda b: f"{b / 1024:.0f}"),
               front_best_params=_or_na(best.get("params"), lambda p: f"{p:,.0f}"),
               front_best_weights=WEIGHTS_TEXT.get(str(best.get("weights_in")), "its weights where the run put them"))
    return out
