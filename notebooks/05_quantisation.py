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
# # Quantisation and the integer-only engine
#
# A Raspberry Pi Pico has 2 MB of flash, 264 KB of RAM and no floating-point unit: a float32
# multiply is a library call of dozens of cycles. Two questions follow for every model of the
# architecture study (chapter 04):
#
# 1. **How many bits do the weights need?** We quantise each trained model after training
#    (post-training quantisation, no retraining) with five weight formats and measure what it
#    costs in validation bits per character (bpc), against the bytes the weights take:
#    float32 (the trained model), float16, int8 with one scale per tensor, int8 with one scale
#    per row (output channel), and int4 with one float16 scale per group of 32 weights.
#    Activations stay float in these five, so they isolate the cost of the weight format.
# 2. **Can the whole forward pass run on integers?** The sixth scheme, `int8_engine`, is the
#    one the device runtimes execute: int8 weights (per row) *and* int8 activations with
#    scales calibrated on training text, int32 accumulators, fixed-point requantisation,
#    integer RMSNorm, softmax from a lookup table, the FFN activation from a 256-entry table,
#    and no intermediate wider than 32 bits. Its reference implementation is
#    `starmind_lib.quant.intengine`; the file format and every rounding rule are specified in
#    `device/FORMAT.md`, which the C and MicroPython runtimes of chapter 06 follow bit for bit.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
schemes = ["float32", "float16", "int8_tensor", "int8_row", "int4_group32", "int8_engine"]
calib_windows = 16
tier = "base"
seeds = [0]
fallback_seeds = [1, 2]       # a configuration whose seed-0 checkpoint was not kept: its seed-1 (or 2) run
max_runs = 0
study_data_dir = ""
long_tier_schemes = ["float32", "int8_engine"]   # chapter 07's long-tier runs, quantised too ([]: not)
residual_headrooms = [1.0, 0.5]   # the trace of the worst costs: residual ranges, times the calibrated maximum
residual_worst = 5                # ... of the runs the engine hurts most
residual_controls = 2             # ... and of runs at the median cost whose checkpoint is kept


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("05_quantisation", globals())

# %%
import json
from pathlib import Path

import altair as alt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.quant import intengine as ie
from starmind_lib.quant.reference import REFERENCE_DIR
from starmind_lib.quant.smd import read_smd
from starmind_lib.numbers import fmt_num
from starmind_lib.book.figures import no_figure, show, table
from starmind_lib.chapters.ch05_quantisation import (coverage_text, failed_runs_text, long_cost_words,
                                                      long_tier_costs, scheme_summary, selected_rows,
                                                      size_trend_text, what_models)
from starmind_lib.numbers import plural
from starmind_lib.quant.stage import QuantConfig, read_quant, run_quant, select_runs
from starmind_lib.quant import residual_scale as rscale
from starmind_lib.chapters.ch05_quantisation import residual_scale_table, residual_scale_words

cfg = QuantConfig.from_params({"schemes": schemes, "calib_windows": calib_windows, "tier": tier, "seeds": seeds,
                               "fallback_seeds": fallback_seeds, "max_runs": max_runs, "study_data_dir": study_data_dir})
if recompute:
    df = run_quant(cfg, results_dir, runs_dir, profile=profile, data_source=data_source, raw_data_dir=data_dir)
    if long_tier_schemes:   # the same seeds, the engine only, no .smd export (the widget's files are exported)
        long_cfg = cfg.replace(tier="long", schemes=long_tier_schemes, export_models=False, max_runs=0)
        df = run_quant(long_cfg, results_dir, runs_dir, profile=profile, data_source=data_source,
                       raw_data_dir=data_dir)
else:
    df = read_quant(results_dir)
# the committed table alone decides the fallback seeds unless this run quantises (the same page on every machine)
planned = select_runs(cfg, results_dir, runs_dir if recompute else None)
quant_table = df                         # every tier's rows (chapter 07 also uses the long tier's)
df = selected_rows(df, planned)          # this configuration's runs (a table may hold others, or older rows)
errors = df[df["error"].fillna("") != ""] if "error" in df else df.iloc[:0]
df = df[df["error"].fillna("") == ""] if "error" in df else df
synthetic = bool(df["is_synthetic"].any())
how = "recomputed in this run" if recompute else f"read from the committed table `{results_dir}/quant/quant.jsonl`"
display(Markdown(f"**Source of this build:** {how}: {coverage_text(df, planned, cfg)}."
                 + (f" {plural(errors['run_key'].nunique(), 'run')} could not be quantised: "
                    + "; ".join(sorted(set(errors['error'])))[:600] if len(errors) else "")))
