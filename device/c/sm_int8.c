/* The int8 integer-only forward pass, exactly as FORMAT.md section 6.
 *
 * Every product of int8 vectors goes through the whole-matrix kernels of
 * sm_kernels.h (Thumb assembly on the RP2040): matrix-vector products with their
 * requantisation (sm_linear4_i8), attention scores over the cached keys (its
 * SM_LIN_QK mode) and the weighted sum of the cached values (sm_wsum4_i8, rounded to int8); one head's
 * softmax (sm_softmax), the rotary embedding (sm_rope) and RMSNorm's sum of squares (sm_sumsq) are
 * kernels too.  The rest is in the small functions below; each phase is its own (noinline) function
 * or kernel so that a per-function cycle profile on the emulated Pico splits a token's cycles by
 * phase (starmind_lib's device bench). */
#include "sm_internal.h"
#include "sm_kernels.h"

#if defined(__GNUC__)
#define SM_PHASE SM_HOT __attribute__((noinline))
#else
#define SM_PHASE SM_HOT
#endif

/* RSHR(v, s) (round half up, >> is floor) = (v + rnd(s)) >> s with rnd(0) = 0. */
static inline int32_t rnd(int32_t s) { return (int32_t)((1u << s) >> 1); }

static inline int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* floor(acc * m / 2^15) with 32-bit products only (the inside of REQUANT). */
static inline int32_t mul_q15(int32_t acc, int32_t m)
{
    return (acc >> 15) * m + (int32_t)(((uint32_t)(acc & 32767) * (uint32_t)m) >> 15);
}

/* A matrix of fewer than 4 rows: one row at a time. */
static SM_PHASE void tail_rows(int mode, const int8_t *a, const int8_t *w, uint32_t C, void *out,
                               uint32_t R, const int32_t *rq, const int8_t *lut)
{
    for (uint32_t r = 0; r < R; r++) {
        int32_t v = sm_dot_i8_unroll4(a, w + r * C, (int32_t)C), s = rq[2 * r + 1];
        v = (mul_q15(v, rq[2 * r]) + rnd(s)) >> s;
        if (mode == SM_LIN_RES) ((int32_t *)out)[r] = clamp(((int32_t *)out)[r] + v, -32767, 32767);
        else if (mode == SM_LIN_LOGIT) ((int32_t *)out)[r] = clamp(v, -(1 << 29), 1 << 29);
        else {
            v = clamp(v, -127, 127);
            ((int8_t *)out)[r] = (int8_t)(mode == SM_LIN_ACT ? v : lut[v + 128]);
        }
    }
}

/* out = the requantised W a (mode SM_LIN_ACT, _ACTLUT, _RES or _LOGIT, sm_kernels.h): groups of 4
 * rows in the kernel; a last partial group as the last 4 rows again: the same values written twice
 * (for LINEAR_RES the residual rows the two overlap on get their old values back first, so that
 * they are not added to twice). */
#if defined(__GNUC__)
#define SM_INLINE inline __attribute__((always_inline))
#else
#define SM_INLINE inline
#endif

static SM_INLINE void linear(const sm_mat *W, const int8_t *a, void *out, int mode, const int8_t *lut)
{
    const int8_t *w = (const int8_t *)W->w;
    uint32_t R = W->rows, C = W->cols, k = R & 3;
    if (R < 4) { tail_rows(mode, a, w, C, out, R, W->rq, lut); return; }
    uint32_t r = R - 4;
    int32_t *x = (int32_t *)out + r, x0 = 0, x1 = 0, x2 = 0;
    if (k && mode == SM_LIN_RES) { x0 = x[0]; x1 = x[1]; x2 = x[2]; }
    sm_linear4_i8(mode, a, w, (int32_t)C, (int32_t)C, out, (int32_t)(R / 4), W->rq, lut);
    if (!k) return;
    if (mode == SM_LIN_RES) { x[0] = x0; if (k < 3) x[1] = x1; if (k < 2) x[2] = x2; }
    int byte = mode == SM_LIN_ACT || mode == SM_LIN_ACTLUT;
    void *o = byte ? (void *)((int8_t *)out + r) : (void *)x;
    sm_linear4_i8(mode, a, w + r * C, (int32_t)C, (int32_t)C, o, 1, W->rq + 2 * r, lut);
}

