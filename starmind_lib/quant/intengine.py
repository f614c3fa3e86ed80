"""The integer-only reference engine: the executable specification of `device/FORMAT.md`.

Every device runtime (the C runtime on the emulated RP2040, the MicroPython
viper kernels, the pure-Python fallback) must reproduce this engine's int32
logits and sampled tokens bit for bit. The arithmetic is designed for a
Cortex-M0+: int8 weights and activations, int32 accumulators, a residual
stream clamped to int16 range, fixed-point requantisation by a 16-bit
multiplier and a right shift, integer RMSNorm (integer square root and one
reciprocal per vector), an exp lookup table for softmax, a 256-entry table for
the FFN activation, Q14 rotary tables, and an integer sampler driven by
xorshift32.

**No intermediate ever needs more than a signed 32-bit integer, and no step
needs a 64-bit product.** NumPy computes in int64 here only so that the
engine can *check* that claim: every step listed in FORMAT.md asserts its
32-bit bound (:func:`_fits32`), and the tests run the engine over trained
reference models with those checks on.

Conventions (also in FORMAT.md):

* ``x >> s`` is an arithmetic shift, i.e. floor division by 2**s (NumPy,
  Python and C on every supported compiler agree for int32).
* :func:`rshr` is the one rounding rule: ``(v + 2**(s-1)) >> s`` (round half
  up, towards +infinity), and plain ``v`` for ``s == 0``.
* :func:`requant` is ``rshr(floor(acc * m / 2**15), s)`` computed as
  ``rshr((acc >> 15) * m + (((acc & 32767) * m) >> 15), s)``.

Usage::

    model = export.read_smd("data/reference/ref_rope_silu.smd")
    eng = IntEngine(model)
    state = eng.new_state()
    logits = eng.forward_token(state, token=3, pos=0)       # int32 [vocab]
    ids = eng.generate([1, 2, 3], n_new=20, temperature_q8=0)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# ---- constants of the specification --------------------------------------------------------
RES_MAX = 32767              # the residual stream lives in [-RES_MAX, RES_MAX]
ACT_MAX = 127                # int8 activations and weights live in [-127, 127] (never -128)
EXP_LUT_SIZE = 1024          # softmax/sampler table: exp(-i / EXP_STEPS_PER_NAT), i < 1024
EXP_STEPS_PER_NAT = 64
EXP_ONE = 32768              # EXP_LUT[0]: the table is Q15
ROPE_ONE = 16384             # rotary tables are Q14
LOGIT_CLAMP = 1 << 29        # logits are clamped to [-2**29, 2**29]
SOFTMAX_RECIP_NUM = 1 << 30  # one division per head and query: floor(2**30 / sum of weights)
NORM_RECIP_NUM = 1 << 29     # one division per RMSNorm: floor(2**29 / isqrt(S))
TEMP_Q8_MIN, TEMP_Q8_MAX = 16, 4096
SAMPLER_U_CAP = 16384
XORSHIFT_DEFAULT_STATE = 0x9E3779B9
# Limits of the int8 scheme that keep every intermediate inside int32 (see FORMAT.md, "Bounds").
MAX_DIM = 4096
MAX_INNER = 32767
MAX_VOCAB = 32768
MAX_SEQ = 8192
ACT_CODES = {"silu": 0, "gelu": 1, "swiglu": 2}
POS_CODES = {"none": 0, "learned": 1, "rope": 2}

_I32_LIMIT = 1 << 31

# Branch coverage: how often each clamp and special branch of FORMAT.md fired (data/reference/coverage.*).
BRANCHES = ("embed.clamp", "norm.scale_up", "norm.S_ge_2^30", "norm.out_clamp", "act.clamp", "rope.clamp",
            "attention.idx_ge_1024", "residual.clamp", "swiglu.clamp", "logit.clamp", "sampler.greedy",
            "sampler.tq_low_clamp", "sampler.tq_high_clamp", "sampler.top_k", "sampler.u_cap",
            "sampler.idx_ge_1024", "window.restart", "stop.eos")
COUNTERS: dict[str, int] = {b: 0 for b in BRANCHES}


def _hit(name: str, n) -> None:
    COUNTERS[name] += int(n)


def reset_counters() -> None:
    for b in BRANCHES:
        COUNTERS[b] = 0


class IntegerOnlyError(TypeError):
    """A float array reached an integer-only kernel."""


def _ints(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise IntegerOnlyError(f"{what}: integer-only kernel got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _fits32(a: np.ndarray, what: str) -> np.ndarray:
    """Assert the documented bound: every value of this step fits a signed 32-bit integer."""
    if a.size and (a.max() >= _I32_LIMIT or a.min() < -_I32_LIMIT):
        raise OverflowError(f"{what}: value outside int32 ({a.min()}..{a.max()}); the 32-bit bound is broken")
    return a


# ---- the arithmetic primitives ---------------------------------------------------------------
def rshr(v, s) -> np.ndarray:
    """Rounding arithmetic shift right: (v + 2**(s-1)) >> s for s >= 1, v for s == 0 (round half up)."""
    v = _ints(v, "rshr")
    s = np.asarray(s, dtype=np.int64)
    bias = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return _fits32(v + bias, "rshr(v + 2^(s-1))") >> s


def requant(acc, m, s) -> np.ndarray:
    """floor(acc * m / 2**15) rounded-shifted by s, with only 32-bit products (m <= 65535, |acc| < 2**29)."""
    acc = _fits32(_ints(acc, "requant"), "requant acc")
    m = np.asarray(m, dtype=np.int64)
    hi = acc >> 15
    lo = acc & 32767
    t = _fits32(hi * m, "requant hi*m") + (_fits32(lo * m, "requant lo*m") >> 15)
    return rshr(t, s)


def mulshift(v, m, s) -> np.ndarray:
    """rshr(v * m, s): used where |v| <= 127 and m <= 65535 (embedding rows into the residual)."""
    v = _ints(v, "mulshift")
    return rshr(_fits32(v * np.asarray(m, dtype=np.int64), "mulshift v*m"), s)


def clamp(v, lo: int, hi: int) -> np.ndarray:
    return np.clip(v, lo, hi)


def isqrt(n: int) -> int:
    """floor(sqrt(n)) for 0 <= n < 2**31, exactly (the bitwise method in FORMAT.md gives the same)."""
    import math
    return math.isqrt(int(n))


def norm_shift_bits(dim: int) -> int:
    """L = ceil(log2(dim)): squares are shifted right by L before summing, so the sum stays < 2**30."""
    return max(0, (int(dim) - 1).bit_length())


def norm_frac_bits(dim: int) -> int:
    """NF = 15 - ceil(L/2): the fraction bits of the normalised value x/sqrt(S), which is <= 2**(L/2)."""
    return 15 - (norm_shift_bits(dim) + 1) // 2


def exp_lut() -> np.ndarray:
    """EXP_LUT[i] = round(32768 * exp(-i/64)), i = 0..1023 (stored in every int8 model file)."""
    i = np.arange(EXP_LUT_SIZE, dtype=np.float64)
    return np.round(EXP_ONE * np.exp(-i / EXP_STEPS_PER_NAT)).astype(np.uint16)


# ---- RMSNorm, attention, FFN -----------------------------------------------------------------
def isqrt_rows(n: np.ndarray) -> np.ndarray:
    """Vectorised bitwise integer square root (FORMAT.md 6.2) of non-negative values < 2**31."""
    n = _ints(n, "isqrt").copy()
    res = np.zeros_like(n)
    bit = np.full_like(n, 1 << 30)
    for _ in range(16):
        bit = np.where(bit > n, bit >> 2, bit)
    for _ in range(16):
        active = bit != 0
        take = active & (n >= res + bit)
        n = np.where(take, n - res - bit, n)
        res = np.where(take, (res >> 1) + bit, np.where(active, res >> 1, res))
        bit = bit >> 2
    return res


def rmsnorm(x, gain, gain_shift: int, eps_q: int) -> np.ndarray:
    """Integer RMSNorm of residual rows x [..., dim] (values in +-RES_MAX) -> int8 [..., dim]."""
    x = _ints(x, "rmsnorm x")
    gain = _ints(gain, "rmsnorm gain")
    dim = x.shape[-1]
    L, NF = norm_shift_bits(dim), norm_frac_bits(dim)
    S = _fits32(((x * x) >> L).sum(-1) + eps_q, "rmsnorm S")
    e = np.zeros_like(S)
    for _ in range(15):  # normalise S into [2**28, 2**30) by steps of 4 (S >= 1, so at most 14 steps up)
        up = S < (1 << 28)
        S, e = np.where(up, S << 2, S), e + up
    down = S >= (1 << 30)
    _hit("norm.scale_up", (e > 0).sum())
    _hit("norm.S_ge_2^30", down.sum())
    S, e = np.where(down, S >> 2, S), e - down
    inv = NORM_RECIP_NUM // isqrt_rows(S)                       # one division per vector
    n = rshr(_fits32(x * inv[..., None], "rmsnorm x*inv"), (29 - e - NF)[..., None])
    y = rshr(_fits32(n * gain, "rmsnorm n*G"), gain_shift)
    _hit("norm.out_clamp", (np.abs(y) > ACT_MAX).sum())
    return clamp(y, -ACT_MAX, ACT_MAX)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b of integer arrays, exactly: in float64 (BLAS) when every partial sum is below 2**53, which holds
    for int8 x int8 products and for Q15 weights x int8 values; in int64 otherwise."""
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) * a.shape[-1]
    if bound < 2.0 ** 53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def matvec(w8: np.ndarray, a: np.ndarray) -> np.ndarray:
    """int32 accumulators of int8 weights [out, in] times int8 activations [..., in] -> [..., out]."""
    return _fits32(exact_matmul(_ints(a, "matvec a"), _ints(w8, "matvec w").T), "matvec acc")


