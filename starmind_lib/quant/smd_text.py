"""The text section of a version-2 `.smd` file: special tokens, stop rule and the prompt encoder.

FORMAT.md sections 2.4 and 11 specify it; this module is the host reference of both::

    spec = text_spec_from_tokenizer(tok)                 # what the writer stores (smd.pack_smd(..., text=spec))
    ids = encode(spec, vocab, "Once upon a time")       # the spec's encoder: the same ids as tok.encode

Encoders: ``none`` (the file only decodes), ``char`` (one token per character, ``<unk>`` for the
rest), ``bpe`` (byte-level BPE: GPT-2 pre-tokenization over a code-point class table stored in
the file, then merges by rank). ``lowercase`` files carry a per-code-point folding table.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

NO_ID = 0xFFFFFFFF
ENCODERS = {"none": 0, "char": 1, "bpe": 2}
FLAG_STOP_AT_EOS, FLAG_LOWERCASE = 1, 2
CLASS_OTHER, CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE = 0, 1, 2, 3
MAX_CP = 0x10FFFF
CLASSES_FILE = Path(__file__).with_name("pretok_classes.json")
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")      # after an apostrophe, in the regex's order


class EncodeError(ValueError):
    """The text cannot be encoded by this file's encoder (the message says why)."""


@dataclass(frozen=True)
class TextSpec:
    """Special tokens, stop rule and encoder data of a version-2 file."""
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    stop_at_eos: bool = False
    lowercase: bool = False
    encoder: str = "none"                                  # none | char | bpe
    fold: tuple = ()                                       # ((from_cp, to_cp), ...) sorted by from_cp
    classes: tuple = ()                                    # ((lo, hi, class), ...) sorted, disjoint
    merges: tuple = ()                                     # ((left, right, result), ...) in rank order

    def words(self) -> list[int]:
        """Header words 16..23."""
        nid = lambda v: NO_ID if v is None else v  # noqa: E731
        flags = (FLAG_STOP_AT_EOS if self.stop_at_eos else 0) | (FLAG_LOWERCASE if self.lowercase else 0)
        return [nid(self.bos_id), nid(self.eos_id), nid(self.unk_id), flags, ENCODERS[self.encoder],
                len(self.merges), len(self.fold), len(self.classes)]

    def pack(self) -> bytes:
        out = bytearray()
        for a, b in self.fold:
            out += struct.pack("<II", a, b)
        for lo, hi, k in self.classes:
            out += struct.pack("<II", lo, (hi << 8) | k)
        for m in self.merges:
            out += struct.pack("<HHH", *m)
        return bytes(out)


def section_bytes(words: list[int]) -> int:
    """Length of the encoder section from header words 16..23."""
    return 8 * words[6] + 8 * words[7] + 6 * words[5]


# ---- building it from a tokenizer ------------------------------------------------------------
@lru_cache(maxsize=1)
def pretokenizer_classes() -> tuple:
    """(lo, hi, class) ranges of letters, numbers and white space as the host BPE tokenizer's
    pre-tokenizer sees them (scanned from Hugging Face ``tokenizers`` once, committed)."""
    return tuple(tuple(r) for r in json.loads(CLASSES_FILE.read_text())["ranges"])


def _utf8_cps(b: bytes) -> list[int]:
    return [ord(c) for c in b.decode("utf-8")]


def fold_table(vocab: list[bytes] | None = None, char_unk: int | None = None) -> tuple:
    """Per-code-point lowercasing (Python's ``str.lower`` of each code point). For a char encoder
    (``vocab`` given) only the entries that change an encoding are kept."""
    index = {t: i for i, t in enumerate(vocab or []) if t}
    out = []
    for c in range(MAX_CP + 1):
        if 0xD800 <= c < 0xE000:
            continue
        low = chr(c).lower()
        if low == chr(c):
            continue
        if vocab is not None:
            own = [index.get(chr(c).encode(), char_unk)]
            if [index.get(ch.encode(), char_unk) for ch in low] == own:
                continue
        out += [(c, ord(ch)) for ch in low]
    return tuple(out)


