/* kv_eval - what a pruned KV cache (A2SF, H2O, WINDOW) costs a model on a text.

   kv_eval -m MODEL (--text FILE | --ids FILE) [--kv POLICY --kv-budget N ...] [--sweep]
   kv_eval --report DOC.md --svg PLOT.svg RUNS.jsonl...

   The text is cut into segments of --ctx tokens. Each segment is read teacher-forced, in one
   tfm_session_eval call (prefill with eviction equals feeding it token by token), once with the
   FULL cache and once per policy, and the policy's next-token distributions are compared with
   FULL's: negative log-likelihood and perplexity of the text, KL(FULL || policy), top-1
   agreement. A budget given as a ratio ("0.2") is that fraction of the segment length. Then,
   from the first --prompt tokens of each of the first --gen-segments segments, greedy decoding
   runs under FULL and under the policy: `diverge` is the first generated step where they differ
   (the number of steps compared if never).

   One JSON line per run on stdout. --sweep runs FULL, then for every cache ratio (--ratios,
   default 0.1,0.2,0.3,0.5,0.8) H2O, WINDOW and A2SF for every alpha (--alphas, default
   0,0.1,0.2,0.5,0.9); --kv-recent / --kv-sink apply to A2SF and WINDOW (H2O keeps budget / 2
   recent positions). --report reads such lines back (several models) and writes Markdown tables
   (between the markers <!-- kv_eval:begin --> and <!-- kv_eval:end --> if the file has them,
   else the whole file) and an SVG plot of perplexity against cache ratio. */
#define TFM_IMPLEMENTATION
#include "tfm.h"
#include "kv_flags.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GRID 16

typedef struct {
    const char *model, *text, *ids, *name, *md, *svg;
    int sweep, a2sf_only, report, lines, ctx, max_segments, prompt, gen_segments, threads;
    double recent_frac;     /* sweep: A2SF n_recent = this fraction of the budget (0: --kv-recent) */
    double ratios[MAX_GRID];
    float alphas[MAX_GRID];
    int n_ratios, n_alphas;
    kv_flags kv;
    char **inputs; /* --report: the JSON-lines files */
    int n_inputs;
} options;

/* The text cut into segments, and what the FULL cache predicts on it. */
typedef struct {
    const tfm_model *m;
    int n_seg, len, gen;    /* segments of len tokens; gen greedy steps after the prompt */
    int32_t *ids;           /* [n_seg][len] */
    float *logp;            /* [n_seg][len - 1][n_vocab] FULL log-probabilities of the next token */
    int32_t *top;           /* [n_seg][len - 1] FULL argmax */
    int32_t *greedy;        /* [gen_segments][gen] FULL greedy continuation of each prompt */
    int n_greedy;
} reference;

typedef struct {
    tfm_kv_config kv;
    double ratio, recent_frac;
    double nll, kl, top1;   /* sums over scored tokens */
    long scored;
    int diverge_min;
    double diverge_mean;
    long evictions, evicted_new; /* teacher-forced pass: evictions, and those of the incoming token */
    int counting;
    size_t heap;
} run_result;

static void die(const char *msg, const char *detail) {
    fprintf(stderr, "kv_eval: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void usage(void) {
    fprintf(stderr,
        "usage: kv_eval -m MODEL (--text FILE | --ids FILE) [--kv POLICY --kv-budget N ...] [--sweep]\n"
        "       kv_eval --report DOC.md --svg PLOT.svg RUNS.jsonl...\n"
        "  --text FILE         text to evaluate (tokenized with the model's vocabulary, BOS first)\n"
        "  --lines             tokenize each line of the text on its own (verses), then join\n"
        "  --ids FILE          whitespace-separated token ids, fed as given\n"
        KV_FLAGS_USAGE
        "  --sweep             FULL, then H2O, WINDOW and A2SF per alpha at every cache ratio\n"
        "  --ratios LIST       cache ratios of the sweep (default 0.1,0.2,0.3,0.5,0.8)\n"
        "  --alphas LIST       A2SF alphas of the sweep (default 0,0.1,0.2,0.5,0.9)\n"
        "  --recent-frac F     sweep: A2SF protects the last F * budget positions (H2O: 0.5)\n"
        "  --a2sf-only         sweep: only the A2SF runs (no FULL, H2O, WINDOW)\n"
        "  --ctx N             segment length (default: the model's context, at most the text)\n"
        "  --segments N        use at most N segments (default: all)\n"
        "  --prompt N          greedy divergence: prompt tokens (default 16)\n"
        "  --gen-segments N    greedy divergence on the first N segments (default 4)\n"
        "  --name NAME         model name in the output (default: the file name)\n"
        "  --threads N         threads (default 1; 0: all cores)\n");
}

/* ---------------------------------------------------------------- input */

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n = 0;
    if (!f) die("cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) die("cannot read", path);
    buf = (char *)malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read", path);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static int32_t *read_ids(const char *path, int32_t n_vocab, int *n) {
    size_t len, cap = 1024;
    char *text = read_file(path, &len), *p = text, *end;
    int32_t *ids = (int32_t *)malloc(cap * sizeof *ids);
    *n = 0;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v < 0 || v >= n_vocab) die("token id out of the model's range in", path);
        if ((size_t)*n == cap) ids = (int32_t *)realloc(ids, (cap *= 2) * sizeof *ids);
        if (!ids) die("out of memory", NULL);
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    if (*p) die("not a token id in", path);
    free(text);
    return ids;
}

