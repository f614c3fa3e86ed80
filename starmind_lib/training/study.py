"""Study v2: distinct configurations x seeds x tuned learning rates x training budgets, resumable.

The architecture grid (:mod:`.grid`) names 198 variants along comparison axes;
many axes share a configuration (the 16-wide 2-layer char model is the base of
six). Study v2 trains each *distinct configuration* once per seed and lets the
axes reference it by its ``config_hash``::

    configs = distinct_configs(grid("full"))         # 155 configurations, each with the variant ids using it
    jobs = plan_jobs("lr", configs, ...)             # [Job(config, seed, lr, tokens, tier)]
    run_study(StudyConfig.from_params({"tiers": ["lr", "base"]}), data_dir, results_dir, runs_dir)

Tiers, run in this order (each resumes; a killed run loses and duplicates nothing):

``lr``       a learning-rate sweep (``LR_GRID``) on two representative configurations (char and BPE)
             per size bucket (``BUCKETS``); it decides the rate each bucket uses below.
``base``     every distinct configuration, ``SEEDS`` seeds, 2 M tokens, at its bucket's tuned rate.
``untuned``  every distinct configuration, seed 0, the old single rate 3e-3: how far each axis' conclusion
             moves when the rate is tuned.
``long``     the configurations on the quality fronts and in the recommendations (>= 20, ~1K to ~1.3M
             parameters), ``LONG_TOKENS`` tokens, every seed; early stopping on a dev set held out of the
             training stories (never the validation split).
``context``  the context-fairness control: char and BPE models that see the same number of characters.

Each row is one training run: ``config_hash`` (the configuration: model + tokenizer + context, no seed, rate or
budget), ``run_key`` (config_hash, seed, rate, budget, tier), the whole-split ``bpc`` with its bootstrap
interval and the characters and stories evaluated (:mod:`.evaluation`), the learning-curve bpc on the
validation prefix (``prefix_bpc``, labelled so), the train-split bpc (for the train-validation gap), and
provenance including the machine that trained it.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, StageConfig, between
from .grid import count_params, grid, tokenizer_spec

ARCH_FIELDS = ("dim", "n_layers", "n_heads", "ffn_hidden", "activation", "pos", "tied", "tokenizer", "vocab_size")
SEEDS = (0, 1, 2)
UNTUNED_LR = 3e-3
LR_GRID = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2)
BASE_TOKENS = 2_000_000
LONG_TOKENS = 20_000_000
LONG_MIN_CONFIGS = 20
DEV_STORIES = 300                   # training stories held out for the long tier's early stopping
TRAIN_EVAL_STORIES = 708            # training stories scored for the train-validation gap
# size buckets: (name, lower bound in parameters); a configuration belongs to the last bucket it reaches
BUCKETS = (("1k", 0), ("10k", 3_000), ("100k", 30_000), ("1m", 300_000))
LR_REPRESENTATIVES = {
    "1k": ("budget1k-depth-l2", "budget1k-vocab-bpe384"),
    "10k": ("budget10k-depth-l2", "budget10k-vocab-bpe1024"),
    "100k": ("budget100k-depth-l2", "budget100k-vocab-bpe1024"),
    "1m": ("size-d128-l6", "size-d128-l6-bpe1024"),
}
TABLE_STEM = ("sweep", "study_v2")


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


@dataclass(frozen=True)
class Job:
    config: dict
    seed: int
    lr: float
    tokens: int
    tier: str

    @property
    def run_key(self) -> str:
        return f"{self.config['config_hash']}-{self.tier}-s{self.seed}-lr{self.lr:g}-t{self.tokens}"


@dataclass(frozen=True)
class StudyConfig(StageConfig):
    grid: str = field(default="full", metadata={"choices": ("full", "quick", "smoke")})
    tiers: tuple[str, ...] = ("lr", "base", "untuned", "long", "context")
    seeds: tuple[int, ...] = SEEDS
    lr_grid: tuple[float, ...] = LR_GRID
    base_tokens: int = field(default=BASE_TOKENS, metadata=between(1, 10**12))
    long_tokens: int = field(default=LONG_TOKENS, metadata=between(1, 10**12))
    long_configs: int = field(default=LONG_MIN_CONFIGS, metadata=between(1, 1000))
    seq_len: int = field(default=64, metadata=between(2, 4096))
    batch_size: int = field(default=32, metadata=between(1, 1 << 16))
    eval_every: int = field(default=250, metadata=between(1, None))
    workers: int = field(default=2, metadata=between(1, 256))
    device: str = field(default="auto", metadata={"choices": ("auto", "cpu", "cuda")})
    max_params: int = field(default=10**9, metadata=between(1, None))   # skip larger configs (CPU runs)

    def validate(self) -> None:
        bad = sorted(set(self.tiers) - {"lr", "base", "untuned", "long", "context"})
        if bad:
            raise ConfigError(f"parameter 'tiers': unknown tier(s) {bad}; "
                              "choose from 'lr', 'base', 'untuned', 'long', 'context'")
        if not self.seeds:
            raise ConfigError("parameter 'seeds' must list at least one seed")


# ---------------------------------------------------------------- planning
def _seed_list(study: StudyConfig, tier: str) -> tuple[int, ...]:
    return study.seeds[:1] if tier in ("lr", "untuned") else study.seeds


def tuned_rates(rows: list[dict], lr_grid=LR_GRID) -> dict[str, float]:
    """Per size bucket, the rate with the lowest mean whole-split bpc over the bucket's representatives.

    A bucket is decided only when every representative has a row at every rate (else it is absent).
    """
    out = {}
    for bucket, names in LR_REPRESENTATIVES.items():
        got = {}
        for r in rows:
            hit = set(r.get("variant_ids") or [r["name"]]) & set(names)
            if r["tier"] == "lr" and hit:
                got.setdefault(r["lr"], {}).setdefault(min(hit), []).append(r["bpc"])
        if names and all(lr in got and set(got[lr]) == set(names) for lr in lr_grid):
            means = {lr: float(np.mean([np.mean(v) for v in got[lr].values()])) for lr in lr_grid}
            out[bucket] = min(means, key=means.get)
    return out


def long_tier_configs(rows: list[dict], configs: list[dict], n: int = LONG_MIN_CONFIGS) -> list[dict]:
    """The configurations the long tier trains: the base tier's quality-size front, then the best of each
    size decade, then the best models spread over log(parameters), until ``n`` (only models that beat the
    unigram baseline)."""
    by_hash = {c["config_hash"]: c for c in configs}
    means: dict[str, list] = {}
    for r in rows:
        if r["tier"] == "base" and r["config_hash"] in by_hash:
            means.setdefault(r["config_hash"], []).append((r["bpc"], r["unigram_bpc"]))
    cand = sorted(((float(np.mean([b for b, _ in v])), by_hash[h]["n_params"], h) for h, v in means.items()
                   if np.mean([b for b, _ in v]) < v[0][1]), key=lambda t: (t[1], t[0]))
    best = math.inf
    front = []
    for bpc, size, h in cand:                   # the front: better than every smaller model
        if bpc < best:
            front.append((size, h))
            best = bpc
    if len(front) > n:                          # too many: spread n of them evenly over log(parameters)
        logs = np.log([f[0] for f in front])
        picks = {int(np.argmin(np.abs(logs - t))) for t in np.linspace(logs[0], logs[-1], n)}
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
    """The jobs of one tier, and why a tier has none yet (e.g. its rates are not decided)."""
    configs = [c for c in configs if c["n_params"] <= study.max_params]
    rates = tuned_rates(rows, study.lr_grid)
    if tier == "lr":
        names = {n for ns in LR_REPRESENTATIVES.values() for n in ns}
        reps = [c for c in configs if set(c["variant_ids"]) & names]
        return [Job(c, s, lr, study.base_tokens, tier) for c in reps for lr in study.lr_grid
                for s in _seed_list(study, tier)], ""
    if tier == "untuned":
        return [Job(c, s, UNTUNED_LR, study.base_tokens, tier) for c in configs for s in _seed_list(study, tier)], ""
    missing = sorted({c["bucket"] for c in configs} - set(rates))
    if missing:
        return [], f"tier {tier!r} waits for the learning-rate sweep of bucket(s) {missing}"
    if tier == "base":
        return [Job(c, s, rates[c["bucket"]], study.base_tokens, tier) for c in configs for s in study.seeds], ""
    if tier == "long":
        chosen = long_tier_configs(rows, configs, study.long_configs)
        if len(chosen) < min(study.long_configs, len(configs)):
            return [], f"tier 'long' waits for the base tier ({len(chosen)} configurations chosen so far)"
        return [Job(c, s, rates[c["bucket"]], study.long_tokens, tier) for c in chosen for s in study.seeds], ""
    if tier == "context":
        ctl = context_controls(configs, chars_per_token or {}, study.seq_len)
        return [Job(c, s, rates[c["bucket"]], study.base_tokens, tier) for c in ctl for s in study.seeds], ""
    raise ValueError(f"unknown tier {tier!r}")


def estimated_cost(job: Job) -> float:
    c = job.config
    return job.tokens * (6 * c["n_params"] + 4 * c["n_layers"] * c["seq_len"] * c["dim"] + 20_000 * c["n_layers"])


# ---------------------------------------------------------------- one run
def train_job(job: Job, study: StudyConfig, data_dir: str, runs_dir: str) -> dict:
    """Train one job (in a worker); evaluate it on the whole validation split; return its row."""
    import torch

    from .evaluation import StoryEval, evaluate_stories, story_nats
    from .sweep import PREPARED_VERSION, PieceDecoder, load_prepared
    from .train import EvalSet, TrainConfig, train_model

    torch.set_num_threads(1)
    c = job.config
    spec = tokenizer_spec(c)
    data = load_prepared(data_dir, spec)
    meta = data["meta"]
    if meta.get("prepared_version") != PREPARED_VERSION:
        raise ValueError(f"{Path(data_dir) / spec}: prepared by an older version (no story table); "
                         "run `python -m starmind_lib.training.study prepare` again")
    eos, seq_len = int(meta["eos_id"]), int(c["seq_len"])
    steps = max(1, math.ceil(job.tokens / (study.batch_size * seq_len)))
    eval_every = study.eval_every if job.tier != "long" else max(study.eval_every, steps // 20)
    cfg = TrainConfig.from_params({**{f: c[f] for f in ARCH_FIELDS}, "seq_len": seq_len, "batch_size": study.batch_size, "tokens": job.tokens,
                                   "lr": job.lr, "eval_every": eval_every, "seed": job.seed, "device": study.device})
    train_ids, train_chars = data["train"], list(meta["train_story_chars"])
    on_eval = keep_best = None
    if job.tier == "long":                       # early stopping on stories held out of training
        ends = np.flatnonzero(train_ids == eos)
        cut = int(ends[-DEV_STORIES - 1]) + 1
        dev = StoryEval.from_stream(train_ids[cut:], eos, train_chars[-DEV_STORIES:], seq_len, what="dev")
        train_ids, train_chars = train_ids[:cut], train_chars[:-DEV_STORIES]

        def on_eval(model):
            nats = story_nats(model, dev, model_device(model))
            return {"dev_bpc": float(nats.sum() / dev.n_chars / math.log(2))}
        keep_best = "dev_bpc"
    decode = PieceDecoder(meta["pieces"])
    prefix = EvalSet.build(data["val"], seq_len, cfg.eval_tokens, decode=decode)
    run_dir = Path(runs_dir) / "study_v2" / job.run_key
    res = train_model(cfg, train_ids, prefix, meta["vocab_size"], run_dir=run_dir, decode=decode,
                      prompts=list(meta["prompts"].values()), progress=False, save_state=False,
                      desc=job.run_key, on_eval=on_eval, keep_best=keep_best)
    val = StoryEval.from_stream(data["val"], eos, meta["val_story_chars"], seq_len)
    ev = evaluate_stories(res.model, val, res.device)
    tr = StoryEval.from_stream(train_ids, eos, train_chars, seq_len, max_stories=TRAIN_EVAL_STORIES, what="train")
    train_bpc = float(story_nats(res.model, tr, res.device).sum() / tr.n_chars / math.log(2))
    tokens_per_step = study.batch_size * seq_len
    return {
        "run_key": job.run_key, "config_hash": c["config_hash"], "name": c["name"], "tier": job.tier,
        "variant_ids": c["variant_ids"], "axes": c["axes"], "bucket": c["bucket"], "seed": job.seed,
        "lr": job.lr, "tokens_trained": res.tokens_trained, "seq_len": seq_len,
        **{f: c[f] for f in ARCH_FIELDS}, "tokenizer_spec": spec, "vocab_size_actual": meta["vocab_size"],
        "n_params": res.n_params, **ev, "prefix_bpc": res.metrics[-1]["val_bpc"],
        "train_bpc": train_bpc, "train_val_gap": ev["bpc"] - train_bpc,
        "best_step": res.best_step, "best_tokens": res.best_step * tokens_per_step,
        "curve": [{k: m[k] for k in ("tokens", "val_bpc", "train_loss", "dev_bpc") if k in m} for m in res.metrics],
        "unigram_bpc": meta["unigram_bpc"], "chars_per_token": round(sum(meta["val_story_chars"]) /
                                                                     max(1, meta["val_tokens"]), 4),
        "wall_s": round(res.wall_s, 3), "tokens_per_s": round(res.tokens_per_s, 1), "device": res.device,
        "data_fingerprint": meta["fingerprint"], "data_source": meta["source_label"],
        "is_synthetic": meta["is_synthetic"], "samples": res.samples,
        "checkpoint": str(Path("study_v2") / job.run_key / "model.safetensors"),
    }


def model_device(model) -> str:
    return str(next(model.parameters()).device)


# ---------------------------------------------------------------- the study
def results_table(results_dir: str | Path):
    from ..provenance import ResultTable
    return ResultTable(Path(results_dir).joinpath(*TABLE_STEM), key="run_key")


def chars_per_token(data_dir: str | Path) -> dict[str, float]:
    out = {}
    for meta_path in Path(data_dir).glob("*/meta.json"):
        m = json.loads(meta_path.read_text())
        if "val_story_chars" in m:
            out[meta_path.parent.name] = sum(m["val_story_chars"]) / max(1, m["val_tokens"])
    return out


def run_study(study: StudyConfig, data_dir: str | Path, results_dir: str | Path, runs_dir: str | Path,
              profile: str = "", deadline_s: float | None = None, progress: bool = True) -> "pd.DataFrame":
    """Run the tiers in order; each finished job appends its row at once; a rerun does only what is missing.

    A job that raises is written to ``<results_dir>/sweep/study_v2_errors.jsonl`` (naming the run and the
    configuration) and the others go on. ``deadline_s`` stops scheduling new jobs after that many seconds.
    """
    from ..provenance import ResultTable, provenance

    table = results_table(results_dir)
    errors = ResultTable(Path(results_dir) / TABLE_STEM[0] / "study_v2_errors", key="run_key")
    configs = distinct_configs(grid(study.grid), study.seq_len)
    t0 = time.perf_counter()
    trained = 0
    for tier in study.tiers:
        rows = table.rows()
        jobs, why = plan_jobs(tier, study, configs, rows, chars_per_token(data_dir))
        if why:
            print(f"study: {why}")
            continue
        done = table.keys()
        todo = sorted((j for j in jobs if j.run_key not in done), key=estimated_cost)   # cheapest first
        if progress:
            print(f"study: tier {tier!r}: {len(jobs)} runs, {len(todo)} to train")
        remaining = None if deadline_s is None else deadline_s - (time.perf_counter() - t0)
        for job, row, err in _run_pool(todo, (study, str(data_dir), str(runs_dir)), study.workers, remaining):
            if err is not None:
                errors.append({"run_key": job.run_key, "name": job.config["name"], "tier": tier,
                               "error": err, **provenance(profile=profile)})
                print(f"study: {job.run_key} ({job.config['name']}) failed: {err}")
                continue
            table.append({**row, **provenance(profile=profile)})
            trained += 1
            if progress:
                print(f"study: {tier} {row['name']} seed {row['seed']} lr {row['lr']:g}: bpc {row['bpc']:.3f} "
                      f"[{row['bpc_ci_low']:.3f}, {row['bpc_ci_high']:.3f}] in {row['wall_s']:.0f} s", flush=True)
    table.snapshot()
    df = table.frame()
    if progress:
        wall = time.perf_counter() - t0
        print(f"study: {trained} runs trained in {wall:.0f} s; table has {len(df)} runs")
    return df


def _run_pool(todo: list[Job], args: tuple, workers: int, budget_s: float | None):
    """Yield (job, row, error) as jobs finish; serial when ``workers == 1``."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    start = time.perf_counter()
    expired = lambda: budget_s is not None and time.perf_counter() - start > budget_s  # noqa: E731
    if workers == 1:
        for job in todo:
            if expired():
                return
            try:
                yield job, train_job(job, *args), None
            except Exception as e:  # noqa: BLE001 - one broken run must not stop the study
                yield job, None, f"{type(e).__name__}: {e}"
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    queue = list(todo)
    running = {}
    try:
        while queue or running:
            while queue and len(running) < workers and not expired():
                job = queue.pop(0)
                running[pool.submit(train_job, job, *args)] = job
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                try:
                    yield job, fut.result(), None
                except Exception as e:  # noqa: BLE001
                    yield job, None, f"{type(e).__name__}: {e}"
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- command line
def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m starmind_lib.training.study", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="tokenize the corpus for every tokenizer of the grid (with story tables)")
    pp.add_argument("--grid", default="full")
    pp.add_argument("--source", default="local")
    pp.add_argument("--data-dir", default="")
    pp.add_argument("--out", required=True)
    pr = sub.add_parser("run", help="train the study's tiers (resumes)")
    pr.add_argument("--data", required=True, help="prepared data directory")
    pr.add_argument("--results-dir", default="data/results")
    pr.add_argument("--runs-dir", default="data/runs")
    pr.add_argument("--params", default="{}", help="StudyConfig parameters as JSON")
    pr.add_argument("--profile", default="full")
    pr.add_argument("--deadline-s", type=float, default=None)
    a = p.parse_args(argv)
    if a.cmd == "prepare":
        from ..data import load_corpus
        from .grid import tokenizers_needed
        from .sweep import prepare_data, study_data_config
        corpus = load_corpus(study_data_config(a.source, a.data_dir))
        specs = tokenizers_needed(grid(a.grid))
        prepare_data(corpus, specs, a.out)
        print(f"prepared {len(specs)} tokenizers from {corpus.source_label} into {a.out}")
        return 0
    study = StudyConfig.from_params(json.loads(a.params))
    run_study(study, a.data, a.results_dir, a.runs_dir, profile=a.profile, deadline_s=a.deadline_s)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
