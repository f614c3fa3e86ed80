"""Chapter 03 (training): reference runs, their curves, the unigram baseline, their samples.

Each reference run is a :class:`~starmind_lib.training.train.TrainConfig`, scored on the whole validation split
(``bpc`` with its 95 % story-bootstrap interval; the curve's prefix score is ``prefix_bpc``); its final numbers and samples go
to ``<results_dir>/train/runs`` and its evaluation curve to ``<results_dir>/train/curves`` (both
``ResultTable``s), so the chapter shows them later without checkpoints::

    runs, curves = reference_runs({"ref-10k": {...}, "ref-100k": {...}}, common_train, results_dir,
                                  runs_dir, recompute, data_source, data_dir, profile)
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..provenance import ResultTable, provenance
from ..training.sweep import PieceDecoder, load_prepared
from .ch04_architecture import prepare_study_data
from ..training.evaluation import StoryEval, evaluate_stories
from ..training.train import EvalSet, TrainConfig, train_model


def _tables(results_dir):
    base = Path(results_dir) / "train"
    return ResultTable(base / "runs", key="run_id"), ResultTable(base / "curves", key="point_id")


EVAL_VERSION = "whole"   # v1 rows (bpc on the first eval_tokens of validation) had no suffix


def run_id_of(name: str, key: str) -> str:
    """A reference run's id: its name, its config key and the evaluation it was scored with."""
    return f"{name}-{key}-{EVAL_VERSION}"


def train_reference(name: str, cfg: TrainConfig, data_dir: Path, runs_dir, profile: str = "",
                    progress: bool = True) -> tuple[dict, list[dict]]:
    """Train one reference run (resuming an interrupted one); its table row and curve rows."""
    spec = f"{cfg.tokenizer}{cfg.model.vocab_size}"
    data = load_prepared(data_dir, spec)
    meta = data["meta"]
    decode = PieceDecoder(meta["pieces"])
    ev = EvalSet.build(data["val"], cfg.seq_len, cfg.eval_tokens, decode=decode)
    key = cfg.key(meta["fingerprint"])
    run_id = run_id_of(name, key)
    res = train_model(cfg, data["train"], ev, meta["vocab_size"], run_dir=Path(runs_dir) / "train" / run_id,
                      decode=decode, prompts=list(meta["prompts"].values()), progress=progress, desc=name)
    whole = evaluate_stories(res.model, StoryEval.from_stream(data["val"], int(meta["eos_id"]),
                                                              meta["val_story_chars"], cfg.seq_len), res.device)
    row = {"run_id": run_id, "name": name, "config": cfg.to_dict(), "config_hash": key, "n_params": res.n_params,
           "tokens_trained": res.tokens_trained, **whole, "prefix_bpc": res.bpc,
           "unigram_bpc": meta["unigram_bpc"], "wall_s": round(res.wall_s, 3),
           "tokens_per_s": round(res.tokens_per_s, 1), "device": res.device, "samples": res.samples,
           "is_synthetic": meta["is_synthetic"], "data_source": meta["source_label"],
           "data_fingerprint": meta["fingerprint"], "seed": cfg.seed, **provenance(profile=profile)}
    curve = [{"point_id": f"{run_id}@{m['step']}", "run_id": run_id, "name": name, **m} for m in res.metrics]
    return row, curve


