"""The one host-side interface to every board.

Implementations: the emulated Pico (rp2040js running the C runtime, cycle-counted emulation),
an mpremote board (a real Pico with MicroPython, or anything mpremote reaches),
and the virtual MicroPython board used in tests::

    board = EmulatedPico(...)
    board.deploy(Path("model.smd"))
    rec = board.run(prompt_ids=[1, 34, 7], n_tokens=32, seed=1)
    assert rec.status == "ok"

A RunRecord always says which kind of board produced it and whether its speed
is measured on hardware, cycle-counted in emulation (plus the XIP cache model for flash), or predicted.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

RunStatus = Literal["ok", "does_not_fit", "out_of_memory", "filesystem_error", "missing_file",
                    "incompatible_firmware", "timeout", "disconnected", "error"]
# emulated_stock_firmware: real MicroPython firmware in rp2040js, emulated cycles at the firmware's own clock
SpeedSource = Literal["measured_hardware", "cycle_counted_emulation", "emulation_xip_model", "emulated_stock_firmware", "predicted",
                      "host_timing_not_representative"]


@dataclass
class RunRecord:
    model: str                       # model name / variant id
    board: str                       # e.g. "emulated-pico-c", "mpremote:/dev/ttyACM0", "virtual-micropython"
    runtime: str                     # "c-int8", "c-float32", "micropython-viper", "micropython-python", ...
    status: RunStatus
    speed_source: SpeedSource
    message: str = ""
    prompt_ids: list[int] = field(default_factory=list)
    output_ids: list[int] = field(default_factory=list)
    text: str = ""
    seed: int = 0
    load_ms: float | None = None
    ms_per_prefill_token: float | None = None
    ms_per_token: float | None = None
    cycles_per_prefill_token: float | None = None
    cycles_per_token: float | None = None
    tokens_per_s: float | None = None
    chars_per_s: float | None = None
    peak_ram_bytes: int | None = None
    flash_bytes: int | None = None
    heap_free_before: int | None = None
    heap_free_after: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Board(Protocol):
    name: str

    def deploy(self, model_path: Path) -> None:
        """Make the model (and the runtime, if the board needs it) available on the board."""

    def run(self, prompt_ids: list[int], n_tokens: int, seed: int = 0, temperature_q8: int = 0,
            top_k: int = 0) -> RunRecord:
        """Generate n_tokens after the prompt; never raises for a model-level failure (status says)."""
