"""Data: sources, mojibake repair, the deterministic split, caps, cache, stats, offline failure."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from starmind_lib.config import ConfigError
from starmind_lib.data import (DataConfig, DataSourceError, corpus_stats, data_source_note, fix_mojibake,
                               is_lowercase_only, is_validation_name, load_corpus, normalise_story,
                               resolve_data_source, story_in_val, synthetic_stories)
from starmind_lib.data import corpus as corpus_mod
from starmind_lib.provenance import REPO_ROOT


@pytest.mark.parametrize("broken, fixed", [
    ("Tomâ€™s dog", "Tom’s dog"),
    ("She said, â€œHello!â€ and left.", "She said, “Hello!” and left."),
    ("she said, â€œhi.â€\nthe end", "she said, “hi.”\nthe end"),
    ("wait â€“ what â€” no â€˜okâ€™ â€¦", "wait – what — no ‘ok’ …"),
    ("cafÃ© and cafã©", "café and café"),  # the lowercased shard turned Ã into ã
    ("café’s naïve Zoë — “fine”", "café’s naïve Zoë — “fine”"),  # correct text is left alone
])
def test_fix_mojibake(broken, fixed):
    assert fix_mojibake(broken) == fixed


def test_normalise_story():
    assert normalise_story("  Lilyâ€™s Day\r\nEnd \n", lowercase=True) == "lily’s day\nend"
    assert normalise_story("Lilyâ€™s", fix=False) == "Lilyâ€™s"


def test_lowercase_only_detection():
    assert is_lowercase_only(["once upon a time"] * 100)
    assert not is_lowercase_only(["once upon a time"] * 100 + ["Lily"])
    assert not is_lowercase_only(["too short"])  # too few letters to tell


def test_synthetic_stories_are_deterministic_and_story_like():
    a, b = synthetic_stories(50, seed=3), synthetic_stories(50, seed=3)
    assert a == b and a != synthetic_stories(50, seed=4)
    assert any(s.startswith("Once upon a time") for s in a)
    assert all(s.endswith((".", "!")) for s in a)


def test_split_by_story_hash_is_stable():
    # the first 8 bytes of sha1("Once upon a time.") are 0x0acc88560e854f7f -> 0.0422 of 2**64
    assert story_in_val("Once upon a time.", 0.05) and not story_in_val("Once upon a time.", 0.04)
    share = sum(story_in_val(s, 0.2) for s in synthetic_stories(2000, seed=9)) / 2000
    assert 0.15 < share < 0.25


def _write_dir(root, lowercase_shard=True, val_file=True):
    root.mkdir()
    (root / "a-train.txt").write_text("Once upon a time, Tom’s cat.<|endoftext|>One day, Lily ran.<|endoftext|>\n",
                                      encoding="utf-8")
    with open(root / "b.jsonl", "w", encoding="utf-8") as f:
        for t in ["Mia saw a â€œbigâ€ dog.", "The End came.", "Sam smiled."]:
            f.write(json.dumps({"text": t}) + "\n")
    pd.DataFrame({"text": ["Ben had a kite.", "Anna sang."]}).to_parquet(root / "c.parquet")
    if lowercase_shard:
        (root / "d.txt").write_text("\n\n".join(["the little dog was happy and played all day long"] * 30))
    if val_file:
        (root / "validation-00000.jsonl").write_text(json.dumps({"text": "Zoe flew a kite."}) + "\n")
    return root


def test_local_directory_sources_and_lowercase_shard_choice(tmp_path):
    d = _write_dir(tmp_path / "stories")
    cased = load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(d)}))
    assert cased.train == ["Once upon a time, Tom’s cat.", "One day, Lily ran.", "Mia saw a “big” dog.",
                           "The End came.", "Sam smiled.", "Ben had a kite.", "Anna sang."]
    assert cased.val == ["Zoe flew a kite."] and not cased.is_synthetic
    assert [s["name"] for s in cased.shards if s["lowercase_only"]] == ["d.txt"]
    assert any("d.txt" in n and "dropped" in n for n in cased.notes)
    lower = load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(d), "lowercase": True}))
    assert len(lower.train) == 7 + 30 and lower.train[0] == "once upon a time, tom’s cat."
    kept = load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(d), "lowercase_shards": "keep"}))
    assert len(kept.train) == 37 and kept.fingerprint != cased.fingerprint != lower.fingerprint


def test_local_without_validation_files_splits_by_hash_and_caps(tmp_path):
    d = _write_dir(tmp_path / "s", lowercase_shard=False, val_file=False)
    (d / "e.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in synthetic_stories(200, 1)))
    cfg = DataConfig.from_params({"source": "local", "data_dir": str(d), "val_fraction": 0.25})
    c = load_corpus(cfg)
    raw = {"Mia saw a “big” dog.": "Mia saw a â€œbigâ€ dog."}  # the split hashes the raw text
    assert all(story_in_val(raw.get(s, s), 0.25) for s in c.val)
    assert not any(story_in_val(raw.get(s, s), 0.25) for s in c.train)
    lc = load_corpus(cfg.replace(lowercase=True))  # same split for the lowercased corpus
    assert [s.lower() for s in c.val] == lc.val
    capped = load_corpus(cfg.replace(max_chars=500, max_val_chars=300))
    assert capped.train == c.train[:len(capped.train)] and sum(map(len, capped.train)) <= 500
    assert sum(map(len, capped.val)) <= 300 and len(capped.val) >= 1


def test_bad_local_sources_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="'data_dir' is required when source='local'"):
        DataConfig.from_params({"source": "local"})
    with pytest.raises(ConfigError, match=r"'data_dir' = '/nonexistent/x' is not an existing directory"):
        DataConfig.from_params({"source": "local", "data_dir": "/nonexistent/x"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="holds no story files"):
        load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(tmp_path / "empty")}))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jsonl").write_text('{"text": "ok"}\n{"story": "no"}\n')
    with pytest.raises(DataSourceError, match=r"x.jsonl:2: expected a JSON object with a 'text' field"):
        load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(tmp_path / "bad")}))


def test_validation_file_names():
    assert all(map(is_validation_name, ["validation-00000.jsonl", "valid.txt", "val.parquet", "VAL_1.txt"]))
    assert not any(map(is_validation_name, ["train.jsonl", "values.txt", "evaluation.txt"]))


def test_synthetic_corpus_and_disk_cache(tmp_path):
    cfg = DataConfig.from_params({"source": "synthetic", "n_synthetic_stories": 300, "val_fraction": 0.2})
    c = load_corpus(cfg, cache_dir=tmp_path)
    assert c.is_synthetic and c.source_label == "synthetic" and len(c.train) + len(c.val) == 300
    files = list((tmp_path / "corpus").glob("*.json"))
    assert len(files) == 1
    corpus_mod._memo.clear()
    again = load_corpus(cfg, cache_dir=tmp_path)  # read back from the cache file
    assert again.train == c.train and again.fingerprint == c.fingerprint
    assert load_corpus(cfg.replace(seed=1)).fingerprint != c.fingerprint


def test_corpus_stats():
    s = corpus_stats(["ab c", "hello world!", "x"])
    assert (s["stories"], s["characters"], s["words"], s["distinct_characters"]) == (3, 17, 5, 13)
    assert s["max_story_chars"] == 12 and s["median_story_chars"] == 4


def test_resolve_data_source(monkeypatch):
    monkeypatch.delenv("STARMIND_DATA_DIR", raising=False)
    assert resolve_data_source("tinystories", "") == ("tinystories", "")
    monkeypatch.setenv("STARMIND_DATA_DIR", "/data/ts")
    assert resolve_data_source("tinystories", "") == ("local", "/data/ts")
    assert resolve_data_source("tinystories", "/mine") == ("local", "/mine")
    assert resolve_data_source("synthetic", "") == ("synthetic", "")
    assert "STARMIND_DATA_DIR" in data_source_note("tinystories", "")
    monkeypatch.setenv("STARMIND_DATA_DIR", "")
    assert resolve_data_source("tinystories", "") == ("tinystories", "")
    assert "synthetic" in data_source_note("synthetic")


ADVICE = ("Point the study at local files instead: data_source='local' with data_dir='/path/to/tinystories' "
          "(a directory of .jsonl/.txt/.parquet story files), or `make book DATA_DIR=/path/to/tinystories` "
          "(which exports STARMIND_DATA_DIR).")


def test_tinystories_with_the_hub_unreachable_fails_before_any_download_with_advice(monkeypatch):
    """No timing: the hub's port refuses the connection, and the failure comes from that one probe, before
    ``datasets`` is asked for anything, naming Hugging Face and the local-data remedy."""
    import socket
    import types
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STARMIND_DATA_DIR", "")
    probes, loads = [], []

    def refuse(address, timeout=None, *args, **kwargs):
        probes.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=lambda *a, **k: loads.append(a)))
    with pytest.raises(DataSourceError) as err:
        load_corpus(DataConfig.from_params({"source": "tinystories"}))
    assert str(err.value) == ("TinyStories could not be loaded from Hugging Face (cannot reach huggingface.co:443). "
                              + ADVICE)
    assert probes == [(("huggingface.co", 443), 5.0)] and loads == []


def test_tinystories_offline_without_a_cached_copy_says_what_to_do(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "STARMIND_DATA_DIR": ""}
    code = ("from starmind_lib.data import DataConfig, DataSourceError, load_corpus\n"
            "try:\n    load_corpus(DataConfig.from_params({'source': 'tinystories'}))\n"
            "except DataSourceError as e:\n    print('ERROR:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout == ("ERROR: TinyStories could not be loaded from Hugging Face (offline (HF_HUB_OFFLINE=1) and "
                          "no cached copy). " + ADVICE + "\n"), out.stderr[-2000:]


def test_chapter_tables_write_then_read_back(tmp_path):
    from starmind_lib.chapters.ch01_data import compute_data_tables, read_data_tables, stat
    results = tmp_path / "results"
    with pytest.raises(FileNotFoundError, match="recompute=True"):
        read_data_tables(results)
    cfg = DataConfig.from_params({"source": "synthetic", "n_synthetic_stories": 200})
    frames = compute_data_tables(cfg, results, cache_dir=tmp_path / "runs", profile="test")
    again = compute_data_tables(cfg, results, cache_dir=tmp_path / "runs", profile="test")
    assert len((results / "data" / "stats.jsonl").read_text().splitlines()) == 4  # rerun adds no rows
    read = read_data_tables(results)
    assert stat(read, "cased", "train", "stories") == stat(frames, "cased", "train", "stories") == \
        len(load_corpus(cfg).train)
    assert bool(read["stats"]["is_synthetic"].all()) and again["stats"]["fingerprint"].nunique() == 2
    hist = read["lengths"]
    assert hist.groupby(["view", "split"])["stories"].sum().loc[("cased", "val")] == len(load_corpus(cfg).val)
    chars = read["chars"]
    assert chars["count"].sum() == stat(read, "cased", "train", "characters")
    assert chars.loc[chars["char"] == " ", "shown"].item() == "␣"
    assert chars.loc[chars["char"] == "L", "class"].item() == "upper-case letter"


def test_tinystories_source_reads_both_splits_and_streams_when_capped(monkeypatch):
    import datasets

    from starmind_lib.data import sources
    calls = []

    def fake_load_dataset(name, streaming=False):
        calls.append((name, streaming))
        train = ({"text": f"Story {i}: Lily’s kite flew." if i != 2 else "  "} for i in range(1000))
        return {"train": train, "validation": iter([{"text": "Tom ran home.\n"}])}

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(sources, "_hub_reachable", lambda timeout=5.0: True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    c = load_corpus(DataConfig.from_params({"source": "tinystories", "max_chars": 100}))
    assert calls == [("roneneldan/TinyStories", True)]
    assert c.train == ["Story 0: Lily’s kite flew.", "Story 1: Lily’s kite flew.", "Story 3: Lily’s kite flew."]
    assert c.val == ["Tom ran home."] and c.source_label == "TinyStories (Hugging Face)"


def test_fingerprint_does_not_depend_on_where_the_files_are(tmp_path):
    a, b = _write_dir(tmp_path / "a"), _write_dir(tmp_path / "b")
    fa = load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(a)})).fingerprint
    fb = load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(b)})).fingerprint
    assert fa == fb
    (b / "b.jsonl").write_text(json.dumps({"text": "A different story."}) + "\n")
    assert load_corpus(DataConfig.from_params({"source": "local", "data_dir": str(b)})).fingerprint != fa


def test_passes_over_the_training_split_and_the_chapters_bpe_clause():
    from starmind_lib.chapters.ch01_data import bpe_passes_clause, passes
    assert passes(2_000_000, 5_000_000) == pytest.approx(0.4)
    assert passes(2_000_000, 5_000_000, chars_per_token=4.0) == pytest.approx(1.6)
    with pytest.raises(ValueError):
        passes(10, 0)
    clause = bpe_passes_clause(2_000_000, 5_000_000, (4096, 4.0531))
    assert clause == "1.6 for a BPE model of 4,096 tokens, the largest vocabulary of chapter 02 (4.05 characters per token)"
    assert not any(c.isdigit() for c in bpe_passes_clause(2_000_000, 5_000_000, None).replace("02", ""))


def test_largest_bpe_reads_the_lowercased_tokenizers_of_chapter_02(tmp_path):
    from starmind_lib.chapters.ch01_data import largest_bpe
    assert largest_bpe(tmp_path / "nothing") is None       # before chapter 02 has run
    vocab, cpt = largest_bpe(REPO_ROOT / "data" / "results")
    t = pd.read_json(REPO_ROOT / "data" / "results" / "tokenizers" / "tokenizers.jsonl", lines=True)
    lc = t[(t["kind"] == "bpe") & t["lowercase"]]
    assert vocab == lc["vocab_size"].max() and vocab > 258
    assert cpt == pytest.approx(lc[lc["vocab_size"] == vocab]["chars_per_token"].iloc[-1])


def test_study_token_budgets_are_chapter_4bs_parameters():
    import jupytext
    from starmind_lib.book.params import parameters_cell_defaults
    from starmind_lib.chapters.ch01_data import study_token_budgets
    path = REPO_ROOT / "notebooks" / "04b_study_v2.py"
    defaults = parameters_cell_defaults(jupytext.read(path), path)
    assert study_token_budgets("report") == (defaults["base_tokens"], defaults["long_tokens"])
    assert study_token_budgets("smoke")[0] == 2048            # the smoke profile's own budget


def test_chapter_01_tables_use_the_readers_words():
    from starmind_lib.chapters.ch01_data import chars_covering, shards_table, stats_table
    shards = pd.DataFrame({"name": ["a.jsonl", "b.jsonl"], "split": ["train", "train"], "stories": [3, 2],
                           "chars": [30, 20], "lowercase_only": [False, True], "used_cased": [True, False],
                           "used_lowercased": [True, True], "git_commit": ["abc", "abc"], "machine": ["m", "m"]})
    shown = shards_table({"shards": shards})
    assert list(shown.columns) == ["file", "split", "stories", "characters", "lowercase only", "in the cased view",
                                   "in the lowercased view"]          # no snake_case, no provenance columns
    stats = pd.DataFrame([{"view": "cased", "split": "train", "stories": 1, "characters": 9, "words": 2,
                           "distinct_characters": 5, "median_story_chars": 9, "p90_story_chars": 9,
                           "max_story_chars": 9, "mojibake_repaired_stories": 0, "fingerprint": "f"}])
    assert not any("_" in c for c in stats_table({"stats": stats}).columns)
    chars = pd.DataFrame({"rank": [1, 2, 3], "cumulative_share": [0.6, 0.9995, 1.0]})
    assert chars_covering(chars, 0.999) == 2 and chars_covering(chars, 0.5) == 1
