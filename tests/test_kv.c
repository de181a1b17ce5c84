/* KV-cache pruning (A2SF / H2O / WINDOW): the rule on a hand-worked example, config checks,
   identities on real models, memory per slot, long runs past the context, and a dump of every
   attention step that tests/kv_reference.py replays independently (numpy) from p alone. */
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "test.h"
#include "../examples/kv_flags.h"

#define STORIES "../shared/models/stories260K.gguf"
#define STORIES_IDS "../shared/ref/stories260K_once_upon_t0_n256.tokens.txt"
#define GPT2 "../shared/models/gpt2-A/gpt2-tiny-random-A.f32.gguf"
#ifndef DEFAULT_MODEL
#define DEFAULT_MODEL "models/tfm-kjv.gguf"
#endif
#define DUMP "build/kv_attn.txt"
#define MAXN 1200

/* ---------------------------------------------------------------- 1. the rule by hand */

typedef struct { int32_t pos[8]; float score[8]; int32_t n; } hand_cache;

/* Appends token `cur`, gives each slot the p of its position (row[pos]), runs the library's rule
   step and frees the victim's slot the way the attention does. Returns the evicted position. */
static int32_t hand_step(hand_cache *c, const tfm_kv_config *kv, int32_t cur, const float *row) {
    float p[8];
    int32_t i, e, evicted;
    c->pos[c->n] = cur;
    c->score[c->n] = 0;
    c->n++;
    for (i = 0; i < c->n; i++) p[i] = row[c->pos[i]];
    e = tfm__kv_step(kv, c->pos, c->score, p, c->n, cur);
    if (e < 0) return -1;
    evicted = c->pos[e];
    c->n--;
    c->pos[e] = c->pos[c->n];
    c->score[e] = c->score[c->n];
    return evicted;
}

static float hand_score(const hand_cache *c, int32_t pos) {
    int32_t i;
    for (i = 0; i < c->n; i++)
        if (c->pos[i] == pos) return c->score[i];
    return -1;
}

/* Runs 5 steps of p rows (rows[t][pos], dyadic so every sum is exact in float) and checks the
   evicted position and the two kept positions with their scores after every step. */
static void hand_run(const char *name, const tfm_kv_config *kv, const float rows[5][5], const int32_t evict[5], const int32_t kept[5][2], const float score[5][2]) {
    hand_cache c;
    int32_t t, j;
    memset(&c, 0, sizeof c);
    for (t = 0; t < 5; t++) {
        int32_t e = hand_step(&c, kv, t, rows[t]);
        CHECK(e == evict[t], "%s step %d: evicted %d, by hand %d", name, t, e, evict[t]);
        CHECK(c.n == (t < 2 ? t + 1 : 2), "%s step %d: %d kept", name, t, c.n);
        for (j = 0; j < 2 && j <= t; j++)
            CHECK(hand_score(&c, kept[t][j]) == score[t][j], "%s step %d: position %d score %g, by hand %g", name, t, kept[t][j], hand_score(&c, kept[t][j]), score[t][j]);
    }
}

