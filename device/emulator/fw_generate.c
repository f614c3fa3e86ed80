/* A model run on the emulated Pico: load, prefill, generate, with BKPT markers.
 *
 * The model file is memory-mapped in flash at FW_MODEL_ADDR; with
 * FW_WEIGHTS_IN_SRAM the runtime copies it into the arena first (part of the
 * "load" interval).  The arena is all the SRAM between .bss and the stack.
 */
#include <stddef.h>
#include <stdint.h>
#include "fw_protocol.h"
#include "starmind.h"

#define MARK(code) __asm volatile("bkpt %0" ::"i"(code) : "memory")

static sm_model model;

int fw_generate(const fw_params *p, volatile fw_result *res, uint8_t *arena, size_t arena_size)
{
    const uint8_t *file = (const uint8_t *)FW_MODEL_ADDR;
    uint32_t flags = 0;
    if (p->flags & FW_WEIGHTS_IN_SRAM) flags |= SM_WEIGHTS_IN_SRAM;
    if (p->flags & FW_NO_KV_CACHE) flags |= SM_NO_KV_CACHE;
    if (p->flags & FW_WINDOW) flags |= SM_WINDOW; /* past max_seq_len: the window restart (FORMAT.md 6.7) */
    int err = SM_OK;
    /* the context this run needs: the KV cache is sized by it, not by max_seq_len (with the
     * window, the runtime sizes it by max_seq_len) */
    uint32_t n_ctx = p->n_prompt + (p->n_gen ? p->n_gen - 1 : 0);
    res->arena_used = sm_arena_needed(file, p->model_size, flags, n_ctx, &err);
    if (err) return err;
    MARK(FW_MARK_LOAD_START);
    err = sm_load(&model, file, p->model_size, arena, (uint32_t)arena_size, flags, n_ctx);
    MARK(FW_MARK_LOAD_DONE);
    if (err) return err;
    res->n_logits = model.vocab_size;
    res->reserved[0] = model.is_float; /* the harness dumps logits as float32 or int32 */
    res->logits_addr = model.is_float ? (uint32_t)sm_logits_f32(&model) : (uint32_t)sm_logits_i32(&model);
    err = sm_prefill(&model, p->prompt, p->n_prompt);
    MARK(FW_MARK_PREFILL_DONE);
    if (err) return err;
    uint32_t rng = sm_rng_seed(p->seed);
    uint32_t n = p->n_gen < FW_MAX_OUT ? p->n_gen : FW_MAX_OUT;
    for (uint32_t i = 0; i < n; i++) {
        int tok = sm_sample(&model, p->temperature_q8, p->top_k, &rng);
        if (tok < 0) return tok;
        res->out[i] = (uint32_t)tok;
        res->n_out = i + 1;
        res->current_token = (uint32_t)tok;
        MARK(FW_MARK_TOKEN);
        if (i + 1 < n && (err = sm_forward(&model, (uint32_t)tok)) != SM_OK) return err;
    }
    return SM_OK;
}
