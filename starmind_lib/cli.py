"""The ``starmind`` command: one argparse subparser per area.

    starmind board plan --models data/reference/*.smd
    starmind board deploy --port /dev/ttyACM0 --models model.smd
    starmind board generate --port /dev/ttyACM0 --model model.smd --prompt "Once upon a time"
    starmind board bench --port /dev/ttyACM0 --models a.smd b.smd --results-dir data/results
    starmind board generate --port virtual --model data/reference/ref_rope_silu.smd --prompt "the cat "
    starmind book build --profile smoke            (the book's own command line)

``--port`` takes anything mpremote accepts (/dev/ttyACM0, socket://host:port,
rfc2217://host:port) or ``virtual``: a virtual MicroPython board started for the
command (behaviour only, never speed or memory).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


# ---------------------------------------------------------------- board
def _board_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="mpremote connection (/dev/ttyACM0, socket://H:P, rfc2217://H:P) "
                                                 "or 'virtual'")
    p.add_argument("--kind", choices=("hardware", "virtual", "fake"), default=None,
                   help="what is at the port (default: hardware, or virtual for --port virtual)")
    p.add_argument("--runtime-format", choices=("mpy-armv6m", "mpy", "py"), default=None,
                   help="how the runtime is deployed (default: by kind: armv6m .mpy for hardware)")
    p.add_argument("--engine", choices=("auto", "viper", "python"), default="auto", help="kernels on the board")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a model may run before status timeout")
    p.add_argument("--force", action="store_true", help="run models the planner says will not fit")
    p.add_argument("--weights", choices=("auto", "ram", "flash"), default="auto",
                   help="weights in RAM, streamed from the board's flash each token, or auto (flash when large)")


def _generation(p: argparse.ArgumentParser, n_tokens: int) -> None:
    p.add_argument("--prompt", default=None, help="prompt text (encoded with the model file's vocabulary)")
    p.add_argument("--prompt-ids", default=None, help="prompt token ids, comma-separated (instead of --prompt)")
    p.add_argument("--n-tokens", type=int, default=n_tokens)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature-q8", type=int, default=0, help="temperature x 256; 0 = greedy")
    p.add_argument("--top-k", type=int, default=0)


def add_board_parser(sub) -> None:
    board = sub.add_parser("board", help="run models on MicroPython boards through mpremote")
    bsub = board.add_subparsers(dest="board_command", required=True)
    p = bsub.add_parser("plan", help="memory planner and speed predictor for a stock Pico (predicted)")
    p.add_argument("--models", nargs="+", required=True, type=Path)
    p.add_argument("--context", type=int, default=None, help="positions in the KV cache (default max_seq_len)")
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
        if port == "virtual":
            port, kind = stack.enter_context(start_virtual_board()).url, kind or "virtual"
        board = MpremoteBoard(port, kind=kind or "hardware", runtime_format=args.runtime_format,
                              timeout_s=args.timeout, force=args.force, engine=args.engine, weights=args.weights)
        stack.callback(board.close)
        yield board


def _prompt_ids(args, model_path: Path) -> list[int]:
    from .devices.mpremote_board import encode_prompt
    if args.prompt_ids:
        return [int(t) for t in args.prompt_ids.split(",") if t.strip()]
    if args.prompt is None:
        raise SystemExit("give --prompt TEXT or --prompt-ids 1,2,3")
    return encode_prompt(model_path, args.prompt)


def board_main(args) -> int:
    from .devices import planner
    from .devices.mpremote_board import model_architecture, runs_table

    if args.board_command == "plan":
        for path in args.models:
            arch = model_architecture(path)
            plan = planner.plan_memory(arch, context=args.context)
            speed = {rt: round(planner.predict_speed(arch, rt, args.context, weights=plan.weights).tokens_per_s, 1)
                     for rt in planner.RUNTIMES}
            print(json.dumps({"model": path.name, "fits": plan.fits, "weights": plan.weights, "reason": plan.reason,
                              "heap_needed_bytes": plan.total_bytes, "predicted_tokens_per_s": speed,
                              "label": "predicted (stock Pico, MicroPython 1.27)"}))
        return 0
    if args.board_command == "virtual":
        from .devices.virtual import start_virtual_board
        with start_virtual_board() as vb:
            print(f"virtual board at {vb.url} (behaviour only; Ctrl-C stops it)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                vb.proc.wait()
        return 0
    with _open_board(args) as board:
        if args.board_command == "deploy":
            actions = board.deploy_runtime()
            for m in args.models:
                actions.update(board.deploy(m))
            for remote, action in actions.items():
                print(f"{action:9s} {remote}")
            return 0
        if args.board_command == "generate":
            ids = _prompt_ids(args, args.model)
            sys.stdout.write(args.prompt or "")
            sys.stdout.flush()
            rec = board.run(ids, args.n_tokens, args.seed, args.temperature_q8, args.top_k, model_path=args.model,
                            on_token=lambda i, text: (sys.stdout.write(text), sys.stdout.flush()))
            print()
            _summary(rec)
            return 0 if rec.status == "ok" else 1
        table = runs_table(args.results_dir) if args.results_dir else None
        ids = _prompt_ids(args, args.models[0])
        recs = board.bench(args.models, ids, args.n_tokens, args.seed, args.temperature_q8, args.top_k,
                           table=table, profile=args.profile, on_record=_summary)
        if table is not None:
            table.snapshot()
        return 0 if all(r.status == "ok" for r in recs) else 1


def _summary(rec) -> None:
    speed = f"{rec.tokens_per_s:.1f} tok/s ({rec.speed_source})" if rec.tokens_per_s else ""
    msg = f" {rec.message}" if rec.message else ""
    print(f"[{rec.model}] {rec.status} {rec.runtime} {speed}{msg}", file=sys.stderr)


# ---------------------------------------------------------------- book (delegated)
def add_book_parser(sub) -> None:
    p = sub.add_parser("book", help="build the Jupyter Book (same arguments as python -m starmind_lib.book.build)")
    p.add_argument("book_args", nargs=argparse.REMAINDER)


def book_main(args) -> int:
    from .book import build as book
    return book.main(args.book_args) or 0


AREAS = {"board": (add_board_parser, board_main), "book": (add_book_parser, book_main)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starmind", description="Starmind: language models on a Raspberry Pi Pico")
    sub = parser.add_subparsers(dest="area", required=True)
    for add, _ in AREAS.values():
        add(sub)
    args = parser.parse_args(argv)
    return AREAS[args.area][1](args)


if __name__ == "__main__":
    sys.exit(main())
