/* gguf_write.h - a small GGUF v3 writer shared by the programs in tools/.
 *
 * Include after tfm.h (it uses tfm_type, tfm_type_row_size and tfm_quantize_row). Metadata
 * and tensor descriptions are collected in memory; tensor data is either borrowed bytes
 * (gw_tensor) or produced row by row at write time (gw_tensor_rows), so a tool can stream a
 * model far bigger than memory. Everything borrowed must live until gw_write() returns.
 * Every function returns 0 on success and -1 on failure, with a one-line reason in w->error;
 * the writer is still safe to free after a failure. Keys and tensors are written in the order
 * they were added. Host byte order must be little-endian (checked by gw_write).
 */
#ifndef TFM_GGUF_WRITE_H
#define TFM_GGUF_WRITE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { /* GGUF metadata value types */
    GW_U8 = 0, GW_I8, GW_U16, GW_I16, GW_U32, GW_I32, GW_F32, GW_BOOL, GW_STRING, GW_ARRAY,
    GW_U64, GW_I64, GW_F64
};

/* Produces rows [row0, row0 + n) of a tensor as floats (n * ne[0] values into dst).
   Returns 0, or -1 on failure (the write then fails). */
typedef int (*gw_rows_fn)(void *user, int64_t row0, int64_t n, float *dst);

typedef struct {
    char name[128];
    uint32_t n_dims;
    int64_t ne[4];      /* ne[0] is the contiguous (row) dimension, as GGUF stores it */
    int type;           /* tfm_type */
    const void *data;   /* borrowed bytes in `type`'s layout, or NULL when rows_fn is set */
    gw_rows_fn rows_fn; /* float rows, converted to `type` while writing */
    void *rows_user;
    uint64_t nbytes;
} gw_tensor_desc;

typedef struct {
    unsigned char *meta;        /* serialized key/value pairs */
    size_t meta_len, meta_cap;
    uint64_t n_kv;
    gw_tensor_desc *tensors;
    size_t n_tensors, tensors_cap;
    uint32_t alignment;
    int failed;
    char error[512];            /* why the last call failed */
} gw_writer;

static inline void gw_init(gw_writer *w) { memset(w, 0, sizeof *w); w->alignment = 32; }

static inline void gw_free(gw_writer *w) { free(w->meta); free(w->tensors); memset(w, 0, sizeof *w); }

static inline int gw__fail(gw_writer *w, const char *what, const char *name) {
    w->failed = 1;
    snprintf(w->error, sizeof w->error, "%s%s%s", what, name ? ": " : "", name ? name : "");
    return -1;
}

static inline void gw__put(gw_writer *w, const void *p, size_t n) {
    if (w->failed) return;
    if (w->meta_len + n > w->meta_cap) {
        size_t cap = w->meta_cap ? w->meta_cap : 4096;
        unsigned char *m;
        while (cap < w->meta_len + n) cap *= 2;
        m = (unsigned char *)realloc(w->meta, cap);
        if (!m) { gw__fail(w, "out of memory", NULL); return; }
        w->meta = m; w->meta_cap = cap;
    }
    memcpy(w->meta + w->meta_len, p, n);
    w->meta_len += n;
}
static inline void gw__u32(gw_writer *w, uint32_t v) { gw__put(w, &v, 4); }
static inline void gw__u64(gw_writer *w, uint64_t v) { gw__put(w, &v, 8); }
static inline void gw__str(gw_writer *w, const char *s, size_t n) { gw__u64(w, n); gw__put(w, s, n); }
static inline void gw__key(gw_writer *w, const char *key, uint32_t type) {
    gw__str(w, key, strlen(key)); gw__u32(w, type); w->n_kv++;
}

static inline int gw_u32(gw_writer *w, const char *key, uint32_t v) { gw__key(w, key, GW_U32); gw__u32(w, v); return -w->failed; }
static inline int gw_i32(gw_writer *w, const char *key, int32_t v) { gw__key(w, key, GW_I32); gw__put(w, &v, 4); return -w->failed; }
static inline int gw_f32(gw_writer *w, const char *key, float v) { gw__key(w, key, GW_F32); gw__put(w, &v, 4); return -w->failed; }
static inline int gw_bool(gw_writer *w, const char *key, int v) { unsigned char b = (unsigned char)(v != 0); gw__key(w, key, GW_BOOL); gw__put(w, &b, 1); return -w->failed; }
static inline int gw_str(gw_writer *w, const char *key, const char *s) { gw__key(w, key, GW_STRING); gw__str(w, s, strlen(s)); return -w->failed; }

