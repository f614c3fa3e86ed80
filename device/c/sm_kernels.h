/* Int8 dot-product kernels of the Starmind runtime.
 *
 * sm_dot4_i8 is the hot loop of every matrix-vector product: four output rows
 * share each activation load.  On the RP2040 build it is hand-written Thumb
 * assembly (sm_kernels_m0.S, 21 cycles per 4 MACs = 5.25 cycles/MAC); on the
 * host and in any other build it is the portable C below.  The runtime itself
 * calls the whole-matrix forms (sm_linear4_i8: 4.875 cycles/MAC, the loop over row
 * groups and the requantisation inside the assembly; sm_wsum4_i8 for the attention's
 * weighted sum of the cached values).  The plain and 4x
 * unrolled C versions are kept for the kernel benchmark in chapter 06.
 */
#ifndef SM_KERNELS_H
#define SM_KERNELS_H
#include <stdint.h>

/* sum_i a[i] * b[i] */
int32_t sm_dot_i8_plain(const int8_t *a, const int8_t *b, int32_t n);
int32_t sm_dot_i8_unroll4(const int8_t *a, const int8_t *b, int32_t n);
/* out[r] = sum_i x[i] * w[r * stride + i], r = 0..3 */
void sm_dot4_i8_c(const int8_t *x, const int8_t *w, int32_t n, int32_t stride, int32_t *out);
/* Whole matrices, the per-token hot loops of sm_int8.c (n >= 1, n_groups >= 1).
 * sm_linear4_i8 (mode SM_LIN_*): for the rows r < 4 * n_groups of w (row r at w + r * stride),
 *     acc[r] = sum_i x[i] * w[r * stride + i], then with (m, s) = (rq[2r], rq[2r+1]) of REQUANT:
 *     SM_LIN_QK     int32 out[r] = acc[r]                                   (rq, lut unused)
 *     SM_LIN_ACT    int8  out[r] = clamp(REQUANT(acc[r], m, s), -127, 127)           LINEAR_ACT
 *     SM_LIN_RES    int32 out[r] = clamp(out[r] + REQUANT(acc[r], m, s), -32767, 32767)  LINEAR_RES
 *     SM_LIN_LOGIT  int32 out[r] = clamp(REQUANT(acc[r], m, s), -2^29, 2^29)       logits
 *     SM_LIN_ACTLUT int8  out[r] = lut[128 + clamp(REQUANT(acc[r], m, s), -127, 127)]   FFN W1 + act_lut
 * sm_wsum4_i8: int8 out[4g + r] = RSHR(sum_s p[s] * v[s * stride + 4g + r], 15) (the attention output:
 *     the probabilities times the cached values; |sum| <= 127 * 2^15, so it fits int8). */
enum { SM_LIN_QK, SM_LIN_ACT, SM_LIN_RES, SM_LIN_LOGIT, SM_LIN_ACTLUT, SM_LIN_ACTB };
/* (SM_LIN_ACTB, sm_linK_i8 only: uint8 out[r] = SM_LIN_ACT's value + 128, the biased value cache) */
void sm_linear4_i8_c(int mode, const int8_t *x, const int8_t *w, int32_t n, int32_t stride, void *out,
                     int32_t n_groups, const int32_t *rq, const int8_t *lut);
/* sm_linK_i8 (weights in SRAM, the layout of sm_int8.c's linear): the same for n_groups blocks of K = 8,
 *     4, 2 or 1 rows from the activations widened to int32 (sm_widen_i8), block g at w + K g n holding rows Kg..Kg+K-1 column by column as unsigned bytes,
 *     w[K g n + K i + j] = W[Kg + j][i] + 128, the sums starting at bias = -128 sum_i x[i]
 *     (mode SM_LIN_ACT, _ACTLUT, _RES, _LOGIT or _ACTB; rq and out from the block's first row); then
 *     tail (< K) more rows after them, in one block each of 4, 2 and 1 rows as tail asks. */
void sm_linK_i8_c(int mode, int K, const int32_t *x, const uint8_t *w, int32_t n, void *out, int32_t n_groups,
                  const int32_t *rq, const int8_t *lut, int32_t bias, int32_t tail);
/* sm_wsumK_i8 (weights in SRAM, K = 8, 4, 2 or 1): out[Kg + j] = RSHR(bias + sum_s p[s] * v[s * stride + Kg + j], 15)
 *     for g < n_groups, j < K, v unsigned (the cached values + 128), bias = -128 sum_s p[s]; int32 out (int8
 *     values, widened for sm_linK_i8); returns the sum of the outputs. */
