"""Chapter 06's cycle profile: where the C runtime's cycles go, per phase of the forward pass.

A full-window generation of the ~10K and ~100K study models (weights in SRAM) is profiled per function
on the emulated RP2040; functions are grouped into phases (matrix-vector dot products, requantisation,
attention q.k / softmax / weighted values, RMSNorm, ...) and the dot-product share is reported::

    rows = profile_rows(runs, runs_dir, cfg, profile)     # one row per (model, phase)
    profile_summary(pd.DataFrame(rows))
"""
from __future__ import annotations

from pathlib import Path


from ..provenance import REPO_ROOT, provenance

PROFILE_TARGETS = (10_000, 100_000)       # profile the trained models nearest these sizes
REFERENCE_DIR = REPO_ROOT / "data" / "reference"

MATVEC = "matvec dot products"
DOT_PARTS = (MATVEC, "attention q.k", "attention weighted values")   # the int8 multiply-accumulate loops
FUNCTION_GROUPS = {
    **{k: MATVEC for k in ("sm_linact4_i8_m0", "sm_linactlut4_i8_m0", "sm_linres4_i8_m0", "sm_linlogit4_i8_m0",
                           "sm_dot4_i8_m0", "sm_dot_i8_unroll4")},
    **{k: "requantisation" for k in ("sm_linact4_i8_m0_store", "sm_linactlut4_i8_m0_store",
                                     "sm_linres4_i8_m0_store", "sm_linlogit4_i8_m0_store", "tail_rows")},
    # weights in SRAM: blocks of 8 (4, 2, 1) interleaved rows, their stores, the int8 -> int32 activations
    **{f"sm_lin{m}{k}_i8_m0": MATVEC for m in ("act", "res", "logit", "actlut", "actb") for k in ("8", "4x", "2", "1")},
    **{f"sm_lin{m}{k}_i8_m0_store": "requantisation"
       for m in ("act", "res", "logit", "actlut", "actb") for k in ("8", "4x", "2", "1")},
    "sm_widen_i8_m0": "requantisation",
    "sm_qk4_i8_m0": "attention q.k", "sm_qk4_i8_m0_store": "attention q.k",
    "sm_wsum4_i8_m0": "attention weighted values",
    **{f"sm_wsum{k}_i8_m0": "attention weighted values" for k in ("8", "4x", "2", "1")},
    "sm_softmax_m0": "attention softmax", "sm_softmax_w_m0": "attention softmax", "softmax": "attention softmax",
    "attention": "attention other (output rounding, calls)",
    "rmsnorm": "RMSNorm", "sm_sumsq_m0": "RMSNorm", "sm_rmsn_m0": "RMSNorm", "rope": "rotary embedding", "sm_rope_m0": "rotary embedding",
    "__udivsi3": "division", "__aeabi_uidiv": "division", "__wrap___aeabi_uidiv": "division",
    "sm_sample": "sampling", "greedy": "sampling", "logit_at": "sampling", "count_at_least": "sampling",
    "rng_next": "sampling",
}
LOAD_FUNCTIONS = {"parse_header", "sm_crc32", "mat_ok", "int8_ok", "rq_ok", "range_ok", "int8_values_ok",
                  "bind_tensors", "check_vocab", "expect", "sm_load", "sm_arena_needed", "reset_handler",
                  "memcpy", "memset", "open_file", "plan", "take", "expect_mat", "layer_name", "name_cat",
                  "sm_rom_float_init", "main", "fw_generate", "rom", "interleave"}


def model_file(row: dict, runs_dir: Path) -> Path:
    """The .smd file a run used (the table stores ids, not machine paths)."""
    suffix = ".smd" if row["scheme"] == "int8" else ".f32.smd"
    if row["source"] == "reference":
        return REFERENCE_DIR / f"{row['model_id']}{suffix}"
    return Path(runs_dir) / "device" / f"{row['model_id']}{suffix}"


def profile_models(runs) -> list[tuple[int, dict]]:
    """(target, run row) of the models to profile: for each of PROFILE_TARGETS the study or reference model
    nearest the target within NEAR (:func:`~starmind_lib.bench.device_results.near_target`, the model its
    speed target is judged by), else, without full-window runs, the trained model nearest it."""
    from .device_results import context_speeds, near_target
    base = runs[(runs["scheme"] == "int8") & (runs["weights"] == "flash") & runs["kv_cache"].astype(bool)
                & (runs["status"] == "ok") & runs["source"].isin(["study", "reference"])]
    out, seen = [], set()
    if base.empty:
        return out
    speeds = context_speeds(runs)
    for target in PROFILE_TARGETS:
        near = near_target(speeds, target)
        named = base[base["model_id"] == near["model"]] if near is not None else base.iloc[:0]
        if len(named):
            r = named.iloc[0]
        else:
            r = base.loc[(base["n_params"].astype(float) - target).abs().idxmin()]
        if r["model_id"] not in seen:
            seen.add(r["model_id"])
            out.append((target, r.to_dict()))
    return out


def profile_rows(runs, runs_dir: Path, cfg, profile: str) -> list[dict]:
    """Where the cycles go, phase by phase (FUNCTION_GROUPS), for the ~10K and ~100K models
    (:func:`profile_models`): raw emulator cycles of a full-window generation (a 1-token prompt, then
    max_seq_len tokens), weights in SRAM, without the load-time checks.  ``dot_product`` marks the
    int8 multiply-accumulate loops (DOT_PARTS)."""
    from ..devices.emulated import FW_FLAG_WEIGHTS_IN_SRAM, model_info, profile_functions
    out, prov = [], provenance(profile=profile)
    for target, r in profile_models(runs):
        path = model_file(r, runs_dir)
        T = int(model_info(path)["header"].max_seq_len)
        prof = profile_functions(path, [int(r["prompt_ids"][0])], T, flags=FW_FLAG_WEIGHTS_IN_SRAM)
        work = [p for p in prof if p["function"] not in LOAD_FUNCTIONS]
        total = sum(p["cycles"] for p in work)
        groups: dict[str, int] = {}
        for p in work:
            g = FUNCTION_GROUPS.get(p["function"], "other (embedding, layer loop, calls)")
            groups[g] = groups.get(g, 0) + p["cycles"]
        for g, cyc in sorted(groups.items(), key=lambda kv: -kv[1]):
            out.append({"key": f"{r['model_id']}/{g}", "model_id": r["model_id"], "n_params": int(r["n_params"]),
                        "target": target, "part": g, "dot_product": g in DOT_PARTS, "cycles": cyc,
                        "cycles_per_token": cyc / T, "share": cyc / total, "positions": T, "weights": "sram",
                        **prov})
    return out


def profile_summary(prof):
    """One line per profiled model: the share of the matrix-vector dot products and of all int8
    dot products (matvec + attention q.k + weighted values), cycles per token."""
    import pandas as pd
    if prof is None or not len(prof) or "dot_product" not in prof:
        return pd.DataFrame()
    rows = []
    for (mid, n), g in prof.groupby(["model_id", "n_params"]):
        rows.append({"model_id": mid, "n_params": n,
                     "matvec share": g.loc[g["part"] == MATVEC, "share"].sum(),
                     "dot-product share": g.loc[g["dot_product"].astype(bool), "share"].sum(),
                     "cycles/token": g["cycles_per_token"].sum()})
    return pd.DataFrame(rows).sort_values("n_params")
