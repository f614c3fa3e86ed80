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
# # The models on the emulated Pico: a C runtime, cycle-counted
#
# ```{note}
# **What "emulated" means in this book.** Every C-runtime speed is a cycle count from
# [rp2040js](https://github.com/wokwi/rp2040js): a per-instruction timing model of the Cortex-M0+ at
# 133 MHz, run deterministically. It does **not** model the XIP flash cache, bus contention or the
# second core. Against a real RP2040 it is 3 to 8 % optimistic on public MicroPython micro-benchmarks
# (integer, float, loops), except big-integer arithmetic (32 % faster), as measured by whoever built the
# shared firmware image (its `SOURCE.md`), not by this project; the C runtime's error against a real
# board is not measured. With weights in flash, the speeds add the project's own XIP cache model
# (16 KB, two-way, 8-byte lines, LRU, 60 cycles per miss), which can account for more than half of the
# cycles; such rows carry their own
# speed source, *emulated (cycle-counted) + XIP miss model*, and the figure without the model is shown
# beside them.
# ```
#
# How fast does each model of the study generate text on a Raspberry Pi Pico, and which ones
# fit at all? The earlier public write-up quoted tokens per second for models it never
# trained; here every architecture of the study (chapter 04), quantised to the
# integer-only int8 scheme of chapter 05, runs through a portable C99 runtime
# (`device/c/`) compiled for the Pico's Cortex-M0+ with `arm-none-eabi-gcc -O2`, on an
# emulated RP2040 ([rp2040js](https://github.com/wokwi/rp2040js)) that counts the cycles of
# every instruction with the Cortex-M0+ timings. The runtime reproduces the reference
# engine's logits and tokens **bit for bit** (its golden-vector tests run on the host build
# and on the emulated RP2040 build, and every run below is checked against the reference
# engine's tokens).
#
# What is measured, and what is assumed:
#
# - **Cycles** are rp2040js's per-instruction Cortex-M0+ counts (single-cycle multiplier,
#   2-cycle loads, 2-cycle taken branches) for a single core; speeds are given at the Pico's
#   default 125 MHz and at 133 MHz (the RP2040's rated clock).
# - **Flash.** rp2040js serves flash reads as fast as SRAM. A real Pico reads flash through
#   a 16 KB, two-way set-associative XIP cache with 8-byte lines; a miss costs a QSPI
#   transfer. We replay every flash read of the emulated program (instruction fetches and
#   data loads) through a model of that cache and charge **60 cycles per miss**: with the
#   Pico's boot2 settings (SCK = clk_sys / 2, quad I/O continuous read mode) a line fill is
#   6 address + 2 mode + 4 dummy + 16 data clocks = 28 SCK = 56 cycles, plus about 4 cycles
#   for chip select and the bus bridge (derivation in `starmind_lib/devices/flashcache.py`).
#   Speeds below include that penalty (speed source: emulation + XIP model); the raw
#   (cache-less) figures are in the tables beside them.
# - **Memory.** Peak SRAM = static data (`.data`, `.bss`, the code copied to SRAM, and the
#   harness's 8 KB result block, so a real firmware needs a little less) + the runtime's
#   arena (activations, the KV cache sized for the run's context, the weights when they are
#   copied to SRAM) + the stack high-water mark (the stack is painted at reset). Flash =
#   firmware + model file; the Pico has 2 MB.
# - **The float32 baseline** uses the boot ROM's float routines for add/subtract/multiply/
#   divide (as pico-sdk does) and newlib's `expf`/`erff`/`sqrtf` on top of them.
# - Generation is greedy; prefill and generated tokens are timed between breakpoint markers.
# - **Weights.** A study model runs with its trained weights when its checkpoint is on the machine
#   that ran the bench; otherwise with an untrained model of the same architecture (seeded), quantised
#   the same way. The runtime's cycles depend on the shapes, not on the weights' values: a test runs a
#   trained reference model and an untrained one of its shape and asserts the same cycles per token
#   within 2 % (`tests/test_emulator.py`). Each run records which weights it used; in this build:
#   {glue:text}`weights_sources`. Quality (bits per character) is always the trained model's, from
#   chapter 04.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
n_prompt = 8
n_tokens = 16
max_variants = 0
comparisons = ["sram", "nokv", "float32"]
sram_max_params = 400000
nokv_max_params = 30000
float_max_params = 10000
size_probes = [300000, 1000000, 1500000, 2500000]
reference_models = True
calib_windows = 8
workers = 2
sweep_data_dir = ""
long_tokens = 400


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("06_device", globals())

