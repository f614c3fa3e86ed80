"""The ``starmind`` command: one argparse subparser per area.

    starmind board plan --models data/reference/*.smd
    starmind board deploy --port /dev/ttyACM0 --models model.smd
    starmind board generate --port /dev/ttyACM0 --model model.smd --prompt "Once upon a time"
    starmind board bench --port /dev/ttyACM0 --models a.smd b.smd --results-dir data/results
    starmind board generate --port virtual --model data/reference/ref_rope_silu.smd --prompt "the cat "
    starmind board bench --port emulated --models data/reference/ref_rope_silu.smd --prompt-ids 1
    starmind export inspect data/reference/*.smd  (a bad file: one error line naming it; the rest go on)
    starmind book build --profile smoke            (the book's own command line)

``--port`` takes anything mpremote accepts (/dev/ttyACM0, socket://host:port,
rfc2217://host:port), ``virtual``: a virtual MicroPython board started for the
command (behaviour only, never speed or memory), or ``emulated`` / ``emulated:PATH``:
real MicroPython firmware (the shared RPI_PICO_UART.bin, $STARMIND_FIRMWARE, or PATH,
a .bin or .uf2) in rp2040js, whose speed is emulated cycles at the firmware's clock
(``speed_source=emulated_stock_firmware``) and whose heap is the firmware's real heap.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


# ---------------------------------------------------------------- board
def _board_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="mpremote connection (/dev/ttyACM0, socket://H:P, rfc2217://H:P), "
                                                 "'virtual', or 'emulated[:FIRMWARE.bin|.uf2]'")
    p.add_argument("--kind", choices=("hardware", "virtual", "fake", "emulated_firmware"), default=None,
                   help="what is at the port (default: hardware, or virtual for --port virtual)")
    p.add_argument("--runtime-format", choices=("mpy-armv6m", "mpy", "py"), default=None,
                   help="how the runtime is deployed (default: by kind: armv6m .mpy for hardware)")
    p.add_argument("--engine", choices=("auto", "viper", "python"), default="auto", help="kernels on the board")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a model may run before status timeout")
    p.add_argument("--force", action="store_true", help="run models the planner says will not fit")
    p.add_argument("--weights", choices=("auto", "ram", "flash"), default="auto",
                   help="weights in RAM, streamed from the board's flash each token, or auto (flash when large)")


DEFAULT_PROMPT = "once upon a time"


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is less than {low}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _generation(p: argparse.ArgumentParser, n_tokens: int) -> None:
    p.add_argument("--prompt", default=None,
                   help=f"prompt text, encoded with the model file's vocabulary (default {DEFAULT_PROMPT!r})")
    p.add_argument("--prompt-ids", default=None, help="prompt token ids, comma-separated (instead of --prompt)")
    p.add_argument("--n-tokens", type=_int_at_least(1), default=n_tokens, help="tokens to generate (1 or more)")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--temperature-q8", type=_int_at_least(0), default=0, help="temperature x 256; 0 = greedy")
    p.add_argument("--top-k", type=_int_at_least(0), default=0)


def add_board_parser(sub) -> None:
    board = sub.add_parser("board", help="run models on MicroPython boards through mpremote")
    bsub = board.add_subparsers(dest="board_command", required=True)
    p = bsub.add_parser("plan", help="memory planner and speed predictor for a stock Pico (predicted)")
    p.add_argument("--models", nargs="+", required=True, type=Path)
    p.add_argument("--context", type=int, default=None, help="positions in the KV cache (default max_seq_len)")
    p.add_argument("--port", default=None, help="plan for this board: 'emulated[:FIRMWARE]' (its measured heap) "
                                                "or none (a stock Pico: MicroPython 1.27, USB console)")
    p.add_argument("--weights", choices=("auto", "ram", "flash"), default="auto")
    p = bsub.add_parser("deploy", help="copy the runtime (and models) to the board, skipping unchanged files")
    _board_common(p)
    p.add_argument("--models", nargs="*", default=[], type=Path)
    p = bsub.add_parser("generate", help="generate a story on the board, printed as it comes")
    _board_common(p)
    p.add_argument("--model", required=True, type=Path)
    _generation(p, 64)
    p = bsub.add_parser("bench", help="benchmark models; resumable results in <results-dir>/device/micropython_runs")
    _board_common(p)
    p.add_argument("--models", nargs="+", required=True, type=Path)
    p.add_argument("--results-dir", type=Path, default=None, help="where the ResultTable lives (none: print only)")
    p.add_argument("--profile", default="", help="profile name recorded with each row")
    _generation(p, 32)
    p = bsub.add_parser("virtual", help="start a virtual board and print its socket:// URL until Ctrl-C")
    p.set_defaults(board_command="virtual")


@contextlib.contextmanager
def _open_board(args):
    from .devices.mpremote_board import MpremoteBoard
    from .devices.virtual import start_virtual_board

    with contextlib.ExitStack() as stack:
        port, kind = args.port, args.kind
        if port == "emulated" or port.startswith("emulated:"):
            from .devices.firmware import FirmwareBoard
            board = FirmwareBoard(port.partition(":")[2] or None, timeout_s=args.timeout, force=args.force,
                                  engine=args.engine, weights=args.weights)
            stack.callback(board.shutdown)
            yield board
            return
        if port == "virtual":
            port, kind = stack.enter_context(start_virtual_board()).url, kind or "virtual"
        board = MpremoteBoard(port, kind=kind or "hardware", runtime_format=args.runtime_format,
                              timeout_s=args.timeout, force=args.force, engine=args.engine, weights=args.weights)
        stack.callback(board.close)
        yield board


def _prompt_ids(args, model_path: Path) -> list[int]:
    from .devices.runtime import encode_prompt
    if args.prompt_ids:
        try:
            return [int(t) for t in args.prompt_ids.split(",") if t.strip()]
        except ValueError:
            raise SystemExit(f"--prompt-ids {args.prompt_ids!r}: give token ids as whole numbers, e.g. 1,2,3") from None
    return encode_prompt(model_path, DEFAULT_PROMPT if args.prompt is None else args.prompt)


def file_defect(path: Path) -> str | None:
    """Why a model file cannot be used (missing, truncated, corrupted: the reader's message), or None."""
    from .devices.runtime import model_architecture
    path = Path(path)
    if not path.is_file():
        return "no such file"
    try:
        model_architecture(path)
    except Exception as exc:   # any reader failure is the file's defect, reported per file
        return f"{type(exc).__name__}: {exc}"
    return None


def report_bad(path: Path, defect: str) -> None:
    """One line per bad file, naming the file and the defect; the batch goes on."""
    print(f"error  {path}: {defect}", file=sys.stderr)


def board_main(args) -> int:
    from .devices import planner
    from .devices.mpremote_board import runs_table
    from .devices.runtime import model_architecture

    if args.board_command == "plan":
        build = "uart" if (args.port or "").startswith("emulated") else "usb"
        bad = 0
        for path in args.models:
            try:
                arch = model_architecture(path) if Path(path).is_file() else None
                if arch is None:
                    raise FileNotFoundError("no such file")
                plan = planner.plan_memory(arch, context=args.context, weights=args.weights,
                                           heap_free=planner.HEAP_FREE_AFTER_BOOT[build])
            except Exception as exc:   # a truncated or corrupted file: say which and why, go on
                report_bad(path, str(exc) if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}")
                bad += 1
                continue
            speed = {rt: round(planner.predict_speed(arch, rt, args.context, weights=plan.weights).tokens_per_s, 1)
                     for rt in planner.RUNTIMES}
            print(json.dumps({"model": path.name, "fits": plan.fits, "weights": plan.weights, "reason": plan.reason,
                              "heap_needed_bytes": plan.total_bytes, "predicted_tokens_per_s": speed,
                              "clock_hz": planner.PICO_CLOCK_HZ,
                              "label": f"predicted (MicroPython 1.27 RPI_PICO, {build.upper()} console, "
                                       f"calibrated on the emulated firmware)"}))
        return 1 if bad else 0
    if args.board_command == "virtual":
        from .devices.virtual import start_virtual_board
        with start_virtual_board() as vb:
            print(f"virtual board at {vb.url} (behaviour only; Ctrl-C stops it)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                vb.proc.wait()
        return 0
    with _open_board(args) as board:
        if args.board_command == "deploy":
            from .devices.mpremote_board import BoardDisconnected, BoardExecError, BoardFilesystemError
            actions, failed = {}, 0
            try:
                actions.update(board.deploy_runtime())
            except (BoardFilesystemError, BoardExecError, BoardDisconnected, OSError) as e:
                print(f"filesystem_error  runtime: {e}" if not isinstance(e, BoardDisconnected)
                      else f"disconnected  runtime: {e}")
                return 1
            for m in args.models:
                if not Path(m).is_file():
                    print(f"missing_file  {Path(m).stem}: the model file {m} does not exist")
                    failed += 1
                    continue
                try:
                    actions.update(board.deploy(m))
                except (BoardFilesystemError, BoardExecError, OSError) as e:
                    print(f"filesystem_error  {Path(m).stem}: {e}")
                    failed += 1
                except BoardDisconnected as e:
                    print(f"disconnected  {Path(m).stem}: {e}")
                    failed += 1
            for remote, action in actions.items():
                print(f"{action:9s} {remote}")
            if getattr(board, "kind", "") == "emulated_firmware":
                print("(emulated board: the files are in the littlefs image it boots with, for this command's "
                      "lifetime; generate and bench deploy what they need)")
            return 1 if failed else 0
        if args.board_command == "generate":
            if not args.prompt_ids and _has_encoder(args.model):   # format v2: the board encodes the text
                return _generate_text(board, args)
            ids = _prompt_ids(args, args.model)
            sys.stdout.write(args.prompt or "")
            sys.stdout.flush()
            rec = board.run(ids, args.n_tokens, args.seed, args.temperature_q8, args.top_k, model_path=args.model,
                            on_token=lambda i, text: (sys.stdout.write(text), sys.stdout.flush()))
            print()
            _summary(rec)
            return 0 if rec.status == "ok" else 1
        table = runs_table(args.results_dir) if args.results_dir else None
        good = []
        for m in args.models:   # a bad file is reported and skipped, wherever it is in the list
            defect = file_defect(m)
            if defect:
                report_bad(m, defect)
            else:
                good.append(m)
        if not good:
            return 1
        ids = _prompt_ids(args, good[0])
        recs = board.bench(good, ids, args.n_tokens, args.seed, args.temperature_q8, args.top_k,
                           table=table, profile=args.profile, on_record=_summary)
        if table is not None:
            table.snapshot()
        return 0 if all(r.status == "ok" for r in recs) and len(good) == len(args.models) else 1


def _has_encoder(model_path: Path) -> bool:
    from .quant.smd import read_smd
    try:
        return read_smd(model_path).can_encode
    except Exception:  # noqa: BLE001 - a bad file is reported by the board run itself
        return False


def _generate_text(board, args) -> int:
    """Send the prompt as text: the board encodes it (FORMAT.md 11), generates with the stop rule and
    the window restart (6.7), so --n-tokens may exceed the model's context; tokens print as they come."""
    import codecs
    from .devices.runtime import BOARD_MODELS, PACKAGE
    text = DEFAULT_PROMPT if args.prompt is None else args.prompt
    board.deploy(args.model)
    board.soft_reset()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    result = {}

    def on_line(line: str) -> None:
        try:
            msg = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            return
        if msg and msg.get("event") == "token":
            sys.stdout.write(decoder.decode(bytes.fromhex(msg.get("hex", ""))))
            sys.stdout.flush()
        elif msg and msg.get("event") == "result":
            result.update(msg)

    sys.stdout.write(text)
    sys.stdout.flush()
    code = ("import sys\nif '/lib' not in sys.path:\n sys.path.append('/lib')\n"
            f"from {PACKAGE} import repl\n"
            f"repl.run_text({BOARD_MODELS + '/' + Path(args.model).name!r}, {text!r}, {args.n_tokens}, {args.seed}, "
            f"{args.temperature_q8}, {args.top_k}, {getattr(board, 'engine', 'auto')!r}, "
            f"{getattr(board, 'weights', 'auto')!r})\n")
    board.exec(code, timeout_s=max(getattr(board, "timeout_s", 60) or 60, 60 + 2.0 * args.n_tokens), on_line=on_line)
    print()
    status = result.get("status", "error")
    ms = result.get("ms_per_token")
    source = getattr(board, "speed_source", "")
    # the virtual board's wall clock is the host's, not a Pico's: no speed is printed for it
    speed = f" {1000.0 / ms:.1f} tok/s ({source})" if ms and source != "host_timing_not_representative" else ""
    print(f"[{Path(args.model).stem}] {status} {result.get('runtime', '')}{speed} prompt ids "
          f"{result.get('prompt_ids')} {result.get('message', '')}", file=sys.stderr)
    return 0 if status == "ok" else 1


def _summary(rec) -> None:
    speed = f"{rec.tokens_per_s:.1f} tok/s ({rec.speed_source})" if rec.tokens_per_s else ""
    msg = f" {rec.message}" if rec.message else ""
    print(f"[{rec.model}] {rec.status} {rec.runtime} {speed}{msg}", file=sys.stderr)


# ---------------------------------------------------------------- export
def add_export_parser(sub) -> None:
    export = sub.add_parser("export", help="device model files (.smd)")
    esub = export.add_subparsers(dest="export_command", required=True)
    p = esub.add_parser("inspect", help="check .smd files (strict reader) and print each header")
    p.add_argument("paths", nargs="+", type=Path)


def export_main(args) -> int:
    from .quant.smd import read_smd
    bad = 0
    for path in args.paths:
        try:
            if not Path(path).is_file():
                raise FileNotFoundError("no such file")
            m = read_smd(path)
        except Exception as exc:   # truncated, corrupted, wrong version: one line naming the file, go on
            report_bad(path, str(exc) if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}")
            bad += 1
            continue
        print(f"{path}: {m.header}")
        for k, v in m.tensors.items():
            print(f"  {k:24s} {str(v.dtype):8s} {v.shape}")
    return 1 if bad else 0


# ---------------------------------------------------------------- book (delegated)
def add_book_parser(sub) -> None:
    p = sub.add_parser("book", help="build the Jupyter Book (same arguments as python -m starmind_lib.book.build)")
    p.add_argument("book_args", nargs=argparse.REMAINDER)


def book_main(args) -> int:
    from .book import build as book
    return book.main(args.book_args) or 0


AREAS = {"board": (add_board_parser, board_main), "export": (add_export_parser, export_main),
         "book": (add_book_parser, book_main)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starmind", description="Starmind: language models on a Raspberry Pi Pico")
    sub = parser.add_subparsers(dest="area", required=True)
    for add, _ in AREAS.values():
        add(sub)
    args = parser.parse_args(argv)
    from .devices.virtual import BoardStartError
    try:
        return AREAS[args.area][1](args)
    except BoardStartError as e:   # no firmware, no Node.js, no rp2040js: one line that says what to give
        hint = (" (give the MicroPython firmware image with --port emulated:FIRMWARE.bin or STARMIND_FIRMWARE="
                "FIRMWARE.bin; README, 'Running chapter 06 with a real Pico')" if "firmware image" in str(e) else "")
        print(f"starmind: the board could not start: {e}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
