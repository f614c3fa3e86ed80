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
