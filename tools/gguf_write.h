/* gguf_write.h - a small GGUF v3 writer shared by the programs in tools/.
 *
 * Include after tfm.h (it uses tfm_type and tfm_type_row_size). Metadata and tensor
 * descriptions are collected in memory; tensor data is borrowed until gw_write() returns.
 * Every function returns 0 on success and -1 on failure (out of memory or I/O), after which
 * the writer is still safe to free. Keys and tensors are written in the order they were added.
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

typedef struct {
    char name[128];
    uint32_t n_dims;
    int64_t ne[4];      /* ne[0] is the contiguous (row) dimension, as GGUF stores it */
    int type;           /* tfm_type */
    const void *data;   /* borrowed */
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
} gw_writer;

static void gw_init(gw_writer *w) { memset(w, 0, sizeof *w); w->alignment = 32; }

static void gw_free(gw_writer *w) { free(w->meta); free(w->tensors); memset(w, 0, sizeof *w); }

static void gw__put(gw_writer *w, const void *p, size_t n) {
    if (w->failed) return;
    if (w->meta_len + n > w->meta_cap) {
        size_t cap = w->meta_cap ? w->meta_cap : 4096;
        unsigned char *m;
        while (cap < w->meta_len + n) cap *= 2;
        m = (unsigned char *)realloc(w->meta, cap);
        if (!m) { w->failed = 1; return; }
        w->meta = m; w->meta_cap = cap;
    }
    memcpy(w->meta + w->meta_len, p, n);
    w->meta_len += n;
}
static void gw__u32(gw_writer *w, uint32_t v) { gw__put(w, &v, 4); }
static void gw__u64(gw_writer *w, uint64_t v) { gw__put(w, &v, 8); }
static void gw__str(gw_writer *w, const char *s, size_t n) { gw__u64(w, n); gw__put(w, s, n); }
static void gw__key(gw_writer *w, const char *key, uint32_t type) {
    gw__str(w, key, strlen(key)); gw__u32(w, type); w->n_kv++;
}

static int gw_u32(gw_writer *w, const char *key, uint32_t v) { gw__key(w, key, GW_U32); gw__u32(w, v); return -w->failed; }
static int gw_i32(gw_writer *w, const char *key, int32_t v) { gw__key(w, key, GW_I32); gw__put(w, &v, 4); return -w->failed; }
static int gw_f32(gw_writer *w, const char *key, float v) { gw__key(w, key, GW_F32); gw__put(w, &v, 4); return -w->failed; }
static int gw_bool(gw_writer *w, const char *key, int v) { unsigned char b = (unsigned char)(v != 0); gw__key(w, key, GW_BOOL); gw__put(w, &b, 1); return -w->failed; }
static int gw_str(gw_writer *w, const char *key, const char *s) { gw__key(w, key, GW_STRING); gw__str(w, s, strlen(s)); return -w->failed; }

/* Arrays of strings: n strings, string i is strs[i] with length lens[i] (lens NULL: strlen). */
static int gw_arr_str(gw_writer *w, const char *key, const char *const *strs, const size_t *lens, size_t n) {
    size_t i;
    gw__key(w, key, GW_ARRAY); gw__u32(w, GW_STRING); gw__u64(w, n);
    for (i = 0; i < n; i++) gw__str(w, strs[i], lens ? lens[i] : strlen(strs[i]));
    return -w->failed;
}
static int gw_arr_f32(gw_writer *w, const char *key, const float *v, size_t n) {
    gw__key(w, key, GW_ARRAY); gw__u32(w, GW_F32); gw__u64(w, n); gw__put(w, v, n * 4); return -w->failed;
}
static int gw_arr_i32(gw_writer *w, const char *key, const int32_t *v, size_t n) {
    gw__key(w, key, GW_ARRAY); gw__u32(w, GW_I32); gw__u64(w, n); gw__put(w, v, n * 4); return -w->failed;
}

/* Adds a tensor of shape ne[0..n_dims) (ne[0] contiguous) whose bytes are `data` in `type`'s
 * layout (for quantized types, rows of ne[0]/32 blocks). The data must live until gw_write. */
static int gw_tensor(gw_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne, const void *data) {
    gw_tensor_desc *t;
    uint32_t i;
    uint64_t rows = 1;
    size_t row_size;
    if (w->failed || n_dims < 1 || n_dims > 4 || strlen(name) >= sizeof t->name) return -1;
    row_size = tfm_type_row_size((tfm_type)type, ne[0]);
    if (row_size == 0) return -1;
    if (w->n_tensors == w->tensors_cap) {
        size_t cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        gw_tensor_desc *nt = (gw_tensor_desc *)realloc(w->tensors, cap * sizeof *nt);
        if (!nt) { w->failed = 1; return -1; }
        w->tensors = nt; w->tensors_cap = cap;
    }
    t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->n_dims = n_dims; t->type = type; t->data = data;
    for (i = 0; i < 4; i++) t->ne[i] = i < n_dims ? ne[i] : 1;
    for (i = 1; i < n_dims; i++) rows *= (uint64_t)ne[i];
    t->nbytes = rows * row_size;
    return 0;
}

static uint64_t gw__pad(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int gw_write(gw_writer *w, const char *path) {
    static const unsigned char zeros[64] = {0};
    FILE *f;
    uint64_t off = 0, pos;
    size_t i;
    uint32_t d;
    int ok = 1;
    if (w->failed) return -1;
    f = fopen(path, "wb");
    if (!f) return -1;
    {
        uint32_t magic_version[2] = {0x46554747u /* "GGUF" */, 3};
        uint64_t counts[2];
        counts[0] = w->n_tensors; counts[1] = w->n_kv;
        ok &= fwrite(magic_version, 4, 2, f) == 2;
        ok &= fwrite(counts, 8, 2, f) == 2;
    }
    ok &= fwrite(w->meta, 1, w->meta_len, f) == w->meta_len;
    pos = 24 + w->meta_len;
    for (i = 0; i < w->n_tensors; i++) {
        const gw_tensor_desc *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        ok &= fwrite(&len, 8, 1, f) == 1;
        ok &= fwrite(t->name, 1, len, f) == len;
        ok &= fwrite(&t->n_dims, 4, 1, f) == 1;
        for (d = 0; d < t->n_dims; d++) { uint64_t ne = (uint64_t)t->ne[d]; ok &= fwrite(&ne, 8, 1, f) == 1; }
        { uint32_t ty = (uint32_t)t->type; ok &= fwrite(&ty, 4, 1, f) == 1; }
        ok &= fwrite(&off, 8, 1, f) == 1;
        pos += 8 + len + 4 + 8 * (uint64_t)t->n_dims + 4 + 8;
        off = gw__pad(off + t->nbytes, w->alignment);
    }
    ok &= fwrite(zeros, 1, (size_t)(gw__pad(pos, w->alignment) - pos), f) == gw__pad(pos, w->alignment) - pos;
    off = 0;
    for (i = 0; i < w->n_tensors; i++) {
        const gw_tensor_desc *t = &w->tensors[i];
        uint64_t padded = gw__pad(t->nbytes, w->alignment);
        ok &= fwrite(t->data, 1, (size_t)t->nbytes, f) == t->nbytes;
        ok &= fwrite(zeros, 1, (size_t)(padded - t->nbytes), f) == padded - t->nbytes;
    }
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

#endif /* TFM_GGUF_WRITE_H */
