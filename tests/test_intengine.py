"""The integer reference engine: golden vectors, an independent scalar oracle, integer-only, 32-bit bounds."""
import json
from pathlib import Path

import numpy as np
import pytest

from starmind_lib.quant import intengine as ie
from starmind_lib.quant.smd import read_smd
from scalar_spec_engine import XS, SpecModel

REF = Path(__file__).resolve().parent.parent / "data" / "reference"
GOLDENS = sorted(REF.glob("*.golden.json"))


def test_there_are_reference_models():
    assert len(GOLDENS) >= 3
    assert sum(p.stat().st_size for p in REF.iterdir()) < 1_000_000


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda p: p.stem)
def test_engine_reproduces_golden_vectors(golden):
    g = json.loads(golden.read_text())
    eng = ie.IntEngine(read_smd(REF / g["model"]))
    logits = eng.logits_sequence(g["prompt_ids"])
    assert logits.dtype == np.int32
    assert logits.tolist() == g["prompt_logits"]
    assert logits[-1].tolist() == g["first_logits"]
    assert eng.generate(g["prompt_ids"], g["greedy"]["n_new"]) == g["greedy"]["output_ids"]
    for s in g["sampled"]:
        out = eng.generate(g["prompt_ids"], s["n_new"], temperature_q8=s["temperature_q8"], top_k=s["top_k"],
                           seed=s["seed"])
        assert out == s["output_ids"], s


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda p: p.stem)
def test_independent_scalar_implementation_of_format_md_agrees(golden):
    """Plain-int code written from FORMAT.md alone, with every intermediate checked against int32."""
    g = json.loads(golden.read_text())
    m = SpecModel((REF / g["model"]).read_bytes())
    cache = m.new_cache()
    assert [m.step(cache, t, p) for p, t in enumerate(g["prompt_ids"])] == g["prompt_logits"]
    assert m.generate(g["prompt_ids"], g["greedy"]["n_new"]) == g["greedy"]["output_ids"]
    s = g["sampled"][1]
    assert m.generate(g["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"]) == s["output_ids"]


@pytest.mark.parametrize("name", ["ref_tiny_learned", "ref_dim1_gelu"])
def test_independent_scalar_window_restart_agrees(name):
    """FORMAT.md 6.7 implemented from the prose alone gives the 200-token window goldens."""
    g = json.loads((REF / f"{name}.golden.json").read_text())
    m = SpecModel((REF / g["model"]).read_bytes())
    w = g["window"]
    assert m.generate(g["prompt_ids"], w["n_new"], window=True) == w["greedy_output_ids"]


def test_reference_engine_window_and_stop_rule():
    eng = ie.IntEngine(read_smd(REF / "ref_tiny_learned.smd"))
    g = json.loads((REF / "ref_tiny_learned.golden.json").read_text())
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        eng.generate(g["prompt_ids"], 40)
    long = eng.generate(g["prompt_ids"], 200, window=True)
    assert long == g["window"]["greedy_output_ids"]
    # within the context the window changes nothing
    assert eng.generate(g["prompt_ids"], g["greedy"]["n_new"], window=True) == g["greedy"]["output_ids"]
    # the stop rule: EOS ends the story (the token is returned)
    import dataclasses
    eng.text = dataclasses.replace(eng.text, eos_id=long[3], stop_at_eos=True)
    assert eng.generate(g["prompt_ids"], 200, window=True) == long[:long.index(long[3]) + 1]


def test_greedy_output_is_not_trivial():
    g = json.loads((REF / "ref_rope_silu.golden.json").read_text())
    assert len(set(g["greedy"]["output_ids"])) >= 6  # the model says something, not one repeated token
    assert g["greedy"]["output_ids"] != g["sampled"][2]["output_ids"]  # high temperature changes the text


