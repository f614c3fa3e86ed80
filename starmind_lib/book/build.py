"""Build the Starmind book: execute the stale chapter notebooks, then Jupyter Book.

    python -m starmind_lib.book.build build --profile smoke        # CI
    python -m starmind_lib.book.build build                        # profile `report` (committed tables)
    python -m starmind_lib.book.build build --force                # re-execute every chapter
    python -m starmind_lib.book.build check                        # every page in headless Chromium

Steps:

1. Every ``notebooks/NN*_*.py`` (jupytext percent format, one cell tagged
   ``parameters``) is converted with jupytext and executed with papermill, in
   file-name order, with the profile's parameters injected
   (``profiles.notebook_params``), working directory the repository root, on a
   kernel that runs this very interpreter (``sys.executable``). The executed
   copy goes to ``<out>/_executed/<stem>.ipynb``. A failing cell fails the build
   and the error names the notebook, the cell and the exception.
2. A chapter is executed only when it is stale. Its stamp
   (``<out>/_executed/<stem>.stamp.json``) holds a hash of everything that can
   change its output (see ``chapter_inputs``): the notebook text, its injected
   parameters, the library and device sources, ``STARMIND_DATA_DIR``, and the
   files under its ``results_dir`` that it reads. Which files it reads: every
   file there except those written by this chapter or a later one (recorded in
   the stamps by comparing ``results_dir`` before and after each run). So with
   the ``report`` profile (nothing written) any change to a committed table
   re-executes the chapters; with ``smoke`` a chapter re-executes when an
   earlier chapter changed its tables, never because of its own outputs.
   Artifacts under ``runs_dir`` are not hashed: they are keyed by config and
   always come with a result row, which is hashed.
3. The table of contents is ``book/_toc.yml``, the book's full plan. Entries
   whose notebook is not in the notebooks directory are dropped (chapters land
   one by one); notebooks present but not listed are appended at the end, so
   nothing written is silently left out. The resulting TOC is written to
   ``<out>/_executed/_toc.yml``.
4. ``jupyter-book build`` renders ``<out>`` (notebooks are NOT re-executed:
   ``execute_notebooks: off`` in ``_config.yml``) into ``<out>/_build/html``
   with ``-W --keep-going``: any Sphinx warning fails the build.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..profiles import available_profiles, load_profile, notebook_params
from ..provenance import REPO_ROOT, atomic_write_text
from .params import (BookError, check_parameters, parameters_cell_defaults,  # noqa: F401 (re-exported)
                     parameters_cell_names, unshown_figures, validate_all)

BOOK_DIR = REPO_ROOT / "book"
CONFIG_FILE = REPO_ROOT / "_config.yml"
TOC_TEMPLATE = BOOK_DIR / "_toc.yml"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED = "_executed"
ASSETS = "_assets"          # html_static_path in _config.yml
KERNEL_NAME = "starmind-python"
NOTEBOOK_GLOB = "[0-9][0-9]*_*.py"
# Sources whose change can change any chapter's output: the library and the device runtimes.
CODE_DIRS = ("starmind_lib", "device")
CODE_SUFFIXES = {".py", ".c", ".h", ".js", ".mjs", ".ld", ".S", ".s", ".md", ".json"}
SKIPPED_DIRS = {"node_modules", "build", "__pycache__", ".git"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ---- notebooks ------------------------------------------------------------------

def find_notebooks(notebooks_dir: Path) -> list[Path]:
    """The chapter notebooks, in execution order (file name: 01_data, ..., 06_device, 06b_micropython)."""
    if not notebooks_dir.is_dir():
        raise BookError(f"notebooks directory {notebooks_dir} does not exist")
    return sorted(notebooks_dir.glob(NOTEBOOK_GLOB))




# ---- staleness ------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    """{path relative to root: sha256} of every file under root (empty if root is missing)."""
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): _sha(p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def code_hash() -> str:
    """Hash of the library and device sources (build outputs and node_modules pruned, not walked)."""
    h = hashlib.sha256()
    for top in CODE_DIRS:
        for dirpath, dirnames, filenames in os.walk(REPO_ROOT / top):   # top-down: pruning works
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix in CODE_SUFFIXES:
                    h.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def resolve_dir(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def chapter_inputs(source: str, params: dict, code: str, results: dict[str, str],
                   not_inputs: set[str]) -> dict:
    """What a chapter's output depends on (the stamp); see the module docstring for the rule."""
    tables = {k: v for k, v in results.items() if k not in not_inputs}
    return {
        "notebook": _sha(source.encode()),
        "parameters": _sha(json.dumps(params, sort_keys=True, default=str).encode()),
        "code": code,
        "data_dir": os.environ.get("STARMIND_DATA_DIR", ""),
        "tables": _sha(json.dumps(tables, sort_keys=True).encode()),
    }


