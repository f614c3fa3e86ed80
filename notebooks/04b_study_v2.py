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
# # Study v2: seeds, tuned rates, the whole validation split
#
# The architecture study of chapter 4 trained each variant once (seed 0), at one learning rate
# (3e-3) for every size, and scored it on the first 32,768 validation tokens. That prefix is the
# easiest part of the validation split, and it covers different stories for different tokenizers. Study v2 measures again:
#
# - **the whole validation split**, the same text for every tokenizer: every story whole, from its
#   first character, with a 95 % bootstrap interval over stories;
# - **each distinct configuration once per seed**, three seeds (initialisation and data order);
# - **a learning rate tuned per size bucket**, from a sweep of seven rates (1e-3 to 5e-2);
# - **a long tier** of 20 M tokens for the models the book recommends, with early stopping on
#   stories held out of training.
#
# This page shows what has been trained so far; every number on it comes from the study's table
# (`data/results/sweep/study_v2`), one row per training run.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
grid = "full"
tiers = ["lr", "base", "untuned", "long", "context"]
seeds = [0, 1, 2]
lr_grid = [1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2]
base_tokens = 2_000_000
long_tokens = 20_000_000
seq_len = 64
batch_size = 32
eval_every = 250
workers = 2
device = "auto"

# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("04b_study_v2", globals())

# %% tags=["remove-stderr"]
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.analysis.tables import load_variants
from starmind_lib.book.figures import no_figure, show, table
from starmind_lib.chapters.ch04b_study_v2 import (context_control_table, context_control_text, context_finding,
                                                  context_table, effects_table, same_steps, lr_chart, prefix_vs_whole, progress_table, rates_table, seed_table, study_v2_table,
                                                  targets_table, tuning_moves, moved_beyond_noise, long_tier_table,
                                                  long_rank_correlation, long_curves_chart, long_tier_status, long_tier_plan,
                                                  tier_complete, train_chars_total)
from starmind_lib.numbers import fmt_num, plural

params = {"grid": grid, "tiers": tiers, "seeds": seeds, "lr_grid": lr_grid, "base_tokens": base_tokens,
          "long_tokens": long_tokens, "seq_len": seq_len, "batch_size": batch_size, "eval_every": eval_every,
          "workers": workers, "device": device}
runs = study_v2_table(results_dir, runs_dir, recompute, params, data_source, data_dir, profile=profile)
prog = progress_table(runs, params)
glue("v2_n_runs", plural(len(runs), "training run"), display=False)
glue("v2_machines", ", ".join(sorted(set(runs.machine))) if len(runs) else "none yet", display=False)
if len(runs):
    r0 = runs.iloc[0]
    glue("v2_eval_chars", fmt_num(int(r0.eval_chars)), display=False)
    glue("v2_eval_stories", fmt_num(int(r0.eval_stories)), display=False)
else:
    glue("v2_eval_chars", "n/a", display=False)
    glue("v2_eval_stories", "n/a", display=False)

# %% [markdown]
# ## How far the study has got
#
# The table holds {glue:text}`v2_n_runs`, trained on: {glue:text}`v2_machines`. Each tier starts when
# the one it depends on is complete (the base grid needs the tuned rates); a run that is
# interrupted simply reruns, and a finished one is never repeated. Every whole-split bpc below is
# scored on {glue:text}`v2_eval_chars` characters in {glue:text}`v2_eval_stories` stories.

# %%
table(prog, caption="Study v2 progress: training runs per tier")

# %% [markdown]
# ## What the old prefix hid
#
# The learning-rate sweep's runs at 3e-3 and seed 0 repeat chapter 4's recipe exactly (same data,
# seed, schedule and code path; on one machine the two code paths give identical numbers, a test
# checks it). Chapter 4's table was trained on another machine, whose float kernels round
# differently, so its prefix score (second column) and this run's score on the same prefix (third)
# differ by {glue:text}`v2_machine_diff_max` bpc at most: that is the size of machine noise. The
# fourth column is the same model on the whole validation split.

# %%
try:
    v1 = load_variants(results_dir, "04b")
