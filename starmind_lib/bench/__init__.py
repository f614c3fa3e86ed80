"""Benchmarks (``make bench-*``): :mod:`.train`, :mod:`.device`, :mod:`.micropython`; dispatcher in ``__main__``."""
