/* Starmind runtime: the prompt encoder of format version 2 (FORMAT.md section 11).
 *
 *   uint32_t ids[256], n;
 *   int err = sm_encode(&m, (const uint8_t *)"Once upon a time", 16, ids, 256, &n);
 *
 * char encoder: each code point (after case folding) is the token with its UTF-8 bytes, else
 * unk_id.  bpe encoder: GPT-2 pre-tokenization over the file's class table, then, per piece,
 * the byte tokens merged by rank.  No heap; the ids buffer is the BPE work area; work per
 * character is a scan of the vocabulary or the merges (a prompt is encoded once). */
#include <string.h>
#include "sm_internal.h"

int32_t sm_utf8_decode(const uint8_t *s, uint32_t n, uint32_t *used); /* starmind.c */

enum { CL_OTHER = 0, CL_LETTER = 1, CL_NUMBER = 2, CL_SPACE = 3 };

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

/* The text's code points after case folding, one at a time. */
typedef struct {
    const sm_model *m;
    const uint8_t *s;
    uint32_t n, at;
    uint32_t fold_k, fold_left; /* pending expansion: fold entries fold_k .. fold_k + fold_left - 1 */
    int err;
} cp_reader;

static int32_t next_raw(cp_reader *r)
{
    uint32_t used = 0;
    if (r->at >= r->n) return -1;
    int32_t c = sm_utf8_decode(r->s + r->at, r->n - r->at, &used);
    if (c < 0) { r->err = SM_ERR_ENCODE; return -1; }
    r->at += used;
    return c;
}

/* Next folded code point, or -1 at the end (r->err set on invalid UTF-8). */
static int32_t next_cp(cp_reader *r)
{
    const sm_model *m = r->m;
    if (r->fold_left) { r->fold_left--; return (int32_t)rd32(m->fold + 8 * r->fold_k++ + 4); }
    int32_t c = next_raw(r);
    if (c < 0 || !m->lowercase || !m->n_fold) return c;
    uint32_t lo = 0, hi = m->n_fold; /* first entry with from >= c */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (rd32(m->fold + 8 * mid) < (uint32_t)c) lo = mid + 1; else hi = mid;
    }
    if (lo == m->n_fold || rd32(m->fold + 8 * lo) != (uint32_t)c) return c;
    uint32_t k = lo + 1;
    while (k < m->n_fold && rd32(m->fold + 8 * k) == (uint32_t)c) k++;
    r->fold_k = lo + 1;
    r->fold_left = k - lo - 1;
    return (int32_t)rd32(m->fold + 8 * lo + 4);
}

