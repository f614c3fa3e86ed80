"""The data stage's configuration."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, StageConfig, between, choice

SOURCES = ("tinystories", "local", "synthetic")


@dataclass(frozen=True)
class DataConfig(StageConfig):
    """Where the stories come from and how they are cleaned and split.

    ``lowercase_shards`` decides what happens to files whose text has no upper-case
    letter at all (the local TinyStories sample's ``train-00001.jsonl`` was lowercased
    upstream): ``"auto"`` keeps them when ``lowercase`` is true (nothing is lost) and
    drops them for cased runs (so a cased model never sees a third of its stories
    without capitals); ``"keep"`` / ``"drop"`` force the choice.
    """

    source: str = field(default="tinystories", metadata=choice(*SOURCES))
    data_dir: str = ""
    lowercase: bool = False
    fix_mojibake: bool = True
    lowercase_shards: str = field(default="auto", metadata=choice("auto", "keep", "drop"))
    val_fraction: float = field(default=0.1, metadata=between(0.0, 0.5))
    max_chars: int = field(default=0, metadata=between(0, None))
    max_val_chars: int = field(default=0, metadata=between(0, None))
    n_synthetic_stories: int = field(default=2000, metadata=between(1, 1_000_000))
    seed: int = field(default=0, metadata=between(0, None))

    def validate(self) -> None:
        if self.source == "local":
            if not self.data_dir:
                raise ConfigError("parameter 'data_dir' is required when source='local' "
                                  "(a directory of .txt, .jsonl or .parquet story files)")
            if not Path(self.data_dir).is_dir():
                raise ConfigError(f"parameter 'data_dir' = {self.data_dir!r} is not an existing directory "
                                  "(needed by source='local')")

    def keeps_lowercase_shards(self) -> bool:
        if self.lowercase_shards == "auto":
            return self.lowercase
        return self.lowercase_shards == "keep"
