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
# The C runtime of chapter 06 needs a toolchain and a flashed firmware. The other way to run
# a model on a Pico is the one most people already have: the stock MicroPython firmware and a
# USB cable. `device/micropython/` is a small package that does that: a streaming loader that
# checks the model file's CRC-32s while it reads each tensor straight into its own buffer, the
# int8 integer-only engine of `device/FORMAT.md` with `@micropython.asm_thumb` kernels (viper and
# pure Python as fallbacks, chosen at import), and the specified sampler. The host side,
# `starmind board ...`, drives any board through `mpremote` only.
#
# This page shows four kinds of figures and never mixes them:
#
# - **emulated stock firmware (MicroPython 1.27, rp2040js cycle-counted)**: the runtime on the
#   stock v1.27 firmware itself (the RPI_PICO build with a UART console), booted in rp2040js
#   and driven by the real `mpremote` (`python -m starmind_lib.devices.measure`). Time is
#   emulated cycles at the firmware's own clock, 125 MHz (`machine.freq()`); heap figures are
#   the firmware's `gc.mem_free()`. rp2040js is a per-instruction timing model of the
#   Cortex-M0+: it models no XIP flash cache, no QSPI latency, no bus contention and no second
#   core. Against a real RP2040 it is 3 to 8 % optimistic on public MicroPython micro-benchmarks
#   (integer, float, loops), except big-integer arithmetic (32 % faster), as measured by whoever
#   built the shared firmware image (its `SOURCE.md`), not by this project. These are not hardware
#   measurements;
# - **predicted**: the memory planner and speed predictor (`starmind_lib/devices/planner.py`),
#   calibrated on those rows, only for a model that has no measured row;
# - **virtual board: behaviour only**: the runtime under MicroPython's WebAssembly port; it
#   proves behaviour, not speed or memory;
# - **measured on hardware**: the same runner on a real Pico, when one was attached
#   (`board_port`).

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


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("06b_micropython", globals())

# %%
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.bench import micropython as bmp
from starmind_lib.book.figures import no_figure, show, table
from starmind_lib.chapters import ch06b_micropython as ch
from starmind_lib.devices import calibration
from starmind_lib.numbers import fmt_num

m = ch.measured_runs(results_dir)
runs = m.rows
err = ch.planner_errors(runs)
check = ch.memory_check(runs)
for name, value in ch.numbers(m, err, check).items():
    glue(name, value, display=False)
models, synthetic = bmp.study_models(results_dir)
predicted = ch.predicted_frame(models, runs)
glue("mp_n_predicted", fmt_num(len(predicted), sig=None), display=False)
glue("mp_predicted_points", f"The {fmt_num(len(predicted), sig=None)} study models with no measured row appear as "
     "predicted points." if len(predicted) else "Every study model has a measured row, so no point is predicted.",
     display=False)
glue("mp_placement_text", ch.placement_text(results_dir, runs, m.runtime), display=False)
glue("mp_placement_outside", ch.placement_outside_text(results_dir, runs, m.runtime), display=False)
glue("mp_repeat_text", ch.repeat_text(runs), display=False)
holdout = calibration.read_holdout(results_dir)
glue("mp_holdout_text", calibration.holdout_words(holdout), display=False)
glue("mp_n_study", fmt_num(len(models), sig=None), display=False)
if runs.empty:
    display(Markdown(f"> **No emulated-firmware rows** in `{results_dir}/device/micropython_runs`: every figure "
                     "below is predicted. Measure with `python -m starmind_lib.devices.measure`."))

# %% [markdown]
# ## What was measured
#
# The table `device/micropython_runs` holds one row per model, weights mode and kernel kind,
# keyed with the hash of the runtime's sources. This page uses the
# {glue:text}`mp_n_rows` rows of runtime {glue:text}`mp_runtime` ({glue:text}`mp_tree_is_runtime`):
# {glue:text}`mp_n_models` models, the committed reference
# models and the study's architectures. Each study architecture was exported untrained (seeded
# weights, the same shapes, vocabulary and context): no trained checkpoint of most of them is on
# the measuring machine. Heap and load time follow the shapes; speed mostly does (see below the
# effect of the file's header); the tokens are still checked against the reference engine run on
# the same file. Of these rows, {glue:text}`mp_n_clean` were measured from a clean commit and
# {glue:text}`mp_n_dirty` from a tree with uncommitted changes (commits:
# {glue:text}`mp_commits`): where a job was measured both ways, the clean row is used, and
# {glue:text}`mp_n_superseded` superseded rows of this runtime stay in the table. It also keeps
# {glue:text}`mp_n_history` rows of {glue:text}`mp_n_history_runtimes` earlier runtimes as
# history; they are not used here. The earlier runtimes' rows were measured on architecture files
# exported by an earlier version of the exporter, with format v1 headers; the files of these rows are
# today's exports, format v2, with the same tensors byte for byte. Run on the same runtime, an earlier
# file and today's file give the same tokens but not the same cycles: on MicroPython a token's cost
# depends on more than the model's shape and weights (on the C runtime it does not: chapter 06 tests it).
#
# {glue:text}`mp_n_ok` runs finished and {glue:text}`mp_n_failed` did not; {glue:text}`mp_n_match`
# of the finished runs generated exactly the reference engine's tokens.

