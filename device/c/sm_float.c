/* The float32 forward pass (FORMAT.md sections 3 and 4.1): the float baseline.
 *
 * Plain float C.  On the RP2040 the compiler's soft-float calls (__aeabi_fadd,
 * fmul, ...) go to the boot ROM's float routines, as in pico-sdk (see
 * sm_rom_float.c); expf/erff/sqrtf come from newlib's libm on top of them.
 * Not bit-exact with PyTorch: golden vectors give an absolute tolerance.
 */
#include <math.h>
#include "sm_internal.h"

static void matvec(const sm_mat *W, const float *a, float *out)
{
    const float *w = (const float *)W->w;
    for (uint32_t r = 0; r < W->rows; r++) {
        const float *row = w + r * W->cols;
        float acc = 0.0f;
        for (uint32_t c = 0; c < W->cols; c++) acc += row[c] * a[c];
        out[r] = acc;
    }
}

static void rmsnorm(uint32_t D, const float *x, const float *w, float *y)
{
    float ss = 0.0f;
    for (uint32_t c = 0; c < D; c++) ss += x[c] * x[c];
    float inv = 1.0f / sqrtf(ss / (float)D + 1e-5f);
    for (uint32_t c = 0; c < D; c++) y[c] = x[c] * inv * w[c];
}

static float silu(float v) { return v / (1.0f + expf(-v)); }
static float gelu(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

static void rope(const sm_model *m, float *v, uint32_t pos)
{
    uint32_t hd = m->head_dim, half = hd / 2;
    const float *C = (const float *)m->rope_cos + pos * half, *Sn = (const float *)m->rope_sin + pos * half;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        float *u = v + h * hd;
        for (uint32_t j = 0; j < half; j++) {
            float u0 = u[2 * j], u1 = u[2 * j + 1];
            u[2 * j] = u0 * C[j] - u1 * Sn[j];
            u[2 * j + 1] = u0 * Sn[j] + u1 * C[j];
        }
    }
}

static void attention(const sm_model *m, const float *q, const float *K, const float *V, uint32_t pos, float *o)
{
    uint32_t D = m->dim, hd = m->head_dim, n = pos + 1;
    float *sc = (float *)m->scores, scale = 1.0f / sqrtf((float)hd);
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const float *qh = q + h * hd;
        float top = -INFINITY, sum = 0.0f;
        for (uint32_t s = 0; s < n; s++) {
            const float *k = K + s * D + h * hd;
            float dot = 0.0f;
            for (uint32_t d = 0; d < hd; d++) dot += qh[d] * k[d];
            sc[s] = dot * scale;
            if (sc[s] > top) top = sc[s];
        }
        for (uint32_t s = 0; s < n; s++) { sc[s] = expf(sc[s] - top); sum += sc[s]; }
        float *oh = o + h * hd;
        for (uint32_t d = 0; d < hd; d++) oh[d] = 0.0f;
        for (uint32_t s = 0; s < n; s++) {
            const float *v = V + s * D + h * hd;
            float p = sc[s] / sum;
            for (uint32_t d = 0; d < hd; d++) oh[d] += p * v[d];
        }
    }
}

void sm_step_f32(sm_model *m, uint32_t token, uint32_t pos, int want_logits)
{
    uint32_t D = m->dim, F = m->ffn_hidden;
    float *x = (float *)m->x, *a = (float *)m->a, *q = (float *)m->q, *o = (float *)m->o;
    float *h = (float *)m->h, *u = (float *)m->u;
    const float *e = (const float *)m->tok_emb.w + token * D;
    for (uint32_t c = 0; c < D; c++) x[c] = e[c];
    if (m->pos == SM_POS_LEARNED) {
        const float *pe = (const float *)m->pos_emb.w + pos * D;
        for (uint32_t c = 0; c < D; c++) x[c] += pe[c];
    }
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const sm_layer *L = &m->layers[i];
        float *K = (float *)m->kc + i * m->n_ctx * D, *V = (float *)m->vc + i * m->n_ctx * D;
        rmsnorm(D, x, (const float *)L->attn_norm, a);
        matvec(&L->wq, a, q);
        matvec(&L->wk, a, K + pos * D);
        matvec(&L->wv, a, V + pos * D);
        if (m->pos == SM_POS_ROPE) { rope(m, q, pos); rope(m, K + pos * D, pos); }
        attention(m, q, K, V, pos, o);
        matvec(&L->wo, o, a);
        for (uint32_t c = 0; c < D; c++) x[c] += a[c];
        rmsnorm(D, x, (const float *)L->ffn_norm, a);
        matvec(&L->w1, a, h);
        if (m->activation == SM_ACT_SWIGLU) {
            matvec(&L->w3, a, u);
            for (uint32_t f = 0; f < F; f++) h[f] = silu(h[f]) * u[f];
        } else {
            for (uint32_t f = 0; f < F; f++) h[f] = m->activation == SM_ACT_GELU ? gelu(h[f]) : silu(h[f]);
        }
        matvec(&L->w2, h, a);
        for (uint32_t c = 0; c < D; c++) x[c] += a[c];
    }
    if (!want_logits) return;
    rmsnorm(D, x, (const float *)m->final_norm, a);
    matvec(&m->head, a, (float *)m->logits);
}