int32_t sm_wsumK_i8_c(int K, const int32_t *p, const uint8_t *v, int32_t n_pos, int32_t stride, int32_t *out,
                      int32_t n_groups, int32_t bias);
void sm_wsum4_i8_c(const int32_t *p, const int8_t *v, int32_t n_pos, int32_t stride, int8_t *out, int32_t n_groups);
/* One head's softmax (FORMAT.md 6.4), in place (n >= 1): top = max sc, the exponentials
 * w[s] = EXP_LUT[REQUANT(top - sc[s], ms[0], ms[1])] (0 from index 1024 on), their sum W,
 * R = 2^30 / W, sc[s] = (w[s] * R) >> 15 (Q15 probabilities); returns sum_s sc[s]. */
uint32_t sm_softmax_c(int32_t *sc, uint32_t n, const int32_t *ms, const uint16_t *lut);
/* The rotary embedding of n_heads >= 1 heads of 2 half values, one after the other in v, in place (FORMAT.md 6.4;
 * v 2-byte aligned, C and S: the position's cos and sin rows, the same for every head):
 * (v[2j], v[2j+1]) -> clamp(RSHR(u0 C[j] - u1 S[j], 14)), clamp(RSHR(u0 S[j] + u1 C[j], 14)). */
void sm_rope_c(int8_t *v, const int16_t *C, const int16_t *S, uint32_t half, uint32_t n_heads);
/* RMSNorm's sum without eps (FORMAT.md 6.2): sum_c (uint32)(x[c] * x[c]) >> L, n >= 1. */
uint32_t sm_sumsq_c(const int32_t *x, uint32_t n, uint32_t L);
/* RMSNorm's scaling into int32 (the activations of sm_linK_i8, weights in SRAM), n >= 1:
 * y[c] = clamp(RSHR(RSHR(x[c] * inv, sh) * G[c], gs), -127, 127) (int32 products), returns sum_c y[c] */
int32_t sm_rmsn_c(const int32_t *x, const int16_t *G, int32_t *y, uint32_t n, int32_t inv, uint32_t sh, uint32_t gs);
/* y[c] = x[c] (int32, the activations of sm_linK_i8), returns sum_c x[c]; n >= 1 */
int32_t sm_widen_i8_c(const int8_t *x, uint32_t n, int32_t *y);

#if defined(__ARM_ARCH_6M__) && !defined(SM_NO_ASM)
void sm_dot4_i8_m0(const int8_t *x, const int8_t *w, int32_t n, int32_t stride, int32_t *out);
/* one assembly routine per mode (sm_kernels_m0.S); the QK one also names attention in cycle profiles */
#define SM_LIN_ARGS const int8_t *x, const int8_t *w, int32_t n, int32_t stride, void *out, int32_t n_groups, \
                    const int32_t *rq, const int8_t *lut
void sm_qk4_i8_m0(SM_LIN_ARGS);
void sm_linact4_i8_m0(SM_LIN_ARGS);
void sm_linres4_i8_m0(SM_LIN_ARGS);
void sm_linlogit4_i8_m0(SM_LIN_ARGS);
void sm_linactlut4_i8_m0(SM_LIN_ARGS);
void sm_wsum4_i8_m0(const int32_t *p, const int8_t *v, int32_t n_pos, int32_t stride, int8_t *out, int32_t n_groups);
#define sm_dot4_i8 sm_dot4_i8_m0
#define sm_linear4_i8(mode, x, w, n, stride, out, g, rq, lut)                                               \
    ((mode) == SM_LIN_QK ? sm_qk4_i8_m0(x, w, n, stride, out, g, rq, lut)                                  \
     : (mode) == SM_LIN_ACT ? sm_linact4_i8_m0(x, w, n, stride, out, g, rq, lut)                           \
     : (mode) == SM_LIN_RES ? sm_linres4_i8_m0(x, w, n, stride, out, g, rq, lut)                           \
     : (mode) == SM_LIN_LOGIT ? sm_linlogit4_i8_m0(x, w, n, stride, out, g, rq, lut)                       \
                              : sm_linactlut4_i8_m0(x, w, n, stride, out, g, rq, lut))
#define SM_LINK_ARGS const int32_t *x, const uint8_t *w, int32_t n, void *out, int32_t n_groups, const int32_t *rq, \
                     const int8_t *lut, int32_t bias, int32_t tail
