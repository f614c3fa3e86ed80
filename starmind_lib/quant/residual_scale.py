"""Tracing the integer engine's worst costs to one step: the residual stream's scale.

The engine keeps the residual stream in int16 on one scale per model (FORMAT.md). That scale is set so
that ``RES_HEADROOM`` (2) times the largest residual value seen on the calibration windows fills the
int16 range. A model whose residual carries a few very large values (a wide one-layer model reaches
hundreds where its other channels are of order one) then leaves its ordinary channels, and the
embeddings that enter the stream, only a few integer levels.

:func:`run_residual_scale` re-quantises the models the engine hurts most (the ``worst`` largest int8
costs of the chapter-05 table) and ``controls`` models nearest the median cost, with the residual range
at other multiples of that largest value (``headrooms``; below 1 the largest values are clipped). Every
other constant, the calibration windows and the whole-split evaluation are chapter 05's, so the cost
at each headroom is comparable with the table's. One row per (run, headroom) goes to the resumable table
``<results_dir>/quant/residual_scale.{jsonl,parquet}``. The exported model files are not changed: the
device runtimes and every other number of the book use the shipped headroom.

    python -m starmind_lib.quant.residual_scale --params '{"worst": 5, "controls": 2}'
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, StageConfig, between
from .schemes import RES_HEADROOM

TABLE_STEM = ("quant", "residual_scale")
RUN_FIELDS = ("run_key", "variant_id", "tier", "seed", "n_params", "dim", "n_layers", "n_heads", "ffn_hidden",
              "tokenizer_spec")


@dataclass(frozen=True)
class ResidualScaleConfig(StageConfig):
    headrooms: tuple[float, ...] = (1.0, 0.5)          # multiples of the calibrated residual maximum (shipped: 2)
    worst: int = field(default=5, metadata=between(0, 1000))      # the largest int8 costs of chapter 05's table
    controls: int = field(default=2, metadata=between(0, 1000))   # models nearest the median cost
    calib_windows: int = field(default=16, metadata=between(1, 10_000))   # chapter 05's calibration
    tier: str = "base"                                             # chapter 05's tier (its median, its worst)
    study_data_dir: str = ""                                       # where the data is, not what is traced

    def validate(self) -> None:
        bad = [h for h in self.headrooms if not 0 < h <= 16]
        if bad or not self.headrooms:
            raise ConfigError(f"parameter 'headrooms': want values in (0, 16], got {list(self.headrooms)}")

    def trace_key(self) -> str:
        """What the rows are of (not where the data was read from): the chapter shows the rows of its own key."""
        return self.replace(study_data_dir="").key()


def results_table(results_dir):
    from ..provenance import ResultTable
    return ResultTable(Path(results_dir).joinpath(*TABLE_STEM), key="key")


def pick_runs(quant, cfg: ResidualScaleConfig, usable=None) -> list[dict]:
    """The engine rows (one per run) to trace: the ``worst`` largest costs, then the ``controls`` runs nearest
    the median cost, each run once, in that order. ``usable`` (run keys whose checkpoint is kept) limits the
    controls only: the worst runs are the worst, and one without its checkpoint is an error naming it."""
    eng = quant[(quant["scheme"] == "int8_engine") & (quant["error"].fillna("") == "")
                & (quant["tier"] == cfg.tier)]
    eng = eng.drop_duplicates("run_key")
    if eng.empty:
        raise ValueError(f"the quantisation table has no {cfg.tier}-tier int8_engine row without an error: run "
                         "chapter 05 first")
    worst = eng.sort_values(["bpc_delta", "run_key"], ascending=[False, True]).head(cfg.worst)
    rest = eng[~eng["run_key"].isin(worst["run_key"])]
    rest = rest if usable is None else rest[rest["run_key"].isin(set(usable))]
    mid = rest.assign(_d=(rest["bpc_delta"] - eng["bpc_delta"].median()).abs())
    controls = mid.sort_values(["_d", "run_key"]).head(cfg.controls).drop(columns="_d")
    return [{**r, "role": role} for role, part in (("worst", worst), ("control", controls))
            for r in part.to_dict("records")]


def _run_of(pick: dict, runs) -> dict:
    """The Study v2 run (checkpoint, data fingerprint) of a quantisation row."""
    match = runs[runs["run_key"] == pick["run_key"]]
    if match.empty:
        raise FileNotFoundError(f"run {pick['run_key']} ({pick['variant_id']}) is not in the Study v2 table")
    return match.iloc[0].to_dict()


def _effective_headroom(model, tensors: dict, res_max: float) -> float:
    """The headroom the file has: its residual step (recovered from the embedding's fixed-point factors, exact to
    about 1e-5) times the int16 range over the calibrated maximum. Larger than the one asked for where a weight's
    requantisation bound sets the step (schemes.to_int8_engine)."""
    from . import intengine as ie
    from .schemes import numpy_weights, quantize_rows
    e_s = quantize_rows(numpy_weights(model)["tok_emb"])[1]
    rq = tensors["tok_emb.rq"].astype(np.float64)
    step = float(np.median(e_s / (rq[:, 0] / 2.0 ** rq[:, 1])))
    return step * ie.RES_MAX / max(res_max, 1e-6)


def _embed_steps(tensors: dict) -> float:
    """How many residual steps the largest element of the median embedding row takes (a row enters the stream
    as q * m / 2**s, FORMAT.md)."""
    rq = tensors["tok_emb.rq"].astype(np.float64)
    return float(np.median(np.abs(tensors["tok_emb"]).max(1) * rq[:, 0] / 2.0 ** rq[:, 1]))


def trace_run(run: dict, cfg: ResidualScaleConfig, headrooms, runs_dir, data_source: str = "tinystories",
              raw_data_dir: str = "") -> tuple[list[dict], dict]:
    """(one row per headroom, what was evaluated) for one run: the engine's bpc, its paired cost against
    float32 and its argmax agreement, how many residual steps the largest element of the median embedding row
    takes, and the residual scale's calibrated maximum."""
    import torch

    from ..training.evaluation import bootstrap_bpc, bootstrap_delta, story_nats
    from . import intengine as ie
    from .schemes import calibrate, engine_story_nats, to_int8_engine
    from .smd import pack_smd, parse_smd
    from .stage import _calib_windows, load_run
    torch.set_num_threads(1)
    model, data, ev, _ = load_run(run, runs_dir, cfg.study_data_dir, data_source, raw_data_dir)
    trace = calibrate(model, _calib_windows(data["train"], model.cfg.max_seq_len, cfg.calib_windows))
    base = story_nats(model, ev)
    bpc_f32 = float(base.sum() / ev.story_chars.sum() / np.log(2))
    vocab = [bytes([65 + i % 26]) for i in range(model.cfg.vocab_size)]   # the vocabulary does not change logits
    rows = []
    for hr in headrooms:
        header, tensors = to_int8_engine(model, trace, res_headroom=hr)
        nats, agreement = engine_story_nats(ie.IntEngine(parse_smd(pack_smd(header, tensors, vocab))), ev, model)
        bpc, lo, hi = bootstrap_bpc(nats, ev.story_chars)
        dlo, dhi = bootstrap_delta(nats, base, ev.story_chars)
        rows.append({"headroom": float(hr), "bpc": bpc, "bpc_ci_low": lo, "bpc_ci_high": hi,
                     "bpc_float32": bpc_f32, "bpc_delta": bpc - bpc_f32, "bpc_delta_ci_low": dlo,
                     "bpc_delta_ci_high": dhi, "greedy_agreement": agreement,
                     "embed_steps_median": _embed_steps(tensors),
                     "effective_headroom": _effective_headroom(model, tensors, trace.maxabs.get("res", 0.0))})
    evaluated = {"res_maxabs": float(trace.maxabs.get("res", 0.0)),
                 "shipped_embed_steps_median": _embed_steps(to_int8_engine(model, trace)[1]), "eval_chars": ev.n_chars,
                 "eval_stories": ev.n_stories, "eval_tokens": ev.n_targets,
                 "is_synthetic": bool(data["meta"].get("is_synthetic", False))}
    return rows, evaluated


