/* vocab.h - a tokenizer vocabulary as the tools collect it, written as GGUF tokenizer.* keys;
 * plus the llama2.c tokenizer.bin reader shared by llama2c-to-gguf and convert.
 *
 * Include after gguf_write.h. Functions return 0 or -1 with a reason in v->error.
 */
#ifndef TFM_TOOLS_VOCAB_H
#define TFM_TOOLS_VOCAB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Token types as GGUF numbers them (tokenizer.ggml.token_type). */
enum { VOCAB_NORMAL = 1, VOCAB_UNKNOWN = 2, VOCAB_CONTROL = 3, VOCAB_USER = 4, VOCAB_UNUSED = 5, VOCAB_BYTE = 6 };

typedef struct {
    const char *model;      /* tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte BPE) */
    const char *pre;        /* tokenizer.ggml.pre, or NULL */
    size_t n;               /* tokens */
    char **text;            /* [n] token bytes (NUL added, may contain NUL) */
    size_t *len;            /* [n] */
    float *scores;          /* [n] */
    int32_t *types;         /* [n] VOCAB_* */
    size_t cap;
    size_t n_merges;
    char **merges;          /* [n_merges] "left right" */
    size_t merges_cap;
    int64_t bos, eos, unk, pad; /* -1: not written */
    int add_bos, add_eos;   /* -1: not written */
    int has_scores;         /* write tokenizer.ggml.scores */
    char error[256];
} vocab;

static inline void vocab_init(vocab *v) {
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = v->pad = -1;
    v->add_bos = v->add_eos = -1;
}

static inline void vocab_free(vocab *v) {
    size_t i;
    for (i = 0; i < v->n; i++) free(v->text[i]);
    for (i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->text); free(v->len); free(v->scores); free(v->types); free(v->merges);
    vocab_init(v);
}

static inline int vocab__fail(vocab *v, const char *what, const char *detail) {
    snprintf(v->error, sizeof v->error, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
}

static inline char *vocab__dup(const char *s, size_t n) {
    char *d = (char *)malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

/* Appends token number v->n. */
static inline int vocab_add(vocab *v, const char *s, size_t n, float score, int32_t type) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 1024;
        char **t = (char **)realloc(v->text, cap * sizeof *t);
        size_t *l;
        float *sc;
        int32_t *ty;
        if (t) v->text = t;
        l = (size_t *)realloc(v->len, cap * sizeof *l);
        if (l) v->len = l;
        sc = (float *)realloc(v->scores, cap * sizeof *sc);
        if (sc) v->scores = sc;
        ty = (int32_t *)realloc(v->types, cap * sizeof *ty);
        if (ty) v->types = ty;
        if (!t || !l || !sc || !ty) return vocab__fail(v, "out of memory", NULL);
        v->cap = cap;
    }
    if (!(v->text[v->n] = vocab__dup(s, n))) return vocab__fail(v, "out of memory", NULL);
    v->len[v->n] = n;
    v->scores[v->n] = score;
    v->types[v->n] = type;
    v->n++;
    return 0;
}

static inline int vocab_add_merge(vocab *v, const char *s, size_t n) {
    if (v->n_merges == v->merges_cap) {
        size_t cap = v->merges_cap ? 2 * v->merges_cap : 1024;
        char **m = (char **)realloc(v->merges, cap * sizeof *m);
        if (!m) return vocab__fail(v, "out of memory", NULL);
        v->merges = m;
        v->merges_cap = cap;
    }
    if (!(v->merges[v->n_merges] = vocab__dup(s, n))) return vocab__fail(v, "out of memory", NULL);
    v->n_merges++;
    return 0;
}

/* "<0xXX>" with two upper-case hex digits: SentencePiece's byte-fallback pieces. */
static inline int vocab_is_byte_piece(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    return n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && s[3] && s[4] &&
           strchr(hex, s[3]) != NULL && strchr(hex, s[4]) != NULL;
}

/* Writes the tokenizer.ggml.* keys. */
static inline int vocab_write(const vocab *v, gw_writer *w) {
    gw_str(w, "tokenizer.ggml.model", v->model ? v->model : "llama");
    if (v->pre) gw_str(w, "tokenizer.ggml.pre", v->pre);
    gw_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->text, v->len, v->n);
    if (v->has_scores) gw_arr_f32(w, "tokenizer.ggml.scores", v->scores, v->n);
    gw_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n);
    if (v->n_merges) gw_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL, v->n_merges);
    if (v->bos >= 0) gw_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (v->eos >= 0) gw_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0) gw_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (v->pad >= 0) gw_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    if (v->add_bos >= 0) gw_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    if (v->add_eos >= 0) gw_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    return -w->failed;
}

