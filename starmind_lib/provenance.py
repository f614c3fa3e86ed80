"""Provenance, atomic writes and crash-safe result tables.

A result table is an append-only JSON-lines journal (one row per finished unit
of work, flushed and fsynced) plus a parquet snapshot written atomically
from it. A run killed at any point (even ``kill -9``) loses no finished row,
and rerunning skips rows whose key is already present. Two processes appending to
one table (two sweeps started on the same results) cannot duplicate a row: an
append holds a lock on the journal and writes nothing when the row is there::

    table = ResultTable("data/results/sweep/variants", key="variant_id")
    if not table.has("w16_d2"):
        table.append({"variant_id": "w16_d2", "bpc": 2.1, **provenance(profile="quick")})
    table.snapshot()          # variants.parquet
    df = table.frame()
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the final file ordinary permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# The result tables are what the code writes, not its source: a run appending to its own committed table (a
# clean checkout measuring into data/results) must not mark its later rows '-dirty'.
SOURCE_PATHSPEC = ("--", ".", ":(exclude)data/results")


def git_commit(root: Path = REPO_ROOT) -> str:
    """The current commit (with '-dirty' when the tree has changes), or 'unknown' outside git.

    A copy of the tree without .git (e.g. on a rented GPU machine) reports $STARMIND_GIT_COMMIT,
    which the launching script sets from the checkout it copied.
    """
    if os.environ.get("STARMIND_GIT_COMMIT"):
        return os.environ["STARMIND_GIT_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *SOURCE_PATHSPEC], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("-dirty" if sha and dirty else "")


DIFF_KEEP_BYTES = 256 * 1024   # uncommitted diffs up to this size are kept beside the results


def git_diff(root: Path = REPO_ROOT) -> str:
    """The uncommitted changes to tracked source files (``git diff HEAD``, result tables left out: SOURCE_PATHSPEC),
    '' when clean or outside git."""
    try:
        return subprocess.run(["git", "diff", "HEAD", "--no-color", "--no-ext-diff", *SOURCE_PATHSPEC], cwd=root,
                              capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def diff_hash(diff: str) -> str:
    """A short hash of an uncommitted diff ('' for a clean tree): with the commit, it names the exact source."""
    import hashlib
    return hashlib.sha256(diff.encode("utf-8")).hexdigest()[:16] if diff else ""


def machine() -> str:
    """A short description of the machine: OS, CPU count, accelerator if any."""
    desc = f"{platform.system()}-{platform.machine()} {os.cpu_count()}cpu"
    try:
        import torch
        if torch.cuda.is_available():
            desc += " " + torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return desc


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def provenance(profile: str = "", **extra: Any) -> dict:
    """Columns every result row carries: the commit ('-dirty' with uncommitted changes), the hash of
    the uncommitted diff (``git_diff``; '' when clean), the profile, the machine and the time.

    Recorded at run time, never edited afterwards. A copy of the tree without .git reports
    $STARMIND_GIT_COMMIT and $STARMIND_GIT_DIFF (set by the script that copied it)."""
    if os.environ.get("STARMIND_GIT_COMMIT"):
        dh = os.environ.get("STARMIND_GIT_DIFF", "")
    else:
        dh = diff_hash(git_diff())
    return {"git_commit": git_commit(), "git_diff": dh, "profile": profile, "machine": machine(),
            "timestamp": now(), **extra}


def keep_diff(directory: str | Path, digest: str) -> Path | None:
    """Store the current uncommitted diff as ``<directory>/diffs/<digest>.diff`` when it is the one
    ``digest`` names and is small (``DIFF_KEEP_BYTES``); return its path (None when not kept)."""
    if not digest:
        return None
    path = Path(directory) / "diffs" / f"{digest}.diff"
    if path.exists():
        return path
    diff = git_diff()
    if diff_hash(diff) != digest or len(diff.encode("utf-8")) > DIFF_KEEP_BYTES:
        return None
    atomic_write_text(path, diff)
    return path


class ResultTable:
    """An append-only, crash-safe table of results keyed by one column."""

    def __init__(self, stem: str | Path, key: str):
        self.stem = Path(stem)
        self.key = key
        self.journal = self.stem.with_suffix(".jsonl")
        self._seen, self._seen_bytes = set(), 0     # identities read so far by append(), and how far

    def rows(self) -> list[dict]:
        """All complete rows, first occurrence of each key wins; a torn last line (crash) is ignored."""
        if not self.journal.exists():
            return []
        seen, out = set(), []
        with open(self.journal, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a write cut short by a crash: that unit of work simply reruns
                ident = self.identity(row)
                if ident in seen:
                    continue
                seen.add(ident)
                out.append(row)
        return out

    def identity(self, row: dict):
        """What makes two journal lines the same row (the first one wins): the key column."""
        return row.get(self.key)

    def keys(self) -> set:
        return {r.get(self.key) for r in self.rows()}

    def has(self, key_value) -> bool:
        return key_value in self.keys()

    def append(self, row: dict) -> bool:
        """Append ``row`` unless a row with its identity is already in the journal (written there by this
        process or another one since): returns whether it was written. The check and the write hold an
        exclusive lock on the journal, so concurrent appenders never duplicate a row."""
        if self.key not in row:
            raise KeyError(f"result row lacks its key column '{self.key}'")
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(row, sort_keys=True, default=str) + "\n"
        ident = self.identity(json.loads(line))     # as a reader will see it
        with open(self.journal, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)       # released when the file closes
            if ident in self._identities(f):
                return False
            f.seek(0, os.SEEK_END)
            if f.tell():                        # repair a torn last line, so the new row starts on its own line
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
            self._seen_bytes = f.tell()
            self._seen.add(ident)
        if row.get("git_diff"):   # the diff the row was computed from, kept beside the table when small
            self._kept = getattr(self, "_kept", set())
            if row["git_diff"] not in self._kept:
                keep_diff(self.journal.parent, row["git_diff"])
                self._kept.add(row["git_diff"])
        return True

    def _identities(self, f) -> set:
        """The identities of the rows in the open journal ``f``, reading only what was written since the
        last call (the journal only grows; one that shrank, e.g. replaced, is read again whole)."""
        f.seek(0, os.SEEK_END)
        end = f.tell()
        if end < self._seen_bytes:
            self._seen, self._seen_bytes = set(), 0
        f.seek(self._seen_bytes)
        for raw in f.read(end - self._seen_bytes).splitlines(keepends=True):
            if not raw.endswith(b"\n"):        # a torn last line: not a row
                break
            try:
                self._seen.add(self.identity(json.loads(raw)))
            except json.JSONDecodeError:
                pass
            self._seen_bytes += len(raw)
        return self._seen

    def frame(self):
        import pandas as pd
        return pd.DataFrame(self.rows())

    def snapshot(self) -> None:
        """Write ``<stem>.parquet`` atomically from the journal (the JSONL journal stays the source)."""
        df = self.frame()
        flat = df.copy()
        for col in flat.columns:  # nested values (configs, token lists) are stored as JSON text
            if flat[col].map(lambda v: isinstance(v, (dict, list))).any():
                flat[col] = flat[col].map(lambda v: json.dumps(v, sort_keys=True)
                                          if isinstance(v, (dict, list)) else v)
        with atomic_path(self.stem.with_suffix(".parquet")) as tmp:
            flat.to_parquet(tmp, index=False)
