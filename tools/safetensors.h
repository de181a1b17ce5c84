/* safetensors.h - reads the tensor index of one or more .safetensors files (tools only).
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {...}}
 * then the data section; offsets are relative to its start (8 + N). Every entry is checked:
 * known dtype, shape of at most 4 non-negative dimensions, begin <= end within the data
 * section, and end - begin equal to the element count times the dtype size (no overflow).
 * Data is read on demand with st_read (nothing is mapped or kept in memory).
 * Include after json.h. Functions return 0 or -1 with a reason in st->error.
 */
#ifndef TFM_TOOLS_SAFETENSORS_H
#define TFM_TOOLS_SAFETENSORS_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* no real header is near 100 MB */

typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } st_dtype; /* ST_OTHER: indexed, not readable */

typedef struct {
    char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[4];   /* PyTorch order: shape[n_dims - 1] is contiguous */
    uint64_t offset;    /* absolute, in file `file` */
    uint64_t nbytes;
    int file;
} st_tensor;

typedef struct {
    FILE **files;
    int n_files;
    st_tensor *t;
    size_t n, cap;
    char error[512];
} st_index;

static inline int st__fail(st_index *s, const char *what, const char *detail) {
    snprintf(s->error, sizeof s->error, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    return -1;
}

static inline void st_free(st_index *s) {
    size_t i;
    int f;
    for (i = 0; i < s->n; i++) free(s->t[i].name);
    for (f = 0; f < s->n_files; f++) if (s->files[f]) fclose(s->files[f]);
    free(s->t);
    free(s->files);
    memset(s, 0, sizeof *s);
}

static inline size_t st_dtype_size(st_dtype d) { return d == ST_F32 ? 4 : d == ST_OTHER ? 0 : 2; }

/* Size in bytes of a dtype name we index but cannot convert (0: unknown name). */
static inline size_t st__other_size(const json_doc *d, size_t node) {
    static const char *const names[] = {"F64", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"};
    static const unsigned char sizes[] = {8, 8, 8, 4, 4, 2, 2, 1, 1, 1, 1, 1};
    size_t i;
    for (i = 0; i < sizeof sizes; i++)
        if (json_eq(d, node, names[i])) return sizes[i];
    return 0;
}

/* Parses one entry of the header; data_size is the size of the data section. */
static inline int st__entry(st_index *s, const json_doc *d, size_t key, uint64_t data_start, uint64_t data_size, int file) {
    size_t val = key + 1, dt = json_get(d, val, "dtype"), shape = json_get(d, val, "shape"), offs = json_get(d, val, "data_offsets"), k;
    st_tensor t;
    uint64_t count = 1, elem;
    int64_t begin, end, dim;
    memset(&t, 0, sizeof t);
    if (!(t.name = json_strdup(d, key, NULL))) return st__fail(s, "out of memory", NULL);
    if (dt == JSON_NONE || shape == JSON_NONE || offs == JSON_NONE || json_type_of(d, shape) != JSON_ARRAY ||
        json_type_of(d, offs) != JSON_ARRAY || d->nodes[offs].count != 2 || d->nodes[shape].count > 4) {
        st__fail(s, "safetensors entry without dtype, shape (at most 4 dims) or two data_offsets", t.name);
        free(t.name);
        return -1;
    }
    if (json_eq(d, dt, "F32")) t.dtype = ST_F32;
    else if (json_eq(d, dt, "F16")) t.dtype = ST_F16;
    else if (json_eq(d, dt, "BF16")) t.dtype = ST_BF16;
    else t.dtype = ST_OTHER;
    elem = t.dtype == ST_OTHER ? st__other_size(d, dt) : st_dtype_size(t.dtype);
    if (!elem) { st__fail(s, "unknown safetensors dtype for", t.name); free(t.name); return -1; }
    for (k = json_first(d, shape); k != JSON_NONE; k = json_next(d, k)) {
        if (!json_int(d, k, 0, INT64_MAX / 2, &dim) || (dim && count > UINT64_MAX / 4 / (uint64_t)dim)) {
            st__fail(s, "bad shape for", t.name); free(t.name); return -1;
        }
        t.shape[t.n_dims++] = dim;
        count *= (uint64_t)dim;
    }
    k = json_first(d, offs);
    if (!json_int(d, k, 0, INT64_MAX, &begin) || !json_int(d, json_next(d, k), 0, INT64_MAX, &end) ||
        begin > end || (uint64_t)end > data_size || (uint64_t)(end - begin) / elem != count || (uint64_t)(end - begin) % elem) {
        st__fail(s, "data_offsets out of the file or not matching dtype and shape for", t.name); free(t.name); return -1;
    }
    t.offset = data_start + (uint64_t)begin;
    t.nbytes = (uint64_t)(end - begin);
    t.file = file;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        st_tensor *nt = (st_tensor *)realloc(s->t, cap * sizeof *nt);
        if (!nt) { free(t.name); return st__fail(s, "out of memory", NULL); }
        s->t = nt;
        s->cap = cap;
    }
    s->t[s->n++] = t;
    return 0;
}

/* Adds the tensors of one .safetensors file to the index. */
static inline int st_add_file(st_index *s, const char *path) {
    FILE *f = fopen(path, "rb"), **nf;
    unsigned char len8[8];
    uint64_t hlen = 0, fsize;
    long end;
    char *header;
    json_doc d;
    size_t k;
    int i, file, rc = 0;
    if (!f) return st__fail(s, "cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return st__fail(s, "cannot get the size of", path); }
    fsize = (uint64_t)end;
    if (fread(len8, 1, 8, f) != 8) { fclose(f); return st__fail(s, "safetensors file shorter than 8 bytes", path); }
    for (i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > fsize - 8) { fclose(f); return st__fail(s, "safetensors header length out of range", path); }
    if (!(header = (char *)malloc((size_t)hlen))) { fclose(f); return st__fail(s, "out of memory", NULL); }
    if (fread(header, 1, (size_t)hlen, f) != hlen) { free(header); fclose(f); return st__fail(s, "cannot read the safetensors header of", path); }
    if (json_parse(&d, header, (size_t)hlen) != 0) {
        snprintf(s->error, sizeof s->error, "%s: safetensors header: %s", path, d.error);
        free(header); fclose(f);
        return -1;
    }
    if (json_type_of(&d, JSON_ROOT) != JSON_OBJECT) rc = st__fail(s, "safetensors header is not an object", path);
    if (rc == 0 && !(nf = (FILE **)realloc(s->files, (size_t)(s->n_files + 1) * sizeof *nf))) rc = st__fail(s, "out of memory", NULL);
    if (rc == 0) {
        s->files = nf;
        file = s->n_files++;
        s->files[file] = f;
        f = NULL;
        for (k = json_first(&d, JSON_ROOT); rc == 0 && k != JSON_NONE; k = json_next(&d, k)) {
            if (json_eq(&d, k, "__metadata__")) continue;
            if (json_type_of(&d, k + 1) != JSON_OBJECT) rc = st__fail(s, "safetensors entry is not an object in", path);
            else rc = st__entry(s, &d, k, 8 + hlen, fsize - 8 - hlen, file);
        }
    }
    if (f) fclose(f);
    json_free(&d);
    free(header);
    return rc;
}

static inline const st_tensor *st_find(const st_index *s, const char *name) {
    size_t i;
    for (i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    return NULL;
}

/* Reads a tensor's bytes (t->nbytes) into dst. */
static inline int st_read(st_index *s, const st_tensor *t, void *dst) {
    FILE *f = s->files[t->file];
    if (t->offset > (uint64_t)LONG_MAX || fseek(f, (long)t->offset, SEEK_SET) != 0 || fread(dst, 1, (size_t)t->nbytes, f) != t->nbytes)
        return st__fail(s, "cannot read tensor data", t->name);
    return 0;
}

/* Element i of raw tensor data in dtype d, as float. */
static inline float st_get(st_dtype d, const void *data, size_t i) {
    const unsigned char *p = (const unsigned char *)data;
    uint16_t h;
    float f;
    if (d == ST_F32) { memcpy(&f, p + 4 * i, 4); return f; }
    memcpy(&h, p + 2 * i, 2);
    return d == ST_F16 ? tfm_fp16_to_fp32(h) : tfm_bf16_to_fp32(h);
}

#endif /* TFM_TOOLS_SAFETENSORS_H */
