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
# # The architecture study
#
# The earlier write-up reported "176 architectures tested", from width-1 models to golden-ratio
# layouts, but never trained them, so it could not tell which spends a parameter best. This
# chapter trains every variant of a declarative grid (`starmind_lib.training.grid`) on the same
# stories for the same number of tokens, and measures each in bits per character (chapter 3).
#
# The grid of this build varies one thing at a time around a small default model:
# {glue:text}`arch_axes`. Then, at fixed budgets of {glue:text}`arch_budgets` parameters, it varies
# depth, heads, FFN ratio or vocabulary while solving for the width that
# keeps the budget: *given N parameters, how should they be spent?*

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
grid = "full"
tokens = 2_000_000
seq_len = 64
batch_size = 32
lr = 3e-3
eval_every = 250
eval_tokens = 32768
backend = "process"
workers = 2
device = "auto"


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("04_architecture", globals())

# %% tags=["remove-stderr"]
import math

from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.book.figures import no_figure, show, table
from starmind_lib.numbers import fmt_duration, fmt_num, plural
from starmind_lib.analysis.seeds import compare_values, load_study, verdict_text
from starmind_lib.chapters.ch04_architecture import (V1_SOURCE, axis_chart, best_per_budget, bpc_vs_params_chart,
                                                     budget_chart, best_samples_markdown, budget_comparisons,
                                                     chapter_table, fit_trend, golden_vs_trend, seed_values,
                                                     study_table)
from starmind_lib.training.grid import grid as grid_of
from starmind_lib.training.plan import distinct_configs

sweep_params = {"grid": grid, "tokens": tokens, "seq_len": seq_len, "batch_size": batch_size, "lr": lr,
                "eval_every": eval_every, "eval_tokens": eval_tokens, "seed": seed, "backend": backend,
                "workers": workers, "device": device}
v1 = study_table(results_dir, runs_dir, recompute, sweep_params, data_source, data_dir, profile=profile)
study_runs = load_study(results_dir)
df, bpc_source = chapter_table(v1, study_runs)          # Study v2's base grid when it has runs, else v1
values = seed_values(study_runs)
is_v2 = not bpc_source.startswith(V1_SOURCE)
synthetic = bool(df.is_synthetic.any())
unigram = float(df.unigram_bpc.iloc[0])
trend = fit_trend(df, "char")
ranked = df.drop_duplicates("config_hash").sort_values("bpc") if is_v2 else df.sort_values("bpc")
best = ranked.iloc[0]
n_configs = len({c["config_hash"] for c in distinct_configs(grid_of(grid))
                 if set(c["variant_ids"]) & set(df.variant_id)})
glue("arch_bpc_source", bpc_source, display=False)
glue("arch_n_variants", plural(len(df), "variant"), display=False)
glue("arch_n_configs", plural(n_configs, "distinct configuration"), display=False)
grid_configs = len(distinct_configs(grid_of(grid)))
left_out = grid_configs - n_configs
glue("arch_bars", ((f"{plural(left_out, 'configuration')} of the grid not trained in Study v2 yet "
                    f"{'is' if left_out == 1 else 'are'} left out. " if left_out else "Every configuration of the grid "
                    "is trained. ") + "Vertical bars are 95 % intervals of the mean over seeds (Student t).") if is_v2 else
     "There are no error bars: each variant was trained once, so the seed noise is unknown here; chapter 4b "
     "measures it.", display=False)
