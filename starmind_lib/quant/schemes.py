"""Post-training quantisation: weight-only schemes for quality, and the int8 integer-only conversion.

Two things live here:

* **Weight-only post-training quantisation** (`SCHEMES`): float16, int8 per
  tensor, int8 per row (output channel), int4 per group of N (default 32), applied to every
  weight matrix of a trained :class:`~starmind_lib.model.Transformer` (norm
  gains stay float), evaluated in bits per character, with the bytes each
  scheme needs on a device.
* **The integer-only conversion** (`to_int8_engine`): calibrate activation
  scales on training text with a float reference forward pass, quantise
  weights per row, and derive every fixed-point constant of the int8 scheme
  (requant multipliers and shifts, RMSNorm gains, LUTs, rotary tables) for
  :mod:`starmind_lib.quant.intengine` and the device file (:mod:`starmind_lib.quant.smd`).

::

    calib = calibrate(model, calib_seqs)                 # activation ranges on training text
    header, tensors = to_int8_engine(model, calib)
    write_smd("m.smd", header, tensors, vocab)
    rows = evaluate_schemes(model, story_eval, calib_seqs)  # bpc, delta, bytes per scheme (whole stories)

The chapter-05 stage, :func:`starmind_lib.quant.stage.run_quant`, does this for
Study v2's models and appends one row per (run, scheme) to the resumable table
``<results_dir>/quant/quant.{jsonl,parquet}``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import intengine as ie
from ..config import ConfigError, StageConfig, between
from .smd import SmdHeader
from ..model import NORM_EPS, Transformer, rope_tables, state_dict_for_export

SCHEMES = ("float32", "float16", "int8_tensor", "int8_row", "int4_group32", "int8_engine")
# Any group size works: "int4_group<N>" (e.g. int4_group16, int4_group64).
F_MAX = 1.99  # requant factors stay below 2 so the multiplier fits 16 bits with shift >= 0
# The residual stream has 15 bits: spending one on headroom costs nothing measurable, while a
# residual clamped on text hotter than the calibration windows costs a lot.
RES_HEADROOM = 2.0


# ---- the float reference forward pass (numpy, float64) with an activation trace ----------------
def _silu(x):
    return x / (1.0 + np.exp(-x))


def _gelu(x):
    import torch
    return torch.nn.functional.gelu(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


ACTIVATIONS = {"silu": _silu, "gelu": _gelu, "swiglu": _silu}


def numpy_weights(model: Transformer) -> dict[str, np.ndarray]:
    return {k: v.double().numpy() for k, v in state_dict_for_export(model).items()}


class Trace:
    """Running max |value| per named point of the network (the calibration statistics)."""

    def __init__(self):
        self.maxabs: dict[str, float] = {}

    def see(self, name: str, a: np.ndarray) -> None:
        self.maxabs[name] = max(self.maxabs.get(name, 0.0), float(np.abs(a).max(initial=0.0)))


def float_forward(sd: dict, cfg, tokens, trace: Trace | None = None) -> np.ndarray:
    """Logits [T, V] of one sequence; records activation ranges in `trace`."""
    see = trace.see if trace else (lambda *a: None)
    T, D, H = len(tokens), cfg.dim, cfg.n_heads
    hd = D // H
    x = sd["tok_emb"][tokens]
    if cfg.pos == "learned":
        x = x + sd["pos_emb"][:T]
    see("res", x)
    cos, sin = (t.double().numpy()[:T] for t in rope_tables(max(hd - hd % 2, 2), cfg.max_seq_len))
    act = ACTIVATIONS[cfg.activation]

    def norm(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + NORM_EPS) * w

    def rope(q):
        q0, q1 = q[..., 0::2], q[..., 1::2]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.stack((q0 * c - q1 * s, q0 * s + q1 * c), -1).reshape(q.shape)

    mask = np.tril(np.ones((T, T), bool))
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        a = norm(x, sd[p + "attn_norm"])
        see(p + "attn_in", a)
        q, k, v = ((a @ sd[p + w].T).reshape(T, H, hd) for w in ("wq", "wk", "wv"))
        see(p + "q", q), see(p + "k", k)
        if cfg.pos == "rope":
            q, k = rope(q), rope(k)
            see(p + "q", q), see(p + "k", k)
        see(p + "v", v)
        att = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        att = np.where(mask[None], att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, D)
        x = x + o @ sd[p + "wo"].T
        see("res", x)
        a = norm(x, sd[p + "ffn_norm"])
        see(p + "ffn_in", a)
        h = a @ sd[p + "w1"].T
        see(p + "h", h)
        g = act(h)
        see(p + "g", g)
        if cfg.activation == "swiglu":
            u = a @ sd[p + "w3"].T
            see(p + "u", u)
            g = g * u
            see(p + "p", g)
        x = x + g @ sd[p + "w2"].T
        see("res", x)
    a = norm(x, sd["final_norm"])
    see("final", a)
    return a @ (sd["tok_emb"] if cfg.tied else sd["head"]).T


def calibrate(model: Transformer, sequences) -> Trace:
    """Activation ranges of the float model over calibration sequences (token id arrays)."""
    sd, tr = numpy_weights(model), Trace()
    for seq in sequences:
        float_forward(sd, model.cfg, np.asarray(seq)[:model.cfg.max_seq_len], tr)
    return tr


# ---- fixed-point constants ---------------------------------------------------------------------
def requant_params(f) -> np.ndarray:
    """(m, s) per factor f with m / 2**(15+s) ~= f, m in [0, 65535], s in [0, 30] (s as large as fits)."""
    f = np.atleast_1d(np.asarray(f, dtype=np.float64))
    if (f < 0).any() or (f >= 65535.5 / 32768).any():
        raise ValueError(f"requant factor out of [0, 2): max {f.max():.4g}")
    with np.errstate(divide="ignore"):
        s = np.floor(np.log2(65535.49 / (np.maximum(f, 1e-300) * 32768))).clip(0, 30)
    m = np.round(f * 2.0 ** (15 + s))
    over = m > 65535
    s[over] -= 1
    m[over] = np.round(f[over] * 2.0 ** (15 + s[over]))
    return np.stack([m, s], -1).astype(np.int32)


def mulshift_params(f) -> np.ndarray:
    """(m, s) with m / 2**s ~= f, m in [0, 65535], s in [0, 30]."""
    f = np.atleast_1d(np.asarray(f, dtype=np.float64))
    if (f < 0).any() or (f > 65535).any():
        raise ValueError(f"embedding scale factor out of [0, 65535]: max {f.max():.4g}")
    with np.errstate(divide="ignore"):
        s = np.floor(np.log2(65535.49 / np.maximum(f, 1e-300))).clip(0, 30)
    m = np.round(f * 2.0 ** s)
    over = m > 65535
    s[over] -= 1
    m[over] = np.round(f[over] * 2.0 ** s[over])
    return np.stack([m, s], -1).astype(np.int32)


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output row in [-127, 127]: (q, scale) with w ~= q * scale[:, None]."""
    amax = np.abs(w).max(1)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8), scale


