/* Deterministic mutation fuzzer of the .smd loader (run under ASan + UBSan).
 *
 *   starmind_fuzz N_ITERATIONS SEED MODEL.smd [MODEL.smd ...]
 *
 * Each iteration takes one of the reference models, applies 1-4 mutations
 * (bit flips, bytes set to boundary values, 32-bit header fields overwritten
 * with boundary values, truncation) and loads the result.  Half of the
 * mutants get their CRCs recomputed (sm_refresh_crcs) so that the structural
 * checks behind the CRC are exercised too.  A mutant must either be rejected
 * with an error code or load and run a few steps without a memory error
 * (the sanitizers abort the process on one).  Prints a JSON summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "starmind.h"

#define MAX_ARENA (8u << 20)

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return *s = x;
}

static uint8_t *read_file(const char *path, uint32_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *size = (uint32_t)n;
    return buf;
}

static const uint32_t boundary[] = {0, 1, 2, 3, 4, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
                                    0x7fffffff, 0x80000000u, 0xfffffffe, 0xffffffff};

static uint32_t mutate(uint8_t *buf, uint32_t size, uint32_t *rng)
{
    uint32_t n_mut = 1 + xorshift(rng) % 4;
    for (uint32_t k = 0; k < n_mut && size; k++) {
        uint32_t kind = xorshift(rng) % 10, pos;
        switch (kind) {
        case 0: case 1: /* flip a bit, most often in the header and tables (first 512 bytes) */
            pos = xorshift(rng) % (kind == 0 && size > 512 ? 512 : size);
            buf[pos] ^= (uint8_t)(1u << (xorshift(rng) % 8));
            break;
        case 2: /* a byte set to a boundary value */
            buf[xorshift(rng) % size] = (uint8_t)boundary[xorshift(rng) % 10];
            break;
        case 3: case 4: case 5: /* an aligned 32-bit field in the first 1 KB set to a boundary value */
            if (size >= 4) {
                uint32_t lim = size < 1024 ? size : 1024;
                pos = (xorshift(rng) % (lim / 4)) * 4;
                uint32_t v = kind == 5 ? size + (xorshift(rng) % 9) - 4
                                       : boundary[xorshift(rng) % (sizeof boundary / sizeof boundary[0])];
                memcpy(buf + pos, &v, 4);
            }
            break;
        case 8: /* version 2: a text word (specials, flags, encoder counts) set to a boundary value */
            if (size >= 128 && buf[16] == 2) {
                pos = 96 + 4 * (xorshift(rng) % 8);
                uint32_t v = boundary[xorshift(rng) % (sizeof boundary / sizeof boundary[0])];
                memcpy(buf + pos, &v, 4);
            }
            break;
        case 9: /* a byte in the last 2 KB of the header: vocabulary, folding, classes, merges */
            if (size >= 32) {
                uint32_t hs, lo;
                memcpy(&hs, buf + 20, 4);
                if (hs <= size - 32 && hs > 64) {
                    lo = hs > 2048 ? 32 + hs - 2048 : 96;
                    buf[lo + xorshift(rng) % (32 + hs - lo)] = (uint8_t)xorshift(rng);
                }
            }
            break;
        case 6: /* truncate */
            size = xorshift(rng) % size;
            break;
        default: /* a random byte */
            buf[xorshift(rng) % size] = (uint8_t)xorshift(rng);
            break;
        }
    }
    return size;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s N_ITERATIONS SEED MODEL.smd [MODEL.smd ...]\n", argv[0]);
        return 2;
    }
    uint32_t iters = (uint32_t)strtoul(argv[1], NULL, 10);
    uint32_t rng = (uint32_t)strtoul(argv[2], NULL, 10) * 2654435761u + 1u;
    int n_models = argc - 3;
    uint8_t *models[64];
    uint32_t sizes[64];
    for (int i = 0; i < n_models && i < 64; i++) {
        models[i] = read_file(argv[3 + i], &sizes[i]);
        if (!models[i]) { fprintf(stderr, "cannot read %s\n", argv[3 + i]); return 2; }
    }
    uint32_t counts[32] = {0}, loaded = 0, ran = 0, encoded = 0;
    for (uint32_t it = 0; it < iters; it++) {
        int which = (int)(xorshift(&rng) % (uint32_t)n_models);
        uint32_t size = sizes[which];
        /* an exact-size heap copy, so ASan sees any read past the end of the file */
        uint8_t *buf = malloc(size ? size : 1);
        memcpy(buf, models[which], size);
        size = mutate(buf, size, &rng);
        if (xorshift(&rng) & 1) sm_refresh_crcs(buf, size);
        uint8_t *copy = malloc(size ? size : 1);
        memcpy(copy, buf, size);
        free(buf);
        int err = SM_OK;
        uint32_t flags = xorshift(&rng) % 8; /* weights in SRAM, no KV cache, window */
        uint32_t needed = sm_arena_needed(copy, size, flags, 8, &err);
        if (!err && needed > MAX_ARENA) err = SM_ERR_NO_MEMORY;
        uint8_t *arena = NULL;
        sm_model m;
        if (!err) {
            arena = malloc(needed ? needed : 1);
            err = sm_load(&m, copy, size, arena, needed, flags, 8);
        }
        if (!err) {
            loaded++;
            uint32_t prompt[3] = {0, 1 % m.vocab_size, 2 % m.vocab_size}, r = sm_rng_seed(it);
            if (sm_prefill(&m, prompt, 3) == SM_OK) {
                int tok = sm_sample(&m, it % 3 ? 200 : 0, it % 5, &r);
                if (tok >= 0) sm_forward(&m, (uint32_t)tok);
                for (uint32_t k = 0; (flags & SM_WINDOW) && k < m.max_seq_len + 2 && k < 40; k++)
                    sm_forward(&m, k % m.vocab_size); /* past the context: window restarts */
                ran++;
            }
            /* the encoder on the mutated file's tables, with text that exercises every class */
            static const char *texts[3] = {"Once upon a time, Tom's 3 dogs \xc3\x89 \xce\xa3  ran!\n\n", "a", "\xff\xfe"};
            uint32_t ids[64], n_ids;
            for (int k = 0; k < 3; k++)
                if (sm_encode(&m, (const uint8_t *)texts[k], (uint32_t)strlen(texts[k]), ids, 64, &n_ids) == SM_OK) {
                    for (uint32_t j = 0; j < n_ids; j++)
                        if (ids[j] >= m.vocab_size) { fprintf(stderr, "encoder id out of range\n"); abort(); }
                    encoded++;
                }
        }
        counts[-err < 32 ? -err : 31]++;
        free(arena);
        free(copy);
    }
    printf("{\"iterations\": %u, \"loaded\": %u, \"ran\": %u, \"encoded\": %u, \"rejected\": {", iters, loaded,
           ran, encoded);
    int first = 1;
    for (int e = 1; e < 32; e++)
        if (counts[e]) { printf("%s\"%s\": %u", first ? "" : ", ", sm_strerror(-e), counts[e]); first = 0; }
    printf("}}\n");
    for (int i = 0; i < n_models; i++) free(models[i]);
    return 0;
}
