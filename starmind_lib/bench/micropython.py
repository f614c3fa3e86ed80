"""Chapter 06 (MicroPython part): the planner's map, the virtual-board check, hardware runs.

    python -m starmind_lib.bench micropython                      # virtual board + predictions
    python -m starmind_lib.bench micropython --port /dev/ttyACM0  # also measure on a real Pico
    python -m starmind_lib.bench micropython --port emulated      # MicroPython firmware in rp2040js
                                                                  # (make bench-micropython PORT=emulated)

Three kinds of figures, never mixed up:

* **predicted** (planner.py): heap needed and tokens/s on a stock Pico with
  MicroPython 1.27, from operation counts and per-operation cycle costs;
* **virtual board: behaviour only**: the runtime under MicroPython 1.27
  (WebAssembly) driven by mpremote, checked token for token against the
  reference engine's golden vectors; its timings are the host's;
* **measured_hardware**: the same runner on a real board (``--port``), timed at the
  clock the board reports (``machine.freq()``);
* **emulated_stock_firmware**: ``--port emulated`` (or ``emulated:FIRMWARE.bin``): the
  real MicroPython 1.27 firmware in rp2040js, cycles at its 125 MHz, its real heap;
  prints measured tokens/s, heap and the calibrated planner's error per model (the
  planner map and the virtual check are skipped).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ..devices import planner
from ..devices.mpremote_board import MpremoteBoard, runs_table
from ..devices.runtime import model_architecture
from ..provenance import REPO_ROOT, ResultTable, provenance

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
VIRTUAL_LABEL = "virtual board: behaviour only"


def _max_seq_len(row: dict) -> int:
    cfg = row.get("config") or {}
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    return int(row.get("max_seq_len") or cfg.get("max_seq_len") or cfg.get("seq_len") or 128)


def study_models(results_dir: str | Path) -> tuple[dict[str, dict], bool]:
    """Architectures of the study's models (the sweep table), else of the reference models.

    Returns (name -> architecture incl. n_params/bpc where known, whether the data is synthetic).
    """
    table = ResultTable(Path(results_dir) / "sweep" / "variants", key="variant_id")
    rows = table.rows()
    if not rows and table.stem.with_suffix(".parquet").exists():
        rows = pd.read_parquet(table.stem.with_suffix(".parquet")).to_dict("records")
    models, synthetic = {}, False
    for r in rows:
        if r.get("error"):
            continue
        arch = {k: r[k] for k in planner.ARCH_FIELDS if k != "max_seq_len"}
        arch["max_seq_len"] = _max_seq_len(r)
        models[r["variant_id"]] = {**arch, "n_params": r.get("n_params"), "bpc": r.get("bpc")}
        synthetic |= bool(r.get("is_synthetic"))
    if models:
        return models, synthetic
    for path in sorted(REFERENCE_DIR.glob("*.smd")):
        if path.name.endswith(".f32.smd"):
            continue
        arch = model_architecture(path)
        n = sum(r * c for r, c in planner.weight_tensors(arch).values())
        models[path.stem] = {**{k: arch[k] for k in planner.ARCH_FIELDS}, "n_params": n, "bpc": None}
    return models, True


def planner_frame(models: dict[str, dict], context: int | None = None) -> pd.DataFrame:
    """One row per model: predicted heap, fit, and predicted tokens/s for viper and pure-Python kernels."""
    rows = []
    for name, m in models.items():
        plan = planner.plan_memory(m, context=context)
        row = {"model": name, "n_params": m.get("n_params"), "bpc": m.get("bpc"), "fits": plan.fits,
               "weights": plan.weights, "heap_needed_kb": plan.total_bytes / 1024, "reason": plan.reason,
               "label": "predicted"}
        for rt in ("micropython-viper", "micropython-python"):
            sp = planner.predict_speed(m, rt, context=context, weights=plan.weights)
            row[f"tok_s_{rt.split('-')[1]}"] = sp.tokens_per_s
            row[f"tok_s_{rt.split('-')[1]}_low"] = sp.tokens_per_s_low
            row[f"tok_s_{rt.split('-')[1]}_high"] = sp.tokens_per_s_high
        rows.append(row)
    return pd.DataFrame(rows)


def virtual_table(results_dir: str | Path) -> ResultTable:
    return ResultTable(Path(results_dir) / "device" / "micropython_virtual", key="check_key")


def run_virtual_check(results_dir: str | Path, profile: str = "", recompute: bool = True) -> pd.DataFrame:
    """Every reference model on the virtual board (greedy and one sampled setting) vs its golden vectors."""
    from ..devices.virtual import start_virtual_board

    table = virtual_table(results_dir)
    goldens = sorted(REFERENCE_DIR.glob("*.golden.json"))
    todo = [g for g in goldens if not table.has(g.name)] if recompute else []
    if todo:
        with start_virtual_board() as vb, MpremoteBoard(vb.url, kind="virtual", timeout_s=300) as board:
            for gpath in todo:
                table.append({"check_key": gpath.name, **_check_one(board, gpath), **provenance(profile=profile)})
        table.snapshot()
    return table.frame()


def _check_one(board: MpremoteBoard, gpath: Path) -> dict:
    g = json.loads(gpath.read_text())
    model = REFERENCE_DIR / g["model"]
    settings = [("greedy", g["prompt_ids"], g["greedy"]["n_new"], 0, 0, 0, g["greedy"]["output_ids"])]
    settings += [(f"sampled seed={s['seed']} T={s['temperature_q8']}/256 top_k={s['top_k']}", g["prompt_ids"],
                  s["n_new"], s["seed"], s["temperature_q8"], s["top_k"], s["output_ids"]) for s in g["sampled"]]
    results, statuses, texts = [], [], []
    for _, prompt, n, seed, tq, k, expected in settings:
        rec = board.run(prompt, n, seed, tq, k, model_path=model)
        statuses.append(rec.status)
        texts.append(rec.text)
        results.append(rec.status == "ok" and rec.output_ids == expected)
    return {"model": g["model"], "runs": len(results), "identical": sum(results), "statuses": statuses,
            "prompt_text": g.get("prompt_text", ""), "greedy_text": texts[0], "runtime": rec.runtime,
            "board": board.name, "label": VIRTUAL_LABEL}


def hardware_models(runs_dir: str | Path) -> list[Path]:
    """Models for a real board: the study's exported int8 models, else the reference models."""
    exported = sorted((Path(runs_dir) / "smd").glob("*.smd"))
    return exported or [p for p in sorted(REFERENCE_DIR.glob("*.smd")) if not p.name.endswith(".f32.smd")]