def reference_runs(runs: dict[str, dict], common: dict, results_dir, runs_dir, recompute: bool,
                   data_source: str = "tinystories", data_dir: str = "", profile: str = "",
                   progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train (``recompute``; finished runs are skipped) or read the reference runs: (runs, curves) frames."""
    runs_table, curves_table = _tables(results_dir)
    wanted = None
    if recompute:
        cfgs = {name: TrainConfig.from_params({**common, **fields}) for name, fields in runs.items()}
        data_dir_prepared = prepare_study_data(runs_dir, data_source, data_dir,
                                               sorted({f"{c.tokenizer}{c.model.vocab_size}" for c in cfgs.values()}))
        done, wanted = {r["run_id"] for r in runs_table.rows()}, set()
        for name, cfg in cfgs.items():
            fp = load_prepared(data_dir_prepared, f"{cfg.tokenizer}{cfg.model.vocab_size}")["meta"]["fingerprint"]
            wanted.add(run_id_of(name, cfg.key(fp)))
            if run_id_of(name, cfg.key(fp)) in done:
                continue
            row, curve = train_reference(name, cfg, data_dir_prepared, runs_dir, profile, progress)
            stamp = {k: row[k] for k in ("git_commit", "git_diff", "profile", "machine", "timestamp",
                                         "config_hash", "data_fingerprint") if k in row}
            for point in curve:  # the curve first: a run's row marks it complete
                curves_table.append({**stamp, **point})
            runs_table.append(row)
        runs_table.snapshot()
        curves_table.snapshot()
    if not runs_table.journal.exists():
        raise FileNotFoundError(f"no training results at {runs_table.journal}; run this chapter with recompute=True")
    df, curves = runs_table.frame(), curves_table.frame()
    if wanted is not None:  # this configuration's runs only (the table may hold earlier ones)
        df = df[df.run_id.isin(wanted)]
    latest = df.groupby("name").tail(1)  # the newest run of each name
    return latest.reset_index(drop=True), curves[curves.run_id.isin(latest.run_id)].reset_index(drop=True)


def curve_chart(curves: pd.DataFrame, unigram: float):
    import altair as alt

    from ..book.figures import label
    base = alt.Chart(curves).mark_line(point=True).encode(
        x=alt.X("tokens:Q", title=label("training tokens")),
        y=alt.Y("val_bpc:Q", title=label("validation prefix (learning curve)", "bits per character"),
                scale=alt.Scale(zero=False)),
        color=alt.Color("name:N", title="run"),
        tooltip=[alt.Tooltip("name:N", title="model"), "step", "tokens",
                 alt.Tooltip("val_bpc:Q", format=".3f", title="bpc (validation prefix)"),
                 alt.Tooltip("lr:Q", format=".4f", title="learning rate")])
    rule = alt.Chart(pd.DataFrame({"val_bpc": [unigram], "what": ["unigram baseline"]})).mark_rule(
        color="gray", strokeDash=[4, 4]).encode(y="val_bpc:Q", tooltip=["what"])
    return alt.layer(base, rule).properties(width=560, height=300)


def seed_configs(study_runs: pd.DataFrame, targets=(10_000, 100_000), tokenizer: str = "char",
                 tier: str = "base") -> list[str]:
    """The config_hash of the ``tokenizer`` configuration nearest each target size (in parameters, within a
    factor of 1.5) among Study v2 configurations with at least two seeds in ``tier``."""
    from ..analysis.seeds import nearest, seed_summary
    sel = study_runs[(study_runs["tier"] == tier) & study_runs["tokenizer_spec"].str.startswith(tokenizer)] \
        if len(study_runs) else study_runs
    summ = seed_summary(sel)
    summ = summ[summ["n_seeds"] >= 2] if len(summ) else summ
    out = []
    for t in targets:
        near = nearest(summ, t, window=0.5) if len(summ) else summ
        if len(near) and near.iloc[0]["config_hash"] not in out:
            out.append(near.iloc[0]["config_hash"])
    return out


def seed_curves(study_runs: pd.DataFrame, hashes: list[str], tier: str = "base") -> pd.DataFrame:
    """Each seed's learning curve (validation prefix) for the given configurations: one row per point."""
    rows = []
    sel = study_runs[(study_runs["tier"] == tier) & study_runs["config_hash"].isin(hashes)]
    for r in sel.itertuples():
        label = f"{r.name} ({int(r.n_params):,} parameters)"
        rows += [{"configuration": label, "seed": int(r.seed), "tokens": p["tokens"], "val_bpc": p["val_bpc"]}
                 for p in r.curve]
    return pd.DataFrame(rows)


def seed_curve_chart(curves: pd.DataFrame):
    import altair as alt

    from ..book.figures import label
    return alt.Chart(curves).mark_line(point=True, opacity=0.8).encode(
        x=alt.X("tokens:Q", title=label("training tokens")),
        y=alt.Y("val_bpc:Q", title=label("validation prefix (learning curve)", "bits per character"),
                scale=alt.Scale(zero=False)),
        color=alt.Color("seed:N", title="seed", legend=alt.Legend(orient="bottom")),
        tooltip=["configuration", "seed", "tokens",
                 alt.Tooltip("val_bpc:Q", format=".3f", title="bpc (validation prefix)")],
    ).properties(width=260, height=220).facet(
        facet=alt.Facet("configuration:N", title=None, header=alt.Header(labelFontSize=12)), columns=2)


def seed_final_table(study_runs: pd.DataFrame, hashes: list[str], tier: str = "base") -> pd.DataFrame:
    """Per configuration and seed: the whole-split bpc with its story interval, then the spread over seeds."""
    sel = study_runs[(study_runs["tier"] == tier) & study_runs["config_hash"].isin(hashes)]
    out = sel[["name", "n_params", "seed", "lr", "bpc", "bpc_ci_low", "bpc_ci_high", "prefix_bpc"]]
    return out.sort_values(["n_params", "seed"]).reset_index(drop=True)


def seed_words(study_runs: pd.DataFrame, finals: pd.DataFrame | None) -> dict[str, str]:
    """How many seeds the base tier's configurations have ('3', '2 to 3', or none yet) and, given the final
    scores of the chapter's seed configurations (:func:`seed_final_table`), their spread: '0.012 to 0.034 bits
    per character (largest minus smallest of 3 seeds)'."""
    from ..numbers import fmt_num
    base = study_runs[study_runs["tier"] == "base"] if len(study_runs) else study_runs
    n = sorted(set(base.groupby("config_hash")["seed"].nunique())) if len(base) else []
    out = {"train_n_seeds": "several (none trained yet)" if not n else str(n[0]) if len(n) == 1
           else f"{n[0]} to {n[-1]}"}
    if finals is not None and len(finals):
        spread = finals.groupby("name")["bpc"].agg(lambda b: b.max() - b.min())
        lo, hi = fmt_num(spread.min(), 2), fmt_num(spread.max(), 2)
        out["train_seed_spread"] = (f"{lo if lo == hi else f'{lo} to {hi}'} bits per character (largest minus "
                                    f"smallest of {finals.groupby('name').size().min()} seeds)")
    return out
