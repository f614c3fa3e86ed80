"""Device benchmark: every model of the study on the emulated Pico, cycle-counted (chapter 06).

``python -m starmind_lib.bench device [--profile quick]`` (``make bench-device``) and
chapter 06 (recompute = true) call :func:`run_bench`, which

* measures the int8 dot-product kernels (cycles per MAC, weights in SRAM and flash);
* exports each trained variant of the architecture study (``results_dir/sweep/variants``,
  checkpoints via :func:`starmind_lib.training.sweep.load_variant`) to int8 and float32 ``.smd``
  files (:mod:`starmind_lib.quant.schemes`, :mod:`starmind_lib.quant.smd`), calibrated on the
  variant's own training data;
* runs them through :class:`~starmind_lib.devices.emulated.EmulatedPico`: int8 with
  weights in flash and a KV cache for every model, and the isolated comparisons
  (weights copied to SRAM, KV cache off, float32) for the models up to
  ``sram_max_params`` / ``nokv_max_params`` / ``float_max_params`` (the slow ones only for
  small models), plus the committed reference models and untrained "size probes"
  (0.3 to 2M parameters) that map where the Pico's SRAM and flash run out;
* checks the emulated int8 tokens against the reference engine
  (:class:`~starmind_lib.quant.intengine.IntEngine`, column ``matches_reference``);
* times every int8 run with a KV cache twice: the short-context figure (``n_prompt`` prompt
  tokens, ``n_tokens`` generated: ``cycles_per_token``, ``tokens_per_s_*``) and over the whole
  trained window (a 1-token prompt, then ``max_seq_len`` tokens, so that every position runs:
  ``cycles_per_token_full`` averaged over the positions, ``cycles_per_token_last`` at the last one,
  ``tokens_per_s_full_*``, ``tokens_per_s_last_*``, ``window_matches_reference``);
* profiles, per phase of the forward pass (matrix-vector dot products, requantisation, attention
  q.k / softmax / weighted values, RMSNorm, ...), a full-window generation of the ~10K and ~100K
  models, weights in SRAM (table ``cycle_profile``, :func:`profile_rows`);
* appends one row per (model, runtime, weights, KV cache) to the crash-safe table
  ``results_dir/device/c_runs`` (a killed bench resumes where it stopped), two
  ``node`` processes at a time.
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import StageConfig, between, choice
from ..provenance import ResultTable, provenance
from .device_profile import REFERENCE_DIR, profile_rows, profile_summary
from .device_results import (CONTEXT_TARGETS, KERNEL_TABLE, LONG_COLUMNS, NEAR, PROFILE_TABLE, TABLE,
                             WINDOW_COLUMNS, read_profile, summary)

COMPARISONS = ("sram", "nokv", "float32")


@dataclass(frozen=True)
class DeviceBenchConfig(StageConfig):
    n_prompt: int = field(default=8, metadata=between(1, 512))         # prompt tokens (prefill)
    n_tokens: int = field(default=16, metadata=between(2, 1024))       # generated tokens (greedy)
    max_variants: int = field(default=0, metadata=between(0, None))    # 0: every trained variant
    variants: tuple[str, ...] = ()                                     # restrict to these ids
    comparisons: tuple[str, ...] = COMPARISONS                         # isolated effects (one setting changed)
    sram_max_params: int = field(default=400_000, metadata=between(0, None))   # weights copied to SRAM up to
    nokv_max_params: int = field(default=30_000, metadata=between(0, None))    # KV cache off up to (slow: O(n^2))
    float_max_params: int = field(default=10_000, metadata=between(0, None))   # float32 up to (soft float: slow)
    size_probes: tuple[int, ...] = (300_000, 1_000_000, 1_500_000, 2_500_000)  # untrained, parameter counts
    reference_models: bool = True                                      # also run data/reference/*.smd
    calib_windows: int = field(default=8, metadata=between(1, 10_000))
    workers: int = field(default=2, metadata=between(1, 64))
    timeout_s: int = field(default=1800, metadata=between(10, None))
    sweep_data_dir: str = ""                                           # '' -> <runs_dir>/sweep_data
    data_source: str = field(default="tinystories", metadata=choice("tinystories", "local", "synthetic"))
    raw_data_dir: str = ""
    full_window: bool = True                                           # also time the whole trained context window
    long_tokens: int = field(default=400, metadata=between(0, 2000))   # a long generation with the window restart
    long_models: tuple[str, ...] = ("budget10k-ffn_ratio-r1", "budget100k-depth-l1")  # ... of these (and the references)

    def validate(self) -> None:
        from ..config import ConfigError
        bad = [c for c in self.comparisons if c not in COMPARISONS]
        if bad:
            raise ConfigError(f"parameter 'comparisons': unknown {bad}; known: {', '.join(COMPARISONS)}")

    def run_config(self) -> dict:
        """The settings that change a measurement (part of every row's key)."""
        return {"n_prompt": self.n_prompt, "n_tokens": self.n_tokens, "full_window": self.full_window,
                "long_tokens": self.long_tokens, "long_models": list(self.long_models)}


# ---------------------------------------------------------------- the jobs
def run_key(model_id: str, scheme: str, weights: str, kv: bool) -> str:
    return f"{model_id}/{scheme}/{weights}/{'kv' if kv else 'nokv'}"


def _job(model_id: str, path: Path, scheme: str, weights: str, kv: bool, prompt: list[int], meta: dict,
         long_tokens: int = 0) -> dict:
    return {"key": run_key(model_id, scheme, weights, kv), "model_id": model_id, "smd": str(path),
            "scheme": scheme, "weights": weights, "kv_cache": kv, "prompt": list(map(int, prompt)), "meta": meta,
            "long_tokens": int(long_tokens)}



def run_one(job: dict, n_tokens: int, timeout_s: int, full_window: bool = False) -> dict:
    """Run one job on the emulated Pico (in a worker process); the result row without provenance.
    With full_window, an int8 run with a KV cache is also timed over the model's whole window; a job with
    ``long_tokens`` also generates that many tokens past the window (the window restart, FORMAT.md 6.7)."""
    from ..devices.emulated import EmulatedPico
    board = EmulatedPico(weights_in_sram=job["weights"] == "sram", kv_cache=job["kv_cache"], timeout_s=timeout_s)
    board.deploy(Path(job["smd"]))
    rec = board.run(job["prompt"], n_tokens)
    x = rec.extra
    row = {k: job[k] for k in ("key", "model_id", "scheme", "weights", "kv_cache")}
    row.update(job["meta"])
    row.update(status=rec.status, message=rec.message, n_prompt=len(job["prompt"]), n_tokens=n_tokens,
               prompt_ids=job["prompt"], output_ids=rec.output_ids, runtime=rec.runtime,
               speed_source=rec.speed_source, model_bytes=Path(job["smd"]).stat().st_size,
               flash_bytes=rec.flash_bytes, peak_ram_bytes=rec.peak_ram_bytes,
               cycles_per_token=rec.cycles_per_token, cycles_per_token_raw=x.get("cycles_per_token_raw"),
               cycles_per_prefill_token=rec.cycles_per_prefill_token,
               cycles_per_prefill_token_raw=x.get("cycles_per_prefill_token_raw"),
               load_cycles=x.get("load_cycles"), chars_per_token=x.get("chars_per_token"))
    for k in ("tokens_per_s_133MHz", "tokens_per_s_125MHz", "tokens_per_s_raw_133MHz", "chars_per_s_133MHz",
              "chars_per_s_125MHz", "arena_used", "static_bytes", "stack_bytes", "cache_misses", "miss_penalty",
              "emulator_wall_ms"):
        row[k] = x.get(k)
    row.update({k: None for k in WINDOW_COLUMNS + LONG_COLUMNS}, window_output_ids=None, long_output_ids=None)
    if full_window and job["scheme"] == "int8" and job["kv_cache"] and rec.status == "ok":
        wrec, speeds = board.run_window(job["prompt"][0])
        row.update(speeds, window_output_ids=wrec.output_ids, window_status=wrec.status)
    if job.get("long_tokens") and job["scheme"] == "int8" and job["kv_cache"] and rec.status == "ok":
        lrec, speeds = board.run_long(job["prompt"][0], job["long_tokens"])
        row.update(speeds, long_output_ids=lrec.output_ids, long_status=lrec.status)
    return row


# ---------------------------------------------------------------- exporting models
def export_variant(model, calib: list, vocab: list[bytes], out_dir: Path, model_id: str,
                   schemes: tuple[str, ...] = ("int8", "float32")) -> dict[str, Path]:
    """int8 (integer-only) and float32 .smd files of a torch model; existing files are reused."""
    from ..quant import schemes as quant
    from ..quant.smd import write_smd
    paths = {"int8": out_dir / f"{model_id}.smd", "float32": out_dir / f"{model_id}.f32.smd"}
    if "int8" in schemes and not paths["int8"].exists():
        write_smd(paths["int8"], *quant.to_int8_engine(model, quant.calibrate(model, calib)), vocab)
    if "float32" in schemes and not paths["float32"].exists():
        write_smd(paths["float32"], *quant.to_float32(model), vocab)
    return paths


def probe_config(n_params: int, vocab_size: int = 64) -> dict:
    """A 4-layer, FFN 4x model of about n_params parameters (width solved for the count)."""
    from ..training.grid import count_params
    dim = 16  # multiples of 16 with heads of 16 or 32: every head size even (rope)
    while count_params(dim=dim + 16, n_layers=4, ffn_hidden=4 * (dim + 16), vocab_size=vocab_size) <= n_params:
        dim += 16
    heads = dim // 32 if dim % 32 == 0 else dim // 16
    return {"vocab_size": vocab_size, "dim": dim, "n_layers": 4, "n_heads": heads,
            "ffn_hidden": 4 * dim, "activation": "silu", "pos": "rope", "tied": True, "max_seq_len": 64}


def export_probe(n_params: int, out_dir: Path) -> tuple[Path, dict]:
    """An untrained model of about n_params parameters: what fits is about size, not weights."""
    import torch

    from ..model import ModelConfig, Transformer, count_params
    cfg = probe_config(n_params)
    model_id = f"probe_{n_params // 1000}k"
    path = out_dir / f"{model_id}.smd"
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_params(cfg)).eval()
    if not path.exists():
        calib = [np.arange(64) % 64, (np.arange(64) * 7 + 3) % 64]
        export_variant(model, calib, [bytes([32 + i]) for i in range(64)], out_dir, model_id, ("int8",))
    meta = {**{k: cfg[k] for k in ("dim", "n_layers", "n_heads", "ffn_hidden", "activation", "pos", "tied",
                                    "vocab_size")}, "n_params": count_params(model), "source": "size_probe",
            "trained": False, "weights_source": "untrained_probe"}
    return path, meta


