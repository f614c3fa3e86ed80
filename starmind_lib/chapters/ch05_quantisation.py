"""Chapter 05 (quantisation): the numbers its notebook states, from the quantisation table.

::

    scheme_summary(df, schemes)          # per scheme: models, median / p90 / worst cost, measurable, bytes
    coverage_text(df, planned, cfg)      # "155 of the 155 runs it plans are quantised (...)" for the source line
    what_models(df, cfg)                 # the runs in words, with the seeds of configurations that fell back
"""
from __future__ import annotations

import re

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
    its own reference and never is), split into measurably worse and measurably better than float32, and
    the median size in bytes."""
    out = (df.assign(worse=df["bpc_delta_ci_low"] > 0, better=df["bpc_delta_ci_high"] < 0)
             .groupby("scheme")
             .agg(models=("run_key", "nunique"), **{"median cost": ("bpc_delta", "median"),
                  "p90 cost": ("bpc_delta", lambda s: s.quantile(0.9)), "worst cost": ("bpc_delta", "max"),
                  "measurably worse": ("worse", "sum"), "measurably better": ("better", "sum"),
                  "median bytes": ("bytes", "median")})
             .reindex([s for s in schemes if s in set(df["scheme"])]).reset_index())
    out.insert(5, "cost measurable", out["measurably worse"] + out["measurably better"])
    return out.astype({"models": int, "cost measurable": int, "measurably worse": int, "measurably better": int})


def _seed_words(configs_by_seed: dict, cfg) -> str:
    """'seed-0 runs' or 'seed-0 runs; seed 1 for 20 configurations whose seed-0 checkpoint was not kept'."""
    seeds = ", ".join(str(s) for s in cfg.seeds)
    other = [f"seed {s} for {plural(n, 'configuration')}" for s, n in sorted(configs_by_seed.items())
             if s not in cfg.seeds and n]
    return f"seed-{seeds} runs" + (f"; {', '.join(other)} whose seed-{seeds} checkpoint was not kept"
                                   if other else "")


def what_models(df: pd.DataFrame, cfg) -> str:
    """Which runs the chapter quantised, in words: 'the base tier's seed-0 runs (2,000,768 tokens each,
    119 configurations, ...)', naming the fallback seed of configurations whose seed-0 run was not kept."""
    tokens = sorted(set(df["tokens_trained"].astype(int))) if len(df) else []
    tok = (f"{tokens[0]:,} tokens each" if len(tokens) == 1 else
           f"{tokens[0]:,} to {tokens[-1]:,} tokens" if tokens else "no runs yet")
    by_seed = df.groupby("seed")["config_hash"].nunique().to_dict() if len(df) else {}
    return (f"the {cfg.tier} tier's runs at the tuned learning rate of each size bucket ("
            f"{plural(df['config_hash'].nunique() if len(df) else 0, 'configuration')}, {tok}; "
            f"{_seed_words(by_seed, cfg)})")


def coverage_text(df: pd.DataFrame, planned: list[dict], cfg) -> str:
    """How many of the runs the configuration selects are in the table: '119 of the 155 runs it plans are
    quantised (Study v2's base tier, seed-0 runs); 36 other runs are not quantised yet'."""
    have = set(df["run_key"]) if len(df) else set()
    n_planned = len({r["run_key"] for r in planned})
    done = len(have & {r["run_key"] for r in planned})
    left = n_planned - done
    tail = f"; {plural(left, 'other run')} {'is' if left == 1 else 'are'} not quantised yet" if left else ""
    by_seed = pd.DataFrame(planned).groupby("seed")["config_hash"].nunique().to_dict() if planned else {}
    return (f"{done} of the {plural(n_planned, 'run')} it plans are quantised (Study v2's {cfg.tier} tier; it "
            f"plans {_seed_words(by_seed, cfg)}){tail}")


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


def long_tier_costs(table: pd.DataFrame, scheme: str = "int8_engine") -> pd.DataFrame:
    """The int8 engine's cost on each configuration's long-tier run (20 M tokens) beside its cost on the
    base-tier run this chapter quantised (2 M tokens): configurations quantised in both tiers, by size.
    The runs are one seed each (named), so the two costs are of two trainings, not of two seeds."""
    rows = table[(table["scheme"] == scheme) & (table["error"].fillna("") == "")] if "error" in table else \
        table[table["scheme"] == scheme]
    if "tier" not in rows or rows.empty:
        return pd.DataFrame()
    base = rows[rows["tier"] == "base"].drop_duplicates("config_hash").set_index("config_hash")
    long = rows[rows["tier"] == "long"].drop_duplicates("config_hash")
    out = []
    for r in long.itertuples():
        if r.config_hash not in base.index:
            continue
        b = base.loc[r.config_hash]
        out.append({"configuration": r.name, "parameters": int(r.n_params), "tokenizer": r.tokenizer_spec,
                    "heads": int(r.n_heads), "cost at 2 M tokens": float(b["bpc_delta"]),
                    "cost at 20 M tokens": float(r.bpc_delta),
                    "95 % interval (20 M)": f"{r.bpc_delta_ci_low:.3f}–{r.bpc_delta_ci_high:.3f}",
                    "seed of each run (2 M / 20 M)": f"{int(b['seed'])} / {int(r.seed)}",
                    "ratio": float(r.bpc_delta / b["bpc_delta"]) if b["bpc_delta"] > 0 else float("nan")})
    return pd.DataFrame(out).sort_values("parameters").reset_index(drop=True) if out else pd.DataFrame()


