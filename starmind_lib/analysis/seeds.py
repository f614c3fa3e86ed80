"""Study v2 summaries: means over seeds, seed noise, and comparisons that say when a difference is real.

Rows come from ``data/results/sweep/study_v2`` (one per training run, see
:mod:`starmind_lib.training.study`)::

    runs = load_study(results_dir)
    summ = seed_summary(runs[runs.tier == "base"])     # one row per configuration
    compare(summ, "vocab-d32-char64", "vocab-d32-bpe1024")
    # {'diff': -0.31, 'noise': 0.02, 'verdict': 'exceeds seed noise', ...}

**Seed noise.** Each configuration is trained with several seeds (initialisation
and data order). Two configurations differ *beyond seed noise* when their
difference in mean bpc exceeds the 95 % half-width of a Welch interval built
from the seeds' standard deviations (t quantile at the Welch degrees of
freedom); otherwise the book says "no measurable difference". With one seed
there is no noise estimate and the verdict is "one seed: not tested".
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

# two-sided 95 % Student t quantiles by degrees of freedom (1..30); above 30 the normal 1.96 is close enough
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
GROUP = ["config_hash", "tier", "lr", "tokens_trained", "seq_len"]
NOT_TESTED = "one seed: not tested"
NO_DIFF = "no measurable difference"
REAL = "exceeds seed noise"
V1_SOURCE = "the first study's score: the first 32,768 validation tokens, one seed, rate 3e-3"
MIN_COVERAGE = 0.9   # Study v2 replaces the v1 table once it scores this share of the v1 table's variants


def t975(df: float) -> float:
    """The 97.5th percentile of Student's t with ``df`` degrees of freedom (interpolated below 30)."""
    if not df or df < 1 or not math.isfinite(df):
        return float("nan") if not df or df < 1 else 1.96
    if df >= 30:
        return 1.96 + (2.042 - 1.96) * 30 / df if df < 1000 else 1.96
    lo = int(math.floor(df))
    frac = df - lo
    a = _T975[lo - 1]
    b = _T975[min(lo, 29)]
    return a + (b - a) * frac


SUPERSEDED = "base_superseded"


def load_study(results_dir: str | Path) -> pd.DataFrame:
    """All Study v2 runs (empty frame with the right columns when none have been trained).

    ``bucket`` is recomputed from the parameter count (the buckets in force, ``training.plan.BUCKETS``), and a
    base-grid run whose rate is not its bucket's tuned rate (trained before a bucket was split or re-tuned) is
    relabelled tier ``base_superseded``: kept and counted, never averaged with the base grid.
    """
    from ..provenance import ResultTable
    from ..training.plan import LR_REPRESENTATIVES, bucket_of, tuned_rates
    table = ResultTable(Path(results_dir) / "sweep" / "study_v2", key="run_key")
    df = table.frame()
    if not len(df):
        return pd.DataFrame(columns=GROUP + ["run_key", "seed", "bpc", "name", "n_params"])
    df["bucket"] = df["n_params"].map(lambda n: bucket_of(int(n)))
    # the sweep this table holds decides the rates: its rates and, per bucket, the configurations it swept
    # (the full grid's named representatives; a small grid's own, e.g. the smoke profile's two rates)
    lr_rows = df[df["tier"] == "lr"]
    swept = {v for r in lr_rows.to_dict("records") for v in (r.get("variant_ids") or [r["name"]])}
    reps = {b: named for b, ns in LR_REPRESENTATIVES.items() if (named := tuple(n for n in ns if n in swept))}
    for b, g in lr_rows.groupby("bucket"):
        reps.setdefault(b, tuple(sorted(set(g["name"]))))
    rates = tuned_rates(df.to_dict("records"), lr_grid=sorted(set(lr_rows["lr"])), reps=reps) if len(lr_rows) else {}
    stale = (df["tier"] == "base") & (df["lr"] != df["bucket"].map(rates))
    df.loc[stale, "tier"] = SUPERSEDED
    return df