# %%
import altair as alt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.bench.device import DeviceBenchConfig, run_bench
from starmind_lib.bench.device_results import (CONTEXT_TARGETS, ISOLATED, NEAR, best_near, context_speeds,
                                                in_window, isolated_glue_name, isolated_speedups, near_target,
                                                read_profile, read_runs, reference_runs, speed_hierarchy, summary,
                                                target_verdict)
from starmind_lib.chapters.ch04_architecture import AXIS_LABELS
from starmind_lib.devices.flashcache import MISS_PENALTY_CYCLES
from starmind_lib.book.figures import show, table

cfg = DeviceBenchConfig.from_params({
    "n_prompt": n_prompt, "n_tokens": n_tokens, "max_variants": max_variants, "comparisons": comparisons,
    "sram_max_params": sram_max_params,
    "nokv_max_params": nokv_max_params, "float_max_params": float_max_params, "size_probes": size_probes,
    "reference_models": reference_models,
    "calib_windows": calib_windows, "workers": workers, "sweep_data_dir": sweep_data_dir,
    "long_tokens": long_tokens, "data_source": data_source, "raw_data_dir": data_dir})
if recompute:
    run_bench(cfg, results_dir, runs_dir, profile=profile, progress=False)
runs, kernels = read_runs(results_dir)
runs["kv_cache"] = runs["kv_cache"].astype(bool)
study = runs[runs["source"] == "study"]
synthetic = bool(study["is_synthetic"].fillna(False).astype(bool).any()) or study.empty
how = "recomputed in this run" if recompute else f"read from the committed table `{results_dir}/device/c_runs.jsonl`"
display(Markdown(f"**Source of this build:** {runs['model_id'].nunique()} models, {len(runs)} emulated runs, {how}."))
if synthetic:
    display(Markdown("> **Warning: synthetic data.** The study models here were trained on generated stories "
                     "(the `smoke` profile), or there are none: the speeds are real cycle counts of real "
                     "runs, but of tiny stand-in models, not of the study's models."))
mismatch = runs[runs["matches_reference"] == False]  # noqa: E712
if len(mismatch):
    display(Markdown(f"> **Error:** {len(mismatch)} runs did not reproduce the reference engine's tokens: "
                     f"{', '.join(mismatch['key'])}"))
glue("n_runs", len(runs), display=False)
_ws = (runs[runs["source"] == "study"].drop_duplicates("model_id")["weights_source"].fillna("trained")
       .value_counts())
_ws_words = {"trained": "with their trained weights", "untrained_same_architecture":
             "with untrained weights of the same architecture"}
glue("weights_sources", ", ".join(f"{n} study models {_ws_words.get(k, k)}" for k, n in _ws.items()) or "none",
     display=False)
glue("n_checked", int(runs["matches_reference"].notna().sum()), display=False)
glue("n_mismatch", len(mismatch), display=False)
glue("miss_penalty", int(MISS_PENALTY_CYCLES), display=False)

# %% [markdown]
# Of the {glue:text}`n_runs` runs, {glue:text}`n_checked` int8 runs were checked token for
# token against the reference engine; {glue:text}`n_mismatch` differed.
#
# ## The inner loop: cycles per multiply-accumulate
#
# Almost all the work of a token is int8 matrix-vector products. Four versions of the dot
# product, measured on the emulated core over 4 rows of 256 weights: a plain C loop, the same
# unrolled four times, a C loop that computes four rows at once (each activation is loaded
# once for four rows), and that four-row loop in hand-written Thumb assembly (`ldrsb` of the
# activation, then per row `ldrsb` + `muls` + `add` into a high register: 21 cycles for 4
# multiply-accumulates). With weights in flash, every 8-byte line is a cache miss the first
# time it is read. The last row is the kernel model runs use when their weights are in SRAM (the
# copy is repacked at load): 8 rows interleaved column by column, each word of 4 rows' bytes
# multiplied whole and also shifted right by 8, 16 and 24 bits into four sums, from which the four
# dot products follow exactly (13 cycles for 4 multiply-accumulates in the loop); the figure
# includes its call and the 8 rows' requantisation.