def _act_scale(trace: Trace, name: str) -> float:
    return max(trace.maxabs.get(name, 0.0), 1e-6) / 127.0


def norm_gain(w: np.ndarray, s_out: float, dim: int) -> tuple[np.ndarray, int]:
    """int16 gains G and shift gs: y = rshr(n * G, gs) with n = x/sqrt(S) in Q(NF)."""
    L, NF = ie.norm_shift_bits(dim), ie.norm_frac_bits(dim)
    real = w * math.sqrt(dim / 2 ** L) / s_out  # y = (x / sqrt(S)) * real
    amax = max(float(np.abs(real).max()), 1e-30)
    gs = int(np.clip(math.floor(math.log2(32767 / amax)) + NF, 0, 30))
    G = np.round(real * 2.0 ** (gs - NF))
    if np.abs(G).max() > 32767:
        raise ValueError(f"RMSNorm gain too large for int16 (max {np.abs(G).max()})")
    return G.astype(np.int16), gs


def act_lut(name: str, s_in: float, s_out: float) -> np.ndarray:
    """ACT[j] = round(act((j - 128) * s_in) / s_out), clamped to [-127, 127]."""
    xs = (np.arange(256) - 128) * s_in
    return np.clip(np.round(ACTIVATIONS[name](xs) / s_out), -127, 127).astype(np.int8)