void sm_linact8_i8_m0(SM_LINK_ARGS);
void sm_linres8_i8_m0(SM_LINK_ARGS);
void sm_linlogit8_i8_m0(SM_LINK_ARGS);
void sm_linactlut8_i8_m0(SM_LINK_ARGS);
void sm_linact4x_i8_m0(SM_LINK_ARGS);
void sm_linres4x_i8_m0(SM_LINK_ARGS);
void sm_linlogit4x_i8_m0(SM_LINK_ARGS);
void sm_linactlut4x_i8_m0(SM_LINK_ARGS);
void sm_linact2_i8_m0(SM_LINK_ARGS);
void sm_linres2_i8_m0(SM_LINK_ARGS);
void sm_linlogit2_i8_m0(SM_LINK_ARGS);
void sm_linactlut2_i8_m0(SM_LINK_ARGS);
void sm_linact1_i8_m0(SM_LINK_ARGS);
void sm_linres1_i8_m0(SM_LINK_ARGS);
void sm_linlogit1_i8_m0(SM_LINK_ARGS);
void sm_linactlut1_i8_m0(SM_LINK_ARGS);
void sm_linactb8_i8_m0(SM_LINK_ARGS);
void sm_linactb4x_i8_m0(SM_LINK_ARGS);
void sm_linactb2_i8_m0(SM_LINK_ARGS);
void sm_linactb1_i8_m0(SM_LINK_ARGS);
#define SM_WSUMK_ARGS const int32_t *p, const uint8_t *v, int32_t n_pos, int32_t stride, int32_t *out, int32_t n_groups, \
                      int32_t bias
int32_t sm_wsum8_i8_m0(SM_WSUMK_ARGS);
int32_t sm_wsum4x_i8_m0(SM_WSUMK_ARGS);
int32_t sm_wsum2_i8_m0(SM_WSUMK_ARGS);
int32_t sm_wsum1_i8_m0(SM_WSUMK_ARGS);
#define sm_wsumK_i8(K, p, v, n, stride, out, g, bias)                                                      \
    ((K) == 8 ? sm_wsum8_i8_m0(p, v, n, stride, out, g, bias) : (K) == 4 ? sm_wsum4x_i8_m0(p, v, n, stride, out, g, bias) \
     : (K) == 2 ? sm_wsum2_i8_m0(p, v, n, stride, out, g, bias) : sm_wsum1_i8_m0(p, v, n, stride, out, g, bias))
static inline void sm_linK_i8(int mode, int K, const int32_t *x, const uint8_t *w, int32_t n, void *out,
                              int32_t g, const int32_t *rq, const int8_t *lut, int32_t bias, int32_t tail)
{
#define SM_LINK_MODES(s)                                                                                    \
    (mode == SM_LIN_ACT ? sm_linact##s##_i8_m0 : mode == SM_LIN_RES ? sm_linres##s##_i8_m0                \
     : mode == SM_LIN_LOGIT ? sm_linlogit##s##_i8_m0 : mode == SM_LIN_ACTB ? sm_linactb##s##_i8_m0           \
     : sm_linactlut##s##_i8_m0)(x, w, n, out, g, rq, lut, bias, tail)
    if (K == 8) SM_LINK_MODES(8);
    else if (K == 4) SM_LINK_MODES(4x);
    else if (K == 2) SM_LINK_MODES(2);
    else SM_LINK_MODES(1);
#undef SM_LINK_MODES
}
#define sm_wsum4_i8 sm_wsum4_i8_m0
uint32_t sm_softmax_m0(int32_t *sc, uint32_t n, const int32_t *ms, const uint16_t *lut);   /* sm_ops_m0.S */
#define sm_softmax sm_softmax_m0
void sm_rope_m0(int8_t *v, const int16_t *C, const int16_t *S, uint32_t half, uint32_t n_heads);
#define sm_rope sm_rope_m0
uint32_t sm_sumsq_m0(const int32_t *x, uint32_t n, uint32_t L);
#define sm_sumsq sm_sumsq_m0
int32_t sm_widen_i8_m0(const int8_t *x, uint32_t n, int32_t *y);
#define sm_widen_i8 sm_widen_i8_m0
int32_t sm_rmsn_m0(const int32_t *x, const int16_t *G, int32_t *y, uint32_t n, int32_t inv, uint32_t sh, uint32_t gs);
#define sm_rmsn sm_rmsn_m0
#else
#define sm_dot4_i8 sm_dot4_i8_c
#define sm_linear4_i8 sm_linear4_i8_c
#define sm_linK_i8 sm_linK_i8_c
#define sm_wsumK_i8 sm_wsumK_i8_c
#define sm_wsum4_i8 sm_wsum4_i8_c
#define sm_softmax sm_softmax_c
#define sm_rope sm_rope_c
#define sm_sumsq sm_sumsq_c
#define sm_widen_i8 sm_widen_i8_c
#define sm_rmsn sm_rmsn_c
#endif

#endif
