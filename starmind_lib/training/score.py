"""Score Study v2's models on stories of your own, exactly as the study scores its validation split.

For a skeptical reader with other stories (TinyStories stories that are not in the sample, say)::

    python -m starmind_lib.training.score --stories held_out.jsonl                 # the long tier's runs
    python -m starmind_lib.training.score --stories more.txt --tier base --names budget10k-vocab-bpe1024
    python -m starmind_lib.training.score --stories held_out.jsonl --smd data/models/*.smd

A story file is ``.jsonl`` (``{"text": ...}`` per line), ``.txt`` (stories separated by
``<|endoftext|>`` or blank lines) or ``.parquet`` (a ``text`` column). Each story is normalised as the
study's corpus was (line ends, mojibake repair, lowercase), tokenized by the run's own tokenizer, and
scored whole from its first character with the end-of-story token after it
(:mod:`starmind_lib.training.evaluation`): bits per character with a 95 % bootstrap interval over
the stories, beside the run's committed whole-split bpc on the sample's validation stories. ``--smd``
scores int8 model files with the integer engine and the encoder inside the file instead.

A run whose checkpoint or tokenizer is missing is an error line naming it; the others go on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def read_stories(path) -> list[str]:
    """The stories of ``path``, normalised like the study's corpus (lowercased, mojibake repaired)."""
    from ..data.normalise import normalise_story
    from ..data.sources import read_story_file
    from .sweep import study_data_config
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such story file")
    cfg = study_data_config("synthetic")             # only its text settings are used
    stories = [s for s in (normalise_story(t, lowercase=cfg.lowercase, fix=cfg.fix_mojibake)
                           for t in read_story_file(path)) if s]
    if not stories:
        raise ValueError(f"{path}: no stories in the file")
    return stories


def story_eval(tok, stories: list[str], seq_len: int):
    """The study's evaluation windows of ``stories`` under tokenizer ``tok``."""
    from ..tokenizers import encode_corpus
    from .evaluation import StoryEval
    ids = encode_corpus(tok, stories)
    return StoryEval.from_stream(ids, int(tok.eos_id), [len(tok.prepare(s)) for s in stories], seq_len,
                                 what="the story file")


def score_run(run: dict, stories: list[str], runs_dir, data_dir) -> dict:
    """bpc of one Study v2 run on ``stories`` (its interval over them) and what was scored."""
    from ..model import load_checkpoint
    from ..tokenizers import load_tokenizer
    from .evaluation import evaluate_stories
    ckpt = Path(runs_dir) / str(run.get("checkpoint") or "")
    if not run.get("checkpoint") or not ckpt.is_file():   # first: without it, preparing the data would not help
        raise FileNotFoundError(f"checkpoint {ckpt} is missing (trained on {run.get('machine', '?')}; checkpoints "
                                "are not committed: train the run (`make study-v2`) or score the committed int8 "
                                "files with --smd data/models/*.smd)")
    tok_file = Path(data_dir) / run["tokenizer_spec"] / "tokenizer.json"
    if not tok_file.is_file():
        raise FileNotFoundError(f"no tokenizer {tok_file} (prepare the study data: `python -m "
                                f"starmind_lib.training.study prepare --source local --data-dir /path/to/tinystories "
                                f"--out {Path(data_dir)}`, or --source tinystories to download it)")
    model = load_checkpoint(ckpt).eval()
    return evaluate_stories(model, story_eval(load_tokenizer(tok_file), stories, model.cfg.max_seq_len))


