"""The architecture study: train every variant of the grid, crash-safe, on a pool, on Dask or on a GPU.

Three steps, each usable alone::

    prepare_data(corpus, ["char64", "bpe512"], "build/sweep_data")   # tokenize once (needs starmind_lib.tokenizers)
    run_sweep(SweepConfig.from_params({"grid": "quick"}), "build/sweep_data", results_dir, runs_dir)
    load_variant(runs_dir, "width-d8")                                # -> Transformer

Prepared data (``<data>/<tokenizer spec>/tokens.npz`` + ``meta.json``: token
arrays, the decoding table, encoded prompts, the unigram baseline) makes the
training step independent of the tokenizer code and of ``datasets``: a GPU
machine needs only torch, numpy, pandas, pyarrow, safetensors, tqdm.

Crash safety: the parent process is the only writer of the results table
(``ResultTable``, a fsynced JSON-lines journal). A variant's checkpoint is
written atomically *before* its row is appended, and a restart trains only the
variants without a row, so ``kill -9`` at any moment loses no finished
result and duplicates none (a variant cut off mid-training simply reruns).

Backends: ``process`` (a local ``ProcessPoolExecutor``, spawn, one torch thread
per worker), ``dask`` (``dask.distributed``: a ``LocalCluster`` by default, or
any scheduler address; chosen over Ray because it is a light pure-Python
install that is already a dependency, its ``LocalCluster`` starts in seconds
for tests, and the same code scales to an SSH/HPC cluster), and ``serial``.
Variants are scheduled largest first, so the long jobs do not end up alone at
the tail of the run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, StageConfig, between, choice
from .grid import count_params, grid, parse_tokenizer, tokenizer_spec, tokenizers_needed

TABLE_STEM = ("sweep", "variants")


@dataclass(frozen=True)
class SweepConfig(StageConfig):
    grid: str = field(default="full", metadata=choice("full", "quick", "smoke"))
    tokens: int = field(default=2_000_000, metadata=between(1, 10**12))
    seq_len: int = field(default=64, metadata=between(2, 4096))
    batch_size: int = field(default=32, metadata=between(1, 1 << 16))
    lr: float = field(default=3e-3, metadata=between(0.0, 1.0))
    eval_every: int = field(default=250, metadata=between(1, None))
    eval_tokens: int = field(default=32768, metadata=between(1, None))
    seed: int = field(default=0, metadata=between(0, 2**31 - 1))
    backend: str = field(default="process", metadata=choice("process", "dask", "serial"))
    workers: int = field(default=2, metadata=between(1, 256))
    device: str = field(default="auto", metadata=choice("auto", "cpu", "cuda"))
    variants: tuple[str, ...] = ()      # restrict to these ids (empty: the whole grid)

    def selected(self) -> list[dict]:
        vs = grid(self.grid)
        if self.variants:
            known = {v["variant_id"] for v in grid("full")}
            unknown = sorted(set(self.variants) - known)
            if unknown:
                raise ConfigError(f"parameter 'variants': unknown variant id(s) {unknown}")
            vs = [v for v in grid("full") if v["variant_id"] in set(self.variants)]
        return vs

    def train_config(self, variant: dict):
        from .train import TrainConfig
        model_fields = {k: variant[k] for k in ("dim", "n_layers", "n_heads", "ffn_hidden", "activation", "pos",
                                                "tied", "tokenizer", "vocab_size")}
        return TrainConfig.from_params(dict(
            model_fields, seq_len=self.seq_len, batch_size=self.batch_size, tokens=self.tokens, lr=self.lr,
            eval_every=self.eval_every, eval_tokens=self.eval_tokens, seed=self.seed, device=self.device))


# ---------------------------------------------------------------- prepared data
def _pieces(tok) -> list[str]:
    """Each id's bytes as hex (a byte-level BPE token may be a partial UTF-8 sequence)."""
    return [tok.token_bytes(i).hex() for i in range(tok.vocab_size)]


class PieceDecoder:
    """Decodes ids like the tokenizer does (join the tokens' bytes, then UTF-8), from the stored table."""

    def __init__(self, pieces_hex: list[str]):
        self.pieces = [bytes.fromhex(h) for h in pieces_hex]

    def __call__(self, ids) -> str:
        return b"".join(self.pieces[int(i)] for i in ids).decode("utf-8", errors="replace")


