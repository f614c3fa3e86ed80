"""The MicroPython runtime (run by CPython) and format version 2: the loader's named errors, the
encoder's golden ids, the window restart's 200-token goldens, the stop rule, version-1 files."""
from __future__ import annotations

import dataclasses
import json
import struct
import zlib

import pytest

from starmind_lib.devices.runtime import device_runtime
from starmind_lib.provenance import REPO_ROOT
from starmind_lib.quant.smd import pack_smd, parse_smd, read_smd

REFERENCE = REPO_ROOT / "data" / "reference"
GOLDENS = sorted(REFERENCE.glob("*.golden.json"))
mp = device_runtime()
import starmind_mp.story as story  # noqa: E402  (the package path is set by device_runtime)
import starmind_mp.tokenizer as tokenizer  # noqa: E402


@pytest.fixture(params=GOLDENS, ids=[g.name.split(".")[0] for g in GOLDENS])
def golden(request):
    return json.loads(request.param.read_text())


def test_encoder_reproduces_the_golden_ids(golden):
    m = mp.smd.load(str(REFERENCE / golden["model"]))
    assert m.version == 2 and m.missing == []
    assert (m.bos_id, m.eos_id, m.unk_id, m.stop_at_eos, m.lowercase, m.encoder) == tuple(
        golden["text"][k] for k in ("bos_id", "eos_id", "unk_id", "stop_at_eos", "lowercase", "encoder"))
    for e in golden["encode"]:
        assert tokenizer.encode(m, e["text"]) == e["ids"], e
    if golden["encode"]:
        assert tokenizer.encode(m, golden["prompt_text"]) == golden["prompt_ids"]


def test_window_restart_reproduces_200_token_goldens(golden):
    m = mp.smd.load(str(REFERENCE / golden["model"]))
    eng = mp.engine.IntEngine(m, "python")
    w = golden["window"]
    assert story.generate(eng, golden["prompt_ids"], w["n_new"], stop_at_eos=False) == w["greedy_output_ids"]
    s = w["sampled"][0]
    got = story.generate(eng, golden["prompt_ids"], w["n_new"], s["temperature_q8"], s["top_k"], s["seed"],
                         stop_at_eos=False)
    assert got == s["output_ids"]


def test_version1_file_loads_and_says_what_it_lacks():
    m = mp.smd.load(str(REFERENCE / "v1" / "ref_tiny_learned.v1.smd"))
    assert m.version == 1 and m.encoder == "none" and m.bos_id is None
    assert any("encoder" in x for x in m.missing)
    with pytest.raises(ValueError, match="has no encoder"):
        tokenizer.encode(m, "the cat")


def _write(tmp_path, name, text=None, **edits):
    m = read_smd(REFERENCE / name)
    t = {k: v.copy() for k, v in m.tensors.items()}
    for k, f in edits.items():
        f(t[k.replace("__", ".")])
    path = tmp_path / "variant.smd"
    path.write_bytes(pack_smd(m.header, t, m.vocab, dataclasses.replace(m.text, **(text or {}))))
    return path


@pytest.mark.parametrize("name, text, edits, message", [
    ("ref_words_gelu.smd", {"bos_id": 1, "eos_id": 1}, {}, "eos_id=1 is also another special token"),
    ("ref_words_gelu.smd", {"eos_id": 5}, {}, "eos_id=5 must be a 0-byte token"),
    ("ref_tiny_learned.smd", {"stop_at_eos": True}, {}, "stop_at_eos is set but the file has no eos_id"),
    ("ref_tiny_learned.smd", {"lowercase": False}, {}, "folding entries but the lowercase flag is not set"),
    ("ref_words_gelu.smd", {"encoder": "char"}, {}, "one distinct UTF-8 character per token"),
    ("ref_bpe_lc.smd", {"merges": ((2, 3, 4),)}, {}, r"merge 0 \(2, 3\) -> 4 does not join"),
    ("ref_bpe_lc.smd", {"classes": ((10, 20, 1), (15, 30, 2))}, {}, "class range 1 is not sorted"),
    ("ref_rope_silu.smd", None, {"rope__cos": lambda a: a.__setitem__((5, 1), a[5, 1] + 2)},
     r"rope table: rope.cos\[5, 1\]"),
    ("ref_rope_silu.f32.smd", None, {"rope__sin": lambda a: a.__setitem__((5, 1), a[5, 1] + 1e-4)},
     r"rope table: rope.sin\[5, 1\]"),
    ("ref_rope_silu.f32.smd", None, {"layers__0__wq": lambda a: a.__setitem__((0, 0), float("nan"))},
     "non-finite value: layers.0.wq"),
])
def test_version2_defects_are_named(tmp_path, name, text, edits, message):
    with pytest.raises(ValueError, match=message):
        mp.smd.load(str(_write(tmp_path, name, text, **edits)))


