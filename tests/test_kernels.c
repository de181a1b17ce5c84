/* Kernels: hand-worked fp16/bf16 rounding and Q8_0/Q4_0 block layouts; the plain C matrix
   product against double-precision math on the dequantized operands; every SIMD kernel against
   its plain C version on random data (tolerances below); batch invariance (bit-identical rows
   whatever the batch); no read past a weight matrix. */
#if defined(__unix__) || defined(__APPLE__)
#define _DEFAULT_SOURCE 1 /* mmap, mprotect */
#include <sys/mman.h>
#include <unistd.h>
#define HAVE_GUARD_PAGE 1
#endif
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "test.h"

/* Tolerances, relative to the sum of |w_i x_i| of a product (its natural float error scale):
   SIMD and plain C add the same float terms in another order; the quantized kernels' integer
   block sums are exact, only the scaling by the two block scales is ordered differently. */
#define TOL_SIMD 2e-6
/* The plain C product against double math: float rounding of n-term sums. */
#define TOL_REF 1e-5

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)(rng >> 40) / 8388608.0f - 1.0f;
}

static void test_fp16(void) {
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65519.996f, 0x7bff},          /* just below the halfway point to 65536: stays finite */
        {65520.0f, 0x7c00},            /* halfway, rounds to even = 65536 = inf */
        {1.0f + 1.0f / 2048, 0x3c00},  /* halfway between 1 and 1 + 2^-10: even (1) */
        {1.0f + 3.0f / 2048, 0x3c02},  /* halfway between 1 + 2^-10 and 1 + 2^-9: even (..02) */
        {5.9604645e-8f, 0x0001},       /* 2^-24, smallest subnormal */
        {2.9802322e-8f, 0x0000},       /* 2^-25, halfway to 0: even (0) */
        {4.4703484e-8f, 0x0001},       /* 0.75 * 2^-24: nearest is the subnormal */
        {6.1035156e-5f, 0x0400},       /* 2^-14, smallest normal */
        {0.1f, 0x2e66},                /* 0.0999755859375 is nearest */
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = tfm_fp32_to_fp16(cases[i].f);
        CHECK(h == cases[i].h, "fp16(%.9g) = 0x%04x, expected 0x%04x", cases[i].f, h, cases[i].h);
    }
    CHECK(tfm_fp16_to_fp32(0x3555) == 0.333251953125f, "fp16 0x3555 -> %.12g", tfm_fp16_to_fp32(0x3555));
    CHECK(tfm_fp16_to_fp32(0x0001) == 5.9604644775390625e-8f, "fp16 0x0001");
    CHECK(tfm_fp16_to_fp32(0xfbff) == -65504.0f, "fp16 0xfbff");
    CHECK(tfm_fp16_to_fp32(0x2e66) == 0.0999755859375f, "fp16 0x2e66");
    {
        float nan = tfm_fp16_to_fp32(0x7e00);
        CHECK(nan != nan, "fp16 NaN stays NaN");
    }
    CHECK(tfm_fp32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    CHECK(tfm_fp32_to_bf16(1.0f + 1.0f / 256) == 0x3f80, "bf16 halfway rounds to even (down)");
    CHECK(tfm_fp32_to_bf16(1.0f + 3.0f / 256) == 0x3f82, "bf16 halfway rounds to even (up)");
    CHECK(tfm_fp32_to_bf16(1.0f + 1.5f / 256) == 0x3f81, "bf16 above halfway rounds up");
    CHECK(tfm_bf16_to_fp32(0x4049) == 3.140625f, "bf16 0x4049 -> %.9g", tfm_bf16_to_fp32(0x4049));
}