@pytest.mark.parametrize("name", ["ref_rope_silu", "ref_swiglu_untied", "ref_tiny_learned"])
def test_batched_evaluation_is_bit_identical_to_token_by_token(name):
    eng = ie.IntEngine(read_smd(REF / f"{name}.smd"))
    rng = np.random.default_rng(0)
    toks = rng.integers(0, eng.h.vocab_size, eng.h.max_seq_len)
    batched = eng.logits_sequence(toks)
    state = eng.new_state()
    stepped = np.stack([eng.forward_token(state, int(t), p) for p, t in enumerate(toks)])
    assert np.array_equal(batched, stepped)
    # prefill in two chunks is the same again
    state = eng.new_state()
    half = len(toks) // 2
    chunked = np.concatenate([eng.forward_block(state, toks[:half], 0), eng.forward_block(state, toks[half:], half)])
    assert np.array_equal(batched, chunked)


@pytest.mark.parametrize("name", ["ref_rope_silu", "ref_swiglu_untied", "ref_tiny_learned", "ref_bpe_lc",
                                  "ref_dim1_gelu"])
def test_many_windows_at_once_equal_each_window_alone(name):
    """logits_windows (the host's whole-split evaluation) is bit-identical to logits_sequence per window,
    for all positions and for a selection of them."""
    eng = ie.IntEngine(read_smd(REF / f"{name}.smd"))
    rng = np.random.default_rng(1)
    windows = rng.integers(0, eng.h.vocab_size, (5, eng.h.max_seq_len))
    alone = np.stack([eng.logits_sequence(w) for w in windows])
    assert np.array_equal(eng.logits_windows(windows), alone)
    rows = rng.random(windows.shape) < 0.4
    assert np.array_equal(eng.logits_windows(windows, rows), alone[rows])
    with pytest.raises(ValueError, match="max_seq_len"):
        eng.logits_windows(rng.integers(0, 2, (2, eng.h.max_seq_len + 1)))
    with pytest.raises(ValueError, match="token id out of range"):
        eng.logits_windows(np.full((1, 3), eng.h.vocab_size))


def test_exact_matmul_is_exact_beyond_float32():
    a = np.array([[127, -127, 127]] * 2, np.int64)
    b = np.array([[127], [-127], [127]], np.int64)
    assert ie.exact_matmul(a, b).tolist() == [[3 * 127 * 127]] * 2
    big = np.array([[1 << 40, 3]], np.int64)           # partial sums past 2**53: the int64 path
    assert ie.exact_matmul(big, np.array([[1 << 14], [1]], np.int64)).tolist() == [[(1 << 54) + 3]]


def test_kernels_reject_float_arrays():
    with pytest.raises(ie.IntegerOnlyError, match="float64"):
        ie.matvec(np.ones((2, 2), np.int8), np.ones((1, 2)))
    with pytest.raises(ie.IntegerOnlyError):
        ie.rmsnorm(np.ones((1, 4), np.float32), np.ones(4, np.int16), 10, 1)
    with pytest.raises(ie.IntegerOnlyError):
        ie.requant(np.array([1.5]), 100, 3)
    eng = ie.IntEngine(read_smd(REF / "ref_tiny_learned.smd"))
    with pytest.raises(ie.IntegerOnlyError):
        eng.forward_token(eng.new_state(), 1.0, 0)


def test_engine_tensors_are_integer_typed():
    eng = ie.IntEngine(read_smd(REF / "ref_rope_silu.smd"))
    assert all(a.dtype.kind == "i" for a in eng.t.values())


