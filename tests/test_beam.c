/* Beam search and conditional beam search.
   - n_beams = 1 is greedy decoding (and reproduces llama2.c's greedy ids on stories260K);
   - on a 6-token random model every output of up to 4 tokens is enumerated: beam search with
     enough beams returns the true n best, conditional search the true n best that satisfy the
     condition (built-in or callback);
   - a naive Hugging Face-style reference (a full forward per beam per step, no cache reuse, a full
     sort of all candidates) gives the same n-best lists on many random configurations;
   - under A2SF / H2O / window caches every beam carries its own scores: after each reordering its
     kept sets, scores and logits equal those of its tokens run alone; budget >= length is FULL;
   - no returned hypothesis ever breaks an active hard condition (random property test);
   - no allocation during a search; bad arguments are refused. */
#include <stdlib.h>
static long test_allocs;
static void *counting_malloc(size_t n) { test_allocs++; return malloc(n); }
#define TFM_MALLOC(n) counting_malloc(n)
#define TFM_FREE(p) free(p)
#define TFM_IMPLEMENTATION
#include "../tfm.h"
#include "test.h"
#include "../tools/gguf_write.h"
#include "../examples/beam_flags.h"

#define MAXT 16 /* longest output in these tests */

/* ------------------------------------------------------------------ a random Llama in memory */

typedef struct { int V, dim, layers, heads, kv_heads, ffn, ctx; uint64_t seed; float out_scale; } tiny_cfg;

typedef struct {
    unsigned char *bytes;
    size_t size;
    tfm_gguf g;
    tfm_model m;
} tiny_model;

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_uniform(uint64_t *s) { return (float)(rng_next(s) >> 40) / 16777216.0f; }
static float rng_normal(uint64_t *s) { /* sum of 4 uniforms, unit variance */
    return (rng_uniform(s) + rng_uniform(s) + rng_uniform(s) + rng_uniform(s) - 2.0f) * 1.7320508f;
}

static float *rand_tensor(uint64_t *s, size_t n, float std) {
    float *w = (float *)malloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; i++) w[i] = std == 0 ? 1.0f : std * rng_normal(s);
    return w;
}

static int tiny_load(tiny_model *tm, const tiny_cfg *c) {
    gw_writer w;
    uint64_t s = c->seed;
    const int hd = c->dim / c->heads;
    float *keep[256];
    int nk = 0, l, i;
    char name[64];
    const char *toks[64];
    char tokbuf[64][8];
    float scores[64];
    int32_t types[64];
    int64_t ne[2];
    memset(tm, 0, sizeof *tm);
    gw_init(&w);
    gw_str(&w, "general.architecture", "llama");
    gw_u32(&w, "llama.embedding_length", (uint32_t)c->dim);
    gw_u32(&w, "llama.block_count", (uint32_t)c->layers);
    gw_u32(&w, "llama.attention.head_count", (uint32_t)c->heads);
    gw_u32(&w, "llama.attention.head_count_kv", (uint32_t)c->kv_heads);
    gw_u32(&w, "llama.feed_forward_length", (uint32_t)c->ffn);
    gw_u32(&w, "llama.context_length", (uint32_t)c->ctx);
    gw_u32(&w, "llama.rope.dimension_count", (uint32_t)hd);
    gw_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    for (i = 0; i < c->V; i++) {
        if (i == 0) strcpy(tokbuf[i], "<unk>");
        else if (i == 1) strcpy(tokbuf[i], "<s>");
        else if (i == 2) strcpy(tokbuf[i], "</s>");
        else { tokbuf[i][0] = (char)('a' + i - 3); tokbuf[i][1] = 0; }
        toks[i] = tokbuf[i];
        scores[i] = (float)-i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : 1;
    }
    gw_str(&w, "tokenizer.ggml.model", "llama");
    gw_arr_str(&w, "tokenizer.ggml.tokens", toks, NULL, (size_t)c->V);
    gw_arr_f32(&w, "tokenizer.ggml.scores", scores, (size_t)c->V);
    gw_arr_i32(&w, "tokenizer.ggml.token_type", types, (size_t)c->V);
    gw_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
    gw_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    gw_u32(&w, "tokenizer.ggml.eos_token_id", 2);
#define MAT(nm, in, out, std) do { ne[0] = in; ne[1] = out; keep[nk] = rand_tensor(&s, (size_t)(in) * (size_t)(out), std); \
        gw_tensor(&w, nm, TFM_TYPE_F32, 2, ne, keep[nk++]); } while (0)
#define VEC(nm, n) do { ne[0] = n; keep[nk] = rand_tensor(&s, (size_t)(n), 0); gw_tensor(&w, nm, TFM_TYPE_F32, 1, ne, keep[nk++]); } while (0)
    MAT("token_embd.weight", c->dim, c->V, 1.0f);
    VEC("output_norm.weight", c->dim);
    MAT("output.weight", c->dim, c->V, c->out_scale / sqrtf((float)c->dim));
    for (l = 0; l < c->layers; l++) {
        float sd = 1.0f / sqrtf((float)c->dim);
        sprintf(name, "blk.%d.attn_norm.weight", l); VEC(name, c->dim);
        sprintf(name, "blk.%d.attn_q.weight", l); MAT(name, c->dim, c->heads * hd, 2.0f * sd);
        sprintf(name, "blk.%d.attn_k.weight", l); MAT(name, c->dim, c->kv_heads * hd, 2.0f * sd);
        sprintf(name, "blk.%d.attn_v.weight", l); MAT(name, c->dim, c->kv_heads * hd, sd);
        sprintf(name, "blk.%d.attn_output.weight", l); MAT(name, c->heads * hd, c->dim, sd);
        sprintf(name, "blk.%d.ffn_norm.weight", l); VEC(name, c->dim);
        sprintf(name, "blk.%d.ffn_gate.weight", l); MAT(name, c->dim, c->ffn, sd);
        sprintf(name, "blk.%d.ffn_up.weight", l); MAT(name, c->dim, c->ffn, sd);
        sprintf(name, "blk.%d.ffn_down.weight", l); MAT(name, c->ffn, c->dim, 1.0f / sqrtf((float)c->ffn));
    }
#undef MAT
#undef VEC
    tm->bytes = gw_write_memory(&w, &tm->size);
    gw_free(&w);
    for (i = 0; i < nk; i++) free(keep[i]);
    if (tfm_gguf_init(&tm->g, tm->bytes, tm->size) != TFM_OK) { printf("gguf: %s\n", tm->g.error); return 0; }
    if (tfm_model_init(&tm->m, &tm->g) != TFM_OK) { printf("model: %s\n", tm->m.error); return 0; }
    return 1;
}

