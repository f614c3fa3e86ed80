"""The device model file (`.smd`): writer and strict reader.

The layout is specified in `device/FORMAT.md` (the single source of truth for
the runtimes); this module implements it::

    write_smd("model.smd", header, tensors, vocab)      # tensors: name -> numpy array
    m = read_smd("model.smd")                           # raises FormatError on any defect
    m.header.dim, m.tensors["tok_emb"], m.vocab[5]

`read_smd` checks the magic, version, sizes, both CRC-32s, every header field,
the tensor table against the architecture (names, order, dtypes, shapes,
alignment, bounds, overlap) and the value ranges the integer engine's 32-bit
bounds rely on, and never allocates by a size it has not checked against the
file length.

This module imports no quantisation code: :mod:`starmind_lib.quant.schemes` builds
the tensors, :mod:`starmind_lib.quant.reference` the committed reference models.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from . import intengine as ie
from .smd_text import TextSpec, parse_text, section_bytes

MAGIC = b"STARMIND"
VERSION = 2                                # what the writer writes
VERSIONS = (1, 2)                          # what the reader reads (version 1: no text section)
HEADER_WORDS_V = {1: 16, 2: 24}
PREAMBLE = struct.Struct("<8sIIIIII")      # magic, header_crc, payload_crc, version, header_size, payload_size, reserved
PREAMBLE_SIZE = PREAMBLE.size              # 32
HEADER_WORDS = 16
HEADER_FIXED = 4 * HEADER_WORDS            # 64
ENTRY = struct.Struct("<24sIIIIII")         # name, dtype, ndim, shape0, shape1, offset, nbytes
ENTRY_SIZE = ENTRY.size                    # 48
NAME_LEN = 24

SCHEMES = {"float32": 0, "int8": 1}
DTYPES = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"), 4: np.dtype("<f4"), 5: np.dtype("<u2")}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
DTYPE_NAMES = {1: "int8", 2: "int16", 3: "int32", 4: "float32", 5: "uint16"}
MAX_FILE = 1 << 28                         # 256 MiB: nothing a microcontroller could hold is larger


class FormatError(ValueError):
    """The file is not a valid Starmind model file; the message says what is wrong."""


def _inv(d: dict) -> dict:
    return {v: k for k, v in d.items()}


@dataclass(frozen=True)
class SmdHeader:
    scheme: str              # "int8" (integer-only) or "float32"
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_hidden: int
    activation: str          # silu | gelu | swiglu
    pos: str                 # none | learned | rope
    tied: bool
    max_seq_len: int
    logit_frac: int = 0      # int8: logits are in units of 2**-logit_frac nats
    eps_q: int = 0           # int8: RMSNorm epsilon in units of the shifted sum of squares
    final_norm_shift: int = 0
    n_tensors: int = 0       # filled in by the writer
    vocab_bytes: int = 0     # filled in by the writer

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def words(self) -> list[int]:
        return [SCHEMES[self.scheme], self.vocab_size, self.dim, self.n_layers, self.n_heads, self.ffn_hidden,
                ie.ACT_CODES[self.activation], ie.POS_CODES[self.pos], int(self.tied), self.max_seq_len,
                self.n_tensors, self.vocab_bytes, self.logit_frac, self.eps_q, self.final_norm_shift, 0]


@dataclass
class SmdModel:
    header: SmdHeader
    tensors: dict[str, np.ndarray]
    vocab: list[bytes] = field(default_factory=list)
    text: TextSpec = field(default_factory=TextSpec)    # special tokens, stop rule, encoder (version 2)
    version: int = VERSION
    missing: list[str] = field(default_factory=list)    # what a version-1 file cannot say

    @property
    def can_encode(self) -> bool:
        return self.text.encoder != "none"


V1_MISSING = ["special tokens (bos/eos/unk ids)", "stop rule (stop at EOS)", "encoder (char map or BPE merges)",
              "case folding (lowercase or not)"]


# ---- the architecture's tensor list -----------------------------------------------------------
def expected_tensors(h: SmdHeader) -> list[tuple[str, int, tuple[int, ...]]]:
    """(name, dtype code, shape) of every tensor, in the order the table must list them."""
    V, D, F, T, L = h.vocab_size, h.dim, h.ffn_hidden, h.max_seq_len, h.n_layers
    half = h.head_dim // 2
    if h.scheme == "float32":
        f = 4
        out = [("tok_emb", f, (V, D))]
        if h.pos == "learned":
            out.append(("pos_emb", f, (T, D)))
        if h.pos == "rope":
            out += [("rope.cos", f, (T, half)), ("rope.sin", f, (T, half))]
        for i in range(L):
            p = f"layers.{i}."
            out += [(p + "attn_norm", f, (D,))] + [(p + w, f, (D, D)) for w in ("wq", "wk", "wv", "wo")]
            out += [(p + "ffn_norm", f, (D,)), (p + "w1", f, (F, D))]
            if h.activation == "swiglu":
                out.append((p + "w3", f, (F, D)))
            out.append((p + "w2", f, (D, F)))
        out.append(("final_norm", f, (D,)))
        if not h.tied:
            out.append(("head", f, (V, D)))
        return out
    i8, i16, i32, u16 = 1, 2, 3, 5
    out = [("exp_lut", u16, (ie.EXP_LUT_SIZE,)), ("tok_emb", i8, (V, D)), ("tok_emb.rq", i32, (V, 2))]
    if h.pos == "learned":
        out += [("pos_emb", i8, (T, D)), ("pos_emb.rq", i32, (T, 2))]
    if h.pos == "rope":
        out += [("rope.cos", i16, (T, half)), ("rope.sin", i16, (T, half))]
    for i in range(L):
        p = f"layers.{i}."
        out += [(p + "consts", i32, (8,)), (p + "attn_norm", i16, (D,))]
        for w in ("wq", "wk", "wv", "wo"):
            out += [(p + w, i8, (D, D)), (p + w + ".rq", i32, (D, 2))]
        out += [(p + "ffn_norm", i16, (D,)), (p + "w1", i8, (F, D)), (p + "w1.rq", i32, (F, 2))]
        if h.activation == "swiglu":
            out += [(p + "w3", i8, (F, D)), (p + "w3.rq", i32, (F, 2))]
        out += [(p + "act_lut", i8, (256,)), (p + "w2", i8, (D, F)), (p + "w2.rq", i32, (D, 2))]
    out.append(("final_norm", i16, (D,)))
    if not h.tied:
        out.append(("head", i8, (V, D)))
    out.append(("head.rq", i32, (V, 2)))
    return out


def check_header(h: SmdHeader) -> None:
    """Architecture limits of the format (both schemes) and the int8 scheme's 32-bit bounds."""
    def need(ok, what):
        if not ok:
            raise FormatError(f"inconsistent header: {what}")
    need(2 <= h.vocab_size <= ie.MAX_VOCAB, f"vocab_size={h.vocab_size} not in [2, {ie.MAX_VOCAB}]")
    need(1 <= h.dim <= ie.MAX_DIM, f"dim={h.dim} not in [1, {ie.MAX_DIM}]")
    need(1 <= h.n_layers <= 64, f"n_layers={h.n_layers} not in [1, 64]")
    need(1 <= h.n_heads <= 256 and h.dim % h.n_heads == 0, f"n_heads={h.n_heads} must divide dim={h.dim}")
    need(1 <= h.ffn_hidden <= ie.MAX_INNER, f"ffn_hidden={h.ffn_hidden} not in [1, {ie.MAX_INNER}]")
    need(1 <= h.max_seq_len <= ie.MAX_SEQ, f"max_seq_len={h.max_seq_len} not in [1, {ie.MAX_SEQ}]")
    need(h.pos != "rope" or h.head_dim % 2 == 0, f"pos=rope needs an even head size, got {h.head_dim}")
    if h.scheme == "int8":
        need(6 <= h.logit_frac <= 16, f"logit_frac={h.logit_frac} not in [6, 16]")
        need(1 <= h.eps_q <= (1 << 24), f"eps_q={h.eps_q} not in [1, 2^24]")
        need(0 <= h.final_norm_shift <= 30, f"final_norm_shift={h.final_norm_shift} not in [0, 30]")
    else:
        need(h.logit_frac == 0 and h.eps_q == 0 and h.final_norm_shift == 0,
             "float32 models have logit_frac, eps_q and final_norm_shift 0")


