"""Quantisation: fixed-point constants, calibration, the int8 engine's quality margin, the chapter-05 stage."""
import math

import numpy as np
import pytest
import torch

from starmind_lib.quant import intengine as ie, reference, schemes as quant, smd as export, stage
from starmind_lib.config import ConfigError
from starmind_lib.model import ModelConfig, Transformer, save_checkpoint
from starmind_lib.training.train import EvalSet

ALPHA = reference.REFERENCE_ALPHABET


def decode(ids):
    return "".join(ALPHA[int(i)] for i in ids)


@pytest.fixture(scope="module")
def trained():
    """A ~10K-parameter rope/silu char model trained for a few seconds on synthetic sentences."""
    torch.set_num_threads(1)
    params, steps = reference.REFERENCE_MODELS["ref_rope_silu"]
    model, ids = reference.train_reference_model(params, steps)
    val = reference._encode_ref(reference.reference_text(300, seed=99))
    T = model.cfg.max_seq_len
    eval_set = EvalSet.build(val, T, 2048, decode=decode)
    calib = [ids[i * T:(i + 1) * T] for i in range(16)]
    return model, eval_set, calib


def test_requant_params_approximate_the_factor():
    f = np.array([1e-6, 3.3e-4, 0.01, 0.5, 1.0, 1.9])
    mq = quant.requant_params(f)
    assert ((mq[:, 0] <= 65535) & (mq[:, 1] >= 0) & (mq[:, 1] <= 30)).all()
    approx = mq[:, 0] / 2.0 ** (15 + mq[:, 1])
    assert np.allclose(approx[2:], f[2:], rtol=2e-5)      # 16 significant bits where the shift allows
    with pytest.raises(ValueError, match=r"out of \[0, 2\)"):
        quant.requant_params([2.5])
    ms = quant.mulshift_params([3.0, 250.0, 0.001])
    assert np.allclose(ms[:, 0] / 2.0 ** ms[:, 1], [3.0, 250.0, 0.001], rtol=1e-4)


def test_requant_integer_result_matches_real_product():
    rng = np.random.default_rng(0)
    f = rng.uniform(1e-4, 1.9, 200)
    mq = quant.requant_params(f)
    acc = rng.integers(-(1 << 28), 1 << 28, 200)
    got = ie.requant(acc, mq[:, 0], mq[:, 1])
    assert np.all(np.abs(got - acc * f) <= np.abs(acc * f) * 2e-5 + 1)


def test_float_reference_matches_torch(trained):
    model, eval_set, _ = trained
    w = eval_set.windows[0][:-1]
    ours = quant.float_forward(quant.numpy_weights(model), model.cfg, w)
    with torch.no_grad():
        ref = model(torch.from_numpy(w[None]))[0][0].double().numpy()
    assert np.abs(ours - ref).max() < 1e-4


def test_calibration_records_every_quantisation_point(trained):
    model, _, calib = trained
    tr = quant.calibrate(model, calib)
    for i in range(model.cfg.n_layers):
        for k in ("attn_in", "q", "k", "v", "ffn_in", "h", "g"):
            assert tr.maxabs[f"layers.{i}.{k}"] > 0
    assert tr.maxabs["res"] > 0 and tr.maxabs["final"] > 0


def test_int8_engine_quality_margin_and_greedy_agreement(trained):
    """int8 per-row weights stay within 0.02 bpc of float32; the integer engine within 0.03 and agrees on >= 95%."""
    model, eval_set, calib = trained
    rows = {r["scheme"]: r for r in quant.evaluate_schemes(model, eval_set, calib)}
    assert rows["float32"]["bpc"] < 1.5  # the model learned something (a uniform guess is 5 bits)
    assert abs(rows["float16"]["bpc_delta"]) < 0.002
    assert abs(rows["int8_row"]["bpc_delta"]) < 0.02
    assert abs(rows["int8_engine"]["bpc_delta"]) < 0.03
    assert rows["int8_engine"]["greedy_agreement"] >= 0.95
    assert rows["int4_group32"]["bpc_delta"] > rows["int8_row"]["bpc_delta"]  # fewer bits cost more
    sizes = [rows[s]["bytes"] for s in ("float32", "float16", "int8_row", "int4_group32")]
    assert sizes == sorted(sizes, reverse=True)
    assert all(r["error"] == "" for r in rows.values())