static void tiny_free(tiny_model *tm) {
    tfm_model_free(&tm->m);
    tfm_gguf_free(&tm->g);
    free(tm->bytes);
}

/* ------------------------------------------------------------------ independent references */

/* One sequence's scoring session (FULL cache), reset for every sequence. */
static tfm_session ref_s;
static const tfm_model *ref_m;
static float *ref_logits;

static void ref_open(const tfm_model *m, int n_ctx) {
    tfm_session_config sc;
    memset(&sc, 0, sizeof sc);
    sc.n_ctx = n_ctx;
    ref_m = m;
    if (tfm_session_init(&ref_s, m, &sc) != TFM_OK) printf("ref session: %s\n", ref_s.error);
    ref_logits = (float *)malloc((size_t)n_ctx * (size_t)m->hp.n_vocab * sizeof(float));
}
static void ref_close(void) { tfm_session_free(&ref_s); free(ref_logits); }

/* Logits after every token of prompt + toks (rows [np + n][V]), from an empty cache. */
static const float *ref_forward(const int32_t *prompt, int np, const int32_t *toks, int n) {
    int32_t all[256];
    memcpy(all, prompt, (size_t)np * sizeof(int32_t));
    memcpy(all + np, toks, (size_t)n * sizeof(int32_t));
    tfm_seq_reset(&ref_s, 0);
    if (tfm_session_eval(&ref_s, all, NULL, (size_t)(np + n), ref_logits) != TFM_OK) printf("ref eval: %s\n", ref_s.error);
    return ref_logits;
}