except (FileNotFoundError, KeyError, ValueError):   # chapter 4's table is absent in this build
    v1 = None
pw = prefix_vs_whole(runs, v1)
if len(pw):
    glue("v2_prefix_gap_median", fmt_num(float(pw["whole − prefix"].median()), 2), display=False)
    glue("v2_machine_diff_max", fmt_num(float((pw["this run, same prefix"]
                                              - pw["v1 table (first 32,768 val tokens)"]).abs().max()), 2),
         display=False)
    display(table(pw, caption="Same training run: chapter 4's prefix score against the whole split"))
else:
    glue("v2_prefix_gap_median", "n/a", display=False)
    glue("v2_machine_diff_max", "n/a", display=False)
    display(no_figure("no learning-rate-sweep run at 3e-3 has finished yet"))

# %% [markdown]
# Scored on the whole split, these models are worse by a median of
# {glue:text}`v2_prefix_gap_median` bits per character than the prefix said.
#
# ## The learning-rate sweep
#
# Seven peak rates (1e-3 to 5e-2), two representatives (a character and a BPE model) per size bucket, 2 M tokens.
# Error bars are the 95 % story bootstrap intervals. The rate with the lowest mean over a bucket's
# representatives is the one the base grid uses for every configuration in that bucket. The 300k
# bucket (200K to 600K parameters) was split from the 100k one after the 100k bucket's rate proved too
# high for its largest models; the runs trained before the split stay in the table, labelled
# superseded in the progress table, and are never averaged with the base grid.

# %%
if len(runs) and (runs.tier == "lr").any():
    display(show(lr_chart(runs), alt_text="whole-split bits per character against the learning rate, "
                                          "per representative"))
else:
    display(no_figure("the learning-rate sweep has no finished run yet"))

# %%
table(rates_table(runs, grid), caption="Tuned rate per size bucket (blank: the bucket's sweep is not complete; "
      "'at the grid's edge': the best rate is the sweep's highest or lowest, so the optimum may lie beyond it)")

# %% [markdown]
# ## How much context each tokenizer sees
#
# A 64-token context covers a different amount of text for each tokenizer: a character model sees
# 64 characters, a BPE model several times more. The context-control tier trains a character model
# with as many characters of context as BPE-1024 sees, and a BPE-1024 model with 64 characters'
# worth of tokens. Each control trains on the same number of tokens as its model at 64 tokens, twice:
# in batches of the same **tokens** per optimizer step, so it takes the same number of steps and only the
# context differs; and in batches of the same 32 **sequences**, so a longer context takes fewer, larger
# steps and a shorter one more. Both use the rate tuned for 64 tokens.

# %%
display(table(context_table(None, runs, seq_len), caption="Characters covered by a 64-token context (validation split)"))
ctl = context_control_table(runs, seq_len)
glue("v2_context_text", context_control_text(ctl[~same_steps(ctl)] if len(ctl) else ctl, seq_len), display=False)
glue("v2_context_finding", context_finding(ctl, seq_len), display=False)

# %% [markdown]
# {glue:text}`v2_context_finding` The table below gives both runs of each control. The runs in batches
# of the same 32 sequences measure the context together with the change of steps: {glue:text}`v2_context_text`

# %%
if len(ctl):
    display(table(ctl, caption="Context control: the same model with the context of the other tokenizer, mean over "
                  "seeds (seeds: at 64 tokens / control); the verdict compares the two with a Welch interval from the seeds"))

# %% [markdown]
# ## Seed noise
#
# Configurations with at least two finished seeds: the mean over seeds, its standard deviation, and
# the 95 % interval of the mean (Student t); the last column is the story-bootstrap half-width for
# one run, for comparison. A comparison in this book counts as a difference only when it exceeds
# the seed noise (a Welch interval from the seeds); otherwise it says "no measurable difference".

# %%
st = seed_table(runs)
if len(st):
    display(table(st, caption="Base grid: bpc over seeds (whole validation split)", max_rows=30))
    eff = effects_table(runs, grid)
    if len(eff):
        display(table(eff, caption="Each comparison's best variant against its runner-up, with seed noise",
                      max_rows=40))
