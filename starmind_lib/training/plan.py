"""Study v2's plan: distinct configurations, size buckets, the jobs of each tier, the tuned rates.

What :mod:`.study` trains, decided from the grid and from the rows already trained (see its docstring for
the tiers); nothing here trains or reads files.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..config import ConfigError, StageConfig, between
from .grid import count_params

ARCH_FIELDS = ("dim", "n_layers", "n_heads", "ffn_hidden", "activation", "pos", "tied", "tokenizer", "vocab_size")
SEEDS = (0, 1, 2)
UNTUNED_LR = 3e-3
LR_GRID = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2)   # 2e-2 and 5e-2 added: the old edge, 1e-2, won every bucket
BASE_TOKENS = 2_000_000
LONG_TOKENS = 20_000_000
LONG_MIN_CONFIGS = 20
DEV_STORIES = 300                   # training stories held out for the long tier's early stopping
TRAIN_EVAL_STORIES = 708            # training stories scored for the train-validation gap
# size buckets: (name, lower bound in parameters); a configuration belongs to the last bucket it reaches
# The 300k bucket was split from the 100k one after the rate tuned on ~100K models proved too high for the
# bucket's 300K models (their runs from before the split are kept, superseded: analysis.seeds.load_study).
BUCKETS = (("1k", 0), ("10k", 3_000), ("100k", 30_000), ("300k", 200_000), ("1m", 600_000))
LR_REPRESENTATIVES = {
    "1k": ("budget1k-depth-l2", "budget1k-vocab-bpe384"),
    "10k": ("budget10k-depth-l2", "budget10k-vocab-bpe1024"),
    "100k": ("budget100k-depth-l2", "budget100k-vocab-bpe1024"),
    "300k": ("budget300k-depth-l2", "budget300k-vocab-bpe1024"),
    "1m": ("size-d128-l6", "size-d128-l6-bpe1024"),
}
TABLE_STEM = ("sweep", "study_v2")    # the table of runs, under results_dir


def bucket_of(n_params: int) -> str:
    name = BUCKETS[0][0]
    for b, lo in BUCKETS:
        if n_params >= lo:
            name = b
    return name


def config_hash(arch: dict, seq_len: int = 64) -> str:
    """The configuration's identity: model shape, tokenizer and context (no seed, rate or budget)."""
    key = {f: arch[f] for f in ARCH_FIELDS} | {"seq_len": seq_len}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def distinct_configs(variants: list[dict], seq_len: int = 64) -> list[dict]:
    """One entry per distinct configuration: its fields, hash, parameter count, bucket and the variants using it."""
    out: dict[str, dict] = {}
    for v in variants:
        h = config_hash(v, seq_len)
        c = out.setdefault(h, {**{f: v[f] for f in ARCH_FIELDS}, "config_hash": h, "seq_len": seq_len,
                               "n_params": count_params(**{f: v[f] for f in ARCH_FIELDS}, seq_len=seq_len),
                               "variant_ids": [], "axes": []})
        c["variant_ids"].append(v["variant_id"])
        if v["axis"] not in c["axes"]:
            c["axes"].append(v["axis"])
    for c in out.values():
        c["bucket"] = bucket_of(c["n_params"])
        c["name"] = c["variant_ids"][0]
    return list(out.values())


def variant_id_list(value, name: str | None = None) -> list[str]:
    """A row's ``variant_ids`` as a list of strings, whichever way its table stored them (a list, an array,
    a JSON string, one id, missing); empty and missing fall back to ``[name]`` when a name is given."""
    if isinstance(value, str):
        ids = [str(x) for x in json.loads(value)] if value.startswith("[") else [value]
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        ids = []
    else:
        ids = [str(x) for x in value]
    return ids or ([name] if name else [])


@dataclass(frozen=True)
class Job:
    config: dict
    seed: int
    lr: float
    tokens: int
    tier: str
    batch_size: int = 0          # sequences per optimizer step; 0: the study's (then the key does not say it)

    @property
    def run_key(self) -> str:
        key = f"{self.config['config_hash']}-{self.tier}-s{self.seed}-lr{self.lr:g}-t{self.tokens}"
        return f"{key}-b{self.batch_size}" if self.batch_size else key


