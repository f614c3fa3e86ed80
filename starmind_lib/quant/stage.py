"""The chapter-05 stage: quantise Study v2's models and score every scheme on the whole validation split.

:func:`run_quant` takes the Study v2 runs of one tier and seeds (by default the base tier's seed 0: every
distinct configuration once), quantises each checkpoint with every scheme, and scores each on every
validation story whole (:mod:`starmind_lib.training.evaluation`, the evaluation of the study itself),
with a 95 % bootstrap interval over stories for the bpc and a paired one for its cost against float32.
One row per (run, scheme) goes to the resumable table ``<results_dir>/quant/quant.{jsonl,parquet}``;
the int8 files go to ``<runs_dir>/smd/<variant_id>.smd`` (one per variant the configuration stands for).
A run that cannot be quantised (checkpoint missing or unreadable, data of another corpus) is an error
line naming it, and the batch goes on; it has no row, so the next run of the stage tries it again. A
scheme a model does not fit (outside the int8 limits) is a row with its ``error``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, StageConfig, between
from ..training.plan import variant_id_list
from .schemes import SCHEMES, evaluate_schemes, known_scheme

TABLE_STEM = ("quant", "quant")
RUN_FIELDS = ("run_key", "config_hash", "name", "variant_ids", "seed", "tier", "lr", "tokens_trained", "n_params",
              "tokenizer_spec", "tokenizer", "vocab_size", "dim", "n_layers", "n_heads", "ffn_hidden", "activation",
              "pos", "tied", "seq_len")


@dataclass(frozen=True)
class QuantConfig(StageConfig):
    schemes: tuple[str, ...] = SCHEMES
    calib_windows: int = field(default=16, metadata=between(1, 10_000))     # training windows for calibration
    tier: str = "base"                                                      # Study v2 tier whose runs are quantised
    seeds: tuple[int, ...] = (0,)                                           # the runs' seeds
    # A configuration whose run of `seeds` is neither in the table nor kept (its checkpoint lost) takes its
    # run of the first of these seeds that is: still one run per configuration, its seed in the row.
    fallback_seeds: tuple[int, ...] = ()
    max_runs: int = field(default=0, metadata=between(0, None))             # 0: every run of the tier and seeds
    names: tuple[str, ...] = ()                                             # restrict to these configuration names
    study_data_dir: str = ""                     # '' -> <runs_dir>/sweep_data/<corpus fingerprint[:12]> (chapter 04b)
    export_models: bool = True                                              # keep <runs_dir>/smd/<variant>.smd

    def validate(self) -> None:
        unknown = [s for s in self.schemes if not known_scheme(s)]
        if unknown or not self.schemes:
            raise ConfigError(f"parameter 'schemes': unknown or empty {unknown or list(self.schemes)}; "
                              f"known: {', '.join(SCHEMES)} (int4_group<N> for any group size N)")
        if not self.seeds:
            raise ConfigError("parameter 'seeds': empty; give at least one training seed (e.g. [0])")


def results_table(results_dir):
    from ..provenance import ResultTable
    return ResultTable(Path(results_dir).joinpath(*TABLE_STEM), key="key")


def _calib_windows(train_ids: np.ndarray, T: int, n: int) -> list[np.ndarray]:
    """n windows of T tokens at evenly spaced offsets of the training split (deterministic)."""
    starts = np.linspace(0, max(len(train_ids) - T - 1, 0), n).astype(int)
    return [train_ids[s:s + T] for s in starts]


def ensure_prepared(data_dir, specs: list[str], data_source: str, raw_data_dir: str = "") -> None:
    """Tokenized data for `specs` (the sweep's prepared format); builds what is missing."""
    missing = [s for s in specs if not (Path(data_dir) / s / "meta.json").exists()]
    if not missing:
        return
    from ..data import load_corpus, resolve_data_source
    from ..training.sweep import prepare_data, study_data_config
    source, ddir = resolve_data_source(data_source, raw_data_dir)
    # The same corpus the sweep trained on (lowercased), so fingerprints and tokenizers agree.
    prepare_data(load_corpus(study_data_config(source, ddir)), missing, data_dir)


def select_runs(cfg: QuantConfig, results_dir, runs_dir=None) -> list[dict]:
    """The Study v2 runs to quantise, smallest first: the runs of ``cfg.seeds``, and for a configuration
    whose run is neither quantised nor kept under ``runs_dir``, its run of the first of ``cfg.fallback_seeds``
    that is (the committed table decides the choice on a machine without checkpoints)."""
    import pandas as pd

    from ..analysis.seeds import load_study      # base runs at a rate no longer tuned are relabelled there
    runs = load_study(results_dir)
    if runs.empty:
        raise FileNotFoundError(f"no Study v2 runs in {Path(results_dir) / 'sweep' / 'study_v2.jsonl'}; "
                                "run chapter 04b first (`make study-v2`)")
    runs = runs[runs["tier"] == cfg.tier]
    if cfg.names:
        runs = runs[runs["name"].isin(cfg.names)]
    chosen = runs[runs["seed"].isin(cfg.seeds)]
    if cfg.fallback_seeds:
        usable = _usable(runs, results_dir, runs_dir)
        have = set(chosen.loc[usable[chosen.index], "config_hash"])
        extra = []
        for seed in cfg.fallback_seeds:
            take = runs[(runs["seed"] == seed) & usable & ~runs["config_hash"].isin(have)]
            extra.append(take)
            have |= set(take["config_hash"])
        replaced = set().union(*(set(e["config_hash"]) for e in extra))
        chosen = pd.concat([chosen[~chosen["config_hash"].isin(replaced)], *extra])
    chosen = chosen.sort_values(["n_params", "run_key"])
    return (chosen.head(cfg.max_runs) if cfg.max_runs else chosen).to_dict("records")


def checkpoint_kept(runs, runs_dir):
    """Per run (a boolean Series): is its checkpoint kept under runs_dir (False everywhere without a runs_dir)?"""
    if "checkpoint" not in runs:
        return runs["run_key"].map(lambda _: False).astype(bool)
    return runs["checkpoint"].map(lambda c: bool(runs_dir) and isinstance(c, str) and bool(c)
                                  and (Path(runs_dir) / c).is_file()).astype(bool)


def _usable(runs, results_dir, runs_dir):
    """Per run: is it quantised already (a row in the table) or is its checkpoint kept under runs_dir?"""
    quantised = {str(k).split("/")[0] for k in results_table(results_dir).keys()}
    return runs["run_key"].isin(quantised) | checkpoint_kept(runs, runs_dir)


def run_quant(cfg: QuantConfig, results_dir, runs_dir, profile: str = "", data_source: str = "tinystories",
              raw_data_dir: str = "", progress: bool = True, shard: tuple[int, int] = (0, 1)):
    """Quantise every selected run with every scheme; resumable (finished (run, scheme) rows are kept).
    ``shard`` (k, n): only every n-th run from the k-th, so n processes share the work."""
    import torch
    from tqdm.auto import tqdm

    from ..provenance import provenance
    torch.set_num_threads(1)
    table = results_table(results_dir)
    done = table.keys()
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard {k}/{n}: want 0 <= k < n")
    for run in tqdm(select_runs(cfg, results_dir, runs_dir)[k::n], desc="quantise", disable=not progress):
        todo = [s for s in cfg.schemes if f"{run['run_key']}/{s}" not in done]
        if not todo:
            continue
        base = {"variant_id": run["name"], **{k: run[k] for k in RUN_FIELDS if k in run}}
        try:
            rows, evaluated = _quantise_run(run, cfg, todo, runs_dir, data_source, raw_data_dir)
        except (FileNotFoundError, ValueError, OSError) as exc:
            # this run's problem (its checkpoint or data): said, not stored, so a later run retries it
            print(f"quant: {run['run_key']} ({run['name']}): {exc}", file=sys.stderr)
            continue
        for r in rows:
            if r["scheme"] in todo:
                table.append({"key": f"{run['run_key']}/{r['scheme']}", **base, **r, **evaluated,
                              "config_key": cfg.key(), **provenance(profile)})
    table.snapshot()
    return table.frame()


def load_run(run: dict, runs_dir, study_data_dir: str = "", data_source: str = "tinystories",
             raw_data_dir: str = ""):
    """(float model, prepared data, whole-story evaluation, data directory) of one Study v2 run; an error
    naming the checkpoint or the data when either is missing or of another corpus."""
    from ..model import load_checkpoint
    from ..training.evaluation import StoryEval
    from ..training.sweep import load_prepared

    spec, fp = run["tokenizer_spec"], str(run.get("data_fingerprint") or "")
    data_dir = Path(study_data_dir or Path(runs_dir) / "sweep_data" / fp[:12])
    ensure_prepared(data_dir, [spec], data_source, raw_data_dir)
    data = load_prepared(data_dir, spec)
    meta = data["meta"]
    if fp and meta.get("fingerprint") != fp:
        raise ValueError(f"{data_dir / spec} was prepared from another corpus (fingerprint {meta.get('fingerprint')}) "
                         f"than the run was trained on ({fp}); set 'study_data_dir' to the study's prepared data")
    ckpt = Path(runs_dir) / str(run.get("checkpoint") or "")
    if not run.get("checkpoint") or not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt} is missing (trained on {run.get('machine', '?')}; copy that "
                                "machine's runs directory or retrain)")
    model = load_checkpoint(ckpt).eval()
    ev = StoryEval.from_stream(data["val"], int(meta["eos_id"]), meta["val_story_chars"], model.cfg.max_seq_len)
    return model, data, ev, data_dir


