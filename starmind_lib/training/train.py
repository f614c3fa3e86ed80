"""Training one model: AdamW, warm-up + cosine decay, gradient clipping, bits per character.

The training loop works on token arrays (numpy), so it needs no tokenizer at
run time: the caller gives the train tokens, an :class:`EvalSet` (validation
windows plus the exact number of characters they decode to) and, for text
samples, a ``decode`` function::

    cfg = TrainConfig.from_params({"dim": 16, "n_layers": 2, "tokens": 200_000})
    eval_set = EvalSet.build(val_ids, cfg.seq_len, cfg.eval_tokens, decode=tok.decode)
    result = train_model(cfg, train_ids, eval_set, vocab_size=tok.vocab_size,
                         run_dir="data/runs/<key>", encode=tok.encode, decode=tok.decode)
    result.bpc, result.metrics, result.samples

**Bits per character** = total validation nats / ln 2 / number of characters of
the decoded validation targets: unlike nats per token it compares models with
different tokenizers fairly (a BPE token covers several characters).

Runs are seeded: on the CPU the same config and seed give byte-identical
checkpoints (batch positions come from a numpy generator, weights from
``torch.manual_seed``; the model has no dropout, so nothing else draws random
numbers). A run directory holds ``model.safetensors`` (config inside),
``config.json``, ``metrics.csv`` and, while training, ``train_state.pt`` so an
interrupted run resumes where its last evaluation left it.
"""
from __future__ import annotations

import json
import math
import time
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import ConfigError, StageConfig, between, choice
from ..model import ModelConfig

SAMPLE_PROMPTS = ("Once upon a time", "The little dog", "One day, Lily")
SAMPLE_TOKENS = 120


MODEL_FIELDS = ("dim", "n_layers", "n_heads", "ffn_hidden", "activation", "pos", "tied", "vocab_size")


@dataclass(frozen=True)
class TrainConfig(StageConfig):
    """A training run: the model (a :class:`~starmind_lib.model.ModelConfig`), the tokenizer, the optimisation.

    ``model.vocab_size`` is the vocabulary size asked of the tokenizer (the trained model gets the
    tokenizer's actual size, see :meth:`model_config`); ``model.max_seq_len`` is ``seq_len``.
    ``from_params`` and ``to_dict`` use the flat form (model fields beside the others), so the
    run key (``config_hash``) is the hash of the same flat dict as before ``model`` was nested.
    """
    model: ModelConfig = field(default_factory=lambda: ModelConfig.from_params({"max_seq_len": 64}))
    # -- the tokenizer --
    tokenizer: str = field(default="char", metadata=choice("char", "bpe"))
    lowercase: bool = True
    # -- optimisation --
    seq_len: int = field(default=64, metadata=between(2, 8192))
    batch_size: int = field(default=32, metadata=between(1, 1 << 16))
    tokens: int = field(default=2_000_000, metadata=between(1, 10**12))
    lr: float = field(default=3e-3, metadata=between(0.0, 1.0))
    min_lr_ratio: float = field(default=0.1, metadata=between(0.0, 1.0))
    warmup: float = field(default=0.05, metadata=between(0.0, 1.0))
    weight_decay: float = field(default=0.01, metadata=between(0.0, 10.0))
    grad_clip: float = field(default=1.0, metadata=between(0.0, None))
    eval_every: int = field(default=200, metadata=between(1, None))
    eval_tokens: int = field(default=32768, metadata=between(1, None))
    seed: int = field(default=0, metadata=between(0, 2**31 - 1))
    device: str = field(default="auto", metadata=choice("auto", "cpu", "cuda"))

    @classmethod
    def from_params(cls, params=None, **overrides):
        """From the flat parameters (model fields beside the training ones), or with ``model=`` given."""
        params = {**(params or {}), **overrides}
        model = params.pop("model", None)
        flat = {k: params.pop(k) for k in MODEL_FIELDS if k in params}
        if isinstance(model, ModelConfig):
            model = model.to_dict()
        own = super().from_params(params)   # validates the training fields (unknown keys included)
        cfg = ModelConfig.from_params({**(model or {}), **flat, "max_seq_len": own.seq_len})
        return dataclasses.replace(own, model=cfg)

    def to_dict(self) -> dict:
        """The flat form: the model's fields (less ``max_seq_len``, which is ``seq_len``) and the others."""
        out = {k: v for k, v in self.model.to_dict().items() if k != "max_seq_len"}
        for f in dataclasses.fields(self):
            if f.name != "model":
                v = getattr(self, f.name)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.tokens / (self.batch_size * self.seq_len)))

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The ModelConfig for a tokenizer of ``vocab_size`` ids (may be below the requested size)."""
        return self.model.replace(vocab_size=vocab_size, max_seq_len=self.seq_len)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to ``min_lr_ratio * lr``."""
    total = cfg.steps
    warm = max(1, int(round(cfg.warmup * total)))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("parameter 'device'='cuda' but torch sees no CUDA device")
    return name


