"""The book in the `report` profile, built from the committed tables: every number glued into the
prose equals its value computed here, independently, from those tables; and no page has a badly
written number (``browsercheck.text_problems``).

Slow (every chapter executes; minutes on 2 cores): one build, shared by the tests of this module.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from starmind_lib.book import browsercheck, build as book
from starmind_lib.provenance import REPO_ROOT

RESULTS = REPO_ROOT / "data" / "results"


def _read(stem: str) -> pd.DataFrame:
    path = RESULTS / f"{stem}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    lines = (RESULTS / f"{stem}.jsonl").read_text().splitlines()
    return pd.DataFrame([json.loads(x) for x in lines if x.strip().endswith("}")])


def _stats(view, split, col):
    s = _read("data/stats")
    return s[(s["view"] == view) & (s["split"] == split)].sort_values("timestamp").iloc[-1][col]


def _variants():
    return _read("sweep/variants")


def _bpc(v):
    return v["val_bpc"] if "val_bpc" in v else v["bpc"]


# (chapter, glue name) -> the value, computed from the committed tables without the chapter's code
EXPECTED = {
    ("01_data", "train_chars_cased"): lambda: _stats("cased", "train", "characters"),
    ("01_data", "train_stories_cased"): lambda: _stats("cased", "train", "stories"),
    ("01_data", "distinct_chars_cased"): lambda: _stats("cased", "train", "distinct_characters"),
    ("01_data", "train_chars_lc"): lambda: _stats("lowercased", "train", "characters"),
    ("01_data", "train_stories_lc"): lambda: _stats("lowercased", "train", "stories"),
    ("01_data", "val_stories"): lambda: _stats("cased", "val", "stories"),
    ("01_data", "val_chars"): lambda: _stats("cased", "val", "characters"),
    ("01_data", "median_story_chars"): lambda: _stats("cased", "train", "median_story_chars"),
    ("01_data", "chars_999"): lambda: int((_read("data/chars").sort_values("count", ascending=False)["count"]
                                           .cumsum() / _read("data/chars")["count"].sum() < 0.999).sum() + 1),
    ("04_architecture", "arch_n_variants"): lambda: len(_variants()),
    ("04_architecture", "arch_tokens"): lambda: _variants()["tokens_trained"].median(),
    ("04_architecture", "arch_best_bpc"): lambda: _bpc(_variants()).min(),
    ("04_architecture", "arch_best_id"): lambda: _variants().loc[_bpc(_variants()).idxmin(), "variant_id"],
    ("04_architecture", "arch_n_worse_than_unigram"): lambda: int((_bpc(_variants()) >= _variants()["unigram_bpc"]
                                                                   .iloc[0]).sum()),
    ("04_architecture", "arch_unigram_bpc"): lambda: _variants()["unigram_bpc"].iloc[0],
    ("05_quantisation", "n_models"): lambda: _read("quant/quant")["variant_id"].nunique(),
    ("06_device", "n_runs"): lambda: len(_read("device/c_runs")),
    ("09_appendix", "appendix_n_rows"): lambda: sum(len(_read(p.relative_to(RESULTS).with_suffix("").as_posix()))
                                                    for p in sorted({q.with_suffix("") for q in RESULTS.rglob("*.*")
                                                                     if q.suffix in (".parquet", ".jsonl")})),
}


def _number(text: str) -> float | None:
    m = re.search(r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?", str(text))
    return float(m.group(0).replace(",", "")) if m else None


def _matches(glued: str, expected) -> bool:
    glued = glued.strip().strip("'\"")        # a glued str is stored as its repr
    if isinstance(expected, str):
        return glued == expected
    got = _number(glued)
    if got is None:
        return False
    m = re.search(r"\d\.(\d+)", glued)
    decimals = len(m.group(1)) if m else 0
    return abs(got - float(expected)) <= 0.5 * 10 ** -decimals + 1e-9 * abs(float(expected))


@pytest.fixture(scope="module")
def report_book():
    """The book as `make book` builds it (profile report, into book/): chapters already executed and up
    to date are reused, so after `make book` this costs a Jupyter Book run. $STARMIND_BOOK_NOTEBOOKS
    points the build at another notebooks directory."""
    import os
    notebooks = Path(os.environ.get("STARMIND_BOOK_NOTEBOOKS", book.NOTEBOOKS_DIR))
    out = book.BOOK_DIR
    html = book.build("report", notebooks_dir=notebooks, out=out)
    return out, html


def glued(out: Path) -> dict[tuple[str, str], str]:
    values = {}
    for path in sorted((out / book.EXECUTED).glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for o in cell.get("outputs", []):
                name = o.get("metadata", {}).get("scrapbook", {}).get("name")
                if name:
                    data = o.get("data", {})
                    values[(path.stem, name)] = next((v for k, v in data.items() if k.endswith("text/plain")), "")
    return values


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_numbers_glued_into_prose_equal_their_table_values(report_book):
    out, _ = report_book
    values = glued(out)
    wrong = []
    for key, compute in EXPECTED.items():
        assert key in values, f"{key} is no longer glued: update EXPECTED"
        expected = compute()
        if not _matches(values[key], expected):
            wrong.append(f"{key[0]} {key[1]}: page says {values[key]!r}, the committed tables give {expected!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_report_pages_have_no_badly_written_numbers(report_book):
    _, html = report_book
    bad = []
    for page in browsercheck.pages(html):
        text = re.sub(r"<(script|style|pre|code)[^>]*>.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r'<div class="cell_input.*?</div>\s*</div>', " ", text, flags=re.S)
        text = re.sub(r'src="data:[^"]*"|href="data:[^"]*"', " ", text)
        text = re.sub(r"<[^>]+>", " ", text)
        bad += [f"{page.name}: {p}" for p in browsercheck.text_problems(text)]
    assert not bad, "\n".join(bad)
