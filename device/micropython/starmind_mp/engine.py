"""The int8 integer-only engine (device/FORMAT.md), with native kernels where the port has them.

    eng = make_engine(smd.load(path))            # kernels="auto": asm, else viper, else pure Python
    eng = make_engine(smd.load(path, "ram", reserve()))    # the engine's buffers placed before the weights
    eng.k.NAME                                   # the kernels chosen: "asm", "viper" or "python"
    logits = eng.prefill([1, 2, 3])              # int32 logits of the next token
    ids = eng.generate([1, 2, 3], 20, temperature_q8=0, top_k=0, seed=0, on_token=None)

All buffers (activations, int8 KV cache, logits, sampler scratch) are allocated
in the constructor; a decode step only calls kernels on them, so on the asm and
viper paths generating a token allocates nothing on the heap (per-token code
never assigns tuples of more than 3 names: MicroPython builds those on the heap).
With the asm kernels and weights in RAM, each layer is ~9 native calls: rmsnorm,
one mv program for q/k/v, rope, attn (KV store + softmax attention), mv wo,
rmsnorm, mv w1 (+w3), the activation table, mv w2.

Weights live in RAM (one bytearray per tensor), or, for models larger than the
heap, in the file ("flash" mode, ``smd.load(path, weights="flash")``): every
token then streams each matrix through one small scratch buffer in blocks of
rows (seek + readinto into preallocated views), trading speed for RAM.
"""
import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

TEMP_Q8_MIN = const(16)
TEMP_Q8_MAX = const(4096)
XORSHIFT_DEFAULT_STATE = 0x9E3779B9


KERNEL_KINDS = ("auto", "asm", "viper", "python")


def load_kernels(kind="auto"):
    """The kernel module: "asm" (Thumb machine code for the dot products, viper for the rest),
    "viper" (native code), "python", or "auto": the first of asm, viper, python that imports on this port
    (each native module compiles only where the port has its emitter, and kernels_asm checks its own
    arithmetic at import)."""
    if kind not in KERNEL_KINDS:
        raise ValueError("kernels must be 'auto', 'asm', 'viper' or 'python', got %r" % (kind,))
    errors = []
    for name in ("asm", "viper"):
        if kind not in ("auto", name):
            continue
        try:
            if name == "asm":
                from . import kernels_asm as mod
            else:
                from . import kernels_viper as mod
            return mod
        except (ImportError, SyntaxError, ValueError, NotImplementedError, AttributeError, MemoryError) as e:
            if kind == name:
                raise ImportError("%s kernels unavailable on this port: %s" % (name, e))
            errors.append(e)
    from . import kernels_py
    return kernels_py


def _bits(dim):
    L = 0
    while (1 << L) < dim:
        L += 1
    return L, 15 - (L + 1) // 2


SCRATCH_BYTES = const(4096)   # flash mode: matrix rows read per block


