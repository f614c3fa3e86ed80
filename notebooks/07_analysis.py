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
# # Which model should a Pico run?
#
# Every earlier chapter measured one thing: how well a model predicts text (chapter 04, in bits per
# character on held-out stories), how much quantisation costs (chapter 05), and how fast and how big it
# is on the device (chapter 06). This chapter puts them in one table, one row per model, runtime and
# precision, and asks the practical question: *for a given amount of RAM and a speed I can live with,
# which model writes the best stories?*
#
# A model is worth considering only if no other model is at least as good on every axis and better on
# one: those models form the **Pareto front**. Quality is validation bits per character (lower is
# better; the quantised models use their own, measured, bits per character). Speed is generated tokens
# (and characters) per second on the emulated Pico at 133 MHz (cycle-counted emulation; with weights in
# flash, plus the project's XIP cache model of 60 cycles per miss; see chapter 06), running our C runtime;
# MicroPython speeds come from the official stock firmware (125 MHz) running our MicroPython runtime in
# the same emulator (chapter 06b); the planner's predictions appear only for a model no run tried, labelled
# *predicted*.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
# (peak RAM in KB, minimum tokens/s) budgets for the recommendation table; 264 KB is all of the Pico's SRAM.
budgets = [[16, 200.0], [24, 100.0], [32, 50.0], [64, 20.0], [264, 1.0]]


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("07_analysis", globals())

# %%
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.analysis import pareto, tables as an
from starmind_lib.analysis.seeds import chars_per_token, load_study, load_study_variants, scored_seed_values
from starmind_lib.analysis.quant_costs import quant_cost_sources
from starmind_lib.book.figures import show, table
from starmind_lib.chapters.ch06b_micropython import ram_floor_text

synthetic = data_source == "synthetic"
if synthetic:
    display(Markdown("**These results come from synthetic stories (profile "
                     f"`{profile}`): they prove the pipeline, not the study.**"))

try:   # Study v2's base grid (whole split, mean over seeds) when it has runs, else the v1 table
    variants, bpc_source = load_study_variants(results_dir)
except an.MissingResult as missing:   # the page says what is missing instead of failing the whole book
    variants, bpc_source = None, "no table"
    display(Markdown(f"**No analysis possible yet:** {missing}"))
glue("an_bpc_source", bpc_source, display=False)
study = load_study(results_dir)
seed_bpc = scored_seed_values(study, variants)   # each score's own tier's seeds
quant = an.load_quant(results_dir, required=False)
runs = an.load_device_runs(results_dir)   # the planner's predictions only for models no runtime ran
points = (an.device_points(variants, runs, quant, chars_per_token=chars_per_token(study))
          if runs is not None and variants is not None else pd.DataFrame())
if len(points):  # the virtual MicroPython board times the host, not a Pico: its speeds mean nothing here
    points = an.attach_device_text(points[points["speed_source"] != "host_timing_not_representative"], runs_dir)
    points = pareto.one_per_configuration(points, pareto.RUN_FIELDS)   # a configuration axes share is one model
c_points = points[points["runtime_kind"] == "c"] if len(points) else points

glue("an_quant_cost_source", quant_cost_sources(points), display=False)
glue("an_mp_ram_floor", ram_floor_text(runs[runs["runtime_kind"].eq("micropython")] if runs is not None
                                       else pd.DataFrame()), display=False)
for name, value in pareto.headline_numbers(variants, points).items():
    glue(name, value, display=False)

# %% [markdown]
# Quality on this page is {glue:text}`an_bpc_source`; a quantised model's bits per character add its
# scheme's cost (int8 against float32, on the whole validation split, one seed), measured
# {glue:text}`an_quant_cost_source`. {glue:text}`n_models` of the grid's variants have a score
# ({glue:text}`n_configs` distinct configurations); the best reaches {glue:text}`best_bpc` bits per
# character. {glue:text}`n_device_points` runs of the C runtime on the emulated Pico finished with
# status `ok`, each configuration counted once however many names it has (a model that does not fit the Pico's 264 KB of SRAM or 2 MB of flash has no speed and is
# left out of the front).
#
# ## Quality against size
#
# Before any device: what does each parameter buy? Every distinct configuration, once (one that several
# sweep axes share appears under its first name), coloured by that name's sweep axis; the dashed line joins
# the models that no smaller model beats. Here and in every front below, a model must beat the unigram
# baseline (letter or token frequencies alone) to be on a front.

# %%
if variants is not None:
    configs = pareto.one_per_configuration(variants)
    display(show(pareto.pareto_chart(configs.assign(bpc=configs["val_bpc"]), x="params", higher_x_is_better=False,
                                 color="axis" if "axis" in configs else "variant_id",
                                 title="Quality against parameter count (training, validation set)")))

