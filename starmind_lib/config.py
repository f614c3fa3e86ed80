"""Typed, frozen stage configurations built from papermill parameters.

Every stage declares a frozen dataclass that subclasses :class:`StageConfig`.
``Config.from_params(dict)`` rejects unknown keys, wrong types and
out-of-range values *before any work starts*, with a message that names the
parameter and what it accepts::

    @dataclass(frozen=True)
    class DataConfig(StageConfig):
        source: str = field(default="tinystories", metadata=choice("tinystories", "local", "synthetic"))
        n_stories: int = field(default=1000, metadata=between(1, 10**9))

    cfg = DataConfig.from_params({"source": "local", "n_stories": 50})

``cfg.key()`` is a short, stable hash of the config: the run key used to cache
results, so the same config never runs twice and a changed one never reuses a
stale result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from typing import Any, Mapping


class ConfigError(ValueError):
    """A parameter is unknown, of the wrong type or out of range."""


def between(lo=None, hi=None) -> dict:
    """Field metadata: the value must lie in [lo, hi] (either bound optional)."""
    return {"range": (lo, hi)}


def choice(*options) -> dict:
    """Field metadata: the value must be one of ``options``."""
    return {"choices": tuple(options)}


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(name: str, value: Any, tp) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to floats, lists to tuples)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"parameter '{name}' must be a list of {_type_name(args[0])}, got {value!r}")
        elem = args[0] if args else Any
        return tuple(_coerce(f"{name}[{i}]", v, elem) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"parameter '{name}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"parameter '{name}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"parameter '{name}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"parameter '{name}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"parameter '{name}' must be a string, got {value!r}")
        return value
    return value


def _check_meta(name: str, value: Any, meta: Mapping) -> None:
    if "choices" in meta and value not in meta["choices"]:
        opts = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"parameter '{name}' must be one of {opts}, got {value!r}")
    if "range" in meta and value is not None:
        lo, hi = meta["range"]
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                lo_s = "-inf" if lo is None else lo
                hi_s = "inf" if hi is None else hi
                raise ConfigError(f"parameter '{name}' must be in [{lo_s}, {hi_s}], got {value!r}")


@dataclass(frozen=True)
class StageConfig:
    """Base class: validation in ``from_params``, a stable ``key()``, JSON round-trip."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None, **overrides):
        params = {**(params or {}), **overrides}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
                f"accepted: {', '.join(sorted(fields))}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, value in params.items():
            value = _coerce(name, value, hints[name])
            _check_meta(name, value, fields[name].metadata)
            values[name] = value
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Cross-field checks; subclasses raise ConfigError naming the parameters."""

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def key(self, *extra: str) -> str:
        """Short stable hash of the config (plus e.g. a data fingerprint)."""
        h = hashlib.sha256(self.to_json().encode())
        for e in extra:
            h.update(b"\0" + e.encode())
        return h.hexdigest()[:12]

    def replace(self, **changes):
        return type(self).from_params({**self.to_dict(), **changes})
