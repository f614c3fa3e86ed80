"""On-board benchmark and generation: one JSON line per result, for the host runner (or a person).

    from starmind_mp import bench
    bench.run_model("/models/ref.smd", [21, 9, 6], 32)            # one {"event": "result", ...} line
    bench.run_model(path, prompt, 32, stream=True)                # plus one {"event": "token"} line a token
    bench.run_all([1, 2, 3], 32)                                  # every model in /models

A result line holds: model, status (ok | out_of_memory | error), message,
weights (ram | flash), runtime (micropython-viper | micropython-python | micropython-float), load_ms,
heap free/allocated before and after loading (gc.mem_free/gc.mem_alloc), the
model's heap bytes, ms per prefill token and per generated token, the output ids
and their text as hex (token bytes may split a UTF-8 character).
A MemoryError anywhere becomes status out_of_memory; the board stays usable.
"""
import gc
import json
import sys

from . import engine, smd  # imported before the heap is measured: model_heap_bytes is the model's alone

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython (perf_counter_ns), CircuitPython (monotonic_ns)
    import time as _time
    _ns = getattr(_time, "perf_counter_ns", None) or _time.monotonic_ns

    def ticks_us():
        return _ns() // 1000

    def ticks_diff(a, b):
        return a - b


def _heap():
    gc.collect()
    try:
        return gc.mem_free(), gc.mem_alloc()
    except AttributeError:  # CPython has no heap figures
        return None, None


def _hex(data):
    return "".join("%02x" % b for b in data)


def _emit(obj):
    print(json.dumps(obj))


def _platform():
    impl = sys.implementation
    return "%s %s %s" % (impl.name, ".".join(str(v) for v in impl.version[:3]), sys.platform)


def run_model(path, prompt, n_tokens, seed=0, temperature_q8=0, top_k=0, kernels="auto", stream=False,
              weights="auto"):
    """Load, prefill, generate; print the result line (and token lines if stream). Returns the result dict.

    weights: "ram", "flash" (matrices streamed from the file each token) or "auto" (flash when
    the matrices would take more than 60% of the free heap).
    """
    name = path.rsplit("/", 1)[-1]
    res = {"event": "result", "model": name, "status": "ok", "message": "", "platform": _platform()}
    free0, alloc0 = _heap()
    res["heap_free_before"], res["heap_alloc_before"] = free0, alloc0
    eng = model = None
    try:
        t0 = ticks_us()
        model = smd.load(path, weights)
        res["weights"] = model.weights
        # the KV cache holds only the positions this run needs: the prompt and the new tokens
        eng = engine.make_engine(model, kernels, len(prompt) + max(n_tokens, 1) - 1)
        res["load_ms"] = ticks_diff(ticks_us(), t0) / 1000
        free1, alloc1 = _heap()
        res["heap_free_after_load"] = free1
        if alloc0 is not None:
            res["model_heap_bytes"] = alloc1 - alloc0
        res["runtime"] = "micropython-" + (eng.k.NAME if hasattr(eng, "k") else "float")
        res["output_ids"] = _generate(eng, model, prompt, n_tokens, seed, temperature_q8, top_k, stream, res)
        res["hex"] = _hex(model.decode(res["output_ids"]))
    except MemoryError as e:
        res["status"], res["message"] = "out_of_memory", "MemoryError: %s" % (e,)
    except Exception as e:  # noqa: BLE001 - every failure is reported as a status, never a crash
        res["status"], res["message"] = "error", "%s: %s" % (type(e).__name__, e)
    if eng is not None and hasattr(eng, "close"):
        eng.close()
    eng = model = None
    res["heap_free_after"], res["heap_alloc_after"] = _heap()
    _emit(res)
    return res


def _generate(eng, model, prompt, n_tokens, seed, temperature_q8, top_k, stream, res):
    if not prompt or len(prompt) + n_tokens - 1 > eng.context:
        raise ValueError("prompt of %d tokens + %d new tokens does not fit max_seq_len=%d"
                         % (len(prompt), n_tokens, model.max_seq_len))
    eng.seed(seed)
    t0 = ticks_us()
    eng.prefill(prompt)
    t1 = ticks_us()
    out = []
    for j in range(n_tokens):
        tok = eng.next_token(temperature_q8, top_k)
        out.append(tok)
        if stream:
            _emit({"event": "token", "i": j, "id": tok, "hex": _hex(model.token_bytes(tok))})
        if j + 1 < n_tokens:
            eng.forward_token(tok, eng.pos)
    t2 = ticks_us()
    res["ms_per_prefill_token"] = ticks_diff(t1, t0) / 1000 / len(prompt)
    # n_tokens choices need n_tokens - 1 decode steps; the sampler's time is included in each
    res["ms_per_token"] = ticks_diff(t2, t1) / 1000 / max(n_tokens - 1, 1) if n_tokens > 1 else None
    return out


def run_all(prompt, n_tokens, directory="/models", **kw):
    """Every .smd in ``directory``, one result line each."""
    import os
    names = sorted(n for n in os.listdir(directory) if n.endswith(".smd"))
    return [run_model(directory + "/" + n, prompt, n_tokens, **kw) for n in names]
