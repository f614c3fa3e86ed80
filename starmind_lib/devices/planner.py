"""Will a model fit a stock Pico's MicroPython heap, and how fast would it run there?

Both answers are *predictions* for the Starmind MicroPython runtime
(``device/micropython/``) on a stock Raspberry Pi Pico with MicroPython 1.27
(RP2040 at 125 MHz: what ``machine.freq()`` reports on stock v1.27, not the rated
133 MHz), and every figure this module returns is labelled so::

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

PICO_CLOCK_HZ = 125_000_000            # machine.freq() of stock MicroPython 1.27 on the RP2040
# The GC heap of the v1.27 RPI_PICO firmware, measured in rp2040js (starmind_lib/devices/firmware.py):
# the stock USB-console build and the UART-console build the emulated board runs.
HEAP_TOTAL = {"usb": 246_016, "uart": 249_984}
HEAP_FREE_AFTER_BOOT = {"usb": 241_936, "uart": 245_904}
PICO_HEAP_TOTAL = HEAP_TOTAL["usb"]
PICO_HEAP_FREE_AFTER_BOOT = HEAP_FREE_AFTER_BOOT["usb"]
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
    "micropython-asm": (6, 12),             # asm_thumb int8 loops (~6 cycles/MAC) plus call overhead
    "micropython-viper": (40, 70),          # measured: int8 ptr8 weights, int32 accumulation
    "micropython-python": (1_400, 1_400),   # measured: integer bytecode
    "micropython-float": (3_600, 3_600),    # measured: boxed floats in bytecode
}
# Cycles per element of a non-MAC vector operation (norm, softmax, LUT, requantise, add).
CYCLES_PER_ELEMENT_OP = {
    "micropython-asm": (20, 40),            # the non-MAC steps run in the viper kernels
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
                context: int | None = None, weights: str = "auto", calibrated: bool = True) -> MemoryPlan:
    """Predict the heap the int8 runtime needs for ``cfg`` and whether it fits ``heap_free``.

    ``context``: positions the KV cache holds (the runtime sizes it to prompt + new tokens;
    default: the model's max_seq_len, the worst case). ``weights``: "ram", "flash" (matrices
    streamed from the file) or "auto" (the runtime's own choice, :func:`weights_mode`).
    ``heap_free``: the heap free after boot (:data:`HEAP_FREE_AFTER_BOOT`).

    calibrated (default): the verdict compares the peak heap fitted to the emulated-firmware
    measurements (:data:`CALIBRATED_MEMORY`, plus :data:`MEMORY_MARGIN`) with ``heap_free`` less
    what importing the runtime takes; conservative: no measured model it says fits ran out of
    memory. calibrated=False: the component model below alone (the parts are reported either way).
    """
    plan = _plan_parts(cfg, heap_free, runtime_bytes, vocab_text_bytes, context, weights)
    if not calibrated or plan.reason.startswith("will not fit: the model file"):
        return plan
    a = _arch(cfg)
    t = min(context or a["max_seq_len"], a["max_seq_len"])
    need = calibrated_peak_bytes(a, t, plan.weights)
    budget = heap_free - RUNNER_IMPORT_BYTES
    plan.total_bytes = int(need) + RUNNER_IMPORT_BYTES
    plan.runtime_bytes = RUNNER_IMPORT_BYTES
    if need > budget:
        plan.fits = False
        plan.reason = (f"will not fit: needs ~{need / 1024:.0f} KB of heap at its peak (calibrated on MicroPython "
                       f"1.27 firmware, {MEMORY_MARGIN[plan.weights]:.0%} margin), {budget / 1024:.0f} KB are free once the "
                       f"runtime is imported")
    else:
        plan.fits = True
        plan.reason = f"fits: ~{need / 1024:.0f} KB at its peak of {budget / 1024:.0f} KB free after the runtime"
    if plan.weights == "flash":
        plan.reason += " (weights streamed from flash)"
    return plan


def _plan_parts(cfg: Any, heap_free: int, runtime_bytes: int, vocab_text_bytes: int | None,
                context: int | None, weights: str) -> MemoryPlan:
    """The component model: every object the runtime allocates, by size."""
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
                  clock_hz: int = PICO_CLOCK_HZ, weights: str = "ram", calibrated: bool = True) -> SpeedPrediction:
    """Predicted decode speed of ``cfg`` on a stock Pico (midpoint and range).

    ``context``: the keys a decode step attends to (default: half the window: the mean over a
    full-window generation). Calibrated (where :data:`CALIBRATED_SPEED` has the runtime and
    weights mode): cycles fitted to the emulated-firmware measurements, range +-10 %; else the
    operation-count model below, whose ``weights="flash"`` adds streaming every matrix from the
    file each token (assumed read rate).
    """
    if runtime not in CYCLES_PER_MAC:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if weights not in ("ram", "flash"):
        raise ValueError(f"weights must be 'ram' or 'flash', got {weights!r}")
    group = f"{runtime.split('-', 1)[1]}/{weights}"
    if calibrated and group in CALIBRATED_SPEED:
        a = _arch(cfg)
        t = float(context) if context is not None else a["max_seq_len"] / 2
        cyc = calibrated_cycles(a, t, runtime, weights)
        tol = SPEED_TOLERANCE_BY_KERNELS.get(runtime.split("-", 1)[1], SPEED_TOLERANCE)
        return SpeedPrediction(runtime, cyc * (1 - tol), cyc * (1 + tol),
                               1000 * cyc / clock_hz, clock_hz / cyc, clock_hz / (cyc * (1 + tol)),
                               clock_hz / (cyc * (1 - tol)), op_counts(a, int(t))["macs"])
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


# ---------------------------------------------------------------- calibrated on the emulated firmware
# Fitted by starmind_lib/devices/calibration.py to data/results/device/micropython_runs (MicroPython 1.27
# RPI_PICO firmware in rp2040js, cycles at 125 MHz); tests/test_planner_calibration.py checks every measured
# row against these. Refit after the runtime changes: python -m starmind_lib.devices.calibration --write
SPEED_TOLERANCE = 0.10
SPEED_FEATURES = ("const", "layers", "heads", "macs", "attn", "vocab", "hidden", "dims", "rope", "learned_pos",
                  "flash_bytes", "flash_rows", "flash_blocks", "flash_pages")
MEMORY_FEATURES = ("const", "weights_ram", "kv", "buffers", "tables", "largest", "vocab")
# @@CALIBRATION@@ written by `python -m starmind_lib.devices.calibration --write` from 489 rows (runtime 701f568df53ad802, 795dca8b785193d4)
CALIBRATED_SPEED = {  # cycles per unit of each speed feature, by kernels/weights
    'asm/flash': {'const': 95059.5, 'macs': 134.605, 'vocab': 220.503, 'hidden': 406.081, 'dims': 3079.7, 'rope': 21215.3, 'learned_pos': 24988.8, 'flash_blocks': 16443.6},
    'asm/ram': {'const': 97383.2, 'layers': 14860, 'heads': 834.592, 'macs': 8.92231, 'vocab': 112.555, 'hidden': 118.384, 'dims': 1911.16, 'rope': 5135.52, 'learned_pos': 35234.4},
    'viper/flash': {'const': 79932.8, 'heads': 2418.54, 'macs': 106.271, 'attn': 110.285, 'vocab': 250.701, 'hidden': 509.224, 'learned_pos': 7664.79, 'flash_bytes': 6.85431, 'flash_blocks': 18016.8, 'flash_pages': 2573.85},
    'viper/ram': {'const': 59066.5, 'layers': 77885.9, 'heads': 14390.9, 'macs': 70.9687, 'attn': 107.096, 'vocab': 296.172, 'hidden': 545.288, 'learned_pos': 15214.8},
}
SPEED_TOLERANCE_BY_KERNELS = {'asm': 0.1, 'viper': 0.03}  # the stated range: the fit's worst error, by kernels
CALIBRATED_MEMORY = {'const': 13573.9, 'weights_ram': 0.898749, 'kv': 0.90919, 'tables': 7.06306, 'largest': 0.35869}  # peak heap bytes per unit of each memory feature
MEMORY_MARGIN = {'ram': 0.02, 'flash': 0.02}  # by weights mode: the smallest that refuses every model that ran out of memory
RUNNER_IMPORT_BYTES = 34560  # heap the runtime's imports take (measured)
# @@END CALIBRATION@@


def attention_length(prompt_len: int, n_tokens: int) -> float:
    """Mean number of keys a decode step attends to in a generation of n_tokens after prompt_len."""
    steps = max(n_tokens - 1, 1)
    return prompt_len + (steps + 1) / 2


def speed_features(cfg: Any, t_avg: float, weights: str) -> dict[str, float]:
    """Per-token operation counts the calibrated speed model weighs (cycles per unit each).

    Weights in flash (streamed from the file, engine ``_matrix``): every matrix is read in blocks of
    rows that fill the runtime's block buffer (``flash_blocks``: reads, each a seek, a readinto and a
    kernel call), byte by byte through littlefs' 256-byte pages (``flash_pages``)."""
    a = _arch(cfg)
    d, h, v, n, nh = a["dim"], a["ffn_hidden"], a["vocab_size"], a["n_layers"], a["n_heads"]
    k = 2 if a["activation"] == "swiglu" else 1
    macs = n * (4 * d * d + (k + 1) * d * h) + v * d
    mats = {nm: rc for nm, rc in weight_tensors(a).items() if nm != "pos_emb"}
    flash = weights == "flash"
    widest = max(c for _, c in mats.values())
    blocks = sum(-(-r // max(1, max(SCRATCH_BYTES, widest) // c)) for r, c in mats.values())
    return {"const": 1.0, "layers": float(n), "heads": float(n * nh), "macs": float(macs),
            "attn": float(2 * n * d * t_avg + n * nh * t_avg), "vocab": float(v), "hidden": float(n * (d + k * h)),
            "dims": float(n * d), "rope": float(n * nh) if a["pos"] == "rope" else 0.0,
            "learned_pos": 1.0 if a["pos"] == "learned" else 0.0,
            "flash_bytes": float(sum(r * c for r, c in mats.values())) if flash else 0.0,
            "flash_rows": float(sum(r for r, _ in mats.values()) + n * 6) if flash else 0.0,
            "flash_blocks": float(blocks) if flash else 0.0,
            "flash_pages": float(sum(-(-r * c // 256) for r, c in mats.values())) if flash else 0.0}


def memory_features(cfg: Any, context: int, weights: str) -> dict[str, float]:
    """The component model's parts, which the calibrated peak-heap model weighs."""
    plan = _plan_parts(cfg, 10**9, 0, None, context, weights)
    a = _arch(cfg)
    largest = max(r * c for r, c in weight_tensors(a).values()) if plan.weights == "ram" else 0
    return {"const": 1.0, "weights_ram": float(plan.weights_bytes), "kv": float(plan.kv_cache_bytes),
            "buffers": float(plan.buffers_bytes), "tables": float(plan.tables_bytes), "largest": float(largest),
            "vocab": float(a["vocab_size"])}


def calibrated_cycles(cfg: Any, t_avg: float, runtime: str = "micropython-viper", weights: str = "ram") -> float:
    coef = CALIBRATED_SPEED[f"{runtime.split('-', 1)[1]}/{weights}"]
    f = speed_features(cfg, t_avg, weights)
    return sum(c * f[k] for k, c in coef.items())


def calibrated_peak_bytes(cfg: Any, context: int, weights: str, margin: bool = True) -> float:
    """Heap the run takes at its peak above what the imported runtime holds (bytes)."""
    f = memory_features(cfg, context, weights)
    need = sum(c * f[k] for k, c in CALIBRATED_MEMORY.items())
    return need * (1 + MEMORY_MARGIN[weights]) if margin else need