glue("arch_tokens", fmt_num(int(df.tokens_trained.median()), sig=None), display=False)
train_wall = float(study_runs[study_runs.tier == "base"].wall_s.sum()) if is_v2 else float(df.wall_s.sum())
glue("arch_total_wall", fmt_duration(train_wall), display=False)
glue("arch_machine", ", ".join(sorted(set(df.machine.astype(str)))), display=False)
glue("arch_unigram_bpc", f"{unigram:.2f}", display=False)
glue("arch_trend_slope", f"{trend['b']:.2f}", display=False)
glue("arch_trend_r2", f"{trend['r2']:.2f}", display=False)
glue("arch_best_id", str(best.variant_id), display=False)
glue("arch_best_bpc", f"{best.bpc:.2f}", display=False)
glue("arch_best_params", f"{int(best.n_params):,}", display=False)
if len(ranked) > 1 and is_v2 and best.config_hash in values and ranked.iloc[1].config_hash in values:
    cmp_best = compare_values(values[ranked.iloc[1].config_hash], values[best.config_hash])
    best_vs = (f"{fmt_num(-cmp_best['diff'], 2)} bpc better than the runner-up, {ranked.iloc[1].variant_id}: "
               f"{verdict_text(cmp_best)}")
else:
    best_vs = "not compared with the runner-up: one seed, so there is no measure of seed noise"
glue("arch_best_vs_runner_up", best_vs, display=False)
AXES = [("width", "dim", "width"), ("depth", "n_layers", "layers"), ("heads", "n_heads", "heads"),
        ("ffn_ratio", "ffn_ratio", "FFN ratio"), ("vocab", "vocab_size", "vocabulary")]
ranges = []
for axis, col, name in AXES:
    sel = df[df.axis == axis]
    vals = (sel.ffn_hidden / sel.dim) if col == "ffn_ratio" else sel.get(col, sel.index.to_series())
    if len(sel):
        ranges.append(f"{name} ({fmt_num(vals.min())} to {fmt_num(vals.max())})")
ranges += [name for axis, name in (("activation", "activation"), ("position", "positions"), ("tying", "tying"),
                                   ("golden", "the write-up's Fibonacci / golden-ratio allocations"))
           if (df.axis == axis).any()]
glue("arch_axes", ", ".join(ranges) or "no single-factor axis", display=False)
budgets = sorted(df["budget"].dropna().unique()) if "budget" in df else []
glue("arch_budgets", f"{fmt_num(budgets[0])} to {fmt_num(budgets[-1])}" if len(budgets) else "no", display=False)
worse_than_unigram = df[df.bpc >= unigram]
glue("arch_n_worse_than_unigram", plural(len(worse_than_unigram), "variant") +
     (" does" if len(worse_than_unigram) == 1 else " do"), display=False)
how = (f"trained in this run (profile `{profile}`, tables in `{results_dir}`)" if recompute
       else f"read from the committed tables in `{results_dir}`")
display(Markdown(f"Results {how}, computed from **{df.data_source.iloc[0]}** stories."
                 + (" **Synthetic data: these numbers test the code, not the study.**" if synthetic else "")))

# %% [markdown]
# ## Quality against size
#
# Every bits-per-character figure on this page is {glue:text}`arch_bpc_source`. Chapter 4b explains
# the measurement (the whole validation split, the learning-rate sweep and the seeds) and shows how
# far the first, single-seed prefix scores were off. The table holds {glue:text}`arch_n_variants`,
# {glue:text}`arch_n_configs` (several comparisons share a configuration, which is trained once per
# seed), each trained on {glue:text}`arch_tokens` tokens ({glue:text}`arch_total_wall` of training in
# all, on {glue:text}`arch_machine`). {glue:text}`arch_bars`
#
# The dashed line is the least-squares trend of the character models, bpc = a + b log10(params),
# with slope {glue:text}`arch_trend_slope` bits per character per tenfold increase in parameters
# (R² = {glue:text}`arch_trend_r2`); the grey line is the unigram baseline
# ({glue:text}`arch_unigram_bpc` bpc). {glue:text}`arch_n_worse_than_unigram` not even
# beat the unigram baseline.
#
# The best model overall is {glue:text}`arch_best_id`, {glue:text}`arch_best_params` parameters,
# {glue:text}`arch_best_bpc` bpc: {glue:text}`arch_best_vs_runner_up`. Note that a BPE model trained
# on a fixed number of *tokens* has seen several times more *text* than a character model, one reason
# the BPE points sit lower.

