"""The prompt encoder of format version 2 (FORMAT.md section 11) in every runtime gives the host
tokenizer's ids: the spec's Python encoder (starmind_lib.quant.smd_text), the C runtime's
sm_encode (host build) and the MicroPython package's tokenizer (run by CPython); on validation
stories and on random text (hypothesis)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starmind_lib.provenance import REPO_ROOT
from starmind_lib.quant.smd import pack_smd, parse_smd
from starmind_lib.quant.smd_text import EncodeError, encode, text_spec_from_tokenizer
from starmind_lib.tokenizers import build_tokenizer

VALIDATION = REPO_ROOT.parent / "shared" / "data" / "tinystories" / "validation-00000.jsonl"
RUNTIME = REPO_ROOT / "device" / "c"
SIGMA = "\u03a3"   # str.lower() maps it by context (final sigma); the file's folding is per code point


def _stories(n: int, skip: int = 0) -> list[str]:
    if not VALIDATION.exists():
        pytest.skip(f"needs {VALIDATION}")
    out = []
    with VALIDATION.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= skip:
                out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def _model_file(tok) -> bytes:
    """A tiny float32 model around the tokenizer (the encoder only needs the header and vocabulary)."""
    from starmind_lib.quant.smd import SmdHeader
    V, D, F, T = tok.vocab_size, 4, 4, 8
    rng = np.random.default_rng(0)
    t = {"tok_emb": rng.normal(size=(V, D)), "final_norm": np.ones(D)}
    for w in ("wq", "wk", "wv", "wo"):
        t[f"layers.0.{w}"] = rng.normal(size=(D, D))
    t.update({"layers.0.attn_norm": np.ones(D), "layers.0.ffn_norm": np.ones(D), "layers.0.w1": rng.normal(size=(F, D)),
              "layers.0.w2": rng.normal(size=(D, F)), "pos_emb": rng.normal(size=(T, D))})
    h = SmdHeader("float32", V, D, 1, 1, F, "gelu", "learned", True, T)
    return pack_smd(h, {k: v.astype(np.float32) for k, v in t.items()},
                    [tok.token_bytes(i) for i in range(V)], text_spec_from_tokenizer(tok))


TOKENIZERS = {"bpe512": ("bpe", 512, False), "bpe400lc": ("bpe", 400, True), "char64": ("char", 64, False),
              "char48lc": ("char", 48, True)}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def case(request, tmp_path_factory):
    kind, V, lc = TOKENIZERS[request.param]
    tok = build_tokenizer(kind, V, _stories(400), lowercase=lc)
    data = _model_file(tok)
    path = tmp_path_factory.mktemp("enc") / f"{request.param}.smd"
    path.write_bytes(data)
    return tok, parse_smd(data), path


def _expected(tok, text):
    return tok.encode(text)


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00" + SIGMA), max_size=60) | \
    st.lists(st.sampled_from(list("abcdeABCDE xyz'.,!?\n\t0123456789-—éÉßİ") + ["  ", "'s", "'ll", "\u00a0"]),
             max_size=60).map("".join)


# ---- the host reference (the spec's encoder) ----------------------------------------------------
def test_spec_encoder_matches_the_tokenizer_on_validation_stories(case):
    tok, m, _ = case
    for s in _stories(150, skip=500):
        assert encode(m.text, m.vocab, s) == _expected(tok, s)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_spec_encoder_matches_the_tokenizer_on_random_text(case, text):
    tok, m, _ = case
    assert encode(m.text, m.vocab, text) == _expected(tok, text)


def test_no_encoder_and_no_unk_are_named_errors():
    from starmind_lib.quant.smd import read_smd
    ref = REPO_ROOT / "data" / "reference"
    words = read_smd(ref / "ref_words_gelu.smd")
    with pytest.raises(EncodeError, match="has no encoder"):
        encode(words.text, words.vocab, "the cat")
    chars = read_smd(ref / "ref_tiny_learned.smd")
    with pytest.raises(EncodeError, match=r"U\+0023 is not in the vocabulary"):
        encode(chars.text, chars.vocab, "#")
    assert encode(chars.text, chars.vocab, "The CAT") == encode(chars.text, chars.vocab, "the cat")


# ---- the C runtime (host build) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def host():
    if not shutil.which("gcc") or not shutil.which("make"):
        pytest.skip("needs gcc and make")
    subprocess.run(["make", "-s", "-C", str(RUNTIME), "all"], check=True, capture_output=True)
    return RUNTIME / "build" / "starmind_host"


def c_encode(host, model: Path, texts: list[str], tmp: Path) -> list[list[int]]:
    batch = tmp / "texts.bin"
    batch.write_bytes(b"\0".join(t.encode("utf-8") for t in texts))
    proc = subprocess.run([str(host), str(model), "--encode-batch", str(batch)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return json.loads(proc.stdout)["ids"]


def test_c_encoder_matches_the_tokenizer_on_validation_stories(case, host, tmp_path):
    tok, _, path = case
    stories = _stories(150, skip=500)
    assert c_encode(host, path, stories, tmp_path) == [_expected(tok, s) for s in stories]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=40, max_size=40))
def test_c_encoder_matches_the_tokenizer_on_random_text(case, host, tmp_path, texts):
    tok, _, path = case
    assert c_encode(host, path, texts, tmp_path) == [_expected(tok, s) for s in texts]


def test_c_encoder_named_errors(host, tmp_path):
    ref = REPO_ROOT / "data" / "reference"
    assert c_encode(host, ref / "ref_tiny_learned.smd", ["#", "ok", "\xff"], tmp_path) == [[-15], [16, 12], [-15]]
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xc3(")  # invalid UTF-8
    proc = subprocess.run([str(host), str(ref / "ref_bpe_lc.smd"), "--encode-batch", str(bad)], capture_output=True,
                          text=True)
    assert json.loads(proc.stdout)["ids"] == [[-15]]
    proc = subprocess.run([str(host), str(ref / "ref_words_gelu.smd"), "--text-file", str(bad), "--encode-only"],
                          capture_output=True, text=True)
    assert json.loads(proc.stdout)["status"] == -16


# ---- the MicroPython runtime (run by CPython) ----------------------------------------------------
@pytest.fixture(scope="module")
def mp_tokenizer():
    from starmind_lib.devices.runtime import device_runtime
    device_runtime()
    import starmind_mp.tokenizer
    return starmind_mp.tokenizer


def test_micropython_encoder_matches_the_tokenizer_on_validation_stories(case, mp_tokenizer):
    tok, _, path = case
    from starmind_lib.devices.runtime import device_runtime
    m = device_runtime().smd.load(str(path))
    for s in _stories(100, skip=500):
        assert mp_tokenizer.encode(m, s) == _expected(tok, s)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXT)
def test_micropython_encoder_matches_the_tokenizer_on_random_text(case, mp_tokenizer, text):
    tok, _, path = case
    from starmind_lib.devices.runtime import device_runtime
    m = device_runtime().smd.load(str(path))
    assert mp_tokenizer.encode(m, text) == _expected(tok, text)
