"""Study v2: distinct configurations x seeds x tuned learning rates x training budgets, resumable.

The architecture grid (:mod:`.grid`) names 198 variants along comparison axes;
many axes share a configuration (the 16-wide 2-layer char model is the base of
six). Study v2 trains each *distinct configuration* once per seed and lets the
axes reference it by its ``config_hash``::

    configs = distinct_configs(grid("full"))         # 155 configurations, each with the variant ids using it
    jobs = plan_jobs("lr", configs, ...)             # [Job(config, seed, lr, tokens, tier)]
    run_study(StudyConfig.from_params({"tiers": ["lr", "base"]}), data_dir, results_dir, runs_dir)

Tiers, run in this order (each resumes; a killed run loses and duplicates nothing):

``lr``       a learning-rate sweep (``LR_GRID``) on two representative configurations (char and BPE)
             per size bucket (``BUCKETS``); it decides the rate each bucket uses below.
``base``     every distinct configuration, ``SEEDS`` seeds, 2 M tokens, at its bucket's tuned rate.
``untuned``  every distinct configuration, seed 0, the old single rate 3e-3: how far each axis' conclusion
             moves when the rate is tuned.
``long``     the configurations on the quality fronts and in the recommendations (>= 20, ~1K to ~1.3M
             parameters), ``LONG_TOKENS`` tokens, every seed; early stopping on a dev set held out of the
             training stories (never the validation split).
``context``  the context-fairness control: char and BPE models that see the same number of characters.

Each row is one training run: ``config_hash`` (the configuration: model + tokenizer + context, no seed, rate or
budget), ``run_key`` (config_hash, seed, rate, budget, tier), the whole-split ``bpc`` with its bootstrap
interval and the characters and stories evaluated (:mod:`.evaluation`), the learning-curve bpc on the
validation prefix (``prefix_bpc``, labelled so), the train-split bpc (for the train-validation gap), and
provenance including the machine that trained it.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .grid import grid, tokenizer_spec
from .plan import (ARCH_FIELDS, DEV_STORIES, TABLE_STEM, TRAIN_EVAL_STORIES, Job, StudyConfig, distinct_configs,
                   job_order, plan_jobs)

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------- one run
def _job_setup(job: Job, study: StudyConfig, data_dir: str) -> dict:
    """What a job trains on: its TrainConfig, data, prefix eval set, decoder and (long tier) dev-set early stopping."""
    from .evaluation import StoryEval, story_nats
    from .sweep import PREPARED_VERSION, PieceDecoder, load_prepared
    from .train import EvalSet, TrainConfig

    c = job.config
    spec = tokenizer_spec(c)
    data = load_prepared(data_dir, spec)
    meta = data["meta"]
    if meta.get("prepared_version") != PREPARED_VERSION:
        raise ValueError(f"{Path(data_dir) / spec}: prepared by an older version (no story table); "
                         "run `python -m .study prepare` again")
    eos, seq_len, batch = int(meta["eos_id"]), int(c["seq_len"]), job.batch_size or study.batch_size
    steps = max(1, math.ceil(job.tokens / (batch * seq_len)))
    eval_every = study.eval_every if job.tier != "long" else max(study.eval_every, steps // 20)
    cfg = TrainConfig.from_params({**{f: c[f] for f in ARCH_FIELDS}, "seq_len": seq_len, "batch_size": batch, "tokens": job.tokens,
                                   "lr": job.lr, "eval_every": eval_every, "seed": job.seed, "device": study.device})
    train_ids, train_chars = data["train"], list(meta["train_story_chars"])
    on_eval = keep_best = None
    if job.tier == "long":                       # early stopping on stories held out of training
        ends = np.flatnonzero(train_ids == eos)
        cut = int(ends[-DEV_STORIES - 1]) + 1
        dev = StoryEval.from_stream(train_ids[cut:], eos, train_chars[-DEV_STORIES:], seq_len, what="dev")
        train_ids, train_chars = train_ids[:cut], train_chars[:-DEV_STORIES]

        def on_eval(model):
            nats = story_nats(model, dev, model_device(model))
            return {"dev_bpc": float(nats.sum() / dev.n_chars / math.log(2))}
        keep_best = "dev_bpc"
    decode = PieceDecoder(meta["pieces"])
    prefix = EvalSet.build(data["val"], seq_len, cfg.eval_tokens, decode=decode)
    return {"cfg": cfg, "spec": spec, "data": data, "meta": meta, "eos": eos, "seq_len": seq_len,
            "train_ids": train_ids, "train_chars": train_chars, "on_eval": on_eval, "keep_best": keep_best,
            "decode": decode, "prefix": prefix, "prompts": list(meta["prompts"].values())}


def _job_row(job: Job, study: StudyConfig, s: dict, res) -> dict:
    """Evaluate a trained job (``res``: a TrainResult) on the whole validation split; its row."""
    from .evaluation import StoryEval, evaluate_stories, story_nats

    c, meta, eos, seq_len = job.config, s["meta"], s["eos"], s["seq_len"]
    val = StoryEval.from_stream(s["data"]["val"], eos, meta["val_story_chars"], seq_len)
    ev = evaluate_stories(res.model, val, res.device)
    tr = StoryEval.from_stream(s["train_ids"], eos, s["train_chars"], seq_len, max_stories=TRAIN_EVAL_STORIES,
                               what="train")
    train_bpc = float(story_nats(res.model, tr, res.device).sum() / tr.n_chars / math.log(2))
    tokens_per_step = s["cfg"].batch_size * seq_len
    return {
        "run_key": job.run_key, "config_hash": c["config_hash"], "name": c["name"], "tier": job.tier,
        "variant_ids": c["variant_ids"], "axes": c["axes"], "bucket": c["bucket"], "seed": job.seed,
        "lr": job.lr, "tokens_trained": res.tokens_trained, "seq_len": seq_len, "batch_size": s["cfg"].batch_size,
        **{f: c[f] for f in ARCH_FIELDS}, "tokenizer_spec": s["spec"], "vocab_size_actual": meta["vocab_size"],
        "n_params": res.n_params, **ev, "prefix_bpc": res.metrics[-1]["val_bpc"],
        "train_bpc": train_bpc, "train_val_gap": ev["bpc"] - train_bpc,
        "best_step": res.best_step, "best_tokens": res.best_step * tokens_per_step,
        "curve": [{k: m[k] for k in ("tokens", "val_bpc", "train_loss", "dev_bpc") if k in m} for m in res.metrics],
        "unigram_bpc": meta["unigram_bpc"], "chars_per_token": round(ev["eval_chars"] / max(1, ev["eval_tokens"] - ev["eval_stories"]), 4),
        "wall_s": round(res.wall_s, 3), "tokens_per_s": round(res.tokens_per_s, 1), "device": res.device,
        "data_fingerprint": meta["fingerprint"], "data_source": meta["source_label"],
        "is_synthetic": meta["is_synthetic"], "samples": res.samples,
        "checkpoint": str(Path("study_v2") / job.run_key / "model.safetensors"),
    }


def train_job(job: Job, study: StudyConfig, data_dir: str, runs_dir: str) -> dict:
    """Train one job (in a worker); evaluate it on the whole validation split; return its row."""
    import torch

    from .train import train_model

    torch.set_num_threads(1)
    s = _job_setup(job, study, data_dir)
    res = train_model(s["cfg"], s["train_ids"], s["prefix"], s["meta"]["vocab_size"],
                      run_dir=Path(runs_dir) / "study_v2" / job.run_key, decode=s["decode"], prompts=s["prompts"],
                      # the long tier's runs take an hour on a CPU core: a killed sweep resumes them from their
                      # last evaluation; the base grid's minutes-long runs just restart (no state write per eval)
                      progress=False, save_state=job.tier == "long", desc=job.run_key, on_eval=s["on_eval"],
                      keep_best=s["keep_best"])
    return _job_row(job, study, s, res)


def train_job_group(jobs: list[Job], study: StudyConfig, data_dir: str, runs_dir: str) -> list[dict]:
    """Train the seeds of one (configuration, tier, rate, budget) group as one stacked model; one row each."""
    import torch

    from .stacked import train_stacked

    if len(jobs) == 1:
        return [train_job(jobs[0], study, data_dir, runs_dir)]
    torch.set_num_threads(1)
    s = _job_setup(jobs[0], study, data_dir)     # data, eval sets and dev set do not depend on the seed
    results = train_stacked([s["cfg"].replace(seed=j.seed) for j in jobs], s["train_ids"], s["prefix"],
                            s["meta"]["vocab_size"], on_eval=s["on_eval"], keep_best=s["keep_best"],
                            run_dirs=[Path(runs_dir) / "study_v2" / j.run_key for j in jobs],
                            decode=s["decode"], prompts=s["prompts"])
    return [_job_row(j, study, s, r) for j, r in zip(jobs, results)]


def model_device(model) -> str:
    return str(next(model.parameters()).device)


# ---------------------------------------------------------------- the study
def results_table(results_dir: str | Path):
    from ..provenance import ResultTable
    return ResultTable(Path(results_dir).joinpath(*TABLE_STEM), key="run_key")


def chars_per_token(data_dir: str | Path) -> dict[str, float]:
    out = {}
    for meta_path in Path(data_dir).glob("*/meta.json"):
        m = json.loads(meta_path.read_text())
        if "val_story_chars" in m:
            n_story_tokens = m["val_tokens"] - len(m["val_story_chars"])     # less one EOS per story
            out[meta_path.parent.name] = sum(m["val_story_chars"]) / max(1, n_story_tokens)
    return out


def run_study(study: StudyConfig, data_dir: str | Path, results_dir: str | Path, runs_dir: str | Path,
              profile: str = "", deadline_s: float | None = None, progress: bool = True,
              stacked: bool | None = None) -> "pd.DataFrame":
    """Run the tiers in order; each finished job appends its row at once; a rerun does only what is missing.

    A job that raises is written to ``<results_dir>/sweep/study_v2_errors.jsonl`` (naming the run and the
    configuration) and the others go on. ``deadline_s`` stops scheduling new jobs after that many seconds.
    ``stacked`` (default: when the study trains on CUDA) trains the seeds of each (configuration, tier, rate,
    budget) group as one stacked model in one worker (:mod:`.stacked`); the rows are the same.
    """
    from ..provenance import ResultTable, provenance

    table = results_table(results_dir)
    # every failed attempt (keyed by run and time): a run that fails twice is logged twice; its row in the
    # study table, once a retry trains it, is what says it succeeded
    errors = ResultTable(Path(results_dir) / TABLE_STEM[0] / "study_v2_errors", key="attempt")
    configs = distinct_configs(grid(study.grid), study.seq_len)
    if stacked is None:
        from .train import resolve_device
        stacked = resolve_device(study.device) == "cuda"
    t0 = time.perf_counter()
    trained = 0
    for tier in study.tiers:
        rows = table.rows()
        jobs, why = plan_jobs(tier, study, configs, rows, chars_per_token(data_dir))
        if why:
            print(f"study: {why}")
        if not jobs:
            continue
        done = table.keys()
        todo = job_order([j for j in jobs if j.run_key not in done], study.first)    # cheapest first
        if progress:
            print(f"study: tier {tier!r}: {len(jobs)} runs, {len(todo)} to train")
        remaining = None if deadline_s is None else deadline_s - (time.perf_counter() - t0)
        units = _group_jobs(todo) if stacked else [[j] for j in todo]
        def pending(unit: list[Job]) -> list[Job]:      # another process on this table may have trained some
            have = table.keys()
            return [j for j in unit if j.run_key not in have]
        for job, row, err in _run_pool(units, (study, str(data_dir), str(runs_dir)), study.workers, remaining,
                                       pending):
            if err is not None:
                prov = provenance(profile=profile)
                errors.append({"attempt": f"{job.run_key}@{prov['timestamp']}", "run_key": job.run_key,
                               "name": job.config["name"], "tier": tier, "error": err, **prov})
                print(f"study: {job.run_key} ({job.config['name']}) failed: {err}")
                continue
            if not table.append({**row, **provenance(profile=profile)}):
                print(f"study: {job.run_key} ({job.config['name']}) is already in the table (another process "
                      "trained it meanwhile); not appended again")
                continue
            trained += 1
            if progress:
                print(f"study: {tier} {row['name']} seed {row['seed']} lr {row['lr']:g}: bpc {row['bpc']:.3f} "
                      f"[{row['bpc_ci_low']:.3f}, {row['bpc_ci_high']:.3f}] in {row['wall_s']:.0f} s", flush=True)
    table.snapshot()
    df = table.frame()
    if progress:
        wall = time.perf_counter() - t0
        print(f"study: {trained} runs trained in {wall:.0f} s; table has {len(df)} runs")
    return df


def _group_jobs(todo: list[Job]) -> list[list[Job]]:
    """The jobs differing only in seed, together (in the order of their first job)."""
    groups: dict[tuple, list[Job]] = {}
    for j in todo:
        groups.setdefault((j.config["config_hash"], j.tier, j.lr, j.tokens, j.batch_size), []).append(j)
    return list(groups.values())


def _run_pool(units: list[list[Job]], args: tuple, workers: int, budget_s: float | None,
              pending=lambda unit: unit):
    """Yield (job, row, error) as units (lists of jobs, trained together) finish; serial when ``workers == 1``.
    ``pending(unit)`` is asked, just before a unit starts, which of its jobs are still to train."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    start = time.perf_counter()
    expired = lambda: budget_s is not None and time.perf_counter() - start > budget_s  # noqa: E731
    if workers == 1:
        for unit in units:
            if expired():
                return
            if not (unit := pending(unit)):
                continue
            try:
                rows = train_job_group(unit, *args)
            except Exception as e:  # noqa: BLE001 - one broken run must not stop the study
                rows = [f"{type(e).__name__}: {e}"] * len(unit)
            yield from ((j, None, r) if isinstance(r, str) else (j, r, None) for j, r in zip(unit, rows))
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    queue = list(units)
    running = {}
    try:
        while queue or running:
            while queue and len(running) < workers and not expired():
                if not (unit := pending(queue.pop(0))):
                    continue
                running[pool.submit(train_job_group, unit, *args)] = unit
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                unit = running.pop(fut)
                try:
                    rows = fut.result()
                except Exception as e:  # noqa: BLE001
                    rows = [f"{type(e).__name__}: {e}"] * len(unit)
                yield from ((j, None, r) if isinstance(r, str) else (j, r, None) for j, r in zip(unit, rows))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def merge_runs(journal: str | Path, results_dir: str | Path) -> int:
    """Append the rows of another study journal whose ``run_key`` is not in this one (provenance kept as
    recorded there: the machine and commit that trained each row). Returns how many were added."""
    from ..provenance import ResultTable
    src = ResultTable(Path(journal).with_suffix(""), key="run_key")
    if not src.journal.exists():
        raise FileNotFoundError(f"{journal}: no such study journal")
    dest = results_table(results_dir)
    added = sum(dest.append(row) for row in src.rows())     # a row already here is not appended again
    dest.snapshot()
    return added


