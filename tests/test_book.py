"""The book build, offline figures and the browser check.

Fast tests cover the TOC rule, parameter checks, figure HTML and the PNG decoder;
the ones that start kernels or Sphinx use tiny notebooks in a temporary
directory; the slow test builds the whole smoke-profile book and opens every
page in headless Chromium.
"""
from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import altair as alt
import pandas as pd
import pytest

from conftest import SMOKE_OUT, book_build
from starmind_lib.book import build as book, browsercheck, figures
from starmind_lib.provenance import REPO_ROOT

CHAPTER = '''# %% [markdown]
# # A test chapter
#
# The answer is {{glue:text}}`answer`.

# %% tags=["parameters"]
results_dir = "build/smoke/results"
profile = "report"
{extra_params}

# %%
import altair as alt
import pandas as pd
from myst_nb import glue
from starmind_lib.book.figures import show, label

glue("answer", 42, display=False)
{body}
show(alt.Chart(pd.DataFrame({{"n": [1, 2, 3], "bpc": [3.0, 2.5, 2.2]}})).mark_line(point=True).encode(
    x=alt.X("n:Q", title=label("parameters", "count")), y=alt.Y("bpc:Q", title=label("quality", "bits/char"))))
'''


def write_chapter(nb_dir: Path, stem: str, body: str = "", extra_params: str = "", markdown: str = "") -> Path:
    nb_dir.mkdir(parents=True, exist_ok=True)
    path = nb_dir / f"{stem}.py"
    path.write_text(CHAPTER.format(body=body, extra_params=extra_params) + markdown)
    return path


# ---- TOC ---------------------------------------------------------------------------

TEMPLATE = {"format": "jb-book", "root": "intro", "parts": [
    {"caption": "Study", "chapters": [
        {"file": "_executed/01_data"},
        {"file": "_executed/06_device", "sections": [{"file": "_executed/06b_micropython"}]},
        {"file": "_executed/07_analysis"}]},
    {"caption": "Appendix", "chapters": [{"file": "appendix_reproducibility"}]}]}


def test_toc_drops_absent_chapters_and_keeps_sections():
    toc = book.effective_toc(TEMPLATE, ["01_data", "06b_micropython"])
    study = toc["parts"][0]["chapters"]
    # 06_device is absent: its section 06b moves up to chapter level instead of vanishing.
    assert study == [{"file": "_executed/01_data"}, {"file": "_executed/06b_micropython"}]
    assert toc["parts"][1]["chapters"] == [{"file": "appendix_reproducibility"}]


def test_toc_appends_unlisted_notebooks_and_drops_empty_parts():
    toc = book.effective_toc(TEMPLATE, ["10_extra"])
    captions = [p["caption"] for p in toc["parts"]]
    assert captions == ["Appendix", "Further chapters"]
    assert toc["parts"][-1]["chapters"] == [{"file": "_executed/10_extra"}]


def test_repository_toc_lists_every_planned_chapter():
    import yaml
    toc = yaml.safe_load(book.TOC_TEMPLATE.read_text())
    text = json.dumps(toc)
    for stem in ["01_data", "02_tokenizers", "03_training", "04_architecture", "05_quantisation",
                 "06_device", "06b_micropython", "07_analysis", "08_audit", "09_appendix"]:
        assert f"_executed/{stem}" in text
    assert (book.BOOK_DIR / f"{toc['root']}.md").exists()


# ---- parameters ----------------------------------------------------------------------

def test_parameters_cell_names_and_unknown_profile_parameter(tmp_path):
    import jupytext
    path = write_chapter(tmp_path, "01_x", extra_params="n_models: int = 3\nlr = 1e-3")
    nb = jupytext.read(path)
    assert book.parameters_cell_names(nb, path) == {"results_dir", "profile", "n_models", "lr"}
    book.check_parameters({"n_models": 4, "seed": 1, "data_dir": ""}, {"n_models"}, path, "smoke")  # common ok
    with pytest.raises(book.BookError, match=r"sets parameter\(s\) \['n_modles'\]"):
        book.check_parameters({"n_modles": 4}, {"n_models"}, path, "smoke")


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    import jupytext
    path = tmp_path / "01_x.py"
    path.write_text("# %%\nx = 1\n")
    with pytest.raises(book.BookError, match="exactly one cell tagged parameters"):
        book.parameters_cell_names(jupytext.read(path), path)


# ---- figures -----------------------------------------------------------------------------