def rope_q14(head_dim: int, max_seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Q14 cos/sin tables [max_seq_len, head_dim/2] of the angles p * 10000^(-2j/head_dim), in float64."""
    inv = 10000.0 ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    ang = np.arange(max_seq_len, dtype=np.float64)[:, None] * inv[None, :]
    q14 = lambda a: np.round(a * ie.ROPE_ONE).astype(np.int16)  # noqa: E731
    return q14(np.cos(ang)), q14(np.sin(ang))


def _check_int8_limits(cfg) -> None:
    if cfg.vocab_size > ie.MAX_VOCAB or cfg.dim > ie.MAX_DIM or cfg.ffn_hidden > ie.MAX_INNER \
            or cfg.max_seq_len > ie.MAX_SEQ:
        raise ValueError(f"model exceeds the int8 scheme's limits (vocab <= {ie.MAX_VOCAB}, dim <= {ie.MAX_DIM}, "
                         f"ffn_hidden <= {ie.MAX_INNER}, max_seq_len <= {ie.MAX_SEQ}): {cfg}")


def to_int8_engine(model: Transformer, trace: Trace,
                   res_headroom: float = RES_HEADROOM) -> tuple[SmdHeader, dict[str, np.ndarray]]:
    """Every tensor and constant of the int8 integer-only scheme (see FORMAT.md). The residual stream's
    int16 range spans ``res_headroom`` times the largest residual value seen in calibration (the shipped
    files use RES_HEADROOM; a smaller one clips the largest values to keep the rest finer, see
    :mod:`starmind_lib.quant.residual_scale`)."""
    if not 0 < res_headroom <= 16:
        raise ValueError(f"res_headroom {res_headroom}: want 0 < res_headroom <= 16")
    cfg = model.cfg
    _check_int8_limits(cfg)
    sd = numpy_weights(model)
    D, hd = cfg.dim, cfg.dim // cfg.n_heads
    t: dict[str, np.ndarray] = {"exp_lut": ie.exp_lut()}
    qw = {k: quantize_rows(v) for k, v in sd.items() if v.ndim == 2}

    # activation scales per layer (raised where a requant factor would reach 2)
    layers = []
    for i in range(cfg.n_layers):
        p = f"layers.{i}."
        sc = {n: _act_scale(trace, p + n) for n in ("attn_in", "q", "k", "v", "ffn_in", "h", "g", "u", "p")}
        f_att = sc["q"] * sc["k"] / math.sqrt(hd) * ie.EXP_STEPS_PER_NAT
        if f_att > F_MAX:
            sc["q"] *= math.sqrt(f_att / F_MAX)
            sc["k"] *= math.sqrt(f_att / F_MAX)
        for w, src, dst in (("wq", "attn_in", "q"), ("wk", "attn_in", "k"), ("wv", "attn_in", "v"),
                            ("w1", "ffn_in", "h"), ("w3", "ffn_in", "u")):
            if p + w in qw:
                sc[dst] = max(sc[dst], qw[p + w][1].max() * sc[src] / F_MAX)
        if cfg.activation == "swiglu":
            sc["p"] = max(sc["p"], sc["g"] * sc["u"] / F_MAX)
        sc["w2_in"] = sc["p"] if cfg.activation == "swiglu" else sc["g"]
        layers.append(sc)
    s_x = max(trace.maxabs.get("res", 0.0), 1e-6) * res_headroom / ie.RES_MAX
    for i, sc in enumerate(layers):
        p = f"layers.{i}."
        s_x = max(s_x, qw[p + "wo"][1].max() * sc["v"] / F_MAX, qw[p + "w2"][1].max() * sc["w2_in"] / F_MAX)

    e_q, e_s = qw["tok_emb"]
    t["tok_emb"], t["tok_emb.rq"] = e_q, mulshift_params(e_s / s_x)
    if cfg.pos == "learned":
        t["pos_emb"], t["pos_emb.rq"] = qw["pos_emb"][0], mulshift_params(qw["pos_emb"][1] / s_x)
    if cfg.pos == "rope":
        t["rope.cos"], t["rope.sin"] = rope_q14(hd, cfg.max_seq_len)
    for i, sc in enumerate(layers):
        p = f"layers.{i}."
        t[p + "attn_norm"], gs_a = norm_gain(sd[p + "attn_norm"], sc["attn_in"], D)
        t[p + "ffn_norm"], gs_f = norm_gain(sd[p + "ffn_norm"], sc["ffn_in"], D)
        for w, src, dst in (("wq", "attn_in", "q"), ("wk", "attn_in", "k"), ("wv", "attn_in", "v"),
                            ("w1", "ffn_in", "h"), ("w3", "ffn_in", "u")):
            if p + w in qw:
                t[p + w], t[p + w + ".rq"] = qw[p + w][0], requant_params(qw[p + w][1] * sc[src] / sc[dst])
        for w, src in (("wo", "v"), ("w2", "w2_in")):
            t[p + w], t[p + w + ".rq"] = qw[p + w][0], requant_params(qw[p + w][1] * sc[src] / s_x)
        t[p + "act_lut"] = act_lut(cfg.activation, sc["h"], sc["g"])
        att = requant_params(sc["q"] * sc["k"] / math.sqrt(hd) * ie.EXP_STEPS_PER_NAT)[0]
        glu = requant_params(sc["g"] * sc["u"] / sc["p"])[0] if cfg.activation == "swiglu" else (0, 0)
        t[p + "consts"] = np.array([gs_a, gs_f, att[0], att[1], glu[0], glu[1], 0, 0], np.int32)

    s_f = _act_scale(trace, "final")
    t["final_norm"], gs_final = norm_gain(sd["final_norm"], s_f, D)
    h_q, h_s = (e_q, e_s) if cfg.tied else qw["head"]
    if not cfg.tied:
        t["head"] = h_q
    lf = 10
    while lf > 6 and (h_s * s_f * 2.0 ** lf).max() > F_MAX:
        lf -= 1
    t["head.rq"] = requant_params(np.minimum(h_s * s_f * 2.0 ** lf, F_MAX))
    L = ie.norm_shift_bits(D)
    eps_q = int(np.clip(round(NORM_EPS * D / (s_x ** 2 * 2 ** L)), 1, 1 << 24))
    header = SmdHeader("int8", cfg.vocab_size, D, cfg.n_layers, cfg.n_heads, cfg.ffn_hidden, cfg.activation,
                       cfg.pos, cfg.tied, cfg.max_seq_len, logit_frac=lf, eps_q=eps_q, final_norm_shift=gs_final)
    return header, t


def to_float32(model: Transformer) -> tuple[SmdHeader, dict[str, np.ndarray]]:
    """The float32 scheme's tensors (the C runtime's float baseline)."""
    cfg = model.cfg
    t = {k: v.float().numpy() for k, v in state_dict_for_export(model).items()}
    if cfg.pos == "rope":
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len)
        t["rope.cos"], t["rope.sin"] = cos.numpy(), sin.numpy()
    header = SmdHeader("float32", cfg.vocab_size, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.ffn_hidden,
                       cfg.activation, cfg.pos, cfg.tied, cfg.max_seq_len)
    return header, t


# ---- weight-only post-training quantisation (quality study) -----------------------------------
def int4_group_size(scheme: str) -> int | None:
    """N of 'int4_group<N>', None for any other scheme."""
    if not scheme.startswith("int4_group"):
        return None
    n = scheme[len("int4_group"):]
    if not n.isdigit() or not 2 <= int(n) <= 4096:
        raise ValueError(f"scheme {scheme!r}: the group size must be an integer in [2, 4096], e.g. 'int4_group32'")
    return int(n)


def known_scheme(scheme: str) -> bool:
    try:
        return scheme in SCHEMES or int4_group_size(scheme) is not None
    except ValueError:
        return False


def _fake_quant(w, scheme: str):
    """w (torch, [out, in]) quantised and dequantised by `scheme`."""
    import torch
    if scheme == "float32":
        return w
    if scheme == "float16":
        return w.half().float()
    if scheme == "int8_tensor":
        s = w.abs().max().clamp_min(1e-12) / 127
        return (w / s).round().clamp(-127, 127) * s
    if scheme == "int8_row":
        s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
        return (w / s).round().clamp(-127, 127) * s
    group = int4_group_size(scheme)
    if group:
        out_f, in_f = w.shape
        pad = (-in_f) % group
        wp = torch.nn.functional.pad(w, (0, pad)).reshape(out_f, -1, group)
        s = wp.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 7
        s = s.half().float()  # scales are stored as float16
        return ((wp / s).round().clamp(-7, 7) * s).reshape(out_f, -1)[:, :in_f]
    raise ValueError(f"unknown quantisation scheme {scheme!r}; known: {', '.join(SCHEMES)}")


def quantized_copy(model: Transformer, scheme: str) -> Transformer:
    """A copy of `model` whose weight matrices went through `scheme` (norm gains stay float32)."""
    import copy

    import torch
    q = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in q.named_parameters():
            if p.ndim == 2:
                p.copy_(_fake_quant(p.detach().float(), scheme))
    return q


def scheme_bytes(model: Transformer, scheme: str) -> int:
    """Bytes of the weights on a device: values plus their scales (vectors stay float32)."""
    mats = [p for p in model.parameters() if p.ndim == 2]
    vec = sum(p.numel() for p in model.parameters() if p.ndim != 2) * 4
    n = sum(p.numel() for p in mats)
    if scheme == "float32":
        return 4 * n + vec
    if scheme == "float16":
        return 2 * n + vec
    if scheme == "int8_tensor":
        return n + 4 * len(mats) + vec
    if scheme == "int8_row":
        return n + 4 * sum(p.shape[0] for p in mats) + vec
    group = int4_group_size(scheme)
    if group:
        groups = sum(p.shape[0] * -(-p.shape[1] // group) for p in mats)
        return (n + 1) // 2 + 2 * groups + vec
    raise ValueError(f"scheme_bytes: {scheme!r} has no formula (int8_engine is measured from its file)")


def engine_story_nats(eng: ie.IntEngine, ev, model: Transformer | None = None,
                      batch: int = 64) -> tuple[np.ndarray, float | None]:
    """The integer engine's nats per story over a :class:`~starmind_lib.training.evaluation.StoryEval`
    (teacher forced, the scored positions of every window) and, given the float ``model``, the fraction of
    those positions where its argmax equals the float model's (else None)."""
    import torch
    per_window = np.zeros(len(ev.inputs), np.float64)
    same = 0
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    for i in range(0, len(ev.inputs), batch):
        x, y, m = ev.inputs[i:i + batch], ev.targets[i:i + batch], ev.mask[i:i + batch]
        logits = eng.logits_windows(x, m)                                   # [scored positions, vocab]
        nats = ie.cross_entropy_rows(logits, y[m], eng.h.logit_frac)
        per_window[i:i + len(x)] = np.bincount(np.nonzero(m)[0], weights=nats, minlength=len(x))
        if model is not None:
            with torch.no_grad():
                f = model(torch.from_numpy(x))[0].argmax(-1).numpy()[m]
            same += int((f == logits.argmax(-1)).sum())
    if model is not None:
        model.train(was_training)
    agreement = same / max(ev.n_targets, 1) if model is not None else None
    return np.bincount(ev.story, weights=per_window, minlength=ev.n_stories), agreement