PREPARED_VERSION = 2   # 2: meta.json carries each story's characters (whole-split evaluation) and the EOS id


def prepare_data(corpus, specs: list[str], out_dir: str | Path, lowercase: bool = True) -> Path:
    """Tokenize ``corpus`` with each tokenizer spec; write ``<out>/<spec>/{tokens.npz,meta.json,tokenizer}``."""
    from ..tokenizers import build_tokenizer, encode_corpus
    from .train import SAMPLE_PROMPTS, unigram_bpc

    out_dir = Path(out_dir)
    baseline = unigram_bpc([s.lower() if lowercase else s for s in corpus.train],
                           [s.lower() if lowercase else s for s in corpus.val])
    for spec in specs:
        d = out_dir / spec
        if (d / "meta.json").exists():
            old_meta = json.loads((d / "meta.json").read_text())
            old = old_meta["fingerprint"]
            if old != corpus.fingerprint:
                raise ValueError(f"{d} holds data prepared from another corpus (fingerprint {old} != "
                                 f"{corpus.fingerprint}); use a directory per corpus")
            if old_meta.get("prepared_version") == PREPARED_VERSION:
                continue          # else: prepared by an older version (no story table); prepare again
        kind, vocab = parse_tokenizer(spec)
        tok = build_tokenizer(kind, vocab, corpus.train, lowercase)
        train_ids, val_ids = encode_corpus(tok, corpus.train), encode_corpus(tok, corpus.val)
        tok.save(d / "tokenizer.json")
        write_prepared(d, train_ids, val_ids, _pieces(tok),
                       prompts={p: list(map(int, tok.encode(p))) for p in SAMPLE_PROMPTS},
                       prepared_version=PREPARED_VERSION, eos_id=int(tok.eos_id),
                       train_story_chars=[len(tok.prepare(s)) for s in corpus.train],
                       val_story_chars=[len(tok.prepare(s)) for s in corpus.val],
                       spec=spec, name=tok.name, unigram_bpc=baseline, fingerprint=corpus.fingerprint,
                       is_synthetic=corpus.is_synthetic, source_label=corpus.source_label, lowercase=lowercase)
    return out_dir


