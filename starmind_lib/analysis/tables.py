"""Chapter 07: one table of every model on every runtime, its Pareto front, and recommendations.

Later stages reach earlier ones only through their result tables, so this module
starts with small loaders that read a table, map the column names its producer
uses onto the names used here, and fail with a message that says which table or
column is missing and which notebook makes it::

    variants = load_variants("data/results")          # one row per trained model
    runs = load_runs("data/results", "c")             # RunRecords of the C runtime
    points = device_points(variants, runs, load_quant("data/results", required=False))
    front = points[front_mask(points, minimize=["bpc", "peak_ram_bytes"], maximize=["tokens_per_s"])]
    recommend(points, budgets=[(64, 5.0), (200, 1.0)])
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

# Where each table lives under results_dir (the first stem that exists wins), and which notebook writes it.
TABLES = {
    "stats": (("data/stats",), "01 (data)"),
    "tokenizers": (("tokenizers/tokenizers",), "02 (tokenizers)"),
    "variants": (("sweep/variants",), "04 (sweep)"),
    "gpu_single": (("sweep/gpu_single",), "04 (sweep; scripts/run_study_gpu.sh with one worker)"),
    "quant": (("quant/quant",), "05 (quantisation)"),
    "c_runs": (("device/c_runs",), "06 (device runs)"),
    "micropython_runs": (("device/micropython_runs",), "06 (device runs)"),
    "predictions": (("device/predictions", "device/planner", "device/micropython_predictions"),
                    "06 (device runs)"),
}

# Canonical column name -> names a producer may use for it (first match wins).
ALIASES = {
    "variant_id": ["variant_id", "model_id", "variant", "model", "name"],
    "val_bpc": ["val_bpc", "bpc", "val_bits_per_char", "bits_per_char"],
    "params": ["params", "n_params", "param_count", "num_params"],
    "wall_s": ["wall_s", "train_wall_s", "wall_time_s", "wall_time", "train_seconds", "seconds"],
    "tokens_trained": ["tokens_trained", "train_tokens", "tokens"],
    "sample": ["sample", "sample_text", "samples", "generated"],
    "tokens_per_s": ["tokens_per_s", "tokens_per_s_133MHz", "tok_per_s", "predicted_tokens_per_s"],
    "tokens_per_s_raw": ["tokens_per_s_raw", "tokens_per_s_raw_133MHz"],
    "chars_per_s": ["chars_per_s", "chars_per_s_133MHz", "char_per_s", "predicted_chars_per_s"],
    "peak_ram_bytes": ["peak_ram_bytes", "peak_sram_bytes", "ram_bytes", "predicted_peak_ram_bytes",
                       "peak_alloc_bytes", "heap_needed_bytes", "model_heap_bytes"],
    "flash_bytes": ["flash_bytes", "size_bytes", "model_bytes", "bytes"],
    "scheme": ["scheme", "quant", "quant_scheme", "precision", "dtype"],
    "kv_cache": ["kv_cache", "use_kv_cache", "kv"],
    "weights_in": ["weights_in", "weights", "weight_memory", "weights_location", "weights_mem"],
}
MODEL_FIELDS = ("vocab_size", "dim", "n_layers", "n_heads", "ffn_hidden")


class MissingResult(FileNotFoundError):
    """A result table (or a column of it) that this chapter needs does not exist yet."""


def _table_path(results_dir: str | Path, name: str) -> Path:
    """The stem of table ``name``: the first candidate with a file, else the first candidate."""
    if name not in TABLES:
        raise KeyError(f"unknown result table {name!r}; known: {', '.join(TABLES)}")
    stems = [Path(results_dir) / s for s in TABLES[name][0]]
    for stem in stems:
        if any(stem.with_suffix(x).exists() for x in (".parquet", ".jsonl")):
            return stem
    return stems[0]


def _read_jsonl(path: Path) -> pd.DataFrame:
    """A JSONL journal as it is: provenance timestamps stay text (a Timestamp cell cannot go into a
    chart spec, and pandas' date guessing is not wanted); a torn last line (a crash) is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return pd.DataFrame(rows)


def read_table(results_dir: str | Path, name: str, chapter: str = "07") -> pd.DataFrame:
    """The table ``name`` from its parquet snapshot or JSONL journal, in that order."""
    stem = _table_path(results_dir, name)
    for suffix, reader in ((".parquet", pd.read_parquet), (".jsonl", _read_jsonl)):
        path = stem.with_suffix(suffix)
        if path.exists() and path.stat().st_size:
            return reader(path)
    raise MissingResult(f"chapter {chapter} needs {stem}.parquet: run `make study` or the "
                        f"{TABLES[name][1]} notebook")


def canonical(df: pd.DataFrame, names: Iterable[str] = ALIASES) -> pd.DataFrame:
    """Rename the first alias present of each canonical column to its canonical name."""
    df = df.copy()
    for name in names:
        if name in df.columns:
            continue
        for alias in ALIASES.get(name, []):
            if alias in df.columns:
                df[name] = df[alias]
                break
    return df


def require_columns(df: pd.DataFrame, columns: Sequence[str], table: str, results_dir="",
                    chapter: str = "07") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        where = _table_path(results_dir, table) if table in TABLES else table
        raise MissingResult(f"chapter {chapter} needs column(s) {', '.join(map(repr, missing))} in {where} "
                            f"(it has: {', '.join(map(str, df.columns))})")


def _as_dict(value) -> dict:
    """A config cell: a dict, JSON text, or nothing."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return {}
    return {}


def _find_field(cfg: dict, name: str):
    """``name`` at the top of a (possibly nested) config, else in a nested section such as ``model``."""
    if name in cfg:
        return cfg[name]
    for sub in cfg.values():
        if isinstance(sub, dict):
            found = _find_field(sub, name)
            if found is not None:
                return found
    return None


def expand_json_column(df: pd.DataFrame, column: str, fields: Iterable[str]) -> pd.DataFrame:
    """Copy ``fields`` out of a JSON/dict column into their own columns (existing columns win)."""
    if column not in df.columns:
        return df
    df = df.copy()
    cfgs = df[column].map(_as_dict)
    for name in fields:
        values = cfgs.map(lambda c: _find_field(c, name))
        if name in df.columns:
            df[name] = df[name].where(df[name].notna(), values)
        elif values.notna().any():
            df[name] = values
    return df


def load_variants(results_dir, chapter: str = "07") -> pd.DataFrame:
    """The sweep: one row per trained model with its quality, size and architecture."""
    df = canonical(read_table(results_dir, "variants", chapter))
    df = expand_json_column(df, "config", MODEL_FIELDS + ("activation", "tokenizer", "family"))
    require_columns(df, ["variant_id", "val_bpc", "params"], "variants", results_dir, chapter)
    if "ffn_hidden" in df.columns and "dim" in df.columns:
        df["ffn_ratio"] = df["ffn_hidden"] / df["dim"]
    return df


def load_quant(results_dir, chapter: str = "07", required: bool = True) -> pd.DataFrame | None:
    try:
        df = canonical(read_table(results_dir, "quant", chapter))
    except MissingResult:
        if required:
            raise
        return None
    require_columns(df, ["variant_id", "scheme"], "quant", results_dir, chapter)
    if "variant_ids" in df.columns:     # a Study v2 run stands for every variant of its configuration
        from ..training.plan import variant_id_list
        df = df.assign(variant_id=[variant_id_list(i, v) for i, v in zip(df["variant_ids"], df["variant_id"])])
        df = df.explode("variant_id")
        df = df[df["error"].fillna("") == ""] if "error" in df.columns else df
    return df.reset_index(drop=True)


RUN_TABLES = {"c": "c_runs", "micropython": "micropython_runs", "predicted": "predictions"}


def planner_config(row: dict) -> dict:
    """A sweep row as the planner's architecture dict (the window is the training seq_len if not stored)."""
    from ..devices import planner
    cfg = {**_as_dict(row.get("config")), **{k: row[k] for k in planner.ARCH_FIELDS if k in row and pd.notna(row[k])}}
    cfg.setdefault("max_seq_len", cfg.get("seq_len", 128))
    return cfg


def macs_per_token(variants: pd.DataFrame) -> dict:
    """variant_id -> multiply-accumulates per generated token (the planner's operation count)."""
    from ..devices import planner
    out = {}
    for r in variants.to_dict("records"):
        try:
            out[r["variant_id"]] = planner.op_counts(planner_config(r))["macs"]
        except (ValueError, KeyError):
            continue
    return out


def planner_predictions(variants: pd.DataFrame, runtimes=("micropython-viper", "micropython-python")) -> pd.DataFrame:
    """MicroPython on a stock Pico, predicted by chapter 06's planner from each model's architecture."""
    from ..devices import planner
    rows = []
    for r in variants.to_dict("records"):
        cfg = planner_config(r)
        try:
            plan = planner.plan_memory(cfg)
        except (ValueError, KeyError):   # an architecture the MicroPython runtime cannot describe: no prediction
            continue
        for rt in runtimes:
            sp = planner.predict_speed(cfg, rt)
            rows.append({"variant_id": r["variant_id"], "runtime": rt, "board": "stock Pico (planner)",
                         "status": "ok" if plan.fits else "does_not_fit", "message": plan.reason,
                         "tokens_per_s": sp.tokens_per_s, "tokens_per_s_low": sp.tokens_per_s_low,
                         "tokens_per_s_high": sp.tokens_per_s_high, "peak_ram_bytes": plan.total_bytes,
                         "largest_alloc_bytes": plan.largest_tensor_bytes})
    return pd.DataFrame(rows)


def loader_predictions(variants: pd.DataFrame) -> pd.DataFrame:
    """Chunked (one tensor per read) vs whole-file loading on a stock Pico's heap, predicted by the planner.

    The whole-file loader needs the model's bytes as ONE block, which a fragmented heap must provide
    (the planner's largest-block budget); the chunked loader's largest allocation is the largest tensor.
    """
    from ..devices import planner
    rows = []
    for r in variants.to_dict("records"):
        cfg = planner_config(r)
        try:
            plan = planner.plan_memory(cfg)
        except (ValueError, KeyError):
            continue
        block_budget = int(plan.heap_free_bytes * (1 - planner.FRAGMENTATION_RESERVE)) - plan.runtime_bytes
        whole_fits = plan.total_bytes <= plan.heap_free_bytes and plan.weights_bytes <= block_budget
        for loader, fits, largest in (("chunked", plan.fits, plan.largest_tensor_bytes),
                                      ("whole", whole_fits, plan.weights_bytes)):
            rows.append({"variant_id": r["variant_id"], "loader": loader, "runtime": "micropython-viper",
                         "status": "ok" if fits else "out_of_memory", "largest_alloc_bytes": largest,
                         "largest_block_budget_bytes": block_budget, "speed_source": "predicted",
                         "tokens_per_s": float("nan"), "runtime_kind": "micropython"})
    return pd.DataFrame(rows)


def load_runs(results_dir, kind: str, chapter: str = "07", required: bool = True) -> pd.DataFrame | None:
    """RunRecords of one runtime kind ('c', 'micropython' or 'predicted'), ``extra`` spread into columns.

    Predictions come from a stored planner table if there is one, else from the planner applied to the sweep.
    """
    try:
        df = read_table(results_dir, RUN_TABLES[kind], chapter)
    except MissingResult:
        df = None
        if kind == "predicted":
            try:
                df = planner_predictions(load_variants(results_dir, chapter))
            except MissingResult:
                pass
        if df is None or df.empty:
            if required:
                raise
            return None
    if "extra" in df.columns:
        extra = df["extra"].map(_as_dict)
        for key in sorted({k for e in extra for k in e}):
            if key not in df.columns:
                df[key] = extra.map(lambda e: e.get(key))
    if kind == "predicted":
        df = _long_predictions(df)
        df["speed_source"] = "predicted"
    if kind == "micropython" and "runtime_sha256_16" in df.columns:
        # the journal keeps every runtime's rows as history: the working tree's runtime's rows, one per job
        from ..devices.measure import current_rows
        current = current_rows(df.to_dict("records"))
        if current:
            df = pd.DataFrame(current)
    df = canonical(df)
    if kind == "micropython" and "heap_free_after_load" in df.columns:
        # RAM as chapter 06 counts C's (the whole program): all SRAM but the heap left free once the model is
        # loaded (firmware, interpreter, runtime, model and buffers; generation allocates nothing more per token)
        from ..devices.emulated import SRAM_BYTES
        df["peak_ram_bytes"] = SRAM_BYTES - pd.to_numeric(df["heap_free_after_load"], errors="coerce")
    if "scheme" not in df.columns and "runtime" in df.columns:
        # The C runtime names its precision in the runtime ("c-int8", "c-float32").
        df["scheme"] = df["runtime"].astype(str).str.extract(r"^c-(\w+)$", expand=False)
    if kind == "predicted":
        if "status" not in df.columns and "fits" in df.columns:
            df["status"] = df["fits"].map(lambda f: "ok" if bool(f) else "does_not_fit")
    require_columns(df, ["variant_id", "status", "tokens_per_s"], RUN_TABLES[kind], results_dir, chapter)
    df["runtime_kind"] = kind if kind != "predicted" else "micropython"
    return speed_sources(df)


def unrun_predictions(predictions: pd.DataFrame | None, mp_runs: pd.DataFrame | None) -> pd.DataFrame | None:
    """The planner's predictions of the models that no MicroPython run tried on a Pico, emulated or real
    (whatever its status: a model that ran out of memory has no prediction that it fits, either)."""
    if predictions is None or mp_runs is None or mp_runs.empty:
        return predictions
    tried = mp_runs[mp_runs.get("speed_source", pd.Series("", index=mp_runs.index))
                    .isin(["emulated_stock_firmware", "measured_hardware"])]
    ids = set(predictions["variant_id"].astype(str))
    ran = {_model_key(str(n), ids) for n in tried["variant_id"]}
    return predictions[~predictions["variant_id"].astype(str).isin(ran)]


def load_device_runs(results_dir, chapter: str = "07") -> pd.DataFrame | None:
    """Chapter 06's C runs, chapter 06b's MicroPython runs, and the planner's predictions for the models
    neither ran (``unrun_predictions``): a prediction never stands beside a run of the same model."""
    c, mp, pred = (load_runs(results_dir, k, chapter, required=False) for k in ("c", "micropython", "predicted"))
    frames = [f for f in (c, mp, unrun_predictions(pred, mp)) if f is not None and not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else None


# What the emulated Pico models, said once wherever its numbers appear (chapters 06-08, README).
EMULATION_NOTE = ("Emulated speeds are cycle-counted: rp2040js applies a per-instruction timing model of the "
                  "Cortex-M0+, at 133 MHz for the C runtime and at the stock firmware's 125 MHz for MicroPython. It "
                  "does not model the XIP flash cache, bus contention or the second core. Against a real RP2040 "
                  "it is 3 to 8 % optimistic on public MicroPython micro-benchmarks (integer, float, loops), except "
                  "big-integer arithmetic (32 % faster), as measured by whoever built the shared firmware image (its "
                  "`SOURCE.md`), not by this project; the C runtime's error against a real board is not measured.")
XIP_NOTE = ("With weights in flash, the cycle counts add the project's XIP cache model: 16 KB, two-way, "
            "8-byte lines, LRU, a fixed 60-cycle penalty per miss (quad-I/O continuous read at clk_sys/2); "
            "the raw figure without it is shown beside.")


def speed_sources(df: pd.DataFrame) -> pd.DataFrame:
    """Say how each emulated speed was obtained. Rows that name the source by its older name
    (``cycle_exact_emulation``) are read as ``cycle_counted_emulation``, or, for weights read through
    flash whose cycles include the XIP miss model, ``emulation_xip_model`` (the tables are not edited:
    the mapping is applied when they are read)."""
    if "speed_source" not in df.columns:
        return df
    df = df.copy()
    src = df["speed_source"].astype(str)
    legacy = src.eq("cycle_exact_emulation") | src.eq("cycle_counted_emulation")
    flash = df["weights_in"].astype(str).str.lower().eq("flash") if "weights_in" in df.columns else False
    modelled = pd.Series(False, index=df.index)
    if "cycles_per_token_raw" in df.columns and "cycles_per_token" in df.columns:
        modelled = df["cycles_per_token_raw"].notna() & (df["cycles_per_token"] > df["cycles_per_token_raw"])
    df.loc[legacy, "speed_source"] = "cycle_counted_emulation"
    df.loc[legacy & flash & modelled, "speed_source"] = "emulation_xip_model"
    return df


def _long_predictions(df: pd.DataFrame) -> pd.DataFrame:
    """The planner's wide rows (``tokens_per_s_<runtime>`` columns) as one row per model and runtime."""
    speed_cols = [c for c in df.columns if c.startswith("tokens_per_s_")
                  and not c.startswith(("tokens_per_s_low_", "tokens_per_s_high_"))]
    if "tokens_per_s" in df.columns or not speed_cols:
        return df
    rest = df.drop(columns=[c for c in df.columns if c.startswith("tokens_per_s_")])
    frames = []
    for col in speed_cols:
        runtime = col[len("tokens_per_s_"):]
        frame = rest.assign(runtime=runtime, tokens_per_s=df[col])
        for bound in ("low", "high"):
            if f"tokens_per_s_{bound}_{runtime}" in df.columns:
                frame[f"tokens_per_s_{bound}"] = df[f"tokens_per_s_{bound}_{runtime}"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def sample_text(value, max_chars: int = 240) -> str:
    """One story from a samples cell (text, or [{prompt, mode, text}] as a list or JSON): a sampled one first."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, (list, tuple)):
        items = [v for v in value if isinstance(v, dict)]
        sampled = [v for v in items if v.get("mode") != "greedy"] or items
        value = sampled[0].get("text", "") if sampled else (value[0] if value else "")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)[:max_chars]


def _token_ids(value) -> list[int]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return []
    return [int(i) for i in value] if value is not None and hasattr(value, "__iter__") else []


def attach_device_text(points: pd.DataFrame, runs_dir) -> pd.DataFrame:
    """Decode each run's prompt + generated ids with its model file's vocabulary into ``text``, where the
    exported model (``<runs_dir>/device/<id>.smd``) is still there; other rows keep what they had. A run whose
    ``weights_source`` is not "trained" (an untrained stand-in timed for speed) gets no text."""
    from ..quant.smd import read_smd
    from ..provenance import REPO_ROOT
    vocabs: dict[str, list[bytes] | None] = {}

    def vocab_of(model_id: str):
        if model_id not in vocabs:
            paths = [Path(runs_dir) / "device" / f"{model_id}.smd",
                     REPO_ROOT / "data" / "reference" / f"{model_id}.smd"]
            path = next((p for p in paths if p.is_file()), None)
            vocabs[model_id] = read_smd(path).vocab if path else None
        return vocabs[model_id]

    def decode(row) -> str | None:
        ws = row.get("weights_source")
        if isinstance(ws, str) and ws != "trained":   # a speed run of untrained weights: its text is no story
            return None
        vocab = vocab_of(str(row["variant_id"]))
        ids = _token_ids(row.get("prompt_ids")) + _token_ids(row.get("output_ids"))
        if vocab is None or not ids or max(ids) >= len(vocab):
            return row.get("text") if isinstance(row.get("text"), str) and row.get("text") else None
        return b"".join(vocab[i] for i in ids).decode("utf-8", "replace")

    if points.empty or "output_ids" not in points.columns:
        return points
    return points.assign(text=points.apply(decode, axis=1))


SPEED_KINDS = {"measured_hardware": "measured on a Pico", "cycle_exact_emulation": "emulated (cycle-counted)",
               "cycle_counted_emulation": "emulated (cycle-counted)",
               "emulation_xip_model": "emulated (cycle-counted) + XIP miss model",
               "emulated_stock_firmware": "stock firmware, emulated (cycle-counted)",
               "predicted": "predicted", "host_timing_not_representative": "virtual board (host timing)"}


def speed_kind(source) -> str:
    """A speed_source in words ("stock firmware, emulated (cycle-counted)"), for tables and legends."""
    return SPEED_KINDS.get(source, "" if source is None or source != source else str(source))


def run_label(row) -> str:
    """Which runtime a speed comes from and how it was obtained, for tables and legends."""
    return f"{row.get('runtime', row.get('runtime_kind', '?'))}, {speed_kind(row.get('speed_source'))}"


def _model_key(name: str, variant_ids: set) -> str:
    """Map a run's model name (maybe '<variant>-int8' or '<variant>/int8') onto its sweep variant."""
    if name in variant_ids:
        return name
    for sep in ("-", "/", "_", ".", ":"):
        head = name.rsplit(sep, 1)[0]
        if head in variant_ids:
            return head
    return name


def device_points(variants: pd.DataFrame, runs: pd.DataFrame, quant: pd.DataFrame | None = None,
                  ok_only: bool = True, trained_only: bool = True,
                  chars_per_token: dict[str, float] | None = None) -> pd.DataFrame:
    """Each run joined to its model: quality (bpc of that precision when known), size and speed.

    ``trained_only``: keep only runs of sweep models (they have a quality); otherwise runs of models
    outside the sweep (reference models, untrained size probes) stay, with their own architecture
    columns and no bpc: they still say what fits and how fast it runs.
    ``chars_per_token`` (tokenizer spec -> characters per token on the validation split): characters per
    second are tokens per second times that, for every model whose tokenizer it knows, rather than the
    characters of the run's own generated tokens (which say nothing for an untrained stand-in).
    """
    runs = runs.copy()
    ids = set(variants["variant_id"])
    runs["variant_id"] = runs["variant_id"].astype(str).map(lambda n: _model_key(n, ids))
    if ok_only:
        runs = runs[runs["status"] == "ok"]
    model_cols = [c for c in ["variant_id", "val_bpc", "params", "sample", "ffn_ratio", "unigram_bpc", "axis",
                              "activation", "pos", "tied", "v1_bpc", "bpc_ci_low", "bpc_ci_high", "n_seeds",
                              "config_hash", "bpc_source", "tokenizer_spec", "study_tier", *MODEL_FIELDS]
                  if c in variants.columns]
    points = runs.merge(variants[model_cols], on="variant_id", how="inner" if trained_only else "left",
                        suffixes=("_run", ""))
    for col in model_cols:   # the sweep's value wins; a run of a model outside the sweep keeps its own
        if f"{col}_run" in points.columns:
            points[col] = points[col].where(points[col].notna(), points.pop(f"{col}_run"))
    if "val_bpc" not in points.columns:
        points["val_bpc"] = float("nan")
    if "ffn_hidden" in points.columns and "dim" in points.columns:
        points["ffn_ratio"] = points["ffn_hidden"] / points["dim"]
    points["in_sweep"] = points["variant_id"].isin(ids)
    points["bpc"] = points["val_bpc"]
    points["bpc_of"] = points["in_sweep"].map({True: "float model", False: "not trained in the sweep"})
    if "runtime_kind" in points.columns:   # the MicroPython runtime runs only the int8 engine's files
        mp = points["runtime_kind"].eq("micropython")
        scheme = points["scheme"] if "scheme" in points.columns else pd.Series(float("nan"), index=points.index,
                                                                                 dtype=object)
        points["scheme"] = scheme.where(~mp | scheme.notna(), "int8")
    if quant is not None and "scheme" in points.columns and "val_bpc" in quant.columns:
        from .quant_costs import apply_quant_cost
        apply_quant_cost(points, quant)
    if chars_per_token and "tokenizer_spec" in points.columns and "tokens_per_s" in points.columns:
        cpt = points["tokenizer_spec"].map(chars_per_token)
        known = cpt.notna()
        points.loc[known, "chars_per_s"] = points.loc[known, "tokens_per_s"] * cpt[known]
    points["runtime_label"] = points.apply(run_label, axis=1) if len(points) else pd.Series(dtype=str)
    return points.reset_index(drop=True)