if synthetic:
    display(Markdown("> **Warning: synthetic data.** These numbers come from tiny models trained on generated "
                     "stories (the `smoke` profile): they show the pipeline works, not what quantisation costs "
                     "the study's models."))

# %% [markdown]
# ## How quality is measured
#
# The models are Study v2's (chapter 04b): {glue:text}`q_what`. Each is scored
# the way the study scores it: on the whole validation split, the same text for every tokenizer
# ({glue:text}`eval_stories:,d` stories, {glue:text}`eval_chars:,d` characters), every story
# whole from its first character, with a 95 % bootstrap interval over stories. The cost of a
# scheme is its bpc minus the float32 bpc of the same model on the same stories; its interval
# is a paired bootstrap (both drawn on the same resampled stories), so what the two share
# cancels and a cost whose interval excludes zero is measurable on this split. It is the cost
# for these weights: one seed per configuration, so how much it varies between seeds is not
# measured here. Activation scales of `int8_engine` are calibrated on
# {glue:text}`calib_windows` windows of *training* text, never on the validation text.

# %%
glue("n_models", int(df["run_key"].nunique()), display=False)
glue("eval_stories", int(df["eval_stories"].median()), display=False)
glue("eval_chars", int(df["eval_chars"].median()), display=False)
glue("calib_windows", int(calib_windows), display=False)
glue("q_what", what_models(df, cfg), display=False)
summary = scheme_summary(df, cfg.schemes)
for _, r in summary.iterrows():
    # costs to two significant figures: the paired intervals resolve 1e-5 bpc, so a cost of 6e-7 is not "0"
    glue(f"median_delta_{r['scheme']}", fmt_num(r["median cost"], sig=2), display=False)
    glue(f"max_delta_{r['scheme']}", fmt_num(r["worst cost"], sig=2), display=False)
    glue(f"measurable_{r['scheme']}", f"{int(r['cost measurable'])} of {int(r['models'])}", display=False)
    glue(f"split_{r['scheme']}", f"{int(r['measurably worse'])} worse, {int(r['measurably better'])} better",
         display=False)
table(summary, caption="Cost of each scheme in bits per character over float32, on the whole validation split "
                       "(median, 90th percentile, worst model; a negative cost is a better score), how many "
                       "models' cost is measurable (its paired 95 % interval excludes zero), worse or better than "
                       "float32, and the median size in bytes (weights and their scales; the integer engine: its "
                       "whole .smd file)", precision=4)

# %% [markdown]
# ## Quality against size
#
# The cost of the median model (its bpc minus float32's; negative means it scored better) is
# {glue:text}`median_delta_float16` bpc in float16,
# {glue:text}`median_delta_int8_tensor` with int8 per tensor,
# {glue:text}`median_delta_int8_row` with int8 per row and
# {glue:text}`median_delta_int4_group32` with int4 in groups of 32. The integer-only
# engine, which also quantises every activation, costs {glue:text}`median_delta_int8_engine`
# bpc for the median model and {glue:text}`max_delta_int8_engine` for the worst one; its cost
# is measurable for {glue:text}`measurable_int8_engine` models (float16:
# {glue:text}`measurable_float16`). Each point below is one model in one scheme; the x axis
# is the bytes its weights need with their scales, except for the integer engine, whose x is its whole
# device file (`.smd`: header, weights, constants and vocabulary).

# %%
plot = df.assign(size_kib=df["bytes"] / 1024)
chart = alt.Chart(plot).mark_point(filled=True, opacity=0.7).encode(
    x=alt.X("size_kib:Q", scale=alt.Scale(type="log"), title="model size (KiB, log scale)"),
    y=alt.Y("bpc_delta:Q", title="bpc − float32 bpc"),
    color=alt.Color("scheme:N", sort=list(cfg.schemes), title="scheme"),
    tooltip=["variant_id", "scheme", "n_params", alt.Tooltip("bpc:Q", format=".4f"),
             alt.Tooltip("bpc_delta:Q", format=".4f"), alt.Tooltip("bpc_delta_ci_low:Q", format=".4f"),
             alt.Tooltip("bpc_delta_ci_high:Q", format=".4f"), "bytes"],
).properties(width=520, height=300, title="Quality cost of quantisation against model size")
show(chart, alt_text="Scatter plot of the bits-per-character cost of each quantisation scheme against "
                     "model size in KiB; int4 points lie highest, int8 and float16 near zero.")

