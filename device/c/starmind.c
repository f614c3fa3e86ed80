/* Starmind runtime: loader (FORMAT.md sections 2-4), arena layout, sequence
 * handling, sampler (section 7).  The forward passes are in sm_int8.c and
 * sm_float.c. */
#include <math.h>
#include <string.h>
#include "sm_internal.h"

#define PREAMBLE 32u
#define FIXED_WORDS 16u                 /* the architecture words (versions 1 and 2) */
#define TEXT_WORDS 8u                   /* version 2: special tokens, flags, encoder counts */
#define NO_ID 0xFFFFFFFFu
#define ENTRY_BYTES 48u
#define NAME_BYTES 24u
enum { DT_INT8 = 1, DT_INT16 = 2, DT_INT32 = 3, DT_F32 = 4, DT_U16 = 5 };
static const uint8_t dtype_size[6] = {0, 1, 2, 4, 4, 2};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- CRC-32 (zlib) */
uint32_t sm_crc32(const uint8_t *data, uint32_t n)
{
    /* half-byte table: 64 bytes of flash instead of 1 KB; speed only matters at load */
    static const uint32_t t[16] = {
        0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
        0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C};
    uint32_t c = 0xFFFFFFFFu;
    for (uint32_t i = 0; i < n; i++) {
        c ^= data[i];
        c = (c >> 4) ^ t[c & 15];
        c = (c >> 4) ^ t[c & 15];
    }
    return c ^ 0xFFFFFFFFu;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

void sm_refresh_crcs(uint8_t *file, uint32_t size)
{
    if (size < PREAMBLE) return;
    uint32_t hs = rd32(file + 20), ps = rd32(file + 24);
    if (hs > size - PREAMBLE) return;
    wr32(file + 8, sm_crc32(file + 16, 16 + hs));
    if (ps <= size - PREAMBLE - hs) wr32(file + 12, sm_crc32(file + PREAMBLE + hs, ps));
}

const char *sm_strerror(int err)
{
    switch (err) {
    case SM_OK: return "ok";
    case SM_ERR_FORMAT: return "inconsistent header, tensor table or vocabulary";
    case SM_ERR_NO_MEMORY: return "arena too small for this model";
    case SM_ERR_ARG: return "bad argument";
    case SM_ERR_CRC: return "CRC-32 mismatch";
    case SM_ERR_VERSION: return "unknown format version";
    case SM_ERR_MAGIC: return "not a Starmind model file (bad magic)";
    case SM_ERR_TRUNCATED: return "file length does not match its header (truncated or trailing bytes)";
    case SM_ERR_UNSUPPORTED: return "unsupported model";
    case SM_ERR_CONTEXT_FULL: return "context full";
    case SM_ERR_SPECIALS: return "invalid special tokens or stop rule";
    case SM_ERR_ENCODER: return "invalid encoder section";
    case SM_ERR_ROPE: return "rope table differs from its formula";
    case SM_ERR_NONFINITE: return "non-finite float32 value";
    case SM_ERR_PACKING: return "tensors not packed in table order";
    case SM_ERR_ENCODE: return "text cannot be encoded";
    case SM_ERR_NO_ENCODER: return "the file has no encoder";
    default: return "unknown error";
    }
}

/* ---------------------------------------------------------------- the tensor table walk */
typedef struct {
    const uint8_t *table, *payload;
    uint32_t n_entries, idx, payload_size, prev_end;
    int err;
} walker;

static void name_cat(char *dst, uint32_t *n, const char *s)
{
    while (*s && *n < NAME_BYTES - 1) dst[(*n)++] = *s++;
    dst[*n] = 0;
}

/* Layer tensor name "layers.<i>.<suffix>". */
static void layer_name(char *dst, uint32_t i, const char *suffix)
{
    char digits[4];
    uint32_t n = 0, d = 0;
    name_cat(dst, &n, "layers.");
    do { digits[d++] = (char)('0' + i % 10); i /= 10; } while (i && d < 3);
    while (d) { dst[n++] = digits[--d]; }
    dst[n] = 0;
    name_cat(dst, &n, ".");
    name_cat(dst, &n, suffix);
}

/* The next table entry must be exactly (name, dtype, shape); returns its data. */
static const void *expect(walker *w, const char *name, uint32_t dtype, uint32_t ndim, uint32_t s0, uint32_t s1)
{
    if (w->err) return NULL;
    if (w->idx >= w->n_entries) { w->err = SM_ERR_FORMAT; return NULL; }
    const uint8_t *e = w->table + ENTRY_BYTES * w->idx++;
    size_t len = strlen(name);
    if (memcmp(e, name, len) != 0) { w->err = SM_ERR_FORMAT; return NULL; }
    for (size_t i = len; i < NAME_BYTES; i++)
        if (e[i]) { w->err = SM_ERR_FORMAT; return NULL; }
    uint32_t off = rd32(e + 40), nbytes = rd32(e + 44);
    if (rd32(e + 24) != dtype || rd32(e + 28) != ndim || rd32(e + 32) != s0 || rd32(e + 36) != s1 ||
        nbytes != s0 * s1 * dtype_size[dtype] || off % 4 || off < w->prev_end || off > w->payload_size ||
        nbytes > w->payload_size - off) {
        w->err = SM_ERR_FORMAT;
        return NULL;
    }
    if (off != ((w->prev_end + 3u) & ~3u)) { w->err = SM_ERR_PACKING; return NULL; } /* tightly packed */
    for (uint32_t i = w->prev_end; i < off; i++) /* padding between tensors is zero */
        if (w->payload[i]) { w->err = SM_ERR_FORMAT; return NULL; }
    w->prev_end = off + nbytes;
    return w->payload + off;
}

static sm_mat expect_mat(walker *w, const char *name, int is_float, uint32_t rows, uint32_t cols, int with_rq)
{
    sm_mat m = {0, 0, rows, cols};
    m.w = expect(w, name, is_float ? DT_F32 : DT_INT8, 2, rows, cols);
    if (!is_float && with_rq) {
        char rq[NAME_BYTES];
        uint32_t n = 0;
        rq[0] = 0;
        name_cat(rq, &n, name);
        name_cat(rq, &n, ".rq");
        m.rq = (const int32_t *)expect(w, rq, DT_INT32, 2, rows, 2);
    }
    return m;
}

/* ---------------------------------------------------------------- value ranges (section 4.3) */
static int int8_ok(const void *p, uint32_t n)
{
    const int8_t *v = (const int8_t *)p;
    for (uint32_t i = 0; i < n; i++)
        if (v[i] == -128) return 0;
    return 1;
}

static int rq_ok(const int32_t *rq, uint32_t rows)
{
    for (uint32_t r = 0; r < rows; r++)
        if (rq[2 * r] < 0 || rq[2 * r] > 65535 || rq[2 * r + 1] < 0 || rq[2 * r + 1] > 30) return 0;
    return 1;
}

static int mat_ok(const sm_mat *m)
{
    return int8_ok(m->w, m->rows * m->cols) && (!m->rq || rq_ok(m->rq, m->rows));
}

static int range_ok(const void *p, uint32_t n, int32_t lo, int32_t hi)
{
    const int16_t *v = (const int16_t *)p;
    for (uint32_t i = 0; i < n; i++)
        if (v[i] < lo || v[i] > hi) return 0;
    return 1;
}

static int int8_values_ok(const sm_model *m)
{
    uint32_t D = m->dim, hd2 = m->head_dim / 2;
    if (m->exp_lut[0] != 32768) return 0;
    for (uint32_t i = 1; i < 1024; i++) /* the attention and sampler bounds need w <= 32768 */
        if (m->exp_lut[i] > 32768) return 0;
    if (!mat_ok(&m->tok_emb) || !mat_ok(&m->head)) return 0;
    if (m->pos == SM_POS_LEARNED && !mat_ok(&m->pos_emb)) return 0;
    if (m->pos == SM_POS_ROPE && (!range_ok(m->rope_cos, m->max_seq_len * hd2, -16384, 16384) ||
                                  !range_ok(m->rope_sin, m->max_seq_len * hd2, -16384, 16384)))
        return 0;
    if (!range_ok(m->final_norm, D, -32767, 32767)) return 0;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        const sm_layer *L = &m->layers[i];
        const int32_t *c = L->consts;
        if (c[0] < 0 || c[0] > 30 || c[1] < 0 || c[1] > 30 || c[2] < 0 || c[2] > 65535 || c[3] < 0 ||
            c[3] > 30 || c[4] < 0 || c[4] > 65535 || c[5] < 0 || c[5] > 30 || c[6] || c[7])
            return 0;
        if (!range_ok(L->attn_norm, D, -32767, 32767) || !range_ok(L->ffn_norm, D, -32767, 32767)) return 0;
        if (!mat_ok(&L->wq) || !mat_ok(&L->wk) || !mat_ok(&L->wv) || !mat_ok(&L->wo) || !mat_ok(&L->w1) ||
            !mat_ok(&L->w2) || (m->activation == SM_ACT_SWIGLU && !mat_ok(&L->w3)) || !int8_ok(L->act_lut, 256))
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- header */
static uint32_t expected_tensor_count(const sm_model *m)
{
    uint32_t per_layer = m->is_float ? 8 : 16;
    if (m->activation == SM_ACT_SWIGLU) per_layer += m->is_float ? 1 : 2;
    uint32_t n = m->is_float ? 2 : 4; /* tok_emb, final_norm (+ exp_lut, tok_emb.rq / head.rq) */
    if (!m->is_float) n += 1;         /* head.rq is always there */
    if (m->pos == SM_POS_LEARNED) n += m->is_float ? 1 : 2;
    if (m->pos == SM_POS_ROPE) n += 2;
    if (!m->tied) n += 1;
    return n + m->n_layers * per_layer;
}

/* Preamble, sizes, CRCs and the fixed header words (FORMAT.md 2, 2.1). */
static int parse_header(sm_model *m, const uint8_t *f, uint32_t size)
{
    static const uint8_t magic[8] = {'S', 'T', 'A', 'R', 'M', 'I', 'N', 'D'};
    if (!f || size < PREAMBLE) return SM_ERR_TRUNCATED;
    if (memcmp(f, magic, 8)) return SM_ERR_MAGIC;
    uint32_t version = rd32(f + 16);
    if (version != 1 && version != 2) return SM_ERR_VERSION;
    uint32_t n_fixed = version == 1 ? FIXED_WORDS : FIXED_WORDS + TEXT_WORDS;
    uint32_t hs = rd32(f + 20), ps = rd32(f + 24);
    if (rd32(f + 28) != 0 || hs % 4 || ps % 4) return SM_ERR_FORMAT;
    if (hs > size - PREAMBLE || ps != size - PREAMBLE - hs) return SM_ERR_TRUNCATED;
    if (sm_crc32(f + 16, 16 + hs) != rd32(f + 8)) return SM_ERR_CRC;
    if (sm_crc32(f + PREAMBLE + hs, ps) != rd32(f + 12)) return SM_ERR_CRC;
    if (hs < 4 * n_fixed) return SM_ERR_FORMAT;
    const uint8_t *h = f + PREAMBLE;
    uint32_t w[FIXED_WORDS];
    for (uint32_t i = 0; i < FIXED_WORDS; i++) w[i] = rd32(h + 4 * i);
    memset(m, 0, sizeof *m);
    m->is_float = w[0] == 0;
    m->vocab_size = w[1]; m->dim = w[2]; m->n_layers = w[3]; m->n_heads = w[4]; m->ffn_hidden = w[5];
    m->activation = w[6]; m->pos = w[7]; m->tied = w[8]; m->max_seq_len = w[9];
    m->vocab_bytes = w[11]; m->logit_frac = w[12]; m->eps_q = w[13]; m->final_norm_shift = w[14];
    m->version = version;
    m->bos_id = m->eos_id = m->unk_id = NO_ID;
    uint64_t text_bytes = 0;
    if (version >= 2) {
        const uint8_t *t = h + 4 * FIXED_WORDS;
        m->bos_id = rd32(t); m->eos_id = rd32(t + 4); m->unk_id = rd32(t + 8);
        uint32_t fl = rd32(t + 12);
        m->stop_at_eos = fl & 1u; m->lowercase = (fl >> 1) & 1u;
        m->encoder = rd32(t + 16); m->n_merges = rd32(t + 20); m->n_fold = rd32(t + 24); m->n_classes = rd32(t + 28);
        if (fl & ~3u) return SM_ERR_SPECIALS;
        text_bytes = 8ull * m->n_fold + 8ull * m->n_classes + 6ull * m->n_merges;
    }
    if (w[0] > 1 || m->vocab_size < 2 || m->vocab_size > 32768 || m->dim < 1 || m->dim > 4096 ||
        m->n_layers < 1 || m->n_layers > 64 || m->n_heads < 1 || m->n_heads > 256 || m->dim % m->n_heads ||
        m->ffn_hidden < 1 || m->ffn_hidden > 32767 || m->activation > 2 || m->pos > 2 || m->tied > 1 ||
        m->max_seq_len < 1 || m->max_seq_len > 8192 || w[15] != 0)
        return SM_ERR_FORMAT;
    m->head_dim = m->dim / m->n_heads;
    if (m->pos == SM_POS_ROPE && m->head_dim % 2) return SM_ERR_FORMAT;
    if (m->is_float ? (m->logit_frac || m->eps_q || m->final_norm_shift)
                    : (m->logit_frac < 6 || m->logit_frac > 16 || m->eps_q < 1 || m->eps_q > (1u << 24) ||
                       m->final_norm_shift > 30))
        return SM_ERR_FORMAT;
    if (w[10] != expected_tensor_count(m)) return SM_ERR_FORMAT;
    /* header = fixed words + table + vocabulary + encoder section (v2) + < 4 zero bytes */
    uint64_t used = 4 * n_fixed + ENTRY_BYTES * (uint64_t)w[10];
    uint64_t end = used + m->vocab_bytes + text_bytes;
    if (end > hs || hs - end >= 4) return SM_ERR_FORMAT;
    for (uint32_t i = (uint32_t)end; i < hs; i++)
        if (h[i]) return SM_ERR_FORMAT;
    m->vocab = h + used;
    m->fold = m->vocab + m->vocab_bytes;
    m->classes = m->fold + 8 * m->n_fold;
    m->merges = m->classes + 8 * m->n_classes;
    m->file = f;
    m->file_size = size;
    return SM_OK;
}

static int check_vocab(const sm_model *m)
{
    uint32_t at = 0;
    for (uint32_t t = 0; t < m->vocab_size; t++) {
        if (at >= m->vocab_bytes) return SM_ERR_FORMAT;
        uint32_t len = m->vocab[at]; /* 0 is allowed: special tokens that print nothing */
        if (len > m->vocab_bytes - at - 1) return SM_ERR_FORMAT;
        at += 1 + len;
    }
    return at == m->vocab_bytes ? SM_OK : SM_ERR_FORMAT;
}

static const uint8_t *tok_at(const sm_model *m, uint32_t t, uint32_t *len)
{
    uint32_t at = 0;
    for (uint32_t i = 0; i < t; i++) at += 1u + m->vocab[at];
    *len = m->vocab[at];
    return m->vocab + at + 1;
}

/* One UTF-8 character at s[0..n): its code point, or -1 (invalid, overlong, surrogate, > U+10FFFF). */
int32_t sm_utf8_decode(const uint8_t *s, uint32_t n, uint32_t *used)
{
    static const uint32_t minimum[4] = {0, 0x80, 0x800, 0x10000};
    if (!n) return -1;
    uint32_t c = s[0], k;
    if (c < 0x80) { *used = 1; return (int32_t)c; }
    if ((c & 0xE0) == 0xC0) { k = 1; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { k = 2; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { k = 3; c &= 0x07; }
    else return -1;
    if (n < k + 1) return -1;
    for (uint32_t i = 1; i <= k; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        c = c << 6 | (s[i] & 0x3Fu);
    }
    if (c < minimum[k] || c > 0x10FFFF || (c >= 0xD800 && c < 0xE000)) return -1;
    *used = k + 1;
    return (int32_t)c;
}

static int is_special(const sm_model *m, uint32_t t) { return t == m->bos_id || t == m->eos_id || t == m->unk_id; }

/* FORMAT.md 2.4: special tokens, flags, and the encoder section against the vocabulary. */
static int check_text(const sm_model *m)
{
    uint32_t V = m->vocab_size, len, len2, len3;
    const uint32_t ids[3] = {m->bos_id, m->eos_id, m->unk_id};
    if (m->version < 2) return SM_OK;
    for (int i = 0; i < 3; i++) {
        if (ids[i] == NO_ID) continue;
        if (ids[i] >= V) return SM_ERR_SPECIALS;
        for (int j = 0; j < i; j++)
            if (ids[j] == ids[i]) return SM_ERR_SPECIALS;
        tok_at(m, ids[i], &len);
        if (len) return SM_ERR_SPECIALS;
    }
    if (m->stop_at_eos && m->eos_id == NO_ID) return SM_ERR_SPECIALS;
    if (m->encoder > 2 || (m->n_fold && !m->lowercase) || (m->encoder != 2 && (m->n_merges || m->n_classes)) ||
        (m->encoder == 0 && m->n_fold))
        return SM_ERR_ENCODER;
    for (uint32_t k = 0; k < m->n_fold; k++) {
        uint32_t a = rd32(m->fold + 8 * k), b = rd32(m->fold + 8 * k + 4);
        if (a > 0x10FFFF || b > 0x10FFFF || (a >= 0xD800 && a < 0xE000) || (b >= 0xD800 && b < 0xE000) ||
            (k && a < rd32(m->fold + 8 * k - 8)))
            return SM_ERR_ENCODER;
    }
    for (uint32_t k = 0; k < m->n_classes; k++) {
        uint32_t lo = rd32(m->classes + 8 * k), w = rd32(m->classes + 8 * k + 4), hi = w >> 8, c = w & 255;
        if (lo > hi || hi > 0x10FFFF || c < 1 || c > 3 || (k && lo <= rd32(m->classes + 8 * k - 4) >> 8))
            return SM_ERR_ENCODER;
    }
    if (m->encoder == 1) { /* char: one distinct UTF-8 character per non-special token */
        for (uint32_t t = 0; t < V; t++) {
            if (is_special(m, t)) continue;
            const uint8_t *b = tok_at(m, t, &len);
            uint32_t used = 0;
            int32_t c = sm_utf8_decode(b, len, &used);
            if (c < 0 || used != len) return SM_ERR_ENCODER;
            for (uint32_t u = 0; u < t; u++) {
                if (is_special(m, u)) continue;
                const uint8_t *b2 = tok_at(m, u, &len2);
                if (len2 == len && !memcmp(b, b2, len)) return SM_ERR_ENCODER;
            }
        }
    }
    if (m->encoder == 2) { /* bpe: every byte value exactly once as a 1-byte token; valid merges */
        uint32_t seen[8] = {0};
        for (uint32_t t = 0; t < V; t++) {
            const uint8_t *b = tok_at(m, t, &len);
            if (len != 1) continue;
            if (seen[b[0] >> 5] >> (b[0] & 31) & 1u) return SM_ERR_ENCODER;
            seen[b[0] >> 5] |= 1u << (b[0] & 31);
        }
        for (int i = 0; i < 8; i++)
            if (seen[i] != 0xFFFFFFFFu) return SM_ERR_ENCODER;
        for (uint32_t k = 0; k < m->n_merges; k++) {
            const uint8_t *e = m->merges + 6 * k;
            uint32_t l = e[0] | (uint32_t)e[1] << 8, r = e[2] | (uint32_t)e[3] << 8, res = e[4] | (uint32_t)e[5] << 8;
            if (l >= V || r >= V || res >= V) return SM_ERR_ENCODER;
            const uint8_t *bl = tok_at(m, l, &len), *br = tok_at(m, r, &len2), *bres = tok_at(m, res, &len3);
            if (!len || !len2 || len3 != len + len2 || memcmp(bres, bl, len) || memcmp(bres + len, br, len2))
                return SM_ERR_ENCODER;
            for (uint32_t j = 0; j < k; j++) {
                const uint8_t *f = m->merges + 6 * j;
                if ((f[0] == e[0] && f[1] == e[1] && f[2] == e[2] && f[3] == e[3]) || (f[4] == e[4] && f[5] == e[5]))
                    return SM_ERR_ENCODER;
            }
        }
    }
    return SM_OK;
}

/* FORMAT.md 4.4: the rotary tables equal cos/sin(p * 10000^(-2j/hd)) (int8: within 1 Q14 unit, float32
 * within 2^-20); float32 files hold no NaN or infinity. */
static int check_values_v2(const sm_model *m)
{
    uint32_t ps = rd32(m->file + 24);
    const uint8_t *payload = m->file + PREAMBLE + rd32(m->file + 20);
    if (m->is_float)
        for (uint32_t i = 0; i + 4 <= ps; i += 4)
            if ((rd32(payload + i) & 0x7F800000u) == 0x7F800000u) return SM_ERR_NONFINITE;
    if (m->pos != SM_POS_ROPE) return SM_OK;
    uint32_t hd2 = m->head_dim / 2;
    for (uint32_t j = 0; j < hd2; j++) {
        double inv = pow(10000.0, -(double)(2 * j) / (double)m->head_dim);
        for (uint32_t p = 0; p < m->max_seq_len; p++) {
            double a = (double)p * inv, c = cos(a), sn = sin(a);
            uint32_t at = p * hd2 + j;
            if (m->is_float) {
                double gc = ((const float *)m->rope_cos)[at], gs = ((const float *)m->rope_sin)[at];
                if (!(fabs(gc - c) <= 0x1p-20) || !(fabs(gs - sn) <= 0x1p-20)) return SM_ERR_ROPE;
            } else {
                double gc = ((const int16_t *)m->rope_cos)[at], gs = ((const int16_t *)m->rope_sin)[at];
                if (fabs(gc - 16384.0 * c) > 1.0 || fabs(gs - 16384.0 * sn) > 1.0) return SM_ERR_ROPE;
            }
        }
    }
    return SM_OK;
}

int sm_is_stop(const sm_model *m, uint32_t t) { return m->stop_at_eos && t == m->eos_id; }

/* Walk the tensor table in the order of FORMAT.md section 4; layers go to m->layers. */
static int bind_tensors(sm_model *m)
{
    const uint8_t *h = m->file + PREAMBLE;
    uint32_t hs = rd32(m->file + 20);
    uint32_t n_fixed = m->version == 1 ? FIXED_WORDS : FIXED_WORDS + TEXT_WORDS;
    walker w = {h + 4 * n_fixed, m->file + PREAMBLE + hs, rd32(h + 40), 0, rd32(m->file + 24), 0, 0};
    int fl = (int)m->is_float;
    uint32_t V = m->vocab_size, D = m->dim, F = m->ffn_hidden, T = m->max_seq_len, hd2 = m->head_dim / 2;
    char name[NAME_BYTES];
    if (!fl) m->exp_lut = (const uint16_t *)expect(&w, "exp_lut", DT_U16, 1, 1024, 1);
    m->tok_emb = expect_mat(&w, "tok_emb", fl, V, D, 1);
    if (m->pos == SM_POS_LEARNED) m->pos_emb = expect_mat(&w, "pos_emb", fl, T, D, 1);
    if (m->pos == SM_POS_ROPE) {
        m->rope_cos = expect(&w, "rope.cos", fl ? DT_F32 : DT_INT16, 2, T, hd2);
        m->rope_sin = expect(&w, "rope.sin", fl ? DT_F32 : DT_INT16, 2, T, hd2);
    }
    uint32_t norm_dt = fl ? DT_F32 : DT_INT16;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        sm_layer *L = &m->layers[i];
        if (!fl) { layer_name(name, i, "consts"); L->consts = (const int32_t *)expect(&w, name, DT_INT32, 1, 8, 1); }
        layer_name(name, i, "attn_norm"); L->attn_norm = expect(&w, name, norm_dt, 1, D, 1);
        layer_name(name, i, "wq"); L->wq = expect_mat(&w, name, fl, D, D, 1);
        layer_name(name, i, "wk"); L->wk = expect_mat(&w, name, fl, D, D, 1);
        layer_name(name, i, "wv"); L->wv = expect_mat(&w, name, fl, D, D, 1);
        layer_name(name, i, "wo"); L->wo = expect_mat(&w, name, fl, D, D, 1);
        layer_name(name, i, "ffn_norm"); L->ffn_norm = expect(&w, name, norm_dt, 1, D, 1);
        layer_name(name, i, "w1"); L->w1 = expect_mat(&w, name, fl, F, D, 1);
        if (m->activation == SM_ACT_SWIGLU) { layer_name(name, i, "w3"); L->w3 = expect_mat(&w, name, fl, F, D, 1); }
        if (!fl) { layer_name(name, i, "act_lut"); L->act_lut = (const int8_t *)expect(&w, name, DT_INT8, 1, 256, 1); }
        layer_name(name, i, "w2"); L->w2 = expect_mat(&w, name, fl, D, F, 1);
    }
    m->final_norm = expect(&w, "final_norm", norm_dt, 1, D, 1);
    if (!m->tied) m->head = expect_mat(&w, "head", fl, V, D, 0);
    else m->head = m->tok_emb;
    if (!fl) { m->head.rq = (const int32_t *)expect(&w, "head.rq", DT_INT32, 2, V, 2); }
    if (w.err) return w.err;
    if (w.idx != w.n_entries || w.payload_size != ((w.prev_end + 3u) & ~3u)) return SM_ERR_FORMAT;
    for (uint32_t i = w.prev_end; i < w.payload_size; i++)
        if (w.payload[i]) return SM_ERR_FORMAT;
    if (!fl && !int8_values_ok(m)) return SM_ERR_FORMAT;
    return check_values_v2(m);
}

/* ---------------------------------------------------------------- arena layout */
typedef struct { uint64_t off; } planner;

static uint64_t take(planner *p, uint64_t bytes)
{
    uint64_t at = p->off;
    p->off = (p->off + bytes + 7u) & ~(uint64_t)7u; /* 8: pointer-holding structs on 64-bit hosts */
    return at;
}

/* Offsets of every buffer; returns the total.  The same walk sizes and places. */
static uint64_t plan(const sm_model *m, uint32_t flags, uint32_t n_ctx, uint64_t *o)
{
    planner p = {0};
    uint64_t es = m->is_float ? 4 : 1, D = m->dim, F = m->ffn_hidden;
    o[0] = (flags & SM_WEIGHTS_IN_SRAM) ? take(&p, m->file_size) : 0;
    o[1] = take(&p, (uint64_t)m->n_layers * sizeof(sm_layer));
    o[2] = take(&p, (flags & (SM_NO_KV_CACHE | SM_WINDOW)) ? 4ull * n_ctx : 0);     /* tokens */
    o[3] = take(&p, 4 * D);                                           /* x: int32 / float */
    o[4] = take(&p, es * D);                                          /* a */
    o[5] = take(&p, es * D);                                          /* q */
    o[6] = take(&p, es * D);                                          /* o */
    o[7] = take(&p, es * F);                                          /* h */
    o[8] = take(&p, m->activation == SM_ACT_SWIGLU ? es * F : 0);     /* u */
    o[9] = take(&p, 4 * (uint64_t)m->vocab_size);                     /* logits */
    o[10] = take(&p, m->is_float ? 0 : 4 * ((flags & SM_WEIGHTS_IN_SRAM) && F > D ? F : D));   /* int8: the widened activations */
    o[11] = take(&p, 4 * (uint64_t)n_ctx);                            /* scores */
    o[12] = take(&p, es * m->n_layers * n_ctx * D);                   /* K cache */
    o[13] = take(&p, es * m->n_layers * n_ctx * D);                   /* V cache */
    o[14] = take(&p, m->is_float ? 2 * 1024 : 0);                     /* float: the sampler's exp table */
    return p.off;
}

static int open_file(sm_model *m, const uint8_t *file, uint32_t size, sm_layer *layers)
{
    int err = parse_header(m, file, size);
    if (err) return err;
    if ((err = check_vocab(m)) != SM_OK || (err = check_text(m)) != SM_OK) return err;
    m->layers = layers;
    return bind_tensors(m);
}

static uint32_t context_len(const sm_model *m, uint32_t n_ctx)
{
    return n_ctx == 0 || n_ctx > m->max_seq_len ? m->max_seq_len : n_ctx;
}

uint32_t sm_arena_needed(const uint8_t *file, uint32_t file_size, uint32_t flags, uint32_t n_ctx, int *err)
{
    sm_model m;
    int e = parse_header(&m, file, file_size);
    if (e == SM_OK) e = check_vocab(&m);
    if (e == SM_OK) e = check_text(&m);
    if (err) *err = e;
    if (e) return 0;
    uint64_t o[15], total = plan(&m, flags, (flags & SM_WINDOW) ? m.max_seq_len : context_len(&m, n_ctx), o);
    if (total > 0xFFFFFFF0u) { if (err) *err = SM_ERR_NO_MEMORY; return 0; }
    return (uint32_t)total;
}

/* SM_INTERLEAVED (sm_internal.h): the copy of matrix M in the arena (at `copy`) gets its rows from the
 * original file `src` in blocks of K = 8 rows, then one block of 4, of 2 and of 1 as rows mod 8 ask, each
 * column by column, biased to unsigned bytes: row r0 + j of the block at row r0, column i, at
 * r0 cols + K i + j = W[r0 + j][i] + 128. */
static void interleave(const sm_mat *M, const uint8_t *src, const uint8_t *copy)
{
    uint32_t C = M->cols, R = M->rows, K = 8;
    const int8_t *w = (const int8_t *)(const void *)(src + ((const uint8_t *)M->w - copy));
    uint8_t *d = (uint8_t *)(uintptr_t)M->w;
    for (uint32_t r0 = 0; r0 < R; r0 += K) {
        while (r0 + K > R) K >>= 1;
        for (uint32_t i = 0; i < C; i++)
            for (uint32_t j = 0; j < K; j++) d[r0 * C + K * i + j] = (uint8_t)(w[(r0 + j) * C + i] + 128);
    }
}

int sm_load(sm_model *m, const uint8_t *file, uint32_t file_size, uint8_t *arena, uint32_t arena_size,
            uint32_t flags, uint32_t n_ctx)
{
    if (!m) return SM_ERR_ARG;
    int err = parse_header(m, file, file_size);
    if (err) return err;
    if ((err = check_vocab(m)) != SM_OK || (err = check_text(m)) != SM_OK) return err;
    n_ctx = (flags & SM_WINDOW) ? m->max_seq_len : context_len(m, n_ctx);
    uint64_t o[15], total = plan(m, flags, n_ctx, o);
    if (total > arena_size) return SM_ERR_NO_MEMORY;
    if (!arena && total) return SM_ERR_ARG;
    const uint8_t *orig = file;
    if (flags & SM_WEIGHTS_IN_SRAM) { /* run from the copy: every later pointer points into SRAM */
        memcpy(arena + o[0], file, file_size);
        file = arena + o[0];
    }
    if ((err = open_file(m, file, file_size, (sm_layer *)(void *)(arena + o[1]))) != SM_OK) return err;
    m->flags = flags;
    if (SM_INTERLEAVED(m)) { /* after every check of the copy */
        for (uint32_t i = 0; i < m->n_layers; i++) {
            const sm_layer *L = &m->layers[i];
            interleave(&L->wq, orig, file); interleave(&L->wk, orig, file); interleave(&L->wv, orig, file);
            interleave(&L->wo, orig, file); interleave(&L->w1, orig, file); interleave(&L->w2, orig, file);
            if (m->activation == SM_ACT_SWIGLU) interleave(&L->w3, orig, file);
        }
        interleave(&m->head, orig, file);
    }
    m->n_ctx = n_ctx;
    m->arena_used = (uint32_t)total;
    m->tokens = (uint32_t *)(void *)(arena + o[2]);
    m->x = arena + o[3]; m->a = arena + o[4]; m->q = arena + o[5]; m->o = arena + o[6];
    m->h = arena + o[7]; m->u = arena + o[8]; m->logits = arena + o[9];
    m->att_acc = (int32_t *)(void *)(arena + o[10]);
    m->scores = arena + o[11]; m->kc = arena + o[12]; m->vc = arena + o[13];
    memset(m->logits, 0, 4 * m->vocab_size);
    if (m->is_float) { /* float files carry no exp_lut; the sampler needs FORMAT.md's table */
        uint16_t *lut = (uint16_t *)(void *)(arena + o[14]);
        double e = 32768.0;
        for (uint32_t i = 0; i < 1024; i++, e *= 0.9844964370054085) /* exp(-1/64) */
            lut[i] = (uint16_t)(e + 0.5);
        m->exp_lut = lut;
    }
    m->pos_next = 0;
    return SM_OK;
}

/* ---------------------------------------------------------------- sequences
 * The per-token code runs from SRAM on the RP2040 (SM_HOT), so that it does not
 * compete with the weights for the XIP cache. */
void sm_reset(sm_model *m) { m->pos_next = 0; m->restarts = 0; }

SM_HOT static void step(sm_model *m, uint32_t token, uint32_t pos, int want_logits)
{
    if (m->is_float) sm_step_f32(m, token, pos, want_logits);
    else sm_step_int8(m, token, pos, want_logits);
}

/* FORMAT.md 6.7, the window restart: the cache is full (n_ctx = max_seq_len positions), so the last
 * K = n_ctx / 2 tokens are fed again from position 0 (no logits) and the next token goes to K. */
static void window_restart(sm_model *m)
{
    uint32_t K = m->n_ctx / 2;
    memmove(m->tokens, m->tokens + (m->n_ctx - K), 4u * K);
    m->restarts++;
    for (uint32_t s = 0; s < K; s++) step(m, m->tokens[s], s, 0);
    m->pos_next = K;
}

SM_HOT int sm_prefill(sm_model *m, const uint32_t *tokens, uint32_t n)
{
    if (!m || (n && !tokens)) return SM_ERR_ARG;
    for (uint32_t i = 0; i < n; i++)
        if (tokens[i] >= m->vocab_size) return SM_ERR_ARG;
    if (!(m->flags & SM_WINDOW) && n > m->n_ctx - m->pos_next) return SM_ERR_CONTEXT_FULL;
    for (uint32_t i = 0; i < n; i++) {
        if (m->pos_next == m->n_ctx) window_restart(m); /* only with SM_WINDOW */
        if (m->flags & (SM_NO_KV_CACHE | SM_WINDOW)) m->tokens[m->pos_next] = tokens[i];
        step(m, tokens[i], m->pos_next, i + 1 == n);
        m->pos_next++;
    }
    return SM_OK;
}

SM_HOT int sm_forward(sm_model *m, uint32_t token)
{
    if (!m || token >= m->vocab_size) return SM_ERR_ARG;
    if (m->pos_next >= m->n_ctx) {
        if (!(m->flags & SM_WINDOW)) return SM_ERR_CONTEXT_FULL;
        window_restart(m);
    }
    uint32_t p = m->pos_next++;
    if (m->flags & SM_WINDOW) m->tokens[p] = token;
    if (!(m->flags & SM_NO_KV_CACHE)) {
        step(m, token, p, 1);
        return SM_OK;
    }
    /* No KV cache: every step recomputes all positions from the token history, as a
     * runtime without a cache must (the cache memory is only scratch here). */
    m->tokens[p] = token;
    for (uint32_t s = 0; s <= p; s++) step(m, m->tokens[s], s, s == p);
    return SM_OK;
}

const int32_t *sm_logits_i32(const sm_model *m) { return m->is_float ? NULL : (const int32_t *)m->logits; }
const float *sm_logits_f32(const sm_model *m) { return m->is_float ? (const float *)m->logits : NULL; }

const uint8_t *sm_token_bytes(const sm_model *m, uint32_t t, uint32_t *len)
{
    if (t >= m->vocab_size) return NULL;
    uint32_t at = 0;
    for (uint32_t i = 0; i < t; i++) at += 1u + m->vocab[at];
    *len = m->vocab[at];
    return m->vocab + at + 1;
}

/* ---------------------------------------------------------------- sampling (section 7) */
uint32_t sm_rng_seed(uint32_t seed) { return seed ? seed : 0x9E3779B9u; }

SM_HOT static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return *s = x;
}

/* The int32 logit of token v; float logits go through SM_FLOAT_LOGIT_FRAC fixed point. */
SM_HOT static int32_t logit_at(const sm_model *m, uint32_t v)
{
    if (!m->is_float) return ((const int32_t *)m->logits)[v];
    float f = ((const float *)m->logits)[v] * (float)(1 << SM_FLOAT_LOGIT_FRAC);
    if (!(f > -536870912.0f)) return -536870912; /* also NaN */
    if (f > 536870912.0f) return 536870912;
    return (int32_t)(f < 0 ? f - 0.5f : f + 0.5f);
}

SM_HOT static uint32_t count_at_least(const sm_model *m, int32_t t)
{
    uint32_t n = 0;
    for (uint32_t v = 0; v < m->vocab_size; v++) n += logit_at(m, v) >= t;
    return n;
}

SM_HOT static int greedy(const sm_model *m)
{
    uint32_t best = 0;
    if (m->is_float) {
        const float *l = (const float *)m->logits;
        for (uint32_t v = 1; v < m->vocab_size; v++)
            if (l[v] > l[best]) best = v;
    } else {
        const int32_t *l = (const int32_t *)m->logits;
        int32_t top = l[0];
        for (uint32_t v = 1; v < m->vocab_size; v++)
            if (l[v] > top) { top = l[v]; best = v; }
    }
    return (int)best;
}

SM_HOT int sm_sample(const sm_model *m, uint32_t temperature_q8, uint32_t top_k, uint32_t *rng_state)
{
    if (!m || !rng_state) return SM_ERR_ARG;
    if (temperature_q8 == 0) return greedy(m);
    uint32_t V = m->vocab_size, frac = m->is_float ? SM_FLOAT_LOGIT_FRAC : m->logit_frac;
    uint32_t tq = temperature_q8 < 16 ? 16 : temperature_q8 > 4096 ? 4096 : temperature_q8;
    int32_t inv_t = (int32_t)((1u << 20) / tq);
    int32_t top = logit_at(m, 0), lo = top;
    for (uint32_t v = 1; v < V; v++) {
        int32_t l = logit_at(m, v);
        if (l > top) top = l;
        if (l < lo) lo = l;
    }
    /* top-k: the k largest by (logit desc, id asc) = all above the k-th largest value
     * `thr`, plus the lowest ids among those equal to it.  thr by binary search. */
    int32_t thr = lo;
    uint32_t quota = V;
    if (top_k > 0 && top_k < V) {
        int32_t a = lo, b = top; /* invariant: count(>= a) >= k */
        while (a < b) {
            int32_t mid = a + (b - a + 1) / 2;
            if (count_at_least(m, mid) >= top_k) a = mid; else b = mid - 1;
        }
        thr = a;
        quota = top_k - count_at_least(m, thr + 1);
    }
    uint32_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint32_t r = 0, cum = 0, seen = 0;
        if (pass == 1) r = (rng_next(rng_state) >> 1) % total;
        for (uint32_t v = 0; v < V; v++) {
            int32_t l = logit_at(m, v);
            if (l < thr || (l == thr && seen++ >= quota)) continue;
            int32_t u = (top - l) >> (frac - 6);
            if (u > 16384) u = 16384;
            int32_t idx = (u * inv_t) >> 12;
            uint32_t w = idx < 1024 ? m->exp_lut[idx] : 0;
            if (pass == 0) total += w;
            else if ((cum += w) > r) return (int)v;
        }
    }
    return (int)(V - 1); /* unreachable: the walk ends once the sum exceeds r < total */
}
