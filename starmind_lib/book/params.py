"""Checks made before any chapter runs: every profile parameter against each notebook's parameters
cell (name and type), and every ``show(...)`` whose figure would be lost."""
from __future__ import annotations

import ast
from pathlib import Path

from ..profiles import load_profile, notebook_params


class BookError(RuntimeError):
    """The book cannot be built; the message says which notebook/page and why."""


def parameters_cell_names(nb, path: Path) -> set[str]:
    """Names assigned in the cell tagged ``parameters`` (papermill injects after it)."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise BookError(f"{path}: needs exactly one cell tagged parameters "
                        f"(`# %% tags=[\"parameters\"]`), found {len(cells)}")
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise BookError(f"{path}: the parameters cell is not valid Python: {exc}") from exc
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def check_parameters(params: dict, declared: set[str], path: Path, profile: str) -> None:
    """A chapter-specific profile parameter the notebook does not declare is a typo or a stale
    profile: refuse it. (``common`` parameters are offered to every chapter; a chapter may ignore some.)"""
    common = set(load_profile(profile)["common"])
    unknown = sorted(set(params) - declared - common)
    if unknown:
        raise BookError(f"{path}: profile {profile!r} sets parameter(s) {unknown} that its parameters "
                        f"cell does not define (it defines {sorted(declared)})")


def parameters_cell_defaults(nb, path: Path) -> dict:
    """{name: default value} of the parameters cell (values that are not literals are left out)."""
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    out = {}
    for node in ast.parse(cell.source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and node.value is not None:
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def _type_problem(name: str, value, default) -> str | None:
    """Why ``value`` cannot stand in for a parameter whose default is ``default`` (None when it can)."""
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = True
    return None if ok else (f"{name} = {value!r} ({type(value).__name__}), but the notebook's default "
                            f"{default!r} is a {type(default).__name__}")


def validate_all(profile: str, notebooks: list[Path]) -> None:
    """Every chapter's parameters checked before any chapter runs: unknown names, wrong types, and
    each notebook's parameters cell (all problems at once, each naming its notebook)."""
    import jupytext
    problems = []
    for path in notebooks:
        params = notebook_params(profile, path.stem)
        try:
            nb = jupytext.read(path)
            declared = parameters_cell_names(nb, path)
            check_parameters(params, declared, path, profile)
            defaults = parameters_cell_defaults(nb, path)
        except BookError as exc:
            problems.append(str(exc))
            continue
        problems += [f"{path}: profile {profile!r}: {p}" for name, value in params.items() if name in defaults
                     for p in [_type_problem(name, value, defaults[name])] if p]
    prof = load_profile(profile)
    from ..profiles import PROFILE_DIR   # a profile section must name a chapter of the repository
    stems = {p.stem for p in notebooks} | {p.stem for p in (PROFILE_DIR.parent / "notebooks").glob("[0-9][0-9]*_*.py")}
    problems += [f"profile {profile!r} has a section for notebook {s!r}, which does not exist "
                 f"(notebooks: {', '.join(sorted(stems))})" for s in prof["notebooks"] if s not in stems]
    if problems:
        raise BookError("the profile's parameters are invalid (nothing was run):\n  " + "\n  ".join(problems))


FIGURE_CALLS = ("show",)


def unshown_figures(source: str, path: Path) -> list[str]:
    """Calls of ``show(...)`` whose figure would be lost: a Figure is displayed only as the last
    expression of a cell, or through ``display(...)`` (``show`` inside an ``if`` or a loop, or followed by
    other statements, produces no output)."""
    import jupytext
    nb = jupytext.reads(source, fmt="py:percent")
    out = []
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        last = tree.body[-1] if tree.body else None
        displayed = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "display":
                displayed |= {id(a) for a in node.args}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in FIGURE_CALLS \
                    and id(node) not in displayed \
                    and not (isinstance(last, ast.Expr) and last.value is node):
                out.append(f"{path}: code cell {i + 1}, line {node.lineno}: `show(...)` is neither the cell's last "
                           "expression nor inside display(...): its figure would not appear")
    return out
