"""Chapter 06b (MicroPython on a stock Pico): the measured rows, the planner against them, figures, numbers.

Every speed and memory figure of the chapter comes from ``<results_dir>/device/micropython_runs``: the
MicroPython runtime on the stock v1.27 firmware in rp2040js (:data:`LABEL`), one row per model x weights
mode x kernel kind. A model with no measured row gets the planner's prediction, labelled ``predicted``::

    m = measured_runs(results_dir)            # the rows of one runtime (the working tree's) + the history
    measured_table(m.rows); speed_chart(m.rows, predicted_frame(models, m.rows))
    planner_errors(m.rows); memory_check(m.rows)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..devices import planner
from ..devices.measure import (N_TOKENS, chosen_runtime, current_rows, is_clean, planner_error, runs_table, runtime_history,
                               tree_runtime)
from ..numbers import fmt_num, plural

LABEL = "emulated stock firmware (MicroPython 1.27, rp2040js cycle-counted)"
PREDICTED = "predicted"
CLOCK_HZ = planner.PICO_CLOCK_HZ
WEIGHTS = {"ram": "weights in RAM", "flash": "weights in flash"}


@dataclass
class Measured:
    rows: pd.DataFrame                       # one row per board x job of the chosen runtime
    runtime: str                             # its runtime digest
    tree_runtime: str                        # the working tree's runtime digest
    history: dict = field(default_factory=dict)   # rows of other runtimes, clean/dirty counts
    commits: list = field(default_factory=list)


def runs_path(results_dir) -> Path:
    return Path(results_dir) / "device" / "micropython_runs"


def measured_runs(results_dir) -> Measured:
    """The emulated-firmware rows of the working tree's runtime (else of the most recently measured runtime),
    one per job (a clean commit's row first); plus how many rows are history."""
    rows = [r for r in runs_table(runs_path(results_dir)).rows()
            if r.get("speed_source") == "emulated_stock_firmware" or str(r.get("board", "")).startswith("emulated")]
    tree = tree_runtime()
    runtime = chosen_runtime(rows) or tree
    cur = current_rows(rows, runtime)
    frame = pd.DataFrame(cur)
    if len(frame):
        frame = _derived(frame)
    commits = sorted({str(r.get("git_commit")) for r in cur})
    return Measured(frame, runtime, tree, runtime_history(rows, runtime), commits)


def _n_weights(row) -> int:
    """The study's parameter count; a reference model's from its architecture, counted as chapter 06 and the
    study count (every parameter, norms included: ``grid.count_params``)."""
    from ..training.grid import count_params
    n = row.get("n_params")
    if n is not None and n == n:
        return int(n)
    arch = planner._arch(row)
    return int(count_params(**{**arch, "seq_len": arch["max_seq_len"]}))


def _derived(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["n_params"] = [_n_weights(r) for r in df.to_dict("records")]
    clock = df["clock_hz"].fillna(CLOCK_HZ).astype(float) if "clock_hz" in df else CLOCK_HZ
    df["tok_s"] = pd.to_numeric(df["tokens_per_s"], errors="coerce")
    df["tok_s_last"] = clock / pd.to_numeric(df["cycles_last_token"], errors="coerce")
    df["weights_mode"] = df["weights_requested"].map(WEIGHTS).fillna(df["weights_requested"])
    df["clean"] = [is_clean(r) for r in df.to_dict("records")]
    return df.sort_values(["source", "n_params", "model", "weights_requested"]).reset_index(drop=True)


# ---------------------------------------------------------------- tables

def measured_table(df: pd.DataFrame) -> pd.DataFrame:
    """The reader's table: one row per model and weights mode."""
    if df.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "model": df["model"], "parameters": df["n_params"],
        "weights": df["weights_mode"].astype(str).str.replace("weights in ", "", regex=False),
        "kernels": df["kernels"].fillna("–"), "status": df["status"],
        "tok/s (mean)": df["tok_s"], "tok/s (last)": df["tok_s_last"],
        "heap free (B)": df["heap_free_after_load"], "B/token": df["alloc_per_token"],
        "load (ms)": df["load_ms"],
        "= reference": df["tokens_match_reference"].map({True: "yes", False: "no"})})
    return out


