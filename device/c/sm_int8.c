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

static SM_INLINE void linear4(const sm_mat *W, const int8_t *w, const int32_t *rq, uint32_t R, const int8_t *a,
                              void *out, int mode, const int8_t *lut)
{
    uint32_t C = W->cols, k = R & 3;
    if (R < 4) { tail_rows(mode, a, w, C, out, R, rq, lut); return; }
    uint32_t r = R - 4;
    int32_t *x = (int32_t *)out + r, x0 = 0, x1 = 0, x2 = 0;
    if (k && mode == SM_LIN_RES) { x0 = x[0]; x1 = x[1]; x2 = x[2]; }
    sm_linear4_i8(mode, a, w, (int32_t)C, (int32_t)C, out, (int32_t)(R / 4), rq, lut);
    if (!k) return;
    if (mode == SM_LIN_RES) { x[0] = x0; if (k < 3) x[1] = x1; if (k < 2) x[2] = x2; }
    int byte = mode == SM_LIN_ACT || mode == SM_LIN_ACTLUT;
    void *o = byte ? (void *)((int8_t *)out + r) : (void *)x;
    sm_linear4_i8(mode, a, w + r * C, (int32_t)C, (int32_t)C, o, 1, rq + 2 * r, lut);
}

/* il (SM_INTERLEAVED, weights in SRAM): the matrix in blocks of 8 rows, then one of 4, of 2 and of 1
 * as the rows mod 8 ask (one call of sm_linK_i8), from a32 = a widened to int32; bias = -128 sum_c a[c] (widen). */
static SM_INLINE void linear(const sm_mat *W, const int8_t *a, void *out, int mode, const int8_t *lut, int il,
                             const int32_t *a32, int32_t bias)
{
    const int8_t *w = (const int8_t *)W->w;
    uint32_t R = W->rows, C = W->cols;
    if (!il) { linear4(W, w, W->rq, R, a, out, mode, lut); return; }
    if (R >= 8) sm_linK_i8(mode, 8, a32, (const uint8_t *)w, (int32_t)C, out, (int32_t)(R / 8), W->rq, lut, bias, (int32_t)(R & 7));
    else {
        int K = R >= 4 ? 4 : R >= 2 ? 2 : 1;
        sm_linK_i8(mode, K, a32, (const uint8_t *)w, (int32_t)C, out, 1, W->rq, lut, bias, (int32_t)R - K);
    }
}

/* y = x widened to int32; -128 sum_c x[c]: the start of the sums of linear's interleaved blocks */
static inline int32_t widen(const int8_t *x, uint32_t n, int32_t *y) { return -128 * sm_widen_i8(x, n, y); }

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

/* floor(sqrt(n)) for n in [2^28, 2^30) (RMSNorm's normalised sum): a first guess from the top 8 bits
 * (isqrt((i + 1/2) 2^22), rows i = 64..255), one Newton step (never below the root), then exact by the
 * two corrections. */
static uint16_t isqrt_guess[192] = {
    16447, 16574, 16700, 16826, 16950, 17073, 17195, 17317, 17438, 17557, 17676, 17795,
    17912, 18029, 18145, 18260, 18375, 18488, 18601, 18714, 18826, 18937, 19047, 19157,
    19266, 19374, 19482, 19590, 19697, 19803, 19908, 20013, 20118, 20222, 20325, 20428,
    20531, 20633, 20734, 20835, 20935, 21035, 21135, 21234, 21332, 21430, 21528, 21625,
    21722, 21818, 21914, 22010, 22105, 22199, 22294, 22387, 22481, 22574, 22667, 22759,
    22851, 22943, 23034, 23125, 23215, 23305, 23395, 23485, 23574, 23663, 23751, 23839,
    23927, 24014, 24102, 24188, 24275, 24361, 24447, 24533, 24618, 24703, 24788, 24872,
    24957, 25040, 25124, 25207, 25290, 25373, 25456, 25538, 25620, 25702, 25783, 25864,
    25945, 26026, 26106, 26187, 26267, 26346, 26426, 26505, 26584, 26663, 26741, 26820,
    26898, 26976, 27053, 27131, 27208, 27285, 27362, 27438, 27514, 27591, 27666, 27742,
    27818, 27893, 27968, 28043, 28118, 28192, 28266, 28340, 28414, 28488, 28562, 28635,
    28708, 28781, 28854, 28926, 28999, 29071, 29143, 29215, 29287, 29358, 29429, 29501,
    29572, 29642, 29713, 29784, 29854, 29924, 29994, 30064, 30134, 30203, 30273, 30342,
    30411, 30480, 30548, 30617, 30685, 30754, 30822, 30890, 30958, 31025, 31093, 31160,
    31227, 31294, 31361, 31428, 31495, 31561, 31628, 31694, 31760, 31826, 31892, 31957,
    32023, 32088, 32154, 32219, 32284, 32349, 32414, 32478, 32543, 32607, 32671, 32735,
};