# %% [markdown]
# ## Quality against speed
#
# Each point is one configuration on one runtime; the dashed line joins the Pareto front of quality against
# tokens per second. Click a runtime in the legend to show it alone; hover a point for its details.

# %%
if c_points.empty:
    display(Markdown("No C-runtime device runs are available yet "
                     f"({an.TABLES['c_runs'][0][0]} under `{results_dir}`): run chapter 06."))
else:
    display(show(pareto.pareto_chart(points, title=["Quality against speed, emulated Pico",
                                                         "flash runs: cycle-counted + XIP miss model (60 cycles/miss)"])))

# %% [markdown]
# On the C runtime {glue:text}`n_front` models form the front: from the fastest,
# {glue:text}`front_fastest_tps` tokens/s at {glue:text}`front_fastest_bpc` bits per character,
# to the best, {glue:text}`front_best_bpc` bits per character at {glue:text}`front_best_tps`
# tokens/s: a model of {glue:text}`front_best_params` parameters with {glue:text}`front_best_weights`,
# using {glue:text}`front_best_ram_kb` KB of RAM at its peak. Speed in characters per second (the reader's
# speed, which a larger vocabulary raises) and memory give two more fronts:

# %%
if not c_points.empty:
    if "chars_per_s" in c_points and c_points["chars_per_s"].notna().any():
        display(show(pareto.pareto_chart(c_points[c_points["chars_per_s"].notna()], x="chars_per_s",
                                     title=["Quality against characters per second (C runtime, emulated)",
                                            "flash runs: cycle-counted + XIP miss model (60 cycles/miss)"])))
    display(show(pareto.pareto_chart(c_points, x="peak_ram_bytes", higher_x_is_better=False,
                                 title="Quality against peak SRAM (C runtime)")))
    # A model can sit on the front twice (weights in flash and in SRAM): the "weights in" column says which.
    cols = ["variant_id", "weights_in", "params", "bpc", "tokens_per_s", "tokens_per_s_raw", "chars_per_s",
            "peak_ram_bytes"]
    axes = {"minimize": ["bpc", "peak_ram_bytes"], "maximize": ["tokens_per_s"]}
    on_front = pareto.front_mask(c_points, **axes)
    edges = pareto.front_edges(c_points, on_front, seed_bpc, **axes).rename(columns={
        "rival": "best model as fast and as small", "margin": "its bpc minus this one's", "noise": "seed noise ±",
        "verdict": "verdict"})
    mem_front = c_points[on_front].join(edges)
    front_rows = mem_front[[c for c in cols if c in mem_front]].sort_values("bpc")
    if "tokens_per_s_raw" in front_rows:   # the raw figure only where the XIP model changed it
        front_rows = front_rows.rename(columns={"tokens_per_s_raw": "tokens/s without the XIP miss model"})
    display(table(front_rows, max_rows=8,
                  caption="The Pareto front of quality, speed and peak SRAM (C int8 runtime, emulated Pico, 133 MHz: "
                          "cycle-counted; weights in flash add the XIP miss model, and the raw figure is beside)"))
    glue("front_edges", pareto.front_edge_summary(mem_front["verdict"]), display=False)
else:
    glue("front_edges", "There is no front without C-runtime device runs.", display=False)

# %% [markdown]
# A model sits on this front when no other model is at least as good on all three axes (one with its
# weights in flash and in SRAM can sit on it twice, as two points). Measured with seeds, a point's place
# holds only if it beats, by more than seed noise, the best other model that is at least as fast and as
# small (the table below). {glue:text}`front_edges`

# %%
if not c_points.empty:
    display(table(mem_front[["variant_id", "weights_in", "bpc", *edges.columns]].sort_values("bpc"), max_rows=8,
                  caption="Each front point against the best other model at least as fast and as small: the "
                          "difference of their bpc and whether it exceeds seed noise (Welch 95 % over seeds)"))

# %% [markdown]
# ## Recommendations
#
# For each budget (RAM for the whole program, a minimum speed) the table gives the model with the
# lowest bits per character that fits it, per runtime, whether it is better than the next-best
# configuration by more than seed noise ("no measurable difference" when it is not: then either
# would do), and a story it wrote right after training. Most device runs time untrained weights of the
# model's shape (speed and memory do not depend on the weights), so they wrote no story worth reading; a
# run of the trained weights shows its story too. The widget below writes with the trained int8 files.
# "No model fits" is an answer too: {glue:text}`an_mp_ram_floor`. A seed test takes each model's int8 cost as exact, but a cost is one run's; where a
# configuration was quantised on two runs (chapter 05) and the other run's cost reverses the order, the
# table says so.