MEASURED_CAPTION = (f"Measured per model and weights mode, {LABEL}: tokens/s at 125 MHz, mean over {N_TOKENS} "
                    "generated tokens and at the last position; heap free after load (B) and bytes allocated per "
                    "generated token (B/token); '= reference': the tokens equal the host reference engine's")


def rows_that_matter(df: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The rows shown above a long table: the reference models, the size probes, and the study models nearest
    1K, 10K, 100K."""
    keep = set(df.index[df["source"].isin(["reference", "size_probe"])])
    study = df[df["source"] == "study"]
    for target in (1_000, 10_000, 100_000):
        if len(study):
            near = study.iloc[(study["n_params"] - target).abs().argsort()[:1]]["model"].iloc[0]
            keep |= set(study.index[study["model"] == near])
    return table.loc[sorted(keep)]


def predicted_frame(models: dict[str, dict], measured: pd.DataFrame, n_tokens: int = N_TOKENS) -> pd.DataFrame:
    """The planner for the study's models that have no measured row (asm kernels, the runtime's weights mode)."""
    done = set(measured["variant_id"]) if len(measured) else set()
    t = planner.attention_length(1, n_tokens)
    rows = []
    for name, m in models.items():
        if name in done:
            continue
        plan = planner.plan_memory(m, context=n_tokens)
        sp = planner.predict_speed(m, "micropython-asm", context=t, weights=plan.weights)
        rows.append({"model": name, "parameters": m.get("n_params"), "fits": "yes" if plan.fits else "no",
                     "weights": WEIGHTS[plan.weights], "heap needed (KB)": plan.total_bytes / 1024,
                     "tok/s": sp.tokens_per_s if plan.fits else float("nan"), "label": PREDICTED})
    return pd.DataFrame(rows)


def planner_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Per measured run: the calibrated planner's tokens/s against the measurement."""
    if df.empty:
        return pd.DataFrame()
    rows = []
    for r in df.to_dict("records"):
        err = planner_error(r)
        if err is None:
            continue
        tol = planner.SPEED_TOLERANCE_BY_KERNELS.get(r["kernels"], planner.SPEED_TOLERANCE)
        rows.append({"model": r["model"], "parameters": r["n_params"], "weights": r["weights_mode"],
                     "kernels": r["kernels"], "measured tok/s": r["tok_s"], "predicted tok/s": r["tok_s"] * (1 + err),
                     "error": err, "stated range": tol, "within range": abs(err) <= tol})
    return pd.DataFrame(rows)


def error_summary(err: pd.DataFrame) -> pd.DataFrame:
    if err.empty:
        return pd.DataFrame()
    g = err.groupby(["kernels", "weights"])
    return pd.DataFrame({
        "runs": g.size(), "median |error| (%)": 100 * g["error"].apply(lambda e: e.abs().median()),
        "lowest error (%)": 100 * g["error"].min(), "highest error (%)": 100 * g["error"].max(),
        "stated range (± %)": 100 * g["stated range"].first(),
        "outside the range": g["within range"].apply(lambda w: int((~w).sum())),
    }).reset_index()


def memory_check(df: pd.DataFrame) -> pd.DataFrame:
    """Per measured run that ran or ran out of room: the calibrated planner's memory verdict against it."""
    if df.empty:
        return pd.DataFrame()
    rows = []
    for r in df.to_dict("records"):
        if r["status"] not in ("ok", "out_of_memory", "filesystem_error"):
            continue
        free = r.get("heap_free_after_boot")
        free = int(free) if free is not None and free == free else planner.HEAP_FREE_AFTER_BOOT["uart"]
        plan = planner.plan_memory(r, heap_free=free,
                                   context=len(r["prompt_ids"]) + r["n_tokens"] - 1, weights=r["weights_requested"])
        rows.append({"model": r["model"], "parameters": r["n_params"], "weights": r["weights_mode"],
                     "status": r["status"], "predicted to fit": plan.fits, "ran": r["status"] == "ok"})
    return pd.DataFrame(rows)