static void test_hand_worked(void) {
    /* Budget 2, alpha 0.5. Rows give p by position; a position absent from the cache gets 0. */
    static const float a2sf_rows[5][5] = {
        {1},                       /* t0: [0]                                                   */
        {0.5f, 0.5f},              /* t1: [0 1]                                                 */
        {0.25f, 0.5f, 0.25f},      /* t2: [0 1 2]                                               */
        {0.125f, 0.125f, 0, 0.75f},/* t3: [0 1 3]  (2 was evicted at t2)                       */
        {0, 0.25f, 0, 0.125f, 0.625f}}; /* t4: [1 3 4]  (0 was evicted at t3)                   */
    /* A2SF, no protection:
       t0: s0 = 1                                   3 tokens never: no eviction
       t1: s0 = 0.5*1 + 0.5 = 1,    s1 = 0.5        2 kept = budget: no eviction
       t2: s0 = 0.5*1 + 0.25 = 0.75, s1 = 0.5*0.5 + 0.5 = 0.75, s2 = 0.25   -> evict 2 (smallest)
       t3: s0 = 0.375 + 0.125 = 0.5, s1 = 0.375 + 0.125 = 0.5,  s3 = 0.75  -> tie 0/1: evict 0 (older)
       t4: s1 = 0.25 + 0.25 = 0.5,   s3 = 0.375 + 0.125 = 0.5,  s4 = 0.625 -> tie 1/3: evict 1 (older) */
    static const int32_t a2sf_evict[5] = {-1, -1, 2, 0, 1};
    static const int32_t a2sf_kept[5][2] = {{0, 0}, {0, 1}, {0, 1}, {1, 3}, {3, 4}};
    static const float a2sf_score[5][2] = {{1, 1}, {1, 0.5f}, {0.75f, 0.75f}, {0.5f, 0.75f}, {0.5f, 0.625f}};
    /* The same with n_recent = 1 (the newest position is protected):
       t2: s0 = 0.75, s1 = 0.75, s2 = 0.25 (protected)            -> tie 0/1: evict 0
       t3: [1 2 3] p = 0.125, 0.125, 0.75: s1 = 0.375 + 0.125 = 0.5, s2 = 0.125 + 0.125 = 0.25 -> evict 2
       t4: [1 3 4] p = 0.25, 0.125, 0.625: s1 = 0.25 + 0.25 = 0.5, s3 = 0.375 + 0.125 = 0.5 -> tie: evict 1 */
    static const float recent_rows[5][5] = {{1}, {0.5f, 0.5f}, {0.25f, 0.5f, 0.25f}, {0, 0.125f, 0.125f, 0.75f}, {0, 0.25f, 0, 0.125f, 0.625f}};
    static const int32_t recent_evict[5] = {-1, -1, 0, 2, 1};
    static const int32_t recent_kept[5][2] = {{0, 0}, {0, 1}, {1, 2}, {1, 3}, {3, 4}};
    static const float recent_score[5][2] = {{1, 1}, {1, 0.5f}, {0.75f, 0.25f}, {0.5f, 0.75f}, {0.5f, 0.625f}};
    /* H2O (alpha 1, n_recent = 2 / 2 = 1) keeps the early heavy hitter that A2SF forgets:
       t1: s0 = 1.5, s1 = 0.5;  t2: s0 = 1.75, s1 = 1, s2 = 0.25 (protected)  -> evict 1
       t3: [0 2 3] p = 0.125, 0.125, 0.75: s0 = 1.875, s2 = 0.375             -> evict 2
       t4: [0 3 4] p = 0.25, 0.125, 0.625: s0 = 2.125, s3 = 0.875             -> evict 3 */
    static const float h2o_rows[5][5] = {{1}, {0.5f, 0.5f}, {0.25f, 0.5f, 0.25f}, {0.125f, 0, 0.125f, 0.75f}, {0.25f, 0, 0, 0.125f, 0.625f}};
    static const int32_t h2o_evict[5] = {-1, -1, 1, 2, 3};
    static const int32_t h2o_kept[5][2] = {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}};
    static const float h2o_score[5][2] = {{1, 1}, {1.5f, 0.5f}, {1.75f, 0.25f}, {1.875f, 0.75f}, {2.125f, 0.625f}};
    /* WINDOW with n_sink 1: keep position 0 and the newest one, whatever the scores. */
    static const int32_t win_evict[5] = {-1, -1, 1, 2, 3};
    tfm_kv_config kv;
    hand_cache c;
    int32_t t;
    memset(&kv, 0, sizeof kv);
    kv.policy = TFM_KV_A2SF; kv.budget = 2; kv.alpha = 0.5f;
    hand_run("a2sf", &kv, a2sf_rows, a2sf_evict, a2sf_kept, a2sf_score);
    kv.n_recent = 1;
    hand_run("a2sf n_recent 1", &kv, recent_rows, recent_evict, recent_kept, recent_score);
    kv.policy = TFM_KV_H2O; kv.alpha = 1; kv.n_recent = 1; /* as tfm__session_resolve sets H2O */
    hand_run("h2o", &kv, h2o_rows, h2o_evict, h2o_kept, h2o_score);
    kv.policy = TFM_KV_A2SF;
    hand_run("a2sf alpha 1 n_recent 1", &kv, h2o_rows, h2o_evict, h2o_kept, h2o_score);
    kv.policy = TFM_KV_WINDOW; kv.n_recent = 0; kv.n_sink = 1;
    memset(&c, 0, sizeof c);
    for (t = 0; t < 5; t++) CHECK(hand_step(&c, &kv, t, h2o_rows[t]) == win_evict[t], "window step %d", t);
    kv.policy = TFM_KV_FULL;
    memset(&c, 0, sizeof c);
    for (t = 0; t < 5; t++) CHECK(hand_step(&c, &kv, t, h2o_rows[t]) == -1, "full step %d evicts", t);
    printf("  hand-worked example (budget 2, alpha 0.5): evictions as computed by hand\n");
}

/* ---------------------------------------------------------------- helpers on real models */

static int load(tfm_model *m, const char *path) {
    tfm_result r;
    if (!test_exists(path)) return 0;
    r = tfm_model_load(m, path);
    CHECK(r == TFM_OK, "%s: %s", path, m->error);
    return r == TFM_OK;
}

static tfm_session_config config(tfm_kv_policy policy, int32_t budget, float alpha, int32_t n_recent, int32_t n_sink, int32_t n_ctx) {
    tfm_session_config c;
    memset(&c, 0, sizeof c);
    c.n_ctx = n_ctx;
    c.n_threads = 1; /* tiny models: threads would only spin on a shared machine */
    c.kv.policy = policy;
    c.kv.budget = budget;
    c.kv.alpha = alpha;
    c.kv.n_recent = n_recent;
    c.kv.n_sink = n_sink;
    return c;
}

/* Teacher-forced logits [n][n_vocab] of ids under cfg, in one call (per_call 0) or per_call
   tokens per call. Returns NULL on failure. Leaves the session in *s (caller frees). */
static float *run_logits(const tfm_model *m, tfm_session *s, const tfm_session_config *cfg, const int32_t *ids, int n, int per_call) {
    const size_t V = (size_t)m->hp.n_vocab;
    float *all = (float *)malloc((size_t)n * V * sizeof(float));
    tfm_result r = tfm_session_init(s, m, cfg);
    int i;
    CHECK(r == TFM_OK, "session: %s", s->error);
    if (r != TFM_OK) { free(all); return NULL; }
    if (per_call <= 0) per_call = n;
    for (i = 0; i < n; i += per_call) {
        int k = n - i < per_call ? n - i : per_call;
        r = tfm_session_eval(s, ids + i, NULL, (size_t)k, all + (size_t)i * V);
        CHECK(r == TFM_OK, "eval: %s", s->error);
        if (r != TFM_OK) { free(all); tfm_session_free(s); return NULL; }
    }
    return all;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        worst = d > worst ? d : worst;
    }
    return worst;
}

static int cmp_i32(const void *a, const void *b) { return *(const int32_t *)a < *(const int32_t *)b ? -1 : *(const int32_t *)a > *(const int32_t *)b; }

