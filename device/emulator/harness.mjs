// Runs a Starmind firmware image on the emulated Pico (rp2040js) and prints one JSON result.
//
//   node harness.mjs job.json          (job: see readJob below)
//
// The firmware goes to flash at 0x10000000, the run parameters at 0x10020000 and
// the .smd model at 0x10021000 (fw_protocol.h).  The boot ROM is loaded (its fast
// float routines are used by the float32 path) but boot2 is not run: rp2040js
// maps flash without the SSI, so SP/PC come straight from the image's vector table.
//
// Cycle counts are rp2040js's Cortex-M0+ timings (core.cycles).  rp2040js does not
// model the 16 KB XIP cache: every flash access costs what an SRAM access costs.
// flashCache() below adds that model, driven by the address of every flash read
// (instruction fetches and data loads): 2-way set associative, 8-byte lines,
// 16 KB, LRU, and a fixed miss penalty in clk_sys cycles (derivation in
// starmind_lib/devices/flashcache.py and chapter 06).  Raw and cache-model cycles
// are reported side by side at every BKPT marker.
import { readFileSync } from 'node:fs';
import { RP2040 } from 'rp2040js';

const FLASH_BASE = 0x10000000;
const XIP_END = 0x11000000;           // cached XIP window (the NOALLOC/NOCACHE aliases are not used)
const PARAMS_OFFSET = 0x20000;
const MODEL_OFFSET = 0x21000;
const PICO_FLASH_BYTES = 2 * 1024 * 1024;
const PARAMS_MAGIC = 0x50524d53;
const RESULT_MAGIC = 0x53524d53;
const STACK_PAINT = 0x5afe57ac;
const STACK_LIMIT = 0x20040000;
const STACK_TOP = 0x20042000;
const MARK = { LOAD_START: 1, LOAD_DONE: 2, PREFILL_DONE: 3, TOKEN: 4, DONE: 0x7f, FAULT: 0x7e };

function readJob() {
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  return {
    firmware: job.firmware,            // raw .bin of the image (linked at 0x10000000)
    bootrom: job.bootrom,              // raw 16 KB boot ROM
    model: job.model || null,          // .smd file, or null
    command: job.command ?? 2,         // 1 kernel bench, 2 generate
    flags: job.flags ?? 0,             // 1 weights in SRAM, 2 no KV cache
    prompt: job.prompt ?? [],
    nGen: job.n_gen ?? 0,
    seed: job.seed ?? 0,
    temperatureQ8: job.temperature_q8 ?? 0,
    topK: job.top_k ?? 0,
    benchN: job.bench_n ?? 0,
    maxCycles: job.max_cycles ?? 4e9,
    missPenalty: job.miss_penalty ?? 0,
    dumpLogits: job.dump_logits ?? false,
    profile: job.profile ?? false,      // cycles per program counter (between load done and the end)
  };
}

// 16 KB, 2-way set associative, 8-byte lines, LRU replacement.
function flashCache() {
  const SETS = 1024;
  const tags = new Int32Array(SETS * 2).fill(-1);
  const mru = new Uint8Array(SETS);          // the way used last in each set
  const stats = { accesses: 0, misses: 0 };
  let lastLine = -1;
  function access(addr) {
    const line = (addr & 0xffffff) >>> 3;
    stats.accesses++;
    if (line === lastLine) return;           // same line as the previous access: a hit
    lastLine = line;
    const set = line & (SETS - 1);
    const tag = line >>> 10;
    const base = set << 1;
    if (tags[base] === tag) { mru[set] = 0; return; }
    if (tags[base + 1] === tag) { mru[set] = 1; return; }
    stats.misses++;
    const victim = mru[set] ^ 1;
    tags[base + victim] = tag;
    mru[set] = victim;
  }
  return { access, stats };
}