def read_stamp(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---- execution ------------------------------------------------------------------

def write_kernelspec(jupyter_dir: Path) -> None:
    """A kernelspec that runs this interpreter, so chapters use the project's venv, not whatever is on PATH."""
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        # Altair's default renderer emits HTML that loads Vega from a CDN: a chart left as a cell's
        # last expression (instead of figures.show) must render offline too.
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=['import starmind_lib.book.figures as _f; _f.enable_offline_renderer()']",
                 "--IPKernelApp.log_level=ERROR"],   # not the plain-TCP notice (a local, short-lived kernel)
        "display_name": "Python (Starmind)", "language": "python",
        # No progress bars (and no TqdmWarning naming a local path) on the book's pages.
        "env": {"PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"},
    }, indent=1))


def describe_failure(exc, path: Path, profile: str) -> str:
    tb = ANSI.sub("", "\n".join(getattr(exc, "traceback", []) or []))
    source = getattr(exc, "source", "")
    return (f"notebook {path} failed (profile {profile!r}) in cell {getattr(exc, 'exec_count', '?')}:\n"
            f"---- cell source ----\n{source}\n---- error ----\n"
            f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}\n{tb}")


def collapse_code_cells(nb) -> None:
    """Collapse every code cell's source in the book: readers see prose, figures and tables first;
    the code (and the parameters it ran with) stays one click away. Output a reader should not
    see on a page (stderr: progress bars, log lines, warnings naming local paths) is dropped from the
    book's copy; a failing cell fails the build before this."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and not {"hide-input", "remove-input", "remove-cell"} & set(tags):
            cell.metadata["tags"] = tags + ["hide-input"]


def execute_chapter(path: Path, params: dict, executed: Path, profile: str, log_output: bool = False) -> None:
    import logging

    import jupytext
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    # papermill warns about every common parameter a chapter does not declare; check_parameters decides.
    logging.getLogger("papermill").setLevel(logging.INFO if log_output else logging.ERROR)
    if log_output and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")

    nb = jupytext.read(path)
    check_parameters(params, parameters_cell_names(nb, path), path, profile)
    lost = unshown_figures(path.read_text(), path)
    if lost:
        raise BookError("\n".join(lost))
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python (Starmind)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    failed = executed.with_suffix(".failed.ipynb")
    with tempfile.TemporaryDirectory(prefix="starmind-jupyter-") as jdir:
        write_kernelspec(Path(jdir))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = jdir + (os.pathsep + old if old else "")
        try:
            out = pm.execute_notebook(nb, str(failed), parameters=params, kernel_name=KERNEL_NAME,
                                      cwd=str(REPO_ROOT), progress_bar=False, log_output=log_output)
        except PapermillExecutionError as exc:
            raise BookError(describe_failure(exc, path, profile) + f"\n(executed copy: {failed})") from None
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old
    collapse_code_cells(out)
    nbformat.write(out, str(failed))
    os.replace(failed, executed)


def execute_chapters(notebooks: list[Path], profile: str, out: Path, force: bool,
                     log_output: bool = False) -> list[str]:
    """Execute the stale chapters in order; return the stems that were executed."""
    exec_dir = out / EXECUTED
    exec_dir.mkdir(parents=True, exist_ok=True)
    code = code_hash()
    stems = [p.stem for p in notebooks]
    stamps = {s: read_stamp(exec_dir / f"{s}.stamp.json") for s in stems}
    ran = []
    for i, path in enumerate(notebooks):
        stem, params = path.stem, notebook_params(profile, path.stem)
        results_dir = resolve_dir(str(params.get("results_dir", "")))
        later_writes = {w for s in stems[i:] for w in stamps[s].get("writes", [])}
        before = file_hashes(results_dir) if params.get("results_dir") else {}
        inputs = chapter_inputs(path.read_text(), params, code, before, later_writes)
        executed = exec_dir / f"{stem}.ipynb"
        if not force and executed.exists() and stamps[stem].get("inputs") == inputs:
            print(f"[book] {stem}: up to date", flush=True)
            continue
        print(f"[book] {stem}: executing (profile {profile})", flush=True)
        t0 = time.time()
        (exec_dir / f"{stem}.stamp.json").unlink(missing_ok=True)
        execute_chapter(path, params, executed, profile, log_output)
        after = file_hashes(results_dir) if params.get("results_dir") else {}
        writes = {k for k, v in after.items() if before.get(k) != v} | set(stamps[stem].get("writes", []))
        stamps[stem] = {"inputs": inputs, "writes": sorted(writes), "profile": profile,
                        "seconds": round(time.time() - t0, 1)}
        atomic_write_text(exec_dir / f"{stem}.stamp.json", json.dumps(stamps[stem], indent=1))
        print(f"[book] {stem}: done in {time.time() - t0:.1f}s", flush=True)
        ran.append(stem)
    return ran


# ---- table of contents ------------------------------------------------------------

def _filter_entries(entries: list, present: set[str], listed: set[str]) -> list:
    """Drop TOC entries for absent chapters; an absent chapter's sections move up a level."""
    kept = []
    for entry in entries:
        entry = dict(entry)
        subs = _filter_entries(entry.pop("sections", []) or [], present, listed)
        doc = entry.get("file", "")
        if doc.startswith(EXECUTED + "/"):
            stem = doc.split("/", 1)[1]
            listed.add(stem)
            if stem not in present:
                kept.extend(subs)
                continue
        if subs:
            entry["sections"] = subs
        kept.append(entry)
    return kept


