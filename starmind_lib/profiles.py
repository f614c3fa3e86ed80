"""Profiles: named sets of notebook parameters, stored as YAML in ``profiles/``.

A profile file has a ``common`` section (parameters every notebook receives)
and a ``notebooks`` section (per-notebook parameters, by notebook stem). A
profile may ``extends: <other>`` to start from another profile::

    params = notebook_params("smoke", "01_data")   # common + notebook section
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .config import ConfigError
from .provenance import REPO_ROOT

PROFILE_DIR = REPO_ROOT / "profiles"


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_profile(name: str, _seen: tuple = ()) -> dict:
    """The fully resolved profile: {"description", "common": {...}, "notebooks": {stem: {...}}}."""
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown profile {name!r}; available: {', '.join(available_profiles())}")
    if name in _seen:
        raise ConfigError(f"profile {name!r} extends itself through {' -> '.join(_seen)}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"description", "extends", "common", "notebooks"}
    if unknown:
        raise ConfigError(f"profile {name!r}: unknown section(s) {sorted(unknown)}; "
                          "accepted: description, extends, common, notebooks")
    base = load_profile(raw["extends"], _seen + (name,)) if raw.get("extends") else {}
    prof = _merge(base, {k: v for k, v in raw.items() if k != "extends"})
    prof.setdefault("common", {})
    prof.setdefault("notebooks", {})
    prof["common"]["profile"] = name
    return prof


def notebook_params(profile: str, notebook: str, overrides: dict | None = None) -> dict:
    prof = load_profile(profile)
    return {**prof["common"], **prof["notebooks"].get(notebook, {}), **(overrides or {})}


COMMITTED_RESULTS = "data/results"


def check_notebook_params(stem: str, namespace: dict) -> None:
    """Called by each chapter right after its parameters cell (and papermill's injected one).

    * a name that the notebook's parameters cell does not define (a typo passed with ``-p``) is an error,
      not papermill's warning;
    * ``profile`` must name a profile;
    * a run that recomputes must not write the committed tables (``data/results``) under a profile
      whose tables live elsewhere: ``-p profile quick`` alone is only a label, and would otherwise
      rewrite the study's tables with the quick profile's settings.
    """
    import ast
    import jupytext
    path = PROFILE_DIR.parent / "notebooks" / f"{stem}.py"
    declared = set()
    if path.exists():
        nb = jupytext.read(path)
        for cell in nb.cells:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                for node in ast.parse(cell.source).body:
                    targets = node.targets if isinstance(node, ast.Assign) else \
                        [node.target] if isinstance(node, ast.AnnAssign) else []
                    declared |= {t.id for t in targets if isinstance(t, ast.Name)}
        injected = set()   # what papermill injected: its cell starts with "# Parameters"
        for source in namespace.get("In", []) or []:
            if isinstance(source, str) and source.lstrip().startswith("# Parameters"):
                try:
                    tree = ast.parse(source)
                except SyntaxError:
                    continue
                injected |= {t.id for node in tree.body if isinstance(node, ast.Assign)
                             for t in node.targets if isinstance(t, ast.Name)}
        unknown = sorted(injected - declared)
        if declared and unknown:
            raise ConfigError(f"{path.name}: parameter(s) {unknown} are not defined by its parameters cell "
                              f"(it defines {sorted(declared)}): a typo?")
    name = namespace.get("profile", "")
    prof = load_profile(name)          # unknown profile: ConfigError naming the available ones
    if not namespace.get("recompute"):
        return
    want = str(prof["common"].get("results_dir", ""))
    given = str(namespace.get("results_dir", ""))
    if Path(given).resolve() == (PROFILE_DIR.parent / COMMITTED_RESULTS).resolve() and \
            Path(want).as_posix() != COMMITTED_RESULTS:
        needed = {k: v for k, v in notebook_params(name, stem).items() if namespace.get(k) != v}
        raise ConfigError(f"{stem}: recompute=True with results_dir={given!r} would rewrite the committed tables, "
                          f"but profile {name!r} writes to {want!r}; pass its parameters too: "
                          + " ".join(f"-p {k} {v}" for k, v in needed.items() if not isinstance(v, (list, dict))))
