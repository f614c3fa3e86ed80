"""Session set-up: the shared build outputs first, then the two book builds in the background.

Building the smoke book (every stage from synthetic data) and the report book (the committed tables)
is most of `make test`, and each is one process that mostly waits on a notebook kernel. Once the tests
are collected, each book the selected tests need starts as a subprocess (``python -m
starmind_lib.book.build build``) while the other tests run; the book tests run last and wait for their
build (:func:`book_build`). What the builds share with the other tests (the C runtime, the emulator
firmware, the compiled MicroPython runtime) is brought up to date before they start, so no two
processes write the same file.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "build" / "test-logs"
SMOKE_OUT = REPO / "build" / "smoke" / "book"
SMOKE_TEST = "test_smoke_book_builds_and_every_page_works_offline_in_chromium"
_BUILDS: dict[str, BookBuild] = {}


class BookBuild:
    """One `starmind_lib.book.build build` subprocess, its output in build/test-logs/book-NAME.log."""

    def __init__(self, name: str, args: list[str]):
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name, self.log = name, LOGS / f"book-{name}.log"
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen([sys.executable, "-m", "starmind_lib.book.build", "build", *args], cwd=REPO,
                                         stdout=f, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float) -> tuple[int, str]:
        """(return code, the build's output)."""
        rc = self.proc.wait(timeout=timeout)
        return rc, self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


def book_args(name: str) -> list[str]:
    if name == "smoke":
        return ["--profile", "smoke", "--out", str(SMOKE_OUT)]
    notebooks = os.environ.get("STARMIND_BOOK_NOTEBOOKS")   # the report book of another notebooks directory
    return ["--profile", "report"] + (["--notebooks-dir", notebooks] if notebooks else [])


def book_build(name: str) -> BookBuild:
    """The build of book ``name`` ("smoke" or "report"): the one started after collection, else one started now."""
    if name not in _BUILDS:
        _prebuild()
        _BUILDS[name] = BookBuild(name, book_args(name))
    return _BUILDS[name]


def _prebuild() -> None:
    """Bring the shared build outputs up to date (each step only where its tools are installed; a test
    that needs a missing one says so itself)."""
    steps = []
    if shutil.which("gcc") and shutil.which("make"):
        steps.append(lambda: subprocess.run(["make", "-s", "-C", str(REPO / "device" / "c"), "all", "sanitize"],
                                            check=True, capture_output=True))
    if shutil.which("arm-none-eabi-gcc") and shutil.which("make"):
        from starmind_lib.devices.emulated import build_firmware
        steps.append(build_firmware)
    try:
        from starmind_lib.devices.runtime import mpy_cross_binary, runtime_files
        mpy_cross_binary()
        steps += [lambda: runtime_files("mpy-armv6m"), lambda: runtime_files("mpy")]
    except FileNotFoundError:
        pass
    for step in steps:
        try:
            step()
        except Exception as exc:    # noqa: BLE001 - the test that needs it reports the failure
            print(f"[conftest] pre-build step failed: {exc}", file=sys.stderr)


def _needs(item) -> str | None:
    if "report_book" in getattr(item, "fixturenames", ()):
        return "report"
    return "smoke" if item.name == SMOKE_TEST else None


def pytest_collection_modifyitems(session, config, items):
    """The tests that wait for a book build run last, so that the others run while the books build."""
    items[:] = [i for i in items if _needs(i) is None] + [i for i in items if _needs(i) is not None]


def pytest_collection_finish(session):
    if session.config.option.collectonly:
        return
    for name in sorted({_needs(i) for i in session.items} - {None}):
        book_build(name)


def pytest_sessionfinish(session, exitstatus):
    for b in _BUILDS.values():
        b.stop()
