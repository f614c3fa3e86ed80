"""Tokenizers: ids, round trips (property-based), files, binary layout, corpus encoding, metrics."""
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from starmind_lib.data import synthetic_stories
from starmind_lib.tokenizers import (MAGIC, CharTokenizer, TokenizerError, build_tokenizer, encode_corpus,
                                     load_tokenizer, parse_binary, tokenizer_from_binary, tokenizer_metrics)

STORIES = synthetic_stories(300, seed=1)
EXTRA = ["Zoë’s café — naïve “quotes” 😀 <bos> <eos>\n\nnew paragraph\ttab"]


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer("bpe", 320, STORIES + EXTRA)


@pytest.fixture(scope="module")
def bpe_lc():
    return build_tokenizer("bpe", 300, STORIES + EXTRA, lowercase=True)


@pytest.fixture(scope="module")
def char():
    return build_tokenizer("char", 40, STORIES)


def test_char_ids_follow_frequency_after_the_specials():
    tok = build_tokenizer("char", 32, ["aaab", "ab c"])
    assert (tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2)
    # counts: a 4, b 2, ' ' 1, c 1 (ties broken by code point: ' ' < 'c')
    assert tok.chars == ["a", "b", " ", "c"]
    assert tok.vocab_size == 7 and tok.requested_vocab_size == 32 and tok.name == "char-7"
    assert tok.encode("abcz") == [3, 4, 6, 2]
    assert tok.decode([0, 3, 2, 4, 1]) == "ab"  # specials print nothing


def test_char_keeps_only_the_top_characters_and_maps_the_rest_to_unk():
    text = "a" * 50 + "b" * 40 + "".join(chr(0x100 + i) * (30 - i) for i in range(30))
    tok = build_tokenizer("char", 32, [text])
    assert tok.vocab_size == 32 and len(tok.chars) == 29
    assert tok.encode(chr(0x100 + 29)) == [tok.unk_id]  # the rarest character did not make it
    m = tokenizer_metrics(tok, ["ab" + chr(0x100 + 29) + chr(0x100 + 28)])
    assert m["unk_rate"] == pytest.approx(0.5) and m["coverage"] == pytest.approx(0.5)
    assert m["chars_per_token"] == 1.0


def test_lowercase_tokenizers_are_named_and_lowercase_their_input(char):
    tok = build_tokenizer("char", 64, STORIES, lowercase=True)
    assert tok.name.endswith("-lc") and tok.name.startswith("char-")
    assert not any(c.isupper() for c in tok.chars)
    assert tok.decode(tok.encode("Lily")) == "lily"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_char_round_trip_for_covered_text(char, data):
    text = data.draw(st.text(alphabet=st.sampled_from(char.chars), max_size=200))
    assert char.decode(char.encode(text)) == text


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=200))
def test_bpe_round_trips_any_text(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids) and bpe.bos_id not in ids and bpe.eos_id not in ids
    assert bpe.decode(ids) == text


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=120))
def test_lowercase_bpe_round_trips_the_lowercased_text(bpe_lc, text):
    assert bpe_lc.decode(bpe_lc.encode(text)) == text.lower()


def test_bpe_layout_and_special_text(bpe):
    assert bpe.name == "bpe-320" and (bpe.bos_id, bpe.eos_id, bpe.unk_id) == (0, 1, None)
    assert bpe.token_bytes(0) == b"" and bpe.token_bytes(1) == b""
    assert sorted(bpe.token_bytes(i) for i in range(2, 258)) == [bytes([b]) for b in range(256)]
    assert bpe.merges()[0][2] == 258  # the first merge makes the first merged token
    # the literal text "<bos>" is not the BOS token: it encodes as ordinary bytes
    assert 0 not in bpe.encode("<bos>") and bpe.decode(bpe.encode("<bos>")) == "<bos>"
    # a BPE token may be part of a UTF-8 character; joined bytes decode whole
    ids = bpe.encode("😀")
    assert len(ids) > 1 and bpe.decode(ids) == "😀"
    with pytest.raises(UnicodeDecodeError):
        bpe.token_bytes(ids[0]).decode("utf-8")