def memory_crosstab(check: pd.DataFrame) -> pd.DataFrame:
    if check.empty:
        return pd.DataFrame()
    out = []
    for pred in (True, False):
        for ran in (True, False):
            n = int(((check["predicted to fit"] == pred) & (check["ran"] == ran)).sum())
            out.append({"planner says": "fits" if pred else "does not fit",
                        "measured": "ran" if ran else "failed (memory or filesystem)", "runs": n})
    return pd.DataFrame(out)


def nearest(df: pd.DataFrame, target: int, weights: str = "ram", within: float = 1.5) -> dict | None:
    """The measured study run of the given weights mode nearest ``target`` parameters (None when no run lies
    within a factor ``within`` of it)."""
    if df.empty:
        return None
    pick = df[(df["source"] == "study") & (df["weights_requested"] == weights) & (df["status"] == "ok")]
    pick = pick[pick["n_params"].between(target / within, target * within)]
    if pick.empty:
        return None
    return pick.iloc[(pick["n_params"] - target).abs().argsort()[:1]].iloc[0].to_dict()


def largest_in_ram_text(ram_ok: pd.DataFrame) -> str:
    """The largest model that ran with its weights in RAM, and the largest study model if that is another."""
    if not len(ram_ok):
        return "n/a"
    big = ram_ok.loc[ram_ok["n_params"].astype(float).idxmax()]
    kind = {"size_probe": "an untrained size probe of a shape chosen for the heap", "reference": "a reference model",
            "study": "a study model"}.get(big.get("source"), "a model")
    text = (f"{fmt_num(int(big['n_params']), sig=None)} parameters ({big['model']}, {kind}: dim {int(big['dim'])}, "
            f"{int(big['n_layers'])} layer{'s' if int(big['n_layers']) != 1 else ''}, "
            f"{fmt_num(float(big['tok_s']), sig=3)} tokens/s)")
    study = ram_ok[ram_ok["source"] == "study"]
    if len(study) and big.get("source") != "study":
        s = study.loc[study["n_params"].astype(float).idxmax()]
        text += (f"; the largest study model, {fmt_num(int(s['n_params']), sig=None)} parameters ({s['model']}, "
                 f"{fmt_num(float(s['tok_s']), sig=3)} tokens/s)")
    return text


def probes_text(df: pd.DataFrame) -> str:
    """What the size probes (untrained, shapes chosen for the heap) did with weights in RAM and in flash."""
    pr = df[df["source"] == "size_probe"] if len(df) else df
    if not len(pr):
        return "No size probe was measured."
    n = pr["n_params"].astype(int)
    ram, flash = pr[pr["weights_requested"] == "ram"], pr[pr["weights_requested"] == "flash"]
    ran = ram[ram["status"] == "ok"]
    fl = flash[flash["status"] == "ok"]["tok_s"]
    text = (f"Untrained size probes of shapes chosen for the heap (few layers, wide rows; "
            f"{fmt_num(int(n.min()), sig=None)} to {fmt_num(int(n.max()), sig=None)} parameters): "
            f"{len(ran)} of {len(ram)} ran with their weights in RAM")
    if len(ran) < len(ram):
        text += " (the others ran out of memory)"
    if len(fl):
        text += (f", and from flash {len(fl)} of {len(flash)} ran, at {fmt_num(float(fl.min()), sig=3)} to "
                 f"{fmt_num(float(fl.max()), sig=3)} tokens/s")
    return text + "."


