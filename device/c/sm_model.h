/* The loaded model (part of starmind.h; fields are read-only for callers). */
#ifndef SM_MODEL_H
#define SM_MODEL_H
#include <stdint.h>

typedef struct {
    const void *w;          /* [rows, cols] row-major: int8 (int8 scheme) or float */
    const int32_t *rq;      /* int8 scheme: per-row (m, s) of REQUANT / MULSHIFT */
    uint32_t rows, cols;
} sm_mat;

typedef struct {
    const int32_t *consts;              /* int8: [attn_norm_shift, ffn_norm_shift, att_m, att_s, glu_m, glu_s, 0, 0] */
    const void *attn_norm, *ffn_norm;   /* int16 gains or float weights */
    sm_mat wq, wk, wv, wo, w1, w3, w2;  /* w3 only for swiglu */
    const int8_t *act_lut;              /* int8: 256 entries */
} sm_layer;

typedef struct sm_model {
    /* architecture (FORMAT.md section 2.1) */
    uint32_t is_float, vocab_size, dim, n_layers, n_heads, head_dim, ffn_hidden;
    uint32_t activation, pos, tied, max_seq_len, logit_frac, eps_q, final_norm_shift;
    /* tensors, pointing into the file image (flash) or its copy in the arena */
    const uint8_t *file;
    uint32_t file_size;
    const uint8_t *vocab;
    uint32_t vocab_bytes;
    const uint16_t *exp_lut;
    sm_mat tok_emb, pos_emb, head;
    const void *rope_cos, *rope_sin, *final_norm;
    sm_layer *layers;                   /* n_layers entries, in the arena */
    /* run state */
    uint32_t flags, n_ctx, pos_next, arena_used;
    uint32_t *tokens;                   /* history, for SM_NO_KV_CACHE */
    void *x, *a, *q, *o, *h, *u, *logits;  /* work vectors (int32/int8 or float) */
    int32_t *att_acc;                   /* int8: [dim] (weights in SRAM: [max(dim, ffn_hidden)]), the widened activations */
    void *scores;                       /* [n_ctx] */
    void *kc, *vc;                      /* KV cache [n_layers][n_ctx][dim] */
    /* format version 2: special tokens, stop rule, encoder (FORMAT.md 2.4); none = 0xFFFFFFFF */
    uint32_t version, bos_id, eos_id, unk_id, stop_at_eos, lowercase, encoder, n_merges, n_fold, n_classes;
    const uint8_t *fold, *classes, *merges;   /* u32 pairs, u32 pairs, u16 triples (little-endian) */
    uint32_t restarts;                  /* window restarts so far (SM_WINDOW) */
} sm_model;

#endif
