/* beam_flags.h - the beam search flags of examples/run, and its n-best printout.

   Include after tfm.h. run.c uses it in four places:
     options:     beam_flags beam;                      (zeroed with the options: beam search off)
     arguments:   before run's own flags, in its loop over (a = argv[i], v = argv[i + 1]):
                      else if ((k = beam_flags_parse(&o->beam, a, v)) != 0) { if (k < 0) return 0; takes = k - 1; }
     usage:       beam_flags_usage(stderr);
     main:        after the prompt ids are known and the model is loaded:
                      if (o.beam.n_beams > 0)
                          return beam_flags_run(&o.beam, &m, &o.session, ids, n_prompt, o.n_new, o.ignore_eos, print_fn, user, stdout);
                  where print_fn(user, out, prev, ids, n) writes the text of ids[n], prev being the token
                  before ids[0] (the last prompt token); NULL prints the ids.

   Flags:
     --beams N              beam search with N beams (Hugging Face semantics); prints the n-best list
     --n-best K             hypotheses printed (default: all N)
     --length-penalty F     score = log p / length^F (default 1.0, as Hugging Face)
     --early-stopping S     heuristic (default), true or never
     --no-repeat-ngram N    no n-gram of prompt + output twice (Hugging Face's no_repeat_ngram_size)
     --min-new N            no end-of-text before N new tokens
   Conditional beam search (the most likely output that satisfies all of these):
     --cond-not-empty       at least one token
     --cond-no-repeat K     no k-gram twice in the output
     --cond-no-copy K       no k-gram of the prompt copied into the output
     --cond-min-len N, --cond-max-len N   output length bounds (tokens, end-of-text not counted)
*/
#ifndef TFM_BEAM_FLAGS_H
#define TFM_BEAM_FLAGS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t n_beams;      /* 0: beam search off */
    int32_t n_best;       /* 0: n_beams */
    int length_penalty_set;
    float length_penalty;
    tfm_beam_config cfg;  /* the rest of the settings */
} beam_flags;

/* Writes the text of ids[n] to out; prev is the token before ids[0]. */
typedef void (*beam_print_fn)(void *user, FILE *out, int32_t prev, const int32_t *ids, int32_t n);

static void beam_flags_usage(FILE *f) {
    fprintf(f,
        "  --beams N            beam search with N beams; prints the n-best list with both scores\n"
        "  --n-best K           hypotheses printed (default N); --length-penalty F (default 1.0)\n"
        "  --early-stopping S   heuristic (default) | true | never\n"
        "  --no-repeat-ngram N, --min-new N     Hugging Face's no_repeat_ngram_size, min_new_tokens\n"
        "  conditional beam search (most likely output satisfying all of):\n"
        "  --cond-not-empty, --cond-no-repeat K, --cond-no-copy K, --cond-min-len N, --cond-max-len N\n");
}

/* Reads a non-negative integer; -1 when v is not one. */
static int beam_flags__int(const char *v) {
    char *end;
    long x = v ? strtol(v, &end, 10) : -1;
    return v && *v && !*end && x >= 0 && x <= 1000000 ? (int)x : -1;
}

/* Returns 0 if `flag` is not a beam flag, 1 if it took no value, 2 if it took `value`, -1 on a
   bad or missing value (after printing why). */