def placement_spreads(results_dir, runs: pd.DataFrame | None = None, runtime: str | None = None) -> list[dict]:
    """Per model of ``device/micropython_placement`` (:mod:`starmind_lib.devices.placement`): the spread of
    one file's cycles per token when only its heap placement changes, the runtime measured, and what the same
    file (same hash, same runtime, weights in RAM) took in the measuring session of ``runs`` (or None).
    ``runtime``: use that runtime's placement rows where there are any (else every row)."""
    from ..devices.placement import spread
    from ..provenance import ResultTable
    stem = Path(results_dir) / "device" / "micropython_placement"
    if not stem.with_suffix(".jsonl").exists():
        return []
    rows = ResultTable(stem, key="key").rows()
    if runtime and any(r.get("runtime_sha256_16") == runtime for r in rows):
        rows = [r for r in rows if r.get("runtime_sha256_16") == runtime]
    out = []
    for m, sp in spread(rows).items():
        same = {(r.get("model_sha256_16"), r.get("runtime_sha256_16")) for r in rows if r.get("model") == m}
        session = None
        if runs is not None and len(runs) and "model_sha256_16" in runs:
            same_file = pd.Series([(a, b) in same for a, b in zip(runs["model_sha256_16"], runs["runtime_sha256_16"])],
                                  index=runs.index)
            hit = runs[(runs["model"] == m) & (runs["weights_requested"] == "ram") & (runs["status"] == "ok")
                       & same_file]
            if len(hit):
                session = float(hit["cycles_per_token"].iloc[0])
        out.append({"model": m, **sp, "session": session,
                    "runtimes": sorted({str(r.get("runtime_sha256_16")) for r in rows if r.get("model") == m})})
    return out


def placement_text(results_dir, runs: pd.DataFrame | None = None, runtime: str | None = None) -> str:
    """The spreads of :func:`placement_spreads` as the chapter's sentence."""
    sp = placement_spreads(results_dir, runs, runtime)
    if not sp:
        return "not measured in this build"
    parts = []
    for s in sp:
        text = (f"{fmt_num(s['low'], sig=None)} to {fmt_num(s['high'], sig=None)} cycles per token for {s['model']} "
                f"(+-{fmt_num(100 * s['half_range'], sig=2)} %, {s['n']} placements)")
        if s["session"] is not None:
            text += f", in the measuring session {fmt_num(s['session'], sig=None)}"
        parts.append(text)
    text = "; ".join(parts)
    used = sorted({rt for s in sp for rt in s["runtimes"] if rt != "None"})
    if runtime and used and used != [runtime]:
        text += f" (runtime {', '.join(used)}, not this page's)"
    return text


def placement_outside_text(results_dir, runs: pd.DataFrame | None = None, runtime: str | None = None) -> str:
    """How many of the placement files' measuring-session runs fall outside the pads' range."""
    sp = [s for s in placement_spreads(results_dir, runs, runtime) if s["session"] is not None]
    if not sp:
        return "no file was also measured in the measuring session"
    out = sum(not s["low"] <= s["session"] <= s["high"] for s in sp)
    return f"the measuring session lies outside their range for {out} of the {plural(len(sp), 'file')}"


def ram_floor_text(runs: pd.DataFrame) -> str:
    """What the MicroPython side holds in SRAM before and with a model, from the emulated firmware's runs:
    'the firmware, interpreter and our runtime hold 57.6 KB of SRAM before any model is loaded (median over
    the runs), and the smallest program that ran held 72.5 KB'."""
    from ..devices.emulated import SRAM_BYTES
    need = {"heap_free_before", "heap_free_after_load", "status"}
    ok = runs[runs["status"] == "ok"] if need <= set(runs.columns) else runs.iloc[:0]
    if ok.empty:
        return "no MicroPython run says how much SRAM the firmware holds"
    before = SRAM_BYTES - pd.to_numeric(ok["heap_free_before"], errors="coerce").median()
    smallest = SRAM_BYTES - pd.to_numeric(ok["heap_free_after_load"], errors="coerce").max()
    return (f"the MicroPython firmware, interpreter and our runtime hold {before / 1024:.1f} KB of SRAM before any "
            f"model is loaded (median over {plural(len(ok), 'run')}), and the smallest program that ran held "
            f"{smallest / 1024:.1f} KB")