def linear_to_act(w8, rq, a) -> np.ndarray:
    """Matrix product requantised per output row to an int8 activation."""
    acc = matvec(w8, a)
    y = requant(acc, rq[:, 0], rq[:, 1])
    _hit("act.clamp", (np.abs(y) > ACT_MAX).sum())
    return clamp(y, -ACT_MAX, ACT_MAX)


def linear_to_residual(x, w8, rq, a) -> np.ndarray:
    acc = matvec(w8, a)
    y = x + requant(acc, rq[:, 0], rq[:, 1])
    _hit("residual.clamp", (np.abs(y) > RES_MAX).sum())
    return clamp(y, -RES_MAX, RES_MAX)


def apply_rope(q, cos, sin) -> np.ndarray:
    """Rotate adjacent pairs of q [..., n, H, hd] by Q14 tables cos/sin [n, hd/2]; result clamped to int8."""
    q0, q1 = q[..., 0::2], q[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    r0 = rshr(_fits32(q0 * c - q1 * s, "rope"), 14)
    r1 = rshr(_fits32(q0 * s + q1 * c, "rope"), 14)
    out = np.empty_like(q)
    out[..., 0::2], out[..., 1::2] = r0, r1
    _hit("rope.clamp", (np.abs(out) > ACT_MAX).sum())
    return clamp(out, -ACT_MAX, ACT_MAX)


def attention(q, kc, vc, p0: int, att_m: int, att_s: int, lut: np.ndarray) -> np.ndarray:
    """Causal integer softmax attention.

    q [..., n, H, hd] are queries at positions p0..p0+n-1; kc, vc [..., p0+n, H, hd] hold keys and
    values of positions 0..p0+n-1 (``...``: independent sequences). Returns int8 [..., n, H, hd] on
    the scale of v.
    """
    n = q.shape[-3]
    T = kc.shape[-3]
    heads_first = lambda a: np.swapaxes(a, -3, -2)                            # noqa: E731 [..., H, n, hd]
    scores = _fits32(exact_matmul(heads_first(q), np.swapaxes(heads_first(kc), -1, -2)),
                     "attention q.k")                                          # [..., H, n, T]
    visible = np.arange(T)[None, :] <= (p0 + np.arange(n))[:, None]            # [n, T]
    scores = np.where(visible, scores, np.iinfo(np.int64).min // 4)
    top = scores.max(-1, keepdims=True)
    diff = np.where(visible, top - scores, 0)
    idx = requant(diff, att_m, att_s)
    _hit("attention.idx_ge_1024", (visible & (idx >= EXP_LUT_SIZE)).sum())
    w = np.where(visible & (idx < EXP_LUT_SIZE), lut[np.minimum(idx, EXP_LUT_SIZE - 1)], 0)
    total = _fits32(w.sum(-1, keepdims=True), "attention sum of weights")
    inv = SOFTMAX_RECIP_NUM // total
    p = _fits32(w * inv, "attention w*inv") >> 15                             # Q15 probabilities
    o = _fits32(heads_first(exact_matmul(p, heads_first(vc))), "attention p.v")
    return rshr(o, 15)


# ---- the model -------------------------------------------------------------------------------
@dataclass
class EngineState:
    """KV cache of one sequence: int8 keys (after rotary) and values per layer, [max_seq_len, dim]."""
    k: np.ndarray
    v: np.ndarray
    pos: int = 0


class IntEngine:
    """Runs an int8 model read by :func:`starmind_lib.quant.smd.read_smd` with integers only."""

    def __init__(self, model):
        h = model.header
        if h.scheme != "int8":
            raise ValueError(f"IntEngine runs int8 models; this file's scheme is {h.scheme!r}")
        self.h = h
        self.t = {name: np.asarray(a).astype(np.int64) for name, a in model.tensors.items()}
        self.hd = h.dim // h.n_heads
        self.lut = self.t["exp_lut"]
        from .smd_text import TextSpec
        self.text = getattr(model, "text", None) or TextSpec()

    # -- state --
    def new_state(self) -> EngineState:
        h = self.h
        shape = (h.n_layers, h.max_seq_len, h.n_heads, self.hd)
        return EngineState(np.zeros(shape, np.int64), np.zeros(shape, np.int64), 0)

    # -- one block of tokens at consecutive positions --
    def _embed(self, tokens: np.ndarray, p0: int) -> np.ndarray:
        """tokens [..., n] at positions p0..p0+n-1 -> residual rows [..., n, dim]."""
        t = self.t
        rq = t["tok_emb.rq"][tokens]
        x = mulshift(t["tok_emb"][tokens], rq[..., 0:1], rq[..., 1:2])
        if self.h.pos == "learned":
            pos = np.arange(p0, p0 + tokens.shape[-1])
            prq = t["pos_emb.rq"][pos]
            x = x + mulshift(t["pos_emb"][pos], prq[:, 0:1], prq[:, 1:2])
        _hit("embed.clamp", (np.abs(x) > RES_MAX).sum())
        return clamp(x, -RES_MAX, RES_MAX)

    def _layer(self, i: int, x: np.ndarray, state: EngineState | None, p0: int) -> np.ndarray:
        """Residual rows x [..., n, dim] -> the next layer's. With ``state``, keys and values go to its
        cache; without, x holds whole sequences from position 0 (``p0 == 0``) and attends to itself."""
        t, h, hd = self.t, self.h, self.hd
        lead, n = x.shape[:-2], x.shape[-2]
        c = t[f"layers.{i}.consts"]
        a = rmsnorm(x, t[f"layers.{i}.attn_norm"], int(c[0]), h.eps_q)
        q, k, v = (linear_to_act(t[f"layers.{i}.{w}"], t[f"layers.{i}.{w}.rq"], a).reshape(*lead, n, h.n_heads, hd)
                   for w in ("wq", "wk", "wv"))
        if h.pos == "rope":
            cos, sin = t["rope.cos"][p0:p0 + n], t["rope.sin"][p0:p0 + n]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if state is not None:
            state.k[i, p0:p0 + n], state.v[i, p0:p0 + n] = k, v
            k, v = state.k[i, :p0 + n], state.v[i, :p0 + n]
        o = attention(q, k, v, p0, int(c[2]), int(c[3]), self.lut)
        x = linear_to_residual(x, t[f"layers.{i}.wo"], t[f"layers.{i}.wo.rq"], o.reshape(*lead, n, h.dim))
        a = rmsnorm(x, t[f"layers.{i}.ffn_norm"], int(c[1]), h.eps_q)
        hq = linear_to_act(t[f"layers.{i}.w1"], t[f"layers.{i}.w1.rq"], a)
        g = t[f"layers.{i}.act_lut"][hq + 128]
        if h.activation == "swiglu":
            u = linear_to_act(t[f"layers.{i}.w3"], t[f"layers.{i}.w3.rq"], a)
            g = requant(g * u, int(c[4]), int(c[5]))
            _hit("swiglu.clamp", (np.abs(g) > ACT_MAX).sum())
            g = clamp(g, -ACT_MAX, ACT_MAX)
        return linear_to_residual(x, t[f"layers.{i}.w2"], t[f"layers.{i}.w2.rq"], g)

    def _head(self, x: np.ndarray) -> np.ndarray:
        t, h = self.t, self.h
        a = rmsnorm(x, t["final_norm"], h.final_norm_shift, h.eps_q)
        w = t["tok_emb"] if h.tied else t["head"]
        acc = matvec(w, a)
        rq = t["head.rq"]
        _hit("logit.clamp", (np.abs(requant(acc, rq[:, 0], rq[:, 1])) > LOGIT_CLAMP).sum())
        return clamp(requant(acc, rq[:, 0], rq[:, 1]), -LOGIT_CLAMP, LOGIT_CLAMP).astype(np.int32)

    def forward_block(self, state: EngineState, tokens, p0: int) -> np.ndarray:
        """Logits int32 [n, vocab] for tokens at positions p0..p0+n-1 (appends to the KV cache)."""
        tokens = _ints(tokens, "tokens").reshape(-1)
        n = len(tokens)
        if p0 != state.pos:
            raise ValueError(f"position {p0} does not continue the cache (next position is {state.pos})")
        if p0 + n > self.h.max_seq_len:
            raise ValueError(f"positions up to {p0 + n - 1} exceed max_seq_len={self.h.max_seq_len}")
        if n and (tokens.min() < 0 or tokens.max() >= self.h.vocab_size):
            raise ValueError(f"token id out of range [0, {self.h.vocab_size})")
        x = self._embed(tokens, p0)
        for i in range(self.h.n_layers):
            x = self._layer(i, x, state, p0)
        state.pos = p0 + n
        return self._head(x)

    def forward_token(self, state: EngineState, token: int, pos: int) -> np.ndarray:
        """One decode step: int32 logits [vocab] of the token after `token` at position `pos`."""
        return self.forward_block(state, np.asarray([token]), pos)[0]

    def logits_sequence(self, tokens) -> np.ndarray:
        """Batched evaluation: int32 logits [T, vocab] of a whole sequence (bit-identical to stepping)."""
        return self.forward_block(self.new_state(), tokens, 0)

    def logits_windows(self, windows, rows=None) -> np.ndarray:
        """Host-side evaluation of many sequences at once: windows int [B, n] each from position 0.

        Returns the int32 logits [B, n, vocab], or with ``rows`` (bool [B, n]) only those positions'
        [rows.sum(), vocab] in row-major order; each equals :meth:`logits_sequence` of its window."""
        windows = _ints(windows, "tokens")
        if windows.ndim != 2 or windows.shape[1] > self.h.max_seq_len:
            raise ValueError(f"windows must be [B, n <= max_seq_len={self.h.max_seq_len}], got {windows.shape}")
        if windows.size and (windows.min() < 0 or windows.max() >= self.h.vocab_size):
            raise ValueError(f"token id out of range [0, {self.h.vocab_size})")
        x = self._embed(windows, 0)
        for i in range(self.h.n_layers):
            x = self._layer(i, x, None, 0)
        return self._head(x if rows is None else x[np.asarray(rows, bool)])

    def logits_real(self, logits: np.ndarray) -> np.ndarray:
        """Host side only: the logits in nats (logit / 2**logit_frac), for bits per character."""
        return np.asarray(logits, dtype=np.float64) / float(1 << self.h.logit_frac)

    def generate(self, prompt, n_new: int, temperature_q8: int = 0, top_k: int = 0, seed: int = 0,
                 window: bool = False, stop_at_eos: bool | None = None) -> list[int]:
        """Prefill the prompt, then emit n_new tokens (greedy when temperature_q8 == 0).

        ``window``: continue past max_seq_len by the window restart of FORMAT.md 6.7 (else the
        sequence must fit). ``stop_at_eos`` (default: the file's stop rule): end after emitting EOS.
        """
        prompt = [int(p) for p in prompt]
        if not prompt:
            raise ValueError("generate needs a prompt of at least one token")
        if not window and len(prompt) + n_new - 1 > self.h.max_seq_len:
            raise ValueError(f"prompt ({len(prompt)}) + n_new ({n_new}) - 1 exceeds max_seq_len={self.h.max_seq_len}")
        if stop_at_eos is None:
            stop_at_eos = self.text.stop_at_eos
        seq = WindowedSequence(self)
        rng = XorShift32(seed)
        logits = seq.feed(prompt)
        out: list[int] = []
        for j in range(n_new):
            tok = sample(logits, self.h.logit_frac, temperature_q8, top_k, rng, self.lut)
            out.append(tok)
            if stop_at_eos and tok == self.text.eos_id:
                _hit("stop.eos", 1)
                break
            if j + 1 < n_new:
                logits = seq.feed([tok])
        return out


class WindowedSequence:
    """Feeding tokens past max_seq_len (FORMAT.md 6.7, the window restart): when the cache holds
    T = max_seq_len positions and another token comes, the last K = T // 2 tokens are prefilled
    again from position 0 into an empty cache (their logits are discarded), then the token goes
    to position K. ``counters`` counts restarts."""

    def __init__(self, eng: "IntEngine"):
        self.eng, self.state, self.hist, self.restarts = eng, eng.new_state(), [], 0

    def feed(self, tokens) -> np.ndarray:
        """Logits after the last of ``tokens``."""
        T, logits = self.eng.h.max_seq_len, None
        tokens = [int(t) for t in tokens]
        while tokens:
            if self.state.pos == T:
                keep = self.hist[T - T // 2:]
                self.state, self.hist, self.restarts = self.eng.new_state(), keep, self.restarts + 1
                _hit("window.restart", 1)
                if keep:
                    self.eng.forward_block(self.state, np.array(keep), 0)
            n = min(len(tokens), T - self.state.pos)
            logits = self.eng.forward_block(self.state, np.array(tokens[:n]), self.state.pos)[-1]
            self.hist += tokens[:n]
            tokens = tokens[n:]
        return logits


def cross_entropy_rows(logits, targets, logit_frac: int) -> np.ndarray:
    """Host side: cross-entropy in nats of each row of int32 logits [n, V] (units of 2**-logit_frac nats)
    against target ids [n]; bits per character = nats / ln 2 / characters."""
    z = np.asarray(logits, dtype=np.float64) / float(1 << logit_frac)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    targets = np.asarray(targets)
    return -logp[np.arange(len(targets)), targets]



# ---- sampling --------------------------------------------------------------------------------
class XorShift32:
    """xorshift32 (Marsaglia, shifts 13/17/5) on uint32; state 0 is replaced by 0x9E3779B9."""

    def __init__(self, seed: int):
        self.state = (int(seed) & 0xFFFFFFFF) or XORSHIFT_DEFAULT_STATE

    def next(self) -> int:
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x


def argmax_lowest(logits) -> int:
    """Greedy choice: the largest logit, ties to the lowest token id."""
    return int(np.argmax(_ints(logits, "argmax")))  # np.argmax returns the first maximum


def top_k_mask(logits: np.ndarray, k: int) -> np.ndarray:
    """Candidates: the k largest logits ordered by (logit descending, id ascending); all when k <= 0 or k >= V."""
    V = len(logits)
    if k <= 0 or k >= V:
        return np.ones(V, dtype=bool)
    order = np.lexsort((np.arange(V), -logits))  # primary: logit desc, secondary: id asc
    mask = np.zeros(V, dtype=bool)
    mask[order[:k]] = True
    return mask


def sample(logits, logit_frac: int, temperature_q8: int, top_k: int, rng: XorShift32, lut: np.ndarray) -> int:
    """Integer sampling: exp-table weights of (max - logit) / T, a cumulative sum and one PRNG draw."""
    logits = _ints(logits, "sample logits")
    if temperature_q8 <= 0:
        _hit("sampler.greedy", 1)
        return argmax_lowest(logits)
    _hit("sampler.tq_low_clamp", temperature_q8 < TEMP_Q8_MIN)
    _hit("sampler.tq_high_clamp", temperature_q8 > TEMP_Q8_MAX)
    _hit("sampler.top_k", 0 < top_k < len(logits))
    tq = min(max(int(temperature_q8), TEMP_Q8_MIN), TEMP_Q8_MAX)
    inv_t = (1 << 20) // tq
    mask = top_k_mask(logits, top_k)
    top = logits.max()
    u = np.minimum((top - logits) >> (logit_frac - 6), SAMPLER_U_CAP)
    _hit("sampler.u_cap", (((top - logits) >> (logit_frac - 6)) > SAMPLER_U_CAP).sum())
    idx = _fits32(u * inv_t, "sampler u*inv_t") >> 12
    _hit("sampler.idx_ge_1024", (mask & (idx >= EXP_LUT_SIZE)).sum())
    w = np.where(mask & (idx < EXP_LUT_SIZE), lut[np.minimum(idx, EXP_LUT_SIZE - 1)], 0)
    total = int(_fits32(w.sum(keepdims=True), "sampler total")[0])
    r = (rng.next() >> 1) % total
    cum = np.cumsum(w)
    return int(np.searchsorted(cum, r, side="right"))
