/* check_logits - runs a GGUF through tfm.h's forward pass and compares it with another
 * implementation's output (the files in ../shared/ref). Used by tests/test_convert.sh to prove
 * that converted files compute what the original checkpoints compute.
 *
 *   check_logits MODEL.gguf LOGITS.txt TOL [TOKENS.txt]
 *
 * LOGITS.txt: lines "pos P input_token T argmax A logits: v0 v1 ..." for positions 0, 1, 2, ...;
 * the input tokens are fed in order and every logit must be within TOL of the reference.
 * TOKENS.txt (optional): "prompt_ids(n): ..." or "prompt_tokens(n): ...", then
 * "generated_ids(n): ..." (new tokens) or "sequence(n): ..." (prompt included); greedy decoding
 * from the prompt must reproduce every id. LOGITS.txt "-": only load the model, run BOS (or
 * token 0) and check that every logit is finite. Exit status 0 = match, 1 = mismatch, 2 = error.
 *
 * Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. tests/check_logits.c -lm -o build/check_logits
 */
#define TFM_IMPLEMENTATION
#include "tfm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POS 8
#define MAX_IDS 1024

typedef struct {
    int n_pos;
    int32_t input[MAX_POS];
    float *logits[MAX_POS]; /* [n_vocab] each */
} ref_logits;

/* Reads up to MAX_POS lines of reference logits, each with exactly n_vocab values. */
static int read_ref_logits(const char *path, int32_t n_vocab, ref_logits *r) {
    FILE *f = fopen(path, "r");
    int p, tok, am;
    char word[16];
    memset(r, 0, sizeof *r);
    if (!f) { fprintf(stderr, "check_logits: cannot open %s\n", path); return -1; }
    while (r->n_pos < MAX_POS && fscanf(f, " pos %d input_token %d argmax %d %15s", &p, &tok, &am, word) == 4 &&
           strcmp(word, "logits:") == 0) { /* later lines (argmax only) end the list */
        int32_t i;
        float *row = (float *)malloc((size_t)n_vocab * sizeof *row);
        if (!row || p != r->n_pos) { free(row); fclose(f); fprintf(stderr, "check_logits: %s: bad position line\n", path); return -1; }
        for (i = 0; i < n_vocab; i++)
            if (fscanf(f, "%f", &row[i]) != 1) { free(row); fclose(f); fprintf(stderr, "check_logits: %s: fewer than %d logits\n", path, (int)n_vocab); return -1; }
        r->input[r->n_pos] = tok;
        r->logits[r->n_pos++] = row;
    }
    fclose(f);
    return r->n_pos ? 0 : -1;
}

