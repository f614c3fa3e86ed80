/* Internal interfaces between the runtime's files (not part of the public API). */
#ifndef SM_INTERNAL_H
#define SM_INTERNAL_H
#include "starmind.h"

/* One position through the network: K/V of `pos` go to the cache; logits only if want_logits. */
void sm_step_int8(sm_model *m, uint32_t token, uint32_t pos, int want_logits);
void sm_step_f32(sm_model *m, uint32_t token, uint32_t pos, int want_logits);

/* Weights in SRAM (int8 scheme): sm_load stores every matrix of a linear layer (and the head, the tied
 * embedding with it) with its first 8 * floor(rows / 8) rows in blocks of 8 rows, column by column, as
 * unsigned bytes (sm_lin8_i8 in sm_kernels.h); the other rows stay as in the file. */
#define SM_INTERLEAVED(m) (((m)->flags & SM_WEIGHTS_IN_SRAM) && !(m)->is_float)

#define SM_ACT_SILU 0
#define SM_ACT_GELU 1
#define SM_ACT_SWIGLU 2
#define SM_POS_NONE 0
#define SM_POS_LEARNED 1
#define SM_POS_ROPE 2
/* Float models are sampled through the integer sampler with logits in this fixed point. */
#define SM_FLOAT_LOGIT_FRAC 10

#if defined(__GNUC__) && defined(__ARM_ARCH_6M__)
#define SM_HOT __attribute__((section(".time_critical.starmind")))
#else
#define SM_HOT
#endif
#endif
