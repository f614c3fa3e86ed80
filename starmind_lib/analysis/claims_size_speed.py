"""Audit claims 1-5: vocabulary and parameter limits, what slows a model down, tiny widths, heads."""
from __future__ import annotations

import math

import pandas as pd

from ..numbers import fmt_num, fmt_quantity, plural
from . import tables as an
from .audit_base import (CLAIM_TEXT, FACTOR_NAMES, FACTORS, SIZE_DIFFERS, AuditData, Verdict, _cols, _combine,
                         _effect_chart, _effects_by_runtime, _fmt, _inconclusive, _runtime_text, _scatter,
                         speed_effects)


MEMORY_FAILURES = ("out_of_memory", "does_not_fit")


def _auto_kernels(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A MicroPython run that failed while loading, before the runtime chose its kernels, is named by what it
    asked for ("micropython-auto": asm, else viper, else pure Python); it is counted under the kernels the same
    runtime (``runtime_sha256_16``) chose in every run of it that loaded, when that is one kind. Returns the
    runs and how many were so counted."""
    if not {"kernels", "runtime_sha256_16", "runtime"} <= set(runs.columns):
        return runs, 0
    auto = runs["runtime"].eq("micropython-auto") & runs["kernels"].isna()
    chosen = runs[runs["kernels"].notna()].groupby("runtime_sha256_16")["kernels"].agg(set)
    kern = runs.loc[auto, "runtime_sha256_16"].map(lambda h: chosen.get(h, set()))
    known = kern[kern.map(len) == 1]
    if known.empty:
        return runs, 0
    runs = runs.copy()
    runs.loc[known.index, "runtime"] = "micropython-" + known.map(lambda k: next(iter(k)))
    runs.loc[known.index, "runtime_label"] = runs.loc[known.index].apply(an.run_label, axis=1)
    return runs, len(known)


def _size_not_vocabulary(runs: pd.DataFrame, limit: int = 256) -> str:
    """Where memory failures at small vocabularies are about model size: on a runtime and weight placement,
    every failed model is larger than every model that ran. '' when no placement shows that."""
    if not {"weights_in", "params"} <= set(runs.columns):
        return ""
    small = runs[(runs["vocab_size"] <= limit) & runs["weights_in"].notna()]
    said = []
    groups = sorted(small.groupby(["runtime", "weights_in"]), key=lambda kv: (str(kv[0][1]).lower() != "sram", kv[0]))
    for (rt, where), g in groups:
        failed, ran = g[g["status"].isin(MEMORY_FAILURES)], g[g["status"].eq("ok")]
        if failed.empty or ran.empty or not failed["params"].min() > ran["params"].max():
            continue
        vocabs = ", ".join(str(int(x)) for x in sorted(set(failed["vocab_size"])))
        said.append(f"on {rt} with weights in {'SRAM' if str(where).lower() == 'sram' else where}, the "
                    f"{plural(len(failed), 'memory failure')} at vocabulary {vocabs} "
                    f"{'is a model' if len(failed) == 1 else 'are models'} of "
                    f"{fmt_num(failed['params'].min(), sig=None)} parameters{'' if len(failed) == 1 else ' or more'}, "
                    "and models of up to "
                    f"{fmt_num(ran['params'].max(), sig=None)} parameters ran")
    return (" Memory failures at a vocabulary of 256 or less are about model size, not vocabulary: "
            + "; ".join(said) + ".") if said else ""


def claim_01(data: AuditData) -> Verdict:
    claim = CLAIM_TEXT[1]
    if (reason := data.need("variants")) or (data.c_runs is None and data.micropython_runs is None):
        return _inconclusive(1, claim, reason or data.need("c_runs", "micropython_runs"))
    runs = data.runs(trusted_only=False)
    runs = runs[runs["speed_source"] != "predicted"]
    if "vocab_size" not in runs.columns or runs.empty:
        return _inconclusive(1, claim, "no device run records a vocabulary size")
    runs, n_auto = _auto_kernels(runs)
    count = dict(runs=("status", "size"), ok=("status", lambda s: int((s == "ok").sum())),
                 memory_failures=("status", lambda s: int(s.isin(MEMORY_FAILURES).sum())))
    table = runs.groupby(["runtime_label", "vocab_size"]).agg(**count).reset_index()
    where = ["weights_in"] if "weights_in" in runs.columns else []
    evidence = runs.groupby(["runtime_label", *where, "vocab_size"], dropna=False).agg(**count).reset_index()
    note = _size_not_vocabulary(runs)
    if n_auto:
        kinds = sorted(set(runs.loc[runs["runtime"].str.startswith("micropython-"), "runtime"]))
        note += (f" {plural(n_auto, 'MicroPython run')} failed before the runtime chose its kernels (while "
                 f"deploying or loading the model); they count under {', '.join(kinds)}, the kernels it chose in "
                 "every run that loaded.")
    big = table[table["vocab_size"] >= 512]
    if big.empty:
        return _inconclusive(1, claim, "no vocabulary of 512 or more was run on a board", evidence)
    if big["ok"].sum() > 0:
        ran = big[big["ok"] > 0]
        text = "; ".join(f"vocabulary {int(r.vocab_size)} ran on {r.runtime_label} ({r.ok} of {plural(r.runs, 'run')} ok)"
                         for r in ran.itertuples())
        return Verdict(1, claim, f"Larger vocabularies run: {text}.{note}", "refuted", evidence, _runtime_text(runs))
    small_ok = table[(table["vocab_size"] <= 256) & (table["ok"] > 0)]
    all_memory = big["memory_failures"].sum() == big["runs"].sum()
    verdict = "supported" if not small_ok.empty and all_memory else "inconclusive"
    return Verdict(1, claim, f"Every run with a vocabulary of 512 or more failed ({int(big['runs'].sum())} runs); "
                   f"{len(small_ok)} runtime/vocabulary pairs at 256 or less ran.{note}", verdict, evidence,
                   _runtime_text(runs))


def _raw_note(runs: pd.DataFrame, model_id, label) -> str:
    """' (17.0 tokens/s without the XIP miss model)' for a flash run whose speed rests on that model."""
    if "tokens_per_s_raw" not in runs.columns or "XIP" not in str(label):
        return ""
    raw = runs.loc[(runs["variant_id"] == model_id) & (runs["runtime_label"] == label), "tokens_per_s_raw"].dropna()
    return f" ({raw.max():.1f} tokens/s without the XIP miss model)" if len(raw) else ""


def _trained_ids(data: AuditData) -> set:
    """Every variant trained by either study (a size probe is not)."""
    return set(data.variants["variant_id"]) | (set(data.training["variant_id"]) if data.training is not None
                                               else set())


def _is_trained(data: AuditData, model_id) -> bool:
    return model_id in _trained_ids(data)


def _quality_text(data: AuditData, model_id) -> str:
    """A model's bits per character from the page's quality source; a model only the first study trained
    says so, with that study's prefix score."""
    from .seeds import V1_SOURCE
    v = data.variants[data.variants["variant_id"] == model_id]
    if len(v) and pd.notna(v["val_bpc"].iloc[0]):
        return f"{v['val_bpc'].iloc[0]:.2f} bits/char"
    old = data.training[data.training["variant_id"] == model_id] if data.training is not None else v
    if len(old) and pd.notna(old["val_bpc"].iloc[0]):
        return f"{old['val_bpc'].iloc[0]:.2f} bits/char, {V1_SOURCE}: Study v2 has not trained it"
    return "not scored"


def claim_02(data: AuditData, limit: int = 10_000, min_tokens_per_s: float = 1.0) -> Verdict:
    claim = CLAIM_TEXT[2]
    if reason := data.need("variants"):
        return _inconclusive(2, claim, reason)
    runs = data.runs()
    if runs.empty:
        return _inconclusive(2, claim, data.need("c_runs", "micropython_runs") or "no device runs with trusted speeds")
    runs["practical"] = (runs["status"] == "ok") & (runs["tokens_per_s"] >= min_tokens_per_s)
    table = runs.groupby("runtime_label").agg(
        largest_practical_params=("params", lambda p: p[runs.loc[p.index, "practical"]].max()),
        largest_tried_params=("params", "max")).reset_index()
    practical = runs[runs["practical"]].sort_values("params").groupby("runtime_label").tail(1)
    show = [c for c in ("runtime_label", "variant_id", "tokens_per_s", "peak_ram_bytes", "bpc") if c in practical]
    table = table.merge(practical[show].rename(columns={"variant_id": "largest_practical_model"}),
                        on="runtime_label", how="left")
    best = table["largest_practical_params"].max()
    fig = _scatter(runs, "params", "tokens_per_s", "status", log_x=True, rule_x=limit)
    if pd.notna(best) and best >= 2 * limit:
        top = table.loc[table["largest_practical_params"].idxmax()]
        text = (f"{top['largest_practical_model']} ({int(best):,} parameters"
                f"{'' if _is_trained(data, top['largest_practical_model']) else ', untrained: speed and memory do not depend on the weights'}"
                f") runs at {top['tokens_per_s']:.1f} tokens/s{_raw_note(runs, top['largest_practical_model'], top['runtime_label'])} "
                f"on {top['runtime_label']}.")
        # A trained model says more than a size probe: name the largest trained one that runs, with its quality.
        trained = runs[runs["practical"] & runs["variant_id"].isin(_trained_ids(data))]
        if not trained.empty and data.training is not None:   # a run of a model Study v2 has not scored
            sizes = dict(zip(data.training["variant_id"], data.training["params"]))
            trained = trained.assign(params=trained["params"].fillna(trained["variant_id"].map(sizes)))
        if not trained.empty:
            t = trained.sort_values(["params", "tokens_per_s"]).iloc[-1]
            quality = _quality_text(data, t["variant_id"])
            if t.get("scheme") == "int8" and pd.notna(t.get("cost_tier")) and pd.notna(t.get("bpc")):
                quality = f"{t['bpc']:.2f} bits/char as the int8 model it runs, {quality} in float"
            text += (f" The largest trained model that runs, {t['variant_id']} ({int(t['params']):,} parameters, "
                     f"{quality}), makes {fmt_quantity(t['tokens_per_s'], 'tokens_per_s')}"
                     f"{_raw_note(runs, t['variant_id'], t['runtime_label'])} on {t['runtime_label']}.")
        return Verdict(2, claim, text, "refuted", table, _runtime_text(runs), fig)
    if table["largest_tried_params"].max() <= limit:
        return _inconclusive(2, claim, f"no model above {limit:,} parameters was run", table)
    if pd.isna(best):
        return _inconclusive(2, claim, f"no model ran at {min_tokens_per_s:g} token/s or more", table)
    return Verdict(2, claim, f"The largest practical model has {_fmt(best)} parameters; larger ones failed "
                   f"or ran below {min_tokens_per_s:g} token/s.", "supported", table, _runtime_text(runs), fig)


def claim_03(data: AuditData, tolerance: float = 0.05) -> Verdict:
    claim = CLAIM_TEXT[3]
    if reason := data.need("variants"):
        return _inconclusive(3, claim, reason)
    table = _effects_by_runtime(data.runs())
    if table.empty:
        return _inconclusive(3, claim, data.need("c_runs") or "no pairs of runs differ in a single factor")
    table["within_claim"] = table["slowdown_per_step"].between(table["claimed_low"] - tolerance,
                                                               table["claimed_high"] + tolerance)
    per_runtime, texts = {}, []
    claimed_order = list(FACTORS)
    for rt, group in table.groupby("runtime"):
        if len(group) < 3:
            continue
        measured_order = list(group.sort_values("slowdown_per_step", ascending=False)["factor"])
        same_order = measured_order == [f for f in claimed_order if f in measured_order]
        per_runtime[rt] = ("supported" if same_order and group["within_claim"].all()
                           else SIZE_DIFFERS if same_order else "refuted")
        texts.append(f"{rt}: " + ", ".join(f"{FACTOR_NAMES[r.factor]} {r.slowdown_per_step:+.0%} per {r.step}"
                                            for r in group.itertuples()) +
                     f" (order {'as' if same_order else 'not as'} claimed)")
    if not per_runtime:
        return _inconclusive(3, claim, "fewer than three factors were varied one at a time", table)
    fig = _effect_chart(table)
    return Verdict(3, claim, "Measured slowdown per step: " + "; ".join(texts) + ".", _combine(per_runtime),
                   table, "; ".join(per_runtime), fig, per_runtime=per_runtime)


def _one_setting(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the most common (runtime, weight placement, KV cache) setting: speeds comparable as they are."""
    setting = [c for c in ("runtime", "weights_in", "kv_cache") if c in runs.columns]
    if runs.empty or not setting:
        return runs
    counts = runs.groupby(setting).size()
    deployable = ("c-int8", "flash", True)[:len(setting)]    # what a Pico would run, when it was measured
    common = deployable if deployable in counts.index else counts.idxmax()
    common = common if isinstance(common, tuple) else (common,)
    mask = pd.Series(True, index=runs.index)
    for col, value in zip(setting, common):
        mask &= runs[col].eq(value)
    return runs[mask]


def _unigram_bpc(data: AuditData) -> float | None:
    """Bits per character of letter frequencies alone (the sweep records it beside every model)."""
    for table in (data.variants, data.stats):
        if table is None:
            continue
        for col in ("unigram_bpc", "char_entropy_bits", "unigram_entropy_bits", "entropy_bits_per_char"):
            if col in table.columns and table[col].notna().any():
                return float(table[col].dropna().median())
    return None


def _against_unigram(r, margin: float) -> tuple[bool, str]:
    """Whether a model beats letter frequencies alone (by more than ``margin`` bits/char and, when its seeds
    give a 95 % interval of the mean, beyond seed noise), and what it does in words."""
    bpc, uni = float(r["val_bpc"]), float(r["unigram_bpc"])
    lo, hi = r.get("bpc_ci_low", float("nan")), r.get("bpc_ci_high", float("nan"))
    ci = pd.notna(lo) and pd.notna(hi)
    interval = f" (95 % interval of the mean {_fmt(lo, 4)} to {_fmt(hi, 4)})" if ci else ""
    letters = f"letter frequencies alone ({_fmt(uni)})"
    if bpc >= uni:
        return False, f"worse than {letters}" + (f", beyond seed noise{interval}" if ci and lo > uni
                                                  else f", within seed noise{interval}" if ci else "")
    gap = f"{_fmt(uni - bpc, 2)} below {letters}"
    if uni - bpc <= margin:
        return False, f"only {gap}, less than the {margin:g} bits/char this audit asks of a model that learns"
    if ci and hi >= uni:
        return False, f"{gap}: no measurable difference, within seed noise{interval}"
    return True, gap + (f", beyond seed noise{interval}" if ci else "")


def _budget(r) -> str:
    """' (2,000,896 training tokens, mean of 3 seeds)' where the sweep records them."""
    parts = []
    if pd.notna(r.get("tokens_trained", float("nan"))):
        parts.append(f"{int(r['tokens_trained']):,} training tokens")
    if pd.notna(r.get("n_seeds", float("nan"))):
        parts.append(f"mean of {plural(int(r['n_seeds']), 'seed')}")
    return f" ({', '.join(parts)})" if parts else ""


def claim_04(data: AuditData, margin_bpc: float = 0.1) -> Verdict:
    """The two halves apart: each narrow width is judged against letter frequencies (a model that does not beat
    them reaches nothing, however fast), at its own budget, said beside it; then which width is fastest."""
    claim = CLAIM_TEXT[4]
    if reason := data.need("variants"):
        return _inconclusive(4, claim, reason)
    v = data.variants
    if "dim" not in v.columns or not (v["dim"] <= 2).any():
        return _inconclusive(4, claim, "the sweep trained no 1- or 2-wide model")
    is_narrow = v["dim"] <= 2
    if "axis" in v.columns and (is_narrow & v["axis"].eq("width")).any():
        is_narrow &= v["axis"].eq("width")      # the write-up's configuration: only the width changed
    narrow = _cols(v[is_narrow], ["variant_id", "dim", "n_layers", "params", "val_bpc", "bpc_ci_low", "bpc_ci_high",
                                  "n_seeds", "tokens_trained", "sample"]).sort_values(["dim", "variant_id"])
    if "sample" in narrow.columns:
        narrow = narrow.assign(sample=narrow["sample"].map(lambda s: an.sample_text(s, 120)))
    unigram = _unigram_bpc(data)
    if unigram is not None and "unigram_bpc" in v.columns:   # each model against its own tokenizer's data
        narrow_unigram = v.loc[narrow.index, "unigram_bpc"].fillna(unigram)
    else:
        narrow_unigram = pd.Series(unigram, index=narrow.index, dtype=float)
    runs = data.runs()
    if not runs.empty and "axis" in runs.columns:
        # Like with like: the width axis varies only the width (same depth, FFN ratio and vocabulary).
        runs = runs[runs["axis"].eq("width") & runs["status"].eq("ok")]
    runs = _one_setting(runs)
    speed = (runs.groupby("dim")["tokens_per_s"].median() if not runs.empty and "dim" in runs
             else pd.Series(dtype=float))
    narrow = narrow.assign(unigram_bpc=narrow_unigram,
                           best_tokens_per_s=narrow["dim"].map(speed) if len(speed) else float("nan"))
    best_bpc = float(v["val_bpc"].min())
    fig = _scatter(v.assign(width=v["dim"].astype(int)), "params", "val_bpc", "width", log_x=True, rule_y=unigram,
                   color_type="Q")   # a gradient legend: widths sort as numbers, and no entry is cut off
    if unigram is None:
        return _inconclusive(4, claim, "no unigram (letter frequency) baseline in the sweep or data tables: "
                             "cannot tell a narrow model from noise", narrow)
    judged = [_against_unigram(r, margin_bpc) for _, r in narrow.iterrows()]
    learns = pd.Series([j[0] for j in judged], index=narrow.index)
    narrow = narrow.assign(beats_letter_frequencies=learns)
    per_width = [f"Width {int(r['dim'])} ({r['variant_id']}): {r['val_bpc']:.2f} bits/char{_budget(r)}, {words}: "
                 f"{'supported' if ok else 'refuted'} for width {int(r['dim'])}"
                 for (_, r), (ok, words) in zip(narrow.iterrows(), judged)]
    text = ". ".join(per_width) + f". Our best model reaches {_fmt(best_bpc)} bits/char"
    if not learns.any():
        return Verdict(4, claim, text + ": the narrow models emit noise, however fast.", "refuted", narrow,
                       _runtime_text(runs), fig)
    fastest_dim = speed.idxmax() if len(speed) else None
    if fastest_dim is None:
        return Verdict(4, claim, text + "; there are no device speeds to check 'fastest'.", "inconclusive",
                       narrow, "training (validation bits per character)", fig)
    fastest = narrow[narrow["dim"] == fastest_dim]
    what = ("" if fastest.empty or learns[fastest.index].all()
            else ", a model worse than letter frequencies alone" if (fastest["val_bpc"] >= fastest["unigram_bpc"]).all()
            else ", a model no better than letter frequencies alone")
    # The claim says such models work: a narrow width that does not beat letter frequencies refutes it.
    verdict = "supported" if fastest_dim <= 2 and learns.all() else "refuted"
    return Verdict(4, claim, text + f". The fastest width on device is {int(fastest_dim)}{what} "
                   f"({_fmt(speed.max())} tokens/s, {_runtime_text(runs)}).", verdict, narrow, _runtime_text(runs), fig)


def claim_05(data: AuditData, min_gain: float = 0.02) -> Verdict:
    claim = CLAIM_TEXT[5]
    if reason := data.need("variants"):
        return _inconclusive(5, claim, reason)
    pairs = speed_effects(data.runs(), "n_heads")
    if pairs.empty:
        return _inconclusive(5, claim, data.need("c_runs") or "no pairs of runs differ only in the number of heads")
    per_runtime, texts = {}, []
    for rt, group in pairs.groupby("runtime"):
        gain = -group["slowdown_per_step"].median()
        per_runtime[rt] = "supported" if gain > min_gain else "refuted"
        texts.append(f"{rt}: doubling the heads changes speed by {gain:+.1%} (median of {len(group)} pairs)")
    fig = _scatter(pairs.assign(pair=pairs.index.astype(str)), "from", "slowdown_per_step", "runtime")
    return Verdict(5, claim, "; ".join(texts) + ".", _combine(per_runtime), pairs, "; ".join(per_runtime), fig,
                   per_runtime=per_runtime)
