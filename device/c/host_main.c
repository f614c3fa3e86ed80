/* Host driver of the Starmind runtime: run a model file, print one JSON object.
 *
 *   starmind_host MODEL.smd --prompt 1,2,3 --n 16 [--seed S] [--temp-q8 T] [--top-k K]
 *                 [--sram] [--no-kv] [--arena BYTES] [--window] [--no-stop]
 *   starmind_host MODEL.smd --text-file PROMPT.txt [--encode-only] ...   (prompt encoded by sm_encode)
 *   starmind_host MODEL.smd --encode-batch TEXTS   (NUL-separated texts: {"ids": [[...], ...], "status": [...]})
 *
 * Generation ends early after EOS when the file's stop rule says so (unless --no-stop);
 * --window continues past max_seq_len by the window restart (FORMAT.md 6.7).
 * Output: {"status": 0, "error": "", "tokens": [...], "first_logits": [...],
 *          "arena_needed": N, "scheme": "int8"|"float32"}.  first_logits are the
 * logits after the prompt (int32 for int8 models, floats for float32 models).
 * Exit status 0 when the run succeeded, 1 for a runtime error, 2 for bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "starmind.h"

static uint8_t *read_file(const char *path, uint32_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *size = (uint32_t)n;
    return buf;
}

static uint32_t parse_ids(const char *s, uint32_t *ids, uint32_t max)
{
    uint32_t n = 0;
    while (*s && n < max) {
        char *end;
        ids[n++] = (uint32_t)strtoul(s, &end, 10);
        if (end == s) break;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int fail(int err, uint32_t needed, uint8_t *file, uint8_t *arena)
{
    free(file);
    free(arena);
    printf("{\"status\": %d, \"error\": \"%s\", \"tokens\": [], \"first_logits\": [], \"arena_needed\": %u}\n",
           err, sm_strerror(err), needed);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.smd --prompt 1,2,3 --n 16 [--seed S] [--temp-q8 T] [--top-k K] "
                        "[--sram] [--no-kv] [--arena BYTES]\n", argv[0]);
        return 2;
    }
    static uint32_t prompt[8192];
    uint32_t n_prompt = 0, n_gen = 0, seed = 0, temp_q8 = 0, top_k = 0, flags = 0, arena_limit = 0;
    const char *text_path = NULL;
    int encode_only = 0, no_stop = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--prompt")) { n_prompt = parse_ids(v, prompt, 8192); i++; }
        else if (!strcmp(a, "--n")) { n_gen = (uint32_t)strtoul(v, NULL, 10); i++; }
        else if (!strcmp(a, "--seed")) { seed = (uint32_t)strtoul(v, NULL, 10); i++; }
        else if (!strcmp(a, "--temp-q8")) { temp_q8 = (uint32_t)strtoul(v, NULL, 10); i++; }
        else if (!strcmp(a, "--top-k")) { top_k = (uint32_t)strtoul(v, NULL, 10); i++; }
        else if (!strcmp(a, "--arena")) { arena_limit = (uint32_t)strtoul(v, NULL, 10); i++; }
        else if (!strcmp(a, "--sram")) flags |= SM_WEIGHTS_IN_SRAM;
        else if (!strcmp(a, "--no-kv")) flags |= SM_NO_KV_CACHE;
        else if (!strcmp(a, "--window")) flags |= SM_WINDOW;
        else if (!strcmp(a, "--no-stop")) no_stop = 1;
        else if (!strcmp(a, "--encode-only")) encode_only = 1;
        else if (!strcmp(a, "--text-file")) { text_path = v; i++; }
        else if (!strcmp(a, "--encode-batch")) { text_path = v; encode_only = 2; i++; }
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    uint32_t size;
    uint8_t *file = read_file(argv[1], &size);
    if (!file) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    int err = SM_OK;
    uint8_t *text = NULL;
    uint32_t text_len = 0;
    if (text_path && !(text = read_file(text_path, &text_len))) { fprintf(stderr, "cannot read %s\n", text_path); return 2; }
    /* with a text prompt its length is not known before encoding: the context is the model's */
    uint32_t n_ctx = text ? 0 : n_prompt + (n_gen ? n_gen - 1 : 0);
    uint32_t needed = sm_arena_needed(file, size, flags, n_ctx, &err);
    if (err) return fail(err, 0, file, NULL);
    uint32_t arena_size = arena_limit ? arena_limit : needed;
    uint8_t *arena = malloc(arena_size ? arena_size : 1);
    sm_model m;
    err = sm_load(&m, file, size, arena, arena_size, flags, n_ctx);
    if (err) return fail(err, needed, file, arena);
    if (text && encode_only == 2) { /* many texts, one model load */
        static uint32_t ids[1u << 16];
        printf("{\"status\": 0, \"ids\": [");
        uint32_t start = 0, k = 0;
        for (uint32_t i = 0; i <= text_len; i++) {
            if (i < text_len && text[i]) continue;
            uint32_t n = 0;
            int e = sm_encode(&m, text + start, i - start, ids, 1u << 16, &n);
            printf("%s[", k++ ? ", " : "");
            if (e) printf("%d", e);
            else for (uint32_t j = 0; j < n; j++) printf("%s%u", j ? ", " : "", ids[j]);
            printf("]");
            start = i + 1;
        }
        printf("]}\n");
        free(text);
        free(arena);
        free(file);
        return 0;
    }
    if (text) {
        err = sm_encode(&m, text, text_len, prompt, 8192, &n_prompt);
        free(text);
        if (encode_only || err) {
            if (err) return fail(err, needed, file, arena);
            printf("{\"status\": 0, \"error\": \"\", \"ids\": [");
            for (uint32_t i = 0; i < n_prompt; i++) printf("%s%u", i ? ", " : "", prompt[i]);
            printf("]}\n");
            free(arena);
            free(file);
            return 0;
        }
    }
    err = sm_prefill(&m, prompt, n_prompt);
    if (err) return fail(err, needed, file, arena);
    printf("{\"status\": 0, \"error\": \"\", \"scheme\": \"%s\", \"arena_needed\": %u, \"first_logits\": [",
           m.is_float ? "float32" : "int8", needed);
    for (uint32_t i = 0; i < m.vocab_size; i++) {
        if (m.is_float) printf("%s%.9g", i ? ", " : "", (double)sm_logits_f32(&m)[i]);
        else printf("%s%d", i ? ", " : "", (int)sm_logits_i32(&m)[i]);
    }
    printf("], \"tokens\": [");
    uint32_t rng = sm_rng_seed(seed);
    for (uint32_t i = 0; i < n_gen; i++) {
        int tok = sm_sample(&m, temp_q8, top_k, &rng);
        if (tok < 0) { err = tok; break; }
        printf("%s%d", i ? ", " : "", tok);
        if (!no_stop && sm_is_stop(&m, (uint32_t)tok)) break;
        if (i + 1 < n_gen && (err = sm_forward(&m, (uint32_t)tok)) != SM_OK) break;
    }
    printf("], \"run_status\": %d, \"restarts\": %u, \"prompt_ids\": [", err, m.restarts);
    for (uint32_t i = 0; i < n_prompt; i++) printf("%s%u", i ? ", " : "", prompt[i]);
    printf("]}\n");
    free(arena);
    free(file);
    return err ? 1 : 0;
}