# %%
k = kernels.copy()
asm = k[(k["kernel"] == "Thumb asm 4 rows") & (k["weights"] == "sram")]["cycles_per_mac_raw"]
plain = k[(k["kernel"] == "plain C") & (k["weights"] == "sram")]["cycles_per_mac_raw"]
glue("asm_cpm", float(asm.iloc[0]), display=False)
glue("plain_cpm", float(plain.iloc[0]), display=False)
word = k[k["kernel"].str.contains("word loads") & (k["weights"] == "sram")]["cycles_per_mac_raw"]
glue("word_cpm", f"{float(word.iloc[0]):.2f}" if len(word) else "not measured in this build", display=False)
table(k[["kernel", "weights", "cycles_per_mac_raw", "cycles_per_mac"]].rename(columns={
    "cycles_per_mac_raw": "cycles/MAC (no cache model)", "cycles_per_mac": "cycles/MAC (XIP cache model)"}),
    caption="int8 dot-product kernels on the emulated Cortex-M0+", precision=2)

# %% [markdown]
# The assembly kernel needs {glue:text}`asm_cpm:.2f` cycles per multiply-accumulate against
# {glue:text}`plain_cpm:.2f` for the plain C loop, and the word-load kernel of SRAM runs
# {glue:text}`word_cpm`. Streaming weights from flash adds about
# {glue:text}`miss_penalty` / 8 = 7.5 cycles per weight byte once the model is larger than the
# 16 KB cache: for big models the flash, not the core, sets the pace.
#
# ## Speed against size
#
# Each point is one model, int8, weights read in place from flash, KV cache on, one core.

# %%
ok = runs[runs["status"] == "ok"].copy()
base = reference_runs(ok).copy()
base["kind"] = base["source"].map({"study": "trained (study)", "reference": "trained (reference)",
                                   "size_probe": "untrained size probe"})
chart = alt.Chart(base).mark_point(filled=True, size=60, opacity=0.8).encode(
    x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title="parameters (log scale)"),
    y=alt.Y("tokens_per_s_133MHz:Q", scale=alt.Scale(type="log"), title="tokens/s at 133 MHz (log scale)"),
    color=alt.Color("kind:N", title="model"),
    tooltip=["model_id", "n_params", alt.Tooltip("tokens_per_s_133MHz:Q", format=",.1f"),
             alt.Tooltip("chars_per_s_133MHz:Q", format=",.1f"), alt.Tooltip("cycles_per_token:Q", format=",.0f"),
             "peak_ram_bytes"],
).properties(width=520, height=320, title=["Generation speed, emulated Pico (int8, weights in flash)",
                                          "cycle-counted + XIP miss model, 60 cycles per miss"])
show(chart, alt_text="Log-log scatter plot of tokens per second at 133 MHz against parameter count; "
                     "speed falls roughly in proportion to size.")


# %%
best_any = ok[(ok["scheme"] == "int8") & ok["kv_cache"]]
for name, target, goal in (("10k", 10_000, 1000), ("100k", 100_000, 120)):
    r = best_near(best_any, target)
    glue(f"best_{name}_tps", float(r["tokens_per_s_133MHz"]) if r is not None else float("nan"), display=False)
    glue(f"best_{name}_model", f"{r['model_id']} ({int(r['n_params']):,} parameters, weights in {r['weights']})"
         if r is not None else "no study model in this range", display=False)
    glue(f"best_{name}_goal", "no model to judge" if r is None
         else target_verdict(float(r["tokens_per_s_133MHz"]), goal), display=False)
    rf = best_near(best_any[best_any["weights"] == "flash"], target)
    glue(f"best_{name}_flash_tps", float(rf["tokens_per_s_133MHz"]) if rf is not None else float("nan"),
         display=False)