/* Token ids of a text file, no BOS; with `lines` each line is tokenized on its own (the way a
   corpus of verses is encoded) and the ids joined. */
static int32_t *read_text(const char *path, const tfm_model *m, int lines, int *n) {
    size_t len, total = 0, got;
    char *text = read_file(path, &len), *p = text;
    int32_t *ids = (int32_t *)malloc((len + 2) * sizeof *ids);
    tfm_result rc;
    if (!ids) die("out of memory", NULL);
    if (m->vocab.n_tokens <= 0) die("the model has no vocabulary (use --ids)", path);
    while (p < text + len) {
        char *e = lines ? strchr(p, '\n') : NULL;
        size_t piece = e ? (size_t)(e - p) : (size_t)(text + len - p);
        if (lines && piece == 0) { p++; continue; }
        rc = tfm_tokenize(&m->vocab, p, piece, 0, ids + total, len + 2 - total, &got);
        if (rc != TFM_OK) die("cannot tokenize", tfm_result_string(rc));
        total += got;
        p += piece + (e ? 1 : 0);
    }
    if (total > 0x7fffffff) die("text too long", path);
    free(text);
    *n = (int)total;
    return ids;
}

/* Segments of len tokens: BOS (if the vocabulary adds one) and the next text tokens. */
static int32_t *text_segments(const int32_t *tok, int n_tok, const tfm_model *m, int *len, int *n) {
    const int bos = m->vocab.add_bos && m->vocab.bos_id >= 0 ? 1 : 0;
    int per, n_seg, k;
    int32_t *ids;
    if (*len > n_tok + bos) *len = n_tok + bos;
    per = *len - bos;
    if (per < 1) die("text too short", NULL);
    n_seg = n_tok / per;
    ids = (int32_t *)malloc((size_t)n_seg * (size_t)*len * sizeof *ids);
    if (!ids) die("out of memory", NULL);
    for (k = 0; k < n_seg; k++) {
        if (bos) ids[(size_t)k * *len] = m->vocab.bos_id;
        memcpy(ids + (size_t)k * *len + bos, tok + (size_t)k * per, (size_t)per * sizeof *ids);
    }
    *n = n_seg * *len;
    return ids;
}

static int parse_list(const char *s, double *out, int cap) {
    int n = 0;
    char *end;
    while (*s && n < cap) {
        out[n++] = strtod(s, &end);
        if (end == s) return 0;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return n;
}

static void parse_args(int argc, char **argv, options *o) {
    static const double ratios[5] = {0.1, 0.2, 0.3, 0.5, 0.8};
    static const float alphas[5] = {0, 0.1f, 0.2f, 0.5f, 0.9f};
    double tmp[MAX_GRID];
    char err[256];
    int i, k;
    memset(o, 0, sizeof *o);
    kv_flags_init(&o->kv);
    o->prompt = 16;
    o->gen_segments = 4;
    o->threads = 1; /* many small runs: one thread each avoids idle spinning on a busy machine */
    o->n_ratios = 5;
    o->n_alphas = 5;
    memcpy(o->ratios, ratios, sizeof ratios);
    memcpy(o->alphas, alphas, sizeof alphas);
    o->inputs = (char **)calloc((size_t)argc, sizeof(char *));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = kv_flags_parse(&o->kv, argc, argv, &i, err, sizeof err);
        if (r < 0) die(err, NULL);
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); exit(0); }
        else if (!strcmp(a, "--sweep")) { o->sweep = 1; continue; }
        else if (!strcmp(a, "--a2sf-only")) { o->a2sf_only = 1; continue; }
        else if (!strcmp(a, "--lines")) { o->lines = 1; continue; }
        else if (a[0] != '-') { o->inputs[o->n_inputs++] = argv[i]; continue; }
        if (!v) die("missing value for", a);
        i++;
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "--text")) o->text = v;
        else if (!strcmp(a, "--ids")) o->ids = v;
        else if (!strcmp(a, "--name")) o->name = v;
        else if (!strcmp(a, "--report")) { o->md = v; o->report = 1; }
        else if (!strcmp(a, "--svg")) { o->svg = v; o->report = 1; }
        else if (!strcmp(a, "--ctx")) o->ctx = atoi(v);
        else if (!strcmp(a, "--segments")) o->max_segments = atoi(v);
        else if (!strcmp(a, "--prompt")) o->prompt = atoi(v);
        else if (!strcmp(a, "--gen-segments")) o->gen_segments = atoi(v);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--recent-frac")) {
            o->recent_frac = atof(v);
            if (!(o->recent_frac >= 0 && o->recent_frac <= 1)) die("--recent-frac must be in [0, 1]", v);
        }
        else if (!strcmp(a, "--ratios")) {
            if ((o->n_ratios = parse_list(v, o->ratios, MAX_GRID)) == 0) die("bad --ratios", v);
            for (k = 0; k < o->n_ratios; k++) if (!(o->ratios[k] > 0 && o->ratios[k] <= 1)) die("ratios must be in (0, 1]", v);
        } else if (!strcmp(a, "--alphas")) {
            if ((o->n_alphas = parse_list(v, tmp, MAX_GRID)) == 0) die("bad --alphas", v);
            for (k = 0; k < o->n_alphas; k++) {
                if (!(tmp[k] >= 0 && tmp[k] <= 1)) die("alphas must be in [0, 1]", v);
                o->alphas[k] = (float)tmp[k];
            }
        } else die("unknown flag", a);
    }
    if (o->report) return;
    if (!o->model || (!o->text == !o->ids)) { usage(); die("need -m MODEL and one of --text / --ids", NULL); }
    if (o->prompt < 1 || o->gen_segments < 0 || o->ctx < 0 || o->max_segments < 0) die("bad --prompt, --gen-segments, --ctx or --segments", NULL);
    if (!o->name) {
        const char *slash = strrchr(o->model, '/');
        o->name = slash ? slash + 1 : o->model;
    }
}