static uint32_t isqrt(uint32_t n)
{
    if (n < (1u << 28) || n >= (1u << 30)) { /* not normalised (n = 0): bit by bit */
        uint32_t res = 0, bit = 1u << 30;
        while (bit > n) bit >>= 2;
        while (bit) {
            if (n >= res + bit) { n -= res + bit; res = (res >> 1) + bit; }
            else res >>= 1;
            bit >>= 2;
        }
        return res;
    }
    uint32_t g = isqrt_guess[(n >> 22) - 64];
    g = (g + n / g) >> 1;
    while (g * g > n) g--;
    while ((g + 1) * (g + 1) <= n) g++;
    return g;
}

/* RMSNorm (section 6.2): residual x[dim] -> int8 y[dim]; with y32 (weights in SRAM) -> y32 widened to int32
 * instead, returning -128 sum_c y[c] (the bias of linear's interleaved blocks). */
static SM_PHASE int32_t rmsnorm(const sm_model *m, const int32_t *x, const int16_t *G, int32_t gs, int8_t *y,
                                int32_t *y32)
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
    if (y32) return -128 * sm_rmsn(x, G, y32, D, inv, (uint32_t)sh, (uint32_t)gs);
    for (uint32_t c = 0; c < D; c++) {
        int32_t n = (x[c] * inv + rs) >> sh;
        y[c] = (int8_t)clamp((n * G[c] + rg) >> gs, -127, 127);
    }
    return 0;
}

/* Rotary embedding of q and k (the same angles for every head) at position pos: one call for all heads. */
static SM_PHASE void rope(const sm_model *m, int8_t *q, int8_t *k, uint32_t pos)
{
    uint32_t hd = m->head_dim, half = hd / 2;
    const int16_t *C = (const int16_t *)m->rope_cos + pos * half, *Sn = (const int16_t *)m->rope_sin + pos * half;
    sm_rope(q, C, Sn, half, m->n_heads);
    sm_rope(k, C, Sn, half, m->n_heads);
}

/* Causal softmax attention of q over cached positions 0..pos of one layer (section 6.4); with o32 (weights in
 * SRAM: the cached values biased by 128) the output goes to o32 widened to int32, and the result is
 * -128 sum_d o[d] (the bias of linear's interleaved blocks). */