static void test_block_layouts(void) {
    float x[32], y[32];
    unsigned char raw[34];
    tfm_block_q8_0 b8;
    tfm_block_q4_0 b4;
    uint16_t d;
    int j, ok = 1;
    CHECK(sizeof(tfm_block_q8_0) == 34 && sizeof(tfm_block_q4_0) == 18, "block sizes %d %d", (int)sizeof(tfm_block_q8_0), (int)sizeof(tfm_block_q4_0));
    /* Q8_0 of x_j = j: d = 31/127, q_j = round(j * 127 / 31) (q_1 = round(4.097) = 4, q_31 = 127) */
    for (j = 0; j < 32; j++) x[j] = (float)j;
    tfm_quantize_row(TFM_TYPE_Q8_0, x, raw, 32);
    memcpy(&d, raw, 2);
    CHECK(d == tfm_fp32_to_fp16(31.0f / 127.0f), "Q8_0 scale bytes 0x%04x", d);
    CHECK(raw[2] == 0 && raw[3] == 4 && raw[4] == 8 && raw[33] == 127 && raw[2 + 16] == 66, "Q8_0 q bytes %d %d %d %d %d", raw[2], raw[3], raw[4], raw[33], raw[18]);
    /* Q4_0 of x_j = j - 16: the largest magnitude is -16, so d = -16 / -8 = 2 and q = x/2 + 8
       (rounded, clamped to 0..15); byte j holds element j (low nibble) and j + 16 (high). */
    for (j = 0; j < 32; j++) x[j] = (float)(j - 16);
    tfm_quantize_row(TFM_TYPE_Q4_0, x, &b4, 32);
    CHECK(b4.d == 0x4000, "Q4_0 scale 0x%04x, expected fp16(2) = 0x4000", b4.d);
    CHECK(b4.qs[0] == 0x80, "Q4_0 byte 0 = 0x%02x: q0 = 0 (x=-16), q16 = 8 (x=0)", b4.qs[0]);
    CHECK(b4.qs[15] == 0xf8, "Q4_0 byte 15 = 0x%02x: q15 = 8 (x=-1 -> 7.5 rounds up), q31 = 15 (clamped)", b4.qs[15]);
    CHECK(b4.qs[1] == 0x91, "Q4_0 byte 1 = 0x%02x: q1 = 1 (x=-15 -> 1), q17 = 9 (x=1 -> 8.5 -> 9)", b4.qs[1]);
    tfm_dequantize_row(TFM_TYPE_Q4_0, &b4, y, 32);
    CHECK(y[0] == -16 && y[16] == 0 && y[31] == 14, "Q4_0 dequantized %g %g %g", y[0], y[16], y[31]);
    /* a hand-made dot: Q4_0 weights all nibble 9 (= +1) with d = 1, Q8_0 activations all 1 with
       d = 0.5, and element 5 = -3: 31 * 1 * 0.5 + 1 * (-3) * 0.5 = 14 */
    b4.d = 0x3c00;
    for (j = 0; j < 16; j++) b4.qs[j] = 0x99;
    b8.d = 0x3800;
    for (j = 0; j < 32; j++) b8.qs[j] = 1;
    b8.qs[5] = -3;
    CHECK(tfm__dot_q4_0_ref(&b4, &b8, 1) == 14.0f, "Q4_0 . Q8_0 hand dot = %g, expected 14", tfm__dot_q4_0_ref(&b4, &b8, 1));
    {
        tfm_block_q8_0 w = b8;
        w.qs[0] = -128; /* a weight the quantizer never makes, but a file may hold */
        CHECK(tfm__dot_q8_0_ref(&w, &b8, 1) == 0.25f * (-128 + 30 + 9), "Q8_0 hand dot with -128: %g", tfm__dot_q8_0_ref(&w, &b8, 1));
    }
    for (j = 0; j < 32; j++) { /* q = x/2 + 8 rounded half up, clamped; value 2 * (q - 8) */
        int q = (j - 16 + 17) / 2;
        ok &= y[j] == 2.0f * (float)((q > 15 ? 15 : q) - 8);
    }
    CHECK(ok, "Q4_0 round trip of x_j = j - 16");
}

typedef struct {
    tfm__mm_ctx ctx;
    void *xq_mem;
    float *wrow_mem;
} mm_scratch;

static void scratch_init(mm_scratch *s, int64_t in, int B, int threads) {
    memset(&s->ctx, 0, sizeof s->ctx);
    s->xq_mem = malloc((size_t)B * tfm__xq_row_bytes(in) + 64);
    s->wrow_mem = (float *)malloc((size_t)threads * (size_t)in * sizeof(float));
    s->ctx.n_threads = threads;
    s->ctx.wrow = s->wrow_mem;
    s->ctx.wrow_stride = in;
    s->ctx.xq = s->xq_mem;
}

static void scratch_free(mm_scratch *s) { free(s->xq_mem); free(s->wrow_mem); }

/* Random matrix of `type` (out rows of in values) as GGUF stores it, in buf (at least its size). */
static void random_matrix(tfm_type type, int64_t in, int64_t out, unsigned char *buf) {
    size_t rs = tfm_type_row_size(type, in);
    float *row = (float *)malloc((size_t)in * sizeof(float));
    int64_t r, i;
    for (r = 0; r < out; r++) {
        for (i = 0; i < in; i++) row[i] = frand();
        if (r == 1 && in >= 4) row[3] = 0, row[2] = 3.5f; /* some variety in block scales */
        tfm_quantize_row(type, row, buf + (size_t)r * rs, in);
        if (type == TFM_TYPE_Q8_0 && r % 3 == 2) { /* -128: the quantizer never makes it, a file may hold it */
            tfm_block_q8_0 *b = (tfm_block_q8_0 *)(void *)(buf + (size_t)r * rs);
            b[0].qs[0] = b[0].qs[1] = b[0].qs[30] = -128; /* both bytes of an int16 pair, too */
        }
    }
    free(row);
}