/* ---------------------------------------------------------------- evaluation */

static tfm_session_config session_config(const options *o, const reference *ref, const tfm_kv_config *kv) {
    tfm_session_config c;
    memset(&c, 0, sizeof c);
    c.n_ctx = ref->len;
    c.n_threads = o->threads;
    c.kv = *kv;
    return c;
}

/* Greedy continuation of a segment's prompt; with want != NULL stops at the first step that
   differs from it and returns that step. */
static int greedy(tfm_session *s, const int32_t *prompt, int n_prompt, int gen, int32_t *out, const int32_t *want) {
    const int32_t V = s->model->hp.n_vocab;
    int step;
    tfm_seq_reset(s, 0);
    if (tfm_session_eval(s, prompt, NULL, (size_t)n_prompt, NULL) != TFM_OK) die("eval failed", s->error);
    for (step = 0; step < gen; step++) {
        int32_t next = tfm_argmax(tfm_session_logits(s, 0), V);
        if (out) out[step] = next;
        if (want && next != want[step]) return step;
        if (step + 1 < gen && tfm_session_eval(s, &next, NULL, 1, NULL) != TFM_OK) die("eval failed", s->error);
    }
    return gen;
}

/* Teacher-forced logits of segment k (its first len - 1 tokens) into all [len - 1][V]. */
static void segment_logits(tfm_session *s, const reference *ref, int k, float *all) {
    tfm_seq_reset(s, 0);
    if (tfm_session_eval(s, ref->ids + (size_t)k * ref->len, NULL, (size_t)ref->len - 1, all) != TFM_OK) die("eval failed", s->error);
}

static void build_reference(reference *ref, const options *o, const tfm_model *m, int32_t *ids, int n) {
    const size_t V = (size_t)m->hp.n_vocab;
    tfm_kv_config full;
    tfm_session_config c;
    tfm_session s;
    int k, t, maxpos = tfm_model_max_positions(m);
    memset(ref, 0, sizeof *ref);
    memset(&full, 0, sizeof full);
    ref->m = m;
    ref->len = o->ctx ? o->ctx : m->hp.n_ctx_train;
    if (ref->len > n) ref->len = n;
    if (ref->len > maxpos) die("--ctx is past the model's learned positions", NULL);
    if (ref->len < o->prompt + 2) die("segments shorter than --prompt + 2 tokens", NULL);
    ref->n_seg = n / ref->len;
    if (o->max_segments && ref->n_seg > o->max_segments) ref->n_seg = o->max_segments;
    ref->ids = ids;
    ref->gen = ref->len - o->prompt;
    ref->n_greedy = o->gen_segments < ref->n_seg ? o->gen_segments : ref->n_seg;
    ref->logp = (float *)malloc((size_t)ref->n_seg * (size_t)(ref->len - 1) * V * sizeof(float));
    ref->top = (int32_t *)malloc((size_t)ref->n_seg * (size_t)(ref->len - 1) * sizeof(int32_t));
    ref->greedy = (int32_t *)malloc(((size_t)ref->n_greedy * (size_t)ref->gen + 1) * sizeof(int32_t));
    if (!ref->logp || !ref->top || !ref->greedy) die("out of memory for the FULL reference", NULL);
    c = session_config(o, ref, &full);
    if (tfm_session_init(&s, m, &c) != TFM_OK) die("session", s.error);
    for (k = 0; k < ref->n_seg; k++) {
        float *lp = ref->logp + (size_t)k * (size_t)(ref->len - 1) * V;
        segment_logits(&s, ref, k, lp);
        for (t = 0; t < ref->len - 1; t++) {
            ref->top[(size_t)k * (size_t)(ref->len - 1) + (size_t)t] = tfm_argmax(lp + (size_t)t * V, (int32_t)V);
            tfm_log_softmax(lp + (size_t)t * V, lp + (size_t)t * V, (int32_t)V);
        }
    }
    for (k = 0; k < ref->n_greedy; k++)
        greedy(&s, ids + (size_t)k * ref->len, o->prompt, ref->gen, ref->greedy + (size_t)k * ref->gen, NULL);
    tfm_session_free(&s);
}