@dataclass(frozen=True)
class StudyConfig(StageConfig):
    grid: str = field(default="full", metadata={"choices": ("full", "quick", "smoke")})
    tiers: tuple[str, ...] = ("lr", "base", "untuned", "long", "context")
    seeds: tuple[int, ...] = SEEDS
    lr_grid: tuple[float, ...] = LR_GRID
    base_tokens: int = field(default=BASE_TOKENS, metadata=between(1, 10**12))
    long_tokens: int = field(default=LONG_TOKENS, metadata=between(1, 10**12))
    long_configs: int = field(default=LONG_MIN_CONFIGS, metadata=between(1, 1000))
    long_seeds: int = field(default=len(SEEDS), metadata=between(1, 100))   # 1 on a CPU: the base tier has the seeds
    seq_len: int = field(default=64, metadata=between(2, 4096))
    batch_size: int = field(default=32, metadata=between(1, 1 << 16))
    eval_every: int = field(default=250, metadata=between(1, None))
    workers: int = field(default=2, metadata=between(1, 256))
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    max_params: int = field(default=10**9, metadata=between(1, None))   # skip larger configs (CPU runs)
    first: tuple[str, ...] = ()         # configurations (any variant id using them) each tier trains first

    def validate(self) -> None:
        bad = sorted(set(self.tiers) - {"lr", "base", "untuned", "long", "context"})
        if bad:
            raise ConfigError(f"parameter 'tiers': unknown tier(s) {bad}; "
                              "choose from 'lr', 'base', 'untuned', 'long', 'context'")
        if not self.seeds:
            raise ConfigError("parameter 'seeds' must list at least one seed")
        if self.first:
            from .grid import grid
            unknown = sorted(set(self.first) - {v["variant_id"] for v in grid(self.grid)})
            if unknown:
                raise ConfigError(f"parameter 'first': {unknown} not in the {self.grid!r} grid")


# ---------------------------------------------------------------- planning
def _seed_list(study: StudyConfig, tier: str) -> tuple[int, ...]:
    return study.seeds[:1] if tier in ("lr", "untuned") else study.seeds


def representatives(configs: list[dict]) -> dict[str, tuple[str, ...]]:
    """Per size bucket present in ``configs``: the named representatives (``LR_REPRESENTATIVES``) that are
    there, else the bucket's smallest char and smallest BPE configuration (small grids, tests)."""
    out = {}
    for bucket in sorted({c["bucket"] for c in configs}):
        names = [n for n in LR_REPRESENTATIVES.get(bucket, ()) if any(n in c["variant_ids"] for c in configs)]
        if not names:
            for kind in ("char", "bpe"):
                mine = sorted((c for c in configs if c["bucket"] == bucket and c["tokenizer"] == kind),
                              key=lambda c: c["n_params"])
                if mine:
                    names.append(mine[0]["name"])
        out[bucket] = tuple(names)
    return out


def tuned_rates(rows: list[dict], lr_grid=LR_GRID, reps: dict | None = None) -> dict[str, float]:
    """Per size bucket, the rate with the lowest mean whole-split bpc over the bucket's representatives.

    A bucket is decided only when every representative has a row at every rate (else it is absent).
    """
    out = {}
    for bucket, names in (LR_REPRESENTATIVES if reps is None else reps).items():
        got = {}
        for r in rows:
            hit = set(r.get("variant_ids") or [r["name"]]) & set(names)
            if r["tier"] == "lr" and hit:
                got.setdefault(r["lr"], {}).setdefault(min(hit), []).append(r["bpc"])
        if names and all(lr in got and set(got[lr]) == set(names) for lr in lr_grid):
            means = {lr: float(np.mean([np.mean(v) for v in got[lr].values()])) for lr in lr_grid}
            out[bucket] = min(means, key=means.get)
    return out


def long_tier_configs(rows: list[dict], configs: list[dict], n: int = LONG_MIN_CONFIGS,
                      max_front: int | None = None, rates: dict[str, float] | None = None) -> list[dict]:
    """The configurations the long tier trains (only models that beat the unigram baseline): every model on
    the base tier's quality-size front, then the best of each size decade, then the best remaining models
    until ``n``. A front longer than ``max_front`` (default 2n; a synthetic grid's can hold every model) is
    thinned to ``max_front`` models spread evenly over log(parameters). With ``rates`` (per bucket), a base
    row counts only at its configuration's bucket's rate: runs at a rate the bucket no longer uses are left
    out (as ``analysis.seeds.load_study`` labels them superseded)."""
    max_front = 2 * n if max_front is None else max_front
    by_hash = {c["config_hash"]: c for c in configs}
    means: dict[str, list] = {}
    for r in rows:
        if r["tier"] == "base" and r["config_hash"] in by_hash and (
                rates is None or r.get("lr") == rates.get(by_hash[r["config_hash"]]["bucket"])):
            means.setdefault(r["config_hash"], []).append((r["bpc"], r["unigram_bpc"]))
    cand = sorted(((float(np.mean([b for b, _ in v])), by_hash[h]["n_params"], h) for h, v in means.items()
                   if np.mean([b for b, _ in v]) < v[0][1]), key=lambda t: (t[1], t[0]))
    best = math.inf
    front = []
    for bpc, size, h in cand:                   # the front: better than every smaller model
        if bpc < best:
            front.append((size, h))
            best = bpc
    if len(front) > max_front:                  # too many: spread them evenly over log(parameters)
        logs = np.log([f[0] for f in front])
        picks = {int(np.argmin(np.abs(logs - t))) for t in np.linspace(logs[0], logs[-1], max_front)}
        front = [front[i] for i in sorted(picks)]
    chosen = [h for _, h in front]
    for lo in (0, 3_000, 30_000, 300_000):      # the best of each decade
        dec = [t for t in cand if lo <= t[1] < lo * 10 + (lo == 0) * 3_000]
        if dec:
            h = min(dec)[2]
            if h not in chosen:
                chosen.append(h)
    rest = sorted(cand)                          # then the best remaining models overall
    for bpc, _, h in rest:
        if len(chosen) >= n:
            break
        if h not in chosen:
            chosen.append(h)
    return [by_hash[h] for h in chosen]


