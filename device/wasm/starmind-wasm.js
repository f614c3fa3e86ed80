/* JavaScript glue for starmind.wasm (device/c compiled by device/wasm/Makefile).
 *
 *   const eng = await StarmindWasm.instantiate(wasmBytes);   // Uint8Array, e.g. decoded from base64
 *   eng.load(modelBytes);                                   // a format-v2 .smd file
 *   const ids = eng.encode("once upon a time");             // the file's own encoder (FORMAT.md 11)
 *   eng.start(ids, seed);                                   // prefill + reseed the xorshift32 sampler
 *   const t = eng.next(temperatureQ8, topK);                // one token id per call
 *   eng.tokenBytes(t); eng.isStop(t);
 *
 * The module imports nothing (no WASI, no network); it works from file:// because the bytes
 * come from a script, not from a network request.  Runs in browsers and in Node.
 */
(function (root) {
  'use strict';
  const ERRORS = {0: 'ok', '-1': 'format', '-2': 'no memory', '-3': 'bad argument', '-4': 'crc',
    '-5': 'version', '-6': 'magic', '-7': 'truncated', '-8': 'unsupported', '-9': 'context full',
    '-10': 'special tokens', '-11': 'encoder', '-12': 'rope', '-13': 'non-finite', '-14': 'packing',
    '-15': 'cannot encode', '-16': 'no encoder'};

  function base64Bytes(s) {
    if (typeof atob === 'function') {
      const bin = atob(s), out = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
      return out;
    }
    return Uint8Array.from(Buffer.from(s, 'base64'));   // Node
  }

  class StarmindError extends Error {
    constructor(code, what) { super(what + ': ' + (ERRORS[code] || 'error') + ' (' + code + ')'); this.code = code; }
  }

  class Engine {
    constructor(instance) { this.x = instance.exports; this.file = 0; this.text = 0; }
    get mem() { return new Uint8Array(this.x.memory.buffer); }   // a fresh view: malloc may grow memory
    check(code, what) { if (code < 0) throw new StarmindError(code, what); return code; }
    errorText(code) {
      const p = this.x.smw_strerror_ptr(code), m = this.mem;
      let e = p; while (m[e]) e++;
      return new TextDecoder().decode(m.subarray(p, e));
    }
    load(bytes) {
      if (this.file) this.x.smw_free(this.file);
      this.file = this.x.smw_alloc(bytes.length);
      this.mem.set(bytes, this.file);
      const err = this.x.smw_load(this.file, bytes.length);
      if (err) throw new StarmindError(err, 'load: ' + this.errorText(err));
      this.info = {vocabSize: this.x.smw_info(0), dim: this.x.smw_info(1), nLayers: this.x.smw_info(2),
        maxSeqLen: this.x.smw_info(3), version: this.x.smw_info(5), arenaBytes: this.x.smw_info(7)};
      return this.info;
    }
    encode(text) {
      const bytes = new TextEncoder().encode(text);
      const p = this.x.smw_alloc(bytes.length);
      this.mem.set(bytes, p);
      const n = this.x.smw_encode(p, bytes.length);
      this.x.smw_free(p);
      if (n < 0) throw new StarmindError(n, 'encode: ' + this.errorText(n));
      return Array.from(new Uint32Array(this.x.memory.buffer, this.x.smw_ids(), n));
    }
    start(ids, seed) {
      if (!ids.length) throw new StarmindError(-3, 'start: the prompt encodes to no tokens');
      new Uint32Array(this.x.memory.buffer, this.x.smw_ids(), ids.length).set(ids);
      const err = this.x.smw_start(ids.length, seed >>> 0);
      if (err) throw new StarmindError(err, 'prefill: ' + this.errorText(err));
    }
    next(temperatureQ8, topK) {
      const t = this.x.smw_next(temperatureQ8 >>> 0, topK >>> 0);
      if (t < 0) throw new StarmindError(t, 'step: ' + this.errorText(t));
      return t;
    }
    isStop(t) { return this.x.smw_is_stop(t) !== 0; }
    restarts() { return this.x.smw_info(8); }
    tokenBytes(t) {
      const n = this.x.smw_token_len(t), p = this.x.smw_token_bytes(t);
      return this.mem.slice(p, p + n);
    }
    /* What `starmind board generate` does: encode, prefill, up to n tokens, stop rule. */
    generate(text, n, seed, temperatureQ8, topK) {
      const prompt = this.encode(text), out = [];
      this.start(prompt, seed);
      for (let i = 0; i < n; i++) {
        const t = this.next(temperatureQ8, topK);
        out.push(t);
        if (this.isStop(t)) break;
      }
      return {prompt_ids: prompt, output_ids: out};
    }
  }

  async function instantiate(wasmBytes) {
    const {instance} = await WebAssembly.instantiate(wasmBytes, {});
    return new Engine(instance);
  }

  const api = {instantiate, base64Bytes, Engine, StarmindError};
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  root.StarmindWasm = api;
})(typeof globalThis !== 'undefined' ? globalThis : this);
