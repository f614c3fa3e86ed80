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
# # MicroPython on a stock Pico
#
# The C runtime of this chapter needs a toolchain and a flashed firmware. The other way to run
# a model on a Pico is the one most people already have: the stock MicroPython firmware and a
# USB cable. `device/micropython/` is a small package that does that: a streaming loader that
# checks the model file's CRC-32s while it reads each tensor straight into its own buffer, the
# int8 integer-only engine of `device/FORMAT.md` with `@micropython.viper` kernels (int8 weights
# read through `ptr8`, int32 accumulation, no allocation per token), a pure-Python fallback for
# ports without viper, a float path for comparison, and the specified sampler. The host side,
# `starmind board ...`, drives any board through `mpremote` only.
#
# This page shows three kinds of figures and never mixes them:
#
# - **predicted**: the memory planner and the speed predictor (`starmind_lib/devices/planner.py`)
#   for a stock Pico with MicroPython 1.27, from the model's shapes, operation counts and
#   per-operation cycle costs measured for MicroPython;
# - **virtual board: behaviour only**: the runtime under real MicroPython 1.27 (its WebAssembly
#   port) driven by the real `mpremote`, checked token for token against the reference engine;
#   its heap grows on demand and its clock is the host's, so it proves behaviour, not speed or
#   memory;
# - **measured on hardware**: the same runner on a real Pico, when one was attached
#   (`board_port`); see the README, "Running chapter 06 with a real Pico".

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
board_port = ""          # e.g. "/dev/ttyACM0": measure on a real Pico (needs recompute)
n_tokens = 32            # tokens generated per hardware run
context = 64             # positions in the KV cache the planner assumes (0: each model's max_seq_len)


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("06b_micropython", globals())

# %%
import altair as alt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.bench import micropython as bmp
from starmind_lib.devices import planner
from starmind_lib.devices.mpremote_board import runs_table
from starmind_lib.book.figures import show, table

models, synthetic = bmp.study_models(results_dir)
plan = bmp.planner_frame(models, context=context or None)
source = "the architecture study's models" if not plan["model"].str.startswith("ref_").all() else \
    "the committed reference models (no sweep table in this build)"
display(Markdown(f"**Source of this build:** {len(plan)} models, {source}, from `{results_dir}`."))
if synthetic:
    display(Markdown("> **Synthetic data.** These models were trained on generated stories: their shapes "
                     "are real, their quality says nothing about TinyStories."))

# %% [markdown]
# ## Which models fit a stock Pico's heap (predicted)
#
# MicroPython keeps everything on one garbage-collected heap: about 246 KB on a Pico with
# MicroPython 1.27, of which about 244 KB are free after boot with the USB console (published
# figures for older releases: 233 KB total on 1.23, 210 KB free on 1.20). The runtime needs
# the weights (one int8 buffer per tensor plus its per-row requantisation constants), the int8
# KV cache for {glue:text}`mp_context` positions, int32 activation buffers, the tables, its own
# code (about 20 KB of `.mpy` for armv6m) and the interpreter's working set. A fragmented heap
# cannot give its whole free total as one block, so the largest tensor must fit a smaller
# budget too. A model whose weight matrices would take more than 60% of the free heap is run
# with its matrices left in the file on the Pico's flash: each token streams them through one
# 4 KB buffer in blocks of rows (slower, but the heap then holds only the KV cache, the
# per-row constants and the buffers). Of the {glue:text}`mp_n_models` models, the planner
# predicts that {glue:text}`mp_n_ram` fit with their weights in RAM and
# {glue:text}`mp_n_flash` more with their weights streamed from flash;
# {glue:text}`mp_n_nofit` do not fit at all. The largest model that fits in RAM has
# {glue:text}`mp_largest_ram:,d` weights. The runner refuses a model the planner rejects
# (status `does_not_fit`) unless forced.

# %%
glue("mp_context", int(context) if context else "max_seq_len", display=False)
glue("mp_n_models", len(plan), display=False)
in_ram = plan[plan["fits"] & (plan["weights"] == "ram")]
glue("mp_n_ram", len(in_ram), display=False)
glue("mp_n_flash", int((plan["fits"] & (plan["weights"] == "flash")).sum()), display=False)
glue("mp_n_nofit", int((~plan["fits"]).sum()), display=False)
glue("mp_largest_ram", int(in_ram["n_params"].max()) if len(in_ram) else 0, display=False)
plot = plan.assign(fit=[("weights in RAM" if w == "ram" else "weights streamed from flash") if f
                        else "will not fit" for f, w in zip(plan["fits"], plan["weights"])])
chart = alt.Chart(plot).mark_point(filled=True, size=70).encode(
    x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title="weights (count, log scale)"),
    y=alt.Y("heap_needed_kb:Q", scale=alt.Scale(type="log"), title="heap needed (KB, predicted, log scale)"),
    color=alt.Color("fit:N", title="stock Pico, MicroPython 1.27"),
    tooltip=["model", "n_params", alt.Tooltip("heap_needed_kb:Q", format=".1f"), "reason"],
)
limit = alt.Chart(pd.DataFrame({"kb": [planner.PICO_HEAP_FREE_AFTER_BOOT / 1024]})).mark_rule(
    strokeDash=[6, 4], color="gray").encode(y="kb:Q")
show((chart + limit).properties(width=520, height=300, title="Predicted heap of each model (dashed: 244 KB free)"),
     alt_text="Scatter plot of the predicted heap each model needs against its weight count, log scales; "
              "a dashed line marks the 244 KB a stock Pico has free.")