def text_spec_from_tokenizer(tok, stop_at_eos: bool = True) -> TextSpec:
    """The text section for a study tokenizer (char or byte-level BPE)."""
    vocab = [tok.token_bytes(i) for i in range(tok.vocab_size)]
    common = dict(bos_id=tok.bos_id, eos_id=tok.eos_id, unk_id=tok.unk_id, stop_at_eos=stop_at_eos,
                  lowercase=tok.lowercase)
    if tok.kind == "char":
        fold = fold_table(vocab, tok.unk_id) if tok.lowercase else ()
        return TextSpec(**common, encoder="char", fold=fold)
    if not tok.has_merges():
        return TextSpec(**common, encoder="none")
    return TextSpec(**common, encoder="bpe", fold=fold_table() if tok.lowercase else (),
                    classes=pretokenizer_classes(), merges=tuple(tuple(m) for m in tok.merges()))


# ---- reading and checking it -----------------------------------------------------------------
def parse_text(words: list[int], blob: bytes, vocab: list[bytes], error) -> TextSpec:
    """Check header words 16..23 and the encoder section against the vocabulary; ``error(msg)``
    raises the reader's FormatError."""
    V = len(vocab)
    bos, eos, unk, flags, enc, n_merges, n_fold, n_classes = words
    names = {v: k for k, v in ENCODERS.items()}
    ids = {}
    for what, v in (("bos_id", bos), ("eos_id", eos), ("unk_id", unk)):
        if v != NO_ID and v >= V:
            error(f"special tokens: {what}={v} not a token id (vocab_size={V}) or 0xFFFFFFFF (none)")
        if v != NO_ID:
            if v in ids.values():
                error(f"special tokens: {what}={v} is also another special token")
            if vocab[v]:
                error(f"special tokens: {what}={v} must be a 0-byte token, has {len(vocab[v])} bytes")
            ids[what] = v
    if flags & ~(FLAG_STOP_AT_EOS | FLAG_LOWERCASE):
        error(f"special tokens: unknown flag bits {flags:#x}")
    if flags & FLAG_STOP_AT_EOS and eos == NO_ID:
        error("special tokens: stop_at_eos is set but the file has no eos_id")
    if enc not in names:
        error(f"encoder: unknown encoder code {enc}")
    encoder = names[enc]
    if n_fold and not flags & FLAG_LOWERCASE:
        error(f"encoder: {n_fold} folding entries but the lowercase flag is not set")
    if encoder != "bpe" and (n_merges or n_classes):
        error(f"encoder: {encoder} encoder with {n_merges} merges and {n_classes} class ranges (bpe only)")
    if encoder == "none" and n_fold:
        error("encoder: folding table without an encoder")
    if len(blob) != section_bytes(words):
        error(f"encoder: section of {len(blob)} bytes, the header's counts need {section_bytes(words)}")
    at, fold, classes, merges = 0, [], [], []
    for k in range(n_fold):
        a, b = struct.unpack_from("<II", blob, at + 8 * k)
        if a > MAX_CP or b > MAX_CP or 0xD800 <= a < 0xE000 or 0xD800 <= b < 0xE000:
            error(f"encoder: folding entry {k} ({a:#x} -> {b:#x}) is not a Unicode scalar value")
        if fold and a < fold[-1][0]:
            error(f"encoder: folding entry {k} is out of order (sorted by code point)")
        fold.append((a, b))
    at += 8 * n_fold
    for k in range(n_classes):
        lo, w = struct.unpack_from("<II", blob, at + 8 * k)
        hi, c = w >> 8, w & 255
        if not (lo <= hi <= MAX_CP) or c not in (1, 2, 3) or (classes and lo <= classes[-1][1]):
            error(f"encoder: class range {k} ({lo:#x}..{hi:#x}, class {c}) is not sorted, disjoint and valid")
        classes.append((lo, hi, c))
    at += 8 * n_classes
    if encoder == "char":
        seen = set()
        for i, t in enumerate(vocab):
            if i in ids.values():
                continue
            try:
                ok = len(t.decode("utf-8")) == 1
            except UnicodeDecodeError:
                ok = False
            if not ok or t in seen:
                error(f"encoder: char encoder needs one distinct UTF-8 character per token; token {i} is {t!r}")
            seen.add(t)
    if encoder == "bpe":
        singles = [i for i, t in enumerate(vocab) if len(t) == 1]
        if sorted(vocab[i][0] for i in singles) != list(range(256)):
            error("encoder: bpe needs exactly one single-byte token for each of the 256 byte values")
        pairs, results = set(), set()
        for k in range(n_merges):
            left, right, res = struct.unpack_from("<HHH", blob, at + 6 * k)
            if max(left, right, res) >= V or not vocab[left] or not vocab[right] \
                    or vocab[res] != vocab[left] + vocab[right]:
                error(f"encoder: merge {k} ({left}, {right}) -> {res} does not join the two tokens' bytes")
            if (left, right) in pairs or res in results:
                error(f"encoder: merge {k} ({left}, {right}) -> {res} repeats a pair or a result")
            pairs.add((left, right))
            results.add(res)
            merges.append((left, right, res))
    nid = lambda v: None if v == NO_ID else v  # noqa: E731
    return TextSpec(nid(bos), nid(eos), nid(unk), bool(flags & FLAG_STOP_AT_EOS), bool(flags & FLAG_LOWERCASE),
                    encoder, tuple(fold), tuple(classes), tuple(merges))


