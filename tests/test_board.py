"""The host runner against boards driven by the real mpremote.

* the virtual board (MicroPython 1.27 WebAssembly behind the TCP bridge): mpremote's
  exec / fs cp / soft reset work on it, and the runner reproduces the golden token
  ids of the reference engine there, with hash-skipped redeploys;
* the fault-injecting fake board: out of memory, timeout, disconnect mid-run,
  corrupted model, does_not_fit, and an interrupted batch that resumes.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from starmind_lib.devices.mpremote_board import MpremoteBoard, runs_table
from starmind_lib.devices.virtual import BRIDGE_DIR, start_fake_board, start_virtual_board
from starmind_lib.provenance import REPO_ROOT

REFERENCE = REPO_ROOT / "data" / "reference"
MPREMOTE = str(Path(sys.executable).parent / "mpremote")
needs_virtual_board = pytest.mark.skipif(
    shutil.which("node") is None or not (BRIDGE_DIR / "node_modules" / "@micropython").exists(),
    reason="the virtual board needs Node.js and `make npm`")


def golden(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.golden.json").read_text())


@pytest.fixture(scope="module")
def virtual_board():
    with start_virtual_board() as vb:
        yield vb


def mpremote(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MPREMOTE, "connect", url, *args], capture_output=True, text=True, timeout=60)


# ---- the virtual board ----------------------------------------------------------------------
@needs_virtual_board
def test_mpremote_drives_the_virtual_board(virtual_board, tmp_path):
    url = virtual_board.url
    r = mpremote(url, "exec", "import sys; print(sys.implementation.name, 6 * 7)")
    assert r.returncode == 0 and r.stdout.split() == ["micropython", "42"], r.stderr
    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 9)
    assert mpremote(url, "fs", "cp", str(src), ":blob.bin").returncode == 0
    # files persist across a soft reset (each mpremote call soft-resets) and read back intact
    r = mpremote(url, "exec", "import os; print(os.stat('blob.bin')[6])")
    assert r.stdout.strip() == str(256 * 9)
    back = tmp_path / "back.bin"
    assert mpremote(url, "fs", "cp", ":blob.bin", str(back)).returncode == 0
    assert back.read_bytes() == src.read_bytes()
    r = mpremote(url, "exec", "x = 1", "+", "soft-reset", "+", "exec", "print('x' in globals())")
    assert r.stdout.split()[-1] == "False"  # a soft reset gives a fresh interpreter
    r = mpremote(url, "fs", "rm", ":missing.bin")
    assert r.returncode != 0 and "No such file" in r.stderr  # MicroPython's errno, as on a Pico
    r = mpremote(url, "exec", "raise ValueError('boom')")
    assert r.returncode != 0 and "ValueError: boom" in r.stdout + r.stderr


@needs_virtual_board
@pytest.mark.parametrize("name", ["ref_tiny_learned", "ref_rope_silu", "ref_swiglu_untied", "ref_dim1_gelu"])
def test_virtual_board_reproduces_goldens(virtual_board, name):
    g = golden(name)
    with MpremoteBoard(virtual_board.url, kind="virtual", timeout_s=120) as board:
        streamed = []
        rec = board.run(g["prompt_ids"], g["greedy"]["n_new"], model_path=REFERENCE / g["model"],
                        on_token=lambda i, text: streamed.append(text))
        assert rec.status == "ok", rec.message
        assert rec.output_ids == g["greedy"]["output_ids"]
        assert "".join(streamed) == rec.text == g["greedy"]["text"]
        assert rec.runtime == "micropython-python"  # the WebAssembly port has no native emitter
        assert rec.speed_source == "host_timing_not_representative" and "behaviour only" in rec.extra["timing_note"]
        s = g["sampled"][1]
        rec = board.run(g["prompt_ids"], s["n_new"], s["seed"], s["temperature_q8"], s["top_k"],
                        model_path=REFERENCE / g["model"])
        assert rec.output_ids == s["output_ids"]


@needs_virtual_board
def test_virtual_board_streams_weights_from_flash(virtual_board):
    g = golden("ref_swiglu_untied")
    with MpremoteBoard(virtual_board.url, kind="virtual", weights="flash") as board:
        rec = board.run(g["prompt_ids"], g["greedy"]["n_new"], model_path=REFERENCE / g["model"])
    assert rec.status == "ok" and rec.extra["weights"] == "flash"
    assert rec.output_ids == g["greedy"]["output_ids"]


@needs_virtual_board
def test_deploy_skips_unchanged_files_and_rejects_corruption(virtual_board, tmp_path):
    model = REFERENCE / "ref_tiny_learned.smd"
    with MpremoteBoard(virtual_board.url, kind="virtual") as board:
        board.deploy(model)
    with MpremoteBoard(virtual_board.url, kind="virtual") as board:  # a new session: hashes checked on the board
        actions = board.deploy(model)
    assert set(actions.values()) == {"unchanged"} and len(actions) >= 5
    bad = tmp_path / "corrupt.smd"
    data = bytearray(model.read_bytes())
    data[-9] ^= 0x21
    bad.write_bytes(bytes(data))
    with MpremoteBoard(virtual_board.url, kind="virtual") as board:
        rec = board.run([1, 2], 4, model_path=bad)
    assert rec.status == "error" and "checksum" in rec.message


# ---- the fault-injecting board --------------------------------------------------------------
def copy_model(tmp_path: Path, name: str, ref: str = "ref_tiny_learned") -> Path:
    dst = tmp_path / "models" / f"{name}.smd"
    dst.parent.mkdir(exist_ok=True)
    shutil.copy(REFERENCE / f"{ref}.smd", dst)
    return dst


def test_fault_statuses_and_the_batch_goes_on(tmp_path):
    g = golden("ref_tiny_learned")
    names = ["good_a", "hangs", "drops", "good_b"]
    models = [copy_model(tmp_path, n) for n in names]
    faults = {"/models/hangs.smd', [": "hang", "/models/drops.smd', [": "disconnect"}
    with start_fake_board(tmp_path / "board", faults) as fake:
        board = MpremoteBoard(fake.url, kind="fake", timeout_s=6)
        recs = board.bench(models, g["prompt_ids"], 8)
        board.close()
    status = {r.model: r.status for r in recs}
    assert status == {"good_a": "ok", "hangs": "timeout", "drops": "disconnected", "good_b": "ok"}
    assert recs[0].output_ids == recs[3].output_ids == g["greedy"]["output_ids"][:8]
    assert "no result within" in recs[1].message


def test_out_of_memory_is_a_status(tmp_path):
    model = copy_model(tmp_path, "big", "ref_rope_silu")  # ~20 KB of tensors
    with start_fake_board(tmp_path / "board", heap_limit=12_000) as fake:  # a program may allocate 12 KB
        with MpremoteBoard(fake.url, kind="fake") as board:
            rec = board.run([1, 2], 4, model_path=model)
            assert rec.status == "out_of_memory" and "MemoryError" in rec.message
            ok = board.run([1, 2], 4, model_path=REFERENCE / "ref_dim1_gelu.smd")  # the board is still usable
    assert ok.status == "ok"


def test_planner_refuses_what_will_not_fit_unless_forced(tmp_path):
    model = copy_model(tmp_path, "m")
    with start_fake_board(tmp_path / "board") as fake:
        with MpremoteBoard(fake.url, kind="fake", heap_free=20_000) as board:
            rec = board.run([1], 4, model_path=model)
            assert rec.status == "does_not_fit" and "will not fit" in rec.message
            assert not (tmp_path / "board" / "models" / "m.smd").exists()  # refused before deploying
        with MpremoteBoard(fake.url, kind="fake", heap_free=20_000, force=True) as board:
            assert board.run([1], 4, model_path=model).status == "ok"


def test_interrupted_batch_resumes_without_rerunning(tmp_path):
    models = [copy_model(tmp_path, n) for n in ("one", "two", "three")]
    table = runs_table(tmp_path / "results")

    class Interrupted(Exception):
        pass

    def stop_after_first(rec):
        raise Interrupted

    with start_fake_board(tmp_path / "board") as fake:
        board = MpremoteBoard(fake.url, kind="fake")
        with pytest.raises(Interrupted):
            board.bench(models, [1, 2], 4, table=table, on_record=stop_after_first)
        assert [r["model"] for r in table.rows()] == ["one"]
        again = board.bench(models, [1, 2], 4, table=table)
        board.close()
    assert [r.model for r in again] == ["two", "three"]
    assert [r["model"] for r in table.rows()] == ["one", "two", "three"]
    assert all(r["status"] == "ok" and r["speed_source"] == "host_timing_not_representative" for r in table.rows())


def test_unreachable_board_is_disconnected():
    board = MpremoteBoard("socket://127.0.0.1:9", kind="fake", timeout_s=2)
    rec = board.run([1], 2, model_path=REFERENCE / "ref_dim1_gelu.smd")
    assert rec.status == "disconnected" and "cannot reach" in rec.message


# ---- the command line -----------------------------------------------------------------------
def test_cli_plan_and_generate_stream_the_story(tmp_path, capsys):
    from starmind_lib.cli import main

    model = REFERENCE / "ref_rope_silu.smd"
    assert main(["board", "plan", "--models", str(model)]) == 0
    plan = json.loads(capsys.readouterr().out.splitlines()[0])
    assert plan["fits"] and plan["label"].startswith("predicted")
    g = golden("ref_rope_silu")
    with start_fake_board(tmp_path / "board") as fake:
        args = ["board", "generate", "--port", fake.url, "--kind", "fake", "--model", str(model),
                "--prompt", g["prompt_text"], "--n-tokens", str(g["greedy"]["n_new"])]
        assert main(args) == 0
        out = capsys.readouterr()
        assert out.out.strip() == (g["prompt_text"] + g["greedy"]["text"]).strip()
        assert "[ref_rope_silu] ok" in out.err
        assert main(["board", "deploy", "--port", fake.url, "--kind", "fake", "--models", str(model)]) == 0
        assert "unchanged /models/ref_rope_silu.smd" in capsys.readouterr().out
