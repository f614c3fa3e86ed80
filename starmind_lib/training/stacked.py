"""Training the seeds of one configuration together: S same-shape models as one stacked model.

Tiny models are launch-bound on a GPU: one 10K-parameter model at batch 32 x 64 keeps the device
idle between kernels. Here the S models of a study job group (same configuration, rate, budget and
tier; different seeds) train in one process, their parameters stacked along a leading dimension S
(``torch.func.stack_module_state``) and the forward pass vmapped over S, so each kernel does S
models' work::

    results = train_stacked([cfg.replace(seed=s) for s in (0, 1, 2)], train_ids, eval_set, vocab_size)

It is :func:`~.train.train_model` in maths, model by model: each model is initialised with
``torch.manual_seed(seed)`` and draws its batches from ``np.random.default_rng(seed)`` exactly as the
single run does; AdamW (same two parameter groups, betas, weight decay) is elementwise, so one
optimizer over the stacked tensors updates each slice as its own optimizer would; gradient clipping
is per model (each model's norm over its slices); the losses are summed, so each slice's gradient is
its own model's. Only float summation order differs (batched matmuls), so the results agree with the
single runs to rounding, not bit for bit. Evaluation, ``on_eval`` and ``keep_best`` early stopping
are per model; the results are ordinary :class:`~.train.TrainResult` objects with one unstacked
:class:`~starmind_lib.model.Transformer` each.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import numpy as np

from .train import (SAMPLE_PROMPTS, EvalSet, TrainConfig, TrainResult, _batch, generate_samples, lr_at,
                    resolve_device, write_run)

PREFETCH_STEPS = 64      # batches drawn (per model, in the single runs' order) and moved to the device at once


def _same_but_seed(cfgs: Sequence[TrainConfig]) -> None:
    if not cfgs:
        raise ValueError("train_stacked needs at least one TrainConfig")
    ref = cfgs[0].replace(seed=0)
    for c in cfgs[1:]:
        if c.replace(seed=0) != ref:
            raise ValueError("train_stacked: the configs must differ only in 'seed'")


def _stacked_eval(fmodel, params, buffers, eval_set: EvalSet, device: str, batch: int = 64) -> list[dict]:
    """train.evaluate for every model at once (same windows, same batches, same float64 sums)."""
    import torch
    import torch.nn.functional as F

    S = next(iter(params.values())).shape[0]
    total = np.zeros(S)
    with torch.no_grad():
        for i in range(0, len(eval_set.windows), batch):
            w = torch.from_numpy(eval_set.windows[i:i + batch]).to(device)
            logits = torch.vmap(lambda p, x: fmodel(p, buffers, x)[0], in_dims=(0, None))(params, w[:, :-1])
            nats = torch.vmap(lambda lg: F.cross_entropy(lg.reshape(-1, lg.size(-1)).float(), w[:, 1:].reshape(-1),
                                                         reduction="sum"))(logits)
            total += nats.double().cpu().numpy()
    return [{"val_loss": float(t) / eval_set.n_targets, "val_bpc": float(t) / math.log(2) / eval_set.n_chars}
            for t in total]


def train_stacked(cfgs: list[TrainConfig], train_ids: np.ndarray, eval_set: EvalSet, vocab_size: int,
                  on_eval: Callable | None = None, keep_best: str | None = None,
                  run_dirs: Sequence | None = None, encode: Callable | None = None, decode: Callable | None = None,
                  prompts: Sequence = SAMPLE_PROMPTS, compile: bool = False, attention: str = "auto",
                  unstacked_eval: bool = False) -> list[TrainResult]:
    """Train ``len(cfgs)`` models that differ only in seed as one stacked model; one TrainResult each.

    ``on_eval(model) -> dict`` and ``keep_best`` work as in :func:`~.train.train_model`, per model
    (``on_eval`` gets each model unstacked). ``run_dirs`` (one per config) get the run files
    (:func:`~.train.write_run`); there is no resuming. ``compile=True`` wraps the vmapped loss in
    ``torch.compile`` (optional, for CUDA; off by default). ``attention="math"`` runs attention as plain
    batched matmuls (the default on the CPU, where the fused kernel has no vmap rule and would loop over
    S); ``"fused"`` keeps ``scaled_dot_product_attention``'s kernel choice (the default on CUDA, where
    the fused kernels have vmap rules); ``"auto"`` picks by device. ``unstacked_eval`` evaluates the prefix
    with ``train.evaluate`` on each unstacked model instead of vmapped (slower, bit-equal to it).
    """
    import torch

    from ..model import Transformer, count_params
    from .train import evaluate

    _same_but_seed(cfgs)
    cfg0, S = cfgs[0], len(cfgs)
    train_ids = np.asarray(train_ids)
    if len(train_ids) < cfg0.seq_len + 2:
        raise ValueError(f"train split has {len(train_ids)} tokens, fewer than seq_len+2 = {cfg0.seq_len + 2}")
    if int(train_ids.max()) >= vocab_size:
        raise ValueError(f"train tokens reach id {int(train_ids.max())} but vocab_size is {vocab_size}")
    device = resolve_device(cfg0.device)
    if attention not in ("auto", "math", "fused"):
        raise ValueError(f"attention must be 'auto', 'math' or 'fused', not {attention!r}")
    math_attn = attention == "math" or (attention == "auto" and device == "cpu")
    mcfg = cfg0.model_config(vocab_size)
    models = []
    for c in cfgs:                              # exactly train_model's initialisation, seed by seed
        torch.manual_seed(c.seed)
        models.append(Transformer(mcfg).to(device))
    params, _ = torch.func.stack_module_state(models)   # leaf tensors [S, ...], requires_grad
    buffers = {k: v for k, v in models[0].named_buffers()}
    base = copy.deepcopy(models[0]).to("meta")

    def fmodel(p, b, x, y=None):
        with _attention_ctx(math_attn):
            return torch.func.functional_call(base, (p, b), (x, y))

    def losses(p, xy):                          # xy: [S, B, T+1] -> per-model mean loss [S]
        return torch.vmap(lambda pi, xyi: fmodel(pi, buffers, xyi[:, :-1], xyi[:, 1:])[1])(p, xy)

    loss_fn = torch.compile(losses) if compile else losses
    names = list(params)
    is_decay = lambda n, t: t.dim() - 1 >= 2 and "emb" not in n  # noqa: E731 - train._optimizer's rule, less S
    groups = [{"params": [params[n] for n in names if is_decay(n, params[n])], "weight_decay": cfg0.weight_decay},
              {"params": [params[n] for n in names if not is_decay(n, params[n])], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg0.lr, betas=(0.9, 0.95), fused=device == "cuda")
    rngs = [np.random.default_rng(c.seed) for c in cfgs]

    metrics = [[] for _ in range(S)]
    best = [(math.inf, None, None) for _ in range(S)]       # (value, state, step) per model
    tokens_per_step = cfg0.batch_size * cfg0.seq_len
    steps, step, chunk = cfg0.steps, 0, None
    t0 = time.perf_counter()
    while step < steps:
        if step % PREFETCH_STEPS == 0:          # the next batches of every model, in each rng's order
            n = min(PREFETCH_STEPS, steps - step)
            host = np.stack([np.stack([_batch(train_ids, r, cfg0.batch_size, cfg0.seq_len) for _ in range(n)])
                             for r in rngs], axis=1)        # [n, S, B, T+1]
            chunk = torch.from_numpy(host).to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg0, step)
        loss = loss_fn(params, chunk[step % PREFETCH_STEPS])
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        if cfg0.grad_clip > 0:                  # clip_grad_norm_ per model: norm of the per-tensor norms
            grads = [params[n].grad for n in names if params[n].grad is not None]
            norms = torch.stack([g.flatten(1).norm(2, dim=1) for g in grads]).norm(2, dim=0)    # [S]
            coef = (cfg0.grad_clip / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
        opt.step()
        step += 1
        if step % cfg0.eval_every == 0 or step == steps:
            detached = {k: v.detach() for k, v in params.items()}
            if unstacked_eval or on_eval is not None:
                _load_slices(models, detached)
            evs = ([evaluate(m, eval_set, device) for m in models] if unstacked_eval
                   else _stacked_eval(fmodel, detached, buffers, eval_set, device))
            train_loss = loss.detach().cpu().tolist()
            wall = time.perf_counter() - t0
            for i in range(S):
                ev = evs[i] if on_eval is None else {**evs[i], **on_eval(models[i])}
                if keep_best is not None and ev[keep_best] < best[i][0]:
                    best[i] = (ev[keep_best], {k: v[i].clone() for k, v in detached.items()}, step)
                metrics[i].append({"step": step, "tokens": step * tokens_per_step, "lr": lr_at(cfg0, step - 1),
                                   "train_loss": train_loss[i], **ev, "wall_s": round(wall, 3)})
    wall = time.perf_counter() - t0
    _load_slices(models, {k: v.detach() for k, v in params.items()})
    results = []
    for i, (c, m) in enumerate(zip(cfgs, models)):
        m.train()
        final, best_step = metrics[i][-1], best[i][2]
        if best[i][1] is not None and best_step != step:
            m.load_state_dict(best[i][1])
            final = next(x for x in metrics[i] if x["step"] == best_step)
        samples = generate_samples(m, prompts, encode, decode, device) if decode else []
        res = TrainResult(config=c, model=m, n_params=count_params(m), val_loss=final["val_loss"],
                          bpc=final["val_bpc"], tokens_trained=steps * tokens_per_step, wall_s=wall,
                          tokens_per_s=steps * tokens_per_step / max(wall, 1e-9), metrics=metrics[i],
                          samples=samples, device=device, best_step=best_step or step)
        if run_dirs is not None:
            write_run(res, run_dirs[i])
        results.append(res)
    return results


def _attention_ctx(math_attn: bool):
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel(SDPBackend.MATH) if math_attn else contextlib.nullcontext()


def _load_slices(models, stacked: dict) -> None:
    """Copy slice i of every stacked parameter into models[i] (in place)."""
    import torch
    with torch.no_grad():
        for i, m in enumerate(models):
            for n, p in m.named_parameters():
                p.copy_(stacked[n][i])


# ---------------------------------------------------------------- benchmark
BENCH_MODELS = [("~10K", dict(dim=20, n_layers=2, n_heads=1, ffn_hidden=80)),
                ("~100K", dict(dim=64, n_layers=2, n_heads=2, ffn_hidden=256))]


def bench_stacked(device: str = "cpu", sizes: Sequence[int] = (1, 3, 8, 32), steps: int = 20,
                  batch_size: int = 32, seq_len: int = 64, compile: bool = False) -> list[dict]:
    """Aggregate training tokens/s of S stacked models (S in ``sizes``) at ~10K and ~100K parameters.

    Times ``steps`` optimizer steps after warm-up, evaluation excluded (one eval at the end, untimed:
    ``eval_every`` > steps). Prints one line per (model, S).
    """
    import torch

    device = resolve_device(device)
    data = np.random.default_rng(0).integers(0, 64, 200_000)
    val = np.random.default_rng(1).integers(0, 64, 2_000)
    eval_set = EvalSet.build(val, seq_len, 64 * seq_len, decode=lambda ids: "x" * len(ids))
    out = []
    for label, fields in BENCH_MODELS:
        for S in sizes:
            cfgs = [TrainConfig.from_params({**fields, "seq_len": seq_len, "batch_size": batch_size,
                                             "tokens": steps * batch_size * seq_len, "eval_every": 10**9,
                                             "seed": s, "device": device}) for s in range(S)]
            train_stacked([c.replace(tokens=2 * batch_size * seq_len) for c in cfgs], data, eval_set, 64,
                          compile=compile)      # warm-up (allocator, kernels, compile)
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            res = train_stacked(cfgs, data, eval_set, 64, compile=compile)
            if device == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - t0
            tok = S * res[0].tokens_trained
            row = {"model": label, "n_params": res[0].n_params, "S": S, "steps": cfgs[0].steps,
                   "wall_s": round(wall, 3), "tokens_per_s": round(tok / wall)}
            print(f"stacked {label:>6} ({row['n_params']:>7,} params) S={S:>3}: {row['tokens_per_s']:>12,} tokens/s "
                  f"aggregate ({row['steps']} steps in {wall:.2f} s, incl. one eval)", flush=True)
            out.append(row)
    return out


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m starmind_lib.bench stacked", description=bench_stacked.__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--sizes", default="1,3,8,32")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the vmapped loss (CUDA)")
    a = p.parse_args(argv)
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    bench_stacked(a.device, [int(s) for s in a.sizes.split(",")], a.steps, compile=a.compile)
    return 0