# ---------------------------------------------------------------- evaluation
@dataclass
class EvalSet:
    """Non-overlapping validation windows [n, seq_len + 1] and the characters their targets decode to."""
    windows: np.ndarray
    n_chars: int

    @property
    def n_targets(self) -> int:
        return int(self.windows.shape[0] * (self.windows.shape[1] - 1))

    @classmethod
    def build(cls, val_ids: np.ndarray, seq_len: int, eval_tokens: int,
              decode: Callable[[Sequence[int]], str]) -> "EvalSet":
        val_ids = np.asarray(val_ids)
        n = min(max(1, eval_tokens // seq_len), (len(val_ids) - 1) // seq_len)
        if n < 1:
            raise ValueError(f"validation split has {len(val_ids)} tokens, fewer than one window of "
                             f"seq_len+1 = {seq_len + 1}")
        idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
        targets = val_ids[1:n * seq_len + 1]
        n_chars = len(decode(targets.tolist()))
        if n_chars == 0:
            raise ValueError("validation targets decode to no characters; cannot compute bits per character")
        return cls(windows=val_ids[idx].astype(np.int64), n_chars=n_chars)


def evaluate(model, eval_set: EvalSet, device: str = "cpu", batch: int = 64) -> dict:
    """Validation loss in nats/token and bits per character (total nats / ln 2 / characters)."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total_nats = 0.0
    with torch.no_grad():
        for i in range(0, len(eval_set.windows), batch):
            w = torch.from_numpy(eval_set.windows[i:i + batch]).to(device)
            logits, _ = model(w[:, :-1])
            nats = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), w[:, 1:].reshape(-1),
                                   reduction="sum")
            total_nats += float(nats)
    model.train(was_training)
    return {"val_loss": total_nats / eval_set.n_targets,
            "val_bpc": total_nats / math.log(2) / eval_set.n_chars}


def unigram_bpc(train_texts: Sequence[str], val_texts: Sequence[str]) -> float:
    """Bits per character of the unigram character model of the train split, measured on val.

    The baseline any model must beat: it knows the character frequencies but no
    context. Characters unseen in train get add-one smoothing, so the value is finite.
    """
    counts = Counter()
    for t in train_texts:
        counts.update(t)
    val_counts = Counter()
    for t in val_texts:
        val_counts.update(t)
    alphabet = set(counts) | set(val_counts)
    total = sum(counts.values()) + len(alphabet)
    n_val = sum(val_counts.values())
    if n_val == 0:
        raise ValueError("validation texts are empty")
    bits = sum(c * -math.log2((counts[ch] + 1) / total) for ch, c in val_counts.items())
    return bits / n_val


# ---------------------------------------------------------------- training
@dataclass
class TrainResult:
    config: TrainConfig
    model: object
    n_params: int
    val_loss: float
    bpc: float
    tokens_trained: int
    wall_s: float
    tokens_per_s: float
    metrics: list = field(default_factory=list)
    samples: list = field(default_factory=list)
    device: str = "cpu"
    best_step: int = 0


def _batch(train_ids: np.ndarray, rng: np.random.Generator, batch_size: int, seq_len: int) -> np.ndarray:
    starts = rng.integers(0, len(train_ids) - seq_len - 1, size=batch_size)
    return train_ids[starts[:, None] + np.arange(seq_len + 1)[None, :]].astype(np.int64)


def _optimizer(model, cfg: TrainConfig, device: str):
    import torch
    # Norm gains and embeddings are not decayed (the usual GPT practice).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "emb" not in n]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "emb" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    # fused AdamW: one kernel per step on CUDA (tiny models are launch-bound there)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device == "cuda")


def _save_state(path: Path, model, opt, step: int, rng: np.random.Generator, metrics: list, elapsed: float,
                best: tuple = (math.inf, None, None)):
    """Everything a resumed run needs to end where an uninterrupted one would, early stopping's best
    (value, weights, step) included."""
    import torch
    from ..provenance import atomic_path
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "rng": rng.bit_generator.state, "metrics": metrics, "elapsed": elapsed,
                    "best": {"val": best[0], "state": best[1], "step": best[2]}}, tmp)


def train_model(cfg: TrainConfig, train_ids: np.ndarray, eval_set: EvalSet, vocab_size: int,
                run_dir: str | Path | None = None, encode: Callable | None = None,
                decode: Callable | None = None, prompts: Sequence = SAMPLE_PROMPTS,
                progress: bool = True, save_state: bool = True, desc: str = "train",
                on_eval: Callable | None = None, keep_best: str | None = None) -> TrainResult:
    """Train one model on ``train_ids``; evaluate every ``eval_every`` steps and at the end.

    ``on_eval(model) -> dict`` adds metrics at each evaluation (e.g. a held-out dev bpc); with
    ``keep_best`` naming one of them, the weights at its lowest value are restored at the end
    (early stopping; ``result.best_step`` says where).

    With ``run_dir`` the checkpoint, config and metrics are written there, and a
    ``train_state.pt`` left by an interrupted run is resumed. ``prompts`` are
    strings (encoded with ``encode``) or token-id lists; samples need ``decode``.
    """
    import torch
    from tqdm.auto import tqdm

    from ..model import Transformer, count_params

    train_ids = np.asarray(train_ids)
    if len(train_ids) < cfg.seq_len + 2:
        raise ValueError(f"train split has {len(train_ids)} tokens, fewer than seq_len+2 = {cfg.seq_len + 2}")
    if int(train_ids.max()) >= vocab_size:
        raise ValueError(f"train tokens reach id {int(train_ids.max())} but vocab_size is {vocab_size}")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = Transformer(cfg.model_config(vocab_size)).to(device)
    opt = _optimizer(model, cfg, device)
    rng = np.random.default_rng(cfg.seed)
    step, metrics, elapsed = 0, [], 0.0
    best_val, best_state, best_step = math.inf, None, None
    run_dir = Path(run_dir) if run_dir else None
    state_path = run_dir / "train_state.pt" if run_dir else None
    if state_path is not None and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        rng.bit_generator.state = state["rng"]
        step, metrics, elapsed = state["step"], state["metrics"], state["elapsed"]
        if "best" in state:
            best_val, best_state, best_step = state["best"]["val"], state["best"]["state"], state["best"]["step"]

    tokens_per_step = cfg.batch_size * cfg.seq_len
    t0 = time.perf_counter() - elapsed
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, disable=not progress, unit="step", leave=False)
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, step)
        xy = torch.from_numpy(_batch(train_ids, rng, cfg.batch_size, cfg.seq_len)).to(device, non_blocking=True)
        _, loss = model(xy[:, :-1], xy[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ev = evaluate(model, eval_set, device)
            if on_eval is not None:
                ev = {**ev, **on_eval(model)}
            if keep_best is not None and ev[keep_best] < best_val:
                best_val, best_step = ev[keep_best], step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            wall = time.perf_counter() - t0
            metrics.append({"step": step, "tokens": step * tokens_per_step, "lr": lr_at(cfg, step - 1),
                            "train_loss": float(loss.detach()), **ev, "wall_s": round(wall, 3)})
            bar.set_postfix(bpc=f"{ev['val_bpc']:.3f}", tok_s=f"{step * tokens_per_step / max(wall, 1e-9):,.0f}")
            if state_path is not None and save_state and step < cfg.steps:
                _save_state(state_path, model, opt, step, rng, metrics, wall, (best_val, best_state, best_step))
    bar.close()
    wall = time.perf_counter() - t0
    final = metrics[-1]
    if best_state is not None and best_step != step:
        model.load_state_dict(best_state)
        final = next(m for m in metrics if m["step"] == best_step)
    samples = generate_samples(model, prompts, encode, decode, device) if decode else []
    result = TrainResult(config=cfg, model=model, n_params=count_params(model), val_loss=final["val_loss"],
                         bpc=final["val_bpc"], tokens_trained=cfg.steps * tokens_per_step, wall_s=wall,
                         tokens_per_s=cfg.steps * tokens_per_step / max(wall, 1e-9), metrics=metrics,
                         samples=samples, device=device, best_step=best_step or step)
    if run_dir is not None:
        write_run(result, run_dir)
        if state_path.exists():
            state_path.unlink()
    return result


def write_run(result: TrainResult, run_dir: str | Path) -> None:
    """model.safetensors (config + train config inside), config.json and metrics.csv, each atomically."""
    import pandas as pd

    from ..model import save_checkpoint
    from ..provenance import atomic_path, atomic_write_text

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(result.model, run_dir / "model.safetensors", extra={"train_config": result.config.to_dict()})
    atomic_write_text(run_dir / "config.json", json.dumps(
        {"train": result.config.to_dict(), "model": result.model.cfg.to_dict(), "n_params": result.n_params},
        indent=2, sort_keys=True))
    with atomic_path(run_dir / "metrics.csv") as tmp:
        pd.DataFrame(result.metrics).to_csv(tmp, index=False)


def generate_samples(model, prompts: Sequence, encode: Callable | None, decode: Callable, device: str = "cpu",
                     n_new: int = SAMPLE_TOKENS, temperature: float = 0.8, seed: int = 0) -> list[dict]:
    """Greedy and temperature samples from each prompt: [{prompt, mode, text}]."""
    import torch
    out = []
    for prompt in prompts:
        ids = list(prompt) if not isinstance(prompt, str) else encode(prompt)
        text_prompt = prompt if isinstance(prompt, str) else decode(ids)
        if not ids:
            continue
        x = torch.tensor([ids], dtype=torch.long, device=device)
        for mode, temp in (("greedy", 0.0), (f"T={temperature}", temperature)):
            gen = torch.Generator(device=device).manual_seed(seed)
            y = model.generate(x, n_new, temperature=temp, generator=gen)
            out.append({"prompt": text_prompt, "mode": mode, "text": decode(y[0].tolist())})
    return out