def test_scheme_bytes_formulas():
    m = Transformer(ModelConfig(vocab_size=32, dim=8, n_layers=1, n_heads=1, ffn_hidden=16, pos="none"))
    n_mat = 32 * 8 + 4 * 64 + 2 * 128
    n_vec = 3 * 8
    assert quant.scheme_bytes(m, "float32") == 4 * (n_mat + n_vec)
    assert quant.scheme_bytes(m, "int8_row") == n_mat + 4 * (32 + 4 * 8 + 16 + 8) + 4 * n_vec
    assert quant.scheme_bytes(m, "int4_group32") == n_mat // 2 + 2 * (32 + 32 + 16 + 8) + 4 * n_vec
    assert quant.scheme_bytes(m, "int4_group4") == n_mat // 2 + 2 * (64 + 64 + 32 + 32) + 4 * n_vec


def test_quantized_copy_changes_only_matrices():
    torch.manual_seed(0)
    m = Transformer(ModelConfig(vocab_size=32, dim=8, n_layers=1, n_heads=1, ffn_hidden=16))
    q = quant.quantized_copy(m, "int4_group32")
    w, wq = m.layers[0].attn.wq.weight, q.layers[0].attn.wq.weight
    assert not torch.equal(w, wq) and (w - wq).abs().max() < w.abs().max() / 7
    assert torch.equal(m.final_norm.weight, q.final_norm.weight)
    with pytest.raises(ValueError, match="unknown quantisation scheme 'int3'"):
        quant.quantized_copy(m, "int3")


def test_quant_config_rejects_unknown_scheme():
    with pytest.raises(ConfigError, match="schemes"):
        stage.QuantConfig.from_params({"schemes": ["int8_row", "int2"]})
    with pytest.raises(ConfigError, match="eval_tokens"):
        stage.QuantConfig.from_params({"eval_tokens": 3})
    with pytest.raises(ConfigError, match="int4_group1"):
        stage.QuantConfig.from_params({"schemes": ["int4_group1"]})
    assert stage.QuantConfig.from_params({"schemes": ["int4_group16"]}).schemes == ("int4_group16",)


def test_engine_limits_are_enforced():
    m = Transformer(ModelConfig(vocab_size=32, dim=8, n_layers=1, n_heads=1, ffn_hidden=40000))
    with pytest.raises(ValueError, match="int8 scheme's limits"):
        quant.to_int8_engine(m, quant.Trace())


def _fake_sweep(tmp_path, model):
    """A sweep's outputs for one variant: prepared data, a checkpoint, a variants row."""
    from starmind_lib.training import sweep
    data_dir = tmp_path / "runs" / "sweep_data"
    train = reference._encode_ref(reference.reference_text(500, 0))
    val = reference._encode_ref(reference.reference_text(100, 5))
    sweep.write_prepared(data_dir / "char32", train, val, [c.encode().hex() for c in ALPHA], prompts={},
                         spec="char32", name="char-32", unigram_bpc=4.0, fingerprint="x", is_synthetic=True,
                         source_label="synthetic", lowercase=True)
    save_checkpoint(model, sweep.checkpoint_path(tmp_path / "runs", "v1"))
    sweep.results_table(tmp_path / "results").append(
        {"variant_id": "v1", "tokenizer_spec": "char32", "n_params": 1000, "dim": model.cfg.dim,
         "n_layers": model.cfg.n_layers, "bpc": 1.0})


def test_stage_writes_resumable_table(tmp_path, trained):
    model = trained[0]
    _fake_sweep(tmp_path, model)
    cfg = stage.QuantConfig.from_params({"schemes": ["int8_row", "int8_engine"], "eval_tokens": 256,
                                         "calib_windows": 4})
    df = stage.run_quant(cfg, tmp_path / "results", tmp_path / "runs", profile="test", progress=False)
    assert sorted(df["key"]) == ["v1/int8_engine", "v1/int8_row"]
    assert (tmp_path / "results" / "quant" / "quant.parquet").exists()
    assert (tmp_path / "runs" / "smd" / "v1.smd").exists()
    assert df["is_synthetic"].all() and np.isfinite(df["bpc"]).all()
    eng = ie.IntEngine(export.read_smd(tmp_path / "runs" / "smd" / "v1.smd"))
    assert len(eng.generate([1, 2], 5)) == 5
    before = (tmp_path / "results" / "quant" / "quant.jsonl").read_text()
    cfg2 = cfg.replace(schemes=("int8_row", "int8_engine", "float16"))
    df2 = stage.run_quant(cfg2, tmp_path / "results", tmp_path / "runs", progress=False)
    after = (tmp_path / "results" / "quant" / "quant.jsonl").read_text()
    assert after.startswith(before) and len(df2) == 3  # finished rows kept, only the new scheme ran
    assert math.isclose(stage.read_quant(tmp_path / "results")["bpc"].min(), df2["bpc"].min())
