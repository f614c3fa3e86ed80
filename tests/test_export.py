"""Study v2 run -> committed format-v2 model file (starmind_lib.quant.export), on a tiny smoke study."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from starmind_lib.quant import export
from starmind_lib.training.plan import StudyConfig
from starmind_lib.training.study import run_study
from starmind_lib.training.sweep import prepare_data, study_data_config

PARAMS = {"grid": "smoke", "tiers": ["lr", "base"], "seeds": [0, 1], "lr_grid": [1e-2], "base_tokens": 2048,
          "seq_len": 16, "batch_size": 8, "eval_every": 8, "workers": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from starmind_lib.data import load_corpus
    root = tmp_path_factory.mktemp("export_study")
    data = prepare_data(load_corpus(study_data_config("synthetic")), ["char64", "bpe384"], root / "study_data")
    df = run_study(StudyConfig.from_params(PARAMS), data, root / "results", root / "runs", progress=False)
    return {"root": root, "data": data, "results": root / "results", "runs": root / "runs", "df": df}


def _export(study, tmp_path, variants, **kw):
    lines = []
    kw = {"results_dir": study["results"], "runs_dir": study["runs"], "data_dir": study["data"], **kw}
    done, errors = export.export_variants(variants, "base", 0, tmp_path / "models", check_tokens=256,
                                          log=lambda *a, **k: lines.append(" ".join(map(str, a))), **kw)
    return done, errors, lines


def test_export_writes_a_format_v2_file_the_engine_runs_and_a_provenance_row(study, tmp_path):
    from starmind_lib.model import load_checkpoint
    from starmind_lib.quant.intengine import IntEngine
    from starmind_lib.quant.schemes import calibrate, to_int8_engine
    from starmind_lib.quant.smd import SmdModel, read_smd
    from starmind_lib.quant.smd_text import encode
    from starmind_lib.quant.stage import _calib_windows, _text_spec
    from starmind_lib.tokenizers import load_tokenizer
    from starmind_lib.training.sweep import load_prepared

    done, errors, lines = _export(study, tmp_path, ["vocab-d16-bpe384"])
    assert not errors and len(done) == 1
    path = tmp_path / "models" / "vocab-d16-bpe384.smd"
    m = read_smd(path)
    assert m.version == 2 and m.can_encode and m.text.encoder == "bpe" and m.text.lowercase and m.text.stop_at_eos
    # the file's encoder gives the host tokenizer's ids
    tok = load_tokenizer(study["data"] / "bpe384" / "tokenizer.json")
    text = "Once upon a time, the little dog ran."
    assert encode(m.text, m.vocab, text) == list(tok.encode(text))
    # the file read back runs as the integer reference engine runs the conversion made in memory
    df = study["df"]
    run = df[(df.tier == "base") & (df.seed == 0) & (df.name == "vocab-d16-bpe384")].iloc[0]
    model = load_checkpoint(study["runs"] / run["checkpoint"]).eval()
    data = load_prepared(study["data"], "bpe384")
    header, tensors = to_int8_engine(model, calibrate(model, _calib_windows(data["train"], 16, 16)))
    pieces = [bytes.fromhex(h) for h in data["meta"]["pieces"]]
    mem = IntEngine(SmdModel(header, tensors, pieces, _text_spec(study["data"], "bpe384")))
    prompt = encode(m.text, m.vocab, "once upon a time")
    got = IntEngine(m).generate(prompt, 40, window=True, stop_at_eos=False)
    assert got == mem.generate(prompt, 40, window=True, stop_at_eos=False) and len(got) == 40
    # the table row: the run, the file, the bpc with its interval, the mean over the two seeds
    table = export.models_table(tmp_path / "models")
    rows = table.rows()
    assert len(rows) == 1 and (tmp_path / "models" / "models.parquet").exists()
    row = rows[0]
    assert row["run_key"] == run["run_key"] and row["config_hash"] == run["config_hash"]
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and row["bytes"] == path.stat().st_size
    assert row["seed"] == 0 and row["tier"] == "base" and row["bpc"] == pytest.approx(run["bpc"])
    assert row["bpc_ci_low"] <= row["bpc"] <= row["bpc_ci_high"]
    both = df[(df.tier == "base") & (df.name == "vocab-d16-bpe384")].bpc
    assert row["n_seeds"] == 2 and row["bpc_mean"] == pytest.approx(both.mean())
    assert row["bpc_mean_ci_low"] < row["bpc_mean"] < row["bpc_mean_ci_high"]
    assert row["git_commit"] and "git_diff" in row and row["trained_git_commit"] == run["git_commit"]
    assert 0 <= row["check_greedy_agreement"] <= 1 and row["check_tokens"] > 0
    assert export.committed_row(path)["key"] == row["key"]
    assert any(line.startswith("exported vocab-d16-bpe384:") for line in lines)
    # the same export again writes the same bytes: no second row (counted in the raw journal, not in rows(),
    # which drops a repeated key)
    journal = table.journal.read_bytes()
    again, _, _ = _export(study, tmp_path, ["vocab-d16-bpe384"])
    assert again[0]["key"] == row["key"] and again[0]["sha256"] == row["sha256"]
    assert table.journal.read_bytes() == journal
    assert len([line for line in journal.decode().splitlines() if line.strip()]) == 1


def test_bad_variants_are_error_lines_and_the_batch_goes_on(study, tmp_path):
    runs = tmp_path / "runs"                 # the same study, one checkpoint gone
    shutil.copytree(study["runs"], runs)
    df = study["df"]
    gone = df[(df.tier == "base") & (df.seed == 0) & (df.name == "width-d8")].iloc[0]
    (runs / gone["checkpoint"]).unlink()
    done, errors, lines = _export(study, tmp_path, ["no-such-model", "width-d8", "tied-d16-false", "depth-d16-l1"],
                                  runs_dir=runs)
    assert [d["variant_id"] for d in done] == ["depth-d16-l1"]
    msgs = {e.variant_id: str(e) for e in errors}
    assert msgs["no-such-model"] == "no-such-model: unknown variant id (not in the architecture grid, no Study v2 row)"
    assert msgs["width-d8"].startswith(f"width-d8: checkpoint {runs / gone['checkpoint']} of run {gone['run_key']} "
                                       "is missing")
    assert msgs["tied-d16-false"].startswith("tied-d16-false: no Study v2 row at tier 'base', seed 0 in ")
    assert "its configuration has no rows yet" in msgs["tied-d16-false"]
    assert sum(line.startswith("error: ") for line in lines) == 3
    assert (tmp_path / "models" / "depth-d16-l1.smd").exists() and not (tmp_path / "models" / "width-d8.smd").exists()


def test_cli_exit_status_and_seed_selection(study, tmp_path, capsys):
    args = ["--results-dir", str(study["results"]), "--runs-dir", str(study["runs"]), "--data", str(study["data"]),
            "--out", str(tmp_path / "models"), "--check-tokens", "256"]
    assert export.main(["--variants", "width-d8", "--seed", "1"] + args) == 0
    row = json.loads((tmp_path / "models" / "models.jsonl").read_text().splitlines()[0])
    assert row["seed"] == 1 and row["variant_id"] == "width-d8"
    assert export.main(["--variants", "width-d8", "--seed", "7"] + args) == 1
    err = capsys.readouterr().err
    assert "error: width-d8: no Study v2 row at tier 'base', seed 7" in err and "base seed 0, base seed 1" in err
