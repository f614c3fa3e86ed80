"""Training throughput: tokens/s of single models at ~1K, ~10K and ~100K parameters, and a quick sweep.

``python -m starmind_lib.bench train [--threads N] [--tokens N] [--sweep-grid quick]``: synthetic
stories, char tokenizer; prints a table. Single models run with ``--threads`` torch threads (default:
all cores); the sweep uses a process pool of one thread per worker, as the study does.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

# (label, model fields): parameter counts at vocab 64 are about 1K, 10K and 100K
MODELS = [("~1K", dict(dim=6, n_layers=2, n_heads=1, ffn_hidden=24)),
          ("~10K", dict(dim=20, n_layers=2, n_heads=1, ffn_hidden=80)),
          ("~100K", dict(dim=64, n_layers=2, n_heads=2, ffn_hidden=256))]


def bench_models(tokens: int, threads: int, device: str = "cpu") -> list[dict]:
    import torch

    from ..model import Transformer, count_params
    from ..training.train import TrainConfig, _batch, _optimizer

    torch.set_num_threads(threads)
    data = np.random.default_rng(0).integers(0, 64, 200_000)
    out = []
    for label, fields in MODELS:
        cfg = TrainConfig.from_params({**fields, "tokens": tokens, "device": device})
        torch.manual_seed(0)
        model = Transformer(cfg.model_config(64)).to(device)
        opt = _optimizer(model, cfg, device)
        rng = np.random.default_rng(0)
        steps = cfg.steps
        for i in range(steps + 3):  # 3 warm-up steps, not timed
            if i == 3:
                t0 = time.perf_counter()
            xy = torch.from_numpy(_batch(data, rng, cfg.batch_size, cfg.seq_len)).to(device)
            _, loss = model(xy[:, :-1], xy[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        float(loss.detach())  # waits for the last step (matters on CUDA)
        wall = time.perf_counter() - t0
        out.append({"model": label, "params": count_params(model), "tokens": steps * cfg.batch_size * cfg.seq_len,
                    "wall_s": wall, "tokens_per_s": steps * cfg.batch_size * cfg.seq_len / wall})
    return out


def base_grid_estimate(rows: list[dict], workers: int, tokens: int = 2_000_000) -> str:
    """Study v2's base grid (every distinct configuration, one seed, ``tokens`` each) on ``workers`` single-thread
    workers, *estimated* from the measured throughput (log-log interpolation in parameters), plus the
    whole-split evaluation (forward passes over ~2x the validation tokens, at ~3x the training rate)."""
    from ..training.grid import grid
    from ..training.plan import distinct_configs

    lp = np.log([r["params"] for r in rows])
    lt = np.log([r["tokens_per_s"] for r in rows])
    total = 0.0
    for c in distinct_configs(grid("full")):
        tps = float(np.exp(np.interp(np.log(c["n_params"]), lp, lt, left=None, right=None)))
        if c["n_params"] > np.exp(lp[-1]):   # extrapolate beyond the largest measured size along the last slope
            slope = (lt[-1] - lt[-2]) / (lp[-1] - lp[-2])
            tps = float(np.exp(lt[-1] + slope * (np.log(c["n_params"]) - lp[-1])))
        val_tokens = 560_000 / (3.0 if c["tokenizer"] == "bpe" else 1.0)
        total += tokens / tps + 2 * val_tokens / (3 * tps)
    n = len(distinct_configs(grid("full")))
    return (f"base grid, {n} configurations x {tokens:,} tokens, one seed, {workers} workers: "
            f"estimated {total / workers / 60:.0f} min (from the throughput above; a prediction, not a timing)")


def bench_sweep(grid_name: str, tokens: int, workers: int) -> tuple[float, int]:
    from ..data import load_corpus
    from ..training.sweep import SweepConfig, prepare_data, run_sweep, study_data_config
    from ..training.grid import grid, tokenizers_needed

    with tempfile.TemporaryDirectory(prefix="starmind-bench-") as tmp:
        corpus = load_corpus(study_data_config("synthetic"))
        prepare_data(corpus, tokenizers_needed(grid(grid_name)), f"{tmp}/data")
        sweep = SweepConfig.from_params({"grid": grid_name, "tokens": tokens, "workers": workers,
                                         "eval_tokens": 4096, "device": "cpu"})
        t0 = time.perf_counter()
        df = run_sweep(sweep, f"{tmp}/data", f"{tmp}/results", f"{tmp}/runs", progress=False)
        return time.perf_counter() - t0, len(df)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.bench train", description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (more oversubscribe a busy machine)")
    p.add_argument("--tokens", type=int, default=200_000, help="training tokens per single-model timing")
    p.add_argument("--sweep-grid", default="quick", choices=["quick", "smoke", "none"])
    p.add_argument("--sweep-tokens", type=int, default=100_000)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"training throughput, batch 32 x seq 64, {a.threads} torch thread(s), CPU "
          f"({os.cpu_count()} cores, load average {load:.1f})")
    print(f"{'model':>7} {'params':>8} {'tokens':>9} {'wall s':>7} {'tokens/s':>10}")
    rows = bench_models(a.tokens, a.threads)
    for r in rows:
        print(f"{r['model']:>7} {r['params']:>8,} {r['tokens']:>9,} {r['wall_s']:>7.2f} {r['tokens_per_s']:>10,.0f}")
    print(base_grid_estimate(rows, a.workers))
    if a.sweep_grid != "none":
        wall, n = bench_sweep(a.sweep_grid, a.sweep_tokens, a.workers)
        print(f"sweep '{a.sweep_grid}': {n} variants x {a.sweep_tokens:,} tokens on {a.workers} workers "
              f"in {wall:.1f} s (synthetic data)")
    return 0
