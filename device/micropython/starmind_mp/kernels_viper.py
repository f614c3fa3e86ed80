"""The integer kernels as MicroPython viper code, for a Pico (compile with mpy-cross -march=armv6m).

Same results as kernels_py, bit for bit. Layout chosen for the Cortex-M0+:

* every buffer is a bytearray read through ptr8/ptr16/ptr32; viper ints are
  32-bit machine words (the format guarantees every intermediate fits);
* activations are int32 (``buffer("a", n)``), so the hot loop needs no sign
  extension of them;
* int8 weight matrices and the KV cache are kept in *offset binary*
  (``byte = value + 128``, flipped in place once by ``prepare``): ptr8 loads are
  unsigned, and ``sum(w * a) = sum((w + 128) * a) - 128 * sum(a)``, so the inner
  loop is one load, one load, one multiply, one add. Bounds: (w + 128) <= 255,
  |a| <= 127, up to 32767 columns: < 2^31;
* int16 tables (norm gains, rotary) are sign-extended with ``(v ^ 0x8000) - 0x8000``;
* ``>>`` on an int is an arithmetic shift, as the format specifies; constants
  >= 2^30 are built by shifting at run time (as literals they would be boxed).

Importing this module fails with SyntaxError/ImportError on ports without a
native emitter; engine.py then falls back to kernels_py.
"""
import micropython

NAME = "viper"


def tensor(dtype, raw):
    return raw


def buffer(typecode, n):
    """'b': int8 bytes (KV cache, masks); 'a' activations and 'i' values: int32."""
    return bytearray(n if typecode == "b" else 4 * n)


@micropython.viper
def prepare(w: ptr8, n: int):
    """Flip an int8 matrix to offset binary in place (once, at load)."""
    for i in range(n):
        w[i] = w[i] ^ 0x80


@micropython.viper
def embed(x: ptr32, emb: ptr8, erow: int, rq: ptr16, rrow: int, dim: int, accumulate: int, clamp: int):
    m = rq[2 * rrow]
    s = rq[2 * rrow + 1]
    half = 0
    if s > 0:
        half = 1 << (s - 1)
    base = erow * dim
    for i in range(dim):
        e = int(emb[base + i]) - 128
        v = (e * m + half) >> s
        if accumulate:
            v += x[i]
        if clamp:
            if v < -32767:
                v = -32767
            elif v > 32767:
                v = 32767
        x[i] = v


@micropython.viper
def rmsnorm(out: ptr32, x: ptr32, gain: ptr16, gain_shift: int, eps_q: int, dim: int, L: int, NF: int):
    S = eps_q
    for i in range(dim):
        v = x[i]
        S += (v * v) >> L
    s = S
    e = 0
    lo = 1 << 28
    while s < lo:
        s <<= 2
        e += 1
    if s >= (lo << 2):
        s >>= 2
        e -= 1
    # floor(sqrt(s)), bit by bit
    n = s
    r = 0
    bit = 1
    bit <<= 30
    while bit > n:
        bit >>= 2
    while bit != 0:
        if n >= r + bit:
            n -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    inv = (1 << 29) // r
    sh = 29 - e - NF
    half = 0
    if sh > 0:
        half = 1 << (sh - 1)
    ghalf = 0
    if gain_shift > 0:
        ghalf = 1 << (gain_shift - 1)
    for i in range(dim):
        nv = (x[i] * inv + half) >> sh
        g = int(gain[i])
        g = (g ^ 0x8000) - 0x8000
        v = (nv * g + ghalf) >> gain_shift
        if v < -127:
            v = -127
        elif v > 127:
            v = 127
        out[i] = v


@micropython.viper
def linear_act(out: ptr32, w: ptr8, a: ptr32, rq: ptr16, rows: int, cols: int, r0: int):
    corr = 0
    for c in range(cols):
        corr += a[c]
    corr <<= 7
    base = 0
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc += int(w[base + c]) * a[c]
        base += cols
        acc -= corr
        m = rq[2 * (r0 + r)]
        s = rq[2 * (r0 + r) + 1]
        v = (acc >> 15) * m + (((acc & 32767) * m) >> 15)
        if s > 0:
            v = (v + (1 << (s - 1))) >> s
        if v < -127:
            v = -127
        elif v > 127:
            v = 127
        out[r0 + r] = v


@micropython.viper
def linear_res(x: ptr32, w: ptr8, a: ptr32, rq: ptr16, rows: int, cols: int, r0: int):
    corr = 0
    for c in range(cols):
        corr += a[c]
    corr <<= 7
    base = 0
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc += int(w[base + c]) * a[c]
        base += cols
        acc -= corr
        m = rq[2 * (r0 + r)]
        s = rq[2 * (r0 + r) + 1]
        v = (acc >> 15) * m + (((acc & 32767) * m) >> 15)
        if s > 0:
            v = (v + (1 << (s - 1))) >> s
        v += x[r0 + r]
        if v < -32767:
            v = -32767
        elif v > 32767:
            v = 32767
        x[r0 + r] = v