def repeat_text(runs: pd.DataFrame) -> str:
    """The measuring session's natural repeats: one model file (same hash, same runtime, same weights mode
    and kernels) run under several names (the sweep's configurations that several axes share). Per weights
    mode: how many files ran more than once and how far their slowest and fastest run lie apart."""
    keys = ["model_sha256_16", "runtime_sha256_16", "weights_requested", "kernels"]
    if runs.empty or not set(keys + ["cycles_per_token", "status"]) <= set(runs.columns):
        return "no file was run twice in the measuring session"
    ok = runs[runs["status"] == "ok"]
    g = ok.groupby(keys)["cycles_per_token"].agg(["size", "min", "max"]).reset_index()
    g = g[g["size"] >= 2]
    if g.empty:
        return "no file was run twice in the measuring session"
    parts = []
    for mode, grp in g.groupby("weights_requested", sort=True):
        apart = grp["max"] / grp["min"] - 1
        where = {"ram": "RAM"}.get(mode, mode)
        parts.append(f"with weights in {where}, {plural(len(grp), 'file')} ran two to {int(grp['size'].max())} "
                     f"times and their runs lie up to {fmt_num(100 * apart.max(), sig=2)} % apart (median "
                     f"{fmt_num(100 * apart.median(), sig=2)} %; {int((apart > 0.01).sum())} of them more than 1 %)")
    return "; ".join(parts)