/* sc[s] = q . K[s] for s < n (keys at stride dim): groups of 4 positions; a last partial group
 * reads the next rows of this layer's cache when they exist (their scores are never used), else
 * it is the last 4 again. */
static inline void scores(const int8_t *q, const int8_t *K, uint32_t hd, uint32_t D, int32_t *sc, uint32_t n,
                          uint32_t n_ctx)
{
    if (n >= 4 || n_ctx >= 4) {
        uint32_t g = (n + 3) / 4;
        if (4 * g > n_ctx) g = n / 4;
        sm_linear4_i8(SM_LIN_QK, q, K, (int32_t)hd, (int32_t)D, sc, (int32_t)g, (const int32_t *)0, (const int8_t *)0);
        if (4 * g < n)
            sm_linear4_i8(SM_LIN_QK, q, K + (n - 4) * D, (int32_t)hd, (int32_t)D, sc + n - 4, 1, (const int32_t *)0,
                          (const int8_t *)0);
    } else {
        for (uint32_t s = 0; s < n; s++) sc[s] = sm_dot_i8_unroll4(q, K + s * D, (int32_t)hd);
    }
}

static uint32_t isqrt(uint32_t n)
{
    uint32_t res = 0, bit = 1u << 30;
    while (bit > n) bit >>= 2;
    while (bit) {
        if (n >= res + bit) { n -= res + bit; res = (res >> 1) + bit; }
        else res >>= 1;
        bit >>= 2;
    }
    return res;
}

/* RMSNorm (section 6.2): residual x[dim] -> int8 y[dim]. */
static SM_PHASE void rmsnorm(const sm_model *m, const int32_t *x, const int16_t *G, int32_t gs, int8_t *y)
{
    uint32_t D = m->dim, L = 0;
    while ((1u << L) < D) L++;                   /* ceil(log2(dim)) */
    int32_t NF = 15 - (int32_t)((L + 1) / 2);
    uint32_t S = m->eps_q + sm_sumsq(x, D, L);
    int32_t e = 0;                               /* while S < 2^28: S <<= 2, e++ (at most 14 times) */
    if (S < (1u << 14)) { S <<= 16; e += 8; }
    if (S < (1u << 22)) { S <<= 8; e += 4; }
    if (S < (1u << 26)) { S <<= 4; e += 2; }
    if (S < (1u << 28)) { S <<= 2; e += 1; }
    if (S >= (1u << 30)) { S >>= 2; e--; }
    int32_t inv = (int32_t)((1u << 29) / isqrt(S));
    int32_t sh = 29 - e - NF, rs = rnd(sh), rg = rnd(gs);
    for (uint32_t c = 0; c < D; c++) {
        int32_t n = (x[c] * inv + rs) >> sh;
        y[c] = (int8_t)clamp((n * G[c] + rg) >> gs, -127, 127);
    }
}

/* Rotary embedding of q and k (the same angles) at position pos, head by head. */
static SM_PHASE void rope(const sm_model *m, int8_t *q, int8_t *k, uint32_t pos)
{
    uint32_t hd = m->head_dim, half = hd / 2;
    const int16_t *C = (const int16_t *)m->rope_cos + pos * half, *Sn = (const int16_t *)m->rope_sin + pos * half;
    for (uint32_t h = 0; h < m->n_heads; h++, q += hd, k += hd) {
        sm_rope(q, C, Sn, half);
        sm_rope(k, C, Sn, half);
    }
}