def reference_ids(path: Path, prompt: list[int], n_tokens: int) -> list[int]:
    """The int8 reference engine's greedy tokens: what the device must produce."""
    from ..quant.smd import read_smd
    from ..quant.intengine import IntEngine
    return IntEngine(read_smd(path)).generate(prompt, n_tokens)


def long_reference_ids(path: Path, prompt: list[int], n_tokens: int) -> list[int] | None:
    """The reference tokens of a long run: n_tokens greedy from prompt[0], with the window restart and no
    stop rule (the firmware's loop does not stop at EOS)."""
    if not n_tokens:
        return None
    from ..quant.smd import read_smd
    from ..quant.intengine import IntEngine
    return IntEngine(read_smd(path)).generate([int(prompt[0])], n_tokens, window=True, stop_at_eos=False)


def nearest_variants(variants) -> set[str]:
    """The study variants nearest each size of CONTEXT_TARGETS in parameter count (within NEAR): the
    "near N" models the chapter judges, which also make the long generation."""
    out = set()
    for target in CONTEXT_TARGETS:
        near = variants[(variants["n_params"] >= NEAR[0] * target) & (variants["n_params"] <= NEAR[1] * target)]
        if len(near):
            d = (near["n_params"] - target).abs()
            out |= set(near.loc[d == d.min(), "variant_id"])
    return out


