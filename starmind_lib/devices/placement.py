"""How much a MicroPython token's cost moves when only the heap placement changes.

The same model file, the same runtime, the same tokens: before loading, the board allocates a pad of
``pad`` bytes and keeps it, so every buffer of the model and the engine lands elsewhere in the heap.
rp2040js charges every SRAM access the same, so whatever changes the cycles is the path the interpreter
takes (hash-table probes, the map lookup cache), not memory speed. The spread over pads bounds how
closely any model of shapes alone can predict a measured MicroPython speed (chapter 06b)::

    python -m starmind_lib.devices.placement --require-clean     # -> data/results/device/micropython_placement

One row per (model, pad): cycles per generated token (mean over 64 after a 1-token prompt, and the last),
heap free after loading, the runtime's digest and the firmware's hash, with provenance.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from ..provenance import REPO_ROOT, ResultTable, provenance

TABLE = REPO_ROOT / "data" / "results" / "device" / "micropython_placement"
PADS = (0, 16, 32, 48, 64, 96, 128, 256, 1024, 5000)        # bytes allocated (and kept) before loading
MODELS = ("budget3k-vocab-bpe384", "budget10k-ffn_ratio-r1", "budget100k-depth-l1")   # study shapes, weights in RAM
N_TOKENS = 64


def run_code(path: str, pad: int, counter: int) -> str:
    """The board-side program: a pad, then the ordinary benchmark (bench.run_model) on the file."""
    return ("import sys, gc\nif '/lib' not in sys.path:\n sys.path.append('/lib')\n"
            "from starmind_mp import bench\ngc.collect()\n"
            f"pad = bytearray({pad}) if {pad} else None\n"
            f"bench.run_model({path!r}, [1], {N_TOKENS}, 0, 0, 0, 'auto', False, 'ram', {counter})\n"
            "pad = None\ngc.collect()\n")


def spread(rows: list[dict]) -> dict[str, dict]:
    """Per model: the lowest and highest cycles per token over the pads, and (max - min) / (2 mean)."""
    out: dict[str, dict] = {}
    for r in rows:
        if r.get("status") != "ok" or not r.get("cycles_per_token"):
            continue
        out.setdefault(r["model"], []).append(float(r["cycles_per_token"]))
    return {m: {"n": len(c), "low": min(c), "high": max(c),
                "half_range": (max(c) - min(c)) / (max(c) + min(c))} for m, c in out.items()}


def measure(board, table: ResultTable, models=MODELS, pads=PADS, profile: str = "") -> int:
    """Every (model, pad) not in ``table`` yet for this runtime; returns how many rows were appended."""
    from .firmware import CYCLE_COUNTER_30, check_environment, runtime_digest
    from .measure import ARCH_DIR, export_architecture, study_architectures
    from .mpremote_board import result_reader
    check_environment(board.firmware)
    runtime = runtime_digest(board.runtime_dir)
    done = {r["key"] for r in table.rows()}
    arch = {v["variant_id"]: v for v in study_architectures(variants=list(models))}
    missing = [m for m in models if m not in arch]
    if missing:
        raise ValueError(f"placement: {', '.join(missing)} not in the study table; name study variants")
    paths = {m: export_architecture(arch[m], ARCH_DIR) for m in models}
    board.preload(list(paths.values()))
    fw_sha = hashlib.sha256(board.firmware.read_bytes()).hexdigest()
    n = 0
    for m in models:
        digest = hashlib.sha256(paths[m].read_bytes()).hexdigest()[:16]
        for pad in pads:
            key = f"{m}/{pad}/{runtime}/{digest}"
            if key in done:
                continue
            result: dict = {}
            board.exec(run_code(f"/models/{paths[m].name}", pad, CYCLE_COUNTER_30), on_line=result_reader(result))
            table.append({"key": key, "model": m, "pad_bytes": pad, "n_params": arch[m]["n_params"],
                          "status": result.get("status", "error"), "message": result.get("message", ""),
                          "weights": result.get("weights"), "kernels": result.get("kernels"),
                          "cycles_per_token": result.get("cycles_per_token"),
                          "cycles_last_token": result.get("cycles_last_token"),
                          "heap_free_after_load": result.get("heap_free_after_load"),
                          "output_ids": result.get("output_ids"), "n_tokens": N_TOKENS, "prompt_ids": [1],
                          "clock_hz": result.get("freq_hz"), "model_sha256_16": digest,
                          "runtime_sha256_16": runtime, "board": board.name, "firmware": board.firmware.name,
                          "firmware_sha256": fw_sha, "speed_source": "emulated_stock_firmware",
                          **provenance(profile=profile)})
            n += 1
    table.snapshot()
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.devices.placement", description=__doc__.split("\n")[0])
    p.add_argument("--firmware", default=None, help="MicroPython .bin/.uf2 (default: the shared RPI_PICO_UART.bin)")
    p.add_argument("--table", default=str(TABLE), help="result table stem")
    p.add_argument("--require-clean", action="store_true", help="refuse a dirty working tree")
    a = p.parse_args(argv)
    if a.require_clean:
        prov = provenance()
        if prov["git_commit"].endswith("-dirty") or prov["git_diff"]:
            p.error(f"--require-clean: the working tree has uncommitted changes ({prov['git_commit']}); "
                    "measure from a clean checkout (git worktree add)")
    from .firmware import FirmwareBoard, runtime_digest
    table = ResultTable(Path(a.table), key="key")
    with FirmwareBoard(a.firmware, force=True) as board:
        n = measure(board, table)
    print(summary(table.rows(), runtime_digest(None)))
    print(f"{n} rows appended; {len(table.rows())} in {a.table}")
    return 0


def summary(rows: list[dict], runtime: str) -> str:
    """The spread per model over one runtime's rows (the table keeps every runtime's)."""
    mine = [r for r in rows if r.get("runtime_sha256_16") == runtime]
    lines = [f"{m:<28} {s['n']:>2} pads: {s['low']:,.0f} to {s['high']:,.0f} cycles/token (+-{s['half_range']:.1%})"
             for m, s in spread(mine).items()]
    return "\n".join([f"runtime {runtime}:"] + (lines or ["no rows"]))


if __name__ == "__main__":
    raise SystemExit(main())
