"""Benchmark every model in /models on this board: one JSON line per model.

    mpremote run device/micropython/bench.py         (after `starmind board deploy`)

Edit PROMPT / N_TOKENS for other settings; the host runner (`starmind board bench`)
calls starmind_mp.bench.run_model directly with its own settings.
"""
import sys

if "/lib" not in sys.path:
    sys.path.append("/lib")
from starmind_mp import bench

PROMPT = [1]
N_TOKENS = 32
bench.run_all(PROMPT, N_TOKENS)