def chart():
    df = pd.DataFrame({"n": [1, 2, 3], "bpc": [3.0, 2.5, 2.2], "name": ["a", "</script><b>", "c"]})
    return alt.Chart(df, title="Quality").mark_point().encode(
        x=alt.X("n:Q", title=figures.label("parameters", "count")),
        y=alt.Y("bpc:Q", title=figures.label("quality", "bits/char")), tooltip=["name"])


def test_show_emits_offline_html_with_static_svg_fallback():
    html = figures.show(chart())._repr_html_()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)   # nothing fetched from the network
    # Data containing '</script>' cannot end the embed script early.
    assert html.count("</script>") == 1
    svg = base64.b64decode(re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)).decode()
    assert svg.startswith("<svg") and "quality (bits/char)" in svg and "parameters (count)" in svg
    spec = json.loads(re.search(r"var spec = (\{.*?\});\n", html, re.S).group(1))
    assert spec["encoding"]["y"]["title"] == "quality (bits/char)"
    assert spec["config"]["axis"]["titleFontSize"] == figures.THEME_CONFIG["axis"]["titleFontSize"]


def test_log_ticks_are_one_and_three_per_decade_spanning_the_data():
    assert figures.log_ticks([12, 4096]) == [10, 30, 100, 300, 1000, 3000, 10000]
    assert figures.log_ticks([1, 80]) == [1, 3, 10, 30, 100]
    assert figures.log_ticks(pd.Series([0.5, 300, float("nan")])) == [0.3, 1, 3, 10, 30, 100, 300]
    with pytest.raises(figures.FigureError, match="no positive values"):
        figures.log_ticks([0, -3])


def test_small_log_panels_pass_their_own_ticks():
    """Chapter 04's vocabulary panel printed '1020' (Vega's 10 and 20 ran together): it now names its ticks."""
    from starmind_lib.chapters.ch04_architecture import axis_chart
    df = pd.DataFrame({"axis": "vocab", "vocab_size": [12, 96, 384, 4096], "bpc": [2.1, 2.0, 1.7, 1.4],
                       "group": "vocab-d16", "variant_id": list("abcd"), "n_params": [1, 2, 3, 4]})
    spec = axis_chart(df, "vocab", "vocab_size", "vocabulary size").to_dict()
    assert spec["layer"][0]["encoding"]["x"]["axis"]["values"] == [10, 30, 100, 300, 1000, 3000, 10000]


def test_chart_config_overrides_the_theme():
    spec = figures.themed_spec(chart().configure_axis(titleFontSize=30))
    assert spec["config"]["axis"]["titleFontSize"] == 30
    assert spec["config"]["axis"]["labelFontSize"] == figures.THEME_CONFIG["axis"]["labelFontSize"]


def test_house_style_replaces_altairs_default_view_size():
    view = figures.themed_spec(chart())["config"]["view"]
    assert view["continuousWidth"] == figures.THEME_CONFIG["view"]["continuousWidth"]


def test_figure_helpers_reject_bad_input():
    with pytest.raises(figures.FigureError, match="needs an altair chart"):
        figures.show([1, 2, 3])
    with pytest.raises(figures.FigureError, match="needs a pandas DataFrame"):
        figures.table({"a": 1})
    with pytest.raises(figures.FigureError, match="axis name is empty"):
        figures.label("", "s")
    assert figures.label("speed", "tok/s") == "speed (tok/s)"


def test_table_formats_floats():
    html = figures.table(pd.DataFrame({"bpc": [2.123456], "model": ["<w16>"]}), caption="c", precision=3).html
    assert "2.12" in html and "2.1234" not in html and "&lt;w16&gt;" in html


def test_table_numbers_read_well_and_long_tables_collapse():
    df = pd.DataFrame({"variant_id": ["a", "b"], "n_params": [73968.0, 1000.0], "d_bpc": [-0.00001, 0.5],
                       "tied": [True, False], "fits": pd.Series([False, None], dtype=object)})
    cells = re.findall(r">([^<>]*)</td>", figures.table(df).html)
    assert cells == ["a", "73,968", "-1 × 10⁻⁵", "yes", "no", "b", "1,000", "0.5", "no", "–"]
    head = figures.table(df).html
    assert ">model<" in head and ">parameters<" in head and "variant_id" not in head
    long = figures.table(pd.DataFrame({"x": range(100)}), caption="Every row", max_rows=5).html
    assert long.count("<table") == 2 and "<details" in long and "All 100 rows" in long
    assert "data:text/csv;base64," in long


