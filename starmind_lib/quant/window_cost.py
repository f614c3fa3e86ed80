"""The quality cost of the window restart (FORMAT.md 6.7): bits per character on whole stories.

``python -m starmind_lib.quant.window_cost`` scores whole validation stories (each followed by
EOS, as in training; EOS counts as one character) with study models three ways and appends one
row per model to ``data/results/quant/window_cost.jsonl``. The table's rows use the float model
(torch, batched: the rule is a function of the token sequence, so it applies to any engine);
:func:`story_bits` is the same with the integer reference engine (slow: one call per token).

* ``window``: the runtime's rule: one sequence through the window restart (cache full -> keep the
  last T//2 tokens, prefill them again from position 0);
* ``sliding``: the best any T-token context can do: every token past position T-1 is predicted
  from a fresh sequence of the T tokens before it (T times the work; the quality reference);
* ``first_T``: only the tokens the model sees within its trained context (positions < T),
  where both rules are the same.

The window's cost is ``bpc_window - bpc_sliding`` over whole stories (and over the tokens past
the context only, ``*_beyond``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import intengine as ie
from .smd import read_smd

DEFAULT_MODELS = (("039ad8de7dc4-lr-s0-lr0.005-t2000000", "char64"), ("1ca33cde297c-lr-s0-lr0.005-t2000000", "bpe384"))


def _nll_bits(logits: np.ndarray, targets, logit_frac: int) -> np.ndarray:
    z = np.asarray(logits, np.float64) / float(1 << logit_frac)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(targets)), np.asarray(targets)] / math.log(2)


def story_bits(eng: ie.IntEngine, ids: list[int]) -> dict[str, np.ndarray]:
    """Per-target bits (targets ids[1:]) under the window restart and under the sliding T-context."""
    T = eng.h.max_seq_len
    seq = ie.WindowedSequence(eng)
    win = []
    for t in ids[:-1]:
        win.append(seq.feed([t]))
    win_bits = _nll_bits(np.stack(win), ids[1:], eng.h.logit_frac)
    first = eng.logits_sequence(ids[:min(T, len(ids) - 1)])            # targets 1..min(T, n-1)
    slide = [first]
    for n in range(T + 1, len(ids)):                                     # target n from ids[n-T:n]
        slide.append(eng.logits_sequence(ids[n - T:n])[-1:])
    slide_bits = _nll_bits(np.concatenate(slide), ids[1:], eng.h.logit_frac)
    return {"window": win_bits, "sliding": slide_bits}


def float_story_bits(model, ids: list[int]) -> dict[str, np.ndarray]:
    """The same two rules on the float model (torch), batched: the window restart's segments
    (segment j >= 1 starts at j * (T - K) and scores its last T - K positions) and every sliding window."""
    import torch
    T = model.cfg.max_seq_len
    K = T // 2
    n = len(ids) - 1                                                    # targets ids[1..n]
    x = torch.tensor(ids)
    with torch.no_grad():
        first = model(x[None, :min(T, n)])[0][0]                         # targets 1..min(T, n)
        logp = [torch.log_softmax(first.double(), -1)]
        start = T - K
        while start + K < n:                                             # segment: ids[start .. start+T-1]
            seg = x[start:min(start + T, n)]
            logp.append(torch.log_softmax(model(seg[None])[0][0, K:].double(), -1))
            start += T - K
        win = torch.cat(logp)[:n]
        slide = [torch.log_softmax(first.double(), -1)]
        if n > T:
            wins = torch.stack([x[m - T:m] for m in range(T + 1, n + 1)])   # target m from ids[m-T..m-1]
            for b in range(0, len(wins), 256):
                slide.append(torch.log_softmax(model(wins[b:b + 256])[0][:, -1].double(), -1))
        slide = torch.cat(slide)
    tgt = x[1:n + 1]
    bits = lambda lp: (-lp[torch.arange(n), tgt] / math.log(2)).numpy()  # noqa: E731
    return {"window": bits(win), "sliding": bits(slide)}


def measure(score, T: int, tok, stories: list[str]) -> dict:
    """``score(ids) -> {"window": bits, "sliding": bits}`` per target; bpc over whole stories."""
    tot = {"window": 0.0, "sliding": 0.0, "window_beyond": 0.0, "sliding_beyond": 0.0, "first_T": 0.0}
    chars = {"all": 0, "beyond": 0, "first_T": 0}
    n_tokens = beyond_tokens = 0
    for s in stories:
        ids = tok.encode(s) + ([tok.eos_id] if tok.eos_id is not None else [])
        lens = [len(tok.token_bytes(i).decode("utf-8", "replace")) if i != tok.eos_id else 1 for i in ids]
        b = score(ids)
        tgt_chars = np.array(lens[1:], dtype=np.float64)
        past = np.arange(1, len(ids)) >= T                              # target position >= T: past the context
        tot["window"] += b["window"].sum()
        tot["sliding"] += b["sliding"].sum()
        tot["window_beyond"] += b["window"][past].sum()
        tot["sliding_beyond"] += b["sliding"][past].sum()
        tot["first_T"] += b["window"][~past].sum()
        chars["all"] += tgt_chars.sum()
        chars["beyond"] += tgt_chars[past].sum()
        chars["first_T"] += tgt_chars[~past].sum()
        n_tokens += len(ids) - 1
        beyond_tokens += int(past.sum())
    row = {"max_seq_len": T, "n_stories": len(stories), "n_tokens": n_tokens, "tokens_beyond_context": beyond_tokens,
           "bpc_window": tot["window"] / chars["all"], "bpc_sliding": tot["sliding"] / chars["all"],
           "bpc_window_beyond": tot["window_beyond"] / max(chars["beyond"], 1),
           "bpc_sliding_beyond": tot["sliding_beyond"] / max(chars["beyond"], 1),
           "bpc_first_T": tot["first_T"] / chars["first_T"]}
    row["window_cost_bpc"] = row["bpc_window"] - row["bpc_sliding"]
    row["window_cost_bpc_beyond"] = row["bpc_window_beyond"] - row["bpc_sliding_beyond"]
    return row


class FileTokenizer:
    """A model file's own encoder and vocabulary (format version 2), as a tokenizer."""

    def __init__(self, m):
        self.m, self.eos_id, self.name = m, m.text.eos_id, f"file:{m.text.encoder}"

    def encode(self, text: str) -> list[int]:
        from .smd_text import encode
        return encode(self.m.text, self.m.vocab, text)

    def token_bytes(self, i: int) -> bytes:
        return self.m.vocab[i]