# ---- the encoder (FORMAT.md section 11) ------------------------------------------------------
def _fold(spec: TextSpec, cps: list[int]) -> list[int]:
    if not spec.lowercase or not spec.fold:
        return cps
    table: dict[int, list[int]] = {}
    for a, b in spec.fold:
        table.setdefault(a, []).append(b)
    out = []
    for c in cps:
        out += table.get(c, [c])
    return out


def _class_of(classes, c: int) -> int:
    import bisect
    k = bisect.bisect_right(classes, (c, MAX_CP + 1, 9)) - 1
    return classes[k][2] if k >= 0 and classes[k][0] <= c <= classes[k][1] else CLASS_OTHER


def pretokenize(cps: list[int], classes) -> list[list[int]]:
    """GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?L+| ?N+| ?[^SLN]+|S+(?!S^)|S+` over code points."""
    cl = [_class_of(classes, c) for c in cps]
    n, i, out = len(cps), 0, []
    while i < n:
        j = i
        if cps[i] == 0x27:
            for w in CONTRACTIONS:
                if [chr(c) for c in cps[i + 1:i + 1 + len(w)]] == list(w):
                    j = i + 1 + len(w)
                    break
        if j == i:
            s = i + 1 if cps[i] == 0x20 and i + 1 < n and cl[i + 1] != CLASS_SPACE else i
            if cl[s] != CLASS_SPACE:
                j = s + 1
                while j < n and (cl[j] == cl[s] if cl[s] != CLASS_OTHER else cl[j] == CLASS_OTHER):
                    j += 1
            else:
                k = i
                while k < n and cl[k] == CLASS_SPACE:
                    k += 1
                j = k if k == n or k - i == 1 else k - 1
        out.append(cps[i:j])
        i = j
    return out


def bpe_word(ids: list[int], ranks: dict) -> list[int]:
    """Merge the adjacent pair of lowest rank (leftmost first) until no pair has a merge."""
    while len(ids) > 1:
        best, at = None, -1
        for k in range(len(ids) - 1):
            r = ranks.get((ids[k], ids[k + 1]))
            if r is not None and (best is None or r[0] < best[0]):
                best, at = r, k
        if best is None:
            break
        ids[at:at + 2] = [best[1]]
    return ids


def encode(spec: TextSpec, vocab: list[bytes], text: str) -> list[int]:
    """The ids of ``text`` by the file's encoder (no BOS/EOS added)."""
    cps = _fold(spec, [ord(c) for c in text])
    if spec.encoder == "none":
        raise EncodeError("this model file has no encoder (version 1, or encoder none): give token ids")
    if spec.encoder == "char":
        index = {t: i for i, t in enumerate(vocab) if t}
        out = []
        for c in cps:
            i = index.get(chr(c).encode("utf-8", "surrogatepass"), spec.unk_id)
            if i is None:
                raise EncodeError(f"character U+{c:04X} is not in the vocabulary and the file has no unk_id")
            out.append(i)
        return out
    byte_id = {t[0]: i for i, t in enumerate(vocab) if len(t) == 1}
    ranks = {(a, b): (k, r) for k, (a, b, r) in enumerate(spec.merges)}
    out = []
    for piece in pretokenize(cps, spec.classes):
        data = "".join(map(chr, piece)).encode("utf-8", "surrogatepass")
        out += bpe_word([byte_id[b] for b in data], ranks)
    return out
