"""StageConfig validation messages, run keys, and profiles (extends, unknown names, cycles)."""
from dataclasses import dataclass, field
from typing import Optional

import pytest

from starmind_lib import profiles
from starmind_lib.config import ConfigError, StageConfig, between, choice
from starmind_lib.data import DataConfig
from starmind_lib.model import ModelConfig


@dataclass(frozen=True)
class Demo(StageConfig):
    name: str = field(default="a", metadata=choice("a", "b"))
    steps: int = field(default=10, metadata=between(1, 100))
    lr: float = field(default=0.1, metadata=between(0.0, 1.0))
    flag: bool = False
    dims: tuple[int, ...] = field(default=(8, 16), metadata=between(1, 64))
    note: Optional[str] = None


@pytest.mark.parametrize("params, message", [
    ({"stepz": 3}, r"unknown parameter\(s\) 'stepz' for Demo; accepted: dims, flag, lr, name, note, steps"),
    ({"steps": "10"}, r"parameter 'steps' must be an integer, got '10'"),
    ({"steps": True}, r"parameter 'steps' must be an integer, got True"),
    ({"steps": 1.5}, r"parameter 'steps' must be an integer, got 1.5"),
    ({"steps": 0}, r"parameter 'steps' must be in \[1, 100\], got 0"),
    ({"lr": 2}, r"parameter 'lr' must be in \[0.0, 1.0\], got 2.0"),
    ({"flag": 1}, r"parameter 'flag' must be true or false, got 1"),
    ({"name": "c"}, r"parameter 'name' must be one of 'a', 'b', got 'c'"),
    ({"dims": 8}, r"parameter 'dims' must be a list of int, got 8"),
    ({"dims": [8, 128]}, r"parameter 'dims' must be in \[1, 64\], got \(8, 128\)"),
    ({"dims": [8, "x"]}, r"parameter 'dims\[1\]' must be an integer, got 'x'"),
])
def test_rejections_name_the_parameter(params, message):
    with pytest.raises(ConfigError, match=message):
        Demo.from_params(params)


def test_accepted_values_are_coerced_and_keyed():
    cfg = Demo.from_params({"lr": 1, "dims": [4, 8], "note": None})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.dims == (4, 8)
    assert cfg.key() == Demo.from_params({"dims": (4, 8), "lr": 1.0}).key()
    assert cfg.key() != cfg.replace(steps=11).key() and cfg.key() != cfg.key("fingerprint")
    assert len(cfg.key()) == 12 and Demo.from_params(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="parameter 'steps' must be in"):
        cfg.replace(steps=1000)


def test_cross_field_checks():
    with pytest.raises(ConfigError, match=r"'n_heads' must divide 'dim': dim=10 is not divisible by n_heads=3"):
        ModelConfig.from_params({"dim": 10, "n_heads": 3})
    with pytest.raises(ConfigError, match=r"'data_dir' is required when source='local'"):
        DataConfig.from_params({"source": "local"})
    with pytest.raises(ConfigError, match=r"parameter 'source' must be one of 'tinystories', 'local', 'synthetic'"):
        DataConfig.from_params({"source": "web"})
    with pytest.raises(ConfigError, match=r"parameter 'val_fraction' must be in \[0.0, 0.5\], got 0.9"):
        DataConfig.from_params({"val_fraction": 0.9})


def test_shipped_profiles_resolve():
    assert set(profiles.available_profiles()) >= {"smoke", "quick", "full", "report"}
    report = profiles.load_profile("report")
    full = profiles.load_profile("full")
    assert report["common"]["recompute"] is False and full["common"]["recompute"] is True
    assert report["common"]["results_dir"] == full["common"]["results_dir"]  # inherited through extends
    assert report["common"]["profile"] == "report"
    smoke = profiles.notebook_params("smoke", "01_data", {"seed": 5})
    assert smoke["data_source"] == "synthetic" and smoke["seed"] == 5 and smoke["profile"] == "smoke"
    for name in ("smoke", "quick", "full", "report"):
        for stem in ("01_data", "02_tokenizers"):
            params = profiles.notebook_params(name, stem)
            DataConfig.from_params({k: v for k, v in params.items()
                                    if k in DataConfig.__dataclass_fields__ and k != "source"})


def test_profile_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    (tmp_path / "base.yaml").write_text("common: {seed: 1, results_dir: r}\nnotebooks: {a: {x: 1, y: 2}}\n")
    (tmp_path / "child.yaml").write_text("extends: base\ncommon: {seed: 2}\nnotebooks: {a: {y: 3}}\n")
    (tmp_path / "loop1.yaml").write_text("extends: loop2\n")
    (tmp_path / "loop2.yaml").write_text("extends: loop1\n")
    (tmp_path / "odd.yaml").write_text("commons: {}\n")
    assert profiles.notebook_params("child", "a") == {"seed": 2, "results_dir": "r", "profile": "child",
                                                      "x": 1, "y": 3}
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'; available: base, child, loop1, loop2, odd"):
        profiles.load_profile("nope")
    with pytest.raises(ConfigError, match=r"profile 'loop1' extends itself"):
        profiles.load_profile("loop1")
    with pytest.raises(ConfigError, match=r"profile 'odd': unknown section\(s\) \['commons'\]"):
        profiles.load_profile("odd")
