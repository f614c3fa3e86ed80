"""The architecture grid, as data: every variant of the study and its stable id.

The axes follow the earlier public write-up ("176 architectures tested"), which
varied width (down to 1), depth, heads, FFN ratio, vocabulary and tried
"golden ratio"/Fibonacci allocations, but never trained them. Here each
variant is a dict of :class:`~starmind_lib.training.train.TrainConfig` model/tokenizer
fields plus ``variant_id``, ``axis`` (what the comparison varies) and ``group``
(the variants that belong to one comparison)::

    variants = grid("full")          # >= 176 dicts
    [v["variant_id"] for v in grid("smoke")]

Fixed-budget comparisons vary one hyperparameter while solving for the width
that keeps the parameter count at the budget (1K ... 300K), so the comparison
asks "given N parameters, how should they be spent?". A budget that cannot be
met within ``BUDGET_TOLERANCE`` (e.g. a 4096-token vocabulary at 1K
parameters: the embedding alone is larger) is left out, not approximated.
"""
from __future__ import annotations

import math

PHI = (1 + 5 ** 0.5) / 2
FIBONACCI = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377)
BUDGETS = (1_000, 3_000, 10_000, 30_000, 100_000, 300_000)
BUDGET_TOLERANCE = 0.35          # relative distance from the budget a solved width may have
MAX_SEQ_LEN_FOR_COUNT = 64       # learned position tables are counted at the study's seq_len

# tokenizer specs: "<kind><vocab>"
CHAR_VOCABS = (32, 40, 48, 64, 96)
BPE_VOCABS = (384, 512, 1024, 2048, 4096)  # byte-level BPE needs >= 258 (256 bytes + BOS + EOS)
DEFAULT_TOKENIZER = "char64"

BASE = dict(dim=16, n_layers=2, n_heads=1, ffn_hidden=64, activation="silu", pos="rope", tied=True,
            tokenizer="char", vocab_size=64)


def parse_tokenizer(spec: str) -> tuple[str, int]:
    """'bpe512' -> ('bpe', 512)."""
    for kind in ("char", "bpe"):
        if spec.startswith(kind) and spec[len(kind):].isdigit():
            return kind, int(spec[len(kind):])
    raise ValueError(f"tokenizer spec {spec!r} is not 'char<N>' or 'bpe<N>'")


def tokenizer_spec(variant: dict) -> str:
    return f"{variant['tokenizer']}{variant['vocab_size']}"


def count_params(dim: int, n_layers: int, ffn_hidden: int, vocab_size: int, activation: str = "silu",
                 pos: str = "rope", tied: bool = True, seq_len: int = MAX_SEQ_LEN_FOR_COUNT, **_) -> int:
    """Exact parameter count of model.Transformer, without building it (tests check it against torch)."""
    ffn_mats = 3 if activation == "swiglu" else 2
    per_layer = 2 * dim + 4 * dim * dim + ffn_mats * ffn_hidden * dim
    total = vocab_size * dim + n_layers * per_layer + dim
    if pos == "learned":
        total += seq_len * dim
    if not tied:
        total += vocab_size * dim
    return total