def write_prepared(d: str | Path, train_ids, val_ids, pieces_hex: list[str], prompts: dict, **meta) -> None:
    """One tokenizer's prepared data: ``tokens.npz`` (compressed, uint8/uint16) then ``meta.json``."""
    from ..provenance import atomic_path, atomic_write_text

    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if len(pieces_hex) <= 256 else np.uint16
    with atomic_path(d / "tokens.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, train=np.asarray(train_ids).astype(dtype), val=np.asarray(val_ids).astype(dtype))
    meta = {**meta, "vocab_size": len(pieces_hex), "pieces": pieces_hex, "prompts": prompts,
            "train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids))}
    atomic_write_text(d / "meta.json", json.dumps(meta))  # last: marks the spec complete


_DATA_CACHE: dict = {}


def load_prepared(data_dir: str | Path, spec: str) -> dict:
    """{'train', 'val', 'meta'} for one tokenizer spec, cached per process."""
    key = (str(data_dir), spec)
    if key not in _DATA_CACHE:
        d = Path(data_dir) / spec
        if not (d / "meta.json").exists():
            raise FileNotFoundError(f"{d}: no prepared data for tokenizer {spec!r} (run `prepare` first)")
        with np.load(d / "tokens.npz") as z:
            _DATA_CACHE[key] = {"train": z["train"].astype(np.int64), "val": z["val"].astype(np.int64),
                                "meta": json.loads((d / "meta.json").read_text())}
    return _DATA_CACHE[key]


# ---------------------------------------------------------------- one variant
def checkpoint_path(runs_dir: str | Path, variant_id: str) -> Path:
    return Path(runs_dir) / "models" / variant_id / "model.safetensors"


def load_variant(runs_dir: str | Path, variant_id: str, device: str = "cpu"):
    from ..model import load_checkpoint
    path = checkpoint_path(runs_dir, variant_id)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint for variant {variant_id!r} at {path}; run the sweep first")
    return load_checkpoint(path, device=device)


def estimated_cost(variant: dict, seq_len: int = 64) -> float:
    """Relative training cost per token: ~6 FLOPs per parameter, attention, and a per-layer launch overhead."""
    n = count_params(**variant, seq_len=seq_len)
    return 6 * n + 4 * variant["n_layers"] * seq_len * variant["dim"] + 20_000 * variant["n_layers"]


def train_variant(variant: dict, sweep: SweepConfig, data_dir: str, runs_dir: str) -> dict:
    """Train one variant (in a worker), write its run directory, return its result row."""
    import torch

    from .train import EvalSet, train_model

    torch.set_num_threads(1)
    data = load_prepared(data_dir, tokenizer_spec(variant))
    meta = data["meta"]
    cfg = sweep.train_config(variant)
    decode = PieceDecoder(meta["pieces"])
    eval_set = EvalSet.build(data["val"], cfg.seq_len, cfg.eval_tokens, decode=decode)
    vid = variant["variant_id"]
    run_dir = checkpoint_path(runs_dir, vid).parent
    res = train_model(cfg, data["train"], eval_set, meta["vocab_size"], run_dir=run_dir, decode=decode,
                      prompts=list(meta["prompts"].values()), progress=False, save_state=False, desc=vid)
    return {
        "variant_id": vid, "axis": variant["axis"], "group": variant["group"], "budget": variant.get("budget"),
        "dim": cfg.model.dim, "n_layers": cfg.model.n_layers, "n_heads": cfg.model.n_heads,
        "ffn_hidden": cfg.model.ffn_hidden,
        "activation": cfg.model.activation, "pos": cfg.model.pos, "tied": cfg.model.tied, "tokenizer_spec": tokenizer_spec(variant),
        "vocab_size": meta["vocab_size"], "config": cfg.to_dict(), "config_hash": cfg.key(meta["fingerprint"]),
        "n_params": res.n_params, "tokens_trained": res.tokens_trained, "val_loss": res.val_loss,
        "bpc": res.bpc, "unigram_bpc": meta["unigram_bpc"], "wall_s": round(res.wall_s, 3),
        "tokens_per_s": round(res.tokens_per_s, 1), "seed": cfg.seed, "device": res.device,
        "data_fingerprint": meta["fingerprint"], "is_synthetic": meta["is_synthetic"],
        "data_source": meta["source_label"], "samples": res.samples,
        "checkpoint": str(Path("models") / vid / "model.safetensors"),
    }


def _init_worker():
    import torch
    torch.set_num_threads(1)


# ---------------------------------------------------------------- the sweep
def results_table(results_dir: str | Path):
    from ..provenance import ResultTable
    return ResultTable(Path(results_dir).joinpath(*TABLE_STEM), key="variant_id")


def _comparable(cfg: dict) -> dict:
    """A config without where it ran: a CPU and a GPU run of the same settings are the same result."""
    return {k: v for k, v in cfg.items() if k != "device"}


def pending_variants(sweep: SweepConfig, table) -> list[dict]:
    """Variants still to train, largest first; refuses a table made with different settings."""
    done = {r["variant_id"]: r for r in table.rows()}
    todo = []
    for v in sweep.selected():
        row = done.get(v["variant_id"])
        if row is None:
            todo.append(v)
        elif _comparable(row["config"]) != _comparable(sweep.train_config(v).to_dict()):
            raise ConfigError(
                f"{table.journal} already holds variant {v['variant_id']!r} trained with another config "
                f"({row['config']} != {sweep.train_config(v).to_dict()}); use another results_dir or delete it")
    return sorted(todo, key=lambda v: -estimated_cost(v, sweep.seq_len))


def run_sweep(sweep: SweepConfig, data_dir: str | Path, results_dir: str | Path, runs_dir: str | Path,
              profile: str = "", progress: bool = True, scheduler: str | None = None,
              deadline_s: float | None = None):
    """Train every pending variant; append each row as it finishes; snapshot the table; return its frame.

    A variant that raises is reported (``<results_dir>/sweep/errors.jsonl``) and left for the next run;
    the others go on. ``deadline_s``: stop waiting after that many seconds (unfinished variants are
    dropped and rerun next time), so a run on a lent GPU always ends with its results written.
    """
    from tqdm.auto import tqdm

    from ..provenance import ResultTable, provenance

    table = results_table(results_dir)
    errors = ResultTable(Path(results_dir) / TABLE_STEM[0] / "errors", key="attempt")   # every failed attempt
    todo = pending_variants(sweep, table)
    bar = tqdm(total=len(todo), desc=f"sweep[{sweep.backend}x{sweep.workers}]", disable=not progress,
               unit="model", mininterval=5)
    base = provenance(profile=profile)
    failed = []

    def record(variant, row=None, error=None):
        bar.update(1)
        if error is not None:
            failed.append(variant["variant_id"])
            prov = provenance(profile=profile)
            errors.append({"attempt": f"{variant['variant_id']}@{prov['timestamp']}", "variant_id": variant["variant_id"],
                           "error": error, **prov})
            return
        table.append({**row, **{k: v for k, v in base.items() if k != "timestamp"},
                      "timestamp": provenance()["timestamp"]})
        bar.set_postfix_str(f"{row['variant_id']} bpc={row['bpc']:.3f}", refresh=False)

    args = (sweep, str(data_dir), str(runs_dir))
    t0 = time.perf_counter()
    deadline = None if deadline_s is None else t0 + deadline_s
    if todo and (sweep.backend == "serial" or (sweep.backend == "process" and sweep.workers == 1)):
        _init_worker()
        for v in todo:
            if deadline is not None and time.perf_counter() > deadline:
                break
            try:
                record(v, train_variant(v, *args))
            except Exception as e:  # noqa: BLE001 - one broken variant must not stop the study
                record(v, error=f"{type(e).__name__}: {e}")
    elif todo and sweep.backend == "process":
        _run_process_pool(todo, args, sweep.workers, record, deadline)
    elif todo:
        _run_dask(todo, args, sweep.workers, record, scheduler, deadline)
    bar.close()
    table.snapshot()
    if progress and todo:
        done = len(table.keys() & {v["variant_id"] for v in todo})
        print(f"sweep: {done}/{len(todo)} variants trained in {time.perf_counter() - t0:.1f} s"
              + (f"; failed: {failed} (see {errors.journal})" if failed else ""))
    return table.frame()


def _remaining(deadline):
    return None if deadline is None else max(0.0, deadline - time.perf_counter())


def _run_process_pool(todo, args, workers, record, deadline=None):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, TimeoutError, as_completed

    # spawn: no forked torch/CUDA state; each worker loads the token arrays once (cache)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    futures = {pool.submit(train_variant, v, *args): v for v in todo}
    try:
        for fut in as_completed(futures, timeout=_remaining(deadline)):
            try:
                record(futures[fut], fut.result())
            except Exception as e:  # noqa: BLE001
                record(futures[fut], error=f"{type(e).__name__}: {e}")
    except TimeoutError:
        print(f"sweep: deadline reached, {sum(not f.done() for f in futures)} variants left for the next run")
        for proc in list((pool._processes or {}).values()):  # running trainings: stop them now
            proc.kill()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(todo, args, workers, record, scheduler=None, deadline=None):
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        # pure=False: each submission is one training run, never deduplicated by dask
        futures = {client.submit(train_variant, v, *args, pure=False, key=f"train-{v['variant_id']}"): v
                   for v in todo}
        for fut in as_completed(futures):
            try:
                record(futures[fut], fut.result())
            except Exception as e:  # noqa: BLE001
                record(futures[fut], error=f"{type(e).__name__}: {e}")
            if deadline is not None and time.perf_counter() > deadline:
                break
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------- GPU hand-off
def pack_outputs(results_dir: str | Path, runs_dir: str | Path, out_dir: str | Path,
                 shard_bytes: int = 15 * 2**20) -> list[Path]:
    """Pack the table and every model directory into tar shards below ``shard_bytes`` each.

    The GPU machine returns at most 8 files of 16 MiB: ``study-table.tar`` plus ``models-NN.tar``.
    """
    import tarfile

    results_dir, runs_dir, out_dir = Path(results_dir), Path(runs_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "study-table.tar"]
    with tarfile.open(written[0], "w") as tar:
        for f in sorted(results_dir.joinpath(TABLE_STEM[0]).glob("*.*")):
            tar.add(f, arcname=f"results/{TABLE_STEM[0]}/{f.name}")
    model_dirs = sorted(p for p in (runs_dir / "models").iterdir() if p.is_dir())
    shard, size, tar = 0, 0, None
    for d in model_dirs:
        files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith("."))
        need = sum(p.stat().st_size + 1024 for p in files)
        if tar is None or size + need > shard_bytes:
            if tar is not None:
                tar.close()
            written.append(out_dir / f"models-{shard:02d}.tar")
            tar, size, shard = tarfile.open(written[-1], "w"), 0, shard + 1
        for p in files:
            tar.add(p, arcname=f"runs/models/{d.name}/{p.name}")
        size += need
    if tar is not None:
        tar.close()
    return written


def unpack_outputs(files_dir: str | Path, results_dir: str | Path, runs_dir: str | Path) -> None:
    """Inverse of pack_outputs: results/ -> results_dir, runs/ -> runs_dir."""
    import tarfile

    for tar_path in sorted(Path(files_dir).rglob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar.getmembers():
                if not m.isfile() or ".." in Path(m.name).parts:
                    continue
                top, rest = m.name.split("/", 1)
                dest = (Path(results_dir) if top == "results" else Path(runs_dir)) / rest
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())


# ---------------------------------------------------------------- command line
def study_data_config(data_source: str, data_dir: str = ""):
    """The corpus every sweep trains on: lowercased (the device vocabularies are lowercase)."""
    from ..data import DataConfig
    params = {"source": data_source, "lowercase": True}
    if data_dir:
        params["data_dir"] = str(data_dir)
    return DataConfig.from_params(params)


def add_prepare_parser(sub, source: str = "tinystories", help: str = "tokenize the corpus for every tokenizer of a grid"):
    """The ``prepare`` subcommand (shared with ``starmind_lib.training.study``)."""
    pp = sub.add_parser("prepare", help=help)
    pp.add_argument("--grid", default="full")
    pp.add_argument("--source", default=source)
    pp.add_argument("--data-dir", default="")
    pp.add_argument("--out", required=True)
    return pp


def prepare_cli(a) -> int:
    from ..data import load_corpus
    corpus = load_corpus(study_data_config(a.source, a.data_dir))
    specs = tokenizers_needed(grid(a.grid))
    prepare_data(corpus, specs, a.out)
    print(f"prepared {len(specs)} tokenizers for grid {a.grid!r} from {corpus.source_label} "
          f"(fingerprint {corpus.fingerprint[:12]}) into {a.out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.training.sweep", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    add_prepare_parser(sub)
    pr = sub.add_parser("run", help="train a grid from prepared data")
    pr.add_argument("--data", required=True, help="prepared data directory")
    pr.add_argument("--out", required=True, help="output directory (results/ and runs/ inside)")
    pr.add_argument("--params", default="{}", help="SweepConfig parameters as JSON")
    pr.add_argument("--pack", default="", help="also pack results + checkpoints as tar shards into this directory")
    pr.add_argument("--profile", default="full")
    pr.add_argument("--deadline-s", type=float, default=None, help="stop after this many seconds, keep results")
    pu = sub.add_parser("unpack", help="unpack tar shards from a GPU run")
    pu.add_argument("--files", required=True)
    pu.add_argument("--results-dir", required=True)
    pu.add_argument("--runs-dir", required=True)
    a = p.parse_args(argv)
    if a.cmd == "prepare":
        return prepare_cli(a)
    if a.cmd == "run":
        sweep = SweepConfig.from_params(json.loads(a.params))
        out = Path(a.out)
        df = run_sweep(sweep, a.data, out / "results", out / "runs", profile=a.profile, deadline_s=a.deadline_s)
        print(f"{len(df)} variants in {out / 'results' / 'sweep' / 'variants.parquet'}; "
              f"median bpc {df['bpc'].median():.3f}; total train wall {df['wall_s'].sum():.0f} s")
        if a.pack:
            for f in pack_outputs(out / "results", out / "runs", a.pack):
                print(f"packed {f} ({f.stat().st_size / 2**20:.1f} MiB)")
    else:
        unpack_outputs(a.files, a.results_dir, a.runs_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
