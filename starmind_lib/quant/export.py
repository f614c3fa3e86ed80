"""Export Study v2 runs as committed format-v2 model files, with a provenance table.

    python -m starmind_lib.quant.export --variants tied-d16-false budget10k-vocab-bpe1024 \\
        [--tier base] [--seed 0] [--out data/models] [--results-dir data/results] [--runs-dir data/runs] \\
        [--data data/runs/study_data]

For each variant id: the Study v2 row of the configuration that variant uses, at ``--tier`` and
``--seed`` (``<results_dir>/sweep/study_v2``); its checkpoint (``<runs_dir>/<checkpoint>``); the int8
integer-only file in format version 2 with its tokenizer's special tokens, stop rule and encoder
(chapter 05's conversion: :func:`.schemes.to_int8_engine` after :func:`.schemes.calibrate` on
evenly spaced training windows, :func:`.smd.pack_smd`), written to ``<out>/<variant_id>.smd``; and one
row per file in ``<out>/models.{jsonl,parquet}`` (keyed by variant and the file's SHA-256) with the
run (``run_key``, ``config_hash``, seed, tier, rate), the file (bytes, ``sha256``), the run's whole-split
float bpc and its story-bootstrap interval, the configuration's mean over seeds with its 95 % interval
when two or more seeds are in the table, a short check of the int8 file against the float model (on
the first whole validation stories up to ``check_tokens`` tokens, not the whole split) and provenance columns (the training
run's own commit and machine as ``trained_*``).

A bad variant (unknown id, no Study v2 row, missing checkpoint, data from another corpus, a model
outside the int8 limits) is one error line naming the variant and the cause; the others go on, and the
exit status is nonzero at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from ..provenance import REPO_ROOT

MODELS_DIR = REPO_ROOT / "data" / "models"
TABLE_NAME = "models"
CALIB_WINDOWS = 16          # chapter 05's default (QuantConfig.calib_windows)
CHECK_TOKENS = 2048         # validation tokens for the int8-against-float check
BPC_LABEL = "float model, whole validation split"


class ExportError(RuntimeError):
    """One variant cannot be exported; the message names the variant and the cause."""

    def __init__(self, variant_id: str, cause: str):
        super().__init__(f"{variant_id}: {cause}")
        self.variant_id, self.cause = variant_id, cause


def models_table(out_dir=MODELS_DIR):
    from ..provenance import ResultTable
    return ResultTable(Path(out_dir) / TABLE_NAME, key="key")


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def known_variants() -> set[str]:
    from ..training.grid import grid
    return {v["variant_id"] for v in grid("full")}


def _uses(row: dict, variant_id: str) -> bool:
    from ..training.plan import variant_id_list
    return variant_id in variant_id_list(row.get("variant_ids")) or row.get("name") == variant_id


def pick_row(rows: list[dict], variant_id: str, tier: str = "base", seed: int = 0,
             known: set[str] | None = None, where: str = "the Study v2 table") -> dict:
    """The Study v2 row of ``variant_id``'s configuration at (tier, seed); several (the lr tier's rates):
    the lowest bpc. Raises :class:`ExportError` saying why there is none."""
    mine = [r for r in rows if _uses(r, variant_id)]
    if not mine and known is not None and variant_id not in known:
        raise ExportError(variant_id, "unknown variant id (not in the architecture grid, no Study v2 row)")
    hits = [r for r in mine if r.get("tier") == tier and int(r.get("seed", -1)) == int(seed)]
    if not hits:
        have = sorted({f"{r.get('tier')} seed {r.get('seed')}" for r in mine})
        raise ExportError(variant_id, f"no Study v2 row at tier {tier!r}, seed {seed} in {where} ("
                                      + (f"its configuration has: {', '.join(have)})" if have else
                                         "its configuration has no rows yet)"))
    return min(hits, key=lambda r: float(r["bpc"]))


def seed_stats(rows: list[dict], row: dict) -> dict:
    """The configuration's mean over seeds (same tier, rate, budget and context as ``row``) and its 95 %
    interval (:func:`starmind_lib.analysis.seeds.seed_summary`); None for the mean with fewer than 2 seeds."""
    import pandas as pd

    from ..analysis.seeds import GROUP, seed_summary
    same = [r for r in rows if all(r.get(k) == row.get(k) for k in GROUP)]
    summ = seed_summary(pd.DataFrame(same)).iloc[0]
    n = int(summ["n_seeds"])
    if n < 2:
        return {"n_seeds": n, "seeds": [int(s) for s in summ["seeds"]], "bpc_mean": None,
                "bpc_mean_ci_low": None, "bpc_mean_ci_high": None}
    return {"n_seeds": n, "seeds": [int(s) for s in summ["seeds"]], "bpc_mean": float(summ["bpc_mean"]),
            "bpc_mean_ci_low": float(summ["bpc_mean_ci_low"]), "bpc_mean_ci_high": float(summ["bpc_mean_ci_high"])}


def export_run(variant_id: str, row: dict, runs_dir, data_dir, out_dir, check_tokens: int = CHECK_TOKENS) -> dict:
    """Write ``<out_dir>/<variant_id>.smd`` from one Study v2 run; the file's columns and the int8 check."""
    import torch

    from ..model import load_checkpoint
    from ..training.sweep import PieceDecoder, load_prepared
    from ..training.evaluation import StoryEval
    from .schemes import evaluate_schemes
    from .smd import read_smd
    from .stage import _calib_windows, _text_spec

    torch.set_num_threads(1)
    ckpt = Path(runs_dir) / str(row.get("checkpoint") or "")
    if not row.get("checkpoint") or not ckpt.is_file():
        raise ExportError(variant_id, f"checkpoint {ckpt} of run {row['run_key']} is missing (trained on "
                                      f"{row.get('machine', '?')}; copy that machine's runs directory or retrain)")
    spec = row["tokenizer_spec"]
    tok_file = Path(data_dir) / spec / "tokenizer.json"
    if not tok_file.is_file():
        raise ExportError(variant_id, f"no tokenizer file {tok_file}: the export would have no encoder "
                                      f"(prepare the study data with `python -m starmind_lib.training.study prepare`)")
    try:
        data = load_prepared(data_dir, spec)
    except FileNotFoundError as exc:
        raise ExportError(variant_id, str(exc)) from None
    fp = row.get("data_fingerprint")
    if fp and data["meta"].get("fingerprint") != fp:
        raise ExportError(variant_id, f"{Path(data_dir) / spec} was prepared from another corpus (fingerprint "
                                      f"{data['meta'].get('fingerprint')}) than run {row['run_key']} was trained on ({fp})")
    try:
        model = load_checkpoint(ckpt).eval()
    except Exception as exc:   # noqa: BLE001 - a damaged file is this variant's error
        raise ExportError(variant_id, f"cannot load checkpoint {ckpt}: {type(exc).__name__}: {exc}") from None
    if model.cfg.vocab_size != data["meta"]["vocab_size"]:
        raise ExportError(variant_id, f"checkpoint {ckpt} has vocab_size {model.cfg.vocab_size}, its tokenizer "
                                      f"{spec} has {data['meta']['vocab_size']}")
    decode = PieceDecoder(data["meta"]["pieces"])
    T = model.cfg.max_seq_len
    eos = int(data["meta"]["eos_id"])
    n_stories = int(np.searchsorted(np.flatnonzero(data["val"] == eos), check_tokens)) + 1
    check = StoryEval.from_stream(data["val"], eos, data["meta"]["val_story_chars"], T, max_stories=n_stories,
                                  what=f"{variant_id}: the validation stories")
    calib = _calib_windows(data["train"], T, CALIB_WINDOWS)
    path = Path(out_dir) / f"{variant_id}.smd"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = {r["scheme"]: r for r in evaluate_schemes(model, check, calib, ["float32", "int8_engine"], decode.pieces,
                                                     path, _text_spec(data_dir, spec))}
    r8 = rows["int8_engine"]
    if r8["error"]:
        raise ExportError(variant_id, f"int8 conversion failed: {r8['error']}")
    m = read_smd(path)
    if m.version < 2 or not m.can_encode:
        raise ExportError(variant_id, f"{path} has no encoder (format v{m.version})")
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path), "format_version": m.version,
            "encoder": m.text.encoder, "calib_windows": CALIB_WINDOWS, "check_tokens": check.n_targets,
            "check_chars": check.n_chars, "check_float_bpc": float(rows["float32"]["bpc"]),
            "check_int8_bpc": float(r8["bpc"]), "check_int8_delta": float(r8["bpc"] - rows["float32"]["bpc"]),
            "check_greedy_agreement": float(r8["greedy_agreement"])}


