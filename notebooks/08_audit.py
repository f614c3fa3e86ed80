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
# # The claims audit
#
# An earlier public write-up ran tiny transformers on a Raspberry Pi Pico under CircuitPython and drew
# thirteen conclusions from it. It reported "176 architectures tested", but the models of that study
# were never trained: their speed was measured on random weights, so their output was never judged.
# The write-up did train three checkpoints on a GPU, outside the study; its GPU trainer's attention
# had no causal mask (its study models and its device code were causal). This chapter restates each
# conclusion neutrally and checks it against this study's tables.
#
# Every verdict below is computed by code (`starmind_lib/analysis/audit.py`, one small function per
# claim) from the result tables of chapters 01 to 06, never typed in, and says what happened:
#
# * *supported*: the effect is there, within the claimed size;
# * *refuted*: the effect is absent, or goes the other way;
# * *direction supported, size differs*: the effect is there, but larger or smaller than claimed;
# * *not comparable*: our setting cannot be matched to the write-up's;
# * *inconclusive*: the evidence is missing, or the runtimes disagree (each runtime's verdict is then
#   given beside it).
#
# Where the write-up gives its setting (prompt length, tokens generated, training budget), the claim is
# evaluated at that setting beside ours; where it does not, the verdict says at which of ours it was
# measured. The rules:
#
# * **Like with like.** The write-up measured an interpreter on a real board. Its absolute speeds are
#   compared only with MicroPython speeds measured on a real Pico. Our C runtime runs on the emulated
#   Pico (rp2040js, cycle-counted at 133 MHz; see the note below); its numbers are shown beside them and
#   labelled, never mixed in. Relative effects (what a change of architecture does to
#   speed) are checked on each runtime separately, and a verdict stands only when the runtimes agree.
# * **No verdict from predictions.** MicroPython speeds predicted by the planner (chapter 06) are shown,
#   labelled *predicted*, and leave the verdict *inconclusive*.
# * **Missing evidence is said, not filled in.** When a profile lacks the tables a claim needs (no real
#   board, no GPU run), the verdict is *inconclusive* and says why.
# * **Quality counts.** A fast model that only emits noise is not a result: speed tables carry each
#   model's bits per character. Quality on this page is {glue:text}`audit_bpc_source`.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0
# Rows of each claim's evidence table shown on the page (the full tables are in results_dir).
max_rows = 15


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("08_audit", globals())

# %%
from IPython.display import Markdown, display
from myst_nb import glue

from starmind_lib.analysis import audit
from starmind_lib.analysis.tables import EMULATION_NOTE, XIP_NOTE
from starmind_lib.book.figures import show, table

synthetic = data_source == "synthetic"
data = audit.AuditData.load(results_dir, synthetic=synthetic)
verdicts = {v.claim_id: v for v in audit.run_audit(data)}
if recompute:
    audit.save_summary(list(verdicts.values()), results_dir, profile)
for kind, n in audit.counts(list(verdicts.values())).items():
    glue(f"n_{kind.replace(',', '').replace(' ', '_')}", f"{n}", display=False)
for cid, v in verdicts.items():
    glue(f"verdict_{cid}", v.verdict, display=False)
glue("audit_bpc_source", data.bpc_source or "not available (no sweep table)", display=False)
glue("audit_int8_file_size", audit.file_size_text(data), display=False)


def show_verdict(cid):
    """The measurement, the runtime it comes from, the figure and the evidence table of one claim."""
    v = verdicts[cid]
    note = " (synthetic data: proves the pipeline, not the study)" if synthetic else ""
    per_rt = audit.per_runtime_text(v)
    display(Markdown(f"**Our measurement{note}.** {v.measurement_text}"
                     + (f"\n\n*Verdict per runtime:* {per_rt}." if per_rt else "")
                     + (f"\n\n*At the write-up's setting:* {v.claim_setting}" if v.claim_setting else "")
                     + (f"\n\n*Numbers from:* {v.runtime}." if v.runtime else "")
                     + (f"\n\n*{XIP_NOTE}*" if "XIP" in v.runtime else "")))
    if v.figure is not None:
        display(show(v.figure))
    if not v.evidence.empty:
        display(table(audit.readable(v.evidence), caption=f"Evidence for claim {cid}", max_rows=max_rows,
                      name=f"claim_{cid:02d}_evidence"))


