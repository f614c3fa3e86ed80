# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The data: TinyStories
#
# Every model in this study learns from **TinyStories** (Ronen Eldan and Yuanzhi Li,
# *TinyStories: How Small Can Language Models Be and Still Speak Coherent English?*, 2023,
# arXiv:2305.07759; Hugging Face `roneneldan/TinyStories`), short stories in the vocabulary of a
# three-to-four-year-old, written by GPT-3.5 and GPT-4. The dataset is licensed under the
# Community Data License Agreement, Sharing, version 1.0 (CDLA-Sharing-1.0); anything derived
# from it and shared keeps that licence and the attribution.
#
# This chapter loads the stories the way every later stage does (`starmind_lib.data`), and
# measures them: how many, how long, which characters. The choices made here (case, the
# validation split, the repair of broken characters) fix what "bits per character" means in
# the rest of the book.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
lowercase_shards = "auto"
fix_mojibake = True
val_fraction = 0.1
max_chars = 0
max_val_chars = 0
n_synthetic_stories = 2000


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("01_data", globals())

# %% tags=["remove-stderr"]
import altair as alt
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.data import DataConfig, data_source_note, resolve_data_source
from starmind_lib.chapters.ch01_data import (FULL_TRAIN_STORIES, COVER_SHARE, bpe_passes_clause, chars_covering,
                                             data_tables, largest_bpe, passes, shards_table, stat, stats_table,
                                             study_token_budgets)
from starmind_lib.numbers import fmt_num
from starmind_lib.book.figures import show, table

source, resolved_dir = resolve_data_source(data_source, data_dir)
cfg = DataConfig.from_params({"source": source, "data_dir": resolved_dir, "lowercase_shards": lowercase_shards,
                              "fix_mojibake": fix_mojibake, "val_fraction": val_fraction, "max_chars": max_chars,
                              "max_val_chars": max_val_chars, "n_synthetic_stories": n_synthetic_stories,
                              "seed": seed})
frames = data_tables(cfg, results_dir, recompute, cache_dir=runs_dir, profile=profile)
stats = frames["stats"]
synthetic = bool(stats["is_synthetic"].any())
how = "recomputed in this run" if recompute else f"read from the committed tables in `{results_dir}/data`"
display(Markdown(f"**Source of this build:** {stats['source_label'].iloc[0]}, {how}. "
                 + (data_source_note(data_source, data_dir) if recompute else "")))
if synthetic:
    display(Markdown("> **Warning: synthetic data.** These numbers come from generated stories (the `smoke` "
                     "profile): they show the pipeline works, not what TinyStories looks like."))

# %% [markdown]
# ## Where the stories come from
#
# With network access the stories come from Hugging Face (`datasets.load_dataset`, cached).
# Without it, the study reads a local directory of `.jsonl`, `.txt` or `.parquet` files
# (`make book DATA_DIR=...`). The published study uses a local **sample** of TinyStories:
# prefixes of the V1 and V2 training splits and of the V1 validation split, recovered from
# public copies (provenance in the sample's `SOURCE.md`). It is small next to the full dataset:
# {glue:text}`train_stories_lc:,d` training stories against {glue:text}`data_full_train_stories` in
# the full training split, {glue:text}`train_chars_lc:,d` characters once lowercased. The study's
# token budgets, not the size of the sample, decide how often a model sees a story. A model of
# chapter 04 trains on a budget of {glue:text}`data_study_tokens` tokens:
# {glue:text}`data_passes_char` passes over the lowercased training characters for a character
# model, {glue:text}`data_passes_bpe`. Only the long tier of chapter 4b, {glue:text}`data_long_tokens`
# tokens, goes through every story several times ({glue:text}`data_passes_long` passes for a
# character model, more for a BPE one).
#
# The files, and which of the two views of the corpus (cased, lowercased) uses each:

# %%
base_tokens, long_tokens = study_token_budgets(profile)
train_chars_lc = int(stat(frames, "lowercased", "train", "characters"))
glue("data_full_train_stories", f"about {FULL_TRAIN_STORIES / 1e6:.1f} million", display=False)
glue("data_study_tokens", f"{base_tokens:,}", display=False)
glue("data_long_tokens", f"{long_tokens:,}", display=False)
glue("data_passes_char", fmt_num(passes(base_tokens, train_chars_lc), 2), display=False)
glue("data_passes_bpe", bpe_passes_clause(base_tokens, train_chars_lc, largest_bpe(results_dir)), display=False)
glue("data_passes_long", fmt_num(passes(long_tokens, train_chars_lc), 2), display=False)
table(shards_table(frames),
      caption="Source files (\"lowercase only\": not one capital letter anywhere in the file)")