/* 1 if every (layer, KV head) of sequence qa in a and qb in b keeps the same positions. */
static int same_kept(const tfm_session *a, int32_t qa, const tfm_session *b, int32_t qb) {
    static int32_t pa[MAXN], pb[MAXN];
    int32_t l, h, na, nb;
    for (l = 0; l < a->model->hp.n_layer; l++)
        for (h = 0; h < a->model->hp.n_head_kv; h++) {
            na = tfm_seq_kept(a, qa, l, h, pa, MAXN);
            nb = tfm_seq_kept(b, qb, l, h, pb, MAXN);
            if (na != nb) return 0;
            qsort(pa, (size_t)na, sizeof *pa, cmp_i32);
            qsort(pb, (size_t)nb, sizeof *pb, cmp_i32);
            if (memcmp(pa, pb, (size_t)na * sizeof *pa) != 0) return 0;
        }
    return 1;
}

/* n ids sampled from the model itself (temperature 1, fixed seed), starting with BOS if any. */
static int sample_ids(const tfm_model *m, int32_t *ids, int n) {
    tfm_session s;
    tfm_sampler sp;
    tfm_sampler_config sc;
    tfm_session_config cfg = config(TFM_KV_FULL, 0, 0, 0, 0, n);
    int i;
    memset(&sc, 0, sizeof sc);
    sc.temperature = 1.0f;
    sc.seed = 12345;
    if (tfm_session_init(&s, m, &cfg) != TFM_OK || tfm_sampler_init(&sp, &sc, m->hp.n_vocab) != TFM_OK) return 0;
    ids[0] = m->vocab.bos_id >= 0 && m->vocab.bos_id < m->hp.n_vocab ? m->vocab.bos_id : 0;
    for (i = 1; i < n; i++) {
        if (tfm_session_eval(&s, ids + i - 1, NULL, 1, NULL) != TFM_OK) break;
        ids[i] = tfm_sample(&sp, tfm_session_logits(&s, 0), ids, (size_t)i);
    }
    tfm_sampler_free(&sp);
    tfm_session_free(&s);
    return i == n;
}

/* ---------------------------------------------------------------- 2. identities */

/* A budget at least the sequence length equals FULL; a smaller one does not (the check can tell). */
static void identity_full(const char *name, const tfm_model *m, const int32_t *ids, int n, const float *full) {
    const size_t nv = (size_t)n * (size_t)m->hp.n_vocab;
    tfm_session s;
    tfm_session_config c = config(TFM_KV_A2SF, n, 0.5f, 0, 0, n);
    float *lg = run_logits(m, &s, &c, ids, n, 0);
    double d;
    if (!lg) return;
    d = max_diff(lg, full, nv);
    CHECK(d <= 1e-6, "%s: A2SF budget %d (= length) differs from FULL by %.3g", name, n, d);
    printf("  %s: A2SF budget = length %d vs FULL: max |logit diff| %.3g\n", name, n, d);
    free(lg);
    tfm_session_free(&s);
    c.kv.budget = n / 4;
    if (!(lg = run_logits(m, &s, &c, ids, n, 0))) return;
    d = max_diff(lg, full, nv);
    CHECK(d > 1e-3, "%s: budget %d should change the logits (diff %.3g)", name, n / 4, d);
    free(lg);
    tfm_session_free(&s);
}

/* A2SF with alpha 1 and n_recent = budget / 2 is H2O: same logits, same kept positions. */
static void identity_h2o(const char *name, const tfm_model *m, const int32_t *ids, int n) {
    const int32_t b = n / 5;
    tfm_session sa, sh;
    tfm_session_config ca = config(TFM_KV_A2SF, b, 1.0f, b / 2, 0, n), ch = config(TFM_KV_H2O, b, 0, 0, 0, n);
    float *la = run_logits(m, &sa, &ca, ids, n, 0), *lh;
    double d;
    if (!la) return;
    if ((lh = run_logits(m, &sh, &ch, ids, n, 0)) != NULL) {
        d = max_diff(la, lh, (size_t)n * (size_t)m->hp.n_vocab);
        CHECK(d <= 1e-6, "%s: A2SF(alpha 1, n_recent %d) vs H2O budget %d: diff %.3g", name, b / 2, b, d);
        CHECK(same_kept(&sa, 0, &sh, 0), "%s: A2SF(alpha 1) and H2O keep different positions", name);
        CHECK(sh.cfg.kv.alpha == 1.0f && sh.cfg.kv.n_recent == b / 2, "%s: H2O resolved to alpha %g n_recent %d", name, sh.cfg.kv.alpha, sh.cfg.kv.n_recent);
        printf("  %s: A2SF(alpha 1, n_recent %d) vs H2O budget %d: max |logit diff| %.3g, kept sets equal\n", name, b / 2, b, d);
        free(lh);
        tfm_session_free(&sh);
    }
    free(la);
    tfm_session_free(&sa);
}

/* Prefill in one call (two threads) equals one token per call (one thread), and two sequences
   interleaved in one call equal each run alone. */
