"""Chapter 06's C-runtime results as the chapter reads them: the committed tables (``device/c_runs``,
``kernels``, ``cycle_profile``), the per-model summary :mod:`starmind_lib.bench.device` prints, and the speed at
the real context (short context, the whole trained window, a long story with the window restart) with the
"near N parameters" rule the targets are judged by.

    runs, kernels = read_runs(results_dir)
    ctx = context_speeds(runs)            # one row per model, weights in SRAM
    near_target(ctx, 100_000)             # the model nearest 100K parameters within NEAR
"""
from __future__ import annotations

from pathlib import Path

TABLE = ("device", "c_runs")
KERNEL_TABLE = ("device", "kernels")
PROFILE_TABLE = ("device", "cycle_profile")
CONTEXT_TARGETS = {10_000: 1500.0, 100_000: 220.0}   # tokens/s at 133 MHz, weights in SRAM, 64-position mean
NEAR = (0.75, 1.33)                                  # "near N parameters": nearest count within this window

WINDOW_COLUMNS = ("window_positions", "cycles_per_token_full", "cycles_per_token_full_raw", "cycles_per_token_last",
                  "cycles_per_token_last_raw", "tokens_per_s_full_133MHz", "tokens_per_s_full_125MHz",
                  "tokens_per_s_last_133MHz", "tokens_per_s_last_125MHz")
LONG_COLUMNS = ("long_tokens", "cycles_per_token_long", "cycles_per_token_long_raw", "tokens_per_s_long_133MHz",
                "tokens_per_s_long_125MHz")


# How optimistic rp2040js may be against a real RP2040: 3-8 % on MicroPython micro-benchmarks (the firmware
# image's SOURCE.md; the C runtime's own error is not measured), so a target met by less than this is met
# in emulation only.
EMULATOR_OPTIMISM = 0.08


def target_verdict(value: float, goal: float, optimism: float = EMULATOR_OPTIMISM) -> str:
    """'met' / 'missed' for a speed target in emulation; a margin smaller than the emulator's known optimism
    says so: 'met in emulation by 3.5 % only, less than the emulator's 3-8 % optimism ...: a real Pico may miss
    it'."""
    if value != value:
        return "no figure to judge"
    if value < goal:
        return "missed"
    margin = value / goal - 1
    if margin < optimism:
        return (f"met in emulation by {100 * margin:.1f} % only, less than the emulator's 3-8 % optimism on "
                "MicroPython benchmarks: a real Pico may miss it")
    return "met"


# Columns only study variants have; a table of reference models and probes alone gets them empty.
STUDY_COLUMNS = ("axis", "group", "budget", "bpc", "tokenizer", "is_synthetic", "trained")


def read_profile(results_dir):
    """The cycle profile table, or an empty frame when the bench had no trained model to profile."""
    import pandas as pd
    path = Path(results_dir).joinpath(*PROFILE_TABLE).with_suffix(".parquet")
    return pd.read_parquet(path) if path.exists() else pd.DataFrame(
        columns=["model_id", "n_params", "target", "part", "cycles", "share"])


def read_runs(results_dir):
    """The committed tables (for recompute = false): (runs, kernels)."""
    import pandas as pd
    out = []
    for stem in (TABLE, KERNEL_TABLE):
        path = Path(results_dir).joinpath(*stem).with_suffix(".parquet")
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run chapter 06 with recompute=true (make bench-device)")
        out.append(pd.read_parquet(path))
    runs = out[0]
    for col in STUDY_COLUMNS + WINDOW_COLUMNS + LONG_COLUMNS + ("window_matches_reference", "long_matches_reference",
                                                                "weights_source"):
        if col not in runs:
            runs[col] = None
    return runs, out[1]


def summary(df):
    """One line per model: int8 tokens/s from flash and SRAM at 133 MHz (short context), and weights
    in SRAM over the whole window at 133 and 125 MHz (mean over the positions, and the last one),
    peak SRAM, fit."""
    import pandas as pd
    base = df[(df["scheme"] == "int8") & df["kv_cache"].astype(bool)]
    piv = base.pivot_table(index=["model_id", "source", "n_params"], columns="weights",
                           values="tokens_per_s_133MHz", aggfunc="first")
    status = base[base["weights"] == "flash"].set_index("model_id")["status"]
    ram = base[base["weights"] == "flash"].set_index("model_id")["peak_ram_bytes"]
    out = piv.reset_index().rename(columns={"flash": "tok/s flash", "sram": "tok/s sram"})
    sram = base[base["weights"] == "sram"].set_index("model_id")
    for col, name in (("tokens_per_s_full_133MHz", "sram full@133"), ("tokens_per_s_full_125MHz", "sram full@125"),
                      ("tokens_per_s_last_133MHz", "sram last@133"), ("tokens_per_s_last_125MHz", "sram last@125"),
                      ("tokens_per_s_long_133MHz", "sram long@133"), ("tokens_per_s_long_125MHz", "sram long@125")):
        if col in sram and sram[col].notna().any():     # tables from before the full-window runs lack them
            out[name] = out["model_id"].map(sram[col])
    out["status"] = out["model_id"].map(status)
    out["peak SRAM KB"] = out["model_id"].map(ram) / 1024
    return pd.DataFrame(out).sort_values("n_params")


