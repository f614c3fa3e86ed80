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
# # Tokenizers: characters or byte pairs?
#
# A language model predicts tokens, and on the Pico every token costs twice: once as a row
# of the embedding table (and of the output head, which is tied to it), stored in flash and
# read for every step, and once as a step of generation. A bigger vocabulary packs more
# characters into each token, so fewer steps per sentence, but every model dimension then
# costs one byte per vocabulary entry (int8). This chapter measures that trade-off for the
# two tokenizers of the study:
#
# - **char**: the most frequent characters of the training text plus `<unk>`, BOS and EOS;
# - **BPE**: byte-level byte-pair encoding (Hugging Face `tokenizers`), which can encode any
#   text but needs a token for each of the 256 byte values before its first merge, so its smallest
#   vocabulary (with BOS and EOS) is {glue:text}`bpe_min_vocab`.
#
# Each comes **cased** and **lowercased** (`-lc`); a lowercased tokenizer is trained and
# measured on the lowercased corpus of chapter 01. Quality (bits per character) is the
# subject of chapters 03 and 04; here we measure characters per token, the `<unk>` rate and
# the bytes the vocabulary costs on the device.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
vocab_sizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]
kinds = ["char", "bpe"]
lowercase_options = [False, True]
dims = [16, 32, 64, 128]
lowercase_shards = "auto"
max_chars = 0
max_val_chars = 0
n_synthetic_stories = 2000


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("02_tokenizers", globals())

# %% tags=["remove-stderr"]
import altair as alt
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.data import DataConfig, data_source_note, resolve_data_source
from starmind_lib.book.figures import show, table
from starmind_lib.chapters.ch02_tokenizers import (measured, summary_table, tokenizer_grid, tokenizer_numbers,
                                                     tokenizer_table)
from starmind_lib.devices.emulated import FLASH_BYTES, SRAM_BYTES
from starmind_lib.tokenizers.bpe import MIN_BPE_VOCAB

source, resolved_dir = resolve_data_source(data_source, data_dir)
cfg = DataConfig.from_params({"source": source, "data_dir": resolved_dir, "lowercase_shards": lowercase_shards,
                              "max_chars": max_chars, "max_val_chars": max_val_chars,
                              "n_synthetic_stories": n_synthetic_stories, "seed": seed})
grid = tokenizer_grid(vocab_sizes, kinds, lowercase_options)
df = tokenizer_table(cfg, grid, results_dir, recompute, cache_dir=runs_dir, dims=dims, profile=profile)
how = "recomputed in this run" if recompute else f"read from the committed table `{results_dir}/tokenizers`"
display(Markdown(f"**Source of this build:** {df['source_label'].iloc[0]}, {how}. "
                 + (data_source_note(data_source, data_dir) if recompute else "")))
if bool(df["is_synthetic"].any()):
    display(Markdown("> **Warning: synthetic data.** These tokenizers were trained on generated stories "
                     "(the `smoke` profile): the numbers show the pipeline works, not the study's result."))
df["case"] = df["lowercase"].map({False: "cased", True: "lowercased"})
df["family"] = df["kind"] + " " + df["case"]
# A char request above the number of distinct characters gives the same tokenizer: plot each once.
points = df.drop_duplicates("tokenizer").sort_values(["kind", "lowercase", "vocab_size"])
glue("bpe_min_vocab", MIN_BPE_VOCAB, display=False)

# %% [markdown]
# ## Characters per token
#
# A character tokenizer gives exactly one token per character (an unknown character is one
# `<unk>`). BPE's compression grows with the vocabulary: {glue:text}`bpe_cpt_small:.2f`
# characters per token at {glue:text}`bpe_small:d` tokens, {glue:text}`bpe_cpt_large:.2f` at
# {glue:text}`bpe_large:d` (cased). Lowercased, the BPE of {glue:text}`bpe_large:d` tokens gets
# {glue:text}`bpe_lc_cpt_large:.2f` characters per token (measured on the lowercased corpus,
# whose text differs, so the comparison is approximate).


# %%
# One legend, one colour per line: a separate dash legend draws the same dot for every entry.
points = points.assign(series=points["kind"] + ", " + points["case"])
numbers = tokenizer_numbers(df)
bpe_small, bpe_large = numbers["bpe_small"], numbers["bpe_large"]
for name, value in numbers.items():
    glue(name, value, display=False)
