"""The corpus: stories read from a source, normalised, split, capped, cached.

::

    cfg = DataConfig.from_params({"source": "local", "data_dir": "../shared/data/tinystories"})
    corpus = load_corpus(cfg, cache_dir="data/runs")
    corpus.train, corpus.val, corpus.fingerprint

Split: files named ``validation*``/``valid*``/``val*`` (and the Hugging Face
validation split) are the validation set. Without such files, a story goes to
validation when the first 8 bytes of the SHA-1 of its raw (stripped,
un-normalised) text, read as a big-endian integer over 2**64, fall below
``val_fraction``: stable across runs and machines, and the same for the cased
and the lowercased corpus.

Caps: ``max_chars`` keeps the training stories, in source order, up to that
many characters (0 = all); ``max_val_chars`` does the same for validation.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..provenance import atomic_write_text
from .config import DataConfig
from .normalise import is_lowercase_only, normalise_story
from .sources import RawShard, local_signature, read_local, read_tinystories_hf
from .synthetic import synthetic_stories

CACHE_VERSION = 2  # bump when the corpus or its fingerprint is computed differently
_memo: dict[str, "Corpus"] = {}


@dataclass
class Corpus:
    train: list[str]
    val: list[str]
    fingerprint: str  # sha256 of the config (less data_dir) and the normalised stories
    source_label: str  # e.g. "TinyStories (local sample)", "synthetic"
    is_synthetic: bool
    config: dict = field(default_factory=dict)
    shards: list[dict] = field(default_factory=list)  # per file: name, split, stories, chars, lowercase_only, used
    notes: list[str] = field(default_factory=list)


def story_in_val(raw_story: str, val_fraction: float) -> bool:
    """Deterministic split by story hash (see the module docstring)."""
    h = int.from_bytes(hashlib.sha1(raw_story.encode("utf-8")).digest()[:8], "big")
    return h / 2.0**64 < val_fraction


def _cap(stories: list[str], max_chars: int) -> list[str]:
    if not max_chars:
        return stories
    out, total = [], 0
    for s in stories:
        if out and total + len(s) > max_chars:
            break
        out.append(s)
        total += len(s)
    return out


def _read_raw(cfg: DataConfig) -> list[RawShard]:
    if cfg.source == "synthetic":
        return [RawShard("synthetic", "train", synthetic_stories(cfg.n_synthetic_stories, cfg.seed))]
    if cfg.source == "local":
        return read_local(cfg.data_dir)
    return read_tinystories_hf(cfg.max_chars, cfg.max_val_chars)


def _label(cfg: DataConfig) -> str:
    if cfg.source == "synthetic":
        return "synthetic"
    if cfg.source == "local" and "tinystories" in Path(cfg.data_dir).resolve().name.lower():
        return "TinyStories (local sample)"
    return "TinyStories (Hugging Face)" if cfg.source == "tinystories" else f"local files ({cfg.data_dir})"


def _build(cfg: DataConfig) -> Corpus:
    shards = _read_raw(cfg)
    has_val_files = any(s.split == "val" for s in shards)
    train, val, shard_info, notes = [], [], [], []
    for shard in shards:
        lower_only = cfg.source != "synthetic" and is_lowercase_only(shard.stories)
        used = not (lower_only and not cfg.keeps_lowercase_shards())
        shard_info.append({"name": shard.name, "split": shard.split, "stories": len(shard.stories),
                           "chars": sum(map(len, shard.stories)), "lowercase_only": lower_only, "used": used})
        if lower_only:
            notes.append(f"{shard.name} has no upper-case letter (lowercased upstream): "
                         + ("kept" if used else "dropped") + f" (lowercase={cfg.lowercase}, "
                         f"lowercase_shards={cfg.lowercase_shards!r})")
        if not used:
            continue
        for raw in shard.stories:
            story = normalise_story(raw, lowercase=cfg.lowercase, fix=cfg.fix_mojibake)
            if not story:
                continue
            if has_val_files:
                (val if shard.split == "val" else train).append(story)
            else:
                (val if story_in_val(raw, cfg.val_fraction) else train).append(story)
    if has_val_files:
        notes.append("validation = the source's validation files (val_fraction unused)")
    train, val = _cap(train, cfg.max_chars), _cap(val, cfg.max_val_chars)
    if not train or not val:
        raise ValueError(f"the corpus has {len(train)} training and {len(val)} validation stories; "
                         "both must be non-empty (raise 'val_fraction', 'max_chars' or 'n_synthetic_stories')")
    # The directory's path is left out: the same stories found elsewhere (another machine,
    # a GPU box) give the same fingerprint, so prepared data and result rows stay valid.
    settings = {k: v for k, v in cfg.to_dict().items() if k != "data_dir"}
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for part in (train, val):
        h.update(b"\x1d")
        for s in part:
            h.update(s.encode("utf-8") + b"\x1e")
    return Corpus(train, val, h.hexdigest(), _label(cfg), cfg.source == "synthetic",
                  cfg.to_dict(), shard_info, notes)


def _cache_key(cfg: DataConfig) -> str:
    sig = local_signature(cfg.data_dir) if cfg.source == "local" else cfg.source
    return cfg.key(sig, str(CACHE_VERSION))


def load_corpus(cfg: DataConfig, cache_dir: str | Path | None = None) -> Corpus:
    """The normalised, split corpus of ``cfg``.

    Memoised in the process; with ``cache_dir`` also stored as
    ``<cache_dir>/corpus/<key>.json`` (key = config hash + source file sizes and
    mtimes), so repeated loads (the sweep) cost a JSON read.
    """
    key = _cache_key(cfg)
    if key in _memo:
        return _memo[key]
    path = Path(cache_dir) / "corpus" / f"{key}.json" if cache_dir else None
    if path is not None and path.exists():
        corpus = Corpus(**json.loads(path.read_text(encoding="utf-8")))
    else:
        corpus = _build(cfg)
        if path is not None:
            atomic_write_text(path, json.dumps(asdict(corpus), ensure_ascii=False))
    _memo[key] = corpus
    return corpus


def resolve_data_source(data_source: str, data_dir: str = "") -> tuple[str, str]:
    """The (source, data_dir) to use: "tinystories" becomes "local" when a local copy is named.

    An explicit ``data_dir`` wins; otherwise the ``STARMIND_DATA_DIR`` environment
    variable (exported by the Makefile when ``../shared/data/tinystories`` exists).
    """
    if data_source == "tinystories":
        local = data_dir or os.environ.get("STARMIND_DATA_DIR", "").strip()
        if local:
            return "local", local
    return data_source, data_dir


def data_source_note(data_source: str, data_dir: str = "") -> str:
    """One sentence for a chapter: where its stories come from after :func:`resolve_data_source`."""
    source, resolved_dir = resolve_data_source(data_source, data_dir)
    if source == "synthetic":
        return ("The stories are **synthetic** (a seeded template generator, the `smoke` profile): "
                "these results prove the pipeline, not the study.")
    if source == "local" and data_source == "tinystories":
        how = "the `data_dir` parameter" if data_dir else "STARMIND_DATA_DIR"
        return f"The stories are TinyStories read from the local directory `{resolved_dir}` (set by {how})."
    if source == "local":
        return f"The stories are read from the local directory `{resolved_dir}`."
    return "The stories are TinyStories, downloaded from Hugging Face (`roneneldan/TinyStories`)."


def corpus_stats(texts: list[str]) -> dict:
    """Sizes of a list of stories: counts, characters, words, story length percentiles."""
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    words = sum(len(t.split()) for t in texts)
    chars = set()
    for t in texts:
        chars.update(t)
    pct = np.percentile(lengths, [10, 50, 90]) if len(lengths) else [0, 0, 0]
    return {"stories": int(len(lengths)), "characters": int(lengths.sum()), "distinct_characters": len(chars),
            "words": int(words), "mean_story_chars": float(lengths.mean()) if len(lengths) else 0.0,
            "p10_story_chars": float(pct[0]), "median_story_chars": float(pct[1]),
            "p90_story_chars": float(pct[2]), "max_story_chars": int(lengths.max()) if len(lengths) else 0}


def story_lengths(texts: list[str]) -> np.ndarray:
    """Characters per story (the histogram data)."""
    return np.array([len(t) for t in texts], dtype=np.int64)


def char_counts(texts: list[str]) -> Counter:
    """How often each character occurs."""
    c: Counter = Counter()
    for t in texts:
        c.update(t)
    return c


def char_class(ch: str) -> str:
    """A coarse class for the character inventory figure."""
    if ch.isalpha():
        return "upper-case letter" if ch.isupper() else "lower-case letter"
    if ch.isdigit():
        return "digit"
    if ch.isspace():
        return "whitespace"
    if ord(ch) < 128:
        return "ASCII punctuation"
    return "other (non-ASCII)"