def reference_rows(n_stories: int = 12, chars: int = 600) -> list[dict]:
    """The reference models that use their context (synthetic sentences), with the integer engine:
    held-out synthetic 'stories' (reference_text with another seed)."""
    from .reference import REFERENCE_DIR, reference_text
    text = reference_text(400, seed=1)
    stories = [text[i * chars:(i + 1) * chars] for i in range(n_stories)]
    rows = []
    for name in ("ref_bpe_lc", "ref_tiny_learned"):
        m = read_smd(REFERENCE_DIR / f"{name}.smd")
        eng = ie.IntEngine(m)
        rows.append({"run_id": name, "tokenizer": FileTokenizer(m).name, "engine": "int8 reference engine (intengine)",
                     "validation": f"reference_text(seed=1), {n_stories} x {chars} chars",
                     **measure(lambda ids: story_bits(eng, ids), m.header.max_seq_len, FileTokenizer(m), stories)})
    return rows


def main(argv=None) -> None:
    import argparse
    import torch
    from ..model import load_checkpoint
    from ..provenance import REPO_ROOT, ResultTable, provenance
    from ..tokenizers import load_tokenizer
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(prog="python -m starmind_lib.quant.window_cost")
    ap.add_argument("--runs", type=Path, default=REPO_ROOT / "data" / "runs")
    ap.add_argument("--stories", type=int, default=200)
    ap.add_argument("--validation", type=Path,
                    default=REPO_ROOT.parent / "shared" / "data" / "tinystories" / "validation-00000.jsonl")
    args = ap.parse_args(argv)
    lines = args.validation.read_text(encoding="utf-8").splitlines()[:args.stories]
    stories = [json.loads(x)["text"] for x in lines]
    table = ResultTable(REPO_ROOT / "data" / "results" / "quant" / "window_cost", key="key")
    for run_id, tok_name in DEFAULT_MODELS:
        key = f"{run_id}:{len(stories)}"
        if table.has(key):
            continue
        tok = load_tokenizer(args.runs / "study_data" / tok_name / "tokenizer.json")
        model = load_checkpoint(args.runs / "study_v2" / run_id / "model.safetensors").eval()
        row = measure(lambda ids: float_story_bits(model, ids), model.cfg.max_seq_len, tok, stories)
        row = {"key": key, "run_id": run_id, "tokenizer": tok.name, "n_params": sum(p.numel() for p in model.parameters()),
               "engine": "float32 model (torch) with the window restart of FORMAT.md 6.7",
               "validation": args.validation.name, **row, **provenance("window_cost")}
        table.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                          if k.startswith(("bpc", "window", "run", "n_", "tokens"))}))
    if not all(table.has(f"{n}:int8") for n in ("ref_bpe_lc", "ref_tiny_learned")):
        for row in reference_rows():
            row = {"key": f"{row['run_id']}:int8", **row, **provenance("window_cost")}
            if not table.has(row["key"]):
                table.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                              if k.startswith(("bpc", "window", "run", "n_", "tokens"))}))
    table.snapshot()


if __name__ == "__main__":  # pragma: no cover
    main()