# %% [markdown]
# A per-tensor scale is set by the largest weight of the whole matrix, so one row with an
# outlier coarsens every other row; a per-row scale costs four bytes per output row and
# cannot be hurt that way, which is why the device format uses per-row scales. int4 has only
# 15 levels per group, and its cost {glue:text}`int4_size_trend`; the table above gives the
# worst model of each scheme. A paired interval over {glue:text}`eval_stories:,d` stories is
# narrow (float16's median interval is {glue:text}`f16_ci_width` bpc wide), so "measurable" in
# the table is not "large": float16's costs are measurable for {glue:text}`measurable_float16`
# models ({glue:text}`split_float16` than float32) and at most {glue:text}`max_delta_float16` bpc.

# %%
glue("int4_size_trend", size_trend_text(df, "int4_group32"), display=False)
f16 = df[df["scheme"] == "float16"]
glue("f16_ci_width", fmt_num((f16["bpc_delta_ci_high"] - f16["bpc_delta_ci_low"]).median(), sig=2), display=False)

# %% [markdown]
# ## Does the integer engine say the same thing?
#
# The model the integer engine hurts most is {glue:text}`worst_engine_variant`
# ({glue:text}`worst_engine_heads` of size {glue:text}`worst_engine_head_dim`,
# +{glue:text}`max_delta_int8_engine` bpc); the next section traces that cost to one step.
#
# Bits per character average over every prediction. A sharper question for generation: at
# each scored position of the validation stories (teacher forced), does the integer engine put its
# largest logit on the same token as the float model? For the median model it agrees on
# {glue:text}`agreement_median:.1%` of the positions (worst model:
# {glue:text}`agreement_min:.1%`).

# %%
eng_rows = df[df["scheme"] == "int8_engine"].copy()
worst = eng_rows.sort_values("bpc_delta").iloc[-1]
glue("worst_engine_variant", str(worst["variant_id"]), display=False)
glue("worst_engine_head_dim", int(worst["dim"]) // int(worst["n_heads"]), display=False)
glue("worst_engine_heads", plural(int(worst["n_heads"]), "head"), display=False)
glue("agreement_median", float(eng_rows["greedy_agreement"].median()), display=False)
glue("agreement_min", float(eng_rows["greedy_agreement"].min()), display=False)
chart = alt.Chart(eng_rows).mark_point(filled=True).encode(
    x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title="parameters (log scale)"),
    y=alt.Y("greedy_agreement:Q", scale=alt.Scale(zero=False), title="argmax agreement with float32"),
    tooltip=["variant_id", "n_params", alt.Tooltip("greedy_agreement:Q", format=".3f"),
             alt.Tooltip("bpc_delta:Q", format=".4f")],
).properties(width=520, height=260, title="Integer engine vs float model: same top token")
show(chart, alt_text="Scatter plot of the fraction of positions where the integer engine's top token "
                     "equals the float model's, against parameter count.")

# %% [markdown]
# ## Where the worst costs come from: the residual scale
#
# The engine keeps the residual stream in 16-bit integers on one scale per model, set so that
# twice the largest residual value seen on the calibration windows fills the range (the
# *headroom* is 2). In the model the engine hurts most, {glue:text}`rs_worst_model`, the largest
# residual value is {glue:text}`rs_worst_resmax`; that value sets the step of every channel, and
# the largest element of its median embedding row enters the stream as
# {glue:text}`rs_embed_shipped` steps (a median of {glue:text}`rs_control_embed` in the control
# models below). To test whether this is where the cost comes from, the
# {glue:text}`rs_n_worst` with the largest costs, and {glue:text}`rs_n_controls` at the median
# cost as controls, were quantised again with the residual range at {glue:text}`rs_headrooms`
# times that largest value (below 1 the largest values are clipped), every other constant, the
# calibration windows and the whole-split evaluation unchanged
# (`python -m starmind_lib.quant.residual_scale`; at the shipped headroom it reproduces this
# chapter's cost exactly, which a test checks). {glue:text}`rs_finding` These are single runs
# of a few models, each scored once: the device files, chapter 06 and every other number in
# this book still use the shipped headroom of 2, and a smaller one has not been tried on every
# model or on the device runtimes.

# %%
rs_cfg = rscale.ResidualScaleConfig.from_params({"headrooms": residual_headrooms, "worst": residual_worst,
                                                 "controls": residual_controls, "calib_windows": calib_windows,
                                                 "tier": tier, "study_data_dir": study_data_dir})
if recompute:
    rs = rscale.run_residual_scale(rs_cfg, results_dir, runs_dir, profile=profile, data_source=data_source,
                                   raw_data_dir=data_dir)
else:
    rs = rscale.read_residual_scale(results_dir, rs_cfg)     # the rows of this trace (its settings, not its paths)
for name, value in residual_scale_words(rs).items():
    glue(name, value, display=False)
