# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Result tables and commands
#
# This page is generated when the book is built: it lists every result table under
# the build's `results_dir` with the provenance recorded in its rows, and the exact
# commands that rerun each chapter with this build's parameters.

# %% tags=["parameters"]
results_dir = "data/results"
runs_dir = "data/runs"
profile = "report"
recompute = False
data_source = "tinystories"
data_dir = ""
seed = 0


# %% tags=["remove-cell"]
from starmind_lib.profiles import check_notebook_params

check_notebook_params("09_appendix", globals())

# %%
from pathlib import Path

from IPython.display import Markdown
from myst_nb import glue

from starmind_lib.book.build import NOTEBOOKS_DIR, find_notebooks, papermill_command, rewrites, table_inventory
from starmind_lib.book.figures import table

inventory = table_inventory(results_dir)
glue("appendix_profile", profile, display=False)
glue("appendix_results_dir", results_dir, display=False)
glue("appendix_n_tables", len(inventory), display=False)
glue("appendix_n_rows", int(inventory["rows"].sum()) if len(inventory) else 0, display=False)
glue("appendix_data_source", data_source, display=False)

# %% [markdown]
# ## Result tables
#
# This build used the profile {glue:text}`appendix_profile` (data source
# {glue:text}`appendix_data_source`); it read {glue:text}`appendix_n_tables` tables
# with {glue:text}`appendix_n_rows` rows in all from {glue:text}`appendix_results_dir`.
# For each table: the files present (journal and snapshots), its rows, and the
# distinct git commits, profiles and machines that wrote them, with the time span.

# %%
if data_source == "synthetic":
    display(Markdown("**These tables were computed from synthetic data (smoke profile): they test the "
                     "pipeline and say nothing about real models.**"))
if len(inventory):
    display(table(inventory, caption=f"Result tables under {results_dir}"))
else:
    display(Markdown(f"No result tables under `{results_dir}` yet: run `make study` (profile full)."))

# %% [markdown]
# ## Rewrites of committed rows
#
# Result rows are appended, never edited. Where that rule was broken in the past, or a table
# lacks provenance columns, the change is disclosed here (from `rewrites.yaml` beside the tables).
# Rows marked `-dirty` were computed from uncommitted code: rows written since the `git_diff` column
# was added also record a hash of the uncommitted diff (older rows lack it), and diffs under 256 KB are
# kept beside the table in `diffs/<hash>.diff`.

# %%
past = rewrites(results_dir)
if len(past):
    display(table(past, caption="Past rewrites of committed result rows, and tables without provenance"))
else:
    display(Markdown(f"No rewrites are recorded for `{results_dir}`."))

# %% [markdown]
# ## Rerunning a chapter
#
# Each chapter can be rerun on its own, from the repository root, with this build's
# parameters; change any `-p name value` to vary it. `STARMIND_DATA_DIR` names a local
# TinyStories directory (what `make book DATA_DIR=...` sets); left empty, a chapter that
# needs the stories downloads them from Hugging Face.

# %%
commands = "\n\n".join(f"# {nb.stem}\n" + papermill_command(nb.stem, profile) for nb in find_notebooks(NOTEBOOKS_DIR))
display(Markdown(f"```bash\n{commands}\n```"))