# %%
show(bpc_vs_params_chart(df, trend, unigram), alt_text="bits per character against parameters, log scale")

# %% [markdown]
# ## One hyperparameter at a time
#
# Around the default model, each panel changes one thing. Here the parameter count moves with the
# hyperparameter, so these curves mix "a better shape" with "more parameters"; the fixed-budget
# comparisons below separate the two.

# %%
import altair as alt

df_plot = df.assign(ffn_ratio=df.ffn_hidden / df.dim)
panels = [axis_chart(df_plot, "width", "dim", "width (dim)"), axis_chart(df_plot, "depth", "n_layers", "layers"),
          axis_chart(df_plot, "heads", "n_heads", "heads"), axis_chart(df_plot, "ffn_ratio", "ffn_ratio", "FFN ratio"),
          axis_chart(df_plot, "vocab", "vocab_size", "vocabulary size")]
panels = [p for p, a in zip(panels, ["width", "depth", "heads", "ffn_ratio", "vocab"]) if (df.axis == a).any()]
if panels:
    rows = [alt.hconcat(*panels[i:i + 2]) for i in range(0, len(panels), 2)]
    display(show(alt.vconcat(*rows), alt_text="bits per character against each hyperparameter"))
else:
    display(no_figure("this grid varies no single hyperparameter around the default model"))

# %% [markdown]
# ## At a fixed parameter budget
#
# Each panel is one comparison; each line one option, across budgets from 1K to 300K
# parameters (the width is solved so every variant stays within 35% of its budget; options that
# cannot meet a budget, such as a 1024-token vocabulary at 1K parameters, are absent).

# %%
cmp = budget_comparisons(df)
if cmp.empty:
    display(no_figure("this grid has no fixed-budget variants"))
else:
    display(show(budget_chart(cmp), alt_text="bits per character at fixed parameter budgets, per comparison"))
    summary = best_per_budget(cmp, values)
    display(table(summary, caption="The best option at each budget, its margin over the runner-up and whether "
                                   "that margin exceeds seed noise (Welch 95 %), and how much worse the worst is (bpc)"))

# %% [markdown]
# ## Golden ratio and Fibonacci layouts
#
# The write-up proposed Fibonacci widths and golden-ratio FFN sizes. Trained, they
# {glue:text}`arch_golden_text`. The table shows each one's distance from the trend line at its size
# (negative: better than the trend) and its seeds' scores: a configuration whose seeds disagree widely
# has a wide interval, and its mean says little.

# %%
golden, golden_text = golden_vs_trend(df, trend, values)
glue("arch_golden_text", golden_text, display=False)
if len(golden) and "vs_trend" in golden:
    display(table(golden[["variant_id", "dim", "n_layers", "ffn_hidden", "n_params", "bpc", "seeds", "vs_trend"]],
                  caption="Golden-ratio / Fibonacci variants against the character trend line (bpc: mean over "
                          "seeds; seeds: each seed's score)"))

# %% [markdown]
# ## What the best small models write
#
# The best variant with 6,667 to 15,000 parameters (within 1.5x of ten thousand) and with 66,667 to
# 150,000 (within 1.5x of one hundred thousand), from the prompt "once upon a time" (greedy decoding,
# then temperature 0.8).

# %%
display(Markdown(best_samples_markdown(df, values=values)))

# %%
cols = [c for c in ["variant_id", "axis", "dim", "n_layers", "n_heads", "ffn_hidden", "tokenizer_spec", "n_params",
                   "bpc", "bpc_ci_low", "bpc_ci_high", "n_seeds", "lr", "tokens_per_s"] if c in df]
table(df.sort_values("bpc")[cols].rename(columns={"tokens_per_s": "training tokens/s"}),
      caption="Every variant, best first", precision=3, max_rows=10, name="architecture_study")
