"""Synthetic result tables for the analysis and audit tests: columns as the real producers write them,
numbers from a known speed model so that every verdict's right answer is known in advance."""
from __future__ import annotations

import itertools
import json
import math

import pandas as pd

from starmind_lib.provenance import ResultTable

# Slowdown per step of the synthetic C runtime: inside every range the write-up claims, in its order.
SLOWDOWN = {"dim": 0.45, "n_layers": 0.30, "n_heads": 0.22, "ffn_ratio": 0.17, "vocab_size": 0.10}
UNIGRAM_BPC = 4.2


def params_of(vocab, dim, layers, ffn):
    return vocab * dim + layers * (4 * dim * dim + 2 * dim * ffn)


def variants(grid=None, narrow_noise=True, gpu_seconds=None) -> pd.DataFrame:
    grid = grid or dict(dim=[1, 2, 8, 16], n_layers=[1, 2], n_heads=[1, 2], ffn_ratio=[1, 4, 64],
                        vocab_size=[256, 512])
    rows = []
    for dim, layers, heads, ratio, vocab in itertools.product(*grid.values()):
        if dim % heads:
            continue
        ffn = int(dim * ratio)
        p = params_of(vocab, dim, layers, ffn)
        bpc = 4.6 - 0.35 * math.log10(p) - 0.05 * math.log2(ratio)   # fat FFNs win in this world
        if dim <= 2:
            bpc = UNIGRAM_BPC + 0.05 if narrow_noise else 3.0
        # As starmind_lib.training.sweep writes them: architecture in columns and in the (flat) config.
        cfg = {"vocab_size": vocab, "dim": dim, "n_layers": layers, "n_heads": heads, "ffn_hidden": ffn,
               "device": "auto"}
        vid = f"v{vocab}_d{dim}_l{layers}_h{heads}_f{ffn}"
        rows.append({"variant_id": vid, "axis": "width", "dim": dim, "n_layers": layers, "n_heads": heads,
                     "ffn_hidden": ffn, "vocab_size": vocab, "config": cfg, "n_params": p, "bpc": bpc,
                     "unigram_bpc": UNIGRAM_BPC, "tokens_trained": 200_000, "wall_s": gpu_seconds or 30.0,
                     "machine": "Linux-x86_64 16cpu NVIDIA H100 80GB HBM3" if gpu_seconds else "Linux-x86_64 2cpu",
                     "samples": [{"prompt": "once", "mode": "greedy", "text": "once once once"},
                                 {"prompt": "once", "mode": "T=0.8", "text": f"once upon a time {vid}"}]})
    return pd.DataFrame(rows)


def speed(row, heads_slowdown=SLOWDOWN["n_heads"]) -> float:
    slow = dict(SLOWDOWN, n_heads=heads_slowdown)
    cfg = row["config"]
    steps = {"dim": math.log2(cfg["dim"]), "n_layers": cfg["n_layers"] - 1, "n_heads": math.log2(cfg["n_heads"]),
             "ffn_ratio": math.log2(cfg["ffn_hidden"] / cfg["dim"]), "vocab_size": math.log2(cfg["vocab_size"] / 256)}
    return 200.0 * math.prod((1 - slow[k]) ** s for k, s in steps.items())


def c_runs(v: pd.DataFrame, heads_slowdown=SLOWDOWN["n_heads"], kv_speedup=4.0, flash_over_sram=1.05,
           int8_speedup=1.8, max_ok_params=None) -> pd.DataFrame:
    rows = []
    for _, r in v.iterrows():
        tps = speed(r, heads_slowdown)
        ok = max_ok_params is None or r["n_params"] <= max_ok_params
        base = {"model": r["variant_id"], "board": "emulated-pico-c", "runtime": "c-int8",
                "status": "ok" if ok else "does_not_fit", "speed_source": "cycle_exact_emulation",
                "tokens_per_s": tps if ok else None, "chars_per_s": 3 * tps if ok else None,
                "cycles_per_token": 133e6 / tps if ok else None, "peak_ram_bytes": int(r["n_params"] + 4000),
                "flash_bytes": int(r["n_params"]), "text": "once upon a time on the pico",
                "extra": {"kv_cache": True, "weights": "flash", "cycles_per_token_raw": 0.6 * 133e6 / tps}}
        rows.append(base)
        if r["variant_id"].startswith("v256_d16_l1") and ok:   # the paired experiments, on a few models
            rows.append({**base, "runtime": "c-float32", "tokens_per_s": tps / int8_speedup,
                         "cycles_per_token": 133e6 * int8_speedup / tps, "flash_bytes": 4 * int(r["n_params"])})
            rows.append({**base, "tokens_per_s": tps / kv_speedup, "cycles_per_token": 133e6 * kv_speedup / tps,
                         "extra": {"kv_cache": False, "weights": "flash"}})
            rows.append({**base, "tokens_per_s": tps * flash_over_sram, "cycles_per_token": 133e6 / tps / flash_over_sram,
                         "extra": {"kv_cache": True, "weights": "sram"}})
    return pd.DataFrame(rows)


def write(results_dir, name: str, df: pd.DataFrame, key: str):
    table = ResultTable(results_dir / name, key=key)
    for i, row in enumerate(df.to_dict("records")):
        row = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        table.append({**row, "_row": i} if key == "_row" else row)
    table.snapshot()


def write_all(results_dir, v, runs, unigram=True):
    write(results_dir, "sweep/variants", v if unigram else v.drop(columns="unigram_bpc"), "variant_id")
    write(results_dir, "device/c_runs", runs, "_row")