runs_in_flash = ok[(ok["scheme"] == "int8") & (ok["weights"] == "flash")]
largest = runs_in_flash.loc[runs_in_flash["n_params"].idxmax()]
glue("largest_params", int(largest["n_params"]), display=False)
glue("largest_tps", float(largest["tokens_per_s_133MHz"]), display=False)
glue("largest_model", str(largest["model_id"]), display=False)
glue("largest_ram_kb", float(largest["peak_ram_bytes"]) / 1024, display=False)
trained_in_flash = runs_in_flash[runs_in_flash["source"].isin(["study", "reference"])]
lt = trained_in_flash.loc[trained_in_flash["n_params"].idxmax()]
glue("largest_trained", f"{lt['model_id']} ({int(lt['n_params']):,} parameters, "
     f"{lt['tokens_per_s_133MHz']:,.1f} tokens/s, {lt['peak_ram_bytes'] / 1024:,.1f} KB of SRAM)", display=False)

# %% [markdown]
# ## Where a token's cycles go
#
# The emulator can attribute every cycle to the firmware function that spent it, and the
# runtime keeps each phase of the forward pass in its own function. For the models nearest 10K and
# 100K parameters (the ones the speed targets below are judged by; int8, weights in SRAM; a generation
# over the whole context window from a 1-token prompt, without the load-time checks):

# %%
prof = read_profile(results_dir)
if len(prof):
    dots = (prof[prof["dot_product"].astype(bool)].groupby("model_id")["share"].sum() if "dot_product" in prof
            else prof[prof["part"] == "int8 dot products"].set_index("model_id")["share"])
    glue("dot_share", f"{dots.min():.0%} to {dots.max():.0%}" if len(dots) > 1 else f"{dots.iloc[0]:.0%}",
         display=False)
    display(show(alt.Chart(prof.assign(label=prof["model_id"] + " (" + prof["n_params"].map("{:,}".format) + ")"))
                 .mark_bar().encode(
        x=alt.X("share:Q", stack="normalize", title="share of the cycles",
              axis=alt.Axis(format="%", values=[0, 0.2, 0.4, 0.6, 0.8, 1])),
        y=alt.Y("label:N", title=None), color=alt.Color("part:N", title="part"),
        tooltip=["model_id", "part", alt.Tooltip("share:Q", format=".1%"), alt.Tooltip("cycles:Q", format=",")],
    ).properties(width=480, height=90, title="Cycles per part of the forward pass"),
        alt_text="Stacked bars of the share of cycles spent in dot products, requantisation, attention, "
                 "RMSNorm and the rest."))
else:
    glue("dot_share", "n/a (no trained model profiled in this build)", display=False)

