"""Will a model fit a stock Pico's MicroPython heap, and how fast would it run there?

Both answers are *predictions* for the Starmind MicroPython runtime
(``device/micropython/``) on a stock Raspberry Pi Pico (RP2040, 133 MHz) with
MicroPython 1.27, and every figure this module returns is labelled so::

    plan = plan_memory(cfg)                    # cfg: ModelConfig or a dict of its fields
    plan.fits, plan.total_bytes, plan.reason
    speed = predict_speed(cfg, runtime="micropython-viper")
    speed.tokens_per_s, speed.label            # "predicted"

Memory model (bytes on the MicroPython GC heap, which allocates in 16-byte blocks):
every weight tensor is one bytearray of int8 (per-row int32 requantisation
constants beside it), the KV cache is int8 and sized to the run's context
(prompt + new tokens), activation buffers are int32, the
vocabulary is one bytes blob plus offsets, plus the runtime's own modules and
the interpreter's working set. Heap of a stock Pico: measured on MicroPython
1.27 with the USB console, about 246 KB total and 244 KB free after boot
(published: 233 KB total on 1.23, 210 KB free on 1.20). A fragmented heap's
largest free block is smaller than its free total, so the largest single
tensor must fit a smaller budget than the sum.

Speed model: cycles per generated token = sum over kernels of
(operation count x cycles per operation + call overhead), at 133 MHz. Per-
operation costs: measured for a 64x64 matvec on MicroPython 1.27 (3,600 cycles
per MAC in float bytecode, 1,400 in integer bytecode, 40-70 in viper with int8
ptr8/ptr32), and published (~1,000 cycles per simple bytecode loop iteration,
~1,700 per boxed float operation at 125 MHz). Ranges are carried as (low, high).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

PICO_CLOCK_HZ = 133_000_000
PICO_HEAP_TOTAL = 246 * 1024            # MicroPython 1.27, measured
PICO_HEAP_FREE_AFTER_BOOT = 244 * 1024  # MicroPython 1.27 with the USB console, measured
GC_BLOCK = 16                           # MicroPython's GC allocation unit
OBJECT_HEADER = 16                      # a bytearray/array object beside its data block
INTERPRETER_WORKING_SET = 8 * 1024      # compiler/REPL/stack spill while a program runs (estimate)
# The loaded runtime (bytecode, native viper code, qstrs, function objects): ~1.4 x the 20 KB of .mpy the
# viper path imports (__init__, bench, engine, smd, kernels_viper for armv6m); estimate
RUNTIME_MODULES_BYTES = 28 * 1024
PICO_FS_BYTES = 1408 * 1024             # MicroPython's LittleFS on a 2 MB Pico (rp2 port, RPI_PICO board)
FRAGMENTATION_RESERVE = 0.10            # share of the free heap a fragmented heap cannot give as one block

# Cycles per multiply-accumulate, (low, high), by runtime.
CYCLES_PER_MAC = {
    "micropython-viper": (40, 70),          # measured: int8 ptr8 weights, int32 accumulation
    "micropython-python": (1_400, 1_400),   # measured: integer bytecode
    "micropython-float": (3_600, 3_600),    # measured: boxed floats in bytecode
}
# Cycles per element of a non-MAC vector operation (norm, softmax, LUT, requantise, add).
CYCLES_PER_ELEMENT_OP = {
    "micropython-viper": (20, 40),
    "micropython-python": (1_000, 1_400),   # published: ~1,000 per simple bytecode loop iteration
    "micropython-float": (1_700, 3_600),    # published: ~1,700 per boxed float op
}
CYCLES_PER_KERNEL_CALL = (2_000, 4_000)     # a bytecode call into a kernel with 4-6 arguments (estimate)
# Flash mode (weights streamed from the file each token): not measured. MicroPython file reads from
# the Pico's LittleFS flash are assumed at 0.5-1.5 MB/s, plus a seek + readinto call per block and
# the offset-binary flip of every byte read (viper, ~4 cycles a byte).
FLASH_READ_BYTES_PER_S = (500_000, 1_500_000)
FLASH_CYCLES_PER_BLOCK = (5_000, 10_000)
FLASH_FLIP_CYCLES_PER_BYTE = 4
SCRATCH_BYTES = 4096                        # the runtime's block buffer (engine.SCRATCH_BYTES)
WEIGHT_MODES = ("ram", "flash", "auto")
RUNTIMES = tuple(CYCLES_PER_MAC)

ARCH_FIELDS = ("vocab_size", "dim", "n_layers", "n_heads", "ffn_hidden", "activation", "pos", "tied",
               "max_seq_len")


def _arch(cfg: Any) -> dict:
    """The architecture fields of a ModelConfig, a dict or a row of the sweep table."""
    src = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    missing = [k for k in ARCH_FIELDS if k not in src]
    if missing:
        raise ValueError(f"model description lacks {', '.join(missing)}; needs {', '.join(ARCH_FIELDS)}")
    arch = {k: src[k] for k in ARCH_FIELDS}
    for k in ARCH_FIELDS[:5] + ("max_seq_len",):
        arch[k] = int(arch[k])
        if arch[k] < 1:
            raise ValueError(f"model field '{k}' must be >= 1, got {arch[k]}")
    arch["tied"] = bool(arch["tied"]) if not isinstance(arch["tied"], str) else arch["tied"] == "True"
    return arch


def _block(nbytes: int) -> int:
    """Heap bytes taken by one object holding nbytes of data."""
    return OBJECT_HEADER + -(-max(nbytes, 1) // GC_BLOCK) * GC_BLOCK


def weight_tensors(cfg: Any) -> dict[str, tuple[int, int]]:
    """name -> (rows, cols) of every int8 matrix, as the device format stores them."""
    a = _arch(cfg)
    d, h, v = a["dim"], a["ffn_hidden"], a["vocab_size"]
    out = {"tok_emb": (v, d)}
    if a["pos"] == "learned":
        out["pos_emb"] = (a["max_seq_len"], d)
    for i in range(a["n_layers"]):
        for w in ("wq", "wk", "wv", "wo"):
            out[f"layers.{i}.{w}"] = (d, d)
        out[f"layers.{i}.w1"] = (h, d)
        if a["activation"] == "swiglu":
            out[f"layers.{i}.w3"] = (h, d)
        out[f"layers.{i}.w2"] = (d, h)
    if not a["tied"]:
        out["head"] = (v, d)
    return out


@dataclass
class MemoryPlan:
    weights_bytes: int
    kv_cache_bytes: int
    buffers_bytes: int
    tables_bytes: int
    runtime_bytes: int
    total_bytes: int
    largest_tensor_bytes: int
    heap_free_bytes: int
    fits: bool
    reason: str
    weights: str = "ram"
    label: str = "predicted"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def matrix_bytes(cfg: Any) -> int:
    return sum(r * c for r, c in weight_tensors(cfg).values())


def weights_mode(cfg: Any, heap_free: int = PICO_HEAP_FREE_AFTER_BOOT,
                 runtime_bytes: int = RUNTIME_MODULES_BYTES) -> str:
    """What the runtime's weights="auto" picks: flash when the matrices exceed 60% of the free heap."""
    free_at_load = heap_free - runtime_bytes - INTERPRETER_WORKING_SET
    return "flash" if matrix_bytes(cfg) * 5 > free_at_load * 3 else "ram"


