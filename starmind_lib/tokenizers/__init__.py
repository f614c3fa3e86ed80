"""Tokenizers for the study: character level and byte-level BPE, cased or lowercased.

::

    tok = build_tokenizer(kind="char", vocab_size=256, texts=corpus.train, lowercase=False)
    tok.name                      # "char-91" (actual vocabulary size), "bpe-512-lc"
    ids = tok.encode("Once upon a time")     # no BOS/EOS added
    tok.decode(ids)
    tok.save("tok.json"); tok2 = load_tokenizer("tok.json")
    blob = tok.to_binary(); tok3 = tokenizer_from_binary(blob)   # layout: see .base
    arr = encode_corpus(tok, corpus.train)   # int32: story0 EOS story1 EOS ... storyN EOS

Both kinds use BOS = 0 and EOS = 1; char tokenizers have ``<unk>`` = 2, BPE none.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import (BINARY_VERSION, MAGIC, MAX_VOCAB, MIN_VOCAB, Tokenizer, TokenizerError, check_vocab_size,
                   parse_binary)
from .bpe import MIN_BPE_VOCAB, BPETokenizer
from .char import CharTokenizer, codepoints
from .metrics import tokenizer_metrics

KINDS = {"char": CharTokenizer, "bpe": BPETokenizer}


def build_tokenizer(kind: str, vocab_size: int, texts, lowercase: bool = False) -> Tokenizer:
    """Train a ``kind`` tokenizer of at most ``vocab_size`` tokens on ``texts``."""
    if kind not in KINDS:
        raise TokenizerError(f"tokenizer kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    check_vocab_size(kind, vocab_size)
    return KINDS[kind].train(texts, vocab_size, lowercase)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """A tokenizer saved with ``tok.save(path)``."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    if d.get("format") != "starmind-tokenizer" or d.get("kind") not in KINDS:
        raise TokenizerError(f"{path}: not a Starmind tokenizer file (format {d.get('format')!r}, "
                             f"kind {d.get('kind')!r})")
    return KINDS[d["kind"]].from_dict(d)


def tokenizer_from_binary(data: bytes) -> Tokenizer:
    """A tokenizer from its binary vocabulary (BPE without merges decodes only)."""
    f = parse_binary(data)
    ids = (f["bos_id"], f["eos_id"], f["unk_id"])
    if f["kind"] == "char":
        return CharTokenizer.from_tokens(f["tokens"], f["lowercase"], ids)
    return BPETokenizer.from_tokens(f["tokens"], f["lowercase"], ids, f["merges"])


def encode_corpus(tok: Tokenizer, stories: list[str]) -> np.ndarray:
    """All ``stories`` as one int32 array, each story followed by EOS: ``s0 EOS s1 EOS ... sN EOS``.

    The EOS after a story is what the model learns to emit at a story's end; it
    also marks the start of the next one (no BOS is inserted).
    """
    if isinstance(tok, CharTokenizer):
        # One vectorised lookup of the joined text; EOS goes where the separators were.
        sep = "\x00"
        if any(sep in s for s in stories):
            parts = [np.append(tok.encode_array(s), np.int32(tok.eos_id)) for s in stories]
            return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
        joined = sep.join(stories) + sep if stories else ""
        cps = codepoints(tok.prepare(joined))
        ids = tok.lookup_codepoints(cps)
        ids[cps == 0] = tok.eos_id
        return ids
    out = []
    for ids in tok.encode_batch(list(stories)):
        out.extend(ids)
        out.append(tok.eos_id)
    return np.asarray(out, dtype=np.int32)


__all__ = ["Tokenizer", "TokenizerError", "CharTokenizer", "BPETokenizer", "build_tokenizer", "load_tokenizer",
           "tokenizer_from_binary", "encode_corpus", "tokenizer_metrics", "parse_binary", "MAGIC",
           "BINARY_VERSION", "MIN_VOCAB", "MAX_VOCAB", "MIN_BPE_VOCAB", "KINDS"]