def context_speeds(runs):
    """Speed at the real context, one row per model (int8, KV cache, weights in SRAM): the short-context
    figure (n_prompt + n_tokens), the mean over the whole trained window and its last position, and the
    long generation with the window restart, at 133 and 125 MHz; models without a full-window run are left out."""
    import pandas as pd
    sram = runs[(runs["scheme"] == "int8") & runs["kv_cache"].astype(bool) & (runs["weights"] == "sram")
                & (runs["status"] == "ok")]
    sram = sram[sram["tokens_per_s_full_133MHz"].notna()]
    cols = {"model_id": "model", "source": "source", "n_params": "parameters",
            "tokens_per_s_133MHz": "short @133", "tokens_per_s_full_133MHz": "window mean @133",
            "tokens_per_s_full_125MHz": "window mean @125", "tokens_per_s_last_133MHz": "last @133",
            "tokens_per_s_long_133MHz": "story @133", "tokens_per_s_long_125MHz": "story @125"}
    out = sram[[c for c in cols if c in sram]].rename(columns=cols)
    return pd.DataFrame(out).sort_values("parameters").reset_index(drop=True)


def in_window(speeds, target: int):
    """The study and reference models within NEAR of ``target`` parameters (the context table's rows)."""
    lo, hi = NEAR
    return speeds[speeds["source"].isin(["study", "reference"]) & (speeds["parameters"] >= lo * target)
                  & (speeds["parameters"] <= hi * target)]


def near_target(speeds, target: int):
    """The study or reference model nearest ``target`` parameters within NEAR (ties: the faster), or None."""
    cand = in_window(speeds, target)
    if cand.empty:
        return None
    cand = cand.assign(_d=(cand["parameters"] - target).abs())
    return cand.sort_values(["_d", "window mean @133"], ascending=[True, False]).iloc[0]


def best_near(runs, target: int, col: str = "tokens_per_s_133MHz"):
    """The study or reference model nearest ``target`` parameters within NEAR, and its fastest run, from the
    C runs table (``n_params``, ``source``, ``col``); None when none is in the window."""
    lo, hi = NEAR
    near = runs[(runs["n_params"] >= lo * target) & (runs["n_params"] <= hi * target)
                & runs["source"].isin(["study", "reference"])]
    if not len(near):
        return None
    near = near.assign(_dist=(near["n_params"] - target).abs()).sort_values(["_dist", col], ascending=[True, False])
    return near.iloc[0]


# Chapter 06's isolated settings: each changed alone against the int8 / flash / KV-cache run of the same model.
ISOLATED = {"KV cache off": ("int8", "flash", False), "float32, flash": ("float32", "flash", True),
            "float32, SRAM": ("float32", "sram", True), "int8, SRAM": ("int8", "sram", True)}


def reference_runs(ok):
    """The int8 / flash / KV-cache runs (chapter 06's reference setting) of the successful C runs."""
    return ok[(ok["scheme"] == "int8") & (ok["weights"] == "flash") & ok["kv_cache"]]


def isolated_speedups(ok):
    """Per model and isolated setting: its tokens/s over the same model's reference run."""
    import pandas as pd
    ref = reference_runs(ok).set_index("model_id")["tokens_per_s_133MHz"]
    rows = []
    for label, (scheme, weights, kv) in ISOLATED.items():
        sub = ok[(ok["scheme"] == scheme) & (ok["weights"] == weights) & (ok["kv_cache"] == kv)]
        rows += [{"model_id": r.model_id, "n_params": r.n_params, "setting": label,
                  "speedup": r.tokens_per_s_133MHz / ref[r.model_id]}
                 for r in sub.itertuples() if r.model_id in ref.index]
    return pd.DataFrame(rows, columns=["model_id", "n_params", "setting", "speedup"])


def isolated_glue_name(label: str) -> str:
    return "iso_" + label.replace(", ", "_").replace(" ", "_").lower()


def speed_hierarchy(base, labels: dict | None = None):
    """Hyperparameters ranked by speed effect at a fixed budget: within each fixed-budget group of the study's
    reference runs, the fastest over the slowest model; per axis the median and largest ratio and the groups."""
    import numpy as np
    fixed = base[base["source"].eq("study") & base["budget"].notna()]
    spread = (fixed.groupby(["axis", "group"])["tokens_per_s_133MHz"]
              .agg(lambda s: s.max() / s.min() if len(s) > 1 else np.nan).dropna().rename("spread").reset_index())
    hier = (spread.groupby("axis")["spread"].agg(["median", "max", "count"]).sort_values("median", ascending=False)
            .reset_index().rename(columns={"median": "median fastest/slowest", "max": "largest ratio",
                                           "count": "groups"}))
    hier["axis"] = hier["axis"].map(lambda a: (labels or {}).get(a, a).replace("budget: ", ""))
    return hier
