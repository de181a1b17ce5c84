/* bench - prefill and decode speed of one GGUF file, as one JSON line.
 *
 *   bench -m FILE [-t THREADS] [-p N_PROMPT] [-n N_GEN] [-d DEPTH] [-c f32|f16] [-r REPS] [-f]
 *
 * start-up  : open (mmap) + model + session + the first token's logits, timed once, first.
 * prefill   : one batch of N_PROMPT (128) tokens from an empty context, tokens/s.
 * decode    : N_GEN (64) tokens one at a time from an empty context, tokens/s.
 * depth     : with -d, prefill and decode start after DEPTH tokens already in the cache (evaluated
 *             once, untimed, into a second sequence that each run copies), so attention reads
 *             DEPTH more keys and values per token.
 * cache     : -c f16 keeps keys and values as F16 (tfm_kv_config.type; default f32). With -d the
 *             session holds two sequences, so peak_rss counts two caches.
 * Each is run REPS (3) times after one warm-up; the median is reported.
 * threads   : THREADS is the most the session uses (tfm_session_config.threads_fixed); -f fixes
 *             it. decode_threads is the mean thread count of the measured decode evals.
 * bandwidth : the machine's read bandwidth, measured here with THREADS threads on a buffer far
 *             larger than the caches (best of one- and four-stream reads); bw_limit_tps =
 *             bandwidth / weight bytes read per decoded token (every matrix once, plus one
 *             embedding row), and bw_fraction = decode / limit.
 * peak_rss  : getrusage's maximum resident set (mapped weight pages count once touched).
 * cpu, kernels: where it ran (/proc/cpuinfo) and the kernels tfm.h selected (tfm_kernels()).
 * Token ids are a fixed pseudo-random sequence: speed does not depend on the text.
 */
#define _DEFAULT_SOURCE 1 /* clock_gettime, getrusage, mmap, madvise */
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#if defined(__linux__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Bytes of weights one decode step reads: every tensor except the embedding table (of which it
   reads one row) and the learned position table (one row), unless the head is the embedding. */
static double decode_bytes(const tfm_model *m) {
    const tfm_gguf *g = m->gguf;
    double total = 0;
    size_t i;
    for (i = 0; i < g->n_tensors; i++) {
        const tfm_gguf_tensor *t = &g->tensors[i];
        int is_embd = t->t.data == m->tok_embd.data, is_pos = m->pos_embd.data && t->t.data == m->pos_embd.data;
        if ((is_embd && m->output.data != m->tok_embd.data) || is_pos)
            total += (double)tfm_type_row_size(t->t.type, t->t.ne[0]);
        else
            total += (double)t->nbytes;
    }
    return total;
}

/* Read bandwidth in GB/s: the best of several passes over a 512 MB buffer (far beyond the
   caches), the threads splitting it, reading each 256 KB chunk either as one sequential stream
   or as four streams in lockstep (as the decode kernels read weight rows), adding into four
   accumulators in turn. On a Zen 3 four streams read 20-25% faster than one, and the kernels
   beat a one-stream measurement. */
#if defined(__AVX2__)
#include <immintrin.h>
static float bw_chunk(const float *p, size_t n, int streams) {
    const size_t run = n / (size_t)streams;
    __m256 a[4];
    float out[8];
    size_t i;
    int s;
    for (s = 0; s < 4; s++) a[s] = _mm256_setzero_ps();
    for (i = 0; i + 16 <= run; i += 16)
        for (s = 0; s < streams; s++) {
            const float *q = p + (size_t)s * run + i;
            a[(s + i / 16) & 3] = _mm256_add_ps(a[(s + i / 16) & 3], _mm256_add_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(q + 8)));
        }
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
    return out[0];
}
#else
static float bw_chunk(const float *p, size_t n, int streams) { /* 8 sums per stream: compilers vectorize this */
    const size_t run = n / (size_t)streams;
    float a[4][8] = {{0}};
    size_t i;
    int s, j;
    for (i = 0; i + 8 <= run; i += 8)
        for (s = 0; s < streams; s++)
            for (j = 0; j < 8; j++) a[(s + i / 8) & 3][j] += p[(size_t)s * run + i + j];
    for (s = 1; s < 4; s++)
        for (j = 0; j < 8; j++) a[0][j] += a[s][j];
    return a[0][0] + a[0][1] + a[0][2] + a[0][3] + a[0][4] + a[0][5] + a[0][6] + a[0][7];
}
#endif

