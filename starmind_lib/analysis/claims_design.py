"""Audit claims 6-9: FFN width, golden-ratio allocations, quantisation cost, the bottleneck."""
from __future__ import annotations

import math

import pandas as pd

from . import pareto, tables as an
from ..numbers import fmt_quantity, fmt_num, fmt_pct, plural
from .audit_base import (CLAIM_TEXT, CONTEXT, GOLDEN, AuditData, Verdict, _bar, _cols, _combine, _fmt,
                         _inconclusive, _runtime_text, _scatter, _times)


def _front_share(v: pd.DataFrame, flag: pd.Series) -> tuple[pd.DataFrame, int, int]:
    front = pareto.pareto_mask(v, minimize=["val_bpc", "params"])
    table = v.assign(on_front=front, flagged=flag)
    return table, int((front & flag).sum()), int((front & ~flag).sum())


def claim_06(data: AuditData, fat_ratio: float = 64, thin_ratio: float = 4) -> Verdict:
    claim = CLAIM_TEXT[6]
    if reason := data.need("variants"):
        return _inconclusive(6, claim, reason)
    v = data.variants
    if "ffn_ratio" not in v.columns:
        return _inconclusive(6, claim, "the sweep table records no FFN size")
    fat, thin = v["ffn_ratio"] >= fat_ratio, v["ffn_ratio"] <= thin_ratio
    if not fat.any() or not thin.any():
        return _inconclusive(6, claim, f"the sweep has no FFN ratio ≥ {fat_ratio:g} (largest: "
                             f"{_fmt(v['ffn_ratio'].max())}) or none ≤ {thin_ratio:g}")
    sub = v[fat | thin]
    table, fat_front, thin_front = _front_share(sub, sub["ffn_ratio"] >= fat_ratio)
    table = _cols(table, ["variant_id", "params", "val_bpc", "ffn_ratio", "on_front"])
    text = (f"On the quality/size front of {fat_front + thin_front} models, {fat_front} have an FFN ≥ "
            f"{fat_ratio:g}x the width (largest tried: {_fmt(v['ffn_ratio'].max())}x) and {thin_front} "
            f"≤ {thin_ratio:g}x.")
    verdict = "supported" if fat_front > thin_front else "refuted" if thin_front > fat_front else "inconclusive"
    fig = _scatter(table, "params", "val_bpc", "ffn_ratio", log_x=True)
    return Verdict(6, claim, text, verdict, table, "training (validation bits per character)", fig)


def is_golden(v: pd.DataFrame, tol: float = 0.05) -> pd.Series:
    """The write-up's allocations: the sweep's own 'golden' axis when it has one, else variants whose
    FFN/width ratio is a power of φ (1 to 3) or whose width and FFN are Fibonacci numbers one or two apart."""
    if "axis" in v.columns:
        return v["axis"].astype(str).eq("golden")
    fib = [1, 2]
    while fib[-1] < 1 << 20:
        fib.append(fib[-1] + fib[-2])
    fib_pairs = set(zip(fib, fib[1:])) | set(zip(fib, fib[2:]))
    ratio = v["ffn_hidden"] / v["dim"]
    by_ratio = pd.concat([(ratio / GOLDEN ** k - 1).abs() <= tol for k in (1, 2, 3)], axis=1).any(axis=1)
    by_fib = pd.Series([(d, h) in fib_pairs for d, h in zip(v["dim"], v["ffn_hidden"])], index=v.index)
    return by_ratio | by_fib