/* Reads "label(n): id id ..." lines: the prompt and the expected continuation. */
static int read_ref_tokens(const char *path, int32_t *prompt, int *n_prompt, int32_t *gen, int *n_gen) {
    FILE *f = fopen(path, "r");
    char label[64];
    int n, i, is_sequence = 0;
    *n_prompt = *n_gen = 0;
    if (!f) { fprintf(stderr, "check_logits: cannot open %s\n", path); return -1; }
    while (fscanf(f, " %63[a-z_](%d):", label, &n) == 2) {
        int32_t *dst = strncmp(label, "prompt", 6) == 0 ? prompt : gen;
        if (n < 0 || n > MAX_IDS) break;
        for (i = 0; i < n; i++)
            if (fscanf(f, "%d", &dst[i]) != 1) { fclose(f); return -1; }
        if (dst == prompt) *n_prompt = n;
        else { *n_gen = n; is_sequence = strcmp(label, "sequence") == 0; break; }
    }
    fclose(f);
    if (is_sequence) { /* drop the prompt from the sequence */
        if (*n_gen < *n_prompt) return -1;
        memmove(gen, gen + *n_prompt, (size_t)(*n_gen - *n_prompt) * sizeof *gen);
        *n_gen -= *n_prompt;
    }
    return *n_prompt > 0 && *n_gen > 0 ? 0 : -1;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int check_logits(tfm_session *s, const ref_logits *r, int32_t n_vocab, double tol) {
    int p, bad = 0;
    for (p = 0; p < r->n_pos; p++) {
        const float *lg;
        double worst = 0;
        int32_t i;
        if (tfm_session_eval(s, &r->input[p], NULL, 1, NULL) != TFM_OK) { fprintf(stderr, "check_logits: eval: %s\n", s->error); return -1; }
        lg = tfm_session_logits(s, 0);
        for (i = 0; i < n_vocab; i++) {
            double d = fabs((double)lg[i] - (double)r->logits[p][i]);
            if (d > worst || d != d) worst = d;
        }
        printf("pos %d: max |logit - ref| = %.3g (tolerance %.3g)\n", p, worst, tol);
        bad |= !(worst <= tol);
    }
    return bad;
}

static int check_greedy(tfm_session *s, const int32_t *prompt, int n_prompt, const int32_t *gen, int n_gen, int32_t n_vocab) {
    int i;
    int32_t tok;
    if (tfm_session_eval(s, prompt, NULL, (size_t)n_prompt, NULL) != TFM_OK) { fprintf(stderr, "check_logits: eval: %s\n", s->error); return -1; }
    for (i = 0; i < n_gen; i++) {
        tok = argmax(tfm_session_logits(s, 0), n_vocab);
        if (tok != gen[i]) { printf("greedy: id %d is %d, reference %d\n", i, (int)tok, (int)gen[i]); return 1; }
        if (i + 1 < n_gen && tfm_session_eval(s, &tok, NULL, 1, NULL) != TFM_OK) { fprintf(stderr, "check_logits: eval: %s\n", s->error); return -1; }
    }
    printf("greedy: all %d ids match\n", n_gen);
    return 0;
}

static int only_finite(tfm_model *m, tfm_session_config *cfg) {
    tfm_session s;
    int32_t tok = m->vocab.bos_id >= 0 && m->vocab.bos_id < m->hp.n_vocab ? m->vocab.bos_id : 0, i, bad = 0;
    const float *lg;
    if (tfm_session_init(&s, m, cfg) != TFM_OK) { fprintf(stderr, "check_logits: %s\n", s.error); tfm_model_free(m); return 2; }
    if (tfm_session_eval(&s, &tok, NULL, 1, NULL) != TFM_OK) bad = 1;
    else {
        lg = tfm_session_logits(&s, 0);
        for (i = 0; i < m->hp.n_vocab; i++) bad |= !(lg[i] > -1e30f && lg[i] < 1e30f);
        printf("%d logits after token %d: %s, argmax %d\n", (int)m->hp.n_vocab, (int)tok, bad ? "NOT finite" : "finite", (int)argmax(lg, m->hp.n_vocab));
    }
    tfm_session_free(&s);
    tfm_model_free(m);
    return bad;
}

int main(int argc, char **argv) {
    tfm_model m;
    tfm_session s;
    tfm_session_config cfg;
    ref_logits r;
    static int32_t prompt[MAX_IDS], gen[MAX_IDS];
    int n_prompt, n_gen, rc = 0, p;
    double tol;
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: check_logits MODEL.gguf LOGITS.txt TOL [TOKENS.txt]\n"); return 2; }
    tol = atof(argv[3]);
    if (tfm_model_load(&m, argv[1]) != TFM_OK) { fprintf(stderr, "check_logits: %s\n", m.error); return 2; }
    memset(&cfg, 0, sizeof cfg);
    cfg.n_threads = 1;
    if (strcmp(argv[2], "-") == 0) return only_finite(&m, &cfg);
    if (read_ref_logits(argv[2], m.hp.n_vocab, &r) != 0 || tfm_session_init(&s, &m, &cfg) != TFM_OK) { tfm_model_free(&m); return 2; }
    rc = check_logits(&s, &r, m.hp.n_vocab, tol);
    if (rc == 0 && argc == 5) {
        tfm_seq_reset(&s, 0);
        if (read_ref_tokens(argv[4], prompt, &n_prompt, gen, &n_gen) != 0) { fprintf(stderr, "check_logits: cannot read %s\n", argv[4]); rc = -1; }
        else rc = check_greedy(&s, prompt, n_prompt, gen, n_gen, m.hp.n_vocab);
    }
    for (p = 0; p < r.n_pos; p++) free(r.logits[p]);
    tfm_session_free(&s);
    tfm_model_free(&m);
    return rc < 0 ? 2 : rc;
}
