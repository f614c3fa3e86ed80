"""The appendix's helpers: the inventory of result tables with their provenance, the disclosed
rewrites of committed rows, and the papermill command lines that rerun each chapter."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..profiles import notebook_params
from ..provenance import REPO_ROOT


def resolve_dir(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


TABLE_SUFFIXES = (".parquet", ".jsonl")


def _table_rows(stem: Path):
    import pandas as pd
    for suffix in TABLE_SUFFIXES:
        path = stem.with_suffix(suffix)
        if path.exists() and path.stat().st_size:
            if suffix == ".parquet":
                return pd.read_parquet(path)
            rows = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue   # a torn last line (crash); the table ignores it too
            return pd.DataFrame(rows)
    return pd.DataFrame()


def table_inventory(results_dir: str | Path):
    """One row per result table under ``results_dir``: files, rows and the provenance of its rows."""
    import pandas as pd
    root = resolve_dir(str(results_dir))
    stems = sorted({p.with_suffix("") for s in TABLE_SUFFIXES for p in root.rglob(f"*{s}")}) \
        if root.is_dir() else []
    out = []
    for stem in stems:
        df = _table_rows(stem)

        def distinct(col):
            return ", ".join(sorted(map(str, df[col].dropna().unique()))) if col in df else "–"
        stamps = df["timestamp"].dropna().astype(str) if "timestamp" in df else pd.Series([], dtype=str)
        commits = df["git_commit"].astype(str) if "git_commit" in df else pd.Series([], dtype=str)
        out.append({"table": stem.relative_to(root).as_posix(),
                    "files": " ".join(s.lstrip(".") for s in TABLE_SUFFIXES if stem.with_suffix(s).exists()),
                    "rows": len(df), "provenance": "yes" if set(PROVENANCE_COLUMNS) <= set(df.columns) else "NO",
                    "git commit": distinct("git_commit"),
                    "rows from uncommitted code": int(commits.str.endswith("-dirty").sum()),
                    "diff recorded": int((df["git_diff"].astype(str) != "").sum()) if "git_diff" in df else 0,
                    "profile": distinct("profile"), "machine": distinct("machine"),
                    "written": f"{stamps.min()[:16]} – {stamps.max()[:16]}" if len(stamps) else "–"})
    return pd.DataFrame(out, columns=["table", "files", "rows", "provenance", "git commit",
                                      "rows from uncommitted code", "diff recorded", "profile", "machine", "written"])


PROVENANCE_COLUMNS = ("git_commit", "profile", "machine", "timestamp")
REWRITES_FILE = "rewrites.yaml"


def rewrites(results_dir: str | Path):
    """The disclosed past rewrites of committed rows (``<results_dir>/rewrites.yaml``), one row each."""
    import pandas as pd
    path = resolve_dir(str(results_dir)) / REWRITES_FILE
    entries = yaml.safe_load(path.read_text()) if path.exists() else []
    return pd.DataFrame([{"commit": str(e.get("commit", "")), "date": str(e.get("date", "")),
                          "kind": e.get("kind", ""), "rows": e.get("rows", ""),
                          "tables": ", ".join(e.get("tables", [])), "what": e.get("what", "")}
                         for e in entries or []], columns=["commit", "date", "kind", "rows", "tables", "what"])


def papermill_command(stem: str, profile: str = "report", output: str | None = None) -> str:
    """The shell commands that rerun one chapter with the profile's parameters (edit ``-p`` to vary them)."""
    import shlex
    params = notebook_params(profile, stem)

    def arg(k, v):
        if k == "data_dir" and v == "":   # what `make` passes: a local TinyStories directory, else Hugging Face
            return '-p data_dir "${STARMIND_DATA_DIR:-}"'
        if isinstance(v, (bool, list, dict)):
            return f"-y {shlex.quote(k + ': ' + json.dumps(v))}"
        return f"-p {k} {shlex.quote(str(v))}"
    args = " ".join(arg(k, v) for k, v in params.items())
    ipynb = f"build/{stem}.ipynb"
    return (f"mkdir -p build && .venv/bin/jupytext --to ipynb -o {ipynb} notebooks/{stem}.py\n"
            f".venv/bin/papermill -k python3 {ipynb} {output or f'build/{stem}-{profile}.ipynb'} {args}")