@micropython.viper
def linear_logits(out: ptr32, w: ptr8, a: ptr32, rq: ptr16, rows: int, cols: int, r0: int):
    lim = 1 << 29
    corr = 0
    for c in range(cols):
        corr += a[c]
    corr <<= 7
    base = 0
    for r in range(rows):
        acc = 0
        for c in range(cols):
            acc += int(w[base + c]) * a[c]
        base += cols
        acc -= corr
        m = rq[2 * (r0 + r)]
        s = rq[2 * (r0 + r) + 1]
        v = (acc >> 15) * m + (((acc & 32767) * m) >> 15)
        if s > 0:
            v = (v + (1 << (s - 1))) >> s
        if v < 0 - lim:
            v = 0 - lim
        elif v > lim:
            v = lim
        out[r0 + r] = v


@micropython.viper
def rope(q: ptr32, cos: ptr16, sin: ptr16, pos: int, half: int, dim: int):
    hd = 2 * half
    h0 = 0
    while h0 < dim:
        for i in range(half):
            c = int(cos[pos * half + i])
            c = (c ^ 0x8000) - 0x8000
            s = int(sin[pos * half + i])
            s = (s ^ 0x8000) - 0x8000
            j = h0 + 2 * i
            q0 = q[j]
            q1 = q[j + 1]
            r0 = (q0 * c - q1 * s + 8192) >> 14
            r1 = (q0 * s + q1 * c + 8192) >> 14
            if r0 < -127:
                r0 = -127
            elif r0 > 127:
                r0 = 127
            if r1 < -127:
                r1 = -127
            elif r1 > 127:
                r1 = 127
            q[j] = r0
            q[j + 1] = r1
        h0 += hd


@micropython.viper
def store_kv(cache: ptr8, src: ptr32, pos: int, dim: int):
    """Append one position to an int8 KV cache, in offset binary."""
    base = pos * dim
    for i in range(dim):
        cache[base + i] = src[i] + 128


@micropython.viper
def attend(out: ptr32, q: ptr32, kc: ptr8, vc: ptr8, scores: ptr32, lut: ptr16, npos: int, dim: int, hd: int,
           m: int, s: int):
    shalf = 0
    if s > 0:
        shalf = 1 << (s - 1)
    one30 = 1
    one30 <<= 30    # not a constant: 1 << 30 is no small int on a 32-bit port
    h0 = 0
    while h0 < dim:
        qsum = 0
        for d in range(hd):
            qsum += q[h0 + d]
        qsum <<= 7
        top = 0 - one30
        for t in range(npos):
            acc = 0
            kb = t * dim + h0
            for d in range(hd):
                acc += q[h0 + d] * int(kc[kb + d])
            acc -= qsum
            scores[t] = acc
            if acc > top:
                top = acc
        total = 0
        for t in range(npos):
            diff = top - scores[t]
            idx = ((diff >> 15) * m + (((diff & 32767) * m) >> 15) + shalf) >> s
            w = 0
            if idx < 1024:
                w = int(lut[idx])
            scores[t] = w
            total += w
        inv = one30 // total
        psum = 0
        for t in range(npos):
            p = (scores[t] * inv) >> 15
            scores[t] = p
            psum += p
        psum <<= 7
        for d in range(hd):
            acc = 0
            vb = h0 + d
            for t in range(npos):
                acc += scores[t] * int(vc[vb])
                vb += dim
            out[h0 + d] = (acc - psum + 16384) >> 15
        h0 += hd


@micropython.viper
def act_lut(g: ptr32, h: ptr32, lut: ptr8, n: int):
    for i in range(n):
        v = int(lut[h[i] + 128])
        g[i] = (v ^ 0x80) - 0x80


@micropython.viper
def mul_requant(g: ptr32, u: ptr32, m: int, s: int, n: int):
    for i in range(n):
        p = g[i] * u[i]
        v = (p >> 15) * m + (((p & 32767) * m) >> 15)
        if s > 0:
            v = (v + (1 << (s - 1))) >> s
        if v < -127:
            v = -127
        elif v > 127:
            v = 127
        g[i] = v


@micropython.viper
def argmax(v: ptr32, n: int) -> int:
    best = v[0]
    bi = 0
    for i in range(1, n):
        if v[i] > best:
            best = v[i]
            bi = i
    return bi


@micropython.viper
def sample(logits: ptr32, n: int, logit_frac: int, inv_t: int, top_k: int, state: ptr32, lut: ptr16,
           weights: ptr32, mask: ptr8) -> int:
    top = logits[0]
    for i in range(1, n):
        if logits[i] > top:
            top = logits[i]
    all_in = 1
    if top_k > 0 and top_k < n:
        all_in = 0
    for i in range(n):
        mask[i] = all_in
    if all_in == 0:
        for _ in range(top_k):  # the k largest, ties to the lowest id
            best = 0
            bi = -1
            for i in range(n):
                if mask[i] == 0 and (bi < 0 or logits[i] > best):
                    best = logits[i]
                    bi = i
            mask[bi] = 1
    total = 0
    sh = logit_frac - 6
    for i in range(n):
        u = (top - logits[i]) >> sh
        if u > 16384:
            u = 16384
        idx = (u * inv_t) >> 12
        w = 0
        if mask[i] != 0 and idx < 1024:
            w = int(lut[idx])
        weights[i] = w
        total += w
    x = uint(state[0])
    x ^= x << 13
    x ^= x >> 17
    x ^= x << 5
    state[0] = int(x)
    r = int(x >> 1) % total
    cum = 0
    for i in range(n):
        cum += weights[i]
        if cum > r:
            return i
    return n - 1