static double measure_bandwidth(int threads) {
    const size_t n = (size_t)512 << 20, count = n / sizeof(float), chunk = (size_t)1 << 16;
    float *buf = NULL, sink = 0;
    double best = 0;
    int pass;
    long c;
#ifdef MADV_HUGEPAGE
    /* huge pages where the system allows: mapped weights get large folios too, and 4 KB pages
       would measure the TLB rather than the memory */
    buf = (float *)mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ((void *)buf == MAP_FAILED) buf = NULL;
    else madvise(buf, n, MADV_HUGEPAGE);
#else
    buf = (float *)malloc(n);
#endif
    if (!buf) return 0;
    memset(buf, 0, n);
    (void)threads;
    for (pass = 0; pass < 8; pass++) {
        double t0 = now_s(), dt;
        float acc = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : acc)
#endif
        for (c = 0; c < (long)(count / chunk); c++) acc += bw_chunk(buf + (size_t)c * chunk, chunk, pass % 2 ? 4 : 1);
        dt = now_s() - t0;
        sink += acc;
        if ((double)n / dt > best) best = (double)n / dt;
    }
#ifdef MADV_HUGEPAGE
    munmap(buf, n);
#else
    free(buf);
#endif
    if (sink == 42) fprintf(stderr, " ");
    return best / 1e9;
}

/* The CPU's name and family as /proc/cpuinfo gives them (Linux), so a saved line says where it
   ran; "?" elsewhere. Quotes and backslashes are left out (the line is JSON). */
static void cpu_name(char *out, size_t cap) {
    char line[256], name[128] = "?", family[16] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    size_t n = 0;
    const char *p;
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *v = strchr(line, ':');
            if (!v) continue;
            v += strspn(v + 1, " \t") + 1;
            v[strcspn(v, "\n")] = 0;
            if (!strncmp(line, "model name", 10) && name[0] == '?') snprintf(name, sizeof name, "%s", v);
            else if (!strncmp(line, "cpu family", 10) && family[0] == '?') snprintf(family, sizeof family, "%s", v);
        }
        fclose(f);
    }
    for (p = name; *p && n + 1 < cap; p++)
        if (*p != '"' && *p != '\\') out[n++] = *p;
    out[n] = 0;
    if (family[0] != '?') snprintf(out + n, cap - n, " (family %s)", family);
}