# %% [markdown]
# The int8 dot products (the matrix-vector products and, over the cache, the attention's q.k and
# weighted values) take {glue:text}`dot_share` of the cycles; the rest is the per-row
# requantisation, the attention softmax and the norms, which is why small models run below the
# kernel's peak rate. (These shares are raw cycles; from flash, cache misses come on top,
# mostly in the dot products.)
#
# ## Targets
#
# Targets set before the runs (single core, 133 MHz, int8 models of the study's architectures, run with
# untrained weights of each shape since speed does not depend on the weights; "near N" = the model nearest
# N parameters, within 0.75x to 1.33x of it, and its fastest run):
#
# - near 10K parameters, at least 1,000 tokens/s: the nearest is
#   {glue:text}`best_10k_model` at {glue:text}`best_10k_tps:,.0f` tokens/s
#   (target: {glue:text}`best_10k_goal`; with weights in flash, cycle-counted + XIP miss model:
#   {glue:text}`best_10k_flash_tps:,.0f`);
# - near 100K parameters, at least 120 tokens/s: {glue:text}`best_100k_model` at
#   {glue:text}`best_100k_tps:,.1f` tokens/s (target: {glue:text}`best_100k_goal`; with
#   weights in flash, where every weight byte is a cache miss per token, cycle-counted + XIP miss model:
#   {glue:text}`best_100k_flash_tps:,.1f`);
# - the largest model that runs with weights in flash (cache model on):
#   {glue:text}`largest_model`, {glue:text}`largest_params:,d` parameters, at
#   {glue:text}`largest_tps:,.1f` tokens/s using {glue:text}`largest_ram_kb:,.1f` KB of SRAM
#   (untrained size probes count here: whether a model fits and how fast it runs depends on
#   its shape, not on its weights); the largest of the study is {glue:text}`largest_trained`.
#
# ## Speed at the real context
#
# The figures above are short-context ones: {glue:text}`n_tokens_g` tokens after a
# {glue:text}`n_prompt_g`-token prompt, so the attention reads at most 24 cached positions. A story
# uses the whole window, and then more. For every model with weights in SRAM the bench also
# generates from a 1-token prompt to the end of the trained window (64 positions: the mean over them,
# and the last one alone), and for the ~10K and ~100K models and the reference models,
# {glue:text}`long_tokens_g` tokens with the window restart of FORMAT.md 6.7 (every 32 tokens the
# last 32 are fed again from position 0, so a token costs more than inside the window). Every one of
# these generations is checked token for token against the reference engine
# ({glue:text}`n_context_checked` checked, {glue:text}`n_context_mismatch` differ).
#
# Targets (int8, weights in SRAM, mean over the 64 positions, 133 MHz; "near N" = the study or
# reference model nearest N parameters within {glue:text}`near_window`):
#
# - near 10K parameters, at least 1,500 tokens/s: {glue:text}`ctx_10k_model` at
#   {glue:text}`ctx_10k_full133:,.0f` tokens/s ({glue:text}`ctx_10k_full125:,.0f` at the stock
#   125 MHz; target: {glue:text}`ctx_10k_goal`), {glue:text}`ctx_10k_long133:,.0f` tokens/s over a
#   {glue:text}`long_tokens_g`-token story; {glue:text}`ctx_10k_window`;
# - near 100K parameters, at least 220 tokens/s: {glue:text}`ctx_100k_model` at
#   {glue:text}`ctx_100k_full133:,.1f` tokens/s ({glue:text}`ctx_100k_full125:,.1f` at 125 MHz;
#   target: {glue:text}`ctx_100k_goal`), {glue:text}`ctx_100k_long133:,.1f` tokens/s over a
#   {glue:text}`long_tokens_g`-token story; {glue:text}`ctx_100k_window`.
#
# Within a size, the shape sets the pace: the deep, narrow models (8 layers of width 32 near 100K) pay
# per layer for norms, rotary embedding, softmax and requantisation that do not grow with the weights,
# and the BPE models near 10K spend a large share on the vocabulary projection.

# %%
ctx = context_speeds(runs)
glue("long_tokens_g", int(long_tokens), display=False)
glue("near_window", f"{NEAR[0]}x to {NEAR[1]}x of it", display=False)
checked = pd.concat([runs["window_matches_reference"], runs["long_matches_reference"]]).dropna()
glue("n_context_checked", int(len(checked)), display=False)
glue("n_context_mismatch", int((~checked.astype(bool)).sum()), display=False)
for name, target in (("10k", 10_000), ("100k", 100_000)):
    r = near_target(ctx, target)
    glue(f"ctx_{name}_model", f"{r['model']} ({int(r['parameters']):,} parameters)" if r is not None
         else "no model in this range", display=False)
    for col, key in (("window mean @133", "full133"), ("window mean @125", "full125"),
                     ("story @133", "long133")):
        glue(f"ctx_{name}_{key}", float(r[col]) if r is not None and pd.notna(r.get(col)) else float("nan"),
             display=False)
    glue(f"ctx_{name}_goal", "no model to judge" if r is None
         else target_verdict(float(r["window mean @133"]), CONTEXT_TARGETS[target]), display=False)
    w = in_window(ctx, target)["window mean @133"]
    k = int((w >= CONTEXT_TARGETS[target]).sum())
    glue(f"ctx_{name}_window", "no model in the window" if not len(w)
         else f"the only model in the window {'reaches' if k else 'does not reach'} it" if len(w) == 1
         else f"{k} of the {len(w)} models in the window reach it ({w.min():,.0f} to {w.max():,.0f} tokens/s)",
         display=False)
