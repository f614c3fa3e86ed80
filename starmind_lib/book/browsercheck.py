"""Open every page of a built book in headless Chromium and report what a reader would see broken.

    python -m starmind_lib.book.browsercheck book/_build/html

Drives the system Chromium with Playwright (``connect_over_cdp``; screenshots decoded by Pillow)
from ``file://`` URLs with no special flags, as a reader opening the book from
disk would, and reports per page:

* console errors and uncaught exceptions (including failed resource loads);
* any network request to http(s) (the book must work offline), and http(s)
  scripts or stylesheets referenced by the page;
* images that did not load;
* charts (``starmind_lib.book.figures``) that did not render interactively: the
  container must be marked ``data-rendered="vega"``, hold an SVG with marks,
  and a screenshot of it must not be blank;
* internal links whose file or ``#anchor`` does not exist;
* sections that promise a figure and show none: a section (``##`` heading) of a chapter notebook
  whose code calls ``show(...)`` must hold a chart on the page, or the note of ``figures.no_figure``;
* legends a reader cannot read: a legend reaching past the chart's visible area (clipped by the
  page or a scrolling box), or legend entries cut short by Vega (``…``).
"""
from __future__ import annotations

import base64
import html as htmllib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync",
                  "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
                  "--window-size=1280,1000", "--remote-debugging-port=0"]
SKIP_DIRS = {"_static", "_sources"}   # theme fragments and downloadable sources, not pages

PAGE_STATE_JS = r"""
(() => {
  const charts = Array.from(document.querySelectorAll('.starmind-chart')).map((c, i) => {
    const svg = c.querySelector('.starmind-chart-live svg');
    const r = (svg || c).getBoundingClientRect();
    return {id: c.id, rendered: c.getAttribute('data-rendered'),
            marks: svg ? svg.querySelectorAll('path, rect, line, circle, text, symbol').length : 0,
            x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height};
  });
  const images = Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
    ok: i.complete && i.naturalWidth > 0}));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const remote = Array.from(document.querySelectorAll('script[src], link[rel~="stylesheet"][href]'))
    .map(e => e.src || e.href).filter(u => /^https?:/i.test(u));
  const math = document.querySelectorAll('span.math, div.math').length;
  const mathDone = document.querySelectorAll('mjx-container').length;
  return {charts, images, links, remote, math, mathDone, ready: document.readyState};
})()
"""


from .pagechecks import (AXES_JS, LEGENDS_JS, PROSE_JS, SECTIONS_JS, TEXT_PATTERNS,  # noqa: E402,F401
                         axis_problems, figure_problems, legend_problems, promised_figures, text_problems)


class BrowserError(RuntimeError):
    """Chromium could not be started or driven."""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no Chromium found on PATH (Debian: apt-get install chromium; `make sysdeps`)")


# ---- screenshots (Pillow) ----------------------------------------------------------------

