"""The tokenizer interface and its binary vocabulary file.

Every tokenizer maps text to ids and back; ``token_bytes(i)`` is what token
``i`` prints (UTF-8 bytes; ``b""`` for the special tokens; a BPE token may be
a partial UTF-8 sequence, so a device prints bytes, not characters).

Binary vocabulary (``to_binary()``), all integers little-endian::

    offset  size  field
    0       4     magic b"SMTK"
    4       1     version (1)
    5       1     kind: 0 = char, 1 = bpe
    6       1     flags: bit 0 = lowercase (input is lowercased before encoding),
                         bit 1 = a merges section follows the tokens
    7       1     max_token_bytes (longest token, so a device can size a buffer)
    8       2     vocab_size  (u16)
    10      2     bos_id      (u16)
    12      2     eos_id      (u16)
    14      2     unk_id      (u16; 0xFFFF = none, as for byte-level BPE)
    16      ...   vocab_size tokens, in id order: u8 length, then that many bytes
                  (specials have length 0)
    then, if flags bit 1 (BPE only, not needed to decode):
            2     n_merges (u16)
            6*n   merges in rank order: u16 left id, u16 right id, u16 result id

A device that only generates needs the header and the tokens (decode-only:
``to_binary(include_merges=False)``); encoding a prompt on the device needs the
merges as well.
"""
from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..provenance import atomic_write_text

MAGIC = b"SMTK"
BINARY_VERSION = 1
KIND_CODES = {"char": 0, "bpe": 1}
NO_ID = 0xFFFF
FLAG_LOWERCASE = 1
FLAG_MERGES = 2
HEADER = struct.Struct("<4sBBBBHHHH")
JSON_FORMAT = "starmind-tokenizer"
MIN_VOCAB, MAX_VOCAB = 32, 4096


class TokenizerError(ValueError):
    """A tokenizer request or file is invalid; the message names what is wrong."""


class Tokenizer(ABC):
    kind: str
    vocab_size: int
    bos_id: int
    eos_id: int
    unk_id: int | None
    lowercase: bool

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.vocab_size}" + ("-lc" if self.lowercase else "")

    def __repr__(self) -> str:
        return f"<Tokenizer {self.name}>"

    def prepare(self, text: str) -> str:
        """The text as the tokenizer sees it (lowercased for ``-lc`` tokenizers)."""
        return text.lower() if self.lowercase else text

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; no BOS/EOS added."""

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    @abstractmethod
    def token_bytes(self, i: int) -> bytes:
        """The UTF-8 bytes token ``i`` prints (``b""`` for specials)."""

    def decode(self, ids) -> str:
        """Text of ``ids``; bytes are joined first so split UTF-8 sequences decode whole."""
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def is_special(self, i: int) -> bool:
        return i in (self.bos_id, self.eos_id, self.unk_id)

    # ---- files ---------------------------------------------------------------
    @abstractmethod
    def _state(self) -> dict:
        """What the JSON file stores beyond the common header."""

    def to_dict(self) -> dict:
        return {"format": JSON_FORMAT, "version": 1, "kind": self.kind, "name": self.name,
                "vocab_size": self.vocab_size, "lowercase": self.lowercase, **self._state()}

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    def merges(self) -> list[tuple[int, int, int]]:
        """BPE merges (left, right, result) in rank order; none for char tokenizers."""
        return []

    def has_merges(self) -> bool:
        """Whether the tokenizer has a merges table (BPE able to encode; may be empty at vocab 258)."""
        return False

    def to_binary(self, include_merges: bool = True) -> bytes:
        """The compact vocabulary file a microcontroller reads (layout in the module docstring)."""
        tokens = [self.token_bytes(i) for i in range(self.vocab_size)]
        longest = max(map(len, tokens))
        if longest > 255:
            raise TokenizerError(f"token of {longest} bytes does not fit the binary format (at most 255)")
        with_merges = include_merges and self.has_merges()
        merges = self.merges() if with_merges else []
        flags = (FLAG_LOWERCASE if self.lowercase else 0) | (FLAG_MERGES if with_merges else 0)
        out = [HEADER.pack(MAGIC, BINARY_VERSION, KIND_CODES[self.kind], flags, longest, self.vocab_size,
                           self.bos_id, self.eos_id, NO_ID if self.unk_id is None else self.unk_id)]
        out += [bytes([len(t)]) + t for t in tokens]
        if with_merges:
            out.append(struct.pack("<H", len(merges)))
            out.append(np.asarray(merges, dtype="<u2").tobytes())
        return b"".join(out)


def parse_binary(data: bytes) -> dict:
    """The fields of a binary vocabulary: header values, ``tokens`` (list of bytes) and
    ``merges`` (list of (left, right, result) ids; None without a merges section)."""
    if len(data) < HEADER.size or data[:4] != MAGIC:
        raise TokenizerError(f"not a Starmind binary vocabulary (expected magic {MAGIC!r}, got {data[:4]!r})")
    magic, version, kind, flags, longest, vocab, bos, eos, unk = HEADER.unpack_from(data)
    if version != BINARY_VERSION:
        raise TokenizerError(f"binary vocabulary version {version} is not supported (expected {BINARY_VERSION})")
    kinds = {v: k for k, v in KIND_CODES.items()}
    if kind not in kinds:
        raise TokenizerError(f"binary vocabulary has unknown kind code {kind}")
    pos, tokens = HEADER.size, []
    for i in range(vocab):
        if pos >= len(data):
            raise TokenizerError(f"binary vocabulary truncated at token {i} of {vocab}")
        n = data[pos]
        tokens.append(bytes(data[pos + 1:pos + 1 + n]))
        pos += 1 + n
    merges = None
    if flags & FLAG_MERGES:
        (n_merges,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if pos + 6 * n_merges > len(data):
            raise TokenizerError(f"binary vocabulary truncated in its {n_merges} merges")
        arr = np.frombuffer(data[pos:pos + 6 * n_merges], dtype="<u2").reshape(-1, 3)
        merges = [tuple(int(x) for x in row) for row in arr]
        pos += 6 * n_merges
    if pos != len(data):
        raise TokenizerError(f"binary vocabulary has {len(data) - pos} trailing bytes")
    return {"kind": kinds[kind], "lowercase": bool(flags & FLAG_LOWERCASE), "max_token_bytes": longest,
            "vocab_size": vocab, "bos_id": bos, "eos_id": eos, "unk_id": None if unk == NO_ID else unk,
            "tokens": tokens, "merges": merges}  # merges None: no merges section


def check_vocab_size(kind: str, vocab_size) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TokenizerError(f"vocab_size must be an integer, got {vocab_size!r}")
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise TokenizerError(f"vocab_size must be in [{MIN_VOCAB}, {MAX_VOCAB}], got {vocab_size} ({kind})")
    return vocab_size