def numbers(m: Measured, err: pd.DataFrame, check: pd.DataFrame) -> dict[str, str]:
    """Every number the chapter's prose quotes, formatted (``glue`` each)."""
    df = m.rows
    ok = df[df["status"] == "ok"] if len(df) else df
    ram_ok = ok[ok["weights_requested"] == "ram"] if len(ok) else ok
    out = {"mp_runtime": m.runtime, "mp_tree_is_runtime": ("the runtime of the working tree" if m.runtime == m.tree_runtime
                                                 else "not the working tree's: its sources changed since"),
           "mp_n_rows": fmt_num(len(df), sig=None),
           "mp_n_models": fmt_num(df["model"].nunique() if len(df) else 0, sig=None),
           "mp_n_ok": fmt_num(len(ok), sig=None), "mp_n_failed": fmt_num(len(df) - len(ok), sig=None),
           "mp_n_match": fmt_num(int(ok["tokens_match_reference"].astype(bool).sum()) if len(ok) else 0, sig=None),
           "mp_n_history": fmt_num(m.history.get("rows_other_runtimes", 0), sig=None),
           "mp_n_history_runtimes": fmt_num(len(m.history.get("other_runtimes", [])), sig=None),
           "mp_n_clean": fmt_num(int(df["clean"].sum()) if len(df) else 0, sig=None),
           "mp_n_dirty": fmt_num(int((~df["clean"]).sum()) if len(df) else 0, sig=None),
           "mp_n_superseded": fmt_num(m.history.get("rows_this_runtime", 0) - len(df), sig=None),
           "mp_commits": ", ".join(m.commits) or "none"}
    clocks = sorted({int(c) for c in pd.to_numeric(df["clock_hz"], errors="coerce").dropna()}) if len(df) else []
    out["mp_clock_mhz"] = " and ".join(fmt_num(c / 1e6, sig=3) for c in clocks) + " MHz" if clocks else "n/a"
    out["mp_n_tokens"] = fmt_num(N_TOKENS, sig=None)
    out["mp_heap_uart"] = fmt_num(planner.HEAP_FREE_AFTER_BOOT["uart"], sig=None)
    out["mp_heap_usb"] = fmt_num(planner.HEAP_FREE_AFTER_BOOT["usb"], sig=None)
    out["mp_largest_ram"] = largest_in_ram_text(ram_ok)
    out["mp_probes_text"] = probes_text(df)
    out["mp_max_tok_s"] = fmt_num(float(ok["tok_s"].max()), sig=3) if len(ok) else "n/a"
    for target, name in ((10_000, "10k"), (100_000, "100k")):
        r = nearest(df, target)
        out[f"mp_{name}_model"] = r["model"] if r else "n/a"
        out[f"mp_{name}_params"] = fmt_num(r["n_params"], sig=None) if r else "n/a"
        out[f"mp_{name}_tok_s"] = fmt_num(r["tok_s"], sig=3) if r else "n/a"
        out[f"mp_{name}_tok_s_last"] = fmt_num(r["tok_s_last"], sig=3) if r else "n/a"
        out[f"mp_{name}_text"] = (
            f"{r['model']} ({fmt_num(r['n_params'], sig=None)} parameters) runs at {fmt_num(r['tok_s'], sig=3)} "
            f"tokens/s averaged over the {N_TOKENS} tokens and {fmt_num(r['tok_s_last'], sig=3)} tokens/s at the "
            "last position" if r else
            f"no study model within a factor of 1.5 of {fmt_num(target, sig=None)} parameters has a measured run "
            "with weights in RAM yet")
    for mode in ("ram", "flash"):
        sel = ok[ok["weights_requested"] == mode] if len(ok) else ok
        a = pd.to_numeric(sel["alloc_per_token"], errors="coerce").dropna() if len(sel) else pd.Series(dtype=float)
        out[f"mp_alloc_{mode}"] = (fmt_num(a.min(), sig=None) if a.min() == a.max() else
                                   f"{fmt_num(a.min(), sig=None)} to {fmt_num(a.max(), sig=None)}") if len(a) else "n/a"
    h = pd.to_numeric(ok["heap_free_after_load"], errors="coerce").dropna() if len(ok) else pd.Series(dtype=float)
    out["mp_heap_min"] = fmt_num(h.min(), sig=None) if len(h) else "n/a"
    out["mp_heap_max"] = fmt_num(h.max(), sig=None) if len(h) else "n/a"
    ld = pd.to_numeric(ok["load_ms"], errors="coerce").dropna() if len(ok) else pd.Series(dtype=float)
    out["mp_load_min"] = fmt_num(ld.min(), sig=2) if len(ld) else "n/a"
    out["mp_load_max"] = fmt_num(ld.max(), sig=2) if len(ld) else "n/a"
    out["mp_err_n"] = fmt_num(len(err), sig=None)
    out["mp_err_low"] = fmt_num(100 * err["error"].min(), sig=2) + "%" if len(err) else "n/a"
    out["mp_err_high"] = fmt_num(100 * err["error"].max(), sig=2) + "%" if len(err) else "n/a"
    out["mp_err_outside"] = fmt_num(int((~err["within range"]).sum()) if len(err) else 0, sig=None)
    fails = check[~check["ran"]] if len(check) else check
    out["mp_mem_judged"] = fmt_num(len(check), sig=None)
    out["mp_mem_failed"] = fmt_num(len(fails), sig=None)
    out["mp_fit_but_fails"] = fmt_num(int((fails["predicted to fit"]).sum()) if len(fails) else 0, sig=None)
    said_no = int((~check["predicted to fit"] & check["ran"]).sum()) if len(check) else 0
    out["mp_no_but_ran"] = fmt_num(said_no, sig=None)
    return out


# ---------------------------------------------------------------- figures

def _legend(title: str):
    import altair as alt
    return alt.Legend(title=title, orient="bottom", columns=2, labelLimit=360)