/* Arrays of strings: n strings, string i is strs[i] with length lens[i] (lens NULL: strlen). */
static inline int gw_arr_str(gw_writer *w, const char *key, const char *const *strs, const size_t *lens, size_t n) {
    size_t i;
    gw__key(w, key, GW_ARRAY); gw__u32(w, GW_STRING); gw__u64(w, n);
    for (i = 0; i < n; i++) gw__str(w, strs[i], lens ? lens[i] : strlen(strs[i]));
    return -w->failed;
}
static inline int gw_arr_f32(gw_writer *w, const char *key, const float *v, size_t n) {
    gw__key(w, key, GW_ARRAY); gw__u32(w, GW_F32); gw__u64(w, n); gw__put(w, v, n * 4); return -w->failed;
}
static inline int gw_arr_i32(gw_writer *w, const char *key, const int32_t *v, size_t n) {
    gw__key(w, key, GW_ARRAY); gw__u32(w, GW_I32); gw__u64(w, n); gw__put(w, v, n * 4); return -w->failed;
}
/* A key whose value is already serialized (GGUF value bytes after the type), e.g. copied from
   another file: `value` holds `n` bytes. */
static inline int gw_raw(gw_writer *w, const char *key, uint32_t type, const void *value, size_t n) {
    gw__key(w, key, type); gw__put(w, value, n); return -w->failed;
}

/* Size of a GGUF scalar type, 0 for strings, arrays and unknown types. */
static inline size_t gw_scalar_size(uint32_t type) {
    static const unsigned char sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < 13 ? sizes[type] : 0;
}

/* Copies a key/value read by tfm.h's GGUF reader (which checked its bounds) under the same or
   another name. Arrays of arrays are refused. */
static inline int gw_copy_kv(gw_writer *w, const char *key, const tfm_gguf_kv *kv) {
    const unsigned char *p = kv->value;
    uint64_t i, len;
    if (kv->type == TFM_GGUF_STRING) {
        memcpy(&len, p, 8);
        return gw_raw(w, key, GW_STRING, p, 8 + (size_t)len);
    }
    if (kv->type != TFM_GGUF_ARRAY) {
        if (!gw_scalar_size(kv->type)) return gw__fail(w, "cannot copy key of unknown type", key);
        return gw_raw(w, key, kv->type, p, gw_scalar_size(kv->type));
    }
    if (kv->arr_type == TFM_GGUF_ARRAY || (kv->arr_type != TFM_GGUF_STRING && !gw_scalar_size(kv->arr_type)))
        return gw__fail(w, "cannot copy array of arrays or of unknown type", key);
    gw__key(w, key, GW_ARRAY); gw__u32(w, kv->arr_type); gw__u64(w, kv->arr_n);
    if (kv->arr_type != TFM_GGUF_STRING) { gw__put(w, p, (size_t)kv->arr_n * gw_scalar_size(kv->arr_type)); return -w->failed; }
    for (i = 0; i < kv->arr_n; i++) {
        memcpy(&len, p, 8);
        gw__put(w, p, 8 + (size_t)len);
        p += 8 + len;
    }
    return -w->failed;
}

static inline gw_tensor_desc *gw__add_tensor(gw_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne) {
    gw_tensor_desc *t;
    uint32_t i;
    uint64_t rows = 1;
    size_t row_size;
    if (w->failed) return NULL;
    if (n_dims < 1 || n_dims > 4 || strlen(name) >= 64) { gw__fail(w, "bad tensor name or rank", name); return NULL; }
    for (i = 0; i < n_dims; i++) {
        if (ne[i] <= 0 || (i > 0 && rows > UINT64_MAX / (uint64_t)ne[i])) { gw__fail(w, "bad tensor shape", name); return NULL; }
        if (i > 0) rows *= (uint64_t)ne[i];
    }
    row_size = tfm_type_row_size((tfm_type)type, ne[0]);
    if (row_size == 0) { gw__fail(w, "row length does not fit the tensor type", name); return NULL; }
    if (rows > UINT64_MAX / 2 / row_size) { gw__fail(w, "tensor too big", name); return NULL; }
    if (w->n_tensors == w->tensors_cap) {
        size_t cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        gw_tensor_desc *nt = (gw_tensor_desc *)realloc(w->tensors, cap * sizeof *nt);
        if (!nt) { gw__fail(w, "out of memory", NULL); return NULL; }
        w->tensors = nt; w->tensors_cap = cap;
    }
    t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->n_dims = n_dims; t->type = type;
    for (i = 0; i < 4; i++) t->ne[i] = i < n_dims ? ne[i] : 1;
    t->nbytes = rows * row_size;
    return t;
}