def run_residual_scale(cfg: ResidualScaleConfig, results_dir, runs_dir, profile: str = "",
                       data_source: str = "tinystories", raw_data_dir: str = "", shard: tuple[int, int] = (0, 1)):
    """Trace every picked run at every headroom; resumable (finished (run, headroom) rows are kept). A run whose
    checkpoint or data is missing is an error line naming it, and the batch goes on."""
    from ..analysis.seeds import load_study
    from ..provenance import provenance
    from .stage import checkpoint_kept, read_quant
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: want 0 <= k < n")
    table, runs = results_table(results_dir), load_study(results_dir)
    done = table.keys()
    kept = set(runs.loc[checkpoint_kept(runs, runs_dir), "run_key"])
    for pick in pick_runs(read_quant(results_dir), cfg, kept | {k_.split("/")[0] for k_ in done})[k::n]:
        todo = [h for h in cfg.headrooms if f"{pick['run_key']}/{h:g}" not in done]
        if not todo:
            continue
        try:
            rows, evaluated = trace_run(_run_of(pick, runs), cfg, todo, runs_dir, data_source, raw_data_dir)
        except (FileNotFoundError, ValueError, OSError) as exc:
            print(f"residual scale: {pick['run_key']} ({pick['variant_id']}): {exc}", file=sys.stderr)
            continue
        base = {"role": pick["role"], "shipped_headroom": RES_HEADROOM,
                "shipped_bpc_delta": float(pick["bpc_delta"]), "shipped_agreement": pick.get("greedy_agreement"),
                **{f: pick[f] for f in RUN_FIELDS if f in pick}}
        for r in rows:
            table.append({"key": f"{pick['run_key']}/{r['headroom']:g}", **base, **r, **evaluated,
                          "config_key": cfg.key(), "trace_key": cfg.trace_key(), **provenance(profile)})
    table.snapshot()
    df = table.frame()
    return df[df["trace_key"] == cfg.trace_key()].reset_index(drop=True) if len(df) else df


def read_residual_scale(results_dir, cfg: ResidualScaleConfig):
    """The committed table's rows of ``cfg``'s trace (for recompute = false); an error naming the table and the
    command when it is missing."""
    import pandas as pd
    path = Path(results_dir).joinpath(*TABLE_STEM).with_suffix(".parquet")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m starmind_lib.quant.residual_scale` "
                                "(or chapter 05 with recompute=true)")
    df = pd.read_parquet(path)
    return df[df["trace_key"] == cfg.trace_key()].reset_index(drop=True)


def main(argv=None) -> int:
    from .stage import stage_args
    a, cfg, shard = stage_args("starmind_lib.quant.residual_scale", "Re-quantise chapter 05's worst and median "
                               "models at other residual ranges and score them on the whole validation split "
                               "(resumes)", ResidualScaleConfig, argv)
    df = run_residual_scale(cfg, a.results_dir, a.runs_dir, profile=a.profile, data_source=a.data_source,
                            raw_data_dir=a.data_dir, shard=shard)
    print(f"residual scale: {df['run_key'].nunique() if len(df) else 0} runs, {len(df)} rows in "
          f"{results_table(a.results_dir).journal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