def evaluate_schemes(model: Transformer, ev, calib_seqs, schemes=SCHEMES,
                     vocab: list[bytes] | None = None, smd_path=None, text=None) -> list[dict]:
    """One row per scheme over whole stories (``ev``: a StoryEval): bpc and its 95 % interval over stories,
    the cost against float32 (``bpc_delta``) with its paired interval, bytes; the int8 engine also gets
    greedy agreement. float32 is always evaluated (every delta needs it)."""
    import torch

    from ..training.evaluation import bootstrap_bpc, bootstrap_delta, story_nats
    torch.set_num_threads(1)
    base = story_nats(model, ev)
    rows = []
    for scheme in schemes:
        row = {"scheme": scheme, "error": ""}
        try:
            nats = base if scheme == "float32" else _scheme_nats(row, model, ev, calib_seqs, scheme, vocab,
                                                                   smd_path, text)
        except (ValueError, OverflowError) as e:  # a model outside the scheme's limits: recorded, not fatal
            row.update(bpc=float("nan"), bytes=0, error=f"{type(e).__name__}: {e}")
            rows.append(row)
            continue
        if scheme == "float32":
            row["bytes"] = scheme_bytes(model, scheme)
        row["bpc"], row["bpc_ci_low"], row["bpc_ci_high"] = bootstrap_bpc(nats, ev.story_chars)
        row["bpc_delta_ci_low"], row["bpc_delta_ci_high"] = bootstrap_delta(nats, base, ev.story_chars)
        rows.append(row)
    bpc_f32 = float(base.sum() / ev.story_chars.sum() / math.log(2))
    for r in rows:
        r["bpc_float32"] = bpc_f32
        r["bpc_delta"] = r["bpc"] - bpc_f32
    return rows


def _scheme_nats(row, model, ev, calib_seqs, scheme, vocab, smd_path, text=None) -> np.ndarray:
    """Nats per story of one scheme; fills the row's bytes (and the engine's extra columns)."""
    from .smd import pack_smd, parse_smd
    from ..training.evaluation import story_nats
    if scheme != "int8_engine":
        row["bytes"] = scheme_bytes(model, scheme)
        return story_nats(quantized_copy(model, scheme), ev)
    header, tensors = to_int8_engine(model, calibrate(model, calib_seqs))
    data = pack_smd(header, tensors, vocab or [bytes([65 + i % 26]) for i in range(model.cfg.vocab_size)],
                    text if vocab else None)   # text: special tokens and encoder (FORMAT.md 2.4)
    if smd_path is not None:
        from ..provenance import atomic_write_bytes
        atomic_write_bytes(smd_path, data)
    nats, agreement = engine_story_nats(ie.IntEngine(parse_smd(data)), ev, model)
    row.update(bytes=len(data), greedy_agreement=agreement, logit_frac=header.logit_frac)
    return nats


# ---- the chapter-05 stage: every model of the architecture study, every scheme -------------------