/* Adds one segment's comparison with FULL to r. */
static void score_segment(run_result *r, const reference *ref, int k, float *all) {
    const size_t V = (size_t)ref->m->hp.n_vocab, L = (size_t)ref->len - 1;
    size_t t, v;
    for (t = 0; t < L; t++) {
        float *lp = all + t * V;
        const float *lf = ref->logp + ((size_t)k * L + t) * V;
        double kl = 0;
        r->top1 += tfm_argmax(lp, (int32_t)V) == ref->top[(size_t)k * L + t];
        tfm_log_softmax(lp, lp, (int32_t)V);
        for (v = 0; v < V; v++) kl += exp((double)lf[v]) * ((double)lf[v] - (double)lp[v]);
        r->kl += kl;
        r->nll -= lp[ref->ids[(size_t)k * ref->len + t + 1]];
        r->scored++;
    }
}

/* Attention observer: counts evictions and how many of them drop the token that just arrived. */
static void count_evictions(void *user, int32_t seq, int32_t layer, int32_t kv_head, int32_t pos, const int32_t *slot_pos,
                            const float *p, int32_t n, int32_t evicted_pos) {
    run_result *r = (run_result *)user;
    (void)seq; (void)layer; (void)kv_head; (void)slot_pos; (void)p; (void)n;
    if (!r->counting || evicted_pos < 0) return;
    r->evictions++;
    r->evicted_new += evicted_pos == pos;
}

static run_result evaluate(const options *o, const reference *ref, const tfm_kv_config *kv, double ratio) {
    const size_t V = (size_t)ref->m->hp.n_vocab;
    tfm_session_config c = session_config(o, ref, kv);
    tfm_session s;
    run_result r;
    float *all = (float *)malloc((size_t)(ref->len - 1) * V * sizeof(float));
    int k;
    memset(&r, 0, sizeof r);
    r.kv = *kv;
    r.ratio = ratio;
    if (!all) die("out of memory", NULL);
    c.observer = count_evictions;
    c.observer_user = &r;
    r.counting = 1;
    if (tfm_session_init(&s, ref->m, &c) != TFM_OK) die("session", s.error);
    tfm_session_heap_size(ref->m, &c, &r.heap);
    r.kv = s.cfg.kv; /* resolved (H2O's alpha and n_recent) */
    for (k = 0; k < ref->n_seg; k++) {
        segment_logits(&s, ref, k, all);
        score_segment(&r, ref, k, all);
    }
    r.counting = 0;
    r.diverge_min = ref->gen;
    for (k = 0; k < ref->n_greedy; k++) {
        int d = greedy(&s, ref->ids + (size_t)k * ref->len, o->prompt, ref->gen, NULL, ref->greedy + (size_t)k * ref->gen);
        r.diverge_mean += (double)d / ref->n_greedy;
        r.diverge_min = d < r.diverge_min ? d : r.diverge_min;
    }
    tfm_session_free(&s);
    free(all);
    return r;
}

static void print_json(const options *o, const reference *ref, const run_result *r) {
    const double n = r->scored ? (double)r->scored : 1;
    printf("{\"model\":\"%s\",\"policy\":\"%s\",\"ratio\":%.4g,\"budget\":%d,\"alpha\":%.4g,\"n_recent\":%d,\"n_sink\":%d,"
           "\"ppl\":%.6g,\"nll\":%.6g,\"kl\":%.6g,\"top1\":%.6g,\"diverge\":%.4g,\"diverge_min\":%d,\"gen\":%d,"
           "\"evict_new\":%.4g,\"recent_frac\":%.4g,\"tokens\":%ld,\"segments\":%d,\"len\":%d,\"heap_bytes\":%zu,\"kv_type\":\"%s\"}\n",
           o->name, kv_policy_name(r->kv.policy), r->ratio, r->kv.policy == TFM_KV_FULL ? ref->len : r->kv.budget,
           r->kv.policy == TFM_KV_A2SF || r->kv.policy == TFM_KV_H2O ? r->kv.alpha : 0, r->kv.n_recent, r->kv.n_sink,
           exp(r->nll / n), r->nll / n, r->kl / n, r->top1 / n, ref->n_greedy ? r->diverge_mean : -1, r->diverge_min, ref->gen,
           r->evictions ? (double)r->evicted_new / (double)r->evictions : 0, r->recent_frac, r->scored, ref->n_seg, ref->len, r->heap, r->kv.type == TFM_TYPE_F16 ? "f16" : "f32");
    fflush(stdout);
}

