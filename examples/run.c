/* run - generate text from a GGUF checkpoint with tfm.h.

   run [-m model.gguf] [-p "prompt" | --prompt-ids "1 2 3"] [-n new_tokens] [options]

   Streams the text as it is generated; prints prefill and decode speed to stderr.
   Exits non-zero with a message on any error. */
#define _POSIX_C_SOURCE 199309L
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_flags.h"
#include "beam_flags.h"

#define DEFAULT_MODEL "models/tfm-kjv.gguf"

typedef struct {
    const char *model, *prompt, *prompt_ids;
    int n_new, ignore_eos, print_ids;
    tfm_sampler_config sampler;
    tfm_session_config session;
    kv_flags kv;
    beam_flags beam;
} options;

static void usage(void) {
    fprintf(stderr,
        "usage: run [-m model.gguf] [-p prompt | --prompt-ids \"1 2 3\"] [-n N] [options]\n"
        "  -m FILE              GGUF checkpoint (default " DEFAULT_MODEL ")\n"
        "  -p TEXT              prompt text (BOS added when the vocabulary says so)\n"
        "  --prompt-ids IDS     prompt as token ids, used as given\n"
        "  -n N                 new tokens to generate (default 128)\n"
        "  --temp T             temperature; 0 = greedy (default 0)\n"
        "  --top-k K, --top-p P, --min-p P, --repeat-penalty R, --repeat-last-n N\n"
        "  --seed S             sampler seed\n"
        "  --threads N          at most N threads (default: all cores; fewer while other work slows them)\n"
        "  -c, --ctx N          context positions (default: the model's)\n"
        "  --ignore-eos         keep going after the end-of-text token\n"
        "  --print-ids          print the generated ids on stdout instead of text\n"
        "KV cache (memory bounded by the budget; positions keep counting, so RoPE models can run past\n"
        "their context with a pruned cache, while learned positions (GPT-2, OPT) end at the context):\n"
        KV_FLAGS_USAGE);
    beam_flags_usage(stderr);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    o->model = DEFAULT_MODEL;
    o->n_new = 128;
    kv_flags_init(&o->kv);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, k;
        char err[200];
#define FLAG(name) (strcmp(a, name) == 0)
        if ((k = kv_flags_parse(&o->kv, argc, argv, &i, err, sizeof err)) != 0) {
            if (k < 0) { fprintf(stderr, "run: %s\n", err); return 0; }
            continue;
        }
        if ((k = beam_flags_parse(&o->beam, a, v)) != 0) { if (k < 0) return 0; i += k - 1; continue; }
        if (FLAG("-h") || FLAG("--help")) { usage(); exit(0); }
        else if (FLAG("--ignore-eos")) { o->ignore_eos = 1; takes = 0; }
        else if (FLAG("--print-ids")) { o->print_ids = 1; takes = 0; }
        else if (!v) { fprintf(stderr, "run: %s needs a value (or is unknown)\n", a); return 0; }
        else if (FLAG("-m")) o->model = v;
        else if (FLAG("-p")) o->prompt = v;
        else if (FLAG("--prompt-ids")) o->prompt_ids = v;
        else if (FLAG("-n")) o->n_new = atoi(v);
        else if (FLAG("--temp") || FLAG("-t")) o->sampler.temperature = (float)atof(v);
        else if (FLAG("--top-k")) o->sampler.top_k = atoi(v);
        else if (FLAG("--top-p")) o->sampler.top_p = (float)atof(v);
        else if (FLAG("--min-p")) o->sampler.min_p = (float)atof(v);
        else if (FLAG("--repeat-penalty")) o->sampler.repeat_penalty = (float)atof(v);
        else if (FLAG("--repeat-last-n")) o->sampler.repeat_last_n = atoi(v);
        else if (FLAG("--seed")) o->sampler.seed = strtoull(v, NULL, 10);
        else if (FLAG("--threads")) o->session.n_threads = atoi(v);
        else if (FLAG("-c") || FLAG("--ctx")) o->session.n_ctx = atoi(v);
        else { fprintf(stderr, "run: unknown option %s\n", a); usage(); return 0; }
#undef FLAG
        i += takes;
    }
    if (o->n_new < 0) { fprintf(stderr, "run: -n must be >= 0\n"); return 0; }
    return 1;
}

/* The prompt as ids: given directly, or tokenized (BOS as the vocabulary says). */
static int32_t *prompt_tokens(const options *o, const tfm_model *m, size_t *n) {
    size_t cap, len = o->prompt ? strlen(o->prompt) : 0;
    int32_t *ids;
    tfm_result r;
    if (o->prompt_ids) {
        const char *p = o->prompt_ids;
        char *end;
        cap = strlen(p) / 2 + 2;
        ids = (int32_t *)malloc(cap * sizeof *ids);
        for (*n = 0; ids; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p) break;
            ids[(*n)++] = (int32_t)v;
        }
        return ids;
    }
    cap = len + 8;
    ids = (int32_t *)malloc(cap * sizeof *ids);
    if (!ids) return NULL;
    r = tfm_tokenize(&m->vocab, o->prompt ? o->prompt : "", len, 1, ids, cap, n);
    if (r != TFM_OK) { fprintf(stderr, "run: cannot tokenize the prompt: %s\n", tfm_result_string(r)); free(ids); return NULL; }
    return ids;
}

