"""Chapter 02's grid: char vs byte-level BPE over vocabulary sizes, cased and lowercased.

Each tokenizer is trained on the training stories of the corpus it would serve
(the lowercased corpus for ``-lc`` tokenizers, see the data stage) and measured
on that corpus's validation stories with :func:`tokenizer_metrics`. Rows go to
the ResultTable ``<results_dir>/tokenizers/tokenizers`` (key ``row_id``:
kind, requested size, case, the corpus fingerprint and ``STUDY_VERSION``), so a
rerun skips finished rows and a changed corpus (or code) gets new ones.

BPE requests below 258 (256 bytes + BOS + EOS) are measured at 258 instead.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm  # plain text progress: no widget needed in papermill or the book

from ..data import DataConfig, load_corpus
from ..provenance import ResultTable, provenance
from ..tokenizers import build_tokenizer
from ..tokenizers.bpe import MIN_BPE_VOCAB
from ..tokenizers.metrics import DEFAULT_DIMS, tokenizer_metrics

GROUP = ["kind", "requested_vocab_size", "lowercase"]
# Part of every row key: bump it when the measured columns change, so old rows are not reused.
STUDY_VERSION = 2
EXAMPLE_TEXT = "Once upon a time, there was a little girl named Lily. She loved to play outside."


def token_pieces(tok, text: str = EXAMPLE_TEXT) -> str:
    """How ``tok`` splits ``text``: the tokens' text joined by "|" (for the chapter's examples)."""
    return "|".join(tok.token_bytes(i).decode("utf-8", errors="replace") or "<unk>" for i in tok.encode(text))


def tokenizer_grid(vocab_sizes, kinds=("char", "bpe"), lowercase=(False, True)) -> list[tuple[str, int, bool]]:
    """(kind, requested vocab size, lowercase) for every point measured."""
    points = []
    for kind in kinds:
        sizes = sorted({max(v, MIN_BPE_VOCAB) if kind == "bpe" else v for v in vocab_sizes})
        points += [(kind, v, lc) for lc in lowercase for v in sizes]
    return points


def _table(results_dir) -> ResultTable:
    return ResultTable(Path(results_dir) / "tokenizers" / "tokenizers", key="row_id")


def run_tokenizer_study(cfg: DataConfig, grid, results_dir, cache_dir=None, dims=DEFAULT_DIMS,
                        profile: str = "") -> pd.DataFrame:
    """Measure every grid point (skipping rows already in the table); the rows of this corpus."""
    table = _table(results_dir)
    done = table.keys()
    rows = []
    for kind, vocab, lc in tqdm(grid, desc="tokenizers"):
        corpus = load_corpus(cfg.replace(lowercase=lc), cache_dir)
        row_id = f"{kind}-{vocab}-{'lc' if lc else 'cased'}-{corpus.fingerprint[:12]}-v{STUDY_VERSION}"
        if row_id not in done:
            start = time.perf_counter()
            tok = build_tokenizer(kind, vocab, corpus.train, lowercase=lc)
            train_s = time.perf_counter() - start
            table.append({"row_id": row_id, **tokenizer_metrics(tok, corpus.val, dims), "train_s": train_s,
                          "fingerprint": corpus.fingerprint, "source_label": corpus.source_label,
                          "is_synthetic": corpus.is_synthetic, "train_chars": sum(map(len, corpus.train)),
                          "example": token_pieces(tok),
                          **provenance(profile)})
        rows.append(row_id)
    table.snapshot()
    df = table.frame()
    return df[df["row_id"].isin(rows)].reset_index(drop=True)


def read_tokenizer_table(results_dir) -> pd.DataFrame:
    """The committed table: the latest row for each (kind, requested size, case)."""
    table = _table(results_dir)
    if not table.journal.exists():
        raise FileNotFoundError(f"{table.journal} not found; run chapter 02 with recompute=True "
                                "(e.g. `make book PROFILE=quick`) to compute it")
    return table.frame().groupby(GROUP, sort=False).tail(1).reset_index(drop=True)


def tokenizer_table(cfg: DataConfig, grid, results_dir, recompute: bool, cache_dir=None, dims=DEFAULT_DIMS,
                    profile: str = "") -> pd.DataFrame:
    if recompute:
        return run_tokenizer_study(cfg, grid, results_dir, cache_dir, dims, profile)
    return read_tokenizer_table(results_dir)


# The chapter's table of every tokenizer: column -> the reader's label.
SUMMARY_LABELS = {"tokenizer": "tokenizer", "requested_vocab_size": "vocabulary requested",
                  "vocab_size": "vocabulary", "chars_per_token": "characters per token",
                  "unk_rate": "unknown-token share", "coverage": "share of characters covered",
                  "max_token_bytes": "longest token (bytes)", "vocab_bytes": "binary vocabulary (bytes)",
                  "merges_bytes": "merges (bytes)",
                  "device_bytes_d64": "vocabulary + embedding at dimension 64 (bytes)", "train_s": "training time (s)"}


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every tokenizer measured, char before BPE, cased before lowercased, by size; reader's column names."""
    rows = df.sort_values(["kind", "lowercase", "requested_vocab_size"], ascending=[False, True, True])
    return rows[list(SUMMARY_LABELS)].rename(columns=SUMMARY_LABELS).reset_index(drop=True)


def measured(df: pd.DataFrame, kind: str, vocab: int, lowercase: bool, column: str) -> float:
    """One column of the tokenizer table's row for (kind, requested size, case); an error naming what was
    measured when there is none."""
    row = df[(df["kind"] == kind) & (df["requested_vocab_size"] == vocab) & (df["lowercase"] == lowercase)]
    if row.empty:
        raise KeyError(f"no row for {kind}-{vocab} (lowercase={lowercase}); measured: {sorted(set(df.tokenizer))}")
    return float(row.iloc[-1][column])


def tokenizer_numbers(df: pd.DataFrame) -> dict:
    """The prose numbers of chapter 02 on BPE (glue name -> value): the smallest BPE that merges anything and the
    largest one measured, their characters per token (cased; the largest also lowercased), and the largest one's
    device bytes at dimension 64 and merge-table bytes."""
    sizes = sorted(set(df.loc[df["kind"] == "bpe", "requested_vocab_size"]))
    small = next((v for v in sizes if v > 258), sizes[0])   # 256 bytes + BOS + EOS: the first that merges
    large = sizes[-1]
    return {"bpe_small": int(small), "bpe_large": int(large),
            "bpe_cpt_small": measured(df, "bpe", small, False, "chars_per_token"),
            "bpe_cpt_large": measured(df, "bpe", large, False, "chars_per_token"),
            "bpe_lc_cpt_large": measured(df, "bpe", large, True, "chars_per_token"),
            "bpe_bytes_large_d64": int(measured(df, "bpe", large, False, "device_bytes_d64")),
            "bpe_merges_large": int(measured(df, "bpe", large, False, "merges_bytes"))}
