/* Portable C int8 kernels (see sm_kernels.h). */
#include "sm_kernels.h"

#if defined(__GNUC__) && defined(__ARM_ARCH_6M__)
#define SM_HOT __attribute__((section(".time_critical.sm_kernels"), noinline))
#else
#define SM_HOT
#endif

SM_HOT int32_t sm_dot_i8_plain(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0;
    for (int32_t i = 0; i < n; i++)
        acc += (int32_t)a[i] * b[i];
    return acc;
}

SM_HOT int32_t sm_dot_i8_unroll4(const int8_t *a, const int8_t *b, int32_t n)
{
    int32_t acc = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += (int32_t)a[i] * b[i];
        acc += (int32_t)a[i + 1] * b[i + 1];
        acc += (int32_t)a[i + 2] * b[i + 2];
        acc += (int32_t)a[i + 3] * b[i + 3];
    }
    for (; i < n; i++)
        acc += (int32_t)a[i] * b[i];
    return acc;
}

SM_HOT void sm_dot4_i8_c(const int8_t *x, const int8_t *w, int32_t n, int32_t stride, int32_t *out)
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t xi = x[i];
        a0 += xi * w0[i];
        a1 += xi * w1[i];
        a2 += xi * w2[i];
        a3 += xi * w3[i];
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
}

static int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* REQUANT(acc, m, s) = RSHR(floor(acc * m / 2^15), s) (FORMAT.md 6.1), 32-bit products only */
static int32_t requant_i32(int32_t acc, int32_t m, int32_t s)
{
    int32_t v = (acc >> 15) * m + (int32_t)(((uint32_t)(acc & 32767) * (uint32_t)m) >> 15);
    return (v + (int32_t)((1u << s) >> 1)) >> s;
}

/* one output row of the whole-matrix kernels (mode SM_LIN_*, sm_kernels.h) */
static void store_row(int mode, void *out, int32_t r, int32_t a, const int32_t *rq, const int8_t *lut)
{
    int32_t *o32 = (int32_t *)out;
    if (mode == SM_LIN_QK) o32[r] = a;
    else if (mode == SM_LIN_RES) o32[r] = clamp_i32(o32[r] + requant_i32(a, rq[2 * r], rq[2 * r + 1]), -32767, 32767);
    else if (mode == SM_LIN_LOGIT) o32[r] = clamp_i32(requant_i32(a, rq[2 * r], rq[2 * r + 1]), -(1 << 29), 1 << 29);
    else {
        int32_t v = clamp_i32(requant_i32(a, rq[2 * r], rq[2 * r + 1]), -127, 127);
        if (mode == SM_LIN_ACTB) ((uint8_t *)out)[r] = (uint8_t)(v + 128);
        else ((int8_t *)out)[r] = (int8_t)(mode == SM_LIN_ACT ? v : lut[v + 128]);
    }
}

void sm_linear4_i8_c(int mode, const int8_t *x, const int8_t *w, int32_t n, int32_t stride, void *out,
                     int32_t n_groups, const int32_t *rq, const int8_t *lut)
{
    int32_t acc[4];
    for (int32_t r = 0; r < 4 * n_groups; r++) {
        if ((r & 3) == 0) sm_dot4_i8_c(x, w + r * stride, n, stride, acc);
        store_row(mode, out, r, acc[r & 3], rq, lut);
    }
}

void sm_linK_i8_c(int mode, int K, const int32_t *x, const uint8_t *w, int32_t n, void *out, int32_t n_groups,
                  const int32_t *rq, const int8_t *lut, int32_t bias, int32_t tail)
{
    int32_t r = 0;
    for (int32_t g = 0; g < n_groups || tail; g++, w += K * n, r += K) {
        if (g >= n_groups) { /* the tail: one block of 4, 2 or 1 rows */
            K = tail >= 4 ? 4 : tail >= 2 ? 2 : 1;
            tail -= K;
        }
        int32_t acc[8];
        for (int j = 0; j < K; j++) acc[j] = bias;
        for (int32_t i = 0; i < n; i++) {
            int32_t xi = x[i];
            for (int j = 0; j < K; j++) acc[j] += xi * w[K * i + j];
        }
        for (int j = 0; j < K; j++) store_row(mode, out, r + j, acc[j], rq, lut);
    }
}