/* ------------------------------------------------------------------ llama2.c tokenizer.bin */

/* Reads a whole file (up to max_bytes) into a malloc'd buffer. */
static inline unsigned char *vocab_read_file(const char *path, size_t max_bytes, size_t *size) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f) return NULL;
    for (;;) {
        size_t got;
        if (n == cap) {
            unsigned char *b;
            cap = cap ? 2 * cap : 65536;
            if (cap > max_bytes + 1) cap = max_bytes + 1;
            if (n == cap) break; /* hit the limit */
            b = (unsigned char *)realloc(buf, cap);
            if (!b) { free(buf); fclose(f); return NULL; }
            buf = b;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f) || n > max_bytes) { free(buf); fclose(f); return NULL; }
    fclose(f);
    *size = n;
    return buf ? buf : (unsigned char *)malloc(1);
}

static inline int32_t vocab__i32(const unsigned char *p) { int32_t x; memcpy(&x, p, 4); return x; }

/* Replaces every ' ' with U+2581 (SentencePiece's word marker), which llama2.c's export turned
   into spaces. Returns a malloc'd string and its length. */
static inline char *vocab__spaces_to_marker(const char *s, size_t n, size_t *out_len) {
    size_t i, k = 0, spaces = 0;
    char *d;
    for (i = 0; i < n; i++) spaces += s[i] == ' ';
    d = (char *)malloc(n + 2 * spaces + 1);
    if (!d) return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == ' ') { d[k++] = (char)0xe2; d[k++] = (char)0x96; d[k++] = (char)0x81; }
        else d[k++] = s[i];
    }
    d[k] = 0;
    *out_len = k;
    return d;
}

/* Loads a llama2.c tokenizer.bin: int32 max_token_length, then per token f32 score, int32 length,
   bytes. llama2.c's export wrote BOS/EOS as "\n<s>\n"/"\n</s>\n" and U+2581 as ' '; both are
   undone so the vocabulary is SentencePiece's again. Ids 0/1/2 are <unk>/<s>/</s> as llama2.c
   assumes. */
static inline int vocab_load_llama2c(vocab *v, const char *path) {
    size_t size = 0, pos = 4;
    unsigned char *buf = vocab_read_file(path, (size_t)1 << 30, &size);
    int32_t max_len;
    int rc = 0;
    if (!buf) return vocab__fail(v, "cannot read tokenizer", path);
    if (size < 4 || (max_len = vocab__i32(buf)) <= 0) { free(buf); return vocab__fail(v, "not a llama2.c tokenizer (bad header)", path); }
    v->model = "llama";
    v->has_scores = 1;
    while (rc == 0 && pos < size) {
        float score;
        int32_t len;
        const char *s;
        char *piece;
        size_t plen;
        int32_t type;
        if (size - pos < 8) { rc = vocab__fail(v, "tokenizer truncated in a token header", path); break; }
        memcpy(&score, buf + pos, 4);
        len = vocab__i32(buf + pos + 4);
        pos += 8;
        if (len < 0 || (size_t)len > size - pos) { rc = vocab__fail(v, "tokenizer token length out of range", path); break; }
        s = (const char *)buf + pos;
        pos += (size_t)len;
        if (len == 5 && memcmp(s, "\n<s>\n", 5) == 0) { s = "<s>"; len = 3; }
        else if (len == 6 && memcmp(s, "\n</s>\n", 6) == 0) { s = "</s>"; len = 4; }
        if (!(piece = vocab__spaces_to_marker(s, (size_t)len, &plen))) { rc = vocab__fail(v, "out of memory", NULL); break; }
        type = v->n == 0 ? VOCAB_UNKNOWN : v->n <= 2 ? VOCAB_CONTROL
             : vocab_is_byte_piece(piece, plen) ? VOCAB_BYTE : VOCAB_NORMAL;
        rc = vocab_add(v, piece, plen, score, type);
        free(piece);
    }
    free(buf);
    if (rc == 0 && v->n < 3) rc = vocab__fail(v, "tokenizer has fewer than 3 tokens", path);
    v->unk = 0; v->bos = 1; v->eos = 2;
    return rc;
}

#endif /* TFM_TOOLS_VOCAB_H */
