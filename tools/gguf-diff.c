/* gguf-diff - compares two GGUF files key by key and tensor by tensor.
 *
 *   gguf-diff A.gguf B.gguf [--key K]... [--no-keys] [--alias NAME=OTHER]...
 *             [--atol X] [--block-rtol R] [-v]
 *
 * Keys: all keys of both files (or only those named with --key; --no-keys: none) must exist in
 * both with the same type and the same value bytes.
 * Tensors: both files must hold the same names with the same shapes. With no tolerance and the
 * same type the bytes must be identical; otherwise both are decoded to floats and each value of A
 * may differ from B's by at most  atol + R * max|B| over the value's 32-value block  (B is the
 * reference: R = 0.0045 covers Q8_0 rounding, 0.13 covers Q4_0, 0.004 F16 or BF16).
 * --alias NAME=OTHER: a file without tensor NAME is compared through its tensor OTHER (e.g.
 * output.weight=token_embd.weight for a tied head one converter writes out and another omits).
 * Prints one line per difference and a summary; exit status 0 = same, 1 = different, 2 = error.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tools/gguf-diff.c -lm -o build/gguf-diff
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64

typedef struct {
    const char *keys[MAX_LIST];
    int n_keys, no_keys, verbose;
    const char *alias_from[MAX_LIST], *alias_to[MAX_LIST];
    int n_alias;
    double atol, block_rtol;
} diff_opts;


/* Bytes of a key's value as stored after its type (arrays: from their first element). */
static size_t value_size(const tfm_gguf_kv *kv) {
    static const unsigned char sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    uint64_t len, i;
    size_t n = 0;
    tfm_gguf_type t = kv->type == TFM_GGUF_ARRAY ? kv->arr_type : kv->type;
    if (kv->type == TFM_GGUF_STRING) { memcpy(&len, kv->value, 8); return 8 + (size_t)len; }
    if ((unsigned)t >= 13) return 0;
    if (t != TFM_GGUF_STRING) return kv->type == TFM_GGUF_ARRAY ? (size_t)kv->arr_n * sizes[t] : sizes[t];
    for (i = 0; i < kv->arr_n; i++) { memcpy(&len, kv->value + n, 8); n += 8 + (size_t)len; }
    return n;
}

static int compare_kv(const tfm_gguf_kv *a, const tfm_gguf_kv *b) {
    size_t na, nb;
    if (a->type != b->type || a->arr_type != b->arr_type || a->arr_n != b->arr_n) {
        printf("key %.*s: types differ\n", (int)a->key.len, a->key.ptr);
        return 1;
    }
    if (a->type == TFM_GGUF_ARRAY && a->arr_type == TFM_GGUF_ARRAY) {
        printf("key %.*s: nested arrays not compared\n", (int)a->key.len, a->key.ptr);
        return 1;
    }
    na = value_size(a);
    nb = value_size(b);
    if (na != nb || memcmp(a->value, b->value, na) != 0) {
        if (a->type == TFM_GGUF_ARRAY) {
            uint64_t i;
            for (i = 0; i < a->arr_n; i++) { /* name the first differing element */
                tfm_str sa, sb;
                double fa, fb;
                int64_t ia, ib;
                int same = 1;
                if (tfm_gguf_arr_str(a, i, &sa) && tfm_gguf_arr_str(b, i, &sb)) same = sa.len == sb.len && memcmp(sa.ptr, sb.ptr, sa.len) == 0;
                else if (tfm_gguf_arr_int(a, i, &ia) && tfm_gguf_arr_int(b, i, &ib)) same = ia == ib;
                else if (tfm_gguf_arr_float(a, i, &fa) && tfm_gguf_arr_float(b, i, &fb)) same = memcmp(&fa, &fb, sizeof fa) == 0;
                if (!same) { printf("key %.*s: element %llu differs\n", (int)a->key.len, a->key.ptr, (unsigned long long)i); return 1; }
            }
        }
        printf("key %.*s: values differ\n", (int)a->key.len, a->key.ptr);
        return 1;
    }
    return 0;
}

