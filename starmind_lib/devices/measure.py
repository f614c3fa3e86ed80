"""Measure every model on the emulated MicroPython firmware: ``data/results/device/micropython_runs``.

One row per model x weights mode (ram, flash) x kernel kind, appended to a
:class:`~starmind_lib.provenance.ResultTable` as each run finishes (a rerun skips
finished rows)::

    python -m starmind_lib.devices.measure                    # reference models, then the study's
    python -m starmind_lib.devices.measure --max-study 20     # only the 20 smallest study models

Models: the 5 reference models (``data/reference``; kernels auto, optionally python) and
the study's 198 architectures (``data/results/sweep/variants``; kernels auto), in an
order whose every prefix spans the size range (a partial run still covers small and large). The
study's trained checkpoints are not committed (``data/runs`` is ignored) and its
TinyStories data is not reachable offline, so each study architecture is exported
untrained (seeded random weights, the same shapes, vocabulary size and context):
speed, heap and load figures depend on the shapes only, and the tokens are still
checked against the reference engine run on the same file. Such rows say
``weights_source="untrained_same_architecture"``.

The table keeps every measurement: each runtime (``runtime_sha256_16``, the hash of the
package's sources) and each commit it was measured from. Readers take :func:`current_rows`:
the rows of one runtime (by default the working tree's), one per board and job, a row
measured from a clean commit before one from a dirty tree, then the latest. To measure
from a clean commit, run this module in a clean checkout (``--require-clean`` refuses a
dirty tree and re-measures jobs that only have rows from dirty trees); rows measured into
another journal join this one with ``--merge-from STEM`` (rows copied unchanged).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from ..provenance import REPO_ROOT, ResultTable, provenance
from . import planner
from .mpremote_board import RunsTable

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
STUDY_TABLE = REPO_ROOT / "data" / "results" / "sweep" / "variants"
RUNS_TABLE = REPO_ROOT / "data" / "results" / "device" / "micropython_runs"
ARCH_DIR = REPO_ROOT / "data" / "runs" / "smd_arch"
N_TOKENS = 64
# Untrained probes of shapes that suit a heap (few layers, so a small KV cache; wide rows, so few
# requantisation pairs): how large a model runs with its weights in RAM at all, beside the study's shapes.
MP_SIZE_PROBES = ((64, 3), (80, 2), (112, 1), (72, 3), (64, 4))   # (dim, n_layers), FFN 4 x dim, 64-token vocabulary


def runs_table(stem: Path = RUNS_TABLE) -> RunsTable:
    return RunsTable(stem, key="run_key")


def is_clean(row: dict) -> bool:
    """Measured from a committed tree (no '-dirty' commit, no uncommitted diff)."""
    diff = row.get("git_diff")
    has_diff = isinstance(diff, str) and bool(diff)      # None, '' and a table's NaN: no diff
    commit = row.get("git_commit")
    return isinstance(commit, str) and bool(commit) and not commit.endswith("-dirty") and not has_diff


def chosen_runtime(rows: list[dict]) -> str | None:
    """The runtime whose rows readers use: the working tree's when it has rows, else the latest measured."""
    measured = [r for r in rows if isinstance(r.get("runtime_sha256_16"), str)]
    if not measured:
        return None
    tree = tree_runtime()
    if any(r["runtime_sha256_16"] == tree for r in measured):
        return tree
    return max(measured, key=lambda r: str(r.get("timestamp", "")))["runtime_sha256_16"]


def current_frame(df, runtime: str | None = None):
    """A read table (DataFrame) with its emulated-firmware rows narrowed to :func:`current_rows` of
    :func:`chosen_runtime`; rows without a runtime digest (a real board, a test's table) are kept."""
    if df is None or df.empty or "runtime_sha256_16" not in df.columns:
        return df
    has = df["runtime_sha256_16"].map(lambda v: isinstance(v, str))
    recs = df[has].assign(_row=df.index[has]).to_dict("records")
    runtime = runtime or chosen_runtime(recs)
    pick = {r["_row"] for r in current_rows(recs, runtime)} if runtime else set()
    return df[~has | df.index.isin(pick)]


