"""An independent scalar implementation of device/FORMAT.md in plain Python ints (the test oracle).

Written from the specification only (no NumPy, no import of the reference
engine), one loop per formula, checking every intermediate against the signed
32-bit range as a C or viper runtime would have to. The tests run it against
the golden vectors: if FORMAT.md and the reference engine ever disagree, this
is what notices.
"""
from __future__ import annotations

import struct
import zlib

I32 = 1 << 31


def c32(v: int) -> int:
    if not -I32 <= v < I32:
        raise OverflowError(f"intermediate {v} does not fit int32")
    return v


def rshr(v, s):
    return c32(v) if s == 0 else c32(v + (1 << (s - 1))) >> s


def requant(acc, m, s):
    c32(acc)
    return rshr(c32(c32((acc >> 15) * m) + (c32((acc & 32767) * m) >> 15)), s)


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def isqrt(n):
    res, bit = 0, 1 << 30
    while bit > n:
        bit >>= 2
    while bit:
        if n >= res + bit:
            n -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    return res


DT = {1: ("b", 1), 2: ("h", 2), 3: ("i", 4), 4: ("f", 4), 5: ("H", 2)}


class SpecModel:
    def __init__(self, data: bytes):
        magic, hcrc, pcrc, ver, hs, ps, _ = struct.unpack_from("<8sIIIIII", data, 0)
        assert magic == b"STARMIND" and ver in (1, 2) and len(data) == 32 + hs + ps
        fixed = 64 if ver == 1 else 96      # version 2: 8 more words (special tokens, flags, encoder counts)
        assert zlib.crc32(data[16:32 + hs]) == hcrc and zlib.crc32(data[32 + hs:]) == pcrc
        w = struct.unpack_from("<16I", data, 32)
        (self.scheme, self.V, self.D, self.NL, self.NH, self.F, self.act, self.pos, self.tied, self.T,
         nt, vb, self.lf, self.eps_q, self.fns, _) = w
        self.hd = self.D // self.NH
        self.t = {}
        base = 32 + hs
        for k in range(nt):
            name, dt, nd, s0, s1, off, nb = struct.unpack_from("<24sIIIIII", data, 32 + fixed + 48 * k)
            code, size = DT[dt]
            vals = list(struct.unpack_from(f"<{nb // size}{code}", data, base + off))
            if nd == 2:
                vals = [vals[r * s1:(r + 1) * s1] for r in range(s0)]
            self.t[name.rstrip(b"\0").decode()] = vals

    # -- kernels --
    def rmsnorm(self, x, G, gs):
        D = len(x)
        L = (D - 1).bit_length()
        NF = 15 - (L + 1) // 2
        S = self.eps_q
        for v in x:
            S = c32(S + (c32(v * v) >> L))
        e = 0
        while S < (1 << 28):
            S <<= 2
            e += 1
        if S >= (1 << 30):
            S >>= 2
            e -= 1
        inv = (1 << 29) // isqrt(S)
        out = []
        for c in range(D):
            n = rshr(c32(x[c] * inv), 29 - e - NF)
            out.append(clamp(rshr(c32(n * G[c]), gs), -127, 127))
        return out

    @staticmethod
    def matvec(W, a):
        out = []
        for row in W:
            acc = 0
            for wv, av in zip(row, a):
                acc = c32(acc + wv * av)
            out.append(acc)
        return out

    def lin_act(self, name, a):
        rq = self.t[name + ".rq"]
        return [clamp(requant(acc, rq[r][0], rq[r][1]), -127, 127) for r, acc in enumerate(self.matvec(self.t[name], a))]

    def lin_res(self, x, name, a):
        rq = self.t[name + ".rq"]
        return [clamp(c32(x[r] + requant(acc, rq[r][0], rq[r][1])), -32767, 32767)
                for r, acc in enumerate(self.matvec(self.t[name], a))]

    def new_cache(self):
        return [[] for _ in range(self.NL)], [[] for _ in range(self.NL)]

    def step(self, cache, tok, p):
        t, D, hd = self.t, self.D, self.hd
        Kc, Vc = cache
        rq = t["tok_emb.rq"][tok]
        x = [rshr(c32(e * rq[0]), rq[1]) for e in t["tok_emb"][tok]]
        if self.pos == 1:
            prq = t["pos_emb.rq"][p]
            x = [x[c] + rshr(c32(e * prq[0]), prq[1]) for c, e in enumerate(t["pos_emb"][p])]
        x = [clamp(v, -32767, 32767) for v in x]
        lut = t["exp_lut"]
        for i in range(self.NL):
            pre = f"layers.{i}."
            cst = t[pre + "consts"]
            a = self.rmsnorm(x, t[pre + "attn_norm"], cst[0])
            q, k, v = (self.lin_act(pre + w, a) for w in ("wq", "wk", "wv"))
            if self.pos == 2:
                for vec in (q, k):
                    for h in range(self.NH):
                        for j in range(hd // 2):
                            C, Sn = t["rope.cos"][p][j], t["rope.sin"][p][j]
                            u0, u1 = vec[h * hd + 2 * j], vec[h * hd + 2 * j + 1]
                            vec[h * hd + 2 * j] = clamp(rshr(c32(u0 * C - u1 * Sn), 14), -127, 127)
                            vec[h * hd + 2 * j + 1] = clamp(rshr(c32(u0 * Sn + u1 * C), 14), -127, 127)
            Kc[i].append(k)
            Vc[i].append(v)
            o = [0] * D
            for h in range(self.NH):
                sl = range(h * hd, h * hd + hd)
                sc = [c32(sum(q[d] * ks[d] for d in sl)) for ks in Kc[i]]
                top = max(sc)
                w = []
                for s in sc:
                    idx = requant(top - s, cst[2], cst[3])
                    w.append(lut[idx] if idx < 1024 else 0)
                R = (1 << 30) // c32(sum(w))
                pr = [c32(ws * R) >> 15 for ws in w]
                for d in sl:
                    o[d] = rshr(c32(sum(pr[s] * Vc[i][s][d] for s in range(len(pr)))), 15)
            x = self.lin_res(x, pre + "wo", o)
            a = self.rmsnorm(x, t[pre + "ffn_norm"], cst[1])
            hq = self.lin_act(pre + "w1", a)
            g = [t[pre + "act_lut"][hv + 128] for hv in hq]
            if self.act == 2:
                u = self.lin_act(pre + "w3", a)
                g = [clamp(requant(gv * uv, cst[4], cst[5]), -127, 127) for gv, uv in zip(g, u)]
            x = self.lin_res(x, pre + "w2", g)
        a = self.rmsnorm(x, t["final_norm"], self.fns)
        H = t["tok_emb"] if self.tied else t["head"]
        rq = t["head.rq"]
        return [clamp(requant(acc, rq[r][0], rq[r][1]), -(1 << 29), 1 << 29) for r, acc in enumerate(self.matvec(H, a))]

    # -- sampling --
    def sample(self, l, tq, top_k, rng):
        if tq == 0:
            best = 0
            for v in range(len(l)):
                if l[v] > l[best]:
                    best = v
            return best
        tq = clamp(tq, 16, 4096)
        inv_t = (1 << 20) // tq
        V = len(l)
        if top_k == 0 or top_k >= V:
            cand = set(range(V))
        else:
            cand = set(sorted(range(V), key=lambda v: (-l[v], v))[:top_k])
        top = max(l)
        w = [0] * V
        for v in cand:
            u = min((top - l[v]) >> (self.lf - 6), 16384)
            idx = c32(u * inv_t) >> 12
            w[v] = self.t["exp_lut"][idx] if idx < 1024 else 0
        r = (rng.next() >> 1) % sum(w)
        run = 0
        for v in range(V):
            run += w[v]
            if run > r:
                return v
        raise AssertionError("unreachable")

    def generate(self, prompt, n_new, tq=0, top_k=0, seed=0, window=False):
        rng = XS(seed)
        cache = self.new_cache()
        hist = []

        def feed(tok):  # FORMAT.md 6.7: a full cache restarts from the last T // 2 tokens
            nonlocal cache, hist
            if len(hist) == self.T:
                assert window, "past max_seq_len without the window"
                hist = hist[self.T - self.T // 2:]
                cache = self.new_cache()
                for p, t in enumerate(hist):
                    self.step(cache, t, p)
            hist.append(tok)
            return self.step(cache, tok, len(hist) - 1)
        for tok in prompt:
            logits = feed(tok)
        out = []
        for j in range(n_new):
            tok = self.sample(logits, tq, top_k, rng)
            out.append(tok)
            if j + 1 < n_new:
                logits = feed(tok)
        return out


class XS:
    def __init__(self, seed):
        self.s = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x