def chars_per_token(runs: pd.DataFrame) -> dict[str, float]:
    """Characters per token of each tokenizer on the validation split, from what the Study v2 runs scored
    (characters / story tokens, the end-of-story tokens excluded)."""
    if not len(runs) or not {"eval_chars", "eval_tokens", "eval_stories", "tokenizer_spec"} <= set(runs.columns):
        return {}
    first = runs.groupby("tokenizer_spec").first()
    return {k: float(v) for k, v in (first.eval_chars / (first.eval_tokens - first.eval_stories)).items()}


def seed_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration (and tier, rate, budget, context): mean, sd and 95 % interval over seeds."""
    if runs.empty:
        return pd.DataFrame(columns=GROUP + ["n_seeds", "bpc_mean", "bpc_sd", "bpc_mean_ci_low", "bpc_mean_ci_high"])

    def agg(g: pd.DataFrame) -> pd.Series:
        b = g["bpc"].to_numpy(float)
        n = len(b)
        sd = float(np.std(b, ddof=1)) if n > 1 else float("nan")
        half = t975(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
        first = g.iloc[0]
        return pd.Series({
            "name": first["name"], "n_params": int(first["n_params"]), "bucket": first.get("bucket"),
            "tokenizer_spec": first.get("tokenizer_spec"), "variant_ids": first.get("variant_ids"),
            "n_seeds": n, "seeds": sorted(int(s) for s in g["seed"]), "bpc_mean": float(b.mean()), "bpc_sd": sd,
            "bpc_mean_ci_low": float(b.mean() - half), "bpc_mean_ci_high": float(b.mean() + half),
            "story_ci_halfwidth": float(((g["bpc_ci_high"] - g["bpc_ci_low"]) / 2).mean()),
            "unigram_bpc": float(first["unigram_bpc"]), "eval_chars": int(first["eval_chars"]),
            "train_val_gap": float(g["train_val_gap"].mean()) if "train_val_gap" in g else float("nan"),
        })
    return runs.groupby(GROUP, dropna=False).apply(agg, include_groups=False).reset_index()


def compare_values(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean difference ``b - a`` and whether it exceeds seed noise (Welch 95 % half-width)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(b.mean() - a.mean())
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "noise": float("nan"), "verdict": NOT_TESTED}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "noise": 0.0, "verdict": REAL if diff else NO_DIFF}
    dof = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1)) + (vb ** 2 / (len(b) - 1)))
    half = t975(dof) * se
    return {"diff": diff, "noise": float(half), "verdict": REAL if abs(diff) > half else NO_DIFF}


def verdict_text(c: dict, margin: float | None = None) -> str:
    """A :func:`compare_values` result in words: "exceeds seed noise (margin 0.05 bpc, seed noise ±0.01)";
    without seed noise to compare with, "one seed: not tested (margin 0.05 bpc)"."""
    from ..numbers import fmt_num
    said = [f"margin {fmt_num(margin, 2)} bpc"] if margin is not None else []
    if c["verdict"] != NOT_TESTED:
        said.append(f"seed noise ±{fmt_num(c['noise'], 2)}" + (" bpc" if margin is None else ""))
    return f"{c['verdict']} ({', '.join(said)})" if said else c["verdict"]


def compare(runs: pd.DataFrame, name_a: str, name_b: str, tier: str = "base") -> dict:
    """Compare two configurations (by any variant id that uses them) on their per-seed bpc."""
    def pick(name):
        sel = runs[(runs.tier == tier) & runs["variant_ids"].map(lambda v: name in list(v))]
        if sel.empty:
            raise KeyError(f"no {tier!r} runs for configuration {name!r}")
        return sel["bpc"].to_numpy(float)
    return {"a": name_a, "b": name_b, **compare_values(pick(name_a), pick(name_b))}


def axis_effects(runs: pd.DataFrame, variants: list[dict], tier: str = "base") -> pd.DataFrame:
    """For each comparison group of the grid: the best variant, the runner-up, and whether the best is
    better beyond seed noise."""
    rows = []
    sel = runs[runs.tier == tier]
    by_variant: dict[str, np.ndarray] = {}
    for _, r in sel.iterrows():
        for vid in r["variant_ids"]:
            by_variant.setdefault(vid, []).append(r["bpc"])
    groups: dict[str, list[dict]] = {}
    for v in variants:
        if v["variant_id"] in by_variant:
            groups.setdefault(v["group"], []).append(v)
    for group, vs in groups.items():
        if len(vs) < 2:
            continue
        ranked = sorted(vs, key=lambda v: np.mean(by_variant[v["variant_id"]]))
        best, second = ranked[0]["variant_id"], ranked[1]["variant_id"]
        cmp = compare_values(by_variant[second], by_variant[best])
        rows.append({"group": group, "axis": ranked[0]["axis"], "n_variants": len(vs), "best": best,
                     "best_bpc": float(np.mean(by_variant[best])), "runner_up": second,
                     "runner_up_bpc": float(np.mean(by_variant[second])), "margin": -cmp["diff"],
                     "noise": cmp["noise"], "verdict": cmp["verdict"]})
    return pd.DataFrame(rows)


def rank_correlation(a: pd.Series, b: pd.Series) -> float:
    """Spearman rank correlation of two aligned series (e.g. bpc at 2 M and at 20 M tokens per configuration)."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(both) < 3:
        return float("nan")
    return float(both.iloc[:, 0].rank().corr(both.iloc[:, 1].rank()))


