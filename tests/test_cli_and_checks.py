"""Issue 12's checks: per-file CLI errors, validated parameters, the number formatter, figure lint,
provenance with the uncommitted diff, and every committed table with provenance or a disclosure."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from starmind_lib import cli
from starmind_lib.book import browsercheck, build as book
from starmind_lib.config import ConfigError
from starmind_lib.numbers import fmt_duration, fmt_num, fmt_quantity, fmt_ratio, plural, with_article
from starmind_lib.profiles import check_notebook_params
from starmind_lib.provenance import REPO_ROOT, ResultTable, diff_hash, provenance

REF = REPO_ROOT / "data" / "reference" / "ref_rope_silu.smd"


# ---- numbers ---------------------------------------------------------------------------------

def test_numbers_read_well():
    assert fmt_num(73968.0) == "73,968" and fmt_num(55996.0) == "55,996" and fmt_num(1545.976) == "1,546"
    assert fmt_quantity(-0.00001, "bpc") == "0 bpc" and fmt_num(-0.0) == "0"
    assert fmt_num(-5.4e-7, sig=2) == "-5.4 × 10⁻⁷" and fmt_num(3e-5) == "3 × 10⁻⁵"     # never Python's 5.4e-07
    assert fmt_quantity(4023.7, "tokens_per_s") == "4,024 tokens/s" and fmt_ratio(2.114) == "2.11x"
    assert plural(1, "variant") == "1 variant" and plural(1, "minute") == "1 minute" and plural(2, "run") == "2 runs"
    assert with_article("8-token") == "an 8-token" and with_article("16-token") == "a 16-token"
    assert fmt_duration(60) == "60 s" and fmt_duration(600) == "10 minutes" and fmt_num(float("nan")) == "n/a"


# ---- the CLI: a bad file is one line naming it, and the batch goes on -----------------------------

@pytest.fixture
def bad_files(tmp_path):
    trunc, junk = tmp_path / "trunc.smd", tmp_path / "junk.smd"
    trunc.write_bytes(REF.read_bytes()[:300])
    junk.write_bytes(b"garbage")
    return trunc, junk


def test_export_inspect_reports_each_bad_file_and_goes_on(bad_files, capsys):
    trunc, junk = bad_files
    rc = cli.main(["export", "inspect", str(trunc), str(REF), str(junk), str(trunc.parent / "nope.smd")])
    out, err = capsys.readouterr()
    assert rc == 1 and "SmdHeader" in out and "Traceback" not in out + err
    assert f"error  {trunc}: " in err and "truncated" in err and f"error  {junk}: " in err and "no such file" in err


def test_board_plan_reports_each_bad_file_and_goes_on(bad_files, capsys):
    trunc, junk = bad_files
    rc = cli.main(["board", "plan", "--models", str(trunc), str(REF), str(junk)])
    out, err = capsys.readouterr()
    assert rc == 1 and '"model": "ref_rope_silu.smd"' in out
    assert err.count("error  ") == 2 and str(trunc) in err and str(junk) in err


def test_generation_arguments_are_validated(capsys):
    for bad in (["--n-tokens", "-5"], ["--n-tokens", "0"], ["--seed", "-1"], ["--n-tokens", "x"]):
        with pytest.raises(SystemExit):
            cli.main(["board", "generate", "--port", "virtual", "--model", str(REF), *bad])
        assert f"error: argument {bad[0]}: " in capsys.readouterr().err


def test_a_missing_firmware_image_is_one_line_that_says_what_to_give(tmp_path, capsys):
    missing = tmp_path / "no-such-firmware.bin"
    rc = cli.main(["board", "generate", "--port", f"emulated:{missing}", "--model", str(REF)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip() == (f"starmind: the board could not start: no MicroPython firmware image at {missing} (give the "
                           "MicroPython firmware image with --port emulated:FIRMWARE.bin or STARMIND_FIRMWARE="
                           "FIRMWARE.bin; README, 'Running chapter 06 with a real Pico')")


def test_bench_defaults_its_prompt_and_skips_a_bad_first_file(bad_files):
    trunc, _ = bad_files
    assert cli.file_defect(trunc) and cli.file_defect(REF) is None
    args = cli.main.__globals__["argparse"].Namespace(prompt=None, prompt_ids=None)
    assert cli._prompt_ids(args, REF)   # no --prompt: the default prompt, encoded with the model's vocabulary


# ---- parameters: validated before any chapter runs -------------------------------------------

def test_every_profile_validates_against_every_chapter():
    notebooks = book.find_notebooks(book.NOTEBOOKS_DIR)
    for profile in ("report", "smoke", "quick", "full"):
        book.validate_all(profile, notebooks)


def test_bad_profile_value_or_key_fails_before_any_chapter(tmp_path, monkeypatch):
    prof_dir = tmp_path / "profiles"
    shutil.copytree(REPO_ROOT / "profiles", prof_dir)
    (prof_dir / "typo.yaml").write_text("extends: smoke\nnotebooks:\n  04_architecture:\n    tokens: many\n"
                                        "  08_audit:\n    max_rowz: 3\n  99_nothing:\n    x: 1\n")
    monkeypatch.setattr("starmind_lib.profiles.PROFILE_DIR", prof_dir)
    with pytest.raises(book.BookError) as err:
        book.validate_all("typo", book.find_notebooks(book.NOTEBOOKS_DIR))
    text = str(err.value)
    assert "tokens = 'many'" in text and "max_rowz" in text and "99_nothing" in text and "nothing was run" in text


def test_papermill_parameters_are_checked_against_the_parameters_cell():
    injected = "# Parameters\nprofile = \"quick\"\ntokns = 5\n"
    with pytest.raises(ConfigError, match=r"\['tokns'\].*typo"):
        check_notebook_params("03_training", {"In": ["", injected], "profile": "quick"})
    with pytest.raises(ConfigError, match="unknown profile"):
        check_notebook_params("03_training", {"In": [], "profile": "quik"})
    # -p profile quick -p recompute True alone would rewrite the committed tables with quick settings
    with pytest.raises(ConfigError, match="would rewrite the committed tables.*-p results_dir build/quick/results"):
        check_notebook_params("03_training", {"In": [], "profile": "quick", "recompute": True,
                                              "results_dir": "data/results"})
    check_notebook_params("03_training", {"In": [], "profile": "quick", "recompute": True,
                                          "results_dir": "build/quick/results"})
    check_notebook_params("03_training", {"In": [], "profile": "report", "recompute": False,
                                          "results_dir": "data/results"})


# ---- figures: a show() whose figure would be lost --------------------------------------------

def test_show_inside_a_branch_is_refused(tmp_path):
    src = ('# %% [markdown]\n# ## Panels\n\n# %%\nif True:\n    show(chart)\n\n'
           '# %%\nif True:\n    display(show(chart))\nelse:\n    display(no_figure("none"))\n\n# %%\nshow(chart)\n')
    lost = book.unshown_figures(src, Path("x.py"))
    assert len(lost) == 1 and "code cell 1, line 2" in lost[0]
    for nb in book.find_notebooks(book.NOTEBOOKS_DIR):
        assert book.unshown_figures(nb.read_text(), nb) == [], nb.name


def test_sections_that_promise_a_figure_must_show_one():
    promised = browsercheck.promised_figures(book.NOTEBOOKS_DIR / "04_architecture.py")
    assert promised["One hyperparameter at a time"] == 1 and promised["At a fixed parameter budget"] == 1
    sections = [{"title": "One hyperparameter at a time#", "charts": 0, "nofigure": 0},
                {"title": "At a fixed parameter budget", "charts": 0, "nofigure": 1},
                {"title": "Quality against size", "charts": 1, "nofigure": 0}]
    problems = browsercheck.figure_problems(sections, promised)
    assert len(problems) == 1 and "One hyperparameter" in problems[0]


def test_legend_problems_catch_clipped_and_truncated_legends():
    charts = [{"id": "c1", "visibleRight": 800, "legends": [{"right": 950, "width": 200, "texts": ["a"]}]},
              {"id": "c2", "visibleRight": 800, "legends": [{"right": 700, "width": 100,
                                                             "texts": ["comparis…", "…12 entries"]}]},
              {"id": "c3", "visibleRight": 800, "legends": [{"right": 700, "width": 100, "texts": ["ok"]}]}]
    problems = browsercheck.legend_problems(charts)
    assert len(problems) == 2 and "150px beyond" in problems[0] and "'a'" in problems[0] and "comparis…" in problems[1]


def test_axis_problems_catch_tick_labels_that_overlap_or_run_together_but_not_stacked_ones():
    box = lambda t, left, top, w=30, h=12: {"text": t, "left": left, "right": left + w, "top": top,  # noqa: E731
                                           "bottom": top + h}
    charts = [{"id": "x", "axes": [[box("10,000", 100, 300), box("20,000", 131, 300), box("40,000", 200, 300)],
                                   [box("1.0", 10, 0), box("1.5", 25, 0)]]},
              {"id": "y", "axes": [[box("4.0", 0, 0), box("3.5", 0, 12), box("3.0", 0, 24)]]},   # a column: fine
              {"id": "z", "axes": [[{**box("ref_a", 0, 0), "angle": -60}, {**box("ref_b", 10, 0), "angle": -60}]]}]
    assert browsercheck.axis_problems(charts) == ["chart x: axis labels '10,000' and '20,000' run together",
                                                  "chart x: axis labels '1.0' and '1.5' overlap"]


# ---- provenance ------------------------------------------------------------------------------

def test_provenance_records_the_uncommitted_diff(tmp_path, monkeypatch):
    row = provenance("smoke")
    assert {"git_commit", "git_diff", "profile", "machine", "timestamp"} <= set(row)
    assert row["git_commit"].endswith("-dirty") == bool(row["git_diff"])
    monkeypatch.setattr("starmind_lib.provenance.git_diff", lambda root=None: "diff --git a/x b/x\n+1\n")
    digest = diff_hash("diff --git a/x b/x\n+1\n")
    table = ResultTable(tmp_path / "stage" / "t", key="k")
    table.append({"k": 1, "git_diff": digest})
    assert (tmp_path / "stage" / "diffs" / f"{digest}.diff").read_text().startswith("diff --git")


def _append_keys(path, keys):
    table = ResultTable(path, key="k")
    return [k for k in keys if table.append({"k": k, "who": os.getpid()})]


def test_two_appenders_on_one_table_never_duplicate_a_row(tmp_path):
    """Two sweeps started on the same results (what duplicated a long-tier row once): each key lands once."""
    import multiprocessing as mp
    stem = tmp_path / "t"
    a, b = ResultTable(stem, key="k"), ResultTable(stem, key="k")
    assert a.append({"k": 1}) and not b.append({"k": 1, "other": True})     # b learns of a's row
    with open(stem.with_suffix(".jsonl"), "a") as f:
        f.write('{"k": 2, "torn')                                             # a crash mid-write
    assert b.append({"k": 2}) and not a.append({"k": 2})
    assert [r["k"] for r in a.rows()] == [1, 2] and "other" not in a.rows()[0]
    with mp.get_context("spawn").Pool(4) as pool:
        written = pool.starmap(_append_keys, [(stem, list(range(3, 200)))] * 4)
    assert sorted(k for w in written for k in w) == list(range(3, 200))      # each key written by one process
    lines = stem.with_suffix(".jsonl").read_text().splitlines()
    assert len(lines) == 2 + 1 + 197 and len(a.rows()) == 199


def test_every_committed_table_has_provenance_or_is_disclosed():
    inv = book.table_inventory("data/results")
    disclosed = book.rewrites("data/results")
    no_prov = disclosed[disclosed["kind"] == "no provenance"]["tables"].str.split(", ").explode()
    lacking = set(inv.loc[inv["provenance"] != "yes", "table"])
    assert lacking <= set(no_prov), f"tables without provenance, not disclosed in rewrites.yaml: {lacking - set(no_prov)}"
    assert {"re-stamped", "hand-set provenance", "removed snapshot"} <= set(disclosed["kind"])
    assert disclosed["what"].str.contains("7031107-dirty").any()


def test_every_duplicate_line_in_a_keyed_journal_is_disclosed():
    """The study and quantisation journals are keyed (readers keep a key's first line); a key written twice
    is disclosed in rewrites.yaml as a 'duplicate journal line', with its count."""
    import collections
    import json
    disclosed = book.rewrites("data/results")
    dup = disclosed[disclosed["kind"] == "duplicate journal line"]
    for table, key in (("sweep/study_v2", "run_key"), ("quant/quant", "key")):
        keys = [json.loads(line).get(key) for line in (REPO_ROOT / "data/results" / f"{table}.jsonl").read_text(
            encoding="utf-8").splitlines() if line.strip()]
        extra = sum(n - 1 for n in collections.Counter(keys).values())
        said = int(dup.loc[dup["tables"] == table, "rows"].astype(int).sum())
        assert extra == said, f"{table}: {extra} duplicate journal lines, {said} disclosed in rewrites.yaml"


def test_appending_to_a_committed_result_table_leaves_the_tree_clean(tmp_path):
    import subprocess

    from starmind_lib.provenance import git_commit, git_diff
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "data" / "results").mkdir(parents=True)
    (tmp_path / "data" / "results" / "t.jsonl").write_text('{"k": 1}\n')
    (tmp_path / "code.py").write_text("x = 1\n")
    run("add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    (tmp_path / "data" / "results" / "t.jsonl").write_text('{"k": 1}\n{"k": 2}\n')   # a run appends a row
    assert not git_commit(tmp_path).endswith("-dirty") and git_diff(tmp_path) == ""
    (tmp_path / "code.py").write_text("x = 2\n")                                      # the source changes
    assert git_commit(tmp_path).endswith("-dirty") and "x = 2" in git_diff(tmp_path)
