"""The MicroPython runs table (every measurement kept, the current runtime's rows chosen), chapter 06b's
glue built on it, and claim 11 from the emulated-firmware rows. Synthetic rows: no emulator runs here."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from starmind_lib.analysis import audit
from starmind_lib.analysis.audit import AuditData
from starmind_lib.chapters import ch06b_micropython as ch
from starmind_lib.devices import calibration, measure, planner

RT = "aaaaaaaaaaaaaaaa"       # the runtime under test (monkeypatched as the working tree's)
OLD = "bbbbbbbbbbbbbbbb"
ARCH = {"vocab_size": 64, "dim": 16, "n_layers": 1, "n_heads": 2, "ffn_hidden": 32, "activation": "gelu",
        "pos": "learned", "tied": True, "max_seq_len": 64}


def row(model="m1", weights="ram", runtime=RT, commit="abc123", diff="", ts="2026-01-01T00:00:00", status="ok",
        kernels="asm", tok_s=100.0, **kw) -> dict:
    job = json.dumps([model, [1], 64, weights, "auto", runtime])
    r = {"run_key": f"{model}-{weights}", "job_id": job, "runtime_sha256_16": runtime, "board": "emulated:X.bin",
         "model": model, "variant_id": model, "source": "study", "n_params": 1000, **ARCH,
         "weights_requested": weights, "weights": weights if status == "ok" else None,
         "kernels": kernels if status == "ok" else None, "runtime": f"micropython-{kernels}", "status": status, "message": "",
         "prompt_ids": [1], "n_tokens": 64, "tokens_match_reference": status == "ok",
         "tokens_per_s": tok_s if status == "ok" else None,
         "cycles_per_token": 125e6 / tok_s if status == "ok" else None,
         "cycles_last_token": 125e6 / tok_s * 1.1 if status == "ok" else None,
         "heap_free_after_load": 190_000 if status == "ok" else None, "heap_free_before": 224_560,
         "heap_free_after_boot": 245_904, "alloc_per_token": 0.0 if weights == "ram" else 16.0, "load_ms": 100.0,
         "flash_bytes": 12_000, "clock_hz": 125_000_000,
         "speed_source": "emulated_stock_firmware" if status == "ok" else "none",
         "git_commit": commit, "git_diff": diff, "timestamp": ts}
    r.update(kw)
    return r


@pytest.fixture(autouse=True)
def tree_is_rt(monkeypatch):
    monkeypatch.setattr(measure, "tree_runtime", lambda: RT)


def write(stem, rows):
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return measure.runs_table(stem)


def test_the_table_keeps_every_runtime_and_commit_and_drops_only_exact_repeats(tmp_path):
    a = row(runtime=OLD, commit="old-dirty", diff="d1")
    b = row(commit="abc-dirty", diff="d2", ts="2026-01-02")
    c = row(commit="abc123", ts="2026-01-03")
    table = write(tmp_path / "runs", [a, b, c, c])
    assert [r["git_commit"] for r in table.rows()] == ["old-dirty", "abc-dirty", "abc123"]


def test_current_rows_take_one_runtime_and_prefer_a_clean_commit_then_the_latest():
    rows = [row(runtime=OLD, ts="2026-01-09"), row(commit="x-dirty", diff="d", ts="2026-01-05"),
            row(commit="abc123", ts="2026-01-01"), row(commit="y-dirty", diff="e", ts="2026-01-07"),
            row(model="m2", commit="z-dirty", diff="f")]
    cur = measure.current_rows(rows)
    assert sorted((r["model"], r["git_commit"]) for r in cur) == [("m1", "abc123"), ("m2", "z-dirty")]
    hist = measure.runtime_history(rows)
    assert hist == {"runtime": RT, "rows_this_runtime": 4, "rows_other_runtimes": 1, "other_runtimes": [OLD],
                    "rows_clean": 1, "rows_dirty": 3}
    # a table read back from parquet has NaN for an empty diff: still clean
    assert measure.is_clean({"git_commit": "abc123", "git_diff": float("nan")})
    assert not measure.is_clean({"git_commit": "abc123-dirty", "git_diff": ""})


def test_a_board_bench_row_without_a_runtime_hash_is_no_runtime_of_the_history(tmp_path):
    """`starmind board bench` rows (a real board, or --port emulated) record no runtime hash; a table holding one
    still builds chapter 06b (it used to fail sorting None with the hashes)."""
    bench = {k: v for k, v in row(model="board-run", ts="2026-01-08").items() if k != "runtime_sha256_16"}
    rows = [row(runtime=OLD), row(ts="2026-01-05"), bench]
    assert measure.runtime_history(rows) == {"runtime": RT, "rows_this_runtime": 1, "rows_other_runtimes": 1,
                                             "other_runtimes": [OLD], "rows_clean": 1, "rows_dirty": 0}
    m = measured(tmp_path, rows)
    assert m.runtime == RT and list(m.rows["model"]) == ["m1"]
    assert ch.numbers(m, ch.planner_errors(m.rows), ch.memory_check(m.rows))["mp_n_history"] == "1"


def test_the_run_key_names_the_runtime():
    job = {"meta": {"variant_id": "m"}, "prompt": [1], "n_tokens": 64, "weights": "ram", "kernels": "auto"}
    assert measure.job_key("b", job, "d", RT) != measure.job_key("b", job, "d", OLD)


def test_merge_appends_the_missing_rows_unchanged(tmp_path):
    main = write(tmp_path / "main" / "runs", [row(commit="abc-dirty", diff="d")])
    other = [row(commit="abc123", ts="2026-02-01"), row(model="m2", commit="abc123", ts="2026-02-02")]
    write(tmp_path / "clean" / "runs", other)
    assert main.merge_from(tmp_path / "clean" / "runs") == 2
    assert main.merge_from(tmp_path / "clean" / "runs") == 0
    assert main.rows()[1:] == other
    assert len(pd.read_parquet(main.stem.with_suffix(".parquet"))) == 3


def test_require_clean_refuses_a_dirty_tree(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(measure, "provenance", lambda **kw: {"git_commit": "abc-dirty", "git_diff": "d"})
    with pytest.raises(SystemExit):
        measure.main(["--require-clean", "--table", str(tmp_path / "runs")])
    assert "--require-clean: the working tree has uncommitted changes (abc-dirty)" in capsys.readouterr().err


def test_a_board_that_cannot_start_stops_the_batch_before_any_row(monkeypatch, tmp_path):
    """No rp2040js (or Node.js, or firmware) is not a measurement of every model: no row is written."""
    from starmind_lib.devices import firmware
    from starmind_lib.devices.virtual import BoardStartError
    monkeypatch.setattr(firmware, "EMULATOR_DIR", tmp_path / "emulator")

    class Board:
        name, firmware, runtime_dir = "emulated:X.bin", tmp_path / "X.bin", None
    (tmp_path / "X.bin").write_bytes(b"\0")
    table = write(tmp_path / "runs", [])
    with pytest.raises(BoardStartError, match=r"rp2040js is missing: run `make npm`"):
        measure.measure(Board(), [{"meta": {"variant_id": "m1"}, "prompt": [1], "n_tokens": 4, "weights": "ram",
                                   "kernels": "auto", "path": tmp_path / "m1.smd"}], table)
    assert table.rows() == []


def test_a_measurement_stopped_after_its_first_row_resumes_without_measuring_a_job_twice(monkeypatch, tmp_path):
    """A batch that stops after its first row (here its row callback raises) keeps that row; the rerun measures
    only the jobs still missing, so each job is on exactly one line of the raw journal, and a third run
    measures nothing. The board is a stand-in that answers at once and counts what it is asked to run."""
    from collections import Counter
    from pathlib import Path

    from starmind_lib.devices import firmware
    from starmind_lib.devices.base import RunRecord
    monkeypatch.setattr(firmware, "check_environment", lambda fw=None: None)
    monkeypatch.setattr(firmware, "runtime_digest", lambda src_dir=None: RT)
    (tmp_path / "X.bin").write_bytes(b"\0")

    class Board:
        name, firmware, runtime_dir = "emulated:X.bin", tmp_path / "X.bin", None

        def __init__(self):
            self.files, self.measured = {}, []

        def preload(self, paths):
            return list(paths)

        def run(self, prompt, n_tokens, model_path):
            self.measured.append((Path(model_path).stem, self.weights))
            return RunRecord(model=Path(model_path).stem, board=self.name, runtime="micropython-asm", status="ok",
                             speed_source="emulated_stock_firmware", tokens_per_s=100.0, cycles_per_token=1.25e6,
                             output_ids=measure.reference_ids(model_path, prompt, n_tokens),
                             extra={"weights": self.weights, "kernels": "asm"})

    def four_jobs():                        # a fresh list each time, as a new process builds it
        return measure.jobs(study=False, probes=False)[:4]
    table = write(tmp_path / "runs", [])

    def stop(row):
        raise RuntimeError(f"stopped after {row['model']} {row['weights_requested']}")
    board = Board()
    with pytest.raises(RuntimeError, match="^stopped after ref_bpe_lc ram$"):
        measure.measure(board, four_jobs(), table, on_row=stop)
    assert board.measured == [("ref_bpe_lc", "ram")]
    assert len(table.journal.read_text().splitlines()) == 1
    board = Board()
    assert measure.measure(board, four_jobs(), table) == 3
    assert board.measured == [("ref_bpe_lc", "flash"), ("ref_dim1_gelu", "ram"), ("ref_dim1_gelu", "flash")]
    lines = [json.loads(line) for line in table.journal.read_text().splitlines() if line.strip()]
    counts = Counter(r["job_id"] for r in lines)       # the raw journal: rows() would hide a repeat
    assert sorted(counts) == sorted(measure._arch_key(j, RT) for j in four_jobs()) and set(counts.values()) == {1}
    assert all(r["tokens_match_reference"] and r["runtime_sha256_16"] == RT for r in lines)
    board = Board()
    assert measure.measure(board, four_jobs(), table) == 0 and board.measured == []
    assert len(table.journal.read_text().splitlines()) == 4


def test_calibration_rows_add_a_group_only_an_older_runtime_ran():
    rows = [row(), row(weights="flash"), row(runtime=OLD, kernels="viper", ts="2026-01-02"),
            row(runtime=OLD, kernels="asm", ts="2026-01-03", model="m3")]
    got = calibration.calibration_rows(rows)
    assert sorted((r["runtime_sha256_16"], r["kernels"], r["weights"]) for r in got) == [
        (RT, "asm", "flash"), (RT, "asm", "ram"), (OLD, "viper", "ram")]
    assert all(r["runtime_sha256_16"] == RT for r in calibration.memory_rows(got))


# ---------------------------------------------------------------- chapter 06b

def measured(tmp_path, rows) -> ch.Measured:
    write(tmp_path / "device" / "micropython_runs", rows)
    return ch.measured_runs(tmp_path)


def test_chapter_uses_the_current_runtime_and_counts_the_history(tmp_path):
    m = measured(tmp_path, [row(runtime=OLD), row(commit="abc-dirty", diff="d"), row(ts="2026-01-05"),
                            row(weights="flash", tok_s=40.0),
                            row(model="big", status="out_of_memory", message="allocating 3136 bytes", dim=256,
                                n_layers=8, ffn_hidden=1024, vocab_size=1024, n_params=6_500_000)])
    assert m.runtime == RT and len(m.rows) == 3
    err, check = ch.planner_errors(m.rows), ch.memory_check(m.rows)
    n = ch.numbers(m, err, check)
    assert (n["mp_n_rows"], n["mp_n_ok"], n["mp_n_failed"], n["mp_n_history"], n["mp_n_clean"], n["mp_n_dirty"],
            n["mp_n_superseded"]) \
        == ("3", "2", "1", "1", "3", "0", "1")
    assert (n["mp_alloc_ram"], n["mp_alloc_flash"], n["mp_max_tok_s"]) == ("0", "16", "100")
    assert n["mp_10k_text"].startswith("no study model within a factor of 1.5 of 10,000 parameters")
    assert (n["mp_fit_but_fails"], n["mp_mem_failed"], n["mp_no_but_ran"]) == ("0", "1", "0")
    table = ch.measured_table(m.rows)
    assert ch.LABEL in ch.MEASURED_CAPTION and "measured on hardware" not in ch.MEASURED_CAPTION
    assert list(zip(table["model"], table["weights"], table["= reference"])) == [
        ("m1", "flash", "yes"), ("m1", "RAM", "yes"), ("big", "RAM", "no")]


def test_memory_check_counts_a_run_the_planner_said_fits_but_failed(tmp_path):
    m = measured(tmp_path, [row(model="small", status="out_of_memory")])   # tiny: the planner says it fits
    check = ch.memory_check(m.rows)
    assert ch.numbers(m, ch.planner_errors(m.rows), check)["mp_fit_but_fails"] == "1"
    tab = ch.memory_crosstab(check).set_index(["planner says", "measured"])["runs"]
    assert tab[("fits", "failed (memory or filesystem)")] == 1


def test_predictions_only_for_models_without_a_measured_row(tmp_path):
    m = measured(tmp_path, [row(model="m1")])
    models = {"m1": {**ARCH, "n_params": 1000}, "m2": {**ARCH, "dim": 32, "n_params": 4000}}
    pred = ch.predicted_frame(models, m.rows)
    assert list(pred["model"]) == ["m2"] and set(pred["label"]) == {"predicted"}


def test_an_empty_table_gives_empty_frames_and_n_a(tmp_path):
    m = ch.measured_runs(tmp_path)
    assert m.rows.empty and ch.measured_table(m.rows).empty and ch.planner_errors(m.rows).empty
    n = ch.numbers(m, pd.DataFrame(), pd.DataFrame())
    assert (n["mp_n_rows"], n["mp_largest_ram"], n["mp_err_low"], n["mp_fit_but_fails"]) == ("0", "n/a", "n/a", "0")
    pred = ch.predicted_frame({"m2": {**ARCH, "n_params": 4000}}, m.rows)
    spec = ch.speed_chart(m.rows, pred).to_dict()     # predicted points alone still make a chart
    assert "predicted" in json.dumps(spec)


# ---------------------------------------------------------------- claim 11 from the emulated firmware

def _claim11(rows):
    df = pd.DataFrame(rows)
    v = pd.DataFrame({"variant_id": sorted(set(df["variant_id"])), "params": 1000, "val_bpc": 2.0})
    return audit.claim_11(AuditData(variants=v, micropython_runs=df))


def test_claim_11_from_emulated_rows_a_file_larger_than_the_heap_runs_chunked():
    big = dict(flash_bytes=300_000)
    rows = [row(model="small"), row(model="big", status="out_of_memory", message="allocating 3136 bytes", **big),
            row(model="big", weights="flash", tok_s=5.0, **big)]
    v = _claim11(rows)
    assert v.verdict == "supported", v.measurement_text
    assert "emulated stock firmware (MicroPython 1.27, rp2040js cycle-counted)" in v.measurement_text
    assert "1 model file is larger than the whole free heap" in v.measurement_text
    assert "chunked loading runs 1 of them and 0 fail either way" in v.measurement_text


def test_claim_11_from_emulated_rows_failing_either_way_and_nothing_too_large():
    big = dict(flash_bytes=300_000)
    rows = [row(model="big", status="out_of_memory", message="allocating 3136 bytes", **big),
            row(model="big", weights="flash", status="out_of_memory", message="allocating 4096 bytes", **big),
            row(model="huge", weights="flash", tok_s=2.0, flash_bytes=500_000)]
    v = _claim11(rows)
    assert v.verdict == "direction supported, size differs"
    assert "1 fail either way (the largest allocation that failed took 4,096 bytes)" in v.measurement_text
    v = _claim11([row(model="small")])
    assert v.verdict == "inconclusive" and "do not test the claim" in v.measurement_text


def test_claim_12_uses_the_current_runtime_and_names_the_weights_mode():
    rows = [row(model="k1", tok_s=600.0), row(model="k1", weights="flash", tok_s=180.0),
            row(model="k1", runtime=OLD, kernels="viper", tok_s=250.0)]
    df = pd.DataFrame(rows)
    v = pd.DataFrame({"variant_id": ["k1"], "params": [1000], "val_bpc": [2.4]})
    verdict = audit.claim_12(AuditData(variants=v, micropython_runs=df))
    assert verdict.verdict == "not comparable"
    text = verdict.measurement_text
    assert "~1K params on micropython-asm, weights in RAM, stock firmware, emulated (cycle-counted): 600 tokens/s" \
        in text
    assert "weights in flash, stock firmware, emulated (cycle-counted): 180 tokens/s" in text
    assert "viper" not in text and "250" not in text
    assert "emulated stock firmware (MicroPython 1.27, rp2040js cycle-counted)" in text


def test_shards_split_the_jobs_without_loss_or_overlap():
    jobs = [{"meta": {"variant_id": f"m{i}"}, "weights": w} for i in range(5) for w in ("ram", "flash")]
    parts = [measure.shard(jobs, f"{k}/3") for k in range(3)]
    assert [j["meta"]["variant_id"] for j in parts[0]] == ["m0", "m0", "m3", "m3"]   # a model's jobs together
    assert sorted(map(str, sum(parts, []))) == sorted(map(str, jobs))
    assert measure.shard(jobs, None) == jobs
    with pytest.raises(ValueError, match="--shard 3/3: K must be in 0..N-1"):
        measure.shard(jobs, "3/3")
    with pytest.raises(ValueError, match="--shard must be K/N"):
        measure.shard(jobs, "half")


def _speed_rows(coef: dict, bump: dict | None = None) -> list[dict]:
    """asm/ram rows of 12 shapes whose cycles are exactly ``coef`` . features (times ``bump[model]``)."""
    out = []
    for i, (d, n, h) in enumerate([(4, 1, 8), (8, 1, 16), (8, 2, 32), (16, 1, 64), (16, 2, 32), (16, 4, 64),
                                    (24, 2, 96), (32, 1, 128), (32, 3, 64), (48, 2, 192), (64, 1, 256), (64, 2, 128)]):
        arch = {**ARCH, "dim": d, "n_layers": n, "ffn_hidden": h, "pos": "rope" if i % 3 else "learned"}
        f = planner.speed_features(arch, planner.attention_length(1, 64), "ram")
        cyc = sum(c * f[k] for k, c in coef.items()) * (bump or {}).get(f"s{i}", 1.0)
        out.append(row(model=f"s{i}", tok_s=125e6 / cyc, **arch))
    return out


def test_the_speed_fit_predicts_exact_costs_exactly_and_minimises_the_worst_error():
    coef = {"const": 50_000.0, "layers": 9_000.0, "macs": 8.0, "attn": 15.0, "rope": 5_000.0}
    exact = calibration.fit_speed(_speed_rows(coef))
    assert max(abs(e) for e, _ in calibration.speed_errors(_speed_rows(coef), exact)) < 1e-6
    assert calibration.speed_tolerance(_speed_rows(coef), exact) == {"asm": 0.0}
    rows = _speed_rows(coef, bump={"s5": 1.3})            # one model 30 % slower than the others say
    fit = calibration.fit_speed(rows)
    errs = calibration.speed_errors(rows, fit)
    worst = max(abs(e) for e, _ in errs)
    # the error is shared between models (the least worst error, 7.6 %), not left on the slow one (30 %)
    assert worst == pytest.approx(0.0757131, abs=1e-5)
    assert sum(abs(abs(e) - worst) < 1e-4 for e, _ in errs) >= 3
    assert calibration.speed_tolerance(rows, fit) == {"asm": 0.08}


def test_size_probes_are_jobs_and_the_largest_in_ram_names_its_kind(tmp_path):
    probes = measure.probe_architectures()
    assert [p["n_params"] for p in probes] == [152_000, 158_032, 159_120, 191_736, 201_280]
    assert all(p["arch"]["dim"] % p["arch"]["n_heads"] == 0 and (p["arch"]["dim"] // p["arch"]["n_heads"]) % 2 == 0
               for p in probes)
    js = [j for j in measure.jobs(study=False) if j["meta"]["source"] == "size_probe"]
    assert sorted((j["meta"]["variant_id"], j["weights"]) for j in js)[:2] == [
        ("mp_probe_d112_l1", "flash"), ("mp_probe_d112_l1", "ram")] and len(js) == 10
    assert not [j for j in measure.jobs(study=False, probes=False) if j["meta"]["source"] == "size_probe"]
    m = measured(tmp_path, [row(model="s", n_params=103_450, tok_s=90.0),
                            row(model="mp_probe_d64_l3", source="size_probe", n_params=152_000, dim=64, n_layers=3,
                                tok_s=60.0),
                            row(model="mp_probe_d64_l4", source="size_probe", n_params=201_280, status="out_of_memory")])
    text = ch.numbers(m, ch.planner_errors(m.rows), ch.memory_check(m.rows))["mp_largest_ram"]
    assert text == ("152,000 parameters (mp_probe_d64_l3, an untrained size probe of a shape chosen for the heap: "
                    "dim 64, 3 layers, 60 tokens/s); the largest study model, 103,450 parameters (s, 90 tokens/s)")
    one = ch.largest_in_ram_text(pd.DataFrame([{"n_params": 158_032, "source": "size_probe", "dim": 112,
                                                "n_layers": 1, "tok_s": 69.82, "model": "mp_probe_d112_l1"}]))
    assert one.endswith("a shape chosen for the heap: dim 112, 1 layer, 69.8 tokens/s)")
    assert ch.probes_text(m.rows) == ("Untrained size probes of shapes chosen for the heap (few layers, wide rows; "
                                      "152,000 to 201,280 parameters): 1 of 2 ran with their weights in RAM (the "
                                      "others ran out of memory).")


def test_placement_spread_and_the_chapter_sentence(tmp_path):
    from starmind_lib.devices import placement
    from starmind_lib.provenance import ResultTable
    code = placement.run_code("/models/m.smd", 96, 0x40068010)
    assert "pad = bytearray(96) if 96 else None" in code and "bench.run_model('/models/m.smd', [1], 64" in code
    rows = [{"model": "a", "status": "ok", "cycles_per_token": c} for c in (100.0, 110.0, 90.0)]
    rows += [{"model": "b", "status": "out_of_memory", "cycles_per_token": None}]
    assert placement.spread(rows) == {"a": {"n": 3, "low": 90.0, "high": 110.0, "half_range": 0.1}}
    other = [{**r, "runtime_sha256_16": "old"} for r in rows] + [{"model": "a", "status": "ok",
                                                                   "cycles_per_token": 50.0, "runtime_sha256_16": "new"}]
    assert placement.summary(other, "new") == "runtime new:\na                             1 pads: 50 to 50 cycles/token (+-0.0%)"
    assert placement.summary(other, "none") == "runtime none:\nno rows"
    assert ch.placement_text(tmp_path) == "not measured in this build"
    t = ResultTable(tmp_path / "device" / "micropython_placement", key="key")
    for i, r in enumerate(rows[:3]):
        t.append({"key": str(i), **r})
    assert ch.placement_text(tmp_path) == "90 to 110 cycles per token for a (+-10 %, 3 placements)"
    t.append({"key": "3", "model": "b", "status": "ok", "cycles_per_token": 50.0, "model_sha256_16": "f1",
              "runtime_sha256_16": RT})
    runs = pd.DataFrame([row(model="a", tok_s=125e6 / 120, model_sha256_16="f0"),      # another file: not compared
                         row(model="b", tok_s=125e6 / 55, model_sha256_16="f1")])
    assert ch.placement_text(tmp_path, runs) == ("90 to 110 cycles per token for a (+-10 %, 3 placements); 50 to 50 "
                                                 "cycles per token for b (+-0 %, 1 placements), in the measuring "
                                                 "session 55")
    assert ch.placement_outside_text(tmp_path, runs) == "the measuring session lies outside their range for 1 of the 1 file"
    assert ch.placement_outside_text(tmp_path) == "no file was also measured in the measuring session"
    # another runtime's placement rows are used only where this page's runtime has none, and say so
    assert ch.placement_text(tmp_path, runs, runtime=RT).startswith("50 to 50 cycles per token for b")
    assert ch.placement_text(tmp_path, None, runtime="other").endswith(f"(runtime {RT}, not this page's)")



def test_one_file_run_under_several_names_gives_the_sessions_own_repeat_spread():
    def run(sha, mode, cycles, status="ok"):
        return {"model_sha256_16": sha, "runtime_sha256_16": "rt", "weights_requested": mode, "kernels": "asm",
                "cycles_per_token": cycles, "status": status}
    runs = pd.DataFrame([run("a", "ram", 100.0), run("a", "ram", 118.0), run("a", "ram", 100.0),
                         run("b", "ram", 50.0), run("b", "ram", 50.1), run("a", "flash", 400.0),
                         run("a", "flash", 401.0), run("c", "ram", 10.0), run("b", "ram", 99.0, "out_of_memory")])
    assert ch.repeat_text(runs) == (
        "with weights in flash, 1 file ran two to 2 times and their runs lie up to 0.25 % apart (median 0.25 %; "
        "0 of them more than 1 %); with weights in RAM, 2 files ran two to 3 times and their runs lie up to 18 % "
        "apart (median 9.1 %; 1 of them more than 1 %)")
    assert ch.repeat_text(runs[runs["model_sha256_16"] == "c"]) == "no file was run twice in the measuring session"


def test_a_reference_model_is_counted_as_chapter_06_counts_it_norms_included():
    from starmind_lib.training.grid import count_params
    row = {"dim": 16, "n_layers": 2, "n_heads": 2, "ffn_hidden": 32, "vocab_size": 40, "activation": "silu",
           "pos": "learned", "tied": True, "max_seq_len": 16, "n_params": None}
    # 40*16 embedding + 16*16 positions + 2 layers * (2*16 norms + 4*16*16 + 2*32*16) + 16 final norm
    assert ch._n_weights(row) == count_params(dim=16, n_layers=2, ffn_hidden=32, vocab_size=40, pos="learned",
                                              seq_len=16) == 640 + 256 + 2 * (32 + 1024 + 1024) + 16
    assert ch._n_weights({**row, "n_params": 999}) == 999


def test_the_micropython_ram_floor_counts_all_sram_but_the_free_heap():
    runs = pd.DataFrame({"status": ["ok", "ok", "out_of_memory"], "heap_free_before": [211_376, 211_344, 100],
                         "heap_free_after_load": [196_128, 131_248, 50]})
    # 270,336 B of SRAM: 58,960 B before a model (median of the two runs that ran), 74,208 B with the smallest
    assert ch.ram_floor_text(runs) == ("the MicroPython firmware, interpreter and our runtime hold 57.6 KB of SRAM "
                                       "before any model is loaded (median over 2 runs), and the smallest program "
                                       "that ran held 72.5 KB")
    assert ch.ram_floor_text(pd.DataFrame()) == "no MicroPython run says how much SRAM the firmware holds"
