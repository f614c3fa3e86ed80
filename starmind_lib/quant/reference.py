"""Reference models and golden vectors (`data/reference/`).

``python -m starmind_lib.quant.reference make-reference`` regenerates `data/reference/`
(tiny trained models plus their golden vectors) deterministically.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from . import intengine as ie
from ..provenance import REPO_ROOT
from .smd import VERSION, read_smd, write_smd
from .smd_text import TextSpec, encode, fold_table, text_spec_from_tokenizer

REFERENCE_DIR = REPO_ROOT / "data" / "reference"
REFERENCE_ALPHABET = " .abcdefghijklmnopqrstuvwxyz,!?\n"   # 32 characters: a char tokenizer, id = index
REFERENCE_MODELS = {
    # name: (model config, training steps); small enough to train in seconds, big enough to say something
    "ref_tiny_learned": (dict(dim=8, n_layers=1, n_heads=1, ffn_hidden=16, activation="silu", pos="learned",
                              tied=True, max_seq_len=32), 300),
    "ref_rope_silu": (dict(dim=24, n_layers=2, n_heads=2, ffn_hidden=48, activation="silu", pos="rope",
                           tied=True, max_seq_len=64), 300),
    "ref_swiglu_untied": (dict(dim=16, n_layers=2, n_heads=4, ffn_hidden=32, activation="swiglu", pos="none",
                               tied=False, max_seq_len=48), 300),
    "ref_dim1_gelu": (dict(dim=1, n_layers=1, n_heads=1, ffn_hidden=8, activation="gelu", pos="learned",
                           tied=True, max_seq_len=16), 200),
    # a 64-token word-piece vocabulary with two empty special tokens (like BOS/EOS of the study's tokenizers)
    "ref_words_gelu": (dict(dim=32, n_layers=2, n_heads=4, ffn_hidden=64, activation="gelu", pos="rope",
                            tied=False, max_seq_len=64, vocab="words"), 300),
    # a lowercasing byte-level BPE tokenizer (300 tokens: merges, folding and class tables in the file)
    "ref_bpe_lc": (dict(dim=16, n_layers=1, n_heads=2, ffn_hidden=32, activation="silu", pos="rope",
                        tied=True, max_seq_len=32, vocab="bpe"), 200),
}
V1_REFERENCE = "v1/ref_tiny_learned.v1.smd"          # a committed version-1 file (no text section)
ENCODE_TEXTS = ("the cat ", "The Cat sat on the MAT.", "lily saw a ball!\nTom ran to the river?",
                "  a  box,  \n\n the moon ", "it's tom's 42 dogs' don't", "Élan — naïve café ΣΑΣ İ 12½ ",
                "")
WINDOW_NEW = 200                                     # golden tokens generated past max_seq_len
REFERENCE_WORD_PIECES = ("the ", "cat", "dog", "bird", "lily", "tom", "sun", "frog", "sat on", "ran to", "saw",
                         "liked", "jumped over", "looked at", "mat", "tree", "ball", "moon", "river", "box",
                         "a ", ". ", "! ", "? ", ".\n", "ed", "er", "at", "on", "oo")
REFERENCE_PROMPT = "the cat "
REFERENCE_SAMPLING = ({"seed": 1, "temperature_q8": 256, "top_k": 0},
                      {"seed": 12345, "temperature_q8": 180, "top_k": 5},
                      {"seed": 0, "temperature_q8": 4096, "top_k": 0})


def reference_text(n_sentences: int, seed: int) -> str:
    """Deterministic synthetic sentences over REFERENCE_ALPHABET (no network, no randomness from torch)."""
    rng = np.random.default_rng(seed)
    subj = ["the cat", "the dog", "a bird", "lily", "tom", "the sun", "a frog"]
    verb = ["sat on", "ran to", "saw", "liked", "jumped over", "looked at"]
    obj = ["the mat", "the tree", "a ball", "the moon", "the river", "a box"]
    end = [".", ".", "!", "?"]
    parts = []
    for _ in range(n_sentences):
        parts.append(f"{subj[rng.integers(len(subj))]} {verb[rng.integers(len(verb))]} "
                     f"{obj[rng.integers(len(obj))]}{end[rng.integers(len(end))]}")
        parts.append("\n" if rng.random() < 0.2 else " ")
    return "".join(parts)


def reference_vocab(kind: str = "chars") -> list[bytes]:
    """'chars': the 32 characters (id = index); 'words': 2 empty specials, the characters, 30 word pieces;
    'bpe': the reference BPE tokenizer's tokens."""
    if kind == "bpe":
        tok = reference_bpe()
        return [tok.token_bytes(i) for i in range(tok.vocab_size)]
    chars = [c.encode() for c in REFERENCE_ALPHABET]
    return chars if kind == "chars" else [b"", b""] + chars + [w.encode() for w in REFERENCE_WORD_PIECES]


