/* logits - print the logits a GGUF checkpoint gives for a prompt of token ids (for comparisons).

   logits -m model.gguf --prompt-ids "1 2 3" [--all] [--batch N] [--threads N] [-n N]

   Prints one line per position (only the last one without --all): n_vocab values, "%.9g",
   separated by spaces. The prompt is used exactly as given (no BOS is added).
   -n N prints instead the N greedy ids that follow the prompt: "generated_ids(N): id id ...".
   --batch N feeds the prompt N tokens per call (default: all at once; 1 = token by token).
   Exits non-zero with a message on any error. */
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *prompt_ids;
    int all, batch, threads, n_greedy;
} options;

static void usage(void) {
    fprintf(stderr, "usage: logits -m model.gguf --prompt-ids \"1 2 3\" [--all] [--batch N] [--threads N] [-n N]\n");
}

static int parse_args(int argc, char **argv, options *o) {
    int i;
    memset(o, 0, sizeof *o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--all") == 0) { o->all = 1; continue; }
        if (!v) { usage(); return 0; }
        if (strcmp(a, "-m") == 0) o->model = v;
        else if (strcmp(a, "--prompt-ids") == 0) o->prompt_ids = v;
        else if (strcmp(a, "--batch") == 0) o->batch = atoi(v);
        else if (strcmp(a, "--threads") == 0) o->threads = atoi(v);
        else if (strcmp(a, "-n") == 0) o->n_greedy = atoi(v);
        else { usage(); return 0; }
        i++;
    }
    if (!o->model || !o->prompt_ids || o->batch < 0 || o->n_greedy < 0) { usage(); return 0; }
    return 1;
}

/* Parses space-separated ids; returns their count (0 on a malformed list). */
static size_t parse_ids(const char *p, int32_t **ids) {
    size_t n = 0, cap = strlen(p) / 2 + 1;
    char *end;
    *ids = (int32_t *)malloc(cap * sizeof **ids);
    if (!*ids) return 0;
    for (;; p = end) { /* strtol skips leading white space */
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v < INT32_MIN || v > INT32_MAX) return 0;
        (*ids)[n++] = (int32_t)v;
    }
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    return *p ? 0 : n;
}

/* Greedy continuation of the evaluated prompt: argmax, feed it back, n times. */
static int print_greedy(tfm_session *s, int32_t n_vocab, int n) {
    int i;
    printf("generated_ids(%d):", n);
    for (i = 0; i < n; i++) {
        int32_t next = tfm_argmax(tfm_session_logits(s, 0), n_vocab);
        tfm_result r;
        printf(" %d", next);
        if (i + 1 < n && (r = tfm_session_eval(s, &next, NULL, 1, NULL)) != TFM_OK) {
            fprintf(stderr, "logits: %s (%s)\n", s->error, tfm_result_string(r));
            return 0;
        }
    }
    printf("\n");
    return 1;
}

static void print_row(const float *x, int32_t n) {
    int32_t i;
    for (i = 0; i < n; i++) printf(i ? " %.9g" : "%.9g", x[i]);
    printf("\n");
}

/* Feeds the prompt (o->batch tokens per call), then prints its logits or the greedy ids. */
static int run(const options *o, tfm_session *s, const int32_t *ids, size_t n) {
    const int32_t V = s->model->hp.n_vocab;
    float *all = (float *)malloc(n * (size_t)V * sizeof *all);
    size_t i, step = o->batch ? (size_t)o->batch : n;
    tfm_result r = TFM_OK;
    if (!all) { fprintf(stderr, "logits: out of memory\n"); return 0; }
    for (i = 0; i < n && r == TFM_OK; i += step)
        r = tfm_session_eval(s, ids + i, NULL, n - i < step ? n - i : step, all + i * (size_t)V);
    if (r != TFM_OK) fprintf(stderr, "logits: %s (%s)\n", s->error, tfm_result_string(r));
    else if (o->n_greedy) r = print_greedy(s, V, o->n_greedy) ? TFM_OK : TFM_ERR_ARG;
    else for (i = o->all ? 0 : n - 1; i < n; i++) print_row(all + i * (size_t)V, V);
    free(all);
    return r == TFM_OK;
}

int main(int argc, char **argv) {
    options o;
    tfm_model m;
    tfm_session s;
    tfm_session_config cfg;
    tfm_result r;
    int32_t *ids = NULL;
    size_t n;
    int ok = 0;
    if (!parse_args(argc, argv, &o)) return 2;
    if (!(n = parse_ids(o.prompt_ids, &ids))) {
        fprintf(stderr, "logits: bad or empty --prompt-ids\n");
        free(ids);
        return 2;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.n_ctx = (int32_t)(n + (size_t)o.n_greedy);
    cfg.n_threads = o.threads;
    if ((r = tfm_model_load(&m, o.model)) != TFM_OK) {
        fprintf(stderr, "logits: cannot load %s: %s (%s)\n", o.model, m.error, tfm_result_string(r));
    } else {
        if ((r = tfm_session_init(&s, &m, &cfg)) != TFM_OK) {
            fprintf(stderr, "logits: cannot start a session: %s (%s)\n", s.error, tfm_result_string(r));
        } else {
            ok = run(&o, &s, ids, n);
            tfm_session_free(&s);
        }
        tfm_model_free(&m);
    }
    free(ids);
    return ok ? 0 : 1;
}
