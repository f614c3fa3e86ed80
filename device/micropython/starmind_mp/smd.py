"""Streaming loader of `.smd` model files (device/FORMAT.md), for MicroPython and CPython.

    model = load("/models/ref.smd")
    model.dim, model.tensors["layers.0.wq"]      # one bytearray per tensor, raw little-endian

The file is read front to back once: the preamble, the header (architecture,
tensor table, vocabulary), then every tensor with ``readinto`` straight into
its own preallocated bytearray, in chunks, while the CRC-32 of the header and of
the payload are computed incrementally. Requantisation tables (int32 (m, s) pairs
in the file) are kept as uint16 pairs (``dtypes[name] == 5``): half their RAM. Sizes are checked against the file's
length before anything is allocated; a wrong magic, an unknown version, a bad
checksum or an inconsistent table raises ValueError naming what is wrong.
"""
import struct
from array import array

try:
    from binascii import crc32 as _crc32
except ImportError:  # ports without binascii.crc32: a table-driven CRC-32 (IEEE, as zlib)
    _crc32 = None

MAGIC = b"STARMIND"
VERSION = 2                                         # the newest version this runtime reads (and 1)
PREAMBLE_SIZE = 32
HEADER_WORDS = 16                                   # the architecture words; version 2 adds TEXT_WORDS
TEXT_WORDS = 8
NO_ID = 0xFFFFFFFF
ENCODERS = ("none", "char", "bpe")
V1_MISSING = ("special tokens (bos/eos/unk ids)", "stop rule (stop at EOS)", "encoder (char map or BPE merges)",
              "case folding (lowercase or not)")
SINGLE_FLOAT = 1.0 + 2.0 ** -30 == 1.0              # MicroPython on the RP2040: single-precision floats
ENTRY_SIZE = 48
NAME_LEN = 24
CHUNK = 2048
RQ_CHUNK = 256                                      # bytes of int32 (m, s) pairs read at a time
DTYPE_SIZE = {1: 1, 2: 2, 3: 4, 4: 4, 5: 2}          # int8, int16, int32, float32, uint16
ACTIVATIONS = ("silu", "gelu", "swiglu")
POSITIONS = ("none", "learned", "rope")
SCHEMES = ("float32", "int8")

_TABLE = None


def _crc_table():
    global _TABLE
    if _TABLE is None:
        _TABLE = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            _TABLE.append(c)
    return _TABLE


def crc32(data, crc=0):
    """zlib's CRC-32 of ``data`` continuing from ``crc`` (binascii's where the port has it)."""
    if _crc32 is not None:
        return _crc32(data, crc) & 0xFFFFFFFF
    t = _crc_table()
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class Model:
    """Architecture fields, tensors (name -> bytearray) and the vocabulary of one model file."""

    def __init__(self, words, head, vocab_at, version=1):
        self.scheme = SCHEMES[words[0]]
        (self.vocab_size, self.dim, self.n_layers, self.n_heads, self.ffn_hidden) = words[1:6]
        self.activation = ACTIVATIONS[words[6]]
        self.pos = POSITIONS[words[7]]
        self.tied = bool(words[8])
        self.max_seq_len = words[9]
        self.n_tensors, self.vocab_bytes = words[10], words[11]
        self.logit_frac, self.eps_q, self.final_norm_shift = words[12], words[13], words[14]
        self.head_dim = self.dim // self.n_heads
        self.tensors = {}
        self.shapes = {}
        self.dtypes = {}
        self._offsets = None
        self.version = version
        t = words[HEADER_WORDS:] if version >= 2 else (NO_ID, NO_ID, NO_ID, 0, 0, 0, 0, 0)
        nid = lambda v: None if v == NO_ID else v  # noqa: E731
        self.bos_id, self.eos_id, self.unk_id = nid(t[0]), nid(t[1]), nid(t[2])
        self.flags = t[3]
        self.stop_at_eos, self.lowercase = bool(t[3] & 1), bool(t[3] & 2)
        self.encoder_code = t[4]
        self.encoder = ENCODERS[t[4]] if t[4] < len(ENCODERS) else "?"
        self.n_merges, self.n_fold, self.n_classes = t[5], t[6], t[7]
        self.text_bytes = 8 * self.n_fold + 8 * self.n_classes + 6 * self.n_merges
        self._text(head, vocab_at)
        self.missing = list(V1_MISSING) if version < 2 else []

    def _text(self, head, vocab_at):
        """The vocabulary and the encoder tables: ``head[vocab_at:]`` (the header, or the copy of its text
        section that the loader keeps once the tensor table is read)."""
        self._head, self._vocab_at = head, vocab_at
        at = vocab_at + self.vocab_bytes
        self.fold = memoryview(head)[at:at + 8 * self.n_fold]
        at += 8 * self.n_fold
        self.classes = memoryview(head)[at:at + 8 * self.n_classes]
        at += 8 * self.n_classes
        self.merges = memoryview(head)[at:at + 6 * self.n_merges]

    def _drop_table(self):
        """Keep only the header's text section (vocabulary, encoder): the tensor table is read."""
        if self._vocab_at:
            shift = self._vocab_at
            self._text(bytearray(memoryview(self._head)[shift:shift + self.vocab_bytes + self.text_bytes]), 0)
            offs = self._offsets
            for t in range(len(offs)):
                offs[t] -= shift

    def _index_vocab(self):
        offs, i, end = [], self._vocab_at, self._vocab_at + self.vocab_bytes
        for t in range(self.vocab_size):
            if i >= end or i + 1 + self._head[i] > end:  # 0 bytes: a special token that prints nothing
                raise ValueError("vocabulary token %d has a bad length" % t)
            offs.append(i)
            i += 1 + self._head[i]
        if i != end:
            raise ValueError("vocabulary has %d bytes after its %d tokens" % (end - i, self.vocab_size))
        self._offsets = offs

    def token_bytes(self, token):
        """The bytes of one token (the tokenizer's vocabulary stored in the file)."""
        i = self._offsets[token]
        return bytes(self._head[i + 1:i + 1 + self._head[i]])

    def decode(self, tokens):
        return b"".join(self.token_bytes(t) for t in tokens)


