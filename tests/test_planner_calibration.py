"""The MicroPython planner against the committed measurements (data/results/device/micropython_runs).

The rows come from the emulated-firmware board (real MicroPython 1.27 firmware in rp2040js,
cycles at the firmware's 125 MHz): the planner's speed must land within +-10 % of every
measured model (viper; the asm fit states its own wider range), and its memory verdicts must be conservative: no model it says fits ran out
of memory, and at most 5 % of the models that ran are said not to fit.
"""
from __future__ import annotations

import pytest

from starmind_lib.devices import planner
from starmind_lib.provenance import REPO_ROOT

TABLE = REPO_ROOT / "data" / "results" / "device" / "micropython_runs.jsonl"


def measured_rows() -> list[dict]:
    """The rows the planner is fitted to: the working tree's runtime (one per job, a clean commit's row
    first), plus the latest runtime's rows of a kernels/weights group this runtime has not run (viper)."""
    if not TABLE.exists():
        return []
    from starmind_lib.devices.calibration import calibration_rows, load_rows
    return [r for r in calibration_rows(load_rows(TABLE)) if r.get("speed_source") == "emulated_stock_firmware"
            or r.get("status") != "ok"]


ROWS = measured_rows()
pytestmark = pytest.mark.skipif(not ROWS, reason=f"no measured rows in {TABLE}")


def _context(r):
    return len(r["prompt_ids"]) + r["n_tokens"] - 1


def test_the_planner_knows_the_board():
    assert planner.PICO_CLOCK_HZ == 125_000_000
    assert planner.HEAP_TOTAL == {"usb": 246_016, "uart": 249_984}
    assert abs(planner.HEAP_FREE_AFTER_BOOT["usb"] - 241_900) < 200
    assert abs(planner.HEAP_FREE_AFTER_BOOT["uart"] - 245_900) < 200
    assert planner.PICO_FS_BYTES == 1408 * 1024
    for r in ROWS:
        if r.get("clock_hz"):
            assert r["clock_hz"] == planner.PICO_CLOCK_HZ
        if r.get("heap_free_after_boot"):
            assert r["heap_free_after_boot"] == planner.HEAP_FREE_AFTER_BOOT["uart"]


def test_every_measured_speed_lies_in_the_planners_stated_range_and_viper_within_10_percent():
    ok = [r for r in ROWS if r["status"] == "ok" and r.get("cycles_per_token")]
    assert ok and {r["kernels"] for r in ok} >= {"viper", "asm"}
    worst, outside = [], []
    for r in ok:
        t = planner.attention_length(len(r["prompt_ids"]), r["n_tokens"])
        sp = planner.predict_speed(r, f"micropython-{r['kernels']}", context=t, weights=r["weights"])
        err = sp.tokens_per_s / r["tokens_per_s"] - 1
        worst.append((abs(err), r["model"], r["weights"], r["kernels"], round(err, 3)))
        if not sp.tokens_per_s_low <= r["tokens_per_s"] <= sp.tokens_per_s_high:
            outside.append((r["model"], r["weights"], r["kernels"], round(err, 3)))
    worst.sort(reverse=True)
    viper = [w for w in worst if w[3] == "viper"]
    assert viper[0][0] <= 0.10, f"worst viper predictions: {viper[:5]}"
    assert not outside, f"measured speeds outside the planner's stated range: {outside[:5]}"


def test_memory_verdicts_are_conservative():
    """Never 'fits' for a model that ran out of memory; 'does not fit' for at most 5 % of those that ran."""
    judged = [r for r in ROWS if r["status"] in ("ok", "out_of_memory")]
    said_fit_but_failed, said_no_but_ran = [], []
    for r in judged:
        plan = planner.plan_memory(r, heap_free=r.get("heap_free_after_boot") or planner.HEAP_FREE_AFTER_BOOT["uart"],
                                   context=_context(r), weights=r["weights_requested"])
        if plan.fits and r["status"] == "out_of_memory":
            said_fit_but_failed.append(r["model"] + "/" + r["weights_requested"])
        if not plan.fits and r["status"] == "ok":
            said_no_but_ran.append(r["model"] + "/" + r["weights_requested"])
    ran = sum(r["status"] == "ok" for r in judged)
    assert not said_fit_but_failed, said_fit_but_failed
    assert len(said_no_but_ran) <= 0.05 * ran, said_no_but_ran


def test_files_larger_than_the_filesystem_are_predicted_not_to_fit():
    for r in ROWS:
        if r["status"] == "filesystem_error":
            plan = planner.plan_memory(r, context=_context(r), weights=r["weights_requested"])
            assert not plan.fits, r["model"]


def test_every_measured_ok_row_matches_the_reference_engine():
    ok = [r for r in ROWS if r["status"] == "ok"]
    bad = [r["model"] for r in ok if not r["tokens_match_reference"]]
    assert not bad, bad
