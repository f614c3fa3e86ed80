"""Altair figures and tables for the notebooks, rendered offline.

Altair's default HTML output loads Vega from a CDN, so a book read without
network would show empty boxes. ``show(chart)`` instead emits one ``text/html``
output (which myst-nb passes through raw) holding

* a static SVG of the chart (``vl_convert``), inlined as a data-URI ``<img>``,
  visible wherever scripts do not run (JupyterLab untrusted output, RSS, print);
* an embed target and a small script that, if the bundled Vega libraries are
  on the page (``window.vegaEmbed``), renders the interactive chart there and
  removes the static copy.

The Vega/Vega-Lite/vega-embed bundle is written once per book build by
``write_vega_bundle`` into the book's static directory (``book/_assets``) and loaded by every
page through ``html_js_files`` (see ``_config.yml``), as a classic script with
a relative URL, so it works from ``file://``::

    from starmind_lib.book.figures import show, table, label
    chart = alt.Chart(df).mark_point().encode(x=alt.X("params:Q", title=label("parameters", "count")),
                                              y=alt.Y("bpc:Q", title=label("quality", "bits/char")))
    show(chart)
"""
from __future__ import annotations

import base64
import html
import itertools
import math
import json
import uuid
from pathlib import Path

import altair as alt

# Vega-Lite version of the specs altair writes (e.g. "v6.4.1" -> "6.4"); vl_convert needs it.
VEGALITE_VERSION = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
BUNDLE_NAME = "starmind-vega.js"

# The house style: readable fonts, no chart border, consistent sizes. A chart's own
# configuration wins over these defaults (merged key by key in ``themed_spec``).
THEME_CONFIG = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "view": {"continuousWidth": 520, "continuousHeight": 320, "stroke": None},
    "axis": {"labelFontSize": 12, "titleFontSize": 13, "titleFontWeight": "normal", "labelLimit": 320,
             "grid": True, "gridOpacity": 0.5},
    # Legends under the chart, one entry per line, labels never cut short: a legend at the right
    # of a 520 px chart runs off a narrow page, and Vega's default label limit truncates names.
    "legend": {"labelFontSize": 12, "titleFontSize": 12, "orient": "bottom", "columns": 1,
               "labelLimit": 0, "titleLimit": 0, "symbolLimit": 0},
    "title": {"fontSize": 15, "anchor": "start", "fontWeight": "bold"},
    "range": {"category": {"scheme": "tableau10"}},
}

# What altair's default theme puts in every spec; the house style replaces it.
ALTAIR_DEFAULT_VIEW = {"continuousWidth": 300, "continuousHeight": 300}

_counter = itertools.count()


class FigureError(ValueError):
    """A figure helper got something it cannot render."""


def label(name: str, unit: str | None = None) -> str:
    """An axis title with its unit: ``label("speed", "tok/s")`` -> ``"speed (tok/s)"``."""
    if not name:
        raise FigureError("label(): the axis name is empty")
    return f"{name} ({unit})" if unit else name


def log_ticks(values, steps=(1, 3)) -> list:
    """Tick values for a log axis: ``steps`` times each power of ten that covers ``values``.

    Vega's own log ticks (1, 2, ..., 9 per decade) run together in a narrow panel ("10 20" printed "1020"),
    so small log panels pass these instead: ``log_ticks([12, 4096])`` -> ``[10, 30, 100, 300, 1000, 3000, 10000]``.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v)) and float(v) > 0]
    if not finite:
        raise FigureError("log_ticks(): no positive values to place ticks for")
    lo, hi = math.floor(math.log10(min(finite))), math.ceil(math.log10(max(finite)))
    ticks = [float(f"{s * 10.0 ** k:.12g}") for k in range(lo, hi + 1) for s in steps]
    below = [t for t in ticks if t <= min(finite)]
    above = [t for t in ticks if t >= max(finite)]
    first, last = (below[-1] if below else ticks[0]), (above[0] if above else ticks[-1])
    return [int(t) if float(t).is_integer() else t for t in ticks if first <= t <= last]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def themed_spec(chart) -> dict:
    """The chart's Vega-Lite spec with the house style underneath its own config."""
    if isinstance(chart, dict):
        spec = dict(chart)
    elif hasattr(chart, "to_dict"):
        try:
            spec = chart.to_dict()
        except Exception as exc:  # altair raises SchemaValidationError with a long message
            raise FigureError(f"show(): the chart is not a valid Vega-Lite spec: {exc}") from exc
    else:
        raise FigureError(f"show() needs an altair chart or a Vega-Lite dict, got {type(chart).__name__}")
    config = dict(spec.get("config", {}))
    if config.get("view") == ALTAIR_DEFAULT_VIEW:   # altair's own default theme, not the chart's choice
        config.pop("view")
    spec["config"] = _merge(THEME_CONFIG, config)
    return spec


