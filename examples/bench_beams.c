/* bench_beams - is one batched decode step of 4 beams well under 4 single-sequence steps?

   bench_beams [--dim 768] [--layers 12] [--ffn 2048] [--vocab 32000] [--type q8_0|f32|f16]
               [--context 64] [--reps 7] [--threads 1]

   Builds a random-weight Llama of that shape in memory, prefills `context` tokens into sequence 0
   and copies it to sequences 1..3, then alternates, `reps` times: one tfm_session_eval of 4 tokens
   (one per sequence: every weight read once) and 4 tfm_session_eval calls of 1 token each. Also
   times a real 4-beam tfm_beam_search step against a greedy single-sequence step. Prints medians
   and the ratios as one JSON object. */
#define _POSIX_C_SOURCE 199309L
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "tools/gguf_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { int dim, layers, ffn, vocab, context, reps, threads, type; } bench_cfg;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static uint64_t rng_state = 42;
static float rng_normal(void) { /* sum of 4 uniforms from splitmix64, unit variance */
    float s = 0;
    int i;
    for (i = 0; i < 4; i++) {
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        s += (float)((z ^ (z >> 31)) >> 40) / 16777216.0f;
    }
    return (s - 2.0f) * 1.7320508f;
}

/* A {in, out} matrix of `type` (norms: a vector of ones, always F32). */
static void *make_tensor(int type, int64_t in, int64_t out, float std) {
    size_t row = tfm_type_row_size((tfm_type)type, in);
    unsigned char *data = (unsigned char *)malloc(row * (size_t)out);
    float *tmp = (float *)malloc((size_t)in * sizeof(float));
    int64_t r, i;
    if (!data || !tmp) { fprintf(stderr, "bench_beams: out of memory\n"); exit(1); }
    for (r = 0; r < out; r++) {
        for (i = 0; i < in; i++) tmp[i] = std == 0 ? 1.0f : std * rng_normal();
        tfm_quantize_row((tfm_type)type, tmp, data + (size_t)r * row, in);
    }
    free(tmp);
    return data;
}

static unsigned char *build_model(const bench_cfg *c, size_t *size) {
    gw_writer w;
    void *keep[16 * 1024];
    int nk = 0, l, i;
    char name[64];
    int64_t ne[2];
    const int heads = c->dim / 64;
    unsigned char *bytes;
    gw_init(&w);
    gw_str(&w, "general.architecture", "llama");
    gw_u32(&w, "llama.embedding_length", (uint32_t)c->dim);
    gw_u32(&w, "llama.block_count", (uint32_t)c->layers);
    gw_u32(&w, "llama.attention.head_count", (uint32_t)heads);
    gw_u32(&w, "llama.feed_forward_length", (uint32_t)c->ffn);
    gw_u32(&w, "llama.context_length", 2048);
    { /* a synthetic vocabulary, so that any tokenizer loader accepts the file */
        char **toks = (char **)malloc((size_t)c->vocab * sizeof(char *));
        float *scores = (float *)malloc((size_t)c->vocab * sizeof(float));
        int32_t *types = (int32_t *)malloc((size_t)c->vocab * sizeof(int32_t));
        for (i = 0; i < c->vocab; i++) {
            toks[i] = (char *)malloc(16);
            if (i < 3) strcpy(toks[i], i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            else sprintf(toks[i], "t%d", i);
            scores[i] = (float)-i;
            types[i] = i == 0 ? 2 : i < 3 ? 3 : 1;
        }
        gw_str(&w, "tokenizer.ggml.model", "llama");
        gw_arr_str(&w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (size_t)c->vocab);
        gw_arr_f32(&w, "tokenizer.ggml.scores", scores, (size_t)c->vocab);
        gw_arr_i32(&w, "tokenizer.ggml.token_type", types, (size_t)c->vocab);
        for (i = 0; i < c->vocab; i++) free(toks[i]);
        free(toks); free(scores); free(types);
    }
    gw_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
    gw_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    gw_u32(&w, "tokenizer.ggml.eos_token_id", 2);
#define MAT(nm, in, out) do { ne[0] = in; ne[1] = out; keep[nk] = make_tensor(c->type, in, out, 1.0f / sqrtf((float)(in))); \
        gw_tensor(&w, nm, c->type, 2, ne, keep[nk++]); } while (0)
#define VEC(nm) do { ne[0] = c->dim; keep[nk] = make_tensor(TFM_TYPE_F32, c->dim, 1, 0); gw_tensor(&w, nm, TFM_TYPE_F32, 1, ne, keep[nk++]); } while (0)
    MAT("token_embd.weight", c->dim, c->vocab);
    VEC("output_norm.weight");
    for (l = 0; l < c->layers; l++) {
        sprintf(name, "blk.%d.attn_norm.weight", l); VEC(name);
        sprintf(name, "blk.%d.attn_q.weight", l); MAT(name, c->dim, c->dim);
        sprintf(name, "blk.%d.attn_k.weight", l); MAT(name, c->dim, c->dim);
        sprintf(name, "blk.%d.attn_v.weight", l); MAT(name, c->dim, c->dim);
        sprintf(name, "blk.%d.attn_output.weight", l); MAT(name, c->dim, c->dim);
        sprintf(name, "blk.%d.ffn_norm.weight", l); VEC(name);
        sprintf(name, "blk.%d.ffn_gate.weight", l); MAT(name, c->dim, c->ffn);
        sprintf(name, "blk.%d.ffn_up.weight", l); MAT(name, c->dim, c->ffn);
        sprintf(name, "blk.%d.ffn_down.weight", l); MAT(name, c->ffn, c->dim);
    }
#undef MAT
#undef VEC
    bytes = w.failed ? NULL : gw_write_memory(&w, size);
    gw_free(&w);
    for (i = 0; i < nk; i++) free(keep[i]);
    return bytes;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp_double); return v[n / 2]; }