static void identity_batched(const char *name, const tfm_model *m, const int32_t *ids, int n, tfm_type kv_type) {
    const size_t V = (size_t)m->hp.n_vocab;
    tfm_session sb, st, s2;
    tfm_session_config c = config(TFM_KV_A2SF, n / 8, 0.2f, 2, 1, n);
    float *lb, *lt, *l2;
    c.kv.type = kv_type;
    c.n_threads = 2; /* attention heads in parallel where OpenMP is on */
    lb = run_logits(m, &sb, &c, ids, n, 0);
    c.n_threads = 1;
    int32_t *tok2 = (int32_t *)malloc(2 * (size_t)n * sizeof(int32_t)), *seq2 = (int32_t *)malloc(2 * (size_t)n * sizeof(int32_t));
    double d, d2 = 0;
    int i;
    if (!lb) { free(tok2); free(seq2); return; }
    if ((lt = run_logits(m, &st, &c, ids, n, 1)) != NULL) {
        d = max_diff(lb, lt, (size_t)n * V);
        CHECK(d == 0, "%s: batched prefill vs token by token: diff %.3g (bits must not depend on the batch)", name, d);
        CHECK(same_kept(&sb, 0, &st, 0), "%s: batched prefill keeps other positions than token by token", name);
        printf("  %s: A2SF budget %d, %s cache, prefill in one call (2 threads) vs token by token: max |logit diff| %.3g, kept sets equal\n", name, n / 8, tfm_type_name(kv_type), d);
        free(lt);
        tfm_session_free(&st);
    }
    c.n_seq = 2;
    { /* runs of 1, 2, 3, 1, ... tokens of each sequence in turn (an F16 cache: single rows take the
         blocked path, runs the widened copy); sequence 1 reads the ids backwards */
        int a = 0, z = 0, k = 0, len = 1, j;
        while (a < n || z < n) {
            for (j = 0; j < len && a < n; j++, a++) { tok2[k] = ids[a]; seq2[k++] = 0; }
            for (j = 0; j < len && z < n; j++, z++) { tok2[k] = ids[n - 1 - z]; seq2[k++] = 1; }
            len = len % 3 + 1;
        }
    }
    l2 = (float *)malloc(2 * (size_t)n * V * sizeof(float));
    if (tfm_session_init(&s2, m, &c) == TFM_OK) {
        int k = 0;
        CHECK(tfm_session_eval(&s2, tok2, seq2, 2 * (size_t)n, l2) == TFM_OK, "two-sequence eval: %s", s2.error);
        for (i = 0; i < 2 * n; i++) {
            if (seq2[i] != 0) continue;
            d = max_diff(l2 + (size_t)i * V, lb + (size_t)(k++) * V, V);
            d2 = d > d2 ? d : d2;
        }
        CHECK(d2 == 0, "%s: sequence 0 of an interleaved pair differs from its run alone by %.3g", name, d2);
        CHECK(same_kept(&s2, 0, &sb, 0), "%s: sequence 0 of a pair keeps other positions", name);
        tfm_session_free(&s2);
    }
    free(l2); free(tok2); free(seq2); free(lb);
    tfm_session_free(&sb);
}

/* Cache memory per slot, counted from the layout the header documents: key and value
   (head_dim floats each), position (int32) and score (float) per (sequence, layer, KV head),
   plus one float per head of softmax scratch (query heads and group sums). */
static size_t bytes_per_slot(const tfm_hparams *hp, int32_t n_seq) {
    return (size_t)n_seq * (size_t)hp->n_layer * (size_t)hp->n_head_kv * (2 * (size_t)hp->head_dim * 4 + 4 + 4) + ((size_t)hp->n_head + (size_t)hp->n_head_kv) * 4;
}

static size_t heap(const tfm_model *m, tfm_kv_policy policy, int32_t budget, int32_t n_ctx, int32_t n_seq) {
    tfm_session_config c = config(policy, budget, 0.5f, 0, 0, n_ctx);
    size_t bytes = 0;
    c.n_seq = n_seq;
    CHECK(tfm_session_heap_size(m, &c, &bytes) == TFM_OK, "heap size");
    return bytes;
}

/* The session's heap grows by exactly the formula per slot (capacities that are multiples of 4,
   so the 64-byte alignment of each array adds nothing), and capacity is budget + 1. */
static void memory_formula(const char *name, const tfm_model *m, int32_t n_ctx) {
    static const int32_t budgets[3] = {7, 15, 63}; /* capacities 8, 16, 64 */
    int32_t q, i;
    for (q = 1; q <= 2; q++) {
        const size_t per = bytes_per_slot(&m->hp, q), h0 = heap(m, TFM_KV_A2SF, budgets[0], n_ctx, q);
        for (i = 1; i < 3; i++) {
            size_t h = heap(m, TFM_KV_A2SF, budgets[i], n_ctx, q), want = h0 + (size_t)(budgets[i] - budgets[0]) * per;
            CHECK(h == want, "%s n_seq %d: heap for budget %d is %zu, formula %zu", name, q, budgets[i], h, want);
        }
        CHECK(heap(m, TFM_KV_H2O, 15, n_ctx, q) == heap(m, TFM_KV_A2SF, 15, n_ctx, q), "%s: H2O and A2SF sizes differ", name);
        CHECK(heap(m, TFM_KV_WINDOW, 15, n_ctx, q) == heap(m, TFM_KV_A2SF, 15, n_ctx, q), "%s: WINDOW and A2SF sizes differ", name);
        CHECK(heap(m, TFM_KV_A2SF, n_ctx - 1, n_ctx, q) == heap(m, TFM_KV_FULL, 0, n_ctx, q), "%s: budget n_ctx - 1 should size like FULL", name);
        CHECK(heap(m, TFM_KV_A2SF, 100000, n_ctx, q) == heap(m, TFM_KV_FULL, 0, n_ctx, q), "%s: a budget over n_ctx should size like FULL", name);
        if (m->arch->pos != TFM_POS_LEARNED)
            CHECK(heap(m, TFM_KV_A2SF, 15, 4 * n_ctx, q) == heap(m, TFM_KV_A2SF, 15, n_ctx, q), "%s: a pruned cache must not grow with n_ctx", name);
    }
    printf("  %s: %zu bytes per cache slot; session %zu bytes at FULL (n_ctx %d), %zu at budget 63\n", name,
           bytes_per_slot(&m->hp, 1), heap(m, TFM_KV_FULL, 0, n_ctx, 1), n_ctx, heap(m, TFM_KV_A2SF, 63, n_ctx, 1));
}

/* An F16 cache (kv.type): half the key and value bytes, exactly (less one thread's widened copy of
   a KV head in SIMD builds, also by the formula per slot); logits close to the F32 cache's
   with the same argmax almost everywhere, also when a WINDOW evicts (which keeps the same
   positions whatever the scores, so both caches hold the same tokens); a copied sequence
   continues bit for bit like its source; other types refused. */