def test_bpe_compresses_and_small_vocab_is_rejected():
    tok = build_tokenizer("bpe", 400, STORIES)
    m = tokenizer_metrics(tok, STORIES[:50])
    assert m["chars_per_token"] > 2.0 and m["unk_rate"] == 0 and m["coverage"] == 1.0
    with pytest.raises(TokenizerError, match=r"vocab_size >= 258.*kind='char'"):
        build_tokenizer("bpe", 200, STORIES)


@pytest.mark.parametrize("kind, size, match", [("char", 16, r"vocab_size must be in \[32, 4096\], got 16"),
                                                 ("bpe", 5000, r"vocab_size must be in \[32, 4096\]"),
                                                 ("word", 64, r"kind must be one of 'char', 'bpe', got 'word'"),
                                                 ("char", 64.0, r"vocab_size must be an integer")])
def test_bad_requests_name_the_problem(kind, size, match):
    with pytest.raises(TokenizerError, match=match):
        build_tokenizer(kind, size, STORIES)


def test_binary_layout_golden():
    tok = CharTokenizer(["a", "é"], lowercase=True)
    blob = tok.to_binary()
    assert blob == (b"SMTK" + bytes([1, 0, 1, 2]) + struct.pack("<HHHH", 5, 0, 1, 2)
                    + b"\x00" * 3 + b"\x01a" + b"\x02\xc3\xa9")
    assert tokenizer_from_binary(blob).chars == ["a", "é"]


@pytest.mark.parametrize("name", ["char", "bpe", "bpe_lc"])
def test_binary_and_json_round_trip(name, request, tmp_path):
    tok = request.getfixturevalue(name)
    blob = tok.to_binary()
    tok2 = tokenizer_from_binary(blob)
    assert tok2.to_binary() == blob and tok2.name == tok.name
    tok.save(tmp_path / "tok.json")
    tok3 = load_tokenizer(tmp_path / "tok.json")
    text = STORIES[7] + EXTRA[0]
    assert tok2.encode(text) == tok3.encode(text) == tok.encode(text)
    assert [tok3.token_bytes(i) for i in range(tok.vocab_size)] == [tok.token_bytes(i) for i in range(tok.vocab_size)]


def test_decode_only_binary_and_corrupt_files(bpe):
    blob = bpe.to_binary(include_merges=False)
    assert len(blob) == 16 + sum(1 + len(bpe.token_bytes(i)) for i in range(bpe.vocab_size))
    tok = tokenizer_from_binary(blob)
    assert tok.decode(bpe.encode("Once upon a time")) == "Once upon a time"
    with pytest.raises(TokenizerError, match="decode only"):
        tok.encode("x")
    with pytest.raises(TokenizerError, match="magic"):
        tokenizer_from_binary(b"NOPE" + blob[4:])
    with pytest.raises(TokenizerError, match="truncated"):
        tokenizer_from_binary(blob[:40])
    assert parse_binary(bpe.to_binary())["merges"] == bpe.merges()
    assert blob[:4] == MAGIC


@pytest.mark.parametrize("name", ["char", "bpe"])
def test_encode_corpus_puts_eos_after_every_story(name, request):
    tok = request.getfixturevalue(name)
    stories = STORIES[:20]
    arr = encode_corpus(tok, stories)
    assert arr.dtype == np.int32
    expected = [i for s in stories for i in tok.encode(s) + [tok.eos_id]]
    assert arr.tolist() == expected
    assert encode_corpus(tok, []).size == 0


def test_char_encode_corpus_with_nul_in_a_story():
    tok = build_tokenizer("char", 32, ["ab\x00"])  # equal counts: ids by code point, NUL first
    assert tok.chars == ["\x00", "a", "b"]
    assert encode_corpus(tok, ["a\x00b", "b"]).tolist() == [4, 3, 5, 1, 5, 1]