def _read_exactly(f, buf, crc):
    """readinto ``buf`` in chunks, updating the running CRC; raises on a short file."""
    n = len(buf)
    got = f.readinto(buf)  # usually the whole tensor at once: no slices, no garbage between tensors
    if got == n:
        return crc32(buf, crc)
    got = got or 0
    if got:
        crc = crc32(memoryview(buf)[:got], crc)
    mv = memoryview(buf)
    while got < n:
        k = f.readinto(mv[got:got + CHUNK] if n - got > CHUNK else mv[got:])
        if not k:
            raise ValueError("truncated file: a tensor ends past the end of the file")
        crc = crc32(mv[got:got + k], crc)
        got += k
    return crc


def is_rq(name, dtype, ndim, s1):
    """A requantisation table (FORMAT.md: int32 [rows, 2], (m, s) with m in [0, 65535], s in [0, 30])."""
    return dtype == 3 and ndim == 2 and s1 == 2 and name.endswith(".rq")


def _read_rq(f, buf, crc, pairs, name):
    """Read an int32 (m, s) table through ``pairs`` and keep it as uint16 (m, s) pairs in ``buf``
    (little-endian: each int32's low half). Returns (crc, None), or (crc, message) for the first row
    outside the format's ranges (raised once the payload's checksum has passed: a corrupted file
    is reported as such)."""
    n, got, mv, bad = 2 * len(buf), 0, memoryview(pairs), None
    while got < n:
        k = min(n - got, len(pairs))
        r = 0
        while r < k:
            m = f.readinto(mv[r:k])
            if not m:
                raise ValueError("truncated file: tensor %s ends past the end of the file" % name)
            r += m
        crc = crc32(mv[:k], crc)
        o = got >> 1
        for i in range(0, k, 8):
            if bad is None and (pairs[i + 2] | pairs[i + 3] | pairs[i + 6] | pairs[i + 7] or pairs[i + 4] > 30):
                bad = "tensor %s: row %d has (m, s) outside [0, 65535] x [0, 30]" % (name, (got + i) >> 3)
            buf[o] = pairs[i]
            buf[o + 1] = pairs[i + 1]
            buf[o + 2] = pairs[i + 4]
            buf[o + 3] = pairs[i + 5]
            o += 4
        got += k
    return crc, bad


def _file_size(path):
    import os
    return os.stat(path)[6]


def _skip(f, n, crc, scratch):
    """Read n bytes through a small scratch buffer (CRC only): a tensor left in flash."""
    mv = memoryview(scratch)
    while n > 0:
        k = f.readinto(mv[:min(n, len(scratch))])
        if not k:
            raise ValueError("truncated file: a tensor ends past the end of the file")
        crc = crc32(mv[:k], crc)
        n -= k
    return crc


