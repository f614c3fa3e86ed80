"""What a tokenizer buys and costs: characters per token, ``<unk>`` rate, device bytes."""
from __future__ import annotations

from .base import Tokenizer

DEFAULT_DIMS = (16, 32, 64, 128)


def tokenizer_metrics(tok: Tokenizer, texts: list[str], dims=DEFAULT_DIMS) -> dict:
    """Metrics of ``tok`` on ``texts`` (the validation stories).

    - ``chars_per_token``: characters of the (lowercased, for ``-lc``) text per token, no EOS counted;
      a model's bits per token divided by this is its bits per character.
    - ``unk_rate``: share of tokens that are ``<unk>`` (0 for byte-level BPE);
      ``coverage``: share of characters the vocabulary represents (1 - unknown characters / characters).
    - ``vocab_bytes``: the decode-only binary vocabulary (what a generating device stores);
      ``merges_bytes``: what the BPE merges add for encoding on the device.
    - ``embedding_bytes_per_dim``: int8 embedding bytes per model dimension (= vocab size; tied
      head), and ``device_bytes_d<dim>``: vocabulary + int8 embedding at that dimension.
    """
    n_chars = sum(len(tok.prepare(t)) for t in texts)
    encoded = tok.encode_batch(list(texts))
    n_tokens = sum(len(ids) for ids in encoded)
    n_unk = 0 if tok.unk_id is None else sum(ids.count(tok.unk_id) for ids in encoded)
    vocab_bytes = len(tok.to_binary(include_merges=False))
    total_bytes = len(tok.to_binary(include_merges=True))
    row = {"tokenizer": tok.name, "kind": tok.kind, "lowercase": tok.lowercase,
           "requested_vocab_size": getattr(tok, "requested_vocab_size", tok.vocab_size),
           "vocab_size": tok.vocab_size, "eval_chars": n_chars, "eval_tokens": n_tokens,
           "chars_per_token": n_chars / n_tokens if n_tokens else float("nan"),
           "unk_rate": n_unk / n_tokens if n_tokens else 0.0,
           "coverage": 1.0 - n_unk / n_chars if n_chars else 1.0,
           "max_token_bytes": max(len(tok.token_bytes(i)) for i in range(tok.vocab_size)),
           "vocab_bytes": vocab_bytes, "merges_bytes": total_bytes - vocab_bytes,
           "embedding_bytes_per_dim": tok.vocab_size}
    for d in dims:
        row[f"device_bytes_d{d}"] = vocab_bytes + tok.vocab_size * d
    return row
