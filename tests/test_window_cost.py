"""The window restart's quality measurement: the batched float rule equals feeding token by token."""
import numpy as np
import torch

from starmind_lib.model import ModelConfig, Transformer
from starmind_lib.quant.window_cost import float_story_bits


def test_batched_window_and_sliding_equal_token_by_token():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = Transformer(ModelConfig.from_params(dict(dim=8, n_layers=1, n_heads=2, ffn_hidden=16, activation="silu",
                                                 pos="rope", tied=True, max_seq_len=8, vocab_size=16))).eval()
    ids = list(np.random.default_rng(0).integers(0, 16, 40))
    b = float_story_bits(m, ids)
    T, K = 8, 4
    hist, win, slide = [], [], []
    with torch.no_grad():
        for i, t in enumerate(ids[:-1]):
            if len(hist) == T:
                hist = hist[T - K:]
            hist.append(int(t))
            lp = torch.log_softmax(m(torch.tensor([hist]))[0][0, -1].double(), -1)
            win.append(float(-lp[ids[i + 1]] / np.log(2)))
            ctx = [int(v) for v in ids[max(0, i + 1 - T):i + 1]]
            lp = torch.log_softmax(m(torch.tensor([ctx]))[0][0, -1].double(), -1)
            slide.append(float(-lp[ids[i + 1]] / np.log(2)))
    assert np.allclose(b["window"], win, atol=1e-5)
    assert np.allclose(b["sliding"], slide, atol=1e-5)
    assert np.allclose(b["window"][:T], b["sliding"][:T])   # within the context the rules agree