static int compare_keys(const tfm_gguf *a, const tfm_gguf *b, const diff_opts *o, size_t *n_compared) {
    int diffs = 0, k;
    size_t i, pass;
    if (o->no_keys) return 0;
    if (o->n_keys) {
        for (k = 0; k < o->n_keys; k++) {
            const tfm_gguf_kv *ka = tfm_gguf_find(a, o->keys[k]), *kb = tfm_gguf_find(b, o->keys[k]);
            if (!ka || !kb) { printf("key %s: missing in %s\n", o->keys[k], !ka && !kb ? "both" : !ka ? "A" : "B"); diffs++; continue; }
            diffs += compare_kv(ka, kb);
            ++*n_compared;
        }
        return diffs;
    }
    for (pass = 0; pass < 2; pass++) { /* keys of A (compared), then keys only B has */
        const tfm_gguf *x = pass ? b : a, *y = pass ? a : b;
        for (i = 0; i < x->n_kv; i++) {
            char name[256];
            const tfm_gguf_kv *other;
            size_t n = x->kv[i].key.len < sizeof name - 1 ? x->kv[i].key.len : sizeof name - 1;
            memcpy(name, x->kv[i].key.ptr, n);
            name[n] = 0;
            other = tfm_gguf_find(y, name);
            if (!other) { printf("key %s: only in %s\n", name, pass ? "B" : "A"); diffs++; }
            else if (!pass) { diffs += compare_kv(&x->kv[i], other); ++*n_compared; }
        }
    }
    return diffs;
}

/* Finds tensor `name` in g, or through an alias. */
static const tfm_gguf_tensor *find_tensor(const tfm_gguf *g, const char *name, const diff_opts *o) {
    const tfm_gguf_tensor *t = tfm_gguf_find_tensor(g, name);
    int k;
    for (k = 0; !t && k < o->n_alias; k++)
        if (strcmp(o->alias_from[k], name) == 0) t = tfm_gguf_find_tensor(g, o->alias_to[k]);
    return t;
}

/* Compares two tensors of the same shape; returns 1 if they differ beyond the tolerance. */
static int compare_data(const char *name, const tfm_gguf_tensor *ta, const tfm_gguf_tensor *tb, const diff_opts *o, double *max_diff) {
    int64_t n0 = ta->t.ne[0], rows, r, j, bad = 0, first_bad = -1;
    float *xa, *xb;
    double worst = 0;
    if (!ta->t.data || !tb->t.data) { printf("tensor %s: unsupported type\n", name); return 1; }
    if (ta->t.type == tb->t.type && o->atol == 0 && o->block_rtol == 0) {
        if (ta->nbytes == tb->nbytes && memcmp(ta->t.data, tb->t.data, ta->nbytes) == 0) return 0;
        printf("tensor %s: bytes differ\n", name);
        return 1;
    }
    rows = (int64_t)(ta->nbytes / tfm_type_row_size(ta->t.type, n0));
    xa = (float *)malloc((size_t)n0 * sizeof *xa);
    xb = (float *)malloc((size_t)n0 * sizeof *xb);
    if (!xa || !xb) { free(xa); free(xb); printf("tensor %s: out of memory\n", name); return 1; }
    for (r = 0; r < rows; r++) {
        tfm_dequantize_row(ta->t.type, (const char *)ta->t.data + (size_t)r * tfm_type_row_size(ta->t.type, n0), xa, n0);
        tfm_dequantize_row(tb->t.type, (const char *)tb->t.data + (size_t)r * tfm_type_row_size(tb->t.type, n0), xb, n0);
        for (j = 0; j < n0; j++) {
            int64_t b0 = j / 32 * 32, b1 = b0 + 32 < n0 ? b0 + 32 : n0, k;
            double amax = 0, d = fabs((double)xa[j] - (double)xb[j]);
            for (k = b0; k < b1; k++) amax = fabs(xb[k]) > amax ? fabs(xb[k]) : amax;
            if (d > worst || d != d) worst = d;
            if (!(d <= o->atol + o->block_rtol * amax)) { bad++; if (first_bad < 0) first_bad = r * n0 + j; }
        }
    }
    free(xa);
    free(xb);
    if (worst > *max_diff) *max_diff = worst;
    if (o->verbose) printf("tensor %s: max |diff| %.3g\n", name, worst);
    if (bad) printf("tensor %s: %lld values beyond tolerance (first at %lld), max |diff| %.3g\n", name, (long long)bad, (long long)first_bad, worst);
    return bad != 0;
}