def claim_07(data: AuditData, tol_bpc: float = 0.01) -> Verdict:
    claim = CLAIM_TEXT[7]
    if reason := data.need("variants"):
        return _inconclusive(7, claim, reason)
    v = data.variants
    if not {"dim", "ffn_hidden"} <= set(v.columns):
        return _inconclusive(7, claim, "the sweep table records no width/FFN sizes")
    golden = is_golden(v)
    if not golden.any():
        return _inconclusive(7, claim, "the sweep has no Fibonacci or golden-ratio allocation")
    if golden.all():
        return _inconclusive(7, claim, "every variant is golden: nothing to compare with")
    from .seeds import NO_DIFF, NOT_TESTED, compare_values
    beaten, within = [], 0
    for _, g in v[golden].iterrows():
        better = v[~golden & (v["params"] <= g["params"]) & (v["val_bpc"] < g["val_bpc"] - tol_bpc)]
        if better.empty:
            continue
        b = better.sort_values("val_bpc").iloc[0]
        a, bb = data.seed_bpc.get(g.get("config_hash")), data.seed_bpc.get(b.get("config_hash"))
        noise = compare_values(a, bb) if a is not None and bb is not None else {"verdict": NOT_TESTED}
        if noise["verdict"] == NO_DIFF:             # better on average, not beyond seed noise: not beaten
            within += 1
            continue
        beaten.append({"golden": g["variant_id"], "golden_params": g["params"], "golden_bpc": g["val_bpc"],
                       "beaten_by": b["variant_id"], "params": b["params"], "bpc": b["val_bpc"],
                       "against seed noise": noise["verdict"] + (f" (±{noise['noise']:.3f})"
                                                                  if noise["verdict"] != NOT_TESTED else "")})
    table, gold_front, other_front = _front_share(v, golden)
    fig = _scatter(table.assign(allocation=table["flagged"].map({True: "golden/Fibonacci", False: "other"})),
                   "params", "val_bpc", "allocation", log_x=True)
    tested = data.seed_bpc and any(r["against seed noise"] != NOT_TESTED for r in beaten)
    text = (f"{int(golden.sum())} golden/Fibonacci variants against {int((~golden).sum())} others; "
            f"{len(beaten)} golden variants are beaten by a smaller or equal non-golden one"
            + (" by more than seed noise" if tested else "")
            + (f" ({within} more {'is' if within == 1 else 'are'} bettered within seed noise only)" if within else "")
            + f"; the quality/size front holds {gold_front} golden and {other_front} other variants.")
    verdict = "refuted" if beaten else ("supported" if other_front == 0 else "inconclusive")
    evidence = (pd.DataFrame(beaten) if beaten
                else _cols(table, ["variant_id", "params", "val_bpc", "flagged", "on_front"]))
    return Verdict(7, claim, text, verdict, evidence, "training (validation bits per character)", fig)


def _paired(runs: pd.DataFrame, column: str, a, b, value: str = "tokens_per_s", ignore=()) -> pd.DataFrame:
    """Runs of the same model and context that differ only in ``column`` (a vs b): one row per pair."""
    if column not in runs.columns or runs.empty:
        return pd.DataFrame()
    ok = runs[(runs["status"] == "ok") & runs[value].notna()]
    if "speed_source" in ok.columns:   # counted cycles pair with counted cycles, with or without the XIP model
        ok = ok.assign(speed_source=ok["speed_source"].replace({"emulation_xip_model": "cycle_counted_emulation"}))
    context = ["variant_id"] + [c for c in CONTEXT if c in ok.columns and c != column and c not in ignore]
    ok = ok.assign(_side=ok[column].map(lambda x: "a" if _same(x, a) else "b" if _same(x, b) else None))
    ok = ok[ok["_side"].notna()]
    wide = ok.pivot_table(index=context + ["runtime_kind"], columns="_side", values=value, aggfunc="median",
                          dropna=False)
    if not {"a", "b"} <= set(wide.columns):
        return pd.DataFrame()
    wide = wide.dropna(subset=["a", "b"]).reset_index().rename(columns={"a": f"{value}_{a}", "b": f"{value}_{b}"})
    wide["ratio"] = wide[f"{value}_{b}"] / wide[f"{value}_{a}"]
    return wide


def _same(x, target) -> bool:
    if isinstance(target, bool):
        return str(x).lower() in (("true", "1", "on", "yes") if target else ("false", "0", "off", "no"))
    return str(x).lower() == str(target).lower() or str(target).lower() in str(x).lower()