def _quantise_run(run: dict, cfg: QuantConfig, todo: list[str], runs_dir, data_source: str, raw_data_dir: str):
    """(scheme rows, what was evaluated) of one Study v2 run."""
    from ..training.sweep import PieceDecoder

    model, data, ev, data_dir = load_run(run, runs_dir, cfg.study_data_dir, data_source, raw_data_dir)
    meta, spec, T = data["meta"], run["tokenizer_spec"], model.cfg.max_seq_len
    names = variant_id_list(run.get("variant_ids"), run["name"])
    smd_dir = Path(runs_dir) / "smd"
    smd = smd_dir / f"{names[0]}.smd" if cfg.export_models else None
    schemes = todo if "float32" in todo else ["float32"] + todo
    rows = evaluate_schemes(model, ev, _calib_windows(data["train"], T, cfg.calib_windows), schemes,
                            PieceDecoder(meta["pieces"]).pieces, smd, _text_spec(data_dir, spec))
    if smd is not None and smd.exists():
        for other in names[1:]:                 # the same configuration, the same file
            (smd_dir / f"{other}.smd").write_bytes(smd.read_bytes())
    evaluated = {"eval_chars": ev.n_chars, "eval_stories": ev.n_stories, "eval_tokens": ev.n_targets,
                 "eval_context": ev.seq_len, "eval_stride": ev.stride,
                 "is_synthetic": bool(meta.get("is_synthetic", False)), "data_fingerprint": meta.get("fingerprint")}
    return rows, evaluated