/* One run at a cache ratio; recent_frac > 0 sets n_recent to that fraction of the budget. */
static void run_one(const options *o, const reference *ref, tfm_kv_config kv, double ratio, double recent_frac) {
    run_result r;
    if (kv.policy != TFM_KV_FULL) kv.budget = (int32_t)(ratio * ref->len + 0.5);
    if (kv.policy != TFM_KV_FULL && kv.budget < 1) kv.budget = 1;
    if (recent_frac > 0) kv.n_recent = (int32_t)(recent_frac * kv.budget + 0.5);
    if (kv.n_recent + kv.n_sink > kv.budget) kv.n_recent = kv.budget - kv.n_sink;
    r = evaluate(o, ref, &kv, kv.policy == TFM_KV_FULL ? 1.0 : ratio);
    r.recent_frac = recent_frac;
    print_json(o, ref, &r);
}

static void sweep(const options *o, const reference *ref) {
    tfm_kv_config kv;
    int i, a;
    memset(&kv, 0, sizeof kv);
    kv.type = o->kv.kv.type;
    if (!o->a2sf_only) run_one(o, ref, kv, 1.0, 0);
    for (i = 0; i < o->n_ratios; i++) {
        if (!o->a2sf_only) {
            memset(&kv, 0, sizeof kv);
            kv.n_sink = o->kv.kv.n_sink;
            kv.type = o->kv.kv.type;
            kv.policy = TFM_KV_H2O;
            run_one(o, ref, kv, o->ratios[i], 0);
            kv.policy = TFM_KV_WINDOW;
            run_one(o, ref, kv, o->ratios[i], 0);
        }
        for (a = 0; a < o->n_alphas; a++) {
            kv = o->kv.kv;
            kv.policy = TFM_KV_A2SF;
            kv.alpha = o->alphas[a];
            run_one(o, ref, kv, o->ratios[i], o->recent_frac);
        }
    }
}

/* ---------------------------------------------------------------- report: Markdown and SVG */

#define MAX_RUNS 4096
#define MAX_MODELS 8
#define MAX_SERIES 24

typedef struct {
    char model[64], policy[16];
    double ratio, alpha, ppl, kl, top1, diverge, recent_frac, evict_new;
    int budget, n_recent, n_sink, gen, segments, len;
    long tokens;
} run_line;

static int json_num(const char *line, const char *key, double *out) {
    char pat[40];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    if (!(p = strstr(line, pat))) return 0;
    *out = strtod(p + strlen(pat), NULL);
    return 1;
}

static int json_str(const char *line, const char *key, char *out, size_t cap) {
    char pat[40];
    const char *p, *e;
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    if (!(p = strstr(line, pat))) return 0;
    p += strlen(pat);
    if (!(e = strchr(p, '"')) || (size_t)(e - p) >= cap) return 0;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 1;
}

static int parse_run(const char *line, run_line *r) {
    double v[10];
    memset(r, 0, sizeof *r);
    if (!json_str(line, "model", r->model, sizeof r->model) || !json_str(line, "policy", r->policy, sizeof r->policy)) return 0;
    if (!json_num(line, "ratio", &r->ratio) || !json_num(line, "alpha", &r->alpha) || !json_num(line, "ppl", &r->ppl) ||
        !json_num(line, "kl", &r->kl) || !json_num(line, "top1", &r->top1) || !json_num(line, "diverge", &r->diverge)) return 0;
    json_num(line, "recent_frac", &r->recent_frac);
    r->evict_new = -1;
    json_num(line, "evict_new", &r->evict_new);
    json_num(line, "budget", &v[0]); json_num(line, "n_recent", &v[1]); json_num(line, "n_sink", &v[2]);
    json_num(line, "gen", &v[3]); json_num(line, "segments", &v[4]); json_num(line, "len", &v[5]); json_num(line, "tokens", &v[6]);
    r->budget = (int)v[0]; r->n_recent = (int)v[1]; r->n_sink = (int)v[2];
    r->gen = (int)v[3]; r->segments = (int)v[4]; r->len = (int)v[5]; r->tokens = (long)v[6];
    return 1;
}

/* A series is one policy (A2SF per alpha) of one model, its points by ratio. */
typedef struct { char label[48]; const run_line *pt[MAX_GRID]; int n; } series;

typedef struct {
    const char *name;
    const run_line *full;
    series s[MAX_SERIES];
    int n_series;
    double ratios[MAX_GRID];
    int n_ratios;
} model_runs;

