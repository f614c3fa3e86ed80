"""Whole-split evaluation: bits per character on every validation story, with a bootstrap interval.

The study's headline numbers come from here. Every tokenizer is scored on the
same text: each validation story whole, from its first character, with the
end-of-story token that follows it. A story enters the model as
``EOS s_1 ... s_n`` (the EOS is the separator the model saw before every story
in training) and the targets are ``s_1 ... s_n EOS``::

    ev = StoryEval.from_prepared(val_ids, eos_id, story_chars, seq_len=64)
    res = evaluate_stories(model, ev)          # {'bpc', 'bpc_ci_low', 'bpc_ci_high', 'eval_chars', ...}

**Long stories.** A story longer than the model's context is scored with a
sliding window of ``seq_len`` tokens moved ``stride = seq_len // 2`` at a time:
the first window scores all its targets, each later one only its last
``stride`` targets, so every target is scored exactly once and has at least
``seq_len - stride`` tokens of context (except the story's first tokens, which
have the whole story so far).

**Characters** are those of the story text as the tokenizer sees it (the
lowercased story for the study), counted before tokenization, so they are
identical for every tokenizer; the EOS target adds nats but no character.

**Interval.** A percentile bootstrap over stories: ``n_boot`` resamples of the
stories with replacement (a fixed seed), each giving total nats / ln 2 / total
characters; the 2.5th and 97.5th percentiles are the 95 % interval. It measures
how much the number depends on which stories were drawn, not seed noise (the
study reports that separately, across training seeds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_BOOT = 1000
BOOT_SEED = 20261129


@dataclass
class StoryEval:
    """Scoring windows over whole stories: inputs/targets [n, seq_len], a mask, and the story of each window."""
    inputs: np.ndarray      # int64 [n_windows, seq_len]
    targets: np.ndarray     # int64 [n_windows, seq_len]
    mask: np.ndarray        # bool  [n_windows, seq_len]: targets scored in this window
    story: np.ndarray       # int64 [n_windows]: which story a window belongs to
    story_chars: np.ndarray  # int64 [n_stories]
    seq_len: int
    stride: int

    @property
    def n_stories(self) -> int:
        return int(len(self.story_chars))

    @property
    def n_chars(self) -> int:
        return int(self.story_chars.sum())

    @property
    def n_targets(self) -> int:
        return int(self.mask.sum())

    @classmethod
    def build(cls, stories: list[np.ndarray], story_chars, eos_id: int, seq_len: int,
              stride: int | None = None, what: str = "validation") -> "StoryEval":
        """``stories``: the token ids of each story (no separators); ``story_chars``: its characters."""
        story_chars = np.asarray(story_chars, dtype=np.int64)
        if len(stories) != len(story_chars):
            raise ValueError(f"{what}: {len(stories)} tokenized stories but {len(story_chars)} character counts; "
                             "the prepared data and its story table disagree (prepare the data again)")
        if len(stories) == 0:
            raise ValueError(f"{what}: no stories to evaluate")
        if (story_chars <= 0).any():
            raise ValueError(f"{what}: story {int(np.argmax(story_chars <= 0))} has no characters")
        stride = stride or max(1, seq_len // 2)
        if not 1 <= stride <= seq_len:
            raise ValueError(f"stride must be in [1, seq_len={seq_len}], got {stride}")
        ins, tgts, masks, owner = [], [], [], []
        for i, toks in enumerate(stories):
            seq = np.concatenate([[eos_id], np.asarray(toks, dtype=np.int64), [eos_id]])
            n_t = len(seq) - 1                       # targets seq[1:]
            start, scored = 0, 0                     # window covers targets [start, start + seq_len)
            while scored < n_t:
                end = min(start + seq_len, n_t)
                x = np.zeros(seq_len, np.int64)
                y = np.zeros(seq_len, np.int64)
                m = np.zeros(seq_len, bool)
                x[:end - start] = seq[start:end]
                y[:end - start] = seq[start + 1:end + 1]
                m[scored - start:end - start] = True  # only targets not scored by an earlier window
                ins.append(x), tgts.append(y), masks.append(m), owner.append(i)
                scored = end
                start = max(0, end + stride - seq_len) if end < n_t else end
        return cls(inputs=np.stack(ins), targets=np.stack(tgts), mask=np.stack(masks),
                   story=np.asarray(owner, np.int64), story_chars=story_chars, seq_len=seq_len, stride=stride)

    @classmethod
    def from_stream(cls, ids: np.ndarray, eos_id: int, story_chars, seq_len: int, stride: int | None = None,
                    max_stories: int | None = None, what: str = "validation") -> "StoryEval":
        """From a prepared stream ``s0 EOS s1 EOS ... sN EOS`` (see tokenizers.encode_corpus)."""
        ids = np.asarray(ids, dtype=np.int64)
        ends = np.flatnonzero(ids == eos_id)
        if len(ends) == 0 or ends[-1] != len(ids) - 1:
            raise ValueError(f"{what}: the token stream does not end with EOS (id {eos_id}); "
                             "it is not a prepared story stream")
        starts = np.concatenate([[0], ends[:-1] + 1])
        stories = [ids[s:e] for s, e in zip(starts, ends)]
        chars = np.asarray(story_chars, dtype=np.int64)
        if len(stories) != len(chars):
            raise ValueError(f"{what}: {len(stories)} tokenized stories but {len(chars)} character counts; "
                             "the prepared data and its story table disagree (prepare the data again)")
        if max_stories is not None:
            stories, chars = stories[:max_stories], chars[:max_stories]
        return cls.build(stories, chars, eos_id, seq_len, stride, what)


def story_nats(model, ev: StoryEval, device: str = "cpu", batch: int = 256) -> np.ndarray:
    """Total nats of each story's targets under ``model`` (float64 [n_stories])."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    per_window = np.zeros(len(ev.inputs), np.float64)
    with torch.no_grad():
        for i in range(0, len(ev.inputs), batch):
            x = torch.from_numpy(ev.inputs[i:i + batch]).to(device)
            y = torch.from_numpy(ev.targets[i:i + batch]).to(device)
            m = torch.from_numpy(ev.mask[i:i + batch]).to(device)
            logits, _ = model(x)
            nats = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                   reduction="none").reshape(y.shape)
            per_window[i:i + len(x)] = (nats * m).double().sum(1).cpu().numpy()
    model.train(was_training)
    return np.bincount(ev.story, weights=per_window, minlength=ev.n_stories)