def current_rows(rows: list[dict], runtime: str | None = None, board: str | None = None) -> list[dict]:
    """The rows of one runtime (default: the working tree's, :func:`tree_runtime`), one per board and job:
    a clean commit's row before a dirty tree's, then the most recent."""
    runtime = runtime or tree_runtime()
    best: dict = {}
    for r in rows:
        if r.get("runtime_sha256_16") != runtime or (board and r.get("board") != board):
            continue
        k = (r.get("board"), r.get("job_id"))
        rank = (is_clean(r), str(r.get("timestamp", "")))
        if k not in best or rank > best[k][0]:
            best[k] = (rank, r)
    return [r for _, r in best.values()]


def tree_runtime() -> str:
    """The runtime digest of this working tree's ``device/micropython/starmind_mp``."""
    from .firmware import runtime_digest
    return runtime_digest(None)


def runtime_history(rows: list[dict], runtime: str | None = None) -> dict:
    """How many rows the table holds for other runtimes, and for this one from dirty trees (superseded or not)."""
    runtime = runtime or tree_runtime()
    cur = [r for r in rows if r.get("runtime_sha256_16") == runtime]
    return {"runtime": runtime, "rows_this_runtime": len(cur),
            "rows_other_runtimes": sum(isinstance(r.get("runtime_sha256_16"), str) for r in rows) - len(cur),
            # a `board bench` row of a real board or of --port emulated records no runtime hash: not a runtime
            "other_runtimes": sorted({r.get("runtime_sha256_16") for r in rows
                                      if isinstance(r.get("runtime_sha256_16"), str)} - {runtime}),
            "rows_clean": sum(is_clean(r) for r in cur), "rows_dirty": sum(not is_clean(r) for r in cur)}


def _vocab(n: int) -> list[bytes]:
    return [bytes([32 + i]) if i < 95 else f"<{i}>".encode() for i in range(n)]


def study_architectures(limit: int | None = None, variants: list[str] | None = None) -> list[dict]:
    """The study's variants (architecture fields, n_params), smallest first."""
    import pandas as pd
    df = pd.read_parquet(STUDY_TABLE.with_suffix(".parquet"))
    if variants:
        df = df[df["variant_id"].isin(variants)]
    df = df.sort_values(["n_params", "variant_id"])
    out = [{"variant_id": r["variant_id"], "n_params": int(r["n_params"]), "arch": architecture_of(r),
            "tokenizer": r.get("tokenizer_spec"), "bpc": r.get("bpc")} for r in df.to_dict("records")]
    return out[:limit] if limit else out


def architecture_of(row: dict) -> dict:
    """The architecture fields (planner.ARCH_FIELDS, with max_seq_len) of a study table row."""
    cfg = json.loads(row["config"]) if isinstance(row["config"], str) else dict(row["config"])
    arch = {k: row[k] for k in planner.ARCH_FIELDS if k != "max_seq_len"}
    arch = {k: (bool(v) if k == "tied" else v if isinstance(v, str) else int(v)) for k, v in arch.items()}
    arch["max_seq_len"] = int(cfg.get("seq_len") or cfg.get("max_seq_len") or 64)
    return arch


def export_architecture(v: dict, out_dir: Path = ARCH_DIR) -> Path:
    """An untrained int8 .smd with the variant's architecture (seeded: the same file on every machine)."""
    import numpy as np
    import torch

    from ..model import ModelConfig, Transformer
    from ..quant import schemes as quant
    from ..quant.smd import write_smd
    path = Path(out_dir) / f"{v['variant_id']}.smd"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    a = v["arch"]
    model = Transformer(ModelConfig.from_params(dict(a))).eval()
    T, V = a["max_seq_len"], a["vocab_size"]
    calib = [(np.arange(T) * (2 * i + 1) + i) % V for i in range(4)]
    tmp = path.with_suffix(".tmp")
    write_smd(tmp, *quant.to_int8_engine(model, quant.calibrate(model, calib)), _vocab(V))
    tmp.replace(path)
    return path


def reference_ids(path: Path, prompt: list[int], n_tokens: int) -> list[int]:
    from ..quant.intengine import IntEngine
    from ..quant.smd import read_smd
    return [int(t) for t in IntEngine(read_smd(path)).generate(prompt, n_tokens)]


def spread(items: list) -> list:
    """Reorder a size-sorted list so that any prefix covers the whole size range (bit-reversed order)."""
    n = len(items)
    bits = max(1, (n - 1).bit_length())
    order = sorted(range(1 << bits), key=lambda i: int(format(i, f"0{bits}b")[::-1], 2))
    return [items[i] for i in order if i < n]


