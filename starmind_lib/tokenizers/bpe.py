"""Byte-level BPE through Hugging Face ``tokenizers``.

Ids: 0 = BOS, 1 = EOS, 2..257 = the 256 bytes (in the byte-level alphabet's
order), then one token per merge, in merge order. Every text encodes (there
is no ``<unk>``), so the smallest vocabulary is 258: smaller requests are
rejected with an error pointing at the char tokenizer, which is the study's
tokenizer below 258. Merged tokens are limited to ``MAX_TOKEN_BYTES`` bytes so
they fit a small device buffer (and the binary format's length byte).

The specials are not registered as "added tokens" in the Hugging Face
tokenizer used for encoding, so a story that contains the text ``<bos>``
encodes as its bytes and round-trips exactly.
"""
from __future__ import annotations

import json
from functools import lru_cache

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers, trainers

from .base import Tokenizer, TokenizerError

BOS, EOS = "<bos>", "<eos>"
BOS_ID, EOS_ID = 0, 1
N_SPECIAL = 2
MIN_BPE_VOCAB = 256 + N_SPECIAL
MAX_TOKEN_BYTES = 32


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what ByteLevel shows for each byte)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def _pre_tokenizer():
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, tokens: list[str], merges: list[tuple[str, str]] | None, lowercase: bool = False,
                 requested_vocab_size: int | None = None):
        """``tokens``: byte-level strings in id order (specials first); ``merges`` in rank order
        (None = decode only, e.g. read from a binary vocabulary without merges)."""
        if tokens[:N_SPECIAL] != [BOS, EOS]:
            raise TokenizerError(f"BPE vocabulary must start with {BOS}, {EOS}; got {tokens[:N_SPECIAL]}")
        self.tokens = list(tokens)
        self.merge_pairs = None if merges is None else [tuple(m) for m in merges]
        self.lowercase = lowercase
        self.vocab_size = len(tokens)
        self.requested_vocab_size = requested_vocab_size or self.vocab_size
        self.bos_id, self.eos_id, self.unk_id = BOS_ID, EOS_ID, None
        u2b = unicode_to_bytes()
        self._bytes = [b"", b""] + [bytes(u2b[c] for c in t) for t in tokens[N_SPECIAL:]]
        self._hf = None
        if merges is not None:
            vocab = {t: i for i, t in enumerate(tokens)}
            self._hf = HFTokenizer(models.BPE(vocab=vocab, merges=self.merge_pairs))
            self._hf.pre_tokenizer = _pre_tokenizer()

    @classmethod
    def train(cls, texts, vocab_size: int, lowercase: bool = False) -> "BPETokenizer":
        if vocab_size < MIN_BPE_VOCAB:
            raise TokenizerError(
                f"byte-level BPE needs vocab_size >= {MIN_BPE_VOCAB} (256 bytes + BOS + EOS), got {vocab_size}; "
                "use kind='char' for smaller vocabularies")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = _pre_tokenizer()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS, EOS], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      max_token_length=MAX_TOKEN_BYTES)
        hf.train_from_iterator((t.lower() if lowercase else t for t in texts), trainer)
        model = json.loads(hf.to_str())["model"]
        tokens = [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        return cls(tokens, merges, lowercase, vocab_size)

    def encode(self, text: str) -> list[int]:
        return self._encoder().encode(self.prepare(text), add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        encs = self._encoder().encode_batch([self.prepare(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in encs]

    def _encoder(self) -> HFTokenizer:
        if self._hf is None:
            raise TokenizerError(f"{self.name} was read without its merges (decode only); "
                                 "write it with to_binary(include_merges=True) or save() to encode")
        return self._hf

    def token_bytes(self, i: int) -> bytes:
        if not 0 <= i < self.vocab_size:
            raise TokenizerError(f"token id {i} out of range for {self.name} (vocab {self.vocab_size})")
        return self._bytes[i]

    def has_merges(self) -> bool:
        return self.merge_pairs is not None

    def merges(self) -> list[tuple[int, int, int]]:
        if self.merge_pairs is None:
            return []
        ids = {t: i for i, t in enumerate(self.tokens)}
        return [(ids[a], ids[b], ids[a + b]) for a, b in self.merge_pairs]

    def _state(self) -> dict:
        return {"requested_vocab_size": self.requested_vocab_size, "bos_id": BOS_ID, "eos_id": EOS_ID,
                "unk_id": None, "tokens": self.tokens,
                "merges": None if self.merge_pairs is None else [list(m) for m in self.merge_pairs]}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        return cls(d["tokens"], d["merges"], d["lowercase"], d.get("requested_vocab_size"))

    @classmethod
    def from_tokens(cls, tokens: list[bytes], lowercase: bool, ids: tuple,
                    merges: list[tuple[int, int, int]] | None) -> "BPETokenizer":
        if ids != (BOS_ID, EOS_ID, None) or any(tokens[:N_SPECIAL]):
            raise TokenizerError(f"BPE vocabulary must have BOS, EOS at ids 0, 1 and no <unk>; got {ids}")
        b2u = bytes_to_unicode()
        strs = [BOS, EOS] + ["".join(b2u[b] for b in t) for t in tokens[N_SPECIAL:]]
        pairs = None if merges is None else [(strs[a], strs[b]) for a, b, _ in merges]
        return cls(strs, pairs, lowercase)
