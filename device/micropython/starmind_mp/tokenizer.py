"""The prompt encoder of format version 2 (device/FORMAT.md section 11), for MicroPython and CPython.

    model = smd.load("/models/story.smd")
    ids = tokenizer.encode(model, "Once upon a time")     # the same ids as the host tokenizer

char encoder: each code point (after case folding) is the token with its UTF-8 bytes, else
unk_id. bpe encoder: GPT-2 pre-tokenization over the file's class table, then the byte tokens
of each piece merged by rank. The loader checks every version-2 file's encoder section (:mod:`.textcheck`) without importing
this module, which is only needed to encode text.
"""
import struct

from .textcheck import check, utf8_codepoints  # noqa: F401 (check: part of this module's API)

NO_ID = 0xFFFFFFFF
OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
CONTRACTIONS = ((0x73,), (0x74,), (0x72, 0x65), (0x76, 0x65), (0x6D,), (0x6C, 0x6C), (0x64,))  # s t re ve m ll d


def utf8_bytes(c):
    if c < 0x80:
        return bytes((c,))
    if c < 0x800:
        return bytes((0xC0 | c >> 6, 0x80 | (c & 63)))
    if c < 0x10000:
        return bytes((0xE0 | c >> 12, 0x80 | (c >> 6 & 63), 0x80 | (c & 63)))
    return bytes((0xF0 | c >> 18, 0x80 | (c >> 12 & 63), 0x80 | (c >> 6 & 63), 0x80 | (c & 63)))


def _folded(m, cps):
    if not m.lowercase or not m.n_fold:
        return cps
    out, fold, n = [], m.fold, m.n_fold
    for c in cps:
        lo, hi = 0, n
        while lo < hi:  # first entry with from >= c
            mid = (lo + hi) // 2
            if struct.unpack_from("<I", fold, 8 * mid)[0] < c:
                lo = mid + 1
            else:
                hi = mid
        if lo == n or struct.unpack_from("<I", fold, 8 * lo)[0] != c:
            out.append(c)
            continue
        while lo < n and struct.unpack_from("<I", fold, 8 * lo)[0] == c:
            out.append(struct.unpack_from("<I", fold, 8 * lo + 4)[0])
            lo += 1
    return out


def _class(m, c):
    lo, hi = 0, m.n_classes
    while lo < hi:  # first range starting after c
        mid = (lo + hi) // 2
        if struct.unpack_from("<I", m.classes, 8 * mid)[0] <= c:
            lo = mid + 1
        else:
            hi = mid
    if not lo:
        return OTHER
    w = struct.unpack_from("<I", m.classes, 8 * (lo - 1) + 4)[0]
    return w & 255 if c <= w >> 8 else OTHER


def pretokenize(m, cps):
    """GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?L+| ?N+| ?[^SLN]+|S+(?!S^)|S+` over code points."""
    cl = [_class(m, c) for c in cps]
    n, i, out = len(cps), 0, []
    while i < n:
        j = i
        if cps[i] == 0x27:
            for w in CONTRACTIONS:
                if tuple(cps[i + 1:i + 1 + len(w)]) == w:
                    j = i + 1 + len(w)
                    break
        if j == i:
            s = i + 1 if cps[i] == 0x20 and i + 1 < n and cl[i + 1] != SPACE else i
            if cl[s] != SPACE:
                j = s + 1
                while j < n and cl[j] == cl[s]:
                    j += 1
            else:
                k = i
                while k < n and cl[k] == SPACE:
                    k += 1
                j = k if k == n or k - i == 1 else k - 1
        out.append(cps[i:j])
        i = j
    return out


def _ranks(m):
    r = getattr(m, "_merge_ranks", None)
    if r is None:
        r = {}
        for k in range(m.n_merges):
            left, right, res = struct.unpack_from("<HHH", m.merges, 6 * k)
            r[(left << 16) | right] = (k, res)
        m._merge_ranks = r
    return r


def encode(m, text):
    """Ids of ``text`` (str or UTF-8 bytes) by the file's encoder; no BOS/EOS added."""
    if m.encoder == "none":
        raise ValueError("this model file has no encoder (version 1, or encoder none): give token ids")
    data = text.encode("utf-8") if isinstance(text, str) else text
    cps = _folded(m, utf8_codepoints(data))
    if m.encoder == "char":
        index = getattr(m, "_char_index", None)
        if index is None:
            special = (m.bos_id, m.eos_id, m.unk_id)
            index = m._char_index = {m.token_bytes(t): t for t in range(m.vocab_size) if t not in special}
        out = []
        for c in cps:
            t = index.get(utf8_bytes(c), m.unk_id)
            if t is None:
                raise ValueError("character U+%04X is not in the vocabulary and the file has no unk_id" % c)
            out.append(t)
        return out
    byte_id = [0] * 256
    for t in range(m.vocab_size):
        b = m.token_bytes(t)
        if len(b) == 1:
            byte_id[b[0]] = t
    ranks, out = _ranks(m), []
    for piece in pretokenize(m, cps):
        ids = []
        for c in piece:
            for b in utf8_bytes(c):
                ids.append(byte_id[b])
        while len(ids) > 1:  # the adjacent pair of lowest rank, leftmost first
            best, at = None, -1
            for k in range(len(ids) - 1):
                r = ranks.get((ids[k] << 16) | ids[k + 1])
                if r is not None and (best is None or r[0] < best[0]):
                    best, at = r, k
            if best is None:
                break
            ids[at:at + 2] = [best[1]]
        out += ids
    return out
