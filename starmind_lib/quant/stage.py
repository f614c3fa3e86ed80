"""The chapter-05 stage: quantise every model of the architecture study.

:func:`run_quant` appends one row per (variant, scheme) to the resumable table
``<results_dir>/quant/quant.{jsonl,parquet}``; the int8 files go to
``<runs_dir>/smd/<variant_id>.smd`` for the device chapters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, StageConfig, between
from .schemes import SCHEMES, evaluate_schemes, known_scheme

TABLE_STEM = ("quant", "quant")


@dataclass(frozen=True)
class QuantConfig(StageConfig):
    schemes: tuple[str, ...] = SCHEMES
    eval_tokens: int = field(default=16384, metadata=between(64, 10**8))    # fixed validation subset
    calib_windows: int = field(default=16, metadata=between(1, 10_000))     # training windows for calibration
    max_variants: int = field(default=0, metadata=between(0, None))         # 0: every variant of the sweep
    variants: tuple[str, ...] = ()                                          # restrict to these ids
    sweep_data_dir: str = ""                                                # '' -> <runs_dir>/sweep_data
    export_models: bool = True                                              # keep <runs_dir>/smd/<id>.smd

    def validate(self) -> None:
        unknown = [s for s in self.schemes if not known_scheme(s)]
        if unknown or not self.schemes:
            raise ConfigError(f"parameter 'schemes': unknown or empty {unknown or list(self.schemes)}; "
                              f"known: {', '.join(SCHEMES)} (int4_group<N> for any group size N)")


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


def run_quant(cfg: QuantConfig, results_dir, runs_dir, profile: str = "", data_source: str = "tinystories",
              raw_data_dir: str = "", progress: bool = True):
    """Quantise every trained variant with every scheme; resumable (finished (variant, scheme) rows are kept)."""
    import torch
    from tqdm.auto import tqdm

    from ..provenance import provenance
    from ..training.sweep import PieceDecoder, load_prepared, load_variant
    from ..training.sweep import results_table as sweep_table
    from ..training.grid import tokenizer_spec
    from ..training.train import EvalSet
    torch.set_num_threads(1)
    variants = sweep_table(results_dir).frame()
    if variants.empty:
        raise FileNotFoundError(f"no trained variants in {Path(results_dir) / 'sweep'}; run chapter 04 first")
    if cfg.variants:
        variants = variants[variants["variant_id"].isin(cfg.variants)]
    variants = variants.sort_values("n_params" if "n_params" in variants else "variant_id")
    if cfg.max_variants:
        variants = variants.head(cfg.max_variants)
    data_dir = Path(cfg.sweep_data_dir or Path(runs_dir) / "sweep_data")
    table = results_table(results_dir)
    done = table.keys()
    spec_of = lambda v: v.get("tokenizer_spec") or tokenizer_spec(v)  # noqa: E731
    specs = sorted({spec_of(v) for v in variants.to_dict("records")})
    ensure_prepared(data_dir, specs, data_source, raw_data_dir)
    for v in tqdm(variants.to_dict("records"), desc="quantise", disable=not progress):
        todo = [s for s in cfg.schemes if f"{v['variant_id']}/{s}" not in done]
        if not todo:
            continue
        model = load_variant(runs_dir, v["variant_id"])
        data = load_prepared(data_dir, spec_of(v))
        fp = v.get("data_fingerprint")
        if isinstance(fp, str) and fp and data["meta"].get("fingerprint") != fp:
            raise ValueError(f"{data_dir}/{spec_of(v)} was prepared from another corpus (fingerprint "
                             f"{data['meta'].get('fingerprint')}) than variant {v['variant_id']} was trained on "
                             f"({fp}); set 'sweep_data_dir' to the sweep's prepared data")
        decode = PieceDecoder(data["meta"]["pieces"])
        T = model.cfg.max_seq_len
        eval_set = EvalSet.build(data["val"], T, cfg.eval_tokens, decode=decode)
        calib = _calib_windows(data["train"], T, cfg.calib_windows)
        smd = Path(runs_dir) / "smd" / f"{v['variant_id']}.smd" if cfg.export_models else None
        schemes = todo if "float32" in todo else ["float32"] + todo  # the delta needs the float32 bpc
        rows = evaluate_schemes(model, eval_set, calib, schemes, decode.pieces, smd, _text_spec(data_dir, spec_of(v)))
        for r in rows:
            if r["scheme"] not in todo:
                continue
            table.append({"key": f"{v['variant_id']}/{r['scheme']}", "variant_id": v["variant_id"],
                          "n_params": int(v.get("n_params", sum(p.numel() for p in model.parameters()))),
                          "tokenizer": spec_of(v), **{k: v[k] for k in ("dim", "n_layers", "n_heads",
                          "ffn_hidden", "activation", "pos", "tied") if k in v},
                          **r, "eval_tokens": eval_set.n_targets, "eval_chars": eval_set.n_chars,
                          "is_synthetic": bool(data["meta"].get("is_synthetic", False)),
                          "config_key": cfg.key(), **provenance(profile)})
    table.snapshot()
    return table.frame()


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
