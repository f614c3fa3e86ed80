// The virtual MicroPython board: the MicroPython WebAssembly port behind a TCP
// socket that speaks the same byte stream as a Pico's USB serial console, so
// the real `mpremote connect socket://127.0.0.1:PORT ...` drives it unchanged.
//
//   node bridge.mjs [--port 0] [--host 127.0.0.1] [--heap 262144]
//
// Prints "LISTENING <port>" on stdout once it accepts connections (port 0 picks
// a free one). What it emulates:
//   * the friendly REPL and the raw REPL (Ctrl-A / Ctrl-B / Ctrl-C / Ctrl-D),
//     which the port's event-driven REPL implements itself;
//   * raw-paste mode (\x05A\x01), implemented here: the port's event-driven REPL
//     cannot block for input, so the bridge collects the pasted code with
//     mpremote's flow control and then feeds it to the raw REPL;
//   * soft reset (Ctrl-D on an empty raw/friendly line): a fresh interpreter,
//     with the files written so far copied over (a real board's flash survives
//     a soft reset; here files live for the life of this process);
//   * reconnecting: the board keeps its state between connections, like a Pico
//     whose USB port is reopened.
// What it does not emulate: the Pico's speed or memory. The interpreter runs at
// the host's speed and its heap grows on demand; it proves behaviour only.
// A running program cannot be interrupted (the interpreter runs on this thread);
// the host runner's timeout kills the bridge instead.
import net from "node:net";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const CTRL_A = 0x01, CTRL_B = 0x02, CTRL_C = 0x03, CTRL_D = 0x04, CTRL_E = 0x05;
const RAW_PASTE_WINDOW = 512;
const SYSTEM_DIRS = new Set(["dev", "proc", "tmp", "home"]);

// The port's POSIX filesystem raises OSError with Emscripten's errno numbers
// (ENOENT = 44); a Pico raises MicroPython's (ENOENT = 2), which is what
// mpremote decodes. This prelude, run at every boot, translates them in `os`
// and `open`, so the board fails like a Pico does (e.g. `fs cp` onto a new file).
const ERRNO_PRELUDE = `
import sys, builtins
import os as _os
_EM_TO_MP = {63: 1, 44: 2, 29: 5, 8: 9, 2: 13, 10: 16, 20: 17, 54: 20, 31: 21, 28: 22, 51: 28, 55: 39}
def _translating(f):
    def call(*args):
        try:
            return f(*args)
        except OSError as e:
            code = e.errno
            if code in _EM_TO_MP:
                raise OSError(_EM_TO_MP[code])
            raise
    return call
class _PicoOS:
    pass
_w = _PicoOS()
for _n in dir(_os):
    _v = getattr(_os, _n)
    setattr(_w, _n, _translating(_v) if callable(_v) and not _n.startswith("_") else _v)
sys.modules["os"] = _w
builtins.open = _translating(builtins.open)
del _n, _v, _w, _PicoOS, _translating, _os, sys, builtins
`;

function parseArgs(argv) {
  const opts = { port: 0, host: "127.0.0.1", heap: 256 * 1024 };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in opts) || i + 1 >= argv.length) {
      console.error(`usage: node bridge.mjs [--port N] [--host H] [--heap BYTES]; bad argument ${argv[i]}`);
      process.exit(2);
    }
    opts[key] = key === "host" ? argv[i + 1] : parseInt(argv[i + 1], 10);
  }
  return opts;
}

class VirtualBoard {
  constructor(heap) {
    this.heap = heap;
    this.mp = null;
    this.sink = null;          // function(Buffer) receiving console output, or null
    this.pending = [];         // console output not yet flushed
    this.rawMode = false;      // whether the interpreter's REPL is in raw mode
    this.rawLineLen = 0;       // bytes fed to the raw REPL since its last prompt
    this.held = [];            // possible start of the raw-paste escape \x05 A \x01
    this.paste = null;         // {data: [], sinceAck: n} while in raw-paste mode
    this.swallow = null;       // output prefix to drop (the raw REPL's "OK" after a paste)
    this.muted = false;
  }

  async boot(files = []) {
    this.mp = await loadMicroPython({
      heapsize: this.heap, linebuffer: false,
      stdout: (bytes) => this.emit(bytes), stderr: (bytes) => this.emit(bytes),
    });
    for (const [path, isDir, data] of files) {
      if (isDir) this.mp.FS.mkdir(path); else this.mp.FS.writeFile(path, data);
    }
    this.muted = true;          // a real board in raw mode shows no banner after a soft reset
    this.mp.runPython(ERRNO_PRELUDE);
    this.mp.replInit();
    this.muted = false;
  }