/* Sum over k of |w_k x_k| for one output, in double (the error scale of the product). */
static double abs_scale(const float *w, const float *x, int64_t n) {
    double s = 0;
    int64_t k;
    for (k = 0; k < n; k++) s += fabs((double)w[k] * x[k]);
    return s;
}

/* One product: SIMD vs plain C, and plain C vs double math on the dequantized operands. */
static void check_matmul(tfm_type type, int64_t in, int64_t out, int B, int threads, unsigned char *wbuf) {
    const int quant = type == TFM_TYPE_Q8_0 || type == TFM_TYPE_Q4_0;
    tfm_tensor W;
    mm_scratch sc;
    float *x = (float *)malloc((size_t)B * (size_t)in * sizeof(float));
    float *xd = (float *)malloc((size_t)B * (size_t)in * sizeof(float));
    float *wd = (float *)malloc((size_t)out * (size_t)in * sizeof(float));
    float *y = (float *)malloc((size_t)B * (size_t)out * sizeof(float));
    float *yr = (float *)malloc((size_t)B * (size_t)out * sizeof(float));
    tfm_block_q8_0 *xb = (tfm_block_q8_0 *)malloc((size_t)(in / 32 + 1) * sizeof(tfm_block_q8_0));
    double worst_simd = 0, worst_ref = 0;
    int64_t i, r;
    int b;
    memset(&W, 0, sizeof W);
    W.type = type; W.n_dims = 2; W.ne[0] = in; W.ne[1] = out; W.ne[2] = W.ne[3] = 1; W.data = wbuf;
    for (i = 0; i < (int64_t)B * in; i++) x[i] = frand() * (i % 7 == 0 ? 4.0f : 1.0f);
    for (r = 0; r < out; r++) tfm_dequantize_row(type, wbuf + (size_t)r * tfm_type_row_size(type, in), wd + (size_t)r * in, in);
    for (b = 0; b < B; b++) { /* the activations the quantized kernels see */
        if (!quant) { memcpy(xd + (size_t)b * in, x + (size_t)b * in, (size_t)in * sizeof(float)); continue; }
        tfm_quantize_row(TFM_TYPE_Q8_0, x + (size_t)b * in, xb, in);
        tfm_dequantize_row(TFM_TYPE_Q8_0, xb, xd + (size_t)b * in, in);
    }
    scratch_init(&sc, in, B, threads);
    for (i = 0; i < (int64_t)B * out; i++) y[i] = yr[i] = 12345.0f; /* every output must be written */
    tfm__matmul(&sc.ctx, &W, x, B, y, out);
    tfm__matmul_ref(&sc.ctx, &W, x, B, yr, out);
    { /* thread invariance: each output is computed whole by one thread, the same way */
        float *yt = (float *)malloc((size_t)B * (size_t)out * sizeof(float));
        mm_scratch s2;
        scratch_init(&s2, in, B, 2);
        tfm__matmul(&s2.ctx, &W, x, B, yt, out);
        CHECK(memcmp(yt, y, (size_t)B * (size_t)out * sizeof(float)) == 0, "%s in %d out %d B %d: 2 threads differ from %d", tfm_type_name(type), (int)in, (int)out, B, threads);
        scratch_free(&s2);
        free(yt);
    }
    { /* batch invariance: each activation row alone gives the same bits as in the batch */
        float *y1 = (float *)malloc((size_t)out * sizeof(float));
        int same = 1;
        for (b = 0; b < B; b++) {
            tfm__matmul(&sc.ctx, &W, x + (size_t)b * in, 1, y1, out);
            same &= memcmp(y1, y + (size_t)b * out, (size_t)out * sizeof(float)) == 0;
        }
        CHECK(same, "%s in %d out %d B %d: a row alone differs from the same row in the batch", tfm_type_name(type), (int)in, (int)out, B);
        free(y1);
    }
    for (b = 0; b < B; b++)
        for (r = 0; r < out; r++) {
            const float *wr = wd + (size_t)r * in, *xr = xd + (size_t)b * in;
            double exact = 0, scale = abs_scale(wr, xr, in) + 1e-30;
            int64_t k;
            for (k = 0; k < in; k++) exact += (double)wr[k] * xr[k];
            double e_simd = fabs((double)y[(size_t)b * out + r] - yr[(size_t)b * out + r]) / scale;
            double e_ref = fabs((double)yr[(size_t)b * out + r] - exact) / scale;
            worst_simd = e_simd > worst_simd ? e_simd : worst_simd;
            worst_ref = e_ref > worst_ref ? e_ref : worst_ref;
        }
    CHECK(worst_simd <= TOL_SIMD, "%s in %d out %d B %d threads %d: SIMD vs plain C %.3g (> %.1g)", tfm_type_name(type), (int)in, (int)out, B, threads, worst_simd, TOL_SIMD);
    CHECK(worst_ref <= TOL_REF, "%s in %d out %d B %d: plain C vs double %.3g (> %.1g)", tfm_type_name(type), (int)in, (int)out, B, worst_ref, TOL_REF);
    if (worst_simd > TOL_SIMD || worst_ref > TOL_REF || (in == 288 && out == 37 && B == 5))
        printf("  %-4s in %4d out %3d B %3d threads %d: |SIMD - C| %.2g, |C - double| %.2g (relative to sum |w x|)\n",
               tfm_type_name(type), (int)in, (int)out, B, threads, worst_simd, worst_ref);
    scratch_free(&sc);
    free(x); free(xd); free(wd); free(y); free(yr); free(xb);
}

