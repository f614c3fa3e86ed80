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

Measurements (every result line): freq_hz (machine.freq()), kernels (the kernel module
chosen at import), load/prefill/decode time in cycles as well as ms, cycles of the last
decode step (the longest attention), heap_peak_alloc (the largest gc.mem_alloc() seen at
the load/prefill/token checkpoints, before any collection: a lower bound of the true peak)
and alloc_per_token (heap bytes allocated per decode step, from gc.mem_alloc() deltas of
the steps no collection interrupted). Cycles come from ``counter``, the address of a
cycle counter that counts modulo 2**30 (the emulated firmware board's, 0x40068010),
else from ticks_us() x machine.freq().
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


def _freq():
    try:
        import machine
        return machine.freq()
    except (ImportError, AttributeError):
        return None


_MASK30 = 0x3FFFFFFF


def _clock(counter, freq):
    """A cycle clock: (read(), diff(b, a)); small ints only, so reading it allocates nothing."""
    if counter:
        import machine
        mem = machine.mem32

        def read():
            return mem[counter]

        def diff(b, a):
            return (b - a) & _MASK30
        return read, diff
    scale = (freq or 125000000) // 1000000

    def diff_us(b, a):
        return ticks_diff(b, a) * scale
    return ticks_us, diff_us


def _alloc():
    try:
        return gc.mem_alloc()
    except AttributeError:
        return None


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
              weights="auto", counter=0):
    """Load, prefill, generate; print the result line (and token lines if stream). Returns the result dict.

    weights: "ram", "flash" (matrices streamed from the file each token) or "auto" (flash when
    the matrices would take more than 60% of the free heap).
    """
    name = path.rsplit("/", 1)[-1]
    res = {"event": "result", "model": name, "status": "ok", "message": "", "platform": _platform()}
    try:  # the kernels' code too is in the heap before it is measured (a failure is reported below)
        engine.load_kernels(kernels)
    except Exception:  # noqa: BLE001
        pass
    free0, alloc0 = _heap()
    res["heap_free_before"], res["heap_alloc_before"] = free0, alloc0
    freq = res["freq_hz"] = _freq()
    clock = _clock(counter, freq)
    res["cycle_source"] = "counter" if counter else "ticks_us"
    eng = model = None
    stage = "loading the model file"
    try:
        t0 = ticks_us()
        c0 = clock[0]()
        # the KV cache holds only the positions this run needs (the prompt and the new tokens); it is
        # allocated by the loader before the tensors (engine.reserve)
        context = len(prompt) + max(n_tokens, 1) - 1
        model = smd.load(path, weights, engine.reserve(kernels, context))
        stage = "building the engine"
        res["weights"] = model.weights
        peak = _alloc()
        eng = engine.make_engine(model, kernels, context)
        res["load_cycles"] = clock[1](clock[0](), c0)
        res["load_ms"] = ticks_diff(ticks_us(), t0) / 1000
        a = _alloc()
        res["heap_peak_alloc"] = max(peak, a) if a is not None and peak is not None else a
        free1, alloc1 = _heap()
        res["heap_free_after_load"] = free1
        if alloc0 is not None:
            res["model_heap_bytes"] = alloc1 - alloc0
        res["kernels"] = eng.k.NAME if hasattr(eng, "k") else "float"
        res["runtime"] = "micropython-" + res["kernels"]
        stage = "generating"
        res["output_ids"] = _generate(eng, model, prompt, n_tokens, seed, temperature_q8, top_k, stream, res,
                                      clock)
        res["hex"] = _hex(model.decode(res["output_ids"]))
    except MemoryError as e:
        res["status"], res["message"] = "out_of_memory", "MemoryError while %s: %s" % (stage, e)
    except Exception as e:  # noqa: BLE001 - every failure is reported as a status, never a crash
        res["status"], res["message"] = "error", "%s while %s: %s" % (type(e).__name__, stage, e)
    res["stage"] = stage
    if eng is not None and hasattr(eng, "close"):
        eng.close()
    eng = model = None
    res["heap_free_after"], res["heap_alloc_after"] = _heap()
    _emit(res)
    return res


def _generate(eng, model, prompt, n_tokens, seed, temperature_q8, top_k, stream, res, clock=None):
    if not prompt or len(prompt) + n_tokens - 1 > eng.context:
        raise ValueError("prompt of %d tokens + %d new tokens does not fit max_seq_len=%d"
                         % (len(prompt), n_tokens, model.max_seq_len))
    read, diff = clock or _clock(0, None)
    steps = [0] * max(n_tokens, 1)        # cycles of each step (sampling + decode), preallocated
    allocs = [0] * max(n_tokens, 1)
    eng.seed(seed)
    peak = _alloc()
    t0 = ticks_us()
    c0 = read()
    eng.prefill(prompt)
    c1 = read()
    t1 = ticks_us()
    out = [0] * n_tokens                  # preallocated: the runner itself allocates nothing per step
    a_prev = _alloc()
    if a_prev is not None and peak is not None:
        peak = max(peak, a_prev)
    c_prev = c1
    for j in range(n_tokens):
        tok = eng.next_token(temperature_q8, top_k)
        out[j] = tok
        if stream:
            _emit({"event": "token", "i": j, "id": tok, "hex": _hex(model.token_bytes(tok))})
        if j + 1 < n_tokens:
            eng.forward_token(tok, eng.pos)
        c = read()
        steps[j] = diff(c, c_prev)
        if a_prev is not None:          # gc.mem_alloc() scans the heap's block table: kept out of the timing
            a = _alloc()
            allocs[j] = a - a_prev
            if a > peak:
                peak = a
            a_prev = a
        c_prev = read()
    t2 = ticks_us()
    res["ms_per_prefill_token"] = ticks_diff(t1, t0) / 1000 / len(prompt)
    res["cycles_per_prefill_token"] = diff(c1, c0) / len(prompt)
    # n_tokens choices need n_tokens - 1 decode steps; the sampler's time is included in each
    res["ms_per_token"] = ticks_diff(t2, t1) / 1000 / max(n_tokens - 1, 1) if n_tokens > 1 else None
    if n_tokens > 1:
        decode = steps[:n_tokens - 1]     # the last choice has no decode step after it
        res["cycles_per_token"] = sum(decode) / len(decode)
        freq = res.get("freq_hz")
        if freq:                          # the steps alone, without the heap bookkeeping between them
            res["ms_per_token"] = res["cycles_per_token"] * 1000 / freq
        res["cycles_last_token"] = decode[-1]
        res["n_decode_steps"] = len(decode)
    if a_prev is not None:
        clean = [x for x in allocs[:max(n_tokens - 1, 1)] if x >= 0]   # a negative delta: a collection ran
        res["alloc_per_token"] = sum(clean) / len(clean) if clean else None
        res["heap_peak_alloc"] = max(res.get("heap_peak_alloc") or 0, peak)
    return out


def run_all(prompt, n_tokens, directory="/models", **kw):
    """Every .smd in ``directory``, one result line each."""
    import os
    names = sorted(n for n in os.listdir(directory) if n.endswith(".smd"))
    return [run_model(directory + "/" + n, prompt, n_tokens, **kw) for n in names]
