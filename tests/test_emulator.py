"""The emulated Pico: firmware build, kernel cycle counts, the flash-cache model, model runs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from starmind_lib.devices import flashcache
from starmind_lib.devices.flashcache import FlashCache

needs_toolchain = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("node")),
    reason="needs arm-none-eabi-gcc and node (make sysdeps npm)")


def test_miss_penalty_derivation():
    # 28 SCK at clk_sys/2 plus 4 cycles of bridge overhead (see flashcache.py)
    assert flashcache.SCK_PER_FILL == 28
    assert flashcache.MISS_PENALTY_CYCLES == 60
    assert flashcache.SETS * flashcache.WAYS * flashcache.LINE_BYTES == 16 * 1024


def test_cache_model_hits_misses_and_lru():
    c = FlashCache()
    assert not c.access(0x1000_0000)          # cold miss
    assert c.access(0x1000_0004)              # same 8-byte line
    assert not c.access(0x1000_0008)          # next line
    way_stride = flashcache.SETS * flashcache.LINE_BYTES  # 8 KB: same set, other tag
    assert not c.access(0x1000_0000 + way_stride)         # fills the second way
    assert c.access(0x1000_0000)                          # both ways resident
    assert not c.access(0x1000_0000 + 2 * way_stride)     # evicts the LRU way (the +8 KB line)
    assert c.access(0x1000_0000)
    assert not c.access(0x1000_0000 + way_stride)
    assert c.access(0x2000_0000)                          # SRAM: not the cache's business
    assert (c.accesses, c.misses) == (8, 5)


def test_streaming_a_large_tensor_misses_once_per_line():
    c = FlashCache()
    for a in range(0x1000_0000, 0x1000_0000 + 64 * 1024, 4):
        c.access(a)
    assert c.misses == 64 * 1024 // 8


@needs_toolchain
def test_kernel_cycles_per_mac():
    from starmind_lib.devices.emulated import kernel_bench
    rows = {(r["kernel"], r["weights"]): r for r in kernel_bench(256)}
    plain = rows[("plain C", "sram")]["cycles_per_mac_raw"]
    asm = rows[("Thumb asm 4 rows", "sram")]["cycles_per_mac_raw"]
    # the emulator is cycle-exact: these are the counts of this firmware build, not targets (the targets and
    # the figures are printed by `make bench-device`); a kernel or compiler change moves them on purpose
    assert plain == 10392 / 1024, plain                  # 10.15 cycles/MAC
    assert asm == 5453 / 1024, asm                       # 5.33 cycles/MAC
    # the kernel of model runs with weights in SRAM: 8 interleaved rows, each word of 4 rows' bytes multiplied
    # whole into four shifted sums; its dot products are exact
    word = rows[("Thumb asm 8 rows, word loads (model runs, weights in SRAM)", "sram")]
    # 3.83 cycles/MAC with its call, block setup and 8 stores (the loop: 3.66)
    assert word["cycles_per_mac_raw"] == 7851 / 2048, word
    x = np.array([(i * 37 + 11) & 0xFF for i in range(256)], np.uint8).astype(np.int8).astype(np.int64)
    w = np.array([((i * 89 + 7) % 255 - 127) for i in range(8 * 256)], np.int64).reshape(8, 256)
    assert word["outputs"] == [int(v) for v in (w[:4] @ x)]
    # weights streamed from flash: one miss per 8-byte line at 60 cycles = 7.5 cycles/MAC more
    flash = rows[("Thumb asm 4 rows", "flash")]
    assert flash["cycles_per_mac"] == 13373 / 1024, flash   # 13.06: 5453 cycles + 132 misses x 60
    # the JS cache model (harness.mjs) counts what its Python twin counts for the same reads:
    # the asm kernel reads 4 rows of 256 bytes at model offset 16n, row by row interleaved
    twin = FlashCache()
    base = 0x1002_1000 + 16 * 256
    for i in range(256):
        for r in range(4):
            twin.access(base + r * 256 + i)
    js_misses = (flash["cycles_per_mac"] - flash["cycles_per_mac_raw"]) * flash["macs"] / flashcache.MISS_PENALTY_CYCLES
    # (plus 4 instruction fetches of the calling code and its long-branch veneer, which live in flash)
    assert twin.misses == 128 and js_misses == 132


REFERENCE = sorted((Path(__file__).resolve().parent.parent / "data" / "reference").glob("*.golden.json"))


def _export_untrained(tmp_path, name, **cfg):
    """A valid int8 .smd of an untrained model (sizes are what these tests are about)."""
    import numpy as np
    import torch

    from starmind_lib.quant import schemes as quant
    from starmind_lib.quant.smd import write_smd
    from starmind_lib.model import ModelConfig, Transformer
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Transformer(ModelConfig.from_params({"vocab_size": 32, "max_seq_len": 16, **cfg})).eval()
    calib = [np.arange(16) % 32, (np.arange(16) * 7) % 32]
    header, tensors = quant.to_int8_engine(model, quant.calibrate(model, calib))
    path = tmp_path / f"{name}.smd"
    write_smd(path, header, tensors, [bytes([97 + i % 26]) for i in range(32)])
    return path


@needs_toolchain
@pytest.mark.parametrize("golden", REFERENCE[:2], ids=lambda p: p.name.split(".")[0])
def test_emulated_pico_reproduces_golden_vectors(golden):
    from starmind_lib.devices.emulated import EmulatedPico
    g = json.loads(golden.read_text())
    board = EmulatedPico(dump_logits=True)
    board.deploy(golden.parent / g["model"])
    rec = board.run(g["prompt_ids"], g["greedy"]["n_new"])
    assert rec.status == "ok", rec.message
    assert rec.output_ids == g["greedy"]["output_ids"]
    assert board.last_harness_output["first_logits"] == g["first_logits"]
    s = g["sampled"][1]
    rec2 = board.run(g["prompt_ids"], s["n_new"], seed=s["seed"], temperature_q8=s["temperature_q8"],
                     top_k=s["top_k"])
    assert rec2.output_ids == s["output_ids"]
    # timings come from the markers: cache-model cycles >= raw cycles, speeds at both clocks
    assert rec.speed_source in ("cycle_counted_emulation", "emulation_xip_model") and rec.runtime == "c-int8"
    assert rec.cycles_per_token >= rec.extra["cycles_per_token_raw"] > 1000
    assert rec.extra["tokens_per_s_125MHz"] < rec.extra["tokens_per_s_133MHz"] == rec.tokens_per_s
    from starmind_lib.quant.smd import read_smd
    vocab = read_smd(golden.parent / g["model"]).vocab   # the reference vocabularies are ASCII: bytes = characters
    per_token = sum(len(vocab[t]) for t in rec.output_ids) / len(rec.output_ids)   # 1 for the char models
    assert rec.chars_per_s == pytest.approx(rec.tokens_per_s * per_token)
    assert 0 < rec.peak_ram_bytes < 264 * 1024 and rec.extra["stack_bytes"] > 0


@needs_toolchain
@pytest.mark.parametrize("weights_in_sram", [False, True], ids=["flash", "sram"])
@pytest.mark.parametrize("golden", sorted((REFERENCE[0].parent / "crafted").glob("*.golden.json")),
                         ids=lambda p: p.name.split(".")[0])
def test_emulated_pico_reproduces_crafted_goldens(golden, weights_in_sram):
    """The assembly kernels of the RP2040 build (sm_kernels_m0.S, sm_ops_m0.S) through every clamp and
    special branch the crafted goldens fire: first logits, greedy and sampled tokens (the firmware
    generates n tokens without the stop rule, so a golden that stops is a prefix)."""
    from starmind_lib.devices.emulated import EmulatedPico
    g = json.loads(golden.read_text())
    board = EmulatedPico(weights_in_sram=weights_in_sram, dump_logits=True)
    board.deploy(golden.parent / g["model"])
    rec = board.run(g["prompt_ids"], g["greedy"]["n_new"])
    assert rec.status == "ok", rec.message
    assert board.last_harness_output["first_logits"] == g["first_logits"]
    want = g["greedy"]["output_ids"]
    assert rec.output_ids[:len(want)] == want
    for s in g["sampled"]:
        rec = board.run(g["prompt_ids"], s["n_new"], seed=s["seed"], temperature_q8=s["temperature_q8"],
                        top_k=s["top_k"])
        assert rec.output_ids[:len(s["output_ids"])] == s["output_ids"], s


@needs_toolchain
def test_weights_in_sram_kv_off_and_float_agree():
    from starmind_lib.devices.emulated import EmulatedPico
    ref = next(p for p in REFERENCE if p.name.startswith("ref_rope_silu"))  # 19.6 KB: more than the XIP cache
    g = json.loads(ref.read_text())
    recs = {}
    for key, kw in {"flash": {}, "sram": {"weights_in_sram": True}, "nokv": {"kv_cache": False}}.items():
        board = EmulatedPico(**kw)
        board.deploy(ref.parent / g["model"])
        recs[key] = board.run(g["prompt_ids"], 6)
        assert recs[key].output_ids == g["greedy"]["output_ids"][:6], key
    assert recs["sram"].cycles_per_token < recs["flash"].cycles_per_token      # no flash-cache misses
    assert recs["nokv"].extra["cycles_per_token_raw"] > 2 * recs["flash"].extra["cycles_per_token_raw"]
    board = EmulatedPico(dump_logits=True)
    board.deploy(ref.parent / g["float_model"])
    rec = board.run(g["prompt_ids"], 6)
    assert rec.runtime == "c-float32" and rec.output_ids == g["float32"]["greedy_output_ids"][:6]
    # boot-ROM float arithmetic + newlib libm on the M0+ vs PyTorch on the host
    worst = max(abs(a - b) for a, b in zip(board.last_harness_output["first_logits"], g["float32"]["first_logits"]))
    assert worst <= g["float32"]["abs_tolerance"]
    assert rec.cycles_per_token > 5 * recs["flash"].cycles_per_token   # soft float is slow


@needs_toolchain
def test_too_large_models_do_not_fit(tmp_path):
    from starmind_lib.devices.emulated import EmulatedPico
    # ~330K int8 weights: fine from flash, but a copy in SRAM cannot fit 264 KB
    mid = _export_untrained(tmp_path, "mid", dim=96, n_layers=3, n_heads=2, ffn_hidden=384)
    board = EmulatedPico(weights_in_sram=True)
    board.deploy(mid)
    rec = board.run([1, 2], 2)
    assert rec.status == "does_not_fit" and "arena" in rec.message
    # a file larger than the Pico's 2 MB flash
    big = tmp_path / "big.smd"
    big.write_bytes(mid.read_bytes() + bytes(2 * 1024 * 1024))
    board = EmulatedPico()
    board.deploy(big)
    rec = board.run([1, 2], 2)
    assert rec.status == "does_not_fit" and "flash" in rec.message


@needs_toolchain
def test_bench_runs_reference_models_and_resumes(tmp_path, monkeypatch):
    from starmind_lib.bench import device
    from starmind_lib.bench.device import DeviceBenchConfig, run_bench
    from starmind_lib.bench.device_results import read_runs
    cfg = DeviceBenchConfig.from_params({"n_prompt": 4, "n_tokens": 4, "comparisons": ["nokv"],
                                         "nokv_max_params": 1500, "size_probes": [], "workers": 2,
                                         "long_tokens": 70})
    df = run_bench(cfg, tmp_path / "results", tmp_path / "runs", profile="test", progress=False)
    refs = {p.name.split(".")[0] for p in REFERENCE}
    assert set(df["model_id"]) == refs
    assert (df["status"] == "ok").all() and df["matches_reference"].astype(bool).all()
    kv = df[df["kv_cache"].astype(bool)]                   # also timed over the whole window, tokens checked
    assert kv["window_matches_reference"].astype(bool).all() and (kv["cycles_per_token_full"] > 0).all()
    assert (kv["cycles_per_token_last"] >= kv["cycles_per_token_full"]).all()
    # the reference models also generate 70 tokens, past their window (the window restart): the tokens are
    # the reference engine's, and the restarts' re-fed positions make a token dearer than in the window
    assert kv["long_matches_reference"].astype(bool).all() and (kv["long_tokens"] == 70).all()
    assert (kv["cycles_per_token_long"] > kv["cycles_per_token_full"]).all()
    small = df[df["n_params"] <= 1500]["model_id"].nunique()
    assert small >= 1 and len(df) == len(refs) + small     # + a KV-cache-off run of each model <= 1500 params
    assert not df[df["n_params"] <= 1500]["kv_cache"].astype(bool).all()
    journal = tmp_path / "results" / "device" / "c_runs.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])   # a torn last row, as after kill -9
    redone, finish = [], device._finish                   # each measured run passes _finish once, in this process

    def counting_finish(row, *args):
        redone.append(row["key"])
        return finish(row, *args)
    monkeypatch.setattr(device, "_finish", counting_finish)
    df2 = run_bench(cfg, tmp_path / "results", tmp_path / "runs", profile="test", progress=False)
    lost = json.loads(lines[-1])["key"]
    assert redone == [lost]                                # only the lost run was redone
    # the raw journal, not the de-duplicated frame: the kept lines byte for byte, the torn one, the lost run once
    after = journal.read_text().splitlines()
    assert after[:len(lines) - 1] == lines[:-1] and after[len(lines) - 1] == lines[-1][:40]
    assert len(after) == len(lines) + 1 and json.loads(after[-1])["key"] == lost
    assert sorted(json.loads(line)["key"] for line in after if line != lines[-1][:40]) == sorted(df["key"])
    assert sorted(df2["key"]) == sorted(df["key"])
    runs, kernels = read_runs(tmp_path / "results")
    assert len(runs) == len(df) and set(kernels["weights"]) == {"flash", "sram"}
    assert (tmp_path / "results" / "device" / "c_runs.parquet").exists()


@needs_toolchain
def test_the_cycles_depend_on_the_shapes_not_on_the_weights(tmp_path):
    """The device bench stands an untrained model of the same architecture in for a study variant whose
    checkpoint is not on this machine: its cycles per token are the trained model's within 2 %."""
    from starmind_lib.bench.device import export_variant
    from starmind_lib.devices.emulated import EmulatedPico
    from starmind_lib.model import ModelConfig, Transformer
    from starmind_lib.quant.smd import read_smd
    golden = next(p for p in REFERENCE if p.name.startswith("ref_rope_silu"))
    g = json.loads(golden.read_text())
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_params(g["config"])).eval()
    V, T = g["config"]["vocab_size"], g["config"]["max_seq_len"]
    calib = [(np.arange(T) * (2 * i + 1) + i) % V for i in range(4)]
    untrained = export_variant(model, calib, read_smd(golden.parent / g["model"]).vocab, tmp_path, "stand_in",
                               ("int8",))["int8"]
    cycles = {}
    for name, path in (("trained", golden.parent / g["model"]), ("untrained", untrained)):
        board = EmulatedPico(weights_in_sram=True)
        board.deploy(path)
        rec, speeds = board.run_window(g["prompt_ids"][0])
        assert rec.status == "ok", rec.message
        cycles[name] = speeds["cycles_per_token_full"]
    assert cycles["untrained"] == pytest.approx(cycles["trained"], rel=0.02)


def test_a_window_run_that_does_not_fit_is_not_a_mismatch():
    """The full-window run of a model whose 64-position KV cache does not fit SRAM stops early: nothing
    to check (None), where a finished run with other tokens is a mismatch (False)."""
    from starmind_lib.bench.device import DeviceBenchConfig, _finish
    cfg = DeviceBenchConfig()
    base = {"scheme": "int8", "status": "ok", "output_ids": [1, 2], "reference_ids": [1, 2],
            "window_reference_ids": [3, 4], "long_reference_ids": [5, 6]}
    row = _finish({**base, "window_output_ids": [], "window_status": "does_not_fit",
                   "long_output_ids": [5, 7], "long_status": "ok"}, cfg, "test")
    assert row["matches_reference"] is True and row["window_matches_reference"] is None
    assert row["long_matches_reference"] is False