def score_smd(path, stories: list[str], batch: int = 64) -> dict:
    """bpc of an int8 model file on ``stories``, with the integer engine and the file's own encoder."""
    from ..quant import intengine as ie
    from ..quant.schemes import engine_story_nats
    from ..quant.smd import read_smd
    from ..quant.smd_text import encode
    from .evaluation import StoryEval, bootstrap_bpc
    m = read_smd(path)
    if not m.can_encode:
        raise ValueError(f"{path}: the file has no encoder (format v{m.version}); export it again")
    if m.text.eos_id is None:
        raise ValueError(f"{path}: the file has no end-of-story token to score stories with")
    # the stories are lowercased already (read_stories), so the characters are the study's
    ev = StoryEval.build([np.asarray(encode(m.text, m.vocab, s), np.int64) for s in stories],
                         [len(s) for s in stories], m.text.eos_id, m.header.max_seq_len)
    nats, _ = engine_story_nats(ie.IntEngine(m), ev, batch=batch)
    bpc, lo, hi = bootstrap_bpc(nats, ev.story_chars)
    return {"bpc": bpc, "bpc_ci_low": lo, "bpc_ci_high": hi, "eval_chars": ev.n_chars,
            "eval_stories": ev.n_stories, "eval_tokens": ev.n_targets,
            "val_loss": float(nats.sum() / ev.n_targets)}


def select_runs(results_dir, tier: str, seeds, names) -> list[dict]:
    from ..analysis.seeds import load_study
    runs = load_study(results_dir)
    if runs.empty:
        raise FileNotFoundError(f"no Study v2 runs in {Path(results_dir) / 'sweep' / 'study_v2.jsonl'}")
    runs = runs[runs["tier"] == tier]
    if seeds:
        runs = runs[runs["seed"].isin(seeds)]
    if names:
        unknown = sorted(set(names) - set(runs["name"]))
        if unknown:
            raise ValueError(f"--names: no {tier}-tier run named {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(set(runs['name']))[:12])} ...)")
        runs = runs[runs["name"].isin(names)]
    return runs.sort_values(["n_params", "name", "seed"]).to_dict("records")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m starmind_lib.training.score", description=__doc__.split("\n")[0])
    p.add_argument("--stories", required=True, type=Path, help=".jsonl, .txt or .parquet story file")
    p.add_argument("--tier", default="long", help="Study v2 tier of the runs to score (default: long)")
    p.add_argument("--seeds", type=int, nargs="*", default=[], help="only these seeds (default: all)")
    p.add_argument("--names", nargs="*", default=[], help="only these configurations (by name)")
    p.add_argument("--smd", type=Path, nargs="*", default=[], help="score these int8 model files instead")
    p.add_argument("--results-dir", type=Path, default=Path("data/results"))
    p.add_argument("--runs-dir", type=Path, default=Path("data/runs"))
    p.add_argument("--data", type=Path, default=None, help="prepared study data (default <runs-dir>/study_data)")
    p.add_argument("--out", type=Path, default=None, help="also write one JSON line per model here")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from ..data.sources import DataSourceError
    try:
        stories = read_stories(a.stories)
        jobs = ([("smd", str(f), None) for f in a.smd] if a.smd else
                [("run", r["run_key"], r) for r in select_runs(a.results_dir, a.tier, a.seeds, a.names)])
    except (FileNotFoundError, ValueError, DataSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(stories)} stories, {sum(map(len, stories)):,} characters from {a.stories}")
    out, failed = [], 0
    for kind, name, run in jobs:
        try:
            res = score_smd(name, stories) if kind == "smd" else score_run(run, stories, a.runs_dir,
                                                                            a.data or a.runs_dir / "study_data")
        except (FileNotFoundError, ValueError, OSError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        row = {"model": name, **res}
        if run is not None:
            row.update(name=run["name"], seed=int(run["seed"]), n_params=int(run["n_params"]),
                       sample_val_bpc=float(run["bpc"]))
        out.append(row)
        label = f"{run['name']} seed {int(run['seed'])} ({int(run['n_params']):,} params)" if run else name
        ref = f"; sample's validation split {run['bpc']:.3f}" if run else ""
        print(f"{label}: {res['bpc']:.3f} [{res['bpc_ci_low']:.3f}, {res['bpc_ci_high']:.3f}] bpc{ref}")
    if a.out:
        a.out.write_text("".join(json.dumps(r) + "\n" for r in out))
    print(f"{len(out)} scored, {failed} failed")
    return 1 if failed and not out else 0


if __name__ == "__main__":
    sys.exit(main())