def _long_run(cfg: DeviceBenchConfig, model_id: str, source: str, wanted: list,
              nearest: set = frozenset()) -> tuple | None:
    """Which of a model's runs also makes the long generation: the int8 run with a KV cache and weights in
    SRAM (else in flash), for the reference models, ``cfg.long_models`` and the study models nearest the
    sizes of CONTEXT_TARGETS."""
    if not cfg.long_tokens or (source != "reference" and model_id not in cfg.long_models
                               and model_id not in nearest):
        return None
    for w in (("int8", "sram", True), ("int8", "flash", True)):
        if w in wanted:
            return w
    return None


def window_reference_ids(cfg: DeviceBenchConfig, path: Path, prompt: list[int]) -> list[int] | None:
    """The reference tokens of the full-window run (1-token prompt, max_seq_len tokens), if it is made."""
    if not cfg.full_window:
        return None
    from ..quant.smd import read_smd
    return reference_ids(path, [int(prompt[0])], int(read_smd(path).header.max_seq_len))


# ---------------------------------------------------------------- planning
def study_jobs(cfg: DeviceBenchConfig, results_dir: Path, runs_dir: Path, out_dir: Path, done: set) -> list[dict]:
    """Export every trained variant (as needed) and list its runs."""
    import torch

    from ..quant.stage import _calib_windows, ensure_prepared
    from ..training.sweep import load_prepared, load_variant
    from ..training.sweep import results_table as sweep_table
    from ..training.grid import tokenizer_spec
    torch.set_num_threads(1)
    variants = sweep_table(results_dir).frame()
    if variants.empty:
        return []
    if cfg.variants:
        variants = variants[variants["variant_id"].isin(cfg.variants)]
    variants = variants.sort_values("n_params")
    if cfg.max_variants:
        variants = variants.head(cfg.max_variants)
    data_dir = Path(cfg.sweep_data_dir or runs_dir / "sweep_data")
    spec_of = lambda v: v.get("tokenizer_spec") or tokenizer_spec(v)  # noqa: E731
    nearest = nearest_variants(variants)
    rows = variants.to_dict("records")
    ensure_prepared(data_dir, sorted({spec_of(v) for v in rows}), cfg.data_source, cfg.raw_data_dir)
    jobs = []
    for v in rows:
        wanted = _wanted_runs(cfg, int(v["n_params"]))
        keys = {run_key(v["variant_id"], *w) for w in wanted}
        if keys <= done:
            continue
        data = load_prepared(data_dir, spec_of(v))
        try:
            model, weights_source = load_variant(runs_dir, v["variant_id"]), "trained"
        except FileNotFoundError:
            # no checkpoint on this machine: the same architecture, untrained (the runtime's cycles depend on
            # the shapes, not on the weights' values: tests/test_emulator.py checks it)
            model, weights_source = untrained_model(v), "untrained_same_architecture"
        T = model.cfg.max_seq_len
        paths = export_variant(model, _calib_windows(data["train"], T, cfg.calib_windows),
                               [bytes.fromhex(h) for h in data["meta"]["pieces"]], out_dir, v["variant_id"])
        prompt = [int(t) for t in data["val"][:cfg.n_prompt]]
        meta = {k: v.get(k) for k in ("axis", "group", "budget", "dim", "n_layers", "n_heads", "ffn_hidden",
                                       "activation", "pos", "tied", "vocab_size", "n_params", "bpc")}
        meta.update(tokenizer=spec_of(v), source="study", trained=weights_source == "trained",
                    weights_source=weights_source,
                    is_synthetic=bool(v.get("is_synthetic", data["meta"].get("is_synthetic", False))))
        meta["reference_ids"] = reference_ids(paths["int8"], prompt, cfg.n_tokens)
        meta["window_reference_ids"] = window_reference_ids(cfg, paths["int8"], prompt)
        long = _long_run(cfg, v["variant_id"], "study", wanted, nearest)
        meta["long_reference_ids"] = long_reference_ids(paths["int8"], prompt, cfg.long_tokens) if long else None
        for scheme, weights, kv in wanted:
            if run_key(v["variant_id"], scheme, weights, kv) not in done:
                jobs.append(_job(v["variant_id"], paths[scheme], scheme, weights, kv, prompt, meta,
                                 cfg.long_tokens if (scheme, weights, kv) == long else 0))
    return jobs


