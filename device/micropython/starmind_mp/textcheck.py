"""Load-time checks of a version-2 file's text section (device/FORMAT.md 2.4 and 11): special tokens,
flags, case folding, character classes and merges against the vocabulary.

smd.load calls :func:`check` on every version-2 file. It lives apart from :mod:`.tokenizer` (the
encoder) so that a run which never encodes text does not keep the encoder's code in the heap
(about 5 KB on the RP2040).
"""
import struct


def utf8_codepoints(data):
    """Code points of UTF-8 bytes; ValueError on invalid UTF-8 (overlong, surrogate, > U+10FFFF)."""
    out, i, n = [], 0, len(data)
    while i < n:
        c = data[i]
        if c < 0x80:
            out.append(c)
            i += 1
            continue
        if c & 0xE0 == 0xC0:
            k, c, lo = 1, c & 0x1F, 0x80
        elif c & 0xF0 == 0xE0:
            k, c, lo = 2, c & 0x0F, 0x800
        elif c & 0xF8 == 0xF0:
            k, c, lo = 3, c & 0x07, 0x10000
        else:
            raise ValueError("invalid UTF-8 at byte %d" % i)
        if i + k >= n:
            raise ValueError("invalid UTF-8 at byte %d" % i)
        for j in range(1, k + 1):
            b = data[i + j]
            if b & 0xC0 != 0x80:
                raise ValueError("invalid UTF-8 at byte %d" % i)
            c = (c << 6) | (b & 0x3F)
        if c < lo or c > 0x10FFFF or 0xD800 <= c < 0xE000:
            raise ValueError("invalid UTF-8 at byte %d" % i)
        out.append(c)
        i += k + 1
    return out


def _err(msg):
    raise ValueError(msg)


def check(m):
    """FORMAT.md 2.4: special tokens, flags and the encoder section against the vocabulary."""
    V = m.vocab_size
    seen = []
    for what, v in (("bos_id", m.bos_id), ("eos_id", m.eos_id), ("unk_id", m.unk_id)):
        if v is None:
            continue
        if v >= V:
            _err("special tokens: %s=%d not a token id (vocab_size=%d) or 0xFFFFFFFF (none)" % (what, v, V))
        if v in seen:
            _err("special tokens: %s=%d is also another special token" % (what, v))
        if m.token_bytes(v):
            _err("special tokens: %s=%d must be a 0-byte token" % (what, v))
        seen.append(v)
    if m.flags & ~3:
        _err("special tokens: unknown flag bits 0x%x" % m.flags)
    if m.stop_at_eos and m.eos_id is None:
        _err("special tokens: stop_at_eos is set but the file has no eos_id")
    if m.encoder_code > 2:
        _err("encoder: unknown encoder code %d" % m.encoder_code)
    nf, nc, nm = m.n_fold, m.n_classes, m.n_merges
    if nf and not m.lowercase:
        _err("encoder: %d folding entries but the lowercase flag is not set" % nf)
    if m.encoder != "bpe" and (nm or nc):
        _err("encoder: %s encoder with %d merges and %d class ranges (bpe only)" % (m.encoder, nm, nc))
    if m.encoder == "none" and nf:
        _err("encoder: folding table without an encoder")
    prev = -1
    for k in range(nf):
        a, b = struct.unpack_from("<II", m.fold, 8 * k)
        if a > 0x10FFFF or b > 0x10FFFF or 0xD800 <= a < 0xE000 or 0xD800 <= b < 0xE000:
            _err("encoder: folding entry %d is not a Unicode scalar value" % k)
        if a < prev:
            _err("encoder: folding entry %d is out of order (sorted by code point)" % k)
        prev = a
    prev = -1
    for k in range(nc):
        lo, w = struct.unpack_from("<II", m.classes, 8 * k)
        hi, c = w >> 8, w & 255
        if not lo <= hi <= 0x10FFFF or c not in (1, 2, 3) or lo <= prev:
            _err("encoder: class range %d is not sorted, disjoint and valid" % k)
        prev = hi
    special = (m.bos_id, m.eos_id, m.unk_id)
    if m.encoder == "char":
        have = {}
        for t in range(V):
            if t in special:
                continue
            b = m.token_bytes(t)
            try:
                ok = len(utf8_codepoints(b)) == 1
            except ValueError:
                ok = False
            if not ok or b in have:
                _err("encoder: char encoder needs one distinct UTF-8 character per token; token %d is %r" % (t, b))
            have[b] = t
    if m.encoder == "bpe":
        single = bytearray(256)
        for t in range(V):
            b = m.token_bytes(t)
            if len(b) == 1:
                single[b[0]] += 1
        if any(x != 1 for x in single):
            _err("encoder: bpe needs exactly one single-byte token for each of the 256 byte values")
        pairs, results = {}, {}
        for k in range(nm):
            left, right, res = struct.unpack_from("<HHH", m.merges, 6 * k)
            if max(left, right, res) >= V or not m.token_bytes(left) or not m.token_bytes(right) \
                    or m.token_bytes(res) != m.token_bytes(left) + m.token_bytes(right):
                _err("encoder: merge %d (%d, %d) -> %d does not join the two tokens' bytes" % (k, left, right, res))
            if (left, right) in pairs or res in results:
                _err("encoder: merge %d (%d, %d) -> %d repeats a pair or a result" % (k, left, right, res))
            pairs[(left, right)] = k
            results[res] = k