def speed_chart(df: pd.DataFrame, predicted: pd.DataFrame):
    """Measured tokens/s against parameters (both weights modes); predicted points only for unmeasured models."""
    import altair as alt

    from ..book.figures import label
    meas = df[df["status"] == "ok"] if len(df) else pd.DataFrame()
    pts = pd.DataFrame({"model": meas["model"], "parameters": meas["n_params"], "tok_s": meas["tok_s"],
                        "kind": meas["weights_mode"] + ", measured (emulated)"}) if len(meas) else \
        pd.DataFrame(columns=["model", "parameters", "tok_s", "kind"])
    if len(predicted):
        pr = predicted[predicted["fits"] == "yes"]
        pts = pd.concat([pts, pd.DataFrame({"model": pr["model"], "parameters": pr["parameters"],
                                            "tok_s": pr["tok/s"], "kind": pr["weights"] + ", predicted"})])
    return alt.Chart(pts).mark_point(size=55).encode(
        x=alt.X("parameters:Q", scale=alt.Scale(type="log"), title=label("parameters", "log scale")),
        y=alt.Y("tok_s:Q", scale=alt.Scale(type="log"), title=label("tokens/s at 125 MHz", "log scale")),
        color=alt.Color("kind:N", legend=_legend("run")),
        shape=alt.Shape("kind:N", legend=None),
        tooltip=["model", alt.Tooltip("parameters:Q", format=","), alt.Tooltip("tok_s:Q", format=",.1f"), "kind"],
    ).properties(width=520, height=300, title=["Decode speed, full 64-token context",
                                                "emulated stock firmware (MicroPython 1.27, rp2040js cycle-counted)"])


def heap_chart(df: pd.DataFrame):
    """Heap free after load against parameters; runs that failed drawn at zero."""
    import altair as alt

    from ..book.figures import label
    pts = df.assign(free_kb=pd.to_numeric(df["heap_free_after_load"], errors="coerce").fillna(0) / 1024,
                    outcome=df["status"].map(lambda s: "ran" if s == "ok" else f"failed: {s}"),
                    kind=df["weights_mode"])
    chart = alt.Chart(pts).mark_point(filled=True, size=55).encode(
        x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title=label("parameters", "log scale")),
        y=alt.Y("free_kb:Q", title=label("heap free after load", "KB")),
        color=alt.Color("kind:N", legend=_legend("weights")), shape=alt.Shape("outcome:N", legend=_legend("run")),
        tooltip=["model", "weights_mode", "status", alt.Tooltip("free_kb:Q", format=",.1f")])
    return chart.properties(width=520, height=280, title=["Heap free after loading each model",
                                                          "emulated stock firmware (UART build: 245,904 bytes free "
                                                          "after boot)"])


def error_chart(err: pd.DataFrame):
    import altair as alt

    from ..book.figures import label
    data = err.assign(error_pct=100 * err["error"], kind=err["kernels"] + " kernels, " + err["weights"])
    pts = alt.Chart(data).mark_point(filled=True, size=50).encode(
        x=alt.X("parameters:Q", scale=alt.Scale(type="log"), title=label("parameters", "log scale")),
        y=alt.Y("error_pct:Q", title=label("planner error (predicted / measured − 1)", "%")),
        color=alt.Color("kind:N", legend=_legend("runs")),
        tooltip=["model", "weights", alt.Tooltip("error_pct:Q", format="+.1f")])
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="gray").encode(y="y:Q")
    return (pts + zero).properties(width=520, height=260, title=["Calibrated planner against the measured speed",
                                                                 "emulated stock firmware, 125 MHz"])


def hardware_table(results_dir) -> pd.DataFrame:
    """Rows a real board measured (``speed_source="measured_hardware"``), at the clock it reported."""
    rows = [r for r in runs_table(runs_path(results_dir)).rows() if r.get("speed_source") == "measured_hardware"]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    cols = ["model", "board", "runtime", "status", "tokens_per_s", "ms_per_token", "load_ms", "heap_free_before",
            "heap_free_after", "clock_hz", "message"]
    return df[[c for c in cols if c in df.columns]]