def untrained_model(variant: dict):
    """A seeded, untrained model with a study variant's architecture (the same on every machine)."""
    import torch

    from ..devices.measure import architecture_of
    from ..model import ModelConfig, Transformer
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_params(architecture_of(variant))).eval()


def _wanted_runs(cfg: DeviceBenchConfig, n_params: int) -> list[tuple[str, str, bool]]:
    """(scheme, weights, KV cache) runs of one model: the base run and the comparisons its size allows."""
    runs = [("int8", "flash", True)]
    if "sram" in cfg.comparisons and n_params <= cfg.sram_max_params:
        runs.append(("int8", "sram", True))
    if "nokv" in cfg.comparisons and n_params <= cfg.nokv_max_params:
        runs.append(("int8", "flash", False))
    if "float32" in cfg.comparisons and n_params <= cfg.float_max_params:
        runs += [("float32", "flash", True), ("float32", "sram", True)]
    return runs


def extra_jobs(cfg: DeviceBenchConfig, out_dir: Path, done: set) -> list[dict]:
    """The committed reference models and the untrained size probes."""
    jobs = []
    if cfg.reference_models:
        for g in sorted(REFERENCE_DIR.glob("*.golden.json")):
            gold = json.loads(g.read_text())
            model_id = g.name.split(".")[0]
            prompt = gold["prompt_ids"][:cfg.n_prompt]
            n_ctx = gold["config"]["max_seq_len"]
            if len(prompt) + cfg.n_tokens - 1 > n_ctx:
                continue
            from ..training.grid import count_params
            meta = {**{k: gold["config"][k] for k in ("dim", "n_layers", "n_heads", "ffn_hidden", "activation",
                                                      "pos", "tied", "vocab_size")},
                    "n_params": count_params(**gold["config"], seq_len=n_ctx), "source": "reference",
                    "trained": True, "weights_source": "trained", "is_synthetic": True}
            meta["reference_ids"] = reference_ids(g.parent / gold["model"], prompt, cfg.n_tokens)
            meta["window_reference_ids"] = window_reference_ids(cfg, g.parent / gold["model"], prompt)
            wanted = _wanted_runs(cfg, meta["n_params"])
            long = _long_run(cfg, model_id, "reference", wanted)
            meta["long_reference_ids"] = (long_reference_ids(g.parent / gold["model"], prompt, cfg.long_tokens)
                                          if long else None)
            for scheme, weights, kv in wanted:
                path = g.parent / gold["model" if scheme == "int8" else "float_model"]
                if run_key(model_id, scheme, weights, kv) not in done:
                    jobs.append(_job(model_id, path, scheme, weights, kv, prompt, meta,
                                     cfg.long_tokens if (scheme, weights, kv) == long else 0))
    for n in cfg.size_probes:
        weights_runs = [("int8", "flash", True), ("int8", "sram", True)]
        if all(run_key(f"probe_{n // 1000}k", *w) in done for w in weights_runs):
            continue
        path, meta = export_probe(n, out_dir)
        prompt = list(range(1, cfg.n_prompt + 1))
        meta["is_synthetic"] = True
        # untrained: speed and fit are the point, but the tokens are still checked (when the file fits flash)
        small = path.stat().st_size < 2_000_000
        meta["reference_ids"] = reference_ids(path, prompt, cfg.n_tokens) if small else None
        meta["window_reference_ids"] = window_reference_ids(cfg, path, prompt) if small else None
        for w in weights_runs:
            if run_key(f"probe_{n // 1000}k", *w) not in done:
                jobs.append(_job(f"probe_{n // 1000}k", path, *w, prompt, meta))
    return jobs


