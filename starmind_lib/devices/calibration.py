"""Fit the MicroPython planner to measurements on the emulated firmware (``micropython_runs``).

    python -m starmind_lib.devices.calibration            # refit; prints the constants for planner.py

Speed: cycles per decode step = a non-negative combination of per-token operation
counts (:func:`speed_features`), fitted per (kernels, weights) to the smallest worst
relative error of the predicted tokens per second over the measured models (linear
programmes, scipy's ``linprog``); the stated range of a prediction
(``SPEED_TOLERANCE_BY_KERNELS``) is that worst error. Memory: the heap a model
needs at its peak (load: the tensors plus one tensor's copy; run: the buffers and the
KV cache) as a linear function of the plan's parts, fitted on the measured peaks, with
a margin set so that no model that ran out of memory is predicted to fit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import planner

SPEED_FEATURES = planner.SPEED_FEATURES
MEMORY_FEATURES = planner.MEMORY_FEATURES
attention_length = planner.attention_length
speed_features = planner.speed_features
memory_features = planner.memory_features
PLANNER = Path(planner.__file__)
MARK_BEGIN, MARK_END = "# @@CALIBRATION@@", "# @@END CALIBRATION@@"


def _nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Non-negative least squares (scipy's), columns scaled for conditioning."""
    from scipy.optimize import nnls
    scale = np.maximum(np.abs(A).max(axis=0), 1e-300)
    return nnls(A / scale, b)[0] / scale


def _minimax_ratio(A: np.ndarray, iters: int = 40) -> np.ndarray:
    """Non-negative c with the smallest t such that |1 / (A c)_i - 1| <= t for every row i (A: features over
    measured cycles, so 1 / (A c) is measured / predicted cycles = predicted / measured tokens per second):
    bisection on t, each step a feasibility linear programme 1 / (1 + t) <= A c <= 1 / (1 - t)."""
    from scipy.optimize import linprog
    scale = np.abs(A).max(axis=0)
    A = A / scale                                          # columns of one size, for the solver
    m, n = A.shape[1], len(A)

    def solve(t):
        res = linprog(np.zeros(m), A_ub=np.vstack([A, -A]), b_ub=np.r_[np.full(n, 1 / (1 - t)), np.full(n, -1 / (1 + t))],
                      bounds=[(0, None)] * m, method="highs")
        return res.x if res.status == 0 else None
    lo, hi, best = 0.0, 0.9, None
    while best is None:
        best = solve(hi)
        if best is None:
            lo, hi = hi, (hi + 1) / 2
    for _ in range(iters):
        mid = (lo + hi) / 2
        x = solve(mid)
        if x is None:
            lo = mid
        else:
            hi, best = mid, x
    return best / scale


def fit_speed(rows: list[dict]) -> dict[str, dict[str, float]]:
    """(kernels/weights) -> coefficient per feature (non-negative) with the smallest worst relative error of the
    predicted speed (tokens per second) over the measured rows (:func:`_minimax_ratio`)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("cycles_per_token"):
            groups.setdefault(f"{r['kernels']}/{r['weights']}", []).append(r)
    out = {}
    for g, rs in sorted(groups.items()):
        X = np.array([[speed_features(r, attention_length(len(r["prompt_ids"]), r["n_tokens"]),
                                      r["weights"])[f] for f in SPEED_FEATURES] for r in rs])
        y = np.array([r["cycles_per_token"] for r in rs], dtype=float)
        used = [i for i in range(len(SPEED_FEATURES)) if X[:, i].any()]
        coef = np.zeros(len(SPEED_FEATURES))
        coef[used] = _minimax_ratio(X[:, used] / y[:, None])
        out[g] = {f: float(c) for f, c in zip(SPEED_FEATURES, coef) if c > 0}
    return out


def speed_tolerance(rows: list[dict], coefs: dict) -> dict[str, float]:
    """kernels -> the worst relative speed error of the fit over their groups, rounded up to the per cent."""
    worst: dict[str, float] = {}
    for e, name in speed_errors(rows, coefs):
        k = name.rsplit("/", 2)[-2]
        worst[k] = max(worst.get(k, 0.0), abs(e))
    return {k: float(np.ceil(v * 100 - 1e-9) / 100) for k, v in sorted(worst.items())}


def runner_import_bytes(rows: list[dict]) -> int:
    """Heap the runner's imports take (free after boot - free when run_model starts), the largest seen."""
    vals = [r["heap_free_after_boot"] - r["heap_free_before"] for r in rows
            if r.get("heap_free_after_boot") and r.get("heap_free_before")]
    return int(max(vals)) if vals else 0


