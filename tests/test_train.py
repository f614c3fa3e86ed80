"""Training: it learns, it is causal and deterministic, and bits per character are right."""
import math

import numpy as np
import pytest
import torch

from starmind_lib.training import train as train_mod
from starmind_lib.config import ConfigError
from starmind_lib.model import ModelConfig, Transformer
from starmind_lib.training.train import EvalSet, TrainConfig, evaluate, lr_at, train_model, unigram_bpc

torch.set_num_threads(1)
ALPHABET = "abcdefgh"


def _decode(ids):
    return "".join(ALPHABET[i] for i in ids)


def _uniform_ids(n, seed):
    return np.random.default_rng(seed).integers(0, 8, size=n)


def _tiny(**kw):
    base = dict(dim=8, n_layers=1, n_heads=1, ffn_hidden=16, vocab_size=8, seq_len=16, batch_size=8,
                tokens=8 * 16 * 40, lr=1e-2, eval_every=20, eval_tokens=512, device="cpu")
    return TrainConfig.from_params({**base, **kw})


def test_uniform_model_gives_exactly_log2_alphabet_bits_per_char():
    model = Transformer(ModelConfig.from_params({"vocab_size": 8, "dim": 4, "n_layers": 1, "n_heads": 1}))
    for p in model.parameters():
        p.data.zero_()  # logits all zero: the uniform distribution over 8 symbols
    ev = EvalSet.build(_uniform_ids(2000, 1), seq_len=16, eval_tokens=1024, decode=_decode)
    got = evaluate(model, ev)
    assert got["val_loss"] == pytest.approx(math.log(8))
    assert got["val_bpc"] == pytest.approx(3.0)