static void series_label(const run_line *r, char *out, size_t cap) {
    if (!strcmp(r->policy, "a2sf")) snprintf(out, cap, "A2SF alpha=%g", r->alpha);
    else if (!strcmp(r->policy, "h2o")) snprintf(out, cap, "H2O");
    else if (!strcmp(r->policy, "window")) snprintf(out, cap, "WINDOW");
    else snprintf(out, cap, "FULL");
    if (r->n_sink && strcmp(r->policy, "full")) snprintf(out + strlen(out), cap - strlen(out), " sink %d", r->n_sink);
    if (r->recent_frac > 0 && !strcmp(r->policy, "a2sf")) snprintf(out + strlen(out), cap - strlen(out), " recent %g*budget", r->recent_frac);
    else if (r->n_recent && !strcmp(r->policy, "a2sf")) snprintf(out + strlen(out), cap - strlen(out), " recent %d", r->n_recent);
}

static const run_line *point_at(const series *s, double ratio) {
    int i;
    for (i = 0; i < s->n; i++) if (fabs(s->pt[i]->ratio - ratio) < 1e-9) return s->pt[i];
    return NULL;
}

static void group_run(model_runs *mr, const run_line *r) {
    char label[48];
    int i;
    if (!strcmp(r->policy, "full")) { if (!mr->full) mr->full = r; return; }
    for (i = 0; i < mr->n_ratios && fabs(mr->ratios[i] - r->ratio) > 1e-9; i++) {}
    if (i == mr->n_ratios && mr->n_ratios < MAX_GRID) mr->ratios[mr->n_ratios++] = r->ratio;
    series_label(r, label, sizeof label);
    for (i = 0; i < mr->n_series && strcmp(mr->s[i].label, label); i++) {}
    if (i == mr->n_series) {
        if (mr->n_series == MAX_SERIES) return;
        snprintf(mr->s[mr->n_series++].label, sizeof mr->s[0].label, "%s", label);
    }
    if (mr->s[i].n < MAX_GRID && !point_at(&mr->s[i], r->ratio)) mr->s[i].pt[mr->s[i].n++] = r; /* first run wins */
}

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }


/* One Markdown table: a row per series, a column per ratio. metric 0 ppl, 1 kl, 2 top1 %, 3 diverge,
   4 evictions of the incoming token %. */
static void md_table(FILE *f, const model_runs *mr, int metric, const char *title) {
    static const char *fmt[5] = {"%.3f", "%.4f", "%.1f", "%.1f", "%.0f"};
    int i, j;
    fprintf(f, "\n%s\n\n| policy |", title);
    for (j = 0; j < mr->n_ratios; j++) fprintf(f, " %g |", mr->ratios[j]);
    fprintf(f, "\n|---|");
    for (j = 0; j < mr->n_ratios; j++) fprintf(f, "---:|");
    fprintf(f, "\n");
    for (i = 0; i < mr->n_series; i++) {
        fprintf(f, "| %s |", mr->s[i].label);
        for (j = 0; j < mr->n_ratios; j++) {
            const run_line *r = point_at(&mr->s[i], mr->ratios[j]);
            double v;
            if (!r) { fprintf(f, " |"); continue; }
            v = metric == 0 ? r->ppl : metric == 1 ? r->kl : metric == 2 ? 100 * r->top1 : metric == 3 ? r->diverge : 100 * r->evict_new;
            if (metric == 4 && r->evict_new < 0) { fprintf(f, " |"); continue; }
            fprintf(f, " ");
            fprintf(f, fmt[metric], v);
            fprintf(f, " |");
        }
        fprintf(f, "\n");
    }
}

static void md_model(FILE *f, const model_runs *mr) {
    const run_line *any = mr->full ? mr->full : mr->s[0].pt[0];
    fprintf(f, "\n### %s\n\n%ld scored tokens in %d segment(s) of %d tokens; cache ratio = budget / %d.",
            mr->name, any->tokens, any->segments, any->len, any->len);
    if (mr->full) fprintf(f, " FULL perplexity **%.3f**.", mr->full->ppl);
    fprintf(f, "\n");
    md_table(f, mr, 0, "Perplexity (lower is better):");
    md_table(f, mr, 1, "KL(FULL || policy), nats per token:");
    md_table(f, mr, 2, "Top-1 agreement with FULL, %:");
    if (any->gen > 0 && any->diverge >= 0) {
        char title[160];
        snprintf(title, sizeof title, "Greedy decoding: first step that differs from FULL (mean over segments; %d = never within %d steps):", any->gen, any->gen);
        md_table(f, mr, 3, title);
    }
    md_table(f, mr, 4, "Evictions that drop the token just read (it never serves a later query), % of evictions:");
}