static double log_softmax_at(const float *logits, int V, int t) {
    double mx = logits[0], sum = 0;
    int i;
    for (i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (i = 0; i < V; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[t] - mx - log(sum);
}

/* log p(toks [, EOS] | prompt), in double from a fresh forward. */
static double ref_logprob(const int32_t *prompt, int np, const int32_t *toks, int n, int eos_id) {
    const int V = ref_m->hp.n_vocab;
    const float *L = ref_forward(prompt, np, toks, n);
    double lp = 0;
    int j;
    for (j = 0; j < n; j++) lp += log_softmax_at(L + (size_t)(np - 1 + j) * V, V, toks[j]);
    if (eos_id >= 0) lp += log_softmax_at(L + (size_t)(np - 1 + n) * V, V, eos_id);
    return lp;
}

/* The conditions checked on a whole output, written directly from their definitions. */
typedef struct {
    int not_empty, rep_k, copy_k, min_len, max_len; /* built-in conditions */
    int hf_ngram, min_new;                          /* Hugging Face rules (prompt included; EOS is a token) */
} rules;

static int same(const int32_t *a, const int32_t *b, int k) { return memcmp(a, b, (size_t)k * sizeof(int32_t)) == 0; }

static int has_repeat(const int32_t *x, int n, int k) {
    int i, j;
    for (i = 0; i + k <= n; i++)
        for (j = i + 1; j + k <= n; j++)
            if (same(x + i, x + j, k)) return 1;
    return 0;
}

static int satisfies(const rules *r, const int32_t *prompt, int np, const int32_t *toks, int n, int eos, int eos_id) {
    int i, j;
    if (r->not_empty && n == 0) return 0;
    if (n < r->min_len || (r->max_len && n > r->max_len)) return 0;
    if (r->rep_k && has_repeat(toks, n, r->rep_k)) return 0;
    if (r->copy_k)
        for (i = 0; i + r->copy_k <= n; i++)
            for (j = 0; j + r->copy_k <= np; j++)
                if (same(toks + i, prompt + j, r->copy_k)) return 0;
    if (eos && n < r->min_new) return 0;
    if (r->hf_ngram) { /* an n-gram holding an output token (or EOS) must not occur earlier */
        int32_t all[256];
        int m = np + n, k = r->hf_ngram;
        memcpy(all, prompt, (size_t)np * sizeof(int32_t));
        memcpy(all + np, toks, (size_t)n * sizeof(int32_t));
        if (eos) all[m++] = eos_id;
        for (j = 0; j + k <= m; j++)
            for (i = 0; j + k > np && i < j; i++)
                if (same(all + i, all + j, k)) return 0;
    }
    return 1;
}

static void rules_to_config(const rules *r, tfm_beam_config *c) {
    c->cond.not_empty = r->not_empty;
    c->cond.no_repeat_ngram = r->rep_k;
    c->cond.no_prompt_copy = r->copy_k;
    c->cond.min_len = r->min_len;
    c->cond.max_len = r->max_len;
    c->no_repeat_ngram_size = r->hf_ngram;
    c->min_new_tokens = r->min_new;
}

/* ------------------------------------------------------------------ 1. n_beams = 1 is greedy */

static int greedy(const tfm_model *m, const int32_t *prompt, int np, int max_new, int eos_id, int32_t *out) {
    int n = 0;
    int32_t t;
    tfm_seq_reset(&ref_s, 0);
    tfm_session_eval(&ref_s, prompt, NULL, (size_t)np, NULL);
    while (n < max_new) {
        t = tfm_argmax(tfm_session_logits(&ref_s, 0), m->hp.n_vocab);
        if (t == eos_id) break;
        out[n++] = t;
        if (n < max_new) tfm_session_eval(&ref_s, &t, NULL, 1, NULL);
    }
    return n;
}

static void check_greedy(const tfm_model *m, const int32_t *prompt, int np, int max_new, int eos_cfg, float lp, tfm_early_stopping early, const char *what) {
    tfm_beam b;
    tfm_beam_config c;
    int32_t g[256];
    int n, eos_id;
    memset(&c, 0, sizeof c);
    c.n_beams = 1;
    c.max_new_tokens = max_new;
    c.eos_id = eos_cfg;
    c.length_penalty = lp;
    c.early_stopping = early;
    c.session.n_ctx = np + max_new;
    CHECK(tfm_beam_init(&b, m, &c) == TFM_OK, "%s: init: %s", what, b.error);
    eos_id = b.cfg.eos_id;
    CHECK(tfm_beam_search(&b, prompt, (size_t)np) == TFM_OK, "%s: search: %s", what, b.error);
    n = greedy(m, prompt, np, max_new, eos_id, g);
    CHECK(b.n_results == 1 && b.hyps[0].n_tokens == n && same(b.hyps[0].tokens, g, n) && b.hyps[0].eos == (n < max_new),
          "%s: n_beams = 1 gives %d tokens, greedy %d", what, b.n_results ? b.hyps[0].n_tokens : -1, n);
    tfm_beam_free(&b);
}

static void test_greedy(tiny_model *small, tiny_model *mid) {
    uint64_t s = 7;
    int k, i;
    for (k = 0; k < 40; k++) {
        tiny_model *tm = k % 2 ? mid : small;
        int32_t prompt[8];
        int np = 1 + (int)(rng_next(&s) % 6);
        for (i = 0; i < np; i++) prompt[i] = (int32_t)(rng_next(&s) % (uint64_t)tm->m.hp.n_vocab);
        ref_open(&tm->m, 64);
        check_greedy(&tm->m, prompt, np, 1 + (int)(rng_next(&s) % 12), k % 3 == 0 ? -1 : 0, k % 4 < 2 ? 0.0f : 1.0f,
                     k % 5 == 0 ? TFM_EARLY_TRUE : TFM_EARLY_HEURISTIC, "random model");
        ref_close();
    }
    printf("  n_beams = 1 equals greedy decoding on 40 random prompts (length_penalty 0 and 1, early stopping heuristic and true)\n");
}

/* The same against another implementation: llama2.c's greedy ids on stories260K. */
static void test_greedy_llama2c(void) {
    const char *model = "../shared/models/stories260K.gguf", *ref = "../shared/ref/stories260K_once_upon_t0_n256.tokens.txt";
    int prompt[64], seq[300], np, n, i;
    int32_t p32[64];
    char *text;
    tfm_model m;
    tfm_beam b;
    tfm_beam_config c;
    const int max_new = 120;
    if (!test_exists(model) || !(text = test_read_file(ref, NULL))) return;
    np = test_parse_ids(text, "prompt_tokens", prompt, 64);
    n = test_parse_ids(text, "sequence", seq, 300);
    free(text);
    if (np <= 0 || n < np + max_new) { CHECK(0, "cannot parse %s", ref); return; }
    if (tfm_model_load(&m, model) != TFM_OK) { CHECK(0, "load %s: %s", model, m.error); return; }
    for (i = 0; i < np; i++) p32[i] = prompt[i];
    memset(&c, 0, sizeof c);
    c.n_beams = 1;
    c.max_new_tokens = max_new;
    c.eos_id = -1; /* llama2.c's run stops on BOS only; the reference has none in this range */
    c.session.n_ctx = 256;
    CHECK(tfm_beam_init(&b, &m, &c) == TFM_OK, "init: %s", b.error);
    CHECK(tfm_beam_search(&b, p32, (size_t)np) == TFM_OK, "search: %s", b.error);
    for (i = 0; i < max_new && b.n_results == 1 && i < b.hyps[0].n_tokens; i++)
        if (b.hyps[0].tokens[i] != seq[np + i]) break;
    CHECK(b.n_results == 1 && i == max_new, "stories260K: beam (n_beams 1) differs from llama2.c greedy at token %d", i);
    if (i == max_new) printf("  stories260K: n_beams = 1 reproduces llama2.c's %d greedy ids\n", max_new);
    tfm_beam_free(&b);
    tfm_model_free(&m);
}

/* ------------------------------------------------------------------ 2. exhaustive reference */

typedef struct { int32_t t[MAXT]; int n, eos; double logprob, logq, score; } output;

static int n_outputs;
static output outs[4096];

/* Every output of at most T tokens (EOS counted): n non-EOS tokens then EOS (n < T), or T tokens. */
static void enumerate(const int32_t *prompt, int np, int V, int eos, int T, int32_t *cur, int n) {
    int t;
    if (n < T) {
        output *o = &outs[n_outputs++];
        memcpy(o->t, cur, (size_t)n * sizeof(int32_t));
        o->n = n; o->eos = 1;
        o->logprob = ref_logprob(prompt, np, cur, n, eos);
    } else {
        output *o = &outs[n_outputs++];
        memcpy(o->t, cur, (size_t)n * sizeof(int32_t));
        o->n = n; o->eos = 0;
        o->logprob = ref_logprob(prompt, np, cur, n, -1);
        return;
    }
    for (t = 0; t < V; t++) {
        if (t == eos) continue;
        cur[n] = t;
        enumerate(prompt, np, V, eos, T, cur, n + 1);
    }
}

/* A condition callback: outputs must contain token 5 (hard, decided at the end) and every token 3
   costs 0.7 (soft). It sees the whole candidate each time: its value is not accumulated. */
static int cb_calls, cb_hidden_checked, cb_hidden_bad;
static const int32_t *cb_prompt;
static int cb_np;
static double cb_value(const int32_t *t, int n, int finished) {
    int i, fives = 0, threes = 0;
    for (i = 0; i < n; i++) { fives += t[i] == 5; threes += t[i] == 3; }
    if (finished && !fives) return -INFINITY;
    return -0.7 * threes;
}
static float test_condition(void *user, const tfm_beam_candidate *c) {
    int n = (int)c->n_tokens, eos = c->tokens[n - 1] == *(const int32_t *)user;
    cb_calls++;
    if (cb_hidden_checked < 60) { /* the hidden state is the one after the beam's last token */
        const int V = ref_m->hp.n_vocab;
        const float *L;
        int i;
        double d = 0;
        cb_hidden_checked++;
        L = ref_forward(cb_prompt, cb_np, c->tokens, n - 1);
        for (i = 0; i < c->dim; i++) d = fmax(d, fabs((double)c->hidden[i] - ref_s.hidden[i]));
        (void)L; (void)V;
        if (d > 1e-5) cb_hidden_bad++;
        if (fabs(c->logprob - ref_logprob(cb_prompt, cb_np, c->tokens, eos ? n - 1 : n, eos ? 2 : -1)) > 1e-3) cb_hidden_bad++;
    }
    return (float)cb_value(c->tokens, eos ? n - 1 : n, c->finished);
}

static int cmp_output(const void *a, const void *b) {
    double x = ((const output *)a)->score, y = ((const output *)b)->score;
    return x < y ? 1 : x > y ? -1 : 0;
}

static const output *find_output(const tfm_beam_hyp *h) {
    int i;
    for (i = 0; i < n_outputs; i++)
        if (outs[i].n == h->n_tokens && outs[i].eos == h->eos && same(outs[i].t, h->tokens, h->n_tokens)) return &outs[i];
    return NULL;
}

/* Beam search with enough beams to keep every prefix must return the true n best. */
static void exhaustive_case(const tfm_model *m, const int32_t *prompt, int np, int T, const rules *r, float lp,
                            int use_cb, const char *what) {
    tfm_beam b;
    tfm_beam_config c;
    int i, n_ok = 0, worst_rank = -1;
    const int n_return = 10;
    int32_t eos = 2;
    for (i = 0; i < n_outputs; i++) {
        output *o = &outs[i];
        int len = o->n + o->eos;
        o->logq = use_cb ? cb_value(o->t, o->n, 1) : 0;
        o->score = satisfies(r, prompt, np, o->t, o->n, o->eos, eos) && o->logq > -INFINITY ? (o->logprob + o->logq) / pow((double)len, lp) : -INFINITY;
        n_ok += o->score > -INFINITY;
    }
    qsort(outs, (size_t)n_outputs, sizeof outs[0], cmp_output);
    memset(&c, 0, sizeof c);
    c.n_beams = 750; /* >= the candidates of any step (125 beams x 6 tokens): nothing is pruned */
    c.n_return = n_return;
    c.max_new_tokens = T;
    c.length_penalty = lp;
    c.early_stopping = TFM_EARLY_NEVER;
    c.session.n_ctx = np + T;
    rules_to_config(r, &c);
    if (use_cb) { c.cond.fn = test_condition; c.cond.user = &eos; cb_prompt = prompt; cb_np = np; }
    CHECK(tfm_beam_init(&b, m, &c) == TFM_OK, "%s: init: %s", what, b.error);
    CHECK(tfm_beam_search(&b, prompt, (size_t)np) == TFM_OK, "%s: search: %s", what, b.error);
    CHECK(b.n_results == (n_ok < n_return ? n_ok : n_return), "%s: %d results, %d expected", what, b.n_results, n_ok < n_return ? n_ok : n_return);
    for (i = 0; i < b.n_results; i++) {
        const tfm_beam_hyp *h = &b.hyps[i];
        const output *o = find_output(h);
        int tie = (i > 0 && outs[i - 1].score - outs[i].score < 1e-4) || (i + 1 < n_outputs && outs[i].score - outs[i + 1].score < 1e-4);
        CHECK(o != NULL, "%s: result %d is not a possible output", what, i);
        if (!o) continue;
        if (!tie && !(o->n == outs[i].n && o->eos == outs[i].eos && same(o->t, outs[i].t, o->n))) {
            CHECK(0, "%s: result %d differs from the exhaustive rank %d (scores %.6f vs %.6f)", what, i, i, o->score, outs[i].score);
            worst_rank = i;
        }
        CHECK(fabs(o->score - outs[i].score) < 1e-4, "%s: rank %d score %.6f, exhaustive %.6f", what, i, o->score, outs[i].score);
        CHECK(fabs(h->score - o->score) < 1e-4, "%s: reported score %.6f, recomputed %.6f", what, h->score, o->score);
        CHECK(fabs(h->logprob - o->logprob) < 1e-4, "%s: reported log-likelihood %.6f, recomputed %.6f", what, h->logprob, o->logprob);
        CHECK(fabs(h->cond_logq - o->logq) < 1e-5, "%s: reported log q %.6f, expected %.6f", what, h->cond_logq, o->logq);
    }
    if (worst_rank < 0 && b.n_results)
        printf("  exhaustive (%d outputs, %d satisfy) %s: the %d best match, best log p %.4f\n", n_outputs, n_ok, what, b.n_results, outs[0].logprob);
    tfm_beam_free(&b);
}

static void test_exhaustive(tiny_model *tm) {
    static const int32_t prompt[] = {1, 3, 4};
    const int np = 3, T = 4;
    int32_t cur[MAXT];
    rules r;
    ref_open(&tm->m, 16);
    n_outputs = 0;
    enumerate(prompt, np, tm->m.hp.n_vocab, 2, T, cur, 0);
    memset(&r, 0, sizeof r);
    exhaustive_case(&tm->m, prompt, np, T, &r, 0.0f, 0, "plain, length_penalty 0");
    exhaustive_case(&tm->m, prompt, np, T, &r, 1.0f, 0, "plain, length_penalty 1");
    exhaustive_case(&tm->m, prompt, np, T, &r, -0.5f, 0, "plain, length_penalty -0.5");
    r.not_empty = 1; r.rep_k = 2;
    exhaustive_case(&tm->m, prompt, np, T, &r, 0.0f, 0, "not empty, no repeated bigram");
    memset(&r, 0, sizeof r);
    r.copy_k = 2; r.min_len = 2; r.max_len = 3;
    exhaustive_case(&tm->m, prompt, np, T, &r, 0.0f, 0, "no prompt bigram, length in [2, 3]");
    memset(&r, 0, sizeof r);
    r.rep_k = 1; r.copy_k = 1;
    exhaustive_case(&tm->m, prompt, np, T, &r, 0.0f, 0, "no token twice, none from the prompt");
    memset(&r, 0, sizeof r);
    r.hf_ngram = 2; r.min_new = 2;
    exhaustive_case(&tm->m, prompt, np, T, &r, 1.0f, 0, "HF no_repeat_ngram_size 2, min_new_tokens 2");
    memset(&r, 0, sizeof r);
    r.not_empty = 1;
    cb_calls = cb_hidden_checked = cb_hidden_bad = 0;
    exhaustive_case(&tm->m, prompt, np, T, &r, 0.0f, 1, "callback (must hold token 5, token 3 costs 0.7)");
    CHECK(cb_calls > 0 && cb_hidden_bad == 0, "callback: %d of %d checked calls had a wrong hidden state or log-likelihood", cb_hidden_bad, cb_hidden_checked);
    ref_close();
}

/* ------------------------------------------------------------------ naive Hugging Face reference */

typedef struct { int32_t t[MAXT]; int n; float score; } ref_beam;
typedef struct { int32_t t[MAXT]; int n, eos, order; float score, logprob; } ref_hyp;
typedef struct { float score; int beam, token; } ref_cand;

static int cmp_ref_cand(const void *a, const void *b) {
    const ref_cand *x = (const ref_cand *)a, *y = (const ref_cand *)b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    if (x->beam != y->beam) return x->beam - y->beam;
    return x->token - y->token;
}

/* Would appending t to the output break a rule? (full-output checks on the extended prefix) */
static int ref_banned(const rules *r, const int32_t *prompt, int np, const int32_t *toks, int n, int t, int eos_id) {
    int32_t ext[MAXT + 1];
    if (t == eos_id) {
        if (n < r->min_new || n < r->min_len || (r->not_empty && n == 0)) return 1;
        if (r->hf_ngram) { rules h; memset(&h, 0, sizeof h); h.hf_ngram = r->hf_ngram; return !satisfies(&h, prompt, np, toks, n, 1, eos_id); }
        return 0;
    }
    memcpy(ext, toks, (size_t)n * sizeof(int32_t));
    ext[n] = t;
    if (r->max_len && n + 1 > r->max_len) return 1;
    {
        rules h = *r;
        h.not_empty = 0; h.min_len = 0; h.max_len = 0; h.min_new = 0; /* end-of-output rules do not apply yet */
        return !satisfies(&h, prompt, np, ext, n + 1, 0, eos_id);
    }
}

static float ref_pen(float x, int len, float lp) { return x / powf((float)len, lp); }

static void ref_add(ref_hyp *hyps, int *nh, int N, int *order, const int32_t *t, int n, int eos, float logprob, float lp) {
    float s = ref_pen(logprob, n + eos, lp);
    int i, w = 0;
    if (*nh == N) {
        for (i = 1; i < N; i++)
            if (hyps[i].score < hyps[w].score || (hyps[i].score == hyps[w].score && hyps[i].order < hyps[w].order)) w = i;
        if (!(s > hyps[w].score)) return;
    } else w = (*nh)++;
    memcpy(hyps[w].t, t, (size_t)n * sizeof(int32_t));
    hyps[w].n = n; hyps[w].eos = eos; hyps[w].score = s; hyps[w].logprob = logprob; hyps[w].order = (*order)++;
}

/* Hugging Face's loop with a full forward for every beam at every step and a full sort. */
static int ref_beam_search(const tfm_beam_config *c, const rules *r, const int32_t *prompt, int np, ref_hyp *out) {
    const int V = ref_m->hp.n_vocab, N = c->n_beams, T = c->max_new_tokens, eos = c->eos_id;
    static ref_beam beams[64], next[64];
    static ref_hyp hyps[64];
    static ref_cand cands[64 * 64];
    static float lsm[64];
    int nb = 1, nh = 0, order = 0, step, i, t, done = 0;
    beams[0].n = 0; beams[0].score = 0;
    for (step = 0; step < T && nb > 0 && !done; step++) {
        int nc = 0, nn = 0, k;
        for (i = 0; i < nb; i++) {
            const float *L = ref_forward(prompt, np, beams[i].t, beams[i].n) + (size_t)(np - 1 + beams[i].n) * V;
            tfm_log_softmax(L, lsm, V);
            for (t = 0; t < V; t++) {
                if (ref_banned(r, prompt, np, beams[i].t, beams[i].n, t, eos)) continue;
                cands[nc].score = beams[i].score + lsm[t]; cands[nc].beam = i; cands[nc].token = t; nc++;
            }
        }
        qsort(cands, (size_t)nc, sizeof cands[0], cmp_ref_cand);
        if (nc > 2 * N) nc = 2 * N;
        for (k = 0; k < nc && nn < N; k++) {
            const ref_beam *p = &beams[cands[k].beam];
            if (cands[k].token == eos) {
                if (k < N) ref_add(hyps, &nh, N, &order, p->t, p->n, 1, cands[k].score, c->length_penalty);
                continue;
            }
            next[nn] = *p;
            next[nn].t[p->n] = cands[k].token; next[nn].n = p->n + 1; next[nn].score = cands[k].score;
            nn++;
        }
        if (nc && nh == N) {
            float worst = hyps[0].score, best = cands[0].score, hi;
            for (i = 1; i < nh; i++) worst = hyps[i].score < worst ? hyps[i].score : worst;
            if (c->early_stopping == TFM_EARLY_TRUE) done = 1;
            else {
                hi = c->early_stopping == TFM_EARLY_NEVER && c->length_penalty > 0 ? ref_pen(best, T, c->length_penalty) : ref_pen(best, step + 1, c->length_penalty);
                done = worst >= hi;
            }
        }
        memcpy(beams, next, (size_t)nn * sizeof next[0]);
        nb = nn;
    }
    if (!done)
        for (i = 0; i < nb; i++)
            if (beams[i].n >= r->min_len) ref_add(hyps, &nh, N, &order, beams[i].t, beams[i].n, 0, beams[i].score, c->length_penalty);
    for (i = 0; i < nh; i++) { /* selection sort, best first, ties to the earlier */
        int j, best = i;
        ref_hyp tmp;
        for (j = i + 1; j < nh; j++)
            if (hyps[j].score > hyps[best].score || (hyps[j].score == hyps[best].score && hyps[j].order < hyps[best].order)) best = j;
        tmp = hyps[i]; hyps[i] = hyps[best]; hyps[best] = tmp;
    }
    if (nh > c->n_return) nh = c->n_return;
    memcpy(out, hyps, (size_t)nh * sizeof hyps[0]);
    return nh;
}

static void random_rules(uint64_t *s, rules *r, int with_cond) {
    memset(r, 0, sizeof *r);
    if (rng_next(s) % 3 == 0) r->hf_ngram = 1 + (int)(rng_next(s) % 3);
    if (rng_next(s) % 3 == 0) r->min_new = (int)(rng_next(s) % 4);
    if (!with_cond) return;
    r->not_empty = (int)(rng_next(s) % 2);
    if (rng_next(s) % 2) r->rep_k = 1 + (int)(rng_next(s) % 3);
    if (rng_next(s) % 2) r->copy_k = 1 + (int)(rng_next(s) % 3);
    if (rng_next(s) % 3 == 0) r->min_len = (int)(rng_next(s) % 4);
    if (rng_next(s) % 3 == 0) r->max_len = r->min_len + (int)(rng_next(s) % 4);
}

static void random_config(uint64_t *s, tfm_beam_config *c, int V) {
    static const float lps[] = {0.0f, 1.0f, 0.5f, -1.0f, 2.0f};
    memset(c, 0, sizeof *c);
    c->n_beams = 1 + (int)(rng_next(s) % 6);
    c->n_return = 1 + (int)(rng_next(s) % (uint64_t)c->n_beams);
    c->max_new_tokens = 1 + (int)(rng_next(s) % 8);
    c->length_penalty = lps[rng_next(s) % 5];
    c->early_stopping = (tfm_early_stopping)(rng_next(s) % 3);
    c->eos_id = 2;
    (void)V;
}

/* 3. the library equals the naive reference; 5. no result ever breaks a hard rule. */
static void test_against_reference(tiny_model *small, tiny_model *mid) {
    uint64_t s = 12345;
    int k, i, agree = 0, hyps_checked = 0, cases = 300;
    for (k = 0; k < cases; k++) {
        tiny_model *tm = k % 2 ? mid : small;
        const int V = tm->m.hp.n_vocab;
        tfm_beam_config c;
        tfm_beam b;
        rules r;
        ref_hyp ref[64];
        int32_t prompt[8];
        int np = 1 + (int)(rng_next(&s) % 6), nr, ok = 1;
        random_config(&s, &c, V);
        random_rules(&s, &r, k % 4 != 0);
        rules_to_config(&r, &c);
        c.session.n_ctx = np + c.max_new_tokens;
        if (k % 5 == 1) { c.session.kv.policy = TFM_KV_A2SF; c.session.kv.budget = 3; c.session.kv.alpha = 0.5f; }
        for (i = 0; i < np; i++) prompt[i] = (int32_t)(rng_next(&s) % (uint64_t)V);
        if (c.cond.max_len && c.cond.min_len > c.cond.max_len) c.cond.min_len = c.cond.max_len;
        r.min_len = c.cond.min_len;
        ref_open(&tm->m, 32);
        if (c.session.kv.policy == TFM_KV_A2SF) { tfm_session_free(&ref_s); { tfm_session_config sc = c.session; sc.n_ctx = 32; tfm_session_init(&ref_s, &tm->m, &sc); } }
        CHECK(tfm_beam_init(&b, &tm->m, &c) == TFM_OK, "case %d: init: %s", k, b.error);
        CHECK(tfm_beam_search(&b, prompt, (size_t)np) == TFM_OK, "case %d: search: %s", k, b.error);
        nr = ref_beam_search(&c, &r, prompt, np, ref);
        if (b.n_results != nr) ok = 0;
        for (i = 0; ok && i < nr; i++) {
            const tfm_beam_hyp *h = &b.hyps[i];
            if (h->n_tokens != ref[i].n || h->eos != ref[i].eos || !same(h->tokens, ref[i].t, h->n_tokens) || fabsf(h->score - ref[i].score) > 1e-5f) ok = 0;
        }
        CHECK(ok, "case %d (beams %d, return %d, max %d, lp %g, early %d): %d results, reference %d; first: %d tokens score %g vs %d tokens score %g",
              k, c.n_beams, c.n_return, c.max_new_tokens, c.length_penalty, (int)c.early_stopping, b.n_results, nr,
              b.n_results ? b.hyps[0].n_tokens : -1, b.n_results ? b.hyps[0].score : 0.0, nr ? ref[0].n : -1, nr ? ref[0].score : 0.0);
        agree += ok;
        for (i = 0; i < b.n_hyps; i++) { /* every kept hypothesis, not only the returned ones */
            const tfm_beam_hyp *h = &b.hyps[i];
            double lp = ref_logprob(prompt, np, h->tokens, h->n_tokens, h->eos ? 2 : -1);
            CHECK(satisfies(&r, prompt, np, h->tokens, h->n_tokens, h->eos, 2), "case %d: hypothesis %d breaks a hard rule", k, i);
            CHECK(h->n_tokens + h->eos <= c.max_new_tokens && (h->eos || h->n_tokens == c.max_new_tokens), "case %d: hypothesis %d has length %d", k, i, h->n_tokens);
            CHECK(fabs(h->logprob - lp) < 1e-3, "case %d: hypothesis %d log-likelihood %g, recomputed %g", k, i, h->logprob, lp);
            CHECK(i == 0 || i >= b.n_results || b.hyps[i].score <= b.hyps[i - 1].score, "case %d: results not sorted", k);
            hyps_checked++;
        }
        tfm_beam_free(&b);
        ref_close();
    }
    printf("  naive Hugging Face reference: %d of %d random configurations agree; %d hypotheses keep every hard rule\n", agree, cases, hyps_checked);
}

/* ------------------------------------------------------------------ 4. pruned caches per beam */

static int cmp_int(const void *a, const void *b) { return *(const int32_t *)a - *(const int32_t *)b; }

/* Kept positions and their scores of one (sequence, layer, KV head), sorted by position. */
static int kept_state(const tfm_session *s, int seq, int l, int h, int32_t *pos, float *score) {
    size_t ci = tfm__cache_index(s, seq, l, h), i, j;
    int n = s->n_used_[ci];
    for (i = 0; i < (size_t)n; i++) pos[i] = s->slot_pos_[ci * (size_t)s->capacity + i];
    qsort(pos, (size_t)n, sizeof pos[0], cmp_int);
    for (i = 0; i < (size_t)n; i++)
        for (j = 0; j < (size_t)n; j++)
            if (s->slot_pos_[ci * (size_t)s->capacity + j] == pos[i]) score[i] = s->slot_score_[ci * (size_t)s->capacity + j];
    return n;
}

static void test_pruned_caches(tiny_model *tm) {
    static const tfm_kv_policy policies[] = {TFM_KV_A2SF, TFM_KV_H2O, TFM_KV_WINDOW};
    static const char *names[] = {"A2SF", "H2O", "window"};
    static const int32_t prompt[] = {1, 5, 9, 3, 12, 7, 7, 4};
    const int np = 8, T = 10;
    const tfm_hparams *hp = &tm->m.hp;
    int p;
    for (p = 0; p < 3; p++) {
        tfm_beam b;
        tfm_beam_config c;
        tfm_session alone;
        tfm_session_config sc;
        int steps = 0, compared = 0, bad = 0, bad_logits = 0, copied = 0;
        memset(&c, 0, sizeof c);
        c.n_beams = 4; c.n_return = 4; c.max_new_tokens = T; c.eos_id = -1;
        c.session.n_ctx = np + T;
        c.session.kv.policy = policies[p]; c.session.kv.budget = 5; c.session.kv.alpha = 0.7f; c.session.kv.n_sink = p == 2 ? 1 : 0;
        sc = c.session; sc.n_seq = 1;
        CHECK(tfm_beam_init(&b, &tm->m, &c) == TFM_OK, "%s: init: %s", names[p], b.error);
        CHECK(tfm_session_init(&alone, &tm->m, &sc) == TFM_OK, "%s: session", names[p]);
        CHECK(tfm_beam_start(&b, prompt, (size_t)np) == TFM_OK, "%s: start: %s", names[p], b.error);
        while (!b.stopped) {
            int j, l, h;
            CHECK(tfm_beam_step(&b) == TFM_OK, "%s: step: %s", names[p], b.error);
            steps++;
            if (b.stopped) break;
            for (j = 0; j < b.n_active; j++) {
                int32_t all[64], pa[64], pb[64];
                float sa[64], sb[64];
                const float *la, *lb;
                int seq = b.beam_seq[j], i;
                copied += seq != j;
                memcpy(all, prompt, sizeof prompt);
                memcpy(all + np, b.beam_tokens + (size_t)j * (size_t)T, (size_t)b.n_gen * sizeof(int32_t));
                tfm_seq_reset(&alone, 0);
                tfm_session_eval(&alone, all, NULL, (size_t)(np + b.n_gen), NULL);
                for (l = 0; l < hp->n_layer; l++)
                    for (h = 0; h < hp->n_head_kv; h++) {
                        int na = kept_state(&b.session, seq, l, h, pa, sa), nb = kept_state(&alone, 0, l, h, pb, sb);
                        compared++;
                        if (na != nb || !same(pa, pb, na)) bad++;
                        else for (i = 0; i < na; i++) if (fabsf(sa[i] - sb[i]) > 1e-5f) { bad++; break; }
                    }
                la = tfm_session_logits(&b.session, seq); lb = tfm_session_logits(&alone, 0);
                for (i = 0; i < hp->n_vocab; i++) if (fabsf(la[i] - lb[i]) > 1e-5f) { bad_logits++; break; }
            }
        }
        tfm_beam_finish(&b);
        CHECK(bad == 0 && compared > 0, "%s: %d of %d (beam, layer, head) caches differ from the beam's tokens run alone", names[p], bad, compared);
        CHECK(bad_logits == 0, "%s: %d beams' logits differ from their tokens run alone", names[p], bad_logits);
        CHECK(copied > 0, "%s: no beam ever moved to another sequence: the reordering was not exercised", names[p]);
        if (bad == 0 && bad_logits == 0)
            printf("  %s (budget 5): over %d steps (%d beams in a copied sequence) every beam's kept set, scores and logits equal its tokens run alone (%d caches)\n",
                   names[p], steps, copied, compared);
        tfm_session_free(&alone);
        tfm_beam_free(&b);
    }
    { /* budget >= length: the same search as with the full cache */
        tfm_beam full, a2sf;
        tfm_beam_config c;
        int i, ok = 1;
        memset(&c, 0, sizeof c);
        c.n_beams = 4; c.n_return = 4; c.max_new_tokens = T; c.length_penalty = 1.0f;
        c.session.n_ctx = np + T;
        CHECK(tfm_beam_init(&full, &tm->m, &c) == TFM_OK, "full init");
        c.session.kv.policy = TFM_KV_A2SF; c.session.kv.budget = np + T; c.session.kv.alpha = 0.3f;
        CHECK(tfm_beam_init(&a2sf, &tm->m, &c) == TFM_OK, "a2sf init");
        tfm_beam_search(&full, prompt, (size_t)np);
        tfm_beam_search(&a2sf, prompt, (size_t)np);
        ok = full.n_results == a2sf.n_results && full.n_results > 0;
        for (i = 0; ok && i < full.n_results; i++)
            ok = full.hyps[i].n_tokens == a2sf.hyps[i].n_tokens && same(full.hyps[i].tokens, a2sf.hyps[i].tokens, full.hyps[i].n_tokens) &&
                 full.hyps[i].score == a2sf.hyps[i].score;
        CHECK(ok, "A2SF with budget >= length differs from the full cache");
        if (ok) printf("  A2SF budget %d >= length: the %d results equal the full cache's exactly\n", np + T, full.n_results);
        tfm_beam_free(&full);
        tfm_beam_free(&a2sf);
    }
}

/* ------------------------------------------------------------------ memory and errors */

static void test_memory_and_errors(tiny_model *tm) {
    static const int32_t prompt[] = {1, 3, 4, 5};
    tfm_beam b;
    tfm_beam_config c;
    size_t need = 0;
    void *heap;
    long before;
    memset(&c, 0, sizeof c);
    c.n_beams = 3; c.max_new_tokens = 6;
    c.session.n_ctx = 16;
    CHECK(tfm_beam_heap_size(&tm->m, &c, &need) == TFM_OK && need > 0, "heap size");
    heap = malloc(need);
    CHECK(tfm_beam_init_preallocated(&b, &tm->m, &c, heap, need - 65) == TFM_ERR_BUFFER, "a small heap is refused");
    CHECK(tfm_beam_init_preallocated(&b, &tm->m, &c, heap, need) == TFM_OK, "preallocated init: %s", b.error);
    before = test_allocs;
    CHECK(tfm_beam_search(&b, prompt, 4) == TFM_OK, "search: %s", b.error);
    CHECK(tfm_beam_search(&b, prompt, 3) == TFM_OK, "second search: %s", b.error);
    CHECK(test_allocs == before, "the search allocated %ld times", test_allocs - before);
    CHECK(b.n_results == 1 && b.cfg.n_beams == 3 && b.cfg.eos_id == 2, "defaults resolved (results %d, eos %d)", b.n_results, b.cfg.eos_id);
    CHECK(tfm_beam_search(&b, prompt, 0) == TFM_ERR_ARG, "an empty prompt is refused");
    {
        int32_t bad[] = {1, 99};
        int32_t longp[16] = {0};
        CHECK(tfm_beam_search(&b, bad, 2) == TFM_ERR_TOKEN, "a bad token id is refused");
        CHECK(tfm_beam_search(&b, longp, 12) == TFM_ERR_CONTEXT, "prompt + max_new_tokens beyond n_ctx is refused");
        CHECK(tfm_beam_search(&b, longp, 11) == TFM_OK, "prompt + max_new_tokens - 1 = n_ctx fits");
    }
    free(heap);
    memset(&b, 0, sizeof b);
    CHECK(tfm_beam_step(&b) == TFM_ERR_ARG && tfm_beam_finish(NULL) == TFM_ERR_ARG, "uninitialized searcher refused");
    {
        tfm_beam_config e;
        memset(&e, 0, sizeof e);
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_OK && b.cfg.n_beams == 4 && b.cfg.n_return == 1, "zero config works");
        tfm_beam_free(&b);
        e.n_return = 5;
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_ERR_ARG, "n_return > n_beams refused");
        e.n_return = 0; e.cond.min_len = 3; e.cond.max_len = 2;
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_ERR_ARG, "min_len > max_len refused");
        e.cond.min_len = 0; e.eos_id = 6;
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_ERR_TOKEN, "eos out of range refused");
        e.eos_id = -1; e.cond.max_len = 2;
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_ERR_ARG, "max_len without EOS refused");
        e.cond.max_len = 0; e.length_penalty = NAN;
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_ERR_ARG, "NaN length penalty refused");
        e.length_penalty = 0; e.max_new_tokens = 1000; e.session.n_ctx = 16;
        CHECK(tfm_beam_init(&b, &tm->m, &e) == TFM_ERR_CONTEXT, "max_new_tokens > n_ctx refused");
        CHECK(tfm_beam_init(&b, NULL, &e) == TFM_ERR_ARG && tfm_beam_heap_size(&tm->m, &e, NULL) == TFM_ERR_ARG, "no model / no output refused");
    }
}

