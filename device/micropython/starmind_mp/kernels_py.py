"""The integer kernels in plain Python: the fallback where viper is missing (CPython, WebAssembly, CircuitPython).

Same signatures and bit-exact results as kernels_viper; buffers are typed
arrays here ('b' int8, 'h' int16, 'H' uint16, 'i' int32). Arithmetic follows
device/FORMAT.md: ``>>`` is an arithmetic shift (floor), ``rshr`` rounds half
up, every intermediate fits a signed 32-bit integer.
"""
from array import array

NAME = "python"
TYPECODES = {1: "b", 2: "h", 3: "i", 4: "f", 5: "H"}


def tensor(dtype, raw):
    """A loaded tensor (raw little-endian bytes) as this backend's buffer."""
    return array(TYPECODES[dtype], raw)


def buffer(typecode, n):
    """A zeroed buffer of n items: 'b' int8, 'a' activations (int8 here), 'i' int32."""
    if typecode == "a":
        typecode = "b"
    return array(typecode, bytes(n * (1 if typecode == "b" else 4)))


def prepare(w, n):
    """Nothing to do: this backend reads int8 weights as signed values (viper flips them to offset binary)."""


def rshr(v, s):
    return (v + (1 << (s - 1))) >> s if s > 0 else v


def requant(acc, m, s):
    t = (acc >> 15) * m + (((acc & 32767) * m) >> 15)
    return (t + (1 << (s - 1))) >> s if s > 0 else t


def embed(x, emb, erow, rq, rrow, dim, accumulate, clamp):
    """x (+)= rshr(emb[erow] * m, s), with (m, s) = rq[rrow]; then clamp to the residual range if asked."""
    m, s = rq[2 * rrow], rq[2 * rrow + 1]
    base = erow * dim
    for i in range(dim):
        v = rshr(emb[base + i] * m, s)
        if accumulate:
            v += x[i]
        if clamp:
            v = -32767 if v < -32767 else (32767 if v > 32767 else v)
        x[i] = v


def rmsnorm(out, x, gain, gain_shift, eps_q, dim, L, NF):
    """Integer RMSNorm of the residual x (int32) into int8 ``out``."""
    S = eps_q
    for i in range(dim):
        v = x[i]
        S += (v * v) >> L
    s, e = S, 0
    while s < (1 << 28):
        s <<= 2
        e += 1
    if s >= (1 << 30):
        s >>= 2
        e -= 1
    inv = (1 << 29) // isqrt(s)
    sh = 29 - e - NF
    for i in range(dim):
        n = rshr(x[i] * inv, sh)
        v = rshr(n * gain[i], gain_shift)
        out[i] = -127 if v < -127 else (127 if v > 127 else v)


def isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**31, bit by bit (FORMAT.md)."""
    r, bit = 0, 1 << 30
    while bit > n:
        bit >>= 2
    while bit:
        if n >= r + bit:
            n -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    return r


def linear_act(out, w, a, rq, rows, cols, r0=0):
    """out[r] = clamp(requant(sum_c w[r, c] a[c], rq[r]), -127, 127)."""
    base = 0
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc += w[base + c] * a[c]
        base += cols
        v = requant(acc, rq[2 * (r0 + r)], rq[2 * (r0 + r) + 1])
        out[r0 + r] = -127 if v < -127 else (127 if v > 127 else v)


def linear_res(x, w, a, rq, rows, cols, r0=0):
    """x[r] = clamp(x[r] + requant(sum_c w[r, c] a[c], rq[r]), -32767, 32767)."""
    base = 0
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc += w[base + c] * a[c]
        base += cols
        v = x[r0 + r] + requant(acc, rq[2 * (r0 + r)], rq[2 * (r0 + r) + 1])
        x[r0 + r] = -32767 if v < -32767 else (32767 if v > 32767 else v)


def linear_logits(out, w, a, rq, rows, cols, r0=0):
    """int32 logits: clamp(requant(acc, rq[r]), -2**29, 2**29)."""
    base = 0
    lim = 1 << 29
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc += w[base + c] * a[c]
        base += cols
        v = requant(acc, rq[2 * (r0 + r)], rq[2 * (r0 + r) + 1])
        out[r0 + r] = -lim if v < -lim else (lim if v > lim else v)


def rope(q, cos, sin, pos, half, dim):
    """Rotate adjacent pairs of every head of q (int8) by the Q14 tables at row ``pos``."""
    hd = 2 * half
    for h0 in range(0, dim, hd):
        for i in range(half):
            c, s = cos[pos * half + i], sin[pos * half + i]
            j = h0 + 2 * i
            q0, q1 = q[j], q[j + 1]
            r0 = rshr(q0 * c - q1 * s, 14)
            r1 = rshr(q0 * s + q1 * c, 14)
            q[j] = -127 if r0 < -127 else (127 if r0 > 127 else r0)
            q[j + 1] = -127 if r1 < -127 else (127 if r1 > 127 else r1)


def store_kv(cache, src, pos, dim):
    base = pos * dim
    for i in range(dim):
        cache[base + i] = src[i]


def attend(out, q, kc, vc, scores, lut, npos, dim, hd, m, s):
    """Causal softmax attention of one query over positions 0..npos-1, every head; int8 out."""
    for h0 in range(0, dim, hd):
        top = -(1 << 30)
        for t in range(npos):
            acc, kb = 0, t * dim + h0
            for d in range(hd):
                acc += q[h0 + d] * kc[kb + d]
            scores[t] = acc
            if acc > top:
                top = acc
        total = 0
        for t in range(npos):
            idx = requant(top - scores[t], m, s)
            w = lut[idx] if idx < 1024 else 0
            scores[t] = w
            total += w
        inv = (1 << 30) // total
        for t in range(npos):
            scores[t] = (scores[t] * inv) >> 15
        for d in range(hd):
            acc = 0
            for t in range(npos):
                acc += scores[t] * vc[t * dim + h0 + d]
            out[h0 + d] = rshr(acc, 15)


def act_lut(g, h, lut, n):
    for i in range(n):
        g[i] = lut[h[i] + 128]


def mul_requant(g, u, m, s, n):
    """SwiGLU gate: g[i] = clamp(requant(g[i] * u[i], m, s), -127, 127)."""
    for i in range(n):
        v = requant(g[i] * u[i], m, s)
        g[i] = -127 if v < -127 else (127 if v > 127 else v)


def argmax(v, n):
    best, bi = v[0], 0
    for i in range(1, n):
        if v[i] > best:
            best, bi = v[i], i
    return bi


def xorshift32(state):
    """Advance the generator kept in state[0] (uint32 in an int32 slot); returns the new value >> 1."""
    x = state[0] & 0xFFFFFFFF
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    state[0] = x - (1 << 32) if x >= (1 << 31) else x
    return x >> 1


def sample(logits, n, logit_frac, inv_t, top_k, state, lut, weights, mask):
    """Integer sampling (FORMAT.md): exp-table weights of (max - logit) / T, cumulative sum, one draw."""
    top = logits[argmax(logits, n)]
    for i in range(n):
        mask[i] = 1 if top_k <= 0 or top_k >= n else 0
    if 0 < top_k < n:
        for _ in range(top_k):  # the k largest, ties to the lowest id
            best, bi = 0, -1
            for i in range(n):
                if not mask[i] and (bi < 0 or logits[i] > best):
                    best, bi = logits[i], i
            mask[bi] = 1
    total = 0
    sh = logit_frac - 6
    for i in range(n):
        u = (top - logits[i]) >> sh
        if u > 16384:
            u = 16384
        idx = (u * inv_t) >> 12
        w = lut[idx] if mask[i] and idx < 1024 else 0
        weights[i] = w
        total += w
    r = xorshift32(state) % total
    cum = 0
    for i in range(n):
        cum += weights[i]
        if cum > r:
            return i
    return n - 1