def reference_bpe():
    """A 300-token lowercasing byte-level BPE tokenizer trained on the reference sentences."""
    from ..tokenizers import build_tokenizer
    text = reference_text(3000, 0)
    return build_tokenizer("bpe", 300, [text[i:i + 400] for i in range(0, len(text), 400)], lowercase=True)


def reference_text_spec(kind: str, vocab: list[bytes]) -> TextSpec:
    """The text section of each kind of reference vocabulary (FORMAT.md 2.4)."""
    if kind == "bpe":
        return text_spec_from_tokenizer(reference_bpe(), stop_at_eos=True)
    if kind == "words":  # no encoder (word pieces are not a study tokenizer); BOS, EOS, stop at EOS
        return TextSpec(bos_id=0, eos_id=1, stop_at_eos=True)
    # chars: no special tokens; lowercase, so "The Cat" encodes as "the cat"
    return TextSpec(lowercase=True, encoder="char", fold=fold_table(vocab, None))


def _encode_ref(text: str, vocab: list[bytes] | None = None) -> np.ndarray:
    """Greedy longest match over the vocabulary's non-empty tokens."""
    vocab = vocab or reference_vocab()
    data, out, i = text.encode(), [], 0
    by_len = sorted((t for t in vocab if t), key=len, reverse=True)
    index = {t: k for k, t in enumerate(vocab) if t}
    while i < len(data):
        tok = next(t for t in by_len if data.startswith(t, i))
        out.append(index[tok])
        i += len(tok)
    return np.array(out, dtype=np.int64)


def train_reference_model(cfg_params: dict, steps: int, seed: int = 0):
    """A few seconds of AdamW on synthetic sentences; seeded, single-threaded (deterministic on one machine)."""
    import torch
    from ..model import ModelConfig, Transformer
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    kind = cfg_params.get("vocab", "chars")
    vocab = reference_vocab(kind)
    params = {k: v for k, v in cfg_params.items() if k != "vocab"}
    cfg = ModelConfig.from_params({**params, "vocab_size": len(vocab)})
    model = Transformer(cfg)
    text = reference_text(3000, seed)
    ids = np.array(reference_bpe().encode(text)) if kind == "bpe" else _encode_ref(text, vocab)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    T = cfg.max_seq_len
    for _ in range(steps):
        starts = rng.integers(0, len(ids) - T - 1, 16)
        batch = torch.from_numpy(np.stack([ids[s:s + T + 1] for s in starts]))
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), ids