def read_quant(results_dir):
    """The committed table (for recompute = false)."""
    import pandas as pd
    path = Path(results_dir).joinpath(*TABLE_STEM).with_suffix(".parquet")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run chapter 05 with recompute=true (e.g. `make study`)")
    return pd.read_parquet(path)


def _text_spec(data_dir, spec: str):
    """Special tokens, stop rule and encoder of the variant's tokenizer, for the exported file (None:
    no tokenizer file, the export has no encoder)."""
    from ..tokenizers import load_tokenizer
    from .smd_text import text_spec_from_tokenizer
    path = Path(data_dir) / spec / "tokenizer.json"
    return text_spec_from_tokenizer(load_tokenizer(path)) if path.exists() else None


def stage_args(module: str, description: str, config_cls, argv=None):
    """The command line of a chapter-05 stage over Study v2's runs: (arguments, its config, (k, n) shard)."""
    import argparse
    import json
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    p.add_argument("--results-dir", default="data/results")
    p.add_argument("--runs-dir", default="data/runs")
    p.add_argument("--params", default="{}", help=f"{config_cls.__name__} parameters as JSON")
    p.add_argument("--profile", default="full")
    p.add_argument("--data-source", default="tinystories")
    p.add_argument("--data-dir", default="", help="raw corpus directory (only to prepare missing data)")
    p.add_argument("--shard", default="0/1", help="K/N: this process takes every N-th run from the K-th")
    a = p.parse_args(argv)
    k, n = (int(x) for x in a.shard.split("/"))
    return a, config_cls.from_params(json.loads(a.params)), (k, n)


def main(argv=None) -> int:
    a, cfg, shard = stage_args("starmind_lib.quant.stage", "Quantise Study v2's runs and score every scheme on "
                               "the whole validation split (resumes)", QuantConfig, argv)
    df = run_quant(cfg, a.results_dir, a.runs_dir, profile=a.profile, data_source=a.data_source,
                   raw_data_dir=a.data_dir, shard=shard)
    bad = df[df["error"].fillna("") != ""] if "error" in df else df.iloc[:0]
    print(f"quant: {df['run_key'].nunique() if 'run_key' in df else 0} runs, {len(df)} rows "
          f"({len(bad)} with an error) in {results_table(a.results_dir).journal}")
    for e in bad["error"].head(10):
        print(f"  {e}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