RUN_COLUMNS = ("run_key", "config_hash", "name", "seed", "tier", "lr", "tokens_trained", "seq_len", "n_params",
               "tokenizer_spec", "bpc", "bpc_ci_low", "bpc_ci_high", "eval_chars", "eval_stories",
               "data_fingerprint", "data_source", "is_synthetic", "checkpoint")


def export_variants(variant_ids, tier: str = "base", seed: int = 0, out_dir=MODELS_DIR,
                    results_dir=REPO_ROOT / "data" / "results", runs_dir=REPO_ROOT / "data" / "runs",
                    data_dir=None, profile: str = "", check_tokens: int = CHECK_TOKENS,
                    log=print) -> tuple[list[dict], list[ExportError]]:
    """Export each variant (see the module docstring); returns (table rows, errors). A re-export that
    writes the same bytes keeps the existing row."""
    from ..provenance import provenance
    from ..training.study import results_table

    data_dir = Path(data_dir) if data_dir else Path(runs_dir) / "study_data"
    study = results_table(results_dir)
    rows = study.rows()
    table = models_table(out_dir)
    known = known_variants()
    done, errors = [], []
    for vid in variant_ids:
        try:
            row = pick_row(rows, vid, tier, seed, known, where=str(study.journal))
            out = {"variant_id": vid, **{k: row.get(k) for k in RUN_COLUMNS}, "bpc_label": BPC_LABEL,
                   **seed_stats(rows, row), **export_run(vid, row, runs_dir, data_dir, out_dir, check_tokens),
                   "trained_git_commit": row.get("git_commit"), "trained_machine": row.get("machine"),
                   "trained_timestamp": row.get("timestamp")}
        except ExportError as exc:
            errors.append(exc)
            log(f"error: {exc}", file=sys.stderr)
            continue
        out["key"] = f"{vid}/{out['sha256'][:16]}"
        if out["key"] not in table.keys():
            table.append({**out, **provenance(profile)})
        done.append(out)
        mean = (f"; mean of {out['n_seeds']} seeds {out['bpc_mean']:.3f} [{out['bpc_mean_ci_low']:.3f}, "
                f"{out['bpc_mean_ci_high']:.3f}]" if out["bpc_mean"] is not None else "")
        log(f"exported {vid}: {Path(out_dir) / out['file']} ({out['bytes']:,} bytes, sha256 {out['sha256'][:12]}), "
            f"run {out['run_key']}, bpc {out['bpc']:.3f} [{out['bpc_ci_low']:.3f}, {out['bpc_ci_high']:.3f}]{mean}; "
            f"int8 check: {out['check_int8_delta']:+.3f} bpc, greedy agreement {out['check_greedy_agreement']:.1%}")
    if done:
        table.snapshot()
    return done, errors