static void f16_cache(const char *name, const tfm_model *m, const int32_t *ids, int n, const float *full) {
    const size_t V = (size_t)m->hp.n_vocab, nv = (size_t)n * V;
    const size_t half = (size_t)m->hp.n_layer * (size_t)m->hp.n_head_kv * 64 * 2 * (size_t)m->hp.head_dim * 2;
#if defined(TFM__VL)
    const size_t wide = 2 * 64 * (size_t)m->hp.head_dim * 4; /* one thread's widened copy of a head (n_batch > 1) */
#else
    const size_t wide = 0;
#endif
    tfm_session s, s32;
    tfm_session_config c = config(TFM_KV_FULL, 0, 0, 0, 0, n);
    size_t b32 = 0, b16 = 0;
    float *lg, *lw;
    double d, big = 0;
    int i, same = 0;
    int32_t next = ids[1];
    c.kv.type = TFM_TYPE_Q8_0;
    CHECK(tfm_session_heap_size(m, &c, &b16) == TFM_ERR_ARG, "%s: a Q8_0 cache accepted", name);
    CHECK(tfm_session_init(&s, m, &c) == TFM_ERR_ARG && strstr(s.error, "KV cache type"), "%s: a Q8_0 cache: '%s'", name, s.error);
    c = config(TFM_KV_A2SF, 63, 0.5f, 0, 0, n); /* capacity 64: the arrays' alignment adds nothing */
    CHECK(tfm_session_heap_size(m, &c, &b32) == TFM_OK, "heap size");
    c.kv.type = TFM_TYPE_F16;
    CHECK(tfm_session_heap_size(m, &c, &b16) == TFM_OK, "heap size F16");
    CHECK(b32 - b16 == half - wide, "%s: an F16 cache saves %zu bytes at capacity 64, by the layout %zu", name, b32 - b16, half - wide);
    c.kv.budget = 15; /* capacity 16: docs/kv-eval.md's bytes per slot, F16 */
    CHECK(tfm_session_heap_size(m, &c, &b32) == TFM_OK && b16 - b32 == 48 * (bytes_per_slot(&m->hp, 1) - half / 64 + wide / 64),
          "%s: an F16 cache grows by %zu bytes over 48 slots, the formula %zu", name, b16 - b32, 48 * (bytes_per_slot(&m->hp, 1) - half / 64 + wide / 64));

    c = config(TFM_KV_FULL, 0, 0, 0, 0, n);
    c.kv.type = TFM_TYPE_F16;
    if (!(lg = run_logits(m, &s, &c, ids, n, 0))) return;
    tfm_session_free(&s);
    for (i = 0; i < n; i++) {
        const float *a = lg + (size_t)i * V, *b = full + (size_t)i * V;
        size_t k, ka = 0, kb = 0;
        for (k = 0; k < V; k++) {
            if (a[k] > a[ka]) ka = k;
            if (b[k] > b[kb]) kb = k;
            big = fabs((double)b[k]) > big ? fabs((double)b[k]) : big;
        }
        same += ka == kb;
    }
    d = max_diff(lg, full, nv);
    CHECK(d > 0 && d <= 0.02 * big, "%s: F16 cache logits differ from F32 by %.3g (largest logit %.3g)", name, d, big);
    CHECK(same >= n * 95 / 100, "%s: F16 cache: same argmax at %d of %d positions", name, same, n);
    printf("  %s: F16 cache vs F32: max |logit diff| %.3g (largest logit %.3g), same argmax at %d of %d\n", name, d, big, same, n);
    free(lg);

    c = config(TFM_KV_WINDOW, n / 4, 0, 0, 2, n);
    lw = run_logits(m, &s32, &c, ids, n, 0);
    c.kv.type = TFM_TYPE_F16;
    lg = run_logits(m, &s, &c, ids, n, 0);
    if (lw && lg) {
        d = max_diff(lg, lw, nv);
        CHECK(d > 0 && d <= 0.02 * big && same_kept(&s, 0, &s32, 0), "%s: WINDOW %d, F16 vs F32 cache: logits differ by %.3g", name, n / 4, d);
    }
    if (lw) tfm_session_free(&s32);
    if (lg) tfm_session_free(&s);
    free(lw);
    free(lg);

    c = config(TFM_KV_A2SF, n / 4, 0.5f, 0, 0, n);
    c.kv.type = TFM_TYPE_F16;
    c.n_seq = 2;
    if (tfm_session_init(&s, m, &c) == TFM_OK) {
        int32_t seq[2] = {0, 1}, two[2];
        CHECK(tfm_session_eval(&s, ids, NULL, (size_t)n / 2, NULL) == TFM_OK, "eval");
        CHECK(tfm_seq_copy(&s, 1, 0) == TFM_OK, "copy");
        two[0] = two[1] = next;
        CHECK(tfm_session_eval(&s, two, seq, 2, NULL) == TFM_OK, "eval two");
        CHECK(memcmp(tfm_session_logits(&s, 0), tfm_session_logits(&s, 1), V * sizeof(float)) == 0 && same_kept(&s, 0, &s, 1),
              "%s: an F16 sequence copy does not continue like its source", name);
        tfm_session_free(&s);
    }
}

/* A kept slot holds its own position's key and value row, byte for byte, after any number of
   evictions (which move the last slot into the hole). Layer 0's rows depend only on the token and
   its position, not on what attention kept, so they must equal FULL's row at that position. */
