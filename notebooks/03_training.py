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
# # Training and bits per character
#
# The earlier write-up counted architectures but never trained its study models, so it could not
# say how *good* any of them was. Here every model is trained for real (`starmind_lib.training.train`):
# AdamW with a linear warm-up and a cosine decay, gradient clipping, a fixed seed (on a CPU the
# same configuration gives a byte-identical checkpoint), and an evaluation on held-out stories at
# regular steps (every {glue:text}`train_eval_every` steps for the two models of this chapter).
#
# Quality is measured in **bits per character** (bpc): the model's total validation loss in nats,
# divided by ln 2 and by the number of characters the validation targets decode to. Nats per
# *token* would favour big vocabularies (a BPE token covers several characters); per character,
# a character model and a BPE model compare fairly. The floor to beat is the **unigram
# baseline**: a model that knows how often each character occurs in the training stories, but
# nothing about context.
#
# Every bits-per-character figure this book states is scored on the **whole validation split**: every
# story whole, from its first character, with a sliding window, on the same text for every tokenizer,
# and given with a 95 % bootstrap interval over stories (`starmind_lib.training.evaluation`). The
# learning curves alone use a fast score on the first {glue:text}`train_eval_tokens` validation tokens,
# and say so on their axis: that prefix is easier than the whole split (chapter 4b measures by how much).
#
# This chapter trains two reference models, one of about ten thousand and one of about a hundred
# thousand parameters, and follows their validation bpc as they learn.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
tokens = 2_000_000
seq_len = 64
batch_size = 32
lr = 3e-3
eval_every = 50
eval_tokens = 32768
device = "auto"
reference_models = {
    "ref-10k": {"dim": 20, "n_layers": 2, "n_heads": 1, "ffn_hidden": 80},
    "ref-100k": {"dim": 64, "n_layers": 2, "n_heads": 1, "ffn_hidden": 256},
}


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("03_training", globals())

# %% tags=["remove-stderr"]
import torch
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.analysis.seeds import load_study
from starmind_lib.book.figures import no_figure, show, table
from starmind_lib.chapters.ch03_training import (curve_chart, reference_runs, seed_configs, seed_curve_chart,
                                                 seed_curves, seed_final_table, seed_words)
from starmind_lib.chapters.ch04_architecture import (best_samples_markdown, chapter_table, read_study_table,
                                                     seed_values)
from starmind_lib.numbers import fmt_num

torch.set_num_threads(1)
common = {"tokens": tokens, "seq_len": seq_len, "batch_size": batch_size, "lr": lr, "eval_every": eval_every,
          "eval_tokens": eval_tokens, "seed": seed, "device": device, "tokenizer": "char", "vocab_size": 64}
runs, curves = reference_runs(reference_models, common, results_dir, runs_dir, recompute, data_source, data_dir,
                              profile=profile)
synthetic = bool(runs.is_synthetic.any())
unigram = float(runs.unigram_bpc.iloc[0])
glue("train_unigram_bpc", f"{unigram:.2f}", display=False)
for _, r in runs.iterrows():
    tag = r["name"].replace("-", "_")
    glue(f"train_{tag}_params", f"{int(r.n_params):,}", display=False)
    glue(f"train_{tag}_bpc", f"{r.bpc:.2f}", display=False)
    glue(f"train_{tag}_ci", f"{r.bpc_ci_low:.2f} to {r.bpc_ci_high:.2f}", display=False)
    glue(f"train_{tag}_prefix_bpc", f"{r.prefix_bpc:.2f}", display=False)
    glue(f"train_{tag}_tokens_per_s", f"{r.tokens_per_s:,.0f}", display=False)
glue("train_tokens", f"{int(runs.tokens_trained.iloc[0]):,}", display=False)
config = runs.config.iloc[0]   # the training settings, shared by both runs (only their shapes differ)
glue("train_eval_every", f"{config['eval_every']:,}", display=False)
glue("train_eval_tokens", f"{config['eval_tokens']:,}", display=False)
glue("train_vocab", f"{config['vocab_size']:,}", display=False)
glue("train_seq_len", f"{config['seq_len']:,}", display=False)
glue("train_lr", fmt_num(config["lr"]), display=False)
glue("train_machine", ", ".join(sorted(set(runs.machine.astype(str)))), display=False)
how = "trained in this run" if recompute else f"read from the committed tables in `{results_dir}`"
display(Markdown(f"Results {how}, computed from **{runs.data_source.iloc[0]}** stories."
                 + (" **Synthetic data: these numbers test the code, not the study.**" if synthetic else "")))

# %% [markdown]
# ## Learning curves
#
# Both reference models train on {glue:text}`train_tokens` tokens (character tokenizer,
# {glue:text}`train_vocab` symbols, windows of {glue:text}`train_seq_len` characters) at a learning
# rate of {glue:text}`train_lr`. The grey line is the unigram baseline,
# {glue:text}`train_unigram_bpc` bits per character: every point below it is context the model
# has learned to use.

# %%
show(curve_chart(curves, unigram), alt_text="validation bits per character against training tokens")

