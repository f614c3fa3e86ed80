"""The book's story widget: the C runtime compiled to WebAssembly, in headless Chromium from file://.

Builds device/wasm (clang + lld + wasi-libc) and a standalone page with the widget asset
(starmind_lib.book.widget), opens it from disk with the system Chromium (Playwright over CDP,
starmind_lib.book.browsercheck), and checks: every golden vector of data/reference (encoder ids,
greedy, sampled, window restart) comes out of the page bit-exactly; the UI writes what the
reference engine writes for the same prompt, seed and settings (what `starmind board generate`
writes); typing a prompt changes the story; the pace is the table's tokens/s (on a fake clock);
no network request; the asset fits its 3 MB budget.
"""
from __future__ import annotations

import json

import pytest

from starmind_lib.book import widget

GOLDENS = sorted(widget.REFERENCE_DIR.glob("ref_*.golden.json"))


def _golden(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    missing = widget.toolchain_missing()
    if missing:
        pytest.skip(f"no WebAssembly toolchain ({missing}): `make sysdeps`")
    pytest.importorskip("playwright")
    from starmind_lib.book import browsercheck
    try:
        browsercheck.find_chromium()
    except browsercheck.BrowserError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("widget")
    html = widget.write_standalone_page(out)
    with browsercheck.Chromium() as b:
        requests = []
        b.page.on("request", lambda r: requests.append(r.url))
        b.open(html.as_uri(), settle=1.0)
        b.page.wait_for_function("window.StarmindWidget && StarmindWidget.widgets.length === 2", timeout=30_000)
        b.requests = requests
        b.asset = out / widget.ASSET_NAME
        yield b
        problems = browsercheck.console_problems(b.events)
        remote = [u for u in requests if u.startswith(("http:", "https:"))]
        assert not problems and not remote, (problems, remote)


def _js(b, expr, *args):
    return b.page.evaluate(expr, list(args))


def test_asset_budget_and_offline(page):
    size = page.asset.stat().st_size
    assert size <= widget.MAX_ASSET_BYTES
    text = page.asset.read_text()
    assert "fetch(" not in text and "XMLHttpRequest" not in text
    data = _js(page, "() => ({wasm: !!StarmindWidget.data.wasm, models: StarmindWidget.data.models.map(m => m.id)})")
    assert data["wasm"]
    assert {p.name.removesuffix(".golden.json") for p in GOLDENS} <= set(data["models"])


@pytest.mark.parametrize("golden_path", GOLDENS, ids=lambda p: p.name.split(".")[0])
def test_goldens_bit_exact_in_page(page, golden_path):
    g = _golden(golden_path)
    mid = g["model"].removesuffix(".smd")
    has_encoder = g["text"]["encoder"] != "none"
    if has_encoder:
        assert _js(page, "([m, t]) => StarmindWidget.encode(m, t)", mid, g["prompt_text"]) == g["prompt_ids"]
        for e in g["encode"]:
            assert _js(page, "([m, t]) => StarmindWidget.encode(m, t)", mid, e["text"]) == e["ids"], e["text"]
    gen = "([m, n, s, t, k, ids]) => StarmindWidget.generate(m, '', n, s, t, k, {stop: false, promptIds: ids})"
    res = _js(page, gen, mid, g["greedy"]["n_new"], 0, 0, 0, g["prompt_ids"])
    assert res["output_ids"] == g["greedy"]["output_ids"]
    for s in g["sampled"]:
        res = _js(page, gen, mid, s["n_new"], s["seed"], s["temperature_q8"], s["top_k"], g["prompt_ids"])
        assert res["output_ids"] == s["output_ids"], s
    w = g["window"]
    res = _js(page, gen, mid, w["n_new"], 0, 0, 0, g["prompt_ids"])
    assert res["output_ids"] == w["greedy_output_ids"]
    for s in w["sampled"]:
        res = _js(page, gen, mid, w["n_new"], s["seed"], s["temperature_q8"], s["top_k"], g["prompt_ids"])
        assert res["output_ids"] == s["output_ids"]


def _run_ui(b, i, model, prompt=None, n=48, seed=0, temperature_q8=0, top_k=0, full=True, runtime="c",
            timeout_ms=60_000):
    """Fill widget i's controls as a reader would, press the button, wait for the story; lastRun."""
    w = _start_ui(b.page, i, model, prompt, n, seed, temperature_q8, top_k, full, runtime)
    b.page.wait_for_function("(i) => { const r = StarmindWidget.widgets[i].lastRun; return r && r.done; }",
                             arg=i, timeout=timeout_ms)
    run = _js(b, "([i]) => StarmindWidget.widgets[i].lastRun", i)
    assert run["error"] is None, run["error"]
    return run, w


def _start_ui(page, i, model, prompt=None, n=48, seed=0, temperature_q8=0, top_k=0, full=True, runtime="c"):
    """Fill widget i's controls of a Playwright page as a reader would and press the button; the widget."""
    w = page.locator("div.starmind-widget").nth(i)
    w.locator(".smw-model").select_option(model)
    w.locator(".smw-runtime").select_option(runtime)
    if prompt is not None:
        w.locator(".smw-prompt").fill(prompt)
    if w.locator(".smw-n").is_visible():
        w.locator(".smw-n").fill(str(n))
        w.locator(".smw-temp").fill(repr(temperature_q8 / 256))
        w.locator(".smw-topk").fill(str(top_k))
        w.locator(".smw-seed").fill(str(seed))
    w.locator(".smw-full").set_checked(full)
    page.evaluate("([i]) => { StarmindWidget.widgets[i].lastRun = null; }", [i])
    w.locator(".smw-go").click()
    return w


def _reference(model_id, text, n, seed, tq8, k):
    """What the reference engine (and so `starmind board generate`) writes: encode, window, stop rule."""
    from starmind_lib.quant.intengine import IntEngine
    from starmind_lib.quant.smd import read_smd
    from starmind_lib.quant.smd_text import encode
    m = read_smd(widget.REFERENCE_DIR / f"{model_id}.smd")
    ids = encode(m.text, m.vocab, text)
    return ids, IntEngine(m).generate(ids, n, tq8, k, seed, window=True)


@pytest.mark.parametrize("golden_path", [p for p in GOLDENS if _golden(p)["text"]["encoder"] != "none"],
                         ids=lambda p: p.name.split(".")[0])
def test_ui_writes_what_the_reference_engine_writes(page, golden_path):
    g = _golden(golden_path)
    mid = g["model"].removesuffix(".smd")
    text = g["encode"][-1]["text"] or g["prompt_text"]
    for seed, tq8, k, n in ((7, 200, 5, 80), (3, 256, 0, 40), (0, 0, 0, 30)):
        run, w = _run_ui(page, 0, mid, text, n=n, seed=seed, temperature_q8=tq8, top_k=k)
        ids, out = _reference(mid, text, n, seed, tq8, k)
        assert run["prompt_ids"] == ids
        assert run["output_ids"] == out, (seed, tq8, k)
        assert (run["seed"], run["temperature_q8"], run["top_k"]) == (seed, tq8, k)
    cmd = w.locator(".smw-cmd").inner_text()
    # a command that runs from the repository root: the venv's starmind and the file's repository path
    assert cmd.startswith("the same story on a board: .venv/bin/starmind board generate --port PORT ")
    assert "--seed 0 --temperature-q8 0 --top-k 0" in cmd and f"--model data/reference/{mid}.smd " in cmd
    assert (widget.REPO_ROOT / "data" / "reference" / f"{mid}.smd").is_file()


def test_study_models_in_the_page_write_what_the_reference_engine_writes(page):
    """Every study model in the page (the committed Study v2 exports of data/models, when present): its
    bytes are the committed file named by its provenance row, its encoder gives the file's ids, and the
    page (API and UI) writes what the integer reference engine writes from those bytes, window included."""
    import base64
    import hashlib

    from starmind_lib.quant.intengine import IntEngine
    from starmind_lib.quant.smd import parse_smd
    from starmind_lib.quant.smd_text import encode
    models = [m for m in page.page.evaluate("StarmindWidget.data.models") if m["kind"] == "study"]
    if not models:
        pytest.skip("no study models in the page (no committed export in data/models)")
    text = "once upon a time, a little girl named lily"
    for m in models:
        data = base64.b64decode(m["smd"])
        if m.get("committed"):
            from starmind_lib.quant.export import committed_row
            path = widget.MODELS_DIR / m["file_name"]
            assert data == path.read_bytes() and committed_row(path)["sha256"] == hashlib.sha256(data).hexdigest()
        smd = parse_smd(data)
        assert smd.version == 2 and smd.can_encode
        ids = encode(smd.text, smd.vocab, text)
        assert _js(page, "([m, t]) => StarmindWidget.encode(m, t)", m["id"], text) == ids
        eng = IntEngine(smd)
        for seed, tq8, k, n in ((0, 0, 0, 100), (7, 200, 8, 100), (3, 256, 0, 40)):
            want = eng.generate(ids, n, tq8, k, seed, window=True)
            got = _js(page, "([m, t, n, s, q, k]) => StarmindWidget.generate(m, t, n, s, q, k)", m["id"], text,
                      n, seed, tq8, k)
            assert got["prompt_ids"] == ids and got["output_ids"] == want, (m["id"], seed, tq8, k)
        run, w = _run_ui(page, 0, m["id"], text, n=60, seed=11, temperature_q8=200, top_k=10)
        assert run["output_ids"] == eng.generate(ids, 60, 200, 10, 11, window=True)
        stats = w.locator(".smw-stats").inner_text()
        assert m["bpc_text"] in stats and "tokens/s" in stats
        print(f"{m['id']}: {m['file_name']} ({m['file_bytes']:,} bytes), {m['bpc_text']}; "
              f"story: {w.locator('.smw-story').inner_text()[:120]!r}")


def test_typing_a_prompt_changes_the_story(page):
    g = _golden(widget.REFERENCE_DIR / "ref_rope_silu.golden.json")
    texts = [e["text"] for e in g["encode"] if e["text"].strip()][:2] or ["the cat ", "a dog "]
    runs = [_run_ui(page, 0, "ref_rope_silu", t, n=40, seed=5, temperature_q8=256)[0] for t in texts[:2]]
    assert runs[0]["prompt_ids"] != runs[1]["prompt_ids"]
    assert runs[0]["output_ids"] != runs[1]["output_ids"]
    story = page.page.locator("div.starmind-widget").nth(0).locator(".smw-story").inner_text()
    assert story.startswith(texts[1]) and len(story) > len(texts[1])


@pytest.fixture(scope="module")
def clocked(page):
    """The same page in a second tab whose clock is Playwright's fake one (``page.clock``): performance.now and
    setTimeout run only when the test advances them, so the pace is checked without timing anything."""
    tab = page.page.context.new_page()
    problems = []
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("request", lambda r: problems.append(r.url) if r.url.startswith(("http:", "https:")) else None)
    tab.clock.install(time=0)
    tab.clock.pause_at(1000)
    tab.goto(page.page.url, wait_until="load")
    tab.wait_for_function("window.StarmindWidget && StarmindWidget.widgets.length === 2", timeout=30_000,
                          polling=50)
    yield tab
    tab.close()
    assert not problems, problems


def _clocked_run(tab, model, runtime, n, full):
    """Start a story in the fake-clock tab, let its first token out, then advance the clock past its end."""
    _start_ui(tab, 0, model, None, n=n, seed=1, temperature_q8=256, full=full, runtime=runtime)
    tab.wait_for_function("() => { const r = StarmindWidget.widgets[0].lastRun; return r && r.times.length > 0; }",
                          timeout=30_000, polling=50)
    tps = tab.evaluate("StarmindWidget.widgets[0].lastRun.tokens_per_s")
    tab.clock.run_for(int(n * 1000 / tps) + 1000)
    run = tab.evaluate("StarmindWidget.widgets[0].lastRun")
    assert run["done"] and run["error"] is None, run
    return run


@pytest.mark.parametrize("model,runtime,n", [("ref_rope_silu", "c", 400), ("ref_swiglu_untied", "micropython", 60)])
def test_pace_is_the_table_s_tokens_per_s(page, clocked, model, runtime, n):
    """Each token is written when it is due at the table's tokens/s (token i at the first token's time +
    i / tokens_per_s), on the page's own (here fake) clock; no wall-clock timing is asserted. The speeds
    themselves are printed by `make bench-device` and `make bench-micropython`."""
    table = next(r for m in page.evaluate("StarmindWidget.data.models") if m["id"] == model
                 for r in m["runtimes"] if r["kind"] == runtime)["tokens_per_s"]
    run = _clocked_run(clocked, model, runtime, n, full=False)
    assert run["tokens_per_s"] == table and not any(run["full_speed"])
    times = run["times"]
    assert len(times) >= 20, "the story ended too early to pace"
    assert times == pytest.approx([times[0] + i * 1000 / table for i in range(len(times))], abs=1e-6)
    pace = (len(times) - 1) * 1000 / (times[-1] - times[0])
    print(f"pace {model} {runtime}: {pace:.1f} tokens/s in the page (fake clock), table {table:.1f}")
    stats = clocked.evaluate("() => [...document.querySelectorAll('div.starmind-widget')[0]"
                             ".querySelectorAll('.smw-stats dt')].map(dt => [dt.textContent, "
                             "dt.nextElementSibling.textContent])")
    stats = dict(stats)
    assert stats["pace here"] == stats["on the Pico"], stats
    # full speed does not wait for the clock: the same tokens, all written before any time passes
    fast = _clocked_run(clocked, model, runtime, n, full=True)
    assert fast["output_ids"] == run["output_ids"] and all(fast["full_speed"])
    assert fast["times"][-1] == fast["times"][0]


def test_compact_widget(page):
    run, w = _run_ui(page, 1, "ref_tiny_learned", "the cat ", full=True)
    assert run["n"] == 64 and run["output_ids"]
    assert not w.locator(".smw-seed").is_visible()
    assert w.locator(".smw-stats").inner_text().count("tokens/s") >= 1


def test_screenshot_shows_a_story(page, tmp_path):
    from starmind_lib.book.browsercheck import distinct_colours
    _run_ui(page, 0, "ref_rope_silu", "the cat ", n=60, seed=2, temperature_q8=230, top_k=8)
    box = page.page.locator("div.starmind-widget").nth(0).bounding_box()
    png = page.screenshot(box["x"], box["y"], box["width"], box["height"])
    (tmp_path / "widget.png").write_bytes(png)
    assert distinct_colours(png) >= 4
    assert page.page.locator("div.starmind-widget").nth(0).locator(".smw-story").inner_text().startswith("the cat ")


def test_recommended_study_models_are_offered_when_exported(tmp_path):
    """Chapter 07's recommended C models join the widget when their format-v2 exports exist (here a
    reference file stands in for the first one, under its name); others are reported as left out."""
    import shutil
    results, models = widget.REPO_ROOT / "data" / "results", tmp_path / "models"
    study, skipped = widget.study_models(results, tmp_path, models_dir=models)
    if not study and not skipped:
        pytest.skip("no recommendations in the committed tables")
    assert not study and all("no exported file" in s for s in skipped)
    first = skipped[0].split(":")[0]
    (tmp_path / "smd").mkdir()
    shutil.copy(widget.REFERENCE_DIR / "ref_bpe_lc.smd", tmp_path / "smd" / f"{first}.smd")
    study, skipped = widget.study_models(results, tmp_path, models_dir=models)
    assert [m["id"] for m in study] == [first]
    m = study[0]
    assert m["kind"] == "study" and m["bpc"] > 0 and "bpc" in m["bpc_text"]
    c = m["runtimes"][0]
    assert c["kind"] == "c" and c["tokens_per_s"] > 0 and c["ram_bytes"] > 0 and "cycle-counted" in c["label"]
    text = widget.asset_text(study, b"\0asm", skipped)
    assert len(text.encode()) < widget.MAX_ASSET_BYTES and first in text
    # the board command the widget prints names the file as the page shows it: from the repository root
    data = json.loads(text.split("window.STARMIND_WIDGET_DATA = ", 1)[1].split(";\n", 1)[0])
    assert data["models"][0]["file_path"] == widget._rel(tmp_path / "smd" / f"{first}.smd")
    assert widget._rel(widget.REPO_ROOT / "data" / "models" / "x.smd") == "data/models/x.smd"
    assert "--model ${m.file_path}" in text and "`.venv/bin/starmind board generate" in text


def test_committed_study_exports_come_first_with_the_bpc_of_the_model_they_run(tmp_path):
    """A committed export (data/models/<id>.smd with its provenance row, matched by SHA-256) is offered
    before <runs_dir>/smd; its bpc is its Study v2 configuration's (mean over seeds with >= 2 seeds, else the
    run's own with its story interval), labelled as the float model on the whole split; a file without a
    row is left out, saying why; other committed exports follow the recommendations."""
    import shutil

    from starmind_lib.quant import export
    results, models = widget.REPO_ROOT / "data" / "results", tmp_path / "models"
    _, skipped = widget.study_models(results, tmp_path, models_dir=models)
    if not skipped:
        pytest.skip("no recommendations in the committed tables")
    first = skipped[0].split(":")[0]
    models.mkdir()
    (tmp_path / "smd").mkdir()
    shutil.copy(widget.REFERENCE_DIR / "ref_bpe_lc.smd", tmp_path / "smd" / f"{first}.smd")
    shutil.copy(widget.REFERENCE_DIR / "ref_rope_silu.smd", models / f"{first}.smd")
    study, skipped = widget.study_models(results, tmp_path, models_dir=models)
    assert first not in [m["id"] for m in study]
    assert any(s.startswith(f"{first}: {first}.smd has no provenance row") for s in skipped)   # no machine paths
    row = {"key": f"{first}/x", "variant_id": first, "file": f"{first}.smd", "run_key": "not-in-the-table",
           "sha256": export.sha256_file(models / f"{first}.smd"), "seed": 0, "tier": "base", "bpc": 2.5,
           "bpc_ci_low": 2.45, "bpc_ci_high": 2.56, "n_seeds": 1, "bpc_mean": None}
    export.models_table(models).append(row)
    shutil.copy(widget.REFERENCE_DIR / "ref_bpe_lc.smd", models / "budget10k-vocab-bpe1024.smd")
    export.models_table(models).append({**row, "key": "b/x", "variant_id": "budget10k-vocab-bpe1024",
                                        "file": "budget10k-vocab-bpe1024.smd", "n_seeds": 3, "bpc_mean": 2.0,
                                        "bpc_mean_ci_low": 1.9, "bpc_mean_ci_high": 2.1,
                                        "sha256": export.sha256_file(models / "budget10k-vocab-bpe1024.smd")})
    study, skipped = widget.study_models(results, tmp_path, models_dir=models)
    by_id = {m["id"]: m for m in study}
    m = by_id[first]
    assert study[0]["id"] == first and m["file"] == models / f"{first}.smd" and m["committed"]
    assert m["bpc"] == 2.5
    assert m["bpc_text"] == ("2.5 bpc (one seed, 95 % story interval 2.45–2.56; float model, whole validation "
                             "split; this file: seed 0, int8)")
    assert "Study v2 run not-in-the-table (seed 0)" in m["note"]
    b = by_id["budget10k-vocab-bpe1024"]
    assert b["bpc"] == 2.0 and b["bpc_text"].startswith("2 bpc (mean of 3 seeds, 95 % interval 1.9–2.1; float")
    assert b["runtimes"][0]["kind"] == "c" and [m["id"] for m in study].index(b["id"]) > 0


def test_micropython_speeds_are_labelled_emulated_never_measured():
    label = widget.MP_LABEL.format(mhz=125)
    assert "emulated stock firmware (MicroPython 1.27 in rp2040js, cycle-counted)" in label
    assert "measured" not in label
    for m in widget.reference_models(widget.REPO_ROOT / "data" / "results"):
        for r in m["runtimes"]:
            assert "(measured)" not in r["label"], r