def fit_memory(rows: list[dict]) -> dict:
    """Peak heap above the runner's start as a function of the plan's parts; the margin from the failures."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("heap_peak_alloc")]
    feats = lambda r: memory_features(r, len(r["prompt_ids"]) + r["n_tokens"] - 1, r["weights_requested"])  # noqa: E731
    X = np.array([[feats(r)[f] for f in MEMORY_FEATURES] for r in ok])
    need = np.array([r["heap_peak_alloc"] - (r["heap_total"] - r["heap_free_before"]) for r in ok], dtype=float)
    coef = _nnls(X / need[:, None], np.ones_like(need))
    coef_d = {f: float(c) for f, c in zip(MEMORY_FEATURES, coef) if c}
    imports = runner_import_bytes(rows)

    def nominal(r):
        f = feats(r)
        return sum(c * f[k] for k, c in coef_d.items())
    # per weights mode, the smallest margin that says "does not fit" for every model that ran out of memory
    # (streaming from flash leaves the heap to many small buffers: its failures come earlier than the model says)
    margin = {"ram": 0.02, "flash": 0.02}
    for r in rows:
        if r.get("status") == "out_of_memory":
            budget = r["heap_free_after_boot"] - imports
            mode = r["weights_requested"]
            margin[mode] = max(margin[mode], budget / nominal(r) - 1 + 0.005)
    margin = {k: round(v, 4) for k, v in margin.items()}
    refused = [r["model"] for r in ok
               if nominal(r) * (1 + margin[r["weights_requested"]]) > r["heap_free_after_boot"] - imports]
    return {"coef": coef_d, "margin": margin, "runner_import_bytes": imports,
            "ok_refused": refused, "n_ok": len(ok)}


def speed_errors(rows: list[dict], coefs: dict) -> list[tuple[float, str]]:
    """(predicted / measured tokens per second - 1, "model/kernels/weights"), worst first."""
    out = []
    for r in rows:
        g = f"{r.get('kernels')}/{r.get('weights')}"
        if r.get("status") != "ok" or not r.get("cycles_per_token") or g not in coefs:
            continue
        f = speed_features(r, attention_length(len(r["prompt_ids"]), r["n_tokens"]), r["weights"])
        pred = sum(c * f[k] for k, c in coefs[g].items())
        out.append((r["cycles_per_token"] / pred - 1, f"{r['model']}/{g}"))
    return sorted(out, key=lambda e: -abs(e[0]))


def calibration_block(rows: list[dict]) -> str:
    """``rows``: :func:`calibration_rows` (speed from every group; memory from the tree's runtime)."""
    speed, mem = fit_speed(rows), fit_memory(memory_rows(rows))
    runtimes = sorted({r.get("runtime_sha256_16") for r in rows if r.get("runtime_sha256_16")})
    fmt = lambda d: "{" + ", ".join(f"{k!r}: {v:.6g}" for k, v in d.items()) + "}"  # noqa: E731
    lines = [f"{MARK_BEGIN} written by `python -m starmind_lib.devices.calibration --write` from "
             f"{len(rows)} rows (runtime {', '.join(runtimes) or '?'})",
             "CALIBRATED_SPEED = {  # cycles per unit of each speed feature, by kernels/weights"]
    lines += [f"    {g!r}: {fmt(c)}," for g, c in speed.items()]
    lines += ["}",
              f"SPEED_TOLERANCE_BY_KERNELS = {speed_tolerance(rows, speed)}  # the stated range: the fit's worst "
              "error, by kernels",
              f"CALIBRATED_MEMORY = {fmt(mem['coef'])}  # peak heap bytes per unit of each memory feature",
              f"MEMORY_MARGIN = {mem['margin']}  # by weights mode: the smallest that refuses every model that ran "
              "out of memory",
              f"RUNNER_IMPORT_BYTES = {mem['runner_import_bytes']}  # heap the runtime's imports take (measured)",
              MARK_END]
    return "\n".join(lines)


def write_planner(block: str, path: Path = PLANNER) -> None:
    text = path.read_text()
    i = text.index(MARK_BEGIN)
    j = text.index(MARK_END, i) + len(MARK_END) if MARK_END in text[i:] else text.index("\n", i)
    path.write_text(text[:i] + block + text[j:])


def load_rows(path: Path | None = None) -> list[dict]:
    """Every measurement in the journal (all runtimes, all commits)."""
    from .measure import RUNS_TABLE, runs_table
    return runs_table(Path(path).with_suffix("") if path else RUNS_TABLE).rows()


def calibration_rows(rows: list[dict], runtime: str | None = None) -> list[dict]:
    """The rows the planner is fitted to: the working tree's runtime (:func:`measure.current_rows`), plus, for
    a kernels/weights group that runtime has no run of (viper where asm runs), that group's rows from the
    most recently measured runtime that has it. Memory is fitted on the first part only."""
    from .measure import current_rows, tree_runtime
    runtime = runtime or tree_runtime()
    out = current_rows(rows, runtime)
    group = lambda r: f"{r.get('kernels')}/{r.get('weights')}"  # noqa: E731
    have = {group(r) for r in out if r.get("status") == "ok"}
    latest: dict = {}
    for r in rows:
        g = group(r)
        if r.get("status") == "ok" and g not in have and str(r.get("timestamp")) > latest.get(g, ("", ""))[0]:
            latest[g] = (str(r.get("timestamp")), r.get("runtime_sha256_16"))
    for g, (_, rt) in sorted(latest.items()):
        out += [r for r in current_rows(rows, rt) if group(r) == g and r.get("status") == "ok"]
    return out


def memory_rows(rows: list[dict], runtime: str | None = None) -> list[dict]:
    from .measure import tree_runtime
    runtime = runtime or tree_runtime()
    return [r for r in rows if r.get("runtime_sha256_16") == runtime]


HOLDOUT_TABLE = ("device", "planner_holdout")


def committed_block(path: Path = PLANNER) -> str:
    """The calibration block planner.py holds now (what :func:`calibration_block` wrote)."""
    text = Path(path).read_text()
    i = text.index(MARK_BEGIN)
    return text[i:text.index(MARK_END, i) + len(MARK_END)]


def calibration_id(block: str) -> str:
    import hashlib
    return hashlib.sha256(block.encode()).hexdigest()[:12]


def measure_holdout(rows: list[dict], results_dir, profile: str = "") -> list[dict]:
    """Leave one model out, into ``<results_dir>/device/planner_holdout`` (resumable): one row per model and
    kernels/weights group, keyed by the committed calibration's id, so a refit starts a new set of rows."""
    from ..provenance import ResultTable, provenance
    table = ResultTable(Path(results_dir).joinpath(*HOLDOUT_TABLE), key="key")
    cal, done = calibration_id(committed_block()), table.keys()
    group = lambda r: f"{r.get('kernels')}/{r.get('weights')}"  # noqa: E731
    ok = [r for r in rows if r.get("status") == "ok" and r.get("cycles_per_token")]
    for model in sorted({r["model"] for r in ok}):
        mine = [r for r in ok if r["model"] == model]
        # the groups another model also ran in (a group of one model has no fit without it)
        want = {group(r) for r in mine} & {group(r) for r in ok if r["model"] != model}
        if all(f"{cal}/{model}/{g}" in done for g in want):
            continue
        for e, name in speed_errors(mine, fit_speed([r for r in rows if r["model"] != model])):
            g = name.split("/", 1)[1]
            kernels, weights = g.split("/")
            table.append({"key": f"{cal}/{model}/{g}", "calibration": cal, "model": model, "kernels": kernels,
                          "weights": weights, "error": e, "n_rows": len(rows),
                          "stated_range": planner.SPEED_TOLERANCE_BY_KERNELS.get(kernels, planner.SPEED_TOLERANCE),
                          "speed_source": "predicted vs emulated_stock_firmware", **provenance(profile)})
    table.snapshot()
    return [r for r in table.rows() if r.get("calibration") == cal]


def read_holdout(results_dir, block: str | None = None):
    """The held-out rows of the committed calibration (``block``: planner.py's) from
    ``<results_dir>/device/planner_holdout``; empty when that calibration has none (refit since)."""
    import pandas as pd

    from ..provenance import ResultTable
    cal = calibration_id(block if block is not None else committed_block())
    rows = [r for r in ResultTable(Path(results_dir).joinpath(*HOLDOUT_TABLE), key="key").rows()
            if r.get("calibration") == cal]
    return pd.DataFrame(rows)


def holdout_table(held) -> "pd.DataFrame":
    """Per kernels and weights: models held out, the median and worst error of their predicted speed, and how
    many lie outside the planner's stated range."""
    import pandas as pd
    if held.empty:
        return pd.DataFrame()
    out = []
    for (k, w), g in held.groupby(["kernels", "weights"]):
        worst = g.loc[g["error"].abs().idxmax()]
        out.append({"kernels": k, "weights": w, "models held out": len(g),
                    "median |error| (%)": 100 * float(g["error"].abs().median()),
                    "worst error (%)": 100 * float(worst["error"]), "worst model": worst["model"],
                    "stated range (± %)": 100 * float(g["stated_range"].iloc[0]),
                    "outside the range": int((g["error"].abs() > g["stated_range"]).sum())})
    return pd.DataFrame(out)


def holdout_words(held) -> str:
    """The held-out errors in one clause (or why there are none)."""
    t = holdout_table(held)
    if t.empty:
        return ("not measured for the planner's current constants (make bench-planner measures it into the "
                "table device/planner_holdout)")   # glued text: no markdown
    w = t.loc[t["worst error (%)"].abs().idxmax()]
    return (f"the median error is {t['median |error| (%)'].min():.1f} % to {t['median |error| (%)'].max():.1f} % "
            f"by kernels and weights mode, the worst {w['worst error (%)']:+.0f} % ({w['worst model']}, "
            f"{w['kernels']}, weights in {w['weights'].replace('ram', 'RAM')}), and {int(t['outside the range'].sum())} "
            f"of {int(t['models held out'].sum())} predictions lie outside the range the planner states")


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m starmind_lib.devices.calibration", description=__doc__.split("\n")[0])
    p.add_argument("--table", default=None, help="micropython_runs.jsonl (default: the committed one)")
    p.add_argument("--write", action="store_true", help="write the constants into planner.py")
    p.add_argument("--results-dir", default="data/results", help="where --holdout writes device/planner_holdout")
    p.add_argument("--holdout", action="store_true",
                   help="only print how the fit predicts each model left out of it (make bench-planner)")
    args = p.parse_args(argv)
    rows = calibration_rows(load_rows(Path(args.table) if args.table else None))
    if args.holdout:
        print(f"planner speed, leave one model out ({len(rows)} rows of the emulated stock firmware; a prediction, "
              "checked against measurements it was not fitted to):")
        held = measure_holdout(rows, args.results_dir, profile="full")
        import pandas as pd
        with pd.option_context("display.width", 200, "display.precision", 1):
            print(holdout_table(pd.DataFrame(held)).to_string(index=False))
        print(f"  {holdout_words(pd.DataFrame(held))} ({len(held)} rows in "
              f"{Path(args.results_dir).joinpath(*HOLDOUT_TABLE)}.jsonl)")
        return 0
    block = calibration_block(rows)
    print(block)
    speed = fit_speed(rows)
    errs = speed_errors(rows, speed)
    if errs:
        print(f"speed: worst {errs[0][0]:+.1%} ({errs[0][1]}), {sum(abs(e) > 0.10 for e, _ in errs)} of {len(errs)} "
              f"outside +-10 %")
    mem = fit_memory(memory_rows(rows))
    print(f"memory: {len(mem['ok_refused'])} of {mem['n_ok']} runs that fit would be refused: {mem['ok_refused'][:10]}")
    if args.write:
        write_planner(block)
        print(f"wrote {PLANNER}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