/* Causal softmax attention of q over cached positions 0..pos of one layer (section 6.4). */
static SM_PHASE void attention(const sm_model *m, const int32_t *consts, const int8_t *q, const int8_t *K,
                               const int8_t *Vc, uint32_t pos, int8_t *o)
{
    uint32_t D = m->dim, hd = m->head_dim, n = pos + 1;
    int32_t *sc = (int32_t *)m->scores;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const int8_t *qh = q + h * hd, *Kh = K + h * hd, *Vh = Vc + h * hd;
        scores(qh, Kh, hd, D, sc, n, m->n_ctx);
        sm_softmax(sc, n, consts + 2, m->exp_lut);      /* -> Q15 probabilities, in place */
        /* o[d] = RSHR(sum_s pr[s] V[s][d], 15), 4 columns at a time (a partial group: the last 4 again) */
        int8_t *oh = o + h * hd;
        if (hd >= 4) {
            sm_wsum4_i8(sc, Vh, (int32_t)n, (int32_t)D, oh, (int32_t)(hd / 4));
            if (hd & 3) sm_wsum4_i8(sc, Vh + hd - 4, (int32_t)n, (int32_t)D, oh + hd - 4, 1);
        } else {
            for (uint32_t d = 0; d < hd; d++) {
                int32_t t = 0;
                for (uint32_t s = 0; s < n; s++) t += sc[s] * Vh[s * D + d];
                oh[d] = (int8_t)((t + (1 << 14)) >> 15);
            }
        }
    }
}

SM_HOT void sm_step_int8(sm_model *m, uint32_t token, uint32_t pos, int want_logits)
{
    uint32_t D = m->dim, F = m->ffn_hidden;
    int32_t *x = (int32_t *)m->x;
    int8_t *a = (int8_t *)m->a, *q = (int8_t *)m->q, *o = (int8_t *)m->o, *hq = (int8_t *)m->h, *u = (int8_t *)m->u;
    /* embedding (6.3) */
    const int8_t *e = (const int8_t *)m->tok_emb.w + token * D;
    int32_t em = m->tok_emb.rq[2 * token], es = m->tok_emb.rq[2 * token + 1], er = rnd(es);
    for (uint32_t c = 0; c < D; c++) x[c] = (e[c] * em + er) >> es;
    if (m->pos == SM_POS_LEARNED) {
        const int8_t *pe = (const int8_t *)m->pos_emb.w + pos * D;
        int32_t pm = m->pos_emb.rq[2 * pos], ps = m->pos_emb.rq[2 * pos + 1], pr = rnd(ps);
        for (uint32_t c = 0; c < D; c++) x[c] += (pe[c] * pm + pr) >> ps;
    }
    for (uint32_t c = 0; c < D; c++) x[c] = clamp(x[c], -32767, 32767);
    /* layers (6.4) */
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const sm_layer *L = &m->layers[i];
        const int32_t *c = L->consts;
        int8_t *K = (int8_t *)m->kc + i * m->n_ctx * D, *V = (int8_t *)m->vc + i * m->n_ctx * D;
        rmsnorm(m, x, (const int16_t *)L->attn_norm, c[0], a);
        linear(&L->wq, a, q, SM_LIN_ACT, L->act_lut);
        linear(&L->wk, a, K + pos * D, SM_LIN_ACT, L->act_lut);
        linear(&L->wv, a, V + pos * D, SM_LIN_ACT, L->act_lut);
        if (m->pos == SM_POS_ROPE) rope(m, q, K + pos * D, pos);
        attention(m, c, q, K, V, pos, o);
        linear(&L->wo, o, x, SM_LIN_RES, L->act_lut);
        rmsnorm(m, x, (const int16_t *)L->ffn_norm, c[1], a);
        linear(&L->w1, a, hq, SM_LIN_ACTLUT, L->act_lut);     /* g = act_lut[hq + 128] */
        if (m->activation == SM_ACT_SWIGLU) {
            linear(&L->w3, a, u, SM_LIN_ACT, L->act_lut);
            int32_t gm = c[4], gs = c[5], gr = rnd(gs);
            for (uint32_t f = 0; f < F; f++)
                hq[f] = (int8_t)clamp((mul_q15(hq[f] * u[f], gm) + gr) >> gs, -127, 127);
        }
        linear(&L->w2, hq, x, SM_LIN_RES, L->act_lut);
    }
    if (!want_logits) return;
    /* output (6.5) */
    rmsnorm(m, x, (const int16_t *)m->final_norm, (int32_t)m->final_norm_shift, a);
    linear(&m->head, a, m->logits, SM_LIN_LOGIT, (const int8_t *)0);
}
