"""The study's stories: sources, normalisation, a deterministic split, statistics.

See :mod:`.corpus` for the split and caching rules, :mod:`.normalise` for the
mojibake repair, :mod:`.sources` for the accepted file layouts.
"""
from .config import SOURCES, DataConfig
from .corpus import (Corpus, char_class, char_counts, corpus_stats, data_source_note, load_corpus,
                     resolve_data_source, story_in_val, story_lengths)
from .normalise import fix_mojibake, is_lowercase_only, normalise_story
from .sources import DataSourceError, is_validation_name, read_story_file
from .synthetic import synthetic_stories

__all__ = ["SOURCES", "DataConfig", "Corpus", "load_corpus", "corpus_stats", "story_lengths", "char_counts",
           "char_class", "resolve_data_source", "data_source_note", "story_in_val", "fix_mojibake",
           "is_lowercase_only", "normalise_story", "DataSourceError", "is_validation_name", "read_story_file",
           "synthetic_stories"]
