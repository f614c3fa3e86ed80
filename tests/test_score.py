"""Scoring Study v2's models on a story file of one's own: the study's own numbers when the file holds the
validation split, the int8 file's too, and errors that name the file or run."""
import json

import numpy as np
import pytest
import torch

from starmind_lib.data import load_corpus
from starmind_lib.model import ModelConfig, Transformer, save_checkpoint
from starmind_lib.quant import intengine as ie, schemes
from starmind_lib.quant.smd import pack_smd, parse_smd
from starmind_lib.quant.smd_text import text_spec_from_tokenizer
from starmind_lib.tokenizers import load_tokenizer
from starmind_lib.training import score, study
from starmind_lib.training.evaluation import StoryEval, evaluate_stories
from starmind_lib.training.sweep import load_prepared, prepare_data, study_data_config


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic corpus prepared for bpe384, a small model's checkpoint and its study_v2 row, and the
    validation stories as a .jsonl file (with capitals: the scorer lowercases as the corpus did)."""
    tmp = tmp_path_factory.mktemp("score")
    corpus = load_corpus(study_data_config("synthetic"))
    data_dir = prepare_data(corpus, ["bpe384"], tmp / "runs" / "study_data")
    vocab = load_prepared(data_dir, "bpe384")["meta"]["vocab_size"]
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=vocab, dim=16, n_layers=1, n_heads=2, ffn_hidden=32,
                                    max_seq_len=32)).eval()
    save_checkpoint(model, tmp / "runs" / "study_v2" / "r0" / "model.safetensors")
    row = {"run_key": "r0", "config_hash": "c", "name": "m", "tier": "long", "seed": 0, "lr": 0.01,
           "n_params": 1234, "tokenizer_spec": "bpe384", "bpc": 9.0, "checkpoint": "study_v2/r0/model.safetensors"}
    study.results_table(tmp / "results").append(row)
    study.results_table(tmp / "results").append({**row, "run_key": "r1", "name": "gone", "n_params": 2000,
                                                 "checkpoint": "study_v2/r1/model.safetensors"})
    stories = tmp / "val.jsonl"
    stories.write_text("".join(json.dumps({"text": s.capitalize()}) + "\n" for s in corpus.val))
    return tmp, data_dir, model, stories


def _args(tmp, stories, *more):
    return ["--stories", str(stories), "--results-dir", str(tmp / "results"), "--runs-dir", str(tmp / "runs"), *more]


def test_scoring_the_validation_file_reproduces_the_study_evaluation(world, capsys):
    tmp, data_dir, model, stories = world
    out = tmp / "scores.jsonl"
    assert score.main(_args(tmp, stories, "--names", "m", "--out", str(out))) == 0
    got = json.loads(out.read_text())
    data = load_prepared(data_dir, "bpe384")
    meta = data["meta"]
    want = evaluate_stories(model, StoryEval.from_stream(data["val"], meta["eos_id"], meta["val_story_chars"], 32))
    assert got["bpc"] == want["bpc"] and got["eval_chars"] == want["eval_chars"] == sum(meta["val_story_chars"])
    assert (got["bpc_ci_low"], got["bpc_ci_high"]) == (want["bpc_ci_low"], want["bpc_ci_high"])
    assert f"m seed 0 (1,234 params): {want['bpc']:.3f}" in capsys.readouterr().out


def test_an_int8_file_is_scored_with_its_own_encoder(world, capsys):
    tmp, data_dir, model, stories = world
    data = load_prepared(data_dir, "bpe384")
    meta = data["meta"]
    tok = load_tokenizer(data_dir / "bpe384" / "tokenizer.json")
    calib = [data["train"][i * 32:(i + 1) * 32] for i in range(4)]
    header, tensors = schemes.to_int8_engine(model, schemes.calibrate(model, calib))
    blob = pack_smd(header, tensors, [bytes.fromhex(h) for h in meta["pieces"]], text_spec_from_tokenizer(tok))
    path = tmp / "m.smd"
    path.write_bytes(blob)
    got = score.score_smd(path, score.read_stories(stories))
    ev = StoryEval.from_stream(data["val"], meta["eos_id"], meta["val_story_chars"], 32)
    eng = ie.IntEngine(parse_smd(blob))     # the reference: one window at a time, the tokenizer's own ids
    nats = sum(ie.cross_entropy_rows(eng.logits_sequence(x)[m], y[m], eng.h.logit_frac).sum()
               for x, y, m in zip(ev.inputs, ev.targets, ev.mask))
    assert got["eval_chars"] == ev.n_chars and got["eval_tokens"] == ev.n_targets
    assert got["bpc"] == pytest.approx(nats / ev.n_chars / np.log(2), rel=1e-12)


def test_a_run_without_its_checkpoint_is_named_and_the_others_go_on(world, capsys):
    tmp, _, _, stories = world
    assert score.main(_args(tmp, stories)) == 0
    out, err = capsys.readouterr()
    assert "error: r1: checkpoint" in err and "r1/model.safetensors is missing" in err
    assert "train the run (`make study-v2`) or score the committed int8 files with --smd data/models/*.smd" in err
    assert "1 scored, 1 failed" in out


def test_a_run_without_its_tokenizer_gives_the_whole_prepare_command(world, tmp_path):
    tmp, _, _, _ = world
    run = {"run_key": "r0", "tokenizer_spec": "bpe384", "checkpoint": "study_v2/r0/model.safetensors"}
    with pytest.raises(FileNotFoundError) as e:
        score.score_run(run, ["a story."], tmp / "runs", tmp_path / "empty")
    assert str(e.value) == (f"no tokenizer {tmp_path / 'empty' / 'bpe384' / 'tokenizer.json'} (prepare the study "
                            "data: `python -m starmind_lib.training.study prepare --source local --data-dir "
                            f"/path/to/tinystories --out {tmp_path / 'empty'}`, or --source tinystories to download it)")


def test_bad_inputs_are_named(world, capsys):
    tmp, _, _, stories = world
    assert score.main(_args(tmp, tmp / "nope.jsonl")) == 2
    assert "nope.jsonl: no such story file" in capsys.readouterr().err
    assert score.main(_args(tmp, stories, "--names", "typo")) == 2
    assert "--names: no long-tier run named typo" in capsys.readouterr().err
    bad = tmp / "bad.jsonl"
    bad.write_text('{"story": "x"}\n')
    assert score.main(_args(tmp, bad)) == 2
    assert "bad.jsonl:1: expected a JSON object with a 'text' field" in capsys.readouterr().err
