"""Chapter 04b (Study v2): the glue its notebook calls: run or read the study, progress, figures, numbers.

::

    runs = study_v2_table(results_dir, runs_dir, recompute, params, data_source, data_dir, profile)
    progress_table(runs, params)             # runs done / planned per tier
    lr_chart(runs); seed_table(runs); prefix_vs_whole(runs, v1)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.seeds import (NO_DIFF, REAL, SUPERSEDED, axis_effects, compare_values, load_study,
                             rank_correlation, seed_summary, verdict_text)
from ..analysis.seeds import chars_per_token as run_chars_per_token
from ..numbers import plural
from ..training.grid import grid
from ..training import plan
from ..training.plan import (BUCKETS, StudyConfig, distinct_configs, plan_jobs, representatives,
                             tuned_rates)
from ..training.study import chars_per_token, run_study

TIER_LABELS = {"lr": "learning-rate sweep", "base": "base grid (tuned rate)", "untuned": "base grid at 3e-3",
               "long": "long tier", "context": "context control"}


def study_v2_table(results_dir, runs_dir, recompute: bool, params: dict, data_source: str = "tinystories",
                   data_dir: str = "", profile: str = "", progress: bool = False) -> pd.DataFrame:
    """Study v2's runs: trained now (``recompute``: only the runs not yet in the table) or as committed."""
    study = StudyConfig.from_params(params)
    if recompute:
        data = prepared_dir(runs_dir, data_source, data_dir, study)
        run_study(study, data, results_dir, runs_dir, profile=profile, progress=progress)
    return load_study(results_dir)


def prepared_dir(runs_dir, data_source: str, data_dir: str, study: StudyConfig) -> Path:
    """Tokenized data with story tables for the study's grid (shared with chapter 04, prepared once per corpus)."""
    from ..training.grid import tokenizers_needed
    from .ch04_architecture import prepare_study_data
    return Path(prepare_study_data(runs_dir, data_source, data_dir, tokenizers_needed(grid(study.grid))))