function u32words(buf) {
  const words = new Uint32Array(buf.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = buf.readUInt32LE(i * 4);
  return words;
}

function main() {
  const job = readJob();
  const out = { status: 'ok', message: '', markers: [], uart: '', warnings: [] };
  const model = job.model ? readFileSync(job.model) : Buffer.alloc(0);
  const firmware = readFileSync(job.firmware);
  out.model_bytes = model.length;
  out.firmware_bytes = firmware.length;
  if (MODEL_OFFSET + model.length > PICO_FLASH_BYTES) {
    out.status = 'does_not_fit';
    out.message = `model file of ${model.length} bytes does not fit the Pico's 2 MB flash ` +
      `(${PICO_FLASH_BYTES - MODEL_OFFSET} bytes free after the firmware)`;
    console.log(JSON.stringify(out));
    return;
  }
  if (firmware.length > PARAMS_OFFSET) throw new Error(`firmware of ${firmware.length} bytes exceeds 128 KB`);

  const mcu = new RP2040();
  mcu.logger = {
    debug() {}, info() {},
    warn(c, m) { if (out.warnings.length < 20) out.warnings.push(`${c}: ${m}`); },
    error(c, m) { if (out.warnings.length < 20) out.warnings.push(`${c}: ${m}`); },
  };
  mcu.loadBootrom(u32words(readFileSync(job.bootrom)));
  mcu.flash.set(firmware, 0);
  const header = [PARAMS_MAGIC, job.command, job.flags, model.length, job.prompt.length, job.nGen,
    job.seed >>> 0, job.temperatureQ8 >>> 0, job.topK, job.benchN, 0, 0, 0, 0, 0, 0];
  const words = header.concat(job.prompt);
  for (let i = 0; i < words.length; i++) mcu.flashView.setUint32(PARAMS_OFFSET + 4 * i, words[i] >>> 0, true);
  mcu.flash.set(model, MODEL_OFFSET);

  // The flash cache model sees every read the core makes in the cached XIP window.
  const cache = flashCache();
  for (const name of ['readUint32', 'readUint16', 'readUint8']) {
    const orig = mcu[name].bind(mcu);
    mcu[name] = (addr) => {
      if (addr >= FLASH_BASE && addr < XIP_END) cache.access(addr);
      return orig(addr);
    };
  }
  mcu.uart[0].onByte = (b) => { out.uart += String.fromCharCode(b); };

  const core = mcu.core;
  core.VTOR = FLASH_BASE;
  core.SP = mcu.flashView.getUint32(0, true);
  core.PC = mcu.flashView.getUint32(4, true) & ~1;
  core.cycles = 0;

  let stopped = false;
  let profiling = false;
  const readResult = (off) => mcu.sramView.getUint32(off, true);
  mcu.onBreak = (code) => {
    const m = { code, cycles: core.cycles, cache_misses: cache.stats.misses };
    if (code === MARK.TOKEN) m.token = readResult(32);
    if (code === MARK.PREFILL_DONE && job.dumpLogits) {
      const addr = readResult(24) - 0x20000000, n = readResult(28);
      const isFloat = readResult(36) === 1;
      out.first_logits = Array.from({ length: n }, (_, i) => (isFloat
        ? mcu.sramView.getFloat32(addr + 4 * i, true) : mcu.sramView.getInt32(addr + 4 * i, true)));
    }
    out.markers.push(m);
    if (code === MARK.LOAD_DONE) profiling = true;   // the profile leaves out start-up and load
    if (code === MARK.DONE || code === MARK.FAULT) stopped = true;
    if (code === MARK.FAULT) { out.status = 'fault'; out.message = `hard fault at pc=0x${core.PC.toString(16)}`; }
  };
  const t0 = Date.now();
  const pcCycles = job.profile ? new Map() : null;
  while (!stopped) {
    if (pcCycles && profiling) {
      const pc = core.PC;
      const before = core.cycles;
      core.executeInstruction();
      pcCycles.set(pc, (pcCycles.get(pc) || 0) + core.cycles - before);
    } else {
      core.executeInstruction();
    }
    if (core.cycles > job.maxCycles) {
      out.status = 'timeout';
      out.message = `no result after ${job.maxCycles} cycles (pc=0x${core.PC.toString(16)})`;
      break;
    }
  }
  if (pcCycles) out.profile = Array.from(pcCycles.entries());
  out.wall_ms = Date.now() - t0;
  out.cycles = core.cycles;
  out.cache = { ...cache.stats, miss_penalty: job.missPenalty, lines: 2048, ways: 2, line_bytes: 8 };

  const res = {};
  ['magic', 'status', 'n_out', 'arena_size', 'arena_used', 'static_bytes', 'logits_addr', 'n_logits']
    .forEach((k, i) => { res[k] = readResult(4 * i); });
  res.status = res.status | 0;
  if (res.magic !== RESULT_MAGIC) {
    if (out.status === 'ok') { out.status = 'fault'; out.message = 'firmware wrote no result block'; }
  }
  res.out = Array.from({ length: Math.min(res.n_out, 2048) }, (_, i) => readResult(64 + 4 * i));
  out.result = res;
  // Stack high-water mark: the lowest word the program overwrote in the painted stack.
  let addr = STACK_LIMIT;
  while (addr < STACK_TOP && mcu.sramView.getUint32(addr - 0x20000000, true) === STACK_PAINT) addr += 4;
  out.stack_bytes = STACK_TOP - addr;
  console.log(JSON.stringify(out));
}

main();
