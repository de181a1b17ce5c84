/* No allocation after init. TFM_MALLOC/TFM_FREE are hooks that count their calls; after the
   model, session and sampler are initialized, full generations (prefill, greedy and stochastic
   decoding, A2SF/H2O/window eviction, several sequences, sequence copy and reset, decoding the
   text and tokenizing with tfm_tokenize_ex in caller memory) must make zero calls, and every allocation must be freed at the end. malloc/calloc/realloc/free are also
   redefined around the implementation, so a direct libc call that bypasses the hooks is counted
   (it must never happen); and where glibc can tell, the bytes in use on the heap must not change
   during a generation (which also catches libc helpers that allocate, such as qsort). With
   OpenMP, its runtime allocates its thread team on first use, outside tfm.h's hooks: that first
   generation's heap change is only reported, and a second generation must change nothing.
   A second part builds everything with the *_init_preallocated calls in caller memory, as
   firmware does: then the hooks are never called at all. */
#include "test.h"
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)) && !defined(__SANITIZE_ADDRESS__)
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

static long n_hook_calls, n_hook_malloc, n_hook_free, n_direct;
static void *hook_malloc(size_t n) { n_hook_calls++; n_hook_malloc++; return malloc(n); }
static void hook_free(void *p) { n_hook_calls++; if (p) n_hook_free++; free(p); }
static void *direct_malloc(size_t n) { n_direct++; return malloc(n); }
static void *direct_calloc(size_t n, size_t s) { n_direct++; return calloc(n, s); }
static void *direct_realloc(void *p, size_t n) { n_direct++; return realloc(p, n); }
static void direct_free(void *p) { n_direct++; free(p); }

#define TFM_MALLOC(n) hook_malloc(n)
#define TFM_FREE(p) hook_free(p)
#define malloc(n) direct_malloc(n)
#define calloc(n, s) direct_calloc(n, s)
#define realloc(p, n) direct_realloc(p, n)
#define free(p) direct_free(p)
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#undef malloc
#undef calloc
#undef realloc
#undef free

#define MAX_STEPS 64

#ifdef _OPENMP
static const int openmp = 1;
#else
static const int openmp = 0;
#endif

#ifdef HAVE_MALLINFO2
static const int have_heap = 1;
#else
static const int have_heap = 0;
#endif

static size_t heap_in_use(void) {
#ifdef HAVE_MALLINFO2
    return mallinfo2().uordblks;
#else
    return 0;
#endif
}

typedef struct {
    const char *name, *path;
    tfm_kv_policy policy;
    int32_t budget, n_seq, n_batch, n_threads;
    int n_gen;
} scenario;

/* Memory the generation loop itself needs, allocated before the count starts. */
typedef struct {
    int32_t hist[2][MAX_STEPS + 8];
    size_t n_hist[2];
    float *logp;                 /* [n_vocab] */
    int32_t kept[MAX_STEPS + 8];
    void *tok_work;              /* tfm_tokenize_work_size(vocab, strlen(TEXT)) bytes */
    size_t tok_work_size;
    int32_t tok_ids[64];
    char text[4096];
} gen_state;

#define TEXT "Once upon a time, there was a little girl named Lily."

/* Decoding and encoding text with the model's vocabulary, in memory given up front. */
static int text_round(const tfm_vocab *v, gen_state *g, int32_t prev, int32_t tok) {
    size_t n = 0;
    if (v->n_tokens == 0) return 1;
    tfm_token_to_piece(v, prev, tok, g->text, 64);
    if (tfm_detokenize(v, g->hist[0], g->n_hist[0], g->text, sizeof g->text, &n) != TFM_OK) return 0;
    return tfm_tokenize_ex(v, TEXT, strlen(TEXT), 1, g->tok_ids, 64, &n, g->tok_work, g->tok_work_size) == TFM_OK && n > 0;
}

