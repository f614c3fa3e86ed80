"""Boards without hardware that the real ``mpremote`` drives over ``socket://``.

* :func:`start_virtual_board`: MicroPython's WebAssembly port in Node behind a
  TCP bridge (``device/virtualboard/bridge.mjs``). Real MicroPython 1.27, 32-bit
  like the Pico, but its heap grows on demand and it runs at the host's speed:
  it proves behaviour (same tokens as the reference engine), never speed or memory.
* :func:`start_fake_board`: a CPython stand-in speaking the same raw-REPL byte
  protocol, which runs the received code with CPython and injects faults: a
  heap limit (``bytearray`` allocations above it raise MemoryError, like a full
  Pico heap), a hang, a dropped connection, so every status path of the runner
  can be tested.

Both return a :class:`BoardProcess` (a context manager)::

    with start_virtual_board() as vb:
        board = MpremoteBoard(vb.url, kind="virtual")
"""
from __future__ import annotations

import argparse
import builtins
import contextlib
import errno
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..provenance import REPO_ROOT

BRIDGE_DIR = REPO_ROOT / "device" / "virtualboard"
STARTUP_TIMEOUT_S = 30.0


class BoardStartError(RuntimeError):
    """The virtual or fake board could not be started (missing node, node_modules, ...)."""


class BoardProcess:
    """A board server in a subprocess that prints ``LISTENING <port>`` when ready."""

    def __init__(self, argv: list[str], cwd: Path, name: str):
        self.name = name
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        line = self._first_line()
        if not line.startswith("LISTENING "):
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise BoardStartError(f"{name} did not start: {line!r} {err.strip()}")
        self.port = int(line.split()[1])

    def _first_line(self) -> str:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(STARTUP_TIMEOUT_S):
            return "<no answer within %.0f s>" % STARTUP_TIMEOUT_S
        return self.proc.stdout.readline().strip()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_virtual_board(heap_bytes: int = 256 * 1024) -> BoardProcess:
    """Start MicroPython (WebAssembly) behind the TCP bridge on a free port."""
    node = shutil.which("node")
    if node is None:
        raise BoardStartError("the virtual board needs Node.js ('node' is not on PATH)")
    if not (BRIDGE_DIR / "node_modules" / "@micropython").exists():
        raise BoardStartError(f"the virtual board's packages are missing: run `make npm` "
                              f"(npm ci in {BRIDGE_DIR})")
    return BoardProcess([node, "bridge.mjs", "--port", "0", "--heap", str(heap_bytes)], BRIDGE_DIR,
                        "virtual board")