def test_metrics_device_bytes(char):
    m = tokenizer_metrics(char, STORIES[:10], dims=(16, 64))
    assert m["vocab_bytes"] == len(char.to_binary()) and m["merges_bytes"] == 0
    assert m["device_bytes_d64"] == m["vocab_bytes"] + 64 * char.vocab_size
    assert m["embedding_bytes_per_dim"] == char.vocab_size


def test_tokenizer_study_grid_rows_and_rerun(tmp_path):
    from starmind_lib.data import DataConfig
    from starmind_lib.chapters.ch02_tokenizers import read_tokenizer_table, run_tokenizer_study, tokenizer_grid
    grid = tokenizer_grid([32, 128], kinds=("char", "bpe"), lowercase=(False, True))
    assert grid == [("char", 32, False), ("char", 128, False), ("char", 32, True), ("char", 128, True),
                    ("bpe", 258, False), ("bpe", 258, True)]  # BPE below 258 is measured at 258
    cfg = DataConfig.from_params({"source": "synthetic", "n_synthetic_stories": 150})
    df = run_tokenizer_study(cfg, grid, tmp_path, cache_dir=tmp_path / "runs", dims=(16,), profile="test")
    assert len(df) == 6 and set(df["tokenizer"]) >= {"char-32", "char-32-lc", "bpe-258", "bpe-258-lc"}
    assert (df.loc[df["kind"] == "bpe", "unk_rate"] == 0).all() and df["is_synthetic"].all()
    assert df.loc[df["tokenizer"] == "char-32-lc", "example"].item().startswith("o|n|c|e| |u|p|o|n")
    run_tokenizer_study(cfg, grid, tmp_path, dims=(16,))
    assert len((tmp_path / "tokenizers" / "tokenizers.jsonl").read_text().splitlines()) == 6
    assert len(read_tokenizer_table(tmp_path)) == 6


def test_the_chapters_tokenizer_table_orders_rows_and_names_columns_for_a_reader():
    import pandas as pd

    from starmind_lib.chapters.ch02_tokenizers import SUMMARY_LABELS, summary_table
    rows = [{"tokenizer": f"{k}-{v}{'-lc' if lc else ''}", "kind": k, "lowercase": lc, "requested_vocab_size": v,
             **{c: 1 for c in SUMMARY_LABELS if c not in ("tokenizer", "requested_vocab_size")}}
            for k, v, lc in [("bpe", 512, True), ("char", 64, False), ("bpe", 258, False), ("char", 32, True)]]
    shown = summary_table(pd.DataFrame(rows))
    assert list(shown["tokenizer"]) == ["char-64", "char-32-lc", "bpe-258", "bpe-512-lc"]
    assert "training time (s)" in shown.columns
    assert not any("_" in c or "<" in c for c in shown.columns), list(shown.columns)


def test_chapter_two_numbers_take_the_first_bpe_that_merges_and_the_largest():
    import pandas as pd

    from starmind_lib.chapters.ch02_tokenizers import measured, tokenizer_numbers
    rows = [{"kind": k, "requested_vocab_size": v, "lowercase": lc, "tokenizer": f"{k}{v}{'-lc' if lc else ''}",
             "chars_per_token": cpt + (0.5 if lc else 0), "device_bytes_d64": 64 * v + 7, "merges_bytes": 3 * v,
             "unk_rate": 0.01}
            for k, v, cpt in (("bpe", 256, 1.0), ("bpe", 512, 2.0), ("bpe", 2048, 3.0), ("char", 40, 1.0))
            for lc in (False, True)]
    df = pd.DataFrame(rows)
    assert tokenizer_numbers(df) == {"bpe_small": 512, "bpe_large": 2048, "bpe_cpt_small": 2.0, "bpe_cpt_large": 3.0,
                                     "bpe_lc_cpt_large": 3.5, "bpe_bytes_large_d64": 131079, "bpe_merges_large": 6144}
    with pytest.raises(KeyError, match=r"no row for char-96 \(lowercase=False\); measured: \['bpe2048'"):
        measured(df, "char", 96, False, "unk_rate")
