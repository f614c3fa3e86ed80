"""A decoder-only transformer small enough for a microcontroller (1K to 1M parameters).

The whole model is in this file, configured by :class:`ModelConfig`; the
config is stored inside every checkpoint (safetensors metadata), so a
checkpoint alone rebuilds its model::

    cfg = ModelConfig(vocab_size=64, dim=16, n_layers=2, n_heads=2, ffn_hidden=32)
    model = Transformer(cfg)
    save_checkpoint(model, "ckpt.safetensors")
    model2 = load_checkpoint("ckpt.safetensors")

Only integer-friendly operations are used (matmul, RMSNorm, softmax, the FFN
activation, rotary or learned positions), no biases, so that the quantisation
stage can run the same network with integers only.

Tensor names (the device format and the reference engine rely on them)::

    tok_emb                     [vocab, dim]
    pos_emb                     [max_seq_len, dim]     (pos == "learned" only)
    layers.{i}.attn_norm        [dim]
    layers.{i}.wq / wk / wv / wo   [dim, dim]          (out, in)
    layers.{i}.ffn_norm         [dim]
    layers.{i}.w1               [ffn_hidden, dim]
    layers.{i}.w3               [ffn_hidden, dim]      (activation == "swiglu" only)
    layers.{i}.w2               [dim, ffn_hidden]
    final_norm                  [dim]
    head                        [vocab, dim]           (tied == False only)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, StageConfig, between, choice

ROPE_THETA = 10000.0
NORM_EPS = 1e-5


@dataclass(frozen=True)
class ModelConfig(StageConfig):
    vocab_size: int = field(default=64, metadata=between(2, 65536))
    dim: int = field(default=16, metadata=between(1, 4096))
    n_layers: int = field(default=2, metadata=between(1, 64))
    n_heads: int = field(default=2, metadata=between(1, 256))
    ffn_hidden: int = field(default=64, metadata=between(1, 65536))
    activation: str = field(default="silu", metadata=choice("silu", "gelu", "swiglu"))
    pos: str = field(default="rope", metadata=choice("rope", "learned", "none"))
    tied: bool = True
    max_seq_len: int = field(default=128, metadata=between(1, 8192))

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def validate(self) -> None:
        if self.dim % self.n_heads:
            raise ConfigError(
                f"parameter 'n_heads' must divide 'dim': dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ConfigError(
                f"parameter 'pos'='rope' needs an even head size, but dim/n_heads = {self.head_dim}; "
                "use pos='learned' or 'none', or change 'dim'/'n_heads'")


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * self.weight


def rope_tables(head_dim: int, max_seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [max_seq_len, head_dim/2]; pair i of a head rotates by pos * theta^(-2i/head_dim)."""
    inv = ROPE_THETA ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_seq_len, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x, cos, sin):
    """Rotate adjacent pairs (x[2i], x[2i+1]) of each head. x: [B, H, T, hd]."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.wq = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        H, hd = self.cfg.n_heads, self.cfg.head_dim
        # A real per-head split: each head attends with its own slice of q, k, v.
        q, k, v = (w(x).view(B, T, H, hd).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        if self.cfg.pos == "rope":
            q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        # Causal softmax(q k^T / sqrt(hd)) v as one fused kernel (same maths as an explicit tril mask;
        # tiny models are launch-bound on a GPU, so fewer kernels matter more than FLOPs).
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, D)
        return self.wo(y)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.activation = cfg.activation
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.dim, bias=False)
        if cfg.activation == "swiglu":
            self.w3 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)

    def forward(self, x):
        h = self.w1(x)
        if self.activation == "swiglu":
            h = F.silu(h) * self.w3(x)
        elif self.activation == "silu":
            h = F.silu(h)
        else:
            h = F.gelu(h)
        return self.w2(h)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim)
        self.ffn = FeedForward(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        if cfg.pos == "learned":
            self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.dim)
        if not cfg.tied:
            self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(max(cfg.head_dim - cfg.head_dim % 2, 2), cfg.max_seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2 style: scale residual projections by depth
            if name.endswith(("wo.weight", "w2.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx, targets=None):
        """idx: [B, T] token ids. Returns logits [B, T, V] and (if targets) mean cross-entropy in nats."""
        T = idx.shape[1]
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.cfg.max_seq_len}")
        x = self.tok_emb(idx)
        if self.cfg.pos == "learned":
            x = x + self.pos_emb(torch.arange(T, device=idx.device))
        for layer in self.layers:
            x = layer(x, self.rope_cos, self.rope_sin)
        x = self.final_norm(x)
        logits = x @ self.tok_emb.weight.T if self.cfg.tied else self.head(x)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, n_new: int, temperature: float = 0.0, generator=None):
        """Append n_new tokens to idx [1, T]: greedy when temperature == 0, else sampled."""
        for _ in range(n_new):
            logits, _ = self(idx[:, -self.cfg.max_seq_len:])
            logits = logits[:, -1, :]
            if temperature <= 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = (logits / temperature).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def count_params(model: nn.Module) -> int:
    """Every stored tensor counted once (a tied head shares the embedding and is not counted twice)."""
    return sum(t.numel() for t in model.state_dict().values())


def state_dict_for_export(model: Transformer) -> dict[str, torch.Tensor]:
    """Parameters under the documented tensor names (see module docstring)."""
    out = {}
    for name, t in model.state_dict().items():
        name = name.replace(".attn.", ".").replace(".ffn.", ".").replace(".weight", "")
        out[name] = t.detach().clone().contiguous()
    return out


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
              torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8"}


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file with a deterministic layout: sorted keys everywhere, tensors in name order.

    (The safetensors library writes its metadata map in hash order, which changes from one
    process to the next; this keeps "same config + seed -> identical checkpoint bytes".)
    """
    header, chunks, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        data = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format pads the header to 8-byte alignment with spaces
    return len(head).to_bytes(8, "little") + head + b"".join(chunks)


def save_checkpoint(model: Transformer, path: str | Path, extra: dict | None = None) -> None:
    """Write safetensors with the model config (and any extra JSON metadata) inside it, atomically."""
    from .provenance import atomic_write_bytes

    meta = {"config": model.cfg.to_json(), "format": "starmind-ckpt-1"}
    meta.update({k: json.dumps(v, sort_keys=True) for k, v in (extra or {}).items()})
    atomic_write_bytes(path, safetensors_bytes(model.state_dict(), meta))


def load_checkpoint(path: str | Path, device: str = "cpu") -> Transformer:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ValueError(f"{path}: not a Starmind checkpoint (no 'config' in its metadata)")
    model = Transformer(ModelConfig.from_params(json.loads(meta["config"])))
    model.load_state_dict(load_file(str(path), device=device))
    return model.to(device)


def checkpoint_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: json.loads(v) for k, v in meta.items() if k != "format"}
