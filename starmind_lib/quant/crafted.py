"""Crafted golden vectors that fire every clamp and special branch of FORMAT.md, and the coverage table.

``python -m starmind_lib.quant.crafted`` (also run by ``make-reference``) derives a few models from
the committed reference models by editing tensors (saturating multipliers, huge epsilon, an EOS
token), writes ``data/reference/crafted/NAME.smd`` + ``NAME.golden.json`` (int8 only), then runs
every golden (reference and crafted) through the reference engine with its branch counters and
writes ``data/reference/coverage.json`` and ``coverage.md``: which golden fires which branch.

One branch can never fire in a valid file: the logit clamp. |acc| <= dim * 127^2 <= 4096 * 127^2 < 2^26.1
and REQUANT multiplies by m / 2^15 < 2, so |logit| < 2^27.1 < 2^29 (FORMAT.md 6.5 says so).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from . import intengine as ie
from ..provenance import REPO_ROOT
from .smd import SmdHeader, pack_smd, read_smd

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
UNREACHABLE = {"logit.clamp": "|logit| < 2^27.1 for every valid file (dim <= 4096, m <= 65535)"}
CRAFTED_SAMPLING = ({"seed": 7, "temperature_q8": 1, "top_k": 3},          # below the temperature clamp
                    {"seed": 8, "temperature_q8": 100000, "top_k": 0},     # above it
                    {"seed": 9, "temperature_q8": 256, "top_k": 2})
WINDOW_NEW = 100


def _edit(name: str, header=None, text=None, vocab=None, **tensor_edits):
    m = read_smd(REFERENCE_DIR / name)
    t = {k: np.array(v, copy=True) for k, v in m.tensors.items()}
    for k, f in tensor_edits.items():
        t[k.replace("__", ".")] = f(t[k.replace("__", ".")])
    h = dataclasses.replace(m.header, **(header or {}))
    return pack_smd(h, t, vocab or m.vocab, dataclasses.replace(m.text, **(text or {})))


def _rq(m: int, s: int):
    def f(a):
        a[:, 0], a[:, 1] = m, s
        return a
    return f


def crafted_models() -> dict[str, tuple[bytes, list[int]]]:
    """name -> (file bytes, prompt ids)."""
    ref = read_smd(REFERENCE_DIR / "ref_tiny_learned.smd")
    e = ref.vocab.index(b"e")
    vocab = [b"" if i == e else t for i, t in enumerate(ref.vocab)]
    prompt = [ref.vocab.index(c.encode()) for c in "the cat "]
    sat = lambda a: np.where(a >= 0, 127, -127).astype(a.dtype)  # noqa: E731
    out = {
        # residual saturated from the embedding on: embed/residual clamps, S >= 2^30 (dim 8 = 2^3, eps 2^24),
        # saturated activations and norms, sharp attention (idx >= 1024), logits far apart (sampler u cap)
        "crafted_saturate": (_edit("ref_tiny_learned.smd", header={"eps_q": 1 << 24, "logit_frac": 6},
                                   tok_emb=sat, tok_emb__rq=_rq(65535, 0), pos_emb__rq=_rq(65535, 0),
                                   layers__0__wq__rq=_rq(65535, 0), layers__0__wk__rq=_rq(65535, 0),
                                   layers__0__wo__rq=_rq(65535, 0), layers__0__w2__rq=_rq(65535, 0),
                                   layers__0__consts=lambda c: np.array([0, 0, 65535, 0, 0, 0, 0, 0], c.dtype),
                                   final_norm=lambda g: np.full_like(g, 32767), head__rq=_rq(65535, 0)), prompt),
        # rope on saturated q, k: the rotated pair leaves [-127, 127]
        "crafted_rope": (_edit("ref_rope_silu.smd", layers__0__wq__rq=_rq(65535, 0), layers__0__wk__rq=_rq(65535, 0),
                               layers__1__wq__rq=_rq(65535, 0), layers__1__wk__rq=_rq(65535, 0)), prompt),
        # swiglu product requantised with a large multiplier
        "crafted_swiglu": (_edit("ref_swiglu_untied.smd",
                                 layers__0__consts=lambda c: np.array([*c[:4], 65535, 0, 0, 0], c.dtype),
                                 layers__1__consts=lambda c: np.array([*c[:4], 65535, 0, 0, 0], c.dtype)), prompt),
        # the stop rule: 'e' is EOS (0 bytes) and generation stops there
        "crafted_stop": (_edit("ref_tiny_learned.smd", vocab=vocab, text={"eos_id": e, "stop_at_eos": True}), prompt),
    }
    return out


def crafted_golden(path: Path, prompt: list[int]) -> dict:
    m = read_smd(path)
    eng = ie.IntEngine(m)
    n_new = min(16, m.header.max_seq_len - len(prompt) + 1)
    logits = eng.logits_sequence(prompt)
    return {"model": path.name, "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "prompt_ids": prompt, "logit_frac": m.header.logit_frac, "first_logits": logits[-1].tolist(),
            "prompt_logits": logits.tolist(), "stop_at_eos": m.text.stop_at_eos, "eos_id": m.text.eos_id,
            "greedy": {"n_new": n_new, "output_ids": eng.generate(prompt, n_new)},
            "sampled": [{**s, "n_new": n_new, "output_ids": eng.generate(prompt, n_new, **s)} for s in CRAFTED_SAMPLING],
            "window": {"n_new": WINDOW_NEW, "greedy_output_ids": eng.generate(prompt, WINDOW_NEW, window=True)}}


def run_golden(g: dict, model_dir: Path) -> dict[str, int]:
    """Every vector of one golden through the reference engine; the branch counters it fired."""
    ie.reset_counters()
    eng = ie.IntEngine(read_smd(model_dir / g["model"]))
    eng.logits_sequence(g["prompt_ids"])
    eng.generate(g["prompt_ids"], g["greedy"]["n_new"])
    for s in g["sampled"]:
        eng.generate(g["prompt_ids"], s["n_new"], s["temperature_q8"], s["top_k"], s["seed"])
    w = g.get("window")
    if w:
        eng.generate(g["prompt_ids"], w["n_new"], window=True, stop_at_eos=g.get("stop_at_eos", False))
    return dict(ie.COUNTERS)


def make_crafted(out_dir: Path = REFERENCE_DIR, verbose: bool = True) -> list[Path]:
    from ..provenance import atomic_write_bytes, atomic_write_text
    cdir = out_dir / "crafted"
    cdir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (data, prompt) in crafted_models().items():
        path = cdir / f"{name}.smd"
        atomic_write_bytes(path, data)
        gpath = cdir / f"{name}.golden.json"
        atomic_write_text(gpath, json.dumps(crafted_golden(path, prompt), indent=1) + "\n")
        written += [path, gpath]
    written += write_coverage(out_dir)
    if verbose:
        print("crafted goldens and coverage written:", *[p.name for p in written])
    return written


def coverage(out_dir: Path = REFERENCE_DIR) -> dict[str, dict[str, int]]:
    rows = {}
    for gp in sorted(out_dir.glob("*.golden.json")) + sorted((out_dir / "crafted").glob("*.golden.json")):
        rows[gp.name.split(".")[0]] = run_golden(json.loads(gp.read_text()), gp.parent)
    return rows


def write_coverage(out_dir: Path = REFERENCE_DIR) -> list[Path]:
    from ..provenance import atomic_write_text
    rows = coverage(out_dir)
    fired = {b: [n for n, r in rows.items() if r[b]] for b in ie.BRANCHES}
    doc = {"branches": list(ie.BRANCHES), "unreachable": UNREACHABLE, "goldens": rows, "fired_by": fired}
    j = out_dir / "coverage.json"
    atomic_write_text(j, json.dumps(doc, indent=1) + "\n")
    names = list(rows)
    lines = ["# Branch coverage of the golden vectors", "",
             "Times each clamp / special branch of FORMAT.md fired while the reference engine ran every vector of",
             "each golden (`python -m starmind_lib.quant.crafted`). Unreachable in any valid file: "
             + "; ".join(f"`{k}` ({v})" for k, v in UNREACHABLE.items()) + ".", "",
             "| branch | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for b in ie.BRANCHES:
        lines.append(f"| `{b}` | " + " | ".join(str(rows[n][b]) if rows[n][b] else "." for n in names) + " |")
    md = out_dir / "coverage.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    return [j, md]


if __name__ == "__main__":  # pragma: no cover
    import argparse
    argparse.ArgumentParser(prog="python -m starmind_lib.quant.crafted",
                            description="Rebuild the crafted golden models and the branch coverage in "
                                        "data/reference/crafted").parse_args()
    make_crafted()
