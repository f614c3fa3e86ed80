"""Character-level tokenizer: the K most frequent training characters plus three specials.

Ids: 0 = BOS, 1 = EOS, 2 = ``<unk>`` (any character outside the vocabulary),
then characters by descending training frequency (ties by code point). With
``vocab_size`` V, K = V - 3 characters are kept; when the training text has
fewer distinct characters the vocabulary is smaller and ``vocab_size`` records
the actual size (``requested_vocab_size`` the request).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .base import Tokenizer, TokenizerError

BOS_ID, EOS_ID, UNK_ID = 0, 1, 2
N_SPECIAL = 3


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars: list[str], lowercase: bool = False, requested_vocab_size: int | None = None):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise TokenizerError("char tokenizer needs distinct single characters")
        self.chars = list(chars)
        self.lowercase = lowercase
        self.vocab_size = N_SPECIAL + len(chars)
        self.requested_vocab_size = requested_vocab_size or self.vocab_size
        self.bos_id, self.eos_id, self.unk_id = BOS_ID, EOS_ID, UNK_ID
        self._ids = {c: N_SPECIAL + i for i, c in enumerate(chars)}
        self._bytes = [b"", b"", b""] + [c.encode("utf-8") for c in chars]
        # Sorted code points and their ids, for vectorised encoding.
        order = sorted(range(len(chars)), key=lambda i: ord(chars[i]))
        self._cps = np.array([ord(chars[i]) for i in order], dtype=np.uint32)
        self._cp_ids = np.array([N_SPECIAL + i for i in order], dtype=np.int32)

    @classmethod
    def train(cls, texts, vocab_size: int, lowercase: bool = False) -> "CharTokenizer":
        counts: Counter = Counter()
        for t in texts:
            counts.update(t.lower() if lowercase else t)
        if not counts:
            raise TokenizerError("cannot build a char tokenizer from empty training text")
        ranked = sorted(counts, key=lambda c: (-counts[c], ord(c)))
        return cls(ranked[:vocab_size - N_SPECIAL], lowercase, vocab_size)

    def encode_array(self, text: str) -> np.ndarray:
        """Ids of ``text`` as an int32 array (vectorised: code points looked up by binary search)."""
        return self.lookup_codepoints(codepoints(self.prepare(text)))

    def lookup_codepoints(self, cps: np.ndarray) -> np.ndarray:
        """Ids of an array of code points (``<unk>`` where not in the vocabulary)."""
        pos = np.minimum(np.searchsorted(self._cps, cps), len(self._cps) - 1)
        found = self._cps[pos] == cps
        return np.where(found, self._cp_ids[pos], UNK_ID).astype(np.int32)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def token_bytes(self, i: int) -> bytes:
        if not 0 <= i < self.vocab_size:
            raise TokenizerError(f"token id {i} out of range for {self.name} (vocab {self.vocab_size})")
        return self._bytes[i]

    def _state(self) -> dict:
        return {"requested_vocab_size": self.requested_vocab_size, "bos_id": BOS_ID, "eos_id": EOS_ID,
                "unk_id": UNK_ID, "chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        return cls(d["chars"], d["lowercase"], d.get("requested_vocab_size"))

    @classmethod
    def from_tokens(cls, tokens: list[bytes], lowercase: bool, ids: tuple) -> "CharTokenizer":
        if ids != (BOS_ID, EOS_ID, UNK_ID) or any(tokens[:N_SPECIAL]):
            raise TokenizerError(f"char vocabulary must start with BOS, EOS, <unk> at ids 0, 1, 2; got {ids}")
        return cls([t.decode("utf-8") for t in tokens[N_SPECIAL:]], lowercase)
