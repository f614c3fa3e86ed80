"""The int8 integer-only engine (device/FORMAT.md), with viper kernels where the port has them.

    eng = make_engine(smd.load(path))            # kernels="auto": viper, else pure Python
    logits = eng.prefill([1, 2, 3])              # int32 logits of the next token
    ids = eng.generate([1, 2, 3], 20, temperature_q8=0, top_k=0, seed=0, on_token=None)

All buffers (activations, int8 KV cache, logits, sampler scratch) are allocated
in the constructor; a decode step only calls kernels on them, so on the viper
path generating a token allocates nothing on the heap.
"""
import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

RES_LEARNED = const(1)
TEMP_Q8_MIN = const(16)
TEMP_Q8_MAX = const(4096)
XORSHIFT_DEFAULT_STATE = 0x9E3779B9


def load_kernels(kind="auto"):
    """The kernel module: "viper" (native code), "python", or "auto" (viper where it compiles)."""
    if kind in ("auto", "viper"):
        try:
            from . import kernels_viper
            return kernels_viper
        except (ImportError, SyntaxError, ValueError, NotImplementedError) as e:
            if kind == "viper":
                raise ImportError("viper kernels unavailable on this port: %s" % e)
    if kind not in ("auto", "viper", "python"):
        raise ValueError("kernels must be 'auto', 'viper' or 'python', got %r" % (kind,))
    from . import kernels_py
    return kernels_py


def _bits(dim):
    L = 0
    while (1 << L) < dim:
        L += 1
    return L, 15 - (L + 1) // 2


class IntEngine:
    def __init__(self, model, kernels="auto", context=None):
        """``context``: positions to hold in the KV cache (default and maximum: the model's max_seq_len)."""
        if model.scheme != "int8":
            raise ValueError("IntEngine runs int8 models; this file's scheme is %s" % model.scheme)
        k = self.k = load_kernels(kernels)
        self.m = model
        d, f, V = model.dim, model.ffn_hidden, model.vocab_size
        T = self.context = min(context or model.max_seq_len, model.max_seq_len)
        self.L, self.NF = _bits(d)
        consts = [struct.unpack("<8i", model.tensors["layers.%d.consts" % i]) for i in range(model.n_layers)]
        t = {}
        for name in list(model.tensors):
            t[name] = k.tensor(model.dtypes[name], model.tensors.pop(name))  # one tensor copied at a time
        model.tensors = t  # the backend's buffers replace the raw ones (same memory on the viper path)
        self.t = t
        self.layers = []
        for i in range(model.n_layers):
            p = "layers.%d." % i
            names = ("attn_norm", "wq", "wq.rq", "wk", "wk.rq", "wv", "wv.rq", "wo", "wo.rq", "ffn_norm",
                     "w1", "w1.rq", "act_lut", "w2", "w2.rq")
            layer = [t[p + n] for n in names]
            layer.append(t.get(p + "w3"))
            layer.append(t.get(p + "w3.rq"))
            layer.append(consts[i])
            self.layers.append(layer)
        self.head_w = t["tok_emb"] if model.tied else t["head"]
        for name in t:  # int8 matrices, in the layout the kernels want (viper: offset binary, in place)
            if model.dtypes[name] == 1 and name != "exp_lut" and not name.endswith("act_lut"):
                k.prepare(t[name], len(model.tensors[name]))
        buf = k.buffer
        self.x = buf("i", d)
        self.a, self.q, self.kk, self.v, self.o = buf("a", d), buf("a", d), buf("a", d), buf("a", d), buf("a", d)
        self.h, self.g, self.u = buf("a", f), buf("a", f), buf("a", f)
        self.scores = buf("i", T)
        self.logits = buf("i", V)
        self.weights = buf("i", V)
        self.mask = buf("b", V)
        self.rng = buf("i", 1)
        self.kc = [buf("b", T * d) for _ in range(model.n_layers)]
        self.vc = [buf("b", T * d) for _ in range(model.n_layers)]
        self.pos = 0

    def reset(self):
        self.pos = 0

    def forward_token(self, token, pos):
        """One step: fills self.logits (int32) for the token after ``token`` at position ``pos``."""
        m, k, t = self.m, self.k, self.t
        d, hd = m.dim, m.head_dim
        if pos != self.pos or pos >= self.context or not 0 <= token < m.vocab_size:
            raise ValueError("bad step: token %d at position %d (next position %d, context %d)"
                             % (token, pos, self.pos, self.context))
        x, a, q, kk, v, o = self.x, self.a, self.q, self.kk, self.v, self.o
        learned = m.pos == "learned"
        k.embed(x, t["tok_emb"], t["tok_emb.rq"], token, d, 0, 0 if learned else 1)
        if learned:
            k.embed(x, t["pos_emb"], t["pos_emb.rq"], pos, d, 1, 1)
        rope = m.pos == "rope"
        f, eps, L, NF = m.ffn_hidden, m.eps_q, self.L, self.NF
        for i in range(m.n_layers):
            (attn_norm, wq, wq_rq, wk, wk_rq, wv, wv_rq, wo, wo_rq, ffn_norm, w1, w1_rq, lut, w2, w2_rq,
             w3, w3_rq, c) = self.layers[i]
            k.rmsnorm(a, x, attn_norm, c[0], eps, d, L, NF)
            k.linear_act(q, wq, a, wq_rq, d, d)
            k.linear_act(kk, wk, a, wk_rq, d, d)
            k.linear_act(v, wv, a, wv_rq, d, d)
            if rope:
                k.rope(q, t["rope.cos"], t["rope.sin"], pos, hd // 2, d)
                k.rope(kk, t["rope.cos"], t["rope.sin"], pos, hd // 2, d)
            k.store_kv(self.kc[i], kk, pos, d)
            k.store_kv(self.vc[i], v, pos, d)
            k.attend(o, q, self.kc[i], self.vc[i], self.scores, t["exp_lut"], pos + 1, d, hd, c[2], c[3])
            k.linear_res(x, wo, o, wo_rq, d, d)
            k.rmsnorm(a, x, ffn_norm, c[1], eps, d, L, NF)
            k.linear_act(self.h, w1, a, w1_rq, f, d)
            k.act_lut(self.g, self.h, lut, f)
            if w3 is not None:
                k.linear_act(self.u, w3, a, w3_rq, f, d)
                k.mul_requant(self.g, self.u, c[4], c[5], f)
            k.linear_res(x, w2, self.g, w2_rq, d, f)
        k.rmsnorm(a, x, t["final_norm"], m.final_norm_shift, eps, d, L, NF)
        k.linear_logits(self.logits, self.head_w, a, t["head.rq"], m.vocab_size, d)
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
        out = []
        for j in range(n_new):
            tok = self.next_token(temperature_q8, top_k)
            out.append(tok)
            if on_token is not None:
                on_token(j, tok)
            if j + 1 < n_new:
                self.forward_token(tok, self.pos)
        return out


def make_engine(model, kernels="auto", context=None):
    """The engine for the model's scheme: IntEngine for int8, FloatEngine (floatpath) for float32."""
    if model.scheme == "float32":
        from .floatpath import FloatEngine
        return FloatEngine(model, context)
    return IntEngine(model, kernels, context)
