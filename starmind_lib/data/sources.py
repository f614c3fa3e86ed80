"""Reading raw stories: a local directory of files, or TinyStories from Hugging Face.

A local directory may hold ``.txt`` (stories separated by ``<|endoftext|>``, or
else by blank lines), ``.jsonl`` (``{"text": ...}`` per line) and ``.parquet``
(a ``text`` column) files. Files whose name starts with ``validation``,
``valid`` or ``val`` form the validation split; the rest are training files.
"""
from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".txt", ".jsonl", ".parquet")
_VAL_NAME = re.compile(r"^(validation|valid|val)(?![a-z])", re.IGNORECASE)
_EOT = "<|endoftext|>"
HF_DATASET = "roneneldan/TinyStories"
HF_HOST = "huggingface.co"


class DataSourceError(RuntimeError):
    """The stories could not be read; the message says what to do instead."""


@dataclass
class RawShard:
    """The stories of one file (or one Hugging Face split), as read, stripped, empties dropped."""
    name: str
    split: str  # "train" or "val"
    stories: list[str]


def is_validation_name(filename: str) -> bool:
    return bool(_VAL_NAME.match(Path(filename).name))


def _split_txt(text: str) -> list[str]:
    text = text.replace("\r\n", "\n")
    parts = text.split(_EOT) if _EOT in text else re.split(r"\n[ \t]*\n", text)
    return parts


def read_story_file(path: Path) -> list[str]:
    """The stories of one ``.txt``, ``.jsonl`` or ``.parquet`` file."""
    if path.suffix == ".txt":
        stories = _split_txt(path.read_text(encoding="utf-8"))
    elif path.suffix == ".jsonl":
        stories = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    stories.append(json.loads(line)["text"])
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise DataSourceError(f"{path}:{lineno}: expected a JSON object with a 'text' field ({e})")
    elif path.suffix == ".parquet":
        import pandas as pd
        df = pd.read_parquet(path)
        if "text" not in df.columns:
            raise DataSourceError(f"{path}: parquet file has no 'text' column (columns: {list(df.columns)})")
        stories = df["text"].astype(str).tolist()
    else:
        raise DataSourceError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")
    return [s.strip() for s in stories if s and s.strip()]


def story_files(data_dir: str | Path) -> list[Path]:
    files = sorted(p for p in Path(data_dir).iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise DataSourceError(f"data_dir {str(data_dir)!r} holds no story files ({', '.join(SUFFIXES)})")
    return files


def read_local(data_dir: str | Path) -> list[RawShard]:
    return [RawShard(p.name, "val" if is_validation_name(p.name) else "train", read_story_file(p))
            for p in story_files(data_dir)]


def local_signature(data_dir: str | Path) -> str:
    """Names, sizes and modification times of the story files: changes when any file does."""
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in story_files(data_dir))


_OFFLINE_HELP = ("TinyStories could not be loaded from Hugging Face ({why}). Point the study at local files "
                 "instead: data_source='local' with data_dir='/path/to/tinystories' (a directory of .jsonl/.txt/"
                 ".parquet story files), or `make book DATA_DIR=/path/to/tinystories` "
                 "(which exports STARMIND_DATA_DIR).")


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_reachable(timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((HF_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _take(texts, max_chars: int) -> list[str]:
    """Stripped non-empty stories from an iterable, stopping once ``max_chars`` are read (0 = all)."""
    out, total = [], 0
    for t in texts:
        t = (t or "").strip()
        if not t:
            continue
        out.append(t)
        total += len(t)
        if max_chars and total >= max_chars:
            break
    return out


def read_tinystories_hf(max_chars: int = 0, max_val_chars: int = 0) -> list[RawShard]:
    """TinyStories train and validation from Hugging Face (cached by ``datasets``).

    Fails within seconds when offline: with ``HF_HUB_OFFLINE=1`` only a cached copy is
    used; otherwise the hub is probed with a short timeout before any download starts.
    With a cap (``max_chars``) the splits are streamed and only the first stories are
    read, instead of downloading the whole dataset (about 2 GB).
    """
    if not _offline() and not _hub_reachable():
        raise DataSourceError(_OFFLINE_HELP.format(why=f"cannot reach {HF_HOST}:443"))
    # Short network timeouts (read when huggingface_hub is first imported).
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    stream = bool(max_chars) and not _offline()
    try:
        import datasets
        ds = datasets.load_dataset(HF_DATASET, streaming=stream)
        texts = {split: _take((row["text"] for row in ds[split]), cap)
                 for split, cap in (("train", max_chars), ("validation", max_val_chars))}
    except Exception as e:  # noqa: BLE001 - any failure gets the same advice
        why = "offline (HF_HUB_OFFLINE=1) and no cached copy" if _offline() else f"{type(e).__name__}: {e}"
        raise DataSourceError(_OFFLINE_HELP.format(why=why)) from e
    return [RawShard(f"{HF_DATASET}:{split}", "val" if split == "validation" else "train", texts[split])
            for split in ("train", "validation")]