def run_hardware(port: str, results_dir: str | Path, runs_dir: str | Path, prompt: str = "Once upon a time",
                 n_tokens: int = 32, profile: str = "", timeout_s: float = 300.0) -> pd.DataFrame:
    """Benchmark every model on the board at ``port`` (resumable); rows in device/micropython_runs."""
    from ..devices.runtime import encode_prompt

    table = runs_table(results_dir)
    with MpremoteBoard(port, kind="hardware", timeout_s=timeout_s) as board:
        for model in hardware_models(runs_dir):
            try:
                ids = encode_prompt(model, prompt.lower())
            except ValueError:
                ids = [1]  # a vocabulary without these characters (synthetic models): any valid token
            board.bench([model], ids, n_tokens, table=table, profile=profile)
    table.snapshot()
    return table.frame()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.bench micropython", description=__doc__.split("\n")[0])
    p.add_argument("--results-dir", default=str(REPO_ROOT / "build" / "bench" / "results"),
                   help="where this benchmark's tables go")
    p.add_argument("--study-results", default=str(REPO_ROOT / "data" / "results"),
                   help="results of the architecture study (sweep/variants) whose models the planner maps")
    p.add_argument("--runs-dir", default=str(REPO_ROOT / "data" / "runs"))
    p.add_argument("--port", default="", help="a real board (mpremote connection string), 'emulated' or "
                                              "'emulated:FIRMWARE.bin'; none: virtual only")
    p.add_argument("--n-tokens", type=int, default=32)
    p.add_argument("--study", type=int, default=0, help="--port emulated: also the N study architectures")
    args = p.parse_args(argv)
    if args.port == "emulated" or args.port.startswith("emulated:"):
        from ..devices.measure import bench_emulated
        rows = bench_emulated(args.port.partition(":")[2] or None, Path(args.results_dir), study=args.study)
        return 0 if rows and all(r["status"] == "ok" and r["tokens_match_reference"] for r in rows
                                 if r["source"] == "reference") else 1
    models, _ = study_models(args.study_results)
    for row in planner_frame(models).to_dict("records"):
        print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}))
    check = run_virtual_check(args.results_dir, profile="bench")
    for row in check[["model", "runs", "identical", "runtime", "label"]].to_dict("records"):
        print(json.dumps(row))
    ok = bool((check["identical"] == check["runs"]).all())
    if args.port:
        runs = run_hardware(args.port, args.results_dir, args.runs_dir, n_tokens=args.n_tokens, profile="bench")
        cols = ["model", "status", "runtime", "tokens_per_s", "heap_free_before", "speed_source", "message"]
        paths = {p.stem: p for p in hardware_models(args.runs_dir)}
        for row in runs[cols + ["prompt_ids", "output_ids"]].to_dict("records"):
            out = {k: row[k] for k in cols}
            if row["status"] == "ok" and row["tokens_per_s"] and row["model"] in paths:
                arch = model_architecture(paths[row["model"]])
                t = planner.attention_length(len(row["prompt_ids"]), len(row["output_ids"]))
                rt = row["runtime"] if row["runtime"] in planner.RUNTIMES else "micropython-viper"
                pred = planner.predict_speed(arch, rt, context=t, weights="ram").tokens_per_s
                out["planner_error"] = round(pred / row["tokens_per_s"] - 1, 3)
            print(json.dumps(out, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
