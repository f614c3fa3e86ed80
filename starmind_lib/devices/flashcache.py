"""The RP2040's XIP flash cache, as a cost model for the emulated Pico.

rp2040js counts Cortex-M0+ cycles per instruction but serves flash reads at SRAM
speed: it has no XIP cache and no QSPI flash behind it.  The emulator harness
(``device/emulator/harness.mjs``, function ``flashCache``) therefore replays the
address of every read in the cached XIP window 0x10000000..0x11000000
(instruction fetches and data loads) through a model of the cache and adds a
fixed penalty per miss.  This module holds the model's parameters, the
derivation of the penalty, and a Python twin of the JS model (a test checks
that the JS model counts what the twin counts on a streaming read pattern).

Cache geometry (RP2040 datasheet, section 2.6.3 "XIP cache"): 16 KB,
two-way set associative, 8-byte lines, i.e. 2048 lines in 1024 sets.  The
datasheet does not name the replacement policy; we use LRU within a set.

Miss penalty.  The Pico's second-stage boot loader (pico-sdk
``boot2_w25q080.S``) runs the W25Q16 flash at SCK = clk_sys / 2
(``PICO_FLASH_SPI_CLKDIV = 2``) with quad-I/O fast read (EBh) in continuous
read mode, so after the first access no command byte is sent.  One line fill:

=========================  ======================  ==========
phase                      bits / lanes            SCK cycles
=========================  ======================  ==========
address (24 bits)          24 / 4                  6
mode bits (8 bits)         8 / 4                   2
dummy cycles (boot2 wait)  --                      4
data (one 8-byte line)     64 / 4                  16
=========================  ======================  ==========

28 SCK = 56 clk_sys, plus about 4 clk_sys for chip select, the SSI and the
AHB bridge: **60 cycles per miss** on top of the one cycle rp2040js already
charges for the access.  Without continuous read mode (a command byte per
fill, 8 more SCK) it would be 76; the chapter states the assumption.  The
penalty does not depend on clk_sys in cycles as long as the divider is 2
(at 133 MHz the flash runs at 66.5 MHz, inside the W25Q16's 133 MHz limit).
"""
from __future__ import annotations

from dataclasses import dataclass

XIP_BASE = 0x1000_0000
XIP_CACHED_END = 0x1100_0000
CACHE_BYTES = 16 * 1024
LINE_BYTES = 8
WAYS = 2
SETS = CACHE_BYTES // (LINE_BYTES * WAYS)  # 1024

SCK_DIVIDER = 2
SCK_PER_FILL = 24 // 4 + 8 // 4 + 4 + (LINE_BYTES * 8) // 4  # address + mode + dummy + data = 28
BRIDGE_OVERHEAD_CYCLES = 4
MISS_PENALTY_CYCLES = SCK_DIVIDER * SCK_PER_FILL + BRIDGE_OVERHEAD_CYCLES  # 60


@dataclass
class FlashCache:
    """Python twin of the harness's cache model: feed it flash read addresses."""

    accesses: int = 0
    misses: int = 0

    def __post_init__(self):
        self._tags = [[-1, -1] for _ in range(SETS)]
        self._mru = [0] * SETS

    def access(self, addr: int) -> bool:
        """Record one read; True on a hit.  Addresses outside the cached window are ignored."""
        if not XIP_BASE <= addr < XIP_CACHED_END:
            return True
        self.accesses += 1
        line = (addr & 0xFFFFFF) >> 3
        s, tag = line % SETS, line // SETS
        ways = self._tags[s]
        for w in range(WAYS):
            if ways[w] == tag:
                self._mru[s] = w
                return True
        self.misses += 1
        victim = self._mru[s] ^ 1
        ways[victim] = tag
        self._mru[s] = victim
        return False

    def penalty_cycles(self, miss_penalty: int = MISS_PENALTY_CYCLES) -> int:
        return self.misses * miss_penalty


def with_cache_cycles(raw_cycles: float, misses: float, miss_penalty: int = MISS_PENALTY_CYCLES) -> float:
    """Cycle count with the cache model: the emulator's raw count plus the miss penalties."""
    return raw_cycles + misses * miss_penalty
