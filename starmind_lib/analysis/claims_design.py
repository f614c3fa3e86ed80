"""Audit claims 6-9: FFN width, golden-ratio allocations, quantisation cost, the bottleneck."""
from __future__ import annotations

import math

import pandas as pd

from . import pareto, tables as an
from ..numbers import fmt_quantity, fmt_num, fmt_pct, plural
from .audit_base import (CLAIM_TEXT, CONTEXT, GOLDEN, AuditData, Verdict, _bar, _cols, _combine, _fmt,
                         _inconclusive, _runtime_text, _scatter, _times, config_key, distinct_configs,
                         distinct_pairs)


def _front_share(v: pd.DataFrame, flag: pd.Series) -> tuple[pd.DataFrame, int, int]:
    front = pareto.pareto_mask(v, minimize=["val_bpc", "params"])
    table = v.assign(on_front=front, flagged=flag)
    return table, int((front & flag).sum()), int((front & ~flag).sum())


def _beaten(v: pd.DataFrame, flagged: pd.Series, others: pd.Series, seed_bpc: dict, tol_bpc: float, name: str
            ) -> tuple[list[dict], int]:
    """Each flagged configuration that a smaller-or-equal one of ``others`` betters by more than ``tol_bpc``:
    beaten when the gap exceeds seed noise (or no seeds say), else counted as bettered within seed noise."""
    from .seeds import NO_DIFF, NOT_TESTED, compare_values
    beaten, within = [], 0
    for _, g in v[flagged].iterrows():
        better = v[others & (v["params"] <= g["params"]) & (v["val_bpc"] < g["val_bpc"] - tol_bpc)]
        if better.empty:
            continue
        b = better.sort_values("val_bpc").iloc[0]
        a, bb = seed_bpc.get(g.get("config_hash")), seed_bpc.get(b.get("config_hash"))
        noise = compare_values(a, bb) if a is not None and bb is not None else {"verdict": NOT_TESTED}
        if noise["verdict"] == NO_DIFF:             # better on average, not beyond seed noise: not beaten
            within += 1
            continue
        beaten.append({name: g["variant_id"], f"{name}_params": g["params"], f"{name}_bpc": g["val_bpc"],
                       "beaten_by": b["variant_id"], "params": b["params"], "bpc": b["val_bpc"],
                       "against seed noise": noise["verdict"] + (f" (±{noise['noise']:.3f})"
                                                                  if noise["verdict"] != NOT_TESTED else "")})
    return beaten, within


def _beaten_text(beaten: list[dict], within: int, seed_bpc: dict) -> str:
    """' by more than seed noise (1 more is bettered within seed noise only)' for a count of beaten ones."""
    from .seeds import NOT_TESTED
    tested = seed_bpc and any(r["against seed noise"] != NOT_TESTED for r in beaten)
    return ((" by more than seed noise" if tested else "")
            + (f" ({within} more {'is' if within == 1 else 'are'} bettered within seed noise only)" if within else ""))


def _at(budget: str) -> str:
    return f"At {budget}: " if budget else ""


def claim_06(data: AuditData, fat_ratio: float = 64, thin_ratio: float = 4, tol_bpc: float = 0.01) -> Verdict:
    claim = CLAIM_TEXT[6]
    if reason := data.need("variants"):
        return _inconclusive(6, claim, reason)
    v, seed_bpc, budget = data.design()
    if "ffn_ratio" not in v.columns:
        return _inconclusive(6, claim, "the sweep table records no FFN size")
    v, _ = distinct_configs(v)
    fat, thin = v["ffn_ratio"] >= fat_ratio, v["ffn_ratio"] <= thin_ratio
    if not fat.any() or not thin.any():
        return _inconclusive(6, claim, f"the sweep has no FFN ratio ≥ {fat_ratio:g} (largest: "
                             f"{_fmt(v['ffn_ratio'].max())}) or none ≤ {thin_ratio:g}")
    sub = v[fat | thin]
    table, fat_front, thin_front = _front_share(sub, sub["ffn_ratio"] >= fat_ratio)
    table = _cols(table, ["variant_id", "params", "val_bpc", "ffn_ratio", "on_front"])
    beaten, within = _beaten(v, fat, thin, seed_bpc, tol_bpc, "fat")
    text = (_at(budget) + f"on the quality/size front of {plural(fat_front + thin_front, 'configuration')} "
            f"(FFN ≥ {fat_ratio:g}x or ≤ {thin_ratio:g}x the width), {fat_front} have an FFN ≥ "
            f"{fat_ratio:g}x the width (largest tried: {_fmt(v['ffn_ratio'].max())}x) and {thin_front} "
            f"≤ {thin_ratio:g}x; {len(beaten)} of the {plural(int(fat.sum()), 'fat configuration')} are beaten by a "
            f"smaller or equal thin one" + _beaten_text(beaten, within, seed_bpc) + ".")
    text = text[0].upper() + text[1:]
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
    v, seed_bpc, budget = data.design()
    if not {"dim", "ffn_hidden"} <= set(v.columns):
        return _inconclusive(7, claim, "the sweep table records no width/FFN sizes")
    v, golden = distinct_configs(v, is_golden(v))
    if not golden.any():
        return _inconclusive(7, claim, "the sweep has no Fibonacci or golden-ratio allocation")
    if golden.all():
        return _inconclusive(7, claim, "every variant is golden: nothing to compare with")
    beaten, within = _beaten(v, golden, ~golden, seed_bpc, tol_bpc, "golden")
    table, gold_front, other_front = _front_share(v, golden)
    fig = _scatter(table.assign(allocation=table["flagged"].map({True: "golden/Fibonacci", False: "other"})),
                   "params", "val_bpc", "allocation", log_x=True)
    what = "configuration" if "config_hash" in v.columns else "variant"
    text = (_at(budget) + f"{plural(int(golden.sum()), 'golden/Fibonacci ' + what)} against "
            f"{int((~golden).sum())} others; {plural(len(beaten), 'golden ' + what)} "
            f"{'is' if len(beaten) == 1 else 'are'} beaten by a smaller or equal non-golden one"
            + _beaten_text(beaten, within, seed_bpc)
            + f"; the quality/size front holds {gold_front} golden and {other_front} other {what}s.")
    verdict = "refuted" if beaten else ("supported" if other_front == 0 else "inconclusive")
    evidence = (pd.DataFrame(beaten) if beaten
                else _cols(table, ["variant_id", "params", "val_bpc", "flagged", "on_front"]))
    return Verdict(7, claim, text, verdict, evidence, "training (validation bits per character)", fig)