def bootstrap_bpc(nats: np.ndarray, chars: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                  level: float = 0.95) -> tuple[float, float, float]:
    """(bpc, ci_low, ci_high): total nats / ln 2 / total characters, percentile bootstrap over stories."""
    nats = np.asarray(nats, np.float64)
    chars = np.asarray(chars, np.float64)
    bpc = float(nats.sum() / chars.sum() / math.log(2))
    idx = np.random.default_rng(seed).integers(0, len(nats), size=(n_boot, len(nats)))
    boots = nats[idx].sum(1) / chars[idx].sum(1) / math.log(2)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return bpc, float(lo), float(hi)


def bootstrap_delta(nats: np.ndarray, base_nats: np.ndarray, chars: np.ndarray, n_boot: int = N_BOOT,
                    seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float, float]:
    """95 % interval of bpc(nats) - bpc(base_nats) on the same stories: a paired percentile bootstrap (each
    resample draws the same stories for both), so what the two share cancels."""
    nats, base, chars = (np.asarray(a, np.float64) for a in (nats, base_nats, chars))
    idx = np.random.default_rng(seed).integers(0, len(nats), size=(n_boot, len(nats)))
    boots = (nats[idx].sum(1) - base[idx].sum(1)) / chars[idx].sum(1) / math.log(2)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def evaluate_stories(model, ev: StoryEval, device: str = "cpu", batch: int = 256) -> dict:
    """Whole-split bits per character with its 95 % bootstrap interval, and what was evaluated."""
    nats = story_nats(model, ev, device, batch)
    bpc, lo, hi = bootstrap_bpc(nats, ev.story_chars)
    return {"bpc": bpc, "bpc_ci_low": lo, "bpc_ci_high": hi, "eval_chars": ev.n_chars,
            "eval_stories": ev.n_stories, "eval_tokens": ev.n_targets,
            "val_loss": float(nats.sum() / ev.n_targets), "eval_context": ev.seq_len, "eval_stride": ev.stride}