/* A prompt of n valid ids (the model's BOS first when it has one). */
static void make_prompt(const tfm_model *m, int32_t *ids, size_t n, int salt) {
    static const int32_t base[] = {1, 403, 407, 261, 378, 13, 29871, 450};
    size_t i;
    for (i = 0; i < n; i++) ids[i] = (base[(i + (size_t)salt) % 8] + 7 * salt) % m->hp.n_vocab;
    if (m->vocab.bos_id >= 0 && m->vocab.bos_id < m->hp.n_vocab) ids[0] = m->vocab.bos_id;
}

/* Prefill, then n_gen steps of every sequence together: sequence 0 greedy, the others sampled;
   half-way, the last sequence is reset and restarted from a copy of sequence 0. */
static int generate(tfm_session *s, tfm_sampler *greedy, tfm_sampler *sampler, gen_state *g, int n_seq, int n_gen) {
    const tfm_model *m = s->model;
    int32_t toks[8], seqs[8];
    size_t np = 5;
    int q, step;
    make_prompt(m, g->hist[0], np, 0);
    g->n_hist[0] = g->n_hist[1] = np;
    if (tfm_session_eval(s, g->hist[0], NULL, np, NULL) != TFM_OK) return 0;
    for (q = 1; q < n_seq; q++)
        if (tfm_seq_copy(s, q, 0) != TFM_OK) return 0;
    memcpy(g->hist[1], g->hist[0], np * sizeof(int32_t));
    for (step = 0; step < n_gen; step++) {
        for (q = 0; q < n_seq; q++) {
            const float *logits = tfm_session_logits(s, q);
            int h = q ? 1 : 0;
            toks[q] = q == 0 ? tfm_sample(greedy, logits, g->hist[h], g->n_hist[h]) : tfm_sample(sampler, logits, g->hist[h], g->n_hist[h]);
            if (toks[q] < 0) return 0;
            if (g->n_hist[h] < MAX_STEPS + 8) g->hist[h][g->n_hist[h]++] = toks[q];
            seqs[q] = q;
        }
        tfm_log_softmax(tfm_session_logits(s, 0), g->logp, m->hp.n_vocab);
        if (!text_round(&m->vocab, g, g->hist[0][g->n_hist[0] - 2], toks[0])) return 0;
        if (tfm_session_eval(s, toks, seqs, (size_t)n_seq, NULL) != TFM_OK) return 0;
        tfm_seq_kept(s, 0, 0, 0, g->kept, MAX_STEPS + 8);
        if (n_seq > 1 && step == n_gen / 2) {
            if (tfm_seq_reset(s, n_seq - 1) != TFM_OK || tfm_seq_copy(s, n_seq - 1, 0) != TFM_OK) return 0;
        }
    }
    return 1;
}