# %% [markdown]
# ## How fast would they run (predicted)
#
# The speed predictor counts, per generated token, the multiply-accumulates (the matrices,
# attention over the context, the output head), the element-wise operations (norms, softmax,
# requantisation, lookup tables) and the kernel calls made from bytecode, and prices them with
# cycle costs measured on MicroPython 1.27 for a 64x64 matrix-vector product: 40 to 70 cycles
# per multiply-accumulate in viper with int8 `ptr8`/`ptr32`, 1,400 in integer bytecode, 3,600 in
# float bytecode (published: about 1,000 cycles per simple bytecode loop iteration and 1,700
# per boxed float operation at 125 MHz). Streaming weights from flash adds reading every
# matrix once per token, at an assumed 0.5 to 1.5 MB/s (not measured). The bars span the low and
# high costs. Every figure here is **predicted** at 133 MHz. The fastest model that fits is predicted at
# {glue:text}`mp_best_tok_s:.0f` tokens/s with viper kernels; a model near 10K weights at
# {glue:text}`mp_tok_s_10k:.0f` tokens/s (target: at least 100).

# %%
fit = plan[plan["fits"]].copy()
glue("mp_best_tok_s", float(fit["tok_s_viper"].max()) if len(fit) else 0.0, display=False)
near = plan.iloc[(plan["n_params"] - 10_000).abs().argsort()[:1]]
glue("mp_tok_s_10k", float(near["tok_s_viper"].iloc[0]), display=False)
long = pd.concat([plan.assign(kernels=k, tok_s=plan[f"tok_s_{k}"], low=plan[f"tok_s_{k}_low"],
                              high=plan[f"tok_s_{k}_high"]) for k in ("viper", "python")])
base = alt.Chart(long).encode(x=alt.X("n_params:Q", scale=alt.Scale(type="log"), title="weights (log scale)"),
                              color=alt.Color("kernels:N", title="kernels"))
points = base.mark_point(filled=True).encode(
    y=alt.Y("tok_s:Q", scale=alt.Scale(type="log"), title="tokens/s on a stock Pico (predicted, log scale)"),
    shape=alt.Shape("weights:N", title="weights"),
    tooltip=["model", "kernels", alt.Tooltip("tok_s:Q", format=".1f"), "fits", "weights"])
bars = base.mark_rule().encode(y="low:Q", y2="high:Q")
display(show((bars + points).properties(width=520, height=300, title="Predicted decode speed, viper vs pure Python"),
             alt_text="Predicted tokens per second against weight count for viper and pure-Python kernels, "
                      "log scales; viper is about twenty times faster."))
table(plan.sort_values("n_params")[["model", "n_params", "fits", "weights", "heap_needed_kb", "tok_s_viper",
                                    "tok_s_python", "reason"]],
      caption="Planner and predictor per model (all figures predicted for a stock Pico, MicroPython 1.27)",
      precision=1)

# %% [markdown]
# ## Correctness on MicroPython (virtual board: behaviour only)
#
# The runner deploys the runtime as bytecode `.mpy` (the WebAssembly port has no native
# emitter, so the viper module is left out and the runtime falls back to its pure-Python
# kernels), copies each reference model, and generates with the reference engine's settings:
# greedy and three sampled settings per model. {glue:text}`mp_virtual_identical` of
# {glue:text}`mp_virtual_runs` runs return exactly the golden token ids. The viper kernels
# themselves are tested in `tests/test_micropython.py`: compiled for armv6m by `mpy-cross`, and
# executed by CPython through a model of viper's semantics (unsigned `ptr8`/`ptr16` loads,
# wrapping stores), against the same golden vectors.

# %%
try:
    virtual = bmp.run_virtual_check(results_dir, profile=profile, recompute=recompute)
except Exception as e:  # noqa: BLE001 - no Node.js here: say so instead of failing the page
    virtual = pd.DataFrame()
    display(Markdown(f"> The virtual board could not run in this build: {e}"))
if len(virtual):
    glue("mp_virtual_runs", int(virtual["runs"].sum()), display=False)
    glue("mp_virtual_identical", int(virtual["identical"].sum()), display=False)
    display(table(virtual[["model", "runs", "identical", "runtime", "prompt_text", "greedy_text", "label"]],
                  caption="Virtual board (MicroPython 1.27, WebAssembly): behaviour only, no speed or memory "
                          "figures"))
else:
    glue("mp_virtual_runs", 0, display=False)
    glue("mp_virtual_identical", 0, display=False)
    display(Markdown(f"> No virtual-board results in `{results_dir}/device/micropython_virtual` "
                     "(run this chapter with `recompute` true)."))

# %% [markdown]
# ## Measured on a real Pico
#
# With a board attached (`board_port`) and `recompute` true, the same runner benchmarks the
# study's exported int8 models (`<runs_dir>/smd/`, else the reference models) on it: load time,
# heap free before and after (`gc.mem_free`), milliseconds per prompt token and per generated
# token. A model that runs out of memory, hangs past the timeout or loses the connection is
# recorded with that status and the batch goes on; an interrupted batch resumes where it
# stopped. Measured figures replace the predictions wherever they exist.

# %%
if recompute and board_port:
    bmp.run_hardware(board_port, results_dir, runs_dir, n_tokens=n_tokens, profile=profile)
runs = runs_table(results_dir).frame()
measured = runs[runs["speed_source"] == "measured_hardware"] if len(runs) else runs
glue("mp_n_measured", len(measured), display=False)
if len(measured):
    cols = ["model", "board", "runtime", "status", "tokens_per_s", "ms_per_token", "load_ms", "heap_free_before",
            "heap_free_after", "message"]
    display(table(measured[cols], caption="Measured on hardware (MicroPython, real board)", precision=1))
else:
    display(Markdown("> **No board was attached for this build:** every speed and memory figure on this page is "
                     "predicted; none is measured."))
