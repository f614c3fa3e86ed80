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