def probe_architectures() -> list[dict]:
    """MP_SIZE_PROBES as study-like variants (variant_id mp_probe_d{dim}_l{layers}), smallest first."""
    from ..training.grid import count_params
    out = []
    for dim, layers in MP_SIZE_PROBES:
        head = 32 if dim % 32 == 0 else 16 if dim % 16 == 0 else 8       # even head sizes (rope)
        arch = {"vocab_size": 64, "dim": dim, "n_layers": layers, "n_heads": dim // head, "ffn_hidden": 4 * dim,
                "activation": "silu", "pos": "rope", "tied": True, "max_seq_len": 64}
        out.append({"variant_id": f"mp_probe_d{dim}_l{layers}", "arch": arch, "tokenizer": "char64", "bpc": None,
                    "n_params": count_params(**{k: v for k, v in arch.items() if k != "max_seq_len"})})
    return sorted(out, key=lambda v: v["n_params"])


def jobs(max_study: int | None = None, study: bool = True, reference_python: bool = False,
         probes: bool = True) -> list[dict]:
    """Reference models first (auto and python kernels), then the study's architectures (auto), then the
    size probes (MP_SIZE_PROBES, auto)."""
    out = []
    for g in sorted(REFERENCE_DIR.glob("*.golden.json")):
        gold = json.loads(g.read_text())
        path = REFERENCE_DIR / gold["model"]
        n = min(N_TOKENS, gold["config"]["max_seq_len"])
        meta = {"source": "reference", "variant_id": path.stem, "weights_source": "trained_reference",
                **{k: gold["config"][k] for k in planner.ARCH_FIELDS}}
        for kernels in ("auto", "python") if reference_python else ("auto",):
            for weights in ("ram", "flash"):
                out.append({"path": path, "prompt": gold["prompt_ids"][:1], "n_tokens": n, "weights": weights,
                            "kernels": kernels, "meta": meta})
    groups = [("study", "untrained_same_architecture", spread(study_architectures(max_study)) if study else []),
              ("size_probe", "untrained_probe", probe_architectures() if probes else [])]
    for source, weights_source, variants in groups:
        for v in variants:
            meta = {"source": source, "variant_id": v["variant_id"], "weights_source": weights_source,
                    "tokenizer": v["tokenizer"], "n_params": v["n_params"], **v["arch"]}
            for weights in ("ram", "flash"):
                out.append({"variant": v, "prompt": [1], "n_tokens": min(N_TOKENS, v["arch"]["max_seq_len"]),
                            "weights": weights, "kernels": "auto", "meta": meta})
    return out


def shard(job_list: list, spec: str | None) -> list:
    """The jobs of shard "K/N": those of every N-th model from the K-th (0-based; a model's jobs stay
    together, so no two shards export or deploy the same file); all of them without a spec."""
    if not spec:
        return job_list
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be K/N (for example 0/2), got {spec!r}") from None
    if not 0 <= k < n:
        raise ValueError(f"--shard {spec}: K must be in 0..N-1")
    models: dict = {}
    for j in job_list:
        models.setdefault(j["meta"]["variant_id"], len(models))
    return [j for j in job_list if models[j["meta"]["variant_id"]] % n == k]


def job_key(board_name: str, job: dict, digest: str, runtime: str = "") -> str:
    spec = [board_name, job["meta"]["variant_id"], digest, job["prompt"], job["n_tokens"], job["weights"],
            job["kernels"]]
    spec = json.dumps(spec + [runtime] if runtime else spec)   # with the runtime: one row per runtime
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _arch_key(job: dict, runtime: str = "") -> str:
    return json.dumps([job["meta"]["variant_id"], job["prompt"], job["n_tokens"], job["weights"], job["kernels"],
                       runtime])