def _quant_cost(quant: pd.DataFrame | None) -> tuple[float, float]:
    """From the quantisation table: median int8/float32 size ratio and median bpc added by int8 (NaN if unknown),
    over chapter 05's base-tier runs (the long tier's quantised runs are chapter 07's, not the chapter's median)."""
    if quant is None or not {"variant_id", "scheme", "flash_bytes", "val_bpc"} <= set(quant.columns):
        return float("nan"), float("nan")
    from .quant_costs import quant_tier
    quant = quant[quant_tier(quant) == "base"]
    wide = quant.pivot_table(index="variant_id", columns="scheme", values=["flash_bytes", "val_bpc"])
    if ("flash_bytes", "float32") not in wide or ("flash_bytes", "int8_engine") not in wide:
        return float("nan"), float("nan")
    size = (wide[("flash_bytes", "int8_engine")] / wide[("flash_bytes", "float32")]).median()
    cost = (wide[("val_bpc", "int8_engine")] - wide[("val_bpc", "float32")]).median()
    return float(size), float(cost)


def claim_08(data: AuditData, slower: float = 0.95) -> Verdict:
    claim = CLAIM_TEXT[8]
    if reason := data.need("variants"):
        return _inconclusive(8, claim, reason)
    runs = data.runs()
    speed = _paired(runs, "scheme", "float32", "int8", ignore=("runtime",))
    size_col = "model_bytes" if "model_bytes" in runs.columns else "flash_bytes"   # the model, not the firmware
    size = _paired(runs, "scheme", "float32", "int8", value=size_col, ignore=("runtime",))
    # Sizes from the quantisation table cover every study model; the device-run pairs are mostly small
    # models, whose files are dominated by the vocabulary and lookup tables, so they are only a fallback.
    q_size, q_cost = _quant_cost(data.quant)
    size_ratio = q_size if not math.isnan(q_size) else (
        float(size["ratio"].median()) if not size.empty else float("nan"))
    size_text = ("sizes not measured" if math.isnan(size_ratio)
                 else f"an int8 model file is {_times(size_ratio)} the size of the float32 one (median model)")
    if not math.isnan(q_cost):
        size_text += f" and adds {fmt_quantity(q_cost, 'bits/char', signed=True)} (chapter 05)"
    if speed.empty:
        return _inconclusive(8, claim, f"{size_text}; but no model was run both as float32 and as int8 on a "
                             "device, so the speed half is unmeasured")
    speedup = float(speed["ratio"].median())
    text = (f"int8 runs at {speedup:.2f}x the float32 speed (median of {len(speed)} pairs of runs, "
            f"{speed['variant_id'].nunique()} models); {size_text}.")
    if speedup >= slower:
        verdict = "refuted"                       # no slowdown: the claim's mechanism is absent
    elif math.isnan(size_ratio):
        verdict = "inconclusive"
    else:
        verdict = "supported" if size_ratio < 1 else "refuted"
    fig = _bar(speed, "variant_id", "ratio", "runtime_kind", rule=1.0, title="int8 speed / float32 speed")
    return Verdict(8, claim, text, verdict, speed, _runtime_text(runs), fig)


XIP_CACHE_BYTES = 16 * 1024   # the RP2040's flash cache (datasheet 2.6.3)