def test_bits_per_char_divides_by_characters_not_tokens():
    """Tokens of two characters each: uniform over 64 pairs is 6 bits/token, still 3 bits/char."""
    model = Transformer(ModelConfig.from_params({"vocab_size": 64, "dim": 4, "n_layers": 1, "n_heads": 1}))
    for p in model.parameters():
        p.data.zero_()
    pairs = lambda ids: "".join(ALPHABET[i // 8] + ALPHABET[i % 8] for i in ids)
    ev = EvalSet.build(np.random.default_rng(0).integers(0, 64, 3000), 16, 1024, decode=pairs)
    got = evaluate(model, ev)
    assert got["val_loss"] / math.log(2) == pytest.approx(6.0)
    assert got["val_bpc"] == pytest.approx(3.0)


def test_trained_model_on_iid_uniform_text_reaches_the_entropy_and_not_below():
    cfg = _tiny(tokens=8 * 16 * 60)
    ev = EvalSet.build(_uniform_ids(4000, 2), cfg.seq_len, 2048, decode=_decode)
    res = train_model(cfg, _uniform_ids(20000, 3), ev, vocab_size=8, progress=False)
    assert 2.97 < res.bpc < 3.1  # no model beats the entropy (3 bits) by more than sampling noise


def test_a_model_overfits_one_small_batch():
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_params({"vocab_size": 16, "dim": 16, "n_layers": 2, "n_heads": 2,
                                                 "ffn_hidden": 64}))
    x = torch.randint(0, 16, (4, 17), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(300):
        _, loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05  # from ~ln 16 = 2.77


def test_learns_a_deterministic_pattern_far_below_unigram():
    text_ids = np.tile(np.arange(8), 3000)  # abcdefghabcdefgh...: fully predictable
    cfg = _tiny(tokens=8 * 16 * 150, lr=2e-2)
    ev = EvalSet.build(text_ids[:2000], cfg.seq_len, 1024, decode=_decode)
    res = train_model(cfg, text_ids, ev, vocab_size=8, progress=False)
    assert res.bpc < 0.3  # unigram (uniform over 8 letters) would give 3.0
    assert res.metrics[-1]["step"] == cfg.steps and res.tokens_trained == cfg.steps * 16 * 8


def test_training_is_deterministic_to_the_checkpoint_byte(tmp_path):
    cfg = _tiny()
    ev = EvalSet.build(_uniform_ids(2000, 5), cfg.seq_len, 512, decode=_decode)
    data = np.tile(np.arange(8), 500)
    for name in ("a", "b"):
        train_model(cfg, data, ev, 8, run_dir=tmp_path / name, progress=False, decode=_decode,
                    prompts=[[0, 1, 2]])
    a, b = (tmp_path / n / "model.safetensors" for n in "ab")
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "metrics.csv").read_text() .count("\n") == cfg.steps // cfg.eval_every + 1
    other = train_model(cfg.replace(seed=1), data, ev, 8, run_dir=tmp_path / "c", progress=False)
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != a.read_bytes()
    assert other.n_params > 0


def test_an_interrupted_run_resumes_to_the_same_checkpoint(tmp_path, monkeypatch):
    cfg = _tiny(eval_every=10)
    ev = EvalSet.build(_uniform_ids(2000, 5), cfg.seq_len, 512, decode=_decode)
    data = np.tile(np.arange(8), 500)
    train_model(cfg, data, ev, 8, run_dir=tmp_path / "whole", progress=False)

    real_save = train_mod._save_state

    def save_then_crash(*args, **kw):
        real_save(*args, **kw)
        if args[3] >= 20:  # step
            raise KeyboardInterrupt("simulated crash")
    monkeypatch.setattr(train_mod, "_save_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, data, ev, 8, run_dir=tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / "train_state.pt").exists()
    monkeypatch.setattr(train_mod, "_save_state", real_save)
    res = train_model(cfg, data, ev, 8, run_dir=tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert [m["step"] for m in res.metrics] == [10, 20, 30, 40]
    assert not (tmp_path / "cut" / "train_state.pt").exists()


def test_a_resumed_run_keeps_early_stoppings_best_weights(tmp_path, monkeypatch):
    """The dev score is lowest at step 20, just before the crash: the resumed run must still end on the
    step-20 weights (a resume that forgot the best would end on step 40, the best it saw itself)."""
    cfg = _tiny(eval_every=10)
    ev = EvalSet.build(_uniform_ids(2000, 5), cfg.seq_len, 512, decode=_decode)
    data = np.tile(np.arange(8), 500)

    def dev_scores(values):
        it = iter(values)
        return lambda model: {"dev_bpc": next(it)}
    whole = train_model(cfg, data, ev, 8, run_dir=tmp_path / "whole", progress=False,
                        on_eval=dev_scores([1.0, 0.5, 0.9, 0.8]), keep_best="dev_bpc")
    assert whole.best_step == 20

    real_save = train_mod._save_state

    def save_then_crash(*args, **kw):
        real_save(*args, **kw)
        if args[3] >= 20:
            raise KeyboardInterrupt("simulated crash")
    monkeypatch.setattr(train_mod, "_save_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_model(cfg, data, ev, 8, run_dir=tmp_path / "cut", progress=False,
                    on_eval=dev_scores([1.0, 0.5]), keep_best="dev_bpc")
    monkeypatch.setattr(train_mod, "_save_state", real_save)
    res = train_model(cfg, data, ev, 8, run_dir=tmp_path / "cut", progress=False,
                      on_eval=dev_scores([0.9, 0.8]), keep_best="dev_bpc")
    assert res.best_step == 20 and res.bpc == whole.bpc
    assert (tmp_path / "cut" / "model.safetensors").read_bytes() == (tmp_path / "whole" / "model.safetensors").read_bytes()


def test_samples_are_stored_greedy_and_sampled():
    cfg = _tiny()
    data = np.tile(np.arange(8), 500)
    ev = EvalSet.build(data[:1000], cfg.seq_len, 256, decode=_decode)
    res = train_model(cfg, data, ev, 8, progress=False, encode=lambda s: [ALPHABET.index(c) for c in s],
                      decode=_decode, prompts=["abc"])
    modes = [s["mode"] for s in res.samples]
    assert modes == ["greedy", "T=0.8"]
    assert res.samples[0]["text"].startswith("abcdefgh")
    assert len(res.samples[0]["text"]) == 3 + train_mod.SAMPLE_TOKENS


def test_warmup_then_cosine_schedule():
    cfg = _tiny(tokens=8 * 16 * 100, warmup=0.1, lr=1e-2, min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(1e-3)
    assert lr_at(cfg, 9) == pytest.approx(1e-2)
    assert lr_at(cfg, 99) == pytest.approx(1e-3, rel=0.01)
    assert all(lr_at(cfg, s) >= lr_at(cfg, s + 1) for s in range(10, 99))


def test_unigram_baseline_bits_per_char():
    assert unigram_bpc(["aabb"], ["ab"]) == pytest.approx(1.0)  # add-one: q(a) = q(b) = 3/6
    assert unigram_bpc(["ab" * 1000], ["abab"]) == pytest.approx(1.0, abs=1e-3)


def test_bad_configs_are_rejected_naming_the_parameter():
    with pytest.raises(ConfigError, match="'n_heads' must divide 'dim'"):
        TrainConfig.from_params({"dim": 10, "n_heads": 3})
    with pytest.raises(ConfigError, match="'warmup' must be in"):
        TrainConfig.from_params({"warmup": 2.0})
    with pytest.raises(ConfigError, match="unknown parameter.*'n_layer'"):
        TrainConfig.from_params({"n_layer": 2})
    with pytest.raises(ValueError, match="vocab_size is 4"):
        cfg = _tiny(vocab_size=4)
        train_model(cfg, np.arange(100) % 8, EvalSet.build(np.arange(100) % 4, 16, 32, _decode), 4,
                    progress=False)


def test_chapter_03_states_the_seed_rule_the_book_applies():
    """The chapter says: a Welch 95 % interval of the difference of the seeds' means; "no measurable difference"
    when it holds zero. compare_values must decide exactly that (scipy's Welch interval as the reference)."""
    from scipy import stats

    from starmind_lib.analysis.seeds import NO_DIFF, NOT_TESTED, REAL, compare_values
    from starmind_lib.provenance import REPO_ROOT
    text = (REPO_ROOT / "notebooks" / "03_training.py").read_text()
    assert "Welch" in text and all(f'"{v}"' in text for v in (NO_DIFF, REAL, NOT_TESTED))
    rng, seen = np.random.default_rng(0), set()
    for shift in (0.0, 0.01, 0.03, 0.05, 0.1, 0.3):
        a = 2.0 + 0.03 * rng.standard_normal(3)
        b = 2.0 + shift + 0.05 * rng.standard_normal(3)
        ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
        holds_zero = ci.low <= 0 <= ci.high
        assert compare_values(a, b)["verdict"] == (NO_DIFF if holds_zero else REAL), (shift, ci)
        seen.add(holds_zero)
    assert seen == {True, False}      # both sides of the rule were tried


def test_chapter_three_seed_words_follow_a_known_table():
    import pandas as pd

    from starmind_lib.chapters.ch03_training import seed_words
    runs = pd.DataFrame({"tier": ["base"] * 5 + ["long"], "config_hash": ["a", "a", "a", "b", "b", "c"],
                         "seed": [0, 1, 2, 0, 1, 0]})
    finals = pd.DataFrame({"name": ["x", "x", "x", "y", "y"], "bpc": [2.0, 2.012, 2.004, 1.5, 1.534]})
    assert seed_words(runs, finals) == {
        "train_n_seeds": "2 to 3",
        "train_seed_spread": "0.012 to 0.034 bits per character (largest minus smallest of 2 seeds)"}
    assert seed_words(runs.iloc[:0], None) == {"train_n_seeds": "several (none trained yet)"}