def _pos_for(dim: int, heads: int) -> str:
    """RoPE needs an even head size; odd ones (ultra-narrow models) get learned positions."""
    return "rope" if (dim // heads) % 2 == 0 else "learned"


def _variant(vid: str, axis: str, group: str, **fields) -> dict:
    v = {**BASE, **fields}
    if "tok" in v:
        v["tokenizer"], v["vocab_size"] = parse_tokenizer(v.pop("tok"))
    return {"variant_id": vid, "axis": axis, "group": group, **v}


def _width_axis() -> list[dict]:
    return [_variant(f"width-d{d}", "width", "width", dim=d, n_heads=1, ffn_hidden=4 * d, pos=_pos_for(d, 1))
            for d in (1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64)]


def _depth_axis() -> list[dict]:
    return [_variant(f"depth-d{d}-l{n}", "depth", f"depth-d{d}", dim=d, n_layers=n, ffn_hidden=4 * d)
            for d in (16, 32) for n in (1, 2, 3, 4, 6, 8, 10, 12)]


def _heads_axis() -> list[dict]:
    spans = {16: (1, 2, 4, 8), 32: (1, 2, 4, 8, 16), 64: (1, 2, 4, 8, 16)}
    return [_variant(f"heads-d{d}-h{h}", "heads", f"heads-d{d}", dim=d, n_heads=h, ffn_hidden=4 * d)
            for d, hs in spans.items() for h in hs]


def _ffn_axis() -> list[dict]:
    return [_variant(f"ffn-d{d}-r{r}", "ffn_ratio", f"ffn-d{d}", dim=d, ffn_hidden=r * d)
            for d in (8, 16) for r in (1, 2, 4, 8, 16, 32, 64, 128, 256)]


def _vocab_axis() -> list[dict]:
    specs = [f"char{v}" for v in CHAR_VOCABS] + [f"bpe{v}" for v in BPE_VOCABS]
    return [_variant(f"vocab-d{d}-{s}", "vocab", f"vocab-d{d}", dim=d, ffn_hidden=4 * d, tok=s)
            for d in (16, 32) for s in specs]


def _golden_axis() -> list[dict]:
    """The write-up's golden-ratio / Fibonacci allocations, trained for real."""
    out = []
    fib = list(FIBONACCI)
    for d in (3, 5, 8, 13, 21, 34, 55):  # width Fibonacci, FFN the Fibonacci number two further (~ d * phi^2)
        ffn = fib[fib.index(d) + 2]
        out.append(_variant(f"fib-d{d}-f{ffn}", "golden", "fib-width", dim=d, ffn_hidden=ffn, pos=_pos_for(d, 1)))
    for k in (1, 2, 3, 4, 5):  # FFN hidden = dim * phi^k
        ffn = round(16 * PHI ** k)
        out.append(_variant(f"phi-ffn-d16-k{k}", "golden", "phi-ffn", dim=16, ffn_hidden=ffn))
    for n in (1, 2, 3, 5, 8):  # Fibonacci depth at a Fibonacci width/FFN
        out.append(_variant(f"fib-depth-d8-l{n}", "golden", "fib-depth", dim=8, n_layers=n, ffn_hidden=21))
    return out


def _component_axis() -> list[dict]:
    out = []
    for d in (16, 32):
        for act in ("silu", "gelu", "swiglu"):
            out.append(_variant(f"act-d{d}-{act}", "activation", f"act-d{d}", dim=d, ffn_hidden=4 * d, activation=act))
        for pos in ("rope", "learned", "none"):
            out.append(_variant(f"pos-d{d}-{pos}", "position", f"pos-d{d}", dim=d, ffn_hidden=4 * d, pos=pos))
        for tied in (True, False):
            out.append(_variant(f"tied-d{d}-{str(tied).lower()}", "tying", f"tied-d{d}", dim=d,
                                ffn_hidden=4 * d, tied=tied))
    return out


def _size_axis() -> list[dict]:
    """Models of about a million parameters: how large a model still runs (weights in flash)."""
    return [
        _variant("size-d128-l6", "size", "size-1m", dim=128, n_layers=6, n_heads=4, ffn_hidden=512),
        _variant("size-d160-l4", "size", "size-1m", dim=160, n_layers=4, n_heads=4, ffn_hidden=640),
        _variant("size-d128-l6-bpe1024", "size", "size-1m", dim=128, n_layers=6, n_heads=4, ffn_hidden=512,
                 tokenizer="bpe", vocab_size=1024),
    ]


def solve_width(budget: int, n_layers: int = 2, n_heads: int = 1, ffn_ratio: float = 4.0,
                vocab_size: int = 64, max_dim: int = 1024, **fields) -> int | None:
    """The width (a multiple of 2 * n_heads, for RoPE) whose parameter count is closest to ``budget``.

    None when even the closest misses the budget by more than BUDGET_TOLERANCE.
    """
    best, best_err = None, math.inf
    step = 2 * n_heads
    for d in range(step, max_dim + 1, step):
        n = count_params(d, n_layers, max(1, round(ffn_ratio * d)), vocab_size, **fields)
        err = abs(n - budget) / budget
        if err < best_err:
            best, best_err = d, err
        if n > budget * (1 + BUDGET_TOLERANCE):
            break
    return best if best_err <= BUDGET_TOLERANCE else None


def _budget_label(b: int) -> str:
    return f"{b // 1000}k"


def _budget_axes() -> list[dict]:
    comparisons = {  # what varies -> list of (label, fields)
        "depth": [(f"l{n}", dict(n_layers=n)) for n in (1, 2, 4, 8)],
        "heads": [(f"h{h}", dict(n_heads=h)) for h in (1, 2, 4)],
        "ffn_ratio": [(f"r{r}", dict(ffn_ratio=r)) for r in (1, 2, 4, 8)],
        "vocab": [(s, dict(tok=s)) for s in ("char64", "bpe384", "bpe1024")],
    }
    out = []
    for budget in BUDGETS:
        for axis, options in comparisons.items():
            for label, opt in options:
                f = {"n_layers": 2, "n_heads": 1, "ffn_ratio": 4.0, "tok": DEFAULT_TOKENIZER, **opt}
                kind, vocab = parse_tokenizer(f["tok"])
                d = solve_width(budget, f["n_layers"], f["n_heads"], f["ffn_ratio"], vocab)
                if d is None:
                    continue
                out.append(_variant(f"budget{_budget_label(budget)}-{axis}-{label}", f"budget_{axis}",
                                    f"budget{_budget_label(budget)}-{axis}", dim=d, n_layers=f["n_layers"],
                                    n_heads=f["n_heads"], ffn_hidden=max(1, round(f["ffn_ratio"] * d)),
                                    tok=f["tok"]) | {"budget": budget})
    return out


def full_grid() -> list[dict]:
    variants = (_width_axis() + _depth_axis() + _heads_axis() + _ffn_axis() + _vocab_axis()
                + _golden_axis() + _component_axis() + _budget_axes() + _size_axis())
    for v in variants:
        v.setdefault("budget", None)
    ids = [v["variant_id"] for v in variants]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise AssertionError(f"duplicate variant ids in the grid: {sorted(dupes)}")
    return variants


QUICK_IDS = ("width-d2", "width-d8", "width-d32", "depth-d16-l1", "depth-d16-l4", "heads-d32-h1", "heads-d32-h8",
             "ffn-d16-r1", "ffn-d16-r16", "vocab-d16-char64", "vocab-d16-bpe512", "fib-d13-f34",
             "budget10k-depth-l1", "budget10k-depth-l4", "budget10k-vocab-bpe384")
SMOKE_IDS = ("width-d2", "width-d8", "depth-d16-l1", "heads-d16-h2", "vocab-d16-bpe384")


def grid(name: str = "full") -> list[dict]:
    """The variants of grid ``name``: 'full' (the study), 'quick' (15 across the axes), 'smoke' (5 tiny)."""
    variants = full_grid()
    if name == "full":
        return variants
    ids = {"quick": QUICK_IDS, "smoke": SMOKE_IDS}.get(name)
    if ids is None:
        raise ValueError(f"unknown grid {name!r}; choose 'full', 'quick' or 'smoke'")
    by_id = {v["variant_id"]: v for v in variants}
    return [by_id[i] for i in ids]


def tokenizers_needed(variants: list[dict]) -> list[str]:
    return sorted({tokenizer_spec(v) for v in variants})
