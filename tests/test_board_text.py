"""A Pico that stands alone, on the virtual board (MicroPython 1.27 WebAssembly behind mpremote):
main.py loads a model at boot and tell() turns typed text into a story with no host; and
`starmind board generate` sends text (encoded on the board), past the model's context."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from starmind_lib.devices.mpremote_board import MpremoteBoard
from starmind_lib.devices.virtual import BRIDGE_DIR, start_virtual_board
from starmind_lib.provenance import REPO_ROOT
from starmind_lib.quant import intengine as ie
from starmind_lib.quant.smd import read_smd
from starmind_lib.quant.smd_text import encode

REFERENCE = REPO_ROOT / "data" / "reference"
MODEL = REFERENCE / "ref_bpe_lc.smd"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (BRIDGE_DIR / "node_modules" / "@micropython").exists(),
    reason="the virtual board needs Node.js and `make npm`")


@pytest.fixture(scope="module")
def virtual_board():
    with start_virtual_board() as vb:
        yield vb


def _reference_story(text: str, n: int, temperature_q8: int, top_k: int, seed: int) -> str:
    m = read_smd(MODEL)
    ids = encode(m.text, m.vocab, text)
    out = ie.IntEngine(m).generate(ids, n, temperature_q8, top_k, seed, window=True)
    return b"".join(m.vocab[i] for i in out).decode("utf-8", "replace")


def test_main_py_tells_a_story_with_no_host(virtual_board):
    with MpremoteBoard(virtual_board.url, kind="virtual", timeout_s=300) as board:
        board.deploy(MODEL)
        board.upload([(REPO_ROOT / "device" / "micropython" / "main.py", "/main.py")])
        board.soft_reset()
        # what the board does at boot, then what a user types at the REPL
        out = board.exec("exec(open('/main.py').read())\ntell('The Cat', 80, 0, 0, 1)\n", timeout_s=300)
    assert "ref_bpe_lc.smd loaded" in out
    story = out.split("The Cat", 1)[1].rstrip("\r\n")
    assert story == _reference_story("The Cat", 80, 0, 0, 1)   # 80 tokens > max_seq_len 32: the window


def test_cli_generate_sends_text(virtual_board):
    proc = subprocess.run([str(Path(sys.executable).parent / "starmind"), "board", "generate", "--port",
                           virtual_board.url, "--kind", "virtual", "--model", str(MODEL), "--prompt", "The Cat", "--n-tokens", "100",
                           "--seed", "3", "--temperature-q8", "200", "--top-k", "0"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = read_smd(MODEL)
    assert f"prompt ids {encode(m.text, m.vocab, 'The Cat')}" in proc.stderr
    assert "tok/s" not in proc.stderr       # the virtual board's wall clock is the host's: no speed printed
    assert proc.stdout.rstrip("\n") == ("The Cat" + _reference_story("The Cat", 100, 200, 0, 3)).rstrip("\n")


def _firmware_ready() -> bool:
    try:
        from starmind_lib.devices import firmware
    except ImportError:
        return False
    return (shutil.which("node") is not None and firmware.firmware_path() is not None
            and (firmware.EMULATOR_DIR / "node_modules" / "rp2040js").exists())


@pytest.mark.slow
@pytest.mark.skipif(not _firmware_ready(), reason="needs node, rp2040js and the MicroPython firmware image")
def test_cli_generate_sends_text_to_the_emulated_stock_firmware():
    """The real MicroPython 1.27 firmware in rp2040js (asm kernels): text in, 60 tokens past T = 32."""
    proc = subprocess.run([str(Path(sys.executable).parent / "starmind"), "board", "generate", "--port", "emulated",
                           "--model", str(MODEL), "--prompt", "The Cat", "--n-tokens", "60", "--seed", "3",
                           "--temperature-q8", "200", "--top-k", "0"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "micropython-asm" in proc.stderr and " tok/s (emulated_stock_firmware)" in proc.stderr
    assert proc.stdout.rstrip("\n") == ("The Cat" + _reference_story("The Cat", 60, 200, 0, 3)).rstrip("\n")