# %% [markdown]
# ## Speed at the firmware's clock
#
# Each run generates {glue:text}`mp_n_tokens` tokens after a one-token prompt, so the last step attends over
# the whole context; every speed is emulated cycles at the clock the firmware reports,
# {glue:text}`mp_clock_mhz`. Near 10K parameters, with weights in RAM: {glue:text}`mp_10k_text`. Near
# 100K: {glue:text}`mp_100k_text`. The fastest run reaches {glue:text}`mp_max_tok_s` tokens/s. Weights streamed from flash are slower here although the emulator charges flash
# reads like SRAM reads: the runtime copies each block of rows into a buffer every token.
# {glue:text}`mp_predicted_points`

# %%
if runs.empty and predicted.empty:
    display(no_figure("no emulated-firmware rows and no study models to predict"))
else:
    display(show(ch.speed_chart(runs, predicted),
                 alt_text="Tokens per second against parameter count, log scales, for weights in RAM and in "
                          "flash, measured on the emulated stock firmware; predicted points only for models "
                          "with no measured row."))

# %% [markdown]
# ## Memory: heap after loading, allocation per token
#
# The loader is written for a heap of about 240 KB that a collection cannot compact. It reads the
# tensor table first and allocates every tensor's buffer back to back, before reading any data, so
# the loader's temporary objects leave no hole between two tensors; the engine's buffers (the KV
# cache above all) are allocated before the tensors, while the heap is still one free block. It
# keeps each requantisation table, two int32 per row in the file, as two uint16 per row (the format
# bounds them to 65,535 and 30), and once the table is read it keeps only the header's vocabulary and
# encoder section.
#
# The UART build's heap has {glue:text}`mp_heap_uart` bytes free after boot (the USB build a user's
# Pico runs: {glue:text}`mp_heap_usb`). After loading, between {glue:text}`mp_heap_min` and {glue:text}`mp_heap_max` bytes
# stay free; loading takes {glue:text}`mp_load_min` to {glue:text}`mp_load_max` ms. With weights
# in RAM a generated token allocates {glue:text}`mp_alloc_ram` bytes (measured with
# `gc.mem_alloc()` around the token loop); with weights in flash,
# {glue:text}`mp_alloc_flash` bytes. The largest model that ran with its weights in RAM has
# {glue:text}`mp_largest_ram`. {glue:text}`mp_probes_text`

# %%
if runs.empty:
    display(no_figure("no emulated-firmware rows to show the heap of"))
else:
    display(show(ch.heap_chart(runs),
                 alt_text="Heap free after loading each model against its parameter count, for weights in RAM "
                          "and in flash; failed runs at zero."))

# %%
meas = ch.measured_table(runs)
if meas.empty:
    display(no_figure("the measured table has no rows"))
else:
    display(table(meas, caption=ch.MEASURED_CAPTION, precision=3, max_rows=12,
                  head=ch.rows_that_matter(runs, meas), name="micropython_measured"))

# %% [markdown]
# ## Models with no measured row (predicted)
#
# For the study's {glue:text}`mp_n_study` architectures, {glue:text}`mp_n_predicted` have no
# measured row yet; for them the calibrated planner says whether they fit and how fast they would
# run with asm kernels, at a context of {glue:text}`mp_n_tokens` tokens. Every figure in this table is predicted.

# %%
if predicted.empty:
    display(no_figure("every study model has a measured row"))
else:
    display(table(predicted.sort_values("parameters"), caption="Predicted by the calibrated planner (no measured row)",
                  precision=3, max_rows=8, name="micropython_predicted"))

