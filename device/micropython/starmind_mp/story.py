"""Stories past the trained context: the stop rule and the window restart (device/FORMAT.md 6.7).

    from starmind_mp import smd, engine, story, tokenizer
    model = smd.load("/models/story.smd")
    eng = engine.make_engine(model)
    ids = story.generate(eng, tokenizer.encode(model, "Once upon a time"), 400, seed=7,
                         on_token=lambda i, t: print(model.token_bytes(t).decode(), end=""))

The engine's own ``generate`` stops at its context; this one keeps going: when the KV cache
holds T = max_seq_len positions and another token comes, the last K = T // 2 tokens are fed
again from position 0 into an empty cache, and the token goes to position K. Generation ends
after EOS when the file's stop rule says so.
"""


class Window:
    """Feeds tokens into an engine through the window restart; ``restarts`` counts them."""

    def __init__(self, eng):
        if eng.context != eng.m.max_seq_len:
            raise ValueError("the window needs the model's whole context (%d positions), the engine holds %d"
                             % (eng.m.max_seq_len, eng.context))
        self.eng = eng
        self.T = eng.m.max_seq_len
        self.hist = []
        self.restarts = 0
        eng.pos = 0

    def feed(self, tok):
        """Feed one token; afterwards ``eng.logits`` are the next token's."""
        eng, T = self.eng, self.T
        if eng.pos == T:
            keep = self.hist[T - T // 2:]
            self.hist = keep
            self.restarts += 1
            eng.pos = 0
            for p in range(len(keep)):
                eng.forward_token(keep[p], p)
        eng.forward_token(tok, eng.pos)
        self.hist.append(tok)


def generate(eng, prompt, n_new, temperature_q8=0, top_k=0, seed=0, on_token=None, stop_at_eos=None):
    """Prefill ``prompt``, then up to ``n_new`` tokens (the same ids as the reference engine's
    ``generate(..., window=True)``); ``on_token(i, id)`` as each comes."""
    if not prompt:
        raise ValueError("generate needs a prompt of at least one token")
    m = eng.m
    stop = m.stop_at_eos if stop_at_eos is None else stop_at_eos
    w = Window(eng)
    eng.seed(seed)
    for t in prompt:
        w.feed(t)
    out = []
    for j in range(n_new):
        tok = eng.next_token(temperature_q8, top_k)
        out.append(tok)
        if on_token is not None:
            on_token(j, tok)
        if stop and tok == m.eos_id:
            break
        if j + 1 < n_new:
            w.feed(tok)
    return out
