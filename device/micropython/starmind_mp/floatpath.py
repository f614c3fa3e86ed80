"""The float path: a float32-scheme model run with MicroPython floats, for comparison with the int8 engine.

Same interface as engine.IntEngine (forward_token, prefill, seed, next_token,
generate); logits are floats in nats. Greedy decoding only compares with the
float model (PyTorch) within the golden vectors' tolerance; sampling uses the
integer sampler on logits scaled to the int8 scheme's fixed point (2^-10 nats).
On a Pico every float operation is boxed and emulated in software (no FPU),
which is why the study's device runtime is the integer one.
"""
import math
from array import array

LOGIT_FRAC = 10  # the fixed point the sampler sees float logits in


def _gelu(v):
    if hasattr(math, "erf"):
        return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    return 0.5 * v * (1.0 + math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))


def _silu(v):
    return v / (1.0 + math.exp(-v)) if v > -80.0 else 0.0


class FloatEngine:
    def __init__(self, model, context=None):
        if model.scheme != "float32":
            raise ValueError("FloatEngine runs float32 models; this file's scheme is %s" % model.scheme)
        self.m = model
        t = self.t = {}
        for name in list(model.tensors):
            t[name] = array("f", model.tensors.pop(name))
        model.tensors = t
        d, f, V = model.dim, model.ffn_hidden, model.vocab_size
        T = self.context = min(context or model.max_seq_len, model.max_seq_len)
        z = lambda n: array("f", bytes(4 * n))  # noqa: E731
        self.x, self.a, self.q, self.key, self.v, self.o = z(d), z(d), z(d), z(d), z(d), z(d)
        self.h, self.u, self.scores, self.logits = z(f), z(f), z(T), z(V)
        self.kc = [z(T * d) for _ in range(model.n_layers)]
        self.vc = [z(T * d) for _ in range(model.n_layers)]
        self.pos = 0
        from . import kernels_py
        self._kpy = kernels_py
        self._ilogits = array("i", bytes(4 * V))
        self._weights, self._mask, self.rng = array("i", bytes(4 * V)), array("b", bytes(V)), array("i", [0])
        self._lut = array("H", [int(round(32768 * math.exp(-i / 64))) for i in range(1024)])

    def close(self):
        pass

    def _norm(self, out, x, w, n):
        ss = 0.0
        for i in range(n):
            ss += x[i] * x[i]
        r = 1.0 / math.sqrt(ss / n + 1e-5)
        for i in range(n):
            out[i] = x[i] * r * w[i]

    def _matvec(self, out, w, a, rows, cols, add=False):
        base = 0
        for r in range(rows):
            acc = 0.0
            for c in range(cols):
                acc += w[base + c] * a[c]
            base += cols
            out[r] = out[r] + acc if add else acc

    def _rope(self, q, pos):
        m = self.m
        half = m.head_dim // 2
        cos, sin = self.t["rope.cos"], self.t["rope.sin"]
        for h0 in range(0, m.dim, m.head_dim):
            for i in range(half):
                c, s = cos[pos * half + i], sin[pos * half + i]
                j = h0 + 2 * i
                q0, q1 = q[j], q[j + 1]
                q[j], q[j + 1] = q0 * c - q1 * s, q0 * s + q1 * c

    def _attend(self, i, pos):
        m = self.m
        d, hd = m.dim, m.head_dim
        scale = 1.0 / math.sqrt(hd)
        kc, vc, sc = self.kc[i], self.vc[i], self.scores
        for h0 in range(0, d, hd):
            top = -1e30
            for t in range(pos + 1):
                acc = 0.0
                for j in range(hd):
                    acc += self.q[h0 + j] * kc[t * d + h0 + j]
                sc[t] = acc * scale
                top = max(top, sc[t])
            total = 0.0
            for t in range(pos + 1):
                sc[t] = math.exp(sc[t] - top)
                total += sc[t]
            for j in range(hd):
                acc = 0.0
                for t in range(pos + 1):
                    acc += sc[t] * vc[t * d + h0 + j]
                self.o[h0 + j] = acc / total

    def forward_token(self, token, pos):
        m, t = self.m, self.t
        d, f = m.dim, m.ffn_hidden
        if pos != self.pos or pos >= self.context or not 0 <= token < m.vocab_size:
            raise ValueError("bad step: token %d at position %d" % (token, pos))
        x = self.x
        for j in range(d):
            x[j] = t["tok_emb"][token * d + j] + (t["pos_emb"][pos * d + j] if m.pos == "learned" else 0.0)
        act = _gelu if m.activation == "gelu" else _silu
        for i in range(m.n_layers):
            p = "layers.%d." % i
            self._norm(self.a, x, t[p + "attn_norm"], d)
            self._matvec(self.q, t[p + "wq"], self.a, d, d)
            self._matvec(self.key, t[p + "wk"], self.a, d, d)
            self._matvec(self.v, t[p + "wv"], self.a, d, d)
            if m.pos == "rope":
                self._rope(self.q, pos)
                self._rope(self.key, pos)
            for j in range(d):
                self.kc[i][pos * d + j] = self.key[j]
                self.vc[i][pos * d + j] = self.v[j]
            self._attend(i, pos)
            self._matvec(x, t[p + "wo"], self.o, d, d, add=True)
            self._norm(self.a, x, t[p + "ffn_norm"], d)
            self._matvec(self.h, t[p + "w1"], self.a, f, d)
            if m.activation == "swiglu":
                self._matvec(self.u, t[p + "w3"], self.a, f, d)
                for j in range(f):
                    self.h[j] = _silu(self.h[j]) * self.u[j]
            else:
                for j in range(f):
                    self.h[j] = act(self.h[j])
            self._matvec(x, t[p + "w2"], self.h, d, f, add=True)
        self._norm(self.a, x, t["final_norm"], d)
        self._matvec(self.logits, t["tok_emb"] if m.tied else t["head"], self.a, m.vocab_size, d)
        self.pos = pos + 1
        return self.logits

    def prefill(self, prompt):
        self.pos = 0
        for p in range(len(prompt)):
            self.forward_token(prompt[p], p)
        return self.logits

    def seed(self, seed):
        s = (seed & 0xFFFFFFFF) or 0x9E3779B9
        self.rng[0] = s - (1 << 32) if s >= (1 << 31) else s

    def next_token(self, temperature_q8=0, top_k=0):
        kp, V = self._kpy, self.m.vocab_size
        if temperature_q8 <= 0:
            best, bi = self.logits[0], 0
            for i in range(1, V):
                if self.logits[i] > best:
                    best, bi = self.logits[i], i
            return bi
        for i in range(V):
            self._ilogits[i] = int(round(self.logits[i] * (1 << LOGIT_FRAC)))
        tq = min(max(temperature_q8, 16), 4096)
        return kp.sample(self._ilogits, V, LOGIT_FRAC, (1 << 20) // tq, top_k, self.rng, self._lut,
                         self._weights, self._mask)

    def generate(self, prompt, n_new, temperature_q8=0, top_k=0, seed=0, on_token=None):
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