def test_primitives_match_their_definitions():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(1 << 29) + 1, 1 << 29, 5000)
    m = rng.integers(0, 65536, 5000)
    s = rng.integers(0, 31, 5000)
    got = ie.requant(acc, m, s)
    want = [((a * mm) // 32768 + ((1 << (ss - 1)) if ss else 0)) >> ss for a, mm, ss in zip(acc.tolist(), m.tolist(), s.tolist())]
    assert got.tolist() == want
    assert ie.rshr(np.array([-3, -2, -1, 1, 2, 3, 5]), 1).tolist() == [-1, -1, 0, 1, 1, 2, 3]  # half rounds up
    assert (np.array([-3]) >> 1).tolist() == [-2]  # arithmetic shift is floor


def test_overflow_is_detected():
    with pytest.raises(OverflowError, match="int32"):
        ie.requant(np.array([1 << 31]), 1, 0)


def test_xorshift32_sequence_and_zero_seed():
    r = ie.XorShift32(1)
    assert [r.next() for _ in range(3)] == [270369, 67634689, 2647435461]
    assert ie.XorShift32(0).state == 0x9E3779B9
    x = XS(7)
    y = ie.XorShift32(7)
    assert [x.next() for _ in range(50)] == [y.next() for _ in range(50)]


def test_sampler_greedy_ties_and_top_k():
    lut = ie.exp_lut()
    logits = np.array([5, 9, 9, 1], np.int32)
    assert ie.sample(logits, 10, 0, 0, ie.XorShift32(1), lut) == 1  # tie -> lowest id
    picks = {ie.sample(logits, 10, 256, 2, ie.XorShift32(s), lut) for s in range(1, 200)}
    assert picks == {1, 2}  # top-2 of (9, 9) only
    big = np.array([0, 10 << 10, 0, 0], np.int32)  # 10 nats ahead
    assert {ie.sample(big, 10, 256, 0, ie.XorShift32(s), lut) for s in range(1, 100)} == {1}


def test_sampler_frequencies_follow_softmax():
    lut = ie.exp_lut()
    logits = (np.array([0.0, 1.0, 2.0]) * 1024).astype(np.int32)
    rng = ie.XorShift32(99)
    counts = np.bincount([ie.sample(logits, 10, 256, 0, rng, lut) for _ in range(4000)], minlength=3)
    p = np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum()
    assert np.allclose(counts / 4000, p, atol=0.03)


def test_generate_checks_lengths():
    eng = ie.IntEngine(read_smd(REF / "ref_dim1_gelu.smd"))
    with pytest.raises(ValueError, match="exceeds max_seq_len=16"):
        eng.generate([1] * 10, 8)
    with pytest.raises(ValueError, match="token id out of range"):
        eng.forward_token(eng.new_state(), 99, 0)


def test_format_md_test_vectors_hold():
    """Section 9 of FORMAT.md, parsed from the document itself, so the spec and the engine cannot drift apart."""
    import re
    text = (REF.parent.parent / "device" / "FORMAT.md").read_text()
    sec = text[text.index("## 9. Test vectors"):text.index("## 10.")]
    rshr = re.findall(r"RSHR\((-?\d+), (\d+)\) = (-?\d+)", sec)
    req = re.findall(r"REQUANT\((-?\d+), (\d+), (\d+)\)\s*= (-?\d+)", sec)
    assert len(rshr) == 8 and len(req) == 8
    for v, s, want in rshr:
        assert int(ie.rshr(np.array([int(v)]), int(s))[0]) == int(want)
    for a, m, s, want in req:
        assert int(ie.requant(np.array([int(a)]), int(m), int(s))[0]) == int(want)
    for seed, vals in re.findall(r"xorshift32 seed (\d+):\s+([\d, ]+)", sec):
        r = ie.XorShift32(int(seed))
        want = [int(x) for x in vals.replace(",", " ").split()]
        assert [r.next() for _ in want] == want
    idx, vals = re.search(r"EXP_LUT\[([\d, ]+)\] = ([\d, ]+)", sec).groups()
    assert ie.exp_lut()[[int(i) for i in idx.split(",")]].tolist() == [int(v) for v in vals.split(",")]
    for n, want in [(0, 0), (1, 1), (2, 1), (3, 1), (4, 2), (1 << 28, 16384), ((1 << 30) - 1, 32767),
                    ((1 << 31) - 1, 46340)]:
        assert ie.isqrt(n) == want


def test_vectorised_isqrt_is_exact():
    import math
    rng = np.random.default_rng(3)
    v = np.concatenate([np.arange(0, 5000), rng.integers(0, 1 << 31, 20000),
                        [(1 << 31) - 1, 1 << 30, (1 << 30) - 1, 1 << 28, (1 << 28) - 1]])
    assert ie.isqrt_rows(v).tolist() == [math.isqrt(int(t)) for t in v]
