/* Starmind: a tiny-transformer runtime for microcontrollers (portable C99, no heap).
 *
 * Runs .smd model files (device/FORMAT.md) bit-exactly like the host reference
 * engine (starmind_lib/intengine.py): the int8 integer-only scheme, plus a
 * float32 path for the float baseline.  Weights are read in place from the file
 * image (memory-mapped flash, XIP) or copied into the arena (SM_WEIGHTS_IN_SRAM).
 * All working memory comes from one caller-provided arena, sized by
 * sm_arena_needed(); nothing is allocated per token.
 *
 *     static uint8_t arena[96 * 1024];
 *     sm_model m;
 *     int err = sm_load(&m, file, file_size, arena, sizeof arena, 0, 0);
 *     if (err) { puts(sm_strerror(err)); ... }
 *     sm_prefill(&m, prompt, n_prompt);               // logits for the next token
 *     uint32_t rng = sm_rng_seed(seed);
 *     for (i = 0; i < n; i++) {
 *         int tok = sm_sample(&m, temperature_q8, top_k, &rng);
 *         sm_forward(&m, tok);
 *     }
 *
 * Build: any C99 compiler; on the RP2040 add sm_kernels_m0.S and sm_ops_m0.S (Thumb kernels)
 * and, for the float path, sm_rom_float.c (boot ROM float routines).
 */
#ifndef STARMIND_H
#define STARMIND_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sm_status {
    SM_OK = 0,
    SM_ERR_FORMAT = -1,       /* inconsistent header, tensor table or vocabulary */
    SM_ERR_NO_MEMORY = -2,    /* the arena is smaller than sm_arena_needed() */
    SM_ERR_ARG = -3,          /* bad argument (token id out of range, NULL pointer, ...) */
    SM_ERR_CRC = -4,          /* a CRC-32 does not match */
    SM_ERR_VERSION = -5,      /* unknown format version */
    SM_ERR_MAGIC = -6,        /* not a .smd file */
    SM_ERR_TRUNCATED = -7,    /* the file is shorter than its header says */
    SM_ERR_UNSUPPORTED = -8,  /* a valid file this runtime cannot run */
    SM_ERR_CONTEXT_FULL = -9, /* max_seq_len tokens already processed */
    /* format version 2 */
    SM_ERR_SPECIALS = -10,    /* special-token ids or the stop rule are invalid */
    SM_ERR_ENCODER = -11,     /* the encoder section (folding, classes, merges, char map) is invalid */
    SM_ERR_ROPE = -12,        /* a rotary table differs from its formula */
    SM_ERR_NONFINITE = -13,   /* a float32 file holds NaN or infinity */
    SM_ERR_PACKING = -14,     /* tensors are not packed in table order with 4-byte alignment */
    SM_ERR_ENCODE = -15,      /* the text cannot be encoded (bad UTF-8, no <unk>, too many tokens) */
    SM_ERR_NO_ENCODER = -16,  /* the file has no encoder (version 1 or encoder none) */
};

enum sm_flags {
    SM_WEIGHTS_IN_SRAM = 1,   /* copy the whole file into the arena (faster than XIP flash) */
    SM_NO_KV_CACHE = 2,       /* recompute every past position each step (for the study) */
    SM_WINDOW = 4,            /* continue past max_seq_len by the window restart (FORMAT.md 6.7) */
};

#include "sm_model.h"

/* Check the file (FORMAT.md section 2 order: sizes, CRCs, header, table, vocabulary,
 * value ranges) and lay out the arena.  n_ctx = the longest sequence to be run
 * (prompt + generated - 1); 0 means the model's max_seq_len.  The KV cache is
 * sized by it, so a short context lets a large model fit.  Returns SM_OK or a
 * negative sm_status; never reads outside [file, file + file_size). */
int sm_load(sm_model *m, const uint8_t *file, uint32_t file_size, uint8_t *arena, uint32_t arena_size,
            uint32_t flags, uint32_t n_ctx);
/* Arena bytes the file needs with these flags and context (0 with *err set if the file is bad). */
uint32_t sm_arena_needed(const uint8_t *file, uint32_t file_size, uint32_t flags, uint32_t n_ctx, int *err);
/* Recompute both CRCs of a file image in place (for the fuzzer: mutants that reach the deeper checks). */
void sm_refresh_crcs(uint8_t *file, uint32_t file_size);
/* Forget the context (position 0). */
void sm_reset(sm_model *m);
/* Feed one token at the next position; afterwards sm_logits() are the next-token logits. */
int sm_forward(sm_model *m, uint32_t token);
/* Feed a prompt (same as sm_forward per token). */
int sm_prefill(sm_model *m, const uint32_t *tokens, uint32_t n);
/* Next-token logits: int32 fixed point (int8 scheme) or float (float32 scheme); n = vocab size. */
const int32_t *sm_logits_i32(const sm_model *m);
const float *sm_logits_f32(const sm_model *m);
/* Draw the next token from the current logits (FORMAT.md "Sampling"). */
int sm_sample(const sm_model *m, uint32_t temperature_q8, uint32_t top_k, uint32_t *rng_state);
uint32_t sm_rng_seed(uint32_t seed);
/* The bytes of token id t in the model's vocabulary (NULL if out of range). */
const uint8_t *sm_token_bytes(const sm_model *m, uint32_t t, uint32_t *len);
const char *sm_strerror(int err);
/* FORMAT.md section 11: the ids of UTF-8 `text` by the file's encoder (no BOS/EOS added).
 * Returns SM_OK, SM_ERR_NO_ENCODER or SM_ERR_ENCODE; *n_ids = the number written (sm_encode.c). */
int sm_encode(const sm_model *m, const uint8_t *text, uint32_t len, uint32_t *ids, uint32_t max_ids,
              uint32_t *n_ids);
/* Whether generation ends after token t (the file's stop rule: stop_at_eos and t == eos_id). */
int sm_is_stop(const sm_model *m, uint32_t t);
uint32_t sm_crc32(const uint8_t *data, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