/* ------------------------------------------------------------------ examples/beam_flags.h */

static void print_letters(void *user, FILE *out, int32_t prev, const int32_t *ids, int32_t n) {
    int32_t i;
    fprintf(out, "(after %d)", (int)prev);
    for (i = 0; i < n; i++) fprintf(out, "%c", ((const char *)user)[ids[i]]);
}

static void test_flags(tiny_model *tm) {
    static const char *argv[] = {"--beams", "5", "--n-best", "3", "--length-penalty", "0", "--early-stopping", "never",
                                 "--cond-not-empty", "--cond-no-repeat", "2", "--cond-no-copy", "3", "--min-new", "1"};
    static const int32_t prompt[] = {1, 3, 4, 5};
    const int argc = (int)(sizeof argv / sizeof argv[0]);
    beam_flags f;
    tfm_beam b;
    tfm_beam_config c;
    tfm_session_config sc;
    char text[4096], want[256];
    FILE *out = tmpfile();
    int i, k, rc;
    size_t n;
    memset(&f, 0, sizeof f);
    for (i = 0; i < argc; i += k) {
        k = beam_flags_parse(&f, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        CHECK(k > 0, "flag %s not taken", argv[i]);
        if (k <= 0) return;
    }
    printf("  beam_flags.h: three bad flags, expect three error lines:\n");
    fflush(stdout);
    CHECK(beam_flags_parse(&f, "--beams", "x") < 0 && beam_flags_parse(&f, "--early-stopping", "soon") < 0 &&
          beam_flags_parse(&f, "--length-penalty", NULL) < 0 && beam_flags_parse(&f, "-n", "3") == 0, "bad flags refused, others left alone");
    memset(&sc, 0, sizeof sc);
    sc.n_ctx = 16;
    if (!out) { printf("SKIP: tmpfile() unavailable\n"); return; }
    {
        FILE *u = tmpfile();
        if (u) { beam_flags_usage(u); CHECK(ftell(u) > 200, "usage text"); fclose(u); }
    }
    rc = beam_flags_run(&f, &tm->m, &sc, prompt, 4, 5, 0, NULL, NULL, out);
    CHECK(rc == 0, "beam_flags_run failed");
    rewind(out);
    n = fread(text, 1, sizeof text - 1, out);
    text[n] = 0;
    fclose(out);
    memset(&c, 0, sizeof c); /* the same search through the library */
    c.n_beams = 5; c.n_return = 3; c.early_stopping = TFM_EARLY_NEVER; c.max_new_tokens = 5; c.min_new_tokens = 1;
    c.cond.not_empty = 1; c.cond.no_repeat_ngram = 2; c.cond.no_prompt_copy = 3; c.session = sc;
    CHECK(tfm_beam_init(&b, &tm->m, &c) == TFM_OK && tfm_beam_search(&b, prompt, 4) == TFM_OK, "library search");
    for (i = 0; i < b.n_results; i++) {
        int j, len = sprintf(want, "#%d score %.4f  log p %.4f  len %d%s | ", i + 1, (double)b.hyps[i].score, (double)b.hyps[i].logprob,
                             (int)b.hyps[i].n_tokens, b.hyps[i].eos ? " +eos" : "");
        for (j = 0; j < b.hyps[i].n_tokens; j++) len += sprintf(want + len, "%s%d", j ? " " : "", (int)b.hyps[i].tokens[j]);
        CHECK(strstr(text, want) != NULL, "run's n-best list lacks \"%s\":\n%s", want, text);
    }
    CHECK(b.n_results == 3, "3 results expected, got %d", b.n_results);
    if ((out = tmpfile()) != NULL) { /* text through the caller's printer */
        rc = beam_flags_run(&f, &tm->m, &sc, prompt, 4, 5, 0, print_letters, (void *)"USEabc", out);
        rewind(out);
        n = fread(text, 1, sizeof text - 1, out);
        text[n] = 0;
        fclose(out);
        sprintf(want, "| (after 5)");
        for (i = 0; i < b.hyps[0].n_tokens; i++) sprintf(want + strlen(want), "%c", "USEabc"[b.hyps[0].tokens[i]]);
        CHECK(rc == 0 && strstr(text, want) != NULL, "printer output lacks \"%s\":\n%s", want, text);
    }
    printf("  beam_flags.h: the flags give the library's search; n-best list:\n%s", text);
    tfm_beam_free(&b);
}

int main(void) {
    tiny_model small, mid;
    tiny_cfg cs = {6, 16, 2, 2, 1, 32, 16, 11, 3.0f};  /* V 6 (EOS 2), GQA 2:1 */
    tiny_cfg cm = {16, 32, 2, 4, 2, 48, 64, 5, 2.5f};  /* V 16 */
    if (!tiny_load(&small, &cs) || !tiny_load(&mid, &cm)) { CHECK(0, "cannot build the test models"); return test_summary("test_beam"); }
    test_greedy(&small, &mid);
    test_greedy_llama2c();
    test_exhaustive(&small);
    test_against_reference(&small, &mid);
    test_pruned_caches(&mid);
    test_memory_and_errors(&small);
    test_flags(&small);
    tiny_free(&small);
    tiny_free(&mid);
    return test_summary("test_beam");
}