else:
    display(no_figure("no configuration has two finished seeds of the base grid yet"))

# %% [markdown]
# ## What tuning the rate changes
#
# Each comparison of chapter 4 (one axis at a time, or one budget) trained at the old single rate
# (3e-3, seed 0) and at its bucket's tuned rate (mean over seeds): its winner at each, and the rank
# correlation of its variants between the two. A comparison whose winner changes, or whose ranks
# correlate weakly, drew its chapter-4 conclusion from the rate rather than from the architecture.

# %%
moves = tuning_moves(runs, grid)
glue("v2_n_compared", f"{fmt_num(len(moves), sig=None)} comparisons trained at both rates"
     + ("" if tier_complete(prog, "untuned") else " so far"), display=False)
glue("v2_n_moved", plural(int((moves["same winner"] == "no").sum()) if len(moves) else 0, "comparison"),
     display=False)
glue("v2_n_moved_real", fmt_num(moved_beyond_noise(moves), sig=None), display=False)
if len(moves):
    display(table(moves, caption="Each comparison's winner at 3e-3 and at the tuned rate", max_rows=12))
else:
    display(no_figure("no comparison has been trained at both the old and the tuned rate yet"))

# %% [markdown]
# Of {glue:text}`v2_n_compared`, {glue:text}`v2_n_moved`
# changed winner; in {glue:text}`v2_n_moved_real` of them the new winner beats the old one by more than
# seed noise at the tuned rate (the others: no measurable difference between the two).

# %% [markdown]
# ## Longer training
#
# The long tier trains every configuration on the base grid's quality-size front (the models that beat
# every smaller one), the best of each size decade, and the best others until there are 20, for 20 M
# tokens, ten times the base budget. The sample repeats (about
# {glue:text}`v2_epochs` passes over the training stories for a character model), so each run scores
# 300 training stories held out of its training (never the validation split) and keeps the
# checkpoint where they were best. {glue:text}`v2_long_status` Spearman's rank correlation between
# the 2 M- and 20 M-token results, over these configurations, is {glue:text}`v2_long_rank`.

# %%
long_plan = long_tier_plan(runs, grid, seq_len)
lt = long_tier_table(runs, long_plan)
glue("v2_long_rank", f"{long_rank_correlation(runs):.3f} (over {plural(len(lt), 'configuration')})" if len(lt) >= 3
     else "not measured yet "
     "(fewer than three long-tier configurations)", display=False)
glue("v2_long_status", long_tier_status(lt, len(long_plan)), display=False)
n_train_chars = train_chars_total(results_dir)
glue("v2_epochs", fmt_num(long_tokens / n_train_chars, 2) if n_train_chars else "n/a", display=False)
if len(lt):
    display(show(long_curves_chart(runs), alt_text="bits per character against training tokens, long tier"))
    display(table(lt, caption="Long tier against the base grid: bpc after 2 M and after the long budget"))
else:
    display(no_figure("the long tier has not been trained yet (it starts when the base grid is complete)"))

# %% [markdown]
# ## The targets
#
# Study v2 set itself three targets, each the mean over seeds on the whole validation split: at most
# 1.90 bits per character near ten thousand parameters, 1.35 near a hundred thousand, 1.15 for the
# best model. "Near N" is the best model between N/1.5 and 1.5 N parameters; the model nearest N is
# shown beside it. Where a target is missed, the long tier's curves of bits per character against
# tokens seen say whether more training would reach it. The second table holds the long tier to the
# same targets. A model with fewer than three seeds says which side of a goal it lies on; a target
# counts as met only by the mean of a model with three seeds (which the table then names). Where the 95 %
# interval of that mean holds the goal, the table says the verdict is within seed noise of it.

# %%
tt = targets_table(runs)
if len(tt):
    display(table(tt, caption="Targets against the base grid (tuned rate, 2 M tokens, mean over seeds)"))
else:
    display(no_figure("no base-grid run has finished yet"))
tl = targets_table(runs, tier="long")
if len(tl):
    display(table(tl, caption="The same targets against the long tier (20 M tokens); a model with fewer than "
                              "three seeds is compared, not counted"))