base = alt.Chart(points).encode(
    x=alt.X("vocab_size:Q", scale=alt.Scale(type="log", base=2), title="vocabulary size (tokens, log scale)"),
    color=alt.Color("series:N", title="tokenizer, case"),
    strokeDash=alt.StrokeDash("case:N", legend=None),
    tooltip=["tokenizer", alt.Tooltip("vocab_size:Q", title="vocabulary"),
             alt.Tooltip("chars_per_token:Q", format=".3f", title="characters per token"),
             alt.Tooltip("unk_rate:Q", format=".2%", title="unknown-token share"),
             alt.Tooltip("vocab_bytes:Q", format=",", title="binary vocabulary (bytes)"),
             alt.Tooltip("device_bytes_d64:Q", format=",", title="vocabulary + embedding at dimension 64 (bytes)")],
)
cpt = base.mark_line(point=True).encode(y=alt.Y("chars_per_token:Q", title="characters per token (validation)"))
show(cpt, alt_text="Characters per token against vocabulary size, char and BPE, cased and lowercased")

# %% [markdown]
# ## What the vocabulary costs on the device
#
# Two costs grow with the vocabulary. The binary vocabulary itself (the bytes each token
# prints, read by the device to turn ids into text; format in `starmind_lib.tokenizers.base`)
# is small. The embedding table is not: at int8 it costs one byte per token per model
# dimension, so at dimension 64 the BPE of {glue:text}`bpe_large:d` tokens needs
# {glue:text}`bpe_bytes_large_d64:,d` bytes (vocabulary plus embedding) against
# {glue:text}`char_bytes_d64:,d` for the full cased character set. The Pico has
# {glue:text}`pico_flash` of flash and its RP2040 {glue:text}`pico_ram` of RAM: large vocabularies
# eat the budget the transformer layers need. BPE's merges table, needed only to encode a prompt
# on the device, adds {glue:text}`bpe_merges_large:,d` bytes at {glue:text}`bpe_large:d` tokens.

# %%
full_char = df[(df["kind"] == "char") & (~df["lowercase"])].sort_values("vocab_size").iloc[-1]
glue("char_bytes_d64", int(full_char["device_bytes_d64"]), display=False)
glue("pico_flash", f"{FLASH_BYTES // 2**20} MB", display=False)
glue("pico_ram", f"{SRAM_BYTES // 2**10} KB", display=False)
cost = points.melt(id_vars=["tokenizer", "kind", "case", "vocab_size"],
                   value_vars=["vocab_bytes", "device_bytes_d64"], var_name="what", value_name="bytes")
cost["what"] = cost["what"].map({"vocab_bytes": "binary vocabulary",
                                 "device_bytes_d64": "vocabulary + int8 embedding, dim 64"})
cost["series"] = cost["kind"] + ": " + cost["what"]
cost_chart = alt.Chart(cost).mark_line(point=True).encode(
    x=alt.X("vocab_size:Q", scale=alt.Scale(type="log", base=2), title="vocabulary size (tokens, log scale)"),
    y=alt.Y("bytes:Q", scale=alt.Scale(type="log"), title="bytes on the device (log scale)"),
    color=alt.Color("series:N", title="tokenizer: cost"),
    strokeDash=alt.StrokeDash("what:N", legend=None),
    detail="case:N", tooltip=["tokenizer", alt.Tooltip("what:N", title="cost"),
                             alt.Tooltip("bytes:Q", format=",", title="bytes")],
)
show(cost_chart, alt_text="Device bytes of the vocabulary and of vocabulary plus embedding against vocabulary size")

# %% [markdown]
# How a few of them split the same sentence (`|` between tokens; the BPE pieces start with
# the space that precedes a word):

# %%
char_small = int(min(df.loc[df["kind"] == "char", "requested_vocab_size"]))
shown = df[((df["kind"] == "char") & (df["requested_vocab_size"] == char_small))
           | ((df["kind"] == "bpe") & (~df["lowercase"]) & df["requested_vocab_size"].isin([bpe_small, bpe_large]))]
table(shown.drop_duplicates("tokenizer")[["tokenizer", "example"]], caption="One sentence, tokenized")

# %% [markdown]
# ## Unknown characters
#
# A character vocabulary smaller than the character inventory maps the rest to `<unk>`, and a
# model cannot print what it cannot name. With {glue:text}`char_small:d` tokens
# ({glue:text}`char_small_chars:d` characters) the cased tokenizer turns
# {glue:text}`char_small_unk_pct:.2f`% of validation characters into `<unk>`; lowercasing frees
# the capital letters' slots and brings that to {glue:text}`char_small_lc_unk_pct:.2f`%.
# Byte-level BPE has no `<unk>`: every text encodes.

# %%
glue("char_small", char_small, display=False)
glue("char_small_chars", char_small - 3, display=False)
glue("char_small_unk_pct", 100 * measured(df, "char", char_small, False, "unk_rate"), display=False)
glue("char_small_lc_unk_pct", 100 * measured(df, "char", char_small, True, "unk_rate"), display=False)
table(summary_table(df), caption="Every tokenizer, measured on the validation stories", precision=4)