def plan_memory(cfg: Any, heap_free: int = PICO_HEAP_FREE_AFTER_BOOT,
                runtime_bytes: int = RUNTIME_MODULES_BYTES, vocab_text_bytes: int | None = None,
                context: int | None = None, weights: str = "auto") -> MemoryPlan:
    """Predict the heap the int8 runtime needs for ``cfg`` and whether it fits ``heap_free``.

    ``context``: positions the KV cache holds (the runtime sizes it to prompt + new tokens;
    default: the model's max_seq_len, the worst case). ``weights``: "ram", "flash" (matrices
    streamed from the file) or "auto" (the runtime's own choice, :func:`weights_mode`).
    """
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_MODES)}, got {weights!r}")
    a = _arch(cfg)
    mode = weights_mode(a, heap_free, runtime_bytes) if weights == "auto" else weights
    d, h, v, n = a["dim"], a["ffn_hidden"], a["vocab_size"], a["n_layers"]
    t = min(context or a["max_seq_len"], a["max_seq_len"])
    tensors = weight_tensors(a)
    rq = sum(_block(8 * r) for r, c in tensors.values())  # per-row int32 multiplier and shift, always in RAM
    if mode == "ram":  # int8 data, one object per tensor
        weights = sum(_block(r * c) for r, c in tensors.values()) + rq
    else:  # one block buffer, one row buffer, the open file, and per matrix two views and a tuple
        widest = max(c for _, c in tensors.values())
        weights = rq + _block(max(SCRATCH_BYTES, widest)) + _block(d) + 1024 + len(tensors) * 3 * 32
    weights += (2 * n + 1) * _block(2 * d) + n * (_block(32) + _block(256))  # norms (int16), consts, act LUT
    kv = 2 * n * _block(t * d)                                   # int8 K and V (after rotary)
    n_hidden = 3 if a["activation"] == "swiglu" else 2
    # int32: residual, 5 activations of dim, the FFN hidden buffers, scores, logits, sampler weights; int8 mask
    buffers = 6 * _block(4 * d) + n_hidden * _block(4 * h) + _block(4 * t) + 2 * _block(4 * v) + _block(v)
    rope = _block(2 * 2 * t * max(d // a["n_heads"] // 2, 1)) if a["pos"] == "rope" else 0
    vocab = _block(vocab_text_bytes if vocab_text_bytes is not None else 2 * v) + _block(2 * (v + 1))
    tables = rope + vocab + _block(2 * 1024)                      # the exp LUT (uint16)
    total = weights + kv + buffers + tables + runtime_bytes + INTERPRETER_WORKING_SET
    largest = max(_block(r * c) for r, c in tensors.values()) if mode == "ram" else max(
        [_block(4 * v), _block(t * d), _block(max(SCRATCH_BYTES, d))])
    largest_budget = int(heap_free * (1 - FRAGMENTATION_RESERVE)) - runtime_bytes
    file_bytes = matrix_bytes(a) + sum(8 * r for r, _ in tensors.values()) + 64 * len(tensors) + 4 * v + 2048
    if file_bytes + runtime_bytes > PICO_FS_BYTES:
        fits, reason = False, (f"will not fit: the model file (~{file_bytes / 1024:.0f} KB) exceeds the "
                               f"{PICO_FS_BYTES // 1024} KB filesystem of a stock Pico")
    elif total > heap_free:
        fits, reason = False, (f"will not fit: needs {total / 1024:.0f} KB of heap, a stock Pico has "
                               f"{heap_free / 1024:.0f} KB free")
    elif largest > largest_budget:
        fits, reason = False, (f"will not fit: its largest tensor ({largest / 1024:.0f} KB) exceeds the "
                               f"largest block a fragmented heap can give (~{largest_budget / 1024:.0f} KB)")
    else:
        fits, reason = True, f"fits: {total / 1024:.0f} KB of {heap_free / 1024:.0f} KB free"
    if mode == "flash":
        reason += " (weights streamed from flash)"
    return MemoryPlan(weights, kv, buffers, tables, runtime_bytes, total, largest, heap_free, fits, reason, mode)


def op_counts(cfg: Any, context: int | None = None) -> dict[str, int]:
    """Operations for one generated token at position ``context`` (default: half the window)."""
    a = _arch(cfg)
    d, h, v, n = a["dim"], a["ffn_hidden"], a["vocab_size"], a["n_layers"]
    t = max(1, context if context is not None else a["max_seq_len"] // 2)
    n_ffn_in = 2 if a["activation"] == "swiglu" else 1
    macs = n * (4 * d * d + (n_ffn_in + 1) * d * h + 2 * d * t) + v * d
    # element ops: 2 norms + 2 residuals + requantise q,k,v,o + rope + softmax + activation, per layer
    elems = n * (2 * 3 * d + 2 * d + 4 * d + (d if a["pos"] == "rope" else 0) + 3 * a["n_heads"] * t
                 + 2 * h * n_ffn_in) + 3 * d + 2 * v
    # calls made from bytecode, per layer: 2 norms, each matrix through the engine's _linear (2 calls),
    # 2 rotary, 2 KV stores, attention (all heads), the activation (+ the SwiGLU gate); then the embedding,
    # the final norm, the head (2) and the sampler
    rope = 2 if a["pos"] == "rope" else 0
    calls = n * (2 + 2 * (5 + n_ffn_in) + rope + 2 + 1 + 1 + (n_ffn_in - 1)) + 6
    return {"macs": macs, "element_ops": elems, "kernel_calls": calls, "context": t}


@dataclass
class SpeedPrediction:
    runtime: str
    cycles_per_token_low: float
    cycles_per_token_high: float
    ms_per_token: float
    tokens_per_s: float
    tokens_per_s_low: float
    tokens_per_s_high: float
    macs_per_token: int
    label: str = "predicted"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def predict_speed(cfg: Any, runtime: str = "micropython-viper", context: int | None = None,
                  clock_hz: int = PICO_CLOCK_HZ, weights: str = "ram") -> SpeedPrediction:
    """Predicted decode speed of ``cfg`` on a stock Pico (midpoint and range of the cycle costs).

    ``weights="flash"`` adds streaming every matrix from the file each token (assumed read rate).
    """
    if runtime not in CYCLES_PER_MAC:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if weights not in ("ram", "flash"):
        raise ValueError(f"weights must be 'ram' or 'flash', got {weights!r}")
    ops = op_counts(cfg, context)
    lo = (ops["macs"] * CYCLES_PER_MAC[runtime][0] + ops["element_ops"] * CYCLES_PER_ELEMENT_OP[runtime][0]
          + ops["kernel_calls"] * CYCLES_PER_KERNEL_CALL[0])
    hi = (ops["macs"] * CYCLES_PER_MAC[runtime][1] + ops["element_ops"] * CYCLES_PER_ELEMENT_OP[runtime][1]
          + ops["kernel_calls"] * CYCLES_PER_KERNEL_CALL[1])
    if weights == "flash":
        nbytes = matrix_bytes(cfg)
        tensors = weight_tensors(cfg)
        widest = max(c for _, c in tensors.values())
        blocks = sum(-(-r // max(1, max(SCRATCH_BYTES, widest) // c)) for r, c in tensors.values())
        lo += (nbytes * clock_hz / FLASH_READ_BYTES_PER_S[1] + blocks * FLASH_CYCLES_PER_BLOCK[0]
               + nbytes * FLASH_FLIP_CYCLES_PER_BYTE)
        hi += (nbytes * clock_hz / FLASH_READ_BYTES_PER_S[0] + blocks * FLASH_CYCLES_PER_BLOCK[1]
               + nbytes * FLASH_FLIP_CYCLES_PER_BYTE)
    mid = (lo + hi) / 2
    return SpeedPrediction(runtime, lo, hi, 1000 * mid / clock_hz, clock_hz / mid, clock_hz / hi, clock_hz / lo,
                           ops["macs"])


def planner_rows(models: Mapping[str, Any], runtimes=("micropython-viper", "micropython-python")) -> list[dict]:
    """One row per model: the memory plan and the predicted speed per runtime (all labelled predicted)."""
    rows = []
    for name, cfg in models.items():
        plan = plan_memory(cfg)
        row = {"model": name, **_arch(cfg), "fits": plan.fits, "weights": plan.weights,
               "heap_needed_bytes": plan.total_bytes,
               "weights_bytes": plan.weights_bytes, "kv_cache_bytes": plan.kv_cache_bytes,
               "reason": plan.reason, "label": "predicted"}
        for rt in runtimes:
            sp = predict_speed(cfg, rt, weights=plan.weights)
            row[f"tokens_per_s_{rt}"] = sp.tokens_per_s
            row[f"tokens_per_s_low_{rt}"] = sp.tokens_per_s_low
            row[f"tokens_per_s_high_{rt}"] = sp.tokens_per_s_high
        rows.append(row)
    return rows