static int kept_rows_match(const char *name, const tfm_session *p, const tfm_session *f) {
    const tfm_hparams *hp = &p->model->hp;
    const size_t row = (size_t)hp->head_dim * tfm__kv_elt(&p->cfg);
    int32_t h, i, bad = 0;
    for (h = 0; h < hp->n_head_kv; h++) {
        const size_t ci = tfm__cache_index(p, 0, 0, h), cf = tfm__cache_index(f, 0, 0, h);
        const unsigned char *K = p->k_ + ci * (size_t)p->capacity * row, *V = p->v_ + ci * (size_t)p->capacity * row;
        const unsigned char *KF = f->k_ + cf * (size_t)f->capacity * row, *VF = f->v_ + cf * (size_t)f->capacity * row;
        for (i = 0; i < p->n_used_[ci]; i++) {
            const int32_t pos = p->slot_pos_[ci * (size_t)p->capacity + (size_t)i];
            const int ok = pos >= 0 && pos < f->n_used_[cf] && f->slot_pos_[cf * (size_t)f->capacity + (size_t)pos] == pos &&
                           memcmp(K + (size_t)i * row, KF + (size_t)pos * row, row) == 0 &&
                           memcmp(V + (size_t)i * row, VF + (size_t)pos * row, row) == 0;
            if (!ok && bad++ == 0) CHECK(0, "%s: KV head %d slot %d (position %d) does not hold that position's key and value", name, h, i, pos);
        }
    }
    return bad == 0;
}

static void kept_rows(const char *name, const tfm_model *m, const int32_t *ids, int n) {
    static const tfm_kv_policy pol[3] = {TFM_KV_A2SF, TFM_KV_H2O, TFM_KV_WINDOW};
    static const tfm_type types[2] = {TFM_TYPE_F32, TFM_TYPE_F16};
    int t, k, checked = 0;
    for (t = 0; t < 2; t++) {
        tfm_session f, p;
        tfm_session_config cf = config(TFM_KV_FULL, 0, 0, 0, 0, n);
        cf.kv.type = types[t];
        if (tfm_session_init(&f, m, &cf) != TFM_OK || tfm_session_eval(&f, ids, NULL, (size_t)n, NULL) != TFM_OK) {
            CHECK(0, "%s: FULL session: %s", name, f.error);
            continue;
        }
        for (k = 0; k < 3; k++) {
            tfm_session_config c = config(pol[k], n / 5, pol[k] == TFM_KV_A2SF ? 0.5f : 0, 0, pol[k] == TFM_KV_WINDOW ? 2 : 0, n);
            c.kv.type = types[t];
            if (tfm_session_init(&p, m, &c) != TFM_OK) continue;
            /* one call and then token by token: prefill chunks and single steps both evict */
            if (tfm_session_eval(&p, ids, NULL, (size_t)n / 2, NULL) == TFM_OK) {
                int i;
                for (i = n / 2; i < n && tfm_session_eval(&p, ids + i, NULL, 1, NULL) == TFM_OK; i++) {}
                checked += kept_rows_match(name, &p, &f) && i == n;
            }
            tfm_session_free(&p);
        }
        tfm_session_free(&f);
    }
    CHECK(checked == 6, "%s: kept rows by value: %d of 6 runs agree", name, checked);
    printf("  %s: after evictions every kept slot holds its position's key and value (A2SF, H2O, WINDOW; F32, F16): %d of 6\n", name, checked);
}

static void identities(const char *name, const tfm_model *m, const int32_t *ids, int n) {
    tfm_session s;
    tfm_session_config c = config(TFM_KV_FULL, 0, 0, 0, 0, n);
    float *full;
    c.n_threads = 2; /* the reference in parallel (OpenMP), the policies in one thread */
    if (!(full = run_logits(m, &s, &c, ids, n, 0))) return;
    tfm_session_free(&s);
    identity_full(name, m, ids, n, full);
    identity_h2o(name, m, ids, n);
    identity_batched(name, m, ids, n, TFM_TYPE_F32);
    identity_batched(name, m, ids, n, TFM_TYPE_F16); /* SIMD: widened once per chunk (tfm__kv_wide) */
    memory_formula(name, m, n);
    f16_cache(name, m, ids, n, full);
    kept_rows(name, m, ids, n);
    free(full);
}

/* ---------------------------------------------------------------- config checks, long runs */

static void config_checks(const tfm_model *m) {
    static const struct { tfm_kv_policy p; int32_t budget; float alpha; int32_t recent, sink; const char *why; } bad[] = {
        {TFM_KV_A2SF, 0, 0.5f, 0, 0, "budget 0"},
        {TFM_KV_A2SF, -3, 0.5f, 0, 0, "negative budget"},
        {TFM_KV_A2SF, 8, 1.5f, 0, 0, "alpha > 1"},
        {TFM_KV_A2SF, 8, -0.1f, 0, 0, "alpha < 0"},
        {TFM_KV_A2SF, 8, 0.5f, 5, 4, "n_recent + n_sink > budget"},
        {TFM_KV_A2SF, 8, 0.5f, -1, 0, "negative n_recent"},
        {TFM_KV_H2O, 8, 0, 0, 5, "H2O: budget/2 recent + 5 sinks > budget"},
        {TFM_KV_WINDOW, 8, 0, 0, 8, "window: n_sink = budget"},
        {(tfm_kv_policy)7, 8, 0, 0, 0, "unknown policy"},
    };
    tfm_session_config c;
    tfm_session s;
    size_t i, bytes;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = config(bad[i].p, bad[i].budget, bad[i].alpha, bad[i].recent, bad[i].sink, 0);
        CHECK(tfm_session_heap_size(m, &c, &bytes) == TFM_ERR_ARG, "accepted: %s", bad[i].why);
        CHECK(tfm_session_init(&s, m, &c) == TFM_ERR_ARG && s.error[0], "init accepted: %s", bad[i].why);
    }
    c = config(TFM_KV_A2SF, 8, NAN, 0, 0, 0);
    CHECK(tfm_session_heap_size(m, &c, &bytes) == TFM_ERR_ARG, "alpha NaN accepted");
    c = config(TFM_KV_A2SF, 8, 0.5f, 4, 4, 0); /* exactly the budget: allowed */
    CHECK(tfm_session_heap_size(m, &c, &bytes) == TFM_OK, "n_recent + n_sink = budget refused");
    c = config(TFM_KV_FULL, 0, 0, 0, 0, INT32_MAX / 2);
    c.n_seq = 4096;
    CHECK(tfm_session_heap_size(m, &c, &bytes) != TFM_OK || bytes > ((size_t)1 << 40), "a huge FULL cache reported %zu bytes", bytes);
}