static uint32_t utf8_encode(uint32_t c, uint8_t *out)
{
    if (c < 0x80) { out[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { out[0] = (uint8_t)(0xC0 | c >> 6); out[1] = (uint8_t)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        out[0] = (uint8_t)(0xE0 | c >> 12); out[1] = (uint8_t)(0x80 | (c >> 6 & 63)); out[2] = (uint8_t)(0x80 | (c & 63));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | c >> 18); out[1] = (uint8_t)(0x80 | (c >> 12 & 63));
    out[2] = (uint8_t)(0x80 | (c >> 6 & 63)); out[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

static int is_special(const sm_model *m, uint32_t t) { return t == m->bos_id || t == m->eos_id || t == m->unk_id; }

/* The non-special token whose bytes are exactly b[0..n), or -1. */
static int32_t find_token(const sm_model *m, const uint8_t *b, uint32_t n)
{
    uint32_t at = 0;
    for (uint32_t t = 0; t < m->vocab_size; t++) {
        uint32_t len = m->vocab[at];
        if (len == n && !is_special(m, t) && !memcmp(m->vocab + at + 1, b, n)) return (int32_t)t;
        at += 1 + len;
    }
    return -1;
}

static int cp_class(const sm_model *m, uint32_t c)
{
    uint32_t lo = 0, hi = m->n_classes; /* first range with lo > c, minus one */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (rd32(m->classes + 8 * mid) <= c) lo = mid + 1; else hi = mid;
    }
    if (!lo) return CL_OTHER;
    uint32_t w = rd32(m->classes + 8 * (lo - 1) + 4);
    return c <= w >> 8 ? (int)(w & 255) : CL_OTHER;
}

/* Merge rank of (a, b) and its result, or -1. */
static int32_t merge_rank(const sm_model *m, uint32_t a, uint32_t b, uint32_t *res)
{
    for (uint32_t k = 0; k < m->n_merges; k++) {
        const uint8_t *e = m->merges + 6 * k;
        if (rd16(e) == a && rd16(e + 2) == b) { *res = rd16(e + 4); return (int32_t)k; }
    }
    return -1;
}

/* BPE of one pre-token (code points cps[0..n)) appended at ids[*n_ids..]. */
static int bpe_piece(const sm_model *m, const uint16_t *byte_id, const uint32_t *cps, uint32_t n, uint32_t *ids,
                     uint32_t max_ids, uint32_t *n_ids)
{
    uint32_t start = *n_ids, cnt = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b[4];
        uint32_t k = utf8_encode(cps[i], b);
        for (uint32_t j = 0; j < k; j++) {
            if (start + cnt >= max_ids) return SM_ERR_ENCODE;
            ids[start + cnt++] = byte_id[b[j]];
        }
    }
    uint32_t *w = ids + start;
    while (cnt > 1) { /* the adjacent pair of lowest rank, leftmost first */
        int32_t best = -1;
        uint32_t at = 0, res = 0, r;
        for (uint32_t k = 0; k + 1 < cnt; k++) {
            int32_t rank = merge_rank(m, w[k], w[k + 1], &r);
            if (rank >= 0 && (best < 0 || rank < best)) { best = rank; at = k; res = r; }
        }
        if (best < 0) break;
        w[at] = res;
        memmove(w + at + 1, w + at + 2, 4u * (cnt - at - 2));
        cnt--;
    }
    *n_ids = start + cnt;
    return SM_OK;
}

#define PIECE_MAX 256u /* longer pre-tokens are encoded in chunks of this many code points */

static int encode_bpe(const sm_model *m, cp_reader *r, uint32_t *ids, uint32_t max_ids, uint32_t *n_ids)
{
    static const char *const contractions[7] = {"s", "t", "re", "ve", "m", "ll", "d"};
    uint16_t byte_id[256];
    uint32_t at = 0;
    for (uint32_t t = 0; t < m->vocab_size; t++) {
        if (m->vocab[at] == 1) byte_id[m->vocab[at + 1]] = (uint16_t)t;
        at += 1 + m->vocab[at];
    }
    /* a look-ahead buffer of folded code points */
    uint32_t buf[PIECE_MAX + 4], nb = 0;
    int eof = 0;
#define FILL(k) while (!eof && nb < (k)) { int32_t c_ = next_cp(r); if (c_ < 0) { eof = 1; break; } buf[nb++] = (uint32_t)c_; }
    for (;;) {
        FILL(PIECE_MAX + 4);
        if (r->err) return r->err;
        if (!nb) break;
        uint32_t j = 0;
        if (buf[0] == '\'') {
            for (int k = 0; k < 7 && !j; k++) {
                uint32_t L = (uint32_t)strlen(contractions[k]), ok = nb >= 1 + L;
                for (uint32_t i = 0; ok && i < L; i++) ok = buf[1 + i] == (uint32_t)contractions[k][i];
                if (ok) j = 1 + L;
            }
        }
        int chunked = 0;
        if (!j) {
            uint32_t s = (buf[0] == ' ' && nb > 1 && cp_class(m, buf[1]) != CL_SPACE) ? 1 : 0;
            int cl = cp_class(m, buf[s]);
            if (cl != CL_SPACE) {
                j = s + 1;
                while (j < nb && cp_class(m, buf[j]) == cl) j++;
                chunked = j == nb && !eof; /* the run may continue past the buffer */
            } else {
                uint32_t k = 0;
                while (k < nb && cp_class(m, buf[k]) == CL_SPACE) k++;
                if (k == nb && !eof) { j = k - 1; chunked = 1; } /* keep one for the look-ahead rule */
                else j = (k == nb || k == 1) ? k : k - 1;
                if (!j) j = 1;
            }
        }
        if (chunked) {
            /* a run longer than the buffer: a pre-token of more than PIECE_MAX code points is
             * merged in chunks, which can differ from the host for such (pathological) text */
            if (j > PIECE_MAX) j = PIECE_MAX;
        }
        int err = bpe_piece(m, byte_id, buf, j, ids, max_ids, n_ids);
        if (err) return err;
        memmove(buf, buf + j, 4u * (nb - j));
        nb -= j;
    }
#undef FILL
    return r->err;
}

int sm_encode(const sm_model *m, const uint8_t *text, uint32_t len, uint32_t *ids, uint32_t max_ids,
              uint32_t *n_ids)
{
    if (!m || (len && !text) || !n_ids || (max_ids && !ids)) return SM_ERR_ARG;
    *n_ids = 0;
    if (m->version < 2 || m->encoder == 0) return SM_ERR_NO_ENCODER;
    cp_reader r = {m, text, len, 0, 0, 0, 0};
    if (m->encoder == 2) return encode_bpe(m, &r, ids, max_ids, n_ids);
    for (;;) {
        int32_t c = next_cp(&r);
        if (c < 0) return r.err;
        uint8_t b[4];
        int32_t t = find_token(m, b, utf8_encode((uint32_t)c, b));
        if (t < 0) {
            if (m->unk_id == 0xFFFFFFFFu) return SM_ERR_ENCODE;
            t = (int32_t)m->unk_id;
        }
        if (*n_ids >= max_ids) return SM_ERR_ENCODE;
        ids[(*n_ids)++] = (uint32_t)t;
    }
}