# %% [markdown]
# ## The planner against the measurements
#
# The planner (`python -m starmind_lib.devices.calibration --write`) is fitted to these rows.
# On them its speed lies between {glue:text}`mp_err_low` and
# {glue:text}`mp_err_high` of the measured speed over {glue:text}`mp_err_n` runs, and
# {glue:text}`mp_err_outside` lie outside the range it states, which is that fit's worst error:
# this says how well it fits, not how well it predicts. For a model it has not seen, each model
# was left out of the fit in turn and predicted by a fit of the others (`make bench-planner`):
# {glue:text}`mp_holdout_text`. Its memory verdicts are checked
# against the {glue:text}`mp_mem_judged` runs that either ran or failed for lack of room
# ({glue:text}`mp_mem_failed` failed): it said "fits" for {glue:text}`mp_fit_but_fails` runs that
# failed (this must be 0) and "does not fit" for {glue:text}`mp_no_but_ran` runs that ran.
#
# Part of the speed error is in the measurements themselves. Loaded in a fresh session after a pad
# of 0 to 5,000 bytes that stays allocated (`python -m starmind_lib.devices.placement`), so that only
# where its buffers land in the heap changes, the same file on the same runtime takes:
# {glue:text}`mp_placement_text` (the measuring session runs many models one after another on one
# board). The tokens are the same each time. rp2040js charges every SRAM access the same, so what
# moves is the interpreter's path, not the memory. The pads explore only part of it
# ({glue:text}`mp_placement_outside`), so this is a lower bound on how far a run of the same file
# can move: a model of the shapes alone cannot predict a run more closely. The measuring session has
# repeats of its own: a configuration that several sweep axes share was run once under each of its names,
# the same file each time, one after another on one board. In cycles per token,
# {glue:text}`mp_repeat_text`. So a difference between two MicroPython speeds on this page that is
# within those spreads is no evidence that one model is faster.

# %%
if err.empty:
    display(no_figure("no measured run to compare the planner with"))
else:
    display(show(ch.error_chart(err),
                 alt_text="The calibrated planner's speed error in percent against parameter count, per kernels "
                          "and weights mode."))
    display(table(ch.error_summary(err), caption="Planner speed error after calibration, per kernels and weights "
                                                 "(emulated stock firmware), on the rows it was fitted to", precision=2))
if len(holdout):
    display(table(calibration.holdout_table(holdout), caption="Planner speed error on models left out of its fit, "
                  "one at a time (predicted against emulated stock firmware)", precision=1))
if not check.empty:
    display(table(ch.memory_crosstab(check), caption="Memory verdicts against the measured runs"))

# %% [markdown]
# ## Correctness on MicroPython (virtual board: behaviour only)
#
# The runner deploys the runtime as bytecode `.mpy` (the WebAssembly port has no native
# emitter, so the asm and viper modules are left out and the runtime falls back to its
# pure-Python kernels), copies each reference model, and generates with the reference engine's settings:
# greedy and three sampled settings per model. {glue:text}`mp_virtual_identical` of
# {glue:text}`mp_virtual_runs` runs return exactly the golden token ids. The native kernels
# themselves run on the emulated stock firmware above, against the same golden vectors.

# %%
try:
    virtual = bmp.run_virtual_check(results_dir, profile=profile, recompute=recompute)
except Exception as e:  # noqa: BLE001 - no Node.js here: say so instead of failing the page
    virtual = pd.DataFrame()
    display(Markdown(f"> The virtual board could not run in this build: {e}"))
if len(virtual):
    glue("mp_virtual_runs", fmt_num(int(virtual["runs"].sum()), sig=None), display=False)
    glue("mp_virtual_identical", fmt_num(int(virtual["identical"].sum()), sig=None), display=False)
    display(table(virtual[["model", "runs", "identical", "runtime", "prompt_text", "greedy_text", "label"]],
                  caption="Virtual board (MicroPython 1.27, WebAssembly): behaviour only, no speed or memory "
                          "figures"))
else:
    glue("mp_virtual_runs", "0", display=False)
    glue("mp_virtual_identical", "0", display=False)
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
# stopped. A real board's rows use the clock it reports (`machine.freq()`).

# %%
if recompute and board_port:
    bmp.run_hardware(board_port, results_dir, runs_dir, n_tokens=n_tokens, profile=profile)
hardware = ch.hardware_table(results_dir)
glue("mp_n_measured", fmt_num(len(hardware), sig=None), display=False)
if len(hardware):
    display(table(hardware, caption="Measured on hardware (MicroPython, real board)", precision=3))
else:
    display(Markdown("> **No board was attached for this build:** the speed and memory figures above come from "
                     "the emulated stock firmware, or are labelled predicted; none was measured on hardware."))