/* The weight matrix ends exactly at an inaccessible page, so a kernel reading past the last
   row's last block crashes the test. */
static unsigned char *guarded(size_t bytes, void **base, size_t *len) {
#ifdef HAVE_GUARD_PAGE
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (bytes + page - 1) / page * page + page;
    unsigned char *p = (unsigned char *)mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == (unsigned char *)MAP_FAILED) return NULL;
    mprotect(p + n - page, page, PROT_NONE);
    *base = p; *len = n;
    return p + n - page - bytes;
#else
    *base = malloc(bytes); *len = 0;
    return (unsigned char *)*base;
#endif
}

static void unguard(void *base, size_t len) {
#ifdef HAVE_GUARD_PAGE
    munmap(base, len);
#else
    (void)len; free(base);
#endif
}

static void test_matmuls(void) {
    static const tfm_type types[] = {TFM_TYPE_F32, TFM_TYPE_F16, TFM_TYPE_BF16, TFM_TYPE_Q8_0, TFM_TYPE_Q4_0};
    /* in: one block, odd block counts (partial 2- and 4-block groups), a row longer than a cache
       block (kc) for 128 activation rows; float types also lengths that are not vector multiples */
    static const int64_t ins[] = {32, 96, 288, 160, 2080, 172, 20};
    /* out: decode reads rows as up to four runs of 16-row units in lockstep; 100 and 300 rows
       give full runs, a short last run and a partial last unit */
    static const int64_t outs[] = {1, 5, 37, 100, 300};
    static const int Bs[] = {1, 3, 5};
    size_t t, i, o, b;
    for (t = 0; t < sizeof types / sizeof types[0]; t++)
        for (i = 0; i < sizeof ins / sizeof ins[0]; i++)
            for (o = 0; o < sizeof outs / sizeof outs[0]; o++) {
                int64_t in = ins[i], out = outs[o];
                size_t bytes = tfm_type_row_size(types[t], in) * (size_t)out;
                void *base = NULL;
                size_t len = 0;
                unsigned char *w;
                if (bytes == 0) continue; /* quantized types need multiples of 32 */
                w = guarded(bytes, &base, &len);
                random_matrix(types[t], in, out, w);
                for (b = 0; b < sizeof Bs / sizeof Bs[0]; b++) check_matmul(types[t], in, out, Bs[b], 1, w);
                check_matmul(types[t], in, out, 4, 2, w);
                if (in == 2080 && out == 5) check_matmul(types[t], in, out, 130, 2, w); /* k blocks, 2 activation blocks */
                unguard(base, len);
            }
}