def test_packing_gap_is_named(tmp_path):
    src = (REFERENCE / "ref_tiny_learned.smd").read_bytes()
    b = bytearray(src)
    hs = struct.unpack_from("<I", b, 20)[0]
    last = 32 + 96 + 48 * (parse_smd(src).header.n_tensors - 1)
    off = struct.unpack_from("<I", b, last + 40)[0]
    struct.pack_into("<I", b, last + 40, off + 4)
    b[32 + hs + off:32 + hs + off] = bytes(4)
    struct.pack_into("<I", b, 24, struct.unpack_from("<I", b, 24)[0] + 4)
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[16:32 + hs])))
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[32 + hs:])))
    path = tmp_path / "gap.smd"
    path.write_bytes(bytes(b))
    with pytest.raises(ValueError, match="head.rq: offset .*tensors are packed"):
        mp.smd.load(str(path))


def test_requantisation_pairs_load_as_uint16_and_are_range_checked(tmp_path):
    """The loader keeps each int32 (m, s) table as uint16 pairs (half the RAM), and names a table whose
    values leave the format's ranges (checked after the payload CRC, so a corrupted file still says so)."""
    src = (REFERENCE / "ref_tiny_learned.smd").read_bytes()
    m = mp.smd.load(str(REFERENCE / "ref_tiny_learned.smd"))
    ref = parse_smd(src)
    for name, arr in ref.tensors.items():
        if name.endswith(".rq"):
            assert m.dtypes[name] == 5 and len(m.tensors[name]) == 2 * arr.size
            assert list(struct.unpack("<%dH" % arr.size, m.tensors[name])) == arr.reshape(-1).tolist()
    b = bytearray(src)
    hs = struct.unpack_from("<I", b, 20)[0]
    last = 32 + 96 + 48 * (ref.header.n_tensors - 1)
    assert bytes(b[last:last + 7]) == b"head.rq"
    off = struct.unpack_from("<I", b, last + 40)[0]
    struct.pack_into("<i", b, 32 + hs + off + 8 * 3 + 4, 31)          # row 3: s = 31
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[32 + hs:])))
    path = tmp_path / "shift.smd"
    path.write_bytes(bytes(b))
    with pytest.raises(ValueError, match=r"tensor head.rq: row 3 has \(m, s\) outside"):
        mp.smd.load(str(path))
    b[32 + hs + off] ^= 1                                                # and a corrupted payload
    path.write_bytes(bytes(b))
    with pytest.raises(ValueError, match="payload checksum"):
        mp.smd.load(str(path))


def test_stop_rule_ends_generation_at_eos(tmp_path):
    """A char model whose greedy story contains 'e': call that token EOS (0 bytes) and stop there."""
    g = json.loads((REFERENCE / "ref_tiny_learned.golden.json").read_text())
    m = read_smd(REFERENCE / "ref_tiny_learned.smd")
    eos = m.vocab.index(b"e")
    assert eos in g["greedy"]["output_ids"]
    vocab = [b"" if i == eos else t for i, t in enumerate(m.vocab)]
    text = dataclasses.replace(m.text, eos_id=eos, stop_at_eos=True)
    path = tmp_path / "stop.smd"
    path.write_bytes(pack_smd(m.header, m.tensors, vocab, text))
    mm = mp.smd.load(str(path))
    eng = mp.engine.IntEngine(mm, "python")
    got = story.generate(eng, g["prompt_ids"], g["greedy"]["n_new"])
    want = g["greedy"]["output_ids"]
    assert got == want[:want.index(eos) + 1]