/* RoPE model: past the training context with a bounded cache; the last positions are kept. */
static void long_rope(const tfm_model *m, const int32_t *ids, int n_ids) {
    enum { N = 1100, BUDGET = 64 };
    static int32_t toks[N], kept[BUDGET + 1];
    tfm_session s;
    tfm_session_config c = config(TFM_KV_A2SF, BUDGET, 0.5f, 8, 4, N);
    int32_t l, h, i, worst = 0, newest = -1;
    for (i = 0; i < N; i++) toks[i] = ids[i % n_ids];
    if (tfm_session_init(&s, m, &c) != TFM_OK) { CHECK(0, "long session: %s", s.error); return; }
    CHECK(tfm_session_eval(&s, toks, NULL, N, NULL) == TFM_OK, "eval of %d tokens past the training context: %s", N, s.error);
    for (l = 0; l < m->hp.n_layer; l++)
        for (h = 0; h < m->hp.n_head_kv; h++) {
            int32_t n = tfm_seq_kept(&s, 0, l, h, kept, BUDGET + 1);
            worst = n > worst ? n : worst;
            for (i = 0; i < n; i++) newest = kept[i] > newest ? kept[i] : newest;
        }
    CHECK(worst == BUDGET && newest == N - 1, "long run: %d kept (budget %d), newest position %d", worst, BUDGET, newest);
    printf("  RoPE model: %d positions (training context %d) with budget %d, newest kept position %d\n", N, m->hp.n_ctx_train, BUDGET, newest);
    tfm_session_free(&s);
}

/* Learned positions (GPT-2): the same rule with counting positions; the table's end is a hard end. */
static void learned_positions(void) {
    tfm_model m;
    tfm_session s;
    tfm_session_config c;
    int32_t ids[256], maxpos, t = 0;
    if (!load(&m, GPT2)) return;
    maxpos = tfm_model_max_positions(&m);
    c = config(TFM_KV_A2SF, 16, 0.5f, 0, 0, maxpos + 1);
    CHECK(tfm_session_init(&s, &m, &c) == TFM_ERR_CONTEXT, "n_ctx past the learned positions accepted");
    if (maxpos <= 256 && sample_ids(&m, ids, maxpos)) {
        identities("gpt2-A (learned positions)", &m, ids, maxpos);
        c = config(TFM_KV_A2SF, 16, 0.5f, 0, 0, 0);
        if (tfm_session_init(&s, &m, &c) == TFM_OK) {
            CHECK(tfm_session_eval(&s, ids, NULL, (size_t)maxpos, NULL) == TFM_OK, "gpt2 %d tokens: %s", maxpos, s.error);
            CHECK(tfm_session_eval(&s, &t, NULL, 1, NULL) == TFM_ERR_CONTEXT, "gpt2: position %d accepted", maxpos);
            CHECK(s.n_pos[0] == maxpos, "a refused token changed the session");
            tfm_session_free(&s);
        }
    }
    tfm_model_free(&m);
}

/* ---------------------------------------------------------------- 3. dump for the numpy replay */

static void observe(void *user, int32_t seq, int32_t layer, int32_t kvh, int32_t pos, const int32_t *slot_pos, const float *p, int32_t n, int32_t evicted) {
    FILE *f = (FILE *)user;
    int32_t i;
    fprintf(f, "step %d %d %d %d %d %d", seq, layer, kvh, pos, evicted, n);
    for (i = 0; i < n; i++) fprintf(f, " %d", slot_pos[i]);
    for (i = 0; i < n; i++) fprintf(f, " %a", (double)p[i]);
    fputc('\n', f);
}

static const char *policy_name(tfm_kv_policy p) {
    return p == TFM_KV_A2SF ? "a2sf" : p == TFM_KV_H2O ? "h2o" : p == TFM_KV_WINDOW ? "window" : "full";
}

/* One run of ids under c with every attention step written to f, then the final kept sets. */
static void dump_run(FILE *f, const char *name, const tfm_model *m, tfm_session_config c, const int32_t *ids, int n) {
    static int32_t kept[MAXN];
    tfm_session s;
    int32_t l, h, k, i;
    c.observer = observe;
    c.observer_user = f;
    if (tfm_session_init(&s, m, &c) != TFM_OK) { CHECK(0, "dump session: %s", s.error); return; }
    /* as given by the caller: the replay derives H2O's alpha and n_recent itself */
    fprintf(f, "config %s %s budget %d alpha %a n_recent %d n_sink %d n_head %d n_head_kv %d\n", name, policy_name(c.kv.policy),
            c.kv.budget, (double)c.kv.alpha, c.kv.n_recent, c.kv.n_sink, m->hp.n_head, m->hp.n_head_kv);
    CHECK(tfm_session_eval(&s, ids, NULL, (size_t)n, NULL) == TFM_OK, "dump eval: %s", s.error);
    for (l = 0; l < m->hp.n_layer; l++)
        for (h = 0; h < m->hp.n_head_kv; h++) {
            k = tfm_seq_kept(&s, 0, l, h, kept, MAXN);
            fprintf(f, "final 0 %d %d %d", l, h, k);
            for (i = 0; i < k; i++) fprintf(f, " %d", kept[i]);
            fputc('\n', f);
        }
    tfm_session_free(&s);
}