static void test_vector_kernels(void) {
    float a[301], b[301], y1[301], y2[301];
    int n, i;
    double worst = 0;
    for (i = 0; i < 301; i++) { a[i] = frand(); b[i] = frand(); y1[i] = y2[i] = frand(); }
    for (n = 0; n <= 301; n += (n < 40 ? 1 : 37)) {
        double scale = abs_scale(a, b, n) + 1e-30, e = fabs((double)tfm__dot_f32(a, b, n) - tfm__dot_f32_ref(a, b, n)) / scale;
        worst = e > worst ? e : worst;
    }
    CHECK(worst <= TOL_SIMD, "dot_f32 SIMD vs plain C %.3g", worst);
    tfm__axpy(y1, 0.37f, a, 301);
    tfm__axpy_ref(y2, 0.37f, a, 301);
    worst = 0;
    for (i = 0; i < 301; i++) worst = fabs((double)y1[i] - y2[i]) > worst ? fabs((double)y1[i] - y2[i]) : worst;
    CHECK(worst <= 1e-6, "axpy SIMD vs plain C %.3g (fused multiply-add rounds once)", worst);
    { /* attention: scores of n keys and the p-weighted mix of n values, head sizes 16..128 */
        static const int hds[] = {16, 48, 64, 80, 128, 20};
        static float K[37 * 128], V[37 * 128], q[128], p1[37], p2[37], o1[128], o2[128];
        size_t h;
        double ws = 0, wm = 0;
        for (i = 0; i < 37 * 128; i++) { K[i] = frand(); V[i] = frand(); }
        for (i = 0; i < 128; i++) q[i] = frand();
        for (h = 0; h < sizeof hds / sizeof hds[0]; h++)
            for (n = 1; n <= 37; n += 3) {
                int hd = hds[h];
                tfm__scores(p1, q, K, n, hd, 0.125f);
                tfm__scores_ref(p2, q, K, n, hd, 0.125f);
                for (i = 0; i < n; i++) {
                    double e = fabs((double)p1[i] - p2[i]) / (0.125 * abs_scale(q, K + (size_t)i * hd, hd));
                    ws = e > ws ? e : ws;
                    p1[i] = p2[i] = (float)fabs(p2[i]);
                }
                tfm__mix(o1, p1, V, n, hd);
                tfm__mix_ref(o2, p2, V, n, hd);
                for (i = 0; i < hd; i++) {
                    double scale = 0, e;
                    int k;
                    for (k = 0; k < n; k++) scale += fabs((double)p2[k] * V[(size_t)k * hd + i]);
                    e = fabs((double)o1[i] - o2[i]) / (scale + 1e-30);
                    wm = e > wm ? e : wm;
                }
            }
        CHECK(ws <= TOL_SIMD, "attention scores SIMD vs plain C %.3g", ws);
        CHECK(wm <= TOL_SIMD, "attention mix SIMD vs plain C %.3g", wm);
    }
    { /* attention over an F16 cache for groups of 1..3 query heads (GQA), n up to 300 keys so
         the SIMD path's 4096-value blocks split the rows (head sizes 16..128): probabilities and
         outputs against plain C, and plain C's scores against the F32 cache's within what
         rounding the keys to F16 allows (2^-11 of each term, relative) */
        static const int hds[] = {16, 48, 64, 80, 128, 20};
        enum { NK = 300, HD = 128, G = 3 };
        static float K[NK * HD], V[NK * HD], q[G * HD], p1[G * NK], p2[G * NK], p3[NK], o1[G * HD], o2[G * HD];
#ifdef TFM__VL
        static float Kw[NK * HD], Vw[NK * HD], pw[NK], ow[HD];
#endif
        int exact = 1;
        static uint16_t K16[NK * HD], V16[NK * HD];
        size_t h;
        double wp = 0, wo = 0, fs = 0;
        int g;
        for (i = 0; i < NK * HD; i++) {
            K[i] = frand();
            V[i] = frand();
            K16[i] = tfm_fp32_to_fp16(K[i]);
            V16[i] = tfm_fp32_to_fp16(V[i]);
#ifdef TFM__VL
            Kw[i] = tfm_fp16_to_fp32(K16[i]);
            Vw[i] = tfm_fp16_to_fp32(V16[i]);
#endif
        }
        for (i = 0; i < G * HD; i++) q[i] = frand() * 4;
        for (h = 0; h < sizeof hds / sizeof hds[0]; h++)
            for (g = 1; g <= G; g++)
                for (n = 1; n <= NK; n += (n < 40 ? 3 : 67)) {
                    int hd = hds[h], j;
                    tfm__attend_f16(p1, NK, q, o1, g, K16, V16, n, hd, 0.125f);
                    tfm__attend_f16_ref(p2, NK, q, o2, g, K16, V16, n, hd, 0.125f);
                    for (j = 0; j < g; j++) {
#ifdef TFM__VL /* SIMD: the F32 kernels over the widened cache, bit for bit */
                        tfm__scores(pw, q + j * hd, Kw, n, hd, 0.125f);
                        tfm__softmax(pw, n);
                        tfm__mix(ow, pw, Vw, n, hd);
                        exact &= memcmp(pw, p1 + j * NK, (size_t)n * sizeof(float)) == 0 && memcmp(ow, o1 + j * hd, (size_t)hd * sizeof(float)) == 0;
#endif
                        tfm__scores_f16_ref(p3, q + j * hd, K16, n, hd, 0.125f);
                        for (i = 0; i < n; i++) {
                            const double f = fabs((double)p3[i] - 0.125 * tfm__dot_f32_ref(q + j * hd, K + (size_t)i * hd, hd)) / (0.125 * abs_scale(q + j * hd, K + (size_t)i * hd, hd));
                            const double e = fabs((double)p1[j * NK + i] - p2[j * NK + i]) / (1e-5 * p2[j * NK + i] + 1e-12);
                            fs = f > fs ? f : fs;
                            wp = e > wp ? e : wp;
                        }
                        for (i = 0; i < hd; i++) {
                            double scale = 0, e;
                            int k;
                            for (k = 0; k < n; k++) scale += fabs((double)p2[j * NK + k] * V[(size_t)k * hd + i]);
                            e = fabs((double)o1[j * hd + i] - o2[j * hd + i]) / (scale + 1e-30);
                            wo = e > wo ? e : wo;
                        }
                    }
                }
        CHECK(wp <= 1.0, "F16 cache attention probabilities SIMD vs plain C: %.3g of the tolerance", wp);
        CHECK(wo <= 1e-5, "F16 cache attention output SIMD vs plain C %.3g", wo);
        CHECK(fs <= 1.0 / 2048 + TOL_SIMD, "F16 cache scores vs F32: %.3g (bound 2^-11)", fs);
        CHECK(exact, "F16 cache attention differs from the F32 kernels over the widened cache");
    }
    { /* softmax: 1..300 scores spread over [-s, s] for s up to 200 (so some exponentials
         underflow), each probability within 1e-6 relative (plus 1e-12) of plain C's */
        static float a[300], b[300];
        static const float spreads[] = {0.01f, 1.0f, 30.0f, 200.0f};
        double worst = 0, total_err = 0;
        size_t sp;
        for (sp = 0; sp < sizeof spreads / sizeof spreads[0]; sp++)
            for (n = 1; n <= 300; n += (n < 40 ? 1 : 29)) {
                double total = 0;
                for (i = 0; i < n; i++) a[i] = b[i] = frand() * spreads[sp];
                tfm__softmax(a, n);
                tfm__softmax_ref(b, n);
                for (i = 0; i < n; i++) {
                    double e = fabs((double)a[i] - b[i]) / (1e-6 * b[i] + 1e-12);
                    worst = e > worst ? e : worst;
                    total += a[i];
                }
                total_err = fabs(total - 1) > total_err ? fabs(total - 1) : total_err;
            }
        CHECK(worst <= 1.0, "softmax SIMD vs plain C: %.3g of the tolerance", worst);
        CHECK(total_err <= 1e-5, "softmax SIMD sums to 1 within %.3g", total_err);
    }
    { /* SwiGLU, h * silu(g): 1..70 values (every tail length) with g spread over [-s, s] for s
         up to 200 (e^-g overflows in a naive form past 88), each within 1e-6 of |h g| of plain C's;
         and zero, minus zero and g = +-88.7 exactly handled */
        static float h0[70], h1[70], h2[70], h3[70], g[70];
        static const float spreads[] = {0.01f, 1.0f, 8.0f, 200.0f};
        double worst = 0;
        int same = 1;
        size_t sp;
        for (sp = 0; sp < sizeof spreads / sizeof spreads[0]; sp++)
            for (n = 1; n <= 70; n++) {
                for (i = 0; i < n; i++) {
                    g[i] = frand() * spreads[sp];
                    h0[i] = h1[i] = h2[i] = h3[i] = frand() * 3;
                }
                if (n > 4) { g[0] = 0.0f; g[1] = -0.0f; g[2] = 88.7f; g[3] = -88.7f; }
                tfm__swiglu(h1, g, n);
                tfm__swiglu_ref(h2, g, n);
                tfm__swiglu(h3, g, n / 3); /* in two pieces: each value as in one call */
                tfm__swiglu(h3 + n / 3, g + n / 3, n - n / 3);
                same &= memcmp(h1, h3, (size_t)n * sizeof(float)) == 0;
                for (i = 0; i < n; i++) {
                    const double want = (double)h0[i] * g[i] / (1 + exp(-(double)g[i]));
                    const double e = fabs((double)h1[i] - h2[i]) / (1e-6 * fabs(want) + 1e-35);
                    worst = e > worst ? e : worst;
                }
            }
        CHECK(worst <= 1.0, "SwiGLU SIMD vs plain C: %.3g of the tolerance", worst);
        CHECK(same, "SwiGLU: a value's result depends on where the call starts");
    }
}