/* Writes the text of ids[n] (prev: the token before ids[0]). */
static void print_text(void *user, FILE *out, int32_t prev, const int32_t *ids, int32_t n) {
    const tfm_model *m = (const tfm_model *)user;
    char piece[256];
    int32_t i;
    for (i = 0; i < n; i++) {
        size_t k = tfm_token_to_piece(&m->vocab, i ? ids[i - 1] : prev, ids[i], piece, sizeof piece);
        fwrite(piece, 1, k, out);
    }
}

static void emit(const options *o, const tfm_model *m, int32_t prev, int32_t tok) {
    char piece[256];
    size_t k;
    if (o->print_ids) { printf("%d ", tok); fflush(stdout); return; }
    k = tfm_token_to_piece(&m->vocab, prev, tok, piece, sizeof piece);
    fwrite(piece, 1, k, stdout);
    fflush(stdout);
}

/* Positions the session needs: the model's context unless a pruned cache lets it run longer. */
static tfm_result session_config(options *o, const tfm_model *m, size_t n_prompt) {
    char err[200];
    int64_t want = (int64_t)n_prompt + o->n_new;
    if (kv_flags_finish(&o->kv, (int32_t)(want < INT32_MAX ? want : INT32_MAX), &o->session.kv, err, sizeof err) != 0) {
        fprintf(stderr, "run: %s\n", err);
        return TFM_ERR_ARG;
    }
    if (o->session.n_ctx == 0 && o->session.kv.policy != TFM_KV_FULL && want > m->hp.n_ctx_train) {
        int64_t maxpos = tfm_model_max_positions(m);
        o->session.n_ctx = (int32_t)(want < maxpos ? want : maxpos);
        if (want > maxpos)
            fprintf(stderr, "run: note: this model's learned positions end at %lld; generation stops there\n", (long long)maxpos);
    }
    return TFM_OK;
}

int main(int argc, char **argv) {
    options o;
    tfm_model m;
    tfm_session s;
    tfm_sampler smp;
    tfm_result r;
    int32_t *ids, *hist;
    size_t n_prompt = 0, n_hist, i;
    double t0, t1, t2;
    int n_gen = 0;
    if (!parse_args(argc, argv, &o)) return 2;
    if ((r = tfm_model_load(&m, o.model)) != TFM_OK) {
        fprintf(stderr, "run: cannot load %s: %s (%s)\n", o.model, m.error, tfm_result_string(r));
        return 1;
    }
    if (!(ids = prompt_tokens(&o, &m, &n_prompt))) return 1;
    if (n_prompt == 0) { fprintf(stderr, "run: empty prompt and the model adds no BOS: nothing to start from\n"); return 1; }
    if (session_config(&o, &m, n_prompt) != TFM_OK) return 2;
    if (o.beam.n_beams > 0)
        return beam_flags_run(&o.beam, &m, &o.session, ids, n_prompt, o.n_new, o.ignore_eos, o.print_ids ? NULL : print_text, &m, stdout);
    if ((r = tfm_session_init(&s, &m, &o.session)) != TFM_OK) {
        fprintf(stderr, "run: cannot start a session: %s (%s)\n", s.error, tfm_result_string(r));
        return 1;
    }
    if ((r = tfm_sampler_init(&smp, &o.sampler, m.hp.n_vocab)) != TFM_OK) {
        fprintf(stderr, "run: bad sampler settings (%s)\n", tfm_result_string(r));
        return 1;
    }
    hist = (int32_t *)malloc((n_prompt + (size_t)o.n_new + 1) * sizeof *hist);
    if (!hist) { fprintf(stderr, "run: out of memory\n"); return 1; }
    memcpy(hist, ids, n_prompt * sizeof *ids);
    n_hist = n_prompt;
    if (o.print_ids) { for (i = 0; i < n_prompt; i++) printf("%d ", ids[i]); }
    else for (i = 0; i < n_prompt; i++) emit(&o, &m, i ? ids[i - 1] : -1, ids[i]);
    t0 = now_seconds();
    if ((r = tfm_session_eval(&s, ids, NULL, n_prompt, NULL)) != TFM_OK) {
        fprintf(stderr, "\nrun: prompt of %zu tokens: %s (%s)\n", n_prompt, s.error, tfm_result_string(r));
        return 1;
    }
    t1 = now_seconds();
    while (n_gen < o.n_new) {
        int32_t next = tfm_sample(&smp, tfm_session_logits(&s, 0), hist, n_hist);
        if (!o.ignore_eos && next == m.vocab.eos_id) break;
        emit(&o, &m, hist[n_hist - 1], next);
        hist[n_hist++] = next;
        n_gen++;
        if (n_gen == o.n_new) break;
        if ((r = tfm_session_eval(&s, &next, NULL, 1, NULL)) != TFM_OK) {
            fprintf(stderr, "\nrun: stopped after %d tokens: %s (%s)\n", n_gen, s.error, tfm_result_string(r));
            break;
        }
    }
    t2 = now_seconds();
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "prefill: %zu tokens, %.1f tokens/s | decode: %d tokens, %.1f tokens/s\n",
            n_prompt, n_prompt / (t1 - t0 + 1e-12), n_gen, n_gen > 1 ? (n_gen - 1) / (t2 - t1 + 1e-12) : 0.0);
    free(hist);
    free(ids);
    tfm_sampler_free(&smp);
    tfm_session_free(&s);
    tfm_model_free(&m);
    return r == TFM_OK ? 0 : 1;
}
