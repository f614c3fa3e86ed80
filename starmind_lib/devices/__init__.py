"""Boards that run exported models: the emulated Pico, mpremote boards, the virtual MicroPython board."""
from .base import Board, RunRecord, RunStatus, SpeedSource

__all__ = ["Board", "RunRecord", "RunStatus", "SpeedSource"]