def test_vega_bundle_is_a_classic_script_defining_vegaembed(tmp_path):
    path = figures.write_vega_bundle(tmp_path)
    code = path.read_text()
    assert "window.vegaEmbed=" in code and not re.search(r"^\s*(import|export) ", code, re.M)
    mtime = path.stat().st_mtime_ns
    figures.write_vega_bundle(tmp_path)   # identical: not rewritten (Sphinx copies it once)
    assert path.stat().st_mtime_ns == mtime


# ---- appendix helpers ------------------------------------------------------------------------

def test_table_inventory_reports_rows_and_provenance(tmp_path):
    from starmind_lib.provenance import ResultTable
    t = ResultTable(tmp_path / "sweep" / "variants", key="variant_id")
    for i, commit in enumerate(["abc", "abc", "def"]):
        t.append({"variant_id": f"v{i}", "bpc": 2.0, "git_commit": commit, "profile": "full",
                  "machine": "m1", "timestamp": f"2026-01-0{i + 1}T00:00:00+00:00"})
    t.snapshot()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "stats.jsonl").write_text('{"n": 1}\n{"n": 2}\n{"n": 3')   # torn last line
    inv = book.table_inventory(tmp_path).set_index("table")
    assert inv.loc["sweep/variants", "rows"] == 3 and inv.loc["sweep/variants", "git commit"] == "abc, def"
    assert inv.loc["sweep/variants", "files"] == "parquet jsonl"
    assert inv.loc["sweep/variants", "written"] == "2026-01-01T00:00 – 2026-01-03T00:00"
    assert inv.loc["data/stats", "rows"] == 2 and inv.loc["data/stats", "profile"] == "–"
    assert book.table_inventory(tmp_path / "missing").empty


def test_papermill_command_carries_the_profile_parameters():
    cmd = book.papermill_command("03_training", "smoke")
    assert "notebooks/03_training.py" in cmd and "-p results_dir build/smoke/results" in cmd
    assert "-y 'recompute: true'" in cmd and "-p profile smoke" in cmd
    # a fresh clone has no build/; the data directory is the one `make` passes (STARMIND_DATA_DIR)
    assert cmd.startswith("mkdir -p build && .venv/bin/jupytext")
    assert '-p data_dir "${STARMIND_DATA_DIR:-}"' in cmd


# ---- PNG decoding (chart screenshots) -----------------------------------------------------

def encode_png(width, height, rgb_rows) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\0" + bytes(row) for row in rgb_rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_png_decoder_on_blank_and_rendered_images():
    blank = encode_png(4, 3, [[255] * 12] * 3)
    assert browsercheck.png_pixels(blank)[:3] == (4, 3, 3)
    assert browsercheck.distinct_colours(blank) == 1
    import vl_convert as vlc
    # A red background with a blue bar: vl_convert's PNG uses the sub/up/paeth filters.
    spec = {"background": "#ff0000", "width": 40, "height": 30, "data": {"values": [{"x": 1}]},
            "mark": {"type": "bar", "color": "#0000ff"}, "encoding": {"y": {"field": "x", "type": "quantitative"}}}
    w, h, ch, px = browsercheck.png_pixels(vlc.vegalite_to_png(spec))
    colours = {px[i:i + 3] for i in range(0, len(px), ch)}
    assert b"\xff\x00\x00" in colours and b"\x00\x00\xff" in colours and w > 40 and h > 30


# ---- executing chapters ------------------------------------------------------------------