static void fill_tokens(int32_t *tok, int n, int32_t n_vocab) {
    uint32_t s = 12345u;
    int i;
    for (i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; tok[i] = (int32_t)((s >> 8) % (uint32_t)n_vocab); }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int threads = 0, n_prompt = 128, n_gen = 64, depth = 0, reps = 3, fixed = 0, f16 = 0, i, r;
    long threads_used = 0;
    tfm_model m;
    tfm_session s;
    tfm_session_config cfg;
    int32_t *tok;
    double t0, startup_ms, pp[32], tg[32], bw, bytes, pp_tps, tg_tps;
    char cpu[160];
    struct rusage ru;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-p") && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc && (!strcmp(argv[i + 1], "f16") || !strcmp(argv[i + 1], "f32"))) f16 = !strcmp(argv[++i], "f16");
        else if (!strcmp(argv[i], "-f")) fixed = 1;
        else { fprintf(stderr, "usage: %s -m FILE [-t THREADS] [-p N_PROMPT] [-n N_GEN] [-d DEPTH] [-c f32|f16] [-r REPS] [-f]\n", argv[0]); return 2; }
    }
    if (!path || n_prompt < 1 || n_gen < 1 || depth < 0 || depth > (1 << 20) || reps < 1 || reps > 32) {
        fprintf(stderr, "usage: %s -m FILE [-t THREADS] [-p N_PROMPT] [-n N_GEN] [-d DEPTH] [-c f32|f16] [-r REPS 1..32] [-f]\n", argv[0]);
        return 2;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.n_threads = threads;
    cfg.threads_fixed = fixed;
    cfg.n_ctx = depth + n_prompt + n_gen;
    cfg.kv.type = f16 ? TFM_TYPE_F16 : TFM_TYPE_F32;
    cfg.n_seq = depth ? 2 : 1;
    cfg.n_batch = n_prompt;

    t0 = now_s();
    if (tfm_model_load(&m, path) != TFM_OK) { fprintf(stderr, "bench: %s: %s\n", path, m.error); return 1; }
    if (tfm_session_init(&s, &m, &cfg) != TFM_OK) { fprintf(stderr, "bench: session: %s\n", s.error); return 1; }
    tok = (int32_t *)malloc((size_t)(depth + n_prompt + n_gen) * sizeof *tok);
    if (!tok) return 1;
    fill_tokens(tok, depth + n_prompt + n_gen, m.hp.n_vocab);
    if (tfm_session_eval(&s, tok, NULL, 1, NULL) != TFM_OK) { fprintf(stderr, "bench: eval: %s\n", s.error); return 1; }
    startup_ms = 1e3 * (now_s() - t0);
    if (depth) { /* the context every run starts from, in sequence 1 */
        int32_t *one = (int32_t *)malloc((size_t)depth * sizeof *one);
        if (!one) return 1;
        for (i = 0; i < depth; i++) one[i] = 1;
        tfm_seq_reset(&s, 1);
        if (tfm_session_eval(&s, tok, one, (size_t)depth, NULL) != TFM_OK) { fprintf(stderr, "bench: depth: %s\n", s.error); return 1; }
        free(one);
    }

    for (r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t;
        tfm_seq_reset(&s, 0);
        if (depth) tfm_seq_copy(&s, 0, 1);
        t = now_s();
        tfm_session_eval(&s, tok + depth, NULL, (size_t)n_prompt, NULL);
        if (r >= 0) pp[r] = now_s() - t;
        tfm_seq_reset(&s, 0);
        if (depth) tfm_seq_copy(&s, 0, 1);
        t = now_s();
        for (i = 0; i < n_gen; i++) {
            tfm_session_eval(&s, tok + depth + i, NULL, 1, NULL); /* as llama-bench: no sampling */
            if (r >= 0) threads_used += s.n_threads_used;
        }
        if (r >= 0) tg[r] = now_s() - t;
    }
    getrusage(RUSAGE_SELF, &ru);
    pp_tps = n_prompt / median(pp, reps);
    tg_tps = n_gen / median(tg, reps);
    bytes = decode_bytes(&m);
    bw = measure_bandwidth(s.cfg.n_threads);
    cpu_name(cpu, sizeof cpu);
    printf("{\"model\": \"%s\", \"cpu\": \"%s\", \"kernels\": \"%s\", \"type\": \"%s\", \"threads\": %d, \"threads_fixed\": %d, \"decode_threads\": %.2f, \"omp_wait_policy\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"depth\": %d, \"kv_type\": \"%s\", "
           "\"prefill_tps\": %.1f, \"decode_tps\": %.2f, \"startup_ms\": %.1f, \"weight_bytes_per_token\": %.0f, "
           "\"bandwidth_gbs\": %.1f, \"bw_limit_tps\": %.2f, \"bw_fraction\": %.3f, \"peak_rss_mb\": %.1f}\n",
           path, cpu, tfm_kernels(), tfm_type_name(m.layers[0].w_up.type), s.cfg.n_threads, fixed, (double)threads_used / ((double)reps * n_gen), getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "default", n_prompt, n_gen, depth, f16 ? "f16" : "f32", pp_tps, tg_tps, startup_ms,
           bytes, bw, bw * 1e9 / bytes, tg_tps * bytes / (bw * 1e9), (double)ru.ru_maxrss / 1024.0);
    free(tok);
    tfm_session_free(&s);
    tfm_model_free(&m);
    return 0;
}