/* Writes the tables into path, between the markers if the file has them. */
static void write_markdown(const char *path, const model_runs *mr, int n_models) {
    static const char *begin = "<!-- kv_eval:begin -->", *end = "<!-- kv_eval:end -->";
    char *old = NULL, *b = NULL, *e = NULL;
    FILE *f = fopen(path, "rb");
    int i;
    if (f) {
        size_t len;
        fclose(f);
        old = read_file(path, &len);
        b = strstr(old, begin);
        e = b ? strstr(b, end) : NULL;
    }
    if (!(f = fopen(path, "wb"))) die("cannot write", path);
    if (b && e) fwrite(old, 1, (size_t)(b - old) + strlen(begin), f);
    else fprintf(f, "%s", begin);
    fprintf(f, "\n<!-- generated by kv_eval --report; edits here are overwritten -->\n");
    for (i = 0; i < n_models; i++) md_model(f, &mr[i]);
    fprintf(f, "\n");
    if (b && e) fputs(e, f);
    else fprintf(f, "%s\n", end);
    fclose(f);
    free(old);
}

/* SVG: a panel per model, perplexity (log scale) against cache ratio, a line per series. */
#define PW 460
#define PH 340
#define ML 56
#define MT 34
#define MB 44
#define LEGEND 250

/* Line style of a series: A2SF colored by alpha (solid; dashed with a recent window), the
   baselines H2O and WINDOW black and gray, dotted. */
static void series_style(const series *s, char *out, size_t cap) {
    static const char *by_alpha[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"};
    const run_line *r = s->pt[0];
    if (!strcmp(r->policy, "h2o")) { snprintf(out, cap, "stroke=\"#000\" stroke-dasharray=\"2,3\""); return; }
    if (!strcmp(r->policy, "window")) { snprintf(out, cap, "stroke=\"#888\" stroke-dasharray=\"2,3\""); return; }
    snprintf(out, cap, "stroke=\"%s\"%s", by_alpha[(int)(r->alpha * 8 + 0.5) % 9], r->recent_frac > 0 || r->n_recent > 0 ? " stroke-dasharray=\"7,3\"" : "");
}

static void svg_ytick(FILE *f, int x, int w, double lo, double hi, int h, double v) {
    double y = MT + h - (log10(v) - lo) / (hi - lo) * h;
    if (log10(v) < lo || log10(v) > hi) return;
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", x, x + w, y, y);
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%g</text>\n", x - 4, y + 4, v);
}

/* Grid lines at round perplexities between 10^lo and 10^hi: 1-2-5 per decade over wide ranges,
   evenly spaced round values over narrow ones. */
static void svg_yticks(FILE *f, int x, int w, double lo, double hi, int h) {
    const double a = pow(10, lo), b = pow(10, hi);
    double v, step = pow(10, floor(log10((b - a) / 4)));
    int k;
    if (hi - lo > 1) {
        for (k = (int)floor(lo); k <= (int)ceil(hi); k++) {
            svg_ytick(f, x, w, lo, hi, h, pow(10, k));
            svg_ytick(f, x, w, lo, hi, h, 2 * pow(10, k));
            svg_ytick(f, x, w, lo, hi, h, 5 * pow(10, k));
        }
        return;
    }
    if ((b - a) / step > 10) step *= 2;
    if ((b - a) / step > 10) step *= 2.5;
    for (v = ceil(a / step) * step; v <= b; v += step) svg_ytick(f, x, w, lo, hi, h, v);
}

static void svg_panel(FILE *f, const model_runs *mr, int x0) {
    const int w = PW - ML - 12, h = PH - MT - MB;
    double lo = 1e300, hi = 0;
    int i, j;
    for (i = 0; i < mr->n_series; i++)
        for (j = 0; j < mr->s[i].n; j++) { lo = fmin(lo, mr->s[i].pt[j]->ppl); hi = fmax(hi, mr->s[i].pt[j]->ppl); }
    if (mr->full) { lo = fmin(lo, mr->full->ppl); hi = fmax(hi, mr->full->ppl); }
    if (!(hi > lo)) { hi = lo * 1.1 + 1; }
    lo = log10(lo) - 0.02 * (log10(hi) - log10(lo));
    hi = log10(hi) + 0.02 * (log10(hi) - log10(lo));
#define SX(r) (x0 + ML + (r) * w)
#define SY(p) (MT + h - (log10(p) - lo) / (hi - lo) * h)
    fprintf(f, "<text x=\"%d\" y=\"20\" font-weight=\"bold\">%s</text>\n", x0 + ML, mr->name);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", x0 + ML, MT, w, h);
    for (i = 0; i <= 10; i += 2)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%.1f</text>\n", SX(i / 10.0), MT + h + 16, i / 10.0);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">cache ratio (budget / sequence length)</text>\n", SX(0.5), MT + h + 34);
    svg_yticks(f, x0 + ML, w, lo, hi, h);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">perplexity (log scale)</text>\n", x0 + 14, MT + h / 2);
    if (mr->full)
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" stroke-dasharray=\"5,4\"/>\n", x0 + ML, x0 + ML + w, SY(mr->full->ppl), SY(mr->full->ppl));
    for (i = 0; i < mr->n_series; i++) {
        const series *s = &mr->s[i];
        char style[96];
        double xs[MAX_GRID];
        int n = 0;
        for (j = 0; j < s->n; j++) xs[n++] = s->pt[j]->ratio;
        qsort(xs, (size_t)n, sizeof xs[0], cmp_double);
        series_style(s, style, sizeof style);
        fprintf(f, "<polyline fill=\"none\" %s stroke-width=\"1.6\" points=\"", style);
        for (j = 0; j < n; j++) fprintf(f, "%.1f,%.1f ", SX(xs[j]), SY(point_at(s, xs[j])->ppl));
        fprintf(f, "\"/>\n");
        *strchr(style + 8, '"') = 0; /* the color alone: stroke="#xxxxxx */
        for (j = 0; j < n; j++) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\"/>", SX(xs[j]), SY(point_at(s, xs[j])->ppl), style + 8);
        fprintf(f, "\n");
    }