def is_matrix(name, dtype, ndim):
    """The int8 weight matrices, which the flash mode leaves in the file."""
    return dtype == 1 and ndim == 2


def _collect():
    try:
        import gc
        gc.collect()
        return gc.mem_free()
    except (ImportError, AttributeError):  # CPython
        return None


_heap_free = _collect


def load(path, weights="ram", reserve=None):
    """Read and check a model file; returns a :class:`Model`.

    weights: "ram" (every tensor in its own bytearray), "flash" (the int8 matrices stay
    in the file; the engine streams them in blocks each token; everything is still read
    once for the CRC), or "auto" (flash when the matrices would take more than 60% of the
    free heap; ram where the port cannot tell, e.g. CPython).
    reserve: called with the model once its table is checked and before any tensor is
    allocated; what it returns is kept as ``model.reserved`` (the engine's buffers, placed
    while the heap is still one free block: engine.reserve).
    """
    if weights not in ("ram", "flash", "auto"):
        raise ValueError("weights must be 'ram', 'flash' or 'auto', got %r" % (weights,))
    size = _file_size(path)
    with open(path, "rb") as f:
        pre = f.read(PREAMBLE_SIZE)
        if len(pre) < PREAMBLE_SIZE:
            raise ValueError("truncated file: %d bytes, the preamble alone is %d" % (len(pre), PREAMBLE_SIZE))
        magic, header_crc, payload_crc, version, hsize, psize, reserved = struct.unpack("<8sIIIIII", pre)
        if magic != MAGIC:
            raise ValueError("wrong magic %r: not a Starmind model file" % (magic,))
        if version not in (1, 2):
            raise ValueError("unknown format version %d (this runtime reads versions 1 and 2)" % version)
        n_words = HEADER_WORDS + (TEXT_WORDS if version >= 2 else 0)
        if hsize % 4 or psize % 4 or hsize < 4 * n_words:
            raise ValueError("bad header_size %d / payload_size %d" % (hsize, psize))
        if PREAMBLE_SIZE + hsize + psize != size:
            raise ValueError("file is %d bytes, its preamble announces %d (truncated or padded)"
                             % (size, PREAMBLE_SIZE + hsize + psize))
        head = bytearray(hsize)
        crc = _read_exactly(f, head, crc32(pre[16:]))
        if crc != header_crc:
            raise ValueError("header checksum mismatch (CRC-32): the file is corrupted")
        words = struct.unpack_from("<%dI" % n_words, head, 0)
        if words[0] >= len(SCHEMES) or words[6] >= len(ACTIVATIONS) or words[7] >= len(POSITIONS):
            raise ValueError("inconsistent header: unknown scheme, activation or position code")
        n_tensors = words[10]
        table_at = 4 * n_words
        vocab_at = table_at + ENTRY_SIZE * n_tensors
        text = 8 * words[22] + 8 * words[23] + 6 * words[21] if version >= 2 else 0
        end = vocab_at + words[11] + text
        if end > hsize or hsize - end > 3:
            raise ValueError("inconsistent header: table, vocabulary and encoder end at %d, header_size=%d"
                             % (end, hsize))
        if any(head[end:]):
            raise ValueError("header padding must be zero")
        model = Model(words, head, vocab_at, version)
        model._index_vocab()
        if version >= 2:
            from . import textcheck
            textcheck.check(model)
        model.path = path
        model.offsets = {}
        base = PREAMBLE_SIZE + hsize
        if weights == "auto":
            matrices = 0
            for k in range(n_tensors):
                dtype, ndim, s0, s1 = struct.unpack_from("<4I", head, table_at + k * ENTRY_SIZE + NAME_LEN)
                if is_matrix("", dtype, ndim):
                    matrices += s0 * s1
            free = _heap_free()  # flash when the matrices would take more than 60% of the free heap
            weights = "flash" if free is not None and matrices * 5 > free * 3 else "ram"
        stream = weights == "flash" and words[0] == 1
        model.weights = "flash" if stream else "ram"
        # pass 1: check the table and note each tensor's name, shape and the bytes it will hold in RAM
        names, pos = [], 0
        sizes, offs, nbs = (array("I", bytes(4 * n_tensors)) for _ in range(3))
        for k in range(n_tensors):
            at = table_at + k * ENTRY_SIZE
            name = bytes(head[at:at + NAME_LEN]).rstrip(b"\0").decode()
            dtype, ndim, s0, s1, offset, nbytes = struct.unpack_from("<6I", head, at + NAME_LEN)
            if dtype not in DTYPE_SIZE or nbytes != s0 * s1 * DTYPE_SIZE[dtype]:
                raise ValueError("tensor %s: dtype %d and shape do not match %d bytes" % (name, dtype, nbytes))
            if offset < pos or offset + nbytes > psize:
                raise ValueError("tensor %s: offset %d out of order or outside the payload" % (name, offset))
            if offset != (pos + 3) & ~3:
                raise ValueError("tensor %s: offset %d, tensors are packed: expected %d" % (name, offset, (pos + 3) & ~3))
            names.append(name)
            model.shapes[name] = (s0, s1) if ndim == 2 else (s0,)
            if stream and is_matrix(name, dtype, ndim):
                model.offsets[name] = base + offset
            elif is_rq(name, dtype, ndim, s1):   # (m, s) int32 pairs kept as uint16 pairs: half the RAM
                sizes[k], dtype = nbytes // 2, 5
            else:
                sizes[k] = nbytes
            model.dtypes[name] = dtype
            offs[k], nbs[k] = offset, nbytes
            pos = offset + nbytes
        if psize - pos > 3:
            raise ValueError("payload has %d bytes after its last tensor" % (psize - pos))
        head = None
        model._drop_table()
        model.reserved = None
        if reserve is not None:
            _collect()
            model.reserved = reserve(model)
        # pass 2: the tensors' buffers back to back, with no temporary object between them (the
        # loader's garbage would otherwise leave a hole after each tensor: ~20 KB of unusable heap)
        scratch = bytearray(CHUNK) if stream else None
        pairs = bytearray(RQ_CHUNK)
        pad = bytearray(4)
        bufs = [None] * n_tensors
        _collect()
        for k in range(n_tensors):
            if sizes[k]:
                bufs[k] = bytearray(sizes[k])
        # pass 3: read the payload into them
        crc, pos, bad = 0, 0, None
        for k in range(n_tensors):
            offset, nbytes = offs[k], nbs[k]
            if offset > pos:
                crc = _read_exactly(f, memoryview(pad)[:offset - pos], crc)
            buf, name = bufs[k], names[k]
            if buf is None:
                crc = _skip(f, nbytes, crc, scratch)
            elif model.dtypes[name] == 5 and sizes[k] * 2 == nbytes:     # an int32 (m, s) table
                crc, why = _read_rq(f, buf, crc, pairs, name)
                bad = bad or why
            else:
                crc = _read_exactly(f, buf, crc)
            if buf is not None:
                model.tensors[name] = buf
            bufs[k] = None
            pos = offset + nbytes
        if psize > pos:
            crc = _read_exactly(f, memoryview(pad)[:psize - pos], crc)
        if crc != payload_crc:
            raise ValueError("payload checksum mismatch (CRC-32): the file is corrupted")
        if bad:
            raise ValueError(bad)
    check_values(model)
    return model


