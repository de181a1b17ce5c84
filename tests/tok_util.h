/* tok_util.h - helpers for tests/test_tokenizer.c: checks, file loading, and a GGUF v3 writer
   into memory (vocabulary-only files: metadata, no tensors). */
#ifndef TOK_UTIL_H
#define TOK_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

static int tu_pass, tu_fail, tu_skip;

#define CHECK(cond, ...) do { \
        if (cond) tu_pass++; \
        else { tu_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
    } while (0)

/* Whole file into a malloc'd buffer (plus a 0 byte), or NULL with one SKIP line. */
static unsigned char *tu_load(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p;
    long len;
    if (!f) { printf("SKIP: %s missing\n", path); tu_skip++; return NULL; }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = (unsigned char *)malloc((size_t)len + 1);
    if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) { fclose(f); free(p); printf("SKIP: %s unreadable\n", path); tu_skip++; return NULL; }
    fclose(f);
    p[len] = 0;
    *n = (size_t)len;
    return p;
}

/* ---- GGUF writer into memory */
typedef struct { unsigned char *p; size_t n, cap; uint64_t n_kv; } tu_gguf;

static void tu_put(tu_gguf *w, const void *src, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 256;
        w->p = (unsigned char *)realloc(w->p, w->cap);
        if (!w->p) { printf("out of memory\n"); exit(2); }
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}
static void tu_u32(tu_gguf *w, uint32_t v) { tu_put(w, &v, 4); }
static void tu_u64(tu_gguf *w, uint64_t v) { tu_put(w, &v, 8); }
static void tu_strn(tu_gguf *w, const char *s, size_t n) { tu_u64(w, n); tu_put(w, s, n); }
static void tu_key(tu_gguf *w, const char *k, uint32_t type) { tu_strn(w, k, strlen(k)); tu_u32(w, type); w->n_kv++; }

static void tu_init(tu_gguf *w) {
    memset(w, 0, sizeof *w);
    tu_u32(w, 0x46554747u); tu_u32(w, 3); tu_u64(w, 0); tu_u64(w, 0); /* counts patched at the end */
}
static void tu_done(tu_gguf *w) { memcpy(w->p + 16, &w->n_kv, 8); }

static void tu_kv_str(tu_gguf *w, const char *k, const char *s) { tu_key(w, k, 8); tu_strn(w, s, strlen(s)); }
static void tu_kv_u32(tu_gguf *w, const char *k, uint32_t v) { tu_key(w, k, 4); tu_u32(w, v); }
static void tu_kv_strs(tu_gguf *w, const char *k, char **s, const size_t *lens, size_t n) {
    size_t i;
    tu_key(w, k, 9); tu_u32(w, 8); tu_u64(w, n);
    for (i = 0; i < n; i++) tu_strn(w, s[i], lens ? lens[i] : strlen(s[i]));
}
static void tu_kv_f32s(tu_gguf *w, const char *k, const float *v, size_t n) { tu_key(w, k, 9); tu_u32(w, 6); tu_u64(w, n); tu_put(w, v, 4 * n); }
static void tu_kv_i32s(tu_gguf *w, const char *k, const int32_t *v, size_t n) { tu_key(w, k, 9); tu_u32(w, 5); tu_u64(w, n); tu_put(w, v, 4 * n); }

/* Space-separated integers from s into out (at most cap), returns the count. */
static size_t tu_parse_ids(const char *s, int32_t *out, size_t cap) {
    size_t n = 0;
    char *end;
    for (;;) {
        long v = strtol(s, &end, 10);
        if (end == s) return n;
        if (n < cap) out[n] = (int32_t)v;
        n++;
        s = end;
    }
}

#endif