# %% [markdown]
# On the whole validation split, the ten-thousand-parameter model ({glue:text}`train_ref_10k_params`
# parameters) ends at {glue:text}`train_ref_10k_bpc` bits per character (95 % interval
# {glue:text}`train_ref_10k_ci`; its curve's last prefix point reads {glue:text}`train_ref_10k_prefix_bpc`),
# the hundred-thousand-parameter one ({glue:text}`train_ref_100k_params` parameters) at
# {glue:text}`train_ref_100k_bpc` ({glue:text}`train_ref_100k_ci`; prefix
# {glue:text}`train_ref_100k_prefix_bpc`).
# They trained at {glue:text}`train_ref_10k_tokens_per_s` and
# {glue:text}`train_ref_100k_tokens_per_s` tokens per second on {glue:text}`train_machine` (the machine
# recorded with the runs).

# %%
labels = {"name": "model", "n_params": "parameters", "tokens_trained": "training tokens", "bpc": "bpc",
          "bpc_ci_low": "bpc, 95 % low", "bpc_ci_high": "bpc, 95 % high", "prefix_bpc": "bpc, curve's prefix",
          "unigram_bpc": "unigram baseline bpc", "tokens_per_s": "training tokens/s", "machine": "machine"}
table(runs[list(labels)].rename(columns=labels),
      caption="Reference runs: whole-split bits per character with its 95 % story interval, and the learning "
              "curve's last prefix score")

# %% [markdown]
# ## The same model, different seeds
#
# A training run depends on its seed: the initial weights and the order of the training windows.
# Study v2 (chapter 4b) trains every configuration of the architecture study with
# {glue:text}`train_n_seeds` seeds at its tuned learning rate. Here are the character models nearest ten
# and a hundred thousand parameters: each seed's learning curve, then each seed's whole-split score.
# Seed to seed, the final bits per character of one configuration vary by
# {glue:text}`train_seed_spread`.
#
# So the book never judges two models by one run each. It compares the means of their seeds, with a
# 95 % Welch interval for the difference of the two means (built from each model's spread over its
# seeds, with Student's t at the Welch degrees of freedom; `starmind_lib.analysis.seeds`). Where that
# interval holds zero, the book says "no measurable difference"; where it does not, the difference
# "exceeds seed noise". A model with a single seed gives no spread to compare with, and the book
# says "one seed: not tested".

# %%
study_runs = load_study(results_dir)
picked = seed_configs(study_runs)
finals = seed_final_table(study_runs, picked) if picked else None
for name, value in seed_words(study_runs, finals).items():
    glue(name, value, display=False)
if picked:
    display(show(seed_curve_chart(seed_curves(study_runs, picked)),
                 alt_text="validation-prefix bits per character against training tokens, one line per seed"))
    display(table(finals.rename(columns={"name": "configuration", "n_params": "parameters", "lr": "learning rate",
                                         "bpc_ci_low": "bpc, 95 % low", "bpc_ci_high": "bpc, 95 % high",
                                         "prefix_bpc": "bpc, curve's prefix"}),
                  caption="Each seed's whole-split score (Study v2 base grid, tuned rate)"))
else:
    glue("train_seed_spread", "an amount not measured yet (no configuration of these sizes has two finished seeds)",
         display=False)
    display(no_figure("Study v2 has no configuration with two finished seeds yet"))

# %% [markdown]
# ## What the models write
#
# Each run ends with text from fixed prompts: greedy (always the most likely next character) and
# sampled at temperature {glue:text}`train_temperature`. The stories are lowercased, so the prompts are
# too.

# %%
modes = {s["mode"] for r in runs.itertuples() for s in r.samples} - {"greedy"}
glue("train_temperature", ", ".join(sorted(m.removeprefix("T=") for m in modes)), display=False)
for _, r in runs.iterrows():
    lines = [f"**{r['name']}** ({int(r.n_params):,} parameters, {r.bpc:.2f} bpc)", ""]
    for s in r.samples:
        text = s["text"].replace("\n", " ⏎ ")
        mode = s["mode"].replace("T=", "temperature ")
        lines.append(f"- *{mode}*: `{text}`")
    display(Markdown("\n".join(lines)))

# %% [markdown]
# ## The best models of the study
#
# Chapter 04 trains every variant of the architecture study on the same stories, for
# {glue:text}`train_study_tokens` tokens each, but the way Study v2 does (chapter 4b), not the way this
# chapter trained its two models: {glue:text}`train_n_seeds` seeds per configuration, at the learning
# rate tuned for its size, where the two models above have a single seed and a rate of
# {glue:text}`train_lr`.
# Every score there is {glue:text}`train_study_source`. Here are the best of the study near ten
# thousand and near a hundred thousand parameters (each with the range it was chosen from), and what
# they write from "once upon a time" (greedy, then sampled at temperature
# {glue:text}`train_temperature`).

# %%
study = read_study_table(results_dir)
if study is None:
    glue("train_study_tokens", "a number of", display=False)
    glue("train_study_source", "not there yet", display=False)
    display(Markdown("*The study's table is not there yet: chapter 04 (the architecture study) trains it.*"))
else:
    shown, source = chapter_table(study, study_runs)
    glue("train_study_tokens", ", ".join(f"{int(t):,}" for t in sorted(set(shown.tokens_trained))), display=False)
    glue("train_study_source", source, display=False)
    display(Markdown(best_samples_markdown(shown, values=seed_values(study_runs))))
