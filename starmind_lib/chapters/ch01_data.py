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


# ---------------------------------------------------------------- what the reader sees
# The full dataset's training split (roneneldan/TinyStories on Hugging Face, its dataset card), for scale.
FULL_TRAIN_STORIES = 2_119_719
COVER_SHARE = 0.999   # the inventory's "most frequent characters cover this share of the text"

SHARD_LABELS = {"name": "file", "split": "split", "stories": "stories", "chars": "characters",
                "lowercase_only": "lowercase only", "used_cased": "in the cased view",
                "used_lowercased": "in the lowercased view"}
STATS_LABELS = {"view": "view", "split": "split", "stories": "stories", "characters": "characters",
                "words": "words", "distinct_characters": "distinct characters",
                "median_story_chars": "median story (characters)",
                "p90_story_chars": "90th percentile story (characters)",
                "max_story_chars": "longest story (characters)",
                "mojibake_repaired_stories": "stories repaired (mojibake)"}


def shards_table(frames: dict) -> pd.DataFrame:
    """The source files as the chapter shows them: reader's column names, no provenance columns
    (the appendix lists those)."""
    return frames["shards"][list(SHARD_LABELS)].rename(columns=SHARD_LABELS)


def stats_table(frames: dict) -> pd.DataFrame:
    """Corpus sizes by view and split, with reader's column names."""
    return frames["stats"][list(STATS_LABELS)].rename(columns=STATS_LABELS)


def chars_covering(chars: pd.DataFrame, share: float = COVER_SHARE) -> int:
    """How many of the most frequent characters cover ``share`` of the text."""
    return int((chars.sort_values("rank")["cumulative_share"] < share).sum() + 1)


def passes(tokens: int, train_chars: int, chars_per_token: float = 1.0) -> float:
    """How many times ``tokens`` training tokens go through a training split of ``train_chars`` characters,
    for a tokenizer whose token covers ``chars_per_token`` characters on average."""
    if train_chars <= 0:
        raise ValueError(f"a training split of {train_chars} characters")
    return tokens * chars_per_token / train_chars


def study_token_budgets(profile: str) -> tuple[int, int]:
    """(base, long) training tokens of Study v2 (chapter 4b, the scores chapter 04 shows) as ``profile`` runs
    it: the chapter's parameter defaults, overridden by the profile."""
    import jupytext

    from ..book.params import parameters_cell_defaults
    from ..profiles import PROFILE_DIR, notebook_params
    path = PROFILE_DIR.parent / "notebooks" / "04b_study_v2.py"
    params = {**parameters_cell_defaults(jupytext.read(path), path), **notebook_params(profile, "04b_study_v2")}
    return int(params["base_tokens"]), int(params["long_tokens"])


def largest_bpe(results_dir) -> tuple[int, float] | None:
    """(vocabulary, characters per token) of the largest lowercased BPE tokenizer of chapter 02's table (the
    corpus the study trains on is lowercased); None before chapter 02 has measured any."""
    from .ch02_tokenizers import read_tokenizer_table
    try:
        t = read_tokenizer_table(results_dir)
    except FileNotFoundError:
        return None
    t = t[(t["kind"] == "bpe") & t["lowercase"].astype(bool)]
    if t.empty:
        return None
    row = t.sort_values("vocab_size").iloc[-1]
    return int(row["vocab_size"]), float(row["chars_per_token"])


def bpe_passes_clause(tokens: int, train_chars: int, bpe: tuple[int, float] | None) -> str:
    """The chapter's words for how often a BPE model of ``tokens`` tokens goes through the training split:
    the number first (the book's report test reads it), then the tokenizer it holds for."""
    from ..numbers import fmt_num
    if bpe is None:
        return "more for a BPE model (chapter 02 measures how many characters its tokens cover)"
    vocab, cpt = bpe
    return (f"{fmt_num(passes(tokens, train_chars, cpt), 2)} for a BPE model of {vocab:,} tokens, the largest "
            f"vocabulary of chapter 02 ({fmt_num(cpt, 3)} characters per token)")