# ---------------------------------------------------------------- the bench
def kernel_rows(profile: str) -> list[dict]:
    from ..devices.emulated import kernel_bench
    base = provenance(profile=profile)
    return [{"key": f"{r['kernel']}/{r['weights']}", **r, **base} for r in kernel_bench(256)]


# Firmware functions grouped by the phase of the forward pass they belong to (device/c/sm_int8.c
# keeps each phase in its own function; the assembly kernels of sm_kernels_m0.S have a separate
# symbol, <kernel>_store, for the requantisation and stores after their dot-product loops).
def _finish(row: dict, cfg: DeviceBenchConfig, profile: str) -> dict:
    ref = row.get("reference_ids")
    row["matches_reference"] = (None if ref is None or row["scheme"] != "int8" or row["status"] != "ok"
                                else row["output_ids"] == ref)
    wref, wout = row.get("window_reference_ids"), row.get("window_output_ids")
    # a window or long run that did not finish (its KV cache does not fit, say) has no tokens to check
    row["window_matches_reference"] = (None if wref is None or wout is None or row.get("window_status") != "ok"
                                       else wout == wref)
    lref, lout = row.get("long_reference_ids"), row.get("long_output_ids")
    row["long_matches_reference"] = (None if lref is None or lout is None or row.get("long_status") != "ok"
                                     else lout == lref)
    return {**row, "bench_config": cfg.to_dict(), "config_key": cfg.key(), **provenance(profile=profile)}