def static_svg(spec: dict) -> str:
    import vl_convert as vlc
    return vlc.vegalite_to_svg(spec, vl_version=VEGALITE_VERSION)


def _script_json(obj) -> str:
    """JSON safe to place inside a <script> element (no '</script>' or '<!--' can close it)."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def chart_html(chart, alt_text: str | None = None) -> str:
    """The HTML for one chart: static SVG fallback + interactive embed (see module docstring)."""
    spec = themed_spec(chart)
    svg = static_svg(spec)
    uid = f"starmind-chart-{next(_counter)}-{uuid.uuid4().hex[:8]}"
    title = spec.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    alt_text = alt_text or spec.get("description") or (title if isinstance(title, str) else None) or "chart"
    data_uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f"""<div class="starmind-chart" id="{uid}" data-rendered="static">
<div class="starmind-chart-static"><img src="{data_uri}" alt="{html.escape(alt_text)}" style="max-width:100%"></div>
<div class="starmind-chart-live"></div>
<script type="text/javascript">
(function () {{
  var spec = {_script_json(spec)};
  function embed() {{
    var box = document.getElementById("{uid}");
    if (!box || typeof window.vegaEmbed !== "function") return;  /* no bundle: keep the static SVG */
    window.vegaEmbed(box.querySelector(".starmind-chart-live"), spec, {{actions: false, renderer: "svg"}})
      .then(function () {{
        var still = box.querySelector(".starmind-chart-static");
        if (still) still.remove();
        box.setAttribute("data-rendered", "vega");
      }})
      .catch(function (err) {{ box.setAttribute("data-rendered", "failed"); console.error("starmind chart {uid}:", err); }});
  }}
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", embed); else embed();
}})();
</script>
</div>"""


class Figure:
    """A notebook output that is the chart's HTML (myst-nb renders ``text/html`` raw)."""

    def __init__(self, chart, alt_text: str | None = None):
        self.html = chart_html(chart, alt_text)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return "<starmind figure (HTML; view in the book or JupyterLab)>"


def show(chart, alt_text: str | None = None) -> Figure:
    """Render an altair chart as an offline interactive figure with a static SVG fallback.

    Use as the last expression of a cell (or ``display(show(chart))``).
    """
    return Figure(chart, alt_text)


def _offline_renderer(spec: dict, **metadata) -> dict:
    return {"text/html": chart_html(spec), "text/plain": "<starmind chart>"}


def enable_offline_renderer() -> None:
    """Make altair render every displayed chart like ``show`` (the book build's kernels call this).

    Altair's default renderer loads Vega from a CDN, which an offline book cannot."""
    alt.renderers.register("starmind", _offline_renderer)
    alt.renderers.enable("starmind")


# Raw column names a reader should not have to decode (others: underscores become spaces).
COLUMN_LABELS = {"variant_id": "model", "model_id": "model", "runtime_label": "runtime (how measured)",
                 "runtime_kind": "runtime family", "bpc_of": "bpc of", "val_bpc": "validation bpc", "n_params": "parameters",
                 "params": "parameters", "tokens_per_s": "tokens/s", "chars_per_s": "chars/s",
                 "peak_ram_bytes": "peak RAM (bytes)", "flash_bytes": "flash (bytes)", "model_bytes": "model file (bytes)",
                 "weights_in": "weights in", "kv_cache": "KV cache", "speed_source": "speed source",
                 "wall_s": "wall time (s)", "tokenizer_spec": "tokenizer", "n_layers": "layers", "n_heads": "heads",
                 "ffn_hidden": "FFN width", "dim": "width", "vocab_size": "vocabulary"}


def column_label(name) -> str:
    return COLUMN_LABELS.get(name, str(name).replace("_", " ")) if isinstance(name, str) else str(name)


def _labels(columns) -> dict:
    """column -> reader's label; where two columns would get the same label, the second gets its own
    name with spaces for underscores."""
    out, used = {}, set()
    for c in columns:
        lab = column_label(c)
        out[c] = lab if lab not in used and lab not in columns or lab == c else str(c).replace("_", " ")
        used.add(out[c])
    return out