# ---------------------------------------------------------------- command line
def main(argv=None) -> int:
    import argparse

    from .sweep import add_prepare_parser, prepare_cli
    p = argparse.ArgumentParser(prog="python -m starmind_lib.training.study", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    add_prepare_parser(sub, source="local", help="tokenize the corpus for every tokenizer of the grid (with story tables)")
    pr = sub.add_parser("run", help="train the study's tiers (resumes)")
    pr.add_argument("--data", required=True, help="prepared data directory")
    pr.add_argument("--results-dir", default="data/results")
    pr.add_argument("--runs-dir", default="data/runs")
    pr.add_argument("--params", default="{}", help="StudyConfig parameters as JSON")
    pr.add_argument("--profile", default="full")
    pr.add_argument("--deadline-s", type=float, default=None)
    pm = sub.add_parser("merge", help="append the runs of another machine's study_v2.jsonl that are not here yet")
    pm.add_argument("journal", help="a study_v2.jsonl from another machine (e.g. a GPU run)")
    pm.add_argument("--results-dir", default="data/results")
    a = p.parse_args(argv)
    if a.cmd == "merge":
        added = merge_runs(a.journal, a.results_dir)
        print(f"merged {added} new runs from {a.journal} into {results_table(a.results_dir).journal}")
        return 0
    if a.cmd == "prepare":
        return prepare_cli(a)
    study = StudyConfig.from_params(json.loads(a.params))
    run_study(study, a.data, a.results_dir, a.runs_dir, profile=a.profile, deadline_s=a.deadline_s)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
