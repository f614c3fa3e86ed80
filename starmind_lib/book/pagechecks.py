"""What a reader of a built page must not meet, checked by ``browsercheck`` on every page: sections
that promise a figure and show none, legends clipped or cut short, axis labels that run together,
badly written numbers."""
from __future__ import annotations

import re
from pathlib import Path


SECTIONS_JS = r"""
(() => Array.from(document.querySelectorAll('section')).map(sec => {
  const h = sec.querySelector(':scope > h1, :scope > h2, :scope > h3');
  const mine = el => el.closest('section') === sec;
  return {title: h ? h.textContent.replace(/[#¶]/g, '').trim() : '',
          charts: Array.from(sec.querySelectorAll('.starmind-chart')).filter(mine).length,
          nofigure: Array.from(sec.querySelectorAll('.starmind-nofigure')).filter(mine).length};
}))()
"""

LEGENDS_JS = r"""
(() => Array.from(document.querySelectorAll('.starmind-chart')).map(c => {
  let right = window.innerWidth;
  for (let el = c; el && el !== document.body; el = el.parentElement) {
    const st = getComputedStyle(el);
    if (st.overflowX !== 'visible') right = Math.min(right, el.getBoundingClientRect().right);
  }
  // legends, and chart titles (a long title runs off the page the same way)
  const legends = Array.from(c.querySelectorAll('.starmind-chart-live svg .role-legend, .starmind-chart-live svg .role-title')).map(g => {
    const r = g.getBoundingClientRect();
    return {right: r.right, width: r.width,
            texts: Array.from(g.querySelectorAll('text')).map(t => t.textContent)};
  });
  return {id: c.id, visibleRight: right, legends};
}))()
"""

AXES_JS = r"""
(() => Array.from(document.querySelectorAll('.starmind-chart')).map(c => ({id: c.id,
  axes: Array.from(c.querySelectorAll('.starmind-chart-live svg .role-axis-label')).map(g =>
    Array.from(g.querySelectorAll('text')).filter(t => {   // labels Vega hid (its labelOverlap) have opacity 0
      for (let e = t; e && e !== g; e = e.parentElement)
        if (parseFloat(e.getAttribute('opacity') ?? '1') === 0 || getComputedStyle(e).opacity === '0') return false;
      return true;
    }).map(t => {
      const r = t.getBoundingClientRect();
      const turn = /rotate\((-?[\d.]+)/.exec(t.getAttribute('transform') || '');
      return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
              angle: turn ? parseFloat(turn[1]) : 0};
    }).filter(b => b.text && b.right > b.left))})))()
"""


PROSE_JS = r"""
(() => {
  const main = document.querySelector('main') || document.body;
  if (!main) return '';
  const copy = main.cloneNode(true);
  copy.querySelectorAll('pre, code, .cell_input, script, style, svg, .starmind-chart').forEach(e => e.remove());
  return copy.innerText;
})()
"""

# What a reader should never meet in the book's text (prose and tables; code excluded).
TEXT_PATTERNS = {
    "negative zero": r"(?<![\w.\-])-0(?:\.0+)?(?![\d.,])",
    # (7 or 12 digits alone: an abbreviated git commit, not a quantity)
    "number without thousands separators": r"(?<![\w.,/#:-])(?!\d{7}(?![\d.])|\d{12}(?![\d.]))\d{5,}(?:\.\d+)?(?!\w|\.\d)",
    "needless trailing zeros": r"(?<![\w.])\d+\.\d*0000\b",
    "scientific notation for a speed": r"\d(?:\.\d+)?e[+-]\d+ (?:tokens|chars)/s",
    "singular count with a plural noun": r"(?<![\d.,\-])1 (?:variants|minutes|models|runs|claims|pairs|tokens|seconds)\b",
    "'a' before a number read with a vowel": r"\ba (?:8|11|18|80)\d*-",
    "raw column name": r"\b(?:variant_id|runtime_label|bpc_of|runtime_kind|speed_source)\b",
    "unqualified cycle-exact": r"cycle-exact",
}