def _cell_formatter(series, sig: int):
    """The formatter of one numeric column: integers with separators, floats to ``sig`` significant figures."""
    import pandas as pd
    from ..numbers import fmt_num
    values = pd.to_numeric(series, errors="coerce").dropna()
    integral = len(values) > 0 and bool((values == values.round()).all()) and bool((values.abs() >= 1).any() or
                                                                                   (values == 0).all())
    sig = None if sig is None or sig <= 0 else max(int(sig), 2)   # 0: whole numbers; at least 2 figures
    return (lambda v: "–" if pd.isna(v) else fmt_num(v, sig=None)) if integral or sig is None else \
        (lambda v: "–" if pd.isna(v) else fmt_num(v, sig=sig))


def _table_markup(df, precision: int, index: bool) -> str:
    import pandas as pd
    from ..numbers import is_bool, yes_no
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    names = _labels(list(df.columns))
    shown = df.rename(columns=names)
    labels = {c: names[c] for c in numeric}

    def text(v):   # a reader sees yes / no, never Python's True / False
        if is_bool(v):
            return yes_no(v)
        return "–" if v is None or (isinstance(v, float) and v != v) else html.escape(str(v))
    formats = {names[c]: (_cell_formatter(df[c], precision) if c in labels else text) for c in df.columns}
    styler = (shown.style.format(formats)
              .set_table_attributes('class="starmind-table"')
              .set_properties(subset=list(labels.values()), **{"text-align": "right"}))
    if not index:
        styler = styler.hide(axis="index")
    return styler.to_html()


def table(df, caption: str | None = None, precision: int = 3, index: bool = False, max_rows: int = 25,
          head=None, name: str | None = None) -> "TableHTML":
    """A compact HTML table of a DataFrame: numbers right-aligned with thousands separators, floats to
    ``precision`` significant figures (``starmind_lib.numbers``), reader's column names.

    A table longer than ``max_rows`` shows ``head`` (default: its first ``max_rows`` rows; pass the
    rows that matter) and puts the whole table in a collapsed section with a CSV download."""
    import pandas as pd
    if not isinstance(df, pd.DataFrame):
        raise FigureError(f"table() needs a pandas DataFrame, got {type(df).__name__}")
    cap = f"<p class=\"starmind-table-caption\"><em>{html.escape(caption)}</em></p>" if caption else ""
    if len(df) <= max_rows:
        return TableHTML(f'<div class="starmind-table-wrap">{cap}{_table_markup(df, precision, index)}</div>')
    top = head if head is not None else df.head(max_rows)
    csv = base64.b64encode(df.to_csv(index=index).encode("utf-8")).decode("ascii")
    fname = html.escape((name or (caption or "table").split(":")[0].split("(")[0].strip().lower().replace(" ", "_"))
                        [:60] + ".csv")
    return TableHTML(
        f'<div class="starmind-table-wrap">{cap}{_table_markup(top, precision, index)}'
        f'<details class="starmind-table-all"><summary>All {len(df):,} rows '
        f'(<a download="{fname}" href="data:text/csv;base64,{csv}">download CSV</a>)</summary>'
        f'{_table_markup(df, precision, index)}</details></div>')


def no_figure(reason: str):
    """What a section shows instead of its figure when the data for it is absent (the browser check
    accepts a section without a chart only when it holds this note)."""
    from IPython.display import HTML
    return HTML(f'<p class="starmind-nofigure"><em>No figure: {html.escape(reason)}</em></p>')


class TableHTML:
    def __init__(self, markup: str):
        self.html = markup

    def _repr_html_(self) -> str:
        return self.html


def vega_bundle() -> str:
    """The Vega + Vega-Lite + vega-embed bundle as a classic script defining ``window.vegaEmbed``.

    vl_convert's bundle declares top-level ``const``s; wrapping it in a function keeps
    them out of the page's global scope, where they could clash with other scripts.
    """
    import vl_convert as vlc
    code = vlc.javascript_bundle(vl_version=VEGALITE_VERSION)
    return "/* Vega, Vega-Lite and vega-embed, bundled by vl-convert-python for offline use. */\n" \
           "(function () {\n" + code + "\n})();\n"


def write_vega_bundle(static_dir: str | Path) -> Path:
    """Write the bundle into ``static_dir`` unless an identical one is there; return its path."""
    from ..provenance import atomic_write_text
    path = Path(static_dir) / BUNDLE_NAME
    code = vega_bundle()
    if not path.exists() or path.read_text(encoding="utf-8") != code:
        atomic_write_text(path, code)
    return path