named = ctx[ctx["story @133"].notna()] if "story @133" in ctx else ctx.head(0)
table(named.drop(columns="source"),
      caption="Speed at the real context (tokens/s; int8, KV cache, weights in SRAM; cycle-counted emulation, "
              "@133 and @125 = at 133 and 125 MHz): short = the short-context figure; window mean and last = over "
              "the 64 positions of the trained window and at its last one; story = the long generation with the "
              "window restart (see the text). Every model's window figures are in the per-model table below.",
      precision=1)

# %% [markdown]
# ## Which hyperparameters cost speed? (the "impact hierarchy", redone)
#
# The write-up ranked hyperparameters by their effect on speed without trained models or
# exact timings. Here, within each fixed-budget group of the study (models of about the same
# parameter count that differ in one hyperparameter), we take the ratio of the fastest to
# the slowest model, and rank the hyperparameters by the median ratio over their groups.

# %%
hier = speed_hierarchy(base, AXIS_LABELS)   # the axes in words, not code names
glue("top_axis", str(hier["axis"].iloc[0]) if len(hier) else "n/a (no fixed-budget groups in this build)",
     display=False)
if len(hier):
    display(show(alt.Chart(hier).mark_bar().encode(
        x=alt.X("median fastest/slowest:Q", title="median speed ratio, fastest / slowest, in a fixed-budget group"),
        y=alt.Y("axis:N", sort="-x", title="hyperparameter varied"),
        tooltip=list(hier.columns)).properties(width=480, height=22 * len(hier) + 40,
                                               title="Speed effect of each hyperparameter at a fixed budget"),
        alt_text="Bar chart ranking hyperparameters by the ratio of fastest to slowest model in fixed-budget "
                 "groups."))
table(hier, caption="Hyperparameters ranked by their speed effect at a fixed parameter budget (int8, KV cache, "
                    "weights in flash: cycle-counted + XIP miss model, 133 MHz)", precision=2)

# %% [markdown]
# The hyperparameter with the largest speed effect at a fixed budget is
# {glue:text}`top_axis`. Parameter count sets most of the cost (one multiply-accumulate per
# weight per token); what varies at a fixed count is the work that is not a weight: per-row
# requantisation (more, shorter rows cost more), the attention over the context (grows with
# width and depth, not with the FFN), the RMSNorms per layer, and the share of the vocabulary
# projection.
#
# ## Isolated effects: KV cache, float32 and SRAM
#
# Each setting is changed alone against the int8 / flash / KV-cache run of the same model
# (SRAM for models up to {glue:text}`sram_max_params:,d` parameters, no KV cache up to
# {glue:text}`nokv_max_params:,d`, float32 up to {glue:text}`float_max_params:,d`: the last
# two are slow to emulate): without a KV cache every
# step recomputes all earlier positions (as a runtime that stores no keys and values must);
# float32 runs the float baseline; SRAM copies the model file into RAM at load, so no weight
# goes through the XIP cache.

# %%
glue("sram_max_params", int(sram_max_params), display=False)
glue("nokv_max_params", int(nokv_max_params), display=False)
glue("float_max_params", int(float_max_params), display=False)
iso = isolated_speedups(ok)
for label in ISOLATED:
    g = iso[iso["setting"] == label]
    glue(isolated_glue_name(label), float(g["speedup"].median()) if len(g) else float("nan"), display=False)
if len(iso):
    display(show(alt.Chart(iso).mark_point(filled=True, size=50).encode(
        x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title="parameters (log scale)"),
        y=alt.Y("speedup:Q", scale=alt.Scale(type="log"), title="speed relative to int8 / flash / KV cache"),
        color=alt.Color("setting:N", title="changed setting"),
        tooltip=["model_id", "n_params", "setting", alt.Tooltip("speedup:Q", format=".3f")],
    ).properties(width=520, height=300, title=["One setting changed at a time, emulated Pico",
                                             "flash runs: cycle-counted + XIP miss model, 60 cycles per miss"]),
        alt_text="Scatter plot of relative speed for KV cache off, float32 and weights in SRAM against size."))