display(Markdown(f"**How the emulated speeds were obtained.** {EMULATION_NOTE} {XIP_NOTE}"))
if synthetic:
    display(Markdown(f"**These verdicts come from synthetic stories and tiny models (profile `{profile}`): "
                     "they prove the pipeline, not the study.**"))

# %% [markdown]
# ## Summary
#
# The thirteen claims, by verdict: supported, {glue:text}`n_supported`; refuted, {glue:text}`n_refuted`;
# direction supported but size differs, {glue:text}`n_direction_supported_size_differs`; not comparable,
# {glue:text}`n_not_comparable`; inconclusive with the evidence at hand (or depending on the runtime),
# {glue:text}`n_inconclusive`.

# %%
table(audit.summary(list(verdicts.values())), caption="Every claim, its verdict and our measurement")

# %% [markdown]
# ## Claim 1: Vocabulary size
#
# > Vocabulary is limited to 256 tokens by memory fragmentation; 512 and more fail.
#
# The write-up found that vocabularies above 256 tokens failed to load, and blamed heap fragmentation.
# We run models with vocabularies from 32 to 4096 tokens on each runtime and count which load and
# generate. A vocabulary of 512 or more that runs refutes the limit; the runtime it ran on says
# whether the limit was the hardware or one runtime's allocator.
#
# Verdict: **{glue:text}`verdict_1`**.

# %%
show_verdict(1)

# %% [markdown]
# ## Claim 2: A 10K-parameter ceiling
#
# > About 10K parameters is the practical limit on the RP2040.
#
# The write-up put the practical limit near 10,000 parameters. We take *practical* to mean: it loads
# and generates at least one token per second, and look for the largest model that does.
#
# Verdict: **{glue:text}`verdict_2`**.

# %%
show_verdict(2)

# %% [markdown]
# ## Claim 3: What costs speed
#
# > Speed impact, most to least: width (40-50% slower per doubling), depth (25-40% per extra layer),
# > heads (20-25% per doubling), FFN ratio (15-20% per doubling), vocabulary (8-12% per doubling).
#
# The write-up ranked five architectural changes by how much they slow generation. We take every pair
# of device runs that differ in one factor only (same runtime, precision and settings) and compute the
# slowdown per doubling (per extra layer for depth); the claim holds on a runtime when the order and
# every range match within 5 percentage points.
#
# Verdict: **{glue:text}`verdict_3`**.

# %%
show_verdict(3)

# %% [markdown]
# ## Claim 4: Ultra-narrow models
#
# > 1-wide models are the fastest (32 tokens/s) and 2-wide reach 24 tokens/s; such models do work.
#
# The write-up reported 1- and 2-wide models as the fastest, and took that as evidence that such
# models work. Speed is the easy half: the question is whether their text is better than letter
# frequencies alone (the unigram baseline, in bits per character). Each width is judged on its own, at
# the training budget that scored it: a width that does not beat letter frequencies beyond seed noise
# reaches nothing, however fast.
#
# Verdict: **{glue:text}`verdict_4`**.

# %%
show_verdict(4)

# %% [markdown]
# ## Claim 5: More heads, more speed?
#
# > More attention heads make inference faster.
#
# The write-up reported that more attention heads made inference faster. With the width fixed, more
# heads means the same multiply-accumulates split into more, smaller pieces; we compare runs that
# differ only in the number of heads.
#
# Verdict: **{glue:text}`verdict_5`**.

# %%
show_verdict(5)

# %% [markdown]
# ## Claim 6: Fat feed-forward layers
#
# > Fat FFN layers (64x to 256x the width) are more efficient than thin ones.
#
# The write-up recommended feed-forward layers 64 to 256 times wider than the model. *More efficient*
# here means better quality for the parameters spent: we look at which FFN ratios sit on the front of
# quality against size. Designs are compared at one training budget (Study v2's base tier, where every
# configuration has its seeds), and a configuration trained under several names counts once.
#
# Verdict: **{glue:text}`verdict_6`**.