if len(rs):
    display(table(residual_scale_table(rs), caption="The integer engine's cost (bpc over float32, whole validation "
                  "split, one run each) with the residual range at other multiples of the largest residual value "
                  "seen in calibration; the shipped files use 2", precision=4))
else:
    display(no_figure("no run was traced (no kept checkpoint of the worst or median runs)"))

# %% [markdown]
# ## Longer training, larger cost
#
# Chapter 07 recommends models trained ten times longer (the long tier's 20 M tokens), so the
# integer engine was also run on the long-tier runs whose checkpoints are kept. For
# {glue:text}`lt_n` quantised in both tiers, the long run's cost is larger in
# {glue:text}`lt_n_larger`: {glue:text}`lt_ratio_min` to {glue:text}`lt_ratio_max` times the
# 2 M-token run's (median {glue:text}`lt_ratio_median`){glue:text}`lt_exceptions`. The largest
# costs are those of {glue:text}`lt_worst`.{glue:text}`lt_failed` Each cost is of one run, and a configuration's two
# runs are two trainings (the seeds are in the table), so how much the cost varies from seed to
# seed is not measured here. Chapter 07 adds each
# long-tier model's own cost where it was measured, and says where it was not.

# %%
lt = long_tier_costs(quant_table)
for name, value in long_cost_words(lt).items():
    glue(name, value, display=False)
glue("lt_failed", failed_runs_text(quant_table, "long"), display=False)
if len(lt):
    display(table(lt, caption="The integer engine's cost (bpc over float32, whole validation split) on each "
                      "configuration's 2 M- and 20 M-token runs, one seed each", precision=4, max_rows=30))
else:
    display(no_figure("no long-tier run has been quantised"))

# %% [markdown]
# ## The reference models and their golden vectors
#
# Tiny models are committed with the repository in `data/reference/` (trained for a few
# seconds on synthetic sentences; `python -m starmind_lib.quant.reference make-reference` rebuilds
# them): each as an int8 file, a float32 file and a JSON file of golden vectors (prompt, the
# int32 logits of every prompt position, greedy and sampled continuations for fixed seeds).
# They cover every activation, every kind of position, tied and untied heads, one to four
# heads, a width of 1, and a vocabulary with empty special tokens. Every device runtime is
# tested against them. The reference engine reproduces them here:

# %%
rows = []
for g_path in sorted(Path(REFERENCE_DIR).glob("*.golden.json")):
    g = json.loads(g_path.read_text())
    eng = ie.IntEngine(read_smd(REFERENCE_DIR / g["model"]))
    h = eng.h
    rows.append({"model": g_path.name.replace(".golden.json", ""), "dim": h.dim, "layers": h.n_layers,
                 "heads": h.n_heads, "activation": h.activation, "pos": h.pos, "tied": h.tied,
                 "logits match": eng.logits_sequence(g["prompt_ids"]).tolist() == g["prompt_logits"],
                 "greedy matches": eng.generate(g["prompt_ids"], g["greedy"]["n_new"]) == g["greedy"]["output_ids"],
                 "float greedy equal": g["float32"]["greedy_output_ids"] == g["greedy"]["output_ids"],
                 "greedy text": g["prompt_text"] + "|" + g["greedy"]["text"]})
ref = pd.DataFrame(rows)
glue("n_ref_models", len(ref), display=False)
glue("ref_all_match", "all" if bool(ref["logits match"].all() and ref["greedy matches"].all()) else "NOT all",
     display=False)
table(ref, caption="Reference models: the engine reproduces the golden vectors; '|' marks the end of the prompt")

# %% [markdown]
# The reference engine reproduces {glue:text}`ref_all_match` golden vectors of the
# {glue:text}`n_ref_models` reference models. The design
# choices that keep the engine simple enough for a Cortex-M0+ (5 to 10 cycles per
# multiply-accumulate in C, and a MicroPython viper version with 32-bit integers only):
#
# - **One requantisation rule.** A matrix product's int32 accumulator becomes an int8
#   activation or a residual update by `(acc * m) >> (15 + s)` with a 16-bit multiplier `m`
#   per output row; the product is split in two 16-bit halves so that no 64-bit multiply is
#   needed, and the final shift rounds half up.
# - **A 15-bit residual stream.** The residual is kept in [−32767, 32767] on one scale per
#   model, which keeps squares below 2^30 in RMSNorm; the norm needs one integer square root
#   and one division per vector.
# - **Softmax by table.** Scores minus their maximum index a 1024-entry table of
#   `exp(−i/64)` in Q15; one division per head turns the weights into Q15 probabilities.
# - **Sampling on integers.** Temperature and top-k sampling use the same table, a
#   cumulative sum and one draw of xorshift32, so a device and the host emit the same tokens
#   for the same seed.