class IntEngine:
    def __init__(self, model, kernels="auto", context=None):
        """``context``: positions to hold in the KV cache (default and maximum: the model's max_seq_len)."""
        if model.scheme != "int8":
            raise ValueError("IntEngine runs int8 models; this file's scheme is %s" % model.scheme)
        k = self.k = load_kernels(kernels)
        self.m = model
        self.lin = self._linear  # bound once: reading self._linear per token allocates a bound method
        d = model.dim
        T = self.context = min(context or model.max_seq_len, model.max_seq_len)
        self.L, self.NF = _bits(d)
        consts = [struct.unpack("<8i", bytes(model.tensors["layers.%d.consts" % i])) for i in range(model.n_layers)]
        t = model.tensors
        if k.NAME == "python":   # typed arrays: one tensor copied at a time (native kernels take the buffers)
            t = {}
            for name in list(model.tensors):
                t[name] = k.tensor(model.dtypes[name], model.tensors.pop(name))
            model.tensors = t
        self.t = t
        layout = getattr(k, "LAYOUT", k.NAME)   # asm and viper share one layout
        if getattr(model, "prepared_for", None) not in (None, layout):
            raise ValueError("this model was prepared for %s kernels; load it again" % model.prepared_for)
        if getattr(model, "prepared_for", None) is None:
            for name in t:  # int8 matrices, in the layout the kernels want (viper: offset binary, in place)
                if model.dtypes[name] == 1 and not name.endswith("act_lut"):
                    k.prepare(t[name], len(t[name]))
            model.prepared_for = layout
        try:
            import gc
            gc.collect()  # the loader's garbage freed before the engine's large buffers are placed
        except ImportError:
            pass
        # every buffer at once: usually placed by smd.load before the tensors (reserve)
        bufs = getattr(model, "reserved", None)
        if bufs is None or bufs[0] != (T, k.NAME == "python"):
            bufs = engine_buffers(k, model, T)
        model.reserved = None
        (_, self.kc, self.vc, self.x, self.a, self.q, self.kk, self.v, self.o, self.h, self.u, self.scores,
         self.logits, self.weights, self.mask, self.rng) = bufs
        self.g = self.h
        self.pos = 0
        self.flash = getattr(model, "weights", "ram") == "flash"
        if self.flash:
            self._open_flash()
        self.layers = []
        for i in range(model.n_layers):
            p = "layers.%d." % i
            layer = [t[p + "attn_norm"], t[p + "ffn_norm"], t[p + "act_lut"], consts[i]]
            for w in ("wq", "wk", "wv", "wo", "w1", "w3", "w2"):
                layer.append(self._matrix(p + w) if (p + w + ".rq") in t else None)
            self.layers.append(layer)
        self.head = self._matrix("tok_emb" if model.tied else "head", t["head.rq"])
        self.emb = [self._row_source("tok_emb")]
        if model.pos == "learned":
            self.emb.append(self._row_source("pos_emb"))
        self.fast = None
        if hasattr(k, "mv") and not self.flash:
            self._build_programs()

    def _build_programs(self):
        """asm kernels, weights in RAM: each layer's matrix products as mv programs (buffer addresses
        resolved once), its attention as an attn parameter block; one kernel call per step."""
        k, m, t = self.k, self.m, self.t
        d, f, hd = m.dim, m.ffn_hidden, m.head_dim
        act, res = k.MODE_ACT, k.MODE_RES
        layers = []
        for i in range(m.n_layers):
            attn_norm, ffn_norm, lut, c, wq, wk, wv, wo, w1, w3, w2 = self.layers[i]
            qkv = k.program([(wq[0], wq[1], self.q, d, d, self.a, act), (wk[0], wk[1], self.kk, d, d, self.a, act),
                             (wv[0], wv[1], self.v, d, d, self.a, act)])
            segs = [(w1[0], w1[1], self.h, f, d, self.a, act)]
            if w3 is not None:
                segs.append((w3[0], w3[1], self.u, f, d, self.a, act))
            up = k.program(segs)
            att = k.attn_params(self.q, self.kc[i], self.vc[i], self.scores, t["exp_lut"], self.o, d, hd,
                                c[2], c[3], self.kk, self.v)
            layers.append((attn_norm, ffn_norm, lut, c[0], c[1], c[4], c[5], w3 is not None, qkv, att,
                           k.program([(wo[0], wo[1], self.x, d, d, self.o, res)]), up,
                           k.program([(w2[0], w2[1], self.x, d, f, self.g, res)])))
        h = self.head
        self.fast = (layers, k.program([(h[0], h[1], self.logits, h[2], h[3], self.a, k.MODE_LOGITS)]))

    # -- weights in RAM, or streamed from the file in blocks of rows (flash mode) --
    def _open_flash(self):
        m = self.m
        widest = max(m.shapes[n][1] for n in m.offsets)
        self.scratch = self.k.buffer("b", max(SCRATCH_BYTES, widest))
        self.row = self.k.buffer("b", m.dim)
        self.row_view = memoryview(self.row)[:m.dim]
        self.file = open(m.path, "rb")

    def close(self):
        if self.flash:
            self.file.close()

    def _matrix(self, name, rq=None):
        """(weights, rq, rows, cols, None) in RAM; in flash (file offset, rq, rows, cols, blocking), where
        blocking = (rows per block, read view of a full block, read view of the last block)."""
        m = self.m
        rq = rq if rq is not None else self.t[name + ".rq"]
        rows, cols = m.shapes[name]
        if name not in m.offsets:
            return (self.t[name], rq, rows, cols, None)
        per = max(1, len(self.scratch) // cols)
        last = rows - (rows - 1) // per * per
        mv = memoryview(self.scratch)
        return (m.offsets[name], rq, rows, cols, (per, mv[:per * cols], mv[:last * cols]))

    def _row_source(self, name):
        if name in self.m.offsets:
            return (None, self.m.offsets[name], self.t[name + ".rq"])
        return (self.t[name], 0, self.t[name + ".rq"])

    def _linear(self, kern, out, mat, a):
        w, rq, rows, cols, blocking = mat
        if blocking is None:
            kern(out, w, a, rq, rows, cols, 0)
            return
        f, s, prep = self.file, self.scratch, self.k.prepare
        per, full, last = blocking
        r0 = 0
        while r0 < rows:  # seek, read a block of rows, flip it (viper), multiply: no allocation
            r = rows - r0 if rows - r0 < per else per
            f.seek(w + r0 * cols)
            f.readinto(full if r == per else last)
            prep(s, r * cols)
            kern(out, s, a, rq, r, cols, r0)
            r0 += per

    def _embed(self, src, row, accumulate, clamp):
        emb, off, rq = src
        d = self.m.dim
        if emb is None:  # flash: read the one row
            self.file.seek(off + row * d)
            self.file.readinto(self.row_view)
            self.k.prepare(self.row, d)
            self.k.embed(self.x, self.row, 0, rq, row, d, accumulate, clamp)
        else:
            self.k.embed(self.x, emb, row, rq, row, d, accumulate, clamp)

    def reset(self):
        self.pos = 0

    def forward_token(self, token, pos):
        """One step: fills self.logits (int32) for the token after ``token`` at position ``pos``."""
        m, k, t = self.m, self.k, self.t
        d, hd = m.dim, m.head_dim
        if pos != self.pos or pos >= self.context or not 0 <= token < m.vocab_size:
            raise ValueError("bad step: token %d at position %d (next position %d, context %d)"
                             % (token, pos, self.pos, self.context))
        if self.fast is not None:
            return self._forward_fast(token, pos)
        # (no tuple assignment of more than 3 names in per-token code: MicroPython builds a heap
        # tuple for those; 2 and 3 are compiled to stack rotations)
        x, a, q = self.x, self.a, self.q
        kk, v, o = self.kk, self.v, self.o
        learned = m.pos == "learned"
        self._embed(self.emb[0], token, 0, 0 if learned else 1)
        if learned:
            self._embed(self.emb[1], pos, 1, 1)
        rope = m.pos == "rope"
        lin = self.lin
        f, eps = m.ffn_hidden, m.eps_q
        L, NF = self.L, self.NF
        for i in range(m.n_layers):
            attn_norm, ffn_norm, lut, c, wq, wk, wv, wo, w1, w3, w2 = self.layers[i]
            k.rmsnorm(a, x, attn_norm, c[0], eps, d, L, NF)
            lin(k.linear_act, q, wq, a)
            lin(k.linear_act, kk, wk, a)
            lin(k.linear_act, v, wv, a)
            if rope:
                k.rope(q, t["rope.cos"], t["rope.sin"], pos, hd // 2, d)
                k.rope(kk, t["rope.cos"], t["rope.sin"], pos, hd // 2, d)
            k.store_kv(self.kc[i], kk, pos, d)
            k.store_kv(self.vc[i], v, pos, d)
            k.attend(o, q, self.kc[i], self.vc[i], self.scores, t["exp_lut"], pos + 1, d, hd, c[2], c[3])
            lin(k.linear_res, x, wo, o)
            k.rmsnorm(a, x, ffn_norm, c[1], eps, d, L, NF)
            lin(k.linear_act, self.h, w1, a)
            k.act_lut(self.g, self.h, lut, f)
            if w3 is not None:
                lin(k.linear_act, self.u, w3, a)
                k.mul_requant(self.g, self.u, c[4], c[5], f)
            lin(k.linear_res, x, w2, self.g)
        k.rmsnorm(a, x, t["final_norm"], m.final_norm_shift, eps, d, L, NF)
        lin(k.linear_logits, self.logits, self.head, a)
        self.pos = pos + 1
        return self.logits

    def _forward_fast(self, token, pos):
        """forward_token with the asm kernels (weights in RAM): ~9 native calls a layer, no allocation."""
        m, k, t = self.m, self.k, self.t
        d, eps = m.dim, m.eps_q
        L, NF = self.L, self.NF
        x, a, h = self.x, self.a, self.h
        g, u = self.g, self.u
        rmsnorm, mv = k.rmsnorm, k.mv
        emb = self.emb
        if m.pos == "learned":
            k.embed(x, emb[0][0], token, emb[0][2], token, d, 0, 0)
            k.embed(x, emb[1][0], pos, emb[1][2], pos, d, 1, 1)
        else:
            k.embed(x, emb[0][0], token, emb[0][2], token, d, 0, 1)
        rope = m.pos == "rope"
        if rope:
            cos, sin, half = t["rope.cos"], t["rope.sin"], m.head_dim // 2
        f = m.ffn_hidden
        layers, head = self.fast
        for layer in layers:
            attn_norm, ffn_norm, lut, s0, s1, gm, gs, glu, qkv, att, wo, up, w2 = layer
            rmsnorm(a, x, attn_norm, s0, eps, d, L, NF)
            mv(qkv)
            if rope:
                k.rope(self.q, cos, sin, pos, half, d)
                k.rope(self.kk, cos, sin, pos, half, d)
            k.attn(att, pos + 1)
            mv(wo)
            rmsnorm(a, x, ffn_norm, s1, eps, d, L, NF)
            mv(up)
            k.act_lut(g, h, lut, f)
            if glu:
                k.mul_requant(g, u, gm, gs, f)
            mv(w2)
        rmsnorm(a, x, t["final_norm"], m.final_norm_shift, eps, d, L, NF)
        mv(head)
        self.pos = pos + 1
        return self.logits

    def prefill(self, prompt):
        """Run the prompt from position 0; returns the logits after its last token."""
        self.pos = 0
        for p in range(len(prompt)):
            self.forward_token(prompt[p], p)
        return self.logits

    def seed(self, seed):
        s = (seed & 0xFFFFFFFF) or XORSHIFT_DEFAULT_STATE
        struct.pack_into("<I", self.rng, 0, s)

    def next_token(self, temperature_q8=0, top_k=0):
        """Choose from self.logits: greedy (ties to the lowest id) or the integer sampler."""
        m, k = self.m, self.k
        if temperature_q8 <= 0:
            return k.argmax(self.logits, m.vocab_size)
        tq = min(max(temperature_q8, TEMP_Q8_MIN), TEMP_Q8_MAX)
        return k.sample(self.logits, m.vocab_size, m.logit_frac, (1 << 20) // tq, top_k, self.rng,
                        self.t["exp_lut"], self.weights, self.mask)

    def generate(self, prompt, n_new, temperature_q8=0, top_k=0, seed=0, on_token=None):
        """The reference engine's generate(): prefill, then n_new tokens; on_token(i, id) as each comes."""
        if not prompt:
            raise ValueError("generate needs a prompt of at least one token")
        if len(prompt) + n_new - 1 > self.context:
            raise ValueError("prompt (%d) + n_new (%d) - 1 exceeds the context of %d positions"
                             % (len(prompt), n_new, self.context))
        self.seed(seed)
        self.prefill(prompt)
        out = [0] * n_new  # allocated before the loop: generating a token allocates nothing
        for j in range(n_new):
            tok = self.next_token(temperature_q8, top_k)
            out[j] = tok
            if on_token is not None:
                on_token(j, tok)
            if j + 1 < n_new:
                self.forward_token(tok, self.pos)
        return out


def engine_buffers(k, model, T):
    """Every buffer an IntEngine uses, the KV cache first (the largest): one per role, shared where
    lifetimes allow. The FFN gate is computed in place in h (g is h); on raw-buffer layouts
    (viper/asm) the sampler's weights reuse h too."""
    d, f, V, buf = model.dim, model.ffn_hidden, model.vocab_size, k.buffer
    kc = [buf("b", T * d) for _ in range(model.n_layers)]
    vc = [buf("b", T * d) for _ in range(model.n_layers)]
    shared = getattr(k, "LAYOUT", k.NAME) == "viper"
    x, a, q, kk, v, o = buf("i", d), buf("a", d), buf("a", d), buf("a", d), buf("a", d), buf("a", d)
    h = buf("a", max(f, V) if shared else f)
    u = buf("a", f) if model.activation == "swiglu" else None
    return ((T, k.NAME == "python"), kc, vc, x, a, q, kk, v, o, h, u, buf("i", T), buf("i", V),
            h if shared else buf("i", V), buf("b", V), buf("i", 1))


def reserve(kernels="auto", context=None):
    """``smd.load(path, weights, engine.reserve(kernels, context))``: an int8 model's engine buffers
    (KV cache, activations, logits), allocated before its tensors while the heap is one free block.
    Placed after them, in the holes the loader leaves, a model that fits in total can still fail to
    find a free block as large as one layer's cache. IntEngine(model, kernels, context) takes them."""
    def hook(model):
        if model.scheme != "int8":
            return None
        return engine_buffers(load_kernels(kernels), model, min(context or model.max_seq_len, model.max_seq_len))
    return hook


def make_engine(model, kernels="auto", context=None):
    """The engine for the model's scheme: IntEngine for int8, FloatEngine (floatpath) for float32."""
    if model.scheme == "float32":
        from .floatpath import FloatEngine
        return FloatEngine(model, context)
    return IntEngine(model, kernels, context)