# ---- writer -----------------------------------------------------------------------------------
def encode_vocab(vocab: list[bytes]) -> bytes:
    out = bytearray()
    for i, tok in enumerate(vocab):
        if len(tok) > 255:
            raise ValueError(f"token {i} has {len(tok)} bytes; the format stores at most 255 bytes per token")
        out += bytes([len(tok)]) + tok
    return bytes(out)


def pack_smd(header: SmdHeader, tensors: dict[str, np.ndarray], vocab: list[bytes], text: TextSpec | None = None,
             version: int = VERSION) -> bytes:
    """The file's bytes. `tensors` must hold exactly the architecture's tensors (any order); `text`
    the special tokens and encoder (version 2; default: none of them); version 1 has no text section."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}")
    text = TextSpec() if text is None else text
    vocab_blob = encode_vocab(vocab)
    if len(vocab) != header.vocab_size:
        raise ValueError(f"vocabulary has {len(vocab)} tokens, header says vocab_size={header.vocab_size}")
    spec = expected_tensors(header)
    names = [n for n, _, _ in spec]
    if set(tensors) != set(names):
        raise ValueError(f"tensor names differ from the architecture's: missing {sorted(set(names) - set(tensors))}, "
                         f"unexpected {sorted(set(tensors) - set(names))}")
    header = SmdHeader(**{**{f.name: getattr(header, f.name) for f in fields(header)},
                          "n_tensors": len(spec), "vocab_bytes": len(vocab_blob)})
    check_header(header)
    table, payload = bytearray(), bytearray()
    for name, code, shape in spec:
        arr = np.asarray(tensors[name])
        if tuple(arr.shape) != shape:
            raise ValueError(f"tensor {name}: shape {arr.shape}, expected {shape}")
        data = np.ascontiguousarray(arr.astype(DTYPES[code], casting="unsafe")).tobytes()
        if code != 4 and not np.array_equal(arr.astype(np.int64).ravel(), np.frombuffer(data, DTYPES[code]).astype(np.int64)):
            raise ValueError(f"tensor {name}: values do not fit {DTYPE_NAMES[code]}")
        offset = len(payload)
        payload += data + b"\0" * (-len(data) % 4)
        s = shape + (1,) * (2 - len(shape))
        table += ENTRY.pack(name.encode(), code, len(shape), s[0], s[1], offset, len(data))
    words = header.words()
    if version >= 2:
        words += text.words()
        vocab_blob += text.pack()
    elif text != TextSpec():
        raise ValueError("a version-1 file cannot carry special tokens or an encoder")
    head = struct.pack(f"<{len(words)}I", *words) + bytes(table) + vocab_blob
    head += b"\0" * (-len(head) % 4)
    rest = struct.pack("<III", version, len(head), len(payload)) + struct.pack("<I", 0)
    header_crc = zlib.crc32(rest + head)
    payload_crc = zlib.crc32(payload)
    return MAGIC + struct.pack("<II", header_crc, payload_crc) + rest + head + bytes(payload)


def write_smd(path, header: SmdHeader, tensors: dict[str, np.ndarray], vocab: list[bytes],
              text: TextSpec | None = None, version: int = VERSION) -> int:
    """Write atomically; returns the file size in bytes."""
    from ..provenance import atomic_write_bytes
    data = pack_smd(header, tensors, vocab, text, version)
    atomic_write_bytes(path, data)
    return len(data)


# ---- reader -----------------------------------------------------------------------------------
def read_smd(path) -> SmdModel:
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE:
        raise FormatError(f"{path}: {size} bytes is larger than any model file ({MAX_FILE})")
    return parse_smd(path.read_bytes())


def _header_from_words(w: list[int]) -> SmdHeader:
    scheme = _inv(SCHEMES).get(w[0])
    act = _inv(ie.ACT_CODES).get(w[6])
    pos = _inv(ie.POS_CODES).get(w[7])
    if scheme is None:
        raise FormatError(f"inconsistent header: unknown scheme code {w[0]}")
    if act is None:
        raise FormatError(f"inconsistent header: unknown activation code {w[6]}")
    if pos is None:
        raise FormatError(f"inconsistent header: unknown pos code {w[7]}")
    if w[8] not in (0, 1):
        raise FormatError(f"inconsistent header: tied must be 0 or 1, got {w[8]}")
    if w[15] != 0:
        raise FormatError(f"inconsistent header: reserved word 15 must be 0, got {w[15]}")
    return SmdHeader(scheme, w[1], w[2], w[3], w[4], w[5], act, pos, bool(w[8]), w[9],
                     w[12], w[13], w[14], w[10], w[11])


def _decode_vocab(blob: bytes, n: int) -> list[bytes]:
    out, i = [], 0
    for t in range(n):
        if i >= len(blob):
            raise FormatError(f"vocabulary ends after {t} of {n} tokens")
        ln = blob[i]
        if i + 1 + ln > len(blob):
            raise FormatError(f"vocabulary token {t}: bad length {ln}")
        out.append(bytes(blob[i + 1:i + 1 + ln]))
        i += 1 + ln
    if i != len(blob):
        raise FormatError(f"vocabulary has {len(blob) - i} bytes after its {n} tokens")
    return out


def parse_smd(data: bytes) -> SmdModel:
    if len(data) < PREAMBLE_SIZE:
        raise FormatError(f"truncated file: {len(data)} bytes, the preamble alone is {PREAMBLE_SIZE}")
    magic, header_crc, payload_crc, version, hsize, psize, reserved = PREAMBLE.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError(f"wrong magic {magic!r}: not a Starmind model file (expected {MAGIC!r})")
    if version not in VERSIONS:
        raise FormatError(f"unknown format version {version} (this reader knows versions 1 and 2)")
    if reserved != 0:
        raise FormatError(f"preamble reserved word must be 0, got {reserved}")
    if hsize % 4 or psize % 4:
        raise FormatError(f"header_size={hsize} and payload_size={psize} must be multiples of 4")
    expected = PREAMBLE_SIZE + hsize + psize
    if len(data) < expected:
        raise FormatError(f"truncated file: {len(data)} bytes, the preamble announces {expected}")
    if len(data) > expected:
        raise FormatError(f"{len(data) - expected} unexpected bytes after the payload (file {len(data)}, expected {expected})")
    head = data[16:PREAMBLE_SIZE + hsize]
    if zlib.crc32(head) != header_crc:
        raise FormatError("header checksum mismatch (CRC-32 of bytes 16..payload start)")
    payload = data[PREAMBLE_SIZE + hsize:]
    if zlib.crc32(payload) != payload_crc:
        raise FormatError("payload checksum mismatch (CRC-32 of the payload)")
    n_words = HEADER_WORDS_V[version]
    fixed = 4 * n_words
    if hsize < fixed:
        raise FormatError(f"inconsistent header: header_size={hsize} < {fixed}")
    words = list(struct.unpack_from(f"<{n_words}I", data, PREAMBLE_SIZE))
    h = _header_from_words(words[:HEADER_WORDS])
    check_header(h)
    spec = expected_tensors(h)
    if h.n_tensors != len(spec):
        raise FormatError(f"inconsistent header: n_tensors={h.n_tensors}, the architecture has {len(spec)}")
    table_end = fixed + ENTRY_SIZE * h.n_tensors
    vocab_end = table_end + h.vocab_bytes
    text_end = vocab_end + (section_bytes(words[HEADER_WORDS:]) if version >= 2 else 0)
    if text_end > hsize or hsize - text_end >= 4:
        raise FormatError(f"inconsistent header: table, vocabulary and encoder end at {text_end}, header_size={hsize}")
    base = PREAMBLE_SIZE
    if any(data[base + text_end:base + hsize]):
        raise FormatError("header padding must be zero")
    tensors = _read_tensors(data, base + fixed, spec, payload)
    vocab = _decode_vocab(data[base + table_end:base + vocab_end], h.vocab_size)
    text, missing = TextSpec(), list(V1_MISSING)
    if version >= 2:
        text = parse_text(words[HEADER_WORDS:], bytes(data[base + vocab_end:base + text_end]), vocab, _raise)
        missing = []
    if h.scheme == "int8":
        check_int8_values(h, tensors)
    else:
        check_float_values(tensors)
    check_rope(h, tensors)
    return SmdModel(h, tensors, vocab, text, version, missing)


def _raise(msg: str):
    raise FormatError(msg)


def _read_tensors(data: bytes, at: int, spec, payload: bytes) -> dict[str, np.ndarray]:
    tensors, end_prev = {}, 0
    for k, (name, code, shape) in enumerate(spec):
        raw, dcode, ndim, s0, s1, offset, nbytes = ENTRY.unpack_from(data, at + k * ENTRY_SIZE)
        got = raw.rstrip(b"\0")
        if got != name.encode() or b"\0" in got:
            raise FormatError(f"tensor table entry {k}: name {got!r}, expected {name!r}")
        if dcode != code:
            raise FormatError(f"tensor {name}: dtype code {dcode}, expected {code} ({DTYPE_NAMES[code]})")
        want = shape + (1,) * (2 - len(shape))
        if ndim != len(shape) or (s0, s1) != want:
            raise FormatError(f"tensor {name}: shape {(s0, s1)[:ndim] if ndim <= 2 else (s0, s1)}, "
                              f"expected {shape} from the header")
        if nbytes != int(np.prod(shape)) * DTYPES[code].itemsize:
            raise FormatError(f"tensor {name}: {nbytes} bytes does not match its shape {shape}")
        if offset % 4:
            raise FormatError(f"tensor {name}: offset {offset} is not a multiple of 4")
        if offset < end_prev:
            raise FormatError(f"tensor {name}: offset {offset} overlaps the previous tensor (ends at {end_prev})")
        if offset + nbytes > len(payload):
            raise FormatError(f"tensor {name}: bytes {offset}..{offset + nbytes} outside the payload ({len(payload)})")
        if offset != -(-end_prev // 4) * 4:
            raise FormatError(f"tensor {name}: offset {offset}, tensors are packed: expected {-(-end_prev // 4) * 4} "
                              "(the previous tensor's end rounded up to 4)")
        if any(payload[end_prev:offset]):
            raise FormatError(f"payload padding before tensor {name} must be zero")
        tensors[name] = np.frombuffer(payload, DTYPES[code], count=int(np.prod(shape)), offset=offset).reshape(shape)
        end_prev = offset + nbytes
    if -(-end_prev // 4) * 4 != len(payload):
        raise FormatError(f"payload has {len(payload)} bytes, its tensors end at {end_prev}")
    if any(payload[end_prev:]):
        raise FormatError("payload padding after the last tensor must be zero")
    return tensors


def check_int8_values(h: SmdHeader, t: dict[str, np.ndarray]) -> None:
    """Value ranges the integer engine's 32-bit bounds assume (FORMAT.md, "Bounds")."""
    def need(ok, what):
        if not ok:
            raise FormatError(f"value out of range: {what}")
    for name, a in t.items():
        if a.dtype == np.int8:
            need(a.size == 0 or a.min() >= -127, f"{name} contains -128 (int8 values must be in [-127, 127])")
        if name.endswith(".rq"):
            need(((a[:, 0] >= 0) & (a[:, 0] <= 65535)).all(), f"{name}: multiplier not in [0, 65535]")
            need(((a[:, 1] >= 0) & (a[:, 1] <= 30)).all(), f"{name}: shift not in [0, 30]")
        if name.endswith("_norm"):
            need(a.min() >= -32767, f"{name} contains -32768")
        if name.endswith(".consts"):
            need(0 <= a[0] <= 30 and 0 <= a[1] <= 30, f"{name}: norm shifts not in [0, 30]")
            need(0 <= a[2] <= 65535 and 0 <= a[3] <= 30, f"{name}: attention requant (m, s) out of range")
            need(0 <= a[4] <= 65535 and 0 <= a[5] <= 30, f"{name}: swiglu requant (m, s) out of range")
            need(a[6] == 0 and a[7] == 0, f"{name}: reserved words must be 0")
    need(np.array_equal(t["exp_lut"], ie.exp_lut()), "exp_lut differs from round(32768 * exp(-i/64))")
    if h.pos == "rope":
        for k in ("rope.cos", "rope.sin"):
            need(np.abs(t[k].astype(np.int32)).max(initial=0) <= ie.ROPE_ONE, f"{k}: |value| > 16384")


def check_float_values(t: dict[str, np.ndarray]) -> None:
    """float32 files: every value finite (no NaN, no infinity)."""
    for name, a in t.items():
        if a.dtype == np.float32 and not np.isfinite(a).all():
            raise FormatError(f"non-finite value: {name} contains NaN or infinity")


def rope_formula(head_dim: int, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of p * 10000^(-2j/head_dim) in float64 (FORMAT.md 4.4)."""
    inv = 10000.0 ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    ang = np.arange(max_seq_len, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def check_rope(h: SmdHeader, t: dict[str, np.ndarray]) -> None:
    """The rotary tables equal their formula: int8 within 1 Q14 unit, float32 within 2^-20."""
    if h.pos != "rope":
        return
    for key, ref in zip(("rope.cos", "rope.sin"), rope_formula(h.head_dim, h.max_seq_len)):
        got = t[key].astype(np.float64)
        if h.scheme == "int8":
            bad = np.abs(got - ie.ROPE_ONE * ref) > 1.0
        else:
            bad = ~(np.abs(got - ref) <= 2.0 ** -20)
        if bad.any():
            p, j = np.argwhere(bad)[0]
            raise FormatError(f"rope table: {key}[{p}, {j}] = {t[key][p, j]} differs from its formula")
