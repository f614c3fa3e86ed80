"""Benchmarks: ``python -m starmind_lib.bench {train,device,micropython,stacked}`` (``make bench-*``).

Each kind lives in its own module (``bench.train``, ``bench.device``, ``bench.micropython``)
with a ``main(argv)``; this dispatcher imports only the one asked for.
"""
from __future__ import annotations

import importlib
import sys

KINDS = {"train": "starmind_lib.bench.train", "device": "starmind_lib.bench.device",
         "micropython": "starmind_lib.bench.micropython", "stacked": "starmind_lib.training.stacked"}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in KINDS:
        print(f"usage: python -m starmind_lib.bench {{{','.join(KINDS)}}} [options]", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(KINDS[argv[0]])
    except ModuleNotFoundError as e:
        if e.name != KINDS[argv[0]]:
            raise
        print(f"benchmark {argv[0]!r} is not available ({KINDS[argv[0]]} is missing)", file=sys.stderr)
        return 2
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