def _paired(runs: pd.DataFrame, column: str, a, b, value: str = "tokens_per_s", ignore=()) -> pd.DataFrame:
    """Runs of the same model and context that differ only in ``column`` (a vs b): one row per pair."""
    if column not in runs.columns or runs.empty:
        return pd.DataFrame()
    ok = runs[(runs["status"] == "ok") & runs[value].notna()]
    source = "speed_source" in ok.columns and column != "speed_source" and "speed_source" not in ignore
    if source:   # counted cycles pair with counted cycles, with or without the XIP model; each pair keeps its own
        ok = ok.assign(_counted=ok["speed_source"].replace({"emulation_xip_model": "cycle_counted_emulation"}))
        ignore = (*ignore, "speed_source")
    context = ["variant_id"] + [c for c in CONTEXT if c in ok.columns and c != column and c not in ignore]
    context += ["_counted"] if source else []
    ok = ok.assign(_side=ok[column].map(lambda x: "a" if _same(x, a) else "b" if _same(x, b) else None))
    ok = ok[ok["_side"].notna()]
    wide = ok.pivot_table(index=context + ["runtime_kind"], columns="_side", values=value, aggfunc="median",
                          dropna=False)
    if not {"a", "b"} <= set(wide.columns):
        return pd.DataFrame()
    wide = wide.dropna(subset=["a", "b"]).reset_index().rename(columns={"a": f"{value}_{a}", "b": f"{value}_{b}"})
    wide["ratio"] = wide[f"{value}_{b}"] / wide[f"{value}_{a}"]
    if source:   # the pair's own speed kinds (both sides'), not the pairing key
        kinds = ok.groupby(context + ["runtime_kind"], dropna=False)["speed_source"].agg(
            lambda k: ", ".join(sorted(set(k)))).rename("speed_source").reset_index()
        wide = wide.merge(kinds, on=context + ["runtime_kind"], how="left").drop(columns="_counted")
    return wide


def _same(x, target) -> bool:
    if isinstance(target, bool):
        return str(x).lower() in (("true", "1", "on", "yes") if target else ("false", "0", "off", "no"))
    return str(x).lower() == str(target).lower() or str(target).lower() in str(x).lower()


def _quant_cost(quant: pd.DataFrame | None) -> tuple[float, float, int]:
    """From chapter 05's table, over its base-tier configurations (one row each, as chapter 05 counts them; the
    long tier's quantised runs are chapter 07's): the median bpc that the int8 engine adds, the median size of
    int8 weights (one byte each, with a scale per row) against float32 weights (4 bytes each) -- weights only,
    the file's vocabulary and tables left out -- and how many configurations (NaN, NaN, 0 if unknown)."""
    if quant is None or not {"variant_id", "scheme", "val_bpc"} <= set(quant.columns):
        return float("nan"), float("nan"), 0
    from .quant_costs import quant_tier
    quant = quant[quant_tier(quant) == "base"]
    quant = quant.assign(_cfg=config_key(quant), bytes=quant["bytes"] if "bytes" in quant else quant.get("flash_bytes"))
    wide = quant.pivot_table(index="_cfg", columns="scheme", values=[c for c in ("bytes", "val_bpc", "bpc_delta")
                                                                      if c in quant.columns], aggfunc="first")
    if ("val_bpc", "float32") not in wide or ("val_bpc", "int8_engine") not in wide:
        return float("nan"), float("nan"), 0
    cost = (wide[("bpc_delta", "int8_engine")] if ("bpc_delta", "int8_engine") in wide
            else wide[("val_bpc", "int8_engine")] - wide[("val_bpc", "float32")]).dropna()
    weights = (wide[("bytes", "int8_row")] / wide[("bytes", "float32")]).median() \
        if ("bytes", "int8_row") in wide and ("bytes", "float32") in wide else float("nan")
    return float(cost.median()), float(weights), int(cost.size)