/* Adds a tensor of shape ne[0..n_dims) (ne[0] contiguous) whose bytes are `data` in `type`'s
 * layout (for quantized types, rows of ne[0]/32 blocks). The data must live until gw_write. */
static inline int gw_tensor(gw_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne, const void *data) {
    gw_tensor_desc *t = gw__add_tensor(w, name, type, n_dims, ne);
    if (!t) return -1;
    t->data = data;
    return 0;
}

/* Adds a tensor whose rows fn(user, ...) produces as floats while gw_write runs; they are
   converted to `type` with tfm_quantize_row. `user` must live until gw_write. */
static inline int gw_tensor_rows(gw_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne,
                          gw_rows_fn fn, void *user) {
    gw_tensor_desc *t = gw__add_tensor(w, name, type, n_dims, ne);
    if (!t) return -1;
    t->rows_fn = fn;
    t->rows_user = user;
    return 0;
}

static inline uint64_t gw__pad(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* Streams a row-produced tensor in chunks of about 4 MB of floats. */
static inline int gw__write_rows(gw_writer *w, const gw_tensor_desc *t, FILE *f) {
    int64_t n_rows = (int64_t)(t->nbytes / tfm_type_row_size((tfm_type)t->type, t->ne[0]));
    int64_t chunk = ((int64_t)1 << 20) / t->ne[0], r;
    size_t row_size = tfm_type_row_size((tfm_type)t->type, t->ne[0]);
    float *x;
    unsigned char *out;
    int rc = 0;
    if (chunk < 1) chunk = 1;
    if (chunk > n_rows) chunk = n_rows;
    x = (float *)malloc((size_t)chunk * (size_t)t->ne[0] * sizeof(float));
    out = (unsigned char *)malloc((size_t)chunk * row_size);
    if (!x || !out) rc = gw__fail(w, "out of memory", t->name);
    for (r = 0; rc == 0 && r < n_rows; r += chunk) {
        int64_t n = n_rows - r < chunk ? n_rows - r : chunk, i;
        if (t->rows_fn(t->rows_user, r, n, x) != 0) { rc = gw__fail(w, "cannot produce tensor data", t->name); break; }
        for (i = 0; i < n; i++)
            if (tfm_quantize_row((tfm_type)t->type, x + i * t->ne[0], out + (size_t)i * row_size, t->ne[0]) != TFM_OK)
                rc = gw__fail(w, "cannot convert tensor", t->name);
        if (rc == 0 && fwrite(out, row_size, (size_t)n, f) != (size_t)n) rc = gw__fail(w, "write error", t->name);
    }
    free(x);
    free(out);
    return rc;
}

static inline int gw__write_header(gw_writer *w, FILE *f) {
    static const unsigned char zeros[64] = {0};
    uint32_t magic_version[2] = {0x46554747u /* "GGUF" */, 3};
    uint64_t counts[2], off = 0, pos = 24 + w->meta_len, pad;
    size_t i;
    uint32_t d;
    int ok = 1;
    counts[0] = w->n_tensors; counts[1] = w->n_kv;
    ok &= fwrite(magic_version, 4, 2, f) == 2;
    ok &= fwrite(counts, 8, 2, f) == 2;
    if (w->meta_len) ok &= fwrite(w->meta, 1, w->meta_len, f) == w->meta_len;
    for (i = 0; i < w->n_tensors; i++) {
        const gw_tensor_desc *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        uint32_t ty = (uint32_t)t->type;
        ok &= fwrite(&len, 8, 1, f) == 1;
        ok &= fwrite(t->name, 1, len, f) == len;
        ok &= fwrite(&t->n_dims, 4, 1, f) == 1;
        for (d = 0; d < t->n_dims; d++) { uint64_t ne = (uint64_t)t->ne[d]; ok &= fwrite(&ne, 8, 1, f) == 1; }
        ok &= fwrite(&ty, 4, 1, f) == 1;
        ok &= fwrite(&off, 8, 1, f) == 1;
        pos += 8 + len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        off = gw__pad(off + t->nbytes, w->alignment);
    }
    pad = gw__pad(pos, w->alignment) - pos;
    ok &= fwrite(zeros, 1, (size_t)pad, f) == pad;
    return ok ? 0 : gw__fail(w, "write error", "header");
}

/* Writes the file. On failure the partial file is removed. */
/* The whole file into an open stream: the one serializer behind gw_write and gw_write_memory. */
static inline int gw__write_stream(gw_writer *w, FILE *f) {
    static const unsigned char zeros[64] = {0};
    const uint16_t one = 1;
    size_t i;
    int rc;
    if (w->failed) return -1;
    if (*(const unsigned char *)&one != 1) return gw__fail(w, "big-endian host: GGUF is little-endian", NULL);
    if (w->alignment == 0 || w->alignment > sizeof zeros || (w->alignment & (w->alignment - 1)))
        return gw__fail(w, "alignment must be a power of two up to 64", NULL);
    rc = gw__write_header(w, f);
    for (i = 0; rc == 0 && i < w->n_tensors; i++) {
        const gw_tensor_desc *t = &w->tensors[i];
        uint64_t pad = gw__pad(t->nbytes, w->alignment) - t->nbytes;
        if (t->rows_fn) rc = gw__write_rows(w, t, f);
        else if (fwrite(t->data, 1, (size_t)t->nbytes, f) != t->nbytes) rc = gw__fail(w, "write error", t->name);
        if (rc == 0 && fwrite(zeros, 1, (size_t)pad, f) != pad) rc = gw__fail(w, "write error", t->name);
    }
    return rc;
}

static inline int gw_write(gw_writer *w, const char *path) {
    FILE *f;
    int rc;
    if (w->failed) return -1;
    f = fopen(path, "wb");
    if (!f) return gw__fail(w, "cannot create", path);
    rc = gw__write_stream(w, f);
    if (fclose(f) != 0 && rc == 0) rc = gw__fail(w, "write error", path);
    if (rc != 0) remove(path);
    return rc;
}

/* The file as a malloc'd buffer (for tests and benchmarks that load from memory); NULL on error. */
static inline unsigned char *gw_write_memory(gw_writer *w, size_t *size) {
    FILE *f = tmpfile();
    unsigned char *p = NULL;
    long n;
    if (!f) { gw__fail(w, "cannot create a temporary file", NULL); return NULL; }
    if (gw__write_stream(w, f) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = (unsigned char *)malloc((size_t)n)) != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) *size = (size_t)n;
    return p;
}

