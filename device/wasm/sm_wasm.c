/* The WebAssembly face of the Starmind C runtime (device/c, compiled unchanged).
 *
 * One model at a time, the way `starmind board generate` runs a format-v2 file on a
 * board: the prompt is encoded by the file's own encoder (sm_encode, FORMAT.md 11), no
 * BOS is added, the window restart continues past max_seq_len (SM_WINDOW, 6.7), tokens
 * are drawn by the integer xorshift32 sampler (section 7) and generation ends after EOS
 * when the file's stop rule says so.  JavaScript (starmind-wasm.js) copies the file and
 * the prompt into buffers from smw_alloc and calls:
 *
 *     smw_load(file, size)                 -> 0 or a negative sm_status
 *     smw_encode(text, len)                -> number of ids (in smw_ids()) or a negative sm_status
 *     smw_start(n_prompt, seed)            -> 0 or a negative sm_status (prefill, reseed)
 *     smw_next(temperature_q8, top_k)      -> the next token id, or a negative sm_status
 *     smw_token_bytes(id) / smw_token_len(id), smw_is_stop(id), smw_info(i)
 */
#include <stdlib.h>
#include "starmind.h"

#define SMW_MAX_IDS 4096u

static sm_model model;
static uint8_t *arena;
static int loaded;
static uint32_t ids[SMW_MAX_IDS];
static uint32_t rng;
static int32_t pending = -1;   /* the last token drawn, fed to the model before the next draw */

#define EXPORT(name) __attribute__((export_name(#name)))

EXPORT(smw_alloc) void *smw_alloc(uint32_t n) { return malloc(n ? n : 1); }
EXPORT(smw_free) void smw_free(void *p) { free(p); }
EXPORT(smw_ids) uint32_t *smw_ids(void) { return ids; }

/* The file must stay where it is while the model is in use (weights are read in place, as from XIP flash). */
EXPORT(smw_load) int smw_load(const uint8_t *file, uint32_t size)
{
    int err = SM_OK;
    loaded = 0;
    pending = -1;
    free(arena);
    arena = NULL;
    uint32_t need = sm_arena_needed(file, size, SM_WINDOW, 0, &err);
    if (err) return err;
    arena = malloc(need ? need : 1);
    if (!arena) return SM_ERR_NO_MEMORY;
    err = sm_load(&model, file, size, arena, need, SM_WINDOW, 0);
    if (err) return err;
    loaded = 1;
    return SM_OK;
}

EXPORT(smw_encode) int smw_encode(const uint8_t *text, uint32_t len)
{
    uint32_t n = 0;
    if (!loaded) return SM_ERR_ARG;
    int err = sm_encode(&model, text, len, ids, SMW_MAX_IDS, &n);
    return err ? err : (int)n;
}

/* Prefill ids[0..n) and reseed; the ids may come from smw_encode or be written by the caller. */
EXPORT(smw_start) int smw_start(uint32_t n, uint32_t seed)
{
    if (!loaded || n == 0 || n > SMW_MAX_IDS) return SM_ERR_ARG;
    sm_reset(&model);
    pending = -1;
    rng = sm_rng_seed(seed);
    return sm_prefill(&model, ids, n);
}

EXPORT(smw_next) int smw_next(uint32_t temperature_q8, uint32_t top_k)
{
    if (!loaded) return SM_ERR_ARG;
    if (pending >= 0) {
        int err = sm_forward(&model, (uint32_t)pending);
        if (err) return err;
    }
    int tok = sm_sample(&model, temperature_q8, top_k, &rng);
    pending = tok;
    return tok;
}

EXPORT(smw_is_stop) int smw_is_stop(uint32_t t) { return loaded && sm_is_stop(&model, t); }

EXPORT(smw_token_bytes) const uint8_t *smw_token_bytes(uint32_t t)
{
    uint32_t len = 0;
    return loaded ? sm_token_bytes(&model, t, &len) : NULL;
}

EXPORT(smw_token_len) uint32_t smw_token_len(uint32_t t)
{
    uint32_t len = 0;
    if (!loaded || !sm_token_bytes(&model, t, &len)) return 0;
    return len;
}

/* 0 vocab_size, 1 dim, 2 n_layers, 3 max_seq_len, 4 is_float, 5 version, 6 encoder, 7 arena bytes,
 * 8 window restarts so far, 9 bos_id, 10 eos_id. */
EXPORT(smw_info) uint32_t smw_info(uint32_t i)
{
    const sm_model *m = &model;
    uint32_t v[] = {m->vocab_size, m->dim, m->n_layers, m->max_seq_len, m->is_float, m->version,
                    m->encoder, m->arena_used, m->restarts, m->bos_id, m->eos_id};
    return loaded && i < sizeof v / sizeof v[0] ? v[i] : 0;
}

EXPORT(smw_strerror_ptr) const char *smw_strerror_ptr(int err) { return sm_strerror(err); }