# %%
if points.empty:
    display(Markdown("No device runs: no recommendations."))
else:
    rec = pareto.recommend(points, [tuple(b) for b in budgets], values=seed_bpc)
    rec = rec.assign(interval=[f"{lo:.2f}–{hi:.2f}" if pd.notna(lo) else "one seed"
                               for lo, hi in zip(rec.get("bpc_ci_low", pd.Series(dtype=float)).reindex(rec.index),
                                                 rec.get("bpc_ci_high", pd.Series(dtype=float)).reindex(rec.index))])
    rec.loc[rec["variant_id"].isna(), "interval"] = None
    rec["speed_kind"] = [an.speed_kind(s) or None for s in rec["speed_source"]]
    speeds = {"c": ("C runtime", "the emulated Pico at 133 MHz, cycle-counted, 16 tokens after an 8-token prompt; "
                                 "weights in flash add the XIP miss model. RAM: the peak of the program's static "
                                 "data, arena and stack"),
              "micropython": ("MicroPython runtime", "the stock firmware emulated at its 125 MHz, cycle-counted, the "
                                                     "mean over 64 tokens after a 1-token prompt; weights in flash are "
                                                     "read without an XIP model (chapter 06b); the planner's "
                                                     "prediction where no run tried the model. RAM: all SRAM but the "
                                                     "heap left free once the model is loaded (firmware, interpreter, "
                                                     "runtime, model and buffers)")}
    words = {"c": "C runtime", "micropython": "MicroPython runtime"}
    rec["weights_in"] = rec["weights_in"].replace({"ram": "SRAM", "sram": "SRAM"})
    for kind, part in rec.groupby("runtime_kind", sort=True):   # one table per runtime: each has its speed kind
        name, how = speeds.get(kind, (kind, "see its speed column"))
        shown = ["budget", "variant_id", "weights_in", "bpc", "interval", "tokens_per_s",
                 *(["speed_kind"] if part["speed_kind"].dropna().nunique() > 1 else []), "ram_kb_used",
                 "vs_runner_up"]
        display(table(part[shown].rename(columns={"interval": "95 % interval (seeds)", "speed_kind": "speed from",
                                                  "ram_kb_used": "RAM used (KB)",
                                                  "vs_runner_up": "against the runner-up"}),
                      caption=f"{name}: the best model per budget (bpc: its float score plus the int8 cost measured "
                              "for it, chapter 05), its 95 % interval over seeds (the float score's, moved by the "
                              "same int8 cost), and whether it beats the best other configuration that fits beyond "
                              f"seed noise, taking each int8 cost as exact unless noted. Speeds: {how}"))
    for r in rec[rec["variant_id"].notna()].itertuples():
        stories = [(f"generated on the device ({r.runtime})", r.device_story),
                   ("sampled after training (PyTorch, temperature 0.8)", r.training_story)]
        text = "".join(f"\n\n{where}:\n\n```text\n{story.strip().replace('`', chr(39))}\n```"
                       for where, story in stories if story and story.strip())   # no backticks: fence stays closed
        display(Markdown(f"**{r.budget}, {words.get(r.runtime_kind, r.runtime_kind)}**: {r.variant_id}, "
                         f"{r.bpc:.2f} bits/char{text}"))

# %% [markdown]
# Chapter 08 uses the same tables to check, one by one, the claims of the earlier write-up.

# %% [markdown]
# ## Try it: a story written in this page
#
# What does a difference in bits per character look like in a story, and what does a difference in
# tokens per second feel like on a Pico? The widget below runs the project's C runtime, compiled to
# WebAssembly from the same source files as the Pico firmware (`device/wasm`), on a model file in this
# page: pick a model, type a prompt (encoded here by the file's own encoder) and the story appears
# token by token at the speed that runtime measured for that model on the emulated Pico (or at full
# speed). Temperature, top-k and the seed go to the same integer sampler as on the device: with the
# same settings the page writes exactly what `starmind board generate` writes on a board (the command
# is shown under the story). The recommended models above come first, from the files committed in
# `data/models` (Study v2's seed-0 run of each configuration, from the long tier where this chapter's
# score comes from it, exported to int8 by `python -m starmind_lib.quant.export`, with a provenance row
# each); the bits per character beside the story are the float model's on the whole validation split
# (the mean over seeds where the tier has two or more, else that run's own). A recommended model with
# no committed file is left out and the widget says so. The committed
# reference models follow: trained for seconds on synthetic sentences, they show the runtime and its
# pace, not the study's quality.

# %%
from IPython.display import HTML

from starmind_lib.book.widget import widget_html

display(HTML(widget_html()))
