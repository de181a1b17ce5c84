/* Cross-implementation check: tfm.h's forward pass (tfm_session_eval) and the trainer's own
   forward pass (tools/train.c, written independently, full-sequence with no KV cache) must give
   the same logits, within 1e-4, for the shipped model on held-out text (Genesis 50 is chapter
   index 49, held out of training), over the whole context.
   Run from the repository root:
   cc -std=c99 -O2 -fopenmp tests/test_train_tfm.c -o build/test_train_tfm -lm && build/test_train_tfm */
#define TRAIN_NO_MAIN
#include "../tools/train.c"

static const char *held_out_text =
    "And Joseph fell upon his father's face, and wept upon him, and kissed him. "
    "And Joseph commanded his servants the physicians to embalm his father: and the physicians embalmed Israel. "
    "And forty days were fulfilled for him; for so are fulfilled the days of those which are embalmed: and the "
    "Egyptians mourned for him threescore and ten days. "
    "And when the days of his mourning were past, Joseph spake unto the house of Pharaoh, saying, If now I have found "
    "grace in your eyes, speak, I pray you, in the ears of Pharaoh, saying, "
    "My father made me swear, saying, Lo, I die: in my grave which I have digged for me in the land of Canaan, there "
    "shalt thou bury me. Now therefore let me go up, I pray thee, and bury my father, and I will come again. "
    "And Pharaoh said, Go up, and bury thy father, according as he made thee swear.";

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "models/tfm-kjv.gguf";
    tfm_model tm;
    tfm_session s;
    tfm_session_config sc;
    tfm_result r;
    tr_model m;
    tr_vocab v;
    int *ids, n, V, failures = 0, argmax_same = 0;
    int32_t *ids32;
    float *tl;
    double worst = 0, tol = 1e-4;
    FILE *f = fopen(path, "rb");
    if (!f) { printf("SKIP: %s missing\n", path); return 0; }
    fclose(f);
    if (tr_load_gguf(path, &m, &v, 1, 0)) { printf("FAIL: trainer cannot load %s\n", path); return 1; }
    r = tfm_model_load(&tm, path);
    if (r != TFM_OK) { printf("FAIL: tfm_model_load %s: %s (%s)\n", path, tfm_result_string(r), tm.error); return 1; }
    memset(&sc, 0, sizeof sc);
    r = tfm_session_init(&s, &tm, &sc);
    if (r != TFM_OK) { printf("FAIL: tfm_session_init: %s (%s)\n", tfm_result_string(r), s.error); return 1; }

    V = m.c.vocab;
    ids = (int *)tr_alloc((3 * strlen(held_out_text) + 4) * sizeof *ids);
    ids[0] = TR_BOS;
    n = 1 + tr_encode_text(&v, held_out_text, ids + 1);
    if (n > m.max_t) n = m.max_t; /* the whole context: RoPE at every trained position */
    ids32 = (int32_t *)tr_alloc((size_t)n * sizeof *ids32);
    for (int i = 0; i < n; i++) ids32[i] = ids[i];
    tl = (float *)tr_alloc((size_t)n * V * sizeof *tl);
    r = tfm_session_eval(&s, ids32, NULL, (size_t)n, tl);
    if (r != TFM_OK) { printf("FAIL: tfm_session_eval: %s (%s)\n", tfm_result_string(r), s.error); return 1; }
    tr_forward(&m, ids, NULL, 1, n, NULL);
    for (int t = 0; t < n; t++) {
        const float *a = tl + (size_t)t * V;
        const real *b = m.a.logits + (size_t)t * V;
        int ia = 0, ib = 0;
        for (int k = 0; k < V; k++) {
            double d = fabs((double)a[k] - (double)b[k]);
            if (d > worst) worst = d;
            if (a[k] > a[ia]) ia = k;
            if (b[k] > b[ib]) ib = k;
        }
        argmax_same += ia == ib;
    }
    printf("%s: %d positions x %d logits, max |tfm.h - trainer| = %.3g (tolerance %.0e); argmax agrees at %d/%d\n",
           worst < tol ? "ok  " : "FAIL", n, V, worst, tol, argmax_same, n);
    failures += !(worst < tol);
    printf("%s: the held-out sequence fills the context (%d of %d positions)\n", n == m.max_t ? "ok  " : "FAIL", n, m.max_t);
    failures += n != m.max_t;
    /* The model must predict unseen text better than the best context-free guess: the unigram
       distribution fitted to the very tokens being predicted (an optimistic baseline). */
    {
        double model_nll = 0, unigram_nll = 0;
        int *count = (int *)tr_alloc((size_t)V * sizeof *count);
        for (int t = 1; t < n; t++) count[ids[t]]++;
        for (int t = 1; t < n; t++) {
            const float *z = tl + (size_t)(t - 1) * V;
            double mx = z[0], sum = 0;
            for (int k = 1; k < V; k++) mx = z[k] > mx ? z[k] : mx;
            for (int k = 0; k < V; k++) sum += exp(z[k] - mx);
            model_nll += log(sum) + mx - z[ids[t]];
            unigram_nll -= log((double)count[ids[t]] / (n - 1));
        }
        model_nll /= n - 1;
        unigram_nll /= n - 1;
        printf("%s: held-out loss %.3f nats/token (perplexity %.1f) < %.3f of a unigram fitted to the same tokens\n",
               model_nll < unigram_nll ? "ok  " : "FAIL", model_nll, exp(model_nll), unigram_nll);
        failures += !(model_nll < unigram_nll);
        free(count);
    }
    /* Greedy decoding, token by token through tfm.h's KV cache, against the trainer's
       full-recompute generation: the same 64 new tokens. */
    {
        int gen[80], n_gen, same = 1, first_diff = -1;
        int32_t tok32;
        tr_rng rng;
        rng.s = 1;
        gen[0] = TR_BOS;
        n_gen = 1 + tr_encode_text(&v, "And God said", gen + 1);
        {
            int n_prompt = n_gen;
            n_gen = tr_generate(&m, gen, n_gen, n_prompt + 64, 0, &rng);
            tfm_seq_reset(&s, 0);
            for (int i = 0; i < n_prompt; i++) ids32[i] = gen[i];
            r = tfm_session_eval(&s, ids32, NULL, (size_t)n_prompt, NULL);
            for (int i = n_prompt; r == TFM_OK && i < n_gen; i++) {
                tok32 = tfm_argmax(tfm_session_logits(&s, 0), V);
                if (tok32 != gen[i] && same) { same = 0; first_diff = i; }
                r = tfm_session_eval(&s, &tok32, NULL, 1, NULL);
            }
            printf("%s: greedy continuation of \"And God said\": tfm.h (KV cache) and trainer agree on %d new tokens%s\n",
                   same && r == TFM_OK ? "ok  " : "FAIL", n_gen - n_prompt, same ? "" : " (they do not)");
            if (!same) printf("      first difference at position %d\n", first_diff);
            failures += !(same && r == TFM_OK);
        }
    }
    /* tfm.h's tokenizer against the trainer's encoder (the rule the corpus was encoded with):
       the embedded text, then every held-out verse when build/kjv.txt exists. */
    {
        size_t cap = 3 * strlen(held_out_text) + 8, n_out = 0, n_bad = 0, n_verses = 0;
        int32_t *t32 = (int32_t *)tr_alloc(cap * sizeof *t32);
        int *mine = (int *)tr_alloc(cap * sizeof *mine);
        int k = tr_encode_text(&v, held_out_text, mine), same;
        char *buf, *dec;
        size_t len;
        r = tfm_tokenize(&tm.vocab, held_out_text, strlen(held_out_text), 1, t32, cap, &n_out);
        same = r == TFM_OK && n_out == (size_t)k + 1 && t32[0] == TR_BOS;
        for (int i = 0; same && i < k; i++) same = t32[i + 1] == mine[i];
        printf("%s: tfm_tokenize equals the trainer's encoder on the held-out text (%d ids)\n", same ? "ok  " : "FAIL", k);
        failures += !same;
        dec = (char *)tr_alloc(strlen(held_out_text) + 8);
        r = tfm_detokenize(&tm.vocab, t32 + 1, n_out - 1, dec, strlen(held_out_text) + 8, &len);
        same = r == TFM_OK && strcmp(dec, held_out_text) == 0;
        printf("%s: tfm_detokenize gives the text back\n", same ? "ok  " : "FAIL");
        failures += !same;
        free(dec);
        if (tr_read_file("build/kjv.txt", &buf, &len) == 0) {
            tr_corpus c;
            if (tr_corpus_parse(&c, buf, len) == 0) {
                for (size_t i = 0; i < c.n_verses; i++) {
                    const char *t = c.text + c.verse[i];
                    size_t tl_ = strlen(t);
                    if (!tr_is_held_out(c.chapter[i])) continue;
                    if (3 * tl_ + 8 > cap) continue;
                    k = tr_encode_text(&v, t, mine);
                    r = tfm_tokenize(&tm.vocab, t, tl_, 0, t32, cap, &n_out);
                    same = r == TFM_OK && n_out == (size_t)k;
                    for (int j = 0; same && j < k; j++) same = t32[j] == mine[j];
                    n_bad += !same;
                    n_verses++;
                }
                tr_corpus_free(&c);
            }
            free(buf);
            printf("%s: tfm_tokenize equals the trainer's encoder on %lu held-out verses (%lu differ)\n",
                   n_verses > 500 && n_bad == 0 ? "ok  " : "FAIL", (unsigned long)n_verses, (unsigned long)n_bad);
            failures += !(n_verses > 500 && n_bad == 0);
        } else {
            printf("SKIP: build/kjv.txt missing (bible -l100000 \"Genesis 1:1-Revelation 22:21\" > build/kjv.txt)\n");
        }
        free(t32);
        free(mine);
    }
    free(tl);
    free(ids);
    free(ids32);
    tfm_session_free(&s);
    tfm_model_free(&tm);
    tr_model_free(&m);
    tr_vocab_free(&v);
    printf("%s\n", failures ? "test_train_tfm: FAILED" : "test_train_tfm: all passed");
    return failures != 0;
}