def test_chapters_rerun_only_when_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(book, "code_hash", lambda: "fixed")   # others edit the library concurrently
    results = tmp_path / "results"
    nb_dir = tmp_path / "nb"
    # 01 writes a table; 02 reads it. 01's own output must not make 01 stale.
    write_chapter(nb_dir, "01_a", extra_params=f"results_dir = {str(results)!r}",
                  body="import pathlib, time\npathlib.Path(results_dir).mkdir(parents=True, exist_ok=True)\n"
                       "pathlib.Path(results_dir, 'a.csv').write_text(f'x\\n{time.time()}\\n')")
    write_chapter(nb_dir, "02_b", extra_params=f"results_dir = {str(results)!r}",   # ends on a raw altair chart
                  markdown="\n# %%\nalt.Chart(pd.DataFrame({'a': [1, 2]})).mark_point().encode(x='a:Q')\n")
    monkeypatch.setattr(book, "notebook_params", lambda profile, stem: {"results_dir": str(results),
                                                                         "profile": profile})
    out = tmp_path / "out"
    nbs = book.find_notebooks(nb_dir)
    assert book.execute_chapters(nbs, "smoke", out, force=False) == ["01_a", "02_b"]
    assert json.loads((out / "_executed/01_a.stamp.json").read_text())["writes"] == ["a.csv"]
    # a.csv is 01's own output: it is not an input of 01, and 02 saw this very content.
    assert book.execute_chapters(nbs, "smoke", out, force=False) == []
    (nb_dir / "02_b.py").write_text((nb_dir / "02_b.py").read_text() + "\n# %%\n1 + 1\n")
    assert book.execute_chapters(nbs, "smoke", out, force=False) == ["02_b"]
    (results / "committed.csv").write_text("y\n1\n")          # a table neither chapter writes
    assert book.execute_chapters(nbs, "smoke", out, force=False) == ["01_a", "02_b"]
    executed = json.loads((out / "_executed/02_b.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in executed["cells"]]
    assert ["injected-parameters", "hide-input"] in tags
    # Both the show() chart and the raw altair chart are offline HTML charts; no Vega-Lite mime is left.
    outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
    assert sum("starmind-chart" in "".join(o.get("data", {}).get("text/html", "")) for o in outputs) == 2
    assert not any(k.startswith("application/vnd.vegalite") for o in outputs for k in o.get("data", {}))


def test_failing_notebook_fails_the_build_naming_cell_and_error(tmp_path):
    nb_dir = tmp_path / "nb"
    write_chapter(nb_dir, "01_broken", body="x = {'a': 1}\nx['missing_key_xyz']")
    with pytest.raises(book.BookError) as err:
        book.build("smoke", nb_dir, tmp_path / "out")
    msg = str(err.value)
    assert "01_broken.py failed" in msg and "KeyError" in msg and "missing_key_xyz" in msg
    assert "x['missing_key_xyz']" in msg   # the cell source
    assert not (tmp_path / "out/_executed/01_broken.ipynb").exists()
    assert not (tmp_path / "out/_executed/01_broken.stamp.json").exists()


def test_sphinx_warning_fails_the_build(tmp_path):
    nb_dir = tmp_path / "nb"
    write_chapter(nb_dir, "01_warn", markdown="\n# %% [markdown]\n# See {ref}`no-such-label-anywhere`.\n")
    with pytest.raises(book.BookError, match="no-such-label-anywhere"):
        book.build("smoke", nb_dir, tmp_path / "out")


def test_cli_reports_unknown_profile():
    proc = subprocess.run([sys.executable, "-m", "starmind_lib.book.build", "build", "--profile", "nope"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown profile 'nope'" in proc.stderr


# ---- the whole smoke book in a browser ----------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1500)   # every chapter from scratch on a fresh clone: minutes, more than the default
def test_smoke_book_builds_and_every_page_works_offline_in_chromium():
    # started in the background once the tests were collected (conftest.py), or now
    rc, log = book_build("smoke").wait(timeout=1450)
    assert rc == 0, log[-9000:]
    html = SMOKE_OUT / "_build" / "html"
    chapters = [p.stem for p in book.find_notebooks(book.NOTEBOOKS_DIR)]
    for stem in chapters:
        assert (html / "_executed" / f"{stem}.html").exists(), f"chapter {stem} missing from the book"
    reports = browsercheck.check_book(html)
    pages = {r.page for r in reports}
    assert {"index.html", "intro.html", "appendix_reproducibility.html"} <= pages
    problems = [f"{r.page}: {p}" for r in reports for p in r.problems]
    assert not problems, "\n".join(problems)
    with_charts = [r.page for r in reports if r.charts]
    assert with_charts, "the smoke book has no charts at all"
    assert not browsercheck.static_fallback_problems(html, with_charts)


@pytest.mark.slow
def test_browser_check_catches_broken_pages(tmp_path):
    """The checker itself must fail on what it is meant to catch."""
    (tmp_path / "index.html").write_text("""<html><body>
<img src="missing.png">
<a href="nowhere.html">x</a><a href="index.html#no-anchor">y</a><a id="here" href="#here">z</a>
<script src="https://cdn.example.invalid/vega.js"></script>
<script>console.error("boom")</script>
<div class="starmind-chart" id="c1" data-rendered="static"><div class="starmind-chart-live"></div></div>
</body></html>""")
    (report,) = browsercheck.check_book(tmp_path)
    text = "\n".join(report.problems)
    for expected in ["image did not load", "nowhere.html", "no #no-anchor", "cdn.example.invalid",
                     "console error: boom", "chart c1 did not render"]:
        assert expected in text, text
    assert "#here" not in text
    assert browsercheck.static_fallback_problems(tmp_path, ["index.html"]) == \
        ["index.html: chart c1 has no static image without JavaScript"]