def start_fake_board(root: Path, faults: dict[str, str] | None = None,
                     heap_limit: int | None = None) -> BoardProcess:
    """Start the fault-injecting CPython board; ``root`` is its filesystem.

    ``heap_limit``: the bytes of bytearrays one program (one raw-REPL exec) may allocate.
    ``faults`` maps a substring of the executed code (e.g. a model file name) to
    "hang" (stop answering until Ctrl-C) or "disconnect" (print a line, then drop the connection).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "starmind_lib.devices.virtual", "fake", "--root", str(root)]
    for trigger, action in (faults or {}).items():
        argv += ["--fault", f"{action}:{trigger}"]
    if heap_limit:
        argv += ["--heap-limit", str(heap_limit)]
    return BoardProcess(argv, REPO_ROOT, "fake board")


# ---------------------------------------------------------------- the fake board

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
FRIENDLY_BANNER = b"MicroPython (fake board: CPython, fault injection)\r\n>>> "


HEAP_USED = [0]  # bytes of bytearrays allocated by the program running now


def _limited_bytearray(limit: int):
    """A bytearray type that fails like a full MicroPython heap once a program has allocated ``limit`` bytes."""

    class bytearray_(bytearray):  # noqa: N801 - stands in for the builtin
        def __new__(cls, *args):
            if args and isinstance(args[0], int):
                if HEAP_USED[0] + args[0] > limit:
                    raise MemoryError(f"memory allocation failed, allocating {args[0]} bytes")
                HEAP_USED[0] += args[0]
            return super().__new__(cls, *args)

    return bytearray_


@dataclass
class FakeBoard:
    root: Path
    faults: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    line: bytearray = field(default_factory=bytearray)
    held: bytes = b""
    namespace: dict = field(default_factory=dict)

    def soft_reset(self) -> None:
        """A fresh interpreter: empty globals, the board's modules forgotten."""
        root = str(self.root.resolve())
        for name, mod in list(sys.modules.items()):
            if (getattr(mod, "__file__", None) or "").startswith(root):
                del sys.modules[name]
        self.namespace = {"__name__": "__main__"}

    def serve(self, conn: socket.socket) -> None:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            for c in data:
                if not self.byte(conn, c):
                    return

    def byte(self, conn: socket.socket, c: int) -> bool:
        """Handle one console byte; False when the connection must be dropped."""
        if not self.raw:
            if c == 0x01:
                self.raw, self.line = True, bytearray()
                conn.sendall(b"\r\n" + RAW_BANNER)
            elif c in (0x03, 0x0D):
                conn.sendall(b"\r\n>>> ")
            elif c == 0x04:
                self.soft_reset()
                conn.sendall(b"MPY: soft reboot\r\n" + FRIENDLY_BANNER)
            return True
        if not self.line and (self.held + bytes([c])) == b"\x05A\x01"[:len(self.held) + 1]:
            self.held += bytes([c])
            if self.held == b"\x05A\x01":  # raw-paste mode: understood, not supported
                self.held = b""
                conn.sendall(b"R\x00")
            return True
        self.line += self.held
        self.held = b""
        if c == 0x01:
            self.line = bytearray()
            conn.sendall(RAW_BANNER)
        elif c == 0x02:
            self.raw = False
            conn.sendall(b"\r\n" + FRIENDLY_BANNER)
        elif c == 0x03:
            self.line = bytearray()
        elif c == 0x04:
            code, self.line = bytes(self.line), bytearray()
            conn.sendall(b"OK")
            if not code:
                self.soft_reset()
                conn.sendall(b"\r\nMPY: soft reboot\r\n" + RAW_BANNER)
                return True
            return self.execute(conn, code.decode("utf-8", "replace"))
        else:
            self.line.append(c)
        return True

    def execute(self, conn: socket.socket, code: str) -> bool:
        fault = next((action for trigger, action in self.faults.items() if trigger in code), None)
        if fault == "disconnect":
            conn.sendall(b'{"event": "loaded"}\r\n')
            conn.close()
            return False
        if fault == "hang":
            return self.hang(conn)
        out = _SocketWriter(conn)
        err = ""
        HEAP_USED[0] = 0
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<stdin>", "exec"), self.namespace)
        except BaseException as exc:  # noqa: BLE001 - the board reports every exception as text
            err = _micropython_traceback(exc)
        out.flush()
        conn.sendall(b"\x04" + err.replace("\n", "\r\n").encode() + b"\x04>")
        return True

    def hang(self, conn: socket.socket) -> bool:
        """Stop answering, like a program stuck in a loop, until Ctrl-C arrives."""
        while True:
            data = conn.recv(1)
            if not data:
                return False
            if data == b"\x03":
                conn.sendall(b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04>")
                return True


def _micropython_traceback(exc: BaseException) -> str:
    """The exception as MicroPython prints it (OSError with errno names, which mpremote decodes)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    lines = ["Traceback (most recent call last):"]
    lines += [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
    if isinstance(exc, OSError) and exc.errno in errno.errorcode:
        lines.append(f"OSError: [Errno {exc.errno}] {errno.errorcode[exc.errno]}")
    else:
        lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines) + "\n"


class _SocketWriter(io.TextIOBase):
    def __init__(self, conn: socket.socket):
        self.conn, self.buf = conn, []

    def write(self, s: str) -> int:
        self.buf.append(s)
        if "\n" in s:
            self.flush()
        return len(s)

    def flush(self) -> None:
        if self.buf:
            self.conn.sendall("".join(self.buf).replace("\n", "\r\n").encode())
            self.buf = []


def _serve_fake(args) -> None:
    root = Path(args.root).resolve()
    os.chdir(root)
    sys.path[:0] = [str(root / "lib"), str(root)]
    # mpremote's `fs ls` lists with MicroPython's os.ilistdir: (name, type, inode, size)
    os.ilistdir = lambda path=".": ((e.name, 0x4000 if e.is_dir() else 0x8000, 0, e.stat().st_size)
                                    for e in os.scandir(path or "."))
    if args.heap_limit:
        builtins.bytearray = _limited_bytearray(args.heap_limit)
    faults = {}
    for spec in args.fault:
        action, _, trigger = spec.partition(":")
        if action not in ("hang", "disconnect") or not trigger:
            raise SystemExit(f"--fault must be hang:TEXT or disconnect:TEXT, got {spec!r}")
        faults[trigger] = action
    board = FakeBoard(root, faults)
    board.soft_reset()
    server = socket.create_server(("127.0.0.1", args.port))
    print(f"LISTENING {server.getsockname()[1]}", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                board.serve(conn)
            except OSError:
                pass
        board.raw, board.line, board.held = False, bytearray(), b""
        time.sleep(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m starmind_lib.devices.virtual")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fake = sub.add_parser("fake", help="serve the fault-injecting CPython board")
    fake.add_argument("--root", required=True, help="directory used as the board's filesystem")
    fake.add_argument("--port", type=int, default=0)
    fake.add_argument("--fault", action="append", default=[], help="hang:TEXT or disconnect:TEXT")
    fake.add_argument("--heap-limit", type=int, default=0, help="largest bytearray the board can allocate")
    args = parser.parse_args(argv)
    _serve_fake(args)


if __name__ == "__main__":
    main()
