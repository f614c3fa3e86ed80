"""Stacked training (training/stacked.py): S seeds of one configuration as one vmapped model equal the single runs."""
import numpy as np
import pytest
import torch

from starmind_lib.model import Transformer
from starmind_lib.training.stacked import train_stacked
from starmind_lib.training.train import EvalSet, TrainConfig, evaluate, train_model

SEEDS = (0, 1, 2)
REL_TOL = 1e-5          # observed ~1e-7 on the CPU (float summation order of batched vs single matmuls)


def _cfgs(**over):
    base = dict(dim=8, n_layers=1, n_heads=2, ffn_hidden=16, seq_len=16, batch_size=4, tokens=30 * 4 * 16,
                eval_every=10, device="cpu")
    return [TrainConfig.from_params({**base, **over, "seed": s}) for s in SEEDS]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(123)
    train, val, dev = rng.integers(0, 20, 5000), rng.integers(0, 20, 1000), rng.integers(0, 20, 600)
    decode = lambda ids: "x" * len(ids)  # noqa: E731
    return train, EvalSet.build(val, 16, 512, decode), EvalSet.build(dev, 16, 512, decode)


def test_initial_weights_equal_the_single_runs_init(data):
    train, prefix, _ = data
    res = train_stacked([c.replace(lr=0.0, tokens=64) for c in _cfgs()], train, prefix, 20)  # lr 0: no update
    for seed, r in zip(SEEDS, res):
        torch.manual_seed(seed)
        ref = Transformer(r.config.model_config(20))
        for (n, a), b in zip(r.model.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(a, b), n


def test_stacked_training_matches_single_runs_seed_by_seed(data):
    torch.set_num_threads(1)
    train, prefix, dev = data
    on_eval = lambda m: {"dev_bpc": evaluate(m, dev)["val_bpc"]}  # noqa: E731
    cfgs = _cfgs()
    stacked = train_stacked(cfgs, train, prefix, 20, on_eval=on_eval, keep_best="dev_bpc")
    for cfg, s in zip(cfgs, stacked):
        single = train_model(cfg, train, prefix, 20, progress=False, on_eval=on_eval, keep_best="dev_bpc")
        assert s.config == cfg and s.n_params == single.n_params and s.tokens_trained == single.tokens_trained
        assert s.best_step == single.best_step
        assert s.bpc == pytest.approx(single.bpc, rel=REL_TOL)
        assert [m["step"] for m in s.metrics] == [m["step"] for m in single.metrics] == [10, 20, 30]
        for a, b in zip(s.metrics, single.metrics):
            assert a.keys() == b.keys()
            for k in ("val_bpc", "val_loss", "dev_bpc", "train_loss", "lr"):
                assert a[k] == pytest.approx(b[k], rel=REL_TOL), k
        for (n, a), b in zip(s.model.state_dict().items(), single.model.state_dict().values()):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), n
        assert evaluate(s.model, prefix)["val_bpc"] == pytest.approx(s.bpc, rel=REL_TOL)  # an ordinary model
    w = [s.model.tok_emb.weight for s in stacked]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert len({s.bpc for s in stacked}) == len(SEEDS)


def test_configs_must_differ_only_in_seed(data):
    train, prefix, _ = data
    cfgs = _cfgs()
    with pytest.raises(ValueError, match="only in 'seed'"):
        train_stacked([cfgs[0], cfgs[1].replace(lr=1e-3)], train, prefix, 20)