# %%
show_verdict(6)

# %% [markdown]
# ## Claim 7: Golden-ratio allocations
#
# > Fibonacci and golden-ratio allocations of parameters are optimal.
#
# The write-up recommended Fibonacci widths and golden-ratio proportions. The sweep trained those
# allocations (its `golden` axis) beside the rest of the grid; a golden configuration that a smaller,
# non-golden one beats by more than seed noise refutes optimality. As for claim 6, at one training
# budget, each configuration counted once.
#
# Verdict: **{glue:text}`verdict_7`**.

# %%
show_verdict(7)

# %% [markdown]
# ## Claim 8: Quantisation and speed
#
# > Quantisation saves memory but slows inference through de-quantisation overhead.
#
# The write-up found that quantised weights saved memory but slowed inference, because each weight had
# to be converted back to a float. Our int8 runtime never converts: it multiplies integers. We compare
# the same model as float32 and int8 on the same runtime.
#
# Verdict: **{glue:text}`verdict_8`**.

# %%
show_verdict(8)

# %% [markdown]
# ## Claim 9: Computation or memory?
#
# > The RP2040's bottleneck is computation, not memory bandwidth.
#
# The write-up concluded that the RP2040 is limited by computation, not memory bandwidth. The emulated
# Pico runs each model with its weights in SRAM and with them read through the 16 KB XIP flash cache;
# if memory mattered little, the two would take about the same cycles. The int8 and float32 files of one
# model differ in size (claim 8): {glue:text}`audit_int8_file_size`. So each pair of runs is placed by its
# own file's size, and each runtime gets its own verdict. The flash figures rest on the project's XIP
# cache model (a fixed 60-cycle penalty per miss), which rp2040js does not have.
#
# Verdict: **{glue:text}`verdict_9`**.

# %%
show_verdict(9)

# %% [markdown]
# ## Claim 10: The KV cache
#
# > A KV cache speeds multi-token generation 3 to 7 times.
#
# The write-up measured a 3 to 7 times speed-up from caching keys and values. We run the same model
# with and without the cache; the gain grows with the length generated, which each run records, so the
# verdict names the prompt and generation lengths it was measured at.
#
# Verdict: **{glue:text}`verdict_10`**.

# %%
show_verdict(10)

# %% [markdown]
# ## Claim 11: Chunked loading
#
# > Chunked loading removes large-allocation failures.
#
# The write-up loaded weights in chunks to avoid allocation failures. The MicroPython runtime can read
# each tensor with `readinto` into a preallocated buffer or read the whole file at once; we compare
# which models load each way.
#
# Verdict: **{glue:text}`verdict_11`**.

# %%
show_verdict(11)

# %% [markdown]
# ## Claim 12: Speed by model size
#
# > 1K-parameter models reach 15-32 tokens/s, 8K models 2-3, 10K models up to 14.5.
#
# The write-up gave speeds for 1K-, 8K- and 10K-parameter models (the last two are at odds with each
# other: a bigger model faster than a smaller one). These are interpreter speeds on a board, so the
# verdict needs MicroPython measured on a Pico; C and predicted speeds are shown for scale. Every speed
# is with the KV cache, one per model (a configuration's names count once), and a band's speed is the
# median over its models.
#
# Verdict: **{glue:text}`verdict_12`**.

# %%
show_verdict(12)

# %% [markdown]
# ## Claim 13: Training time
#
# > Each model trains in about 2 minutes on an H100.
#
# The write-up said each model would train in about two minutes on an H100; the models of its study
# were never trained (it trained three checkpoints on a GPU outside the study). Our sweep records, for
# every model, the machine it trained on, the tokens it saw and the wall time. The write-up names no
# token budget, so its two minutes cannot be set against ours; ours are shown at our budget.
#
# Verdict: **{glue:text}`verdict_13`**.

# %%
show_verdict(13)