def check_values(model):
    """float32 files hold no NaN or infinity; rope tables equal their formula (FORMAT.md 4.4)."""
    if model.scheme == "float32":
        for name, buf in model.tensors.items():
            if model.dtypes[name] == 4:
                for i in range(3, len(buf), 4):
                    if buf[i] & 0x7F == 0x7F and buf[i - 1] & 0x80:
                        raise ValueError("non-finite value: %s contains NaN or infinity" % name)
    if model.pos != "rope":
        return
    import math
    hd, half, fl = model.head_dim, model.head_dim // 2, model.scheme == "float32"
    fmt = "<f" if fl else "<h"
    size = 4 if fl else 2
    for j in range(half):
        inv = 10000.0 ** (-(2 * j) / hd)
        for p in range(model.max_seq_len):
            a = p * inv
            if fl:
                tol = 2.0 ** -12 + p * 2.0 ** -20 if SINGLE_FLOAT else 2.0 ** -20
                ref = (math.cos(a), math.sin(a))
            else:
                tol = 2 + p / 64 if SINGLE_FLOAT else 1.0
                ref = (16384 * math.cos(a), 16384 * math.sin(a))
            for key, r in zip(("rope.cos", "rope.sin"), ref):
                v = struct.unpack_from(fmt, model.tensors[key], (p * half + j) * size)[0]
                if not abs(v - r) <= tol:
                    raise ValueError("rope table: %s[%d, %d] = %s differs from its formula" % (key, p, j, v))
