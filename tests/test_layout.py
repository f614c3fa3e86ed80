"""The package's shape: no import cycles, no oversized module, and every committed config_hash reproduces."""
import ast
import json
from pathlib import Path

import pytest

from starmind_lib.provenance import REPO_ROOT
from starmind_lib.training.train import TrainConfig

PKG = REPO_ROOT / "starmind_lib"
MAX_LINES = 500


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the starmind_lib modules it imports (anywhere in the file, lazy imports included)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:   # `import a.b.c` imports a.b.c (a package's __init__ is not a cycle)
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                if t and t != name and not name.startswith(t + "."):
                    deps.add(t)
        graph[name] = deps
    return graph


def test_import_graph_is_acyclic():
    graph = import_graph()
    assert "starmind_lib.quant.smd" in graph and "starmind_lib.quant.schemes" in graph
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_smd_format_imports_no_quantisation():
    assert "starmind_lib.quant.schemes" not in import_graph()["starmind_lib.quant.smd"]


def test_no_module_over_500_lines():
    long = {str(p.relative_to(REPO_ROOT)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_chapter_glue_is_apart_from_the_stages():
    graph = import_graph()
    for name, deps in graph.items():
        if not name.startswith(("starmind_lib.chapters", "starmind_lib.book", "starmind_lib.cli")):
            assert not any(d.startswith("starmind_lib.chapters") for d in deps), f"{name} imports chapter glue"


def test_train_config_holds_a_model_config():
    from starmind_lib.model import ModelConfig
    import dataclasses
    own = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not own & {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = TrainConfig.from_params({"dim": 32, "n_heads": 4, "vocab_size": 96, "seq_len": 48})
    assert isinstance(cfg.model, ModelConfig) and cfg.model.max_seq_len == 48
    assert TrainConfig.from_params(cfg.to_dict()) == cfg
    assert TrainConfig.from_params({**cfg.to_dict(), "dim": 64}).model.dim == 64


def _committed_rows():
    for path in sorted((REPO_ROOT / "data" / "results").rglob("*.jsonl")):
        for i, line in enumerate(path.read_text().splitlines()):
            if line.strip():
                row = json.loads(line)
                if "config_hash" in row:
                    yield f"{path.relative_to(REPO_ROOT)}:{i + 1}", row


def test_every_committed_config_hash_reproduces():
    rows = list(_committed_rows())
    tables = {r.split(":")[0] for r, _ in rows}
    assert any("sweep/" in t for t in tables), "no committed sweep rows carry config_hash"
    bad = []
    from starmind_lib.training.plan import config_hash
    from starmind_lib.training.plan import ARCH_FIELDS
    run_hash = {row["run_id"]: row["config_hash"] for _, row in rows if "config" in row and "run_id" in row}
    study_hash = {row["run_key"]: row["config_hash"] for w, row in rows if w.startswith("data/results/sweep/study_v2")}
    for where, row in rows:
        if "run_key" in row and all(f in row for f in ARCH_FIELDS):
            got = config_hash(row, row["seq_len"])     # Study v2: shape, tokenizer, context (no seed or rate)
        elif "run_key" in row:   # a row about a Study v2 run (chapter 05's): its run's hash
            got = study_hash.get(row["run_key"], f"no Study v2 run {row['run_key']!r}")
        elif "config" not in row and "run_id" in row:    # a learning-curve point: its run's hash
            got = run_hash.get(row["run_id"], f"no run {row['run_id']!r}")
        else:
            config = row["config"] if isinstance(row["config"], dict) else json.loads(row["config"])
            got = TrainConfig.from_params(config).key(row["data_fingerprint"])
        if got != row["config_hash"]:
            bad.append(f"{where}: {got} != {row['config_hash']}")
    assert not bad, f"{len(bad)} of {len(rows)} rows: " + "; ".join(bad[:5])


KEYS = ("key", "run_key", "point_id", "run_id", "row_id", "job_id", "variant_id")   # ResultTable keys in use


def journal_rows(journal):
    """A journal's rows as ResultTable reads them: first occurrence of each key wins (the key: the first of
    ``KEYS`` its rows carry), torn lines skipped."""
    rows = []
    for line in journal.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    key = next((k for k in KEYS if rows and all(k in r for r in rows)), None)
    if key is None:
        return rows
    seen, out = set(), []
    for r in rows:
        if r[key] not in seen:
            seen.add(r[key])
            out.append(r)
    return out


def test_every_committed_parquet_snapshot_matches_its_journal():
    """``<stem>.parquet`` is a snapshot of ``<stem>.jsonl`` (the source): a commit must not carry a stale one."""
    import pandas as pd
    stale = []
    for journal in sorted((REPO_ROOT / "data").rglob("*.jsonl")):
        snap = journal.with_suffix(".parquet")
        if snap.exists():
            n_journal, n_snap = len(journal_rows(journal)), len(pd.read_parquet(snap))
            n_lines = sum(1 for line in journal.read_text().splitlines() if line.strip())
            if n_snap not in (n_journal, n_lines):   # first row per key, or every row (micropython_runs keeps all)
                stale.append(f"{journal.relative_to(REPO_ROOT)}: {n_journal} rows, its parquet {n_snap}")
    assert not stale, "snapshot the tables again (ResultTable.snapshot()): " + "; ".join(stale)
