"""The transformer's contract: causal, a real per-head split, exact parameter counts, checkpoints."""
import math

import pytest
import torch
import torch.nn.functional as F

from starmind_lib.config import ConfigError
from starmind_lib.model import (ModelConfig, Transformer, apply_rope, count_params, load_checkpoint,
                                save_checkpoint, state_dict_for_export)
from starmind_lib.training.grid import count_params as grid_count_params

torch.set_num_threads(1)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return Transformer(ModelConfig.from_params({"vocab_size": 32, "dim": 16, "n_layers": 2, "n_heads": 2,
                                                "ffn_hidden": 32, **kw})).eval()


@pytest.mark.parametrize("pos", ["rope", "learned", "none"])
def test_future_tokens_never_change_earlier_logits(pos):
    model = _model(pos=pos)
    for p in model.parameters():  # larger weights than the init, so attention is far from uniform
        p.data.normal_(0, 0.5)
    x = torch.randint(0, 32, (1, 12), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, 7:] = (y[0, 7:] + 5) % 32
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.allclose(a[0, :7], b[0, :7], atol=1e-6)
    assert not torch.allclose(a[0, 7:], b[0, 7:], atol=1e-3)  # and the later ones do change


def test_n_heads_changes_the_output_with_the_same_weights():
    one = _model(n_heads=1)
    four = Transformer(ModelConfig.from_params({**one.cfg.to_dict(), "n_heads": 4})).eval()
    four.load_state_dict(one.state_dict())
    for p in one.parameters():
        p.data.normal_(0, 0.5)
    four.load_state_dict(one.state_dict())
    x = torch.arange(10).remainder(32)[None]
    with torch.no_grad():
        assert not torch.allclose(one(x)[0], four(x)[0], atol=1e-4)


def test_attention_matches_the_explicit_masked_softmax():
    """The fused kernel computes softmax(q k^T / sqrt(hd) + causal mask) v, head by head."""
    model = _model(pos="none", n_layers=1)
    for p in model.parameters():
        p.data.normal_(0, 0.5)
    attn = model.layers[0].attn
    x = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(3))
    B, T, D, H = 2, 9, 16, 2
    hd = D // H
    q, k, v = (w(x).view(B, T, H, hd).transpose(1, 2) for w in (attn.wq, attn.wk, attn.wv))
    scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    want = attn.wo((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D))
    with torch.no_grad():
        got = attn(x, model.rope_cos, model.rope_sin)
    assert torch.allclose(got, want, atol=1e-5)


def test_rope_rotates_pairs_by_position():
    x = torch.tensor([[[[1.0, 0.0]]]]).expand(1, 1, 3, 2)
    cos = torch.cos(torch.arange(3.0))[:, None]
    sin = torch.sin(torch.arange(3.0))[:, None]
    out = apply_rope(x, cos, sin)
    assert torch.allclose(out[0, 0, 2], torch.tensor([math.cos(2.0), math.sin(2.0)]))


def test_dim_not_divisible_by_heads_is_rejected_naming_the_parameters():
    with pytest.raises(ConfigError, match=r"'n_heads' must divide 'dim': dim=10 .* n_heads=4"):
        ModelConfig.from_params({"dim": 10, "n_heads": 4})
    with pytest.raises(ConfigError, match="even head size"):
        ModelConfig.from_params({"dim": 6, "n_heads": 2, "pos": "rope"})


@pytest.mark.parametrize("kw", [dict(), dict(pos="learned"), dict(tied=False), dict(activation="swiglu"),
                                dict(dim=3, n_heads=1, pos="none", ffn_hidden=7, n_layers=3)])
def test_parameter_count_formula_matches_torch(kw):
    cfg = ModelConfig.from_params({"vocab_size": 40, "dim": 8, "n_layers": 2, "n_heads": 2, "ffn_hidden": 24,
                                   "max_seq_len": 64, **kw})
    model = Transformer(cfg)
    assert count_params(model) == grid_count_params(**cfg.to_dict(), seq_len=cfg.max_seq_len)


def test_checkpoint_round_trip_keeps_config_and_outputs(tmp_path):
    model = _model(activation="swiglu", tied=False)
    save_checkpoint(model, tmp_path / "m.safetensors", extra={"note": "x"})
    back = load_checkpoint(tmp_path / "m.safetensors").eval()
    assert back.cfg == model.cfg
    x = torch.arange(8)[None]
    with torch.no_grad():
        assert torch.equal(model(x)[0], back(x)[0])
    names = set(state_dict_for_export(model))
    assert {"tok_emb", "layers.0.wq", "layers.1.w3", "final_norm", "head"} <= names


def test_loss_is_cross_entropy_in_nats():
    model = _model()
    x = torch.randint(0, 32, (2, 6))
    logits, loss = model(x[:, :-1], x[:, 1:])
    assert loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 32), x[:, 1:].reshape(-1)).item())
    assert loss.item() == pytest.approx(math.log(32), rel=0.05)  # small init: near-uniform predictions