def effective_toc(template: dict, present: list[str]) -> dict:
    """The template TOC restricted to the chapters present, plus present chapters it does not list."""
    toc, listed = dict(template), set()
    for key in ("chapters", "sections"):
        if key in toc:
            toc[key] = _filter_entries(toc[key], set(present), listed)
    if "parts" in toc:
        toc["parts"] = [dict(part, chapters=_filter_entries(part.get("chapters", []), set(present), listed))
                        for part in toc["parts"]]
        toc["parts"] = [p for p in toc["parts"] if p["chapters"]]
    extra = [{"file": f"{EXECUTED}/{s}"} for s in present if s not in listed]
    if extra:
        print(f"[book] not in book/_toc.yml, appended at the end: {', '.join(s for s in present if s not in listed)}")
        if "parts" in toc:
            toc["parts"].append({"caption": "Further chapters", "chapters": extra})
        else:
            toc.setdefault("chapters", []).extend(extra)
    return toc


# ---- Jupyter Book -------------------------------------------------------------------

def mathjax_source() -> Path:
    """MathJax 3's single-file TeX-to-SVG build, shipped by the sphinx-mathjax-offline package."""
    from importlib import metadata
    try:
        dist = metadata.distribution("sphinx-mathjax-offline")
    except metadata.PackageNotFoundError:
        raise BookError("the package sphinx-mathjax-offline is not installed (it provides MathJax for "
                        "reading the book offline): run `make venv`") from None
    path = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax/tex-svg.js"))
    if not path.exists():
        raise BookError(f"sphinx-mathjax-offline has no {path.name}; reinstall it")
    return path