def file_size_ratio(data: AuditData) -> tuple[float, pd.DataFrame]:
    """The int8 model file against the float32 one, whole files as the device loads them (vocabulary and
    lookup tables included), for each configuration run both ways: the median ratio and the pairs."""
    runs = data.runs()
    size_col = "model_bytes" if "model_bytes" in runs.columns else "flash_bytes"   # the model, not the firmware
    size = distinct_pairs(_paired(runs, "scheme", "float32", "int8", value=size_col, ignore=("runtime",)),
                          data.variants)
    if size.empty:
        return float("nan"), size
    size = size.drop_duplicates("variant_id")            # one file per model, whatever the setting it ran in
    return float(size["ratio"].median()), size


def file_size_text(data: AuditData) -> str:
    """'an int8 model file is 0.73x the float32 one (whole files, ...)' or 'file sizes not measured'."""
    ratio, size = file_size_ratio(data)
    if math.isnan(ratio):
        return "file sizes not measured"
    runs = data.runs()
    params = size["variant_id"].map(runs.groupby("variant_id")["params"].max() if "params" in runs else {})
    by = size.assign(params=params).dropna(subset=["params"]).sort_values("params")
    span = (f", {fmt_num(by['params'].iloc[0], sig=None)} to {fmt_num(by['params'].iloc[-1], sig=None)} parameters: "
            f"{_times(by['ratio'].iloc[0])} for the smallest, {_times(by['ratio'].iloc[-1])} for the largest"
            if len(by) > 1 else "")
    return (f"an int8 model file is {_times(ratio)} the float32 one (whole files as the device loads them, "
            f"vocabulary and lookup tables included; median of {plural(len(size), 'model')} run both "
            f"ways{span})")


def claim_08(data: AuditData, slower: float = 0.95) -> Verdict:
    claim = CLAIM_TEXT[8]
    if reason := data.need("variants"):
        return _inconclusive(8, claim, reason)
    runs = data.runs()
    speed = distinct_pairs(_paired(runs, "scheme", "float32", "int8", ignore=("runtime",)), data.variants)
    size_ratio, _ = file_size_ratio(data)
    size_text = file_size_text(data)
    q_cost, q_weights, n_q = _quant_cost(data.quant)
    if not math.isnan(q_weights):
        size_text += (f"; its weights alone (one byte each, with a scale per row) take {_times(q_weights)} the "
                      f"float32 weights (4 bytes each; chapter 05's median over {plural(n_q, 'configuration')})")
        if math.isnan(size_ratio):
            size_ratio = q_weights
    if not math.isnan(q_cost):
        size_text += (f"; int8 adds {'+' if q_cost > 0 else ''}{fmt_num(q_cost, sig=2)} bits/char (chapter 05's "
                      f"median over {plural(n_q, 'configuration')})")
    if speed.empty:
        return _inconclusive(8, claim, f"{size_text}; but no model was run both as float32 and as int8 on a "
                             "device, so the speed half is unmeasured")
    speedup = float(speed["ratio"].median())
    text = (f"int8 runs at {speedup:.2f}x the float32 speed (median of {len(speed)} pairs of runs, "
            f"{plural(speed['variant_id'].nunique(), 'model')}); {size_text}.")
    if speedup >= slower:
        verdict = "refuted"                       # no slowdown: the claim's mechanism is absent
    elif math.isnan(size_ratio):
        verdict = "inconclusive"
    else:
        verdict = "supported" if size_ratio < 1 else "refuted"
    fig = _bar(speed, "variant_id", "ratio", "runtime_kind", rule=1.0, title="int8 speed / float32 speed")
    speed = speed.rename(columns={"tokens_per_s_float32": "float32 tokens/s", "tokens_per_s_int8": "int8 tokens/s",
                                  "ratio": "int8 / float32 speed"})
    return Verdict(8, claim, text, verdict, speed, _runtime_text(runs), fig)


XIP_CACHE_BYTES = 16 * 1024   # the RP2040's flash cache (datasheet 2.6.3)


def claim_09(data: AuditData, compute_bound: float = 1.15, memory_bound: float = 1.5) -> Verdict:
    """Flash (XIP) against SRAM, per runtime: each pair of runs is placed by its own model file's size
    (the int8 and float32 files of one model differ, ``file_size_ratio``), and each runtime gets its own verdict."""
    claim = CLAIM_TEXT[9]
    if reason := data.need("variants", "c_runs"):
        return _inconclusive(9, claim, reason)
    runs = data.runs()
    value = "cycles_per_token" if "cycles_per_token" in runs.columns else "tokens_per_s"
    pairs = distinct_pairs(_paired(runs, "weights_in", "sram", "flash", value=value, ignore=("speed_source",)),
                           data.variants)
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
        stall = (1 - flash["cycles_per_token_raw"] / flash["cycles_per_token"]).groupby(config_key(flash)).max()
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