static SM_PHASE int32_t attention(const sm_model *m, const int32_t *consts, const int8_t *q, const int8_t *K,
                                  const int8_t *Vc, uint32_t pos, int8_t *o, int32_t *o32)
{
    int32_t osum = 0;
    uint32_t D = m->dim, hd = m->head_dim, n = pos + 1;
    int32_t *sc = (int32_t *)m->scores;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const int8_t *qh = q + h * hd, *Kh = K + h * hd, *Vh = Vc + h * hd;
        scores(qh, Kh, hd, D, sc, n, m->n_ctx);
        int32_t ps = (int32_t)sm_softmax(sc, n, consts + 2, m->exp_lut);   /* -> Q15 probabilities, in place */
        /* o[d] = RSHR(sum_s pr[s] V[s][d], 15), 4 columns at a time (a partial group: the last 4 again) */
        int8_t *oh = o + h * hd;
        if (o32) {   /* the cached values are biased by 128: blocks of 8 columns, then of 4, 2, 1 */
            uint32_t d = hd & ~7u;
            int32_t *oh32 = o32 + h * hd;
            if (d) osum += sm_wsumK_i8(8, sc, (const uint8_t *)Vh, (int32_t)n, (int32_t)D, oh32, (int32_t)(hd / 8), -128 * ps);
            for (uint32_t k = 4; k; k >>= 1)
                if (hd & k) {
                    osum += sm_wsumK_i8((int)k, sc, (const uint8_t *)Vh + d, (int32_t)n, (int32_t)D, oh32 + d, 1, -128 * ps);
                    d += k;
                }
        } else if (hd >= 4) {
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
    return osum;
}

SM_HOT void sm_step_int8(sm_model *m, uint32_t token, uint32_t pos, int want_logits)
{
    uint32_t D = m->dim, F = m->ffn_hidden;
    int32_t *x = (int32_t *)m->x;
    int32_t *w32 = m->att_acc;   /* the widened activations (weights in SRAM) */
    int8_t *a = (int8_t *)m->a, *q = (int8_t *)m->q, *o = (int8_t *)m->o, *hq = (int8_t *)m->h, *u = (int8_t *)m->u;
    /* embedding (6.3) */
    const int8_t *e = (const int8_t *)m->tok_emb.w + token * D;
    int32_t em = m->tok_emb.rq[2 * token], es = m->tok_emb.rq[2 * token + 1], er = rnd(es), il = SM_INTERLEAVED(m);
    if (il && m->tied) {   /* the tied head's blocks of K = 8, 4, 2, 1 rows: row r0 + j of a block at r0 */
        uint32_t K = 8, r0 = token & ~7u, V = m->vocab_size;
        if (r0 + 8 > V)
            for (K = 4, r0 = V & ~7u; token >= r0 + K || !(V & K); K >>= 1) if (V & K) r0 += K;
        const uint8_t *eu = (const uint8_t *)m->tok_emb.w + r0 * D + (token - r0);
        if (m->pos != SM_POS_LEARNED)   /* the clamp below, in the same pass */
            for (uint32_t c = 0; c < D; c++, eu += K) x[c] = clamp((((int32_t)*eu - 128) * em + er) >> es, -32767, 32767);
        else
            for (uint32_t c = 0; c < D; c++, eu += K) x[c] = (((int32_t)*eu - 128) * em + er) >> es;
    } else {
        for (uint32_t c = 0; c < D; c++) x[c] = (e[c] * em + er) >> es;
    }
    if (m->pos == SM_POS_LEARNED) {
        const int8_t *pe = (const int8_t *)m->pos_emb.w + pos * D;
        int32_t pm = m->pos_emb.rq[2 * pos], ps = m->pos_emb.rq[2 * pos + 1], pr = rnd(ps);
        for (uint32_t c = 0; c < D; c++) x[c] += (pe[c] * pm + pr) >> ps;
    }
    if (!il || !m->tied || m->pos == SM_POS_LEARNED)
        for (uint32_t c = 0; c < D; c++) x[c] = clamp(x[c], -32767, 32767);
    /* layers (6.4) */
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const sm_layer *L = &m->layers[i];
        const int32_t *c = L->consts;
        int8_t *K = (int8_t *)m->kc + i * m->n_ctx * D, *V = (int8_t *)m->vc + i * m->n_ctx * D;
        int32_t b = rmsnorm(m, x, (const int16_t *)L->attn_norm, c[0], a, il ? w32 : (int32_t *)0);
        linear(&L->wq, a, q, SM_LIN_ACT, L->act_lut, il, w32, b);
        linear(&L->wk, a, K + pos * D, SM_LIN_ACT, L->act_lut, il, w32, b);
        linear(&L->wv, a, V + pos * D, il ? SM_LIN_ACTB : SM_LIN_ACT, L->act_lut, il, w32, b);
        if (m->pos == SM_POS_ROPE) rope(m, q, K + pos * D, pos);
        b = attention(m, c, q, K, V, pos, o, il ? w32 : (int32_t *)0);
        linear(&L->wo, o, x, SM_LIN_RES, L->act_lut, il, w32, -128 * b);
        b = rmsnorm(m, x, (const int16_t *)L->ffn_norm, c[1], a, il ? w32 : (int32_t *)0);
        linear(&L->w1, a, hq, SM_LIN_ACTLUT, L->act_lut, il, w32, b);     /* g = act_lut[hq + 128] */
        if (m->activation == SM_ACT_SWIGLU) {
            linear(&L->w3, a, u, SM_LIN_ACT, L->act_lut, il, w32, b);
            int32_t gm = c[4], gs = c[5], gr = rnd(gs);
            for (uint32_t f = 0; f < F; f++)
                hq[f] = (int8_t)clamp((mul_q15(hq[f] * u[f], gm) + gr) >> gs, -127, 127);
        }
        linear(&L->w2, hq, x, SM_LIN_RES, L->act_lut, il, w32, il ? widen(hq, F, w32) : 0);
    }
    if (!want_logits) return;
    /* output (6.5) */
    int32_t b = rmsnorm(m, x, (const int16_t *)m->final_norm, (int32_t)m->final_norm_shift, a, il ? w32 : (int32_t *)0);
    linear(&m->head, a, m->logits, SM_LIN_LOGIT, (const int8_t *)0, il, w32, b);
}