def long_cost_words(lt: pd.DataFrame) -> dict[str, str]:
    """The prose numbers of :func:`long_tier_costs`' table (glue name -> text)."""
    from ..numbers import fmt_num
    if lt.empty:
        return {k: "n/a (no long-tier run quantised)" for k in
                ("lt_n", "lt_n_larger", "lt_ratio_min", "lt_ratio_max", "lt_ratio_median", "lt_worst")} | {
                    "lt_exceptions": " (none to compare)"}
    worst = lt.sort_values("cost at 20 M tokens").tail(2).iloc[::-1]
    not_larger = lt[lt["cost at 20 M tokens"] <= lt["cost at 2 M tokens"]]
    exceptions = ("; not larger for " + ", ".join(
        f"{r['configuration']} (+{r['cost at 20 M tokens']:.3f} against +{r['cost at 2 M tokens']:.3f})"
        for _, r in not_larger.iterrows())) if len(not_larger) else "; it is never smaller"
    return {"lt_n": plural(len(lt), "configuration"),
            "lt_n_larger": f"{int((lt['cost at 20 M tokens'] > lt['cost at 2 M tokens']).sum())} of {len(lt)}",
            "lt_ratio_min": fmt_num(lt["ratio"].min(), sig=2), "lt_ratio_max": fmt_num(lt["ratio"].max(), sig=2),
            "lt_ratio_median": fmt_num(lt["ratio"].median(), sig=2), "lt_exceptions": exceptions,
            "lt_worst": " and ".join(f"{r['configuration']} ({plural(int(r['heads']), 'head')}, {r['tokenizer']}: "
                                     f"+{r['cost at 20 M tokens']:.3f} bpc against +{r['cost at 2 M tokens']:.3f})"
                                     for _, r in worst.iterrows())}


def _error_words(error: str) -> str:
    """An engine error as a reader reads it: 'a requantisation factor of 6.5, outside the format's 0 to 2'
    for the one the format's fixed point cannot hold, else the message itself, quoted."""
    m = re.search(r"requant factor out of \[0, 2\): max ([0-9.eE+-]+)", str(error))
    if m:
        return f"a requantisation factor of {float(m.group(1)):.2g}, outside the format's range of 0 to 2"
    return f"“{str(error).split(': ', 1)[-1]}”"


def failed_runs_text(table: pd.DataFrame, tier: str, scheme: str = "int8_engine") -> str:
    """The runs of one tier the scheme could not quantise, with the engine's message, as a sentence
    ('' when none failed): a failure is a result, not a row to drop in silence."""
    if "error" not in table or "tier" not in table:
        return ""
    bad = table[(table["tier"] == tier) & (table["scheme"] == scheme) & (table["error"].fillna("") != "")]
    if bad.empty:
        return ""
    runs = "; ".join(f"{r.name} (seed {int(r.seed)}: {_error_words(r.error)})"
                     for r in bad.drop_duplicates("run_key").itertuples())
    why = (" Its constants must fit the format's fixed-point range, and this trained model's do not."
           if bad["error"].str.contains("requant factor out of").all() else "")
    then = " Chapter 07 gives such a configuration its base-tier cost and says so." if tier == "long" else ""
    return f" The engine could not quantise {plural(bad['run_key'].nunique(), f'{tier}-tier run')}: {runs}.{why}{then}"


def residual_scale_table(rs: pd.DataFrame) -> pd.DataFrame:
    """One row per traced run (:mod:`starmind_lib.quant.residual_scale`), the worst first, then the controls:
    its shape, the largest residual value seen in calibration, the engine's cost (bpc over float32) at the
    shipped headroom (chapter 05's row) and at each traced one, and the argmax agreement at the shipped and the
    smallest headroom."""
    if rs.empty:
        return pd.DataFrame()
    out = []
    for _, g in rs.sort_values("headroom", ascending=False).groupby("run_key", sort=False):
        r = g.iloc[0]
        low = g.iloc[-1]
        row = {"configuration": r["variant_id"], "role": "worst" if r["role"] == "worst" else "control",
               "parameters": int(r["n_params"]),
               "dim × layers × heads": f"{int(r['dim'])} × {int(r['n_layers'])} × {int(r['n_heads'])}",
               "residual max": float(r["res_maxabs"]),
               f"cost at {r['shipped_headroom']:g} (shipped)": float(r["shipped_bpc_delta"])}
        row.update({f"cost at {h:g}": float(d) for h, d in zip(g["headroom"], g["bpc_delta"])})
        row[f"agreement, {r['shipped_headroom']:g} → {low['headroom']:g}"] = (
            f"{r['shipped_agreement']:.1%} → {low['greedy_agreement']:.1%}")
        out.append(row)
    t = pd.DataFrame(out)
    shipped = next(c for c in t.columns if c.endswith("(shipped)"))
    return (t.assign(_w=t["role"] != "worst").sort_values(["_w", shipped], ascending=[True, False])
             .drop(columns="_w").reset_index(drop=True))