def long_tier_plan(rows: list[dict], configs: list[dict], n: int = LONG_MIN_CONFIGS,
                   lr_grid=LR_GRID) -> list[dict]:
    """The long tier's configurations from the rows a table holds: ``long_tier_configs`` over the buckets
    whose rate the sweep has decided, each base row counted only at its bucket's tuned rate."""
    rates = tuned_rates(rows, lr_grid, representatives(configs))
    return long_tier_configs(rows, [c for c in configs if c["bucket"] in rates], n, rates=rates)


def context_controls(configs: list[dict], chars_per_token: dict[str, float], seq_len: int = 64) -> list[dict]:
    """Char and BPE-1024 models (d32) that see the same characters of context: char with a context of
    ``seq_len`` BPE tokens' worth of characters, and BPE with ``seq_len`` characters' worth of tokens."""
    by_name = {name: c for c in configs for name in c["variant_ids"]}
    out = []
    char, bpe = by_name.get("vocab-d32-char64"), by_name.get("vocab-d32-bpe1024")
    if char is None or bpe is None or "bpe1024" not in chars_per_token:
        return out
    cpt = chars_per_token["bpe1024"] / chars_per_token.get("char64", 1.0)
    for base, ctx in ((char, round(seq_len * cpt)), (bpe, max(2, round(seq_len / cpt)))):
        c = {**base, "seq_len": ctx, "config_hash": config_hash(base, ctx)}
        c["name"] = f"{base['name']}-ctx{ctx}"
        out.append(c)
    return out


def plan_jobs(tier: str, study: StudyConfig, configs: list[dict], rows: list[dict],
              chars_per_token: dict[str, float] | None = None) -> tuple[list[Job], str]:
    """The jobs of one tier, and what it still waits for ('' when nothing: e.g. a bucket's rate not decided
    yet; the base tier plans the buckets that are decided, the others tiers nothing until all are)."""
    configs = [c for c in configs if c["n_params"] <= study.max_params]
    reps = representatives(configs)
    rates = tuned_rates(rows, study.lr_grid, reps)
    if tier == "lr":
        names = {n for ns in reps.values() for n in ns}
        reps = [c for c in configs if set(c["variant_ids"]) & names]
        return [Job(c, s, lr, study.base_tokens, tier) for c in reps for lr in study.lr_grid
                for s in _seed_list(study, tier)], ""
    if tier == "untuned":
        return [Job(c, s, UNTUNED_LR, study.base_tokens, tier) for c in configs for s in _seed_list(study, tier)], ""
    missing = sorted({c["bucket"] for c in configs} - set(rates))
    if tier == "base":           # each bucket as soon as its rate is decided
        return ([Job(c, s, rates[c["bucket"]], study.base_tokens, tier) for c in configs if c["bucket"] in rates
                 for s in study.seeds],
                f"the base grid's bucket(s) {missing} wait for their learning-rate sweep" if missing else "")
    if missing:
        return [], f"tier {tier!r} waits for the learning-rate sweep of bucket(s) {missing}"
    if tier == "long":
        chosen = long_tier_plan(rows, configs, study.long_configs, study.lr_grid)
        if len(chosen) < min(study.long_configs, len(configs)):
            return [], f"tier 'long' waits for the base tier ({len(chosen)} configurations chosen so far)"
        # a configuration the tier has started keeps getting its seeds, even once the plan has passed it by
        started = {r["config_hash"] for r in rows if r.get("tier") == "long"} - {c["config_hash"] for c in chosen}
        chosen += [c for c in configs if c["config_hash"] in started]
        return [Job(c, s, rates[c["bucket"]], study.long_tokens, tier) for c in chosen
                for s in study.seeds[:study.long_seeds]], ""
    if tier == "context":    # each control twice: the study's batch of sequences, and its tokens per step
        ctl = context_controls(configs, chars_per_token or {}, study.seq_len)
        same_tokens = lambda c: max(1, round(study.batch_size * study.seq_len / c["seq_len"]))  # noqa: E731
        return [Job(c, s, rates[c["bucket"]], study.base_tokens, tier, b) for c in ctl for b in (0, same_tokens(c))
                for s in study.seeds], ""
    raise ValueError(f"unknown tier {tier!r}")


def job_order(jobs: list[Job], first: tuple[str, ...] = ()) -> list[Job]:
    """The order a tier trains its jobs: the configurations named in ``first`` (by any variant id using
    them), then the rest; cheapest first within each."""
    wanted = set(first)
    return sorted(jobs, key=lambda j: (not (set(j.config["variant_ids"]) & wanted), estimated_cost(j)))


def estimated_cost(job: Job) -> float:
    c = job.config
    return job.tokens * (6 * c["n_params"] + 4 * c["n_layers"] * c["seq_len"] * c["dim"] + 20_000 * c["n_layers"])