/* The AVX-512 and AVX2 kernels quantize activations themselves, into their own layout (tfm.h,
   "SIMD quantized products"): the same bytes and scales as the plain C quantizer, exactly
   (halfway cases, zero blocks and blocks too small for a finite 1/d included), each where the
   layout puts it in every lane, with the offset terms of each block summing to -8 (Q4_0) or
   -128 (Q8_0 on AVX-512) times the sum of its bytes, and the rest of a partial last group zero.
   An odd block count leaves a partial last group in the Q4_0 layout (two or four blocks each). */
static void test_act_quantizer(void) {
#if defined(TFM__AVX512) || defined(TFM__AVX2)
    enum { NB = 63 };
    float x[NB * 32];
    unsigned char *prep = (unsigned char *)malloc(tfm__xq_row_bytes(NB * 32));
    tfm_block_q8_0 ref[NB];
    int i, j, q4, same = 1, offsets = 1, padding = 1;
    for (i = 0; i < NB * 32; i++) x[i] = frand() * (float)(1 + i % 5);
    for (j = 0; j < 32; j++) x[32 + j] = (float)(j - 16) * 0.5f;    /* halves after scaling: ties */
    for (j = 0; j < 32; j++) x[64 + j] = 0.0f;                       /* d = 0 */
    x[96] = -1e-30f;                                                 /* a tiny value among others */
    for (j = 0; j < 32; j++) x[128 + j] = (j % 2 ? -1e-38f : 5e-39f); /* 1/d is infinite */
    tfm_quantize_row(TFM_TYPE_Q8_0, x, ref, NB * 32);
    for (j = 0; j < 32; j++) same &= ref[4].qs[j] == 0;
    CHECK(same, "plain quantizer: a block too small for a finite 1/d gives zeros");
    for (q4 = 0; q4 <= 1; q4++) {
        const int per = TFM__QG(q4), lanes = TFM__VL / per, ng = (NB + per - 1) / per;
        tfm__quantize_act(q4 ? TFM_TYPE_Q4_0 : TFM_TYPE_Q8_0, x, NB * 32, prep);
        for (i = 0; i < ng * per; i++) {
            const unsigned char *g = prep + (size_t)(i / per) * TFM__QGB(q4);
            const int k = i % per, real = i < NB;
            const float want_d = real ? tfm_fp16_to_fp32(ref[i].d) : 0.0f;
            int *ok = real ? &same : &padding;
            int32_t sum = 0, off = 0, t;
            float d;
            for (j = 0; j < lanes; j++) {
                memcpy(&d, g + TFM__QXD(q4) + 4 * TFM__QLANE(q4, k, j), 4);
                *ok &= d == want_d;
            }
            for (j = 0; j < 32; j++) {
                const int8_t q = (int8_t)g[TFM__QPOS(q4, k, j)];
                *ok &= q == (real ? ref[i].qs[j] : 0);
                if (real) sum += ref[i].qs[j];
            }
            if (!TFM__QHAS_OFF(q4)) continue;
            for (j = 0; j < lanes; j++) {
                memcpy(&t, g + TFM__QXI(q4) + 4 * TFM__QLANE(q4, k, j), 4);
                off += t;
            }
            *(real ? &offsets : &padding) &= off == (q4 ? -8 : -128) * sum;
        }
        CHECK(same, "%s activation quantizer (%s layout) differs from tfm_quantize_row", tfm_kernels(), q4 ? "Q4_0" : "Q8_0");
        CHECK(offsets, "%s activation offsets (%s layout) are not the offset times the block sums", tfm_kernels(), q4 ? "Q4_0" : "Q8_0");
        CHECK(padding, "%s activation layout (%s): the partial last group is not zero", tfm_kernels(), q4 ? "Q4_0" : "Q8_0");
    }
    free(prep);
#endif
}

