"""The tables of chapter 01 (the data): computed from the corpus, or read back from results_dir.

Written under ``<results_dir>/data/``:

- ``stats`` (ResultTable, key ``row_id``): one row per view (``cased``: the corpus a cased
  model trains on; ``lowercased``: the lowercased one) and split, with :func:`corpus_stats`
  columns, the corpus fingerprint, the number of stories the mojibake repair changed, provenance;
- ``shards.parquet``: every source file, its size, whether it is lowercase-only and which views use it;
- ``lengths.parquet``: story length histogram (view, split, bin_start, bin_end, stories);
- ``chars.parquet``: the character inventory of the cased training text.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..provenance import ResultTable, atomic_path, keep_diff, provenance
from ..data.config import DataConfig
from ..data.corpus import char_class, char_counts, corpus_stats, load_corpus, story_lengths

VIEWS = {"cased": False, "lowercased": True}
STATS_VERSION = 1  # part of the stats row key: bump when the columns change
_SHOWN = {" ": "␣", "\n": "↵", "\t": "⇥"}  # space, newline, tab: visible on an axis


class MissingTable(FileNotFoundError):
    """A committed table this chapter reads is absent."""


def _stats_table(results_dir) -> ResultTable:
    return ResultTable(Path(results_dir) / "data" / "stats", key="row_id")


def _length_histogram(view: str, split: str, lengths: np.ndarray, width: int) -> pd.DataFrame:
    edges = np.arange(0, int(lengths.max()) + width + 1, width)
    counts, _ = np.histogram(lengths, bins=edges)
    return pd.DataFrame({"view": view, "split": split, "bin_start": edges[:-1], "bin_end": edges[1:],
                         "stories": counts})


def _bin_width(lengths: np.ndarray) -> int:
    """A round bin width giving about 40 bins up to the 99th percentile."""
    raw = max(1.0, float(np.percentile(lengths, 99)) / 40)
    return int(min((w for w in (10, 20, 25, 50, 100, 200, 250, 500, 1000) if w >= raw), default=1000))


def char_inventory(texts: list[str]) -> pd.DataFrame:
    counts = char_counts(texts)
    df = pd.DataFrame([(c, ord(c), n) for c, n in counts.items()], columns=["char", "codepoint", "count"])
    df = df.sort_values(["count", "codepoint"], ascending=[False, True]).reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    df["share"] = df["count"] / df["count"].sum()
    df["cumulative_share"] = df["share"].cumsum()
    df["class"] = df["char"].map(char_class)
    df["shown"] = df["char"].map(lambda c: _SHOWN.get(c, c if c.isprintable() else f"U+{ord(c):04X}"))
    return df


def compute_data_tables(cfg: DataConfig, results_dir, cache_dir=None, profile: str = "") -> dict:
    """Load both views of the corpus, append new stats rows, write the parquet tables; return the frames."""
    table = _stats_table(results_dir)
    stats_rows, hists, corpora = [], [], {}
    for view, lc in VIEWS.items():
        corpus = corpora[view] = load_corpus(cfg.replace(lowercase=lc), cache_dir)
        unfixed = load_corpus(cfg.replace(lowercase=lc, fix_mojibake=False), cache_dir) if cfg.fix_mojibake \
            else corpus
        for split in ("train", "val"):
            texts = getattr(corpus, split)
            changed = sum(a != b for a, b in zip(texts, getattr(unfixed, split)))
            row = {"row_id": f"{view}-{split}-{corpus.fingerprint[:12]}-v{STATS_VERSION}", "view": view,
                   "split": split,
                   "fingerprint": corpus.fingerprint, "source_label": corpus.source_label,
                   "is_synthetic": corpus.is_synthetic, **corpus_stats(texts),
                   "mojibake_repaired_stories": int(changed), "config": corpus.config,
                   **provenance(profile)}
            if not table.has(row["row_id"]):
                table.append(row)
            stats_rows.append(row)
            width = _bin_width(story_lengths(corpora["cased"].train))  # one width for every panel
            hists.append(_length_histogram(view, split, story_lengths(texts), width))
    table.snapshot()
    shards = pd.DataFrame(corpora["cased"].shards).drop(columns=["used"])
    for view, corpus in corpora.items():
        shards[f"used_{view}"] = [s["used"] for s in corpus.shards]
    frames = {"stats": pd.DataFrame(stats_rows), "shards": shards, "lengths": pd.concat(hists, ignore_index=True),
              "chars": char_inventory(corpora["cased"].train)}
    out = Path(results_dir) / "data"
    stamp = provenance(profile, data_fingerprint=corpora["cased"].fingerprint)   # whole-table frames: one stamp
    keep_diff(out, stamp["git_diff"])
    for name in ("shards", "lengths", "chars"):
        frames[name] = frames[name].assign(**stamp)
        with atomic_path(out / f"{name}.parquet") as tmp:
            frames[name].to_parquet(tmp, index=False)
    frames["notes"] = corpora["cased"].notes + [n for n in corpora["lowercased"].notes
                                                if n not in corpora["cased"].notes]
    return frames


def read_data_tables(results_dir) -> dict:
    """The committed tables; the stats are the latest row for each view and split."""
    out = Path(results_dir) / "data"
    needed = [out / "stats.jsonl"] + [out / f"{n}.parquet" for n in ("shards", "lengths", "chars")]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise MissingTable(f"chapter 01 tables not found: {', '.join(missing)}; run the chapter with "
                           "recompute=True (e.g. `make book PROFILE=quick`) to compute them")
    stats = _stats_table(results_dir).frame().groupby(["view", "split"], sort=False).tail(1)
    frames = {"stats": stats.reset_index(drop=True), "notes": []}
    for n in ("shards", "lengths", "chars"):
        frames[n] = pd.read_parquet(out / f"{n}.parquet")
    return frames


def data_tables(cfg: DataConfig, results_dir, recompute: bool, cache_dir=None, profile: str = "") -> dict:
    """Chapter 01's frames: recomputed (``recompute``) or read from ``results_dir``."""
    if recompute:
        return compute_data_tables(cfg, results_dir, cache_dir, profile)
    return read_data_tables(results_dir)


def stat(frames: dict, view: str, split: str, column: str):
    """One number of the stats table (for glue)."""
    df = frames["stats"]
    row = df[(df["view"] == view) & (df["split"] == split)]
    if row.empty:
        raise KeyError(f"no stats row for view={view!r}, split={split!r}")
    return row.iloc[-1][column]
