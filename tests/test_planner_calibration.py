"""The MicroPython planner against the committed measurements (data/results/device/micropython_runs).

The rows come from the emulated-firmware board (real MicroPython 1.27 firmware in rp2040js,
cycles at the firmware's 125 MHz). The planner's constants must be the fit of these rows (golden), and
its stated range the fit's worst error; how it predicts models left out of the fit is a benchmark
(`make bench-planner`), not a test.
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


def test_the_committed_constants_are_the_fit_of_the_committed_rows():
    """planner.py's calibration block is what `python -m starmind_lib.devices.calibration --write` writes from the
    committed table: a table changed without a refit (or constants edited by hand) fails here. How well the fit
    predicts a model it has not seen is printed by `make bench-planner` (leave one model out)."""
    from starmind_lib.devices import calibration
    rows = calibration.calibration_rows(calibration.load_rows())
    assert calibration.calibration_block(rows) == calibration.committed_block()


def test_the_stated_speed_range_is_the_fits_worst_error():
    from starmind_lib.devices import calibration
    rows = calibration.calibration_rows(calibration.load_rows())
    errs = calibration.speed_errors(rows, planner.CALIBRATED_SPEED)
    for kernels, tol in planner.SPEED_TOLERANCE_BY_KERNELS.items():
        worst = max(abs(e) for e, name in errs if name.rsplit("/", 2)[-2] == kernels)
        assert tol - 0.01 < worst <= tol, (kernels, worst, tol)


def test_files_larger_than_the_filesystem_are_predicted_not_to_fit():
    for r in ROWS:
        if r["status"] == "filesystem_error":
            plan = planner.plan_memory(r, context=_context(r), weights=r["weights_requested"])
            assert not plan.fits, r["model"]


def test_every_measured_ok_row_matches_the_reference_engine():
    ok = [r for r in ROWS if r["status"] == "ok"]
    bad = [r["model"] for r in ok if not r["tokens_match_reference"]]
    assert not bad, bad


def test_leave_one_model_out_is_resumable_and_keyed_by_the_calibration(tmp_path):
    import pandas as pd

    from starmind_lib.devices import calibration
    rows = calibration.calibration_rows(calibration.load_rows())
    models = sorted({r["model"] for r in rows if r["status"] == "ok" and r["kernels"] == "viper"
                     and r["weights"] == "ram"})[:5]
    few = [r for r in rows if r["model"] in models and r["kernels"] == "viper" and r["weights"] == "ram"]
    held = calibration.measure_holdout(few, tmp_path)
    assert sorted(r["model"] for r in held) == sorted(models)     # each model once, predicted by the other four
    for r in held:
        others = [x for x in few if x["model"] != r["model"]]
        (err, _), = calibration.speed_errors([x for x in few if x["model"] == r["model"]],
                                             calibration.fit_speed(others))
        assert r["error"] == err and r["stated_range"] == planner.SPEED_TOLERANCE_BY_KERNELS["viper"]
    journal = tmp_path / "device" / "planner_holdout.jsonl"
    before = journal.read_bytes()
    calibration.measure_holdout(few, tmp_path)
    assert journal.read_bytes() == before                          # a rerun of the same calibration adds nothing
    assert len(calibration.read_holdout(tmp_path)) == 5
    assert calibration.read_holdout(tmp_path, block="another calibration").empty


def test_holdout_words_follow_a_known_table():
    import pandas as pd

    from starmind_lib.devices import calibration
    held = pd.DataFrame({"model": ["a", "b", "c", "d"], "kernels": ["asm", "asm", "viper", "viper"],
                         "weights": ["ram", "ram", "flash", "flash"], "error": [0.02, -0.2, 0.01, 0.03],
                         "stated_range": [0.1, 0.1, 0.03, 0.03]})
    t = calibration.holdout_table(held)
    assert list(t["outside the range"]) == [1, 0] and list(t["worst model"]) == ["b", "d"]
    assert calibration.holdout_words(held) == (
        "the median error is 2.0 % to 11.0 % by kernels and weights mode, the worst -20 % (b, asm, weights in RAM), "
        "and 1 of 4 predictions lie outside the range the planner states")
    assert calibration.holdout_words(pd.DataFrame()).startswith("not measured for the planner's current constants")