/* The llama.* hyperparameter keys of a Llama checkpoint (RoPE over the whole head, base 10000,
   RMSNorm eps 1e-5: what llama2.c and the random models use). */
typedef struct { int64_t vocab, ctx, dim, layers, ffn, heads, kv_heads; } gw_llama_shape;

static inline int gw_llama_keys(gw_writer *w, const gw_llama_shape *c) {
    gw_u32(w, "llama.vocab_size", (uint32_t)c->vocab);
    gw_u32(w, "llama.context_length", (uint32_t)c->ctx);
    gw_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    gw_u32(w, "llama.block_count", (uint32_t)c->layers);
    gw_u32(w, "llama.feed_forward_length", (uint32_t)c->ffn);
    gw_u32(w, "llama.attention.head_count", (uint32_t)c->heads);
    gw_u32(w, "llama.attention.head_count_kv", (uint32_t)c->kv_heads);
    gw_u32(w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->heads));
    gw_f32(w, "llama.rope.freq_base", 10000.0f);
    return gw_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
}

/* ------------------------------------------------------------------ output type policy */

/* Parses a --type argument; returns the tfm_type or -1. */
static inline int gw_parse_type(const char *s) {
    if (strcmp(s, "f32") == 0) return TFM_TYPE_F32;
    if (strcmp(s, "f16") == 0) return TFM_TYPE_F16;
    if (strcmp(s, "bf16") == 0) return TFM_TYPE_BF16;
    if (strcmp(s, "q8_0") == 0) return TFM_TYPE_Q8_0;
    if (strcmp(s, "q4_0") == 0) return TFM_TYPE_Q4_0;
    return -1;
}

/* general.file_type as the ecosystem numbers it (llama_ftype). */
static inline uint32_t gw_file_type(int type) {
    switch (type) {
    case TFM_TYPE_F16: return 1;
    case TFM_TYPE_Q4_0: return 2;
    case TFM_TYPE_Q8_0: return 7;
    case TFM_TYPE_BF16: return 32;
    default: return 0;
    }
}

/* The type a tensor gets when the file's type is `target`: 1-D tensors (norms, biases) stay F32;
   a matrix whose rows do not split into 32-value blocks falls back to F16; the output head
   (`is_head`: output.weight, or token_embd.weight when tied) keeps Q8_0 when the target is Q4_0,
   because 4-bit logits cost far more quality than 4-bit inner layers. */
static inline int gw_pick_type(int target, uint32_t n_dims, int64_t ne0, int is_head) {
    if (n_dims < 2) return TFM_TYPE_F32;
    if (target == TFM_TYPE_Q4_0 && is_head) target = TFM_TYPE_Q8_0;
    if ((target == TFM_TYPE_Q8_0 || target == TFM_TYPE_Q4_0) && ne0 % TFM_QK != 0) return TFM_TYPE_F16;
    return target;
}

#endif /* TFM_GGUF_WRITE_H */