def committed_row(path, out_dir=None) -> dict | None:
    """The provenance row of a committed model file (matched by its SHA-256), or None."""
    path = Path(path)
    table = models_table(out_dir or path.parent)
    digest = sha256_file(path)
    hits = [r for r in table.rows() if r.get("sha256") == digest and r.get("file") == path.name]
    return hits[-1] if hits else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.quant.export", description=__doc__.split("\n")[0])
    p.add_argument("--variants", nargs="+", required=True, help="variant ids (any variant using a configuration)")
    p.add_argument("--tier", default="base")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=MODELS_DIR)
    p.add_argument("--results-dir", type=Path, default=REPO_ROOT / "data" / "results")
    p.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "data" / "runs")
    p.add_argument("--data", type=Path, default=None, help="prepared study data (default <runs-dir>/study_data)")
    p.add_argument("--profile", default="full")
    p.add_argument("--check-tokens", type=int, default=CHECK_TOKENS)
    a = p.parse_args(argv)
    done, errors = export_variants(a.variants, a.tier, a.seed, a.out, a.results_dir, a.runs_dir, a.data,
                                   a.profile, a.check_tokens)
    print(f"{len(done)} exported, {len(errors)} failed" + (": " + ", ".join(e.variant_id for e in errors)
                                                           if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
