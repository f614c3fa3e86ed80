"""A Pico that tells stories on its own: typed text in, a story out, token by token, no host.

On the board (device/micropython/main.py does this at boot)::

    from starmind_mp import repl
    teller = repl.Teller("/models/story.smd")     # loads and checks the model once
    teller.tell("Once upon a time")               # prints the story as it is generated
    teller.loop()                                 # prompt> ... until an empty line

The prompt is encoded on the board by the file's encoder (format version 2); generation uses
the file's stop rule and continues past max_seq_len with the window restart (FORMAT.md 6.7).
``run_text`` is the same for a host runner: JSON lines (token events, then a result line).
"""
import json
import sys

from . import engine, smd, story, tokenizer

try:
    import time
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
except AttributeError:  # CPython
    import time
    _ticks_ms = lambda: int(time.monotonic() * 1000)  # noqa: E731
    _ticks_diff = lambda a, b: a - b  # noqa: E731


def _write(b):
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        out.write(b)
    else:
        sys.stdout.write(b.decode("utf-8", "replace") if isinstance(b, bytes) else b)


class Teller:
    def __init__(self, path, kernels="auto", weights="auto"):
        self.model = smd.load(path, weights, engine.reserve(kernels))
        if self.model.encoder == "none":
            raise ValueError("%s has no encoder (format version %d): it cannot read typed prompts"
                             % (path, self.model.version))
        self.eng = engine.make_engine(self.model, kernels)
        self.pending = b""

    def tell(self, text, n_tokens=400, temperature_q8=200, top_k=20, seed=None, bos=False):
        """Print ``text`` and its continuation as it is generated; returns the generated ids."""
        m = self.model
        if seed is None:
            seed = _ticks_ms() & 0xFFFF
        ids = tokenizer.encode(m, text)
        if bos and m.bos_id is not None:
            ids = [m.bos_id] + ids
        if not ids:
            raise ValueError("type some text first")
        _write(text.encode("utf-8") if isinstance(text, str) else text)

        def show(i, t):
            _write(m.token_bytes(t))

        out = story.generate(self.eng, ids, n_tokens, temperature_q8, top_k, seed, on_token=show)
        _write(b"\n")
        return out

    def loop(self, n_tokens=400, temperature_q8=200, top_k=20):
        """Read prompts until an empty line; each becomes a story."""
        while True:
            try:
                text = input("prompt> ")
            except EOFError:
                return
            if not text:
                return
            self.tell(text, n_tokens, temperature_q8, top_k)


def run_text(path, text, n_tokens, seed=0, temperature_q8=0, top_k=0, kernels="auto", weights="auto", bos=False):
    """For a host runner: encode ``text`` on the board, generate with the window and the stop rule,
    print one JSON line per token ({"event": "token", "id", "hex"}) and a result line."""
    res = {"event": "result", "status": "ok"}
    try:
        t0 = _ticks_ms()
        m = smd.load(path, weights, engine.reserve(kernels))
        eng = engine.make_engine(m, kernels)
        ids = tokenizer.encode(m, text)
        if bos and m.bos_id is not None:
            ids = [m.bos_id] + ids
        res["prompt_ids"] = ids
        res["load_ms"] = _ticks_diff(_ticks_ms(), t0)
        hexes = []

        def on_token(i, t):
            h = "".join("%02x" % b for b in m.token_bytes(t))
            hexes.append(h)
            print(json.dumps({"event": "token", "id": t, "hex": h}))

        t1 = _ticks_ms()
        res["output_ids"] = story.generate(eng, ids, n_tokens, temperature_q8, top_k, seed, on_token=on_token)
        ms = _ticks_diff(_ticks_ms(), t1)
        res["ms_per_token"] = ms / max(len(res["output_ids"]), 1)
        res["hex"] = "".join(hexes)
        res["runtime"] = "micropython-" + getattr(getattr(eng, "k", None), "NAME", "float")
    except MemoryError as e:
        res.update(status="out_of_memory", message=str(e))
    except Exception as e:  # noqa: BLE001 - reported to the host as the run's status
        res.update(status="error", message="%s: %s" % (type(e).__name__, e))
    print(json.dumps(res))
    return res