static int compare_tensors(const tfm_gguf *a, const tfm_gguf *b, const diff_opts *o, size_t *n_compared, double *max_diff) {
    int diffs = 0, d;
    size_t i, pass;
    for (pass = 0; pass < 2; pass++) {
        const tfm_gguf *x = pass ? b : a, *y = pass ? a : b;
        for (i = 0; i < x->n_tensors; i++) {
            char name[256];
            const tfm_gguf_tensor *tx = &x->tensors[i], *ty;
            size_t n = tx->name.len < sizeof name - 1 ? tx->name.len : sizeof name - 1;
            memcpy(name, tx->name.ptr, n);
            name[n] = 0;
            if (pass && tfm_gguf_find_tensor(y, name)) continue; /* compared in the first pass */
            if (!(ty = find_tensor(y, name, o))) { printf("tensor %s: only in %s\n", name, pass ? "B" : "A"); diffs++; continue; }
            for (d = 0; d < 4 && tx->t.ne[d] == ty->t.ne[d]; d++) {}
            if (d < 4 || tx->t.n_dims != ty->t.n_dims) { printf("tensor %s: shapes differ\n", name); diffs++; continue; }
            diffs += pass ? compare_data(name, ty, tx, o, max_diff) : compare_data(name, tx, ty, o, max_diff);
            ++*n_compared;
        }
    }
    return diffs;
}

static int usage(void) {
    fprintf(stderr, "usage: gguf-diff A.gguf B.gguf [--key K]... [--no-keys] [--alias NAME=OTHER]... [--atol X] [--block-rtol R] [-v]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *paths[2] = {NULL, NULL};
    diff_opts o;
    tfm_gguf g[2];
    int i, np = 0, diffs;
    size_t nk = 0, nt = 0;
    double max_diff = 0;
    memset(&o, 0, sizeof o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--key") == 0 && i + 1 < argc && o.n_keys < MAX_LIST) o.keys[o.n_keys++] = argv[++i];
        else if (strcmp(a, "--no-keys") == 0) o.no_keys = 1;
        else if (strcmp(a, "-v") == 0) o.verbose = 1;
        else if (strcmp(a, "--atol") == 0 && i + 1 < argc) o.atol = atof(argv[++i]);
        else if (strcmp(a, "--block-rtol") == 0 && i + 1 < argc) o.block_rtol = atof(argv[++i]);
        else if (strcmp(a, "--alias") == 0 && i + 1 < argc && o.n_alias < MAX_LIST) {
            char *eq = strchr(argv[++i], '=');
            if (!eq) return usage();
            *eq = 0;
            o.alias_from[o.n_alias] = argv[i];
            o.alias_to[o.n_alias++] = eq + 1;
        } else if (a[0] == '-' || np == 2) return usage();
        else paths[np++] = a;
    }
    if (np != 2) return usage();
    for (i = 0; i < 2; i++) {
        tfm_result rc = tfm_gguf_open(&g[i], paths[i]);
        if (rc != TFM_OK) {
            fprintf(stderr, "gguf-diff: %s\n", g[i].error);
            if (i) tfm_gguf_free(&g[0]);
            return 2;
        }
    }
    diffs = compare_keys(&g[0], &g[1], &o, &nk);
    diffs += compare_tensors(&g[0], &g[1], &o, &nt, &max_diff);
    printf("%s: %zu keys and %zu tensors compared, %d differences, max |diff| %.3g\n",
           diffs ? "DIFFERENT" : "same", nk, nt, diffs, max_diff);
    tfm_gguf_free(&g[0]);
    tfm_gguf_free(&g[1]);
    return diffs ? 1 : 0;
}