RS_NAMES = ("rs_worst_model", "rs_worst_resmax", "rs_control_embed", "rs_embed_shipped", "rs_n_worst",
            "rs_n_controls", "rs_headrooms", "rs_finding")


def residual_scale_words(rs: pd.DataFrame) -> dict[str, str]:
    """The prose of the residual-scale trace (glue name -> text): the worst run's largest residual value and its
    embedding's steps, the controls' median embedding steps, what was traced, and the finding, in words generated from the
    numbers: the headroom with the lowest median cost over the worst runs, that median before and after, the worst
    run's, how far the controls move, and whether the residual scale explains most of the worst costs."""
    from ..numbers import fmt_num
    worst = rs[rs["role"] == "worst"] if len(rs) else rs
    if worst.empty:
        none = "n/a (no run traced)"
        return {n: none for n in RS_NAMES} | {
            "rs_finding": "No run the engine hurts most has been traced here (its checkpoint is not kept, or the "
                          "trace has not run), so this chapter cannot say which step its cost comes from."}
    ctrl = rs[rs["role"] != "worst"]
    by_h = worst.groupby("headroom")["bpc_delta"].median()
    best = float(by_h.idxmin())
    first = worst.drop_duplicates("run_key")
    top = first.sort_values("shipped_bpc_delta").iloc[-1]
    top_at_best = worst[(worst["run_key"] == top["run_key"]) & (worst["headroom"] == best)].iloc[0]
    cost = lambda v: f"{'+' if v >= 0 else '−'}{fmt_num(abs(float(v)), sig=2)}"  # noqa: E731
    before, after = float(first["shipped_bpc_delta"].median()), float(by_h[best])
    def move(a, b):   # "falls from +0.5 to +0.01", "rises from ...", "stays at +0.0003" (as printed)
        a, b = float(a), float(b)
        return (f"stays at {cost(a)}" if cost(a) == cost(b) else
                f"{'falls' if b < a else 'rises'} from {cost(a)} to {cost(b)}")
    finding = (f"At a headroom of {best:g} the median cost of the worst models {move(before, after)} bpc, and the "
               f"worst model's {move(top['shipped_bpc_delta'], top_at_best['bpc_delta'])} (its argmax agreement "
               f"from {top['shipped_agreement']:.1%} to {top_at_best['greedy_agreement']:.1%}; its embedding row "
               f"now takes "
               f"{fmt_num(float(top_at_best['embed_steps_median']), sig=2)} steps)")
    if len(ctrl):
        move = float((ctrl["bpc_delta"] - ctrl["shipped_bpc_delta"]).abs().max())
        finding += f"; the controls' costs move by at most {fmt_num(move, sig=2)} bpc"
    bound = worst[worst["effective_headroom"] > worst["headroom"] * 1.01] if "effective_headroom" in worst else worst.iloc[:0]
    if len(bound):
        finding += (f". In {plural(bound['run_key'].nunique(), 'run')} a weight's requantisation bound kept the "
                    f"step coarser than asked (effective headroom up to "
                    f"{fmt_num(float(bound['effective_headroom'].max()), sig=2)})")
    finding += (". So most of the worst costs come from the residual scale, not from the int8 of the weights or "
                "of the other activations." if after <= 0.25 * before else
                ". So the residual scale explains only part of the worst costs; the rest is not traced here.")
    return {"rs_worst_model": str(top["variant_id"]), "rs_worst_resmax": fmt_num(float(top["res_maxabs"]), sig=3),
            "rs_control_embed": fmt_num(float(ctrl.drop_duplicates("run_key")["shipped_embed_steps_median"].median()),
                                        sig=2) if len(ctrl) else "n/a (no control traced)",
            "rs_embed_shipped": fmt_num(float(top["shipped_embed_steps_median"]), sig=2),
            "rs_n_worst": plural(first["run_key"].nunique(), "model"),
            "rs_n_controls": plural(ctrl["run_key"].nunique(), "model"),
            "rs_headrooms": " and ".join(f"{h:g}" for h in sorted(set(rs["headroom"]), reverse=True)),
            "rs_finding": finding}