static int parse(int argc, char **argv, bench_cfg *c) {
    int i;
    c->dim = 768; c->layers = 12; c->ffn = 2048; c->vocab = 32000; c->context = 64; c->reps = 7; c->threads = 1;
    c->type = TFM_TYPE_Q8_0;
    for (i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--dim")) c->dim = atoi(v);
        else if (!strcmp(a, "--layers")) c->layers = atoi(v);
        else if (!strcmp(a, "--ffn")) c->ffn = atoi(v);
        else if (!strcmp(a, "--vocab")) c->vocab = atoi(v);
        else if (!strcmp(a, "--context")) c->context = atoi(v);
        else if (!strcmp(a, "--reps")) c->reps = atoi(v);
        else if (!strcmp(a, "--threads")) c->threads = atoi(v);
        else if (!strcmp(a, "--type")) c->type = !strcmp(v, "f32") ? TFM_TYPE_F32 : !strcmp(v, "f16") ? TFM_TYPE_F16 : TFM_TYPE_Q8_0;
        else return 0;
    }
    return i == argc && c->dim >= 64 && c->dim % 64 == 0 && c->layers > 0 && c->layers <= 64 && c->ffn % 32 == 0 && c->ffn > 0 &&
           c->vocab > 2 && c->context > 0 && c->context <= 1024 && c->reps > 0 && c->reps <= 100 && c->threads >= 0;
}

