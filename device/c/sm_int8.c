/* The int8 integer-only forward pass, exactly as FORMAT.md section 6. */
#include "sm_internal.h"
#include "sm_kernels.h"

/* RSHR: rounding arithmetic shift right (round half up); >> on int32 is arithmetic. */
static inline int32_t rshr(int32_t v, int32_t s)
{
    return s == 0 ? v : (int32_t)(v + (1 << (s - 1))) >> s;
}

/* REQUANT(acc, m, s) = RSHR(floor(acc * m / 2^15), s) with 32-bit products only. */
static inline int32_t requant(int32_t acc, int32_t m, int32_t s)
{
    int32_t hi = acc >> 15;
    uint32_t lo = (uint32_t)(acc & 32767);
    return rshr(hi * m + (int32_t)((lo * (uint32_t)m) >> 15), s);
}

static inline int32_t clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* acc[r] for rows r0..r0+3 (or fewer at the end), handed to `emit` one row at a time. */
#define FOR_EACH_ROW_ACC(mat, a, BODY)                                                        \
    do {                                                                                      \
        const int8_t *w_ = (const int8_t *)(mat)->w;                                          \
        uint32_t R_ = (mat)->rows, C_ = (mat)->cols, r_ = 0;                                  \
        int32_t acc4_[4];                                                                     \
        for (; r_ + 4 <= R_; r_ += 4) {                                                       \
            sm_dot4_i8((a), w_ + r_ * C_, (int32_t)C_, (int32_t)C_, acc4_);                   \
            for (uint32_t k_ = 0; k_ < 4; k_++) { uint32_t r = r_ + k_; int32_t acc = acc4_[k_]; BODY; } \
        }                                                                                     \
        for (; r_ < R_; r_++) {                                                               \
            uint32_t r = r_;                                                                  \
            int32_t acc = sm_dot_i8_unroll4((a), w_ + r_ * C_, (int32_t)C_);                  \
            BODY;                                                                             \
        }                                                                                     \
    } while (0)

/* LINEAR_ACT: out[r] = clamp(REQUANT(W a, rq[r]), -127, 127) */
static SM_HOT void linear_act(const sm_mat *W, const int8_t *a, int8_t *out)
{
    const int32_t *rq = W->rq;
    FOR_EACH_ROW_ACC(W, a, out[r] = (int8_t)clamp(requant(acc, rq[2 * r], rq[2 * r + 1]), -127, 127));
}

/* LINEAR_RES: x[r] = clamp(x[r] + REQUANT(W a, rq[r]), -32767, 32767) */
static SM_HOT void linear_res(const sm_mat *W, const int8_t *a, int32_t *x)
{
    const int32_t *rq = W->rq;
    FOR_EACH_ROW_ACC(W, a, x[r] = clamp(x[r] + requant(acc, rq[2 * r], rq[2 * r + 1]), -32767, 32767));
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
static SM_HOT void rmsnorm(const sm_model *m, const int32_t *x, const int16_t *G, int32_t gs, int8_t *y)
{
    uint32_t D = m->dim, L = 0;
    while ((1u << L) < D) L++;                   /* ceil(log2(dim)) */
    int32_t NF = 15 - (int32_t)((L + 1) / 2);
    uint32_t S = m->eps_q;
    for (uint32_t c = 0; c < D; c++) S += (uint32_t)(x[c] * x[c]) >> L;
    int32_t e = 0;
    while (S < (1u << 28)) { S <<= 2; e++; }
    if (S >= (1u << 30)) { S >>= 2; e--; }
    int32_t inv = (int32_t)((1u << 29) / isqrt(S));
    int32_t sh = 29 - e - NF;
    for (uint32_t c = 0; c < D; c++) {
        int32_t n = rshr(x[c] * inv, sh);
        y[c] = (int8_t)clamp(rshr(n * G[c], gs), -127, 127);
    }
}

static void rope(const sm_model *m, int8_t *v, uint32_t pos)
{
    uint32_t hd = m->head_dim, half = hd / 2;
    const int16_t *C = (const int16_t *)m->rope_cos + pos * half, *Sn = (const int16_t *)m->rope_sin + pos * half;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        int8_t *u = v + h * hd;
        for (uint32_t j = 0; j < half; j++) {
            int32_t u0 = u[2 * j], u1 = u[2 * j + 1];
            u[2 * j] = (int8_t)clamp(rshr(u0 * C[j] - u1 * Sn[j], 14), -127, 127);
            u[2 * j + 1] = (int8_t)clamp(rshr(u0 * Sn[j] + u1 * C[j], 14), -127, 127);
        }
    }
}