def stage_sources(out: Path) -> None:
    """Prose pages and assets into ``out`` (a no-op when out is book/ itself), plus Vega and MathJax."""
    from .figures import write_vega_bundle
    if (out / "_static").exists():
        # Jupyter Book would then load every .js under the static paths on every page (MathJax twice).
        raise BookError(f"{out / '_static'} exists: the book's static files belong in {ASSETS}/; move or remove it")
    if out.resolve() != BOOK_DIR.resolve():
        for page in BOOK_DIR.glob("*.md"):
            shutil.copy2(page, out / page.name)
        shutil.copytree(BOOK_DIR / ASSETS, out / ASSETS, dirs_exist_ok=True)
    write_vega_bundle(out / ASSETS)
    from .widget import WidgetError, write_widget_asset
    try:   # the story widget (chapter 07, intro): models + the C runtime as wasm, base64 in one script
        write_widget_asset(out / ASSETS)
    except WidgetError as exc:
        raise BookError(str(exc)) from exc
    mathjax, target = mathjax_source(), out / ASSETS / "mathjax" / "tex-svg.js"
    if not target.exists() or target.stat().st_size != mathjax.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(mathjax, target)


def jupyter_book_command(out: Path, toc: Path) -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    return base + ["build", str(out), "--config", str(CONFIG_FILE), "--toc", str(toc),
                   "--path-output", str(out), "--warningiserror", "--keep-going", "--all", "--quiet"]


def run_jupyter_book(out: Path, toc: Path) -> Path:
    cmd = jupyter_book_command(out, toc)
    print("[book] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    log = ANSI.sub("", proc.stdout + proc.stderr)
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    html = out / "_build" / "html"
    if proc.returncode != 0 or warnings or not (html / "index.html").exists():
        detail = "\n".join(warnings) or log[-4000:]
        raise BookError(f"jupyter-book failed (exit {proc.returncode}); Sphinx warnings are errors:\n{detail}")
    return html


def build(profile: str = "report", notebooks_dir: Path = NOTEBOOKS_DIR, out: Path = BOOK_DIR,
          force: bool = False, log_output: bool = False) -> Path:
    """Execute stale chapters and render the book; return the HTML directory."""
    load_profile(profile)   # unknown profile: clear error before any work
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    notebooks = find_notebooks(Path(notebooks_dir))
    validate_all(profile, notebooks)   # every chapter's parameters, before any chapter runs
    lost = [m for p in notebooks for m in unshown_figures(p.read_text(), p)]
    if lost:
        raise BookError("\n".join(lost))
    t0 = time.time()
    execute_chapters(notebooks, profile, out, force, log_output)
    template = yaml.safe_load(TOC_TEMPLATE.read_text())
    toc_path = out / EXECUTED / "_toc.yml"
    atomic_write_text(toc_path, yaml.safe_dump(effective_toc(template, [p.stem for p in notebooks]),
                                               sort_keys=False))
    stage_sources(out)
    html = run_jupyter_book(out, toc_path)
    print(f"[book] built {html / 'index.html'} in {time.time() - t0:.0f}s (profile {profile})", flush=True)
    return html


# ---- reproducibility helpers (the appendix): starmind_lib/book/appendix.py ----------------

from .appendix import PROVENANCE_COLUMNS, papermill_command, rewrites, table_inventory  # noqa: E402,F401 (re-exported)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m starmind_lib.book.build", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="execute stale chapters, then build the HTML book")
    b.add_argument("--profile", default="report", help=f"one of {', '.join(available_profiles())} (default report)")
    b.add_argument("--notebooks-dir", type=Path, default=NOTEBOOKS_DIR, help="chapter notebooks (default notebooks/)")
    b.add_argument("--out", type=Path, default=BOOK_DIR,
                   help="book source/output directory: _executed/ and _build/html go here (default book/)")
    b.add_argument("--force", action="store_true", help="re-execute every chapter even if up to date")
    b.add_argument("--log-output", action="store_true", help="stream the chapters' cell outputs while executing")
    c = sub.add_parser("check", help="open every page of the built book in headless Chromium (offline)")
    c.add_argument("--out", type=Path, default=BOOK_DIR, help="the directory given to build --out (default book/)")
    c.add_argument("--screenshots", type=Path, help="save a full-page PNG of every page here")
    args = parser.parse_args(argv)
    if args.command == "check":
        from . import browsercheck
        extra = ["--screenshots", str(args.screenshots)] if args.screenshots else []
        return browsercheck.main([str(Path(args.out) / "_build" / "html"), *extra])
    try:
        build(args.profile, args.notebooks_dir, args.out, args.force, args.log_output)
    except (BookError, ValueError) as exc:
        print(f"[book] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