/* ---- the thread governor (tfm_session_eval), on a simulated machine: cost[t] is the cost of an
   eval on t threads; on a loaded machine one eval in five on more than one thread is a slow one
   (a thread lost its core mid-step), which a median would hide and a mean does not. */
typedef struct {
    double cost[9];
    int loaded;
} sim_machine;

static double sim_cost(const sim_machine *m, int threads, long i) {
    const double noise = 1.0 + 0.05 * frand(), u = 0.5 + 0.5 * frand();
    (void)i;
    if (m->loaded && threads > 1 && u < 0.2) return 10.0 * m->cost[threads] * noise;
    return m->cost[threads] * noise;
}

/* Runs `evals` evals of n tokens; counts the evals on each thread count; returns the total cost. */
static double sim_run(tfm__governor *g, int max, const sim_machine *m, long evals, size_t n, long *on) {
    double total = 0;
    long i;
    for (i = 0; i < evals; i++) {
        const int t = tfm__governor_next(g, max);
        const double c = (double)n * sim_cost(m, t, i);
        on[t]++;
        total += c;
        tfm__governor_record(g, max, n, c);
    }
    return total;
}

static void test_governor(void) {
    const sim_machine quiet = {{0, 1.6, 1.0, 0, 0, 0, 0, 0, 0}, 0}, loaded = {{0, 1.1, 1.0, 0, 0, 0, 0, 0, 0}, 1};
    const sim_machine four = {{0, 2.5, 1.4, 1.0, 2.0, 0, 0, 0, 0}, 0};
    const sim_machine two_cores = {{0, 1.8, 1.0, 4.5, 6.0, 7.5, 9.0, 10.5, 12.0}, 0}; /* 8 asked */
    tfm__governor g;
    long on[9], i;
    double total;
    /* a quiet machine where two threads are faster: tries of one thread cost under 1% */
    memset(&g, 0, sizeof g); memset(on, 0, sizeof on);
    total = sim_run(&g, 2, &quiet, 5000, 1, on);
    CHECK(on[2] >= 4975 && total < 1.01 * 5000 * 1.0 * 1.05, "quiet: %ld of 5000 evals on two threads, cost %.0f", on[2], total);
    /* loaded: two threads average 2.8 per eval against 1.1 on one; the governor moves to one */
    memset(&g, 0, sizeof g); memset(on, 0, sizeof on);
    total = sim_run(&g, 2, &loaded, 5000, 1, on);
    CHECK(on[1] >= 4500 && total < 1.25 * 5000 * 1.1, "loaded: %ld of 5000 evals on one thread, cost %.0f (one thread: %.0f)", on[1], total, 5000 * 1.1);
    /* the load goes away: back to two threads within about the longest interval */
    memset(on, 0, sizeof on);
    sim_run(&g, 2, &quiet, 1100, 1, on);
    memset(on, 0, sizeof on);
    sim_run(&g, 2, &quiet, 2000, 1, on);
    CHECK(on[2] >= 1980, "load gone: %ld of 2000 evals on two threads", on[2]);
    /* four threads asked, three best: it walks down one thread at a time and stays */
    memset(&g, 0, sizeof g); memset(on, 0, sizeof on);
    sim_run(&g, 4, &four, 1000, 1, on);
    memset(on, 0, sizeof on);
    sim_run(&g, 4, &four, 3000, 1, on);
    CHECK(on[3] >= 2900, "four asked, three best: %ld of 3000 evals on three", on[3]);
    /* eight threads asked on two free cores: each try that wins is followed by the next, so it
       is down to two within a few hundred evals, not one try per interval */
    memset(&g, 0, sizeof g); memset(on, 0, sizeof on);
    total = sim_run(&g, 8, &two_cores, 300, 1, on);
    memset(on, 0, sizeof on);
    sim_run(&g, 8, &two_cores, 2000, 1, on);
    CHECK(tfm__governor_next(&g, 8) == 2 && on[2] >= 1950, "eight asked, two cores: %ld of 2000 evals on two (first 300 cost %.0f)", on[2], total);
    /* evals of different sizes are never compared: a 64-token eval after 1-token evals would look
       like a disaster for whatever count ran it */
    memset(&g, 0, sizeof g); memset(on, 0, sizeof on);
    for (i = 0; i < 3000; i++) sim_run(&g, 2, &quiet, 1, (size_t)(i % 7 == 0 ? 64 : 1), on);
    CHECK(on[2] >= 2970, "mixed sizes: %ld of 3000 evals on two threads", on[2]);
    /* one thread asked: nothing to try */
    memset(&g, 0, sizeof g); memset(on, 0, sizeof on);
    sim_run(&g, 1, &loaded, 500, 1, on);
    CHECK(on[1] == 500, "one thread asked: %ld of 500 on one", on[1]);
}

int main(void) {
#if defined(__AVX2__) && !defined(__AVX512F__) && defined(__GNUC__)
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) { printf("SKIP: this CPU has no AVX2/FMA\n"); return 0; }
#endif
    (void)test_read_file; (void)test_exists; (void)test_parse_ids;
    printf("  kernels: %s\n", tfm_kernels());
    test_fp16();
    test_block_layouts();
    test_vector_kernels();
    test_act_quantizer();
    test_matmuls();
    test_governor();
    return test_summary("test_kernels");
}