def png_pixels(png: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw bytes) of a PNG, decoded by Pillow (RGB or RGBA)."""
    import io
    from PIL import Image
    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        return im.width, im.height, len(im.getbands()), im.tobytes()


def distinct_colours(png: bytes, limit: int = 64) -> int:
    """How many distinct pixel colours (up to ``limit``): 1 means a blank image."""
    import io
    from PIL import Image
    with Image.open(io.BytesIO(png)) as im:
        colours = im.convert("RGB").getcolors(maxcolors=limit)
    return limit if colours is None else len(colours)


# ---- the browser: Playwright over the DevTools protocol ----------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(endpoint: str) -> bool:
    """Whether Chromium's DevTools HTTP endpoint answers (it is up and ready for a connection)."""
    import urllib.request
    try:
        with urllib.request.urlopen(endpoint + "/json/version", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


CDP_EVENTS = ("Runtime.exceptionThrown", "Runtime.consoleAPICalled", "Log.entryAdded",
              "Network.requestWillBeSent", "Network.loadingFailed")


class Chromium:
    """Headless Chromium (the system binary, started here) with one page, driven by Playwright.

    Playwright attaches with ``connect_over_cdp`` to a Chromium this class starts with
    ``--remote-debugging-port``; the page's DevTools events (console, exceptions, network) are
    collected from a Playwright CDP session in ``events``."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0):
        from playwright.sync_api import sync_playwright
        self.profile = tempfile.mkdtemp(prefix="starmind-chromium-")
        port = _free_port()
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--remote-debugging-port")]
        cmd = [binary or find_chromium(), *flags, f"--remote-debugging-port={port}",
               f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._pw = self.browser = None
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        while not _listening(endpoint):
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise BrowserError(f"Chromium did not start ({' '.join(cmd)})")
            time.sleep(0.1)
        try:
            self._pw = sync_playwright().start()
            self.browser = self._pw.chromium.connect_over_cdp(endpoint, timeout=timeout * 1000)
            context = self.browser.contexts[0] if self.browser.contexts else self.browser.new_context()
            self.page = context.new_page()
            self.cdp = context.new_cdp_session(self.page)
        except Exception as exc:
            self.close()
            raise BrowserError(f"could not drive Chromium with Playwright: {exc}") from exc
        self.events = []
        for method in CDP_EVENTS:
            self.cdp.on(method, lambda params, m=method: self.events.append({"method": m, "params": params}))
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, session: bool = True, **params) -> dict:
        """One DevTools command on the page (through Playwright's CDP session)."""
        try:
            return self.cdp.send(method, params) or {}
        except Exception as exc:
            raise BrowserError(f"{method}: {exc}") from exc

    def pump(self, seconds: float) -> None:
        """Let the page run (and events arrive) for ``seconds``."""
        self.page.wait_for_timeout(seconds * 1000)

    def evaluate(self, expression: str):
        for attempt in range(4):
            try:
                return self.page.evaluate(expression)
            except Exception as exc:
                # A page that redirects (the book's index.html) replaces its context under us: wait, retry.
                if "context was destroyed" in str(exc) and attempt < 3:
                    try:
                        self.page.wait_for_load_state("load", timeout=10_000)
                    except Exception:
                        pass
                    continue
                raise BrowserError(f"page script failed: {exc}") from exc

    def open(self, url: str, settle: float = 8.0) -> dict:
        """Load ``url``, wait for load and for charts to finish; return the page state."""
        self.events = []
        try:
            self.page.goto(url, wait_until="load", timeout=30_000)
        except Exception as exc:
            raise BrowserError(f"{url}: {exc}") from exc
        self.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => i.loading = 'eager')")
        deadline = time.time() + settle
        state = self.evaluate(PAGE_STATE_JS)
        while time.time() < deadline and (any(c["rendered"] == "static" for c in state["charts"])
                                          or state["mathDone"] < state["math"]):
            self.pump(0.2)
            state = self.evaluate(PAGE_STATE_JS)
        self.pump(0.3)
        return self.evaluate(PAGE_STATE_JS)

    def screenshot(self, x: float, y: float, width: float, height: float, beyond_viewport: bool = True) -> bytes:
        res = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=beyond_viewport,
                        clip={"x": x, "y": y, "width": width, "height": height, "scale": 1})
        return base64.b64decode(res["data"])

    def full_page(self) -> bytes:
        """The whole page (up to 8,000 px) as a reader would scroll it: the viewport is made as tall as the
        page and the page is scrolled back to the top (capturing beyond a short viewport, after the chart
        checks scrolled charts into view, drew the page shifted, its sticky header painted mid-page)."""
        width = self.evaluate("window.innerWidth")
        self.evaluate("window.scrollTo(0, 0)")
        height = min(int(self.evaluate("document.documentElement.scrollHeight")), 8000)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        try:
            self.pump(0.3)
            self.evaluate("window.scrollTo(0, 0)")
            return self.screenshot(0, 0, width, height, beyond_viewport=False)
        finally:
            self.call("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
            if self._pw is not None:
                self._pw.stop()
        except Exception:
            pass
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the check ----------------------------------------------------------------------------

@dataclass
class PageReport:
    page: str
    problems: list[str] = field(default_factory=list)
    charts: int = 0


def console_problems(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                      for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            out.append(f"console error: {entry.get('text')} {entry.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent" and re.match(r"https?:", p.get("request", {}).get("url", "")):
            out.append(f"network request (book must work offline): {p['request']['url']}")
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"resource failed to load: {p.get('errorText')} (request {p.get('requestId')})")
    return out


_ids_cache: dict[Path, set[str]] = {}


def page_ids(path: Path) -> set[str]:
    if path not in _ids_cache:
        text = path.read_text(encoding="utf-8", errors="replace")
        _ids_cache[path] = {htmllib.unescape(m) for m in re.findall(r'\sid="([^"]+)"', text)}
    return _ids_cache[path]


def link_problems(links: list[str], root: Path) -> list[str]:
    out = []
    for href in sorted(set(links)):
        url = urlparse(href)
        if url.scheme != "file":
            continue   # external links (http, mailto) are not the book's to check offline
        target = Path(unquote(url.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            out.append(f"broken link: {href} (no file {target})")
        elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in page_ids(target):
            out.append(f"broken link: {href} (no #{unquote(url.fragment)} in {target.name})")
        elif root not in target.resolve().parents and target.resolve() != root:
            out.append(f"link leaves the book: {href}")
    return out


CHART_RECT_JS = """
(() => {
  const c = document.getElementById(%s);
  const el = c.querySelector('.starmind-chart-live svg') || c;
  el.scrollIntoView({block: 'center', inline: 'nearest'});
  const r = el.getBoundingClientRect();
  return {x: r.left + window.scrollX, y: r.top + window.scrollY,
          width: Math.min(r.width, window.innerWidth), height: Math.min(r.height, window.innerHeight)};
})()
"""


def chart_screenshot(browser: "Chromium", chart_id: str) -> bytes:
    """A screenshot of the chart, scrolled into view (what a reader sees there)."""
    r = browser.evaluate(CHART_RECT_JS % json.dumps(chart_id))
    return browser.screenshot(r["x"], r["y"], r["width"], r["height"], beyond_viewport=False)


def chart_painted(browser: "Chromium", c: dict, tries: int = 4, save: Path | None = None) -> bool:
    """Whether a screenshot of the chart shows anything; painting can lag the DOM, so retry briefly."""
    for attempt in range(tries):
        png = chart_screenshot(browser, c["id"])
        if save:
            save.write_bytes(png)
        if distinct_colours(png) >= 2:
            return True
        browser.pump(0.5)
    return False


def chart_problems(browser: Chromium, charts: list[dict], shots: Path | None = None) -> list[str]:
    out = []
    for c in charts:
        name = f"chart {c['id']}"
        if c["rendered"] != "vega":
            out.append(f"{name} did not render interactively (state {c['rendered']!r})")
        elif c["marks"] < 3 or c["width"] < 10 or c["height"] < 10:
            out.append(f"{name} rendered an empty SVG ({c['marks']} marks, {c['width']}x{c['height']}px)")
        elif not chart_painted(browser, c, save=shots / f"{c['id']}.png" if shots else None):
            out.append(f"{name}: the screenshot of the chart area is blank")
    return out


STATIC_IMAGES_JS = """Array.from(document.querySelectorAll('.starmind-chart')).map(c => {
  const img = c.querySelector('.starmind-chart-static img');
  return {id: c.id, ok: !!img && img.complete && img.naturalWidth > 0};
})"""


def static_fallback_problems(html_dir: str | Path, page_names: list[str], binary: str | None = None) -> list[str]:
    """With JavaScript off, every chart must still show its static SVG."""
    out = []
    with Chromium(binary) as browser:
        browser.call("Emulation.setScriptExecutionDisabled", value=True)
        for name in page_names:
            browser.open((Path(html_dir).resolve() / name).as_uri(), settle=0.5)
            out += [f"{name}: chart {c['id']} has no static image without JavaScript"
                    for c in browser.evaluate(STATIC_IMAGES_JS) if not c["ok"]]
    return out


def pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html")
                  if not SKIP_DIRS.intersection(p.relative_to(html_dir).parts[:-1]))


def check_book(html_dir: str | Path, binary: str | None = None,
               screenshots: str | Path | None = None, notebooks_dir: str | Path | None = None) -> list[PageReport]:
    """Open every page; return one report per page (``problems`` empty when the page is fine).

    With ``screenshots``, PNGs of each page and of each chart are saved there (to look at)."""
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").exists():
        raise BrowserError(f"{html_dir} has no index.html: build the book first")
    reports = []
    if notebooks_dir is None:
        from ..provenance import REPO_ROOT
        notebooks_dir = REPO_ROOT / "notebooks"
    with Chromium(binary) as browser:
        for page in pages(html_dir):
            rep = PageReport(page.relative_to(html_dir).as_posix())
            state = browser.open(page.as_uri())
            rep.problems += console_problems(browser.events)
            rep.problems += [f"remote script/stylesheet (book must work offline): {u}" for u in state["remote"]]
            rep.problems += [f"image did not load: {i['src'][:120]}" for i in state["images"] if not i["ok"]]
            shots = Path(screenshots) / rep.page.replace("/", "__") if screenshots else None
            if shots:
                shots.mkdir(parents=True, exist_ok=True)
            rep.problems += chart_problems(browser, state["charts"], shots)
            rep.problems += link_problems(state["links"], html_dir)
            rep.problems += legend_problems(browser.evaluate(LEGENDS_JS))
            rep.problems += axis_problems(browser.evaluate(AXES_JS))
            rep.problems += text_problems(browser.evaluate(PROSE_JS))
            source = Path(notebooks_dir) / f"{page.stem}.py"
            if source.exists():
                rep.problems += figure_problems(browser.evaluate(SECTIONS_JS), promised_figures(source))
            if state["mathDone"] < state["math"]:
                rep.problems.append(f"math not typeset: {state['math'] - state['mathDone']} of {state['math']}")
            if shots:
                (shots / "page.png").write_bytes(browser.full_page())
            rep.charts = len(state["charts"])
            reports.append(rep)
    return reports


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m starmind_lib.book.browsercheck", description=__doc__.split("\n")[0])
    parser.add_argument("html_dir", nargs="?", default="book/_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, help="save a full-page PNG of every page here")
    args = parser.parse_args(argv)
    reports = check_book(args.html_dir, screenshots=args.screenshots)
    bad = [r for r in reports if r.problems]
    for r in reports:
        print(f"{'FAIL' if r.problems else 'ok  '} {r.page} ({r.charts} charts)")
        for p in r.problems:
            print(f"     - {p}")
    print(f"{len(reports)} pages, {sum(r.charts for r in reports)} charts, {len(bad)} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
