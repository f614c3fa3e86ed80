"""Chapter 05 (quantisation): the numbers its notebook states, from the quantisation table.

::

    scheme_summary(df, schemes)          # per scheme: models, median / p90 / worst cost, measurable, bytes
    coverage_text(df, planned, cfg)      # "119 of 119 configurations of ..." for the source line
"""
from __future__ import annotations

import pandas as pd

from ..numbers import plural


def selected_rows(df: pd.DataFrame, planned: list[dict]) -> pd.DataFrame:
    """The table's rows of the planned runs; a table with none of them (or none at all) is an error that
    says what to run."""
    keys = {r["run_key"] for r in planned}
    rows = df[df["run_key"].isin(keys)] if "run_key" in df.columns else df.iloc[:0]
    if rows.empty:
        raise ValueError(f"the quantisation table has no row for the {plural(len(keys), 'planned run')}: run "
                         "chapter 05 with recompute=true (`python -m starmind_lib.quant.stage`)")
    return rows.reset_index(drop=True)


def scheme_summary(df: pd.DataFrame, schemes) -> pd.DataFrame:
    """One row per scheme present: how many models, the median, 90th-percentile and worst cost (bpc over
    float32), how many of those costs are measurable (the paired 95 % interval excludes zero; float32 is
    its own reference and never is), and the median size in bytes."""
    measurable = (df["bpc_delta_ci_low"] > 0) | (df["bpc_delta_ci_high"] < 0)
    out = (df.assign(measurable=measurable)
             .groupby("scheme")
             .agg(models=("run_key", "nunique"), **{"median cost": ("bpc_delta", "median"),
                  "p90 cost": ("bpc_delta", lambda s: s.quantile(0.9)), "worst cost": ("bpc_delta", "max"),
                  "cost measurable": ("measurable", "sum"), "median bytes": ("bytes", "median")})
             .reindex([s for s in schemes if s in set(df["scheme"])]).reset_index())
    return out.astype({"models": int, "cost measurable": int})


def what_models(df: pd.DataFrame, cfg) -> str:
    """Which runs the chapter quantised, in words: 'seed-0 runs (2,000,768 tokens each, 119 configurations)'."""
    seeds = ", ".join(str(s) for s in cfg.seeds)
    tokens = sorted(set(df["tokens_trained"].astype(int))) if len(df) else []
    tok = (f"{tokens[0]:,} tokens each" if len(tokens) == 1 else
           f"{tokens[0]:,} to {tokens[-1]:,} tokens" if tokens else "no runs yet")
    return (f"the {cfg.tier} tier's seed-{seeds} runs ({tok}, {plural(df['config_hash'].nunique() if len(df) else 0, 'configuration')}, "
            f"at the tuned learning rate of each size bucket)")


def coverage_text(df: pd.DataFrame, planned: list[dict], cfg) -> str:
    """How many of the runs the configuration selects are in the table."""
    have = set(df["run_key"]) if len(df) else set()
    n_planned = len({r["run_key"] for r in planned})
    done = len(have & {r["run_key"] for r in planned})
    tail = "" if done == n_planned else f" (the other {n_planned - done} are not quantised yet)"
    return (f"{done} of the {plural(n_planned, 'run')} of Study v2's {cfg.tier} tier with seed "
            f"{', '.join(str(s) for s in cfg.seeds)}{tail}")


def size_trend_text(df: pd.DataFrame, scheme: str) -> str:
    """How a scheme's cost moves with model size, in words, from the rank correlation of cost and parameter
    count: 'falls with size (rank correlation -0.52 over 119 models)'."""
    x = df[df["scheme"] == scheme]
    if len(x) < 3:
        return f"cannot be related to size yet ({plural(len(x), 'model')})"
    rho = float(x["bpc_delta"].corr(x["n_params"], method="spearman"))
    how = ("falls as models grow" if rho <= -0.3 else "grows with model size" if rho >= 0.3 else
           "shows no clear trend with model size")
    return f"{how} (rank correlation {rho:+.2f} between cost and parameters over {plural(len(x), 'model')})"