static void dump_model(FILE *f, const char *name, const tfm_model *m, const int32_t *ids, int n) {
    char tag[64];
    tfm_session_config c[5];
    int i;
    c[0] = config(TFM_KV_A2SF, 32, 0.5f, 0, 0, n);
    c[1] = config(TFM_KV_A2SF, 20, 0.0f, 3, 2, n);
    c[2] = config(TFM_KV_A2SF, 50, 0.9f, 0, 1, n);
    c[2].n_batch = 7; /* chunks that straddle evictions */
    c[3] = config(TFM_KV_H2O, 24, 0, 0, 0, n);
    c[4] = config(TFM_KV_WINDOW, 16, 0, 0, 4, n);
    for (i = 0; i < 5; i++) {
        snprintf(tag, sizeof tag, "%s#%d", name, i);
        dump_run(f, tag, m, c[i], ids, n);
    }
}

static void reference_replay(void) {
    int rc;
    if (!test_exists("/usr/bin/python3")) return;
    fflush(stdout);
    rc = system("/usr/bin/python3 tests/kv_reference.py " DUMP);
    CHECK(rc == 0, "tests/kv_reference.py disagrees with the dump (exit %d)", rc);
}

/* ---------------------------------------------------------------- examples/kv_flags.h */

static int flags_run(kv_flags *f, int argc, const char **args, char *err, size_t cap) {
    char *argv[16];
    int i, r = 0;
    for (i = 0; i < argc; i++) argv[i] = (char *)args[i];
    kv_flags_init(f);
    for (i = 0; i < argc && r >= 0; i++) r = kv_flags_parse(f, argc, argv, &i, err, cap);
    return r;
}

static void test_flags(void) {
    static const char *ok[] = {"--kv", "a2sf", "--kv-budget", "20%", "--kv-alpha", "0.25", "--kv-recent", "3", "--kv-sink", "1"};
    static const char *count[] = {"--kv", "h2o", "--kv-budget", "64"};
    static const char *bad[][2] = {{"--kv", "lru"}, {"--kv-budget", "0"}, {"--kv-budget", "1.5"}, {"--kv-alpha", "2"},
                                   {"--kv-recent", "-1"}, {"--kv-recent", "1.5"}, {"--kv-sink", "x"}, {"--kv-budget", "-5%"}, {"--kvx", "1"},
                                   {"--kv-type", "q8_0"}};
    kv_flags f;
    tfm_kv_config kv;
    char err[256];
    size_t i;
    CHECK(flags_run(&f, 10, ok, err, sizeof err) >= 0, "flags: %s", err);
    CHECK(kv_flags_finish(&f, 500, &kv, err, sizeof err) == 0 && kv.policy == TFM_KV_A2SF && kv.budget == 100 && kv.alpha == 0.25f &&
          kv.n_recent == 3 && kv.n_sink == 1, "flags: budget 20%% of 500 gave %d", kv.budget);
    CHECK(flags_run(&f, 4, count, err, sizeof err) >= 0 && kv_flags_finish(&f, 500, &kv, err, sizeof err) == 0 && kv.budget == 64, "flags: count budget");
    {
        static const char *f16[] = {"--kv-type", "f16"};
        CHECK(flags_run(&f, 2, f16, err, sizeof err) >= 0 && kv_flags_finish(&f, 500, &kv, err, sizeof err) == 0 && kv.policy == TFM_KV_FULL &&
              kv.type == TFM_TYPE_F16, "flags: --kv-type f16 (with the full cache)");
    }
    {
        static const char *frac[] = {"--kv", "a2sf", "--kv-budget", "0.1", "--kv-recent", "0.5"};
        CHECK(flags_run(&f, 6, frac, err, sizeof err) >= 0 && kv_flags_finish(&f, 512, &kv, err, sizeof err) == 0 && kv.budget == 51 && kv.n_recent == 26,
              "flags: budget 0.1 of 512 and recent 0.5 of it gave %d, %d", kv.budget, kv.n_recent);
    }
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(flags_run(&f, 2, bad[i], err, sizeof err) < 0, "flags accepted %s %s", bad[i][0], bad[i][1]);
    CHECK(flags_run(&f, 2, count, err, sizeof err) >= 0 && kv_flags_finish(&f, 500, &kv, err, sizeof err) != 0, "flags: h2o without budget accepted");
    CHECK(flags_run(&f, 2, count + 2, err, sizeof err) >= 0 && kv_flags_finish(&f, 500, &kv, err, sizeof err) != 0, "flags: budget without policy accepted");
}

/* ---------------------------------------------------------------- main */

int main(void) {
    static int32_t ids[MAXN];
    tfm_model m;
    FILE *f = fopen(DUMP, "w");
    int n = 0;
    test_hand_worked();
    test_flags();
    if (load(&m, STORIES)) {
        char *text = test_read_file(STORIES_IDS, NULL);
        if (text) n = test_parse_ids(text, "sequence", ids, MAXN);
        free(text);
        if (n >= 200) {
            n = 200;
            identities("stories260K", &m, ids, n);
            if (f) dump_model(f, "stories260K", &m, ids, n);
            long_rope(&m, ids, n);
        }
        config_checks(&m);
        tfm_model_free(&m);
    }
    if (load(&m, DEFAULT_MODEL)) {
        n = m.hp.n_ctx_train < 200 ? m.hp.n_ctx_train : 200;
        if (sample_ids(&m, ids, n)) {
            identities(DEFAULT_MODEL, &m, ids, n);
            if (f) dump_model(f, DEFAULT_MODEL, &m, ids, n);
        }
        tfm_model_free(&m);
    }
    learned_positions();
    if (f) {
        fclose(f);
        reference_replay();
    } else {
        printf("SKIP: %s cannot be written (run from the repository root after make)\n", DUMP);
    }
    return test_summary("test_kv");
}