def progress_table(runs: pd.DataFrame, params: dict, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Per tier: runs planned (as far as the finished tiers allow), runs done, and what a tier waits for."""
    study = StudyConfig.from_params(params)
    configs = distinct_configs(grid(study.grid), study.seq_len)
    rows = runs.to_dict("records") if len(runs) else []
    done = set(runs["run_key"]) if len(runs) else set()
    out = []
    for tier in study.tiers:
        jobs, why = plan_jobs(tier, study, configs, rows, chars_per_token(data_dir) if data_dir else {})
        n_done = sum(j.run_key in done for j in jobs)
        out.append({"tier": TIER_LABELS[tier], "runs planned": len(jobs) if jobs else np.nan,
                    "runs done": n_done if jobs else int((runs["tier"] == tier).sum()) if len(runs) else 0,
                    "note": why or ("complete" if jobs and n_done == len(jobs) else "")})
    stale = int((runs["tier"] == SUPERSEDED).sum()) if len(runs) else 0
    if stale:
        out.append({"tier": "base grid at a superseded rate", "runs planned": np.nan, "runs done": stale,
                    "note": "kept, never averaged: trained before its size bucket's rate was tuned again"})
    return pd.DataFrame(out)


def tier_complete(prog: pd.DataFrame, tier: str) -> bool:
    """Has the progress table's ``tier`` trained every run it plans?"""
    row = prog[prog["tier"] == TIER_LABELS[tier]] if len(prog) else prog
    return bool(len(row)) and row["note"].iloc[0] == "complete"


def lr_frame(runs: pd.DataFrame, grid_name: str = "full") -> pd.DataFrame:
    """The learning-rate sweep: one row per representative x rate (mean over its seeds)."""
    if runs.empty or not (runs.tier == "lr").any():
        return pd.DataFrame(columns=["bucket", "name", "lr", "bpc", "n_params"])
    lr = runs[runs.tier == "lr"]
    return (lr.groupby(["bucket", "name", "lr"], as_index=False)
              .agg(bpc=("bpc", "mean"), lo=("bpc_ci_low", "mean"), hi=("bpc_ci_high", "mean"),
                   n_params=("n_params", "first"), tokenizer=("tokenizer_spec", "first")))


def lr_chart(runs: pd.DataFrame):
    import altair as alt

    from ..book.figures import label, log_ticks
    data = lr_frame(runs)
    data = data.assign(model=data["name"] + " (" + data["n_params"].map(lambda n: f"{int(n):,}") + " params)")
    base = alt.Chart(data).encode(
        x=alt.X("lr:Q", scale=alt.Scale(type="log"), title=label("peak learning rate", "log scale"),
                axis=alt.Axis(values=log_ticks(data["lr"], steps=(1, 2, 5)))),
        color=alt.Color("model:N", title="configuration", legend=alt.Legend(orient="bottom", columns=2,
                                                                            labelLimit=320)))
    y_title = label("whole-split validation", "bits per character")
    line = base.mark_line(point=True).encode(y=alt.Y("bpc:Q", scale=alt.Scale(zero=False), title=y_title))
    band = base.mark_errorbar().encode(y=alt.Y("lo:Q", title=y_title), y2="hi:Q")   # one axis title, not "lo, ..."
    return (band + line).properties(width=520, height=300,
                                    title="Learning-rate sweep (2 M tokens, whole validation split, 95 % story CI)")


def rates_table(runs: pd.DataFrame, grid_name: str = "full") -> pd.DataFrame:
    """The rate each size bucket uses, and what 3e-3 (the v1 rate) costs there."""
    configs = distinct_configs(grid(grid_name))
    reps = representatives(configs)
    rates = tuned_rates(runs.to_dict("records") if len(runs) else [], reps=reps)
    lr = lr_frame(runs)
    out = []
    for bucket in [b for b, _ in BUCKETS if b in reps]:          # smallest bucket first
        names = reps[bucket]
        sel = lr[lr.bucket == bucket]
        row = {"size bucket": bucket, "representatives": ", ".join(names),
               "tuned rate": rates.get(bucket, np.nan)}
        if bucket in rates and len(sel):
            at = sel.groupby("lr")["bpc"].mean()
            row["bpc at tuned rate"] = at.get(rates[bucket], np.nan)
            row["bpc at 3e-3"] = at.get(3e-3, np.nan)
            row["at the grid's edge"] = "yes" if rates[bucket] in (min(at.index), max(at.index)) else "no"
        out.append(row)
    return pd.DataFrame(out)


def prefix_vs_whole(runs: pd.DataFrame, v1: pd.DataFrame | None) -> pd.DataFrame:
    """The v1 table's prefix bpc beside the whole-split bpc of the same training run (seed 0, rate 3e-3,
    2 M tokens: the lr tier repeats v1's recipe exactly, so its prefix bpc must equal v1's)."""
    if v1 is None or runs.empty:
        return pd.DataFrame()
    same = runs[(runs.lr == 3e-3) & (runs.seed == 0) & (runs.tokens_trained == 2_000_896) & (runs.seq_len == 64)]
    rows = []
    for _, r in same.drop_duplicates("config_hash").iterrows():
        old = v1[v1.variant_id.isin(list(r["variant_ids"]))]
        if old.empty:
            continue
        rows.append({"configuration": r["name"], "params": int(r["n_params"]),
                     "v1 table (first 32,768 val tokens)": float(old["val_bpc" if "val_bpc" in old else "bpc"].iloc[0]),
                     "this run, same prefix": float(r["prefix_bpc"]),
                     "this run, whole split": float(r["bpc"]),
                     "95 % story CI": f"{r['bpc_ci_low']:.3f}–{r['bpc_ci_high']:.3f}",
                     "whole − prefix": float(r["bpc"] - r["prefix_bpc"])})
    return pd.DataFrame(rows)


def context_table(data_dir: str | Path | None, runs: pd.DataFrame, seq_len: int = 64) -> pd.DataFrame:
    """Characters a ``seq_len``-token context covers, per tokenizer (validation split)."""
    cpt = chars_per_token(data_dir) if data_dir and Path(data_dir).exists() else {}
    if not cpt:                         # from what each run scored: characters / story tokens (EOS excluded)
        cpt = run_chars_per_token(runs)
    return pd.DataFrame([{"tokenizer": k, "characters per token": v, f"characters in {seq_len} tokens": v * seq_len}
                         for k, v in sorted(cpt.items(), key=lambda kv: kv[1])])


def _steps(g: pd.DataFrame) -> str:
    """Optimizer steps of a run group: the same token budget gives a longer context fewer of them."""
    if not len(g) or "best_tokens" not in g or not g["best_tokens"].iloc[0]:
        return "?"
    return f"{round(g['tokens_trained'].iloc[0] * g['best_step'].iloc[0] / g['best_tokens'].iloc[0]):,}"


def _batches(g: pd.DataFrame) -> pd.Series:
    """Sequences per optimizer step of each run: its ``batch_size``, or (rows from before the column) its
    tokens per step over its context."""
    derived = (g["best_tokens"] / g["best_step"].where(g["best_step"] > 0) / g["seq_len"]).round()
    return (g["batch_size"].fillna(derived) if "batch_size" in g else derived).astype("Int64")


def context_control_table(runs: pd.DataFrame, seq_len: int = 64) -> pd.DataFrame:
    """The context-control tier against the same models at ``seq_len`` tokens (base tier): characters of
    context each sees, mean bpc over seeds, and whether the difference exceeds seed noise. Each control
    is trained with the base grid's batch of sequences (fewer, larger steps for a longer context) and with
    its tokens per step (the same steps): one row each."""
    if not len(runs) or "context" not in set(runs.tier):
        return pd.DataFrame()
    cpt = run_chars_per_token(runs)
    out = []
    ctls = runs[runs.tier == "context"]
    for (_, batch), ctl in ctls.groupby([ctls["config_hash"], _batches(ctls)], sort=False):
        first = ctl.iloc[0]
        ids = set(first["variant_ids"])
        base = runs[(runs.tier == "base") & (runs.seq_len == seq_len)
                    & runs["variant_ids"].map(lambda v: bool(ids & set(v)))]
        cmp = compare_values(base["bpc"].to_numpy(float), ctl["bpc"].to_numpy(float)) if len(base) else {}
        per = cpt.get(first["tokenizer_spec"], float("nan"))
        base_batch = _batches(base).iloc[0] if len(base) else "?"
        out.append(((first["name"], batch != base_batch), {"model": first["name"], "tokenizer": first["tokenizer_spec"], "parameters": int(first["n_params"]),
                    f"bpc at {seq_len} tokens": base["bpc"].mean() if len(base) else float("nan"),
                    "context (tokens)": int(first["seq_len"]), "context (characters)": round(first["seq_len"] * per),
                    "bpc (control)": ctl["bpc"].mean(), "seeds": f"{len(base)} / {len(ctl)}",
                    "sequences per step": f"{base_batch} / {batch}",
                    "optimizer steps": f"{_steps(base)} / {_steps(ctl)}",
                    "difference": cmp.get("diff", float("nan")), "seed noise ±": cmp.get("noise", float("nan")),
                    "verdict": cmp.get("verdict", "no run at the base context")}))
    out = [row for _, row in sorted(out, key=lambda t: t[0])]        # per model, the base grid's batch first
    return pd.DataFrame(out).round({f"bpc at {seq_len} tokens": 3, "bpc (control)": 3, "difference": 3,
                                    "seed noise ±": 3})


def same_steps(ctl: pd.DataFrame) -> pd.Series:
    """Per row of :func:`context_control_table`: did the control take the same optimizer steps as its
    model at the base context (within 2 %)? False where a step count is unknown."""
    def same(r) -> bool:
        if "?" in r["optimizer steps"]:
            return False
        base, steps = (float(x.replace(",", "")) for x in r["optimizer steps"].split(" / "))
        return abs(steps - base) <= 0.02 * base
    return ctl.apply(same, axis=1).astype(bool) if len(ctl) else pd.Series(dtype=bool)


def context_control_text(ctl: pd.DataFrame, seq_len: int = 64) -> str:
    """One clause per control row, from :func:`context_control_table`."""
    if ctl.empty:
        return "The context-control tier has not been trained yet."
    parts = []
    for _, r in ctl.iterrows():
        noise = f"seed noise ±{r['seed noise ±']:.3f}"
        moved = (f"{r['difference']:+.3f}, within {noise}" if r["verdict"] == NO_DIFF else
                 f"{r['difference']:+.3f}, beyond {noise}" if r["verdict"] == REAL else r["verdict"])
        base_steps, steps = r["optimizer steps"].split(" / ")
        parts.append(f"{r['model']} scores {r['bpc (control)']:.3f} bpc in {steps} steps against "
                     f"{r[f'bpc at {seq_len} tokens']:.3f} in {base_steps} at {seq_len} tokens ({moved})")
    return "; ".join(parts) + "."


def context_finding(ctl: pd.DataFrame, seq_len: int = 64) -> str:
    """What the controls trained with the same optimizer steps as their model (within 2 %) say about the
    gap between the char and BPE-1024 models at ``seq_len`` tokens; '' when there are none."""
    known = ctl[~ctl["optimizer steps"].str.contains("?", regex=False)] if len(ctl) else ctl
    same = ctl[same_steps(ctl)] if len(ctl) else ctl
    if same.empty:
        return ""
    by_tok = known.groupby("tokenizer")[f"bpc at {seq_len} tokens"].first()
    gap = by_tok.get("char64", np.nan) - by_tok.get("bpe1024", np.nan)
    gap_text = f"the character model scores {gap:.2f} bpc worse than the BPE-1024 one at {seq_len} tokens"
    moved = same[same["verdict"] == REAL]
    if len(moved):
        return ("With the same optimizer steps, " + ", ".join(
            f"{r['model']} differs from its model at {seq_len} tokens by {r['difference']:+.3f} bpc (beyond seed "
            f"noise ±{r['seed noise ±']:.3f})" for _, r in moved.iterrows()) + (f"; {gap_text}." if gap == gap else "."))
    noise = float(same["seed noise ±"].max())
    said = (f"With the same optimizer steps, {'neither control differs' if len(same) == 2 else 'no control differs'} "
            f"from its model at {seq_len} tokens by more than seed noise (±{noise:.3f} at most)")
    if gap != gap:
        return said + "."
    if noise < gap:
        return said + f", while {gap_text}: at this size and budget, the characters of context each sees do not explain that gap."
    return said + f", and {gap_text}: the controls are too noisy to say how much of it the context explains."


def seed_table(runs: pd.DataFrame, tier: str = "base") -> pd.DataFrame:
    """Configurations with at least two seeds: mean, sd and the 95 % interval of the mean, and the other
    names a configuration that several sweep axes share goes by in the other tables."""
    sel = runs[runs.tier == tier] if len(runs) else runs
    summ = seed_summary(sel)
    if summ.empty:
        return summ
    summ = summ[summ.n_seeds >= 2].sort_values("n_params")
    summ = summ.assign(also=[", ".join(v for v in (ids if isinstance(ids, (list, tuple, np.ndarray)) else [])
                                       if v != n) or "–" for n, ids in zip(summ["name"], summ["variant_ids"])])
    out = summ[["name", "also", "n_params", "n_seeds", "bpc_mean", "bpc_sd", "bpc_mean_ci_low", "bpc_mean_ci_high",
                "story_ci_halfwidth"]].round({"bpc_sd": 3, "story_ci_halfwidth": 3})
    return out.rename(columns={"name": "configuration", "also": "also named", "n_params": "parameters",
                               "n_seeds": "seeds",
                               "bpc_mean": "bpc (mean)", "bpc_sd": "sd over seeds", "bpc_mean_ci_low": "95 % CI low",
                               "bpc_mean_ci_high": "95 % CI high", "story_ci_halfwidth": "one run's story CI ±"})


def effects_table(runs: pd.DataFrame, grid_name: str = "full", tier: str = "base") -> pd.DataFrame:
    sel = runs[runs.tier == tier] if len(runs) else runs
    if sel.empty:
        return pd.DataFrame()
    eff = axis_effects(sel, grid(grid_name), tier)
    if eff.empty:
        return eff
    eff = eff.round({"best_bpc": 3, "runner_up_bpc": 3, "margin": 3, "noise": 3})
    return eff[["group", "best", "best_bpc", "runner_up", "runner_up_bpc", "margin", "noise", "verdict"]].rename(
        columns={"group": "comparison", "best_bpc": "best bpc", "runner_up": "runner-up", "runner_up_bpc":
                 "runner-up bpc", "margin": "margin (bpc)", "noise": "seed noise ± (bpc)"})


def tuning_moves(runs: pd.DataFrame, grid_name: str = "full") -> pd.DataFrame:
    """How far each comparison's conclusion moves when the rate is tuned: per comparison group, the best
    variant at the old rate (untuned tier, 3e-3, seed 0) and at the tuned rate (base tier, mean over seeds),
    and the rank correlation of the group's variants between the two (groups trained in both tiers)."""
    if runs.empty:
        return pd.DataFrame()
    means = {}
    for tier in ("untuned", "base"):
        sel = runs[runs.tier == tier]
        means[tier] = sel.groupby("config_hash")["bpc"].mean().to_dict()
        means[tier + "_ids"] = {vid: h for h, ids in zip(sel["config_hash"], sel["variant_ids"]) for vid in ids}
    groups: dict[str, list[str]] = {}
    for v in grid(grid_name):
        groups.setdefault(v["group"], []).append(v["variant_id"])
    base = runs[runs.tier == "base"]
    seeds_of = {h: g["bpc"].to_numpy(float) for h, g in base.groupby("config_hash")}
    rows = []
    for group, ids in groups.items():
        both = [i for i in ids if i in means["untuned_ids"] and i in means["base_ids"]]
        if len(both) < 2:
            continue
        old = pd.Series({i: means["untuned"][means["untuned_ids"][i]] for i in both})
        new = pd.Series({i: means["base"][means["base_ids"][i]] for i in both})
        old_cfg, new_cfg = means["base_ids"][old.idxmin()], means["base_ids"][new.idxmin()]
        same = old_cfg == new_cfg                      # one configuration can stand for two variant ids
        if same:
            tuned_says = "–"
        else:   # at the tuned rate, does the new winner beat the old one beyond seed noise?
            c = compare_values(seeds_of[old_cfg], seeds_of[new_cfg])
            tuned_says = verdict_text(c, margin=-c["diff"])
        rows.append({"comparison": group, "variants": len(both), "best at 3e-3": old.idxmin(),
                     "best tuned": new.idxmin(), "same winner": "yes" if same else "no",
                     TUNED_VERDICT: tuned_says,
                     "best bpc at 3e-3": float(old.min()), "best bpc tuned": float(new.min()),
                     "rank correlation": rank_correlation(old, new)})
    return pd.DataFrame(rows)


TUNED_VERDICT = "new winner against the old (tuned rate)"


def moved_beyond_noise(moves: pd.DataFrame) -> int:
    """How many of :func:`tuning_moves`' changed winners beat the old winner beyond seed noise."""
    if moves.empty:
        return 0
    return int(moves[moves["same winner"] == "no"][TUNED_VERDICT].str.startswith(REAL).sum())


TARGETS = ((10_000, 1.90), (100_000, 1.35))   # issue 10's targets: (near N parameters, bpc at most)
BEST_TARGET = 1.15
WINDOW = 1.5                                  # "near N": between N / 1.5 and N * 1.5 parameters


def targets_table(runs: pd.DataFrame, tier: str = "base", min_seeds: int = 3) -> pd.DataFrame:
    """The study's targets against the best mean over seeds: near 10K and 100K parameters (the best model
    within a factor of ``WINDOW``; the nearest model beside it) and overall. A target is stated as a mean
    over seeds: a model with fewer than ``min_seeds`` seeds is compared but not counted as meeting it (the
    best model that has them can still meet it)."""
    sel = runs[runs.tier == tier] if len(runs) else runs
    summ = seed_summary(sel)
    rows = []
    if summ.empty:
        return pd.DataFrame()
    for n, target in (*TARGETS, (None, BEST_TARGET)):
        cand = summ if n is None else summ[(summ.n_params >= n / WINDOW) & (summ.n_params <= n * WINDOW)]
        if cand.empty:
            continue
        best = cand.sort_values("bpc_mean").iloc[0]
        row = {"target": "best overall" if n is None else f"best near {n:,} parameters ({n / WINDOW:,.0f} to "
                                                                f"{n * WINDOW:,.0f})",
               "goal (bpc at most)": target, "model": best["name"], "params": int(best.n_params),
               "seeds": int(best.n_seeds), "bpc (mean)": round(float(best.bpc_mean), 3),
               "95 % interval": (f"{best.bpc_mean_ci_low:.3f}–{best.bpc_mean_ci_high:.3f}"
                                 if best.n_seeds > 1 else "one seed"),
               "met": _target_met(best, cand[cand.n_seeds >= min_seeds], target, min_seeds)}
        if n is not None:
            near = cand.assign(d=(cand.n_params - n).abs()).sort_values(["d", "bpc_mean"]).iloc[0]
            row["nearest model"] = f"{near['name']} ({int(near.n_params):,}): {near.bpc_mean:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def _target_met(best, decided: pd.DataFrame, target: float, min_seeds: int) -> str:
    """'yes' / 'no' when the best model has ``min_seeds`` seeds (its mean against the goal; 'within seed
    noise' when the mean's 95 % interval holds the goal); when it has fewer, the target is still met by the
    best model that has them, if its mean reaches the goal ('yes, by ...'), else 'not decided'."""
    if best.n_seeds >= min_seeds:
        verdict = "yes" if best.bpc_mean <= target else "no"
        lo, hi = best.get("bpc_mean_ci_low"), best.get("bpc_mean_ci_high")
        return f"{verdict}, within seed noise of the goal" if pd.notna(lo) and lo <= target <= hi else verdict
    if len(decided):
        d = decided.sort_values("bpc_mean").iloc[0]
        if d.bpc_mean <= target:
            return (f"yes, by {d['name']} ({plural(int(d.n_seeds), 'seed')}, {d.bpc_mean:.3f}); "
                    f"{best['name']} has {plural(int(best.n_seeds), 'seed')}")
    return (f"not decided: {plural(int(best.n_seeds), 'seed')} ({'below' if best.bpc_mean <= target else 'above'}"
            f" the goal)")


def long_tier_plan(runs: pd.DataFrame, grid_name: str = "full", seq_len: int = 64) -> set[str]:
    """The config hashes the long tier plans from the rows the table holds now, as the sweep plans them
    (``plan.long_tier_configs``: the whole quality-size front, the best of each decade, filled to 20; base
    rows count only at their bucket's tuned rate, and only buckets whose rate is decided take part)."""
    if runs.empty or not (runs.tier == "base").any():
        return set()
    configs = plan.long_tier_plan(runs.to_dict("records"), distinct_configs(grid(grid_name), seq_len))
    return {c["config_hash"] for c in configs}


def long_tier_table(runs: pd.DataFrame, planned: set[str] | None = None) -> pd.DataFrame:
    """Per long-tier configuration: bpc after 2 M tokens (base grid, mean over seeds) and after the long
    budget (mean over its seeds), the gain, the train-validation gap, and where the dev set was best; with
    ``planned`` (config hashes), whether the plan still holds it."""
    if runs.empty or not (runs.tier == "long").any():
        return pd.DataFrame()
    base = runs[runs.tier == "base"].groupby("config_hash")["bpc"].mean()
    rows = []
    for h, g in runs[runs.tier == "long"].groupby("config_hash"):
        long_bpc = float(g["bpc"].mean())
        row = {"configuration": g["name"].iloc[0], "params": int(g["n_params"].iloc[0]),
               "seeds": len(g), "tokens": int(g["tokens_trained"].max()),
               "bpc at 2 M tokens": float(base.get(h, np.nan)), "bpc long": long_bpc,
               "gain": float(base.get(h, np.nan)) - long_bpc,
               "train-validation gap": float(g["train_val_gap"].mean()),
               "best dev step (tokens)": int(g["best_tokens"].median())}
        if planned is not None:
            row["planned"] = "yes" if h in planned else "no longer"
        rows.append(row)
    return pd.DataFrame(rows).sort_values("params").reset_index(drop=True)


def long_tier_status(lt: pd.DataFrame, planned: int | None = None) -> str:
    """How far the long tier is: configurations trained of the ``planned`` (default the study's
    LONG_MIN_CONFIGS), seeds, the size range they cover (a partial tier trains the cheapest first), and the
    runs kept from configurations the plan chose before the base grid was complete (``lt``'s "planned")."""
    from ..training.plan import LONG_MIN_CONFIGS
    planned = planned or LONG_MIN_CONFIGS
    off = lt[lt["planned"] != "yes"] if "planned" in lt else lt.iloc[:0]
    on = lt.drop(off.index)

    def seeds(t: pd.DataFrame, each: str) -> str:
        counts = t["seeds"].astype(int).value_counts().sort_index(ascending=False)
        return (f"{each} {plural(int(counts.index[0]), 'seed')}" if len(counts) == 1 else
                ", ".join(f"{n} with {plural(int(k), 'seed')}" for k, n in counts.items()))
    if on.empty:
        said = f"None of the {planned} configurations it plans has been trained yet."
    else:
        done = len(on) >= planned
        said = ((f"All {planned} configurations it plans have been trained, " if done else
                 f"So far {plural(len(on), 'configuration')} of the {planned} it plans "
                 f"{'has' if len(on) == 1 else 'have'} been trained, ") + f"{seeds(on, 'with')}"
                f"{' each' if on['seeds'].nunique() == 1 else ''}, from {int(on['params'].min()):,} to "
                f"{int(on['params'].max()):,} parameters{'' if done else ' (the cheapest first)'}.")
    if len(off):
        one = len(off) == 1
        said += (f" {plural(len(off), 'more configuration')} ({', '.join(off['configuration'])}) "
                 f"{'was' if one else 'were'} chosen while the base grid was incomplete; the complete grid's front "
                 f"passes {'it' if one else 'them'} by, but the tier trains every configuration it has started to "
                 f"all its seeds ({seeds(off, 'it has' if one else 'all with')}).")
    return said


def long_rank_correlation(runs: pd.DataFrame) -> float:
    """Spearman rank correlation, over the long tier's configurations, of bpc at 2 M and at the long budget."""
    t = long_tier_table(runs)
    if t.empty:
        return float("nan")
    return rank_correlation(t["bpc at 2 M tokens"], t["bpc long"])


def long_curves_chart(runs: pd.DataFrame):
    """Learning curves of the long tier (validation prefix, labelled), one line per configuration and seed."""
    import altair as alt

    from ..book.figures import label, log_ticks
    rows = [{"configuration": f"{r.name} ({int(r.n_params):,})", "params": int(r.n_params), "seed": int(r.seed),
             "run": r.run_key, "tokens": p["tokens"], "bpc": p["val_bpc"]}
            for r in runs[runs.tier == "long"].itertuples() for p in r.curve]
    data = pd.DataFrame(rows)
    # the axis spans the curves (first evaluation to the end), not the decade Vega would round down to
    span = [int(data["tokens"].min()), int(data["tokens"].max())]
    return alt.Chart(data).mark_line(opacity=0.8).encode(
        x=alt.X("tokens:Q", scale=alt.Scale(type="log", domain=span, nice=False),
                axis=alt.Axis(values=[t for t in log_ticks(span, steps=(1, 2, 5)) if span[0] <= t <= span[1]],
                              format="~s"),
                title=label("training tokens", "log scale")),
        y=alt.Y("bpc:Q", scale=alt.Scale(zero=False), title=label("validation prefix (learning curve)",
                                                                   "bits per character")),
        color=alt.Color("params:Q", scale=alt.Scale(type="log", scheme="viridis"), title="parameters"),
        detail="run:N", tooltip=["configuration", "seed", "tokens", alt.Tooltip("bpc:Q", format=".3f")],
    ).properties(width=560, height=320, title="Long tier: bits per character against tokens seen")


def train_chars_total(results_dir) -> int:
    """Characters in the lowercased training split (chapter 01's table; 0 when it is absent)."""
    from ..provenance import ResultTable
    df = ResultTable(Path(results_dir) / "data" / "stats", key="row_id").frame()
    if df.empty:
        return 0
    sel = df[(df["view"] == "lowercased") & (df["split"] == "train")]
    return int(sel.sort_values("timestamp").iloc[-1]["characters"]) if len(sel) else 0