def claim_09(data: AuditData, compute_bound: float = 1.15, memory_bound: float = 1.5) -> Verdict:
    """Flash (XIP) against SRAM, per runtime: each pair of runs is placed by its own model file's size
    (an int8 file is about a quarter of the float32 one), and each runtime gets its own verdict."""
    claim = CLAIM_TEXT[9]
    if reason := data.need("variants", "c_runs"):
        return _inconclusive(9, claim, reason)
    runs = data.runs()
    value = "cycles_per_token" if "cycles_per_token" in runs.columns else "tokens_per_s"
    pairs = _paired(runs, "weights_in", "sram", "flash", value=value, ignore=("speed_source",))
    if pairs.empty:
        return _inconclusive(9, claim, "no model was run with its weights both in SRAM and in flash (XIP)")
    size_col = "model_bytes" if "model_bytes" in runs.columns else "flash_bytes"
    rt_col = "runtime" if "runtime" in pairs.columns else "runtime_kind"
    if size_col in runs.columns and rt_col in runs.columns:
        sizes = runs.groupby(["variant_id", rt_col])[size_col].max()
        own = [sizes.get((v, r), float("nan")) for v, r in zip(pairs["variant_id"], pairs[rt_col])]
    else:
        own = [float("nan")] * len(pairs)
    pairs = pairs.assign(flash_over_sram=pairs["ratio"] if value == "cycles_per_token" else 1 / pairs["ratio"],
                         model_kb=pd.Series(own, index=pairs.index, dtype=float) / 1024)
    pairs["fits_xip_cache"] = pairs["model_kb"] * 1024 <= XIP_CACHE_BYTES
    per_runtime, texts = {}, []
    for rt, g in pairs.groupby(rt_col, sort=True):
        big, small = g[~g["fits_xip_cache"]], g[g["fits_xip_cache"]]
        if big.empty:
            per_runtime[rt] = "inconclusive"
            texts.append(f"{rt}: no model larger than the 16 KB cache was run both ways "
                         f"({plural(len(small), 'pair')} that fit it: {_times(small['flash_over_sram'].median())})")
            continue
        med = float(big["flash_over_sram"].median())
        per_runtime[rt] = ("supported" if med <= compute_bound else "refuted" if med >= memory_bound
                           else "inconclusive")
        texts.append(f"{rt}: weights read through flash cost {_times(med)} the cycles per token of SRAM for "
                     f"models larger than the 16 KB XIP cache (median of {plural(len(big), 'pair')} of runs, "
                     f"each placed by its own file size; up to {_times(big['flash_over_sram'].max())}), "
                     f"{_times(small['flash_over_sram'].median())} for the {plural(len(small), 'pair')} that "
                     f"fit the cache: {per_runtime[rt]}")
    text = "Per runtime. " + "; ".join(texts) + "."
    if "cycles_per_token_raw" in runs.columns:
        # The XIP model adds a fixed penalty per cache miss: raw cycles are the same run without it.
        flash = runs[runs["weights_in"].astype(str).str.lower().eq("flash") & runs["cycles_per_token_raw"].notna()]
        stall = (1 - flash["cycles_per_token_raw"] / flash["cycles_per_token"]).groupby(flash["variant_id"]).max()
        if len(stall):
            text += (f" The flash figures rest on the project's XIP cache model (60 cycles per miss): "
                     f"cache-miss stalls make up to {fmt_pct(stall.max())} of the cycles per token (median over "
                     f"{plural(len(stall), 'model')} {fmt_pct(stall.median())}).")
    macs = pd.Series(an.macs_per_token(data.variants))
    sram = runs[runs["weights_in"].astype(str).str.lower().eq("sram") & runs["variant_id"].isin(macs.index)]
    if "cycles_per_token" in sram.columns and sram["cycles_per_token"].notna().any():
        per_mac = (sram["cycles_per_token"] / sram["variant_id"].map(macs)).groupby(sram["runtime"]).median()
        text += (" With weights in SRAM a token costs " +
                 ", ".join(f"{fmt_num(c, sig=2)} cycles per multiply-accumulate on {rt}"
                           for rt, c in per_mac.dropna().items())
                 + " (median; MACs counted by the planner, all other work included).")
    fig = _scatter(pairs, "model_kb", "flash_over_sram", rt_col, log_x=True, rule_x=XIP_CACHE_BYTES / 1024,
                   title=["Flash / SRAM cycles per token, emulated",
                          "cycle-counted + XIP miss model (60 cycles per miss); dashed: 16 KB cache"])
    return Verdict(9, claim, text, _combine(per_runtime), pairs.sort_values([rt_col, "model_kb"]),
                   _runtime_text(runs), fig, per_runtime=per_runtime)