/* Causal softmax attention of q over cached positions 0..pos of one layer (section 6.4). */
static SM_HOT void attention(const sm_model *m, const int32_t *consts, const int8_t *q, const int8_t *K,
                             const int8_t *Vc, uint32_t pos, int8_t *o)
{
    uint32_t D = m->dim, hd = m->head_dim, n = pos + 1;
    int32_t *sc = (int32_t *)m->scores, *acc = m->att_acc;
    const uint16_t *lut = m->exp_lut;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const int8_t *qh = q + h * hd, *Kh = K + h * hd, *Vh = Vc + h * hd;
        uint32_t s = 0;
        for (; s + 4 <= n; s += 4) sm_dot4_i8(qh, Kh + s * D, (int32_t)hd, (int32_t)D, sc + s);
        for (; s < n; s++) sc[s] = sm_dot_i8_unroll4(qh, Kh + s * D, (int32_t)hd);
        int32_t top = sc[0];
        for (s = 1; s < n; s++) if (sc[s] > top) top = sc[s];
        uint32_t W = 0;
        for (s = 0; s < n; s++) {
            int32_t idx = requant(top - sc[s], consts[2], consts[3]);
            sc[s] = idx < 1024 ? lut[idx] : 0;
            W += (uint32_t)sc[s];
        }
        uint32_t R = (1u << 30) / W;
        for (uint32_t d = 0; d < hd; d++) acc[d] = 0;
        for (s = 0; s < n; s++) {
            int32_t p = (int32_t)(((uint32_t)sc[s] * R) >> 15);
            if (!p) continue;
            const int8_t *vs = Vh + s * D;
            for (uint32_t d = 0; d < hd; d++) acc[d] += p * vs[d];
        }
        for (uint32_t d = 0; d < hd; d++) o[h * hd + d] = (int8_t)rshr(acc[d], 15);
    }
}

SM_HOT void sm_step_int8(sm_model *m, uint32_t token, uint32_t pos, int want_logits)
{
    uint32_t D = m->dim, F = m->ffn_hidden;
    int32_t *x = (int32_t *)m->x;
    int8_t *a = (int8_t *)m->a, *q = (int8_t *)m->q, *o = (int8_t *)m->o, *hq = (int8_t *)m->h, *u = (int8_t *)m->u;
    /* embedding (6.3) */
    const int8_t *e = (const int8_t *)m->tok_emb.w + token * D;
    int32_t em = m->tok_emb.rq[2 * token], es = m->tok_emb.rq[2 * token + 1];
    for (uint32_t c = 0; c < D; c++) x[c] = rshr(e[c] * em, es);
    if (m->pos == SM_POS_LEARNED) {
        const int8_t *pe = (const int8_t *)m->pos_emb.w + pos * D;
        int32_t pm = m->pos_emb.rq[2 * pos], ps = m->pos_emb.rq[2 * pos + 1];
        for (uint32_t c = 0; c < D; c++) x[c] += rshr(pe[c] * pm, ps);
    }
    for (uint32_t c = 0; c < D; c++) x[c] = clamp(x[c], -32767, 32767);
    /* layers (6.4) */
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const sm_layer *L = &m->layers[i];
        const int32_t *c = L->consts;
        int8_t *K = (int8_t *)m->kc + i * m->n_ctx * D, *V = (int8_t *)m->vc + i * m->n_ctx * D;
        rmsnorm(m, x, (const int16_t *)L->attn_norm, c[0], a);
        linear_act(&L->wq, a, q);
        linear_act(&L->wk, a, K + pos * D);
        linear_act(&L->wv, a, V + pos * D);
        if (m->pos == SM_POS_ROPE) { rope(m, q, pos); rope(m, K + pos * D, pos); }
        attention(m, c, q, K, V, pos, o);
        linear_res(&L->wo, o, x);
        rmsnorm(m, x, (const int16_t *)L->ffn_norm, c[1], a);
        linear_act(&L->w1, a, hq);
        for (uint32_t f = 0; f < F; f++) hq[f] = L->act_lut[hq[f] + 128];
        if (m->activation == SM_ACT_SWIGLU) {
            linear_act(&L->w3, a, u);
            for (uint32_t f = 0; f < F; f++) hq[f] = (int8_t)clamp(requant(hq[f] * u[f], c[4], c[5]), -127, 127);
        }
        linear_res(&L->w2, hq, x);
    }
    if (!want_logits) return;
    /* output (6.5) */
    rmsnorm(m, x, (const int16_t *)m->final_norm, (int32_t)m->final_norm_shift, a);
    int32_t *logits = (int32_t *)m->logits;
    const int32_t *rq = m->head.rq;
    FOR_EACH_ROW_ACC(&m->head, a, logits[r] = clamp(requant(acc, rq[2 * r], rq[2 * r + 1]), -(1 << 29), 1 << 29));
}