def run_bench(cfg: DeviceBenchConfig, results_dir, runs_dir, profile: str = "", progress: bool = True):
    """Measure what is missing from results_dir/device/c_runs; returns the whole table as a frame."""
    from tqdm.auto import tqdm

    from ..devices.emulated import build_firmware
    results_dir, runs_dir = Path(results_dir), Path(runs_dir)
    build_firmware()
    ktable = ResultTable(results_dir.joinpath(*KERNEL_TABLE), key="key")
    if not ktable.rows():
        for r in kernel_rows(profile):
            ktable.append(r)
        ktable.snapshot()
    table = ResultTable(results_dir.joinpath(*TABLE), key="key")
    old = {r["key"]: r for r in table.rows()}
    stale = [k for k, r in old.items() if r.get("bench_config", {}).get("n_tokens") != cfg.n_tokens
             or r.get("bench_config", {}).get("n_prompt") != cfg.n_prompt
             or bool(r.get("bench_config", {}).get("full_window", False)) != cfg.full_window
             or r.get("bench_config", {}).get("long_tokens", 0) != cfg.long_tokens]
    if stale:
        from ..config import ConfigError
        raise ConfigError(f"{table.journal} holds runs with other n_prompt/n_tokens/full_window/long_tokens "
                          f"({stale[:3]}...); "
                          "use another results_dir or delete it")
    done = set(old)
    out_dir = runs_dir / "device"
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = extra_jobs(cfg, out_dir, done) + study_jobs(cfg, results_dir, runs_dir, out_dir, done)
    # largest first: the long emulations do not end up alone at the tail
    jobs.sort(key=lambda j: -(j["meta"].get("n_params") or 0) * (1 if j["kv_cache"] else 4)
              * (30 if j["scheme"] == "float32" else 1))
    bar = tqdm(total=len(jobs), desc=f"emulated Pico x{cfg.workers}", unit="run", disable=not progress)
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        futures = [pool.submit(run_one, j, cfg.n_tokens, cfg.timeout_s, cfg.full_window) for j in jobs]
        for fut in as_completed(futures):
            table.append(_finish(fut.result(), cfg, profile))
            bar.update()
    bar.close()
    table.snapshot()
    ptable = ResultTable(results_dir.joinpath(*PROFILE_TABLE), key="key")
    if ptable.rows() and "dot_product" not in ptable.rows()[0]:
        # a profile of the per-function layout before the per-phase kernels: derived data, redone
        for suffix in (".jsonl", ".parquet"):
            ptable.stem.with_suffix(suffix).unlink(missing_ok=True)
    if not ptable.rows():
        for r in profile_rows(table.frame(), runs_dir, cfg, profile):
            ptable.append(r)
        if ptable.rows():
            ptable.snapshot()
    return table.frame()


def main(argv: list[str] | None = None) -> int:
    from ..profiles import notebook_params
    p = argparse.ArgumentParser(prog="python -m starmind_lib.bench device", description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="quick", help="where the study's tables are and the 06_device settings")
    p.add_argument("--results-dir", default="", help="override the profile's results_dir")
    p.add_argument("--runs-dir", default="", help="override the profile's runs_dir")
    a = p.parse_args(argv)
    params = notebook_params(a.profile, "06_device")
    fields = set(DeviceBenchConfig.__dataclass_fields__)
    cfg = DeviceBenchConfig.from_params({**{k: v for k, v in params.items() if k in fields},
                                         "data_source": params.get("data_source", "tinystories"),
                                         "raw_data_dir": params.get("data_dir", "")})
    results_dir = Path(a.results_dir or params["results_dir"])
    runs_dir = Path(a.runs_dir or params["runs_dir"])
    df = run_bench(cfg, results_dir, runs_dir, profile=a.profile)
    import pandas as pd
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(pd.DataFrame(ResultTable(results_dir.joinpath(*KERNEL_TABLE), key="key").rows())
              [["kernel", "weights", "cycles_per_mac_raw", "cycles_per_mac"]].to_string(index=False))
        print(summary(df).to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
        prof = profile_summary(read_profile(results_dir))
        if len(prof):
            print("cycles per phase, full window, weights in SRAM (results: "
                  f"{results_dir.joinpath(*PROFILE_TABLE)}.parquet):")
            print(prof.to_string(index=False, formatters={"matvec share": "{:.1%}".format,
                                                          "dot-product share": "{:.1%}".format,
                                                          "cycles/token": "{:,.0f}".format}))
    bad = df[(df["matches_reference"] == False)  # noqa: E712
             | (df.get("window_matches_reference", pd.Series(None, index=df.index)) == False)  # noqa: E712
             | (df.get("long_matches_reference", pd.Series(None, index=df.index)) == False)]  # noqa: E712
    if len(bad):
        print(f"MISMATCH with the reference engine: {list(bad['key'])}")
        return 1
    print(f"results: {results_dir.joinpath(*TABLE)}.{{jsonl,parquet}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