  emit(bytes) {
    if (this.muted) return;
    for (const b of bytes) {
      if (this.swallow && this.swallow.length) {
        if (b === this.swallow[0]) { this.swallow.shift(); continue; }
        this.swallow = null;
      }
      this.pending.push(b);
    }
    if (this.pending.length >= 256 || bytes.includes(10)) this.flush();
  }

  flush() {
    if (this.pending.length && this.sink) this.sink(Buffer.from(this.pending));
    this.pending = [];
  }

  // Every file and directory the programs wrote, parents first, to survive a soft reset.
  snapshotFiles() {
    const FS = this.mp.FS, out = [];
    const walk = (dir) => {
      for (const name of FS.readdir(dir)) {
        if (name === "." || name === ".." || (dir === "/" && SYSTEM_DIRS.has(name))) continue;
        const path = (dir === "/" ? "" : dir) + "/" + name;
        const st = FS.stat(path);
        if (FS.isDir(st.mode)) { out.push([path, true, null]); walk(path); }
        else out.push([path, false, FS.readFile(path)]);
      }
    };
    walk("/");
    return out;
  }

  async softReset() {
    const files = this.snapshotFiles(), wasRaw = this.rawMode;
    this.emit(Buffer.from("MPY: soft reboot\r\n"));
    await this.boot(files);
    if (wasRaw) this.feedInterpreter(CTRL_A);
    else this.emit(Buffer.from("MicroPython (virtual board, WebAssembly port)\r\n>>> "));
  }

  // Feed one byte to the interpreter's REPL; returns true when it asked for a soft reset.
  feedInterpreter(c) {
    if (c === CTRL_A) { this.rawMode = true; this.rawLineLen = 0; }
    else if (c === CTRL_B) { this.rawMode = false; }
    else if (c === CTRL_C || c === CTRL_D) { this.rawLineLen = 0; }
    else this.rawLineLen++;
    const rc = this.mp.replProcessChar(c);
    return rc !== 0;
  }

  async pasteByte(c) {
    if (c !== CTRL_D) {
      this.paste.data.push(c);
      if (++this.paste.sinceAck >= RAW_PASTE_WINDOW) {  // room for one more window
        this.paste.sinceAck = 0;
        this.sink?.(Buffer.from([CTRL_A]));
      }
      return;
    }
    const code = this.paste.data;
    this.paste = null;
    this.sink?.(Buffer.from([CTRL_D]));                // end of data acknowledged
    this.rawLineLen = 0;
    for (const b of code) this.feedInterpreter(b);
    this.swallow = [0x4f, 0x4b];                        // raw-paste output has no "OK"
    if (this.feedInterpreter(CTRL_D)) await this.softReset();
  }

  async input(c) {
    if (this.paste) return this.pasteByte(c);
    if (this.rawMode && this.rawLineLen === 0) {
      const expect = [CTRL_E, 0x41, CTRL_A][this.held.length];
      if (c === expect) {
        this.held.push(c);
        if (this.held.length === 3) {
          this.held = [];
          this.paste = { data: [], sinceAck: 0 };
          this.sink?.(Buffer.from([0x52, 0x01, RAW_PASTE_WINDOW & 0xff, RAW_PASTE_WINDOW >> 8]));
        }
        return;
      }
      const held = this.held;
      this.held = [];
      for (const b of held) if (this.feedInterpreter(b)) await this.softReset();
    }
    if (this.feedInterpreter(c)) await this.softReset();
  }
}

async function main() {
  const opts = parseArgs(process.argv);
  const board = new VirtualBoard(opts.heap);
  await board.boot();
  let queue = Promise.resolve();
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    const sink = (buf) => { if (!sock.destroyed) sock.write(buf); };
    board.sink = sink;
    sock.on("data", (data) => {
      queue = queue.then(async () => {
        for (const c of data) await board.input(c);
        board.flush();
      }).catch((err) => { console.error("bridge error:", err); });
    });
    sock.on("close", () => { if (board.sink === sink) board.sink = null; });
    sock.on("error", () => {});
  });
  server.maxConnections = 1;
  server.listen(opts.port, opts.host, () => {
    process.stdout.write(`LISTENING ${server.address().port}\n`);
  });
}

main();