def measure(board, job_list: list[dict], table: ResultTable, profile: str = "", on_row=None,
            clean_only: bool = False) -> int:
    """Run every job not in ``table`` yet (``clean_only``: not yet measured from a clean commit);
    returns how many rows were appended."""
    from .firmware import SPEED_SOURCE, check_environment, runtime_digest
    # a board that cannot start here (no Node.js, rp2040js or firmware) stops the batch before any row:
    # such a row would read as a measurement of every model
    check_environment(board.firmware)
    runtime = runtime_digest(board.runtime_dir)
    done = {r.get("job_id") for r in table.rows() if r.get("board") in (None, board.name)
            and (is_clean(r) or not clean_only)}
    todo = [j for j in job_list if _arch_key(j, runtime) not in done]
    fw_sha = hashlib.sha256(board.firmware.read_bytes()).hexdigest()
    n = 0
    # group the runs of one model file so each image holds it (fewer reboots)
    for j in todo:
        if "path" not in j:
            j["path"] = export_architecture(j["variant"])
    paths = []
    for j in todo:
        if j["path"] not in paths:
            paths.append(j["path"])
    placed: set = set()
    for j in todo:
        if j["path"] not in placed:
            board.files = {p: d for p, d in board.files.items() if not p.startswith("/models/")}
            placed = set(board.preload(paths[paths.index(j["path"]):]))
        board.weights, board.engine = j["weights"], j["kernels"]
        data = Path(j["path"]).read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:16]
        expected = reference_ids(j["path"], j["prompt"], j["n_tokens"])
        rec = board.run(j["prompt"], j["n_tokens"], model_path=j["path"])
        x = rec.extra
        cyc = rec.cycles_per_token
        row = {"run_key": job_key(board.name, j, digest, runtime), "job_id": _arch_key(j, runtime), "runtime_sha256_16": runtime, "model": Path(j["path"]).stem,
               **j["meta"], "model_file": Path(j["path"]).name, "model_sha256_16": digest, "flash_bytes": len(data),
               "weights_requested": j["weights"], "weights": x.get("weights"),
               "kernels_requested": j["kernels"], "kernels": x.get("kernels"), "runtime": rec.runtime,
               "status": rec.status, "message": rec.message,
               "prompt_ids": j["prompt"], "n_tokens": j["n_tokens"], "output_ids": rec.output_ids,
               "reference_ids": expected, "tokens_match_reference": rec.status == "ok" and rec.output_ids == expected,
               "cycles_per_token": cyc, "cycles_last_token": x.get("cycles_last_token"),
               "cycles_per_prefill_token": rec.cycles_per_prefill_token, "n_decode_steps": x.get("n_decode_steps"),
               "tokens_per_s": rec.tokens_per_s, "ms_per_token": rec.ms_per_token,
               "load_cycles": x.get("load_cycles"), "load_ms": rec.load_ms,
               "heap_total": x.get("heap_total"), "heap_free_after_boot": x.get("heap_free_after_boot"),
               "heap_free_before": rec.heap_free_before, "heap_free_after_load": x.get("heap_free_after_load"),
               "model_heap_bytes": x.get("model_heap_bytes"), "heap_peak_alloc": x.get("heap_peak_alloc"),
               "alloc_per_token": x.get("alloc_per_token"),
               "speed_source": SPEED_SOURCE if rec.status == "ok" else rec.speed_source,
               "clock_hz": x.get("clock_hz") or x.get("freq_hz"), "board": board.name,
               "firmware": board.firmware.name, "firmware_sha256": fw_sha, "emulator": "rp2040js 1.4.1",
               **provenance(profile=profile)}
        table.append(row)
        n += 1
        if on_row is not None:
            on_row(row)
    table.snapshot()
    return n


def summary_line(row: dict) -> str:
    tps = row.get("tokens_per_s")
    return (f"{row['model']:<28} {row['weights_requested']:<5} {str(row.get('kernels')):<6} {row['status']:<14} "
            f"{(f'{tps:8.2f} tok/s' if tps else '       - tok/s')} "
            f"heap free after load {row.get('heap_free_after_load')} match={row.get('tokens_match_reference')}"
            + (f"  [{row['message'][:120]}]" if row.get("message") else ""))