int32_t sm_wsumK_i8_c(int K, const int32_t *p, const uint8_t *v, int32_t n_pos, int32_t stride, int32_t *out,
                      int32_t n_groups, int32_t bias)
{
    int32_t S = 0;
    for (int32_t g = 0; g < n_groups; g++, v += K, out += K)
        for (int j = 0; j < K; j++) {
            int32_t a = bias;
            for (int32_t s = 0; s < n_pos; s++) a += p[s] * v[s * stride + j];
            out[j] = (a + (1 << 14)) >> 15;
            S += out[j];
        }
    return S;
}

void sm_wsum4_i8_c(const int32_t *p, const int8_t *v, int32_t n_pos, int32_t stride, int8_t *out,
                   int32_t n_groups)
{
    for (int32_t g = 0; g < n_groups; g++) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        const int8_t *c = v + 4 * g;
        for (int32_t s = 0; s < n_pos; s++, c += stride) {
            int32_t ps = p[s];
            a0 += ps * c[0]; a1 += ps * c[1]; a2 += ps * c[2]; a3 += ps * c[3];
        }
        out[4 * g] = (int8_t)((a0 + (1 << 14)) >> 15); out[4 * g + 1] = (int8_t)((a1 + (1 << 14)) >> 15);
        out[4 * g + 2] = (int8_t)((a2 + (1 << 14)) >> 15); out[4 * g + 3] = (int8_t)((a3 + (1 << 14)) >> 15);
    }
}

uint32_t sm_softmax_c(int32_t *sc, uint32_t n, const int32_t *ms, const uint16_t *lut)
{
    int32_t top = sc[0];
    for (uint32_t s = 1; s < n; s++) if (sc[s] > top) top = sc[s];
    uint32_t W = 0;
    for (uint32_t s = 0; s < n; s++) {
        int32_t idx = requant_i32(top - sc[s], ms[0], ms[1]);   /* top - sc in [0, 2^28) */
        uint32_t w = idx < 1024 ? lut[idx] : 0;
        sc[s] = (int32_t)w;
        W += w;
    }
    uint32_t R = (1u << 30) / W;
    uint32_t P = 0;
    for (uint32_t s = 0; s < n; s++) { sc[s] = (int32_t)(((uint32_t)sc[s] * R) >> 15); P += (uint32_t)sc[s]; }
    return P;
}

static int32_t rot(int32_t v) { return clamp_i32((v + (1 << 13)) >> 14, -127, 127); }

void sm_rope_c(int8_t *v, const int16_t *C, const int16_t *S, uint32_t half, uint32_t n_heads)
{
    for (uint32_t h = 0; h < n_heads; h++, v += 2 * half)
        for (uint32_t j = 0; j < half; j++) {
            int32_t c = C[j], s = S[j], u0 = v[2 * j], u1 = v[2 * j + 1];
            v[2 * j] = (int8_t)rot(u0 * c - u1 * s);
            v[2 * j + 1] = (int8_t)rot(u0 * s + u1 * c);
        }
}

uint32_t sm_sumsq_c(const int32_t *x, uint32_t n, uint32_t L)
{
    uint32_t S = 0;
    for (uint32_t c = 0; c < n; c++) S += (uint32_t)(x[c] * x[c]) >> L;
    return S;
}

int32_t sm_widen_i8_c(const int8_t *x, uint32_t n, int32_t *y)
{
    int32_t s = 0;
    for (uint32_t c = 0; c < n; c++) { y[c] = x[c]; s += x[c]; }
    return s;
}

int32_t sm_rmsn_c(const int32_t *x, const int16_t *G, int32_t *y, uint32_t n, int32_t inv, uint32_t sh, uint32_t gs)
{
    int32_t rs = (int32_t)((1u << sh) >> 1), rg = (int32_t)((1u << gs) >> 1), S = 0;
    for (uint32_t c = 0; c < n; c++) {
        int32_t v = (int32_t)((uint32_t)x[c] * (uint32_t)inv + (uint32_t)rs) >> sh;   /* int32 products, wrapping */
        y[c] = clamp_i32((int32_t)((uint32_t)v * (uint32_t)(int32_t)G[c] + (uint32_t)rg) >> gs, -127, 127);
        S += y[c];
    }
    return S;
}