#undef SX
#undef SY
}

static void svg_legend(FILE *f, const model_runs *mr, int x0) {
    int i;
    for (i = 0; i < mr->n_series; i++) {
        int y = MT + 8 + i * 16;
        char style[96];
        series_style(&mr->s[i], style, sizeof style);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" %s stroke-width=\"2\"/>", x0, x0 + 22, y, y, style);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", x0 + 24, y + 4, mr->s[i].label);
    }
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#000\" stroke-dasharray=\"5,4\"/>", x0, x0 + 18, MT + 8 + i * 16, MT + 8 + i * 16);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">FULL</text>\n", x0 + 24, MT + 12 + i * 16);
}

static void write_svg(const char *path, const model_runs *mr, int n_models) {
    FILE *f = fopen(path, "wb");
    int i;
    if (!f) die("cannot write", path);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", n_models * PW + LEGEND, PH);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
    for (i = 0; i < n_models; i++) svg_panel(f, &mr[i], i * PW);
    if (n_models) svg_legend(f, &mr[0], n_models * PW);
    fprintf(f, "</svg>\n");
    fclose(f);
}

static void report(const options *o) {
    static run_line runs[MAX_RUNS];
    static model_runs mr[MAX_MODELS];
    int n_runs = 0, n_models = 0, i, k;
    for (i = 0; i < o->n_inputs; i++) {
        size_t len;
        char *text = read_file(o->inputs[i], &len), *line = text, *nl;
        for (; line && *line; line = nl ? nl + 1 : NULL) {
            if ((nl = strchr(line, '\n')) != NULL) *nl = 0;
            if (n_runs < MAX_RUNS && parse_run(line, &runs[n_runs])) n_runs++;
        }
        free(text);
    }
    if (!n_runs) die("no runs in the input files", NULL);
    for (i = 0; i < n_runs; i++) {
        for (k = 0; k < n_models && strcmp(mr[k].name, runs[i].model); k++) {}
        if (k == n_models) {
            if (n_models == MAX_MODELS) continue;
            mr[n_models++].name = runs[i].model;
        }
        group_run(&mr[k], &runs[i]);
    }
    for (k = 0; k < n_models; k++) qsort(mr[k].ratios, (size_t)mr[k].n_ratios, sizeof(double), cmp_double);
    if (o->md) write_markdown(o->md, mr, n_models);
    if (o->svg) write_svg(o->svg, mr, n_models);
    fprintf(stderr, "kv_eval: %d runs of %d model(s) reported\n", n_runs, n_models);
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    options o;
    tfm_model m;
    reference ref;
    int32_t *ids;
    int n, n_text = -1;
    tfm_result rc;
    parse_args(argc, argv, &o);
    if (o.report) { report(&o); return 0; }
    if ((rc = tfm_model_load(&m, o.model)) != TFM_OK) die(tfm_result_string(rc), m.error);
    if (o.ids) ids = read_ids(o.ids, m.hp.n_vocab, &n);
    else { /* BOS-led segments of --ctx tokens */
        int n_tok, len = o.ctx ? o.ctx : m.hp.n_ctx_train;
        int32_t *tok = read_text(o.text, &m, o.lines, &n_tok);
        ids = text_segments(tok, n_tok, &m, &len, &n);
        n_text = n_tok;
        free(tok);
        o.ctx = len;
    }
    build_reference(&ref, &o, &m, ids, n);
    fprintf(stderr, "kv_eval: %s: %d segment(s) of %d tokens (from %d %s), greedy decoding on %d\n", o.name, ref.n_seg, ref.len,
            n_text >= 0 ? n_text : n, n_text >= 0 ? "text tokens" : "ids", ref.n_greedy);
    if (o.sweep) sweep(&o, &ref);
    else {
        char err[256];
        tfm_kv_config kv;
        if (kv_flags_finish(&o.kv, ref.len, &kv, err, sizeof err) != 0) die(err, NULL);
        run_result r = evaluate(&o, &ref, &kv, kv.policy == TFM_KV_FULL ? 1.0 : (double)kv.budget / ref.len);
        print_json(&o, &ref, &r);
    }
    free(ref.logp); free(ref.top); free(ref.greedy); free(ids);
    tfm_model_free(&m);
    return 0;
}
