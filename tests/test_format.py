"""The device model file: round trip, strict rejection of every kind of defect, fuzzing."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from starmind_lib.quant import reference, smd as export
from starmind_lib.quant.smd import FormatError, pack_smd, parse_smd, read_smd

REF = Path(__file__).resolve().parent.parent / "data" / "reference"


@pytest.fixture(scope="module")
def ref_bytes():
    return (REF / "ref_tiny_learned.smd").read_bytes()


def recrc(data: bytes) -> bytes:
    """Recompute both CRCs, so a mutation reaches the structural checks behind them."""
    b = bytearray(data)
    hs = struct.unpack_from("<I", b, 20)[0]
    if 32 + hs <= len(b):
        struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[16:32 + hs])))
        struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[32 + hs:])))
    return bytes(b)


def test_round_trip_every_reference_model():
    for path in sorted(REF.glob("*.smd")) + sorted(REF.glob("v1/*.smd")):
        m = read_smd(path)
        again = pack_smd(m.header, m.tensors, m.vocab, m.text, m.version)
        assert again == path.read_bytes(), path.name
        assert len(m.vocab) == m.header.vocab_size


def test_header_and_tensor_layout(ref_bytes):
    m = parse_smd(ref_bytes)
    h = m.header
    assert (h.scheme, h.dim, h.n_layers, h.pos, h.tied) == ("int8", 8, 1, "learned", True)
    assert ref_bytes[:8] == b"STARMIND"
    assert struct.unpack_from("<I", ref_bytes, 16)[0] == export.VERSION
    names = [n for n, _, _ in export.expected_tensors(h)]
    assert list(m.tensors) == names
    assert m.tensors["tok_emb"].dtype == np.int8 and m.tensors["tok_emb"].shape == (32, 8)
    hs = struct.unpack_from("<I", ref_bytes, 20)[0]
    for k in range(h.n_tensors):  # every offset 4-aligned
        off = struct.unpack_from("<I", ref_bytes, 32 + 96 + 48 * k + 40)[0]
        assert off % 4 == 0
    assert (32 + hs) % 4 == 0


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"XTARMIND" + b[8:], "wrong magic"),
    (lambda b: b[:16] + struct.pack("<I", 3) + b[20:], "unknown format version 3"),
    (lambda b: b[:-4], "truncated file"),
    (lambda b: b[:20], "truncated file"),
    (lambda b: b + b"\0\0\0\0", "unexpected bytes after the payload"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "header checksum mismatch"),
    (lambda b: b[:-10] + bytes([b[-10] ^ 0x40]) + b[-9:], "payload checksum mismatch"),
])
def test_corruptions_are_rejected_with_a_clear_message(ref_bytes, mutate, message):
    with pytest.raises(FormatError, match=message):
        parse_smd(mutate(ref_bytes))


def _set_word(data: bytes, word: int, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into("<I", b, 32 + 4 * word, value)
    return recrc(bytes(b))


@pytest.mark.parametrize("word, value, message", [
    (0, 7, "unknown scheme code 7"),
    (2, 9, r"tok_emb: shape \(32, 8\), expected \(32, 9\) from the header"),
    (2, 0, r"dim=0 not in \[1, 4096\]"),
    (4, 3, "n_heads=3 must divide dim=8"),
    (10, 99, "n_tensors=99"),
    (11, 5000, "table, vocabulary and encoder end"),
    (1, 40000, r"vocab_size=40000 not in \[2, 32768\]"),
    (5, 1 << 20, "ffn_hidden"),
    (8, 2, "tied must be 0 or 1"),
    (12, 3, r"logit_frac=3 not in \[6, 16\]"),
    (15, 1, "reserved word 15"),
])
def test_inconsistent_headers_are_rejected(ref_bytes, word, value, message):
    with pytest.raises(FormatError, match=message):
        parse_smd(_set_word(ref_bytes, word, value))


def _set_entry(data: bytes, k: int, field: int, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into("<I", b, 32 + 96 + 48 * k + 24 + 4 * field, value)
    return recrc(bytes(b))


@pytest.mark.parametrize("k, field, value, message", [
    (1, 0, 2, "tok_emb: dtype code 2"),                       # dtype
    (1, 2, 31, r"tok_emb: shape .* expected \(32, 8\)"),      # shape0
    (1, 4, 2, "offset 2 is not a multiple of 4"),              # offset misaligned
    (2, 4, 0, "overlaps the previous tensor"),                 # offset overlap
    (3, 4, 1 << 30, "outside the payload"),                    # offset out of range
    (1, 5, 12, "does not match its shape"),                    # nbytes
])
def test_inconsistent_tensor_tables_are_rejected(ref_bytes, k, field, value, message):
    with pytest.raises(FormatError, match=message):
        parse_smd(_set_entry(ref_bytes, k, field, value))


def test_value_ranges_are_checked():
    m = read_smd(REF / "ref_rope_silu.smd")
    t = {k: v.copy() for k, v in m.tensors.items()}
    t["layers.0.wq"][0, 0] = -128
    with pytest.raises(FormatError, match="contains -128"):
        parse_smd(pack_smd(m.header, t, m.vocab))
    t = {k: v.copy() for k, v in m.tensors.items()}
    t["layers.1.w2.rq"][0, 1] = 31
    with pytest.raises(FormatError, match=r"w2.rq: shift not in \[0, 30\]"):
        parse_smd(pack_smd(m.header, t, m.vocab))


def test_writer_rejects_wrong_tensors():
    m = read_smd(REF / "ref_tiny_learned.smd")
    t = dict(m.tensors)
    del t["pos_emb"]
    with pytest.raises(ValueError, match="missing \\['pos_emb'\\]"):
        pack_smd(m.header, t, m.vocab)
    with pytest.raises(ValueError, match="vocabulary has 3 tokens"):
        pack_smd(m.header, m.tensors, m.vocab[:3])


def test_float32_scheme_round_trip():
    m = read_smd(REF / "ref_rope_silu.f32.smd")
    assert m.header.scheme == "float32" and m.tensors["layers.0.wq"].dtype == np.float32
    assert "rope.cos" in m.tensors and m.tensors["rope.cos"].shape == (64, 6)


def _fuzz_one(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(6)
    b = bytearray(data)
    if kind == 5:  # the version-2 text section: header words 16..23 or the encoder bytes, CRCs fixed
        hs = struct.unpack_from("<I", b, 20)[0]
        if struct.unpack_from("<I", b, 16)[0] == 2 and rng.integers(2):
            struct.pack_into("<I", b, 32 + 64 + 4 * int(rng.integers(8)),
                             int(rng.choice([0, 1, 2, 3, 5, 31, 300, 0xFFFF, 0xFFFFFFFF])))
        else:
            lo = 32 + hs - min(hs - 100, 2000)
            for _ in range(rng.integers(1, 4)):
                b[rng.integers(lo, 32 + hs)] = rng.integers(256)
        return recrc(bytes(b))
    if kind == 0:  # truncate anywhere
        return bytes(b[:rng.integers(0, len(b))])
    if kind == 1:  # flip bits anywhere (the CRCs should catch it)
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(len(b))] ^= 1 << rng.integers(8)
        return bytes(b)
    if kind == 2:  # flip bits in the header, then fix the CRCs: the structural checks must catch it
        hs = struct.unpack_from("<I", b, 20)[0]
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(16, 32 + hs)] ^= 1 << rng.integers(8)
        return recrc(bytes(b))
    if kind == 3:  # a random u32 into a header word or table field, CRCs fixed
        pos = 32 + 4 * rng.integers(0, (struct.unpack_from("<I", b, 20)[0]) // 4)
        struct.pack_into("<I", b, int(pos), int(rng.choice([0, 1, 3, 0xFFFFFFFF, 1 << 31, rng.integers(1 << 32)])))
        return recrc(bytes(b))
    # payload byte changes with fixed CRCs: CRC-invisible, the file must load consistently or be rejected
    hs = struct.unpack_from("<I", b, 20)[0]
    for _ in range(rng.integers(1, 4)):
        b[rng.integers(32 + hs, len(b))] = rng.integers(256)
    return recrc(bytes(b))


def test_fuzz_mutated_and_truncated_files_only_raise_format_error():
    rng = np.random.default_rng(1234)
    sources = [(REF / n).read_bytes() for n in ("ref_tiny_learned.smd", "ref_dim1_gelu.smd", "ref_dim1_gelu.f32.smd",
                                                "ref_bpe_lc.smd", "ref_words_gelu.smd", "v1/ref_tiny_learned.v1.smd")]
    outcomes = {"rejected": 0, "loaded": 0}
    for i in range(1200):
        src = sources[i % len(sources)]
        data = _fuzz_one(src, rng)
        try:
            m = parse_smd(data)
        except FormatError:
            outcomes["rejected"] += 1
            continue
        # accepted: it must be internally consistent (re-packing reproduces the bytes exactly)
        assert pack_smd(m.header, m.tensors, m.vocab, m.text, m.version) == data
        outcomes["loaded"] += 1
    assert outcomes["rejected"] > 900, outcomes


def test_make_reference_is_deterministic_and_matches_the_committed_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    reference.make_reference(a, names=["ref_dim1_gelu"], verbose=False)
    reference.make_reference(b, names=["ref_dim1_gelu"], verbose=False)
    for name in ("ref_dim1_gelu.smd", "ref_dim1_gelu.f32.smd", "ref_dim1_gelu.golden.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # the committed golden vectors always describe the committed model file
    import hashlib
    import json
    g = json.loads((REF / "ref_dim1_gelu.golden.json").read_text())
    assert hashlib.sha256((REF / g["model"]).read_bytes()).hexdigest() == g["model_sha256"]


# ---- format version 2: special tokens, stop rule, encoder, rope formula, finiteness, packing ------
def test_version1_files_still_load_and_say_what_they_lack():
    v1 = read_smd(REF / "v1" / "ref_tiny_learned.v1.smd")
    assert v1.version == 1 and not v1.can_encode
    assert any("special tokens" in x for x in v1.missing) and any("encoder" in x for x in v1.missing)
    v2 = read_smd(REF / "ref_tiny_learned.smd")
    assert v2.version == 2 and v2.missing == [] and v2.text.encoder == "char" and v2.text.lowercase
    words = read_smd(REF / "ref_words_gelu.smd").text
    assert (words.bos_id, words.eos_id, words.unk_id, words.stop_at_eos, words.encoder) == (0, 1, None, True, "none")


def _repack(name, text=None, **tensor_edits):
    m = read_smd(REF / name)
    t = {k: v.copy() for k, v in m.tensors.items()}
    for k, f in tensor_edits.items():
        f(t[k.replace("__", ".")])
    return pack_smd(m.header, t, m.vocab, m.text if text is None else text)


@pytest.mark.parametrize("edit, message", [
    (dict(bos_id=40), r"special tokens: bos_id=40 not a token id"),
    (dict(bos_id=1, eos_id=1), "eos_id=1 is also another special token"),
    (dict(eos_id=5), "eos_id=5 must be a 0-byte token"),
    (dict(stop_at_eos=True), "stop_at_eos is set but the file has no eos_id"),
    (dict(lowercase=False), "folding entries but the lowercase flag is not set"),
    (dict(fold=((66, 98), (65, 97))), "folding entry 1 is out of order"),
    (dict(classes=((5, 3, 1),)), "bpe only"),
])
def test_text_section_defects_are_named(edit, message):
    import dataclasses
    m = read_smd(REF / "ref_tiny_learned.smd")
    if "bos_id" in edit and edit["bos_id"] < 32:  # needs 0-byte tokens: the word-piece model has two
        m = read_smd(REF / "ref_words_gelu.smd")
    data = pack_smd(m.header, m.tensors, m.vocab, dataclasses.replace(m.text, **edit))
    with pytest.raises(FormatError, match=message):
        parse_smd(data)


@pytest.mark.parametrize("edit, message", [
    (lambda t: dataclasses_replace(t, merges=t.merges[:1] + t.merges[:1]), "repeats a pair or a result"),
    (lambda t: dataclasses_replace(t, merges=((2, 3, 4),)), r"merge 0 \(2, 3\) -> 4 does not join"),
    (lambda t: dataclasses_replace(t, classes=((10, 20, 1), (15, 30, 2))), r"class range 1 \(0xf..0x1e, class 2\) is not sorted"),
    (lambda t: dataclasses_replace(t, classes=((10, 20, 7),)), "class range 0"),
    (lambda t: dataclasses_replace(t, fold=((0xD800, 97),)), "not a Unicode scalar value"),
])
def test_bpe_encoder_defects_are_named(edit, message):
    m = read_smd(REF / "ref_bpe_lc.smd")
    with pytest.raises(FormatError, match=message):
        parse_smd(pack_smd(m.header, m.tensors, m.vocab, edit(m.text)))


def dataclasses_replace(obj, **kw):
    import dataclasses
    return dataclasses.replace(obj, **kw)


def test_unknown_encoder_code_and_flags_are_named():
    data = bytearray((REF / "ref_tiny_learned.smd").read_bytes())
    bad = bytearray(data)
    struct.pack_into("<I", bad, 32 + 64 + 16, 7)
    with pytest.raises(FormatError, match="unknown encoder code 7"):
        parse_smd(recrc(bytes(bad)))
    bad = bytearray(data)
    struct.pack_into("<I", bad, 32 + 64 + 12, 2 | 8)
    with pytest.raises(FormatError, match="unknown flag bits"):
        parse_smd(recrc(bytes(bad)))


def test_char_encoder_needs_one_character_per_token():
    m = read_smd(REF / "ref_words_gelu.smd")
    with pytest.raises(FormatError, match="one distinct UTF-8 character per token"):
        parse_smd(pack_smd(m.header, m.tensors, m.vocab, dataclasses_replace(m.text, encoder="char")))


def test_rope_tables_are_checked_against_their_formula():
    def nudge(a):
        a[5, 1] += 2 if a.dtype != np.float32 else 1e-4
    with pytest.raises(FormatError, match=r"rope table: rope.cos\[5, 1\]"):
        parse_smd(_repack("ref_rope_silu.smd", rope__cos=nudge))
    with pytest.raises(FormatError, match=r"rope table: rope.sin\[5, 1\]"):
        parse_smd(_repack("ref_rope_silu.f32.smd", rope__sin=nudge))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_float32_values_are_rejected(value):
    with pytest.raises(FormatError, match="non-finite value: layers.0.wq contains NaN or infinity"):
        parse_smd(_repack("ref_rope_silu.f32.smd", layers__0__wq=lambda a: a.__setitem__((0, 0), value)))


def test_tensors_must_be_tightly_packed(ref_bytes):
    """A 4-byte gap before a tensor (offsets still aligned, padding zero, CRCs right) is a named defect."""
    b = bytearray(ref_bytes)
    hs = struct.unpack_from("<I", b, 20)[0]
    n = parse_smd(ref_bytes).header.n_tensors
    last = 32 + 96 + 48 * (n - 1)
    off, nbytes = struct.unpack_from("<II", b, last + 40)
    struct.pack_into("<I", b, last + 40, off + 4)
    pay = 32 + hs
    b[pay + off:pay + off] = b"\0\0\0\0"
    struct.pack_into("<I", b, 24, struct.unpack_from("<I", b, 24)[0] + 4)
    with pytest.raises(FormatError, match=r"head.rq: offset \d+, tensors are packed"):
        parse_smd(recrc(bytes(b)))
