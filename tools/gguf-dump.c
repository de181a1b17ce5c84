/* gguf-dump - prints a GGUF file's header, one line per key and one line per tensor.
 *
 *   gguf-dump [-a] FILE.gguf
 *
 * Arrays show their first 8 elements (all of them with -a). Strings are printed in double
 * quotes with bytes outside printable ASCII as \xNN, so the output is always one line per item.
 * Uses tfm.h's GGUF reader, so a file it refuses is reported with the reader's reason.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tools/gguf-dump.c -lm -o build/gguf-dump
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <stdio.h>
#include <string.h>

static const char *type_name(tfm_gguf_type t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                        "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void print_str(tfm_str s) {
    size_t i;
    putchar('"');
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c >= 32 && c < 127) putchar(c);
        else printf("\\x%02x", c);
    }
    putchar('"');
}

/* Prints element i of an array, or the scalar itself (kv->type not an array, i == 0). */
static void print_value(const tfm_gguf_kv *kv, uint64_t i) {
    tfm_gguf_type t = kv->type == TFM_GGUF_ARRAY ? kv->arr_type : kv->type;
    int64_t iv;
    double fv;
    tfm_str s;
    if (t == TFM_GGUF_STRING) {
        if (kv->type == TFM_GGUF_ARRAY ? tfm_gguf_arr_str(kv, i, &s) : 0) print_str(s);
        else if (kv->type == TFM_GGUF_STRING) {
            uint64_t len;
            memcpy(&len, kv->value, 8);
            s.ptr = (const char *)kv->value + 8;
            s.len = (size_t)len;
            print_str(s);
        }
        return;
    }
    if (kv->type != TFM_GGUF_ARRAY) {
        /* scalars: reuse the array element readers through a one-element view */
        tfm_gguf_kv one = *kv;
        one.type = TFM_GGUF_ARRAY;
        one.arr_type = kv->type;
        one.arr_n = 1;
        print_value(&one, 0);
        return;
    }
    if (t == TFM_GGUF_BOOL) printf("%s", kv->value[i] ? "true" : "false");
    else if (t == TFM_GGUF_F32 || t == TFM_GGUF_F64) {
        if (tfm_gguf_arr_float(kv, i, &fv)) printf("%.9g", fv);
    } else if (t == TFM_GGUF_U64) {
        uint64_t u;
        memcpy(&u, kv->value + i * 8, 8);
        printf("%llu", (unsigned long long)u);
    } else if (tfm_gguf_arr_int(kv, i, &iv)) printf("%lld", (long long)iv);
    else printf("?");
}

static void print_kv(const tfm_gguf_kv *kv, int all) {
    uint64_t i, shown;
    printf("key %.*s ", (int)kv->key.len, kv->key.ptr);
    if (kv->type != TFM_GGUF_ARRAY) {
        printf("%s ", type_name(kv->type));
        print_value(kv, 0);
        putchar('\n');
        return;
    }
    printf("arr[%s,%llu]", type_name(kv->arr_type), (unsigned long long)kv->arr_n);
    if (kv->arr_type == TFM_GGUF_ARRAY) { printf(" (nested)\n"); return; }
    shown = all || kv->arr_n <= 8 ? kv->arr_n : 8;
    for (i = 0; i < shown; i++) { putchar(' '); print_value(kv, i); }
    if (shown < kv->arr_n) printf(" ...");
    putchar('\n');
}

static void print_tensor(const tfm_gguf_tensor *t) {
    int d;
    printf("tensor %.*s %s [", (int)t->name.len, t->name.ptr, tfm_type_name(t->t.type));
    for (d = 0; d < t->t.n_dims; d++) printf(d ? ", %lld" : "%lld", (long long)t->t.ne[d]);
    printf("] offset %llu bytes %llu\n", (unsigned long long)t->offset, (unsigned long long)t->nbytes);
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int all = 0, i;
    size_t k;
    tfm_gguf g;
    tfm_result rc;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-a") == 0) all = 1;
        else if (!path && argv[i][0] != '-') path = argv[i];
        else { fprintf(stderr, "usage: gguf-dump [-a] FILE.gguf\n"); return 2; }
    }
    if (!path) { fprintf(stderr, "usage: gguf-dump [-a] FILE.gguf\n"); return 2; }
    if ((rc = tfm_gguf_open(&g, path)) != TFM_OK) {
        fprintf(stderr, "gguf-dump: %s (%s)\n", g.error, tfm_result_string(rc));
        return 1;
    }
    printf("gguf v%u, %zu keys, %zu tensors, alignment %zu, data at %zu, file %zu bytes\n", (unsigned)g.version,
           g.n_kv, g.n_tensors, g.alignment, g.data_offset, g.size);
    for (k = 0; k < g.n_kv; k++) print_kv(&g.kv[k], all);
    for (k = 0; k < g.n_tensors; k++) print_tensor(&g.tensors[k]);
    tfm_gguf_free(&g);
    return 0;
}
