/* Int8 dot-product kernels of the Starmind runtime.
 *
 * sm_dot4_i8 is the hot loop of every matrix-vector product: four output rows
 * share each activation load.  On the RP2040 build it is hand-written Thumb
 * assembly (sm_kernels_m0.S, 21 cycles per 4 MACs = 5.25 cycles/MAC); on the
 * host and in any other build it is the portable C below.  The plain and 4x
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

#if defined(__ARM_ARCH_6M__) && !defined(SM_NO_ASM)
void sm_dot4_i8_m0(const int8_t *x, const int8_t *w, int32_t n, int32_t stride, int32_t *out);
#define sm_dot4_i8 sm_dot4_i8_m0
#else
#define sm_dot4_i8 sm_dot4_i8_c
#endif

#endif