static void run_scenario(const scenario *sc) {
    tfm_model m;
    tfm_session s;
    tfm_sampler greedy, sampler;
    tfm_session_config cfg;
    tfm_sampler_config scfg;
    gen_state *g;
    long mallocs_before = n_hook_malloc, calls;
    size_t heap;
    int ok, round;
    if (!test_exists(sc->path)) return;
    if (tfm_model_load(&m, sc->path) != TFM_OK) { CHECK(0, "%s: load: %s", sc->name, m.error); return; }
    memset(&cfg, 0, sizeof cfg);
    cfg.n_ctx = 5 + sc->n_gen + 1;
    cfg.n_seq = sc->n_seq;
    cfg.n_batch = sc->n_batch;
    cfg.n_threads = sc->n_threads;
    cfg.kv.policy = sc->policy;
    cfg.kv.budget = sc->budget;
    cfg.kv.alpha = 0.5f;
    if (sc->policy == TFM_KV_WINDOW) cfg.kv.n_sink = 1;
    memset(&scfg, 0, sizeof scfg);
    CHECK(tfm_session_init(&s, &m, &cfg) == TFM_OK, "%s: session: %s", sc->name, s.error);
    CHECK(tfm_sampler_init(&greedy, &scfg, m.hp.n_vocab) == TFM_OK, "%s: greedy sampler", sc->name);
    scfg.temperature = 0.8f; scfg.top_k = 40; scfg.top_p = 0.9f; scfg.min_p = 0.01f; scfg.repeat_penalty = 1.1f; scfg.seed = 7;
    CHECK(tfm_sampler_init(&sampler, &scfg, m.hp.n_vocab) == TFM_OK, "%s: sampler", sc->name);
    g = (gen_state *)calloc(1, sizeof *g);
    g->logp = (float *)malloc((size_t)m.hp.n_vocab * sizeof(float));
    g->tok_work_size = tfm_tokenize_work_size(&m.vocab, strlen(TEXT));
    g->tok_work = malloc(g->tok_work_size + 1);
    printf("  %s, %d steps x %d sequences%s", sc->name, sc->n_gen, sc->n_seq, m.vocab.n_tokens ? ", text" : ""); /* stdio buffers are allocated now */
    fflush(stdout);

    for (round = 0; round < 2; round++) {
        int q, strict = sc->n_threads == 1 && (round == 1 || !openmp);
        for (q = 0; q < sc->n_seq; q++) tfm_seq_reset(&s, q);
        calls = n_hook_calls;
        heap = heap_in_use();
        ok = generate(&s, &greedy, &sampler, g, sc->n_seq, sc->n_gen);
        CHECK(ok, "%s: generation failed: %s", sc->name, s.error);
        calls = n_hook_calls - calls;
        heap = heap_in_use() - heap;
        CHECK(calls == 0, "%s: %ld TFM_MALLOC/TFM_FREE calls during generation", sc->name, calls);
        if (strict && have_heap) CHECK(heap == 0, "%s: heap bytes in use changed by %zd during generation %d", sc->name, (ptrdiff_t)heap, round + 1);
        printf("%s generation %d: %ld hook calls", round ? ";" : ":", round + 1, calls);
        if (have_heap) printf(", heap change %zd B%s", (ptrdiff_t)heap, strict ? "" : " (not checked: OpenMP runtime)");
    }
    printf("\n");
    free(g->logp);
    free(g->tok_work);
    free(g);
    tfm_sampler_free(&sampler);
    tfm_sampler_free(&greedy);
    tfm_session_free(&s);
    tfm_model_free(&m);
    CHECK(n_hook_malloc > mallocs_before, "%s: init made no TFM_MALLOC call at all (are the hooks wired?)", sc->name);
    CHECK(n_hook_malloc == n_hook_free, "%s: %ld TFM_MALLOC vs %ld TFM_FREE", sc->name, n_hook_malloc, n_hook_free);
}

/* ---------------------------------------------------------------- everything in caller memory */

static unsigned char arena[16 << 20];
static size_t arena_used;

static void *take(size_t n) {
    size_t start = (arena_used + 63) & ~(size_t)63;
    if (n > sizeof arena - start) return NULL;
    arena_used = start + n;
    return arena + start;
}