# Constants written the way their field writes them (the int16 limits).
ALLOWED = ("32767", "32768", "65535")


def text_problems(text: str, allow: tuple[str, ...] = ALLOWED) -> list[str]:
    """Badly written numbers, counts and labels in a page's text (see ``TEXT_PATTERNS``)."""
    out = []
    for what, pattern in TEXT_PATTERNS.items():
        hits = [m.group(0) for m in re.finditer(pattern, text) if m.group(0) not in allow]
        if hits:
            out.append(f"{what}: {', '.join(map(repr, sorted(set(hits))[:5]))}")
    return out


def promised_figures(notebook: Path) -> dict[str, int]:
    """{section title: calls of show(...)} for each section of a chapter notebook whose code shows a figure."""
    import jupytext
    nb = jupytext.read(notebook)
    out, title = {}, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heads = re.findall(r"^#{1,3}\s+(.+?)\s*$", cell.source, re.M)
            if heads:
                title = heads[-1].strip()
        else:   # show( at the start of a statement or inside display(...), not inside a def's body
            body = "\n".join(line for line in cell.source.splitlines() if not line.startswith((" ", "\t"))
                             or re.match(r"\s+display\(show\(|\s+show\(", line))
            if re.search(r"^def \w+\(.*\n(\s+.*\n)*", cell.source, re.M):
                body = re.sub(r"^def \w+\(.*\n((\s+.*)?\n)*?(?=\S)", "", cell.source + "\n", flags=re.M)
            n = len(re.findall(r"(?<![\w.])show\(", body))
            if n:
                out[title] = out.get(title, 0) + n
    return out


def _plain(title: str) -> str:
    return re.sub(r"[`*_#¶]", "", title).strip().lower()


def figure_problems(sections: list[dict], promised: dict[str, int]) -> list[str]:
    """Sections that promise a figure (their code calls show) but hold neither a chart nor a no-figure note."""
    found = {_plain(s["title"]): s for s in sections if s["title"]}
    out = []
    for title, n in promised.items():
        sec = found.get(_plain(title))
        if sec is None:
            continue   # the heading is rendered under another name (glue in a title): nothing to compare
        if sec["charts"] == 0 and sec["nofigure"] == 0:
            out.append(f"section {title!r} promises a figure ({n} show() call(s) in the notebook) but the page "
                       "has none there")
    return out


def legend_problems(legends: list[dict]) -> list[str]:
    out = []
    for c in legends:
        for lg in c["legends"]:
            if lg["right"] > c["visibleRight"] + 1:
                out.append(f"chart {c['id']}: its legend or title ({' '.join(lg['texts'])[:40]!r}) ends "
                           f"{lg['right'] - c['visibleRight']:.0f}px beyond the visible area (a reader sees it cut off)")
            cut = [t for t in lg["texts"] if "…" in t]
            if cut:
                out.append(f"chart {c['id']}: legend entries cut short: {', '.join(map(repr, cut[:4]))}")
    return out


def axis_problems(charts: list[dict], gap: float = 2.0) -> list[str]:
    """Tick labels of one axis that overlap, or stand side by side less than ``gap`` pixels apart (Vega
    prints '10,000' and '20,000' as '10,00020,000' when a log axis is narrow). Labels stacked one above
    the other (a vertical axis) may touch: a reader tells lines apart. Labels turned by an angle other than a
    multiple of 90 degrees are left out: their boxes overlap while their text does not."""
    out = []
    for c in charts:
        for labels in c["axes"]:
            boxes = sorted((b for b in labels if b.get("angle", 0) % 90 == 0), key=lambda b: (b["left"], b["top"]))
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    across = min(a["right"], b["right"]) - max(a["left"], b["left"])
                    down = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
                    if down > 1 and across > -gap:
                        out.append(f"chart {c['id']}: axis labels {a['text']!r} and {b['text']!r} "
                                   f"{'overlap' if across > 0 else 'run together'}")
    return out