def main(argv: list[str] | None = None) -> int:
    from .firmware import FirmwareBoard
    p = argparse.ArgumentParser(prog="python -m starmind_lib.devices.measure", description=__doc__.split("\n")[0])
    p.add_argument("--firmware", default=None, help="MicroPython .bin/.uf2 (default: $STARMIND_FIRMWARE or the "
                                                    "shared RPI_PICO_UART.bin)")
    p.add_argument("--table", default=str(RUNS_TABLE), help="result table stem")
    p.add_argument("--max-study", type=int, default=None, help="only the N smallest study models")
    p.add_argument("--no-study", action="store_true")
    p.add_argument("--python", action="store_true", help="also the reference models with pure-Python kernels")
    p.add_argument("--profile", default="emulated")
    p.add_argument("--runtime-dir", default=None, help="a snapshot of device/micropython/starmind_mp to measure "
                                                       "(default: the working tree's)")
    p.add_argument("--require-clean", action="store_true",
                   help="refuse a dirty working tree; re-measure jobs whose rows all come from dirty trees")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="only every N-th job from the K-th (0-based): N processes, each with its own --table, "
                        "then --merge-from each")
    p.add_argument("--merge-from", default=None, metavar="STEM",
                   help="append the rows of another journal (STEM.jsonl) that this table lacks, then stop")
    args = p.parse_args(argv)
    table = runs_table(Path(args.table))
    if args.merge_from:
        n = table.merge_from(args.merge_from)
        print(f"{n} rows merged from {args.merge_from}; {len(table.rows())} in {table.stem}")
        return 0
    if args.require_clean:
        prov = provenance()
        if prov["git_commit"].endswith("-dirty") or prov["git_diff"]:
            p.error(f"--require-clean: the working tree has uncommitted changes ({prov['git_commit']}); "
                    "measure from a clean checkout (git worktree add)")
    todo = shard(jobs(args.max_study, study=not args.no_study, reference_python=args.python), args.shard)
    with FirmwareBoard(args.firmware, force=True) as board:
        board.runtime_dir = Path(args.runtime_dir) if args.runtime_dir else None
        n = measure(board, todo, table, profile=args.profile, on_row=lambda r: print(summary_line(r), flush=True),
                    clean_only=args.require_clean)
    print(f"{n} rows appended; {len(table.rows())} in {table.stem}")
    return 0


def planner_error(row: dict) -> float | None:
    """Predicted / measured tokens per second - 1 for a measured row (None where it did not run)."""
    if row.get("status") != "ok" or not row.get("tokens_per_s"):
        return None
    t = planner.attention_length(len(row["prompt_ids"]), row["n_tokens"])
    sp = planner.predict_speed(row, f"micropython-{row['kernels']}", context=t, weights=row["weights"])
    return sp.tokens_per_s / row["tokens_per_s"] - 1


def bench_emulated(firmware: str | None, results_dir: Path, profile: str = "bench", study: int = 0,
                   runtime_dir: Path | None = None) -> list[dict]:
    """`make bench-micropython PORT=emulated`: the reference models (and ``study`` study models) measured
    on the emulated firmware; prints tok/s, heap and the planner's error per model."""
    from .firmware import FirmwareBoard
    table = runs_table(Path(results_dir) / "device" / "micropython_runs")
    todo = jobs(study or None, study=bool(study))
    with FirmwareBoard(firmware, force=True) as board:
        board.runtime_dir = runtime_dir
        measure(board, todo, table, profile=profile)
    from .firmware import runtime_digest
    rows = current_rows(table.rows(), runtime_digest(runtime_dir), board.name)
    print(f"{'model':<28} {'weights':<7} {'kernels':<7} {'status':<14} {'tok/s':>8} {'heap free':>10} "
          f"{'free after load':>15} {'planner err':>11}")
    errs = []
    for r in rows:
        e = planner_error(r)
        if e is not None:
            errs.append(abs(e))
        tps = f"{r['tokens_per_s']:8.1f}" if r.get("tokens_per_s") else "       -"
        print(f"{r['model']:<28} {r['weights_requested']:<7} {str(r.get('kernels')):<7} {r['status']:<14} {tps} "
              f"{str(r.get('heap_free_after_boot')):>10} {str(r.get('heap_free_after_load')):>15} "
              f"{(f'{e:+.1%}' if e is not None else '-'):>11}")
    if errs:
        print(f"planner speed error: mean {sum(errs) / len(errs):.1%}, worst {max(errs):.1%} over {len(errs)} runs "
              f"(emulated cycles at {rows[0].get('clock_hz')} Hz, speed_source=emulated_stock_firmware)")
    for what, src in (("any model", None), ("a study model", "study")):
        ram = [r for r in rows if r.get("status") == "ok" and r.get("weights_requested") == "ram"
               and (src is None or r.get("source") == src)]
        if ram:
            big = max(ram, key=lambda r: r.get("n_params") or 0)
            print(f"largest {what} with weights in RAM: {big['model']}, {int(big['n_params']):,} parameters, "
                  f"{big['tokens_per_s']:.1f} tokens/s")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