int main(int argc, char **argv) {
    bench_cfg c;
    tfm_gguf g;
    tfm_model m;
    tfm_session s;
    tfm_session_config sc;
    tfm_beam b;
    tfm_beam_config bc;
    unsigned char *bytes;
    size_t size = 0;
    int32_t prompt[1024], tok[4], seq[4] = {0, 1, 2, 3};
    double batched[100], single[100], t0, beam_ms, greedy_ms;
    int i, r, q;
    if (!parse(argc, argv, &c)) {
        fprintf(stderr, "usage: bench_beams [--dim 768] [--layers 12] [--ffn 2048] [--vocab 32000] [--type q8_0|f32|f16] [--context 64] [--reps 7] [--threads 1]\n");
        return 2;
    }
    if (!(bytes = build_model(&c, &size))) { fprintf(stderr, "bench_beams: cannot build the model\n"); return 1; }
    if (tfm_gguf_init(&g, bytes, size) != TFM_OK || tfm_model_init(&m, &g) != TFM_OK) { fprintf(stderr, "bench_beams: %s %s\n", g.error, m.error); return 1; }
    memset(&sc, 0, sizeof sc);
    sc.n_ctx = c.context + 2 * c.reps + 2;
    sc.n_seq = 4;
    sc.n_threads = c.threads;
    if (tfm_session_init(&s, &m, &sc) != TFM_OK) { fprintf(stderr, "bench_beams: %s\n", s.error); return 1; }
    for (i = 0; i < c.context; i++) prompt[i] = 3 + i % (c.vocab - 3);
    tfm_session_eval(&s, prompt, NULL, (size_t)c.context, NULL);
    for (q = 1; q < 4; q++) tfm_seq_copy(&s, q, 0);
    for (r = 0; r < c.reps; r++) { /* alternate, so both see the same context lengths */
        for (q = 0; q < 4; q++) tok[q] = 3 + (r * 4 + q) % (c.vocab - 3);
        t0 = now_ms();
        tfm_session_eval(&s, tok, seq, 4, NULL);
        batched[r] = now_ms() - t0;
        t0 = now_ms();
        for (q = 0; q < 4; q++) tfm_session_eval(&s, &tok[q], &seq[q], 1, NULL);
        single[r] = now_ms() - t0;
    }
    /* a real search: 4 beams, steps of the same context length, against greedy steps */
    memset(&bc, 0, sizeof bc);
    bc.n_beams = 4; bc.max_new_tokens = c.reps + 1; bc.eos_id = -1;
    bc.session = sc; bc.session.n_seq = 0;
    if (tfm_beam_init(&b, &m, &bc) != TFM_OK) { fprintf(stderr, "bench_beams: %s\n", b.error); return 1; }
    tfm_beam_start(&b, prompt, (size_t)c.context);
    tfm_beam_step(&b); /* the first step copies the prompt's cache into the other beams */
    t0 = now_ms();
    for (r = 0; r < c.reps - 1 && !b.stopped; r++) tfm_beam_step(&b);
    beam_ms = (now_ms() - t0) / (r ? r : 1);
    tfm_seq_reset(&s, 0);
    tfm_session_eval(&s, prompt, NULL, (size_t)c.context, NULL);
    t0 = now_ms();
    for (i = 0; i < c.reps - 1; i++) {
        int32_t t = tfm_argmax(tfm_session_logits(&s, 0), c.vocab);
        tfm_session_eval(&s, &t, NULL, 1, NULL);
    }
    greedy_ms = (now_ms() - t0) / (c.reps > 1 ? c.reps - 1 : 1);
    {
        double bm = median(batched, c.reps), sm = median(single, c.reps);
        printf("{\"model\": {\"dim\": %d, \"layers\": %d, \"ffn\": %d, \"vocab\": %d, \"type\": \"%s\", \"bytes\": %zu}, "
               "\"threads\": %d, \"context\": %d, \"reps\": %d, "
               "\"batched_4_seq_step_ms\": %.3f, \"four_single_steps_ms\": %.3f, \"ratio_batched_over_4_single\": %.3f, "
               "\"beam4_search_step_ms\": %.3f, \"greedy_step_ms\": %.3f, \"ratio_beam4_over_greedy\": %.3f}\n",
               c.dim, c.layers, c.ffn, c.vocab, tfm_type_name((tfm_type)c.type), size, s.cfg.n_threads, c.context, c.reps,
               bm, sm, bm / sm, beam_ms, greedy_ms, beam_ms / greedy_ms);
    }
    tfm_beam_free(&b);
    tfm_session_free(&s);
    tfm_model_free(&m);
    tfm_gguf_free(&g);
    free(bytes);
    return 0;
}