static void run_preallocated(const char *path) {
    size_t size = 0, need;
    char *file = test_read_file(path, &size);
    void *copy;
    tfm_gguf gg;
    tfm_model m;
    tfm_session s;
    tfm_sampler greedy, sampler;
    tfm_session_config cfg;
    tfm_sampler_config scfg;
    static gen_state g;
    long calls = n_hook_calls;
    if (!file) return;
    arena_used = 0;
    copy = take(size); /* the "flash": a 64-aligned copy of the file */
    CHECK(copy != NULL, "arena too small for %s", path);
    if (!copy) { free(file); return; }
    memcpy(copy, file, size);
    free(file);
    CHECK(tfm_gguf_heap_size(copy, size, &need) == TFM_OK, "gguf heap size");
    CHECK(tfm_gguf_init_preallocated(&gg, copy, size, take(need), need) == TFM_OK, "gguf: %s", gg.error);
    CHECK(tfm_model_heap_size(&gg, &need) == TFM_OK, "model heap size");
    CHECK(tfm_model_init_preallocated(&m, &gg, take(need), need) == TFM_OK, "model: %s", m.error);
    memset(&cfg, 0, sizeof cfg);
    cfg.n_ctx = 48; cfg.n_seq = 2; cfg.n_threads = 1; cfg.kv.policy = TFM_KV_A2SF; cfg.kv.budget = 8; cfg.kv.alpha = 0.5f;
    CHECK(tfm_session_heap_size(&m, &cfg, &need) == TFM_OK, "session heap size");
    CHECK(tfm_session_init_preallocated(&s, &m, &cfg, take(need), need) == TFM_OK, "session: %s", s.error);
    memset(&scfg, 0, sizeof scfg);
    CHECK(tfm_sampler_heap_size(m.hp.n_vocab, &need) == TFM_OK, "sampler heap size");
    CHECK(tfm_sampler_init_preallocated(&greedy, &scfg, m.hp.n_vocab, take(need), need) == TFM_OK, "greedy sampler");
    scfg.temperature = 1.0f; scfg.top_k = 20; scfg.seed = 3;
    CHECK(tfm_sampler_init_preallocated(&sampler, &scfg, m.hp.n_vocab, take(need), need) == TFM_OK, "sampler");
    g.logp = (float *)take((size_t)m.hp.n_vocab * sizeof(float));
    g.tok_work_size = tfm_tokenize_work_size(&m.vocab, strlen(TEXT));
    g.tok_work = take(g.tok_work_size + 1);
    CHECK(g.logp && generate(&s, &greedy, &sampler, &g, 2, 40), "preallocated generation: %s", s.error);
    /* free on preallocated objects releases nothing (and must not call TFM_FREE) */
    tfm_sampler_free(&sampler);
    tfm_sampler_free(&greedy);
    tfm_session_free(&s);
    tfm_model_free(&m);
    tfm_gguf_free(&gg);
    calls = n_hook_calls - calls;
    CHECK(calls == 0, "preallocated: %ld TFM_MALLOC/TFM_FREE calls", calls);
    printf("  preallocated %s: %zu B of caller memory (model bytes included), %ld hook calls in all\n", path, arena_used, calls);
}

int main(void) {
    static const scenario cases[] = {
        {"tfm-kjv (default model), A2SF budget 16, 2 sequences", "models/tfm-kjv.gguf", TFM_KV_A2SF, 16, 2, 0, 1, 40},
        {"stories260K F32, full cache", "../shared/models/stories260K.gguf", TFM_KV_FULL, 0, 1, 0, 1, 48},
        {"stories260K, A2SF budget 8, 2 sequences", "../shared/models/stories260K.gguf", TFM_KV_A2SF, 8, 2, 0, 1, 48},
        {"stories260K, H2O budget 8, 3 sequences, batch 2", "../shared/models/stories260K.gguf", TFM_KV_H2O, 8, 3, 2, 1, 32},
        {"stories260K, window 8, 2 sequences, 2 threads", "../shared/models/stories260K.gguf", TFM_KV_WINDOW, 8, 2, 0, 2, 32},
        {"llama Q8_0, A2SF budget 6", "../shared/models/llama-q/llama-tiny-random.q8_0.gguf", TFM_KV_A2SF, 6, 2, 0, 1, 24},
        {"llama Q4_0, full cache", "../shared/models/llama-q/llama-tiny-random.q4_0.gguf", TFM_KV_FULL, 0, 1, 0, 1, 24},
        {"llama-2-tiny-random F16, A2SF budget 4", "../shared/models/llama-2-tiny-random.gguf", TFM_KV_A2SF, 4, 1, 0, 1, 16},
        {"gpt2-A F32, A2SF budget 6", "../shared/models/gpt2-A/gpt2-tiny-random-A.f32.gguf", TFM_KV_A2SF, 6, 2, 0, 1, 24},
    };
    size_t i;
    (void)direct_malloc; (void)direct_calloc; (void)direct_realloc; (void)direct_free; /* unused when tfm.h is clean */
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) run_scenario(&cases[i]);
    run_preallocated("../shared/models/stories260K.gguf");
    run_preallocated("../shared/models/gpt2-A/gpt2-tiny-random-A.f32.gguf");
    CHECK(n_direct == 0, "%ld direct malloc/calloc/realloc/free calls from the implementation", n_direct);
#ifndef HAVE_MALLINFO2
    printf("SKIP: heap-bytes check (needs glibc mallinfo2, no ASan)\n");
#endif
    return test_summary("test_noalloc");
}