static int beam_flags_parse(beam_flags *f, const char *flag, const char *value) {
    int32_t *target = NULL;
    int x;
    if (!strcmp(flag, "--cond-not-empty")) { f->cfg.cond.not_empty = 1; return 1; }
    if (!strcmp(flag, "--beams")) target = &f->n_beams;
    else if (!strcmp(flag, "--n-best")) target = &f->n_best;
    else if (!strcmp(flag, "--no-repeat-ngram")) target = &f->cfg.no_repeat_ngram_size;
    else if (!strcmp(flag, "--min-new")) target = &f->cfg.min_new_tokens;
    else if (!strcmp(flag, "--cond-no-repeat")) target = &f->cfg.cond.no_repeat_ngram;
    else if (!strcmp(flag, "--cond-no-copy")) target = &f->cfg.cond.no_prompt_copy;
    else if (!strcmp(flag, "--cond-min-len")) target = &f->cfg.cond.min_len;
    else if (!strcmp(flag, "--cond-max-len")) target = &f->cfg.cond.max_len;
    else if (!strcmp(flag, "--length-penalty")) {
        char *end = NULL;
        float lp = value ? strtof(value, &end) : 0.0f;
        if (!value || end == value || *end) { fprintf(stderr, "run: --length-penalty needs a number\n"); return -1; }
        f->length_penalty = lp;
        f->length_penalty_set = 1;
        return 2;
    } else if (!strcmp(flag, "--early-stopping")) {
        if (value && !strcmp(value, "heuristic")) f->cfg.early_stopping = TFM_EARLY_HEURISTIC;
        else if (value && !strcmp(value, "true")) f->cfg.early_stopping = TFM_EARLY_TRUE;
        else if (value && !strcmp(value, "never")) f->cfg.early_stopping = TFM_EARLY_NEVER;
        else { fprintf(stderr, "run: --early-stopping takes heuristic, true or never\n"); return -1; }
        return 2;
    } else return 0;
    if ((x = beam_flags__int(value)) < 0) { fprintf(stderr, "run: %s needs a non-negative integer\n", flag); return -1; }
    *target = x;
    return 2;
}

/* Runs the search and prints the n-best list (best first) with the score the search ranked by
   and the model's log-likelihood. Returns a process exit code. */
static int beam_flags_run(const beam_flags *f, const tfm_model *m, const tfm_session_config *session, const int32_t *prompt,
                          size_t n_prompt, int n_new, int ignore_eos, beam_print_fn print, void *user, FILE *out) {
    tfm_beam b;
    tfm_beam_config c = f->cfg;
    tfm_result r;
    int32_t i, j;
    c.n_beams = f->n_beams;
    c.n_return = f->n_best > 0 && f->n_best < f->n_beams ? f->n_best : f->n_beams;
    c.length_penalty = f->length_penalty_set ? f->length_penalty : 1.0f;
    c.max_new_tokens = n_new;
    if (ignore_eos) c.eos_id = -1;
    if (session) c.session = *session;
    if ((r = tfm_beam_init(&b, m, &c)) != TFM_OK) {
        fprintf(stderr, "run: cannot start the beam search: %s (%s)\n", b.error, tfm_result_string(r));
        return 1;
    }
    if ((r = tfm_beam_search(&b, prompt, n_prompt)) != TFM_OK) {
        fprintf(stderr, "run: beam search: %s (%s)\n", b.error, tfm_result_string(r));
        tfm_beam_free(&b);
        return 1;
    }
    fprintf(out, "%d beams, %d of %d hypotheses shown; score = what the search ranked ((log p + log q) / length^%g), log p = model log-likelihood\n",
            b.cfg.n_beams, b.n_results, b.n_hyps, (double)b.cfg.length_penalty);
    if (b.n_results == 0) fprintf(out, "no output satisfies the conditions\n");
    for (i = 0; i < b.n_results; i++) {
        const tfm_beam_hyp *h = &b.hyps[i];
        fprintf(out, "#%d score %.4f  log p %.4f  len %d%s | ", i + 1, (double)h->score, (double)h->logprob, (int)h->n_tokens, h->eos ? " +eos" : "");
        if (print) print(user, out, n_prompt ? prompt[n_prompt - 1] : -1, h->tokens, h->n_tokens);
        else for (j = 0; j < h->n_tokens; j++) fprintf(out, "%s%d", j ? " " : "", (int)h->tokens[j]);
        fprintf(out, "\n");
    }
    tfm_beam_free(&b);
    return 0;
}

#endif /* TFM_BEAM_FLAGS_H */