def golden_vectors(smd_path: Path, f32_path: Path, model, prompt_ids: list[int]) -> dict:
    """What every device runtime must reproduce for one reference model."""
    import hashlib
    import torch
    smd = read_smd(smd_path)
    eng = ie.IntEngine(smd)
    text = lambda ids: b"".join(smd.vocab[i] for i in ids).decode("utf-8", errors="replace")  # noqa: E731
    n_new = min(24, model.cfg.max_seq_len - len(prompt_ids) + 1)
    prompt_logits = eng.logits_sequence(prompt_ids)
    greedy = eng.generate(prompt_ids, n_new)
    t = smd.text
    text_info = {"bos_id": t.bos_id, "eos_id": t.eos_id, "unk_id": t.unk_id, "stop_at_eos": t.stop_at_eos,
                 "lowercase": t.lowercase, "encoder": t.encoder}
    encodes = [{"text": s, "ids": encode(t, smd.vocab, s)} for s in ENCODE_TEXTS
               if t.encoder == "bpe" or (t.encoder == "char" and _char_encodable(t, smd.vocab, s))]
    window = {"n_new": WINDOW_NEW, "greedy_output_ids": eng.generate(prompt_ids, WINDOW_NEW, window=True,
                                                                     stop_at_eos=False),
              "sampled": [{**s, "output_ids": eng.generate(prompt_ids, WINDOW_NEW, window=True, stop_at_eos=False,
                                                           **s)} for s in REFERENCE_SAMPLING[:1]]}
    with torch.no_grad():
        flog = model(torch.tensor([prompt_ids]))[0][0, -1].tolist()
        fgreedy = model.generate(torch.tensor([prompt_ids]), n_new)[0, len(prompt_ids):].tolist()
    sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    return {
        "format_version": VERSION,
        "model": smd_path.name, "model_sha256": sha(smd_path),
        "float_model": f32_path.name, "float_model_sha256": sha(f32_path),
        "config": model.cfg.to_dict(),
        "prompt_text": text(prompt_ids), "prompt_ids": prompt_ids,
        "logit_frac": eng.h.logit_frac,
        "first_logits": prompt_logits[-1].tolist(),
        "prompt_logits": prompt_logits.tolist(),
        "greedy": {"n_new": n_new, "output_ids": greedy,
                   "text": text(greedy)},
        "sampled": [{**s, "n_new": n_new, "output_ids": eng.generate(prompt_ids, n_new, **s)}
                    for s in REFERENCE_SAMPLING],
        "text": text_info, "encode": encodes,
        "window": window,
        "float32": {"first_logits": [round(v, 6) for v in flog], "abs_tolerance": 1e-3,
                    "greedy_output_ids": fgreedy},
    }


def _char_encodable(t: TextSpec, vocab, s: str) -> bool:
    try:
        encode(t, vocab, s)
        return True
    except ValueError:
        return False


def make_reference(out_dir: Path = REFERENCE_DIR, names=None, verbose: bool = True) -> list[Path]:
    """Train, export (int8 and float32) and write golden vectors for the reference models (all by default)."""
    import json
    from . import schemes as quant
    from ..provenance import atomic_write_text
    written = []
    for name, (params, steps) in REFERENCE_MODELS.items():
        kind = params.get("vocab", "chars")
        vocab = reference_vocab(kind)
        text = reference_text_spec(kind, vocab)
        if names is not None and name not in names:
            continue
        model, ids = train_reference_model(params, steps)
        T = model.cfg.max_seq_len
        calib = [ids[i * T:(i + 1) * T] for i in range(16)]
        header, tensors = quant.to_int8_engine(model, quant.calibrate(model, calib))
        smd, f32 = out_dir / f"{name}.smd", out_dir / f"{name}.f32.smd"
        write_smd(smd, header, tensors, vocab, text)
        write_smd(f32, *quant.to_float32(model), vocab, text)
        if name == "ref_tiny_learned":  # the committed version-1 file: the same model without a text section
            (out_dir / "v1").mkdir(parents=True, exist_ok=True)
            write_smd(out_dir / V1_REFERENCE, header, tensors, vocab, version=1)
        prompt = encode(text, vocab, REFERENCE_PROMPT) if text.encoder != "none" else \
            _encode_ref(REFERENCE_PROMPT, vocab).tolist()
        gold = golden_vectors(smd, f32, model, prompt)
        path = out_dir / f"{name}.golden.json"
        atomic_write_text(path, json.dumps(gold, indent=1) + "\n")
        written += [smd, f32, path]
        if verbose:
            print(f"{name}: {smd.stat().st_size} bytes, greedy after {REFERENCE_PROMPT!r}: {gold['greedy']['text']!r}")
    if names is None:  # the crafted models derive from the reference models; then the coverage table
        from .crafted import make_crafted
        written += make_crafted(out_dir, verbose)
    return written


def main(argv=None) -> None:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m starmind_lib.quant.reference")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-reference", help="regenerate data/reference/ (models + golden vectors)")
    mk.add_argument("--out", type=Path, default=REFERENCE_DIR)
    mk.add_argument("--only", nargs="*", default=None, help="just these reference models")
    ins = sub.add_parser("inspect", help="check a .smd file and print its header")
    ins.add_argument("path", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "make-reference":
        make_reference(args.out, args.only)
    else:
        m = read_smd(args.path)
        print(m.header)
        for k, v in m.tensors.items():
            print(f"  {k:24s} {str(v.dtype):8s} {v.shape}")


if __name__ == "__main__":  # pragma: no cover
    main()