# %% [markdown]
# Median over the models, relative to int8 with weights in flash and a KV cache (above 1 is
# faster): KV cache off {glue:text}`iso_kv_cache_off:.3f`, float32 from flash
# {glue:text}`iso_float32_flash:.3f`, float32 from SRAM {glue:text}`iso_float32_sram:.3f`,
# int8 from SRAM {glue:text}`iso_int8_sram:.3f`. Without a cache the cost of a token grows with
# its position (these runs generate {glue:text}`n_tokens_g` tokens after a
# {glue:text}`n_prompt_g`-token prompt; longer texts lose more). Soft float costs tens of cycles
# per multiply-accumulate even with the ROM routines. SRAM helps once the model is larger than
# the 16 KB cache, and only while it fits: a copy of the weights competes with the KV cache
# and the activations for 264 KB.
#
# ## What fits
#
# Every run's peak SRAM against the model size; the Pico has 264 KB of SRAM and 2 MB of
# flash (less the firmware). Runs that did not fit are marked.

# %%
glue("n_tokens_g", int(n_tokens), display=False)
glue("n_prompt_g", int(n_prompt), display=False)
fit = runs[runs["scheme"] == "int8"].copy()
fit["model_kb"] = fit["model_bytes"] / 1024
fit["sram_kb"] = fit["peak_ram_bytes"].fillna(264 * 1024) / 1024
fit["placement"] = fit["weights"].map({"flash": "weights in flash", "sram": "weights in SRAM"})
points = alt.Chart(fit).mark_point(filled=True, size=55).encode(
    x=alt.X("model_kb:Q", scale=alt.Scale(type="log"), title="model file (KB, log scale)"),
    y=alt.Y("sram_kb:Q", title="peak SRAM (KB; does-not-fit runs drawn at the limit)"),
    color=alt.Color("status:N", title="status"), shape=alt.Shape("placement:N", title="placement"),
    tooltip=["model_id", "n_params", "weights", "status", "message", alt.Tooltip("sram_kb:Q", format=".1f")])
limit = alt.Chart(pd.DataFrame({"y": [264.0]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
flash = alt.Chart(pd.DataFrame({"x": [2048.0]})).mark_rule(strokeDash=[2, 2], color="gray").encode(x="x:Q")
show((points + limit + flash).properties(width=520, height=320, title="Which models fit the emulated Pico"),
     alt_text="Scatter plot of peak SRAM against model file size, with the 264 KB SRAM line and the 2 MB flash "
              "line; models with weights in SRAM stop fitting beyond about 200 KB.")

# %%
fits = runs[(runs["scheme"] == "int8") & (runs["weights"] == "flash") & runs["kv_cache"]]
glue("largest_fit_params", int(fits[fits["status"] == "ok"]["n_params"].max()), display=False)
nofit = fits[fits["status"] == "does_not_fit"]
glue("smallest_nofit", f"{int(nofit['n_params'].min()):,} parameters" if len(nofit)
     else "none: every model of this build fits", display=False)
per_model = summary(runs)
table(per_model, caption="Per model (int8, KV cache): tokens/s at 133 MHz with weights in flash and in SRAM, "
                         "status and peak SRAM with weights in flash. Every run, with raw and cache-model "
                         f"cycles, prefill and load times: {results_dir}/device/c_runs.jsonl", precision=1)

# %% [markdown]
# With weights in flash the largest model that ran has {glue:text}`largest_fit_params:,d`
# parameters; the smallest that did not fit has {glue:text}`smallest_nofit`. In flash, the
# model file is the limit (2 MB less the firmware); in SRAM, the KV cache grows with
# layers × width × context and is sized here for the run's context only.
#
# **Reproduce:** `make bench-device` (or this chapter with `recompute = true`) rebuilds the
# firmware, runs every model and appends to `device/c_runs.{jsonl,parquet}` under the chapter's
# `results_dir` (`data/results` for this book); a
# killed run resumes where it stopped. The C runtime's own tests: `pytest tests/test_c_runtime.py
# tests/test_emulator.py`.