def nearest(summary: pd.DataFrame, n_params: int, window: float = 0.5) -> pd.DataFrame:
    """Configurations within ``window`` (relative) of ``n_params``, nearest first: "near N parameters"."""
    rel = (summary["n_params"] - n_params).abs() / n_params
    return summary[rel <= window].assign(distance=rel[rel <= window]).sort_values(["distance", "bpc_mean"])


# the v1 table's columns that a Study v2 score replaces (the rest, e.g. axis, group and budget, are the grid's)
V2_REPLACES = ("bpc", "val_bpc", "val_loss", "seed", "tokens_trained", "unigram_bpc", "samples", "wall_s",
               "tokens_per_s", "machine", "git_commit", "timestamp", "profile", "data_fingerprint", "checkpoint",
               "device", "config_hash", "data_source", "is_synthetic")


def scored_seed_values(runs: pd.DataFrame | None, variants: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """{config_hash: per-seed whole-split bpc} from the tier each variant's score came from (its
    ``study_tier``, as :func:`load_study_variants` sets it): a long-tier score
    is compared on its long-tier seeds, never on the base grid's. Empty for the v1 table (one seed)."""
    if runs is None or not len(runs) or variants is None or "study_tier" not in variants:
        return {}
    by = {k: g["bpc"].to_numpy(float) for k, g in runs.groupby(["tier", "config_hash"])}
    return {h: by[(t, h)] for h, t in zip(variants["config_hash"], variants["study_tier"]) if (t, h) in by}


def study_variants(v1: pd.DataFrame, runs: pd.DataFrame, tier: str = "base") -> pd.DataFrame:
    """The grid's variants as Study v2 scores them: one row per variant id of ``v1`` (the grid's metadata:
    axis, group, budget, shape), ``bpc`` the mean over seeds of the whole-split bpc in ``tier``, with its
    sd, the 95 % interval of the mean (``bpc_ci_low``/``bpc_ci_high``), ``n_seeds``, the rate, and the v1
    prefix score kept as ``v1_bpc``. Variants whose configuration has no run in ``tier`` are left out."""
    sel = runs[runs["tier"] == tier] if len(runs) else runs
    if sel.empty:
        return v1.iloc[0:0].assign(n_seeds=pd.Series(dtype=int))
    summ = seed_summary(sel).sort_values("n_seeds").drop_duplicates("config_hash", keep="last")
    by_cfg = sel.sort_values("seed").groupby("config_hash")
    rows = []
    for s in summ.itertuples():
        g = by_cfg.get_group(s.config_hash)
        first = g.iloc[0]
        extra = {"config_hash": s.config_hash, "bpc": s.bpc_mean, "bpc_sd": s.bpc_sd,
                 "bpc_ci_low": s.bpc_mean_ci_low, "bpc_ci_high": s.bpc_mean_ci_high, "n_seeds": int(s.n_seeds),
                 "story_ci_halfwidth": s.story_ci_halfwidth, "lr": float(s.lr), "tokens_trained": int(s.tokens_trained),
                 "unigram_bpc": s.unigram_bpc, "eval_chars": s.eval_chars, "train_val_gap": s.train_val_gap,
                 "samples": first["samples"], "wall_s": float(g["wall_s"].mean()),
                 "tokens_per_s": float(g["tokens_per_s"].mean()), "machine": ", ".join(sorted(set(g["machine"]))),
                 "git_commit": ", ".join(sorted(set(g["git_commit"]))), "data_source": first.get("data_source"),
                 "is_synthetic": bool(g["is_synthetic"].any()) if "is_synthetic" in g else False,
                 "checkpoint": first.get("checkpoint"), "device": first.get("device"),
                 "bpc_source": f"Study v2 {tier} tier: whole validation split, mean of {int(s.n_seeds)} "
                               f"seed{'s' if s.n_seeds != 1 else ''}"}
        rows.extend({"variant_id": vid, **extra} for vid in s.variant_ids)
    v2 = pd.DataFrame(rows)
    keep = v1.assign(v1_bpc=v1["val_bpc" if "val_bpc" in v1 else "bpc"])
    keep = keep.drop(columns=[c for c in V2_REPLACES if c in keep])
    return keep.merge(v2, on="variant_id", how="inner").reset_index(drop=True)


def load_study_variants(results_dir, chapter: str = "07", tiers: tuple[str, ...] = ("long", "base")
                        ) -> tuple[pd.DataFrame, str]:
    """The sweep's variants scored by Study v2 (whole split, mean over seeds, with intervals), each from the
    first of ``tiers`` that trained its configuration (the long tier's 20 M tokens before the base grid's
    2 M), once Study v2 covers ``MIN_COVERAGE`` of the v1 table, else the v1 table; and a sentence saying which."""
    from ..numbers import plural
    from . import tables
    v1 = tables.load_variants(results_dir, chapter)
    runs = load_study(results_dir)
    parts, said = [], []
    for tier in tiers:
        got = study_variants(v1, runs, tier)
        got = got[~got["variant_id"].isin(set().union(*[set(p["variant_id"]) for p in parts]))] if parts else got
        if len(got):
            parts.append(got.assign(study_tier=tier))
            n = sorted(set(got["n_seeds"]))
            seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]} to {n[-1]}"
            said.append(f"{plural(got['config_hash'].nunique(), 'configuration')} from the {tier} tier "
                        f"({int(got['tokens_trained'].median()):,} tokens, mean of {seeds} seed{'s' * (n[-1] > 1)})")
    n_v2 = sum(len(p) for p in parts)
    if n_v2 < max(1, MIN_COVERAGE * len(v1)):     # the v1 table whole until Study v2 covers it: never a mix
        return v1, V1_SOURCE + (f" (Study v2 has {n_v2} of these {len(v1)} variants so far: chapter 4b)"
                                if n_v2 else "")
    v2 = pd.concat(parts, ignore_index=True)
    v2 = v2.assign(val_bpc=v2["bpc"], params=v2["n_params"])
    left = sorted(set(v1["variant_id"]) - set(v2["variant_id"]))
    if left:
        said.append(f"{plural(len(left), 'variant')} Study v2 has not trained yet "
                    f"({', '.join(left[:6])}{' ...' if len(left) > 6 else ''}) {'are' if len(left) > 1 else 'is'} left out")
    return v2, "Study v2's score (the whole validation split, at the tuned rates): " + "; ".join(said)
