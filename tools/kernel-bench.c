/* kernel-bench - speed of one matrix product kernel on random weights, for tuning the kernels.
 *
 *   kernel-bench [--type f32|f16|bf16|q8_0|q4_0] [--in N] [--out N] [--batch B] [--mats M]
 *                [--reps R] [--threads T]
 *
 * Runs y = W x for M weight matrices of OUT x IN (so M x the bytes of one can exceed the caches:
 * decode reads each weight once per token) with B activation rows (1: decode, more: prefill
 * tiles), R times after one warm-up, and between the runs reads the same weight bytes with
 * plain loads. Prints one line: multiply-adds/s, the kernel's weight bytes/s, the plain
 * read's bytes/s, and their ratio (kernel / read; 1.0 means the kernel streams its weights as
 * fast as a plain read of them). Runs alternate so both see the same moment of a shared host.
 * It calls tfm.h's private product (tfm__matmul) on purpose: it measures the kernels alone,
 * without a model or a session around them.
 */
#define _DEFAULT_SOURCE 1 /* clock_gettime */
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

/* Reads the bytes as 64-bit words in four streams in lockstep (each a quarter of the bytes, in
   order), the way the decode kernels read weight rows: on a Zen 3 that read 20-25% faster than
   one sequential stream. */
static uint64_t plain_read(const unsigned char *p, size_t n) {
    const size_t run = n / 4 / 32 * 32;
    uint64_t s[4] = {0, 0, 0, 0}, w[4];
    size_t i;
    int k, j;
    for (i = 0; i < run; i += 32)
        for (k = 0; k < 4; k++)
            for (j = 0; j < 4; j++) {
                memcpy(&w[j], p + (size_t)k * run + i + 8 * (size_t)j, 8);
                s[j] += w[j];
            }
    return s[0] + s[1] + s[2] + s[3];
}

/* plain_read over n bytes, split between the threads as the kernels split rows. */
static uint64_t read_all(const unsigned char *p, size_t n, int threads) {
    const size_t part = n / (size_t)threads;
    uint64_t s = 0;
    long t;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
#endif
    for (t = 0; t < threads; t++) s += plain_read(p + (size_t)t * part, part);
    return s;
}

static int parse_type(const char *s, tfm_type *t) {
    static const struct { const char *name; tfm_type type; } types[] = {
        {"f32", TFM_TYPE_F32}, {"f16", TFM_TYPE_F16}, {"bf16", TFM_TYPE_BF16}, {"q8_0", TFM_TYPE_Q8_0}, {"q4_0", TFM_TYPE_Q4_0}};
    size_t i;
    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s, types[i].name) == 0) { *t = types[i].type; return 1; }
    return 0;
}

int main(int argc, char **argv) {
    tfm_type type = TFM_TYPE_Q4_0;
    long in = 2048, out = 5632, batch = 1, mats = 8, reps = 5, threads = 1;
    size_t row, mat, i;
    unsigned char *w;
    float *x, *y, *tmp;
    void *xq, *xbuf;
    tfm__mm_ctx ctx;
    tfm_tensor W;
    double t_kernel = 0, t_read = 0, macs, bytes;
    volatile uint64_t sink = 0; /* keeps the plain read */
    long m, r;
    int a;
    for (a = 1; a < argc; a++) {
        const char *v = a + 1 < argc ? argv[a + 1] : NULL;
        if (!v) goto usage;
        if (strcmp(argv[a], "--type") == 0) { if (!parse_type(v, &type)) goto usage; }
        else if (strcmp(argv[a], "--in") == 0) in = atol(v);
        else if (strcmp(argv[a], "--out") == 0) out = atol(v);
        else if (strcmp(argv[a], "--batch") == 0) batch = atol(v);
        else if (strcmp(argv[a], "--mats") == 0) mats = atol(v);
        else if (strcmp(argv[a], "--reps") == 0) reps = atol(v);
        else if (strcmp(argv[a], "--threads") == 0) threads = atol(v);
        else goto usage;
        a++;
    }
    if (in <= 0 || in % 32 || out <= 0 || batch <= 0 || batch > 4096 || mats <= 0 || reps <= 0 || threads <= 0) goto usage;
    row = tfm_type_row_size(type, in);
    mat = row * (size_t)out;
    w = (unsigned char *)malloc(mat * (size_t)mats);
    xbuf = malloc((size_t)(batch * in) * sizeof(float) + 64);
    x = (float *)(void *)(((size_t)xbuf + 63) / 64 * 64); /* aligned as a session's arena aligns its rows */
    y = (float *)malloc((size_t)(batch * out) * sizeof(float));
    tmp = (float *)malloc((size_t)in * (size_t)threads * sizeof(float));
    xq = malloc(tfm__xq_row_bytes(in) * (size_t)batch + 64);
    if (!w || !xbuf || !y || !tmp || !xq) { fprintf(stderr, "kernel-bench: out of memory\n"); return 1; }
    for (i = 0; i < (size_t)(out * mats); i++) {
        long k;
        for (k = 0; k < in; k++) tmp[k] = frand();
        tfm_quantize_row(type, tmp, w + i * row, in);
    }
    for (i = 0; i < (size_t)(batch * in); i++) x[i] = frand();
    memset(&ctx, 0, sizeof ctx);
    ctx.n_threads = (int)threads;
    ctx.xq = (void *)(((size_t)xq + 63) / 64 * 64); /* as a session's arena aligns it */
    ctx.wrow = tmp;
    ctx.wrow_stride = in;
    memset(&W, 0, sizeof W);
    W.type = type; W.n_dims = 2; W.ne[0] = in; W.ne[1] = out; W.ne[2] = W.ne[3] = 1;
    for (r = 0; r <= reps; r++) { /* run 0 warms up */
        double t0 = now_s(), t1, t2;
        for (m = 0; m < mats; m++) {
            W.data = w + (size_t)m * mat;
            tfm__matmul(&ctx, &W, x, (int)batch, y, out);
        }
        t1 = now_s();
        sink += read_all(w, mat * (size_t)mats, (int)threads);
        t2 = now_s();
        if (r) { t_kernel += t1 - t0; t_read += t2 - t1; }
    }
    macs = (double)in * (double)out * (double)batch * (double)mats * (double)reps;
    bytes = (double)mat * (double)mats * (double)reps;
    printf("{\"type\": \"%s\", \"in\": %ld, \"out\": %ld, \"batch\": %ld, \"mats\": %ld, \"threads\": %ld, "
           "\"gmacs\": %.2f, \"kernel_gbs\": %.2f, \"read_gbs\": %.2f, \"ratio\": %.3f}\n",
           tfm_type_name(type), in, out, batch, mats, threads, macs / t_kernel * 1e-9, bytes / t_kernel * 1e-9,
           bytes / t_read * 1e-9, t_read / t_kernel);
    free(w); free(xbuf); free(y); free(tmp); free(xq);
    return 0;
usage:
    fprintf(stderr, "usage: kernel-bench [--type f32|f16|bf16|q8_0|q4_0] [--in N (multiple of 32)] [--out N] [--batch B <= 4096] [--mats M] [--reps R] [--threads T]\n");
    return 2;
}