# %% [markdown]
# ## The lowercase shard
#
# One training shard of the local sample (`train-00001.jsonl`) was lowercased by whoever
# exported it; the capitals cannot be restored. Mixing it into a cased corpus would teach a
# cased model that sentences sometimes start in lower case. So the data stage detects files
# without a single capital letter and, by default (`lowercase_shards="auto"`), **drops them
# from the cased corpus and keeps them in the lowercased one**, where nothing is lost. The
# cased corpus therefore has {glue:text}`train_chars_cased:,d` training characters and the
# lowercased one {glue:text}`train_chars_lc:,d`; the validation set is the same
# {glue:text}`val_stories:,d` stories in both (validation files are the split when the source
# has them; otherwise a story goes to validation by the SHA-1 of its text, the same for both
# views).

# %%
for view, tag in (("cased", "cased"), ("lowercased", "lc")):
    glue(f"train_chars_{tag}", int(stat(frames, view, "train", "characters")), display=False)
    glue(f"train_stories_{tag}", int(stat(frames, view, "train", "stories")), display=False)
    glue(f"distinct_chars_{tag}", int(stat(frames, view, "train", "distinct_characters")), display=False)
glue("val_stories", int(stat(frames, "cased", "val", "stories")), display=False)
glue("val_chars", int(stat(frames, "cased", "val", "characters")), display=False)
glue("median_story_chars", int(stat(frames, "cased", "train", "median_story_chars")), display=False)
glue("mojibake_stories", int(stats["mojibake_repaired_stories"].sum()), display=False)
table(stats_table(frames), caption="Corpus sizes by view and split", precision=0)

# %% [markdown]
# ## Repairing broken characters
#
# The V1 TinyStories text on Hugging Face contains *mojibake*: UTF-8 punctuation that was
# once decoded as Windows-1252, so that `’` reads `â€™` and `“` reads `â€œ`. Left in, each
# curly quote would cost a character model three tokens of nonsense. The data stage
# (`fix_mojibake`) maps such runs back to bytes and decodes them as UTF-8, only where that
# decode succeeds, so correct text is never touched. Across the views and splits above,
# {glue:text}`mojibake_stories:,d` story texts were changed by the repair.
#
# ## Story lengths
#
# A median training story has {glue:text}`median_story_chars:,d` characters. The model's
# context window (chapter 03) is compared against this: a window much shorter than a story
# means the model never sees how a story it began ends.

# %%
lengths = frames["lengths"]
lengths = lengths[lengths["view"] == "cased"].copy()
lengths["split"] = lengths["split"].map({"train": "training", "val": "validation"})
hist = alt.Chart(lengths).mark_bar().encode(
    x=alt.X("bin_start:Q", bin="binned", title="story length (characters)"),
    x2="bin_end:Q",
    y=alt.Y("stories:Q", title="stories"),
    tooltip=[alt.Tooltip("bin_start:Q", title="from (characters)"), alt.Tooltip("bin_end:Q", title="to (characters)"),
             alt.Tooltip("stories:Q", title="stories")],
).properties(width=250, height=220).facet(column=alt.Column("split:N", title=None)).resolve_scale(y="independent")
show(hist, alt_text="Histogram of story lengths in characters, training and validation")

# %% [markdown]
# ## The character inventory
#
# The cased training text uses {glue:text}`distinct_chars_cased:,d` distinct characters; the
# lowercased one {glue:text}`distinct_chars_lc:,d`. The {glue:text}`chars_999:,d` most
# frequent characters cover {glue:text}`chars_share` of the text, which is why a character-level
# vocabulary of a few dozen symbols (chapter 02) loses almost nothing. The long tail is rare
# punctuation and a few non-ASCII letters.

# %%
chars = frames["chars"]
glue("chars_999", chars_covering(chars, COVER_SHARE), display=False)
glue("chars_share", f"{fmt_num(100 * COVER_SHARE, 3)} %", display=False)
inventory = alt.Chart(chars).mark_bar().encode(
    # one row per character (a column each would need more width than the page has for its label)
    y=alt.Y("shown:N", sort=alt.EncodingSortField("rank"), title="character (by frequency; ␣ space, ↵ newline)",
            scale=alt.Scale(paddingOuter=0.8)),
    # Bars on a log scale need an explicit base below 1 (a log axis has no zero).
    x=alt.X("count:Q", scale=alt.Scale(type="log", domainMin=0.8), title="occurrences (log scale)",
            axis=alt.Axis(orient="top")),
    x2=alt.datum(0.8),
    color=alt.Color("class:N", title="class"),
    tooltip=[alt.Tooltip("shown:N", title="character"), alt.Tooltip("count:Q", title="occurrences"),
             alt.Tooltip("share:Q", format=".4%", title="share of the text"), alt.Tooltip("class:N", title="class")],
).properties(width=520, height=alt.Step(13))
show(inventory, alt_text="Character frequencies of the cased training text, log scale")
