"""The book's story widget: the C runtime compiled to WebAssembly, writing a story in the page.

    python -m starmind_lib.book.widget asset OUT_DIR      # OUT_DIR/starmind-widget.js (models + wasm inside)
    python -m starmind_lib.book.widget page OUT_DIR       # + OUT_DIR/widget.html, a standalone page (tests)

The asset is one script, loaded on every page (``html_js_files`` in ``_config.yml``): the
models and ``device/wasm/build/starmind.wasm`` as base64 (the book opens from ``file://``, where
Chromium blocks ``fetch`` of local files), the glue (``device/wasm/starmind-wasm.js``) and the
UI (``device/wasm/starmind-widget.js``), which mounts itself on every ``div.starmind-widget``
(:func:`widget_html`).

Which models: the C-runtime models that chapter 07 recommends (``pareto.recommend`` over the same
tables and budgets) when their exported format-v2 files are at hand: first the committed Study v2
exports (``data/models/<id>.smd``, written by ``python -m starmind_lib.quant.export`` with a
provenance row each in ``data/models/models.jsonl``), else ``<runs_dir>/smd/<id>.smd`` (chapter 05's
``export_models``; ignored, so absent from a fresh clone); then any other committed export; and always
the committed reference models (``data/reference``: what the golden vectors cover; trained for
seconds on synthetic sentences, not on stories, and labelled so). A committed model shows the bpc of
the model it runs: its Study v2 configuration's mean over seeds with the 95 % interval (the run's own
whole-split bpc and story interval with one seed), as a float model on the whole validation split.
Each carries the pace and memory of its runs: the C int8 runtime on the emulated Pico at 133 MHz
(cycle-counted emulation, weights in flash, KV cache) from ``device/c_runs``, and MicroPython where
``micropython_runs`` has it (stock firmware in rp2040js, cycle-counted: emulated, not measured on a
Pico). The whole asset must stay under :data:`MAX_ASSET_BYTES`.
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from ..numbers import fmt_num, fmt_quantity
from ..provenance import REPO_ROOT, atomic_write_text
from ..training.plan import variant_id_list

WASM_DIR = REPO_ROOT / "device" / "wasm"
WASM_FILE = WASM_DIR / "build" / "starmind.wasm"
REFERENCE_DIR = REPO_ROOT / "data" / "reference"
MODELS_DIR = REPO_ROOT / "data" / "models"     # committed Study v2 exports (starmind_lib.quant.export)
ASSET_NAME = "starmind-widget.js"
MAX_ASSET_BYTES = 3_000_000        # the budget for the whole widget (models + wasm + code)
STUDY_BUDGET_BYTES = 1_500_000     # raw .smd bytes of study models at most (base64 adds a third)
BUDGETS = [[16, 200.0], [24, 100.0], [32, 50.0], [64, 20.0], [264, 1.0]]   # notebooks/07_analysis.py
C_LABEL = "C int8, emulated RP2040 at 133 MHz (cycle-counted emulation + XIP miss model; weights in flash, KV cache)"
MP_LABEL = ("MicroPython (viper kernels), emulated stock firmware (MicroPython 1.27 in rp2040js, cycle-counted) "
            "at {mhz} MHz")
UNMEASURED_C = {"kind": "c", "label": "C int8 (not yet measured on the emulated Pico: full speed only)",
                "tokens_per_s": None, "tokens_per_s_text": "not measured", "ram_bytes": None, "ram_text": "n/a",
                "flash_bytes": None, "flash_text": "n/a"}
REFERENCE_NOTE = ("reference model: trained for seconds on synthetic sentences, not on stories; "
                  "it shows the runtime, not the study's quality")


def _rel(path: Path) -> str:
    """A path as the page shows it: relative to the repository when inside it (no machine's paths in a page)."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return Path(path).name


class WidgetError(RuntimeError):
    """The widget asset cannot be built (reported by the book build)."""


# ---- the wasm --------------------------------------------------------------------------

def toolchain_missing() -> str:
    """'' when clang, wasm-ld and wasi-libc can build device/wasm; else what is missing."""
    if not shutil.which("make"):
        return "missing: make"
    proc = subprocess.run(["make", "-s", "-C", str(WASM_DIR), "check"], capture_output=True, text=True)
    return "" if proc.returncode == 0 else proc.stdout.strip() or "wasm toolchain check failed"


def build_wasm(required: bool = False) -> Path | None:
    """``make -C device/wasm``: the wasm path, or None (with a message) when the toolchain is missing."""
    missing = toolchain_missing()
    if missing:
        if required:
            raise WidgetError(f"cannot build the WebAssembly runtime: {missing}")
        print(f"[widget] skipped: the WebAssembly runtime is not built ({missing})", flush=True)
        return None
    proc = subprocess.run(["make", "-s", "-C", str(WASM_DIR)], capture_output=True, text=True)
    if proc.returncode != 0 or not WASM_FILE.exists():
        raise WidgetError(f"make -C device/wasm failed:\n{proc.stdout}{proc.stderr}")
    return WASM_FILE


# ---- the models ------------------------------------------------------------------------

def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _runtime(kind: str, tps, ram, flash, label: str) -> dict | None:
    tps = _num(tps)
    if not tps:
        return None
    return {"kind": kind, "label": label, "tokens_per_s": tps,
            "tokens_per_s_text": fmt_quantity(tps, "tokens_per_s"),
            "ram_bytes": _num(ram), "ram_text": fmt_quantity(_num(ram) / 1024, "kb") if _num(ram) else "n/a",
            "flash_bytes": _num(flash),
            "flash_text": fmt_quantity(_num(flash) / 1024, "kb") if _num(flash) else "n/a"}


def _c_runs(results_dir: Path):
    import pandas as pd
    path = Path(results_dir) / "device" / "c_runs.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _mp_runs(results_dir: Path):
    import pandas as pd
    path = Path(results_dir) / "device" / "micropython_runs.jsonl"
    # dtype=False: a hex commit such as 4684646e2887 would otherwise be read as a float
    return pd.read_json(path, lines=True, dtype=False) if path.exists() and path.stat().st_size else None


def _mp_runtime(mp, model_id: str) -> dict | None:
    if mp is None or "model" not in mp:
        return None
    rows = mp[(mp["model"].astype(str) == model_id) & (mp["status"] == "ok")]
    if "weights" in rows:
        flash_rows = rows[rows["weights"] == "flash"]
        rows = flash_rows if len(flash_rows) else rows
    if rows.empty:
        return None
    r = rows.iloc[-1]
    mhz = fmt_num((_num(r.get("clock_hz")) or 125e6) / 1e6)
    return _runtime("micropython", r.get("tokens_per_s"), r.get("heap_peak_alloc"), r.get("flash_bytes"),
                    MP_LABEL.format(mhz=mhz))


def reference_models(results_dir: Path, reference_dir: Path = REFERENCE_DIR) -> list[dict]:
    """The committed reference models with their C (and MicroPython) runs."""
    c, mp = _c_runs(results_dir), _mp_runs(results_dir)
    out = []
    for golden_path in sorted(Path(reference_dir).glob("ref_*.golden.json")):
        golden = json.loads(golden_path.read_text())
        smd = Path(reference_dir) / golden["model"]
        name = golden["model"].removesuffix(".smd")
        runtimes = []
        if c is not None:
            rows = c[(c["key"] == f"{name}/int8/flash/kv") & (c["status"] == "ok")]
            if len(rows):
                r = rows.iloc[-1]
                runtimes.append(_runtime("c", r["tokens_per_s_133MHz"], r["peak_ram_bytes"], r["flash_bytes"], C_LABEL))
        if not runtimes:   # a model newer than the device tables: it runs, at full speed only
            runtimes.append(UNMEASURED_C)
        runtimes.append(_mp_runtime(mp, name))
        cfg = golden["config"]
        out.append({"id": name, "kind": "reference", "file": smd, "note": REFERENCE_NOTE,
                    "label": f"{name} (reference, {fmt_num(cfg['dim'])}-wide, {cfg['n_layers']} layer"
                             f"{'s' if cfg['n_layers'] != 1 else ''}, {cfg['vocab_size']} tokens)",
                    "bpc": None, "bpc_text": "n/a (not trained on stories)",
                    "runtimes": [r for r in runtimes if r],
                    "encoder": golden["text"]["encoder"], "prompt_text": golden["prompt_text"],
                    "prompt_ids": golden["prompt_ids"]})
    return sorted(out, key=lambda m: not m["runtimes"][0]["tokens_per_s"])   # measured first


def _bpc_interval(results_dir: Path, variant_id: str) -> tuple[float, float] | None:
    """The 95 % interval over seeds of the variant's configuration in study v2 (base tier), if it has one."""
    try:
        from ..analysis import seeds
        runs = seeds.load_study(results_dir)
        if "tier" in runs:
            runs = runs[runs["tier"] == "base"]
        summ = seeds.seed_summary(runs)
    except Exception:   # noqa: BLE001 - no study v2 table: no interval
        return None
    for r in summ.to_dict("records"):
        mine = r.get("name") == variant_id or variant_id in variant_id_list(r.get("variant_ids"))
        if mine and _num(r.get("bpc_mean_ci_low")) is not None:
            return float(r["bpc_mean_ci_low"]), float(r["bpc_mean_ci_high"])
    return None


def committed_bpc(results_dir: Path, row: dict) -> tuple[float, str]:
    """The bpc of a committed export's model and its text: the Study v2 configuration's mean over seeds
    (same tier, rate, budget) with its 95 % interval when the table has >= 2 seeds, else the run's own
    whole-split bpc and story interval; float model, whole validation split (the file: that seed, int8)."""
    from ..quant.export import BPC_LABEL, seed_stats
    from ..training.study import results_table
    stats = {k: row.get(k) for k in ("n_seeds", "bpc_mean", "bpc_mean_ci_low", "bpc_mean_ci_high")}
    try:   # the table as it is now (more seeds may have finished since the export)
        runs = results_table(results_dir).rows()
        if any(r.get("run_key") == row.get("run_key") for r in runs):
            stats = seed_stats(runs, row)
    except Exception:   # noqa: BLE001 - no study table: the values recorded at export
        pass
    tail = f"{BPC_LABEL}; this file: seed {row.get('seed')}, int8"
    q = lambda x: fmt_quantity(x, "bpc", unit=False)  # noqa: E731
    if (stats.get("n_seeds") or 0) >= 2 and _num(stats.get("bpc_mean")) is not None:
        bpc = float(stats["bpc_mean"])
        return bpc, (f"{fmt_quantity(bpc, 'bpc')} (mean of {stats['n_seeds']} seeds, 95 % interval "
                     f"{q(stats['bpc_mean_ci_low'])}–{q(stats['bpc_mean_ci_high'])}; {tail})")
    bpc = float(row["bpc"])
    return bpc, (f"{fmt_quantity(bpc, 'bpc')} (one seed, 95 % story interval {q(row['bpc_ci_low'])}–"
                 f"{q(row['bpc_ci_high'])}; {tail})")


def _c_runtime(points, variant_id: str, weights_in: str | None) -> dict:
    rows = points[(points["variant_id"] == variant_id) & (points["runtime_kind"] == "c")]
    if weights_in is None and (rows["weights_in"] == "flash").any():   # not recommended: weights in flash
        weights_in = "flash"
    if weights_in is not None:
        rows = rows[rows["weights_in"] == weights_in]
    if rows.empty:
        return UNMEASURED_C
    row = rows.sort_values("bpc").iloc[0]
    label = C_LABEL.replace("weights in flash", f"weights in {row['weights_in']}")
    return _runtime("c", row["tokens_per_s"], row["peak_ram_bytes"], row["flash_bytes"], label) or UNMEASURED_C


def _mp_point_runtime(points, variant_id: str) -> dict | None:
    mp = points[(points["variant_id"] == variant_id) & (points["runtime_kind"] == "micropython")]
    mp = mp[mp["speed_source"].astype(str).str.contains("measured|emulated_stock", regex=True)]   # not predicted
    if mp.empty:
        return None
    m = mp.iloc[0]
    return _runtime("micropython", m["tokens_per_s"], m.get("peak_ram_bytes"), m.get("flash_bytes"),
                    str(m.get("runtime_label") or "MicroPython, emulated stock firmware (cycle-counted)"))


def study_models(results_dir: Path, runs_dir: Path, byte_budget: int = STUDY_BUDGET_BYTES,
                 models_dir: Path | None = None) -> tuple[list[dict], list[str]]:
    """Chapter 07's recommended C models whose exported files exist (and load as format v2): the committed
    export (``models_dir``) first, else ``<runs_dir>/smd``; then the other committed exports."""
    import pandas as pd
    from ..analysis import pareto, tables as an
    from ..analysis.seeds import load_study_variants
    from ..quant.export import committed_row
    from ..quant.smd import read_smd
    models_dir = Path(models_dir or MODELS_DIR)
    try:
        variants, _ = load_study_variants(results_dir)   # what chapter 07 recommends from
        quant = an.load_quant(results_dir, required=False)
        points = an.device_points(variants, an.load_device_runs(results_dir), quant)
    except Exception as exc:   # noqa: BLE001 - no tables: reference models only
        return [], [f"no recommendations ({exc})"]
    points = points[points["speed_source"] != "host_timing_not_representative"]
    rec = pareto.recommend(points, [tuple(b) for b in BUDGETS])
    rec = rec[(rec["runtime_kind"] == "c") & rec["variant_id"].notna()].drop_duplicates("variant_id")
    wanted = [(r.variant_id, r.weights_in, r.budget, float(r.bpc)) for r in rec.itertuples()]
    wanted += [(p.stem, None, None, None) for p in sorted(Path(models_dir).glob("*.smd"))
               if p.stem not in set(rec["variant_id"])]
    out, skipped, used = [], [], 0
    for vid, weights_in, budget, rec_bpc in wanted:
        committed, local = Path(models_dir) / f"{vid}.smd", Path(runs_dir) / "smd" / f"{vid}.smd"
        path = committed if committed.exists() else local
        if not path.exists():
            skipped.append(f"{vid}: no exported file {_rel(committed)} or {_rel(local)}")
            continue
        try:
            model = read_smd(path)
            prov = committed_row(path) if path == committed else None
        except Exception as exc:   # noqa: BLE001
            skipped.append(f"{vid}: {_rel(path)}: {exc}")
            continue
        if model.version < 2 or not model.can_encode:
            skipped.append(f"{vid}: {_rel(path)} has no encoder (format v{model.version})")
            continue
        if path == committed and prov is None:
            skipped.append(f"{vid}: {_rel(path)} has no provenance row (sha256) in {_rel(Path(models_dir) / 'models.jsonl')}; "
                           "export it with `python -m starmind_lib.quant.export`")
            continue
        if used + path.stat().st_size > byte_budget:
            skipped.append(f"{vid}: {path.stat().st_size:,} bytes, over the widget's size budget")
            continue
        used += path.stat().st_size
        if prov is not None:
            bpc, bpc_text = committed_bpc(results_dir, prov)
        else:   # chapter 05's export of the sweep's model: the bpc chapter 07 shows for it
            interval = _bpc_interval(results_dir, vid)
            bpc, bpc_text = rec_bpc, fmt_quantity(rec_bpc, "bpc") + (
                f" (95 % seed interval {fmt_num(interval[0])}–{fmt_num(interval[1])})" if interval
                else " (one seed: no interval)")
        note = f"recommended for {budget}" if budget else "a Study v2 model (not a recommendation in today's tables)"
        if prov is not None:
            note += f"; the file is Study v2 run {prov['run_key']} (seed {prov['seed']}), int8"
        runtimes = [_c_runtime(points, vid, weights_in), _mp_point_runtime(points, vid)]
        out.append({"id": vid, "kind": "study", "file": path, "committed": prov is not None,
                    "label": f"{vid} ({budget})" if budget else f"{vid} (Study v2)", "note": note,
                    "bpc": bpc, "bpc_text": bpc_text, "runtimes": [x for x in runtimes if x],
                    "encoder": model.text.encoder, "prompt_text": "once upon a time", "prompt_ids": []})
    return out, skipped


def widget_models(results_dir: Path = REPO_ROOT / "data" / "results",
                  runs_dir: Path = REPO_ROOT / "data" / "runs") -> tuple[list[dict], list[str]]:
    study, skipped = study_models(Path(results_dir), Path(runs_dir))
    return study + reference_models(Path(results_dir)), skipped


# ---- the asset and the HTML ------------------------------------------------------------

def asset_text(models: list[dict], wasm: bytes | None, skipped: list[str] = ()) -> str:
    data = {"wasm": base64.b64encode(wasm).decode() if wasm else None,
            "unavailable": None if wasm else "the WebAssembly runtime was not built (clang, lld or wasi-libc "
                                                "missing when the book was built)",
            "skipped": list(skipped),
            "models": [{**{k: v for k, v in m.items() if k != "file"},
                        "file_name": Path(m["file"]).name, "file_path": _rel(Path(m["file"])),
                        "file_bytes": Path(m["file"]).stat().st_size,
                        "smd": base64.b64encode(Path(m["file"]).read_bytes()).decode()} for m in models]}
    glue = (WASM_DIR / "starmind-wasm.js").read_text()
    ui = (WASM_DIR / "starmind-widget.js").read_text()
    return ("/* Generated by starmind_lib.book.widget: models and the wasm runtime as base64 (loads from file://). */\n"
            f"window.STARMIND_WIDGET_DATA = {json.dumps(data, separators=(',', ':'))};\n{glue}\n{ui}\n")


def write_widget_asset(out_dir: Path, results_dir: Path = REPO_ROOT / "data" / "results",
                       runs_dir: Path = REPO_ROOT / "data" / "runs", required: bool = False) -> Path:
    """Build the wasm (if the toolchain is there) and write ``out_dir/starmind-widget.js``."""
    wasm_path = build_wasm(required)
    models, skipped = widget_models(results_dir, runs_dir)
    for s in skipped:
        print(f"[widget] study model left out: {s}", flush=True)
    text = asset_text(models, wasm_path.read_bytes() if wasm_path else None, skipped)
    if len(text.encode()) > MAX_ASSET_BYTES:
        raise WidgetError(f"the widget asset is {len(text.encode()):,} bytes, over its budget of {MAX_ASSET_BYTES:,}")
    out = Path(out_dir) / ASSET_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    print(f"[widget] {out} ({len(text.encode()):,} bytes, {len(models)} models)", flush=True)
    return out


def widget_html(models: list[str] | None = None, compact: bool = False, default: str | None = None) -> str:
    """The snippet that places a widget (the asset mounts it); ``models``: ids to offer (None: all)."""
    attrs = ""
    if models:
        attrs += f' data-models="{",".join(models)}"'
    if default:
        attrs += f' data-default="{default}"'
    if compact:
        attrs += ' data-compact="1"'
    return (f'<div class="starmind-widget"{attrs}><p class="starmind-widget-loading">'
            "The story widget needs JavaScript (it runs the C runtime, compiled to WebAssembly, in this page)."
            "</p></div>")


STANDALONE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Starmind widget</title>
<script src="{asset}"></script></head>
<body><h1>Starmind story widget</h1>
{widget}
<h2>Compact</h2>
{compact}
</body></html>
"""


def write_standalone_page(out_dir: Path, **kw) -> Path:
    """``out_dir/widget.html``: the asset plus a full and a compact widget (for tests and a quick look)."""
    asset = write_widget_asset(out_dir, **kw)
    page = Path(out_dir) / "widget.html"
    atomic_write_text(page, STANDALONE.format(asset=asset.name, widget=widget_html(),
                                              compact=widget_html(compact=True)))
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.book.widget", description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("wasm", "asset", "page"))
    p.add_argument("out", nargs="?", type=Path, default=REPO_ROOT / "build" / "widget")
    p.add_argument("--results-dir", type=Path, default=REPO_ROOT / "data" / "results")
    p.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "data" / "runs")
    p.add_argument("--required", action="store_true", help="fail (instead of skipping) without the toolchain")
    a = p.parse_args(argv)
    try:
        if a.what == "wasm":
            return 0 if build_wasm(a.required) else (1 if a.required else 0)
        fn = write_widget_asset if a.what == "asset" else write_standalone_page
        print(fn(a.out, results_dir=a.results_dir, runs_dir=a.runs_dir, required=a.required))
    except WidgetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
