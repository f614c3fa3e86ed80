/* The book's story widget (starmind_lib/book/widget.py bundles it with the models and the wasm).
 *
 * Mounts on every div.starmind-widget (attributes: data-models="id,id", data-default, data-compact).
 * The reader picks a model and a runtime, types a prompt (encoded in the page by the model file's
 * own encoder, compiled into the wasm), and the story appears token by token at the pace the
 * runtime measured on the emulated Pico (or at full speed). Same seed, prompt and settings: the
 * same ids as `starmind board generate` (the C runtime itself, the integer sampler, the window
 * restart and the stop rule).
 *
 * For tests: element.starmind.lastRun = {model, runtime, prompt_ids, output_ids, times, done, ...};
 * StarmindWidget.generate(modelId, text, n, seed, temperatureQ8, topK, {stop, promptIds}),
 * StarmindWidget.encode(modelId, text).
 */
(function () {
  'use strict';
  const DATA = window.STARMIND_WIDGET_DATA;
  const W = window.StarmindWasm;
  const CSS = `
.smw{border:1px solid #c8ccd2;border-radius:6px;padding:.8em;margin:1em 0;font-size:.92em;background:#fafbfc}
.smw-controls{display:flex;flex-wrap:wrap;gap:.4em .9em;align-items:center;margin-bottom:.6em}
.smw-controls label{white-space:nowrap}
.smw-controls input[type=number]{width:5.5em}
.smw-controls input.smw-prompt{width:18em;max-width:100%}
.smw-body{display:flex;flex-wrap:wrap;gap:1em}
.smw-story{flex:3 1 22em;min-height:7em;max-height:20em;overflow:auto;white-space:pre-wrap;word-break:break-word;
  background:#fff;border:1px solid #dde;padding:.6em;margin:0;font-family:ui-monospace,monospace}
.smw-story .smw-p{color:#555;font-weight:bold}
.smw-stats{flex:1 1 14em;margin:0;display:grid;grid-template-columns:auto 1fr;gap:.15em .6em;align-content:start}
.smw-stats dt{color:#555;white-space:nowrap}.smw-stats dd{margin:0}
.smw-note,.smw-cmd,.smw-status{color:#555;font-size:.9em;margin-top:.4em}
.smw-cmd code{word-break:break-all}
.smw-compact .smw-adv{display:none}`;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  }

  const modelCache = {};
  function modelBytes(m) { return modelCache[m.id] || (modelCache[m.id] = W.base64Bytes(m.smd)); }
  let wasmModule = null;
  async function newEngine() {
    if (!wasmModule) wasmModule = WebAssembly.compile(W.base64Bytes(DATA.wasm));
    const instance = await WebAssembly.instantiate(await wasmModule, {});
    return new W.Engine(instance);
  }
  function modelById(id) { return DATA.models.find(m => m.id === id); }
  function fmtPace(v) { return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3); }
  function shellQuote(s) { return "'" + s.replace(/'/g, "'\\''") + "'"; }

  class Widget {
    constructor(root) {
      this.root = root;
      const wanted = (root.dataset.models || '').split(',').filter(Boolean);
      this.models = wanted.length ? DATA.models.filter(m => wanted.includes(m.id)) : DATA.models;
      this.compact = root.dataset.compact === '1';
      this.gen = 0;
      this.engine = null;
      this.loaded = null;
      this.lastRun = null;
      this.build(root.dataset.default);
    }
    build(defaultId) {
      const r = this.root;
      r.textContent = '';
      r.classList.add('smw');
      if (this.compact) r.classList.add('smw-compact');
      this.model = el('select', {class: 'smw-model', 'aria-label': 'model'});
      for (const m of this.models) this.model.append(el('option', {value: m.id, text: m.label}));
      const paced = this.models.find(m => m.runtimes.some(rt => rt.tokens_per_s));   // a model with a measured pace
      if (defaultId && this.models.some(m => m.id === defaultId)) this.model.value = defaultId;
      else if (paced) this.model.value = paced.id;
      this.runtime = el('select', {class: 'smw-runtime', 'aria-label': 'runtime'});
      this.prompt = el('input', {class: 'smw-prompt', type: 'text', 'aria-label': 'prompt'});
      this.n = el('input', {class: 'smw-n', type: 'number', min: '1', max: '2000', value: '64'});
      this.temp = el('input', {class: 'smw-temp', type: 'number', min: '0', max: '16', step: '0.05', value: '0.8'});
      this.topk = el('input', {class: 'smw-topk', type: 'number', min: '0', value: '0'});
      this.seed = el('input', {class: 'smw-seed', type: 'number', min: '0', max: '4294967295', value: '0'});
      this.full = el('input', {class: 'smw-full', type: 'checkbox'});
      this.go = el('button', {class: 'smw-go', type: 'button', text: 'Write the story'});
      this.stopBtn = el('button', {class: 'smw-stop', type: 'button', text: 'Stop'});
      const adv = (label, input) => el('label', {class: 'smw-adv'}, label + ' ', input);
      const controls = el('div', {class: 'smw-controls'},
        el('label', {}, 'model ', this.model), el('label', {}, 'runtime ', this.runtime),
        el('label', {}, 'prompt ', this.prompt),
        adv('tokens', this.n), adv('temperature', this.temp), adv('top-k', this.topk), adv('seed', this.seed),
        el('label', {}, this.full, ' full speed'), this.go, this.stopBtn);
      this.story = el('pre', {class: 'smw-story', 'aria-live': 'polite'});
      this.stats = el('dl', {class: 'smw-stats'});
      this.note = el('div', {class: 'smw-note'});
      this.cmd = el('div', {class: 'smw-cmd smw-adv'});
      this.status = el('div', {class: 'smw-status'});
      r.append(controls, el('div', {class: 'smw-body'}, this.story, this.stats), this.note, this.cmd, this.status);
      if (!this.compact && DATA.skipped && DATA.skipped.length) {   // recommended models this page cannot offer
        r.append(el('details', {class: 'smw-skipped'}, el('summary', {text: `Not offered here (${DATA.skipped.length})`}),
          el('ul', {}, ...DATA.skipped.map(t => el('li', {text: t})))));
      }
      this.model.addEventListener('change', () => this.pickModel(true));
      this.runtime.addEventListener('change', () => this.showStats());
      for (const i of [this.prompt, this.n, this.temp, this.topk, this.seed]) i.addEventListener('input', () => this.showCommand());
      this.prompt.addEventListener('keydown', e => { if (e.key === 'Enter') this.run(); });
      this.go.addEventListener('click', () => this.run());
      this.stopBtn.addEventListener('click', () => { this.gen++; this.status.textContent = 'stopped'; });
      this.pickModel(true);
    }
    get current() { return modelById(this.model.value); }
    get currentRuntime() { return this.current.runtimes.find(x => x.kind === this.runtime.value) || this.current.runtimes[0]; }
    get temperatureQ8() { return Math.max(0, Math.round(parseFloat(this.temp.value || '0') * 256)); }
    pickModel(resetPrompt) {
      const m = this.current;
      this.runtime.textContent = '';
      for (const rt of m.runtimes) this.runtime.append(el('option', {value: rt.kind, text: rt.kind === 'c' ? 'C int8' : 'MicroPython'}));
      if (resetPrompt) this.prompt.value = m.prompt_text;
      this.prompt.disabled = m.encoder === 'none';
      this.showStats();
    }
    showStats(pace) {
      const m = this.current, rt = this.currentRuntime;
      const rows = [['on the Pico', rt ? rt.tokens_per_s_text : 'not measured'],
        ['pace here', pace || (this.full.checked ? 'full speed' : '–')],
        ['RAM (peak)', rt ? rt.ram_text : 'n/a'], ['flash', rt ? rt.flash_text : 'n/a'],
        ['quality', m.bpc_text], ['runtime', rt ? rt.label : 'n/a'],
        ['file', `${m.file_name} (${m.file_bytes.toLocaleString('en-US')} bytes)`]];
      this.stats.textContent = '';
      for (const [k, v] of rows) this.stats.append(el('dt', {text: k}), el('dd', {text: v}));
      this.note.textContent = m.note + (m.encoder === 'none' ? '; this file has no encoder, so the prompt is its golden ids' : '');
      this.showCommand();
    }
    showCommand() {
      const m = this.current;
      const prompt = m.encoder === 'none' ? `--prompt-ids ${m.prompt_ids.join(',')}` : `--prompt ${shellQuote(this.prompt.value)}`;
      this.cmd.textContent = '';
      this.cmd.append('the same story on a board: ', el('code', {text:
        `.venv/bin/starmind board generate --port PORT --model ${m.file_path} ${prompt} --n-tokens ${parseInt(this.n.value, 10) || 64}` +
        ` --seed ${(parseInt(this.seed.value, 10) || 0) >>> 0} --temperature-q8 ${this.temperatureQ8} --top-k ${parseInt(this.topk.value, 10) || 0}`}));
    }
    async run() {
      const gen = ++this.gen, m = this.current, rt = this.currentRuntime;
      const n = Math.max(1, Math.min(2000, parseInt(this.n.value, 10) || 64));
      const seed = (parseInt(this.seed.value, 10) || 0) >>> 0, tq8 = this.temperatureQ8;
      const topk = Math.max(0, parseInt(this.topk.value, 10) || 0);
      const run = this.lastRun = {model: m.id, runtime: rt ? rt.kind : null, tokens_per_s: rt ? rt.tokens_per_s : null,
        prompt: this.prompt.value, seed, temperature_q8: tq8, top_k: topk, n, prompt_ids: [], output_ids: [],
        times: [], full_speed: [], done: false, error: null};
      this.story.textContent = '';
      this.status.textContent = 'loading…';
      try {
        if (!this.engine) this.engine = await newEngine();
        if (this.loaded !== m.id) { this.engine.load(modelBytes(m)); this.loaded = m.id; }
        const ids = m.encoder === 'none' ? m.prompt_ids : this.engine.encode(this.prompt.value);
        run.prompt_ids = ids;
        this.engine.start(ids, seed);
      } catch (e) {
        run.error = String(e.message || e); run.done = true;
        this.status.textContent = 'cannot start: ' + run.error;
        return run;
      }
      if (gen !== this.gen) return run;
      this.story.append(el('span', {class: 'smw-p', text: m.encoder === 'none' ? '' : this.prompt.value}));
      const out = document.createTextNode('');
      this.story.append(out);
      const dec = new TextDecoder('utf-8');
      const tps = rt ? rt.tokens_per_s : 0;
      let base = null;   // {t, i}: token i is due at base.t + (i - base.i) / tps
      let i = 0;
      this.status.textContent = 'writing…';
      return new Promise(resolve => {
        const finish = (why) => {
          run.done = true;
          out.appendData(dec.decode());
          this.status.textContent = `${run.output_ids.length} tokens (${why})`;
          this.showStats(this.paceText(run));
          resolve(run);
        };
        const tick = () => {
          if (gen !== this.gen) return finish('stopped');
          const full = this.full.checked || !tps;
          const sliceEnd = performance.now() + 12;
          let text = '';
          while (i < n) {
            const now = performance.now();
            if (full) { if (now > sliceEnd) break; base = null; }
            else {
              if (!base) base = {t: now, i};
              if (base.t + (i - base.i) * 1000 / tps > now) break;
            }
            let t;
            try { t = this.engine.next(tq8, topk); } catch (e) { run.error = String(e.message || e); i = n; break; }
            run.output_ids.push(t); run.times.push(now); run.full_speed.push(full);
            text += dec.decode(this.engine.tokenBytes(t), {stream: true});
            i++;
            if (this.engine.isStop(t)) { run.stopped_at_eos = true; i = n; }
          }
          if (text) { out.appendData(text); this.story.scrollTop = this.story.scrollHeight; }
          if (i >= n) return finish(run.error ? 'error: ' + run.error : run.stopped_at_eos ? 'end of story (EOS)' : 'done');
          this.stats.children[3].textContent = this.paceText(run);
          const wait = full || !base ? 0 : Math.max(0, base.t + (i - base.i) * 1000 / tps - performance.now());
          setTimeout(tick, wait);
        };
        tick();
      });
    }
    paceText(run) {
      const k = run.times.length;
      if (k < 2) return this.full.checked ? 'full speed' : '–';
      const v = (k - 1) * 1000 / (run.times[k - 1] - run.times[0]);
      return `${fmtPace(v)} tokens/s${run.full_speed.some(Boolean) ? ' (full speed)' : ''}`;
    }
  }

  /* Ids as the board writes them, without the UI (tests): opts.stop (default true) applies the stop rule. */
  async function generate(modelId, text, n, seed, temperatureQ8, topK, opts) {
    const o = opts || {}, m = modelById(modelId);
    if (!m) throw new Error('no model ' + modelId);
    const eng = await newEngine();
    eng.load(modelBytes(m));
    const ids = o.promptIds || eng.encode(text);
    eng.start(ids, seed);
    const out = [];
    for (let i = 0; i < n; i++) {
      const t = eng.next(temperatureQ8, topK);
      out.push(t);
      if (o.stop !== false && eng.isStop(t)) break;
    }
    return {prompt_ids: ids, output_ids: out};
  }

  async function encode(modelId, text) {
    const eng = await newEngine();
    eng.load(modelBytes(modelById(modelId)));
    return eng.encode(text);
  }

  function mount() {
    const roots = document.querySelectorAll('div.starmind-widget');
    if (!roots.length) return;
    if (!document.getElementById('starmind-widget-css')) {
      document.head.append(el('style', {id: 'starmind-widget-css'}, CSS));
    }
    for (const r of roots) {
      if (r.starmind) continue;
      if (!DATA || !DATA.wasm) { r.textContent = 'The story widget is not available: ' + ((DATA && DATA.unavailable) || 'no data') + '.'; continue; }
      r.starmind = new Widget(r);
      api.widgets.push(r.starmind);
    }
  }

  const api = {widgets: [], generate, encode, mount, data: DATA};
  window.StarmindWidget = api;
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount); else mount();
})();
